/* Unit tests of the CPU kernels: small cases worked out by hand, random
 * cases against plain reference code written here, and determinism across
 * thread counts. The comparison with numpy/scipy themselves is
 * check_numpy.py. */
#include <float.h>
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

/* ---- helpers ------------------------------------------------------------ */

static float *random_floats(ss_rng *r, size_t n, double lo, double hi)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_uniform(r));
    return x;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* ---- dispatch ----------------------------------------------------------- */

static void test_dispatch(void)
{
    const kernels *k = kernels_cpu();
    CHECK(k != NULL && strcmp(k->name, "cpu") == 0, "kernels_cpu() is the table named cpu");
    CHECK(k->fuse_mean_f32 && k->fuse_median_f32 && k->affine_f32 && k->count_nonfinite_f32 &&
              k->minmax_f32 && k->gauss_blur3d_f32,
          "every entry of the CPU table is set");
    CHECK(kernels_cuda() == NULL, "kernels_cuda() is NULL while no CUDA table is built");
}

/* ---- fusion ------------------------------------------------------------- */

static float ref_median(float *v, int R)
{
    qsort(v, (size_t)R, sizeof *v, cmp_float);
    if (R & 1) return v[R / 2];
    return (v[R / 2 - 1] + v[R / 2]) * 0.5f;
}

static void test_fuse(ss_rng *rng)
{
    /* 3 repeats of 4 voxels */
    const float rep3[] = {1, 2, -3, 10, /**/ 2, 2, 5, -10, /**/ 4, 8, 1, 0};
    float out[4];
    K->fuse_mean_f32(rep3, 3, 4, out);
    CHECK(out[0] == (float)(7.0 / 3) && out[1] == 4 && out[2] == 1 && out[3] == 0,
          "mean of 3 repeats, small case");
    K->fuse_median_f32(rep3, 3, 4, out);
    CHECK(out[0] == 2 && out[1] == 2 && out[2] == 1 && out[3] == 0, "median of 3 repeats");

    const float rep4[] = {1, 7, 0, /**/ 4, 7, 0, /**/ 2, 1, 0, /**/ 3, 9, -1};
    K->fuse_median_f32(rep4, 4, 3, out);
    CHECK(out[0] == 2.5f && out[1] == 7 && out[2] == 0,
          "even R: mean of the two middle values, ties handled");

    const float one[] = {3.5f, -2};
    K->fuse_median_f32(one, 1, 2, out);
    CHECK(out[0] == 3.5f && out[1] == -2, "R = 1 median is the identity");
    K->fuse_mean_f32(one, 1, 2, out);
    CHECK(out[0] == 3.5f && out[1] == -2, "R = 1 mean is the identity");

    const float big[] = {FLT_MAX, -FLT_MAX, /**/ FLT_MAX, -FLT_MAX};
    K->fuse_median_f32(big, 2, 2, out);
    CHECK(out[0] == FLT_MAX && out[1] == -FLT_MAX, "median of two FLT_MAX does not overflow");
    K->fuse_mean_f32(big, 2, 2, out);
    CHECK(out[0] == FLT_MAX && out[1] == -FLT_MAX, "mean of two FLT_MAX does not overflow");

    const float withnan[] = {1, NAN, 3, /**/ 2, 2, INFINITY, /**/ 3, 3, 4};
    K->fuse_median_f32(withnan, 3, 3, out);
    CHECK(out[0] == 2 && isnan(out[1]) && out[2] == 4, "median: NaN propagates, Inf sorts");
    K->fuse_mean_f32(withnan, 3, 3, out);
    CHECK(out[0] == 2 && isnan(out[1]) && isinf(out[2]), "mean: NaN and Inf propagate");

    K->fuse_mean_f32(rep3, 0, 4, out);
    CHECK(isnan(out[0]) && isnan(out[3]), "R = 0 gives NaN");

    /* Random cases: insertion sort (R <= 16), selection (R > 16) and the
     * heap buffer (R > 256), odd and even. */
    const int Rs[] = {2, 3, 4, 5, 7, 8, 16, 17, 31, 64, 65, 300, 301};
    for (size_t t = 0; t < sizeof Rs / sizeof *Rs; t++) {
        int R = Rs[t];
        size_t n = 997;
        float *rep = random_floats(rng, (size_t)R * n, -100, 100);
        /* duplicates, so that ties are exercised */
        for (size_t i = 0; i < (size_t)R * n; i += 3) rep[i] = floorf(rep[i] / 25);
        float *med = malloc(n * sizeof *med), *mean = malloc(n * sizeof *mean);
        float *v = malloc((size_t)R * sizeof *v);
        K->fuse_median_f32(rep, R, n, med);
        K->fuse_mean_f32(rep, R, n, mean);
        int med_ok = 1, mean_ok = 1;
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (int r = 0; r < R; r++) {
                v[r] = rep[(size_t)r * n + i];
                s += v[r];
            }
            med_ok &= med[i] == ref_median(v, R);
            mean_ok &= mean[i] == (float)(s / R);
        }
        CHECK(med_ok, "median of R = %d random repeats matches sorting", R);
        CHECK(mean_ok, "mean of R = %d random repeats matches the double sum", R);
        free(rep);
        free(med);
        free(mean);
        free(v);
    }
}

/* ---- pointwise and statistics ------------------------------------------- */

static void test_affine(ss_rng *rng)
{
    float x[] = {-1, 0, 1, 2, 3, NAN};
    K->affine_f32(x, 6, 1, 0.5f, 0);
    CHECK(x[0] == -1 && x[1] == -0.5f && x[2] == 0 && x[3] == 0.5f && x[4] == 1 && isnan(x[5]),
          "affine without clip");
    float y[] = {-1, 0, 1, 2, 3, 5, NAN};
    K->affine_f32(y, 7, 1, 0.5f, 1);
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 0 && y[3] == 0.5f && y[4] == 1 && y[5] == 1 &&
              isnan(y[6]),
          "affine with clip; NaN stays NaN");

    size_t n = 100003;
    float *a = random_floats(rng, n, -10, 10);
    float *b = malloc(n * sizeof *b);
    memcpy(b, a, n * sizeof *a);
    K->affine_f32(a, n, -2.5f, 0.125f, 1);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double v = ((double)b[i] - -2.5) * 0.125;
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        ok &= a[i] == (float)v;
    }
    CHECK(ok, "affine on %zu values matches the scalar formula", n);
    /* The whole float32 range: x - lo and the scale are beyond float32. */
    float w[] = {-3.3e38f, 0, 3.3e38f};
    K->affine_f32(w, 3, (double)w[0], 1.0 / ((double)w[2] - w[0]), 0);
    CHECK(w[0] == 0 && fabsf(w[1] - 0.5f) < 1e-6f && fabsf(w[2] - 1) < 1e-6f,
          "affine over the whole float32 range stays finite: %g %g %g", w[0], w[1], w[2]);
    free(a);
    free(b);
}

static void test_stats(ss_rng *rng)
{
    const float x[] = {3, -2, NAN, INFINITY, 7, -INFINITY, 0.5f};
    CHECK(K->count_nonfinite_f32(x, 7) == 3, "count_nonfinite counts NaN and +-Inf");
    CHECK(K->count_nonfinite_f32(x, 0) == 0, "count_nonfinite of nothing is 0");
    float mn, mx;
    K->minmax_f32(x, 7, &mn, &mx);
    CHECK(mn == -2 && mx == 7, "minmax ignores non-finite values");
    const float nf[] = {NAN, INFINITY, -INFINITY};
    K->minmax_f32(nf, 3, &mn, &mx);
    CHECK(isnan(mn) && isnan(mx), "minmax without finite values is NaN");
    K->minmax_f32(x, 0, &mn, &mx);
    CHECK(isnan(mn) && isnan(mx), "minmax of nothing is NaN");
    const float z[] = {0.0f, -0.0f, 0.0f};
    K->minmax_f32(z, 3, &mn, &mx);
    CHECK(mn == 0 && signbit(mn) && mx == 0 && !signbit(mx), "minmax: -0 is below +0");
    const float sub[] = {1e-45f, -3e-45f, FLT_MAX, -FLT_MAX};
    K->minmax_f32(sub, 2, &mn, &mx);
    CHECK(mn == -3e-45f && mx == 1e-45f, "minmax of subnormals");
    K->minmax_f32(sub, 4, &mn, &mx);
    CHECK(mn == -FLT_MAX && mx == FLT_MAX, "minmax of +-FLT_MAX");

    size_t n = 200001;
    float *a = random_floats(rng, n, -1e6, 1e6);
    size_t nonfinite = 0;
    for (size_t i = 0; i < n; i += 97) {
        a[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY;
        nonfinite++;
    }
    float rmn = INFINITY, rmx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(a[i])) {
            rmn = fminf(rmn, a[i]);
            rmx = fmaxf(rmx, a[i]);
        }
    CHECK(K->count_nonfinite_f32(a, n) == nonfinite, "count_nonfinite on %zu values", n);
    K->minmax_f32(a, n, &mn, &mx);
    CHECK(mn == rmn && mx == rmx, "minmax on %zu values", n);
    free(a);
}

/* ---- Gaussian blur ------------------------------------------------------ */

static int64_t reflect(int64_t i, int64_t n)
{
    /* Mirror step by step, the way the reflection is defined, rather than
     * by the period formula the kernel uses. */
    while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;
    return i;
}

/* One axis by the definition: the full kernel, every weight. */
static void ref_blur_axis(float *v, int64_t outer, int64_t len, int64_t inner, double sigma)
{
    if (!(sigma > 1e-15)) return;
    int64_t r = (int64_t)(4 * sigma + 0.5);
    double *w = malloc((size_t)(2 * r + 1) * sizeof *w), sum = 0;
    for (int64_t k = -r; k <= r; k++) sum += w[k + r] = exp(-0.5 * (double)(k * k) / (sigma * sigma));
    double *line = malloc((size_t)len * sizeof *line);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            float *x = v + (size_t)o * len * inner + i;
            for (int64_t j = 0; j < len; j++) {
                double acc = 0;
                for (int64_t k = -r; k <= r; k++) acc += w[k + r] / sum * x[reflect(j + k, len) * inner];
                line[j] = acc;
            }
            for (int64_t j = 0; j < len; j++) x[j * inner] = (float)line[j];
        }
    free(line);
    free(w);
}

static void ref_blur3d(float *v, int64_t nz, int64_t ny, int64_t nx, double sz, double sy,
                       double sx)
{
    ref_blur_axis(v, 1, nz, ny * nx, sz);
    ref_blur_axis(v, nz, ny, nx, sy);
    ref_blur_axis(v, nz * ny, nx, 1, sx);
}

static double max_rel_err(const float *a, const float *b, size_t n, double floor_abs)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), floor_abs);
        if (!(e <= m)) m = e;
    }
    return m;
}

static void test_blur(ss_rng *rng)
{
    /* An impulse in 1D gives the normalised kernel back. */
    float imp[41] = {0};
    imp[20] = 1;
    K->gauss_blur3d_f32(imp, 1, 1, 41, 0, 0, 2.0);
    double s = 0;
    int sym = 1;
    for (int i = 0; i < 41; i++) s += imp[i];
    for (int i = 1; i <= 20; i++) sym &= imp[20 - i] == imp[20 + i];
    CHECK(fabs(s - 1) < 1e-6 && sym, "impulse response is symmetric and sums to 1");
    CHECK(imp[11] == 0 && imp[12] > 0, "kernel radius is int(4 sigma + 0.5) = 8");
    CHECK_NEAR(imp[21] / imp[20], exp(-0.5 / 4), 1e-6, "impulse response is Gaussian");

    /* sigma 0 on every axis leaves the volume alone, bit for bit. */
    size_t n = 5 * 6 * 7;
    float *a = random_floats(rng, n, -1, 1), *b = malloc(n * sizeof *b);
    memcpy(b, a, n * sizeof *a);
    K->gauss_blur3d_f32(a, 5, 6, 7, 0, 0, 0);
    CHECK(same_bits(a, b, n), "sigma 0 on all axes is the identity");
    K->gauss_blur3d_f32(a, 5, 6, 7, 1e-16, -1, NAN);
    CHECK(same_bits(a, b, n), "sigma <= 1e-15, negative or NaN blurs nothing");
    free(a);
    free(b);

    /* A constant stays constant, whatever the kernel and line lengths. */
    float c[3 * 2 * 9];
    for (int i = 0; i < 54; i++) c[i] = 3.25f;
    K->gauss_blur3d_f32(c, 3, 2, 9, 5.0, 7.0, 1.5);
    double maxdev = 0;
    for (int i = 0; i < 54; i++) maxdev = fmax(maxdev, fabs(c[i] - 3.25));
    CHECK(maxdev < 1e-5, "a constant volume stays constant (kernels longer than the axes)");

    /* A one-voxel axis with any sigma is unchanged. */
    float one[4] = {1, 2, 3, 4};
    K->gauss_blur3d_f32(one, 4, 1, 1, 0, 3.0, 9.0);
    CHECK(one[0] == 1 && one[3] == 4, "blurring along a length-1 axis changes nothing");

    /* Random volumes against the definition, including axes shorter than
     * the kernel (folded kernel) and odd shapes for the line blocks. */
    struct {
        int64_t nz, ny, nx;
        double sz, sy, sx;
    } cases[] = {
        {8, 9, 10, 1.0, 1.5, 2.0},  {3, 17, 33, 0.0, 2.5, 0.7}, {2, 3, 5, 4.0, 3.0, 6.0},
        {16, 1, 20, 2.0, 1.0, 0.0}, {1, 40, 3, 0.0, 0.3, 12.0}, {5, 5, 37, 20.0, 0.0, 1.2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        size_t m = (size_t)(cases[t].nz * cases[t].ny * cases[t].nx);
        float *v = random_floats(rng, m, -1, 3), *ref = malloc(m * sizeof *ref);
        memcpy(ref, v, m * sizeof *v);
        K->gauss_blur3d_f32(v, cases[t].nz, cases[t].ny, cases[t].nx, cases[t].sz, cases[t].sy,
                            cases[t].sx);
        ref_blur3d(ref, cases[t].nz, cases[t].ny, cases[t].nx, cases[t].sz, cases[t].sy,
                   cases[t].sx);
        double e = max_rel_err(v, ref, m, 1e-3);
        CHECK(e < 1e-5, "blur %lldx%lldx%lld sigma (%g, %g, %g) matches the definition (rel %.2g)",
              (long long)cases[t].nz, (long long)cases[t].ny, (long long)cases[t].nx, cases[t].sz,
              cases[t].sy, cases[t].sx, e);
        free(v);
        free(ref);
    }
}

/* ---- percentiles -------------------------------------------------------- */

/* numpy.percentile(x, q) on float32 data, method 'linear', written out
 * from numpy's _quantile, _get_indexes and _lerp; where numpy's float32
 * difference overflows, the kernel (documented) and this use the double
 * difference. */
static double ref_percentile(const float *sorted, uint64_t n, double q)
{
    if (n == 0) return NAN;
    double h = (double)(n - 1) * (q / 100.0);
    uint64_t lo = (uint64_t)floor(h), hi = lo + 1;
    double t = h - floor(h);
    if (h >= (double)(n - 1)) lo = hi = n - 1;
    float a = sorted[lo], b = sorted[hi];
    double d = isinf(b - a) ? (double)b - a : (double)(float)(b - a);
    volatile double p;
    if (t >= 0.5) {
        p = d * (1 - t);
        return (double)b - p;
    }
    p = d * t;
    return (double)a + p;
}

/* Runs the pct_* protocol, feeding x in pieces of varying size. */
static pct_state *run_pct(const float *x, size_t n, int nq, const double *q, int exact,
                          ss_rng *rng)
{
    pct_state *p = pct_new(nq, q, exact);
    if (!p) return NULL;
    while (pct_need_pass(p)) {
        size_t at = 0;
        while (at < n) {
            size_t piece = 1 + (size_t)(rng_uniform(rng) * 5000);
            if (piece > n - at) piece = n - at;
            pct_feed(p, x + at, piece);
            at += piece;
        }
        pct_end_pass(p);
    }
    return p;
}

/* The bound documented in kernels.h for the streaming mode. */
static int stream_within_bound(const float *sorted, uint64_t n, double q, double est)
{
    double h = (double)(n - 1) * (q / 100.0);
    uint64_t lo = h >= (double)(n - 1) ? n - 1 : (uint64_t)floor(h);
    uint64_t hi = h >= (double)(n - 1) ? n - 1 : lo + 1;
    double bound = 0x1p-11 * fmax(fabs(sorted[lo]), fabs(sorted[hi])) + 0x1p-137;
    return fabs(est - ref_percentile(sorted, n, q)) <= bound;
}

static void check_pct_case(const char *what, const float *x, size_t n, ss_rng *rng)
{
    static const double q[] = {0, 0.1, 1, 2.5, 10, 25, 33.3, 50, 66.7, 75, 90, 97.5, 99, 99.8, 99.9, 100};
    const int nq = 16;
    float *sorted = malloc((n ? n : 1) * sizeof *sorted);
    memcpy(sorted, x, n * sizeof *x);
    qsort(sorted, n, sizeof *sorted, cmp_float);

    pct_state *pe = run_pct(x, n, nq, q, 1, rng);
    pct_state *ps = run_pct(x, n, nq, q, 0, rng);
    int exact_ok = pe && pct_count(pe) == n, stream_ok = ps && pct_count(ps) == n;
    for (int i = 0; i < nq && exact_ok && stream_ok; i++) {
        double ref = ref_percentile(sorted, n, q[i]);
        double e = pct_result(pe, i), s = pct_result(ps, i);
        if (!(e == ref)) {
            printf("#   exact q=%g: got %.17g, expected %.17g\n", q[i], e, ref);
            exact_ok = 0;
        }
        if (!stream_within_bound(sorted, n, q[i], s)) {
            printf("#   streaming q=%g: got %.17g, exact %.17g\n", q[i], s, ref);
            stream_ok = 0;
        }
    }
    CHECK(exact_ok, "exact percentiles equal numpy's formula: %s (N = %zu)", what, n);
    CHECK(stream_ok, "streaming percentiles within 2^-11 of the bracket: %s (N = %zu)", what, n);
    pct_free(pe);
    pct_free(ps);
    free(sorted);
}

static void test_percentile(ss_rng *rng)
{
    const double q3[] = {0, 50, 100};

    /* Small cases by hand: numpy.percentile([1, 2, 3, 4], [0, 50, 100]). */
    const float four[] = {4, 1, 3, 2};
    pct_state *p = run_pct(four, 4, 3, q3, 1, rng);
    CHECK(p && pct_result(p, 0) == 1 && pct_result(p, 1) == 2.5 && pct_result(p, 2) == 4,
          "exact: [1 2 3 4] at 0, 50, 100 -> 1, 2.5, 4");
    CHECK(p && pct_count(p) == 4, "pct_count is the number of values fed");
    CHECK(p && !pct_need_pass(p), "no pass needed after the second");
    pct_free(p);
    p = run_pct(four, 4, 3, q3, 0, rng);
    CHECK(p && pct_result(p, 0) == 1 && pct_result(p, 1) == 2.5 && pct_result(p, 2) == 4,
          "streaming: small integers are exact");
    pct_free(p);

    const double q1[] = {40};
    const float two[] = {10, 20};
    p = run_pct(two, 2, 1, q1, 1, rng);
    CHECK(p && pct_result(p, 0) == 14, "N = 2: 40th percentile of [10 20] is 14");
    pct_free(p);

    /* Pass counting. */
    p = pct_new(3, q3, 1);
    CHECK(p && pct_need_pass(p), "exact: a first pass is needed");
    pct_feed(p, four, 4);
    pct_end_pass(p);
    CHECK(pct_need_pass(p) && isnan(pct_result(p, 1)), "exact: a second pass is needed, no result yet");
    pct_feed(p, four, 2);
    pct_feed(p, four + 2, 2);
    pct_end_pass(p);
    CHECK(!pct_need_pass(p) && pct_result(p, 1) == 2.5, "exact: two passes, fed in pieces");
    pct_free(p);
    p = pct_new(3, q3, 0);
    pct_feed(p, four, 4);
    pct_end_pass(p);
    CHECK(!pct_need_pass(p), "streaming: one pass");
    pct_free(p);

    /* Empty input: NaN, no second pass. */
    p = pct_new(3, q3, 1);
    pct_end_pass(p);
    CHECK(!pct_need_pass(p) && isnan(pct_result(p, 0)) && pct_count(p) == 0, "N = 0 gives NaN");
    pct_free(p);
    p = pct_new(3, q3, 0);
    pct_end_pass(p);
    CHECK(isnan(pct_result(p, 2)), "N = 0 gives NaN (streaming)");
    pct_free(p);

    /* A second pass over other data is detected. */
    p = pct_new(3, q3, 1);
    pct_feed(p, four, 4);
    pct_end_pass(p);
    pct_feed(p, four, 3);
    pct_end_pass(p);
    CHECK(isnan(pct_result(p, 1)), "a second pass with fewer values gives NaN");
    pct_free(p);

    /* Arguments. */
    const double bad1[] = {-1}, bad2[] = {100.5}, bad3[] = {NAN};
    double q17[17] = {0};
    CHECK(!pct_new(0, q3, 1) && !pct_new(17, q17, 1) && !pct_new(1, bad1, 1) &&
              !pct_new(1, bad2, 0) && !pct_new(1, bad3, 1),
          "pct_new rejects nq outside 1..16 and q outside [0, 100]");
    p = pct_new(16, q17, 1);
    CHECK(p != NULL, "16 quantiles are accepted");
    pct_free(p);
    pct_free(NULL);
    CHECK(isnan(pct_result(NULL, 0)), "pct_result(NULL) is NaN");

    /* Random and awkward data. */
    size_t n = 20011;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(rng);
    check_pct_case("normal", x, n, rng);
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_uniform(rng) * 100 - 150);
    check_pct_case("negative", x, n, rng);
    for (size_t i = 0; i < n; i++) x[i] = (float)floor(rng_uniform(rng) * 65536);
    check_pct_case("uint16 values", x, n, rng);
    for (size_t i = 0; i < n; i++) x[i] = (float)floor(rng_uniform(rng) * 5) - 2;
    check_pct_case("5 distinct values", x, n, rng);
    for (size_t i = 0; i < n; i++) {
        double mag = pow(10.0, -30 + 60 * rng_uniform(rng));
        x[i] = (float)(rng_uniform(rng) < 0.5 ? -mag : mag);
    }
    check_pct_case("huge range 1e-30..1e30, both signs", x, n, rng);
    for (size_t i = 0; i < n; i++) x[i] = (float)((rng_uniform(rng) - 0.5) * 1e-40);
    check_pct_case("subnormals", x, n, rng);
    for (size_t i = 0; i < n; i++) x[i] = i % 2 ? 0.0f : -0.0f;
    check_pct_case("zeros of both signs", x, n, rng);
    for (size_t i = 0; i < n; i++) x[i] = i % 2 ? FLT_MAX : -FLT_MAX;
    check_pct_case("+-FLT_MAX", x, n, rng);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f + (float)(i % 7) * 0x1p-23f;
    check_pct_case("values one ulp apart (one pass-1 bin)", x, n, rng);
    check_pct_case("N = 1", x, 1, rng);
    check_pct_case("N = 2", x, 2, rng);
    check_pct_case("N = 3", x, 3, rng);
    free(x);
}

/* ---- random numbers ----------------------------------------------------- */

static void test_rng(void)
{
    /* Reference outputs of xoshiro256** from state {1, 2, 3, 4}, and of
     * splitmix64 from 1234567 (the first value of the seeded state). */
    ss_rng r = {{1, 2, 3, 4}};
    const uint64_t want[] = {11520u, 0u, 1509978240u, 1215971899390074240u};
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= rng_next(&r) == want[i];
    CHECK(ok, "xoshiro256** matches the reference sequence");
    rng_seed(&r, 1234567);
    CHECK(r.s[0] == 6457827717110365317u && r.s[1] == 3203168211198807973u &&
              r.s[2] == 9817491932198370423u,
          "rng_seed fills the state from splitmix64");

    ss_rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    ok = 1;
    for (int i = 0; i < 1000; i++) ok &= rng_next(&a) == rng_next(&b);
    CHECK(ok, "same seed, same sequence");

    ss_rng s0, s1, s0b;
    rng_split(&s0, 42, 0);
    rng_split(&s1, 42, 1);
    rng_split(&s0b, 42, 0);
    rng_seed(&a, 42);
    CHECK(memcmp(&s0, &s0b, sizeof s0) == 0, "rng_split is deterministic");
    CHECK(memcmp(&s0, &s1, sizeof s0) != 0 && memcmp(&s0, &a, sizeof s0) != 0,
          "rng_split streams differ from each other and from rng_seed");
    /* Streams of one seed are nearly uncorrelated. */
    double c = 0;
    int m = 100000;
    for (int i = 0; i < m; i++) c += (rng_uniform(&s0) - 0.5) * (rng_uniform(&s1) - 0.5);
    CHECK(fabs(c / m * 12) < 0.02, "split streams are uncorrelated (r = %.4f)", c / m * 12);

    rng_seed(&r, 7);
    double sum = 0, sum2 = 0, lo = 1, hi = 0;
    m = 1000000;
    for (int i = 0; i < m; i++) {
        double u = rng_uniform(&r);
        sum += u;
        sum2 += u * u;
        lo = fmin(lo, u);
        hi = fmax(hi, u);
    }
    CHECK(lo >= 0 && hi < 1, "uniform in [0, 1)");
    CHECK_NEAR(sum / m, 0.5, 0.002, "uniform mean");
    CHECK_NEAR(sum2 / m - (sum / m) * (sum / m), 1.0 / 12, 0.001, "uniform variance");

    sum = sum2 = 0;
    double sum4 = 0;
    for (int i = 0; i < m; i++) {
        double z = rng_normal(&r);
        sum += z;
        sum2 += z * z;
        sum4 += z * z * z * z;
    }
    CHECK_NEAR(sum / m, 0, 0.005, "normal mean");
    CHECK_NEAR(sum2 / m, 1, 0.005, "normal variance");
    CHECK_NEAR(sum4 / m, 3, 0.05, "normal fourth moment");

    const double lambdas[] = {0.01, 0.5, 3, 12, 29.9, 30, 45.5, 200, 1e4, 1e7};
    for (size_t t = 0; t < sizeof lambdas / sizeof *lambdas; t++) {
        double lam = lambdas[t];
        int draws = lam < 100 ? 400000 : 200000;
        double s = 0, s2 = 0;
        for (int i = 0; i < draws; i++) {
            double k = (double)rng_poisson(&r, lam);
            s += k;
            s2 += k * k;
        }
        double mean = s / draws, var = s2 / draws - mean * mean;
        /* 5 standard errors: mean has variance lam/draws, the sample variance
         * about (2 lam^2 + lam)/draws. */
        double se_mean = sqrt(lam / draws), se_var = sqrt((2 * lam * lam + lam) / draws);
        CHECK(fabs(mean - lam) < 5 * se_mean, "poisson(%g) mean %.6g", lam, mean);
        CHECK(fabs(var - lam) < 5 * se_var, "poisson(%g) variance %.6g", lam, var);
    }
    CHECK(rng_poisson(&r, 0) == 0 && rng_poisson(&r, -1) == 0 && rng_poisson(&r, NAN) == 0,
          "poisson with lambda <= 0 or NaN is 0");
}

/* ---- determinism across thread counts ----------------------------------- */

static void test_threads(ss_rng *rng)
{
    const int R = 5;
    size_t n = 150001;
    float *rep = random_floats(rng, (size_t)R * n, -50, 50);
    float *out[3], *blur[3], *aff[3];
    size_t nf[3];
    float mn[3], mx[3];
    const int64_t nz = 9, ny = 70, nx = 61;
    size_t nv = (size_t)(nz * ny * nx);
    float *vol = random_floats(rng, nv, 0, 1);
    for (int t = 0; t < 3; t++) {
        set_threads(t + 1);
        out[t] = malloc(2 * n * sizeof(float));
        K->fuse_mean_f32(rep, R, n, out[t]);
        K->fuse_median_f32(rep, R, n, out[t] + n);
        blur[t] = malloc(nv * sizeof(float));
        memcpy(blur[t], vol, nv * sizeof(float));
        K->gauss_blur3d_f32(blur[t], nz, ny, nx, 1.5, 2.0, 3.0);
        aff[t] = malloc(n * sizeof(float));
        memcpy(aff[t], rep, n * sizeof(float));
        K->affine_f32(aff[t], n, -3, 0.01f, 1);
        nf[t] = K->count_nonfinite_f32(rep, n);
        K->minmax_f32(rep, (size_t)R * n, &mn[t], &mx[t]);
    }
    set_threads(2);
    int ok = 1;
    for (int t = 1; t < 3; t++) {
        ok &= same_bits(out[0], out[t], 2 * n) && same_bits(blur[0], blur[t], nv) &&
              same_bits(aff[0], aff[t], n) && nf[0] == nf[t] && mn[0] == mn[t] && mx[0] == mx[t];
    }
    CHECK(ok, "1, 2 and 3 threads give identical results for every kernel");
    for (int t = 0; t < 3; t++) {
        free(out[t]);
        free(blur[t]);
        free(aff[t]);
    }
    free(rep);
    free(vol);
}

int main(void)
{
    K = kernels_cpu();
    ss_rng rng;
    rng_seed(&rng, 20240601);
    test_dispatch();
    test_fuse(&rng);
    test_affine(&rng);
    test_stats(&rng);
    test_blur(&rng);
    test_percentile(&rng);
    test_rng();
    test_threads(&rng);
    return tap_done();
}
