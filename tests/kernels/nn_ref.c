/* Runs the CPU network layers on raw little-endian float32 files, for
 * torch_layers.py to compare with PyTorch.
 *
 *   nn_ref conv N CIN H W COUT K STRIDE TRANSPOSED X W B DY  Y DX DW DB
 *   nn_ref pool NC H W X DY  Y DX
 *   nn_ref up NC H W MODE X DY  Y DX       (MODE 0 nearest, 1 bilinear)
 *   nn_ref relu SLOPE X DY  Y DX
 *   nn_ref sgd LR MOMENTUM DECAY STEPS P G  P_OUT  (G holds STEPS gradients)
 *   nn_ref adam LR B1 B2 EPS STEPS P G  P_OUT
 *   nn_ref mse Y T  DY                      (prints the mean)
 * Inputs first, then outputs. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!f || !x || fread(x, sizeof *x, n, f) != n) {
        fprintf(stderr, "nn_ref: cannot read %zu floats from %s\n", n, path);
        exit(1);
    }
    fclose(f);
    return x;
}

static void write_f32(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n || fclose(f)) {
        fprintf(stderr, "nn_ref: cannot write %s\n", path);
        exit(1);
    }
}

static float *zeros(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof *x);
    if (!x) exit(1);
    return x;
}

int main(int argc, char **argv)
{
    const kernels *k = kernels_cpu();
    openblas_set_num_threads(1);
    if (argc < 2) return 64;
    const char *op = argv[1];
    char **a = argv + 2;
    int na = argc - 2;
    if (!strcmp(op, "conv") && na == 16) {
        conv_shape s = {atoi(a[0]), atoi(a[1]), atoi(a[2]), atoi(a[3]), atoi(a[4]), atoi(a[5]), atoi(a[6]),
                        atoi(a[7]), 0, 0, 0};
        int oh, ow;
        if (conv_out_size(&s, &oh, &ow)) return 2;
        size_t nx = (size_t)s.n * s.cin * s.h * s.w, ny = (size_t)s.n * s.cout * oh * ow,
               nw = (size_t)s.cin * s.cout * s.k * s.k;
        float *x = read_f32(a[8], nx), *w = read_f32(a[9], nw), *b = read_f32(a[10], (size_t)s.cout),
              *dy = read_f32(a[11], ny);
        float *y = zeros(ny), *dx = zeros(nx), *dw = zeros(nw), *db = zeros((size_t)s.cout);
        conv_state *st = k->conv_new(&s);
        if (!st) return 3;
        k->conv_fwd(st, x, w, b, y);
        k->conv_bwd_data(st, dy, w, dx);
        k->conv_bwd_weights(st, x, dy, dw, db);
        k->conv_free(st);
        write_f32(a[12], y, ny), write_f32(a[13], dx, nx), write_f32(a[14], dw, nw);
        write_f32(a[15], db, (size_t)s.cout);
        free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
        return 0;
    }
    if ((!strcmp(op, "pool") && na == 7) || (!strcmp(op, "up") && na == 8)) {
        int64_t nc = atoll(a[0]);
        int h = atoi(a[1]), w = atoi(a[2]), pool = op[0] == 'p', mode = pool ? 0 : atoi(a[3]);
        char **f = a + (pool ? 3 : 4);
        size_t n = (size_t)nc * h * w, no = pool ? (size_t)nc * (h / 2) * (w / 2) : 4 * n;
        float *x = read_f32(f[0], n), *dy = read_f32(f[1], no), *y = zeros(no), *dx = zeros(n);
        if (pool) {
            int32_t *arg = malloc(no * sizeof *arg + 1);
            k->maxpool2_f32(x, nc, h, w, y, arg);
            k->maxpool2_bwd_f32(dy, arg, nc, h, w, dx);
            free(arg);
        } else {
            k->upsample2_f32(x, nc, h, w, mode, y);
            k->upsample2_bwd_f32(dy, nc, h, w, mode, dx);
        }
        write_f32(f[2], y, no), write_f32(f[3], dx, n);
        free(x), free(dy), free(y), free(dx);
        return 0;
    }
    if (!strcmp(op, "relu") && na == 6) {
        float slope = strtof(a[0], NULL);
        size_t n = (size_t)atoll(a[1]);
        float *x = read_f32(a[2], n), *dy = read_f32(a[3], n);
        k->leaky_relu_f32(x, n, slope);
        k->leaky_relu_bwd_f32(x, dy, n, slope);
        write_f32(a[4], x, n), write_f32(a[5], dy, n);
        free(x), free(dy);
        return 0;
    }
    if ((!strcmp(op, "sgd") && na == 8) || (!strcmp(op, "adam") && na == 9)) {
        int adam = op[0] == 'a';
        int steps = atoi(a[adam ? 4 : 3]);
        size_t n = (size_t)atoll(a[adam ? 5 : 4]);
        char **f = a + (adam ? 6 : 5);
        float *p = read_f32(f[0], n), *g = read_f32(f[1], n * (size_t)steps), *m = zeros(n), *v = zeros(n);
        for (int t = 0; t < steps; t++) {
            if (adam)
                k->adam_step(p, g + (size_t)t * n, m, v, n, t + 1, strtof(a[0], NULL), strtof(a[1], NULL),
                             strtof(a[2], NULL), strtof(a[3], NULL));
            else
                k->sgd_step(p, g + (size_t)t * n, v, n, strtof(a[0], NULL), strtof(a[1], NULL), strtof(a[2], NULL));
        }
        write_f32(f[2], p, n);
        free(p), free(g), free(m), free(v);
        return 0;
    }
    if (!strcmp(op, "mse") && na == 4) {
        size_t n = (size_t)atoll(a[0]);
        float *y = read_f32(a[1], n), *t = read_f32(a[2], n), *dy = zeros(n);
        double s = k->mse_grad_f32(y, t, n, 2.0f / (float)n, dy);
        write_f32(a[3], dy, n);
        printf("%.17g\n", s / (double)n);
        free(y), free(t), free(dy);
        return 0;
    }
    fprintf(stderr, "nn_ref: unknown command or wrong arguments\n");
    return 64;
}
