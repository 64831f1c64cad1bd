/* ryot quantize: re-quantize a GGUF model (modeltools/requant.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "modeltools/modeltools.h"

static void quantize_usage(FILE *out) {
    fprintf(out,
            "usage: ryot quantize IN.gguf OUT.gguf TYPE [--keep-output]\n"
            "\n"
            "Re-quantizes every 2-D weight tensor to TYPE (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1\n"
            "Q8_0 Q4_K Q5_K Q6_K; Q4_K_M and the like name their K type) by dequantizing and\n"
            "quantizing again with the reference kernels.  Tensors whose rows do not fit\n"
            "TYPE's blocks stay as they are (with a note); 1-D tensors are stored as F32.\n"
            "All metadata is copied; general.file_type is set for TYPE.\n"
            "\n"
            "  --keep-output   leave output.weight in its current type\n");
}

#define MAX_NOTES_SHOWN 8

static void print_note(void *ctx, const char *msg) {
    int *n = ctx;
    if (++*n <= MAX_NOTES_SHOWN) fprintf(stderr, "ryot quantize: note: %s\n", msg);
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3];
    int npos = 0;
    bool keep_output = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            quantize_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--keep-output")) {
            keep_output = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ryot quantize: unknown flag %s\n", argv[i]);
            quantize_usage(stderr);
            return 2;
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "ryot quantize: too many arguments\n");
            quantize_usage(stderr);
            return 2;
        }
    }
    if (npos != 3) {
        quantize_usage(stderr);
        return 2;
    }
    int n_notes = 0;
    requant_opts opts = {.keep_output = keep_output, .note = print_note, .note_ctx = &n_notes};
    if (!modeltools_parse_type(pos[2], &opts.type)) {
        fprintf(stderr, "ryot quantize: unsupported type '%s' (see --help)\n", pos[2]);
        return 2;
    }

    ryot_error err = {0};
    gguf_file *in = NULL;
    if (gguf_open(pos[0], &in, &err) != RYOT_OK) {
        fprintf(stderr, "ryot quantize: %s: %s\n", pos[0], err.msg);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t size = 0;
    requant_stats s;
    ryot_status st = requant_build(in, &opts, &buf, &size, &s, &err);
    uint64_t n_tensors = in->n_tensors;
    gguf_close(in);
    if (st == RYOT_OK) st = modeltools_write_file(pos[1], buf, size, &err);
    free(buf);
    if (st != RYOT_OK) {
        fprintf(stderr, "ryot quantize: %s\n", err.msg);
        return 1;
    }
    if (n_notes > MAX_NOTES_SHOWN)
        fprintf(stderr, "ryot quantize: ... and %d more tensors kept for the same reasons\n", n_notes - MAX_NOTES_SHOWN);
    printf("ryot quantize: %s -> %s (%s): %llu tensors: %u to %s, %u kept as they were, %u 1-D as F32 "
           "(%u converted); tensor data %.2f MiB -> %.2f MiB\n",
           pos[0], pos[1], ryot_type_name(opts.type), (unsigned long long)n_tensors, s.n_converted,
           ryot_type_name(opts.type), s.n_kept, s.n_1d, s.n_to_f32, (double)s.bytes_before / (1024.0 * 1024.0),
           (double)s.bytes_after / (1024.0 * 1024.0));
    return 0;
}
