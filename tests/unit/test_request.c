/* Request parsing: defaults, every validation rule (status 400 + the field
 * named in param), both endpoints, and the helper endpoints' bodies. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/request.h"

#define CHAT SRV_EP_CHAT
#define CMPL SRV_EP_COMPLETIONS
#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void parse_ok(srv_endpoint ep, const char *body, srv_request *r) {
    srv_error err = {0};
    int rc = srv_request_parse(body, strlen(body), ep, r, &err);
    if (rc) fprintf(stderr, "unexpected error for %s: %s (param %s)\n", body, err.message, err.param);
    assert_int_equal(rc, 0);
}

/* ---------------------------------------------------------------- rejections */

typedef struct bad_case {
    srv_endpoint ep;
    const char *body;
    const char *param; /* expected param ("" for the body itself) */
} bad_case;

static const bad_case bad_cases[] = {
    /* the body */
    {CHAT, "", ""},
    {CHAT, "{", ""},
    {CHAT, "not json", ""},
    {CHAT, "[1,2]", ""},
    {CHAT, "42", ""},
    {CHAT, "{\"messages\":[]} trailing", ""},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", ""},
    {CHAT, "{\"max_tokens\":99999999999999999999999," MSGS "}", ""}, /* integer overflow in the parser */
    /* messages */
    {CHAT, "{}", "messages"},
    {CHAT, "{\"messages\":null}", "messages"},
    {CHAT, "{\"messages\":[]}", "messages"},
    {CHAT, "{\"messages\":\"hi\"}", "messages"},
    {CHAT, "{\"messages\":{\"role\":\"user\"}}", "messages"},
    {CHAT, "{\"messages\":[\"hi\"]}", "messages[0]"},
    {CHAT, "{\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role"},
    {CHAT, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", "messages[0].role"},
    {CHAT, "{\"messages\":[{\"role\":7,\"content\":\"hi\"}]}", "messages[0].role"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\"}]}", "messages[1].content"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":null}]}", "messages[0].content"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content"},
    {CHAT, "{\"messages\":[{\"role\":\"system\",\"content\":{\"text\":\"x\"}}]}", "messages[0].content"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}",
     "messages[0].content[0]"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\"}]}]}",
     "messages[0].content[1]"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[\"plain\"]}]}", "messages[0].content[0]"},
    /* types */
    {CHAT, "{\"temperature\":\"hot\"," MSGS "}", "temperature"},
    {CHAT, "{\"max_tokens\":1.5," MSGS "}", "max_tokens"},
    {CHAT, "{\"max_tokens\":\"10\"," MSGS "}", "max_tokens"},
    {CHAT, "{\"stream\":\"yes\"," MSGS "}", "stream"},
    {CHAT, "{\"stream\":1," MSGS "}", "stream"},
    {CHAT, "{\"model\":5," MSGS "}", "model"},
    {CHAT, "{\"user\":[]," MSGS "}", "user"},
    {CHAT, "{\"n\":true," MSGS "}", "n"},
    {CHAT, "{\"seed\":\"1\"," MSGS "}", "seed"},
    {CHAT, "{\"seed\":1e30," MSGS "}", "seed"},
    {CHAT, "{\"seed\":0.5," MSGS "}", "seed"},
    {CHAT, "{\"logprobs\":1," MSGS "}", "logprobs"},
    {CHAT, "{\"ignore_eos\":\"true\"," MSGS "}", "ignore_eos"},
    /* ranges */
    {CHAT, "{\"temperature\":-0.1," MSGS "}", "temperature"},
    {CHAT, "{\"temperature\":2.01," MSGS "}", "temperature"},
    {CHAT, "{\"temperature\":1e308," MSGS "}", "temperature"},
    {CHAT, "{\"top_p\":1.5," MSGS "}", "top_p"},
    {CHAT, "{\"top_p\":-1," MSGS "}", "top_p"},
    {CHAT, "{\"min_p\":2," MSGS "}", "min_p"},
    {CHAT, "{\"top_k\":-2," MSGS "}", "top_k"},
    {CHAT, "{\"top_k\":1e12," MSGS "}", "top_k"},
    {CHAT, "{\"max_tokens\":0," MSGS "}", "max_tokens"},
    {CHAT, "{\"max_tokens\":-5," MSGS "}", "max_tokens"},
    {CHAT, "{\"max_tokens\":1e30," MSGS "}", "max_tokens"},
    {CHAT, "{\"max_tokens\":-1e300," MSGS "}", "max_tokens"},
    {CHAT, "{\"max_tokens\":2147483648," MSGS "}", "max_tokens"},
    {CHAT, "{\"max_completion_tokens\":0," MSGS "}", "max_completion_tokens"},
    {CHAT, "{\"n\":0," MSGS "}", "n"},
    {CHAT, "{\"n\":17," MSGS "}", "n"},
    {CHAT, "{\"presence_penalty\":2.5," MSGS "}", "presence_penalty"},
    {CHAT, "{\"frequency_penalty\":-3," MSGS "}", "frequency_penalty"},
    {CHAT, "{\"repetition_penalty\":0," MSGS "}", "repetition_penalty"},
    {CHAT, "{\"repeat_penalty\":-1," MSGS "}", "repeat_penalty"},
    {CHAT, "{\"repeat_last_n\":-2," MSGS "}", "repeat_last_n"},
    {CHAT, "{\"logprobs\":true,\"top_logprobs\":21," MSGS "}", "top_logprobs"},
    {CHAT, "{\"logprobs\":true,\"top_logprobs\":-1," MSGS "}", "top_logprobs"},
    {CHAT, "{\"top_logprobs\":2," MSGS "}", "top_logprobs"},
    {CHAT, "{\"logprobs\":false,\"top_logprobs\":2," MSGS "}", "top_logprobs"},
    {CMPL, "{\"prompt\":\"x\",\"logprobs\":6}", "logprobs"},
    {CMPL, "{\"prompt\":\"x\",\"logprobs\":-1}", "logprobs"},
    {CMPL, "{\"prompt\":\"x\",\"logprobs\":true}", "logprobs"},
    /* logit_bias */
    {CHAT, "{\"logit_bias\":[1,2]," MSGS "}", "logit_bias"},
    {CHAT, "{\"logit_bias\":{\"abc\":1}," MSGS "}", "logit_bias[abc]"},
    {CHAT, "{\"logit_bias\":{\"-5\":1}," MSGS "}", "logit_bias[-5]"},
    {CHAT, "{\"logit_bias\":{\"\":1}," MSGS "}", "logit_bias[]"},
    {CHAT, "{\"logit_bias\":{\"1.5\":1}," MSGS "}", "logit_bias[1.5]"},
    {CHAT, "{\"logit_bias\":{\"99999999999\":1}," MSGS "}", "logit_bias[99999999999]"},
    {CHAT, "{\"logit_bias\":{\"7\":100.5}," MSGS "}", "logit_bias[7]"},
    {CHAT, "{\"logit_bias\":{\"7\":-101}," MSGS "}", "logit_bias[7]"},
    {CHAT, "{\"logit_bias\":{\"7\":\"5\"}," MSGS "}", "logit_bias[7]"},
    /* stop */
    {CHAT, "{\"stop\":\"\"," MSGS "}", "stop"},
    {CHAT, "{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]," MSGS "}", "stop"},
    {CHAT, "{\"stop\":[\"a\",\"\"]," MSGS "}", "stop[1]"},
    {CHAT, "{\"stop\":[\"a\",3]," MSGS "}", "stop[1]"},
    {CHAT, "{\"stop\":5," MSGS "}", "stop"},
    /* stream_options */
    {CHAT, "{\"stream_options\":{\"include_usage\":true}," MSGS "}", "stream_options"},
    {CHAT, "{\"stream\":false,\"stream_options\":{\"include_usage\":true}," MSGS "}", "stream_options"},
    {CHAT, "{\"stream\":true,\"stream_options\":true," MSGS "}", "stream_options"},
    {CHAT, "{\"stream\":true,\"stream_options\":{\"include_usage\":\"y\"}," MSGS "}",
     "stream_options.include_usage"},
    /* priority, timeout */
    {CHAT, "{\"priority\":\"urgent\"," MSGS "}", "priority"},
    {CHAT, "{\"priority\":5," MSGS "}", "priority"},
    {CHAT, "{\"priority\":-1," MSGS "}", "priority"},
    {CHAT, "{\"priority\":1.5," MSGS "}", "priority"},
    {CHAT, "{\"priority\":[0]," MSGS "}", "priority"},
    {CHAT, "{\"timeout\":0," MSGS "}", "timeout"},
    {CHAT, "{\"timeout\":-3," MSGS "}", "timeout"},
    {CHAT, "{\"timeout\":\"10\"," MSGS "}", "timeout"},
    {CHAT, "{\"timeout\":1e30," MSGS "}", "timeout"},
    /* unsupported features that would otherwise be ignored silently */
    {CHAT, "{\"tools\":{}," MSGS "}", "tools"},
    {CHAT, "{\"tools\":[{\"type\":\"function\",\"function\":{}}]," MSGS "}", "tools[0].function.name"},
    {CHAT, "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},"
           "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]," MSGS "}", "tools[1].function.name"},
    {CHAT, "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":1}}]," MSGS "}",
     "tools[0].function.parameters"},
    {CHAT, "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
           "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}," MSGS "}", "tool_choice"},
    {CHAT, "{\"tool_choice\":\"required\"," MSGS "}", "tool_choice"},
    {CHAT, "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"parallel_tool_calls\":1," MSGS "}",
     "parallel_tool_calls"},
    {CHAT, "{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":7,\"content\":\"x\"}]}", "messages[0].tool_call_id"},
    {CHAT, "{\"response_format\":\"text\"," MSGS "}", "response_format"},
    /* structured output */
    {CHAT, "{\"response_format\":{\"type\":\"xml\"}," MSGS "}", "response_format"},
    {CHAT, "{\"response_format\":{\"type\":\"json_schema\"}," MSGS "}", "response_format"},
    {CHAT, "{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":3}}," MSGS "}", "response_format"},
    {CHAT, "{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"strict\":\"y\"}}," MSGS "}",
     "response_format"},
    {CHAT, "{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"type\":\"strin\"}}}," MSGS "}",
     "response_format"},
    {CMPL, "{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"not\":{}}}}}",
     "response_format"},
    {CHAT, "{\"grammar\":\"root ::= \\\"a\"," MSGS "}", "grammar"},
    {CHAT, "{\"grammar\":5," MSGS "}", "grammar"},
    {CMPL, "{\"prompt\":\"x\",\"grammar\":\"root ::= root\"}", "grammar"},
    {CHAT, "{\"grammar\":\"root ::= \\\"a\\\"\",\"response_format\":{\"type\":\"json_object\"}," MSGS "}", "grammar"},
    {CMPL, "{\"prompt\":\"x\",\"suffix\":\"tail\"}", "suffix"},
    {CMPL, "{\"prompt\":\"x\",\"best_of\":3}", "best_of"},
    /* prompt */
    {CMPL, "{}", "prompt"},
    {CMPL, "{\"prompt\":null}", "prompt"},
    {CMPL, "{\"prompt\":[]}", "prompt"},
    {CMPL, "{\"prompt\":5}", "prompt"},
    {CMPL, "{\"prompt\":{\"a\":1}}", "prompt"},
    {CMPL, "{\"prompt\":[\"a\",7]}", "prompt[1]"},
    /* token-id prompts: ids in [0, INT32_MAX], lists not empty, no mixing inside one list */
    {CMPL, "{\"prompt\":[1,\"a\"]}", "prompt[1]"},
    {CMPL, "{\"prompt\":[1,-2]}", "prompt[1]"},
    {CMPL, "{\"prompt\":[1.5]}", "prompt[0]"},
    {CMPL, "{\"prompt\":[2147483648]}", "prompt[0]"},
    {CMPL, "{\"prompt\":[[]]}", "prompt[0]"},
    {CMPL, "{\"prompt\":[[1,2],[3,-1]]}", "prompt[1][1]"},
    {CMPL, "{\"prompt\":[[1,2],[3,\"x\"]]}", "prompt[1][1]"},
    {CMPL, "{\"prompt\":[[1],7]}", "prompt[1]"},
    {CMPL, "{\"prompt\":[\"a\",[[1]]]}", "prompt[1][0]"},
    {CMPL, "{\"prompt\":\"x\",\"echo\":1}", "echo"},
    {CMPL, "{\"prompt\":\"x\",\"max_tokens\":-1}", "max_tokens"},
    /* chat has no token-id form: content must be text */
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[1,2]}]}", "messages[0].content[0]"},
    {CMPL, "{\"prompt\":\"x\",\"temperature\":3}", "temperature"},
    /* the completions endpoint does not need messages, the chat one not prompt */
    {CHAT, "{\"prompt\":\"x\"}", "messages"},
};

static void test_rejections(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        srv_request r;
        srv_error err;
        memset(&err, 0, sizeof err);
        memset(&r, 0x5a, sizeof r);
        int rc = srv_request_parse(c->body, strlen(c->body), c->ep, &r, &err);
        if (rc != -1 || err.status != 400 || strcmp(err.param, c->param))
            fprintf(stderr, "case %zu %s: rc %d status %d param '%s' (want '%s'): %s\n", i, c->body, rc,
                    err.status, err.param, c->param, err.message);
        assert_int_equal(rc, -1);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.param, c->param);
        assert_string_equal(err.type, "invalid_request_error");
        assert_null(err.code);
        assert_true(strlen(err.message) > 0);
        /* out is zeroed on failure: freeing it is a no-op */
        assert_null(r.messages);
        assert_null(r.prompts);
        assert_null(r.prompt_ids);
        assert_null(r.stop);
        assert_null(r.model);
        srv_request_free(&r);
    }
}

/* ---------------------------------------------------------------- defaults */

static void test_defaults_chat(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CHAT, "{" MSGS "}", &r);
    assert_int_equal(r.ep, CHAT);
    assert_null(r.model);
    assert_int_equal(r.n_messages, 1);
    assert_string_equal(r.messages[0].role, "user");
    assert_string_equal(r.messages[0].content, "hi");
    assert_null(r.prompts);
    assert_int_equal(r.max_tokens, -1);
    assert_true(r.sp.temperature == 1.0f);
    assert_true(r.sp.top_p == 1.0f);
    assert_int_equal(r.sp.top_k, 0);
    assert_true(r.sp.min_p == 0.0f);
    assert_true(r.sp.repeat_penalty == 1.0f);
    assert_true(r.sp.presence_penalty == 0.0f);
    assert_true(r.sp.frequency_penalty == 0.0f);
    assert_int_equal(r.sp.penalty_last_n, -1);
    assert_false(r.has_seed);
    assert_true(r.sp.seed == RYOT_SEED_RANDOM);
    assert_null(r.sp.logit_bias);
    assert_int_equal(r.sp.n_logit_bias, 0);
    assert_false(r.sp.logprobs);
    assert_int_equal(r.sp.top_logprobs, 0);
    assert_int_equal(r.n_stop, 0);
    assert_int_equal(r.n, 1);
    assert_false(r.stream);
    assert_false(r.include_usage);
    assert_null(r.user);
    assert_int_equal(r.priority, 2);
    assert_true(r.timeout_s == 0.0);
    assert_false(r.ignore_eos);
    srv_request_free(&r);
    srv_request_free(&r); /* idempotent */
}

static void test_defaults_completions(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CMPL, "{\"prompt\":\"Once upon\"}", &r);
    assert_int_equal(r.ep, CMPL);
    assert_int_equal(r.n_prompts, 1);
    assert_string_equal(r.prompts[0], "Once upon");
    assert_null(r.messages);
    assert_int_equal(r.max_tokens, -1);
    assert_false(r.sp.logprobs);
    assert_true(r.sp.temperature == 1.0f);
    srv_request_free(&r);

    /* empty string prompt is accepted; the caller decides */
    parse_ok(CMPL, "{\"prompt\":\"\"}", &r);
    assert_int_equal(r.n_prompts, 1);
    assert_string_equal(r.prompts[0], "");
    srv_request_free(&r);
}

/* ---------------------------------------------------------------- accepted values */

static void test_all_fields_chat(void **state) {
    (void)state;
    const char *body =
        "{\"model\":\"smol\",\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":\"q\",\"name\":\"bob\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
        "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"t1\"}],"
        "\"max_tokens\":10,\"temperature\":0,\"top_p\":0.5,\"top_k\":40,\"min_p\":0.05,"
        "\"presence_penalty\":-2,\"frequency_penalty\":2,\"repetition_penalty\":1.1,\"repeat_last_n\":64,"
        "\"seed\":-1234567890123,\"logprobs\":true,\"top_logprobs\":20,\"n\":16,\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"user\":\"u-1\",\"priority\":\"critical\","
        "\"timeout\":2.5,\"ignore_eos\":true,\"stop\":[\"\\n\\n\",\"END\"],"
        "\"tools\":[],\"tool_choice\":\"none\",\"response_format\":{\"type\":\"text\"},"
        "\"some_future_field\":{\"deep\":[1,2,{\"x\":null}]},\"metadata\":null}";
    srv_request r;
    parse_ok(CHAT, body, &r);
    assert_string_equal(r.model, "smol");
    assert_int_equal(r.n_messages, 4);
    assert_string_equal(r.messages[0].role, "system"); /* developer -> system */
    assert_string_equal(r.messages[0].content, "be brief");
    assert_string_equal(r.messages[1].role, "user");
    assert_string_equal(r.messages[2].role, "assistant");
    assert_null(r.messages[2].content);
    assert_string_equal(r.messages[3].role, "tool");
    assert_string_equal(r.messages[3].content, "42");
    assert_int_equal(r.max_tokens, 10);
    assert_true(r.sp.temperature == 0.0f);
    assert_true(r.sp.top_p == 0.5f);
    assert_int_equal(r.sp.top_k, 40);
    assert_true(r.sp.min_p == 0.05f);
    assert_true(r.sp.presence_penalty == -2.0f);
    assert_true(r.sp.frequency_penalty == 2.0f);
    assert_true(r.sp.repeat_penalty == 1.1f);
    assert_int_equal(r.sp.penalty_last_n, 64);
    assert_true(r.has_seed);
    assert_true(r.sp.seed == (uint64_t)(int64_t)-1234567890123);
    assert_true(r.sp.logprobs);
    assert_int_equal(r.sp.top_logprobs, 20);
    assert_int_equal(r.n, 16);
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_string_equal(r.user, "u-1");
    assert_int_equal(r.priority, 0);
    assert_true(r.timeout_s == 2.5);
    assert_true(r.ignore_eos);
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop[0], "\n\n");
    assert_string_equal(r.stop[1], "END");
    srv_request_free(&r);
}

static void test_max_tokens_alias(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CHAT, "{\"max_completion_tokens\":7," MSGS "}", &r);
    assert_int_equal(r.max_tokens, 7);
    srv_request_free(&r);
    /* both: max_completion_tokens wins, whatever the order */
    parse_ok(CHAT, "{\"max_completion_tokens\":7,\"max_tokens\":9," MSGS "}", &r);
    assert_int_equal(r.max_tokens, 7);
    srv_request_free(&r);
    parse_ok(CHAT, "{\"max_tokens\":9,\"max_completion_tokens\":7," MSGS "}", &r);
    assert_int_equal(r.max_tokens, 7);
    srv_request_free(&r);
    /* an integral real is an integer; null is absent */
    parse_ok(CHAT, "{\"max_tokens\":12.0,\"max_completion_tokens\":null," MSGS "}", &r);
    assert_int_equal(r.max_tokens, 12);
    srv_request_free(&r);
    /* max_completion_tokens is a chat field: completions ignores it */
    parse_ok(CMPL, "{\"prompt\":\"p\",\"max_completion_tokens\":0,\"max_tokens\":3}", &r);
    assert_int_equal(r.max_tokens, 3);
    srv_request_free(&r);
}

static void test_nulls_are_absent(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CHAT,
             "{\"model\":null,\"temperature\":null,\"top_p\":null,\"n\":null,\"stream\":null,\"stop\":null,"
             "\"logit_bias\":null,\"seed\":null,\"user\":null,\"priority\":null,\"timeout\":null,"
             "\"stream_options\":null,\"logprobs\":null,\"top_logprobs\":null,\"tools\":null," MSGS "}",
             &r);
    assert_null(r.model);
    assert_true(r.sp.temperature == 1.0f);
    assert_int_equal(r.n, 1);
    assert_false(r.has_seed);
    assert_int_equal(r.priority, 2);
    srv_request_free(&r);
}

static void test_duplicate_keys(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CHAT, "{\"n\":2,\"n\":3,\"temperature\":5,\"temperature\":0.5," MSGS "}", &r);
    assert_int_equal(r.n, 3); /* the last one wins */
    assert_true(r.sp.temperature == 0.5f);
    srv_request_free(&r);
}

static void test_content_parts(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CHAT,
             "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello, \"},"
             "{\"type\":\"text\",\"text\":\"w\\u00f6rld\"}]},"
             "{\"role\":\"system\",\"content\":[]}]}",
             &r);
    assert_int_equal(r.n_messages, 2);
    assert_string_equal(r.messages[0].content, "Hello, w\xc3\xb6rld");
    assert_string_equal(r.messages[1].content, "");
    srv_request_free(&r);
}

static void test_stop_forms(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CHAT, "{\"stop\":\"###\"," MSGS "}", &r);
    assert_int_equal(r.n_stop, 1);
    assert_string_equal(r.stop[0], "###");
    srv_request_free(&r);
    parse_ok(CHAT, "{\"stop\":[\"a\",\"b\",\"c\",\"d\"]," MSGS "}", &r);
    assert_int_equal(r.n_stop, 4);
    assert_string_equal(r.stop[3], "d");
    srv_request_free(&r);
    parse_ok(CHAT, "{\"stop\":[]," MSGS "}", &r);
    assert_int_equal(r.n_stop, 0);
    srv_request_free(&r);
}

static void test_logit_bias(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CHAT, "{\"logit_bias\":{\"15\":-100,\"2147483647\":100,\"0\":0.5,\"007\":-3}," MSGS "}", &r);
    assert_int_equal(r.n_logit_bias, 4);
    assert_ptr_equal(r.sp.logit_bias, r.logit_bias);
    assert_int_equal(r.sp.n_logit_bias, 4);
    bool seen[4] = {0};
    for (int i = 0; i < 4; i++) {
        const ryot_logit_bias *b = &r.logit_bias[i];
        if (b->token == 15) {
            assert_true(isinf(b->bias) && b->bias < 0); /* -100 bans */
            seen[0] = true;
        } else if (b->token == INT32_MAX) {
            assert_true(b->bias == 100.0f);
            seen[1] = true;
        } else if (b->token == 0) {
            assert_true(b->bias == 0.5f);
            seen[2] = true;
        } else if (b->token == 7) {
            assert_true(b->bias == -3.0f);
            seen[3] = true;
        }
    }
    assert_true(seen[0] && seen[1] && seen[2] && seen[3]);
    srv_request_free(&r);
    parse_ok(CHAT, "{\"logit_bias\":{}," MSGS "}", &r);
    assert_int_equal(r.n_logit_bias, 0);
    assert_null(r.sp.logit_bias);
    srv_request_free(&r);
}

static void test_priority(void **state) {
    (void)state;
    static const char *const names[] = {"critical", "high", "normal", "low", "background"};
    char body[256];
    srv_request r;
    for (int t = 0; t < 5; t++) {
        snprintf(body, sizeof body, "{\"priority\":\"%s\"," MSGS "}", names[t]);
        parse_ok(CHAT, body, &r);
        assert_int_equal(r.priority, t);
        srv_request_free(&r);
        snprintf(body, sizeof body, "{\"priority\":%d," MSGS "}", t);
        parse_ok(CHAT, body, &r);
        assert_int_equal(r.priority, t);
        srv_request_free(&r);
        snprintf(body, sizeof body, "{\"priority\":\"%d\",\"prompt\":\"p\"}", t);
        parse_ok(CMPL, body, &r);
        assert_int_equal(r.priority, t);
        srv_request_free(&r);
    }
}

/* Structured output: compiled while parsing; messages carry the compiler's words. */
static void test_structured_output(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CHAT, "{\"response_format\":{\"type\":\"text\"}," MSGS "}", &r);
    assert_null(r.grammar);
    srv_request_free(&r);
    parse_ok(CHAT, "{\"response_format\":{\"type\":\"json_object\"}," MSGS "}", &r);
    assert_non_null(r.grammar);
    srv_request_free(&r);
    parse_ok(CMPL,
             "{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\","
             "\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}}}",
             &r);
    assert_non_null(r.grammar);
    srv_request_free(&r);
    parse_ok(CMPL, "{\"prompt\":\"x\",\"grammar\":\"root ::= \\\"yes\\\" | \\\"no\\\"\"}", &r);
    assert_non_null(r.grammar);
    srv_request_free(&r);
    /* the compiler's message, with the schema path or the line:column */
    srv_error err;
    const char *bad = "{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"type\":\"object\","
                      "\"properties\":{\"age\":{\"type\":\"integer\",\"minimum\":\"x\"}}}}}," MSGS "}";
    assert_int_equal(srv_request_parse(bad, strlen(bad), CHAT, &r, &err), -1);
    assert_non_null(strstr(err.message, "schema.properties.age.minimum: must be a number"));
    bad = "{\"grammar\":\"root ::= \\\"a\\\" )\"," MSGS "}";
    assert_int_equal(srv_request_parse(bad, strlen(bad), CHAT, &r, &err), -1);
    assert_non_null(strstr(err.message, "grammar line 1:14"));
}

static void test_completions_fields(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CMPL,
             "{\"model\":\"m\",\"prompt\":[\"a\",\"b\",\"\"],\"max_tokens\":5,\"logprobs\":3,\"n\":2,"
             "\"best_of\":2,\"echo\":false,\"suffix\":null,\"stop\":\"\\n\",\"seed\":42,\"timeout\":30}",
             &r);
    assert_int_equal(r.n_prompts, 3);
    assert_string_equal(r.prompts[0], "a");
    assert_string_equal(r.prompts[1], "b");
    assert_string_equal(r.prompts[2], "");
    assert_int_equal(r.max_tokens, 5);
    assert_true(r.sp.logprobs);
    assert_int_equal(r.sp.top_logprobs, 3);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.n_stop, 1);
    assert_true(r.has_seed);
    assert_true(r.sp.seed == 42);
    assert_true(r.timeout_s == 30.0);
    srv_request_free(&r);
    /* logprobs 0: chosen token's logprob only */
    parse_ok(CMPL, "{\"prompt\":\"a\",\"logprobs\":0}", &r);
    assert_true(r.sp.logprobs);
    assert_int_equal(r.sp.top_logprobs, 0);
    srv_request_free(&r);
    /* top_k -1 means off, as in vLLM */
    parse_ok(CMPL, "{\"prompt\":\"a\",\"top_k\":-1}", &r);
    assert_int_equal(r.sp.top_k, 0);
    srv_request_free(&r);
}

/* Token-id prompts, echo and max_tokens 0 (what lm-evaluation-harness sends). */
static void test_token_prompts(void **state) {
    (void)state;
    srv_request r;
    parse_ok(CMPL, "{\"prompt\":[1,2.0,3],\"echo\":true,\"logprobs\":1,\"max_tokens\":0}", &r);
    assert_int_equal(r.n_prompts, 1);
    assert_null(r.prompts[0]);
    assert_non_null(r.prompt_ids);
    assert_int_equal(r.n_prompt_ids[0], 3);
    assert_int_equal(r.prompt_ids[0][0], 1);
    assert_int_equal(r.prompt_ids[0][1], 2);
    assert_int_equal(r.prompt_ids[0][2], 3);
    assert_true(r.echo);
    assert_true(r.sp.logprobs);
    assert_int_equal(r.max_tokens, 0);
    srv_request_free(&r);
    /* a list of lists, strings mixed in; ids up to INT32_MAX (the vocab is the caller's check) */
    parse_ok(CMPL, "{\"prompt\":[[7],\"text\",[2147483647,0]]}", &r);
    assert_int_equal(r.n_prompts, 3);
    assert_null(r.prompts[0]);
    assert_int_equal(r.n_prompt_ids[0], 1);
    assert_int_equal(r.prompt_ids[0][0], 7);
    assert_string_equal(r.prompts[1], "text");
    assert_null(r.prompt_ids[1]);
    assert_int_equal(r.n_prompt_ids[2], 2);
    assert_int_equal(r.prompt_ids[2][0], INT32_MAX);
    assert_false(r.echo);
    assert_int_equal(r.max_tokens, -1);
    srv_request_free(&r);
    /* text prompts leave prompt_ids NULL */
    parse_ok(CMPL, "{\"prompt\":[\"a\",\"b\"],\"echo\":false}", &r);
    assert_null(r.prompt_ids);
    srv_request_free(&r);
    /* one flat list is one prompt, however long; a list of lists is capped */
    char body[64 + 8 * (SRV_MAX_PROMPTS + 1)];
    size_t at = (size_t)snprintf(body, sizeof body, "{\"prompt\":[");
    for (int i = 0; i <= SRV_MAX_PROMPTS; i++) at += (size_t)snprintf(body + at, sizeof body - at, "%s%d", i ? "," : "", i);
    snprintf(body + at, sizeof body - at, "]}");
    parse_ok(CMPL, body, &r);
    assert_int_equal(r.n_prompts, 1);
    assert_int_equal(r.n_prompt_ids[0], SRV_MAX_PROMPTS + 1);
    srv_request_free(&r);
    at = (size_t)snprintf(body, sizeof body, "{\"prompt\":[");
    for (int i = 0; i <= SRV_MAX_PROMPTS; i++) at += (size_t)snprintf(body + at, sizeof body - at, "%s[%d]", i ? "," : "", i);
    snprintf(body + at, sizeof body - at, "]}");
    srv_error err = {0};
    assert_int_equal(srv_request_parse(body, strlen(body), CMPL, &r, &err), -1);
    assert_string_equal(err.param, "prompt");
    /* max_tokens 0 is for completions only */
    const char *chat0 = "{\"max_tokens\":0," MSGS "}";
    assert_int_equal(srv_request_parse(chat0, strlen(chat0), CHAT, &r, &err), -1);
    assert_string_equal(err.param, "max_tokens");
}

static void test_prompt_array_cap(void **state) {
    (void)state;
    size_t cap = 16 + (SRV_MAX_PROMPTS + 1) * 4;
    char *body = malloc(cap);
    assert_non_null(body);
    for (int n = SRV_MAX_PROMPTS; n <= SRV_MAX_PROMPTS + 1; n++) {
        size_t at = (size_t)snprintf(body, cap, "{\"prompt\":[");
        for (int i = 0; i < n; i++) at += (size_t)snprintf(body + at, cap - at, "%s\"p\"", i ? "," : "");
        snprintf(body + at, cap - at, "]}");
        srv_request r;
        srv_error err = {0};
        int rc = srv_request_parse(body, strlen(body), CMPL, &r, &err);
        if (n == SRV_MAX_PROMPTS) {
            assert_int_equal(rc, 0);
            assert_int_equal(r.n_prompts, n);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(err.param, "prompt");
        }
        srv_request_free(&r);
    }
    free(body);
}

/* Deep nesting and huge arrays in ignored or checked fields must not crash. */
static void test_hostile_shapes(void **state) {
    (void)state;
    enum { DEPTH = 100000 };
    char *body = malloc(2 * DEPTH + 64);
    assert_non_null(body);
    size_t at = (size_t)sprintf(body, "{\"x\":");
    memset(body + at, '[', DEPTH);
    at += DEPTH;
    memset(body + at, ']', DEPTH);
    at += DEPTH;
    at += (size_t)sprintf(body + at, "," MSGS "}");
    srv_request r;
    srv_error err = {0};
    int rc = srv_request_parse(body, at, CHAT, &r, &err);
    assert_int_equal(rc, -1); /* jansson refuses nesting this deep */
    assert_int_equal(err.status, 400);
    free(body);

    /* 200k stop strings, 200k logit_bias entries (the first bad one stops it) */
    enum { N = 200000 };
    size_t cap = (size_t)N * 16 + 64;
    body = malloc(cap);
    assert_non_null(body);
    at = (size_t)sprintf(body, "{" MSGS ",\"stop\":[");
    for (int i = 0; i < N; i++) at += (size_t)sprintf(body + at, "%s\"s\"", i ? "," : "");
    at += (size_t)sprintf(body + at, "]}");
    rc = srv_request_parse(body, at, CHAT, &r, &err);
    assert_int_equal(rc, -1);
    assert_string_equal(err.param, "stop");

    at = (size_t)sprintf(body, "{" MSGS ",\"logit_bias\":{");
    for (int i = 0; i < N; i++) at += (size_t)sprintf(body + at, "%s\"%d\":1", i ? "," : "", i);
    at += (size_t)sprintf(body + at, "}}");
    rc = srv_request_parse(body, at, CHAT, &r, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(r.n_logit_bias, N);
    srv_request_free(&r);

    /* 100k messages */
    at = (size_t)sprintf(body, "{\"messages\":[");
    for (int i = 0; i < N / 2; i++)
        at += (size_t)sprintf(body + at, "%s{\"role\":\"user\",\"content\":\"m\"}", i ? "," : "");
    at += (size_t)sprintf(body + at, "]}");
    assert_true(at < cap);
    rc = srv_request_parse(body, at, CHAT, &r, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(r.n_messages, N / 2);
    srv_request_free(&r);
    free(body);

    /* a body with embedded NUL after the object is not JSON */
    static const char nul_body[] = "{\"prompt\":\"x\"}\0garbage";
    rc = srv_request_parse(nul_body, sizeof nul_body - 1, CMPL, &r, &err);
    assert_int_equal(rc, -1);
    /* NULL body */
    rc = srv_request_parse(NULL, 0, CMPL, &r, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, 400);
}

static void test_body_not_nul_terminated(void **state) {
    (void)state;
    const char *text = "{\"prompt\":\"abc\"}XXXX";
    srv_request r;
    srv_error err = {0};
    assert_int_equal(srv_request_parse(text, 16, CMPL, &r, &err), 0);
    assert_string_equal(r.prompts[0], "abc");
    srv_request_free(&r);
}

/* ---------------------------------------------------------------- error mapping */

static void test_error_set(void **state) {
    (void)state;
    srv_error e;
    srv_error_set(&e, 401, NULL, "bad key %d", 7);
    assert_int_equal(e.status, 401);
    assert_string_equal(e.message, "bad key 7");
    assert_string_equal(e.type, "invalid_request_error");
    assert_string_equal(e.code, "invalid_api_key");
    assert_string_equal(e.param, "");
    srv_error_set(&e, 429, "", "slow down");
    assert_string_equal(e.type, "requests");
    assert_string_equal(e.code, "rate_limit_exceeded");
    srv_error_set(&e, 503, NULL, "loading");
    assert_string_equal(e.type, "server_error");
    assert_string_equal(e.code, "service_unavailable");
    srv_error_set(&e, 500, NULL, "oops");
    assert_string_equal(e.type, "server_error");
    assert_null(e.code);
    srv_error_set(&e, 504, NULL, "late");
    assert_string_equal(e.type, "timeout");
    srv_error_set(&e, 404, "model", "no such model");
    assert_string_equal(e.type, "invalid_request_error");
    assert_string_equal(e.param, "model");
    assert_null(e.code);
    srv_error_set(&e, 413, NULL, "too big");
    assert_string_equal(e.type, "invalid_request_error");
    /* param truncated, message truncated, never overflowing */
    char longp[200];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    srv_error_set(&e, 400, longp, "%s%s", longp, longp);
    assert_int_equal(strlen(e.param), sizeof e.param - 1);
    assert_int_equal(strlen(e.message), 2 * (sizeof longp - 1) < sizeof e.message ? 2 * (sizeof longp - 1)
                                                                                   : sizeof e.message - 1);
    srv_error_set(NULL, 400, NULL, "ignored"); /* NULL is allowed */
}

/* ---------------------------------------------------------------- helper endpoints */

static void test_tokenize_parse(void **state) {
    (void)state;
    srv_tokenize_req t;
    srv_error err = {0};
    const char *b = "{\"content\":\"Hello\"}";
    assert_int_equal(srv_tokenize_parse(b, strlen(b), &t, &err), 0);
    assert_string_equal(t.content, "Hello");
    assert_null(t.messages);
    assert_false(t.add_special);
    assert_true(t.parse_special);
    assert_false(t.with_pieces);
    srv_tokenize_free(&t);

    b = "{\"content\":\"x\",\"add_special\":true,\"with_pieces\":true,\"parse_special\":false}";
    assert_int_equal(srv_tokenize_parse(b, strlen(b), &t, &err), 0);
    assert_true(t.add_special);
    assert_true(t.with_pieces);
    assert_false(t.parse_special);
    srv_tokenize_free(&t);

    b = "{" MSGS ",\"add_generation_prompt\":false}";
    assert_int_equal(srv_tokenize_parse(b, strlen(b), &t, &err), 0);
    assert_null(t.content);
    assert_int_equal(t.n_messages, 1);
    assert_string_equal(t.messages[0].content, "hi");
    assert_false(t.add_generation_prompt);
    srv_tokenize_free(&t);

    static const struct { const char *body, *param; } bad[] = {
        {"{}", "content"},
        {"{\"content\":5}", "content"},
        {"{\"content\":\"a\"," MSGS "}", "messages"},
        {"{\"messages\":[]}", "messages"},
        {"{\"content\":\"a\",\"add_special\":\"yes\"}", "add_special"},
        {"{\"content\":\"a\",\"with_pieces\":1}", "with_pieces"},
        {"[]", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(srv_tokenize_parse(bad[i].body, strlen(bad[i].body), &t, &err), -1);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.param, bad[i].param);
        assert_null(t.content);
        assert_null(t.messages);
    }
}

static void test_detokenize_parse(void **state) {
    (void)state;
    srv_detokenize_req d;
    srv_error err = {0};
    const char *b = "{\"tokens\":[1,2.0,2147483647,0]}";
    assert_int_equal(srv_detokenize_parse(b, strlen(b), &d, &err), 0);
    assert_int_equal(d.n_tokens, 4);
    assert_int_equal(d.tokens[0], 1);
    assert_int_equal(d.tokens[1], 2);
    assert_int_equal(d.tokens[2], INT32_MAX);
    assert_int_equal(d.tokens[3], 0);
    srv_detokenize_free(&d);
    b = "{\"tokens\":[]}";
    assert_int_equal(srv_detokenize_parse(b, strlen(b), &d, &err), 0);
    assert_int_equal(d.n_tokens, 0);
    srv_detokenize_free(&d);

    static const struct { const char *body, *param; } bad[] = {
        {"{}", "tokens"},
        {"{\"tokens\":\"1 2\"}", "tokens"},
        {"{\"tokens\":[1,-1]}", "tokens[1]"},
        {"{\"tokens\":[1,2147483648]}", "tokens[1]"},
        {"{\"tokens\":[0.5]}", "tokens[0]"},
        {"{\"tokens\":[\"3\"]}", "tokens[0]"},
        {"{\"tokens\":[1e300]}", "tokens[0]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(srv_detokenize_parse(bad[i].body, strlen(bad[i].body), &d, &err), -1);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.param, bad[i].param);
        assert_null(d.tokens);
    }
}

static void test_template_parse(void **state) {
    (void)state;
    srv_template_req t;
    srv_error err = {0};
    const char *b = "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"u\"}]}";
    assert_int_equal(srv_template_parse(b, strlen(b), &t, &err), 0);
    assert_int_equal(t.n_messages, 2);
    assert_string_equal(t.messages[0].role, "system");
    assert_string_equal(t.messages[1].content, "u");
    assert_true(t.add_generation_prompt);
    srv_template_free(&t);
    b = "{" MSGS ",\"add_generation_prompt\":false}";
    assert_int_equal(srv_template_parse(b, strlen(b), &t, &err), 0);
    assert_false(t.add_generation_prompt);
    srv_template_free(&t);
    b = "{\"messages\":[{\"role\":\"user\"}]}";
    assert_int_equal(srv_template_parse(b, strlen(b), &t, &err), -1);
    assert_string_equal(err.param, "messages[0].content");
    assert_null(t.messages);
    b = "{" MSGS ",\"add_generation_prompt\":\"no\"}";
    assert_int_equal(srv_template_parse(b, strlen(b), &t, &err), -1);
    assert_string_equal(err.param, "add_generation_prompt");
    assert_null(t.messages);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_structured_output),
        cmocka_unit_test(test_defaults_chat),
        cmocka_unit_test(test_defaults_completions),
        cmocka_unit_test(test_all_fields_chat),
        cmocka_unit_test(test_max_tokens_alias),
        cmocka_unit_test(test_token_prompts),
        cmocka_unit_test(test_nulls_are_absent),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_content_parts),
        cmocka_unit_test(test_stop_forms),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_completions_fields),
        cmocka_unit_test(test_prompt_array_cap),
        cmocka_unit_test(test_hostile_shapes),
        cmocka_unit_test(test_body_not_nul_terminated),
        cmocka_unit_test(test_error_set),
        cmocka_unit_test(test_tokenize_parse),
        cmocka_unit_test(test_detokenize_parse),
        cmocka_unit_test(test_template_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
