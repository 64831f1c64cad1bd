#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ryot_arena_block {
    ryot_arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define ARENA_FIRST ((size_t)64 << 10)
#define ARENA_MAX_BLOCK ((size_t)16 << 20)

static bool within_limit(const ryot_arena *a, size_t cap) {
    return !a->limit || (a->total <= a->limit && cap <= a->limit - a->total);
}

void *ryot_arena_alloc(ryot_arena *a, size_t n) {
    if (n > SIZE_MAX - sizeof(ryot_arena_block) - 16) return NULL;
    size_t need = n ? (n + 15) & ~(size_t)15 : 16;
    ryot_arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        const size_t max_block = a->max_block ? a->max_block : ARENA_MAX_BLOCK;
        size_t cap = !b ? (a->first ? a->first : ARENA_FIRST) : b->cap < max_block / 2 ? b->cap * 2 : max_block;
        if (cap < need) cap = need;
        if (!within_limit(a, cap)) cap = need; /* the exact size may still fit */
        if (!within_limit(a, cap)) {
            a->over = true;
            return NULL;
        }
        ryot_arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb) {
            a->over = false;
            return NULL;
        }
        nb->cap = cap;
        nb->used = 0;
        nb->next = b;
        a->head = b = nb;
        a->total += cap;
    }
    void *p = b->data + b->used;
    b->used += need;
    memset(p, 0, need);
    return p;
}

void ryot_arena_free(ryot_arena *a) {
    for (ryot_arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
    a->total = 0;
}
