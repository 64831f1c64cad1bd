/* The model registry (see registry.h). */
#include "server/registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#define MAX_ALIASES 4

typedef struct entry {
    char *name;
    char *aliases[MAX_ALIASES];
    int n_aliases;
    char *path;
    srv_model_state state;
    void *handle;
    uint64_t bytes;     /* READY: resident; else the last measured size or the estimate */
    int refs;
    uint64_t last_use;
    uint64_t loads, unloads, load_failures;
    double last_load_s;
    ryot_status error_code;
    char error[RYOT_ERROR_MSG_MAX];
} entry;

struct srv_registry {
    pthread_mutex_t mu;
    pthread_cond_t loaded; /* broadcast when a load ends */
    srv_registry_ops ops;
    void *ctx;
    uint64_t budget;
    uint64_t clock;
    bool closing;
    entry *e;
    int n;
};

typedef struct victims {
    int idx[SRV_REG_MAX_MODELS];
    void *handle[SRV_REG_MAX_MODELS];
    int n;
} victims;

const char *srv_model_state_name(srv_model_state s) {
    switch (s) {
    case SRV_MODEL_UNLOADED: return "unloaded";
    case SRV_MODEL_LOADING: return "loading";
    case SRV_MODEL_READY: return "loaded";
    case SRV_MODEL_FAILED: return "failed";
    }
    return "unknown";
}

srv_registry *srv_registry_new(const srv_registry_ops *ops, void *ctx, uint64_t budget_bytes) {
    srv_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->e = calloc(SRV_REG_MAX_MODELS, sizeof *r->e);
    if (!r->e) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->loaded, NULL);
    r->ops = *ops;
    r->ctx = ctx;
    r->budget = budget_bytes;
    return r;
}

void srv_registry_free(srv_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        entry *e = &r->e[i];
        RYOT_ASSERT(e->refs == 0 && e->state != SRV_MODEL_LOADING);
        if (e->state == SRV_MODEL_READY) r->ops.unload(r->ctx, i, e->handle);
        free(e->name);
        free(e->path);
        for (int k = 0; k < e->n_aliases; k++) free(e->aliases[k]);
    }
    free(r->e);
    pthread_cond_destroy(&r->loaded);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int find_locked(const srv_registry *r, const char *name) {
    for (int i = 0; i < r->n; i++) {
        const entry *e = &r->e[i];
        if (!strcmp(e->name, name)) return i;
        for (int k = 0; k < e->n_aliases; k++)
            if (!strcmp(e->aliases[k], name)) return i;
    }
    return -1;
}

static ryot_status check_name(const srv_registry *r, const char *name, ryot_error *err) {
    const size_t n = name ? strlen(name) : 0;
    if (!n) return ryot_fail(err, RYOT_ERR_INVALID, "a model name is empty");
    if (n >= SRV_REG_NAME_MAX)
        return ryot_fail(err, RYOT_ERR_INVALID, "the model name '%.40s...' is longer than %d bytes", name,
                         SRV_REG_NAME_MAX - 1);
    if (find_locked(r, name) >= 0)
        return ryot_fail(err, RYOT_ERR_INVALID, "two models are named '%s' (give one --alias NAME)", name);
    return RYOT_OK;
}

int srv_registry_add(srv_registry *r, const char *name, const char *path, uint64_t est_bytes, ryot_error *err) {
    pthread_mutex_lock(&r->mu);
    int idx = -1;
    if (r->n == SRV_REG_MAX_MODELS) {
        ryot_fail(err, RYOT_ERR_INVALID, "more than %d models", SRV_REG_MAX_MODELS);
    } else if (!check_name(r, name, err)) {
        entry *e = &r->e[r->n];
        memset(e, 0, sizeof *e);
        e->name = strdup(name);
        e->path = strdup(path ? path : "");
        if (!e->name || !e->path) {
            free(e->name);
            free(e->path);
            ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        } else {
            e->bytes = est_bytes;
            idx = r->n++;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return idx;
}

ryot_status srv_registry_alias(srv_registry *r, int idx, const char *alias, ryot_error *err) {
    pthread_mutex_lock(&r->mu);
    ryot_status st = RYOT_OK;
    RYOT_ASSERT(idx >= 0 && idx < r->n);
    entry *e = &r->e[idx];
    if (find_locked(r, alias ? alias : "") == idx) {
        st = RYOT_OK; /* already its name */
    } else if ((st = check_name(r, alias, err))) {
    } else if (e->n_aliases == MAX_ALIASES) {
        st = ryot_fail(err, RYOT_ERR_INVALID, "model '%s' has %d aliases already", e->name, MAX_ALIASES);
    } else if (!(e->aliases[e->n_aliases] = strdup(alias))) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    } else {
        e->n_aliases++;
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

int srv_registry_count(const srv_registry *r) { return r->n; }

int srv_registry_find(const srv_registry *r, const char *name) {
    if (!name) return -1;
    /* names are fixed once serving starts (add and alias come before) */
    return find_locked(r, name);
}

const char *srv_registry_name(const srv_registry *r, int idx) {
    RYOT_ASSERT(idx >= 0 && idx < r->n);
    return r->e[idx].name;
}

uint64_t srv_registry_budget(const srv_registry *r) { return r->budget; }

static uint64_t resident_locked(const srv_registry *r) {
    uint64_t sum = 0;
    for (int i = 0; i < r->n; i++)
        if (r->e[i].state == SRV_MODEL_READY) sum += r->e[i].bytes;
    return sum;
}

/* Unloads idle READY entries (not keep), least recently used first, while
 * the resident bytes plus extra exceed the budget; their handles go to v,
 * for the caller to unload without the lock. */
static void evict_locked(srv_registry *r, int keep, uint64_t extra, victims *v) {
    if (!r->budget) return;
    uint64_t used = resident_locked(r);
    while (used + extra > r->budget) {
        int best = -1;
        for (int i = 0; i < r->n; i++) {
            const entry *e = &r->e[i];
            if (i == keep || e->state != SRV_MODEL_READY || e->refs) continue;
            if (best < 0 || e->last_use < r->e[best].last_use) best = i;
        }
        if (best < 0) return; /* what is left is in use: the budget is exceeded until it goes idle */
        entry *e = &r->e[best];
        v->idx[v->n] = best;
        v->handle[v->n++] = e->handle;
        e->handle = NULL;
        e->state = SRV_MODEL_UNLOADED;
        e->unloads++;
        used -= e->bytes;
    }
}

static void unload_victims(srv_registry *r, const victims *v) {
    for (int i = 0; i < v->n; i++) r->ops.unload(r->ctx, v->idx[i], v->handle[i]);
}

ryot_status srv_registry_acquire(srv_registry *r, int idx, void **handle, ryot_error *err) {
    *handle = NULL;
    pthread_mutex_lock(&r->mu);
    RYOT_ASSERT(idx >= 0 && idx < r->n);
    entry *e = &r->e[idx];
    for (;;) {
        if (e->state == SRV_MODEL_READY) {
            e->refs++;
            e->last_use = ++r->clock;
            *handle = e->handle;
            pthread_mutex_unlock(&r->mu);
            return RYOT_OK;
        }
        if (e->state == SRV_MODEL_FAILED) {
            ryot_status st = ryot_fail(err, e->error_code, "%s", e->error);
            pthread_mutex_unlock(&r->mu);
            return st;
        }
        if (r->closing) {
            pthread_mutex_unlock(&r->mu);
            return ryot_fail(err, RYOT_ERR_UNAVAILABLE, "the server is shutting down");
        }
        if (e->state == SRV_MODEL_LOADING) {
            pthread_cond_wait(&r->loaded, &r->mu);
            continue; /* READY, FAILED, or UNLOADED again after a shortage: this thread tries */
        }
        break; /* UNLOADED: this thread loads it */
    }
    e->state = SRV_MODEL_LOADING;
    victims v = {.n = 0};
    evict_locked(r, idx, e->bytes, &v);
    pthread_mutex_unlock(&r->mu);
    unload_victims(r, &v);

    void *h = NULL;
    uint64_t bytes = 0;
    ryot_error le = {0};
    const double t0 = ryot_now_s();
    ryot_status st = r->ops.load(r->ctx, idx, e->path, &h, &bytes, &le);
    const double dt = ryot_now_s() - t0;

    pthread_mutex_lock(&r->mu);
    v.n = 0;
    if (st) {
        e->load_failures++;
        e->error_code = st;
        snprintf(e->error, sizeof e->error, "%s", le.msg);
        /* a shortage may pass: the next request tries again */
        e->state = st == RYOT_ERR_NOMEM || st == RYOT_ERR_UNAVAILABLE ? SRV_MODEL_UNLOADED : SRV_MODEL_FAILED;
        ryot_fail(err, st, "%s", le.msg);
    } else {
        e->state = SRV_MODEL_READY;
        e->handle = h;
        e->bytes = bytes;
        e->loads++;
        e->last_load_s = dt;
        e->refs++;
        e->last_use = ++r->clock;
        *handle = h;
        evict_locked(r, idx, 0, &v); /* the measured size may be larger than the estimate */
    }
    pthread_cond_broadcast(&r->loaded);
    pthread_mutex_unlock(&r->mu);
    unload_victims(r, &v);
    return st;
}

void srv_registry_release(srv_registry *r, int idx) {
    pthread_mutex_lock(&r->mu);
    RYOT_ASSERT(idx >= 0 && idx < r->n && r->e[idx].refs > 0);
    r->e[idx].refs--;
    r->e[idx].last_use = ++r->clock;
    victims v = {.n = 0};
    if (!r->closing) evict_locked(r, idx, 0, &v); /* the one just used stays */
    pthread_mutex_unlock(&r->mu);
    unload_victims(r, &v);
}

bool srv_registry_acquire_loaded(srv_registry *r, int idx, void **handle) {
    pthread_mutex_lock(&r->mu);
    RYOT_ASSERT(idx >= 0 && idx < r->n);
    entry *e = &r->e[idx];
    const bool ready = e->state == SRV_MODEL_READY;
    if (ready) e->refs++; /* not a use: the LRU order stays */
    *handle = ready ? e->handle : NULL;
    pthread_mutex_unlock(&r->mu);
    return ready;
}

void srv_registry_release_loaded(srv_registry *r, int idx) {
    pthread_mutex_lock(&r->mu);
    RYOT_ASSERT(idx >= 0 && idx < r->n && r->e[idx].refs > 0);
    r->e[idx].refs--;
    pthread_mutex_unlock(&r->mu);
}

void srv_registry_status(srv_registry *r, int idx, srv_model_status *out) {
    pthread_mutex_lock(&r->mu);
    RYOT_ASSERT(idx >= 0 && idx < r->n);
    const entry *e = &r->e[idx];
    *out = (srv_model_status){.name = e->name,
                              .path = e->path,
                              .state = e->state,
                              .bytes = e->bytes,
                              .refs = e->refs,
                              .last_use = e->last_use,
                              .loads = e->loads,
                              .unloads = e->unloads,
                              .load_failures = e->load_failures,
                              .last_load_s = e->last_load_s,
                              .error_code = e->error_code};
    memcpy(out->error, e->error, sizeof out->error);
    pthread_mutex_unlock(&r->mu);
}

uint64_t srv_registry_resident(srv_registry *r) {
    pthread_mutex_lock(&r->mu);
    const uint64_t sum = resident_locked(r);
    pthread_mutex_unlock(&r->mu);
    return sum;
}

void srv_registry_close(srv_registry *r, void (*fn)(void *ctx, int idx, void *handle), void *ctx) {
    pthread_mutex_lock(&r->mu);
    r->closing = true;
    while (fn) { /* wait for loads in progress: they end READY or not */
        bool loading = false;
        for (int i = 0; i < r->n; i++) loading = loading || r->e[i].state == SRV_MODEL_LOADING;
        if (!loading) break;
        pthread_cond_wait(&r->loaded, &r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; fn && i < r->n; i++) {
        pthread_mutex_lock(&r->mu);
        entry *e = &r->e[i];
        void *h = e->state == SRV_MODEL_READY ? e->handle : NULL;
        if (h) e->refs++;
        pthread_mutex_unlock(&r->mu);
        if (!h) continue;
        fn(ctx, i, h);
        srv_registry_release(r, i);
    }
}
