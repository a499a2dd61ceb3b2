/* The CPU kernels behind kernels_cpu(), and helpers they share. Internal to
 * kernels/: stages reach these only through the dispatch table. */
#ifndef SS_KERNELS_CPU_H
#define SS_KERNELS_CPU_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "host.h"
#include "kernels.h"

/* Below this many elements of work a kernel runs on the calling thread:
 * waking the OpenMP team costs more than the loop. */
#define SS_PAR_MIN ((size_t)1 << 15)

void cpu_fuse_mean_f32(const float *rep, int R, size_t n, float *out);
void cpu_fuse_median_f32(const float *rep, int R, size_t n, float *out);
void cpu_affine_f32(float *x, size_t n, double lo, double scale, int clip);
size_t cpu_count_nonfinite_f32(const float *x, size_t n);
void cpu_minmax_f32(const float *x, size_t n, float *mn, float *mx);
/* The median of v[0..R-1] (mean of the middle two for even R), reordering v;
 * the selection the fusion median and the median filter share (fuse.c). */
float cpu_median_inplace(float *v, int R);
void cpu_median_filter_plane_f32(const float *const *planes, int sz, int64_t ny, int64_t nx, int sy, int sx,
                                 float *out);
void cpu_gauss_blur3d_f32(float *vol, int64_t nz, int64_t ny, int64_t nx,
                          double sz, double sy, double sx);
rl_state *cpu_rl_new(int64_t nz, int64_t ny, int64_t nx, const float *psf, int64_t pz, int64_t py, int64_t px);
void cpu_rl_free(rl_state *s);
int cpu_rl_step_f32(rl_state *s, const float *data, float *u, double tv_lambda, double tv_eps, float floor,
                    const int64_t lo[3], const int64_t hi[3], double sums[2]);
size_t cpu_rl_bytes(int64_t nz, int64_t ny, int64_t nx, int tv);

/* The in-volume neighbours of voxel i (connectivity 6 or 26) in raster
 * order of their offsets, so those before i come first; returns how many
 * (label.c). */
int cpu_neighbours(int64_t i, int64_t nz, int64_t ny, int64_t nx, int connectivity, int64_t out[26]);

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Exponent all ones: +-Inf or NaN. */
static inline int f32_bits_nonfinite(uint32_t u)
{
    return (u & 0x7f800000u) == 0x7f800000u;
}

/* Order-preserving key: unsigned comparison of keys is the float order
 * (with -0 just below +0), so min/max and radix selection can work on
 * integers, where they are exact and independent of evaluation order.
 * Positive floats get the sign bit set; negative ones are inverted so that a
 * larger magnitude sorts lower. */
static inline uint32_t f32_key(uint32_t bits)
{
    return bits ^ ((0u - (bits >> 31)) | 0x80000000u);
}

static inline uint32_t f32_unkey(uint32_t key)
{
    return key ^ ((0u - ((key >> 31) ^ 1u)) | 0x80000000u);
}

#endif
