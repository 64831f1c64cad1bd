/* Library side of `ryot gen` (random-weight models of any shape) and
 * `ryot quantize` (re-quantize a GGUF file).  The CLI files parse flags and
 * print; everything here returns errors and is unit-tested.
 *
 * Both build the output GGUF in one buffer of exactly the file's size: the
 * tensors are first declared to the GGUF writer without data, the writer lays
 * out the file (zeros), and the tensor data is then written in place row by
 * row.  Peak memory is the output file plus a few rows, never a float copy of
 * a whole tensor (a 1B model at Q4_0 needs ~0.7 GB). */
#ifndef RYOT_MODELTOOLS_H
#define RYOT_MODELTOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/types.h"
#include "gguf/gguf.h"

/* ---------------------------------------------------------------- types */

/* Output types the tools write: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K
 * Q5_K Q6_K.  Case-insensitive; "Q4_K_M"/"Q5_K_M"/"Q4_K_S"... name the
 * K-type.  False for anything else. */
bool modeltools_parse_type(const char *name, ryot_type *out);

/* llama.cpp's general.file_type (llama_ftype) for a file mostly of type t:
 * ALL_F32 0, MOSTLY_F16 1, Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9,
 * Q4_K_M 15, Q5_K_M 17, Q6_K 18, BF16 32. */
uint32_t modeltools_file_type(ryot_type t);

/* The type to store a row of row_len elements asked as `want`: want itself
 * when row_len is a multiple of its block size, else llama.cpp's fallbacks
 * (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), else F16. */
ryot_type modeltools_row_type(ryot_type want, uint64_t row_len);

/* Writes buf to path (created or truncated). */
ryot_status modeltools_write_file(const char *path, const uint8_t *buf, size_t size, ryot_error *err);

/* ---------------------------------------------------------------- generator */

typedef enum modelgen_arch {
    MODELGEN_LLAMA,  /* also SmolLM, Mistral-like shapes */
    MODELGEN_QWEN2,  /* llama + q/k/v biases */
    MODELGEN_GEMMA3, /* q/k norms, post-attention/post-ffn norms, sliding window */
} modelgen_arch;

typedef struct modelgen_spec {
    modelgen_arch arch;
    const char *name;        /* general.name; NULL: "ryot random <arch>" */
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t n_vocab;        /* 0 with vocab_from: the tokenizer's size */
    uint32_t n_ctx;
    uint32_t head_dim;       /* 0: n_embd / n_head */
    float rope_base;
    float rms_eps;
    uint32_t sliding_window; /* gemma3 only (local layers; every 6th layer is global) */
    bool tied;               /* true: no output.weight, the head reuses token_embd */
    ryot_type type;          /* 2-D weights; norms and biases are F32 */
    uint64_t seed;
    float init_std;          /* 2-D weights and biases: ~N(0, std^2), bounded at 3.46 std */
    const gguf_file *vocab_from; /* copy its tokenizer.* keys; NULL: synthetic byte-level vocab */
} modelgen_spec;

const char *modelgen_arch_name(modelgen_arch a);
bool modelgen_parse_arch(const char *name, modelgen_arch *out);

/* Fills *out with a named preset (type Q8_0, seed 0, std 0.02); false when
 * unknown.  Names: llama3-1b, smollm2-135m, qwen2.5-0.5b, gemma3-270m,
 * tiny-llama, tiny-qwen2, tiny-gemma3 (tiny: rows of 256 so every type
 * applies, a few MB). */
bool modelgen_preset(const char *name, modelgen_spec *out);
/* NULL-terminated list of preset names. */
const char *const *modelgen_preset_names(void);

/* Size of the synthetic vocab (256 byte tokens + merges + BOS + EOS); with no
 * vocab_from, n_vocab must be at least this (extra ids are unused tokens). */
uint32_t modelgen_synthetic_vocab_size(void);

typedef struct modelgen_report {
    uint64_t n_params;
    uint32_t n_tensors;
    uint32_t n_fallback;     /* 2-D tensors stored in a fallback type (rows not a block multiple) */
} modelgen_report;

/* Validates the spec (the message names the bad field) and builds the whole
 * GGUF file in *buf (malloc'd, owned by the caller).  report may be NULL. */
ryot_status modelgen_build(const modelgen_spec *spec, uint8_t **buf, size_t *size, modelgen_report *report,
                           ryot_error *err);

/* ---------------------------------------------------------------- quantizer */

typedef struct requant_opts {
    ryot_type type;    /* target for 2-D weight tensors */
    bool keep_output;  /* leave output.weight in its type */
    /* Called once per tensor left unconverted for a reason worth telling
     * (row length, unsupported source type); may be NULL. */
    void (*note)(void *ctx, const char *msg);
    void *note_ctx;
} requant_opts;

typedef struct requant_stats {
    uint32_t n_converted;  /* re-quantized (or copied: already the target type) */
    uint32_t n_kept;       /* left as they were */
    uint32_t n_1d;         /* 1-D tensors (stored as F32) */
    uint32_t n_to_f32;     /* of which converted to F32 */
    uint64_t bytes_before; /* tensor data, input */
    uint64_t bytes_after;  /* tensor data, output */
} requant_stats;

/* Re-quantizes every tensor of 2 or more dimensions whose rows fit the
 * target's blocks (dequantize with to_float, quantize with from_float;
 * tensors already of the target type are copied bit for bit); 1-D tensors
 * become F32; everything else is copied.  All metadata is copied, with
 * general.file_type set for the target and general.quantization_version 2.
 * Builds the file in *buf (malloc'd).  stats may be NULL. */
ryot_status requant_build(const gguf_file *in, const requant_opts *opts, uint8_t **buf, size_t *size,
                          requant_stats *stats, ryot_error *err);

/* ---------------------------------------------------------------- converter */

typedef struct convert_report {
    uint64_t n_params;
    uint32_t n_tensors;
    uint32_t n_layer, n_embd, n_vocab;
} convert_report;

/* A Hugging Face BERT sentence encoder directory (config.json,
 * tokenizer.json, model.safetensors; optional sentence-transformers
 * 1_Pooling/config.json and modules.json) -> GGUF of architecture "bert":
 * bert.* hyperparameters (context_length, embedding_length,
 * feed_forward_length, block_count, attention.head_count,
 * attention.layer_norm_epsilon, attention.causal false, pooling_type 1 mean
 * or 2 CLS, normalize_embeddings: a Normalize module is listed), the WordPiece
 * vocab in GGUF's spelling (tokenizer/wpm.c) with the added special tokens as
 * control tokens, and the weights: 2-D tensors in `type` (F32, F16 or Q8_0),
 * 1-D ones F32.  Only what tokenizer/wpm.c and engine/encoder.c compute is
 * accepted (gelu, absolute positions, lower-casing WordPiece): anything else
 * is an error naming the file and field.  The safetensors header is parsed
 * with every offset and shape checked against the file.  *buf is malloc'd;
 * report may be NULL. */
ryot_status convert_bert_build(const char *dir, ryot_type type, uint8_t **buf, size_t *size,
                               convert_report *report, ryot_error *err);

#endif
