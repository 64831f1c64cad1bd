/* The semantic cache's index: which stored answer (an L1 key) a question
 * close in meaning to an earlier one may reuse.  Each entry is a context
 * key (a digest of everything in the request but the wording of its final
 * user message: the server builds it, respcache.h), the unit vector of that
 * message's embedding, and the L1 key its answer is stored under.
 *
 * Search is a flat scan: among entries of the same context, the one with
 * the largest dot product (cosine, vectors being unit length) at or above
 * the threshold.  At CACHE_SEM_MAX_ENTRIES entries of 384 floats a scan is
 * ~1.5M multiply-adds (well under a millisecond); it is no HNSW, so the
 * bound is the index's size limit: past it the least recently used entry
 * makes room.  Memory is bounded by max_entries * (dim floats + ~80 bytes).
 *
 * The index holds no answers: an entry whose L1 key has gone (evicted or
 * expired) is dropped by the caller when its lookup misses
 * (cache_sem_remove), so the index is evicted together with L1.
 * Thread-safe (one mutex around each operation). */
#ifndef RYOT_CACHE_SEMANTIC_H
#define RYOT_CACHE_SEMANTIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/key.h"

#define CACHE_SEM_MAX_ENTRIES 4096

typedef struct cache_sem cache_sem;

typedef struct cache_sem_stats {
    uint64_t hits, misses;   /* searches */
    uint64_t inserts, evictions, removed; /* evictions: to make room; removed: by cache_sem_remove */
    uint64_t entries, max_entries;
} cache_sem_stats;

/* dim > 0; max_entries in 1..CACHE_SEM_MAX_ENTRIES; threshold in (0, 1].
 * NULL when the arguments are out of range or memory runs out. */
cache_sem *cache_sem_new(int dim, int max_entries, float threshold);
void cache_sem_free(cache_sem *s);
float cache_sem_threshold(const cache_sem *s);

/* v: dim floats, unit length (the caller normalizes).  true with *l1 the
 * key of the best entry of context ctx whose cosine with v is >= the
 * threshold (*cos, may be NULL, its cosine); false when there is none. */
bool cache_sem_search(cache_sem *s, const cache_key *ctx, const float *v, cache_key *l1, float *cos);
/* Adds (ctx, v, l1); an entry with the same ctx and L1 key is replaced.
 * When full the least recently used (inserted or found) entry goes. */
void cache_sem_insert(cache_sem *s, const cache_key *ctx, const float *v, const cache_key *l1);
/* Drops every entry pointing at L1 key l1. */
void cache_sem_remove(cache_sem *s, const cache_key *l1);
/* A search found l1 but its answer had left L1: drops l1's entries as
 * cache_sem_remove, and that search counts as a miss instead of a hit. */
void cache_sem_stale(cache_sem *s, const cache_key *l1);
void cache_sem_stats_get(cache_sem *s, cache_sem_stats *out);

#endif
