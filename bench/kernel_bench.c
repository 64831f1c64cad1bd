/* Kernel micro benchmark: single thread.
 *
 *   make build/libryot.a && cc -O2 -Isrc -Iinclude -o build/kernel_bench bench/kernel_bench.c \
 *       build/libryot.a -lm -lpthread && build/kernel_bench
 *
 * For each type and ISA level this CPU runs:
 *   - vec_dot over a ROWS x COLS weight matrix (one activation row, like a
 *     decode step), in GB/s of weight bytes streamed: 2048 x 2048 (bigger
 *     than the caches; memory bound) and 64 x 2048 (fits in L2);
 *   - vec_dot_rows at nry = 64 activation rows over 256 x 2048 weights
 *     (a prefill tile), in GFLOP/s (2 * n * nrx * nry / time).
 * Each figure is the best of several timed repetitions (each >= 20 ms).
 * Options: -t TYPE (e.g. q4_1) to run one type, -i ISA (ref|avx2|avx512). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kernels/kernels.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust on a shared machine */
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2 - 1);
}

static void *quantized_matrix(ryot_type t, int64_t rows, int64_t n, size_t *row_bytes) {
    uint64_t rb;
    ryot_row_size(t, (uint64_t)n, &rb);
    uint8_t *m = malloc(rb * rows);
    float *f = malloc(n * sizeof *f);
    const kernel_traits *k = kernels_get_isa(kernels_best_isa(), t);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++) f[i] = 0.05f * frand();
        if (r < 256 || t == RYOT_TYPE_F32 || t == RYOT_TYPE_F16 || t == RYOT_TYPE_BF16 || t == RYOT_TYPE_Q8_0)
            k->from_float(f, m + rb * r, n);
        else /* the reference K/4/5-bit quantizers are slow: repeat earlier rows */
            memcpy(m + rb * r, m + rb * (r % 256), rb);
    }
    free(f);
    *row_bytes = rb;
    return m;
}

static volatile float sink;

/* Best time of reps for one pass over rows weight rows. */
static double time_vec_dot(const kernel_traits *k, int64_t rows, int64_t n, const uint8_t *w, size_t rb, const void *y) {
    double best = INFINITY;
    for (int rep = 0; rep < 7; rep++) {
        int iters = 0;
        double t0 = now_s(), el;
        do {
            float acc = 0, s;
            for (int64_t r = 0; r < rows; r++) {
                k->vec_dot(n, &s, w + rb * r, y);
                acc += s;
            }
            sink = acc;
            iters++;
            el = now_s() - t0;
        } while (el < 0.02);
        if (el / iters < best) best = el / iters;
    }
    return best;
}

static double time_rows(const kernel_traits *k, int64_t nrx, int64_t nry, int64_t n, const uint8_t *w, size_t rb,
                        const uint8_t *y, size_t yb, float *out) {
    double best = INFINITY;
    for (int rep = 0; rep < 5; rep++) {
        int iters = 0;
        double t0 = now_s(), el;
        do {
            k->vec_dot_rows(n, nrx, nry, w, rb, y, yb, out, (size_t)nrx);
            sink = out[0];
            iters++;
            el = now_s() - t0;
        } while (el < 0.02);
        if (el / iters < best) best = el / iters;
    }
    return best;
}

int main(int argc, char **argv) {
    const char *only_type = NULL, *only_isa = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-t")) only_type = argv[i + 1];
        else if (!strcmp(argv[i], "-i")) only_isa = argv[i + 1];
    }
    static const ryot_type types[] = {RYOT_TYPE_F32,  RYOT_TYPE_F16,  RYOT_TYPE_BF16, RYOT_TYPE_Q8_0,
                                      RYOT_TYPE_Q4_0, RYOT_TYPE_Q4_1, RYOT_TYPE_Q5_0, RYOT_TYPE_Q5_1,
                                      RYOT_TYPE_Q4_K, RYOT_TYPE_Q5_K, RYOT_TYPE_Q6_K};
    const int64_t n = 2048, big_rows = 2048, small_rows = 64, nrx = 256, nry = 64;
    printf("kernel_bench: best ISA %s; vec_dot GB/s of weights (1 thread), vec_dot_rows GFLOP/s\n",
           kernel_isa_name(kernels_best_isa()));
    printf("%-6s %-6s %14s %14s %16s\n", "type", "isa", "dot 2048x2048", "dot 64x2048", "rows 256x2048x64");
    float *yf = malloc(n * nry * sizeof *yf);
    for (int64_t i = 0; i < n * nry; i++) yf[i] = frand();
    float *out = malloc(nrx * nry * sizeof *out);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        ryot_type t = types[ti];
        if (only_type && strcasecmp(only_type, ryot_type_name(t))) continue;
        size_t rb;
        uint8_t *w = quantized_matrix(t, big_rows, n, &rb);
        ryot_type vt = kernels_ref(t)->vec_dot_type;
        uint64_t yb;
        ryot_row_size(vt, (uint64_t)n, &yb);
        uint8_t *y = malloc(yb * nry);
        for (int64_t j = 0; j < nry; j++) kernels_ref(vt)->from_float(yf + j * n, y + yb * j, n);
        for (kernel_isa isa = KERNEL_ISA_REF; isa <= KERNEL_ISA_AVX512; isa++) {
            const kernel_traits *k = kernels_get_isa(isa, t);
            if (!k || (only_isa && strcmp(only_isa, kernel_isa_name(isa)))) continue;
            double tb = time_vec_dot(k, big_rows, n, w, rb, y);
            double ts = time_vec_dot(k, small_rows, n, w, rb, y);
            double tr = time_rows(k, isa == KERNEL_ISA_REF ? 16 : nrx, nry, n, w, rb, y, yb, out);
            double flops = 2.0 * n * (isa == KERNEL_ISA_REF ? 16 : nrx) * nry;
            printf("%-6s %-6s %14.2f %14.2f %16.2f\n", ryot_type_name(t), kernel_isa_name(isa), rb * big_rows / tb * 1e-9,
                   rb * small_rows / ts * 1e-9, flops / tr * 1e-9);
            fflush(stdout);
        }
        free(w);
        free(y);
    }
    free(yf);
    free(out);
    return 0;
}
