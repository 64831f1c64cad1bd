/* Element-wise and row ops of the forward pass, plain C.
 *
 * Inner loops run over multiples of 8 with a scalar tail so GCC's -O2
 * ("very cheap") vectorizer takes them.  Every op is deterministic: the result
 * of one row never depends on how rows were split across threads. */
#ifndef RYOT_ENGINE_OPS_H
#define RYOT_ENGINE_OPS_H

#include <stdint.h>

#include "kernels/kernels.h"

/* y = x / sqrt(mean(x^2) + eps) * w   (w NULL: no weight).  The sum of squares
 * is accumulated in double (as llama.cpp does).  y may alias x. */
void ops_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* RoPE.  NORMAL rotates interleaved pairs (2i, 2i+1) (llama.cpp's `llama`
 * arch, whose Q/K rows the GGUF conversion permuted); NEOX rotates pairs
 * (i, i + rope_dim/2) (qwen2, gemma).  Dims at and beyond rope_dim pass through. */
typedef enum rope_layout {
    ROPE_NORMAL = 0,
    ROPE_NEOX = 1,
} rope_layout;

/* cs[2i], cs[2i+1] = cos, sin of theta_i for one position, i < rope_dim/2:
 *   theta_i = freq_scale * pos * base^(-2i/rope_dim) / freq_factors[i]
 * (freq_factors NULL: 1).  base^(-2i/d) is formed by repeated float
 * multiplication, as llama.cpp does, so angles agree with it bit for bit. */
void ops_rope_cache(float *cs, int pos, int rope_dim, float base, float freq_scale, const float *freq_factors);

/* Rotates one head vector x[0..head_dim) in place with a cache row. */
void ops_rope(float *x, int rope_dim, const float *cs, rope_layout layout);

/* h = silu(g) * u;  h may alias g. */
void ops_silu_mul(float *h, const float *g, const float *u, int n);
/* h = gelu_tanh(g) * u;  h may alias g.  As llama.cpp's CPU backend computes
 * it (a table over F16 inputs): g is rounded to F16 and gelu_tanh of that is
 * rounded to F16; g <= -10 gives 0, g >= 10 gives g. */
void ops_gelu_mul(float *h, const float *g, const float *u, int n);
float ops_gelu(float x);

void ops_add(float *y, const float *x, int n);   /* y += x */
void ops_scale(float *y, float s, int n);        /* y *= s */
void ops_axpy(float *y, float a, const float *x, int n); /* y += a*x */
/* y = cap * tanh(y / cap) */
void ops_softcap(float *y, float cap, int n);

/* y += a*x, inline for short rows in inner loops. */
static inline void ops_axpy_inline(float *restrict y, float a, const float *restrict x, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) y[i] += a * x[i];
    for (; i < n; i++) y[i] += a * x[i];
}

/* Sum with 8 independent lanes (deterministic, vectorizable). */
float ops_dot(const float *a, const float *b, int n);

/* exp(x) for x <= 0 (softmax arguments), relative error ~1e-7; inputs below
 * -87 (and -inf) give 0.  Branch-free and inline so loops over it vectorize. */
static inline float ops_exp_neg(float x) {
    /* exp(x) = 2^k * exp(r), r = x - k ln2 in [-ln2/2, ln2/2]; Taylor to r^7. */
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < -87.0f ? -87.0f : x;
    float kf = (xc * log2e + shifter) - shifter;
    float r = xc - kf * ln2_hi - kf * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { uint32_t u; float f; } two_k = {.u = (uint32_t)((int)kf + 127) << 23};
    float v = p * two_k.f;
    return x < -87.0f ? 0.0f : v;
}

/* x rounded to the nearest F16 value (ties to even), as a float: equals
 * ryot_fp16_to_fp32(ryot_fp32_to_fp16(x)) for |x| < 65520.  Branch free so
 * loops over it vectorize. */
static inline float ops_round_f16(float x) {
    union { float f; uint32_t u; } v = {.f = x}, a, sub;
    const uint32_t sign = v.u & 0x80000000u;
    a.u = v.u & 0x7fffffffu;
    /* normal F16 range: keep 10 mantissa bits, round half to even */
    const uint32_t rn = (a.u + 0xfffu + ((a.u >> 13) & 1u)) & ~0x1fffu;
    /* below 2^-14 (F16 subnormals, multiples of 2^-24): in [0.5, 1) floats
     * are 2^-24 apart, so the addition itself rounds */
    sub.f = (a.f + 0.5f) - 0.5f;
    v.u = sign | (a.u < 0x38800000u ? sub.u : rn);
    return v.f;
}

/* log of the softmax denominator: returns max + log(sum(exp(x - max))) over
 * x[0..n) in double (perplexity). */
double ops_logsumexp(const float *x, int n);

/* Hot ops with per-ISA versions: the plain C ones here define the results,
 * src/kernels/x86/avx2_ops.c has AVX2+FMA ones.  An engine picks a table
 * once (ops_select) from what kernels_init reported. */
typedef struct ops_table {
    void (*silu_mul)(float *h, const float *g, const float *u, int n);
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
     * F16 vec_dot_rows of the kernel level it is paired with. */
    void (*qk_scores)(const float *q, size_t q_stride, int rows, const uint16_t *k, int n, int dk, float *kt, float *s,
                      size_t s_stride);
} ops_table;

const ops_table *ops_table_ref(void);
const ops_table *ops_table_avx2(void); /* callable only on AVX2+FMA CPUs */
const ops_table *ops_select(kernel_isa isa);

#endif
