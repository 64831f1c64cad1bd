/* `ryot embed`: sentence embeddings of stdin's lines with a BERT encoder GGUF.
 *
 * Each input line (without its newline) is one text; all of them are
 * embedded as one batch and printed one vector per line (floats separated by
 * single spaces, %.9g: exact float32 round trip), or, with --ids, the token
 * ids the encoder sees.  Exit status: 0 ok; 1 model or input error (one line
 * on stderr); 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "ryot.h"

#define DEFAULT_EMBED_FILE "all-MiniLM-L6-v2.f32.gguf"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ryot embed [-m FILE] [--ids] [-t N] < lines\n"
            "\n"
            "Embeds every line of stdin (one text per line, all in one batch) and prints\n"
            "one vector per line, floats separated by spaces.\n"
            "\n"
            "  -m, --model FILE  BERT encoder GGUF (`ryot convert`; default: $RYOT_EMBED_MODEL,\n"
            "                    else " DEFAULT_EMBED_FILE " in $RYOT_MODEL_DIR or ~/.cache/ryot/models)\n"
            "      --ids         print the token ids of each line instead ([CLS] ... [SEP])\n"
            "  -t, --threads N   worker threads (default: online CPUs)\n");
}

const char *cli_default_embed_model(void) {
    static char path[4096];
    const char *env = getenv("RYOT_EMBED_MODEL");
    if (env && *env) return env;
    const char *dir = getenv("RYOT_MODEL_DIR"), *home = getenv("HOME");
    if (dir && *dir) snprintf(path, sizeof path, "%s/%s", dir, DEFAULT_EMBED_FILE);
    else snprintf(path, sizeof path, "%s/.cache/ryot/models/%s", home ? home : ".", DEFAULT_EMBED_FILE);
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "ryot: no -m given and the default embedding model %s is missing; run "
                        "scripts/fetch-models.sh minilm\n", path);
        return NULL;
    }
    return path;
}

int cmd_embed(int argc, char **argv) {
    const char *path = NULL;
    bool ids_only = false;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) {
            path = argv[++i];
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && i + 1 < argc) {
            if (!cli_parse_long(argv[++i], 1, 512, &threads)) {
                fprintf(stderr, "ryot embed: -t %s: a thread count in [1, 512]\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--ids")) {
            ids_only = true;
        } else {
            fprintf(stderr, "ryot embed: unknown flag or missing value: %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path && !(path = cli_default_embed_model())) return 1;
    size_t len;
    char *text = cli_read_stream(stdin, &len);
    if (!text) {
        fprintf(stderr, "ryot embed: cannot read stdin\n");
        return 1;
    }
    /* lines: split in place; a final line without a newline counts */
    int n = 0, cap = 16;
    const char **lines = malloc((size_t)cap * sizeof *lines);
    size_t *lens = malloc((size_t)cap * sizeof *lens);
    for (size_t p = 0; lines && lens && p < len;) {
        char *nl = memchr(text + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - text) : len;
        if (n == cap) {
            cap *= 2;
            const char **l2 = realloc(lines, (size_t)cap * sizeof *lines);
            size_t *n2 = realloc(lens, (size_t)cap * sizeof *lens);
            if (l2) lines = l2;
            if (n2) lens = n2;
            if (!l2 || !n2) break;
        }
        lines[n] = text + p;
        lens[n++] = e - p;
        p = e + 1;
    }
    ryot_error err = {0};
    ryot_embedder *em = NULL;
    int rc = 0;
    if (!lines || !lens) {
        fprintf(stderr, "ryot embed: out of memory\n");
        rc = 1;
    } else if (ryot_embedder_load(path, (int)threads, &em, &err) != RYOT_OK) {
        fprintf(stderr, "ryot embed: %s\n", err.msg);
        rc = 1;
    } else if (ids_only) {
        for (int i = 0; i < n && !rc; i++) {
            ryot_token *ids;
            int k;
            if (ryot_embed_tokenize(em, lines[i], lens[i], &ids, &k, &err) != RYOT_OK) {
                fprintf(stderr, "ryot embed: line %d: %s\n", i + 1, err.msg);
                rc = 1;
                break;
            }
            for (int j = 0; j < k; j++) printf(j ? " %d" : "%d", ids[j]);
            putchar('\n');
            free(ids);
        }
    } else {
        const int dim = ryot_embedder_dim(em);
        float *out = malloc((size_t)(n ? n : 1) * (size_t)dim * sizeof *out);
        if (!out || ryot_embed(em, lines, lens, n, out, NULL, &err) != RYOT_OK) {
            fprintf(stderr, "ryot embed: %s\n", out ? err.msg : "out of memory");
            rc = 1;
        }
        for (int i = 0; !rc && i < n; i++) {
            for (int j = 0; j < dim; j++) printf(j ? " %.9g" : "%.9g", (double)out[(size_t)i * dim + j]);
            putchar('\n');
        }
        free(out);
    }
    ryot_embedder_free(em);
    free(lines);
    free(lens);
    free(text);
    return rc;
}
