/* How fast can a Q4_1 x Q8_1 prefill tile be on this CPU?  Three loops over
 * GGUF-layout blocks (1 weight row x 8 activation rows, the shape of ryot's
 * AVX2 tile), each a subset of the next:
 *   multiply  nibble unpack + vpmaddubsw + int16 add: the multiplies alone,
 *             no per-block reduction or scaling (not a correct dot product);
 *   reduce    + the per-block int16 -> int32 reduction ryot's tile does
 *             (fold, vphaddw, vpmaddwd), summed in int32 (still ignores scales);
 *   full      + the per-block float scaling (d_x * d_y, cvt, fma) and the
 *             min terms: what a correct kernel must do.
 * GFLOP/s counts 2 x 32 per block pair, as `ryot bench kernels` does.
 *   cc -O2 -mavx2 -mfma -mf16c bench/q4_1_tile_floor.c -o /tmp/tile_floor && /tmp/tile_floor */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { NB = 48, NR = 64, NY = 8, NG = NB / 4 }; /* rows of 1536, 64 weight rows, 8 activation rows */

typedef struct { uint16_t d, m; uint8_t qs[16]; } blk_q4_1;
typedef struct { uint16_t d, s; int8_t qs[32]; } blk_q8_1;
static blk_q4_1 W[NR][NB];
static blk_q8_1 Y[NY][NB];
static float out[NR][NY];
static volatile float sink; /* keeps the results live */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline __m256i unpack(const uint8_t *q) {
    const __m128i v = _mm_loadu_si128((const __m128i *)q);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(15));
}
static inline __m256i yq(int c, int b) { return _mm256_loadu_si256((const __m256i *)Y[c][b].qs); }
static inline __m128i fold16(__m256i p) {
    return _mm_add_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
}
static inline __m256 half4(const uint8_t *p, size_t stride) {
    uint32_t a[4];
    for (int j = 0; j < 4; j++) __builtin_memcpy(&a[j], p + j * stride, 4);
    return _mm256_cvtph_ps(_mm_setr_epi32((int)a[0], (int)a[1], (int)a[2], (int)a[3]));
}
static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

static void run_multiply(void) {
    for (int r = 0; r < NR; r++) {
        __m256i acc[NY];
#pragma GCC unroll 8
        for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_si256();
        for (int g = 0; g < NG; g++) {
            __m256i cx[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) cx[j] = unpack(W[r][4 * g + j].qs);
#pragma GCC unroll 8
            for (int c = 0; c < NY; c++)
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) acc[c] = _mm256_add_epi16(acc[c], _mm256_maddubs_epi16(cx[j], yq(c, 4 * g + j)));
        }
        for (int c = 0; c < NY; c++) out[r][c] = hsum(_mm256_cvtepi32_ps(acc[c]));
    }
}

/* The split int32 sums of weight group g (codes cx) with activation row c,
 * as ryot's tile computes them: fold, vphaddw, vpmaddwd. */
static inline __m256i group_sums(const __m256i cx[4], int c, int g) {
    const __m128i one = _mm_set1_epi16(1);
    __m128i f[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) f[j] = fold16(_mm256_maddubs_epi16(cx[j], yq(c, 4 * g + j)));
    return _mm256_set_m128i(_mm_madd_epi16(_mm_hadd_epi16(f[2], f[3]), one),
                            _mm_madd_epi16(_mm_hadd_epi16(f[0], f[1]), one));
}

static void run_reduce(void) {
    for (int r = 0; r < NR; r++) {
        __m256i acc[NY];
#pragma GCC unroll 8
        for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_si256();
        for (int g = 0; g < NG; g++) {
            __m256i cx[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) cx[j] = unpack(W[r][4 * g + j].qs);
#pragma GCC unroll 8
            for (int c = 0; c < NY; c++) {
                const __m256i h = group_sums(cx, c, g);
                acc[c] = _mm256_add_epi32(acc[c], h);
            }
        }
        for (int c = 0; c < NY; c++) out[r][c] = hsum(_mm256_cvtepi32_ps(acc[c]));
    }
}

static __m256 dyy[NY][NG], hy[NY][NG];
static void run_full(void) {
    for (int r = 0; r < NR; r++) {
        __m256 acc[NY], accm[NY];
#pragma GCC unroll 8
        for (int c = 0; c < NY; c++) acc[c] = accm[c] = _mm256_setzero_ps();
        for (int g = 0; g < NG; g++) {
            const __m256 hx = half4((const uint8_t *)&W[r][4 * g], sizeof(blk_q4_1)), dxx = _mm256_moveldup_ps(hx);
            __m256i cx[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) cx[j] = unpack(W[r][4 * g + j].qs);
#pragma GCC unroll 8
            for (int c = 0; c < NY; c++) {
                const __m256i h = group_sums(cx, c, g);
                acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dxx, dyy[c][g]), _mm256_cvtepi32_ps(h), acc[c]);
                accm[c] = _mm256_fmadd_ps(hx, hy[c][g], accm[c]); /* min terms in the odd lanes */
            }
        }
        for (int c = 0; c < NY; c++) out[r][c] = hsum(acc[c]) + hsum(accm[c]);
    }
}

static double best_of(void (*fn)(void)) {
    double best = 1e30;
    for (int rep = 0; rep < 20; rep++) {
        const double t0 = now();
        for (int it = 0; it < 20; it++) {
            fn();
            sink = out[it % NR][it % NY];
        }
        const double t = (now() - t0) / 20;
        if (t < best) best = t;
    }
    return 2.0 * 32 * NB * NR * NY / best * 1e-9;
}

int main(void) {
    srand(7);
    for (int r = 0; r < NR; r++)
        for (int b = 0; b < NB; b++) {
            W[r][b].d = (uint16_t)(0x2000 + rand() % 0x400), W[r][b].m = (uint16_t)(0xa000 + rand() % 0x400);
            for (int i = 0; i < 16; i++) W[r][b].qs[i] = (uint8_t)rand();
        }
    for (int c = 0; c < NY; c++)
        for (int b = 0; b < NB; b++) {
            Y[c][b].d = (uint16_t)(0x2000 + rand() % 0x400), Y[c][b].s = (uint16_t)(0x3000 + rand() % 0x400);
            for (int i = 0; i < 32; i++) Y[c][b].qs[i] = (int8_t)rand();
        }
    for (int c = 0; c < NY; c++)
        for (int g = 0; g < NG; g++) {
            hy[c][g] = half4((const uint8_t *)&Y[c][4 * g], sizeof(blk_q8_1));
            dyy[c][g] = _mm256_moveldup_ps(hy[c][g]);
        }
    printf("Q4_1 x Q8_1 tile, 1 x %d rows of %d, GFLOP/s (best of 20):\n", NY, NB * 32);
    printf("  multiply (vpmaddubsw + add only)   %6.1f\n", best_of(run_multiply));
    printf("  reduce   (+ per-block int32 sums)  %6.1f\n", best_of(run_reduce));
    printf("  full     (+ scales and min terms)  %6.1f\n", best_of(run_full));
    return 0;
}
