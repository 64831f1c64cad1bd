/* Sampler: each pipeline stage, determinism, and the sampled distribution. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "engine/sampler.h"

/* Chi-square critical values at significance 1e-6 (upper tail), by degrees of
 * freedom: a correct sampler fails a test with probability 1e-6 per seed (and
 * the seeds are fixed, so the tests are deterministic). */
static const double CHI2_CRIT_1E6[] = {0, 23.93, 27.63, 30.66, 33.38, 35.89, 38.26, 40.52};

#define N_DRAWS 100000

static sampler *make(const ryot_sampler_params *p, int32_t n_vocab) {
    sampler *s = NULL;
    ryot_error err = {0};
    ryot_status st = sampler_init(&s, p, n_vocab, &err);
    if (st != RYOT_OK) fprintf(stderr, "sampler_init: %s\n", err.msg);
    assert_int_equal(st, RYOT_OK);
    assert_non_null(s);
    return s;
}

/* Params with every truncation off: plain softmax sampling at temperature t. */
static ryot_sampler_params plain(float t, uint64_t seed) {
    ryot_sampler_params p = ryot_sampler_params_default();
    p.temperature = t;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

/* Test-local deterministic filler (not the sampler's RNG). */
static uint32_t lcg(uint32_t *x) {
    *x = *x * 1664525u + 1013904223u;
    return *x >> 8;
}

static void fill_random(float *l, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) l[i] = (float)(lcg(&seed) % 2000) / 100.0f - 10.0f;
}

/* Draws n tokens from fixed logits and counts them. */
static void histogram(sampler *s, const float *logits, int nv, int n, int *counts) {
    float buf[64];
    memset(counts, 0, (size_t)nv * sizeof *counts);
    for (int i = 0; i < n; i++) {
        memcpy(buf, logits, (size_t)nv * sizeof *buf);
        int32_t t = sampler_sample(s, buf);
        assert_true(t >= 0 && t < nv);
        counts[t]++;
    }
}

/* Pearson chi-square of counts against probabilities `want` over the bins
 * with want > 0; any draw in a bin with want == 0 fails outright. */
static void check_chi2(const int *counts, const double *want, int nv, int n) {
    double chi2 = 0.0;
    int bins = 0;
    for (int i = 0; i < nv; i++) {
        if (want[i] == 0.0) {
            assert_int_equal(counts[i], 0);
            continue;
        }
        double e = want[i] * n;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        bins++;
    }
    int dof = bins - 1;
    assert_true(dof >= 1 && dof < (int)(sizeof CHI2_CRIT_1E6 / sizeof CHI2_CRIT_1E6[0]));
    if (chi2 > CHI2_CRIT_1E6[dof]) fprintf(stderr, "chi2 %.2f > %.2f (dof %d)\n", chi2, CHI2_CRIT_1E6[dof], dof);
    assert_true(chi2 <= CHI2_CRIT_1E6[dof]);
}

static void softmax_ref(const float *l, int n, double t, double *p) {
    double max = -INFINITY, sum = 0.0;
    for (int i = 0; i < n; i++)
        if (l[i] > max) max = l[i];
    for (int i = 0; i < n; i++) sum += p[i] = exp((l[i] - max) / t);
    for (int i = 0; i < n; i++) p[i] /= sum;
}

static void test_greedy_argmax(void **state) {
    (void)state;
    ryot_sampler_params p = ryot_sampler_params_default();
    p.temperature = 0.0f;
    sampler *s = make(&p, 10);
    float l[10] = {0, 1, 2, 9, 3, 9, -1, 8, 0, 0};
    assert_int_equal(sampler_sample(s, l), 3); /* tie 3/5 -> lowest id */
    float l2[10] = {-5, -4, -3, -2, -1, -6, -7, -8, -9, -0.5f};
    assert_int_equal(sampler_sample(s, l2), 9);
    float l3[10] = {NAN, 1, NAN, 2, 0, 0, 0, 0, 0, 0};
    assert_int_equal(sampler_sample(s, l3), 3);
    sampler_free(s);
}

static void test_seed_determinism(void **state) {
    (void)state;
    enum { NV = 50, DRAWS = 2000 };
    float base[NV];
    for (int i = 0; i < NV; i++) base[i] = 0.0f; /* flat: every draw is pure RNG */
    ryot_sampler_params pa = plain(1.0f, 1234), pb = plain(1.0f, 1234), pc = plain(1.0f, 1235);
    sampler *a = make(&pa, NV), *b = make(&pb, NV), *c = make(&pc, NV);
    assert_int_equal(sampler_seed(a), 1234);
    int32_t first[DRAWS];
    int diff = 0;
    for (int i = 0; i < DRAWS; i++) {
        float la[NV], lb[NV], lc[NV];
        memcpy(la, base, sizeof la);
        memcpy(lb, base, sizeof lb);
        memcpy(lc, base, sizeof lc);
        int32_t ta = sampler_sample(a, la), tb = sampler_sample(b, lb), tc = sampler_sample(c, lc);
        assert_int_equal(ta, tb);
        diff += ta != tc;
        first[i] = ta;
    }
    /* independent streams agree with probability 1/50 per draw: expect ~1960
     * differences; 1800 is > 10 standard deviations below */
    assert_true(diff > 1800);

    /* reset restarts the stream */
    sampler_reset(a);
    for (int i = 0; i < DRAWS; i++) {
        float la[NV];
        memcpy(la, base, sizeof la);
        assert_int_equal(sampler_sample(a, la), first[i]);
    }
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

/* Samplers sharing one candidate scratch (as the server's engine thread
 * does) draw exactly what samplers with their own scratch draw, with
 * top-k/top-p/min-p and penalties in play and their calls interleaved. */
static void test_shared_scratch(void **state) {
    (void)state;
    enum { NV = 300, DRAWS = 400 };
    void *scratch = malloc(sampler_scratch_size(NV));
    assert_non_null(scratch);
    sampler *own[2], *shared[2];
    for (int k = 0; k < 2; k++) {
        ryot_sampler_params p = plain(0.9f, 77 + (uint64_t)k);
        p.top_k = 50;
        p.top_p = 0.9f;
        p.min_p = 0.02f;
        p.repeat_penalty = 1.3f;
        p.penalty_last_n = 16;
        own[k] = make(&p, NV);
        shared[k] = make(&p, NV);
        sampler_share_scratch(shared[k], scratch);
    }
    for (int i = 0; i < DRAWS; i++)
        for (int k = 0; k < 2; k++) {
            float la[NV], lb[NV];
            fill_random(la, NV, (uint32_t)(i * 2 + k + 1));
            memcpy(lb, la, sizeof lb);
            const int32_t ta = sampler_sample(own[k], la), tb = sampler_sample(shared[k], lb);
            assert_int_equal(ta, tb);
            sampler_accept(own[k], ta);
            sampler_accept(shared[k], tb);
        }
    for (int k = 0; k < 2; k++) {
        sampler_free(own[k]);
        sampler_free(shared[k]);
    }
    free(scratch);
}

/* Pins the generator: xoshiro256** seeded by splitmix64 must give the same
 * stream on every platform.  Flat logits over 2^k tokens make each draw
 * floor(u * 2^k) of the top bits, so this catches any change of generator. */
static void test_seed_stream_pinned(void **state) {
    (void)state;
    enum { NV = 256 };
    float l[NV];
    ryot_sampler_params p = plain(1.0f, 42);
    sampler *s = make(&p, NV);
    int32_t got[8];
    for (int i = 0; i < 8; i++) {
        for (int j = 0; j < NV; j++) l[j] = 0.0f;
        got[i] = sampler_sample(s, l);
    }
    /* splitmix64(42) x4 -> xoshiro256** -> floor((x >> 11) * 2^-53 * 256),
     * computed independently with a few lines of Python big-integer arithmetic */
    static const int32_t want[8] = {21, 97, 174, 236, 253, 197, 184, 217};
    for (int i = 0; i < 8; i++) assert_int_equal(got[i], want[i]);
    sampler_free(s);
}

static void test_top_k1_is_greedy(void **state) {
    (void)state;
    enum { NV = 64 };
    ryot_sampler_params pg = ryot_sampler_params_default(), pk = plain(1.5f, 7);
    pg.temperature = 0.0f;
    pk.top_k = 1;
    sampler *g = make(&pg, NV), *k = make(&pk, NV);
    for (uint32_t row = 0; row < 200; row++) {
        float a[NV], b[NV];
        fill_random(a, NV, row);
        if (row % 3 == 0) a[row % NV] = a[(row * 7 + 1) % NV] = 50.0f; /* a tie at the top */
        memcpy(b, a, sizeof b);
        assert_int_equal(sampler_sample(k, b), sampler_sample(g, a));
    }
    sampler_free(g);
    sampler_free(k);
}

static void test_top_p_tiny_is_greedy(void **state) {
    (void)state;
    enum { NV = 64 };
    ryot_sampler_params pg = ryot_sampler_params_default(), pp = plain(1.0f, 9);
    pg.temperature = 0.0f;
    pp.top_p = 1e-6f;
    sampler *g = make(&pg, NV), *tp = make(&pp, NV);
    for (uint32_t row = 0; row < 200; row++) {
        float a[NV], b[NV];
        fill_random(a, NV, row + 1000);
        memcpy(b, a, sizeof b);
        assert_int_equal(sampler_sample(tp, b), sampler_sample(g, a));
    }
    sampler_free(g);
    sampler_free(tp);
}

/* Large vocab: top-p has to grow its sorted prefix past the first chunk. */
static void test_top_p_large_vocab(void **state) {
    (void)state;
    enum { NV = 5000 };
    static float l[NV], buf[NV];
    for (int i = 0; i < NV; i++) l[i] = 0.0f; /* flat: top-p 0.5 keeps exactly 2500 */
    ryot_sampler_params p = plain(1.0f, 11);
    p.top_p = 0.5f;
    sampler *s = make(&p, NV);
    int32_t maxid = -1;
    for (int i = 0; i < 20000; i++) {
        memcpy(buf, l, sizeof buf);
        int32_t t = sampler_sample(s, buf);
        assert_true(t >= 0 && t < 2500); /* ties -> lower ids are kept */
        if (t > maxid) maxid = t;
    }
    assert_true(maxid > 2400);
    sampler_free(s);
}

/* top-k keeps the k first in the order (ties -> lower ids), on both paths:
 * the heap (small k) and select-over-all-candidates (large k). */
static void test_top_k_paths(void **state) {
    (void)state;
    enum { NV = 6000 };
    static float l[NV], buf[NV];
    const int32_t ks[] = {100, 4500};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        for (int i = 0; i < NV; i++) l[i] = 0.0f;
        l[NV - 1] = -INFINITY; /* banned ids never enter */
        ryot_sampler_params p = plain(1.0f, 12 + ki);
        p.top_k = ks[ki];
        sampler *s = make(&p, NV);
        int32_t maxid = -1;
        for (int i = 0; i < 20000; i++) {
            memcpy(buf, l, sizeof buf);
            int32_t t = sampler_sample(s, buf);
            assert_true(t >= 0 && t < ks[ki]);
            if (t > maxid) maxid = t;
        }
        assert_true(maxid >= ks[ki] * 9 / 10);
        sampler_free(s);

        /* fewer finite logits than k: all of them are candidates */
        for (int i = 0; i < NV; i++) l[i] = i < 3 ? 1.0f : -INFINITY;
        s = make(&p, NV);
        int seen[3] = {0};
        for (int i = 0; i < 3000; i++) {
            memcpy(buf, l, sizeof buf);
            int32_t t = sampler_sample(s, buf);
            assert_true(t >= 0 && t < 3);
            seen[t]++;
        }
        assert_true(seen[0] > 800 && seen[1] > 800 && seen[2] > 800);
        sampler_free(s);
    }
}

static void test_distribution_temperature(void **state) {
    (void)state;
    enum { NV = 8 };
    const float l[NV] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.3f, 1.5f};
    const float temps[] = {1.0f, 0.7f, 2.0f};
    for (size_t ti = 0; ti < sizeof temps / sizeof temps[0]; ti++) {
        ryot_sampler_params p = plain(temps[ti], 100 + ti);
        sampler *s = make(&p, NV);
        int counts[NV];
        double want[NV];
        histogram(s, l, NV, N_DRAWS, counts);
        softmax_ref(l, NV, temps[ti], want);
        check_chi2(counts, want, NV, N_DRAWS);
        sampler_free(s);
    }
}

/* Verifying a one-hot draft (speculative decoding) keeps the distribution,
 * whichever token is drafted: a likely one, an unlikely one, one top-k
 * drops; greedy returns the argmax whatever the draft. */
static void test_draft_keeps_distribution(void **state) {
    (void)state;
    enum { NV = 8 };
    const float l[NV] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.3f, 1.5f};
    const int32_t drafts[] = {4, 5, 2};
    for (size_t di = 0; di < sizeof drafts / sizeof drafts[0]; di++) {
        ryot_sampler_params p = plain(0.9f, 40 + di);
        p.top_k = di == 2 ? 4 : 0; /* keeps ids 4, 7, 0, 1: the draft 2 is out */
        sampler *s = make(&p, NV);
        int counts[NV] = {0};
        float buf[NV];
        for (int i = 0; i < N_DRAWS; i++) {
            memcpy(buf, l, sizeof buf);
            const int32_t t = sampler_sample_draft(s, buf, drafts[di], NULL);
            assert_true(t >= 0 && t < NV);
            counts[t]++;
        }
        double want[NV] = {0};
        if (di < 2) {
            softmax_ref(l, NV, 0.9, want);
        } else {
            const float kept[4] = {l[4], l[7], l[0], l[1]};
            double pk[4];
            softmax_ref(kept, 4, 0.9, pk);
            want[4] = pk[0], want[7] = pk[1], want[0] = pk[2], want[1] = pk[3];
        }
        check_chi2(counts, want, NV, N_DRAWS);
        sampler_free(s);
    }
    ryot_sampler_params g = plain(0.0f, 1);
    sampler *s = make(&g, NV);
    float buf[NV];
    memcpy(buf, l, sizeof buf);
    assert_int_equal(sampler_sample_draft(s, buf, 7, NULL), 4);
    sampler_free(s);
}

/* Speculative sampling with a draft distribution q (a draft model's): the
 * draft x is drawn from q, the verifier accepts it with min(1, p/q) and
 * else draws from max(p - q, 0).  The tokens returned follow p exactly
 * (chi-square), and the acceptance rate is sum min(p, q), computed here in
 * closed form: for q far from p, q equal to p (always accepted), and q
 * putting mass on a token top-k removes from p. */
static void test_draft_q_keeps_distribution(void **state) {
    (void)state;
    enum { NV = 6 };
    const float l[NV] = {1.2f, 0.4f, -0.3f, 2.0f, 0.0f, -1.0f};
    double pfull[NV];
    softmax_ref(l, NV, 0.8, pfull);
    const double qs[3][NV] = {
        {0.05, 0.40, 0.25, 0.05, 0.15, 0.10}, /* far from p */
        {0, 0, 0, 0, 0, 0},                   /* = p, filled in below */
        {0.30, 0.10, 0.20, 0.30, 0.05, 0.05}, /* top-k 3 keeps 3, 0, 1: mass on 2, 4, 5 always rejected */
    };
    for (int qi = 0; qi < 3; qi++) {
        ryot_sampler_params p = plain(0.8f, 70 + (uint64_t)qi);
        p.top_k = qi == 2 ? 3 : 0;
        double want[NV] = {0};
        if (qi == 2) {
            const float kept[3] = {l[3], l[0], l[1]};
            double pk[3];
            softmax_ref(kept, 3, 0.8, pk);
            want[3] = pk[0], want[0] = pk[1], want[1] = pk[2];
        } else {
            memcpy(want, pfull, sizeof want);
        }
        float q[NV];
        for (int i = 0; i < NV; i++) q[i] = (float)(qi == 1 ? want[i] : qs[qi][i]);
        double accept_want = 0.0;
        for (int i = 0; i < NV; i++) accept_want += fmin(want[i], (double)q[i]);
        sampler *s = make(&p, NV);
        ryot_rng r;
        ryot_rng_seed(&r, 1234 + (uint64_t)qi);
        int counts[NV] = {0}, accepted = 0;
        float buf[NV];
        for (int n = 0; n < N_DRAWS; n++) {
            /* x ~ q */
            double u = ryot_rng_uniform(&r), cum = 0.0;
            int32_t x = NV - 1;
            for (int i = 0; i < NV; i++)
                if (u < (cum += q[i])) {
                    x = i;
                    break;
                }
            memcpy(buf, l, sizeof buf);
            const int32_t t = sampler_sample_draft(s, buf, x, q);
            assert_true(t >= 0 && t < NV);
            counts[t]++;
            accepted += t == x;
        }
        check_chi2(counts, want, NV, N_DRAWS);
        /* a returned token equal to x after a rejection is impossible: the
         * residual is 0 at x, so accepted counts acceptances exactly */
        const double rate = (double)accepted / N_DRAWS;
        const double sd = sqrt(accept_want * (1.0 - accept_want) / N_DRAWS) + 1e-9;
        if (fabs(rate - accept_want) > 5.0 * sd + 1e-6)
            fail_msg("q %d: acceptance %.4f, want %.4f", qi, rate, accept_want);
        if (qi == 1) assert_int_equal(accepted, N_DRAWS);
        sampler_free(s);
    }
}

/* sampler_sample_q reports the distribution it drew from. */
static void test_sample_q_reports(void **state) {
    (void)state;
    enum { NV = 5 };
    const float l[NV] = {0.5f, 1.5f, -0.5f, 1.0f, 0.0f};
    ryot_sampler_params p = plain(0.7f, 5);
    p.top_k = 3;
    sampler *s = make(&p, NV);
    float buf[NV], q[NV];
    memcpy(buf, l, sizeof buf);
    const int32_t t = sampler_sample_q(s, buf, q);
    const float kept[3] = {l[1], l[3], l[0]};
    double pk[3];
    softmax_ref(kept, 3, 0.7, pk);
    assert_float_equal(q[1], pk[0], 1e-6);
    assert_float_equal(q[3], pk[1], 1e-6);
    assert_float_equal(q[0], pk[2], 1e-6);
    assert_float_equal(q[2], 0.0f, 0.0f);
    assert_float_equal(q[4], 0.0f, 0.0f);
    assert_true(q[t] > 0.0f);
    sampler_free(s);
    ryot_sampler_params g = plain(0.0f, 1);
    s = make(&g, NV);
    memcpy(buf, l, sizeof buf);
    assert_int_equal(sampler_sample_q(s, buf, q), 1);
    assert_float_equal(q[1], 1.0f, 0.0f);
    assert_float_equal(q[0] + q[2] + q[3] + q[4], 0.0f, 0.0f);
    sampler_free(s);
}

static void test_distribution_top_k(void **state) {
    (void)state;
    enum { NV = 8 };
    const float l[NV] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.3f, 1.5f};
    ryot_sampler_params p = plain(0.8f, 5);
    p.top_k = 3; /* keeps ids 4, 7, 0 */
    sampler *s = make(&p, NV);
    int counts[NV];
    double want[NV] = {0};
    const float kept[3] = {l[4], l[7], l[0]};
    double pk[3];
    softmax_ref(kept, 3, 0.8, pk);
    want[4] = pk[0];
    want[7] = pk[1];
    want[0] = pk[2];
    histogram(s, l, NV, N_DRAWS, counts);
    check_chi2(counts, want, NV, N_DRAWS);
    sampler_free(s);
}

static void test_distribution_top_p(void **state) {
    (void)state;
    enum { NV = 4 };
    /* probabilities 0.5, 0.3, 0.15, 0.05 at T = 1 */
    const float l[NV] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    ryot_sampler_params p = plain(1.0f, 6);
    p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8: keeps ids 1 and 3 */
    sampler *s = make(&p, NV);
    int counts[NV];
    double want[NV] = {0, 0.5 / 0.8, 0, 0.3 / 0.8};
    histogram(s, l, NV, N_DRAWS, counts);
    check_chi2(counts, want, NV, N_DRAWS);
    sampler_free(s);
}

static void test_min_p(void **state) {
    (void)state;
    enum { NV = 4 };
    /* relative to the max: 1, 0.5, 0.1, 0.04 */
    const float l[NV] = {0.0f, logf(0.5f), logf(0.1f), logf(0.04f)};
    ryot_sampler_params p = plain(1.0f, 8);
    p.min_p = 0.08f; /* drops id 3 only */
    sampler *s = make(&p, NV);
    int counts[NV];
    double want[NV] = {1.0 / 1.6, 0.5 / 1.6, 0.1 / 1.6, 0};
    histogram(s, l, NV, N_DRAWS, counts);
    check_chi2(counts, want, NV, N_DRAWS);
    sampler_free(s);

    /* with top-p in front (sorted path), and min_p above everything but the max */
    p.top_p = 0.99f;
    p.min_p = 0.6f;
    s = make(&p, NV);
    histogram(s, l, NV, 1000, counts);
    assert_int_equal(counts[0], 1000);
    sampler_free(s);
}

static void test_penalties(void **state) {
    (void)state;
    enum { NV = 6 };
    ryot_sampler_params p = plain(1.0f, 1);
    p.repeat_penalty = 1.5f;
    p.penalty_last_n = 8;
    sampler *s = make(&p, NV);
    sampler_accept(s, 0);
    sampler_accept(s, 1);
    sampler_accept(s, 1);
    float l[NV] = {3.0f, -1.0f, 3.0f, -1.0f, 0.0f, 0.0f};
    sampler_apply_penalties(s, l);
    assert_float_equal(l[0], 2.0f, 1e-6);  /* positive: divided */
    assert_float_equal(l[1], -1.5f, 1e-6); /* negative: multiplied (count does not matter) */
    assert_float_equal(l[2], 3.0f, 0);     /* not in the history: untouched */
    assert_float_equal(l[3], -1.0f, 0);
    sampler_free(s);

    /* frequency and presence (OpenAI): logit -= count * f + (count > 0) * p */
    p = plain(1.0f, 1);
    p.frequency_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    p.penalty_last_n = -1;
    s = make(&p, NV);
    for (int i = 0; i < 3; i++) sampler_accept(s, 2);
    sampler_accept(s, 4);
    sampler_accept(s, 99); /* outside the vocab: ignored */
    sampler_accept(s, -1);
    float l2[NV] = {1, 1, 1, 1, 1, 1};
    sampler_apply_penalties(s, l2);
    assert_float_equal(l2[2], 1.0f - 3 * 0.25f - 0.5f, 1e-6);
    assert_float_equal(l2[4], 1.0f - 0.25f - 0.5f, 1e-6);
    assert_float_equal(l2[0], 1.0f, 0);
    assert_float_equal(l2[5], 1.0f, 0);

    /* reset forgets the history */
    sampler_reset(s);
    float l3[NV] = {1, 1, 1, 1, 1, 1};
    sampler_apply_penalties(s, l3);
    for (int i = 0; i < NV; i++) assert_float_equal(l3[i], 1.0f, 0);
    sampler_free(s);

    /* the window: only the last penalty_last_n accepted tokens count */
    p = plain(1.0f, 1);
    p.presence_penalty = 1.0f;
    p.frequency_penalty = 0.5f;
    p.penalty_last_n = 3;
    s = make(&p, NV);
    const int32_t hist[] = {0, 1, 2, 2, 3}; /* window: 2, 2, 3 */
    for (size_t i = 0; i < sizeof hist / sizeof hist[0]; i++) sampler_accept(s, hist[i]);
    float l4[NV] = {0, 0, 0, 0, 0, 0};
    sampler_apply_penalties(s, l4);
    assert_float_equal(l4[0], 0.0f, 0);
    assert_float_equal(l4[1], 0.0f, 0);
    assert_float_equal(l4[2], -(2 * 0.5f + 1.0f), 1e-6);
    assert_float_equal(l4[3], -(0.5f + 1.0f), 1e-6);
    sampler_free(s);

    /* window 0: penalties off whatever is accepted; the sample path applies them too */
    p = plain(0.0f, 1);
    p.repeat_penalty = 100.0f;
    p.penalty_last_n = 0;
    s = make(&p, NV);
    sampler_accept(s, 0);
    float l5[NV] = {5, 4, 0, 0, 0, 0};
    assert_int_equal(sampler_sample(s, l5), 0);
    sampler_free(s);
    p.penalty_last_n = 4;
    s = make(&p, NV);
    sampler_accept(s, 0);
    float l6[NV] = {5, 4, 0, 0, 0, 0};
    assert_int_equal(sampler_sample(s, l6), 1); /* 5 / 100 < 4 */
    sampler_free(s);
}

static void test_logit_bias(void **state) {
    (void)state;
    enum { NV = 4 };
    ryot_logit_bias bias[] = {{0, -INFINITY}, {2, 1.5f}, {2, 0.5f}};
    ryot_sampler_params p = plain(0.0f, 3);
    p.logit_bias = bias;
    p.n_logit_bias = 3;
    sampler *s = make(&p, NV);
    bias[1].bias = 100.0f; /* copied at init: no effect */
    float l[NV] = {1, 1, 1, 1};
    sampler_apply_penalties(s, l);
    assert_true(isinf(l[0]) && l[0] < 0);
    assert_float_equal(l[2], 3.0f, 1e-6); /* biases for one id add */
    float l2[NV] = {5, 1, 1, 1};
    assert_int_equal(sampler_sample(s, l2), 2); /* 0 banned despite being the max */
    sampler_free(s);

    /* sampling never picks a banned token */
    p = plain(1.0f, 4);
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    s = make(&p, NV);
    int counts[NV];
    const float flat[NV] = {3, 0, 0, 0};
    histogram(s, flat, NV, 20000, counts);
    assert_int_equal(counts[0], 0);
    assert_true(counts[1] > 0 && counts[2] > 0 && counts[3] > 0);
    sampler_free(s);

    /* everything banned: -1, greedy or not */
    ryot_logit_bias all[NV] = {{0, -INFINITY}, {1, -INFINITY}, {2, -INFINITY}, {3, -INFINITY}};
    for (int greedy = 0; greedy < 2; greedy++) {
        p = plain(greedy ? 0.0f : 1.0f, 4);
        p.logit_bias = all;
        p.n_logit_bias = NV;
        p.logprobs = true;
        s = make(&p, NV);
        float l3[NV] = {1, 2, 3, 4};
        assert_int_equal(sampler_sample(s, l3), -1);
        assert_null(sampler_last_logprobs(s));
        sampler_free(s);
    }
}

static void test_logprobs(void **state) {
    (void)state;
    enum { NV = 6 };
    const float l[NV] = {0.5f, 2.0f, -1.0f, 2.0f, 0.0f, 1.0f};
    double ref[NV];
    softmax_ref(l, NV, 1.0, ref); /* temperature does not enter */
    for (int greedy = 0; greedy < 2; greedy++) {
        ryot_sampler_params p = plain(greedy ? 0.0f : 0.3f, 21);
        p.top_k = 2;
        p.logprobs = true;
        p.top_logprobs = 4;
        sampler *s = make(&p, NV);
        assert_null(sampler_last_logprobs(s));
        float buf[NV];
        memcpy(buf, l, sizeof buf);
        int32_t t = sampler_sample(s, buf);
        const sampler_logprobs *lp = sampler_last_logprobs(s);
        assert_non_null(lp);
        assert_int_equal(lp->chosen.token, t);
        assert_float_equal(lp->chosen.logprob, log(ref[t]), 1e-5);
        assert_int_equal(lp->n_top, 4);
        const int32_t order[4] = {1, 3, 5, 0}; /* tie 1/3 -> lower id first */
        for (int i = 0; i < 4; i++) {
            assert_int_equal(lp->top[i].token, order[i]);
            assert_float_equal(lp->top[i].logprob, log(ref[order[i]]), 1e-5);
        }
        sampler_free(s);
    }

    /* top_logprobs beyond the vocab: clipped; the whole distribution sums to 1 */
    ryot_sampler_params p = plain(1.0f, 2);
    p.logprobs = true;
    p.top_logprobs = RYOT_MAX_TOP_LOGPROBS;
    sampler *s = make(&p, NV);
    float buf[NV];
    memcpy(buf, l, sizeof buf);
    sampler_sample(s, buf);
    const sampler_logprobs *lp = sampler_last_logprobs(s);
    assert_int_equal(lp->n_top, NV);
    double sum = 0.0;
    for (int i = 0; i < NV; i++) sum += exp(lp->top[i].logprob);
    assert_float_equal(sum, 1.0, 1e-5);
    sampler_free(s);
}

static void test_invalid_params(void **state) {
    (void)state;
    sampler *s = (sampler *)1;
    ryot_error err = {0};
    ryot_sampler_params p = ryot_sampler_params_default();
    p.top_p = 0.0f;
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);
    assert_null(s);
    assert_non_null(strstr(err.msg, "top_p"));

    p = ryot_sampler_params_default();
    assert_int_equal(sampler_init(&s, &p, 0, &err), RYOT_ERR_INVALID);

    ryot_logit_bias b = {10, 1.0f};
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "logit_bias"));
    b = (ryot_logit_bias){1, INFINITY};
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);

    p = ryot_sampler_params_default();
    p.top_logprobs = 3;
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);
    p.logprobs = true;
    p.top_logprobs = RYOT_MAX_TOP_LOGPROBS + 1;
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);

    p = ryot_sampler_params_default();
    p.repeat_penalty = 0.0f;
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);
    p = ryot_sampler_params_default();
    p.min_p = 1.5f;
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);
    p = ryot_sampler_params_default();
    p.penalty_last_n = -2;
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);
    p = ryot_sampler_params_default();
    p.temperature = NAN;
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_ERR_INVALID);

    /* a random seed is drawn and reported */
    p = ryot_sampler_params_default();
    assert_int_equal(sampler_init(&s, &p, 10, &err), RYOT_OK);
    (void)sampler_seed(s);
    sampler_free(s);
    sampler_free(NULL);
}

/* The default pipeline (top-k 40, top-p, min-p) over a large vocab stays
 * inside the top 40 and is reproducible. */
static void test_defaults_large_vocab(void **state) {
    (void)state;
    enum { NV = 32000 };
    static float l[NV], buf[NV];
    fill_random(l, NV, 77);
    static int32_t rank[NV];
    /* ids of the 40 largest logits */
    for (int i = 0; i < NV; i++) rank[i] = 0;
    for (int k = 0; k < 40; k++) {
        int best = -1;
        for (int i = 0; i < NV; i++)
            if (!rank[i] && (best < 0 || l[i] > l[best])) best = i;
        rank[best] = 1;
    }
    ryot_sampler_params p = ryot_sampler_params_default();
    p.seed = 5;
    sampler *a = make(&p, NV), *b = make(&p, NV);
    for (int i = 0; i < 500; i++) {
        memcpy(buf, l, sizeof buf);
        int32_t t = sampler_sample(a, buf);
        assert_true(t >= 0 && rank[t]);
        memcpy(buf, l, sizeof buf);
        assert_int_equal(sampler_sample(b, buf), t);
    }
    sampler_free(a);
    sampler_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_argmax),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_shared_scratch),
        cmocka_unit_test(test_seed_stream_pinned),
        cmocka_unit_test(test_top_k1_is_greedy),
        cmocka_unit_test(test_top_p_tiny_is_greedy),
        cmocka_unit_test(test_top_p_large_vocab),
        cmocka_unit_test(test_top_k_paths),
        cmocka_unit_test(test_distribution_temperature),
        cmocka_unit_test(test_distribution_top_k),
        cmocka_unit_test(test_draft_keeps_distribution),
        cmocka_unit_test(test_draft_q_keeps_distribution),
        cmocka_unit_test(test_sample_q_reports),
        cmocka_unit_test(test_distribution_top_p),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_defaults_large_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
