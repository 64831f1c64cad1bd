/* BERT encoder forward (contract in encoder.h).
 *
 * Steps of one layer, each one ryot_pool_run (the join is the barrier):
 *   qkv    Q, K, V projections with biases (rows split in groups of 16)
 *   attn   (sentence, head) units: scores over the sentence, softmax, sum of V
 *   o      output projection + bias, then residual add and LayerNorm per token
 *   up     FFN up projection + bias, GELU (kernel_ops gelu_erf) fused
 *   down   FFN down projection + bias, then residual add and LayerNorm
 * Inputs whose weights want quantized activations (Q8_0) are quantized in
 * their own step first; F32 and F16 weights go through the register-tiled
 * kernel_ops gemm_f32 / gemm_f16 (bias fused) instead of vec_dot_rows.  Every output element is computed by one thread with
 * the same code whatever the split, so results do not depend on the thread
 * count or on the other sentences of the batch. */
#include "backend/cpu/encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "backend/cpu/ops.h"
#include "model/model.h"

typedef struct encoder_layer {
    model_weight wq, wk, wv;       /* n_embd -> n_embd */
    model_weight wo;               /* n_embd -> n_embd */
    model_weight up;               /* n_embd -> n_ff */
    model_weight down;             /* n_ff -> n_embd */
    const float *bq, *bk, *bv, *bo;/* (n_embd) */
    const float *bup;              /* (n_ff) */
    const float *bdown;            /* (n_embd) */
    const float *attn_norm_w, *attn_norm_b; /* (n_embd) after attention */
    const float *out_norm_w, *out_norm_b;   /* (n_embd) after the FFN */
} encoder_layer;

struct encoder {
    gguf_file *f;
    tokenizer *tok;
    encoder_hparams hp;
    char name[128];
    model_weight tok_embd;   /* n_embd x n_vocab rows, looked up */
    model_weight pos_embd;   /* n_embd x n_ctx rows */
    model_weight type_embd;  /* n_embd x n_types rows */
    const float *embd_norm_w, *embd_norm_b; /* (n_embd) */
    encoder_layer *layers;   /* (n_layer) */
    ryot_pool *pool;
    int n_threads;
    int cap;                 /* token rows of the buffers */
    /* activations, (cap, width) row-major */
    float *x;                /* (cap, n_embd) hidden state */
    float *q, *k, *v;        /* (cap, n_embd) */
    float *att;              /* (cap, n_embd) attention output */
    float *tmp;              /* (cap, n_embd) sub-block output before the residual */
    float *h;                /* (cap, n_ff) FFN hidden */
    uint8_t *qin;            /* (cap) input rows in a weight's vec_dot_type */
    size_t qin_bytes;
    float *scores;           /* (n_threads, n_ctx) attention scratch, one row per share */
    int32_t *tokens;         /* (cap) the chunk's token ids */
    int *pos;                /* (cap) their positions inside their sentences */
    int *seq_start;          /* (cap + 1) token offset of each sentence of the chunk */
};

/* ---------------------------------------------------------------- load */

static ryot_status get_int(const gguf_file *f, const char *key, int lo, int hi, int *out, ryot_error *err) {
    uint32_t v;
    ryot_error e2;
    ryot_status st = gguf_get_u32(f, key, &v, &e2);
    if (st == RYOT_ERR_NOT_FOUND) return ryot_fail(err, RYOT_ERR_FORMAT, "missing key %s", key);
    if (st != RYOT_OK) return ryot_fail(err, RYOT_ERR_FORMAT, "%s", e2.msg);
    if ((int64_t)v < lo || (int64_t)v > hi)
        return ryot_fail(err, RYOT_ERR_FORMAT, "%s: %u is outside [%d, %d]", key, v, lo, hi);
    *out = (int)v;
    return RYOT_OK;
}

static ryot_status load_hparams(encoder *e, ryot_error *err) {
    const gguf_file *f = e->f;
    encoder_hparams *hp = &e->hp;
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch, NULL) != RYOT_OK || !gguf_str_eq(arch, "bert"))
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "general.architecture: not \"bert\" (an embedding model)");
    ryot_status st;
    if ((st = get_int(f, "bert.context_length", 1, 1 << 20, &hp->n_ctx, err))) return st;
    if ((st = get_int(f, "bert.embedding_length", 1, 1 << 16, &hp->n_embd, err))) return st;
    if ((st = get_int(f, "bert.feed_forward_length", 1, 1 << 20, &hp->n_ff, err))) return st;
    if ((st = get_int(f, "bert.block_count", 1, MODEL_MAX_LAYERS, &hp->n_layer, err))) return st;
    if ((st = get_int(f, "bert.attention.head_count", 1, 1024, &hp->n_head, err))) return st;
    if (hp->n_embd % hp->n_head)
        return ryot_fail(err, RYOT_ERR_FORMAT, "bert.attention.head_count %d does not divide embedding_length %d",
                         hp->n_head, hp->n_embd);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (gguf_get_f32(f, "bert.attention.layer_norm_epsilon", &hp->eps, err) != RYOT_OK || !(hp->eps > 0))
        return ryot_fail(err, RYOT_ERR_FORMAT, "bert.attention.layer_norm_epsilon: missing or not positive");
    bool causal = false;
    if (gguf_get_bool(f, "bert.attention.causal", &causal, NULL) == RYOT_OK && causal)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "bert.attention.causal: true (an encoder attends both ways)");
    int pool = ENCODER_POOL_MEAN;
    if (gguf_find(f, "bert.pooling_type") && (st = get_int(f, "bert.pooling_type", 1, 2, &pool, err)))
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "bert.pooling_type: only 1 (mean) and 2 (CLS)");
    hp->pooling = (encoder_pooling)pool;
    hp->normalize = false;
    if (gguf_find(f, "bert.normalize_embeddings") &&
        gguf_get_bool(f, "bert.normalize_embeddings", &hp->normalize, err) != RYOT_OK)
        return RYOT_ERR_FORMAT;
    return RYOT_OK;
}

static const gguf_tensor *tensor_dims(encoder *e, const char *name, uint64_t ne0, uint64_t ne1, ryot_error *err) {
    const gguf_tensor *t = gguf_find_tensor(e->f, name);
    if (!t) {
        ryot_fail(err, RYOT_ERR_FORMAT, "model: missing tensor '%s'", name);
        return NULL;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        ryot_fail(err, RYOT_ERR_FORMAT, "model: tensor '%s' has shape [%llu, %llu], expected [%llu, %llu]", name,
                  (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (unsigned long long)ne0,
                  (unsigned long long)ne1);
        return NULL;
    }
    return t;
}

/* Matrix n_in -> n_out (or a lookup table of n_out rows) of a type the
 * kernels compute with. */
static ryot_status bind_matrix(encoder *e, model_weight *w, const char *name, int n_in, int n_out, ryot_error *err) {
    const gguf_tensor *t = tensor_dims(e, name, (uint64_t)n_in, (uint64_t)n_out, err);
    if (!t) return RYOT_ERR_FORMAT;
    const kernel_traits *kt = kernels_get(t->type);
    uint64_t rb, vrb;
    if (!kt->supported || !kt->vec_dot_rows || !ryot_row_size(t->type, (uint64_t)n_in, &rb) ||
        !ryot_row_size(kt->vec_dot_type, (uint64_t)n_in, &vrb))
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "model: tensor '%s' of type %s with rows of %d", name,
                         ryot_type_name(t->type), n_in);
    *w = (model_weight){.type = t->type, .data = t->data, .n_in = n_in, .n_out = n_out, .row_bytes = (size_t)rb};
    if (kt->vec_dot_type != RYOT_TYPE_F32 && (size_t)vrb > e->qin_bytes) e->qin_bytes = (size_t)vrb;
    return RYOT_OK;
}

static ryot_status bind_vector(encoder *e, const float **out, const char *name, int n, ryot_error *err) {
    const gguf_tensor *t = tensor_dims(e, name, (uint64_t)n, 1, err);
    if (!t) return RYOT_ERR_FORMAT;
    if (t->type != RYOT_TYPE_F32)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "model: tensor '%s' is %s (1-D tensors must be F32)", name,
                         ryot_type_name(t->type));
    *out = t->data;
    return RYOT_OK;
}

static ryot_status bind(encoder *e, ryot_error *err) {
    const encoder_hparams *hp = &e->hp;
    const int E = hp->n_embd, F = hp->n_ff;
    ryot_status st;
    if ((st = bind_matrix(e, &e->tok_embd, "token_embd.weight", E, hp->n_vocab, err))) return st;
    if ((st = bind_matrix(e, &e->pos_embd, "position_embd.weight", E, hp->n_ctx, err))) return st;
    const gguf_tensor *tt = gguf_find_tensor(e->f, "token_types.weight");
    if (!tt || tt->ne[1] < 1 || tt->ne[1] > 1024)
        return ryot_fail(err, RYOT_ERR_FORMAT, "model: missing tensor 'token_types.weight'");
    e->hp.n_types = (int)tt->ne[1];
    if ((st = bind_matrix(e, &e->type_embd, "token_types.weight", E, hp->n_types, err))) return st;
    if ((st = bind_vector(e, &e->embd_norm_w, "token_embd_norm.weight", E, err))) return st;
    if ((st = bind_vector(e, &e->embd_norm_b, "token_embd_norm.bias", E, err))) return st;
    e->layers = calloc((size_t)hp->n_layer, sizeof *e->layers);
    if (!e->layers) return ryot_fail(err, RYOT_ERR_NOMEM, "model layers");
    for (int il = 0; il < hp->n_layer; il++) {
        encoder_layer *L = &e->layers[il];
        const struct {
            model_weight *w;
            const float **b;
            const char *name;
            int n_in, n_out;
        } mats[] = {
            {&L->wq, &L->bq, "attn_q", E, E},         {&L->wk, &L->bk, "attn_k", E, E},
            {&L->wv, &L->bv, "attn_v", E, E},         {&L->wo, &L->bo, "attn_output", E, E},
            {&L->up, &L->bup, "ffn_up", E, F},        {&L->down, &L->bdown, "ffn_down", F, E},
        };
        char name[96];
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", il, mats[i].name);
            if ((st = bind_matrix(e, mats[i].w, name, mats[i].n_in, mats[i].n_out, err))) return st;
            snprintf(name, sizeof name, "blk.%d.%s.bias", il, mats[i].name);
            if ((st = bind_vector(e, mats[i].b, name, mats[i].n_out, err))) return st;
        }
        const struct {
            const float **p;
            const char *name;
        } norms[] = {
            {&L->attn_norm_w, "attn_output_norm.weight"}, {&L->attn_norm_b, "attn_output_norm.bias"},
            {&L->out_norm_w, "layer_output_norm.weight"}, {&L->out_norm_b, "layer_output_norm.bias"},
        };
        for (size_t i = 0; i < sizeof norms / sizeof *norms; i++) {
            snprintf(name, sizeof name, "blk.%d.%s", il, norms[i].name);
            if ((st = bind_vector(e, norms[i].p, name, E, err))) return st;
        }
    }
    return RYOT_OK;
}

static ryot_status alloc_buffers(encoder *e, ryot_error *err) {
    const encoder_hparams *hp = &e->hp;
    e->cap = hp->n_ctx > ENCODER_MAX_BATCH ? hp->n_ctx : ENCODER_MAX_BATCH;
    const size_t rows = (size_t)e->cap, E = (size_t)hp->n_embd;
    float **bufs[] = {&e->x, &e->q, &e->k, &e->v, &e->att, &e->tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (!(*bufs[i] = malloc(rows * E * sizeof(float)))) goto nomem;
    if (!(e->h = malloc(rows * (size_t)hp->n_ff * sizeof(float)))) goto nomem;
    if (e->qin_bytes && !(e->qin = malloc(rows * e->qin_bytes))) goto nomem;
    if (!(e->scores = malloc((size_t)e->n_threads * (size_t)hp->n_ctx * sizeof(float)))) goto nomem;
    if (!(e->tokens = malloc(rows * sizeof *e->tokens)) || !(e->pos = malloc(rows * sizeof *e->pos)) ||
        !(e->seq_start = malloc((rows + 1) * sizeof *e->seq_start)))
        goto nomem;
    return RYOT_OK;
nomem:
    return ryot_fail(err, RYOT_ERR_NOMEM, "encoder activations for %d tokens", e->cap);
}

ryot_status encoder_load(const char *path, int n_threads, encoder **out, ryot_error *err) {
    *out = NULL;
    if (n_threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = nc > 0 ? (int)nc : 1;
    }
    if (n_threads > 512) return ryot_fail(err, RYOT_ERR_INVALID, "encoder: %d threads is too many", n_threads);
    encoder *e = calloc(1, sizeof *e);
    if (!e) return ryot_fail(err, RYOT_ERR_NOMEM, "encoder");
    e->n_threads = n_threads;
    ryot_status st = gguf_open(path, &e->f, err);
    if (!st) st = load_hparams(e, err);
    if (!st) st = tokenizer_load(e->f, &e->tok, err);
    if (!st) {
        e->hp.n_vocab = tokenizer_n_vocab(e->tok);
        if (tokenizer_get_kind(e->tok) != TOKENIZER_WPM)
            st = ryot_fail(err, RYOT_ERR_UNSUPPORTED, "tokenizer.ggml.model: a bert model needs \"bert\" (WordPiece)");
    }
    if (!st) st = bind(e, err);
    if (!st) st = alloc_buffers(e, err);
    if (!st && !(e->pool = ryot_pool_new(n_threads))) st = ryot_fail(err, RYOT_ERR_NOMEM, "encoder threads");
    if (st) {
        ryot_error_prefix(err, "loading %s: ", path);
        encoder_free(e);
        return st;
    }
    gguf_str name;
    if (gguf_get_str(e->f, "general.name", &name, NULL) == RYOT_OK)
        snprintf(e->name, sizeof e->name, "%.*s", (int)(name.len < 127 ? name.len : 127), name.data);
    *out = e;
    return RYOT_OK;
}

void encoder_free(encoder *e) {
    if (!e) return;
    ryot_pool_free(e->pool);
    free(e->x);
    free(e->q);
    free(e->k);
    free(e->v);
    free(e->att);
    free(e->tmp);
    free(e->h);
    free(e->qin);
    free(e->scores);
    free(e->tokens);
    free(e->pos);
    free(e->seq_start);
    free(e->layers);
    tokenizer_free(e->tok);
    gguf_close(e->f);
    free(e);
}

const encoder_hparams *encoder_get_hparams(const encoder *e) { return &e->hp; }
const tokenizer *encoder_tokenizer(const encoder *e) { return e->tok; }
const char *encoder_name(const encoder *e) { return e->name; }
int encoder_n_threads(const encoder *e) { return e->n_threads; }

/* ---------------------------------------------------------------- steps */

typedef enum mm_epilogue {
    MM_BIAS,      /* out = W in + b */
    MM_BIAS_GELU, /* out = gelu(W in + b) */
} mm_epilogue;

typedef struct mm_job {
    const model_weight *w[3]; /* one to three weights sharing the input (Q, K, V) */
    const float *b[3];
    float *out[3];            /* (n, w->n_out) each */
    int n_w;
    const float *in;          /* (n, n_in) floats */
    const uint8_t *qin;       /* the same rows in vec_dot_type, or NULL when that is F32 */
    size_t qin_stride;
    int n;                    /* tokens */
    mm_epilogue epi;
} mm_job;

typedef struct fwd {
    encoder *e;
    const int32_t *tokens;    /* (n) */
    const int *pos;           /* (n) position inside the sentence */
    int n;
    const int *seq_start;     /* (n_seq + 1) token offsets */
    int n_seq;
    const encoder_layer *L;
    mm_job mm;
    float *ln_x;              /* LayerNorm step: x = LN(x + ln_add) */
    const float *ln_add, *ln_w, *ln_b;
    ryot_type q_type;         /* quantize step */
    int q_len;
} fwd;

/* y = (x - mean) / sqrt(var + eps) * w + b, statistics in double.  y may alias x. */
static void layernorm(float *y, const float *x, const float *w, const float *b, int n, float eps) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += x[i];
    const double mean = s / n;
    for (int i = 0; i < n; i++) {
        double d = x[i] - mean;
        s2 += d * d;
    }
    const float inv = (float)(1.0 / sqrt(s2 / n + eps)), m = (float)mean;
    for (int i = 0; i < n; i++) y[i] = (x[i] - m) * inv * w[i] + b[i];
}

#define SPLIT_ROWS 16
#define MM_TOK_BLOCK 64
#define MM_SHARES_PER_THREAD 4

static void step_matmul(void *arg, int ith, int nth) {
    const fwd *f = arg;
    const mm_job *j = &f->mm;
    long total = 0;
    for (int k = 0; k < j->n_w; k++) total += (j->w[k]->n_out + SPLIT_ROWS - 1) / SPLIT_ROWS;
    long g0, g1;
    ryot_split(total, ith, nth, &g0, &g1);
    for (int k = 0; k < j->n_w && g0 < g1; k++) {
        const model_weight *w = j->w[k];
        const long groups = (w->n_out + SPLIT_ROWS - 1) / SPLIT_ROWS;
        if (g0 >= groups) {
            g0 -= groups, g1 -= groups;
            continue;
        }
        const long r0 = g0 * SPLIT_ROWS, r1 = g1 * SPLIT_ROWS < w->n_out ? g1 * SPLIT_ROWS : w->n_out;
        const kernel_traits *kt = kernels_get(w->type);
        const bool f32 = kt->vec_dot_type == RYOT_TYPE_F32;
        const char *x = f32 ? (const char *)j->in : (const char *)j->qin;
        const size_t by = f32 ? (size_t)w->n_in * sizeof(float) : j->qin_stride;
        float *out = j->out[k];
        const size_t ldo = (size_t)w->n_out;
        const kernel_ops *ops = kernels_ops();
        for (int tb = 0; tb < j->n; tb += MM_TOK_BLOCK) {
            const int te = tb + MM_TOK_BLOCK < j->n ? tb + MM_TOK_BLOCK : j->n;
            const char *wr = (const char *)w->data + (size_t)r0 * w->row_bytes;
            float *o0 = out + (size_t)tb * ldo + r0;
            /* float weights: the register-tiled product with the bias */
            if (w->type == RYOT_TYPE_F32 && ops->gemm_f32) {
                ops->gemm_f32(w->n_in, (int)(r1 - r0), te - tb, (const float *)wr, (size_t)w->n_in,
                              j->in + (size_t)tb * w->n_in, (size_t)w->n_in, j->b[k] + r0, o0, ldo);
            } else if (w->type == RYOT_TYPE_F16 && ops->gemm_f16) {
                ops->gemm_f16(w->n_in, (int)(r1 - r0), te - tb, (const uint16_t *)wr, (size_t)w->n_in,
                              j->in + (size_t)tb * w->n_in, (size_t)w->n_in, j->b[k] + r0, o0, ldo);
            } else {
                kt->vec_dot_rows(w->n_in, r1 - r0, te - tb, wr, w->row_bytes, x + (size_t)tb * by, by, o0, ldo);
                for (int t = tb; t < te; t++) {
                    float *o = out + (size_t)t * ldo;
                    for (long r = r0; r < r1; r++) o[r] += j->b[k][r];
                }
            }
            if (j->epi == MM_BIAS_GELU)
                for (int t = tb; t < te; t++) {
                    float *o = out + (size_t)t * ldo + r0;
                    ops->gelu_erf(o, o, (int)(r1 - r0));
                }
        }
        g0 = 0;
        g1 -= groups;
    }
}

static void step_quantize(void *arg, int ith, int nth) {
    const fwd *f = arg;
    const kernel_traits *kt = kernels_get(f->q_type);
    long a, b;
    ryot_split(f->n, ith, nth, &a, &b);
    for (long t = a; t < b; t++)
        kt->from_float(f->mm.in + (size_t)t * f->q_len, (uint8_t *)f->mm.qin + (size_t)t * f->mm.qin_stride, f->q_len);
}

/* Runs the matmul job in f->mm, quantizing its input first when its weights
 * want it (all weights of one job have the same type). */
static void run_matmul(fwd *f) {
    encoder *e = f->e;
    const model_weight *w = f->mm.w[0];
    const ryot_type vt = kernels_get(w->type)->vec_dot_type;
    for (int k = 1; k < f->mm.n_w; k++) RYOT_ASSERT(kernels_get(f->mm.w[k]->type)->vec_dot_type == vt);
    f->mm.qin = NULL;
    if (vt != RYOT_TYPE_F32) {
        uint64_t rb;
        ryot_row_size(vt, (uint64_t)w->n_in, &rb);
        f->mm.qin = e->qin;
        f->mm.qin_stride = (size_t)rb;
        f->q_type = vt;
        f->q_len = (int)w->n_in;
        ryot_pool_run(e->pool, step_quantize, f);
    }
    /* more shares than threads: a thread that is descheduled mid-step (a
     * shared machine) holds up the step by a small share only, the others
     * claim the rest; the split does not change any output's bits */
    ryot_pool_run_n(e->pool, e->n_threads > 1 ? MM_SHARES_PER_THREAD * e->n_threads : 1, step_matmul, f);
}

static void matmul(fwd *f, const float *in, mm_epilogue epi, int n_w, const model_weight *const *w,
                   const float *const *b, float *const *out) {
    f->mm = (mm_job){.n_w = n_w, .in = in, .n = f->n, .epi = epi};
    for (int k = 0; k < n_w; k++) f->mm.w[k] = w[k], f->mm.b[k] = b[k], f->mm.out[k] = out[k];
    /* Q, K, V in one step only when they agree on the activation type */
    for (int k = 1; k < n_w; k++)
        if (kernels_get(w[k]->type)->vec_dot_type != kernels_get(w[0]->type)->vec_dot_type) {
            for (int i = 0; i < n_w; i++) matmul(f, in, epi, 1, &w[i], &b[i], &out[i]);
            return;
        }
    run_matmul(f);
}

static void step_embed(void *arg, int ith, int nth) {
    const fwd *f = arg;
    encoder *e = f->e;
    const int E = e->hp.n_embd;
    const kernel_traits *kt = kernels_get(e->tok_embd.type), *kp = kernels_get(e->pos_embd.type),
                        *ky = kernels_get(e->type_embd.type);
    float *row = e->tmp + (size_t)ith * E; /* tmp is free until the first attention output */
    long a, b;
    ryot_split(f->n, ith, nth, &a, &b);
    for (long t = a; t < b; t++) {
        float *x = e->x + (size_t)t * E;
        kt->to_float((const char *)e->tok_embd.data + (size_t)f->tokens[t] * e->tok_embd.row_bytes, x, E);
        kp->to_float((const char *)e->pos_embd.data + (size_t)f->pos[t] * e->pos_embd.row_bytes, row, E);
        for (int i = 0; i < E; i++) x[i] += row[i];
        ky->to_float(e->type_embd.data, row, E); /* sentence A: type 0 */
        for (int i = 0; i < E; i++) x[i] += row[i];
        layernorm(x, x, e->embd_norm_w, e->embd_norm_b, E, e->hp.eps);
    }
}

/* Units (sentence, head), dealt round-robin: share ith owns score row ith. */
static void step_attn(void *arg, int ith, int nth) {
    const fwd *f = arg;
    encoder *e = f->e;
    const encoder_hparams *hp = &e->hp;
    const int E = hp->n_embd, D = hp->head_dim;
    const float scale = 1.0f / sqrtf((float)D);
    float *s = e->scores + (size_t)ith * hp->n_ctx;
    for (long u = ith; u < (long)f->n_seq * hp->n_head; u += nth) {
        const int sq = (int)(u / hp->n_head), hd = (int)(u % hp->n_head);
        const int t0 = f->seq_start[sq], len = f->seq_start[sq + 1] - t0;
        for (int i = 0; i < len; i++) {
            const float *q = e->q + (size_t)(t0 + i) * E + (size_t)hd * D;
            float mx = -INFINITY;
            for (int j = 0; j < len; j++) {
                s[j] = ops_dot(q, e->k + (size_t)(t0 + j) * E + (size_t)hd * D, D) * scale;
                if (s[j] > mx) mx = s[j];
            }
            float sum = 0;
            for (int j = 0; j < len; j++) sum += s[j] = expf(s[j] - mx);
            float *o = e->att + (size_t)(t0 + i) * E + (size_t)hd * D;
            memset(o, 0, (size_t)D * sizeof *o);
            for (int j = 0; j < len; j++) ops_axpy(o, s[j] / sum, e->v + (size_t)(t0 + j) * E + (size_t)hd * D, D);
        }
    }
}

static void step_residual_norm(void *arg, int ith, int nth) {
    const fwd *f = arg;
    const int E = f->e->hp.n_embd;
    long a, b;
    ryot_split(f->n, ith, nth, &a, &b);
    for (long t = a; t < b; t++) {
        float *x = f->ln_x + (size_t)t * E;
        ops_add(x, f->ln_add + (size_t)t * E, E);
        layernorm(x, x, f->ln_w, f->ln_b, E, f->e->hp.eps);
    }
}

static void residual_norm(fwd *f, const float *add, const float *w, const float *b) {
    f->ln_x = f->e->x;
    f->ln_add = add;
    f->ln_w = w;
    f->ln_b = b;
    ryot_pool_run(f->e->pool, step_residual_norm, f);
}

/* Pools sentence sq's hidden states into out (n_embd floats). */
static void pool_sentence(const fwd *f, int sq, float *out) {
    const encoder *e = f->e;
    const int E = e->hp.n_embd, t0 = f->seq_start[sq], len = f->seq_start[sq + 1] - t0;
    if (e->hp.pooling == ENCODER_POOL_CLS) {
        memcpy(out, e->x + (size_t)t0 * E, (size_t)E * sizeof *out);
    } else {
        for (int i = 0; i < E; i++) {
            double acc = 0;
            for (int t = 0; t < len; t++) acc += e->x[(size_t)(t0 + t) * E + i];
            out[i] = (float)(acc / len);
        }
    }
    if (e->hp.normalize) {
        double ss = 0;
        for (int i = 0; i < E; i++) ss += (double)out[i] * out[i];
        /* sentence-transformers divides by max(norm, 1e-12) */
        const double nrm = sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12;
        for (int i = 0; i < E; i++) out[i] = (float)(out[i] / nrm);
    }
}

static void forward_chunk(fwd *f, float *out) {
    encoder *e = f->e;
    ryot_pool_run(e->pool, step_embed, f);
    for (int il = 0; il < e->hp.n_layer; il++) {
        const encoder_layer *L = f->L = &e->layers[il];
        const model_weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
        const float *bqkv[3] = {L->bq, L->bk, L->bv};
        float *oqkv[3] = {e->q, e->k, e->v};
        matmul(f, e->x, MM_BIAS, 3, qkv, bqkv, oqkv);
        ryot_pool_run(e->pool, step_attn, f);
        const model_weight *wo = &L->wo, *up = &L->up, *down = &L->down;
        matmul(f, e->att, MM_BIAS, 1, &wo, &L->bo, &e->tmp);
        residual_norm(f, e->tmp, L->attn_norm_w, L->attn_norm_b);
        matmul(f, e->x, MM_BIAS_GELU, 1, &up, &L->bup, &e->h);
        matmul(f, e->h, MM_BIAS, 1, &down, &L->bdown, &e->tmp);
        residual_norm(f, e->tmp, L->out_norm_w, L->out_norm_b);
    }
    for (int sq = 0; sq < f->n_seq; sq++) pool_sentence(f, sq, out + (size_t)sq * e->hp.n_embd);
}

ryot_status encoder_encode(encoder *e, const int32_t *const *ids, const int *n_ids, int n_seq, float *out,
                           ryot_error *err) {
    const encoder_hparams *hp = &e->hp;
    if (n_seq < 0) return ryot_fail(err, RYOT_ERR_INVALID, "encode: %d sentences", n_seq);
    for (int i = 0; i < n_seq; i++) {
        if (n_ids[i] < 1 || n_ids[i] > hp->n_ctx)
            return ryot_fail(err, RYOT_ERR_INVALID, "sentence %d: %d tokens (1 to %d)", i, n_ids[i], hp->n_ctx);
        for (int j = 0; j < n_ids[i]; j++)
            if (ids[i][j] < 0 || ids[i][j] >= hp->n_vocab)
                return ryot_fail(err, RYOT_ERR_INVALID, "sentence %d: token %d is %d, not in [0, %d)", i, j,
                                 ids[i][j], hp->n_vocab);
    }
    /* chunks of whole sentences up to cap tokens (one sentence always fits) */
    int32_t *tokens = e->tokens;
    int *pos = e->pos, *starts = e->seq_start;
    for (int s0 = 0; s0 < n_seq;) {
        int n = 0, s1 = s0;
        starts[0] = 0;
        while (s1 < n_seq && n + n_ids[s1] <= e->cap) {
            for (int j = 0; j < n_ids[s1]; j++) tokens[n + j] = ids[s1][j], pos[n + j] = j;
            n += n_ids[s1++];
            starts[s1 - s0] = n;
        }
        fwd f = {.e = e, .tokens = tokens, .pos = pos, .n = n, .seq_start = starts, .n_seq = s1 - s0};
        forward_chunk(&f, out + (size_t)s0 * hp->n_embd);
        s0 = s1;
    }
    return RYOT_OK;
}
