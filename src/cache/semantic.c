#include "cache/semantic.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/hnsw.h"

typedef struct sem_entry {
    cache_key ctx, l1;
    uint64_t used; /* s->tick when inserted or last found */
    int group;     /* -1: free slot */
    int gpos;      /* index in its group's members */
} sem_entry;

typedef struct sem_group {
    cache_key ctx;
    int n, cap; /* members; n == 0 with cap >= 0: free group id */
    int *members;
    hnsw_graph g;
} sem_group;

struct cache_sem {
    pthread_mutex_t mu;
    int dim, max, n;
    float threshold;
    sem_entry *e; /* (max) slots */
    float *vec;   /* (max, dim): row i is slot i's vector */
    int *free_slot, n_free;
    sem_group *grp; /* (max) group ids; a live group has n > 0 */
    int *free_grp, n_free_grp;
    int *ht; /* open addressing, linear probing: group ids by context; -1 empty */
    size_t ht_mask;
    hnsw_store *hs;
    uint64_t tick, rng;
    cache_sem_stats st;
};

cache_sem *cache_sem_new(int dim, int max_entries, float threshold) {
    if (dim <= 0 || max_entries < 1 || max_entries > CACHE_SEM_MAX_ENTRIES || !(threshold > 0.0f) ||
        threshold > 1.0f)
        return NULL;
    cache_sem *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t ht_n = 4;
    while (ht_n < 2 * (size_t)max_entries) ht_n *= 2;
    s->e = calloc((size_t)max_entries, sizeof *s->e);
    s->vec = calloc((size_t)max_entries * (size_t)dim, sizeof *s->vec);
    s->free_slot = malloc((size_t)max_entries * sizeof *s->free_slot);
    s->grp = calloc((size_t)max_entries, sizeof *s->grp);
    s->free_grp = malloc((size_t)max_entries * sizeof *s->free_grp);
    s->ht = malloc(ht_n * sizeof *s->ht);
    s->hs = s->vec ? hnsw_store_new(max_entries, dim, s->vec) : NULL;
    if (!s->e || !s->vec || !s->free_slot || !s->grp || !s->free_grp || !s->ht || !s->hs) {
        s->max = 0;
        cache_sem_free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->dim = dim;
    s->max = max_entries;
    s->threshold = threshold;
    s->st.max_entries = (uint64_t)max_entries;
    s->rng = 0x853c49e6748fea9bu;
    s->ht_mask = ht_n - 1;
    memset(s->ht, -1, ht_n * sizeof *s->ht);
    for (int i = 0; i < max_entries; i++) {
        s->e[i].group = -1;
        s->free_slot[i] = max_entries - 1 - i; /* slot 0 first */
        s->free_grp[i] = max_entries - 1 - i;
    }
    s->n_free = s->n_free_grp = max_entries;
    return s;
}

void cache_sem_free(cache_sem *s) {
    if (!s) return;
    if (s->max) pthread_mutex_destroy(&s->mu);
    if (s->grp)
        for (int i = 0; i < s->max; i++) free(s->grp[i].members);
    hnsw_store_free(s->hs);
    free(s->e);
    free(s->vec);
    free(s->free_slot);
    free(s->grp);
    free(s->free_grp);
    free(s->ht);
    free(s);
}

float cache_sem_threshold(const cache_sem *s) { return s->threshold; }

static bool key_eq(const cache_key *a, const cache_key *b) { return !memcmp(a->b, b->b, sizeof a->b); }

static size_t ctx_hash(const cache_key *k) {
    uint64_t h;
    memcpy(&h, k->b, sizeof h); /* the key is a digest already */
    return (size_t)h;
}

/* The ht position of ctx's group, or of the empty cell where it would go. */
static size_t ht_find(const cache_sem *s, const cache_key *ctx) {
    size_t i = ctx_hash(ctx) & s->ht_mask;
    while (s->ht[i] >= 0 && !key_eq(&s->grp[s->ht[i]].ctx, ctx)) i = (i + 1) & s->ht_mask;
    return i;
}

/* Deletes ht cell i, shifting later cells of the probe run back. */
static void ht_delete(cache_sem *s, size_t i) {
    for (size_t j = i;;) {
        s->ht[i] = -1;
        for (;;) {
            j = (j + 1) & s->ht_mask;
            if (s->ht[j] < 0) return;
            const size_t home = ctx_hash(&s->grp[s->ht[j]].ctx) & s->ht_mask;
            /* j's entry may move to i when its home is not in (i, j] cyclically */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) break;
        }
        s->ht[i] = s->ht[j];
        i = j;
    }
}

/* Takes slot out of the index (group, graph), back to the free list. */
static void drop(cache_sem *s, int slot) {
    sem_entry *e = &s->e[slot];
    sem_group *g = &s->grp[e->group];
    hnsw_remove(s->hs, &g->g, slot, g->members, g->n);
    const int last = g->members[--g->n];
    g->members[e->gpos] = last;
    s->e[last].gpos = e->gpos;
    if (g->n == 0) {
        ht_delete(s, ht_find(s, &g->ctx));
        s->free_grp[s->n_free_grp++] = e->group;
    }
    e->group = -1;
    s->free_slot[s->n_free++] = slot;
    s->n--;
}

bool cache_sem_search(cache_sem *s, const cache_key *ctx, const float *v, cache_key *l1, float *cos) {
    pthread_mutex_lock(&s->mu);
    int best = -1;
    float best_cos = 0.0f;
    const int gi = s->ht[ht_find(s, ctx)];
    if (gi >= 0) {
        const sem_group *g = &s->grp[gi];
        if (g->n <= CACHE_SEM_FLAT_MAX) {
            for (int k = 0; k < g->n; k++) {
                const int i = g->members[k];
                const float c = hnsw_dot(s->vec + (size_t)i * (size_t)s->dim, v, s->dim);
                if (best < 0 || c > best_cos) best = i, best_cos = c;
            }
        } else {
            best = hnsw_search(s->hs, &g->g, v, HNSW_EF_SEARCH, &best_cos);
            s->st.graph_searches++;
        }
        if (best >= 0 && !(best_cos >= s->threshold)) best = -1;
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

void cache_sem_insert(cache_sem *s, const cache_key *ctx, const float *v, const cache_key *l1) {
    pthread_mutex_lock(&s->mu);
    size_t h = ht_find(s, ctx);
    if (s->ht[h] >= 0) { /* the same (context, key) is replaced */
        const sem_group *g = &s->grp[s->ht[h]];
        for (int k = 0; k < g->n; k++)
            if (key_eq(&s->e[g->members[k]].l1, l1)) {
                drop(s, g->members[k]);
                break;
            }
    }
    if (s->n_free == 0) { /* full: the least recently used makes room */
        int at = -1;
        for (int i = 0; i < s->max; i++)
            if (s->e[i].group >= 0 && (at < 0 || s->e[i].used < s->e[at].used)) at = i;
        drop(s, at);
        s->st.evictions++;
    }
    h = ht_find(s, ctx); /* drops may have moved or removed the group */
    int gi = s->ht[h];
    if (gi < 0) {
        gi = s->free_grp[--s->n_free_grp];
        s->grp[gi].ctx = *ctx;
        s->grp[gi].g = HNSW_GRAPH_EMPTY;
        s->ht[h] = gi;
    }
    sem_group *g = &s->grp[gi];
    if (g->n == g->cap) {
        const int cap = g->cap ? 2 * g->cap : 8;
        int *m = realloc(g->members, (size_t)cap * sizeof *m);
        if (!m) goto undo_group;
        g->members = m;
        g->cap = cap;
    }
    const int slot = s->free_slot[s->n_free - 1];
    memcpy(s->vec + (size_t)slot * (size_t)s->dim, v, (size_t)s->dim * sizeof *v);
    if (hnsw_insert(s->hs, &g->g, slot, &s->rng)) goto undo_group;
    s->n_free--;
    s->e[slot] = (sem_entry){.ctx = *ctx, .l1 = *l1, .used = ++s->tick, .group = gi, .gpos = g->n};
    g->members[g->n++] = slot;
    s->n++;
    s->st.inserts++;
    pthread_mutex_unlock(&s->mu);
    return;
undo_group: /* out of memory: the entry is not indexed */
    if (g->n == 0) {
        ht_delete(s, h);
        s->free_grp[s->n_free_grp++] = gi;
    }
    pthread_mutex_unlock(&s->mu);
}

static void remove_locked(cache_sem *s, const cache_key *l1) {
    for (int i = 0; i < s->max; i++)
        if (s->e[i].group >= 0 && key_eq(&s->e[i].l1, l1)) {
            drop(s, i);
            s->st.removed++;
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
