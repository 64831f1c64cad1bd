/* Chat template built-ins: attribute and item access, filters, tests, str /
 * dict / loop methods and the global functions (range, namespace, dict,
 * raise_exception), each with the Python / jinja2 behaviour chat templates
 * rely on. */
#include "template/impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const ct_str no_name = {0};

static bool undef_err(ct_render *r, const ct_value *u) {
    if (u->s.n) return ct_error(r, "'%.*s' is undefined", (int)(u->s.n > 60 ? 60 : u->s.n), u->s.p);
    return ct_error(r, "an undefined value was used");
}

/* ---------------------------------------------------------------- arguments */

/* Argument i by position, or by keyword `name`; NULL when absent. */
static const ct_value *arg(const ct_args *a, int i, const char *name) {
    if (i >= 0 && i < a->n_pos) return &a->pos[i];
    for (int k = 0; name && k < a->n_kw; k++)
        if (ct_str_eq(a->kw[k], name)) return &a->kwv[k];
    return NULL;
}

static bool check_args(ct_render *r, const char *fn, const ct_args *a, int max_pos, const char *const *kw) {
    if (a->n_pos > max_pos) return ct_error(r, "%s: too many positional arguments", fn);
    for (int k = 0; k < a->n_kw; k++) {
        bool ok = false;
        for (int j = 0; kw && kw[j]; j++) ok |= ct_str_eq(a->kw[k], kw[j]);
        if (!ok)
            return ct_error(r, "%s: unexpected keyword argument '%.*s'", fn, (int)(a->kw[k].n > 40 ? 40 : a->kw[k].n),
                            a->kw[k].p);
    }
    return true;
}

static bool want_str(ct_render *r, const char *fn, const ct_value *v, ct_str *out) {
    *out = (ct_str){"", 0};
    if (!v || v->kind != CT_STR)
        return ct_error(r, "%s: expected a string argument, got %s", fn, v ? ct_kind_name(v) : "nothing");
    *out = v->s;
    return true;
}

static bool want_int(ct_render *r, const char *fn, const ct_value *v, int64_t *out) {
    *out = 0;
    if (!v || (v->kind != CT_INT && v->kind != CT_BOOL))
        return ct_error(r, "%s: expected an integer argument, got %s", fn, v ? ct_kind_name(v) : "nothing");
    *out = v->kind == CT_BOOL ? v->b : v->i;
    return true;
}

/* ---------------------------------------------------------------- string helpers */

static bool cp_in(uint32_t cp, const ct_str *chars) {
    uint32_t c;
    for (size_t i = 0; i < chars->n;) {
        i += ct_utf8_next(chars->p + i, chars->n - i, &c);
        if (c == cp) return true;
    }
    return false;
}

/* str.strip / lstrip / rstrip (chars NULL: whitespace) */
static ct_str strip(ct_str s, const ct_str *chars, bool left, bool right) {
    size_t a = 0, b = s.n;
    uint32_t cp;
    if (left) {
        while (a < b) {
            size_t k = ct_utf8_next(s.p + a, b - a, &cp);
            if (!(chars ? cp_in(cp, chars) : ct_is_space(cp))) break;
            a += k;
        }
    }
    if (right) {
        size_t end = a, i = a;
        while (i < b) {
            size_t k = ct_utf8_next(s.p + i, b - i, &cp);
            i += k;
            if (!(chars ? cp_in(cp, chars) : ct_is_space(cp))) end = i;
        }
        b = end;
    }
    return (ct_str){s.p + a, b - a};
}

enum { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAPITALIZE, CASE_JTITLE };

static bool is_word_delim(uint32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || ct_is_space(cp);
}

static bool change_case(ct_render *r, ct_str s, int mode, ct_value *out) {
    char *p = ct_ralloc(r, s.n + 1);
    if (!p || !ct_charge(r, s.n / 16)) return false;
    size_t o = 0;
    bool prev_cased = false, first = true, word_start = true;
    uint32_t cp;
    for (size_t i = 0; i < s.n;) {
        size_t k = ct_utf8_next(s.p + i, s.n - i, &cp);
        uint32_t m;
        bool up;
        switch (mode) {
        case CASE_UPPER: up = true; break;
        case CASE_LOWER: up = false; break;
        case CASE_TITLE: up = !prev_cased; break;
        case CASE_CAPITALIZE: up = first; break;
        default: up = word_start; break;
        }
        if (up && cp == 0xDF && mode == CASE_UPPER) {
            p[o++] = 'S';
            p[o++] = 'S';
        } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
            p[o++] = s.p[i];
        } else {
            m = up ? ct_upper(cp) : ct_lower(cp);
            o += ct_utf8_put(p + o, m);
        }
        prev_cased = ct_is_cased(cp);
        word_start = is_word_delim(cp);
        first = false;
        i += k;
    }
    *out = ct_string(p, o);
    return true;
}

static bool str_replace(ct_render *r, ct_str s, ct_str old, ct_str rep, int64_t count, ct_value *out) {
    if (count < 0) count = INT64_MAX;
    ct_buf b = {0};
    if (!ct_buf_put(r, &b, "", 0)) return false;
    if (old.n == 0) {
        /* Python: the replacement goes before every character and at the end */
        uint32_t cp;
        size_t i = 0;
        int64_t done = 0;
        for (; i < s.n && done < count; done++) {
            size_t k = ct_utf8_next(s.p + i, s.n - i, &cp);
            if (!ct_buf_put(r, &b, rep.p, rep.n) || !ct_buf_put(r, &b, s.p + i, k)) return false;
            i += k;
        }
        if (done < count && !ct_buf_put(r, &b, rep.p, rep.n)) return false;
        if (!ct_buf_put(r, &b, s.p + i, s.n - i)) return false;
    } else {
        size_t i = 0;
        int64_t done = 0;
        while (done < count && i <= s.n) {
            const char *hit = s.n - i >= old.n ? memmem(s.p + i, s.n - i, old.p, old.n) : NULL;
            if (!hit) break;
            size_t at = (size_t)(hit - s.p);
            if (!ct_buf_put(r, &b, s.p + i, at - i) || !ct_buf_put(r, &b, rep.p, rep.n)) return false;
            i = at + old.n;
            done++;
        }
        if (!ct_buf_put(r, &b, s.p + i, s.n - i)) return false;
    }
    *out = ct_string(b.p, b.n);
    return true;
}

/* str.split(sep=None, maxsplit=-1) */
static bool str_split(ct_render *r, ct_str s, const ct_str *sep, int64_t maxsplit, ct_value *out) {
    if (sep && sep->n == 0) return ct_error(r, "split: empty separator");
    if (maxsplit < 0) maxsplit = INT64_MAX;
    ct_value *parts = NULL;
    size_t n = 0, cap = 0;
    size_t i = 0;
    int64_t splits = 0;
    for (;;) {
        ct_str piece;
        bool last = false;
        if (!sep) {
            while (i < s.n && ct_space_at(s.p + i, s.n - i)) i += ct_space_at(s.p + i, s.n - i);
            if (i >= s.n) break;
            size_t j = i;
            if (splits >= maxsplit) {
                piece = (ct_str){s.p + i, s.n - i};
                last = true;
            } else {
                uint32_t cp;
                while (j < s.n && !ct_space_at(s.p + j, s.n - j)) j += ct_utf8_next(s.p + j, s.n - j, &cp);
                piece = (ct_str){s.p + i, j - i};
                i = j;
            }
        } else {
            const char *hit =
                splits < maxsplit && s.n - i >= sep->n ? memmem(s.p + i, s.n - i, sep->p, sep->n) : NULL;
            if (!hit) {
                piece = (ct_str){s.p + i, s.n - i};
                last = true;
            } else {
                piece = (ct_str){s.p + i, (size_t)(hit - (s.p + i))};
                i = (size_t)(hit - s.p) + sep->n;
            }
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            ct_value *np = ct_ralloc(r, nc * sizeof *np);
            if (!np) return false;
            if (n) memcpy(np, parts, n * sizeof *np);
            parts = np;
            cap = nc;
        }
        parts[n++] = ct_string(piece.p, piece.n);
        splits++;
        if (!ct_charge(r, 1)) return false;
        if (last) break;
    }
    ct_list *l = ct_list_new(r, 0);
    if (!l) return false;
    l->v = parts;
    l->n = n;
    *out = (ct_value){.kind = CT_LIST, .l = l};
    return true;
}

static bool affix(ct_render *r, const char *fn, ct_str s, const ct_value *what, bool suffix, bool *res) {
    const ct_value *items = what;
    size_t n = 1;
    if (what && what->kind == CT_TUPLE) {
        items = what->l->v;
        n = what->l->n;
    }
    *res = false;
    for (size_t i = 0; i < n; i++) {
        ct_str a = {0};
        if (!want_str(r, fn, &items[i], &a)) return false;
        if (a.n <= s.n && (a.n == 0 || memcmp(suffix ? s.p + s.n - a.n : s.p, a.p, a.n) == 0)) *res = true;
    }
    return true;
}

/* ---------------------------------------------------------------- access */

static bool loop_attr(ct_render *r, const ct_loop *l, ct_str name, ct_value *out) {
    (void)r;
    int64_t i = l->index0, n = l->length;
    if (ct_str_eq(name, "index")) *out = ct_int(i + 1);
    else if (ct_str_eq(name, "index0")) *out = ct_int(i);
    else if (ct_str_eq(name, "revindex")) *out = ct_int(n - i);
    else if (ct_str_eq(name, "revindex0")) *out = ct_int(n - i - 1);
    else if (ct_str_eq(name, "first")) *out = ct_bool(i == 0);
    else if (ct_str_eq(name, "last")) *out = ct_bool(i == n - 1);
    else if (ct_str_eq(name, "length")) *out = ct_int(n);
    else if (ct_str_eq(name, "depth")) *out = ct_int(1);
    else if (ct_str_eq(name, "depth0")) *out = ct_int(0);
    else if (ct_str_eq(name, "previtem")) *out = i > 0 ? l->items[i - 1] : ct_undef(ct_cstr("previtem"));
    else if (ct_str_eq(name, "nextitem")) *out = i + 1 < n ? l->items[i + 1] : ct_undef(ct_cstr("nextitem"));
    else *out = ct_undef(name);
    return true;
}

static const char *const str_methods[] = {
    "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "upper", "lower", "title", "capitalize",
    "replace", "find", "count", "join", "isspace", "isdigit", "isalpha", "isalnum", "islower", "isupper", NULL,
};
static const char *const dict_methods[] = {"items", "keys", "values", "get", NULL};

static bool in_list(const char *const *list, ct_str name) {
    for (int i = 0; list[i]; i++)
        if (ct_str_eq(name, list[i])) return true;
    return false;
}

bool ct_has_method(const ct_value *self, ct_str name) {
    switch (self->kind) {
    case CT_STR: return in_list(str_methods, name);
    case CT_DICT: return in_list(dict_methods, name);
    case CT_LOOP: return ct_str_eq(name, "cycle");
    default: return false;
    }
}

static bool bound_method(ct_render *r, const ct_value *self, ct_str name, ct_value *out) {
    ct_method *m = ct_ralloc(r, sizeof *m);
    if (!m) return false;
    m->self = *self;
    m->name = name;
    *out = (ct_value){.kind = CT_METHOD, .m = m};
    return true;
}

bool ct_getattr(ct_render *r, const ct_value *obj, ct_str name, ct_value *out) {
    switch (obj->kind) {
    case CT_UNDEF: return undef_err(r, obj);
    case CT_DICT: {
        if (ct_has_method(obj, name)) return bound_method(r, obj, name, out);
        const ct_value *v = ct_dict_get_str(obj->d, name.p, name.n);
        *out = v ? *v : ct_undef(name);
        return true;
    }
    case CT_NS: {
        const ct_value *v = ct_dict_get_str(obj->d, name.p, name.n);
        *out = v ? *v : ct_undef(name);
        return true;
    }
    case CT_LOOP:
        if (ct_str_eq(name, "cycle")) return bound_method(r, obj, name, out);
        return loop_attr(r, obj->loop, name, out);
    case CT_STR:
        if (ct_has_method(obj, name)) return bound_method(r, obj, name, out);
        *out = ct_undef(name);
        return true;
    default: *out = ct_undef(name); return true;
    }
}

bool ct_getitem(ct_render *r, const ct_value *obj, const ct_value *key, ct_value *out) {
    bool int_key = key->kind == CT_INT || key->kind == CT_BOOL;
    int64_t k = key->kind == CT_BOOL ? key->b : key->i;
    switch (obj->kind) {
    case CT_UNDEF: return undef_err(r, obj);
    case CT_DICT: {
        const ct_value *v = ct_dict_get(r, obj->d, key);
        if (r->err->code) return false;
        if (v) {
            *out = *v;
            return true;
        }
        break;
    }
    case CT_LIST:
    case CT_TUPLE:
        if (int_key) {
            int64_t n = (int64_t)obj->l->n;
            if (k < 0) k += n;
            if (k >= 0 && k < n) {
                *out = obj->l->v[k];
                return true;
            }
        }
        break;
    case CT_STR:
        if (int_key) {
            int64_t n = (int64_t)ct_utf8_len(obj->s);
            if (!ct_charge(r, (uint64_t)n / 64)) return false;
            if (k < 0) k += n;
            if (k >= 0 && k < n) {
                size_t i = 0, len = 0;
                uint32_t cp;
                for (int64_t j = 0; j <= k; j++) {
                    i += len;
                    len = ct_utf8_next(obj->s.p + i, obj->s.n - i, &cp);
                }
                *out = ct_string(obj->s.p + i, len);
                return true;
            }
        }
        break;
    default: break;
    }
    /* jinja2: a failed item lookup with a string key tries the attribute */
    if (key->kind == CT_STR && obj->kind != CT_DICT) return ct_getattr(r, obj, key->s, out);
    if (key->kind == CT_STR && ct_has_method(obj, key->s)) return bound_method(r, obj, key->s, out);
    *out = ct_undef(key->kind == CT_STR ? key->s : no_name);
    return true;
}

/* ---------------------------------------------------------------- methods */

static bool list_of(ct_render *r, size_t n, ct_kind kind, ct_value *out, ct_list **l) {
    if (!(*l = ct_list_new(r, n))) return false;
    *out = (ct_value){.kind = (uint8_t)kind, .l = *l};
    return true;
}

static bool str_method(ct_render *r, ct_str s, ct_str name, const ct_args *a, ct_value *out) {
    char fn[32];
    size_t fl = name.n < sizeof fn - 1 ? name.n : sizeof fn - 1;
    memcpy(fn, name.p, fl);
    fn[fl] = 0;
    if (ct_str_eq(name, "strip") || ct_str_eq(name, "lstrip") || ct_str_eq(name, "rstrip")) {
        if (!check_args(r, fn, a, 1, NULL)) return false;
        const ct_value *c = arg(a, 0, NULL);
        ct_str chars;
        if (c && c->kind != CT_NONE && !want_str(r, fn, c, &chars)) return false;
        ct_str res = strip(s, c && c->kind != CT_NONE ? &chars : NULL, name.p[0] != 'r', name.p[0] != 'l');
        *out = ct_string(res.p, res.n);
        return true;
    }
    if (ct_str_eq(name, "startswith") || ct_str_eq(name, "endswith")) {
        bool res;
        if (!check_args(r, fn, a, 1, NULL) || !affix(r, fn, s, arg(a, 0, NULL), name.p[0] == 'e', &res))
            return false;
        *out = ct_bool(res);
        return true;
    }
    if (ct_str_eq(name, "split")) {
        static const char *const kw[] = {"sep", "maxsplit", NULL};
        if (!check_args(r, fn, a, 2, kw)) return false;
        const ct_value *sep = arg(a, 0, "sep"), *max = arg(a, 1, "maxsplit");
        ct_str sp;
        int64_t m = -1;
        if (sep && sep->kind != CT_NONE && !want_str(r, fn, sep, &sp)) return false;
        if (max && !want_int(r, fn, max, &m)) return false;
        return str_split(r, s, sep && sep->kind != CT_NONE ? &sp : NULL, m, out);
    }
    if (ct_str_eq(name, "upper") || ct_str_eq(name, "lower") || ct_str_eq(name, "title") ||
        ct_str_eq(name, "capitalize")) {
        if (!check_args(r, fn, a, 0, NULL)) return false;
        int mode = name.p[0] == 'u' ? CASE_UPPER : name.p[0] == 'l' ? CASE_LOWER : name.p[0] == 't' ? CASE_TITLE
                                                                                                   : CASE_CAPITALIZE;
        return change_case(r, s, mode, out);
    }
    if (ct_str_eq(name, "replace")) {
        static const char *const kw[] = {"count", NULL};
        ct_str old, rep;
        int64_t count = -1;
        if (!check_args(r, fn, a, 3, kw) || !want_str(r, fn, arg(a, 0, NULL), &old) ||
            !want_str(r, fn, arg(a, 1, NULL), &rep))
            return false;
        if (arg(a, 2, "count") && !want_int(r, fn, arg(a, 2, "count"), &count)) return false;
        return str_replace(r, s, old, rep, count, out);
    }
    if (ct_str_eq(name, "find") || ct_str_eq(name, "count")) {
        ct_str sub;
        if (!check_args(r, fn, a, 1, NULL) || !want_str(r, fn, arg(a, 0, NULL), &sub)) return false;
        if (!ct_charge(r, s.n / 16)) return false;
        if (name.p[0] == 'f') {
            const char *hit = sub.n <= s.n ? (sub.n ? memmem(s.p, s.n, sub.p, sub.n) : s.p) : NULL;
            *out = ct_int(hit ? (int64_t)ct_utf8_len((ct_str){s.p, (size_t)(hit - s.p)}) : -1);
        } else if (sub.n == 0) {
            *out = ct_int((int64_t)ct_utf8_len(s) + 1);
        } else {
            int64_t c = 0;
            for (size_t i = 0; i + sub.n <= s.n;) {
                const char *hit = memmem(s.p + i, s.n - i, sub.p, sub.n);
                if (!hit) break;
                c++;
                i = (size_t)(hit - s.p) + sub.n;
            }
            *out = ct_int(c);
        }
        return true;
    }
    if (ct_str_eq(name, "join")) {
        const ct_value *items;
        size_t n;
        if (!check_args(r, fn, a, 1, NULL) || !arg(a, 0, NULL)) return ct_error(r, "join: expected one argument");
        if (!ct_iterate(r, arg(a, 0, NULL), &items, &n)) return false;
        ct_buf b = {0};
        if (!ct_buf_put(r, &b, "", 0)) return false;
        for (size_t i = 0; i < n; i++) {
            if (items[i].kind != CT_STR)
                return ct_error(r, "join: sequence item %zu: expected str instance, %s found", i,
                                ct_kind_name(&items[i]));
            if ((i && !ct_buf_put(r, &b, s.p, s.n)) || !ct_buf_put(r, &b, items[i].s.p, items[i].s.n)) return false;
        }
        *out = ct_string(b.p, b.n);
        return true;
    }
    /* predicates */
    if (!check_args(r, fn, a, 0, NULL)) return false;
    bool any = false, all = true, has_upper = false, has_lower = false;
    uint32_t cp;
    for (size_t i = 0; i < s.n;) {
        i += ct_utf8_next(s.p + i, s.n - i, &cp);
        any = true;
        bool digit = cp >= '0' && cp <= '9';
        bool alpha = ct_is_cased(cp) || (cp >= 0x3040 && cp <= 0x9FFF); /* approximation beyond the cased scripts */
        if (ct_str_eq(name, "isspace")) all &= ct_is_space(cp);
        else if (ct_str_eq(name, "isdigit")) all &= digit;
        else if (ct_str_eq(name, "isalpha")) all &= alpha;
        else if (ct_str_eq(name, "isalnum")) all &= alpha || digit;
        if (ct_upper(cp) != cp) has_lower = true;
        if (ct_lower(cp) != cp) has_upper = true;
    }
    if (ct_str_eq(name, "islower")) *out = ct_bool(has_lower && !has_upper);
    else if (ct_str_eq(name, "isupper")) *out = ct_bool(has_upper && !has_lower);
    else *out = ct_bool(any && all);
    return true;
}

static bool dict_method(ct_render *r, const ct_dict *d, ct_str name, const ct_args *a, ct_value *out) {
    ct_list *l;
    if (ct_str_eq(name, "get")) {
        if (!check_args(r, "get", a, 2, NULL) || !arg(a, 0, NULL)) return ct_error(r, "get: expected a key");
        const ct_value *v = ct_dict_get(r, d, arg(a, 0, NULL));
        if (r->err->code) return false;
        *out = v ? *v : arg(a, 1, NULL) ? *arg(a, 1, NULL) : ct_none();
        return true;
    }
    if (!check_args(r, "dict method", a, 0, NULL)) return false;
    if (!list_of(r, d->n, CT_LIST, out, &l)) return false;
    for (size_t i = 0; i < d->n; i++) {
        if (name.p[0] == 'k') {
            l->v[i] = d->k[i];
        } else if (name.p[0] == 'v') {
            l->v[i] = d->v[i];
        } else {
            ct_value pair;
            ct_list *p;
            if (!list_of(r, 2, CT_TUPLE, &pair, &p)) return false;
            p->v[0] = d->k[i];
            p->v[1] = d->v[i];
            l->v[i] = pair;
        }
    }
    return true;
}

bool ct_call_method(ct_render *r, const ct_value *self, ct_str name, const ct_args *args, ct_value *out,
                    bool *found) {
    *found = ct_has_method(self, name);
    if (!*found) return ct_error(r, "'%s' object has no method '%.*s'", ct_kind_name(self), (int)name.n, name.p);
    if (self->kind == CT_STR) return str_method(r, self->s, name, args, out);
    if (self->kind == CT_DICT) return dict_method(r, self->d, name, args, out);
    /* loop.cycle(a, b, ...) */
    if (args->n_pos == 0) return ct_error(r, "loop.cycle: no items given");
    *out = args->pos[self->loop->index0 % args->n_pos];
    return true;
}

/* ---------------------------------------------------------------- functions */

bool ct_call_func(ct_render *r, int fn, const ct_args *a, ct_value *out) {
    switch (fn) {
    case CT_FN_RANGE: {
        int64_t v[3] = {0, 0, 1};
        if (a->n_kw || a->n_pos < 1 || a->n_pos > 3) return ct_error(r, "range: expected 1 to 3 integers");
        for (int i = 0; i < a->n_pos; i++)
            if (!want_int(r, "range", &a->pos[i], &v[i])) return false;
        int64_t start = a->n_pos == 1 ? 0 : v[0], stop = a->n_pos == 1 ? v[0] : v[1], step = a->n_pos == 3 ? v[2] : 1;
        if (step == 0) return ct_error(r, "range: step must not be zero");
        double cnt = step > 0 ? ceil(((double)stop - (double)start) / (double)step)
                              : ceil(((double)start - (double)stop) / (double)-step);
        if (cnt < 0) cnt = 0;
        if (cnt > CHAT_TEMPLATE_MAX_RANGE)
            return ct_error(r, "range: more than %d items (the sandbox's limit)", CHAT_TEMPLATE_MAX_RANGE);
        ct_list *l;
        if (!list_of(r, (size_t)cnt, CT_LIST, out, &l)) return false;
        for (size_t i = 0; i < l->n; i++) l->v[i] = ct_int(start + (int64_t)i * step);
        return true;
    }
    case CT_FN_NAMESPACE:
    case CT_FN_DICT: {
        if (a->n_pos > 1) return ct_error(r, "namespace/dict: at most one positional argument");
        ct_dict *d = ct_dict_new(r, 4);
        if (!d) return false;
        if (a->n_pos == 1) {
            if (a->pos[0].kind != CT_DICT) return ct_error(r, "namespace/dict: the argument must be a dict");
            for (size_t i = 0; i < a->pos[0].d->n; i++)
                if (!ct_dict_set(r, d, a->pos[0].d->k[i], a->pos[0].d->v[i])) return false;
        }
        for (int i = 0; i < a->n_kw; i++)
            if (!ct_dict_set(r, d, ct_string(a->kw[i].p, a->kw[i].n), a->kwv[i])) return false;
        *out = (ct_value){.kind = fn == CT_FN_NAMESPACE ? CT_NS : CT_DICT, .d = d};
        return true;
    }
    case CT_FN_RAISE: {
        ct_str msg = {"", 0};
        const ct_value *m = arg(a, 0, "message");
        if (m && !ct_to_str(r, m, &msg)) return false;
        if (!r->err->code) {
            int n = msg.n > RYOT_ERROR_MSG_MAX - 1 ? RYOT_ERROR_MSG_MAX - 1 : (int)msg.n;
            ryot_fail(r->err, RYOT_ERR_INVALID, "%.*s", n, msg.p);
            r->raised = true;
        }
        return false;
    }
    }
    return ct_error(r, "internal: unknown function");
}

/* ---------------------------------------------------------------- tests */

static const char *const test_names[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false",
    "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq", "equalto", "==",
    "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "lower",
    "upper", "sameas", "escaped", NULL,
};

bool ct_test_known(ct_str name) { return in_list(test_names, name); }

bool ct_call_test(ct_render *r, ct_str name, const ct_value *x, const ct_args *a, bool *out) {
    ct_kind k = (ct_kind)x->kind;
    const ct_value *y = arg(a, 0, NULL);
    char fn[32];
    size_t fl = name.n < sizeof fn - 1 ? name.n : sizeof fn - 1;
    memcpy(fn, name.p, fl);
    fn[fl] = 0;
    if (ct_str_eq(name, "defined")) *out = k != CT_UNDEF;
    else if (ct_str_eq(name, "undefined")) *out = k == CT_UNDEF;
    else if (ct_str_eq(name, "none")) *out = k == CT_NONE;
    else if (ct_str_eq(name, "string")) *out = k == CT_STR;
    else if (ct_str_eq(name, "number")) *out = k == CT_INT || k == CT_FLOAT || k == CT_BOOL;
    else if (ct_str_eq(name, "integer")) *out = k == CT_INT;
    else if (ct_str_eq(name, "float")) *out = k == CT_FLOAT;
    else if (ct_str_eq(name, "boolean")) *out = k == CT_BOOL;
    else if (ct_str_eq(name, "true")) *out = k == CT_BOOL && x->b;
    else if (ct_str_eq(name, "false")) *out = k == CT_BOOL && !x->b;
    else if (ct_str_eq(name, "mapping")) *out = k == CT_DICT;
    else if (ct_str_eq(name, "iterable"))
        *out = k == CT_UNDEF || k == CT_STR || k == CT_LIST || k == CT_TUPLE || k == CT_DICT;
    else if (ct_str_eq(name, "sequence"))
        *out = k == CT_UNDEF || k == CT_STR || k == CT_LIST || k == CT_TUPLE || k == CT_DICT;
    else if (ct_str_eq(name, "callable")) *out = k == CT_FUNC || k == CT_METHOD;
    else if (ct_str_eq(name, "escaped")) *out = false;
    else if (ct_str_eq(name, "odd") || ct_str_eq(name, "even") || ct_str_eq(name, "divisibleby")) {
        if (k == CT_UNDEF) return undef_err(r, x);
        int64_t v, d = 2;
        if (!want_int(r, fn, x, &v)) return false;
        if (name.p[0] == 'd' && !want_int(r, fn, y, &d)) return false;
        if (d == 0) return ct_error(r, "divisibleby: division by zero");
        int64_t m = d == -1 ? 0 : v % d;
        *out = name.p[0] == 'o' ? m != 0 : m == 0;
    } else if (ct_str_eq(name, "lower") || ct_str_eq(name, "upper")) {
        ct_str s;
        ct_value res;
        if (!ct_to_str(r, x, &s)) return false;
        ct_args none = {0};
        if (!str_method(r, s, name.p[0] == 'l' ? ct_cstr("islower") : ct_cstr("isupper"), &none, &res)) return false;
        *out = res.b;
    } else if (ct_str_eq(name, "sameas")) {
        if (!y) return ct_error(r, "sameas: expected an argument");
        bool scalar = k == CT_NONE || k == CT_BOOL || k == CT_UNDEF;
        *out = x->kind == y->kind && (scalar ? ct_equal(r, x, y, 0) : ct_equal(r, x, y, 0) && x->l == y->l);
    } else {
        /* comparisons */
        if (!y) return ct_error(r, "test '%s' expects an argument", fn);
        int op = name.p[0] == 'e' || name.p[0] == '=' ? OP_EQ
                 : name.p[0] == 'n' || name.p[0] == '!' ? OP_NE
                 : ct_str_eq(name, "in")                 ? OP_IN
                 : (name.p[0] == 'l' || name.p[0] == '<') ? (ct_str_eq(name, "le") || ct_str_eq(name, "<=") ? OP_LE : OP_LT)
                 : (ct_str_eq(name, "ge") || ct_str_eq(name, ">=")) ? OP_GE
                                                                      : OP_GT;
        switch (op) {
        case OP_EQ: *out = ct_equal(r, x, y, 0); break;
        case OP_NE: *out = !ct_equal(r, x, y, 0); break;
        case OP_LT: return ct_less(r, x, y, out, 0);
        case OP_GT: return ct_less(r, y, x, out, 0);
        case OP_LE: {
            bool lt;
            if (!ct_less(r, x, y, &lt, 0)) return false;
            *out = lt || ct_equal(r, x, y, 0);
            break;
        }
        case OP_GE: {
            bool lt;
            if (!ct_less(r, y, x, &lt, 0)) return false;
            *out = lt || ct_equal(r, x, y, 0);
            break;
        }
        default: {
            bool found = false;
            if (y->kind == CT_STR) {
                if (x->kind != CT_STR) return ct_error(r, "'in <string>' requires string as left operand");
                *out = x->s.n == 0 || (y->s.n && memmem(y->s.p, y->s.n, x->s.p, x->s.n));
                return true;
            }
            const ct_value *items;
            size_t n;
            if (y->kind == CT_DICT) {
                *out = ct_dict_get(r, y->d, x) != NULL;
                return !r->err->code;
            }
            if (!ct_iterate(r, y, &items, &n)) return false;
            for (size_t i = 0; i < n && !found; i++) found = ct_equal(r, x, &items[i], 0);
            *out = found;
        }
        }
    }
    return !r->err->code;
}

/* ---------------------------------------------------------------- filters */

static const char *const filter_names[] = {
    "trim", "upper", "lower", "capitalize", "title", "length", "count", "default", "d", "first", "last", "join",
    "replace", "tojson", "string", "int", "float", "list", "abs", "reverse", "sort", "items", "map", "select",
    "reject", "selectattr", "rejectattr", "indent", "safe", "escape", "e", "unique", "min", "max", "sum", "dictsort",
    NULL,
};

bool ct_filter_known(ct_str name) { return in_list(filter_names, name); }

static bool seq_len(ct_render *r, const ct_value *x, int64_t *n) {
    switch (x->kind) {
    case CT_UNDEF: *n = 0; return true;
    case CT_STR: *n = (int64_t)ct_utf8_len(x->s); return true;
    case CT_LIST:
    case CT_TUPLE: *n = (int64_t)x->l->n; return true;
    case CT_DICT:
    case CT_NS: *n = (int64_t)x->d->n; return true;
    default: return ct_error(r, "object of type '%s' has no len()", ct_kind_name(x));
    }
}

/* Sorting: a merge sort (stable, like Python's) over values, by an optional
 * attribute, case-insensitively for strings unless asked otherwise. */
typedef struct sort_ctx {
    ct_render *r;
    bool case_sensitive, reverse;
} sort_ctx;

static bool sort_key(ct_render *r, const ct_value *v, const ct_value *attr, bool case_sensitive, ct_value *out) {
    *out = *v;
    if (attr && !ct_getitem(r, v, attr, out)) return false;
    if (!case_sensitive && out->kind == CT_STR) return change_case(r, out->s, CASE_LOWER, out);
    return true;
}

static bool merge_sort(sort_ctx *s, ct_value *items, ct_value *keys, size_t n, ct_value *tmp_i, ct_value *tmp_k) {
    if (n < 2) return true;
    size_t h = n / 2;
    if (!merge_sort(s, items, keys, h, tmp_i, tmp_k) || !merge_sort(s, items + h, keys + h, n - h, tmp_i, tmp_k))
        return false;
    size_t i = 0, j = h, o = 0;
    while (i < h && j < n) {
        bool lt;
        /* take from the right only when strictly before the left (stability) */
        if (!(s->reverse ? ct_less(s->r, &keys[i], &keys[j], &lt, 0) : ct_less(s->r, &keys[j], &keys[i], &lt, 0)))
            return false;
        if (lt) tmp_i[o] = items[j], tmp_k[o++] = keys[j++];
        else tmp_i[o] = items[i], tmp_k[o++] = keys[i++];
    }
    while (i < h) tmp_i[o] = items[i], tmp_k[o++] = keys[i++];
    while (j < n) tmp_i[o] = items[j], tmp_k[o++] = keys[j++];
    memcpy(items, tmp_i, n * sizeof *items);
    memcpy(keys, tmp_k, n * sizeof *keys);
    return ct_charge(s->r, n);
}

static bool do_sort(ct_render *r, const ct_value *x, const ct_args *a, ct_value *out) {
    static const char *const kw[] = {"reverse", "case_sensitive", "attribute", NULL};
    if (!check_args(r, "sort", a, 3, kw)) return false;
    const ct_value *rev = arg(a, 0, "reverse"), *cs = arg(a, 1, "case_sensitive"), *attr = arg(a, 2, "attribute");
    const ct_value *items;
    size_t n;
    if (!ct_iterate(r, x, &items, &n)) return false;
    ct_list *l;
    if (!list_of(r, n, CT_LIST, out, &l)) return false;
    ct_value *keys = ct_ralloc(r, (n + 1) * sizeof *keys), *ti = ct_ralloc(r, (n + 1) * sizeof *ti),
             *tk = ct_ralloc(r, (n + 1) * sizeof *tk);
    if (!keys || !ti || !tk) return false;
    sort_ctx s = {r, cs && ct_truthy(cs), rev && ct_truthy(rev)};
    for (size_t i = 0; i < n; i++) {
        l->v[i] = items[i];
        if (!sort_key(r, &items[i], attr, s.case_sensitive, &keys[i])) return false;
    }
    return merge_sort(&s, l->v, keys, n, ti, tk);
}

/* map / select / reject / selectattr / rejectattr */
static bool do_select(ct_render *r, ct_str name, const ct_value *x, const ct_args *a, ct_value *out) {
    const ct_value *items;
    size_t n;
    if (!ct_iterate(r, x, &items, &n)) return false;
    ct_list *l;
    if (!list_of(r, n, CT_LIST, out, &l)) return false;
    size_t k = 0;
    bool is_map = ct_str_eq(name, "map"), by_attr = name.n > 6 && memcmp(name.p + name.n - 4, "attr", 4) == 0;
    bool keep_if = name.p[0] != 'r';
    for (size_t i = 0; i < n; i++) {
        ct_value v = items[i];
        if (is_map) {
            const ct_value *attr = arg(a, -1, "attribute");
            if (attr) {
                if (!ct_getitem(r, &v, attr, &v)) return false;
                if (v.kind == CT_UNDEF && arg(a, -1, "default")) v = *arg(a, -1, "default");
            } else {
                ct_str f;
                if (!want_str(r, "map", arg(a, 0, NULL), &f)) return false;
                if (!ct_filter_known(f)) return ct_error(r, "map: unknown filter '%.*s'", (int)f.n, f.p);
                ct_args rest = {a->pos + 1, a->n_pos - 1, a->kw, a->kwv, a->n_kw};
                if (!ct_call_filter(r, f, &items[i], &rest, &v)) return false;
            }
            l->v[k++] = v;
            continue;
        }
        ct_value subject = v;
        int first_test_arg = 0;
        if (by_attr) {
            if (!arg(a, 0, NULL)) return ct_error(r, "%.*s: expected an attribute name", (int)name.n, name.p);
            if (!ct_getitem(r, &v, arg(a, 0, NULL), &subject)) return false;
            first_test_arg = 1;
        }
        bool pass;
        if (a->n_pos > first_test_arg) {
            ct_str t;
            if (!want_str(r, "select", &a->pos[first_test_arg], &t)) return false;
            if (!ct_test_known(t)) return ct_error(r, "unknown test '%.*s'", (int)t.n, t.p);
            ct_args rest = {a->pos + first_test_arg + 1, a->n_pos - first_test_arg - 1, NULL, NULL, 0};
            if (!ct_call_test(r, t, &subject, &rest, &pass)) return false;
        } else {
            pass = ct_truthy(&subject);
        }
        if (pass == keep_if) l->v[k++] = v;
    }
    l->n = k;
    return true;
}

static bool do_indent(ct_render *r, ct_str s, const ct_args *a, ct_value *out) {
    static const char *const kw[] = {"width", "first", "blank", NULL};
    if (!check_args(r, "indent", a, 3, kw)) return false;
    const ct_value *w = arg(a, 0, "width"), *first = arg(a, 1, "first"), *blank = arg(a, 2, "blank");
    ct_str ind = {"    ", 4};
    char *spaces = NULL;
    if (w && w->kind == CT_STR) {
        ind = w->s;
    } else if (w) {
        int64_t n = 0;
        if (!want_int(r, "indent", w, &n)) return false;
        if (n < 0) n = 0;
        if (n > 4096) return ct_error(r, "indent: width too large");
        if (!(spaces = ct_ralloc(r, (size_t)n + 1))) return false;
        memset(spaces, ' ', (size_t)n);
        ind = (ct_str){spaces, (size_t)n};
    }
    /* jinja2 indents the lines of s + "\n" (Python's splitlines): every piece of s
     * between line terminators, an empty last one included; the first is kept as
     * it is, the others are indented unless empty (blank=true: all of them) */
    ct_buf b = {0};
    if (!ct_buf_put(r, &b, "", 0)) return false;
    if (first && ct_truthy(first) && !ct_buf_put(r, &b, ind.p, ind.n)) return false;
    bool all = blank && ct_truthy(blank);
    size_t i = 0;
    for (bool line0 = true;; line0 = false) {
        /* the line s[i..j) and its terminator s[j..k) */
        size_t j = i, k;
        uint32_t cp = 0;
        for (;;) {
            if (j >= s.n) {
                k = j;
                break;
            }
            k = j + ct_utf8_next(s.p + j, s.n - j, &cp);
            if (cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) || cp == 0x85 ||
                cp == 0x2028 || cp == 0x2029) {
                if (cp == '\r' && k < s.n && s.p[k] == '\n') k++;
                break;
            }
            j = k;
        }
        if (!line0) {
            if (!ct_buf_put(r, &b, "\n", 1)) return false;
            if ((all || j > i) && !ct_buf_put(r, &b, ind.p, ind.n)) return false;
        }
        if (!ct_buf_put(r, &b, s.p + i, j - i)) return false;
        if (j >= s.n) break; /* no terminator: that was the last line */
        i = k;
    }
    *out = ct_string(b.p, b.n);
    return true;
}

static bool do_escape(ct_render *r, ct_str s, ct_value *out) {
    ct_buf b = {0};
    if (!ct_buf_put(r, &b, "", 0)) return false;
    for (size_t i = 0; i < s.n; i++) {
        const char *e = NULL;
        switch (s.p[i]) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&#34;"; break;
        case '\'': e = "&#39;"; break;
        }
        if (!(e ? ct_buf_puts(r, &b, e) : ct_buf_put(r, &b, s.p + i, 1))) return false;
    }
    *out = ct_string(b.p, b.n);
    return true;
}

bool ct_call_filter(ct_render *r, ct_str name, const ct_value *x, const ct_args *a, ct_value *out) {
    char fn[32];
    size_t fl = name.n < sizeof fn - 1 ? name.n : sizeof fn - 1;
    memcpy(fn, name.p, fl);
    fn[fl] = 0;
    ct_str s;
    if (ct_str_eq(name, "default") || ct_str_eq(name, "d")) {
        static const char *const kw[] = {"default_value", "boolean", NULL};
        if (!check_args(r, fn, a, 2, kw)) return false;
        const ct_value *dv = arg(a, 0, "default_value"), *boolean = arg(a, 1, "boolean");
        bool use = x->kind == CT_UNDEF || (boolean && ct_truthy(boolean) && !ct_truthy(x));
        *out = use ? (dv ? *dv : ct_string("", 0)) : *x;
        return true;
    }
    if (ct_str_eq(name, "length") || ct_str_eq(name, "count")) {
        int64_t n = 0;
        if (!check_args(r, fn, a, 0, NULL) || !seq_len(r, x, &n)) return false;
        *out = ct_int(n);
        return true;
    }
    if (ct_str_eq(name, "safe")) {
        *out = *x;
        return true;
    }
    if (ct_str_eq(name, "tojson")) {
        static const char *const kw[] = {"indent", "ensure_ascii", "separators", "sort_keys", NULL};
        if (!check_args(r, fn, a, 1, kw)) return false;
        const ct_value *ind = arg(a, 0, "indent"), *sk = arg(a, -1, "sort_keys"), *ea = arg(a, -1, "ensure_ascii");
        if (arg(a, -1, "separators")) return ct_error(r, "tojson: separators= is not supported");
        if (ea && ct_truthy(ea)) return ct_error(r, "tojson: ensure_ascii=true is not supported");
        int64_t indent = -1;
        if (ind && ind->kind != CT_NONE) {
            if (!want_int(r, fn, ind, &indent)) return false;
            if (indent < 0) indent = 0;
            if (indent > 64) return ct_error(r, "tojson: indent too large");
        }
        ct_buf b = {0};
        if (!ct_buf_put(r, &b, "", 0) || !ct_write_json(r, &b, x, (int)indent, sk && ct_truthy(sk), 0)) return false;
        *out = ct_string(b.p, b.n);
        return true;
    }
    if (ct_str_eq(name, "first") || ct_str_eq(name, "last")) {
        if (!check_args(r, fn, a, 0, NULL)) return false;
        if (x->kind == CT_UNDEF) return undef_err(r, x);
        const ct_value *items;
        size_t n;
        if (!ct_iterate(r, x, &items, &n)) return false;
        *out = n ? items[name.p[0] == 'f' ? 0 : n - 1] : ct_undef(name);
        return true;
    }
    if (ct_str_eq(name, "join")) {
        static const char *const kw[] = {"d", "attribute", NULL};
        if (!check_args(r, fn, a, 2, kw)) return false;
        const ct_value *sep = arg(a, 0, "d"), *attr = arg(a, 1, "attribute");
        ct_str sp = {"", 0};
        if (sep && !ct_to_str(r, sep, &sp)) return false;
        const ct_value *items;
        size_t n;
        if (!ct_iterate(r, x, &items, &n)) return false;
        ct_buf b = {0};
        if (!ct_buf_put(r, &b, "", 0)) return false;
        for (size_t i = 0; i < n; i++) {
            ct_value v = items[i];
            ct_str piece;
            if (attr && !ct_getitem(r, &items[i], attr, &v)) return false;
            if (!ct_to_str(r, &v, &piece)) return false;
            if ((i && !ct_buf_put(r, &b, sp.p, sp.n)) || !ct_buf_put(r, &b, piece.p, piece.n)) return false;
        }
        *out = ct_string(b.p, b.n);
        return true;
    }
    if (ct_str_eq(name, "list")) {
        const ct_value *items;
        size_t n;
        ct_list *l;
        if (!check_args(r, fn, a, 0, NULL) || !ct_iterate(r, x, &items, &n) || !list_of(r, n, CT_LIST, out, &l))
            return false;
        if (n) memcpy(l->v, items, n * sizeof *items);
        return true;
    }
    if (ct_str_eq(name, "reverse")) {
        if (!check_args(r, fn, a, 0, NULL)) return false;
        if (x->kind == CT_STR) {
            char *p = ct_ralloc(r, x->s.n + 1);
            if (!p) return false;
            uint32_t cp;
            for (size_t i = 0; i < x->s.n;) {
                size_t k = ct_utf8_next(x->s.p + i, x->s.n - i, &cp);
                memcpy(p + x->s.n - i - k, x->s.p + i, k);
                i += k;
            }
            *out = ct_string(p, x->s.n);
            return true;
        }
        const ct_value *items;
        size_t n;
        ct_list *l;
        if (!ct_iterate(r, x, &items, &n) || !list_of(r, n, CT_LIST, out, &l)) return false;
        for (size_t i = 0; i < n; i++) l->v[i] = items[n - 1 - i];
        return true;
    }
    if (ct_str_eq(name, "sort")) return do_sort(r, x, a, out);
    if (ct_str_eq(name, "dictsort")) {
        /* (key, value) pairs sorted by key, or by value with by='value' */
        static const char *const kw[] = {"case_sensitive", "by", "reverse", NULL};
        if (!check_args(r, fn, a, 3, kw)) return false;
        const ct_value *cs = arg(a, 0, "case_sensitive"), *by = arg(a, 1, "by"), *rev = arg(a, 2, "reverse");
        if (x->kind != CT_DICT) return ct_error(r, "dictsort: expected a dict, got %s", ct_kind_name(x));
        bool by_value = by && by->kind == CT_STR && ct_str_eq(by->s, "value");
        if (by && !by_value && !(by->kind == CT_STR && ct_str_eq(by->s, "key")))
            return ct_error(r, "dictsort: 'by' must be 'key' or 'value'");
        ct_value items, kwv[3] = {ct_bool(rev && ct_truthy(rev)), ct_bool(cs && ct_truthy(cs)), ct_int(by_value)};
        ct_args none = {0}, sa = {kwv, 3, NULL, NULL, 0};
        return dict_method(r, x->d, ct_cstr("items"), &none, &items) && do_sort(r, &items, &sa, out);
    }
    if (ct_str_eq(name, "unique")) {
        const ct_value *items;
        size_t n;
        ct_list *l;
        if (!check_args(r, fn, a, 0, NULL) || !ct_iterate(r, x, &items, &n) || !list_of(r, n, CT_LIST, out, &l))
            return false;
        size_t k = 0;
        if (!ct_charge(r, (uint64_t)n * n / 4)) return false;
        for (size_t i = 0; i < n; i++) {
            bool dup = false;
            for (size_t j = 0; j < k && !dup; j++) {
                ct_value p = items[i], q = l->v[j];
                if (p.kind == CT_STR && q.kind == CT_STR) {
                    if (!change_case(r, p.s, CASE_LOWER, &p) || !change_case(r, q.s, CASE_LOWER, &q)) return false;
                }
                dup = ct_equal(r, &p, &q, 0);
            }
            if (!dup) l->v[k++] = items[i];
        }
        l->n = k;
        return true;
    }
    if (ct_str_eq(name, "min") || ct_str_eq(name, "max") || ct_str_eq(name, "sum")) {
        const ct_value *items;
        size_t n;
        if (!check_args(r, fn, a, 0, NULL) || !ct_iterate(r, x, &items, &n)) return false;
        if (name.p[1] == 'u') {
            ct_value acc = ct_int(0);
            for (size_t i = 0; i < n; i++) {
                if (items[i].kind != CT_INT && items[i].kind != CT_FLOAT && items[i].kind != CT_BOOL)
                    return ct_error(r, "sum: unsupported item of type '%s'", ct_kind_name(&items[i]));
                if (acc.kind == CT_INT && items[i].kind != CT_FLOAT) {
                    int64_t v = items[i].kind == CT_BOOL ? items[i].b : items[i].i;
                    if (__builtin_add_overflow(acc.i, v, &acc.i)) return ct_error(r, "sum: integer overflow");
                } else {
                    double base = acc.kind == CT_INT ? (double)acc.i : acc.f;
                    double v = items[i].kind == CT_FLOAT ? items[i].f
                                                         : (double)(items[i].kind == CT_BOOL ? items[i].b : items[i].i);
                    acc = ct_float(base + v);
                }
            }
            *out = acc;
            return true;
        }
        if (!n) {
            *out = ct_undef(name);
            return true;
        }
        ct_value best = items[0], kb;
        if (!sort_key(r, &best, NULL, false, &kb)) return false;
        for (size_t i = 1; i < n; i++) {
            ct_value ki;
            bool lt;
            if (!sort_key(r, &items[i], NULL, false, &ki)) return false;
            if (!(name.p[1] == 'i' ? ct_less(r, &ki, &kb, &lt, 0) : ct_less(r, &kb, &ki, &lt, 0))) return false;
            if (lt) best = items[i], kb = ki;
        }
        *out = best;
        return true;
    }
    if (ct_str_eq(name, "items")) {
        if (!check_args(r, fn, a, 0, NULL)) return false;
        if (x->kind == CT_UNDEF) {
            ct_list *l;
            return list_of(r, 0, CT_LIST, out, &l);
        }
        if (x->kind != CT_DICT) return ct_error(r, "items: can only get item pairs from a mapping");
        ct_args none = {0};
        return dict_method(r, x->d, ct_cstr("items"), &none, out);
    }
    if (ct_str_eq(name, "map") || ct_str_eq(name, "select") || ct_str_eq(name, "reject") ||
        ct_str_eq(name, "selectattr") || ct_str_eq(name, "rejectattr"))
        return do_select(r, name, x, a, out);
    if (ct_str_eq(name, "abs")) {
        if (!check_args(r, fn, a, 0, NULL)) return false;
        if (x->kind == CT_FLOAT) *out = ct_float(fabs(x->f));
        else if (x->kind == CT_INT || x->kind == CT_BOOL) {
            int64_t v = x->kind == CT_BOOL ? x->b : x->i;
            if (v == INT64_MIN) return ct_error(r, "abs: integer overflow");
            *out = ct_int(v < 0 ? -v : v);
        } else return ct_error(r, "bad operand type for abs(): '%s'", ct_kind_name(x));
        return true;
    }
    if (ct_str_eq(name, "int")) {
        static const char *const kw[] = {"default", "base", NULL};
        if (!check_args(r, fn, a, 2, kw)) return false;
        const ct_value *dv = arg(a, 0, "default");
        *out = dv ? *dv : ct_int(0);
        if (x->kind == CT_INT) *out = *x;
        else if (x->kind == CT_BOOL) *out = ct_int(x->b);
        else if (x->kind == CT_FLOAT) {
            if (isfinite(x->f) && fabs(x->f) < 9.2e18) *out = ct_int((int64_t)x->f);
        } else if (x->kind == CT_STR) {
            char buf[64];
            ct_str t = strip(x->s, NULL, true, true);
            if (t.n && t.n < sizeof buf) {
                memcpy(buf, t.p, t.n);
                buf[t.n] = 0;
                char *end;
                long long v = strtoll(buf, &end, 10);
                if (*end == 0 && buf[0] != '_') {
                    *out = ct_int(v);
                } else {
                    double d = strtod(buf, &end);
                    if (*end == 0 && isfinite(d) && fabs(d) < 9.2e18) *out = ct_int((int64_t)d);
                }
            }
        }
        return true;
    }
    if (ct_str_eq(name, "float")) {
        static const char *const kw[] = {"default", NULL};
        if (!check_args(r, fn, a, 1, kw)) return false;
        const ct_value *dv = arg(a, 0, "default");
        *out = dv ? *dv : ct_float(0.0);
        if (x->kind == CT_FLOAT) *out = *x;
        else if (x->kind == CT_INT || x->kind == CT_BOOL) *out = ct_float(x->kind == CT_BOOL ? x->b : (double)x->i);
        else if (x->kind == CT_STR) {
            char buf[64];
            ct_str t = strip(x->s, NULL, true, true);
            if (t.n && t.n < sizeof buf) {
                memcpy(buf, t.p, t.n);
                buf[t.n] = 0;
                char *end;
                double d = strtod(buf, &end);
                if (*end == 0) *out = ct_float(d);
            }
        }
        return true;
    }
    /* the rest work on str(x) */
    if (!ct_to_str(r, x, &s)) return false;
    if (ct_str_eq(name, "string")) {
        if (!check_args(r, fn, a, 0, NULL)) return false;
        *out = ct_string(s.p, s.n);
        return true;
    }
    if (ct_str_eq(name, "trim")) {
        if (!check_args(r, fn, a, 1, (const char *const[]){"chars", NULL})) return false;
        const ct_value *c = arg(a, 0, "chars");
        ct_str chars;
        if (c && c->kind != CT_NONE && !want_str(r, fn, c, &chars)) return false;
        ct_str res = strip(s, c && c->kind != CT_NONE ? &chars : NULL, true, true);
        *out = ct_string(res.p, res.n);
        return true;
    }
    if (ct_str_eq(name, "upper") || ct_str_eq(name, "lower") || ct_str_eq(name, "capitalize") ||
        ct_str_eq(name, "title")) {
        if (!check_args(r, fn, a, 0, NULL)) return false;
        int mode = name.p[0] == 'u' ? CASE_UPPER : name.p[0] == 'l' ? CASE_LOWER : name.p[0] == 'c' ? CASE_CAPITALIZE
                                                                                                   : CASE_JTITLE;
        return change_case(r, s, mode, out);
    }
    if (ct_str_eq(name, "replace")) {
        static const char *const kw[] = {"old", "new", "count", NULL};
        ct_str old, rep;
        int64_t count = -1;
        if (!check_args(r, fn, a, 3, kw)) return false;
        const ct_value *o = arg(a, 0, "old"), *nw = arg(a, 1, "new"), *c = arg(a, 2, "count");
        if (!o || !nw || !ct_to_str(r, o, &old) || !ct_to_str(r, nw, &rep))
            return o && nw ? false : ct_error(r, "replace: expected old and new");
        if (c && c->kind != CT_NONE && !want_int(r, fn, c, &count)) return false;
        return str_replace(r, s, old, rep, count, out);
    }
    if (ct_str_eq(name, "indent")) return do_indent(r, s, a, out);
    if (ct_str_eq(name, "escape") || ct_str_eq(name, "e")) return do_escape(r, s, out);
    return ct_error(r, "unknown filter '%s'", fn);
}
