/* Chat template parser: tokens into a syntax tree (impl.h),
 * following jinja2's grammar and precedence, loosest first:
 *   a if c else b  >  or  >  and  >  not  >  comparisons, in, not in
 *   >  + -  >  ~  >  * / // %  >  **  >  unary - +  >  | filter, is test
 *   >  .attr [item] (call)  >  literals, names, ( )
 * so filters bind tighter than any binary operator ("a + b | trim" trims b),
 * and "-x | abs" is abs(-x).  Nesting is limited to CHAT_TEMPLATE_MAX_DEPTH. */
#include "template/impl.h"

#include <stdio.h>
#include <string.h>

typedef struct parser {
    const ct_token *t;
    size_t n, pos;
    ryot_arena *arena;
    int depth;
    ryot_error *err;
    ryot_status st; /* first error */
} parser;

static const ct_token *cur(const parser *P) { return &P->t[P->pos]; }
static const ct_token *peek(const parser *P, size_t k) {
    return P->pos + k < P->n ? &P->t[P->pos + k] : &P->t[P->n - 1];
}
static void advance(parser *P) {
    if (P->pos + 1 < P->n) P->pos++;
}

static const char *tok_desc(const ct_token *t, char *buf, size_t size) {
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_TEXT: return "text";
    case T_VAR_BEGIN: return "'{{'";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_BLOCK_END: return "'%}'";
    case T_NAME: snprintf(buf, size, "'%.*s'", (int)(t->s.n > 40 ? 40 : t->s.n), t->s.p); return buf;
    case T_STRING: return "a string";
    case T_INT: return "an integer";
    case T_FLOAT: return "a float";
    default: return "an operator";
    }
}

static void *fail(parser *P, const char *what) {
    if (!P->st) {
        char buf[64];
        P->st = ryot_fail(P->err, RYOT_ERR_FORMAT, "chat template line %d: %s, got %s", cur(P)->line, what,
                          tok_desc(cur(P), buf, sizeof buf));
    }
    return NULL;
}

static void *nomem(parser *P) {
    if (!P->st) P->st = ryot_fail(P->err, RYOT_ERR_NOMEM, "chat template: out of memory");
    return NULL;
}

static bool is_op(const parser *P, ct_op op) { return cur(P)->type == T_OP && cur(P)->op == op; }
static bool is_name(const parser *P, const char *name) {
    return cur(P)->type == T_NAME && ct_str_eq(cur(P)->s, name);
}
static bool skip_op(parser *P, ct_op op) {
    if (!is_op(P, op)) return false;
    advance(P);
    return true;
}
static bool skip_name(parser *P, const char *name) {
    if (!is_name(P, name)) return false;
    advance(P);
    return true;
}
static bool expect_op(parser *P, ct_op op, const char *what) {
    if (skip_op(P, op)) return true;
    fail(P, what);
    return false;
}

static ct_node *node(parser *P, ct_ntype type) {
    ct_node *n = ryot_arena_alloc(P->arena, sizeof *n);
    if (!n) return nomem(P);
    n->type = (uint8_t)type;
    n->line = cur(P)->line;
    return n;
}

/* Growable child list, copied into the arena when complete. */
typedef struct kids {
    ct_node **v;
    int n, cap;
} kids;

static bool kids_push(parser *P, kids *k, ct_node *n) {
    if (k->n == k->cap) {
        int cap = k->cap ? k->cap * 2 : 8;
        ct_node **v = ryot_arena_alloc(P->arena, (size_t)cap * sizeof *v);
        if (!v) {
            nomem(P);
            return false;
        }
        if (k->n) memcpy(v, k->v, (size_t)k->n * sizeof *v);
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = n;
    return true;
}

static bool enter(parser *P) {
    if (++P->depth > CHAT_TEMPLATE_MAX_DEPTH) {
        fail(P, "nesting too deep");
        return false;
    }
    return true;
}

static ct_node *parse_expr(parser *P, bool with_cond);
static ct_node *parse_unary(parser *P, bool with_filter);
static ct_node *parse_primary(parser *P);
static ct_node *parse_postfix(parser *P, ct_node *n);

/* "(" already consumed: arguments up to ")" */
static bool parse_call_args(parser *P, ct_node *n) {
    kids pos = {0}, kw = {0};
    ct_str *names = NULL;
    int n_names = 0, cap_names = 0;
    while (!is_op(P, OP_RPAREN)) {
        if (pos.n + kw.n > 0 && !expect_op(P, OP_COMMA, "expected ',' or ')' in the arguments")) return false;
        if (is_op(P, OP_RPAREN)) break;
        if (cur(P)->type == T_NAME && peek(P, 1)->type == T_OP && peek(P, 1)->op == OP_ASSIGN) {
            if (n_names == cap_names) {
                int cap = cap_names ? cap_names * 2 : 4;
                ct_str *v = ryot_arena_alloc(P->arena, (size_t)cap * sizeof *v);
                if (!v) return nomem(P), false;
                if (n_names) memcpy(v, names, (size_t)n_names * sizeof *v);
                names = v;
                cap_names = cap;
            }
            names[n_names++] = cur(P)->s;
            advance(P);
            advance(P);
            ct_node *e = parse_expr(P, true);
            if (!e || !kids_push(P, &kw, e)) return false;
        } else {
            if (kw.n) return fail(P, "positional argument after a keyword argument"), false;
            ct_node *e = parse_expr(P, true);
            if (!e || !kids_push(P, &pos, e)) return false;
        }
    }
    advance(P); /* ")" */
    for (int i = 0; i < kw.n; i++)
        if (!kids_push(P, &pos, kw.v[i])) return false;
    n->kids = pos.v;
    n->n_kids = pos.n;
    n->n_pos = pos.n - kw.n;
    n->kw = names;
    return true;
}

/* the name after "|" or "is" */
static bool parse_dotted(parser *P, ct_str *out) {
    if (cur(P)->type != T_NAME) return fail(P, "expected a filter or test name"), false;
    *out = cur(P)->s;
    advance(P);
    return true;
}

static ct_node *parse_filter_expr(parser *P, ct_node *n) {
    int links = 0;
    for (;; links++) {
        /* every link nests the tree one level deeper */
        if (!enter(P)) return NULL;
        if (is_op(P, OP_PIPE)) {
            advance(P);
            ct_node *f = node(P, N_FILTER);
            if (!f || !parse_dotted(P, &f->name)) return NULL;
            if (!ct_filter_known(f->name)) {
                char buf[96];
                snprintf(buf, sizeof buf, "unknown filter '%.*s'", (int)(f->name.n > 40 ? 40 : f->name.n),
                         f->name.p);
                P->pos--; /* report at the name */
                fail(P, buf);
                return NULL;
            }
            f->a = n;
            if (skip_op(P, OP_LPAREN) && !parse_call_args(P, f)) return NULL;
            n = f;
        } else if (is_name(P, "is")) {
            advance(P);
            ct_node *t = node(P, N_TEST);
            if (!t) return NULL;
            t->neg = skip_name(P, "not");
            /* "is none", "is true": keywords double as test names */
            if (!parse_dotted(P, &t->name)) return NULL;
            if (!ct_test_known(t->name)) {
                char buf[96];
                snprintf(buf, sizeof buf, "unknown test '%.*s'", (int)(t->name.n > 40 ? 40 : t->name.n),
                         t->name.p);
                P->pos--;
                fail(P, buf);
                return NULL;
            }
            t->a = n;
            const ct_token *c = cur(P);
            if (skip_op(P, OP_LPAREN)) {
                if (!parse_call_args(P, t)) return NULL;
            } else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT || c->type == T_FLOAT ||
                        (c->type == T_OP && (c->op == OP_LBRACKET || c->op == OP_LBRACE))) &&
                       !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
                if (is_name(P, "is")) return fail(P, "tests cannot be chained with 'is'");
                ct_node *arg = parse_primary(P);
                if (!arg || !(arg = parse_postfix(P, arg))) return NULL;
                kids k = {0};
                if (!kids_push(P, &k, arg)) return NULL;
                t->kids = k.v;
                t->n_kids = t->n_pos = 1;
            }
            n = t;
        } else if (is_op(P, OP_LPAREN)) {
            advance(P);
            ct_node *c = node(P, N_CALL);
            if (!c) return NULL;
            c->a = n;
            if (!parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            P->depth -= links + 1;
            return n;
        }
    }
}

/* "[" consumed: an index or a slice */
static ct_node *parse_subscript(parser *P, ct_node *obj) {
    ct_node *parts[3] = {NULL, NULL, NULL};
    int np = 0;
    bool slice = false;
    for (;;) {
        if (is_op(P, OP_COLON)) {
            if (np == 2) return fail(P, "too many ':' in a slice");
            slice = true;
            np++;
            advance(P);
            continue;
        }
        if (is_op(P, OP_RBRACKET)) break;
        if (parts[np]) return fail(P, "expected ']'");
        if (!(parts[np] = parse_expr(P, true))) return NULL;
        if (is_op(P, OP_COMMA)) return fail(P, "tuple subscripts are not supported");
    }
    advance(P);
    if (!slice && !parts[0]) return fail(P, "expected an index");
    ct_node *n = node(P, slice ? N_SLICE : N_ITEM);
    if (!n) return NULL;
    n->a = obj;
    n->b = parts[0];
    n->c = parts[1];
    n->d = parts[2];
    return n;
}

static ct_node *parse_postfix(parser *P, ct_node *n) {
    int links = 0;
    for (;; links++) {
        if (!enter(P)) return NULL;
        if (is_op(P, OP_DOT)) {
            advance(P);
            if (cur(P)->type == T_NAME) {
                ct_node *a = node(P, N_ATTR);
                if (!a) return NULL;
                a->a = n;
                a->name = cur(P)->s;
                advance(P);
                n = a;
            } else if (cur(P)->type == T_INT) {
                ct_node *a = node(P, N_ITEM), *k = node(P, N_CONST);
                if (!a || !k) return NULL;
                k->cval = ct_int(cur(P)->i);
                a->a = n;
                a->b = k;
                advance(P);
                n = a;
            } else {
                return fail(P, "expected an attribute name after '.'");
            }
        } else if (is_op(P, OP_LBRACKET)) {
            advance(P);
            if (!(n = parse_subscript(P, n))) return NULL;
        } else if (is_op(P, OP_LPAREN)) {
            advance(P);
            ct_node *c = node(P, N_CALL);
            if (!c) return NULL;
            c->a = n;
            if (!parse_call_args(P, c)) return NULL;
            n = c;
        } else {
            P->depth -= links + 1;
            return n;
        }
    }
}

/* After "(" or as a statement target: expressions separated by commas. */
static ct_node *parse_tuple(parser *P, bool with_cond, bool explicit_parens, const char *end_name) {
    kids k = {0};
    bool comma = false;
    for (;;) {
        if (k.n) {
            if (!skip_op(P, OP_COMMA)) break;
            comma = true;
        }
        if ((explicit_parens && is_op(P, OP_RPAREN)) || cur(P)->type == T_BLOCK_END ||
            cur(P)->type == T_VAR_END || (end_name && is_name(P, end_name)))
            break;
        ct_node *e = parse_expr(P, with_cond);
        if (!e || !kids_push(P, &k, e)) return NULL;
    }
    if (!comma) {
        if (k.n == 1) return k.v[0];
        if (!explicit_parens) return fail(P, "expected an expression");
    }
    ct_node *t = node(P, N_TUPLE);
    if (!t) return NULL;
    t->kids = k.v;
    t->n_kids = k.n;
    return t;
}

static ct_node *parse_primary(parser *P) {
    if (!enter(P)) return NULL;
    const ct_token *t = cur(P);
    ct_node *n = NULL;
    switch (t->type) {
    case T_NAME:
        if (!(n = node(P, N_CONST))) return NULL;
        if (ct_str_eq(t->s, "true") || ct_str_eq(t->s, "True")) n->cval = ct_bool(true);
        else if (ct_str_eq(t->s, "false") || ct_str_eq(t->s, "False")) n->cval = ct_bool(false);
        else if (ct_str_eq(t->s, "none") || ct_str_eq(t->s, "None")) n->cval = ct_none();
        else {
            n->type = N_NAME;
            n->name = t->s;
        }
        advance(P);
        break;
    case T_STRING: {
        /* adjacent literals join: 'a' 'b' */
        if (!(n = node(P, N_CONST))) return NULL;
        size_t total = 0, k = 0;
        while (peek(P, k)->type == T_STRING) total += peek(P, k++)->s.n;
        char *s = ryot_arena_alloc(P->arena, total + 1);
        if (!s) return nomem(P);
        size_t o = 0;
        while (cur(P)->type == T_STRING) {
            memcpy(s + o, cur(P)->s.p, cur(P)->s.n);
            o += cur(P)->s.n;
            advance(P);
        }
        n->cval = ct_string(s, o);
        break;
    }
    case T_INT:
    case T_FLOAT:
        if (!(n = node(P, N_CONST))) return NULL;
        n->cval = t->type == T_INT ? ct_int(t->i) : ct_float(t->f);
        advance(P);
        break;
    case T_OP:
        if (t->op == OP_LPAREN) {
            advance(P);
            if (!(n = parse_tuple(P, true, true, NULL))) return NULL;
            if (!expect_op(P, OP_RPAREN, "expected ')'")) return NULL;
        } else if (t->op == OP_LBRACKET) {
            advance(P);
            kids k = {0};
            while (!is_op(P, OP_RBRACKET)) {
                if (k.n && !expect_op(P, OP_COMMA, "expected ',' or ']' in a list")) return NULL;
                if (is_op(P, OP_RBRACKET)) break;
                ct_node *e = parse_expr(P, true);
                if (!e || !kids_push(P, &k, e)) return NULL;
            }
            advance(P);
            if (!(n = node(P, N_LIST))) return NULL;
            n->kids = k.v;
            n->n_kids = k.n;
        } else if (t->op == OP_LBRACE) {
            advance(P);
            kids k = {0};
            while (!is_op(P, OP_RBRACE)) {
                if (k.n && !expect_op(P, OP_COMMA, "expected ',' or '}' in a dict")) return NULL;
                if (is_op(P, OP_RBRACE)) break;
                ct_node *key = parse_expr(P, true);
                if (!key || !expect_op(P, OP_COLON, "expected ':' in a dict")) return NULL;
                ct_node *val = parse_expr(P, true);
                if (!val || !kids_push(P, &k, key) || !kids_push(P, &k, val)) return NULL;
            }
            advance(P);
            if (!(n = node(P, N_DICT))) return NULL;
            n->kids = k.v;
            n->n_kids = k.n;
        } else {
            return fail(P, "expected an expression");
        }
        break;
    default:
        return fail(P, "expected an expression");
    }
    P->depth--;
    return n;
}

static ct_node *parse_unary(parser *P, bool with_filter) {
    if (!enter(P)) return NULL;
    ct_node *n;
    if (is_op(P, OP_SUB) || is_op(P, OP_ADD)) {
        n = node(P, is_op(P, OP_SUB) ? N_NEG : N_POS);
        advance(P);
        if (!n || !(n->a = parse_unary(P, false))) return NULL;
    } else {
        n = parse_primary(P);
    }
    if (!n || !(n = parse_postfix(P, n))) return NULL;
    if (with_filter && !(n = parse_filter_expr(P, n))) return NULL;
    P->depth--;
    return n;
}

/* Left-nested chains ("a + b + c ...") count their links against the depth
 * limit, so that evaluating them cannot recurse without bound. */
static ct_node *binary(parser *P, ct_ntype type, ct_op op, ct_node *a, ct_node *b) {
    if (!enter(P)) return NULL;
    ct_node *n = node(P, type);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    return n;
}

/* Binary operators, one level per precedence, loosest first.  A level
 * parses its operands at the next level and chains them left to right;
 * between "and" and "+" sit "not" and the comparisons (parse_not), and the
 * tightest level's operands are unary expressions. */
enum { LVL_OR, LVL_AND, LVL_ADD, LVL_CONCAT, LVL_MUL, LVL_POW };
static const struct bin_level {
    ct_ntype type;    /* node made for each link */
    const char *name; /* keyword operator, or NULL */
    ct_op ops[5];     /* symbol operators, OP_NONE-terminated */
} bin_levels[] = {
    [LVL_OR] = {N_OR, "or", {OP_NONE}},
    [LVL_AND] = {N_AND, "and", {OP_NONE}},
    [LVL_ADD] = {N_BIN, NULL, {OP_ADD, OP_SUB, OP_NONE}},
    [LVL_CONCAT] = {N_BIN, NULL, {OP_TILDE, OP_NONE}},
    [LVL_MUL] = {N_BIN, NULL, {OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_NONE}},
    [LVL_POW] = {N_BIN, NULL, {OP_POW, OP_NONE}},
};

static ct_node *parse_not(parser *P);
static ct_node *parse_level(parser *P, int lvl);

static ct_node *parse_operand(parser *P, int lvl) {
    if (lvl == LVL_AND) return parse_not(P);
    if (lvl == LVL_POW) return parse_unary(P, true);
    return parse_level(P, lvl + 1);
}

/* Whether the current token is an operator of level lvl (its op in *op). */
static bool level_op(const parser *P, int lvl, ct_op *op) {
    const struct bin_level *L = &bin_levels[lvl];
    *op = OP_NONE;
    if (L->name) return is_name(P, L->name);
    for (const ct_op *o = L->ops; *o != OP_NONE; o++)
        if (is_op(P, *o)) return *op = *o, true;
    return false;
}

static ct_node *parse_level(parser *P, int lvl) {
    int d0 = P->depth;
    ct_node *n = parse_operand(P, lvl);
    ct_op op;
    while (n && level_op(P, lvl, &op)) {
        advance(P);
        ct_node *r = parse_operand(P, lvl);
        n = r ? binary(P, bin_levels[lvl].type, op, n, r) : NULL;
    }
    if (n) P->depth = d0;
    return n;
}

static ct_node *parse_compare(parser *P) {
    ct_node *first = parse_level(P, LVL_ADD);
    if (!first) return NULL;
    kids k = {0};
    uint8_t ops[64];
    for (;;) {
        ct_op op = OP_NONE;
        const ct_token *t = cur(P);
        if (t->type == T_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == OP_LT || t->op == OP_LE ||
                                t->op == OP_GT || t->op == OP_GE)) {
            op = (ct_op)t->op;
            advance(P);
        } else if (is_name(P, "in")) {
            op = OP_IN;
            advance(P);
        } else if (is_name(P, "not") && peek(P, 1)->type == T_NAME && ct_str_eq(peek(P, 1)->s, "in")) {
            op = OP_NOTIN;
            advance(P);
            advance(P);
        } else {
            break;
        }
        if (k.n == (int)sizeof ops) return fail(P, "too many chained comparisons");
        ops[k.n] = (uint8_t)op;
        ct_node *r = parse_level(P, LVL_ADD);
        if (!r || !kids_push(P, &k, r)) return NULL;
    }
    if (!k.n) return first;
    ct_node *n = node(P, N_CMP);
    uint8_t *o = ryot_arena_alloc(P->arena, (size_t)k.n);
    if (!n || !o) return nomem(P);
    memcpy(o, ops, (size_t)k.n);
    n->a = first;
    n->kids = k.v;
    n->n_kids = k.n;
    n->ops = o;
    return n;
}

static ct_node *parse_not(parser *P) {
    if (is_name(P, "not")) {
        if (!enter(P)) return NULL;
        ct_node *n = node(P, N_NOT);
        advance(P);
        if (!n || !(n->a = parse_not(P))) return NULL;
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static ct_node *parse_expr(parser *P, bool with_cond) {
    if (!enter(P)) return NULL;
    ct_node *n = parse_level(P, LVL_OR);
    int links = 0;
    while (with_cond && n && is_name(P, "if")) {
        if (!enter(P)) return NULL;
        links++;
        advance(P);
        ct_node *c = node(P, N_COND);
        if (!c || !(c->b = parse_level(P, LVL_OR))) return NULL;
        c->a = n;
        if (skip_name(P, "else") && !(c->c = parse_expr(P, true))) return NULL;
        n = c;
    }
    if (n) P->depth -= links + 1;
    return n;
}

/* ---------------------------------------------------------------- statements */

static bool end_block(parser *P) {
    if (cur(P)->type != T_BLOCK_END) return fail(P, "expected '%}'"), false;
    advance(P);
    return true;
}

/* A name, or "a, b" (for loops and set); with ns: also "ns.attr". */
static ct_node *parse_target(parser *P, bool allow_attr, const char *end_name) {
    kids k = {0};
    bool comma = false;
    for (;;) {
        if (cur(P)->type != T_NAME) return fail(P, "expected a variable name");
        ct_node *n = node(P, N_NAME);
        if (!n) return NULL;
        n->name = cur(P)->s;
        advance(P);
        if (allow_attr && !comma && k.n == 0 && is_op(P, OP_DOT)) {
            advance(P);
            if (cur(P)->type != T_NAME) return fail(P, "expected an attribute name after '.'");
            ct_node *a = node(P, N_ATTR);
            if (!a) return NULL;
            a->a = n;
            a->name = cur(P)->s;
            advance(P);
            return a;
        }
        if (!kids_push(P, &k, n)) return NULL;
        if (!is_op(P, OP_COMMA)) break;
        advance(P);
        comma = true;
        if (end_name && is_name(P, end_name)) break;
    }
    if (!comma) return k.v[0];
    ct_node *t = node(P, N_TUPLE);
    if (!t) return NULL;
    t->kids = k.v;
    t->n_kids = k.n;
    return t;
}

/* Statements until a {% name %} in `ends` (not consumed: *end is its index)
 * or the end of the template (ends == NULL). */
static ct_node *parse_body(parser *P, const char *const *ends, int *end);

static ct_node *parse_if(parser *P) {
    ct_node *n = node(P, N_IF);
    if (!n) return NULL;
    kids k = {0};
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    for (;;) {
        ct_node *cond = parse_tuple(P, true, false, NULL);
        if (!cond || !end_block(P)) return NULL;
        int e;
        ct_node *body = parse_body(P, ends, &e);
        if (!body || !kids_push(P, &k, cond) || !kids_push(P, &k, body)) return NULL;
        advance(P); /* the end name */
        if (e == 0) continue;
        if (e == 1) {
            if (!end_block(P)) return NULL;
            static const char *const ends2[] = {"endif", NULL};
            if (!(n->c = parse_body(P, ends2, &e))) return NULL;
            advance(P);
        }
        break;
    }
    n->kids = k.v;
    n->n_kids = k.n;
    return end_block(P) ? n : NULL;
}

static ct_node *parse_for(parser *P) {
    ct_node *n = node(P, N_FOR);
    if (!n || !(n->a = parse_target(P, false, "in"))) return NULL;
    if (!skip_name(P, "in")) return fail(P, "expected 'in' in a for loop");
    if (!(n->b = parse_tuple(P, false, false, "recursive"))) return NULL;
    if (skip_name(P, "if") && !(n->c = parse_expr(P, true))) return NULL;
    if (is_name(P, "recursive")) return fail(P, "recursive loops are not supported");
    if (!end_block(P)) return NULL;
    static const char *const ends[] = {"endfor", "else", NULL};
    int e;
    ct_node *body = parse_body(P, ends, &e);
    if (!body) return NULL;
    kids k = {0};
    if (!kids_push(P, &k, body)) return NULL;
    n->kids = k.v;
    n->n_kids = 1;
    advance(P);
    if (e == 1) {
        if (!end_block(P)) return NULL;
        static const char *const ends2[] = {"endfor", NULL};
        if (!(n->d = parse_body(P, ends2, &e))) return NULL;
        advance(P);
    }
    return end_block(P) ? n : NULL;
}

static ct_node *parse_set(parser *P) {
    ct_node *target = parse_target(P, true, NULL);
    if (!target) return NULL;
    if (skip_op(P, OP_ASSIGN)) {
        ct_node *n = node(P, N_SET);
        if (!n || !(n->b = parse_tuple(P, true, false, NULL))) return NULL;
        n->a = target;
        return end_block(P) ? n : NULL;
    }
    if (target->type != N_NAME) return fail(P, "expected '=' after the set target");
    ct_node *n = node(P, N_SETBLOCK);
    if (!n) return NULL;
    n->a = target;
    if (!end_block(P)) return NULL;
    static const char *const ends[] = {"endset", NULL};
    int e;
    if (!(n->b = parse_body(P, ends, &e))) return NULL;
    advance(P);
    return end_block(P) ? n : NULL;
}

static ct_node *parse_statement(parser *P) {
    if (cur(P)->type != T_NAME) return fail(P, "expected a tag name after '{%'");
    ct_str name = cur(P)->s;
    int line = cur(P)->line;
    advance(P);
    ct_node *n = NULL;
    if (ct_str_eq(name, "if")) {
        n = parse_if(P);
    } else if (ct_str_eq(name, "for")) {
        n = parse_for(P);
    } else if (ct_str_eq(name, "set")) {
        n = parse_set(P);
    } else if (ct_str_eq(name, "break") || ct_str_eq(name, "continue")) {
        if (!(n = node(P, name.n == 5 ? N_BREAK : N_CONTINUE)) || !end_block(P)) return NULL;
    } else if (ct_str_eq(name, "generation")) {
        /* transformers' marker for assistant tokens: renders its body */
        if (!end_block(P)) return NULL;
        static const char *const ends[] = {"endgeneration", NULL};
        int e;
        if (!(n = parse_body(P, ends, &e))) return NULL;
        advance(P);
        if (!end_block(P)) return NULL;
    } else {
        P->pos--;
        char buf[96];
        snprintf(buf, sizeof buf, "unknown or unsupported tag '%.*s'", (int)(name.n > 40 ? 40 : name.n), name.p);
        return fail(P, buf);
    }
    if (n) n->line = line;
    return n;
}

static ct_node *parse_body(parser *P, const char *const *ends, int *end) {
    if (!enter(P)) return NULL;
    ct_node *b = node(P, N_BLOCK);
    if (!b) return NULL;
    kids k = {0};
    for (;;) {
        const ct_token *t = cur(P);
        if (t->type == T_EOF) {
            if (ends) {
                int e = 0;
                while (ends[e + 1] && strncmp(ends[e], "end", 3) != 0) e++;
                char buf[96];
                snprintf(buf, sizeof buf, "missing {%% %s %%}", ends[e]);
                return fail(P, buf);
            }
            break;
        }
        ct_node *s = NULL;
        if (t->type == T_TEXT) {
            if (!(s = node(P, N_TEXT))) return NULL;
            s->cval = ct_string(t->s.p, t->s.n);
            advance(P);
        } else if (t->type == T_VAR_BEGIN) {
            advance(P);
            if (!(s = node(P, N_OUT)) || !(s->a = parse_tuple(P, true, false, NULL))) return NULL;
            if (cur(P)->type != T_VAR_END) return fail(P, "expected '}}'");
            advance(P);
        } else if (t->type == T_BLOCK_BEGIN) {
            const ct_token *name = peek(P, 1);
            if (ends && name->type == T_NAME) {
                for (int i = 0; ends[i]; i++) {
                    if (ct_str_eq(name->s, ends[i])) {
                        advance(P); /* "{%": the caller consumes the name */
                        *end = i;
                        b->kids = k.v;
                        b->n_kids = k.n;
                        P->depth--;
                        return b;
                    }
                }
            }
            advance(P);
            if (name->type == T_NAME &&
                (ct_str_eq(name->s, "endif") || ct_str_eq(name->s, "endfor") || ct_str_eq(name->s, "elif") ||
                 ct_str_eq(name->s, "else") || ct_str_eq(name->s, "endset") ||
                 ct_str_eq(name->s, "endgeneration"))) {
                char buf[96];
                snprintf(buf, sizeof buf, "unexpected {%% %.*s %%}", (int)name->s.n, name->s.p);
                return fail(P, buf);
            }
            if (!(s = parse_statement(P))) return NULL;
        } else {
            return fail(P, "unexpected token");
        }
        if (!kids_push(P, &k, s)) return NULL;
    }
    b->kids = k.v;
    b->n_kids = k.n;
    P->depth--;
    return b;
}

ryot_status ct_parse(const ct_token *toks, size_t n, ryot_arena *a, ct_node **root, ryot_error *err) {
    parser P = {.t = toks, .n = n, .arena = a, .err = err};
    *root = parse_body(&P, NULL, NULL);
    if (!*root) return P.st ? P.st : ryot_fail(err, RYOT_ERR_INTERNAL, "chat template: parse failed");
    return RYOT_OK;
}
