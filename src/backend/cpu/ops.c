#include "backend/cpu/ops.h"

#include <math.h>
#include <string.h>

void ops_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float scale = 1.0f / sqrtf((float)(sum / n) + eps);
    int n8 = n & ~7, i = 0;
    if (w) {
        for (i = 0; i < n8; i++) y[i] = x[i] * scale * w[i];
        for (; i < n; i++) y[i] = x[i] * scale * w[i];
    } else {
        for (i = 0; i < n8; i++) y[i] = x[i] * scale;
        for (; i < n; i++) y[i] = x[i] * scale;
    }
}

void ops_rope_cache(float *cs, int pos, int rope_dim, float base, float freq_scale, const float *freq_factors) {
    const float theta_scale = powf(base, -2.0f / (float)rope_dim);
    float theta = (float)pos;
    for (int i = 0; i < rope_dim / 2; i++) {
        float t = theta;
        if (freq_factors) t /= freq_factors[i];
        t *= freq_scale;
        cs[2 * i] = cosf(t);
        cs[2 * i + 1] = sinf(t);
        theta *= theta_scale;
    }
}

void ops_rope(float *x, int rope_dim, const float *cs, rope_layout layout) {
    const int half = rope_dim / 2;
    if (layout == ROPE_NORMAL) {
        for (int i = 0; i < half; i++) {
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * c - b * s;
            x[2 * i + 1] = a * s + b * c;
        }
    } else {
        for (int i = 0; i < half; i++) {
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float a = x[i], b = x[i + half];
            x[i] = a * c - b * s;
            x[i + half] = a * s + b * c;
        }
    }
}

void ops_add(float *y, const float *x, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) y[i] += x[i];
    for (; i < n; i++) y[i] += x[i];
}

void ops_scale(float *y, float s, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) y[i] *= s;
    for (; i < n; i++) y[i] *= s;
}

void ops_axpy(float *y, float a, const float *x, int n) {
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i++) y[i] += a * x[i];
    for (; i < n; i++) y[i] += a * x[i];
}

void ops_softcap(float *y, float cap, int n) {
    const float inv = 1.0f / cap;
    for (int i = 0; i < n; i++) y[i] = cap * tanhf(y[i] * inv);
}

float ops_dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int n8 = n & ~7, i;
    for (i = 0; i < n8; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
