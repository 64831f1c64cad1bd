/* Tensor element types, numbered as in the GGUF format (ggml's type ids), and
 * their storage geometry.  Geometry is known for every type GGUF defines so
 * that the reader can validate and `ryot info` can describe any file; which
 * types the engine can compute with is the kernels' traits table's business. */
#ifndef RYOT_CORE_TYPES_H
#define RYOT_CORE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ryot_type {
    RYOT_TYPE_F32 = 0,
    RYOT_TYPE_F16 = 1,
    RYOT_TYPE_Q4_0 = 2,
    RYOT_TYPE_Q4_1 = 3,
    RYOT_TYPE_Q5_0 = 6,
    RYOT_TYPE_Q5_1 = 7,
    RYOT_TYPE_Q8_0 = 8,
    RYOT_TYPE_Q8_1 = 9,
    RYOT_TYPE_Q2_K = 10,
    RYOT_TYPE_Q3_K = 11,
    RYOT_TYPE_Q4_K = 12,
    RYOT_TYPE_Q5_K = 13,
    RYOT_TYPE_Q6_K = 14,
    RYOT_TYPE_Q8_K = 15,
    RYOT_TYPE_IQ2_XXS = 16,
    RYOT_TYPE_IQ2_XS = 17,
    RYOT_TYPE_IQ3_XXS = 18,
    RYOT_TYPE_IQ1_S = 19,
    RYOT_TYPE_IQ4_NL = 20,
    RYOT_TYPE_IQ3_S = 21,
    RYOT_TYPE_IQ2_S = 22,
    RYOT_TYPE_IQ4_XS = 23,
    RYOT_TYPE_I8 = 24,
    RYOT_TYPE_I16 = 25,
    RYOT_TYPE_I32 = 26,
    RYOT_TYPE_I64 = 27,
    RYOT_TYPE_F64 = 28,
    RYOT_TYPE_IQ1_M = 29,
    RYOT_TYPE_BF16 = 30,
    RYOT_TYPE_TQ1_0 = 34,
    RYOT_TYPE_TQ2_0 = 35,
    RYOT_TYPE_MXFP4 = 39,
    RYOT_TYPE_COUNT = 40,
} ryot_type;

typedef struct ryot_type_info {
    const char *name;     /* NULL: not a valid type id */
    uint32_t block_size;  /* elements per block */
    uint32_t type_size;   /* bytes per block */
} ryot_type_info;

/* NULL when t is not a known type id. */
const ryot_type_info *ryot_type_get(uint32_t t);
const char *ryot_type_name(uint32_t t);

/* Bytes for a row of n elements; false when n is not a multiple of the block
 * size or the size overflows. */
bool ryot_row_size(ryot_type t, uint64_t n, uint64_t *bytes);

#endif
