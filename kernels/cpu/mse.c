/* Sum of squared differences, reduced in fixed blocks added in order so that
 * the result is the same for any thread count (an OpenMP reduction is not). */
#include "cpu.h"
#include "nn.h"
#include "quality.h"

#define MSE_MAX_BLOCKS 1024
#define MSE_MIN_BLOCK ((size_t)1 << 16)

/* The block size depends on n only. */
static size_t block_size(size_t n)
{
    size_t bs = (n + MSE_MAX_BLOCKS - 1) / MSE_MAX_BLOCKS;
    return bs < MSE_MIN_BLOCK ? MSE_MIN_BLOCK : bs;
}

double cpu_sq_diff_sum_f32(const float *a, const float *b, size_t n)
{
    size_t bs = block_size(n), nb = (n + bs - 1) / bs;
    double part[MSE_MAX_BLOCKS];
#pragma omp parallel for schedule(static) if (n >= SS_PAR_MIN)
    for (size_t k = 0; k < nb; k++) {
        size_t lo = k * bs, hi = lo + bs < n ? lo + bs : n;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (size_t i = lo; i < hi; i++) {
            double d = (double)a[i] - (double)b[i];
            s += d * d;
        }
        part[k] = s;
    }
    double s = 0;
    for (size_t k = 0; k < nb; k++) s += part[k];
    return s;
}

double cpu_mse_grad_f32(const float *y, const float *t, size_t n, float scale, float *dy)
{
    if (dy) {
#pragma omp parallel for simd schedule(static) if (n >= SS_PAR_MIN)
        for (size_t i = 0; i < n; i++) dy[i] = scale * (y[i] - t[i]);
    }
    return cpu_sq_diff_sum_f32(y, t, n);
}
