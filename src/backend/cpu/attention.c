#include "backend/cpu/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "backend/cpu/ops.h"
#include "kernels/kernels.h"

/* scratch: q rows (MAX_ROWS x dk) | v tile (TILE_KV x dv) | scores (MAX_ROWS x
 * TILE_KV) | acc (MAX_ROWS x dv) | m, l (MAX_ROWS) | k tile (TILE_KV x dk) */
size_t attn_scratch_floats(const attn_desc *d) {
    return (size_t)ATTN_MAX_ROWS * d->head_dim + (size_t)ATTN_TILE_KV * d->head_dim_v +
           (size_t)ATTN_MAX_ROWS * ATTN_TILE_KV + (size_t)ATTN_MAX_ROWS * d->head_dim_v + 2 * ATTN_MAX_ROWS +
           (size_t)ATTN_TILE_KV * d->head_dim + 16;
}

static float *k_tile_scratch(const attn_desc *d, float *scratch) {
    return scratch + (size_t)ATTN_MAX_ROWS * d->head_dim + (size_t)ATTN_TILE_KV * d->head_dim_v +
           (size_t)ATTN_MAX_ROWS * ATTN_TILE_KV + (size_t)ATTN_MAX_ROWS * d->head_dim_v + 2 * ATTN_MAX_ROWS;
}

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* Runs the rows' online softmax over the visible keys in [ka, kb) (ka a
 * multiple of ATTN_TILE_KV), updating m, l, acc (rows x dv, unnormalized). */
static const int32_t zero_block[1] = {0};

attn_kv attn_kv_contig(const uint16_t *k, const uint16_t *v) {
    attn_kv kv = {.k = k, .v = v, .blocks = zero_block, .block_size = 1 << 30};
    return kv;
}

static void attn_range(const attn_desc *d, const float *q, size_t q_stride, int n_q, int G, int pos0, int ka, int kb,
                       const attn_kv *kv, float *m, float *l, float *acc, float *scratch) {
    const int dk = d->head_dim, dv = d->head_dim_v, rows = n_q * G;
    RYOT_ASSERT(n_q >= 1 && G >= 1 && rows <= ATTN_MAX_ROWS);
    const kernel_traits *f16 = kernels_get(RYOT_TYPE_F16);
    const kernel_ops *ops = d->ops ? d->ops : kernels_ops_ref();
    float *qc = scratch; /* row r = i*G + g */
    float *vt = qc + (size_t)ATTN_MAX_ROWS * dk;
    float *sc = vt + (size_t)ATTN_TILE_KV * dv;
    float *kt = k_tile_scratch(d, scratch);
    /* Q rounded to F16: llama.cpp's CPU flash attention converts Q to the F16
     * of the K cache before the dot products. */
    for (int i = 0; i < n_q; i++)
        for (int g = 0; g < G; g++) {
            const float *src = q + (size_t)i * q_stride + (size_t)g * dk;
            float *dst = qc + ((size_t)i * G + g) * dk;
            for (int c = 0; c < dk; c++) dst[c] = kernel_round_f16(src[c]);
        }
    const int kv_end = imin(kb, pos0 + n_q); /* exclusive */
    const int bs = kv->block_size, tile = imin(ATTN_TILE_KV, bs);
    RYOT_ASSERT(ka % tile == 0);
    for (int j0 = ka; j0 < kv_end; j0 += tile) {
        const int jn = imin(tile, kv_end - j0);
        const size_t blk = (size_t)kv->blocks[j0 / bs], off = (size_t)(j0 % bs);
        const uint16_t *k = kv->k + blk * kv->k_block_stride + off * dk;
        const uint16_t *v = kv->v + blk * kv->v_block_stride + off * dv;
        /* positions that see part of this tile: i with lo_i < j0 + jn and p_i >= j0 */
        const int i_first = imax(0, j0 - pos0);
        if (i_first >= n_q) break;
        int i_last = n_q; /* exclusive; with a window, late positions may not reach back to j0 */
        if (d->window > 0) i_last = imin(n_q, j0 + jn - 1 + d->window - pos0);
        if (i_first >= i_last) continue;
        /* scores[r][j] = q_r . k_(j0+j) for the rows that need this tile */
        ops->qk_scores(qc + (size_t)i_first * G * dk, (size_t)dk, (i_last - i_first) * G, k, jn, dk, kt,
                       sc + (size_t)i_first * G * ATTN_TILE_KV, ATTN_TILE_KV);
        f16->to_float(v, vt, (int64_t)jn * dv);
        for (int r = i_first * G; r < i_last * G; r++) {
            const int p = pos0 + r / G;
            const int lo = d->window > 0 ? imax(j0, p - d->window + 1) : j0;
            const int hi = imin(j0 + jn, p + 1);
            if (lo >= hi) continue;
            ops->softmax_pv(sc + (size_t)r * ATTN_TILE_KV + (lo - j0), hi - lo, d->scale, &m[r], &l[r],
                            acc + (size_t)r * dv, vt + (size_t)(lo - j0) * dv, dv);
        }
    }
    (void)rows;
}

static void state_init(int rows, int dv, float *m, float *l, float *acc) {
    for (int r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    memset(acc, 0, (size_t)rows * dv * sizeof(float));
}

void attn_flash(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0,
                const uint16_t *k, const uint16_t *v, float *out, size_t o_stride, float *scratch) {
    const attn_kv kv = attn_kv_contig(k, v);
    attn_flash_kv(d, q, q_stride, n_q, group, pos0, &kv, out, o_stride, scratch);
}

void attn_flash_kv(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0, const attn_kv *kv,
                   float *out, size_t o_stride, float *scratch) {
    const int dk = d->head_dim, dv = d->head_dim_v, G = group, rows = n_q * group;
    float *acc = scratch + (size_t)ATTN_MAX_ROWS * dk + (size_t)ATTN_TILE_KV * dv + (size_t)ATTN_MAX_ROWS * ATTN_TILE_KV;
    float *m = acc + (size_t)ATTN_MAX_ROWS * dv;
    float *l = m + ATTN_MAX_ROWS;
    state_init(rows, dv, m, l, acc);
    const int kv_lo = d->window > 0 ? imax(0, pos0 - d->window + 1) : 0;
    const int tile = imin(ATTN_TILE_KV, kv->block_size);
    attn_range(d, q, q_stride, n_q, G, pos0, kv_lo / tile * tile, pos0 + n_q, kv, m, l, acc, scratch);
    for (int r = 0; r < rows; r++) {
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        float *o = out + (size_t)(r / G) * o_stride + (size_t)(r % G) * dv;
        const float *a = acc + (size_t)r * dv;
        for (int c = 0; c < dv; c++) o[c] = a[c] * inv;
    }
}

size_t attn_part_floats(const attn_desc *d) { return (size_t)ATTN_MAX_ROWS * (d->head_dim_v + 2); }

void attn_partial(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0, int ka, int kb,
                  const uint16_t *k, const uint16_t *v, float *part, float *scratch) {
    const attn_kv kv = attn_kv_contig(k, v);
    attn_partial_kv(d, q, q_stride, n_q, group, pos0, ka, kb, &kv, part, scratch);
}

void attn_partial_kv(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0, int ka, int kb,
                     const attn_kv *kv, float *part, float *scratch) {
    const int rows = n_q * group, dv = d->head_dim_v;
    float *m = part, *l = m + rows, *acc = l + rows;
    state_init(rows, dv, m, l, acc);
    attn_range(d, q, q_stride, n_q, group, pos0, ka, kb, kv, m, l, acc, scratch);
}

void attn_merge(const attn_desc *d, int n_q, int group, const float *parts, size_t part_stride, int n_parts,
                float *out, size_t o_stride) {
    const int rows = n_q * group, dv = d->head_dim_v, G = group;
    for (int r = 0; r < rows; r++) {
        float mx = -INFINITY;
        for (int s = 0; s < n_parts; s++) mx = fmaxf(mx, parts[(size_t)s * part_stride + r]);
        float *o = out + (size_t)(r / G) * o_stride + (size_t)(r % G) * dv;
        for (int c = 0; c < dv; c++) o[c] = 0.0f;
        float sum = 0.0f;
        for (int s = 0; s < n_parts; s++) {
            const float *p = parts + (size_t)s * part_stride;
            if (p[r] == -INFINITY) continue; /* no visible key in this part */
            const float w = kernel_exp_neg(p[r] - mx);
            sum += w * p[rows + r];
            ops_axpy(o, w, p + 2 * (size_t)rows + (size_t)r * dv, dv);
        }
        ops_scale(o, sum > 0.0f ? 1.0f / sum : 0.0f, dv);
    }
}

void attn_naive(const attn_desc *d, const float *q, size_t q_stride, int n_q, int pos0, const uint16_t *k,
                const uint16_t *v, float *out, size_t o_stride) {
    const int dk = d->head_dim, dv = d->head_dim_v;
    const int n_kv = pos0 + n_q;
    double *w = malloc((size_t)n_kv * sizeof *w);
    double *o = malloc((size_t)dv * sizeof *o);
    RYOT_ASSERT(w && o);
    for (int i = 0; i < n_q; i++) {
        const int p = pos0 + i;
        const int lo = d->window > 0 ? imax(0, p - d->window + 1) : 0;
        double mx = -INFINITY;
        for (int j = lo; j <= p; j++) {
            double s = 0.0;
            for (int c = 0; c < dk; c++) /* Q in F16, as attn_flash */
                s += (double)kernel_round_f16(q[(size_t)i * q_stride + c]) * ryot_fp16_to_fp32(k[(size_t)j * dk + c]);
            w[j] = s * d->scale;
            if (w[j] > mx) mx = w[j];
        }
        double sum = 0.0;
        for (int j = lo; j <= p; j++) sum += (w[j] = exp(w[j] - mx));
        for (int c = 0; c < dv; c++) o[c] = 0.0;
        for (int j = lo; j <= p; j++)
            for (int c = 0; c < dv; c++) o[c] += w[j] * ryot_fp16_to_fp32(v[(size_t)j * dv + c]);
        for (int c = 0; c < dv; c++) out[(size_t)i * o_stride + c] = (float)(o[c] / sum);
    }
    free(w);
    free(o);
}
