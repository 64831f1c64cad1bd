/* The model registry of `ryot serve`: the models one server can answer for
 * (-m repeated, --models DIR), each with its name and aliases, file, load
 * state, last use and resident bytes.
 *
 * States: UNLOADED -> LOADING -> READY, or FAILED when the file would not
 * load (kept: a bad file is not read again; a shortage, RYOT_ERR_NOMEM or
 * RYOT_ERR_UNAVAILABLE, goes back to UNLOADED and the next request tries
 * again).  READY -> UNLOADED when the budget evicts it.
 *
 * Loading is lazy: the first srv_registry_acquire of an entry loads it, on
 * the caller's thread and without the registry's lock, so requests to other
 * models go on meanwhile; concurrent acquires of the same entry wait for
 * that one load (a condition variable) and share its result.
 *
 * Budget (budget_bytes, 0: none): before a load, idle READY entries (no
 * references) are unloaded, least recently used first, until the resident
 * bytes of the others plus the newcomer's (its last measured size, else the
 * estimate given at srv_registry_add) fit.  An entry with references (a
 * request running or queued on it) is never unloaded, so the budget is
 * soft: when the models in use do not fit, the newcomer loads anyway and
 * the sum comes back under the budget as models go idle (srv_registry_release
 * evicts the least recently used idle ones then, never the one released).
 * A lone model larger than the budget still loads, and stays.
 *
 * Last use is a counter bumped by every acquire and release (an order, not a
 * time), so the LRU order is deterministic.  All functions are thread-safe.
 * The ops are called without the lock; load with the entry LOADING (so no
 * two loads of one entry run at once), unload with the entry already
 * UNLOADED and no references. */
#ifndef RYOT_SERVER_REGISTRY_H
#define RYOT_SERVER_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#define SRV_REG_MAX_MODELS 256
#define SRV_REG_NAME_MAX 256 /* bytes of a name or alias, NUL included */

typedef enum srv_model_state {
    SRV_MODEL_UNLOADED = 0,
    SRV_MODEL_LOADING,
    SRV_MODEL_READY,
    SRV_MODEL_FAILED,
} srv_model_state;

/* "unloaded", "loading", "loaded", "failed": the status /v1/models shows. */
const char *srv_model_state_name(srv_model_state s);

typedef struct srv_registry_ops {
    /* Loads entry idx from path: *handle and the bytes it keeps resident. */
    ryot_status (*load)(void *ctx, int idx, const char *path, void **handle, uint64_t *bytes, ryot_error *err);
    /* Frees a handle load returned. */
    void (*unload)(void *ctx, int idx, void *handle);
} srv_registry_ops;

typedef struct srv_model_status {
    const char *name;       /* valid while the registry lives */
    const char *path;
    srv_model_state state;
    uint64_t bytes;         /* READY: resident bytes; else the last measured size, or the estimate */
    int refs;               /* acquires not yet released */
    uint64_t last_use;      /* the order counter at the last acquire or release; 0: never */
    uint64_t loads, unloads, load_failures;
    double last_load_s;     /* seconds the last successful load took */
    ryot_status error_code; /* of the last failed load (RYOT_OK: none) */
    char error[RYOT_ERROR_MSG_MAX];
} srv_model_status;

typedef struct srv_registry srv_registry;

/* NULL when out of memory.  ops and ctx outlive the registry. */
srv_registry *srv_registry_new(const srv_registry_ops *ops, void *ctx, uint64_t budget_bytes);
/* Unloads what is loaded (nothing may hold a reference) and frees. */
void srv_registry_free(srv_registry *r);

/* Adds a model: its index (0 is the default model), or -1 with *err
 * (a name already taken, empty or too long, too many models). */
int srv_registry_add(srv_registry *r, const char *name, const char *path, uint64_t est_bytes, ryot_error *err);
/* Another name entry idx answers to; a name already taken is refused. */
ryot_status srv_registry_alias(srv_registry *r, int idx, const char *alias, ryot_error *err);
int srv_registry_count(const srv_registry *r);
/* The entry named (or aliased) name, -1 when none.  Exact bytes. */
int srv_registry_find(const srv_registry *r, const char *name);
const char *srv_registry_name(const srv_registry *r, int idx);
uint64_t srv_registry_budget(const srv_registry *r);

/* Takes a reference on entry idx, loading it first when needed (see
 * above): RYOT_OK with *handle, valid until srv_registry_release; else the
 * load's error (its message names the model), or RYOT_ERR_UNAVAILABLE
 * after srv_registry_close. */
ryot_status srv_registry_acquire(srv_registry *r, int idx, void **handle, ryot_error *err);
void srv_registry_release(srv_registry *r, int idx);
/* A reference only when entry idx is READY (nothing loads): for readers of
 * its state such as /metrics.  true with *handle. */
bool srv_registry_acquire_loaded(srv_registry *r, int idx, void **handle);
/* Drops a reference srv_registry_acquire_loaded took (no use recorded). */
void srv_registry_release_loaded(srv_registry *r, int idx);

/* A consistent copy of entry idx's state. */
void srv_registry_status(srv_registry *r, int idx, srv_model_status *out);
/* The resident bytes of every READY entry. */
uint64_t srv_registry_resident(srv_registry *r);

/* Shutdown: no more loads (acquire of an unloaded entry fails
 * RYOT_ERR_UNAVAILABLE); then fn runs on every READY entry, one after the
 * other, each holding a reference, without the lock. */
void srv_registry_close(srv_registry *r, void (*fn)(void *ctx, int idx, void *handle), void *ctx);

#endif
