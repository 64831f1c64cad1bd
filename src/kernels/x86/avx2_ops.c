/* AVX2+FMA versions of the forward pass's hot ops (kernel_ops,
 * kernels/kernels.h).  Compiled with -mavx2 -mfma (Makefile: avx2*.c); the
 * engine calls them only after kernels_init reported AVX2.  The plain C
 * versions in kernels/ref/ref_ops.c define the results; tests compare the two. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>

#include "kernels/kernels_impl.h"
#include "kernels/kmath.h"

/* exp(x) for x <= 0, the same range reduction and polynomial as
 * kernel_exp_neg; inputs below -87 give 0. */
static inline __m256 exp_neg8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 xc = _mm256_max_ps(x, lo);
    const __m256 kf = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i k = _mm256_add_epi32(_mm256_cvtps_epi32(kf), _mm256_set1_epi32(127));
    const __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(k, 23)));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), v);
}

static inline __m256 abs8(__m256 x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }

static void silu_mul(float *h, const float *g, const float *u, int n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp_neg8(_mm256_sub_ps(_mm256_setzero_ps(), abs8(x)));
        const __m256 r = _mm256_div_ps(one, _mm256_add_ps(one, e));
        const __m256 sig = _mm256_blendv_ps(r, _mm256_mul_ps(e, r), x); /* sign bit set: e*r */
        _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_mul_ps(x, sig), _mm256_loadu_ps(u + i)));
    }
    if (i < n) ref_silu_mul(h + i, g + i, u + i, n - i);
}

static inline __m256 round_f16_8(__m256 x) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

/* F16 input and output, as ref_gelu_mul (llama.cpp's table). */
static void gelu_mul(float *h, const float *g, const float *u, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), k = _mm256_set1_ps(0.79788456080286535588f),
                 c = _mm256_set1_ps(0.044715f), sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-10.0f),
                 hi = _mm256_set1_ps(10.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x0 = _mm256_loadu_ps(g + i), x = round_f16_8(x0);
        const __m256 y = _mm256_mul_ps(_mm256_mul_ps(k, x), _mm256_fmadd_ps(_mm256_mul_ps(c, x), x, one));
        const __m256 e = exp_neg8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), abs8(y)));
        __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
        t = _mm256_or_ps(t, _mm256_and_ps(y, sign)); /* tanh is odd */
        __m256 gl = round_f16_8(_mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, t)));
        gl = _mm256_andnot_ps(_mm256_cmp_ps(x0, lo, _CMP_LE_OQ), gl);
        gl = _mm256_blendv_ps(gl, x0, _mm256_cmp_ps(x0, hi, _CMP_GE_OQ));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(gl, _mm256_loadu_ps(u + i)));
    }
    if (i < n) ref_gelu_mul(h + i, g + i, u + i, n - i);
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One F16 accumulator step: a = f16(a * c) when c >= 0 is a rescale, then
 * a = f16(a + w v). */
#define PV_STEP(a, off)                                                                                   \
    do {                                                                                                  \
        if (resc) a = round_f16_8(_mm256_mul_ps(a, c));                                                   \
        a = round_f16_8(_mm256_fmadd_ps(w, _mm256_loadu_ps(vr + (off)), a));                              \
    } while (0)

static void softmax_pv(float *s, int n, float scale, float *m, float *l, float *acc, const float *v, int dv) {
    /* Pass 1, scalar as in ops.c: s[j] becomes the key's weight w >= 0, or
     * -c (sign bit set, c in [0, 1]) where key j is a new maximum: rescale
     * by c, weight 1. */
    float mx = *m, sum = *l;
    for (int j = 0; j < n; j++) {
        const float x = s[j] * scale;
        if (x > mx) {
            const float c = expf(mx - x); /* 0 for the first key */
            mx = x;
            sum = fmaf(sum, c, 1.0f);
            s[j] = -c;
        } else {
            const float w = expf(x - mx);
            sum += w;
            s[j] = w;
        }
    }
    *m = mx;
    *l = sum;
    /* Pass 2: acc, 64 columns at a time in registers. */
    const __m256 one = _mm256_set1_ps(1.0f);
    int c0 = 0;
    for (; c0 + 64 <= dv; c0 += 64) {
        __m256 a0 = _mm256_loadu_ps(acc + c0), a1 = _mm256_loadu_ps(acc + c0 + 8), a2 = _mm256_loadu_ps(acc + c0 + 16),
               a3 = _mm256_loadu_ps(acc + c0 + 24), a4 = _mm256_loadu_ps(acc + c0 + 32),
               a5 = _mm256_loadu_ps(acc + c0 + 40), a6 = _mm256_loadu_ps(acc + c0 + 48),
               a7 = _mm256_loadu_ps(acc + c0 + 56);
        for (int j = 0; j < n; j++) {
            const bool resc = signbit(s[j]);
            const __m256 c = _mm256_set1_ps(-s[j]), w = resc ? one : _mm256_set1_ps(s[j]);
            const float *vr = v + (size_t)j * dv + c0;
            PV_STEP(a0, 0);
            PV_STEP(a1, 8);
            PV_STEP(a2, 16);
            PV_STEP(a3, 24);
            PV_STEP(a4, 32);
            PV_STEP(a5, 40);
            PV_STEP(a6, 48);
            PV_STEP(a7, 56);
        }
        _mm256_storeu_ps(acc + c0, a0);
        _mm256_storeu_ps(acc + c0 + 8, a1);
        _mm256_storeu_ps(acc + c0 + 16, a2);
        _mm256_storeu_ps(acc + c0 + 24, a3);
        _mm256_storeu_ps(acc + c0 + 32, a4);
        _mm256_storeu_ps(acc + c0 + 40, a5);
        _mm256_storeu_ps(acc + c0 + 48, a6);
        _mm256_storeu_ps(acc + c0 + 56, a7);
    }
    for (; c0 + 8 <= dv; c0 += 8) {
        __m256 a = _mm256_loadu_ps(acc + c0);
        for (int j = 0; j < n; j++) {
            const bool resc = signbit(s[j]);
            const __m256 c = _mm256_set1_ps(-s[j]), w = resc ? one : _mm256_set1_ps(s[j]);
            const float *vr = v + (size_t)j * dv + c0;
            PV_STEP(a, 0);
        }
        _mm256_storeu_ps(acc + c0, a);
    }
    for (; c0 < dv; c0++) {
        float a = acc[c0];
        for (int j = 0; j < n; j++) {
            const bool resc = signbit(s[j]);
            if (resc) a = kernel_round_f16(a * -s[j]);
            a = kernel_round_f16(fmaf(resc ? 1.0f : s[j], v[(size_t)j * dv + c0], a));
        }
        acc[c0] = a;
    }
}
#undef PV_STEP

/* One dot as the AVX2 F16 vec_dot sums it: 4 accumulators over 32-element
 * chunks, then 8-element chunks into the first, reduced (a0+a1)+(a2+a3) and
 * across lanes.  Two keys at a time share the q loads; the K tile was
 * converted to floats once (exact), not once per query row. */
static void qk_scores(const float *q, size_t q_stride, int rows, const uint16_t *k, int n, int dk, float *kt, float *s,
                      size_t s_stride) {
    if (dk % 8) { /* the vec_dot's scalar tail: leave it to the kernel itself */
        kernels_get_isa(KERNEL_ISA_AVX2, RYOT_TYPE_F16)
            ->vec_dot_rows(dk, n, rows, k, (size_t)dk * sizeof(uint16_t), q, q_stride * sizeof(float), s, s_stride);
        return;
    }
    for (int i = 0; i < n * dk; i += 8)
        _mm256_storeu_ps(kt + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))));
    const int d32 = dk & ~31;
    for (int r = 0; r < rows; r++) {
        const float *qr = q + (size_t)r * q_stride;
        float *sr = s + (size_t)r * s_stride;
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            const float *k0 = kt + (size_t)j * dk, *k1 = k0 + dk;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            int i = 0;
            for (; i < d32; i += 32) {
                const __m256 q0 = _mm256_loadu_ps(qr + i), q1 = _mm256_loadu_ps(qr + i + 8),
                             q2 = _mm256_loadu_ps(qr + i + 16), q3 = _mm256_loadu_ps(qr + i + 24);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i), q0, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i + 8), q1, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i + 16), q2, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i + 24), q3, a3);
                b0 = _mm256_fmadd_ps(_mm256_loadu_ps(k1 + i), q0, b0);
                b1 = _mm256_fmadd_ps(_mm256_loadu_ps(k1 + i + 8), q1, b1);
                b2 = _mm256_fmadd_ps(_mm256_loadu_ps(k1 + i + 16), q2, b2);
                b3 = _mm256_fmadd_ps(_mm256_loadu_ps(k1 + i + 24), q3, b3);
            }
            for (; i < dk; i += 8) {
                const __m256 qv = _mm256_loadu_ps(qr + i);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i), qv, a0);
                b0 = _mm256_fmadd_ps(_mm256_loadu_ps(k1 + i), qv, b0);
            }
            sr[j] = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
            sr[j + 1] = hsum8(_mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3)));
        }
        for (; j < n; j++) {
            const float *k0 = kt + (size_t)j * dk;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            int i = 0;
            for (; i < d32; i += 32) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i), _mm256_loadu_ps(qr + i), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i + 8), _mm256_loadu_ps(qr + i + 8), a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i + 16), _mm256_loadu_ps(qr + i + 16), a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i + 24), _mm256_loadu_ps(qr + i + 24), a3);
            }
            for (; i < dk; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i), _mm256_loadu_ps(qr + i), a0);
            sr[j] = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        }
    }
}

/* As ref_gelu_erf, 8 at a time (the division is a real one, not rcp). */
static void gelu_erf(float *h, const float *x, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), zero = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 u = _mm256_mul_ps(abs8(v), _mm256_set1_ps(0.70710678118654752f));
        const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), u, one));
        __m256 p = _mm256_set1_ps(1.061405429f);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
        const __m256 e = exp_neg8(_mm256_sub_ps(zero, _mm256_mul_ps(u, u)));
        const __m256 q = _mm256_mul_ps(_mm256_mul_ps(p, t), e);
        const __m256 hv = _mm256_mul_ps(_mm256_mul_ps(half, v), q);
        const __m256 neg = _mm256_cmp_ps(v, zero, _CMP_LT_OQ);
        _mm256_storeu_ps(h + i, _mm256_blendv_ps(_mm256_sub_ps(v, hv), hv, neg));
    }
    if (i < n) ref_gelu_erf(h + i, x + i, n - i);
}

void avx2_ops_fill(kernel_ops *ops) {
    *ops = (kernel_ops){
        .silu_mul = silu_mul,
        .gelu_mul = gelu_mul,
        .softmax_pv = softmax_pv,
        .qk_scores = qk_scores,
        .gelu_erf = gelu_erf,
    };
    avx2_gemm_fill(ops);
}
