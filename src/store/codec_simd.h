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

void store_dequant8_avx2(const int8_t *q, float d, uint16_t *out, int n);
void store_dequant4_avx2(const uint8_t *q, float d, uint16_t *out, int n);

#endif
