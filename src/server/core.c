/* The serving core's engine thread: admission, batch assembly, sampling and
 * output (see core.h). */
#include "server/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/api_internal.h"
#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

enum { CH_NEW, CH_WAITING, CH_RUNNING, CH_DONE };

struct srv_choice {
    srv_job *job;
    int index;             /* choice index in the response */
    int prompt_index;
    int state;             /* CH_*, engine thread only */
    sched_item item;
    kv_seq kv;
    sampler *smp;
    detok dt;
    int32_t *toks;         /* prompt, then generated tokens */
    int n_toks, cap_toks;
    int n_prompt;
    int n_done;            /* positions whose KV is computed */
    int n_gen;
    int take;              /* tokens placed in the current step */
    bool stopped;          /* a stop string matched: nothing more to emit */
    srv_buf held;          /* text held back while it may start a stop string */
    int64_t t_first_ns, t_last_ns, t_admit_ns;
    int n_cached;          /* prompt tokens taken from the prefix cache (first admission) */
    bool admitted_once;
    /* channel, under job->lock */
    srv_take out;
};

struct srv_core {
    const ryot_model *rm;
    const model *m;
    const tokenizer *tok;
    srv_core_params p;
    engine *e;
    kv_cache *kv;
    sched *sq;
    int n_vocab;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;  /* intake, flags */
    pthread_cond_t wake;
    srv_job **intake;      /* submitted, not yet seen by the engine thread */
    int n_intake, cap_intake;
    int n_waiting_total;   /* sequences queued or in intake (admission control) */
    bool stopping;         /* refuse new jobs */
    bool quit;             /* engine thread exits */
    bool cut;              /* fail everything still there */

    /* engine thread */
    srv_choice **running;  /* in admission order */
    int n_running;
    srv_choice **snap;     /* running[] at the start of a step */
    srv_job **jobs;        /* jobs the engine thread holds */
    int n_jobs, cap_jobs;
    int32_t *btoks;        /* batch tokens */
    engine_seq *bseq;
    srv_choice **bwho;
    float *logits;         /* scratch row for sampling */
    void *cand;            /* candidate scratch shared by every sampler (engine thread) */
    int32_t *eog;          /* end-of-generation ids (ignore_eos bans them) */
    int n_eog;

    srv_metrics met;       /* own lock */
};

int64_t srv_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool srv_buf_append(srv_buf *b, const char *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return false;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return true;
}

void srv_buf_free(srv_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void srv_take_clear(srv_take *t) {
    t->text.len = 0;
    if (t->text.data) t->text.data[0] = 0;
    t->n_lp = 0;
}

void srv_take_free(srv_take *t) {
    srv_buf_free(&t->text);
    free(t->lp);
    memset(t, 0, sizeof *t);
}

srv_core_params srv_core_default_params(void) {
    srv_core_params p = {0};
    p.ctx = 4096;
    p.kv_block_size = 64;
    p.batch_tokens = 512;
    p.max_running = 64;
    p.max_queue = 1024;
    sched_params sp = sched_params_default();
    p.age_ms = sp.age_ms;
    memcpy(p.target_ms, sp.target_ms, sizeof p.target_ms);
    p.log_requests = true;
    return p;
}

/* ------------------------------------------------------------------ jobs */

static void choice_free(srv_choice *c) {
    sampler_free(c->smp);
    detok_free(&c->dt);
    kv_seq_destroy(&c->kv);
    free(c->toks);
    srv_buf_free(&c->held);
    srv_take_free(&c->out);
}

void srv_job_ref(srv_job *j) { atomic_fetch_add(&j->refs, 1); }

void srv_job_unref(srv_job *j) {
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1) return;
    for (int i = 0; i < j->n_choices; i++) choice_free(&j->ch[i]);
    free(j->ch);
    srv_request_free(&j->req);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
}

srv_job *srv_job_new(srv_core *c, srv_request *req, int32_t *const *prompts, const int *n_prompt, srv_error *e) {
    const int n_prompts = req->ep == SRV_EP_CHAT ? 1 : req->n_prompts;
    for (int i = 0; i < req->n_logit_bias; i++)
        if (req->logit_bias[i].token >= c->n_vocab) {
            srv_error_set(e, 400, "logit_bias", "logit_bias token %d is outside the vocabulary (%d tokens)",
                          (int)req->logit_bias[i].token, c->n_vocab);
            return NULL;
        }
    int max_tokens = req->max_tokens;
    int longest = 0;
    for (int i = 0; i < n_prompts; i++) {
        if (n_prompt[i] < 1) {
            srv_error_set(e, 400, req->ep == SRV_EP_CHAT ? "messages" : "prompt", "the prompt is empty");
            return NULL;
        }
        if (n_prompt[i] > longest) longest = n_prompt[i];
    }
    if (longest >= c->p.ctx) {
        srv_error_set(e, 400, req->ep == SRV_EP_CHAT ? "messages" : "prompt",
                      "the prompt has %d tokens; this server's context is %d tokens", longest, c->p.ctx);
        return NULL;
    }
    if (max_tokens < 0) max_tokens = req->ep == SRV_EP_COMPLETIONS ? 16 : c->p.ctx - longest;
    if ((int64_t)longest + max_tokens > c->p.ctx) {
        srv_error_set(e, 400, "max_tokens",
                      "prompt (%d tokens) + max_tokens (%d) exceeds this server's context of %d tokens", longest,
                      max_tokens, c->p.ctx);
        return NULL;
    }
    srv_job *j = calloc(1, sizeof *j);
    if (!j) goto nomem;
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, false);
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->core = c;
    j->max_tokens = max_tokens;
    j->n_choices = n_prompts * req->n;
    j->ch = calloc((size_t)j->n_choices, sizeof *j->ch);
    j->req = *req; /* taken over */
    memset(req, 0, sizeof *req);
    if (!j->ch) {
        srv_job_unref(j);
        goto nomem;
    }
    srv_make_id(j->id, sizeof j->id, j->req.ep == SRV_EP_CHAT ? "chatcmpl-" : "cmpl-");
    j->created = (int64_t)time(NULL);
    j->t_arrival_ns = srv_now_ns();
    if (j->req.timeout_s > 0) j->deadline_ns = j->t_arrival_ns + (int64_t)(j->req.timeout_s * 1e9);
    for (int i = 0; i < n_prompts; i++) j->prompt_tokens += n_prompt[i];
    for (int k = 0; k < j->n_choices; k++) {
        srv_choice *ch = &j->ch[k];
        const int pi = k / j->req.n;
        ch->job = j;
        ch->index = k;
        ch->prompt_index = pi;
        ch->n_prompt = n_prompt[pi];
        ch->cap_toks = n_prompt[pi] + max_tokens + 1;
        ch->toks = malloc((size_t)ch->cap_toks * sizeof *ch->toks);
        ryot_error err = {0};
        sampler_params sp = j->req.sp;
        if (sp.seed != SAMPLER_SEED_RANDOM) sp.seed += (uint64_t)(k % j->req.n); /* choices differ */
        if (!ch->toks || kv_seq_init(&ch->kv, ch->cap_toks, c->p.kv_block_size, &err) ||
            sampler_init(&ch->smp, &sp, c->n_vocab, &err) || detok_init(&ch->dt, c->tok, 0, &err)) {
            srv_job_unref(j);
            srv_error_set(e, 400, NULL, "%s", err.msg[0] ? err.msg : "out of memory");
            return NULL;
        }
        sampler_share_scratch(ch->smp, c->cand);
        memcpy(ch->toks, prompts[pi], (size_t)n_prompt[pi] * sizeof *ch->toks);
        ch->n_toks = n_prompt[pi];
        ch->item.tier = j->req.priority;
        ch->item.cost = (int64_t)n_prompt[pi] + max_tokens;
        ch->item.arrival_ms = j->t_arrival_ns / 1000000;
        ch->item.owner = ch;
    }
    return j;
nomem:
    srv_error_set(e, 503, NULL, "out of memory");
    return NULL;
}

int srv_core_submit(srv_core *c, srv_job *j, srv_error *e) {
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        srv_error_set(e, 503, NULL, "the server is shutting down");
        return -1;
    }
    if (c->p.max_queue > 0 && j->n_choices > c->p.max_queue) {
        pthread_mutex_unlock(&c->lock);
        srv_error_set(e, 400, "n", "the request needs %d sequences (prompts x n) but the queue holds %d",
                      j->n_choices, c->p.max_queue);
        return -1;
    }
    if (c->p.max_queue > 0 && c->n_waiting_total + j->n_choices > c->p.max_queue) {
        pthread_mutex_unlock(&c->lock);
        srv_error_set(e, 429, NULL, "the request queue is full (%d waiting); retry later", c->p.max_queue);
        return -1;
    }
    if (c->n_intake == c->cap_intake) {
        int cap = c->cap_intake ? 2 * c->cap_intake : 64;
        srv_job **q = realloc(c->intake, (size_t)cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&c->lock);
            srv_error_set(e, 503, NULL, "out of memory");
            return -1;
        }
        c->intake = q;
        c->cap_intake = cap;
    }
    srv_job_ref(j);
    c->intake[c->n_intake++] = j;
    c->n_waiting_total += j->n_choices;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void wake_engine(srv_core *c) {
    pthread_mutex_lock(&c->lock);
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

void srv_job_cancel(srv_job *j) {
    atomic_store(&j->cancel, true);
    wake_engine(j->core);
}

static bool job_done_locked(const srv_job *j) { return j->failed || j->n_finished == j->n_choices; }

bool srv_job_done(srv_job *j) {
    pthread_mutex_lock(&j->lock);
    bool d = job_done_locked(j);
    pthread_mutex_unlock(&j->lock);
    return d;
}

static void timed_wait(srv_job *j, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->cond, &j->lock, &ts);
}

bool srv_job_take(srv_job *j, int i, srv_take *t, int timeout_ms) {
    srv_choice *c = &j->ch[i];
    pthread_mutex_lock(&j->lock);
    if (c->out.text.len == 0 && c->out.n_lp == 0 && !c->out.finished && !j->failed && timeout_ms > 0)
        timed_wait(j, timeout_ms);
    bool any = c->out.text.len > 0 || c->out.n_lp > 0 || c->out.finished;
    bool ok = true;
    if (c->out.text.len) ok = srv_buf_append(&t->text, c->out.text.data, c->out.text.len);
    if (ok && c->out.n_lp) {
        if (t->n_lp + c->out.n_lp > t->cap_lp) {
            int cap = (t->n_lp + c->out.n_lp) * 2;
            srv_token_lp *lp = realloc(t->lp, (size_t)cap * sizeof *lp);
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

bool srv_job_wait_done(srv_job *j, int timeout_ms) {
    pthread_mutex_lock(&j->lock);
    if (!job_done_locked(j)) timed_wait(j, timeout_ms);
    bool d = job_done_locked(j);
    pthread_mutex_unlock(&j->lock);
    return d;
}

/* ------------------------------------------------------------------ output */

static void out_text(srv_choice *c, const char *p, size_t n) {
    if (n) srv_buf_append(&c->out.text, p, n);
}

/* Generated text through the stop-string filter: emits what can no longer
 * be the start of a stop string; true when a stop string matched. */
static bool emit(srv_choice *c, const char *p, size_t n) {
    const srv_request *r = &c->job->req;
    if (r->n_stop == 0) {
        out_text(c, p, n);
        return false;
    }
    srv_buf_append(&c->held, p, n);
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

static void add_logprobs(srv_core *core, srv_choice *c, const sampler_logprobs *lp) {
    srv_take *o = &c->out;
    if (o->n_lp == o->cap_lp) {
        int cap = o->cap_lp ? 2 * o->cap_lp : 16;
        srv_token_lp *a = realloc(o->lp, (size_t)cap * sizeof *a);
        if (!a) return;
        o->lp = a;
        o->cap_lp = cap;
    }
    srv_token_lp *t = &o->lp[o->n_lp++];
    memset(t, 0, sizeof *t);
    t->text = tokenizer_token_bytes(core->tok, lp->chosen.token, &t->len);
    t->logprob = lp->chosen.logprob;
    t->n_top = c->job->req.sp.top_logprobs < lp->n_top ? c->job->req.sp.top_logprobs : lp->n_top;
    for (int i = 0; i < t->n_top; i++) {
        t->top[i].text = tokenizer_token_bytes(core->tok, lp->top[i].token, &t->top[i].len);
        t->top[i].logprob = lp->top[i].logprob;
    }
}

/* ------------------------------------------------------------------ engine thread */

static double secs(int64_t ns) { return (double)ns / 1e9; }

static void log_job(srv_core *core, srv_job *j, const char *status) {
    if (!core->p.log_requests) return;
    int64_t gen = 0, first = 0, last = 0, admit = 0;
    for (int i = 0; i < j->n_choices; i++) {
        const srv_choice *c = &j->ch[i];
        gen += c->n_gen;
        if (c->t_first_ns && (!first || c->t_first_ns < first)) first = c->t_first_ns;
        if (c->t_last_ns > last) last = c->t_last_ns;
        if (c->t_admit_ns && (!admit || c->t_admit_ns < admit)) admit = c->t_admit_ns;
    }
    const double queue_ms = admit ? (double)(admit - j->t_arrival_ns) / 1e6 : -1;
    const double ttft_ms = first ? (double)(first - j->t_arrival_ns) / 1e6 : -1;
    const double tps = last > first && gen > 1 ? (double)(gen - j->n_choices) / secs(last - first) : 0;
    fprintf(stderr, "request %s tier=%s prompt=%lld gen=%lld queue_ms=%.1f ttft_ms=%.1f tok/s=%.1f status=%s\n", j->id,
            sched_tier_name(j->req.priority), (long long)j->prompt_tokens, (long long)gen, queue_ms, ttft_ms, tps,
            status);
}

static void remove_running(srv_core *core, srv_choice *c) {
    for (int i = 0; i < core->n_running; i++)
        if (core->running[i] == c) {
            memmove(core->running + i, core->running + i + 1, (size_t)(core->n_running - i - 1) * sizeof *core->running);
            core->n_running--;
            return;
        }
}

/* Ends a choice: flushes text, frees its blocks, tells the reader. */
static void finish_choice(srv_core *core, srv_choice *c, srv_finish fin, int end) {
    if (c->state == CH_DONE) return;
    srv_job *j = c->job;
    if (c->state == CH_RUNNING) remove_running(core, c);
    if (c->state == CH_WAITING) {
        sched_remove(core->sq, &c->item);
        pthread_mutex_lock(&core->lock);
        core->n_waiting_total--;
        pthread_mutex_unlock(&core->lock);
    }
    kv_seq_release(core->kv, &c->kv);
    c->state = CH_DONE;
    pthread_mutex_lock(&j->lock);
    if (end == SRV_END_STOP || end == SRV_END_LENGTH) {
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

    pthread_mutex_lock(&core->met.lock);
    core->met.ended[end]++;
    if (c->t_last_ns) srv_hist_observe(&core->met.e2e, secs(c->t_last_ns - j->t_arrival_ns));
    pthread_mutex_unlock(&core->met.lock);
    if (all) log_job(core, j, end == SRV_END_STOP || end == SRV_END_LENGTH ? "ok" : srv_end_name(end));
}

/* Fails every unfinished choice of a job (timeout, cancel, shutdown). */
static void fail_job(srv_core *core, srv_job *j, int status, int end, const char *msg) {
    pthread_mutex_lock(&j->lock);
    if (!j->failed && status) {
        srv_error_set(&j->err, status, NULL, "%s", msg);
        j->failed = true;
    }
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->n_choices; i++) finish_choice(core, &j->ch[i], SRV_FINISH_NONE, end);
}

static void drop_job(srv_core *core, int k) {
    srv_job *j = core->jobs[k];
    core->jobs[k] = core->jobs[--core->n_jobs];
    srv_job_unref(j);
}

static void take_intake(srv_core *core) {
    pthread_mutex_lock(&core->lock);
    for (int k = 0; k < core->n_intake; k++) {
        srv_job *j = core->intake[k];
        if (core->n_jobs == core->cap_jobs) {
            int cap = core->cap_jobs ? 2 * core->cap_jobs : 64;
            srv_job **a = realloc(core->jobs, (size_t)cap * sizeof *a);
            if (!a) { /* cannot track it: fail it now */
                core->n_waiting_total -= j->n_choices;
                pthread_mutex_lock(&j->lock);
                srv_error_set(&j->err, 503, NULL, "out of memory");
                j->failed = true;
                pthread_cond_broadcast(&j->cond);
                pthread_mutex_unlock(&j->lock);
                srv_job_unref(j);
                continue;
            }
            core->jobs = a;
            core->cap_jobs = cap;
        }
        core->jobs[core->n_jobs++] = j;
        for (int i = 0; i < j->n_choices; i++) {
            j->ch[i].state = CH_WAITING;
            RYOT_ASSERT(sched_push(core->sq, &j->ch[i].item, true) == RYOT_OK);
        }
    }
    core->n_intake = 0;
    pthread_mutex_unlock(&core->lock);
}

/* Cancellations, timeouts, finished jobs. */
static void sweep_jobs(srv_core *core, int64_t now) {
    for (int k = core->n_jobs - 1; k >= 0; k--) {
        srv_job *j = core->jobs[k];
        if (atomic_load(&j->cancel))
            fail_job(core, j, 0, SRV_END_CANCELLED, "cancelled");
        else if (j->deadline_ns && now > j->deadline_ns)
            fail_job(core, j, 408, SRV_END_TIMEOUT, "the request timed out (its \"timeout\" passed)");
        else if (core->cut)
            fail_job(core, j, 503, SRV_END_ABORTED, "the server shut down before the request finished");
        bool done = true;
        for (int i = 0; i < j->n_choices; i++) done = done && j->ch[i].state == CH_DONE;
        if (done) drop_job(core, k);
    }
}

static void preempt(srv_core *core, srv_choice *v) {
    remove_running(core, v);
    kv_seq_release(core->kv, &v->kv);
    v->n_done = 0;
    v->state = CH_WAITING;
    sched_push(core->sq, &v->item, true);
    pthread_mutex_lock(&core->lock);
    core->n_waiting_total++;
    pthread_mutex_unlock(&core->lock);
    pthread_mutex_lock(&core->met.lock);
    core->met.preemptions++;
    pthread_mutex_unlock(&core->met.lock);
}

/* Victim among running sequences other than `keep`, of lower priority than
 * tier (max_tier: any); NULL when none. */
static srv_choice *victim(srv_core *core, const srv_choice *keep, int min_tier) {
    sched_item *items[4096];
    srv_choice *who[4096];
    int n = 0;
    for (int i = 0; i < core->n_running && n < 4096; i++) {
        srv_choice *c = core->running[i];
        if (c == keep || c->item.tier < min_tier) continue;
        items[n] = &c->item;
        who[n++] = c;
    }
    int v = sched_pick_victim(items, n);
    return v < 0 ? NULL : who[v];
}

static void admit(srv_core *core, int64_t now) {
    const int64_t now_ms = now / 1000000;
    while (core->n_running < core->p.max_running) {
        sched_item *it = sched_peek(core->sq, now_ms);
        if (!it) break;
        srv_choice *c = it->owner;
        const int hit = kv_seq_match_prefix(core->kv, &c->kv, c->toks, c->n_toks - 1);
        bool ok = kv_seq_reserve(core->kv, &c->kv, c->n_toks);
        while (!ok) { /* only a strictly lower tier gives way to a new sequence */
            srv_choice *v = victim(core, c, it->tier + 1);
            if (!v) break;
            preempt(core, v);
            ok = kv_seq_reserve(core->kv, &c->kv, c->n_toks);
        }
        if (!ok) {
            kv_seq_release(core->kv, &c->kv);
            break;
        }
        sched_pop(core->sq, now_ms);
        pthread_mutex_lock(&core->lock);
        core->n_waiting_total--;
        pthread_mutex_unlock(&core->lock);
        c->state = CH_RUNNING;
        c->n_done = hit;
        core->running[core->n_running++] = c;
        pthread_mutex_lock(&core->met.lock);
        if (!c->admitted_once) {
            c->admitted_once = true;
            c->t_admit_ns = now;
            c->n_cached = hit;
            core->met.prefix_queries += (uint64_t)c->n_prompt;
            core->met.prefix_hits += (uint64_t)(hit < c->n_prompt ? hit : c->n_prompt);
            core->met.prompt_tokens += (uint64_t)c->n_prompt;
            srv_hist_observe(&core->met.queue, secs(now - c->job->t_arrival_ns));
            pthread_mutex_lock(&c->job->lock);
            c->job->cached_tokens += hit < c->n_prompt ? hit : c->n_prompt;
            pthread_mutex_unlock(&c->job->lock);
        }
        pthread_mutex_unlock(&core->met.lock);
    }
}

/* Sampling after the forward pass for a choice whose batch row ended at its last token. */
static void after_token(srv_core *core, srv_choice *c, const float *row, int64_t now) {
    srv_job *j = c->job;
    memcpy(core->logits, row, (size_t)core->n_vocab * sizeof(float));
    if (j->req.ignore_eos)
        for (int i = 0; i < core->n_eog; i++) core->logits[core->eog[i]] = -INFINITY;
    const int32_t tok = sampler_sample(c->smp, core->logits);
    if (tok < 0) {
        finish_choice(core, c, SRV_FINISH_STOP, SRV_END_STOP);
        return;
    }
    sampler_accept(c->smp, tok);
    c->toks[c->n_toks++] = tok;
    c->n_gen++;
    pthread_mutex_lock(&core->met.lock);
    core->met.generation_tokens++;
    if (!c->t_first_ns) {
        const double ttft = secs(now - j->t_arrival_ns);
        srv_hist_observe(&core->met.ttft, ttft);
        if (ttft * 1000.0 <= (double)core->p.target_ms[j->req.priority])
            core->met.target_met[j->req.priority]++;
        else
            core->met.target_missed[j->req.priority]++;
    } else {
        srv_hist_observe(&core->met.itl, secs(now - c->t_last_ns));
    }
    pthread_mutex_unlock(&core->met.lock);
    if (!c->t_first_ns) c->t_first_ns = now;
    c->t_last_ns = now;

    const bool eog = !j->req.ignore_eos && tokenizer_is_eog(core->tok, tok);
    pthread_mutex_lock(&j->lock);
    if (j->req.sp.logprobs) {
        const sampler_logprobs *lp = sampler_last_logprobs(c->smp);
        if (lp) add_logprobs(core, c, lp);
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
    if (eog || stop)
        finish_choice(core, c, SRV_FINISH_STOP, SRV_END_STOP);
    else if (c->n_gen >= j->max_tokens || c->n_toks >= core->p.ctx)
        finish_choice(core, c, SRV_FINISH_LENGTH, SRV_END_LENGTH);
}

/* One step: batch assembly, forward, sampling.  false when idle.
 * Decode tokens are placed first, then prefill chunks in admission order
 * while the token budget lasts; each placed sequence first gets the blocks
 * its chunk writes, preempting (lowest tier, newest) when none are left. */
static bool step(srv_core *core) {
    int budget = core->p.batch_tokens;
    const int n_snap = core->n_running;
    memcpy(core->snap, core->running, (size_t)n_snap * sizeof *core->snap);
    for (int i = 0; i < n_snap; i++) core->snap[i]->take = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n_snap; i++) {
            srv_choice *c = core->snap[i];
            const bool decode = c->n_done == c->n_toks - 1;
            if (c->state != CH_RUNNING || (pass == 0) != decode) continue;
            int take = c->n_toks - c->n_done;
            if (take > budget) take = budget;
            if (take <= 0) continue;
            bool ok = kv_seq_reserve(core->kv, &c->kv, c->n_done + take);
            while (!ok) {
                srv_choice *v = victim(core, NULL, 0);
                if (!v) break;
                if (v->take > 0) { /* already placed: give its tokens back */
                    budget += v->take;
                    v->take = 0;
                }
                preempt(core, v);
                if (v == c) break;
                ok = kv_seq_reserve(core->kv, &c->kv, c->n_done + take);
            }
            if (!ok || c->state != CH_RUNNING) continue;
            c->take = take;
            budget -= take;
        }
    }
    int n = 0, k = 0;
    for (int i = 0; i < n_snap; i++) {
        srv_choice *c = core->snap[i];
        if (c->state != CH_RUNNING || c->take <= 0) continue;
        memcpy(core->btoks + n, c->toks + c->n_done, (size_t)c->take * sizeof(int32_t));
        core->bseq[k] = (engine_seq){.blocks = c->kv.blocks,
                                     .n_blocks = c->kv.n_blocks,
                                     .pos = c->n_done,
                                     .n = c->take,
                                     .n_logits = c->n_done + c->take == c->n_toks ? 1 : 0};
        core->bwho[k++] = c;
        n += c->take;
    }
    if (k == 0) return false;
    ryot_error err = {0};
    if (engine_forward(core->e, core->btoks, n, core->bseq, k, &err)) {
        /* a bug, not input: report and end these sequences */
        fprintf(stderr, "ryot serve: engine step failed: %s\n", err.msg);
        for (int b = 0; b < k; b++) fail_job(core, core->bwho[b]->job, 500, SRV_END_ABORTED, "internal engine error");
        return true;
    }
    const int64_t now = srv_now_ns();
    for (int b = 0, row = 0; b < k; b++) {
        srv_choice *c = core->bwho[b];
        c->n_done += core->bseq[b].n;
        kv_seq_commit(core->kv, &c->kv, c->toks, c->n_done);
        if (core->bseq[b].n_logits) after_token(core, c, engine_logits(core->e, row++), now);
    }
    return true;
}

static void publish_gauges(srv_core *core) {
    kv_cache_stats ks;
    kv_cache_get_stats(core->kv, &ks);
    pthread_mutex_lock(&core->met.lock);
    memset(core->met.running, 0, sizeof core->met.running);
    for (int i = 0; i < core->n_running; i++) core->met.running[core->running[i]->item.tier]++;
    for (int t = 0; t < SCHED_N_TIERS; t++) core->met.waiting[t] = sched_waiting_tier(core->sq, t);
    core->met.kv_total = ks.n_blocks;
    core->met.kv_free = ks.n_free;
    core->met.kv_cached = ks.n_cached;
    core->met.kv_used = ks.n_used;
    pthread_mutex_unlock(&core->met.lock);
}

static void *engine_main(void *arg) {
    srv_core *core = arg;
    for (;;) {
        pthread_mutex_lock(&core->lock);
        while (!core->quit && core->n_intake == 0 && core->n_jobs == 0) pthread_cond_wait(&core->wake, &core->lock);
        const bool quit = core->quit;
        pthread_mutex_unlock(&core->lock);
        take_intake(core);
        const int64_t now = srv_now_ns();
        sweep_jobs(core, now);
        if (quit && core->n_jobs == 0) break;
        admit(core, now);
        const bool worked = step(core);
        if (worked) {
            pthread_mutex_lock(&core->met.lock);
            core->met.steps++;
            pthread_mutex_unlock(&core->met.lock);
        }
        sweep_jobs(core, srv_now_ns());
        publish_gauges(core);
        if (!worked && core->n_jobs > 0) {
            /* waiting for blocks or for a cancel: sleep briefly instead of spinning */
            pthread_mutex_lock(&core->lock);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 5000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (core->n_intake == 0 && !core->quit) pthread_cond_timedwait(&core->wake, &core->lock, &ts);
            pthread_mutex_unlock(&core->lock);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

ryot_status srv_core_new(const ryot_model *rm, const srv_core_params *pp, srv_core **out, ryot_error *err) {
    *out = NULL;
    srv_core_params p = pp ? *pp : srv_core_default_params();
    srv_core_params d = srv_core_default_params();
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
    srv_core *c = calloc(1, sizeof *c);
    if (!c) return ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    c->rm = rm;
    c->m = m;
    c->tok = ryot_model_tokenizer(rm);
    c->n_vocab = m->hp.n_vocab;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    srv_metrics_init(&c->met);
    engine_params ep = engine_params_default(m);
    ep.n_ctx = p.ctx;
    ep.n_batch = p.batch_tokens;
    if (p.n_threads > 0) ep.n_threads = p.n_threads;
    ep.n_logits_max = p.max_running;
    ep.kv_block_size = p.kv_block_size;
    ep.kv_blocks = p.kv_blocks;
    ep.max_seqs = p.max_running;
    p.n_threads = ep.n_threads;
    c->p = p;
    sched_params sp = sched_params_default();
    sp.max_queue = 0; /* admission control counts in srv_core_submit */
    sp.age_ms = p.age_ms;
    memcpy(sp.target_ms, p.target_ms, sizeof sp.target_ms);
    ryot_status st = engine_new(m, &ep, &c->e, err);
    if (!st) st = kv_cache_new(p.kv_blocks, p.kv_block_size, &c->kv, err);
    if (!st) st = sched_new(&sp, &c->sq, err);
    if (!st) {
        c->running = calloc((size_t)p.max_running, sizeof *c->running);
        c->snap = calloc((size_t)p.max_running, sizeof *c->snap);
        c->btoks = malloc((size_t)p.batch_tokens * sizeof *c->btoks);
        c->bseq = calloc((size_t)p.max_running, sizeof *c->bseq);
        c->bwho = calloc((size_t)p.max_running, sizeof *c->bwho);
        c->logits = malloc((size_t)c->n_vocab * sizeof *c->logits);
        c->cand = malloc(sampler_scratch_size(c->n_vocab));
        for (int32_t t = 0; c->logits && t < c->n_vocab; t++)
            if (tokenizer_is_eog(c->tok, t)) c->n_eog++;
        c->eog = malloc((size_t)(c->n_eog + 1) * sizeof *c->eog);
        for (int32_t t = 0, k = 0; c->eog && t < c->n_vocab; t++)
            if (tokenizer_is_eog(c->tok, t)) c->eog[k++] = t;
        if (!c->cand || !c->eog || !c->running || !c->snap || !c->btoks || !c->bseq || !c->bwho || !c->logits)
            st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    }
    if (!st && pthread_create(&c->thread, NULL, engine_main, c) != 0)
        st = ryot_fail(err, RYOT_ERR_INTERNAL, "cannot start the engine thread");
    if (st) {
        srv_core_free(c);
        return st;
    }
    c->thread_started = true;
    *out = c;
    return RYOT_OK;
}

int srv_core_drain(srv_core *c, double timeout_s) {
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_mutex_unlock(&c->lock);
    const int64_t end = srv_now_ns() + (int64_t)(timeout_s * 1e9);
    for (;;) {
        pthread_mutex_lock(&c->lock);
        const int left = c->n_jobs + c->n_intake; /* n_jobs is read racily: only a progress check */
        pthread_mutex_unlock(&c->lock);
        if (left == 0 || srv_now_ns() >= end) {
            pthread_mutex_lock(&c->lock);
            c->cut = true;
            pthread_cond_signal(&c->wake);
            pthread_mutex_unlock(&c->lock);
            return left;
        }
        usleep(20000);
    }
}

void srv_core_free(srv_core *c) {
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
        srv_job *j = c->intake[k];
        pthread_mutex_lock(&j->lock);
        srv_error_set(&j->err, 503, NULL, "the server shut down");
        j->failed = true;
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->lock);
        srv_job_unref(j);
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
    free(c->eog);
    sched_free(c->sq);
    kv_cache_free(c->kv);
    engine_free(c->e);
    srv_metrics_destroy(&c->met);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->wake);
    free(c);
}

const srv_core_params *srv_core_get_params(const srv_core *c) { return &c->p; }
const ryot_model *srv_core_model(const srv_core *c) { return c->rm; }

void srv_core_metrics(srv_core *c, srv_buf *b) { srv_metrics_render(&c->met, b); }
