/* The semantic cache's index: which stored answer (an L1 key) a question
 * close in meaning to an earlier one may reuse.  Each entry is a context
 * key (a digest of everything in the request but the wording of its final
 * user message: the server builds it, respcache.h), the unit vector of that
 * message's embedding, and the L1 key its answer is stored under.
 *
 * Entries are grouped by context (a hash table of groups); a search looks
 * only at its own context's group.  A group of up to CACHE_SEM_FLAT_MAX
 * entries is scanned (exact: the largest dot product, i.e. cosine, the
 * vectors being unit length, at or above the threshold); a larger one is
 * searched through its HNSW graph (cache/hnsw.h), which every group keeps
 * up to date on insert and removal, so crossing the size costs nothing.
 * The graph search is approximate: it can miss a match above the threshold
 * (the unit test measures how often), never return one below it.
 * max_entries bounds the index (at most CACHE_SEM_MAX_ENTRIES); past it the
 * least recently used entry makes room.  Memory: max_entries * (dim floats
 * + ~200 bytes), allocated up front (pages are touched as entries arrive).
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

#define CACHE_SEM_MAX_ENTRIES 65536
#define CACHE_SEM_DEFAULT_ENTRIES 16384 /* ryot serve's --semantic-entries default */
#define CACHE_SEM_FLAT_MAX 1024         /* groups up to this size are scanned, larger ones use the graph */

typedef struct cache_sem cache_sem;

typedef struct cache_sem_stats {
    uint64_t hits, misses;   /* searches */
    uint64_t inserts, evictions, removed; /* evictions: to make room; removed: by cache_sem_remove */
    uint64_t entries, max_entries;
    uint64_t graph_searches; /* searches that went through a group's HNSW graph */
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
