/* AVX2+FMA versions of the engine's hot element-wise ops (the ops_table of
 * src/engine/ops.h).  Compiled with -mavx2 -mfma (Makefile: avx2*.c); the
 * engine calls them only after kernels_init reported AVX2.  The plain C
 * versions in src/engine/ops.c define the results; tests compare the two. */
#include <immintrin.h>
#include <math.h>

#include "engine/ops.h"

/* exp(x) for x <= 0, the same range reduction and polynomial as
 * ops_exp_neg; inputs below -87 give 0. */
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
    if (i < n) ops_table_ref()->silu_mul(h + i, g + i, u + i, n - i);
}

static void gelu_mul(float *h, const float *g, const float *u, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), k = _mm256_set1_ps(0.79788456080286535588f),
                 c = _mm256_set1_ps(0.044715f), sign = _mm256_set1_ps(-0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 y = _mm256_mul_ps(_mm256_mul_ps(k, x), _mm256_fmadd_ps(_mm256_mul_ps(c, x), x, one));
        const __m256 e = exp_neg8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), abs8(y)));
        __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
        t = _mm256_or_ps(t, _mm256_and_ps(y, sign)); /* tanh is odd */
        const __m256 gl = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, t));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(gl, _mm256_loadu_ps(u + i)));
    }
    if (i < n) ops_table_ref()->gelu_mul(h + i, g + i, u + i, n - i);
}

static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void softmax_pv(float *s, int n, float scale, float *m, float *l, float *acc, const float *v, int dv) {
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + j), vs);
        _mm256_storeu_ps(s + j, x);
        vmax = _mm256_max_ps(vmax, x);
    }
    float mx = hmax8(vmax);
    for (; j < n; j++) {
        s[j] *= scale;
        mx = s[j] > mx ? s[j] : mx;
    }
    if (mx > *m) {
        const float c = ops_exp_neg(*m - mx); /* 0 on the first tile */
        *l *= c;
        ops_scale(acc, c, dv);
        *m = mx;
    }
    const __m256 vm = _mm256_set1_ps(*m);
    __m256 vsum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        const __m256 e = exp_neg8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum8(vsum);
    for (; j < n; j++) {
        s[j] = ops_exp_neg(s[j] - *m);
        sum += s[j];
    }
    *l += sum;
    /* acc += sum_j s[j] v_j, 64 columns at a time in registers */
    int c0 = 0;
    for (; c0 + 64 <= dv; c0 += 64) {
        __m256 a0 = _mm256_loadu_ps(acc + c0), a1 = _mm256_loadu_ps(acc + c0 + 8), a2 = _mm256_loadu_ps(acc + c0 + 16),
               a3 = _mm256_loadu_ps(acc + c0 + 24), a4 = _mm256_loadu_ps(acc + c0 + 32),
               a5 = _mm256_loadu_ps(acc + c0 + 40), a6 = _mm256_loadu_ps(acc + c0 + 48),
               a7 = _mm256_loadu_ps(acc + c0 + 56);
        for (j = 0; j < n; j++) {
            const __m256 e = _mm256_broadcast_ss(s + j);
            const float *vr = v + (size_t)j * dv + c0;
            a0 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vr), a0);
            a1 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vr + 8), a1);
            a2 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vr + 16), a2);
            a3 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vr + 24), a3);
            a4 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vr + 32), a4);
            a5 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vr + 40), a5);
            a6 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vr + 48), a6);
            a7 = _mm256_fmadd_ps(e, _mm256_loadu_ps(vr + 56), a7);
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
        for (j = 0; j < n; j++) a = _mm256_fmadd_ps(_mm256_broadcast_ss(s + j), _mm256_loadu_ps(v + (size_t)j * dv + c0), a);
        _mm256_storeu_ps(acc + c0, a);
    }
    for (; c0 < dv; c0++) {
        float a = acc[c0];
        for (j = 0; j < n; j++) a += s[j] * v[(size_t)j * dv + c0];
        acc[c0] = a;
    }
}

static const ops_table avx2_table = {
    .silu_mul = silu_mul,
    .gelu_mul = gelu_mul,
    .softmax_pv = softmax_pv,
};

const ops_table *ops_table_avx2(void) { return &avx2_table; }
