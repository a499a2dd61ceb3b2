/* Photon and read noise of a detector, row-parallel and reproducible: each
 * row draws from its own stream, derived from (seed, stream, row), so the
 * result does not depend on the thread count or the order of rows. */
#include <math.h>

#include "cpu.h"

/* Poisson by inversion (sequential search of the CDF): one uniform and
 * about lambda multiplications, several times faster than the product of
 * uniforms at the photon counts of fluorescence images. Exact up to double
 * rounding of the CDF; above 30 the O(1) rejection sampler of rng.c takes
 * over. */
static uint64_t poisson(ss_rng *r, double lambda)
{
    if (!(lambda > 0)) return 0;
    if (lambda >= 30) return rng_poisson(r, lambda);
    double u = rng_uniform(r), p = exp(-lambda), f = p;
    uint64_t k = 0;
    /* The CDF reaches 1 - 1e-16 long before k = 200 for lambda < 30; the
     * bound only guards against u falling in the rounding gap below 1. */
    while (u >= f && k < 200) {
        k++;
        p *= lambda / (double)k;
        f += p;
    }
    return k;
}

int64_t noise_poisson_gauss_u16(const float *photons, int64_t ny, int64_t nx, double gain, double read_noise,
                                uint64_t seed, uint64_t stream, uint16_t *out)
{
    ss_rng base;
    rng_split(&base, seed, stream);
    uint64_t plane_seed = rng_next(&base);
    int64_t clipped = 0;
#pragma omp parallel for schedule(static) reduction(+ : clipped) if ((size_t)(ny * nx) >= SS_PAR_MIN)
    for (int64_t y = 0; y < ny; y++) {
        ss_rng r;
        rng_split(&r, plane_seed, (uint64_t)y);
        const float *lam = photons + y * nx;
        uint16_t *o = out + y * nx;
        for (int64_t x = 0; x < nx; x++) {
            double l = lam[x] > 0 ? lam[x] : 0;
            double v = gain * (double)poisson(&r, l) + (read_noise > 0 ? read_noise * rng_normal(&r) : 0);
            v = floor(v + 0.5);
            if (v < 0 || v > 65535) clipped++;
            o[x] = (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : v);
        }
    }
    return clipped;
}
