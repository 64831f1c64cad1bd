/* Prompt block hashes and the per-backend LRU table (see prefix.h). */
#include "router/prefix.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ hashing */

/* Streams bytes into fixed-size blocks; each full block extends the chain
 * (FNV-1a 64 seeded with the previous block's hash, then a final mix so
 * near-equal blocks spread over the table's buckets). */
typedef struct chain {
    size_t block, fill;
    uint64_t h, prev;
    uint64_t *out;
    int n, max;
} chain;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void chain_bytes(chain *c, const void *p, size_t len) {
    const unsigned char *s = p;
    for (size_t i = 0; i < len && c->n < c->max; i++) {
        if (c->fill == 0) c->h = 0xcbf29ce484222325ULL ^ c->prev;
        c->h = (c->h ^ s[i]) * 0x100000001b3ULL;
        if (++c->fill == c->block) {
            c->prev = mix64(c->h);
            c->out[c->n++] = c->prev;
            c->fill = 0;
        }
    }
}

static void chain_str(chain *c, const char *s) {
    if (s) chain_bytes(c, s, strlen(s) + 1); /* the NUL separates fields */
}

/* A message's content: a string, or the text of an array of parts. */
static void chain_content(chain *c, const json_t *content) {
    if (json_is_string(content)) {
        chain_str(c, json_string_value(content));
        return;
    }
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) chain_str(c, json_string_value(json_object_get(part, "text")));
    chain_bytes(c, "", 1);
}

int rt_prefix_hashes(const json_t *body, size_t block_bytes, uint64_t *out, int max) {
    if (!json_is_object(body) || block_bytes == 0) return 0;
    chain c = {.block = block_bytes, .out = out, .max = max};
    chain_str(&c, json_string_value(json_object_get(body, "model")));
    const json_t *msgs = json_object_get(body, "messages");
    const json_t *prompt = json_object_get(body, "prompt");
    if (json_is_array(msgs)) {
        size_t i;
        const json_t *m;
        json_array_foreach(msgs, i, m) {
            chain_str(&c, json_string_value(json_object_get(m, "role")));
            chain_content(&c, json_object_get(m, "content"));
        }
    } else if (json_is_string(prompt)) {
        chain_str(&c, json_string_value(prompt));
    } else if (json_is_array(prompt)) { /* several prompts: the first decides */
        chain_str(&c, json_string_value(json_array_get(prompt, 0)));
    }
    return c.n;
}

/* ------------------------------------------------------------------ LRU table */

/* Fixed arrays allocated once: entries in a hash chain per bucket and in one
 * doubly linked recency list (head: most recent).  Index -1 ends a list. */
typedef struct entry {
    uint64_t key;
    int next_in_bucket;
    int prev, next; /* recency list, or the free list (next) */
} entry;

struct rt_prefix_table {
    int cap, n_buckets, size;
    int *buckets;
    entry *e;
    int head, tail, free_list;
};

rt_prefix_table *rt_prefix_table_new(int capacity) {
    if (capacity < 1) capacity = 1;
    rt_prefix_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->cap = capacity;
    t->n_buckets = 1;
    while (t->n_buckets < capacity) t->n_buckets <<= 1;
    t->buckets = malloc((size_t)t->n_buckets * sizeof *t->buckets);
    t->e = malloc((size_t)capacity * sizeof *t->e);
    if (!t->buckets || !t->e) {
        rt_prefix_table_free(t);
        return NULL;
    }
    rt_prefix_table_clear(t);
    return t;
}

void rt_prefix_table_free(rt_prefix_table *t) {
    if (!t) return;
    free(t->buckets);
    free(t->e);
    free(t);
}

void rt_prefix_table_clear(rt_prefix_table *t) {
    for (int i = 0; i < t->n_buckets; i++) t->buckets[i] = -1;
    for (int i = 0; i < t->cap; i++) t->e[i].next = i + 1 < t->cap ? i + 1 : -1;
    t->free_list = 0;
    t->head = t->tail = -1;
    t->size = 0;
}

int rt_prefix_table_size(const rt_prefix_table *t) { return t->size; }

static int find(const rt_prefix_table *t, uint64_t key) {
    for (int i = t->buckets[key & (uint64_t)(t->n_buckets - 1)]; i >= 0; i = t->e[i].next_in_bucket)
        if (t->e[i].key == key) return i;
    return -1;
}

int rt_prefix_table_match(const rt_prefix_table *t, const uint64_t *h, int n) {
    int k = 0;
    while (k < n && find(t, h[k]) >= 0) k++;
    return k;
}

static void unlink_recency(rt_prefix_table *t, int i) {
    entry *x = &t->e[i];
    if (x->prev >= 0) t->e[x->prev].next = x->next;
    else t->head = x->next;
    if (x->next >= 0) t->e[x->next].prev = x->prev;
    else t->tail = x->prev;
}

static void push_front(rt_prefix_table *t, int i) {
    t->e[i].prev = -1;
    t->e[i].next = t->head;
    if (t->head >= 0) t->e[t->head].prev = i;
    t->head = i;
    if (t->tail < 0) t->tail = i;
}

static void evict_tail(rt_prefix_table *t) {
    const int i = t->tail;
    unlink_recency(t, i);
    int *p = &t->buckets[t->e[i].key & (uint64_t)(t->n_buckets - 1)];
    while (*p != i) p = &t->e[*p].next_in_bucket;
    *p = t->e[i].next_in_bucket;
    t->e[i].next = t->free_list;
    t->free_list = i;
    t->size--;
}

void rt_prefix_table_insert(rt_prefix_table *t, const uint64_t *h, int n) {
    /* the chain's head goes in last, as the most recent: a chain is matched
     * from its head, and the head is shared by more requests than the tail,
     * so tails are evicted first */
    for (int k = n - 1; k >= 0; k--) {
        int i = find(t, h[k]);
        if (i >= 0) {
            unlink_recency(t, i);
            push_front(t, i);
            continue;
        }
        if (t->free_list < 0) evict_tail(t);
        i = t->free_list;
        t->free_list = t->e[i].next;
        t->e[i].key = h[k];
        int *b = &t->buckets[h[k] & (uint64_t)(t->n_buckets - 1)];
        t->e[i].next_in_bucket = *b;
        *b = i;
        push_front(t, i);
        t->size++;
    }
}
