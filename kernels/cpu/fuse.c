/* Fusion of R repeated acquisitions into one array: mean and median per
 * voxel. Every voxel is reduced in a fixed order by one thread, so results do
 * not depend on the thread count. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

/* Voxels per block of the mean: a block's accumulators stay in L1 while the
 * R source rows stream past, and the inner loop runs over contiguous
 * memory, so it vectorises. */
#define MEAN_BLOCK 512

void cpu_fuse_mean_f32(const float *rep, int R, size_t n, float *out)
{
    if (R <= 0) {
        for (size_t i = 0; i < n; i++) out[i] = NAN; /* numpy: mean of nothing */
        return;
    }
    size_t nblk = (n + MEAN_BLOCK - 1) / MEAN_BLOCK;
#pragma omp parallel for schedule(static) if (n * (size_t)R >= SS_PAR_MIN)
    for (size_t b = 0; b < nblk; b++) {
        /* Double accumulators: the sum of up to millions of repeats stays
         * correctly rounded to float in practice. */
        double acc[MEAN_BLOCK];
        size_t i0 = b * MEAN_BLOCK;
        size_t m = n - i0 < MEAN_BLOCK ? n - i0 : MEAN_BLOCK;
        for (size_t i = 0; i < m; i++) acc[i] = rep[i0 + i];
        for (int r = 1; r < R; r++) {
            const float *row = rep + (size_t)r * n + i0;
            for (size_t i = 0; i < m; i++) acc[i] += row[i];
        }
        for (size_t i = 0; i < m; i++) out[i0 + i] = (float)(acc[i] / R);
    }
}

/* numpy takes the float32 mean of the two middle values: (a + b) / 2 in
 * float32. Halving each first only where the sum overflows keeps finite
 * inputs finite without changing any other result. */
static float mid_mean(float a, float b)
{
    float s = a + b;
    if (isinf(s) && isfinite(a) && isfinite(b)) return a * 0.5f + b * 0.5f;
    return s * 0.5f;
}

static void insertion_sort(float *v, int R)
{
    for (int i = 1; i < R; i++) {
        float x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

/* Wirth's selection: afterwards v[k] is the k-th smallest and nothing left of
 * it is larger. O(R) on average where sorting would be O(R^2). */
static float select_kth(float *v, int R, int k)
{
    int l = 0, m = R - 1;
    while (l < m) {
        float x = v[k];
        int i = l, j = m;
        do {
            while (v[i] < x) i++;
            while (x < v[j]) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < k) l = i;
        if (k < i) m = j;
    }
    return v[k];
}

/* Up to here, sorting is cheaper than selection. */
#define SORT_MAX_R 16

float cpu_median_inplace(float *v, int R)
{
    int k = R / 2;
    if (R <= SORT_MAX_R) {
        insertion_sort(v, R);
        return R & 1 ? v[k] : mid_mean(v[k - 1], v[k]);
    }
    float hi = select_kth(v, R, k);
    if (R & 1) return hi;
    float lo = v[0];
    for (int j = 1; j < k; j++) lo = v[j] > lo ? v[j] : lo;
    return mid_mean(lo, hi);
}

/* The value of rank k among the R repeats of voxel i, without a buffer:
 * O(R^2), only for when no buffer could be had. */
static float rank_in_place(const float *rep, int R, size_t n, size_t i, int k)
{
    for (int j = 0; j < R; j++) {
        float x = rep[(size_t)j * n + i];
        int below = 0, equal = 0;
        for (int l = 0; l < R; l++) {
            float y = rep[(size_t)l * n + i];
            below += y < x;
            equal += y == x;
        }
        if (below <= k && k < below + equal) return x;
    }
    return NAN;
}

/* Repeats per voxel that fit the stack buffer; more take one heap buffer per
 * thread. */
#define MEDIAN_STACK_R 256

void cpu_fuse_median_f32(const float *rep, int R, size_t n, float *out)
{
    if (R <= 0) {
        for (size_t i = 0; i < n; i++) out[i] = NAN;
        return;
    }
#pragma omp parallel if (n * (size_t)R >= SS_PAR_MIN)
    {
        float stack_buf[MEDIAN_STACK_R];
        float *v = R <= MEDIAN_STACK_R ? stack_buf : malloc((size_t)R * sizeof *v);
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            int has_nan = 0;
            if (v) {
                for (int r = 0; r < R; r++) {
                    v[r] = rep[(size_t)r * n + i];
                    has_nan |= isnan(v[r]);
                }
                /* numpy: a NaN among the repeats makes the median NaN. */
                out[i] = has_nan ? NAN : cpu_median_inplace(v, R);
            } else {
                for (int r = 0; r < R; r++) has_nan |= isnan(rep[(size_t)r * n + i]);
                float hi = rank_in_place(rep, R, n, i, R / 2);
                out[i] = has_nan ? NAN
                         : R & 1 ? hi
                                 : mid_mean(rank_in_place(rep, R, n, i, R / 2 - 1), hi);
            }
        }
        if (v != stack_buf) free(v);
    }
}
