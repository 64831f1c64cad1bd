/* The AVX-512 kernels against the AVX2 ones: bitwise equal, for every
 * supported type, every path (vec_dot, the decode rows path, tiles of
 * activation rows with their remainders, rows too long for the tiles) and
 * both quantized and raw random blocks (every code value, negative Q6_K
 * scales, Q8_0 code -128).
 *
 * avx512_kernels.c promises this equality (it computes the same integers
 * and the same float operations as the AVX2 level), so the AVX-512 level
 * inherits what test_kernels.c and test_golden.c establish for AVX2.  Two
 * builds of that file are checked: the one SIMDe emulates
 * (-DRYOT_AVX512_EMULATE, linked into this test only), which runs on every
 * CPU with AVX2 and so is checked on the development and CI machines, and
 * the native one wherever the CPU has AVX-512 (kernels_get_isa). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/kernels_impl.h"

static const ryot_type types[] = {RYOT_TYPE_F32,  RYOT_TYPE_F16,  RYOT_TYPE_BF16, RYOT_TYPE_Q4_0,
                                  RYOT_TYPE_Q4_1, RYOT_TYPE_Q5_0, RYOT_TYPE_Q5_1, RYOT_TYPE_Q8_0,
                                  RYOT_TYPE_Q4_K, RYOT_TYPE_Q5_K, RYOT_TYPE_Q6_K};
#define N_TYPES (sizeof types / sizeof types[0])

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double urand(void) {
    return (double)(next() >> 11) / 9007199254740992.0;
}

static void fill_floats(float *x, int64_t n, double scale) {
    double bs = 1;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) bs = 0.25 + 1.5 * urand();
        double g = urand() + urand() + urand() + urand() - 2.0;
        if (urand() < 0.005) g *= 8;
        x[i] = (float)(scale * bs * g);
    }
}

static size_t row_bytes(ryot_type t, int64_t n) {
    uint64_t b = 0;
    if (!ryot_row_size(t, (uint64_t)n, &b)) fail_msg("row size %s n=%lld", ryot_type_name(t), (long long)n);
    return (size_t)b;
}

static void set_f16(uint8_t *p, float v) {
    uint16_t h = ryot_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Overwrite a raw random weight row's fp16 scale fields with sane values
 * (random bits would make NaNs and infinities), keeping every code byte. */
static void sanitize_weights(ryot_type t, uint8_t *row, int64_t n) {
    const ryot_type_info *ti = ryot_type_get(t);
    const int64_t nb = n / ti->block_size;
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = row + b * ti->type_size;
        switch (t) {
        case RYOT_TYPE_Q4_0:
        case RYOT_TYPE_Q5_0:
        case RYOT_TYPE_Q8_0: set_f16(p, (float)(0.001 + 0.01 * urand())); break;
        case RYOT_TYPE_Q4_1:
        case RYOT_TYPE_Q5_1:
            set_f16(p, (float)(0.001 + 0.01 * urand()));
            set_f16(p + 2, (float)(-0.1 * urand()));
            break;
        case RYOT_TYPE_Q4_K:
        case RYOT_TYPE_Q5_K:
            set_f16(p, (float)(0.001 + 0.01 * urand()));
            set_f16(p + 2, (float)(0.001 + 0.01 * urand()));
            break;
        case RYOT_TYPE_Q6_K: set_f16(p + ti->type_size - 2, (float)(0.001 + 0.01 * urand())); break;
        default: break;
        }
    }
}

/* Activation rows of raw random codes in [-127, 127] (what the activation
 * quantizers produce) with sane scales and consistent sums. */
static void raw_activation(ryot_type ty, uint8_t *row, int64_t n) {
    if (ty == RYOT_TYPE_Q8_K) {
        block_q8_K *b = (block_q8_K *)row;
        for (int64_t i = 0; i < n / QK_K; i++) {
            b[i].d = (float)(0.001 + 0.01 * urand());
            for (int k = 0; k < QK_K; k++) b[i].qs[k] = (int8_t)((int)(next() % 255) - 127);
            for (int k = 0; k < QK_K / 16; k++) {
                int s = 0;
                for (int e = 0; e < 16; e++) s += b[i].qs[16 * k + e];
                b[i].bsums[k] = (int16_t)s;
            }
        }
        return;
    }
    const bool q81 = ty == RYOT_TYPE_Q8_1;
    const size_t bsz = q81 ? sizeof(block_q8_1) : sizeof(block_q8_0);
    for (int64_t i = 0; i < n / QK; i++) {
        uint8_t *p = row + i * bsz;
        int8_t *qs = (int8_t *)(p + (q81 ? 4 : 2));
        int sum = 0;
        for (int k = 0; k < QK; k++) sum += qs[k] = (int8_t)((int)(next() % 255) - 127);
        const float d = (float)(0.001 + 0.01 * urand());
        set_f16(p, d);
        if (q81) set_f16(p + 2, d * (float)sum);
    }
}

typedef struct rows_data {
    ryot_type tx, ty;
    int64_t n;
    int nrx, nry;
    size_t bx, by;
    uint8_t *x, *y;
} rows_data;

static void data_make(rows_data *d, const kernel_level *ref, ryot_type t, int64_t n, int nrx, int nry, bool raw) {
    d->tx = t;
    d->ty = ref->traits[t].vec_dot_type;
    d->n = n, d->nrx = nrx, d->nry = nry;
    /* odd padding keeps only the blocks' natural alignment, as in files */
    d->bx = row_bytes(t, n) + (ryot_type_get(t)->block_size == 1 ? 20 : 34);
    d->by = row_bytes(d->ty, n) + 64;
    d->x = calloc((size_t)nrx, d->bx);
    d->y = calloc((size_t)nry, d->by);
    float *f = malloc((size_t)n * sizeof *f);
    const bool float_type = ryot_type_get(t)->block_size == 1;
    for (int i = 0; i < nrx; i++) {
        uint8_t *row = d->x + (size_t)i * d->bx;
        if (raw && !float_type) {
            for (size_t k = 0; k < row_bytes(t, n); k++) row[k] = (uint8_t)next();
            sanitize_weights(t, row, n);
        } else {
            fill_floats(f, n, 0.05);
            ref->traits[t].from_float(f, row, n);
        }
    }
    for (int j = 0; j < nry; j++) {
        uint8_t *row = d->y + (size_t)j * d->by;
        if (raw && !float_type) {
            raw_activation(d->ty, row, n);
        } else {
            fill_floats(f, n, 1.0);
            ref->traits[d->ty].from_float(f, row, n);
        }
    }
    free(f);
}

static void data_free(rows_data *d) {
    free(d->x);
    free(d->y);
}

static int64_t sizes_for(ryot_type t, const int64_t **out) {
    /* 32-blocks: every remainder of the groups of 4, SmolLM2's 576 (18
     * blocks) and 1536, a row past the AVX-512 pair-group tiles' 8192 (289
     * blocks), and a row longer than the tiles take (1026 blocks) */
    static const int64_t s1[] = {1, 7, 8, 15, 16, 31, 32, 33, 47, 100, 576, 1000};
    static const int64_t s32[] = {32, 64, 96, 128, 160, 192, 224, 256, 288, 576, 1536, 9248, 32832};
    static const int64_t s256[] = {256, 512, 768, 2816};
    switch (ryot_type_get(t)->block_size) {
    case 1: *out = s1; return sizeof s1 / sizeof s1[0];
    case 32: *out = s32; return sizeof s32 / sizeof s32[0];
    default: *out = s256; return sizeof s256 / sizeof s256[0];
    }
}

/* Every pair of a 5 x 11 problem (a tile of 8 activation rows and a
 * remainder of 3, or 4-row tiles; pairs of weight rows and an odd one) through each path of
 * `fast`, against AVX2's vec_dot of the pair. */
static void compare_level(const char *name, const kernel_traits *fast, const kernel_traits *avx2, ryot_type t,
                          const rows_data *d, const char *what) {
    enum { NRX = 5, NRY = 11 };
    float all[NRY][NRX], col[NRX], row[NRY], two[2][NRX];
    fast->vec_dot_rows(d->n, NRX, NRY, d->x, d->bx, d->y, d->by, &all[0][0], NRX);
    fast->vec_dot_rows(d->n, NRX, 2, d->x, d->bx, d->y, d->by, &two[0][0], NRX); /* one tile of a pair */
    if (memcmp(two, all, sizeof two))
        fail_msg("%s %s %s n=%lld: rows 5x2 differ from rows 5x11", name, ryot_type_name(t), what, (long long)d->n);
    for (int j = 0; j < NRY; j++) {
        const uint8_t *yj = d->y + (size_t)j * d->by;
        fast->vec_dot_rows(d->n, NRX, 1, d->x, d->bx, yj, d->by, col, NRX);
        for (int i = 0; i < NRX; i++) {
            const uint8_t *xi = d->x + (size_t)i * d->bx;
            float want, got, one;
            avx2->vec_dot(d->n, &want, xi, yj);
            fast->vec_dot(d->n, &got, xi, yj);
            fast->vec_dot_rows(d->n, 1, 1, xi, d->bx, yj, d->by, &one, 1);
            if (j == 0) fast->vec_dot_rows(d->n, 1, NRY, xi, d->bx, d->y, d->by, row, 1);
            const float paths[4] = {got, one, col[i], all[j][i]};
            static const char *const path_names[4] = {"vec_dot", "rows 1x1", "rows 5x1", "rows 5x11"};
            for (int p = 0; p < 4; p++)
                if (memcmp(&paths[p], &want, sizeof want))
                    fail_msg("%s %s %s n=%lld pair (%d,%d): %s %.9g, avx2 %.9g", name, ryot_type_name(t), what,
                             (long long)d->n, i, j, path_names[p], paths[p], want);
            if (j == 0) {
                for (int jj = 0; jj < NRY; jj++) {
                    float w;
                    avx2->vec_dot(d->n, &w, xi, d->y + (size_t)jj * d->by);
                    if (memcmp(&row[jj], &w, sizeof w))
                        fail_msg("%s %s %s n=%lld pair (%d,%d): rows 1x11 %.9g, avx2 %.9g", name, ryot_type_name(t),
                                 what, (long long)d->n, i, jj, row[jj], w);
                }
            }
        }
    }
}

static kernel_level lv_ref, lv_avx2, lv_emu;

static int setup(void **state) {
    (void)state;
    kernels_ref_fill(&lv_ref);
    lv_avx2 = lv_ref;
    kernels_avx2_fill(&lv_avx2);
    lv_emu = lv_avx2;
    kernels_avx512_emu_fill(&lv_emu);
    return 0;
}

static void check_level(const char *name, const kernel_traits *(*get)(ryot_type)) {
    for (size_t k = 0; k < N_TYPES; k++) {
        const ryot_type t = types[k];
        const int64_t *sizes;
        const int64_t ns = sizes_for(t, &sizes);
        for (int64_t s = 0; s < ns; s++)
            for (int raw = 0; raw < 2; raw++) {
                rows_data d;
                data_make(&d, &lv_ref, t, sizes[s], 5, 11, raw);
                compare_level(name, get(t), &lv_avx2.traits[t], t, &d, raw ? "raw" : "quantized");
                data_free(&d);
            }
        printf("  %s %-5s: bitwise equal to avx2 (%lld sizes, quantized and raw blocks)\n", name, ryot_type_name(t),
               (long long)ns);
    }
}

/* The attention ops: softmax_pv (its weights, m, l and the F16-rounded
 * accumulator) and qk_scores, bitwise against AVX2's. */
static void check_ops(const char *name, const kernel_ops *fast) {
    const kernel_ops *avx2 = &lv_avx2.ops;
    static const int ns[] = {1, 5, 32, 64}, dvs[] = {7, 64, 80, 88, 128, 256};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof dvs / sizeof dvs[0]; b++) {
            const int n = ns[a], dv = dvs[b];
            float *s1 = malloc(n * sizeof(float)), *s2 = malloc(n * sizeof(float));
            float *v = malloc((size_t)n * dv * sizeof(float));
            float *acc1 = malloc(dv * sizeof(float)), *acc2 = malloc(dv * sizeof(float));
            for (int j = 0; j < n; j++) s1[j] = s2[j] = (float)(8 * (urand() - 0.3) * (1 + j % 3));
            for (int64_t i = 0; i < (int64_t)n * dv; i++) v[i] = ryot_fp16_to_fp32(ryot_fp32_to_fp16((float)(urand() - 0.5)));
            for (int i = 0; i < dv; i++) acc1[i] = acc2[i] = ryot_fp16_to_fp32(ryot_fp32_to_fp16((float)(urand() - 0.5)));
            float m1 = a % 2 ? -INFINITY : 1.5f, m2 = m1, l1 = a % 2 ? 0 : 3.0f, l2 = l1;
            avx2->softmax_pv(s1, n, 0.125f, &m1, &l1, acc1, v, dv);
            fast->softmax_pv(s2, n, 0.125f, &m2, &l2, acc2, v, dv);
            if (memcmp(s1, s2, n * sizeof(float)) || memcmp(&m1, &m2, sizeof m1) || memcmp(&l1, &l2, sizeof l1) ||
                memcmp(acc1, acc2, dv * sizeof(float)))
                fail_msg("%s softmax_pv n=%d dv=%d differs from avx2", name, n, dv);
            free(s1), free(s2), free(v), free(acc1), free(acc2);
        }
    static const int dks[] = {12, 40, 64, 80, 96, 256}, rows_[] = {1, 3};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof dks / sizeof dks[0]; b++)
            for (size_t r = 0; r < 2; r++) {
                const int n = ns[a], dk = dks[b], rows = rows_[r], qs = dk + 3, ss = n + 2;
                float *q = malloc((size_t)rows * qs * sizeof(float)), *kt = malloc((size_t)n * dk * sizeof(float));
                uint16_t *k = malloc((size_t)n * dk * sizeof(uint16_t));
                float *o1 = calloc((size_t)rows * ss, sizeof(float)), *o2 = calloc((size_t)rows * ss, sizeof(float));
                for (int i = 0; i < rows * qs; i++) q[i] = (float)(urand() - 0.5);
                for (int i = 0; i < n * dk; i++) k[i] = ryot_fp32_to_fp16((float)(2 * urand() - 1));
                avx2->qk_scores(q, (size_t)qs, rows, k, n, dk, kt, o1, (size_t)ss);
                fast->qk_scores(q, (size_t)qs, rows, k, n, dk, kt, o2, (size_t)ss);
                if (memcmp(o1, o2, (size_t)rows * ss * sizeof(float)))
                    fail_msg("%s qk_scores n=%d dk=%d rows=%d differs from avx2", name, n, dk, rows);
                free(q), free(kt), free(k), free(o1), free(o2);
            }
    printf("  %s ops: softmax_pv, qk_scores bitwise equal to avx2\n", name);
}

static const kernel_traits *emu_get(ryot_type t) {
    return &lv_emu.traits[t];
}

static const kernel_traits *native_get(ryot_type t) {
    return kernels_get_isa(KERNEL_ISA_AVX512, t);
}

static void test_emulated(void **state) {
    (void)state;
    if (kernels_best_isa() < KERNEL_ISA_AVX2) skip(); /* SIMDe builds on AVX2 here */
    check_level("avx512 (SIMDe)", emu_get);
    check_ops("avx512 (SIMDe)", &lv_emu.ops);
}

static void test_native(void **state) {
    (void)state;
    if (!kernels_get_isa(KERNEL_ISA_AVX512, RYOT_TYPE_F32)) {
        printf("  avx512: this CPU has no AVX-512, native kernels not run\n");
        skip();
    }
    check_level("avx512", native_get);
    check_ops("avx512", kernels_ops_isa(KERNEL_ISA_AVX512));
}

/* The comparison can fail: a kernel off by one code in one block is caught. */
static void test_catches_difference(void **state) {
    (void)state;
    if (kernels_best_isa() < KERNEL_ISA_AVX2) skip();
    rows_data d;
    data_make(&d, &lv_ref, RYOT_TYPE_Q4_1, 576, 1, 1, false);
    float a, b;
    lv_emu.traits[RYOT_TYPE_Q4_1].vec_dot(d.n, &a, d.x, d.y);
    d.x[4 + 7 * sizeof(block_q4_1)] ^= 1; /* one code of block 7 */
    lv_emu.traits[RYOT_TYPE_Q4_1].vec_dot(d.n, &b, d.x, d.y);
    assert_true(memcmp(&a, &b, sizeof a) != 0);
    data_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emulated),
        cmocka_unit_test(test_native),
        cmocka_unit_test(test_catches_difference),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
