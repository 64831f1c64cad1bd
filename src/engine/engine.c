/* Engine contexts: parameters checked and defaulted, the backend created
 * for them; batches checked, then run by the backend (engine_forward), and
 * engine_decode's single sequence split into chunks. */
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>


engine_params engine_params_default(const model *m) {
    engine_params p = {0};
    p.n_ctx = m && m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    p.n_batch = 512;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    p.n_threads = nc > 0 ? (int)nc : 1;
    p.n_logits_max = 1;
    p.kv_block_size = 64;
    p.kv_blocks = 0;
    p.max_seqs = 1;
    return p;
}

ryot_status engine_new(const model *m, const engine_params *pp, engine **out, ryot_error *err) {
    *out = NULL;
    engine_params p = pp ? *pp : engine_params_default(m);
    engine_params d = engine_params_default(m);
    if (p.n_ctx <= 0) p.n_ctx = d.n_ctx;
    if (p.n_batch <= 0) p.n_batch = d.n_batch;
    if (p.n_threads <= 0) p.n_threads = d.n_threads;
    if (p.n_logits_max <= 0) p.n_logits_max = 1;
    if (p.kv_block_size <= 0) p.kv_block_size = d.kv_block_size;
    if (p.max_seqs <= 0) p.max_seqs = 1;
    if (p.kv_block_size < 16 || p.kv_block_size > 256 || (p.kv_block_size & (p.kv_block_size - 1)))
        return ryot_fail(err, RYOT_ERR_INVALID, "context: KV block size %d is not a power of two in 16..256",
                         p.kv_block_size);
    if (p.kv_blocks <= 0) p.kv_blocks = (p.n_ctx + p.kv_block_size - 1) / p.kv_block_size;
    if (p.kv_blocks > (1 << 24) || p.max_seqs > 4096)
        return ryot_fail(err, RYOT_ERR_INVALID, "context: %d KV blocks / %d sequences is too many", p.kv_blocks,
                         p.max_seqs);
    if (p.n_ctx > (1 << 24)) return ryot_fail(err, RYOT_ERR_INVALID, "context: n_ctx %d is too large", p.n_ctx);
    if (p.n_threads > 512) return ryot_fail(err, RYOT_ERR_INVALID, "context: %d threads is too many", p.n_threads);
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_batch > 65536) p.n_batch = 65536;
    if (p.n_logits_max > p.n_batch)
        return ryot_fail(err, RYOT_ERR_INVALID, "context: n_logits_max %d exceeds n_batch %d", p.n_logits_max,
                         p.n_batch);

    const size_t nv = (size_t)m->hp.n_vocab;
    if ((size_t)p.n_logits_max > SIZE_MAX / sizeof(float) / nv)
        return ryot_fail(err, RYOT_ERR_INVALID, "context: %d logits rows overflow", p.n_logits_max);
    engine *e = calloc(1, sizeof *e);
    if (!e) return ryot_fail(err, RYOT_ERR_NOMEM, "context: out of memory");
    e->m = m;
    e->n_ctx = p.n_ctx;
    e->n_batch = p.n_batch;
    e->n_threads = p.n_threads;
    e->n_logits_max = p.n_logits_max;
    e->bs = p.kv_block_size;
    e->n_kv_blocks = p.kv_blocks;
    e->max_seqs = p.max_seqs;
    e->be = backend_cpu();
    /* the logits rows are sized for every running sequence at once, which
     * typical loads never reach: malloc leaves the pages untouched until used */
    e->logits = malloc((size_t)p.n_logits_max * nv * sizeof(float));
    e->own_blocks = malloc((size_t)p.kv_blocks * sizeof *e->own_blocks);
    if (!e->logits || !e->own_blocks) {
        engine_free(e);
        return ryot_fail(err, RYOT_ERR_NOMEM, "context: out of memory");
    }
    for (int b = 0; b < p.kv_blocks; b++) e->own_blocks[b] = b;
    const backend_config cfg = {.m = m,
                                .n_ctx = p.n_ctx,
                                .n_batch = p.n_batch,
                                .n_threads = p.n_threads,
                                .n_logits_max = p.n_logits_max,
                                .block_size = p.kv_block_size,
                                .n_kv_blocks = p.kv_blocks,
                                .max_seqs = p.max_seqs,
                                .share_workers = p.share_workers && p.share_workers->be == e->be
                                                     ? p.share_workers->bk
                                                     : NULL};
    ryot_status st = e->be->create(&cfg, &e->bk, err);
    if (st) {
        engine_free(e);
        return st;
    }
    *out = e;
    return RYOT_OK;
}

void engine_free(engine *e) {
    if (!e) return;
    if (e->bk) e->be->destroy(e->bk);
    free(e->own_blocks);
    free(e->logits);
    free(e);
}

int engine_exact_rows_ctx(const engine *e) { return e->be->exact_rows_ctx; }

const float *engine_logits(const engine *e, int i) {
    RYOT_ASSERT(i >= 0 && i < e->n_logits);
    return e->logits + (size_t)i * e->m->hp.n_vocab;
}

/* A checked batch through the backend; n_out logits rows come back. */
static void run_batch(engine *e, const int32_t *tokens, int n, const engine_seq *seqs, int n_seqs, int n_out) {
    e->n_logits = 0;
    e->be->forward(e->bk, tokens, n, seqs, n_seqs, e->logits);
    if (e->be->sync) e->be->sync(e->bk);
    e->n_logits = n_out;
}

static ryot_status check_tokens(const engine *e, const int32_t *tokens, int n, ryot_error *err) {
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= e->m->hp.n_vocab)
            return ryot_fail(err, RYOT_ERR_INVALID, "decode: token %d at index %d is outside the vocabulary (%d)",
                             tokens[i], i, e->m->hp.n_vocab);
    return RYOT_OK;
}

ryot_status engine_forward(engine *e, const int32_t *tokens, int n, const engine_seq *seqs, int n_seqs,
                           ryot_error *err) {
    if (n <= 0 || n > e->n_batch)
        return ryot_fail(err, RYOT_ERR_INVALID, "forward: %d tokens (batch holds 1..%d)", n, e->n_batch);
    if (n_seqs <= 0 || n_seqs > e->max_seqs)
        return ryot_fail(err, RYOT_ERR_INVALID, "forward: %d sequences (context holds 1..%d)", n_seqs, e->max_seqs);
    int total = 0, n_out = 0;
    for (int s = 0; s < n_seqs; s++) {
        const engine_seq *q = &seqs[s];
        if (q->n <= 0 || q->pos < 0 || q->n_logits < 0 || q->n_logits > q->n)
            return ryot_fail(err, RYOT_ERR_INVALID, "forward: sequence %d: bad range (pos %d, n %d, logits %d)", s,
                             q->pos, q->n, q->n_logits);
        if ((int64_t)q->pos + q->n > (int64_t)q->n_blocks * e->bs)
            return ryot_fail(err, RYOT_ERR_INVALID, "forward: sequence %d: positions up to %d need more than %d blocks",
                             s, q->pos + q->n - 1, q->n_blocks);
        const int nb = (q->pos + q->n + e->bs - 1) / e->bs;
        for (int b = 0; b < nb; b++)
            if (q->blocks[b] < 0 || q->blocks[b] >= e->n_kv_blocks)
                return ryot_fail(err, RYOT_ERR_INVALID, "forward: sequence %d: block id %d out of range", s,
                                 q->blocks[b]);
        total += q->n;
        n_out += q->n_logits;
    }
    if (total != n) return ryot_fail(err, RYOT_ERR_INVALID, "forward: sequences hold %d tokens, batch %d", total, n);
    if (n_out > e->n_logits_max)
        return ryot_fail(err, RYOT_ERR_INVALID, "forward: %d logits rows requested, context allows %d", n_out,
                         e->n_logits_max);
    ryot_status st = check_tokens(e, tokens, n, err);
    if (st) return st;
    run_batch(e, tokens, n, seqs, n_seqs, n_out);
    return RYOT_OK;
}

bool engine_kv_block(engine *e, int32_t blk, uint16_t **k, uint16_t **v) {
    if (!e->be->kv_block || blk < 0 || blk >= e->n_kv_blocks) return false;
    e->be->kv_block(e->bk, blk, k, v);
    return true;
}

static void forward_chunk(engine *e, const int32_t *tokens, int n, int pos, int n_out) {
    const engine_seq sq = {.blocks = e->own_blocks, .n_blocks = e->n_kv_blocks, .pos = pos, .n = n, .n_logits = n_out};
    run_batch(e, tokens, n, &sq, 1, n_out);
}

ryot_status engine_decode(engine *e, const int32_t *tokens, int n, int pos, int n_logits, ryot_error *err) {
    if (n <= 0) return ryot_fail(err, RYOT_ERR_INVALID, "decode: empty batch");
    if (pos < 0 || pos > e->n_past)
        return ryot_fail(err, RYOT_ERR_INVALID, "decode: position %d is past the %d cached positions", pos, e->n_past);
    if ((int64_t)pos + n > e->n_ctx)
        return ryot_fail(err, RYOT_ERR_INVALID, "decode: positions %d..%d exceed the context size %d", pos,
                         pos + n - 1, e->n_ctx);
    if (n_logits < 0 || n_logits > n || n_logits > e->n_logits_max)
        return ryot_fail(err, RYOT_ERR_INVALID, "decode: %d logits rows requested (batch %d, context allows %d)",
                         n_logits, n, e->n_logits_max);
    ryot_status st = check_tokens(e, tokens, n, err);
    if (st) return st;
    /* Chunks of n_batch; the last one holds every row that needs logits. */
    int last = n % e->n_batch ? n % e->n_batch : e->n_batch;
    if (last > n) last = n;
    if (last < n_logits) last = n_logits;
    int done = 0;
    e->n_past = pos;
    while (n - done > last) {
        int c = n - done - last < e->n_batch ? n - done - last : e->n_batch;
        forward_chunk(e, tokens + done, c, pos + done, 0);
        done += c;
        e->n_past = pos + done;
    }
    forward_chunk(e, tokens + done, n - done, pos + done, n_logits);
    e->n_past = pos + n;
    return RYOT_OK;
}
