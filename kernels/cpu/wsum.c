/* Weighted sums of planes: the plane predictions of the interpolation
 * baselines (interp_linear, interp_cubic) are fixed linear combinations of
 * kept planes. Each voxel is summed by one thread in j order, in double. */
#include "cpu.h"
#include "register.h"

void cpu_weighted_sum_f32(const float *const *x, const double *w, int n, size_t len, float *out)
{
#pragma omp parallel for schedule(static) if (len * (size_t)(n > 0 ? n : 1) >= SS_PAR_MIN)
    for (size_t i = 0; i < len; i++) {
        double acc = 0;
        for (int j = 0; j < n; j++) acc += w[j] * (double)x[j][i];
        out[i] = (float)acc;
    }
}
