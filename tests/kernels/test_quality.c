/* The image-quality kernels against plain reference code written here:
 * SSIM by explicit window sums (no separable filtering, no sliding planes),
 * the log-magnitude spectrum MSE by a direct double DFT over the full grid
 * (so the half-spectrum weights are checked for odd and even sizes), the sum
 * of squared differences by a plain loop; plus exact cases and determinism
 * across thread counts. The comparison with skimage and numpy themselves is
 * check_metrics.py. */
#include <math.h>
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

/* Smooth-ish random image: a few sines plus noise, values around 100, so the
 * moments have the offset that makes float32 filtering lose digits. */
static float *test_volume(ss_rng *r, int64_t nz, int64_t ny, int64_t nx, double noise)
{
    float *v = malloc((size_t)(nz * ny * nx) * sizeof *v);
    for (int64_t z = 0; z < nz; z++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t x = 0; x < nx; x++)
                v[(z * ny + y) * nx + x] = (float)(100 + 10 * sin(0.3 * x + 0.1 * z) * cos(0.2 * y) +
                                                   noise * rng_normal(r));
    return v;
}

/* SSIM map mean over the valid region by direct window sums, dims 2 or 3
 * (for 3D: a, b are win planes, the map is that of the centre plane). */
static void ssim_direct(const ssim_spec *s, int dims, const float *a, const float *b, int64_t ny, int64_t nx,
                        double *sum, double *sumsq, int64_t *count)
{
    int w = s->win, nzw = dims == 3 ? w : 1;
    *sum = *sumsq = 0;
    *count = 0;
    for (int64_t i = 0; i + w <= ny; i++)
        for (int64_t j = 0; j + w <= nx; j++) {
            double ux = 0, uy = 0, uxx = 0, uyy = 0, uxy = 0;
            for (int kz = 0; kz < nzw; kz++)
                for (int ky = 0; ky < w; ky++)
                    for (int kx = 0; kx < w; kx++) {
                        double g = s->w[ky] * s->w[kx] * (dims == 3 ? s->w[kz] : 1);
                        size_t o = (size_t)((kz * ny + i + ky) * nx + j + kx);
                        double p = a[o], q = b[o];
                        ux += g * p, uy += g * q, uxx += g * p * p, uyy += g * q * q, uxy += g * p * q;
                    }
            double vx = s->cov_norm * (uxx - ux * ux), vy = s->cov_norm * (uyy - uy * uy),
                   vxy = s->cov_norm * (uxy - ux * uy);
            double v = ((2 * ux * uy + s->c1) * (2 * vxy + s->c2)) / ((ux * ux + uy * uy + s->c1) * (vx + vy + s->c2));
            *sum += v;
            *sumsq += v * v;
            ++*count;
        }
}

static void test_spec(void)
{
    ssim_spec s;
    CHECK(ssim_spec_init(&s, 1, 2, 2.0, 0.01, 0.03) == 0 && s.win == 11, "gaussian window is 11 taps");
    double sum = 0;
    for (int k = 0; k < s.win; k++) sum += s.w[k];
    CHECK_NEAR(sum, 1.0, 1e-15, "gaussian weights sum to 1");
    CHECK_NEAR(s.w[5] / s.w[4], exp(0.5 / 2.25), 1e-13, "gaussian weights have sigma 1.5");
    CHECK(s.cov_norm == 1.0 && fabs(s.c1 - 4e-4) < 1e-18 && fabs(s.c2 - 36e-4) < 1e-17,
          "gaussian: population covariance, C1 = (0.01 L)^2, C2 = (0.03 L)^2");
    CHECK(ssim_spec_init(&s, 0, 2, 1.0, 0.01, 0.03) == 0 && s.win == 7 && s.cov_norm == 49.0 / 48.0,
          "uniform 2D: 7 wide, sample covariance 49/48");
    CHECK(ssim_spec_init(&s, 0, 3, 1.0, 0.01, 0.03) == 0 && s.cov_norm == 343.0 / 342.0, "uniform 3D: 343/342");
    CHECK(ssim_spec_init(&s, 0, 4, 1.0, 0.01, 0.03) == -1, "dims other than 2, 3 refused");
    CHECK(ssim_work_len(11, 10, 40) == 0 && ssim_work_len(11, 11, 11) > 0, "work length 0 below the window");
}

static void test_ssim2d(ss_rng *r)
{
    const int64_t ny = 37, nx = 45;
    float *a = test_volume(r, 1, ny, nx, 0), *b = test_volume(r, 1, ny, nx, 3);
    for (int g = 0; g <= 1; g++) {
        ssim_spec s;
        ssim_spec_init(&s, g, 2, 40.0, 0.01, 0.03);
        double *work = malloc(ssim_work_len(s.win, ny, nx) * sizeof *work), sums[2], d1, d2;
        int64_t n;
        K->ssim2d_f32(&s, a, b, ny, nx, work, sums);
        ssim_direct(&s, 2, a, b, ny, nx, &d1, &d2, &n);
        CHECK(n == (ny - s.win + 1) * (nx - s.win + 1), "%s: valid region %lld values", g ? "gaussian" : "uniform",
              (long long)n);
        CHECK_NEAR(sums[0] / n, d1 / n, 1e-12, "%s 2D SSIM equals direct window sums", g ? "gaussian" : "uniform");
        CHECK_NEAR(sums[1] / n, d2 / n, 1e-12, "%s 2D SSIM sum of squares", g ? "gaussian" : "uniform");
        K->ssim2d_f32(&s, a, a, ny, nx, work, sums);
        CHECK(sums[0] == (double)n, "%s: SSIM of an image with itself is exactly 1", g ? "gaussian" : "uniform");
        free(work);
    }
    free(a);
    free(b);
}

static void test_ssim3d(ss_rng *r)
{
    const int64_t nz = 11, ny = 23, nx = 19;
    float *a = test_volume(r, nz, ny, nx, 0), *b = test_volume(r, nz, ny, nx, 4);
    for (int g = 0; g <= 1; g++) {
        ssim_spec s;
        ssim_spec_init(&s, g, 3, 40.0, 0.01, 0.03);
        int w = s.win, off = (int)(nz - w) / 2; /* the uniform window uses the middle 7 planes */
        const float *pa[SSIM_MAX_WIN], *pb[SSIM_MAX_WIN];
        for (int k = 0; k < w; k++) pa[k] = a + (size_t)((off + k) * ny * nx), pb[k] = b + (size_t)((off + k) * ny * nx);
        double *work = malloc(ssim_work_len(w, ny, nx) * sizeof *work), sums[2], d1, d2;
        int64_t n;
        K->ssim3d_plane_f32(&s, pa, pb, ny, nx, work, sums);
        ssim_direct(&s, 3, pa[0], pb[0], ny, nx, &d1, &d2, &n);
        CHECK_NEAR(sums[0] / n, d1 / n, 1e-12, "%s 3D SSIM plane equals direct window sums", g ? "gaussian" : "uniform");
        CHECK_NEAR(sums[1] / n, d2 / n, 1e-12, "%s 3D SSIM sum of squares", g ? "gaussian" : "uniform");
        free(work);
    }
    free(a);
    free(b);
}

static void test_threads(ss_rng *r)
{
    const int64_t nz = 11, ny = 160, nx = 230; /* big enough for the parallel paths */
    float *a = test_volume(r, nz, ny, nx, 1), *b = test_volume(r, nz, ny, nx, 5);
    ssim_spec s2, s3;
    ssim_spec_init(&s2, 1, 2, 40.0, 0.01, 0.03);
    ssim_spec_init(&s3, 1, 3, 40.0, 0.01, 0.03);
    double *work = malloc(ssim_work_len(11, ny, nx) * sizeof *work);
    const float *pa[SSIM_MAX_WIN], *pb[SSIM_MAX_WIN];
    for (int k = 0; k < 11; k++) pa[k] = a + (size_t)(k * ny * nx), pb[k] = b + (size_t)(k * ny * nx);
    double r2[3][2], r3[3][2], m[3];
    int threads[3] = {1, 3, 4};
    for (int t = 0; t < 3; t++) {
        set_threads(threads[t]);
        K->ssim2d_f32(&s2, a, b, ny, nx, work, r2[t]);
        K->ssim3d_plane_f32(&s3, pa, pb, ny, nx, work, r3[t]);
        m[t] = K->sq_diff_sum_f32(a, b, (size_t)(nz * ny * nx));
    }
    set_threads(2);
    CHECK(!memcmp(r2[0], r2[1], sizeof r2[0]) && !memcmp(r2[0], r2[2], sizeof r2[0]),
          "2D SSIM bit-identical with 1, 3, 4 threads");
    CHECK(!memcmp(r3[0], r3[1], sizeof r3[0]) && !memcmp(r3[0], r3[2], sizeof r3[0]),
          "3D SSIM bit-identical with 1, 3, 4 threads");
    CHECK(m[0] == m[1] && m[0] == m[2], "sum of squared differences bit-identical with 1, 3, 4 threads");
    double naive = 0;
    for (size_t i = 0; i < (size_t)(nz * ny * nx); i++) naive += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    CHECK_NEAR(m[0] / naive, 1.0, 1e-12, "sum of squared differences equals a plain loop");
    CHECK(K->sq_diff_sum_f32(a, a, 1000) == 0 && K->sq_diff_sum_f32(a, b, 0) == 0, "zero cases");
    free(work);
    free(a);
    free(b);
}

/* log(1 + |DFT|) over the full grid, in double, straight from the definition. */
static double *logmag_direct(const float *p, int64_t ny, int64_t nx)
{
    double *out = malloc((size_t)(ny * nx) * sizeof *out);
    for (int64_t ky = 0; ky < ny; ky++)
        for (int64_t kx = 0; kx < nx; kx++) {
            double re = 0, im = 0;
            for (int64_t y = 0; y < ny; y++)
                for (int64_t x = 0; x < nx; x++) {
                    double ph = -2 * M_PI * ((double)(ky * y) / ny + (double)(kx * x) / nx);
                    re += p[y * nx + x] * cos(ph);
                    im += p[y * nx + x] * sin(ph);
                }
            out[ky * nx + kx] = log1p(hypot(re, im));
        }
    return out;
}

static void test_spectrum(ss_rng *r)
{
    int64_t sizes[][2] = {{6, 5}, {7, 8}, {1, 4}, {5, 1}, {9, 9}, {12, 10}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int64_t ny = sizes[t][0], nx = sizes[t][1];
        float *a = test_volume(r, 1, ny, nx, 2), *b = test_volume(r, 1, ny, nx, 6);
        spectrum_state *s = K->spectrum_new(ny, nx);
        CHECK(s != NULL, "spectrum state %lld x %lld", (long long)ny, (long long)nx);
        if (!s) continue;
        double *sa = malloc(K->spectrum_len(s) * sizeof *sa), *sb = malloc(K->spectrum_len(s) * sizeof *sb);
        K->spectrum_logmag(s, a, sa);
        K->spectrum_logmag(s, b, sb);
        double got = K->spectrum_mse(s, sa, sb);
        double *da = logmag_direct(a, ny, nx), *db = logmag_direct(b, ny, nx), want = 0;
        for (int64_t i = 0; i < ny * nx; i++) want += (da[i] - db[i]) * (da[i] - db[i]);
        want /= (double)(ny * nx);
        CHECK_NEAR(got / want, 1.0, 1e-5, "%lld x %lld: spectrum MSE equals the direct DFT over the full grid",
                   (long long)ny, (long long)nx);
        CHECK(K->spectrum_mse(s, sa, sa) == 0, "%lld x %lld: spectrum MSE of a plane with itself is 0", (long long)ny,
              (long long)nx);
        free(sa), free(sb), free(da), free(db), free(a), free(b);
        K->spectrum_free(s);
    }
    /* A unit impulse has |F| = 1 at every frequency. */
    float imp[8 * 6] = {0};
    imp[0] = 1;
    spectrum_state *s = K->spectrum_new(8, 6);
    double out[8 * 4];
    K->spectrum_logmag(s, imp, out);
    double worst = 0;
    for (int i = 0; i < 8 * 4; i++) worst = fmax(worst, fabs(out[i] - log(2.0)));
    CHECK(worst < 1e-6, "impulse: log(1 + |F|) = log 2 everywhere (worst error %g)", worst);
    K->spectrum_free(s);
    CHECK(K->spectrum_new(0, 5) == NULL && K->spectrum_new(5, (int64_t)1 << 40) == NULL, "bad sizes refused");
}

int main(void)
{
    K = kernels_cpu();
    ss_rng r;
    rng_seed(&r, 42);
    set_threads(2);
    test_spec();
    test_ssim2d(&r);
    test_ssim3d(&r);
    test_threads(&r);
    test_spectrum(&r);
    return tap_done();
}
