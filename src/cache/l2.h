/* The L2 response cache: the same keys and values as L1, shared by every
 * instance through Redis (hiredis), compressed with zstd, expired by Redis
 * (SET ... EX ttl).
 *
 * Redis is an optimization, never a dependency: every call is bounded by a
 * short timeout (connect, read, write), an error or timeout counts and drops
 * the connection, and while it is down calls return at once (a miss, a
 * skipped store) until the next reconnect attempt, backed off from 100 ms to
 * 5 s.  A stored record is "RYC1", the 32-byte key, the raw length (u32 LE)
 * and one zstd frame; a record with another magic or key, or whose frame does
 * not decompress to exactly that length, is a miss (counted as corrupt).
 * Thread-safe: one connection behind a mutex. */
#ifndef RYOT_CACHE_L2_H
#define RYOT_CACHE_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/key.h"
#include "core/error.h"

typedef struct cache_l2 cache_l2;

typedef struct cache_l2_stats {
    uint64_t hits, misses, stores;
    uint64_t errors;     /* failed or timed-out commands and connects */
    uint64_t corrupt;    /* records that did not decode (counted as misses too) */
    uint64_t reconnects; /* successful connects after the first */
    bool up;             /* connected now */
} cache_l2_stats;

/* url: redis://HOST[:PORT][/DB] (port 6379, db 0 by default).  Only the URL
 * is checked here; the connection is made on first use, so a server starts
 * while Redis is down.  timeout_ms bounds each connect and command; ttl_s is
 * the expiry of stored records (>= 1). */
ryot_status cache_l2_new(const char *url, int timeout_ms, int64_t ttl_s, cache_l2 **out, ryot_error *err);
void cache_l2_free(cache_l2 *c);

/* On a hit: *val malloc'd (free()), *len; false on a miss, an error or while
 * Redis is down. */
bool cache_l2_get(cache_l2 *c, const cache_key *k, void **val, size_t *len);
void cache_l2_put(cache_l2 *c, const cache_key *k, const void *val, size_t len);
void cache_l2_stats_get(cache_l2 *c, cache_l2_stats *out);

/* The Redis key of a cache key: "ryot:cache:" and 64 hex digits. */
#define CACHE_L2_KEY_MAX (11 + 2 * CACHE_KEY_BYTES + 1)
void cache_l2_redis_key(const cache_key *k, char out[CACHE_L2_KEY_MAX]);

#endif
