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

/* The same layer through oneDNN (kernels/cpu/conv_dnnl.c, built with
 * SS_HAVE_DNNL), which cpu_conv_new uses for the shapes where it measured
 * faster. conv_dnnl_new: NULL when memory runs out, or oneDNN has only its
 * reference loops for the shape; bf16: bfloat16 inputs to the products,
 * float32 outputs. bwd_weights gives dw only: the caller sums db (in double,
 * as the gemm version does, so it does not depend on the thread count).
 * info: the name oneDNN gives its forward kernel. */
typedef struct conv_dnnl conv_dnnl;
#ifdef SS_HAVE_DNNL
conv_dnnl *conv_dnnl_new(const conv_shape *s, int bf16);
void conv_dnnl_free(conv_dnnl *c);
const char *conv_dnnl_info(const conv_dnnl *c);
void conv_dnnl_fwd(conv_dnnl *c, const float *x, const float *w, const float *b, float *y);
void conv_dnnl_bwd_data(conv_dnnl *c, const float *dy, const float *w, float *dx);
void conv_dnnl_bwd_weights(conv_dnnl *c, const float *x, const float *dy, float *dw);
#else
/* without oneDNN no state is ever made, so the calls below never run */
static inline conv_dnnl *conv_dnnl_new(const conv_shape *s, int bf16)
{
    (void)s, (void)bf16;
    return NULL;
}
static inline void conv_dnnl_free(conv_dnnl *c)
{
    (void)c;
}
static inline const char *conv_dnnl_info(const conv_dnnl *c)
{
    (void)c;
    return "none";
}
static inline void conv_dnnl_fwd(conv_dnnl *c, const float *x, const float *w, const float *b, float *y)
{
    (void)c, (void)x, (void)w, (void)b, (void)y;
}
static inline void conv_dnnl_bwd_data(conv_dnnl *c, const float *dy, const float *w, float *dx)
{
    (void)c, (void)dy, (void)w, (void)dx;
}
static inline void conv_dnnl_bwd_weights(conv_dnnl *c, const float *x, const float *dy, float *dw)
{
    (void)c, (void)x, (void)dy, (void)dw;
}
#endif

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
