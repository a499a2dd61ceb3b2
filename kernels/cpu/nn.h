/* The CPU network layers (kernels/cpu/conv.c, layers.c, mse.c), as the
 * dispatch table in kernels/cpu/table.c takes them. Internal to kernels/. */
#ifndef SS_KERNELS_CPU_NN_H
#define SS_KERNELS_CPU_NN_H

#include "kernels.h"

conv_state *cpu_conv_new(const conv_shape *s);
void cpu_conv_free(conv_state *s);
const char *cpu_conv_impl(const conv_state *s);
void cpu_conv_fwd(conv_state *s, const float *x, const float *w, const float *b, float *y);
void cpu_conv_bwd_data(conv_state *s, const float *dy, const float *w, float *dx);
void cpu_conv_bwd_weights(conv_state *s, const float *x, const float *dy, float *dw, float *db);

void cpu_maxpool2_f32(const float *x, int64_t nc, int h, int w, float *y, int32_t *arg);
void cpu_maxpool2_bwd_f32(const float *dy, const int32_t *arg, int64_t nc, int h, int w, float *dx);
void cpu_upsample2_f32(const float *x, int64_t nc, int h, int w, int mode, float *y);
void cpu_upsample2_bwd_f32(const float *dy, int64_t nc, int h, int w, int mode, float *dx);
void cpu_leaky_relu_f32(float *x, size_t n, float slope);
void cpu_leaky_relu_bwd_f32(const float *y, float *dy, size_t n, float slope);
void cpu_chan_copy_f32(const float *src, int64_t n, int csrc, int s0, int c, int64_t hw, float *dst, int cdst,
                       int d0, int accumulate);
void cpu_mask_scale_f32(float *x, const uint8_t *keep, size_t n, float scale);
double cpu_mse_grad_f32(const float *y, const float *t, size_t n, float scale, float *dy);
void cpu_sgd_step(float *p, const float *g, float *v, size_t n, float lr, float momentum, float weight_decay);

#endif
