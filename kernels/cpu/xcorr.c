/* Translation between two volumes by (phase) cross-correlation with
 * subpixel refinement by the upsampled DFT of Guizar-Sicairos, Thurman and
 * Fienup (2008), step for step as skimage.registration.
 * phase_cross_correlation does it, so that the two can be compared:
 *   P = F_ref conj(F_mov), divided by max(|P|, 100 eps) for phase correlation;
 *   coarse shift = argmax |IFFT(P)| (first in C order), indices above n/2
 *   taken as negative;
 *   with upsample u > 1: |sum_k P[k] exp(2 pi i f_k t)| on the grid
 *   t = coarse + (j - fix(U/2)) / u, j < U = ceil(1.5 u), on every axis, and
 *   its first maximum in C order.
 * The transforms are FFTW's single-precision real ones; the product, the
 * upsampled DFT and every sum are in double. The upsampled DFT needs the
 * full spectrum, which the real transform stores half of: the other half is
 * read through Hermitian symmetry (P[-k] = conj P[k]), so nothing the size
 * of the full complex spectrum is allocated.
 *
 * The upsampled DFT is three complex matrix products (BLAS zgemm), one per
 * axis, costing about N U (U = ceil(1.5 u) points per axis) multiply-adds.
 *
 * Memory per state: the real volume (float), three half spectra (complex
 * float), the first stage of the upsampled DFT (nz ny U complex double) and
 * a 4 MiB block of full spectrum rows. Sums over the data are made per row
 * and added in order, so results do not depend on the OpenMP thread count. */
#include <cblas.h>
#include <complex.h>
#include <fftw3.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cpu.h"
#include "register.h"

struct xcorr_state {
    int64_t n[3];      /* nz, ny, nx */
    int64_t nh;        /* nx / 2 + 1 columns of the half spectrum */
    size_t nreal, nspec;
    xcorr_opts o;
    float *real;               /* transform input; inverse transform output */
    fftwf_complex *spec;       /* transform output; inverse input (destroyed) */
    fftwf_complex *ref;        /* spectrum of the reference */
    fftwf_complex *prod;       /* cross-power spectrum, kept for the upsampled DFT */
    fftwf_plan fwd, inv;
    double *win[3];            /* Hann weights per axis (with o.hann) */
    double *rowsum;            /* per-row partial sums, added in order */
    double ref_energy, mov_energy;
    /* upsampled DFT */
    int U[3];                  /* points per axis (1 on axes of length 1) */
    double complex *E[3];      /* E[d][j * n_d + k] = exp(2 pi i f_k t_j), rebuilt per call */
    double complex *A1, *A2, *A3;
    double complex *rows;      /* a block of full spectrum rows */
    int64_t block_rows;
};

static double fftfreq(int64_t k, int64_t n)
{
    return (double)(k < (n + 1) / 2 ? k : k - n) / (double)n;
}

xcorr_state *cpu_xcorr_new(int64_t nz, int64_t ny, int64_t nx, const xcorr_opts *o)
{
    if (nz < 1 || ny < 1 || nx < 1 || nz > INT32_MAX || ny > INT32_MAX || nx > INT32_MAX || o->upsample < 1)
        return NULL;
    xcorr_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->n[0] = nz, s->n[1] = ny, s->n[2] = nx;
    s->nh = nx / 2 + 1;
    s->nreal = (size_t)(nz * ny * nx);
    s->nspec = (size_t)(nz * ny * s->nh);
    s->o = *o;
    /* about 4 MiB of full rows per block */
    s->block_rows = ((int64_t)1 << 18) / nx;
    if (s->block_rows < 1) s->block_rows = 1;
    if (s->block_rows > nz * ny) s->block_rows = nz * ny;
    int ok = (s->real = fftwf_malloc(s->nreal * sizeof *s->real)) && (s->spec = fftwf_malloc(s->nspec * sizeof *s->spec)) &&
             (s->ref = fftwf_malloc(s->nspec * sizeof *s->ref)) && (s->prod = fftwf_malloc(s->nspec * sizeof *s->prod)) &&
             (s->rowsum = malloc((size_t)(nz * ny) * sizeof *s->rowsum));
    for (int d = 0; d < 3 && ok; d++) {
        if (o->hann) {
            ok = (s->win[d] = malloc((size_t)s->n[d] * sizeof *s->win[d])) != NULL;
            /* The periodic (DFT-even) Hann window, scipy.signal.get_window('hann', n). */
            for (int64_t i = 0; ok && i < s->n[d]; i++)
                s->win[d][i] = s->n[d] > 1 ? 0.5 - 0.5 * cos(2.0 * M_PI * (double)i / (double)s->n[d]) : 1.0;
        }
        s->U[d] = o->upsample > 1 && s->n[d] > 1 ? (int)ceil(o->upsample * 1.5) : 1;
        if (ok && o->upsample > 1) ok = (s->E[d] = malloc((size_t)s->U[d] * (size_t)s->n[d] * sizeof *s->E[d])) != NULL;
    }
    if (ok && o->upsample > 1)
        ok = (s->A1 = malloc((size_t)(nz * ny) * (size_t)s->U[2] * sizeof *s->A1)) &&
             (s->A2 = malloc((size_t)nz * (size_t)(s->U[1] * s->U[2]) * sizeof *s->A2)) &&
             (s->A3 = malloc((size_t)(s->U[0] * s->U[1] * s->U[2]) * sizeof *s->A3)) &&
             (s->rows = malloc((size_t)s->block_rows * (size_t)nx * sizeof *s->rows));
    if (ok) {
        cpu_fftw_lock();
        s->fwd = fftwf_plan_dft_r2c_3d((int)nz, (int)ny, (int)nx, s->real, s->spec, FFTW_ESTIMATE);
        s->inv = fftwf_plan_dft_c2r_3d((int)nz, (int)ny, (int)nx, s->spec, s->real, FFTW_ESTIMATE);
        cpu_fftw_unlock();
    }
    if (!ok || !s->fwd || !s->inv) {
        cpu_xcorr_free(s);
        return NULL;
    }
    return s;
}

void cpu_xcorr_free(xcorr_state *s)
{
    if (!s) return;
    cpu_fftw_lock();
    if (s->fwd) fftwf_destroy_plan(s->fwd);
    if (s->inv) fftwf_destroy_plan(s->inv);
    cpu_fftw_unlock();
    fftwf_free(s->real);
    fftwf_free(s->spec);
    fftwf_free(s->ref);
    fftwf_free(s->prod);
    for (int d = 0; d < 3; d++) {
        free(s->win[d]);
        free(s->E[d]);
    }
    free(s->rowsum);
    free(s->A1);
    free(s->A2);
    free(s->A3);
    free(s->rows);
    free(s);
}

/* Sum of the rows' partial sums, in row order. */
static double ordered_sum(const double *rowsum, int64_t nrows)
{
    double t = 0;
    for (int64_t r = 0; r < nrows; r++) t += rowsum[r];
    return t;
}

/* s->real = x (minus its mean, times the window, with o.hann), then its
 * transform into s->spec; returns the sum of squares of what was transformed. */
static double transform(xcorr_state *s, const float *x)
{
    int64_t nz = s->n[0], ny = s->n[1], nx = s->n[2], nrows = nz * ny;
    double mean = 0;
    if (s->o.hann) {
#pragma omp parallel for schedule(static) if (s->nreal >= SS_PAR_MIN)
        for (int64_t r = 0; r < nrows; r++) {
            double t = 0;
            for (int64_t i = 0; i < nx; i++) t += x[r * nx + i];
            s->rowsum[r] = t;
        }
        mean = ordered_sum(s->rowsum, nrows) / (double)s->nreal;
    }
#pragma omp parallel for schedule(static) if (s->nreal >= SS_PAR_MIN)
    for (int64_t r = 0; r < nrows; r++) {
        const float *src = x + r * nx;
        float *dst = s->real + r * nx;
        double t = 0;
        if (s->o.hann) {
            double wzy = s->win[0][r / ny] * s->win[1][r % ny];
            for (int64_t i = 0; i < nx; i++) {
                dst[i] = (float)(((double)src[i] - mean) * wzy * s->win[2][i]);
                t += (double)dst[i] * dst[i];
            }
        } else {
            for (int64_t i = 0; i < nx; i++) {
                dst[i] = src[i];
                t += (double)dst[i] * dst[i];
            }
        }
        s->rowsum[r] = t;
    }
    fftwf_execute(s->fwd);
    return ordered_sum(s->rowsum, nrows);
}

void cpu_xcorr_reference_f32(xcorr_state *s, const float *ref)
{
    s->ref_energy = transform(s, ref);
    memcpy(s->ref, s->spec, s->nspec * sizeof *s->ref);
}

static int admissible(const xcorr_state *s, double t)
{
    return s->o.max_shift <= 0 || fabs(t) <= s->o.max_shift * (1 + 1e-12);
}

/* Coarse shift: the first maximum of |c| in C order among admissible shifts. */
static double coarse_peak(xcorr_state *s, int64_t sh[3])
{
    int64_t nz = s->n[0], ny = s->n[1], nx = s->n[2];
    double best = -1;
    sh[0] = sh[1] = sh[2] = 0;
    for (int64_t z = 0; z < nz; z++) {
        int64_t tz = z > nz / 2 ? z - nz : z;
        if (!admissible(s, (double)tz)) continue;
        for (int64_t y = 0; y < ny; y++) {
            int64_t ty = y > ny / 2 ? y - ny : y;
            if (!admissible(s, (double)ty)) continue;
            const float *row = s->real + (z * ny + y) * nx;
            for (int64_t x = 0; x < nx; x++) {
                int64_t tx = x > nx / 2 ? x - nx : x;
                double v = fabs((double)row[x]);
                if (v > best && admissible(s, (double)tx)) {
                    best = v;
                    sh[0] = tz, sh[1] = ty, sh[2] = tx;
                }
            }
        }
    }
    return best;
}

/* The grid position of point j on axis d around the coarse shift c. */
static double grid_t(const xcorr_state *s, int d, int64_t c, int j)
{
    if (s->U[d] == 1) return (double)c;
    return (double)c + (double)(j - s->U[d] / 2) / (double)s->o.upsample;
}

/* The upsampled DFT around the coarse shift; returns the peak magnitude and
 * puts its position in t[]. */
static double upsampled_peak(xcorr_state *s, const int64_t c[3], double t[3])
{
    int64_t nz = s->n[0], ny = s->n[1], nx = s->n[2], nh = s->nh;
    int Uz = s->U[0], Uy = s->U[1], Ux = s->U[2];
    for (int d = 0; d < 3; d++)
        for (int j = 0; j < s->U[d]; j++) {
            double tj = grid_t(s, d, c[d], j);
            for (int64_t k = 0; k < s->n[d]; k++)
                s->E[d][(size_t)j * (size_t)s->n[d] + (size_t)k] = cexp(2.0 * M_PI * I * fftfreq(k, s->n[d]) * tj);
        }
    /* Three matrix products (zgemm), one axis each: A1 = Pfull Ex^T, a block
     * of full spectrum rows at a time (rebuilt from the half spectrum);
     * A2[kz] = Ey A1[kz]; A3 = Ez A2. */
    const double complex one = 1, zero = 0;
    int64_t nrows = nz * ny;
    for (int64_t r0 = 0; r0 < nrows; r0 += s->block_rows) {
        int64_t nb = nrows - r0 < s->block_rows ? nrows - r0 : s->block_rows;
#pragma omp parallel for schedule(static) if ((size_t)(nb * nx) >= SS_PAR_MIN)
        for (int64_t b = 0; b < nb; b++) {
            int64_t r = r0 + b, kz = r / ny, ky = r % ny;
            double complex *full = s->rows + (size_t)b * (size_t)nx;
            const fftwf_complex *h = s->prod + r * nh;
            const fftwf_complex *m = s->prod + (((nz - kz) % nz) * ny + (ny - ky) % ny) * nh;
            for (int64_t k = 0; k < nh; k++) full[k] = h[k];
            for (int64_t k = nh; k < nx; k++) full[k] = conj(m[nx - k]);
        }
        cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, Ux, (int)nx, &one, s->rows, (int)nx, s->E[2],
                    (int)nx, &zero, s->A1 + (size_t)r0 * (size_t)Ux, Ux);
    }
    for (int64_t kz = 0; kz < nz; kz++)
        cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Uy, Ux, (int)ny, &one, s->E[1], (int)ny,
                    s->A1 + (size_t)(kz * ny) * (size_t)Ux, Ux, &zero, s->A2 + (size_t)kz * (size_t)(Uy * Ux), Ux);
    cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Uz, Uy * Ux, (int)nz, &one, s->E[0], (int)nz, s->A2,
                Uy * Ux, &zero, s->A3, Uy * Ux);
    double best = -1;
    t[0] = (double)c[0], t[1] = (double)c[1], t[2] = (double)c[2];
    for (int jz = 0; jz < Uz; jz++) {
        double tz = grid_t(s, 0, c[0], jz);
        if (!admissible(s, tz)) continue;
        for (int jy = 0; jy < Uy; jy++) {
            double ty = grid_t(s, 1, c[1], jy);
            if (!admissible(s, ty)) continue;
            for (int jx = 0; jx < Ux; jx++) {
                double tx = grid_t(s, 2, c[2], jx);
                double v = cabs(s->A3[((size_t)jz * (size_t)Uy + (size_t)jy) * (size_t)Ux + (size_t)jx]);
                if (v > best && admissible(s, tx)) {
                    best = v;
                    t[0] = tz, t[1] = ty, t[2] = tx;
                }
            }
        }
    }
    return best;
}

void cpu_xcorr_find_f32(xcorr_state *s, const float *mov, double shift[3], double *peak)
{
    s->mov_energy = transform(s, mov);
    int phase = s->o.phase;
    const double guard = 100 * DBL_EPSILON;
#pragma omp parallel for schedule(static) if (s->nspec >= SS_PAR_MIN)
    for (size_t k = 0; k < s->nspec; k++) {
        double complex p = (double complex)s->ref[k] * conj((double complex)s->spec[k]);
        if (phase) {
            double a = cabs(p);
            p /= a > guard ? a : guard;
        }
        s->prod[k] = (float complex)p;
        s->spec[k] = s->prod[k];
    }
    fftwf_execute(s->inv);
    int64_t c[3];
    double t[3] = {0, 0, 0};
    double best = coarse_peak(s, c);
    if (s->o.upsample > 1) best = upsampled_peak(s, c, t);
    else t[0] = (double)c[0], t[1] = (double)c[1], t[2] = (double)c[2];
    for (int d = 0; d < 3; d++) shift[d] = s->n[d] > 1 ? t[d] : 0.0;
    double norm = (double)s->nreal;
    if (!phase) norm *= sqrt(s->ref_energy * s->mov_energy);
    *peak = norm > 0 && best > 0 ? best / norm : 0.0;
}
