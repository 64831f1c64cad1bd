/* The CPU backend's state and its forward pass (backend/cpu/forward.c):
 * weights read in place from the mmap through the kernels/ level selected
 * at run time, an F16 paged KV cache, a worker pool splitting each step by
 * rows.  Internal to backend/cpu/; the engine sees backend_ops only. */
#ifndef RYOT_BACKEND_CPU_H
#define RYOT_BACKEND_CPU_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/threadpool.h"
#include "kernels/kernels.h"
#include "model/model.h"

/* distinct activation (vec_dot) types a model may need at once */
#define CPU_MAX_SLOTS 4
/* batches up to this many tokens are normalized and quantized by every
 * thread for itself, which saves a synchronization per matmul (8: a
 * speculative verify step of up to 7 drafts runs like a decode step) */
#define CPU_SMALL_BATCH 8
/* Decode attention over more than CPU_SPLIT_MIN visible keys is split in
 * parts of CPU_SPLIT_CHUNK keys (aligned to multiples of it from position
 * 0, so the split does not depend on the thread count) that threads compute
 * in parallel and the last one merges: a model with few KV heads (Gemma 3:
 * one) would otherwise attend on one thread. */
#define CPU_SPLIT_MIN 1024
#define CPU_SPLIT_CHUNK 512

typedef struct cpu_thread {
    float *xn;                   /* (CPU_SMALL_BATCH, max_in) normalized input */
    void *q[CPU_MAX_SLOTS];      /* (CPU_SMALL_BATCH) rows of each slot type */
    float *attn;                 /* attention scratch */
} cpu_thread;

typedef struct cpu_engine {
    const model *m;
    int n_batch, n_threads, bs, n_kv_blocks, max_seqs;
    ryot_pool *pool;
    bool pool_shared;            /* another instance's pool (backend_config.share_workers) */
    const kernel_ops *ops;       /* element-wise ops of the selected level */

    /* activation types: one slot per distinct vec_dot_type */
    int n_slots;
    ryot_type slot_type[CPU_MAX_SLOTS];
    size_t slot_row_max[CPU_MAX_SLOTS]; /* bytes of the longest input row */
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
    void *qbuf[CPU_MAX_SLOTS];   /* (n_batch) quantized input rows per slot */
    float *rope_cs;              /* (n_batch, rope_dim) global layers */
    float *rope_cs_swa;          /* (n_batch, rope_dim) sliding layers (= rope_cs if same) */
    float *logits;               /* the current forward's output rows */
    cpu_thread *th;              /* (n_threads) */
    atomic_int next_unit;        /* dynamic work counter of the attention step */
    /* split-KV decode (single-token sequences): per sequence and KV head, up
     * to max_split partial states of part_floats and a counter of finished
     * parts (the last finisher merges) */
    int max_split;
    size_t part_floats;          /* group * (head_dim_v + 2) */
    float *attn_part;            /* (max_seqs, n_head_kv, max_split, part_floats) */
    atomic_int *attn_split_done; /* (max_seqs, n_head_kv) */
} cpu_engine;

/* backend_ops.forward of the CPU backend (forward.c). */
void cpu_forward(void *state, const int32_t *tokens, int n, const backend_seq *seqs, int n_seqs, float *logits);

#endif
