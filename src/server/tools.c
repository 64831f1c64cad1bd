/* Tool calling for the chat endpoint (tools.h). */
#include "server/tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "server/openai.h" /* srv_make_id */

json_t *srv_messages_json(const srv_message *msgs, int n) {
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (int i = 0; ok && i < n; i++) {
        const srv_message *m = &msgs[i];
        json_t *o = json_object();
        ok = o && !json_object_set_new(o, "role", json_string(m->role)) &&
             !json_object_set_new(o, "content", m->content ? json_string(m->content) : json_null());
        if (ok && m->n_tool_calls) {
            json_t *calls = json_array();
            ok = calls && !json_object_set_new(o, "tool_calls", calls);
            for (int k = 0; ok && k < m->n_tool_calls; k++) {
                const srv_tool_call *c = &m->tool_calls[k];
                ok = !json_array_append_new(calls, json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", c->id, "type", "function",
                                                             "function", "name", c->name, "arguments", c->arguments));
            }
        }
        if (ok && m->tool_call_id) ok = !json_object_set_new(o, "tool_call_id", json_string(m->tool_call_id));
        if (!o || json_array_append_new(arr, o)) ok = false;
    }
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

bool srv_tools_active(const srv_request *req) { return req->n_tools > 0 && req->tool_choice != SRV_TOOL_NONE; }

static const char *tool_name(const srv_request *req, int i) {
    return json_string_value(json_object_get(json_object_get(json_array_get(req->tools, (size_t)i), "function"), "name"));
}

char *srv_tools_prefix(chat_tool_style s, const srv_request *req, bool *nomem) {
    *nomem = false;
    if (!srv_tools_active(req) || req->tool_choice == SRV_TOOL_AUTO) return NULL;
    char *p = chat_tools_prefix(s, req->tool_choice == SRV_TOOL_NAMED ? tool_name(req, req->tool_named) : NULL);
    *nomem = p == NULL;
    return p;
}

/* ---------------------------------------------------------------- grammar */

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Appends grammar text t with every rule name (definitions and references)
 * prefixed by pre.  Literals, classes, counted repetitions and comments are
 * copied as they are. */
static bool put_renamed(ryot_buf *b, const char *t, const char *pre) {
    const size_t np = strlen(pre);
    for (size_t i = 0; t[i];) {
        const char c = t[i];
        size_t j = i + 1;
        if (c == '"' || c == '[') {
            const char close = c == '"' ? '"' : ']';
            while (t[j] && t[j] != close) j += t[j] == '\\' && t[j + 1] ? 2 : 1;
            if (t[j]) j++;
        } else if (c == '{') {
            while (t[j] && t[j] != '}') j++;
            if (t[j]) j++;
        } else if (c == '#') {
            while (t[j] && t[j] != '\n') j++;
        } else if (name_char(c)) {
            while (name_char(t[j])) j++;
            if (!ryot_buf_append(b, pre, np)) return false;
        }
        if (!ryot_buf_append(b, t + i, j - i)) return false;
        i = j;
    }
    return ryot_buf_append(b, "\n", 1);
}

/* tools[i]'s parameters schema as rules t<i>-*, the start one t<i>-root. */
static ryot_status put_schema(ryot_buf *b, const srv_request *req, int i, char *param, size_t param_size,
                              ryot_error *err) {
    const json_t *params =
        json_object_get(json_object_get(json_array_get(req->tools, (size_t)i), "function"), "parameters");
    char *t = NULL, pre[16];
    ryot_status st = grammar_schema_to_text(params, &t, err);
    if (st) {
        snprintf(param, param_size, "tools[%d].function.parameters", i);
        return st;
    }
    snprintf(pre, sizeof pre, "t%d-", i);
    bool ok = put_renamed(b, t, pre);
    free(t);
    return ok ? RYOT_OK : ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
}

ryot_status srv_tools_grammar_text(chat_tool_style s, const srv_request *req, char **text, char *param,
                                   size_t param_size, ryot_error *err) {
    *text = NULL;
    if (param_size) param[0] = 0;
    ryot_buf b = {0};
    const bool hermes = s == CHAT_TOOLS_HERMES;
    const char *close = hermes ? "\"}\\n</tool_call>\"" : "\"}\"";
    const char *args_key = hermes ? "arguments" : "parameters";
    ryot_status st = RYOT_OK;
    bool ok = true;
    if (req->tool_choice == SRV_TOOL_NAMED) {
        ok = ryot_buf_printf(&b, "root ::= t%d-root %s\n", req->tool_named, close);
        if (ok) st = put_schema(&b, req, req->tool_named, param, param_size, err);
    } else {
        /* "required": the prefix ends inside the name's string */
        ok = req->parallel_tool_calls
                 ? ryot_buf_printf(&b, "root ::= call (%s call)*\n",
                                   hermes ? "\"\\n<tool_call>\\n{\\\"name\\\": \\\"\"" : "\"; {\\\"name\\\": \\\"\"")
                 : ryot_buf_printf(&b, "root ::= call\n");
        ok = ok && ryot_buf_printf(&b, "call ::= ");
        for (int i = 0; ok && i < req->n_tools; i++)
            ok = ryot_buf_printf(&b, "%s\"%s\\\", \\\"%s\\\": \" t%d-root %s\n", i ? "  | " : "", tool_name(req, i),
                                 args_key, i, close);
        for (int i = 0; ok && !st && i < req->n_tools; i++) st = put_schema(&b, req, i, param, param_size, err);
    }
    if (!ok && !st) st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
    if (st) {
        ryot_buf_free(&b);
        return st;
    }
    *text = b.data;
    return RYOT_OK;
}

/* ---------------------------------------------------------------- results */

bool srv_tools_parse(chat_tool_style s, const srv_request *req, const char *text, size_t len, srv_tool_result *out) {
    memset(out, 0, sizeof *out);
    chat_tool_parse p;
    const char *forced = req->tool_choice == SRV_TOOL_NAMED ? tool_name(req, req->tool_named) : NULL;
    if (!chat_tools_parse(s, text, len, req->tools, forced, &p)) return false;
    int n = p.n_calls > 1 && !req->parallel_tool_calls ? 1 : p.n_calls;
    if (n && !(out->calls = calloc((size_t)n, sizeof *out->calls))) {
        chat_tools_parse_free(&p);
        return false;
    }
    for (int i = 0; i < n; i++) {
        char id[SRV_ID_MAX];
        srv_make_id(id, sizeof id, "call_");
        out->calls[i] = (srv_tool_call){.id = strdup(id), .name = p.calls[i].name, .arguments = p.calls[i].arguments};
        p.calls[i].name = p.calls[i].arguments = NULL;
        out->n_calls = i + 1;
        if (!out->calls[i].id) {
            chat_tools_parse_free(&p);
            srv_tool_result_free(out);
            return false;
        }
    }
    out->content = p.content;
    out->content_len = p.content_len;
    p.content = NULL;
    chat_tools_parse_free(&p);
    return true;
}

void srv_tool_result_free(srv_tool_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n_calls; i++) {
        free(r->calls[i].id);
        free(r->calls[i].name);
        free(r->calls[i].arguments);
    }
    free(r->calls);
    free(r->content);
    memset(r, 0, sizeof *r);
}
