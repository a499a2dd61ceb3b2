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
    /* Minimum and maximum (of finite values; both NaN if none). -0 counts
     * as below +0, so the result does not depend on the thread count. */
    void (*minmax_f32)(const float *x, size_t n, float *mn, float *mx);

    /* In-place separable Gaussian blur of a ZYX volume, sigmas in voxels
     * (0: no blur along that axis), edges by reflection (scipy 'reflect'),
     * kernel truncated at 4 sigma. Matches scipy.ndimage.gaussian_filter(
     * vol, (sz, sy, sx), mode='reflect', truncate=4.0) to float rounding:
     * radius int(4 sigma + 0.5), sigma <= 1e-15 (or NaN) skips the axis,
     * axes shorter than the kernel reflect repeatedly. Sigmas above 2^28 act
     * as 2^28. Uses one line buffer per thread; if even those cannot be
     * allocated it aborts, having no error return. */
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
 *              the data (radix selection on the value bits), memory 512 KiB
 *              plus 256 KiB per distinct 16-bit key bin holding a needed
 *              order statistic (at most 8.5 MiB for 16 quantiles, usually
 *              about 1 MiB). One deliberate difference: where the float32
 *              difference of the two bracketing values overflows (numpy then
 *              returns Inf or NaN), this takes the difference in double.
 *   streaming: 1 pass, 8 MiB (a 2^20-bin histogram of the top key bits).
 *              Each order statistic is replaced by its value truncated toward
 *              zero to 11 mantissa bits (exact for integers below 4096), so
 *              |est - exact| <= 2^-11 * max(|lo|,|hi|) + 2^-137, where lo, hi
 *              are the two order statistics numpy interpolates between (the
 *              absolute term only matters for subnormal values).
 * Usage:
 *   pct_state *p = pct_new(nq, q, exact);
 *   while (pct_need_pass(p)) { for each piece: pct_feed(p, x, n); pct_end_pass(p); }
 *   pct_result(p, i);
 * Non-finite values must be rejected before feeding. pct_new returns NULL
 * when nq is not 1..16, a q is outside [0, 100] or memory runs out.
 * pct_result is NaN for N == 0, before the last pass has ended, and when the
 * second pass saw a different number of values than the first or its memory
 * ran out. pct_count is the number of values fed in the first pass. */
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
double rng_normal(ss_rng *r);        /* standard normal (polar method) */
/* Exact: Knuth's product of uniforms below lambda 30, PTRS (Hormann 1993)
 * above. 0 for lambda <= 0 or NaN. */
uint64_t rng_poisson(ss_rng *r, double lambda);
/* An independent stream: rng_seed(out, hash(seed, stream)). */
void rng_split(ss_rng *out, uint64_t seed, uint64_t stream);

#endif
