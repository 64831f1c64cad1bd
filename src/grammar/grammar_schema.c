/* JSON schema -> grammar text (the subset grammar.h lists), parsed by
 * grammar_parse.  Every subschema becomes a rule "sN"; shared pieces (ws,
 * strings, numbers, any value) are emitted once, when used.
 *
 * Layout of generated JSON: a value is followed by ws inside its container;
 * objects are "{" ws kv ("," ws kv)* "}" with kv = key ws ":" ws value ws,
 * arrays "[" ws (value ws ("," ws value ws)*)? "]"; the root has no
 * surrounding whitespace, so after its last byte only end-of-generation can
 * follow.
 *
 * Optional properties keep the schema's order: with p_i's rule kv_i,
 *   first_i ::= kv_i after_(i+1) | first_(i+1)     (p_i optional)
 *   first_i ::= kv_i after_(i+1)                   (p_i required)
 *   after_i ::= ("," ws kv_i)? after_(i+1)        (optional; required: no ?)
 * so a comma appears exactly between two emitted properties. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "grammar/grammar.h"

#define MAX_DEPTH 64
#define MAX_COUNT 10000 /* grammar_parse's largest repetition count */
#define PATH_MAX_LEN 256

enum {
    C_WS = 1 << 0,
    C_CHAR = 1 << 1,
    C_STRING = 1 << 2,
    C_NUMBER = 1 << 3,
    C_INTEGER = 1 << 4,
    C_BOOL = 1 << 5,
    C_NULL = 1 << 6,
    C_VALUE = 1 << 7, /* any value: object, array and everything above */
    C_DATE = 1 << 8,
    C_TIME = 1 << 9,
    C_IPV4 = 1 << 10, /* json-octet, written by compile_string */
};

typedef struct ref_entry {
    char *ref;
    char name[16];
} ref_entry;

typedef struct sc {
    ryot_buf out;
    const json_t *root;
    ryot_error *err;
    bool failed;
    unsigned common;
    uint32_t n_rules;
    ref_entry *refs;
    size_t n_refs, cap_refs;
} sc;

typedef char rname[16];

static bool fail(sc *c, ryot_status code, const char *path, const char *fmt, const char *what) {
    if (!c->failed) {
        char msg[RYOT_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, fmt, what);
        ryot_fail(c->err, code, "%s: %s", path, msg);
    }
    c->failed = true;
    return false;
}

static bool invalid(sc *c, const char *path, const char *msg) { return fail(c, RYOT_ERR_INVALID, path, "%s", msg); }

static bool oom(sc *c) {
    if (!c->failed) ryot_fail(c->err, RYOT_ERR_NOMEM, "schema: out of memory");
    c->failed = true;
    return false;
}

/* Schema paths are cut at PATH_MAX_LEN; a long one stays recognizable. */
static void path_printf(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_printf(char *dst, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, PATH_MAX_LEN, fmt, ap);
    va_end(ap);
}

static void sub_path(char *dst, const char *path, const char *key) { path_printf(dst, "%s.%s", path, key); }

static void new_name(sc *c, rname name) { snprintf(name, sizeof(rname), "s%u", ++c->n_rules); }

/* Appends "name ::= body\n" and frees body. */
static bool emit_rule(sc *c, const char *name, ryot_buf *body) {
    bool ok = ryot_buf_printf(&c->out, "%s ::= ", name) && ryot_buf_append(&c->out, body->data ? body->data : "\"\"",
                                                                          body->data ? body->len : 2) &&
              ryot_buf_append(&c->out, "\n", 1);
    ryot_buf_free(body);
    return ok || oom(c);
}

/* A grammar literal for bytes s[0..n). */
static bool put_lit(ryot_buf *b, const char *s, size_t n) {
    if (!ryot_buf_append(b, "\"", 1)) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool ok = ch == '"' || ch == '\\' ? ryot_buf_printf(b, "\\%c", ch)
                  : ch < 0x20             ? ryot_buf_printf(b, "\\x%02X", ch)
                                          : ryot_buf_append(b, s + i, 1);
        if (!ok) return false;
    }
    return ryot_buf_append(b, "\"", 1);
}

/* A literal for the compact JSON text of v. */
static bool put_json_lit(sc *c, ryot_buf *b, const json_t *v) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    bool ok = s && put_lit(b, s, strlen(s));
    free(s);
    return ok || oom(c);
}

/* ---------------------------------------------------------------- numbers */
/* Whether s[0..n) is all ch (the digit strings here are not terminated). */
static bool all_char(const char *s, int n, char ch) {
    for (int i = 0; i < n; i++)
        if (s[i] != ch) return false;
    return true;
}

/* Alternatives for the digit strings of exactly L digits in [a, b]
 * (a <= b, both L digits): a0 rest>=a' | [a0+1 .. b0-1] any | b0 rest<=b'. */
static bool put_same_len(ryot_buf *b, const char *lo, const char *hi, int L) {
    if (L == 1) return ryot_buf_printf(b, "[%c-%c]", lo[0], hi[0]);
    if (!memcmp(lo, hi, (size_t)L)) return put_lit(b, lo, (size_t)L);
    if (lo[0] == hi[0])
        return ryot_buf_printf(b, "\"%c\" (", lo[0]) && put_same_len(b, lo + 1, hi + 1, L - 1) &&
               ryot_buf_append(b, ")", 1);
    bool lo_zero = all_char(lo + 1, L - 1, '0'), hi_nine = all_char(hi + 1, L - 1, '9');
    char first_lo = lo_zero ? lo[0] : (char)(lo[0] + 1), first_hi = hi_nine ? hi[0] : (char)(hi[0] - 1);
    char nines[24], zeros[24];
    memset(nines, '9', sizeof nines);
    memset(zeros, '0', sizeof zeros);
    bool ok = ryot_buf_append(b, "(", 1), sep = false;
    if (ok && !lo_zero) {
        ok = ryot_buf_printf(b, "\"%c\" (", lo[0]) && put_same_len(b, lo + 1, nines, L - 1) && ryot_buf_append(b, ")", 1);
        sep = true;
    }
    if (ok && first_lo <= first_hi) {
        ok = ryot_buf_printf(b, "%s[%c-%c] [0-9]{%d}", sep ? " | " : "", first_lo, first_hi, L - 1);
        sep = true;
    }
    if (ok && !hi_nine)
        ok = ryot_buf_printf(b, "%s\"%c\" (", sep ? " | " : "", hi[0]) && put_same_len(b, zeros, hi + 1, L - 1) &&
             ryot_buf_append(b, ")", 1);
    return ok && ryot_buf_append(b, ")", 1);
}

/* Unsigned integers in [lo, hi] (hi_inf: no upper bound), no leading zeros,
 * as one parenthesized alternative list. */
static bool put_uint_range(ryot_buf *b, uint64_t lo, uint64_t hi, bool hi_inf) {
    char los[24], his[24], a[24], z[24];
    int nlo = snprintf(los, sizeof los, "%llu", (unsigned long long)lo);
    int nhi = hi_inf ? nlo : snprintf(his, sizeof his, "%llu", (unsigned long long)hi);
    bool ok = ryot_buf_append(b, "(", 1);
    for (int L = nlo; ok && L <= nhi; L++) {
        /* the L-digit part of the range: [max(lo, 10^(L-1)), min(hi, 10^L - 1)] */
        if (L == nlo) memcpy(a, los, (size_t)L);
        else a[0] = '1', memset(a + 1, '0', (size_t)L - 1);
        if (!hi_inf && L == nhi) memcpy(z, his, (size_t)L);
        else memset(z, '9', (size_t)L);
        ok = (L == nlo || ryot_buf_append(b, " | ", 3)) && put_same_len(b, a, z, L);
    }
    if (ok && hi_inf) ok = ryot_buf_printf(b, " | [1-9] [0-9]{%d,}", nlo);
    return ok && ryot_buf_append(b, ")", 1);
}

typedef struct bound {
    bool set, excl;
    double v; /* integral once normalized */
} bound;

/* Reads minimum/maximum and their exclusive forms (a number, or draft-4's
 * boolean next to minimum/maximum) into lo/hi. */
static bool read_bounds(sc *c, const json_t *s, const char *path, bound *lo, bound *hi) {
    static const char *keys[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    bound *dst[4] = {lo, lo, hi, hi};
    *lo = *hi = (bound){0};
    for (int k = 0; k < 4; k++) {
        const json_t *v = json_object_get(s, keys[k]);
        if (!v) continue;
        char p[PATH_MAX_LEN];
        sub_path(p, path, keys[k]);
        if ((k & 1) && json_is_boolean(v)) {
            dst[k]->excl = dst[k]->excl || json_is_true(v);
            continue;
        }
        if (!json_is_number(v)) return invalid(c, p, "must be a number");
        double x = json_number_value(v);
        if (dst[k]->set && !(k & 1)) continue; /* exclusive* (a number) wins over the plain bound */
        bool tighter = !dst[k]->set || (k < 2 ? x >= dst[k]->v : x <= dst[k]->v);
        if (tighter) dst[k]->set = true, dst[k]->v = x, dst[k]->excl = (k & 1) || dst[k]->excl;
    }
    if ((lo->set && fabs(lo->v) > 9e18) || (hi->set && fabs(hi->v) > 9e18))
        return fail(c, RYOT_ERR_UNSUPPORTED, path, "%s", "bounds beyond +-9e18 are unsupported");
    return true;
}

/* Integer bounds: inclusive, rounded inward. */
static bool int_bounds(sc *c, const char *path, bound *lo, bound *hi) {
    if (lo->set) {
        double v = ceil(lo->v);
        if (lo->excl && v == lo->v) v += 1;
        lo->v = v, lo->excl = false;
    }
    if (hi->set) {
        double v = floor(hi->v);
        if (hi->excl && v == hi->v) v -= 1;
        hi->v = v, hi->excl = false;
    }
    if (lo->set && hi->set && lo->v > hi->v) return invalid(c, path, "no integer between minimum and maximum");
    return true;
}

static bool put_int_range(ryot_buf *b, const bound *lo, const bound *hi) {
    bool neg = !lo->set || lo->v < 0, nonneg = !hi->set || hi->v >= 0, ok = ryot_buf_append(b, "(", 1);
    if (ok && neg) {
        uint64_t mlo = hi->set && hi->v < 0 ? (uint64_t)-hi->v : 1, mhi = lo->set ? (uint64_t)-lo->v : 0;
        ok = ryot_buf_append(b, "\"-\" ", 4) && put_uint_range(b, mlo, mhi, !lo->set);
    }
    if (ok && nonneg) {
        uint64_t a = lo->set && lo->v > 0 ? (uint64_t)lo->v : 0, z = hi->set ? (uint64_t)hi->v : 0;
        ok = (!neg || ryot_buf_append(b, " | ", 3)) && put_uint_range(b, a, z, !hi->set);
    }
    return ok && ryot_buf_append(b, ")", 1);
}

#define FRAC_ANY "(\".\" [0-9]+)?"
#define FRAC_ZERO "(\".\" \"0\"+)?"
#define FRAC_NONZERO "\".\" [0-9]* [1-9] [0-9]*"

/* Magnitudes y in [a, z] (each end inclusive or exclusive; z_inf: none) of
 * a decimal without exponent: integer part strictly inside with any
 * fraction, at a with any (inclusive) or a non-zero fraction (exclusive),
 * at z with a zero fraction (inclusive only).  Appends " | "-separated
 * alternatives; *any tells whether one was written. */
static bool put_decimal_span(ryot_buf *b, uint64_t a, bool a_excl, uint64_t z, bool z_excl, bool z_inf, const char *sign,
                             bool *any) {
    bool ok = true;
#define ALT(...) (ok = ok && (!*any || ryot_buf_append(b, " | ", 3)) && ryot_buf_printf(b, __VA_ARGS__), *any = true)
    if (!z_inf && a == z) {
        if (!a_excl && !z_excl) ALT("%s\"%llu\" " FRAC_ZERO, sign, (unsigned long long)a);
        return ok;
    }
    ALT("%s\"%llu\" %s", sign, (unsigned long long)a, a_excl ? FRAC_NONZERO : FRAC_ANY);
    if (z_inf || z > a + 1) {
        ALT("%s", sign);
        ok = ok && put_uint_range(b, a + 1, z_inf ? 0 : z - 1, z_inf) && ryot_buf_append(b, " " FRAC_ANY, strlen(FRAC_ANY) + 1);
    }
    if (!z_inf && !z_excl) ALT("%s\"%llu\" " FRAC_ZERO, sign, (unsigned long long)z);
#undef ALT
    return ok;
}

/* Numbers in [lo, hi]: bounds that are not integers are rounded inward
 * (inclusive), integer bounds are exact. */
static bool put_number_range(sc *c, ryot_buf *b, const char *path, bound lo, bound hi) {
    if (lo.set && lo.v != floor(lo.v)) lo.v = ceil(lo.v), lo.excl = false;
    if (hi.set && hi.v != floor(hi.v)) hi.v = floor(hi.v), hi.excl = false;
    if (lo.set && hi.set && (lo.v > hi.v || (lo.v == hi.v && (lo.excl || hi.excl))))
        return invalid(c, path, "no number between minimum and maximum the grammar can express");
    bool any = false, ok = ryot_buf_append(b, "(", 1);
    if (ok && (!lo.set || lo.v < 0)) {
        /* x = -y: y in (max(0, -hi), -lo]; y = 0 is left to the non-negative side */
        bool z_inf = !lo.set;
        uint64_t a = hi.set && hi.v < 0 ? (uint64_t)-hi.v : 0, z = z_inf ? 0 : (uint64_t)-lo.v;
        bool a_excl = hi.set && hi.v < 0 ? hi.excl : true;
        ok = put_decimal_span(b, a, a_excl, z, lo.excl, z_inf, "\"-\" ", &any);
    }
    if (ok && (!hi.set || hi.v >= 0) && !(hi.set && hi.v == 0 && hi.excl)) {
        uint64_t a = lo.set && lo.v > 0 ? (uint64_t)lo.v : 0, z = hi.set ? (uint64_t)hi.v : 0;
        bool a_excl = lo.set && lo.v >= 0 ? lo.excl : false;
        ok = put_decimal_span(b, a, a_excl, z, hi.excl, !hi.set, "", &any);
    }
    if (ok && !any) return invalid(c, path, "no number between minimum and maximum");
    return (ok && ryot_buf_append(b, ")", 1)) || oom(c);
}

/* ---------------------------------------------------------------- regex */
typedef struct rx {
    sc *c;
    const char *s;
    size_t n, pos;
    const char *path;
} rx;

typedef struct ranges {
    uint32_t r[2 * 64];
    int n;
} ranges;

static bool rx_fail(rx *x, const char *what) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s at offset %zu", what, x->pos);
    return fail(x->c, RYOT_ERR_UNSUPPORTED, x->path, "%s", msg);
}

static bool ranges_add(rx *x, ranges *r, uint32_t lo, uint32_t hi) {
    if (r->n >= 64) return rx_fail(x, "character class too large");
    r->r[2 * r->n] = lo, r->r[2 * r->n + 1] = hi, r->n++;
    return true;
}

/* Appends a class of r's code points that a JSON string can hold unescaped
 * (a sound subset of the regex class: '"', '\' and controls are left out),
 * complemented first when negate. */
static bool put_class(rx *x, ryot_buf *b, const ranges *r, bool negate) {
    bool in[0x80] = {0};
    bool high = false; /* whether code points >= 0x80 are in */
    for (int i = 0; i < r->n; i++) {
        for (uint32_t cp = r->r[2 * i]; cp <= r->r[2 * i + 1] && cp < 0x80; cp++) in[cp] = true;
        if (r->r[2 * i + 1] >= 0x80) {
            if (r->r[2 * i] > 0x80 || r->r[2 * i + 1] < 0x10FFFF)
                return rx_fail(x, "non-ASCII ranges in classes are unsupported");
            high = true;
        }
    }
    if (negate) {
        for (int i = 0; i < 0x80; i++) in[i] = !in[i];
        high = !high;
    }
    bool ok = ryot_buf_append(b, "[", 1), any = high;
    for (int i = 0x20; ok && i < 0x80; i++) {
        if (!in[i] || i == '"' || i == '\\') continue;
        any = true;
        ok = isalnum(i) ? ryot_buf_printf(b, "%c", i) : ryot_buf_printf(b, "\\x%02X", i);
    }
    if (ok && high) ok = ryot_buf_append(b, "\\u0080-\\U0010FFFF", 17);
    if (ok && !any) return rx_fail(x, "class has no character a JSON string holds unescaped");
    return ok && ryot_buf_append(b, "]", 1);
}

/* A JSON-escaped literal for one code point. */
static bool put_json_char(ryot_buf *b, uint32_t cp) {
    char u[8];
    if (cp == '"') return put_lit(b, "\\\"", 2);
    if (cp == '\\') return put_lit(b, "\\\\", 2);
    if (cp == '\n') return put_lit(b, "\\n", 2);
    if (cp == '\t') return put_lit(b, "\\t", 2);
    if (cp == '\r') return put_lit(b, "\\r", 2);
    if (cp < 0x20) return snprintf(u, sizeof u, "\\u%04X", cp), put_lit(b, u, 6);
    return ryot_buf_printf(b, "\"\\U%08X\"", cp);
}

static bool rx_hex(rx *x, int digits, uint32_t *cp) {
    uint32_t v = 0;
    for (int i = 0; i < digits; i++, x->pos++) {
        char ch = x->pos < x->n ? x->s[x->pos] : 0;
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0) return rx_fail(x, "bad hex escape");
        v = v << 4 | (uint32_t)d;
    }
    *cp = v;
    return true;
}

/* A UTF-8 code point of the pattern (the pattern is a valid JSON string). */
static uint32_t rx_utf8(rx *x) {
    const unsigned char *s = (const unsigned char *)x->s + x->pos;
    uint32_t c = s[0];
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t v = n == 1 ? c : c & (0x3F >> (n - 1));
    for (int i = 1; i < n && x->pos + (size_t)i < x->n; i++) v = v << 6 | (s[i] & 0x3F);
    x->pos += (size_t)n;
    return v;
}

/* After a backslash: a class escape (\d \w \s and negations) into *r, or a
 * literal code point into *cp. */
static bool rx_escape(rx *x, ranges *r, bool *is_class, bool *negate, uint32_t *cp) {
    if (x->pos >= x->n) return rx_fail(x, "pattern ends after '\\'");
    char e = x->s[x->pos++];
    *is_class = true;
    *negate = e == 'D' || e == 'W' || e == 'S';
    switch (e) {
    case 'd': case 'D': return ranges_add(x, r, '0', '9');
    case 'w': case 'W':
        return ranges_add(x, r, '0', '9') && ranges_add(x, r, 'a', 'z') && ranges_add(x, r, 'A', 'Z') &&
               ranges_add(x, r, '_', '_');
    case 's': case 'S': return ranges_add(x, r, ' ', ' ') && ranges_add(x, r, '\t', '\r');
    }
    *is_class = false;
    switch (e) {
    case 'n': *cp = '\n'; return true;
    case 't': *cp = '\t'; return true;
    case 'r': *cp = '\r'; return true;
    case 'f': *cp = '\f'; return true;
    case 'v': *cp = '\v'; return true;
    case 'x': return rx_hex(x, 2, cp);
    case 'u': return rx_hex(x, 4, cp);
    }
    if (isalnum((unsigned char)e)) return x->pos--, rx_fail(x, "unsupported escape");
    *cp = (unsigned char)e;
    return true;
}

static bool rx_class(rx *x, ryot_buf *b) {
    ranges r = {.n = 0};
    bool negate = x->pos < x->n && x->s[x->pos] == '^';
    if (negate) x->pos++;
    bool first = true;
    while (x->pos < x->n && (x->s[x->pos] != ']' || first)) {
        first = false;
        uint32_t lo, hi;
        if (x->s[x->pos] == '\\') {
            x->pos++;
            bool is_class, neg;
            if (!rx_escape(x, &r, &is_class, &neg, &lo)) return false;
            if (is_class) {
                if (neg) return rx_fail(x, "negated escapes inside classes are unsupported");
                continue;
            }
        } else {
            lo = rx_utf8(x);
        }
        hi = lo;
        if (x->pos + 1 < x->n && x->s[x->pos] == '-' && x->s[x->pos + 1] != ']') {
            x->pos++;
            if (x->s[x->pos] == '\\') {
                x->pos++;
                bool is_class, neg;
                if (!rx_escape(x, &r, &is_class, &neg, &hi)) return false;
                if (is_class) return rx_fail(x, "class escape as a range end");
            } else {
                hi = rx_utf8(x);
            }
            if (hi < lo) return rx_fail(x, "class range out of order");
        }
        if (!ranges_add(x, &r, lo, hi)) return false;
    }
    if (x->pos >= x->n) return rx_fail(x, "unterminated class");
    x->pos++;
    return put_class(x, b, &r, negate);
}

static bool rx_alts(rx *x, ryot_buf *b, int depth);

static bool rx_quant(rx *x, ryot_buf *b) {
    if (x->pos >= x->n) return true;
    char q = x->s[x->pos];
    bool ok = true;
    if (q == '*' || q == '+' || q == '?') {
        x->pos++;
        ok = ryot_buf_printf(b, "%c", q);
    } else if (q == '{') {
        size_t end = x->pos + 1;
        while (end < x->n && (isdigit((unsigned char)x->s[end]) || x->s[end] == ',')) end++;
        if (end >= x->n || x->s[end] != '}') return true; /* a literal '{' */
        unsigned long m = 0, n = 0;
        int got = sscanf(x->s + x->pos, "{%lu,%lu}", &m, &n);
        bool comma = memchr(x->s + x->pos, ',', end - x->pos) != NULL;
        if (got < 1 || m > MAX_COUNT || (got == 2 && (n > MAX_COUNT || n < m))) return rx_fail(x, "bad repetition count");
        ok = got == 2 ? ryot_buf_printf(b, "{%lu,%lu}", m, n) : comma ? ryot_buf_printf(b, "{%lu,}", m)
                                                                     : ryot_buf_printf(b, "{%lu}", m);
        x->pos = end + 1;
    } else {
        return true;
    }
    if (x->pos < x->n && x->s[x->pos] == '?') x->pos++; /* lazy: same language */
    if (x->pos < x->n && strchr("*+?{", x->s[x->pos]) && x->s[x->pos] != '{') return rx_fail(x, "stacked quantifiers");
    return ok;
}

static bool rx_seq(rx *x, ryot_buf *b, int depth) {
    bool ok = ryot_buf_append(b, "(\"\"", 3);
    while (ok && x->pos < x->n && x->s[x->pos] != '|' && x->s[x->pos] != ')') {
        char ch = x->s[x->pos];
        ok = ryot_buf_append(b, " ", 1);
        if (!ok) break;
        if (ch == '(') {
            if (depth >= MAX_DEPTH) return rx_fail(x, "groups nested too deeply");
            x->pos++;
            if (x->pos < x->n && x->s[x->pos] == '?') {
                if (x->pos + 1 < x->n && x->s[x->pos + 1] == ':') x->pos += 2;
                else return rx_fail(x, "lookaround and named groups are unsupported");
            }
            ok = rx_alts(x, b, depth + 1);
            if (ok && (x->pos >= x->n || x->s[x->pos] != ')')) return rx_fail(x, "missing ')'");
            x->pos++;
        } else if (ch == '[') {
            x->pos++;
            ok = rx_class(x, b);
        } else if (ch == '.') {
            x->pos++;
            ranges r = {.n = 0};
            ok = put_class(x, b, &r, true);
        } else if (ch == '\\') {
            x->pos++;
            ranges r = {.n = 0};
            bool is_class, negate;
            uint32_t cp;
            ok = rx_escape(x, &r, &is_class, &negate, &cp) && (is_class ? put_class(x, b, &r, negate) : put_json_char(b, cp));
        } else if (ch == '^' || ch == '$') {
            return rx_fail(x, "anchors are only supported at the ends of the pattern");
        } else if (ch == '*' || ch == '+' || ch == '?') {
            return rx_fail(x, "quantifier without an operand");
        } else {
            ok = put_json_char(b, rx_utf8(x));
        }
        ok = ok && rx_quant(x, b);
    }
    return ok && ryot_buf_append(b, ")", 1);
}

static bool rx_alts(rx *x, ryot_buf *b, int depth) {
    bool ok = ryot_buf_append(b, "(", 1) && rx_seq(x, b, depth);
    while (ok && x->pos < x->n && x->s[x->pos] == '|') {
        x->pos++;
        ok = ryot_buf_append(b, " | ", 3) && rx_seq(x, b, depth);
    }
    return ok && ryot_buf_append(b, ")", 1);
}

/* The pattern as a grammar expression for a string's contents.  JSON Schema
 * patterns match anywhere; the grammar generates the anchored language,
 * which is a subset. */
static bool put_pattern(sc *c, ryot_buf *b, const char *pat, size_t n, const char *path) {
    rx x = {.c = c, .s = pat, .n = n, .path = path};
    if (n && pat[0] == '^') x.pos = 1;
    if (x.n > x.pos && pat[x.n - 1] == '$' && (x.n < 2 || pat[x.n - 2] != '\\')) x.n--;
    bool ok = rx_alts(&x, b, 0);
    if (ok && x.pos < x.n) return rx_fail(&x, "unmatched ')'");
    return ok || (c->failed ? false : oom(c));
}

/* ---------------------------------------------------------------- schemas */
static const char *const ANNOTATIONS[] = {"title",    "description", "default",  "examples",   "$schema",
                                          "$id",      "$comment",    "$defs",    "definitions", "strict",
                                          "readOnly", "writeOnly",   "deprecated", "$anchor",  "contentMediaType",
                                          NULL};
/* Keywords that constrain values and are not implemented. */
static const char *const UNSUPPORTED[] = {"not", "if", "then", "else", "patternProperties", "propertyNames",
                                          "dependentRequired", "dependentSchemas", "dependencies", "minProperties",
                                          "maxProperties", "multipleOf", "contains", "minContains", "maxContains",
                                          "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef",
                                          "additionalItems", NULL};
static const char *const COMBINATORS[] = {"$ref", "anyOf", "oneOf", "allOf", "enum", "const", NULL};

static bool in_list(const char *const *list, const char *k) {
    for (; *list; list++)
        if (!strcmp(*list, k)) return true;
    return false;
}

static bool compile(sc *c, const json_t *s, const char *path, int depth, rname name);

static void use_common(sc *c, unsigned flags) {
    if (flags & C_VALUE) flags |= C_WS | C_STRING | C_NUMBER | C_BOOL | C_NULL;
    if (flags & C_STRING) flags |= C_CHAR;
    c->common |= flags;
}

static bool put_common(sc *c) {
    static const struct {
        unsigned flag;
        const char *text;
    } rules[] = {
        {C_WS, "ws ::= [ \\t\\n]{0,20}\n"},
        /* one decoded character: \u escapes of surrogates are left out, so
         * lengths count code points exactly */
        {C_CHAR, "json-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" ([0-9a-cA-CeEfF] [0-9a-fA-F]{3} | "
                 "[dD] [0-7] [0-9a-fA-F]{2}))\n"},
        {C_STRING, "json-string ::= \"\\\"\" json-char* \"\\\"\"\n"},
        {C_NUMBER, "json-number ::= \"-\"? (\"0\" | [1-9] [0-9]*) (\".\" [0-9]+)? ([eE] [-+]? [0-9]+)?\n"},
        {C_INTEGER, "json-integer ::= \"-\"? (\"0\" | [1-9] [0-9]*)\n"},
        {C_BOOL, "json-bool ::= \"true\" | \"false\"\n"},
        {C_NULL, "json-null ::= \"null\"\n"},
        {C_VALUE, "json-value ::= json-object | json-array | json-string | json-number | json-bool | json-null\n"
                  "json-object ::= \"{\" ws (json-string ws \":\" ws json-value ws (\",\" ws json-string ws \":\" ws "
                  "json-value ws)*)? \"}\"\n"
                  "json-array ::= \"[\" ws (json-value ws (\",\" ws json-value ws)*)? \"]\"\n"},
        {C_DATE, "json-date ::= [0-9]{4} \"-\" (\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"3\" "
                 "[01])\n"},
        {C_TIME, "json-time ::= ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,9})? "
                 "(\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])\n"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
        if ((c->common & rules[i].flag) && !ryot_buf_append(&c->out, rules[i].text, strlen(rules[i].text)))
            return oom(c);
    return true;
}

/* The rule for a $ref (compiled once; recursion refers back to it). */
static bool compile_ref(sc *c, const json_t *ref, const char *path, int depth, rname name) {
    char p[PATH_MAX_LEN];
    sub_path(p, path, "$ref");
    if (!json_is_string(ref)) return invalid(c, p, "must be a string");
    const char *r = json_string_value(ref);
    for (size_t i = 0; i < c->n_refs; i++)
        if (!strcmp(c->refs[i].ref, r)) return memcpy(name, c->refs[i].name, sizeof(rname)), true;
    if (r[0] != '#') return fail(c, RYOT_ERR_UNSUPPORTED, p, "'%.100s': only local references (#...) are supported", r);
    const json_t *t = c->root;
    for (const char *seg = r + 1; *seg && t;) {
        if (*seg != '/') return fail(c, RYOT_ERR_INVALID, p, "'%.100s': not a JSON pointer", r);
        seg++;
        size_t n = strcspn(seg, "/");
        char key[256];
        size_t k = 0;
        for (size_t i = 0; i < n && k + 1 < sizeof key; i++) {
            if (seg[i] == '~' && i + 1 < n && (seg[i + 1] == '0' || seg[i + 1] == '1'))
                key[k++] = seg[i + 1] == '0' ? '~' : '/', i++;
            else key[k++] = seg[i];
        }
        key[k] = 0;
        t = json_is_array(t) ? json_array_get(t, strtoul(key, NULL, 10)) : json_object_get(t, key);
        seg += n;
    }
    if (!t) return fail(c, RYOT_ERR_INVALID, p, "cannot resolve '%.100s'", r);
    if (!json_is_object(t) && !json_is_boolean(t))
        return fail(c, RYOT_ERR_INVALID, p, "'%.100s' is not a schema", r);
    if (c->n_refs == c->cap_refs) {
        size_t cap = c->cap_refs ? 2 * c->cap_refs : 8;
        ref_entry *e = realloc(c->refs, cap * sizeof *e);
        if (!e) return oom(c);
        c->refs = e, c->cap_refs = cap;
    }
    ref_entry *e = &c->refs[c->n_refs];
    if (!(e->ref = strdup(r))) return oom(c);
    new_name(c, e->name);
    c->n_refs++;
    memcpy(name, e->name, sizeof(rname));
    rname target;
    char tp[PATH_MAX_LEN];
    path_printf(tp, "schema%.200s", r + 1);
    for (char *q = tp; *q; q++)
        if (*q == '/') *q = '.';
    if (!compile(c, t, tp, depth + 1, target)) return false;
    ryot_buf body = {0};
    return (ryot_buf_append(&body, target, strlen(target)) || oom(c)) && emit_rule(c, name, &body);
}

static bool read_count(sc *c, const json_t *s, const char *key, const char *path, long *out) {
    const json_t *v = json_object_get(s, key);
    if (!v) return true;
    char p[PATH_MAX_LEN];
    sub_path(p, path, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return invalid(c, p, "must be a non-negative integer");
    json_int_t x = json_integer_value(v);
    /* an upper bound over the grammar's count limit is tightened (still valid);
     * a lower one cannot be */
    if (x > MAX_COUNT && key[1] == 'i') return fail(c, RYOT_ERR_UNSUPPORTED, p, "%s", "over 10000 is unsupported");
    *out = x > MAX_COUNT ? MAX_COUNT : (long)x;
    return true;
}

static bool compile_object(sc *c, const json_t *s, const char *path, int depth, ryot_buf *b) {
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required"),
                 *add = json_object_get(s, "additionalProperties");
    char p[PATH_MAX_LEN];
    if (props && !json_is_object(props)) return sub_path(p, path, "properties"), invalid(c, p, "must be an object");
    if (req && !json_is_array(req)) return sub_path(p, path, "required"), invalid(c, p, "must be an array of strings");
    size_t n_req = req ? json_array_size(req) : 0;
    for (size_t i = 0; i < n_req; i++)
        if (!json_is_string(json_array_get(req, i))) {
            path_printf(p, "%s.required[%zu]", path, i);
            return invalid(c, p, "must be a string");
        }
    use_common(c, C_WS);
    if (!json_object_size(props) && !n_req) {
        if (add && !json_is_boolean(add) && !json_is_object(add))
            return sub_path(p, path, "additionalProperties"), invalid(c, p, "must be a boolean or a schema");
        if (json_is_false(add)) return ryot_buf_append(b, "\"{\" ws \"}\"", 10) || oom(c);
        if (!add || json_is_true(add)) return use_common(c, C_VALUE), ryot_buf_append(b, "json-object", 11) || oom(c);
        rname v;
        sub_path(p, path, "additionalProperties");
        if (!compile(c, add, p, depth + 1, v)) return false;
        use_common(c, C_STRING);
        return ryot_buf_printf(b, "\"{\" ws (json-string ws \":\" ws %s ws (\",\" ws json-string ws \":\" ws %s ws)*)? \"}\"",
                               v, v) || oom(c);
    }
    /* the properties in order, then required names that have no schema */
    size_t n = json_object_size(props), k = 0;
    size_t total = n + n_req;
    rname *kv = calloc(total + 1, sizeof *kv);
    bool *required = calloc(total + 1, sizeof *required);
    if (!kv || !required) return free(kv), free(required), oom(c);
    bool ok = true;
    const char *key;
    const json_t *sub;
    json_object_foreach((json_t *)props, key, sub) {
        if (!ok) break;
        for (size_t i = 0; i < n_req; i++)
            if (!strcmp(json_string_value(json_array_get(req, i)), key)) required[k] = true;
        path_printf(p, "%s.properties.%.100s", path, key);
        rname v;
        ryot_buf body = {0};
        json_t *jkey = json_string(key);
        ok = compile(c, sub, p, depth + 1, v) && jkey && put_json_lit(c, &body, jkey) &&
             (ryot_buf_printf(&body, " ws \":\" ws %s ws", v) || oom(c));
        json_decref(jkey);
        if (ok) new_name(c, kv[k]), ok = emit_rule(c, kv[k], &body);
        else ryot_buf_free(&body);
        k++;
    }
    for (size_t i = 0; ok && i < n_req; i++) {
        const char *name = json_string_value(json_array_get(req, i));
        if (json_object_get(props, name)) continue;
        bool dup = false;
        for (size_t j = 0; j < i; j++) dup = dup || !strcmp(json_string_value(json_array_get(req, j)), name);
        if (dup) continue;
        if (json_is_false(add)) {
            path_printf(p, "%s.required[%zu]", path, i);
            ok = fail(c, RYOT_ERR_INVALID, p, "'%.100s' is required but additionalProperties is false", name);
            break;
        }
        use_common(c, C_VALUE);
        ryot_buf body = {0};
        json_t *jkey = json_string(name);
        ok = jkey && put_json_lit(c, &body, jkey) && (ryot_buf_append(&body, " ws \":\" ws json-value ws", 24) || oom(c));
        json_decref(jkey);
        if (ok) new_name(c, kv[k]), ok = emit_rule(c, kv[k], &body);
        else ryot_buf_free(&body);
        required[k++] = true;
    }
    /* first_i and after_i, from the end */
    rname first_next = "", after_next = "";
    for (size_t i = k; ok && i-- > 0;) {
        rname fi, ai;
        ryot_buf fb = {0}, ab = {0};
        new_name(c, fi), new_name(c, ai);
        ok = ryot_buf_printf(&ab, required[i] ? "\",\" ws %s %s" : "(\",\" ws %s)? %s", kv[i], after_next) &&
             ryot_buf_printf(&fb, "%s %s", kv[i], after_next) &&
             (required[i] || !*first_next || ryot_buf_printf(&fb, " | %s", first_next)) &&
             (required[i] || *first_next || ryot_buf_append(&fb, " | \"\"", 5));
        if (!ok) {
            ryot_buf_free(&fb), ryot_buf_free(&ab);
            ok = oom(c);
            break;
        }
        ok = emit_rule(c, ai, &ab) && emit_rule(c, fi, &fb);
        memcpy(first_next, fi, sizeof fi), memcpy(after_next, ai, sizeof ai);
    }
    free(kv);
    free(required);
    return ok && (ryot_buf_printf(b, "\"{\" ws %s \"}\"", first_next) || oom(c));
}

static bool compile_array(sc *c, const json_t *s, const char *path, int depth, ryot_buf *b) {
    const json_t *items = json_object_get(s, "items"), *prefix = json_object_get(s, "prefixItems");
    char p[PATH_MAX_LEN];
    long lo = 0, hi = -1;
    if (!read_count(c, s, "minItems", path, &lo) || !read_count(c, s, "maxItems", path, &hi)) return false;
    if (prefix && !json_is_array(prefix)) return sub_path(p, path, "prefixItems"), invalid(c, p, "must be an array");
    size_t k = prefix ? json_array_size(prefix) : 0;
    if (json_is_false(items) && (hi < 0 || hi > (long)k)) hi = (long)k;
    if (hi >= 0 && lo > hi) return sub_path(p, path, "minItems"), invalid(c, p, "greater than maxItems");
    if (k > MAX_COUNT) return sub_path(p, path, "prefixItems"), fail(c, RYOT_ERR_UNSUPPORTED, p, "%s", "too many items");
    use_common(c, C_WS);
    rname it = "json-value";
    if (items && !json_is_false(items)) {
        sub_path(p, path, "items");
        if (!compile(c, items, p, depth + 1, it)) return false;
    } else if (!items) {
        use_common(c, C_VALUE);
    }
    if (hi == 0) return ryot_buf_append(b, "\"[\" ws \"]\"", 10) || oom(c);
    /* rest_j: what may follow j emitted items, built from the end: past the
     * prefix a counted run of items, inside it prefixItems[j] (optional once
     * minItems are in) */
    size_t j_end = hi >= 0 && (size_t)hi <= k ? (size_t)hi : k;
    if (j_end == 0) j_end = 1; /* no prefix: the run follows the first item */
    rname next;
    ryot_buf body = {0};
    bool ok;
    new_name(c, next);
    long rmin = lo > (long)j_end ? lo - (long)j_end : 0, rmax = hi < 0 ? -1 : hi - (long)j_end;
    if (rmax == 0 || json_is_false(items)) ok = ryot_buf_append(&body, "\"\"", 2);
    else if (rmax < 0) ok = ryot_buf_printf(&body, "(\",\" ws %s ws){%ld,}", it, rmin);
    else ok = ryot_buf_printf(&body, "(\",\" ws %s ws){%ld,%ld}", it, rmin, rmax);
    if (!ok) return ryot_buf_free(&body), oom(c);
    if (!emit_rule(c, next, &body)) return false;
    for (size_t j = j_end; j-- > 1;) {
        rname pj, rj;
        path_printf(p, "%s.prefixItems[%zu]", path, j);
        if (!compile(c, json_array_get(prefix, j), p, depth + 1, pj)) return false;
        new_name(c, rj);
        ok = (long)j < lo ? ryot_buf_printf(&body, "\",\" ws %s ws %s", pj, next)
                          : ryot_buf_printf(&body, "(\",\" ws %s ws %s)?", pj, next);
        if (!ok) return ryot_buf_free(&body), oom(c);
        if (!emit_rule(c, rj, &body)) return false;
        memcpy(next, rj, sizeof rj);
    }
    rname first;
    if (k) {
        path_printf(p, "%s.prefixItems[0]", path);
        if (!compile(c, json_array_get(prefix, 0), p, depth + 1, first)) return false;
    } else {
        memcpy(first, it, sizeof first);
    }
    ok = lo >= 1 ? ryot_buf_printf(b, "\"[\" ws %s ws %s \"]\"", first, next)
                 : ryot_buf_printf(b, "\"[\" ws (%s ws %s)? \"]\"", first, next);
    return ok || oom(c);
}

static bool compile_string(sc *c, const json_t *s, const char *path, ryot_buf *b) {
    const json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
    char p[PATH_MAX_LEN];
    long lo = 0, hi = -1;
    if (!read_count(c, s, "minLength", path, &lo) || !read_count(c, s, "maxLength", path, &hi)) return false;
    if (hi >= 0 && lo > hi) return sub_path(p, path, "minLength"), invalid(c, p, "greater than maxLength");
    bool lengths = json_object_get(s, "minLength") || json_object_get(s, "maxLength");
    if (pat) {
        sub_path(p, path, "pattern");
        if (!json_is_string(pat)) return invalid(c, p, "must be a string");
        if (lengths) return fail(c, RYOT_ERR_UNSUPPORTED, p, "%s", "pattern with minLength/maxLength is unsupported");
        return ryot_buf_append(b, "\"\\\"\" ", 5) && put_pattern(c, b, json_string_value(pat), json_string_length(pat), p) &&
               (ryot_buf_append(b, " \"\\\"\"", 5) || oom(c));
    }
    static const struct {
        const char *name, *body;
        unsigned common;
    } formats[] = {
        {"date", "json-date", C_DATE},
        {"time", "json-time", C_TIME},
        {"date-time", "json-date \"T\" json-time", C_DATE | C_TIME},
        {"uuid", "[0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12}", 0},
        {"email", "[a-zA-Z0-9_%+-]+ (\".\" [a-zA-Z0-9_%+-]+)* \"@\" [a-zA-Z0-9-]+ (\".\" [a-zA-Z0-9-]+)+", 0},
        {"ipv4", "json-octet \".\" json-octet \".\" json-octet \".\" json-octet", 0},
    };
    if (fmt && json_is_string(fmt)) {
        for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
            if (strcmp(json_string_value(fmt), formats[i].name)) continue;
            sub_path(p, path, "format");
            if (lengths) return fail(c, RYOT_ERR_UNSUPPORTED, p, "%s", "format with minLength/maxLength is unsupported");
            use_common(c, formats[i].common);
            if (!strcmp(formats[i].name, "ipv4") && !(c->common & C_IPV4)) {
                c->common |= C_IPV4;
                static const char octet[] =
                    "json-octet ::= \"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9]\n";
                if (!ryot_buf_append(&c->out, octet, strlen(octet))) return oom(c);
            }
            return ryot_buf_printf(b, "\"\\\"\" %s \"\\\"\"", formats[i].body) || oom(c);
        }
    }
    /* other formats are annotations */
    use_common(c, C_STRING);
    if (!lengths) return ryot_buf_append(b, "json-string", 11) || oom(c);
    bool ok = hi < 0 ? ryot_buf_printf(b, "\"\\\"\" json-char{%ld,} \"\\\"\"", lo)
                     : ryot_buf_printf(b, "\"\\\"\" json-char{%ld,%ld} \"\\\"\"", lo, hi);
    return ok || oom(c);
}

static bool compile_number(sc *c, const json_t *s, const char *path, bool integer, ryot_buf *b) {
    bound lo, hi;
    if (!read_bounds(c, s, path, &lo, &hi)) return false;
    if (!lo.set && !hi.set) {
        use_common(c, integer ? C_INTEGER : C_NUMBER);
        return ryot_buf_append(b, integer ? "json-integer" : "json-number", integer ? 12 : 11) || oom(c);
    }
    if (integer) return int_bounds(c, path, &lo, &hi) && (put_int_range(b, &lo, &hi) || oom(c));
    return put_number_range(c, b, path, lo, hi);
}

/* One type's grammar for schema s. */
static bool compile_type(sc *c, const json_t *s, const char *type, const char *path, int depth, ryot_buf *b) {
    if (!strcmp(type, "object")) return compile_object(c, s, path, depth, b);
    if (!strcmp(type, "array")) return compile_array(c, s, path, depth, b);
    if (!strcmp(type, "string")) return compile_string(c, s, path, b);
    if (!strcmp(type, "number")) return compile_number(c, s, path, false, b);
    if (!strcmp(type, "integer")) return compile_number(c, s, path, true, b);
    if (!strcmp(type, "boolean")) return use_common(c, C_BOOL), ryot_buf_append(b, "json-bool", 9) || oom(c);
    if (!strcmp(type, "null")) return use_common(c, C_NULL), ryot_buf_append(b, "json-null", 9) || oom(c);
    char p[PATH_MAX_LEN];
    sub_path(p, path, "type");
    return fail(c, RYOT_ERR_INVALID, p, "unknown type '%.60s'", type);
}

/* The type a schema without "type" constrains, from its keywords; NULL for
 * any value. */
static const char *implied_type(const json_t *s) {
    static const struct {
        const char *key, *type;
    } keys[] = {{"properties", "object"},   {"required", "object"},    {"additionalProperties", "object"},
                {"items", "array"},         {"prefixItems", "array"},  {"minItems", "array"},
                {"maxItems", "array"},      {"minLength", "string"},   {"maxLength", "string"},
                {"pattern", "string"},      {"minimum", "number"},     {"maximum", "number"},
                {"exclusiveMinimum", "number"}, {"exclusiveMaximum", "number"}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (json_object_get(s, keys[i].key)) return keys[i].type;
    return NULL;
}

/* Whether JSON value v has one of the types in `types` (a string or an
 * array of strings). */
static bool has_type(const json_t *v, const json_t *types) {
    for (size_t i = 0, n = json_is_array(types) ? json_array_size(types) : 1; i < n; i++) {
        const char *t = json_string_value(json_is_array(types) ? json_array_get(types, i) : types);
        if (!t) continue;
        if ((!strcmp(t, "object") && json_is_object(v)) || (!strcmp(t, "array") && json_is_array(v)) ||
            (!strcmp(t, "string") && json_is_string(v)) || (!strcmp(t, "number") && json_is_number(v)) ||
            (!strcmp(t, "integer") && (json_is_integer(v) || (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))) ||
            (!strcmp(t, "boolean") && json_is_boolean(v)) || (!strcmp(t, "null") && json_is_null(v)))
            return true;
    }
    return false;
}

/* Alternatives of subschemas (anyOf, oneOf) or of values (enum). */
static bool compile_alts(sc *c, const json_t *s, const char *key, const char *path, int depth, ryot_buf *b) {
    const json_t *list = json_object_get(s, key), *types = json_object_get(s, "type");
    char p[PATH_MAX_LEN];
    sub_path(p, path, key);
    if (!json_is_array(list) || !json_array_size(list)) return invalid(c, p, "must be a non-empty array");
    bool ok = true, any = false;
    for (size_t i = 0; ok && i < json_array_size(list); i++) {
        const json_t *v = json_array_get(list, i);
        if (!strcmp(key, "enum")) {
            if (types && !has_type(v, types)) continue; /* a value the type excludes */
            ok = (!any || ryot_buf_append(b, " | ", 3) || oom(c)) && put_json_lit(c, b, v);
        } else {
            char ip[PATH_MAX_LEN];
            rname r;
            path_printf(ip, "%s[%zu]", p, i);
            ok = compile(c, v, ip, depth + 1, r) && (((!any || ryot_buf_append(b, " | ", 3)) && ryot_buf_append(b, r, strlen(r))) || oom(c));
        }
        any = true;
    }
    if (ok && !any) return invalid(c, p, "no value has the schema's type");
    return ok;
}

static bool compile(sc *c, const json_t *s, const char *path, int depth, rname name) {
    if (depth > MAX_DEPTH) return invalid(c, path, "nested too deeply");
    if (json_is_true(s)) return use_common(c, C_VALUE), memcpy(name, "json-value", 11), true;
    if (json_is_false(s)) return invalid(c, path, "false matches nothing");
    if (!json_is_object(s)) return invalid(c, path, "must be an object or a boolean");
    const char *key;
    const json_t *v;
    const char *combinator = NULL, *other = NULL;
    char p[PATH_MAX_LEN];
    json_object_foreach((json_t *)s, key, v) {
        if (in_list(UNSUPPORTED, key) || (!strcmp(key, "uniqueItems") && json_is_true(v)))
            return sub_path(p, path, key), fail(c, RYOT_ERR_UNSUPPORTED, p, "%s", "unsupported keyword");
        if (in_list(ANNOTATIONS, key)) continue;
        if (in_list(COMBINATORS, key)) {
            if (combinator) return sub_path(p, path, key), fail(c, RYOT_ERR_UNSUPPORTED, p, "unsupported together with %s", combinator);
            combinator = key;
        } else if (strcmp(key, "type") && strcmp(key, "format")) {
            other = key;
        }
    }
    const json_t *types = json_object_get(s, "type");
    bool enum_like = combinator && (!strcmp(combinator, "enum") || !strcmp(combinator, "const"));
    if (combinator && (other || (types && !enum_like)))
        return sub_path(p, path, combinator), fail(c, RYOT_ERR_UNSUPPORTED, p, "unsupported together with %s",
                                                   other ? other : "type");
    if (combinator && !strcmp(combinator, "$ref")) return compile_ref(c, json_object_get(s, "$ref"), path, depth, name);
    ryot_buf b = {0};
    bool ok;
    if (!combinator) {
        if (types && !json_is_string(types) && !json_is_array(types))
            return sub_path(p, path, "type"), invalid(c, p, "must be a string or an array of strings");
        const char *implied = types ? NULL : implied_type(s);
        if (!types && !implied) return use_common(c, C_VALUE), memcpy(name, "json-value", 11), true;
        size_t n = json_is_array(types) ? json_array_size(types) : 1;
        if (!n) return sub_path(p, path, "type"), invalid(c, p, "must not be empty");
        ok = true;
        for (size_t i = 0; ok && i < n; i++) {
            const json_t *t = json_is_array(types) ? json_array_get(types, i) : types;
            if (t && !json_is_string(t)) return sub_path(p, path, "type"), invalid(c, p, "must be a string or an array of strings");
            ok = (i == 0 || ryot_buf_append(&b, " | ", 3) || oom(c)) &&
                 compile_type(c, s, t ? json_string_value(t) : implied, path, depth, &b);
        }
    } else if (!strcmp(combinator, "const")) {
        const json_t *k = json_object_get(s, "const");
        if (types && !has_type(k, types)) return sub_path(p, path, "const"), invalid(c, p, "does not have the schema's type");
        ok = put_json_lit(c, &b, k);
    } else if (!strcmp(combinator, "allOf")) {
        const json_t *all = json_object_get(s, "allOf");
        sub_path(p, path, "allOf");
        if (!json_is_array(all) || json_array_size(all) != 1)
            return ryot_buf_free(&b), fail(c, RYOT_ERR_UNSUPPORTED, p, "%s", "only allOf with one schema is supported");
        rname r;
        char ip[PATH_MAX_LEN];
        path_printf(ip, "%s[0]", p);
        ok = compile(c, json_array_get(all, 0), ip, depth + 1, r) && (ryot_buf_append(&b, r, strlen(r)) || oom(c));
    } else {
        ok = compile_alts(c, s, combinator, path, depth, &b);
    }
    if (!ok) return ryot_buf_free(&b), false;
    new_name(c, name);
    return emit_rule(c, name, &b);
}

ryot_status grammar_schema_to_text(const json_t *schema, char **text, ryot_error *err) {
    *text = NULL;
    sc c = {.root = schema, .err = err};
    rname top;
    bool ok = compile(&c, schema, "schema", 0, top) && put_common(&c) &&
              (ryot_buf_printf(&c.out, "root ::= %s\n", top) || oom(&c));
    for (size_t i = 0; i < c.n_refs; i++) free(c.refs[i].ref);
    free(c.refs);
    if (!ok) {
        ryot_buf_free(&c.out);
        return err ? err->code : RYOT_ERR_INVALID;
    }
    *text = c.out.data;
    return RYOT_OK;
}

ryot_status grammar_from_schema(const json_t *schema, grammar **out, ryot_error *err) {
    char *text;
    ryot_status st = grammar_schema_to_text(schema, &text, err);
    if (st != RYOT_OK) return st;
    st = grammar_parse(text, strlen(text), out, err);
    /* The text is ours, so two checks of grammar_parse are the schema's
     * fault: left recursion (a $ref cycle, or a pattern repeating what can
     * be empty) and a root with no finite sentence (required recursion);
     * anything else is a bug in this file, still reported. */
    if (st == RYOT_ERR_INVALID && err && strstr(err->msg, "left-recursive"))
        st = ryot_fail(err, RYOT_ERR_INVALID,
                       "schema: a $ref cycle that consumes no input, or a pattern that repeats what can be empty");
    else if (st == RYOT_ERR_INVALID && err && strstr(err->msg, "no finite"))
        st = ryot_fail(err, RYOT_ERR_INVALID,
                       "schema: no finite JSON value satisfies it (every value would recurse through a required $ref)");
    else if (st != RYOT_OK)
        ryot_error_prefix(err, "schema: internal grammar error: ");
    free(text);
    return st;
}

ryot_status grammar_json_object(grammar **out, ryot_error *err) {
    json_t *s = json_pack("{s:s}", "type", "object");
    if (!s) return ryot_fail(err, RYOT_ERR_NOMEM, "schema: out of memory");
    ryot_status st = grammar_from_schema(s, out, err);
    json_decref(s);
    return st;
}
