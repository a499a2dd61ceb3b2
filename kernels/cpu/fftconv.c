/* Circular 2D convolution of planes with a fixed set of kernels by FFT
 * (FFTW, single precision). Kernel spectra are computed once; a plane's
 * spectrum can then be multiplied with several kernels and the products
 * summed before one inverse transform, which is what a 3D convolution
 * streamed plane by plane needs. */
#include <fftw3.h>
#include <stdlib.h>

#include "cpu.h"
#include "register.h"

struct fftconv2 {
    int64_t ny, nx, nxh;
    int nk;
    fftwf_complex *kspec; /* nk spectra, scaled by 1 / (ny nx) */
    fftwf_plan fwd, inv;
};

void fftconv2_free(fftconv2 *c)
{
    if (!c) return;
    cpu_fftw_lock();
    if (c->fwd) fftwf_destroy_plan(c->fwd);
    if (c->inv) fftwf_destroy_plan(c->inv);
    cpu_fftw_unlock();
    fftwf_free(c->kspec);
    free(c);
}

fftconv2 *fftconv2_new(int64_t ny, int64_t nx, int nk, const float *kern, int64_t kh, int64_t kw)
{
    if (ny < 1 || nx < 1 || nk < 1 || kh < 1 || kw < 1 || kh > ny || kw > nx || ny > INT32_MAX || nx > INT32_MAX)
        return NULL;
    fftconv2 *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ny = ny;
    c->nx = nx;
    c->nxh = nx / 2 + 1;
    c->nk = nk;
    size_t nspec = (size_t)(ny * c->nxh), nreal = (size_t)(ny * nx);
    float *real = fftwf_alloc_real(nreal);
    c->kspec = fftwf_alloc_complex(nspec * (size_t)nk);
    if (!real || !c->kspec) goto fail;
    /* Unaligned plans may run on any caller's buffers (new-array execute);
     * ESTIMATE plans are the same on every run, so results are
     * reproducible. */
    cpu_fftw_lock();
    c->fwd = fftwf_plan_dft_r2c_2d((int)ny, (int)nx, real, c->kspec, FFTW_ESTIMATE | FFTW_UNALIGNED);
    c->inv = fftwf_plan_dft_c2r_2d((int)ny, (int)nx, c->kspec, real, FFTW_ESTIMATE | FFTW_UNALIGNED);
    cpu_fftw_unlock();
    if (!c->fwd || !c->inv) goto fail;
    float scale = (float)(1.0 / ((double)ny * (double)nx));
    for (int k = 0; k < nk; k++) {
        for (size_t i = 0; i < nreal; i++) real[i] = 0;
        /* The kernel's centre goes to (0, 0), the rest wraps around, so the
         * convolution does not shift the plane. */
        const float *src = kern + (size_t)k * (size_t)(kh * kw);
        for (int64_t y = 0; y < kh; y++)
            for (int64_t x = 0; x < kw; x++) {
                int64_t yy = (y - kh / 2 + ny) % ny, xx = (x - kw / 2 + nx) % nx;
                real[yy * nx + xx] += src[y * kw + x];
            }
        fftwf_complex *dst = c->kspec + (size_t)k * nspec;
        fftwf_execute_dft_r2c(c->fwd, real, dst);
        for (size_t i = 0; i < nspec; i++) {
            dst[i][0] *= scale;
            dst[i][1] *= scale;
        }
    }
    fftwf_free(real);
    return c;
fail:
    fftwf_free(real);
    fftconv2_free(c);
    return NULL;
}

size_t fftconv2_spectrum_len(const fftconv2 *c) { return (size_t)(c->ny * c->nxh) * 2; }

void fftconv2_forward(const fftconv2 *c, const float *plane, float *spec)
{
    /* Out-of-place r2c transforms leave their input alone (FFTW's default
     * for everything but c2r), so the cast is safe. */
    fftwf_execute_dft_r2c(c->fwd, (float *)plane, (fftwf_complex *)spec);
}

void fftconv2_accumulate(const fftconv2 *c, float *acc, const float *spec, int k)
{
    size_t n = (size_t)(c->ny * c->nxh);
    const float *kk = (const float *)(c->kspec + (size_t)k * n);
#pragma omp parallel for simd schedule(static) if (n >= SS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float ar = spec[2 * i], ai = spec[2 * i + 1], br = kk[2 * i], bi = kk[2 * i + 1];
        acc[2 * i] += ar * br - ai * bi;
        acc[2 * i + 1] += ar * bi + ai * br;
    }
}

void fftconv2_inverse(const fftconv2 *c, float *acc, float *out)
{
    fftwf_execute_dft_c2r(c->inv, (fftwf_complex *)acc, out);
}
