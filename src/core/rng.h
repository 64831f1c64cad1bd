/* Small deterministic RNG: xoshiro256** (Blackman & Vigna), seeded by
 * expanding a 64-bit seed through splitmix64.  Integer-only state updates, so
 * a seed gives the same stream on every platform.  Not for cryptography. */
#ifndef RYOT_CORE_RNG_H
#define RYOT_CORE_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct ryot_rng {
    uint64_t s[4];
} ryot_rng;

static inline uint64_t ryot_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void ryot_rng_seed(ryot_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = ryot_splitmix64(&seed);
}

static inline uint64_t ryot_rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t ryot_rng_next(ryot_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = ryot_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ryot_rng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) from the top 53 bits. */
static inline double ryot_rng_uniform(ryot_rng *r) { return (double)(ryot_rng_next(r) >> 11) * 0x1.0p-53; }

/* Two independent standard normal deviates (Box-Muller). */
static inline void ryot_rng_normal2(ryot_rng *r, float out[2]) {
    double u1 = 1.0 - ryot_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = ryot_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    out[0] = (float)(rad * cos(6.283185307179586 * u2));
    out[1] = (float)(rad * sin(6.283185307179586 * u2));
}

#endif
