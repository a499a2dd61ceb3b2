/* Affine rescaling in place, as used by percentile normalisation. The
 * arithmetic is double: a float32 stack spanning most of float32's range
 * (values near +-3.4e38) has x - lo beyond float32 and a scale below its
 * smallest normal number, while the result lies in [0, 1]. */
#include "cpu.h"

void cpu_affine_f32(float *x, size_t n, double lo, double scale, int clip)
{
    if (clip) {
#pragma omp parallel for simd schedule(static) if (n >= SS_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            double v = ((double)x[i] - lo) * scale;
            /* Comparisons rather than fmin/fmax, so that NaN stays NaN
             * instead of becoming 0 or 1. */
            v = v < 0.0 ? 0.0 : v;
            v = v > 1.0 ? 1.0 : v;
            x[i] = (float)v;
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n >= SS_PAR_MIN)
        for (size_t i = 0; i < n; i++) x[i] = (float)(((double)x[i] - lo) * scale);
    }
}
