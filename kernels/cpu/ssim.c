/* Structural similarity (Wang et al. 2004) computed as
 * skimage.metrics.structural_similarity does, on the region skimage averages
 * over: the window is cropped (pad = (win - 1) / 2 on each side), so every
 * window used lies inside the image and no edge mode is needed.
 *
 * Moments (means of a, b, a^2, b^2, ab under the window) are filtered in
 * double from float inputs: skimage's uxx - ux^2 cancels badly in float32
 * once the local mean is large against the local spread, as in raw
 * microscopy counts with an offset. The filter is separable: products (or,
 * for 3D, their z-filtered sums over win planes) are made for a block of
 * columns of one row on the stack and filtered along x into five planes H of
 * width nx - win + 1; the y pass runs per output row in blocks of columns
 * held on the stack, combined straight into the SSIM value. Each output row's sums land in their own slot and are
 * added in row order, so the result is the same for any thread count. */
#include <math.h>

#include "cpu.h"
#include "quality.h"

/* Columns of one y-pass block: five maps of this many doubles stay in L1. */
#define YBLOCK 64
/* Output columns of one x-pass block: the block's five product rows (plus
 * the window's overhang) live on the stack, about 12 KiB. */
#define XBLOCK 256

int ssim_spec_init(ssim_spec *s, int gaussian, int dims, double data_range, double k1, double k2)
{
    memset(s, 0, sizeof *s);
    if (dims != 2 && dims != 3) return -1;
    if (gaussian) {
        /* skimage: sigma 1.5, truncate 3.5, radius int(truncate sigma + 0.5)
         * as scipy.ndimage, weights exp(-x^2 / 2 sigma^2) / sum. */
        const double sigma = 1.5, truncate = 3.5;
        int r = (int)(truncate * sigma + 0.5);
        s->win = 2 * r + 1;
        double sum = 0;
        for (int k = -r; k <= r; k++) sum += s->w[k + r] = exp(-0.5 / (sigma * sigma) * (double)(k * k));
        for (int k = 0; k < s->win; k++) s->w[k] /= sum;
        s->cov_norm = 1.0;
    } else {
        s->win = 7;
        for (int k = 0; k < s->win; k++) s->w[k] = 1.0 / s->win;
        double np = dims == 2 ? 49.0 : 343.0;
        s->cov_norm = np / (np - 1.0);
    }
    s->c1 = (k1 * data_range) * (k1 * data_range);
    s->c2 = (k2 * data_range) * (k2 * data_range);
    return 0;
}

size_t ssim_work_len(int win, int64_t ny, int64_t nx)
{
    int64_t nxv = nx - win + 1, nyv = ny - win + 1;
    if (win < 1 || nxv < 1 || nyv < 1) return 0;
    return (size_t)(5 * ny * nxv + 2 * nyv);
}

/* Products of one block of columns of row y: for 2D straight from the
 * plane, for 3D summed over the win planes with the z weights (centre, then
 * symmetric pairs, as scipy adds a symmetric kernel). */
static void block_products(const ssim_spec *s, int dims, const float *const *a, const float *const *b, size_t o,
                           int64_t n, double p[5][XBLOCK + SSIM_MAX_WIN])
{
    const int r = s->win / 2;
    const float *ac = a[dims == 3 ? r : 0] + o, *bc = b[dims == 3 ? r : 0] + o;
    double wc = dims == 3 ? s->w[r] : 1.0;
#pragma omp simd
    for (int64_t x = 0; x < n; x++) {
        double u = ac[x], v = bc[x];
        p[0][x] = wc * u;
        p[1][x] = wc * v;
        p[2][x] = wc * (u * u);
        p[3][x] = wc * (v * v);
        p[4][x] = wc * (u * v);
    }
    if (dims != 3) return;
    for (int k = 1; k <= r; k++) {
        const float *al = a[r - k] + o, *ah = a[r + k] + o, *bl = b[r - k] + o, *bh = b[r + k] + o;
        double wk = s->w[r + k];
#pragma omp simd
        for (int64_t x = 0; x < n; x++) {
            double ul = al[x], uh = ah[x], vl = bl[x], vh = bh[x];
            p[0][x] += wk * (ul + uh);
            p[1][x] += wk * (vl + vh);
            p[2][x] += wk * (ul * ul + uh * uh);
            p[3][x] += wk * (vl * vl + vh * vh);
            p[4][x] += wk * (ul * vl + uh * vh);
        }
    }
}

/* h[j] = sum_k w[k] p[j + k]: a correlation, in the order scipy's
 * correlate1d adds a symmetric kernel (centre first, then pairs). */
static inline void conv_row(const double *w, int win, const double *p, double *h, int64_t n)
{
    int r = win / 2;
    const double *pc = p + r;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) h[j] = w[r] * pc[j];
    for (int k = 1; k <= r; k++) {
        const double *lo = pc - k, *hi = pc + k;
        double wk = w[r + k];
#pragma omp simd
        for (int64_t j = 0; j < n; j++) h[j] += wk * (lo[j] + hi[j]);
    }
}

static void ssim_planes(const ssim_spec *s, int dims, const float *const *a, const float *const *b, int64_t ny,
                        int64_t nx, double *work, double sums[2])
{
    const int win = s->win, r = win / 2;
    const int64_t nxv = nx - win + 1, nyv = ny - win + 1, nblk = (nxv + XBLOCK - 1) / XBLOCK;
    const size_t hp = (size_t)(ny * nxv);
    double *H = work, *rs = H + 5 * hp;
    const double *w = s->w;

    /* Products (z-filtered for 3D) and the x pass, a block of columns at a
     * time on the stack: the products never go to memory. */
#pragma omp parallel for schedule(dynamic, 16) if ((size_t)(ny * nx) * (size_t)(dims == 3 ? win : 1) >= SS_PAR_MIN)
    for (int64_t t = 0; t < ny * nblk; t++) {
        int64_t y = t / nblk, j0 = (t % nblk) * XBLOCK, nb = nxv - j0 < XBLOCK ? nxv - j0 : XBLOCK;
        double p[5][XBLOCK + SSIM_MAX_WIN];
        block_products(s, dims, a, b, (size_t)(y * nx + j0), nb + win - 1, p);
        for (int q = 0; q < 5; q++) conv_row(w, win, p[q], H + (size_t)q * hp + (size_t)(y * nxv + j0), nb);
    }

    /* The y pass per output row, in blocks of columns held on the stack,
     * combined straight into SSIM values. */
    const double c1 = s->c1, c2 = s->c2, cn = s->cov_norm;
#pragma omp parallel for schedule(dynamic, 8) if (5 * hp >= SS_PAR_MIN)
    for (int64_t i = 0; i < nyv; i++) {
        double s1 = 0, s2 = 0;
        for (int64_t j0 = 0; j0 < nxv; j0 += YBLOCK) {
            int64_t nb = nxv - j0 < YBLOCK ? nxv - j0 : YBLOCK;
            double m[5][YBLOCK];
            for (int q = 0; q < 5; q++) {
                const double *hc = H + (size_t)q * hp + (size_t)((i + r) * nxv + j0);
                double *mq = m[q];
#pragma omp simd
                for (int64_t j = 0; j < nb; j++) mq[j] = w[r] * hc[j];
                for (int k = 1; k <= r; k++) {
                    const double *lo = hc - (int64_t)k * nxv, *hi = hc + (int64_t)k * nxv;
                    double wk = w[r + k];
#pragma omp simd
                    for (int64_t j = 0; j < nb; j++) mq[j] += wk * (lo[j] + hi[j]);
                }
            }
            for (int64_t j = 0; j < nb; j++) {
                double ux = m[0][j], uy = m[1][j];
                double vx = cn * (m[2][j] - ux * ux), vy = cn * (m[3][j] - uy * uy), vxy = cn * (m[4][j] - ux * uy);
                double v = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
                s1 += v;
                s2 += v * v;
            }
        }
        rs[2 * i] = s1;
        rs[2 * i + 1] = s2;
    }
    double t1 = 0, t2 = 0;
    for (int64_t i = 0; i < nyv; i++) t1 += rs[2 * i], t2 += rs[2 * i + 1];
    sums[0] = t1;
    sums[1] = t2;
}

void cpu_ssim2d_f32(const ssim_spec *s, const float *a, const float *b, int64_t ny, int64_t nx, double *work,
                    double sums[2])
{
    ssim_planes(s, 2, &a, &b, ny, nx, work, sums);
}

void cpu_ssim3d_plane_f32(const ssim_spec *s, const float *const *a, const float *const *b, int64_t ny, int64_t nx,
                          double *work, double sums[2])
{
    /* Axes go z, x, y here and z, y, x in scipy: the sums differ by
     * rounding only. */
    ssim_planes(s, 3, a, b, ny, nx, work, sums);
}
