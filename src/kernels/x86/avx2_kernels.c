/* AVX2 kernels (built with -mavx2 -mfma -mf16c -mbmi2; called only after
 * CPU detection).
 *
 * Integer dots use vpmaddubsw (unsigned x signed bytes -> int16 pairs) then
 * vpmaddwd: unsigned codes (Q4_1, Q5_1, K-quants) go in directly; signed ones
 * (Q8_0, Q4_0 - 8, Q5_0 - 16) use |x| and sign(y, x).  No int16 pair can
 * saturate: the largest is 2 * 127 * 127 (Q8_0) or 2 * 63 * 127 (Q6_K).
 * Activation quantizers repeat the reference's float operations exactly and
 * round with vroundps (nearest even), so they match it bitwise. */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define FP16(h) _cvtsh_ss(h)

static inline float hsum_ps(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

static inline int hsum_epi32(__m256i v) {
    __m128i a = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4e));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xb1));
    return _mm_cvtsi128_si32(a);
}

static inline uint32_t load32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline __m256i loadu256(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* 32 codes of a Q4_0/Q4_1 block in element order (0..15). */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* Byte i = 0x10 where bit i of the Q5 qh word is set, else 0. */
static inline __m256i q5_high_bits(const uint8_t *qh) {
    uint32_t bits;
    memcpy(&bits, qh, 4);
    __m256i v = _mm256_set1_epi32((int)bits);
    const __m256i pick = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    v = _mm256_and_si256(_mm256_shuffle_epi8(v, pick), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

/* sum over 32 pairs of unsigned x (<= 63) times signed y, as 8 int32. */
static inline __m256i dot_u8_i8(__m256i x, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

/* Same for signed x, given ax = |x|. */
static inline __m256i dot_i8_i8(__m256i x, __m256i ax, __m256i y) {
    return dot_u8_i8(ax, _mm256_sign_epi8(y, x));
}

/* ------------------------------------------------------------ float types */

static void vec_dot_f32(int64_t n, float *s, const void *xv, const void *yv) {
    const float *x = xv, *y = yv;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static inline __m256 load_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load_bf16(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

#define HALF_DOT(NAME, LOAD, CONV)                                                                 \
    static void NAME(int64_t n, float *s, const void *xv, const void *yv) {                        \
        const uint16_t *x = xv;                                                                    \
        const float *y = yv;                                                                       \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            a0 = _mm256_fmadd_ps(LOAD(x + i), _mm256_loadu_ps(y + i), a0);                         \
            a1 = _mm256_fmadd_ps(LOAD(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);                 \
            a2 = _mm256_fmadd_ps(LOAD(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);               \
            a3 = _mm256_fmadd_ps(LOAD(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);               \
        }                                                                                          \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD(x + i), _mm256_loadu_ps(y + i), a0); \
        float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));          \
        for (; i < n; i++) sum += CONV(x[i]) * y[i];                                               \
        *s = sum;                                                                                  \
    }

HALF_DOT(vec_dot_f16, load_f16, ryot_fp16_to_fp32)
HALF_DOT(vec_dot_bf16, load_bf16, ryot_bf16_to_fp32)

static void f16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16(x + i));
    for (; i < n; i++) dst[i] = ryot_fp16_to_fp32(x[i]);
}

static void f16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = ryot_fp32_to_fp16(src[i]);
}

static void bf16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16(x + i));
    for (; i < n; i++) dst[i] = ryot_bf16_to_fp32(x[i]);
}

/* Round to nearest even on the upper 16 bits; NaNs stay quiet NaNs. */
static void bf16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    int64_t i = 0;
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_castps_si256(_mm256_loadu_ps(src + i));
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), odd), 16);
        __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
        __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), inf);
        r = _mm256_blendv_epi8(r, qnan, is_nan);
        r = _mm256_and_si256(r, _mm256_set1_epi32(0xffff));
        __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(y + i), packed);
    }
    for (; i < n; i++) y[i] = ryot_fp32_to_bf16(src[i]);
}

/* ------------------------------------------------------------ activation quantizers */

/* Quantizes 32 floats with scale id into 32 int8 (element order); returns
 * their 8 partial int32 sums in *sum when sum != NULL. */
static inline void quantize32(const float *x, __m256 id, int8_t *q, __m256i *sum) {
#define mode (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), id), mode));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id), mode));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id), mode));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id), mode));
    if (sum) *sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    /* packs interleave 128-bit lanes; the permute restores element order */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
#undef mode
}

static inline float absmax(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

static void q8_0_from_float(const float *src, void *dst, int64_t n) {
    block_q8_0 *b = dst;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        const float *x = src + ib * QK;
        const float amax = absmax(x, QK), d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0;
        b[ib].d = ryot_fp32_to_fp16(d);
        quantize32(x, _mm256_set1_ps(id), b[ib].qs, NULL);
    }
}

static void q8_1_from_float(const float *src, void *dst, int64_t n) {
    block_q8_1 *b = dst;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        const float *x = src + ib * QK;
        const float amax = absmax(x, QK), d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0;
        __m256i sum;
        quantize32(x, _mm256_set1_ps(id), b[ib].qs, &sum);
        b[ib].d = ryot_fp32_to_fp16(d);
        b[ib].s = ryot_fp32_to_fp16(d * (float)hsum_epi32(sum));
    }
}

static void q8_K_from_float(const float *src, void *dst, int64_t n) {
    block_q8_K *b = dst;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const float *x = src + ib * QK_K;
        const float amax = absmax(x, QK_K), id = amax != 0 ? 127.0f / amax : 0, d = amax != 0 ? 1.0f / id : 0;
        b[ib].d = d;
        for (int k = 0; k < QK_K / 32; k++) quantize32(x + 32 * k, _mm256_set1_ps(id), b[ib].qs + 32 * k, NULL);
        /* bsums: byte pairs, then int16 pairs, leave sums of 4; two hadds
         * finish the sums of 16 */
        for (int k = 0; k < QK_K / 64; k++) {
            __m256i s0 = dot_u8_i8(_mm256_set1_epi8(1), loadu256(b[ib].qs + 64 * k));
            __m256i s1 = dot_u8_i8(_mm256_set1_epi8(1), loadu256(b[ib].qs + 64 * k + 32));
            /* s0: sums of 4 for elements 0..31 (lane 0: 0..15, lane 1: 16..31) */
            __m256i h = _mm256_hadd_epi32(s0, s1);
            h = _mm256_hadd_epi32(h, h); /* lane 0: [b0, b2, b0, b2], lane 1: [b1, b3, ...] */
            b[ib].bsums[4 * k + 0] = (int16_t)_mm256_extract_epi32(h, 0);
            b[ib].bsums[4 * k + 2] = (int16_t)_mm256_extract_epi32(h, 1);
            b[ib].bsums[4 * k + 1] = (int16_t)_mm256_extract_epi32(h, 4);
            b[ib].bsums[4 * k + 3] = (int16_t)_mm256_extract_epi32(h, 5);
        }
    }
}

static void q8_0_to_float(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        __m256 d = _mm256_set1_ps(FP16(b[ib].d));
        for (int k = 0; k < 4; k++) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b[ib].qs + 8 * k)));
            _mm256_storeu_ps(dst + ib * QK + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

static inline __m256i q4_0_codes(const block_q4_0 *b) {
    return _mm256_sub_epi8(unpack_nibbles(b->qs), _mm256_set1_epi8(8));
}

static inline __m256i q5_0_codes(const block_q5_0 *b) {
    __m256i q = _mm256_or_si256(unpack_nibbles(b->qs), q5_high_bits(b->qh));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
}

/* ------------------------------------------------------------ 32-block dots
 *
 * One generic body, specialized per format by a constant `kind` (always
 * inlined).  Per block: codes -> int8 dot with the activation block -> 8
 * int32 -> float, times d_x * d_y.  The fp16 header fields are converted four
 * blocks at a time: the first 32 bits of each block, [d, m] for Q4_1/Q5_1
 * and [d, s] for Q8_1, go through one vcvtph2ps, and one multiply gives
 * [dx*dy, m*s] pairs; the m*s lanes (the min term) are added straight into
 * the accumulator.  For the other formats the odd lanes are ignored. */

enum q32_kind { Q32_Q4_0, Q32_Q4_1, Q32_Q5_0, Q32_Q5_1, Q32_Q8_0 };

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE size_t q32_x_size(enum q32_kind k) {
    switch (k) {
    case Q32_Q4_0: return sizeof(block_q4_0);
    case Q32_Q4_1: return sizeof(block_q4_1);
    case Q32_Q5_0: return sizeof(block_q5_0);
    case Q32_Q5_1: return sizeof(block_q5_1);
    default: return sizeof(block_q8_0);
    }
}

static ALWAYS_INLINE bool q32_has_min(enum q32_kind k) {
    return k == Q32_Q4_1 || k == Q32_Q5_1;
}

/* Activation blocks: Q8_1 for the formats with a min, else Q8_0. */
static ALWAYS_INLINE size_t q32_y_size(enum q32_kind k) {
    return q32_has_min(k) ? sizeof(block_q8_1) : sizeof(block_q8_0);
}

static ALWAYS_INLINE const int8_t *q32_y_qs(enum q32_kind k, const uint8_t *yb) {
    return (const int8_t *)yb + (q32_has_min(k) ? 4 : 2);
}

/* Codes of one weight block: unsigned (0..31) for the formats with a min,
 * else signed. */
static ALWAYS_INLINE __m256i q32_codes(enum q32_kind k, const uint8_t *xb) {
    switch (k) {
    case Q32_Q4_0: return q4_0_codes((const block_q4_0 *)xb);
    case Q32_Q4_1: return unpack_nibbles(((const block_q4_1 *)xb)->qs);
    case Q32_Q5_0: return q5_0_codes((const block_q5_0 *)xb);
    case Q32_Q5_1: {
        const block_q5_1 *b = (const block_q5_1 *)xb;
        return _mm256_or_si256(unpack_nibbles(b->qs), q5_high_bits(b->qh));
    }
    default: return loadu256(((const block_q8_0 *)xb)->qs);
    }
}

/* int8 dot of codes (ax = |codes| for the signed formats) with 32 y bytes. */
static ALWAYS_INLINE __m256i q32_dot(enum q32_kind k, __m256i codes, __m256i ax, const int8_t *yq) {
    if (q32_has_min(k)) return dot_u8_i8(codes, loadu256(yq));
    return dot_i8_i8(codes, ax, loadu256(yq));
}

static ALWAYS_INLINE __m256i q32_abs(enum q32_kind k, __m256i codes) {
    return q32_has_min(k) ? codes : _mm256_abs_epi8(codes);
}

/* The arithmetic of one (weight row, activation row) pair is the same in
 * vec_dot and in every tile shape, so a pair's result is bitwise the same
 * whichever path computes it (the engine's batch invariance rests on it).
 * With hx = the fp16 header pairs of 4 weight blocks as floats,
 * [dx0 mx0 dx1 mx1 | dx2 mx2 dx3 mx3], and hy the activation's
 * [dy0 sy0 ...] (one vcvtph2ps each), per group of 4 blocks:
 *   h    = the 4 integer block dots, each split into two partial sums:
 *          [b0' b0'' b1' b1'' | b2' b2'' b3' b3''] (exact integers);
 *   acc  = fma([dx0*dy0, dx0*dy0, dx1*dy1, ... dx3*dy3], float(h), acc);
 *   for the formats with a min, four chains (block index mod 4) of the min
 *   terms: ch_j = fma(mx_b, sy_b, ch_j).
 * Then, if 2 or 3 blocks are left, a group of 2 the same way (missing
 * blocks' headers zero); a last single block: acc = fma(broadcast(dx*dy),
 * float(8 lane dot), acc), ch_0 = fma(mx, sy, ch_0).  Result: hsum(acc) +
 * ((ch_0 + ch_1) + (ch_2 + ch_3)).
 * One row pair (vec_dot, decode) keeps the chains in the odd lanes of
 * fma(hx, hy, accm); a tile of activation rows keeps them per activation row,
 * [ch_0 of rows c0..c3 | ch_2 of c0..c3] and [ch_1 | ch_3], from
 * [mx0 x4 | mx2 x4] and [mx1 x4 | mx3 x4] (two in-lane shuffles of hx) times
 * the activation tile's min factors converted once per call. */

/* The first two fp16 of 4 blocks `stride` bytes apart, as 8 floats. */
static inline __m256 half_pairs4(const uint8_t *p, size_t stride) {
    __m128i v = _mm_setr_epi32((int)load32(p), (int)load32(p + stride), (int)load32(p + 2 * stride),
                               (int)load32(p + 3 * stride));
    return _mm256_cvtph_ps(v);
}

/* The first two fp16 of 2 blocks `stride` bytes apart: [a0 a1 b0 b1 0 0 0 0]. */
static inline __m256 half_pairs2(const uint8_t *p, size_t stride) {
    return _mm256_cvtph_ps(_mm_setr_epi32((int)load32(p), (int)load32(p + stride), 0, 0));
}

static inline __m256 half_pair1(const uint8_t *p) {
    return _mm256_cvtph_ps(_mm_cvtsi32_si128((int)load32(p)));
}

/* 8 int32 lanes -> 4: each pair of adjacent lanes' sum stays in its half */
static inline __m128i fold_epi32(__m256i p) {
    return _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
}

/* Formats whose codes are at most 31 in magnitude (all but Q8_0): 8 code x
 * activation products summed in int16 stay below 8 * 31 * 127 = 31496, so a
 * block's 16 vpmaddubsw pairs can be folded and pair-added in int16 and
 * widened by one 128-bit vpmaddwd per two blocks instead of one 256-bit
 * vpmaddwd per block (vpmaddubsw/vpmaddwd share one port on Zen 1/2). */
static ALWAYS_INLINE bool q32_narrow(enum q32_kind k) {
    return k != Q32_Q8_0;
}

/* 16 int16 pair products of one block (no widening), y in a register. */
static ALWAYS_INLINE __m256i q32_dot16v(enum q32_kind k, __m256i codes, __m256i ax, __m256i yv) {
    if (q32_has_min(k)) return _mm256_maddubs_epi16(codes, yv);
    return _mm256_maddubs_epi16(ax, _mm256_sign_epi8(yv, codes));
}

/* The same with y in memory. */
static ALWAYS_INLINE __m256i q32_dot16(enum q32_kind k, __m256i codes, __m256i ax, const int8_t *yq) {
    return q32_dot16v(k, codes, ax, loadu256(yq));
}

/* 16 int16 -> 8: lane i + lane i+8 */
static inline __m128i fold_epi16(__m256i p) {
    return _mm_add_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
}

/* Two blocks' folded int16 (4 products a lane) -> [a' a'' b' b''] int32.
 * (Adding the 64-bit halves with two unpacks instead of vphaddw was ~3%
 * faster in the 1 x 4 tile and no faster in the 1 x 8 one, and splits the
 * exact block sums differently, which moves the Gemma 3 golden figures by
 * rounding alone: 0.46 -> 0.52 mean top-10 difference, against a 0.5
 * tolerance; kept as it was.) */
static inline __m128i pair_sums16(__m128i f0, __m128i f1) {
    return _mm_madd_epi16(_mm_hadd_epi16(f0, f1), _mm_set1_epi16(1));
}

/* Split integer sums h of 4 blocks (codes cx, |codes| ax) with the
 * activation group at yb. */
static ALWAYS_INLINE __m256i q32_int4(enum q32_kind k, const __m256i cx[4], const __m256i ax[4], const uint8_t *yb) {
    const size_t ys = q32_y_size(k);
    __m128i f[4];
    if (q32_narrow(k)) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) f[j] = fold_epi16(q32_dot16(k, cx[j], ax[j], q32_y_qs(k, yb + j * ys)));
        return _mm256_set_m128i(pair_sums16(f[2], f[3]), pair_sums16(f[0], f[1]));
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) f[j] = fold_epi32(q32_dot(k, cx[j], ax[j], q32_y_qs(k, yb + j * ys)));
    return _mm256_set_m128i(_mm_hadd_epi32(f[2], f[3]), _mm_hadd_epi32(f[0], f[1]));
}

/* The same for a group of 2 blocks: [b0' b0'' b1' b1''], upper half zero. */
static ALWAYS_INLINE __m256i q32_int2(enum q32_kind k, const __m256i cx[2], const __m256i ax[2], const uint8_t *yb) {
    const size_t ys = q32_y_size(k);
    __m128i h2;
    if (q32_narrow(k)) {
        __m128i f0 = fold_epi16(q32_dot16(k, cx[0], ax[0], q32_y_qs(k, yb)));
        __m128i f1 = fold_epi16(q32_dot16(k, cx[1], ax[1], q32_y_qs(k, yb + ys)));
        h2 = pair_sums16(f0, f1);
    } else {
        __m128i f0 = fold_epi32(q32_dot(k, cx[0], ax[0], q32_y_qs(k, yb)));
        __m128i f1 = fold_epi32(q32_dot(k, cx[1], ax[1], q32_y_qs(k, yb + ys)));
        h2 = _mm_hadd_epi32(f0, f1);
    }
    return _mm256_zextsi128_si256(h2);
}

/* Split integer sums of 4 blocks of unsigned codes u (at most 31) with 4
 * activation blocks, the narrow way (the layout q32_int4 produces). */
static ALWAYS_INLINE __m256i q32_split16(enum q32_kind k, const __m256i u[4], const uint8_t *yb) {
    const size_t ys = q32_y_size(k);
    __m128i f[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) f[j] = fold_epi16(_mm256_maddubs_epi16(u[j], loadu256(q32_y_qs(k, yb + j * ys))));
    return _mm256_set_m128i(pair_sums16(f[2], f[3]), pair_sums16(f[0], f[1]));
}

/* One pair, a group of 4 (or 2, headers zero-padded) blocks: h the split
 * sums, hx/hy the header pairs. */
static ALWAYS_INLINE void q32_acc_pair(enum q32_kind k, __m256i h, __m256 hx, __m256 hy, __m256 *acc, __m256 *accm) {
    *acc = _mm256_fmadd_ps(_mm256_moveldup_ps(_mm256_mul_ps(hx, hy)), _mm256_cvtepi32_ps(h), *acc);
    if (q32_has_min(k)) *accm = _mm256_fmadd_ps(hx, hy, *accm);
}

/* One single block of a pair (its header pairs hx, hy from half_pair1). */
static ALWAYS_INLINE void q32_single(enum q32_kind k, __m256i cx, __m256i ax, const uint8_t *yb, __m256 hx, __m256 hy,
                                     __m256 *acc, __m256 *accm) {
    __m256i p = q32_dot(k, cx, ax, q32_y_qs(k, yb));
    *acc = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(_mm256_mul_ps(hx, hy), _mm256_setzero_si256()),
                           _mm256_cvtepi32_ps(p), *acc);
    if (q32_has_min(k)) *accm = _mm256_fmadd_ps(hx, hy, *accm);
}

/* (ch_0 + ch_1) + (ch_2 + ch_3) from the odd lanes of accm. */
static inline float q32_min_sum(__m256 accm) {
    const __m256 t = _mm256_add_ps(accm, _mm256_shuffle_ps(accm, accm, _MM_SHUFFLE(3, 3, 3, 3)));
    const __m128 lo = _mm256_castps256_ps128(t), hi = _mm256_extractf128_ps(t, 1);
    return _mm_cvtss_f32(_mm_add_ss(_mm_movehdup_ps(lo), _mm_movehdup_ps(hi)));
}

static ALWAYS_INLINE float q32_result(enum q32_kind k, __m256 acc, __m256 accm) {
    return q32_has_min(k) ? hsum_ps(acc) + q32_min_sum(accm) : hsum_ps(acc);
}

static ALWAYS_INLINE void q32_codes4(enum q32_kind k, const uint8_t *xb, __m256i cx[4], __m256i ax[4]) {
    const size_t xs = q32_x_size(k);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        cx[j] = q32_codes(k, xb + j * xs);
        ax[j] = q32_abs(k, cx[j]);
    }
}

static ALWAYS_INLINE void q32_codes2(enum q32_kind k, const uint8_t *xb, __m256i cx[2], __m256i ax[2]) {
    const size_t xs = q32_x_size(k);
    cx[0] = q32_codes(k, xb), ax[0] = q32_abs(k, cx[0]);
    cx[1] = q32_codes(k, xb + xs), ax[1] = q32_abs(k, cx[1]);
}

/* Blocks [ib, nb) of one pair after its groups of 4 (ib a multiple of 4,
 * nb - ib < 4): a group of 2, then a single block. */
static ALWAYS_INLINE void q32_tail(enum q32_kind k, int64_t ib, int64_t nb, const uint8_t *x, const uint8_t *y,
                                   __m256 *acc, __m256 *accm) {
    const size_t xs = q32_x_size(k), ys = q32_y_size(k);
    if (ib + 2 <= nb) {
        const uint8_t *xb = x + ib * xs, *yb = y + ib * ys;
        __m256i cx[2], ax[2];
        q32_codes2(k, xb, cx, ax);
        q32_acc_pair(k, q32_int2(k, cx, ax, yb), half_pairs2(xb, xs), half_pairs2(yb, ys), acc, accm);
        ib += 2;
    }
    for (; ib < nb; ib++) {
        const uint8_t *xb = x + ib * xs, *yb = y + ib * ys;
        __m256i c = q32_codes(k, xb);
        q32_single(k, c, q32_abs(k, c), yb, half_pair1(xb), half_pair1(yb), acc, accm);
    }
}

static ALWAYS_INLINE float q32_vec_dot(enum q32_kind k, int64_t n, const uint8_t *x, const uint8_t *y) {
    const size_t xs = q32_x_size(k), ys = q32_y_size(k);
    __m256 acc = _mm256_setzero_ps(), accm = acc;
    int64_t nb = n / QK, ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        const uint8_t *xb = x + ib * xs, *yb = y + ib * ys;
        __m256i cx[4], ax[4];
        q32_codes4(k, xb, cx, ax);
        q32_acc_pair(k, q32_int4(k, cx, ax, yb), half_pairs4(xb, xs), half_pairs4(yb, ys), &acc, &accm);
    }
    q32_tail(k, ib, nb, x, y, &acc, &accm);
    return q32_result(k, acc, accm);
}

static void vec_dot_q4_0(int64_t n, float *s, const void *x, const void *y) {
    *s = q32_vec_dot(Q32_Q4_0, n, x, y);
}
static void vec_dot_q4_1(int64_t n, float *s, const void *x, const void *y) {
    *s = q32_vec_dot(Q32_Q4_1, n, x, y);
}
static void vec_dot_q5_0(int64_t n, float *s, const void *x, const void *y) {
    *s = q32_vec_dot(Q32_Q5_0, n, x, y);
}
static void vec_dot_q5_1(int64_t n, float *s, const void *x, const void *y) {
    *s = q32_vec_dot(Q32_Q5_1, n, x, y);
}
static void vec_dot_q8_0(int64_t n, float *s, const void *x, const void *y) {
    *s = q32_vec_dot(Q32_Q8_0, n, x, y);
}

/* vec_dot_rows for the 32-block formats: tiles of one weight row x up to 8
 * activation rows, in activation tiles of Q32_TILE_Y rows whose headers are
 * converted once per call (q32_ytile).  Each weight block is unpacked once
 * per tile for up to 8 pairs (8 accumulators and 2 min-chain vectors per
 * activation tile: the compiler spills a few, cheaper than unpacking the
 * codes twice). */
enum { Q32_MAX_GROUPS = 256, Q32_TILE_Y = 4 }; /* rows of up to 1024 blocks use tiles */

/* An activation tile's headers: per group g of 4 blocks (and, after the
 * ng full groups, the group of 2 and the single block of the tail):
 *   dyy[c][g] = [dy0 dy0 dy1 dy1 | dy2 dy2 dy3 dy3] of row c,
 *   s02[g] = [sy0 of c0..c3 | sy2 of c0..c3], s13[g] = [sy1 | sy3]
 *   (zero for rows beyond the tile and blocks beyond the row). */
typedef struct q32_ytile {
    __m256 dyy[Q32_TILE_Y][Q32_MAX_GROUPS + 2];
    __m256 s02[Q32_MAX_GROUPS + 2], s13[Q32_MAX_GROUPS + 2];
} q32_ytile;

static ALWAYS_INLINE void q32_ytile_fill(enum q32_kind k, int64_t nb, const uint8_t *y, size_t by, int ry,
                                         q32_ytile *t) {
    const size_t ys = q32_y_size(k);
    const int64_t ng = nb / 4;
    const int n_tail = (int)(nb - 4 * ng);
    for (int c = 0; c < Q32_TILE_Y; c++) {
        const uint8_t *yr = y + c * by;
        for (int64_t g = 0; g < ng + 2; g++) {
            __m256 hy = _mm256_setzero_ps();
            if (c < ry) {
                if (g < ng) hy = half_pairs4(yr + 4 * g * ys, ys);
                else if (g == ng && n_tail >= 2) hy = half_pairs2(yr + 4 * ng * ys, ys);
                else if (g == ng + 1 && n_tail % 2) hy = half_pair1(yr + (nb - 1) * ys);
            }
            t->dyy[c][g] = _mm256_moveldup_ps(hy);
            if (!q32_has_min(k)) continue;
            float s[8];
            _mm256_storeu_ps(s, hy);
            float *s02 = (float *)&t->s02[g], *s13 = (float *)&t->s13[g];
            s02[c] = s[1], s13[c] = s[3], s02[4 + c] = s[5], s13[4 + c] = s[7];
        }
    }
}

/* Min chains of one weight row against the tile: hx its header pairs. */
static ALWAYS_INLINE void q32_min_tile(__m256 hx, __m256 s02, __m256 s13, __m256 *m02, __m256 *m13) {
    const __m256 t = _mm256_movehdup_ps(hx); /* [m0 m0 m1 m1 | m2 m2 m3 m3] */
    *m02 = _mm256_fmadd_ps(_mm256_unpacklo_ps(t, t), s02, *m02);
    *m13 = _mm256_fmadd_ps(_mm256_unpackhi_ps(t, t), s13, *m13);
}

/* The min chains of one weight row (header pairs hx) against the nt
 * activation tiles' group gi. */
static ALWAYS_INLINE void q32_min_tiles(__m256 hx, const q32_ytile *const t[2], int nt, int64_t gi, __m256 *m02,
                                        __m256 *m13) {
    for (int h = 0; h < nt; h++) q32_min_tile(hx, t[h]->s02[gi], t[h]->s13[gi], &m02[h], &m13[h]);
}

/* Two blocks in element order (a, b: 32 bytes each, dwords a0..a7) as two
 * vectors whose dword m holds 4 elements of block m/2 (low 128-bit lane) or
 * (m-4)/2 (high lane), of its first half ({0..7, 16..23}: m even) or second
 * half ({8..15, 24..31}: m odd):
 *   r0 = [a0 a2 b0 b2 | a4 a6 b4 b6],  r1 = [a1 a3 b1 b3 | a5 a7 b5 b7]
 * (one in-lane vshufps each).  Adding r0's and r1's int16 pair products and
 * then the two 128-bit lanes leaves, per dword, 16 elements of one block half:
 * the split sums [a' a'' b' b''] of q32_int2 without the per-block fold and
 * the vphaddw (2 cycles each on Zen 1, as much as a 256-bit vpmaddubsw).  The
 * integers are exact, so the float operations after them see the same
 * values as every other path. */
static inline void q32_arrange2(__m256i a, __m256i b, __m256i *r0, __m256i *r1) {
    const __m256 fa = _mm256_castsi256_ps(a), fb = _mm256_castsi256_ps(b);
    *r0 = _mm256_castps_si256(_mm256_shuffle_ps(fa, fb, 0x88));
    *r1 = _mm256_castps_si256(_mm256_shuffle_ps(fa, fb, 0xdd));
}

/* Split sums [b0' b0'' b1' b1''] of two blocks from their arranged codes
 * (r, |r| in ar) and the two activation blocks' bytes arranged the same way
 * at ya (64 bytes, see q32_yarrange).  Narrow formats only: a lane adds 4
 * pair products, at most 4 * 2 * 31 * 127 = 31496, within int16. */
static ALWAYS_INLINE __m128i q32_arranged2(enum q32_kind k, const __m256i r[2], const __m256i ar[2],
                                           const uint8_t *ya) {
    const __m256i p = _mm256_add_epi16(q32_dot16v(k, r[0], ar[0], loadu256(ya)),
                                       q32_dot16v(k, r[1], ar[1], loadu256(ya + 32)));
    return _mm_madd_epi16(fold_epi16(p), _mm_set1_epi16(1));
}

/* Activation rows for the arranged tile: per row, each pair of blocks a
 * weight group or tail group of 2 pairs up (blocks 2p, 2p+1 for p < nb/2)
 * as 64 bytes (q32_arrange2 of their qs), at Q32_ARR_ROW bytes per row. */
enum { Q32_ARR_BLOCKS = 128, Q32_ARR_ROW = Q32_ARR_BLOCKS * 32 }; /* rows of up to 4096 elements */
static ALWAYS_INLINE void q32_yarrange(enum q32_kind k, int64_t nb, const uint8_t *y, size_t by, int ry,
                                       uint8_t *ya) {
    const size_t ys = q32_y_size(k);
    for (int c = 0; c < ry; c++)
        for (int64_t b = 0; b + 2 <= nb; b += 2) {
            const uint8_t *yb = y + c * by + b * ys;
            __m256i r0, r1;
            q32_arrange2(loadu256(q32_y_qs(k, yb)), loadu256(q32_y_qs(k, yb + ys)), &r0, &r1);
            _mm256_storeu_si256((__m256i *)(ya + c * Q32_ARR_ROW + b * 32), r0);
            _mm256_storeu_si256((__m256i *)(ya + c * Q32_ARR_ROW + b * 32 + 32), r1);
        }
}

/* Arranged codes (and their magnitudes) of the pairs (0, 1) and (2, 3) of a
 * group of 4 blocks in element order. */
static ALWAYS_INLINE void q32_arrange4(enum q32_kind k, const __m256i cx[4], __m256i r[4], __m256i ar[4]) {
    q32_arrange2(cx[0], cx[1], &r[0], &r[1]);
    q32_arrange2(cx[2], cx[3], &r[2], &r[3]);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) ar[j] = q32_abs(k, r[j]);
}

/* One weight row against RY (1..8) activation rows, whose headers are in
 * t[0] (rows 0..3) and t[1] (rows 4..7): each weight group is unpacked once
 * for RY pairs. */
static ALWAYS_INLINE void q32_rows_tile(enum q32_kind k, const int RY, int64_t nb, const uint8_t *x, const uint8_t *y,
                                        size_t by, const uint8_t *ya, const q32_ytile *const t[2], float *s,
                                        size_t bs) {
    const size_t xs = q32_x_size(k), ys = q32_y_size(k);
    const int64_t ng = nb / 4;
    const int NT = (RY + Q32_TILE_Y - 1) / Q32_TILE_Y; /* activation tiles */
    __m256 acc[2 * Q32_TILE_Y], m02[2], m13[2];
    #pragma GCC unroll 8
    for (int c = 0; c < RY; c++) acc[c] = _mm256_setzero_ps();
    for (int h = 0; h < NT; h++) m02[h] = m13[h] = _mm256_setzero_ps();
#define Q32_DYY(c, gi) (t[(c) / Q32_TILE_Y]->dyy[(c) % Q32_TILE_Y][gi])
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *xb = x + 4 * g * xs;
        const __m256 hx = half_pairs4(xb, xs), dxx = _mm256_moveldup_ps(hx);
        __m256i cx[4], ax[4];
        q32_codes4(k, xb, cx, ax);
        if (q32_narrow(k) && ya) {
            __m256i r[4], ar[4];
            q32_arrange4(k, cx, r, ar);
            #pragma GCC unroll 8
            for (int c = 0; c < RY; c++) {
                const uint8_t *yb = ya + c * Q32_ARR_ROW + 4 * g * 32;
                const __m256i h = _mm256_set_m128i(q32_arranged2(k, r + 2, ar + 2, yb + 64), q32_arranged2(k, r, ar, yb));
                acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dxx, Q32_DYY(c, g)), _mm256_cvtepi32_ps(h), acc[c]);
            }
        } else {
            #pragma GCC unroll 8
            for (int c = 0; c < RY; c++) {
                const __m256i h = q32_int4(k, cx, ax, y + c * by + 4 * g * ys);
                acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dxx, Q32_DYY(c, g)), _mm256_cvtepi32_ps(h), acc[c]);
            }
        }
        if (q32_has_min(k)) q32_min_tiles(hx, t, NT, g, m02, m13);
    }
    int64_t ib = 4 * ng; /* the tail: a group of 2 (headers at ng), a single block (at ng + 1) */
    if (ib + 2 <= nb) {
        const uint8_t *xb = x + ib * xs;
        const __m256 hx = half_pairs2(xb, xs), dxx = _mm256_moveldup_ps(hx);
        __m256i cx[2], ax[2];
        q32_codes2(k, xb, cx, ax);
        __m256i r[2], ar[2];
        if (q32_narrow(k) && ya) {
            q32_arrange2(cx[0], cx[1], &r[0], &r[1]);
            ar[0] = q32_abs(k, r[0]), ar[1] = q32_abs(k, r[1]);
        }
        #pragma GCC unroll 8
        for (int c = 0; c < RY; c++) {
            const __m256i h = q32_narrow(k) && ya ? _mm256_zextsi128_si256(q32_arranged2(k, r, ar, ya + c * Q32_ARR_ROW + ib * 32))
                                                  : q32_int2(k, cx, ax, y + c * by + ib * ys);
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dxx, Q32_DYY(c, ng)), _mm256_cvtepi32_ps(h), acc[c]);
        }
        if (q32_has_min(k)) q32_min_tiles(hx, t, NT, ng, m02, m13);
        ib += 2;
    }
    if (ib < nb) {
        const uint8_t *xb = x + ib * xs;
        const __m256 hx = half_pair1(xb);
        const __m256i cb = q32_codes(k, xb), ab = q32_abs(k, cb);
        #pragma GCC unroll 8
        for (int c = 0; c < RY; c++) {
            const __m256i p = q32_dot(k, cb, ab, q32_y_qs(k, y + c * by + ib * ys));
            const __m256 dd = _mm256_permutevar8x32_ps(_mm256_mul_ps(hx, Q32_DYY(c, ng + 1)), _mm256_setzero_si256());
            acc[c] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(p), acc[c]);
        }
        if (q32_has_min(k)) q32_min_tiles(hx, t, NT, ng + 1, m02, m13);
    }
#undef Q32_DYY
    float mins[2 * Q32_TILE_Y] = {0};
    if (q32_has_min(k))
        for (int h = 0; h < NT; h++) {
            const __m256 m = _mm256_add_ps(m02[h], m13[h]); /* [ch0+ch1 of 4 rows | ch2+ch3] */
            _mm_storeu_ps(mins + 4 * h, _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1)));
        }
    #pragma GCC unroll 8
    for (int c = 0; c < RY; c++) s[c * bs] = q32_has_min(k) ? hsum_ps(acc[c]) + mins[c] : hsum_ps(acc[c]);
}

/* One activation row (decode): its header pairs are converted once for all
 * weight rows, then each weight row streams past with its own codes. */
static ALWAYS_INLINE void q32_rows_1(enum q32_kind k, int64_t nb, int64_t nrx, const uint8_t *x, size_t bx,
                                     const uint8_t *y, float *s) {
    enum { MAX_GROUPS = Q32_MAX_GROUPS };
    const size_t xs = q32_x_size(k), ys = q32_y_size(k);
    const int64_t ng = nb / 4;
    if (ng > MAX_GROUPS) {
        for (int64_t i = 0; i < nrx; i++) s[i] = q32_vec_dot(k, nb * QK, x + i * bx, y);
        return;
    }
    /* Q4_0/Q5_0 store codes + offset: here the unsigned codes go straight
     * into vpmaddubsw and offset * (sum of the activations), split the same
     * way and computed once per call, is subtracted: the same integers as
     * the signed form the tiles use, without the per-block sign fixing. */
    const bool offset = k == Q32_Q4_0 || k == Q32_Q5_0;
    __m256 dy[MAX_GROUPS];
    __m256i ycorr[MAX_GROUPS];
    for (int64_t g = 0; g < ng; g++) {
        dy[g] = half_pairs4(y + 4 * g * ys, ys);
        if (offset) {
            const __m256i o = _mm256_set1_epi8(k == Q32_Q4_0 ? 8 : 16), u[4] = {o, o, o, o};
            ycorr[g] = q32_split16(k, u, y + 4 * g * ys);
        }
    }
    for (int64_t i = 0; i < nrx; i++) {
        const uint8_t *xr = x + i * bx;
        __m256 acc = _mm256_setzero_ps(), accm = acc;
        for (int64_t g = 0; g < ng; g++) {
            const uint8_t *xb = xr + 4 * g * xs;
            const __m256 hx = half_pairs4(xb, xs);
            if (offset) {
                __m256i u[4];
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    const uint8_t *b = xb + j * xs;
                    u[j] = k == Q32_Q4_0 ? unpack_nibbles(((const block_q4_0 *)b)->qs)
                                         : _mm256_or_si256(unpack_nibbles(((const block_q5_0 *)b)->qs),
                                                           q5_high_bits(((const block_q5_0 *)b)->qh));
                }
                q32_acc_pair(k, _mm256_sub_epi32(q32_split16(k, u, y + 4 * g * ys), ycorr[g]), hx, dy[g], &acc, &accm);
                continue;
            }
            __m256i cx[4], ax[4];
            q32_codes4(k, xb, cx, ax);
            q32_acc_pair(k, q32_int4(k, cx, ax, y + 4 * g * ys), hx, dy[g], &acc, &accm);
        }
        q32_tail(k, 4 * ng, nb, xr, y, &acc, &accm);
        s[i] = q32_result(k, acc, accm);
    }
}

static ALWAYS_INLINE void q32_rows(enum q32_kind k, int64_t n, int64_t nrx, int64_t nry, const void *xv, size_t bx,
                                   const void *yv, size_t by, float *s, size_t bs) {
    const uint8_t *x = xv, *y = yv;
    int64_t nb = n / QK;
    if (nry == 1) {
        q32_rows_1(k, nb, nrx, x, bx, y, s);
        return;
    }
    if (nb / 4 > Q32_MAX_GROUPS) { /* rows over 32768 elements: pair by pair */
        for (int64_t j = 0; j < nry; j++)
            for (int64_t i = 0; i < nrx; i++) s[j * bs + i] = q32_vec_dot(k, n, x + i * bx, y + j * by);
        return;
    }
    /* activation tiles outer: their rows stay in L1 while the weight rows
     * stream past */
    q32_ytile yt0, yt1;
    const q32_ytile *const t[2] = {&yt0, &yt1};
    /* narrow formats: activation pairs arranged once per call (q32_arrange2) */
    _Alignas(32) uint8_t yarr[q32_narrow(k) ? 8 * Q32_ARR_ROW : 32];
    uint8_t *const ya = q32_narrow(k) && nb <= Q32_ARR_BLOCKS ? yarr : NULL;
    for (int64_t j = 0; j < nry;) {
        /* 8 rows at a time, then what is left in one tile: a speculative
         * verify of 5-7 rows streams the weights once, not twice */
        const int ry = nry - j >= 8 ? 8 : (int)(nry - j);
        const uint8_t *yt = y + j * by;
        if (ya) q32_yarrange(k, nb, yt, by, ry, ya);
        q32_ytile_fill(k, nb, yt, by, ry < Q32_TILE_Y ? ry : Q32_TILE_Y, &yt0);
        if (ry > Q32_TILE_Y) q32_ytile_fill(k, nb, yt + Q32_TILE_Y * by, by, ry - Q32_TILE_Y, &yt1);
        for (int64_t i = 0; i < nrx; i++) {
            const uint8_t *xr = x + i * bx;
            float *st = s + j * bs + i;
            switch (ry) {
            case 8: q32_rows_tile(k, 8, nb, xr, yt, by, ya, t, st, bs); break;
            case 7: q32_rows_tile(k, 7, nb, xr, yt, by, ya, t, st, bs); break;
            case 6: q32_rows_tile(k, 6, nb, xr, yt, by, ya, t, st, bs); break;
            case 5: q32_rows_tile(k, 5, nb, xr, yt, by, ya, t, st, bs); break;
            case 4: q32_rows_tile(k, 4, nb, xr, yt, by, ya, t, st, bs); break;
            case 3: q32_rows_tile(k, 3, nb, xr, yt, by, ya, t, st, bs); break;
            case 2: q32_rows_tile(k, 2, nb, xr, yt, by, ya, t, st, bs); break;
            default: q32_rows_tile(k, 1, nb, xr, yt, by, ya, t, st, bs); break;
            }
        }
        j += ry;
    }
}

#define Q32_ROWS(NAME, KIND)                                                                        \
    static void NAME(int64_t n, int64_t nrx, int64_t nry, const void *x, size_t bx, const void *y, \
                     size_t by, float *s, size_t bs) {                                              \
        q32_rows(KIND, n, nrx, nry, x, bx, y, by, s, bs);                                           \
    }
Q32_ROWS(rows_q4_0, Q32_Q4_0)
Q32_ROWS(rows_q4_1, Q32_Q4_1)
Q32_ROWS(rows_q5_0, Q32_Q5_0)
Q32_ROWS(rows_q5_1, Q32_Q5_1)
Q32_ROWS(rows_q8_0, Q32_Q8_0)

/* ------------------------------------------------------------ K-quant dots */

/* The 8 6-bit scales (into sc) and mins of a Q4_K/Q5_K super-block,
 * unpacked four at a time in 32-bit words (see q4k_scale_min); returns the
 * mins as int16 pairs [m0 m0 m1 m1 ... m7 m7], to multiply Q8_K's 16 bsums
 * with one vpmaddwd. */
static inline __m256i k_scales_mins(const uint8_t *packed, uint8_t sc[8]) {
    uint32_t w0 = load32(packed), w1 = load32(packed + 4), w2 = load32(packed + 8);
    uint32_t sc_lo = w0 & 0x3f3f3f3f, m_lo = w1 & 0x3f3f3f3f;
    uint32_t sc_hi = (w2 & 0x0f0f0f0f) | ((w0 >> 6) & 0x03030303) << 4;
    uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0f) | ((w1 >> 6) & 0x03030303) << 4;
    memcpy(sc, &sc_lo, 4);
    memcpy(sc + 4, &sc_hi, 4);
    __m128i mv = _mm_cvtepu8_epi16(_mm_setr_epi32((int)m_lo, (int)m_hi, 0, 0));
    return _mm256_set_m128i(_mm_unpackhi_epi16(mv, mv), _mm_unpacklo_epi16(mv, mv));
}

static void vec_dot_q4_K(int64_t n, float *s, const void *xv, const void *yv) {
    const block_q4_K *x = xv;
    const block_q8_K *y = yv;
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        uint8_t sc[8];
        __m256i mins = k_scales_mins(x[ib].scales, sc);
        int summ = hsum_epi32(_mm256_madd_epi16(loadu256(y[ib].bsums), mins));
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i q = loadu256(x[ib].qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            __m256i plo = _mm256_maddubs_epi16(lo, loadu256(y[ib].qs + 64 * c));
            __m256i phi = _mm256_maddubs_epi16(hi, loadu256(y[ib].qs + 64 * c + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * c])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * c + 1])));
        }
        float dy = y[ib].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * FP16(x[ib].d)), _mm256_cvtepi32_ps(sumi), acc);
        accm += dy * FP16(x[ib].dmin) * (float)summ;
    }
    *s = hsum_ps(acc) - accm;
}

static void vec_dot_q5_K(int64_t n, float *s, const void *xv, const void *yv) {
    const block_q5_K *x = xv;
    const block_q8_K *y = yv;
    const __m256i low4 = _mm256_set1_epi8(15), b16 = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        uint8_t sc[8];
        __m256i mins = k_scales_mins(x[ib].scales, sc);
        int summ = hsum_epi32(_mm256_madd_epi16(loadu256(y[ib].bsums), mins));
        __m256i qh = loadu256(x[ib].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i q = loadu256(x[ib].qs + 32 * c);
            /* bit 2c of qh[l] -> 16 for element 64c+l, bit 2c+1 for 64c+32+l */
            __m256i hlo = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c), 4), b16);
            __m256i hhi = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c + 1), 4), b16);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, low4), hlo);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), hhi);
            __m256i plo = _mm256_maddubs_epi16(lo, loadu256(y[ib].qs + 64 * c));
            __m256i phi = _mm256_maddubs_epi16(hi, loadu256(y[ib].qs + 64 * c + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * c])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * c + 1])));
        }
        float dy = y[ib].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * FP16(x[ib].d)), _mm256_cvtepi32_ps(sumi), acc);
        accm += dy * FP16(x[ib].dmin) * (float)summ;
    }
    *s = hsum_ps(acc) - accm;
}

/* Scale vector for quarter k of half h of Q6_K: lane 0 = scales[8h+2k],
 * lane 1 = scales[8h+2k+1], as int16.  sc8 = the 8 int16 scales of half h in
 * both lanes. */
static inline __m256i q6k_scale_pair(__m256i sc8, int k) {
    const int lo = 4 * k, hi = 4 * k + 2; /* byte offsets of words 2k and 2k+1 */
    __m256i idx = _mm256_setr_epi8(lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1,
                                   lo, lo + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1,
                                   hi, hi + 1, hi, hi + 1);
    return _mm256_shuffle_epi8(sc8, idx);
}

/* The 8 scales of half h as int16 in both lanes, from all 16 as int16. */
static inline __m256i q6k_half_scales(__m256i sc16, int h) {
    return h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
}

/* Q6_K: sum (q - 32) y = sum q y - 32 sum y, the last from Q8_K's bsums. */
static void vec_dot_q6_K(int64_t n, float *s, const void *xv, const void *yv) {
    const block_q6_K *x = xv;
    const block_q8_K *y = yv;
    const __m256i low4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[ib].scales));
        __m256i sumi = _mm256_mullo_epi32(_mm256_madd_epi16(loadu256(y[ib].bsums), sc16), _mm256_set1_epi32(-32));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[ib].ql + 64 * h;
            __m256i l0 = loadu256(ql), l1 = loadu256(ql + 32), qh = loadu256(x[ib].qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            __m256i sc8 = q6k_half_scales(sc16, h);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i p = _mm256_maddubs_epi16(q[k], loadu256(y[ib].qs + 128 * h + 32 * k));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, q6k_scale_pair(sc8, k)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[ib].d * FP16(x[ib].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc);
}

/* ------------------------------------------------------------ K-quant rows
 * Tiles of 2 weight rows x 2 activation rows: the unpacked codes of a chunk
 * serve both activation rows, the activation bytes both weight rows. */

#define KTILE_DISPATCH(FN, nb, nrx, nry, x, bx, y, by, s, bs)                                 \
    for (int64_t j = 0; j < (nry); j += 2) {                                                  \
        int ry = (nry) - j < 2 ? 1 : 2;                                                       \
        for (int64_t i = 0; i < (nrx); i += 2) {                                              \
            int rx = (nrx) - i < 2 ? 1 : 2;                                                   \
            const uint8_t *xt = (const uint8_t *)(x) + i * (bx);                              \
            const uint8_t *yt = (const uint8_t *)(y) + j * (by);                              \
            float *st = (s) + j * (bs) + i;                                                   \
            if (rx == 2 && ry == 2) FN(2, 2, nb, xt, bx, yt, by, st, bs);                     \
            else if (rx == 2) FN(2, 1, nb, xt, bx, yt, by, st, bs);                           \
            else if (ry == 2) FN(1, 2, nb, xt, bx, yt, by, st, bs);                           \
            else FN(1, 1, nb, xt, bx, yt, by, st, bs);                                        \
        }                                                                                     \
    }

static ALWAYS_INLINE void q4k_rows_tile(const int RX, const int RY, int64_t nb, const uint8_t *x, size_t bx,
                                        const uint8_t *y, size_t by, float *s, size_t bs) {
    const __m256i low4 = _mm256_set1_epi8(15);
    __m256 acc[2][2];
    float accm[2][2] = {{0, 0}, {0, 0}};
#pragma GCC unroll 2
    for (int r = 0; r < RX; r++)
#pragma GCC unroll 2
        for (int c = 0; c < RY; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const block_q4_K *xb[2];
        const block_q8_K *yb[2];
        uint8_t sc[2][8];
        __m256i mins[2], sumi[2][2];
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++) {
            xb[r] = (const block_q4_K *)(x + r * bx) + ib;
            mins[r] = k_scales_mins(xb[r]->scales, sc[r]);
        }
#pragma GCC unroll 2
        for (int c = 0; c < RY; c++) yb[c] = (const block_q8_K *)(y + c * by) + ib;
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++)
#pragma GCC unroll 2
            for (int c = 0; c < RY; c++) sumi[r][c] = _mm256_setzero_si256();
        for (int ch = 0; ch < 4; ch++) {
            __m256i lo[2], hi[2];
#pragma GCC unroll 2
            for (int r = 0; r < RX; r++) {
                __m256i q = loadu256(xb[r]->qs + 32 * ch);
                lo[r] = _mm256_and_si256(q, low4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            }
#pragma GCC unroll 2
            for (int c = 0; c < RY; c++) {
                __m256i ylo = loadu256(yb[c]->qs + 64 * ch), yhi = loadu256(yb[c]->qs + 64 * ch + 32);
#pragma GCC unroll 2
                for (int r = 0; r < RX; r++) {
                    __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], ylo), _mm256_set1_epi16(sc[r][2 * ch]));
                    __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], yhi), _mm256_set1_epi16(sc[r][2 * ch + 1]));
                    sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_add_epi32(plo, phi));
                }
            }
        }
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++) {
            float dx = FP16(xb[r]->d), dmin = FP16(xb[r]->dmin);
#pragma GCC unroll 2
            for (int c = 0; c < RY; c++) {
                float dy = yb[c]->d;
                int summ = hsum_epi32(_mm256_madd_epi16(loadu256(yb[c]->bsums), mins[r]));
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dy * dx), _mm256_cvtepi32_ps(sumi[r][c]), acc[r][c]);
                accm[r][c] += dy * dmin * (float)summ;
            }
        }
    }
#pragma GCC unroll 2
    for (int c = 0; c < RY; c++)
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++) s[c * bs + r] = hsum_ps(acc[r][c]) - accm[r][c];
}

static void rows_q4_K(int64_t n, int64_t nrx, int64_t nry, const void *x, size_t bx, const void *y, size_t by, float *s,
                      size_t bs) {
    KTILE_DISPATCH(q4k_rows_tile, n / QK_K, nrx, nry, x, bx, y, by, s, bs)
}

/* Codes (0..63) of quarter k of half h of a Q6_K block. */
static inline __m256i q6k_quarter(const block_q6_K *b, int h, int k) {
    const __m256i low4 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3);
    __m256i l = loadu256(b->ql + 64 * h + 32 * (k & 1)), qh = loadu256(b->qh + 32 * h);
    if (k & 2) l = _mm256_srli_epi16(l, 4);
    __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m3);
    return _mm256_or_si256(_mm256_and_si256(l, low4), _mm256_slli_epi16(hb, 4));
}

static ALWAYS_INLINE void q6k_rows_tile(const int RX, const int RY, int64_t nb, const uint8_t *x, size_t bx,
                                        const uint8_t *y, size_t by, float *s, size_t bs) {
    __m256 acc[2][2];
#pragma GCC unroll 2
    for (int r = 0; r < RX; r++)
#pragma GCC unroll 2
        for (int c = 0; c < RY; c++) acc[r][c] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const block_q6_K *xb[2];
        const block_q8_K *yb[2];
        __m256i sumi[2][2];
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++) xb[r] = (const block_q6_K *)(x + r * bx) + ib;
#pragma GCC unroll 2
        for (int c = 0; c < RY; c++) yb[c] = (const block_q8_K *)(y + c * by) + ib;
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++) {
            __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)xb[r]->scales));
#pragma GCC unroll 2
            for (int c = 0; c < RY; c++)
                sumi[r][c] = _mm256_slli_epi32(_mm256_madd_epi16(loadu256(yb[c]->bsums), sc16), 5);
        }
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++)
#pragma GCC unroll 2
            for (int c = 0; c < RY; c++) sumi[r][c] = _mm256_sub_epi32(_mm256_setzero_si256(), sumi[r][c]);
        __m256i sc16[2];
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++) sc16[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)xb[r]->scales));
        for (int h = 0; h < 2; h++) {
            __m256i sc8[2];
#pragma GCC unroll 2
            for (int r = 0; r < RX; r++) sc8[r] = q6k_half_scales(sc16[r], h);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i q[2], scv[2];
#pragma GCC unroll 2
                for (int r = 0; r < RX; r++) {
                    q[r] = q6k_quarter(xb[r], h, k);
                    scv[r] = q6k_scale_pair(sc8[r], k);
                }
#pragma GCC unroll 2
                for (int c = 0; c < RY; c++) {
                    __m256i yq = loadu256(yb[c]->qs + 128 * h + 32 * k);
#pragma GCC unroll 2
                    for (int r = 0; r < RX; r++)
                        sumi[r][c] = _mm256_add_epi32(sumi[r][c], _mm256_madd_epi16(_mm256_maddubs_epi16(q[r], yq), scv[r]));
                }
            }
        }
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++)
#pragma GCC unroll 2
            for (int c = 0; c < RY; c++)
                acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(yb[c]->d * FP16(xb[r]->d)), _mm256_cvtepi32_ps(sumi[r][c]), acc[r][c]);
    }
#pragma GCC unroll 2
    for (int c = 0; c < RY; c++)
#pragma GCC unroll 2
        for (int r = 0; r < RX; r++) s[c * bs + r] = hsum_ps(acc[r][c]);
}

static void rows_q6_K(int64_t n, int64_t nrx, int64_t nry, const void *x, size_t bx, const void *y, size_t by, float *s,
                      size_t bs) {
    KTILE_DISPATCH(q6k_rows_tile, n / QK_K, nrx, nry, x, bx, y, by, s, bs)
}

/* ------------------------------------------------------------ fill */

KERNEL_ROWS_FROM_DOT(rows_f32, vec_dot_f32)
KERNEL_ROWS_FROM_DOT(rows_f16, vec_dot_f16)
KERNEL_ROWS_FROM_DOT(rows_bf16, vec_dot_bf16)
KERNEL_ROWS_FROM_DOT(rows_q5_K, vec_dot_q5_K)

void kernels_avx2_fill(kernel_level *lv) {
    kernel_traits *tab = lv->traits;
    tab[RYOT_TYPE_F32].vec_dot = vec_dot_f32;
    tab[RYOT_TYPE_F32].vec_dot_rows = rows_f32;
    tab[RYOT_TYPE_F16].vec_dot = vec_dot_f16;
    tab[RYOT_TYPE_F16].vec_dot_rows = rows_f16;
    tab[RYOT_TYPE_F16].to_float = f16_to_float;
    tab[RYOT_TYPE_F16].from_float = f16_from_float;
    tab[RYOT_TYPE_BF16].vec_dot = vec_dot_bf16;
    tab[RYOT_TYPE_BF16].vec_dot_rows = rows_bf16;
    tab[RYOT_TYPE_BF16].to_float = bf16_to_float;
    tab[RYOT_TYPE_BF16].from_float = bf16_from_float;

    tab[RYOT_TYPE_Q4_0].vec_dot = vec_dot_q4_0;
    tab[RYOT_TYPE_Q4_0].vec_dot_rows = rows_q4_0;
    tab[RYOT_TYPE_Q4_1].vec_dot = vec_dot_q4_1;
    tab[RYOT_TYPE_Q4_1].vec_dot_rows = rows_q4_1;
    tab[RYOT_TYPE_Q5_0].vec_dot = vec_dot_q5_0;
    tab[RYOT_TYPE_Q5_0].vec_dot_rows = rows_q5_0;
    tab[RYOT_TYPE_Q5_1].vec_dot = vec_dot_q5_1;
    tab[RYOT_TYPE_Q5_1].vec_dot_rows = rows_q5_1;
    tab[RYOT_TYPE_Q8_0].vec_dot = vec_dot_q8_0;
    tab[RYOT_TYPE_Q8_0].vec_dot_rows = rows_q8_0;
    tab[RYOT_TYPE_Q8_0].to_float = q8_0_to_float;
    tab[RYOT_TYPE_Q8_0].from_float = q8_0_from_float;
    tab[RYOT_TYPE_Q8_1].from_float = q8_1_from_float;
    tab[RYOT_TYPE_Q8_K].from_float = q8_K_from_float;

    tab[RYOT_TYPE_Q4_K].vec_dot = vec_dot_q4_K;
    tab[RYOT_TYPE_Q4_K].vec_dot_rows = rows_q4_K;
    tab[RYOT_TYPE_Q5_K].vec_dot = vec_dot_q5_K;
    tab[RYOT_TYPE_Q5_K].vec_dot_rows = rows_q5_K;
    tab[RYOT_TYPE_Q6_K].vec_dot = vec_dot_q6_K;
    tab[RYOT_TYPE_Q6_K].vec_dot_rows = rows_q6_K;
    avx2_ops_fill(&lv->ops);
}
