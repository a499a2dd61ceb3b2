/* Richardson-Lucy deconvolution on a periodic nz x ny x nx grid by FFT
 * (FFTW, single precision), with the total-variation term of Dey et al.
 * (Microsc. Res. Tech. 69:260, 2006).
 *
 * The 3D transforms are made of 2D r2c/c2r transforms of the planes and 1D
 * transforms along z of bundles of columns, each bundle or plane a
 * new-array execution of one plan. That spreads a transform over OpenMP
 * threads without FFTW's threads library, and every element sees the same
 * arithmetic whatever the thread count, so the result does not depend on it. */
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>

#include "cpu.h"
#include "register.h" /* the process-wide FFTW planner lock */

/* Columns per bundle of the z transforms: enough contiguous complex values
 * per z step to fill cache lines, few enough that a bundle stays in L2. */
#define RL_BUNDLE 64

struct rl_state {
    int64_t nz, ny, nx, nh; /* nh = nx / 2 + 1 */
    size_t nreal, nspec;    /* nz ny nx, nz ny nh */
    fftwf_complex *otf;     /* the PSF's transform, scaled by 1 / (nz ny nx) */
    fftwf_complex *spec;
    float *work, *tv; /* tv: the TV divisor, allocated on first use */
    fftwf_plan r2c, c2r;                  /* one plane */
    fftwf_plan zf, zb, zf_tail, zb_tail; /* RL_BUNDLE columns along z, and the remainder */
    int64_t cols, tail;                   /* ny nh columns; tail = cols % RL_BUNDLE */
};

void cpu_rl_free(rl_state *s)
{
    if (!s) return;
    cpu_fftw_lock();
    fftwf_plan p[] = {s->r2c, s->c2r, s->zf, s->zb, s->zf_tail, s->zb_tail};
    for (int i = 0; i < 6; i++)
        if (p[i]) fftwf_destroy_plan(p[i]);
    cpu_fftw_unlock();
    fftwf_free(s->otf);
    fftwf_free(s->spec);
    fftwf_free(s->work);
    fftwf_free(s->tv);
    free(s);
}

static fftwf_plan z_plan(const rl_state *s, int howmany, int sign)
{
    int n = (int)s->nz, stride = (int)s->cols;
    return fftwf_plan_many_dft(1, &n, howmany, s->spec, NULL, stride, 1, s->spec, NULL, stride, 1, sign,
                               FFTW_ESTIMATE | FFTW_UNALIGNED);
}

static void fft_forward(const rl_state *s, float *real, fftwf_complex *spec)
{
    const int64_t nz = s->nz, plane = s->ny * s->nx, pspec = s->ny * s->nh;
#pragma omp parallel for schedule(static) if (s->nreal >= SS_PAR_MIN)
    for (int64_t z = 0; z < nz; z++) fftwf_execute_dft_r2c(s->r2c, real + z * plane, spec + z * pspec);
    if (nz == 1) return;
    const int64_t full = s->cols / RL_BUNDLE;
#pragma omp parallel for schedule(static) if (s->nreal >= SS_PAR_MIN)
    for (int64_t b = 0; b <= full; b++) {
        if (b < full) fftwf_execute_dft(s->zf, spec + b * RL_BUNDLE, spec + b * RL_BUNDLE);
        else if (s->tail) fftwf_execute_dft(s->zf_tail, spec + b * RL_BUNDLE, spec + b * RL_BUNDLE);
    }
}

/* Destroys spec (c2r transforms overwrite their input). */
static void fft_inverse(const rl_state *s, fftwf_complex *spec, float *real)
{
    const int64_t nz = s->nz, plane = s->ny * s->nx, pspec = s->ny * s->nh;
    if (nz > 1) {
        const int64_t full = s->cols / RL_BUNDLE;
#pragma omp parallel for schedule(static) if (s->nreal >= SS_PAR_MIN)
        for (int64_t b = 0; b <= full; b++) {
            if (b < full) fftwf_execute_dft(s->zb, spec + b * RL_BUNDLE, spec + b * RL_BUNDLE);
            else if (s->tail) fftwf_execute_dft(s->zb_tail, spec + b * RL_BUNDLE, spec + b * RL_BUNDLE);
        }
    }
#pragma omp parallel for schedule(static) if (s->nreal >= SS_PAR_MIN)
    for (int64_t z = 0; z < nz; z++) fftwf_execute_dft_c2r(s->c2r, spec + z * pspec, real + z * plane);
}

rl_state *cpu_rl_new(int64_t nz, int64_t ny, int64_t nx, const float *psf, int64_t pz, int64_t py, int64_t px)
{
    if (nz < 1 || ny < 1 || nx < 1 || pz < 1 || py < 1 || px < 1 || pz > nz || py > ny || px > nx ||
        nz > INT32_MAX || ny > INT32_MAX || nx > INT32_MAX || (double)ny * (double)(nx / 2 + 1) > INT32_MAX)
        return NULL;
    rl_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->nz = nz, s->ny = ny, s->nx = nx, s->nh = nx / 2 + 1;
    s->nreal = (size_t)(nz * ny * nx);
    s->nspec = (size_t)(nz * ny * s->nh);
    s->cols = ny * s->nh;
    s->tail = s->cols % RL_BUNDLE;
    s->otf = fftwf_alloc_complex(s->nspec);
    s->spec = fftwf_alloc_complex(s->nspec);
    s->work = fftwf_alloc_real(s->nreal);
    if (!s->otf || !s->spec || !s->work) goto fail;
    cpu_fftw_lock();
    s->r2c = fftwf_plan_dft_r2c_2d((int)ny, (int)nx, s->work, s->spec, FFTW_ESTIMATE | FFTW_UNALIGNED);
    s->c2r = fftwf_plan_dft_c2r_2d((int)ny, (int)nx, s->spec, s->work, FFTW_ESTIMATE | FFTW_UNALIGNED);
    int ok = s->r2c && s->c2r;
    if (nz > 1 && ok) {
        s->zf = z_plan(s, RL_BUNDLE, FFTW_FORWARD);
        s->zb = z_plan(s, RL_BUNDLE, FFTW_BACKWARD);
        ok = s->zf && s->zb;
        if (s->tail && ok) {
            s->zf_tail = z_plan(s, (int)s->tail, FFTW_FORWARD);
            s->zb_tail = z_plan(s, (int)s->tail, FFTW_BACKWARD);
            ok = s->zf_tail && s->zb_tail;
        }
    }
    cpu_fftw_unlock();
    if (!ok) goto fail;
    /* The PSF's centre goes to the origin and the rest wraps around, so the
     * convolution does not shift the image. */
    for (size_t i = 0; i < s->nreal; i++) s->work[i] = 0;
    for (int64_t z = 0; z < pz; z++)
        for (int64_t y = 0; y < py; y++)
            for (int64_t x = 0; x < px; x++) {
                int64_t zz = (z - pz / 2 + nz) % nz, yy = (y - py / 2 + ny) % ny, xx = (x - px / 2 + nx) % nx;
                s->work[(zz * ny + yy) * nx + xx] += psf[(z * py + y) * px + x];
            }
    fft_forward(s, s->work, s->otf);
    const float scale = (float)(1.0 / (double)s->nreal);
    for (size_t i = 0; i < s->nspec; i++) s->otf[i][0] *= scale, s->otf[i][1] *= scale;
    return s;
fail:
    cpu_rl_free(s);
    return NULL;
}

/* spec *= otf, or conj(otf) for the correlation with the PSF. */
static void otf_multiply(const rl_state *s, int conjugate)
{
    const float sg = conjugate ? -1.0f : 1.0f;
    fftwf_complex *a = s->spec;
    const fftwf_complex *k = s->otf;
#pragma omp parallel for simd schedule(static) if (s->nspec >= SS_PAR_MIN)
    for (size_t i = 0; i < s->nspec; i++) {
        float ar = a[i][0], ai = a[i][1], br = k[i][0], bi = sg * k[i][1];
        a[i][0] = ar * br - ai * bi;
        a[i][1] = ar * bi + ai * br;
    }
}

/* The normalised gradient grad u / sqrt(|grad u|^2 + eps2) at (z, y, x) by
 * forward differences on the periodic grid; 0 where both are 0. */
static inline void unit_grad(const rl_state *s, const float *u, float eps2, int64_t z, int64_t y, int64_t x,
                             float g[3])
{
    const int64_t ny = s->ny, nx = s->nx;
    int64_t z1 = z + 1 == s->nz ? 0 : z + 1, y1 = y + 1 == ny ? 0 : y + 1, x1 = x + 1 == nx ? 0 : x + 1;
    float c = u[(z * ny + y) * nx + x];
    g[0] = u[(z1 * ny + y) * nx + x] - c;
    g[1] = u[(z * ny + y1) * nx + x] - c;
    g[2] = u[(z * ny + y) * nx + x1] - c;
    float m = sqrtf(g[0] * g[0] + g[1] * g[1] + g[2] * g[2] + eps2);
    float inv = m > 0 ? 1.0f / m : 0.0f;
    g[0] *= inv, g[1] *= inv, g[2] *= inv;
}

/* tv = 1 - lambda div(grad u / |grad u|), the divergence by backward
 * differences (the adjoint of the forward gradient). Each component of the
 * unit vector lies in [-1, 1], so |div| <= 6 and tv >= 1 - 6 lambda. */
static void tv_divisor(const rl_state *s, const float *u, double lambda, double eps, float *tv)
{
    const float eps2 = (float)(eps * eps);
    const int64_t nz = s->nz, ny = s->ny, nx = s->nx;
    const float lam = (float)lambda;
#pragma omp parallel for schedule(static) if (s->nreal >= SS_PAR_MIN)
    for (int64_t r = 0; r < nz * ny; r++) {
        int64_t z = r / ny, y = r % ny, z0 = z ? z - 1 : nz - 1, y0 = y ? y - 1 : ny - 1;
        for (int64_t x = 0; x < nx; x++) {
            int64_t x0 = x ? x - 1 : nx - 1;
            float g[3], gz[3], gy[3], gx[3];
            unit_grad(s, u, eps2, z, y, x, g);
            unit_grad(s, u, eps2, z0, y, x, gz);
            unit_grad(s, u, eps2, z, y0, x, gy);
            unit_grad(s, u, eps2, z, y, x0, gx);
            float div = (g[0] - gz[0]) + (g[1] - gy[1]) + (g[2] - gx[2]);
            tv[(z * ny + y) * nx + x] = 1.0f - lam * div;
        }
    }
}

int cpu_rl_step_f32(rl_state *s, const float *data, float *u, double tv_lambda, double tv_eps, float floor,
                    const int64_t lo[3], const int64_t hi[3], double sums[2])
{
    const int64_t nz = s->nz, ny = s->ny, nx = s->nx, plane = ny * nx;
    float *w = s->work;
    if (tv_lambda > 0) {
        if (!s->tv && !(s->tv = fftwf_alloc_real(s->nreal))) return -1;
        tv_divisor(s, u, tv_lambda, tv_eps, s->tv);
    }
    /* ratio = data / max(u * psf, floor) */
    for (size_t i = 0; i < s->nreal; i++) w[i] = u[i];
    fft_forward(s, w, s->spec);
    otf_multiply(s, 0);
    fft_inverse(s, s->spec, w);
#pragma omp parallel for simd schedule(static) if (s->nreal >= SS_PAR_MIN)
    for (size_t i = 0; i < s->nreal; i++) w[i] = data[i] / fmaxf(w[i], floor);
    /* correction = ratio (x) psf, the correlation */
    fft_forward(s, w, s->spec);
    otf_multiply(s, 1);
    fft_inverse(s, s->spec, w);
    const float *tv = tv_lambda > 0 ? s->tv : NULL;
    double *part = malloc((size_t)nz * 2 * sizeof *part);
    if (!part) return -1;
    /* A plane per iteration, its sums by one thread in order, the planes'
     * added in order: the sums do not depend on the thread count. */
#pragma omp parallel for schedule(static) if (s->nreal >= SS_PAR_MIN)
    for (int64_t z = 0; z < nz; z++) {
        double d2 = 0, u2 = 0;
        int in_z = z >= lo[0] && z < hi[0];
        for (int64_t y = 0; y < ny; y++) {
            int in_zy = in_z && y >= lo[1] && y < hi[1];
            size_t row = (size_t)(z * plane + y * nx);
            for (int64_t x = 0; x < nx; x++) {
                size_t i = row + (size_t)x;
                float v = u[i] * w[i];
                if (tv) v /= tv[i];
                v = fmaxf(v, 0.0f); /* rounding in the transforms can leave a correction just below 0 */
                if (in_zy && x >= lo[2] && x < hi[2]) {
                    double d = (double)v - u[i];
                    d2 += d * d;
                    u2 += (double)u[i] * u[i];
                }
                u[i] = v;
            }
        }
        part[2 * z] = d2, part[2 * z + 1] = u2;
    }
    sums[0] = sums[1] = 0;
    for (int64_t z = 0; z < nz; z++) sums[0] += part[2 * z], sums[1] += part[2 * z + 1];
    free(part);
    return 0;
}

size_t cpu_rl_bytes(int64_t nz, int64_t ny, int64_t nx, int tv)
{
    size_t nreal = (size_t)(nz * ny * nx), nspec = (size_t)(nz * ny * (nx / 2 + 1));
    return (size_t)(1 + (tv != 0)) * nreal * sizeof(float) + 2 * nspec * sizeof(fftwf_complex) +
           (size_t)nz * 2 * sizeof(double);
}
