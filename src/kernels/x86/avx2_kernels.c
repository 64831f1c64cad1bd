/* AVX2 kernels (built with -mavx2 -mfma -mf16c -mbmi2; called only after
 * CPU detection). */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

void kernels_avx2_fill(kernel_traits tab[RYOT_TYPE_COUNT]) {
    (void)tab;
}
