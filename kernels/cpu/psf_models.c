/* PSF models for restoration: Gaussian approximations of the widefield,
 * confocal, two-photon and light-sheet PSFs; Gaussians and resampled
 * measured PSFs on a grid; the split PSF of IsoNet (Weigert et al. 2017):
 * h_rot = h_iso * h_split solved in Fourier space. */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "register.h"

void psf_model_sigma(psf_model m, double na, double lambda_em, double lambda_ex, double n, double na_ill,
                     double *sigma_xy, double *sigma_z)
{
    /* Zhang, Zerubia & Olivo-Marin, Appl. Opt. 46:1819 (2007): paraxial
     * Gaussian fits; the confocal one for a pinhole well below one Airy unit. */
    double wf_xy = 0.21 * lambda_em / na, wf_z = 0.66 * lambda_em * n / (na * na);
    double q = lambda_ex * lambda_em / sqrt(lambda_ex * lambda_ex + lambda_em * lambda_em);
    switch (m) {
    case PSF_WIDEFIELD: *sigma_xy = wf_xy, *sigma_z = wf_z; break;
    case PSF_CONFOCAL: *sigma_xy = 0.21 * q / na, *sigma_z = 0.66 * q * n / (na * na); break;
    case PSF_TWO_PHOTON: {
        double fxy, fz;
        psf2p_fwhm(na, lambda_ex, n, &fxy, &fz);
        *sigma_xy = fxy / (2.0 * sqrt(2.0 * log(2.0)));
        *sigma_z = fz / (2.0 * sqrt(2.0 * log(2.0)));
        break;
    }
    case PSF_LIGHT_SHEET: {
        /* detection as widefield; along z the product with the sheet, a
         * Gaussian beam of waist w0 = lambda / (pi NA_ill) (1/e^2 radius of
         * the intensity, so sigma = w0 / 2) */
        double sheet = lambda_ex / (M_PI * na_ill) / 2.0;
        *sigma_xy = wf_xy;
        *sigma_z = 1.0 / sqrt(1.0 / (wf_z * wf_z) + 1.0 / (sheet * sheet));
        break;
    }
    }
}

static int normalise(float *h, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += h[i];
    if (!(s > 0) || !isfinite(s)) return -1;
    for (size_t i = 0; i < n; i++) h[i] = (float)(h[i] / s);
    return 0;
}

int psf_gaussian3(int64_t nz, int64_t ny, int64_t nx, double sz, double sy, double sx, float *out)
{
    if (nz < 1 || ny < 1 || nx < 1 || sz < 0 || sy < 0 || sx < 0) return -1;
    const int64_t cz = nz / 2, cy = ny / 2, cx = nx / 2;
    for (int64_t z = 0; z < nz; z++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t x = 0; x < nx; x++) {
                double dz = (double)(z - cz), dy = (double)(y - cy), dx = (double)(x - cx);
                /* a zero width is a delta along that axis */
                double e = (sz > 0 ? dz * dz / (sz * sz) : (dz ? INFINITY : 0)) +
                           (sy > 0 ? dy * dy / (sy * sy) : (dy ? INFINITY : 0)) +
                           (sx > 0 ? dx * dx / (sx * sx) : (dx ? INFINITY : 0));
                out[(z * ny + y) * nx + x] = (float)exp(-0.5 * e);
            }
    return normalise(out, (size_t)(nz * ny * nx));
}

/* Trilinear sample of h (centred, grid spacing 1) at (z, y, x) voxels from
 * its centre; 0 outside. */
static double sample3(const float *h, int64_t nz, int64_t ny, int64_t nx, double z, double y, double x)
{
    z += (double)(nz / 2), y += (double)(ny / 2), x += (double)(nx / 2);
    int64_t z0 = (int64_t)floor(z), y0 = (int64_t)floor(y), x0 = (int64_t)floor(x);
    double fz = z - (double)z0, fy = y - (double)y0, fx = x - (double)x0, v = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int d = 0; d < 2; d++) {
                int64_t zz = z0 + a, yy = y0 + b, xx = x0 + d;
                if (zz < 0 || yy < 0 || xx < 0 || zz >= nz || yy >= ny || xx >= nx) continue;
                v += (a ? fz : 1 - fz) * (b ? fy : 1 - fy) * (d ? fx : 1 - fx) * h[(zz * ny + yy) * nx + xx];
            }
    return v;
}

int psf_resample(const float *h, int64_t nz, int64_t ny, int64_t nx, const double from[3], double to, int64_t n,
                 int rotate, float *out)
{
    if (n < 1 || !(to > 0) || !(from[0] > 0) || !(from[1] > 0) || !(from[2] > 0)) return -1;
    const int64_t c = n / 2;
    for (int64_t z = 0; z < n; z++)
        for (int64_t y = 0; y < n; y++)
            for (int64_t x = 0; x < n; x++) {
                /* rotated: the output's z axis is the PSF's x axis and its x axis the PSF's z axis */
                double pz = (double)((rotate ? x : z) - c) * to, py = (double)(y - c) * to,
                       px = (double)((rotate ? z : x) - c) * to;
                out[(z * n + y) * n + x] = (float)sample3(h, nz, ny, nx, pz / from[0], py / from[1], px / from[2]);
            }
    return normalise(out, (size_t)(n * n * n));
}

int psf_radial_iso(const float *h, int64_t n, float *out)
{
    /* the radial profile of the central lateral plane, by linear
     * interpolation along x and y at each radius, spun round in 3D */
    const int64_t c = n / 2;
    const float *plane = h + (size_t)(c * n * n);
    for (int64_t z = 0; z < n; z++)
        for (int64_t y = 0; y < n; y++)
            for (int64_t x = 0; x < n; x++) {
                double r = sqrt((double)((z - c) * (z - c) + (y - c) * (y - c) + (x - c) * (x - c)));
                double v = 0;
                for (int axis = 0; axis < 2; axis++) {
                    double p = (double)c + r;
                    int64_t i0 = (int64_t)floor(p);
                    double f = p - (double)i0;
                    double a = i0 < n ? (axis ? plane[c * n + i0] : plane[i0 * n + c]) : 0;
                    double b = i0 + 1 < n ? (axis ? plane[c * n + i0 + 1] : plane[(i0 + 1) * n + c]) : 0;
                    v += 0.5 * (a * (1 - f) + b * f);
                }
                out[(z * n + y) * n + x] = (float)v;
            }
    return normalise(out, (size_t)(n * n * n));
}

/* Moves the centre voxel (n / 2 along each axis) to the origin, or back. */
static void shift3(const float *in, float *out, int64_t n, int back)
{
    const int64_t c = n / 2;
    for (int64_t z = 0; z < n; z++)
        for (int64_t y = 0; y < n; y++)
            for (int64_t x = 0; x < n; x++) {
                int64_t zz = (z + (back ? c : n - c)) % n, yy = (y + (back ? c : n - c)) % n,
                        xx = (x + (back ? c : n - c)) % n;
                out[(zz * n + yy) * n + xx] = in[(z * n + y) * n + x];
            }
}

int psf_split(const float *h_rot, const float *h_iso, int64_t n, double eps, float *out)
{
    if (n < 1 || n > 1024 || !(eps > 0)) return -1;
    size_t nr = (size_t)(n * n * n), nc = (size_t)(n * n * (n / 2 + 1));
    float *a = fftwf_alloc_real(nr), *b = fftwf_alloc_real(nr);
    fftwf_complex *fa = fftwf_alloc_complex(nc), *fb = fftwf_alloc_complex(nc);
    int rc = a && b && fa && fb ? 0 : -1;
    fftwf_plan pa = NULL, pb = NULL, pi = NULL;
    if (rc == 0) {
        cpu_fftw_lock();
        pa = fftwf_plan_dft_r2c_3d((int)n, (int)n, (int)n, a, fa, FFTW_ESTIMATE);
        pb = fftwf_plan_dft_r2c_3d((int)n, (int)n, (int)n, b, fb, FFTW_ESTIMATE);
        pi = fftwf_plan_dft_c2r_3d((int)n, (int)n, (int)n, fa, a, FFTW_ESTIMATE);
        cpu_fftw_unlock();
        rc = pa && pb && pi ? 0 : -1;
    }
    if (rc == 0) {
        shift3(h_rot, a, n, 0);
        shift3(h_iso, b, n, 0);
        fftwf_execute(pa);
        fftwf_execute(pb);
        /* Tikhonov: H_split = H_rot conj(H_iso) / (|H_iso|^2 + eps max |H_iso|^2) */
        double mx = 0;
        for (size_t i = 0; i < nc; i++) mx = fmax(mx, (double)fb[i][0] * fb[i][0] + (double)fb[i][1] * fb[i][1]);
        double reg = eps * mx;
        for (size_t i = 0; i < nc; i++) {
            double ar = fa[i][0], ai = fa[i][1], br = fb[i][0], bi = fb[i][1];
            double d = br * br + bi * bi + reg;
            fa[i][0] = (float)((ar * br + ai * bi) / d / (double)nr);
            fa[i][1] = (float)((ai * br - ar * bi) / d / (double)nr);
        }
        fftwf_execute(pi);
        /* The ringing of the division (negative lobes where the true split
         * is narrower than a voxel) is kept: cutting it would spoil the
         * identity h_rot = h_iso * h_split that defines it. */
        shift3(a, out, n, 1);
        rc = normalise(out, nr);
    }
    cpu_fftw_lock();
    if (pa) fftwf_destroy_plan(pa);
    if (pb) fftwf_destroy_plan(pb);
    if (pi) fftwf_destroy_plan(pi);
    cpu_fftw_unlock();
    fftwf_free(a);
    fftwf_free(b);
    fftwf_free(fa);
    fftwf_free(fb);
    return rc;
}
