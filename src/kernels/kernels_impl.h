/* Internal to src/kernels/: how the per-ISA files fill the traits table.
 * Each level starts from a copy of the level below and overrides the slots
 * it implements, so a missing fast kernel falls back to the next best. */
#ifndef RYOT_KERNELS_IMPL_H
#define RYOT_KERNELS_IMPL_H

#include "kernels/kernels.h"
#include "kernels/quants.h"

/* One ISA level: the traits by type and the ops. */
typedef struct kernel_level {
    kernel_traits traits[RYOT_TYPE_COUNT];
    kernel_ops ops;
} kernel_level;

void kernels_ref_fill(kernel_level *lv);
void kernels_avx2_fill(kernel_level *lv);   /* x86/avx2_*.c, -mavx2 */
void kernels_avx512_fill(kernel_level *lv); /* x86/avx512_*.c */
/* avx512_kernels.c built on SIMDe (tests only: tests/unit/test_kernels_avx512.c) */
void kernels_avx512_emu_fill(kernel_level *lv);
void ref_ops_fill(kernel_ops *ops);         /* ref/ref_ops.c */
void avx2_ops_fill(kernel_ops *ops);        /* x86/avx2_ops.c */
void avx512_ops_fill(kernel_ops *ops);      /* x86/avx512_ops.c: overrides some of AVX2's */
void avx512_emu_ops_fill(kernel_ops *ops);  /* the same on SIMDe (tests only) */
void avx2_gemm_fill(kernel_ops *ops);       /* x86/avx2_gemm.c */

/* Defines `static void NAME(...)` with the vec_dot_rows signature as a plain
 * double loop over DOT (a kernel_vec_dot_fn): the generic fallback. */
#define KERNEL_ROWS_FROM_DOT(NAME, DOT)                                                             \
    static void NAME(int64_t n, int64_t nrx, int64_t nry, const void *x, size_t bx, const void *y,  \
                     size_t by, float *s, size_t bs) {                                              \
        for (int64_t j = 0; j < nry; j++)                                                           \
            for (int64_t i = 0; i < nrx; i++)                                                       \
                DOT(n, s + (size_t)j * bs + i, (const char *)x + (size_t)i * bx,                    \
                    (const char *)y + (size_t)j * by);                                              \
    }

/* Scalar reference kernels (ref/), usable as fallbacks by the fast levels. */
void ref_f32_to_float(const void *src, float *dst, int64_t n);
void ref_f32_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_f32(int64_t n, float *s, const void *x, const void *y);
void ref_f16_to_float(const void *src, float *dst, int64_t n);
void ref_f16_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_f16(int64_t n, float *s, const void *x, const void *y);
void ref_bf16_to_float(const void *src, float *dst, int64_t n);
void ref_bf16_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_bf16(int64_t n, float *s, const void *x, const void *y);

void ref_q4_0_to_float(const void *src, float *dst, int64_t n);
void ref_q4_0_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_q4_0(int64_t n, float *s, const void *x, const void *y);
void ref_q4_1_to_float(const void *src, float *dst, int64_t n);
void ref_q4_1_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_q4_1(int64_t n, float *s, const void *x, const void *y);
void ref_q5_0_to_float(const void *src, float *dst, int64_t n);
void ref_q5_0_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_q5_0(int64_t n, float *s, const void *x, const void *y);
void ref_q5_1_to_float(const void *src, float *dst, int64_t n);
void ref_q5_1_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_q5_1(int64_t n, float *s, const void *x, const void *y);
void ref_q8_0_to_float(const void *src, float *dst, int64_t n);
void ref_q8_0_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_q8_0(int64_t n, float *s, const void *x, const void *y);
void ref_q8_1_to_float(const void *src, float *dst, int64_t n);
void ref_q8_1_from_float(const float *src, void *dst, int64_t n);

void ref_q4_K_to_float(const void *src, float *dst, int64_t n);
void ref_q4_K_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_q4_K(int64_t n, float *s, const void *x, const void *y);
void ref_q5_K_to_float(const void *src, float *dst, int64_t n);
void ref_q5_K_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_q5_K(int64_t n, float *s, const void *x, const void *y);
void ref_q6_K_to_float(const void *src, float *dst, int64_t n);
void ref_q6_K_from_float(const float *src, void *dst, int64_t n);
void ref_vec_dot_q6_K(int64_t n, float *s, const void *x, const void *y);
void ref_q8_K_to_float(const void *src, float *dst, int64_t n);
void ref_q8_K_from_float(const float *src, void *dst, int64_t n);

/* Reference ops (ref/ref_ops.c), fallbacks for the fast ones' tails. */
void ref_silu_mul(float *h, const float *g, const float *u, int n);
void ref_gelu_mul(float *h, const float *g, const float *u, int n);
void ref_gelu_erf(float *h, const float *x, int n);
void ref_qk_scores(const float *q, size_t q_stride, int rows, const uint16_t *k, int n, int dk, float *kt, float *s,
                   size_t s_stride);

/* Round to nearest, ties to even (the default FP mode), as the SIMD
 * conversions do, so fast quantizers can match the reference bitwise. */
static inline int ref_nearest_int(float x) {
    return (int)__builtin_rintf(x);
}

#endif
