/* Writes the seed corpus for fuzz_gguf (small files made by the writer).
 * Not built by make; run by hand after a format change:
 *   cc -std=gnu11 -Isrc -D_GNU_SOURCE tests/fuzz/gguf_seeds.c src/gguf/gguf*.c src/core/error.c \
 *      src/core/types.c -o /tmp/gguf_seeds && /tmp/gguf_seeds tests/fuzz/corpus/gguf */
#include <stdio.h>
#include <stdlib.h>

#include "gguf/gguf.h"

static int save(gguf_writer *w, const char *dir, const char *name) {
    char path[4096];
    ryot_error err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ryot_status st = gguf_writer_write_file(w, path, &err);
    gguf_writer_free(w);
    if (st) fprintf(stderr, "%s: %s\n", path, err.msg);
    return st != RYOT_OK;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    int bad = 0;
    static const char *const toks[] = {"<s>", "</s>", "a", "", "\xe2\x96\x81the"};
    static const float scores[] = {0, 0, -1.5f, -2, -3};
    static const int32_t types[] = {3, 3, 1, 1, 1};
    static const char *const merges[] = {"a b", "\xc4\xa0 t"};

    /* every scalar type and a vocab, no tensors */
    gguf_writer *w = gguf_writer_new(3);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u8(w, "s.u8", 7);
    gguf_writer_set_i8(w, "s.i8", -7);
    gguf_writer_set_u16(w, "s.u16", 700);
    gguf_writer_set_i16(w, "s.i16", -700);
    gguf_writer_set_u32(w, "llama.context_length", 2048);
    gguf_writer_set_i32(w, "s.i32", -70000);
    gguf_writer_set_u64(w, "s.u64", 1ull << 40);
    gguf_writer_set_i64(w, "s.i64", -(1ll << 40));
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    gguf_writer_set_f64(w, "s.f64", 0.5);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 5);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 5);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 2);
    bad |= save(w, dir, "vocab.gguf");

    /* tensors of several types, v2, alignment 64 */
    w = gguf_writer_new(2);
    gguf_writer_set_str(w, "general.architecture", "gemma3");
    gguf_writer_set_u32(w, "general.alignment", 64);
    gguf_writer_add_tensor(w, "a", RYOT_TYPE_F32, 2, (uint64_t[]){4, 2}, NULL);
    gguf_writer_add_tensor(w, "b", RYOT_TYPE_Q4_0, 1, (uint64_t[]){32}, NULL);
    gguf_writer_add_tensor(w, "c", RYOT_TYPE_F16, 3, (uint64_t[]){3, 1, 2}, NULL);
    gguf_writer_add_tensor(w, "d", RYOT_TYPE_Q8_0, 4, (uint64_t[]){32, 1, 1, 1}, NULL);
    bad |= save(w, dir, "tensors.gguf");

    /* nested arrays to the depth limit, and mixed nesting */
    gguf_value lv[GGUF_MAX_NESTING];
    static const uint16_t leaf[] = {1, 2, 3};
    lv[GGUF_MAX_NESTING - 1] = (gguf_value){.type = GGUF_TYPE_ARRAY,
                                            .arr = {.type = GGUF_TYPE_UINT16, .n = 3, .raw = leaf}};
    for (int d = GGUF_MAX_NESTING - 2; d >= 0; d--)
        lv[d] = (gguf_value){.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_ARRAY, .n = 1, .vals = &lv[d + 1]}};
    gguf_str ss[] = {{2, "xy"}, {0, ""}};
    gguf_value mixed[] = {
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_STRING, .n = 2, .strs = ss}},
        {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_BOOL, .n = 0}},
    };
    gguf_value top = {.type = GGUF_TYPE_ARRAY, .arr = {.type = GGUF_TYPE_ARRAY, .n = 2, .vals = mixed}};
    w = gguf_writer_new(3);
    gguf_writer_set_value(w, "deep", &lv[0]);
    gguf_writer_set_value(w, "mixed", &top);
    gguf_writer_add_tensor(w, "t", RYOT_TYPE_Q4_K, 2, (uint64_t[]){256, 1}, NULL);
    bad |= save(w, dir, "nested.gguf");
    return bad;
}
