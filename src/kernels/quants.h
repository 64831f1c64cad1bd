/* Quantized block layouts (ggml's formats, as stored in GGUF files).
 *
 * Every field is little-endian; d, m, dmin and s (except Q8_K's float d) are
 * IEEE binary16 values stored as uint16_t.
 * A row of n elements is n / QK blocks laid end to end.  Blocks are packed
 * (no padding) and may sit at any 2-byte aligned address inside a file, so
 * kernels load them with unaligned loads.
 *
 * 32-element blocks (QK = 32), element i of the block, 0 <= i < 32:
 *   Q4_0  d | qs[16]          q = i < 16 ? qs[i] & 15 : qs[i-16] >> 4;   x = (q - 8) * d
 *   Q4_1  d m | qs[16]        q as Q4_0;                                  x = q * d + m
 *   Q5_0  d | qh[4] | qs[16]  q = (nibble as Q4_0) | bit i of qh (as a
 *                             little-endian u32) << 4;                    x = (q - 16) * d
 *   Q5_1  d m | qh[4] | qs[16]  q as Q5_0;                                x = q * d + m
 *   Q8_0  d | qs[32] (int8)                                                x = qs[i] * d
 *   Q8_1  d s | qs[32]        as Q8_0, s = d * sum(qs) (an activation type:
 *                             the sum carries the weights' min term)
 *
 * 256-element super-blocks (QK_K = 256):
 *   Q4_K  d dmin | scales[12] | qs[128]
 *         8 sub-blocks of 32, each with a 6-bit scale sc[j] and 6-bit min
 *         m[j] packed in scales[12] (see q4k_scale_min):
 *           j < 4:  sc = s[j] & 63,                 m = s[j+4] & 63
 *           j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4,
 *                   m  = (s[j+4] >> 4) | (s[j]   >> 6) << 4
 *         64-element chunk c (0..3) uses qs[32c .. 32c+31]: the low nibbles
 *         are elements 64c+0..31 (sub-block 2c), the high nibbles elements
 *         64c+32..63 (sub-block 2c+1).   x = d*sc[j]*q - dmin*m[j]
 *   Q5_K  d dmin | scales[12] | qh[32] | qs[128]
 *         as Q4_K plus a fifth bit: element 64c+l (l < 32) takes bit 2c of
 *         qh[l], element 64c+32+l takes bit 2c+1 of qh[l].
 *   Q6_K  ql[128] | qh[64] | scales[16] (int8) | d
 *         16 sub-blocks of 16.  Half h (0..1) covers elements 128h..128h+127
 *         and uses ql[64h..64h+63], qh[32h..32h+31]; for l < 32 (e = 128h):
 *           e+l    : ql[64h+l]    & 15 | (qh[32h+l] >> 0 & 3) << 4
 *           e+l+32 : ql[64h+l+32] & 15 | (qh[32h+l] >> 2 & 3) << 4
 *           e+l+64 : ql[64h+l]    >> 4 | (qh[32h+l] >> 4 & 3) << 4
 *           e+l+96 : ql[64h+l+32] >> 4 | (qh[32h+l] >> 6 & 3) << 4
 *         element e has sub-block e / 16.          x = d*scales[e/16]*(q - 32)
 *   Q8_K  d (float) | qs[256] (int8) | bsums[16] (int16, sum of each 16 qs)
 *         x = d * qs[i]   (activation type of the K-quants)
 */
#ifndef RYOT_KERNELS_QUANTS_H
#define RYOT_KERNELS_QUANTS_H

#include <stdint.h>

#define QK 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct {
    uint16_t d;
    uint8_t qs[QK / 2];
} block_q4_0;
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QK / 2];
} block_q4_1;
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");

typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
} block_q5_0;
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");

typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
} block_q5_1;
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");

typedef struct {
    uint16_t d;
    int8_t qs[QK];
} block_q8_0;
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

typedef struct {
    uint16_t d;
    uint16_t s;
    int8_t qs[QK];
} block_q8_1;
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
} block_q4_K;
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} block_q6_K;
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block. */
static inline void q4k_scale_min(const uint8_t *s, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

#endif
