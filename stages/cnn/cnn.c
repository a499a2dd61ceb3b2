#include "cnn.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *cnn_train_check(const json_t *p)
{
    double lo = json_number_value(json_object_get(p, "p_low")), hi = json_number_value(json_object_get(p, "p_high"));
    if (!(lo < hi)) return "p_low must be below p_high";
    /* the U-Net's parameters, where the stage has them */
    json_t *depth = json_object_get(p, "depth"), *mw = json_object_get(p, "max_width"),
           *kernel = json_object_get(p, "kernel");
    json_int_t d = json_integer_value(depth), patch = json_integer_value(json_object_get(p, "patch"));
    if (depth && d >= 1 && d <= 8 && patch % ((json_int_t)1 << (d - 1)))
        return "patch must be a multiple of 2^(depth-1)";
    if (mw && json_integer_value(mw) < json_integer_value(json_object_get(p, "width")))
        return "max_width must be at least width";
    if (kernel && json_integer_value(kernel) % 2 == 0) return "kernel must be odd";
    return NULL;
}

void cnn_unet_from_params(stage_ctx *c, int in_ch, int out_ch, net_arch *a)
{
    memset(a, 0, sizeof *a);
    const char *up = ctx_str(c, "upsampling");
    *a = (net_arch){
        .kind = NET_UNET,
        .in_ch = in_ch,
        .out_ch = out_ch,
        .kernel = (int)ctx_int(c, "kernel"),
        .depth = (int)ctx_int(c, "depth"),
        .width = (int)ctx_int(c, "width"),
        .max_width = (int)ctx_int(c, "max_width"),
        .convs = (int)ctx_int(c, "convs"),
        .up = !strcmp(up, "bilinear") ? NET_UP_BILINEAR : !strcmp(up, "nearest") ? NET_UP_NEAREST : NET_UP_TRANSPOSED,
        .residual = ctx_bool(c, "residual"),
        .slope = (float)ctx_num(c, "slope"),
        .dropout = (float)ctx_num(c, "dropout"),
        .fourier_mask = ctx_bool(c, "fourier_mask"),
        .fmask_rolloff = (float)ctx_num(c, "fmask_rolloff"),
    };
}

/* ---- reading inputs ------------------------------------------------------------------ */

int cnn_read_input(stage_ctx *c, const char *port, int64_t *repeats, int64_t shape[3], float **data, char *label,
                   size_t label_len)
{
    *data = NULL;
    ctx_input_label(c, port, label, label_len);
    store_array *a;
    int rc = ctx_open_input(c, port, &a);
    if (rc != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(a, &info)) != SS_OK) goto done;
    int want4 = repeats != NULL;
    if (info.rank != 3 && !(want4 && info.rank == 4)) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s has rank %d; expected %s", ctx_stage_name(c), label, info.rank,
                     want4 ? "repeats R x Z x Y x X" : "an image Z x Y x X");
        goto done;
    }
    int off = info.rank - 3;
    int64_t R = off ? info.shape[0] : 1;
    for (int i = 0; i < 3; i++) shape[i] = info.shape[off + i];
    if (repeats) *repeats = R;
    size_t n = (size_t)(R * shape[0] * shape[1] * shape[2]);
    *data = malloc((n ? n : 1) * sizeof **data);
    if (!*data) {
        rc = ss_nomem(n * sizeof **data, "%s: %s in memory", ctx_stage_name(c), label);
        goto done;
    }
    int64_t st[4] = {0}, ct[4];
    for (int i = 0; i < info.rank; i++) ct[i] = info.shape[i];
    rc = ctx_read_f32(c, a, label, info.rank, st, ct, *data);
done:
    store_array_close(a);
    if (rc != SS_OK) free(*data), *data = NULL;
    return rc;
}

int cnn_read_mask(stage_ctx *c, const char *port, int64_t Z, uint8_t *use, int64_t *n_used)
{
    const char *stg, *arr;
    memset(use, 1, (size_t)Z);
    *n_used = Z;
    if (ctx_input(c, port, &stg, &arr) != 1) return SS_OK;
    store_array *a;
    int rc = store_array_open(ctx_input_store(c, port), stg, arr, &a);
    if (rc != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(a, &info)) == SS_OK && (info.rank != 1 || info.shape[0] != Z))
        rc = ss_fail(SS_ERR_INPUT, "%s: mask %s.%s has %lld values; expected one per plane (%lld)",
                     ctx_stage_name(c), stg, arr, (long long)(info.rank == 1 ? info.shape[0] : -1), (long long)Z);
    if (rc == SS_OK) {
        int64_t st[1] = {0}, ct[1] = {Z};
        rc = store_array_read(a, st, ct, DT_U8, use);
    }
    store_array_close(a);
    if (rc != SS_OK) return rc;
    *n_used = 0;
    for (int64_t z = 0; z < Z; z++) *n_used += use[z] = use[z] != 0;
    if (!*n_used) return ss_fail(SS_ERR_INPUT, "%s: mask %s.%s selects no plane", ctx_stage_name(c), stg, arr);
    return SS_OK;
}

/* ---- normalisation ------------------------------------------------------------------ */

int cnn_norm_fit(stage_ctx *c, const float *x, size_t n, cnn_norm *nm)
{
    nm->offset = 0;
    nm->scale = 1;
    if (strcmp(ctx_str(c, "normalize"), "percentile")) return SS_OK;
    double q[2] = {ctx_num(c, "p_low"), ctx_num(c, "p_high")};
    pct_state *ps = pct_new(2, q, 1);
    if (!ps) return ss_nomem(9u << 20, "the percentiles of the training input");
    while (pct_need_pass(ps)) {
        pct_feed(ps, x, n);
        pct_end_pass(ps);
    }
    double lo = pct_result(ps, 0), hi = pct_result(ps, 1);
    pct_free(ps);
    if (!(hi > lo))
        return ss_fail(SS_ERR_INPUT,
                       "%s: the training input is constant between its %g and %g percentiles (%g); nothing to learn",
                       ctx_stage_name(c), q[0], q[1], lo);
    nm->offset = lo;
    nm->scale = 1.0 / (hi - lo);
    return SS_OK;
}

void cnn_norm_apply(const cnn_norm *nm, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(((double)x[i] - nm->offset) * nm->scale);
}

void cnn_norm_invert(const cnn_norm *nm, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] / nm->scale + nm->offset);
}

/* ---- training ------------------------------------------------------------------------ */

/* One of the 8 symmetries of the square applied to C planes of P x P, in
 * place through tmp: bit 0 flips x, bit 1 flips y, bit 2 transposes. */
static void dihedral(float *x, int C, int P, int d, float *tmp)
{
    if (!d) return;
    size_t pp = (size_t)P * P;
    for (int ch = 0; ch < C; ch++) {
        float *p = x + ch * pp;
        memcpy(tmp, p, pp * sizeof *tmp);
        for (int i = 0; i < P; i++)
            for (int j = 0; j < P; j++) {
                int si = d & 4 ? j : i, sj = d & 4 ? i : j;
                if (d & 2) si = P - 1 - si;
                if (d & 1) sj = P - 1 - sj;
                p[(size_t)i * P + j] = tmp[(size_t)si * P + sj];
            }
    }
}

int cnn_train(stage_ctx *c, const net_arch *a, const cnn_pairs *p, const cnn_norm *nm, float **params_out)
{
    const kernels *k = ctx_kernels(c);
    int64_t steps = ctx_int(c, "steps");
    int B = (int)ctx_int(c, "batch"), P = (int)ctx_int(c, "patch");
    if (P > p->Y || P > p->X)
        return ss_fail(SS_ERR_INPUT, "%s: training patches of %d x %d do not fit in planes of %lld x %lld (lower "
                       "patch)", ctx_stage_name(c), P, P, (long long)p->Y, (long long)p->X);
    int adam = !strcmp(ctx_str(c, "optimizer"), "adam"), augment = ctx_bool(c, "augment");
    float lr = (float)ctx_num(c, "lr"), b1 = (float)ctx_num(c, "beta1"), b2 = (float)ctx_num(c, "beta2"),
          eps = (float)ctx_num(c, "adam_eps"), mom = (float)ctx_num(c, "momentum");
    size_t np = net_n_params(a), pin = (size_t)a->in_ch * P * P, pout = (size_t)a->out_ch * P * P;
    net *nt = net_new(k, a, B, P, P, NET_TRAIN | (ctx_bool(c, "bf16") ? NET_BF16 : 0));
    float *params = malloc(np * sizeof *params);
    float *grad = malloc(np * sizeof *grad), *m1 = calloc(np, sizeof *m1), *m2 = calloc(np, sizeof *m2);
    float *target = malloc((size_t)B * pout * sizeof *target), *tmp = malloc((size_t)P * P * sizeof *tmp);
    double *curve_loss = calloc((size_t)steps, sizeof *curve_loss), *curve_s = calloc((size_t)steps, sizeof *curve_s);
    if (!nt || !params || !grad || !m1 || !m2 || !target || !tmp || !curve_loss || !curve_s) {
        size_t need = net_bytes(a, B, P, P, 1) + 4 * np * sizeof(float);
        net_free(nt);
        free(params), free(grad), free(m1), free(m2), free(target), free(tmp), free(curve_loss), free(curve_s);
        return ss_nomem(need, "training a network of %zu parameters on batches of %d patches of %d x %d", np, B, P,
                        P);
    }
    int64_t step = 0;
    double elapsed0 = 0;
    ckpt_entry e[6] = {
        {"params", params, np * sizeof *params},
        {"moment1", m1, np * sizeof *m1},
        {"moment2", m2, np * sizeof *m2},
        {"curve_loss", curve_loss, (size_t)steps * sizeof *curve_loss},
        {"curve_seconds", curve_s, (size_t)steps * sizeof *curve_s},
        {"elapsed", &elapsed0, sizeof elapsed0},
    };
    uint64_t seed = ctx_seed(c);
    net_init(a, params, seed);
    int reinit;
    step = train_resume(c, e, 6, steps, &reinit);
    if (reinit) {
        net_init(a, params, seed);
        memset(m1, 0, np * sizeof *m1);
        memset(m2, 0, np * sizeof *m2);
        elapsed0 = 0;
    }
    int rc = SS_OK;
    int64_t saved = step; /* the step of the checkpoint on disk (0: none) */
    double t0 = ss_now() - elapsed0;
    ctx_progress_begin(c, "steps", steps);
    for (; rc == SS_OK && step < steps; step++) {
        /* the batch of step s is drawn from (seed, s) alone: a resumed
         * training sees the same batches */
        ss_rng rr;
        rng_split(&rr, seed, 0xba7c0000ull + (uint64_t)step);
        float *in = net_input(nt);
        for (int b = 0; b < B; b++) {
            p->fill(p->ctx, &rr, P, in + (size_t)b * pin, target + (size_t)b * pout);
            if (augment) {
                int d = (int)(rng_next(&rr) & 7);
                dihedral(in + (size_t)b * pin, a->in_ch, P, d, tmp);
                dihedral(target + (size_t)b * pout, a->out_ch, P, d, tmp);
            }
        }
        net_forward(nt, params, 1, seed ^ (0xd0d0ull + (uint64_t)step * 0x9e3779b97f4a7c15ull));
        double loss = net_mse_backward(nt, params, target, grad);
        if (!isfinite(loss)) {
            char kept[96] = "no checkpoint was saved yet";
            if (saved) snprintf(kept, sizeof kept, "the checkpoint of step %lld is kept", (long long)saved);
            rc = ss_fail(SS_ERR_FAILED, "%s: the loss became %s at step %lld (learning rate too high?); %s",
                         ctx_stage_name(c), isnan(loss) ? "NaN" : "infinite", (long long)step + 1, kept);
            break;
        }
        if (adam)
            k->adam_step(params, grad, m1, m2, np, step + 1, lr, b1, b2, eps);
        else
            k->sgd_step(params, grad, m1, np, lr, mom, 0);
        curve_loss[step] = loss;
        curve_s[step] = ss_now() - t0;
        ctx_progress(c, step + 1);
        rc = train_checkpoint(c, step + 1, e, 6, &elapsed0, t0, &saved);
    }
    if (rc == SS_OK) {
        rc = train_write_curve(c, steps, curve_loss, curve_s);
        if (rc == SS_OK) {
            ctx_attr(c, "kernel", json_string(net_kernel(nt)));
            ctx_attr(c, "n_params", json_integer((json_int_t)np));
            if (a->fourier_mask) ctx_attr(c, "fmask_cutoff", json_real(params[np - 1]));
            rc = cnn_model_save(c, a, params, nm);
        }
    }
    net_free(nt);
    free(grad), free(m1), free(m2), free(target), free(tmp), free(curve_loss), free(curve_s);
    if (rc == SS_OK && params_out) *params_out = params;
    else free(params);
    return rc;
}

/* ---- tiled inference ----------------------------------------------------------------- */

struct cnn_tiler {
    const kernels *k;
    net_arch a;
    net *nt;
    int64_t Y, X;
    int tile, overlap, side; /* side = tile + 2 overlap */
};

static int round_up(int64_t v, int m)
{
    return (int)((v + m - 1) / m * m);
}

cnn_tiler *cnn_tiler_new(const kernels *k, const net_arch *a, int64_t Y, int64_t X, int tile, int overlap,
                         int bf16)
{
    int m = net_multiple(a);
    if (overlap < 0) overlap = net_halo(a);
    overlap = round_up(overlap, m);
    /* no larger than the plane needs */
    int64_t big = Y > X ? Y : X;
    if (tile > big) tile = (int)big;
    tile = round_up(tile < 1 ? 1 : tile, m);
    cnn_tiler *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    *t = (cnn_tiler){k, *a, NULL, Y, X, tile, overlap, tile + 2 * overlap};
    t->nt = net_new(k, a, 1, t->side, t->side, bf16 ? NET_BF16 : 0);
    if (!t->nt) {
        free(t);
        return NULL;
    }
    return t;
}

void cnn_tiler_free(cnn_tiler *t)
{
    if (!t) return;
    net_free(t->nt);
    free(t);
}

/* numpy 'symmetric' reflection (edge repeated), repeated for any distance */
static int64_t reflect(int64_t i, int64_t n)
{
    if (n == 1) return 0;
    int64_t period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

void cnn_tiler_run(cnn_tiler *t, const float *params, const float *in, float *out)
{
    int S = t->side, O = t->overlap, Tc = t->tile;
    int64_t Y = t->Y, X = t->X;
    size_t plane = (size_t)(Y * X), sp = (size_t)S * S;
    for (int64_t ty = 0; ty < Y; ty += Tc)
        for (int64_t tx = 0; tx < X; tx += Tc) {
            float *buf = net_input(t->nt);
            for (int ch = 0; ch < t->a.in_ch; ch++)
                for (int i = 0; i < S; i++) {
                    const float *row = in + ch * plane + reflect(ty - O + i, Y) * X;
                    float *dst = buf + ch * sp + (size_t)i * S;
                    for (int j = 0; j < S; j++) dst[j] = row[reflect(tx - O + j, X)];
                }
            const float *res = net_forward(t->nt, params, 0, 0);
            int64_t hy = Y - ty < Tc ? Y - ty : Tc, hx = X - tx < Tc ? X - tx : Tc;
            for (int ch = 0; ch < t->a.out_ch; ch++)
                for (int64_t i = 0; i < hy; i++)
                    memcpy(out + ch * plane + (ty + i) * X + tx, res + ch * sp + (size_t)(O + i) * S + O,
                           (size_t)hx * sizeof *out);
        }
}

int cnn_stage_tiler(stage_ctx *c, const net_arch *a, int64_t Y, int64_t X, cnn_tiler **out)
{
    int tile = (int)ctx_int(c, "tile");
    const json_t *ov = json_object_get(ctx_params(c), "overlap");
    int overlap = json_is_integer(ov) ? (int)json_integer_value(ov) : -1;
    *out = cnn_tiler_new(ctx_kernels(c), a, Y, X, tile, overlap, ctx_bool(c, "bf16"));
    if (*out) return SS_OK;
    int side = tile + 2 * (overlap < 0 ? net_halo(a) : overlap);
    return ss_nomem(net_bytes(a, 1, side, side, 0), "a tile network for planes of %lld x %lld (lower tile)",
                    (long long)Y, (long long)X);
}

void cnn_tiler_attrs(stage_ctx *c, const cnn_tiler *t)
{
    ctx_attr(c, "tile", json_integer(t->tile));
    ctx_attr(c, "overlap", json_integer(t->overlap));
    ctx_attr(c, "kernel", json_string(net_kernel(t->nt)));
    const char *wst, *wname;
    if (ctx_input(c, "model", &wst, &wname) == 1)
        ctx_attr(c, "model", json_pack("{s:s,s:s}", "stage", wst, "array", wname));
}

/* ---- the stored model --------------------------------------------------------------- */

static const char *up_name(int up)
{
    return up == NET_UP_BILINEAR ? "bilinear" : up == NET_UP_NEAREST ? "nearest" : "transposed";
}

int cnn_model_save(stage_ctx *c, const net_arch *a, const float *params, const cnn_norm *nm)
{
    int rc = train_write_weights(c, "weights", params, (int64_t)net_n_params(a));
    if (rc != SS_OK) return rc;
    json_t *arch = json_pack("{s:i,s:s,s:i,s:i,s:b,s:f,s:f}", "format", CNN_MODEL_FORMAT, "kind",
                             a->kind == NET_UNET ? "unet" : "plain", "in_channels", a->in_ch, "out_channels",
                             a->out_ch, "residual", a->residual, "slope", (double)a->slope, "dropout",
                             (double)a->dropout);
    if (a->kind == NET_UNET) {
        json_object_set_new(arch, "depth", json_integer(a->depth));
        json_object_set_new(arch, "width", json_integer(a->width));
        json_object_set_new(arch, "max_width", json_integer(a->max_width));
        json_object_set_new(arch, "kernel", json_integer(a->kernel));
        json_object_set_new(arch, "convs", json_integer(a->convs));
        json_object_set_new(arch, "upsampling", json_string(up_name(a->up)));
        json_object_set_new(arch, "fourier_mask", json_boolean(a->fourier_mask));
        json_object_set_new(arch, "fmask_rolloff", json_real(a->fmask_rolloff));
    } else {
        json_t *ls = json_array();
        for (int i = 0; i < a->n_layers; i++)
            json_array_append_new(ls, json_pack("{s:i,s:i}", "kernel", a->kernels[i], "filters", a->filters[i]));
        json_object_set_new(arch, "layers", ls);
    }
    json_object_set_new(arch, "layout",
                        json_string("per convolution in build order (stages/cnn/net.h): weights as PyTorch "
                                    "(cout, cin, k, k; transposed: cin, cout, k, k), then the cout biases"));
    ctx_attr(c, "cnn", arch);
    ctx_attr(c, "normalisation", json_pack("{s:f,s:f,s:s}", "offset", nm->offset, "scale", nm->scale, "map",
                                           "x' = (x - offset) * scale before the network, inverted after"));
    return SS_OK;
}

static int json_int_in(const json_t *o, const char *key, int lo, int hi, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) return -1;
    *out = (int)json_integer_value(v);
    return 0;
}

int cnn_model_load(store *st, const char *stage, const char *array, net_arch *a, float **params, cnn_norm *nm)
{
    memset(a, 0, sizeof *a);
    *params = NULL;
    json_t *attrs;
    int rc = store_stage_attrs(st, stage, &attrs);
    if (rc != SS_OK) return rc;
    json_t *j = json_object_get(attrs, "cnn"), *jn = json_object_get(attrs, "normalisation");
    const char *why = NULL;
    char whybuf[160];
    if (!json_is_object(j) || !json_is_object(jn)) {
        why = "it holds no network description (is it a CNN training stage?)";
    } else if (json_integer_value(json_object_get(j, "format")) != CNN_MODEL_FORMAT) {
        snprintf(whybuf, sizeof whybuf, "the model has format version %lld; this program reads version %d%s",
                 (long long)json_integer_value(json_object_get(j, "format")), CNN_MODEL_FORMAT,
                 json_integer_value(json_object_get(j, "format")) > CNN_MODEL_FORMAT ? " (made by a newer sirenstack)"
                                                                                     : "");
        why = whybuf;
    } else {
        const char *kind = json_string_value(json_object_get(j, "kind"));
        a->kind = kind && !strcmp(kind, "unet") ? NET_UNET : kind && !strcmp(kind, "plain") ? NET_PLAIN : 0;
        a->residual = json_is_true(json_object_get(j, "residual"));
        a->slope = (float)json_number_value(json_object_get(j, "slope"));
        a->dropout = (float)json_number_value(json_object_get(j, "dropout"));
        int bad = json_int_in(j, "in_channels", 1, 64, &a->in_ch) | json_int_in(j, "out_channels", 1, 64, &a->out_ch);
        if (a->kind == NET_UNET) {
            const char *up = json_string_value(json_object_get(j, "upsampling"));
            a->up = up && !strcmp(up, "bilinear") ? NET_UP_BILINEAR : up && !strcmp(up, "nearest") ? NET_UP_NEAREST
                                                                                                   : NET_UP_TRANSPOSED;
            a->fourier_mask = json_is_true(json_object_get(j, "fourier_mask"));
            a->fmask_rolloff = (float)json_number_value(json_object_get(j, "fmask_rolloff"));
            bad |= json_int_in(j, "depth", 1, 8, &a->depth) | json_int_in(j, "width", 1, 1024, &a->width) |
                   json_int_in(j, "max_width", 1, 2048, &a->max_width) | json_int_in(j, "kernel", 1, 15, &a->kernel) |
                   json_int_in(j, "convs", 1, 4, &a->convs);
        } else if (a->kind == NET_PLAIN) {
            json_t *ls = json_object_get(j, "layers");
            a->n_layers = (int)json_array_size(ls);
            if (a->n_layers > NET_MAX_LAYERS) bad = 1;
            for (int i = 0; !bad && i < a->n_layers; i++)
                bad |= json_int_in(json_array_get(ls, (size_t)i), "kernel", 1, 15, &a->kernels[i]) |
                       json_int_in(json_array_get(ls, (size_t)i), "filters", 1, 2048, &a->filters[i]);
        }
        nm->offset = json_number_value(json_object_get(jn, "offset"));
        nm->scale = json_number_value(json_object_get(jn, "scale"));
        if (bad) why = "its network description is incomplete or out of range";
        else if ((why = net_arch_check(a))) {
            snprintf(whybuf, sizeof whybuf, "its network description is invalid: %s", why);
            why = whybuf;
        } else if (!isfinite(nm->offset) || !isfinite(nm->scale) || nm->scale == 0) {
            why = "its normalisation is invalid";
        }
    }
    if (why) {
        rc = ss_fail(SS_ERR_INPUT, "%s: model '%s': %s", store_path(st), stage, why);
        json_decref(attrs);
        return rc;
    }
    json_decref(attrs);
    store_array *wa;
    if ((rc = store_array_open(st, stage, array, &wa)) != SS_OK) return rc;
    array_info info;
    size_t np = net_n_params(a);
    rc = store_array_info(wa, &info);
    if (rc == SS_OK && (info.rank != 1 || info.shape[0] != (int64_t)np))
        rc = ss_fail(SS_ERR_INPUT, "%s: '%s/%s' holds %lld values; its architecture needs %zu", store_path(st),
                     stage, array, (long long)info.shape[0], np);
    float *pp = rc == SS_OK ? malloc(np * sizeof *pp) : NULL;
    if (rc == SS_OK && !pp) rc = ss_nomem(np * sizeof *pp, "the %zu weights of %s/%s", np, stage, array);
    int64_t s0 = 0, n = (int64_t)np;
    if (rc == SS_OK) rc = store_array_read(wa, &s0, &n, DT_F32, pp);
    store_array_close(wa);
    for (size_t i = 0; rc == SS_OK && i < np; i++)
        if (!isfinite(pp[i])) rc = ss_fail(SS_ERR_INPUT, "%s: '%s/%s' holds a non-finite weight at %zu",
                                           store_path(st), stage, array, i);
    if (rc != SS_OK) {
        free(pp);
        return rc;
    }
    *params = pp;
    return SS_OK;
}

int cnn_open_model(stage_ctx *c, net_arch *a, float **params, cnn_norm *nm)
{
    const char *wst, *wname;
    ctx_input(c, "model", &wst, &wname);
    int rc = cnn_model_load(ctx_input_store(c, "model"), wst, wname, a, params, nm);
    if (rc == SS_OK && (a->in_ch != 1 || a->out_ch != 1)) {
        rc = ss_fail(SS_ERR_INPUT, "%s: model %s.%s takes %d channels and gives %d; a plane has one",
                     ctx_stage_name(c), wst, wname, a->in_ch, a->out_ch);
        free(*params);
        *params = NULL;
    }
    return rc;
}
