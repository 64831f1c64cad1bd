/* Speculative decoding with a draft model: a second, smaller model with the
 * target's vocabulary proposes k tokens per sequence and step, which the
 * runner verifies in its one batched forward of the target (runner.h).
 *
 * The drafter owns the draft model's engine and KV cache (its own blocks,
 * no prefix sharing); each target sequence that drafts has a draft_seq:
 * its draft KV (positions of the sequence's tokens the draft model has
 * seen), a sampler with the request's parameters (no penalty history) and
 * the distributions its drafts were drawn from (q, for the verifier's
 * min(1, p/q) test; NULL for greedy requests, whose drafts are the draft
 * model's argmax).  Engine thread only; nothing allocates per token
 * (draft_seq_init allocates at job creation). */
#ifndef RYOT_SCHED_DRAFT_H
#define RYOT_SCHED_DRAFT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "engine/kv_cache.h"
#include "ryot.h"

typedef struct sampler sampler;
typedef struct drafter drafter;

typedef struct draft_params {
    int ctx;           /* positions one sequence may reach (the target's) */
    int batch_tokens;  /* most tokens per draft forward */
    int max_seqs;      /* sequences drafting at once */
    int k_max;         /* drafts per sequence and step */
    int kv_blocks, kv_block_size;
    int n_threads;
} draft_params;

typedef struct draft_seq {
    kv_seq kv;
    int n_done;        /* leading positions of the sequence whose draft KV is computed */
    sampler *smp;      /* draws the drafts (temperature > 0), NULL for greedy */
    float *q;          /* (k_max, n_vocab) distribution of each draft; NULL for greedy */
    int n_fed;         /* drafts of the last proposal whose KV was computed */
} draft_seq;

/* Loads nothing: takes the draft model (loaded by the caller, outliving the
 * drafter) and checks it against the target: the same vocabulary (size,
 * every token's bytes, BOS/EOS), else RYOT_ERR_INVALID with a message
 * naming the first difference. */
ryot_status drafter_new(const ryot_model *target, const ryot_model *draft, const draft_params *p, drafter **out,
                        ryot_error *err);
void drafter_free(drafter *d);

ryot_status draft_seq_init(drafter *d, draft_seq *s, int max_tokens, const ryot_sampler_params *sp,
                           ryot_error *err);
/* Frees the sequence's draft KV (preemption, end): it drafts from scratch next time. */
void draft_seq_release(drafter *d, draft_seq *s);
/* Frees what draft_seq_init allocated (release first: asserted). */
void draft_seq_free(draft_seq *s);

/* One sequence's request for drafts: its tokens so far (the last one is the
 * token the target decodes this step) and how many drafts it may verify. */
typedef struct draft_req {
    draft_seq *s;
    const int32_t *toks;
    int n_toks;
    int k;             /* 1..k_max */
    int32_t *out;      /* receives the drafts */
    int n_out;         /* drafts proposed (0: none, e.g. no draft KV blocks left) */
} draft_req;

/* Drafts for every request at once: catches each sequence's draft KV up
 * with its tokens (chunked to batch_tokens), then k rounds of one batched
 * draft forward, each sequence drawing its next draft (greedy: argmax)
 * from the draft model's logits; a sequence stops after an end-of-
 * generation draft.  Errors (none expected: the batches are built valid)
 * leave n_out 0. */
void drafter_propose(drafter *d, draft_req *reqs, int n);

/* The target kept `accepted` drafts of the last proposal of s, whose
 * sequence then had n_toks_before tokens: the draft KV stays valid for
 * the accepted drafts it computed; the rest is dropped. */
void draft_seq_rollback(drafter *d, draft_seq *s, int n_toks_before, int accepted);

#endif
