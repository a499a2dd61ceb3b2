/* The registration and plane-combination kernels by themselves: known
 * shifts recovered, resampling against hand-computed values, edge rules,
 * restriction of the search, and independence of the thread count. The
 * comparison with skimage and scipy is check_kernels.py. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tap.h"
#include "host.h"
#include "kernels.h"

static const kernels *K;

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Smooth random volume: Gaussian-blurred white noise plus an offset. */
static float *smooth_volume(uint64_t seed, int64_t nz, int64_t ny, int64_t nx, double sigma)
{
    size_t n = (size_t)(nz * ny * nx);
    float *v = malloc(n * sizeof *v);
    ss_rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) v[i] = (float)rng_normal(&r);
    K->gauss_blur3d_f32(v, nz, ny, nx, nz > 1 ? sigma : 0, sigma, sigma);
    for (size_t i = 0; i < n; i++) v[i] = 10.0f + 50.0f * v[i];
    return v;
}

static float *copy_of(const float *x, size_t n)
{
    float *y = malloc(n * sizeof *y);
    memcpy(y, x, n * sizeof *y);
    return y;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Finds the shift of mov against ref. */
static void find(const float *ref, const float *mov, int64_t nz, int64_t ny, int64_t nx, xcorr_opts o, double s[3],
                 double *peak)
{
    xcorr_state *st = K->xcorr_new(nz, ny, nx, &o);
    if (!st) {
        s[0] = s[1] = s[2] = NAN;
        *peak = NAN;
        return;
    }
    K->xcorr_reference_f32(st, ref);
    K->xcorr_find_f32(st, mov, s, peak);
    K->xcorr_free(st);
}

static void test_table(void)
{
    CHECK(K->xcorr_new && K->xcorr_free && K->xcorr_reference_f32 && K->xcorr_find_f32 && K->shift_f32 &&
              K->weighted_sum_f32,
          "the registration entries of the CPU table are set");
    xcorr_opts o = {.phase = 1, .upsample = 10};
    CHECK(K->xcorr_new(0, 4, 4, &o) == NULL && K->xcorr_new(1, 4, -1, &o) == NULL, "xcorr_new refuses empty shapes");
    o.upsample = 0;
    CHECK(K->xcorr_new(1, 4, 4, &o) == NULL, "xcorr_new refuses upsample 0");
}

static void test_identity(void)
{
    int64_t ny = 48, nx = 40;
    float *a = smooth_volume(1, 1, ny, nx, 2);
    double s[3], peak;
    find(a, a, 1, ny, nx, (xcorr_opts){.phase = 1, .upsample = 20}, s, &peak);
    CHECK(s[0] == 0 && s[1] == 0 && s[2] == 0, "an image against itself: shift (0, 0, 0), got (%g, %g, %g)", s[0], s[1],
          s[2]);
    CHECK_NEAR(peak, 1.0, 1e-5, "phase correlation peak of an image with itself is 1");
    find(a, a, 1, ny, nx, (xcorr_opts){.phase = 0, .hann = 1, .upsample = 20}, s, &peak);
    CHECK(s[1] == 0 && s[2] == 0, "plain cross-correlation with a Hann window: shift 0 against itself");
    CHECK_NEAR(peak, 1.0, 1e-5, "cross-correlation peak (cosine) of an image with itself is 1");
    free(a);
}

/* mov = ref rolled by (dy, dx) (circularly): the registration shift is (-dy, -dx). */
static void test_integer_roll(void)
{
    int64_t ny = 50, nx = 37;
    float *a = smooth_volume(2, 1, ny, nx, 2), *b = malloc((size_t)(ny * nx) * sizeof *b);
    int dy = 7, dx = -11;
    for (int64_t y = 0; y < ny; y++)
        for (int64_t x = 0; x < nx; x++)
            b[((y + dy + ny) % ny) * nx + (x + dx + nx) % nx] = a[y * nx + x];
    for (int up = 1; up <= 20; up += 19) {
        double s[3], peak;
        find(a, b, 1, ny, nx, (xcorr_opts){.phase = 1, .upsample = up}, s, &peak);
        CHECK(s[1] == -dy && s[2] == -dx, "circular roll by (%d, %d), upsample %d: shift (%g, %g)", dy, dx, up, s[1], s[2]);
        CHECK_NEAR(peak, 1.0, 1e-4, "phase correlation peak of an exact roll is 1 (upsample %d)", up);
    }
    free(a);
    free(b);
}

/* Subpixel shifts applied by the Fourier shift are recovered to the nearest
 * point of the upsampled grid (half a step, 0.025 px at upsample 20), in 2D
 * and 3D, and shifting back restores the image. Odd sizes: on even ones the
 * Fourier shift of a real array cannot move the Nyquist bins (their phase
 * becomes a real cos factor), which biases phase correlation by up to a
 * grid step in either implementation (skimage's too). */
static void test_subpixel(void)
{
    const double cases[][3] = {{0, 3.3, -2.15}, {0, -0.45, 0.05}, {0, 6.72, 4.31}, {1.35, -2.2, 0.7}, {-2.6, 0.15, -4.45}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int three = cases[c][0] != 0;
        int64_t nz = three ? 23 : 1, ny = 63, nx = 55;
        size_t n = (size_t)(nz * ny * nx);
        float *a = smooth_volume(3 + c, nz, ny, nx, 2.5), *b = copy_of(a, n);
        int rc = K->shift_f32(b, nz, ny, nx, cases[c], SHIFT_FOURIER, EDGE_REFLECT);
        double s[3], peak;
        find(a, b, nz, ny, nx, (xcorr_opts){.phase = 1, .upsample = 20}, s, &peak);
        double err = 0;
        for (int d = 0; d < 3; d++) err = fmax(err, fabs(s[d] + cases[c][d]));
        CHECK(rc == 0 && err <= 0.025 + 1e-6, "%s Fourier shift (%g, %g, %g) recovered as (%g, %g, %g): error %.3f <= 0.025 px",
              three ? "3D" : "2D", cases[c][0], cases[c][1], cases[c][2], -s[0], -s[1], -s[2], err);
        /* back by the found shift */
        K->shift_f32(b, nz, ny, nx, s, SHIFT_FOURIER, EDGE_REFLECT);
        float mn, mx;
        K->minmax_f32(a, n, &mn, &mx);
        CHECK(max_abs_diff(a, b, n) < 0.05 * (mx - mn), "shifting by the found shift restores the volume (max diff %.3g of range %.3g)",
              max_abs_diff(a, b, n), (double)(mx - mn));
        free(a);
        free(b);
    }
}

/* A true shift beyond the bound: restrict keeps the answer within it. */
static void test_restrict(void)
{
    int64_t ny = 64, nx = 64;
    size_t n = (size_t)(ny * nx);
    float *a = smooth_volume(9, 1, ny, nx, 2), *b = copy_of(a, n);
    double t[3] = {0, 10, -3};
    K->shift_f32(b, 1, ny, nx, t, SHIFT_FOURIER, EDGE_REFLECT);
    double s[3], peak;
    find(a, b, 1, ny, nx, (xcorr_opts){.phase = 1, .upsample = 20}, s, &peak);
    CHECK(fabs(s[1] + 10) < 0.05 && fabs(s[2] - 3) < 0.05, "unrestricted: shift (%g, %g) found", s[1], s[2]);
    find(a, b, 1, ny, nx, (xcorr_opts){.phase = 1, .upsample = 20, .max_shift = 4}, s, &peak);
    CHECK(fabs(s[1]) <= 4 && fabs(s[2]) <= 4, "max_shift 4: the shift found (%g, %g) stays within 4 px", s[1], s[2]);
    find(a, b, 1, ny, nx, (xcorr_opts){.phase = 1, .upsample = 20, .max_shift = 12}, s, &peak);
    CHECK(fabs(s[1] + 10) < 0.05 && fabs(s[2] - 3) < 0.05, "max_shift 12 does not change a shift within it (%g, %g)", s[1],
          s[2]);
    free(a);
    free(b);
}

/* Linear and cubic resampling against values worked out by hand. */
static void test_shift_values(void)
{
    float x[6] = {1, 2, 4, 8, 16, 32};
    float y[6];
    double s[3] = {0, 0, 2};
    memcpy(y, x, sizeof y);
    K->shift_f32(y, 1, 1, 6, s, SHIFT_LINEAR, EDGE_ZERO);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 1 && y[5] == 8, "linear, zero edge, shift +2: 0 0 1 2 4 8");
    memcpy(y, x, sizeof y);
    K->shift_f32(y, 1, 1, 6, s, SHIFT_LINEAR, EDGE_NEAREST);
    CHECK(y[0] == 1 && y[1] == 1 && y[2] == 1 && y[3] == 2, "linear, nearest edge, shift +2: 1 1 1 2 ...");
    memcpy(y, x, sizeof y);
    K->shift_f32(y, 1, 1, 6, s, SHIFT_LINEAR, EDGE_REFLECT);
    CHECK(y[0] == 2 && y[1] == 1 && y[2] == 1 && y[3] == 2, "linear, reflect edge, shift +2: 2 1 1 2 ...");
    s[2] = -0.25;
    memcpy(y, x, sizeof y);
    K->shift_f32(y, 1, 1, 6, s, SHIFT_LINEAR, EDGE_NEAREST);
    CHECK(fabsf(y[0] - 1.25f) < 1e-6f && fabsf(y[3] - 10.0f) < 1e-6f && fabsf(y[5] - 32.0f) < 1e-6f,
          "linear, shift -0.25: 0.75 x[i] + 0.25 x[i+1] (1.25 ... 10 ... 32 at the nearest edge)");
    /* Cubic at integer shifts reproduces samples (the B-spline interpolates). */
    float *a = smooth_volume(11, 1, 20, 24, 2), *b = copy_of(a, 480);
    double t[3] = {0, 3, -2};
    K->shift_f32(b, 1, 20, 24, t, SHIFT_CUBIC, EDGE_NEAREST);
    double m = 0;
    for (int yy = 3; yy < 20; yy++)
        for (int xx = 0; xx < 22; xx++) m = fmax(m, fabs((double)b[yy * 24 + xx] - a[(yy - 3) * 24 + xx + 2]));
    CHECK(m < 1e-4, "cubic at an integer shift (3, -2) moves samples exactly (max diff %.2g)", m);
    /* A constant stays constant under every rule but zero. */
    float c[7 * 9];
    for (int i = 0; i < 63; i++) c[i] = 5.5f;
    double u[3] = {0, 1.7, -2.3};
    int ok = 1;
    for (int e = EDGE_REFLECT; e <= EDGE_NEAREST; e += 2)
        for (int ip = SHIFT_LINEAR; ip <= SHIFT_CUBIC; ip++) {
            float d[63];
            memcpy(d, c, sizeof d);
            K->shift_f32(d, 1, 7, 9, u, ip, e);
            for (int i = 0; i < 63; i++) ok &= fabsf(d[i] - 5.5f) < 1e-5f;
        }
    float d[63];
    memcpy(d, c, sizeof d);
    K->shift_f32(d, 1, 7, 9, u, SHIFT_FOURIER, EDGE_ZERO);
    for (int i = 0; i < 63; i++) ok &= fabsf(d[i] - 5.5f) < 1e-5f;
    CHECK(ok, "a constant image stays constant (linear, cubic with reflect/nearest; Fourier)");
    /* A zero shift leaves the data untouched. */
    double z[3] = {0, 0, 0};
    memcpy(b, a, 480 * sizeof *b);
    K->shift_f32(b, 1, 20, 24, z, SHIFT_CUBIC, EDGE_ZERO);
    CHECK(memcmp(a, b, 480 * sizeof *a) == 0, "a zero shift leaves every bit as it was");
    /* Shifting back and forth by a fraction keeps a smooth image (interior). */
    memcpy(b, a, 480 * sizeof *b);
    double f[3] = {0, 0.37, -1.61}, g[3] = {0, -0.37, 1.61};
    K->shift_f32(b, 1, 20, 24, f, SHIFT_CUBIC, EDGE_REFLECT);
    K->shift_f32(b, 1, 20, 24, g, SHIFT_CUBIC, EDGE_REFLECT);
    m = 0;
    for (int yy = 3; yy < 17; yy++)
        for (int xx = 3; xx < 21; xx++) m = fmax(m, fabs((double)b[yy * 24 + xx] - a[yy * 24 + xx]));
    float mn, mx;
    K->minmax_f32(a, 480, &mn, &mx);
    CHECK(m < 0.01 * (mx - mn), "cubic shift and back restores a smooth image inside (max diff %.3g of %.3g)", m,
          (double)(mx - mn));
    free(a);
    free(b);
}

static void test_threads(void)
{
    int64_t nz = 12, ny = 70, nx = 66;
    size_t n = (size_t)(nz * ny * nx);
    float *a = smooth_volume(21, nz, ny, nx, 2), *b = copy_of(a, n);
    double t[3] = {0.6, -3.3, 2.45};
    K->shift_f32(b, nz, ny, nx, t, SHIFT_FOURIER, EDGE_REFLECT);
    double s1[3], s2[3], p1, p2;
    float *c1 = copy_of(b, n), *c2 = copy_of(b, n);
    set_threads(1);
    find(a, b, nz, ny, nx, (xcorr_opts){.phase = 1, .upsample = 20, .hann = 1}, s1, &p1);
    K->shift_f32(c1, nz, ny, nx, t, SHIFT_CUBIC, EDGE_REFLECT);
    set_threads(3);
    find(a, b, nz, ny, nx, (xcorr_opts){.phase = 1, .upsample = 20, .hann = 1}, s2, &p2);
    K->shift_f32(c2, nz, ny, nx, t, SHIFT_CUBIC, EDGE_REFLECT);
    set_threads(2);
    CHECK(memcmp(s1, s2, sizeof s1) == 0 && p1 == p2, "xcorr: the same shift and peak with 1 and 3 threads");
    CHECK(memcmp(c1, c2, n * sizeof *c1) == 0, "cubic shift: the same bits with 1 and 3 threads");
    free(a);
    free(b);
    free(c1);
    free(c2);
}

static void test_weighted_sum(void)
{
    float p0[5] = {1, 2, 3, 4, 5}, p1[5] = {10, 20, 30, 40, 50}, p2[5] = {-1, 0, 1, 0, -1};
    const float *x[3] = {p0, p1, p2};
    double w[3] = {0.25, 0.5, -2};
    float out[5];
    K->weighted_sum_f32(x, w, 3, 5, out);
    int ok = 1;
    for (int i = 0; i < 5; i++) ok &= out[i] == (float)(0.25 * p0[i] + 0.5 * p1[i] - 2.0 * p2[i]);
    CHECK(ok, "weighted_sum: 0.25 a + 0.5 b - 2 c voxel by voxel");
}

int main(void)
{
    K = kernels_cpu();
    set_threads(2);
    test_table();
    test_identity();
    test_integer_roll();
    test_subpixel();
    test_restrict();
    test_shift_values();
    test_threads();
    test_weighted_sum();
    return tap_done();
}
