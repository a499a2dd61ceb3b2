/* Translation of a volume by a (subpixel) shift, as scipy.ndimage does it:
 *   linear, cubic: scipy.ndimage.shift(vol, s, order=1|3, mode=...). A
 *     translation is separable, so each axis is shifted in turn, line by
 *     line. A line is first extended by the edge rule far enough that the
 *     shifted samples and the cubic B-spline's prefilter both lie inside
 *     it; the prefilter (Unser's causal/anticausal recursion, pole
 *     sqrt(3) - 2) starts MARGIN samples before anything that is read, so
 *     its start-up error is below pole^MARGIN = 1e-16 of the data. That is
 *     the exact spline of the extended line, which is what scipy computes
 *     for 'reflect' (and, to its own 12-sample padding, for 'nearest' and
 *     'grid-constant').
 *   fourier: ifftn(scipy.ndimage.fourier_shift(fftn(vol), s)).real, with
 *     FFTW's real transforms. The real part of the complex inverse is the
 *     inverse of the spectrum's Hermitian part, which differs from the
 *     shifted spectrum only on Nyquist bins (frequency -1/2 pairs with
 *     itself): there the phase factor becomes cos(pi * sum of the shifts
 *     of the Nyquist axes) times the phase of the other axes.
 * Lines are processed LANES at a time, interleaved, so that strided axes
 * read whole cache lines and the recursions vectorise across lanes; each
 * line is done by one thread in a fixed order, so results do not depend on
 * the thread count. Memory: one padded block of lines per thread (Fourier:
 * a real copy and a half spectrum of the volume). */
#include <complex.h>
#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu.h"
#include "register.h"

#define LANES 16
#define MARGIN 28

static int64_t edge_index(int64_t i, int64_t n, int edge)
{
    if (i >= 0 && i < n) return i;
    if (edge == EDGE_ZERO) return -1;
    if (edge == EDGE_NEAREST) return i < 0 ? 0 : n - 1;
    /* 'reflect' (d c b a | a b c d | d c b a) is periodic with period 2n. */
    int64_t p = 2 * n, m = i % p;
    if (m < 0) m += p;
    return m < n ? m : p - 1 - m;
}

/* Lines along one axis: line (o, q) starts at o * outer_stride + q * lane_stride,
 * its len elements are elem_stride apart. */
typedef struct {
    int64_t n_outer, outer_stride, n_inner, lane_stride, len, elem_stride;
} line_set;

static int64_t pad_for(double s, int interp)
{
    int64_t p = (int64_t)ceil(fabs(s)) + 3;
    return interp == SHIFT_CUBIC ? p + MARGIN : p;
}

static void shift_block(float *vol, const line_set *ls, int64_t base, int lanes, double s, int interp, int edge,
                        double *ext)
{
    int64_t n = ls->len, pad = pad_for(s, interp), m = n + 2 * pad;
    for (int64_t p = 0; p < m; p++) {
        int64_t i = edge_index(p - pad, n, edge);
        double *e = ext + p * LANES;
        for (int l = 0; l < LANES; l++)
            e[l] = i >= 0 && l < lanes ? vol[base + l * ls->lane_stride + i * ls->elem_stride] : 0.0;
    }
    /* Output i samples the extended line at i - s = i + o + t, 0 <= t < 1. */
    double o = floor(-s), t = -s - o;
    int64_t off = (int64_t)o + pad;
    if (interp == SHIFT_LINEAR) {
        for (int64_t i = 0; i < n; i++) {
            const double *a = ext + (i + off) * LANES, *b = a + LANES;
            for (int l = 0; l < lanes; l++)
                vol[base + l * ls->lane_stride + i * ls->elem_stride] = (float)((1 - t) * a[l] + t * b[l]);
        }
        return;
    }
    const double z = sqrt(3.0) - 2.0;
    for (int l = 0; l < LANES; l++) ext[l] /= 1 - z;
    for (int64_t p = 1; p < m; p++)
        for (int l = 0; l < LANES; l++) ext[p * LANES + l] += z * ext[(p - 1) * LANES + l];
    for (int l = 0; l < LANES; l++) ext[(m - 1) * LANES + l] *= -z / (1 - z);
    for (int64_t p = m - 2; p >= 0; p--)
        for (int l = 0; l < LANES; l++) ext[p * LANES + l] = z * (ext[(p + 1) * LANES + l] - ext[p * LANES + l]);
    double u = 1 - t;
    double w0 = u * u * u / 6, w1 = (4 - 6 * t * t + 3 * t * t * t) / 6, w2 = (1 + 3 * t + 3 * t * t - 3 * t * t * t) / 6,
           w3 = t * t * t / 6;
    for (int64_t i = 0; i < n; i++) {
        const double *c = ext + (i + off - 1) * LANES;
        for (int l = 0; l < lanes; l++)
            vol[base + l * ls->lane_stride + i * ls->elem_stride] =
                (float)(6 * (w0 * c[l] + w1 * c[LANES + l] + w2 * c[2 * LANES + l] + w3 * c[3 * LANES + l]));
    }
}

static void shift_axis(float *vol, const line_set *ls, double s, int interp, int edge, double *bufs, size_t buf_len,
                       int nthr)
{
    int64_t blocks_per_outer = (ls->n_inner + LANES - 1) / LANES, tasks = ls->n_outer * blocks_per_outer;
#pragma omp parallel for schedule(static) num_threads(nthr) if (nthr > 1 && (size_t)(tasks * LANES * ls->len) >= SS_PAR_MIN)
    for (int64_t k = 0; k < tasks; k++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int64_t o = k / blocks_per_outer, q0 = (k % blocks_per_outer) * LANES;
        int lanes = (int)(ls->n_inner - q0 < LANES ? ls->n_inner - q0 : LANES);
        shift_block(vol, ls, o * ls->outer_stride + q0 * ls->lane_stride, lanes, s, interp, edge,
                    bufs + (size_t)tid * buf_len);
    }
}

static int fourier_shift(float *vol, int64_t nz, int64_t ny, int64_t nx, const double s[3])
{
    if (nz > INT32_MAX || ny > INT32_MAX || nx > INT32_MAX) return -1;
    int64_t nh = nx / 2 + 1, n[3] = {nz, ny, nx};
    size_t nreal = (size_t)(nz * ny * nx), nspec = (size_t)(nz * ny * nh);
    float *real = fftwf_malloc(nreal * sizeof *real);
    fftwf_complex *spec = fftwf_malloc(nspec * sizeof *spec);
    double complex *ph[3] = {NULL, NULL, NULL};
    fftwf_plan fwd = NULL, inv = NULL;
    int rc = -1;
    if (!real || !spec) goto done;
    for (int d = 0; d < 3; d++) {
        if (!(ph[d] = malloc((size_t)n[d] * sizeof *ph[d]))) goto done;
        /* ph[d][k]: the phase factor of axis d at index k; 1 at a Nyquist
         * index, whose cos factor is applied once per bin below. */
        for (int64_t k = 0; k < n[d]; k++) {
            int nyq = n[d] % 2 == 0 && k == n[d] / 2;
            double f = (double)(k < (n[d] + 1) / 2 ? k : k - n[d]) / (double)n[d];
            ph[d][k] = nyq ? 1.0 : cexp(-2.0 * M_PI * I * s[d] * f);
        }
    }
    cpu_fftw_lock();
    fwd = fftwf_plan_dft_r2c_3d((int)nz, (int)ny, (int)nx, real, spec, FFTW_ESTIMATE);
    inv = fftwf_plan_dft_c2r_3d((int)nz, (int)ny, (int)nx, spec, real, FFTW_ESTIMATE);
    cpu_fftw_unlock();
    if (!fwd || !inv) goto done;
    memcpy(real, vol, nreal * sizeof *real);
    fftwf_execute(fwd);
    int64_t nrows = nz * ny;
    double scale = 1.0 / (double)nreal;
#pragma omp parallel for schedule(static) if (nspec >= SS_PAR_MIN)
    for (int64_t r = 0; r < nrows; r++) {
        int64_t kz = r / ny, ky = r % ny;
        int nz_q = nz % 2 == 0 && kz == nz / 2, ny_q = ny % 2 == 0 && ky == ny / 2;
        double nyq_zy = (nz_q ? s[0] : 0) + (ny_q ? s[1] : 0);
        double complex pzy = ph[0][kz] * ph[1][ky];
        for (int64_t kx = 0; kx < nh; kx++) {
            int nx_q = nx % 2 == 0 && kx == nx / 2;
            double nyq = nyq_zy + (nx_q ? s[2] : 0);
            double complex f = pzy * ph[2][kx] * scale;
            if (nz_q || ny_q || nx_q) f *= cos(M_PI * nyq);
            fftwf_complex *v = spec + r * nh + kx;
            *v = (float complex)((double complex)*v * f);
        }
    }
    fftwf_execute(inv);
    memcpy(vol, real, nreal * sizeof *vol);
    rc = 0;
done:
    cpu_fftw_lock();
    if (fwd) fftwf_destroy_plan(fwd);
    if (inv) fftwf_destroy_plan(inv);
    cpu_fftw_unlock();
    for (int d = 0; d < 3; d++) free(ph[d]);
    fftwf_free(real);
    fftwf_free(spec);
    return rc;
}

int cpu_shift_f32(float *vol, int64_t nz, int64_t ny, int64_t nx, const double shift[3], int interp, int edge)
{
    if (nz < 1 || ny < 1 || nx < 1) return 0;
    if (shift[0] == 0 && shift[1] == 0 && shift[2] == 0) return 0;
    if (interp == SHIFT_FOURIER) return fourier_shift(vol, nz, ny, nx, shift);
    line_set sets[3] = {
        {.n_outer = 1, .outer_stride = 0, .n_inner = ny * nx, .lane_stride = 1, .len = nz, .elem_stride = ny * nx},
        {.n_outer = nz, .outer_stride = ny * nx, .n_inner = nx, .lane_stride = 1, .len = ny, .elem_stride = nx},
        {.n_outer = 1, .outer_stride = 0, .n_inner = nz * ny, .lane_stride = nx, .len = nx, .elem_stride = 1},
    };
    size_t buf_len = 0;
    for (int d = 0; d < 3; d++) {
        size_t need = (size_t)(sets[d].len + 2 * pad_for(shift[d], interp)) * LANES;
        if (shift[d] != 0 && need > buf_len) buf_len = need;
    }
    int nthr = 1;
#ifdef _OPENMP
    nthr = omp_get_max_threads();
#endif
    double *bufs = malloc((size_t)nthr * buf_len * sizeof *bufs);
    if (!bufs) return -1;
    for (int d = 2; d >= 0; d--)
        if (shift[d] != 0) shift_axis(vol, &sets[d], shift[d], interp, edge, bufs, buf_len, nthr);
    free(bufs);
    return 0;
}
