/* AVX-512 layer kernels of the CPU SIREN (see siren_avx512.h).
 *
 * Every product is cut into tiles of MR rows x 32 columns held in 2*MR zmm
 * accumulators. The inner step loads one 32-wide row of the right-hand
 * matrix (two zmm) and broadcasts one element of each of the MR left-hand
 * rows: 2*MR FMAs for MR + 2 loads, all from L1/L2 since a block's operands
 * and the weights (64 KiB at width 128) stay in cache. The right-hand rows
 * are read in place: the weights are stored once per call already in the
 * orientation each product walks (transposed for the forward pass), and in
 * the weight gradient both operands are the block's own rows, so nothing is
 * packed per block. The epilogues work on the accumulators in registers:
 * bias, sin and cos in the forward pass; the product with the cos of the
 * layer below and the bias gradient's column sums in the backward pass. */
#pragma GCC target("avx512f,avx512dq,fma")
#include "siren_avx512.h"

#include <immintrin.h>

#define NR 32
#define MR 12 /* rows of a tile over voxels */
#define MRW 8 /* rows of a weight-gradient tile (divides 32) */

#define AI static inline __attribute__((always_inline))

int siren_avx512_usable(int width)
{
    __builtin_cpu_init();
    return width > 0 && width % NR == 0 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

/* ---- sin and cos: the scalar kernel's algorithm (siren.c), 16 lanes ---- */

AI void sincos16(__m512 v, __m512 *s, __m512 *c)
{
    const __m512 twoopi = _mm512_set1_ps(0.63661977236758134f);
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(v, twoopi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.5703125f), v);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(4.837512969970703125e-4f), r);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(7.549789954891882e-8f), r);
    __m512 r2 = _mm512_mul_ps(r, r);
    __m512 sp = _mm512_fmadd_ps(r2, _mm512_set1_ps(-1.9515295891e-4f), _mm512_set1_ps(8.3321608736e-3f));
    sp = _mm512_fmadd_ps(r2, sp, _mm512_set1_ps(-1.6666654611e-1f));
    sp = _mm512_fmadd_ps(_mm512_mul_ps(r, r2), sp, r);
    __m512 cp = _mm512_fmadd_ps(r2, _mm512_set1_ps(2.443315711809948e-5f), _mm512_set1_ps(-1.388731625493765e-3f));
    cp = _mm512_fmadd_ps(r2, cp, _mm512_set1_ps(4.166664568298827e-2f));
    cp = _mm512_fmadd_ps(_mm512_mul_ps(r2, r2), cp, _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), r2, _mm512_set1_ps(1.0f)));
    __m512i q = _mm512_cvtps_epi32(k);
    __mmask16 odd = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
    __m512 sv = _mm512_mask_blend_ps(odd, sp, cp), cv = _mm512_mask_blend_ps(odd, cp, sp);
    __m512i sbit = _mm512_slli_epi32(_mm512_and_si512(q, _mm512_set1_epi32(2)), 30);
    __m512i cbit = _mm512_slli_epi32(_mm512_and_si512(_mm512_add_epi32(q, _mm512_set1_epi32(1)), _mm512_set1_epi32(2)), 30);
    *s = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(sv), sbit));
    *c = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(cv), cbit));
}

void siren_avx512_sincos(const float *x, float *s, float *c, size_t n)
{
    size_t i = 0;
    __m512 sv, cv;
    for (; i + 16 <= n; i += 16) {
        sincos16(_mm512_loadu_ps(x + i), &sv, &cv);
        _mm512_storeu_ps(s + i, sv);
        _mm512_storeu_ps(c + i, cv);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        sincos16(_mm512_maskz_loadu_ps(m, x + i), &sv, &cv);
        _mm512_mask_storeu_ps(s + i, m, sv);
        _mm512_mask_storeu_ps(c + i, m, cv);
    }
}

/* ---- the tile: acc[r] += sum_k A(r, k) * Bm[k, 0..31] ------------------
 * A(r, k) = a[r * ars + k * aks]; Bm row k at b + k * ldb. */

AI void tile(int mr, int K, const float *a, ptrdiff_t ars, ptrdiff_t aks, const float *b, ptrdiff_t ldb,
             __m512 (*acc)[2])
{
    for (int k = 0; k < K; k++) {
        const float *bk = b + (ptrdiff_t)k * ldb, *ak = a + (ptrdiff_t)k * aks;
        __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16);
#pragma GCC unroll 16
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(ak[r * ars]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
}

AI void zero(int mr, __m512 (*acc)[2])
{
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
}

/* ---- forward ---------------------------------------------------------------- */

AI void forward_tile(int mr, const float *in, int W, const float *wt, const float *bias, float *h, float *c)
{
    __m512 acc[MR][2];
    zero(mr, acc);
    tile(mr, W, in, W, 1, wt, W, acc);
    __m512 b0 = _mm512_loadu_ps(bias), b1 = _mm512_loadu_ps(bias + 16);
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) {
        __m512 s, co;
        sincos16(_mm512_add_ps(acc[r][0], b0), &s, &co);
        _mm512_storeu_ps(h + (ptrdiff_t)r * W, s);
        _mm512_storeu_ps(c + (ptrdiff_t)r * W, co);
        sincos16(_mm512_add_ps(acc[r][1], b1), &s, &co);
        _mm512_storeu_ps(h + (ptrdiff_t)r * W + 16, s);
        _mm512_storeu_ps(c + (ptrdiff_t)r * W + 16, co);
    }
}

#define TAIL_SWITCH(rows, CALL)                                                                                      \
    switch (rows) {                                                                                                  \
    case 1: CALL(1); break;                                                                                          \
    case 2: CALL(2); break;                                                                                          \
    case 3: CALL(3); break;                                                                                          \
    case 4: CALL(4); break;                                                                                          \
    case 5: CALL(5); break;                                                                                          \
    case 6: CALL(6); break;                                                                                          \
    case 7: CALL(7); break;                                                                                          \
    case 8: CALL(8); break;                                                                                          \
    case 9: CALL(9); break;                                                                                          \
    case 10: CALL(10); break;                                                                                        \
    case 11: CALL(11); break;                                                                                        \
    default: break;                                                                                                  \
    }

void siren_avx512_forward(const float *in, int64_t B, int W, const float *wt, const float *bias, float *h, float *c)
{
    int64_t i = 0;
    for (; i + MR <= B; i += MR)
        for (int j = 0; j < W; j += NR)
            forward_tile(MR, in + i * W, W, wt + j, bias + j, h + i * W + j, c + i * W + j);
    int rest = (int)(B - i);
    for (int j = 0; j < W && rest; j += NR) {
#define FWD(m) forward_tile(m, in + i * W, W, wt + j, bias + j, h + i * W + j, c + i * W + j)
        TAIL_SWITCH(rest, FWD)
#undef FWD
    }
}

/* ---- backward: input gradient ---------------------------------------------- */

AI void back_input_tile(int mr, const float *gz, int W, const float *ws, const float *c, float *out, float *gb)
{
    __m512 acc[MR][2];
    zero(mr, acc);
    tile(mr, W, gz, W, 1, ws, W, acc);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < mr; r++) {
        __m512 v0 = _mm512_mul_ps(acc[r][0], _mm512_loadu_ps(c + (ptrdiff_t)r * W));
        __m512 v1 = _mm512_mul_ps(acc[r][1], _mm512_loadu_ps(c + (ptrdiff_t)r * W + 16));
        _mm512_storeu_ps(out + (ptrdiff_t)r * W, v0);
        _mm512_storeu_ps(out + (ptrdiff_t)r * W + 16, v1);
        s0 = _mm512_add_ps(s0, v0);
        s1 = _mm512_add_ps(s1, v1);
    }
    _mm512_storeu_ps(gb, _mm512_add_ps(_mm512_loadu_ps(gb), s0));
    _mm512_storeu_ps(gb + 16, _mm512_add_ps(_mm512_loadu_ps(gb + 16), s1));
}

void siren_avx512_back_input(const float *gz, int64_t B, int W, const float *ws, const float *c, float *out,
                             float *gb)
{
    int64_t i = 0;
    for (; i + MR <= B; i += MR)
        for (int j = 0; j < W; j += NR)
            back_input_tile(MR, gz + i * W, W, ws + j, c + i * W + j, out + i * W + j, gb + j);
    int rest = (int)(B - i);
    for (int j = 0; j < W && rest; j += NR) {
#define BIN(m) back_input_tile(m, gz + i * W, W, ws + j, c + i * W + j, out + i * W + j, gb + j)
        TAIL_SWITCH(rest, BIN)
#undef BIN
    }
}

/* ---- backward: weight gradient --------------------------------------------- */

/* Rows o0..o0+MR-1 of gW, columns j..j+31: A(r, i) = gz[i * W + o0 + r],
 * Bm row i = in[i * W + j ..]. */
void siren_avx512_weight_grad(const float *gz, const float *in, int64_t B, int W, float *gw)
{
    for (int o = 0; o < W; o += MRW)
        for (int j = 0; j < W; j += NR) {
            __m512 acc[MRW][2];
            float *g = gw + (ptrdiff_t)o * W + j;
#pragma GCC unroll 16
            for (int r = 0; r < MRW; r++) {
                acc[r][0] = _mm512_loadu_ps(g + (ptrdiff_t)r * W);
                acc[r][1] = _mm512_loadu_ps(g + (ptrdiff_t)r * W + 16);
            }
            tile(MRW, (int)B, gz + o, 1, W, in + j, W, acc);
#pragma GCC unroll 16
            for (int r = 0; r < MRW; r++) {
                _mm512_storeu_ps(g + (ptrdiff_t)r * W, acc[r][0]);
                _mm512_storeu_ps(g + (ptrdiff_t)r * W + 16, acc[r][1]);
            }
        }
}
