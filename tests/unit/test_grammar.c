/* Grammars, JSON schemas and token masks (grammar/grammar.h): parse errors,
 * each schema feature by accepted and rejected strings, generated sentences
 * against a small JSON-schema validator, masks against brute force on a
 * hand-made vocab, the mask cache, and schema errors naming their path. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/buf.h"
#include "grammar/grammar.h"

/* ---------------------------------------------------------------- helpers */
static grammar *parse_ok(const char *text) {
    grammar *g = NULL;
    ryot_error err = {0};
    ryot_status st = grammar_parse(text, strlen(text), &g, &err);
    if (st != RYOT_OK) fprintf(stderr, "grammar_parse: %s\n--\n%s\n", err.msg, text);
    assert_int_equal(st, RYOT_OK);
    return g;
}

static json_t *json(const char *text) {
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v) fprintf(stderr, "bad test JSON: %s: %s\n", je.text, text);
    assert_non_null(v);
    return v;
}

static grammar *schema_ok(const char *schema) {
    json_t *s = json(schema);
    grammar *g = NULL;
    ryot_error err = {0};
    ryot_status st = grammar_from_schema(s, &g, &err);
    if (st != RYOT_OK) fprintf(stderr, "grammar_from_schema: %s\n--\n%s\n", err.msg, schema);
    assert_int_equal(st, RYOT_OK);
    json_decref(s);
    return g;
}

/* A one-token-per-byte vocab (bytes 0..255) plus an EOG id 256. */
static grammar_vocab *byte_vocab(void) {
    static char bytes[256];
    const char *p[257];
    size_t len[257];
    for (int i = 0; i < 256; i++) bytes[i] = (char)i, p[i] = bytes + i, len[i] = 1;
    p[256] = "", len[256] = 0;
    int32_t eog = 256;
    grammar_vocab *v = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_vocab_new(p, len, 257, &eog, 1, &v, &err), RYOT_OK);
    return v;
}

static grammar_vocab *g_bytes; /* shared by the accept tests */

/* Whether the whole string s is a sentence of g. */
static bool in_language(const grammar *g, const char *s) {
    grammar_matcher *m = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_matcher_new(g, g_bytes, &m, &err), RYOT_OK);
    bool ok = grammar_matcher_accept_bytes(m, s, strlen(s)) && grammar_matcher_is_complete(m);
    grammar_matcher_free(m);
    return ok;
}

static void expect_lang(const grammar *g, const char *const *yes, const char *const *no, const char *what) {
    for (; yes && *yes; yes++)
        if (!in_language(g, *yes)) fail_msg("%s: rejected %s", what, *yes);
    for (; no && *no; no++)
        if (in_language(g, *no)) fail_msg("%s: accepted %s", what, *no);
}

static void expect_parse_error(const char *text, const char *msg) {
    grammar *g = NULL;
    ryot_error err = {0};
    ryot_status st = grammar_parse(text, strlen(text), &g, &err);
    assert_int_equal(st, RYOT_ERR_INVALID);
    assert_null(g);
    if (!strstr(err.msg, msg)) fail_msg("grammar %s: message '%s' lacks '%s'", text, err.msg, msg);
}

/* ---------------------------------------------------------------- a small validator
 * The subset of JSON Schema the compiler supports, written from the
 * specification's wording, so generated output is checked independently of
 * the compiler. */
static const json_t *g_root;

static bool re_match(const char *pattern, const char *s, size_t n) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    assert_non_null(re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

static size_t utf8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static bool type_is(const json_t *v, const char *t) {
    if (!strcmp(t, "object")) return json_is_object(v);
    if (!strcmp(t, "array")) return json_is_array(v);
    if (!strcmp(t, "string")) return json_is_string(v);
    if (!strcmp(t, "number")) return json_is_number(v);
    if (!strcmp(t, "integer")) return json_is_integer(v) || (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)));
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "null")) return json_is_null(v);
    return false;
}

static bool validate(const json_t *v, const json_t *s);

static bool validate_keywords(const json_t *v, const json_t *s) {
    const json_t *k;
    if ((k = json_object_get(s, "$ref"))) {
        const char *r = json_string_value(k);
        const json_t *t = g_root;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", r + 1);
        for (char *seg = strtok(buf, "/"); seg && t; seg = strtok(NULL, "/")) t = json_object_get(t, seg);
        assert_non_null(t);
        return validate(v, t);
    }
    if ((k = json_object_get(s, "type"))) {
        bool any = false;
        if (json_is_string(k)) any = type_is(v, json_string_value(k));
        for (size_t i = 0; json_is_array(k) && i < json_array_size(k); i++)
            any = any || type_is(v, json_string_value(json_array_get(k, i)));
        if (!any) return false;
    }
    if ((k = json_object_get(s, "const")) && !json_equal(k, (json_t *)v)) return false;
    if ((k = json_object_get(s, "enum"))) {
        bool any = false;
        for (size_t i = 0; i < json_array_size(k); i++) any = any || json_equal(json_array_get(k, i), (json_t *)v);
        if (!any) return false;
    }
    if ((k = json_object_get(s, "anyOf"))) {
        bool any = false;
        for (size_t i = 0; i < json_array_size(k); i++) any = any || validate(v, json_array_get(k, i));
        if (!any) return false;
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        if ((k = json_object_get(s, "minimum")) && x < json_number_value(k)) return false;
        if ((k = json_object_get(s, "maximum")) && x > json_number_value(k)) return false;
        if ((k = json_object_get(s, "exclusiveMinimum")) && x <= json_number_value(k)) return false;
        if ((k = json_object_get(s, "exclusiveMaximum")) && x >= json_number_value(k)) return false;
    }
    if (json_is_string(v)) {
        size_t n = utf8_len(json_string_value(v), json_string_length(v));
        if ((k = json_object_get(s, "minLength")) && n < (size_t)json_integer_value(k)) return false;
        if ((k = json_object_get(s, "maxLength")) && n > (size_t)json_integer_value(k)) return false;
        if ((k = json_object_get(s, "pattern")) && !re_match(json_string_value(k), json_string_value(v), json_string_length(v)))
            return false;
        static const struct {
            const char *name, *re;
        } formats[] = {
            {"date", "^\\d{4}-\\d\\d-\\d\\d$"},
            {"time", "^\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?(Z|[+-]\\d\\d:\\d\\d)$"},
            {"date-time", "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?(Z|[+-]\\d\\d:\\d\\d)$"},
            {"uuid", "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
            {"email", "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$"},
            {"ipv4", "^((25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)$"},
        };
        if ((k = json_object_get(s, "format")))
            for (size_t i = 0; i < sizeof formats / sizeof *formats; i++)
                if (!strcmp(json_string_value(k), formats[i].name) &&
                    !re_match(formats[i].re, json_string_value(v), json_string_length(v)))
                    return false;
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if ((k = json_object_get(s, "minItems")) && n < (size_t)json_integer_value(k)) return false;
        if ((k = json_object_get(s, "maxItems")) && n > (size_t)json_integer_value(k)) return false;
        const json_t *prefix = json_object_get(s, "prefixItems");
        size_t np = json_array_size(prefix);
        for (size_t i = 0; i < n && i < np; i++)
            if (!validate(json_array_get(v, i), json_array_get(prefix, i))) return false;
        if ((k = json_object_get(s, "items")))
            for (size_t i = np; i < n; i++)
                if (!validate(json_array_get(v, i), k)) return false;
    }
    if (json_is_object(v)) {
        const json_t *props = json_object_get(s, "properties"), *add = json_object_get(s, "additionalProperties");
        if ((k = json_object_get(s, "required")))
            for (size_t i = 0; i < json_array_size(k); i++)
                if (!json_object_get(v, json_string_value(json_array_get(k, i)))) return false;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) {
            const json_t *ps = props ? json_object_get(props, key) : NULL;
            if (ps && !validate(val, ps)) return false;
            if (!ps && json_is_false(add)) return false;
            if (!ps && json_is_object(add) && !validate(val, add)) return false;
        }
    }
    return true;
}

static bool validate(const json_t *v, const json_t *s) {
    if (json_is_true(s)) return true;
    if (json_is_false(s)) return false;
    return validate_keywords(v, s);
}

/* ---------------------------------------------------------------- grammar text */
static void test_parse_errors(void **state) {
    (void)state;
    expect_parse_error("", "grammar line 1:1: empty grammar");
    expect_parse_error("root ::= \"a\" )", "grammar line 1:14: unmatched ')'");
    expect_parse_error("root ::= \"a\nb", "grammar line 1:10: unterminated string literal");
    expect_parse_error("root ::= [a-", "grammar line 1:10: unterminated character class");
    expect_parse_error("root ::= [z-a]", "grammar line 1:13: class range out of order");
    expect_parse_error("root ::= \"\\q\"", "grammar line 1:11: unknown escape");
    expect_parse_error("root ::= \"a\"\n  other", "grammar line 2:3: undefined rule 'other'");
    expect_parse_error("root ::= x\nx ::= \"a\"\nx ::= \"b\"", "grammar line 3:1: duplicate rule definition");
    expect_parse_error("start ::= \"a\"", "no rule named 'root'");
    expect_parse_error("root ::= \"a\"{3,2}", "grammar line 1:13: repetition {m,n} with n < m");
    expect_parse_error("root ::= \"a\"{10001}", "repetition count over 10000");
    expect_parse_error("root ::= ( \"a\"", "grammar line 1:15: expected ')'");
    expect_parse_error("root ::= \"a\" @", "grammar line 1:14: unexpected character");
    expect_parse_error("root ::= \"\\uD800\"", "not a Unicode scalar value");
    expect_parse_error("root ::= [^\\x00-\\U0010FFFF]", "matches nothing");
    expect_parse_error("root ::= \"x\" loop\nloop ::= \"a\" loop", "'root' matches no finite string");
    /* a NUL byte is an error, not the end of the text */
    grammar *g = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_parse("root ::= \"a\"\0", 13, &g, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "NUL"));
}

static void test_left_recursion(void **state) {
    (void)state;
    expect_parse_error("root ::= root \"a\" | \"b\"", "rule 'root' is left-recursive");
    expect_parse_error("root ::= a \"x\"\na ::= b? root\nb ::= \"b\"", "left-recursive");
    expect_parse_error("root ::= e* \"x\"\ne ::= \"e\"?", "left-recursive"); /* a nullable repeated */
    /* right recursion and recursion behind a character are fine */
    grammar *g = parse_ok("root ::= \"a\" root | \"b\"");
    static const char *const yes[] = {"b", "ab", "aaab", NULL}, *const no[] = {"", "a", "ba", NULL};
    expect_lang(g, yes, no, "right recursion");
    grammar_free(g);
    /* a long chain of rules: checked without deep recursion */
    ryot_buf b = {0};
    assert_true(ryot_buf_printf(&b, "root ::= r0\n"));
    for (int i = 0; i < 20000; i++) assert_true(ryot_buf_printf(&b, "r%d ::= r%d \"a\" | \"a\"\n", i, i + 1));
    assert_true(ryot_buf_printf(&b, "r20000 ::= \"z\"\n"));
    g = parse_ok(b.data);
    assert_true(in_language(g, "aaa"));
    assert_false(in_language(g, "za"));
    grammar_free(g);
    ryot_buf_free(&b);
}

static void test_grammar_features(void **state) {
    (void)state;
    static const struct {
        const char *text;
        const char *yes[6], *no[6];
    } cases[] = {
        {"root ::= \"ab\" | \"c\"", {"ab", "c"}, {"", "a", "abc", "cc"}},
        {"root ::= [a-c]+ \"!\"?", {"a", "cab!", "b!"}, {"", "!", "d", "a!!"}},
        {"root ::= [^0-9\\n]*", {"", "abc", "é", "日本"}, {"a1", "\n"}},
        {"root ::= \"x\"{2,3}", {"xx", "xxx"}, {"x", "xxxx"}},
        {"root ::= \"x\"{2,}", {"xx", "xxxxxxx"}, {"x", ""}},
        {"root ::= (\"a\" | \"b\"){3}", {"aba", "bbb"}, {"ab", "abab"}},
        {"root ::= [α-ω] .", {"αa", "ω日", "β\xf0\x9f\x98\x80"}, {"a", "αβγ", "Aa"}},
        {"# comment\nroot ::= item (\",\" item)*  # trailing\nitem ::= [0-9]\n", {"1", "1,2,3"}, {"1,", ",1", "12"}},
        {"root ::= \"\\x41\\u00e9\\t\\\"\"", {"Aé\t\""}, {"A"}},
        {"root ::= \"a\"\n  \"b\"\nother ::= \"c\"", {"ab"}, {"a", "abc"}}, /* a body spans lines */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        grammar *g = parse_ok(cases[i].text);
        expect_lang(g, cases[i].yes, cases[i].no, cases[i].text);
        grammar_free(g);
    }
    /* invalid UTF-8 and a surrogate never match */
    grammar *g = parse_ok("root ::= .*");
    static const char *const no[] = {"\xc3", "\xed\xa0\x80", "\xff", "\xc0\x80", NULL};
    expect_lang(g, NULL, no, "dot");
    /* dead alternatives are never entered: "x" cannot be followed by anything */
    grammar_free(g);
    g = parse_ok("root ::= \"x\" loop | \"y\"\nloop ::= \"a\" loop");
    grammar_matcher *m = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_matcher_new(g, g_bytes, &m, &err), RYOT_OK);
    assert_false(grammar_matcher_accepts_bytes(m, "x", 1));
    assert_true(grammar_matcher_accept_bytes(m, "y", 1));
    assert_true(grammar_matcher_is_finished(m));
    grammar_matcher_free(m);
    grammar_free(g);
}

static void test_refcount(void **state) {
    (void)state;
    grammar *g = parse_ok("root ::= \"a\"");
    assert_ptr_equal(grammar_ref(g), g);
    grammar_free(g);
    assert_true(in_language(g, "a")); /* still alive: one reference left */
    grammar_free(g);
}

/* ---------------------------------------------------------------- schemas */
static const struct {
    const char *schema;
    const char *yes[8], *no[8];
} SCHEMA_CASES[] = {
    {"{\"type\":\"object\"}", {"{}", "{\"a\": [1, {\"b\": null}], \"c\": \"d\"}", "{ }"}, {"[]", "{", "{\"a\"}", "{} "}},
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},\"required\":[\"b\"]}",
     {"{\"b\":\"x\"}", "{\"a\":1,\"b\":\"\"}", "{ \"a\" : -5 , \"b\" : \"q\" }"},
     {"{}", "{\"a\":1}", "{\"b\":\"x\",\"a\":1}", "{\"b\":1}", "{\"b\":\"x\",}", "{\"b\":\"x\",\"c\":1}"}},
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"},\"b\":{\"type\":\"null\"},\"c\":{\"type\":\"number\"}}}",
     {"{}", "{\"b\":null}", "{\"a\":true,\"c\":1.5e3}", "{\"a\":false,\"b\":null,\"c\":-0.25}"},
     {"{,}", "{\"a\":true,}", "{\"c\":01}", "{\"c\":1.}", "{\"b\":null,\"a\":true}"}},
    {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}",
     {"[1,2]", "[1, 2, 3]", "[ 0 , -1 ]"}, {"[]", "[1]", "[1,2,3,4]", "[1,]", "[1.5,2]"}},
    {"{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],\"items\":false}",
     {"[]", "[\"a\"]", "[\"a\",1]"}, {"[1]", "[\"a\",1,2]"}},
    {"{\"enum\":[\"red\",\"green\",3,null]}", {"\"red\"", "3", "null"}, {"\"blue\"", "\"Red\"", "4"}},
    {"{\"type\":\"string\",\"enum\":[\"a\",1]}", {"\"a\""}, {"1"}},
    {"{\"const\":{\"k\":[1,true]}}", {"{\"k\":[1,true]}"}, {"{\"k\":[1]}", "{}"}},
    {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", {"\"ab\"", "\"\\u00e9\\n\"", "\"日本語\""},
     {"\"a\"", "\"abcd\"", "\"\\ud800\""}},
    {"{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3}$\"}", {"\"AB-123\""}, {"\"AB-12\"", "\"ab-123\"", "\"AB-1234\""}},
    {"{\"type\":\"string\",\"pattern\":\"(cat|dog)s?\"}", {"\"cat\"", "\"dogs\""}, {"\"cow\"", "\"cats!\""}},
    {"{\"type\":\"string\",\"format\":\"date\"}", {"\"2024-02-29\""}, {"\"2024-13-01\"", "\"24-01-01\""}},
    {"{\"type\":\"string\",\"format\":\"date-time\"}", {"\"2024-02-29T12:30:00Z\"", "\"2024-02-29T23:59:59.5+01:00\""},
     {"\"2024-02-29 12:30:00Z\"", "\"2024-02-29T24:00:00Z\""}},
    {"{\"type\":\"string\",\"format\":\"uuid\"}", {"\"123e4567-e89b-12d3-a456-426614174000\""}, {"\"123e4567\""}},
    {"{\"type\":\"string\",\"format\":\"email\"}", {"\"a.b@example.com\""}, {"\"a@b\"", "\"@b.com\""}},
    {"{\"type\":\"string\",\"format\":\"ipv4\"}", {"\"10.0.0.255\""}, {"\"256.0.0.1\"", "\"01.0.0.1\""}},
    {"{\"type\":\"integer\",\"minimum\":-12,\"maximum\":250}", {"-12", "0", "9", "10", "199", "250"},
     {"-13", "251", "300", "1000", "-0", "00"}},
    {"{\"type\":\"integer\",\"exclusiveMinimum\":0,\"exclusiveMaximum\":100}", {"1", "99"}, {"0", "100", "-1"}},
    {"{\"type\":\"integer\",\"minimum\":1000}", {"1000", "99999999999"}, {"999", "-5"}},
    {"{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", {"0", "0.5", "1", "1.0", "0.999"}, {"-0.1", "1.01", "2", "1e0"}},
    {"{\"type\":\"number\",\"exclusiveMinimum\":-1,\"maximum\":2.5}", {"-0.5", "2", "0"}, {"-1", "3", "-1.0"}},
    {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"array\",\"items\":{\"type\":\"string\"}}]}",
     {"5", "[\"a\",\"b\"]", "[]"}, {"\"a\"", "[1]", "1.5"}},
    {"{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},\"next\":{\"$ref\":\"#/$defs/"
     "node\"}},\"required\":[\"v\"]}},\"$ref\":\"#/$defs/node\"}",
     {"{\"v\":1}", "{\"v\":1,\"next\":{\"v\":2,\"next\":{\"v\":3}}}"}, {"{\"next\":{\"v\":2}}", "{\"v\":1,\"next\":{}}"}},
    {"{\"type\":[\"string\",\"null\"]}", {"\"x\"", "null"}, {"1"}},
    {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", {"{}", "{\"x\":1,\"y\":2}"}, {"{\"x\":\"a\"}"}},
    {"{\"type\":\"object\",\"additionalProperties\":false}", {"{}"}, {"{\"a\":1}"}},
    {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"a\",\"z\"]}", {"{\"a\":1,\"z\":[]}"},
     {"{\"a\":1}", "{\"z\":1,\"a\":1}"}},
};

static void test_schema_features(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof SCHEMA_CASES / sizeof *SCHEMA_CASES; i++) {
        grammar *g = schema_ok(SCHEMA_CASES[i].schema);
        expect_lang(g, SCHEMA_CASES[i].yes, SCHEMA_CASES[i].no, SCHEMA_CASES[i].schema);
        grammar_free(g);
    }
}

static const char NESTED[] =
    "{\"type\":\"object\",\"$defs\":{\"tag\":{\"type\":\"string\",\"enum\":[\"a\",\"b\",\"c\"]}},"
    "\"properties\":{"
    "\"name\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":12},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150},"
    "\"email\":{\"type\":\"string\",\"format\":\"email\"},"
    "\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}[0-9]{2}$\"},"
    "\"score\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":10},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/tag\"},\"minItems\":1,\"maxItems\":3},"
    "\"kind\":{\"const\":\"person\"},"
    "\"id\":{\"anyOf\":[{\"type\":\"integer\",\"minimum\":1},{\"type\":\"string\",\"format\":\"uuid\"}]},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"zip\":{\"type\":\"string\","
    "\"pattern\":\"^\\\\d{5}$\"}},\"required\":[\"city\"],\"additionalProperties\":false},"
    "\"when\":{\"type\":\"string\",\"format\":\"date-time\"},"
    "\"ok\":{\"type\":\"boolean\"}},"
    "\"required\":[\"name\",\"age\",\"tags\",\"id\"],\"additionalProperties\":false}";

/* Generated sentences: accepted by a matcher, valid JSON, valid against the
 * schema by the independent validator. */
static void check_generated(const char *schema_text, int n) {
    json_t *schema = json(schema_text);
    g_root = schema;
    grammar *g = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_from_schema(schema, &g, &err), RYOT_OK);
    for (int seed = 0; seed < n; seed++) {
        size_t len = 0;
        char *s = grammar_generate(g, (uint64_t)seed, 6 + seed % 8, &len);
        assert_non_null(s);
        assert_int_equal(strlen(s), len);
        if (!in_language(g, s)) fail_msg("generated text rejected: %s", s);
        json_error_t je;
        json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &je);
        if (!v) fail_msg("generated text is not JSON (%s): %s", je.text, s);
        if (!validate(v, schema)) fail_msg("generated text fails the schema %s: %s", schema_text, s);
        json_decref(v);
        free(s);
    }
    grammar_free(g);
    json_decref(schema);
}

static void test_generate_valid(void **state) {
    (void)state;
    check_generated(NESTED, 300);
    for (size_t i = 0; i < sizeof SCHEMA_CASES / sizeof *SCHEMA_CASES; i++) check_generated(SCHEMA_CASES[i].schema, 40);
    /* any JSON object */
    grammar *g = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_json_object(&g, &err), RYOT_OK);
    for (int seed = 0; seed < 200; seed++) {
        char *s = grammar_generate(g, (uint64_t)seed, 8, NULL);
        json_t *v = json_loads(s, 0, NULL);
        if (!json_is_object(v)) fail_msg("not a JSON object: %s", s);
        json_decref(v);
        free(s);
    }
    grammar_free(g);
}

static void expect_schema_error(const char *schema, ryot_status code, const char *msg) {
    json_t *s = json(schema);
    grammar *g = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_from_schema(s, &g, &err), code);
    assert_null(g);
    if (!strstr(err.msg, msg)) fail_msg("schema %s: message '%s' lacks '%s'", schema, err.msg, msg);
    json_decref(s);
}

static void test_schema_errors(void **state) {
    (void)state;
    expect_schema_error("{\"type\":\"object\",\"properties\":{\"age\":{\"type\":\"integer\",\"minimum\":\"x\"}}}",
                        RYOT_ERR_INVALID, "schema.properties.age.minimum: must be a number");
    expect_schema_error("{\"type\":\"strin\"}", RYOT_ERR_INVALID, "schema.type: unknown type 'strin'");
    expect_schema_error("{\"type\":\"array\",\"items\":{\"not\":{}}}", RYOT_ERR_UNSUPPORTED,
                        "schema.items.not: unsupported keyword");
    expect_schema_error("{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", RYOT_ERR_INVALID,
                        "schema.minItems: greater than maxItems");
    expect_schema_error("{\"type\":\"array\",\"minItems\":-1}", RYOT_ERR_INVALID,
                        "schema.minItems: must be a non-negative integer");
    expect_schema_error("{\"$ref\":\"#/$defs/missing\"}", RYOT_ERR_INVALID, "schema.$ref: cannot resolve '#/$defs/missing'");
    expect_schema_error("{\"$ref\":\"http://x/y\"}", RYOT_ERR_UNSUPPORTED, "only local references");
    expect_schema_error("{\"anyOf\":[]}", RYOT_ERR_INVALID, "schema.anyOf: must be a non-empty array");
    expect_schema_error("{\"anyOf\":[{\"type\":\"integer\"},3]}", RYOT_ERR_INVALID,
                        "schema.anyOf[1]: must be an object or a boolean");
    expect_schema_error("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", RYOT_ERR_INVALID,
                        "no integer between minimum and maximum");
    expect_schema_error("{\"type\":\"string\",\"pattern\":\"(?=a)\"}", RYOT_ERR_UNSUPPORTED,
                        "schema.pattern: lookaround and named groups are unsupported");
    expect_schema_error("{\"type\":\"object\",\"required\":[1]}", RYOT_ERR_INVALID, "schema.required[0]: must be a string");
    expect_schema_error("3", RYOT_ERR_INVALID, "schema: must be an object or a boolean");
    expect_schema_error("{\"enum\":[1],\"anyOf\":[{}]}", RYOT_ERR_UNSUPPORTED, "unsupported together with");
    /* a self-reference that never ends is a schema error, not a hang */
    expect_schema_error("{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"}},\"required\":[\"a\"]}",
                        RYOT_ERR_INVALID, "schema: no finite JSON value satisfies it");
    expect_schema_error("{\"$ref\":\"#\"}", RYOT_ERR_INVALID, "schema: a $ref cycle");
}

/* ---------------------------------------------------------------- masks */
/* Tokens: single bytes, multi-byte pieces, a token that is a prefix of
 * another, duplicates, a split UTF-8 character, an empty (control) token
 * and two EOG ids. */
static const char *const TOKS[] = {"{",  "}",   "\"", "a",  "b",   "ab", "abc", "\"a", "a\"", ":",  " ",   "  ",
                                   "1",  "12",  "0",  ",",  "[",   "]",  "null", "nu", "ll",  "\"}", "{\"", "é",
                                   "\xc3", "\xa9", "ab", "}\"", "",   "",   "",    "-",  "true", "x"};
#define N_TOKS ((int32_t)(sizeof TOKS / sizeof *TOKS))
static const int32_t EOG[2] = {29, 30};

static grammar_vocab *small_vocab(void) {
    size_t len[N_TOKS];
    for (int32_t i = 0; i < N_TOKS; i++) len[i] = strlen(TOKS[i]);
    grammar_vocab *v = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_vocab_new(TOKS, len, N_TOKS, EOG, 2, &v, &err), RYOT_OK);
    assert_int_equal(grammar_vocab_size(v), N_TOKS);
    return v;
}

static bool bit(const uint32_t *bits, int32_t i) { return bits[i >> 5] >> (i & 31) & 1; }

/* Along a random walk of allowed tokens: the mask is exactly the tokens
 * whose bytes the matcher accepts, plus EOG when complete; empty tokens
 * never. */
static void check_masks(const grammar *g, const grammar_vocab *v, uint64_t seed, int steps) {
    grammar_matcher *m = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_matcher_new(g, v, &m, &err), RYOT_OK);
    uint32_t bits[(N_TOKS + 31) / 32];
    uint64_t r = seed * 2654435761u + 1;
    for (int s = 0; s < steps; s++) {
        assert_int_equal(grammar_mask(m, bits), RYOT_OK);
        int32_t allowed[N_TOKS], n = 0;
        for (int32_t t = 0; t < N_TOKS; t++) {
            bool want = t == EOG[0] || t == EOG[1] ? grammar_matcher_is_complete(m)
                        : !TOKS[t][0]              ? false
                                                   : grammar_matcher_accepts_bytes(m, TOKS[t], strlen(TOKS[t]));
            if (bit(bits, t) != want) fail_msg("step %d token %d '%s': mask %d, want %d", s, t, TOKS[t], bit(bits, t), want);
            if (want) allowed[n++] = t;
        }
        if (!n) break;
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int32_t pick = allowed[(r >> 33) % (uint64_t)n];
        assert_true(grammar_matcher_accept_token(m, pick));
        if (pick == EOG[0] || pick == EOG[1]) {
            assert_true(grammar_matcher_is_finished(m));
            assert_int_equal(grammar_mask(m, bits), RYOT_OK);
            for (int32_t t = 0; t < N_TOKS; t++) assert_false(bit(bits, t));
            assert_false(grammar_matcher_accept_token(m, 3));
            break;
        }
    }
    grammar_matcher_free(m);
}

static void test_masks(void **state) {
    (void)state;
    grammar_vocab *v = small_vocab();
    grammar *g = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_json_object(&g, &err), RYOT_OK);
    for (uint64_t seed = 0; seed < 40; seed++) check_masks(g, v, seed, 40);
    grammar_free(g);
    g = parse_ok("root ::= (\"ab\" | \"é\")+ | \"nul\" \"l\"");
    for (uint64_t seed = 0; seed < 40; seed++) check_masks(g, v, seed, 12);

    /* exact first masks */
    grammar_matcher *m = NULL;
    assert_int_equal(grammar_matcher_new(g, v, &m, &err), RYOT_OK);
    uint32_t bits[(N_TOKS + 31) / 32];
    assert_int_equal(grammar_mask(m, bits), RYOT_OK);
    static const int32_t first[] = {3, 5, 18, 19, 23, 24, 26}; /* a ab null nu é \xc3 ab */
    for (int32_t t = 0; t < N_TOKS; t++) {
        bool want = false;
        for (size_t k = 0; k < sizeof first / sizeof *first; k++) want = want || first[k] == t;
        if (bit(bits, t) != want) fail_msg("first mask: token %d '%s'", t, TOKS[t]);
    }
    /* "é" split over two tokens */
    assert_true(grammar_matcher_accept_token(m, 24));
    assert_false(grammar_matcher_is_complete(m));
    assert_int_equal(grammar_mask(m, bits), RYOT_OK);
    for (int32_t t = 0; t < N_TOKS; t++) assert_int_equal(bit(bits, t), t == 25);
    assert_true(grammar_matcher_accept_token(m, 25));
    assert_true(grammar_matcher_is_complete(m));
    assert_false(grammar_matcher_is_finished(m));
    assert_int_equal(grammar_mask(m, bits), RYOT_OK);
    assert_true(bit(bits, EOG[0]) && bit(bits, EOG[1]));
    grammar_matcher_free(m);
    grammar_free(g);

    /* "null" then nothing may follow: finished */
    g = parse_ok("root ::= \"null\"");
    assert_int_equal(grammar_matcher_new(g, v, &m, &err), RYOT_OK);
    assert_true(grammar_matcher_accept_token(m, 19));
    assert_false(grammar_matcher_accept_token(m, EOG[0])); /* not complete yet */
    assert_false(grammar_matcher_accept_token(m, 28));     /* empty token */
    assert_true(grammar_matcher_accept_token(m, 20));
    assert_true(grammar_matcher_is_finished(m));
    assert_int_equal(grammar_mask(m, bits), RYOT_OK);
    for (int32_t t = 0; t < N_TOKS; t++) assert_int_equal(bit(bits, t), t == EOG[0] || t == EOG[1]);
    assert_true(grammar_matcher_accept_token(m, EOG[1]));
    grammar_matcher_free(m);
    grammar_free(g);
    grammar_vocab_free(v);
}

static void test_mask_cache(void **state) {
    (void)state;
    grammar_vocab *v = small_vocab();
    grammar *g = parse_ok("root ::= \"a\"+");
    grammar_matcher *m = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_matcher_new(g, v, &m, &err), RYOT_OK);
    uint32_t bits[(N_TOKS + 31) / 32], again[(N_TOKS + 31) / 32];
    grammar_stats st;
    assert_int_equal(grammar_mask(m, bits), RYOT_OK);
    assert_int_equal(grammar_mask(m, again), RYOT_OK); /* same state: cached */
    assert_memory_equal(bits, again, sizeof bits);
    grammar_matcher_stats(m, &st);
    assert_int_equal(st.masks, 2);
    assert_int_equal(st.cache_hits, 1);
    /* "a"+ loops back to one state after the first "a" */
    for (int i = 0; i < 10; i++) {
        assert_true(grammar_matcher_accept_token(m, 3));
        assert_int_equal(grammar_mask(m, bits), RYOT_OK);
        assert_true(bit(bits, 3) && bit(bits, EOG[0]) && !bit(bits, 4));
    }
    grammar_matcher_stats(m, &st);
    assert_int_equal(st.masks, 12);
    assert_int_equal(st.cache_hits, 10);
    assert_true(st.states >= 2 && st.states < 10);
    grammar_matcher_free(m);
    grammar_free(g);
    grammar_vocab_free(v);
}

/* A long generation through the byte vocab rebuilds the DFA past its state
 * bound and keeps matching correctly. */
static void test_long_run(void **state) {
    (void)state;
    grammar *g = schema_ok("{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":99999}}");
    grammar_matcher *m = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_matcher_new(g, g_bytes, &m, &err), RYOT_OK);
    assert_true(grammar_matcher_accept_bytes(m, "[", 1));
    uint32_t bits[(257 + 31) / 32];
    for (int i = 0; i < 20000; i++) {
        char num[16];
        int n = snprintf(num, sizeof num, "%s%d", i ? "," : "", (i * 7919) % 100000);
        assert_true(grammar_matcher_accept_bytes(m, num, (size_t)n));
        if (i % 1000 == 0) {
            assert_int_equal(grammar_mask(m, bits), RYOT_OK);
            assert_true(bit(bits, ',') && bit(bits, ']') && !bit(bits, 'a') && !bit(bits, 256));
        }
    }
    assert_false(grammar_matcher_accept_bytes(m, "123456", 6));
    assert_true(grammar_matcher_accept_bytes(m, "]", 1));
    assert_true(grammar_matcher_is_finished(m));
    grammar_matcher_free(m);
    grammar_free(g);

    /* deep nesting: every level is a new parse stack, so a new DFA state */
    assert_int_equal(grammar_json_object(&g, &err), RYOT_OK);
    assert_int_equal(grammar_matcher_new(g, g_bytes, &m, &err), RYOT_OK);
    assert_true(grammar_matcher_accept_bytes(m, "{\"a\":", 5));
    for (int i = 0; i < 6000; i++) assert_true(grammar_matcher_accept_bytes(m, "[", 1));
    for (int i = 0; i < 6000; i++) {
        if (i % 500 == 0) {
            assert_int_equal(grammar_mask(m, bits), RYOT_OK);
            assert_true(bit(bits, ']') && !bit(bits, '}') && !bit(bits, 256));
        }
        assert_false(grammar_matcher_accepts_bytes(m, "}", 1));
        assert_true(grammar_matcher_accept_bytes(m, "]", 1));
    }
    assert_true(grammar_matcher_accept_bytes(m, "}", 1));
    assert_true(grammar_matcher_is_finished(m));
    grammar_stats st;
    grammar_matcher_stats(m, &st);
    assert_true(st.flushes >= 1);
    grammar_matcher_free(m);
    grammar_free(g);
}

static void test_vocab_errors(void **state) {
    (void)state;
    const char *p[2] = {"a", "b"};
    size_t len[2] = {1, 1};
    int32_t bad = 5;
    grammar_vocab *v = NULL;
    ryot_error err = {0};
    assert_int_equal(grammar_vocab_new(p, len, 2, &bad, 1, &v, &err), RYOT_ERR_INVALID);
    assert_null(v);
    assert_int_equal(grammar_vocab_new(p, len, 0, NULL, 0, &v, &err), RYOT_ERR_INVALID);
}

static int setup(void **state) {
    (void)state;
    g_bytes = byte_vocab();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    grammar_vocab_free(g_bytes);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),   cmocka_unit_test(test_left_recursion),
        cmocka_unit_test(test_grammar_features), cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_schema_features), cmocka_unit_test(test_generate_valid),
        cmocka_unit_test(test_schema_errors),  cmocka_unit_test(test_masks),
        cmocka_unit_test(test_mask_cache),     cmocka_unit_test(test_long_run),
        cmocka_unit_test(test_vocab_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
