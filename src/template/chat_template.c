/* Chat templates: parse once, render per request (chat_template.h). */
#include "template/chat_template.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "template/impl.h"

struct chat_template {
    ryot_arena arena; /* the normalized source, decoded strings and the syntax tree */
    ct_node *root;
};

ryot_status chat_template_parse(const char *src, size_t len, chat_template **out, ryot_error *err) {
    *out = NULL;
    if (len > CHAT_TEMPLATE_MAX_SOURCE)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "chat template: %zu bytes is more than the %u accepted", len,
                         CHAT_TEMPLATE_MAX_SOURCE);
    chat_template *t = calloc(1, sizeof *t);
    if (!t) return ryot_fail(err, RYOT_ERR_NOMEM, "chat template: out of memory");
    /* jinja2 reads \r\n and \r as \n, and drops one newline at the very end */
    char *s = ryot_arena_alloc(&t->arena, len + 1);
    if (!s) {
        chat_template_free(t);
        return ryot_fail(err, RYOT_ERR_NOMEM, "chat template: out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    ct_token *toks;
    size_t n_toks;
    ryot_status st = ct_lex(s, n, &t->arena, &toks, &n_toks, err);
    if (!st) {
        st = ct_parse(toks, n_toks, &t->arena, &t->root, err);
        free(toks);
    }
    if (st) {
        chat_template_free(t);
        return st;
    }
    *out = t;
    return RYOT_OK;
}

void chat_template_free(chat_template *t) {
    if (!t) return;
    ryot_arena_free(&t->arena);
    free(t);
}

static bool set_global(ct_render *r, ct_frame *f, const char *name, ct_value v) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        ct_var *vars = ct_ralloc(r, cap * sizeof *vars);
        if (!vars) return false;
        if (f->n) memcpy(vars, f->vars, f->n * sizeof *vars);
        f->vars = vars;
        f->cap = cap;
    }
    f->vars[f->n++] = (ct_var){ct_cstr(name), v};
    return true;
}

static ct_value cstr_value(const char *s) { return s ? ct_string(s, strlen(s)) : ct_none(); }

/* Fills the globals around messages (and tools, when given), renders, and
 * frees the render's arena; shared by both entry points. */
static ryot_status render_with(const chat_template *t, ct_render *r, ct_value messages, const ct_value *tools,
                               bool add_generation_prompt, const char *bos_token, const char *eos_token, char **out,
                               size_t *out_len) {
    ct_frame globals = {0};
    bool ok = messages.kind == CT_LIST && set_global(r, &globals, "messages", messages) &&
              (!tools || set_global(r, &globals, "tools", *tools)) &&
              set_global(r, &globals, "add_generation_prompt", ct_bool(add_generation_prompt)) &&
              set_global(r, &globals, "bos_token", ct_string(bos_token ? bos_token : "", bos_token ? strlen(bos_token) : 0)) &&
              set_global(r, &globals, "eos_token", ct_string(eos_token ? eos_token : "", eos_token ? strlen(eos_token) : 0)) &&
              set_global(r, &globals, "range", (ct_value){.kind = CT_FUNC, .fn = CT_FN_RANGE}) &&
              set_global(r, &globals, "namespace", (ct_value){.kind = CT_FUNC, .fn = CT_FN_NAMESPACE}) &&
              set_global(r, &globals, "dict", (ct_value){.kind = CT_FUNC, .fn = CT_FN_DICT}) &&
              set_global(r, &globals, "raise_exception", (ct_value){.kind = CT_FUNC, .fn = CT_FN_RAISE});
    /* the template's own top-level {% set %}s go in a scope over the globals */
    ct_frame top = {.parent = &globals};
    ok = ok && ct_render_node(r, &top, t->root);
    ryot_status st = RYOT_OK;
    if (!ok) {
        st = r->err->code ? r->err->code : ryot_fail(r->err, RYOT_ERR_INTERNAL, "chat template: render failed");
        free(r->out);
    } else {
        if (!r->out) r->out = calloc(1, 1);
        if (!r->out) st = ryot_fail(r->err, RYOT_ERR_NOMEM, "chat template: out of memory");
        *out = r->out;
        if (out_len) *out_len = r->out_len;
    }
    ryot_arena_free(&r->arena);
    return st;
}

static void render_begin(ct_render *r, ryot_error *err) {
    *r = (ct_render){.arena = {.limit = CHAT_TEMPLATE_MAX_MEMORY}, .line = 1};
    r->err = err ? err : &r->local_err;
    r->err->code = RYOT_OK;
    r->err->msg[0] = 0;
}

ryot_status chat_template_render(const chat_template *t, const chat_msg *msgs, int n_msgs, bool add_generation_prompt,
                                 const char *bos_token, const char *eos_token, char **out, size_t *out_len,
                                 ryot_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (n_msgs < 0 || (n_msgs > 0 && !msgs)) return ryot_fail(err, RYOT_ERR_INVALID, "chat template: bad messages");
    ct_render r;
    render_begin(&r, err);
    ct_list *list = ct_list_new(&r, (size_t)n_msgs);
    bool ok = list != NULL;
    for (int i = 0; ok && i < n_msgs; i++) {
        ct_dict *d = ct_dict_new(&r, 2);
        ok = d && ct_dict_set(&r, d, ct_string("role", 4), cstr_value(msgs[i].role)) &&
             ct_dict_set(&r, d, ct_string("content", 7), cstr_value(msgs[i].content));
        if (ok) list->v[i] = (ct_value){.kind = CT_DICT, .d = d};
    }
    ct_value messages = ok ? (ct_value){.kind = CT_LIST, .l = list} : ct_none();
    return render_with(t, &r, messages, NULL, add_generation_prompt, bos_token, eos_token, out, out_len);
}

/* A JSON value as a template value; strings point into j (which outlives
 * the render).  Depth is bounded by jansson's parser. */
static bool from_json(ct_render *r, const json_t *j, ct_value *out) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        ct_dict *d = ct_dict_new(r, json_object_size(j) ? json_object_size(j) : 1);
        if (!d) return false;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            ct_value cv;
            if (!from_json(r, v, &cv) || !ct_dict_set(r, d, ct_string(k, strlen(k)), cv)) return false;
        }
        *out = (ct_value){.kind = CT_DICT, .d = d};
        return true;
    }
    case JSON_ARRAY: {
        ct_list *l = ct_list_new(r, json_array_size(j));
        if (!l) return false;
        for (size_t i = 0; i < json_array_size(j); i++)
            if (!from_json(r, json_array_get(j, i), &l->v[i])) return false;
        *out = (ct_value){.kind = CT_LIST, .l = l};
        return true;
    }
    case JSON_STRING: *out = ct_string(json_string_value(j), json_string_length(j)); return true;
    case JSON_INTEGER: *out = ct_int(json_integer_value(j)); return true;
    case JSON_REAL: *out = ct_float(json_real_value(j)); return true;
    case JSON_TRUE: *out = ct_bool(true); return true;
    case JSON_FALSE: *out = ct_bool(false); return true;
    default: *out = ct_none(); return true;
    }
}

ryot_status chat_template_render_json(const chat_template *t, const json_t *messages, const json_t *tools,
                                      bool add_generation_prompt, const char *bos_token, const char *eos_token,
                                      char **out, size_t *out_len, ryot_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!json_is_array(messages)) return ryot_fail(err, RYOT_ERR_INVALID, "chat template: bad messages");
    if (tools && !json_is_array(tools)) return ryot_fail(err, RYOT_ERR_INVALID, "chat template: bad tools");
    ct_render r;
    render_begin(&r, err);
    ct_value m = ct_none(), tv = ct_none();
    bool ok = from_json(&r, messages, &m) && (!tools || from_json(&r, tools, &tv));
    if (!ok) m = ct_none(); /* render_with then fails with the arena's error */
    if (!ok && !r.err->code) ryot_fail(r.err, RYOT_ERR_NOMEM, "chat template: out of memory");
    return render_with(t, &r, m, tools ? &tv : NULL, add_generation_prompt, bos_token, eos_token, out, out_len);
}
