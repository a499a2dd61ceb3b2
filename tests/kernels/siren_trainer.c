/* Trains a small SIREN with the CPU kernels, full batch, Adam, and writes
 * everything an independent implementation needs to redo the same training:
 *   DIR/params0.f32  initial parameters (layer order W, b as in siren.h)
 *   DIR/coords.f32   n x 3 coordinates, DIR/targets.f32 n x R targets
 *   DIR/losses.f64   the loss before each of STEPS steps
 * Usage: siren_trainer DIR STEPS LOSS(mse|l1|huber|cauchy) */
#include "host.h"
#include "kernels.h"
#include "cpu/siren_cpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dump(const char *dir, const char *name, const void *p, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, bytes, f);
    return fclose(f) == 0 && w == bytes ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: siren_trainer DIR STEPS LOSS\n");
        return 64;
    }
    int steps = atoi(argv[2]);
    siren_loss kind = !strcmp(argv[3], "l1") ? SIREN_LOSS_L1 : !strcmp(argv[3], "huber") ? SIREN_LOSS_HUBER
                    : !strcmp(argv[3], "cauchy") ? SIREN_LOSS_CAUCHY : SIREN_LOSS_MSE;
    siren_arch a = {.in_dim = 3, .width = 32, .hidden = 2, .out_dim = 1, .omega_first = 32, .omega_hidden = 34};
    size_t np = siren_n_params(&a);
    float *p = malloc(np * 4), *g = malloc(np * 4), *m = calloc(np, 4), *v = calloc(np, 4);
    siren_init(&a, p, 3);
    dump(argv[1], "params0.f32", p, np * 4);
    enum { Z = 6, Y = 20, X = 18, R = 2 };
    float zc[Z];
    for (int i = 0; i < Z; i++) zc[i] = -1 + 2.0f * (float)i / (Z - 1);
    siren_grid grid = {.nz = Z, .ny = Y, .nx = X, .z = zc, .y0 = -1, .dy = 2.0f / (Y - 1), .x0 = -1, .dx = 2.0f / (X - 1)};
    int n = Z * Y * X;
    int64_t *idx = malloc(sizeof *idx * (size_t)n);
    float *coords = malloc(sizeof *coords * (size_t)n * 3), *t = malloc(sizeof *t * (size_t)n * R);
    ss_rng rng;
    rng_seed(&rng, 11);
    for (int i = 0; i < n; i++) {
        idx[i] = i;
        int iz = i / (Y * X), iy = i / X % Y, ix = i % X;
        float *c = coords + 3 * i;
        c[0] = zc[iz], c[1] = grid.y0 + grid.dy * (float)iy, c[2] = grid.x0 + grid.dx * (float)ix;
        for (int r = 0; r < R; r++)
            t[i * R + r] = (float)(0.6 * sin(2.5 * c[1]) * cos(1.7 * c[2]) + 0.3 * c[0] + 0.05 * rng_normal(&rng));
    }
    dump(argv[1], "coords.f32", coords, sizeof *coords * (size_t)n * 3);
    dump(argv[1], "targets.f32", t, sizeof *t * (size_t)n * R);
    siren_batch b = {.grid = &grid, .index = idx, .n = n, .target = t, .R = R, .loss = kind, .scale = 0.1f};
    siren_work *w = siren_cpu_work_new(&a, 2);
    double *losses = malloc(sizeof *losses * (size_t)steps);
    for (int s = 0; s < steps; s++) {
        losses[s] = siren_cpu_loss_grad(&a, p, &b, g, w);
        adam_cpu_step(p, g, m, v, np, s + 1, 1e-3f, 0.9f, 0.999f, 1e-8f);
    }
    int rc = dump(argv[1], "losses.f64", losses, sizeof *losses * (size_t)steps);
    siren_cpu_work_free(w);
    free(p), free(g), free(m), free(v), free(idx), free(coords), free(t), free(losses);
    return rc ? 74 : 0;
}
