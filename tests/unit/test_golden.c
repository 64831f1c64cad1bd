/* Golden test: ryot against llama.cpp on the two default models, teacher
 * forced, at every kernel ISA level this CPU has, alone and in a batch.
 *
 * tests/golden/<model>.json holds llama.cpp's outputs (tests/golden/
 * gen_reference.py, through llama-cpp-python): per prompt the token ids and
 * llama.cpp's greedy continuation with EOS ignored (14 prompts x 32 steps =
 * 448 steps per model), and per step s (the prediction of continuation token
 * s from the prompt and tokens 0..s-1) llama.cpp's top-2 logit margin and its
 * top-10 tokens with their log-probabilities.  ryot is fed the prompt, then
 * llama.cpp's tokens one decode step at a time (teacher forcing: a step where
 * ryot would have chosen another token does not change what it sees next),
 * and each step's logits are scored:
 *   1. tokenization: ryot's prompt ids equal llama.cpp's;
 *   2. argmax: where llama.cpp's top-2 margin is >= HARD_MARGIN, ryot's
 *      argmax (lowest id on ties, as llama.cpp's) is llama.cpp's token, at
 *      every step; at most SOFT_MISS_MAX steps of the model's 448 may differ
 *      where the margin is in [SOFT_MARGIN, HARD_MARGIN); below that, misses
 *      are counted and printed, not failed;
 *   3. top-10 error.  Per step: err_s = max over llama.cpp's top-10 tokens t
 *      of |lp_ryot(t) - lp_llama(t)|, where lp(t) = logit(t) - log(sum over
 *      the vocabulary of exp(logit)) (log-softmax, in double).  Over the
 *      model's steps: the mean of err_s <= TOP10_MEAN_TOL and the
 *      nearest-rank p99 (the ceil(99 n / 100)-th smallest err_s; for n = 448
 *      the 5th largest) <= TOP10_P99_TOL.  tests/golden/sensitivity.py
 *      computes the same figures for llama.cpp against itself;
 *   4. batch invariance: the same teacher-forced runs, all prompts of the
 *      model decoded together in one batch of BATCH_SEQS sequences through
 *      engine_forward (the rest: filler sequences with other prompts,
 *      prefilled in chunks alongside the others' decode tokens, then decoding
 *      their own argmax), give bit-identical logits at every step (compared
 *      by a 64-bit hash of the logits row) to the runs alone;
 *   5. the levels really differ: the reference kernels' logits are not
 *      bitwise those of the best level (else the level was not applied).
 * Perplexity against llama.cpp's (the JSON's "perplexity") is checked by
 * tests/cli/perplexity.sh.
 *
 * Tolerances.  llama.cpp does not agree with itself better than this when
 * only its rounding changes (tests/golden/sensitivity.txt): with an F32
 * instead of F16 KV cache, or flash attention on, its teacher-forced top-10
 * error against its own default is mean 0.27-0.32, p99 0.64-0.93 nats on
 * these models, and argmax flips happen only at small margins.  These small
 * models quantize every activation to 8 bits, so a last-bit difference in a
 * float sum (summation order: SIMD lanes, blocking) flips a rounding to the
 * next code now and then and the following layers carry it on; ryot's own
 * reference and AVX2 kernels differ from each other that way.  A wrong
 * kernel, RoPE, norm or rounding step moves every step by units and breaks
 * the argmax at large margins.
 *
 * ISA levels: engine_new selects kernels with kernels_init(KERNEL_ISA_AUTO),
 * which would put back the best level after a kernels_init(level); RYOT_ISA
 * caps what AUTO selects, so each level is applied through both (and check 5
 * proves it took effect).
 *
 * Under AddressSanitizer (make asan) the scalar reference level runs only the
 * first REF_STEPS steps of each prompt and no batch check: the full ref pass
 * takes minutes there; the optimized build runs everything on every level.
 * Those few steps (under P99_MIN_STEPS) get the argmax and mean rules, not
 * the p99 one: their nearest-rank p99 is their maximum (gemma3's largest
 * error of all 448 ref steps, 1.28 nats against a p99 of 0.87, is at a
 * prompt's second step).
 *
 * The models live outside the repository (scripts/fetch-models.sh); without
 * them the test is skipped, unless CI=true, where it fails. */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/api_internal.h"
#include "engine/engine.h"
#include "kernels/kernels.h"
#include "ryot.h"

#define HARD_MARGIN 1.0
#define SOFT_MARGIN 0.5
#define SOFT_MISS_MAX 1
#define TOP10_MEAN_TOL 0.35
#define TOP10_P99_TOL 1.0
#define P99_MIN_STEPS 100
#define TOP_K 10

#define N_THREADS 2
#define SEQ_POS 128        /* positions a sequence may reach (prompt + continuation) */
#define BATCH_SEQS 16
#define BATCH_TOKENS 512   /* the first batch holds every prompt */
#define FILLER_PROMPT 64   /* filler sequences: prompt length, and its chunk per step */
#define FILLER_CHUNK 16

#ifdef __SANITIZE_ADDRESS__
#define REF_STEPS 4
#define REF_BATCH false
#else
#define REF_STEPS INT_MAX
#define REF_BATCH true
#endif

typedef struct golden_case {
    const char *prompt;
    bool special;
    int32_t *ids;    /* (n_prompt + n_gen) the prompt, then llama.cpp's continuation */
    int n_prompt, n_gen;
    int first_step;  /* index of this case's step 0 among the model's steps */
    double *margin;  /* (n_gen) llama.cpp's top-2 logit margin per step */
    int32_t *top_id; /* (n_gen, TOP_K) llama.cpp's top tokens per step */
    double *top_lp;  /* (n_gen, TOP_K) their log-probabilities */
} golden_case;

typedef struct golden {
    const char *name;
    json_t *json;
    golden_case *cases;
    int n_cases, n_gen, n_steps; /* n_gen: steps per case, the same for all (EOS ignored) */
    bool add_bos;
} golden;

/* Per-level figures of rule 2 and 3. */
typedef struct tf_score {
    int hard, soft, low; /* argmax misses by llama.cpp's margin: >= HARD, [SOFT, HARD), below SOFT */
    int n;               /* steps scored */
    double *err;         /* (n_steps) top-10 error per step */
} tf_score;

static char model_dir[2048];

static const char *model_path(const char *file, char *buf, size_t n) {
    if (strlen(model_dir) + strlen(file) + 2 > n) return NULL;
    strcpy(buf, model_dir);
    strcat(buf, "/");
    strcat(buf, file);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int32_t json_id(json_t *a, size_t i) {
    return (int32_t)json_integer_value(json_array_get(a, i));
}

static void golden_load(const char *name, golden *g) {
    char jpath[512];
    snprintf(jpath, sizeof jpath, "tests/golden/%s", name);
    json_error_t jerr;
    memset(g, 0, sizeof *g);
    g->name = name;
    g->json = json_load_file(jpath, 0, &jerr);
    if (!g->json) fail_msg("cannot read %s: %s (line %d)", jpath, jerr.text, jerr.line);
    g->add_bos = json_is_true(json_object_get(g->json, "add_bos"));
    json_t *jcases = json_object_get(g->json, "cases");
    g->n_cases = (int)json_array_size(jcases);
    assert_true(g->n_cases > 0 && g->n_cases < BATCH_SEQS);
    g->cases = calloc((size_t)g->n_cases, sizeof *g->cases);
    assert_non_null(g->cases);
    size_t ci;
    json_t *cs;
    json_array_foreach(jcases, ci, cs) {
        golden_case *gc = &g->cases[ci];
        json_t *jids = json_object_get(cs, "prompt_ids"), *jgen = json_object_get(cs, "greedy");
        json_t *jmargin = json_object_get(cs, "top2_margin"), *jtop = json_object_get(cs, "top10_logprob");
        gc->prompt = json_string_value(json_object_get(cs, "prompt"));
        gc->special = json_is_true(json_object_get(cs, "special"));
        gc->n_prompt = (int)json_array_size(jids);
        gc->n_gen = (int)json_array_size(jgen);
        assert_non_null(gc->prompt);
        assert_true(gc->n_prompt > 0 && gc->n_gen > 0 && gc->n_prompt + gc->n_gen <= SEQ_POS);
        assert_int_equal(json_array_size(jmargin), gc->n_gen);
        assert_int_equal(json_array_size(jtop), gc->n_gen);
        if (ci == 0) g->n_gen = gc->n_gen;
        assert_int_equal(gc->n_gen, g->n_gen);
        gc->first_step = g->n_steps;
        g->n_steps += gc->n_gen;
        gc->ids = malloc((size_t)(gc->n_prompt + gc->n_gen) * sizeof *gc->ids);
        gc->margin = malloc((size_t)gc->n_gen * sizeof *gc->margin);
        gc->top_id = malloc((size_t)gc->n_gen * TOP_K * sizeof *gc->top_id);
        gc->top_lp = malloc((size_t)gc->n_gen * TOP_K * sizeof *gc->top_lp);
        assert_true(gc->ids && gc->margin && gc->top_id && gc->top_lp);
        for (int i = 0; i < gc->n_prompt; i++) gc->ids[i] = json_id(jids, (size_t)i);
        for (int s = 0; s < gc->n_gen; s++) {
            gc->ids[gc->n_prompt + s] = json_id(jgen, (size_t)s);
            gc->margin[s] = json_real_value(json_array_get(jmargin, (size_t)s));
            json_t *step = json_array_get(jtop, (size_t)s);
            assert_int_equal(json_array_size(step), TOP_K);
            for (int k = 0; k < TOP_K; k++) {
                json_t *pair = json_array_get(step, (size_t)k);
                gc->top_id[s * TOP_K + k] = json_id(pair, 0);
                gc->top_lp[s * TOP_K + k] = json_number_value(json_array_get(pair, 1));
            }
        }
    }
}

static void golden_free(golden *g) {
    for (int i = 0; i < g->n_cases; i++) {
        free(g->cases[i].ids);
        free(g->cases[i].margin);
        free(g->cases[i].top_id);
        free(g->cases[i].top_lp);
    }
    free(g->cases);
    json_decref(g->json);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* FNV-1a over the row's bytes: equal rows hash equal, and a 64-bit collision
 * between two different rows is not a practical concern. */
static uint64_t logits_hash(const float *x, int n) {
    const unsigned char *p = (const unsigned char *)x;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < (size_t)n * sizeof *x; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Rules 2 and 3 for step s of case ci. */
static void score_step(const golden *g, int ci, int s, const float *lg, int nv, tf_score *sc, const char *label) {
    const golden_case *gc = &g->cases[ci];
    const int want = gc->ids[gc->n_prompt + s], got = argmax(lg, nv);
    if (got != want) {
        const double margin = gc->margin[s];
        const char *kind = margin >= HARD_MARGIN ? "FAIL" : margin >= SOFT_MARGIN ? "SOFT" : "LOW ";
        if (margin >= HARD_MARGIN)
            sc->hard++;
        else if (margin >= SOFT_MARGIN)
            sc->soft++;
        else
            sc->low++;
        print_message("%s %s %s case %d step %d: argmax %d instead of llama.cpp's %d (its top-2 margin %.4f, "
                      "ryot's logits %.4f vs %.4f)\n",
                      kind, g->name, label, ci, s, got, want, margin, lg[got], lg[want]);
    }
    double mx = lg[0];
    for (int v = 1; v < nv; v++)
        if (lg[v] > mx) mx = lg[v];
    double sum = 0;
    for (int v = 0; v < nv; v++) sum += exp(lg[v] - mx);
    const double lse = mx + log(sum);
    double e = 0;
    for (int k = 0; k < TOP_K; k++) {
        const int id = gc->top_id[s * TOP_K + k];
        assert_true(id >= 0 && id < nv);
        const double d = fabs(lg[id] - lse - gc->top_lp[s * TOP_K + k]);
        if (d > e) e = d;
    }
    sc->err[sc->n++] = e;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Prints the level's figures; returns the number of rules broken. */
static int score_judge(const golden *g, tf_score *sc, const char *label, double secs) {
    assert_true(sc->n > 0);
    double sum = 0;
    for (int i = 0; i < sc->n; i++) sum += sc->err[i];
    const double mean = sum / sc->n;
    qsort(sc->err, (size_t)sc->n, sizeof *sc->err, cmp_double);
    const double p99 = sc->err[(99 * sc->n + 99) / 100 - 1], mx = sc->err[sc->n - 1];
    /* below P99_MIN_STEPS steps the nearest-rank p99 is the maximum, which
     * the bound is not for (the ASan build's sub-sampled ref level) */
    const bool p99_rule = sc->n >= P99_MIN_STEPS;
    print_message("%s %s: %d steps, argmax misses: %d at margin >= %.1f, %d in [%.1f, %.1f) (at most %d), %d below; "
                  "top-10 error mean %.4f (<= %.2f), p99 %.4f (%s %.2f), max %.4f; %.1f s\n",
                  g->name, label, sc->n, sc->hard, HARD_MARGIN, sc->soft, SOFT_MARGIN, HARD_MARGIN, SOFT_MISS_MAX,
                  sc->low, mean, TOP10_MEAN_TOL, p99, p99_rule ? "<=" : "not judged below 100 steps; bound",
                  TOP10_P99_TOL, mx, secs);
    int broken = (sc->hard > 0) + (sc->soft > SOFT_MISS_MAX) + (mean > TOP10_MEAN_TOL) +
                 (p99_rule && p99 > TOP10_P99_TOL);
    if (broken) print_message("FAIL %s %s: %d of the teacher-forced rules broken\n", g->name, label, broken);
    return broken;
}

/* Each prompt alone through the public API: prompt prefill, then one decode
 * per continuation token.  hash[first_step + s] receives each row's hash. */
static int run_solo(const golden *g, const ryot_model *m, int max_steps, uint64_t *hash, const char *label) {
    const int nv = ryot_n_vocab(m);
    ryot_error err = {0};
    ryot_context *c = NULL;
    ryot_context_params cp = ryot_context_default_params();
    cp.n_ctx = SEQ_POS;
    cp.n_threads = N_THREADS;
    if (ryot_context_new(m, &cp, &c, &err)) fail_msg("context: %s", err.msg);
    tf_score sc = {.err = malloc((size_t)g->n_steps * sizeof(double))};
    assert_non_null(sc.err);
    const double t0 = now_s();
    for (int ci = 0; ci < g->n_cases; ci++) {
        const golden_case *gc = &g->cases[ci];
        const int n_steps = gc->n_gen < max_steps ? gc->n_gen : max_steps;
        for (int s = 0; s < n_steps; s++) {
            ryot_status st = s == 0 ? ryot_decode(c, gc->ids, gc->n_prompt, 0, 1, &err)
                                    : ryot_decode(c, &gc->ids[gc->n_prompt + s - 1], 1, gc->n_prompt + s - 1, 1, &err);
            if (st) fail_msg("decode: %s", err.msg);
            const float *lg = ryot_get_logits(c, 0);
            assert_non_null(lg);
            score_step(g, ci, s, lg, nv, &sc, label);
            hash[gc->first_step + s] = logits_hash(lg, nv);
        }
    }
    const int broken = score_judge(g, &sc, label, now_s() - t0);
    free(sc.err);
    ryot_context_free(c);
    return broken;
}

typedef struct batch_seq {
    int32_t toks[SEQ_POS]; /* fillers: prompt, then their own argmax tokens */
    int n_prompt, n_done;  /* fillers: prompt length; positions whose KV is computed */
    int32_t blocks[SEQ_POS / 16];
    int n_blocks;
} batch_seq;

/* Rule 4: every case teacher-forced inside one batch of BATCH_SEQS
 * sequences, each row's hash against the solo run's.  Returns the number of
 * rows that differ. */
static int run_batch(const golden *g, const ryot_model *rm, const uint64_t *solo_hash, const char *label) {
    const model *m = ryot_model_internal(rm);
    const int nv = m->hp.n_vocab, nc = g->n_cases;
    engine_params p = engine_params_default(m);
    p.n_ctx = BATCH_TOKENS;
    p.n_batch = BATCH_TOKENS;
    p.n_threads = N_THREADS;
    p.max_seqs = BATCH_SEQS;
    p.n_logits_max = BATCH_SEQS;
    const int per = (SEQ_POS + p.kv_block_size - 1) / p.kv_block_size;
    assert_true(per <= SEQ_POS / 16);
    p.kv_blocks = BATCH_SEQS * per;
    engine *e = NULL;
    ryot_error err = {0};
    if (engine_new(m, &p, &e, &err)) fail_msg("engine: %s", err.msg);

    batch_seq sq[BATCH_SEQS];
    for (int q = 0; q < BATCH_SEQS; q++) {
        batch_seq *b = &sq[q];
        memset(b, 0, sizeof *b);
        b->n_blocks = per;
        for (int i = 0; i < per; i++) b->blocks[i] = (int32_t)((per - 1 - i) * BATCH_SEQS + q); /* interleaved */
        if (q < nc) continue;
        /* a filler's prompt: the cases' prompts, from the last backwards */
        for (int k = nc - 1 - (q - nc) % nc; b->n_prompt < FILLER_PROMPT; k = (k + nc - 1) % nc) {
            const golden_case *gc = &g->cases[k];
            for (int i = 0; i < gc->n_prompt && b->n_prompt < FILLER_PROMPT; i++) b->toks[b->n_prompt++] = gc->ids[i];
        }
    }
    int32_t toks[BATCH_TOKENS];
    engine_seq es[BATCH_SEQS];
    int differ = 0;
    for (int step = 0; step < g->n_gen; step++) {
        int n = 0;
        for (int q = 0; q < BATCH_SEQS; q++) {
            batch_seq *b = &sq[q];
            const int32_t *src;
            int pos, take, n_logits = 1;
            if (q < nc) {
                const golden_case *gc = &g->cases[q];
                if (step == 0) {
                    src = gc->ids, pos = 0, take = gc->n_prompt;
                } else {
                    pos = gc->n_prompt + step - 1;
                    src = &gc->ids[pos], take = 1;
                }
            } else {
                pos = b->n_done, src = &b->toks[pos];
                take = b->n_done < b->n_prompt ? b->n_prompt - b->n_done : 1;
                if (take > FILLER_CHUNK) take = FILLER_CHUNK;
                n_logits = pos + take >= b->n_prompt;
                assert_true(pos + take < SEQ_POS);
            }
            assert_true(n + take <= BATCH_TOKENS);
            memcpy(toks + n, src, (size_t)take * sizeof *toks);
            es[q] = (engine_seq){.blocks = b->blocks, .n_blocks = b->n_blocks, .pos = pos, .n = take,
                                 .n_logits = n_logits};
            n += take;
        }
        if (engine_forward(e, toks, n, es, BATCH_SEQS, &err)) fail_msg("forward: %s", err.msg);
        for (int q = nc; q < BATCH_SEQS; q++) sq[q].n_done = es[q].pos + es[q].n;
        for (int q = 0, row = 0; q < BATCH_SEQS; q++) {
            if (!es[q].n_logits) continue;
            const float *lg = engine_logits(e, row++);
            if (q >= nc) {
                sq[q].toks[sq[q].n_done] = argmax(lg, nv); /* a filler decodes its own argmax */
                continue;
            }
            const golden_case *gc = &g->cases[q];
            if (logits_hash(lg, nv) != solo_hash[gc->first_step + step] && differ++ < 8)
                print_message("FAIL %s %s case %d step %d: logits in the batch of %d differ from the solo run's\n",
                              g->name, label, q, step, BATCH_SEQS);
        }
    }
    print_message("%s %s batch of %d: %d of %d rows differ from the solo runs\n", g->name, label, BATCH_SEQS, differ,
                  g->n_steps);
    engine_free(e);
    return differ;
}

/* Makes `isa` the level every context created next computes with (see the
 * header: kernels_init alone does not survive engine_new). */
static kernel_isa isa_apply(kernel_isa isa) {
    setenv("RYOT_ISA", kernel_isa_name(isa), 1);
    return kernels_init(isa);
}

static void run_golden(const char *json_name) {
    golden g;
    golden_load(json_name, &g);
    char mbuf[4096 + 64];
    const char *file = json_string_value(json_object_get(g.json, "model"));
    assert_non_null(file);
    const char *path = model_path(file, mbuf, sizeof mbuf);
    if (!path) {
        golden_free(&g);
        const char *ci = getenv("CI");
        if (ci && !strcmp(ci, "true")) fail_msg("model %s missing in %s (run scripts/fetch-models.sh)", file, model_dir);
        print_message("SKIP %s: model %s not in %s\n", json_name, file, model_dir);
        skip();
    }
    ryot_error err = {0};
    ryot_model *m = NULL;
    if (ryot_model_load(path, &m, &err)) fail_msg("load %s: %s", path, err.msg);

    /* 1. tokenization */
    int failures = 0;
    for (int ci = 0; ci < g.n_cases; ci++) {
        const golden_case *gc = &g.cases[ci];
        ryot_token *ids = NULL;
        int n = 0;
        unsigned flags = (g.add_bos ? RYOT_TOK_ADD_BOS : 0) | (gc->special ? RYOT_TOK_SPECIAL : 0);
        if (ryot_tokenize(m, gc->prompt, strlen(gc->prompt), flags, &ids, &n, &err)) fail_msg("tokenize: %s", err.msg);
        bool ok = n == gc->n_prompt;
        for (int i = 0; ok && i < n; i++) ok = ids[i] == gc->ids[i];
        if (!ok) {
            print_message("FAIL %s case %d: prompt tokens differ from llama.cpp's (%d vs %d ids)\n", json_name, ci, n,
                          gc->n_prompt);
            failures++;
        }
        free(ids);
    }

    /* 2-5 per level; the prompts are evaluated as llama.cpp's ids */
    const char *env = getenv("RYOT_ISA");
    char *saved_env = env ? strdup(env) : NULL;
    const kernel_isa best = kernels_best_isa();
    uint64_t *hash[KERNEL_ISA_AVX512 + 1] = {0};
    for (kernel_isa isa = KERNEL_ISA_REF; isa <= best; isa++) {
        if (isa_apply(isa) != isa) continue; /* a level between two the CPU has, but not itself */
        const char *label = kernel_isa_name(isa);
        hash[isa] = calloc((size_t)g.n_steps, sizeof *hash[isa]);
        assert_non_null(hash[isa]);
        failures += run_solo(&g, m, isa == KERNEL_ISA_REF ? REF_STEPS : INT_MAX, hash[isa], label);
        if (isa != KERNEL_ISA_REF || REF_BATCH) {
            const double t0 = now_s();
            failures += run_batch(&g, m, hash[isa], label) > 0;
            print_message("%s %s batch check: %.1f s\n", json_name, label, now_s() - t0);
        }
    }
    if (saved_env)
        setenv("RYOT_ISA", saved_env, 1);
    else
        unsetenv("RYOT_ISA");
    free(saved_env);
    kernels_init(KERNEL_ISA_AUTO);

    /* 5. the reference level computed differently from the best one */
    if (best != KERNEL_ISA_REF && hash[KERNEL_ISA_REF] && hash[best]) {
        int same = 0, both = 0;
        for (int i = 0; i < g.n_steps; i++) {
            if (!hash[KERNEL_ISA_REF][i]) continue;
            both++;
            same += hash[KERNEL_ISA_REF][i] == hash[best][i];
        }
        if (same == both) {
            print_message("FAIL %s: ref and %s logits are bitwise equal on all %d steps: the level was not applied\n",
                          json_name, kernel_isa_name(best), both);
            failures++;
        }
    }
    for (int i = 0; i <= KERNEL_ISA_AVX512; i++) free(hash[i]);
    ryot_model_free(m);
    golden_free(&g);
    assert_int_equal(failures, 0);
}

static void test_golden_smollm2(void **state) {
    (void)state;
    run_golden("smollm2.json");
}

static void test_golden_gemma3(void **state) {
    (void)state;
    run_golden("gemma3.json");
}

int main(void) {
    const char *d = getenv("RYOT_MODEL_DIR");
    const char *home = getenv("HOME");
    if (d && *d)
        snprintf(model_dir, sizeof model_dir, "%s", d);
    else
        snprintf(model_dir, sizeof model_dir, "%s/.cache/ryot/models", home ? home : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_smollm2),
        cmocka_unit_test(test_golden_gemma3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
