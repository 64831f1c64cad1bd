/* Tool calls in prompts and outputs (tools.h). */
#include "template/tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define OPEN "<tool_call>"
#define CLOSE "</tool_call>"
#define PYTAG "<|python_tag|>"
#define SLEN(s) (sizeof(s) - 1)

chat_tool_style chat_tools_style(ryot_chat_format f) {
    return f == RYOT_CHAT_LLAMA3 ? CHAT_TOOLS_LLAMA3 : CHAT_TOOLS_HERMES;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static size_t skip_ws(const char *t, size_t len, size_t i) {
    while (i < len && is_ws(t[i])) i++;
    return i;
}

static bool starts(const char *t, size_t len, size_t i, const char *lit, size_t n) {
    return len - i >= n && memcmp(t + i, lit, n) == 0;
}

static const char *tool_name(const json_t *tool) {
    return json_string_value(json_object_get(json_object_get(tool, "function"), "name"));
}

/* ---------------------------------------------------------------- prompts */

static bool put_tools_list(ryot_buf *b, const json_t *tools) {
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        char *s = json_dumps(t, JSON_COMPACT);
        bool ok = s && ryot_buf_append(b, s, strlen(s)) && ryot_buf_append(b, "\n", 1);
        free(s);
        if (!ok) return false;
    }
    return true;
}

/* The instructions and tool list for the system turn. */
static bool put_system_block(ryot_buf *b, chat_tool_style s, const json_t *tools) {
    bool ok = ryot_buf_printf(b, "You may call functions to answer. The functions you can call, each described "
                                 "by a JSON schema of its arguments:\n");
    if (s == CHAT_TOOLS_HERMES) {
        ok = ok && ryot_buf_printf(b, "<tools>\n") && put_tools_list(b, tools) &&
             ryot_buf_printf(b, "</tools>\nTo call a function, write its name and arguments as a JSON object "
                                "between <tool_call> and </tool_call>, one call per pair of tags:\n"
                                OPEN "\n{\"name\": \"<function name>\", \"arguments\": <arguments object>}\n" CLOSE);
    } else {
        ok = ok && put_tools_list(b, tools) &&
             ryot_buf_printf(b, "\nTo call a function, answer with nothing but a JSON object of the form "
                                "{\"name\": \"<function name>\", \"parameters\": <arguments object>}.");
    }
    return ok;
}

/* A call as the style writes it (arguments: an OpenAI string of JSON, used
 * as is when it parses, else as a JSON string). */
static bool put_call(ryot_buf *b, chat_tool_style s, const json_t *call) {
    const json_t *fn = json_object_get(call, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));
    const json_t *a = json_object_get(fn, "arguments");
    json_t *args = json_is_string(a) ? json_loads(json_string_value(a), JSON_DECODE_ANY, NULL) : json_incref((json_t *)a);
    if (!args) args = json_incref((json_t *)a);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name ? name : ""));
    json_object_set(o, s == CHAT_TOOLS_HERMES ? "arguments" : "parameters", args ? args : json_object());
    json_decref(args);
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    bool ok = txt && (s == CHAT_TOOLS_HERMES ? ryot_buf_printf(b, OPEN "\n%s\n" CLOSE, txt) : ryot_buf_printf(b, "%s", txt));
    free(txt);
    return ok;
}

static json_t *text_message(const char *role, const ryot_buf *b) {
    return json_pack("{s:s,s:s%}", "role", role, "content", b->data ? b->data : "", b->len);
}

/* One message rewritten; NULL when out of memory. */
static json_t *inline_message(chat_tool_style s, const json_t *m) {
    const char *role = json_string_value(json_object_get(m, "role"));
    const json_t *content = json_object_get(m, "content");
    const json_t *calls = json_object_get(m, "tool_calls");
    ryot_buf b = {0};
    bool ok = true;
    json_t *out = NULL;
    if (role && !strcmp(role, "tool")) {
        const char *c = json_string_value(content);
        if (s == CHAT_TOOLS_HERMES) {
            ok = ryot_buf_printf(&b, "<tool_response>\n%s\n</tool_response>", c ? c : "");
            if (ok) out = text_message("user", &b);
        } else {
            ok = ryot_buf_printf(&b, "%s", c ? c : "");
            if (ok) out = text_message("ipython", &b);
        }
    } else if (role && !strcmp(role, "assistant") && json_array_size(calls)) {
        const char *c = json_string_value(content);
        if (c && *c) ok = ryot_buf_printf(&b, "%s\n", c);
        size_t i;
        json_t *call;
        json_array_foreach(calls, i, call) {
            if (i) ok = ok && ryot_buf_append(&b, "\n", 1);
            ok = ok && put_call(&b, s, call);
        }
        if (ok) out = text_message("assistant", &b);
    } else {
        out = json_deep_copy(m);
    }
    ryot_buf_free(&b);
    return ok ? out : NULL;
}

json_t *chat_tools_inline(chat_tool_style s, const json_t *messages, const json_t *tools) {
    json_t *out = json_array();
    if (!out) return NULL;
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        if (json_array_append_new(out, inline_message(s, m))) {
            json_decref(out);
            return NULL;
        }
    }
    if (json_array_size(tools) == 0) return out;
    ryot_buf b = {0};
    json_t *first = json_array_get(out, 0);
    const char *role = json_string_value(json_object_get(first, "role"));
    const char *sys = role && !strcmp(role, "system") ? json_string_value(json_object_get(first, "content")) : NULL;
    bool ok = (!sys || !*sys || ryot_buf_printf(&b, "%s\n\n", sys)) && put_system_block(&b, s, tools);
    json_t *msg = ok ? text_message("system", &b) : NULL;
    ryot_buf_free(&b);
    if (!msg || (sys ? json_array_set_new(out, 0, msg) : json_array_insert_new(out, 0, msg))) {
        json_decref(out);
        return NULL;
    }
    return out;
}

char *chat_tools_prefix(chat_tool_style s, const char *name) {
    ryot_buf b = {0};
    bool ok;
    if (s == CHAT_TOOLS_HERMES)
        ok = name ? ryot_buf_printf(&b, OPEN "\n{\"name\": \"%s\", \"arguments\": ", name)
                  : ryot_buf_printf(&b, OPEN "\n{\"name\": \"");
    else
        ok = name ? ryot_buf_printf(&b, "{\"name\": \"%s\", \"parameters\": ", name) : ryot_buf_printf(&b, "{\"name\": \"");
    if (!ok) ryot_buf_free(&b);
    return b.data;
}

/* ---------------------------------------------------------------- streaming */

/* Longest suffix of text[0..len) that is a proper prefix of lit. */
static size_t partial_tail(const char *text, size_t len, const char *lit, size_t n) {
    for (size_t k = n - 1 < len ? n - 1 : len; k > 0; k--)
        if (!memcmp(text + len - k, lit, k)) return k;
    return 0;
}

size_t chat_tools_content_prefix(chat_tool_style s, const char *text, size_t len, bool at_start, bool *opened) {
    *opened = false;
    if (s == CHAT_TOOLS_LLAMA3 && at_start) {
        size_t i = skip_ws(text, len, 0);
        if (i == len) return 0;
        if (text[i] == '{' || starts(text, len, i, PYTAG, SLEN(PYTAG))) {
            *opened = true;
            return 0;
        }
        if (len - i < SLEN(PYTAG) && !memcmp(text + i, PYTAG, len - i)) return 0;
    }
    const char *lit = s == CHAT_TOOLS_HERMES ? OPEN : PYTAG;
    const size_t n = s == CHAT_TOOLS_HERMES ? SLEN(OPEN) : SLEN(PYTAG);
    const char *hit = memmem(text, len, lit, n);
    if (hit) {
        *opened = true;
        return (size_t)(hit - text);
    }
    return len - partial_tail(text, len, lit, n);
}

/* ---------------------------------------------------------------- parsing */

/* The JSON value at text[i..len) (leading whitespace skipped); *end past it.
 * NULL when there is none. */
static json_t *json_at(const char *text, size_t len, size_t i, size_t *end) {
    i = skip_ws(text, len, i);
    if (i >= len || (text[i] != '{' && text[i] != '"')) return NULL;
    json_error_t je;
    json_t *v = json_loadb(text + i, len - i, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &je);
    if (v) *end = i + (size_t)je.position;
    return v;
}

/* The arguments of a call as compact JSON object text: an object, or a
 * string holding one.  NULL when they are neither (or out of memory). */
static char *arguments_text(const json_t *a) {
    json_t *own = NULL;
    if (json_is_string(a)) a = own = json_loads(json_string_value(a), 0, NULL);
    char *s = json_is_object(a) ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(own);
    return s;
}

static bool name_known(const json_t *tools, const char *name) {
    if (!tools) return true;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        const char *n = tool_name(t);
        if (n && !strcmp(n, name)) return true;
    }
    return false;
}

/* Appends a call; 1 added, 0 not a call, -1 out of memory. */
static int add_call(chat_tool_parse *p, const json_t *tools, const char *name, const json_t *args) {
    if (!name || !*name || !name_known(tools, name)) return 0;
    json_t *none = NULL;
    if (!args) args = none = json_object(); /* a call without arguments takes none */
    char *a = args ? arguments_text(args) : NULL;
    json_decref(none);
    if (!a) return 0;
    chat_tool_call *c = realloc(p->calls, ((size_t)p->n_calls + 1) * sizeof *c);
    char *n = strdup(name);
    if (!c || !n) {
        if (c) p->calls = c;
        free(a);
        free(n);
        return -1;
    }
    p->calls = c;
    c[p->n_calls++] = (chat_tool_call){n, a};
    return 1;
}

static int add_call_object(chat_tool_parse *p, const json_t *tools, const json_t *o) {
    if (!json_is_object(o)) return 0;
    const json_t *args = json_object_get(o, "arguments");
    if (!args) args = json_object_get(o, "parameters");
    return add_call(p, tools, json_string_value(json_object_get(o, "name")), args);
}

/* Hermes: tagged calls anywhere; everything else is content. */
static bool parse_hermes(const char *text, size_t len, size_t i, const json_t *tools, chat_tool_parse *p,
                         ryot_buf *content) {
    while (i < len) {
        const char *hit = memmem(text + i, len - i, OPEN, SLEN(OPEN));
        size_t at = hit ? (size_t)(hit - text) : len;
        if (!ryot_buf_append(content, text + i, at - i)) return false;
        if (!hit) break;
        size_t end = 0, body = at + SLEN(OPEN);
        json_t *v = json_at(text, len, body, &end);
        int added = 0;
        if (v) {
            size_t q = skip_ws(text, len, end);
            bool closed = starts(text, len, q, CLOSE, SLEN(CLOSE));
            /* an unclosed call at the very end counts: generation may stop there */
            if (closed || q == len) added = add_call_object(p, tools, v);
            if (added > 0) end = closed ? q + SLEN(CLOSE) : q;
            json_decref(v);
        }
        if (added < 0) return false;
        if (added == 0) {
            if (!ryot_buf_append(content, OPEN, SLEN(OPEN))) return false;
            end = body;
        }
        i = end;
    }
    return true;
}

/* Llama 3: the rest of the answer is calls, or none of it is. */
static bool parse_llama3(const char *text, size_t len, size_t i, const json_t *tools, chat_tool_parse *p,
                         ryot_buf *content) {
    const int n0 = p->n_calls;
    size_t j = skip_ws(text, len, i);
    if (starts(text, len, j, PYTAG, SLEN(PYTAG))) j += SLEN(PYTAG);
    bool all = true;
    j = skip_ws(text, len, j);
    if (j == len) all = false;
    while (all && j < len) {
        size_t end;
        json_t *v = json_at(text, len, j, &end);
        int added = v ? add_call_object(p, tools, v) : 0;
        json_decref(v);
        if (added < 0) return false;
        if (added == 0) {
            all = false;
            break;
        }
        j = end;
        while (j < len && (is_ws(text[j]) || text[j] == ';')) j++;
    }
    if (!all) {
        while (p->n_calls > n0) {
            p->n_calls--;
            free(p->calls[p->n_calls].name);
            free(p->calls[p->n_calls].arguments);
        }
        return ryot_buf_append(content, text + i, len - i);
    }
    return true;
}

/* The arguments of a forced call right after its prefix, and the closing
 * the style expects (each part optional); *end past what was used. */
static int parse_forced(chat_tool_style s, const char *text, size_t len, const json_t *tools, const char *name,
                        chat_tool_parse *p, size_t *end) {
    char *prefix = chat_tools_prefix(s, name);
    if (!prefix) return -1;
    size_t n = strlen(prefix);
    bool has = starts(text, len, 0, prefix, n);
    free(prefix);
    if (!has) return 0;
    size_t e;
    json_t *args = json_at(text, len, n, &e);
    int added = json_is_object(args) ? add_call(p, tools, name, args) : 0;
    json_decref(args);
    if (added <= 0) return added;
    e = skip_ws(text, len, e);
    if (e < len && text[e] == '}') e = skip_ws(text, len, e + 1);
    if (s == CHAT_TOOLS_HERMES && starts(text, len, e, CLOSE, SLEN(CLOSE))) e += SLEN(CLOSE);
    *end = e;
    return 1;
}

static void trim(ryot_buf *b, char **out, size_t *n) {
    size_t a = 0, z = b->len;
    while (a < z && is_ws(b->data[a])) a++;
    while (z > a && is_ws(b->data[z - 1])) z--;
    if (a == z) {
        ryot_buf_free(b);
        *out = NULL;
        *n = 0;
        return;
    }
    memmove(b->data, b->data + a, z - a);
    b->data[z - a] = 0;
    *out = b->data;
    *n = z - a;
}

bool chat_tools_parse(chat_tool_style s, const char *text, size_t len, const json_t *tools, const char *forced_name,
                      chat_tool_parse *out) {
    memset(out, 0, sizeof *out);
    ryot_buf content = {0};
    size_t i = 0;
    bool ok = true;
    if (forced_name) {
        int r = parse_forced(s, text, len, tools, forced_name, out, &i);
        ok = r >= 0;
        if (r <= 0) i = 0;
    }
    if (ok) ok = s == CHAT_TOOLS_HERMES ? parse_hermes(text, len, i, tools, out, &content)
                                        : parse_llama3(text, len, i, tools, out, &content);
    if (ok && !content.data) ok = ryot_buf_append(&content, "", 0);
    if (!ok) {
        ryot_buf_free(&content);
        chat_tools_parse_free(out);
        return false;
    }
    if (out->n_calls) {
        trim(&content, &out->content, &out->content_len);
    } else {
        out->content = content.data;
        out->content_len = content.len;
    }
    return true;
}

void chat_tools_parse_free(chat_tool_parse *p) {
    if (!p) return;
    for (int i = 0; i < p->n_calls; i++) {
        free(p->calls[i].name);
        free(p->calls[i].arguments);
    }
    free(p->calls);
    free(p->content);
    memset(p, 0, sizeof *p);
}
