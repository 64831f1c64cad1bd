/* `ryot bench tokenizer`: encode throughput of a model's tokenizer
 * (src/benchsuite/micro.c).  Exit status: 0 ok, 1 failure, 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchsuite/micro.h"
#include "cli/cli.h"

int cmd_bench_tokenizer(int argc, char **argv) {
    const char *model = NULL, *text_path = "README.md";
    double reps = 3, min_mb = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ryot bench tokenizer [-m MODEL.gguf] [-f TEXT] [-r REPS] [--min-mb N]\n"
                   "\nEncode throughput of the model's tokenizer in MB/s (10^6 bytes/s) of thread CPU\n"
                   "time, best of REPS (default 3): with a fresh scratch (its word cache fills during\n"
                   "the run) and without one; the wall-clock figure of the cached run for reference.\n"
                   "TEXT (default README.md) is repeated up to --min-mb MB (default 1).\n");
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) {
            model = v, i++;
        } else if (!strcmp(a, "-f") && v) {
            text_path = v, i++;
        } else if (!strcmp(a, "-r") && v && cli_parse_double(v, 1, 1000, &reps)) {
            i++;
        } else if (!strcmp(a, "--min-mb") && v && cli_parse_double(v, 0, 4096, &min_mb)) {
            i++;
        } else {
            fprintf(stderr, "ryot bench tokenizer: bad option '%s'\n", a);
            return 2;
        }
    }
    if (!model && !(model = cli_default_model())) return 1;
    size_t n = 0;
    char *text = cli_read_file(text_path, &n);
    if (!text || n == 0) {
        fprintf(stderr, "ryot bench tokenizer: cannot read %s\n", text_path);
        free(text);
        return 1;
    }
    size_t want = (size_t)(min_mb * 1e6), total = n;
    while (total < want) total += n;
    char *big = malloc(total + 1);
    if (!big) {
        free(text);
        return 1;
    }
    for (size_t off = 0; off < total; off += n) memcpy(big + off, text, n);
    big[total] = '\0';
    free(text);
    micro_tok_result r;
    ryot_error err = {0};
    if (micro_tokenizer(model, big, total, (int)reps, &r, &err) != RYOT_OK) {
        fprintf(stderr, "ryot bench tokenizer: %s\n", err.msg);
        free(big);
        return 1;
    }
    free(big);
    const char *name = strrchr(model, '/');
    printf("| %-32s | %9s | %9s | %6s | %9s | %9s | %9s |\n", "model", "bytes", "tokens", "B/tok", "cached", "no-cache",
           "wall");
    printf("|----------------------------------|----------:|----------:|-------:|----------:|----------:|----------:|\n");
    printf("| %-32s | %9zu | %9zu | %6.2f | %9.1f | %9.1f | %9.1f |\n", name ? name + 1 : model, r.bytes, r.tokens,
           (double)r.bytes / (double)r.tokens, r.cached_mbps, r.nocache_mbps, r.wall_mbps);
    return 0;
}
