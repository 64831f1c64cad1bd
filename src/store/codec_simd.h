/* The KV codec's dequantizers per instruction set: the scalar loops in
 * codec.c are the reference; kernels/x86/avx2_store.c has the AVX2 + F16C
 * twins (bit-identical: one float multiply, then round-to-nearest-even to
 * F16), chosen once per codec context by CPU detection. */
#ifndef RYOT_STORE_CODEC_SIMD_H
#define RYOT_STORE_CODEC_SIMD_H

#include <stdint.h>

/* out[i] = F16(q[i] * d), i < n */
typedef void (*store_dequant8_fn)(const int8_t *q, float d, uint16_t *out, int n);
/* out[2j] = F16(((q[j] & 15) - 8) * d), out[2j+1] = F16(((q[j] >> 4) - 8) * d), 2j < n (n even) */
typedef void (*store_dequant4_fn)(const uint8_t *q, float d, uint16_t *out, int n);

/* 6-bit K (codec.h's layout: n/2 bytes of low nibbles, n/4 of top bit
 * pairs), one row: out[i] = F16((code[i] - 32) * d[i]), a scale per channel */
typedef void (*store_dequant6_fn)(const uint8_t *q, const float *d, uint16_t *out, int n);
/* Quantizes one row of n F16 values to 8- or 4-bit codes; returns the F16 scale. */
typedef uint16_t (*store_quant_fn)(const uint16_t *x, int n, uint8_t *codes);

/* AVX2 + F16C: the 8- and 4-bit dequantizers take any even n (8-bit: any
 * n); the quantizers and store_dequant6c_avx2 need n % 64 == 0 */
void store_dequant6c_avx2(const uint8_t *q, const float *d, uint16_t *out, int n);
uint16_t store_quant8_avx2(const uint16_t *x, int n, uint8_t *codes);
uint16_t store_quant4_avx2(const uint16_t *x, int n, uint8_t *codes);
/* a tile of rows x n: per-channel scales dh[0..n), then each row's 6-bit codes */
void store_quant6c_avx2(const uint16_t *x, int rows, int n, uint16_t *dh, uint8_t *codes);
void store_dequant8_avx2(const int8_t *q, float d, uint16_t *out, int n);
void store_dequant4_avx2(const uint8_t *q, float d, uint16_t *out, int n);

#endif
