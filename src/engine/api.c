/* include/ryot.h over the model, tokenizer and engine modules. */
#include "ryot.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "backend/cpu/encoder.h"
#include "engine/engine.h"
#include "model/model.h"
#include "template/chat.h"
#include "tokenizer/tokenizer.h"

struct ryot_model {
    model *m;
    tokenizer *tok;
    char name[128];
    chat chat; /* messages -> prompt text (template/chat.h) */
};

struct ryot_context {
    const ryot_model *model;
    engine *e;
};

ryot_status ryot_model_load(const char *path, ryot_model **out, ryot_error *err) {
    *out = NULL;
    ryot_model *rm = calloc(1, sizeof *rm);
    if (!rm) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    ryot_status st = model_load(path, &rm->m, err);
    if (!st) st = tokenizer_load(rm->m->gguf, &rm->tok, err);
    if (st) {
        ryot_error_prefix(err, "loading %s: ", path);
        ryot_model_free(rm);
        return st;
    }
    gguf_str name;
    if (gguf_get_str(rm->m->gguf, "general.name", &name, NULL) == RYOT_OK)
        snprintf(rm->name, sizeof rm->name, "%.*s", (int)(name.len < 127 ? name.len : 127), name.data);
    if (tokenizer_n_vocab(rm->tok) > rm->m->hp.n_vocab) {
        /* ids the embedding cannot look up would crash decode later */
        st = ryot_fail(err, RYOT_ERR_FORMAT, "loading %s: the tokenizer has %d tokens but token_embd only %d rows",
                       path, tokenizer_n_vocab(rm->tok), rm->m->hp.n_vocab);
        ryot_model_free(rm);
        return st;
    }
    chat_init(&rm->chat, rm->m->gguf, rm->tok);
    *out = rm;
    return RYOT_OK;
}

int ryot_model_sampling_defaults(const ryot_model *m, ryot_sampler_params *sp) {
    const gguf_file *f = m->m->gguf;
    int n = 0;
    float x;
    int64_t i;
    if (!gguf_get_f32(f, "general.sampling.temp", &x, NULL) && x >= 0 && x <= 2) sp->temperature = x, n++;
    if (!gguf_get_f32(f, "general.sampling.top_p", &x, NULL) && x > 0 && x <= 1) sp->top_p = x, n++;
    if (!gguf_get_f32(f, "general.sampling.min_p", &x, NULL) && x >= 0 && x <= 1) sp->min_p = x, n++;
    if (!gguf_get_f32(f, "general.sampling.penalty_repeat", &x, NULL) && x > 0 && x <= 10)
        sp->repeat_penalty = x, n++;
    /* top_k <= 0 in a file means "off", as in a request */
    if (!gguf_get_i64(f, "general.sampling.top_k", &i, NULL) && i <= INT32_MAX)
        sp->top_k = i < 0 ? 0 : (int32_t)i, n++;
    if (!gguf_get_i64(f, "general.sampling.penalty_last_n", &i, NULL) && i >= -1 && i <= INT32_MAX)
        sp->penalty_last_n = (int32_t)i, n++;
    return n;
}

const void *ryot_model_file_bytes(const ryot_model *m, uint64_t *size, uint64_t *data_offset) {
    const gguf_file *f = m->m->gguf;
    *size = f->size;
    *data_offset = f->data_offset;
    return f->base;
}

void ryot_model_free(ryot_model *m) {
    if (!m) return;
    chat_free(&m->chat);
    tokenizer_free(m->tok);
    model_free(m->m);
    free(m);
}

void ryot_model_get_info(const ryot_model *rm, ryot_model_info *info) {
    const model_hparams *hp = &rm->m->hp;
    memset(info, 0, sizeof *info);
    info->arch = hp->arch_name;
    info->name = rm->name;
    info->type_name = ryot_type_name(rm->m->ftype);
    info->n_vocab = hp->n_vocab;
    info->n_ctx_train = hp->n_ctx_train;
    info->n_embd = hp->n_embd;
    info->n_layer = hp->n_layer;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->head_dim = hp->head_dim;
    info->n_ff = hp->n_ff;
    info->n_params = rm->m->n_params;
    info->size_bytes = rm->m->weight_bytes;
}

const struct tokenizer *ryot_model_tokenizer(const ryot_model *m) { return m->tok; }

const struct chat *ryot_model_chat(const ryot_model *m) { return &m->chat; }
int ryot_n_vocab(const ryot_model *m) { return m->m->hp.n_vocab; }

ryot_status ryot_tokenize(const ryot_model *m, const char *text, size_t len, unsigned flags, ryot_token **ids,
                          int *n, ryot_error *err) {
    *ids = NULL;
    *n = 0;
    unsigned tf = 0;
    if (flags & RYOT_TOK_ADD_BOS) tf |= tokenizer_default_flags(m->tok) & TOKENIZE_ADD_BOS;
    if (flags & RYOT_TOK_SPECIAL) tf |= TOKENIZE_SPECIAL;
    token_buf b = {0};
    ryot_status st = tokenizer_encode(m->tok, NULL, text, len, tf, &b, err);
    if (st) {
        token_buf_free(&b);
        return st;
    }
    if (b.n > (size_t)1 << 30) {
        token_buf_free(&b);
        return ryot_fail(err, RYOT_ERR_INVALID, "tokenize: text too long");
    }
    if (!b.ids) {
        b.ids = malloc(sizeof *b.ids);
        if (!b.ids) return ryot_fail(err, RYOT_ERR_NOMEM, "tokenize: out of memory");
    }
    *ids = b.ids;
    *n = (int)b.n;
    return RYOT_OK;
}

ryot_status ryot_detokenize(const ryot_model *m, const ryot_token *ids, int n, bool special, char **out,
                            size_t *len, ryot_error *err) {
    return tokenizer_decode(m->tok, ids, n > 0 ? (size_t)n : 0, special ? DETOK_SPECIAL : 0, out, len, err);
}

ryot_token ryot_token_bos(const ryot_model *m) { return tokenizer_bos(m->tok); }
ryot_token ryot_token_eos(const ryot_model *m) { return tokenizer_eos(m->tok); }
bool ryot_token_is_eog(const ryot_model *m, ryot_token t) { return tokenizer_is_eog(m->tok, t); }

ryot_chat_format ryot_model_chat_format(const ryot_model *m) { return m->chat.format; }

const char *ryot_chat_format_name(ryot_chat_format f) {
    switch (f) {
    case RYOT_CHAT_CHATML: return "chatml";
    case RYOT_CHAT_GEMMA: return "gemma";
    case RYOT_CHAT_LLAMA3: return "llama3";
    default: return "none";
    }
}

ryot_status ryot_chat_apply(const ryot_model *m, const ryot_chat_message *msgs, int n, bool add_generation_prompt,
                            char **out, size_t *out_len, ryot_error *err) {
    _Static_assert(sizeof(ryot_chat_message) == sizeof(chat_msg) &&
                       offsetof(ryot_chat_message, content) == offsetof(chat_msg, content),
                   "ryot_chat_message mirrors chat_msg");
    return chat_apply(&m->chat, (const chat_msg *)msgs, n, add_generation_prompt, out, out_len, err);
}

ryot_context_params ryot_context_default_params(void) {
    ryot_context_params p = {0};
    return p;
}

ryot_status ryot_context_new(const ryot_model *m, const ryot_context_params *p, ryot_context **out,
                             ryot_error *err) {
    *out = NULL;
    ryot_context *c = calloc(1, sizeof *c);
    if (!c) return ryot_fail(err, RYOT_ERR_NOMEM, "context: out of memory");
    engine_params ep = engine_params_default(m->m);
    if (p) {
        if (p->n_ctx < 0 || p->n_batch < 0 || p->n_threads < 0 || p->n_logits_max < 0) {
            free(c);
            return ryot_fail(err, RYOT_ERR_INVALID, "context: negative parameter");
        }
        if (p->n_ctx) ep.n_ctx = p->n_ctx;
        if (p->n_batch) ep.n_batch = p->n_batch;
        if (p->n_threads) ep.n_threads = p->n_threads;
        if (p->n_logits_max) ep.n_logits_max = p->n_logits_max;
    }
    if (ep.n_logits_max > ep.n_batch) ep.n_batch = ep.n_logits_max;
    ryot_status st = engine_new(m->m, &ep, &c->e, err);
    if (st) {
        free(c);
        return st;
    }
    c->model = m;
    *out = c;
    return RYOT_OK;
}

void ryot_context_free(ryot_context *c) {
    if (!c) return;
    engine_free(c->e);
    free(c);
}

int ryot_context_n_ctx(const ryot_context *c) { return c->e->n_ctx; }
int ryot_context_n_threads(const ryot_context *c) { return c->e->n_threads; }
int ryot_context_n_past(const ryot_context *c) { return c->e->n_past; }

ryot_status ryot_decode(ryot_context *c, const ryot_token *tokens, int n, int pos, int n_logits, ryot_error *err) {
    return engine_decode(c->e, tokens, n, pos, n_logits, err);
}

const float *ryot_get_logits(const ryot_context *c, int i) {
    if (i < 0 || i >= c->e->n_logits) return NULL;
    return engine_logits(c->e, i);
}

const model *ryot_model_internal(const ryot_model *m) { return m->m; }

/* ---------------------------------------------------------------- embeddings */

struct ryot_embedder {
    encoder *enc;
};

ryot_status ryot_embedder_load(const char *path, int n_threads, ryot_embedder **out, ryot_error *err) {
    *out = NULL;
    ryot_embedder *e = calloc(1, sizeof *e);
    if (!e) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    ryot_status st = encoder_load(path, n_threads, &e->enc, err);
    if (st) {
        free(e);
        return st;
    }
    *out = e;
    return RYOT_OK;
}

void ryot_embedder_free(ryot_embedder *e) {
    if (!e) return;
    encoder_free(e->enc);
    free(e);
}

int ryot_embedder_dim(const ryot_embedder *e) { return encoder_get_hparams(e->enc)->n_embd; }
int ryot_embedder_max_tokens(const ryot_embedder *e) { return encoder_get_hparams(e->enc)->n_ctx; }
int ryot_embedder_n_vocab(const ryot_embedder *e) { return encoder_get_hparams(e->enc)->n_vocab; }
int ryot_embedder_n_threads(const ryot_embedder *e) { return encoder_n_threads(e->enc); }
const char *ryot_embedder_name(const ryot_embedder *e) { return encoder_name(e->enc); }
bool ryot_embedder_normalizes(const ryot_embedder *e) { return encoder_get_hparams(e->enc)->normalize; }

ryot_status ryot_embed_tokenize(const ryot_embedder *e, const char *text, size_t len, ryot_token **ids, int *n,
                                ryot_error *err) {
    *ids = NULL;
    *n = 0;
    const tokenizer *tok = encoder_tokenizer(e->enc);
    token_buf b = {0};
    ryot_status st = tokenizer_encode(tok, NULL, text, len, tokenizer_default_flags(tok) | TOKENIZE_SPECIAL, &b, err);
    if (st != RYOT_OK) {
        token_buf_free(&b);
        return st;
    }
    if (b.n > INT32_MAX) {
        token_buf_free(&b);
        return ryot_fail(err, RYOT_ERR_INVALID, "text of %zu tokens", b.n);
    }
    *ids = b.ids;
    *n = (int)b.n;
    return RYOT_OK;
}

ryot_status ryot_embed_tokens(ryot_embedder *e, const ryot_token *const *ids, const int *n_ids, int n, float *out,
                              ryot_error *err) {
    return encoder_encode(e->enc, ids, n_ids, n, out, err);
}

ryot_status ryot_embed(ryot_embedder *e, const char *const *texts, const size_t *lens, int n, float *out,
                       long *n_tokens, ryot_error *err) {
    if (n < 0) return ryot_fail(err, RYOT_ERR_INVALID, "embed: %d texts", n);
    ryot_token **ids = calloc((size_t)n + 1, sizeof *ids);
    int *n_ids = calloc((size_t)n + 1, sizeof *n_ids);
    ryot_status st = ids && n_ids ? RYOT_OK : ryot_fail(err, RYOT_ERR_NOMEM, "embed");
    long total = 0;
    for (int i = 0; !st && i < n; i++) {
        st = ryot_embed_tokenize(e, texts[i], lens ? lens[i] : strlen(texts[i]), &ids[i], &n_ids[i], err);
        if (!st && n_ids[i] > ryot_embedder_max_tokens(e))
            st = ryot_fail(err, RYOT_ERR_INVALID, "text %d: %d tokens, more than the model's %d", i, n_ids[i],
                           ryot_embedder_max_tokens(e));
        total += n_ids[i];
    }
    if (!st) st = encoder_encode(e->enc, (const int32_t *const *)ids, n_ids, n, out, err);
    if (!st && n_tokens) *n_tokens = total;
    for (int i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    return st;
}
