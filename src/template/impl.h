/* Chat template interpreter internals, shared by chat_template.c (parse and
 * render entry points) and:
 *   lex.c       source -> tokens (whitespace control, trim/lstrip_blocks)
 *   parse.c     tokens -> syntax tree
 *   value.c     values, strings, UTF-8, str(), repr(), tojson, comparisons
 *   eval.c      syntax tree -> output (scopes, loops, operators, limits)
 *   builtins.c  filters, tests, methods and global functions
 * Everything a template or a render allocates lives in one arena, freed at
 * once; values are small structs passed by value that point into it (or into
 * the caller's message strings, which are never copied). */
#ifndef RYOT_TEMPLATE_IMPL_H
#define RYOT_TEMPLATE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "template/chat_template.h"

/* Memory: one ryot_arena per template (source, strings, syntax tree) and one
 * per render (values), the latter limited to CHAT_TEMPLATE_MAX_MEMORY. */


/* ---------------------------------------------------------------- values */

typedef struct ct_str {
    const char *p;
    size_t n;
} ct_str;

typedef enum ct_kind {
    CT_UNDEF,  /* s: the name that was missing (may be empty) */
    CT_NONE,
    CT_BOOL,
    CT_INT,
    CT_FLOAT,
    CT_STR,
    CT_LIST,
    CT_TUPLE,
    CT_DICT,
    CT_NS,     /* namespace(): a dict whose entries may be assigned */
    CT_LOOP,
    CT_FUNC,   /* a global function: fn is a ct_func */
    CT_METHOD, /* a bound str/dict method: m */
} ct_kind;

typedef enum ct_func {
    CT_FN_RANGE,
    CT_FN_NAMESPACE,
    CT_FN_RAISE,
    CT_FN_DICT,
} ct_func;

typedef struct ct_value ct_value;
typedef struct ct_list ct_list;
typedef struct ct_dict ct_dict;
typedef struct ct_loop ct_loop;
typedef struct ct_method ct_method;

struct ct_value {
    uint8_t kind;
    union {
        bool b;
        int64_t i;
        double f;
        ct_str s;
        ct_list *l;   /* LIST, TUPLE */
        ct_dict *d;   /* DICT, NS */
        ct_loop *loop;
        int fn;
        ct_method *m;
    };
};

struct ct_list {
    ct_value *v;
    size_t n;
};

/* Insertion-ordered; keys compared with ct_equal. */
struct ct_dict {
    ct_value *k, *v;
    size_t n, cap;
};

struct ct_loop {
    int64_t index0, length;
    const ct_value *items; /* (length) for previtem / nextitem */
};

struct ct_method {
    ct_value self;
    ct_str name;
};

static inline ct_value ct_undef(ct_str name) { return (ct_value){.kind = CT_UNDEF, .s = name}; }
static inline ct_value ct_none(void) { return (ct_value){.kind = CT_NONE}; }
static inline ct_value ct_bool(bool b) { return (ct_value){.kind = CT_BOOL, .b = b}; }
static inline ct_value ct_int(int64_t i) { return (ct_value){.kind = CT_INT, .i = i}; }
static inline ct_value ct_float(double f) { return (ct_value){.kind = CT_FLOAT, .f = f}; }
static inline ct_value ct_string(const char *p, size_t n) { return (ct_value){.kind = CT_STR, .s = {p, n}}; }
static inline ct_str ct_cstr(const char *s);

/* ---------------------------------------------------------------- syntax tree */

typedef enum ct_op {
    OP_NONE,
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_TILDE,
    OP_LBRACKET, OP_RBRACKET, OP_LPAREN, OP_RPAREN, OP_LBRACE, OP_RBRACE,
    OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE, OP_IN, OP_NOTIN,
    OP_ASSIGN, OP_DOT, OP_COLON, OP_PIPE, OP_COMMA, OP_SEMI,
} ct_op;

typedef enum ct_ntype {
    /* expressions */
    N_CONST,  /* cval */
    N_NAME,   /* name */
    N_LIST,   /* kids */
    N_TUPLE,  /* kids */
    N_DICT,   /* kids: key, value, key, value... */
    N_ATTR,   /* a.name */
    N_ITEM,   /* a[b] */
    N_SLICE,  /* a[b:c:d], each of b c d may be NULL */
    N_CALL,   /* a(kids): n_pos positional, then keyword arguments named kw[] */
    N_FILTER, /* a | name(kids) */
    N_TEST,   /* a is [not] name(kids); neg */
    N_NEG, N_POS, N_NOT, /* a */
    N_BIN,    /* a op b */
    N_AND, N_OR,
    N_CMP,    /* a ops[0] kids[0] ops[1] kids[1] ... */
    N_COND,   /* a if b else c (c may be NULL) */
    /* statements */
    N_BLOCK,  /* kids: statements */
    N_TEXT,   /* cval */
    N_OUT,    /* {{ a }} */
    N_IF,     /* kids: cond, block, cond, block...; c: else block or NULL */
    N_FOR,    /* for a in b [if c]: kids[0] body; d: else block or NULL */
    N_SET,    /* a = b; a is N_NAME, N_TUPLE of names, or N_ATTR of a name */
    N_SETBLOCK, /* a (N_NAME) = rendered b */
    N_BREAK, N_CONTINUE,
} ct_ntype;

typedef struct ct_node ct_node;
struct ct_node {
    uint8_t type;
    uint8_t op;  /* N_BIN */
    bool neg;    /* N_TEST: is not */
    int line;
    ct_value cval;
    ct_str name;
    ct_node *a, *b, *c, *d;
    ct_node **kids;
    int n_kids, n_pos;
    ct_str *kw;     /* (n_kids - n_pos) keyword names */
    uint8_t *ops;   /* N_CMP: (n_kids) */
};

/* ---------------------------------------------------------------- tokens */

typedef enum ct_ttype {
    T_EOF, T_TEXT, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END,
    T_NAME, T_STRING, T_INT, T_FLOAT, T_OP,
} ct_ttype;

typedef struct ct_token {
    uint8_t type;
    uint8_t op;
    int line;
    ct_str s;   /* TEXT and STRING (decoded), NAME */
    int64_t i;
    double f;
} ct_token;

/* Splits src (newlines already normalized) into tokens; strings are decoded
 * into the arena.  *toks is malloc'd (free()); it ends with T_EOF. */
ryot_status ct_lex(const char *src, size_t len, ryot_arena *a, ct_token **toks, size_t *n, ryot_error *err);

ryot_status ct_parse(const ct_token *toks, size_t n, ryot_arena *a, ct_node **root, ryot_error *err);

/* ---------------------------------------------------------------- render state */

typedef struct ct_var {
    ct_str name;
    ct_value v;
} ct_var;

typedef struct ct_frame ct_frame;
struct ct_frame {
    ct_frame *parent;
    ct_var *vars;
    size_t n, cap;
};

typedef struct ct_render {
    ryot_arena arena;
    char *out;
    size_t out_len, out_cap;
    uint64_t steps, iterations;
    int depth;
    int line;            /* of the node being evaluated, for messages */
    bool raised;         /* the error came from raise_exception */
    bool too_big;        /* a value would pass CHAT_TEMPLATE_MAX_MEMORY by itself */
    ryot_error *err;
    ryot_error local_err;
} ct_render;

/* Records a render error ("chat template line N: ...") and returns false. */
bool ct_error(ct_render *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ct_nomem(ct_render *r);
/* A value larger than the memory limit was asked for. */
static inline bool ct_too_big(ct_render *r) {
    r->too_big = true;
    return ct_nomem(r);
}
/* Counts n units of work against CHAT_TEMPLATE_MAX_STEPS. */
bool ct_charge(ct_render *r, uint64_t n);
void *ct_ralloc(ct_render *r, size_t n); /* NULL after recording the error */

/* ---------------------------------------------------------------- value helpers (value.c) */

static inline ct_str ct_cstr(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return (ct_str){s, n};
}
bool ct_str_eq(ct_str a, const char *b);
const char *ct_kind_name(const ct_value *v);
bool ct_truthy(const ct_value *v);

/* UTF-8: length of the sequence at p (1 for an invalid byte); its code point
 * (invalid bytes: 0xDC00 + byte, never a real character). */
size_t ct_utf8_next(const char *p, size_t n, uint32_t *cp);
size_t ct_utf8_len(ct_str s); /* code points */
size_t ct_utf8_put(char *dst, uint32_t cp); /* 1..4 bytes */
/* Python's str.isspace() for one code point. */
bool ct_is_space(uint32_t cp);
/* Byte length of the whitespace character at p, 0 if none. */
size_t ct_space_at(const char *p, size_t n);
uint32_t ct_upper(uint32_t cp);
uint32_t ct_lower(uint32_t cp);
bool ct_is_cased(uint32_t cp);

/* Growable byte buffer in the render arena. */
typedef struct ct_buf {
    char *p;
    size_t n, cap;
} ct_buf;
bool ct_buf_put(ct_render *r, ct_buf *b, const char *s, size_t n);
bool ct_buf_puts(ct_render *r, ct_buf *b, const char *s);

/* str(v) and repr(v) as Python writes them, appended to b. */
bool ct_write_str(ct_render *r, ct_buf *b, const ct_value *v, int depth);
bool ct_write_repr(ct_render *r, ct_buf *b, const ct_value *v, int depth);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: None), sort_keys) */
bool ct_write_json(ct_render *r, ct_buf *b, const ct_value *v, int indent, bool sort_keys, int level);
/* str(v) as a value (strings are returned as they are). */
bool ct_to_str(ct_render *r, const ct_value *v, ct_str *out);
void ct_format_float(double f, char *buf, size_t size); /* Python repr() of a float */

/* Python ==; and <, with *ok = false and an error recorded for unorderable types. */
bool ct_equal(ct_render *r, const ct_value *a, const ct_value *b, int depth);
bool ct_less(ct_render *r, const ct_value *a, const ct_value *b, bool *res, int depth);

ct_list *ct_list_new(ct_render *r, size_t n);
ct_dict *ct_dict_new(ct_render *r, size_t cap);
bool ct_dict_set(ct_render *r, ct_dict *d, ct_value k, ct_value v);
const ct_value *ct_dict_get(ct_render *r, const ct_dict *d, const ct_value *k);
const ct_value *ct_dict_get_str(const ct_dict *d, const char *key, size_t n);

/* The items of an iterable (list/tuple: as they are; str: characters; dict:
 * keys; undefined: none).  False with an error for other kinds. */
bool ct_iterate(ct_render *r, const ct_value *v, const ct_value **items, size_t *n);

/* ---------------------------------------------------------------- builtins (builtins.c) */

typedef struct ct_args {
    const ct_value *pos;
    int n_pos;
    const ct_str *kw;
    const ct_value *kwv;
    int n_kw;
} ct_args;

bool ct_call_filter(ct_render *r, ct_str name, const ct_value *x, const ct_args *args, ct_value *out);
bool ct_call_test(ct_render *r, ct_str name, const ct_value *x, const ct_args *args, bool *out);
/* obj.name(args) for str and dict methods; *found false when there is no such method. */
bool ct_call_method(ct_render *r, const ct_value *self, ct_str name, const ct_args *args, ct_value *out,
                    bool *found);
bool ct_has_method(const ct_value *self, ct_str name);
bool ct_call_func(ct_render *r, int fn, const ct_args *args, ct_value *out);
bool ct_filter_known(ct_str name);
bool ct_test_known(ct_str name);

/* obj[key] and obj.name with jinja2's fallbacks (missing: undefined). */
bool ct_getitem(ct_render *r, const ct_value *obj, const ct_value *key, ct_value *out);
bool ct_getattr(ct_render *r, const ct_value *obj, ct_str name, ct_value *out);

/* ---------------------------------------------------------------- evaluation (eval.c) */

bool ct_render_node(ct_render *r, ct_frame *f, const ct_node *root);

#endif
