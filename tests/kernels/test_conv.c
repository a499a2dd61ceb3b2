/* The convolution entries against naive loops over random shapes: forward,
 * data gradient and weight and bias gradients of convolutions (odd kernels,
 * stride 1 and 2) and transposed convolutions (k == stride, and odd k),
 * written from the definitions (PyTorch's Conv2d and ConvTranspose2d) in
 * double. Every version runs every shape: the gemm products and oneDNN
 * (SIRENSTACK_CONV_IMPL forces each), with and without the activation. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "kernels.h"
#include "tap.h"

static ss_rng rng;

static float *rnd(size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(2 * rng_uniform(&rng) - 1);
    return x;
}

static double worst(const float *a, const double *b, size_t n)
{
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i])), s = fmax(s, fabs(b[i]));
    return m / fmax(s, 1e-30);
}

/* y[n][co][oy][ox] for the pair of input pixel (iy, ix) and tap (ky, kx):
 * convolution: iy = oy s - p + ky; transposed: oy = iy s - p + ky. Both
 * directions visit the same (input, output, tap) triples, so one loop gives
 * the forward pass and, transposed, both gradients. */
static void naive(const conv_shape *s, int oh, int ow, const float *x, const float *w, const float *b,
                  const float *dy, double *y, double *dx, double *dw, double *db)
{
    int k = s->k, st = s->stride, p = s->transposed && k == st ? 0 : k / 2;
    size_t ny = (size_t)s->n * s->cout * oh * ow;
    memset(dx, 0, (size_t)s->n * s->cin * s->h * s->w * sizeof *dx);
    memset(dw, 0, (size_t)s->cin * s->cout * k * k * sizeof *dw);
    for (size_t i = 0; i < ny; i++) y[i] = b[(i / ((size_t)oh * ow)) % (size_t)s->cout];
    for (int co = 0; co < s->cout; co++) {
        double acc = 0;
        for (int n = 0; n < s->n; n++)
            for (int q = 0; q < oh * ow; q++) acc += dy[((size_t)n * s->cout + co) * oh * ow + q];
        db[co] = acc;
    }
    for (int n = 0; n < s->n; n++)
        for (int ci = 0; ci < s->cin; ci++)
            for (int co = 0; co < s->cout; co++)
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        size_t wi = s->transposed ? (((size_t)ci * s->cout + co) * k + ky) * k + kx
                                                  : (((size_t)co * s->cin + ci) * k + ky) * k + kx;
                        int big_h = s->transposed ? oh : s->h, big_w = s->transposed ? ow : s->w;
                        int small_h = s->transposed ? s->h : oh, small_w = s->transposed ? s->w : ow;
                        for (int a = 0; a < small_h; a++) {
                            int A = a * st - p + ky;
                            if (A < 0 || A >= big_h) continue;
                            for (int c = 0; c < small_w; c++) {
                                int C = c * st - p + kx;
                                if (C < 0 || C >= big_w) continue;
                                /* conv: input (A, C), output (a, c); transposed: input (a, c), output (A, C) */
                                size_t xi = s->transposed ? (((size_t)n * s->cin + ci) * s->h + a) * s->w + c
                                                          : (((size_t)n * s->cin + ci) * s->h + A) * s->w + C;
                                size_t yi = s->transposed ? (((size_t)n * s->cout + co) * oh + A) * ow + C
                                                          : (((size_t)n * s->cout + co) * oh + a) * ow + c;
                                y[yi] += (double)w[wi] * x[xi];
                                dx[xi] += (double)w[wi] * dy[yi];
                                dw[wi] += (double)x[xi] * dy[yi];
                            }
                        }
                    }
}

/* The leaky ReLU of slope s applied to the naive forward pass. */
static void leaky(double *y, size_t n, float s)
{
    for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : s * y[i];
}

static int is_bf16(const char *impl)
{
    return strstr(impl, "bf16") != NULL;
}

int main(void)
{
    openblas_set_num_threads(1);
    static const char *const versions[] = {"gemm", "dnnl"};
    int have_bf16 = 0, have_dnnl = 0;
    double worst16 = 0;
    for (int v = 0; v < 2; v++) {
        setenv("SIRENSTACK_CONV_IMPL", versions[v], 1);
        rng_seed(&rng, 99);
        const kernels *kt = kernels_cpu();
        for (int t = 0; t < 80; t++) {
            conv_shape s = {0};
            s.transposed = t % 4 == 3;
            s.stride = 1 + (int)(rng_next(&rng) % 2);
            if (s.transposed) s.k = rng_next(&rng) % 2 ? s.stride : 1 + 2 * (int)(rng_next(&rng) % 3);
            else s.k = 1 + 2 * (int)(rng_next(&rng) % 4);
            s.n = 1 + (int)(rng_next(&rng) % 3);
            s.cin = 1 + (int)(rng_next(&rng) % 9);
            s.cout = 1 + (int)(rng_next(&rng) % 9);
            s.h = 1 + (int)(rng_next(&rng) % 19);
            s.w = 1 + (int)(rng_next(&rng) % 19);
            if (s.transposed && s.k == 2 && s.stride == 1) s.k = 1;
            s.bf16 = t >= 40; /* the second half: bfloat16 products */
            s.act = t % 3 == 1;
            s.slope = t % 2 ? 0.1f : 0.0f;
            int oh, ow;
            if (conv_out_size(&s, &oh, &ow)) {
                CHECK(0, "shape %d refused by conv_out_size", t);
                continue;
            }
            size_t nx = (size_t)s.n * s.cin * s.h * s.w, ny = (size_t)s.n * s.cout * oh * ow,
                   nw = (size_t)s.cin * s.cout * s.k * s.k;
            float *x = rnd(nx), *w = rnd(nw), *b = rnd((size_t)s.cout), *dy = rnd(ny);
            float *y = rnd(ny), *dx = rnd(nx), *dw = rnd(nw), *db = rnd((size_t)s.cout);
            double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx), *rdw = malloc(nw * sizeof *rdw),
                   *rdb = malloc((size_t)s.cout * sizeof *rdb);
            naive(&s, oh, ow, x, w, b, dy, ry, rdx, rdw, rdb);
            if (s.act) leaky(ry, ny, s.slope);
            conv_state *st = kt->conv_new(&s);
            if (!st) abort();
            const char *impl = kt->conv_impl(st);
            int is16 = is_bf16(impl);
            have_bf16 |= is16;
            have_dnnl |= !strncmp(impl, "dnnl", 4);
            kt->conv_fwd(st, x, w, b, y);
            kt->conv_bwd_data(st, dy, w, dx);
            kt->conv_bwd_weights(st, x, dy, dw, db);
            double e[4] = {worst(y, ry, ny), worst(dx, rdx, nx), worst(dw, rdw, nw), worst(db, rdb, (size_t)s.cout)};
            /* bf16: each factor rounded to 8 significant bits; the bias sums stay float32 */
            double tol = is16 ? 1e-2 : 1e-5;
            if (is16) worst16 = fmax(worst16, fmax(fmax(e[0], e[1]), e[2]));
            CHECK(e[0] < tol && e[1] < tol && e[2] < tol && e[3] < 1e-5,
                  "%s (%s%s) %dx%dx%dx%d -> %d, k %d, stride %d: forward, data, weight and bias gradients equal the naive "
                  "loops (%.1g %.1g %.1g %.1g, within %g of the largest)", s.transposed ? "transposed" : "conv",
                  impl, s.act ? ", leaky ReLU" : "", s.n, s.cin, s.h, s.w, s.cout, s.k, s.stride, e[0], e[1], e[2],
                  e[3], tol);
            kt->conv_free(st);
            free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
            free(ry), free(rdx), free(rdw), free(rdb);
        }
    }
    if (!have_dnnl) TAP_SKIP("oneDNN convolutions: not built (meson option dnnl)");
    if (have_bf16)
        CHECK(worst16 > 1e-5, "bf16 products are really bfloat16 (worst relative error %.2g, above float32's)",
              worst16);
    else
        TAP_SKIP("bf16 convolutions: this CPU lacks AVX512-BF16 (float32 was used)");
    return tap_done();
}
