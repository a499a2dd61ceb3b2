/* SIREN kernels: sincos accuracy; a double-precision reference network whose
 * analytic gradient is checked against central finite differences for every
 * parameter of every layer; the float kernel's loss and gradient against that
 * reference, for every loss; determinism across runs and thread counts;
 * evaluation; every layer-kernel path (fused AVX-512, sgemm) against the
 * reference at widths they take, across blocks with ragged tails; Adam
 * against its closed form. */
#include "cpu/siren_simd.h"
#include "host.h"
#include "kernels.h"
#include "cpu/siren_cpu.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- double reference: plain loops, no blocking, no BLAS ---------------- */

typedef struct {
    const siren_arch *a;
    const double *p;
} ref_net;

static double ref_loss_of(siren_loss kind, double s, double d, double *slope)
{
    *slope = 0;
    switch (kind) {
    case SIREN_LOSS_MSE: *slope = 2 * d; return d * d;
    case SIREN_LOSS_L1: *slope = d > 0 ? 1 : d < 0 ? -1 : 0; return fabs(d);
    case SIREN_LOSS_HUBER:
        if (fabs(d) <= s) return *slope = d, 0.5 * d * d;
        *slope = d > 0 ? s : -s;
        return s * (fabs(d) - 0.5 * s);
    case SIREN_LOSS_CAUCHY: *slope = d / (1 + (d / s) * (d / s)); return 0.5 * s * s * log1p((d / s) * (d / s));
    }
    return 0;
}

/* Loss (mean over n*R) and, when grad != NULL, its gradient, by explicit
 * backpropagation through stored activations. */
static double ref_loss_grad(const siren_arch *a, const double *p, const double *x /* n x in */, const float *t,
                            int n, int R, siren_loss kind, double s, double *grad)
{
    int L = siren_n_layers(a), W = a->width;
    size_t np = siren_n_params(a);
    if (grad) memset(grad, 0, np * sizeof *grad);
    double *h = malloc(sizeof(double) * (size_t)(L * W + a->in_dim));
    double *z = malloc(sizeof(double) * (size_t)(L * W));
    double *g = malloc(sizeof(double) * (size_t)W), *g2 = malloc(sizeof(double) * (size_t)W);
    double loss = 0;
    for (int i = 0; i < n; i++) {
        /* h[0..in) input, then layer l's activations at h + in + l*W */
        memcpy(h, x + i * a->in_dim, sizeof(double) * (size_t)a->in_dim);
        const double *in = h;
        int fi = a->in_dim;
        for (int l = 0; l < L - 1; l++) {
            const double *Wl = p + siren_layer_offset(a, l), *bl = Wl + W * fi;
            double om = l == 0 ? a->omega_first : a->omega_hidden;
            double *out = h + a->in_dim + l * W;
            for (int o = 0; o < W; o++) {
                double acc = bl[o];
                for (int k = 0; k < fi; k++) acc += Wl[o * fi + k] * in[k];
                z[l * W + o] = acc;
                out[o] = sin(om * acc);
            }
            in = out;
            fi = W;
        }
        const double *Wo = p + siren_layer_offset(a, L - 1);
        double y = Wo[W];
        for (int k = 0; k < W; k++) y += Wo[k] * in[k];
        double gy = 0;
        for (int r = 0; r < R; r++) {
            double slope;
            loss += ref_loss_of(kind, s, y - t[i * R + r], &slope);
            gy += slope;
        }
        if (!grad) continue;
        gy /= (double)n * R;
        double *gWo = grad + siren_layer_offset(a, L - 1);
        for (int k = 0; k < W; k++) gWo[k] += gy * in[k], g[k] = gy * Wo[k];
        gWo[W] += gy;
        for (int l = L - 2; l >= 0; l--) {
            double om = l == 0 ? a->omega_first : a->omega_hidden;
            int fin = l == 0 ? a->in_dim : W;
            const double *prev = l == 0 ? h : h + a->in_dim + (l - 1) * W;
            const double *Wl = p + siren_layer_offset(a, l);
            double *gW = grad + siren_layer_offset(a, l), *gb = gW + W * fin;
            for (int o = 0; o < W; o++) g[o] *= om * cos(om * z[l * W + o]);
            for (int o = 0; o < W; o++) {
                gb[o] += g[o];
                for (int k = 0; k < fin; k++) gW[o * fin + k] += g[o] * prev[k];
            }
            if (l > 0) {
                for (int k = 0; k < fin; k++) {
                    double acc = 0;
                    for (int o = 0; o < W; o++) acc += g[o] * Wl[o * fin + k];
                    g2[k] = acc;
                }
                memcpy(g, g2, sizeof(double) * (size_t)W);
            }
        }
    }
    free(h), free(z), free(g), free(g2);
    return loss / ((double)n * R);
}

/* Widths 32 and 64 (multiples of every SIMD tile), two hidden layers, 717
 * voxels in a permuted order: blocks of 256, 256 and 205, so every tile shape
 * and tail runs. Each available path against the double reference. */
static void kernel_paths(ss_rng *rng)
{
    const int widths[2] = {32, 64};
    for (int wi = 0; wi < 2; wi++) {
        siren_arch a = {.in_dim = 3, .width = widths[wi], .hidden = 2, .out_dim = 1, .omega_first = 32,
                        .omega_hidden = 34};
        size_t np = siren_n_params(&a);
        float *pf = malloc(np * sizeof *pf), *gf = malloc(np * sizeof *gf);
        double *pd = malloc(np * sizeof *pd), *gd = malloc(np * sizeof *gd);
        siren_init(&a, pf, 11 + (uint64_t)wi);
        for (size_t i = 0; i < np; i++) pd[i] = pf[i];
        float zc[4] = {-0.75f, -0.25f, 0.25f, 0.75f};
        siren_grid grid = {.nz = 4, .ny = 20, .nx = 9, .z = zc, .y0 = -1, .dy = 2.0f / 19, .x0 = -1, .dx = 2.0f / 8};
        int n = 717, R = 2, nv = 4 * 20 * 9;
        int64_t *idx = malloc(sizeof *idx * (size_t)n);
        double *xd = malloc(sizeof *xd * (size_t)n * 3);
        float *tg = malloc(sizeof *tg * (size_t)n * R), *y = malloc(sizeof *y * (size_t)n);
        for (int i = 0; i < n; i++) {
            idx[i] = (i * 97 + 5) % nv;
            int64_t v = idx[i], iz = v / 180, iy = v % 180 / 9, ix = v % 9;
            xd[i * 3] = zc[iz], xd[i * 3 + 1] = (float)(-1 + (2.0f / 19) * (float)iy);
            xd[i * 3 + 2] = (float)(-1 + (2.0f / 8) * (float)ix);
            for (int r = 0; r < R; r++) tg[i * R + r] = (float)(0.4 * cos(2 * xd[i * 3 + 2]) + 0.1 * rng_normal(rng));
        }
        siren_batch b = {.grid = &grid, .index = idx, .n = n, .target = tg, .R = R, .loss = SIREN_LOSS_HUBER, .scale = 0.2f};
        double lr = ref_loss_grad(&a, pd, xd, tg, n, R, SIREN_LOSS_HUBER, 0.2, gd);
        double gnorm = 0;
        for (size_t i = 0; i < np; i++) gnorm += gd[i] * gd[i];
        const char *paths[2] = {"avx512", "blas"};
        for (int path = 0; path < 2; path++) {
            setenv("SIRENSTACK_SIREN_KERNEL", paths[path], 1);
            siren_work *w = siren_cpu_work_new(&a, 2);
            unsetenv("SIRENSTACK_SIREN_KERNEL");
            const char *k = siren_cpu_work_kernel(w);
            const siren_simd *set = path == 0 ? &siren_simd_avx512 : NULL;
            if (set && !set->cpu_ok()) {
                CHECK(!strcmp(k, "blas"), "width %d: %s cannot run here, the sgemm path (%s) stands in", a.width,
                      paths[path], k);
                TAP_SKIP("width %d: this CPU does not run %s", a.width, paths[path]);
                siren_cpu_work_free(w);
                continue;
            }
            CHECK(!strcmp(k, paths[path]), "width %d: the %s path is selected when asked for (got %s)", a.width,
                  paths[path], k);
            double lf = siren_cpu_loss_grad(&a, pf, &b, gf, w);
            double dn = 0;
            for (size_t i = 0; i < np; i++) dn += (gf[i] - gd[i]) * (gf[i] - gd[i]);
            CHECK(fabs(lf - lr) <= 1e-4 * fabs(lr), "width %d, %s: loss %.8g = reference %.8g", a.width, k, lf, lr);
            CHECK(sqrt(dn) <= 2e-3 * sqrt(gnorm), "width %d, %s: gradient = reference (relative error %.2g)", a.width,
                  k, sqrt(dn / gnorm));
            siren_cpu_eval(&a, pf, &grid, idx, 0, n, y, w);
            double ee = 0;
            for (int i = 0; i < n; i++) {
                float one = 0;
                double ref = ref_loss_grad(&a, pd, xd + i * 3, &one, 1, 1, SIREN_LOSS_MSE, 1, NULL);
                ee = fmax(ee, fabs(fabs((double)y[i]) - sqrt(ref)));
            }
            CHECK(ee < 1e-4, "width %d, %s: evaluation = reference forward (max error %.2g)", a.width, k, ee);
            siren_cpu_work_free(w);
        }
        free(pf), free(gf), free(pd), free(gd), free(idx), free(xd), free(tg), free(y);
    }
}

int main(void)
{
    /* sincos: absolute error over the range the network produces and far beyond. */
    size_t N = 4000000;
    float *x = malloc(N * sizeof *x), *s = malloc(N * sizeof *s), *c = malloc(N * sizeof *c);
    ss_rng rng;
    rng_seed(&rng, 1);
    for (size_t i = 0; i < N; i++) x[i] = (float)((2 * rng_uniform(&rng) - 1) * (i < N / 2 ? 100.0 : 1e4));
    x[0] = 0, x[1] = (float)M_PI_2, x[2] = (float)M_PI, x[3] = -(float)M_PI_4, x[4] = 1e4f, x[5] = -1e4f;
    sincos_cpu_f32(x, s, c, N);
    double es = 0, ec = 0;
    for (size_t i = 0; i < N; i++) {
        es = fmax(es, fabs(s[i] - sin((double)x[i])));
        ec = fmax(ec, fabs(c[i] - cos((double)x[i])));
    }
    CHECK(es < 1e-6, "sin absolute error %.3g < 1e-6 for |x| <= 1e4", es);
    CHECK(ec < 1e-6, "cos absolute error %.3g < 1e-6 for |x| <= 1e4", ec);
    const siren_simd *sets[1] = {&siren_simd_avx512};
    for (int k = 0; k < 1; k++) {
        if (!sets[k]->cpu_ok()) {
            TAP_SKIP("this CPU does not run %s: its sincos is not run", sets[k]->name);
            continue;
        }
        /* The fused kernels' own sincos, at a length with a ragged tail. */
        sets[k]->sincos(x, s, c, N - 3);
        es = ec = 0;
        for (size_t i = 0; i < N - 3; i++) {
            es = fmax(es, fabs(s[i] - sin((double)x[i])));
            ec = fmax(ec, fabs(c[i] - cos((double)x[i])));
        }
        CHECK(es < 1e-6 && ec < 1e-6, "%s sin and cos absolute errors %.3g, %.3g < 1e-6 for |x| <= 1e4",
              sets[k]->name, es, ec);
    }
    free(x), free(s), free(c);

    /* A small network with the paper's omegas, every layer kind present. */
    siren_arch a = {.in_dim = 3, .width = 12, .hidden = 2, .out_dim = 1, .omega_first = 32, .omega_hidden = 34};
    CHECK(siren_arch_check(&a) == NULL, "architecture accepted");
    size_t np = siren_n_params(&a);
    CHECK(np == (size_t)(12 * 3 + 12) + 2 * (12 * 12 + 12) + (12 + 1), "parameter count %zu", np);
    float *pf = malloc(np * sizeof *pf);
    siren_init(&a, pf, 7);
    double *pd = malloc(np * sizeof *pd), *gd = malloc(np * sizeof *gd);
    for (size_t i = 0; i < np; i++) pd[i] = pf[i];

    float zc[4] = {-0.6f, -0.2f, 0.2f, 0.6f};
    siren_grid grid = {.nz = 4, .ny = 9, .nx = 7, .z = zc, .y0 = -1, .dy = 2.0f / 8, .x0 = -1, .dx = 2.0f / 6};
    int n = 4 * 9 * 7, R = 3;
    int64_t *idx = malloc(sizeof *idx * (size_t)n);
    double *xd = malloc(sizeof *xd * (size_t)n * 3);
    float *tg = malloc(sizeof *tg * (size_t)n * R);
    for (int i = 0; i < n; i++) {
        idx[i] = (i * 37) % n; /* a permutation: batches need not be in grid order */
        int64_t v = idx[i], iz = v / 63, iy = v % 63 / 7, ix = v % 7;
        xd[i * 3] = zc[iz], xd[i * 3 + 1] = (float)(-1 + (2.0f / 8) * (float)iy), xd[i * 3 + 2] = (float)(-1 + (2.0f / 6) * (float)ix);
        for (int r = 0; r < R; r++) tg[i * R + r] = (float)(0.5 * sin(3 * xd[i * 3 + 1]) + 0.2 * rng_normal(&rng));
    }

    /* Finite differences on the double reference, every parameter. */
    const siren_loss kinds[4] = {SIREN_LOSS_MSE, SIREN_LOSS_L1, SIREN_LOSS_HUBER, SIREN_LOSS_CAUCHY};
    const char *names[4] = {"mse", "l1", "huber", "cauchy"};
    for (int k = 0; k < 4; k++) {
        double sc = 0.1;
        ref_loss_grad(&a, pd, xd, tg, n, R, kinds[k], sc, gd);
        double worst = 0;
        int L = siren_n_layers(&a);
        int per_layer_ok = 1;
        for (int l = 0; l < L; l++) {
            size_t lo = siren_layer_offset(&a, l), hi = siren_layer_offset(&a, l + 1);
            double lw = 0;
            for (size_t i = lo; i < hi; i++) {
                double keep = pd[i], hstep = 1e-6;
                pd[i] = keep + hstep;
                double lp = ref_loss_grad(&a, pd, xd, tg, n, R, kinds[k], sc, NULL);
                pd[i] = keep - hstep;
                double lm = ref_loss_grad(&a, pd, xd, tg, n, R, kinds[k], sc, NULL);
                pd[i] = keep;
                double fd = (lp - lm) / (2 * hstep);
                double err = fabs(fd - gd[i]) / fmax(1e-6, fabs(fd) + fabs(gd[i]));
                lw = fmax(lw, err);
            }
            /* L1 has kinks: a residual within h of zero can flip the slope. */
            if (lw > (kinds[k] == SIREN_LOSS_L1 ? 1e-3 : 1e-5)) per_layer_ok = 0;
            worst = fmax(worst, lw);
        }
        CHECK(per_layer_ok, "%s: double reference gradient = finite differences, every layer (worst rel %.2g)",
              names[k], worst);

        /* The float kernel against the reference. */
        float *gf = malloc(np * sizeof *gf);
        siren_work *w = siren_cpu_work_new(&a, 2);
        siren_batch b = {.grid = &grid, .index = idx, .n = n, .target = tg, .R = R, .loss = kinds[k], .scale = (float)sc};
        double lf = siren_cpu_loss_grad(&a, pf, &b, gf, w);
        double lr = ref_loss_grad(&a, pd, xd, tg, n, R, kinds[k], sc, gd);
        CHECK(fabs(lf - lr) <= 1e-4 * fabs(lr) + 1e-7, "%s: float loss %.8g = reference %.8g", names[k], lf, lr);
        double gnorm = 0, dnorm = 0;
        for (size_t i = 0; i < np; i++) gnorm += gd[i] * gd[i], dnorm += (gf[i] - gd[i]) * (gf[i] - gd[i]);
        CHECK(sqrt(dnorm) <= 2e-3 * sqrt(gnorm), "%s: float gradient = reference (relative error %.2g)", names[k],
              sqrt(dnorm / gnorm));
        /* Same threads: bit-identical; more threads: same up to rounding. */
        float *g2 = malloc(np * sizeof *g2);
        siren_cpu_loss_grad(&a, pf, &b, g2, w);
        CHECK(!memcmp(gf, g2, np * sizeof *gf), "%s: repeated call is bit-identical", names[k]);
        siren_work *w3 = siren_cpu_work_new(&a, 3);
        siren_cpu_loss_grad(&a, pf, &b, g2, w3);
        double d3 = 0;
        for (size_t i = 0; i < np; i++) d3 += (gf[i] - g2[i]) * (gf[i] - g2[i]);
        CHECK(sqrt(d3) <= 1e-5 * sqrt(gnorm), "%s: 3 threads agree with 2 up to rounding", names[k]);
        siren_cpu_work_free(w3);
        free(g2);
        free(gf);
        siren_cpu_work_free(w);
    }

    /* Evaluation equals the reference forward pass, by index and by range. */
    siren_work *w = siren_cpu_work_new(&a, 2);
    float *y = malloc(sizeof *y * (size_t)n), *y2 = malloc(sizeof *y2 * (size_t)n);
    siren_cpu_eval(&a, pf, &grid, NULL, 0, n, y, w);
    siren_cpu_eval(&a, pf, &grid, idx, 0, n, y2, w);
    double ee = 0;
    int perm_ok = 1;
    for (int i = 0; i < n; i++) {
        float one = 0;
        double ref = ref_loss_grad(&a, pd, xd + i * 3, &one, 1, 1, SIREN_LOSS_MSE, 1, NULL); /* y^2 */
        ee = fmax(ee, fabs(fabs((double)y2[i]) - sqrt(ref)));
        perm_ok &= y2[i] == y[idx[i]];
    }
    CHECK(ee < 1e-4, "evaluation = reference forward (max error %.2g)", ee);
    CHECK(perm_ok, "evaluation by index = evaluation by range");
    siren_cpu_work_free(w);

    kernel_paths(&rng);

    /* Adam against its closed form for two steps. */
    float p[3] = {1, -2, 0.5f}, gg[3] = {0.1f, -0.3f, 0.0f}, m[3] = {0}, v[3] = {0};
    adam_cpu_step(p, gg, m, v, 3, 1, 1e-3f, 0.9f, 0.999f, 1e-8f);
    CHECK(fabs(p[0] - (1 - 1e-3)) < 1e-6 && fabs(p[1] - (-2 + 1e-3)) < 1e-6 && p[2] == 0.5f,
          "Adam's first step moves each parameter by lr against its gradient's sign");
    adam_cpu_step(p, gg, m, v, 3, 2, 1e-3f, 0.9f, 0.999f, 1e-8f);
    double m2 = 0.9 * 0.01 + 0.01, v2 = 0.999 * 0.001 * 0.01 + 0.001 * 0.01;
    double expect = 1 - 1e-3 - 1e-3 * (m2 / (1 - 0.81)) / (sqrt(v2 / (1 - 0.999 * 0.999)) + 1e-8);
    CHECK_NEAR(p[0], expect, 1e-6, "Adam's second step");

    free(y), free(y2), free(idx), free(xd), free(tg), free(pf), free(pd), free(gd);
    return tap_done();
}
