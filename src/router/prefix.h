/* Prefix affinity: a request's prompt as a chain of block hashes, and a
 * per-backend approximate table of the chains it was sent (LRU).
 *
 * The router cannot see tokens or KV blocks, so it hashes bytes: the model
 * name, then each chat message's role and text (or the completion prompt),
 * cut into blocks of block_bytes; hash i covers blocks 0..i, so two requests
 * share hash i exactly when their first i+1 blocks are equal.  Only full
 * blocks are hashed (a partial tail says nothing about what a backend
 * cached).  A backend's table remembers the chains routed to it, the least
 * recently used evicted first: an approximation of the backend's own prefix
 * cache, which evicts by its own rules. */
#ifndef RYOT_ROUTER_PREFIX_H
#define RYOT_ROUTER_PREFIX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RT_PREFIX_MAX_BLOCKS 256 /* hashes per request; longer prompts share only their first blocks' worth */

/* Block hashes of a chat or completion body (out[0..return)); 0 when the
 * body has no prompt text (or less than one block). */
int rt_prefix_hashes(const json_t *body, size_t block_bytes, uint64_t *out, int max);

typedef struct rt_prefix_table rt_prefix_table;

/* capacity: hashes kept; NULL when out of memory. */
rt_prefix_table *rt_prefix_table_new(int capacity);
void rt_prefix_table_free(rt_prefix_table *t);
/* Longest k such that h[0..k) are all in the table (touches nothing). */
int rt_prefix_table_match(const rt_prefix_table *t, const uint64_t *h, int n);
/* Adds (or refreshes) h[0..n) as most recently used, evicting the least
 * recently used entries beyond the capacity. */
void rt_prefix_table_insert(rt_prefix_table *t, const uint64_t *h, int n);
void rt_prefix_table_clear(rt_prefix_table *t);
int rt_prefix_table_size(const rt_prefix_table *t);

#endif
