/* A bump allocator over a short chain of blocks, freed all at once: the GGUF
 * loader's metadata and tensor tables, a chat template's syntax tree and each
 * render's values.  Blocks double in size from `first` (default 64 KiB) up to
 * `max_block` (default 16 MiB); a request bigger than that gets a block of its
 * own.  `limit` bounds the bytes taken from malloc in all (0: none), so an
 * interpreter can refuse a hostile input instead of exhausting memory. */
#ifndef RYOT_CORE_ARENA_H
#define RYOT_CORE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ryot_arena_block ryot_arena_block;

typedef struct ryot_arena {
    ryot_arena_block *head; /* the block being filled; older blocks follow */
    size_t first;           /* first block's size (0: 64 KiB) */
    size_t max_block;       /* largest block grown to by doubling (0: 16 MiB) */
    size_t limit;           /* most bytes taken from malloc (0: no limit) */
    size_t total;           /* bytes taken from malloc so far */
    bool over;              /* the last failure was the limit, not malloc */
} ryot_arena;

/* n bytes, zeroed and 16-byte aligned (n == 0 gives a unique pointer too);
 * NULL when n overflows, malloc fails or the limit would be passed. */
void *ryot_arena_alloc(ryot_arena *a, size_t n);
/* Frees every block; the arena's parameters stay, so it can be reused. */
void ryot_arena_free(ryot_arena *a);

#endif
