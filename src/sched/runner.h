/* The serving loop: one engine thread that owns the batched engine, the
 * paged KV cache (engine/kv_cache.h), the waiting queue (sched.h), and every
 * admitted sequence's sampler and detokenizer, and steps all admitted
 * sequences together.  Callers (the HTTP server, tests) describe a job with
 * token ids and sampling parameters, submit it, and read its output channel;
 * they never touch the engine, the KV cache, samplers or detokenizers.
 *
 * One step:
 *   1. take new jobs, cancellations (client gone) and timeouts;
 *   2. admit waiting sequences (tier order, SJF, ageing) while there are
 *      free running slots and KV blocks; each first reuses the longest
 *      cached prefix (full blocks) and skips that prefill; only a strictly
 *      lower tier is preempted to admit a sequence;
 *   3. every running sequence in decode contributes one token; the rest of
 *      the token budget goes to prefill chunks (chunked prefill); a sequence
 *      that needs a block when none is left preempts the lowest-tier newest
 *      sequence (its blocks freed, requeued for recompute);
 *   4. one engine_forward over the batch; sample, detokenize, stop strings,
 *      finish; results go to the job's channel.
 *
 * Prompt log-probabilities (spec.prompt_logprobs, for echo and
 * loglikelihood scoring): prefill asks the engine for the logits of every
 * prompt row, and each prompt token gets its log-prob given its prefix
 * (sampler_row_logprobs: raw logits, no bias or penalties).  Such a sequence
 * skips the prefix cache until its prompt is reported (cached blocks hold
 * KV, not logits: it recomputes them) and prefills at most
 * SCHED_PROMPT_LP_ROWS rows per step, all such sequences together, so the
 * engine's logits buffer is max_running + SCHED_PROMPT_LP_ROWS rows of
 * n_vocab floats (64 extra rows: 12 MiB for a 49k vocabulary, 64 MiB for
 * 262k).
 *
 * Speculative decoding (spec_draft > 0), prompt lookup: a decoding
 * sequence whose last SCHED_SPEC_NGRAM (down to 1) tokens occurred earlier
 * in its prompt + output proposes the up to spec_draft tokens that followed
 * the most recent occurrence; the step feeds its token and the drafts (one
 * row each, all with logits), samples row after row through
 * sampler_sample_draft, and keeps the longest prefix of drafts the model
 * agrees with plus the model's own next token; the KV of rejected drafts is
 * dropped (kv_seq_truncate).  Batch rows are batch invariant, so greedy
 * output is bit-identical to decoding without drafts; sampled output keeps
 * its distribution (rejection with a one-hot draft), but a fixed seed's
 * tokens then depend on how many drafts a step verified, which depends on
 * what else the step holds.  Stop strings, end of generation and max_tokens
 * end the run at the token that ends it.  Not drafted: grammar-constrained
 * and logprobs choices, and sequences whose verified rows would attend over
 * more than engine_exact_rows_ctx positions (the CPU backend splits
 * single-token attention over long contexts, so a multi-row verify would
 * not be bit-identical to it there).  Drafts take batch tokens only beyond one per
 * decoding sequence, and at most SCHED_SPEC_ROWS rows per step.
 *
 * A job: n choices per prompt, each choice one sequence.  Threads: a job is
 * shared by its submitter and the engine thread (refcounted); its channel
 * (pending text, logprobs, finish per choice) is guarded by the job's mutex,
 * the rest belongs to the engine thread once submitted. */
#ifndef RYOT_SCHED_RUNNER_H
#define RYOT_SCHED_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "ryot.h"
#include "sched/sched.h"
#include "sched/stats.h"

/* Prompt rows with logits per step, over all prompt_logprobs sequences. */
#define SCHED_PROMPT_LP_ROWS 64
/* Draft rows (speculative decoding) per step, over all sequences. */
#define SCHED_SPEC_ROWS 64
/* Drafts per step with a draft model when spec_draft is not given (CLI default). */
#define SCHED_SPEC_DRAFT_MODEL_K 4
/* Longest n-gram prompt lookup matches (it tries this length down to
 * SCHED_SPEC_NGRAM_MIN: a single token predicts too little). */
#define SCHED_SPEC_NGRAM 3
#define SCHED_SPEC_NGRAM_MIN 2

struct grammar;
struct store;
typedef struct sched_runner sched_runner;
typedef struct sched_job sched_job;

typedef struct sched_runner_params {
    int n_threads;        /* engine worker threads (0: online CPUs) */
    int ctx;              /* most positions of one sequence (prompt + output) */
    int kv_blocks;        /* KV blocks in all (0: enough for max(ctx, 16384) tokens) */
    int kv_block_size;    /* positions per block (default 64) */
    int batch_tokens;     /* tokens per step: decode tokens first, then prefill chunks (default 512) */
    int max_running;      /* sequences running at once (default 64) */
    int max_queue;        /* waiting sequences before RYOT_ERR_BUSY (default 1024; 0: unlimited) */
    int default_max_tokens; /* a job's max_tokens -1 means this many, capped to the rest of the
                             * context (default 1024; 0: the rest of the context) */
    int spec_draft;       /* draft tokens per sequence and step (0: off) */
    const ryot_model *draft_model; /* drafts from this model (same vocabulary, outliving the
                                    * runner) instead of prompt lookup; NULL: prompt lookup */
    int64_t age_ms;       /* scheduler ageing step (default 2000) */
    int64_t target_ms[SCHED_N_TIERS]; /* TTFT targets, counted met/missed in the stats */
    bool log_requests;    /* one line per finished job on stderr */
    /* Persistent context store (store/store.h; opened for this model and
     * kv_block_size, outliving the runner), or NULL.  A prompt whose prefix
     * blocks are not in RAM loads the ones the store has (after the RAM
     * match, before prefill; counted in cached_tokens); a sequence's
     * committed blocks are queued for writing when it finishes or is
     * preempted, before they can be evicted from RAM.  Not used with a
     * draft model (its KV would be missing). */
    struct store *store;
} sched_runner_params;

sched_runner_params sched_runner_default_params(void);

/* An error for the submitter: code says what kind (RYOT_ERR_INVALID: the
 * job itself is wrong; RYOT_ERR_BUSY: queue full, retry later;
 * RYOT_ERR_UNAVAILABLE: shutting down or out of memory; RYOT_ERR_TIMEOUT: its
 * deadline passed; RYOT_ERR_INTERNAL: a bug), param the job field at fault
 * ("" when none). */
typedef struct sched_error {
    ryot_status code;
    char param[64];
    char msg[RYOT_ERROR_MSG_MAX];
} sched_error;

/* What a job asks for.  Everything is copied by sched_job_new (the grammar
 * is shared: sched_job_new takes its own reference, see grammar_ref). */
typedef struct sched_job_spec {
    const char *id;                  /* for the log line; may be NULL */
    const int32_t *const *prompts;   /* n_prompts prompts of n_prompt[i] token ids */
    const int *n_prompt;
    int n_prompts;
    const char *prompt_param;        /* field named in errors about a prompt ("prompt", "messages") */
    int n;                           /* choices per prompt (choice k belongs to prompt k / n) */
    int max_tokens;                  /* -1: the runner's default_max_tokens; 0: the job ends after
                                      * prefill (finish LENGTH, nothing generated) */
    ryot_sampler_params sp;          /* a fixed seed is offset by k % n for choice k */
    const char *const *stop;         /* stop strings (non-empty); output ends before the first match */
    int n_stop;
    int tier;                        /* sched_tier */
    double timeout_s;                /* 0: none */
    bool ignore_eos;                 /* end-of-generation tokens banned */
    bool prompt_logprobs;            /* each choice's channel first gets one sched_token_lp per prompt
                                      * token (the first with no_logprob), all in one take, with
                                      * sp.top_logprobs alternatives when sp.logprobs */
    /* NULL, or every choice's output is a sentence of this grammar (a
     * prefix of one when it ends by length or a stop string): before each
     * sample the tokens the grammar rejects get logit -INFINITY, so top-k,
     * top-p, min-p, the draw and the reported logprobs all see the
     * constrained distribution.  End-of-generation is allowed only where
     * the sentence is complete, and a choice ends (finish "stop") as soon
     * as nothing but end-of-generation can follow, ignore_eos or not.  The
     * caller keeps its own reference and may grammar_free it right after
     * sched_job_new. */
    const struct grammar *grammar;
} sched_job_spec;

typedef enum sched_finish {
    SCHED_FINISH_NONE = 0,           /* not finished, or failed */
    SCHED_FINISH_STOP,               /* end of generation or a stop string */
    SCHED_FINISH_LENGTH,             /* max_tokens or the context is full */
} sched_finish;

/* One generated (or prompt) token's log-probabilities.  text[0..len) are the token's raw
 * bytes (owned by the model's vocab; may be a partial UTF-8 sequence). */
typedef struct sched_top_lp {
    const char *text;
    size_t len;
    float logprob;
} sched_top_lp;

typedef struct sched_token_lp {
    const char *text;
    size_t len;
    float logprob;
    bool no_logprob;                          /* the first prompt token: nothing precedes it */
    int n_top;                                /* 0..RYOT_MAX_TOP_LOGPROBS */
    sched_top_lp top[RYOT_MAX_TOP_LOGPROBS];  /* by logprob descending */
} sched_token_lp;

/* What a choice has produced that the reader has not taken yet. */
typedef struct sched_take {
    ryot_buf text;
    sched_token_lp *lp;
    int n_lp, cap_lp;
    bool finished;         /* this take includes the end */
    sched_finish finish;
    int n_gen;             /* tokens generated so far */
} sched_take;
void sched_take_clear(sched_take *t);
void sched_take_free(sched_take *t);

/* The totals of a job; `failed` with `err` when it ended in an error
 * (timeout, shutdown, engine failure). */
typedef struct sched_job_result {
    bool failed;
    sched_error err;
    int64_t prompt_tokens;     /* sum over prompts (each counted once) */
    int64_t completion_tokens; /* over choices */
    int64_t cached_tokens;     /* prompt tokens taken from the prefix cache, over choices */
} sched_job_result;

/* Loads nothing: the model is loaded by the caller (kept, not owned). */
ryot_status sched_runner_new(const ryot_model *m, const sched_runner_params *p, sched_runner **out,
                             ryot_error *err);
/* Stops the engine thread (pending jobs fail with RYOT_ERR_UNAVAILABLE) and frees. */
void sched_runner_free(sched_runner *r);
/* The parameters in use (defaults filled in, ctx capped at the training context). */
const sched_runner_params *sched_runner_get_params(const sched_runner *r);
const ryot_model *sched_runner_model(const sched_runner *r);

/* Checks spec against the model and the runner's limits (logit bias ids,
 * empty prompts, prompt + max_tokens against ctx: RYOT_ERR_INVALID) and
 * builds the job.  NULL with *e set. */
sched_job *sched_job_new(sched_runner *r, const sched_job_spec *spec, sched_error *e);
void sched_job_ref(sched_job *j);
void sched_job_unref(sched_job *j);
int sched_job_n_choices(const sched_job *j);

/* Hands the job to the engine thread; RYOT_ERR_BUSY (queue full),
 * RYOT_ERR_INVALID (more sequences than the queue holds) or
 * RYOT_ERR_UNAVAILABLE (shutting down) in *e when refused. */
int sched_submit(sched_runner *r, sched_job *j, sched_error *e);

/* Moves what choice i produced into *t (appending), waiting up to
 * timeout_ms for something new when nothing is pending.  Returns true when
 * anything was taken (or the choice is finished). */
bool sched_job_take(sched_job *j, int i, sched_take *t, int timeout_ms);
/* Waits up to timeout_ms for the job to produce anything or end. */
void sched_job_wait(sched_job *j, int timeout_ms);
/* Waits until every choice finished or the job failed, up to timeout_ms;
 * true when done. */
bool sched_job_wait_done(sched_job *j, int timeout_ms);
/* true once every choice finished or the job failed. */
bool sched_job_done(sched_job *j);
/* Totals and error (consistent snapshot; final once sched_job_done). */
void sched_job_result_get(sched_job *j, sched_job_result *out);
/* The submitter is gone: the engine drops the job within a step. */
void sched_job_cancel(sched_job *j);

/* Shutdown: refuse new jobs (RYOT_ERR_UNAVAILABLE); wait up to timeout_s
 * for running and waiting jobs to finish, then fail the rest.  Returns the
 * jobs cut. */
int sched_runner_drain(sched_runner *r, double timeout_s);

/* A consistent copy of the runner's counters and gauges. */
void sched_runner_stats(sched_runner *r, sched_stats *out);

#endif
