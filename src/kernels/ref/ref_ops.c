/* Reference versions of the forward pass's hot ops (kernel_ops): plain C,
 * the definition of their results.  Inner loops run over multiples of 8 with
 * a scalar tail so GCC's -O2 vectorizer takes them. */
#include <math.h>

#include "kernels/kernels_impl.h"
#include "kernels/kmath.h"

/* Both activations go through kernel_exp_neg (branch-free, inline), so these
 * loops vectorize; libm's expf/tanhf calls would not. */
static inline float sigmoid(float x) {
    const float e = kernel_exp_neg(-fabsf(x)); /* exp(-|x|) in (0, 1] */
    const float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

void ref_silu_mul(float *h, const float *g, const float *u, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) h[i] = g[i] * sigmoid(g[i]) * u[i];
    for (; i < n; i++) h[i] = g[i] * sigmoid(g[i]) * u[i];
}

static inline float tanh_fast(float y) {
    const float e = kernel_exp_neg(-2.0f * fabsf(y)); /* tanh|y| = (1 - e) / (1 + e) */
    const float t = (1.0f - e) / (1.0f + e);
    return y >= 0.0f ? t : -t;
}

static float gelu_tanh(float x) {
    const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanh_fast(k * x * (1.0f + 0.044715f * x * x)));
}

/* llama.cpp's GELU: a table of gelu_tanh over F16 inputs, F16 results. */
static inline float gelu_f16(float x) {
    const float y = kernel_round_f16(gelu_tanh(kernel_round_f16(x)));
    return x <= -10.0f ? 0.0f : x >= 10.0f ? x : y;
}

void ref_gelu_mul(float *h, const float *g, const float *u, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) h[i] = gelu_f16(g[i]) * u[i];
    for (; i < n; i++) h[i] = gelu_f16(g[i]) * u[i];
}

static void ref_softmax_pv(float *s, int n, float scale, float *m, float *l, float *acc, const float *v, int dv) {
    float mx = *m, sum = *l;
    for (int j = 0; j < n; j++) {
        const float x = s[j] * scale;
        float w = 1.0f;
        if (x > mx) {
            const float c = expf(mx - x); /* 0 for the first key */
            mx = x;
            sum = fmaf(sum, c, 1.0f);
            for (int t = 0; t < dv; t++) acc[t] = kernel_round_f16(acc[t] * c);
        } else {
            w = expf(x - mx);
            sum += w;
        }
        /* the FMA of the fast version: v*w is exact in double, so one
         * rounding to float (but for double-rounding ties) */
        const float *vj = v + (size_t)j * dv;
        for (int t = 0; t < dv; t++) acc[t] = kernel_round_f16((float)((double)vj[t] * w + acc[t]));
    }
    *m = mx;
    *l = sum;
}

void ref_qk_scores(const float *q, size_t q_stride, int rows, const uint16_t *k, int n, int dk, float *kt,
                          float *s, size_t s_stride) {
    (void)kt;
    kernels_ref(RYOT_TYPE_F16)->vec_dot_rows(dk, n, rows, k, (size_t)dk * sizeof(uint16_t), q, q_stride * sizeof(float), s,
                                             s_stride);
}

/* Output (j, i) of the product, summed in k order. */
static void ref_gemm_f32(int n, int nrx, int nry, const float *x, size_t ldx, const float *y, size_t ldy,
                         const float *bias, float *s, size_t lds) {
    for (int j = 0; j < nry; j++)
        for (int i = 0; i < nrx; i++) {
            const float *xr = x + (size_t)i * ldx, *yr = y + (size_t)j * ldy;
            float acc = 0.0f;
            for (int k = 0; k < n; k++) acc += xr[k] * yr[k];
            s[(size_t)j * lds + i] = bias ? acc + bias[i] : acc;
        }
}

static void ref_gemm_f16(int n, int nrx, int nry, const uint16_t *x, size_t ldx, const float *y, size_t ldy,
                         const float *bias, float *s, size_t lds) {
    for (int j = 0; j < nry; j++)
        for (int i = 0; i < nrx; i++) {
            const uint16_t *xr = x + (size_t)i * ldx;
            const float *yr = y + (size_t)j * ldy;
            float acc = 0.0f;
            for (int k = 0; k < n; k++) acc += ryot_fp16_to_fp32(xr[k]) * yr[k];
            s[(size_t)j * lds + i] = bias ? acc + bias[i] : acc;
        }
}

/* gelu(x) = x/2 (1 + erf(u)), u = x / sqrt 2.  With q = erfc(|u|) =
 * poly(t) exp(-u^2), t = 1 / (1 + p |u|) (A&S 7.1.26): gelu = x - x q / 2
 * for x >= 0 and x q / 2 below, which keeps the negative tail's precision. */
static inline float gelu_erf1(float x) {
    const float u = fabsf(x) * 0.70710678118654752f;
    const float t = 1.0f / (1.0f + 0.3275911f * u);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    const float q = p * t * kernel_exp_neg(-u * u);
    const float h = 0.5f * x * q;
    return x >= 0.0f ? x - h : h;
}

void ref_gelu_erf(float *h, const float *x, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) h[i] = gelu_erf1(x[i]);
    for (; i < n; i++) h[i] = gelu_erf1(x[i]);
}

void ref_ops_fill(kernel_ops *ops) {
    *ops = (kernel_ops){
        .silu_mul = ref_silu_mul,
        .gelu_mul = ref_gelu_mul,
        .softmax_pv = ref_softmax_pv,
        .qk_scores = ref_qk_scores,
        .gemm_f32 = ref_gemm_f32,
        .gemm_f16 = ref_gemm_f16,
        .gelu_erf = ref_gelu_erf,
    };
}
