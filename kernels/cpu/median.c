/* Median filter of one output plane, as scipy.ndimage.median_filter with
 * size (sz, sy, sx) and mode 'reflect' (d c b a | a b c d | d c b a): the
 * caller hands the sz input planes z - sz/2 .. z + sz/2, already reflected
 * in z, so a filter streams through a stack holding sz planes. Sizes are
 * odd, so every window has one middle value. Each output voxel is one
 * selection over its own window, so the result does not depend on the
 * thread count. */
#include "cpu.h"

/* The largest window: 7 x 7 x 7. */
#define MEDIAN_MAX_SIDE 7
#define MEDIAN_MAX_N (MEDIAN_MAX_SIDE * MEDIAN_MAX_SIDE * MEDIAN_MAX_SIDE)

static int64_t reflect(int64_t i, int64_t n)
{
    int64_t p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* Exchanges so that a <= b. */
#define SORT2(a, b)                                                                                                    \
    do {                                                                                                               \
        if (v[b] < v[a]) {                                                                                             \
            float t_ = v[a];                                                                                           \
            v[a] = v[b];                                                                                               \
            v[b] = t_;                                                                                                 \
        }                                                                                                              \
    } while (0)

/* The median of 9 with 19 exchanges (Paeth's network, as in Devillard's
 * opt_med9): the 3 x 3 filter of every plane is this. */
static float median9(float *v)
{
    SORT2(1, 2); SORT2(4, 5); SORT2(7, 8); SORT2(0, 1); SORT2(3, 4); SORT2(6, 7); SORT2(1, 2); SORT2(4, 5);
    SORT2(7, 8); SORT2(0, 3); SORT2(5, 8); SORT2(4, 7); SORT2(3, 6); SORT2(1, 4); SORT2(2, 5); SORT2(4, 7);
    SORT2(4, 2); SORT2(6, 4); SORT2(4, 2);
    return v[4];
}

void cpu_median_filter_plane_f32(const float *const *planes, int sz, int64_t ny, int64_t nx, int sy, int sx,
                                 float *out)
{
    const int ry = sy / 2, rx = sx / 2, n = sz * sy * sx;
    if (n > MEDIAN_MAX_N || sz < 1 || sy < 1 || sx < 1 || !(sz & sy & sx & 1)) return;
#pragma omp parallel for schedule(static) if ((size_t)(ny * nx) * (size_t)n >= SS_PAR_MIN)
    for (int64_t y = 0; y < ny; y++) {
        float v[MEDIAN_MAX_N];
        int64_t rows[MEDIAN_MAX_SIDE], cols[MEDIAN_MAX_SIDE];
        for (int j = 0; j < sy; j++) rows[j] = reflect(y + j - ry, ny) * nx;
        for (int64_t x = 0; x < nx; x++) {
            int m = 0;
            /* interior columns need no reflection */
            if (x >= rx && x + rx < nx)
                for (int i = 0; i < sx; i++) cols[i] = x + i - rx;
            else
                for (int i = 0; i < sx; i++) cols[i] = reflect(x + i - rx, nx);
            for (int p = 0; p < sz; p++)
                for (int j = 0; j < sy; j++) {
                    const float *row = planes[p] + rows[j];
                    for (int i = 0; i < sx; i++) v[m++] = row[cols[i]];
                }
            out[y * nx + x] = n == 9 ? median9(v) : cpu_median_inplace(v, n);
        }
    }
}
