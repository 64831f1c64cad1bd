/* Engine context: everything one sequence's forward pass needs, allocated
 * once at creation (activations for n_batch tokens, the KV cache, per-thread
 * scratch, the worker pool); decoding never allocates.
 *
 * KV cache: paged.  F16 storage of n_kv_blocks blocks of kv_block_size
 * positions; inside a block, per layer, per KV head, positions contiguous:
 *   k[((blk * n_layer + il) * n_head_kv + h) * bs + pos % bs][0..head_dim)
 * A sequence's block table maps pos / bs to a block id; the server's
 * kv_cache (kv_cache.h) hands out ids and shares prefix blocks.  A context
 * used through engine_decode (one sequence) owns the identity table.
 *
 * The forward driver (engine_forward) evaluates one batch of tokens from
 * several sequences: each sequence contributes a run of consecutive
 * positions (a decode token or a prefill chunk).  Per-weight matmuls run
 * once over all rows of the batch; attention runs per sequence over its own
 * blocks (units of (sequence, KV head, query tile) handed out dynamically).
 * Every row is computed by the same code whatever else is in the batch
 * (batch invariance: tested). */
#ifndef RYOT_ENGINE_ENGINE_H
#define RYOT_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/error.h"
#include "model/model.h"

typedef struct engine_params {
    int n_ctx;        /* KV positions (default: min(train context, 4096)) */
    int n_batch;      /* most tokens per forward chunk (default 512) */
    int n_threads;    /* default: online CPUs */
    int n_logits_max; /* rows of logits one decode may return (default 1) */
    int kv_block_size;/* positions per KV block: power of two, 16..256 (default 64) */
    int kv_blocks;    /* KV blocks to allocate (default: enough for n_ctx, one sequence) */
    int max_seqs;     /* sequences one batch may hold (default 1) */
    const struct engine *share_workers; /* run on this engine's worker threads (same n_threads;
                                         * it outlives this one, never runs at the same time);
                                         * NULL: own threads */
} engine_params;

/* One sequence's part of a batch (backend/backend.h). */
typedef backend_seq engine_seq;

/* A model's context: the parameters, engine_decode's sequence and the logits
 * rows, with a backend (backend/backend.h) that holds the weights as it uses
 * them, the KV storage and the compute. */
typedef struct engine {
    const model *m;
    int n_ctx, n_batch, n_threads, n_logits_max;
    int bs, n_kv_blocks, max_seqs;
    int n_past;                  /* KV positions filled (engine_decode's sequence) */
    int32_t *own_blocks;         /* identity block table of engine_decode */
    float *logits;               /* (n_logits_max, n_vocab) */
    int n_logits;                /* rows valid after the last decode */
    const backend_ops *be;
    void *bk;                    /* the backend's state */
} engine;

engine_params engine_params_default(const model *m);
ryot_status engine_new(const model *m, const engine_params *p, engine **out, ryot_error *err);
void engine_free(engine *e);

/* Evaluates tokens[0..n) at positions pos..pos+n-1 (pos <= n_past: the cache
 * past pos is discarded), then n_past = pos + n.  Computes logits for the
 * last n_logits tokens (0 <= n_logits <= min(n, n_logits_max)). */
ryot_status engine_decode(engine *e, const int32_t *tokens, int n, int pos, int n_logits, ryot_error *err);

/* Evaluates one batch: tokens[0..n) where sequence s owns the next seqs[s].n
 * tokens (in order).  n <= n_batch, n_seqs <= max_seqs, the logits rows
 * (sum of n_logits) <= n_logits_max; logits row i belongs to the i-th
 * requested token in batch order.  Does not touch n_past. */
ryot_status engine_forward(engine *e, const int32_t *tokens, int n, const engine_seq *seqs, int n_seqs,
                           ryot_error *err);

/* Positions up to which a sequence's logits do not depend on how many of
 * its tokens a batch holds (backend_ops.exact_rows_ctx; 0: any). */
int engine_exact_rows_ctx(const engine *e);

/* Host pointers to KV block blk's K and V (layout above); false when the
 * backend keeps its KV off the host (no persistent store then). */
bool engine_kv_block(engine *e, int32_t blk, uint16_t **k, uint16_t **v);

/* Row i (0 <= i < n_logits of the last decode) of n_vocab logits. */
const float *engine_logits(const engine *e, int i);

#endif
