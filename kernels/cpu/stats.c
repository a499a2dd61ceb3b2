/* Whole-array statistics on the float bit patterns: integer reductions are
 * exact, so any split over threads gives the same answer. */
#include <math.h>

#include "cpu.h"

size_t cpu_count_nonfinite_f32(const float *x, size_t n)
{
    size_t c = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : c) if (n >= SS_PAR_MIN)
    for (size_t i = 0; i < n; i++) c += f32_bits_nonfinite(f32_bits(x[i]));
    return c;
}

void cpu_minmax_f32(const float *x, size_t n, float *mn, float *mx)
{
    /* Keys order -0 below +0, so even the sign of a zero extreme is fixed.
     * Non-finite values get the neutral key of each reduction; no finite
     * value has key 0 or UINT32_MAX. */
    uint32_t kmin = UINT32_MAX, kmax = 0;
#pragma omp parallel for simd schedule(static) reduction(min : kmin) reduction(max : kmax) \
    if (n >= SS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        uint32_t b = f32_bits(x[i]);
        int fin = !f32_bits_nonfinite(b);
        uint32_t k = f32_key(b);
        uint32_t klo = fin ? k : UINT32_MAX;
        uint32_t khi = fin ? k : 0;
        kmin = klo < kmin ? klo : kmin;
        kmax = khi > kmax ? khi : kmax;
    }
    if (kmin == UINT32_MAX) {
        *mn = *mx = NAN;
        return;
    }
    *mn = f32_from_bits(f32_unkey(kmin));
    *mx = f32_from_bits(f32_unkey(kmax));
}
