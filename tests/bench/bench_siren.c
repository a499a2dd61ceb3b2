/* Training throughput of the paper's SIREN (3 hidden layers of 128, omega
 * 32/34) on the CPU kernels, in voxel-steps per second (voxels whose loss and
 * gradient one step computes), and the machine's single-precision GEMM peak
 * measured in the same process, to report the fraction reached. Counts
 * 2e5 FLOP per voxel-step, as the target does.
 * Usage: bench_siren [VOXELS [STEPS [THREADS]]] */
#include "host.h"
#include "kernels.h"
#include "cpu/siren_cpu.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Peak: threads x single-threaded sgemm on 1024^3, as the training loop uses BLAS. */
static double sgemm_peak(int threads)
{
    int n = 1024;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = 0, t1 = 0;
#pragma omp parallel num_threads(threads)
        {
            float *A = malloc(sizeof(float) * n * n), *B = malloc(sizeof(float) * n * n), *C = malloc(sizeof(float) * n * n);
            for (int i = 0; i < n * n; i++) A[i] = (float)(i % 7) * 0.1f, B[i] = (float)(i % 5) * 0.1f;
#pragma omp barrier
#pragma omp master
            t0 = now();
            for (int k = 0; k < 2; k++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, B, n, 0, C, n);
#pragma omp barrier
#pragma omp master
            t1 = now();
            free(A), free(B), free(C);
        }
        double flops = 2.0 * n * n * (double)n * 2 * threads / (t1 - t0);
        if (flops > best) best = flops;
    }
    return best;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 65536;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    int threads = argc > 3 ? atoi(argv[3]) : omp_get_max_threads();
    openblas_set_num_threads(1);
    siren_arch a = {.in_dim = 3, .width = 128, .hidden = 3, .out_dim = 1, .omega_first = 32, .omega_hidden = 34};
    size_t np = siren_n_params(&a);
    float *p = malloc(np * 4), *g = malloc(np * 4), *m = calloc(np, 4), *v = calloc(np, 4);
    siren_init(&a, p, 1);
    int64_t Z = 16, Y = 256, X = (n + Z * Y - 1) / (Z * Y);
    float *zc = malloc(sizeof *zc * (size_t)Z);
    for (int i = 0; i < Z; i++) zc[i] = -1 + 2.0f * (float)i / (float)(Z - 1);
    siren_grid grid = {.nz = Z, .ny = Y, .nx = X, .z = zc, .y0 = -1, .dy = 2.0f / (float)(Y - 1), .x0 = -1,
                       .dx = X > 1 ? 2.0f / (float)(X - 1) : 0};
    int64_t *idx = malloc(sizeof *idx * (size_t)n);
    float *t = malloc(sizeof *t * (size_t)n);
    for (int64_t i = 0; i < n; i++) idx[i] = i, t[i] = (float)(i % 97) / 97.0f;
    siren_batch b = {.grid = &grid, .index = idx, .n = n, .target = t, .R = 1, .loss = SIREN_LOSS_MSE, .scale = 1};
    siren_work *w = siren_cpu_work_new(&a, threads);
    siren_cpu_loss_grad(&a, p, &b, g, w); /* warm up */
    double t0 = now();
    for (int s = 0; s < steps; s++) {
        siren_cpu_loss_grad(&a, p, &b, g, w);
        adam_cpu_step(p, g, m, v, np, s + 1, 1e-3f, 0.9f, 0.999f, 1e-8f);
    }
    double el = now() - t0;
    double rate = (double)n * steps / el;
    double peak = sgemm_peak(threads);
    printf("voxel_steps_per_s=%.0f kernel=%s threads=%d voxels=%lld steps=%d seconds=%.3f sgemm_peak_gflops=%.1f "
           "fraction=%.3f\n",
           rate, siren_cpu_work_kernel(w), threads, (long long)n, steps, el, peak / 1e9, rate * 2e5 / peak);
    siren_cpu_work_free(w);
    free(p), free(g), free(m), free(v), free(zc), free(idx), free(t);
    return 0;
}
