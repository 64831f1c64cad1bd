/* Element-wise and row ops of the forward pass, plain C.
 *
 * Inner loops run over multiples of 8 with a scalar tail so GCC's -O2
 * ("very cheap") vectorizer takes them.  Every op is deterministic: the result
 * of one row never depends on how rows were split across threads. */
#ifndef RYOT_BACKEND_CPU_OPS_H
#define RYOT_BACKEND_CPU_OPS_H

#include <stdint.h>

#include "kernels/kmath.h"
#include "model/model.h"

/* y = x / sqrt(mean(x^2) + eps) * w   (w NULL: no weight).  The sum of squares
 * is accumulated in double (as llama.cpp does).  y may alias x. */
void ops_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* RoPE (the layouts: model/model.h's rope_layout).
 * cs[2i], cs[2i+1] = cos, sin of theta_i for one position, i < rope_dim/2:
 *   theta_i = freq_scale * pos * base^(-2i/rope_dim) / freq_factors[i]
 * (freq_factors NULL: 1).  base^(-2i/d) is formed by repeated float
 * multiplication, as llama.cpp does, so angles agree with it bit for bit. */
void ops_rope_cache(float *cs, int pos, int rope_dim, float base, float freq_scale, const float *freq_factors);

/* Rotates one head vector x[0..head_dim) in place with a cache row. */
void ops_rope(float *x, int rope_dim, const float *cs, rope_layout layout);

void ops_add(float *y, const float *x, int n);   /* y += x */
void ops_scale(float *y, float s, int n);        /* y *= s */
void ops_axpy(float *y, float a, const float *x, int n); /* y += a*x */
/* y = cap * tanh(y / cap) */
void ops_softcap(float *y, float cap, int n);

/* Sum with 8 independent lanes (deterministic, vectorizable). */
float ops_dot(const float *a, const float *b, int n);

#endif
