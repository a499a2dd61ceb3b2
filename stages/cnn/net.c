#include "net.h"

#include "host.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OP_CONV, OP_POOL, OP_UPSAMPLE, OP_CONCAT, OP_FMASK };
#define NET_MAX_OPS 96
#define NET_MAX_TENSORS 96

typedef struct {
    int c, h, w;
    float *x, *g; /* activations and their gradient, n x c x h x w */
    int g_set;    /* g holds a value in this backward pass */
} tensor;

typedef struct {
    int type;
    int in, in2, out;
    /* OP_CONV */
    conv_shape sh;
    conv_state *cs;
    size_t woff, boff;
    int act, drop;
    uint8_t *mask;
    int masked; /* the last forward pass applied the mask */
    /* OP_POOL */
    int32_t *arg;
    /* OP_UPSAMPLE */
    int mode;
    /* OP_FMASK: the cut-off is params[woff] */
    fmask_state *fm;
} op;

struct net {
    const kernels *k;
    net_arch a;
    int n;
    int train; /* gradients are kept */
    int bf16;  /* the convolutions' products in bfloat16 */
    tensor t[NET_MAX_TENSORS];
    int nt;
    op ops[NET_MAX_OPS];
    int nops;
    float *scratch;
    size_t scratch_len;
    size_t nparams;
    int failed; /* building ran out of memory or hit a limit */
};

/* ---- architecture ------------------------------------------------------------- */

static int level_width(const net_arch *a, int l)
{
    int64_t w = (int64_t)a->width << l;
    return w > a->max_width ? a->max_width : (int)w;
}

const char *net_arch_check(const net_arch *a)
{
    if (a->in_ch < 1 || a->in_ch > 64 || a->out_ch < 1 || a->out_ch > 64) return "channels must be 1 to 64";
    if (a->residual && a->in_ch != a->out_ch) return "a residual network needs as many output as input channels";
    if (!(a->slope >= 0 && a->slope < 1)) return "the leaky ReLU slope must be in [0, 1)";
    if (!(a->dropout >= 0 && a->dropout < 1)) return "the dropout rate must be in [0, 1)";
    if (a->fourier_mask && !(a->fmask_rolloff > 0 && a->fmask_rolloff <= 0.5))
        return "the Fourier mask's rolloff must be in (0, 0.5]";
    if (a->kind == NET_UNET) {
        if (a->depth < 1 || a->depth > 8) return "depth must be 1 to 8";
        if (a->width < 1 || a->width > 1024 || a->max_width < a->width || a->max_width > 2048)
            return "width must be 1 to 1024, max_width at least width and at most 2048";
        if (a->kernel < 1 || a->kernel > 15 || a->kernel % 2 == 0) return "the kernel size must be odd, 1 to 15";
        if (a->convs < 1 || a->convs > 4) return "convolutions per level must be 1 to 4";
        if (a->up < NET_UP_TRANSPOSED || a->up > NET_UP_NEAREST) return "unknown upsampling";
        return NULL;
    }
    if (a->kind == NET_PLAIN) {
        if (a->n_layers < 1 || a->n_layers > NET_MAX_LAYERS) return "a plain network has 1 to 16 layers";
        for (int i = 0; i < a->n_layers; i++) {
            if (a->kernels[i] < 1 || a->kernels[i] > 15 || a->kernels[i] % 2 == 0)
                return "kernel sizes must be odd, 1 to 15";
            if (a->filters[i] < 1 || a->filters[i] > 2048) return "filters must be 1 to 2048";
        }
        if (a->filters[a->n_layers - 1] != a->out_ch) return "the last layer's filters must equal the output channels";
        return NULL;
    }
    return "unknown network kind";
}

int net_multiple(const net_arch *a)
{
    return a->kind == NET_UNET ? 1 << (a->depth - 1) : 1;
}

int net_halo(const net_arch *a)
{
    /* A bound on the receptive field's radius along the deepest path: a
     * k x k convolution adds (k / 2) steps of the current resolution, a pooling
     * or a 2 x 2 upsampling one step. */
    int64_t r = 0, j = 1;
    if (a->kind == NET_PLAIN) {
        for (int i = 0; i < a->n_layers; i++) r += a->kernels[i] / 2;
        return (int)r;
    }
    int h = a->kernel / 2;
    for (int l = 0; l < a->depth; l++) {
        r += (int64_t)a->convs * h * j;
        if (l < a->depth - 1) r += j, j *= 2;
    }
    for (int l = a->depth - 2; l >= 0; l--) {
        r += j;
        j /= 2;
        r += (int64_t)a->convs * h * j;
    }
    return (int)r;
}

/* Visits the convolutions in build order: cin, cout, k, transposed. */
typedef void (*conv_visit)(void *ctx, int cin, int cout, int k, int transposed);

static void each_conv(const net_arch *a, conv_visit f, void *ctx)
{
    if (a->kind == NET_PLAIN) {
        int c = a->in_ch;
        for (int i = 0; i < a->n_layers; i++) {
            f(ctx, c, a->filters[i], a->kernels[i], 0);
            c = a->filters[i];
        }
        return;
    }
    int c = a->in_ch;
    for (int l = 0; l < a->depth; l++)
        for (int q = 0; q < a->convs; q++) {
            f(ctx, c, level_width(a, l), a->kernel, 0);
            c = level_width(a, l);
        }
    for (int l = a->depth - 2; l >= 0; l--) {
        int wl = level_width(a, l), wu = level_width(a, l + 1);
        if (a->up == NET_UP_TRANSPOSED) {
            f(ctx, wu, wl, 2, 1);
            c = 2 * wl;
        } else {
            c = wl + wu;
        }
        for (int q = 0; q < a->convs; q++) {
            f(ctx, c, wl, a->kernel, 0);
            c = wl;
        }
    }
    f(ctx, c, a->out_ch, 1, 0);
}

static void count_params(void *ctx, int cin, int cout, int k, int transposed)
{
    (void)transposed;
    *(size_t *)ctx += (size_t)cin * cout * k * k + (size_t)cout;
}

size_t net_n_params(const net_arch *a)
{
    size_t n = 0;
    each_conv(a, count_params, &n);
    return n + (a->fourier_mask ? 1 : 0);
}

typedef struct {
    float *p;
    ss_rng r;
    float slope;
} init_ctx;

static void init_conv(void *ctx, int cin, int cout, int k, int transposed)
{
    init_ctx *c = ctx;
    /* kaiming_normal_(mode='fan_in'): the fan-in of PyTorch's weight layout
     * (for a transposed convolution its dim 1, cout, times k^2) */
    double fan_in = (double)(transposed ? cout : cin) * k * k;
    double sd = sqrt(2.0 / (1.0 + (double)c->slope * c->slope) / fan_in);
    size_t nw = (size_t)cin * cout * k * k;
    for (size_t i = 0; i < nw; i++) c->p[i] = (float)(sd * rng_normal(&c->r));
    memset(c->p + nw, 0, (size_t)cout * sizeof *c->p);
    c->p += nw + (size_t)cout;
}

void net_init(const net_arch *a, float *params, uint64_t seed)
{
    init_ctx c = {.p = params, .slope = a->slope};
    rng_split(&c.r, seed, 0x4e37ull);
    each_conv(a, init_conv, &c);
    if (a->fourier_mask) *c.p = 1.0f;
}

/* ---- building ------------------------------------------------------------------- */

static int add_tensor(net *t, int c, int h, int w)
{
    if (t->nt == NET_MAX_TENSORS) {
        t->failed = 1;
        return 0;
    }
    size_t len = (size_t)t->n * c * h * w;
    tensor *x = &t->t[t->nt];
    *x = (tensor){c, h, w, malloc(len * sizeof(float)), t->train ? malloc(len * sizeof(float)) : NULL, 0};
    if (!x->x || (t->train && !x->g)) t->failed = 1;
    if (len > t->scratch_len) t->scratch_len = len;
    return t->nt++;
}

static op *add_op(net *t, int type, int in)
{
    if (t->nops == NET_MAX_OPS) {
        t->failed = 1;
        return NULL;
    }
    op *o = &t->ops[t->nops++];
    memset(o, 0, sizeof *o);
    o->type = type;
    o->in = in;
    o->in2 = -1;
    return o;
}

static int conv(net *t, int in, int cout, int k, int transposed, int act, int drop)
{
    tensor *x = &t->t[in];
    op *o = add_op(t, OP_CONV, in);
    if (!o) return in;
    o->sh = (conv_shape){t->n, x->c, x->h, x->w, cout, k, transposed ? 2 : 1, transposed, act, t->a.slope, t->bf16};
    int oh, ow;
    if (conv_out_size(&o->sh, &oh, &ow)) {
        t->failed = 1;
        return in;
    }
    o->cs = t->k->conv_new(&o->sh);
    if (!o->cs) t->failed = 1;
    o->woff = t->nparams;
    o->boff = o->woff + (size_t)x->c * cout * k * k;
    t->nparams = o->boff + (size_t)cout;
    o->act = act;
    o->out = add_tensor(t, cout, oh, ow);
    if (drop && t->a.dropout > 0 && t->train) {
        o->drop = 1;
        o->mask = malloc((size_t)t->n * cout * oh * ow);
        if (!o->mask) t->failed = 1;
    }
    return o->out;
}

static int pool(net *t, int in)
{
    tensor *x = &t->t[in];
    op *o = add_op(t, OP_POOL, in);
    if (!o) return in;
    o->out = add_tensor(t, x->c, x->h / 2, x->w / 2);
    o->arg = malloc((size_t)t->n * x->c * (x->h / 2) * (x->w / 2) * sizeof *o->arg);
    if (!o->arg) t->failed = 1;
    return o->out;
}

static int upsample(net *t, int in, int mode)
{
    tensor *x = &t->t[in];
    op *o = add_op(t, OP_UPSAMPLE, in);
    if (!o) return in;
    o->mode = mode;
    o->out = add_tensor(t, x->c, 2 * x->h, 2 * x->w);
    return o->out;
}

static int fourier_mask(net *t, int in)
{
    tensor *x = &t->t[in];
    op *o = add_op(t, OP_FMASK, in);
    if (!o) return in;
    o->fm = t->k->fmask_new(x->h, x->w);
    if (!o->fm) t->failed = 1;
    o->woff = t->nparams++;
    o->out = add_tensor(t, x->c, x->h, x->w);
    return o->out;
}

static int concat(net *t, int a, int b)
{
    op *o = add_op(t, OP_CONCAT, a);
    if (!o) return a;
    o->in2 = b;
    o->out = add_tensor(t, t->t[a].c + t->t[b].c, t->t[a].h, t->t[a].w);
    return o->out;
}

net *net_new(const kernels *k, const net_arch *a, int n, int h, int w, unsigned flags)
{
    int train = (flags & NET_TRAIN) != 0;
    if (net_arch_check(a) || n < 1 || h < 1 || w < 1 || h % net_multiple(a) || w % net_multiple(a)) return NULL;
    net *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->k = k;
    t->a = *a;
    t->n = n;
    t->train = train;
    t->bf16 = (flags & NET_BF16) != 0;
    int cur = add_tensor(t, a->in_ch, h, w);
    if (a->kind == NET_PLAIN) {
        for (int i = 0; i < a->n_layers; i++) {
            int last = i == a->n_layers - 1;
            cur = conv(t, cur, a->filters[i], a->kernels[i], 0, !last, !last);
        }
    } else {
        int skip[8];
        for (int l = 0; l < a->depth; l++) {
            for (int q = 0; q < a->convs; q++) cur = conv(t, cur, level_width(a, l), a->kernel, 0, 1, 1);
            skip[l] = cur;
            if (l < a->depth - 1) cur = pool(t, cur);
        }
        for (int l = a->depth - 2; l >= 0; l--) {
            if (a->up == NET_UP_TRANSPOSED)
                cur = conv(t, cur, level_width(a, l), 2, 1, 0, 0);
            else
                cur = upsample(t, cur, a->up == NET_UP_BILINEAR ? UPSAMPLE_BILINEAR : UPSAMPLE_NEAREST);
            cur = concat(t, skip[l], cur);
            for (int q = 0; q < a->convs; q++) cur = conv(t, cur, level_width(a, l), a->kernel, 0, 1, 1);
        }
        cur = conv(t, cur, a->out_ch, 1, 0, 0, 0);
    }
    if (a->fourier_mask) cur = fourier_mask(t, cur);
    t->scratch = train ? malloc((t->scratch_len ? t->scratch_len : 1) * sizeof(float)) : NULL;
    if ((train && !t->scratch) || t->failed || t->nparams != net_n_params(a)) {
        net_free(t);
        return NULL;
    }
    return t;
}

void net_free(net *t)
{
    if (!t) return;
    for (int i = 0; i < t->nops; i++) {
        if (t->ops[i].cs) t->k->conv_free(t->ops[i].cs);
        if (t->ops[i].fm) t->k->fmask_free(t->ops[i].fm);
        free(t->ops[i].mask);
        free(t->ops[i].arg);
    }
    for (int i = 0; i < t->nt; i++) free(t->t[i].x), free(t->t[i].g);
    free(t->scratch);
    free(t);
}

size_t net_bytes(const net_arch *a, int n, int h, int w, int train)
{
    /* activations and gradients of every tensor, one scratch, per-thread
     * gathers aside: about 2 (convs + 2) tensors per level */
    if (net_arch_check(a)) return 0;
    double total = 0;
    if (a->kind == NET_PLAIN) {
        for (int i = 0; i < a->n_layers; i++) total += (double)a->filters[i];
        total += a->in_ch;
        total *= (double)h * w;
    } else {
        for (int l = 0; l < a->depth; l++) {
            double px = (double)(h >> l) * (w >> l), wl = level_width(a, l);
            total += px * wl * (2.0 * a->convs + 3);
        }
        total += (double)h * w * (a->in_ch + a->out_ch);
    }
    total *= (train ? 2.0 : 1.0) * n * sizeof(float);
    return (size_t)(total * 1.15);
}

float *net_input(net *t)
{
    return t->t[0].x;
}

const char *net_kernel(const net *t)
{
    for (int i = 0; i < t->nops; i++)
        if (t->ops[i].cs) return t->k->conv_impl(t->ops[i].cs);
    return "none";
}

static size_t tensor_len(const net *t, const tensor *x)
{
    return (size_t)t->n * x->c * x->h * x->w;
}

static int out_index(const net *t)
{
    return t->ops[t->nops - 1].out;
}

const float *net_forward(net *t, const float *params, int train, uint64_t seed)
{
    const kernels *k = t->k;
    for (int i = 0; i < t->nops; i++) {
        op *o = &t->ops[i];
        tensor *x = &t->t[o->in], *y = &t->t[o->out];
        size_t ny = tensor_len(t, y);
        switch (o->type) {
        case OP_CONV:
            /* the activation runs inside the convolution's bias pass (sh.act) */
            k->conv_fwd(o->cs, x->x, params + o->woff, params + o->boff, y->x);
            o->masked = o->drop && train && t->train;
            if (o->masked) {
                ss_rng r;
                rng_split(&r, seed, 0xd509ull + (uint64_t)i);
                double keep_p = 1.0 - t->a.dropout;
                for (size_t q = 0; q < ny; q++) o->mask[q] = rng_uniform(&r) < keep_p;
                k->mask_scale_f32(y->x, o->mask, ny, (float)(1.0 / keep_p));
            }
            break;
        case OP_POOL:
            k->maxpool2_f32(x->x, (int64_t)t->n * x->c, x->h, x->w, y->x, o->arg);
            break;
        case OP_UPSAMPLE:
            k->upsample2_f32(x->x, (int64_t)t->n * x->c, x->h, x->w, o->mode, y->x);
            break;
        case OP_FMASK: {
            size_t hw = (size_t)x->h * x->w;
            for (int64_t q = 0; q < (int64_t)t->n * x->c; q++)
                k->fmask_apply(o->fm, x->x + q * hw, params[o->woff], t->a.fmask_rolloff, y->x + q * hw);
            break;
        }
        case OP_CONCAT: {
            tensor *b = &t->t[o->in2];
            int64_t hw = (int64_t)x->h * x->w;
            k->chan_copy_f32(x->x, t->n, x->c, 0, x->c, hw, y->x, y->c, 0, 0);
            k->chan_copy_f32(b->x, t->n, b->c, 0, b->c, hw, y->x, y->c, x->c, 0);
            break;
        }
        }
    }
    tensor *y = &t->t[out_index(t)];
    if (t->a.residual) {
        tensor *x = &t->t[0];
        k->chan_copy_f32(x->x, 1, 1, 0, 1, (int64_t)tensor_len(t, x), y->x, 1, 0, 1);
    }
    return y->x;
}

/* The gradient of tensor id: where it has none yet this pass, the buffer to
 * write it into (and it counts as set); otherwise scratch, which the caller
 * adds with grad_add. */
static float *grad_dst(net *t, int id)
{
    tensor *x = &t->t[id];
    if (!x->g_set) {
        x->g_set = 1;
        return x->g;
    }
    return t->scratch;
}

static void grad_add(net *t, int id, const float *dst)
{
    if (dst == t->scratch) {
        tensor *x = &t->t[id];
        t->k->chan_copy_f32(t->scratch, 1, 1, 0, 1, (int64_t)tensor_len(t, x), x->g, 1, 0, 1);
    }
}

double net_mse_backward(net *t, const float *params, const float *target, float *grad)
{
    const kernels *k = t->k;
    if (!t->train) return NAN;
    for (int i = 0; i < t->nt; i++) t->t[i].g_set = 0;
    int out = out_index(t);
    tensor *y = &t->t[out];
    size_t n = tensor_len(t, y);
    double loss = k->mse_grad_f32(y->x, target, n, 2.0f / (float)n, y->g) / (double)n;
    y->g_set = 1;
    for (int i = t->nops - 1; i >= 0; i--) {
        op *o = &t->ops[i];
        tensor *x = &t->t[o->in], *yo = &t->t[o->out];
        float *g = yo->g;
        size_t ny = tensor_len(t, yo);
        int need_dx = o->in != 0; /* the network's input takes no gradient */
        switch (o->type) {
        case OP_CONV: {
            if (o->masked) k->mask_scale_f32(g, o->mask, ny, (float)(1.0 / (1.0 - t->a.dropout)));
            if (o->act) k->leaky_relu_bwd_f32(yo->x, g, ny, t->a.slope);
            k->conv_bwd_weights(o->cs, x->x, g, grad + o->woff, grad + o->boff);
            if (need_dx) {
                float *d = grad_dst(t, o->in);
                k->conv_bwd_data(o->cs, g, params + o->woff, d);
                grad_add(t, o->in, d);
            }
            break;
        }
        case OP_POOL: {
            float *d = grad_dst(t, o->in);
            k->maxpool2_bwd_f32(g, o->arg, (int64_t)t->n * x->c, x->h, x->w, d);
            grad_add(t, o->in, d);
            break;
        }
        case OP_UPSAMPLE: {
            float *d = grad_dst(t, o->in);
            k->upsample2_bwd_f32(g, (int64_t)t->n * x->c, x->h, x->w, o->mode, d);
            grad_add(t, o->in, d);
            break;
        }
        case OP_FMASK: {
            size_t hw = (size_t)x->h * x->w;
            double c = params[o->woff], ro = t->a.fmask_rolloff, gc = 0;
            float *d = grad_dst(t, o->in);
            for (int64_t q = 0; q < (int64_t)t->n * x->c; q++) {
                gc += k->fmask_cutoff_grad(o->fm, x->x + q * hw, g + q * hw, c, ro);
                k->fmask_apply(o->fm, g + q * hw, c, ro, d + q * hw);
            }
            grad_add(t, o->in, d);
            grad[o->woff] = (float)gc;
            break;
        }
        case OP_CONCAT: {
            tensor *b = &t->t[o->in2];
            int64_t hw = (int64_t)x->h * x->w;
            int sa = x->g_set, sb = b->g_set;
            k->chan_copy_f32(g, t->n, yo->c, 0, x->c, hw, x->g, x->c, 0, sa);
            k->chan_copy_f32(g, t->n, yo->c, x->c, b->c, hw, b->g, b->c, 0, sb);
            x->g_set = b->g_set = 1;
            break;
        }
        }
    }
    return loss;
}
