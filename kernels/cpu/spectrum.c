/* Log-magnitude Fourier spectra of planes, log(1 + |fft2(plane)|), and the
 * mean squared difference of two of them over the full ny x nx frequency
 * grid, as numpy computes it from np.fft.fft2 (unnormalised; the fftshift
 * of the SIREN paper only reorders the grid, so the mean is the same).
 *
 * The transform is FFTW's single-precision real-to-complex one, so only
 * nx/2 + 1 columns are stored; the others are complex conjugates of stored
 * ones (same magnitude) and are counted through weights. The plane's mean is
 * taken out before the float transform and the DC term put back from a
 * double sum: float rounding in the transform scales with the data's norm,
 * which for microscopy counts with an offset is mostly the mean. */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>

#include "cpu.h"
#include "quality.h"
#include "register.h" /* the process-wide FFTW planner lock */

struct spectrum_state {
    int64_t ny, nx, nh; /* nh = nx / 2 + 1 columns stored */
    float *in;
    fftwf_complex *out;
    fftwf_plan plan;
};

spectrum_state *cpu_spectrum_new(int64_t ny, int64_t nx)
{
    if (ny < 1 || nx < 1 || ny > INT32_MAX || nx > INT32_MAX) return NULL;
    spectrum_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ny = ny;
    s->nx = nx;
    s->nh = nx / 2 + 1;
    s->in = fftwf_malloc((size_t)(ny * nx) * sizeof *s->in);
    s->out = fftwf_malloc((size_t)(ny * s->nh) * sizeof *s->out);
    if (s->in && s->out) {
        cpu_fftw_lock();
        s->plan = fftwf_plan_dft_r2c_2d((int)ny, (int)nx, s->in, s->out, FFTW_ESTIMATE);
        cpu_fftw_unlock();
    }
    if (!s->plan) {
        cpu_spectrum_free(s);
        return NULL;
    }
    return s;
}

void cpu_spectrum_free(spectrum_state *s)
{
    if (!s) return;
    if (s->plan) {
        cpu_fftw_lock();
        fftwf_destroy_plan(s->plan);
        cpu_fftw_unlock();
    }
    fftwf_free(s->in);
    fftwf_free(s->out);
    free(s);
}

size_t cpu_spectrum_len(const spectrum_state *s)
{
    return (size_t)(s->ny * s->nh);
}

void cpu_spectrum_logmag(spectrum_state *s, const float *plane, double *out)
{
    size_t n = (size_t)(s->ny * s->nx), m = cpu_spectrum_len(s);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += plane[i];
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) s->in[i] = (float)((double)plane[i] - mean);
    fftwf_execute(s->plan);
#pragma omp parallel for schedule(static) if (m >= SS_PAR_MIN)
    for (size_t i = 0; i < m; i++) {
        /* Squares of floats cannot overflow a double, so no hypot; log(1 + m)
         * as numpy writes it (log1p would only help m far below 1, where the
         * absolute error, which the MSE sees, is tiny either way). */
        double re = s->out[i][0], im = s->out[i][1];
        out[i] = log(1.0 + sqrt(re * re + im * im));
    }
    out[0] = log(1.0 + fabs(sum));
}

double cpu_spectrum_mse(const spectrum_state *s, const double *a, const double *b)
{
    /* Column 0 and, for even nx, column nx/2 are their own mirror images;
     * every other stored column stands for two columns of the full grid. */
    int64_t last = s->nx % 2 == 0 ? s->nh - 1 : -1;
    double total = 0;
    for (int64_t y = 0; y < s->ny; y++) {
        const double *ar = a + y * s->nh, *br = b + y * s->nh;
        double row = 0;
        for (int64_t x = 0; x < s->nh; x++) {
            double d = ar[x] - br[x];
            row += (x == 0 || x == last ? 1.0 : 2.0) * d * d;
        }
        total += row;
    }
    return total / ((double)s->ny * (double)s->nx);
}
