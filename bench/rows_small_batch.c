/* Cost of vec_dot_rows per (weight block, activation row) pair at small
 * activation batches (a speculative verify step: 1-8 rows), single thread,
 * in thread CPU time, for the decode-shaped matrices of SmolLM2-135M
 * (576 -> 1536 and 1536 -> 576) in one weight type.
 *   cc -O2 -Isrc bench/rows_small_batch.c build/libryot.a -lm -lpthread -o /tmp/rows_small_batch
 *   /tmp/rows_small_batch [q4_1|q8_0|q4_k] [avx2|ref]
 * Prints ns per block pair and per weight block for each row count: a
 * kernel whose weight blocks are unpacked once per tile has a per-pair
 * cost that falls with the row count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/types.h"
#include "kernels/kernels.h"

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rs = 88172645463325252ull;
static float frand(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((double)(rs >> 11) / 9007199254740992.0 - 0.5);
}

int main(int argc, char **argv) {
    ryot_type t = RYOT_TYPE_Q4_1;
    if (argc > 1 && !strcmp(argv[1], "q8_0")) t = RYOT_TYPE_Q8_0;
    if (argc > 1 && !strcmp(argv[1], "q4_k")) t = RYOT_TYPE_Q4_K;
    kernel_isa isa = argc > 2 && !strcmp(argv[2], "ref") ? KERNEL_ISA_REF : KERNEL_ISA_AVX2;
    const kernel_traits *k = kernels_get_isa(isa, t);
    if (!k) return 1;
    const kernel_traits *ky = kernels_get_isa(isa, k->vec_dot_type);
    static const int shapes[][2] = {{576, 1536}, {1536, 576}}; /* n_in, n_out */
    printf("%s %s: ns per block pair (per weight block) by activation rows\n", ryot_type_name(t), kernel_isa_name(isa));
    for (int sh = 0; sh < 2; sh++) {
        const int n = shapes[sh][0], nr = shapes[sh][1];
        uint64_t bx, by;
        ryot_row_size(t, (uint64_t)n, &bx);
        ryot_row_size(k->vec_dot_type, (uint64_t)n, &by);
        char *x = malloc(bx * nr), *y = malloc(by * 8);
        float *f = malloc(sizeof(float) * n), *s = malloc(sizeof(float) * 8 * nr);
        for (int i = 0; i < nr; i++) {
            for (int j = 0; j < n; j++) f[j] = frand();
            k->from_float(f, x + i * bx, n);
        }
        for (int i = 0; i < 8; i++) {
            for (int j = 0; j < n; j++) f[j] = frand();
            ky->from_float(f, y + i * by, n);
        }
        const double blocks = (double)nr * n / ryot_type_get(t)->block_size;
        printf("  %4d x %4d:", nr, n);
        for (int ry = 1; ry <= 8; ry++) {
            double best = 1e9;
            for (int rep = 0; rep < 5; rep++) {
                const int iters = 200;
                double t0 = cpu_s();
                for (int it = 0; it < iters; it++) k->vec_dot_rows(n, nr, ry, x, bx, y, by, s, nr);
                double dt = (cpu_s() - t0) / iters;
                if (dt < best) best = dt;
            }
            printf("  %d: %.2f (%.2f)", ry, best * 1e9 / blocks / ry, best * 1e9 / blocks);
        }
        printf("\n");
        free(x), free(y), free(f), free(s);
    }
    return 0;
}
