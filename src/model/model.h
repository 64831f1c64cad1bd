/* Model: hyperparameters from GGUF metadata and weights bound to the mapped
 * tensors.  One forward pass serves every architecture; what differs between
 * them is data here (flags and constants in model_hparams), set per
 * architecture in hparams.c.
 *
 * Weight matrices keep GGUF's orientation: ne[0] = n_in (the contiguous row),
 * ne[1] = n_out rows; y = W x is one vec_dot per row. */
#ifndef RYOT_MODEL_MODEL_H
#define RYOT_MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/types.h"
#include "gguf/gguf.h"

#define MODEL_MAX_LAYERS 1024

typedef enum model_arch {
    MODEL_ARCH_LLAMA = 0, /* Llama 2/3, Mistral, SmolLM, TinyLlama */
    MODEL_ARCH_QWEN2,
    MODEL_ARCH_GEMMA3,
    MODEL_ARCH_COUNT
} model_arch;

typedef enum ffn_act {
    FFN_ACT_SILU = 0,  /* SwiGLU: silu(gate) * up */
    FFN_ACT_GELU_TANH, /* GeGLU: gelu_tanh(gate) * up */
} ffn_act;

/* RoPE.  NORMAL rotates interleaved pairs (2i, 2i+1) (llama.cpp's `llama`
 * arch, whose Q/K rows the GGUF conversion permuted); NEOX rotates pairs
 * (i, i + rope_dim/2) (qwen2, gemma).  Dims at and beyond rope_dim pass through. */
typedef enum rope_layout {
    ROPE_NORMAL = 0,
    ROPE_NEOX = 1,
} rope_layout;

typedef struct model_hparams {
    model_arch arch;
    const char *arch_name;  /* "llama", "qwen2", "gemma3" (static) */
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;           /* K and Q head size */
    int head_dim_v;         /* V head size */
    int n_ff;
    int rope_dim;           /* rotated dims per head (<= head_dim, even) */
    float norm_eps;
    rope_layout rope;
    float rope_base;        /* global (full-attention) layers */
    float rope_freq_scale;  /* 1 / linear scaling factor; global layers */
    float rope_base_swa;    /* sliding-window layers */
    float rope_freq_scale_swa;
    int sliding_window;     /* 0: every layer attends to the full context */
    int swa_period;         /* with sliding_window: layer il is local iff il % period < period - 1 */
    float attn_scale;       /* multiplies q.k */
    float embd_scale;       /* multiplies the token embedding (1: none) */
    float final_softcap;    /* logits = c * tanh(logits / c); 0: none */
    bool qkv_bias;          /* qwen2: attn_q/k/v.bias */
    bool qk_norm;           /* gemma3: per-head RMSNorm of q and k before RoPE */
    bool post_norms;        /* gemma3: RMSNorm of each sub-block's output before the residual add */
    ffn_act act;
} model_hparams;

/* Reads and checks the hyperparameters of f's architecture.  A missing or
 * inconsistent key is RYOT_ERR_FORMAT naming the key; an unknown
 * architecture is RYOT_ERR_UNSUPPORTED. */
ryot_status model_hparams_load(const gguf_file *f, model_hparams *hp, ryot_error *err);

static inline bool model_layer_is_swa(const model_hparams *hp, int il) {
    return hp->sliding_window > 0 && (hp->swa_period <= 1 || il % hp->swa_period < hp->swa_period - 1);
}

/* A weight matrix (n_out rows of n_in elements) in its stored type. */
typedef struct model_weight {
    ryot_type type;
    const void *data;
    int64_t n_in;     /* ne[0] */
    int64_t n_out;    /* ne[1] */
    size_t row_bytes;
} model_weight;

typedef struct model_layer {
    const float *attn_norm;      /* (n_embd) */
    model_weight wq;             /* n_embd -> n_head*head_dim */
    model_weight wk;             /* n_embd -> n_head_kv*head_dim */
    model_weight wv;             /* n_embd -> n_head_kv*head_dim_v */
    model_weight wo;             /* n_head*head_dim_v -> n_embd */
    const float *bq, *bk, *bv;   /* qkv_bias: (n_head*head_dim), (n_head_kv*head_dim), (n_head_kv*head_dim_v) */
    const float *q_norm, *k_norm;/* qk_norm: (head_dim) */
    const float *post_attn_norm; /* post_norms: (n_embd) */
    const float *ffn_norm;       /* (n_embd) */
    model_weight w_gate;         /* n_embd -> n_ff */
    model_weight w_up;           /* n_embd -> n_ff */
    model_weight w_down;         /* n_ff -> n_embd */
    const float *post_ffn_norm;  /* post_norms: (n_embd) */
} model_layer;

typedef struct model {
    gguf_file *gguf;             /* owned: the mapping the weights point into */
    model_hparams hp;
    model_weight tok_embd;       /* n_embd x n_vocab rows (rows are looked up, not multiplied) */
    model_weight output;         /* n_embd -> n_vocab; = tok_embd when tied */
    bool output_tied;
    const float *output_norm;    /* (n_embd) */
    const float *rope_freqs;     /* (rope_dim/2) frequency divisors, or NULL */
    model_layer *layers;         /* (n_layer) */
    uint64_t n_params;
    uint64_t weight_bytes;
    ryot_type ftype;             /* most common matrix type (for display) */
    /* private: f32 copies of 1-D tensors stored in another type */
    float **owned;
    int n_owned;
} model;

/* Binds every tensor of f (hyperparameters first), checking names, shapes
 * and that the kernels can compute with each type.  Takes ownership of f on
 * success and on failure (it is closed). */
ryot_status model_load_gguf(gguf_file *f, model **out, ryot_error *err);
ryot_status model_load(const char *path, model **out, ryot_error *err);
void model_free(model *m);

#endif
