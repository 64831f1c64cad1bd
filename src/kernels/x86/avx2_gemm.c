/* AVX2+FMA small-batch matrix product over F32 activations (kernel_ops
 * gemm_f32 / gemm_f16, kernels/kernels.h): the embedding encoder's
 * projections, one sentence (~10-30 token rows) or a batch against a whole
 * weight matrix.
 *
 * Register tiles of up to 3 weight rows x 4 activation rows: per 8-element
 * step 3 weight loads (converted from F16 for gemm_f16) and 4 activation
 * loads feed 12 FMAs into 12 accumulators, against 2 loads per FMA for
 * pairwise dots.  Weight tiles are the outer loop, so a tile's rows stay in
 * L1 while every activation row passes by; the weights stream from memory
 * once per call.
 *
 * Every output keeps one 8-lane accumulator over k, summed across lanes in
 * one fixed order, then the scalar tail, then the bias: the same operations
 * whatever tile shape it lands in, so the result does not depend on nrx, nry
 * or a thread's share of rows. */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

#define TILE_X 3
#define TILE_Y 4

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 load_x_f32(const float *p) { return _mm256_loadu_ps(p); }
static inline float scalar_x_f32(const float *p) { return *p; }
static inline __m256 load_x_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline float scalar_x_f16(const uint16_t *p) { return _cvtsh_ss(*p); }

/* One RX x RY tile (RX <= TILE_X, RY <= TILE_Y, compile-time constants at
 * every call so the loops unroll and the accumulators stay in registers). */
#define GEMM_TILE(NAME, XT, LOADX, SCALARX)                                                                      \
    static inline __attribute__((always_inline)) void NAME(const int RX, const int RY, int n, const XT *x,      \
                                                           size_t ldx, const float *y, size_t ldy,              \
                                                           const float *bias, float *s, size_t lds,             \
                                                           const XT *pf) {                                      \
        __m256 acc[TILE_X][TILE_Y];                                                                              \
        _Pragma("GCC unroll 3") for (int r = 0; r < RX; r++)                                                     \
            _Pragma("GCC unroll 4") for (int c = 0; c < RY; c++) acc[r][c] = _mm256_setzero_ps();               \
        int k = 0;                                                                                               \
        for (; k + 8 <= n; k += 8) {                                                                             \
            if (pf && !(k & 15)) /* the next weight tile, a cache line per row every other step */              \
                _Pragma("GCC unroll 3") for (int r = 0; r < TILE_X; r++)                                         \
                    _mm_prefetch((const char *)(pf + (size_t)r * ldx + k), _MM_HINT_T0);                          \
            __m256 w[TILE_X];                                                                                    \
            _Pragma("GCC unroll 3") for (int r = 0; r < RX; r++) w[r] = LOADX(x + (size_t)r * ldx + k);         \
            _Pragma("GCC unroll 4") for (int c = 0; c < RY; c++) {                                               \
                const __m256 a = _mm256_loadu_ps(y + (size_t)c * ldy + k);                                       \
                _Pragma("GCC unroll 3") for (int r = 0; r < RX; r++) acc[r][c] =                                 \
                    _mm256_fmadd_ps(w[r], a, acc[r][c]);                                                         \
            }                                                                                                    \
        }                                                                                                        \
        _Pragma("GCC unroll 4") for (int c = 0; c < RY; c++)                                                     \
            _Pragma("GCC unroll 3") for (int r = 0; r < RX; r++) {                                               \
                float v = hsum8(acc[r][c]);                                                                      \
                for (int kk = k; kk < n; kk++) v += SCALARX(x + (size_t)r * ldx + kk) * y[(size_t)c * ldy + kk]; \
                s[(size_t)c * lds + r] = bias ? v + bias[r] : v;                                                 \
            }                                                                                                    \
    }

/* The whole product: weight tiles outer, activation tiles inner. */
#define GEMM(NAME, TILE, XT)                                                                                     \
    static void NAME(int n, int nrx, int nry, const XT *x, size_t ldx, const float *y, size_t ldy,              \
                     const float *bias, float *s, size_t lds) {                                                  \
        for (int i = 0; i < nrx; i += TILE_X) {                                                                  \
            const int rx = nrx - i < TILE_X ? nrx - i : TILE_X;                                                  \
            const XT *xi = x + (size_t)i * ldx;                                                                  \
            const float *bi = bias ? bias + i : NULL;                                                            \
            for (int j = 0; j < nry; j += TILE_Y) {                                                              \
                const int ry = nry - j < TILE_Y ? nry - j : TILE_Y;                                              \
                const float *yj = y + (size_t)j * ldy;                                                           \
                /* while the first activation tile runs, fetch the next weight tile's rows */                    \
                const XT *pf = j == 0 && i + 2 * TILE_X <= nrx ? xi + TILE_X * ldx : NULL;                       \
                float *sij = s + (size_t)j * lds + i;                                                            \
                switch (rx * 8 + ry) {                                                                           \
                case 3 * 8 + 4: TILE(3, 4, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 3 * 8 + 3: TILE(3, 3, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 3 * 8 + 2: TILE(3, 2, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 3 * 8 + 1: TILE(3, 1, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 2 * 8 + 4: TILE(2, 4, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 2 * 8 + 3: TILE(2, 3, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 2 * 8 + 2: TILE(2, 2, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 2 * 8 + 1: TILE(2, 1, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 1 * 8 + 4: TILE(1, 4, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 1 * 8 + 3: TILE(1, 3, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                case 1 * 8 + 2: TILE(1, 2, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                            \
                default: TILE(1, 1, n, xi, ldx, yj, ldy, bi, sij, lds, pf); break;                                   \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
    }

GEMM_TILE(tile_f32, float, load_x_f32, scalar_x_f32)
GEMM_TILE(tile_f16, uint16_t, load_x_f16, scalar_x_f16)
GEMM(gemm_f32, tile_f32, float)
GEMM(gemm_f16, tile_f16, uint16_t)

void avx2_gemm_fill(kernel_ops *ops) {
    ops->gemm_f32 = gemm_f32;
    ops->gemm_f16 = gemm_f16;
}
