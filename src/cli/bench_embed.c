/* `ryot bench embed`: sentence-encoder throughput.  N sentences (one per
 * line of a file, or generated: 8 to 24 common English words each, from a
 * fixed seed) are encoded in batches of B, R times after one warm-up pass;
 * the median pass gives sentences/s and tokens/s.  Tokenization is timed
 * apart from the encoder.  Exit status: 0 ok, 1 failure, 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "ryot.h"

static const char *const WORDS[] = {
    "the", "a", "cat", "dog", "sat", "on", "mat", "market", "prices", "rose", "fell", "today", "after", "news",
    "of", "strong", "weak", "results", "people", "walk", "in", "park", "every", "morning", "city", "council",
    "voted", "to", "build", "new", "bridge", "over", "river", "children", "play", "football", "school", "yard",
    "scientists", "found", "water", "under", "surface", "planet", "music", "played", "loudly", "night", "train",
    "arrived", "late", "because", "snow", "storm", "company", "hired", "engineers", "software", "team", "shipped",
    "release", "users", "reported", "bugs", "quickly", "fixed", "and", "but", "with", "from", "their", "old",
};

/* CPU time of the whole process (all its threads), seconds. */
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* n generated sentences in one buffer; lines[i]/lens[i] point into it */
static char *gen_sentences(int n, const char **lines, size_t *lens) {
    const int nw = (int)(sizeof WORDS / sizeof *WORDS);
    char *buf = malloc((size_t)n * 24 * 16 + 1), *p = buf;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; buf && i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int k = 8 + (int)((s >> 33) % 17);
        lines[i] = p;
        for (int j = 0; j < k; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            const char *w = WORDS[(s >> 33) % (uint64_t)nw];
            p += sprintf(p, j ? " %s" : "%s", w);
        }
        *p++ = '.';
        lens[i] = (size_t)(p - lines[i]);
    }
    return buf;
}

int cmd_bench_embed(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    double n_sent = 256, batch = 32, reps = 5, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ryot bench embed [-m MODEL.gguf] [-f FILE] [-n N] [-b BATCH] [-r REPS] [-t THREADS]\n"
                   "\nEncodes N sentences (default 256; from FILE, one per line, or generated: 8-24\n"
                   "words each) in batches of BATCH (default 32), REPS times (default 5) after a\n"
                   "warm-up pass, and prints the median pass's sentences/s and tokens/s.\n");
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) {
            model = v, i++;
        } else if (!strcmp(a, "-f") && v) {
            file = v, i++;
        } else if (!strcmp(a, "-n") && v && cli_parse_double(v, 1, 1e6, &n_sent)) {
            i++;
        } else if (!strcmp(a, "-b") && v && cli_parse_double(v, 1, 4096, &batch)) {
            i++;
        } else if (!strcmp(a, "-r") && v && cli_parse_double(v, 1, 1000, &reps)) {
            i++;
        } else if (!strcmp(a, "-t") && v && cli_parse_double(v, 0, 1024, &threads)) {
            i++;
        } else {
            fprintf(stderr, "ryot bench embed: bad option '%s'\n", a);
            return 2;
        }
    }
    if (!model && !(model = cli_default_embed_model())) return 1;
    int n = (int)n_sent, b = (int)batch, r = (int)reps;
    const char **lines = malloc((size_t)n * sizeof *lines);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    char *text = NULL;
    if (lines && lens && file) {
        size_t len;
        if (!(text = cli_read_file(file, &len))) {
            fprintf(stderr, "ryot bench embed: cannot read %s\n", file);
            return 1;
        }
        int k = 0;
        for (size_t p = 0; p < len && k < n;) {
            char *nl = memchr(text + p, '\n', len - p);
            size_t e = nl ? (size_t)(nl - text) : len;
            if (e > p) lines[k] = text + p, lens[k++] = e - p;
            p = e + 1;
        }
        if (k == 0) {
            fprintf(stderr, "ryot bench embed: %s has no lines\n", file);
            return 1;
        }
        n = k;
    } else if (lines && lens) {
        text = gen_sentences(n, lines, lens);
    }
    ryot_error err = {0};
    ryot_embedder *em = NULL;
    if (!lines || !lens || !text) {
        fprintf(stderr, "ryot bench embed: out of memory\n");
        return 1;
    }
    if (ryot_embedder_load(model, (int)threads, &em, &err)) {
        fprintf(stderr, "ryot bench embed: %s\n", err.msg);
        return 1;
    }
    /* tokenize once (timed), then encode token ids: the encoder's own speed */
    ryot_token **ids = calloc((size_t)n, sizeof *ids);
    int *n_ids = calloc((size_t)n, sizeof *n_ids);
    float *out = malloc((size_t)b * (size_t)ryot_embedder_dim(em) * sizeof *out);
    double *pass = calloc((size_t)r, sizeof *pass);
    int rc = !ids || !n_ids || !out || !pass;
    long tokens = 0;
    double t0 = ryot_now_s();
    for (int i = 0; !rc && i < n; i++) {
        if (ryot_embed_tokenize(em, lines[i], lens[i], &ids[i], &n_ids[i], &err)) {
            fprintf(stderr, "ryot bench embed: sentence %d: %s\n", i + 1, err.msg);
            rc = 1;
        }
        tokens += n_ids[i];
    }
    double tok_s = ryot_now_s() - t0;
    /* every timed call's latency (its percentiles) and the process's CPU
     * time over the timed passes (what the encoder computed, whatever the
     * machine's other load took of the wall time) */
    const int n_calls = (n + b - 1) / b;
    double *call = malloc((size_t)r * (size_t)n_calls * sizeof *call), cpu0 = 0;
    int n_timed = 0;
    if (!call) rc = 1;
    for (int k = -1; !rc && k < r; k++) {
        if (k == 0) cpu0 = cpu_s();
        t0 = ryot_now_s();
        for (int i = 0; !rc && i < n; i += b) {
            int m = n - i < b ? n - i : b;
            const double c0 = ryot_now_s();
            if (ryot_embed_tokens(em, (const ryot_token *const *)ids + i, n_ids + i, m, out, &err)) {
                fprintf(stderr, "ryot bench embed: %s\n", err.msg);
                rc = 1;
            }
            if (k >= 0) call[n_timed++] = ryot_now_s() - c0;
        }
        if (k >= 0) pass[k] = ryot_now_s() - t0;
    }
    const double cpu = cpu_s() - cpu0;
    if (!rc) {
        qsort(pass, (size_t)r, sizeof *pass, cmp_double);
        double med = pass[r / 2];
        printf("model %s\nthreads %d  sentences %d  batch %d  tokens %ld (%.1f per sentence)  reps %d\n", model,
               ryot_embedder_n_threads(em), n, b, tokens, (double)tokens / n, r);
        printf("encode: median %.1f ms per pass (min %.1f, max %.1f)  %.1f sentences/s  %.0f tokens/s\n",
               med * 1e3, pass[0] * 1e3, pass[r - 1] * 1e3, n / med, tokens / med);
        qsort(call, (size_t)n_timed, sizeof *call, cmp_double);
        printf("per call (%d sentences): p50 %.2f ms  p99 %.2f ms  max %.2f ms;  cpu %.2f ms per sentence\n", b,
               call[n_timed / 2] * 1e3, call[(int)(0.99 * (n_timed - 1))] * 1e3, call[n_timed - 1] * 1e3,
               cpu * 1e3 / ((double)n * r));
        printf("tokenize: %.1f ms for all (%.0f sentences/s)\n", tok_s * 1e3, n / (tok_s > 0 ? tok_s : 1e-9));
    }
    free(call);
    for (int i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    free(out);
    free(pass);
    ryot_embedder_free(em);
    free(lines);
    free(lens);
    free(text);
    return rc;
}
