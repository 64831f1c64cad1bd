/* AVX-512 versions of the attention ops (kernel_ops, kernels/kernels.h):
 * the P.V accumulation of softmax_pv and the Q.K dots of qk_scores, the
 * forward pass's attention inner loops.  As with avx512_kernels.c, each
 * output lane sees the AVX2 level's operations in the AVX2 level's order
 * (x86/avx2_ops.c), 16 lanes at a time, so the results are bitwise the AVX2
 * level's; tests/unit/test_kernels_avx512.c checks it (SIMDe-emulated on
 * every CPU, natively where the CPU has AVX-512).  silu_mul and gelu_mul
 * stay the AVX2 level's: they are a small part of a step. */
#ifdef RYOT_AVX512_EMULATE
#include "kernels/x86/avx512_emu.h"
#define AVX512_OPS_FILL avx512_emu_ops_fill
#else
#include <immintrin.h>
#define AVX512_OPS_FILL avx512_ops_fill
#endif
#include <math.h>
#include <stdbool.h>

#include "kernels/kernels_impl.h"
#include "kernels/kmath.h"

static inline __m512 round_f16_16(__m512 x) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

static inline __m256 round_f16_8(__m256 x) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Pass 1 as the AVX2 level (scalar): s[j] becomes key j's weight, or -c
 * (sign set) where key j is a new maximum: rescale by c, weight 1.  Pass 2:
 * acc, 64 columns at a time in four registers, then 16, 8 and single ones;
 * each column gets a = f16(a * c) on a rescale, then a = f16(a + w v). */
static void softmax_pv(float *s, int n, float scale, float *m, float *l, float *acc, const float *v, int dv) {
    float mx = *m, sum = *l;
    for (int j = 0; j < n; j++) {
        const float x = s[j] * scale;
        if (x > mx) {
            const float c = expf(mx - x);
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
#define PV_STEP16(a, off)                                                                          \
    do {                                                                                           \
        if (resc) a = round_f16_16(_mm512_mul_ps(a, c));                                           \
        a = round_f16_16(_mm512_fmadd_ps(w, _mm512_loadu_ps(vr + (off)), a));                     \
    } while (0)
    const __m512 one = _mm512_set1_ps(1.0f);
    int c0 = 0;
    for (; c0 + 64 <= dv; c0 += 64) {
        __m512 a0 = _mm512_loadu_ps(acc + c0), a1 = _mm512_loadu_ps(acc + c0 + 16), a2 = _mm512_loadu_ps(acc + c0 + 32),
               a3 = _mm512_loadu_ps(acc + c0 + 48);
        for (int j = 0; j < n; j++) {
            const bool resc = signbit(s[j]);
            const __m512 c = _mm512_set1_ps(-s[j]), w = resc ? one : _mm512_set1_ps(s[j]);
            const float *vr = v + (size_t)j * dv + c0;
            PV_STEP16(a0, 0);
            PV_STEP16(a1, 16);
            PV_STEP16(a2, 32);
            PV_STEP16(a3, 48);
        }
        _mm512_storeu_ps(acc + c0, a0);
        _mm512_storeu_ps(acc + c0 + 16, a1);
        _mm512_storeu_ps(acc + c0 + 32, a2);
        _mm512_storeu_ps(acc + c0 + 48, a3);
    }
    for (; c0 + 16 <= dv; c0 += 16) {
        __m512 a = _mm512_loadu_ps(acc + c0);
        for (int j = 0; j < n; j++) {
            const bool resc = signbit(s[j]);
            const __m512 c = _mm512_set1_ps(-s[j]), w = resc ? one : _mm512_set1_ps(s[j]);
            const float *vr = v + (size_t)j * dv + c0;
            PV_STEP16(a, 0);
        }
        _mm512_storeu_ps(acc + c0, a);
    }
#undef PV_STEP16
    for (; c0 + 8 <= dv; c0 += 8) {
        __m256 a = _mm256_loadu_ps(acc + c0);
        for (int j = 0; j < n; j++) {
            const bool resc = signbit(s[j]);
            const float *vr = v + (size_t)j * dv + c0;
            if (resc) a = round_f16_8(_mm256_mul_ps(a, _mm256_set1_ps(-s[j])));
            a = round_f16_8(_mm256_fmadd_ps(_mm256_set1_ps(resc ? 1.0f : s[j]), _mm256_loadu_ps(vr), a));
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

/* One dot as the F16 vec_dot of the AVX2 and AVX-512 levels sums it: four
 * 8-lane accumulators over 32-element chunks (here two 16-lane ones, a0|a1
 * and a2|a3), 8-element chunks into a0, reduced (a0+a1)+(a2+a3) and across
 * lanes.  Two keys at a time share the q loads; the K tile is converted to
 * floats once (exact). */
static inline float qk_finish(__m512 a01, __m512 a23, __m256 a0) {
    const __m256 a1 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a01), 1));
    const __m256 a2 = _mm512_castps512_ps256(a23), a3 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a23), 1));
    return hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static void qk_scores(const float *q, size_t q_stride, int rows, const uint16_t *k, int n, int dk, float *kt, float *s,
                      size_t s_stride) {
    if (dk % 8) { /* the vec_dot's scalar tail: leave it to the kernel itself */
        kernels_get_isa(KERNEL_ISA_AVX2, RYOT_TYPE_F16)
            ->vec_dot_rows(dk, n, rows, k, (size_t)dk * sizeof(uint16_t), q, q_stride * sizeof(float), s, s_stride);
        return;
    }
    int i0 = 0;
    for (; i0 + 16 <= n * dk; i0 += 16) _mm512_storeu_ps(kt + i0, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + i0))));
    for (; i0 < n * dk; i0 += 8) _mm256_storeu_ps(kt + i0, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i0))));
    const int d32 = dk & ~31;
    for (int r = 0; r < rows; r++) {
        const float *qr = q + (size_t)r * q_stride;
        float *sr = s + (size_t)r * s_stride;
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            const float *k0 = kt + (size_t)j * dk, *k1 = k0 + dk;
            __m512 a01 = _mm512_setzero_ps(), a23 = a01, b01 = a01, b23 = a01;
            int i = 0;
            for (; i < d32; i += 32) {
                const __m512 q01 = _mm512_loadu_ps(qr + i), q23 = _mm512_loadu_ps(qr + i + 16);
                a01 = _mm512_fmadd_ps(_mm512_loadu_ps(k0 + i), q01, a01);
                a23 = _mm512_fmadd_ps(_mm512_loadu_ps(k0 + i + 16), q23, a23);
                b01 = _mm512_fmadd_ps(_mm512_loadu_ps(k1 + i), q01, b01);
                b23 = _mm512_fmadd_ps(_mm512_loadu_ps(k1 + i + 16), q23, b23);
            }
            __m256 a0 = _mm512_castps512_ps256(a01), b0 = _mm512_castps512_ps256(b01);
            for (; i < dk; i += 8) {
                const __m256 qv = _mm256_loadu_ps(qr + i);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i), qv, a0);
                b0 = _mm256_fmadd_ps(_mm256_loadu_ps(k1 + i), qv, b0);
            }
            sr[j] = qk_finish(a01, a23, a0);
            sr[j + 1] = qk_finish(b01, b23, b0);
        }
        for (; j < n; j++) {
            const float *k0 = kt + (size_t)j * dk;
            __m512 a01 = _mm512_setzero_ps(), a23 = a01;
            int i = 0;
            for (; i < d32; i += 32) {
                a01 = _mm512_fmadd_ps(_mm512_loadu_ps(k0 + i), _mm512_loadu_ps(qr + i), a01);
                a23 = _mm512_fmadd_ps(_mm512_loadu_ps(k0 + i + 16), _mm512_loadu_ps(qr + i + 16), a23);
            }
            __m256 a0 = _mm512_castps512_ps256(a01);
            for (; i < dk; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k0 + i), _mm256_loadu_ps(qr + i), a0);
            sr[j] = qk_finish(a01, a23, a0);
        }
    }
}

void AVX512_OPS_FILL(kernel_ops *ops) {
    ops->softmax_pv = softmax_pv;
    ops->qk_scores = qk_scores;
}
