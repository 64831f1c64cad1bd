/* libFuzzer target for the grammar engine.
 *
 * Input byte 0 picks the input kind: 's' a JSON schema (grammar_from_schema),
 * anything else grammar text (grammar_parse); the rest is the text.
 * Contract (grammar.h): parsing and compiling never crash, hang or leak on
 * any input; a compiled grammar's generated sentences are accepted by a
 * matcher, which is then complete; along the sentence, each next byte is in
 * the mask of a one-token-per-byte vocab; a schema's sentences are JSON
 * (jansson parses them back, except numbers beyond a double's range, which
 * JSON allows and jansson refuses).
 *
 *   make BUILD=build-fuzz FUZZ=1 build-fuzz/fuzz/fuzz_grammar
 *   build-fuzz/fuzz/fuzz_grammar -max_total_time=600 -timeout=30 tests/fuzz/corpus/grammar
 * Seeds: tests/fuzz/corpus/grammar/ (first byte 'g' grammar text, 's' schema). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "grammar/grammar.h"

#define CHECK(x) \
    do { \
        if (!(x)) { \
            fprintf(stderr, "fuzz_grammar: check failed: %s (line %d)\n", #x, __LINE__); \
            abort(); \
        } \
    } while (0)

#define MAX_SENTENCE 65536

static grammar_vocab *byte_vocab(void) {
    static grammar_vocab *v;
    if (v) return v;
    static char bytes[256];
    const char *p[257];
    size_t len[257];
    for (int i = 0; i < 256; i++) bytes[i] = (char)i, p[i] = bytes + i, len[i] = 1;
    p[256] = "", len[256] = 0;
    int32_t eog = 256;
    ryot_error err;
    CHECK(grammar_vocab_new(p, len, 257, &eog, 1, &v, &err) == RYOT_OK);
    return v;
}

static void check_sentence(const grammar *g, const char *s, size_t n) {
    grammar_matcher *m = NULL;
    ryot_error err;
    if (grammar_matcher_new(g, byte_vocab(), &m, &err) != RYOT_OK) return;
    uint32_t bits[(257 + 31) / 32];
    for (size_t i = 0; i < n; i++) {
        if (i < 256 && grammar_mask(m, bits) == RYOT_OK) {
            uint8_t b = (uint8_t)s[i];
            CHECK(bits[b >> 5] >> (b & 31) & 1);
        }
        CHECK(grammar_matcher_accept_bytes(m, s + i, 1));
    }
    CHECK(grammar_matcher_is_complete(m));
    if (grammar_mask(m, bits) == RYOT_OK) CHECK(bits[256 >> 5] & 1u << (256 & 31));
    CHECK(grammar_matcher_accept_token(m, 256));
    CHECK(grammar_matcher_is_finished(m));
    grammar_matcher_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    grammar *g = NULL;
    ryot_error err;
    bool schema = data[0] == 's';
    if (schema) {
        json_t *s = json_loadb(text, len, JSON_DECODE_ANY, NULL);
        if (!s) return 0;
        if (grammar_from_schema(s, &g, &err) != RYOT_OK) CHECK(err.msg[0]);
        json_decref(s);
    } else if (grammar_parse(text, len, &g, &err) != RYOT_OK) {
        CHECK(!strncmp(err.msg, "grammar", 7));
    }
    if (!g) return 0;
    for (uint64_t seed = 0; seed < 3; seed++) {
        size_t n = 0;
        char *s = grammar_generate(g, seed + size, 3 + (int)seed * 3, &n);
        if (!s) continue;
        if (n <= MAX_SENTENCE) {
            check_sentence(g, s, n);
            if (schema) {
                json_error_t je;
                json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
                CHECK(v || strstr(je.text, "overflow"));
                json_decref(v);
            }
        }
        free(s);
    }
    grammar_free(g);
    return 0;
}
