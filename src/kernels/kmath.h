/* Inline float helpers shared by the kernels' ops and the engine: branch
 * free, so loops over them vectorize. */
#ifndef RYOT_KERNELS_KMATH_H
#define RYOT_KERNELS_KMATH_H

#include <stdint.h>

/* exp(x) for x <= 0 (softmax arguments), relative error ~1e-7; inputs below
 * -87 (and -inf) give 0.  Branch-free and inline so loops over it vectorize. */
static inline float kernel_exp_neg(float x) {
    /* exp(x) = 2^k * exp(r), r = x - k ln2 in [-ln2/2, ln2/2]; Taylor to r^7. */
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < -87.0f ? -87.0f : x;
    float kf = (xc * log2e + shifter) - shifter;
    float r = xc - kf * ln2_hi - kf * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { uint32_t u; float f; } two_k = {.u = (uint32_t)((int)kf + 127) << 23};
    float v = p * two_k.f;
    return x < -87.0f ? 0.0f : v;
}

/* x rounded to the nearest F16 value (ties to even), as a float: equals
 * ryot_fp16_to_fp32(ryot_fp32_to_fp16(x)) for |x| < 65520.  Branch free so
 * loops over it vectorize. */
static inline float kernel_round_f16(float x) {
    union { float f; uint32_t u; } v = {.f = x}, a, sub;
    const uint32_t sign = v.u & 0x80000000u;
    a.u = v.u & 0x7fffffffu;
    /* normal F16 range: keep 10 mantissa bits, round half to even */
    const uint32_t rn = (a.u + 0xfffu + ((a.u >> 13) & 1u)) & ~0x1fffu;
    /* below 2^-14 (F16 subnormals, multiples of 2^-24): in [0.5, 1) floats
     * are 2^-24 apart, so the addition itself rounds */
    sub.f = (a.f + 0.5f) - 0.5f;
    v.u = sign | (a.u < 0x38800000u ? sub.u : rn);
    return v.f;
}

#endif
