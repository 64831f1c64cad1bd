/* AVX2 + F16C quantizers and dequantizers of the persistent store's KV
 * codec (store/codec_simd.h); the scalar reference is in store/codec.c and
 * these match it bit for bit (same float multiply, clamp and
 * round-to-nearest-even; the scale through the same F16 conversion). */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels.h"
#include "store/codec_simd.h"

#define ROW_MAX 4096 /* codec.c's MAX_DIM */

/* max |x| over the finite values of the row (n % 8 == 0) */
static float row_amax(const uint16_t *x, int n) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), inf = _mm256_set1_ps(INFINITY);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        __m256 a = _mm256_and_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), absm);
        m = _mm256_max_ps(m, _mm256_and_ps(a, _mm256_cmp_ps(a, inf, _CMP_LT_OQ)));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

/* The row's codes as int8 in [-qmax, qmax] (n % 16 == 0); returns the F16 scale. */
static uint16_t quant_row(const uint16_t *x, int n, int qmax, int8_t *q) {
    const uint16_t dh = ryot_fp32_to_fp16(row_amax(x, n) / (float)qmax);
    const float d = ryot_fp16_to_fp32(dh);
    const __m256 id = _mm256_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
    const __m256 hi = _mm256_set1_ps((float)qmax), lo = _mm256_set1_ps((float)-qmax);
    for (int i = 0; i < n; i += 16) {
        __m256i c[2];
        for (int h = 0; h < 2; h++) {
            __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8 * h))), id);
            const __m256 ord = _mm256_cmp_ps(v, v, _CMP_ORD_Q); /* NaN codes as 0 */
            v = _mm256_and_ps(_mm256_max_ps(_mm256_min_ps(v, hi), lo), ord);
            c[h] = _mm256_cvtps_epi32(v);
        }
        __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(c[0], c[1]), 0xD8);
        _mm_storeu_si128((__m128i *)(q + i),
                         _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
    }
    return dh;
}

/* 32 codes in 0..15 (two vectors, in order) -> 16 bytes, low nibble first */
static __m128i nibbles(__m128i a, __m128i b) {
    const __m128i w = _mm_set1_epi16(0x1001);
    return _mm_packus_epi16(_mm_maddubs_epi16(a, w), _mm_maddubs_epi16(b, w));
}

uint16_t store_quant8_avx2(const uint16_t *x, int n, uint8_t *codes) {
    return quant_row(x, n, 127, (int8_t *)codes);
}

uint16_t store_quant4_avx2(const uint16_t *x, int n, uint8_t *codes) {
    int8_t q[ROW_MAX];
    const uint16_t dh = quant_row(x, n, 7, q);
    const __m128i b8 = _mm_set1_epi8(8);
    for (int i = 0; i < n; i += 32) {
        __m128i a = _mm_add_epi8(_mm_loadu_si128((const __m128i *)(q + i)), b8);
        __m128i b = _mm_add_epi8(_mm_loadu_si128((const __m128i *)(q + i + 16)), b8);
        _mm_storeu_si128((__m128i *)(codes + i / 2), nibbles(a, b));
    }
    return dh;
}

/* 16 int8 codes of one row from x[0..16) with per-lane inverse scales id0, id1 */
static __m128i quant16(const uint16_t *x, __m256 id0, __m256 id1, __m256 hi, __m256 lo) {
    __m256i c[2];
    for (int h = 0; h < 2; h++) {
        __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + 8 * h))), h ? id1 : id0);
        const __m256 ord = _mm256_cmp_ps(v, v, _CMP_ORD_Q); /* NaN codes as 0 */
        v = _mm256_and_ps(_mm256_max_ps(_mm256_min_ps(v, hi), lo), ord);
        c[h] = _mm256_cvtps_epi32(v);
    }
    __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(c[0], c[1]), 0xD8);
    return _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

void store_quant6c_avx2(const uint16_t *x, int rows, int n, uint16_t *dh, uint8_t *codes) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), inf = _mm256_set1_ps(INFINITY);
    float id[ROW_MAX];
    for (int j = 0; j < n; j += 8) { /* per channel: max |x| over the finite values of the tile's rows */
        __m256 m = _mm256_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m256 a = _mm256_and_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + (size_t)r * n + j))), absm);
            m = _mm256_max_ps(m, _mm256_and_ps(a, _mm256_cmp_ps(a, inf, _CMP_LT_OQ)));
        }
        float am[8];
        _mm256_storeu_ps(am, m);
        for (int t = 0; t < 8; t++) {
            dh[j + t] = ryot_fp32_to_fp16(am[t] / 31.0f);
            const float d = ryot_fp16_to_fp32(dh[j + t]);
            id[j + t] = d > 0.0f ? 1.0f / d : 0.0f;
        }
    }
    const __m256 hi = _mm256_set1_ps(31.0f), lo = _mm256_set1_ps(-31.0f);
    const __m128i b32 = _mm_set1_epi8(32), m15 = _mm_set1_epi8(15), m3 = _mm_set1_epi8(3);
    const int quarter = n / 4;
    for (int r = 0; r < rows; r++) {
        const uint16_t *xr = x + (size_t)r * n;
        uint8_t *out = codes + (size_t)r * n * 3 / 4, *hb = out + n / 2;
        int8_t q[ROW_MAX];
        for (int i = 0; i < n; i += 32) {
            __m128i a = _mm_add_epi8(quant16(xr + i, _mm256_loadu_ps(id + i), _mm256_loadu_ps(id + i + 8), hi, lo), b32);
            __m128i b = _mm_add_epi8(
                quant16(xr + i + 16, _mm256_loadu_ps(id + i + 16), _mm256_loadu_ps(id + i + 24), hi, lo), b32);
            _mm_storeu_si128((__m128i *)(q + i), a);
            _mm_storeu_si128((__m128i *)(q + i + 16), b);
            _mm_storeu_si128((__m128i *)(out + i / 2), nibbles(_mm_and_si128(a, m15), _mm_and_si128(b, m15)));
        }
        /* top bit pairs: value p * n/4 + j -> byte j, bits 2p (q holds the biased codes) */
        for (int j = 0; j < quarter; j += 16) {
            __m128i acc = _mm_setzero_si128();
            for (int p = 0; p < 4; p++) {
                __m128i c = _mm_loadu_si128((const __m128i *)(q + p * quarter + j));
                __m128i t = _mm_and_si128(_mm_srli_epi16(c, 4), m3);
                acc = _mm_or_si128(acc, _mm_sll_epi16(t, _mm_cvtsi32_si128(2 * p)));
            }
            _mm_storeu_si128((__m128i *)(hb + j), acc);
        }
    }
}

void store_dequant6c_avx2(const uint8_t *q, const float *d, uint16_t *out, int n) {
    const __m128i m15 = _mm_set1_epi8(15), m3 = _mm_set1_epi8(3), b32 = _mm_set1_epi8(32);
    const int quarter = n / 4;
    const uint8_t *hb = q + n / 2;
    for (int i = 0; i < n; i += 16) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(q + i / 2));
        __m128i lo = _mm_unpacklo_epi8(_mm_and_si128(b, m15), _mm_and_si128(_mm_srli_epi16(b, 4), m15));
        __m128i h = _mm_loadu_si128((const __m128i *)(hb + i % quarter));
        h = _mm_and_si128(_mm_srl_epi16(h, _mm_cvtsi32_si128(2 * (i / quarter))), m3);
        __m128i codes = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(h, 4)), b32);
        __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes)), _mm256_loadu_ps(d + i));
        __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(codes, 8))),
                                  _mm256_loadu_ps(d + i + 8));
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(f0, _MM_FROUND_TO_NEAREST_INT));
        _mm_storeu_si128((__m128i *)(out + i + 8), _mm256_cvtps_ph(f1, _MM_FROUND_TO_NEAREST_INT));
    }
}

void store_dequant8_avx2(const int8_t *q, float d, uint16_t *out, int n) {
    const __m256 vd = _mm256_set1_ps(d);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(q + i));
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), vd);
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) {
        __m128 f = _mm_set_ss((float)q[i] * d);
        out[i] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT), 0);
    }
}

void store_dequant4_avx2(const uint8_t *q, float d, uint16_t *out, int n) {
    const __m256 vd = _mm256_set1_ps(d);
    const __m128i m15 = _mm_set1_epi8(15), m8 = _mm_set1_epi8(8);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        /* 8 bytes -> 16 codes in order: low nibble, high nibble, ... */
        __m128i b = _mm_loadl_epi64((const __m128i *)(q + i / 2));
        __m128i lo = _mm_and_si128(b, m15), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m15);
        __m128i codes = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), m8);
        __m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes)), vd);
        __m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(codes, 8))), vd);
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(f0, _MM_FROUND_TO_NEAREST_INT));
        _mm_storeu_si128((__m128i *)(out + i + 8), _mm256_cvtps_ph(f1, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i += 2) {
        const uint8_t b = q[i / 2];
        __m128 f = _mm_set_ps(0, 0, (float)((int)(b >> 4) - 8) * d, (float)((int)(b & 15) - 8) * d);
        __m128i h = _mm_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT);
        out[i] = (uint16_t)_mm_extract_epi16(h, 0);
        out[i + 1] = (uint16_t)_mm_extract_epi16(h, 1);
    }
}
