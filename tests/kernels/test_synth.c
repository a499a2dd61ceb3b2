/* The kernels behind stage synth, by themselves: PSF widths against
 * hand-computed values of the Zipfel et al. formulas, the Debye PSF's
 * normalisation and symmetry, FFT convolution against a direct sum,
 * rendered masses against the volumes of the shapes, labels, and the noise
 * kernel's statistics and independence of the thread count. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "host.h"
#include "kernels.h"

static void zipfel(void)
{
    double xy, z;
    /* NA 1.0 > 0.7: w_xy = 0.325 * 0.92 / sqrt(2) = 0.211425 um,
     * w_z = 0.532 * 0.92 / sqrt(2) / (1.33 - sqrt(1.33^2 - 1)) = 0.763767 um;
     * FWHM = 2 sqrt(ln 2) w = 1.665109 w. */
    psf2p_fwhm(1.0, 0.92, 1.33, &xy, &z);
    CHECK_NEAR(xy, 0.352046, 2e-6, "Zipfel FWHM, NA 1.0, 920 nm, water: lateral 0.352 um");
    CHECK_NEAR(z, 1.271756, 5e-6, "Zipfel FWHM, NA 1.0, 920 nm, water: axial 1.272 um");
    /* NA 0.5 <= 0.7: w_xy = 0.320 * 0.8 / (sqrt(2) * 0.5) = 0.362039 um. */
    psf2p_fwhm(0.5, 0.8, 1.0, &xy, &z);
    CHECK_NEAR(xy, 0.602835, 2e-6, "Zipfel FWHM, NA 0.5, 800 nm, air: lateral (the low-NA formula)");
}

static void debye(void)
{
    enum { NZ = 21, NY = 31, NX = 31 };
    float *p = malloc(sizeof(float) * NZ * NY * NX);
    int rc = psf2p_debye(1.0, 0.92, 1.33, NZ, NY, NX, 0.2, 0.05, 0.05, p);
    CHECK(rc == 0, "Debye PSF computes");
    double s = 0, mx = 0;
    size_t imax = 0;
    int sym = 1;
    for (int z = 0; z < NZ; z++)
        for (int y = 0; y < NY; y++)
            for (int x = 0; x < NX; x++) {
                size_t i = ((size_t)z * NY + y) * NX + x;
                s += p[i];
                if (p[i] > mx) mx = p[i], imax = i;
                float m1 = p[((size_t)(NZ - 1 - z) * NY + y) * NX + x], m2 = p[((size_t)z * NY + x) * NX + y];
                if (fabsf(m1 - p[i]) > 1e-6f * (float)mx + 1e-12f || fabsf(m2 - p[i]) > 1e-6f * (float)mx + 1e-12f)
                    sym = 0;
            }
    CHECK_NEAR(s, 1.0, 1e-5, "Debye PSF sums to 1");
    CHECK(imax == ((size_t)(NZ / 2) * NY + NY / 2) * NX + NX / 2, "Debye PSF peaks at the centre");
    CHECK(sym, "Debye PSF symmetric in z and under x <-> y");
    /* Half maximum along x: between 0.15 and 0.20 um from the centre (FWHM
     * 0.334 um by an independent numpy integral). */
    const float *row = p + ((size_t)(NZ / 2) * NY + NY / 2) * NX;
    double c = row[NX / 2];
    CHECK(row[NX / 2 + 3] > 0.5 * c && row[NX / 2 + 4] < 0.5 * c, "Debye PSF lateral half width 0.15-0.20 um");
    CHECK(psf2p_debye(1.4, 0.92, 1.33, 3, 3, 3, 0.1, 0.1, 0.1, p) == -1, "Debye PSF refuses NA above n");
    free(p);
}

static void fftconv(void)
{
    enum { NY = 24, NX = 30, KH = 5, KW = 7, NK = 2 };
    float img[NY * NX], ker[NK * KH * KW], out[NY * NX];
    ss_rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < NY * NX; i++) img[i] = (float)rng_uniform(&r);
    for (int i = 0; i < NK * KH * KW; i++) ker[i] = (float)rng_normal(&r);
    fftconv2 *c = fftconv2_new(NY, NX, NK, ker, KH, KW);
    CHECK(c != NULL, "fftconv2_new");
    if (!c) return;
    size_t n = fftconv2_spectrum_len(c);
    float *spec = malloc(n * sizeof *spec), *acc = calloc(n, sizeof *acc);
    fftconv2_forward(c, img, spec);
    fftconv2_accumulate(c, acc, spec, 0);
    fftconv2_accumulate(c, acc, spec, 1);
    fftconv2_inverse(c, acc, out);
    double err = 0;
    for (int y = 0; y < NY; y++)
        for (int x = 0; x < NX; x++) {
            double s = 0;
            for (int k = 0; k < NK; k++)
                for (int a = 0; a < KH; a++)
                    for (int b = 0; b < KW; b++) {
                        int yy = ((y - (a - KH / 2)) % NY + NY) % NY, xx = ((x - (b - KW / 2)) % NX + NX) % NX;
                        s += ker[(k * KH + a) * KW + b] * img[yy * NX + xx];
                    }
            err = fmax(err, fabs(s - out[y * NX + x]));
        }
    CHECK(err < 1e-4, "FFT convolution with two kernels summed = direct circular sum (max error %.2g)", err);
    CHECK(fftconv2_new(4, 4, 1, ker, 5, 5) == NULL, "fftconv2_new refuses a kernel larger than the plane");
    free(spec);
    free(acc);
    fftconv2_free(c);
}

/* Total rendered mass in um^3 over a box [lo, hi] (voxel v), plane by plane. */
static double mass(const phantom *p, double lo, double hi, double v, int sub)
{
    int64_t n = (int64_t)((hi - lo) / v + 0.5);
    phantom_plane g = {.ny = n, .nx = n, .y0 = lo + 0.5 * v, .x0 = lo + 0.5 * v, .dy = v, .dx = v, .sub = sub};
    float *out = malloc(sizeof(float) * (size_t)(n * n));
    double s = 0;
    for (int64_t z = 0; z < n; z++) {
        phantom_render_box(p, &g, lo + (double)z * v, lo + (double)(z + 1) * v, sub, out);
        for (int64_t i = 0; i < n * n; i++) s += out[i];
    }
    free(out);
    return s * v * v * v;
}

static void render(void)
{
    phantom *p = phantom_new();
    double c[3] = {0.03, -0.02, 0.01};
    phantom_add_capsule(p, c, c, 1.0, 1.0, 7);
    double want = 4.0 / 3.0 * M_PI;
    double m = mass(p, -1.5, 1.5, 0.1, 2);
    CHECK(fabs(m / want - 1) < 0.01, "sphere r = 1 um: rendered volume %.4f, 4/3 pi = %.4f", m, want);
    int32_t lab[9];
    phantom_plane g3 = {.ny = 3, .nx = 3, .y0 = -0.9, .x0 = -0.9, .dy = 0.9, .dx = 0.9, .sub = 1};
    phantom_labels(p, &g3, 0.0, lab);
    CHECK(lab[4] == 7 && lab[0] == 0 && lab[1] == 7, "labels: centre and edge-centre inside (7), corner outside (0)");
    phantom_free(p);

    /* A thin neck, radius 0.1 um, 2 um long: a cylinder plus two caps. */
    p = phantom_new();
    double a[3] = {0, -1, 0.02}, b[3] = {0, 1, 0.02};
    phantom_add_capsule(p, a, b, 0.1, 1.0, 1);
    want = M_PI * 0.01 * 2.0 + 4.0 / 3.0 * M_PI * 0.001;
    m = mass(p, -1.5, 1.5, 0.1, 2);
    CHECK(fabs(m / want - 1) < 0.1, "neck r = 0.1 um on a 0.1 um grid: volume %.5f vs %.5f (partial volume)", m, want);
    phantom_free(p);

    p = phantom_new();
    double e[3] = {0, 0, 0}, semi[3] = {1.0, 0.6, 0.4}, rot[9];
    /* Rotation by 30 degrees about z. */
    double ca = cos(M_PI / 6), sa = sin(M_PI / 6);
    double rr[9] = {1, 0, 0, 0, ca, -sa, 0, sa, ca};
    memcpy(rot, rr, sizeof rot);
    phantom_add_ellipsoid(p, e, semi, rot, 1.0, 0.0, 1, 2, 1, 3);
    want = 4.0 / 3.0 * M_PI * 1.0 * 0.6 * 0.4;
    m = mass(p, -1.5, 1.5, 0.1, 2);
    CHECK(fabs(m / want - 1) < 0.02, "rotated ellipsoid: volume %.4f vs 4/3 pi abc = %.4f", m, want);
    phantom_free(p);

    /* Two cells: one membrane, the plane x = 0, 0.3 um thick, across the
     * 3 x 3 um box: 2.7 um^3. */
    p = phantom_new();
    double seeds[6] = {0, 0, -5, 0, 0, 5};
    phantom_set_cells(p, seeds, 2, 0.3, 1.0, 0.0, 1, 2, 1, 1);
    m = mass(p, -1.5, 1.5, 0.1, 2);
    CHECK(fabs(m / 2.7 - 1) < 0.02, "Voronoi membrane 0.3 um thick across 3 x 3 um: volume %.4f vs 2.7", m);
    phantom_plane g2 = {.ny = 1, .nx = 2, .y0 = 0, .x0 = -1, .dy = 1, .dx = 2, .sub = 1};
    int32_t l2[2];
    phantom_labels(p, &g2, 0.0, l2);
    CHECK(l2[0] == 1 && l2[1] == 2, "cell labels: index + 1 of the nearest seed");
    phantom_free(p);

    /* Same render on 1 and 3 threads. */
    p = phantom_new();
    ss_rng r;
    rng_seed(&r, 9);
    for (int i = 0; i < 60; i++) {
        double q0[3], q1[3];
        for (int k = 0; k < 3; k++) q0[k] = 4 * rng_uniform(&r), q1[k] = q0[k] + rng_normal(&r);
        phantom_add_capsule(p, q0, q1, 0.1 + 0.3 * rng_uniform(&r), rng_uniform(&r), i + 1);
    }
    phantom_plane g = {.ny = 50, .nx = 45, .y0 = 0, .x0 = 0, .dy = 0.1, .dx = 0.1, .sub = 2};
    float *o1 = malloc(sizeof(float) * 50 * 45), *o3 = malloc(sizeof(float) * 50 * 45);
    omp_set_num_threads(1);
    phantom_render_box(p, &g, 1.0, 1.5, 3, o1);
    omp_set_num_threads(3);
    phantom_render_box(p, &g, 1.0, 1.5, 3, o3);
    CHECK(!memcmp(o1, o3, sizeof(float) * 50 * 45), "render: identical on 1 and 3 threads");
    free(o1);
    free(o3);
    phantom_free(p);
}

static void noise(void)
{
    enum { NY = 200, NX = 300 };
    float *lam = malloc(sizeof(float) * NY * NX);
    uint16_t *a = malloc(2 * NY * NX), *b = malloc(2 * NY * NX);
    for (int i = 0; i < NY * NX; i++) lam[i] = i < NY * NX / 2 ? 5.0f : 40.0f;
    omp_set_num_threads(1);
    int64_t c1 = noise_poisson_gauss_u16(lam, NY, NX, 2.0, 1.5, 11, 4, a);
    omp_set_num_threads(4);
    int64_t c4 = noise_poisson_gauss_u16(lam, NY, NX, 2.0, 1.5, 11, 4, b);
    CHECK(c1 == c4 && !memcmp(a, b, 2 * NY * NX), "noise: identical on 1 and 4 threads");
    noise_poisson_gauss_u16(lam, NY, NX, 2.0, 1.5, 11, 5, b);
    CHECK(memcmp(a, b, 2 * NY * NX) != 0, "noise: another stream, other counts");
    for (int half = 0; half < 2; half++) {
        double l = half ? 40 : 5, s = 0, s2 = 0;
        int n = NY * NX / 2;
        for (int i = 0; i < n; i++) {
            double v = a[half * n + i];
            s += v;
            s2 += v * v;
        }
        double mean = s / n, var = s2 / n - mean * mean;
        /* gain^2 lambda + read_noise^2 + 1/12 (rounding) */
        double wv = 4 * l + 2.25 + 1.0 / 12;
        CHECK(fabs(mean / (2 * l) - 1) < 0.01 && fabs(var / wv - 1) < 0.03,
              "noise at %g photons: mean %.3f (want %.1f), variance %.3f (want %.3f)", l, mean, 2 * l, var, wv);
    }
    free(lam);
    free(a);
    free(b);
}

int main(void)
{
    zipfel();
    debye();
    fftconv();
    render();
    noise();
    return tap_done();
}
