/* AVX-512 kernels (built with -mavx512f/bw/vl/dq/vnni/bf16; called only after
 * CPU detection). */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

void kernels_avx512_fill(kernel_traits tab[RYOT_TYPE_COUNT]) {
    (void)tab;
}
