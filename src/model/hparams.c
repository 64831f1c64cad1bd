/* Hyperparameters: GGUF keys `<arch>.<name>`, and the per-architecture facts
 * that GGUF does not carry (rope layout, biases, norms placement,
 * activation), kept as one table so the forward pass stays one function. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"

typedef struct arch_info {
    const char *name;
    model_arch arch;
    rope_layout rope;
    bool qkv_bias, qk_norm, post_norms, embd_scale;
    ffn_act act;
} arch_info;

static const arch_info archs[] = {
    /* llama.cpp's converter permutes Q/K rows of `llama` models so that the
     * interleaved-pair (normal) rotation applies. */
    {"llama", MODEL_ARCH_LLAMA, ROPE_NORMAL, false, false, false, false, FFN_ACT_SILU},
    {"qwen2", MODEL_ARCH_QWEN2, ROPE_NEOX, true, false, false, false, FFN_ACT_SILU},
    /* Gemma 3: embeddings times sqrt(n_embd), QK-norm, pre+post norms around
     * both sub-blocks, GeGLU; the converter already added 1 to the norm
     * weights, so they are used as stored. */
    {"gemma3", MODEL_ARCH_GEMMA3, ROPE_NEOX, false, true, true, true, FFN_ACT_GELU_TANH},
};

typedef struct key_ctx {
    const gguf_file *f;
    const char *arch;
    ryot_error *err;
    char key[160];
} key_ctx;

static const char *full_key(key_ctx *k, const char *name) {
    snprintf(k->key, sizeof k->key, "%s.%s", k->arch, name);
    return k->key;
}

/* Required positive integer. */
static ryot_status req_int(key_ctx *k, const char *name, int *out) {
    const char *key = full_key(k, name);
    const gguf_kv *kv = gguf_find(k->f, key);
    if (!kv) return ryot_fail(k->err, RYOT_ERR_FORMAT, "model: missing hyperparameter '%s'", key);
    if (kv->value.type == GGUF_TYPE_ARRAY)
        return ryot_fail(k->err, RYOT_ERR_UNSUPPORTED, "model: hyperparameter '%s' is per-layer (an array); not supported",
                         key);
    uint32_t v;
    ryot_status st = gguf_get_u32(k->f, key, &v, k->err);
    if (st) return st;
    if (v == 0 || v > (1u << 30))
        return ryot_fail(k->err, RYOT_ERR_FORMAT, "model: hyperparameter '%s' = %u is out of range", key, v);
    *out = (int)v;
    return RYOT_OK;
}

/* Optional integer: *out keeps its default when absent. */
static ryot_status opt_int(key_ctx *k, const char *name, int *out) {
    const char *key = full_key(k, name);
    if (!gguf_find(k->f, key)) return RYOT_OK;
    return req_int(k, name, out);
}

static ryot_status opt_f32(key_ctx *k, const char *name, float *out, bool *present) {
    const char *key = full_key(k, name);
    if (present) *present = false;
    if (!gguf_find(k->f, key)) return RYOT_OK;
    float v;
    ryot_status st = gguf_get_f32(k->f, key, &v, k->err);
    if (st) return st;
    if (!isfinite(v)) return ryot_fail(k->err, RYOT_ERR_FORMAT, "model: hyperparameter '%s' is not finite", key);
    *out = v;
    if (present) *present = true;
    return RYOT_OK;
}

#define TRY(x) \
    do { \
        ryot_status st_ = (x); \
        if (st_) return st_; \
    } while (0)

ryot_status model_hparams_load(const gguf_file *f, model_hparams *hp, ryot_error *err) {
    memset(hp, 0, sizeof *hp);
    gguf_str an;
    ryot_status st = gguf_get_str(f, "general.architecture", &an, err);
    if (st == RYOT_ERR_NOT_FOUND)
        return ryot_fail(err, RYOT_ERR_FORMAT, "model: missing key 'general.architecture'");
    if (st) return st;
    const arch_info *ai = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (gguf_str_eq(an, archs[i].name)) ai = &archs[i];
    if (!ai)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED,
                         "model: architecture '%.*s' is not supported (supported: llama, qwen2, gemma3)",
                         (int)(an.len > 64 ? 64 : an.len), an.data);
    hp->arch = ai->arch;
    hp->arch_name = ai->name;
    hp->rope = ai->rope;
    hp->qkv_bias = ai->qkv_bias;
    hp->qk_norm = ai->qk_norm;
    hp->post_norms = ai->post_norms;
    hp->act = ai->act;

    key_ctx k = {.f = f, .arch = ai->name, .err = err};
    TRY(req_int(&k, "context_length", &hp->n_ctx_train));
    TRY(req_int(&k, "embedding_length", &hp->n_embd));
    TRY(req_int(&k, "block_count", &hp->n_layer));
    TRY(req_int(&k, "feed_forward_length", &hp->n_ff));
    TRY(req_int(&k, "attention.head_count", &hp->n_head));
    hp->n_head_kv = hp->n_head;
    TRY(opt_int(&k, "attention.head_count_kv", &hp->n_head_kv));
    if (hp->n_layer > MODEL_MAX_LAYERS)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "model: '%s.block_count' = %d exceeds %d", ai->name, hp->n_layer,
                         MODEL_MAX_LAYERS);
    if (hp->n_head % hp->n_head_kv)
        return ryot_fail(err, RYOT_ERR_FORMAT,
                         "model: '%s.attention.head_count' (%d) is not a multiple of '%s.attention.head_count_kv' (%d)",
                         ai->name, hp->n_head, ai->name, hp->n_head_kv);
    bool has_kl = gguf_find(f, full_key(&k, "attention.key_length")) != NULL;
    if (!has_kl && hp->n_embd % hp->n_head)
        return ryot_fail(err, RYOT_ERR_FORMAT,
                         "model: '%s.embedding_length' (%d) is not a multiple of '%s.attention.head_count' (%d) "
                         "and '%s.attention.key_length' is absent",
                         ai->name, hp->n_embd, ai->name, hp->n_head, ai->name);
    hp->head_dim = hp->n_embd / hp->n_head;
    TRY(opt_int(&k, "attention.key_length", &hp->head_dim));
    hp->head_dim_v = hp->head_dim;
    TRY(opt_int(&k, "attention.value_length", &hp->head_dim_v));
    hp->rope_dim = hp->head_dim;
    TRY(opt_int(&k, "rope.dimension_count", &hp->rope_dim));
    if (hp->rope_dim > hp->head_dim || hp->rope_dim % 2)
        return ryot_fail(err, RYOT_ERR_FORMAT,
                         "model: '%s.rope.dimension_count' = %d must be even and at most the head size %d", ai->name,
                         hp->rope_dim, hp->head_dim);

    bool present;
    hp->norm_eps = 0.0f;
    TRY(opt_f32(&k, "attention.layer_norm_rms_epsilon", &hp->norm_eps, &present));
    if (!present)
        return ryot_fail(err, RYOT_ERR_FORMAT, "model: missing hyperparameter '%s.attention.layer_norm_rms_epsilon'",
                         ai->name);
    if (!(hp->norm_eps > 0.0f && hp->norm_eps < 1.0f))
        return ryot_fail(err, RYOT_ERR_FORMAT, "model: '%s.attention.layer_norm_rms_epsilon' = %g is out of range",
                         ai->name, hp->norm_eps);

    hp->rope_base = 10000.0f;
    TRY(opt_f32(&k, "rope.freq_base", &hp->rope_base, NULL));
    if (!(hp->rope_base > 1.0f))
        return ryot_fail(err, RYOT_ERR_FORMAT, "model: '%s.rope.freq_base' = %g must be > 1", ai->name, hp->rope_base);
    hp->rope_freq_scale = 1.0f;
    const char *stkey = full_key(&k, "rope.scaling.type");
    bool scaling_linear = false;
    if (gguf_find(f, stkey)) {
        gguf_str t;
        TRY(gguf_get_str(f, stkey, &t, err));
        if (gguf_str_eq(t, "linear"))
            scaling_linear = true;
        else if (!gguf_str_eq(t, "none"))
            return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "model: '%s' = '%.*s' is not supported (none, linear)", stkey,
                             (int)(t.len > 32 ? 32 : t.len), t.data);
    }
    float factor = 0.0f;
    TRY(opt_f32(&k, "rope.scaling.factor", &factor, &present));
    if (present && factor != 0.0f && factor != 1.0f) {
        if (factor < 0.0f)
            return ryot_fail(err, RYOT_ERR_FORMAT, "model: '%s.rope.scaling.factor' = %g is negative", ai->name, factor);
        /* A factor with no type means linear (as llama.cpp reads it). */
        (void)scaling_linear;
        hp->rope_freq_scale = 1.0f / factor;
    }
    hp->rope_base_swa = hp->rope_base;
    hp->rope_freq_scale_swa = hp->rope_freq_scale;

    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = ai->embd_scale ? sqrtf((float)hp->n_embd) : 1.0f;
    TRY(opt_f32(&k, "final_logit_softcapping", &hp->final_softcap, NULL));
    if (hp->final_softcap < 0.0f)
        return ryot_fail(err, RYOT_ERR_FORMAT, "model: '%s.final_logit_softcapping' is negative", ai->name);

    if (ai->arch == MODEL_ARCH_GEMMA3) {
        /* Local layers: 5 sliding-window layers, then 1 global; local layers
         * use rope base 10000 without scaling. */
        TRY(opt_int(&k, "attention.sliding_window", &hp->sliding_window));
        hp->swa_period = 6;
        hp->rope_base_swa = 10000.0f;
        hp->rope_freq_scale_swa = 1.0f;
        /* Gemma 3 27B scales queries by 1/sqrt(n_embd/n_head) (its
         * query_pre_attn_scalar); the other sizes by 1/sqrt(head_dim). */
        if (hp->n_layer == 62) hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    }
    float qpas = 0.0f;
    TRY(opt_f32(&k, "attention.query_pre_attn_scalar", &qpas, &present));
    if (present && qpas > 0.0f) hp->attn_scale = 1.0f / sqrtf(qpas);

    /* Vocabulary size: the key when present, else the tokenizer's list; the
     * binding checks it against token_embd. */
    hp->n_vocab = 0;
    TRY(opt_int(&k, "vocab_size", &hp->n_vocab));
    if (!hp->n_vocab) {
        const gguf_kv *tk = gguf_find(f, "tokenizer.ggml.tokens");
        if (tk && tk->value.type == GGUF_TYPE_ARRAY) hp->n_vocab = (int)tk->value.arr.n;
    }
    return RYOT_OK;
}
