/* Exact Euclidean distance transform (Felzenszwalb & Huttenlocher 2012):
 * squared distances along x first (two sweeps), then along y and z the lower
 * envelope of parabolas f(q) + ((p - q) s)^2, so each pass is linear in the
 * line length whatever the spacing. Lines of one pass are independent and
 * run in parallel. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

/* One line of n squared distances f (stride apart in d), spacing s, in
 * place; v, zb, g are scratch of n, n + 1 and n. Infinite entries carry no
 * parabola. */
static void envelope(double *d, int64_t n, int64_t stride, double s, int64_t *v, double *zb, double *g)
{
    for (int64_t q = 0; q < n; q++) g[q] = d[q * stride];
    int64_t k = -1;
    for (int64_t q = 0; q < n; q++) {
        if (isinf(g[q])) continue;
        double pq = (double)q * s, fq = g[q] + pq * pq;
        double x = -INFINITY;
        while (k >= 0) {
            double pv = (double)v[k] * s;
            x = (fq - (g[v[k]] + pv * pv)) / (2 * (pq - pv));
            if (x > zb[k]) break;
            k--;
        }
        k++;
        v[k] = q;
        zb[k] = k ? x : -INFINITY;
        zb[k + 1] = INFINITY;
    }
    if (k < 0) return; /* no finite entry: the line stays infinite */
    int64_t j = 0;
    for (int64_t p = 0; p < n; p++) {
        double pp = (double)p * s;
        while (zb[j + 1] < pp) j++;
        double dq = pp - (double)v[j] * s;
        d[p * stride] = g[v[j]] + dq * dq;
    }
}

int edt_f64(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, const double sampling[3], double *out)
{
    int64_t nmax = nz > ny ? nz : ny;
    if (nx > nmax) nmax = nx;
    int fail = 0;
    /* x: the nearest unset voxel of the row, left and right. */
#pragma omp parallel for schedule(static) if (nz * ny * nx > (int64_t)SS_PAR_MIN)
    for (int64_t r = 0; r < nz * ny; r++) {
        const uint8_t *m = mask + r * nx;
        double *o = out + r * nx;
        int64_t last = -1;
        for (int64_t x = 0; x < nx; x++) {
            if (!m[x]) last = x;
            o[x] = last < 0 ? INFINITY : (double)(x - last);
        }
        last = -1;
        for (int64_t x = nx - 1; x >= 0; x--) {
            if (!m[x]) last = x;
            if (last >= 0 && (double)(last - x) < o[x]) o[x] = (double)(last - x);
        }
        for (int64_t x = 0; x < nx; x++) {
            double d = o[x] * sampling[2];
            o[x] = d * d;
        }
    }
#pragma omp parallel if (nz * ny * nx > (int64_t)SS_PAR_MIN)
    {
        int64_t *v = malloc((size_t)nmax * sizeof *v);
        double *zb = malloc((size_t)(nmax + 1) * sizeof *zb), *g = malloc((size_t)nmax * sizeof *g);
        if (!v || !zb || !g) {
#pragma omp atomic write
            fail = 1;
        }
        int ok = v && zb && g;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < nz * nx; r++)
            if (ok && ny > 1) envelope(out + (r / nx) * ny * nx + r % nx, ny, nx, sampling[1], v, zb, g);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < ny * nx; r++)
            if (ok && nz > 1) envelope(out + r, nz, ny * nx, sampling[0], v, zb, g);
        free(v);
        free(zb);
        free(g);
    }
    if (fail) return -1;
    size_t n = (size_t)(nz * ny * nx);
    for (size_t i = 0; i < n; i++) out[i] = sqrt(out[i]);
    return 0;
}
