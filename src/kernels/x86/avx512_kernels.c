/* AVX-512 kernels (F BW VL DQ VNNI; built with -mavx512f/bw/vl/dq/vnni and
 * called only after CPU detection).
 *
 * Every result here is bitwise the AVX2 level's (x86/avx2_kernels.c): the
 * integer block sums are computed with 512-bit vpdpbusd instead of
 * vpmaddubsw + vpmaddwd, but they are exact integers split into the same
 * partial sums, and the float arithmetic on them (the scale products, the
 * fma chains, the horizontal sums) is the AVX2 level's, lane for lane, with
 * two rows of it packed into one 512-bit register where that pays.  So the
 * AVX-512 level inherits the AVX2 level's tested accuracy against the
 * reference, the engine's batch invariance, and the golden figures, and an
 * answer does not depend on which x86 machine computed it.
 * tests/unit/test_kernels_avx512.c checks the equality on every machine:
 * this file is also compiled with -DRYOT_AVX512_EMULATE on top of SIMDe
 * (x86/avx512_emu.h), and test_kernels.c checks the native build against the
 * reference where the CPU has AVX-512.
 *
 * vpdpbusd multiplies unsigned by signed bytes, so the weights' codes go in
 * unsigned: Q4_1, Q5_1 and the K-quants as stored, Q4_0 and Q5_0 as stored
 * and offset * (the activations' sums, split the same way) subtracted,
 * Q8_0 as code + 128 (xor 0x80) likewise.  No int32 lane can overflow: four
 * products are at most 4 * 255 * 127. */
#ifdef RYOT_AVX512_EMULATE
#include "kernels/x86/avx512_emu.h"
#define AVX512_FILL kernels_avx512_emu_fill
#define AVX512_OPS_FILL avx512_emu_ops_fill
#else
#include <immintrin.h>
#define AVX512_FILL kernels_avx512_fill
#define AVX512_OPS_FILL avx512_ops_fill
#endif
#include <stdbool.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define FP16(h) _cvtsh_ss(h)

/* The AVX2 level's horizontal sums (the same adds in the same order). */
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

static inline __m128i loadu128(const void *p) {
    return _mm_loadu_si128((const __m128i *)p);
}

static inline __m256i loadu256(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline __m512i loadu512(const void *p) {
    return _mm512_loadu_si512(p);
}

/* The low and high 256-bit halves of a 512-bit float vector. */
static inline __m256 lo256(__m512 v) {
    return _mm512_castps512_ps256(v);
}

static inline __m256 hi256(__m512 v) {
    return _mm512_extractf32x8_ps(v, 1);
}

/* ------------------------------------------------------------ float types
 * The AVX2 dots keep four 8-lane accumulators over 32-element steps, then
 * an 8-element step into the first; here two 16-lane ones hold the same
 * four (a0|a1, a2|a3), so every lane sees the same products in the same
 * order. */

static inline __m512 load16_f32(const float *p) {
    return _mm512_loadu_ps(p);
}

static inline __m512 load16_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(loadu256(p));
}

static inline __m512 load16_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(loadu256(p)), 16));
}

static inline __m256 load8_f32(const float *p) {
    return _mm256_loadu_ps(p);
}

static inline __m256 load8_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(loadu128(p));
}

static inline __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(p)), 16));
}

static inline float conv_f32(float v) {
    return v;
}

#define WIDE_DOT(NAME, T, LOAD16, LOAD8, CONV)                                                     \
    static void NAME(int64_t n, float *s, const void *xv, const void *yv) {                        \
        const T *x = xv;                                                                           \
        const float *y = yv;                                                                       \
        __m512 a01 = _mm512_setzero_ps(), a23 = a01;                                               \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            a01 = _mm512_fmadd_ps(LOAD16(x + i), _mm512_loadu_ps(y + i), a01);                     \
            a23 = _mm512_fmadd_ps(LOAD16(x + i + 16), _mm512_loadu_ps(y + i + 16), a23);           \
        }                                                                                          \
        __m256 a0 = lo256(a01);                                                                    \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD8(x + i), _mm256_loadu_ps(y + i), a0); \
        float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, hi256(a01)), _mm256_add_ps(lo256(a23), hi256(a23)))); \
        for (; i < n; i++) sum += CONV(x[i]) * y[i];                                               \
        *s = sum;                                                                                  \
    }

WIDE_DOT(vec_dot_f32, float, load16_f32, load8_f32, conv_f32)
WIDE_DOT(vec_dot_f16, uint16_t, load16_f16, load8_f16, ryot_fp16_to_fp32)
WIDE_DOT(vec_dot_bf16, uint16_t, load16_bf16, load8_bf16, ryot_bf16_to_fp32)

/* ------------------------------------------------------------ 32-block formats
 *
 * The AVX2 level's arithmetic per (weight row, activation row) pair, which
 * this section reproduces: per group of 4 blocks, h = the 4 exact integer
 * block dots, each split in two, [b0' b0'' b1' b1'' | b2' b2'' b3' b3'']
 * with b' over the block's elements 0..7 and 16..23 and b'' over 8..15 and
 * 24..31; hx, hy = the fp16 header pairs of the 4 weight and 4 activation
 * blocks as floats ([d m] or [d s]);
 *   acc  = fma(moveldup(hx * hy), float(h), acc)
 *   accm = fma(hx, hy, accm)         (formats with a min: the min terms)
 * then a group of 2 the same way (headers zero-padded), a last single block
 * with acc = fma(broadcast(dx * dy), float(8 lane dot), acc), and the result
 * hsum(acc) + ((ch0 + ch1) + (ch2 + ch3)) from accm's odd lanes. */

enum q32_kind { Q32_Q4_0, Q32_Q4_1, Q32_Q5_0, Q32_Q5_1, Q32_Q8_0 };

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

static ALWAYS_INLINE size_t q32_y_size(enum q32_kind k) {
    return q32_has_min(k) ? sizeof(block_q8_1) : sizeof(block_q8_0);
}

static ALWAYS_INLINE const int8_t *q32_y_qs(enum q32_kind k, const uint8_t *yb) {
    return (const int8_t *)yb + (q32_has_min(k) ? 4 : 2);
}

/* What the unsigned codes exceed the signed ones by. */
static ALWAYS_INLINE int q32_offset(enum q32_kind k) {
    switch (k) {
    case Q32_Q4_0: return 8;
    case Q32_Q5_0: return 16;
    case Q32_Q8_0: return 128;
    default: return 0;
    }
}

static ALWAYS_INLINE const uint8_t *q32_nibbles(enum q32_kind k, const uint8_t *xb) {
    switch (k) {
    case Q32_Q4_0: return ((const block_q4_0 *)xb)->qs;
    case Q32_Q4_1: return ((const block_q4_1 *)xb)->qs;
    case Q32_Q5_0: return ((const block_q5_0 *)xb)->qs;
    default: return ((const block_q5_1 *)xb)->qs;
    }
}

static ALWAYS_INLINE uint32_t q32_qh(enum q32_kind k, const uint8_t *xb) {
    return load32(k == Q32_Q5_0 ? ((const block_q5_0 *)xb)->qh : ((const block_q5_1 *)xb)->qh);
}

/* Unsigned codes of one block, 32 bytes in element order. */
static ALWAYS_INLINE __m256i q32_codes1(enum q32_kind k, const uint8_t *xb) {
    if (k == Q32_Q8_0) return _mm256_xor_si256(loadu256(((const block_q8_0 *)xb)->qs), _mm256_set1_epi8((char)0x80));
    const __m128i b = loadu128(q32_nibbles(k, xb));
    __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(15));
    if (k == Q32_Q5_0 || k == Q32_Q5_1) v = _mm256_mask_add_epi8(v, q32_qh(k, xb), v, _mm256_set1_epi8(16));
    return v;
}

/* Unsigned codes of two blocks: a's in the low half, b's in the high. */
static ALWAYS_INLINE __m512i q32_codes2(enum q32_kind k, const uint8_t *a, const uint8_t *b) {
    if (k == Q32_Q8_0) {
        const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(((const block_q8_0 *)a)->qs)),
                                             loadu256(((const block_q8_0 *)b)->qs), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
    }
    const __m256i q = _mm256_set_m128i(loadu128(q32_nibbles(k, b)), loadu128(q32_nibbles(k, a)));
    /* [qa qa qb qb], the second copy of each shifted to its high nibbles */
    __m512i v = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), _mm512_castsi256_si512(q));
    v = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xff00ff00u, v, 4), _mm512_set1_epi8(15));
    if (k == Q32_Q5_0 || k == Q32_Q5_1) {
        const __mmask64 hb = (uint64_t)q32_qh(k, a) | (uint64_t)q32_qh(k, b) << 32;
        v = _mm512_mask_add_epi8(v, hb, v, _mm512_set1_epi8(16));
    }
    return v;
}

/* The 32 activation bytes of blocks a (low half) and b (high half). */
static ALWAYS_INLINE __m512i q32_y2(enum q32_kind k, const uint8_t *a, const uint8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(q32_y_qs(k, a))), loadu256(q32_y_qs(k, b)), 1);
}

/* From the vpdpbusd lanes of blocks (0, 2) and (1, 3) (lane j of a block's
 * half = its elements 4j..4j+3), the sums of adjacent lane pairs: per
 * 128-bit chunk [d02 pair sums, d13 pair sums]. */
static ALWAYS_INLINE __m512i q32_pairs(__m512i d02, __m512i d13) {
    const __m512 a = _mm512_castsi512_ps(d02), b = _mm512_castsi512_ps(d13);
    return _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
                            _mm512_castps_si512(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))));
}

/* Two rows' pair sums -> their split sums h, [h_t | h_u]. */
static ALWAYS_INLINE __m512i q32_split2(__m512i t, __m512i u) {
    return _mm512_add_epi32(_mm512_shuffle_i32x4(t, u, _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i32x4(t, u, _MM_SHUFFLE(3, 1, 3, 1)));
}

static ALWAYS_INLINE __m256i q32_split1(__m512i t) {
    return _mm512_castsi512_si256(q32_split2(t, t));
}

/* Pair sums of one weight group (codes z02, z13) with the activation
 * group at yg. */
static ALWAYS_INLINE __m512i q32_t4(enum q32_kind k, __m512i z02, __m512i z13, const uint8_t *yg) {
    const size_t ys = q32_y_size(k);
    const __m512i d02 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), z02, q32_y2(k, yg, yg + 2 * ys));
    const __m512i d13 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), z13, q32_y2(k, yg + ys, yg + 3 * ys));
    return q32_pairs(d02, d13);
}

/* offset * the activation group's split sums (offset formats only). */
static ALWAYS_INLINE __m256i q32_corr4(enum q32_kind k, const uint8_t *yg) {
    const __m512i o = _mm512_set1_epi8((char)q32_offset(k));
    return q32_split1(q32_t4(k, o, o, yg));
}

static ALWAYS_INLINE void q32_group_codes(enum q32_kind k, const uint8_t *xb, __m512i *z02, __m512i *z13) {
    const size_t xs = q32_x_size(k);
    *z02 = q32_codes2(k, xb, xb + 2 * xs);
    *z13 = q32_codes2(k, xb + xs, xb + 3 * xs);
}

/* Split sums of one pair's group of 4 blocks. */
static ALWAYS_INLINE __m256i q32_int4(enum q32_kind k, const uint8_t *xb, const uint8_t *yg) {
    __m512i z02, z13;
    q32_group_codes(k, xb, &z02, &z13);
    __m256i h = q32_split1(q32_t4(k, z02, z13, yg));
    if (q32_offset(k)) h = _mm256_sub_epi32(h, q32_corr4(k, yg));
    return h;
}

/* vpdpbusd of a block's 32 codes u with the activation block, less the
 * offset term: 8 lanes, lane j over elements 4j..4j+3. */
static ALWAYS_INLINE __m256i q32_dot8(enum q32_kind k, __m256i u, const uint8_t *yb) {
    const __m256i y = loadu256(q32_y_qs(k, yb));
    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, y);
    if (q32_offset(k))
        p = _mm256_sub_epi32(p, _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)q32_offset(k)), y));
    return p;
}

/* Split sums of a group of 2 blocks: [b0' b0'' b1' b1''], upper half 0. */
static ALWAYS_INLINE __m256i q32_int2(enum q32_kind k, const uint8_t *xb, const uint8_t *yb) {
    const size_t xs = q32_x_size(k), ys = q32_y_size(k);
    const __m256 d0 = _mm256_castsi256_ps(q32_dot8(k, q32_codes1(k, xb), yb));
    const __m256 d1 = _mm256_castsi256_ps(q32_dot8(k, q32_codes1(k, xb + xs), yb + ys));
    const __m256i t = _mm256_add_epi32(_mm256_castps_si256(_mm256_shuffle_ps(d0, d1, _MM_SHUFFLE(2, 0, 2, 0))),
                                       _mm256_castps_si256(_mm256_shuffle_ps(d0, d1, _MM_SHUFFLE(3, 1, 3, 1))));
    return _mm256_zextsi128_si256(_mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1)));
}

/* The first two fp16 of 4 blocks `stride` bytes apart, as 8 floats. */
static inline __m256 half_pairs4(const uint8_t *p, size_t stride) {
    __m128i v = _mm_setr_epi32((int)load32(p), (int)load32(p + stride), (int)load32(p + 2 * stride),
                               (int)load32(p + 3 * stride));
    return _mm256_cvtph_ps(v);
}

/* The same for two rows' groups (a in the low half, b in the high). */
static inline __m512 half_pairs4x2(const uint8_t *a, const uint8_t *b, size_t stride) {
    __m256i v = _mm256_setr_epi32((int)load32(a), (int)load32(a + stride), (int)load32(a + 2 * stride),
                                  (int)load32(a + 3 * stride), (int)load32(b), (int)load32(b + stride),
                                  (int)load32(b + 2 * stride), (int)load32(b + 3 * stride));
    return _mm512_cvtph_ps(v);
}

static inline __m256 half_pairs2(const uint8_t *p, size_t stride) {
    return _mm256_cvtph_ps(_mm_setr_epi32((int)load32(p), (int)load32(p + stride), 0, 0));
}

static inline __m256 half_pair1(const uint8_t *p) {
    return _mm256_cvtph_ps(_mm_cvtsi32_si128((int)load32(p)));
}

static ALWAYS_INLINE void q32_acc_pair(enum q32_kind k, __m256i h, __m256 hx, __m256 hy, __m256 *acc, __m256 *accm) {
    *acc = _mm256_fmadd_ps(_mm256_moveldup_ps(_mm256_mul_ps(hx, hy)), _mm256_cvtepi32_ps(h), *acc);
    if (q32_has_min(k)) *accm = _mm256_fmadd_ps(hx, hy, *accm);
}

/* The same for two pairs at once, one in each half. */
static ALWAYS_INLINE void q32_acc_pair2(enum q32_kind k, __m512i h, __m512 hx, __m512 hy, __m512 *acc, __m512 *accm) {
    *acc = _mm512_fmadd_ps(_mm512_moveldup_ps(_mm512_mul_ps(hx, hy)), _mm512_cvtepi32_ps(h), *acc);
    if (q32_has_min(k)) *accm = _mm512_fmadd_ps(hx, hy, *accm);
}

/* Blocks [ib, nb) of one pair after its groups of 4: a group of 2, then a
 * single block. */
static ALWAYS_INLINE void q32_tail(enum q32_kind k, int64_t ib, int64_t nb, const uint8_t *x, const uint8_t *y,
                                   __m256 *acc, __m256 *accm) {
    const size_t xs = q32_x_size(k), ys = q32_y_size(k);
    if (ib + 2 <= nb) {
        const uint8_t *xb = x + ib * xs, *yb = y + ib * ys;
        q32_acc_pair(k, q32_int2(k, xb, yb), half_pairs2(xb, xs), half_pairs2(yb, ys), acc, accm);
        ib += 2;
    }
    if (ib < nb) {
        const uint8_t *xb = x + ib * xs, *yb = y + ib * ys;
        const __m256 hx = half_pair1(xb), hy = half_pair1(yb);
        const __m256i p = q32_dot8(k, q32_codes1(k, xb), yb);
        *acc = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(_mm256_mul_ps(hx, hy), _mm256_setzero_si256()),
                               _mm256_cvtepi32_ps(p), *acc);
        if (q32_has_min(k)) *accm = _mm256_fmadd_ps(hx, hy, *accm);
    }
}

static inline float q32_min_sum(__m256 accm) {
    const __m256 t = _mm256_add_ps(accm, _mm256_shuffle_ps(accm, accm, _MM_SHUFFLE(3, 3, 3, 3)));
    const __m128 lo = _mm256_castps256_ps128(t), hi = _mm256_extractf128_ps(t, 1);
    return _mm_cvtss_f32(_mm_add_ss(_mm_movehdup_ps(lo), _mm_movehdup_ps(hi)));
}

static ALWAYS_INLINE float q32_result(enum q32_kind k, __m256 acc, __m256 accm) {
    return q32_has_min(k) ? hsum_ps(acc) + q32_min_sum(accm) : hsum_ps(acc);
}

static ALWAYS_INLINE float q32_vec_dot(enum q32_kind k, int64_t n, const uint8_t *x, const uint8_t *y) {
    const size_t xs = q32_x_size(k), ys = q32_y_size(k);
    __m256 acc = _mm256_setzero_ps(), accm = acc;
    const int64_t nb = n / QK;
    int64_t ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        const uint8_t *xb = x + ib * xs, *yb = y + ib * ys;
        q32_acc_pair(k, q32_int4(k, xb, yb), half_pairs4(xb, xs), half_pairs4(yb, ys), &acc, &accm);
    }
    q32_tail(k, ib, nb, x, y, &acc, &accm);
    return q32_result(k, acc, accm);
}

enum { Q32_MAX_GROUPS = 256 }; /* rows of up to 32768 elements go through the tiled paths */

/* Several activation rows: tiles of up to 4, two per accumulator, their
 * headers and offset terms computed once per call; each weight group is
 * unpacked once per tile. */
enum { Q32_TILE_Y = 4 };

static ALWAYS_INLINE void q32_rows_tiled(enum q32_kind k, int64_t nb, int64_t nrx, int64_t nry, const uint8_t *x,
                                         size_t bx, const uint8_t *y, size_t by, float *s, size_t bs) {
    const size_t xs = q32_x_size(k), ys = q32_y_size(k);
    const int64_t ng = nb / 4;
    __m512 hy[Q32_TILE_Y / 2][Q32_MAX_GROUPS];
    __m512i corr[Q32_TILE_Y / 2][Q32_MAX_GROUPS];
    for (int64_t j = 0; j < nry; j += Q32_TILE_Y) {
        const int ry = nry - j < Q32_TILE_Y ? (int)(nry - j) : Q32_TILE_Y, np = (ry + 1) / 2;
        const uint8_t *yr[Q32_TILE_Y];
        for (int c = 0; c < Q32_TILE_Y; c++) yr[c] = y + (j + (c < ry ? c : ry - 1)) * by;
        for (int p = 0; p < np; p++)
            for (int64_t g = 0; g < ng; g++) {
                const uint8_t *ya = yr[2 * p] + 4 * g * ys, *yb = yr[2 * p + 1] + 4 * g * ys;
                const __m256 hb = 2 * p + 1 < ry ? half_pairs4(yb, ys) : _mm256_setzero_ps();
                hy[p][g] = _mm512_insertf32x8(_mm512_castps256_ps512(half_pairs4(ya, ys)), hb, 1);
                if (q32_offset(k))
                    corr[p][g] = _mm512_inserti64x4(_mm512_castsi256_si512(q32_corr4(k, ya)), q32_corr4(k, yb), 1);
            }
        for (int64_t i = 0; i < nrx; i++) {
            const uint8_t *xr = x + i * bx;
            __m512 acc[Q32_TILE_Y / 2], accm[Q32_TILE_Y / 2];
            for (int p = 0; p < Q32_TILE_Y / 2; p++) acc[p] = accm[p] = _mm512_setzero_ps();
            for (int64_t g = 0; g < ng; g++) {
                const uint8_t *xg = xr + 4 * g * xs;
                __m512i z02, z13;
                q32_group_codes(k, xg, &z02, &z13);
                const __m512 hx = _mm512_broadcast_f32x8(half_pairs4(xg, xs));
                for (int p = 0; p < np; p++) {
                    const __m512i ta = q32_t4(k, z02, z13, yr[2 * p] + 4 * g * ys);
                    const __m512i tb = q32_t4(k, z02, z13, yr[2 * p + 1] + 4 * g * ys);
                    __m512i h = q32_split2(ta, tb);
                    if (q32_offset(k)) h = _mm512_sub_epi32(h, corr[p][g]);
                    q32_acc_pair2(k, h, hx, hy[p][g], &acc[p], &accm[p]);
                }
            }
            for (int c = 0; c < ry; c++) {
                const __m512 a = acc[c / 2], m = accm[c / 2];
                __m256 ac = c % 2 ? hi256(a) : lo256(a), mc = c % 2 ? hi256(m) : lo256(m);
                q32_tail(k, 4 * ng, nb, xr, yr[c], &ac, &mc);
                s[(j + c) * bs + i] = q32_result(k, ac, mc);
            }
        }
    }
}

/* Batches through pair-groups (prefill, verify steps).  The unit is 8
 * blocks, two groups of 4, and four vpdpbusd accumulate straight into one
 * register whose 16 int32 lanes are the two groups' split sums in the
 * order above ([g0: b0' b0'' b1' b1'' b2' b2'' b3' b3'' | g1: the same]),
 * with no reduction after the dots: the codes and the activations are laid
 * out so that lane l of instruction r holds 4 elements of lane l's half,
 *   r = 0: elements 0-3 (') and 8-11 (''), r = 1: 4-7 and 12-15,
 *   r = 2: 16-19 and 24-27,               r = 3: 20-23 and 28-31,
 * 128-bit chunk c holding blocks 2c and 2c+1.  The weight codes are
 * arranged once per weight row and pair-group (a vpshufd and an unpack put
 * the dwords in place; Q5's fifth bits become one byte mask per
 * instruction by pext), the activations once per call.  The float steps are
 * the AVX2 level's, group by group: moveldup(hx * hy) is computed as
 * moveldup(hx) * moveldup(hy), the same products. */
enum { PG_MAX_N = 8192, PG_TILE_Y = 8 }; /* the tile's activations (<= 112 KiB) live on the stack */

typedef struct {
    __m512i y[4];    /* activations of instruction r */
    __m512i negcorr; /* -(offset * split sums of the activations) */
    __m512 mhy;      /* moveldup of the two groups' header pairs */
    __m512 hy;       /* the header pairs (formats with a min) */
} q32_ypg;

/* Activation rows [0, ry) of a tile, pair-groups [0, npg); the last one
 * holds only its first group when `half`. */
static ALWAYS_INLINE void pg_yfill(enum q32_kind k, int64_t npg, bool half, const uint8_t *y, size_t by, int ry,
                                   q32_ypg *tile) {
    static const int dw[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
    const size_t ys = q32_y_size(k);
    for (int c = 0; c < ry; c++)
        for (int64_t p = 0; p < npg; p++) {
            q32_ypg *t = &tile[c * npg + p];
            const uint8_t *yg = y + c * by + 8 * p * ys;
            const int nblk = half && p == npg - 1 ? 4 : 8;
            uint32_t w[4][16];
            memset(w, 0, sizeof w);
            for (int b = 0; b < nblk; b++) {
                const uint8_t *q = (const uint8_t *)q32_y_qs(k, yg + b * ys);
                for (int r = 0; r < 4; r++)
                    for (int h = 0; h < 2; h++) memcpy(&w[r][2 * b + h], q + 4 * dw[r][h], 4);
            }
            __m512i corr = _mm512_setzero_si512();
            const __m512i o = _mm512_set1_epi8((char)q32_offset(k));
            for (int r = 0; r < 4; r++) {
                t->y[r] = _mm512_loadu_si512(w[r]);
                if (q32_offset(k)) corr = _mm512_dpbusd_epi32(corr, o, t->y[r]);
            }
            t->negcorr = _mm512_sub_epi32(_mm512_setzero_si512(), corr);
            const __m256 h1 = nblk == 8 ? half_pairs4(yg + 4 * ys, ys) : _mm256_setzero_ps();
            t->hy = _mm512_insertf32x8(_mm512_castps256_ps512(half_pairs4(yg, ys)), h1, 1);
            t->mhy = _mm512_moveldup_ps(t->hy);
        }
}

/* Codes of a nibble format's 8 blocks (4 when half) as the 4 instructions
 * take them. */
static ALWAYS_INLINE void pg_xcodes(enum q32_kind k, const uint8_t *xg, bool half, __m512i X[4]) {
    const size_t xs = q32_x_size(k);
    if (k == Q32_Q8_0) {
        /* P: blocks (0,2), (1,3), (4,6), (5,7), 32 code bytes each */
        __m512i P[4];
        for (int i = 0; i < 4; i++) {
            if (half && i >= 2) {
                P[i] = _mm512_setzero_si512();
                continue;
            }
            const int b = (i >> 1) * 4 + (i & 1);
            P[i] = _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(((const block_q8_0 *)(xg + b * xs))->qs)),
                                      loadu256(((const block_q8_0 *)(xg + (b + 2) * xs))->qs), 1);
        }
        const __m512i al = _mm512_shuffle_epi32(_mm512_shuffle_i64x2(P[0], P[2], _MM_SHUFFLE(2, 0, 2, 0)), 0xd8);
        const __m512i ah = _mm512_shuffle_epi32(_mm512_shuffle_i64x2(P[0], P[2], _MM_SHUFFLE(3, 1, 3, 1)), 0xd8);
        const __m512i bl = _mm512_shuffle_epi32(_mm512_shuffle_i64x2(P[1], P[3], _MM_SHUFFLE(2, 0, 2, 0)), 0xd8);
        const __m512i bh = _mm512_shuffle_epi32(_mm512_shuffle_i64x2(P[1], P[3], _MM_SHUFFLE(3, 1, 3, 1)), 0xd8);
        const __m512i s = _mm512_set1_epi8((char)0x80);
        X[0] = _mm512_xor_si512(_mm512_unpacklo_epi64(al, bl), s);
        X[1] = _mm512_xor_si512(_mm512_unpackhi_epi64(al, bl), s);
        X[2] = _mm512_xor_si512(_mm512_unpacklo_epi64(ah, bh), s);
        X[3] = _mm512_xor_si512(_mm512_unpackhi_epi64(ah, bh), s);
        return;
    }
    /* A: blocks 0, 2, 4, 6 in the four chunks, B: 1, 3, 5, 7 */
    __m512i A = _mm512_castsi128_si512(loadu128(q32_nibbles(k, xg)));
    __m512i B = _mm512_castsi128_si512(loadu128(q32_nibbles(k, xg + xs)));
    A = _mm512_inserti32x4(A, loadu128(q32_nibbles(k, xg + 2 * xs)), 1);
    B = _mm512_inserti32x4(B, loadu128(q32_nibbles(k, xg + 3 * xs)), 1);
    if (!half) {
        A = _mm512_inserti32x4(A, loadu128(q32_nibbles(k, xg + 4 * xs)), 2);
        B = _mm512_inserti32x4(B, loadu128(q32_nibbles(k, xg + 5 * xs)), 2);
        A = _mm512_inserti32x4(A, loadu128(q32_nibbles(k, xg + 6 * xs)), 3);
        B = _mm512_inserti32x4(B, loadu128(q32_nibbles(k, xg + 7 * xs)), 3);
    } else {
        A = _mm512_zextsi256_si512(_mm512_castsi512_si256(A));
        B = _mm512_zextsi256_si512(_mm512_castsi512_si256(B));
    }
    A = _mm512_shuffle_epi32(A, 0xd8); /* dwords [0 2 1 3] */
    B = _mm512_shuffle_epi32(B, 0xd8);
    const __m512i lo = _mm512_unpacklo_epi64(A, B), hi = _mm512_unpackhi_epi64(A, B);
    const __m512i m = _mm512_set1_epi8(15);
    X[0] = _mm512_and_si512(lo, m);
    X[1] = _mm512_and_si512(hi, m);
    X[2] = _mm512_and_si512(_mm512_srli_epi16(lo, 4), m);
    X[3] = _mm512_and_si512(_mm512_srli_epi16(hi, 4), m);
    if (k == Q32_Q5_0 || k == Q32_Q5_1) {
        /* byte k of qword q of instruction r: element e_r(k) of block q */
        static const uint64_t sel[4] = {0x00000f0f00000f0full, 0x0000f0f00000f0f0ull, 0x0f0f00000f0f0000ull,
                                        0xf0f00000f0f00000ull};
        uint64_t qh2[4];
        for (int i = 0; i < 4; i++)
            qh2[i] = half && i >= 2 ? 0 : (uint64_t)q32_qh(k, xg + 2 * i * xs) | (uint64_t)q32_qh(k, xg + (2 * i + 1) * xs) << 32;
        const __m512i sixteen = _mm512_set1_epi8(16);
        for (int r = 0; r < 4; r++) {
            uint64_t mk = 0;
            for (int i = 0; i < 4; i++) mk |= (uint64_t)_pext_u64(qh2[i], sel[r]) << (16 * i);
            X[r] = _mm512_mask_add_epi8(X[r], (__mmask64)mk, X[r], sixteen);
        }
    }
}

/* One weight row against RY activation rows of the filled tile. */
static ALWAYS_INLINE void pg_tile(enum q32_kind k, const int RY, int64_t nb, const uint8_t *xr, const uint8_t *y,
                                  size_t by, const q32_ypg *tile, float *s, size_t bs) {
    const size_t xs = q32_x_size(k);
    const int64_t ng = nb / 4, npg = (ng + 1) / 2;
    __m256 acc[PG_TILE_Y], accm[PG_TILE_Y];
#pragma GCC unroll 8
    for (int c = 0; c < RY; c++) acc[c] = accm[c] = _mm256_setzero_ps();
    for (int64_t p = 0; p < npg; p++) {
        const bool half = 2 * p + 1 == ng;
        const uint8_t *xg = xr + 8 * p * xs;
        __m512i X[4];
        pg_xcodes(k, xg, half, X);
        const __m256 hx1 = half ? _mm256_setzero_ps() : half_pairs4(xg + 4 * xs, xs);
        const __m512 hx = _mm512_insertf32x8(_mm512_castps256_ps512(half_pairs4(xg, xs)), hx1, 1);
        const __m512 mhx = _mm512_moveldup_ps(hx);
#pragma GCC unroll 8
        for (int c = 0; c < RY; c++) {
            const q32_ypg *t = &tile[c * npg + p];
            __m512i h = q32_offset(k) ? t->negcorr : _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) h = _mm512_dpbusd_epi32(h, X[r], t->y[r]);
            const __m512 f = _mm512_cvtepi32_ps(h), sc = _mm512_mul_ps(mhx, t->mhy);
            acc[c] = _mm256_fmadd_ps(lo256(sc), lo256(f), acc[c]);
            if (q32_has_min(k)) accm[c] = _mm256_fmadd_ps(lo256(hx), lo256(t->hy), accm[c]);
            if (!half) {
                acc[c] = _mm256_fmadd_ps(hi256(sc), hi256(f), acc[c]);
                if (q32_has_min(k)) accm[c] = _mm256_fmadd_ps(hi256(hx), hi256(t->hy), accm[c]);
            }
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < RY; c++) {
        q32_tail(k, 4 * ng, nb, xr, y + c * by, &acc[c], &accm[c]);
        s[c * bs] = q32_result(k, acc[c], accm[c]);
    }
}

static ALWAYS_INLINE void pg_rows(enum q32_kind k, int64_t nb, int64_t nrx, int64_t nry, const uint8_t *x, size_t bx,
                                  const uint8_t *y, size_t by, float *s, size_t bs) {
    const int64_t ng = nb / 4, npg = (ng + 1) / 2;
    q32_ypg tile[PG_TILE_Y * (npg > 0 ? npg : 1)];
    for (int64_t j = 0; j < nry; j += PG_TILE_Y) {
        const int ry = nry - j < PG_TILE_Y ? (int)(nry - j) : PG_TILE_Y;
        const uint8_t *yt = y + j * by;
        pg_yfill(k, npg, ng % 2, yt, by, ry, tile);
        for (int64_t i = 0; i < nrx; i++) {
            const uint8_t *xr = x + i * bx;
            float *st = s + j * bs + i;
            switch (ry) {
            case 8: pg_tile(k, 8, nb, xr, yt, by, tile, st, bs); break;
            case 7: pg_tile(k, 7, nb, xr, yt, by, tile, st, bs); break;
            case 6: pg_tile(k, 6, nb, xr, yt, by, tile, st, bs); break;
            case 5: pg_tile(k, 5, nb, xr, yt, by, tile, st, bs); break;
            case 4: pg_tile(k, 4, nb, xr, yt, by, tile, st, bs); break;
            case 3: pg_tile(k, 3, nb, xr, yt, by, tile, st, bs); break;
            case 2: pg_tile(k, 2, nb, xr, yt, by, tile, st, bs); break;
            default: pg_tile(k, 1, nb, xr, yt, by, tile, st, bs); break;
            }
        }
    }
}

static ALWAYS_INLINE void q32_rows(enum q32_kind k, int64_t n, int64_t nrx, int64_t nry, const void *xv, size_t bx,
                                   const void *yv, size_t by, float *s, size_t bs) {
    const uint8_t *x = xv, *y = yv;
    const int64_t nb = n / QK;
    if (n <= PG_MAX_N) {
        pg_rows(k, nb, nrx, nry, x, bx, y, by, s, bs);
        return;
    }
    if (nb / 4 > Q32_MAX_GROUPS) {
        for (int64_t j = 0; j < nry; j++)
            for (int64_t i = 0; i < nrx; i++) s[j * bs + i] = q32_vec_dot(k, n, x + i * bx, y + j * by);
        return;
    }
    q32_rows_tiled(k, nb, nrx, nry, x, bx, y, by, s, bs);
}

#define Q32_DOT(SUFFIX, KIND)                                                                          \
    static void vec_dot_##SUFFIX(int64_t n, float *s, const void *x, const void *y) {                  \
        *s = q32_vec_dot(KIND, n, x, y);                                                               \
    }
#define Q32_FNS(SUFFIX, KIND)                                                                          \
    Q32_DOT(SUFFIX, KIND)                                                                              \
    static kernel_vec_dot_rows_fn rows1_##SUFFIX;                                                      \
    static void rows_##SUFFIX(int64_t n, int64_t nrx, int64_t nry, const void *x, size_t bx, const void *y, \
                              size_t by, float *s, size_t bs) {                                        \
        if (nry == 1) rows1_##SUFFIX(n, nrx, 1, x, bx, y, by, s, bs);                                  \
        else q32_rows(KIND, n, nrx, nry, x, bx, y, by, s, bs);                                         \
    }
Q32_FNS(q4_0, Q32_Q4_0)
Q32_FNS(q4_1, Q32_Q4_1)
Q32_FNS(q5_0, Q32_Q5_0)
Q32_FNS(q5_1, Q32_Q5_1)
Q32_FNS(q8_0, Q32_Q8_0)

/* ------------------------------------------------------------ K-quants
 *
 * The AVX2 level's per super-block integer vector sumi has lane j = the sum
 * over the sub-blocks of scale x (the sub-block's elements 4j..4j+3 dotted
 * with the activations), plus (Q6_K) -32 x the scaled bsums pair j.  Here a
 * super-block is 4 vectors of 64 codes (two sub-blocks or quarters each) with
 * their 16 lanes' scales; vpdpbusd gives the 4-element sums, vpmaddwd with
 * [scale, 0] int16 pairs scales them (the sums fit in int16), and the two
 * halves are added at the end: the same integers, lane for lane.  The float
 * steps are the AVX2 level's. */

enum kq_kind { KQ_Q4_K, KQ_Q5_K, KQ_Q6_K };

typedef struct kq_block {
    __m512i z[4];  /* codes, 64 a vector; vector v meets activation bytes 64v..64v+63 */
    __m512i sc[4]; /* their scales, int32 lanes [scale, 0] as int16 pairs */
    __m256i mins;  /* Q4_K/Q5_K: the mins as int16 pairs (k_scales_mins) */
    float d, dmin;
} kq_block;

/* The 8 6-bit scales (into sc) and mins of a Q4_K/Q5_K super-block; the
 * mins as int16 pairs [m0 m0 m1 m1 ... m7 m7] (the AVX2 level's layout). */
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

/* Lanes of s16 (16 int32 scales) picked by idx, as [scale, 0] int16 pairs. */
static inline __m512i kq_pick(__m512i s16, __m512i idx) {
    return _mm512_and_si512(_mm512_permutexvar_epi32(idx, s16), _mm512_set1_epi32(0xffff));
}

/* [v v v v v v v v w w w w w w w w] */
static inline __m512i idx_8x2(int v, int w) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(v)), _mm256_set1_epi32(w), 1);
}

/* 64-bit shift counts [v x4 | w x4] */
static inline __m512i shifts_4x2(int v, int w) {
    return _mm512_inserti64x4(_mm512_set1_epi64(v), _mm256_set1_epi64x(w), 1);
}

static ALWAYS_INLINE void kq_prepare(enum kq_kind k, const uint8_t *xb, kq_block *b) {
    const __m512i low4 = _mm512_set1_epi8(15);
    if (k == KQ_Q6_K) {
        const block_q6_K *x = (const block_q6_K *)xb;
        const __m512i s32 = _mm512_cvtepi8_epi32(loadu128(x->scales));
        const __m512i m3 = _mm512_set1_epi8(3);
        for (int h = 0; h < 2; h++) {
            const __m512i l = loadu512(x->ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(loadu256(x->qh + 32 * h));
            /* quarters 0|1: low nibbles, qh bits 0-1|2-3; quarters 2|3: high nibbles, bits 4-5|6-7 */
            const __m512i h01 = _mm512_srlv_epi64(qh, shifts_4x2(0, 2)), h23 = _mm512_srlv_epi64(qh, shifts_4x2(4, 6));
            b->z[2 * h] = _mm512_or_si512(_mm512_and_si512(l, low4), _mm512_slli_epi16(_mm512_and_si512(h01, m3), 4));
            b->z[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
                                              _mm512_slli_epi16(_mm512_and_si512(h23, m3), 4));
            /* vector 2h + q holds quarters 2q, 2q+1 of half h: scales 8h+4q .. 8h+4q+3, 4 lanes each */
            for (int q = 0; q < 2; q++) {
                const int s0 = 8 * h + 4 * q;
                const __m512i idx = _mm512_setr_epi32(s0, s0, s0, s0, s0 + 1, s0 + 1, s0 + 1, s0 + 1, s0 + 2, s0 + 2,
                                                      s0 + 2, s0 + 2, s0 + 3, s0 + 3, s0 + 3, s0 + 3);
                b->sc[2 * h + q] = kq_pick(s32, idx);
            }
        }
        b->d = FP16(x->d);
        b->dmin = 0;
        return;
    }
    const uint8_t *qs, *scales;
    uint16_t d, dmin;
    if (k == KQ_Q4_K) {
        const block_q4_K *x = (const block_q4_K *)xb;
        qs = x->qs, scales = x->scales, d = x->d, dmin = x->dmin;
    } else {
        const block_q5_K *x = (const block_q5_K *)xb;
        qs = x->qs, scales = x->scales, d = x->d, dmin = x->dmin;
    }
    uint8_t sc[8];
    b->mins = k_scales_mins(scales, sc);
    const __m512i s32 = _mm512_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sc));
    const __m512i qh = k == KQ_Q5_K ? _mm512_broadcast_i64x4(loadu256(((const block_q5_K *)xb)->qh)) : _mm512_setzero_si512();
    for (int c = 0; c < 4; c++) {
        /* sub-block 2c: the low nibbles of qs[32c..], 2c+1: the high ones */
        __m512i v = _mm512_broadcast_i64x4(loadu256(qs + 32 * c));
        v = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xffff0000u, v, 4), low4);
        if (k == KQ_Q5_K) {
            /* bit 2c of qh[l] -> 16 for element 64c+l, bit 2c+1 for 64c+32+l */
            const __m512i hb = _mm512_srlv_epi64(qh, shifts_4x2(2 * c, 2 * c + 1));
            v = _mm512_or_si512(v, _mm512_and_si512(_mm512_slli_epi16(hb, 4), _mm512_set1_epi8(16)));
        }
        b->z[c] = v;
        b->sc[c] = kq_pick(s32, idx_8x2(2 * c, 2 * c + 1));
    }
    b->d = FP16(d);
    b->dmin = FP16(dmin);
}

/* sumi of a prepared weight super-block with an activation block. */
static ALWAYS_INLINE __m256i kq_sumi(const kq_block *b, const block_q8_K *y) {
    __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
        const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), b->z[v], loadu512(y->qs + 64 * v));
        s = _mm512_add_epi32(s, _mm512_madd_epi16(d, b->sc[v]));
    }
    return _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
}

/* Q6_K's -32 x sum over pairs of bsums x scales (the AVX2 level's
 * mullo form). */
static inline __m256i q6k_init(const block_q6_K *x, const block_q8_K *y) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(loadu128(x->scales));
    return _mm256_mullo_epi32(_mm256_madd_epi16(loadu256(y->bsums), sc16), _mm256_set1_epi32(-32));
}

static ALWAYS_INLINE size_t kq_x_size(enum kq_kind k) {
    return k == KQ_Q4_K ? sizeof(block_q4_K) : k == KQ_Q5_K ? sizeof(block_q5_K) : sizeof(block_q6_K);
}

/* One pair's super-block step (the AVX2 level's float operations). */
static ALWAYS_INLINE void kq_step(enum kq_kind k, const kq_block *b, const uint8_t *xb, const block_q8_K *y,
                                  __m256 *acc, float *accm) {
    __m256i sumi = kq_sumi(b, y);
    if (k == KQ_Q6_K) {
        sumi = _mm256_add_epi32(sumi, q6k_init((const block_q6_K *)xb, y));
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(y->d * b->d), _mm256_cvtepi32_ps(sumi), *acc);
        return;
    }
    int summ = hsum_epi32(_mm256_madd_epi16(loadu256(y->bsums), b->mins));
    float dy = y->d;
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * b->d), _mm256_cvtepi32_ps(sumi), *acc);
    *accm += dy * b->dmin * (float)summ;
}

static ALWAYS_INLINE float kq_result(enum kq_kind k, __m256 acc, float accm) {
    return k == KQ_Q6_K ? hsum_ps(acc) : hsum_ps(acc) - accm;
}

static ALWAYS_INLINE float kq_vec_dot(enum kq_kind k, int64_t n, const uint8_t *x, const block_q8_K *y) {
    const size_t xs = kq_x_size(k);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        kq_block b;
        kq_prepare(k, x + ib * xs, &b);
        kq_step(k, &b, x + ib * xs, y + ib, &acc, &accm);
    }
    return kq_result(k, acc, accm);
}

/* Tiles of one weight row x up to 4 activation rows: a super-block is
 * unpacked once for the tile. */
static ALWAYS_INLINE void kq_rows(enum kq_kind k, int64_t n, int64_t nrx, int64_t nry, const void *xv, size_t bx,
                                  const void *yv, size_t by, float *s, size_t bs) {
    const uint8_t *x = xv, *y = yv;
    const size_t xs = kq_x_size(k);
    const int64_t nb = n / QK_K;
    for (int64_t j = 0; j < nry; j += 4) {
        const int ry = nry - j < 4 ? (int)(nry - j) : 4;
        for (int64_t i = 0; i < nrx; i++) {
            const uint8_t *xr = x + i * bx;
            __m256 acc[4];
            float accm[4] = {0, 0, 0, 0};
            for (int c = 0; c < 4; c++) acc[c] = _mm256_setzero_ps();
            for (int64_t ib = 0; ib < nb; ib++) {
                kq_block b;
                kq_prepare(k, xr + ib * xs, &b);
                for (int c = 0; c < ry; c++)
                    kq_step(k, &b, xr + ib * xs, (const block_q8_K *)(y + (j + c) * by) + ib, &acc[c], &accm[c]);
            }
            for (int c = 0; c < ry; c++) s[(j + c) * bs + i] = kq_result(k, acc[c], accm[c]);
        }
    }
}

#define KQ_FNS(SUFFIX, KIND)                                                                           \
    static void vec_dot_##SUFFIX(int64_t n, float *s, const void *x, const void *y) {                  \
        *s = kq_vec_dot(KIND, n, x, y);                                                                \
    }                                                                                                  \
    static kernel_vec_dot_rows_fn rows1_##SUFFIX;                                                      \
    static void rows_##SUFFIX(int64_t n, int64_t nrx, int64_t nry, const void *x, size_t bx, const void *y, \
                              size_t by, float *s, size_t bs) {                                        \
        if (nry == 1) rows1_##SUFFIX(n, nrx, 1, x, bx, y, by, s, bs);                                  \
        else kq_rows(KIND, n, nrx, nry, x, bx, y, by, s, bs);                                          \
    }
KQ_FNS(q4_K, KQ_Q4_K)
KQ_FNS(q5_K, KQ_Q5_K)
KQ_FNS(q6_K, KQ_Q6_K)

/* ------------------------------------------------------------ fill */

KERNEL_ROWS_FROM_DOT(rows_f32, vec_dot_f32)
KERNEL_ROWS_FROM_DOT(rows_f16, vec_dot_f16)
KERNEL_ROWS_FROM_DOT(rows_bf16, vec_dot_bf16)

void AVX512_FILL(kernel_level *lv) {
    kernel_traits *tab = lv->traits;
#define SET(T, SUFFIX)                                                                                 \
    tab[RYOT_TYPE_##T].vec_dot = vec_dot_##SUFFIX;                                                     \
    tab[RYOT_TYPE_##T].vec_dot_rows = rows_##SUFFIX
    SET(F32, f32);
    SET(F16, f16);
    SET(BF16, bf16);
#undef SET
    /* Quantized weights.  Measured on an AMD Zen 4 (2 cores, DRAM-bound
     * decode of SmolLM2-135M): the 512-bit decode loop (two weight rows per
     * register) streamed weights from DRAM at a third to two thirds of the
     * AVX2 loop's rate although it is faster on rows in cache, so one
     * activation row (decode) keeps the AVX2 kernel (its results are these
     * kernels' bits anyway) and only batches (prefill, verify steps) use
     * the 512-bit tiles.  Q4_1 and Q5_1 keep the AVX2 tiles too: their
     * 512-bit tiles measured slower (docs/PERFORMANCE.md). */
#define SETQ(T, SUFFIX)                                                                                \
    tab[RYOT_TYPE_##T].vec_dot = vec_dot_##SUFFIX;                                                     \
    rows1_##SUFFIX = tab[RYOT_TYPE_##T].vec_dot_rows;                                                  \
    tab[RYOT_TYPE_##T].vec_dot_rows = rows_##SUFFIX
    SETQ(Q4_0, q4_0);
    SETQ(Q4_1, q4_1);
    SETQ(Q5_1, q5_1);
    SETQ(Q5_0, q5_0);
    SETQ(Q8_0, q8_0);
    SETQ(Q4_K, q4_K);
    SETQ(Q5_K, q5_K);
    SETQ(Q6_K, q6_K);
#undef SETQ
    AVX512_OPS_FILL(&lv->ops);
}
