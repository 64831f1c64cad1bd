#include "common/tiny_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"

tiny_spec tiny_spec_default(const char *arch) {
    tiny_spec s = {0};
    s.arch = arch;
    s.n_embd = 64;
    s.n_layer = 2;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.head_dim = 16;
    s.n_ff = 96;
    s.n_vocab = 80;
    s.n_ctx = 256;
    s.rope_base = 10000.0f;
    s.type = RYOT_TYPE_F32;
    s.seed = 1;
    s.std = 0.08f;
    if (!strcmp(arch, "gemma3")) {
        s.n_layer = 7; /* layers 0-4 and 6 sliding, 5 global */
        s.n_head = 2;
        s.n_head_kv = 1;
        s.head_dim = 32;
        s.n_ff = 128;
        s.sliding_window = 5;
        s.rope_base = 1000000.0f;
        s.tied = true;
    }
    return s;
}

static float uniform(ryot_rng *r) { return (float)((ryot_rng_next(r) >> 11) * (1.0 / 9007199254740992.0)); }

/* Adds a tensor of ne0 x ne1 (ne1 = 1: vector) with values center + std*u,
 * u uniform with unit variance; matrices in s->type. */
static void add(gguf_writer *w, const tiny_spec *s, ryot_rng *r, const char *name, int ne0, int ne1, float center,
                float std) {
    if (s->omit_tensor && !strcmp(s->omit_tensor, name)) return;
    if (s->bad_shape && !strcmp(s->bad_shape, name)) ne1 += 1;
    size_t n = (size_t)ne0 * ne1;
    float *v = malloc(n * sizeof *v);
    if (!v) abort();
    for (size_t i = 0; i < n; i++) v[i] = center + std * 3.4641016f * (uniform(r) - 0.5f);
    bool matrix = ne1 > 1;
    uint64_t ne[2] = {(uint64_t)ne0, (uint64_t)ne1};
    if (!matrix || s->type == RYOT_TYPE_F32) {
        gguf_writer_add_tensor(w, name, RYOT_TYPE_F32, matrix ? 2 : 1, ne, v);
    } else {
        uint64_t rb;
        if (!ryot_row_size(s->type, (uint64_t)ne0, &rb)) {
            fprintf(stderr, "tiny_model: %s row %d does not fit %s\n", name, ne0, ryot_type_name(s->type));
            abort();
        }
        uint8_t *q = malloc(rb * (size_t)ne1);
        if (!q) abort();
        const kernel_traits *kt = kernels_ref(s->type);
        for (int i = 0; i < ne1; i++) kt->from_float(v + (size_t)i * ne0, q + rb * (size_t)i, ne0);
        gguf_writer_add_tensor(w, name, s->type, 2, ne, q);
        free(q);
    }
    free(v);
}

static void key_u32(gguf_writer *w, const tiny_spec *s, const char *key, uint32_t v) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", s->arch, key);
    if (s->omit_key && !strcmp(s->omit_key, full)) return;
    gguf_writer_set_u32(w, full, v);
}

static void key_f32(gguf_writer *w, const tiny_spec *s, const char *key, float v) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", s->arch, key);
    if (s->omit_key && !strcmp(s->omit_key, full)) return;
    gguf_writer_set_f32(w, full, v);
}

uint8_t *tiny_model_build(const tiny_spec *s, size_t *size) {
    kernels_init(KERNEL_ISA_AUTO);
    gguf_writer *w = gguf_writer_new(3);
    if (!w) abort();
    const bool gemma = !strcmp(s->arch, "gemma3"), qwen = !strcmp(s->arch, "qwen2");
    if (!s->omit_key || strcmp(s->omit_key, "general.architecture")) gguf_writer_set_str(w, "general.architecture", s->arch);
    gguf_writer_set_str(w, "general.name", "tiny test model");
    key_u32(w, s, "context_length", (uint32_t)s->n_ctx);
    key_u32(w, s, "embedding_length", (uint32_t)s->n_embd);
    key_u32(w, s, "block_count", (uint32_t)s->n_layer);
    key_u32(w, s, "feed_forward_length", (uint32_t)s->n_ff);
    key_u32(w, s, "attention.head_count", (uint32_t)s->n_head);
    key_u32(w, s, "attention.head_count_kv", (uint32_t)s->n_head_kv);
    key_u32(w, s, "attention.key_length", (uint32_t)s->head_dim);
    key_u32(w, s, "attention.value_length", (uint32_t)s->head_dim);
    key_f32(w, s, "attention.layer_norm_rms_epsilon", 1e-5f);
    key_f32(w, s, "rope.freq_base", s->rope_base);
    if (gemma) key_u32(w, s, "attention.sliding_window", (uint32_t)s->sliding_window);
    if (s->rope_scale > 0.0f) {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", s->arch);
        gguf_writer_set_str(w, key, "linear");
        key_f32(w, s, "rope.scaling.factor", s->rope_scale);
    }
    if (s->extra_key) gguf_writer_set_u32(w, s->extra_key, s->extra_val);

    ryot_rng r;
    ryot_rng_seed(&r, s->seed);
    const int E = s->n_embd, Q = s->n_head * s->head_dim, K = s->n_head_kv * s->head_dim, F = s->n_ff;
    add(w, s, &r, "token_embd.weight", E, s->n_vocab, 0.0f, gemma ? 0.05f : 0.5f);
    add(w, s, &r, "output_norm.weight", E, 1, 1.0f, 0.1f);
    if (s->rope_freqs) add(w, s, &r, "rope_freqs.weight", s->head_dim / 2, 1, 4.0f, 2.0f); /* divisors ~1..7.5 */
    if (!s->tied) add(w, s, &r, "output.weight", E, s->n_vocab, 0.0f, s->std);
    char name[96];
    for (int il = 0; il < s->n_layer; il++) {
#define N(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, il), name)
        add(w, s, &r, N("attn_norm.weight"), E, 1, 1.0f, 0.1f);
        add(w, s, &r, N("attn_q.weight"), E, Q, 0.0f, s->std);
        add(w, s, &r, N("attn_k.weight"), E, K, 0.0f, s->std);
        add(w, s, &r, N("attn_v.weight"), E, K, 0.0f, s->std);
        add(w, s, &r, N("attn_output.weight"), Q, E, 0.0f, s->std);
        if (qwen) {
            add(w, s, &r, N("attn_q.bias"), Q, 1, 0.0f, 0.2f);
            add(w, s, &r, N("attn_k.bias"), K, 1, 0.0f, 0.2f);
            add(w, s, &r, N("attn_v.bias"), K, 1, 0.0f, 0.2f);
        }
        if (gemma) {
            add(w, s, &r, N("attn_q_norm.weight"), s->head_dim, 1, 1.0f, 0.1f);
            add(w, s, &r, N("attn_k_norm.weight"), s->head_dim, 1, 1.0f, 0.1f);
            add(w, s, &r, N("post_attention_norm.weight"), E, 1, 1.0f, 0.1f);
            add(w, s, &r, N("post_ffw_norm.weight"), E, 1, 1.0f, 0.1f);
        }
        add(w, s, &r, N("ffn_norm.weight"), E, 1, 1.0f, 0.1f);
        add(w, s, &r, N("ffn_gate.weight"), E, F, 0.0f, s->std);
        add(w, s, &r, N("ffn_up.weight"), E, F, 0.0f, s->std);
        add(w, s, &r, N("ffn_down.weight"), F, E, 0.0f, s->std);
#undef N
    }
    uint8_t *buf = NULL;
    ryot_error err = {0};
    if (gguf_writer_finish(w, &buf, size, &err)) {
        fprintf(stderr, "tiny_model: %s\n", err.msg);
        abort();
    }
    gguf_writer_free(w);
    return buf;
}
