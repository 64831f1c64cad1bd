#include "core/types.h"

/* Block geometry from the GGUF/ggml format definitions. */
static const ryot_type_info type_table[RYOT_TYPE_COUNT] = {
    [RYOT_TYPE_F32] = {"F32", 1, 4},
    [RYOT_TYPE_F16] = {"F16", 1, 2},
    [RYOT_TYPE_Q4_0] = {"Q4_0", 32, 18},
    [RYOT_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [RYOT_TYPE_Q5_0] = {"Q5_0", 32, 22},
    [RYOT_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [RYOT_TYPE_Q8_0] = {"Q8_0", 32, 34},
    [RYOT_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [RYOT_TYPE_Q2_K] = {"Q2_K", 256, 84},
    [RYOT_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [RYOT_TYPE_Q4_K] = {"Q4_K", 256, 144},
    [RYOT_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [RYOT_TYPE_Q6_K] = {"Q6_K", 256, 210},
    [RYOT_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [RYOT_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [RYOT_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74},
    [RYOT_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [RYOT_TYPE_IQ1_S] = {"IQ1_S", 256, 50},
    [RYOT_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18},
    [RYOT_TYPE_IQ3_S] = {"IQ3_S", 256, 110},
    [RYOT_TYPE_IQ2_S] = {"IQ2_S", 256, 82},
    [RYOT_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [RYOT_TYPE_I8] = {"I8", 1, 1},
    [RYOT_TYPE_I16] = {"I16", 1, 2},
    [RYOT_TYPE_I32] = {"I32", 1, 4},
    [RYOT_TYPE_I64] = {"I64", 1, 8},
    [RYOT_TYPE_F64] = {"F64", 1, 8},
    [RYOT_TYPE_IQ1_M] = {"IQ1_M", 256, 56},
    [RYOT_TYPE_BF16] = {"BF16", 1, 2},
    [RYOT_TYPE_TQ1_0] = {"TQ1_0", 256, 54},
    [RYOT_TYPE_TQ2_0] = {"TQ2_0", 256, 66},
    [RYOT_TYPE_MXFP4] = {"MXFP4", 32, 17},
};

const ryot_type_info *ryot_type_get(uint32_t t) {
    if (t >= RYOT_TYPE_COUNT || !type_table[t].name) return NULL;
    return &type_table[t];
}

const char *ryot_type_name(uint32_t t) {
    const ryot_type_info *ti = ryot_type_get(t);
    return ti ? ti->name : "?";
}

bool ryot_row_size(ryot_type t, uint64_t n, uint64_t *bytes) {
    const ryot_type_info *ti = ryot_type_get(t);
    if (!ti || n % ti->block_size) return false;
    uint64_t blocks = n / ti->block_size;
    if (blocks > UINT64_MAX / ti->type_size) return false;
    *bytes = blocks * ti->type_size;
    return true;
}
