/* The CPU SIREN kernels behind the table's siren_* entries, and the pieces
 * the tests check one by one. Internal to kernels/ (and its tests): stages
 * reach these only through the dispatch table. */
#ifndef SS_KERNELS_SIREN_CPU_H
#define SS_KERNELS_SIREN_CPU_H

#include "siren.h"

/* Per-thread buffers for blocks of voxels; threads: how many threads the
 * kernels use (results are bit-identical for the same thread count). */
siren_work *siren_cpu_work_new(const siren_arch *a, int threads);
void siren_cpu_work_free(siren_work *w);
int siren_cpu_work_threads(const siren_work *w);
/* Which layer kernels the work uses: "avx512" (fused, widths a multiple of
 * 32 on CPUs with AVX-512) or "blas" (sgemm; any width, any CPU): the first
 * that runs here. The environment variable SIRENSTACK_SIREN_KERNEL=blas or
 * avx512 asks for one (falling back to sgemm where it cannot run). */
const char *siren_cpu_work_kernel(const siren_work *w);

/* Loss and its gradient (grad overwritten, siren_n_params floats) over a
 * batch; returns the loss. Activations live only for a block of voxels at a
 * time and are recomputed per step, never stored for the batch. */
double siren_cpu_loss_grad(const siren_arch *a, const float *params, const siren_batch *b, float *grad,
                           siren_work *w);
/* Network output for n voxels: those of index[], or when index is NULL the
 * n consecutive voxels from linear index start. */
void siren_cpu_eval(const siren_arch *a, const float *params, const siren_grid *g, const int64_t *index,
                    int64_t start, int64_t n, float *out, siren_work *w);

/* Adam (Kingma & Ba), as torch.optim.Adam without weight decay; t is the
 * 1-based step number. */
void adam_cpu_step(float *p, const float *g, float *m, float *v, size_t n, int64_t t, float lr, float beta1,
                   float beta2, float eps);

/* sin and cos of x together: range reduction by pi/2 in three exact parts,
 * then minimax polynomials; absolute error below 1e-6 for |x| <= 1e4
 * (tested). Vectorised. */
void sincos_cpu_f32(const float *x, float *s, float *c, size_t n);

#endif
