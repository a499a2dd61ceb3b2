/* Hand-written SIMD layer kernels of the CPU SIREN, one set per instruction
 * set (siren_avx512.c; the tile code is siren_tiles.inc, written over a
 * vector type so that another set is a page of macros). An AVX2 set built
 * the same way (tiles of 6 rows x 16 columns in ymm registers) measured no
 * faster here than OpenBLAS's AVX2 sgemm (BENCHMARKS.md), so CPUs without
 * AVX-512 take the sgemm path.
 *
 * Each kernel is one width x width product over a block of B voxels with its
 * neighbouring elementwise work fused into the tile's epilogue, so no
 * separate pass over the block is made and no operand is packed (the weights
 * are stored once per call in the layout each product reads). All matrices are row-major, W x W or B x W, W being the width (a
 * multiple of the set's tile width), with rows ld floats apart (ld >= W),
 * except gW, whose rows are W apart. A row stride whose byte size is an odd
 * number of cache lines spreads a column of the matrix over all of L1's sets;
 * a power of two (width 128: 512 bytes) would fold it onto a few of them.
 *
 *   forward:     z = in Wt + bias (in: B x W, Wt: W x W, the layer's
 *                weights transposed); h = sin z, c = cos z.
 *   back_input:  out = (gz Ws) * c elementwise (gz: B x W, Ws: W x W the
 *                layer's weights, c: B x W cos of the layer below);
 *                gb += column sums of out (the layer below's bias gradient).
 *   weight_grad: gW += gz^T in (gW: W x W, summed over the B voxels).
 *   sincos:      sin and cos of n floats, the polynomials of the epilogue.
 *
 * Summation orders are fixed by B and W alone, so results are reproducible. */
#ifndef SS_SIREN_SIMD_H
#define SS_SIREN_SIMD_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name; /* "avx512" */
    int tile_cols;    /* W must be a multiple of this */
    int (*cpu_ok)(void);
    void (*forward)(const float *in, int64_t B, int W, int ld, const float *wt, const float *bias, float *h, float *c);
    void (*back_input)(const float *gz, int64_t B, int W, int ld, const float *ws, const float *c, float *out,
                       float *gb);
    void (*weight_grad)(const float *gz, const float *in, int64_t B, int W, int ld, float *gw);
    void (*sincos)(const float *x, float *s, float *c, size_t n);
} siren_simd;

extern const siren_simd siren_simd_avx512;

/* The fastest set this CPU runs that takes this width, or the one named
 * (NULL when that one cannot run here); NULL: use the sgemm path. */
const siren_simd *siren_simd_pick(int width, const char *name);

#endif
