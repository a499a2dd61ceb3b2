/* bfloat16 matrix products with float32 accumulation on AVX512-BF16
 * (kernels/cpu/gemm_bf16.c), for the convolutions' bf16 option. Internal to
 * kernels/. */
#ifndef SS_KERNELS_CPU_GEMM_BF16_H
#define SS_KERNELS_CPU_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

/* 1 when this CPU runs them (AVX512-F, -BW and -BF16). */
int bf16_gemm_available(void);
/* A (M x K, row-major, lda) into M x ceil(K/2) words of bf16 pairs along k. */
void bf16_pack_rows(const float *a, int64_t M, int64_t K, int64_t lda, uint32_t *out);
/* B (K x N, row-major, ldb; or, transposed, N x K) into panels of 32 columns
 * of ceil(K/2) x 32 words; bf16_pack_cols_len words in all. */
void bf16_pack_cols(const float *b, int64_t K, int64_t N, int64_t ldb, int transposed, uint32_t *out);
size_t bf16_pack_cols_len(int64_t K, int64_t N);
/* C (M x N, ldc) = Ap Bp, or += with accumulate. */
void bf16_gemm_packed(int64_t M, int64_t N, int64_t K, const uint32_t *Ap, const uint32_t *Bp, float *C, int64_t ldc,
                      int accumulate);

#endif
