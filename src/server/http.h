/* HTTP front of ryot serve (libmicrohttpd, one thread per connection):
 * routing, API-key check, request framing and body limits, OpenAI endpoints
 * over the serving loop (sched/runner.h), SSE streaming, /metrics, /health.
 *
 * The listener starts before the model is loaded: until srv_http_set_registry
 * is called every endpoint but /health, /metrics and the web page (GET /,
 * webui.h) answers 503, and /health says "loading".
 *
 * Models (server/registry.h): a request's "model" picks a registry entry by
 * name or alias (none: entry 0, the default); an unknown name is a 404
 * model_not_found.  The request holds a reference on its model from before
 * tokenizing until its response is sent (streams: until the stream ends),
 * so a model is idle, and may be unloaded for the budget, exactly when no
 * request of it is queued or running.  A load failure answers 500 (503 for a
 * shortage) naming the model and the cause. */
#ifndef RYOT_SERVER_HTTP_H
#define RYOT_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "sched/runner.h"
#include "cache/key.h"
#include "server/embeddings.h"
#include "server/registry.h"
#include "store/store.h"

typedef struct srv_http_params {
    const char *host;      /* listen address (default 127.0.0.1) */
    int port;              /* default 8080; 0: any free port (see srv_http_port) */
    const char *api_key;   /* NULL: no authentication */
    size_t max_body;       /* bytes; default 8 MiB; larger bodies get 413 */
    unsigned body_timeout; /* seconds from the request headers to the end of the body
                            * (default 60); a slower or stalled upload is cut: the
                            * connection closes without a reply */
    int max_connections;   /* default 1024 */
    size_t cache_bytes;    /* L1 response cache size (--cache-mb); 0: no cache */
    double cache_ttl_s;    /* seconds a cached answer stays valid (default 3600) */
    const char *redis_url; /* L2 cache in Redis (redis://HOST[:PORT][/DB]); NULL: none */
    int redis_timeout_ms;  /* bound of each Redis connect and command (default 5) */
    float semantic_threshold; /* (0, 1]: semantic cache (needs cache_bytes and srv_http_set_embed); 0: off */
    int semantic_entries;     /* bound of its index (0: CACHE_SEM_DEFAULT_ENTRIES) */
    bool no_webui;         /* --no-webui: no chat page at / (404 there) */
} srv_http_params;

typedef struct srv_http srv_http;

/* What a loaded model gives the HTTP layer: the registry's handle (made by
 * the registry's load op, e.g. src/cli/serve.c). */
typedef struct srv_model {
    const ryot_model *model;
    sched_runner *runner; /* its own engine thread, scheduler queue and KV pool */
    cache_key fp;         /* srv_cache_model_identity: the response cache's model identity */
} srv_model;

ryot_status srv_http_start(const srv_http_params *p, srv_http **out, ryot_error *err);
int srv_http_port(const srv_http *h);
/* Makes the server ready: reg's handles are srv_model; reg is the caller's,
 * freed after srv_http_stop.  /v1/models lists its entries in order (the
 * embedding model last); /metrics labels the per-model series with
 * model="NAME" when it has more than one entry. */
void srv_http_set_registry(srv_http *h, srv_registry *reg);
/* Serves POST /v1/embeddings with e (owned by the caller, who frees it after
 * srv_http_stop); call before srv_http_set_registry.  Without it the endpoint
 * answers 404. */
void srv_http_set_embed(srv_http *h, srv_embed *e);
/* Serves /v1/sessions over st (the runner's store, owned by the caller) and
 * adds its series to /metrics; call before srv_http_set_registry.  Without it
 * the sessions endpoints answer 404. */
void srv_http_set_store(srv_http *h, store *st, const uint8_t model_id[STORE_MODEL_ID_BYTES], int block_size);
/* Runs one request body as POST `endpoint` (/v1/chat/completions,
 * /v1/completions, /v1/embeddings) would over HTTP, without streaming and
 * at scheduler tier `tier` (0..4, over the body's own "priority"), through
 * the same parsing, cache and formatting: the HTTP status, and in *json
 * (malloc'd) the response body or its OpenAI error.  Blocks until done;
 * for the task workers (tasks/service.h). */
int srv_http_execute(srv_http *h, const char *endpoint, const char *body, size_t len, int tier, char **json);
struct tasks_service;
/* Serves /v1/tasks, /v1/files and /v1/batches with t (owned by the caller,
 * freed after srv_http_stop); without it those routes answer 404. */
void srv_http_set_tasks(srv_http *h, struct tasks_service *t);
/* Stop accepting connections (those open keep running). */
void srv_http_quiesce(srv_http *h);
void srv_http_stop(srv_http *h);

#endif
