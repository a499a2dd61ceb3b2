/* Numeric kernels behind one dispatch table.
 *
 * kernels/cpu/ is the reference and always built; kernels/cuda/ is built where
 * nvcc is found and fills the same table. Stages call kernels only through a
 * `const kernels *` they get from ctx_kernels(), so the device is chosen in
 * one place. Kernels depend on nothing else in the project and never fail
 * except where a return value says so. Float arrays are contiguous,
 * C order. */
#ifndef SS_KERNELS_H
#define SS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct kernels {
    const char *name; /* "cpu" or "cuda" */

    /* Fusion of R repeats: rep holds R consecutive arrays of n floats.
     * Non-finite inputs propagate (the stages reject them earlier). */
    void (*fuse_mean_f32)(const float *rep, int R, size_t n, float *out);
    /* Median over R; for even R the mean of the two middle values (numpy). */
    void (*fuse_median_f32)(const float *rep, int R, size_t n, float *out);

    /* x = (x - lo) * scale, then clamped to [0, 1] when clip. */
    void (*affine_f32)(float *x, size_t n, float lo, float scale, int clip);

    /* Counts NaN and +-Inf values. */
    size_t (*count_nonfinite_f32)(const float *x, size_t n);
    /* Minimum and maximum (of finite values; both NaN if none). */
    void (*minmax_f32)(const float *x, size_t n, float *mn, float *mx);

    /* In-place separable Gaussian blur of a ZYX volume, sigmas in voxels
     * (0: no blur along that axis), edges by reflection (scipy 'reflect'),
     * kernel truncated at 4 sigma. */
    void (*gauss_blur3d_f32)(float *vol, int64_t nz, int64_t ny, int64_t nx,
                             double sz, double sy, double sx);
} kernels;

const kernels *kernels_cpu(void);
/* The CUDA table, or NULL when not built or no device is usable. */
const kernels *kernels_cuda(void);

/* ---- exact and streaming percentiles (CPU, multi-pass over a stream) ---- */

/* Percentiles with numpy's default ('linear') interpolation between order
 * statistics, over a stream of float values fed in any number of pieces.
 *   exact:     the result equals numpy.percentile; floats take 2 passes over
 *              the data (radix selection on the value bits), memory O(1 MiB).
 *   streaming: 1 pass; each result is within a relative error of 2^-11 of
 *              an order statistic adjacent to the exact one (documented bound:
 *              |est - exact| <= 2^-11 * max(|lo|,|hi|) of the bracketing values).
 * Usage:
 *   pct_state *p = pct_new(nq, q, exact);
 *   while (pct_need_pass(p)) { for each piece: pct_feed(p, x, n); pct_end_pass(p); }
 *   pct_result(p, i);
 * Non-finite values must be rejected before feeding. */
typedef struct pct_state pct_state;
pct_state *pct_new(int nq, const double *q_percent, int exact);
void pct_free(pct_state *p);
int pct_need_pass(const pct_state *p);
void pct_feed(pct_state *p, const float *x, size_t n);
void pct_end_pass(pct_state *p);
double pct_result(const pct_state *p, int i);
uint64_t pct_count(const pct_state *p);

/* ---- random numbers (deterministic, serialisable state) ---- */

/* xoshiro256** seeded through splitmix64. The state is plain data so that
 * checkpoints can save it. */
typedef struct {
    uint64_t s[4];
} ss_rng;
void rng_seed(ss_rng *r, uint64_t seed);
uint64_t rng_next(ss_rng *r);
double rng_uniform(ss_rng *r);       /* [0, 1) */
double rng_normal(ss_rng *r);        /* standard normal */
uint64_t rng_poisson(ss_rng *r, double lambda);
/* An independent stream: rng_seed(out, hash(seed, stream)). */
void rng_split(ss_rng *out, uint64_t seed, uint64_t stream);

#endif
