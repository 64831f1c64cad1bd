/* `ryot route`: an OpenAI-compatible HTTP front over several `ryot serve`
 * backends (libmicrohttpd, one thread per client connection; libcurl
 * upstream, one multi handle per client connection so upstream connections
 * are kept alive across its requests).
 *
 * Each request's body is read whole, its model and prompt block hashes taken
 * (prefix.h), a backend picked (pool.h), and the request forwarded.  Once the
 * backend's status line and headers are in, the reply starts and its body is
 * passed through as it arrives (SSE chunks unbuffered).  A request that
 * failed before any byte came back (no connection, reset, or a 502/503/504
 * status) is retried once on another backend.  A client that leaves cancels
 * the upstream transfer, which closes that connection: the backend sees the
 * disconnect and cancels the sequence.
 *
 * A probe thread asks each backend for /health (breaker), /metrics (running
 * and waiting sequences: the load) and, when unknown, /v1/models every
 * probe_ms; with a Redis URL it also reads the registered backends
 * (register.h) every second. */
#ifndef RYOT_ROUTER_ROUTER_H
#define RYOT_ROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "router/canary.h"
#include "router/pool.h"

typedef struct rt_server_params {
    const char *host;        /* listen address (default 127.0.0.1) */
    int port;                /* 0: any free port (rt_server_port) */
    size_t max_body;         /* default 8 MiB; larger: 413 */
    int max_connections;     /* default 1024 */
    int probe_ms;            /* health probe period (default 250) */
    int connect_timeout_ms;  /* upstream connect bound (default 1000) */
    const char *redis_url;   /* discovery: redis://HOST[:PORT][/DB]; NULL: only the --backend list */
    int redis_timeout_ms;    /* default 200 */
    bool quiet;
    rt_canary *canary;       /* splits (taken over, freed by rt_server_stop); NULL: none */
} rt_server_params;

typedef struct rt_server rt_server;

/* Takes the pool over (freed by rt_server_stop). */
ryot_status rt_server_start(const rt_server_params *p, rt_pool *pool, rt_server **out, ryot_error *err);
int rt_server_port(const rt_server *s);
void rt_server_stop(rt_server *s);

#endif
