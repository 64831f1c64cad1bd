/* Chat template evaluation: statements, expressions, scopes and loops.
 *
 * Scopes follow jinja2: {% if %} makes none, each iteration of a {% for %}
 * body starts a fresh scope over the enclosing one (so a {% set %} inside a
 * loop is gone after the iteration; namespace() attributes are how templates
 * carry state out), and {% set %} binds in the innermost scope. */
#include "template/impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { EX_OK, EX_BREAK, EX_CONTINUE, EX_ERR };

static bool eval(ct_render *r, ct_frame *f, const ct_node *n, ct_value *out);

/* ---------------------------------------------------------------- output */

/* Appends to the render's output, or to cap inside {% set x %}...{% endset %}. */
static bool emit(ct_render *r, ct_buf *cap, const char *s, size_t n) {
    if (cap) return ct_buf_put(r, cap, s, n);
    if (n > CHAT_TEMPLATE_MAX_OUTPUT - r->out_len)
        return ct_error(r, "the output exceeds %u MiB", CHAT_TEMPLATE_MAX_OUTPUT >> 20);
    if (r->out_cap - r->out_len < n + 1) {
        size_t cap = r->out_cap ? r->out_cap : 4096;
        while (cap - r->out_len < n + 1) cap *= 2;
        char *p = realloc(r->out, cap);
        if (!p) return ct_nomem(r);
        r->out = p;
        r->out_cap = cap;
    }
    if (n) memcpy(r->out + r->out_len, s, n);
    r->out_len += n;
    r->out[r->out_len] = 0;
    return ct_charge(r, 1 + n / 64);
}

/* ---------------------------------------------------------------- scopes */

static const ct_value *lookup(const ct_frame *f, ct_str name) {
    for (; f; f = f->parent)
        for (size_t i = 0; i < f->n; i++)
            if (f->vars[i].name.n == name.n && memcmp(f->vars[i].name.p, name.p, name.n) == 0) return &f->vars[i].v;
    return NULL;
}

static bool frame_set(ct_render *r, ct_frame *f, ct_str name, ct_value v) {
    for (size_t i = 0; i < f->n; i++) {
        if (f->vars[i].name.n == name.n && memcmp(f->vars[i].name.p, name.p, name.n) == 0) {
            f->vars[i].v = v;
            return true;
        }
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        ct_var *vars = ct_ralloc(r, cap * sizeof *vars);
        if (!vars) return false;
        if (f->n) memcpy(vars, f->vars, f->n * sizeof *vars);
        f->vars = vars;
        f->cap = cap;
    }
    f->vars[f->n++] = (ct_var){name, v};
    return ct_charge(r, f->n);
}

static bool undefined_error(ct_render *r, const ct_value *u) {
    if (u->s.n) return ct_error(r, "'%.*s' is undefined", (int)(u->s.n > 60 ? 60 : u->s.n), u->s.p);
    return ct_error(r, "an undefined value was used");
}

/* Binds a for target or a set target (a name or a tuple of names). */
static bool bind(ct_render *r, ct_frame *f, const ct_node *target, const ct_value *v) {
    if (target->type == N_NAME) return frame_set(r, f, target->name, *v);
    const ct_value *items;
    size_t n;
    if (v->kind == CT_UNDEF) return undefined_error(r, v);
    if (!ct_iterate(r, v, &items, &n)) return false;
    if (n != (size_t)target->n_kids)
        return ct_error(r, "cannot unpack %zu values into %d names", n, target->n_kids);
    for (size_t i = 0; i < n; i++)
        if (!frame_set(r, f, target->kids[i]->name, items[i])) return false;
    return true;
}

/* ---------------------------------------------------------------- operators */

static bool is_num(const ct_value *v) { return v->kind == CT_BOOL || v->kind == CT_INT || v->kind == CT_FLOAT; }
static bool is_intlike(const ct_value *v) { return v->kind == CT_BOOL || v->kind == CT_INT; }
static int64_t as_int(const ct_value *v) { return v->kind == CT_BOOL ? v->b : v->i; }
static double as_float(const ct_value *v) {
    return v->kind == CT_FLOAT ? v->f : v->kind == CT_BOOL ? v->b : (double)v->i;
}

static const char *op_name(int op) {
    switch (op) {
    case OP_ADD: return "+";
    case OP_SUB: return "-";
    case OP_MUL: return "*";
    case OP_DIV: return "/";
    case OP_FLOORDIV: return "//";
    case OP_MOD: return "%";
    case OP_POW: return "**";
    default: return "?";
    }
}

static bool repeat(ct_render *r, const ct_value *seq, int64_t times, ct_value *out) {
    if (times < 0) times = 0;
    if (seq->kind == CT_STR) {
        if (seq->s.n && (uint64_t)times > CHAT_TEMPLATE_MAX_MEMORY / seq->s.n) return ct_too_big(r);
        size_t n = seq->s.n * (size_t)times;
        char *p = ct_ralloc(r, n + 1);
        if (!p || !ct_charge(r, n / 64)) return false;
        for (int64_t i = 0; i < times; i++) memcpy(p + (size_t)i * seq->s.n, seq->s.p, seq->s.n);
        *out = ct_string(p, n);
        return true;
    }
    size_t m = seq->l->n;
    if (m && (uint64_t)times > CHAT_TEMPLATE_MAX_MEMORY / sizeof(ct_value) / m) return ct_too_big(r);
    ct_list *l = ct_list_new(r, m * (size_t)times);
    if (!l) return false;
    for (int64_t i = 0; i < times; i++)
        if (m) memcpy(l->v + (size_t)i * m, seq->l->v, m * sizeof *l->v);
    *out = (ct_value){.kind = seq->kind, .l = l};
    return true;
}

static bool concat_seq(ct_render *r, const ct_value *a, const ct_value *b, ct_value *out) {
    if (a->kind == CT_STR) {
        char *p = ct_ralloc(r, a->s.n + b->s.n + 1);
        if (!p || !ct_charge(r, (a->s.n + b->s.n) / 64)) return false;
        if (a->s.n) memcpy(p, a->s.p, a->s.n);
        if (b->s.n) memcpy(p + a->s.n, b->s.p, b->s.n);
        *out = ct_string(p, a->s.n + b->s.n);
        return true;
    }
    ct_list *l = ct_list_new(r, a->l->n + b->l->n);
    if (!l) return false;
    if (a->l->n) memcpy(l->v, a->l->v, a->l->n * sizeof *l->v);
    if (b->l->n) memcpy(l->v + a->l->n, b->l->v, b->l->n * sizeof *l->v);
    *out = (ct_value){.kind = a->kind, .l = l};
    return true;
}

static bool int_pow(ct_render *r, int64_t base, int64_t e, ct_value *out) {
    int64_t acc = 1;
    while (e > 0) {
        if (e & 1 && __builtin_mul_overflow(acc, base, &acc)) goto overflow;
        e >>= 1;
        if (e && __builtin_mul_overflow(base, base, &base)) {
            if (acc == 0) break;
            goto overflow;
        }
    }
    *out = ct_int(acc);
    return true;
overflow:
    return ct_error(r, "integer overflow in '**' (integers are 64-bit here)");
}

static bool binop(ct_render *r, int op, const ct_value *a, const ct_value *b, ct_value *out) {
    if (op == OP_TILDE) {
        ct_str x, y;
        if (!ct_to_str(r, a, &x) || !ct_to_str(r, b, &y)) return false;
        ct_value sa = ct_string(x.p, x.n), sb = ct_string(y.p, y.n);
        return concat_seq(r, &sa, &sb, out);
    }
    if (a->kind == CT_UNDEF) return undefined_error(r, a);
    if (b->kind == CT_UNDEF) return undefined_error(r, b);
    if (is_num(a) && is_num(b)) {
        bool ints = is_intlike(a) && is_intlike(b);
        int64_t x = ints ? as_int(a) : 0, y = ints ? as_int(b) : 0, z;
        double fx = as_float(a), fy = as_float(b);
        switch (op) {
        case OP_ADD:
            if (!ints) return *out = ct_float(fx + fy), true;
            if (__builtin_add_overflow(x, y, &z)) return ct_error(r, "integer overflow in '+'");
            return *out = ct_int(z), true;
        case OP_SUB:
            if (!ints) return *out = ct_float(fx - fy), true;
            if (__builtin_sub_overflow(x, y, &z)) return ct_error(r, "integer overflow in '-'");
            return *out = ct_int(z), true;
        case OP_MUL:
            if (!ints) return *out = ct_float(fx * fy), true;
            if (__builtin_mul_overflow(x, y, &z)) return ct_error(r, "integer overflow in '*'");
            return *out = ct_int(z), true;
        case OP_DIV:
            if (fy == 0) return ct_error(r, "division by zero");
            return *out = ct_float(fx / fy), true;
        case OP_FLOORDIV:
        case OP_MOD:
            if (ints) {
                if (y == 0) return ct_error(r, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) return ct_error(r, "integer overflow in '//'");
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    q -= 1;
                    m += y;
                }
                *out = ct_int(op == OP_MOD ? m : q);
                return true;
            }
            if (fy == 0) return ct_error(r, "float division or modulo by zero");
            if (op == OP_MOD) {
                double m = fmod(fx, fy);
                if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
                else if (m == 0) m = copysign(0.0, fy);
                *out = ct_float(m);
            } else {
                double m = fmod(fx, fy), d = (fx - m) / fy;
                if (m != 0 && ((m < 0) != (fy < 0))) d -= 1.0;
                double fl = floor(d);
                if (d - fl > 0.5) fl += 1.0;
                *out = ct_float(d == 0 ? copysign(0.0, fx / fy) : fl);
            }
            return true;
        case OP_POW:
            if (ints && y >= 0) return int_pow(r, x, y, out);
            if (fx == 0 && fy < 0) return ct_error(r, "zero cannot be raised to a negative power");
            *out = ct_float(pow(fx, fy));
            if (isnan(out->f) && !isnan(fx) && !isnan(fy)) return ct_error(r, "'**' gives a complex number");
            return true;
        }
    }
    if (op == OP_ADD && a->kind == b->kind && (a->kind == CT_STR || a->kind == CT_LIST || a->kind == CT_TUPLE))
        return concat_seq(r, a, b, out);
    if (op == OP_MUL) {
        if ((a->kind == CT_STR || a->kind == CT_LIST || a->kind == CT_TUPLE) && is_intlike(b))
            return repeat(r, a, as_int(b), out);
        if ((b->kind == CT_STR || b->kind == CT_LIST || b->kind == CT_TUPLE) && is_intlike(a))
            return repeat(r, b, as_int(a), out);
    }
    if (op == OP_MOD && a->kind == CT_STR) return ct_error(r, "'%%' string formatting is not supported");
    if (op == OP_ADD && a->kind == CT_STR)
        return ct_error(r, "can only concatenate str (not \"%s\") to str", ct_kind_name(b));
    return ct_error(r, "unsupported operand type(s) for %s: '%s' and '%s'", op_name(op), ct_kind_name(a),
                    ct_kind_name(b));
}

static bool contains(ct_render *r, const ct_value *needle, const ct_value *hay, bool *res) {
    switch (hay->kind) {
    case CT_STR:
        if (needle->kind != CT_STR)
            return ct_error(r, "'in <string>' requires string as left operand, not %s", ct_kind_name(needle));
        if (!ct_charge(r, hay->s.n / 64)) return false;
        *res = needle->s.n == 0 || (hay->s.n && memmem(hay->s.p, hay->s.n, needle->s.p, needle->s.n) != NULL);
        return true;
    case CT_LIST:
    case CT_TUPLE:
        if (!ct_charge(r, hay->l->n)) return false;
        for (size_t i = 0; i < hay->l->n; i++) {
            if (ct_equal(r, needle, &hay->l->v[i], 0)) {
                *res = true;
                return true;
            }
        }
        *res = false;
        return true;
    case CT_DICT:
        *res = ct_dict_get(r, hay->d, needle) != NULL;
        return !r->err->code;
    case CT_UNDEF: *res = false; return true;
    default: return ct_error(r, "argument of type '%s' is not iterable", ct_kind_name(hay));
    }
}

static bool compare(ct_render *r, int op, const ct_value *a, const ct_value *b, bool *res) {
    switch (op) {
    case OP_EQ: *res = ct_equal(r, a, b, 0); return !r->err->code;
    case OP_NE: *res = !ct_equal(r, a, b, 0); return !r->err->code;
    case OP_LT: return ct_less(r, a, b, res, 0);
    case OP_GT: return ct_less(r, b, a, res, 0);
    case OP_LE:
    case OP_GE: {
        const ct_value *x = op == OP_LE ? a : b, *y = op == OP_LE ? b : a;
        bool lt;
        if (!ct_less(r, x, y, &lt, 0)) return false;
        *res = lt || ct_equal(r, x, y, 0);
        return true;
    }
    case OP_IN: return contains(r, a, b, res);
    case OP_NOTIN:
        if (!contains(r, a, b, res)) return false;
        *res = !*res;
        return true;
    }
    return ct_error(r, "internal: bad comparison");
}

/* ---------------------------------------------------------------- slices */

static bool slice_index(ct_render *r, ct_frame *f, const ct_node *n, bool *given, int64_t *v) {
    *given = false;
    if (!n) return true;
    ct_value x;
    if (!eval(r, f, n, &x)) return false;
    if (x.kind == CT_NONE) return true;
    if (!is_intlike(&x)) return ct_error(r, "slice indices must be integers or None");
    *given = true;
    *v = as_int(&x);
    return true;
}

static bool do_slice(ct_render *r, ct_frame *f, const ct_node *n, const ct_value *obj, ct_value *out) {
    bool hs, he, hp;
    int64_t start = 0, stop = 0, step = 1;
    if (!slice_index(r, f, n->b, &hs, &start) || !slice_index(r, f, n->c, &he, &stop) ||
        !slice_index(r, f, n->d, &hp, &step))
        return false;
    if (obj->kind == CT_UNDEF) return undefined_error(r, obj);
    if (!hp) step = 1;
    if (step == 0) return ct_error(r, "slice step cannot be zero");
    if (obj->kind != CT_STR && obj->kind != CT_LIST && obj->kind != CT_TUPLE) {
        *out = ct_undef((ct_str){0});
        return true;
    }
    int64_t len = obj->kind == CT_STR ? (int64_t)ct_utf8_len(obj->s) : (int64_t)obj->l->n;
    /* Python's slice index adjustment */
    if (!hs) start = step < 0 ? len - 1 : 0;
    else if (start < 0) start = start + len < 0 ? (step < 0 ? -1 : 0) : start + len;
    else if (start >= len) start = step < 0 ? len - 1 : len;
    if (!he) stop = step < 0 ? -1 : len;
    else if (stop < 0) stop = stop + len < 0 ? (step < 0 ? -1 : 0) : stop + len;
    else if (stop >= len) stop = step < 0 ? len - 1 : len;
    int64_t count = 0;
    if (step > 0 && stop > start) count = (stop - start - 1) / step + 1;
    if (step < 0 && start > stop) count = (start - stop - 1) / (-step) + 1;
    if (!ct_charge(r, (uint64_t)len)) return false;
    if (obj->kind == CT_STR) {
        /* byte offset of every code point */
        size_t *off = ct_ralloc(r, ((size_t)len + 1) * sizeof *off);
        char *p = ct_ralloc(r, obj->s.n + 1);
        if (!off || !p) return false;
        uint32_t cp;
        size_t i = 0, j = 0;
        for (; i < obj->s.n; j++) {
            off[j] = i;
            i += ct_utf8_next(obj->s.p + i, obj->s.n - i, &cp);
        }
        off[j] = i;
        size_t o = 0;
        for (int64_t k = 0, idx = start; k < count; k++, idx += step) {
            size_t a = off[idx], b = off[idx + 1];
            memcpy(p + o, obj->s.p + a, b - a);
            o += b - a;
        }
        *out = ct_string(p, o);
        return true;
    }
    ct_list *l = ct_list_new(r, (size_t)count);
    if (!l) return false;
    for (int64_t k = 0, idx = start; k < count; k++, idx += step) l->v[k] = obj->l->v[idx];
    *out = (ct_value){.kind = obj->kind, .l = l};
    return true;
}

/* ---------------------------------------------------------------- calls */

#define MAX_ARGS 16

static bool eval_args(ct_render *r, ct_frame *f, const ct_node *n, ct_value *vals, ct_args *args) {
    if (n->n_kids > MAX_ARGS) return ct_error(r, "too many arguments (at most %d)", MAX_ARGS);
    for (int i = 0; i < n->n_kids; i++)
        if (!eval(r, f, n->kids[i], &vals[i])) return false;
    args->pos = vals;
    args->n_pos = n->n_pos;
    args->kw = n->kw;
    args->kwv = vals + n->n_pos;
    args->n_kw = n->n_kids - n->n_pos;
    return true;
}

static bool eval_call(ct_render *r, ct_frame *f, const ct_node *n, ct_value *out) {
    ct_value vals[MAX_ARGS];
    ct_args args;
    ct_value callee;
    if (n->a->type == N_ATTR) {
        ct_value obj;
        if (!eval(r, f, n->a->a, &obj)) return false;
        if (ct_has_method(&obj, n->a->name)) {
            bool found;
            if (!eval_args(r, f, n, vals, &args)) return false;
            r->line = n->line;
            return ct_call_method(r, &obj, n->a->name, &args, out, &found);
        }
        if (!ct_getattr(r, &obj, n->a->name, &callee)) return false;
    } else if (!eval(r, f, n->a, &callee)) {
        return false;
    }
    if (!eval_args(r, f, n, vals, &args)) return false;
    r->line = n->line;
    if (callee.kind == CT_FUNC) return ct_call_func(r, callee.fn, &args, out);
    if (callee.kind == CT_METHOD) {
        bool found;
        return ct_call_method(r, &callee.m->self, callee.m->name, &args, out, &found);
    }
    if (callee.kind == CT_UNDEF) return undefined_error(r, &callee);
    return ct_error(r, "'%s' object is not callable", ct_kind_name(&callee));
}

/* ---------------------------------------------------------------- expressions */

static bool eval(ct_render *r, ct_frame *f, const ct_node *n, ct_value *out) {
    if (!ct_charge(r, 1)) return false;
    r->line = n->line;
    switch (n->type) {
    case N_CONST: *out = n->cval; return true;
    case N_NAME: {
        const ct_value *v = lookup(f, n->name);
        *out = v ? *v : ct_undef(n->name);
        return true;
    }
    case N_LIST:
    case N_TUPLE: {
        ct_list *l = ct_list_new(r, (size_t)n->n_kids);
        if (!l) return false;
        for (int i = 0; i < n->n_kids; i++)
            if (!eval(r, f, n->kids[i], &l->v[i])) return false;
        *out = (ct_value){.kind = n->type == N_LIST ? CT_LIST : CT_TUPLE, .l = l};
        return true;
    }
    case N_DICT: {
        ct_dict *d = ct_dict_new(r, (size_t)n->n_kids / 2);
        if (!d) return false;
        for (int i = 0; i + 1 < n->n_kids; i += 2) {
            ct_value k, v;
            if (!eval(r, f, n->kids[i], &k) || !eval(r, f, n->kids[i + 1], &v)) return false;
            if (k.kind == CT_LIST || k.kind == CT_DICT || k.kind == CT_NS)
                return ct_error(r, "unhashable type: '%s'", ct_kind_name(&k));
            if (!ct_dict_set(r, d, k, v)) return false;
        }
        *out = (ct_value){.kind = CT_DICT, .d = d};
        return true;
    }
    case N_ATTR: {
        ct_value obj;
        if (!eval(r, f, n->a, &obj)) return false;
        r->line = n->line;
        return ct_getattr(r, &obj, n->name, out);
    }
    case N_ITEM: {
        ct_value obj, key;
        if (!eval(r, f, n->a, &obj) || !eval(r, f, n->b, &key)) return false;
        r->line = n->line;
        return ct_getitem(r, &obj, &key, out);
    }
    case N_SLICE: {
        ct_value obj;
        if (!eval(r, f, n->a, &obj)) return false;
        return do_slice(r, f, n, &obj, out);
    }
    case N_CALL: return eval_call(r, f, n, out);
    case N_FILTER: {
        ct_value x, vals[MAX_ARGS];
        ct_args args;
        if (!eval(r, f, n->a, &x) || !eval_args(r, f, n, vals, &args)) return false;
        r->line = n->line;
        return ct_call_filter(r, n->name, &x, &args, out);
    }
    case N_TEST: {
        ct_value x, vals[MAX_ARGS];
        ct_args args;
        bool res;
        if (!eval(r, f, n->a, &x) || !eval_args(r, f, n, vals, &args)) return false;
        r->line = n->line;
        if (!ct_call_test(r, n->name, &x, &args, &res)) return false;
        *out = ct_bool(res != n->neg);
        return true;
    }
    case N_NEG:
    case N_POS: {
        ct_value x;
        if (!eval(r, f, n->a, &x)) return false;
        r->line = n->line;
        if (x.kind == CT_UNDEF) return undefined_error(r, &x);
        if (x.kind == CT_FLOAT) {
            *out = ct_float(n->type == N_NEG ? -x.f : x.f);
        } else if (is_intlike(&x)) {
            int64_t v = as_int(&x);
            if (n->type == N_NEG && v == INT64_MIN) return ct_error(r, "integer overflow in unary '-'");
            *out = ct_int(n->type == N_NEG ? -v : v);
        } else {
            return ct_error(r, "bad operand type for unary %s: '%s'", n->type == N_NEG ? "-" : "+",
                            ct_kind_name(&x));
        }
        return true;
    }
    case N_NOT: {
        ct_value x;
        if (!eval(r, f, n->a, &x)) return false;
        *out = ct_bool(!ct_truthy(&x));
        return true;
    }
    case N_AND:
    case N_OR: {
        if (!eval(r, f, n->a, out)) return false;
        if (ct_truthy(out) == (n->type == N_OR)) return true;
        return eval(r, f, n->b, out);
    }
    case N_BIN: {
        ct_value a, b;
        if (!eval(r, f, n->a, &a) || !eval(r, f, n->b, &b)) return false;
        r->line = n->line;
        return binop(r, n->op, &a, &b, out);
    }
    case N_CMP: {
        ct_value left, right;
        if (!eval(r, f, n->a, &left)) return false;
        for (int i = 0; i < n->n_kids; i++) {
            bool res;
            if (!eval(r, f, n->kids[i], &right)) return false;
            r->line = n->line;
            if (!compare(r, n->ops[i], &left, &right, &res)) return false;
            if (!res) {
                *out = ct_bool(false);
                return true;
            }
            left = right;
        }
        *out = ct_bool(true);
        return true;
    }
    case N_COND: {
        ct_value c;
        if (!eval(r, f, n->b, &c)) return false;
        if (ct_truthy(&c)) return eval(r, f, n->a, out);
        if (n->c) return eval(r, f, n->c, out);
        *out = ct_undef((ct_str){0});
        return true;
    }
    default: return ct_error(r, "internal: not an expression");
    }
}

/* ---------------------------------------------------------------- statements */

static int exec_body(ct_render *r, ct_frame *f, const ct_node *b, ct_buf *cap);

static int exec_for(ct_render *r, ct_frame *f, const ct_node *n, ct_buf *cap) {
    ct_value seq;
    if (!eval(r, f, n->b, &seq)) return EX_ERR;
    const ct_value *items;
    size_t count;
    r->line = n->line;
    if (!ct_iterate(r, &seq, &items, &count)) return EX_ERR;
    ct_frame it = {.parent = f};
    if (n->c) {
        /* the loop filter sees the target, not `loop`; loop.length counts what passes */
        ct_list *kept = ct_list_new(r, count);
        if (!kept) return EX_ERR;
        size_t k = 0;
        for (size_t i = 0; i < count; i++) {
            ct_value c;
            it.n = 0;
            if (!bind(r, &it, n->a, &items[i]) || !eval(r, &it, n->c, &c)) return EX_ERR;
            if (ct_truthy(&c)) kept->v[k++] = items[i];
        }
        items = kept->v;
        count = k;
    }
    ct_loop *loop = ct_ralloc(r, sizeof *loop);
    if (!loop) return EX_ERR;
    loop->length = (int64_t)count;
    loop->items = items;
    for (size_t i = 0; i < count; i++) {
        if (++r->iterations > CHAT_TEMPLATE_MAX_ITERATIONS) {
            r->line = n->line;
            ct_error(r, "more than %d loop iterations", CHAT_TEMPLATE_MAX_ITERATIONS);
            return EX_ERR;
        }
        loop->index0 = (int64_t)i;
        it.n = 0;
        if (!frame_set(r, &it, ct_cstr("loop"), (ct_value){.kind = CT_LOOP, .loop = loop})) return EX_ERR;
        if (!bind(r, &it, n->a, &items[i])) return EX_ERR;
        int x = exec_body(r, &it, n->kids[0], cap);
        if (x == EX_ERR) return EX_ERR;
        if (x == EX_BREAK) break;
    }
    if (count == 0 && n->d) return exec_body(r, f, n->d, cap);
    return EX_OK;
}

static int exec_stmt(ct_render *r, ct_frame *f, const ct_node *n, ct_buf *cap) {
    if (!ct_charge(r, 1)) return EX_ERR;
    r->line = n->line;
    switch (n->type) {
    case N_TEXT: return emit(r, cap, n->cval.s.p, n->cval.s.n) ? EX_OK : EX_ERR;
    case N_OUT: {
        ct_value v;
        if (!eval(r, f, n->a, &v)) return EX_ERR;
        if (v.kind == CT_STR) return emit(r, cap, v.s.p, v.s.n) ? EX_OK : EX_ERR;
        ct_str s;
        if (!ct_to_str(r, &v, &s)) return EX_ERR;
        return emit(r, cap, s.p, s.n) ? EX_OK : EX_ERR;
    }
    case N_IF:
        for (int i = 0; i + 1 < n->n_kids; i += 2) {
            ct_value c;
            if (!eval(r, f, n->kids[i], &c)) return EX_ERR;
            if (ct_truthy(&c)) return exec_body(r, f, n->kids[i + 1], cap);
        }
        return n->c ? exec_body(r, f, n->c, cap) : EX_OK;
    case N_FOR: return exec_for(r, f, n, cap);
    case N_SET: {
        ct_value v;
        if (!eval(r, f, n->b, &v)) return EX_ERR;
        r->line = n->line;
        if (n->a->type == N_ATTR) {
            const ct_value *ns = lookup(f, n->a->a->name);
            if (!ns || ns->kind != CT_NS) {
                ct_error(r, "cannot assign attribute '%.*s' on '%.*s': not a namespace", (int)n->a->name.n,
                         n->a->name.p, (int)n->a->a->name.n, n->a->a->name.p);
                return EX_ERR;
            }
            return ct_dict_set(r, ns->d, ct_string(n->a->name.p, n->a->name.n), v) ? EX_OK : EX_ERR;
        }
        return bind(r, f, n->a, &v) ? EX_OK : EX_ERR;
    }
    case N_SETBLOCK: {
        ct_buf b = {0};
        int x = exec_body(r, f, n->b, &b);
        if (x == EX_ERR) return x;
        return frame_set(r, f, n->a->name, ct_string(b.p ? b.p : "", b.n)) ? x : EX_ERR;
    }
    case N_BREAK: return EX_BREAK;
    case N_CONTINUE: return EX_CONTINUE;
    case N_BLOCK: return exec_body(r, f, n, cap);
    default: ct_error(r, "internal: not a statement"); return EX_ERR;
    }
}

static int exec_body(ct_render *r, ct_frame *f, const ct_node *b, ct_buf *cap) {
    for (int i = 0; i < b->n_kids; i++) {
        int x = exec_stmt(r, f, b->kids[i], cap);
        if (x != EX_OK) return x;
    }
    return EX_OK;
}

bool ct_render_node(ct_render *r, ct_frame *f, const ct_node *root) {
    int x = exec_body(r, f, root, NULL);
    if (x == EX_ERR) return false;
    if (x != EX_OK) return ct_error(r, "'break' or 'continue' outside a loop");
    return true;
}
