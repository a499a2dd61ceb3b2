/* The SIREN layer kernels for AVX-512 (siren_simd.h): tiles of 12 rows x 32
 * columns in 24 of the 32 zmm registers (siren_tiles.inc), and sin/cos with
 * mask registers for the quadrant selection. */
#ifndef __clang__
#pragma GCC target("avx512f,avx512dq,fma")
#endif
#include "siren_simd.h"

#include <immintrin.h>

/* clang ignores GCC's target pragma; this is its form of the same. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,fma"))), apply_to = function)
#endif

#define VF __m512
#define VL 16
#define MR 12



#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSET1(x) _mm512_set1_ps(x)
#define VZERO() _mm512_setzero_ps()
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define KERNEL(name) avx512_##name

static int avx512_cpu_ok(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}

/* ---- sin and cos: the scalar kernel's algorithm (siren.c), 16 lanes ---- */

static inline __attribute__((always_inline)) void sincosv(__m512 v, __m512 *s, __m512 *c)
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

static void avx512_sincos(const float *x, float *s, float *c, size_t n)
{
    size_t i = 0;
    __m512 sv, cv;
    for (; i + 16 <= n; i += 16) {
        sincosv(_mm512_loadu_ps(x + i), &sv, &cv);
        _mm512_storeu_ps(s + i, sv);
        _mm512_storeu_ps(c + i, cv);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        sincosv(_mm512_maskz_loadu_ps(m, x + i), &sv, &cv);
        _mm512_mask_storeu_ps(s + i, m, sv);
        _mm512_mask_storeu_ps(c + i, m, cv);
    }
}

#include "siren_tiles.inc"

const siren_simd siren_simd_avx512 = {
    .name = "avx512",
    .tile_cols = 2 * VL,
    .cpu_ok = avx512_cpu_ok,
    .forward = avx512_forward,
    .back_input = avx512_back_input,
    .weight_grad = avx512_weight_grad,
    .sincos = avx512_sincos,
};

#ifdef __clang__
#pragma clang attribute pop
#endif
