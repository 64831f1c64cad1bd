/* Kernel API: one traits table indexed by tensor type (STYLE.md habit 2).
 *
 * Weights stay in their stored type.  For a matrix-vector or matrix-matrix
 * product the activations are first quantized, row by row, to the weight
 * type's `vec_dot_type` (e.g. Q8_0 for Q4_0/Q4_1/Q8_0, Q8_K for the K-quants,
 * F32 or F16 for float weights), then `vec_dot` takes one weight row and one
 * quantized activation row.
 *
 * kernels_init() picks the best implementation for this CPU once (AVX-512 >
 * AVX2 > scalar reference); kernels_ref() always returns the scalar reference
 * table (kernels/ref/), which defines the right answer.  Each level also has
 * a table of the forward pass's hot ops (kernel_ops), selected with it. */
#ifndef RYOT_KERNELS_H
#define RYOT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/types.h"

typedef void (*kernel_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*kernel_from_float_fn)(const float *src, void *dst, int64_t n);
/* s = dot(x, y) over n elements; x is a weight row of the table's type, y an
 * activation row already in vec_dot_type. */
typedef void (*kernel_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

/* Multi-row dot product (the matmul inner kernel):
 *   s[j*bs + i] = dot(x row i, y row j)   for 0 <= i < nrx, 0 <= j < nry
 * x: nrx weight rows of the table's type, row i at (const char *)x + i*bx;
 * y: nry activation rows in vec_dot_type, row j at (const char *)y + j*by;
 * s: floats, bs elements between the outputs of consecutive activation rows
 *    (for out[nry][n_out] computed over weight rows i0.., pass s = out + i0,
 *    bs = n_out).  n is the row length in elements, a multiple of the block
 *    size.  Strides are in bytes for x and y, in floats for s.
 * Results equal nrx*nry vec_dot calls up to float accumulation order (the
 * same tolerance as vec_dot against the reference).  Fast versions tile
 * weight rows x activation rows so each weight block is loaded once per tile;
 * any nrx, nry >= 0 works (remainders are handled).  Reentrant, no
 * allocation: threads call it on disjoint weight-row ranges.  Alignment:
 * rows need only their block's natural alignment (2 bytes for the quant
 * blocks as stored in GGUF, 4 for F32 and Q8_K); s must not overlap x or y. */
typedef void (*kernel_vec_dot_rows_fn)(int64_t n, int64_t nrx, int64_t nry, const void *x, size_t bx,
                                       const void *y, size_t by, float *s, size_t bs);

typedef struct kernel_traits {
    bool supported;                 /* false: the engine cannot compute with this type */
    ryot_type vec_dot_type;         /* activation type for vec_dot */
    kernel_to_float_fn to_float;    /* dequantize a row */
    kernel_from_float_fn from_float;/* quantize a row into this type (round to nearest);
                                     * for Q8_0/Q8_1/Q8_K (activation types) the fast
                                     * versions are bitwise equal to the reference */
    kernel_vec_dot_fn vec_dot;
    kernel_vec_dot_rows_fn vec_dot_rows;
} kernel_traits;
/* Which slots are set:
 *   supported types (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K):
 *     all four functions;
 *   activation-only types (Q8_1, Q8_K): to_float and from_float, supported
 *     is false and vec_dot/vec_dot_rows are NULL;
 *   everything else: all NULL.
 * vec_dot_type: Q4_0 Q5_0 Q8_0 -> Q8_0; Q4_1 Q5_1 -> Q8_1 (its s field
 * carries the weights' min term); Q4_K Q5_K Q6_K -> Q8_K; F32 F16 BF16 -> F32
 * (decode is bound by weight bytes, not activation bytes, and F32
 * activations add no rounding). */

/* Hot element-wise and attention ops with per-ISA versions, one table per
 * level beside the traits (the reference ones, kernels/ref/ref_ops.c, define
 * the results; tests compare every level the CPU has against them). */
typedef struct kernel_ops {
    /* h = silu(g) * u;  h may alias g. */
    void (*silu_mul)(float *h, const float *g, const float *u, int n);
    /* h = gelu_tanh(g) * u;  h may alias g.  As llama.cpp's CPU backend
     * computes it (a table over F16 inputs): g is rounded to F16 and
     * gelu_tanh of that is rounded to F16; g <= -10 gives 0, g >= 10 gives g. */
    void (*gelu_mul)(float *h, const float *g, const float *u, int n);
    /* Online-softmax step of one attention row over n keys, key by key as
     * llama.cpp's CPU flash attention does with an F16 V cache: for each raw
     * score s_j (s[0..n) is overwritten) times `scale`, a new maximum
     * rescales acc[0..dv) and the sum *l by expf(m_old - m_new) and weighs the
     * key 1, otherwise the weight is expf(s_j - m); then acc += w v_j (v: n
     * rows of dv floats) and *l = *l * rescale + w.  acc holds F16 values:
     * every update of it is rounded to F16 (llama.cpp accumulates in
     * ggml_fp16_t), so results follow the reference's rounding. */
    void (*softmax_pv)(float *s, int n, float scale, float *m, float *l, float *acc, const float *v, int dv);
    /* Attention scores of one K tile: s[r*s_stride + j] = q_r . k_j for
     * r < rows (q rows q_stride floats apart), j < n (k: n rows of dk F16).
     * kt: scratch of n*dk floats.  Every version gives the same bits as the
     * F16 vec_dot_rows of its own level. */
    void (*qk_scores)(const float *q, size_t q_stride, int rows, const uint16_t *k, int n, int dk, float *kt, float *s,
                      size_t s_stride);
    /* Small-batch matrix product over F32 activations (the embedding
     * encoder's projections: ~10-500 token rows against whole weight
     * matrices):
     *   s[j*lds + i] = sum_k x[i*ldx + k] * y[j*ldy + k]  (+ bias[i] if bias)
     * for i < nrx weight rows (F32, or F16 in gemm_f16), j < nry activation
     * rows (F32); strides in elements; any n, nrx, nry >= 0.  Each output is
     * summed the same way wherever it falls in the fast versions' register
     * tiles, so splitting rows between threads does not change its bits.
     * Results equal the reference up to float accumulation order (the
     * vec_dot tolerance).  Separate from the traits' vec_dot_rows, whose
     * arithmetic other kernels and the golden tests pin. */
    void (*gemm_f32)(int n, int nrx, int nry, const float *x, size_t ldx, const float *y, size_t ldy,
                     const float *bias, float *s, size_t lds);
    void (*gemm_f16)(int n, int nrx, int nry, const uint16_t *x, size_t ldx, const float *y, size_t ldy,
                     const float *bias, float *s, size_t lds);
    /* h = gelu(x) = x/2 (1 + erf(x / sqrt 2)) (BERT's erf GELU), erf from
     * Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7) on exp as
     * kernel_exp_neg; h may alias x. */
    void (*gelu_erf)(float *h, const float *x, int n);
} kernel_ops;

typedef enum kernel_isa {
    KERNEL_ISA_AUTO = 0,
    KERNEL_ISA_REF,
    KERNEL_ISA_AVX2,
    KERNEL_ISA_AVX512,
} kernel_isa;

/* Detect the CPU and select implementations; `want` forces a level (falls
 * back to the best available one below it).  Idempotent; call before use. */
kernel_isa kernels_init(kernel_isa want);
const char *kernel_isa_name(kernel_isa isa);

/* Table for type t (never NULL; check ->supported).  kernels_get uses the
 * level selected by the last kernels_init (running kernels_init(AUTO) first
 * if it never ran).  RYOT_ISA=ref|avx2|avx512 in the environment caps what
 * kernels_init(KERNEL_ISA_AUTO) selects. */
const kernel_traits *kernels_get(ryot_type t);
const kernel_traits *kernels_ref(ryot_type t);
/* Table of one level, NULL if this CPU cannot run it (for tests and
 * benchmarks, which compare levels without changing the selection). */
const kernel_traits *kernels_get_isa(kernel_isa isa, ryot_type t);
/* The ops of the selected level, of the reference, of one level (NULL if
 * this CPU cannot run it): as kernels_get, kernels_ref, kernels_get_isa. */
const kernel_ops *kernels_ops(void);
const kernel_ops *kernels_ops_ref(void);
const kernel_ops *kernels_ops_isa(kernel_isa isa);
/* Best level this CPU supports. */
kernel_isa kernels_best_isa(void);

/* FP16/BF16 <-> FP32 conversion (scalar). */
float ryot_fp16_to_fp32(uint16_t h);
uint16_t ryot_fp32_to_fp16(float f);
float ryot_bf16_to_fp32(uint16_t h);
uint16_t ryot_fp32_to_bf16(float f);

#endif
