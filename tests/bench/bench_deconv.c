/* Richardson-Lucy iterations per second through the kernel table (the
 * deconv_rl stage's rl_step_f32), on a periodic N^3 float32 volume with a
 * 9^3 Gaussian PSF, as the peer bench_deconv.py times scipy.fft.
 *
 *   bench_deconv N ITERATIONS [TV_LAMBDA]
 *
 * Prints one line: "ours n=N iterations=K seconds=S its_per_s=R checksum=C"
 * (the checksum, the mean of the estimate, lets the two be compared). */
#include "host.h"
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_deconv N ITERATIONS [TV_LAMBDA]\n");
        return 64;
    }
    int64_t n = atoll(argv[1]), iters = atoll(argv[2]);
    double lambda = argc > 3 ? atof(argv[3]) : 0;
    size_t nv = (size_t)(n * n * n);
    float *data = malloc(nv * sizeof *data), *u = malloc(nv * sizeof *u), psf[9 * 9 * 9];
    if (!data || !u) return 71;
    /* the same data the peer makes: 1 + (i mod 97) / 97 */
    for (size_t i = 0; i < nv; i++) data[i] = 1.0f + (float)(i % 97) / 97.0f, u[i] = 1.5f;
    if (psf_gaussian3(9, 9, 9, 1.5, 1.5, 1.5, psf)) return 70;
    const kernels *k = kernels_cpu();
    rl_state *s = k->rl_new(n, n, n, psf, 9, 9, 9);
    if (!s) return 71;
    const int64_t lo[3] = {0, 0, 0}, hi[3] = {n, n, n};
    double sums[2];
    if (k->rl_step_f32(s, data, u, lambda, 1e-3, 1e-6f, lo, hi, sums)) return 71; /* warm-up */
    double t0 = now();
    for (int64_t i = 0; i < iters; i++)
        if (k->rl_step_f32(s, data, u, lambda, 1e-3, 1e-6f, lo, hi, sums)) return 71;
    double t = now() - t0, mean = 0;
    for (size_t i = 0; i < nv; i++) mean += u[i];
    printf("ours n=%lld iterations=%lld seconds=%.3f its_per_s=%.3f checksum=%.6f\n", (long long)n, (long long)iters,
           t, (double)iters / t, mean / (double)nv);
    k->rl_free(s);
    free(data);
    free(u);
    return 0;
}
