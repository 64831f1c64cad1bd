/* Reciprocal throughput of the AVX2 instructions the quantized dot kernels
 * are made of, in cycles, on this CPU: 8 independent chains per instruction,
 * cycles from a dependent integer-add chain (1 cycle per add).  Backs the
 * port-pressure figures in docs/PERFORMANCE.md.
 *   cc -O2 -mavx2 -mfma -mf16c bench/x86_op_cost.c -o /tmp/x86_op_cost && /tmp/x86_op_cost */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define N 200000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* instructions in an asm string (one per line) */
static int n_ins(const char *s) {
    int n = 1;
    for (; *s; s++) n += *s == '\n';
    return n;
}

#define ONE(ins, r) __asm__ volatile(ins : "+x"(r) : "x"(y))
#define OP(name, ins)                                                                                     \
    do {                                                                                                  \
        __m256i a0 = _mm256_set1_epi16(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0; \
        const __m256i y = _mm256_set1_epi16(3);                                                          \
        double t0 = now();                                                                                \
        for (long i = 0; i < N / 8; i++) {                                                                \
            ONE(ins, a0); ONE(ins, a1); ONE(ins, a2); ONE(ins, a3);                                       \
            ONE(ins, a4); ONE(ins, a5); ONE(ins, a6); ONE(ins, a7);                                       \
        }                                                                                                 \
        printf("%-24s %5.2f\n", name, (now() - t0) / (double)N * ghz * 1e9 / (double)n_ins(ins));                              \
    } while (0)

int main(void) {
    long x = 0;
    double t0 = now();
    for (long i = 0; i < N; i++) __asm__ volatile("add $1, %0" : "+r"(x));
    const double ghz = (double)N / (now() - t0) / 1e9;
    printf("clock ~%.2f GHz (dependent adds)\ninstruction              cycles\n", ghz);
    OP("vpmaddubsw ymm", "vpmaddubsw %1, %0, %0");
    OP("vpmaddubsw xmm", "vpmaddubsw %x1, %x0, %x0");
    OP("vpmaddwd ymm", "vpmaddwd %1, %0, %0");
    OP("vpmaddwd xmm", "vpmaddwd %x1, %x0, %x0");
    OP("vphaddd ymm", "vphaddd %1, %0, %0");
    OP("vpermd ymm", "vpermd %1, %1, %0");
    OP("vcvtdq2ps ymm", "vcvtdq2ps %1, %0");
    OP("vpsignb ymm", "vpsignb %1, %0, %0");
    OP("vpand ymm", "vpand %1, %0, %0");
    OP("vpaddd ymm", "vpaddd %1, %0, %0");
    OP("vfmadd231ps ymm", "vfmadd231ps %1, %1, %0");
    /* same port?  alternate two instructions: the per-instruction cost stays
     * at the single one's when they share a port, halves when they do not */
    OP("vpmaddubsw+vpmaddwd ymm", "vpmaddubsw %1, %0, %0\n\tvpmaddwd %1, %0, %0");
    OP("vpmaddubsw+vfmadd ymm", "vpmaddubsw %1, %0, %0\n\tvfmadd231ps %1, %1, %0");
    return 0;
}
