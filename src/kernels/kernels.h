/* Kernel API: one traits table indexed by tensor type (STYLE.md habit 2).
 *
 * Weights stay in their stored type.  For a matrix-vector or matrix-matrix
 * product the activations are first quantized, row by row, to the weight
 * type's `vec_dot_type` (e.g. Q8_0 for Q4_0/Q4_1/Q8_0, Q8_K for the K-quants,
 * F32 or F16 for float weights), then `vec_dot` takes one weight row and one
 * quantized activation row.
 *
 * kernels_init() picks the best implementation for this CPU once (AVX-512 >
 * AVX2 > scalar reference); kernels_ref() always returns the scalar reference
 * table (kernels/ref/), which defines the right answer. */
#ifndef RYOT_KERNELS_H
#define RYOT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/types.h"

typedef void (*kernel_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*kernel_from_float_fn)(const float *src, void *dst, int64_t n);
/* s = dot(x, y) over n elements; x is a weight row of the table's type, y an
 * activation row already in vec_dot_type. */
typedef void (*kernel_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

typedef struct kernel_traits {
    bool supported;                 /* false: the engine cannot compute with this type */
    ryot_type vec_dot_type;         /* activation type for vec_dot */
    kernel_to_float_fn to_float;    /* dequantize a row */
    kernel_from_float_fn from_float;/* quantize a row into this type (reference-quality) */
    kernel_vec_dot_fn vec_dot;
} kernel_traits;

typedef enum kernel_isa {
    KERNEL_ISA_AUTO = 0,
    KERNEL_ISA_REF,
    KERNEL_ISA_AVX2,
    KERNEL_ISA_AVX512,
} kernel_isa;

/* Detect the CPU and select implementations; `want` forces a level (falls
 * back to the best available one below it).  Idempotent; call before use. */
kernel_isa kernels_init(kernel_isa want);
const char *kernel_isa_name(kernel_isa isa);

/* Table for type t (never NULL; check ->supported). */
const kernel_traits *kernels_get(ryot_type t);
const kernel_traits *kernels_ref(ryot_type t);

/* FP16/BF16 <-> FP32 conversion (scalar). */
float ryot_fp16_to_fp32(uint16_t h);
uint16_t ryot_fp32_to_fp16(float f);
float ryot_bf16_to_fp32(uint16_t h);
uint16_t ryot_fp32_to_bf16(float f);

#endif
