/* Model generator and quantizer (src/modeltools/): layout, metadata, values,
 * determinism, re-quantization round trips. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels.h"
#include "modeltools/modeltools.h"

typedef struct built {
    uint8_t *buf;
    size_t size;
    gguf_file *f;
} built;

static built gen(const modelgen_spec *spec) {
    built b = {0};
    ryot_error err = {0};
    modelgen_report rep;
    ryot_status st = modelgen_build(spec, &b.buf, &b.size, &rep, &err);
    if (st) fprintf(stderr, "modelgen_build: %s\n", err.msg);
    assert_int_equal(st, RYOT_OK);
    st = gguf_open_memory(b.buf, b.size, &b.f, &err);
    if (st) fprintf(stderr, "gguf_open_memory: %s\n", err.msg);
    assert_int_equal(st, RYOT_OK);
    return b;
}

static built requant(const gguf_file *in, const requant_opts *o, requant_stats *s) {
    built b = {0};
    ryot_error err = {0};
    ryot_status st = requant_build(in, o, &b.buf, &b.size, s, &err);
    if (st) fprintf(stderr, "requant_build: %s\n", err.msg);
    assert_int_equal(st, RYOT_OK);
    assert_int_equal(gguf_open_memory(b.buf, b.size, &b.f, &err), RYOT_OK);
    return b;
}

static void drop(built *b) {
    gguf_close(b->f);
    free(b->buf);
}

static uint32_t get_u32(const gguf_file *f, const char *key) {
    uint32_t v = 0;
    ryot_error err;
    if (gguf_get_u32(f, key, &v, &err)) fprintf(stderr, "%s: %s\n", key, err.msg);
    assert_int_equal(gguf_get_u32(f, key, &v, &err), RYOT_OK);
    return v;
}

static const gguf_tensor *tensor(const gguf_file *f, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) fprintf(stderr, "missing tensor %s\n", name);
    assert_non_null(t);
    return t;
}

static void assert_shape(const gguf_file *f, const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                         ryot_type type) {
    const gguf_tensor *t = tensor(f, name);
    assert_int_equal(t->n_dims, n_dims);
    assert_int_equal(t->ne[0], ne0);
    assert_int_equal(t->ne[1], ne1);
    assert_int_equal(t->type, type);
}

/* Dequantizes a whole tensor into a malloc'd float array. */
static float *dequant(const gguf_tensor *t) {
    uint64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3], row;
    assert_true(ryot_row_size(t->type, t->ne[0], &row));
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    for (uint64_t r = 0; r < n / t->ne[0]; r++)
        kernels_ref(t->type)->to_float((const uint8_t *)t->data + r * row, out + r * t->ne[0], (int64_t)t->ne[0]);
    return out;
}

static void test_parse_and_file_types(void **state) {
    (void)state;
    ryot_type t;
    assert_true(modeltools_parse_type("q8_0", &t) && t == RYOT_TYPE_Q8_0);
    assert_true(modeltools_parse_type("Q4_K_M", &t) && t == RYOT_TYPE_Q4_K);
    assert_true(modeltools_parse_type("Q5_K_S", &t) && t == RYOT_TYPE_Q5_K);
    assert_true(modeltools_parse_type("bf16", &t) && t == RYOT_TYPE_BF16);
    assert_false(modeltools_parse_type("Q2_K", &t));
    assert_false(modeltools_parse_type("IQ4_NL", &t));
    assert_false(modeltools_parse_type("Q4_K_X", &t));
    assert_false(modeltools_parse_type("", &t));
    assert_int_equal(modeltools_file_type(RYOT_TYPE_Q4_0), 2);
    assert_int_equal(modeltools_file_type(RYOT_TYPE_Q8_0), 7);
    assert_int_equal(modeltools_file_type(RYOT_TYPE_Q4_K), 15);
    assert_int_equal(modeltools_file_type(RYOT_TYPE_BF16), 32);
    assert_int_equal(modeltools_row_type(RYOT_TYPE_Q4_K, 512), RYOT_TYPE_Q4_K);
    assert_int_equal(modeltools_row_type(RYOT_TYPE_Q4_K, 640), RYOT_TYPE_Q5_0);
    assert_int_equal(modeltools_row_type(RYOT_TYPE_Q6_K, 576), RYOT_TYPE_Q8_0);
    assert_int_equal(modeltools_row_type(RYOT_TYPE_Q8_0, 48), RYOT_TYPE_F16);
    assert_int_equal(modeltools_row_type(RYOT_TYPE_F32, 7), RYOT_TYPE_F32);
}

static void test_llama_layout(void **state) {
    (void)state;
    modelgen_spec s;
    assert_true(modelgen_preset("tiny-llama", &s));
    built b = gen(&s);
    const gguf_file *f = b.f;
    gguf_str arch;
    ryot_error err;
    assert_int_equal(gguf_get_str(f, "general.architecture", &arch, &err), RYOT_OK);
    assert_true(gguf_str_eq(arch, "llama"));
    assert_int_equal(get_u32(f, "llama.embedding_length"), 256);
    assert_int_equal(get_u32(f, "llama.block_count"), 2);
    assert_int_equal(get_u32(f, "llama.feed_forward_length"), 512);
    assert_int_equal(get_u32(f, "llama.attention.head_count"), 4);
    assert_int_equal(get_u32(f, "llama.attention.head_count_kv"), 2);
    assert_int_equal(get_u32(f, "llama.context_length"), 512);
    assert_int_equal(get_u32(f, "llama.vocab_size"), 512);
    assert_int_equal(get_u32(f, "llama.rope.dimension_count"), 64);
    assert_int_equal(get_u32(f, "general.file_type"), 7);
    assert_null(gguf_find(f, "llama.attention.key_length")); /* head_dim = n_embd / n_head */
    float v;
    assert_int_equal(gguf_get_f32(f, "llama.rope.freq_base", &v, &err), RYOT_OK);
    assert_float_equal(v, 10000.0f, 0);
    assert_int_equal(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &v, &err), RYOT_OK);
    assert_float_equal(v, 1e-5f, 0);

    assert_int_equal(f->n_tensors, 1 + 2 * 9 + 2);
    assert_shape(f, "token_embd.weight", 2, 256, 512, RYOT_TYPE_Q8_0);
    assert_shape(f, "blk.1.attn_norm.weight", 1, 256, 1, RYOT_TYPE_F32);
    assert_shape(f, "blk.1.attn_q.weight", 2, 256, 256, RYOT_TYPE_Q8_0);
    assert_shape(f, "blk.1.attn_k.weight", 2, 256, 128, RYOT_TYPE_Q8_0);
    assert_shape(f, "blk.1.attn_v.weight", 2, 256, 128, RYOT_TYPE_Q8_0);
    assert_shape(f, "blk.1.attn_output.weight", 2, 256, 256, RYOT_TYPE_Q8_0);
    assert_shape(f, "blk.1.ffn_norm.weight", 1, 256, 1, RYOT_TYPE_F32);
    assert_shape(f, "blk.1.ffn_gate.weight", 2, 256, 512, RYOT_TYPE_Q8_0);
    assert_shape(f, "blk.1.ffn_up.weight", 2, 256, 512, RYOT_TYPE_Q8_0);
    assert_shape(f, "blk.1.ffn_down.weight", 2, 512, 256, RYOT_TYPE_Q8_0);
    assert_shape(f, "output_norm.weight", 1, 256, 1, RYOT_TYPE_F32);
    assert_shape(f, "output.weight", 2, 256, 512, RYOT_TYPE_Q8_0); /* tiny-llama is untied */

    /* synthetic vocab: bytes, merges, BOS, EOS, unused */
    const gguf_array *toks;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks, &err), RYOT_OK);
    assert_int_equal(toks->n, 512);
    assert_true(gguf_str_eq(toks->strs['a'], "a"));
    assert_true(gguf_str_eq(toks->strs[' '], "\xc4\xa0")); /* U+0120 'Ġ' */
    assert_true(gguf_str_eq(toks->strs[0], "\xc4\x80"));   /* U+0100 */
    assert_true(gguf_str_eq(toks->strs[256 + 6], "\xc4\xa0the"));
    uint32_t bos = get_u32(f, "tokenizer.ggml.bos_token_id"), eos = get_u32(f, "tokenizer.ggml.eos_token_id");
    assert_int_equal(bos, modelgen_synthetic_vocab_size() - 2);
    assert_int_equal(eos, modelgen_synthetic_vocab_size() - 1);
    assert_true(gguf_str_eq(toks->strs[bos], "<|begin_of_text|>"));
    drop(&b);
}

static void test_qwen2_gemma3_layout(void **state) {
    (void)state;
    modelgen_spec s;
    assert_true(modelgen_preset("tiny-qwen2", &s));
    built b = gen(&s);
    assert_shape(b.f, "blk.0.attn_q.bias", 1, 256, 1, RYOT_TYPE_F32);
    assert_shape(b.f, "blk.0.attn_k.bias", 1, 128, 1, RYOT_TYPE_F32);
    assert_shape(b.f, "blk.0.attn_v.bias", 1, 128, 1, RYOT_TYPE_F32);
    assert_null(gguf_find_tensor(b.f, "output.weight")); /* tied */
    assert_int_equal(get_u32(b.f, "qwen2.block_count"), 2);
    drop(&b);

    assert_true(modelgen_preset("tiny-gemma3", &s));
    b = gen(&s);
    assert_int_equal(get_u32(b.f, "gemma3.attention.key_length"), 128);
    assert_int_equal(get_u32(b.f, "gemma3.attention.value_length"), 128);
    assert_int_equal(get_u32(b.f, "gemma3.attention.sliding_window"), 64);
    assert_int_equal(get_u32(b.f, "gemma3.block_count"), 6);
    assert_shape(b.f, "blk.5.attn_q.weight", 2, 256, 512, RYOT_TYPE_Q8_0);
    assert_shape(b.f, "blk.5.attn_k.weight", 2, 256, 128, RYOT_TYPE_Q8_0);
    assert_shape(b.f, "blk.5.attn_output.weight", 2, 512, 256, RYOT_TYPE_Q8_0);
    assert_shape(b.f, "blk.5.attn_q_norm.weight", 1, 128, 1, RYOT_TYPE_F32);
    assert_shape(b.f, "blk.5.attn_k_norm.weight", 1, 128, 1, RYOT_TYPE_F32);
    assert_shape(b.f, "blk.5.post_attention_norm.weight", 1, 256, 1, RYOT_TYPE_F32);
    assert_shape(b.f, "blk.5.post_ffw_norm.weight", 1, 256, 1, RYOT_TYPE_F32);
    assert_int_equal(b.f->n_tensors, 1 + 6 * 13 + 1);
    drop(&b);
}

/* F32 weights: norms exactly 1; other weights mean ~0, std ~init_std, bounded. */
static void test_values(void **state) {
    (void)state;
    modelgen_spec s;
    assert_true(modelgen_preset("tiny-qwen2", &s));
    s.type = RYOT_TYPE_F32;
    s.init_std = 0.05f;
    built b = gen(&s);
    const gguf_tensor *n = tensor(b.f, "blk.0.ffn_norm.weight");
    for (uint64_t i = 0; i < n->ne[0]; i++) assert_float_equal(((const float *)n->data)[i], 1.0f, 0);
    const gguf_tensor *w = tensor(b.f, "blk.0.ffn_up.weight");
    uint64_t cnt = w->ne[0] * w->ne[1];
    double sum = 0, sq = 0, amax = 0;
    for (uint64_t i = 0; i < cnt; i++) {
        double x = ((const float *)w->data)[i];
        sum += x;
        sq += x * x;
        if (fabs(x) > amax) amax = fabs(x);
    }
    double mean = sum / cnt, sd = sqrt(sq / cnt - mean * mean);
    /* 131072 samples: the standard error of the mean is std/362; of the std ~std/512 */
    assert_true(fabs(mean) < 0.05 * 5 / 362.0);
    assert_true(fabs(sd - 0.05) < 0.05 * 0.02);
    assert_true(amax <= 0.05 * 3.4641017 + 1e-6);
    /* biases are random too, not zero */
    const gguf_tensor *bias = tensor(b.f, "blk.1.attn_q.bias");
    assert_true(((const float *)bias->data)[0] != 0.0f);
    drop(&b);
}

static void test_determinism(void **state) {
    (void)state;
    modelgen_spec s;
    assert_true(modelgen_preset("tiny-llama", &s));
    s.type = RYOT_TYPE_Q4_K;
    s.seed = 7;
    built a = gen(&s), b = gen(&s);
    assert_int_equal(a.size, b.size);
    assert_memory_equal(a.buf, b.buf, a.size);
    s.seed = 8;
    built c = gen(&s);
    assert_int_equal(a.size, c.size);
    const gguf_tensor *ta = tensor(a.f, "blk.0.attn_q.weight"), *tc = tensor(c.f, "blk.0.attn_q.weight");
    assert_true(memcmp(ta->data, tc->data, ta->size) != 0);
    /* tensors draw from their own streams: the same shape under two names differs */
    const gguf_tensor *tg = tensor(a.f, "blk.0.ffn_gate.weight"), *tu = tensor(a.f, "blk.0.ffn_up.weight");
    assert_true(memcmp(tg->data, tu->data, tg->size) != 0);
    drop(&a);
    drop(&b);
    drop(&c);
}

/* K-types on rows that are not multiples of 256 fall back like llama.cpp. */
static void test_fallback_types(void **state) {
    (void)state;
    modelgen_spec s;
    assert_true(modelgen_preset("tiny-llama", &s));
    s.n_embd = 96; /* rows of 96: Q4_K -> Q5_0 */
    s.n_head = 2;
    s.n_head_kv = 1;
    s.type = RYOT_TYPE_Q4_K;
    ryot_error err;
    modelgen_report rep;
    uint8_t *buf;
    size_t size;
    assert_int_equal(modelgen_build(&s, &buf, &size, &rep, &err), RYOT_OK);
    gguf_file *f;
    assert_int_equal(gguf_open_memory(buf, size, &f, &err), RYOT_OK);
    assert_shape(f, "blk.0.attn_q.weight", 2, 96, 96, RYOT_TYPE_Q5_0);
    assert_shape(f, "blk.0.ffn_down.weight", 2, 512, 96, RYOT_TYPE_Q4_K);
    assert_int_equal(get_u32(f, "llama.rope.dimension_count"), 48);
    assert_true(rep.n_fallback > 0);
    gguf_close(f);
    free(buf);
}

static void test_bad_specs(void **state) {
    (void)state;
    modelgen_spec s;
    ryot_error err = {0};
    uint8_t *buf = (uint8_t *)1;
    size_t size = 1;
    assert_true(modelgen_preset("tiny-llama", &s));
    s.n_head_kv = 3;
    assert_int_equal(modelgen_build(&s, &buf, &size, NULL, &err), RYOT_ERR_INVALID);
    assert_null(buf);
    assert_non_null(strstr(err.msg, "n_head_kv"));

    assert_true(modelgen_preset("tiny-llama", &s));
    s.n_vocab = 100;
    assert_int_equal(modelgen_build(&s, &buf, &size, NULL, &err), RYOT_ERR_INVALID);
    assert_non_null(strstr(err.msg, "n_vocab"));

    assert_true(modelgen_preset("tiny-llama", &s));
    s.n_layer = 0;
    assert_int_equal(modelgen_build(&s, &buf, &size, NULL, &err), RYOT_ERR_INVALID);

    assert_true(modelgen_preset("tiny-llama", &s));
    s.n_embd = 250; /* not a multiple of 4 heads */
    assert_int_equal(modelgen_build(&s, &buf, &size, NULL, &err), RYOT_ERR_INVALID);

    assert_true(modelgen_preset("tiny-llama", &s));
    s.type = RYOT_TYPE_Q2_K;
    assert_int_equal(modelgen_build(&s, &buf, &size, NULL, &err), RYOT_ERR_UNSUPPORTED);

    assert_true(modelgen_preset("tiny-gemma3", &s));
    s.sliding_window = 0;
    assert_int_equal(modelgen_build(&s, &buf, &size, NULL, &err), RYOT_ERR_INVALID);

    assert_false(modelgen_preset("no-such-preset", &s));
    int n = 0;
    for (const char *const *p = modelgen_preset_names(); *p; p++, n++) assert_true(modelgen_preset(*p, &s));
    assert_true(n >= 7);
}

/* --vocab-from: the tokenizer keys come over and n_vocab follows them. */
static void test_vocab_from(void **state) {
    (void)state;
    gguf_writer *w = gguf_writer_new(3);
    const char *toks[300];
    char names[300][16];
    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        toks[i] = names[i];
    }
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 300);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 7);
    uint8_t *vbuf;
    size_t vsize;
    ryot_error err;
    assert_int_equal(gguf_writer_finish(w, &vbuf, &vsize, &err), RYOT_OK);
    gguf_writer_free(w);
    gguf_file *vf;
    assert_int_equal(gguf_open_memory(vbuf, vsize, &vf, &err), RYOT_OK);

    modelgen_spec s;
    assert_true(modelgen_preset("tiny-llama", &s));
    s.vocab_from = vf;
    s.n_vocab = 0;
    built b = gen(&s);
    assert_shape(b.f, "token_embd.weight", 2, 256, 300, RYOT_TYPE_Q8_0);
    assert_int_equal(get_u32(b.f, "tokenizer.ggml.bos_token_id"), 7);
    assert_int_equal(get_u32(b.f, "llama.vocab_size"), 300);
    gguf_str model;
    assert_int_equal(gguf_get_str(b.f, "tokenizer.ggml.model", &model, &err), RYOT_OK);
    assert_true(gguf_str_eq(model, "llama"));
    assert_null(gguf_find(b.f, "tokenizer.ggml.merges"));
    drop(&b);

    s.n_vocab = 512; /* disagrees with the tokenizer */
    uint8_t *buf;
    size_t size;
    assert_int_equal(modelgen_build(&s, &buf, &size, NULL, &err), RYOT_ERR_INVALID);
    gguf_close(vf);
    free(vbuf);
}

/* Q8_0 -> F32 is exact: every tensor equals to_float of the original; and
 * F32 -> Q8_0 gives back the original bytes (the Q8_0 grid is a fixed point). */
static void test_requant_round_trip(void **state) {
    (void)state;
    modelgen_spec s;
    assert_true(modelgen_preset("tiny-qwen2", &s));
    built q8 = gen(&s);
    requant_stats st;
    requant_opts o = {.type = RYOT_TYPE_F32};
    built f32 = requant(q8.f, &o, &st);
    assert_int_equal(get_u32(f32.f, "general.file_type"), 0);
    assert_int_equal(f32.f->n_tensors, q8.f->n_tensors);
    assert_int_equal(st.n_kept, 0);
    uint64_t before = 0, after = 0;
    for (uint64_t i = 0; i < q8.f->n_tensors; i++) {
        before += q8.f->tensors[i].size;
        after += f32.f->tensors[i].size;
    }
    assert_int_equal(st.bytes_before, before);
    assert_int_equal(st.bytes_after, after);
    uint32_t n2d = 0;
    for (uint64_t i = 0; i < q8.f->n_tensors; i++) {
        const gguf_tensor *a = &q8.f->tensors[i], *b = &f32.f->tensors[i];
        assert_int_equal(a->name.len, b->name.len);
        assert_memory_equal(a->name.data, b->name.data, a->name.len);
        assert_int_equal(b->type, RYOT_TYPE_F32);
        float *x = dequant(a);
        assert_memory_equal(x, b->data, b->size);
        free(x);
        n2d += a->n_dims == 2;
    }
    assert_int_equal(st.n_converted, n2d);
    assert_true(st.bytes_after > st.bytes_before);

    o.type = RYOT_TYPE_Q8_0;
    built back = requant(f32.f, &o, &st);
    assert_int_equal(get_u32(back.f, "general.file_type"), 7);
    for (uint64_t i = 0; i < q8.f->n_tensors; i++) {
        const gguf_tensor *a = &q8.f->tensors[i], *b = &back.f->tensors[i];
        assert_int_equal(a->type, b->type);
        assert_memory_equal(a->data, b->data, a->size);
    }
    /* metadata is carried over, tokenizer included */
    assert_int_equal(back.f->n_kv, q8.f->n_kv);
    assert_int_equal(get_u32(back.f, "qwen2.embedding_length"), 256);
    const gguf_array *toks;
    ryot_error err;
    assert_int_equal(gguf_get_arr(back.f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks, &err), RYOT_OK);
    assert_int_equal(toks->n, 512);
    drop(&q8);
    drop(&f32);
    drop(&back);
}

/* Lossy targets stay within their quantization error of the source
 * (named tolerance: max |error| <= 0.25 * row max for 4-bit K, relative
 * RMS error <= 0.12 at 4 bits). */
static void test_requant_lossy(void **state) {
    (void)state;
    modelgen_spec s;
    assert_true(modelgen_preset("tiny-llama", &s));
    s.type = RYOT_TYPE_F32;
    built src = gen(&s);
    const ryot_type targets[] = {RYOT_TYPE_Q4_0, RYOT_TYPE_Q4_K, RYOT_TYPE_Q6_K, RYOT_TYPE_F16, RYOT_TYPE_BF16};
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++) {
        requant_opts o = {.type = targets[k], .keep_output = true};
        requant_stats st;
        built q = requant(src.f, &o, &st);
        assert_int_equal(st.n_kept, 1); /* output.weight */
        assert_int_equal(tensor(q.f, "output.weight")->type, RYOT_TYPE_F32);
        const gguf_tensor *a = tensor(src.f, "blk.1.ffn_down.weight"), *b = tensor(q.f, "blk.1.ffn_down.weight");
        assert_int_equal(b->type, targets[k]);
        float *y = dequant(b);
        const float *x = a->data;
        double err2 = 0, ref2 = 0;
        for (uint64_t i = 0; i < a->ne[0] * a->ne[1]; i++) {
            err2 += (double)(x[i] - y[i]) * (x[i] - y[i]);
            ref2 += (double)x[i] * x[i];
        }
        double rel = sqrt(err2 / ref2);
        assert_true(rel < 0.12);
        if (targets[k] == RYOT_TYPE_F16 || targets[k] == RYOT_TYPE_BF16) assert_true(rel < 0.005);
        free(y);
        drop(&q);
    }
    drop(&src);
}

typedef struct notes {
    int n;
    char last[256];
} notes;

static void collect(void *ctx, const char *msg) {
    notes *n = ctx;
    n->n++;
    snprintf(n->last, sizeof n->last, "%s", msg);
}

/* Rows that do not fit the target's blocks stay as they are, with a note. */
static void test_requant_kept_rows(void **state) {
    (void)state;
    modelgen_spec s;
    assert_true(modelgen_preset("tiny-llama", &s));
    s.n_embd = 96;
    s.n_head = 2;
    s.n_head_kv = 1;
    s.n_layer = 1;
    built src = gen(&s); /* Q8_0 */
    notes n = {0};
    requant_opts o = {.type = RYOT_TYPE_Q6_K, .note = collect, .note_ctx = &n};
    requant_stats st;
    built q = requant(src.f, &o, &st);
    /* rows of 96: token_embd, q, k, v, o, gate, up, output; ffn_down (rows of 512) converts */
    assert_int_equal(st.n_kept, 8);
    assert_int_equal(st.n_converted, 1);
    assert_int_equal(n.n, 8);
    assert_non_null(strstr(n.last, "not a multiple"));
    assert_int_equal(tensor(q.f, "blk.0.attn_q.weight")->type, RYOT_TYPE_Q8_0);
    assert_memory_equal(tensor(q.f, "blk.0.attn_q.weight")->data, tensor(src.f, "blk.0.attn_q.weight")->data,
                        tensor(src.f, "blk.0.attn_q.weight")->size);
    assert_int_equal(tensor(q.f, "blk.0.ffn_down.weight")->type, RYOT_TYPE_Q6_K);
    assert_int_equal(get_u32(q.f, "general.file_type"), 18);
    drop(&q);
    drop(&src);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_file_types),
        cmocka_unit_test(test_llama_layout),
        cmocka_unit_test(test_qwen2_gemma3_layout),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_fallback_types),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_vocab_from),
        cmocka_unit_test(test_requant_round_trip),
        cmocka_unit_test(test_requant_lossy),
        cmocka_unit_test(test_requant_kept_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
