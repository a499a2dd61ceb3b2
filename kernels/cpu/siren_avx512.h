/* The AVX-512 layer kernels of the CPU SIREN (siren_avx512.c), for widths
 * that are a multiple of 32. Each is one width x width product over a block
 * of B voxels with its neighbouring elementwise work fused into the tile's
 * epilogue, so no separate pass over the block is made and no operand is
 * packed (the weights are stored once per call in the layout each product
 * reads). All matrices are row-major; W is the width.
 *
 *   forward:     z = in Wt + bias (in: B x W, Wt: W x W, the layer's
 *                weights transposed); h = sin z, c = cos z.
 *   back_input:  out = (gz Ws) * c elementwise (gz: B x W, Ws: W x W the
 *                layer's weights, c: B x W cos of the layer below);
 *                gb += column sums of out (the layer below's bias gradient).
 *   weight_grad: gW += gz^T in (gW: W x W, summed over the B voxels).
 *
 * Summation orders are fixed by B and W alone, so results are reproducible. */
#ifndef SS_SIREN_AVX512_H
#define SS_SIREN_AVX512_H
#include <stddef.h>
#include <stdint.h>

/* Non-zero when this CPU runs AVX-512F and the kernels take this width. */
int siren_avx512_usable(int width);
void siren_avx512_forward(const float *in, int64_t B, int W, const float *wt, const float *bias, float *h, float *c);
void siren_avx512_back_input(const float *gz, int64_t B, int W, const float *ws, const float *c, float *out,
                             float *gb);
void siren_avx512_weight_grad(const float *gz, const float *in, int64_t B, int W, float *gw);
/* sin and cos of n floats, the same polynomials as the fused epilogue. */
void siren_avx512_sincos(const float *x, float *s, float *c, size_t n);

#endif
