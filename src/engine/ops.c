#include "engine/ops.h"

#include <math.h>
#include <string.h>

void ops_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float scale = 1.0f / sqrtf((float)(sum / n) + eps);
    int n8 = n & ~7, i = 0;
    if (w) {
        for (i = 0; i < n8; i++) y[i] = x[i] * scale * w[i];
        for (; i < n; i++) y[i] = x[i] * scale * w[i];
    } else {
        for (i = 0; i < n8; i++) y[i] = x[i] * scale;
        for (; i < n; i++) y[i] = x[i] * scale;
    }
}

void ops_rope_cache(float *cs, int pos, int rope_dim, float base, float freq_scale, const float *freq_factors) {
    const float theta_scale = powf(base, -2.0f / (float)rope_dim);
    float theta = (float)pos;
    for (int i = 0; i < rope_dim / 2; i++) {
        float t = theta;
        if (freq_factors) t /= freq_factors[i];
        t *= freq_scale;
        cs[2 * i] = cosf(t);
        cs[2 * i + 1] = sinf(t);
        theta *= theta_scale;
    }
}

void ops_rope(float *x, int rope_dim, const float *cs, rope_layout layout) {
    const int half = rope_dim / 2;
    if (layout == ROPE_NORMAL) {
        for (int i = 0; i < half; i++) {
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * c - b * s;
            x[2 * i + 1] = a * s + b * c;
        }
    } else {
        for (int i = 0; i < half; i++) {
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float a = x[i], b = x[i + half];
            x[i] = a * c - b * s;
            x[i + half] = a * s + b * c;
        }
    }
}

/* Both activations go through ops_exp_neg (branch-free, inline), so these
 * loops vectorize; libm's expf/tanhf calls would not. */
static inline float sigmoid(float x) {
    const float e = ops_exp_neg(-fabsf(x)); /* exp(-|x|) in (0, 1] */
    const float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

void ops_silu_mul(float *h, const float *g, const float *u, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) h[i] = g[i] * sigmoid(g[i]) * u[i];
    for (; i < n; i++) h[i] = g[i] * sigmoid(g[i]) * u[i];
}

static inline float tanh_fast(float y) {
    const float e = ops_exp_neg(-2.0f * fabsf(y)); /* tanh|y| = (1 - e) / (1 + e) */
    const float t = (1.0f - e) / (1.0f + e);
    return y >= 0.0f ? t : -t;
}

float ops_gelu(float x) {
    const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanh_fast(k * x * (1.0f + 0.044715f * x * x)));
}

/* llama.cpp's GELU: a table of gelu_tanh over F16 inputs, F16 results. */
static inline float gelu_f16(float x) {
    const float y = ops_round_f16(ops_gelu(ops_round_f16(x)));
    return x <= -10.0f ? 0.0f : x >= 10.0f ? x : y;
}

void ops_gelu_mul(float *h, const float *g, const float *u, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) h[i] = gelu_f16(g[i]) * u[i];
    for (; i < n; i++) h[i] = gelu_f16(g[i]) * u[i];
}

void ops_add(float *y, const float *x, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) y[i] += x[i];
    for (; i < n; i++) y[i] += x[i];
}

void ops_scale(float *y, float s, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) y[i] *= s;
    for (; i < n; i++) y[i] *= s;
}

void ops_axpy(float *y, float a, const float *x, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) y[i] += a * x[i];
    for (; i < n; i++) y[i] += a * x[i];
}

void ops_softcap(float *y, float cap, int n) {
    const float inv = 1.0f / cap;
    for (int i = 0; i < n; i++) y[i] = cap * tanhf(y[i] * inv);
}

float ops_dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

double ops_logsumexp(const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    return (double)mx + log(sum);
}

static void softmax_pv_ref(float *s, int n, float scale, float *m, float *l, float *acc, const float *v, int dv) {
    float mx = *m, sum = *l;
    for (int j = 0; j < n; j++) {
        const float x = s[j] * scale;
        float w = 1.0f;
        if (x > mx) {
            const float c = expf(mx - x); /* 0 for the first key */
            mx = x;
            sum = fmaf(sum, c, 1.0f);
            for (int t = 0; t < dv; t++) acc[t] = ops_round_f16(acc[t] * c);
        } else {
            w = expf(x - mx);
            sum += w;
        }
        /* the FMA of the fast version: v*w is exact in double, so one
         * rounding to float (but for double-rounding ties) */
        const float *vj = v + (size_t)j * dv;
        for (int t = 0; t < dv; t++) acc[t] = ops_round_f16((float)((double)vj[t] * w + acc[t]));
    }
    *m = mx;
    *l = sum;
}

static void qk_scores_ref(const float *q, size_t q_stride, int rows, const uint16_t *k, int n, int dk, float *kt,
                          float *s, size_t s_stride) {
    (void)kt;
    kernels_get(RYOT_TYPE_F16)->vec_dot_rows(dk, n, rows, k, (size_t)dk * sizeof(uint16_t), q, q_stride * sizeof(float), s,
                                             s_stride);
}

static const ops_table ref_table = {
    .silu_mul = ops_silu_mul,
    .gelu_mul = ops_gelu_mul,
    .softmax_pv = softmax_pv_ref,
    .qk_scores = qk_scores_ref,
};

const ops_table *ops_table_ref(void) { return &ref_table; }

const ops_table *ops_select(kernel_isa isa) {
#if defined(__x86_64__)
    if (isa == KERNEL_ISA_AVX2 || isa == KERNEL_ISA_AVX512) return ops_table_avx2();
#endif
    (void)isa;
    return &ref_table;
}
