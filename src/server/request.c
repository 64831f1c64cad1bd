/* OpenAI request parsing and validation; the contract is in request.h. */
#include "server/request.h"

#include "grammar/grammar.h"
#include "sched/sched.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- errors */

static void error_kind(int status, const char **type, const char **code) {
    *code = NULL;
    switch (status) {
    case 401: *type = "invalid_request_error"; *code = "invalid_api_key"; return;
    case 429: *type = "requests"; *code = "rate_limit_exceeded"; return;
    case 408:
    case 504: *type = "timeout"; *code = "timeout"; return;
    case 503: *type = "server_error"; *code = "service_unavailable"; return;
    default: *type = status >= 500 ? "server_error" : "invalid_request_error"; return;
    }
}

void srv_error_setv(srv_error *e, int status, const char *param, const char *fmt, va_list ap) {
    if (!e) return;
    e->status = status;
    error_kind(status, &e->type, &e->code);
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

void srv_error_set(srv_error *e, int status, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    srv_error_setv(e, status, param, fmt, ap);
    va_end(ap);
}

/* Every parse helper returns 0, or -1 after filling err through these. */
static int __attribute__((format(printf, 3, 4))) fail(srv_error *err, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    srv_error_setv(err, 400, param, fmt, ap);
    va_end(ap);
    return -1;
}

static int nomem(srv_error *err) {
    srv_error_set(err, 500, NULL, "out of memory while parsing the request");
    return -1;
}

/* ---------------------------------------------------------------- values */

/* The field's value, NULL when absent or JSON null (null == absent). */
static json_t *opt(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int get_bool(const json_t *obj, const char *key, bool *out, srv_error *err) {
    json_t *v = opt(obj, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return fail(err, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

/* A number in [lo, hi]; *given set when present. */
static int get_number(const json_t *obj, const char *key, double lo, double hi, double *out,
                      bool *given, srv_error *err) {
    json_t *v = opt(obj, key);
    if (given) *given = v != NULL;
    if (!v) return 0;
    if (!json_is_number(v)) return fail(err, key, "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return fail(err, key, "'%s' must be between %g and %g, got %g", key, lo, hi, x);
    *out = x;
    return 0;
}

/* An integer (7 or 7.0, not 7.5) of v in [lo, hi]; param names it. */
static int int_value(const json_t *v, const char *param, int64_t lo, int64_t hi, int64_t *out,
                     srv_error *err) {
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* reals this large are out of every range we use; the bound keeps the cast defined */
        if (!(fabs(d) < 0x1p62)) goto range;
        if (d != floor(d)) return fail(err, param, "'%s' must be an integer, got %g", param, d);
        x = (int64_t)d;
    } else {
        return fail(err, param, "'%s' must be an integer", param);
    }
    if (x < lo || x > hi) goto range;
    *out = x;
    return 0;
range:
    return fail(err, param, "'%s' must be an integer between %lld and %lld", param, (long long)lo,
                (long long)hi);
}

static int get_int(const json_t *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   bool *given, srv_error *err) {
    json_t *v = opt(obj, key);
    if (given) *given = v != NULL;
    if (!v) return 0;
    return int_value(v, key, lo, hi, out, err);
}

static char *dup_str(const json_t *s) {
    size_t n = json_string_length(s);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, json_string_value(s), n);
        p[n] = '\0';
    }
    return p;
}

/* Optional string field -> malloc'd copy in *out (left NULL when absent). */
static int get_str(const json_t *obj, const char *key, char **out, srv_error *err) {
    json_t *v = opt(obj, key);
    if (!v) return 0;
    if (!json_is_string(v)) return fail(err, key, "'%s' must be a string", key);
    if (!(*out = dup_str(v))) return nomem(err);
    return 0;
}

static json_t *load_object(const char *body, size_t len, srv_error *err) {
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", body ? len : 0, 0, &je);
    if (!root) {
        fail(err, NULL, "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        fail(err, NULL, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

/* ---------------------------------------------------------------- messages */

static void tool_calls_free(srv_tool_call *c, int n) {
    for (int i = 0; c && i < n; i++) {
        free(c[i].id);
        free(c[i].name);
        free(c[i].arguments);
    }
    free(c);
}

void srv_messages_free(srv_message *m, int n) {
    if (!m) return;
    for (int i = 0; i < n; i++) {
        free(m[i].role);
        free(m[i].content);
        tool_calls_free(m[i].tool_calls, m[i].n_tool_calls);
        free(m[i].tool_call_id);
    }
    free(m);
}

/* ---------------------------------------------------------------- tools */

/* OpenAI's rule for function names: 1..64 of [a-zA-Z0-9_-]. */
static bool tool_name_ok(const json_t *name) {
    const char *s = json_string_value(name);
    size_t n = json_string_length(name);
    if (!s || n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* A required string field of obj, as a malloc'd copy; param names it. */
static int req_str(const json_t *obj, const char *key, const char *param, char **out, srv_error *err) {
    const json_t *v = opt(obj, key);
    if (!v) return fail(err, param, "'%s' is required", param);
    if (!json_is_string(v)) return fail(err, param, "'%s' must be a string", param);
    if (!(*out = dup_str(v))) return nomem(err);
    return 0;
}

/* messages[mi].tool_calls of an assistant message. */
static int parse_msg_tool_calls(const json_t *arr, int mi, srv_message *m, srv_error *err) {
    char param[96];
    snprintf(param, sizeof param, "messages[%d].tool_calls", mi);
    if (!json_is_array(arr)) return fail(err, param, "'%s' must be an array", param);
    size_t n = json_array_size(arr);
    if (n == 0) return 0;
    if (n > INT32_MAX / 2) return fail(err, param, "too many tool calls");
    if (!(m->tool_calls = calloc(n, sizeof *m->tool_calls))) return nomem(err);
    for (size_t k = 0; k < n; k++) {
        const json_t *c = json_array_get(arr, k), *fn = json_object_get(c, "function"), *type;
        srv_tool_call *tc = &m->tool_calls[k];
        m->n_tool_calls = (int)k + 1;
        char p[128];
        snprintf(param, sizeof param, "messages[%d].tool_calls[%zu]", mi, k);
        if (!json_is_object(c) || !json_is_object(fn))
            return fail(err, param, "'%s' must be an object with a \"function\" object", param);
        if ((type = opt(c, "type")) && (!json_is_string(type) || strcmp(json_string_value(type), "function")))
            return fail(err, param, "'%s': type must be \"function\"", param);
        snprintf(p, sizeof p, "%s.id", param);
        if (req_str(c, "id", p, &tc->id, err)) return -1;
        snprintf(p, sizeof p, "%s.function.name", param);
        if (req_str(fn, "name", p, &tc->name, err)) return -1;
        if (!tool_name_ok(json_object_get(fn, "name")))
            return fail(err, p, "'%s' must be 1 to 64 of a-z, A-Z, 0-9, _ and -", p);
        snprintf(p, sizeof p, "%s.function.arguments", param);
        if (req_str(fn, "arguments", p, &tc->arguments, err)) return -1;
    }
    return 0;
}

/* One tools[i] entry -> its normalized copy appended to out. */
static int parse_tool(const json_t *t, size_t i, json_t *out, srv_error *err) {
    char param[64], p[96];
    snprintf(param, sizeof param, "tools[%zu]", i);
    const json_t *type = json_object_get(t, "type"), *fn = json_object_get(t, "function");
    if (!json_is_object(t) || !json_is_string(type) || strcmp(json_string_value(type), "function"))
        return fail(err, param, "'%s' must be an object with \"type\": \"function\"", param);
    if (!json_is_object(fn)) return fail(err, param, "'%s' must have a \"function\" object", param);
    const json_t *name = json_object_get(fn, "name");
    snprintf(p, sizeof p, "%s.function.name", param);
    if (!tool_name_ok(name)) return fail(err, p, "'%s' must be a string of 1 to 64 of a-z, A-Z, 0-9, _ and -", p);
    size_t k;
    json_t *prev;
    json_array_foreach(out, k, prev) {
        if (json_equal(json_object_get(json_object_get(prev, "function"), "name"), name))
            return fail(err, p, "'%s': the function name '%s' is given twice", p, json_string_value(name));
    }
    const json_t *desc = opt(fn, "description");
    snprintf(p, sizeof p, "%s.function.description", param);
    if (desc && !json_is_string(desc)) return fail(err, p, "'%s' must be a string", p);
    json_t *params = opt(fn, "parameters");
    snprintf(p, sizeof p, "%s.function.parameters", param);
    if (params) {
        const json_t *pt = json_object_get(params, "type");
        if (!json_is_object(params)) return fail(err, p, "'%s' must be a JSON schema object", p);
        if (pt && (!json_is_string(pt) || strcmp(json_string_value(pt), "object")))
            return fail(err, p, "'%s' must describe an object (\"type\": \"object\")", p);
    }
    json_t *nf = json_object(), *nt = json_object();
    json_t *np = params ? json_incref(params) : json_pack("{s:s,s:{}}", "type", "object", "properties");
    bool ok = nf && nt && np && !json_object_set(nf, "name", (json_t *)name) &&
              (!desc || !json_object_set(nf, "description", (json_t *)desc)) && !json_object_set(nf, "parameters", np) &&
              !json_object_set_new(nt, "type", json_string("function")) && !json_object_set(nt, "function", nf) &&
              !json_array_append(out, nt);
    json_decref(nf);
    json_decref(nt);
    json_decref(np);
    return ok ? 0 : nomem(err);
}

/* obj["tools"] -> *out (NULL when absent or empty). */
static int parse_tools(const json_t *obj, json_t **out, int *n_out, srv_error *err) {
    json_t *v = opt(obj, "tools");
    if (!v) return 0;
    if (!json_is_array(v)) return fail(err, "tools", "'tools' must be an array of tool objects");
    size_t n = json_array_size(v);
    if (n == 0) return 0;
    if (n > SRV_MAX_TOOLS) return fail(err, "tools", "'tools' may hold at most %d tools", SRV_MAX_TOOLS);
    json_t *arr = json_array();
    if (!arr) return nomem(err);
    for (size_t i = 0; i < n; i++)
        if (parse_tool(json_array_get(v, i), i, arr, err)) {
            json_decref(arr);
            return -1;
        }
    *out = arr;
    *n_out = (int)n;
    return 0;
}

static int parse_tool_choice(const json_t *obj, srv_request *r, srv_error *err) {
    r->tool_choice = r->n_tools ? SRV_TOOL_AUTO : SRV_TOOL_NONE;
    r->parallel_tool_calls = true;
    if (get_bool(obj, "parallel_tool_calls", &r->parallel_tool_calls, err)) return -1;
    json_t *v = opt(obj, "tool_choice");
    if (!v) return 0;
    const char *name = NULL;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "auto")) r->tool_choice = r->n_tools ? SRV_TOOL_AUTO : SRV_TOOL_NONE;
        else if (!strcmp(s, "none")) r->tool_choice = SRV_TOOL_NONE;
        else if (!strcmp(s, "required")) r->tool_choice = SRV_TOOL_REQUIRED;
        else
            return fail(err, "tool_choice",
                        "'tool_choice' must be \"auto\", \"none\", \"required\" or a function, got \"%.40s\"", s);
    } else {
        const json_t *type = json_object_get(v, "type"), *fn = json_object_get(v, "function");
        if (!json_is_object(v) || !json_is_string(type) || strcmp(json_string_value(type), "function") ||
            !json_is_string(json_object_get(fn, "name")))
            return fail(err, "tool_choice",
                        "'tool_choice' must be a string or {\"type\": \"function\", \"function\": {\"name\": ...}}");
        name = json_string_value(json_object_get(fn, "name"));
        r->tool_choice = SRV_TOOL_NAMED;
    }
    if (r->tool_choice != SRV_TOOL_NONE && r->tool_choice != SRV_TOOL_AUTO && !r->n_tools)
        return fail(err, "tool_choice", "'tool_choice' requires 'tools'");
    /* a forced call is itself grammar-constrained; two constraints do not compose */
    if ((r->tool_choice == SRV_TOOL_REQUIRED || r->tool_choice == SRV_TOOL_NAMED) && r->grammar)
        return fail(err, "tool_choice", "a forced 'tool_choice' cannot be combined with 'response_format' or 'grammar'");
    if (name) {
        for (int i = 0; i < r->n_tools; i++)
            if (!strcmp(name, json_string_value(json_object_get(json_object_get(json_array_get(r->tools, (size_t)i),
                                                                                "function"), "name")))) {
                r->tool_named = i;
                return 0;
            }
        return fail(err, "tool_choice", "'tool_choice' names the function '%.64s', which is not in 'tools'", name);
    }
    return 0;
}

static const char *normalize_role(const char *r) {
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(r, roles[i])) return roles[i];
    if (!strcmp(r, "developer")) return "system";
    return NULL;
}

/* content: a string or an array of {"type":"text","text":...} parts. */
static int parse_content(const json_t *c, int mi, char **out, srv_error *err) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", mi);
    if (json_is_string(c)) {
        if (!(*out = dup_str(c))) return nomem(err);
        return 0;
    }
    if (!json_is_array(c))
        return fail(err, param, "'%s' must be a string or an array of text parts", param);
    size_t total = 0, n = json_array_size(c);
    for (size_t j = 0; j < n; j++) {
        const json_t *part = json_array_get(c, j);
        char pp[64];
        snprintf(pp, sizeof pp, "messages[%d].content[%zu]", mi, j);
        const json_t *type = json_object_get(part, "type");
        const json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type))
            return fail(err, pp, "'%s' must be an object with a \"type\"", pp);
        if (strcmp(json_string_value(type), "text"))
            return fail(err, pp, "'%s': content parts of type \"%.40s\" are not supported (only \"text\")",
                        pp, json_string_value(type));
        if (!json_is_string(text)) return fail(err, pp, "'%s' must have a string \"text\"", pp);
        total += json_string_length(text);
    }
    char *s = malloc(total + 1);
    if (!s) return nomem(err);
    size_t at = 0;
    for (size_t j = 0; j < n; j++) {
        const json_t *text = json_object_get(json_array_get(c, j), "text");
        memcpy(s + at, json_string_value(text), json_string_length(text));
        at += json_string_length(text);
    }
    s[at] = '\0';
    *out = s;
    return 0;
}

/* obj["messages"]: a non-empty array of messages. */
static int parse_messages(const json_t *obj, srv_message **out, int *n_out, srv_error *err) {
    json_t *arr = opt(obj, "messages");
    if (!arr) return fail(err, "messages", "'messages' is required");
    if (!json_is_array(arr)) return fail(err, "messages", "'messages' must be an array");
    size_t n = json_array_size(arr);
    if (n == 0) return fail(err, "messages", "'messages' must not be empty");
    if (n > INT32_MAX / 2) return fail(err, "messages", "too many messages");
    srv_message *m = calloc(n, sizeof *m);
    if (!m) return nomem(err);
    for (size_t i = 0; i < n; i++) {
        const json_t *msg = json_array_get(arr, i);
        char param[64];
        int mi = (int)i;
        if (!json_is_object(msg)) {
            snprintf(param, sizeof param, "messages[%d]", mi);
            fail(err, param, "'%s' must be an object", param);
            goto fail;
        }
        snprintf(param, sizeof param, "messages[%d].role", mi);
        const json_t *role = json_object_get(msg, "role");
        const char *r = json_is_string(role) ? normalize_role(json_string_value(role)) : NULL;
        if (!r) {
            fail(err, param, "'%s' must be one of system, developer, user, assistant, tool", param);
            goto fail;
        }
        if (!(m[i].role = strdup(r))) {
            nomem(err);
            goto fail;
        }
        const json_t *content = opt(msg, "content");
        if (!content) {
            if (strcmp(r, "assistant")) {
                snprintf(param, sizeof param, "messages[%d].content", mi);
                fail(err, param, "'%s' is required for role %s", param, r);
                goto fail;
            }
        } else if (parse_content(content, mi, &m[i].content, err)) {
            goto fail;
        }
        const json_t *calls = opt(msg, "tool_calls");
        if (calls && !strcmp(r, "assistant") && parse_msg_tool_calls(calls, mi, &m[i], err)) goto fail;
        const json_t *call_id = opt(msg, "tool_call_id");
        if (call_id && !strcmp(r, "tool")) { /* optional: templates that ignore it take results without */
            snprintf(param, sizeof param, "messages[%d].tool_call_id", mi);
            if (req_str(msg, "tool_call_id", param, &m[i].tool_call_id, err)) goto fail;
        }
    }
    *out = m;
    *n_out = (int)n;
    return 0;
fail:
    srv_messages_free(m, (int)n);
    return -1;
}

/* ---------------------------------------------------------------- fields */

static int parse_stop(const json_t *obj, srv_request *r, srv_error *err) {
    json_t *v = opt(obj, "stop");
    if (!v) return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0) return fail(err, "stop", "'stop' must not be an empty string");
        if (!(r->stop = calloc(1, sizeof *r->stop)) || !(r->stop[0] = dup_str(v))) return nomem(err);
        r->n_stop = 1;
        return 0;
    }
    if (!json_is_array(v)) return fail(err, "stop", "'stop' must be a string or an array of strings");
    size_t n = json_array_size(v);
    if (n > SRV_MAX_STOP) return fail(err, "stop", "'stop' may hold at most %d strings", SRV_MAX_STOP);
    if (n == 0) return 0;
    if (!(r->stop = calloc(n, sizeof *r->stop))) return nomem(err);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(v, i);
        char param[32];
        snprintf(param, sizeof param, "stop[%zu]", i);
        if (!json_is_string(s)) return fail(err, param, "'%s' must be a string", param);
        if (json_string_length(s) == 0) return fail(err, param, "'%s' must not be empty", param);
        if (!(r->stop[i] = dup_str(s))) return nomem(err);
        r->n_stop = (int)i + 1;
    }
    return 0;
}

/* A token id key: decimal digits only, <= INT32_MAX. */
static bool parse_token_key(const char *k, int32_t *out) {
    if (!*k) return false;
    int64_t x = 0;
    for (const char *p = k; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        x = x * 10 + (*p - '0');
        if (x > INT32_MAX) return false;
    }
    *out = (int32_t)x;
    return true;
}

static int parse_logit_bias(const json_t *obj, srv_request *r, srv_error *err) {
    json_t *v = opt(obj, "logit_bias");
    if (!v) return 0;
    if (!json_is_object(v))
        return fail(err, "logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
    size_t n = json_object_size(v);
    if (n == 0) return 0;
    if (n > INT32_MAX / 2) return fail(err, "logit_bias", "'logit_bias' has too many entries");
    if (!(r->logit_bias = calloc(n, sizeof *r->logit_bias))) return nomem(err);
    const char *key;
    json_t *val;
    int i = 0;
    json_object_foreach(v, key, val) {
        char param[64];
        snprintf(param, sizeof param, "logit_bias[%.40s]", key);
        int32_t id;
        if (!parse_token_key(key, &id))
            return fail(err, param, "'logit_bias' keys must be token ids (non-negative integers), got \"%.40s\"",
                        key);
        if (!json_is_number(val)) return fail(err, param, "'%s' must be a number", param);
        double b = json_number_value(val);
        if (!(b >= -100.0 && b <= 100.0))
            return fail(err, param, "'%s' must be between -100 and 100, got %g", param, b);
        r->logit_bias[i].token = id;
        r->logit_bias[i].bias = b <= -100.0 ? -INFINITY : (float)b;
        r->n_logit_bias = ++i;
    }
    return 0;
}

static int parse_priority(const json_t *obj, srv_request *r, srv_error *err) {
    json_t *v = opt(obj, "priority");
    if (!v) return 0;
    if (json_is_string(v)) {
        int t = sched_tier_parse(json_string_value(v));
        if (t < 0)
            return fail(err, "priority",
                        "'priority' must be critical, high, normal, low, background or 0..4, got \"%.40s\"",
                        json_string_value(v));
        r->priority = t;
        return 0;
    }
    if (!json_is_number(v))
        return fail(err, "priority", "'priority' must be a tier name or an integer 0..4");
    int64_t t;
    if (int_value(v, "priority", 0, SCHED_N_TIERS - 1, &t, err)) return -1;
    r->priority = (int)t;
    return 0;
}

static int parse_stream(const json_t *obj, srv_request *r, srv_error *err) {
    if (get_bool(obj, "stream", &r->stream, err)) return -1;
    json_t *so = opt(obj, "stream_options");
    if (!so) return 0;
    if (!r->stream) return fail(err, "stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (!json_is_object(so)) return fail(err, "stream_options", "'stream_options' must be an object");
    json_t *iu = opt(so, "include_usage");
    if (iu && !json_is_boolean(iu))
        return fail(err, "stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
    r->include_usage = iu && json_is_true(iu);
    return 0;
}

/* Sampling fields shared by both endpoints. */
static int parse_sampling(const json_t *obj, srv_request *r, srv_error *err) {
    ryot_sampler_params *sp = &r->sp;
    double x;
    int64_t i;
    bool given;

    if (get_number(obj, "temperature", 0.0, 2.0, &x, &given, err)) return -1;
    if (given) sp->temperature = (float)x, r->sp_given |= SRV_GIVEN_TEMPERATURE;
    if (get_number(obj, "top_p", 0.0, 1.0, &x, &given, err)) return -1;
    if (given) sp->top_p = (float)x, r->sp_given |= SRV_GIVEN_TOP_P;
    if (get_number(obj, "min_p", 0.0, 1.0, &x, &given, err)) return -1;
    if (given) sp->min_p = (float)x, r->sp_given |= SRV_GIVEN_MIN_P;
    if (get_number(obj, "presence_penalty", -2.0, 2.0, &x, &given, err)) return -1;
    if (given) sp->presence_penalty = (float)x;
    if (get_number(obj, "frequency_penalty", -2.0, 2.0, &x, &given, err)) return -1;
    if (given) sp->frequency_penalty = (float)x;
    static const char *const rep_keys[] = {"repeat_penalty", "repetition_penalty"};
    for (int k = 0; k < 2; k++) {
        if (get_number(obj, rep_keys[k], 0.0, 100.0, &x, &given, err)) return -1;
        if (!given) continue;
        if (!(x > 0.0)) return fail(err, rep_keys[k], "'%s' must be greater than 0", rep_keys[k]);
        sp->repeat_penalty = (float)x;
        r->sp_given |= SRV_GIVEN_REPEAT_PENALTY;
    }
    if (get_int(obj, "top_k", -1, INT32_MAX, &i, &given, err)) return -1;
    if (given) sp->top_k = i < 0 ? 0 : (int32_t)i, r->sp_given |= SRV_GIVEN_TOP_K;
    if (get_int(obj, "repeat_last_n", -1, INT32_MAX, &i, &given, err)) return -1;
    if (given) sp->penalty_last_n = (int32_t)i, r->sp_given |= SRV_GIVEN_PENALTY_LAST_N;
    if (get_int(obj, "seed", INT64_MIN, INT64_MAX, &i, &r->has_seed, err)) return -1;
    if (r->has_seed) sp->seed = (uint64_t)i;
    if (parse_logit_bias(obj, r, err)) return -1;
    sp->logit_bias = r->logit_bias;
    sp->n_logit_bias = r->n_logit_bias;
    return 0;
}

/* ---------------------------------------------------------------- endpoints */

static int parse_chat(const json_t *obj, srv_request *r, srv_error *err) {
    if (parse_messages(obj, &r->messages, &r->n_messages, err)) return -1;
    int64_t i;
    bool given;
    if (get_int(obj, "max_completion_tokens", 1, SRV_MAX_TOKENS_LIMIT, &i, &given, err)) return -1;
    if (given) r->max_tokens = (int)i;

    if (get_bool(obj, "logprobs", &r->sp.logprobs, err)) return -1;
    if (get_int(obj, "top_logprobs", 0, RYOT_MAX_TOP_LOGPROBS, &i, &given, err)) return -1;
    if (given) {
        if (!r->sp.logprobs)
            return fail(err, "top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
        r->sp.top_logprobs = (int32_t)i;
    }

    return parse_tools(obj, &r->tools, &r->n_tools, err) || parse_tool_choice(obj, r, err) ? -1 : 0;
}

/* A grammar compiler's failure as a 400 on param (503 when out of memory). */
static int grammar_fail(srv_error *err, const char *param, const ryot_error *ge) {
    if (ge->code == RYOT_ERR_NOMEM) return nomem(err);
    return fail(err, param, "'%s' is invalid: %s", param, ge->msg);
}

/* "response_format" and the "grammar" extension (see srv_request.grammar). */
static int parse_structured(const json_t *obj, srv_request *r, srv_error *err) {
    const json_t *rf = opt(obj, "response_format"), *gt = opt(obj, "grammar");
    ryot_error ge = {0};
    if (gt) {
        if (!json_is_string(gt)) return fail(err, "grammar", "'grammar' must be a string");
        if (grammar_parse(json_string_value(gt), json_string_length(gt), &r->grammar, &ge))
            return grammar_fail(err, "grammar", &ge);
        if (asprintf(&r->grammar_src, "grammar:%s", json_string_value(gt)) < 0) {
            r->grammar_src = NULL;
            return nomem(err);
        }
    }
    if (!rf) return 0;
    const json_t *t = json_object_get(rf, "type");
    if (!json_is_object(rf) || !json_is_string(t))
        return fail(err, "response_format", "'response_format' must be an object with a string \"type\"");
    const char *type = json_string_value(t);
    if (!strcmp(type, "text")) return 0;
    if (strcmp(type, "json_object") && strcmp(type, "json_schema"))
        return fail(err, "response_format",
                    "'response_format' type \"%.40s\" is not supported (\"text\", \"json_object\", \"json_schema\")", type);
    if (r->grammar) return fail(err, "grammar", "give either 'grammar' or a JSON 'response_format', not both");
    const json_t *schema = NULL;
    if (!strcmp(type, "json_schema")) {
        const json_t *js = json_object_get(rf, "json_schema"), *name, *strict;
        if (!json_is_object(js))
            return fail(err, "response_format", "'response_format.json_schema' must be an object");
        if ((name = json_object_get(js, "name")) && !json_is_null(name) && !json_is_string(name))
            return fail(err, "response_format", "'response_format.json_schema.name' must be a string");
        if ((strict = json_object_get(js, "strict")) && !json_is_null(strict) && !json_is_boolean(strict))
            return fail(err, "response_format", "'response_format.json_schema.strict' must be a boolean");
        schema = json_object_get(js, "schema");
        if (json_is_null(schema)) schema = NULL;
    }
    ryot_status st = schema ? grammar_from_schema(schema, &r->grammar, &ge) : grammar_json_object(&r->grammar, &ge);
    if (st) return grammar_fail(err, "response_format", &ge);
    char *dump = json_dumps(rf, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    int n = dump ? asprintf(&r->grammar_src, "response_format:%s", dump) : -1;
    free(dump);
    if (n < 0) {
        r->grammar_src = NULL;
        return nomem(err);
    }
    return 0;
}

/* A token-id prompt: a non-empty array of ids in [0, INT32_MAX] (the vocab
 * is checked by the caller) into r->prompt_ids[i]. */
static int parse_prompt_ids(const json_t *a, const char *param, srv_request *r, int i, srv_error *err) {
    const size_t n = json_array_size(a);
    if (n == 0) return fail(err, param, "'%s' must not be an empty list of token ids", param);
    if (n > INT32_MAX / 2) return fail(err, param, "'%s' has too many tokens", param);
    if (!r->prompt_ids && (!(r->prompt_ids = calloc((size_t)r->n_prompts, sizeof *r->prompt_ids)) ||
                           !(r->n_prompt_ids = calloc((size_t)r->n_prompts, sizeof *r->n_prompt_ids))))
        return nomem(err);
    if (!(r->prompt_ids[i] = malloc(n * sizeof *r->prompt_ids[i]))) return nomem(err);
    for (size_t k = 0; k < n; k++) {
        char kp[48];
        snprintf(kp, sizeof kp, "%s[%zu]", param, k);
        int64_t id;
        if (int_value(json_array_get(a, k), kp, 0, INT32_MAX, &id, err)) return -1;
        r->prompt_ids[i][k] = (int32_t)id;
    }
    r->n_prompt_ids[i] = (int)n;
    return 0;
}

/* "prompt": a string, an array of strings, an array of token ids (one
 * prompt), or an array whose items are strings or arrays of token ids. */
static int parse_prompt(const json_t *obj, srv_request *r, srv_error *err) {
    json_t *p = opt(obj, "prompt");
    if (!p) return fail(err, "prompt", "'prompt' is required");
    if (json_is_string(p)) {
        if (!(r->prompts = calloc(1, sizeof *r->prompts)) || !(r->prompts[0] = dup_str(p))) return nomem(err);
        r->n_prompts = 1;
        return 0;
    }
    if (!json_is_array(p))
        return fail(err, "prompt", "'prompt' must be a string, an array of strings or an array of token ids");
    size_t n = json_array_size(p);
    if (n == 0) return fail(err, "prompt", "'prompt' must not be an empty array");
    if (json_is_number(json_array_get(p, 0))) { /* one prompt of token ids */
        if (!(r->prompts = calloc(1, sizeof *r->prompts))) return nomem(err);
        r->n_prompts = 1;
        return parse_prompt_ids(p, "prompt", r, 0, err);
    }
    if (n > SRV_MAX_PROMPTS) return fail(err, "prompt", "'prompt' may hold at most %d prompts", SRV_MAX_PROMPTS);
    if (!(r->prompts = calloc(n, sizeof *r->prompts))) return nomem(err);
    r->n_prompts = (int)n;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(p, i);
        char param[32];
        snprintf(param, sizeof param, "prompt[%zu]", i);
        if (json_is_array(s)) {
            if (parse_prompt_ids(s, param, r, (int)i, err)) return -1;
        } else if (!json_is_string(s)) {
            return fail(err, param, "'%s' must be a string or an array of token ids", param);
        } else if (!(r->prompts[i] = dup_str(s))) {
            return nomem(err);
        }
    }
    return 0;
}

static int parse_completions(const json_t *obj, srv_request *r, srv_error *err) {
    if (parse_prompt(obj, r, err)) return -1;

    int64_t i;
    bool given;
    if (get_int(obj, "logprobs", 0, SRV_MAX_COMPLETION_LOGPROBS, &i, &given, err)) return -1;
    if (given) {
        r->sp.logprobs = true;
        r->sp.top_logprobs = (int32_t)i;
    }
    if (get_bool(obj, "echo", &r->echo, err)) return -1;
    json_t *suffix = opt(obj, "suffix");
    if (suffix && (!json_is_string(suffix) || json_string_length(suffix) > 0))
        return fail(err, "suffix", "'suffix' (insertion) is not supported");
    if (get_int(obj, "best_of", 1, SRV_MAX_N, &i, &given, err)) return -1;
    if (given && i != r->n) return fail(err, "best_of", "'best_of' other than 'n' is not supported");
    return 0;
}

ryot_sampler_params srv_request_openai_sampling(void) {
    ryot_sampler_params sp = ryot_sampler_params_default();
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.repeat_penalty = 1.0f;
    sp.frequency_penalty = 0.0f;
    sp.presence_penalty = 0.0f;
    sp.penalty_last_n = -1;
    sp.seed = RYOT_SEED_RANDOM;
    sp.logit_bias = NULL;
    sp.n_logit_bias = 0;
    sp.logprobs = false;
    sp.top_logprobs = 0;
    return sp;
}

void srv_request_default_sampling(srv_request *r, const ryot_sampler_params *d) {
    ryot_sampler_params *sp = &r->sp;
    if (!(r->sp_given & SRV_GIVEN_TEMPERATURE)) sp->temperature = d->temperature;
    if (!(r->sp_given & SRV_GIVEN_TOP_P)) sp->top_p = d->top_p;
    if (!(r->sp_given & SRV_GIVEN_TOP_K)) sp->top_k = d->top_k;
    if (!(r->sp_given & SRV_GIVEN_MIN_P)) sp->min_p = d->min_p;
    if (!(r->sp_given & SRV_GIVEN_REPEAT_PENALTY)) sp->repeat_penalty = d->repeat_penalty;
    if (!(r->sp_given & SRV_GIVEN_PENALTY_LAST_N)) sp->penalty_last_n = d->penalty_last_n;
}

static void request_defaults(srv_request *r, srv_endpoint ep) {
    memset(r, 0, sizeof *r);
    r->ep = ep;
    r->max_tokens = -1;
    r->n = 1;
    r->priority = SCHED_NORMAL;
    r->sp = srv_request_openai_sampling();
}

static int parse_request(const json_t *obj, srv_endpoint ep, srv_request *r, srv_error *err) {
    int64_t i;
    bool given;
    if (get_str(obj, "model", &r->model, err)) return -1;
    if (get_int(obj, "n", 1, SRV_MAX_N, &i, &given, err)) return -1;
    if (given) r->n = (int)i;
    /* completions may ask for 0: prefill only (echo + logprobs scores the prompt) */
    if (get_int(obj, "max_tokens", ep == SRV_EP_COMPLETIONS ? 0 : 1, SRV_MAX_TOKENS_LIMIT, &i, &given, err))
        return -1;
    if (given) r->max_tokens = (int)i;
    if (parse_sampling(obj, r, err)) return -1;
    if (parse_stop(obj, r, err)) return -1;
    if (parse_stream(obj, r, err)) return -1;
    if (get_str(obj, "user", &r->user, err)) return -1;
    if (parse_priority(obj, r, err)) return -1;
    double t;
    if (get_number(obj, "timeout", 0.0, SRV_MAX_TIMEOUT_S, &t, &given, err)) return -1;
    if (given) {
        if (!(t > 0.0)) return fail(err, "timeout", "'timeout' must be a positive number of seconds");
        r->timeout_s = t;
    }
    if (get_bool(obj, "ignore_eos", &r->ignore_eos, err)) return -1;
    if (parse_structured(obj, r, err)) return -1;
    return ep == SRV_EP_CHAT ? parse_chat(obj, r, err) : parse_completions(obj, r, err);
}

int srv_request_parse(const char *body, size_t len, srv_endpoint ep, srv_request *out, srv_error *err) {
    request_defaults(out, ep);
    json_t *root = load_object(body, len, err);
    if (!root) return -1;
    int rc = parse_request(root, ep, out, err);
    json_decref(root);
    if (rc) srv_request_free(out);
    return rc;
}

void srv_request_free(srv_request *r) {
    if (!r) return;
    free(r->model);
    srv_messages_free(r->messages, r->n_messages);
    for (int i = 0; i < r->n_prompts; i++) {
        if (r->prompts) free(r->prompts[i]);
        if (r->prompt_ids) free(r->prompt_ids[i]);
    }
    free(r->prompts);
    free(r->prompt_ids);
    free(r->n_prompt_ids);
    free(r->logit_bias);
    if (r->stop)
        for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->user);
    grammar_free(r->grammar);
    free(r->grammar_src);
    json_decref(r->tools);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- helper endpoints */

int srv_tokenize_parse(const char *body, size_t len, srv_tokenize_req *out, srv_error *err) {
    memset(out, 0, sizeof *out);
    out->parse_special = true;
    out->add_generation_prompt = true;
    json_t *root = load_object(body, len, err);
    if (!root) return -1;
    int rc = -1;
    json_t *content = opt(root, "content");
    json_t *messages = opt(root, "messages");
    if (content && messages) {
        fail(err, "messages", "give either 'content' or 'messages', not both");
    } else if (!content && !messages) {
        fail(err, "content", "'content' (a string) or 'messages' is required");
    } else if (content && !json_is_string(content)) {
        fail(err, "content", "'content' must be a string");
    } else if (content && !(out->content = dup_str(content))) {
        nomem(err);
    } else if (messages && parse_messages(root, &out->messages, &out->n_messages, err)) {
        /* err filled */
    } else if (!get_bool(root, "add_special", &out->add_special, err) &&
               !get_bool(root, "parse_special", &out->parse_special, err) &&
               !get_bool(root, "with_pieces", &out->with_pieces, err) &&
               !get_bool(root, "add_generation_prompt", &out->add_generation_prompt, err)) {
        rc = 0;
    }
    json_decref(root);
    if (rc) srv_tokenize_free(out);
    return rc;
}

void srv_tokenize_free(srv_tokenize_req *r) {
    if (!r) return;
    free(r->content);
    srv_messages_free(r->messages, r->n_messages);
    memset(r, 0, sizeof *r);
}

int srv_detokenize_parse(const char *body, size_t len, srv_detokenize_req *out, srv_error *err) {
    memset(out, 0, sizeof *out);
    json_t *root = load_object(body, len, err);
    if (!root) return -1;
    int rc = -1;
    json_t *toks = opt(root, "tokens");
    if (!toks) {
        fail(err, "tokens", "'tokens' is required");
        goto done;
    }
    if (!json_is_array(toks)) {
        fail(err, "tokens", "'tokens' must be an array of token ids");
        goto done;
    }
    size_t n = json_array_size(toks);
    if (n > INT32_MAX / 2) {
        fail(err, "tokens", "too many tokens");
        goto done;
    }
    if (n > 0 && !(out->tokens = malloc(n * sizeof *out->tokens))) {
        nomem(err);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char param[32];
        snprintf(param, sizeof param, "tokens[%zu]", i);
        int64_t id;
        if (int_value(json_array_get(toks, i), param, 0, INT32_MAX, &id, err)) goto done;
        out->tokens[i] = (int32_t)id;
    }
    out->n_tokens = (int)n;
    rc = 0;
done:
    json_decref(root);
    if (rc) srv_detokenize_free(out);
    return rc;
}

void srv_detokenize_free(srv_detokenize_req *r) {
    if (!r) return;
    free(r->tokens);
    memset(r, 0, sizeof *r);
}

int srv_template_parse(const char *body, size_t len, srv_template_req *out, srv_error *err) {
    memset(out, 0, sizeof *out);
    out->add_generation_prompt = true;
    json_t *root = load_object(body, len, err);
    if (!root) return -1;
    int n_tools = 0;
    int rc = parse_messages(root, &out->messages, &out->n_messages, err);
    if (!rc) rc = parse_tools(root, &out->tools, &n_tools, err);
    if (!rc) rc = get_bool(root, "add_generation_prompt", &out->add_generation_prompt, err);
    json_decref(root);
    if (rc) srv_template_free(out);
    return rc;
}

void srv_template_free(srv_template_req *r) {
    if (!r) return;
    srv_messages_free(r->messages, r->n_messages);
    json_decref(r->tools);
    memset(r, 0, sizeof *r);
}
