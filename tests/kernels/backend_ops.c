/* Every kernel table entry on every backend, against the CPU reference.
 *
 *   backend_ops [compare|grad|perf] [-o ENTRY] [-b BACKEND]
 *
 * compare (the default): each case runs its entries on random inputs of
 * several shapes, once on the reference (the CPU table on one thread) and
 * once on each backend under test, and compares within the entry's
 * tolerance. The backends: "cpu" on two threads (every CPU kernel promises
 * a result that does not depend on the thread count, or says how it may
 * differ), and "cuda" where kernels_cuda() gives a table; a backend that is
 * not built is a skip, never a pass. A table entry that no case covers is a
 * failure, so a new kernel cannot arrive untested.
 * grad: central finite differences of the differentiable entry
 * (siren_loss_grad) against its gradient, for each loss, on each backend.
 * perf: times each entry on each backend (median of repeats) and prints a
 * table; always passes, it measures.
 *
 * Output is TAP. -o keeps the cases covering ENTRY, -b the named backend. */
#include "host.h"
#include "kernels.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    const char *name;
    const kernels *k;
    int threads;
} backend;

static void use_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static ss_rng rng;

static float *rnd(size_t n, float lo, float hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) abort();
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)rng_uniform(&rng);
    return x;
}

static float *dup(const float *x, size_t n)
{
    float *y = malloc((n ? n : 1) * sizeof *y);
    if (!y) abort();
    memcpy(y, x, n * sizeof *y);
    return y;
}

/* Largest |a - b| / max(1, |a|) over n values; NaN equal to NaN, a NaN
 * against a number is infinitely wrong. */
static double rel_err_f(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            if (isnan(a[i]) != isnan(b[i])) return INFINITY;
            continue;
        }
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)a[i]));
        if (d > worst) worst = d;
    }
    return worst;
}

static double rel_err_d(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) == isnan(b) ? 0 : INFINITY;
    if (a == b) return 0;
    return fabs(a - b) / fmax(1.0, fabs(a));
}

/* One comparison: reports a TAP point. */
static void report(const char *entry, const backend *b, const char *shape, double err, double tol)
{
    CHECK(err <= tol, "%s on %s, %s: error %.3g within %.3g", entry, b->name, shape, err, tol);
}

/* ---- cases: each runs its entries on ref and on b, and reports ----------- */

typedef void (*case_fn)(const backend *ref, const backend *b);

static void case_fuse(const backend *ref, const backend *b)
{
    static const int Rs[] = {1, 2, 3, 4, 5, 8};
    static const size_t ns[] = {1, 1000, 100003};
    for (int ri = 0; ri < 6; ri++)
        for (int ni = 0; ni < 3; ni++) {
            int R = Rs[ri];
            size_t n = ns[ni];
            float *rep = rnd((size_t)R * n, -5, 5), *o1 = rnd(n, 0, 0), *o2 = rnd(n, 0, 0);
            char shape[64];
            snprintf(shape, sizeof shape, "R %d, n %zu", R, n);
            use_threads(ref->threads);
            ref->k->fuse_mean_f32(rep, R, n, o1);
            use_threads(b->threads);
            b->k->fuse_mean_f32(rep, R, n, o2);
            report("fuse_mean_f32", b, shape, rel_err_f(o1, o2, n), 1e-6);
            use_threads(ref->threads);
            ref->k->fuse_median_f32(rep, R, n, o1);
            use_threads(b->threads);
            b->k->fuse_median_f32(rep, R, n, o2);
            report("fuse_median_f32", b, shape, rel_err_f(o1, o2, n), 0);
            free(rep), free(o1), free(o2);
        }
}

static void case_pointwise(const backend *ref, const backend *b)
{
    static const size_t ns[] = {1, 7, 32768, 100003};
    for (int ni = 0; ni < 4; ni++) {
        size_t n = ns[ni];
        float *x = rnd(n, -1e3f, 1e3f);
        if (n > 7) x[3] = NAN, x[5] = INFINITY, x[6] = -0.0f;
        char shape[32];
        snprintf(shape, sizeof shape, "n %zu", n);
        for (int clip = 0; clip < 2; clip++) {
            float *a = dup(x, n), *c = dup(x, n);
            use_threads(ref->threads);
            ref->k->affine_f32(a, n, -250.0, 1.0 / 700.0, clip);
            use_threads(b->threads);
            b->k->affine_f32(c, n, -250.0, 1.0 / 700.0, clip);
            report(clip ? "affine_f32 (clip)" : "affine_f32", b, shape, rel_err_f(a, c, n), 0);
            free(a), free(c);
        }
        use_threads(ref->threads);
        size_t c1 = ref->k->count_nonfinite_f32(x, n);
        float mn1, mx1, mn2, mx2;
        ref->k->minmax_f32(x, n, &mn1, &mx1);
        use_threads(b->threads);
        size_t c2 = b->k->count_nonfinite_f32(x, n);
        b->k->minmax_f32(x, n, &mn2, &mx2);
        report("count_nonfinite_f32", b, shape, c1 == c2 ? 0 : INFINITY, 0);
        report("minmax_f32", b, shape, fmax(rel_err_f(&mn1, &mn2, 1), rel_err_f(&mx1, &mx2, 1)), 0);
        float *y = rnd(n, -1e3f, 1e3f);
        if (n > 7) x[3] = 1, x[5] = 2; /* sq_diff_sum takes finite data */
        use_threads(ref->threads);
        double s1 = ref->k->sq_diff_sum_f32(x, y, n);
        use_threads(b->threads);
        double s2 = b->k->sq_diff_sum_f32(x, y, n);
        report("sq_diff_sum_f32", b, shape, rel_err_d(s1, s2), 1e-12);
        free(x), free(y);
    }
    /* weighted sums of 1..9 arrays */
    for (int nw = 1; nw <= 9; nw += 4) {
        size_t len = 50001;
        float *x[9];
        double w[9];
        for (int j = 0; j < nw; j++) x[j] = rnd(len, -3, 3), w[j] = rng_uniform(&rng) - 0.3;
        float *o1 = rnd(len, 0, 0), *o2 = rnd(len, 0, 0);
        use_threads(ref->threads);
        ref->k->weighted_sum_f32((const float *const *)x, w, nw, len, o1);
        use_threads(b->threads);
        b->k->weighted_sum_f32((const float *const *)x, w, nw, len, o2);
        char shape[32];
        snprintf(shape, sizeof shape, "%d arrays", nw);
        report("weighted_sum_f32", b, shape, rel_err_f(o1, o2, len), 1e-7);
        for (int j = 0; j < nw; j++) free(x[j]);
        free(o1), free(o2);
    }
}

static void case_blur(const backend *ref, const backend *b)
{
    static const int64_t shapes[][3] = {{1, 7, 9}, {5, 33, 17}, {9, 64, 48}};
    static const double sig[][3] = {{0, 1, 1}, {1.5, 2, 3}, {4, 0.5, 0}};
    for (int si = 0; si < 3; si++)
        for (int gi = 0; gi < 3; gi++) {
            const int64_t *s = shapes[si];
            size_t n = (size_t)(s[0] * s[1] * s[2]);
            float *v = rnd(n, 0, 1), *a = dup(v, n), *c = dup(v, n);
            use_threads(ref->threads);
            ref->k->gauss_blur3d_f32(a, s[0], s[1], s[2], sig[gi][0], sig[gi][1], sig[gi][2]);
            use_threads(b->threads);
            b->k->gauss_blur3d_f32(c, s[0], s[1], s[2], sig[gi][0], sig[gi][1], sig[gi][2]);
            char shape[96];
            snprintf(shape, sizeof shape, "%lldx%lldx%lld sigma %g,%g,%g", (long long)s[0], (long long)s[1],
                     (long long)s[2], sig[gi][0], sig[gi][1], sig[gi][2]);
            report("gauss_blur3d_f32", b, shape, rel_err_f(a, c, n), 1e-6);
            free(v), free(a), free(c);
        }
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

static int64_t reflect_at(int64_t i, int64_t n)
{
    int64_t p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* The median filter against a plain sort of each window (scipy's 'reflect'),
 * and the backend against the reference. Ties are likely: values on a grid. */
static void case_median(const backend *ref, const backend *b)
{
    static const int64_t shapes[][3] = {{1, 7, 5}, {3, 33, 40}, {6, 64, 48}, {2, 2, 3}};
    static const int sizes[][3] = {{1, 3, 3}, {3, 3, 3}, {1, 5, 5}, {5, 3, 1}, {3, 1, 1}, {7, 7, 7}};
    for (int si = 0; si < 4; si++)
        for (int ki = 0; ki < 6; ki++) {
            const int64_t *s = shapes[si];
            const int *k = sizes[ki];
            size_t plane = (size_t)(s[1] * s[2]), n = (size_t)s[0] * plane;
            float *v = rnd(n, 0, 1), *o1 = malloc(n * sizeof *o1), *o2 = malloc(n * sizeof *o2),
                  *nv = malloc(n * sizeof *nv), win[343];
            if (!o1 || !o2 || !nv) abort();
            for (size_t i = 0; i < n; i++) v[i] = floorf(v[i] * 16) / 16;
            const float *taps[7];
            for (int64_t z = 0; z < s[0]; z++) {
                for (int p = 0; p < k[0]; p++) taps[p] = v + (size_t)reflect_at(z + p - k[0] / 2, s[0]) * plane;
                use_threads(ref->threads);
                ref->k->median_filter_plane_f32(taps, k[0], s[1], s[2], k[1], k[2], o1 + (size_t)z * plane);
                use_threads(b->threads);
                b->k->median_filter_plane_f32(taps, k[0], s[1], s[2], k[1], k[2], o2 + (size_t)z * plane);
                for (int64_t y = 0; y < s[1]; y++)
                    for (int64_t x = 0; x < s[2]; x++) {
                        int m = 0;
                        for (int p = 0; p < k[0]; p++)
                            for (int j = 0; j < k[1]; j++)
                                for (int i = 0; i < k[2]; i++)
                                    win[m++] = taps[p][reflect_at(y + j - k[1] / 2, s[1]) * s[2] +
                                                       reflect_at(x + i - k[2] / 2, s[2])];
                        qsort(win, (size_t)m, sizeof *win, cmp_float);
                        nv[(size_t)z * plane + (size_t)(y * s[2] + x)] = win[m / 2];
                    }
            }
            char shape[96];
            snprintf(shape, sizeof shape, "%lldx%lldx%lld size %d,%d,%d", (long long)s[0], (long long)s[1],
                     (long long)s[2], k[0], k[1], k[2]);
            report("median_filter_plane_f32", b, shape, rel_err_f(o1, o2, n), 0);
            CHECK(!memcmp(o1, nv, n * sizeof *nv), "median_filter_plane_f32 on %s, %s: equal to a sort of each window",
                  ref->name, shape);
            free(v), free(o1), free(o2), free(nv);
        }
}

static void case_ssim(const backend *ref, const backend *b)
{
    static const int64_t shapes[][2] = {{11, 11}, {40, 33}, {128, 96}};
    for (int g = 0; g < 2; g++)
        for (int si = 0; si < 3; si++) {
            int64_t ny = shapes[si][0], nx = shapes[si][1];
            ssim_spec s2, s3;
            ssim_spec_init(&s2, g, 2, 1.0, 0.01, 0.03);
            ssim_spec_init(&s3, g, 3, 1.0, 0.01, 0.03);
            if (ny < s2.win || nx < s2.win) continue;
            size_t plane = (size_t)(ny * nx);
            float *pa[11], *pb[11];
            for (int i = 0; i < s3.win; i++) pa[i] = rnd(plane, 0, 1), pb[i] = rnd(plane, 0, 1);
            double *work = malloc(ssim_work_len(s2.win, ny, nx) * sizeof *work), r[2], o[2];
            char shape[64];
            snprintf(shape, sizeof shape, "%lldx%lld %s window", (long long)ny, (long long)nx,
                     g ? "gaussian" : "uniform");
            use_threads(ref->threads);
            ref->k->ssim2d_f32(&s2, pa[0], pb[0], ny, nx, work, r);
            use_threads(b->threads);
            b->k->ssim2d_f32(&s2, pa[0], pb[0], ny, nx, work, o);
            report("ssim2d_f32", b, shape, fmax(rel_err_d(r[0], o[0]), rel_err_d(r[1], o[1])), 1e-12);
            use_threads(ref->threads);
            ref->k->ssim3d_plane_f32(&s3, (const float *const *)pa, (const float *const *)pb, ny, nx, work, r);
            use_threads(b->threads);
            b->k->ssim3d_plane_f32(&s3, (const float *const *)pa, (const float *const *)pb, ny, nx, work, o);
            report("ssim3d_plane_f32", b, shape, fmax(rel_err_d(r[0], o[0]), rel_err_d(r[1], o[1])), 1e-12);
            for (int i = 0; i < s3.win; i++) free(pa[i]), free(pb[i]);
            free(work);
        }
}

/* A smooth random volume and a copy moved by a known shift. */
static void case_register(const backend *ref, const backend *b)
{
    static const int64_t shapes[][3] = {{1, 64, 48}, {8, 32, 32}};
    for (int si = 0; si < 2; si++)
        for (int phase = 0; phase < 2; phase++) {
            const int64_t *s = shapes[si];
            size_t n = (size_t)(s[0] * s[1] * s[2]);
            float *vol = rnd(n, 0, 1);
            ref->k->gauss_blur3d_f32(vol, s[0], s[1], s[2], s[0] > 1 ? 1 : 0, 2, 2);
            double shift[3] = {s[0] > 1 ? 1.25 : 0, -2.5, 3.75};
            char shape[96];
            snprintf(shape, sizeof shape, "%lldx%lldx%lld, %s", (long long)s[0], (long long)s[1], (long long)s[2],
                     phase ? "phase correlation" : "cross-correlation");
            double found[2][3], peak[2];
            float *moved[2];
            for (int w = 0; w < 2; w++) {
                const backend *x = w ? b : ref;
                use_threads(x->threads);
                moved[w] = dup(vol, n);
                int rc = x->k->shift_f32(moved[w], s[0], s[1], s[2], shift, SHIFT_CUBIC, EDGE_REFLECT);
                xcorr_opts o = {.hann = 1, .phase = phase, .upsample = 20, .max_shift = 0};
                xcorr_state *st = rc == 0 ? x->k->xcorr_new(s[0], s[1], s[2], &o) : NULL;
                if (!st) {
                    CHECK(0, "%s: shift_f32 and xcorr_new run (%s)", x->name, shape);
                    found[w][0] = found[w][1] = found[w][2] = peak[w] = NAN;
                    continue;
                }
                x->k->xcorr_reference_f32(st, vol);
                x->k->xcorr_find_f32(st, moved[w], found[w], &peak[w]);
                x->k->xcorr_free(st);
            }
            report("shift_f32", b, shape, rel_err_f(moved[0], moved[1], n), 1e-5);
            double e = 0;
            for (int d = 0; d < 3; d++) e = fmax(e, fabs(found[0][d] - found[1][d]));
            report("xcorr_find_f32 (shift)", b, shape, e, 1e-9);
            report("xcorr_find_f32 (peak)", b, shape, rel_err_d(peak[0], peak[1]), 1e-6);
            free(vol), free(moved[0]), free(moved[1]);
        }
}

static void case_spectrum(const backend *ref, const backend *b)
{
    static const int64_t shapes[][2] = {{1, 1}, {8, 6}, {33, 17}, {128, 128}};
    for (int si = 0; si < 4; si++) {
        int64_t ny = shapes[si][0], nx = shapes[si][1];
        size_t plane = (size_t)(ny * nx);
        float *a = rnd(plane, 0, 1), *c = rnd(plane, 0, 1);
        double mse[2] = {0, 0};
        double *spec[2][2] = {{NULL, NULL}, {NULL, NULL}};
        size_t len[2] = {0, 0};
        for (int w = 0; w < 2; w++) {
            const backend *x = w ? b : ref;
            use_threads(x->threads);
            spectrum_state *s = x->k->spectrum_new(ny, nx);
            if (!s) {
                CHECK(0, "%s: spectrum_new(%lld, %lld)", x->name, (long long)ny, (long long)nx);
                continue;
            }
            len[w] = x->k->spectrum_len(s);
            spec[w][0] = malloc(len[w] * sizeof(double));
            spec[w][1] = malloc(len[w] * sizeof(double));
            x->k->spectrum_logmag(s, a, spec[w][0]);
            x->k->spectrum_logmag(s, c, spec[w][1]);
            mse[w] = x->k->spectrum_mse(s, spec[w][0], spec[w][1]);
            x->k->spectrum_free(s);
        }
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)ny, (long long)nx);
        double e = len[0] == len[1] ? 0 : INFINITY;
        for (size_t i = 0; i < len[0] && len[0] == len[1]; i++) e = fmax(e, rel_err_d(spec[0][0][i], spec[1][0][i]));
        report("spectrum_logmag", b, shape, e, 1e-6);
        report("spectrum_len", b, shape, len[0] == len[1] ? 0 : INFINITY, 0);
        report("spectrum_mse", b, shape, rel_err_d(mse[0], mse[1]), 1e-6);
        for (int w = 0; w < 2; w++) free(spec[w][0]), free(spec[w][1]);
        free(a), free(c);
    }
}

/* Radial power and masks: backend against reference; Parseval (the profile
 * sums to the plane's energy) and a mask beyond every radius (the plane
 * back) on each. */
static void case_fmask(const backend *ref, const backend *b)
{
    static const int64_t shapes[][2] = {{1, 1}, {8, 6}, {33, 17}, {128, 96}};
    enum { NB = 40 };
    for (int si = 0; si < 4; si++) {
        int64_t ny = shapes[si][0], nx = shapes[si][1];
        size_t plane = (size_t)(ny * nx);
        float *a = rnd(plane, -1, 1), *o[2][2];
        double pw[2][NB], ct[2][NB], cg[2] = {0, 0};
        for (int w = 0; w < 2; w++) {
            const backend *x = w ? b : ref;
            use_threads(x->threads);
            o[w][0] = calloc(plane, sizeof(float)), o[w][1] = calloc(plane, sizeof(float));
            if (!o[w][0] || !o[w][1]) abort();
            memset(pw[w], 0, sizeof pw[w]), memset(ct[w], 0, sizeof ct[w]);
            fmask_state *st = x->k->fmask_new(ny, nx);
            if (!st) {
                CHECK(0, "%s: fmask_new(%lld, %lld)", x->name, (long long)ny, (long long)nx);
                continue;
            }
            x->k->fmask_radial_power(st, a, NB, pw[w], ct[w]);
            x->k->fmask_apply(st, a, 0.4, 0.1, o[w][0]);
            x->k->fmask_apply(st, a, 2.0, 0.0, o[w][1]);
            cg[w] = x->k->fmask_cutoff_grad(st, a, o[w][1], 0.6, 0.15);
            x->k->fmask_free(st);
            double energy = 0, total = 0, n = 0;
            for (size_t i = 0; i < plane; i++) energy += (double)a[i] * a[i];
            for (int k = 0; k < NB; k++) total += pw[w][k], n += ct[w][k];
            CHECK(fabs(total - energy) <= 1e-5 * energy && n == (double)plane,
                  "fmask_radial_power on %s, %lldx%lld: the profile holds the plane's energy (%.9g of %.9g) over "
                  "all %zu frequencies", x->name, (long long)ny, (long long)nx, total, energy, plane);
            CHECK(rel_err_f(o[w][1], a, plane) <= 1e-5, "fmask_apply on %s, %lldx%lld: a mask beyond every radius "
                  "gives the plane back", x->name, (long long)ny, (long long)nx);
        }
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)ny, (long long)nx);
        double e = 0;
        for (int k = 0; k < NB; k++) e = fmax(e, rel_err_d(pw[0][k], pw[1][k])), e = fmax(e, ct[0][k] != ct[1][k]);
        report("fmask_radial_power", b, shape, e, 1e-9);
        report("fmask_apply", b, shape, rel_err_f(o[0][0], o[1][0], plane), 1e-6);
        report("fmask_cutoff_grad", b, shape, rel_err_d(cg[0], cg[1]), 1e-9);
        report("fmask_new", b, shape, 0, 0);
        report("fmask_free", b, shape, 0, 0);
        for (int w = 0; w < 2; w++) free(o[w][0]), free(o[w][1]);
        free(a);
    }
}

/* Richardson-Lucy steps, plain and with TV: backend against reference over
 * a few iterations, and on each a delta PSF that leaves the image a fixed
 * point (u = data stays, change 0). */
static void case_rl(const backend *ref, const backend *b)
{
    static const int64_t shapes[][6] = {{1, 9, 8, 1, 3, 3}, {7, 12, 10, 3, 5, 3}, {20, 33, 18, 7, 9, 5},
                                        {64, 64, 40, 9, 7, 7}};
    for (int si = 0; si < 4; si++) {
        const int64_t *sh = shapes[si];
        size_t n = (size_t)(sh[0] * sh[1] * sh[2]), np = (size_t)(sh[3] * sh[4] * sh[5]);
        float *data = rnd(n, 0.5f, 2), *psf = rnd(np, 0, 1), *u[2][2];
        double s = 0, sums[2][2][2];
        for (size_t i = 0; i < np; i++) s += psf[i];
        for (size_t i = 0; i < np; i++) psf[i] = (float)(psf[i] / s);
        const int64_t lo[3] = {0, 1, 1}, hi[3] = {sh[0], sh[1] - 1, sh[2] - 1};
        size_t bytes[2] = {0, 0};
        for (int w = 0; w < 2; w++) {
            const backend *x = w ? b : ref;
            use_threads(x->threads);
            for (int tv = 0; tv < 2; tv++) {
                u[w][tv] = rnd(n, 1, 1);
                rl_state *st = x->k->rl_new(sh[0], sh[1], sh[2], psf, sh[3], sh[4], sh[5]);
                if (!st) {
                    CHECK(0, "%s: rl_new(%lld, %lld, %lld)", x->name, (long long)sh[0], (long long)sh[1],
                          (long long)sh[2]);
                    continue;
                }
                for (int it = 0; it < 4; it++)
                    if (x->k->rl_step_f32(st, data, u[w][tv], tv ? 0.01 : 0, 1e-3, 1e-6f, lo, hi, sums[w][tv]))
                        abort();
                x->k->rl_free(st);
            }
            bytes[w] = x->k->rl_bytes(sh[0], sh[1], sh[2], 1);
            float delta = 1;
            rl_state *st = x->k->rl_new(sh[0], sh[1], sh[2], &delta, 1, 1, 1);
            float *v = dup(data, n);
            double fs[2] = {1, 1};
            if (st && !x->k->rl_step_f32(st, data, v, 0, 0, 1e-6f, lo, hi, fs))
                CHECK(rel_err_f(v, data, n) <= 1e-5 && fs[0] <= 1e-9 * fs[1] && fs[1] > 0,
                      "rl_step_f32 on %s, %lldx%lldx%lld: with a delta PSF the data are a fixed point", x->name,
                      (long long)sh[0], (long long)sh[1], (long long)sh[2]);
            else
                CHECK(0, "rl_new with a delta PSF on %s", x->name);
            x->k->rl_free(st);
            free(v);
        }
        char shape[48];
        snprintf(shape, sizeof shape, "%lldx%lldx%lld psf %lldx%lldx%lld", (long long)sh[0], (long long)sh[1],
                 (long long)sh[2], (long long)sh[3], (long long)sh[4], (long long)sh[5]);
        report("rl_step_f32", b, shape, rel_err_f(u[0][0], u[1][0], n), 1e-5);
        report("rl_step_f32 (tv)", b, shape, rel_err_f(u[0][1], u[1][1], n), 1e-5);
        report("rl_step_f32 (sums)", b, shape, fmax(rel_err_d(sums[0][0][0], sums[1][0][0]),
                                                    rel_err_d(sums[0][0][1], sums[1][0][1])), 1e-5);
        report("rl_bytes", b, shape, bytes[0] >= n * sizeof(float) && bytes[1] > 0 ? 0 : INFINITY, 0);
        report("rl_new", b, shape, 0, 0);
        report("rl_free", b, shape, 0, 0);
        for (int w = 0; w < 2; w++) free(u[w][0]), free(u[w][1]);
        free(data), free(psf);
    }
}

/* ---- network layers --------------------------------------------------------- */

typedef struct {
    conv_shape s;
    int oh, ow;
    size_t nx, ny, nw;
} conv_case;

static const conv_shape conv_shapes[] = {
    {2, 3, 9, 11, 4, 3, 1, 0, 0, 0, 0}, {1, 5, 16, 16, 6, 3, 2, 0, 0, 0, 0}, {2, 4, 7, 8, 3, 5, 1, 0, 0, 0, 0}, {1, 8, 12, 12, 8, 1, 1, 0, 0, 0, 0},
    {2, 3, 9, 10, 2, 1, 2, 0, 0, 0, 0}, {2, 6, 5, 6, 3, 2, 2, 1, 0, 0, 0},   {1, 4, 6, 5, 3, 3, 2, 1, 0, 0, 0},  {3, 7, 4, 4, 5, 3, 1, 1, 0, 0, 0},
    {3, 17, 40, 36, 33, 3, 1, 0, 0, 0, 0}, {2, 32, 20, 20, 16, 2, 2, 1, 0, 0, 0},
};
#define N_CONV ((int)(sizeof conv_shapes / sizeof conv_shapes[0]))

static void conv_case_of(conv_case *c, const conv_shape *s)
{
    c->s = *s;
    if (conv_out_size(s, &c->oh, &c->ow)) abort();
    c->nx = (size_t)s->n * s->cin * s->h * s->w;
    c->ny = (size_t)s->n * s->cout * c->oh * c->ow;
    c->nw = (size_t)s->cin * s->cout * s->k * s->k;
}

static void conv_shape_name(const conv_shape *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s %dx%dx%dx%d -> %d, k %d, stride %d", s->transposed ? "transposed" : "conv", s->n,
             s->cin, s->h, s->w, s->cout, s->k, s->stride);
}

/* fwd, bwd_data, bwd_weights of one backend; out[0..3] = y, dx, dw, db. */
static int conv_run(const backend *x, const conv_case *c, const float *in, const float *w, const float *bias,
                    const float *dy, float *out[4], const char **impl)
{
    use_threads(x->threads);
    conv_state *st = x->k->conv_new(&c->s);
    if (!st) return -1;
    if (impl) *impl = x->k->conv_impl(st);
    x->k->conv_fwd(st, in, w, bias, out[0]);
    x->k->conv_bwd_data(st, dy, w, out[1]);
    x->k->conv_bwd_weights(st, in, dy, out[2], out[3]);
    x->k->conv_free(st);
    return 0;
}

/* One shape on ref and on b: fwd and bwd_data promise the same result on any
 * thread count, bwd_weights the same within rounding. */
static void conv_compare(const backend *ref, const backend *b, const conv_shape *s)
{
    conv_case c;
    conv_case_of(&c, s);
    char shape[112];
    conv_shape_name(&c.s, shape, sizeof shape);
    if (s->bf16) strcat(shape, ", bf16");
    float *in = rnd(c.nx, -1, 1), *w = rnd(c.nw, -0.5f, 0.5f), *bias = rnd((size_t)c.s.cout, -1, 1),
          *dy = rnd(c.ny, -1, 1);
    size_t len[4] = {c.ny, c.nx, c.nw, (size_t)c.s.cout};
    float *o[2][4];
    const char *impl = NULL;
    int ok = 1;
    for (int v = 0; v < 2; v++) {
        for (int q = 0; q < 4; q++) o[v][q] = rnd(len[q], 7, 7);
        ok &= conv_run(v ? b : ref, &c, in, w, bias, dy, o[v], &impl) == 0;
    }
    CHECK(ok, "conv_new on %s, %s (%s)", b->name, shape, impl ? impl : "-");
    if (impl) {
        strcat(shape, ", ");
        strcat(shape, impl);
    }
    report("conv_fwd", b, shape, rel_err_f(o[0][0], o[1][0], c.ny), 0);
    report("conv_bwd_data", b, shape, rel_err_f(o[0][1], o[1][1], c.nx), 0);
    /* oneDNN's weight gradient sums a thread's whole share of the pixels in
     * float32 and the gemm version 1 MiB blocks of them, so oneDNN differs
     * more across thread counts (5e-5 seen) */
    double tol_w = impl && !strncmp(impl, "dnnl", 4) ? 2e-4 : 1e-5;
    report("conv_bwd_weights", b, shape, fmax(rel_err_f(o[0][2], o[1][2], c.nw), rel_err_f(o[0][3], o[1][3],
           (size_t)c.s.cout)), tol_w);
    if (!s->bf16) {
        report("conv_impl", b, shape, 0, 0);
        report("conv_free", b, shape, 0, 0);
    }
    for (int v = 0; v < 2; v++)
        for (int q = 0; q < 4; q++) free(o[v][q]);
    free(in), free(w), free(bias), free(dy);
}

/* Each convolution version the CPU has (kernels/cpu/conv.c), forced in turn;
 * the rule's own choice runs elsewhere (grad mode, the network tests). */
static const char *const conv_versions[] = {"gemm", "dnnl"};

static void case_conv(const backend *ref, const backend *b)
{
    static const conv_shape b16[] = {{2, 17, 20, 18, 33, 3, 1, 0, 0, 0, 1}, {2, 16, 9, 8, 8, 2, 2, 1, 0, 0, 1}};
    for (int v = 0; v < 2; v++) {
        setenv("SIRENSTACK_CONV_IMPL", conv_versions[v], 1);
        for (int ci = 0; ci < N_CONV; ci++) conv_compare(ref, b, &conv_shapes[ci]);
        /* bf16 products (where the CPU has them) */
        for (int ci = 0; ci < 2; ci++) conv_compare(ref, b, &b16[ci]);
    }
    unsetenv("SIRENSTACK_CONV_IMPL");
    /* shapes the layers do not take */
    static const conv_shape bad[] = {{1, 1, 4, 4, 1, 2, 1, 0, 0, 0, 0}, {1, 1, 4, 4, 1, 3, 3, 0, 0, 0, 0}, {1, 1, 4, 4, 1, 4, 2, 1, 0, 0, 0},
                                     {0, 1, 4, 4, 1, 3, 1, 0, 0, 0, 0}, {1, 1, 4, 4, 1, 17, 1, 0, 0, 0, 0}};
    for (int i = 0; i < 5; i++) {
        conv_state *st = b->k->conv_new(&bad[i]);
        char shape[96];
        conv_shape_name(&bad[i], shape, sizeof shape);
        CHECK(!st, "conv_new on %s refuses %s", b->name, shape);
        b->k->conv_free(st);
    }
}

static void case_layers(const backend *ref, const backend *b)
{
    static const int hw[][3] = {{1, 2, 2}, {3, 7, 9}, {4, 16, 16}, {64, 33, 32}};
    for (int si = 0; si < 4; si++) {
        int64_t nc = hw[si][0];
        int h = hw[si][1], w = hw[si][2];
        size_t n = (size_t)nc * h * w, np = (size_t)nc * (h / 2) * (w / 2), nu = 4 * n;
        char shape[48];
        snprintf(shape, sizeof shape, "%lld x %dx%d", (long long)nc, h, w);
        float *x = rnd(n, -1, 1), *dp = rnd(np, -1, 1), *du = rnd(nu, -1, 1);
        if (n > 3) x[3] = x[1]; /* a tie */
        float *y[2], *dx[2], *up[2], *dup_[2], *r[2], *g[2];
        int32_t *arg[2];
        for (int v = 0; v < 2; v++) {
            const backend *k = v ? b : ref;
            use_threads(k->threads);
            y[v] = rnd(np, 0, 0), dx[v] = rnd(n, 9, 9), up[v] = rnd(2 * nu, 0, 0), dup_[v] = rnd(2 * n, 0, 0);
            arg[v] = malloc((np ? np : 1) * sizeof(int32_t));
            k->k->maxpool2_f32(x, nc, h, w, y[v], arg[v]);
            k->k->maxpool2_bwd_f32(dp, arg[v], nc, h, w, dx[v]);
            k->k->upsample2_f32(x, nc, h, w, UPSAMPLE_NEAREST, up[v]);
            k->k->upsample2_f32(x, nc, h, w, UPSAMPLE_BILINEAR, up[v] + nu);
            k->k->upsample2_bwd_f32(du, nc, h, w, UPSAMPLE_NEAREST, dup_[v]);
            k->k->upsample2_bwd_f32(du, nc, h, w, UPSAMPLE_BILINEAR, dup_[v] + n);
            r[v] = dup(x, n), g[v] = dup(x, n);
            k->k->leaky_relu_f32(r[v], n, 0.1f);
            k->k->leaky_relu_bwd_f32(r[v], g[v], n, 0.1f);
        }
        int same_arg = !memcmp(arg[0], arg[1], np * sizeof(int32_t));
        report("maxpool2_f32", b, shape, same_arg ? rel_err_f(y[0], y[1], np) : INFINITY, 0);
        report("maxpool2_bwd_f32", b, shape, rel_err_f(dx[0], dx[1], n), 0);
        report("upsample2_f32", b, shape, rel_err_f(up[0], up[1], 2 * nu), 0);
        report("upsample2_bwd_f32", b, shape, rel_err_f(dup_[0], dup_[1], 2 * n), 1e-6);
        report("leaky_relu_f32", b, shape, rel_err_f(r[0], r[1], n), 0);
        report("leaky_relu_bwd_f32", b, shape, rel_err_f(g[0], g[1], n), 0);
        for (int v = 0; v < 2; v++) free(y[v]), free(dx[v]), free(up[v]), free(dup_[v]), free(r[v]), free(g[v]),
                                     free(arg[v]);
        free(x), free(dp), free(du);
    }
    static const size_t ns[] = {1, 1000, 300007};
    for (int ni = 0; ni < 3; ni++) {
        size_t n = ns[ni];
        char shape[32];
        snprintf(shape, sizeof shape, "n %zu", n);
        float *a = rnd(n, -2, 2), *t = rnd(n, -2, 2), *gr = rnd(n, -1, 1);
        uint8_t *keep = malloc(n);
        for (size_t i = 0; i < n; i++) keep[i] = rng_uniform(&rng) < 0.8;
        float *cc[2], *m[2], *d[2], *p[2], *vel[2];
        double sum[2];
        for (int v = 0; v < 2; v++) {
            const backend *k = v ? b : ref;
            use_threads(k->threads);
            /* n x 3 x 1 tensor: channel 2 <- a, channel 0 += t */
            cc[v] = rnd(3 * n, 5, 5);
            k->k->chan_copy_f32(a, (int64_t)n, 1, 0, 1, 1, cc[v], 3, 2, 0);
            k->k->chan_copy_f32(t, (int64_t)n, 1, 0, 1, 1, cc[v], 3, 0, 1);
            m[v] = dup(a, n);
            k->k->mask_scale_f32(m[v], keep, n, 1.25f);
            d[v] = rnd(n, 0, 0);
            sum[v] = k->k->mse_grad_f32(a, t, n, 2.0f / (float)n, d[v]);
            p[v] = dup(a, n), vel[v] = dup(t, n);
            k->k->sgd_step(p[v], gr, vel[v], n, 0.01f, 0.9f, 1e-4f);
            k->k->sgd_step(p[v], t, vel[v], n, 0.01f, 0.9f, 0);
        }
        report("chan_copy_f32", b, shape, rel_err_f(cc[0], cc[1], 3 * n), 0);
        report("mask_scale_f32", b, shape, rel_err_f(m[0], m[1], n), 0);
        report("mse_grad_f32", b, shape, fmax(rel_err_d(sum[0], sum[1]) * 1e3, rel_err_f(d[0], d[1], n)), 1e-9);
        report("sgd_step", b, shape, fmax(rel_err_f(p[0], p[1], n), rel_err_f(vel[0], vel[1], n)), 0);
        /* the copies themselves: the added channel holds t + 5, the copied a */
        double e = 0;
        for (size_t i = 0; i < n; i++)
            e = fmax(e, fmax(fabs(cc[1][3 * i + 2] - a[i]), fabs(cc[1][3 * i] - (t[i] + 5.0f))) +
                            (cc[1][3 * i + 1] != 5.0f));
        CHECK(e == 0, "chan_copy_f32 on %s, %s: copies and adds the named channels only", b->name, shape);
        for (int v = 0; v < 2; v++) free(cc[v]), free(m[v]), free(d[v]), free(p[v]), free(vel[v]);
        free(a), free(t), free(gr), free(keep);
    }
}

/* A small network on a small grid, for the SIREN entries. */
typedef struct {
    siren_arch a;
    float *params, zc[4];
    siren_grid g;
    int64_t *index;
    float *target;
    int64_t n;
    int R;
} siren_case;

static void siren_case_make(siren_case *s, int width, int hidden, int R, uint64_t seed)
{
    s->a = (siren_arch){.in_dim = 3, .width = width, .hidden = hidden, .out_dim = 1, .omega_first = 30,
                        .omega_hidden = 30};
    s->params = malloc(siren_n_params(&s->a) * sizeof(float));
    siren_init(&s->a, s->params, seed);
    for (int i = 0; i < 4; i++) s->zc[i] = -1 + (float)i * 2 / 3;
    s->g = (siren_grid){.nz = 4, .ny = 13, .nx = 11, .z = s->zc, .y0 = -1, .dy = 2.0f / 12, .x0 = -1, .dx = 0.2f};
    s->n = 4 * 13 * 11 - 7;
    s->R = R;
    s->index = malloc((size_t)s->n * sizeof *s->index);
    for (int64_t i = 0; i < s->n; i++) s->index[i] = (i * 37) % (4 * 13 * 11);
    s->target = rnd((size_t)(s->n * R), -0.5f, 1.5f);
}

static void siren_case_free(siren_case *s)
{
    free(s->params), free(s->index), free(s->target);
}

static double run_loss_grad(const backend *x, const siren_case *s, siren_loss loss, float *grad, const char **path)
{
    use_threads(x->threads);
    siren_work *w = x->k->siren_work_new(&s->a, x->threads);
    if (!w) return NAN;
    if (path) *path = x->k->siren_work_kernel(w);
    siren_batch bt = {.grid = &s->g, .index = s->index, .n = s->n, .target = s->target, .R = s->R, .loss = loss,
                      .scale = 0.1f};
    double L = x->k->siren_loss_grad(&s->a, s->params, &bt, grad, w);
    x->k->siren_work_free(w);
    return L;
}

static void case_siren(const backend *ref, const backend *b)
{
    static const int widths[] = {16, 32, 64};
    for (int wi = 0; wi < 3; wi++)
        for (int loss = SIREN_LOSS_MSE; loss <= SIREN_LOSS_CAUCHY; loss++) {
            siren_case s;
            siren_case_make(&s, widths[wi], 2, 1 + loss % 3, 7 + (uint64_t)wi);
            size_t np = siren_n_params(&s.a);
            float *g1 = rnd(np, 0, 0), *g2 = rnd(np, 0, 0);
            const char *p1 = "?", *p2 = "?";
            double l1 = run_loss_grad(ref, &s, (siren_loss)loss, g1, &p1);
            double l2 = run_loss_grad(b, &s, (siren_loss)loss, g2, &p2);
            char shape[96];
            snprintf(shape, sizeof shape, "width %d, loss %d, R %d (%s vs %s)", widths[wi], loss, s.R, p1, p2);
            report("siren_loss_grad (loss)", b, shape, rel_err_d(l1, l2), 1e-5);
            /* gradients: relative to the largest component */
            double gmax = 0, e = 0;
            for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(g1[i]));
            for (size_t i = 0; i < np; i++) e = fmax(e, fabs((double)g1[i] - g2[i]) / fmax(gmax, 1e-30));
            report("siren_loss_grad (gradient)", b, shape, e, 1e-4);
            report("siren_work_new/free/kernel", b, shape, p1 && p2 && *p1 && *p2 ? 0 : INFINITY, 0);
            /* evaluation: listed voxels and a consecutive run */
            float *o1 = rnd((size_t)s.n, 0, 0), *o2 = rnd((size_t)s.n, 0, 0);
            for (int w = 0; w < 2; w++) {
                const backend *x = w ? b : ref;
                use_threads(x->threads);
                siren_work *wk = x->k->siren_work_new(&s.a, x->threads);
                x->k->siren_eval(&s.a, s.params, &s.g, s.index, 0, s.n, w ? o2 : o1, wk);
                x->k->siren_work_free(wk);
            }
            report("siren_eval (indexed)", b, shape, rel_err_f(o1, o2, (size_t)s.n), 1e-5);
            for (int w = 0; w < 2; w++) {
                const backend *x = w ? b : ref;
                use_threads(x->threads);
                siren_work *wk = x->k->siren_work_new(&s.a, x->threads);
                x->k->siren_eval(&s.a, s.params, &s.g, NULL, 5, s.n - 5, w ? o2 : o1, wk);
                x->k->siren_work_free(wk);
            }
            report("siren_eval (consecutive)", b, shape, rel_err_f(o1, o2, (size_t)(s.n - 5)), 1e-5);
            free(o1), free(o2), free(g1), free(g2);
            siren_case_free(&s);
        }
    /* Adam: several steps from the same state */
    static const size_t ns[] = {1, 1000, 70001};
    for (int ni = 0; ni < 3; ni++) {
        size_t n = ns[ni];
        float *p0 = rnd(n, -1, 1), *g = rnd(n, -1, 1);
        float *p[2], *m[2], *v[2];
        for (int w = 0; w < 2; w++) {
            const backend *x = w ? b : ref;
            p[w] = dup(p0, n), m[w] = rnd(n, 0, 0), v[w] = rnd(n, 0, 0);
            use_threads(x->threads);
            for (int64_t t = 1; t <= 5; t++) x->k->adam_step(p[w], g, m[w], v[w], n, t, 1e-3f, 0.9f, 0.999f, 1e-8f);
        }
        char shape[32];
        snprintf(shape, sizeof shape, "n %zu, 5 steps", n);
        report("adam_step", b, shape, fmax(rel_err_f(p[0], p[1], n), rel_err_f(v[0], v[1], n)), 1e-6);
        for (int w = 0; w < 2; w++) free(p[w]), free(m[w]), free(v[w]);
        free(p0), free(g);
    }
}

/* ---- the registry: which entries each case covers ------------------------- */

typedef struct {
    const char *name;
    case_fn fn;
    const char *entries; /* space-separated table entries it exercises */
} case_def;

static const case_def cases[] = {
    {"fuse", case_fuse, "fuse_mean_f32 fuse_median_f32"},
    {"pointwise", case_pointwise, "affine_f32 count_nonfinite_f32 minmax_f32 sq_diff_sum_f32 weighted_sum_f32"},
    {"blur", case_blur, "gauss_blur3d_f32"},
    {"median", case_median, "median_filter_plane_f32"},
    {"ssim", case_ssim, "ssim2d_f32 ssim3d_plane_f32"},
    {"register", case_register, "shift_f32 xcorr_new xcorr_free xcorr_reference_f32 xcorr_find_f32"},
    {"spectrum", case_spectrum, "spectrum_new spectrum_free spectrum_len spectrum_logmag spectrum_mse"},
    {"fmask", case_fmask, "fmask_new fmask_free fmask_radial_power fmask_apply fmask_cutoff_grad"},
    {"rl", case_rl, "rl_new rl_free rl_step_f32 rl_bytes"},
    {"conv", case_conv, "conv_new conv_free conv_impl conv_fwd conv_bwd_data conv_bwd_weights"},
    {"layers", case_layers,
     "maxpool2_f32 maxpool2_bwd_f32 upsample2_f32 upsample2_bwd_f32 leaky_relu_f32 leaky_relu_bwd_f32 "
     "chan_copy_f32 mask_scale_f32 mse_grad_f32 sgd_step"},
    {"siren", case_siren,
     "siren_loss_grad siren_eval adam_step siren_work_new siren_work_free siren_work_kernel"},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static int covers(const case_def *c, const char *entry)
{
    size_t n = strlen(entry);
    for (const char *p = c->entries; (p = strstr(p, entry)); p += n)
        if ((p == c->entries || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

#define ENTRY_NAME(e) #e,
static const char *const entry_names[] = {KERNEL_ENTRIES(ENTRY_NAME) NULL};

/* ---- grad mode: finite differences of siren_loss_grad --------------------- */

static void grad_mode(const backend *b)
{
    for (int loss = SIREN_LOSS_MSE; loss <= SIREN_LOSS_CAUCHY; loss++) {
        siren_case s;
        siren_case_make(&s, 16, 1, 2, 11);
        size_t np = siren_n_params(&s.a);
        float *g = rnd(np, 0, 0), *scratch = rnd(np, 0, 0);
        run_loss_grad(b, &s, (siren_loss)loss, g, NULL);
        double gmax = 0;
        for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(g[i]));
        /* A sample of parameters of every layer; float32 differences with a
         * step large enough to rise above rounding. */
        double worst = 0;
        int checked = 0;
        for (size_t i = 0; i < np; i += np / 40 + 1) {
            float keep = s.params[i], h = 1e-2f * fmaxf(1.0f, fabsf(keep));
            s.params[i] = keep + h;
            double lp = run_loss_grad(b, &s, (siren_loss)loss, scratch, NULL);
            s.params[i] = keep - h;
            double lm = run_loss_grad(b, &s, (siren_loss)loss, scratch, NULL);
            s.params[i] = keep;
            double fd = (lp - lm) / (2.0 * ((double)(keep + h) - keep));
            worst = fmax(worst, fabs(fd - g[i]) / fmax(gmax, 1e-30));
            checked++;
        }
        CHECK(worst < 2e-2, "siren_loss_grad on %s, loss %d: gradient = central differences at %d parameters "
              "(worst %.3g of the largest component)", b->name, loss, checked, worst);
        free(g), free(scratch);
        siren_case_free(&s);
    }
}

/* ---- grad mode: the layers' backward passes as directional derivatives ------ */

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* (f(x + h u) - f(x - h u)) / 2h against <u, grad>, relative to |u| |grad|. */
static double directional_err(double fp, double fm, double h, double ug, double scale)
{
    return fabs((fp - fm) / (2 * h) - ug) / fmax(scale, 1e-30);
}

static double norm2(const float *a, size_t n)
{
    return sqrt(dot(a, a, n));
}

static void grad_nn(const backend *b)
{
    use_threads(b->threads);
    /* convolutions are linear in x, w and b: a step of 1 is exact up to rounding */
    for (int ci = 0; ci < N_CONV; ci++) {
        conv_case c;
        conv_case_of(&c, &conv_shapes[ci]);
        char shape[96];
        conv_shape_name(&c.s, shape, sizeof shape);
        float *x = rnd(c.nx, -1, 1), *w = rnd(c.nw, -0.5f, 0.5f), *bias = rnd((size_t)c.s.cout, -1, 1),
              *r = rnd(c.ny, -1, 1), *y = rnd(c.ny, 0, 0), *dx = rnd(c.nx, 0, 0), *dw = rnd(c.nw, 0, 0),
              *db = rnd((size_t)c.s.cout, 0, 0), *ux = rnd(c.nx, -1, 1), *uw = rnd(c.nw, -1, 1),
              *ub = rnd((size_t)c.s.cout, -1, 1);
        conv_state *st = b->k->conv_new(&c.s);
        if (!st) abort();
        b->k->conv_bwd_data(st, r, w, dx);
        b->k->conv_bwd_weights(st, x, r, dw, db);
        float *xs = rnd(c.nx, 0, 0), *ws = rnd(c.nw, 0, 0), *bs = rnd((size_t)c.s.cout, 0, 0);
        double f[3][2];
        for (int sgn = 0; sgn < 2; sgn++) {
            double h = sgn ? -1 : 1;
            for (int q = 0; q < 3; q++) {
                for (size_t i = 0; i < c.nx; i++) xs[i] = x[i] + (q == 0 ? (float)h * ux[i] : 0);
                for (size_t i = 0; i < c.nw; i++) ws[i] = w[i] + (q == 1 ? (float)h * uw[i] : 0);
                for (int i = 0; i < c.s.cout; i++) bs[i] = bias[i] + (q == 2 ? (float)h * ub[i] : 0);
                b->k->conv_fwd(st, xs, ws, bs, y);
                f[q][sgn] = dot(y, r, c.ny);
            }
        }
        double ex = directional_err(f[0][0], f[0][1], 1, dot(ux, dx, c.nx), norm2(ux, c.nx) * norm2(dx, c.nx));
        double ew = directional_err(f[1][0], f[1][1], 1, dot(uw, dw, c.nw), norm2(uw, c.nw) * norm2(dw, c.nw));
        double eb = directional_err(f[2][0], f[2][1], 1, dot(ub, db, (size_t)c.s.cout),
                                    norm2(ub, (size_t)c.s.cout) * norm2(db, (size_t)c.s.cout));
        CHECK(ex < 1e-5 && ew < 1e-5 && eb < 1e-5, "conv_bwd_data and conv_bwd_weights on %s, %s: the derivatives of "
              "<conv(x, w) + b, r> along random directions (errors %.2g, %.2g, %.2g)", b->name, shape, ex, ew, eb);
        b->k->conv_free(st);
        free(x), free(w), free(bias), free(r), free(y), free(dx), free(dw), free(db), free(ux), free(uw), free(ub);
        free(xs), free(ws), free(bs);
    }
    /* the Fourier mask as a layer: f(c) = <fmask_apply(x; c), r> against
     * fmask_cutoff_grad, and <fmask_apply(x), r> = <x, fmask_apply(r)> */
    {
        int64_t ny = 24, nx = 30;
        size_t n = (size_t)(ny * nx);
        float *x = rnd(n, -1, 1), *r = rnd(n, -1, 1), *y = rnd(n, 0, 0), *g = rnd(n, 0, 0);
        fmask_state *st = b->k->fmask_new(ny, nx);
        if (!st) abort();
        double c = 0.55, ro = 0.2, h = 1e-3;
        double gc = b->k->fmask_cutoff_grad(st, x, r, c, ro);
        b->k->fmask_apply(st, x, c + h, ro, y);
        double fp = dot(y, r, n);
        b->k->fmask_apply(st, x, c - h, ro, y);
        double fm = dot(y, r, n);
        double e = fabs((fp - fm) / (2 * h) - gc) / fmax(fabs(gc), 1e-30);
        b->k->fmask_apply(st, x, c, ro, y);
        b->k->fmask_apply(st, r, c, ro, g);
        double e2 = fabs(dot(y, r, n) - dot(x, g, n)) / (norm2(x, n) * norm2(r, n));
        CHECK(e < 1e-3 && e2 < 1e-6 && gc != 0, "fmask_cutoff_grad on %s: the derivative in the cut-off equals central "
              "differences (error %.2g of %.3g), and the mask is its own adjoint (%.2g)", b->name, e, gc, e2);
        b->k->fmask_free(st);
        free(x), free(r), free(y), free(g);
    }
    /* pooling, upsampling and leaky ReLU: f(x) = <layer(x), r> */
    static const int hw[][3] = {{3, 7, 9}, {8, 16, 16}};
    for (int si = 0; si < 2; si++) {
        int64_t nc = hw[si][0];
        int h = hw[si][1], w = hw[si][2];
        size_t n = (size_t)nc * h * w, np = (size_t)nc * (h / 2) * (w / 2), nu = 4 * n;
        float *x = rnd(n, -1, 1), *u = rnd(n, -1, 1), *xs = rnd(n, 0, 0), *g = rnd(n, 0, 0);
        float *rp = rnd(np, -1, 1), *ru = rnd(nu, -1, 1), *rr = rnd(n, -1, 1), *yp = rnd(np, 0, 0),
              *yu = rnd(nu, 0, 0);
        int32_t *arg = malloc(np * sizeof *arg);
        const char *names[4] = {"maxpool2_bwd_f32", "upsample2_bwd_f32 (nearest)", "upsample2_bwd_f32 (bilinear)",
                                "leaky_relu_bwd_f32"};
        for (int op = 0; op < 4; op++) {
            double hstep = op == 0 || op == 3 ? 1e-3 : 1, fv[2];
            if (op == 0) {
                b->k->maxpool2_f32(x, nc, h, w, yp, arg);
                b->k->maxpool2_bwd_f32(rp, arg, nc, h, w, g);
            } else if (op < 3) {
                b->k->upsample2_bwd_f32(ru, nc, h, w, op == 1 ? UPSAMPLE_NEAREST : UPSAMPLE_BILINEAR, g);
            } else {
                memcpy(xs, x, n * sizeof *xs);
                b->k->leaky_relu_f32(xs, n, 0.2f);
                memcpy(g, rr, n * sizeof *g);
                b->k->leaky_relu_bwd_f32(xs, g, n, 0.2f);
            }
            for (int sgn = 0; sgn < 2; sgn++) {
                for (size_t i = 0; i < n; i++) xs[i] = x[i] + (float)((sgn ? -hstep : hstep) * u[i]);
                if (op == 0) {
                    b->k->maxpool2_f32(xs, nc, h, w, yp, arg);
                    fv[sgn] = dot(yp, rp, np);
                } else if (op < 3) {
                    b->k->upsample2_f32(xs, nc, h, w, op == 1 ? UPSAMPLE_NEAREST : UPSAMPLE_BILINEAR, yu);
                    fv[sgn] = dot(yu, ru, nu);
                } else {
                    b->k->leaky_relu_f32(xs, n, 0.2f);
                    fv[sgn] = dot(xs, rr, n);
                }
            }
            /* the float steps actually taken, for the small ones */
            double e = directional_err(fv[0], fv[1], hstep, dot(u, g, n), norm2(u, n) * norm2(g, n));
            CHECK(e < (hstep < 1 ? 2e-3 : 1e-5), "%s on %s, %lld x %dx%d: the derivative along a random direction "
                  "(error %.2g)", names[op], b->name, (long long)nc, h, w, e);
        }
        free(x), free(u), free(xs), free(g), free(rp), free(ru), free(rr), free(yp), free(yu), free(arg);
    }
}

/* ---- perf mode ------------------------------------------------------------- */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void perf_mode(const backend *b, const char *only)
{
    printf("# %-28s %-8s %12s\n", "case", "backend", "ms (median)");
    for (int c = 0; c < N_CASES; c++) {
        if (only && !covers(&cases[c], only)) continue;
        double t[5];
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            cases[c].fn(b, b);
            t[r] = now() - t0;
        }
        for (int i = 1; i < 5; i++)
            for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
                double x = t[j];
                t[j] = t[j - 1], t[j - 1] = x;
            }
        printf("# %-28s %-8s %12.2f\n", cases[c].name, b->name, 1e3 * t[2]);
    }
}

int main(int argc, char **argv)
{
    const char *mode = "compare", *only = NULL, *only_backend = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) only_backend = argv[++i];
        else if (!strcmp(argv[i], "compare") || !strcmp(argv[i], "grad") || !strcmp(argv[i], "perf")) mode = argv[i];
        else {
            fprintf(stderr, "usage: backend_ops [compare|grad|perf] [-o ENTRY] [-b BACKEND]\n");
            return 64;
        }
    }
    rng_seed(&rng, 20261203);
    backend ref = {"cpu-1t", kernels_cpu(), 1};
    backend all[2] = {{"cpu", kernels_cpu(), 2}, {"cuda", kernels_cuda(), 2}};

    if (!strcmp(mode, "compare") && !only) {
        /* every entry has a case */
        for (const char *const *e = entry_names; *e; e++) {
            int found = 0;
            for (int c = 0; c < N_CASES && !found; c++) found = covers(&cases[c], *e);
            CHECK(found, "table entry %s has a case in backend_ops", *e);
        }
        const kernels *k = kernels_cpu();
        int complete = 1;
#define SET_ENTRY(e) complete &= k->e != NULL;
        KERNEL_ENTRIES(SET_ENTRY)
#undef SET_ENTRY
        CHECK(complete && k->filled && !k->filled[0], "the CPU table sets every entry itself");
        /* a backend with a few entries is completed from the CPU, saying which */
        kernels partial = {.name = "partial", .fuse_mean_f32 = k->fuse_mean_f32, .adam_step = k->adam_step};
        const char *filled[64];
        int n = kernels_fill(&partial, k, filled);
        int all_set = 1;
#define SET_ENTRY(e) all_set &= partial.e == k->e;
        KERNEL_ENTRIES(SET_ENTRY)
#undef SET_ENTRY
        int listed_adam = 0;
        for (int i = 0; i < n; i++) listed_adam |= !strcmp(filled[i], "adam_step");
        CHECK(all_set && n == (int)(sizeof entry_names / sizeof *entry_names) - 3 && partial.filled == filled &&
                  !filled[n] && !listed_adam,
              "kernels_fill completes a partial table from the CPU's and lists the %d entries it filled", n);
    }

    for (int bi = 0; bi < 2; bi++) {
        const backend *b = &all[bi];
        if (only_backend && strcmp(only_backend, b->name)) continue;
        if (!b->k) {
            TAP_SKIP("backend %s: not built or no device here", b->name);
            continue;
        }
        if (!strcmp(mode, "perf")) {
            perf_mode(b, only);
            continue;
        }
        if (!strcmp(mode, "grad")) {
            grad_mode(b);
            grad_nn(b);
            continue;
        }
        for (int c = 0; c < N_CASES; c++)
            if (!only || covers(&cases[c], only)) cases[c].fn(&ref, b);
    }
    return tap_done();
}
