#include "cache/semantic.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct sem_entry {
    cache_key ctx, l1;
    uint64_t used; /* s->tick when inserted or last found */
} sem_entry;

struct cache_sem {
    pthread_mutex_t mu;
    int dim, max, n;
    float threshold;
    sem_entry *e; /* (max) */
    float *vec;   /* (max, dim): row i is e[i]'s vector */
    uint64_t tick;
    cache_sem_stats st;
};

cache_sem *cache_sem_new(int dim, int max_entries, float threshold) {
    if (dim <= 0 || max_entries < 1 || max_entries > CACHE_SEM_MAX_ENTRIES || !(threshold > 0.0f) ||
        threshold > 1.0f)
        return NULL;
    cache_sem *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->e = calloc((size_t)max_entries, sizeof *s->e);
    s->vec = malloc((size_t)max_entries * (size_t)dim * sizeof *s->vec);
    if (!s->e || !s->vec) {
        free(s->e);
        free(s->vec);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->dim = dim;
    s->max = max_entries;
    s->threshold = threshold;
    s->st.max_entries = (uint64_t)max_entries;
    return s;
}

void cache_sem_free(cache_sem *s) {
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s->e);
    free(s->vec);
    free(s);
}

float cache_sem_threshold(const cache_sem *s) { return s->threshold; }

static float dot(const float *a, const float *b, int n) {
    float acc = 0.0f;
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

bool cache_sem_search(cache_sem *s, const cache_key *ctx, const float *v, cache_key *l1, float *cos) {
    pthread_mutex_lock(&s->mu);
    int best = -1;
    float best_cos = 0.0f;
    for (int i = 0; i < s->n; i++) {
        if (memcmp(s->e[i].ctx.b, ctx->b, sizeof ctx->b)) continue;
        const float c = dot(s->vec + (size_t)i * (size_t)s->dim, v, s->dim);
        if (c >= s->threshold && (best < 0 || c > best_cos)) best = i, best_cos = c;
    }
    if (best >= 0) {
        s->e[best].used = ++s->tick;
        *l1 = s->e[best].l1;
        if (cos) *cos = best_cos;
        s->st.hits++;
    } else {
        s->st.misses++;
    }
    pthread_mutex_unlock(&s->mu);
    return best >= 0;
}

/* Moves the last entry into slot i (the order carries no meaning). */
static void drop(cache_sem *s, int i) {
    s->n--;
    if (i == s->n) return;
    s->e[i] = s->e[s->n];
    memcpy(s->vec + (size_t)i * (size_t)s->dim, s->vec + (size_t)s->n * (size_t)s->dim,
           (size_t)s->dim * sizeof *s->vec);
}

void cache_sem_insert(cache_sem *s, const cache_key *ctx, const float *v, const cache_key *l1) {
    pthread_mutex_lock(&s->mu);
    int at = -1;
    for (int i = 0; i < s->n && at < 0; i++)
        if (!memcmp(s->e[i].ctx.b, ctx->b, sizeof ctx->b) && !memcmp(s->e[i].l1.b, l1->b, sizeof l1->b)) at = i;
    if (at < 0 && s->n < s->max) at = s->n++;
    if (at < 0) { /* full: the least recently used makes room */
        at = 0;
        for (int i = 1; i < s->n; i++)
            if (s->e[i].used < s->e[at].used) at = i;
        s->st.evictions++;
    }
    s->e[at] = (sem_entry){.ctx = *ctx, .l1 = *l1, .used = ++s->tick};
    memcpy(s->vec + (size_t)at * (size_t)s->dim, v, (size_t)s->dim * sizeof *v);
    s->st.inserts++;
    pthread_mutex_unlock(&s->mu);
}

static void remove_locked(cache_sem *s, const cache_key *l1) {
    for (int i = 0; i < s->n;) {
        if (!memcmp(s->e[i].l1.b, l1->b, sizeof l1->b)) {
            drop(s, i);
            s->st.removed++;
        } else {
            i++;
        }
    }
}

void cache_sem_remove(cache_sem *s, const cache_key *l1) {
    pthread_mutex_lock(&s->mu);
    remove_locked(s, l1);
    pthread_mutex_unlock(&s->mu);
}

void cache_sem_stale(cache_sem *s, const cache_key *l1) {
    pthread_mutex_lock(&s->mu);
    remove_locked(s, l1);
    if (s->st.hits) s->st.hits--, s->st.misses++;
    pthread_mutex_unlock(&s->mu);
}

void cache_sem_stats_get(cache_sem *s, cache_sem_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->entries = (uint64_t)s->n;
    pthread_mutex_unlock(&s->mu);
}
