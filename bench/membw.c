/* STREAM-like read bandwidth: sum over a 1 GiB buffer of 64-bit words,
 * 1 and 2 threads (each thread sums its half), best of N passes.
 *
 *   cc -O2 -march=native -pthread -o build/membw bench/membw.c && build/membw [MiB] [passes]
 *
 * The ceiling for memory-bound decode: weight bytes per token / this
 * bandwidth is the best possible time per token. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} part;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Four independent sums so the adds are not one dependency chain. */
static void *sum_part(void *arg) {
    part *pt = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= pt->n; i += 4) {
        s0 += pt->p[i];
        s1 += pt->p[i + 1];
        s2 += pt->p[i + 2];
        s3 += pt->p[i + 3];
    }
    for (; i < pt->n; i++) s0 += pt->p[i];
    pt->sum = s0 + s1 + s2 + s3;
    return NULL;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    size_t bytes = mib << 20, n = bytes / 8;
    uint64_t *buf = malloc(bytes);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i; /* touch every page */
    printf("membw: %zu MiB buffer, best of %d passes\n", mib, passes);
    for (int nt = 1; nt <= 2; nt++) {
        double best = 1e30;
        uint64_t check = 0;
        for (int r = 0; r < passes; r++) {
            part parts[2];
            pthread_t th[2];
            double t0 = now_s();
            for (int t = 0; t < nt; t++) {
                parts[t].p = buf + n / nt * t;
                parts[t].n = t == nt - 1 ? n - n / nt * t : n / nt;
                pthread_create(&th[t], NULL, sum_part, &parts[t]);
            }
            check = 0;
            for (int t = 0; t < nt; t++) {
                pthread_join(th[t], NULL);
                check += parts[t].sum;
            }
            double el = now_s() - t0;
            if (el < best) best = el;
        }
        printf("  %d thread%s: %.2f GB/s (checksum %llu)\n", nt, nt > 1 ? "s" : " ", bytes / best * 1e-9,
               (unsigned long long)check);
    }
    free(buf);
    return 0;
}
