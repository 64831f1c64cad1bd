/* The serving loop's engine thread: admission, batch assembly, sampling and
 * output (see runner.h). */
#include "sched/runner.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "engine/api_internal.h"
#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "grammar/grammar.h"
#include "sched/draft.h"
#include "store/store.h"
#include "tokenizer/tokenizer.h"

enum { CH_NEW, CH_WAITING, CH_RUNNING, CH_DONE };

typedef struct choice {
    sched_job *job;
    int index;             /* choice index in the response */
    int prompt_index;
    int state;             /* CH_*, engine thread only */
    sched_item item;
    kv_seq kv;
    sampler *smp;
    grammar_matcher *gm;   /* NULL without a grammar */
    detok dt;
    int32_t *toks;         /* prompt, then generated tokens */
    int n_toks, cap_toks;
    int n_prompt;
    int n_done;            /* positions whose KV is computed */
    int n_gen;
    int take;              /* tokens placed in the current step */
    int32_t *draft;        /* (spec_draft) drafted tokens of the current step; NULL when off */
    int n_draft;           /* drafts placed in the current step (after the decode token) */
    int spec_base;         /* n_toks when this step's drafts were proposed */
    int spec_k;            /* adaptive draft length: at most this many drafts next step */
    draft_seq ds;          /* draft-model state (runner with a draft model) */
    bool stopped;          /* a stop string matched: nothing more to emit */
    ryot_buf held;          /* text held back while it may start a stop string */
    int64_t t_first_ns, t_last_ns, t_admit_ns;
    int n_cached;          /* prompt tokens taken from the prefix cache (first admission) */
    bool admitted_once;
    sched_token_lp *plp;   /* (n_prompt) prompt logprobs, engine thread until published */
    int n_plp;             /* prompt tokens whose logprob is known (prompt_lp jobs) */
    /* channel, under job->lock */
    sched_take out;
} choice;

#define JOB_ID_MAX 48

struct sched_job {
    atomic_int refs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sched_runner *rn;

    /* fixed at sched_job_new */
    char id[JOB_ID_MAX];   /* for the log line */
    int n;                 /* choices per prompt */
    int n_choices;         /* prompts * n */
    choice *ch;
    int max_tokens;
    int tier;
    bool ignore_eos;
    int top_logprobs;      /* alternatives reported per token; logprobs off: -1 */
    bool prompt_lp;        /* spec.prompt_logprobs */
    char **stop;
    int n_stop;
    grammar *grammar;      /* a reference, or NULL */
    int64_t prompt_tokens; /* sum over prompts (each counted once) */
    int64_t t_arrival_ns;
    int64_t deadline_ns;   /* 0: none */

    atomic_bool cancel;    /* submitter gone: the engine drops the job within a step */

    /* channel (under lock) */
    int n_finished;        /* choices finished */
    bool failed;           /* ended with err (timeout, shutdown) */
    sched_error err;
    int64_t cached_tokens; /* prefix-cache hits over the choices */
    int64_t completion_tokens;
};

struct sched_runner {
    const ryot_model *rm;
    const model *m;
    const tokenizer *tok;
    sched_runner_params p;
    engine *e;
    kv_cache *kv;
    drafter *dr;           /* draft model (spec_draft > 0 with draft_model), else NULL */
    sched *sq;
    int n_vocab;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;  /* intake, flags */
    pthread_cond_t wake;
    sched_job **intake;      /* submitted, not yet seen by the engine thread */
    int n_intake, cap_intake;
    int n_waiting_total;   /* sequences queued or in intake (admission control) */
    bool stopping;         /* refuse new jobs */
    bool quit;             /* engine thread exits */
    bool cut;              /* fail everything still there */

    /* engine thread */
    choice **running;  /* in admission order */
    int n_running;
    choice **snap;     /* running[] at the start of a step */
    sched_job **jobs;        /* jobs the engine thread holds */
    int n_jobs, cap_jobs;
    int32_t *btoks;        /* batch tokens */
    engine_seq *bseq;
    choice **bwho;
    float *logits;         /* scratch row for sampling */
    void *cand;            /* candidate scratch shared by every sampler (engine thread) */
    int32_t *eog;          /* end-of-generation ids (ignore_eos bans them) */
    int n_eog;
    pthread_mutex_t gvocab_lock;
    grammar_vocab *gvocab; /* built by the first job with a grammar, under gvocab_lock; then immutable */
    uint32_t *gmask;       /* one token mask (engine thread) */

    pthread_mutex_t met_lock;
    sched_stats met;       /* under met_lock */

    /* persistent store (p.store), engine thread */
    store *st;             /* NULL: none */
    uint8_t st_model[STORE_MODEL_ID_BYTES];
    store_rkey *st_keys;   /* (blocks of one sequence) scratch chain */
    uint64_t *st_serial;   /* (kv_blocks) registration serial each block had when last put or loaded */
};

static void set_error(sched_error *e, ryot_status code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_error(sched_error *e, ryot_status code, const char *param, const char *fmt, ...) {
    if (!e) return;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

void sched_take_clear(sched_take *t) {
    ryot_buf_clear(&t->text);
    t->n_lp = 0;
}

void sched_take_free(sched_take *t) {
    ryot_buf_free(&t->text);
    free(t->lp);
    memset(t, 0, sizeof *t);
}

sched_runner_params sched_runner_default_params(void) {
    sched_runner_params p = {0};
    p.ctx = 4096;
    p.kv_block_size = 64;
    p.batch_tokens = 512;
    p.max_running = 64;
    p.max_queue = 1024;
    p.default_max_tokens = 1024;
    sched_params sp = sched_params_default();
    p.age_ms = sp.age_ms;
    memcpy(p.target_ms, sp.target_ms, sizeof p.target_ms);
    p.log_requests = true;
    return p;
}

/* ------------------------------------------------------------------ jobs */

static void choice_free(choice *c) {
    draft_seq_free(&c->ds);
    sampler_free(c->smp);
    grammar_matcher_free(c->gm);
    detok_free(&c->dt);
    kv_seq_destroy(&c->kv);
    free(c->toks);
    free(c->draft);
    free(c->plp);
    ryot_buf_free(&c->held);
    sched_take_free(&c->out);
}

void sched_job_ref(sched_job *j) { atomic_fetch_add(&j->refs, 1); }

void sched_job_unref(sched_job *j) {
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1) return;
    for (int i = 0; i < j->n_choices; i++) choice_free(&j->ch[i]);
    free(j->ch);
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->stop);
    grammar_free(j->grammar);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
}

int sched_job_n_choices(const sched_job *j) { return j->n_choices; }

/* Checks what can be checked before anything is allocated. */
static int check_spec(const sched_runner *c, const sched_job_spec *s, int *max_tokens, sched_error *e) {
    const char *pp = s->prompt_param ? s->prompt_param : "prompt";
    if (s->n_prompts < 1 || s->n < 1) {
        set_error(e, RYOT_ERR_INVALID, s->n < 1 ? "n" : pp, "a job needs at least one prompt and one choice");
        return -1;
    }
    for (int i = 0; i < s->sp.n_logit_bias; i++)
        if (s->sp.logit_bias[i].token < 0 || s->sp.logit_bias[i].token >= c->n_vocab) {
            set_error(e, RYOT_ERR_INVALID, "logit_bias", "logit_bias token %d is outside the vocabulary (%d tokens)",
                      (int)s->sp.logit_bias[i].token, c->n_vocab);
            return -1;
        }
    int longest = 0;
    for (int i = 0; i < s->n_prompts; i++) {
        if (s->n_prompt[i] < 1) {
            set_error(e, RYOT_ERR_INVALID, pp, "the prompt is empty");
            return -1;
        }
        if (s->n_prompt[i] > longest) longest = s->n_prompt[i];
    }
    if (longest >= c->p.ctx) {
        set_error(e, RYOT_ERR_INVALID, pp, "the prompt has %d tokens; this server's context is %d tokens", longest,
                  c->p.ctx);
        return -1;
    }
    const int rest = c->p.ctx - longest;
    if (s->max_tokens >= 0)
        *max_tokens = s->max_tokens;
    else /* a default never makes a request fail: it stops at the end of the context */
        *max_tokens = c->p.default_max_tokens > 0 && c->p.default_max_tokens < rest ? c->p.default_max_tokens : rest;
    if ((int64_t)longest + *max_tokens > c->p.ctx) {
        set_error(e, RYOT_ERR_INVALID, "max_tokens",
                  "prompt (%d tokens) + max_tokens (%d) exceeds this server's context of %d tokens", longest,
                  *max_tokens, c->p.ctx);
        return -1;
    }
    return 0;
}

sched_job *sched_job_new(sched_runner *c, const sched_job_spec *s, sched_error *e) {
    int max_tokens;
    if (check_spec(c, s, &max_tokens, e)) return NULL;
    sched_job *j = calloc(1, sizeof *j);
    if (!j) goto nomem;
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, false);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->rn = c;
    snprintf(j->id, sizeof j->id, "%s", s->id ? s->id : "-");
    j->max_tokens = max_tokens;
    j->n = s->n;
    j->tier = s->tier;
    j->ignore_eos = s->ignore_eos;
    j->top_logprobs = s->sp.logprobs ? s->sp.top_logprobs : -1;
    j->prompt_lp = s->prompt_logprobs;
    j->n_choices = s->n_prompts * s->n;
    j->ch = calloc((size_t)j->n_choices, sizeof *j->ch);
    j->stop = s->n_stop ? calloc((size_t)s->n_stop, sizeof *j->stop) : NULL;
    if (!j->ch || (s->n_stop && !j->stop)) {
        sched_job_unref(j);
        goto nomem;
    }
    for (; j->n_stop < s->n_stop; j->n_stop++)
        if (!(j->stop[j->n_stop] = strdup(s->stop[j->n_stop]))) {
            sched_job_unref(j);
            goto nomem;
        }
    if (s->grammar) {
        j->grammar = grammar_ref(s->grammar);
        ryot_error err = {0};
        pthread_mutex_lock(&c->gvocab_lock);
        ryot_status st = c->gvocab ? RYOT_OK : grammar_vocab_from_tokenizer(c->tok, &c->gvocab, &err);
        pthread_mutex_unlock(&c->gvocab_lock);
        if (st) {
            sched_job_unref(j);
            set_error(e, RYOT_ERR_UNAVAILABLE, NULL, "%s", err.msg);
            return NULL;
        }
    }
    j->t_arrival_ns = ryot_now_ns();
    if (s->timeout_s > 0) j->deadline_ns = j->t_arrival_ns + (int64_t)(s->timeout_s * 1e9);
    for (int i = 0; i < s->n_prompts; i++) j->prompt_tokens += s->n_prompt[i];
    for (int k = 0; k < j->n_choices; k++) {
        choice *ch = &j->ch[k];
        const int pi = k / j->n;
        ch->job = j;
        ch->index = k;
        ch->prompt_index = pi;
        ch->n_prompt = s->n_prompt[pi];
        ch->cap_toks = s->n_prompt[pi] + max_tokens + 1;
        ch->toks = malloc((size_t)ch->cap_toks * sizeof *ch->toks);
        if (c->p.spec_draft > 0 && !(ch->draft = malloc((size_t)c->p.spec_draft * sizeof *ch->draft))) {
            sched_job_unref(j);
            goto nomem;
        }
        if (j->prompt_lp && !(ch->plp = calloc((size_t)ch->n_prompt, sizeof *ch->plp))) {
            sched_job_unref(j);
            goto nomem;
        }
        ryot_error err = {0};
        ryot_sampler_params sp = s->sp; /* sampler_init copies the logit bias */
        if (sp.seed != RYOT_SEED_RANDOM) sp.seed += (uint64_t)(k % j->n); /* choices differ */
        if (!ch->toks || kv_seq_init(&ch->kv, ch->cap_toks, c->p.kv_block_size, &err) ||
            sampler_init(&ch->smp, &sp, c->n_vocab, &err) || detok_init(&ch->dt, c->tok, 0, &err) ||
            (j->grammar && grammar_matcher_new(j->grammar, c->gvocab, &ch->gm, &err)) ||
            (c->dr && draft_seq_init(c->dr, &ch->ds, ch->cap_toks, &sp, &err))) {
            sched_job_unref(j);
            set_error(e, err.code == RYOT_ERR_NOMEM || !err.msg[0] ? RYOT_ERR_UNAVAILABLE : RYOT_ERR_INVALID, NULL,
                      "%s", err.msg[0] ? err.msg : "out of memory");
            return NULL;
        }
        sampler_share_scratch(ch->smp, c->cand);
        memcpy(ch->toks, s->prompts[pi], (size_t)s->n_prompt[pi] * sizeof *ch->toks);
        ch->n_toks = s->n_prompt[pi];
        ch->item.tier = s->tier;
        ch->item.cost = (int64_t)s->n_prompt[pi] + max_tokens;
        ch->item.arrival_ms = j->t_arrival_ns / 1000000;
        ch->item.owner = ch;
    }
    return j;
nomem:
    set_error(e, RYOT_ERR_UNAVAILABLE, NULL, "out of memory");
    return NULL;
}

int sched_submit(sched_runner *c, sched_job *j, sched_error *e) {
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        set_error(e, RYOT_ERR_UNAVAILABLE, NULL, "the server is shutting down");
        return -1;
    }
    if (c->p.max_queue > 0 && j->n_choices > c->p.max_queue) {
        pthread_mutex_unlock(&c->lock);
        set_error(e, RYOT_ERR_INVALID, "n", "the request needs %d sequences (prompts x n) but the queue holds %d",
                  j->n_choices, c->p.max_queue);
        return -1;
    }
    if (c->p.max_queue > 0 && c->n_waiting_total + j->n_choices > c->p.max_queue) {
        pthread_mutex_unlock(&c->lock);
        set_error(e, RYOT_ERR_BUSY, NULL, "the request queue is full (%d waiting); retry later", c->p.max_queue);
        return -1;
    }
    if (c->n_intake == c->cap_intake) {
        int cap = c->cap_intake ? 2 * c->cap_intake : 64;
        sched_job **q = realloc(c->intake, (size_t)cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&c->lock);
            set_error(e, RYOT_ERR_UNAVAILABLE, NULL, "out of memory");
            return -1;
        }
        c->intake = q;
        c->cap_intake = cap;
    }
    sched_job_ref(j);
    c->intake[c->n_intake++] = j;
    c->n_waiting_total += j->n_choices;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void wake_engine(sched_runner *c) {
    pthread_mutex_lock(&c->lock);
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

void sched_job_cancel(sched_job *j) {
    atomic_store(&j->cancel, true);
    wake_engine(j->rn);
}

static bool job_done_locked(const sched_job *j) { return j->failed || j->n_finished == j->n_choices; }

bool sched_job_done(sched_job *j) {
    pthread_mutex_lock(&j->lock);
    bool d = job_done_locked(j);
    pthread_mutex_unlock(&j->lock);
    return d;
}

static void timed_wait(sched_job *j, int timeout_ms) {
    struct timespec ts = ryot_deadline_ms(timeout_ms);
    pthread_cond_timedwait(&j->cond, &j->lock, &ts);
}

bool sched_job_take(sched_job *j, int i, sched_take *t, int timeout_ms) {
    choice *c = &j->ch[i];
    pthread_mutex_lock(&j->lock);
    if (c->out.text.len == 0 && c->out.n_lp == 0 && !c->out.finished && !j->failed && timeout_ms > 0)
        timed_wait(j, timeout_ms);
    bool any = c->out.text.len > 0 || c->out.n_lp > 0 || c->out.finished;
    bool ok = true;
    if (c->out.text.len) ok = ryot_buf_append(&t->text, c->out.text.data, c->out.text.len);
    if (ok && c->out.n_lp) {
        if (t->n_lp + c->out.n_lp > t->cap_lp) {
            int cap = (t->n_lp + c->out.n_lp) * 2;
            sched_token_lp *lp = realloc(t->lp, (size_t)cap * sizeof *lp);
            if (lp) {
                t->lp = lp;
                t->cap_lp = cap;
            } else {
                ok = false;
            }
        }
        if (ok) {
            memcpy(t->lp + t->n_lp, c->out.lp, (size_t)c->out.n_lp * sizeof *t->lp);
            t->n_lp += c->out.n_lp;
        }
    }
    if (ok) {
        c->out.text.len = 0;
        c->out.n_lp = 0;
    }
    t->finished = c->out.finished;
    t->finish = c->out.finish;
    t->n_gen = c->out.n_gen;
    pthread_mutex_unlock(&j->lock);
    return any;
}

void sched_job_wait(sched_job *j, int timeout_ms) {
    pthread_mutex_lock(&j->lock);
    if (!job_done_locked(j)) timed_wait(j, timeout_ms);
    pthread_mutex_unlock(&j->lock);
}

void sched_job_result_get(sched_job *j, sched_job_result *out) {
    pthread_mutex_lock(&j->lock);
    out->failed = j->failed;
    out->err = j->err;
    out->prompt_tokens = j->prompt_tokens;
    out->completion_tokens = j->completion_tokens;
    out->cached_tokens = j->cached_tokens;
    pthread_mutex_unlock(&j->lock);
}

bool sched_job_wait_done(sched_job *j, int timeout_ms) {
    pthread_mutex_lock(&j->lock);
    if (!job_done_locked(j)) timed_wait(j, timeout_ms);
    bool d = job_done_locked(j);
    pthread_mutex_unlock(&j->lock);
    return d;
}

/* ------------------------------------------------------------------ output */

static void out_text(choice *c, const char *p, size_t n) {
    if (n) ryot_buf_append(&c->out.text, p, n);
}

/* Generated text through the stop-string filter: emits what can no longer
 * be the start of a stop string; true when a stop string matched. */
static bool emit(choice *c, const char *p, size_t n) {
    const sched_job *r = c->job;
    if (r->n_stop == 0) {
        out_text(c, p, n);
        return false;
    }
    ryot_buf_append(&c->held, p, n);
    const char *h = c->held.data;
    const size_t hl = c->held.len;
    size_t best = hl;
    for (int s = 0; s < r->n_stop; s++) {
        const char *f = memmem(h, hl, r->stop[s], strlen(r->stop[s]));
        if (f && (size_t)(f - h) < best) best = (size_t)(f - h);
    }
    if (best < hl) {
        out_text(c, h, best);
        c->held.len = 0;
        return true;
    }
    /* keep the longest suffix that is a proper prefix of some stop string */
    size_t keep = 0;
    for (int s = 0; s < r->n_stop; s++) {
        const size_t sl = strlen(r->stop[s]);
        for (size_t k = sl - 1 < hl ? sl - 1 : hl; k > keep; k--)
            if (memcmp(h + hl - k, r->stop[s], k) == 0) {
                keep = k;
                break;
            }
    }
    out_text(c, h, hl - keep);
    memmove(c->held.data, h + hl - keep, keep);
    c->held.len = keep;
    return false;
}

static void lp_entry(sched_runner *rn, sched_token_lp *t, const sampler_logprobs *lp, int n_top) {
    memset(t, 0, sizeof *t);
    t->text = tokenizer_token_bytes(rn->tok, lp->chosen.token, &t->len);
    t->logprob = lp->chosen.logprob;
    t->n_top = n_top < lp->n_top ? n_top : lp->n_top;
    for (int i = 0; i < t->n_top; i++) {
        t->top[i].text = tokenizer_token_bytes(rn->tok, lp->top[i].token, &t->top[i].len);
        t->top[i].logprob = lp->top[i].logprob;
    }
}

static void add_logprobs(sched_runner *rn, choice *c, const sampler_logprobs *lp) {
    sched_take *o = &c->out;
    if (o->n_lp == o->cap_lp) {
        int cap = o->cap_lp ? 2 * o->cap_lp : 16;
        sched_token_lp *a = realloc(o->lp, (size_t)cap * sizeof *a);
        if (!a) return;
        o->lp = a;
        o->cap_lp = cap;
    }
    lp_entry(rn, &o->lp[o->n_lp++], lp, c->job->top_logprobs);
}

/* Prompt log-probabilities from one forward's rows row0..row0+n-1, the
 * logits after positions pos0..pos0+n-1: row r gives token pos0+r+1's
 * log-prob.  Tokens already known (a sequence recomputed after preemption)
 * are skipped, so each is reported once; the whole prompt goes to the
 * channel in one piece once complete, before any generated token. */
static void prompt_logprobs(sched_runner *rn, choice *c, int pos0, int n, int row0) {
    sched_job *j = c->job;
    const int n_top = j->top_logprobs > 0 ? j->top_logprobs : 0;
    if (c->n_plp == 0) {
        sched_token_lp *t = &c->plp[0];
        t->text = tokenizer_token_bytes(rn->tok, c->toks[0], &t->len);
        t->no_logprob = true;
        c->n_plp = 1;
    }
    for (int r = 0; r < n; r++) {
        const int t = pos0 + r + 1;
        if (t < c->n_plp) continue;
        if (t >= c->n_prompt) break;
        sampler_logprobs lp;
        sampler_row_logprobs(engine_logits(rn->e, row0 + r), rn->n_vocab, c->toks[t], n_top, &lp);
        lp_entry(rn, &c->plp[t], &lp, n_top);
        c->n_plp = t + 1;
    }
    if (c->n_plp < c->n_prompt) return;
    pthread_mutex_lock(&j->lock);
    sched_take *o = &c->out;
    sched_token_lp *a = realloc(o->lp, (size_t)(o->n_lp + c->n_prompt + 16) * sizeof *a);
    if (a) {
        o->lp = a;
        o->cap_lp = o->n_lp + c->n_prompt + 16;
        memcpy(o->lp + o->n_lp, c->plp, (size_t)c->n_prompt * sizeof *a);
        o->n_lp += c->n_prompt;
    }
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

/* ------------------------------------------------------------------ engine thread */

static double secs(int64_t ns) { return (double)ns / 1e9; }

static void log_job(sched_runner *rn, sched_job *j, const char *status) {
    if (!rn->p.log_requests) return;
    int64_t gen = 0, first = 0, last = 0, admit = 0;
    for (int i = 0; i < j->n_choices; i++) {
        const choice *c = &j->ch[i];
        gen += c->n_gen;
        if (c->t_first_ns && (!first || c->t_first_ns < first)) first = c->t_first_ns;
        if (c->t_last_ns > last) last = c->t_last_ns;
        if (c->t_admit_ns && (!admit || c->t_admit_ns < admit)) admit = c->t_admit_ns;
    }
    const double queue_ms = admit ? (double)(admit - j->t_arrival_ns) / 1e6 : -1;
    const double ttft_ms = first ? (double)(first - j->t_arrival_ns) / 1e6 : -1;
    const double tps = last > first && gen > 1 ? (double)(gen - j->n_choices) / secs(last - first) : 0;
    fprintf(stderr, "request %s tier=%s prompt=%lld gen=%lld queue_ms=%.1f ttft_ms=%.1f tok/s=%.1f status=%s\n", j->id,
            sched_tier_name(j->tier), (long long)j->prompt_tokens, (long long)gen, queue_ms, ttft_ms, tps,
            status);
}

static void remove_running(sched_runner *rn, choice *c) {
    for (int i = 0; i < rn->n_running; i++)
        if (rn->running[i] == c) {
            memmove(rn->running + i, rn->running + i + 1, (size_t)(rn->n_running - i - 1) * sizeof *rn->running);
            rn->n_running--;
            return;
        }
}

/* Queues the sequence's committed blocks that the store does not have yet
 * (store.h: the writer thread encodes and commits them).  A block put once
 * is not put again while it keeps its registration (st_serial). */
static void store_save(sched_runner *rn, choice *c) {
    if (!rn->st || c->kv.n_committed == 0) return;
    const int n = c->kv.n_committed, bs = rn->p.kv_block_size;
    bool chained = false;
    int n_put = 0;
    for (int i = 0; i < n; i++) {
        const int32_t id = c->kv.blocks[i];
        const uint64_t serial = kv_cache_block_serial(rn->kv, id);
        if (serial && rn->st_serial[id] == serial) continue;
        if (!chained) {
            store_chain(rn->st_model, c->toks, n, bs, rn->st_keys);
            chained = true;
        }
        uint16_t *k, *v;
        if (!engine_kv_block(rn->e, id, &k, &v)) return;
        if (!store_has(rn->st, &rn->st_keys[i])) {
            if (!store_put_block(rn->st, &rn->st_keys[i], k, v)) break; /* queue full: counted by the store */
            n_put++;
        }
        if (serial) rn->st_serial[id] = serial;
    }
    if (n_put) {
        pthread_mutex_lock(&rn->met_lock);
        rn->met.store_blocks_put += (uint64_t)n_put;
        pthread_mutex_unlock(&rn->met_lock);
    }
}

/* After the RAM prefix match (hit positions, blocks reserved for the whole
 * prompt): loads the following full blocks the store has, into the
 * sequence's own blocks, and commits them.  Returns the new hit.  A block
 * that fails to authenticate or decode ends the run (a miss: prefilled). */
static int store_load(sched_runner *rn, choice *c, int hit) {
    const int bs = rn->p.kv_block_size;
    const int n_full = (c->n_toks - 1) / bs;
    int i = hit / bs;
    if (!rn->st || i >= n_full) return hit;
    store_chain(rn->st_model, c->toks, n_full, bs, rn->st_keys);
    const int first = i;
    /* the blocks' KV pages, then one parallel load (store.h) */
    uint16_t *kp_one[64], *vp_one[64];
    const int want = n_full - first;
    uint16_t **kp = want <= 64 ? kp_one : malloc((size_t)want * sizeof *kp);
    uint16_t **vp = want <= 64 ? vp_one : malloc((size_t)want * sizeof *vp);
    int n_pages = 0;
    if (kp && vp)
        while (n_pages < want && engine_kv_block(rn->e, c->kv.blocks[first + n_pages], &kp[n_pages], &vp[n_pages]))
            n_pages++;
    i = first + store_get_blocks(rn->st, &rn->st_keys[first], n_pages, kp, vp);
    if (kp != kp_one) free(kp);
    if (vp != vp_one) free(vp);
    if (i == first) return hit;
    kv_seq_commit(rn->kv, &c->kv, c->toks, i * bs);
    for (int b = first; b < i; b++) {
        const int32_t id = c->kv.blocks[b];
        rn->st_serial[id] = kv_cache_block_serial(rn->kv, id); /* 0 when a twin holds the key: fine */
    }
    pthread_mutex_lock(&rn->met_lock);
    rn->met.store_hits += (uint64_t)((i - first) * bs);
    pthread_mutex_unlock(&rn->met_lock);
    return i * bs;
}

/* Ends a choice: flushes text, frees its blocks, tells the reader. */
static void finish_choice(sched_runner *rn, choice *c, sched_finish fin, int end) {
    if (c->state == CH_DONE) return;
    sched_job *j = c->job;
    if (c->state == CH_RUNNING) remove_running(rn, c);
    if (c->state == CH_WAITING) {
        sched_remove(rn->sq, &c->item);
        pthread_mutex_lock(&rn->lock);
        rn->n_waiting_total--;
        pthread_mutex_unlock(&rn->lock);
    }
    store_save(rn, c);
    kv_seq_release(rn->kv, &c->kv);
    if (rn->dr) draft_seq_release(rn->dr, &c->ds);
    c->state = CH_DONE;
    /* counted before the reader can see the end, so stats read after a
     * finished job include it */
    pthread_mutex_lock(&rn->met_lock);
    rn->met.ended[end]++;
    if (c->t_last_ns) sched_hist_observe(&rn->met.e2e, secs(c->t_last_ns - j->t_arrival_ns));
    pthread_mutex_unlock(&rn->met_lock);
    pthread_mutex_lock(&j->lock);
    if (end == SCHED_END_STOP || end == SCHED_END_LENGTH) {
        if (!c->stopped) {
            size_t n;
            const char *rest = detok_flush(&c->dt, &n);
            emit(c, rest, n);
            out_text(c, c->held.data, c->held.len); /* no stop string can complete now */
            c->held.len = 0;
        }
    }
    c->out.finished = true;
    c->out.finish = fin;
    j->n_finished++;
    j->completion_tokens += c->n_gen;
    const bool all = j->n_finished == j->n_choices;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);

    if (all) log_job(rn, j, end == SCHED_END_STOP || end == SCHED_END_LENGTH ? "ok" : sched_end_name(end));
}

/* Fails every unfinished choice of a job (timeout, cancel, shutdown). */
static void fail_job(sched_runner *rn, sched_job *j, ryot_status code, int end, const char *msg) {
    pthread_mutex_lock(&j->lock);
    if (!j->failed && code != RYOT_OK) { /* a cancel is no error: nobody reads it */
        set_error(&j->err, code, NULL, "%s", msg);
        j->failed = true;
    }
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->n_choices; i++) finish_choice(rn, &j->ch[i], SCHED_FINISH_NONE, end);
}

static void drop_job(sched_runner *rn, int k) {
    sched_job *j = rn->jobs[k];
    rn->jobs[k] = rn->jobs[--rn->n_jobs];
    sched_job_unref(j);
}

static void take_intake(sched_runner *rn) {
    pthread_mutex_lock(&rn->lock);
    for (int k = 0; k < rn->n_intake; k++) {
        sched_job *j = rn->intake[k];
        if (rn->n_jobs == rn->cap_jobs) {
            int cap = rn->cap_jobs ? 2 * rn->cap_jobs : 64;
            sched_job **a = realloc(rn->jobs, (size_t)cap * sizeof *a);
            if (!a) { /* cannot track it: fail it now */
                rn->n_waiting_total -= j->n_choices;
                pthread_mutex_lock(&j->lock);
                set_error(&j->err, RYOT_ERR_UNAVAILABLE, NULL, "out of memory");
                j->failed = true;
                pthread_cond_broadcast(&j->cond);
                pthread_mutex_unlock(&j->lock);
                sched_job_unref(j);
                continue;
            }
            rn->jobs = a;
            rn->cap_jobs = cap;
        }
        rn->jobs[rn->n_jobs++] = j;
        for (int i = 0; i < j->n_choices; i++) {
            j->ch[i].state = CH_WAITING;
            RYOT_ASSERT(sched_push(rn->sq, &j->ch[i].item, true) == RYOT_OK);
        }
    }
    rn->n_intake = 0;
    pthread_mutex_unlock(&rn->lock);
}

/* Cancellations, timeouts, finished jobs. */
static void sweep_jobs(sched_runner *rn, int64_t now) {
    for (int k = rn->n_jobs - 1; k >= 0; k--) {
        sched_job *j = rn->jobs[k];
        if (atomic_load(&j->cancel))
            fail_job(rn, j, RYOT_OK, SCHED_END_CANCELLED, "cancelled");
        else if (j->deadline_ns && now > j->deadline_ns)
            fail_job(rn, j, RYOT_ERR_TIMEOUT, SCHED_END_TIMEOUT, "the request timed out (its \"timeout\" passed)");
        else if (rn->cut)
            fail_job(rn, j, RYOT_ERR_UNAVAILABLE, SCHED_END_ABORTED, "the server shut down before the request finished");
        bool done = true;
        for (int i = 0; i < j->n_choices; i++) done = done && j->ch[i].state == CH_DONE;
        if (done) drop_job(rn, k);
    }
}

static void preempt(sched_runner *rn, choice *v) {
    remove_running(rn, v);
    store_save(rn, v);
    kv_seq_release(rn->kv, &v->kv);
    if (rn->dr) draft_seq_release(rn->dr, &v->ds);
    v->n_done = 0;
    v->state = CH_WAITING;
    sched_push(rn->sq, &v->item, true);
    pthread_mutex_lock(&rn->lock);
    rn->n_waiting_total++;
    pthread_mutex_unlock(&rn->lock);
    pthread_mutex_lock(&rn->met_lock);
    rn->met.preemptions++;
    pthread_mutex_unlock(&rn->met_lock);
}

/* Preemption victim among running sequences other than `keep` whose tier
 * number is min_tier or more (0: any tier); NULL when none. */
static choice *victim(sched_runner *rn, const choice *keep, int min_tier) {
    sched_item *items[4096];
    choice *who[4096];
    int n = 0;
    for (int i = 0; i < rn->n_running && n < 4096; i++) {
        choice *c = rn->running[i];
        if (c == keep || c->item.tier < min_tier) continue;
        items[n] = &c->item;
        who[n++] = c;
    }
    int v = sched_pick_victim(items, n);
    return v < 0 ? NULL : who[v];
}

static void admit(sched_runner *rn, int64_t now) {
    const int64_t now_ms = now / 1000000;
    while (rn->n_running < rn->p.max_running) {
        sched_item *it = sched_peek(rn->sq, now_ms);
        if (!it) break;
        choice *c = it->owner;
        /* cached blocks hold KV, not the logits prompt logprobs need */
        const bool need_rows = c->job->prompt_lp && c->n_plp < c->n_prompt;
        int hit = need_rows ? 0 : kv_seq_match_prefix(rn->kv, &c->kv, c->toks, c->n_toks - 1);
        bool ok = kv_seq_reserve(rn->kv, &c->kv, c->n_toks);
        while (!ok) { /* only a strictly lower tier gives way to a new sequence */
            choice *v = victim(rn, c, it->tier + 1);
            if (!v) break;
            preempt(rn, v);
            ok = kv_seq_reserve(rn->kv, &c->kv, c->n_toks);
        }
        if (!ok) {
            kv_seq_release(rn->kv, &c->kv);
            break;
        }
        if (!need_rows) hit = store_load(rn, c, hit);
        sched_pop(rn->sq, now_ms);
        pthread_mutex_lock(&rn->lock);
        rn->n_waiting_total--;
        pthread_mutex_unlock(&rn->lock);
        c->state = CH_RUNNING;
        c->n_done = hit;
        rn->running[rn->n_running++] = c;
        pthread_mutex_lock(&rn->met_lock);
        if (!c->admitted_once) {
            c->admitted_once = true;
            c->t_admit_ns = now;
            c->n_cached = hit;
            rn->met.prefix_queries += (uint64_t)c->n_prompt;
            rn->met.prefix_hits += (uint64_t)(hit < c->n_prompt ? hit : c->n_prompt);
            rn->met.prompt_tokens += (uint64_t)c->n_prompt;
            sched_hist_observe(&rn->met.queue, secs(now - c->job->t_arrival_ns));
            pthread_mutex_lock(&c->job->lock);
            c->job->cached_tokens += hit < c->n_prompt ? hit : c->n_prompt;
            pthread_mutex_unlock(&c->job->lock);
        }
        pthread_mutex_unlock(&rn->met_lock);
    }
}

/* Bans (logit -INFINITY) every token the choice's grammar rejects now;
 * false when the matcher ran out of memory. */
static bool apply_grammar(sched_runner *rn, choice *c) {
    if (grammar_mask(c->gm, rn->gmask) != RYOT_OK) return false;
    grammar_mask_apply(rn->gmask, rn->logits, rn->n_vocab);
    return true;
}

/* Sampling after the forward pass for a choice whose batch row ended at its
 * last token; draft: the drafted token this row verifies (-1: none), q the
 * distribution it was drawn from (NULL: a deterministic draft).
 * Returns the token appended, or -1 when none was (the choice may have
 * finished either way). */
static int32_t after_token(sched_runner *rn, choice *c, const float *row, int64_t now, int32_t draft,
                           const float *q) {
    sched_job *j = c->job;
    if (c->state != CH_RUNNING) return -1; /* its job failed earlier in this step */
    memcpy(rn->logits, row, (size_t)rn->n_vocab * sizeof(float));
    if (j->ignore_eos)
        for (int i = 0; i < rn->n_eog; i++) rn->logits[rn->eog[i]] = -INFINITY;
    if (c->gm && !apply_grammar(rn, c)) {
        fail_job(rn, j, RYOT_ERR_UNAVAILABLE, SCHED_END_ABORTED, "out of memory in the grammar matcher");
        return -1;
    }
    /* -1: nothing allowed (a grammar that needs bytes no token has) */
    const int32_t tok = sampler_sample_draft(c->smp, rn->logits, draft, q);
    if (tok < 0) {
        finish_choice(rn, c, SCHED_FINISH_STOP, SCHED_END_STOP);
        return -1;
    }
    sampler_accept(c->smp, tok);
    if (c->gm) {
        const bool in_grammar = grammar_matcher_accept_token(c->gm, tok);
        RYOT_ASSERT(in_grammar); /* the sampler only draws finite logits */
    }
    c->toks[c->n_toks++] = tok;
    c->n_gen++;
    pthread_mutex_lock(&rn->met_lock);
    rn->met.generation_tokens++;
    if (!c->t_first_ns) {
        const double ttft = secs(now - j->t_arrival_ns);
        sched_hist_observe(&rn->met.ttft, ttft);
        if (ttft * 1000.0 <= (double)rn->p.target_ms[j->tier])
            rn->met.target_met[j->tier]++;
        else
            rn->met.target_missed[j->tier]++;
    } else {
        sched_hist_observe(&rn->met.itl, secs(now - c->t_last_ns));
    }
    pthread_mutex_unlock(&rn->met_lock);
    if (!c->t_first_ns) c->t_first_ns = now;
    c->t_last_ns = now;

    const bool eog = !j->ignore_eos && tokenizer_is_eog(rn->tok, tok);
    pthread_mutex_lock(&j->lock);
    if (j->top_logprobs >= 0) {
        const sampler_logprobs *lp = sampler_last_logprobs(c->smp);
        if (lp) add_logprobs(rn, c, lp);
    }
    bool stop = false;
    if (!eog) {
        size_t n;
        const char *p = detok_push(&c->dt, tok, &n);
        stop = emit(c, p, n);
        c->stopped = stop;
    }
    c->out.n_gen = c->n_gen;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    if (eog || stop || (c->gm && grammar_matcher_is_finished(c->gm)))
        finish_choice(rn, c, SCHED_FINISH_STOP, SCHED_END_STOP);
    else if (c->n_gen >= j->max_tokens || c->n_toks >= rn->p.ctx)
        finish_choice(rn, c, SCHED_FINISH_LENGTH, SCHED_END_LENGTH);
    return tok;
}

/* Prompt lookup: the tokens that followed the most recent earlier
 * occurrence of the longest suffix n-gram (SCHED_SPEC_NGRAM down to 1
 * tokens) of toks[0..n), at most k_max of them, into out; returns how many
 * (0: no occurrence).  O(n * SCHED_SPEC_NGRAM) per call. */
static int draft_lookup(const int32_t *toks, int n, int k_max, int32_t *out) {
    for (int g = SCHED_SPEC_NGRAM; g >= SCHED_SPEC_NGRAM_MIN; g--) {
        if (n < g + 1) continue;
        const int32_t *suf = toks + n - g;
        for (int i = n - g - 1; i >= 0; i--) {
            if (toks[i] != suf[0] || memcmp(toks + i, suf, (size_t)g * sizeof *toks) != 0) continue;
            int k = n - (i + g);
            if (k > k_max) k = k_max;
            memcpy(out, toks + i + g, (size_t)k * sizeof *out);
            return k;
        }
    }
    return 0;
}

/* Drafts a decoding choice may verify this step, within its own limits
 * (see runner.h): spare tokens and rows are the caller's. */
static int draft_budget(const sched_runner *rn, const choice *c) {
    const sched_job *j = c->job;
    if (!c->draft || c->gm || j->top_logprobs >= 0) return 0;
    int k = c->spec_k > 0 ? c->spec_k : rn->p.spec_draft;
    /* every draft accepted still leaves room for the model's own token */
    const int left = j->max_tokens - c->n_gen - 1;
    if (k > left) k = left;
    if (k > rn->p.ctx - c->n_toks) k = rn->p.ctx - c->n_toks;
    const int exact = engine_exact_rows_ctx(rn->e);
    if (exact > 0 && k > exact - c->n_toks) k = exact - c->n_toks;
    return k > 0 ? k : 0;
}

/* Samples a choice's verify rows row0..row0+n_draft after the forward: row
 * i checks draft i; the run ends at the first disagreement (the model's
 * token replaces the draft) or when the choice finishes.  Then the KV of
 * the fed tokens that were not kept is dropped. */
static void verify_drafts(sched_runner *rn, choice *c, int row0, int64_t now) {
    const int nd = c->n_draft;
    int acc = 0;
    for (int i = 0; i <= nd; i++) {
        const int32_t want = i < nd ? c->draft[i] : -1;
        const float *q = i < nd && c->ds.q ? c->ds.q + (size_t)i * (size_t)rn->n_vocab : NULL;
        const int32_t tok = after_token(rn, c, engine_logits(rn->e, row0 + i), now, want, q);
        if (tok < 0 || tok != want) break;
        acc++;
        if (c->state != CH_RUNNING) break;
    }
    /* adaptive length: a run accepted whole may grow; a rejection shrinks
     * the next draft to what was accepted this time, plus one */
    if (acc == nd) c->spec_k = nd + 2 < rn->p.spec_draft ? nd + 2 : rn->p.spec_draft;
    else c->spec_k = acc + 1;
    pthread_mutex_lock(&rn->met_lock);
    rn->met.spec_drafted += (uint64_t)nd;
    rn->met.spec_accepted += (uint64_t)acc;
    pthread_mutex_unlock(&rn->met_lock);
    if (c->state != CH_RUNNING) return; /* finished: its blocks are released */
    if (rn->dr) draft_seq_rollback(rn->dr, &c->ds, c->spec_base, acc);
    /* valid KV: the decode token and the accepted drafts; the last token is
     * the model's own, computed next step */
    c->n_done = c->n_toks - 1;
    kv_seq_commit(rn->kv, &c->kv, c->toks, c->n_done);
    kv_seq_truncate(rn->kv, &c->kv, c->n_done);
}

/* Draft model: the placed choices' drafts in one drafter_propose; a choice
 * gets fewer than it was placed with (the draft ended, its draft KV is
 * full) gives the rest of its batch tokens up. */
static void propose_drafts(sched_runner *rn, int n_snap) {
    draft_req reqs[SCHED_SPEC_ROWS];
    choice *who[SCHED_SPEC_ROWS];
    int n = 0;
    for (int i = 0; i < n_snap && n < SCHED_SPEC_ROWS; i++) {
        choice *c = rn->snap[i];
        if (c->state != CH_RUNNING || c->n_draft <= 0) continue;
        c->spec_base = c->n_toks;
        reqs[n] = (draft_req){.s = &c->ds, .toks = c->toks, .n_toks = c->n_toks, .k = c->n_draft, .out = c->draft};
        who[n++] = c;
    }
    if (n == 0) return;
    drafter_propose(rn->dr, reqs, n);
    for (int i = 0; i < n; i++) {
        choice *c = who[i];
        c->take -= c->n_draft - reqs[i].n_out;
        c->n_draft = reqs[i].n_out;
        if (c->n_draft == 0) draft_seq_rollback(rn->dr, &c->ds, c->spec_base, 0);
    }
}

/* A prompt_logprobs sequence whose prompt is not yet reported: its prefill
 * asks for every row's logits. */
static bool wants_rows(const choice *c) { return c->job->prompt_lp && c->n_plp < c->n_prompt; }

/* One step: batch assembly, forward, sampling.  false when idle.
 * Decode tokens are placed first, then prefill chunks in admission order
 * while the token budget lasts; each placed sequence first gets the blocks
 * its chunk writes, preempting (lowest tier, newest) when none are left. */
static bool step(sched_runner *rn) {
    int budget = rn->p.batch_tokens;
    int lp_rows = SCHED_PROMPT_LP_ROWS; /* prompt rows with logits left in this step */
    const int n_snap = rn->n_running;
    memcpy(rn->snap, rn->running, (size_t)n_snap * sizeof *rn->snap);
    int n_decode = 0;
    for (int i = 0; i < n_snap; i++) {
        choice *c = rn->snap[i];
        c->take = c->n_draft = 0;
        n_decode += c->state == CH_RUNNING && c->n_done == c->n_toks - 1;
    }
    /* drafts only use batch tokens no decode token needs */
    int spare = budget - n_decode;
    int spec_rows = SCHED_SPEC_ROWS;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n_snap; i++) {
            choice *c = rn->snap[i];
            const bool decode = c->n_done == c->n_toks - 1;
            if (c->state != CH_RUNNING || (pass == 0) != decode) continue;
            int take = c->n_toks - c->n_done;
            if (take > budget) take = budget;
            if (!decode && wants_rows(c) && take > lp_rows) take = lp_rows;
            if (take <= 0) continue;
            if (decode && spare > 0 && spec_rows > 0) {
                int k = draft_budget(rn, c);
                if (k > spare) k = spare;
                if (k > spec_rows) k = spec_rows;
                /* a draft model proposes after placement (propose_drafts) */
                if (k > 0 && !rn->dr) k = draft_lookup(c->toks, c->n_toks, k, c->draft);
                /* drafts never preempt anyone: without blocks for them, none */
                if (k > 0 && kv_seq_reserve(rn->kv, &c->kv, c->n_done + 1 + k)) {
                    c->n_draft = k;
                    take += k;
                    spare -= k;
                    spec_rows -= k;
                }
            }
            bool ok = kv_seq_reserve(rn->kv, &c->kv, c->n_done + take);
            while (!ok) {
                choice *v = victim(rn, NULL, 0);
                if (!v) break;
                if (v->take > 0) { /* already placed: give its tokens back */
                    budget += v->take;
                    spare += v->n_draft;
                    spec_rows += v->n_draft;
                    v->take = v->n_draft = 0;
                }
                preempt(rn, v);
                if (v == c) break;
                ok = kv_seq_reserve(rn->kv, &c->kv, c->n_done + take);
            }
            if (!ok || c->state != CH_RUNNING) continue;
            c->take = take;
            budget -= take;
            if (!decode && wants_rows(c)) lp_rows -= take;
        }
    }
    int n = 0, k = 0;
    if (rn->dr) propose_drafts(rn, n_snap);
    for (int i = 0; i < n_snap; i++) {
        choice *c = rn->snap[i];
        if (c->state != CH_RUNNING || c->take <= 0) continue;
        const int own = c->take - c->n_draft; /* tokens of the sequence itself */
        memcpy(rn->btoks + n, c->toks + c->n_done, (size_t)own * sizeof(int32_t));
        if (c->n_draft > 0) memcpy(rn->btoks + n + own, c->draft, (size_t)c->n_draft * sizeof(int32_t));
        rn->bseq[k] = (engine_seq){.blocks = c->kv.blocks,
                                     .n_blocks = c->kv.n_blocks,
                                     .pos = c->n_done,
                                     .n = c->take,
                                     .n_logits = wants_rows(c) || c->n_draft ? c->take
                                                 : c->n_done + c->take == c->n_toks ? 1 : 0};
        rn->bwho[k++] = c;
        n += c->take;
    }
    if (k == 0) return false;
    ryot_error err = {0};
    if (engine_forward(rn->e, rn->btoks, n, rn->bseq, k, &err)) {
        /* a bug, not input: report and end these sequences */
        fprintf(stderr, "ryot serve: engine step failed: %s\n", err.msg);
        for (int b = 0; b < k; b++) fail_job(rn, rn->bwho[b]->job, RYOT_ERR_INTERNAL, SCHED_END_ABORTED, "internal engine error");
        return true;
    }
    const int64_t now = ryot_now_ns();
    for (int b = 0, row = 0; b < k; b++) {
        choice *c = rn->bwho[b];
        const int n_logits = rn->bseq[b].n_logits;
        if (c->n_draft > 0) {
            verify_drafts(rn, c, row, now);
            row += n_logits;
            continue;
        }
        if (wants_rows(c)) prompt_logprobs(rn, c, c->n_done, rn->bseq[b].n, row);
        c->n_done += rn->bseq[b].n;
        kv_seq_commit(rn->kv, &c->kv, c->toks, c->n_done);
        row += n_logits;
        if (c->n_done < c->n_toks) continue;
        if (c->job->max_tokens == 0) /* prefill only (loglikelihood scoring) */
            finish_choice(rn, c, SCHED_FINISH_LENGTH, SCHED_END_LENGTH);
        else
            after_token(rn, c, engine_logits(rn->e, row - 1), now, -1, NULL);
    }
    return true;
}

static void publish_gauges(sched_runner *rn) {
    kv_cache_stats ks;
    kv_cache_get_stats(rn->kv, &ks);
    pthread_mutex_lock(&rn->met_lock);
    memset(rn->met.running, 0, sizeof rn->met.running);
    for (int i = 0; i < rn->n_running; i++) rn->met.running[rn->running[i]->item.tier]++;
    for (int t = 0; t < SCHED_N_TIERS; t++) rn->met.waiting[t] = sched_waiting_tier(rn->sq, t);
    rn->met.kv_total = ks.n_blocks;
    rn->met.kv_free = ks.n_free;
    rn->met.kv_cached = ks.n_cached;
    rn->met.kv_used = ks.n_used;
    pthread_mutex_unlock(&rn->met_lock);
}

static void *engine_main(void *arg) {
    sched_runner *rn = arg;
    for (;;) {
        pthread_mutex_lock(&rn->lock);
        while (!rn->quit && rn->n_intake == 0 && rn->n_jobs == 0) pthread_cond_wait(&rn->wake, &rn->lock);
        const bool quit = rn->quit;
        pthread_mutex_unlock(&rn->lock);
        take_intake(rn);
        const int64_t now = ryot_now_ns();
        sweep_jobs(rn, now);
        if (quit && rn->n_jobs == 0) break;
        admit(rn, now);
        const bool worked = step(rn);
        if (worked) {
            pthread_mutex_lock(&rn->met_lock);
            rn->met.steps++;
            pthread_mutex_unlock(&rn->met_lock);
        }
        sweep_jobs(rn, ryot_now_ns());
        publish_gauges(rn);
        if (!worked && rn->n_jobs > 0) {
            /* waiting for blocks or for a cancel: sleep briefly instead of spinning */
            pthread_mutex_lock(&rn->lock);
            struct timespec ts = ryot_deadline_ms(5);
            if (rn->n_intake == 0 && !rn->quit) pthread_cond_timedwait(&rn->wake, &rn->lock, &ts);
            pthread_mutex_unlock(&rn->lock);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

ryot_status sched_runner_new(const ryot_model *rm, const sched_runner_params *pp, sched_runner **out, ryot_error *err) {
    *out = NULL;
    sched_runner_params p = pp ? *pp : sched_runner_default_params();
    sched_runner_params d = sched_runner_default_params();
    const model *m = ryot_model_internal(rm);
    if (p.ctx <= 0) p.ctx = d.ctx;
    if (p.ctx > m->hp.n_ctx_train && m->hp.n_ctx_train > 0) p.ctx = m->hp.n_ctx_train;
    if (p.kv_block_size <= 0) p.kv_block_size = d.kv_block_size;
    if (p.batch_tokens <= 0) p.batch_tokens = d.batch_tokens;
    if (p.max_running <= 0) p.max_running = d.max_running;
    if (p.max_running > 4096) return ryot_fail(err, RYOT_ERR_INVALID, "--max-running %d is too large", p.max_running);
    if (p.batch_tokens < p.max_running) p.batch_tokens = p.max_running;
    if (p.kv_blocks <= 0) {
        const int tokens = p.ctx > 16384 ? p.ctx : 16384;
        p.kv_blocks = (tokens + p.kv_block_size - 1) / p.kv_block_size;
    }
    if ((int64_t)p.kv_blocks * p.kv_block_size < p.ctx)
        return ryot_fail(err, RYOT_ERR_INVALID, "%d KV blocks of %d positions cannot hold one sequence of %d",
                         p.kv_blocks, p.kv_block_size, p.ctx);
    sched_runner *c = calloc(1, sizeof *c);
    if (!c) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    c->rm = rm;
    c->m = m;
    c->tok = ryot_model_tokenizer(rm);
    c->n_vocab = m->hp.n_vocab;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    pthread_mutex_init(&c->met_lock, NULL);
    pthread_mutex_init(&c->gvocab_lock, NULL);
    sched_stats_init(&c->met);
    engine_params ep = engine_params_default(m);
    ep.n_ctx = p.ctx;
    ep.n_batch = p.batch_tokens;
    if (p.n_threads > 0) ep.n_threads = p.n_threads;
    if (p.spec_draft < 0) p.spec_draft = 0;
    /* runner.h: prompt logprobs and draft rows */
    ep.n_logits_max = p.max_running + SCHED_PROMPT_LP_ROWS + (p.spec_draft > 0 ? SCHED_SPEC_ROWS : 0);
    ep.kv_block_size = p.kv_block_size;
    ep.kv_blocks = p.kv_blocks;
    ep.max_seqs = p.max_running;
    p.n_threads = ep.n_threads;
    c->p = p;
    sched_params sp = sched_params_default();
    sp.max_queue = 0; /* admission control counts in sched_submit */
    sp.age_ms = p.age_ms;
    memcpy(sp.target_ms, p.target_ms, sizeof sp.target_ms);
    ryot_status st = engine_new(m, &ep, &c->e, err);
    if (!st) st = kv_cache_new(p.kv_blocks, p.kv_block_size, &c->kv, err);
    if (!st) st = sched_new(&sp, &c->sq, err);
    if (!st && p.draft_model && p.spec_draft > 0) {
        draft_params dp = {.ctx = p.ctx,
                           .batch_tokens = p.batch_tokens,
                           .max_seqs = p.max_running,
                           .k_max = p.spec_draft,
                           .kv_blocks = p.kv_blocks,
                           .kv_block_size = p.kv_block_size,
                           .n_threads = p.n_threads,
                           .share_workers = c->e};
        st = drafter_new(rm, p.draft_model, &dp, &c->dr, err);
    }
    if (!st && p.store && !c->dr) {
        store_kv_shape sh;
        store_shape_of(rm, p.kv_block_size, &sh);
        store_model_id(rm, &sh, c->st_model);
        c->st = p.store;
        c->st_keys = malloc(((size_t)p.ctx / (size_t)p.kv_block_size + 1) * sizeof *c->st_keys);
        c->st_serial = calloc((size_t)p.kv_blocks, sizeof *c->st_serial);
        uint16_t *k, *v;
        if (!c->st_keys || !c->st_serial) st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        else if (!engine_kv_block(c->e, 0, &k, &v))
            st = ryot_fail(err, RYOT_ERR_UNSUPPORTED, "--store: the backend keeps its KV off the host");
    }
    if (!st) {
        c->running = calloc((size_t)p.max_running, sizeof *c->running);
        c->snap = calloc((size_t)p.max_running, sizeof *c->snap);
        c->btoks = malloc((size_t)p.batch_tokens * sizeof *c->btoks);
        c->bseq = calloc((size_t)p.max_running, sizeof *c->bseq);
        c->bwho = calloc((size_t)p.max_running, sizeof *c->bwho);
        c->logits = malloc((size_t)c->n_vocab * sizeof *c->logits);
        c->cand = malloc(sampler_scratch_size(c->n_vocab));
        c->gmask = malloc((size_t)(c->n_vocab + 31) / 32 * sizeof *c->gmask);
        for (int32_t t = 0; c->logits && t < c->n_vocab; t++)
            if (tokenizer_is_eog(c->tok, t)) c->n_eog++;
        c->eog = malloc((size_t)(c->n_eog + 1) * sizeof *c->eog);
        for (int32_t t = 0, k = 0; c->eog && t < c->n_vocab; t++)
            if (tokenizer_is_eog(c->tok, t)) c->eog[k++] = t;
        if (!c->cand || !c->gmask || !c->eog || !c->running || !c->snap || !c->btoks || !c->bseq || !c->bwho || !c->logits)
            st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    if (!st && pthread_create(&c->thread, NULL, engine_main, c) != 0)
        st = ryot_fail(err, RYOT_ERR_INTERNAL, "cannot start the engine thread");
    if (st) {
        sched_runner_free(c);
        return st;
    }
    c->thread_started = true;
    *out = c;
    return RYOT_OK;
}

int sched_runner_drain(sched_runner *c, double timeout_s) {
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_mutex_unlock(&c->lock);
    const int64_t end = ryot_now_ns() + (int64_t)(timeout_s * 1e9);
    for (;;) {
        pthread_mutex_lock(&c->lock);
        const int left = c->n_jobs + c->n_intake; /* n_jobs is read racily: only a progress check */
        pthread_mutex_unlock(&c->lock);
        if (left == 0 || ryot_now_ns() >= end) {
            pthread_mutex_lock(&c->lock);
            c->cut = true;
            pthread_cond_signal(&c->wake);
            pthread_mutex_unlock(&c->lock);
            return left;
        }
        usleep(20000);
    }
}

void sched_runner_free(sched_runner *c) {
    if (!c) return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->lock);
        c->stopping = true;
        c->cut = true;
        c->quit = true;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    for (int k = 0; k < c->n_intake; k++) {
        sched_job *j = c->intake[k];
        pthread_mutex_lock(&j->lock);
        set_error(&j->err, RYOT_ERR_UNAVAILABLE, NULL, "the server shut down");
        j->failed = true;
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->lock);
        sched_job_unref(j);
    }
    free(c->intake);
    free(c->jobs);
    free(c->running);
    free(c->snap);
    free(c->btoks);
    free(c->bseq);
    free(c->bwho);
    free(c->logits);
    free(c->cand);
    free(c->gmask);
    grammar_vocab_free(c->gvocab);
    free(c->eog);
    free(c->st_keys);
    free(c->st_serial);
    sched_free(c->sq);
    kv_cache_free(c->kv);
    engine_free(c->e);
    drafter_free(c->dr);
    pthread_mutex_destroy(&c->met_lock);
    pthread_mutex_destroy(&c->gvocab_lock);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    free(c);
}

const sched_runner_params *sched_runner_get_params(const sched_runner *c) { return &c->p; }
const ryot_model *sched_runner_model(const sched_runner *c) { return c->rm; }

void sched_runner_stats(sched_runner *c, sched_stats *out) {
    pthread_mutex_lock(&c->met_lock);
    *out = c->met;
    pthread_mutex_unlock(&c->met_lock);
}
