/* Chat template values: the arena, UTF-8 and case helpers, and Python's str(),
 * repr(), json.dumps, == and < over template values. */
#include "template/impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper values than this (only reachable by building them in a loop) are
 * refused by repr/json and compare unequal, instead of overflowing the stack. */
#define VALUE_MAX_DEPTH 64

/* ---------------------------------------------------------------- errors */

bool ct_error(ct_render *r, const char *fmt, ...) {
    if (r->err->code) return false; /* keep the first */
    char msg[RYOT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ryot_fail(r->err, RYOT_ERR_INVALID, "chat template line %d: %s", r->line, msg);
    return false;
}

bool ct_nomem(ct_render *r) {
    if (r->arena.over || r->too_big) return ct_error(r, "the render needs more than %u MiB of memory", CHAT_TEMPLATE_MAX_MEMORY >> 20);
    if (!r->err->code) ryot_fail(r->err, RYOT_ERR_NOMEM, "chat template: out of memory");
    return false;
}

bool ct_charge(ct_render *r, uint64_t n) {
    r->steps += n;
    if (r->steps > CHAT_TEMPLATE_MAX_STEPS)
        return ct_error(r, "the render takes more than %d evaluation steps", CHAT_TEMPLATE_MAX_STEPS);
    return true;
}

void *ct_ralloc(ct_render *r, size_t n) {
    void *p = ryot_arena_alloc(&r->arena, n);
    if (!p) ct_nomem(r);
    return p;
}

/* ---------------------------------------------------------------- strings */

bool ct_str_eq(ct_str a, const char *b) {
    size_t n = strlen(b);
    return a.n == n && memcmp(a.p, b, n) == 0;
}

size_t ct_utf8_next(const char *p, size_t n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)p;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else goto bad;
    if (n < len) goto bad;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) goto bad;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto bad;
    *cp = v;
    return len;
bad:
    *cp = 0xDC00 + c;
    return 1;
}

size_t ct_utf8_len(ct_str s) {
    size_t n = 0;
    uint32_t cp;
    for (size_t i = 0; i < s.n; n++) i += ct_utf8_next(s.p + i, s.n - i, &cp);
    return n;
}

size_t ct_utf8_put(char *dst, uint32_t cp) {
    unsigned char *d = (unsigned char *)dst;
    if (cp >= 0xDC80 && cp <= 0xDCFF) { /* an invalid byte, as read */
        d[0] = (unsigned char)(cp - 0xDC00);
        return 1;
    }
    if (cp < 0x80) {
        d[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (unsigned char)(0xC0 | (cp >> 6));
        d[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (unsigned char)(0xE0 | (cp >> 12));
        d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (unsigned char)(0xF0 | (cp >> 18));
    d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

bool ct_is_space(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t ct_space_at(const char *p, size_t n) {
    if (!n) return 0;
    uint32_t cp;
    size_t k = ct_utf8_next(p, n, &cp);
    return ct_is_space(cp) ? k : 0;
}

/* Simple (one to one) case mappings for the scripts named in chat_template.h. */
uint32_t ct_upper(uint32_t c) {
    if (c < 0x80) return c >= 'a' && c <= 'z' ? c - 32 : c;
    if (c == 0xB5) return 0x39C;
    if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
    if (c == 0xFF) return 0x178;
    if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
        return c & ~1u;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c : c - 1;
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if ((c >= 0x3B1 && c <= 0x3C1) || (c >= 0x3C3 && c <= 0x3CB)) return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if (c == 0x3AC) return 0x386;
    if (c >= 0x3AD && c <= 0x3AF) return c - 37;
    if (c == 0x3CC) return 0x38C;
    if (c == 0x3CD || c == 0x3CE) return c - 63;
    if (c >= 0x430 && c <= 0x44F) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    return c;
}

uint32_t ct_lower(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c == 0x178) return 0xFF;
    if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c | 1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
    if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB)) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

bool ct_is_cased(uint32_t c) {
    return ct_upper(c) != c || ct_lower(c) != c || c == 0xDF || c == 0x138 || c == 0x149 || c == 0x130;
}

/* ---------------------------------------------------------------- buffers */

bool ct_buf_put(ct_render *r, ct_buf *b, const char *s, size_t n) {
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap - b->n < n + 1) {
            if (cap > CHAT_TEMPLATE_MAX_MEMORY) return ct_too_big(r);
            cap *= 2;
        }
        char *p = ryot_arena_alloc(&r->arena, cap);
        if (!p) return ct_nomem(r);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return ct_charge(r, 1 + n / 64);
}

bool ct_buf_puts(ct_render *r, ct_buf *b, const char *s) { return ct_buf_put(r, b, s, strlen(s)); }

/* ---------------------------------------------------------------- str / repr / json */

const char *ct_kind_name(const ct_value *v) {
    switch (v->kind) {
    case CT_UNDEF: return "Undefined";
    case CT_NONE: return "NoneType";
    case CT_BOOL: return "bool";
    case CT_INT: return "int";
    case CT_FLOAT: return "float";
    case CT_STR: return "str";
    case CT_LIST: return "list";
    case CT_TUPLE: return "tuple";
    case CT_DICT: return "dict";
    case CT_NS: return "Namespace";
    case CT_LOOP: return "LoopContext";
    case CT_FUNC: return "function";
    default: return "builtin_function_or_method";
    }
}

bool ct_truthy(const ct_value *v) {
    switch (v->kind) {
    case CT_UNDEF:
    case CT_NONE: return false;
    case CT_BOOL: return v->b;
    case CT_INT: return v->i != 0;
    case CT_FLOAT: return v->f != 0.0;
    case CT_STR: return v->s.n != 0;
    case CT_LIST:
    case CT_TUPLE: return v->l->n != 0;
    case CT_DICT: return v->d->n != 0;
    default: return true;
    }
}

void ct_format_float(double f, char *buf, size_t size) {
    if (isnan(f)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, size, f < 0 ? "-inf" : "inf");
        return;
    }
    /* the shortest digits that read back as f, then Python's layout:
     * positional for exponents -4..15, else d.ddde+XX */
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg) p++;
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    int e = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char out[64];
    int o = 0;
    if (neg) out[o++] = '-';
    if (e < -4 || e >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    } else if (e < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -e - 1; i++) out[o++] = '0';
        for (int i = 0; i < nd; i++) out[o++] = digits[i];
    } else {
        for (int i = 0; i <= e; i++) out[o++] = i < nd ? digits[i] : '0';
        out[o++] = '.';
        if (nd > e + 1) {
            for (int i = e + 1; i < nd; i++) out[o++] = digits[i];
        } else {
            out[o++] = '0';
        }
    }
    out[o] = 0;
    snprintf(buf, size, "%s", out);
}

static bool write_scalar(ct_render *r, ct_buf *b, const ct_value *v) {
    char tmp[64];
    switch (v->kind) {
    case CT_NONE: return ct_buf_puts(r, b, "None");
    case CT_BOOL: return ct_buf_puts(r, b, v->b ? "True" : "False");
    case CT_INT: snprintf(tmp, sizeof tmp, "%" PRId64, v->i); return ct_buf_puts(r, b, tmp);
    case CT_FLOAT: ct_format_float(v->f, tmp, sizeof tmp); return ct_buf_puts(r, b, tmp);
    case CT_FUNC: return ct_buf_puts(r, b, "<built-in function>");
    case CT_METHOD: return ct_buf_puts(r, b, "<built-in method>");
    case CT_LOOP:
        snprintf(tmp, sizeof tmp, "<LoopContext %" PRId64 "/%" PRId64 ">", v->loop->index0 + 1, v->loop->length);
        return ct_buf_puts(r, b, tmp);
    default: return ct_error(r, "internal: not a scalar");
    }
}

static bool repr_string(ct_render *r, ct_buf *b, ct_str s) {
    bool has_sq = memchr(s.p, '\'', s.n) != NULL, has_dq = memchr(s.p, '"', s.n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if (!ct_buf_put(r, b, &q, 1)) return false;
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        size_t k = ct_utf8_next(s.p + i, s.n - i, &cp);
        char esc[16];
        const char *e = NULL;
        if (cp == '\\') e = "\\\\";
        else if (cp == (uint32_t)q) e = q == '\'' ? "\\'" : "\\\"";
        else if (cp == '\n') e = "\\n";
        else if (cp == '\r') e = "\\r";
        else if (cp == '\t') e = "\\t";
        else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) {
            snprintf(esc, sizeof esc, "\\x%02x", cp);
            e = esc;
        } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
            snprintf(esc, sizeof esc, "\\udc%02x", cp & 0xFF);
            e = esc;
        } else if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
                   (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF) {
            snprintf(esc, sizeof esc, "\\u%04x", cp);
            e = esc;
        }
        if (!(e ? ct_buf_puts(r, b, e) : ct_buf_put(r, b, s.p + i, k))) return false;
        i += k;
    }
    return ct_buf_put(r, b, &q, 1);
}

bool ct_write_repr(ct_render *r, ct_buf *b, const ct_value *v, int depth) {
    if (depth > VALUE_MAX_DEPTH) return ct_error(r, "value nested too deeply to print");
    switch (v->kind) {
    case CT_UNDEF: return ct_buf_puts(r, b, "Undefined");
    case CT_STR: return repr_string(r, b, v->s);
    case CT_LIST:
    case CT_TUPLE: {
        if (!ct_buf_puts(r, b, v->kind == CT_LIST ? "[" : "(")) return false;
        for (size_t i = 0; i < v->l->n; i++) {
            if (i && !ct_buf_puts(r, b, ", ")) return false;
            if (!ct_write_repr(r, b, &v->l->v[i], depth + 1)) return false;
        }
        if (v->kind == CT_TUPLE && v->l->n == 1 && !ct_buf_puts(r, b, ",")) return false;
        return ct_buf_puts(r, b, v->kind == CT_LIST ? "]" : ")");
    }
    case CT_DICT:
    case CT_NS: {
        if (v->kind == CT_NS && !ct_buf_puts(r, b, "<Namespace ")) return false;
        if (!ct_buf_puts(r, b, "{")) return false;
        for (size_t i = 0; i < v->d->n; i++) {
            if (i && !ct_buf_puts(r, b, ", ")) return false;
            if (!ct_write_repr(r, b, &v->d->k[i], depth + 1) || !ct_buf_puts(r, b, ": ") ||
                !ct_write_repr(r, b, &v->d->v[i], depth + 1))
                return false;
        }
        return ct_buf_puts(r, b, v->kind == CT_NS ? "}>" : "}");
    }
    default: return write_scalar(r, b, v);
    }
}

bool ct_write_str(ct_render *r, ct_buf *b, const ct_value *v, int depth) {
    if (v->kind == CT_UNDEF) return true;
    if (v->kind == CT_STR) return ct_buf_put(r, b, v->s.p, v->s.n);
    return ct_write_repr(r, b, v, depth);
}

bool ct_to_str(ct_render *r, const ct_value *v, ct_str *out) {
    if (v->kind == CT_STR) {
        *out = v->s;
        return true;
    }
    if (v->kind == CT_UNDEF) {
        *out = (ct_str){"", 0};
        return true;
    }
    ct_buf b = {0};
    if (!ct_write_str(r, &b, v, 0)) return false;
    *out = (ct_str){b.p ? b.p : "", b.n};
    return true;
}

static bool json_string(ct_render *r, ct_buf *b, ct_str s) {
    if (!ct_buf_put(r, b, "\"", 1)) return false;
    size_t run = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (!ct_buf_put(r, b, s.p + run, i - run)) return false;
        char esc[8];
        switch (c) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c);
        }
        if (!ct_buf_puts(r, b, esc)) return false;
        run = i + 1;
    }
    return ct_buf_put(r, b, s.p + run, s.n - run) && ct_buf_put(r, b, "\"", 1);
}

static bool json_newline(ct_render *r, ct_buf *b, int indent, int level) {
    if (!ct_buf_put(r, b, "\n", 1)) return false;
    for (int i = 0; i < indent * level; i++)
        if (!ct_buf_put(r, b, " ", 1)) return false;
    return true;
}

static bool json_key(ct_render *r, ct_buf *b, const ct_value *k) {
    char tmp[64];
    switch (k->kind) {
    case CT_STR: return json_string(r, b, k->s);
    case CT_NONE: return ct_buf_puts(r, b, "\"null\"");
    case CT_BOOL: return ct_buf_puts(r, b, k->b ? "\"true\"" : "\"false\"");
    case CT_INT: snprintf(tmp, sizeof tmp, "\"%" PRId64 "\"", k->i); return ct_buf_puts(r, b, tmp);
    case CT_FLOAT:
        ct_format_float(k->f, tmp + 1, sizeof tmp - 2);
        tmp[0] = '"';
        strcat(tmp, "\"");
        return ct_buf_puts(r, b, tmp);
    default: return ct_error(r, "tojson: keys must be str, int, float, bool or None, not %s", ct_kind_name(k));
    }
}

static int cmp_keys(const void *x, const void *y) {
    const ct_value *a = *(const ct_value *const *)x, *b = *(const ct_value *const *)y;
    size_t n = a->s.n < b->s.n ? a->s.n : b->s.n;
    int c = memcmp(a->s.p, b->s.p, n);
    return c ? c : (a->s.n > b->s.n) - (a->s.n < b->s.n);
}

bool ct_write_json(ct_render *r, ct_buf *b, const ct_value *v, int indent, bool sort_keys, int level) {
    if (level > VALUE_MAX_DEPTH) return ct_error(r, "tojson: value nested too deeply");
    char tmp[64];
    switch (v->kind) {
    case CT_NONE: return ct_buf_puts(r, b, "null");
    case CT_BOOL: return ct_buf_puts(r, b, v->b ? "true" : "false");
    case CT_INT: snprintf(tmp, sizeof tmp, "%" PRId64, v->i); return ct_buf_puts(r, b, tmp);
    case CT_FLOAT:
        if (isnan(v->f)) return ct_buf_puts(r, b, "NaN");
        if (isinf(v->f)) return ct_buf_puts(r, b, v->f < 0 ? "-Infinity" : "Infinity");
        ct_format_float(v->f, tmp, sizeof tmp);
        return ct_buf_puts(r, b, tmp);
    case CT_STR: return json_string(r, b, v->s);
    case CT_LIST:
    case CT_TUPLE:
        if (!v->l->n) return ct_buf_puts(r, b, "[]");
        if (!ct_buf_puts(r, b, "[")) return false;
        for (size_t i = 0; i < v->l->n; i++) {
            if (i && !ct_buf_puts(r, b, indent >= 0 ? "," : ", ")) return false;
            if (indent >= 0 && !json_newline(r, b, indent, level + 1)) return false;
            if (!ct_write_json(r, b, &v->l->v[i], indent, sort_keys, level + 1)) return false;
        }
        if (indent >= 0 && !json_newline(r, b, indent, level)) return false;
        return ct_buf_puts(r, b, "]");
    case CT_DICT: {
        const ct_dict *d = v->d;
        if (!d->n) return ct_buf_puts(r, b, "{}");
        const ct_value **order = ct_ralloc(r, d->n * sizeof *order);
        if (!order) return false;
        for (size_t i = 0; i < d->n; i++) order[i] = &d->k[i];
        if (sort_keys) {
            for (size_t i = 0; i < d->n; i++)
                if (d->k[i].kind != CT_STR) return ct_error(r, "tojson: sort_keys needs string keys");
            if (!ct_charge(r, d->n * 8)) return false;
            qsort(order, d->n, sizeof *order, cmp_keys);
        }
        if (!ct_buf_puts(r, b, "{")) return false;
        for (size_t i = 0; i < d->n; i++) {
            size_t j = (size_t)(order[i] - d->k);
            if (i && !ct_buf_puts(r, b, indent >= 0 ? "," : ", ")) return false;
            if (indent >= 0 && !json_newline(r, b, indent, level + 1)) return false;
            if (!json_key(r, b, &d->k[j]) || !ct_buf_puts(r, b, ": ") ||
                !ct_write_json(r, b, &d->v[j], indent, sort_keys, level + 1))
                return false;
        }
        if (indent >= 0 && !json_newline(r, b, indent, level)) return false;
        return ct_buf_puts(r, b, "}");
    }
    default: return ct_error(r, "tojson: object of type %s is not JSON serializable", ct_kind_name(v));
    }
}

/* ---------------------------------------------------------------- comparisons */

static bool is_number(const ct_value *v) { return v->kind == CT_BOOL || v->kind == CT_INT || v->kind == CT_FLOAT; }

/* -1, 0, 1 for numbers (NaN: 2, unordered) */
static int num_cmp(const ct_value *a, const ct_value *b) {
    if (a->kind != CT_FLOAT && b->kind != CT_FLOAT) {
        int64_t x = a->kind == CT_BOOL ? a->b : a->i, y = b->kind == CT_BOOL ? b->b : b->i;
        return (x > y) - (x < y);
    }
    double x = a->kind == CT_FLOAT ? a->f : a->kind == CT_BOOL ? a->b : (double)a->i;
    double y = b->kind == CT_FLOAT ? b->f : b->kind == CT_BOOL ? b->b : (double)b->i;
    if (x != x || y != y) return 2;
    return (x > y) - (x < y);
}

static int str_cmp(ct_str a, ct_str b) {
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return (a.n > b.n) - (a.n < b.n);
}

bool ct_equal(ct_render *r, const ct_value *a, const ct_value *b, int depth) {
    if (depth > VALUE_MAX_DEPTH) return false;
    if (is_number(a) && is_number(b)) return num_cmp(a, b) == 0;
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case CT_UNDEF:
    case CT_NONE: return true;
    case CT_STR: return a->s.n == b->s.n && (a->s.n == 0 || memcmp(a->s.p, b->s.p, a->s.n) == 0);
    case CT_LIST:
    case CT_TUPLE:
        if (a->l->n != b->l->n) return false;
        if (r) ct_charge(r, a->l->n);
        for (size_t i = 0; i < a->l->n; i++)
            if (!ct_equal(r, &a->l->v[i], &b->l->v[i], depth + 1)) return false;
        return true;
    case CT_DICT:
        if (a->d->n != b->d->n) return false;
        if (r) ct_charge(r, a->d->n * a->d->n);
        for (size_t i = 0; i < a->d->n; i++) {
            const ct_value *o = NULL;
            for (size_t j = 0; j < b->d->n && !o; j++)
                if (ct_equal(r, &a->d->k[i], &b->d->k[j], depth + 1)) o = &b->d->v[j];
            if (!o || !ct_equal(r, &a->d->v[i], o, depth + 1)) return false;
        }
        return true;
    case CT_NS:
    case CT_LOOP: return a->d == b->d;
    case CT_FUNC: return a->fn == b->fn;
    default: return false;
    }
}

bool ct_less(ct_render *r, const ct_value *a, const ct_value *b, bool *res, int depth) {
    if (depth > VALUE_MAX_DEPTH) return ct_error(r, "values nested too deeply to compare");
    if (a->kind == CT_UNDEF || b->kind == CT_UNDEF) {
        const ct_value *u = a->kind == CT_UNDEF ? a : b;
        return ct_error(r, "'%.*s' is undefined", (int)(u->s.n > 60 ? 60 : u->s.n), u->s.p ? u->s.p : "");
    }
    if (is_number(a) && is_number(b)) {
        *res = num_cmp(a, b) == -1;
        return true;
    }
    if (a->kind == CT_STR && b->kind == CT_STR) {
        *res = str_cmp(a->s, b->s) < 0;
        return true;
    }
    if (a->kind == b->kind && (a->kind == CT_LIST || a->kind == CT_TUPLE)) {
        size_t n = a->l->n < b->l->n ? a->l->n : b->l->n;
        if (!ct_charge(r, n)) return false;
        for (size_t i = 0; i < n; i++) {
            if (ct_equal(r, &a->l->v[i], &b->l->v[i], depth + 1)) continue;
            return ct_less(r, &a->l->v[i], &b->l->v[i], res, depth + 1);
        }
        *res = a->l->n < b->l->n;
        return true;
    }
    return ct_error(r, "'<' not supported between instances of '%s' and '%s'", ct_kind_name(a), ct_kind_name(b));
}

/* ---------------------------------------------------------------- containers */

ct_list *ct_list_new(ct_render *r, size_t n) {
    if (n > CHAT_TEMPLATE_MAX_MEMORY / sizeof(ct_value)) {
        ct_too_big(r);
        return NULL;
    }
    ct_list *l = ct_ralloc(r, sizeof *l);
    if (!l) return NULL;
    if (n && !(l->v = ct_ralloc(r, n * sizeof *l->v))) return NULL;
    l->n = n;
    if (!ct_charge(r, n)) return NULL;
    return l;
}

ct_dict *ct_dict_new(ct_render *r, size_t cap) {
    ct_dict *d = ct_ralloc(r, sizeof *d);
    if (!d) return NULL;
    if (cap) {
        d->k = ct_ralloc(r, cap * sizeof *d->k);
        d->v = ct_ralloc(r, cap * sizeof *d->v);
        if (!d->k || !d->v) return NULL;
        d->cap = cap;
    }
    return d;
}

const ct_value *ct_dict_get(ct_render *r, const ct_dict *d, const ct_value *k) {
    if (r && !ct_charge(r, d->n)) return NULL;
    for (size_t i = 0; i < d->n; i++)
        if (ct_equal(r, &d->k[i], k, 0)) return &d->v[i];
    return NULL;
}

const ct_value *ct_dict_get_str(const ct_dict *d, const char *key, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].kind == CT_STR && d->k[i].s.n == n && (n == 0 || memcmp(d->k[i].s.p, key, n) == 0))
            return &d->v[i];
    return NULL;
}

bool ct_dict_set(ct_render *r, ct_dict *d, ct_value k, ct_value v) {
    if (!ct_charge(r, d->n)) return false;
    for (size_t i = 0; i < d->n; i++) {
        if (ct_equal(r, &d->k[i], &k, 0)) {
            d->v[i] = v;
            return true;
        }
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        ct_value *nk = ct_ralloc(r, cap * sizeof *nk), *nv = ct_ralloc(r, cap * sizeof *nv);
        if (!nk || !nv) return false;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return true;
}

bool ct_iterate(ct_render *r, const ct_value *v, const ct_value **items, size_t *n) {
    switch (v->kind) {
    case CT_UNDEF:
        *items = NULL;
        *n = 0;
        return true;
    case CT_LIST:
    case CT_TUPLE:
        *items = v->l->v;
        *n = v->l->n;
        return true;
    case CT_DICT:
    case CT_NS:
        *items = v->d->k;
        *n = v->d->n;
        return true;
    case CT_STR: {
        size_t count = ct_utf8_len(v->s);
        ct_list *l = ct_list_new(r, count);
        if (!l) return false;
        uint32_t cp;
        for (size_t i = 0, j = 0; i < v->s.n; j++) {
            size_t k = ct_utf8_next(v->s.p + i, v->s.n - i, &cp);
            l->v[j] = ct_string(v->s.p + i, k);
            i += k;
        }
        *items = l->v;
        *n = count;
        return true;
    }
    default: return ct_error(r, "'%s' object is not iterable", ct_kind_name(v));
    }
}
