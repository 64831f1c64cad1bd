/* Tool calling: the output parsers of each call style (Hermes/ChatML tags,
 * Llama 3 JSON), forced-call prefixes, the streaming content split, and the
 * server's layer on top (ids, parallel_tool_calls, the forced grammar). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/tools.h"

static json_t *tools_json(void) {
    return json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
                      "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
                      "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\","
                      "\"properties\":{}}}}]",
                      0, NULL);
}

static void parse(chat_tool_style s, const char *text, const char *forced, chat_tool_parse *p) {
    json_t *tools = tools_json();
    assert_non_null(tools);
    assert_true(chat_tools_parse(s, text, strlen(text), tools, forced, p));
    json_decref(tools);
}

static void assert_call(const chat_tool_call *c, const char *name, const char *args) {
    assert_string_equal(c->name, name);
    assert_string_equal(c->arguments, args);
}

static void test_hermes_calls_and_content(void **st) {
    (void)st;
    chat_tool_parse p;
    parse(CHAT_TOOLS_HERMES,
          "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
          "<tool_call>{\"name\": \"get_time\", \"arguments\": \"{}\"}</tool_call>",
          NULL, &p);
    assert_int_equal(p.n_calls, 2);
    assert_call(&p.calls[0], "get_weather", "{\"city\":\"Paris\"}");
    assert_call(&p.calls[1], "get_time", "{}"); /* a string holding an object counts */
    assert_string_equal(p.content, "Let me check.");
    chat_tools_parse_free(&p);
}

static void test_hermes_rejects_leave_text(void **st) {
    (void)st;
    chat_tool_parse p;
    /* an unknown function, then arguments that are no object: both stay text */
    const char *t = "<tool_call>{\"name\": \"launch\", \"arguments\": {}}</tool_call> and "
                    "<tool_call>{\"name\": \"get_time\", \"arguments\": [1]}</tool_call>";
    parse(CHAT_TOOLS_HERMES, t, NULL, &p);
    assert_int_equal(p.n_calls, 0);
    assert_int_equal(p.content_len, strlen(t));
    assert_memory_equal(p.content, t, strlen(t));
    chat_tools_parse_free(&p);
    /* only calls: no content; an unclosed last call counts (generation stopped there) */
    parse(CHAT_TOOLS_HERMES, "<tool_call>\n{\"name\": \"get_time\", \"parameters\": {}}", NULL, &p);
    assert_int_equal(p.n_calls, 1);
    assert_call(&p.calls[0], "get_time", "{}");
    assert_null(p.content);
    chat_tools_parse_free(&p);
}

static void test_llama3_calls(void **st) {
    (void)st;
    chat_tool_parse p;
    parse(CHAT_TOOLS_LLAMA3,
          "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; "
          "{\"name\": \"get_time\", \"parameters\": {}}",
          NULL, &p);
    assert_int_equal(p.n_calls, 2);
    assert_call(&p.calls[0], "get_weather", "{\"city\":\"Oslo\"}");
    assert_call(&p.calls[1], "get_time", "{}");
    assert_null(p.content);
    chat_tools_parse_free(&p);
    /* calls are the whole answer or none of it */
    const char *t = "{\"name\": \"get_time\", \"parameters\": {}} is what I would call";
    parse(CHAT_TOOLS_LLAMA3, t, NULL, &p);
    assert_int_equal(p.n_calls, 0);
    assert_string_equal(p.content, t);
    chat_tools_parse_free(&p);
}

static void test_forced_prefix_parse(void **st) {
    (void)st;
    for (int s = CHAT_TOOLS_HERMES; s <= CHAT_TOOLS_LLAMA3; s++) {
        char *pre = chat_tools_prefix((chat_tool_style)s, "get_weather");
        assert_non_null(pre);
        assert_non_null(strstr(pre, "\"get_weather\""));
        char text[256];
        /* the model stopped right after the arguments: still the forced call */
        snprintf(text, sizeof text, "%s{\"city\": \"Rome\"}", pre);
        chat_tool_parse p;
        parse((chat_tool_style)s, text, "get_weather", &p);
        assert_int_equal(p.n_calls, 1);
        assert_call(&p.calls[0], "get_weather", "{\"city\":\"Rome\"}");
        assert_null(p.content);
        chat_tools_parse_free(&p);
        free(pre);
    }
}

static void test_content_prefix(void **st) {
    (void)st;
    bool opened = false;
    const char *t = "Sure. <tool_call>{\"name\"";
    assert_int_equal(chat_tools_content_prefix(CHAT_TOOLS_HERMES, t, strlen(t), true, &opened), 6);
    assert_true(opened);
    /* a partial opener at the end is held back, not sent */
    opened = false;
    t = "Sure. <tool_";
    assert_int_equal(chat_tools_content_prefix(CHAT_TOOLS_HERMES, t, strlen(t), true, &opened), 6);
    assert_false(opened);
    t = "plain text";
    assert_int_equal(chat_tools_content_prefix(CHAT_TOOLS_HERMES, t, strlen(t), true, &opened), strlen(t));
    /* Llama 3: an answer that starts with '{' may be a call */
    opened = false;
    t = "{\"name\"";
    assert_int_equal(chat_tools_content_prefix(CHAT_TOOLS_LLAMA3, t, strlen(t), true, &opened), 0);
}

static void request_with(srv_request *r, srv_tool_choice choice, int named, bool parallel) {
    memset(r, 0, sizeof *r);
    r->ep = SRV_EP_CHAT;
    r->tools = tools_json();
    assert_non_null(r->tools);
    r->n_tools = 2;
    r->tool_choice = choice;
    r->tool_named = named;
    r->parallel_tool_calls = parallel;
}

static void test_server_parse_ids_and_parallel(void **st) {
    (void)st;
    srv_request r;
    const char *t = "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>"
                    "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}</tool_call>";
    for (int par = 0; par < 2; par++) {
        request_with(&r, SRV_TOOL_AUTO, 0, par);
        srv_tool_result res;
        assert_true(srv_tools_parse(CHAT_TOOLS_HERMES, &r, t, strlen(t), &res));
        assert_int_equal(res.n_calls, par ? 2 : 1);
        for (int i = 0; i < res.n_calls; i++) {
            assert_int_equal(strncmp(res.calls[i].id, "call_", 5), 0);
            assert_int_equal(strlen(res.calls[i].id), 5 + 24);
        }
        if (par) assert_string_not_equal(res.calls[0].id, res.calls[1].id);
        assert_string_equal(res.calls[0].name, "get_time");
        srv_tool_result_free(&res);
        json_decref(r.tools);
    }
}

static void test_server_forced_grammar(void **st) {
    (void)st;
    srv_request r;
    for (int choice = SRV_TOOL_REQUIRED; choice <= SRV_TOOL_NAMED; choice++) {
        request_with(&r, (srv_tool_choice)choice, 0, true);
        char *text = NULL, param[64];
        ryot_error err = {0};
        assert_int_equal(srv_tools_grammar_text(CHAT_TOOLS_HERMES, &r, &text, param, sizeof param, &err), RYOT_OK);
        grammar *g = NULL;
        assert_int_equal(grammar_parse(text, strlen(text), &g, &err), RYOT_OK);
        /* the prefix, then what the grammar generates, parses as a call to a known tool */
        bool nomem;
        char *pre = srv_tools_prefix(CHAT_TOOLS_HERMES, &r, &nomem);
        assert_non_null(pre);
        for (uint64_t seed = 1; seed <= 8; seed++) {
            size_t n;
            char *out = grammar_generate(g, seed, 8, &n);
            assert_non_null(out);
            size_t pl = strlen(pre);
            char *all = malloc(pl + n + 1);
            memcpy(all, pre, pl);
            memcpy(all + pl, out, n + 1);
            srv_tool_result res;
            assert_true(srv_tools_parse(CHAT_TOOLS_HERMES, &r, all, pl + n, &res));
            assert_true(res.n_calls >= 1);
            if (choice == SRV_TOOL_NAMED) assert_string_equal(res.calls[0].name, "get_weather");
            if (!strcmp(res.calls[0].name, "get_weather")) assert_non_null(strstr(res.calls[0].arguments, "\"city\""));
            srv_tool_result_free(&res);
            free(all);
            free(out);
        }
        free(pre);
        grammar_free(g);
        free(text);
        json_decref(r.tools);
    }
}

static void test_server_bad_schema_names_tool(void **st) {
    (void)st;
    srv_request r;
    request_with(&r, SRV_TOOL_NAMED, 1, true);
    json_t *fn = json_object_get(json_array_get(r.tools, 1), "function");
    json_object_set_new(fn, "parameters", json_pack("{s:s,s:{s:{s:s}}}", "type", "object", "properties", "x", "type",
                                                    "no-such-type"));
    char *text = NULL, param[64];
    ryot_error err = {0};
    assert_int_not_equal(srv_tools_grammar_text(CHAT_TOOLS_HERMES, &r, &text, param, sizeof param, &err), RYOT_OK);
    assert_string_equal(param, "tools[1].function.parameters");
    assert_null(text);
    json_decref(r.tools);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hermes_calls_and_content),
        cmocka_unit_test(test_hermes_rejects_leave_text),
        cmocka_unit_test(test_llama3_calls),
        cmocka_unit_test(test_forced_prefix_parse),
        cmocka_unit_test(test_content_prefix),
        cmocka_unit_test(test_server_parse_ids_and_parallel),
        cmocka_unit_test(test_server_forced_grammar),
        cmocka_unit_test(test_server_bad_schema_names_tool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
