#include "server/flight.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"

typedef struct flight_choice {
    ryot_buf text;
    bool finished;
    sched_finish finish;
    int n_gen;
} flight_choice;

struct flight {
    cache_key key;
    flight *next;     /* in its table bucket */
    bool linked;
    int readers;      /* under the table's mutex */
    sched_job *job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool draining;    /* a reader is waiting on the job itself */
    bool stored;
    sched_take tmp;   /* the drain's scratch */
    int n;
    flight_choice ch[];
};

/* the key is a digest: its first byte is uniform over the 256 buckets */
static size_t bucket(const cache_key *k) { return k->b[0]; }

void flight_table_init(flight_table *t) {
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
}

void flight_table_destroy(flight_table *t) { pthread_mutex_destroy(&t->mu); }

static flight **find(flight_table *t, const cache_key *key) {
    flight **p = &t->buckets[bucket(key)];
    while (*p && memcmp((*p)->key.b, key->b, CACHE_KEY_BYTES)) p = &(*p)->next;
    return p;
}

flight *flight_join(flight_table *t, const cache_key *key) {
    pthread_mutex_lock(&t->mu);
    flight *f = *find(t, key);
    if (f && sched_job_done(f->job)) f = NULL; /* ended: its answer is (being) cached */
    if (f) {
        f->readers++;
        t->coalesced++;
    }
    pthread_mutex_unlock(&t->mu);
    return f;
}

flight *flight_open(flight_table *t, const cache_key *key, sched_job *job, bool *joined) {
    *joined = false;
    const int n = sched_job_n_choices(job);
    flight *f = calloc(1, sizeof *f + (size_t)n * sizeof f->ch[0]);
    if (!f) return NULL;
    f->key = *key;
    f->n = n;
    f->readers = 1;
    f->job = job;
    sched_job_ref(job);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_REALTIME);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&t->mu);
    flight **slot = find(t, key);
    flight *other = *slot && !sched_job_done((*slot)->job) ? *slot : NULL;
    if (other) { /* another leader opened between our join and here: read its answer */
        other->readers++;
        t->coalesced++;
    } else if (!*slot) {
        *slot = f;
        f->linked = true;
    }
    pthread_mutex_unlock(&t->mu);
    if (other) {
        sched_job_unref(f->job);
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        free(f);
        *joined = true;
        return other;
    }
    return f;
}

void flight_leave(flight_table *t, flight *f) {
    if (!f) return;
    pthread_mutex_lock(&t->mu);
    bool last = --f->readers == 0;
    if (last && f->linked) {
        flight **p = find(t, &f->key);
        if (*p == f) *p = f->next;
    }
    pthread_mutex_unlock(&t->mu);
    if (!last) return;
    if (!sched_job_done(f->job)) sched_job_cancel(f->job);
    sched_job_unref(f->job);
    for (int i = 0; i < f->n; i++) ryot_buf_free(&f->ch[i].text);
    sched_take_free(&f->tmp);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

sched_job *flight_job(const flight *f) { return f->job; }
int flight_n_choices(const flight *f) { return f->n; }

/* Moves whatever the job produced into the flight; wakes the waiters. */
static void drain_locked(flight *f) {
    bool any = false;
    for (int i = 0; i < f->n; i++) {
        flight_choice *c = &f->ch[i];
        if (c->finished) continue;
        sched_take_clear(&f->tmp);
        if (!sched_job_take(f->job, i, &f->tmp, 0)) continue;
        any = true;
        /* out of memory: the text is cut short, and the answer not stored */
        if (f->tmp.text.len && !ryot_buf_append(&c->text, f->tmp.text.data, f->tmp.text.len)) f->stored = true;
        c->finished = f->tmp.finished;
        c->finish = f->tmp.finish;
        c->n_gen = f->tmp.n_gen;
    }
    if (any) pthread_cond_broadcast(&f->cv);
}

bool flight_take(flight *f, int i, size_t *cursor, sched_take *t) {
    pthread_mutex_lock(&f->mu);
    drain_locked(f);
    flight_choice *c = &f->ch[i];
    bool any = c->text.len > *cursor || c->finished;
    if (c->text.len > *cursor && ryot_buf_append(&t->text, c->text.data + *cursor, c->text.len - *cursor))
        *cursor = c->text.len;
    t->finished = c->finished && *cursor == c->text.len;
    t->finish = c->finish;
    t->n_gen = c->n_gen;
    pthread_mutex_unlock(&f->mu);
    return any;
}

static bool news_locked(const flight *f, const size_t *cursors) {
    for (int i = 0; i < f->n; i++)
        if (f->ch[i].text.len > cursors[i] || f->ch[i].finished) return true;
    return false;
}

void flight_wait(flight *f, const size_t *cursors, int timeout_ms) {
    pthread_mutex_lock(&f->mu);
    drain_locked(f);
    if (news_locked(f, cursors) || sched_job_done(f->job)) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    if (!f->draining) { /* this reader waits on the job and drains for everyone */
        f->draining = true;
        pthread_mutex_unlock(&f->mu);
        sched_job_wait(f->job, timeout_ms);
        pthread_mutex_lock(&f->mu);
        drain_locked(f);
        f->draining = false;
        pthread_cond_broadcast(&f->cv); /* the next wait may drain */
    } else {
        struct timespec dl = ryot_deadline_ms(timeout_ms);
        pthread_cond_timedwait(&f->cv, &f->mu, &dl);
    }
    pthread_mutex_unlock(&f->mu);
}

bool flight_claim_store(flight *f) {
    pthread_mutex_lock(&f->mu);
    drain_locked(f);
    bool all = true;
    for (int i = 0; i < f->n; i++) all = all && f->ch[i].finished && f->ch[i].finish != SCHED_FINISH_NONE;
    sched_job_result r;
    sched_job_result_get(f->job, &r);
    bool mine = all && !r.failed && !f->stored;
    if (mine) f->stored = true;
    pthread_mutex_unlock(&f->mu);
    return mine;
}

const ryot_buf *flight_text(const flight *f, int i, sched_finish *finish) {
    *finish = f->ch[i].finish;
    return &f->ch[i].text;
}
