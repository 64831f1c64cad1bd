/* The AVX-512 kernels (avx512_kernels.c) compiled for a CPU without
 * AVX-512, for tests only: SIMDe (Debian's libsimde-dev) implements the
 * _mm512_* intrinsics in portable code on top of AVX2, so the kernels'
 * arithmetic can be checked against the AVX2 and reference levels on every
 * x86 machine, not only on the ones that have AVX-512.  The Makefile builds
 * avx512_kernels.c a second time with -DRYOT_AVX512_EMULATE and the AVX2
 * flags into an object only tests/unit/test_kernels_avx512.c links; libryot
 * never contains it.
 *
 * SIMDe 0.7 lacks a few intrinsics the kernels use; they are written here
 * from their definitions in terms of AVX2 and SIMDe ones. */
#ifndef RYOT_AVX512_EMU_H
#define RYOT_AVX512_EMU_H

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <stdint.h>
#include <string.h>

/* 16 F16 -> 16 F32 (vcvtph2ps zmm): two 8-wide F16C conversions. */
static inline __m512 emu_mm512_cvtph_ps(__m256i h) {
    __m512 r = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm256_castsi256_si128(h)));
    return _mm512_insertf32x8(r, _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), 1);
}
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps(h) emu_mm512_cvtph_ps(h)

static inline __m256 emu_mm512_extractf32x8_ps_hi(__m512 v) {
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}
#undef _mm512_extractf32x8_ps
#define _mm512_extractf32x8_ps(v, i) ((i) ? emu_mm512_extractf32x8_ps_hi(v) : _mm512_castps512_ps256(v))

static inline __m256i emu_cvtepu16_lo(__m256i v) {
    return _mm256_cvtepu16_epi32(_mm256_castsi256_si128(v));
}
/* Widening conversions: two 8-lane AVX2 ones. */
#define EMU_WIDEN(NAME, IN, CONV, HALF)                                                            \
    static inline __m512i emu_##NAME(IN v) {                                                       \
        return _mm512_inserti64x4(_mm512_castsi256_si512(CONV(v)), CONV(HALF(v)), 1);             \
    }
static inline __m256i emu_hi128_as256(__m256i v) {
    return _mm256_castsi128_si256(_mm256_extracti128_si256(v, 1));
}
static inline __m128i emu_hi64(__m128i v) {
    return _mm_srli_si128(v, 8);
}
EMU_WIDEN(mm512_cvtepu16_epi32, __m256i, emu_cvtepu16_lo, emu_hi128_as256)
EMU_WIDEN(mm512_cvtepu8_epi32, __m128i, _mm256_cvtepu8_epi32, emu_hi64)
EMU_WIDEN(mm512_cvtepi8_epi32, __m128i, _mm256_cvtepi8_epi32, emu_hi64)
#undef _mm512_cvtepu16_epi32
#undef _mm512_cvtepu8_epi32
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepu16_epi32(v) emu_mm512_cvtepu16_epi32(v)
#define _mm512_cvtepu8_epi32(v) emu_mm512_cvtepu8_epi32(v)
#define _mm512_cvtepi8_epi32(v) emu_mm512_cvtepi8_epi32(v)

static inline __m512 emu_mm512_cvtepi32_ps(__m512i v) {
    __m512 r = _mm512_castps256_ps512(_mm256_cvtepi32_ps(_mm512_castsi512_si256(v)));
    return _mm512_insertf32x8(r, _mm256_cvtepi32_ps(_mm512_extracti64x4_epi64(v, 1)), 1);
}
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps(v) emu_mm512_cvtepi32_ps(v)

static inline __m512 emu_mm512_moveldup_ps(__m512 v) {
    __m512 r = _mm512_castps256_ps512(_mm256_moveldup_ps(_mm512_castps512_ps256(v)));
    return _mm512_insertf32x8(r, _mm256_moveldup_ps(emu_mm512_extractf32x8_ps_hi(v)), 1);
}
#undef _mm512_moveldup_ps
#define _mm512_moveldup_ps(v) emu_mm512_moveldup_ps(v)

/* Masked forms, element by element. */
static inline __m256i emu_mm256_mask_add_epi8(__m256i src, uint32_t k, __m256i a, __m256i b) {
    uint8_t s[32], x[32], y[32];
    memcpy(s, &src, 32), memcpy(x, &a, 32), memcpy(y, &b, 32);
    for (int i = 0; i < 32; i++)
        if (k >> i & 1) s[i] = (uint8_t)(x[i] + y[i]);
    memcpy(&src, s, 32);
    return src;
}
#undef _mm256_mask_add_epi8
#define _mm256_mask_add_epi8(src, k, a, b) emu_mm256_mask_add_epi8(src, k, a, b)

static inline __m512i emu_mm512_mask_srli_epi16(__m512i src, uint32_t k, __m512i a, unsigned imm) {
    uint16_t s[32], x[32];
    memcpy(s, &src, 64), memcpy(x, &a, 64);
    for (int i = 0; i < 32; i++)
        if (k >> i & 1) s[i] = imm > 15 ? 0 : (uint16_t)(x[i] >> imm);
    memcpy(&src, s, 64);
    return src;
}
#undef _mm512_mask_srli_epi16
#define _mm512_mask_srli_epi16(src, k, a, imm) emu_mm512_mask_srli_epi16(src, k, a, imm)

/* 16 F32 -> 16 F16 (vcvtps2ph zmm), rounding as imm says. */
#undef _mm512_cvtps_ph
#define _mm512_cvtps_ph(v, imm)                                                                    \
    _mm256_inserti128_si256(_mm256_castsi128_si256(_mm256_cvtps_ph(_mm512_castps512_ps256(v), (imm))), \
                            _mm256_cvtps_ph(emu_mm512_extractf32x8_ps_hi(v), (imm)), 1)

/* SIMDe 0.7.4's alias of _mm512_madd_epi16 takes the masked form's four
 * arguments. */
#undef _mm512_madd_epi16
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)

/* In-lane dword shuffle, 128-bit chunk select of two sources, zero
 * extension: from their definitions. */
static inline __m512i emu_mm512_shuffle_epi32_v(__m512i a, int imm) {
    uint32_t x[16], r[16];
    memcpy(x, &a, 64);
    for (int i = 0; i < 16; i++) r[i] = x[(i & ~3) + (imm >> 2 * (i & 3) & 3)];
    memcpy(&a, r, 64);
    return a;
}
#undef _mm512_shuffle_epi32
#define _mm512_shuffle_epi32(a, imm) emu_mm512_shuffle_epi32_v(a, imm)

static inline __m512i emu_mm512_shuffle_i64x2_v(__m512i a, __m512i b, int imm) {
    uint8_t x[64], y[64], r[64];
    memcpy(x, &a, 64), memcpy(y, &b, 64);
    for (int c = 0; c < 4; c++) memcpy(r + 16 * c, (c < 2 ? x : y) + 16 * (imm >> 2 * c & 3), 16);
    memcpy(&a, r, 64);
    return a;
}
#undef _mm512_shuffle_i64x2
#define _mm512_shuffle_i64x2(a, b, imm) emu_mm512_shuffle_i64x2_v(a, b, imm)

#undef _mm512_zextsi256_si512
#define _mm512_zextsi256_si512(v) _mm512_inserti64x4(_mm512_setzero_si512(), (v), 0)

#endif
