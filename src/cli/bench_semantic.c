/* `ryot bench semantic`: the semantic cache's index (cache/semantic.h) on
 * synthetic unit vectors of the embedding model's width (384 by default):
 * N entries in one context, in clusters (64 centres) like real questions;
 * then Q questions, each a small step away from a stored entry (cosine
 * ~0.98), searched through the index and by an exact scan.  Prints insert
 * time per entry, search p50/p99 of the index and of the exact scan, and the
 * index's recall (the exact best found).  Groups of up to CACHE_SEM_FLAT_MAX
 * entries are scanned by the index itself, larger ones use its HNSW graph.
 * Exit status: 0 ok, 1 failure, 2 bad usage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/hnsw.h"
#include "cache/key.h"
#include "cache/semantic.h"
#include "cli/cli.h"
#include "core/clock.h"

static uint64_t rs = 0x243f6a8885a308d3u;
static double urand(void) {
    rs = rs * 6364136223846793005u + 1442695040888963407u;
    return (double)(rs >> 11) * 0x1.0p-53;
}
static double nrand(void) { return sqrt(-2.0 * log(1.0 - urand())) * cos(6.283185307179586 * urand()); }
static void unit(float *v, int n) {
    double q = 0;
    for (int i = 0; i < n; i++) q += (double)v[i] * v[i];
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] / sqrt(q));
}
static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static cache_key key_of(int i) {
    cache_key_builder kb;
    cache_key k;
    cache_key_begin(&kb, "bench-semantic");
    cache_key_i64(&kb, 1, i);
    cache_key_end(&kb, &k);
    return k;
}

int cmd_bench_semantic(int argc, char **argv) {
    long n = 16384, q = 2000, dim = 384;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long *t = NULL, lo = 1, hi = CACHE_SEM_MAX_ENTRIES;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: ryot bench semantic [-n ENTRIES] [-q QUESTIONS] [--dim D]\n"
                   "  the semantic cache's index: insert time, search p50/p99 against an exact scan, recall\n"
                   "  (-n up to %d; groups past %d entries are searched through the HNSW graph)\n",
                   CACHE_SEM_MAX_ENTRIES, CACHE_SEM_FLAT_MAX);
            return 0;
        } else if (!strcmp(a, "-n")) {
            t = &n;
        } else if (!strcmp(a, "-q")) {
            t = &q, hi = 1000000;
        } else if (!strcmp(a, "--dim")) {
            t = &dim, hi = 4096;
        }
        char *end = NULL;
        long x = v ? strtol(v, &end, 10) : 0;
        if (!t || !v || *end || x < lo || x > hi) {
            fprintf(stderr, "ryot bench semantic: bad option '%s'%s%s (see --help)\n", a, v ? " " : "", v ? v : "");
            return 2;
        }
        *t = x;
        i++;
    }
    const int D = (int)dim;
    float *vec = malloc((size_t)n * (size_t)D * sizeof *vec), *cen = malloc(64 * (size_t)D * sizeof *cen);
    float *qv = malloc((size_t)D * sizeof *qv);
    double *t_idx = malloc((size_t)q * sizeof *t_idx), *t_flat = malloc((size_t)q * sizeof *t_flat);
    cache_sem *s = cache_sem_new(D, (int)n, 0.9f);
    if (!vec || !cen || !qv || !t_idx || !t_flat || !s) {
        fprintf(stderr, "ryot bench semantic: out of memory\n");
        return 1;
    }
    for (long i = 0; i < 64 * (long)D; i++) cen[i] = (float)nrand();
    for (int c = 0; c < 64; c++) unit(cen + (size_t)c * D, D);
    for (long i = 0; i < n; i++) {
        float *v = vec + (size_t)i * D;
        const float *c = cen + (size_t)(i % 64) * D;
        for (int d = 0; d < D; d++) v[d] = c[d] + 0.6f * (float)nrand() / sqrtf((float)D);
        unit(v, D);
    }
    const cache_key ctx = key_of(-1);
    const double t0 = ryot_now_s();
    for (long i = 0; i < n; i++) {
        const cache_key k = key_of((int)i);
        cache_sem_insert(s, &ctx, vec + (size_t)i * D, &k);
    }
    const double t_ins = ryot_now_s() - t0;
    long found = 0;
    for (long j = 0; j < q; j++) {
        const long i = (long)(urand() * (double)n);
        for (int d = 0; d < D; d++) qv[d] = vec[(size_t)i * D + d] + 0.2f * (float)nrand() / sqrtf((float)D);
        unit(qv, D);
        cache_key got;
        double a = ryot_now_s();
        const bool hit = cache_sem_search(s, &ctx, qv, &got, NULL);
        t_idx[j] = ryot_now_s() - a;
        a = ryot_now_s();
        long best = -1;
        float bd = 0;
        for (long e = 0; e < n; e++) {
            const float d = hnsw_dot(vec + (size_t)e * D, qv, D);
            if (best < 0 || d > bd) best = e, bd = d;
        }
        t_flat[j] = ryot_now_s() - a;
        if (hit) {
            const cache_key want = key_of((int)best);
            found += !memcmp(got.b, want.b, sizeof got.b);
        }
    }
    qsort(t_idx, (size_t)q, sizeof *t_idx, cmp_double);
    qsort(t_flat, (size_t)q, sizeof *t_flat, cmp_double);
    const size_t p99 = (size_t)((double)q * 0.99);
    printf("entries %ld, dim %d, %s search\n", n, D, n > CACHE_SEM_FLAT_MAX ? "graph (HNSW)" : "flat");
    printf("insert     %.3f ms per entry\n", t_ins * 1e3 / (double)n);
    printf("index      search p50 %.3f ms  p99 %.3f ms\n", t_idx[q / 2] * 1e3, t_idx[p99] * 1e3);
    printf("exact scan search p50 %.3f ms  p99 %.3f ms\n", t_flat[q / 2] * 1e3, t_flat[p99] * 1e3);
    printf("recall     %ld/%ld (%.2f%%)\n", found, q, 100.0 * (double)found / (double)q);
    cache_sem_free(s);
    free(vec);
    free(cen);
    free(qv);
    free(t_idx);
    free(t_flat);
    return 0;
}
