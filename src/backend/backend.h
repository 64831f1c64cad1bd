/* The backend seam: what the engine asks of the hardware that runs a model.
 *
 * The engine (engine/) owns the model, the sequence bookkeeping, the logical
 * KV block tables and the logits; a backend owns the weights as it computes
 * with them (uploaded, or the mmap read in place), the physical KV storage
 * (n_kv_blocks blocks of block_size positions for every layer) and its own
 * scratch, and runs one batch forward.  The CPU backend (backend/cpu/) is
 * always built; others (CUDA) are optional at build time and fill the same
 * table.  A slot marked optional may be NULL. */
#ifndef RYOT_BACKEND_H
#define RYOT_BACKEND_H

#include <stdint.h>

#include "core/error.h"
#include "model/model.h"

/* One sequence's part of a batch: tokens [t0, t0+n) of the batch at
 * positions pos..pos+n-1; blocks[] (KV block ids, block i holding positions
 * [i*block_size, (i+1)*block_size)) must cover pos+n positions, and the KV
 * of positions < pos must already be in them. */
typedef struct backend_seq {
    const int32_t *blocks;
    int n_blocks;
    int pos;
    int n;
    int n_logits; /* logits for the last n_logits tokens (0 <= n_logits <= n) */
} backend_seq;

/* What a backend is created for; checked by the engine before create. */
typedef struct backend_config {
    const model *m;
    int n_ctx;        /* positions one sequence may reach */
    int n_batch;      /* most tokens per forward */
    int n_threads;    /* host worker threads */
    int n_logits_max; /* logits rows one forward may return */
    int block_size;   /* KV positions per block */
    int n_kv_blocks;  /* KV blocks to allocate */
    int max_seqs;     /* sequences one forward may hold */
    /* Optional: the state of another instance of the same backend whose
     * workers this one uses (NULL: its own).  For models run one after the
     * other by one thread (speculative decoding's draft and target): two
     * pools would spin against each other for the cores.  That instance
     * must outlive this one, and the two never run at once. */
    void *share_workers;
} backend_config;

typedef struct backend_ops {
    const char *name;
    /* A sequence's rows are bitwise the same whether a forward holds one of
     * its tokens or several, as long as pos + n <= exact_rows_ctx (0: at any
     * length).  Speculative decoding verifies drafts as several rows and
     * relies on this for greedy output identical to one-token decode; past
     * it, a backend may compute single-token decode differently (the CPU
     * splits long attention). */
    int exact_rows_ctx;
    /* Takes the weights (upload, or use the mmap in place), allocates the KV
     * storage and scratch for cfg; *state is the backend's. */
    ryot_status (*create)(const backend_config *cfg, void **state, ryot_error *err);
    void (*destroy)(void *state);
    /* One forward over a checked batch (valid token ids, block ids in range,
     * sum of seqs[].n == n, logits rows <= n_logits_max): writes the KV of
     * every token and the logits rows, row i for the i-th requested token in
     * batch order, n_vocab floats each, to logits. */
    void (*forward)(void *state, const int32_t *tokens, int n, const backend_seq *seqs, int n_seqs, float *logits);
    /* Optional: waits until the last forward's logits are in host memory
     * (NULL: forward returns with them there). */
    void (*sync)(void *state);
    /* Optional: host pointers to KV block blk's F16 K and V (layout in
     * engine/engine.h: per layer, per KV head, block_size rows), for the
     * persistent store to read and fill; NULL where the KV lives off the
     * host. */
    void (*kv_block)(void *state, int32_t blk, uint16_t **k, uint16_t **v);
} backend_ops;

/* The CPU backend (kernels/ levels selected at run time). */
const backend_ops *backend_cpu(void);

#endif
