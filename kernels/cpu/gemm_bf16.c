/* Matrix products in bfloat16 with float32 accumulation (AVX512-BF16's
 * vdpbf16ps): C = A B (+ C), A M x K and B K x N given in float, rounded to
 * bfloat16 (round to nearest even) while packing. The products of pairs of
 * bfloat16 values are exact in float32; the sums are float32, two terms at a
 * time, in a fixed order, so the result does not depend on the thread count.
 * Relative error per element: about 2^-8 of the sum of |a b| (the rounding
 * of each factor to 8 significant bits). */
#ifndef __clang__
#pragma GCC target("avx512f,avx512bw,avx512bf16")
#endif
#include "gemm_bf16.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512bf16"))), apply_to = function)
#endif

int bf16_gemm_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16");
}

static inline uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return (uint16_t)((u >> 16) | ((u & 0xffff) ? 0x40 : 0)); /* Inf, NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Pairs along k: word (m, kp) = (a[m][2kp], a[m][2kp + 1]), the second 0 past K. */
void bf16_pack_rows(const float *a, int64_t M, int64_t K, int64_t lda, uint32_t *out)
{
    int64_t KP = (K + 1) / 2;
    for (int64_t m = 0; m < M; m++) {
        const float *r = a + m * lda;
        uint32_t *o = out + m * KP;
        for (int64_t kp = 0; kp < KP; kp++) {
            uint16_t lo = to_bf16(r[2 * kp]), hi = 2 * kp + 1 < K ? to_bf16(r[2 * kp + 1]) : 0;
            o[kp] = (uint32_t)lo | (uint32_t)hi << 16;
        }
    }
}

/* B (K x N, row-major, ldb; transposed: N x K, b[n][k] at n ldb + k) as
 * panels of 32 columns, each ceil(K/2) x 32 words (kp, n) = (b[2kp][n],
 * b[2kp + 1][n]), columns past N zero: a tile reads its panel in order. */
void bf16_pack_cols(const float *b, int64_t K, int64_t N, int64_t ldb, int transposed, uint32_t *out)
{
    int64_t KP = (K + 1) / 2, panels = (N + 31) / 32;
    for (int64_t pn = 0; pn < panels; pn++) {
        uint32_t *o = out + pn * KP * 32;
        int64_t n0 = pn * 32, nr = N - n0 < 32 ? N - n0 : 32;
        for (int64_t kp = 0; kp < KP; kp++) {
            int has2 = 2 * kp + 1 < K;
            uint32_t *ok = o + kp * 32;
            if (!transposed) {
                const float *r0 = b + 2 * kp * ldb + n0, *r1 = r0 + ldb;
                for (int64_t n = 0; n < nr; n++)
                    ok[n] = (uint32_t)to_bf16(r0[n]) | (uint32_t)(has2 ? to_bf16(r1[n]) : 0) << 16;
            } else {
                for (int64_t n = 0; n < nr; n++) {
                    const float *r = b + (n0 + n) * ldb + 2 * kp;
                    ok[n] = (uint32_t)to_bf16(r[0]) | (uint32_t)(has2 ? to_bf16(r[1]) : 0) << 16;
                }
            }
            for (int64_t n = nr; n < 32; n++) ok[n] = 0;
        }
    }
}

size_t bf16_pack_cols_len(int64_t K, int64_t N)
{
    return (size_t)(((K + 1) / 2) * ((N + 31) / 32) * 32);
}

#define MR 6

static inline void store_rows(__m512 acc[][2], int mr, float *C, int64_t ldc, int nr, int accumulate)
{
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    for (int r = 0; r < mr; r++) {
        float *c = C + (int64_t)r * ldc;
        __m512 v0 = acc[r][0], v1 = acc[r][1];
        if (accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}

/* MR rows of C against one panel: 12 accumulators held in registers. */
static void tile_full(const uint32_t *Ap, int64_t KP, const uint32_t *panel, float *C, int64_t ldc, int nr,
                      int accumulate)
{
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const uint32_t *a0 = Ap, *a1 = Ap + KP, *a2 = Ap + 2 * KP, *a3 = Ap + 3 * KP, *a4 = Ap + 4 * KP,
                   *a5 = Ap + 5 * KP;
    for (int64_t kp = 0; kp < KP; kp++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + kp * 32);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + kp * 32 + 16);
#define ROW(r, ap)                                                                                                 \
    do {                                                                                                           \
        __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[kp]);                                                     \
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);                                                            \
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);                                                            \
    } while (0)
        ROW(0, a0);
        ROW(1, a1);
        ROW(2, a2);
        ROW(3, a3);
        ROW(4, a4);
        ROW(5, a5);
#undef ROW
    }
    store_rows(acc, MR, C, ldc, nr, accumulate);
}

/* fewer than MR rows (the last ones) */
static void tile_edge(const uint32_t *Ap, int64_t KP, int mr, const uint32_t *panel, float *C, int64_t ldc, int nr,
                      int accumulate)
{
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t kp = 0; kp < KP; kp++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + kp * 32);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + kp * 32 + 16);
        for (int r = 0; r < mr; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)Ap[(int64_t)r * KP + kp]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
        }
    }
    store_rows(acc, mr, C, ldc, nr, accumulate);
}

void bf16_gemm_packed(int64_t M, int64_t N, int64_t K, const uint32_t *Ap, const uint32_t *Bp, float *C, int64_t ldc,
                      int accumulate)
{
    int64_t KP = (K + 1) / 2;
    for (int64_t n0 = 0; n0 < N; n0 += 32) {
        int nr = N - n0 < 32 ? (int)(N - n0) : 32;
        const uint32_t *panel = Bp + (n0 / 32) * KP * 32;
        int64_t m0 = 0;
        for (; m0 + MR <= M; m0 += MR) tile_full(Ap + m0 * KP, KP, panel, C + m0 * ldc + n0, ldc, nr, accumulate);
        if (m0 < M) tile_edge(Ap + m0 * KP, KP, (int)(M - m0), panel, C + m0 * ldc + n0, ldc, nr, accumulate);
    }
}

#ifdef __clang__
#pragma clang attribute pop
#endif
