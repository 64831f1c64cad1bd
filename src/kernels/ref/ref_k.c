/* Scalar reference for the 256-element K-quants (layouts in quants.h).
 *
 * Quantization: each sub-block gets a scale (and for Q4_K/Q5_K a min) from a
 * short search: start from its min/max, then alternate between assigning
 * codes and a least-squares refit of (scale, min), keeping the best.  The
 * sub-block scales are then themselves quantized (6 bits, or int8 for Q6_K)
 * against the super-block d/dmin, and the codes recomputed with the scales
 * as stored, so rounding of the scales does not bias the codes. */
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"

#define FP16(h) ryot_fp16_to_fp32(h)

static inline int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Fit x ~ scale*q - mn with q in 0..nmax, mn >= 0 (the min term is stored
 * unsigned).  Returns scale, writes *mn. */
static float fit_scale_min(const float *x, int n, int nmax, float *mn_out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        *mn_out = -lo;
        return 0;
    }
    float best_scale = (hi - lo) / nmax, best_mn = -lo, best_err = INFINITY;
    float scale = best_scale, mn = best_mn;
    for (int it = 0; it < 4; it++) {
        /* codes for the current (scale, mn), their error, then a refit */
        float iscale = 1.0f / scale, err = 0;
        double sq = 0, sqq = 0, sx = 0, sqx = 0;
        for (int i = 0; i < n; i++) {
            int q = clampi(ref_nearest_int((x[i] + mn) * iscale), 0, nmax);
            float e = scale * q - mn - x[i];
            err += e * e;
            sq += q;
            sqq += (double)q * q;
            sx += x[i];
            sqx += (double)q * x[i];
        }
        if (err < best_err) {
            best_err = err;
            best_scale = scale;
            best_mn = mn;
        }
        double det = n * sqq - sq * sq;
        if (det <= 0) break;
        double a = (n * sqx - sq * sx) / det, b = (sqq * sx - sq * sqx) / det; /* x ~ a q + b */
        if (b > 0) { /* min must be <= 0: refit the scale alone */
            b = 0;
            a = sqq > 0 ? sqx / sqq : 0;
        }
        if (a <= 0) break;
        scale = (float)a;
        mn = (float)-b;
    }
    *mn_out = best_mn;
    return best_scale;
}

/* Pack 6-bit scales and mins of 8 sub-blocks (inverse of q4k_scale_min). */
static void pack_scale_min(const uint8_t *sc, const uint8_t *m, uint8_t *s) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)((m[j] & 63) | (m[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): codes q[256], header fields. */
static void quantize_k_scale_min(const float *x, int nmax, uint8_t *q, uint16_t *d16, uint16_t *dmin16,
                                 uint8_t *scales) {
    float scale[8], mn[8], max_scale = 0, max_mn = 0;
    for (int j = 0; j < 8; j++) {
        scale[j] = fit_scale_min(x + 32 * j, 32, nmax, &mn[j]);
        max_scale = fmaxf(max_scale, scale[j]);
        max_mn = fmaxf(max_mn, mn[j]);
    }
    float d = max_scale / 63, dmin = max_mn / 63;
    *d16 = ryot_fp32_to_fp16(d);
    *dmin16 = ryot_fp32_to_fp16(dmin);
    d = FP16(*d16);
    dmin = FP16(*dmin16);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0 ? clampi(ref_nearest_int(scale[j] / d), 0, 63) : 0);
        m[j] = (uint8_t)(dmin > 0 ? clampi(ref_nearest_int(mn[j] / dmin), 0, 63) : 0);
    }
    pack_scale_min(sc, m, scales);
    for (int j = 0; j < 8; j++) {
        float ds = d * sc[j], dm = dmin * m[j];
        for (int l = 0; l < 32; l++)
            q[32 * j + l] = (uint8_t)(ds > 0 ? clampi(ref_nearest_int((x[32 * j + l] + dm) / ds), 0, nmax) : 0);
    }
}

/* ------------------------------------------------------------ Q4_K */

/* Code of element e (0..255): chunk c = e / 64, half h = e % 64 / 32. */
static inline int q4k_code(const uint8_t *qs, int e) {
    int c = e / 64, l = e % 32;
    return (e % 64 < 32) ? qs[32 * c + l] & 15 : qs[32 * c + l] >> 4;
}

void ref_q4_K_to_float(const void *src, float *dst, int64_t n) {
    const block_q4_K *b = src;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        float d = FP16(b[ib].d), dmin = FP16(b[ib].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            q4k_scale_min(b[ib].scales, j, &sc, &m);
            for (int l = 0; l < 32; l++)
                dst[ib * QK_K + 32 * j + l] = d * sc * q4k_code(b[ib].qs, 32 * j + l) - dmin * m;
        }
    }
}

void ref_q4_K_from_float(const float *src, void *dst, int64_t n) {
    block_q4_K *b = dst;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        uint8_t q[QK_K];
        quantize_k_scale_min(src + ib * QK_K, 15, q, &b[ib].d, &b[ib].dmin, b[ib].scales);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) b[ib].qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    }
}

/* Per super-block: d_y * (d * sum_j sc_j sum(q y) - dmin * sum_j m_j sum(y_j)),
 * the last sum from Q8_K's bsums. */
void ref_vec_dot_q4_K(int64_t n, float *s, const void *x, const void *y) {
    const block_q4_K *a = x;
    const block_q8_K *b = y;
    float sum = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        int sumq = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            q4k_scale_min(a[ib].scales, j, &sc, &m);
            int isum = 0;
            for (int l = 0; l < 32; l++) isum += q4k_code(a[ib].qs, 32 * j + l) * b[ib].qs[32 * j + l];
            sumq += sc * isum;
            summ += m * (b[ib].bsums[2 * j] + b[ib].bsums[2 * j + 1]);
        }
        sum += b[ib].d * (FP16(a[ib].d) * (float)sumq - FP16(a[ib].dmin) * (float)summ);
    }
    *s = sum;
}

/* ------------------------------------------------------------ Q5_K */

static inline int q5k_code(const uint8_t *qs, const uint8_t *qh, int e) {
    int c = e / 64, l = e % 32, hi = e % 64 >= 32;
    return q4k_code(qs, e) | ((qh[l] >> (2 * c + hi)) & 1) << 4;
}

void ref_q5_K_to_float(const void *src, float *dst, int64_t n) {
    const block_q5_K *b = src;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        float d = FP16(b[ib].d), dmin = FP16(b[ib].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            q4k_scale_min(b[ib].scales, j, &sc, &m);
            for (int l = 0; l < 32; l++)
                dst[ib * QK_K + 32 * j + l] = d * sc * q5k_code(b[ib].qs, b[ib].qh, 32 * j + l) - dmin * m;
        }
    }
}

void ref_q5_K_from_float(const float *src, void *dst, int64_t n) {
    block_q5_K *b = dst;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        uint8_t q[QK_K];
        quantize_k_scale_min(src + ib * QK_K, 31, q, &b[ib].d, &b[ib].dmin, b[ib].scales);
        memset(b[ib].qh, 0, sizeof b[ib].qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
                b[ib].qs[32 * c + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
                b[ib].qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
            }
        }
    }
}

void ref_vec_dot_q5_K(int64_t n, float *s, const void *x, const void *y) {
    const block_q5_K *a = x;
    const block_q8_K *b = y;
    float sum = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        int sumq = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            q4k_scale_min(a[ib].scales, j, &sc, &m);
            int isum = 0;
            for (int l = 0; l < 32; l++)
                isum += q5k_code(a[ib].qs, a[ib].qh, 32 * j + l) * b[ib].qs[32 * j + l];
            sumq += sc * isum;
            summ += m * (b[ib].bsums[2 * j] + b[ib].bsums[2 * j + 1]);
        }
        sum += b[ib].d * (FP16(a[ib].d) * (float)sumq - FP16(a[ib].dmin) * (float)summ);
    }
    *s = sum;
}

/* ------------------------------------------------------------ Q6_K */

/* Code (0..63, offset 32) of element e. */
static inline int q6k_code(const block_q6_K *b, int e) {
    int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
    const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
    int low = (quarter & 1) ? ql[l + 32] : ql[l];
    low = (quarter & 2) ? low >> 4 : low & 15;
    return low | ((qh[l] >> (2 * quarter)) & 3) << 4;
}

void ref_q6_K_to_float(const void *src, float *dst, int64_t n) {
    const block_q6_K *b = src;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        float d = FP16(b[ib].d);
        for (int e = 0; e < QK_K; e++) dst[ib * QK_K + e] = d * b[ib].scales[e / 16] * (q6k_code(&b[ib], e) - 32);
    }
}

/* Sub-block scale from its signed extreme (mapped to -32, the full side of
 * the -32..31 range), then int8 scales against d = max |scale| / 127. */
void ref_q6_K_from_float(const float *src, void *dst, int64_t n) {
    block_q6_K *b = dst;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const float *x = src + ib * QK_K;
        float scale[16], amax_scale = 0;
        for (int j = 0; j < 16; j++) {
            float amax = 0, mx = 0;
            for (int l = 0; l < 16; l++) {
                if (fabsf(x[16 * j + l]) > amax) {
                    amax = fabsf(x[16 * j + l]);
                    mx = x[16 * j + l];
                }
            }
            scale[j] = mx / -32.0f;
            amax_scale = fmaxf(amax_scale, fabsf(scale[j]));
        }
        b[ib].d = ryot_fp32_to_fp16(amax_scale / 127);
        float d = FP16(b[ib].d);
        uint8_t q[QK_K];
        for (int j = 0; j < 16; j++) {
            b[ib].scales[j] = (int8_t)(d > 0 ? clampi(ref_nearest_int(scale[j] / d), -127, 127) : 0);
            float ds = d * b[ib].scales[j];
            for (int l = 0; l < 16; l++)
                q[16 * j + l] = (uint8_t)(ds != 0 ? clampi(ref_nearest_int(x[16 * j + l] / ds), -32, 31) + 32 : 32);
        }
        memset(b[ib].qh, 0, sizeof b[ib].qh);
        for (int h = 0; h < 2; h++) {
            const uint8_t *qq = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                b[ib].ql[64 * h + l] = (uint8_t)((qq[l] & 15) | (qq[l + 64] & 15) << 4);
                b[ib].ql[64 * h + l + 32] = (uint8_t)((qq[l + 32] & 15) | (qq[l + 96] & 15) << 4);
                b[ib].qh[32 * h + l] =
                    (uint8_t)(qq[l] >> 4 | (qq[l + 32] >> 4) << 2 | (qq[l + 64] >> 4) << 4 | (qq[l + 96] >> 4) << 6);
            }
        }
    }
}

void ref_vec_dot_q6_K(int64_t n, float *s, const void *x, const void *y) {
    const block_q6_K *a = x;
    const block_q8_K *b = y;
    float sum = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        int sumq = 0;
        for (int j = 0; j < 16; j++) {
            int isum = 0;
            for (int l = 0; l < 16; l++) isum += (q6k_code(&a[ib], 16 * j + l) - 32) * b[ib].qs[16 * j + l];
            sumq += a[ib].scales[j] * isum;
        }
        sum += b[ib].d * FP16(a[ib].d) * (float)sumq;
    }
    *s = sum;
}

/* ------------------------------------------------------------ Q8_K */

void ref_q8_K_to_float(const void *src, float *dst, int64_t n) {
    const block_q8_K *b = src;
    for (int64_t ib = 0; ib < n / QK_K; ib++)
        for (int i = 0; i < QK_K; i++) dst[ib * QK_K + i] = b[ib].d * b[ib].qs[i];
}

/* Symmetric like Q8_0, float d; bsums[k] = sum of qs[16k..16k+15]. */
void ref_q8_K_from_float(const float *src, void *dst, int64_t n) {
    block_q8_K *b = dst;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        const float *x = src + ib * QK_K;
        float amax = 0;
        for (int i = 0; i < QK_K; i++) amax = fmaxf(amax, fabsf(x[i]));
        /* llama.cpp's quantize_row_q8_K: inverse scale 127 / amax, d = 1 / that
         * (it stores both negated when the extreme element is positive, which
         * gives the same products) */
        float id = amax != 0 ? 127.0f / amax : 0, d = amax != 0 ? 1.0f / id : 0;
        b[ib].d = d;
        for (int i = 0; i < QK_K; i++) b[ib].qs[i] = (int8_t)ref_nearest_int(x[i] * id);
        for (int k = 0; k < 16; k++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += b[ib].qs[16 * k + l];
            b[ib].bsums[k] = (int16_t)sum;
        }
    }
}
