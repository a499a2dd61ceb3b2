/* Radial Fourier masks of planes, the Fourier noise suppression of Qiao et
 * al.'s rationalised deep learning: the radially averaged power spectrum of
 * planes (to find where the signal meets the noise floor), and a low-pass
 * mask applied through FFTW's real transforms.
 *
 * Radii are in units of the Nyquist frequency along each axis: frequency
 * (ky, kx) in cycles per pixel has radius 2 sqrt(ky^2 + kx^2), 1 at the
 * Nyquist frequency of either axis and sqrt(2) in the corners. Bins of the
 * profile are [b / nbins * sqrt(2), (b + 1) / nbins * sqrt(2)). The mask is
 * 1 up to cutoff - rolloff, 0 from cutoff + rolloff on, and a raised cosine
 * between (a hard edge when rolloff is 0). */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>

#include "cpu.h"
#include "register.h" /* the process-wide FFTW planner lock */

struct fmask_state {
    int64_t ny, nx, nh; /* nh = nx / 2 + 1 columns of the half spectrum */
    float *in;
    fftwf_complex *spec, *spec2;
    fftwf_plan fwd, inv, fwd2; /* fwd2: in -> spec2 */
    float *radius; /* ny x nh */
};

void cpu_fmask_free(fmask_state *s)
{
    if (!s) return;
    cpu_fftw_lock();
    if (s->fwd) fftwf_destroy_plan(s->fwd);
    if (s->inv) fftwf_destroy_plan(s->inv);
    if (s->fwd2) fftwf_destroy_plan(s->fwd2);
    cpu_fftw_unlock();
    fftwf_free(s->in);
    fftwf_free(s->spec);
    fftwf_free(s->spec2);
    free(s->radius);
    free(s);
}

fmask_state *cpu_fmask_new(int64_t ny, int64_t nx)
{
    if (ny < 1 || nx < 1 || ny > INT32_MAX || nx > INT32_MAX) return NULL;
    fmask_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ny = ny, s->nx = nx, s->nh = nx / 2 + 1;
    size_t n = (size_t)(ny * nx), m = (size_t)(ny * s->nh);
    s->in = fftwf_malloc(n * sizeof *s->in);
    s->spec = fftwf_malloc(m * sizeof *s->spec);
    s->spec2 = fftwf_malloc(m * sizeof *s->spec2);
    s->radius = malloc(m * sizeof *s->radius);
    if (s->in && s->spec && s->spec2 && s->radius) {
        cpu_fftw_lock();
        s->fwd = fftwf_plan_dft_r2c_2d((int)ny, (int)nx, s->in, s->spec, FFTW_ESTIMATE);
        s->inv = fftwf_plan_dft_c2r_2d((int)ny, (int)nx, s->spec, s->in, FFTW_ESTIMATE);
        s->fwd2 = fftwf_plan_dft_r2c_2d((int)ny, (int)nx, s->in, s->spec2, FFTW_ESTIMATE);
        cpu_fftw_unlock();
    }
    if (!s->fwd || !s->inv || !s->fwd2) {
        cpu_fmask_free(s);
        return NULL;
    }
    for (int64_t y = 0; y < ny; y++) {
        double ky = (double)(y <= ny / 2 ? y : y - ny) / (double)ny;
        for (int64_t x = 0; x < s->nh; x++) {
            double kx = (double)x / (double)nx;
            s->radius[y * s->nh + x] = (float)(2.0 * sqrt(ky * ky + kx * kx));
        }
    }
    return s;
}

/* Column 0 and, for even nx, column nx/2 are their own mirror images; every
 * other stored column stands for two of the full grid. */
static double column_weight(const fmask_state *s, int64_t x)
{
    return x == 0 || (s->nx % 2 == 0 && x == s->nh - 1) ? 1.0 : 2.0;
}

void cpu_fmask_radial_power(fmask_state *s, const float *plane, int nbins, double *power, double *count)
{
    size_t n = (size_t)(s->ny * s->nx);
    for (size_t i = 0; i < n; i++) s->in[i] = plane[i];
    fftwf_execute(s->fwd);
    const double scale = (double)nbins / sqrt(2.0);
    /* One thread, in a fixed order: the sums do not depend on the thread count. */
    for (int64_t y = 0; y < s->ny; y++)
        for (int64_t x = 0; x < s->nh; x++) {
            size_t i = (size_t)(y * s->nh + x);
            int b = (int)((double)s->radius[i] * scale);
            if (b >= nbins) b = nbins - 1;
            double re = s->spec[i][0], im = s->spec[i][1], w = column_weight(s, x);
            power[b] += w * (re * re + im * im) / (double)n;
            count[b] += w;
        }
}

double cpu_fmask_value(double r, double cutoff, double rolloff)
{
    if (r <= cutoff - rolloff) return 1.0;
    if (r >= cutoff + rolloff) return 0.0;
    return 0.5 * (1.0 + cos(M_PI * (r - (cutoff - rolloff)) / (2.0 * rolloff)));
}

void cpu_fmask_apply(fmask_state *s, const float *plane, double cutoff, double rolloff, float *out)
{
    size_t n = (size_t)(s->ny * s->nx), m = (size_t)(s->ny * s->nh);
    for (size_t i = 0; i < n; i++) s->in[i] = plane[i];
    fftwf_execute(s->fwd);
    const float inv_n = (float)(1.0 / (double)n);
#pragma omp parallel for schedule(static) if (m >= SS_PAR_MIN)
    for (size_t i = 0; i < m; i++) {
        float w = (float)cpu_fmask_value(s->radius[i], cutoff, rolloff) * inv_n;
        s->spec[i][0] *= w;
        s->spec[i][1] *= w;
    }
    fftwf_execute(s->inv);
    for (size_t i = 0; i < n; i++) out[i] = s->in[i];
}

/* d mask / d cutoff of the raised cosine: 0.5 sin(u) pi / (2 rolloff) with
 * u = pi (r - cutoff + rolloff) / (2 rolloff), inside the edge only. */
static double fmask_dcutoff(double r, double cutoff, double rolloff)
{
    if (!(rolloff > 0) || r <= cutoff - rolloff || r >= cutoff + rolloff) return 0.0;
    double u = M_PI * (r - (cutoff - rolloff)) / (2.0 * rolloff);
    return 0.5 * sin(u) * M_PI / (2.0 * rolloff);
}

double cpu_fmask_cutoff_grad(fmask_state *s, const float *plane, const float *dy, double cutoff, double rolloff)
{
    /* <ifft(X m), dy> = (1/n) sum over the full spectrum of Re(X conj(DY)) m:
     * its derivative weights each frequency by dm/dcutoff. One thread, in a
     * fixed order. */
    size_t n = (size_t)(s->ny * s->nx);
    for (size_t i = 0; i < n; i++) s->in[i] = plane[i];
    fftwf_execute(s->fwd);
    for (size_t i = 0; i < n; i++) s->in[i] = dy[i];
    fftwf_execute(s->fwd2);
    double g = 0;
    for (int64_t y = 0; y < s->ny; y++)
        for (int64_t x = 0; x < s->nh; x++) {
            size_t i = (size_t)(y * s->nh + x);
            double d = fmask_dcutoff(s->radius[i], cutoff, rolloff);
            if (d == 0) continue;
            double re = (double)s->spec[i][0] * s->spec2[i][0] + (double)s->spec[i][1] * s->spec2[i][1];
            g += column_weight(s, x) * re * d;
        }
    return g / (double)n;
}
