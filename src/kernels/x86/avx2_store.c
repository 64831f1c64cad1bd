/* AVX2 + F16C dequantizers of the persistent store's KV codec
 * (store/codec_simd.h); the scalar reference is in store/codec.c. */
#include <immintrin.h>

#include "store/codec_simd.h"

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
