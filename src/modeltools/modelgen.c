/* Random-weight GGUF models of the llama, qwen2 and gemma3 architectures.
 *
 * Names, shapes (ne[0] = row length = input dimension) and metadata keys
 * follow llama.cpp's converted files, e.g. SmolLM2-135M (llama) and
 * gemma-3-270m (gemma3):
 *   token_embd.weight          (n_embd, n_vocab)
 *   blk.N.attn_norm.weight     (n_embd)
 *   blk.N.attn_q.weight        (n_embd, n_head*head_dim)     [+ .bias (n_head*head_dim): qwen2]
 *   blk.N.attn_k.weight        (n_embd, n_head_kv*head_dim)  [+ .bias: qwen2]
 *   blk.N.attn_v.weight        (n_embd, n_head_kv*head_dim)  [+ .bias: qwen2]
 *   blk.N.attn_q_norm.weight   (head_dim)                    gemma3
 *   blk.N.attn_k_norm.weight   (head_dim)                    gemma3
 *   blk.N.attn_output.weight   (n_head*head_dim, n_embd)
 *   blk.N.post_attention_norm.weight (n_embd)                gemma3
 *   blk.N.ffn_norm.weight      (n_embd)
 *   blk.N.ffn_gate.weight      (n_embd, n_ff)
 *   blk.N.ffn_up.weight        (n_embd, n_ff)
 *   blk.N.ffn_down.weight      (n_ff, n_embd)
 *   blk.N.post_ffw_norm.weight (n_embd)                      gemma3
 *   output_norm.weight         (n_embd)
 *   output.weight              (n_embd, n_vocab)             untied only
 * Norm weights are 1 (Gemma's GGUF norms already include its "1 +"), so the
 * forward pass of a random model stays finite; other weights and biases are
 * ~N(0, init_std^2).  Every tensor draws from its own stream, seeded by the
 * model seed and the tensor's name, and quantizes with the reference
 * from_float, so a spec gives the same file on every machine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/kernels.h"
#include "modeltools/modeltools_impl.h"

/* ---------------------------------------------------------------- presets */

typedef struct preset {
    const char *name;
    modelgen_spec spec;
} preset;

#define SPEC(...) {.type = RYOT_TYPE_Q8_0, .init_std = 0.02f, __VA_ARGS__}

static const preset presets[] = {
    {"llama3-1b", SPEC(.arch = MODELGEN_LLAMA, .name = "ryot random llama3-1b", .n_embd = 2048, .n_layer = 16,
                       .n_head = 32, .n_head_kv = 8, .n_ff = 8192, .n_vocab = 128256, .n_ctx = 131072,
                       .rope_base = 500000.0f, .rms_eps = 1e-5f, .tied = true)},
    {"smollm2-135m", SPEC(.arch = MODELGEN_LLAMA, .name = "ryot random smollm2-135m", .n_embd = 576, .n_layer = 30,
                          .n_head = 9, .n_head_kv = 3, .n_ff = 1536, .n_vocab = 49152, .n_ctx = 8192,
                          .rope_base = 100000.0f, .rms_eps = 1e-5f, .tied = true)},
    {"qwen2.5-0.5b", SPEC(.arch = MODELGEN_QWEN2, .name = "ryot random qwen2.5-0.5b", .n_embd = 896, .n_layer = 24,
                          .n_head = 14, .n_head_kv = 2, .n_ff = 4864, .n_vocab = 151936, .n_ctx = 32768,
                          .rope_base = 1000000.0f, .rms_eps = 1e-6f, .tied = true)},
    {"gemma3-270m", SPEC(.arch = MODELGEN_GEMMA3, .name = "ryot random gemma3-270m", .n_embd = 640, .n_layer = 18,
                         .n_head = 4, .n_head_kv = 1, .n_ff = 2048, .n_vocab = 262144, .n_ctx = 32768,
                         .head_dim = 256, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .sliding_window = 512,
                         .tied = true)},
    /* tiny: every row length a multiple of 256, so every type applies */
    {"tiny-llama", SPEC(.arch = MODELGEN_LLAMA, .name = "ryot random tiny-llama", .n_embd = 256, .n_layer = 2,
                        .n_head = 4, .n_head_kv = 2, .n_ff = 512, .n_vocab = 512, .n_ctx = 512,
                        .rope_base = 10000.0f, .rms_eps = 1e-5f, .tied = false)},
    {"tiny-qwen2", SPEC(.arch = MODELGEN_QWEN2, .name = "ryot random tiny-qwen2", .n_embd = 256, .n_layer = 2,
                        .n_head = 4, .n_head_kv = 2, .n_ff = 512, .n_vocab = 512, .n_ctx = 512,
                        .rope_base = 1000000.0f, .rms_eps = 1e-6f, .tied = true)},
    /* 6 layers: 5 local + 1 global; head_dim 128 != n_embd / n_head as in the real model */
    {"tiny-gemma3", SPEC(.arch = MODELGEN_GEMMA3, .name = "ryot random tiny-gemma3", .n_embd = 256, .n_layer = 6,
                         .n_head = 4, .n_head_kv = 1, .n_ff = 512, .n_vocab = 512, .n_ctx = 512, .head_dim = 128,
                         .rope_base = 1000000.0f, .rms_eps = 1e-6f, .sliding_window = 64, .tied = true)},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

bool modelgen_preset(const char *name, modelgen_spec *out) {
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(name, presets[i].name)) {
            *out = presets[i].spec;
            return true;
        }
    return false;
}

const char *const *modelgen_preset_names(void) {
    static const char *names[N_PRESETS + 1];
    for (size_t i = 0; i < N_PRESETS; i++) names[i] = presets[i].name;
    names[N_PRESETS] = NULL;
    return names;
}

static const char *const arch_names[] = {
    [MODELGEN_LLAMA] = "llama",
    [MODELGEN_QWEN2] = "qwen2",
    [MODELGEN_GEMMA3] = "gemma3",
};

const char *modelgen_arch_name(modelgen_arch a) {
    return (unsigned)a < sizeof arch_names / sizeof arch_names[0] ? arch_names[a] : "?";
}

bool modelgen_parse_arch(const char *name, modelgen_arch *out) {
    for (size_t i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++)
        if (!strcmp(name, arch_names[i])) {
            *out = (modelgen_arch)i;
            return true;
        }
    return false;
}

/* ---------------------------------------------------------------- synthetic vocab
 * Byte-level BPE ("gpt2"): one token per byte, spelled with GPT-2's
 * byte-to-code-point map (printable Latin-1 bytes stand for themselves, the
 * others map to U+0100 upwards in byte order), a few merges of common English
 * pairs, then BOS and EOS; ids past those are unused tokens. */

static const char *const synth_merges[] = {
    "Ġ t", "Ġ a", "h e", "i n", "r e", "o n", "Ġt he", "e r", "Ġ s", "a t", "Ġ w", "Ġ o",
    "e n", "Ġ c", "i t", "i s", "a n", "o r", "e s", "Ġ b", "e d", "Ġ f", "in g", "Ġ p",
    "o u", "Ġa n", "a l", "a r", "Ġt o", "Ġ m", "Ġo f", "Ġ in", "Ġ d", "Ġ h", "Ġan d",
};
#define N_SYNTH_MERGES (sizeof synth_merges / sizeof synth_merges[0])
#define SYNTH_BOS "<|begin_of_text|>"
#define SYNTH_EOS "<|end_of_text|>"

uint32_t modelgen_synthetic_vocab_size(void) { return 256 + (uint32_t)N_SYNTH_MERGES + 2; }

/* UTF-8 of GPT-2's code point for byte b into out (NUL-terminated, <= 3 bytes). */
static void byte_token(unsigned b, char out[4]) {
    unsigned cp;
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) {
        cp = b;
    } else {
        unsigned k = 0; /* rank of b among the non-printable bytes */
        for (unsigned c = 0; c < b; c++)
            if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

static ryot_status write_synthetic_vocab(gguf_writer *w, uint32_t n_vocab, ryot_error *err) {
    char **tokens = calloc(n_vocab, sizeof *tokens);
    int32_t *types = malloc(n_vocab * sizeof *types);
    ryot_status st = RYOT_OK;
    if (!tokens || !types) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory for a vocab of %u", n_vocab);
        goto done;
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        char tmp[32];
        uint32_t nm = (uint32_t)N_SYNTH_MERGES;
        if (i < 256) {
            byte_token(i, tmp);
            types[i] = 1; /* normal */
        } else if (i < 256 + nm) {
            const char *m = synth_merges[i - 256], *sp = strchr(m, ' ');
            snprintf(tmp, sizeof tmp, "%.*s%s", (int)(sp - m), m, sp + 1);
            types[i] = 1;
        } else if (i == 256 + nm) {
            snprintf(tmp, sizeof tmp, "%s", SYNTH_BOS);
            types[i] = 3; /* control */
        } else if (i == 257 + nm) {
            snprintf(tmp, sizeof tmp, "%s", SYNTH_EOS);
            types[i] = 3;
        } else {
            snprintf(tmp, sizeof tmp, "<|unused_%u|>", i);
            types[i] = 5; /* unused */
        }
        tokens[i] = strdup(tmp);
        if (!tokens[i]) {
            st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory for a vocab of %u", n_vocab);
            goto done;
        }
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2"); /* llama.cpp's name for the GPT-2 regex */
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, n_vocab);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n_vocab);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", synth_merges, N_SYNTH_MERGES);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 256 + (uint32_t)N_SYNTH_MERGES);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 257 + (uint32_t)N_SYNTH_MERGES);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
done:
    if (tokens)
        for (uint32_t i = 0; i < n_vocab; i++) free(tokens[i]);
    free(tokens);
    free(types);
    return st;
}

/* Copies every tokenizer.* key; returns the token count in *n_tokens. */
static ryot_status copy_vocab(gguf_writer *w, const gguf_file *src, uint64_t *n_tokens, ryot_error *err) {
    const gguf_array *toks;
    ryot_status st = gguf_get_arr(src, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks, err);
    if (st != RYOT_OK) {
        ryot_error_prefix(err, "--vocab-from: ");
        return st;
    }
    *n_tokens = toks->n;
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const gguf_kv *kv = &src->kv[i];
        static const char prefix[] = "tokenizer.";
        if (kv->key.len < sizeof prefix - 1 || memcmp(kv->key.data, prefix, sizeof prefix - 1)) continue;
        char key[256];
        if (kv->key.len >= sizeof key)
            return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "--vocab-from: key of %llu bytes is too long",
                             (unsigned long long)kv->key.len);
        memcpy(key, kv->key.data, kv->key.len);
        key[kv->key.len] = 0;
        gguf_writer_set_value(w, key, &kv->value);
    }
    return RYOT_OK;
}

/* ---------------------------------------------------------------- tensors */

typedef enum init_kind { INIT_NORMAL, INIT_ONES } init_kind;

typedef struct tdesc {
    char name[48];
    uint32_t n_dims;
    uint64_t ne[2];
    ryot_type type;
    init_kind init;
} tdesc;

typedef struct tlist {
    tdesc *t;
    uint32_t n;
    ryot_type want; /* type asked for 2-D tensors */
    uint32_t n_fallback;
} tlist;

static void add_1d(tlist *l, const char *name, uint64_t n, init_kind init) {
    tdesc *d = &l->t[l->n++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->n_dims = 1;
    d->ne[0] = n;
    d->ne[1] = 1;
    d->type = RYOT_TYPE_F32;
    d->init = init;
}

static void add_2d(tlist *l, const char *name, uint64_t cols, uint64_t rows) {
    tdesc *d = &l->t[l->n++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->n_dims = 2;
    d->ne[0] = cols;
    d->ne[1] = rows;
    d->type = modeltools_row_type(l->want, cols);
    d->init = INIT_NORMAL;
    if (d->type != l->want) l->n_fallback++;
}

static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Approximately normal: Irwin-Hall sum of four 16-bit uniforms from one
 * 64-bit draw, scaled to unit variance (bounded at +-2*sqrt(3)); plenty for
 * random weights and about 10x cheaper than Box-Muller. */
static inline float approx_normal(ryot_rng *r) {
    uint64_t x = ryot_rng_next(r);
    float s = (float)(x & 0xffff) + (float)((x >> 16) & 0xffff) + (float)((x >> 32) & 0xffff) + (float)(x >> 48);
    return ((s + 2.0f) * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

static ryot_status fill_tensor(const tdesc *d, uint8_t *dst, float *row, const modelgen_spec *spec,
                               ryot_error *err) {
    const kernel_traits *kt = kernels_ref(d->type);
    if (!kt->from_float) return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "no from_float for %s", ryot_type_name(d->type));
    uint64_t row_bytes;
    RYOT_ASSERT(ryot_row_size(d->type, d->ne[0], &row_bytes));
    uint64_t seed = spec->seed ^ name_hash(d->name);
    ryot_rng rng;
    ryot_rng_seed(&rng, ryot_splitmix64(&seed));
    for (uint64_t r = 0; r < d->ne[1]; r++) {
        for (uint64_t i = 0; i < d->ne[0]; i++)
            row[i] = d->init == INIT_ONES ? 1.0f : spec->init_std * approx_normal(&rng);
        kt->from_float(row, dst + r * row_bytes, (int64_t)d->ne[0]);
    }
    return RYOT_OK;
}

/* ---------------------------------------------------------------- build */

#define MAX_DIM (1u << 20)

static ryot_status check_spec(const modelgen_spec *s, uint32_t *head_dim, ryot_error *err) {
    if ((unsigned)s->arch > MODELGEN_GEMMA3) return ryot_fail(err, RYOT_ERR_INVALID, "unknown architecture %d", s->arch);
    const struct {
        const char *name;
        uint32_t v;
    } dims[] = {{"n_embd", s->n_embd}, {"n_layer", s->n_layer}, {"n_head", s->n_head}, {"n_head_kv", s->n_head_kv},
                {"n_ff", s->n_ff},     {"ctx", s->n_ctx}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v == 0 || dims[i].v > MAX_DIM)
            return ryot_fail(err, RYOT_ERR_INVALID, "%s %u is outside 1..%u", dims[i].name, dims[i].v, MAX_DIM);
    if (s->n_vocab > 16 * MAX_DIM)
        return ryot_fail(err, RYOT_ERR_INVALID, "n_vocab %u is above %u", s->n_vocab, 16 * MAX_DIM);
    if (s->n_head % s->n_head_kv)
        return ryot_fail(err, RYOT_ERR_INVALID, "n_head %u is not a multiple of n_head_kv %u", s->n_head,
                         s->n_head_kv);
    uint32_t hd = s->head_dim;
    if (hd == 0) {
        if (s->n_embd % s->n_head)
            return ryot_fail(err, RYOT_ERR_INVALID, "n_embd %u is not a multiple of n_head %u (give --head-dim)",
                             s->n_embd, s->n_head);
        hd = s->n_embd / s->n_head;
    }
    if (hd % 2 || hd > MAX_DIM) return ryot_fail(err, RYOT_ERR_INVALID, "head_dim %u must be even (rope)", hd);
    if ((uint64_t)hd * s->n_head > MAX_DIM)
        return ryot_fail(err, RYOT_ERR_INVALID, "n_head * head_dim is above %u", MAX_DIM);
    if (!(s->rope_base > 0.0f) || !isfinite(s->rope_base))
        return ryot_fail(err, RYOT_ERR_INVALID, "rope base %g must be > 0", s->rope_base);
    if (!(s->rms_eps > 0.0f) || !isfinite(s->rms_eps))
        return ryot_fail(err, RYOT_ERR_INVALID, "rms eps %g must be > 0", s->rms_eps);
    if (!(s->init_std > 0.0f) || !isfinite(s->init_std))
        return ryot_fail(err, RYOT_ERR_INVALID, "init std %g must be > 0", s->init_std);
    if (s->arch == MODELGEN_GEMMA3 && s->sliding_window == 0)
        return ryot_fail(err, RYOT_ERR_INVALID, "gemma3 needs a sliding window > 0");
    ryot_type t;
    if (!modeltools_parse_type(ryot_type_name(s->type), &t) || t != s->type || !kernels_ref(t)->from_float)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "cannot write tensors of type %s", ryot_type_name(s->type));
    *head_dim = hd;
    return RYOT_OK;
}

static void set_u32(gguf_writer *w, const char *arch, const char *key, uint32_t v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    gguf_writer_set_u32(w, k, v);
}

static void set_f32(gguf_writer *w, const char *arch, const char *key, float v) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    gguf_writer_set_f32(w, k, v);
}

ryot_status modelgen_build(const modelgen_spec *spec, uint8_t **buf, size_t *size, modelgen_report *report,
                           ryot_error *err) {
    *buf = NULL;
    *size = 0;
    uint32_t hd = 0;
    ryot_status st = check_spec(spec, &hd, err);
    if (st != RYOT_OK) return st;

    const char *arch = modelgen_arch_name(spec->arch);
    gguf_writer *w = gguf_writer_new(3);
    tlist tl = {.want = spec->type};
    gguf_file *f = NULL;
    float *row = NULL;
    uint8_t *b = NULL;
    size_t n = 0;

    char name[96];
    snprintf(name, sizeof name, "ryot random %s", arch);
    gguf_writer_set_str(w, "general.architecture", arch);
    gguf_writer_set_str(w, "general.type", "model");
    gguf_writer_set_str(w, "general.name", spec->name ? spec->name : name);
    gguf_writer_set_u32(w, "general.file_type", modeltools_file_type(spec->type));
    gguf_writer_set_u32(w, "general.quantization_version", 2);

    /* tokenizer first: with --vocab-from it decides n_vocab */
    uint32_t n_vocab = spec->n_vocab;
    if (spec->vocab_from) {
        uint64_t nt;
        st = copy_vocab(w, spec->vocab_from, &nt, err);
        if (st != RYOT_OK) goto fail;
        if (nt == 0 || nt > 16 * MAX_DIM) {
            st = ryot_fail(err, RYOT_ERR_INVALID, "--vocab-from: %llu tokens", (unsigned long long)nt);
            goto fail;
        }
        if (n_vocab != 0 && n_vocab != nt) {
            st = ryot_fail(err, RYOT_ERR_INVALID, "n_vocab %u differs from the %llu tokens of --vocab-from", n_vocab,
                           (unsigned long long)nt);
            goto fail;
        }
        n_vocab = (uint32_t)nt;
    } else {
        if (n_vocab < modelgen_synthetic_vocab_size()) {
            st = ryot_fail(err, RYOT_ERR_INVALID, "n_vocab %u is below the synthetic vocab's %u tokens", n_vocab,
                           modelgen_synthetic_vocab_size());
            goto fail;
        }
        st = write_synthetic_vocab(w, n_vocab, err);
        if (st != RYOT_OK) goto fail;
    }

    set_u32(w, arch, "context_length", spec->n_ctx);
    set_u32(w, arch, "embedding_length", spec->n_embd);
    set_u32(w, arch, "block_count", spec->n_layer);
    set_u32(w, arch, "feed_forward_length", spec->n_ff);
    set_u32(w, arch, "attention.head_count", spec->n_head);
    set_u32(w, arch, "attention.head_count_kv", spec->n_head_kv);
    set_f32(w, arch, "rope.freq_base", spec->rope_base);
    set_f32(w, arch, "attention.layer_norm_rms_epsilon", spec->rms_eps);
    if (spec->arch == MODELGEN_GEMMA3 || hd != spec->n_embd / spec->n_head) {
        set_u32(w, arch, "attention.key_length", hd);
        set_u32(w, arch, "attention.value_length", hd);
    }
    if (spec->arch == MODELGEN_LLAMA) {
        set_u32(w, arch, "vocab_size", n_vocab);
        set_u32(w, arch, "rope.dimension_count", hd);
    }
    if (spec->arch == MODELGEN_GEMMA3) set_u32(w, arch, "attention.sliding_window", spec->sliding_window);

    /* tensors */
    const uint32_t per_layer = 9 + (spec->arch == MODELGEN_QWEN2 ? 3 : 0) + (spec->arch == MODELGEN_GEMMA3 ? 4 : 0);
    tl.t = calloc((size_t)spec->n_layer * per_layer + 3, sizeof *tl.t);
    if (!tl.t) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const uint64_t q_dim = (uint64_t)spec->n_head * hd, kv_dim = (uint64_t)spec->n_head_kv * hd;
    add_2d(&tl, "token_embd.weight", spec->n_embd, n_vocab);
    for (uint32_t l = 0; l < spec->n_layer; l++) {
        char nm[48];
#define T(suffix) (snprintf(nm, sizeof nm, "blk.%u.%s", l, suffix), nm)
        add_1d(&tl, T("attn_norm.weight"), spec->n_embd, INIT_ONES);
        add_2d(&tl, T("attn_q.weight"), spec->n_embd, q_dim);
        add_2d(&tl, T("attn_k.weight"), spec->n_embd, kv_dim);
        add_2d(&tl, T("attn_v.weight"), spec->n_embd, kv_dim);
        if (spec->arch == MODELGEN_QWEN2) {
            add_1d(&tl, T("attn_q.bias"), q_dim, INIT_NORMAL);
            add_1d(&tl, T("attn_k.bias"), kv_dim, INIT_NORMAL);
            add_1d(&tl, T("attn_v.bias"), kv_dim, INIT_NORMAL);
        }
        if (spec->arch == MODELGEN_GEMMA3) {
            add_1d(&tl, T("attn_q_norm.weight"), hd, INIT_ONES);
            add_1d(&tl, T("attn_k_norm.weight"), hd, INIT_ONES);
        }
        add_2d(&tl, T("attn_output.weight"), q_dim, spec->n_embd);
        if (spec->arch == MODELGEN_GEMMA3) add_1d(&tl, T("post_attention_norm.weight"), spec->n_embd, INIT_ONES);
        add_1d(&tl, T("ffn_norm.weight"), spec->n_embd, INIT_ONES);
        add_2d(&tl, T("ffn_gate.weight"), spec->n_embd, spec->n_ff);
        add_2d(&tl, T("ffn_up.weight"), spec->n_embd, spec->n_ff);
        add_2d(&tl, T("ffn_down.weight"), spec->n_ff, spec->n_embd);
        if (spec->arch == MODELGEN_GEMMA3) add_1d(&tl, T("post_ffw_norm.weight"), spec->n_embd, INIT_ONES);
#undef T
    }
    add_1d(&tl, "output_norm.weight", spec->n_embd, INIT_ONES);
    if (!spec->tied) add_2d(&tl, "output.weight", spec->n_embd, n_vocab);

    uint64_t n_params = 0, max_row = 0;
    for (uint32_t i = 0; i < tl.n; i++) {
        gguf_writer_add_tensor(w, tl.t[i].name, tl.t[i].type, tl.t[i].n_dims, tl.t[i].ne, NULL);
        n_params += tl.t[i].ne[0] * tl.t[i].ne[1];
        if (tl.t[i].ne[0] > max_row) max_row = tl.t[i].ne[0];
    }

    st = modeltools_layout(w, &b, &n, &f, err);
    if (st != RYOT_OK) goto fail;
    RYOT_ASSERT(f->n_tensors == tl.n);
    row = malloc(max_row * sizeof *row);
    if (!row) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < tl.n; i++) {
        st = fill_tensor(&tl.t[i], modeltools_tensor_dst(b, f, &f->tensors[i]), row, spec, err);
        if (st != RYOT_OK) goto fail;
    }
    if (report) *report = (modelgen_report){n_params, tl.n, tl.n_fallback};
    gguf_close(f);
    gguf_writer_free(w);
    free(tl.t);
    free(row);
    *buf = b;
    *size = n;
    return RYOT_OK;

fail:
    gguf_close(f);
    gguf_writer_free(w);
    free(tl.t);
    free(row);
    free(b);
    return st;
}
