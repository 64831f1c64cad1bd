#include "benchsuite/micro.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

typedef struct bw_part {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bw_part;

/* Four independent sums, so the adds are not one dependency chain. */
static void *bw_sum(void *arg) {
    bw_part *pt = arg;
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

#define MAX_BW_THREADS 64

ryot_status micro_membw(size_t bytes, int n_threads, int passes, double *gbps, ryot_error *err) {
    if (n_threads < 1 || n_threads > MAX_BW_THREADS || passes < 1 || bytes < 4096)
        return ryot_fail(err, RYOT_ERR_INVALID, "membw: bad arguments");
    size_t n = bytes / 8;
    uint64_t *buf = malloc(n * 8);
    if (!buf) return ryot_fail(err, RYOT_ERR_NOMEM, "membw: cannot allocate %zu bytes", bytes);
    for (size_t i = 0; i < n; i++) buf[i] = i; /* touch every page */
    double best = INFINITY;
    ryot_status st = RYOT_OK;
    for (int r = 0; r < passes && st == RYOT_OK; r++) {
        bw_part parts[MAX_BW_THREADS];
        pthread_t th[MAX_BW_THREADS];
        int started = 0;
        double t0 = ryot_now_s();
        for (int t = 0; t < n_threads; t++) {
            parts[t].p = buf + n / (size_t)n_threads * (size_t)t;
            parts[t].n = t == n_threads - 1 ? n - n / (size_t)n_threads * (size_t)t : n / (size_t)n_threads;
            if (pthread_create(&th[t], NULL, bw_sum, &parts[t]) != 0) {
                st = ryot_fail(err, RYOT_ERR_INTERNAL, "membw: pthread_create failed");
                break;
            }
            started++;
        }
        for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
        double el = ryot_now_s() - t0;
        if (el < best) best = el;
    }
    free(buf);
    if (st == RYOT_OK) *gbps = (double)(n * 8) / best * 1e-9;
    return st;
}

static volatile float g_sink;

/* The decode product as the engine runs it: all rows against one
 * activation row in one vec_dot_rows call (out: rows floats). */
static double time_dot(const kernel_traits *k, int64_t rows, int64_t n, const uint8_t *w, size_t rb, const void *y,
                       size_t yb, float *out) {
    double best = INFINITY;
    for (int rep = 0; rep < 7; rep++) {
        int iters = 0;
        double t0 = ryot_thread_cpu_s(), el;
        do {
            k->vec_dot_rows(n, rows, 1, w, rb, y, yb, out, (size_t)rows);
            g_sink = out[rows - 1];
            iters++;
            el = ryot_thread_cpu_s() - t0;
        } while (el < MICRO_MIN_REP_S);
        if (el / iters < best) best = el / iters;
    }
    return best;
}

static double time_rows(const kernel_traits *k, int64_t nrx, int64_t nry, int64_t n, const uint8_t *w, size_t rb,
                        const uint8_t *y, size_t yb, float *out) {
    double best = INFINITY;
    for (int rep = 0; rep < 5; rep++) {
        int iters = 0;
        double t0 = ryot_thread_cpu_s(), el;
        do {
            k->vec_dot_rows(n, nrx, nry, w, rb, y, yb, out, (size_t)nrx);
            g_sink = out[0];
            iters++;
            el = ryot_thread_cpu_s() - t0;
        } while (el < MICRO_MIN_REP_S);
        if (el / iters < best) best = el / iters;
    }
    return best;
}

ryot_status micro_kernel(ryot_type t, kernel_isa isa, int64_t rows, int64_t n, micro_kernel_result *out,
                         ryot_error *err) {
    const int64_t nry = 64, small_rows = 64;
    int64_t nrx = isa == KERNEL_ISA_REF ? 16 : 256; /* the scalar reference is slow */
    const kernel_traits *k = kernels_get_isa(isa, t), *ref = kernels_ref(t);
    if (!k || !k->supported || !k->vec_dot || !ref || !ref->from_float)
        return ryot_fail(err, RYOT_ERR_UNSUPPORTED, "no %s kernel for %s", kernel_isa_name(isa), ryot_type_name(t));
    if (rows < nrx || rows < small_rows) return ryot_fail(err, RYOT_ERR_INVALID, "need at least %lld rows", (long long)nrx);
    uint64_t rb64, yb64;
    if (!ryot_row_size(t, (uint64_t)n, &rb64) || !ryot_row_size(ref->vec_dot_type, (uint64_t)n, &yb64))
        return ryot_fail(err, RYOT_ERR_INVALID, "row of %lld is not a whole number of %s blocks", (long long)n,
                         ryot_type_name(t));
    size_t rb = (size_t)rb64, yb = (size_t)yb64;
    uint8_t *w = malloc(rb * (size_t)rows), *y = malloc(yb * (size_t)nry);
    const int64_t n_res = nrx * nry > rows ? nrx * nry : rows;
    float *f = malloc((size_t)(n * nry) * sizeof *f), *res = malloc((size_t)n_res * sizeof *res);
    ryot_status st = RYOT_OK;
    if (!w || !y || !f || !res) {
        st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory for a %lld x %lld matrix", (long long)rows, (long long)n);
        goto out;
    }
    ryot_rng rng;
    ryot_rng_seed(&rng, 88172645463325252ull);
    for (int64_t r = 0; r < rows; r++) {
        if (r < 256) {
            for (int64_t i = 0; i < n; i++) f[i] = (float)(0.1 * ryot_rng_uniform(&rng) - 0.05);
            ref->from_float(f, w + rb * (size_t)r, n);
        } else { /* the reference K-quantizers are slow: repeat earlier rows */
            memcpy(w + rb * (size_t)r, w + rb * (size_t)(r % 256), rb);
        }
    }
    for (int64_t i = 0; i < n * nry; i++) f[i] = (float)(2 * ryot_rng_uniform(&rng) - 1);
    for (int64_t j = 0; j < nry; j++) kernels_ref(ref->vec_dot_type)->from_float(f + j * n, y + yb * (size_t)j, n);
    double tb = time_dot(k, rows, n, w, rb, y, yb, res);
    double ts = time_dot(k, small_rows, n, w, rb, y, yb, res);
    double tr = time_rows(k, nrx, nry, n, w, rb, y, yb, res);
    out->type = t;
    out->isa = isa;
    out->weight_bytes = rb * (size_t)rows;
    out->dot_gbps = (double)rb * (double)rows / tb * 1e-9;
    out->dot_l2_gbps = (double)rb * (double)small_rows / ts * 1e-9;
    out->rows_gflops = 2.0 * (double)n * (double)nrx * (double)nry / tr * 1e-9;
out:
    free(w);
    free(y);
    free(f);
    free(res);
    return st;
}

static ryot_status encode_best(const tokenizer *tok, bool cached, const char *text, size_t n, int reps, size_t *n_tok,
                               double *cpu, double *wall, ryot_error *err) {
    *cpu = INFINITY;
    token_buf ids = {0};
    ryot_status st = RYOT_OK;
    for (int r = 0; r < reps && st == RYOT_OK; r++) {
        tokenizer_scratch *s = cached ? tokenizer_scratch_new(tok) : NULL;
        if (cached && !s) {
            st = ryot_fail(err, RYOT_ERR_NOMEM, "out of memory");
            break;
        }
        ids.n = 0;
        double w0 = ryot_now_s(), t0 = ryot_thread_cpu_s();
        st = tokenizer_encode(tok, s, text, n, 0, &ids, err);
        double dt = ryot_thread_cpu_s() - t0, dw = ryot_now_s() - w0;
        if (dt < *cpu) *cpu = dt, *wall = dw;
        tokenizer_scratch_free(s);
    }
    *n_tok = ids.n;
    token_buf_free(&ids);
    return st;
}

ryot_status micro_tokenizer(const char *gguf_path, const char *text, size_t n, int reps, micro_tok_result *out,
                            ryot_error *err) {
    if (reps < 1 || n == 0) return ryot_fail(err, RYOT_ERR_INVALID, "tokenizer bench: empty text or no repetitions");
    gguf_file *f = NULL;
    tokenizer *tok = NULL;
    ryot_status st = gguf_open(gguf_path, &f, err);
    if (st == RYOT_OK) st = tokenizer_load(f, &tok, err);
    if (f) gguf_close(f);
    if (st != RYOT_OK) return st;
    size_t n1, n2;
    double c, u, wall, wall2;
    st = encode_best(tok, true, text, n, reps, &n1, &c, &wall, err);
    if (st == RYOT_OK) st = encode_best(tok, false, text, n, reps, &n2, &u, &wall2, err);
    if (st == RYOT_OK && n1 != n2)
        st = ryot_fail(err, RYOT_ERR_INTERNAL, "cached and uncached token counts differ (%zu, %zu)", n1, n2);
    if (st == RYOT_OK) {
        out->bytes = n;
        out->tokens = n1;
        out->cached_mbps = (double)n / c / 1e6;
        out->nocache_mbps = (double)n / u / 1e6;
        out->wall_mbps = (double)n / wall / 1e6;
    }
    tokenizer_free(tok);
    return st;
}
