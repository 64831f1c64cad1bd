/* ryot gen: write a GGUF model with random weights (modeltools/modelgen.c). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "modeltools/modeltools.h"

static void gen_usage(FILE *out) {
    fprintf(out,
            "usage: ryot gen -o OUT.gguf (--preset NAME | --arch llama|qwen2|gemma3) [options]\n"
            "\n"
            "Writes a model of the given architecture and shape with random weights\n"
            "(~N(0, std^2), norms 1), quantized with the reference kernels: the same\n"
            "arguments give the same file on every machine.\n"
            "\n"
            "  -o, --output FILE      output GGUF (required)\n"
            "  --preset NAME          start from a preset shape:");
    for (const char *const *p = modelgen_preset_names(); *p; p++) fprintf(out, " %s", *p);
    fprintf(out,
            "\n"
            "  --arch A               llama, qwen2 or gemma3; without --preset the shape\n"
            "                         starts from tiny-A\n"
            "  --n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N --n-vocab N\n"
            "  --ctx N --head-dim N   override the shape (head-dim 0: n_embd / n_head)\n"
            "  --rope-base F --eps F  rope frequency base, RMS norm epsilon\n"
            "  --sliding-window N     gemma3 local attention window\n"
            "  --tied | --untied      reuse token_embd as the output head, or write output.weight\n"
            "  --type T               2-D weights: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K\n"
            "                         (default Q8_0; rows that do not fit its blocks use\n"
            "                         llama.cpp's fallback type); norms and biases are F32\n"
            "  --seed S               weights seed (default 0)\n"
            "  --std F                weight standard deviation (default 0.02)\n"
            "  --vocab-from FILE      copy the tokenizer.* keys of FILE (n_vocab follows);\n"
            "                         default: a synthetic byte-level BPE vocab\n"
            "  --name NAME            general.name\n");
}

static bool parse_u32(const char *flag, const char *s, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v > UINT32_MAX || s[0] == '-') {
        fprintf(stderr, "ryot gen: %s wants a non-negative integer, got '%s'\n", flag, s);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool parse_u64(const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (!*s || *end || errno || s[0] == '-') {
        fprintf(stderr, "ryot gen: %s wants a non-negative integer, got '%s'\n", flag, s);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_f32(const char *flag, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (!*s || *end || errno || !isfinite(v)) {
        fprintf(stderr, "ryot gen: %s wants a number, got '%s'\n", flag, s);
        return false;
    }
    *out = v;
    return true;
}

int cmd_gen(int argc, char **argv) {
    const char *out = NULL, *preset = NULL, *arch = NULL, *type = NULL, *vocab_from = NULL, *name = NULL;
    /* shape overrides, applied once the base shape (preset or tiny-ARCH) is known */
    uint32_t o_embd = 0, o_layer = 0, o_head = 0, o_head_kv = 0, o_ff = 0, o_vocab = 0, o_ctx = 0, o_hd = 0,
             o_swa = 0;
    bool s_embd = false, s_layer = false, s_head = false, s_head_kv = false, s_ff = false, s_vocab = false,
         s_ctx = false, s_hd = false, s_swa = false, s_rope = false, s_eps = false, s_std = false;
    float o_rope = 0, o_eps = 0, o_std = 0;
    uint64_t seed = 0;
    int tied = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            gen_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--tied")) {
            tied = 1;
            continue;
        }
        if (!strcmp(a, "--untied")) {
            tied = 0;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ryot gen: %s: unknown flag or missing value\n", a);
            gen_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--type")) type = v;
        else if (!strcmp(a, "--vocab-from")) vocab_from = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--seed")) ok = parse_u64(a, v, &seed);
        else if (!strcmp(a, "--n-embd")) ok = s_embd = parse_u32(a, v, &o_embd);
        else if (!strcmp(a, "--n-layer")) ok = s_layer = parse_u32(a, v, &o_layer);
        else if (!strcmp(a, "--n-head")) ok = s_head = parse_u32(a, v, &o_head);
        else if (!strcmp(a, "--n-head-kv")) ok = s_head_kv = parse_u32(a, v, &o_head_kv);
        else if (!strcmp(a, "--n-ff")) ok = s_ff = parse_u32(a, v, &o_ff);
        else if (!strcmp(a, "--n-vocab")) ok = s_vocab = parse_u32(a, v, &o_vocab);
        else if (!strcmp(a, "--ctx")) ok = s_ctx = parse_u32(a, v, &o_ctx);
        else if (!strcmp(a, "--head-dim")) ok = s_hd = parse_u32(a, v, &o_hd);
        else if (!strcmp(a, "--sliding-window")) ok = s_swa = parse_u32(a, v, &o_swa);
        else if (!strcmp(a, "--rope-base")) ok = s_rope = parse_f32(a, v, &o_rope);
        else if (!strcmp(a, "--eps")) ok = s_eps = parse_f32(a, v, &o_eps);
        else if (!strcmp(a, "--std")) ok = s_std = parse_f32(a, v, &o_std);
        else {
            fprintf(stderr, "ryot gen: unknown flag %s\n", a);
            gen_usage(stderr);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!out) {
        fprintf(stderr, "ryot gen: -o OUT.gguf is required\n");
        gen_usage(stderr);
        return 2;
    }
    if (!preset && !arch) {
        fprintf(stderr, "ryot gen: give --preset or --arch\n");
        gen_usage(stderr);
        return 2;
    }

    modelgen_spec spec;
    if (preset) {
        if (!modelgen_preset(preset, &spec)) {
            fprintf(stderr, "ryot gen: unknown preset '%s' (see --help)\n", preset);
            return 2;
        }
        modelgen_arch a;
        if (arch && (!modelgen_parse_arch(arch, &a) || a != spec.arch)) {
            fprintf(stderr, "ryot gen: --arch %s does not match preset %s (%s)\n", arch, preset,
                    modelgen_arch_name(spec.arch));
            return 2;
        }
    } else {
        modelgen_arch a;
        if (!modelgen_parse_arch(arch, &a)) {
            fprintf(stderr, "ryot gen: unknown architecture '%s' (llama, qwen2, gemma3)\n", arch);
            return 2;
        }
        char base[32];
        snprintf(base, sizeof base, "tiny-%s", modelgen_arch_name(a));
        RYOT_ASSERT(modelgen_preset(base, &spec));
        spec.name = NULL;
    }
    if (type && !modeltools_parse_type(type, &spec.type)) {
        fprintf(stderr, "ryot gen: unsupported --type '%s' (see --help)\n", type);
        return 2;
    }
    if (s_embd) spec.n_embd = o_embd;
    if (s_layer) spec.n_layer = o_layer;
    if (s_head) spec.n_head = o_head;
    if (s_head_kv) spec.n_head_kv = o_head_kv;
    if (s_ff) spec.n_ff = o_ff;
    if (s_vocab) spec.n_vocab = o_vocab;
    if (s_ctx) spec.n_ctx = o_ctx;
    if (s_hd) spec.head_dim = o_hd;
    if (s_swa) spec.sliding_window = o_swa;
    if (s_rope) spec.rope_base = o_rope;
    if (s_eps) spec.rms_eps = o_eps;
    if (s_std) spec.init_std = o_std;
    if (tied >= 0) spec.tied = tied;
    if (name) spec.name = name;
    spec.seed = seed;
    /* a changed shape is no longer the preset: name it after the architecture */
    if (!name && (s_embd || s_layer || s_head || s_head_kv || s_ff || s_hd)) spec.name = NULL;

    ryot_error err = {0};
    gguf_file *vf = NULL;
    if (vocab_from) {
        if (gguf_open(vocab_from, &vf, &err) != RYOT_OK) {
            fprintf(stderr, "ryot gen: %s: %s\n", vocab_from, err.msg);
            return 1;
        }
        spec.vocab_from = vf;
        if (!s_vocab) spec.n_vocab = 0; /* follow the tokenizer */
    }

    uint8_t *buf = NULL;
    size_t size = 0;
    modelgen_report rep;
    ryot_status st = modelgen_build(&spec, &buf, &size, &rep, &err);
    gguf_close(vf);
    if (st != RYOT_OK) {
        fprintf(stderr, "ryot gen: %s\n", err.msg);
        return st == RYOT_ERR_INVALID || st == RYOT_ERR_UNSUPPORTED ? 2 : 1;
    }
    st = modeltools_write_file(out, buf, size, &err);
    free(buf);
    if (st != RYOT_OK) {
        fprintf(stderr, "ryot gen: %s\n", err.msg);
        return 1;
    }
    printf("ryot gen: wrote %s: %s%s%s, %u layers, n_embd %u, %u heads (%u kv), n_ff %u, vocab %s, %s, "
           "%.1fM params, %u tensors, %.1f MiB\n",
           out, modelgen_arch_name(spec.arch), preset ? " " : "", preset ? preset : "", spec.n_layer, spec.n_embd,
           spec.n_head, spec.n_head_kv, spec.n_ff, vocab_from ? vocab_from : "synthetic",
           ryot_type_name(spec.type), (double)rep.n_params / 1e6, rep.n_tensors, (double)size / (1024.0 * 1024.0));
    if (rep.n_fallback)
        printf("ryot gen: %u tensors have rows that do not fit %s blocks and use a fallback type\n", rep.n_fallback,
               ryot_type_name(spec.type));
    return 0;
}
