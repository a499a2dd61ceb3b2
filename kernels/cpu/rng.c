/* Deterministic random numbers: xoshiro256** (Blackman and Vigna) seeded
 * through splitmix64. Every draw depends only on the state, which is plain
 * data, so checkpoints can save it and a resumed run draws the same
 * numbers. */
#include <math.h>

#include "host.h"

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void rng_seed(ss_rng *r, uint64_t seed)
{
    /* splitmix64 is a bijection of its counter, so four consecutive outputs
     * are never all zero, the one state xoshiro cannot leave. */
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t rng_next(ss_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(ss_rng *r)
{
    /* The top 53 bits: every double in [0, 1) on the 2^-53 grid, equally
     * likely. */
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

double rng_normal(ss_rng *r)
{
    /* Marsaglia's polar method: only log and sqrt, no sin/cos. The second
     * variate is dropped because the state has no room to keep it. */
    double u, v, s;
    do {
        u = 2.0 * rng_uniform(r) - 1.0;
        v = 2.0 * rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}

/* Knuth's product of uniforms: exact, O(lambda) draws. */
static uint64_t poisson_knuth(ss_rng *r, double lambda)
{
    double limit = exp(-lambda);
    double prod = rng_uniform(r);
    uint64_t k = 0;
    while (prod > limit) {
        k++;
        prod *= rng_uniform(r);
    }
    return k;
}

/* PTRS, transformed rejection with squeeze (Hormann 1993, "The transformed
 * rejection method for generating Poisson random variables"), as numpy's
 * legacy generator implements it: exact, O(1) draws on average. */
static uint64_t poisson_ptrs(ss_rng *r, double lambda)
{
    double slam = sqrt(lambda);
    double loglam = log(lambda);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double invalpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2.0);

    for (;;) {
        double u = rng_uniform(r) - 0.5;
        double v = rng_uniform(r);
        double us = 0.5 - fabs(u);
        /* us == 0 makes kd -Inf; it is rejected below like any k < 0. */
        double kd = floor((2.0 * a / us + b) * u + lambda + 0.43);
        if (!(kd >= 0.0 && kd < 0x1.0p64)) continue;
        if (us >= 0.07 && v <= vr) return (uint64_t)kd;
        if (us < 0.013 && v > us) continue;
        int sign;
        if (log(v) + log(invalpha) - log(a / (us * us) + b) <=
            -lambda + kd * loglam - lgamma_r(kd + 1.0, &sign))
            return (uint64_t)kd;
    }
}

/* PTRS is valid from lambda 10 on; below 30 Knuth's loop is as fast. */
#define POISSON_PTRS_MIN 30.0

uint64_t rng_poisson(ss_rng *r, double lambda)
{
    if (!(lambda > 0.0)) return 0;
    return lambda < POISSON_PTRS_MIN ? poisson_knuth(r, lambda) : poisson_ptrs(r, lambda);
}

void rng_split(ss_rng *out, uint64_t seed, uint64_t stream)
{
    /* For a fixed seed the map stream -> state is injective (odd multiply,
     * add, splitmix64 finaliser: all bijections), so streams of one seed
     * never share a starting point. */
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    uint64_t y = h + stream * 0xd1b54a32d192ed03u;
    rng_seed(out, splitmix64(&y));
}
