/* Backend registration in Redis for `ryot route --redis`: a serve process
 * heartbeats the key ryot:backend:<URL> (value: its URL) with a TTL, so a
 * backend that dies drops out once the key expires; a clean shutdown deletes
 * the key at once.  The router lists the keys (SCAN) every second. */
#ifndef RYOT_ROUTER_REGISTER_H
#define RYOT_ROUTER_REGISTER_H

#include <stddef.h>

#include "core/error.h"

#define RT_REGISTER_PREFIX "ryot:backend:"

/* redis://HOST[:PORT][/DB] -> host (NUL-terminated, at most hn-1 bytes), port, db. */
ryot_status rt_redis_url_parse(const char *url, char *host, size_t hn, int *port, int *db, ryot_error *err);

typedef struct rt_register rt_register;

/* Starts the heartbeat thread (every ttl_ms / 3).  A Redis that is down is
 * retried at each beat; only a malformed URL fails here. */
ryot_status rt_register_start(const char *redis_url, const char *advertise_url, int ttl_ms, rt_register **out,
                              ryot_error *err);
/* Stops the thread and deletes the key. */
void rt_register_stop(rt_register *r);

#endif
