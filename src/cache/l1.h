/* The L1 response cache: an in-process map from cache_key to an opaque value
 * (the server stores a serialized response), bounded in bytes, least recently
 * used first out, each entry valid for a TTL.  Thread-safe (one mutex; every
 * operation is a hash lookup and a list splice, plus one value copy).
 *
 * Bytes counted per entry: the value plus a fixed overhead for the entry and
 * its table slot, so many tiny values cannot exceed the bound either.  A value
 * larger than an eighth of the bound is not stored (one answer must not flush
 * the whole cache).  Expired entries are dropped when met (lookups, puts,
 * eviction), never returned. */
#ifndef RYOT_CACHE_L1_H
#define RYOT_CACHE_L1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/key.h"

typedef struct cache_l1 cache_l1;

typedef struct cache_l1_stats {
    uint64_t hits, misses, expired; /* lookups; expired counts misses on an expired entry */
    uint64_t stores, too_big;       /* puts stored, puts refused for size */
    uint64_t evictions;             /* entries dropped to make room (not expiry) */
    uint64_t entries, bytes;        /* now */
    uint64_t max_bytes;
} cache_l1_stats;

/* max_bytes > 0; ttl_s > 0 (seconds an entry stays valid after its put).
 * NULL when out of memory. */
cache_l1 *cache_l1_new(size_t max_bytes, double ttl_s);
void cache_l1_free(cache_l1 *c);

/* On a hit: *val is a malloc'd copy of the value (free()), *len its length,
 * true.  now: CLOCK_MONOTONIC seconds (ryot_now_s), passed in so tests can
 * move time.  Out of memory for the copy counts as a miss. */
bool cache_l1_get(cache_l1 *c, const cache_key *k, double now, void **val, size_t *len);
/* Stores (or replaces) k's value; false when the value is too big for this
 * cache or memory runs out (the cache is unchanged then, except that an old
 * entry for k is dropped). */
bool cache_l1_put(cache_l1 *c, const cache_key *k, const void *val, size_t len, double now);
void cache_l1_stats_get(cache_l1 *c, cache_l1_stats *out);

/* Bytes charged per entry beyond its value. */
#define CACHE_L1_ENTRY_OVERHEAD 96

#endif
