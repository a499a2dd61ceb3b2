/* The convolution layer through oneDNN's direct convolutions (built where
 * meson finds libdnnl; conv.c's cpu_conv_new decides per shape whether a
 * layer uses it).
 *
 * The interface stays NCHW float32 with PyTorch's weight layouts; oneDNN
 * picks its own (blocked) layouts for every operand ("any"), and each pass
 * reorders its inputs into them and its output back. Weights are reordered
 * on every call, since training changes them between calls. With bf16 the
 * reorders of the inputs round them to bfloat16 (nearest even) and the
 * outputs stay float32, as in the gemm-bf16 products.
 *
 * oneDNN runs on the same OpenMP runtime (libgomp), with the number of
 * threads OpenMP gives when the primitives are made. Its CPU kernels use no
 * atomics: a primitive's work split and summation order follow from the
 * shape, the ISA and that thread count, so results repeat bit for bit for a
 * given thread count.
 *
 * The reordered copies and oneDNN's scratchpad (user mode) live only while a
 * pass runs, so one workspace per calling thread holds them for every layer:
 * memory grows with the largest layer, not with the number of layers, and
 * states used on different threads at once do not share it. */
#include "nn.h"

#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One operand of a pass: the caller's array (user) and, where oneDNN wants
 * another layout or type, its own copy (prim) with the reorder between. */
typedef struct {
    int arg;  /* DNNL_ARG_... */
    int out;  /* written by the pass: reordered to the user's layout after it */
    dnnl_memory_t user, prim;
    dnnl_primitive_t reorder;
    size_t off; /* prim's place in the workspace */
} dn_arg;

typedef struct {
    dnnl_primitive_t p;
    dn_arg a[3];
    dnnl_memory_t bias; /* fwd only */
    dnnl_memory_t scratch;
    size_t scratch_off, need; /* the scratchpad's place; workspace bytes in all */
} dn_pass;

struct conv_dnnl {
    conv_shape sh;
    int oh, ow;
    dnnl_stream_t stream;
    dn_pass fwd, bwd_data, bwd_weights;
    float *zero_bias;
    char impl_info[64];
};

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void engine_init(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

static size_t round64(size_t n)
{
    return (n + 63) / 64 * 64;
}

typedef struct {
    char *p;
    size_t len;
} workspace;

static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_ok;

static void ws_free(void *w)
{
    workspace *x = w;
    free(x->p);
    free(x);
}

static void ws_init(void)
{
    ws_ok = pthread_key_create(&ws_key, ws_free) == 0;
}

/* This thread's workspace of at least len bytes, or NULL. */
static char *ws_get(size_t len)
{
    pthread_once(&ws_once, ws_init);
    if (!ws_ok) return NULL;
    workspace *w = pthread_getspecific(ws_key);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w || pthread_setspecific(ws_key, w)) {
            free(w);
            return NULL;
        }
    }
    if (w->len < len) {
        free(w->p);
        w->p = aligned_alloc(64, round64(len));
        w->len = w->p ? len : 0;
    }
    return w->p;
}

/* An operand; a reordered copy takes its place in the workspace at *need. */
static int arg_init(dn_arg *a, int arg, int out, const dnnl_memory_desc_t *user_md,
                    const dnnl_memory_desc_t *prim_md, size_t *need)
{
    a->arg = arg;
    a->out = out;
    if (dnnl_memory_create(&a->user, user_md, engine, DNNL_MEMORY_NONE) != dnnl_success) return -1;
    if (dnnl_memory_desc_equal(user_md, prim_md)) {
        a->prim = a->user;
        return 0;
    }
    a->off = *need;
    *need += round64(dnnl_memory_desc_get_size(prim_md));
    if (dnnl_memory_create(&a->prim, prim_md, engine, DNNL_MEMORY_NONE) != dnnl_success) return -1;
    dnnl_primitive_desc_t rpd;
    if (dnnl_reorder_primitive_desc_create(&rpd, out ? prim_md : user_md, engine, out ? user_md : prim_md, engine,
                                           NULL) != dnnl_success)
        return -1;
    dnnl_status_t st = dnnl_primitive_create(&a->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    return st == dnnl_success ? 0 : -1;
}

static void arg_free(dn_arg *a)
{
    if (a->reorder) dnnl_primitive_destroy(a->reorder);
    if (a->prim && a->prim != a->user) dnnl_memory_destroy(a->prim);
    if (a->user) dnnl_memory_destroy(a->user);
}

static void pass_free(dn_pass *p)
{
    if (p->p) dnnl_primitive_destroy(p->p);
    for (int i = 0; i < 3; i++) arg_free(&p->a[i]);
    if (p->bias) dnnl_memory_destroy(p->bias);
    if (p->scratch) dnnl_memory_destroy(p->scratch);
}

static const dnnl_memory_desc_t *md_of(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static void reorder(conv_dnnl *c, const dn_arg *a)
{
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a->out ? a->prim : a->user}, {DNNL_ARG_TO, a->out ? a->user : a->prim}};
    dnnl_primitive_execute(a->reorder, c->stream, 2, args);
}

/* Runs a pass on the caller's arrays ptr[i] (for operand a[i]). The
 * workspace was made for the thread that made the state; another thread
 * that cannot have one has no way to report it (the entries return nothing),
 * so it aborts. */
static void pass_run(conv_dnnl *c, dn_pass *p, void *const ptr[3])
{
    char *ws = ws_get(p->need);
    if (!ws && p->need) abort();
    dnnl_exec_arg_t args[5];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        dn_arg *a = &p->a[i];
        dnnl_memory_set_data_handle(a->user, ptr[i]);
        if (a->reorder) dnnl_memory_set_data_handle(a->prim, ws + a->off);
        if (a->reorder && !a->out) reorder(c, a);
        args[n++] = (dnnl_exec_arg_t){a->arg, a->prim};
    }
    if (p->bias) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->bias};
    if (p->scratch) {
        dnnl_memory_set_data_handle(p->scratch, ws + p->scratch_off);
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch};
    }
    dnnl_primitive_execute(p->p, c->stream, n, args);
    for (int i = 0; i < 3; i++)
        if (p->a[i].reorder && p->a[i].out) reorder(c, &p->a[i]);
    dnnl_stream_wait(c->stream);
}

void conv_dnnl_free(conv_dnnl *c)
{
    if (!c) return;
    pass_free(&c->fwd);
    pass_free(&c->bwd_data);
    pass_free(&c->bwd_weights);
    if (c->stream) dnnl_stream_destroy(c->stream);
    free(c->zero_bias);
    free(c);
}

/* The primitive of a pass, its operands and its scratchpad, and this
 * thread's workspace for them. */
static int pass_init(dn_pass *p, dnnl_primitive_desc_t pd, const int args[3], const int outs[3],
                     const dnnl_query_t queries[3], const dnnl_memory_desc_t *const user[3])
{
    for (int i = 0; i < 3; i++)
        if (arg_init(&p->a[i], args[i], outs[i], user[i], md_of(pd, queries[i]), &p->need)) return -1;
    const dnnl_memory_desc_t *smd = md_of(pd, dnnl_query_scratchpad_md);
    if (smd && dnnl_memory_desc_get_size(smd)) {
        p->scratch_off = p->need;
        p->need += round64(dnnl_memory_desc_get_size(smd));
        if (dnnl_memory_create(&p->scratch, smd, engine, DNNL_MEMORY_NONE) != dnnl_success) return -1;
    }
    if (p->need && !ws_get(p->need)) return -1;
    return dnnl_primitive_create(&p->p, pd) == dnnl_success ? 0 : -1;
}

/* A name for what oneDNN chose ("ref" means its reference loops, which are
 * never faster than the gemm version). */
static const char *impl_of(const_dnnl_primitive_desc_t pd)
{
    const char *s = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success || !s) return "?";
    return s;
}

conv_dnnl *conv_dnnl_new(const conv_shape *s, int bf16)
{
    int oh, ow;
    if (conv_out_size(s, &oh, &ow)) return NULL;
    pthread_once(&engine_once, engine_init);
    if (!engine) return NULL;
    conv_dnnl *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->sh = *s;
    c->oh = oh;
    c->ow = ow;
    dnnl_primitive_desc_t fpd = NULL, dpd = NULL, wpd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    if (dnnl_stream_create(&c->stream, engine, dnnl_stream_default_flags) != dnnl_success) goto fail;

    int k = s->k, str = s->stride, pad = s->transposed && k == str ? 0 : k / 2;
    /* oneDNN wants the right padding that makes the sizes exact: (big - k +
     * pl + pr) / stride + 1 = small with no remainder, where big is the
     * convolution's input (the transposed one's output) */
    int big_h = s->transposed ? oh : s->h, big_w = s->transposed ? ow : s->w;
    int small_h = s->transposed ? s->h : oh, small_w = s->transposed ? s->w : ow;
    dnnl_dims_t strides = {str, str}, pl = {pad, pad},
                pr = {(small_h - 1) * str + k - big_h - pad, (small_w - 1) * str + k - big_w - pad};
    dnnl_dims_t xd = {s->n, s->cin, s->h, s->w}, yd = {s->n, s->cout, oh, ow}, bd = {s->cout};
    dnnl_dims_t wd = {s->cout, s->cin, k, k};
    dnnl_data_type_t in_t = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t ux, uy, uw, ub, ax, ay, aw, ax_in, ay_in;
    if (dnnl_memory_desc_init_by_tag(&ux, 4, xd, dnnl_f32, dnnl_nchw) ||
        dnnl_memory_desc_init_by_tag(&uy, 4, yd, dnnl_f32, dnnl_nchw) ||
        /* PyTorch's layouts: cout x cin x k x k, transposed cin x cout x k x k */
        dnnl_memory_desc_init_by_tag(&uw, 4, wd, dnnl_f32, s->transposed ? dnnl_iohw : dnnl_oihw) ||
        dnnl_memory_desc_init_by_tag(&ub, 1, bd, dnnl_f32, dnnl_x) ||
        dnnl_memory_desc_init_by_tag(&ub, 1, bd, dnnl_f32, dnnl_x) ||
        dnnl_memory_desc_init_by_tag(&ax, 4, xd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&ay, 4, yd, dnnl_f32, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&ax_in, 4, xd, in_t, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&ay_in, 4, yd, in_t, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&aw, 4, wd, in_t, dnnl_format_tag_any))
        goto fail;
    dnnl_memory_desc_t aw32;
    if (dnnl_memory_desc_init_by_tag(&aw32, 4, wd, dnnl_f32, dnnl_format_tag_any)) goto fail;

    if (dnnl_primitive_attr_create(&attr) || dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user))
        goto fail;
    dnnl_primitive_attr_t fattr = NULL;
    if (dnnl_primitive_attr_clone(&fattr, attr)) goto fail;
    if (s->act) {
        if (dnnl_post_ops_create(&po) || dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, s->slope, 0.0f) ||
            dnnl_primitive_attr_set_post_ops(fattr, po)) {
            dnnl_primitive_attr_destroy(fattr);
            goto fail;
        }
    }
    dnnl_convolution_desc_t fd, dd, wdsc;
    dnnl_status_t e1, e2, e3;
    if (!s->transposed) {
        e1 = dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &ax_in, &aw, &ub,
                                                &ay, strides, pl, pr);
        e2 = dnnl_convolution_backward_data_desc_init(&dd, dnnl_convolution_direct, &ax, &aw, &ay_in, strides, pl, pr);
        e3 = dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &ax_in, &aw32, NULL, &ay_in,
                                                         strides, pl, pr);
    } else {
        e1 = dnnl_deconvolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_deconvolution_direct, &ax_in, &aw,
                                                  &ub, &ay, strides, pl, pr);
        e2 = dnnl_deconvolution_backward_data_desc_init(&dd, dnnl_deconvolution_direct, &ax, &aw, &ay_in, strides, pl,
                                                        pr);
        e3 = dnnl_deconvolution_backward_weights_desc_init(&wdsc, dnnl_deconvolution_direct, &ax_in, &aw32, NULL,
                                                           &ay_in, strides, pl, pr);
    }
    if (e1 || e2 || e3) {
        dnnl_primitive_attr_destroy(fattr);
        goto fail;
    }
    dnnl_status_t e4 = dnnl_primitive_desc_create(&fpd, &fd, fattr, engine, NULL);
    dnnl_primitive_attr_destroy(fattr);
    if (e4 || dnnl_primitive_desc_create(&dpd, &dd, attr, engine, fpd) ||
        dnnl_primitive_desc_create(&wpd, &wdsc, attr, engine, fpd))
        goto fail;
    /* oneDNN's reference loops are a fallback, not a candidate */
    const char *fi = impl_of(fpd), *di = impl_of(dpd), *wi = impl_of(wpd);
    if (strstr(fi, "ref") || strstr(di, "ref") || strstr(wi, "ref")) goto fail;
    snprintf(c->impl_info, sizeof c->impl_info, "%s", fi);

    {
        const int args[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST}, outs[3] = {0, 0, 1};
        const dnnl_query_t q[3] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
        const dnnl_memory_desc_t *u[3] = {&ux, &uw, &uy};
        if (pass_init(&c->fwd, fpd, args, outs, q, u)) goto fail;
    }
    {
        const int args[3] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC}, outs[3] = {0, 0, 1};
        const dnnl_query_t q[3] = {dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_diff_src_md};
        const dnnl_memory_desc_t *u[3] = {&uy, &uw, &ux};
        if (pass_init(&c->bwd_data, dpd, args, outs, q, u)) goto fail;
    }
    {
        const int args[3] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS}, outs[3] = {0, 0, 1};
        const dnnl_query_t q[3] = {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md};
        const dnnl_memory_desc_t *u[3] = {&ux, &uy, &uw};
        if (pass_init(&c->bwd_weights, wpd, args, outs, q, u)) goto fail;
    }
    c->zero_bias = calloc((size_t)s->cout, sizeof *c->zero_bias);
    if (!c->zero_bias) goto fail;
    if (dnnl_memory_create(&c->fwd.bias, &ub, engine, DNNL_MEMORY_NONE)) goto fail;
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(dpd);
    dnnl_primitive_desc_destroy(wpd);
    dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    return c;
fail:
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (dpd) dnnl_primitive_desc_destroy(dpd);
    if (wpd) dnnl_primitive_desc_destroy(wpd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    conv_dnnl_free(c);
    return NULL;
}

const char *conv_dnnl_info(const conv_dnnl *c)
{
    return c->impl_info;
}

void conv_dnnl_fwd(conv_dnnl *c, const float *x, const float *w, const float *b, float *y)
{
    dnnl_memory_set_data_handle(c->fwd.bias, (void *)(b ? b : c->zero_bias));
    void *const ptr[3] = {(void *)x, (void *)w, y};
    pass_run(c, &c->fwd, ptr);
}

void conv_dnnl_bwd_data(conv_dnnl *c, const float *dy, const float *w, float *dx)
{
    void *const ptr[3] = {(void *)dy, (void *)w, dx};
    pass_run(c, &c->bwd_data, ptr);
}

void conv_dnnl_bwd_weights(conv_dnnl *c, const float *x, const float *dy, float *dw)
{
    void *const ptr[3] = {(void *)x, (void *)dy, dw};
    pass_run(c, &c->bwd_weights, ptr);
}
