/* Tokenizer encode throughput: MB/s of tokenizer_encode over a text file,
 * load time excluded.  One scratch and one id buffer are reused, as a server
 * thread would.  Built and run by bench/tokenizer_speed.sh.
 *
 *   tokenizer_speed TEXT_FILE VOCAB.gguf [VOCAB.gguf ...]
 *
 * Prints one line per vocab: name, bytes, tokens, bytes/token, and MB/s
 * (1 MB = 10^6 bytes) of the best of REPS runs (default 3), measured in
 * thread CPU time so that other load on the machine does not count:
 *   cached    a fresh tokenizer_scratch per run (its word cache starts empty
 *             and fills during the run), as a server thread would use;
 *   no-cache  scratch NULL: every pre-token goes through the merge loop;
 *   wall      the cached run in wall-clock time, for reference. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static double clock_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best CPU seconds of `reps` encodes; *wall gets the wall time of that run. */
static double run(const tokenizer *tok, bool cached, const char *text, size_t n, int reps, size_t *n_tok,
                  double *wall) {
    double best = 1e30;
    token_buf ids = {0};
    for (int r = 0; r < reps; r++) {
        tokenizer_scratch *s = cached ? tokenizer_scratch_new(tok) : NULL;
        ryot_error err;
        ids.n = 0;
        double w0 = clock_s(CLOCK_MONOTONIC), t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (tokenizer_encode(tok, s, text, n, 0, &ids, &err)) {
            fprintf(stderr, "encode: %s\n", err.msg);
            exit(1);
        }
        double dt = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0, dw = clock_s(CLOCK_MONOTONIC) - w0;
        if (dt < best) best = dt, *wall = dw;
        tokenizer_scratch_free(s);
    }
    *n_tok = ids.n;
    token_buf_free(&ids);
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TEXT_FILE VOCAB.gguf [VOCAB.gguf ...]\n", argv[0]);
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) {
        perror(argv[1]);
        return 1;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, fp) != (size_t)n) {
        fprintf(stderr, "%s: read failed\n", argv[1]);
        return 1;
    }
    fclose(fp);
    int reps = getenv("REPS") ? atoi(getenv("REPS")) : 3;
    printf("%-32s %9s %9s %6s %8s %9s %8s\n", "vocab", "bytes", "tokens", "B/tok", "cached", "no-cache", "wall");
    for (int v = 2; v < argc; v++) {
        gguf_file *f;
        tokenizer *tok;
        ryot_error err;
        if (gguf_open(argv[v], &f, &err) || tokenizer_load(f, &tok, &err)) {
            fprintf(stderr, "%s: %s\n", argv[v], err.msg);
            return 1;
        }
        gguf_close(f);
        size_t n_tok, n_tok2;
        double wall, wall2;
        double c = run(tok, true, text, (size_t)n, reps, &n_tok, &wall);
        double u = run(tok, false, text, (size_t)n, reps, &n_tok2, &wall2);
        if (n_tok != n_tok2) {
            fprintf(stderr, "%s: cached and uncached token counts differ (%zu, %zu)\n", argv[v], n_tok, n_tok2);
            return 1;
        }
        const char *name = strrchr(argv[v], '/');
        name = name ? name + 1 : argv[v];
        printf("%-32s %9ld %9zu %6.2f %8.1f %9.1f %8.1f\n", name, n, n_tok, (double)n / (double)n_tok, n / c / 1e6,
               n / u / 1e6, n / wall / 1e6);
        tokenizer_free(tok);
    }
    free(text);
    return 0;
}
