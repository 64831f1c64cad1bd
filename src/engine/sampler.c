/* Token sampler; the pipeline and its contracts are described in sampler.h. */
#include "engine/sampler.h"

#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Largest penalty window accepted: the ring buffer is allocated at init. */
#define SAMPLER_MAX_PENALTY_WINDOW (1 << 24)

typedef struct cand {
    int32_t id;
    float logit; /* after bias, penalties and (from step 5) temperature */
    float p;     /* unnormalized probability exp(logit - max) */
} cand;

struct sampler {
    ryot_sampler_params p;        /* p.logit_bias points at `bias` below */
    int32_t n_vocab;
    ryot_logit_bias *bias;/* (n_logit_bias) */
    cand *cand;              /* (n_vocab) scratch */
    bool cand_shared;        /* cand belongs to the caller (sampler_share_scratch) */

    /* penalty history: counts per token in the window, the set of tokens with
     * count > 0 (so that penalties cost O(window), not O(n_vocab)), and a ring
     * of the window's tokens to know what leaves it */
    int32_t *count;          /* (n_vocab) */
    int32_t *active;         /* (n_vocab) ids with count > 0, first n_active valid */
    int32_t *active_pos;     /* (n_vocab) index into active; read only where count > 0, so never initialized
                              * in full (its pages stay untouched until used) */
    int32_t n_active;
    int32_t *ring;           /* (ring_cap) last penalty_last_n tokens; NULL when the window is 0 or -1 */
    int32_t ring_cap, ring_len, ring_head; /* head: oldest entry */

    uint64_t seed;
    ryot_rng rng;

    sampler_logprobs lp;
    bool lp_valid;
};

/* ---------------------------------------------------------------- seeding */

static void rng_seed(sampler *s) { ryot_rng_seed(&s->rng, s->seed); }

static uint64_t draw_seed(const void *salt) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)getpid() << 32;
    x ^= (uint64_t)(uintptr_t)salt;
    return ryot_splitmix64(&x);
}

/* ---------------------------------------------------------------- ordering
 * A strict total order: higher logit first, then lower id.  Every selection
 * and sort below uses it, so results do not depend on the algorithm. */

static inline bool cand_before(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void cand_swap(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Moves the median of a[lo], a[mid], a[hi] to a[hi] (the pivot slot). */
static void median3_to_end(cand *a, int64_t lo, int64_t hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (cand_before(&a[mid], &a[lo])) cand_swap(&a[mid], &a[lo]);
    if (cand_before(&a[hi], &a[lo])) cand_swap(&a[hi], &a[lo]);
    if (cand_before(&a[hi], &a[mid])) cand_swap(&a[hi], &a[mid]);
    /* now a[lo] <= a[mid] <= a[hi] in the order; the median is a[mid] */
    cand_swap(&a[mid], &a[hi]);
}

/* Lomuto partition around a[hi]; returns the pivot's final index. */
static int64_t partition(cand *a, int64_t lo, int64_t hi) {
    median3_to_end(a, lo, hi);
    cand pivot = a[hi];
    int64_t store = lo;
    for (int64_t i = lo; i < hi; i++)
        if (cand_before(&a[i], &pivot)) cand_swap(&a[i], &a[store++]);
    cand_swap(&a[store], &a[hi]);
    return store;
}

/* Rearranges a[0..n) so that a[0..k) holds the k first elements in the order
 * (unsorted).  0 < k < n. */
static void select_top(cand *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t p = partition(a, lo, hi);
        if (p == k - 1 || p == k) return;
        if (p < k) lo = p + 1;
        else hi = p - 1;
    }
}

/* Rearranges a[0..n) so that a[0..k) holds the k first elements in the order
 * (unsorted), k the smallest count whose mass (sum of .p) reaches target;
 * returns k (n when rounding leaves the whole mass short of target). */
static int64_t select_mass(cand *a, int64_t n, double target) {
    int64_t lo = 0, hi = n - 1;
    double acc = 0.0; /* mass of a[0..lo), all ahead of a[lo..n) in the order */
    while (lo < hi) {
        int64_t p = partition(a, lo, hi);
        double before = 0.0;
        for (int64_t i = lo; i < p; i++) before += a[i].p;
        if (acc + before >= target) {
            hi = p - 1; /* p > lo here, since acc < target */
        } else if (acc + before + a[p].p >= target) {
            return p + 1;
        } else {
            acc += before + a[p].p;
            lo = p + 1;
        }
    }
    return lo < n ? lo + 1 : n;
}

/* ---------------------------------------------------------------- params */

ryot_sampler_params ryot_sampler_params_default(void) {
    return (ryot_sampler_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = RYOT_SEED_RANDOM,
        .logit_bias = NULL,
        .n_logit_bias = 0,
        .logprobs = false,
        .top_logprobs = 0,
    };
}

static ryot_status check_params(const ryot_sampler_params *p, int32_t n_vocab, ryot_error *err) {
    if (n_vocab <= 0) return ryot_fail(err, RYOT_ERR_INVALID, "sampler: n_vocab %d must be > 0", n_vocab);
    if (isnan(p->temperature) || isinf(p->temperature))
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: temperature %g is not finite", p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: top_p %g is outside (0, 1]", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: min_p %g is outside [0, 1]", p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: repeat_penalty %g must be finite and > 0",
                         p->repeat_penalty);
    if (!isfinite(p->frequency_penalty))
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: frequency_penalty is not finite");
    if (!isfinite(p->presence_penalty))
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: presence_penalty is not finite");
    if (p->penalty_last_n < -1 || p->penalty_last_n > SAMPLER_MAX_PENALTY_WINDOW)
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: penalty_last_n %d is outside [-1, %d]",
                         p->penalty_last_n, SAMPLER_MAX_PENALTY_WINDOW);
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: n_logit_bias %d without a bias array", p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const ryot_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return ryot_fail(err, RYOT_ERR_INVALID, "sampler: logit_bias[%d] token %d is outside the vocab (%d)",
                             i, b->token, n_vocab);
        if (isnan(b->bias) || b->bias == INFINITY)
            return ryot_fail(err, RYOT_ERR_INVALID, "sampler: logit_bias[%d] (token %d) is %g: must be finite or -inf",
                             i, b->token, b->bias);
    }
    if (p->top_logprobs < 0 || p->top_logprobs > RYOT_MAX_TOP_LOGPROBS)
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: top_logprobs %d is outside [0, %d]", p->top_logprobs,
                         RYOT_MAX_TOP_LOGPROBS);
    if (p->top_logprobs > 0 && !p->logprobs)
        return ryot_fail(err, RYOT_ERR_INVALID, "sampler: top_logprobs needs logprobs");
    return RYOT_OK;
}

/* ---------------------------------------------------------------- life cycle */

ryot_status sampler_init(sampler **out, const ryot_sampler_params *p, int32_t n_vocab, ryot_error *err) {
    *out = NULL;
    ryot_status st = check_params(p, n_vocab, err);
    if (st != RYOT_OK) return st;

    sampler *s = calloc(1, sizeof *s);
    if (!s) return ryot_fail(err, RYOT_ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    size_t nv = (size_t)n_vocab;
    s->cand = malloc(nv * sizeof *s->cand);
    s->count = calloc(nv, sizeof *s->count);
    s->active = malloc(nv * sizeof *s->active);
    s->active_pos = malloc(nv * sizeof *s->active_pos);
    if (p->n_logit_bias > 0) s->bias = malloc((size_t)p->n_logit_bias * sizeof *s->bias);
    if (p->penalty_last_n > 0) {
        s->ring_cap = p->penalty_last_n;
        s->ring = malloc((size_t)s->ring_cap * sizeof *s->ring);
    }
    if (!s->cand || !s->count || !s->active || !s->active_pos || (p->n_logit_bias > 0 && !s->bias) ||
        (s->ring_cap > 0 && !s->ring)) {
        sampler_free(s);
        return ryot_fail(err, RYOT_ERR_NOMEM, "sampler: out of memory for a vocab of %d", n_vocab);
    }
    if (p->n_logit_bias > 0) memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
    s->p.logit_bias = s->bias;
    s->seed = p->seed == RYOT_SEED_RANDOM ? draw_seed(s) : p->seed;
    rng_seed(s);
    *out = s;
    return RYOT_OK;
}

size_t sampler_scratch_size(int32_t n_vocab) { return (size_t)(n_vocab > 0 ? n_vocab : 1) * sizeof(cand); }

void sampler_share_scratch(sampler *s, void *scratch) {
    if (!s->cand_shared) free(s->cand);
    s->cand = scratch;
    s->cand_shared = true;
}

void sampler_free(sampler *s) {
    if (!s) return;
    if (!s->cand_shared) free(s->cand);
    free(s->count);
    free(s->active);
    free(s->active_pos);
    free(s->bias);
    free(s->ring);
    free(s);
}

void sampler_reset(sampler *s) {
    for (int32_t i = 0; i < s->n_active; i++) {
        int32_t t = s->active[i];
        s->count[t] = 0;
        s->active_pos[t] = -1;
    }
    s->n_active = 0;
    s->ring_len = s->ring_head = 0;
    s->lp_valid = false;
    rng_seed(s);
}

uint64_t sampler_seed(const sampler *s) { return s->seed; }

/* ---------------------------------------------------------------- history */

static void count_inc(sampler *s, int32_t t) {
    if (s->count[t]++ == 0) {
        s->active_pos[t] = s->n_active;
        s->active[s->n_active++] = t;
    }
}

static void count_dec(sampler *s, int32_t t) {
    RYOT_ASSERT(s->count[t] > 0);
    if (--s->count[t] == 0) {
        int32_t pos = s->active_pos[t];
        int32_t last = s->active[--s->n_active];
        s->active[pos] = last;
        s->active_pos[last] = pos;
        s->active_pos[t] = -1;
    }
}

void sampler_accept(sampler *s, int32_t token) {
    if (token < 0 || token >= s->n_vocab || s->p.penalty_last_n == 0) return;
    if (s->p.penalty_last_n > 0) {
        if (s->ring_len == s->ring_cap) {
            count_dec(s, s->ring[s->ring_head]);
            s->ring[s->ring_head] = token;
            s->ring_head = (s->ring_head + 1) % s->ring_cap;
        } else {
            s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = token;
            s->ring_len++;
        }
    }
    count_inc(s, token);
}

/* ---------------------------------------------------------------- pipeline */

void sampler_apply_penalties(sampler *s, float *logits) {
    for (int32_t i = 0; i < s->p.n_logit_bias; i++) logits[s->bias[i].token] += s->bias[i].bias;

    const float r = s->p.repeat_penalty, f = s->p.frequency_penalty, pr = s->p.presence_penalty;
    if (r == 1.0f && f == 0.0f && pr == 0.0f) return;
    for (int32_t i = 0; i < s->n_active; i++) {
        int32_t t = s->active[i];
        float l = logits[t];
        if (r != 1.0f) l = l > 0.0f ? l / r : l * r;
        l -= (float)s->count[t] * f + pr; /* count > 0 for every active token */
        logits[t] = l;
    }
}

/* Log-softmax of logits[0..n) (NaN counts as -inf); fills lp->top with the
 * `want` best and lp->n_top, not lp->chosen, and returns the log-sum-exp. */
static double row_logprobs(const float *logits, int32_t n, int32_t want, sampler_logprobs *lp) {
    float max = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    if (max > -INFINITY)
        for (int32_t i = 0; i < n; i++)
            if (logits[i] > -INFINITY) sum += expf(logits[i] - max);
    double lse = (double)max + log(sum);

    if (want > n) want = n;
    sampler_token_logprob *top = lp->top;
    int32_t nt = 0;
    if (want > 0) {
        /* keep the `want` best (logit desc, id asc) in top[], sorted; ids come in
         * ascending order, so an equal logit never displaces an earlier one */
        for (int32_t i = 0; i < n; i++) {
            float l = isnan(logits[i]) ? -INFINITY : logits[i];
            if (nt == want && !(l > top[nt - 1].logprob)) continue;
            int32_t j = nt < want ? nt++ : nt - 1;
            while (j > 0 && l > top[j - 1].logprob) {
                top[j] = top[j - 1];
                j--;
            }
            top[j] = (sampler_token_logprob){i, l};
        }
        for (int32_t j = 0; j < nt; j++) top[j].logprob = (float)((double)top[j].logprob - lse);
    }
    lp->n_top = nt;
    return lse;
}

/* The shaped logits' log-softmax into s->lp (all but the chosen token). */
static double compute_logprobs(sampler *s, const float *logits) {
    return row_logprobs(logits, s->n_vocab, s->p.top_logprobs, &s->lp);
}

void sampler_row_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t n_top, sampler_logprobs *out) {
    if (n_top > RYOT_MAX_TOP_LOGPROBS) n_top = RYOT_MAX_TOP_LOGPROBS;
    const double lse = row_logprobs(logits, n_vocab, n_top < 0 ? 0 : n_top, out);
    const float l = token >= 0 && token < n_vocab && !isnan(logits[token]) ? logits[token] : -INFINITY;
    out->chosen = (sampler_token_logprob){token, (float)((double)l - lse)};
}

static int32_t argmax(const float *logits, int32_t n) {
    int32_t best = -1;
    float bl = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > bl) { /* strict: ties keep the lower id; NaN never wins */
            bl = logits[i];
            best = i;
        }
    return best;
}

/* Heap of the k first candidates in the order, its root the last of them. */
static void heap_sift_down(cand *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cand_before(&h[w], &h[l])) w = l;
        if (r < n && cand_before(&h[w], &h[r])) w = r;
        if (w == i) return;
        cand_swap(&h[i], &h[w]);
        i = w;
    }
}

/* Top k of the finite logits in one pass: a candidate enters only if it beats
 * the heap's root, so for k << n_vocab this costs ~n comparisons and never
 * writes the full candidate array.  Returns the count kept (< k when fewer
 * logits are finite). */
static int64_t top_k_heap(cand *h, const float *logits, int32_t n, int64_t k) {
    int64_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        float l = logits[i];
        if (!isfinite(l)) continue;
        cand x = {i, l, 0.0f};
        if (m < k) {
            /* sift up */
            int64_t j = m++;
            while (j > 0 && cand_before(&h[(j - 1) / 2], &x)) {
                h[j] = h[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            h[j] = x;
        } else if (cand_before(&x, &h[0])) {
            h[0] = x;
            heap_sift_down(h, m, 0);
        }
    }
    return m;
}

/* Above this k, copying all candidates and selecting is cheaper than the heap. */
#define TOP_K_HEAP_MAX 4096

/* q(id) of a draft distribution; NULL: one-hot at draft. */
static double draft_q(const float *q, int32_t draft, int32_t id) {
    return q ? (double)q[id] : id == draft ? 1.0 : 0.0;
}

/* Steps 4-9 over the finite logits; returns the token.  draft >= 0: the
 * rejection step of speculative decoding (see sampler_sample_draft; q NULL:
 * one-hot at draft) replaces the plain draw of step 9.  q_out: the kept
 * distribution, normalized, is written there (n_vocab floats). */
static int32_t sample_dist(sampler *s, const float *logits, int32_t draft, const float *q, float *q_out) {
    cand *c = s->cand;
    int64_t m = 0;
    const int64_t k = s->p.top_k;

    /* 4. top-k */
    if (k > 0 && k <= TOP_K_HEAP_MAX && k < s->n_vocab) {
        m = top_k_heap(c, logits, s->n_vocab, k);
    } else {
        for (int32_t i = 0; i < s->n_vocab; i++)
            if (isfinite(logits[i])) c[m++] = (cand){i, logits[i], 0.0f};
        if (k > 0 && k < m) {
            select_top(c, m, k);
            m = k;
        }
    }
    if (m == 0) return -1;

    /* 5. temperature, 6. softmax (unnormalized: the max gets p = 1) */
    const float t = s->p.temperature;
    float max = -INFINITY;
    for (int64_t i = 0; i < m; i++) {
        c[i].logit /= t;
        if (c[i].logit > max) max = c[i].logit;
    }
    double total = 0.0;
    for (int64_t i = 0; i < m; i++) {
        c[i].p = expf(c[i].logit - max);
        total += c[i].p;
    }

    /* 7. top-p: the smallest prefix in the order whose mass reaches p, found
     * by selection (expected O(m)), so the kept tokens are not sorted */
    if (s->p.top_p < 1.0f) {
        m = select_mass(c, m, (double)s->p.top_p * total);
        total = 0.0;
        for (int64_t i = 0; i < m; i++) total += c[i].p;
    }

    /* 8. min-p: p_i / p_max >= min_p, and p_max is 1 here (the max is always kept) */
    if (s->p.min_p > 0.0f) {
        const float thr = s->p.min_p;
        int64_t k = 0;
        total = 0.0;
        for (int64_t i = 0; i < m; i++)
            if (c[i].p >= thr) {
                c[k++] = c[i];
                total += c[i].p;
            }
        m = k;
    }

    if (q_out) {
        memset(q_out, 0, (size_t)s->n_vocab * sizeof *q_out);
        for (int64_t i = 0; i < m; i++) q_out[c[i].id] = (float)(c[i].p / total);
    }

    /* 9'. speculative sampling: accept the draft x with probability
     * min(1, p(x) / q(x)); else draw from the residual max(p - q, 0),
     * renormalized.  Then P(token = y) = min(p, q)(y) + (1 - sum min(p, q))
     * * max(p - q, 0)(y) / sum max(p - q, 0) = p(y). */
    if (draft >= 0) {
        double px = 0.0;
        for (int64_t i = 0; i < m; i++)
            if (c[i].id == draft) px = c[i].p / total;
        const double qx = q ? (double)q[draft] : 1.0;
        if (px > 0.0 && ryot_rng_uniform(&s->rng) * qx < px) return draft;
        double rest = 0.0;
        for (int64_t i = 0; i < m; i++) {
            const double w = c[i].p / total - draft_q(q, draft, c[i].id);
            if (w > 0.0) rest += w;
        }
        if (rest > 0.0) { /* else p == q up to rounding: a draw from p is right */
            double sum = 0.0;
            for (int64_t i = 0; i < m; i++) {
                const double w = c[i].p / total - draft_q(q, draft, c[i].id);
                c[i].p = w > 0.0 ? (float)w : 0.0f;
                sum += c[i].p;
            }
            total = sum;
        }
    }

    /* 9. one draw */
    double r = ryot_rng_uniform(&s->rng) * total;
    double cum = 0.0;
    for (int64_t i = 0; i < m; i++) {
        cum += c[i].p;
        if (r < cum) return c[i].id;
    }
    return c[m - 1].id; /* r within rounding of total */
}

static int32_t sample_full(sampler *s, float *logits, int32_t draft, const float *q, float *q_out) {
    s->lp_valid = false;
    sampler_apply_penalties(s, logits);
    double lse = 0.0;
    if (s->p.logprobs) lse = compute_logprobs(s, logits);

    int32_t tok;
    if (s->p.temperature <= 0.0f) {
        tok = argmax(logits, s->n_vocab);
        if (q_out) {
            memset(q_out, 0, (size_t)s->n_vocab * sizeof *q_out);
            if (tok >= 0) q_out[tok] = 1.0f;
        }
    } else {
        tok = sample_dist(s, logits, draft, q, q_out);
    }
    if (tok < 0) return -1;
    if (s->p.logprobs) {
        s->lp.chosen = (sampler_token_logprob){tok, (float)((double)logits[tok] - lse)};
        s->lp_valid = true;
    }
    return tok;
}

int32_t sampler_sample(sampler *s, float *logits) { return sample_full(s, logits, -1, NULL, NULL); }

int32_t sampler_sample_draft(sampler *s, float *logits, int32_t draft, const float *q) {
    return sample_full(s, logits, draft, q, NULL);
}

int32_t sampler_sample_q(sampler *s, float *logits, float *q_out) { return sample_full(s, logits, -1, NULL, q_out); }

const sampler_logprobs *sampler_last_logprobs(const sampler *s) { return s->lp_valid ? &s->lp : NULL; }
