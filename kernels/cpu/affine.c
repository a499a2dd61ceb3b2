/* Affine rescaling in place, as used by percentile normalisation. */
#include "cpu.h"

void cpu_affine_f32(float *x, size_t n, float lo, float scale, int clip)
{
    if (clip) {
#pragma omp parallel for simd schedule(static) if (n >= SS_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float v = (x[i] - lo) * scale;
            /* Comparisons rather than fminf/fmaxf, so that NaN stays NaN
             * instead of becoming 0 or 1. */
            v = v < 0.0f ? 0.0f : v;
            v = v > 1.0f ? 1.0f : v;
            x[i] = v;
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n >= SS_PAR_MIN)
        for (size_t i = 0; i < n; i++) x[i] = (x[i] - lo) * scale;
    }
}
