/* The CPU backend's creation: one pass over the model decides every
 * buffer's size, then everything is allocated here and nowhere else. */
#include "backend/cpu/cpu.h"

#include <stdlib.h>
#include <string.h>

#include "backend/cpu/attention.h"
#include "kernels/kernels.h"

static void cpu_destroy(void *state);

/* The backend's buffers are allocated once here.  Those every batch uses (KV cache,
 * activations) are also written here, so their pages are resident from the
 * start: the process's RSS is its working size before the first request (a
 * server's memory does not creep up as new KV blocks or larger batches are
 * first used, and a soak measures leaks, not first touches).  The two sized
 * for a worst case that typical loads never reach -- logits rows for every
 * running sequence at once, split-KV partial states for every sequence past
 * CPU_SPLIT_MIN keys -- are left untouched (alloc_lazy): their pages
 * become resident as far as they are used, at most their full size (12.6 MB
 * and 5 MB for SmolLM2 at the server's defaults). */
static void *alloc_pages(size_t bytes, bool touch, bool *ok) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, bytes)) {
        *ok = false;
        return NULL;
    }
    if (touch) memset(p, 0, bytes);
    return p;
}

static void *alloc_aligned(size_t bytes, bool *ok) { return alloc_pages(bytes, true, ok); }
static void *alloc_lazy(size_t bytes, bool *ok) { return alloc_pages(bytes, false, ok); }

/* size = a*b*c*d elements of `elem` bytes, false on overflow */
static bool mul_size(size_t *out, size_t elem, size_t a, size_t b, size_t c, size_t d) {
    size_t r = elem;
    size_t f[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        if (f[i] && r > SIZE_MAX / f[i]) return false;
        r *= f[i];
    }
    *out = r;
    return true;
}

static int slot_add(cpu_engine *e, ryot_type t, int64_t n_in) {
    int s;
    for (s = 0; s < e->n_slots; s++)
        if (e->slot_type[s] == t) break;
    if (s == e->n_slots) {
        if (s == CPU_MAX_SLOTS) return -1;
        e->slot_type[s] = t;
        e->slot_row_max[s] = 0;
        e->n_slots++;
    }
    uint64_t rb = 0;
    RYOT_ASSERT(ryot_row_size(t, (uint64_t)n_in, &rb)); /* checked at binding */
    if (rb > e->slot_row_max[s]) e->slot_row_max[s] = (size_t)rb;
    return s;
}

static bool slots_for(cpu_engine *e, const model_weight *w) {
    return slot_add(e, kernels_get(w->type)->vec_dot_type, w->n_in) >= 0;
}

static ryot_status cpu_create(const backend_config *p, void **state, ryot_error *err) {
    *state = NULL;
    const model *m = p->m;
    const model_hparams *hp = &m->hp;
    cpu_engine *e = calloc(1, sizeof *e);
    if (!e) return ryot_fail(err, RYOT_ERR_NOMEM, "context: out of memory");
    e->m = m;
    e->n_batch = p->n_batch;
    e->n_threads = p->n_threads;
    e->bs = p->block_size;
    e->n_kv_blocks = p->n_kv_blocks;
    e->max_seqs = p->max_seqs;
    atomic_init(&e->next_unit, 0);
    kernels_init(KERNEL_ISA_AUTO);
    e->ops = kernels_ops();

    bool ok = true;
    for (int il = 0; il < hp->n_layer && ok; il++) {
        const model_layer *l = &m->layers[il];
        ok = slots_for(e, &l->wq) && slots_for(e, &l->wk) && slots_for(e, &l->wv) && slots_for(e, &l->wo) &&
             slots_for(e, &l->w_gate) && slots_for(e, &l->w_up) && slots_for(e, &l->w_down);
    }
    ok = ok && slots_for(e, &m->output);
    if (!ok) {
        free(e);
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "context: the model mixes more than %d activation types",
                         CPU_MAX_SLOTS);
    }
    const size_t E = (size_t)hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim,
                 K = (size_t)hp->n_head_kv * hp->head_dim, V = (size_t)hp->n_head_kv * hp->head_dim_v,
                 O = (size_t)hp->n_head * hp->head_dim_v, F = (size_t)hp->n_ff, B = (size_t)p->n_batch;
    e->max_in = E > O ? E : O;
    if (F > e->max_in) e->max_in = F;

    size_t kbytes, vbytes;
    const size_t kv_pos = (size_t)p->n_kv_blocks * (size_t)p->block_size;
    ok = mul_size(&kbytes, 2, (size_t)hp->n_layer, (size_t)hp->n_head_kv, kv_pos, (size_t)hp->head_dim) &&
         mul_size(&vbytes, 2, (size_t)hp->n_layer, (size_t)hp->n_head_kv, kv_pos, (size_t)hp->head_dim_v);
    if (!ok) {
        free(e);
        return ryot_fail(err, RYOT_ERR_INVALID, "context: KV cache size overflows");
    }
    e->k_cache = alloc_aligned(kbytes, &ok);
    e->v_cache = alloc_aligned(vbytes, &ok);
    e->tok_pos = alloc_aligned(B * sizeof(int32_t), &ok);
    e->tok_seq = alloc_aligned(B * sizeof(int32_t), &ok);
    e->seg_unit = alloc_aligned(((size_t)p->max_seqs + 1) * sizeof(int), &ok);
    e->out_rows = alloc_aligned((size_t)p->n_logits_max * sizeof(int32_t), &ok);
    e->x = alloc_aligned(B * E * sizeof(float), &ok);
    e->xn = alloc_aligned(B * E * sizeof(float), &ok);
    e->q = alloc_aligned(B * Q * sizeof(float), &ok);
    e->k = alloc_aligned(B * K * sizeof(float), &ok);
    e->v = alloc_aligned(B * V * sizeof(float), &ok);
    e->att = alloc_aligned(B * O * sizeof(float), &ok);
    e->delta = alloc_aligned(B * E * sizeof(float), &ok);
    e->gate = alloc_aligned(B * F * sizeof(float), &ok);
    e->up = alloc_aligned(B * F * sizeof(float), &ok);
    for (int s = 0; s < e->n_slots; s++) e->qbuf[s] = alloc_aligned(B * e->slot_row_max[s], &ok);
    e->rope_cs = alloc_aligned(B * (size_t)hp->rope_dim * sizeof(float), &ok);
    if (hp->sliding_window > 0 &&
        (hp->rope_base_swa != hp->rope_base || hp->rope_freq_scale_swa != hp->rope_freq_scale))
        e->rope_cs_swa = alloc_aligned(B * (size_t)hp->rope_dim * sizeof(float), &ok);
    {
        const size_t group = (size_t)(hp->n_head / hp->n_head_kv);
        e->part_floats = group * ((size_t)hp->head_dim_v + 2);
        e->max_split = (p->n_ctx + CPU_SPLIT_CHUNK - 1) / CPU_SPLIT_CHUNK + 1;
        size_t pbytes = 0;
        ok = ok && mul_size(&pbytes, sizeof(float), (size_t)p->max_seqs * hp->n_head_kv, (size_t)e->max_split,
                            e->part_floats, 1);
        e->attn_part = alloc_lazy(pbytes, &ok);
        e->attn_split_done = calloc((size_t)p->max_seqs * hp->n_head_kv, sizeof *e->attn_split_done);
        ok = ok && e->attn_split_done;
    }
    e->th = calloc((size_t)p->n_threads, sizeof *e->th);
    ok = ok && e->th;
    attn_desc ad = {.head_dim = hp->head_dim, .head_dim_v = hp->head_dim_v};
    for (int t = 0; ok && t < p->n_threads; t++) {
        cpu_thread *th = &e->th[t];
        th->xn = alloc_aligned(CPU_SMALL_BATCH * e->max_in * sizeof(float), &ok);
        for (int s = 0; s < e->n_slots; s++) th->q[s] = alloc_aligned(CPU_SMALL_BATCH * e->slot_row_max[s], &ok);
        th->attn = alloc_aligned(attn_scratch_floats(&ad) * sizeof(float), &ok);
    }
    if (ok && p->share_workers) {
        const cpu_engine *o = p->share_workers;
        e->pool = o->pool;
        e->pool_shared = true;
        ok = o->n_threads == p->n_threads;
    } else if (ok) {
        e->pool = ryot_pool_new(p->n_threads);
        ok = e->pool != NULL;
    }
    if (!ok) {
        cpu_destroy(e);
        return ryot_fail(err, RYOT_ERR_NOMEM, "context: out of memory (n_ctx %d, n_batch %d)", p->n_ctx, p->n_batch);
    }
    /* Unwritten cache positions are never read, but zero them so the memory
     * is committed now rather than during the first long prompt. */
    memset(e->k_cache, 0, kbytes);
    memset(e->v_cache, 0, vbytes);
    *state = e;
    return RYOT_OK;
}

static void cpu_destroy(void *state) {
    cpu_engine *e = state;
    if (!e) return;
    if (!e->pool_shared) ryot_pool_free(e->pool);
    if (e->th)
        for (int t = 0; t < e->n_threads; t++) {
            free(e->th[t].xn);
            for (int s = 0; s < CPU_MAX_SLOTS; s++) free(e->th[t].q[s]);
            free(e->th[t].attn);
        }
    free(e->th);
    free(e->k_cache);
    free(e->v_cache);
    free(e->tok_pos);
    free(e->tok_seq);
    free(e->seg_unit);
    free(e->out_rows);
    free(e->x);
    free(e->xn);
    free(e->q);
    free(e->k);
    free(e->v);
    free(e->att);
    free(e->delta);
    free(e->gate);
    free(e->up);
    for (int s = 0; s < CPU_MAX_SLOTS; s++) free(e->qbuf[s]);
    free(e->rope_cs);
    free(e->rope_cs_swa);
    free(e->attn_part);
    free((void *)e->attn_split_done);
    free(e);
}

static void cpu_kv_block(void *state, int32_t blk, uint16_t **k, uint16_t **v) {
    cpu_engine *e = state;
    const model_hparams *hp = &e->m->hp;
    RYOT_ASSERT(blk >= 0 && blk < e->n_kv_blocks);
    const size_t rows = (size_t)blk * (size_t)hp->n_layer * (size_t)hp->n_head_kv * (size_t)e->bs;
    *k = e->k_cache + rows * (size_t)hp->head_dim;
    *v = e->v_cache + rows * (size_t)hp->head_dim_v;
}

static const backend_ops cpu_ops = {
    .name = "cpu",
    .exact_rows_ctx = CPU_SPLIT_MIN,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .forward = cpu_forward,
    .sync = NULL,
    .kv_block = cpu_kv_block,
};

const backend_ops *backend_cpu(void) { return &cpu_ops; }
