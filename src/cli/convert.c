/* ryot convert: Hugging Face BERT sentence encoder -> GGUF (modeltools/convert.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "modeltools/modeltools.h"

static void convert_usage(FILE *out) {
    fprintf(out,
            "usage: ryot convert DIR -o OUT.gguf [--type F32|F16|Q8_0]\n"
            "\n"
            "Converts a Hugging Face BERT sentence encoder (DIR holds config.json,\n"
            "tokenizer.json and model.safetensors; sentence-transformers' 1_Pooling/\n"
            "and modules.json set the pooling and the final L2 normalization) into a\n"
            "GGUF of architecture \"bert\" for `ryot embed` and `ryot serve --embed-model`.\n"
            "\n"
            "  -o, --output FILE   output GGUF (required)\n"
            "  --type T            2-D weights: F32 (default), F16 or Q8_0; 1-D tensors are F32\n");
}

int cmd_convert(int argc, char **argv) {
    const char *dir = NULL, *out = NULL, *type_name = "F32";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            convert_usage(stdout);
            return 0;
        }
        if ((!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--type")) && i + 1 < argc) {
            if (!strcmp(a, "--type")) type_name = argv[++i];
            else out = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ryot convert: unknown flag or missing value: %s\n", a);
            convert_usage(stderr);
            return 2;
        } else if (!dir) {
            dir = a;
        } else {
            fprintf(stderr, "ryot convert: too many arguments\n");
            return 2;
        }
    }
    if (!dir || !out) {
        convert_usage(stderr);
        return 2;
    }
    ryot_type type;
    if (!modeltools_parse_type(type_name, &type) ||
        (type != RYOT_TYPE_F32 && type != RYOT_TYPE_F16 && type != RYOT_TYPE_Q8_0)) {
        fprintf(stderr, "ryot convert: --type %s: F32, F16 or Q8_0\n", type_name);
        return 2;
    }
    ryot_error err = {0};
    uint8_t *buf = NULL;
    size_t size = 0;
    convert_report r;
    ryot_status st = convert_bert_build(dir, type, &buf, &size, &r, &err);
    if (st == RYOT_OK) st = modeltools_write_file(out, buf, size, &err);
    free(buf);
    if (st != RYOT_OK) {
        fprintf(stderr, "ryot convert: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "ryot convert: %s: bert, %u layers, n_embd %u, vocab %u, %u tensors, %.1fM params, %s, %.1f MB\n",
            out, r.n_layer, r.n_embd, r.n_vocab, r.n_tensors, (double)r.n_params / 1e6, type_name,
            (double)size / 1e6);
    return 0;
}
