/* OpenAI response JSON; the shapes and contracts are in openai.h.
 *
 * Building: each builder assembles a jansson tree and dumps it compact.  The
 * helpers below record any failed allocation in a `bool *ok` instead of
 * checking every call, and the builder returns NULL at the end if one
 * failed (jansson's set_new and append_new accept NULL values and release
 * the value on failure, so nothing leaks on that path). */
#include "server/openai.h"

#include "core/rng.h"

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* floats carry ~9 significant digits; more only prints noise */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))
/* what OpenAI reports for an impossible token */
#define LOGPROB_IMPOSSIBLE -9999.0

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the well-formed UTF-8 sequence at s[0..n) (returns true), or of
 * its maximal invalid subpart (false; at least 1), per Unicode 3.9 D93b /
 * table 3-7, so each ill-formed subpart becomes one U+FFFD. */
static bool utf8_next(const unsigned char *s, size_t n, size_t *adv) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80) {
        *adv = 1;
        return true;
    } else if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        *adv = 1;
        return false;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n) break;
        unsigned char b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    *adv = i;
    return i == need + 1;
}

static bool utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0, adv; i < n; i += adv) {
        if (u[i] < 0x80) {
            adv = 1;
            continue;
        }
        if (!utf8_next(u + i, n - i, &adv)) return false;
    }
    return true;
}

/* s[0..n) with each invalid subpart replaced by U+FFFD; malloc'd, length in
 * *out_n.  NULL when out of memory. */
static char *utf8_sanitize(const char *s, size_t n, size_t *out_n) {
    if (n > (SIZE_MAX - 1) / 3) return NULL;
    char *o = malloc(3 * n + 1); /* one byte -> at most 3 */
    if (!o) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0, adv; i < n; i += adv) {
        if (utf8_next(u + i, n - i, &adv)) {
            memcpy(o + k, s + i, adv);
            k += adv;
        } else {
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3;
        }
    }
    o[k] = '\0';
    *out_n = k;
    return o;
}

int64_t srv_utf8_chars(const char *text, size_t len) {
    const unsigned char *u = (const unsigned char *)text;
    int64_t chars = 0;
    for (size_t i = 0, adv; i < len; i += adv, chars++) utf8_next(u + i, len - i, &adv);
    return chars;
}

int64_t srv_utf8_leads(const char *text, size_t len) {
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}

/* ---------------------------------------------------------------- jansson helpers */

/* A JSON string of any bytes (invalid UTF-8 -> U+FFFD); NULL when out of memory. */
static json_t *jstr(const char *s, size_t n) {
    if (!s) {
        s = "";
        n = 0;
    }
    if (utf8_valid(s, n)) return json_stringn_nocheck(s, n);
    size_t m;
    char *clean = utf8_sanitize(s, n, &m);
    if (!clean) return NULL;
    json_t *v = json_stringn_nocheck(clean, m);
    free(clean);
    return v;
}

static json_t *jcstr(const char *s) { return s ? jstr(s, strlen(s)) : json_null(); }

static json_t *jlogprob(float lp) { return json_real(isfinite(lp) ? (double)lp : LOGPROB_IMPOSSIBLE); }

static void put(json_t *obj, const char *key, json_t *v, bool *ok) {
    if (json_object_set_new(obj, key, v)) *ok = false;
}

static void append(json_t *arr, json_t *v, bool *ok) {
    if (json_array_append_new(arr, v)) *ok = false;
}

/* New object/array, recording failure in *ok (the NULL then flows into
 * put/append, which fail harmlessly). */
static json_t *jobj(bool *ok) {
    json_t *o = json_object();
    if (!o) *ok = false;
    return o;
}

static json_t *jarr(bool *ok) {
    json_t *a = json_array();
    if (!a) *ok = false;
    return a;
}

static char *finish(json_t *root, bool ok) {
    char *s = ok && root ? json_dumps(root, DUMP_FLAGS) : NULL;
    json_decref(root);
    return s;
}

/* ---------------------------------------------------------------- ids */

void srv_make_id(char *buf, size_t n, const char *prefix) {
    static _Atomic uint64_t fallback_counter;
    if (!buf || n == 0) return;
    unsigned char r[12];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* no entropy yet (early boot) or no syscall: unique enough for an id */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                     (atomic_fetch_add(&fallback_counter, 1) << 40);
        uint64_t a = ryot_splitmix64(&x), b = ryot_splitmix64(&x);
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 4);
    }
    char hex[2 * sizeof r + 1];
    for (size_t i = 0; i < sizeof r; i++) snprintf(hex + 2 * i, 3, "%02x", r[i]);
    snprintf(buf, n, "%s%s", prefix ? prefix : "", hex);
}

const char *srv_finish_name(sched_finish f) {
    switch (f) {
    case SCHED_FINISH_STOP: return "stop";
    case SCHED_FINISH_LENGTH: return "length";
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- shared pieces */

static json_t *jfinish(sched_finish f) {
    const char *s = srv_finish_name(f);
    return s ? json_string(s) : json_null();
}

static json_t *jusage(const srv_usage *u, bool *ok) {
    json_t *o = jobj(ok);
    put(o, "prompt_tokens", json_integer(u->prompt_tokens), ok);
    put(o, "completion_tokens", json_integer(u->completion_tokens), ok);
    put(o, "total_tokens", json_integer(u->prompt_tokens + u->completion_tokens), ok);
    if (u->cached_tokens >= 0) {
        json_t *d = jobj(ok);
        put(d, "cached_tokens", json_integer(u->cached_tokens), ok);
        put(o, "prompt_tokens_details", d, ok);
    }
    return o;
}

/* id, object, created, model, system_fingerprint */
static json_t *jhead(const srv_resp_meta *m, const char *object, bool *ok) {
    json_t *o = jobj(ok);
    put(o, "id", jcstr(m->id ? m->id : ""), ok);
    put(o, "object", json_string(object), ok);
    put(o, "created", json_integer(m->created), ok);
    put(o, "model", jcstr(m->model ? m->model : ""), ok);
    if (m->system_fingerprint) put(o, "system_fingerprint", jcstr(m->system_fingerprint), ok);
    return o;
}

static json_t *jbytes(const char *s, size_t n, bool *ok) {
    json_t *a = jarr(ok);
    for (size_t i = 0; i < n; i++) append(a, json_integer((unsigned char)s[i]), ok);
    return a;
}

/* {"token","logprob","bytes"} */
static json_t *jtoken(const char *text, size_t len, float lp, bool *ok) {
    json_t *o = jobj(ok);
    put(o, "token", jstr(text, len), ok);
    put(o, "logprob", jlogprob(lp), ok);
    put(o, "bytes", jbytes(text, len, ok), ok);
    return o;
}

/* "tool_calls": [{["index"], "id", "type": "function", "function": {"name",
 * "arguments"}}]; index0 < 0: no "index" (a message's calls) */
static json_t *jtool_calls(const srv_tool_call *c, int n, int index0, bool *ok) {
    json_t *a = jarr(ok);
    for (int k = 0; k < n; k++) {
        json_t *o = jobj(ok), *fn = jobj(ok);
        if (index0 >= 0) put(o, "index", json_integer(index0 + k), ok);
        put(o, "id", jcstr(c[k].id), ok);
        put(o, "type", json_string("function"), ok);
        put(fn, "name", jcstr(c[k].name), ok);
        put(fn, "arguments", jcstr(c[k].arguments), ok);
        put(o, "function", fn, ok);
        append(a, o, ok);
    }
    return a;
}

/* finish_reason of a chat choice that made tool calls */
static json_t *jchat_finish(sched_finish f, bool tool_calls) {
    return tool_calls && f == SCHED_FINISH_STOP ? json_string("tool_calls") : jfinish(f);
}

/* chat: {"content":[...],"refusal":null} */
static json_t *jchat_logprobs(bool with, const sched_token_lp *lp, int n, bool *ok) {
    if (!with) return json_null();
    json_t *o = jobj(ok), *content = jarr(ok);
    for (int i = 0; i < n; i++) {
        const sched_token_lp *t = &lp[i];
        json_t *e = jtoken(t->text, t->len, t->logprob, ok), *top = jarr(ok);
        int n_top = t->n_top < 0 ? 0 : t->n_top > RYOT_MAX_TOP_LOGPROBS ? RYOT_MAX_TOP_LOGPROBS : t->n_top;
        for (int j = 0; j < n_top; j++) append(top, jtoken(t->top[j].text, t->top[j].len, t->top[j].logprob, ok), ok);
        put(e, "top_logprobs", top, ok);
        append(content, e, ok);
    }
    put(o, "content", content, ok);
    put(o, "refusal", json_null(), ok);
    return o;
}

/* completions: {"tokens","token_logprobs","top_logprobs","text_offset"} */
static json_t *jcompletion_logprobs(const srv_completion_choice *c, bool *ok) {
    if (!c->with_logprobs) return json_null();
    json_t *o = jobj(ok), *tokens = jarr(ok), *lps = jarr(ok), *tops = jarr(ok), *offs = jarr(ok);
    int64_t off = c->text_offset0;
    for (int i = 0; i < c->n_lp; i++) {
        const sched_token_lp *t = &c->lp[i];
        append(tokens, jstr(t->text, t->len), ok);
        append(lps, t->no_logprob ? json_null() : jlogprob(t->logprob), ok);
        append(offs, json_integer(off), ok);
        off += srv_utf8_leads(t->text, t->len);
        if (t->no_logprob) { /* the first prompt token (echo): nothing to predict it from */
            append(tops, json_null(), ok);
            continue;
        }
        json_t *d = jobj(ok);
        int n_top = t->n_top < 0 ? 0 : t->n_top > RYOT_MAX_TOP_LOGPROBS ? RYOT_MAX_TOP_LOGPROBS : t->n_top;
        for (int j = 0; j < n_top && d; j++) {
            const sched_top_lp *a = &t->top[j];
            size_t kn;
            char *key = utf8_sanitize(a->text ? a->text : "", a->text ? a->len : 0, &kn);
            if (!key) {
                *ok = false;
                break;
            }
            if (!json_object_getn(d, key, kn) && json_object_setn_new_nocheck(d, key, kn, jlogprob(a->logprob)))
                *ok = false;
            free(key);
        }
        append(tops, d, ok);
    }
    put(o, "tokens", tokens, ok);
    put(o, "token_logprobs", lps, ok);
    put(o, "top_logprobs", tops, ok);
    put(o, "text_offset", offs, ok);
    return o;
}

static void put_usage(json_t *o, bool include_usage, const srv_usage *usage, bool *ok) {
    if (usage)
        put(o, "usage", jusage(usage, ok), ok);
    else if (include_usage)
        put(o, "usage", json_null(), ok);
}

/* ---------------------------------------------------------------- builders */

char *srv_json_error(const srv_error *e) {
    bool ok = true;
    json_t *root = jobj(&ok), *o = jobj(&ok);
    put(o, "message", jcstr(e->message), &ok);
    put(o, "type", jcstr(e->type ? e->type : "invalid_request_error"), &ok);
    put(o, "param", e->param[0] ? jstr(e->param, strnlen(e->param, sizeof e->param)) : json_null(), &ok);
    put(o, "code", jcstr(e->code), &ok);
    put(root, "error", o, &ok);
    return finish(root, ok);
}

char *srv_json_chat_completion(const srv_resp_meta *m, const srv_chat_choice *c, int n_choices,
                               const srv_usage *usage) {
    bool ok = true;
    json_t *root = jhead(m, "chat.completion", &ok), *choices = jarr(&ok);
    for (int i = 0; i < n_choices; i++) {
        json_t *ch = jobj(&ok), *msg = jobj(&ok);
        put(ch, "index", json_integer(c[i].index), &ok);
        put(msg, "role", json_string("assistant"), &ok);
        const bool calls = c[i].n_tool_calls > 0;
        put(msg, "content", calls && !c[i].content ? json_null() : jstr(c[i].content, c[i].content_len), &ok);
        put(msg, "refusal", json_null(), &ok);
        if (calls) put(msg, "tool_calls", jtool_calls(c[i].tool_calls, c[i].n_tool_calls, -1, &ok), &ok);
        put(ch, "message", msg, &ok);
        put(ch, "logprobs", jchat_logprobs(c[i].with_logprobs, c[i].lp, c[i].n_lp, &ok), &ok);
        put(ch, "finish_reason", jchat_finish(c[i].finish, calls), &ok);
        append(choices, ch, &ok);
    }
    put(root, "choices", choices, &ok);
    if (usage) put(root, "usage", jusage(usage, &ok), &ok);
    return finish(root, ok);
}

char *srv_json_chat_chunk(const srv_resp_meta *m, const srv_chat_delta *c, int n_choices,
                          bool include_usage, const srv_usage *usage) {
    bool ok = true;
    json_t *root = jhead(m, "chat.completion.chunk", &ok), *choices = jarr(&ok);
    for (int i = 0; i < n_choices; i++) {
        json_t *ch = jobj(&ok), *delta = jobj(&ok);
        put(ch, "index", json_integer(c[i].index), &ok);
        if (c[i].role) put(delta, "role", json_string("assistant"), &ok);
        if (c[i].content) put(delta, "content", jstr(c[i].content, c[i].content_len), &ok);
        if (c[i].n_tool_calls)
            put(delta, "tool_calls", jtool_calls(c[i].tool_calls, c[i].n_tool_calls, c[i].tool_index0, &ok), &ok);
        put(ch, "delta", delta, &ok);
        put(ch, "logprobs", jchat_logprobs(c[i].with_logprobs, c[i].lp, c[i].n_lp, &ok), &ok);
        put(ch, "finish_reason", jchat_finish(c[i].finish, c[i].finish_tool_calls), &ok);
        append(choices, ch, &ok);
    }
    put(root, "choices", choices, &ok);
    put_usage(root, include_usage, usage, &ok);
    return finish(root, ok);
}

static json_t *jcompletion_choices(const srv_completion_choice *c, int n, bool *ok) {
    json_t *choices = jarr(ok);
    for (int i = 0; i < n; i++) {
        json_t *ch = jobj(ok);
        put(ch, "index", json_integer(c[i].index), ok);
        put(ch, "text", jstr(c[i].text, c[i].text_len), ok);
        put(ch, "logprobs", jcompletion_logprobs(&c[i], ok), ok);
        put(ch, "finish_reason", jfinish(c[i].finish), ok);
        append(choices, ch, ok);
    }
    return choices;
}

char *srv_json_completion(const srv_resp_meta *m, const srv_completion_choice *c, int n_choices,
                          const srv_usage *usage) {
    bool ok = true;
    json_t *root = jhead(m, "text_completion", &ok);
    put(root, "choices", jcompletion_choices(c, n_choices, &ok), &ok);
    if (usage) put(root, "usage", jusage(usage, &ok), &ok);
    return finish(root, ok);
}

char *srv_json_completion_chunk(const srv_resp_meta *m, const srv_completion_choice *c,
                                int n_choices, bool include_usage, const srv_usage *usage) {
    bool ok = true;
    json_t *root = jhead(m, "text_completion", &ok);
    put(root, "choices", jcompletion_choices(c, n_choices, &ok), &ok);
    put_usage(root, include_usage, usage, &ok);
    return finish(root, ok);
}

char *srv_json_models(const char *const *ids, int n, int64_t created) {
    return srv_json_models_status(ids, NULL, n, created);
}

char *srv_json_models_status(const char *const *ids, const char *const *status, int n, int64_t created) {
    bool ok = true;
    json_t *root = jobj(&ok), *data = jarr(&ok);
    put(root, "object", json_string("list"), &ok);
    for (int i = 0; i < n; i++) {
        json_t *o = jobj(&ok);
        put(o, "id", jcstr(ids[i] ? ids[i] : ""), &ok);
        put(o, "object", json_string("model"), &ok);
        put(o, "created", json_integer(created), &ok);
        put(o, "owned_by", json_string("ryot"), &ok);
        if (status && status[i]) put(o, "status", json_string(status[i]), &ok);
        append(data, o, &ok);
    }
    put(root, "data", data, &ok);
    return finish(root, ok);
}

char *srv_json_tokenize(const int32_t *tokens, int n, const srv_piece *pieces) {
    bool ok = true;
    json_t *root = jobj(&ok), *arr = jarr(&ok);
    for (int i = 0; i < n; i++) {
        if (!pieces) {
            append(arr, json_integer(tokens[i]), &ok);
            continue;
        }
        json_t *o = jobj(&ok);
        const char *t = pieces[i].text ? pieces[i].text : "";
        size_t len = pieces[i].text ? pieces[i].len : 0;
        put(o, "id", json_integer(tokens[i]), &ok);
        put(o, "piece", utf8_valid(t, len) ? json_stringn_nocheck(t, len) : jbytes(t, len, &ok), &ok);
        append(arr, o, &ok);
    }
    put(root, "tokens", arr, &ok);
    return finish(root, ok);
}

static char *single_string(const char *key, const char *text, size_t len) {
    bool ok = true;
    json_t *root = jobj(&ok);
    put(root, key, jstr(text, len), &ok);
    return finish(root, ok);
}

char *srv_json_detokenize(const char *text, size_t len) { return single_string("content", text, len); }

char *srv_json_apply_template(const char *prompt, size_t len) { return single_string("prompt", prompt, len); }
