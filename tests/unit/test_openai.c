/* Response JSON builders: every body is parsed back with jansson and each
 * field's presence, type and value checked against OpenAI's shapes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/openai.h"

#define FFFD "\xEF\xBF\xBD"

/* Parses a builder's output (freeing it) and checks it is one JSON object. */
static json_t *load(char *text) {
    assert_non_null(text);
    json_error_t je;
    json_t *root = json_loads(text, JSON_ALLOW_NUL, &je);
    if (!root) fprintf(stderr, "invalid JSON (%s): %s\n", je.text, text);
    assert_non_null(root);
    assert_true(json_is_object(root));
    /* compact: no whitespace outside strings in our shapes */
    assert_null(strstr(text, ": "));
    assert_null(strstr(text, ", "));
    free(text);
    return root;
}

static json_t *get(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!v) fprintf(stderr, "missing key %s\n", key);
    assert_non_null(v);
    return v;
}

static void expect_str(const json_t *o, const char *key, const char *want) {
    json_t *v = get(o, key);
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), want);
}

static void expect_int(const json_t *o, const char *key, json_int_t want) {
    json_t *v = get(o, key);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), want);
}

static void expect_real(const json_t *o, const char *key, double want) {
    json_t *v = get(o, key);
    assert_true(json_is_real(v)); /* a float even when integral (Python float) */
    assert_true(fabs(json_real_value(v) - want) < 1e-6);
}

static void expect_null(const json_t *o, const char *key) { assert_true(json_is_null(get(o, key))); }

static void expect_bytes(const json_t *o, const char *key, const char *raw, size_t n) {
    json_t *a = get(o, key);
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), n);
    for (size_t i = 0; i < n; i++) {
        json_t *b = json_array_get(a, i);
        assert_true(json_is_integer(b));
        assert_int_equal(json_integer_value(b), (unsigned char)raw[i]);
    }
}

static const srv_resp_meta META = {"chatcmpl-abc", 1700000000, "smol-135m", NULL};

static void expect_head(const json_t *root, const char *id, const char *object) {
    expect_str(root, "id", id);
    expect_str(root, "object", object);
    expect_int(root, "created", 1700000000);
    expect_str(root, "model", "smol-135m");
}

static void expect_usage(const json_t *u, json_int_t p, json_int_t c) {
    assert_true(json_is_object(u));
    expect_int(u, "prompt_tokens", p);
    expect_int(u, "completion_tokens", c);
    expect_int(u, "total_tokens", p + c);
}

/* ---------------------------------------------------------------- errors */

static void test_error_json(void **state) {
    (void)state;
    srv_error e;
    srv_error_set(&e, 400, NULL, "'messages' is required");
    json_t *root = load(srv_json_error(&e));
    assert_int_equal(json_object_size(root), 1);
    json_t *o = get(root, "error");
    assert_int_equal(json_object_size(o), 4);
    expect_str(o, "message", "'messages' is required");
    expect_str(o, "type", "invalid_request_error");
    expect_null(o, "param");
    expect_null(o, "code");
    json_decref(root);

    srv_error_set(&e, 429, "priority", "queue full");
    root = load(srv_json_error(&e));
    o = get(root, "error");
    expect_str(o, "type", "requests");
    expect_str(o, "param", "priority");
    expect_str(o, "code", "rate_limit_exceeded");
    json_decref(root);

    /* a message quoting invalid bytes from the request still makes valid JSON */
    srv_error_set(&e, 400, "logit_bias[\xff]", "bad key \"\xff\xfe\" \"q\" \\");
    root = load(srv_json_error(&e));
    o = get(root, "error");
    expect_str(o, "message", "bad key \"" FFFD FFFD "\" \"q\" \\");
    expect_str(o, "param", "logit_bias[" FFFD "]");
    json_decref(root);
}

/* ---------------------------------------------------------------- chat */

static sched_token_lp make_lp(const char *text, float lp, int n_top) {
    sched_token_lp t;
    memset(&t, 0, sizeof t);
    t.text = text;
    t.len = strlen(text);
    t.logprob = lp;
    t.n_top = n_top;
    return t;
}

static void test_chat_completion(void **state) {
    (void)state;
    sched_token_lp lp[2] = {make_lp("Hi", -0.25f, 2), make_lp("\xe2\x82", -1.5f, 1)};
    lp[0].top[0] = (sched_top_lp){"Hi", 2, -0.25f};
    lp[0].top[1] = (sched_top_lp){"Hello", 5, -INFINITY};
    lp[1].top[0] = (sched_top_lp){"\xe2\x82", 2, -1.5f};
    srv_chat_choice ch[2] = {
        {.index = 0, .content = "Hi\xe2\x82", .content_len = 4, .finish = SCHED_FINISH_LENGTH,
         .with_logprobs = true, .lp = lp, .n_lp = 2},
        {.index = 1, .content = "ok", .content_len = 2, .finish = SCHED_FINISH_STOP},
    };
    srv_usage u = {12, 2, -1};
    srv_resp_meta m = META;
    m.system_fingerprint = "fp_ryot";
    json_t *root = load(srv_json_chat_completion(&m, ch, 2, &u));
    expect_head(root, "chatcmpl-abc", "chat.completion");
    expect_str(root, "system_fingerprint", "fp_ryot");
    json_t *usage = get(root, "usage");
    expect_usage(usage, 12, 2);
    assert_null(json_object_get(usage, "prompt_tokens_details"));

    json_t *choices = get(root, "choices");
    assert_true(json_is_array(choices));
    assert_int_equal(json_array_size(choices), 2);
    json_t *c0 = json_array_get(choices, 0);
    expect_int(c0, "index", 0);
    expect_str(c0, "finish_reason", "length");
    json_t *msg = get(c0, "message");
    expect_str(msg, "role", "assistant");
    expect_str(msg, "content", "Hi" FFFD);
    expect_null(msg, "refusal");
    json_t *lps = get(c0, "logprobs");
    assert_true(json_is_object(lps));
    expect_null(lps, "refusal");
    json_t *content = get(lps, "content");
    assert_int_equal(json_array_size(content), 2);
    json_t *t0 = json_array_get(content, 0);
    expect_str(t0, "token", "Hi");
    expect_real(t0, "logprob", -0.25);
    expect_bytes(t0, "bytes", "Hi", 2);
    json_t *top = get(t0, "top_logprobs");
    assert_int_equal(json_array_size(top), 2);
    expect_str(json_array_get(top, 0), "token", "Hi");
    expect_real(json_array_get(top, 0), "logprob", -0.25);
    expect_str(json_array_get(top, 1), "token", "Hello");
    expect_real(json_array_get(top, 1), "logprob", -9999.0); /* -inf */
    expect_bytes(json_array_get(top, 1), "bytes", "Hello", 5);
    assert_null(json_object_get(json_array_get(top, 1), "top_logprobs"));
    json_t *t1 = json_array_get(content, 1);
    expect_str(t1, "token", FFFD);           /* partial UTF-8 -> U+FFFD ... */
    expect_bytes(t1, "bytes", "\xe2\x82", 2); /* ... the raw bytes are kept */
    assert_int_equal(json_array_size(get(t1, "top_logprobs")), 1);

    json_t *c1 = json_array_get(choices, 1);
    expect_int(c1, "index", 1);
    expect_str(c1, "finish_reason", "stop");
    expect_null(c1, "logprobs");
    expect_str(get(c1, "message"), "content", "ok");
    json_decref(root);

    /* no fingerprint -> omitted; cached tokens -> details; no usage -> omitted */
    u.cached_tokens = 8;
    root = load(srv_json_chat_completion(&META, ch + 1, 1, &u));
    assert_null(json_object_get(root, "system_fingerprint"));
    expect_int(get(get(root, "usage"), "prompt_tokens_details"), "cached_tokens", 8);
    json_decref(root);
    root = load(srv_json_chat_completion(&META, ch + 1, 1, NULL));
    assert_null(json_object_get(root, "usage"));
    json_decref(root);
}

static void test_chat_chunks(void **state) {
    (void)state;
    /* first chunk: role (and empty content) */
    srv_chat_delta d = {.index = 0, .role = true, .content = "", .content_len = 0};
    json_t *root = load(srv_json_chat_chunk(&META, &d, 1, false, NULL));
    expect_head(root, "chatcmpl-abc", "chat.completion.chunk");
    assert_null(json_object_get(root, "usage"));
    json_t *c = json_array_get(get(root, "choices"), 0);
    expect_int(c, "index", 0);
    json_t *delta = get(c, "delta");
    assert_int_equal(json_object_size(delta), 2);
    expect_str(delta, "role", "assistant");
    expect_str(delta, "content", "");
    expect_null(c, "logprobs");
    expect_null(c, "finish_reason");
    json_decref(root);

    /* content chunk with logprobs, include_usage -> "usage": null */
    sched_token_lp lp = make_lp(" w\xc3\xb6rld", -0.5f, 0);
    d = (srv_chat_delta){.index = 3, .content = " w\xc3\xb6rld", .content_len = 7, .with_logprobs = true,
                         .lp = &lp, .n_lp = 1};
    root = load(srv_json_chat_chunk(&META, &d, 1, true, NULL));
    expect_null(root, "usage");
    c = json_array_get(get(root, "choices"), 0);
    expect_int(c, "index", 3);
    delta = get(c, "delta");
    assert_int_equal(json_object_size(delta), 1);
    expect_str(delta, "content", " w\xc3\xb6rld");
    json_t *t = json_array_get(get(get(c, "logprobs"), "content"), 0);
    expect_str(t, "token", " w\xc3\xb6rld");
    expect_bytes(t, "bytes", " w\xc3\xb6rld", 7);
    assert_int_equal(json_array_size(get(t, "top_logprobs")), 0);
    json_decref(root);

    /* final chunk: empty delta, finish_reason */
    d = (srv_chat_delta){.index = 0, .finish = SCHED_FINISH_STOP};
    root = load(srv_json_chat_chunk(&META, &d, 1, false, NULL));
    c = json_array_get(get(root, "choices"), 0);
    assert_int_equal(json_object_size(get(c, "delta")), 0);
    expect_str(c, "finish_reason", "stop");
    json_decref(root);

    /* usage chunk: choices [] and the usage object */
    srv_usage u = {5, 7, 0};
    root = load(srv_json_chat_chunk(&META, NULL, 0, true, &u));
    assert_int_equal(json_array_size(get(root, "choices")), 0);
    assert_true(json_is_array(get(root, "choices")));
    expect_usage(get(root, "usage"), 5, 7);
    expect_int(get(get(root, "usage"), "prompt_tokens_details"), "cached_tokens", 0);
    json_decref(root);
}

/* ---------------------------------------------------------------- completions */

static void test_completion(void **state) {
    (void)state;
    /* "é" is 2 bytes / 1 character; the broken byte is 1 character (U+FFFD) */
    sched_token_lp lp[3] = {make_lp("\xc3\xa9t", -0.1f, 3), make_lp("\xff", -2.0f, 1), make_lp(" e", NAN, 0)};
    lp[0].top[0] = (sched_top_lp){"\xc3\xa9t", 3, -0.1f};
    lp[0].top[1] = (sched_top_lp){"\xff", 1, -3.0f};
    lp[0].top[2] = (sched_top_lp){"\xfe", 1, -4.0f}; /* also U+FFFD: collapses, first kept */
    lp[1].top[0] = (sched_top_lp){"\xff", 1, -2.0f};
    srv_completion_choice ch = {.index = 2, .text = "\xc3\xa9t\xff e", .text_len = 6,
                                .finish = SCHED_FINISH_LENGTH, .with_logprobs = true, .lp = lp, .n_lp = 3,
                                .text_offset0 = 10};
    srv_usage u = {4, 3, -1};
    srv_resp_meta m = META;
    m.id = "cmpl-xyz";
    json_t *root = load(srv_json_completion(&m, &ch, 1, &u));
    expect_head(root, "cmpl-xyz", "text_completion");
    expect_usage(get(root, "usage"), 4, 3);
    json_t *c = json_array_get(get(root, "choices"), 0);
    expect_int(c, "index", 2);
    expect_str(c, "text", "\xc3\xa9t" FFFD " e");
    expect_str(c, "finish_reason", "length");
    json_t *l = get(c, "logprobs");
    json_t *tokens = get(l, "tokens"), *tlp = get(l, "token_logprobs"), *tops = get(l, "top_logprobs"),
           *offs = get(l, "text_offset");
    assert_int_equal(json_array_size(tokens), 3);
    assert_int_equal(json_array_size(tlp), 3);
    assert_int_equal(json_array_size(tops), 3);
    assert_int_equal(json_array_size(offs), 3);
    assert_string_equal(json_string_value(json_array_get(tokens, 0)), "\xc3\xa9t");
    assert_string_equal(json_string_value(json_array_get(tokens, 1)), FFFD);
    assert_string_equal(json_string_value(json_array_get(tokens, 2)), " e");
    assert_true(fabs(json_real_value(json_array_get(tlp, 0)) + 0.1) < 1e-6);
    assert_true(json_real_value(json_array_get(tlp, 2)) == -9999.0); /* NaN */
    assert_int_equal(json_integer_value(json_array_get(offs, 0)), 10);
    assert_int_equal(json_integer_value(json_array_get(offs, 1)), 12); /* "ét" = 2 characters */
    assert_int_equal(json_integer_value(json_array_get(offs, 2)), 13);
    json_t *d0 = json_array_get(tops, 0);
    assert_true(json_is_object(d0));
    assert_int_equal(json_object_size(d0), 2);
    expect_real(d0, "\xc3\xa9t", -0.1);
    expect_real(d0, FFFD, -3.0);
    assert_int_equal(json_object_size(json_array_get(tops, 1)), 1);
    assert_int_equal(json_object_size(json_array_get(tops, 2)), 0);
    json_decref(root);

    /* stream chunk: same shape, finish null, usage null/absent */
    srv_completion_choice sc = {.index = 0, .text = "abc", .text_len = 3};
    root = load(srv_json_completion_chunk(&m, &sc, 1, true, NULL));
    expect_head(root, "cmpl-xyz", "text_completion");
    expect_null(root, "usage");
    c = json_array_get(get(root, "choices"), 0);
    expect_str(c, "text", "abc");
    expect_null(c, "logprobs");
    expect_null(c, "finish_reason");
    json_decref(root);
    root = load(srv_json_completion_chunk(&m, &sc, 1, false, NULL));
    assert_null(json_object_get(root, "usage"));
    json_decref(root);
    root = load(srv_json_completion_chunk(&m, NULL, 0, true, &u));
    assert_int_equal(json_array_size(get(root, "choices")), 0);
    expect_usage(get(root, "usage"), 4, 3);
    json_decref(root);
}

/* ---------------------------------------------------------------- UTF-8 */

static void test_utf8_replacement(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *out;
        int64_t chars;
    } cases[] = {
        {"plain", 5, "plain", 5},
        {"\xf0\x9f\x98\x80!", 5, "\xf0\x9f\x98\x80!", 2},   /* 4-byte sequence */
        {"\xff", 1, FFFD, 1},
        {"a\xe2\x82", 3, "a" FFFD, 2},                      /* truncated: one U+FFFD */
        {"a\xe2\x82z", 4, "a" FFFD "z", 3},
        {"\xed\xa0\x80", 3, FFFD FFFD FFFD, 3},             /* surrogate */
        {"\xc0\xaf", 2, FFFD FFFD, 2},                      /* overlong */
        {"\xe0\x80\xaf", 3, FFFD FFFD FFFD, 3},             /* overlong 3-byte */
        {"\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD, 4},    /* > U+10FFFF */
        {"\xf0\x9f\x98", 3, FFFD, 1},                       /* truncated 4-byte */
        {"\x80\x80", 2, FFFD FFFD, 2},                      /* lone continuations */
        {"\xf8\x88\x80\x80\x80", 5, FFFD FFFD FFFD FFFD FFFD, 5},
        {"\xef\xbf\xbf", 3, "\xef\xbf\xbf", 1},             /* U+FFFF is valid */
        {"\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf", 1},     /* U+10FFFF */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *root = load(srv_json_detokenize(cases[i].in, cases[i].n));
        expect_str(root, "content", cases[i].out);
        json_decref(root);
        assert_int_equal(srv_utf8_chars(cases[i].in, cases[i].n), cases[i].chars);
    }
    /* NUL bytes survive as \u0000 */
    char *s = srv_json_detokenize("a\0b", 3);
    assert_non_null(strstr(s, "a\\u0000b"));
    json_t *root = load(s);
    assert_int_equal(json_string_length(get(root, "content")), 3);
    json_decref(root);
    /* NULL, 0 is the empty string */
    root = load(srv_json_apply_template(NULL, 0));
    expect_str(root, "prompt", "");
    json_decref(root);
}

/* ---------------------------------------------------------------- other endpoints */

static void test_models(void **state) {
    (void)state;
    const char *ids[] = {"smol-135m", "qwen"};
    json_t *root = load(srv_json_models(ids, 2, 1234));
    expect_str(root, "object", "list");
    json_t *data = get(root, "data");
    assert_int_equal(json_array_size(data), 2);
    for (int i = 0; i < 2; i++) {
        json_t *m = json_array_get(data, (size_t)i);
        assert_int_equal(json_object_size(m), 4);
        expect_str(m, "id", ids[i]);
        expect_str(m, "object", "model");
        expect_int(m, "created", 1234);
        expect_str(m, "owned_by", "ryot");
    }
    json_decref(root);
    root = load(srv_json_models(NULL, 0, 0));
    assert_int_equal(json_array_size(get(root, "data")), 0);
    json_decref(root);
}

static void test_tokenize_json(void **state) {
    (void)state;
    int32_t toks[3] = {1, 15043, 0};
    json_t *root = load(srv_json_tokenize(toks, 3, NULL));
    json_t *a = get(root, "tokens");
    assert_int_equal(json_array_size(a), 3);
    for (int i = 0; i < 3; i++) assert_int_equal(json_integer_value(json_array_get(a, (size_t)i)), toks[i]);
    json_decref(root);

    srv_piece pieces[3] = {{"<s>", 3}, {" Hello", 6}, {"\xe2", 1}};
    root = load(srv_json_tokenize(toks, 3, pieces));
    a = get(root, "tokens");
    assert_int_equal(json_array_size(a), 3);
    expect_int(json_array_get(a, 0), "id", 1);
    expect_str(json_array_get(a, 0), "piece", "<s>");
    expect_int(json_array_get(a, 1), "id", 15043);
    expect_str(json_array_get(a, 1), "piece", " Hello");
    expect_int(json_array_get(a, 2), "id", 0);
    expect_bytes(json_array_get(a, 2), "piece", "\xe2", 1); /* invalid UTF-8 -> bytes */
    json_decref(root);

    root = load(srv_json_tokenize(NULL, 0, NULL));
    assert_int_equal(json_array_size(get(root, "tokens")), 0);
    json_decref(root);
}

static void test_detokenize_apply_template(void **state) {
    (void)state;
    json_t *root = load(srv_json_detokenize("Hello \"world\"\n", 14));
    assert_int_equal(json_object_size(root), 1);
    expect_str(root, "content", "Hello \"world\"\n");
    json_decref(root);
    root = load(srv_json_apply_template("<|user|>hi</s>", 14));
    assert_int_equal(json_object_size(root), 1);
    expect_str(root, "prompt", "<|user|>hi</s>");
    json_decref(root);
}

/* ---------------------------------------------------------------- ids, names */

static void test_make_id(void **state) {
    (void)state;
    char a[SRV_ID_MAX], b[SRV_ID_MAX];
    srv_make_id(a, sizeof a, "chatcmpl-");
    srv_make_id(b, sizeof b, "chatcmpl-");
    assert_int_equal(strlen(a), 9 + 24);
    assert_memory_equal(a, "chatcmpl-", 9);
    for (size_t i = 9; i < strlen(a); i++) assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_string_not_equal(a, b);
    char small[8];
    srv_make_id(small, sizeof small, "cmpl-");
    assert_int_equal(strlen(small), 7);
    assert_memory_equal(small, "cmpl-", 5);
    srv_make_id(a, sizeof a, NULL);
    assert_int_equal(strlen(a), 24);
}

static void test_finish_names(void **state) {
    (void)state;
    assert_string_equal(srv_finish_name(SCHED_FINISH_STOP), "stop");
    assert_string_equal(srv_finish_name(SCHED_FINISH_LENGTH), "length");
    assert_null(srv_finish_name(SCHED_FINISH_NONE));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_chat_completion),
        cmocka_unit_test(test_chat_chunks),
        cmocka_unit_test(test_completion),
        cmocka_unit_test(test_utf8_replacement),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_tokenize_json),
        cmocka_unit_test(test_detokenize_apply_template),
        cmocka_unit_test(test_make_id),
        cmocka_unit_test(test_finish_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
