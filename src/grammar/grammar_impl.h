/* The compiled grammar, shared by grammar_parse.c (builds it) and
 * grammar_match.c (runs it). */
#ifndef RYOT_GRAMMAR_IMPL_H
#define RYOT_GRAMMAR_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "grammar/grammar.h"

enum { GE_END = 0, GE_CHAR = 1, GE_RULE = 2 };

/* One element of an alternative: GE_CHAR (arg = class id), GE_RULE (arg =
 * rule id), or GE_END closing the alternative. */
typedef struct gram_elem {
    uint32_t kind, arg;
} gram_elem;

/* Every alternative is a run of elements in `elems` ending with GE_END;
 * rule r's alternatives start at elems[alt_start[rule_alt[r] ..
 * rule_alt[r + 1])].  Class c is the sorted, disjoint, non-adjacent code
 * point ranges ranges[2k], ranges[2k + 1] (inclusive) for k in
 * [class_off[c], class_off[c + 1]).  An alternative that derives no finite
 * string (it refers to a rule that never terminates) is marked dead in
 * alt_dead: the matcher and the generator never enter it, so every live
 * parse stack can still be completed. */
struct grammar {
    atomic_int refs;
    gram_elem *elems;
    uint32_t n_elems;
    uint32_t *alt_start;
    uint8_t *alt_dead;  /* per alternative */
    uint32_t *rule_alt; /* n_rules + 1 */
    uint32_t n_rules, root;
    uint32_t *ranges;
    uint32_t *class_off; /* n_classes + 1 */
    uint32_t n_classes;
    char **names; /* per rule, for messages */
};

/* Whether class c has a code point in [lo, hi]. */
static inline bool grammar_class_hits(const grammar *g, uint32_t c, uint32_t lo, uint32_t hi) {
    const uint32_t *r = g->ranges;
    uint32_t a = g->class_off[c], b = g->class_off[c + 1];
    /* binary search for the first range whose end is >= lo */
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        if (r[2 * mid + 1] < lo) a = mid + 1;
        else b = mid;
    }
    return a < g->class_off[c + 1] && r[2 * a] <= hi;
}

#endif
