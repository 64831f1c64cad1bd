/* Tiny random-weight GGUF models for engine tests, built in memory with the
 * GGUF writer.  Knobs break one thing at a time (a missing tensor, a wrong
 * shape, a missing key) for the loader's error paths. */
#ifndef RYOT_TEST_TINY_MODEL_H
#define RYOT_TEST_TINY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/types.h"

typedef struct tiny_spec {
    const char *arch;          /* "llama", "qwen2", "gemma3" */
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    int sliding_window;        /* gemma3 */
    float rope_base;
    ryot_type type;            /* matrices (rows must fit its blocks); vectors are F32 */
    bool tied;                 /* no output.weight */
    uint64_t seed;
    float std;                 /* matrix weights ~ uniform with this std */
    const char *omit_tensor;   /* leave this tensor out */
    const char *bad_shape;     /* write this matrix with one extra output row */
    const char *omit_key;      /* leave this metadata key out */
    bool rope_freqs;           /* write rope_freqs.weight (Llama 3.1 style frequency divisors) */
    float rope_scale;          /* > 0: rope.scaling.type "linear" with this factor */
    const char *extra_key;     /* with extra_val: an extra u32 key (e.g. an inconsistent one) */
    uint32_t extra_val;
} tiny_spec;

/* Defaults for an architecture: small but with GQA, several layers, and (for
 * gemma3) both sliding and global layers. */
tiny_spec tiny_spec_default(const char *arch);

/* The whole file, malloc'd (free()). Aborts on writer failure. */
uint8_t *tiny_model_build(const tiny_spec *s, size_t *size);

#endif
