#include "engine/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/ops.h"
#include "kernels/kernels.h"

/* scratch: q rows (MAX_ROWS x dk) | v tile (TILE_KV x dv) | scores (MAX_ROWS x
 * TILE_KV) | acc (MAX_ROWS x dv) | m, l (MAX_ROWS) */
size_t attn_scratch_floats(const attn_desc *d) {
    return (size_t)ATTN_MAX_ROWS * d->head_dim + (size_t)ATTN_TILE_KV * d->head_dim_v +
           (size_t)ATTN_MAX_ROWS * ATTN_TILE_KV + (size_t)ATTN_MAX_ROWS * d->head_dim_v + 2 * ATTN_MAX_ROWS + 16;
}

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

void attn_flash(const attn_desc *d, const float *q, size_t q_stride, int n_q, int group, int pos0,
                const uint16_t *k, const uint16_t *v, float *out, size_t o_stride, float *scratch) {
    const int dk = d->head_dim, dv = d->head_dim_v, G = group, rows = n_q * group;
    RYOT_ASSERT(n_q >= 1 && group >= 1 && rows <= ATTN_MAX_ROWS);
    const kernel_traits *f16 = kernels_get(RYOT_TYPE_F16);
    const ops_table *ops = d->ops ? d->ops : ops_table_ref();
    float *qc = scratch;                                /* row r = i*G + g */
    float *vt = qc + (size_t)ATTN_MAX_ROWS * dk;
    float *sc = vt + (size_t)ATTN_TILE_KV * dv;
    float *acc = sc + (size_t)ATTN_MAX_ROWS * ATTN_TILE_KV;
    float *m = acc + (size_t)ATTN_MAX_ROWS * dv;
    float *l = m + ATTN_MAX_ROWS;
    /* Q rounded to F16: llama.cpp's CPU flash attention converts Q to the F16
     * of the K cache before the dot products. */
    for (int i = 0; i < n_q; i++)
        for (int g = 0; g < G; g++) {
            const float *src = q + (size_t)i * q_stride + (size_t)g * dk;
            float *dst = qc + ((size_t)i * G + g) * dk;
            for (int c = 0; c < dk; c++) dst[c] = ops_round_f16(src[c]);
        }
    for (int r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    memset(acc, 0, (size_t)rows * dv * sizeof(float));
    const int kv_end = pos0 + n_q; /* exclusive */
    const int kv_lo = d->window > 0 ? imax(0, pos0 - d->window + 1) : 0;
    for (int j0 = kv_lo / ATTN_TILE_KV * ATTN_TILE_KV; j0 < kv_end; j0 += ATTN_TILE_KV) {
        const int jn = imin(ATTN_TILE_KV, kv_end - j0);
        /* positions that see part of this tile: i with lo_i < j0 + jn and p_i >= j0 */
        const int i_first = imax(0, j0 - pos0);
        if (i_first >= n_q) break;
        int i_last = n_q; /* exclusive; with a window, late positions may not reach back to j0 */
        if (d->window > 0) i_last = imin(n_q, j0 + jn - 1 + d->window - pos0);
        if (i_first >= i_last) continue;
        /* scores[r][j] = q_r . k_(j0+j) for the rows that need this tile */
        f16->vec_dot_rows(dk, jn, (i_last - i_first) * G, k + (size_t)j0 * dk, (size_t)dk * sizeof(uint16_t),
                          qc + (size_t)i_first * G * dk, (size_t)dk * sizeof(float),
                          sc + (size_t)i_first * G * ATTN_TILE_KV, ATTN_TILE_KV);
        f16->to_float(v + (size_t)j0 * dv, vt, (int64_t)jn * dv);
        for (int r = i_first * G; r < i_last * G; r++) {
            const int p = pos0 + r / G;
            const int lo = d->window > 0 ? imax(j0, p - d->window + 1) : j0;
            const int hi = imin(j0 + jn, p + 1);
            if (lo >= hi) continue;
            ops->softmax_pv(sc + (size_t)r * ATTN_TILE_KV + (lo - j0), hi - lo, d->scale, &m[r], &l[r],
                            acc + (size_t)r * dv, vt + (size_t)(lo - j0) * dv, dv);
        }
    }
    for (int r = 0; r < rows; r++) {
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        float *o = out + (size_t)(r / G) * o_stride + (size_t)(r % G) * dv;
        const float *a = acc + (size_t)r * dv;
        for (int c = 0; c < dv; c++) o[c] = a[c] * inv;
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
                s += (double)ops_round_f16(q[(size_t)i * q_stride + c]) * ryot_fp16_to_fp32(k[(size_t)j * dk + c]);
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
