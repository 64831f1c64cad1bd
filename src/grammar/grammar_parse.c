/* Grammar text -> struct grammar (see grammar.h for the syntax), the
 * left-recursion check, and the random sentence generator.
 *
 * Repetitions become generated rules: x* is S ::= x S | "" (right recursive:
 * the matcher's tail calls keep its stack flat), x+ is x S, x? is O ::= x | "",
 * x{m,n} is m copies of x then a chain O_k ::= x O_(k-1) | "". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/rng.h"
#include "grammar/grammar_impl.h"

#define MAX_COUNT 10000     /* largest {m,n} count */
#define MAX_ELEMS (1u << 22) /* elements over the whole grammar */
#define MAX_NEST 128         /* parenthesis depth */
#define MAX_CP 0x10FFFFu

typedef struct seq {
    gram_elem *e;
    uint32_t n, cap;
} seq;

typedef struct brule {
    char *name;
    seq *alts;
    uint32_t n_alts, cap_alts;
    bool defined;
    size_t ref_pos; /* first reference, for "undefined rule" */
} brule;

typedef struct parser {
    const char *s;
    size_t len, pos;
    ryot_error *err;
    bool failed;
    brule *rules;
    uint32_t n_rules, cap_rules;
    uint32_t *ranges; /* pairs */
    uint32_t n_ranges, cap_ranges;
    uint32_t *class_off;
    uint32_t n_classes, cap_classes;
    uint64_t n_elems;
    uint32_t n_generated;
    uint32_t *name_ht; /* open addressing over rule names: rule id + 1, 0 empty */
    uint32_t ht_cap;
} parser;

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem) {
    if (need <= *cap) return true;
    uint32_t nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

static void line_col(const parser *p, size_t pos, int *line, int *col) {
    *line = 1, *col = 1;
    for (size_t i = 0; i < pos && i < p->len; i++) {
        if (p->s[i] == '\n') (*line)++, *col = 1;
        else if (((unsigned char)p->s[i] & 0xC0) != 0x80) (*col)++;
    }
}

static bool fail_at(parser *p, size_t pos, const char *what) {
    if (p->failed) return false;
    int line, col;
    line_col(p, pos, &line, &col);
    ryot_fail(p->err, RYOT_ERR_INVALID, "grammar line %d:%d: %s", line, col, what);
    p->failed = true;
    return false;
}

static bool nomem(parser *p) {
    if (!p->failed) ryot_fail(p->err, RYOT_ERR_NOMEM, "grammar: out of memory");
    p->failed = true;
    return false;
}

static bool seq_push(parser *p, seq *s, uint32_t kind, uint32_t arg) {
    if (++p->n_elems > MAX_ELEMS) return fail_at(p, p->pos, "grammar too large (repetition counts?)");
    if (!grow((void **)&s->e, &s->cap, s->n + 1, sizeof *s->e)) return nomem(p);
    s->e[s->n++] = (gram_elem){kind, arg};
    return true;
}

static bool seq_append(parser *p, seq *dst, const seq *src) {
    for (uint32_t i = 0; i < src->n; i++)
        if (!seq_push(p, dst, src->e[i].kind, src->e[i].arg)) return false;
    return true;
}

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The slot of name in the name table: its rule's, or the empty one to fill. */
static uint32_t *name_slot(const parser *p, const char *name, size_t n) {
    uint32_t h = name_hash(name, n) & (p->ht_cap - 1);
    for (;; h = (h + 1) & (p->ht_cap - 1)) {
        uint32_t r = p->name_ht[h];
        if (!r) return &p->name_ht[h];
        const char *rn = p->rules[r - 1].name;
        if (strlen(rn) == n && !memcmp(rn, name, n)) return &p->name_ht[h];
    }
}

static long rule_find(const parser *p, const char *name, size_t n) {
    if (!p->ht_cap) return -1;
    uint32_t r = *name_slot(p, name, n);
    return r ? (long)r - 1 : -1;
}

static long rule_add(parser *p, const char *name, size_t n) {
    if (!grow((void **)&p->rules, &p->cap_rules, p->n_rules + 1, sizeof *p->rules)) return nomem(p), -1;
    if (2 * (p->n_rules + 1) > p->ht_cap) {
        uint32_t cap = p->ht_cap ? 2 * p->ht_cap : 64;
        uint32_t *ht = calloc(cap, sizeof *ht), *old = p->name_ht, old_cap = p->ht_cap;
        if (!ht) return nomem(p), -1;
        p->name_ht = ht, p->ht_cap = cap;
        for (uint32_t i = 0; i < old_cap; i++)
            if (old[i]) *name_slot(p, p->rules[old[i] - 1].name, strlen(p->rules[old[i] - 1].name)) = old[i];
        free(old);
    }
    brule *r = &p->rules[p->n_rules];
    memset(r, 0, sizeof *r);
    if (!(r->name = strndup(name, n))) return nomem(p), -1;
    *name_slot(p, r->name, n) = p->n_rules + 1;
    return p->n_rules++;
}

/* A fresh rule named after its parent: "parent~N" ('~' keeps it apart from
 * the names a grammar can define). */
static long rule_generated(parser *p, uint32_t parent) {
    char name[96];
    int n = snprintf(name, sizeof name, "%.64s~%u", p->rules[parent].name, ++p->n_generated);
    long r = rule_add(p, name, (size_t)n);
    if (r >= 0) p->rules[r].defined = true;
    return r;
}

/* Moves *s into a new alternative of rule r. */
static bool rule_add_alt(parser *p, uint32_t r, seq *s) {
    brule *b = &p->rules[r];
    if (!grow((void **)&b->alts, &b->cap_alts, b->n_alts + 1, sizeof *b->alts)) return nomem(p);
    b->alts[b->n_alts++] = *s;
    memset(s, 0, sizeof *s);
    return true;
}

static int cmp_range(const void *a, const void *b) {
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Adds a class from ranges r[0..2n) (any order, may overlap), complemented
 * over [0, MAX_CP] when negate; returns its id or -1. */
static long class_add(parser *p, uint32_t *r, uint32_t n, bool negate) {
    if (n) qsort(r, n, 2 * sizeof *r, cmp_range);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (m && r[2 * i] <= r[2 * (m - 1) + 1] + 1) {
            if (r[2 * i + 1] > r[2 * (m - 1) + 1]) r[2 * (m - 1) + 1] = r[2 * i + 1];
        } else {
            r[2 * m] = r[2 * i], r[2 * m + 1] = r[2 * i + 1];
            m++;
        }
    }
    if (!grow((void **)&p->class_off, &p->cap_classes, p->n_classes + 2, sizeof *p->class_off)) return nomem(p), -1;
    if (!grow((void **)&p->ranges, &p->cap_ranges, 2 * (p->n_ranges + m + 1), sizeof *p->ranges)) return nomem(p), -1;
    if (p->n_classes == 0) p->class_off[0] = 0;
    uint32_t *out = p->ranges + 2 * p->n_ranges, k = 0;
    if (!negate) {
        if (m) memcpy(out, r, 2 * m * sizeof *r);
        k = m;
    } else {
        uint32_t next = 0;
        for (uint32_t i = 0; i < m; i++) {
            if (r[2 * i] > next) out[2 * k] = next, out[2 * k + 1] = r[2 * i] - 1, k++;
            next = r[2 * i + 1] + 1;
        }
        if (next <= MAX_CP) out[2 * k] = next, out[2 * k + 1] = MAX_CP, k++;
    }
    p->n_ranges += k;
    p->class_off[++p->n_classes] = p->n_ranges;
    return p->n_classes - 1;
}

static long class_single(parser *p, uint32_t cp) {
    uint32_t r[2] = {cp, cp};
    return class_add(p, r, 1, false);
}

/* ---------------------------------------------------------------- lexing */
static bool at_end(const parser *p) { return p->pos >= p->len; }
static int peek(const parser *p) { return at_end(p) ? -1 : (unsigned char)p->s[p->pos]; }

static bool is_name_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void skip_space(parser *p) {
    while (!at_end(p)) {
        int c = peek(p);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->pos++;
        else if (c == '#')
            while (!at_end(p) && peek(p) != '\n') p->pos++;
        else break;
    }
}

static size_t name_len(const parser *p, size_t at) {
    size_t n = 0;
    while (at + n < p->len && is_name_char((unsigned char)p->s[at + n])) n++;
    return n;
}

/* Whether a rule definition `name ::=` starts at the current position. */
static bool at_definition(const parser *p) {
    size_t n = name_len(p, p->pos);
    if (!n) return false;
    size_t i = p->pos + n;
    while (i < p->len && (p->s[i] == ' ' || p->s[i] == '\t')) i++;
    return i + 3 <= p->len && !memcmp(p->s + i, "::=", 3);
}

/* One UTF-8 code point at the current position; false on invalid UTF-8. */
static bool read_utf8(parser *p, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)p->s + p->pos;
    size_t left = p->len - p->pos;
    unsigned c = s[0], n;
    uint32_t v, min;
    if (c < 0x80) n = 1, v = c, min = 0;
    else if ((c & 0xE0) == 0xC0) n = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) n = 4, v = c & 0x07, min = 0x10000;
    else return fail_at(p, p->pos, "invalid UTF-8");
    if (n > left) return fail_at(p, p->pos, "invalid UTF-8");
    for (unsigned i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return fail_at(p, p->pos, "invalid UTF-8");
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > MAX_CP || (v >= 0xD800 && v <= 0xDFFF)) return fail_at(p, p->pos, "invalid UTF-8");
    p->pos += n;
    *cp = v;
    return true;
}

static bool read_hex(parser *p, int digits, uint32_t *cp) {
    uint32_t v = 0;
    size_t start = p->pos;
    for (int i = 0; i < digits; i++) {
        int c = peek(p);
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return fail_at(p, p->pos, "bad hex escape");
        v = v << 4 | (uint32_t)d;
        p->pos++;
    }
    if (v > MAX_CP || (v >= 0xD800 && v <= 0xDFFF)) return fail_at(p, start, "escape is not a Unicode scalar value");
    *cp = v;
    return true;
}

/* A character of a literal or class, with escapes. */
static bool read_char(parser *p, uint32_t *cp) {
    if (at_end(p)) return fail_at(p, p->pos, "unexpected end of grammar");
    if (peek(p) != '\\') return read_utf8(p, cp);
    size_t at = p->pos++;
    int c = peek(p);
    p->pos++;
    switch (c) {
    case 'n': *cp = '\n'; return true;
    case 'r': *cp = '\r'; return true;
    case 't': *cp = '\t'; return true;
    case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': *cp = (uint32_t)c; return true;
    case 'x': return read_hex(p, 2, cp);
    case 'u': return read_hex(p, 4, cp);
    case 'U': return read_hex(p, 8, cp);
    }
    return fail_at(p, at, "unknown escape");
}

/* ---------------------------------------------------------------- parsing */
static bool parse_alts(parser *p, uint32_t rule, int depth);

static bool parse_literal(parser *p, seq *item) {
    size_t start = p->pos++;
    while (peek(p) != '"') {
        if (at_end(p)) return fail_at(p, start, "unterminated string literal");
        uint32_t cp;
        if (!read_char(p, &cp)) return false;
        long c = class_single(p, cp);
        if (c < 0 || !seq_push(p, item, GE_CHAR, (uint32_t)c)) return false;
    }
    p->pos++;
    return true;
}

static bool parse_class(parser *p, seq *item) {
    size_t start = p->pos++;
    bool negate = peek(p) == '^';
    if (negate) p->pos++;
    uint32_t *r = NULL, n = 0, cap = 0;
    bool ok = true;
    while (ok && peek(p) != ']') {
        if (at_end(p)) {
            ok = fail_at(p, start, "unterminated character class");
            break;
        }
        uint32_t lo, hi;
        if (!(ok = read_char(p, &lo))) break;
        hi = lo;
        if (peek(p) == '-' && p->pos + 1 < p->len && p->s[p->pos + 1] != ']') {
            p->pos++;
            size_t at = p->pos;
            if (!(ok = read_char(p, &hi))) break;
            if (hi < lo) ok = fail_at(p, at, "class range out of order");
        }
        if (ok && !grow((void **)&r, &cap, 2 * (n + 1), sizeof *r)) ok = nomem(p);
        if (ok) r[2 * n] = lo, r[2 * n + 1] = hi, n++;
    }
    if (ok) p->pos++;
    long c = ok ? class_add(p, r, n, negate) : -1;
    free(r);
    if (c >= 0 && p->class_off[c] == p->class_off[c + 1]) return fail_at(p, start, "character class matches nothing");
    return c >= 0 && seq_push(p, item, GE_CHAR, (uint32_t)c);
}

static bool parse_count(parser *p, uint32_t *out) {
    size_t start = p->pos;
    uint32_t v = 0;
    if (peek(p) < '0' || peek(p) > '9') return fail_at(p, p->pos, "expected a repetition count");
    while (peek(p) >= '0' && peek(p) <= '9') {
        v = v * 10 + (uint32_t)(peek(p) - '0');
        if (v > MAX_COUNT) return fail_at(p, start, "repetition count over 10000");
        p->pos++;
    }
    *out = v;
    return true;
}

/* Wraps item (when it is not a single element) into a generated rule, so a
 * repetition operator can refer to it as one element. */
static bool item_single(parser *p, uint32_t rule, seq *item) {
    if (item->n == 1) return true;
    long r = rule_generated(p, rule);
    if (r < 0) return false;
    seq body = *item;
    memset(item, 0, sizeof *item);
    if (!rule_add_alt(p, (uint32_t)r, &body)) return false;
    return seq_push(p, item, GE_RULE, (uint32_t)r);
}

/* S ::= x S | "" */
static long rule_star(parser *p, uint32_t rule, gram_elem x) {
    long s = rule_generated(p, rule);
    seq a = {0}, e = {0};
    if (s < 0 || !seq_push(p, &a, x.kind, x.arg) || !seq_push(p, &a, GE_RULE, (uint32_t)s) ||
        !rule_add_alt(p, (uint32_t)s, &a) || !rule_add_alt(p, (uint32_t)s, &e)) {
        free(a.e);
        return -1;
    }
    return s;
}

/* Applies postfix operators to item, appending the result to out. */
static bool parse_postfix(parser *p, uint32_t rule, seq *item, seq *out) {
    for (;;) {
        int c = peek(p);
        uint32_t m, n;
        bool unbounded = false;
        if (c == '*' || c == '+' || c == '?') {
            p->pos++;
            m = c == '+', n = c == '?';
            unbounded = c != '?';
        } else if (c == '{') {
            size_t at = p->pos++;
            skip_space(p);
            if (!parse_count(p, &m)) return false;
            skip_space(p);
            n = m;
            if (peek(p) == ',') {
                p->pos++;
                skip_space(p);
                if (peek(p) == '}') unbounded = true;
                else if (!parse_count(p, &n)) return false;
                skip_space(p);
            }
            if (peek(p) != '}') return fail_at(p, p->pos, "expected '}'");
            p->pos++;
            if (!unbounded && n < m) return fail_at(p, at, "repetition {m,n} with n < m");
        } else {
            return seq_append(p, out, item);
        }
        if (!item_single(p, rule, item)) return false;
        gram_elem x = item->e[0];
        seq res = {0};
        bool ok = true;
        for (uint32_t i = 0; ok && i < m; i++) ok = seq_push(p, &res, x.kind, x.arg);
        if (ok && unbounded) {
            long s = rule_star(p, rule, x);
            ok = s >= 0 && seq_push(p, &res, GE_RULE, (uint32_t)s);
        } else if (ok && n > m) {
            long prev = -1;
            for (uint32_t k = 0; ok && k < n - m; k++) {
                long o = rule_generated(p, rule);
                seq a = {0}, e = {0};
                ok = o >= 0 && seq_push(p, &a, x.kind, x.arg) &&
                     (prev < 0 || seq_push(p, &a, GE_RULE, (uint32_t)prev)) && rule_add_alt(p, (uint32_t)o, &a) &&
                     rule_add_alt(p, (uint32_t)o, &e);
                if (!ok) free(a.e);
                prev = o;
            }
            ok = ok && seq_push(p, &res, GE_RULE, (uint32_t)prev);
        }
        free(item->e);
        *item = res;
        if (!ok) return false;
    }
}

static bool parse_seq(parser *p, uint32_t rule, seq *out, int depth) {
    for (;;) {
        skip_space(p);
        int c = peek(p);
        if (c < 0 || c == '|' || c == ')' || at_definition(p)) return true;
        seq item = {0};
        bool ok;
        size_t at = p->pos;
        if (c == '"') {
            ok = parse_literal(p, &item);
        } else if (c == '[') {
            ok = parse_class(p, &item);
        } else if (c == '.') {
            p->pos++;
            uint32_t r[4] = {0, 0xD7FF, 0xE000, MAX_CP};
            long k = class_add(p, r, 2, false);
            ok = k >= 0 && seq_push(p, &item, GE_CHAR, (uint32_t)k);
        } else if (c == '(') {
            if (depth >= MAX_NEST) return fail_at(p, at, "groups nested too deeply");
            p->pos++;
            long g = rule_generated(p, rule);
            ok = g >= 0 && parse_alts(p, (uint32_t)g, depth + 1);
            if (ok && peek(p) != ')') ok = fail_at(p, p->pos, "expected ')'");
            if (ok) p->pos++, ok = seq_push(p, &item, GE_RULE, (uint32_t)g);
        } else if (is_name_char(c)) {
            size_t n = name_len(p, p->pos);
            long r = rule_find(p, p->s + p->pos, n);
            if (r < 0 && (r = rule_add(p, p->s + p->pos, n)) >= 0) p->rules[r].ref_pos = p->pos;
            p->pos += n;
            ok = r >= 0 && seq_push(p, &item, GE_RULE, (uint32_t)r);
        } else {
            ok = fail_at(p, at, "unexpected character");
        }
        ok = ok && parse_postfix(p, rule, &item, out);
        free(item.e);
        if (!ok) return false;
    }
}

static bool parse_alts(parser *p, uint32_t rule, int depth) {
    for (;;) {
        seq s = {0};
        bool ok = parse_seq(p, rule, &s, depth) && rule_add_alt(p, rule, &s);
        free(s.e);
        if (!ok) return false;
        if (peek(p) != '|') return true;
        p->pos++;
    }
}

static bool parse_rules(parser *p) {
    skip_space(p);
    if (at_end(p)) return fail_at(p, p->pos, "empty grammar");
    while (!at_end(p)) {
        size_t at = p->pos, n = name_len(p, p->pos);
        if (!n || !at_definition(p)) return fail_at(p, at, "expected a rule definition 'name ::='");
        long r = rule_find(p, p->s + at, n);
        if (r >= 0 && p->rules[r].defined) return fail_at(p, at, "duplicate rule definition");
        if (r < 0 && (r = rule_add(p, p->s + at, n)) < 0) return false;
        p->rules[r].defined = true;
        p->pos = strstr(p->s + at, "::=") - p->s + 3;
        if (!parse_alts(p, (uint32_t)r, 0)) return false;
        if (peek(p) == ')') return fail_at(p, p->pos, "unmatched ')'");
        skip_space(p);
    }
    return true;
}

/* ---------------------------------------------------------------- checks */
static void nullable_rules(const grammar *g, bool *nullable) {
    memset(nullable, 0, g->n_rules * sizeof *nullable);
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < g->n_rules; r++) {
            if (nullable[r]) continue;
            for (uint32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1] && !nullable[r]; a++) {
                const gram_elem *e = g->elems + g->alt_start[a];
                while (e->kind == GE_RULE && nullable[e->arg]) e++;
                if (e->kind == GE_END) nullable[r] = changed = true;
            }
        }
    }
}

/* Edges r -> x where rule r can reach rule x without consuming input
 * (x is a leading reference, after nullable ones), as CSR arrays. */
static bool left_edges(const grammar *g, const bool *nullable, uint32_t **off_out, uint32_t **to_out) {
    uint32_t *off = calloc(g->n_rules + 1, sizeof *off);
    uint32_t *to = NULL, n = 0, cap = 0;
    if (!off) return false;
    for (uint32_t r = 0; r < g->n_rules; r++) {
        off[r] = n;
        for (uint32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1]; a++)
            for (const gram_elem *e = g->elems + g->alt_start[a]; e->kind == GE_RULE; e++) {
                if (!grow((void **)&to, &cap, n + 1, sizeof *to)) return free(off), free(to), false;
                to[n++] = e->arg;
                if (!nullable[e->arg]) break;
            }
    }
    off[g->n_rules] = n;
    *off_out = off, *to_out = to;
    return true;
}

/* A rule on a cycle of left_edges, or -1: depth-first search with an
 * explicit stack (a grammar may chain many thousands of rules);
 * color 1 = on the path, 2 = done. */
static long left_cycle(const uint32_t *off, const uint32_t *to, uint8_t *color, uint32_t *stk,
                       uint32_t *it, uint32_t start) {
    uint32_t depth = 0;
    stk[0] = start, it[0] = off[start], color[start] = 1;
    for (;;) {
        uint32_t r = stk[depth];
        if (it[depth] == off[r + 1]) {
            color[r] = 2;
            if (depth-- == 0) return -1;
            continue;
        }
        uint32_t x = to[it[depth]++];
        if (color[x] == 1) return x;
        if (color[x] == 0) {
            depth++;
            stk[depth] = x, it[depth] = off[x], color[x] = 1;
        }
    }
}

/* Shortest sentence of each rule in code points (UINT32_MAX: none, the rule
 * never terminates), by fixed-point iteration. */
static uint32_t alt_minlen(const grammar *g, const uint32_t *minlen, uint32_t start) {
    uint64_t n = 0;
    for (const gram_elem *e = g->elems + start; e->kind != GE_END; e++) n += e->kind == GE_CHAR ? 1 : minlen[e->arg];
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static void rule_minlen(const grammar *g, uint32_t *minlen) {
    for (uint32_t r = 0; r < g->n_rules; r++) minlen[r] = UINT32_MAX;
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < g->n_rules; r++)
            for (uint32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1]; a++) {
                uint32_t m = alt_minlen(g, minlen, g->alt_start[a]);
                if (m < minlen[r]) minlen[r] = m, changed = true;
            }
    }
}

/* Left recursion, and the dead alternatives (see grammar_impl.h). */
static ryot_status grammar_check(grammar *g, ryot_error *err) {
    uint32_t n_alts = g->rule_alt[g->n_rules];
    bool *nullable = malloc(g->n_rules * sizeof *nullable);
    uint8_t *color = calloc(g->n_rules, 1);
    uint32_t *stk = malloc(g->n_rules * sizeof *stk), *it = malloc(g->n_rules * sizeof *it);
    uint32_t *minlen = malloc(g->n_rules * sizeof *minlen), *off = NULL, *to = NULL;
    g->alt_dead = calloc(n_alts ? n_alts : 1, 1);
    ryot_status st = RYOT_OK;
    if (!nullable || !color || !stk || !it || !minlen || !g->alt_dead) st = ryot_fail(err, RYOT_ERR_NOMEM, "grammar: out of memory");
    if (st == RYOT_OK) {
        nullable_rules(g, nullable);
        if (!left_edges(g, nullable, &off, &to)) st = ryot_fail(err, RYOT_ERR_NOMEM, "grammar: out of memory");
    }
    for (uint32_t r = 0; st == RYOT_OK && r < g->n_rules; r++) {
        long c = color[r] ? -1 : left_cycle(off, to, color, stk, it, r);
        if (c >= 0) st = ryot_fail(err, RYOT_ERR_INVALID, "grammar: rule '%.100s' is left-recursive", g->names[c]);
    }
    if (st == RYOT_OK) {
        rule_minlen(g, minlen);
        if (minlen[g->root] == UINT32_MAX)
            st = ryot_fail(err, RYOT_ERR_INVALID, "grammar: 'root' matches no finite string");
        for (uint32_t a = 0; a < n_alts; a++) g->alt_dead[a] = alt_minlen(g, minlen, g->alt_start[a]) == UINT32_MAX;
    }
    free(nullable);
    free(color);
    free(stk);
    free(it);
    free(minlen);
    free(off);
    free(to);
    return st;
}

grammar *grammar_ref(const grammar *g) {
    grammar *w = (grammar *)g;
    atomic_fetch_add(&w->refs, 1);
    return w;
}

void grammar_free(grammar *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    if (g->names)
        for (uint32_t i = 0; i < g->n_rules; i++) free(g->names[i]);
    free(g->names);
    free(g->elems);
    free(g->alt_start);
    free(g->alt_dead);
    free(g->rule_alt);
    free(g->ranges);
    free(g->class_off);
    free(g);
}

static void parser_free(parser *p) {
    for (uint32_t i = 0; i < p->n_rules; i++) {
        for (uint32_t a = 0; a < p->rules[i].n_alts; a++) free(p->rules[i].alts[a].e);
        free(p->rules[i].alts);
        free(p->rules[i].name);
    }
    free(p->rules);
    free(p->name_ht);
    free(p->ranges);
    free(p->class_off);
}

/* Flattens the parsed rules into g (the parser's ranges move over). */
static ryot_status flatten(parser *p, grammar *g, ryot_error *err) {
    uint64_t n_alts = 0, n_elems = 0;
    for (uint32_t i = 0; i < p->n_rules; i++) {
        n_alts += p->rules[i].n_alts;
        for (uint32_t a = 0; a < p->rules[i].n_alts; a++) n_elems += p->rules[i].alts[a].n + 1;
    }
    g->n_rules = p->n_rules;
    g->names = calloc(p->n_rules, sizeof *g->names);
    g->rule_alt = malloc((p->n_rules + 1) * sizeof *g->rule_alt);
    g->alt_start = malloc((n_alts ? n_alts : 1) * sizeof *g->alt_start);
    g->elems = malloc(n_elems * sizeof *g->elems);
    if (!g->names || !g->rule_alt || !g->alt_start || !g->elems)
        return ryot_fail(err, RYOT_ERR_NOMEM, "grammar: out of memory");
    uint32_t na = 0, ne = 0;
    for (uint32_t i = 0; i < p->n_rules; i++) {
        brule *b = &p->rules[i];
        g->names[i] = b->name;
        b->name = NULL;
        g->rule_alt[i] = na;
        for (uint32_t a = 0; a < b->n_alts; a++) {
            g->alt_start[na++] = ne;
            if (b->alts[a].n) memcpy(g->elems + ne, b->alts[a].e, b->alts[a].n * sizeof *g->elems);
            ne += b->alts[a].n;
            g->elems[ne++] = (gram_elem){GE_END, 0};
        }
    }
    g->rule_alt[p->n_rules] = na;
    g->n_elems = ne;
    g->ranges = p->ranges, p->ranges = NULL;
    g->class_off = p->class_off, p->class_off = NULL;
    g->n_classes = p->n_classes;
    return RYOT_OK;
}

ryot_status grammar_parse(const char *text, size_t len, grammar **out, ryot_error *err) {
    *out = NULL;
    parser p = {.s = text, .len = len, .err = err};
    if (memchr(text, 0, len)) return ryot_fail(err, RYOT_ERR_INVALID, "grammar: contains a NUL byte");
    /* strstr in parse_rules needs a terminated string */
    char *copy = strndup(text, len);
    if (!copy) return ryot_fail(err, RYOT_ERR_NOMEM, "grammar: out of memory");
    p.s = copy;
    bool ok = parse_rules(&p);
    for (uint32_t i = 0; ok && i < p.n_rules; i++) {
        if (p.rules[i].defined) continue;
        char msg[160];
        snprintf(msg, sizeof msg, "undefined rule '%.100s'", p.rules[i].name);
        ok = fail_at(&p, p.rules[i].ref_pos, msg);
    }
    long root = ok ? rule_find(&p, "root", 4) : -1;
    if (ok && root < 0) ok = fail_at(&p, 0, "no rule named 'root'");
    grammar *g = NULL;
    ryot_status st = ok ? RYOT_OK : (err ? err->code : RYOT_ERR_INVALID);
    if (st == RYOT_OK && !(g = calloc(1, sizeof *g))) st = ryot_fail(err, RYOT_ERR_NOMEM, "grammar: out of memory");
    if (g) atomic_init(&g->refs, 1);
    if (st == RYOT_OK) st = flatten(&p, g, err);
    if (st == RYOT_OK) {
        g->root = (uint32_t)root;
        st = grammar_check(g, err);
    }
    parser_free(&p);
    free(copy);
    if (st != RYOT_OK) {
        grammar_free(g);
        return st;
    }
    *out = g;
    return RYOT_OK;
}

/* ---------------------------------------------------------------- generate */
typedef struct gen {
    const grammar *g;
    ryot_rng rng;
    uint32_t *minlen; /* shortest sentence of each rule, in code points */
    uint32_t *altlen; /* of each alternative */
    int max_depth;
    ryot_buf out;
    bool ok;
} gen;

static void gen_put(gen *s, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) b[0] = (char)cp, n = 1;
    else if (cp < 0x800) b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | (cp >> 6 & 0x3F)), b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    else
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3F)), b[2] = (char)(0x80 | (cp >> 6 & 0x3F)),
        b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    if (!ryot_buf_append(&s->out, b, n)) s->ok = false;
}

/* A code point of class c: mostly printable ASCII when the class has some. */
static uint32_t gen_char(gen *s, uint32_t c) {
    const grammar *g = s->g;
    uint32_t a = g->class_off[c], n = g->class_off[c + 1] - a;
    for (int tries = 0; tries < 8; tries++) {
        uint32_t k = a + (uint32_t)(ryot_rng_next(&s->rng) % n);
        uint32_t lo = g->ranges[2 * k], hi = g->ranges[2 * k + 1];
        if ((ryot_rng_next(&s->rng) & 3) && lo <= 0x7E && hi >= 0x20) {
            if (lo < 0x20) lo = 0x20;
            if (hi > 0x7E) hi = 0x7E;
        }
        uint32_t cp = lo + (uint32_t)(ryot_rng_next(&s->rng) % ((uint64_t)hi - lo + 1));
        if (cp < 0xD800 || cp > 0xDFFF) return cp;
    }
    return g->ranges[2 * a];
}

static void gen_rule(gen *s, uint32_t r, int depth) {
    const grammar *g = s->g;
    uint32_t a0 = g->rule_alt[r], na = g->rule_alt[r + 1] - a0, pick = a0;
    if (depth < s->max_depth) {
        uint32_t live = 0;
        for (uint32_t a = a0; a < a0 + na; a++) live += !g->alt_dead[a];
        uint32_t k = (uint32_t)(ryot_rng_next(&s->rng) % live); /* the k-th live one */
        for (pick = a0;; pick++) {
            if (g->alt_dead[pick]) continue;
            if (k-- == 0) break;
        }
    } else {
        for (uint32_t a = a0 + 1; a < a0 + na; a++)
            if (s->altlen[a] < s->altlen[pick]) pick = a;
    }
    for (const gram_elem *e = g->elems + g->alt_start[pick]; e->kind != GE_END && s->ok; e++) {
        if (e->kind == GE_CHAR) gen_put(s, gen_char(s, e->arg));
        else gen_rule(s, e->arg, depth + 1);
    }
}

char *grammar_generate(const grammar *g, uint64_t seed, int max_depth, size_t *len) {
    gen s = {.g = g, .max_depth = max_depth, .ok = true};
    ryot_rng_seed(&s.rng, seed);
    uint32_t n_alts = g->rule_alt[g->n_rules];
    s.minlen = malloc(g->n_rules * sizeof *s.minlen);
    s.altlen = malloc((n_alts ? n_alts : 1) * sizeof *s.altlen);
    char *res = NULL;
    if (s.minlen && s.altlen) {
        rule_minlen(g, s.minlen);
        for (uint32_t a = 0; a < n_alts; a++) s.altlen[a] = alt_minlen(g, s.minlen, g->alt_start[a]);
        gen_rule(&s, g->root, 0);
        if (s.ok && !s.out.data) s.ok = ryot_buf_append(&s.out, "", 0);
        if (s.ok) {
            res = s.out.data;
            if (len) *len = s.out.len;
            s.out.data = NULL;
        }
    }
    ryot_buf_free(&s.out);
    free(s.minlen);
    free(s.altlen);
    return res;
}
