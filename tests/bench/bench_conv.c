/* Every convolution layer shape of the two benchmarked U-Nets (depth 4 width
 * 64, the paper's; depth 3 width 16) and of the paper's 3-layer CNN, timed
 * in each version the CPU backend has (SIRENSTACK_CONV_IMPL=gemm, =dnnl), float32 and bf16: the measurement
 * behind the rule in kernels/cpu/conv.c (conv_version).
 *
 *   bench_conv [train|infer|all] [SECONDS]
 * train: batch 10 of 64 x 64 patches, fwd, bwd_data and bwd_weights; infer:
 * one 400 x 400 tile, fwd. Each cell is the fastest of interleaved runs of
 * about SECONDS (default 0.3) per version, in ms; ratio = gemm / dnnl
 * (above 1: oneDNN is faster). One line per distinct shape, key=value. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "kernels.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float *noise(size_t n, uint64_t seed)
{
    ss_rng r;
    rng_seed(&r, seed);
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) abort();
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_uniform(&r) - 0.5);
    return x;
}

#define MAX_SHAPES 64
static conv_shape shapes[MAX_SHAPES];
static const char *shape_net[MAX_SHAPES];
static int nshapes;

static void add(const char *net, conv_shape s)
{
    for (int i = 0; i < nshapes; i++)
        if (!memcmp(&shapes[i], &s, sizeof s)) return;
    if (nshapes == MAX_SHAPES) abort();
    shape_net[nshapes] = net;
    shapes[nshapes++] = s;
}

/* The convolutions of a U-Net as stages/cnn/net.c builds it (3 x 3, two per
 * level, ReLU after each, 2 x 2 transposed upsampling, 1 x 1 output). */
static void unet_shapes(const char *net, int depth, int width, int n, int side, int bf16)
{
    int wl[8], c = 1;
    for (int l = 0; l < depth; l++) wl[l] = width << l > 512 ? 512 : width << l;
    for (int l = 0; l < depth; l++)
        for (int q = 0; q < 2; q++) {
            add(net, (conv_shape){n, c, side >> l, side >> l, wl[l], 3, 1, 0, 1, 0.0f, bf16});
            c = wl[l];
        }
    for (int l = depth - 2; l >= 0; l--) {
        add(net, (conv_shape){n, wl[l + 1], side >> (l + 1), side >> (l + 1), wl[l], 2, 2, 1, 0, 0.0f, bf16});
        add(net, (conv_shape){n, 2 * wl[l], side >> l, side >> l, wl[l], 3, 1, 0, 1, 0.0f, bf16});
        add(net, (conv_shape){n, wl[l], side >> l, side >> l, wl[l], 3, 1, 0, 1, 0.0f, bf16});
    }
    add(net, (conv_shape){n, wl[0], side, side, 1, 1, 1, 0, 0, 0.0f, bf16});
}

/* The paper's 3-layer CNN (cnn_motion: 5 x 5, 64, 64, 1 filters). */
static void cnn_shapes(const char *net, int n, int side, int bf16)
{
    add(net, (conv_shape){n, 1, side, side, 64, 5, 1, 0, 1, 0.0f, bf16});
    add(net, (conv_shape){n, 64, side, side, 64, 5, 1, 0, 1, 0.0f, bf16});
    add(net, (conv_shape){n, 64, side, side, 1, 5, 1, 0, 0, 0.0f, bf16});
}

enum { FWD, BWD_DATA, BWD_WEIGHTS };
static const char *const pass_names[] = {"fwd", "bwd_data", "bwd_weights"};
static const char *const versions[] = {"gemm", "dnnl"};

typedef struct {
    conv_state *st;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
} layer;

static void run(const kernels *k, layer *l, int pass)
{
    if (pass == FWD) k->conv_fwd(l->st, l->x, l->w, l->b, l->y);
    else if (pass == BWD_DATA) k->conv_bwd_data(l->st, l->dy, l->w, l->dx);
    else k->conv_bwd_weights(l->st, l->x, l->dy, l->dw, l->db);
}

static void measure(const kernels *k, const conv_shape *s, int passes, double seconds, const char *net)
{
    int oh, ow;
    if (conv_out_size(s, &oh, &ow)) abort();
    size_t nx = (size_t)s->n * s->cin * s->h * s->w, ny = (size_t)s->n * s->cout * oh * ow,
           nw = (size_t)s->cin * s->cout * s->k * s->k;
    layer l[2];
    const char *impl[2];
    for (int v = 0; v < 2; v++) {
        setenv("SIRENSTACK_CONV_IMPL", versions[v], 1);
        l[v] = (layer){k->conv_new(s), noise(nx, 1), noise(nw, 2), noise((size_t)s->cout, 3), noise(ny, 4),
                       noise(ny, 5), noise(nx, 6), noise(nw, 7), noise((size_t)s->cout, 8)};
        if (!l[v].st) abort();
        impl[v] = k->conv_impl(l[v].st);
    }
    for (int p = 0; p < passes; p++) {
        double best[2] = {1e30, 1e30};
        for (int v = 0; v < 2; v++) run(k, &l[v], p); /* warm-up */
        /* alternate the versions in short rounds, so load from other jobs
         * falls on both */
        double spent = 0;
        for (int round = 0; round < 3 || spent < 2 * seconds; round++) {
            for (int v = 0; v < 2; v++) {
                double t0 = now();
                run(k, &l[v], p);
                double t = now() - t0;
                spent += t;
                if (t < best[v]) best[v] = t;
            }
        }
        printf("net=%s shape=%s%dx%dx%dx%d->%d,k%d,s%d dtype=%s pass=%s %s_ms=%.3f %s_ms=%.3f ratio=%.2f\n", net,
               s->transposed ? "T" : "", s->n, s->cin, s->h, s->w, s->cout, s->k, s->stride,
               s->bf16 ? "bf16" : "f32", pass_names[p], impl[0], 1e3 * best[0], impl[1], 1e3 * best[1],
               best[0] / best[1]);
        fflush(stdout);
    }
    for (int v = 0; v < 2; v++) {
        k->conv_free(l[v].st);
        free(l[v].x), free(l[v].w), free(l[v].b), free(l[v].y), free(l[v].dy), free(l[v].dx), free(l[v].dw),
            free(l[v].db);
    }
    unsetenv("SIRENSTACK_CONV_IMPL");
}

int main(int argc, char **argv)
{
    openblas_set_num_threads(1);
    const char *mode = argc > 1 ? argv[1] : "all";
    double seconds = argc > 2 ? atof(argv[2]) : 0.3;
    int train = !strcmp(mode, "train") || !strcmp(mode, "all"), infer = !strcmp(mode, "infer") || !strcmp(mode, "all");
    if (!train && !infer) {
        fprintf(stderr, "usage: bench_conv [train|infer|all] [SECONDS]\n");
        return 64;
    }
    const kernels *k = kernels_cpu();
    /* training: batch 10 of 64 x 64, all three passes; inference: one
     * 400 x 400 tile, forward only */
    static const struct {
        const char *name[3];
        int n, side, passes;
    } modes[2] = {{{"train-4x64", "train-3x16", "train-cnn"}, 10, 64, 3},
                  {{"infer-4x64", "infer-3x16", "infer-cnn"}, 1, 400, 1}};
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (int m = 0; m < 2; m++) {
            if (!(m ? infer : train)) continue;
            nshapes = 0;
            unet_shapes(modes[m].name[0], 4, 64, modes[m].n, modes[m].side, bf16);
            unet_shapes(modes[m].name[1], 3, 16, modes[m].n, modes[m].side, bf16);
            cnn_shapes(modes[m].name[2], modes[m].n, modes[m].side, bf16);
            for (int i = 0; i < nshapes; i++) measure(k, &shapes[i], modes[m].passes, seconds, shape_net[i]);
        }
    return 0;
}
