/* SIREN on the CPU: loss and gradient of a batch, and evaluation, fused per
 * block of voxels.
 *
 * Each call first folds omega into the sine layers' weights (Ws = omega W,
 * bs = omega b, so a layer computes h = sin(Ws x + bs) with no extra pass) and
 * stores the first layer's weights transposed (fan-in 2 or 3: a vector loop
 * over the units). For a block of B voxels the forward pass keeps, per sine
 * layer, h and cos of the same argument (B x width each), so the backward
 * pass needs no recomputation; the gradients found for the scaled weights are
 * scaled back by omega once per call; the block's buffers stay in cache
 * and the whole batch is never materialised. The width x width products go
 * through single-threaded sgemm (OpenBLAS); the first layer (fan-in 2 or 3)
 * and the output layer (fan-out 1) are done by hand, where BLAS would spend
 * its time in call overhead.
 *
 * Threads take contiguous ranges of blocks, accumulate gradients privately,
 * and the private gradients are summed in thread order: the result depends on
 * the thread count only, not on scheduling. */
#include "siren_cpu.h"
#include "host.h"
#include "kernels.h"
#include "siren_simd.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define SIREN_BLOCK 256

void siren_layer_dims(const siren_arch *a, int l, int *fan_in, int *fan_out)
{
    int L = siren_n_layers(a);
    *fan_in = l == 0 ? a->in_dim : a->width;
    *fan_out = l == L - 1 ? a->out_dim : a->width;
}

size_t siren_layer_offset(const siren_arch *a, int l)
{
    size_t off = 0;
    for (int k = 0; k < l; k++) {
        int fi, fo;
        siren_layer_dims(a, k, &fi, &fo);
        off += (size_t)fo * (size_t)fi + (size_t)fo;
    }
    return off;
}

size_t siren_n_params(const siren_arch *a) { return siren_layer_offset(a, siren_n_layers(a)); }

const char *siren_arch_check(const siren_arch *a)
{
    if (a->in_dim != 2 && a->in_dim != 3) return "in_dim must be 2 or 3";
    if (a->width < 1 || a->width > 4096) return "width must be in [1, 4096]";
    if (a->hidden < 0 || a->hidden > 64) return "hidden layers must be in [0, 64]";
    if (a->out_dim != 1) return "out_dim must be 1";
    if (!(a->omega_first > 0) || !(a->omega_hidden > 0)) return "omega must be positive";
    return NULL;
}

/* ---- sin and cos -------------------------------------------------------- */

/* pi/2 in three parts whose products with an integer k < 2^12 are exact in
 * float, so x - k*pi/2 loses nothing to the reduction (Cody & Waite). */
#define PIO2_1 1.5703125f
#define PIO2_2 4.837512969970703125e-4f
#define PIO2_3 7.549789954891882e-8f

/* Clones per instruction set; clang before 16 emits the dispatcher only in a
 * file that calls the function, so its builds (fuzzing, sanitizers) get the
 * default version alone. */
#if defined(__clang__) && __clang_major__ < 16
#define SIMD_CLONES
#else
#define SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

SIMD_CLONES void sincos_cpu_f32(const float *x, float *s, float *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float k = rintf(v * 0.63661977236758134f);
        float r = ((v - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
        float r2 = r * r;
        /* Minimax polynomials on [-pi/4, pi/4] (Cephes sinf/cosf). */
        float sp = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
        float cp = 1.0f - 0.5f * r2 +
                   r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
        int q = (int)k & 3;
        float sv = (q & 1) ? cp : sp;
        float cv = (q & 1) ? sp : cp;
        s[i] = (q & 2) ? -sv : sv;
        c[i] = ((q + 1) & 2) ? -cv : cv;
    }
}

/* ---- work buffers -------------------------------------------------------- */

typedef struct {
    float *x;      /* B x in_dim coordinates */
    float *h;      /* (hidden+1) layers of B x width: sin(Ws x + bs) */
    float *c;      /* (hidden+1) layers of B x width: cos of the same */
    float *y;      /* B outputs */
    float *gy;     /* B d loss / d y */
    float *g0, *g1; /* B x width gradient buffers */
    float *grad;   /* private gradient accumulator (layer 0's W transposed) */
    double loss;
} thread_buf;

struct siren_work {
    siren_arch arch;
    int threads;
    const siren_simd *simd; /* fused SIMD layer kernels, or NULL: sgemm */
    int ld;     /* row stride of the block buffers (and wt, wp), see below */
    float *ps;  /* the parameters as the kernels use them (see the top) */
    float *wt;  /* SIMD: hidden layers' Ws transposed, rows ld apart */
    float *wp;  /* SIMD: hidden layers' Ws, rows ld apart */
    thread_buf *t;
};

/* Rows of a block's buffers are ld floats apart: the width, padded by 16 when
 * that makes the row an odd number of 64-byte lines (width 128: 576 bytes,
 * not 512), so that walking down a column touches every set of the L1 cache
 * instead of a few (siren_simd.h). */
static int row_stride(int width)
{
    return width % 16 == 0 && (width / 16) % 2 == 0 ? width + 16 : width;
}

siren_work *siren_cpu_work_new(const siren_arch *a, int threads)
{
    if (threads < 1) threads = 1;
    siren_work *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->arch = *a;
    w->threads = threads;
    w->t = calloc((size_t)threads, sizeof *w->t);
    w->ps = malloc(siren_n_params(a) * sizeof(float));
    w->simd = siren_simd_pick(a->width, getenv("SIRENSTACK_SIREN_KERNEL"));
    w->ld = row_stride(a->width);
    size_t B = SIREN_BLOCK, LD = (size_t)w->ld, S = (size_t)a->hidden + 1;
    w->wt = calloc((size_t)a->hidden * a->width * LD + 1, sizeof(float));
    w->wp = calloc((size_t)a->hidden * a->width * LD + 1, sizeof(float));
    if (!w->t || !w->ps || !w->wt || !w->wp) {
        siren_cpu_work_free(w);
        return NULL;
    }
    for (int i = 0; i < threads; i++) {
        thread_buf *t = &w->t[i];
        t->x = malloc(B * (size_t)a->in_dim * sizeof(float));
        t->h = calloc(S * B * LD, sizeof(float));
        t->c = calloc(S * B * LD, sizeof(float));
        t->y = malloc(B * sizeof(float));
        t->gy = malloc(B * sizeof(float));
        t->g0 = calloc(B * LD, sizeof(float));
        t->g1 = calloc(B * LD, sizeof(float));
        t->grad = malloc(siren_n_params(a) * sizeof(float));
        if (!t->x || !t->h || !t->c || !t->y || !t->gy || !t->g0 || !t->g1 || !t->grad) {
            siren_cpu_work_free(w);
            return NULL;
        }
    }
    return w;
}

void siren_cpu_work_free(siren_work *w)
{
    if (!w) return;
    for (int i = 0; w->t && i < w->threads; i++) {
        thread_buf *t = &w->t[i];
        free(t->x);
        free(t->h);
        free(t->c);
        free(t->y);
        free(t->gy);
        free(t->g0);
        free(t->g1);
        free(t->grad);
    }
    free(w->t);
    free(w->ps);
    free(w->wt);
    free(w->wp);
    free(w);
}

/* ps = the parameters with omega folded in and layer 0's W transposed; for
 * the SIMD kernels (wt not NULL) the hidden layers' scaled W again, rows ld
 * apart, transposed (wt) and as is (wp), one layer after another. */
static void prepare_params(const siren_arch *a, const float *p, float *ps, float *wt, float *wp, int ld)
{
    int L = siren_n_layers(a), W = a->width;
    for (int l = 0; l < L; l++) {
        int fi, fo;
        siren_layer_dims(a, l, &fi, &fo);
        size_t off = siren_layer_offset(a, l), nw = (size_t)fo * (size_t)fi;
        float om = l == L - 1 ? 1.0f : l == 0 ? a->omega_first : a->omega_hidden;
        if (l == 0)
            for (int o = 0; o < W; o++)
                for (int k = 0; k < fi; k++) ps[off + (size_t)k * W + o] = om * p[off + (size_t)o * fi + k];
        else
            for (size_t i = 0; i < nw; i++) ps[off + i] = om * p[off + i];
        for (int o = 0; o < fo; o++) ps[off + nw + o] = om * p[off + nw + o];
        if (wt && l > 0 && l < L - 1) {
            float *t = wt + (size_t)(l - 1) * W * ld, *q = wp + (size_t)(l - 1) * W * ld;
            for (int o = 0; o < W; o++)
                for (int k = 0; k < W; k++) {
                    t[(size_t)k * ld + o] = ps[off + (size_t)o * W + k];
                    q[(size_t)o * ld + k] = ps[off + (size_t)o * W + k];
                }
        }
    }
}

/* The inverse map for gradients: d/dW = omega d/dWs, layer 0 transposed back. */
static void finish_grad(const siren_arch *a, float *g, float *tmp)
{
    int L = siren_n_layers(a), W = a->width;
    for (int l = 0; l < L - 1; l++) {
        int fi, fo;
        siren_layer_dims(a, l, &fi, &fo);
        size_t off = siren_layer_offset(a, l), nw = (size_t)fo * (size_t)fi;
        float om = l == 0 ? a->omega_first : a->omega_hidden;
        if (l == 0) {
            memcpy(tmp, g + off, nw * sizeof(float));
            for (int o = 0; o < W; o++)
                for (int k = 0; k < fi; k++) g[off + (size_t)o * fi + k] = tmp[(size_t)k * W + o];
        }
        for (size_t i = 0; i < nw + (size_t)fo; i++) g[off + i] *= om;
    }
}

int siren_cpu_work_threads(const siren_work *w) { return w->threads; }

const char *siren_cpu_work_kernel(const siren_work *w) { return w->simd ? w->simd->name : "blas"; }

const siren_simd *siren_simd_pick(int width, const char *name)
{
    const siren_simd *sets[] = {&siren_simd_avx512};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        const siren_simd *k = sets[i];
        if (name && *name && strcmp(name, k->name)) continue;
        if (width % k->tile_cols == 0 && k->cpu_ok()) return k;
    }
    return NULL;
}

/* ---- forward ---------------------------------------------------------------- */

static void coords(const siren_arch *a, const siren_grid *g, const int64_t *index, int64_t start, int64_t n,
                   float *x)
{
    int64_t plane = g->ny * g->nx;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = index ? index[i] : start + i;
        int64_t iz = v / plane, rem = v - iz * plane, iy = rem / g->nx, ix = rem - iy * g->nx;
        float *p = x + i * a->in_dim;
        if (a->in_dim == 3) *p++ = g->z[iz];
        p[0] = g->y0 + g->dy * (float)iy;
        p[1] = g->x0 + g->dx * (float)ix;
    }
}

static void forward_block(const siren_work *w, thread_buf *t, int64_t B)
{
    const siren_arch *a = &w->arch;
    const float *ps = w->ps;
    int L = siren_n_layers(a), W = a->width, in = a->in_dim, ld = w->ld;
    size_t stride = (size_t)SIREN_BLOCK * (size_t)ld;
    /* Layer 0: fan-in 2 or 3, a vector loop over the units. */
    const float *W0 = ps, *b0 = ps + (size_t)in * W;
    const float *W1 = W0 + W, *W2 = W0 + 2 * W;
    for (int64_t i = 0; i < B; i++) {
        const float *x = t->x + i * in;
        float *hi = t->h + i * ld, *ci = t->c + i * ld;
        if (in == 3)
            for (int o = 0; o < W; o++) hi[o] = b0[o] + W0[o] * x[0] + W1[o] * x[1] + W2[o] * x[2];
        else
            for (int o = 0; o < W; o++) hi[o] = b0[o] + W0[o] * x[0] + W1[o] * x[1];
        if (w->simd)
            w->simd->sincos(hi, hi, ci, (size_t)W);
        else
            sincos_cpu_f32(hi, hi, ci, (size_t)W);
    }
    for (int l = 1; l < L - 1; l++) {
        const float *Wl = ps + siren_layer_offset(a, l), *bl = Wl + (size_t)W * W;
        float *hp = t->h + (size_t)(l - 1) * stride, *hl = t->h + (size_t)l * stride;
        float *cl = t->c + (size_t)l * stride;
        if (w->simd) {
            w->simd->forward(hp, B, W, ld, w->wt + (size_t)(l - 1) * W * ld, bl, hl, cl);
            continue;
        }
        for (int64_t i = 0; i < B; i++) memcpy(hl + i * ld, bl, (size_t)W * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, W, W, 1.0f, hp, ld, Wl, W, 1.0f, hl, ld);
        for (int64_t i = 0; i < B; i++) sincos_cpu_f32(hl + i * ld, hl + i * ld, cl + i * ld, (size_t)W);
    }
    const float *Wo = ps + siren_layer_offset(a, L - 1), *hl = t->h + (size_t)(L - 2) * stride;
    for (int64_t i = 0; i < B; i++) t->y[i] = Wo[W];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)B, W, 1.0f, hl, ld, Wo, 1, 1.0f, t->y, 1);
}

/* ---- loss ------------------------------------------------------------------- */

static double loss_and_slope(const siren_batch *b, float y, const float *tgt, float *slope)
{
    double loss = 0;
    float g = 0, s = b->scale;
    for (int r = 0; r < b->R; r++) {
        float d = y - tgt[r];
        switch (b->loss) {
        case SIREN_LOSS_MSE:
            loss += (double)d * d;
            g += 2 * d;
            break;
        case SIREN_LOSS_L1:
            loss += fabsf(d);
            g += d > 0 ? 1.0f : d < 0 ? -1.0f : 0.0f;
            break;
        case SIREN_LOSS_HUBER:
            if (fabsf(d) <= s) {
                loss += 0.5 * (double)d * d;
                g += d;
            } else {
                loss += (double)s * (fabsf(d) - 0.5 * s);
                g += d > 0 ? s : -s;
            }
            break;
        case SIREN_LOSS_CAUCHY: {
            float u = d / s;
            loss += 0.5 * (double)s * s * log1p((double)u * u);
            g += d / (1 + u * u);
            break;
        }
        }
    }
    *slope = g;
    return loss;
}

/* ---- backward --------------------------------------------------------------- */

/* Per sine layer l, from the last down: gz = dL/dz of the layer's
 * pre-activation z = Ws h + bs, which is dL/dh cos z; then gW_l += gz^T h_in,
 * gb_l += column sums of gz, and the layer below's gz = (gz Ws) cos z_below. */
static void backward_block(const siren_work *w, thread_buf *t, int64_t B)
{
    const siren_arch *a = &w->arch;
    const float *ps = w->ps;
    int L = siren_n_layers(a), W = a->width, ld = w->ld;
    size_t stride = (size_t)SIREN_BLOCK * (size_t)ld;
    float *grad = t->grad;
    /* Output layer: dL/dWo = sum_i gy_i h_i, dL/dbo = sum_i gy_i; the last
     * sine layer's gz = gy Wo cos z, its bias gradient the column sums. */
    const float *hlast = t->h + (size_t)(L - 2) * stride, *clast = t->c + (size_t)(L - 2) * stride;
    size_t oo = siren_layer_offset(a, L - 1), ol = siren_layer_offset(a, L - 2);
    const float *Wo = ps + oo;
    float *gWo = grad + oo;
    float *gbl = grad + ol + (size_t)W * (size_t)(L == 2 ? a->in_dim : W);
    float gbo = 0;
    float *g = t->g0; /* gz of the current layer, B x W */
    for (int64_t i = 0; i < B; i++) {
        float gy = t->gy[i];
        gbo += gy;
        const float *h = hlast + i * ld, *c = clast + i * ld;
        float *gi = g + i * ld;
        for (int k = 0; k < W; k++) {
            gWo[k] += gy * h[k];
            float v = gy * Wo[k] * c[k];
            gi[k] = v;
            gbl[k] += v;
        }
    }
    gWo[W] += gbo;
    float *other = t->g1;
    for (int l = L - 2; l >= 1; l--) {
        size_t off = siren_layer_offset(a, l), offb = siren_layer_offset(a, l - 1);
        float *gW = grad + off;
        float *gbb = grad + offb + (size_t)W * (size_t)(l == 1 ? a->in_dim : W); /* the layer below's bias */
        const float *in = t->h + (size_t)(l - 1) * stride, *cb = t->c + (size_t)(l - 1) * stride;
        if (w->simd) {
            w->simd->weight_grad(g, in, B, W, ld, gW);
            w->simd->back_input(g, B, W, ld, w->wp + (size_t)(l - 1) * W * ld, cb, other, gbb);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, W, W, (int)B, 1.0f, g, ld, in, ld, 1.0f, gW, W);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, W, W, 1.0f, g, ld, ps + off, W, 0.0f,
                        other, ld);
            for (int64_t i = 0; i < B; i++) {
                float *oi = other + i * ld;
                const float *ci = cb + i * ld;
                for (int o = 0; o < W; o++) {
                    float v = oi[o] * ci[o];
                    oi[o] = v;
                    gbb[o] += v;
                }
            }
        }
        float *tmp = g;
        g = other;
        other = tmp;
    }
    /* Layer 0's gradient is kept transposed (fan_in x W): vector loops. */
    int fan_in = a->in_dim;
    float *gW0 = grad;
    for (int64_t i = 0; i < B; i++) {
        const float *x = t->x + i * fan_in, *gi = g + i * ld;
        for (int k = 0; k < fan_in; k++) {
            float xk = x[k];
            float *row = gW0 + (size_t)k * W;
            for (int o = 0; o < W; o++) row[o] += gi[o] * xk;
        }
    }
}

/* ---- entry points ------------------------------------------------------------ */

/* Contiguous block ranges per thread: [lo, hi) of nb blocks for slot t of T. */
static void thread_range(int64_t nb, int t, int T, int64_t *lo, int64_t *hi)
{
    *lo = nb * t / T;
    *hi = nb * (t + 1) / T;
}

double siren_cpu_loss_grad(const siren_arch *a, const float *params, const siren_batch *b, float *grad,
                           siren_work *w)
{
    size_t np = siren_n_params(a);
    int T = w->threads;
    int64_t nb = (b->n + SIREN_BLOCK - 1) / SIREN_BLOCK;
    double denom = (double)b->n * (double)b->R;
    prepare_params(a, params, w->ps, w->simd ? w->wt : NULL, w->wp, w->ld);
#pragma omp parallel num_threads(T)
    {
        int nth = omp_get_num_threads();
        for (int tid = omp_get_thread_num(); tid < T; tid += nth) {
            thread_buf *t = &w->t[tid];
            memset(t->grad, 0, np * sizeof(float));
            t->loss = 0;
            int64_t lo, hi;
            thread_range(nb, tid, T, &lo, &hi);
            for (int64_t blk = lo; blk < hi; blk++) {
                int64_t first = blk * SIREN_BLOCK;
                int64_t B = b->n - first < SIREN_BLOCK ? b->n - first : SIREN_BLOCK;
                coords(a, b->grid, b->index + first, 0, B, t->x);
                forward_block(w, t, B);
                for (int64_t i = 0; i < B; i++) {
                    float slope;
                    t->loss += loss_and_slope(b, t->y[i], b->target + (first + i) * b->R, &slope);
                    t->gy[i] = (float)(slope / denom);
                }
                backward_block(w, t, B);
            }
        }
    }
    double loss = 0;
    memcpy(grad, w->t[0].grad, np * sizeof(float));
    loss = w->t[0].loss;
    for (int tid = 1; tid < T; tid++) {
        const float *g = w->t[tid].grad;
        for (size_t i = 0; i < np; i++) grad[i] += g[i];
        loss += w->t[tid].loss;
    }
    finish_grad(a, grad, w->t[0].grad);
    return loss / denom;
}

void siren_cpu_eval(const siren_arch *a, const float *params, const siren_grid *g, const int64_t *index,
                    int64_t start, int64_t n, float *out, siren_work *w)
{
    int T = w->threads;
    int64_t nb = (n + SIREN_BLOCK - 1) / SIREN_BLOCK;
    prepare_params(a, params, w->ps, w->simd ? w->wt : NULL, w->wp, w->ld);
#pragma omp parallel num_threads(T)
    {
        int nth = omp_get_num_threads();
        for (int tid = omp_get_thread_num(); tid < T; tid += nth) {
            thread_buf *t = &w->t[tid];
            int64_t lo, hi;
            thread_range(nb, tid, T, &lo, &hi);
            for (int64_t blk = lo; blk < hi; blk++) {
                int64_t first = blk * SIREN_BLOCK;
                int64_t B = n - first < SIREN_BLOCK ? n - first : SIREN_BLOCK;
                coords(a, g, index ? index + first : NULL, start + first, B, t->x);
                forward_block(w, t, B);
                memcpy(out + first, t->y, (size_t)B * sizeof(float));
            }
        }
    }
}

SIMD_CLONES void adam_cpu_step(float *p, const float *g, float *m, float *v, size_t n, int64_t t, float lr,
                               float beta1, float beta2, float eps)
{
    /* torch.optim.Adam: p -= lr * m_hat / (sqrt(v_hat) + eps), written as
     * torch computes it (step size lr / bc1, denominator sqrt(v)/sqrt(bc2) + eps). */
    double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
    for (size_t i = 0; i < n; i++) {
        float mi = beta1 * m[i] + (1 - beta1) * g[i];
        float vi = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / (sqrtf(vi) * rbc2 + eps);
    }
}

void siren_init(const siren_arch *a, float *params, uint64_t seed)
{
    ss_rng rng;
    rng_seed(&rng, seed);
    int L = siren_n_layers(a);
    for (int l = 0; l < L; l++) {
        int fi, fo;
        siren_layer_dims(a, l, &fi, &fo);
        float *W = params + siren_layer_offset(a, l), *b = W + (size_t)fo * (size_t)fi;
        /* Sitzmann et al.: first layer U(-1/n, 1/n); later layers
         * U(-sqrt(6/n)/omega, sqrt(6/n)/omega). Biases as PyTorch's Linear:
         * U(-1/sqrt(n), 1/sqrt(n)). */
        double bound = l == 0 ? 1.0 / fi : sqrt(6.0 / fi) / a->omega_hidden;
        for (size_t i = 0; i < (size_t)fo * (size_t)fi; i++) W[i] = (float)((2 * rng_uniform(&rng) - 1) * bound);
        double bb = 1.0 / sqrt((double)fi);
        for (int i = 0; i < fo; i++) b[i] = (float)((2 * rng_uniform(&rng) - 1) * bb);
    }
}
