/* Model loading, ops and the forward pass on tiny random-weight models
 * (tests/unit/common/tiny_model.c).
 *
 * Tolerances, named once:
 *   REF_TOL      engine (F32 weights, F32 activations, F16 KV cache) against a
 *                double-precision forward written here from the architecture
 *                description; both round where llama.cpp rounds to F16 (K/V,
 *                Q before Q.K, the attention's P.V accumulator, GELU in and
 *                out), so what is left is float vs double accumulation plus
 *                the occasional F16 rounding it flips (~1e-3 of the spread).
 *   BATCH_TOL    one prompt batch vs the same tokens one at a time, with
 *                quantized weights: multi-row kernels may sum in another
 *                order than single-row ones, relative to the logit spread.
 *   ATTN_TOL     online-softmax attention vs a double full-softmax reference
 *                on random O(1) data: the engine accumulates P.V in F16 (as
 *                llama.cpp does), one F16 rounding (2^-11 relative) per key,
 *                so over up to ~500 keys the output may be a few 1e-4 off.
 *   Thread counts must give bitwise identical logits: every output element is
 *   computed by one thread with the same code. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/cpu.h"
#include "backend/cpu/ops.h"
#include "common/tiny_model.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "kernels/kernels.h"
#include "model/model.h"

#define REF_TOL 2e-3
/* SPLIT_TOL: split-KV decode against the same reference.  The reference
 * rounds the P.V accumulator to F16 key by key in one sequence (as the
 * unsplit engine and llama.cpp do); split parts accumulate separately and
 * merge in F32, so they differ by the F16 accumulation noise of ~1300 keys
 * (measured 1.0e-3 / 1.5e-3 for llama / gemma3; unsplit: 1e-4 / 9e-4). */
#define SPLIT_TOL 4e-3
#define BATCH_TOL 2e-3
#define ATTN_TOL 1.5e-3

/* ---------------------------------------------------------------- helpers */

typedef struct loaded {
    uint8_t *buf;
    model *m;
} loaded;

static ryot_status try_load(const tiny_spec *s, loaded *out, ryot_error *err) {
    size_t size;
    out->buf = tiny_model_build(s, &size);
    out->m = NULL;
    gguf_file *f;
    ryot_status st = gguf_open_memory(out->buf, size, &f, err);
    if (st) return st;
    return model_load_gguf(f, &out->m, err);
}

static loaded load_ok(const tiny_spec *s) {
    loaded l;
    ryot_error err = {0};
    if (try_load(s, &l, &err)) fail_msg("load %s: %s", s->arch, err.msg);
    return l;
}

static void unload(loaded *l) {
    model_free(l->m);
    free(l->buf);
}

static engine *make_engine(const model *m, int n_threads, int n_batch, int n_logits) {
    engine_params p = engine_params_default(m);
    p.n_ctx = 256;
    p.n_threads = n_threads;
    p.n_batch = n_batch;
    p.n_logits_max = n_logits;
    engine *e;
    ryot_error err = {0};
    if (engine_new(m, &p, &e, &err)) fail_msg("engine: %s", err.msg);
    return e;
}

static void tokens(int32_t *t, int n, int n_vocab, uint64_t seed) {
    ryot_rng r;
    ryot_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) t[i] = (int32_t)(ryot_rng_next(&r) % (uint64_t)n_vocab);
}

static void decode_ok(engine *e, const int32_t *t, int n, int pos, int n_logits) {
    ryot_error err = {0};
    if (engine_decode(e, t, n, pos, n_logits, &err)) fail_msg("decode: %s", err.msg);
}

static double spread(const float *x, int n) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    return hi - lo;
}

static double max_diff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* ------------------------------------------------- double-precision reference */

static float *dequant(const model_weight *w) {
    float *d = malloc((size_t)w->n_in * w->n_out * sizeof *d);
    assert_non_null(d);
    const kernel_traits *kt = kernels_ref(w->type);
    for (int64_t r = 0; r < w->n_out; r++)
        kt->to_float((const char *)w->data + r * w->row_bytes, d + r * w->n_in, w->n_in);
    return d;
}

static void matvec(const model_weight *w, const double *x, double *y) {
    float *d = dequant(w);
    for (int64_t r = 0; r < w->n_out; r++) {
        double s = 0;
        for (int64_t c = 0; c < w->n_in; c++) s += (double)d[r * w->n_in + c] * x[c];
        y[r] = s;
    }
    free(d);
}

static void rms(double *y, const double *x, const float *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * sc * (w ? w[i] : 1.0);
}

static void rope_d(double *x, int d, int pos, double base, bool neox, const float *ff, double freq_scale) {
    for (int i = 0; i < d / 2; i++) {
        double th = pos * pow(base, -2.0 * i / d) / (ff ? ff[i] : 1.0) * freq_scale, c = cos(th), s = sin(th);
        int a = neox ? i : 2 * i, b = neox ? i + d / 2 : 2 * i + 1;
        double xa = x[a], xb = x[b];
        x[a] = xa * c - xb * s;
        x[b] = xa * s + xb * c;
    }
}

static double f16r(double v) { return ryot_fp16_to_fp32(ryot_fp32_to_fp16((float)v)); }

/* Logits of every position, n x n_vocab, written from the architecture
 * description (llama / qwen2 / gemma3), not from the engine's code. */
static double *ref_forward(const model *m, const int32_t *tok, int n) {
    const model_hparams *hp = &m->hp;
    const int E = hp->n_embd, H = hp->n_head, KV = hp->n_head_kv, D = hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    const bool gemma = hp->arch == MODEL_ARCH_GEMMA3, neox = hp->arch != MODEL_ARCH_LLAMA;
    double *x = calloc((size_t)n * E, sizeof *x), *h = calloc((size_t)E > (size_t)F ? E : F, sizeof *h);
    double *q = calloc((size_t)n * H * D, sizeof *q), *k = calloc((size_t)n * KV * D, sizeof *k),
           *v = calloc((size_t)n * KV * D, sizeof *v), *att = calloc((size_t)H * D, sizeof *att);
    double *g = calloc((size_t)F, sizeof *g), *u = calloc((size_t)F, sizeof *u), *o = calloc((size_t)E, sizeof *o);
    double *w = calloc((size_t)n, sizeof *w), *out = calloc((size_t)n * V, sizeof *out);
    float *emb = dequant(&m->tok_embd);
    for (int t = 0; t < n; t++)
        for (int c = 0; c < E; c++) x[t * E + c] = emb[(size_t)tok[t] * E + c] * (gemma ? sqrt((double)E) : 1.0);
    free(emb);
    for (int il = 0; il < hp->n_layer; il++) {
        const model_layer *L = &m->layers[il];
        const bool local = gemma && il % 6 < 5;
        const double base = local ? 10000.0 : hp->rope_base;
        for (int t = 0; t < n; t++) {
            rms(h, x + t * E, L->attn_norm, E, hp->norm_eps);
            matvec(&L->wq, h, q + t * H * D);
            matvec(&L->wk, h, k + t * KV * D);
            matvec(&L->wv, h, v + t * KV * D);
            for (int i = 0; L->bq && i < H * D; i++) q[t * H * D + i] += L->bq[i];
            for (int i = 0; L->bk && i < KV * D; i++) k[t * KV * D + i] += L->bk[i], v[t * KV * D + i] += L->bv[i];
            for (int hh = 0; hh < H; hh++) {
                double *qh = q + (t * H + hh) * D;
                if (gemma) rms(qh, qh, L->q_norm, D, hp->norm_eps);
                rope_d(qh, D, t, base, neox, m->rope_freqs, local ? 1.0 : hp->rope_freq_scale);
            }
            for (int hh = 0; hh < KV; hh++) {
                double *kh = k + (t * KV + hh) * D;
                if (gemma) rms(kh, kh, L->k_norm, D, hp->norm_eps);
                rope_d(kh, D, t, base, neox, m->rope_freqs, local ? 1.0 : hp->rope_freq_scale);
                for (int c = 0; c < D; c++) kh[c] = f16r(kh[c]), v[(t * KV + hh) * D + c] = f16r(v[(t * KV + hh) * D + c]);
            }
        }
        for (int t = 0; t < n; t++) {
            for (int hh = 0; hh < H; hh++) {
                const int kh = hh / (H / KV);
                const int lo = local && t - hp->sliding_window + 1 > 0 ? t - hp->sliding_window + 1 : 0;
                double sum = 0;
                for (int j = lo; j <= t; j++) {
                    double s = 0;
                    for (int c = 0; c < D; c++) s += f16r(q[(t * H + hh) * D + c]) * k[(j * KV + kh) * D + c];
                    w[j] = s / sqrt((double)D);
                }
                /* key by key, the weighted sum of V held in F16 (llama.cpp's
                 * CPU flash attention): a new maximum rescales it */
                double m = -INFINITY;
                for (int c = 0; c < D; c++) att[hh * D + c] = 0;
                for (int j = lo; j <= t; j++) {
                    double wj = 1;
                    if (w[j] > m) {
                        const double r = exp(m - w[j]);
                        for (int c = 0; c < D; c++) att[hh * D + c] = f16r(att[hh * D + c] * r);
                        sum = sum * r;
                        m = w[j];
                    } else {
                        wj = exp(w[j] - m);
                    }
                    for (int c = 0; c < D; c++) att[hh * D + c] = f16r(att[hh * D + c] + wj * v[(j * KV + kh) * D + c]);
                    sum += wj;
                }
                for (int c = 0; c < D; c++) att[hh * D + c] /= sum;
            }
            matvec(&L->wo, att, o);
            if (gemma) rms(o, o, L->post_attn_norm, E, hp->norm_eps);
            for (int c = 0; c < E; c++) x[t * E + c] += o[c];
            rms(h, x + t * E, L->ffn_norm, E, hp->norm_eps);
            matvec(&L->w_gate, h, g);
            matvec(&L->w_up, h, u);
            for (int i = 0; i < F; i++) {
                double a = g[i], act;
                if (!gemma)
                    act = a / (1 + exp(-a));
                else if (a <= -10 || a >= 10)
                    act = a <= -10 ? 0 : a;
                else { /* F16 in and out, as llama.cpp's GELU table */
                    a = f16r(a);
                    act = f16r(0.5 * a * (1 + tanh(sqrt(2 / M_PI) * (a + 0.044715 * a * a * a))));
                }
                h[i] = act * u[i];
            }
            matvec(&L->w_down, h, o);
            if (gemma) rms(o, o, L->post_ffn_norm, E, hp->norm_eps);
            for (int c = 0; c < E; c++) x[t * E + c] += o[c];
        }
    }
    for (int t = 0; t < n; t++) {
        rms(h, x + t * E, m->output_norm, E, hp->norm_eps);
        matvec(&m->output, h, out + (size_t)t * V);
    }
    free(x), free(h), free(q), free(k), free(v), free(att), free(g), free(u), free(o), free(w);
    return out;
}

static void check_spec_against_reference(tiny_spec s, int n) {
    const char *arch = s.arch;
    loaded l = load_ok(&s);
    const int V = l.m->hp.n_vocab;
    int32_t *t = malloc((size_t)n * sizeof *t);
    tokens(t, n, V, 7);
    engine *e = make_engine(l.m, 2, 32, 32); /* n_batch 32 < n: several chunks */
    decode_ok(e, t, n, 0, 32);
    double *ref = ref_forward(l.m, t, n);
    double worst = 0;
    for (int i = 0; i < 32; i++) {
        const float *lg = engine_logits(e, i);
        const double *r = ref + (size_t)(n - 32 + i) * V;
        for (int c = 0; c < V; c++) worst = fmax(worst, fabs(lg[c] - r[c]));
    }
    print_message("%s: %d tokens, worst |engine - reference| over the last 32 positions = %.2e\n", arch, n, worst);
    assert_true(worst < REF_TOL);
    free(ref);
    free(t);
    engine_free(e);
    unload(&l);
}

static void check_against_reference(const char *arch, int n) { check_spec_against_reference(tiny_spec_default(arch), n); }

/* 80 tokens: two KV tiles of ATTN_TILE_KV, several query tiles */
static void test_reference_llama(void **st) {
    (void)st;
    check_against_reference("llama", 80);
}

static void test_reference_qwen2(void **st) {
    (void)st;
    check_against_reference("qwen2", 80);
}

/* Llama 3.1 style frequency divisors (rope_freqs.weight) and linear scaling */
static void test_reference_llama_rope_freqs(void **st) {
    (void)st;
    tiny_spec s = tiny_spec_default("llama");
    s.rope_freqs = true;
    s.rope_scale = 4.0f;
    loaded l = load_ok(&s);
    assert_non_null(l.m->rope_freqs);
    assert_true(fabsf(l.m->hp.rope_freq_scale - 0.25f) < 1e-7f);
    unload(&l);
    check_spec_against_reference(s, 80);
}

static void test_reference_gemma3(void **st) {
    (void)st;
    check_against_reference("gemma3", 80);
}

/* ---------------------------------------------------- batch vs one at a time */

static void batch_vs_sequential(const char *arch, ryot_type type) {
    tiny_spec s = tiny_spec_default(arch);
    s.type = type;
    loaded l = load_ok(&s);
    const int V = l.m->hp.n_vocab, n = 70;
    int32_t t[70];
    tokens(t, n, V, 3);
    engine *a = make_engine(l.m, 2, 512, 1), *b = make_engine(l.m, 2, 512, 1), *c = make_engine(l.m, 2, 16, 1);
    decode_ok(a, t, n, 0, 1);
    for (int i = 0; i < n; i++) decode_ok(b, t + i, 1, i, 1);
    decode_ok(c, t, n, 0, 1); /* chunks of 16 */
    const float *la = engine_logits(a, 0), *lb = engine_logits(b, 0), *lc = engine_logits(c, 0);
    double sp = spread(lb, V), dab = max_diff(la, lb, V), dac = max_diff(la, lc, V);
    print_message("%s %s: batch vs sequential %.2e, batch vs chunked %.2e (spread %.2f)\n", arch, ryot_type_name(type),
                  dab, dac, sp);
    assert_true(dab <= BATCH_TOL * sp);
    assert_true(dac <= BATCH_TOL * sp);
    engine_free(a);
    engine_free(b);
    engine_free(c);
    unload(&l);
}

static void test_batch_llama_q4_1(void **st) {
    (void)st;
    batch_vs_sequential("llama", RYOT_TYPE_Q4_1);
}

static void test_batch_llama_q8_0(void **st) {
    (void)st;
    batch_vs_sequential("llama", RYOT_TYPE_Q8_0);
}

static void test_batch_gemma3_q8_0(void **st) {
    (void)st;
    batch_vs_sequential("gemma3", RYOT_TYPE_Q8_0);
}

static void test_batch_qwen2_f16(void **st) {
    (void)st;
    batch_vs_sequential("qwen2", RYOT_TYPE_F16);
}

/* Decode past CPU_SPLIT_MIN keys splits attention into parts merged by the
 * last finisher: against the reference, and the same bits for 1 and 2 threads. */
static void split_kv_case(const char *arch) {
    tiny_spec s = tiny_spec_default(arch);
    loaded l = load_ok(&s);
    const int V = l.m->hp.n_vocab, n = CPU_SPLIT_MIN + 280; /* 3 parts of CPU_SPLIT_CHUNK */
    int32_t *t = malloc((size_t)n * sizeof *t);
    tokens(t, n, V, 21);
    float *got[2];
    for (int nt = 1; nt <= 2; nt++) {
        engine_params p = engine_params_default(l.m);
        p.n_ctx = 2048;
        p.n_threads = nt;
        p.n_batch = 512;
        engine *e;
        ryot_error err = {0};
        if (engine_new(l.m, &p, &e, &err)) fail_msg("engine: %s", err.msg);
        decode_ok(e, t, n - 3, 0, 0);
        for (int i = n - 3; i < n; i++) decode_ok(e, t + i, 1, i, 1);
        got[nt - 1] = malloc((size_t)V * sizeof(float));
        memcpy(got[nt - 1], engine_logits(e, 0), (size_t)V * sizeof(float));
        engine_free(e);
    }
    double *ref = ref_forward(l.m, t, n);
    double worst = 0;
    for (int c = 0; c < V; c++) worst = fmax(worst, fabs(got[0][c] - ref[(size_t)(n - 1) * V + c]));
    print_message("%s split-KV decode at %d keys: worst |engine - reference| = %.2e\n", arch, n, worst);
    assert_true(worst < SPLIT_TOL);
    assert_memory_equal(got[0], got[1], (size_t)V * sizeof(float));
    free(ref), free(got[0]), free(got[1]), free(t);
    unload(&l);
}

static void test_split_kv_decode(void **st) {
    (void)st;
    split_kv_case("llama");
    split_kv_case("gemma3"); /* the global layer splits, the sliding ones never reach the threshold */
}

/* ----------------------------------------------------------- thread counts */

static void test_threads_identical(void **st) {
    (void)st;
    const char *archs[] = {"llama", "gemma3"};
    for (int ai = 0; ai < 2; ai++) {
        tiny_spec s = tiny_spec_default(archs[ai]);
        s.type = RYOT_TYPE_Q8_0;
        loaded l = load_ok(&s);
        const int V = l.m->hp.n_vocab;
        int32_t t[40];
        tokens(t, 40, V, 11);
        float *ref = malloc((size_t)V * 4 * sizeof *ref);
        for (int nt = 1; nt <= 3; nt++) {
            engine *e = make_engine(l.m, nt, 512, 1);
            float got[4 * 128];
            assert_true(V <= 128);
            decode_ok(e, t, 30, 0, 1); /* prefill */
            memcpy(got, engine_logits(e, 0), (size_t)V * sizeof(float));
            for (int i = 30; i < 33; i++) { /* decode steps */
                decode_ok(e, t + i, 1, i, 1);
                memcpy(got + (size_t)(i - 29) * V, engine_logits(e, 0), (size_t)V * sizeof(float));
            }
            if (nt == 1)
                memcpy(ref, got, (size_t)V * 4 * sizeof(float));
            else if (memcmp(ref, got, (size_t)V * 4 * sizeof(float)))
                fail_msg("%s: logits with %d threads differ from 1 thread", archs[ai], nt);
            engine_free(e);
        }
        free(ref);
        unload(&l);
    }
}

/* Rewinding (pos < n_past) replaces the cache from pos on. */
static void test_rewind(void **st) {
    (void)st;
    tiny_spec s = tiny_spec_default("llama");
    loaded l = load_ok(&s);
    const int V = l.m->hp.n_vocab;
    int32_t t[20], u[20];
    tokens(t, 20, V, 5);
    memcpy(u, t, sizeof t);
    tokens(u + 8, 12, V, 6);
    engine *a = make_engine(l.m, 2, 512, 1), *b = make_engine(l.m, 2, 512, 1);
    decode_ok(a, t, 20, 0, 1);
    decode_ok(a, u + 8, 12, 8, 1); /* rewind to 8 */
    decode_ok(b, u, 20, 0, 1);
    assert_true(a->n_past == 20);
    assert_memory_equal(engine_logits(a, 0), engine_logits(b, 0), (size_t)V * sizeof(float));
    engine_free(a);
    engine_free(b);
    unload(&l);
}

static void test_decode_errors(void **st) {
    (void)st;
    tiny_spec s = tiny_spec_default("llama");
    loaded l = load_ok(&s);
    engine_params p = engine_params_default(l.m);
    p.n_ctx = 16;
    p.n_threads = 1;
    engine *e;
    ryot_error err = {0};
    assert_int_equal(engine_new(l.m, &p, &e, &err), RYOT_OK);
    int32_t t[20] = {0};
    t[3] = 80; /* n_vocab is 80 */
    assert_int_equal(engine_decode(e, t, 5, 0, 1, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "vocabulary"));
    t[3] = -1;
    assert_int_equal(engine_decode(e, t, 5, 0, 1, &err), RYOT_ERR_INVALID);
    t[3] = 1;
    assert_int_equal(engine_decode(e, t, 17, 0, 1, &err), RYOT_ERR_INVALID); /* past n_ctx */
    assert_non_null(strstr(err.msg, "context"));
    assert_int_equal(engine_decode(e, t, 2, 1, 1, &err), RYOT_ERR_INVALID); /* gap: n_past is 0 */
    assert_int_equal(engine_decode(e, t, 2, 0, 2, &err), RYOT_ERR_INVALID); /* n_logits_max is 1 */
    assert_int_equal(engine_decode(e, t, 0, 0, 0, &err), RYOT_ERR_INVALID);
    assert_int_equal(engine_decode(e, t, 16, 0, 1, &err), RYOT_OK);
    engine_free(e);
    unload(&l);
}

/* ---------------------------------------------------------------- load errors */

static void expect_load_error(tiny_spec s, ryot_status code, const char *needle1, const char *needle2) {
    loaded l;
    ryot_error err = {0};
    ryot_status st = try_load(&s, &l, &err);
    if (st != code) fail_msg("expected %s, got %s (%s)", ryot_strerror(code), ryot_strerror(st), err.msg);
    if (needle1 && !strstr(err.msg, needle1)) fail_msg("message '%s' lacks '%s'", err.msg, needle1);
    if (needle2 && !strstr(err.msg, needle2)) fail_msg("message '%s' lacks '%s'", err.msg, needle2);
    assert_null(l.m);
    free(l.buf);
}

static void test_load_errors(void **st) {
    (void)st;
    tiny_spec s = tiny_spec_default("llama");
    s.omit_tensor = "blk.1.ffn_up.weight";
    expect_load_error(s, RYOT_ERR_FORMAT, "missing tensor", "blk.1.ffn_up.weight");

    s = tiny_spec_default("llama");
    s.bad_shape = "blk.0.attn_k.weight";
    expect_load_error(s, RYOT_ERR_FORMAT, "blk.0.attn_k.weight", "shape");

    s = tiny_spec_default("gemma3");
    s.omit_tensor = "blk.3.attn_q_norm.weight";
    expect_load_error(s, RYOT_ERR_FORMAT, "missing tensor", "blk.3.attn_q_norm.weight");

    s = tiny_spec_default("qwen2");
    s.omit_tensor = "blk.0.attn_v.bias";
    expect_load_error(s, RYOT_ERR_FORMAT, "missing tensor", "blk.0.attn_v.bias");

    s = tiny_spec_default("llama");
    s.omit_key = "llama.embedding_length";
    expect_load_error(s, RYOT_ERR_FORMAT, "missing hyperparameter", "llama.embedding_length");

    s = tiny_spec_default("llama");
    s.omit_key = "llama.attention.layer_norm_rms_epsilon";
    expect_load_error(s, RYOT_ERR_FORMAT, "llama.attention.layer_norm_rms_epsilon", NULL);

    s = tiny_spec_default("llama");
    s.n_head_kv = 3; /* 4 heads */
    expect_load_error(s, RYOT_ERR_FORMAT, "llama.attention.head_count_kv", NULL);

    s = tiny_spec_default("llama");
    s.omit_key = "general.architecture";
    expect_load_error(s, RYOT_ERR_FORMAT, "general.architecture", NULL);

    s = tiny_spec_default("llama");
    s.arch = "mamba";
    expect_load_error(s, RYOT_ERR_UNSUPPORTED, "mamba", NULL);

    s = tiny_spec_default("llama");
    s.extra_key = "llama.rope.dimension_count";
    s.extra_val = 17; /* odd, and larger than head_dim 16 */
    expect_load_error(s, RYOT_ERR_FORMAT, "llama.rope.dimension_count", NULL);

    /* tied output: absent output.weight is fine, and reuses token_embd */
    s = tiny_spec_default("llama");
    s.tied = true;
    loaded l = load_ok(&s);
    assert_true(l.m->output_tied);
    assert_ptr_equal(l.m->output.data, l.m->tok_embd.data);
    unload(&l);
}

static void test_hparams(void **st) {
    (void)st;
    tiny_spec s = tiny_spec_default("gemma3");
    loaded l = load_ok(&s);
    const model_hparams *hp = &l.m->hp;
    assert_int_equal(hp->arch, MODEL_ARCH_GEMMA3);
    assert_int_equal(hp->rope, ROPE_NEOX);
    assert_true(hp->qk_norm && hp->post_norms && !hp->qkv_bias);
    assert_int_equal(hp->sliding_window, 5);
    for (int il = 0; il < 7; il++) assert_int_equal(model_layer_is_swa(hp, il), il != 5);
    assert_true(fabsf(hp->embd_scale - 8.0f) < 1e-6f); /* sqrt(64) */
    assert_true(fabsf(hp->attn_scale - 1.0f / sqrtf(32.0f)) < 1e-7f);
    assert_true(hp->rope_base == 1e6f && hp->rope_base_swa == 10000.0f);
    assert_int_equal(hp->n_vocab, 80);
    unload(&l);
    s = tiny_spec_default("llama");
    l = load_ok(&s);
    assert_int_equal(l.m->hp.rope, ROPE_NORMAL);
    assert_int_equal(l.m->hp.sliding_window, 0);
    assert_false(model_layer_is_swa(&l.m->hp, 0));
    unload(&l);
}

/* ---------------------------------------------------------------- ops */

static void test_rmsnorm_known(void **st) {
    (void)st;
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 0.5f, 2, 1};
    float y[4];
    ops_rmsnorm(y, x, NULL, 4, 0.0f); /* rms = sqrt(30/4) */
    const float r = sqrtf(7.5f);
    for (int i = 0; i < 4; i++) assert_true(fabsf(y[i] - x[i] / r) < 1e-6f);
    ops_rmsnorm(y, x, w, 4, 1.0f); /* eps: sqrt(7.5 + 1) */
    for (int i = 0; i < 4; i++) assert_true(fabsf(y[i] - x[i] * w[i] / sqrtf(8.5f)) < 1e-6f);
}

static void test_rope_known(void **st) {
    (void)st;
    /* head of 4 at position 1, base 10000: pair 0 turns by 1 rad, pair 1 by
     * 10000^(-1/2) = 0.01 rad. */
    float cs[4];
    ops_rope_cache(cs, 1, 4, 10000.0f, 1.0f, NULL);
    assert_true(fabsf(cs[0] - cosf(1.0f)) < 1e-6f && fabsf(cs[1] - sinf(1.0f)) < 1e-6f);
    assert_true(fabsf(cs[2] - cosf(0.01f)) < 1e-6f && fabsf(cs[3] - sinf(0.01f)) < 1e-6f);
    const float c0 = cosf(1.0f), s0 = sinf(1.0f), c1 = cosf(0.01f), s1 = sinf(0.01f);
    float a[4] = {1, 2, 3, 4};
    ops_rope(a, 4, cs, ROPE_NORMAL); /* pairs (0,1), (2,3) */
    const float en[4] = {1 * c0 - 2 * s0, 1 * s0 + 2 * c0, 3 * c1 - 4 * s1, 3 * s1 + 4 * c1};
    for (int i = 0; i < 4; i++) assert_true(fabsf(a[i] - en[i]) < 1e-5f);
    float b[4] = {1, 2, 3, 4};
    ops_rope(b, 4, cs, ROPE_NEOX); /* pairs (0,2), (1,3) */
    const float ex[4] = {1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 1 * s0 + 3 * c0, 2 * s1 + 4 * c1};
    for (int i = 0; i < 4; i++) assert_true(fabsf(b[i] - ex[i]) < 1e-5f);
    /* rope_dim < head_dim: the tail passes through; linear scaling halves the angle */
    float c[6] = {1, 2, 3, 4, 5, 6};
    ops_rope_cache(cs, 2, 4, 10000.0f, 0.5f, NULL);
    assert_true(fabsf(cs[0] - cosf(1.0f)) < 1e-6f);
    ops_rope(c, 4, cs, ROPE_NEOX);
    assert_true(c[4] == 5 && c[5] == 6);
    /* frequency factors divide the angle */
    const float ff[2] = {2.0f, 1.0f};
    ops_rope_cache(cs, 1, 4, 10000.0f, 1.0f, ff);
    assert_true(fabsf(cs[1] - sinf(0.5f)) < 1e-6f && fabsf(cs[3] - sinf(0.01f)) < 1e-6f);
}

static void test_exp_neg(void **st) {
    (void)st;
    double worst = 0;
    for (float x = -87.0f; x <= 0.0f; x += 0.001237f) {
        double r = exp((double)x), got = kernel_exp_neg(x);
        worst = fmax(worst, fabs(got - r) / r);
    }
    assert_true(worst < 3e-7);
    assert_true(kernel_exp_neg(-INFINITY) == 0.0f);
    assert_true(kernel_exp_neg(-1000.0f) == 0.0f);
    assert_true(kernel_exp_neg(0.0f) == 1.0f);
}

static void test_activations(void **st) {
    (void)st;
    const float g[3] = {-2, 0.5f, 3}, u[3] = {1, 2, -1};
    float h[3];
    kernels_ops_ref()->silu_mul(h, g, u, 3);
    for (int i = 0; i < 3; i++) assert_true(fabsf(h[i] - g[i] / (1 + expf(-g[i])) * u[i]) < 1e-6f);
    kernels_ops_ref()->gelu_mul(h, g, u, 3);
    /* gelu_tanh(0.5) = 0.345714, gelu_tanh(3) = 2.996363, rounded to F16
     * (spacing 2^-12 and 2^-9 there) as llama.cpp's GELU table holds them */
    assert_true(h[1] == 1416.0f / 4096 * 2);
    assert_true(h[2] == -1534.0f / 512);
}

/* Every fast level's ops the CPU runs against the reference ones. */
static void ops_level_check(kernel_isa isa) {
    const kernel_ops *ref = kernels_ops_ref(), *fast = kernels_ops_isa(isa);
    ryot_rng r;
    ryot_rng_seed(&r, 9);
    enum { N = 203 };
    float g[N], u[N], h1[N], h2[N];
    for (int i = 0; i < N; i++) g[i] = (float)(ryot_rng_uniform(&r) * 24 - 12), u[i] = (float)ryot_rng_uniform(&r) - 0.5f;
    g[0] = 0.0f, g[1] = -90.0f, g[2] = 90.0f;
    ref->silu_mul(h1, g, u, N);
    fast->silu_mul(h2, g, u, N);
    assert_true(max_diff(h1, h2, N) < 1e-5);
    ref->gelu_mul(h1, g, u, N);
    fast->gelu_mul(h2, g, u, N);
    assert_true(max_diff(h1, h2, N) < 1e-5);
    /* attention scores: the same bits as the level's own F16 vec_dot_rows,
     * and the reference's within float rounding */
    const kernel_traits *f16 = kernels_get_isa(isa, RYOT_TYPE_F16);
    for (int dk = 28; dk <= 256; dk = dk < 32 ? 32 : dk * 2) {
        enum { NK = 37, NR = 5 };
        uint16_t k[NK * 256];
        float q[NR * 256], kt[NK * 256], s0[NR * 64], s1[NR * 64], s2[NR * 64];
        for (int i = 0; i < NK * dk; i++) k[i] = ryot_fp32_to_fp16((float)ryot_rng_uniform(&r) * 2 - 1);
        for (int i = 0; i < NR * dk; i++) q[i] = kernel_round_f16((float)ryot_rng_uniform(&r) * 4 - 2);
        ref->qk_scores(q, dk, NR, k, NK, dk, kt, s0, 64);
        f16->vec_dot_rows(dk, NK, NR, k, (size_t)dk * 2, q, (size_t)dk * 4, s1, 64);
        fast->qk_scores(q, dk, NR, k, NK, dk, kt, s2, 64);
        for (int i = 0; i < NR; i++) {
            assert_memory_equal(s1 + i * 64, s2 + i * 64, NK * sizeof(float));
            assert_true(max_diff(s0 + i * 64, s2 + i * 64, NK) < 1e-4 * dk);
        }
    }
    /* two tiles of softmax_pv: rescaling when the max grows */
    for (int dv = 8; dv <= 136; dv += 64) {
        float s1[40], s2[40], v[40 * 136], a1[136] = {0}, a2[136] = {0};
        float m1 = -INFINITY, m2 = -INFINITY, l1 = 0, l2 = 0;
        for (int i = 0; i < 40 * dv; i++) v[i] = (float)ryot_rng_uniform(&r) * 2 - 1;
        for (int t = 0; t < 2; t++) {
            for (int j = 0; j < 37; j++) s1[j] = s2[j] = (float)(ryot_rng_uniform(&r) * 10 - 5 + 3 * t);
            ref->softmax_pv(s1, 37 - 10 * t, 0.7f, &m1, &l1, a1, v, dv);
            fast->softmax_pv(s2, 37 - 10 * t, 0.7f, &m2, &l2, a2, v, dv);
        }
        assert_true(m1 == m2);
        assert_true(fabsf(l1 - l2) < 1e-5f * l1);
        assert_true(max_diff(a1, a2, dv) < 1e-5 * l1);
    }
}

static void test_ops_tables(void **st) {
    (void)st;
    const kernel_isa best = kernels_best_isa();
    if (best == KERNEL_ISA_REF) print_message("no fast ops on this CPU\n");
    for (kernel_isa isa = KERNEL_ISA_AVX2; isa <= best; isa++) {
        print_message("ops: %s against ref\n", kernel_isa_name(isa));
        ops_level_check(isa);
    }
}

/* ---------------------------------------------------------------- attention */

/* group query heads share the K/V head: queries laid out as the engine does
 * (position-major, heads consecutive) */
static void attention_case(int dk, int dv, int n_q, int group, int pos0, int window, uint64_t seed) {
    ryot_rng r;
    ryot_rng_seed(&r, seed);
    const int n_kv = pos0 + n_q, G = group;
    uint16_t *k = malloc((size_t)n_kv * dk * 2), *v = malloc((size_t)n_kv * dv * 2);
    float *q = malloc((size_t)n_q * G * dk * 4), *o1 = malloc((size_t)n_q * G * dv * 4),
          *o2 = malloc((size_t)n_q * G * dv * 4);
    for (int i = 0; i < n_kv * dk; i++) k[i] = ryot_fp32_to_fp16((float)ryot_rng_uniform(&r) * 2 - 1);
    for (int i = 0; i < n_kv * dv; i++) v[i] = ryot_fp32_to_fp16((float)ryot_rng_uniform(&r) * 2 - 1);
    for (int i = 0; i < n_q * G * dk; i++) q[i] = (float)ryot_rng_uniform(&r) * 4 - 2;
    attn_desc d = {.head_dim = dk,
                   .head_dim_v = dv,
                   .scale = 1.0f / sqrtf((float)dk),
                   .window = window,
                   .ops = (kernels_init(KERNEL_ISA_AUTO), kernels_ops())};
    float *scratch = malloc(attn_scratch_floats(&d) * sizeof(float));
    const int tq = attn_tile_q(G);
    for (int i0 = 0; i0 < n_q; i0 += tq) {
        int nq = n_q - i0 < tq ? n_q - i0 : tq;
        attn_flash(&d, q + (size_t)i0 * G * dk, (size_t)G * dk, nq, G, pos0 + i0, k, v, o1 + (size_t)i0 * G * dv,
                   (size_t)G * dv, scratch);
    }
    for (int g = 0; g < G; g++) /* the reference, one head at a time */
        attn_naive(&d, q + (size_t)g * dk, (size_t)G * dk, n_q, pos0, k, v, o2 + (size_t)g * dv, (size_t)G * dv);
    double worst = max_diff(o1, o2, n_q * G * dv);
    if (worst > ATTN_TOL)
        fail_msg("attention dk=%d dv=%d n_q=%d group=%d pos0=%d window=%d: max diff %.3g", dk, dv, n_q, G, pos0,
                 window, worst);
    free(k), free(v), free(q), free(o1), free(o2), free(scratch);
}

/* attn_partial over parts of 512 keys + attn_merge against the reference */
static void split_case(int dk, int dv, int n_q, int group, int pos0, int window, uint64_t seed) {
    ryot_rng r;
    ryot_rng_seed(&r, seed);
    const int n_kv = pos0 + n_q, G = group, chunk = 512;
    uint16_t *k = malloc((size_t)n_kv * dk * 2), *v = malloc((size_t)n_kv * dv * 2);
    float *q = malloc((size_t)n_q * G * dk * 4), *o1 = malloc((size_t)n_q * G * dv * 4),
          *o2 = malloc((size_t)n_q * G * dv * 4), *o3 = malloc((size_t)n_q * G * dv * 4);
    for (int i = 0; i < n_kv * dk; i++) k[i] = ryot_fp32_to_fp16((float)ryot_rng_uniform(&r) * 2 - 1);
    for (int i = 0; i < n_kv * dv; i++) v[i] = ryot_fp32_to_fp16((float)ryot_rng_uniform(&r) * 2 - 1);
    for (int i = 0; i < n_q * G * dk; i++) q[i] = (float)ryot_rng_uniform(&r) * 4 - 2;
    attn_desc d = {.head_dim = dk,
                   .head_dim_v = dv,
                   .scale = 1.0f / sqrtf((float)dk),
                   .window = window,
                   .ops = (kernels_init(KERNEL_ISA_AUTO), kernels_ops())};
    float *scratch = malloc(attn_scratch_floats(&d) * sizeof(float));
    const size_t pf = attn_part_floats(&d);
    const int n_parts = (n_kv + chunk - 1) / chunk;
    float *parts = malloc((size_t)n_parts * pf * sizeof(float));
    for (int p = 0; p < n_parts; p++)
        attn_partial(&d, q, (size_t)G * dk, n_q, G, pos0, p * chunk, (p + 1) * chunk, k, v, parts + (size_t)p * pf,
                     scratch);
    attn_merge(&d, n_q, G, parts, pf, n_parts, o1, (size_t)G * dv);
    attn_flash(&d, q, (size_t)G * dk, n_q, G, pos0, k, v, o3, (size_t)G * dv, scratch);
    for (int g = 0; g < G; g++)
        attn_naive(&d, q + (size_t)g * dk, (size_t)G * dk, n_q, pos0, k, v, o2 + (size_t)g * dv, (size_t)G * dv);
    double worst = max_diff(o1, o2, n_q * G * dv), worst_flash = max_diff(o3, o2, n_q * G * dv);
    print_message("split n_kv=%d: merged %.2e, unsplit %.2e from the reference\n", n_kv, worst, worst_flash);
    if (worst > ATTN_TOL) fail_msg("split attention: max diff %.3g", worst);
    free(k), free(v), free(q), free(o1), free(o2), free(o3), free(scratch), free(parts);
}

static void test_attention_flash_vs_naive(void **st) {
    (void)st;
    attention_case(64, 64, 1, 1, 0, 0, 1);      /* first token */
    attention_case(64, 64, 1, 3, 200, 0, 2);    /* decode over 4 tiles, GQA group of 3 */
    attention_case(64, 64, 40, 1, 0, 0, 3);     /* prompt, causal inside the batch */
    attention_case(64, 64, 40, 3, 0, 0, 8);     /* prompt, group of 3 (SmolLM2) */
    attention_case(32, 48, 33, 2, 90, 0, 4);    /* dk != dv, batch after a cache */
    attention_case(128, 128, 16, 1, 150, 7, 5); /* sliding window inside a tile */
    attention_case(64, 64, 20, 4, 100, 70, 6);  /* window across tiles */
    attention_case(256, 256, 3, 4, 500, 512, 7);/* Gemma-sized head and group */
    split_case(64, 64, 1, 3, 1300, 0, 9);
    split_case(256, 256, 2, 4, 1500, 0, 10);
    split_case(64, 64, 1, 1, 1300, 700, 11);  /* window: the first part sees nothing */
}

int main(void) {
    kernels_init(KERNEL_ISA_AUTO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm_known),
        cmocka_unit_test(test_rope_known),
        cmocka_unit_test(test_exp_neg),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_ops_tables),
        cmocka_unit_test(test_attention_flash_vs_naive),
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_reference_llama),
        cmocka_unit_test(test_reference_llama_rope_freqs),
        cmocka_unit_test(test_reference_qwen2),
        cmocka_unit_test(test_reference_gemma3),
        cmocka_unit_test(test_batch_llama_q4_1),
        cmocka_unit_test(test_batch_llama_q8_0),
        cmocka_unit_test(test_batch_gemma3_q8_0),
        cmocka_unit_test(test_batch_qwen2_f16),
        cmocka_unit_test(test_split_kv_decode),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_rewind),
        cmocka_unit_test(test_decode_errors),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
