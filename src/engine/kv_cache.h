/* Paged KV cache bookkeeping: which fixed-size blocks of KV storage belong
 * to which sequence, and which full blocks can be shared between sequences.
 *
 * This module only manages block ids (0..n_blocks-1); the engine owns the
 * F16 storage the ids index.  Everything is allocated in kv_cache_new; no
 * function below allocates (block tables are sized by the caller's max
 * context: kv_seq_init).
 *
 * Blocks hold block_size consecutive positions of one sequence.  A block is
 * in exactly one of three states:
 *   free      on the free list, content meaningless;
 *   in use    refcount >= 1 (one per sequence whose table holds it);
 *   cached    refcount 0 but registered in the prefix index: its content is
 *             kept and it may be reused by a later prompt; it is evicted
 *             (unregistered and reused) least recently released first, when
 *             the free list is empty.
 *
 * Prefix index: a full block is keyed by hash(parent block's key, the
 * block_size tokens it holds) (64-bit; the key of the first block uses
 * parent 0).  Keys are compared by hash AND by the stored tokens and parent
 * key, and each block also records which registration of its parent it was
 * computed after (a serial never reused), so a hash collision never shares
 * wrong KV, even after an evicted parent's key is taken by other content.
 * Keys are unique in the index.  Only full blocks whose KV has been computed
 * are registered (kv_seq_commit); a registered block is never written again
 * (a sequence only writes into blocks past its committed prefix, which it
 * owns alone until it registers them).  Evicting a parent leaves its cached
 * children unreachable; they age out through the LRU (rare: release order
 * makes a chain's tail older than its head).
 *
 * Not thread-safe: the engine thread owns it. */
#ifndef RYOT_ENGINE_KV_CACHE_H
#define RYOT_ENGINE_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

typedef struct kv_cache kv_cache;

typedef struct kv_seq {
    int32_t *blocks;   /* block table: blocks[i] holds positions [i*bs, (i+1)*bs) */
    int n_blocks;      /* entries in use */
    int max_blocks;    /* capacity of the table */
    int n_shared;      /* leading blocks that came from the prefix index (read only) */
    int n_committed;   /* leading full blocks matched, registered, or found already
                          registered by another sequence (<= n_blocks) */
    uint64_t last_key; /* key of block n_committed-1 (0 when none) */
    uint64_t last_reg; /* internal: registration serial of the block keyed last_key (0 when none) */
} kv_seq;

typedef struct kv_cache_stats {
    int n_blocks, block_size;
    int n_free;        /* on the free list */
    int n_cached;      /* refcount 0, registered (evictable) */
    int n_used;        /* refcount >= 1 */
    uint64_t evictions;
} kv_cache_stats;

ryot_status kv_cache_new(int n_blocks, int block_size, kv_cache **out, ryot_error *err);
void kv_cache_free(kv_cache *c);
int kv_cache_block_size(const kv_cache *c);
void kv_cache_get_stats(const kv_cache *c, kv_cache_stats *s);
/* Blocks a sequence could still obtain: free + cached. */
int kv_cache_available(const kv_cache *c);

/* Table for up to max_tokens positions (allocates the table only). */
ryot_status kv_seq_init(kv_seq *s, int max_tokens, int block_size, ryot_error *err);
void kv_seq_destroy(kv_seq *s); /* frees the table (call kv_seq_release first: asserted) */

/* For an empty sequence (n_blocks == 0, asserted): finds the longest chain
 * of registered full blocks (cached or in use) equal to tokens[0..n_max) (n_max is the caller's bound, usually
 * n_prompt - 1 so the last prompt token is always computed), appends them
 * to the table with refcount+1 (cached -> in use), marks them shared and
 * committed, and returns the number of positions covered (a multiple of
 * block_size).  Blocks already in use by another sequence are shared
 * (refcount+1).  Matching refreshes nothing else. */
int kv_seq_match_prefix(kv_cache *c, kv_seq *s, const int32_t *tokens, int n_max);

/* Makes the table cover n_tokens positions, taking blocks from the free
 * list, else evicting the least recently released cached block.  All or
 * nothing: false (and no change) when not enough blocks are available or
 * n_tokens exceeds the table. */
bool kv_seq_reserve(kv_cache *c, kv_seq *s, int n_tokens);

/* The KV of tokens[0..n_filled) of the sequence is now computed: registers
 * each newly full block in the prefix index (if an equal block is already
 * registered, this one stays private and is freed on release, and the chain
 * continues under the registered twin).  tokens holds the whole sequence from
 * position 0; n_filled <= n_blocks * block_size (asserted).  Registration
 * stops (n_committed stays; later calls retry) where the key is taken by
 * other content (a 64-bit collision), or when the twin a private block
 * chained to has been evicted since.  A cached block that nothing can reach
 * any more and that holds the key is dropped in favour of this one. */
void kv_seq_commit(kv_cache *c, kv_seq *s, const int32_t *tokens, int n_filled);

/* Drops the sequence's references: each block's refcount-1; a block reaching
 * 0 becomes cached if registered (most recently released = evicted last),
 * else free.  The table is emptied (kept allocated).  Blocks are released
 * last first, so a chain's tail is evicted before its head. */
void kv_seq_release(kv_cache *c, kv_seq *s);

/* Rolls the sequence back to n_tokens positions (speculative decoding drops
 * the KV of rejected draft tokens): blocks wholly past position n_tokens go
 * back to the free list.  They are private and unregistered: committed
 * blocks must lie wholly before n_tokens (n_tokens >= n_committed *
 * block_size, asserted; commit what was kept first), so shared prefix
 * blocks are never touched.  The content of positions past n_tokens in the
 * last kept block is meaningless and is written again. */
void kv_seq_truncate(kv_cache *c, kv_seq *s, int n_tokens);

/* Introspection, for tests and metrics. */
int kv_cache_block_refcount(const kv_cache *c, int32_t block);
bool kv_cache_block_registered(const kv_cache *c, int32_t block);
/* The block's registration serial (unique over the cache's life; 0 when
 * unregistered): the same serial means the same content. */
uint64_t kv_cache_block_serial(const kv_cache *c, int32_t block);
/* Checks every internal invariant (lists, counts, index); O(n_blocks).
 * RYOT_ERR_INTERNAL with what is wrong. */
ryot_status kv_cache_validate(const kv_cache *c, ryot_error *err);
/* Testing only: keeps the low `bits` (1..64) bits of every key so that tests
 * can force key collisions.  Only before anything is registered. */
void kv_cache_set_key_bits(kv_cache *c, int bits);

#endif
