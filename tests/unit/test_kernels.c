/* Kernel tests: every supported type, every ISA level this CPU runs, against
 * the scalar reference (kernels/ref/).
 *
 * Tolerances (named below):
 *  - vec_dot / vec_dot_rows: |fast - ref| <= DOT_TOL * sum_i |x_i y_i|
 *    (x, y the dequantized rows).  Quantized dots sum integers exactly per
 *    block; only the float accumulation across blocks and the order of the
 *    per-block scale products differ, a few ulps of the magnitude sum.  Float
 *    types add n rounding errors in a different order.  Scaling by the sum of
 *    magnitudes (not |result|) keeps cancellation from failing correct code;
 *    a wrong code, scale or block moves the result by ~1/n of that sum
 *    (≫ 1e-5 for the sizes used), which the broken-kernel test checks.
 *  - to_float: fast within TO_FLOAT_TOL relative of the row's max |value|
 *    (FMA may fuse d*sc*q - dmin*m); bitwise for F16/BF16/Q8_*.
 *  - from_float of the activation types Q8_0/Q8_1/Q8_K and of F16/BF16:
 *    bitwise equal to the reference (same operations, same rounding).
 *  - round trip: RMS(dequant(quant(x)) - x) / RMS(x) below a per-type bound
 *    for Gaussian data (4-bit ~0.1, 5-bit ~0.05, 6-bit ~0.02, 8-bit ~0.005).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gguf/gguf.h"
#include "kernels/kernels.h"

#define DOT_TOL 1e-5
#define TO_FLOAT_TOL 1e-6
#define DOT_ABS_FLOOR 1e-30
/* Real models: RMS of the sub-block positions of a K-quant super-block may
 * differ (real weights are not uniform), but not by this factor. */
#define K_POS_RATIO_MAX 2.0

typedef struct type_case {
    ryot_type t;
    double rt_bound; /* round-trip RMS error / RMS */
} type_case;

static const type_case cases[] = {
    {RYOT_TYPE_F32, 0.0},     {RYOT_TYPE_F16, 0.001},   {RYOT_TYPE_BF16, 0.005},
    {RYOT_TYPE_Q4_0, 0.12},   {RYOT_TYPE_Q4_1, 0.10},   {RYOT_TYPE_Q5_0, 0.06},
    {RYOT_TYPE_Q5_1, 0.05},   {RYOT_TYPE_Q8_0, 0.008},  {RYOT_TYPE_Q4_K, 0.10},
    {RYOT_TYPE_Q5_K, 0.05},   {RYOT_TYPE_Q6_K, 0.025},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static const type_case act_cases[] = {
    {RYOT_TYPE_Q8_0, 0.008}, {RYOT_TYPE_Q8_1, 0.008}, {RYOT_TYPE_Q8_K, 0.015} /* one scale per 256 */,
};

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
/* Roughly Gaussian, with a varying per-32 scale and a few outliers, like
 * real weights and activations. */
static void fill_random_opt(float *x, int64_t n, double scale, bool outliers) {
    double block_scale = 1;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) block_scale = 0.25 + 1.5 * urand();
        double g = urand() + urand() + urand() + urand() - 2.0;
        if (outliers && urand() < 0.005) g *= 8;
        x[i] = (float)(scale * block_scale * g);
    }
}
static void fill_random(float *x, int64_t n, double scale) {
    fill_random_opt(x, n, scale, true);
}

static size_t row_bytes(ryot_type t, int64_t n) {
    uint64_t b = 0;
    if (!ryot_row_size(t, (uint64_t)n, &b)) fail_msg("bad row size for %s n=%lld", ryot_type_name(t), (long long)n);
    return (size_t)b;
}

static int64_t block_of(ryot_type t) {
    return ryot_type_get(t)->block_size;
}

/* Row lengths per type: several multiples of the block size (odd lengths
 * for the float types, to exercise tails). */
static int sizes_for(ryot_type t, const int64_t **out) {
    static const int64_t s1[] = {1, 7, 33, 100, 257, 1000};
    static const int64_t s32[] = {32, 64, 96, 288, 576, 1024};
    static const int64_t s256[] = {256, 512, 768, 2816};
    switch (block_of(t)) {
    case 1: *out = s1; return 6;
    case 32: *out = s32; return 6;
    default: *out = s256; return 4;
    }
}

static double sum_abs_products(ryot_type tx, const void *xq, ryot_type ty, const void *yq, int64_t n) {
    float *xf = malloc(n * sizeof *xf), *yf = malloc(n * sizeof *yf);
    kernels_ref(tx)->to_float(xq, xf, n);
    kernels_ref(ty)->to_float(yq, yf, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)xf[i] * yf[i]);
    free(xf);
    free(yf);
    return s;
}

/* Random weight rows (quantized by the reference) and activation rows. */
typedef struct dot_data {
    ryot_type tx, ty;
    int64_t n;
    int nrx, nry;
    size_t bx, by;  /* row strides in bytes, padded */
    uint8_t *x, *y;
} dot_data;

static void dot_data_make(dot_data *d, ryot_type tx, int64_t n, int nrx, int nry) {
    d->tx = tx;
    d->ty = kernels_ref(tx)->vec_dot_type;
    d->n = n;
    d->nrx = nrx;
    d->nry = nry;
    d->bx = row_bytes(d->tx, n) + 36; /* odd padding keeps 2-byte alignment, like packed files */
    d->by = row_bytes(d->ty, n) + 64;
    if (block_of(tx) == 1) d->bx = row_bytes(d->tx, n) + 4 * 5;
    d->x = calloc((size_t)nrx, d->bx);
    d->y = calloc((size_t)nry, d->by);
    float *f = malloc(n * sizeof *f);
    for (int i = 0; i < nrx; i++) {
        fill_random(f, n, 0.05);
        kernels_ref(d->tx)->from_float(f, d->x + (size_t)i * d->bx, n);
    }
    for (int j = 0; j < nry; j++) {
        fill_random(f, n, 1.0);
        kernels_ref(d->ty)->from_float(f, d->y + (size_t)j * d->by, n);
    }
    free(f);
}

static void dot_data_free(dot_data *d) {
    free(d->x);
    free(d->y);
}

static double dot_ratio(const dot_data *d, int i, int j, float got) {
    const void *xr = d->x + (size_t)i * d->bx, *yr = d->y + (size_t)j * d->by;
    float want;
    kernels_ref(d->tx)->vec_dot(d->n, &want, xr, yr);
    double tol = DOT_TOL * sum_abs_products(d->tx, xr, d->ty, yr, d->n) + DOT_ABS_FLOOR;
    double r = fabs((double)got - want) / tol;
    return isnan(r) ? INFINITY : r;
}

/* Worst |fast - ref| / tolerance of vec_dot over the sizes for type t; a
 * value above 1 is a failure. */
static double vec_dot_worst(ryot_type t, kernel_vec_dot_fn fast) {
    const int64_t *sizes;
    int ns = sizes_for(t, &sizes);
    double worst = 0;
    for (int k = 0; k < ns; k++) {
        dot_data d;
        dot_data_make(&d, t, sizes[k], 3, 2);
        for (int i = 0; i < d.nrx; i++) {
            for (int j = 0; j < d.nry; j++) {
                float got = NAN;
                fast(d.n, &got, d.x + (size_t)i * d.bx, d.y + (size_t)j * d.by);
                double r = dot_ratio(&d, i, j, got);
                if (r > worst) worst = r;
            }
        }
        dot_data_free(&d);
    }
    return worst;
}

/* vec_dot_rows against the reference vec_dot for every pair; outputs outside
 * the nrx x nry window (the bs padding) must stay untouched. */
static double rows_worst(ryot_type t, kernel_vec_dot_rows_fn rows, int64_t n, int nrx, int nry) {
    dot_data d;
    dot_data_make(&d, t, n, nrx, nry);
    size_t bs = (size_t)nrx + 3;
    float *s = malloc(bs * nry * sizeof *s);
    const float sentinel = 12345.0f;
    for (size_t k = 0; k < bs * nry; k++) s[k] = sentinel;
    rows(n, nrx, nry, d.x, d.bx, d.y, d.by, s, bs);
    double worst = 0;
    for (int j = 0; j < nry; j++) {
        for (size_t i = 0; i < bs; i++) {
            float got = s[j * bs + i];
            if (i >= (size_t)nrx) {
                if (got != sentinel) worst = INFINITY;
                continue;
            }
            double r = dot_ratio(&d, (int)i, j, got);
            if (r > worst) worst = r;
        }
    }
    free(s);
    dot_data_free(&d);
    return worst;
}

static double rows_worst_all(ryot_type t, kernel_vec_dot_rows_fn rows) {
    static const int counts[] = {1, 3, 5, 17};
    const int64_t *sizes;
    int ns = sizes_for(t, &sizes);
    double worst = 0;
    for (int a = 0; a < 4; a++) {
        for (int b = 0; b < 4; b++) {
            int64_t n = sizes[(a + b) % ns];
            double r = rows_worst(t, rows, n, counts[a], counts[b]);
            if (r > worst) worst = r;
        }
    }
    return worst;
}

/* Worst |fast - ref| / (TO_FLOAT_TOL * max|ref|) of to_float (0 if bitwise). */
static double to_float_worst(ryot_type t, kernel_to_float_fn fast) {
    const int64_t *sizes;
    int ns = sizes_for(t, &sizes);
    double worst = 0;
    for (int k = 0; k < ns; k++) {
        int64_t n = sizes[k];
        float *f = malloc(n * sizeof *f), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        void *q = malloc(row_bytes(t, n));
        fill_random(f, n, 0.1);
        kernels_ref(t)->from_float(f, q, n);
        kernels_ref(t)->to_float(q, a, n);
        fast(q, b, n);
        double amax = 0;
        for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(a[i]));
        for (int64_t i = 0; i < n; i++) {
            double r = fabs((double)a[i] - b[i]) / (TO_FLOAT_TOL * amax + DOT_ABS_FLOOR);
            if (!(r <= worst)) worst = isnan(r) ? INFINITY : r;
        }
        free(f);
        free(a);
        free(b);
        free(q);
    }
    return worst;
}

/* Number of bytes where fast from_float differs from the reference, over
 * random data plus values that stress rounding (ties, subnormals, huge). */
static size_t from_float_diff(ryot_type t, kernel_from_float_fn fast) {
    const int64_t *sizes;
    int ns = sizes_for(t, &sizes);
    size_t diff = 0;
    for (int k = 0; k < ns; k++) {
        int64_t n = sizes[k];
        float *f = malloc(n * sizeof *f);
        fill_random(f, n, k == 0 ? 1e-6 : 3.0);
        static const float special[] = {0.0f, -0.0f, 1.00048828125f, 65519.0f, 65520.0f, 6e-8f, 3e-8f,
                                        1e-45f, -2.5f, 0.5f, 1.5f, 1e30f};
        if (block_of(t) == 1)
            for (int64_t i = 0; i < n && i < 12; i++) f[i] = special[i];
        if (k == 1 && n >= 64) /* an all-zero block */
            for (int64_t i = 32; i < 64; i++) f[i] = 0;
        size_t nb = row_bytes(t, n);
        uint8_t *a = calloc(1, nb), *b = calloc(1, nb);
        kernels_ref(t)->from_float(f, a, n);
        fast(f, b, n);
        for (size_t i = 0; i < nb; i++) diff += a[i] != b[i];
        free(a);
        free(b);
        free(f);
    }
    return diff;
}

/* RMS(dequant(quant(x)) - x) / RMS(x), worst over sizes, for data without
 * outliers (which would inflate block scales and make the bound loose). */
static double roundtrip_err(ryot_type t, kernel_from_float_fn from, kernel_to_float_fn to) {
    const int64_t *sizes;
    int ns = sizes_for(t, &sizes);
    double worst = 0;
    for (int k = 0; k < ns; k++) {
        int64_t n = sizes[k];
        float *f = malloc(n * sizeof *f), *g = malloc(n * sizeof *g);
        void *q = malloc(row_bytes(t, n));
        fill_random_opt(f, n, 0.02, false);
        from(f, q, n);
        to(q, g, n);
        double e = 0, r = 0;
        for (int64_t i = 0; i < n; i++) {
            e += ((double)g[i] - f[i]) * ((double)g[i] - f[i]);
            r += (double)f[i] * f[i];
        }
        double rel = sqrt(e / r);
        if (!(rel <= worst)) worst = isnan(rel) ? INFINITY : rel;
        free(f);
        free(g);
        free(q);
    }
    return worst;
}

static const kernel_isa fast_isas[] = {KERNEL_ISA_AVX2, KERNEL_ISA_AVX512};

/* ------------------------------------------------------------ tests */

static void test_fp16_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ryot_fp16_to_fp32((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {
            assert_true(isnan(f));
            assert_true(isnan(ryot_fp16_to_fp32(ryot_fp32_to_fp16(f))));
            continue;
        }
        if (ryot_fp32_to_fp16(f) != h) fail_msg("fp16 0x%04x -> %g -> 0x%04x", h, f, ryot_fp32_to_fp16(f));
        /* the midpoint to the next value rounds to even */
        if ((h & 0x7fff) < 0x7bff) {
            float next = ryot_fp16_to_fp32((uint16_t)(h + 1));
            float mid = (f + next) / 2; /* exact: fp16 values have few bits */
            uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (ryot_fp32_to_fp16(mid) != want) fail_msg("fp16 tie after 0x%04x", h);
        }
    }
    assert_int_equal(ryot_fp32_to_fp16(65519.0f), 0x7bff);
    assert_int_equal(ryot_fp32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(ryot_fp32_to_fp16(-1e10f), 0xfc00);
    assert_int_equal(ryot_fp32_to_fp16(5.9604644775390625e-08f), 0x0001);
    assert_int_equal(ryot_fp32_to_fp16(2.98023223876953125e-08f), 0x0000); /* tie to even 0 */
    assert_int_equal(ryot_fp32_to_fp16(1e-45f), 0x0000);
}

static void test_bf16(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ryot_bf16_to_fp32((uint16_t)h);
        if (isnan(f)) continue;
        assert_int_equal(ryot_fp32_to_bf16(f), h);
    }
    assert_int_equal(ryot_fp32_to_bf16(1.00390625f), 0x3f80);    /* 1 + 2^-8: tie, to even */
    assert_int_equal(ryot_fp32_to_bf16(1.01171875f), 0x3f82);    /* 1 + 3*2^-8: tie, to even */
    assert_true(isnan(ryot_bf16_to_fp32(ryot_fp32_to_bf16(NAN))));
}

static void test_isa_selection(void **state) {
    (void)state;
    kernel_isa best = kernels_best_isa();
    printf("kernels: best ISA on this CPU: %s\n", kernel_isa_name(best));
    assert_int_equal(kernels_init(KERNEL_ISA_REF), KERNEL_ISA_REF);
    assert_ptr_equal(kernels_get(RYOT_TYPE_Q4_0), kernels_ref(RYOT_TYPE_Q4_0));
    assert_int_equal(kernels_init(KERNEL_ISA_AVX512), best);
    setenv("RYOT_ISA", "ref", 1);
    assert_int_equal(kernels_init(KERNEL_ISA_AUTO), KERNEL_ISA_REF);
    setenv("RYOT_ISA", "bogus", 1);
    assert_int_equal(kernels_init(KERNEL_ISA_AUTO), best);
    unsetenv("RYOT_ISA");
    assert_int_equal(kernels_init(KERNEL_ISA_AUTO), best);
    assert_null(kernels_get_isa(KERNEL_ISA_AVX512 + 1, RYOT_TYPE_F32));
    for (size_t c = 0; c < N_CASES; c++) {
        const kernel_traits *k = kernels_get(cases[c].t);
        assert_true(k->supported);
        assert_non_null(k->to_float);
        assert_non_null(k->from_float);
        assert_non_null(k->vec_dot);
        assert_non_null(k->vec_dot_rows);
    }
    assert_false(kernels_get(RYOT_TYPE_Q2_K)->supported);
    assert_false(kernels_get(RYOT_TYPE_Q8_K)->supported);
    assert_non_null(kernels_get(RYOT_TYPE_Q8_K)->from_float);
    assert_false(kernels_get((ryot_type)999)->supported);
}

static void test_roundtrip(void **state) {
    (void)state;
    for (size_t c = 0; c < N_CASES; c++) {
        const kernel_traits *r = kernels_ref(cases[c].t);
        double e = roundtrip_err(cases[c].t, r->from_float, r->to_float);
        printf("  round trip %-5s rms err/rms %.5f (bound %.3f)\n", ryot_type_name(cases[c].t), e, cases[c].rt_bound);
        if (!(e <= cases[c].rt_bound)) fail_msg("%s round trip %g > %g", ryot_type_name(cases[c].t), e, cases[c].rt_bound);
    }
    for (size_t c = 0; c < sizeof act_cases / sizeof act_cases[0]; c++) {
        const kernel_traits *r = kernels_ref(act_cases[c].t);
        double e = roundtrip_err(act_cases[c].t, r->from_float, r->to_float);
        if (!(e <= act_cases[c].rt_bound)) fail_msg("%s round trip %g", ryot_type_name(act_cases[c].t), e);
    }
}

/* Q8_1's s must be d * sum(qs) and Q8_K's bsums the sums of 16 codes: the
 * min terms of Q4_1/Q5_1 and the K-quants depend on them. */
static void test_activation_sums(void **state) {
    (void)state;
    float f[512];
    fill_random(f, 512, 1.0);
    uint8_t buf[2 * 292];
    for (int pass = 0; pass < 3; pass++) {
        kernel_isa isa = pass == 0 ? KERNEL_ISA_REF : fast_isas[pass - 1];
        const kernel_traits *k1 = kernels_get_isa(isa, RYOT_TYPE_Q8_1), *kk = kernels_get_isa(isa, RYOT_TYPE_Q8_K);
        if (!k1) continue;
        k1->from_float(f, buf, 64);
        for (int b = 0; b < 2; b++) {
            const uint8_t *blk = buf + 36 * b;
            uint16_t d, s;
            memcpy(&d, blk, 2);
            memcpy(&s, blk + 2, 2);
            int sum = 0;
            for (int i = 0; i < 32; i++) sum += (int8_t)blk[4 + i];
            float want = ryot_fp16_to_fp32(d) * sum;
            assert_true(fabsf(ryot_fp16_to_fp32(s) - want) <= 2e-3f * fabsf(want) + 1e-6f);
        }
        kk->from_float(f, buf, 512);
        for (int b = 0; b < 2; b++) {
            const uint8_t *blk = buf + 292 * b;
            for (int g = 0; g < 16; g++) {
                int sum = 0;
                for (int i = 0; i < 16; i++) sum += (int8_t)blk[4 + 16 * g + i];
                int16_t bs;
                memcpy(&bs, blk + 4 + 256 + 2 * g, 2);
                assert_int_equal(bs, sum);
            }
        }
    }
}

/* The reference dot equals the float dot of the dequantized rows (up to
 * float rounding): ties vec_dot's element order to to_float's. */
static void test_ref_dot_matches_dequant(void **state) {
    (void)state;
    for (size_t c = 0; c < N_CASES; c++) {
        ryot_type t = cases[c].t;
        const int64_t *sizes;
        int ns = sizes_for(t, &sizes);
        for (int k = 0; k < ns; k++) {
            dot_data d;
            dot_data_make(&d, t, sizes[k], 1, 1);
            float *xf = malloc(d.n * sizeof *xf), *yf = malloc(d.n * sizeof *yf);
            kernels_ref(d.tx)->to_float(d.x, xf, d.n);
            kernels_ref(d.ty)->to_float(d.y, yf, d.n);
            double want = 0, mag = 0;
            for (int64_t i = 0; i < d.n; i++) {
                want += (double)xf[i] * yf[i];
                mag += fabs((double)xf[i] * yf[i]);
            }
            float got;
            kernels_ref(t)->vec_dot(d.n, &got, d.x, d.y);
            /* Q4_1/Q5_1 use s = d*sum(q) rounded to fp16 for the min term */
            double tol = 1e-3 * mag + 1e-30;
            if (!(fabs(got - want) <= tol)) fail_msg("%s n=%lld ref dot %g, dequant dot %g", ryot_type_name(t), (long long)d.n, got, want);
            free(xf);
            free(yf);
            dot_data_free(&d);
        }
    }
}

static void test_fast_vs_ref(void **state) {
    (void)state;
    for (size_t a = 0; a < sizeof fast_isas / sizeof fast_isas[0]; a++) {
        kernel_isa isa = fast_isas[a];
        if (!kernels_get_isa(isa, RYOT_TYPE_F32)) {
            printf("  %s: not supported on this CPU, skipped\n", kernel_isa_name(isa));
            continue;
        }
        for (size_t c = 0; c < N_CASES; c++) {
            ryot_type t = cases[c].t;
            const kernel_traits *k = kernels_get_isa(isa, t);
            double rd = vec_dot_worst(t, k->vec_dot);
            double rr = rows_worst_all(t, k->vec_dot_rows);
            double rf = to_float_worst(t, k->to_float);
            double e = roundtrip_err(t, k->from_float, k->to_float);
            printf("  %-6s %-5s dot %.3f rows %.3f to_float %.3f (of tolerance) round trip %.5f\n", kernel_isa_name(isa),
                   ryot_type_name(t), rd, rr, rf, e);
            if (!(rd <= 1)) fail_msg("%s %s vec_dot off by %g x tolerance", kernel_isa_name(isa), ryot_type_name(t), rd);
            if (!(rr <= 1)) fail_msg("%s %s vec_dot_rows off by %g x tolerance", kernel_isa_name(isa), ryot_type_name(t), rr);
            if (!(rf <= 1)) fail_msg("%s %s to_float off by %g x tolerance", kernel_isa_name(isa), ryot_type_name(t), rf);
            if (!(e <= cases[c].rt_bound)) fail_msg("%s %s round trip %g", kernel_isa_name(isa), ryot_type_name(t), e);
            if (t == RYOT_TYPE_F16 || t == RYOT_TYPE_BF16 || t == RYOT_TYPE_F32 || t == RYOT_TYPE_Q8_0)
                if (from_float_diff(t, k->from_float)) fail_msg("%s %s from_float differs from ref", kernel_isa_name(isa), ryot_type_name(t));
        }
        for (size_t c = 0; c < sizeof act_cases / sizeof act_cases[0]; c++) {
            ryot_type t = act_cases[c].t;
            size_t diff = from_float_diff(t, kernels_get_isa(isa, t)->from_float);
            if (diff) fail_msg("%s %s from_float: %zu bytes differ from ref", kernel_isa_name(isa), ryot_type_name(t), diff);
            double rf = to_float_worst(t, kernels_get_isa(isa, t)->to_float);
            if (!(rf <= 1)) fail_msg("%s %s to_float off", kernel_isa_name(isa), ryot_type_name(t));
        }
    }
}

/* The reference's generic vec_dot_rows (a loop over vec_dot) obeys the same
 * contract: strides, padding untouched. */
static void test_ref_rows(void **state) {
    (void)state;
    for (size_t c = 0; c < N_CASES; c++) {
        double r = rows_worst_all(cases[c].t, kernels_ref(cases[c].t)->vec_dot_rows);
        if (!(r <= 1)) fail_msg("ref %s vec_dot_rows off by %g", ryot_type_name(cases[c].t), r);
    }
}

/* ------------------------------------------------------------ the checks can fail */

/* A Q4_K dot that is wrong in one code of one block. */
static void broken_dot_q4_K(int64_t n, float *s, const void *x, const void *y) {
    size_t nb = row_bytes(RYOT_TYPE_Q4_K, n);
    uint8_t *c = malloc(nb);
    memcpy(c, x, nb);
    c[nb - 1] ^= 0x10; /* one high nibble of the last block */
    kernels_ref(RYOT_TYPE_Q4_K)->vec_dot(n, s, c, y);
    free(c);
}

/* A Q8_0 dot that ignores the last block. */
static void broken_dot_q8_0(int64_t n, float *s, const void *x, const void *y) {
    if (n <= 32) {
        *s = 0;
        return;
    }
    kernels_ref(RYOT_TYPE_Q8_0)->vec_dot(n - 32, s, x, y);
}

/* A Q6_K to_float with two neighbouring elements swapped. */
static void broken_to_float_q6_K(const void *src, float *dst, int64_t n) {
    kernels_ref(RYOT_TYPE_Q6_K)->to_float(src, dst, n);
    float t = dst[n - 2];
    dst[n - 2] = dst[n - 1];
    dst[n - 1] = t;
}

/* A Q4_1 rows kernel that skips the last activation row. */
static void broken_rows_q4_1(int64_t n, int64_t nrx, int64_t nry, const void *x, size_t bx, const void *y, size_t by,
                             float *s, size_t bs) {
    kernels_ref(RYOT_TYPE_Q4_1)->vec_dot_rows(n, nrx, nry > 1 ? nry - 1 : nry, x, bx, y, by, s, bs);
}

/* A Q8_0 from_float that rounds half away from zero instead of to even. */
static void broken_from_float_q8_0(const float *src, void *dst, int64_t n) {
    kernels_ref(RYOT_TYPE_Q8_0)->from_float(src, dst, n);
    uint8_t *b = dst;
    for (int64_t ib = 0; ib < n / 32; ib++) b[34 * ib + 2 + 3] ^= 1;
}

/* A Q4_0 quantizer with a wrong scale (off by 20%). */
static void broken_from_float_q4_0(const float *src, void *dst, int64_t n) {
    float *f = malloc(n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = src[i];
    kernels_ref(RYOT_TYPE_Q4_0)->from_float(f, dst, n);
    uint8_t *b = dst;
    for (int64_t ib = 0; ib < n / 32; ib++) {
        uint16_t d;
        memcpy(&d, b + 18 * ib, 2);
        d = ryot_fp32_to_fp16(ryot_fp16_to_fp32(d) * 1.2f);
        memcpy(b + 18 * ib, &d, 2);
    }
    free(f);
}

static void test_checks_catch_broken_kernels(void **state) {
    (void)state;
    assert_true(vec_dot_worst(RYOT_TYPE_Q4_K, broken_dot_q4_K) > 1);
    assert_true(vec_dot_worst(RYOT_TYPE_Q8_0, broken_dot_q8_0) > 1);
    assert_true(to_float_worst(RYOT_TYPE_Q6_K, broken_to_float_q6_K) > 1);
    assert_true(rows_worst_all(RYOT_TYPE_Q4_1, broken_rows_q4_1) > 1);
    assert_true(from_float_diff(RYOT_TYPE_Q8_0, broken_from_float_q8_0) > 0);
    assert_true(roundtrip_err(RYOT_TYPE_Q4_0, broken_from_float_q4_0, kernels_ref(RYOT_TYPE_Q4_0)->to_float) > 0.12);
    /* and the correct reference passes the same checks */
    assert_true(vec_dot_worst(RYOT_TYPE_Q4_K, kernels_ref(RYOT_TYPE_Q4_K)->vec_dot) == 0);
}

/* ------------------------------------------------------------ real files */

/* Dequantizes rows of every supported tensor of a real model and checks they
 * look like weights: finite, and for the K-quants the same spread in every
 * sub-block position (a wrong scale unpacking or bit placement shows up as
 * one position with a very different RMS).  Fast to_float and vec_dot are
 * compared with the reference on the real blocks too.  Skipped when the
 * model files are absent. */
static void check_model(const char *name) {
    char path[512];
    const char *home = getenv("HOME");
    snprintf(path, sizeof path, "%s/.cache/ryot/models/%s", home ? home : "", name);
    gguf_file *f = NULL;
    ryot_error err = {0};
    if (gguf_open(path, &f, &err) != RYOT_OK) {
        printf("  %s: not available (%s), skipped\n", name, err.msg);
        return;
    }
    int seen[RYOT_TYPE_COUNT] = {0};
    for (uint64_t ti = 0; ti < f->n_tensors; ti++) {
        const gguf_tensor *t = &f->tensors[ti];
        const kernel_traits *k = kernels_ref(t->type);
        if (!k->supported || t->type == RYOT_TYPE_F32) continue;
        int64_t n = (int64_t)t->ne[0];
        int64_t rows = (int64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        if (rows > 256) rows = 256;
        size_t rb = row_bytes(t->type, n);
        float *v = malloc(n * sizeof *v), *w = malloc(n * sizeof *w);
        double pos_sq[16] = {0}, pos_cnt[16] = {0}, sum = 0, sq = 0;
        int64_t cnt = 0;
        int npos = t->type == RYOT_TYPE_Q6_K ? 16 : 8;
        int64_t span = t->type == RYOT_TYPE_Q6_K ? 16 : 32;
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *row = (const uint8_t *)t->data + r * rb;
            k->to_float(row, v, n);
            for (int64_t i = 0; i < n; i++) {
                if (!isfinite(v[i])) fail_msg("%s %.*s: non-finite value", name, (int)t->name.len, t->name.data);
                sum += v[i];
                sq += (double)v[i] * v[i];
                int p = (int)((i % 256) / span);
                pos_sq[p] += (double)v[i] * v[i];
                pos_cnt[p]++;
            }
            cnt += n;
            for (size_t a = 0; a < sizeof fast_isas / sizeof fast_isas[0]; a++) {
                const kernel_traits *kf = kernels_get_isa(fast_isas[a], t->type);
                if (!kf) continue;
                kf->to_float(row, w, n);
                for (int64_t i = 0; i < n; i++)
                    if (fabsf(v[i] - w[i]) > 1e-6f * fabsf(v[i]) + 1e-30f) fail_msg("%s: fast to_float differs on real data", name);
                if (r < 8) {
                    ryot_type vt = k->vec_dot_type;
                    uint8_t *yq = malloc(row_bytes(vt, n));
                    float *yf = malloc(n * sizeof *yf), want, got;
                    fill_random(yf, n, 1.0);
                    kernels_ref(vt)->from_float(yf, yq, n);
                    k->vec_dot(n, &want, row, yq);
                    kf->vec_dot(n, &got, row, yq);
                    double tol = DOT_TOL * sum_abs_products(t->type, row, vt, yq, n) + DOT_ABS_FLOOR;
                    if (!(fabs(got - want) <= tol)) fail_msg("%s: fast vec_dot differs on real data", name);
                    free(yq);
                    free(yf);
                }
            }
        }
        double mean = sum / cnt, rms = sqrt(sq / cnt);
        double pmin = INFINITY, pmax = 0;
        if (block_of(t->type) == 256 && n % 256 == 0) {
            for (int p = 0; p < npos; p++) {
                double pr = sqrt(pos_sq[p] / pos_cnt[p]);
                pmin = fmin(pmin, pr);
                pmax = fmax(pmax, pr);
            }
        }
        if (!seen[t->type]++ || (pmax > 0 && pmax / pmin > 1.6))
            printf("  %-28.*s %-5s n=%-6lld mean %+.5f rms %.5f sub-block rms max/min %.3f\n", (int)t->name.len, t->name.data,
                   ryot_type_name(t->type), (long long)n, mean, rms, pmax > 0 ? pmax / pmin : 0.0);
        if (!(rms > 1e-4 && rms < 10)) fail_msg("%s: implausible rms %g", name, rms);
        if (!(fabs(mean) < 0.5 * rms + 1e-3)) fail_msg("%s: mean %g far from 0 (rms %g)", name, mean, rms);
        if (pmax > 0 && !(pmax / pmin < K_POS_RATIO_MAX))
            fail_msg("%.*s (%s): sub-block rms ratio %g", (int)t->name.len, t->name.data, ryot_type_name(t->type), pmax / pmin);
        free(v);
        free(w);
    }
    gguf_close(f);
}

/* Batch invariance at the kernel level: a (weight row, activation row)
 * pair's result is bitwise the same whether vec_dot_rows computes it in a
 * 7 x 9 call (all tile shapes and edges), alone (1 x 1), with its weight
 * rows only (7 x 1, the decode path) or with its activation rows only
 * (1 x 9); the engine's batched forward relies on it. */
static void test_rows_pair_invariance(void **state) {
    (void)state;
    enum { NRX = 7, NRY = 15 }; /* 15 = a tile of 8, one of 4 and one of 3 */
    for (size_t a = 0; a < sizeof fast_isas / sizeof fast_isas[0]; a++) {
        kernel_isa isa = fast_isas[a];
        if (!kernels_get_isa(isa, RYOT_TYPE_F32)) continue;
        for (size_t c = 0; c < N_CASES; c++) {
            ryot_type t = cases[c].t;
            kernel_vec_dot_rows_fn rows = kernels_get_isa(isa, t)->vec_dot_rows;
            kernel_vec_dot_fn dot = kernels_get_isa(isa, t)->vec_dot;
            const int64_t *sizes;
            int ns = sizes_for(t, &sizes);
            for (int k = 0; k < ns; k++) {
                dot_data d;
                dot_data_make(&d, t, sizes[k], NRX, NRY);
                float all[NRY][NRX], one, col[NRX], row[NRY];
                rows(d.n, NRX, NRY, d.x, d.bx, d.y, d.by, &all[0][0], NRX);
                for (int j = 0; j < NRY; j++) {
                    const uint8_t *yj = d.y + (size_t)j * d.by;
                    rows(d.n, NRX, 1, d.x, d.bx, yj, d.by, col, NRX);
                    for (int i = 0; i < NRX; i++) {
                        const uint8_t *xi = d.x + (size_t)i * d.bx;
                        rows(d.n, 1, 1, xi, d.bx, yj, d.by, &one, 1);
                        float v;
                        dot(d.n, &v, xi, yj);
                        if (memcmp(&v, &all[j][i], sizeof(float)))
                            fail_msg("%s %s n=%lld pair (%d,%d): vec_dot %.9g vs %dx%d %.9g", kernel_isa_name(isa),
                                     ryot_type_name(t), (long long)d.n, i, j, v, NRX, NRY, all[j][i]);
                        if (j == 0) {
                            rows(d.n, 1, NRY, xi, d.bx, d.y, d.by, row, 1);
                            for (int jj = 0; jj < NRY; jj++)
                                if (memcmp(&row[jj], &all[jj][i], sizeof(float)))
                                    fail_msg("%s %s n=%lld pair (%d,%d): 1x%d %.9g vs %dx%d %.9g", kernel_isa_name(isa),
                                             ryot_type_name(t), (long long)d.n, i, jj, NRY, row[jj], NRX, NRY,
                                             all[jj][i]);
                        }
                        if (memcmp(&one, &all[j][i], sizeof(float)) || memcmp(&col[i], &all[j][i], sizeof(float)))
                            fail_msg("%s %s n=%lld pair (%d,%d): 1x1 %.9g, %dx1 %.9g, %dx%d %.9g", kernel_isa_name(isa),
                                     ryot_type_name(t), (long long)d.n, i, j, one, NRX, col[i], NRX, NRY, all[j][i]);
                    }
                }
                dot_data_free(&d);
            }
        }
    }
}

/* Small activation batches (a speculative verify step: 1 + k rows): every
 * row count 1..17 (one tile of each size up to 8, then 8 + a remainder)
 * and weight-row counts with remainders, every row length of the type: each
 * output within tolerance of the reference and bitwise equal to vec_dot of
 * its pair, so a sequence's logits do not depend on how many draft rows
 * share its forward. */
static void test_rows_small_batch(void **state) {
    (void)state;
    static const int nrxs[] = {1, 3, 16};
    for (size_t a = 0; a < sizeof fast_isas / sizeof fast_isas[0]; a++) {
        kernel_isa isa = fast_isas[a];
        if (!kernels_get_isa(isa, RYOT_TYPE_F32)) continue;
        for (size_t c = 0; c < N_CASES; c++) {
            ryot_type t = cases[c].t;
            const kernel_traits *k = kernels_get_isa(isa, t);
            const int64_t *sizes;
            int ns = sizes_for(t, &sizes);
            for (int q = 0; q < ns; q++) {
                for (size_t ix = 0; ix < sizeof nrxs / sizeof nrxs[0]; ix++) {
                    const int nrx = nrxs[ix];
                    dot_data d;
                    dot_data_make(&d, t, sizes[q], nrx, 17);
                    float *s = malloc(sizeof(float) * (size_t)nrx * 17);
                    for (int nry = 1; nry <= 17; nry++) {
                        k->vec_dot_rows(d.n, nrx, nry, d.x, d.bx, d.y, d.by, s, (size_t)nrx);
                        for (int j = 0; j < nry; j++)
                            for (int i = 0; i < nrx; i++) {
                                const float got = s[(size_t)j * nrx + i];
                                float one;
                                k->vec_dot(d.n, &one, d.x + (size_t)i * d.bx, d.y + (size_t)j * d.by);
                                if (memcmp(&one, &got, sizeof one))
                                    fail_msg("%s %s n=%lld %dx%d pair (%d,%d): %.9g, vec_dot %.9g", kernel_isa_name(isa),
                                             ryot_type_name(t), (long long)d.n, nrx, nry, i, j, got, one);
                                const double r = dot_ratio(&d, i, j, got);
                                if (!(r <= 1))
                                    fail_msg("%s %s n=%lld %dx%d pair (%d,%d): %g x tolerance from ref",
                                             kernel_isa_name(isa), ryot_type_name(t), (long long)d.n, nrx, nry, i, j, r);
                            }
                    }
                    free(s);
                    dot_data_free(&d);
                }
            }
        }
    }
}

static void test_real_models(void **state) {
    (void)state;
    check_model("gemma-3-270m-q4_k_m.gguf");
    check_model("SmolLM2-135M-Instruct.Q4_1.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_exhaustive),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_isa_selection),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_activation_sums),
        cmocka_unit_test(test_ref_dot_matches_dequant),
        cmocka_unit_test(test_ref_rows),
        cmocka_unit_test(test_fast_vs_ref),
        cmocka_unit_test(test_rows_pair_invariance),
        cmocka_unit_test(test_rows_small_batch),
        cmocka_unit_test(test_checks_catch_broken_kernels),
        cmocka_unit_test(test_real_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
