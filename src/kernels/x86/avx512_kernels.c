/* AVX-512 kernels (built with -mavx512f/bw/vl/dq/vnni/bf16; called only after
 * CPU detection).
 *
 * Empty for now, on purpose: the AVX-512 level (traits and ops) starts as a
 * copy of the AVX2 one (kernels.c), so an AVX-512 CPU runs the tested AVX2 kernels.  The
 * project's development and CI machines (AMD EPYC, Zen 2 class) have no
 * AVX-512, so kernels written here could be neither tested nor measured;
 * they land together with a machine that runs tests/unit/test_kernels.c on
 * them (it compares every level the CPU supports against the reference).
 * Planned: 512-bit vpdpbusd (VNNI) dots for Q4_0/Q4_1/Q8_0 and the K-quants
 * (unsigned nibbles x signed int8 directly; the -8 / min terms from the
 * activation block sums), and 4x4 register-blocked vec_dot_rows. */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

void kernels_avx512_fill(kernel_level *lv) {
    (void)lv;
}
