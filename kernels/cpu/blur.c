/* Separable Gaussian blur of a ZYX volume, matching
 * scipy.ndimage.gaussian_filter(vol, (sz, sy, sx), mode='reflect',
 * truncate=4.0) on float32 data: the same kernel (radius
 * int(4 sigma + 0.5), weights exp(-x^2 / 2 sigma^2) normalised to sum 1),
 * axes in the same order (z, y, x), each pass accumulated in double and
 * stored as float as scipy does, and the same order of the sum within a
 * pass, so results agree to the last bit or close to it.
 *
 * Memory: the volume is blurred in place; each thread holds one padded
 * line buffer (a block of lines for the strided axes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu.h"

/* Lines of a strided axis blurred together: one cache line of floats, so
 * every memory access of the gather and the scatter uses whole lines, and
 * the arithmetic vectorises across them. */
#define LINE_BLOCK 16

/* scipy skips axes with sigma at or below this. */
#define SIGMA_MIN 1e-15

/* Index into a line of n values extended by scipy's 'reflect'
 * (d c b a | a b c d | d c b a): the extension is periodic with period 2n,
 * which also covers kernels longer than the line. */
static int64_t reflect_index(int64_t i, int64_t n)
{
    int64_t p = 2 * n;
    int64_t m = i % p;
    if (m < 0) m += p;
    return m < n ? m : p - 1 - m;
}

/* Sigmas beyond this are taken as this: the kernel costs O(sigma) to build,
 * and on any line that fits in memory such a blur is already flat. */
#define SIGMA_MAX 268435456.0 /* 2^28 */

static double gauss_weight(double c, int64_t k, double sum)
{
    return exp(c * (double)(k * k)) / sum;
}

/* Half of the symmetric kernel for a line of len values, w[0] the centre,
 * built as scipy's _gaussian_kernel1d does so that the weights agree to
 * rounding. A kernel wider than the line is folded: the reflected line is
 * periodic with period 2 len, so weights a period apart can be added, and
 * ext[j - len] == ext[j + len] lets the class at distance len be split over
 * both ends. That keeps buffers O(len) for any sigma. */
static double *gauss_half_kernel(double sigma, int64_t len, int64_t *radius)
{
    int64_t r = (int64_t)(4.0 * sigma + 0.5);
    double c = -0.5 / (sigma * sigma);
    double sum = 1.0;
    for (int64_t k = 1; k <= r; k++) sum += 2.0 * exp(c * (double)(k * k));

    int64_t rr = r <= len ? r : len;
    double *w = calloc((size_t)(rr + 1), sizeof *w);
    if (!w) return NULL;
    if (r <= len) {
        w[0] = 1.0 / sum;
        for (int64_t k = 1; k <= r; k++) w[k] = gauss_weight(c, k, sum);
    } else {
        int64_t p = 2 * len;
        for (int64_t k = -r; k <= r; k++) {
            int64_t d = k % p;
            if (d < 0) d += p;
            if (d > len) d = p - d; /* class -d has the same total as class d */
            w[d] += gauss_weight(c, k < 0 ? -k : k, sum);
        }
        /* A class 0 < d < len was added from both signs but pairs with its
         * mirror at -d in the symmetric sum; the class at len is one class
         * that the symmetric sum visits at both ends. */
        for (int64_t d = 1; d <= len; d++) w[d] *= 0.5;
    }
    *radius = rr;
    return w;
}

/* One axis of the volume seen as [outer][len][inner]: lines run along len
 * with stride inner. The buffer of each thread holds `blk` padded lines,
 * interleaved so that the blk values of one position are adjacent. */
typedef struct {
    float *v;
    int64_t outer, len, inner;
    const double *w;
    int64_t r;
    int64_t blk;
} axis_job;

static void blur_block(const axis_job *a, int64_t o, int64_t i0, int64_t bw, double *ext,
                       double *acc)
{
    const int64_t len = a->len, r = a->r, inner = a->inner, blk = a->blk;
    const double *w = a->w;
    float *base = a->v + (size_t)o * len * inner + i0;

    for (int64_t j = -r; j < len + r; j++) {
        int64_t s = j >= 0 && j < len ? j : reflect_index(j, len);
        const float *src = base + (size_t)s * inner;
        double *dst = ext + (size_t)(j + r) * blk;
        for (int64_t b = 0; b < bw; b++) dst[b] = src[b];
    }
    for (int64_t j = 0; j < len; j++) {
        const double *c = ext + (size_t)(j + r) * blk;
        for (int64_t b = 0; b < bw; b++) acc[b] = c[b] * w[0];
        /* Outermost weights first, as scipy's symmetric correlate adds. */
        for (int64_t k = r; k >= 1; k--) {
            const double *lo = c - k * blk, *hi = c + k * blk;
            double wk = w[k];
            for (int64_t b = 0; b < bw; b++) acc[b] += (lo[b] + hi[b]) * wk;
        }
        float *dst = base + (size_t)j * inner;
        for (int64_t b = 0; b < bw; b++) dst[b] = (float)acc[b];
    }
}

/* A contiguous line: the same sum as blur_block, with the loop over
 * positions innermost so that it vectorises. */
static void blur_row(const axis_job *a, int64_t row, double *ext, double *acc)
{
    const int64_t len = a->len, r = a->r;
    const double *w = a->w;
    float *x = a->v + (size_t)row * len;

    for (int64_t j = -r; j < len + r; j++)
        ext[j + r] = x[j >= 0 && j < len ? j : reflect_index(j, len)];
    const double *c = ext + r;
    for (int64_t j = 0; j < len; j++) acc[j] = c[j] * w[0];
    for (int64_t k = r; k >= 1; k--) {
        double wk = w[k];
        const double *lo = c - k, *hi = c + k;
        for (int64_t j = 0; j < len; j++) acc[j] += (lo[j] + hi[j]) * wk;
    }
    for (int64_t j = 0; j < len; j++) x[j] = (float)acc[j];
}

static void oom(void)
{
    /* The signature has no error return and a partial blur would be silently
     * wrong; a few line buffers not fitting means the process is lost. */
    fprintf(stderr, "gauss_blur3d_f32: out of memory for line buffers\n");
    abort();
}

static void blur_axis(float *v, int64_t outer, int64_t len, int64_t inner, double sigma,
                      int parallel)
{
    int64_t r;
    double *w = gauss_half_kernel(sigma < SIGMA_MAX ? sigma : SIGMA_MAX, len, &r);
    if (!w) oom();

    axis_job a = {v, outer, len, inner, w, r, inner < LINE_BLOCK ? inner : LINE_BLOCK};
    int64_t nblk = (inner + a.blk - 1) / a.blk;
    int64_t ntask = inner == 1 ? outer : outer * nblk;
    /* Per position: blk padded values in ext, blk sums in acc; a contiguous
     * row needs len sums. */
    size_t ext_n = (size_t)(len + 2 * r) * a.blk;
    size_t acc_n = inner == 1 ? (size_t)len : (size_t)a.blk;

    int nthr = 1;
#ifdef _OPENMP
    if (parallel) nthr = omp_get_max_threads();
#endif
    if (nthr > ntask) nthr = (int)ntask;
    double **buf = calloc((size_t)nthr, sizeof *buf);
    if (!buf) oom();
    for (int t = 0; t < nthr; t++) {
        buf[t] = malloc((ext_n + acc_n) * sizeof(double));
        if (!buf[t]) {
            nthr = t; /* run on the threads that got a buffer */
            break;
        }
    }
    if (nthr == 0) oom();

#pragma omp parallel for schedule(static) num_threads(nthr) if (nthr > 1)
    for (int64_t t = 0; t < ntask; t++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *ext = buf[tid], *acc = buf[tid] + ext_n;
        if (inner == 1) {
            blur_row(&a, t, ext, acc);
        } else {
            int64_t o = t / nblk, i0 = (t % nblk) * a.blk;
            int64_t bw = inner - i0 < a.blk ? inner - i0 : a.blk;
            blur_block(&a, o, i0, bw, ext, acc);
        }
    }

    for (int t = 0; t < nthr; t++) free(buf[t]);
    free(buf);
    free(w);
}

void cpu_gauss_blur3d_f32(float *vol, int64_t nz, int64_t ny, int64_t nx, double sz,
                          double sy, double sx)
{
    if (nz <= 0 || ny <= 0 || nx <= 0) return;
    int parallel = (size_t)(nz * ny * nx) >= SS_PAR_MIN;
    /* NaN sigmas fail the test and blur nothing, like 0. */
    if (sz > SIGMA_MIN) blur_axis(vol, 1, nz, ny * nx, sz, parallel);
    if (sy > SIGMA_MIN) blur_axis(vol, nz, ny, nx, sy, parallel);
    if (sx > SIGMA_MIN) blur_axis(vol, nz * ny, nx, 1, sx, parallel);
}
