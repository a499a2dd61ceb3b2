/* The network layers around the convolutions: 2 x 2 max pooling, x2
 * upsampling (nearest, bilinear), leaky ReLU, channel copies for skip
 * connections, dropout masks and the SGD update, each with its backward.
 * Each output element is computed by one thread from a fixed expression, so
 * results do not depend on the thread count. */
#include "cpu.h"
#include "nn.h"

#include <math.h>

void cpu_maxpool2_f32(const float *x, int64_t nc, int h, int w, float *y, int32_t *arg)
{
    int oh = h / 2, ow = w / 2;
#pragma omp parallel for schedule(static) if ((size_t)(nc * h * w) > SS_PAR_MIN)
    for (int64_t p = 0; p < nc; p++) {
        const float *xp = x + p * h * w;
        float *yp = y + p * oh * ow;
        int32_t *ap = arg + p * oh * ow;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                int32_t at = (2 * i) * w + 2 * j;
                float best = xp[at];
                static const int dy[3] = {0, 1, 1}, dx[3] = {1, 0, 1};
                for (int q = 0; q < 3 && !isnan(best); q++) {
                    int32_t a = (2 * i + dy[q]) * w + 2 * j + dx[q];
                    float v = xp[a];
                    if (v > best || isnan(v)) best = v, at = a;
                }
                yp[i * ow + j] = best;
                ap[i * ow + j] = at;
            }
    }
}

void cpu_maxpool2_bwd_f32(const float *dy, const int32_t *arg, int64_t nc, int h, int w, float *dx)
{
    int64_t o = (int64_t)(h / 2) * (w / 2);
#pragma omp parallel for schedule(static) if ((size_t)(nc * h * w) > SS_PAR_MIN)
    for (int64_t p = 0; p < nc; p++) {
        float *dp = dx + p * h * w;
        memset(dp, 0, (size_t)h * (size_t)w * sizeof *dp);
        for (int64_t i = 0; i < o; i++) dp[arg[p * o + i]] = dy[p * o + i];
    }
}

/* Bilinear x2 with align_corners=False: output i reads source (i + 0.5) / 2
 * - 0.5 clamped at 0, between floor and the next sample (the last clamps),
 * as PyTorch's upsample_bilinear2d computes it. */
static void bilinear_tap(int i, int n, int *i0, int *i1, float *l0, float *l1)
{
    float src = ((float)i + 0.5f) * 0.5f - 0.5f;
    if (src < 0) src = 0;
    int a = (int)src;
    *i0 = a;
    *i1 = a + (a < n - 1);
    *l1 = src - (float)a;
    *l0 = 1.0f - *l1;
}

void cpu_upsample2_f32(const float *x, int64_t nc, int h, int w, int mode, float *y)
{
    int oh = 2 * h, ow = 2 * w;
#pragma omp parallel for schedule(static) if ((size_t)(nc * h * w) > SS_PAR_MIN / 4)
    for (int64_t p = 0; p < nc; p++) {
        const float *xp = x + p * h * w;
        float *yp = y + p * oh * ow;
        for (int i = 0; i < oh; i++) {
            if (mode == UPSAMPLE_NEAREST) {
                const float *row = xp + (int64_t)(i / 2) * w;
                for (int j = 0; j < ow; j++) yp[(int64_t)i * ow + j] = row[j / 2];
                continue;
            }
            int y0, y1;
            float h0, h1;
            bilinear_tap(i, h, &y0, &y1, &h0, &h1);
            const float *r0 = xp + (int64_t)y0 * w, *r1 = xp + (int64_t)y1 * w;
            for (int j = 0; j < ow; j++) {
                int x0, x1;
                float w0, w1;
                bilinear_tap(j, w, &x0, &x1, &w0, &w1);
                yp[(int64_t)i * ow + j] = h0 * (w0 * r0[x0] + w1 * r0[x1]) + h1 * (w0 * r1[x0] + w1 * r1[x1]);
            }
        }
    }
}

void cpu_upsample2_bwd_f32(const float *dy, int64_t nc, int h, int w, int mode, float *dx)
{
    int oh = 2 * h, ow = 2 * w;
#pragma omp parallel for schedule(static) if ((size_t)(nc * h * w) > SS_PAR_MIN / 4)
    for (int64_t p = 0; p < nc; p++) {
        const float *dp = dy + p * oh * ow;
        float *xp = dx + p * h * w;
        memset(xp, 0, (size_t)h * (size_t)w * sizeof *xp);
        for (int i = 0; i < oh; i++) {
            const float *drow = dp + (int64_t)i * ow;
            if (mode == UPSAMPLE_NEAREST) {
                float *row = xp + (int64_t)(i / 2) * w;
                for (int j = 0; j < ow; j++) row[j / 2] += drow[j];
                continue;
            }
            int y0, y1;
            float h0, h1;
            bilinear_tap(i, h, &y0, &y1, &h0, &h1);
            float *r0 = xp + (int64_t)y0 * w, *r1 = xp + (int64_t)y1 * w;
            for (int j = 0; j < ow; j++) {
                int x0, x1;
                float w0, w1;
                bilinear_tap(j, w, &x0, &x1, &w0, &w1);
                float g = drow[j];
                r0[x0] += h0 * w0 * g;
                r0[x1] += h0 * w1 * g;
                r1[x0] += h1 * w0 * g;
                r1[x1] += h1 * w1 * g;
            }
        }
    }
}

void cpu_leaky_relu_f32(float *x, size_t n, float slope)
{
#pragma omp parallel for simd schedule(static) if (n > SS_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : slope * x[i];
}

void cpu_leaky_relu_bwd_f32(const float *y, float *dy, size_t n, float slope)
{
#pragma omp parallel for simd schedule(static) if (n > SS_PAR_MIN)
    for (size_t i = 0; i < n; i++) dy[i] = y[i] > 0 ? dy[i] : slope * dy[i];
}

void cpu_chan_copy_f32(const float *src, int64_t n, int csrc, int s0, int c, int64_t hw, float *dst, int cdst,
                       int d0, int accumulate)
{
    int64_t len = (int64_t)c * hw;
#pragma omp parallel for schedule(static) if ((size_t)(n * len) > SS_PAR_MIN)
    for (int64_t b = 0; b < n; b++) {
        const float *s = src + (b * csrc + s0) * hw;
        float *d = dst + (b * cdst + d0) * hw;
        if (accumulate)
            for (int64_t i = 0; i < len; i++) d[i] += s[i];
        else
            memcpy(d, s, (size_t)len * sizeof *d);
    }
}

void cpu_mask_scale_f32(float *x, const uint8_t *keep, size_t n, float scale)
{
#pragma omp parallel for simd schedule(static) if (n > SS_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = keep[i] ? x[i] * scale : 0.0f;
}

void cpu_sgd_step(float *p, const float *g, float *v, size_t n, float lr, float momentum, float weight_decay)
{
#pragma omp parallel for simd schedule(static) if (n > SS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float gi = weight_decay != 0 ? g[i] + weight_decay * p[i] : g[i];
        float vi = momentum != 0 ? momentum * v[i] + gi : gi;
        v[i] = vi;
        p[i] -= lr * vi;
    }
}
