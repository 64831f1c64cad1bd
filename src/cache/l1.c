#include "cache/l1.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Chained hash table (buckets of singly linked entries, a power of two,
 * doubled at load 1) plus a doubly linked LRU list, most recent at the head. */
typedef struct entry {
    cache_key key;
    struct entry *chain;      /* next in the bucket */
    struct entry *prev, *next; /* LRU list */
    double expires;
    size_t len;
    unsigned char val[];
} entry;

struct cache_l1 {
    pthread_mutex_t mu;
    entry **buckets;
    size_t n_buckets, n_entries;
    entry *head, *tail;
    size_t bytes, max_bytes;
    double ttl_s;
    cache_l1_stats st;
};

static size_t bucket_of(const cache_l1 *c, const cache_key *k) {
    uint64_t h; /* the key is a cryptographic digest: any 8 bytes are uniform */
    memcpy(&h, k->b, sizeof h);
    return (size_t)(h & (c->n_buckets - 1));
}

static size_t charge(size_t len) { return len + CACHE_L1_ENTRY_OVERHEAD; }

cache_l1 *cache_l1_new(size_t max_bytes, double ttl_s) {
    cache_l1 *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_buckets = 64;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    c->ttl_s = ttl_s;
    return c;
}

void cache_l1_free(cache_l1 *c) {
    if (!c) return;
    for (entry *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void lru_unlink(cache_l1 *c, entry *e) {
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(cache_l1 *c, entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static entry **find_slot(cache_l1 *c, const cache_key *k) {
    entry **p = &c->buckets[bucket_of(c, k)];
    while (*p && memcmp((*p)->key.b, k->b, CACHE_KEY_BYTES)) p = &(*p)->chain;
    return p;
}

static void drop(cache_l1 *c, entry **slot) {
    entry *e = *slot;
    *slot = e->chain;
    lru_unlink(c, e);
    c->bytes -= charge(e->len);
    c->n_entries--;
    free(e);
}

static void drop_entry(cache_l1 *c, entry *e) { drop(c, find_slot(c, &e->key)); }

static void grow(cache_l1 *c) {
    size_t nb = c->n_buckets * 2;
    entry **b = calloc(nb, sizeof *b);
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < c->n_buckets; i++) {
        for (entry *e = c->buckets[i], *next; e; e = next) {
            next = e->chain;
            uint64_t h;
            memcpy(&h, e->key.b, sizeof h);
            size_t j = (size_t)(h & (nb - 1));
            e->chain = b[j];
            b[j] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = nb;
}

bool cache_l1_get(cache_l1 *c, const cache_key *k, double now, void **val, size_t *len) {
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    entry **slot = find_slot(c, k);
    entry *e = *slot;
    if (e && e->expires <= now) {
        drop(c, slot);
        c->st.expired++;
    } else if (e) {
        void *copy = malloc(e->len ? e->len : 1);
        if (copy) {
            memcpy(copy, e->val, e->len);
            *val = copy;
            *len = e->len;
            lru_unlink(c, e);
            lru_push_front(c, e);
            hit = true;
        }
    }
    if (hit) c->st.hits++;
    else c->st.misses++;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

bool cache_l1_put(cache_l1 *c, const cache_key *k, const void *val, size_t len, double now) {
    pthread_mutex_lock(&c->mu);
    entry **slot = find_slot(c, k);
    if (*slot) drop(c, slot); /* replaced, or dropped if the new value is refused */
    bool ok = false;
    if (charge(len) > c->max_bytes / 8) {
        c->st.too_big++;
        goto out;
    }
    /* make room: expired entries first (from the cold end), then the LRU */
    for (entry *e = c->tail, *prev; e && c->bytes + charge(len) > c->max_bytes; e = prev) {
        prev = e->prev;
        if (e->expires <= now) drop_entry(c, e);
    }
    while (c->tail && c->bytes + charge(len) > c->max_bytes) {
        drop_entry(c, c->tail);
        c->st.evictions++;
    }
    entry *e = malloc(sizeof *e + len);
    if (!e) goto out;
    e->key = *k;
    e->expires = now + c->ttl_s;
    e->len = len;
    if (len) memcpy(e->val, val, len);
    slot = find_slot(c, k); /* drops above may have moved the chain */
    e->chain = *slot;
    *slot = e;
    lru_push_front(c, e);
    c->bytes += charge(len);
    c->n_entries++;
    c->st.stores++;
    if (c->n_entries > c->n_buckets) grow(c);
    ok = true;
out:
    pthread_mutex_unlock(&c->mu);
    return ok;
}

void cache_l1_stats_get(cache_l1 *c, cache_l1_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->entries = c->n_entries;
    out->bytes = c->bytes;
    out->max_bytes = c->max_bytes;
    pthread_mutex_unlock(&c->mu);
}
