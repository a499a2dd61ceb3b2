/* 3D SSIM benchmark: the kernel the metrics stage uses, called directly on a
 * pair of float32 volumes that scripts/bench also hands to
 * skimage.metrics.structural_similarity.
 *
 *   bench_ssim run A.f32 B.f32 Z Y X WINDOW DATA_RANGE REPEATS
 *       raw little-endian float32 volumes, C order; WINDOW gaussian|uniform.
 *       Prints one line: impl=sirenstack threads=N seconds=S (median of
 *       REPEATS) ssim=V. Only the SSIM is timed (the volumes are in memory,
 *       as skimage gets them); the planes are visited as the stage does, a
 *       window of win planes sliding along z.
 *   bench_ssim selftest
 *       TAP: a small pair through the same code path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tap.h"
#include "host.h"
#include "kernels.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Mean of the 3D SSIM map over the cropped volume; NAN if it cannot run. */
static double ssim3d(const float *a, const float *b, int64_t nz, int64_t ny, int64_t nx, int gaussian, double L)
{
    const kernels *k = kernels_cpu();
    ssim_spec s;
    ssim_spec_init(&s, gaussian, 3, L, 0.01, 0.03);
    size_t wl = ssim_work_len(s.win, ny, nx);
    if (!wl || nz < s.win) return NAN;
    double *work = malloc(wl * sizeof *work);
    if (!work) return NAN;
    const float *pa[SSIM_MAX_WIN], *pb[SSIM_MAX_WIN];
    double total = 0;
    size_t plane = (size_t)(ny * nx);
    for (int64_t z0 = 0; z0 + s.win <= nz; z0++) {
        for (int i = 0; i < s.win; i++) pa[i] = a + (size_t)(z0 + i) * plane, pb[i] = b + (size_t)(z0 + i) * plane;
        double sums[2];
        k->ssim3d_plane_f32(&s, pa, pb, ny, nx, work, sums);
        total += sums[0];
    }
    free(work);
    return total / ((double)(nz - s.win + 1) * (double)(ny - s.win + 1) * (double)(nx - s.win + 1));
}

static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *v = malloc(n * sizeof *v);
    if (v && fread(v, sizeof *v, n, f) != n) {
        free(v);
        v = NULL;
    }
    fclose(f);
    return v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int bench(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: bench_ssim run A.f32 B.f32 Z Y X gaussian|uniform DATA_RANGE REPEATS\n");
        return 64;
    }
    int64_t nz = atoll(argv[4]), ny = atoll(argv[5]), nx = atoll(argv[6]);
    int gaussian = !strcmp(argv[7], "gaussian"), reps = atoi(argv[9]);
    double L = atof(argv[8]);
    size_t n = (size_t)(nz * ny * nx);
    float *a = read_f32(argv[2], n), *b = read_f32(argv[3], n);
    if (!a || !b || reps < 1 || reps > 100) {
        fprintf(stderr, "bench_ssim: cannot read %zu floats from %s and %s\n", n, argv[2], argv[3]);
        free(a);
        free(b);
        return 1;
    }
    double t[100], v = NAN;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        v = ssim3d(a, b, nz, ny, nx, gaussian, L);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("impl=sirenstack threads=%d seconds=%.4f ssim=%.10f\n", threads(), t[reps / 2], v);
    free(a);
    free(b);
    return isfinite(v) ? 0 : 1;
}

static int selftest(void)
{
    const int64_t nz = 14, ny = 40, nx = 36;
    size_t n = (size_t)(nz * ny * nx);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    ss_rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < n; i++) {
        a[i] = (float)(sin(0.2 * (double)(i % (size_t)nx)) + 0.1 * rng_normal(&r));
        b[i] = a[i] + (float)(0.2 * rng_normal(&r));
    }
    double same = ssim3d(a, a, nz, ny, nx, 1, 2.0), diff = ssim3d(a, b, nz, ny, nx, 1, 2.0),
           uni = ssim3d(a, b, nz, ny, nx, 0, 2.0);
    CHECK(same == 1.0, "3D SSIM of a volume with itself is 1 (got %.17g)", same);
    CHECK(diff > 0 && diff < 1, "3D SSIM of a noisy copy is in (0, 1) (got %g)", diff);
    CHECK(uni > 0 && uni < 1, "uniform window too (got %g)", uni);
    CHECK(isnan(ssim3d(a, b, 10, ny, nx, 1, 2.0)), "fewer planes than the window: NaN");
    free(a);
    free(b);
    return tap_done();
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "selftest")) return selftest();
    if (argc >= 2 && !strcmp(argv[1], "run")) return bench(argc, argv);
    fprintf(stderr, "usage: bench_ssim run ... | bench_ssim selftest\n");
    return 64;
}
