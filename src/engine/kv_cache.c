/* Paged KV cache bookkeeping; states, keys and contracts are in kv_cache.h.
 *
 * Layout: one array of block records, one array of the tokens each
 * registered block holds, and a chained hash index whose chains run through
 * the block records (a block is in the index at most once), so nothing is
 * allocated after kv_cache_new.  The free list and the LRU list of cached
 * blocks share the records' prev/next links: a block is on at most one of
 * them, and on neither while in use. */
#include "engine/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#define NIL (-1)

/* Upper bound on n_blocks * block_size (tokens stored for the index): keeps
 * every product below in int range. */
#define KV_MAX_TOKENS (1 << 30)

typedef enum block_state { BLOCK_FREE, BLOCK_CACHED, BLOCK_USED } block_state;

typedef struct kv_block {
    uint64_t key;       /* valid when registered */
    uint64_t parent;    /* key of the block before it in its chain (0: first) */
    uint64_t reg;       /* registration serial, unique over the cache's life; 0: unregistered */
    uint64_t parent_reg;/* reg of the block before it when it was registered (0: first) */
    int32_t refcount;   /* sequences holding it */
    int32_t prev, next; /* free list (next only) or LRU list; NIL at the ends */
    int32_t hnext;      /* next block in the same index bucket */
    uint8_t state;      /* block_state, redundant with refcount/registered: checked by kv_cache_validate */
    bool registered;
} kv_block;

struct kv_cache {
    int n_blocks, block_size;
    kv_block *b;         /* (n_blocks) */
    int32_t *tokens;     /* (n_blocks, block_size) tokens of registered blocks */
    int32_t *bucket;     /* (n_bucket) first block of each index chain */
    uint32_t bucket_mask;/* n_bucket - 1, n_bucket a power of two >= n_blocks */
    int32_t free_head;
    int32_t lru_head, lru_tail; /* least / most recently released cached block */
    int n_free, n_cached, n_used, n_registered;
    uint64_t evictions;
    uint64_t next_reg;   /* serial of the next registration (from 1) */
    uint64_t key_mask;   /* ~0; fewer bits only in tests (kv_cache_set_key_bits) */
};

/* ---------------------------------------------------------------- hashing
 * Keys chain: key(block i) = H(key(block i-1), tokens of block i).  Tokens
 * are absorbed two per 64-bit word with a multiply-rotate step, and the
 * result goes through a full avalanche finalizer.  0 is reserved for "no
 * parent", so a key of 0 is remapped (key_of). */

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t avalanche64(uint64_t z) {
    z ^= z >> 31;
    z *= 0x7fb5d329728ea185ull;
    z ^= z >> 27;
    z *= 0x81dadef4bc2dd44dull;
    z ^= z >> 33;
    return z;
}

static uint64_t block_hash(uint64_t parent, const int32_t *tok, int n) {
    const uint64_t m1 = 0x9e3779b97f4a7c15ull, m2 = 0xc2b2ae3d27d4eb4full;
    uint64_t h = avalanche64(parent ^ 0x243f6a8885a308d3ull) ^ (uint64_t)n * m2;
    int i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t w = (uint64_t)(uint32_t)tok[i] | (uint64_t)(uint32_t)tok[i + 1] << 32;
        h = rotl64(h ^ (w * m1), 29) * m2;
    }
    if (i < n) h = rotl64(h ^ ((uint64_t)(uint32_t)tok[i] * m1), 29) * m2;
    return avalanche64(h);
}

static inline uint64_t key_of(const kv_cache *c, uint64_t parent, const int32_t *tok) {
    uint64_t key = block_hash(parent, tok, c->block_size) & c->key_mask;
    return key ? key : 1;
}

/* ---------------------------------------------------------------- index */

static inline int32_t *bucket_of(kv_cache *c, uint64_t key) {
    /* the key is already mixed: its low bits are as good as any */
    return &c->bucket[(uint32_t)key & c->bucket_mask];
}

static inline const int32_t *block_tokens(const kv_cache *c, int32_t id) {
    return c->tokens + (size_t)id * (size_t)c->block_size;
}

/* The registered block with this key, or NIL.  Keys are unique in the index
 * (kv_seq_commit never registers a second block under a key). */
static int32_t index_find(kv_cache *c, uint64_t key) {
    for (int32_t id = *bucket_of(c, key); id != NIL; id = c->b[id].hnext)
        if (c->b[id].key == key) return id;
    return NIL;
}

/* Whether registered block id holds exactly `tok` after the registration
 * parent_reg of its predecessor (under key `parent`).
 *
 * Why the serials: keys alone would chain by content hash only, so after a
 * parent is evicted and its key reused by a block of other content (a
 * collision), the old children would hang under the wrong prefix.  A child
 * records the registration serial of the exact parent it was computed
 * after; a serial is never reused, so a chain matched block by block is the
 * exact token prefix.  Children of an evicted parent become unreachable for
 * good and age out through the LRU. */
static bool block_is(const kv_cache *c, int32_t id, uint64_t parent, uint64_t parent_reg, const int32_t *tok) {
    const kv_block *b = &c->b[id];
    return b->parent == parent && b->parent_reg == parent_reg &&
           memcmp(block_tokens(c, id), tok, (size_t)c->block_size * sizeof *tok) == 0;
}

/* Whether the registration block id was chained after is gone. */
static bool orphaned(kv_cache *c, int32_t id) {
    const kv_block *b = &c->b[id];
    if (b->parent_reg == 0) return false;
    int32_t p = index_find(c, b->parent);
    return p == NIL || c->b[p].reg != b->parent_reg;
}

static void index_insert(kv_cache *c, int32_t id, uint64_t key, uint64_t parent, uint64_t parent_reg,
                         const int32_t *tok) {
    kv_block *b = &c->b[id];
    RYOT_ASSERT(!b->registered);
    b->key = key;
    b->parent = parent;
    b->parent_reg = parent_reg;
    b->reg = c->next_reg++;
    b->registered = true;
    memcpy(c->tokens + (size_t)id * (size_t)c->block_size, tok, (size_t)c->block_size * sizeof *tok);
    int32_t *head = bucket_of(c, key);
    b->hnext = *head;
    *head = id;
    c->n_registered++;
}

static void index_remove(kv_cache *c, int32_t id) {
    kv_block *b = &c->b[id];
    RYOT_ASSERT(b->registered);
    int32_t *link = bucket_of(c, b->key);
    while (*link != id) {
        RYOT_ASSERT(*link != NIL);
        link = &c->b[*link].hnext;
    }
    *link = b->hnext;
    b->hnext = NIL;
    b->registered = false;
    b->key = b->parent = b->reg = b->parent_reg = 0;
    c->n_registered--;
}

/* ---------------------------------------------------------------- lists */

static void lru_unlink(kv_cache *c, int32_t id) {
    kv_block *b = &c->b[id];
    RYOT_ASSERT(b->state == BLOCK_CACHED);
    if (b->prev != NIL) c->b[b->prev].next = b->next;
    else c->lru_head = b->next;
    if (b->next != NIL) c->b[b->next].prev = b->prev;
    else c->lru_tail = b->prev;
    b->prev = b->next = NIL;
    c->n_cached--;
}

static void lru_push_mru(kv_cache *c, int32_t id) {
    kv_block *b = &c->b[id];
    b->state = BLOCK_CACHED;
    b->next = NIL;
    b->prev = c->lru_tail;
    if (c->lru_tail != NIL) c->b[c->lru_tail].next = id;
    else c->lru_head = id;
    c->lru_tail = id;
    c->n_cached++;
}

static void free_push(kv_cache *c, int32_t id) {
    kv_block *b = &c->b[id];
    b->state = BLOCK_FREE;
    b->prev = NIL;
    b->next = c->free_head;
    c->free_head = id;
    c->n_free++;
}

/* A block for exclusive use (refcount 1, unregistered): from the free list,
 * else the least recently released cached block.  Evicting a block whose
 * children are still cached leaves them unreachable by matching (a match
 * walks the chain from the first block, and a re-registered parent has a
 * new serial); they age out through the LRU like any other block.  This is
 * rare: a sequence holds the whole chain up to its last block and releases
 * it last block first, so a parent is released no earlier than its
 * children (only a duplicate commit, below, makes a child outlive its
 * parent's references).  The caller has checked that a block is available. */
static int32_t take_block(kv_cache *c) {
    int32_t id = c->free_head;
    if (id != NIL) {
        c->free_head = c->b[id].next;
        c->n_free--;
    } else {
        id = c->lru_head;
        RYOT_ASSERT(id != NIL);
        lru_unlink(c, id);
        index_remove(c, id);
        c->evictions++;
    }
    kv_block *b = &c->b[id];
    b->prev = b->next = NIL;
    b->refcount = 1;
    b->state = BLOCK_USED;
    c->n_used++;
    return id;
}

/* ---------------------------------------------------------------- life cycle */

ryot_status kv_cache_new(int n_blocks, int block_size, kv_cache **out, ryot_error *err) {
    *out = NULL;
    if (n_blocks <= 0) return ryot_fail(err, RYOT_ERR_INVALID, "kv cache: n_blocks %d must be > 0", n_blocks);
    if (block_size <= 0)
        return ryot_fail(err, RYOT_ERR_INVALID, "kv cache: block_size %d must be > 0", block_size);
    if ((int64_t)n_blocks * block_size > KV_MAX_TOKENS)
        return ryot_fail(err, RYOT_ERR_INVALID, "kv cache: %d blocks of %d positions exceed %d positions",
                         n_blocks, block_size, KV_MAX_TOKENS);

    uint32_t n_bucket = 1;
    while (n_bucket < (uint32_t)n_blocks) n_bucket <<= 1;

    kv_cache *c = calloc(1, sizeof *c);
    if (!c) return ryot_fail(err, RYOT_ERR_NOMEM, "kv cache: out of memory");
    c->n_blocks = n_blocks;
    c->block_size = block_size;
    c->b = calloc((size_t)n_blocks, sizeof *c->b);
    c->tokens = malloc((size_t)n_blocks * (size_t)block_size * sizeof *c->tokens);
    c->bucket = malloc((size_t)n_bucket * sizeof *c->bucket);
    if (!c->b || !c->tokens || !c->bucket) {
        kv_cache_free(c);
        return ryot_fail(err, RYOT_ERR_NOMEM, "kv cache: out of memory for %d blocks of %d positions", n_blocks,
                         block_size);
    }
    c->bucket_mask = n_bucket - 1;
    c->key_mask = ~0ull;
    c->next_reg = 1;
    for (uint32_t i = 0; i < n_bucket; i++) c->bucket[i] = NIL;
    c->free_head = c->lru_head = c->lru_tail = NIL;
    /* pushed in reverse so that blocks are handed out 0, 1, 2, ... */
    for (int32_t id = n_blocks - 1; id >= 0; id--) {
        c->b[id].hnext = NIL;
        free_push(c, id);
    }
    *out = c;
    return RYOT_OK;
}

void kv_cache_free(kv_cache *c) {
    if (!c) return;
    free(c->b);
    free(c->tokens);
    free(c->bucket);
    free(c);
}

int kv_cache_block_size(const kv_cache *c) { return c->block_size; }

void kv_cache_get_stats(const kv_cache *c, kv_cache_stats *s) {
    s->n_blocks = c->n_blocks;
    s->block_size = c->block_size;
    s->n_free = c->n_free;
    s->n_cached = c->n_cached;
    s->n_used = c->n_used;
    s->evictions = c->evictions;
}

int kv_cache_available(const kv_cache *c) { return c->n_free + c->n_cached; }

int kv_cache_block_refcount(const kv_cache *c, int32_t block) {
    RYOT_ASSERT(block >= 0 && block < c->n_blocks);
    return c->b[block].refcount;
}

bool kv_cache_block_registered(const kv_cache *c, int32_t block) {
    RYOT_ASSERT(block >= 0 && block < c->n_blocks);
    return c->b[block].registered;
}

uint64_t kv_cache_block_serial(const kv_cache *c, int32_t block) {
    RYOT_ASSERT(block >= 0 && block < c->n_blocks);
    return c->b[block].reg;
}

void kv_cache_set_key_bits(kv_cache *c, int bits) {
    RYOT_ASSERT(bits >= 1 && bits <= 64 && c->n_registered == 0);
    c->key_mask = bits == 64 ? ~0ull : (1ull << bits) - 1;
}

/* ---------------------------------------------------------------- sequences */

ryot_status kv_seq_init(kv_seq *s, int max_tokens, int block_size, ryot_error *err) {
    memset(s, 0, sizeof *s);
    if (max_tokens <= 0)
        return ryot_fail(err, RYOT_ERR_INVALID, "kv sequence: max_tokens %d must be > 0", max_tokens);
    if (block_size <= 0)
        return ryot_fail(err, RYOT_ERR_INVALID, "kv sequence: block_size %d must be > 0", block_size);
    int max_blocks = (int)(((int64_t)max_tokens + block_size - 1) / block_size);
    s->blocks = malloc((size_t)max_blocks * sizeof *s->blocks);
    if (!s->blocks)
        return ryot_fail(err, RYOT_ERR_NOMEM, "kv sequence: out of memory for a table of %d blocks", max_blocks);
    s->max_blocks = max_blocks;
    return RYOT_OK;
}

void kv_seq_destroy(kv_seq *s) {
    /* a table still holding blocks would leak their references */
    RYOT_ASSERT(s->n_blocks == 0);
    free(s->blocks);
    memset(s, 0, sizeof *s);
}

int kv_seq_match_prefix(kv_cache *c, kv_seq *s, const int32_t *tokens, int n_max) {
    RYOT_ASSERT(s->n_blocks == 0);
    const int bs = c->block_size;
    int n_full = n_max > 0 ? n_max / bs : 0;
    if (n_full > s->max_blocks) n_full = s->max_blocks;

    uint64_t parent = 0, parent_reg = 0;
    int n = 0;
    for (; n < n_full; n++) {
        const int32_t *tok = tokens + (size_t)n * (size_t)bs;
        uint64_t key = key_of(c, parent, tok);
        int32_t id = index_find(c, key);
        if (id == NIL || !block_is(c, id, parent, parent_reg, tok)) break;
        kv_block *b = &c->b[id];
        if (b->refcount == 0) {
            lru_unlink(c, id);
            b->state = BLOCK_USED;
            c->n_used++;
        }
        b->refcount++;
        s->blocks[n] = id;
        parent = key;
        parent_reg = b->reg;
    }
    s->n_blocks = s->n_shared = s->n_committed = n;
    s->last_key = parent;
    s->last_reg = parent_reg;
    return n * bs;
}

bool kv_seq_reserve(kv_cache *c, kv_seq *s, int n_tokens) {
    const int bs = c->block_size;
    if (n_tokens < 0 || n_tokens > (int64_t)s->max_blocks * bs) return false;
    int need = (int)(((int64_t)n_tokens + bs - 1) / bs) - s->n_blocks;
    if (need <= 0) return true;
    if (need > c->n_free + c->n_cached) return false;
    for (int i = 0; i < need; i++) s->blocks[s->n_blocks++] = take_block(c);
    return true;
}

void kv_seq_commit(kv_cache *c, kv_seq *s, const int32_t *tokens, int n_filled) {
    const int bs = c->block_size;
    RYOT_ASSERT(n_filled >= 0 && n_filled <= (int64_t)s->n_blocks * bs);
    int n_full = n_filled / bs;
    while (s->n_committed < n_full) {
        int i = s->n_committed;
        int32_t id = s->blocks[i];
        kv_block *b = &c->b[id];
        /* past the shared prefix every block is this sequence's own */
        RYOT_ASSERT(i >= s->n_shared && b->refcount == 1 && !b->registered);
        if (i > 0) {
            /* The predecessor registration must still be there: it is this
             * sequence's own block i-1 (in use, so never evicted) unless
             * block i-1 was a duplicate, whose registered twin other
             * sequences hold or not.  If the twin was evicted, nothing past
             * it can be chained any more: stop (n_committed stays put). */
            int32_t p = index_find(c, s->last_key);
            if (p == NIL || c->b[p].reg != s->last_reg) return;
        }
        const int32_t *tok = tokens + (size_t)i * (size_t)bs;
        uint64_t key = key_of(c, s->last_key, tok);
        int32_t other = index_find(c, key);
        if (other == NIL) {
            index_insert(c, id, key, s->last_key, s->last_reg, tok);
            other = id;
        } else if (!block_is(c, other, s->last_key, s->last_reg, tok)) {
            if (c->b[other].refcount == 0 && orphaned(c, other)) {
                /* a cached block nothing can reach any more: drop it */
                lru_unlink(c, other);
                index_remove(c, other);
                free_push(c, other);
                index_insert(c, id, key, s->last_key, s->last_reg, tok);
                other = id;
            } else {
                /* A key collision with different content (or a reachable
                 * twin under an older parent registration): the key is
                 * taken, keys stay unique in the index, so neither this
                 * block nor any after it can be registered.  Stop here (a
                 * later call retries: n_committed stays put). */
                return;
            }
        }
        /* (other != id: another sequence registered the same block first;
         * this copy stays private and the chain continues under the
         * registered twin) */
        s->last_key = key;
        s->last_reg = c->b[other].reg;
        s->n_committed++;
    }
}

void kv_seq_release(kv_cache *c, kv_seq *s) {
    /* Last block first, so that a chain's first blocks are the most recently
     * released and a prefix loses its tail to eviction before its head. */
    for (int i = s->n_blocks - 1; i >= 0; i--) {
        int32_t id = s->blocks[i];
        kv_block *b = &c->b[id];
        RYOT_ASSERT(b->state == BLOCK_USED && b->refcount > 0);
        if (--b->refcount > 0) continue;
        c->n_used--;
        if (b->registered) lru_push_mru(c, id);
        else free_push(c, id);
    }
    s->n_blocks = s->n_shared = s->n_committed = 0;
    s->last_key = s->last_reg = 0;
}

void kv_seq_truncate(kv_cache *c, kv_seq *s, int n_tokens) {
    const int keep = (n_tokens + c->block_size - 1) / c->block_size;
    RYOT_ASSERT(n_tokens >= s->n_committed * c->block_size && keep <= s->n_blocks);
    for (; s->n_blocks > keep; s->n_blocks--) {
        int32_t id = s->blocks[s->n_blocks - 1];
        kv_block *b = &c->b[id];
        RYOT_ASSERT(b->state == BLOCK_USED && b->refcount == 1 && !b->registered);
        b->refcount = 0;
        c->n_used--;
        free_push(c, id);
    }
}

/* ---------------------------------------------------------------- checking */

ryot_status kv_cache_validate(const kv_cache *c, ryot_error *err) {
    int n_state[3] = {0, 0, 0}, n_reg = 0;
    for (int32_t id = 0; id < c->n_blocks; id++) {
        const kv_block *b = &c->b[id];
        if (b->state > BLOCK_USED) return ryot_fail(err, RYOT_ERR_INTERNAL, "block %d: bad state %d", id, b->state);
        n_state[b->state]++;
        n_reg += b->registered;
        bool ok = b->state == BLOCK_FREE     ? b->refcount == 0 && !b->registered
                  : b->state == BLOCK_CACHED ? b->refcount == 0 && b->registered
                                             : b->refcount > 0;
        if (!ok)
            return ryot_fail(err, RYOT_ERR_INTERNAL, "block %d: state %d with refcount %d, registered %d", id,
                             b->state, b->refcount, b->registered);
        if (b->registered != (b->reg != 0) || b->reg >= c->next_reg)
            return ryot_fail(err, RYOT_ERR_INTERNAL, "block %d: registered %d with serial %llu", id, b->registered,
                             (unsigned long long)b->reg);
        if (b->state == BLOCK_USED && !b->registered && b->refcount != 1)
            return ryot_fail(err, RYOT_ERR_INTERNAL, "block %d: private block with refcount %d", id, b->refcount);
    }
    if (n_state[BLOCK_FREE] != c->n_free || n_state[BLOCK_CACHED] != c->n_cached ||
        n_state[BLOCK_USED] != c->n_used || n_reg != c->n_registered)
        return ryot_fail(err, RYOT_ERR_INTERNAL,
                         "counts free %d/%d cached %d/%d used %d/%d registered %d/%d (found/kept)",
                         n_state[BLOCK_FREE], c->n_free, n_state[BLOCK_CACHED], c->n_cached, n_state[BLOCK_USED],
                         c->n_used, n_reg, c->n_registered);

    /* A list through the blocks' own links that visits exactly n nodes, all
     * in the right state, and then ends holds each of them once (a repeat
     * would be a cycle, which never ends). */
    int n = 0;
    for (int32_t id = c->free_head; id != NIL; id = c->b[id].next, n++)
        if (n >= c->n_free || id < 0 || id >= c->n_blocks || c->b[id].state != BLOCK_FREE)
            return ryot_fail(err, RYOT_ERR_INTERNAL, "free list: bad node %d at %d", id, n);
    if (n != c->n_free) return ryot_fail(err, RYOT_ERR_INTERNAL, "free list: %d nodes, %d free", n, c->n_free);
    n = 0;
    int32_t prev = NIL;
    for (int32_t id = c->lru_head; id != NIL; prev = id, id = c->b[id].next, n++)
        if (n >= c->n_cached || id < 0 || id >= c->n_blocks || c->b[id].state != BLOCK_CACHED ||
            c->b[id].prev != prev)
            return ryot_fail(err, RYOT_ERR_INTERNAL, "lru list: bad node %d at %d", id, n);
    if (n != c->n_cached || c->lru_tail != prev)
        return ryot_fail(err, RYOT_ERR_INTERNAL, "lru list: %d nodes, %d cached", n, c->n_cached);

    /* every registered block sits in its key's bucket, with a unique key */
    n = 0;
    for (uint32_t h = 0; h <= c->bucket_mask; h++)
        for (int32_t id = c->bucket[h]; id != NIL; id = c->b[id].hnext, n++) {
            if (n >= c->n_registered || id < 0 || id >= c->n_blocks || !c->b[id].registered ||
                ((uint32_t)c->b[id].key & c->bucket_mask) != h)
                return ryot_fail(err, RYOT_ERR_INTERNAL, "index: bad node %d in bucket %u", id, h);
            for (int32_t o = c->b[id].hnext; o != NIL; o = c->b[o].hnext)
                if (c->b[o].key == c->b[id].key)
                    return ryot_fail(err, RYOT_ERR_INTERNAL, "index: blocks %d and %d share a key", id, o);
            if (c->b[id].key != key_of(c, c->b[id].parent, block_tokens(c, id)))
                return ryot_fail(err, RYOT_ERR_INTERNAL, "index: block %d key does not match its content", id);
        }
    if (n != c->n_registered)
        return ryot_fail(err, RYOT_ERR_INTERNAL, "index: %d nodes, %d registered", n, c->n_registered);
    return RYOT_OK;
}
