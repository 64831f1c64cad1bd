/* Weight binding: looks up every tensor the hyperparameters call for and
 * checks its dimensions and type before the forward pass ever touches it. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

typedef struct bind_ctx {
    model *m;
    ryot_error *err;
    uint64_t type_bytes[RYOT_TYPE_COUNT]; /* matrix bytes per type: picks ftype */
} bind_ctx;

static ryot_status check_dims(const gguf_tensor *t, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                              ryot_error *err) {
    int64_t want[GGUF_MAX_DIMS] = {ne0, n_dims > 1 ? ne1 : 1, 1, 1};
    bool ok = true;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t have = d < (int)t->n_dims ? t->ne[d] : 1;
        if (have != (uint64_t)want[d]) ok = false;
    }
    if (!ok) {
        char have_s[96] = "", want_s[64];
        size_t o = 0;
        for (uint32_t d = 0; d < t->n_dims && o < sizeof have_s; d++)
            o += (size_t)snprintf(have_s + o, sizeof have_s - o, "%s%llu", d ? ", " : "", (unsigned long long)t->ne[d]);
        if (n_dims > 1)
            snprintf(want_s, sizeof want_s, "%lld, %lld", (long long)ne0, (long long)ne1);
        else
            snprintf(want_s, sizeof want_s, "%lld", (long long)ne0);
        return ryot_fail(err, RYOT_ERR_FORMAT, "model: tensor '%s' has shape [%s], expected [%s]", name, have_s,
                         want_s);
    }
    return RYOT_OK;
}

static const gguf_tensor *find(bind_ctx *b, const char *name, bool required, ryot_status *st) {
    const gguf_tensor *t = gguf_find_tensor(b->m->gguf, name);
    *st = RYOT_OK;
    if (!t && required) *st = ryot_fail(b->err, RYOT_ERR_FORMAT, "model: missing tensor '%s'", name);
    return t;
}

/* Matrix n_in -> n_out. */
static ryot_status bind_matrix(bind_ctx *b, model_weight *w, const char *name, int64_t n_in, int64_t n_out,
                               bool required) {
    ryot_status st;
    memset(w, 0, sizeof *w);
    const gguf_tensor *t = find(b, name, required, &st);
    if (!t) return st;
    if ((st = check_dims(t, name, 2, n_in, n_out, b->err))) return st;
    const kernel_traits *kt = kernels_get(t->type);
    if (!kt->supported || !kt->vec_dot)
        return ryot_fail(b->err, RYOT_ERR_UNSUPPORTED, "model: tensor '%s' has type %s, which ryot cannot compute with",
                         name, ryot_type_name(t->type));
    uint64_t rb;
    if (!ryot_row_size(t->type, (uint64_t)n_in, &rb))
        return ryot_fail(b->err, RYOT_ERR_FORMAT, "model: tensor '%s': row of %lld is not a whole number of %s blocks",
                         name, (long long)n_in, ryot_type_name(t->type));
    uint64_t vrb;
    if (!ryot_row_size(kt->vec_dot_type, (uint64_t)n_in, &vrb))
        return ryot_fail(b->err, RYOT_ERR_UNSUPPORTED,
                         "model: tensor '%s': row of %lld does not fit the %s activation blocks of type %s", name,
                         (long long)n_in, ryot_type_name(kt->vec_dot_type), ryot_type_name(t->type));
    w->type = t->type;
    w->data = t->data;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = (size_t)rb;
    b->m->n_params += (uint64_t)n_in * (uint64_t)n_out;
    b->m->weight_bytes += t->size;
    b->type_bytes[t->type] += t->size;
    return RYOT_OK;
}

/* Vector of n floats; stored types other than F32 are converted once. */
static ryot_status bind_vector(bind_ctx *b, const float **out, const char *name, int64_t n, bool required) {
    ryot_status st;
    *out = NULL;
    const gguf_tensor *t = find(b, name, required, &st);
    if (!t) return st;
    if ((st = check_dims(t, name, 1, n, 1, b->err))) return st;
    b->m->n_params += (uint64_t)n;
    b->m->weight_bytes += t->size;
    if (t->type == RYOT_TYPE_F32) {
        if ((uintptr_t)t->data % sizeof(float))
            return ryot_fail(b->err, RYOT_ERR_FORMAT, "model: tensor '%s' is not 4-byte aligned", name);
        *out = t->data;
        return RYOT_OK;
    }
    const kernel_traits *kt = kernels_get(t->type);
    uint64_t rb;
    if (!kt->to_float || !ryot_row_size(t->type, (uint64_t)n, &rb))
        return ryot_fail(b->err, RYOT_ERR_UNSUPPORTED, "model: tensor '%s' has type %s; expected F32", name,
                         ryot_type_name(t->type));
    float *copy = malloc((size_t)n * sizeof(float));
    float **owned = realloc(b->m->owned, (size_t)(b->m->n_owned + 1) * sizeof *owned);
    if (!copy || !owned) {
        free(copy);
        if (owned) b->m->owned = owned;
        return ryot_fail(b->err, RYOT_ERR_NOMEM, "model: out of memory converting '%s'", name);
    }
    b->m->owned = owned;
    b->m->owned[b->m->n_owned++] = copy;
    kt->to_float(t->data, copy, n);
    *out = copy;
    return RYOT_OK;
}

#define TRY(x) \
    do { \
        ryot_status st_ = (x); \
        if (st_) return st_; \
    } while (0)

static ryot_status bind_all(bind_ctx *b) {
    model *m = b->m;
    const model_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, K = (int64_t)hp->n_head_kv * hp->head_dim,
                  V = (int64_t)hp->n_head_kv * hp->head_dim_v, O = (int64_t)hp->n_head * hp->head_dim_v,
                  F = hp->n_ff;

    /* token_embd fixes the vocabulary size when the metadata has none. */
    const gguf_tensor *te = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) return ryot_fail(b->err, RYOT_ERR_FORMAT, "model: missing tensor 'token_embd.weight'");
    if (!m->hp.n_vocab) {
        if (te->n_dims != 2 || te->ne[1] == 0 || te->ne[1] > (1u << 30))
            return ryot_fail(b->err, RYOT_ERR_FORMAT, "model: tensor 'token_embd.weight' is not a matrix");
        m->hp.n_vocab = (int)te->ne[1];
    }
    TRY(bind_matrix(b, &m->tok_embd, "token_embd.weight", E, hp->n_vocab, true));
    if (!kernels_get(m->tok_embd.type)->to_float)
        return ryot_fail(b->err, RYOT_ERR_UNSUPPORTED, "model: 'token_embd.weight' type %s cannot be dequantized",
                         ryot_type_name(m->tok_embd.type));
    TRY(bind_vector(b, &m->output_norm, "output_norm.weight", E, true));
    TRY(bind_matrix(b, &m->output, "output.weight", E, hp->n_vocab, false));
    if (!m->output.data) {
        m->output = m->tok_embd;
        m->output_tied = true;
    }
    TRY(bind_vector(b, &m->rope_freqs, "rope_freqs.weight", hp->rope_dim / 2, false));

    char name[96];
#define NAME(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, il), name)
    for (int il = 0; il < hp->n_layer; il++) {
        model_layer *l = &m->layers[il];
        TRY(bind_vector(b, &l->attn_norm, NAME("attn_norm.weight"), E, true));
        TRY(bind_matrix(b, &l->wq, NAME("attn_q.weight"), E, Q, true));
        TRY(bind_matrix(b, &l->wk, NAME("attn_k.weight"), E, K, true));
        TRY(bind_matrix(b, &l->wv, NAME("attn_v.weight"), E, V, true));
        TRY(bind_matrix(b, &l->wo, NAME("attn_output.weight"), O, E, true));
        if (hp->qkv_bias) {
            TRY(bind_vector(b, &l->bq, NAME("attn_q.bias"), Q, true));
            TRY(bind_vector(b, &l->bk, NAME("attn_k.bias"), K, true));
            TRY(bind_vector(b, &l->bv, NAME("attn_v.bias"), V, true));
        }
        if (hp->qk_norm) {
            TRY(bind_vector(b, &l->q_norm, NAME("attn_q_norm.weight"), hp->head_dim, true));
            TRY(bind_vector(b, &l->k_norm, NAME("attn_k_norm.weight"), hp->head_dim, true));
        }
        if (hp->post_norms) {
            TRY(bind_vector(b, &l->post_attn_norm, NAME("post_attention_norm.weight"), E, true));
            TRY(bind_vector(b, &l->post_ffn_norm, NAME("post_ffw_norm.weight"), E, true));
        }
        TRY(bind_vector(b, &l->ffn_norm, NAME("ffn_norm.weight"), E, true));
        TRY(bind_matrix(b, &l->w_gate, NAME("ffn_gate.weight"), E, F, true));
        TRY(bind_matrix(b, &l->w_up, NAME("ffn_up.weight"), E, F, true));
        TRY(bind_matrix(b, &l->w_down, NAME("ffn_down.weight"), F, E, true));
    }
#undef NAME
    uint64_t best = 0;
    m->ftype = RYOT_TYPE_F32;
    for (int t = 0; t < RYOT_TYPE_COUNT; t++)
        if (b->type_bytes[t] > best) {
            best = b->type_bytes[t];
            m->ftype = (ryot_type)t;
        }
    return RYOT_OK;
}

ryot_status model_load_gguf(gguf_file *f, model **out, ryot_error *err) {
    *out = NULL;
    kernels_init(KERNEL_ISA_AUTO);
    model *m = calloc(1, sizeof *m);
    if (!m) {
        gguf_close(f);
        return ryot_fail(err, RYOT_ERR_NOMEM, "model: out of memory");
    }
    m->gguf = f;
    ryot_status st = model_hparams_load(f, &m->hp, err);
    if (!st) {
        m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
        if (!m->layers) st = ryot_fail(err, RYOT_ERR_NOMEM, "model: out of memory");
    }
    if (!st) {
        bind_ctx b = {.m = m, .err = err};
        st = bind_all(&b);
    }
    if (st) {
        model_free(m);
        return st;
    }
    *out = m;
    return RYOT_OK;
}

ryot_status model_load(const char *path, model **out, ryot_error *err) {
    gguf_file *f;
    *out = NULL;
    ryot_status st = gguf_open(path, &f, err);
    if (st) return st;
    return model_load_gguf(f, out, err);
}

void model_free(model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    gguf_close(m->gguf);
    free(m);
}
