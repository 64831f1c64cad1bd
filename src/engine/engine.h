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

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/kernels.h"
#include "model/model.h"

/* distinct activation (vec_dot) types a model may need at once */
#define ENGINE_MAX_SLOTS 4
/* batches up to this many tokens are normalized and quantized by every
 * thread for itself, which saves a synchronization per matmul */
#define ENGINE_SMALL_BATCH 4
/* Decode attention over more than ENGINE_SPLIT_MIN visible keys is split in
 * parts of ENGINE_SPLIT_CHUNK keys (aligned to multiples of it from position
 * 0, so the split does not depend on the thread count) that threads compute
 * in parallel and the last one merges: a model with few KV heads (Gemma 3:
 * one) would otherwise attend on one thread. */
#define ENGINE_SPLIT_MIN 1024
#define ENGINE_SPLIT_CHUNK 512

typedef struct engine_params {
    int n_ctx;        /* KV positions (default: min(train context, 4096)) */
    int n_batch;      /* most tokens per forward chunk (default 512) */
    int n_threads;    /* default: online CPUs */
    int n_logits_max; /* rows of logits one decode may return (default 1) */
    int kv_block_size;/* positions per KV block: power of two, 16..256 (default 64) */
    int kv_blocks;    /* KV blocks to allocate (default: enough for n_ctx, one sequence) */
    int max_seqs;     /* sequences one batch may hold (default 1) */
} engine_params;

/* One sequence's part of a batch: tokens [t0, t0+n) of the batch at
 * positions pos..pos+n-1; blocks[] must cover pos+n positions, and the KV of
 * positions < pos must already be in them. */
typedef struct engine_seq {
    const int32_t *blocks;
    int n_blocks;
    int pos;
    int n;
    int n_logits;     /* logits for the last n_logits tokens (0 <= n_logits <= n) */
} engine_seq;

typedef struct engine_thread {
    float *xn;                   /* (ENGINE_SMALL_BATCH, max_in) normalized input */
    void *q[ENGINE_MAX_SLOTS];   /* (ENGINE_SMALL_BATCH) rows of each slot type */
    float *attn;                 /* attention scratch */
} engine_thread;

typedef struct engine {
    const model *m;
    int n_ctx, n_batch, n_threads, n_logits_max;
    ryot_pool *pool;
    const kernel_ops *ops;        /* element-wise ops for this CPU */
    int n_past;                  /* KV positions filled (engine_decode's sequence) */
    int bs, n_kv_blocks, max_seqs;
    int32_t *own_blocks;         /* identity block table of engine_decode */

    /* activation types: one slot per distinct vec_dot_type */
    int n_slots;
    ryot_type slot_type[ENGINE_MAX_SLOTS];
    size_t slot_row_max[ENGINE_MAX_SLOTS]; /* bytes of the longest input row */
    size_t max_in;               /* longest matmul input row, elements */

    uint16_t *k_cache;           /* (n_kv_blocks, n_layer, n_head_kv, bs, head_dim) F16 */
    uint16_t *v_cache;           /* (n_kv_blocks, n_layer, n_head_kv, bs, head_dim_v) F16 */
    int32_t *tok_pos;            /* (n_batch) position of each row of the current batch */
    int32_t *tok_seq;            /* (n_batch) its sequence index */
    int *seg_unit;               /* (max_seqs + 1) first attention unit of each sequence */
    int32_t *out_rows;           /* (n_logits_max) rows whose logits are computed */

    float *x;                    /* (n_batch, n_embd) residual stream */
    float *xn;                   /* (n_batch, n_embd) normalized input of a sub-block */
    float *q;                    /* (n_batch, n_head*head_dim) */
    float *k;                    /* (n_batch, n_head_kv*head_dim) */
    float *v;                    /* (n_batch, n_head_kv*head_dim_v) */
    float *att;                  /* (n_batch, n_head*head_dim_v) attention output */
    float *delta;                /* (n_batch, n_embd) sub-block output */
    float *gate;                 /* (n_batch, n_ff), then the activated product */
    float *up;                   /* (n_batch, n_ff) */
    void *qbuf[ENGINE_MAX_SLOTS];/* (n_batch) quantized input rows per slot */
    float *rope_cs;              /* (n_batch, rope_dim) global layers */
    float *rope_cs_swa;          /* (n_batch, rope_dim) sliding layers (= rope_cs if same) */
    float *logits;               /* (n_logits_max, n_vocab) */
    int n_logits;                /* rows valid after the last decode */
    engine_thread *th;           /* (n_threads) */
    atomic_int next_unit;        /* dynamic work counter of the attention step */
    /* split-KV decode (single-token sequences): per sequence and KV head, up
     * to max_split partial states of part_floats and a counter of finished
     * parts (the last finisher merges) */
    int max_split;
    size_t part_floats;          /* group * (head_dim_v + 2) */
    float *attn_part;            /* (max_seqs, n_head_kv, max_split, part_floats) */
    atomic_int *attn_split_done; /* (max_seqs, n_head_kv) */
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

/* Row i (0 <= i < n_logits of the last decode) of n_vocab logits. */
const float *engine_logits(const engine *e, int i);

#endif
