/* The encoder's kernel_ops: gemm_f32 / gemm_f16 (register-tiled small-batch
 * product) and gelu_erf, every level this CPU runs against the reference.
 *
 * Tolerances:
 *  - gemm: |fast - ref| <= 1e-5 * sum_k |x_k y_k| (+ 1e-30), the vec_dot
 *    tolerance of test_kernels.c: both sum the same products in float, only
 *    the order differs.  A wrong row, column, stride or bias moves an output
 *    by ~1/n of that sum, far above it.
 *  - gemm tile invariance: an output computed alone (1 x 1) has the same bits
 *    as inside a full product (the encoder's results must not depend on how
 *    rows are split between threads).
 *  - gelu_erf: within 2e-7 * max(1, |x|) of erf from libm in double (the
 *    A&S formula's 1.5e-7, plus float rounding), and fast within 1e-6 *
 *    max(1, |x|) of the reference. */
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
#include "kernels/kernels.h"

#define GEMM_TOL 1e-5

static float unif(ryot_rng *r, float lo, float hi) { return lo + (hi - lo) * (float)ryot_rng_uniform(r); }

typedef struct gemm_case {
    int n, nrx, nry;
} gemm_case;

/* the encoder's shapes (384 and 1536 long rows), odd tiles, tails of k */
static const gemm_case gcases[] = {
    {384, 16, 19}, {1536, 7, 5}, {384, 1, 1}, {64, 3, 4}, {40, 5, 9}, {13, 4, 6}, {8, 2, 3}, {3, 1, 2}, {384, 0, 3},
};

static double sum_abs(const float *x, const float *y, int n) {
    double s = 0;
    for (int k = 0; k < n; k++) s += fabs((double)x[k] * y[k]);
    return s;
}

/* Checks one level's gemm (f16: gemm_f16 over the F16 copy xh of x, whose
 * values x holds exactly). */
static void check_gemm(const kernel_ops *ref, const kernel_ops *fast, const char *name, bool f16) {
    ryot_rng r;
    ryot_rng_seed(&r, 77);
    for (size_t ci = 0; ci < sizeof gcases / sizeof *gcases; ci++) {
        const gemm_case c = gcases[ci];
        const size_t ldx = (size_t)c.n + 5, ldy = (size_t)c.n + 3, lds = (size_t)c.nrx + 2; /* strides > rows */
        float *x = calloc((size_t)c.nrx * ldx + 1, sizeof *x), *y = calloc((size_t)c.nry * ldy + 1, sizeof *y);
        uint16_t *xh = calloc((size_t)c.nrx * ldx + 1, sizeof *xh);
        float *bias = malloc(((size_t)c.nrx + 1) * sizeof *bias);
        float *s0 = malloc(((size_t)c.nry * lds + 1) * sizeof *s0), *s1 = malloc(((size_t)c.nry * lds + 1) * sizeof *s1);
        assert_non_null(x), assert_non_null(y), assert_non_null(xh), assert_non_null(bias), assert_non_null(s0),
            assert_non_null(s1);
        for (size_t i = 0; i < (size_t)c.nrx * ldx; i++) {
            xh[i] = ryot_fp32_to_fp16(unif(&r, -1, 1));
            x[i] = ryot_fp16_to_fp32(xh[i]);
        }
        for (size_t i = 0; i < (size_t)c.nry * ldy; i++) y[i] = unif(&r, -2, 2);
        for (int i = 0; i < c.nrx; i++) bias[i] = unif(&r, -1, 1);
        for (int pass = 0; pass < 2; pass++) {
            const float *b = pass ? bias : NULL;
            for (size_t i = 0; i < (size_t)c.nry * lds; i++) s0[i] = s1[i] = -777.0f; /* gaps stay untouched */
            if (f16) {
                ref->gemm_f16(c.n, c.nrx, c.nry, xh, ldx, y, ldy, b, s0, lds);
                fast->gemm_f16(c.n, c.nrx, c.nry, xh, ldx, y, ldy, b, s1, lds);
            } else {
                ref->gemm_f32(c.n, c.nrx, c.nry, x, ldx, y, ldy, b, s0, lds);
                fast->gemm_f32(c.n, c.nrx, c.nry, x, ldx, y, ldy, b, s1, lds);
            }
            for (int j = 0; j < c.nry; j++) {
                for (int i = 0; i < c.nrx; i++) {
                    const float *xr = x + (size_t)i * ldx, *yr = y + (size_t)j * ldy;
                    double want = b ? b[i] : 0;
                    for (int k = 0; k < c.n; k++) want += (double)xr[k] * yr[k];
                    const double tol = GEMM_TOL * (sum_abs(xr, yr, c.n) + (b ? fabs(b[i]) : 0)) + 1e-30;
                    const float got_ref = s0[(size_t)j * lds + i], got = s1[(size_t)j * lds + i];
                    if (!(fabs(got_ref - want) <= tol))
                        fail_msg("ref %s n=%d (%d,%d): %.9g, exact %.9g", f16 ? "gemm_f16" : "gemm_f32", c.n, i, j,
                                 got_ref, want);
                    if (!(fabs(got - got_ref) <= tol))
                        fail_msg("%s %s n=%d %dx%d (%d,%d): %.9g, ref %.9g", name, f16 ? "gemm_f16" : "gemm_f32",
                                 c.n, c.nrx, c.nry, i, j, got, got_ref);
                    /* alone, 1 x 1, at the same place: the same bits */
                    float one = -777.0f;
                    if (f16)
                        fast->gemm_f16(c.n, 1, 1, xh + (size_t)i * ldx, ldx, yr, ldy, b ? b + i : NULL, &one, 1);
                    else
                        fast->gemm_f32(c.n, 1, 1, xr, ldx, yr, ldy, b ? b + i : NULL, &one, 1);
                    if (memcmp(&one, &got, sizeof one))
                        fail_msg("%s n=%d %dx%d (%d,%d): %.9g in the product, %.9g alone", name, c.n, c.nrx, c.nry,
                                 i, j, got, one);
                }
                for (size_t i = (size_t)c.nrx; i < lds; i++) assert_true(s1[(size_t)j * lds + i] == -777.0f);
            }
        }
        free(x), free(y), free(xh), free(bias), free(s0), free(s1);
    }
}

static void test_gemm_levels(void **st) {
    (void)st;
    const kernel_ops *ref = kernels_ops_ref();
    const kernel_isa isas[] = {KERNEL_ISA_REF, KERNEL_ISA_AVX2, KERNEL_ISA_AVX512};
    for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
        const kernel_ops *o = kernels_ops_isa(isas[k]);
        if (!o) continue;
        assert_non_null(o->gemm_f32), assert_non_null(o->gemm_f16);
        check_gemm(ref, o, kernel_isa_name(isas[k]), false);
        check_gemm(ref, o, kernel_isa_name(isas[k]), true);
    }
}

/* A broken kernel (one product dropped, or the bias of the next row) fails
 * the tolerance: the check above has teeth. */
static void test_gemm_tolerance_catches_errors(void **st) {
    (void)st;
    ryot_rng r;
    ryot_rng_seed(&r, 5);
    enum { N = 384 };
    float x[2 * N], y[N], bias[2] = {0.25f, -0.5f};
    for (int i = 0; i < 2 * N; i++) x[i] = unif(&r, -1, 1);
    for (int i = 0; i < N; i++) y[i] = unif(&r, -2, 2);
    float s[2];
    kernels_ops_ref()->gemm_f32(N, 2, 1, x, N, y, N, bias, s, 2);
    const double tol = GEMM_TOL * (sum_abs(x, y, N) + fabs(bias[0]));
    const double drop = fabs((double)x[N - 1] * y[N - 1]), swap = fabs(bias[1] - bias[0]);
    assert_true(drop > tol || fabs((double)x[0] * y[0]) > tol);
    assert_true(swap > tol);
}

static void test_gelu_erf(void **st) {
    (void)st;
    enum { N = 4003 };
    static float x[N], h0[N], h1[N];
    ryot_rng r;
    ryot_rng_seed(&r, 11);
    for (int i = 0; i < N; i++) x[i] = unif(&r, -12, 12);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-30f, x[3] = -40.0f, x[4] = 40.0f, x[5] = -1e4f, x[6] = 1e4f;
    const kernel_ops *ref = kernels_ops_ref();
    ref->gelu_erf(h0, x, N);
    for (int i = 0; i < N; i++) {
        const double want = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        if (!(fabs(h0[i] - want) <= 2e-7 * fmax(1.0, fabs(x[i]))))
            fail_msg("ref gelu_erf(%.9g) = %.9g, want %.9g", x[i], h0[i], want);
    }
    assert_true(h0[0] == 0.0f && h0[3] == 0.0f && h0[4] == 40.0f && h0[6] == 1e4f);
    const kernel_isa isas[] = {KERNEL_ISA_AVX2, KERNEL_ISA_AVX512};
    for (size_t k = 0; k < sizeof isas / sizeof *isas; k++) {
        const kernel_ops *o = kernels_ops_isa(isas[k]);
        if (!o) continue;
        memcpy(h1, x, sizeof x);
        o->gelu_erf(h1, h1, N); /* in place */
        for (int i = 0; i < N; i++)
            if (!(fabs(h1[i] - h0[i]) <= 1e-6 * fmax(1.0, fabs(x[i]))))
                fail_msg("%s gelu_erf(%.9g) = %.9g, ref %.9g", kernel_isa_name(isas[k]), x[i], h1[i], h0[i]);
    }
}

int main(void) {
    kernels_init(KERNEL_ISA_AUTO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_levels),
        cmocka_unit_test(test_gemm_tolerance_catches_errors),
        cmocka_unit_test(test_gelu_erf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
