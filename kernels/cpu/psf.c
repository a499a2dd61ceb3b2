/* Two-photon point spread functions: the Gaussian widths of Zipfel et al.
 * (2003) and a numerically integrated scalar Debye PSF.
 *
 * A two-photon image is the dye distribution convolved with the square of
 * the excitation intensity (the emission is collected without a pinhole), so
 * both models describe I_exc^2. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

void psf2p_fwhm(double na, double wavelength, double n, double *fwhm_xy, double *fwhm_z)
{
    /* Zipfel, Williams & Webb, Nat. Biotechnol. 21:1369 (2003), fits to the
     * illumination PSF squared: 1/e radii w of I^2 ~ exp(-r^2 / w^2), so the
     * FWHM is 2 sqrt(ln 2) w. (Reading w as a 1/e^2 radius instead would give
     * widths a quarter below what psf2p_debye computes for the same
     * objective.) */
    double wxy = na <= 0.7 ? 0.320 * wavelength / (sqrt(2.0) * na)
                           : 0.325 * wavelength / (sqrt(2.0) * pow(na, 0.91));
    double wz = 0.532 * wavelength / sqrt(2.0) / (n - sqrt(n * n - na * na));
    double f = 2.0 * sqrt(log(2.0));
    *fwhm_xy = f * wxy;
    *fwhm_z = f * wz;
}

/* Samples of the aperture angle for Simpson's rule: the integrand's phase
 * turns by k n z (1 - cos alpha) and the Bessel factor by k NA r, a few tens
 * of radians at most over the kernels callers ask for. */
#define PSF_THETA 512

int psf2p_debye(double na, double wavelength, double n, int64_t nz, int64_t ny, int64_t nx, double dz,
                double dy, double dx, float *out)
{
    if (nz < 1 || ny < 1 || nx < 1 || !(na > 0) || !(na < n) || !(wavelength > 0)) return -1;
    const double k = 2.0 * M_PI / wavelength, alpha = asin(na / n);
    const int nt = PSF_THETA + 1;
    const int64_t cz = nz / 2, cy = ny / 2, cx = nx / 2;
    /* The radial profile at a spacing well below the pixel, interpolated
     * linearly onto the grid: one Bessel evaluation per (r, theta) instead of
     * per voxel. */
    double dr = fmin(dy, dx) / 16.0;
    double rmax = hypot((double)cy * dy, (double)cx * dx);
    int64_t nr = (int64_t)(rmax / dr) + 2;
    double *wt = malloc((size_t)nt * 3 * sizeof *wt);
    double *prof = malloc((size_t)(nz * nr) * sizeof *prof);
    double *sum = calloc((size_t)nz, sizeof *sum);
    /* The defocus phase k n z cos(theta) does not depend on r: a table of
     * its cosines and sines keeps trigonometry out of the inner loop. */
    double *phase = malloc((size_t)(nz * nt) * 2 * sizeof *phase);
    if (!wt || !prof || !sum || !phase) {
        free(wt);
        free(prof);
        free(sum);
        free(phase);
        return -1;
    }
    double *ct = wt + nt, *st = wt + 2 * nt;
    for (int i = 0; i < nt; i++) {
        double th = alpha * i / PSF_THETA;
        double simpson = i == 0 || i == PSF_THETA ? 1.0 : i % 2 ? 4.0 : 2.0;
        /* sqrt(cos): the apodisation of an aplanatic objective. */
        wt[i] = simpson * sqrt(cos(th)) * sin(th);
        ct[i] = cos(th);
        st[i] = sin(th);
    }
    for (int64_t iz = 0; iz < nz; iz++)
        for (int i = 0; i < nt; i++) {
            double ph = k * n * (double)(iz - cz) * dz * ct[i];
            phase[2 * (iz * nt + i)] = cos(ph);
            phase[2 * (iz * nt + i) + 1] = sin(ph);
        }
    int fail = 0;
#pragma omp parallel
    {
        double *bess = malloc((size_t)nt * sizeof *bess);
        if (!bess) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 8)
        for (int64_t ir = 0; ir < nr; ir++) {
            if (!bess) continue;
            double r = (double)ir * dr;
            for (int i = 0; i < nt; i++) bess[i] = wt[i] * j0(k * n * r * st[i]);
            for (int64_t iz = 0; iz < nz; iz++) {
                const double *cs = phase + 2 * iz * nt;
                double re = 0, im = 0;
                for (int i = 0; i < nt; i++) {
                    re += bess[i] * cs[2 * i];
                    im += bess[i] * cs[2 * i + 1];
                }
                double inten = re * re + im * im;
                prof[iz * nr + ir] = inten * inten;
            }
        }
        free(bess);
    }
    free(phase);
    if (fail) {
        free(wt);
        free(prof);
        free(sum);
        return -1;
    }
#pragma omp parallel for schedule(static)
    for (int64_t iz = 0; iz < nz; iz++) {
        const double *p = prof + iz * nr;
        double s = 0;
        for (int64_t iy = 0; iy < ny; iy++)
            for (int64_t ix = 0; ix < nx; ix++) {
                double r = hypot((double)(iy - cy) * dy, (double)(ix - cx) * dx) / dr;
                int64_t i0 = (int64_t)r;
                double f = r - (double)i0;
                double v = i0 + 1 < nr ? p[i0] * (1.0 - f) + p[i0 + 1] * f : p[nr - 1];
                out[(iz * ny + iy) * nx + ix] = (float)v;
                s += v;
            }
        sum[iz] = s;
    }
    /* Summed plane by plane in a fixed order: the same result for any number
     * of threads. */
    double total = 0;
    for (int64_t iz = 0; iz < nz; iz++) total += sum[iz];
    size_t n3 = (size_t)(nz * ny * nx);
    if (total > 0)
        for (size_t i = 0; i < n3; i++) out[i] = (float)(out[i] / total);
    free(wt);
    free(prof);
    free(sum);
    return total > 0 ? 0 : -1;
}
