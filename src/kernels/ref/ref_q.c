/* Scalar reference for the 32-element block types (layouts in quants.h).
 * Quantization is round to nearest with the block scale from the extreme
 * value; vec_dot sums each block in integers, then in float across blocks. */
#include <math.h>

#include "kernels/kernels_impl.h"

#define FP16(h) ryot_fp16_to_fp32(h)

static inline int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* The element with the largest magnitude, with its sign. */
static float signed_absmax(const float *x, int n) {
    float amax = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            mx = x[i];
        }
    }
    return mx;
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    *mn = x[0];
    *mx = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < *mn) *mn = x[i];
        if (x[i] > *mx) *mx = x[i];
    }
}

/* 4- or 5-bit code of element i (0..31) of a block. */
static inline int nibble(const uint8_t *qs, int i) {
    return i < QK / 2 ? qs[i] & 15 : qs[i - QK / 2] >> 4;
}

static inline int q5_code(const uint8_t *qs, const uint8_t *qh, int i) {
    uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    return nibble(qs, i) | (int)((h >> i) & 1) << 4;
}

static void pack_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int i = 0; i < QK / 2; i++) qs[i] = (uint8_t)(q[i] | q[i + QK / 2] << 4);
}

static void pack_q5(const uint8_t *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int i = 0; i < QK; i++) h |= (uint32_t)(q[i] >> 4) << i;
    for (int i = 0; i < QK / 2; i++) qs[i] = (uint8_t)((q[i] & 15) | (q[i + QK / 2] & 15) << 4);
    for (int i = 0; i < 4; i++) qh[i] = (uint8_t)(h >> (8 * i));
}

/* ------------------------------------------------------------ Q4_0 */

void ref_q4_0_to_float(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        float d = FP16(b[ib].d);
        for (int i = 0; i < QK; i++) dst[ib * QK + i] = (float)(nibble(b[ib].qs, i) - 8) * d;
    }
}

/* The extreme value maps to code 0 (-8 * d), using the full range on its side. */
void ref_q4_0_from_float(const float *src, void *dst, int64_t n) {
    block_q4_0 *b = dst;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        const float *x = src + ib * QK;
        float d = signed_absmax(x, QK) / -8.0f, id = d != 0 ? 1.0f / d : 0;
        uint8_t q[QK];
        for (int i = 0; i < QK; i++) q[i] = (uint8_t)clampi(ref_nearest_int(x[i] * id) + 8, 0, 15);
        b[ib].d = ryot_fp32_to_fp16(d);
        pack_nibbles(q, b[ib].qs);
    }
}

void ref_vec_dot_q4_0(int64_t n, float *s, const void *x, const void *y) {
    const block_q4_0 *a = x;
    const block_q8_0 *b = y;
    float sum = 0;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        int isum = 0;
        for (int i = 0; i < QK; i++) isum += (nibble(a[ib].qs, i) - 8) * b[ib].qs[i];
        sum += FP16(a[ib].d) * FP16(b[ib].d) * (float)isum;
    }
    *s = sum;
}

/* ------------------------------------------------------------ Q4_1 */

void ref_q4_1_to_float(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        float d = FP16(b[ib].d), m = FP16(b[ib].m);
        for (int i = 0; i < QK; i++) dst[ib * QK + i] = (float)nibble(b[ib].qs, i) * d + m;
    }
}

void ref_q4_1_from_float(const float *src, void *dst, int64_t n) {
    block_q4_1 *b = dst;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        const float *x = src + ib * QK;
        float mn, mx;
        minmax(x, QK, &mn, &mx);
        float d = (mx - mn) / 15.0f, id = d != 0 ? 1.0f / d : 0;
        uint8_t q[QK];
        for (int i = 0; i < QK; i++) q[i] = (uint8_t)clampi(ref_nearest_int((x[i] - mn) * id), 0, 15);
        b[ib].d = ryot_fp32_to_fp16(d);
        b[ib].m = ryot_fp32_to_fp16(mn);
        pack_nibbles(q, b[ib].qs);
    }
}

/* sum_i (q_i d + m) y_i d_y = d d_y sum(q y) + m * (d_y sum(y)) = ... + m * s_y */
void ref_vec_dot_q4_1(int64_t n, float *s, const void *x, const void *y) {
    const block_q4_1 *a = x;
    const block_q8_1 *b = y;
    float sum = 0;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        int isum = 0;
        for (int i = 0; i < QK; i++) isum += nibble(a[ib].qs, i) * b[ib].qs[i];
        sum += FP16(a[ib].d) * FP16(b[ib].d) * (float)isum + FP16(a[ib].m) * FP16(b[ib].s);
    }
    *s = sum;
}

/* ------------------------------------------------------------ Q5_0 */

void ref_q5_0_to_float(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        float d = FP16(b[ib].d);
        for (int i = 0; i < QK; i++) dst[ib * QK + i] = (float)(q5_code(b[ib].qs, b[ib].qh, i) - 16) * d;
    }
}

void ref_q5_0_from_float(const float *src, void *dst, int64_t n) {
    block_q5_0 *b = dst;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        const float *x = src + ib * QK;
        float d = signed_absmax(x, QK) / -16.0f, id = d != 0 ? 1.0f / d : 0;
        uint8_t q[QK];
        for (int i = 0; i < QK; i++) q[i] = (uint8_t)clampi(ref_nearest_int(x[i] * id) + 16, 0, 31);
        b[ib].d = ryot_fp32_to_fp16(d);
        pack_q5(q, b[ib].qs, b[ib].qh);
    }
}

void ref_vec_dot_q5_0(int64_t n, float *s, const void *x, const void *y) {
    const block_q5_0 *a = x;
    const block_q8_0 *b = y;
    float sum = 0;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        int isum = 0;
        for (int i = 0; i < QK; i++) isum += (q5_code(a[ib].qs, a[ib].qh, i) - 16) * b[ib].qs[i];
        sum += FP16(a[ib].d) * FP16(b[ib].d) * (float)isum;
    }
    *s = sum;
}

/* ------------------------------------------------------------ Q5_1 */

void ref_q5_1_to_float(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        float d = FP16(b[ib].d), m = FP16(b[ib].m);
        for (int i = 0; i < QK; i++) dst[ib * QK + i] = (float)q5_code(b[ib].qs, b[ib].qh, i) * d + m;
    }
}

void ref_q5_1_from_float(const float *src, void *dst, int64_t n) {
    block_q5_1 *b = dst;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        const float *x = src + ib * QK;
        float mn, mx;
        minmax(x, QK, &mn, &mx);
        float d = (mx - mn) / 31.0f, id = d != 0 ? 1.0f / d : 0;
        uint8_t q[QK];
        for (int i = 0; i < QK; i++) q[i] = (uint8_t)clampi(ref_nearest_int((x[i] - mn) * id), 0, 31);
        b[ib].d = ryot_fp32_to_fp16(d);
        b[ib].m = ryot_fp32_to_fp16(mn);
        pack_q5(q, b[ib].qs, b[ib].qh);
    }
}

void ref_vec_dot_q5_1(int64_t n, float *s, const void *x, const void *y) {
    const block_q5_1 *a = x;
    const block_q8_1 *b = y;
    float sum = 0;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        int isum = 0;
        for (int i = 0; i < QK; i++) isum += q5_code(a[ib].qs, a[ib].qh, i) * b[ib].qs[i];
        sum += FP16(a[ib].d) * FP16(b[ib].d) * (float)isum + FP16(a[ib].m) * FP16(b[ib].s);
    }
    *s = sum;
}

/* ------------------------------------------------------------ Q8_0, Q8_1 */

void ref_q8_0_to_float(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        float d = FP16(b[ib].d);
        for (int i = 0; i < QK; i++) dst[ib * QK + i] = (float)b[ib].qs[i] * d;
    }
}

/* Symmetric: d = amax / 127, codes in -127..127, code = x * (127 / amax)
 * rounded to nearest even: llama.cpp's quantize_row_q8_0/q8_1 (its x86
 * versions), whose inverse scale is 127 / amax, not 1 / d (they differ in
 * the last bit, which moves ties).  The fast versions repeat these exact
 * operations, so they match bitwise. */
static float q8_quantize(const float *x, int8_t *q) {
    float amax = 0;
    for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0;
    for (int i = 0; i < QK; i++) q[i] = (int8_t)ref_nearest_int(x[i] * id);
    return d;
}

void ref_q8_0_from_float(const float *src, void *dst, int64_t n) {
    block_q8_0 *b = dst;
    for (int64_t ib = 0; ib < n / QK; ib++) b[ib].d = ryot_fp32_to_fp16(q8_quantize(src + ib * QK, b[ib].qs));
}

void ref_vec_dot_q8_0(int64_t n, float *s, const void *x, const void *y) {
    const block_q8_0 *a = x, *b = y;
    float sum = 0;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        int isum = 0;
        for (int i = 0; i < QK; i++) isum += a[ib].qs[i] * b[ib].qs[i];
        sum += FP16(a[ib].d) * FP16(b[ib].d) * (float)isum;
    }
    *s = sum;
}

void ref_q8_1_to_float(const void *src, float *dst, int64_t n) {
    const block_q8_1 *b = src;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        float d = FP16(b[ib].d);
        for (int i = 0; i < QK; i++) dst[ib * QK + i] = (float)b[ib].qs[i] * d;
    }
}

void ref_q8_1_from_float(const float *src, void *dst, int64_t n) {
    block_q8_1 *b = dst;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        float d = q8_quantize(src + ib * QK, b[ib].qs);
        int sum = 0;
        for (int i = 0; i < QK; i++) sum += b[ib].qs[i];
        b[ib].d = ryot_fp32_to_fp16(d);
        b[ib].s = ryot_fp32_to_fp16(d * (float)sum);
    }
}
