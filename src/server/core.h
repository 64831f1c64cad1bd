/* The serving core: one engine thread that owns the model's batched engine,
 * the paged KV cache (kv_cache.h) and the scheduler (sched.h), and steps all
 * admitted sequences together; HTTP threads hand it jobs and read results
 * from the job's output channel.
 *
 * One step:
 *   1. take new jobs, cancellations (client gone) and timeouts;
 *   2. admit waiting sequences (tier order, SJF, ageing) while there are
 *      free running slots and KV blocks; each first reuses the longest
 *      cached prefix (full blocks) and skips that prefill;
 *   3. every running sequence in decode contributes one token; the rest of
 *      the token budget goes to prefill chunks (chunked prefill);
 *      a sequence that needs a block when none is left preempts the
 *      lowest-tier newest sequence (its blocks freed, requeued for
 *      recompute);
 *   4. one engine_forward over the batch; sample, detokenize, stop strings,
 *      finish; results go to the job's channel.
 *
 * A job is one HTTP request: n choices per prompt, each choice one sequence.
 * Threads: a job is shared by the HTTP thread and the engine thread
 * (refcounted); its channel (pending text, logprobs, finish per choice) is
 * guarded by the job's mutex, the rest belongs to the engine thread once
 * submitted. */
#ifndef RYOT_SERVER_CORE_H
#define RYOT_SERVER_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "ryot.h"
#include "sched/sched.h"
#include "server/openai.h"
#include "server/request.h"

typedef struct srv_core srv_core;

typedef struct srv_core_params {
    int n_threads;        /* engine worker threads (0: online CPUs) */
    int ctx;              /* most positions of one sequence (prompt + output) */
    int kv_blocks;        /* KV blocks in all (0: enough for max(ctx, 16384) tokens) */
    int kv_block_size;    /* positions per block (default 64) */
    int batch_tokens;     /* tokens per step: decode tokens first, then prefill chunks (default 512) */
    int max_running;      /* sequences running at once (default 64) */
    int max_queue;        /* waiting sequences before 429 (default 1024) */
    int64_t age_ms;       /* scheduler ageing step (default 2000) */
    int64_t target_ms[SCHED_N_TIERS];
    bool log_requests;    /* one line per finished request on stderr */
} srv_core_params;

srv_core_params srv_core_default_params(void);

/* A buffer the channel appends to. */
typedef struct srv_buf {
    char *data;
    size_t len, cap;
} srv_buf;
bool srv_buf_append(srv_buf *b, const char *p, size_t n);
void srv_buf_free(srv_buf *b);

typedef struct srv_choice srv_choice;

typedef struct srv_job {
    atomic_int refs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    srv_core *core;

    /* set by the HTTP side before submit */
    srv_request req;       /* the parsed request (owned) */
    int n_choices;         /* n_prompts * n (chat: n) */
    srv_choice *ch;
    int max_tokens;
    int64_t prompt_tokens; /* sum over prompts (each counted once) */
    char id[SRV_ID_MAX];
    int64_t created;
    int64_t t_arrival_ns;
    int64_t deadline_ns;   /* 0: none */

    atomic_bool cancel;    /* client gone: the engine drops the job within a step */

    /* channel (under lock) */
    int n_finished;        /* choices finished */
    bool failed;           /* ended with err (timeout, shutdown) */
    srv_error err;
    int64_t cached_tokens; /* prefix-cache hits over the choices */
    int64_t completion_tokens;
} srv_job;

/* What a choice has produced that the reader has not taken yet. */
typedef struct srv_take {
    srv_buf text;
    srv_token_lp *lp;
    int n_lp, cap_lp;
    bool finished;         /* this take includes the end */
    srv_finish finish;
    int n_gen;             /* tokens generated so far */
} srv_take;
void srv_take_clear(srv_take *t);
void srv_take_free(srv_take *t);

/* Loads nothing: the model is loaded by the caller (kept, not owned). */
ryot_status srv_core_new(const ryot_model *m, const srv_core_params *p, srv_core **out, ryot_error *err);
/* Stops the engine thread (pending jobs fail with 503) and frees. */
void srv_core_free(srv_core *c);
const srv_core_params *srv_core_get_params(const srv_core *c);
const ryot_model *srv_core_model(const srv_core *c);

/* A job for req (taken over: the job owns it from now on), with prompts
 * already tokenized (prompts[i] of n_prompt[i] tokens, copied).  Fills
 * n_choices, max_tokens (checked against ctx: 400), and the samplers
 * (logit bias ids checked: 400).  Returns NULL with *e set. */
srv_job *srv_job_new(srv_core *c, srv_request *req, int32_t *const *prompts, const int *n_prompt, srv_error *e);
void srv_job_ref(srv_job *j);
void srv_job_unref(srv_job *j);

/* Hands the job to the engine thread; 429 (queue full) or 503 (shutting
 * down) in *e when refused. */
int srv_core_submit(srv_core *c, srv_job *j, srv_error *e);

/* Moves what choice i produced into *t (appending), waiting up to
 * timeout_ms for something new when nothing is pending.  Returns true when
 * anything was taken (or the choice is finished). */
bool srv_job_take(srv_job *j, int i, srv_take *t, int timeout_ms);
/* Waits until every choice finished or the job failed, up to timeout_ms;
 * true when done. */
bool srv_job_wait_done(srv_job *j, int timeout_ms);
/* true once every choice finished or the job failed (under the lock). */
bool srv_job_done(srv_job *j);
void srv_job_cancel(srv_job *j);

/* Shutdown: refuse new jobs (503); wait up to timeout_s for running and
 * waiting jobs to finish, then fail the rest.  Returns the jobs cut. */
int srv_core_drain(srv_core *c, double timeout_s);

/* Prometheus text of the core's metrics, appended to b. */
void srv_core_metrics(srv_core *c, srv_buf *b);

int64_t srv_now_ns(void);

#endif
