/* U-Net throughput on the CPU, for scripts/bench (peer: bench_unet_torch.py).
 *
 *   bench_unet train DEPTH WIDTH PATCH BATCH SECONDS    Adam steps on random data
 *   bench_unet infer DEPTH WIDTH TILE OVERLAP SECONDS   one tile's forward pass
 *   bench_unet planes DEPTH WIDTH Y X Z TILE            tiled inference of Z planes
 *   bench_unet digest DEPTH WIDTH PATCH BATCH STEPS     a hash of the weights after STEPS
 *                                                       Adam steps (runs with one thread
 *                                                       count must print the same)
 *   bench_unet selftest                                 a tiny run of each (TAP)
 * Prints key=value lines: patches_per_s, mpix_per_s (core pixels of a tile,
 * or of the planes), peak_rss_mb (the process's high-water mark). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cnn/cnn.h"
#include "tap.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double peak_rss_mb(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / 1024.0;
}

/* SIRENSTACK_BENCH_BF16=1: the convolutions' bf16 products */
static unsigned bf16;

static net_arch unet(int depth, int width)
{
    return (net_arch){.kind = NET_UNET, .in_ch = 1, .out_ch = 1, .kernel = 3, .depth = depth, .width = width,
                      .max_width = 512, .convs = 2, .up = NET_UP_TRANSPOSED};
}

static float *noise(size_t n, uint64_t seed)
{
    ss_rng r;
    rng_seed(&r, seed);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++) x[i] = (float)rng_uniform(&r);
    return x;
}

/* Trains for `seconds` (at least 2 steps), or exactly max_steps steps when
 * that is positive; the weights' FNV-1a hash goes to *hash. */
static double train(int depth, int width, int P, int B, double seconds, int max_steps, int *steps_out,
                    uint64_t *hash)
{
    net_arch a = unet(depth, width);
    const kernels *k = kernels_cpu();
    net *t = net_new(k, &a, B, P, P, NET_TRAIN | bf16);
    size_t np = net_n_params(&a), n = (size_t)B * P * P;
    float *p = malloc(np * sizeof *p), *g = malloc(np * sizeof *g), *m = calloc(np, sizeof *m),
          *v = calloc(np, sizeof *v), *x = noise(n, 1), *y = noise(n, 2);
    if (!t || !p || !g || !m || !v || !x || !y) return -1;
    net_init(&a, p, 3);
    int steps = 0;
    double t0 = 0;
    for (; max_steps > 0 ? steps < max_steps : steps < 2 || now() - t0 < seconds; steps++) {
        if (steps == 1) t0 = now(); /* the first step warms up */
        memcpy(net_input(t), x, n * sizeof *x);
        net_forward(t, p, 1, (uint64_t)steps);
        net_mse_backward(t, p, y, g);
        k->adam_step(p, g, m, v, np, steps + 1, 1e-3f, 0.9f, 0.999f, 1e-8f);
    }
    double rate = (double)(steps - 1) * B / (now() - t0);
    *steps_out = steps;
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *bytes = (const unsigned char *)p;
    for (size_t i = 0; i < np * sizeof *p; i++) h = (h ^ bytes[i]) * 0x100000001b3ull;
    *hash = h;
    net_free(t);
    free(p), free(g), free(m), free(v), free(x), free(y);
    return rate;
}

static double infer(int depth, int width, int tile, int overlap, double seconds)
{
    net_arch a = unet(depth, width);
    int side = tile + 2 * overlap;
    net *t = net_new(kernels_cpu(), &a, 1, side, side, bf16);
    size_t np = net_n_params(&a);
    float *p = malloc(np * sizeof *p), *x = noise((size_t)side * side, 4);
    if (!t || !p || !x) return -1;
    net_init(&a, p, 3);
    memcpy(net_input(t), x, (size_t)side * side * sizeof *x);
    net_forward(t, p, 0, 0);
    int runs = 0;
    double t0 = now();
    for (; runs < 1 || now() - t0 < seconds; runs++) net_forward(t, p, 0, 0);
    double rate = (double)runs * tile * tile / (now() - t0) / 1e6;
    net_free(t);
    free(p), free(x);
    return rate;
}

static double planes(int depth, int width, int64_t Y, int64_t X, int Z, int tile)
{
    net_arch a = unet(depth, width);
    cnn_tiler *tl = cnn_tiler_new(kernels_cpu(), &a, Y, X, tile, -1, bf16 != 0);
    size_t np = net_n_params(&a), plane = (size_t)(Y * X);
    float *p = malloc(np * sizeof *p), *in = noise(plane, 5), *out = malloc(plane * sizeof *out);
    if (!tl || !p || !in || !out) return -1;
    net_init(&a, p, 3);
    double t0 = now();
    for (int z = 0; z < Z; z++) cnn_tiler_run(tl, p, in, out);
    double rate = (double)Z * (double)plane / (now() - t0) / 1e6;
    cnn_tiler_free(tl);
    free(p), free(in), free(out);
    return rate;
}

int main(int argc, char **argv)
{
    openblas_set_num_threads(1);
    const char *b = getenv("SIRENSTACK_BENCH_BF16");
    bf16 = b && !strcmp(b, "1") ? NET_BF16 : 0;
    if (argc >= 2 && !strcmp(argv[1], "selftest")) {
        int steps;
        uint64_t h;
        double r = train(2, 4, 16, 2, 0.05, 0, &steps, &h);
        CHECK(r > 0 && steps >= 2, "train: %d steps, %.1f patches/s", steps, r);
        CHECK(infer(2, 4, 16, 8, 0.05) > 0, "infer: one tile");
        CHECK(planes(2, 4, 40, 33, 2, 16) > 0, "planes: tiled inference of 2 planes of 40 x 33");
        return tap_done();
    }
    if (argc == 7 && !strcmp(argv[1], "train")) {
        int steps;
        uint64_t h;
        double r = train(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atof(argv[6]), 0, &steps, &h);
        printf("patches_per_s=%.3f steps=%d peak_rss_mb=%.0f\n", r, steps, peak_rss_mb());
        return r > 0 ? 0 : 1;
    }
    if (argc == 7 && !strcmp(argv[1], "digest")) {
        int steps, n = atoi(argv[6]);
        uint64_t h;
        double r = train(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), 0, n < 2 ? 2 : n, &steps, &h);
        printf("weights_fnv1a=%016llx steps=%d\n", (unsigned long long)h, steps);
        return r > 0 ? 0 : 1;
    }
    if (argc == 7 && !strcmp(argv[1], "infer")) {
        double r = infer(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atof(argv[6]));
        printf("mpix_per_s=%.4f peak_rss_mb=%.0f\n", r, peak_rss_mb());
        return r > 0 ? 0 : 1;
    }
    if (argc == 8 && !strcmp(argv[1], "planes")) {
        double r = planes(atoi(argv[2]), atoi(argv[3]), atoll(argv[4]), atoll(argv[5]), atoi(argv[6]), atoi(argv[7]));
        printf("mpix_per_s=%.4f peak_rss_mb=%.0f\n", r, peak_rss_mb());
        return r > 0 ? 0 : 1;
    }
    fprintf(stderr, "usage: bench_unet train|infer|planes|digest|selftest ...\n");
    return 64;
}
