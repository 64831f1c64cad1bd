/* Chat template lexer: the source (newlines already normalized to \n) into
 * text and tag tokens, with jinja2's whitespace rules for trim_blocks=True and
 * lstrip_blocks=True:
 *   - "{%-", "{{-", "{#-" strip all whitespace before the tag; "-%}", "-}}",
 *     "-#}" all whitespace after it;
 *   - otherwise a block or comment tag that has only spaces/tabs between the
 *     start of its line and itself takes them away (lstrip_blocks), unless
 *     written "{%+" / "{#+";
 *   - "%}" and "#}" swallow one newline right after them (trim_blocks),
 *     unless written "+%}" / "+#}".
 * Inside a tag, "}}" and "%}" only end it when every bracket opened in it is
 * closed, as in jinja2 (so "{{ {'a': {'b': 1}} }}" works). */
#include "template/impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BRACKETS 256

typedef struct lexer {
    const char *src;
    size_t len, pos;
    int line;
    ryot_arena *arena;
    ct_token *toks;
    size_t n, cap;
    ryot_error *err;
} lexer;

static ryot_status lex_fail(lexer *L, const char *what) {
    return ryot_fail(L->err, RYOT_ERR_FORMAT, "chat template line %d: %s", L->line, what);
}

static ct_token *push(lexer *L, ct_ttype type) {
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 64;
        ct_token *t = realloc(L->toks, cap * sizeof *t);
        if (!t) return NULL;
        L->toks = t;
        L->cap = cap;
    }
    ct_token *t = &L->toks[L->n++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->line = L->line;
    return t;
}

static void count_lines(lexer *L, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        if (L->src[i] == '\n') L->line++;
}

/* Skips Python whitespace from pos; returns the new position. */
static size_t skip_space(const char *s, size_t len, size_t pos) {
    size_t k;
    while (pos < len && (k = ct_space_at(s + pos, len - pos)) > 0) pos += k;
    return pos;
}

/* True when s[from..to) is non-empty and all whitespace. */
static bool all_space(const char *s, size_t from, size_t to) {
    if (from >= to) return false;
    return skip_space(s, to, from) == to;
}

/* End of s[0..n) with trailing whitespace removed. */
static size_t rstrip_len(const char *s, size_t n) {
    /* walk forwards, remembering where the last non-space character ended */
    size_t end = 0, i = 0;
    while (i < n) {
        size_t k = ct_space_at(s + i, n - i);
        if (k) {
            i += k;
        } else {
            uint32_t cp;
            i += ct_utf8_next(s + i, n - i, &cp);
            end = i;
        }
    }
    return end;
}

static bool starts(const lexer *L, size_t pos, const char *lit) {
    size_t n = strlen(lit);
    return pos + n <= L->len && memcmp(L->src + pos, lit, n) == 0;
}

/* ---------------------------------------------------------------- tag contents */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes a string literal body (Python unicode-escape rules: \n \t \\ \'
 * \xHH \uHHHH \UHHHHHHHH \ooo ...; an unknown escape stays as written). */
static ryot_status lex_string(lexer *L, char quote, ct_token *t) {
    size_t start = L->pos + 1, i = start;
    while (i < L->len && L->src[i] != quote) {
        if (L->src[i] == '\\') i++;
        i++;
    }
    if (i >= L->len) return lex_fail(L, "unterminated string");
    size_t body = i - start;
    char *out = ryot_arena_alloc(L->arena, body + 1);
    if (!out) return ryot_fail(L->err, RYOT_ERR_NOMEM, "chat template: out of memory");
    size_t o = 0;
    for (size_t j = start; j < i;) {
        char c = L->src[j];
        if (c != '\\') {
            out[o++] = c;
            j++;
            continue;
        }
        char e = L->src[j + 1];
        j += 2;
        switch (e) {
        case '\n': break;
        case '\\': out[o++] = '\\'; break;
        case '\'': out[o++] = '\''; break;
        case '"': out[o++] = '"'; break;
        case 'a': out[o++] = '\a'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'v': out[o++] = '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < nd; k++) {
                int h = j + (size_t)k < i ? hexval(L->src[j + k]) : -1;
                if (h < 0) return lex_fail(L, "truncated \\x, \\u or \\U escape in a string");
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10FFFF) return lex_fail(L, "\\U escape out of range in a string");
            j += (size_t)nd;
            /* the escape is at most as long as its UTF-8 encoding */
            o += ct_utf8_put(out + o, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && j < i && L->src[j] >= '0' && L->src[j] <= '7'; k++, j++)
                    cp = cp * 8 + (uint32_t)(L->src[j] - '0');
                o += ct_utf8_put(out + o, cp);
            } else if (e == 'N') {
                return lex_fail(L, "\\N{...} escapes are not supported");
            } else {
                out[o++] = '\\';
                j--; /* keep the character after the backslash as text */
            }
        }
    }
    out[o] = 0;
    t->s = (ct_str){out, o};
    count_lines(L, L->pos, i + 1);
    L->pos = i + 1;
    return RYOT_OK;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_name(char c) { return is_name0(c) || is_digit(c); }

/* digits with single underscores between them: returns the end, or start if none */
static size_t scan_digits(const lexer *L, size_t p) {
    size_t s = p;
    if (p >= L->len || !is_digit(L->src[p])) return s;
    p++;
    for (;;) {
        if (p < L->len && is_digit(L->src[p])) {
            p++;
        } else if (p + 1 < L->len && L->src[p] == '_' && is_digit(L->src[p + 1])) {
            p += 2;
        } else {
            return p;
        }
    }
}

static ryot_status lex_number(lexer *L) {
    size_t p = L->pos;
    size_t d = scan_digits(L, p);
    /* float: digits (.digits)? (e[+-]?digits)? with at least one of the two parts;
     * jinja2 only reads it when the number does not follow a '.' ("x.0.1") */
    bool after_dot = p > 0 && L->src[p - 1] == '.';
    size_t q = d;
    bool frac = false, expo = false;
    if (!after_dot) {
        if (q + 1 < L->len && L->src[q] == '.' && is_digit(L->src[q + 1])) {
            q = scan_digits(L, q + 1);
            frac = true;
        }
        if (q < L->len && (L->src[q] == 'e' || L->src[q] == 'E')) {
            size_t r = q + 1;
            if (r < L->len && (L->src[r] == '+' || L->src[r] == '-')) r++;
            size_t e = scan_digits(L, r);
            if (e > r) {
                q = e;
                expo = true;
            }
        }
    }
    if (frac || expo) {
        char buf[128];
        size_t k = 0;
        for (size_t i = p; i < q && k < sizeof buf - 1; i++)
            if (L->src[i] != '_') buf[k++] = L->src[i];
        buf[k] = 0;
        ct_token *t = push(L, T_FLOAT);
        if (!t) return ryot_fail(L->err, RYOT_ERR_NOMEM, "chat template: out of memory");
        t->f = strtod(buf, NULL);
        L->pos = q;
        return RYOT_OK;
    }
    /* integers: 0x.. 0o.. 0b.., or decimal (no leading zeros except 0, 00...) */
    int base = 10;
    size_t s = p;
    if (L->src[p] == '0' && p + 1 < L->len) {
        char c = L->src[p + 1] | 0x20;
        if (c == 'x') base = 16;
        else if (c == 'o') base = 8;
        else if (c == 'b') base = 2;
        if (base != 10) s = p + 2;
    }
    uint64_t v = 0;
    size_t i = s;
    bool any = false;
    for (; i < L->len; i++) {
        char c = L->src[i];
        if (c == '_' && i + 1 < L->len && hexval(L->src[i + 1]) >= 0 && hexval(L->src[i + 1]) < base &&
            (any || base != 10)) continue;
        int h = hexval(c);
        if (h < 0 || h >= base || (base == 10 && !is_digit(c))) break;
        if (v > (UINT64_MAX - (uint64_t)h) / (uint64_t)base || v * (uint64_t)base + (uint64_t)h > INT64_MAX)
            return lex_fail(L, "integer literal too large");
        v = v * (uint64_t)base + (uint64_t)h;
        any = true;
    }
    if (!any) {
        /* "0x" with no digits: jinja2 reads 0 then the name "x" */
        i = p + 1;
        v = 0;
    } else if (base == 10 && L->src[p] == '0' && v != 0) {
        return lex_fail(L, "leading zeros in a decimal integer literal");
    }
    ct_token *t = push(L, T_INT);
    if (!t) return ryot_fail(L->err, RYOT_ERR_NOMEM, "chat template: out of memory");
    t->i = (int64_t)v;
    L->pos = i;
    return RYOT_OK;
}

static const struct {
    const char *s;
    ct_op op;
} ops[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW}, {"==", OP_EQ}, {"!=", OP_NE}, {">=", OP_GE}, {"<=", OP_LE},
    {"+", OP_ADD}, {"-", OP_SUB}, {"/", OP_DIV}, {"*", OP_MUL}, {"%", OP_MOD}, {"~", OP_TILDE},
    {"[", OP_LBRACKET}, {"]", OP_RBRACKET}, {"(", OP_LPAREN}, {")", OP_RPAREN}, {"{", OP_LBRACE},
    {"}", OP_RBRACE}, {">", OP_GT}, {"<", OP_LT}, {"=", OP_ASSIGN}, {".", OP_DOT}, {":", OP_COLON},
    {"|", OP_PIPE}, {",", OP_COMMA}, {";", OP_SEMI},
};

/* Tokens of one tag, up to and including its end. */
static ryot_status lex_tag(lexer *L, bool block, bool *line_starting) {
    char stack[MAX_BRACKETS];
    int depth = 0;
    const char *end = block ? "%}" : "}}";
    for (;;) {
        if (L->pos >= L->len)
            return lex_fail(L, block ? "unexpected end of template inside a {% %} tag"
                                     : "unexpected end of template inside a {{ }} tag");
        if (depth == 0) {
            bool plus = block && starts(L, L->pos, "+%}");
            bool minus = L->src[L->pos] == '-' && starts(L, L->pos + 1, end);
            if (plus || minus || starts(L, L->pos, end)) {
                if (!push(L, block ? T_BLOCK_END : T_VAR_END))
                    return ryot_fail(L->err, RYOT_ERR_NOMEM, "chat template: out of memory");
                size_t after = L->pos + 2 + (plus || minus);
                size_t stop = after;
                if (minus) stop = skip_space(L->src, L->len, after);
                else if (block && !plus && after < L->len && L->src[after] == '\n') stop = after + 1;
                *line_starting = stop > L->pos && L->src[stop - 1] == '\n';
                count_lines(L, L->pos, stop);
                L->pos = stop;
                return RYOT_OK;
            }
        }
        size_t k = ct_space_at(L->src + L->pos, L->len - L->pos);
        if (k) {
            count_lines(L, L->pos, L->pos + k);
            L->pos += k;
            continue;
        }
        char c = L->src[L->pos];
        if (is_digit(c)) {
            ryot_status st = lex_number(L);
            if (st) return st;
            continue;
        }
        if (is_name0(c)) {
            size_t e = L->pos;
            while (e < L->len && is_name(L->src[e])) e++;
            ct_token *t = push(L, T_NAME);
            if (!t) return ryot_fail(L->err, RYOT_ERR_NOMEM, "chat template: out of memory");
            t->s = (ct_str){L->src + L->pos, e - L->pos};
            L->pos = e;
            continue;
        }
        if (c == '\'' || c == '"') {
            ct_token *t = push(L, T_STRING);
            if (!t) return ryot_fail(L->err, RYOT_ERR_NOMEM, "chat template: out of memory");
            ryot_status st = lex_string(L, c, t);
            if (st) return st;
            continue;
        }
        size_t oi = 0;
        while (oi < sizeof ops / sizeof ops[0] && !starts(L, L->pos, ops[oi].s)) oi++;
        if (oi == sizeof ops / sizeof ops[0]) {
            return ryot_fail(L->err, RYOT_ERR_FORMAT, "chat template line %d: unexpected character '%c' (0x%02x)",
                             L->line, c >= 0x20 && c < 0x7f ? c : '?', (unsigned char)c);
        }
        ct_op op = ops[oi].op;
        if (op == OP_LPAREN || op == OP_LBRACKET || op == OP_LBRACE) {
            if (depth == MAX_BRACKETS) return lex_fail(L, "brackets nested too deeply");
            stack[depth++] = (char)op;
        } else if (op == OP_RPAREN || op == OP_RBRACKET || op == OP_RBRACE) {
            ct_op want = op == OP_RPAREN ? OP_LPAREN : op == OP_RBRACKET ? OP_LBRACKET : OP_LBRACE;
            if (depth == 0 || stack[depth - 1] != (char)want) return lex_fail(L, "unbalanced ')', ']' or '}'");
            depth--;
        }
        ct_token *t = push(L, T_OP);
        if (!t) return ryot_fail(L->err, RYOT_ERR_NOMEM, "chat template: out of memory");
        t->op = (uint8_t)op;
        L->pos += strlen(ops[oi].s);
    }
}

/* Finds the end of a comment from pos: returns the position after it. */
static ryot_status lex_comment(lexer *L, bool *line_starting) {
    for (size_t p = L->pos; p < L->len; p++) {
        size_t stop;
        if (starts(L, p, "+#}")) {
            stop = p + 3;
        } else if (starts(L, p, "-#}")) {
            stop = skip_space(L->src, L->len, p + 3);
        } else if (starts(L, p, "#}")) {
            stop = p + 2;
            if (stop < L->len && L->src[stop] == '\n') stop++;
        } else {
            continue;
        }
        *line_starting = L->src[stop - 1] == '\n';
        count_lines(L, L->pos, stop);
        L->pos = stop;
        return RYOT_OK;
    }
    return lex_fail(L, "unterminated comment (missing '#}')");
}

ryot_status ct_lex(const char *src, size_t len, ryot_arena *a, ct_token **toks, size_t *n, ryot_error *err) {
    lexer L = {.src = src, .len = len, .line = 1, .arena = a, .err = err};
    bool line_starting = true;
    ryot_status st = RYOT_OK;
    while (L.pos < L.len) {
        /* the earliest "{{", "{%" or "{#" */
        size_t t = L.pos;
        int kind = 0; /* '{', '%', '#' */
        for (; t + 1 < L.len; t++) {
            if (src[t] == '{' && (src[t + 1] == '{' || src[t + 1] == '%' || src[t + 1] == '#')) {
                kind = src[t + 1];
                break;
            }
        }
        if (!kind) t = L.len;
        size_t text_end = t;
        char sign = 0;
        if (kind && t + 2 < L.len && (src[t + 2] == '-' || src[t + 2] == '+')) sign = src[t + 2];
        if (kind) {
            if (sign == '-') {
                text_end = L.pos + rstrip_len(src + L.pos, t - L.pos);
            } else if (sign != '+' && kind != '{') {
                /* lstrip_blocks: only whitespace between the line start and the tag */
                size_t l = t;
                while (l > L.pos && src[l - 1] != '\n') l--;
                if ((l > L.pos || line_starting) && all_space(src, l, t)) text_end = l;
            }
        }
        if (text_end > L.pos) {
            ct_token *tk = push(&L, T_TEXT);
            if (!tk) goto nomem;
            tk->s = (ct_str){src + L.pos, text_end - L.pos};
        }
        count_lines(&L, L.pos, t);
        if (!kind) {
            L.pos = L.len;
            break;
        }
        L.pos = t + 2 + (sign != 0);
        if (kind == '#') {
            st = lex_comment(&L, &line_starting);
        } else {
            if (!push(&L, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN)) goto nomem;
            st = lex_tag(&L, kind == '%', &line_starting);
        }
        if (st) goto fail;
    }
    if (!push(&L, T_EOF)) goto nomem;
    *toks = L.toks;
    *n = L.n;
    return RYOT_OK;
nomem:
    st = ryot_fail(err, RYOT_ERR_NOMEM, "chat template: out of memory");
fail:
    free(L.toks);
    *toks = NULL;
    *n = 0;
    return st;
}
