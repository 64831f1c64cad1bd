/* The CPU backend's forward: one function for every architecture, prefill
 * and decode.
 *
 * Steps of one layer, each one ryot_pool_run (the join is the barrier):
 *   [prep]  attn_norm (+ pending residual) and quantize     (prompt batches, post-norm archs)
 *   qkv     Q/K/V rows split by head; bias, QK-norm, RoPE, K/V -> F16 cache
 *   attn    units of (KV head with its query heads, query tile) from an atomic counter
 *   [prep]  quantize attention output                        (prompt batches)
 *   o       output projection rows; residual add (or kept for the post-norm)
 *   [prep]  ffn_norm (+ pending residual) and quantize
 *   up      gate and up rows (same split), activation fused
 *   [prep]  quantize the FFN hidden state
 *   down    down rows; residual add (or kept for the post-norm)
 * For batches of at most CPU_SMALL_BATCH tokens with no residual pending,
 * every thread normalizes and quantizes the (tiny) input itself at the start
 * of the matmul step instead of in a separate [prep] step: decode of a llama
 * model costs 5 dispatches per layer.  Each output element is computed by
 * one thread with the same code whatever the thread count, so results do
 * not depend on it. */
#include <math.h>
#include <string.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/cpu.h"
#include "backend/cpu/ops.h"
#include "kernels/kernels.h"

typedef enum prep_kind {
    PREP_ATTN_IN,  /* attn_norm(x) */
    PREP_ATTN_OUT, /* att */
    PREP_FFN_IN,   /* ffn_norm(x) */
    PREP_FFN_H,    /* gate (activated) */
    PREP_OUT_IN,   /* output_norm(x) */
} prep_kind;

typedef struct act_view {
    const char *base[CPU_MAX_SLOTS]; /* row t0 of the input in each slot's type */
    size_t stride[CPU_MAX_SLOTS];    /* bytes between rows */
} act_view;

typedef struct fwd {
    cpu_engine *e;
    const model *m;
    const model_hparams *hp;
    const int32_t *tokens;
    int n;          /* tokens in this batch */
    const backend_seq *seqs;
    int n_seqs;
    int il;
    const model_layer *L;
    const float *pending; /* post-norm weight: x += rmsnorm(delta) * pending before x is read */
    /* the input being prepared for the next matmul step */
    prep_kind kind;
    int t0, t1;     /* token rows */
    bool priv;      /* each thread prepares its own copy */
    uint32_t slots; /* bit s: slot s is needed */
} fwd;

static int slot_of(const cpu_engine *e, const model_weight *w) {
    ryot_type t = kernels_get(w->type)->vec_dot_type;
    for (int s = 0; s < e->n_slots; s++)
        if (e->slot_type[s] == t) return s;
    RYOT_ASSERT(!"weight type without an activation slot");
    return -1;
}

static int input_len(const fwd *f) {
    const model_hparams *hp = f->hp;
    switch (f->kind) {
    case PREP_ATTN_OUT: return hp->n_head * hp->head_dim_v;
    case PREP_FFN_H: return hp->n_ff;
    default: return hp->n_embd;
    }
}

static const float *input_norm_weight(const fwd *f) {
    switch (f->kind) {
    case PREP_ATTN_IN: return f->L->attn_norm;
    case PREP_FFN_IN: return f->L->ffn_norm;
    case PREP_OUT_IN: return f->m->output_norm;
    default: return NULL;
    }
}

/* Float rows of the input, from row t0: for normalized inputs they are
 * written by prep (into the thread's buffer when priv). */
static float *input_floats(const fwd *f, cpu_thread *th) {
    const cpu_engine *e = f->e;
    const model_hparams *hp = f->hp;
    switch (f->kind) {
    case PREP_ATTN_OUT: return e->att + (size_t)f->t0 * hp->n_head * hp->head_dim_v;
    case PREP_FFN_H: return e->gate + (size_t)f->t0 * hp->n_ff;
    default: return f->priv ? th->xn : e->xn + (size_t)f->t0 * hp->n_embd;
    }
}

static act_view input_view(const fwd *f, cpu_thread *th) {
    const cpu_engine *e = f->e;
    act_view v = {{0}, {0}};
    const int n_in = input_len(f);
    for (int s = 0; s < e->n_slots; s++) {
        if (!(f->slots & (1u << s))) continue;
        if (e->slot_type[s] == RYOT_TYPE_F32) {
            v.base[s] = (const char *)input_floats(f, th);
            v.stride[s] = (size_t)n_in * sizeof(float);
        } else {
            uint64_t rb;
            ryot_row_size(e->slot_type[s], (uint64_t)n_in, &rb);
            v.base[s] = f->priv ? th->q[s] : e->qbuf[s];
            v.stride[s] = (size_t)rb;
        }
    }
    return v;
}

/* Prepares input rows [a, b) (a >= t0) into the view of th (shared if !priv). */
static void prep_rows(fwd *f, int a, int b, cpu_thread *th) {
    cpu_engine *e = f->e;
    const model_hparams *hp = f->hp;
    const int n_in = input_len(f);
    const float *nw = input_norm_weight(f);
    float *src0 = input_floats(f, th);
    act_view v = input_view(f, th);
    for (int t = a; t < b; t++) {
        float *src = src0 + (size_t)(t - f->t0) * n_in;
        if (f->kind == PREP_ATTN_IN || f->kind == PREP_FFN_IN || f->kind == PREP_OUT_IN) {
            float *x = e->x + (size_t)t * hp->n_embd;
            if (f->pending) {
                RYOT_ASSERT(!f->priv);
                float *d = e->delta + (size_t)t * hp->n_embd;
                ops_rmsnorm(d, d, f->pending, hp->n_embd, hp->norm_eps);
                ops_add(x, d, hp->n_embd);
            }
            ops_rmsnorm(src, x, nw, hp->n_embd, hp->norm_eps);
        }
        for (int s = 0; s < e->n_slots; s++) {
            if (!(f->slots & (1u << s)) || e->slot_type[s] == RYOT_TYPE_F32) continue;
            kernels_get(e->slot_type[s])->from_float(src, (char *)v.base[s] + (size_t)(t - f->t0) * v.stride[s], n_in);
        }
    }
}

static void phase_prep(void *arg, int ith, int nth) {
    fwd *f = arg;
    long a, b;
    ryot_split(f->t1 - f->t0, ith, nth, &a, &b);
    prep_rows(f, f->t0 + (int)a, f->t0 + (int)b, &f->e->th[ith]);
}

/* Sets up the input of the next matmul step; runs the shared prep step
 * unless threads will prepare private copies. */
static void begin_input(fwd *f, prep_kind kind, int t0, int t1, const model_weight *const *ws, int n_ws) {
    f->kind = kind;
    f->t0 = t0;
    f->t1 = t1;
    f->slots = 0;
    for (int i = 0; i < n_ws; i++) f->slots |= 1u << slot_of(f->e, ws[i]);
    f->priv = t1 - t0 <= CPU_SMALL_BATCH && !f->pending;
    if (!f->priv) {
        ryot_pool_run(f->e->pool, phase_prep, f);
        f->pending = NULL;
    }
}

/* At the start of a matmul step: the input view of share ith.  Private
 * copies are per thread (the step then runs one share per thread); shared
 * inputs need no per-share state, so the step may run more shares than
 * threads (see run_step). */
static act_view step_input(fwd *f, int ith) {
    cpu_thread *th = f->priv ? &f->e->th[ith] : NULL;
    if (f->priv) prep_rows(f, f->t0, f->t1, th);
    return input_view(f, th);
}

/* Shares per thread of a matmul step over a shared input: claimed by
 * whichever thread is free, so a thread slowed by the OS or a noisy
 * neighbour no longer holds the other at the step's barrier.  Each output
 * element is still computed by one kernel call whatever the split (the
 * kernels' per-pair results do not depend on the tile shape). */
#define STEP_SHARES_PER_THREAD 8

/* Weight rows [*lo, *hi) of n for share ith of nth, in whole groups of
 * SPLIT_ROWS: the element-wise ops fused into a step (activation, residual
 * add, softcap) treat an element in a vector lane or in a scalar tail, so
 * every range but the last must be a multiple of the vector width for an
 * element's result not to depend on the split. */
#define SPLIT_ROWS 16
static long row_groups(long n) { return (n + SPLIT_ROWS - 1) / SPLIT_ROWS; }
static void split_rows(long n, int ith, int nth, long *lo, long *hi) {
    ryot_split(row_groups(n), ith, nth, lo, hi);
    *lo *= SPLIT_ROWS;
    *hi = SPLIT_ROWS * *hi < n ? SPLIT_ROWS * *hi : n;
    if (*lo > n) *lo = n;
}

/* Runs matmul step fn over `units` work units (heads, or groups of SPLIT_ROWS rows). */
static void run_step(fwd *f, ryot_pool_fn fn, long units) {
    const int nth = ryot_pool_size(f->e->pool);
    long n = f->priv || nth == 1 ? nth : (long)nth * STEP_SHARES_PER_THREAD;
    if (n > units) n = units > nth ? units : nth;
    ryot_pool_run_n(f->e->pool, (int)n, fn, f);
}

/* out[t*ldo + r] = W[r] . in[t] for rows [r0, r1), tokens t in [0, n). */
#define MM_ROW_BLOCK 64
#define MM_TOK_BLOCK 64
static void matmul(const cpu_engine *e, const model_weight *w, long r0, long r1, const act_view *in, int n, float *out,
                   size_t ldo) {
    if (r0 >= r1 || n <= 0) return;
    const kernel_traits *kt = kernels_get(w->type);
    const int s = slot_of(e, w);
    const char *x = in->base[s];
    const size_t by = in->stride[s];
    if (n <= CPU_SMALL_BATCH) {
        kt->vec_dot_rows(w->n_in, r1 - r0, n, (const char *)w->data + (size_t)r0 * w->row_bytes, w->row_bytes, x, by,
                         out + r0, ldo);
        return;
    }
    for (long rb = r0; rb < r1; rb += MM_ROW_BLOCK) {
        const long re = rb + MM_ROW_BLOCK < r1 ? rb + MM_ROW_BLOCK : r1;
        for (int tb = 0; tb < n; tb += MM_TOK_BLOCK) {
            const int te = tb + MM_TOK_BLOCK < n ? tb + MM_TOK_BLOCK : n;
            kt->vec_dot_rows(w->n_in, re - rb, te - tb, (const char *)w->data + (size_t)rb * w->row_bytes,
                             w->row_bytes, x + (size_t)tb * by, by, out + (size_t)tb * ldo + rb, ldo);
        }
    }
}

/* ------------------------------------------------------------------ steps */

static void phase_embed(void *arg, int ith, int nth) {
    fwd *f = arg;
    cpu_engine *e = f->e;
    const model_hparams *hp = f->hp;
    const model *m = f->m;
    const kernel_traits *kt = kernels_get(m->tok_embd.type);
    long a, b;
    ryot_split(f->n, ith, nth, &a, &b);
    for (long t = a; t < b; t++) {
        float *x = e->x + (size_t)t * hp->n_embd;
        kt->to_float((const char *)m->tok_embd.data + (size_t)f->tokens[t] * m->tok_embd.row_bytes, x, hp->n_embd);
        if (hp->embd_scale != 1.0f) ops_scale(x, hp->embd_scale, hp->n_embd);
        const int p = e->tok_pos[t];
        ops_rope_cache(e->rope_cs + (size_t)t * hp->rope_dim, p, hp->rope_dim, hp->rope_base, hp->rope_freq_scale,
                       m->rope_freqs);
        if (e->rope_cs_swa)
            ops_rope_cache(e->rope_cs_swa + (size_t)t * hp->rope_dim, p, hp->rope_dim, hp->rope_base_swa,
                           hp->rope_freq_scale_swa, m->rope_freqs);
    }
}

static void phase_qkv(void *arg, int ith, int nth) {
    fwd *f = arg;
    cpu_engine *e = f->e;
    const model_hparams *hp = f->hp;
    const model_layer *L = f->L;
    const act_view in = step_input(f, ith);
    const int nq = hp->n_head, nkv = hp->n_head_kv, n = f->n;
    const bool swa = model_layer_is_swa(hp, f->il);
    const float *cs = swa && e->rope_cs_swa ? e->rope_cs_swa : e->rope_cs;
    const kernel_traits *f16 = kernels_get(RYOT_TYPE_F16);
    long u0, u1;
    ryot_split(nq + 2 * nkv, ith, nth, &u0, &u1);
    for (long u = u0; u < u1; u++) {
        const model_weight *w;
        const float *bias;
        float *out;
        int h, hd;
        size_t ld;
        uint16_t *cache = NULL;
        if (u < nq) {
            h = (int)u, hd = hp->head_dim, w = &L->wq, bias = L->bq, out = e->q, ld = (size_t)nq * hd;
        } else if (u < nq + nkv) {
            h = (int)u - nq, hd = hp->head_dim, w = &L->wk, bias = L->bk, out = e->k, ld = (size_t)nkv * hd;
            cache = e->k_cache;
        } else {
            h = (int)u - nq - nkv, hd = hp->head_dim_v, w = &L->wv, bias = L->bv, out = e->v, ld = (size_t)nkv * hd;
            cache = e->v_cache;
        }
        matmul(e, w, (long)h * hd, (long)(h + 1) * hd, &in, n, out, ld);
        const bool is_v = u >= nq + nkv;
        const float *qkn = u < nq ? L->q_norm : L->k_norm;
        for (int t = 0; t < n; t++) {
            float *y = out + (size_t)t * ld + (size_t)h * hd;
            if (bias) ops_add(y, bias + (size_t)h * hd, hd);
            if (!is_v) {
                if (qkn) ops_rmsnorm(y, y, qkn, hd, hp->norm_eps);
                ops_rope(y, hp->rope_dim, cs + (size_t)t * hp->rope_dim, hp->rope);
            }
            if (cache) {
                const int p = e->tok_pos[t];
                const size_t blk = (size_t)f->seqs[e->tok_seq[t]].blocks[p / e->bs];
                f16->from_float(y, cache + (((blk * hp->n_layer + f->il) * nkv + h) * e->bs + p % e->bs) * hd, hd);
            }
        }
    }
}

/* Split-KV decode of a single-token sequence: its part range, or false. */
static bool attn_split(const fwd *f, const backend_seq *sq, int *kv_first, int *n_parts) {
    const model_hparams *hp = f->hp;
    const int window = model_layer_is_swa(hp, f->il) ? hp->sliding_window : 0;
    const int kv_end = sq->pos + sq->n;
    const int kv_lo = window > 0 && sq->pos - window + 1 > 0 ? sq->pos - window + 1 : 0;
    if (sq->n != 1 || kv_end - kv_lo <= CPU_SPLIT_MIN) return false;
    *kv_first = kv_lo / CPU_SPLIT_CHUNK * CPU_SPLIT_CHUNK;
    *n_parts = (kv_end - *kv_first + CPU_SPLIT_CHUNK - 1) / CPU_SPLIT_CHUNK;
    return true;
}

/* Attention work units of sequence s in layer il (split parts or query tiles, per KV head). */
static int attn_units(const fwd *f, const backend_seq *sq) {
    const model_hparams *hp = f->hp;
    int kv_first, n_parts;
    if (attn_split(f, sq, &kv_first, &n_parts)) return hp->n_head_kv * n_parts;
    const int tq = attn_tile_q(hp->n_head / hp->n_head_kv);
    return hp->n_head_kv * ((sq->n + tq - 1) / tq);
}

static void phase_attn(void *arg, int ith, int nth) {
    (void)nth;
    fwd *f = arg;
    cpu_engine *e = f->e;
    const model_hparams *hp = f->hp;
    const int nq = hp->n_head, nkv = hp->n_head_kv, group = nq / nkv;
    const attn_desc d = {
        .head_dim = hp->head_dim,
        .head_dim_v = hp->head_dim_v,
        .scale = hp->attn_scale,
        .window = model_layer_is_swa(hp, f->il) ? hp->sliding_window : 0,
        .ops = e->ops,
    };
    const size_t ldq = (size_t)nq * hp->head_dim, ldo = (size_t)nq * hp->head_dim_v;
    const size_t kstride = (size_t)hp->n_layer * nkv * e->bs * hp->head_dim;
    const size_t vstride = (size_t)hp->n_layer * nkv * e->bs * hp->head_dim_v;
    const int total = e->seg_unit[f->n_seqs];
    int s = 0, t0 = 0; /* sequence of the unit and its first row */
    for (;;) {
        const int u = atomic_fetch_add_explicit(&e->next_unit, 1, memory_order_relaxed);
        if (u >= total) break;
        while (u >= e->seg_unit[s + 1]) t0 += f->seqs[s++].n;
        const backend_seq *sq = &f->seqs[s];
        const int lu = u - e->seg_unit[s];
        const int kvh = lu % nkv, h0 = kvh * group;
        const size_t hoff = ((size_t)f->il * nkv + kvh) * e->bs;
        const attn_kv kv = {
            .k = e->k_cache + hoff * hp->head_dim,
            .v = e->v_cache + hoff * hp->head_dim_v,
            .blocks = sq->blocks,
            .k_block_stride = kstride,
            .v_block_stride = vstride,
            .block_size = e->bs,
        };
        const float *q = e->q + (size_t)t0 * ldq;
        float *att = e->att + (size_t)t0 * ldo;
        int kv_first, n_parts;
        if (attn_split(f, sq, &kv_first, &n_parts)) {
            /* units (KV head, part); the last part to finish merges its head */
            const int part = lu / nkv;
            const int ka = kv_first + part * CPU_SPLIT_CHUNK;
            const size_t slot = (size_t)s * nkv + kvh;
            float *parts = e->attn_part + slot * e->max_split * e->part_floats;
            attn_partial_kv(&d, q + (size_t)h0 * hp->head_dim, ldq, 1, group, sq->pos, ka, ka + CPU_SPLIT_CHUNK, &kv,
                            parts + (size_t)part * e->part_floats, e->th[ith].attn);
            if (atomic_fetch_add_explicit(&e->attn_split_done[slot], 1, memory_order_acq_rel) == n_parts - 1)
                attn_merge(&d, 1, group, parts, e->part_floats, n_parts, att + (size_t)h0 * hp->head_dim_v, ldo);
            continue;
        }
        const int tq = attn_tile_q(group);
        const int n_qt = (sq->n + tq - 1) / tq;
        const int qt = n_qt - 1 - lu / nkv; /* longest (latest) query tiles first */
        const int i0 = qt * tq;
        const int nqi = sq->n - i0 < tq ? sq->n - i0 : tq;
        attn_flash_kv(&d, q + (size_t)i0 * ldq + (size_t)h0 * hp->head_dim, ldq, nqi, group, sq->pos + i0, &kv,
                      att + (size_t)i0 * ldo + (size_t)h0 * hp->head_dim_v, ldo, e->th[ith].attn);
    }
}

/* delta = W in, for the rows of this thread; residual add unless a post-norm
 * must see the whole row first. */
static void project_residual(fwd *f, const model_weight *w, const act_view *in, int ith, int nth) {
    cpu_engine *e = f->e;
    const int E = f->hp->n_embd;
    long r0, r1;
    split_rows(E, ith, nth, &r0, &r1);
    matmul(e, w, r0, r1, in, f->n, e->delta, (size_t)E);
    if (!f->hp->post_norms)
        for (int t = 0; t < f->n; t++)
            ops_add(e->x + (size_t)t * E + r0, e->delta + (size_t)t * E + r0, (int)(r1 - r0));
}

static void phase_o(void *arg, int ith, int nth) {
    fwd *f = arg;
    const act_view in = step_input(f, ith);
    project_residual(f, &f->L->wo, &in, ith, nth);
}

static void phase_up(void *arg, int ith, int nth) {
    fwd *f = arg;
    cpu_engine *e = f->e;
    const int F = f->hp->n_ff;
    const act_view in = step_input(f, ith);
    long r0, r1;
    split_rows(F, ith, nth, &r0, &r1);
    matmul(e, &f->L->w_gate, r0, r1, &in, f->n, e->gate, (size_t)F);
    matmul(e, &f->L->w_up, r0, r1, &in, f->n, e->up, (size_t)F);
    for (int t = 0; t < f->n; t++) {
        float *g = e->gate + (size_t)t * F + r0;
        const float *u = e->up + (size_t)t * F + r0;
        if (f->hp->act == FFN_ACT_SILU)
            e->ops->silu_mul(g, g, u, (int)(r1 - r0));
        else
            e->ops->gelu_mul(g, g, u, (int)(r1 - r0));
    }
}

static void phase_down(void *arg, int ith, int nth) {
    fwd *f = arg;
    const act_view in = step_input(f, ith);
    project_residual(f, &f->L->w_down, &in, ith, nth);
}

static void phase_logits(void *arg, int ith, int nth) {
    fwd *f = arg;
    cpu_engine *e = f->e;
    const int nv = f->hp->n_vocab;
    const act_view in = step_input(f, ith);
    long r0, r1;
    split_rows(nv, ith, nth, &r0, &r1);
    matmul(e, &f->m->output, r0, r1, &in, f->t1 - f->t0, e->logits, (size_t)nv);
    if (f->hp->final_softcap > 0.0f)
        for (int t = 0; t < f->t1 - f->t0; t++)
            ops_softcap(e->logits + (size_t)t * nv + r0, f->hp->final_softcap, (int)(r1 - r0));
}

/* Moves the rows that need logits to the front (rows out_rows[i] -> i;
 * out_rows ascending, so no source is overwritten before it is read). */
static void gather_out_rows(cpu_engine *e, int k, bool pending) {
    const size_t E = (size_t)e->m->hp.n_embd;
    for (int i = 0; i < k; i++) {
        const int r = e->out_rows[i];
        if (r == i) continue;
        memcpy(e->x + i * E, e->x + (size_t)r * E, E * sizeof(float));
        if (pending) memcpy(e->delta + i * E, e->delta + (size_t)r * E, E * sizeof(float));
    }
}

void cpu_forward(void *state, const int32_t *tokens, int n, const backend_seq *seqs, int n_seqs, float *logits) {
    cpu_engine *e = state;
    e->logits = logits;
    const model *m = e->m;
    const model_hparams *hp = &m->hp;
    fwd f = {.e = e, .m = m, .hp = hp, .tokens = tokens, .n = n, .seqs = seqs, .n_seqs = n_seqs};
    int n_out = 0;
    for (int s = 0, t = 0; s < n_seqs; s++) {
        for (int i = 0; i < seqs[s].n; i++, t++) {
            e->tok_pos[t] = seqs[s].pos + i;
            e->tok_seq[t] = s;
            if (i >= seqs[s].n - seqs[s].n_logits) e->out_rows[n_out++] = t;
        }
    }
    ryot_pool_run(e->pool, phase_embed, &f);
    for (int il = 0; il < hp->n_layer; il++) {
        const model_layer *L = &m->layers[il];
        f.il = il;
        f.L = L;
        const model_weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
        begin_input(&f, PREP_ATTN_IN, 0, n, qkv, 3);
        run_step(&f, phase_qkv, hp->n_head + 2 * hp->n_head_kv);
        atomic_store_explicit(&e->next_unit, 0, memory_order_relaxed);
        e->seg_unit[0] = 0;
        for (int s = 0; s < n_seqs; s++) {
            e->seg_unit[s + 1] = e->seg_unit[s] + attn_units(&f, &seqs[s]);
            for (int h = 0; h < hp->n_head_kv; h++)
                atomic_store_explicit(&e->attn_split_done[(size_t)s * hp->n_head_kv + h], 0, memory_order_relaxed);
        }
        ryot_pool_run(e->pool, phase_attn, &f);
        const model_weight *wo = &L->wo;
        begin_input(&f, PREP_ATTN_OUT, 0, n, &wo, 1);
        run_step(&f, phase_o, row_groups(hp->n_embd));
        f.pending = hp->post_norms ? L->post_attn_norm : NULL;
        const model_weight *gu[2] = {&L->w_gate, &L->w_up};
        begin_input(&f, PREP_FFN_IN, 0, n, gu, 2);
        run_step(&f, phase_up, row_groups(hp->n_ff));
        const model_weight *wd = &L->w_down;
        begin_input(&f, PREP_FFN_H, 0, n, &wd, 1);
        run_step(&f, phase_down, row_groups(hp->n_embd));
        f.pending = hp->post_norms ? L->post_ffn_norm : NULL;
    }
    if (n_out > 0) {
        gather_out_rows(e, n_out, f.pending != NULL);
        const model_weight *wout = &m->output;
        begin_input(&f, PREP_OUT_IN, 0, n_out, &wout, 1);
        run_step(&f, phase_logits, row_groups(hp->n_vocab));
    }
}
