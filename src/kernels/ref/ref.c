/* Scalar reference: float types and the reference table.  The reference is
 * the definition of right; fast levels are tested against it. */
#include "kernels/kernels_impl.h"

void ref_f32_to_float(const void *src, float *dst, int64_t n) {
    const float *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = x[i];
}

void ref_f32_from_float(const float *src, void *dst, int64_t n) {
    float *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = src[i];
}

/* Float dots accumulate in double: the reference is as exact as is cheap. */
void ref_vec_dot_f32(int64_t n, float *s, const void *x, const void *y) {
    const float *a = x, *b = y;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)a[i] * b[i];
    *s = (float)sum;
}

void ref_f16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = ryot_fp16_to_fp32(x[i]);
}

void ref_f16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = ryot_fp32_to_fp16(src[i]);
}

void ref_vec_dot_f16(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x;
    const float *b = y;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)ryot_fp16_to_fp32(a[i]) * b[i];
    *s = (float)sum;
}

void ref_bf16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = ryot_bf16_to_fp32(x[i]);
}

void ref_bf16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = ryot_fp32_to_bf16(src[i]);
}

void ref_vec_dot_bf16(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x;
    const float *b = y;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)ryot_bf16_to_fp32(a[i]) * b[i];
    *s = (float)sum;
}

KERNEL_ROWS_FROM_DOT(ref_rows_f32, ref_vec_dot_f32)
KERNEL_ROWS_FROM_DOT(ref_rows_f16, ref_vec_dot_f16)
KERNEL_ROWS_FROM_DOT(ref_rows_bf16, ref_vec_dot_bf16)
KERNEL_ROWS_FROM_DOT(ref_rows_q4_0, ref_vec_dot_q4_0)
KERNEL_ROWS_FROM_DOT(ref_rows_q4_1, ref_vec_dot_q4_1)
KERNEL_ROWS_FROM_DOT(ref_rows_q5_0, ref_vec_dot_q5_0)
KERNEL_ROWS_FROM_DOT(ref_rows_q5_1, ref_vec_dot_q5_1)
KERNEL_ROWS_FROM_DOT(ref_rows_q8_0, ref_vec_dot_q8_0)
KERNEL_ROWS_FROM_DOT(ref_rows_q4_K, ref_vec_dot_q4_K)
KERNEL_ROWS_FROM_DOT(ref_rows_q5_K, ref_vec_dot_q5_K)
KERNEL_ROWS_FROM_DOT(ref_rows_q6_K, ref_vec_dot_q6_K)

#define TRAITS(VDT, NAME)                                                                          \
    {.supported = true, .vec_dot_type = VDT, .to_float = ref_##NAME##_to_float,                    \
     .from_float = ref_##NAME##_from_float, .vec_dot = ref_vec_dot_##NAME, .vec_dot_rows = ref_rows_##NAME}

void kernels_ref_fill(kernel_level *lv) {
    static const kernel_traits ref[RYOT_TYPE_COUNT] = {
        [RYOT_TYPE_F32] = TRAITS(RYOT_TYPE_F32, f32),
        [RYOT_TYPE_F16] = TRAITS(RYOT_TYPE_F32, f16),
        [RYOT_TYPE_BF16] = TRAITS(RYOT_TYPE_F32, bf16),
        [RYOT_TYPE_Q4_0] = TRAITS(RYOT_TYPE_Q8_0, q4_0),
        [RYOT_TYPE_Q4_1] = TRAITS(RYOT_TYPE_Q8_1, q4_1),
        [RYOT_TYPE_Q5_0] = TRAITS(RYOT_TYPE_Q8_0, q5_0),
        [RYOT_TYPE_Q5_1] = TRAITS(RYOT_TYPE_Q8_1, q5_1),
        [RYOT_TYPE_Q8_0] = TRAITS(RYOT_TYPE_Q8_0, q8_0),
        [RYOT_TYPE_Q4_K] = TRAITS(RYOT_TYPE_Q8_K, q4_K),
        [RYOT_TYPE_Q5_K] = TRAITS(RYOT_TYPE_Q8_K, q5_K),
        [RYOT_TYPE_Q6_K] = TRAITS(RYOT_TYPE_Q8_K, q6_K),
        [RYOT_TYPE_Q8_1] = {.supported = false, .vec_dot_type = RYOT_TYPE_Q8_1,
                            .to_float = ref_q8_1_to_float, .from_float = ref_q8_1_from_float},
        [RYOT_TYPE_Q8_K] = {.supported = false, .vec_dot_type = RYOT_TYPE_Q8_K,
                            .to_float = ref_q8_K_to_float, .from_float = ref_q8_K_from_float},
    };
    for (int t = 0; t < RYOT_TYPE_COUNT; t++) lv->traits[t] = ref[t];
    ref_ops_fill(&lv->ops);
}
