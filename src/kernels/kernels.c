/* Kernel tables, CPU detection and FP16/BF16 conversions.
 *
 * One level (traits by type + ops) per ISA, built once (pthread_once): ref,
 * then a copy of the level below with the slots that level implements
 * overridden.  The selected
 * level is a pointer swapped by kernels_init; kernels_get reads it. */
#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels_impl.h"

/* ------------------------------------------------------------ FP16 / BF16 */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float ryot_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 31, m = h & 0x3ff;
    if (e == 0) { /* zero or subnormal: m * 2^-24, exact in float */
        float v = (float)m * (1.0f / 16777216.0f);
        return f32_from_bits(f32_bits(v) | sign);
    }
    if (e == 31) return f32_from_bits(sign | 0x7f800000u | (m << 13));
    return f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
}

/* Round to nearest even, with half subnormals, overflow to inf and quiet
 * NaNs: the same results as F16C's vcvtps2ph with imm 0. */
uint16_t ryot_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520: inf */
    if (ax < 0x38800000u) {                                  /* below 2^-14: subnormal or 0 */
        uint32_t e = ax >> 23;
        uint32_t shift = 126 - e; /* value = mant * 2^(e-150) = (mant >> shift) * 2^-24 */
        if (e == 0 || shift > 24) return sign;
        uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        uint32_t r = mant >> shift, rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t h = ((ax >> 23) - 112) << 10 | ((ax >> 13) & 0x3ff);
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry rolls into the exponent */
    return (uint16_t)(sign | h);
}

float ryot_bf16_to_fp32(uint16_t h) {
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t ryot_fp32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* ------------------------------------------------------------ CPU detection */

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* AVX2 level: AVX2 FMA F16C BMI2 with the OS saving YMM state.
 * AVX-512 level: F BW VL DQ VNNI with the OS saving ZMM/opmask state (no
 * BF16: BF16 weights meet F32 activations, exactly, without vdpbf16ps, so
 * Ice Lake and Cascade Lake servers get the level too). */
static kernel_isa detect_isa(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return KERNEL_ISA_REF;
    bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx) return KERNEL_ISA_REF;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return KERNEL_ISA_REF;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return KERNEL_ISA_REF;
    bool avx2 = b & (1u << 5), bmi2 = b & (1u << 8);
    if (!(avx2 && bmi2 && fma && f16c)) return KERNEL_ISA_REF;
    bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    bool vnni = c & (1u << 11);
    if (f && dq && bw && vl && vnni && (xcr0 & 0xe6) == 0xe6) return KERNEL_ISA_AVX512;
    return KERNEL_ISA_AVX2;
}

/* ------------------------------------------------------------ tables */

static kernel_level levels[4]; /* indexed by kernel_isa; [AUTO] unused */
static kernel_isa best_isa = KERNEL_ISA_REF;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static const kernel_level *_Atomic selected;

static void build_tables(void) {
    best_isa = detect_isa();
    kernels_ref_fill(&levels[KERNEL_ISA_REF]);
    if (best_isa >= KERNEL_ISA_AVX2) {
        levels[KERNEL_ISA_AVX2] = levels[KERNEL_ISA_REF];
        kernels_avx2_fill(&levels[KERNEL_ISA_AVX2]);
    }
    if (best_isa >= KERNEL_ISA_AVX512) {
        levels[KERNEL_ISA_AVX512] = levels[KERNEL_ISA_AVX2];
        kernels_avx512_fill(&levels[KERNEL_ISA_AVX512]);
    }
}

static kernel_isa isa_from_env(void) {
    const char *e = getenv("RYOT_ISA");
    if (!e) return KERNEL_ISA_AUTO;
    if (!strcmp(e, "ref")) return KERNEL_ISA_REF;
    if (!strcmp(e, "avx2")) return KERNEL_ISA_AVX2;
    if (!strcmp(e, "avx512")) return KERNEL_ISA_AVX512;
    return KERNEL_ISA_AUTO; /* unknown value: ignored */
}

kernel_isa kernels_init(kernel_isa want) {
    pthread_once(&tables_once, build_tables);
    if (want == KERNEL_ISA_AUTO) want = isa_from_env();
    kernel_isa isa = (want == KERNEL_ISA_AUTO || want > best_isa) ? best_isa : want;
    selected = &levels[isa];
    return isa;
}

kernel_isa kernels_best_isa(void) {
    pthread_once(&tables_once, build_tables);
    return best_isa;
}

const char *kernel_isa_name(kernel_isa isa) {
    switch (isa) {
    case KERNEL_ISA_AUTO: return "auto";
    case KERNEL_ISA_REF: return "ref";
    case KERNEL_ISA_AVX2: return "avx2";
    case KERNEL_ISA_AVX512: return "avx512";
    }
    return "?";
}

static const kernel_traits no_traits;

static const kernel_level *selected_level(void) {
    const kernel_level *lv = selected;
    if (!lv) {
        kernels_init(KERNEL_ISA_AUTO);
        lv = selected;
    }
    return lv;
}

const kernel_traits *kernels_get(ryot_type t) {
    const kernel_level *lv = selected_level();
    if ((unsigned)t >= RYOT_TYPE_COUNT) return &no_traits;
    return &lv->traits[t];
}

const kernel_traits *kernels_ref(ryot_type t) {
    pthread_once(&tables_once, build_tables);
    if ((unsigned)t >= RYOT_TYPE_COUNT) return &no_traits;
    return &levels[KERNEL_ISA_REF].traits[t];
}

const kernel_traits *kernels_get_isa(kernel_isa isa, ryot_type t) {
    pthread_once(&tables_once, build_tables);
    if (isa == KERNEL_ISA_AUTO) isa = best_isa;
    if (isa > best_isa || isa < KERNEL_ISA_REF) return NULL;
    if ((unsigned)t >= RYOT_TYPE_COUNT) return &no_traits;
    return &levels[isa].traits[t];
}

const kernel_ops *kernels_ops(void) {
    return &selected_level()->ops;
}

const kernel_ops *kernels_ops_ref(void) {
    pthread_once(&tables_once, build_tables);
    return &levels[KERNEL_ISA_REF].ops;
}

const kernel_ops *kernels_ops_isa(kernel_isa isa) {
    pthread_once(&tables_once, build_tables);
    if (isa == KERNEL_ISA_AUTO) isa = best_isa;
    if (isa > best_isa || isa < KERNEL_ISA_REF) return NULL;
    return &levels[isa].ops;
}
