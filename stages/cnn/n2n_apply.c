/* n2n_apply: a self-supervised denoiser (n2n_train) on the repeats, using
 * every one: each repeat (for a model trained on repeat or plane pairs), or
 * the mean of each half of the repeats (for one trained on half-means), goes
 * through the network and the results are combined by their mean, or by
 * their median (robust to a repeat with motion). Plane by plane, in
 * overlapping tiles. */
#include "cnn.h"

#include <stdlib.h>
#include <string.h>

static int run(stage_ctx *c)
{
    const char *wst, *wname;
    ctx_input(c, "model", &wst, &wname);
    net_arch a;
    float *params = NULL, *buf = NULL, *view = NULL, *res = NULL;
    double *acc = NULL;
    float *outs = NULL;
    cnn_norm nm;
    cnn_tiler *tl = NULL;
    store_array *in = NULL, *out = NULL;
    json_t *mattrs = NULL;
    int rc = cnn_open_model(c, &a, &params, &nm);
    if (rc != SS_OK) return rc;
    if ((rc = store_stage_attrs(ctx_input_store(c, "model"), wst, &mattrs)) != SS_OK) goto done;
    int halves = json_string_value(json_object_get(mattrs, "pairs")) &&
                 !strcmp(json_string_value(json_object_get(mattrs, "pairs")), "halves");
    char label[256];
    ctx_input_label(c, "repeats", label, sizeof label);
    if ((rc = ctx_open_input(c, "repeats", &in)) != SS_OK) goto done;
    array_info info;
    if ((rc = store_array_info(in, &info)) != SS_OK) goto done;
    if (info.rank != 3 && info.rank != 4) {
        rc = ss_fail(SS_ERR_INPUT, "n2n_apply: %s has rank %d; expected repeats R x Z x Y x X", label, info.rank);
        goto done;
    }
    int off = info.rank - 3;
    int64_t R = off ? info.shape[0] : 1, Z = info.shape[off], Y = info.shape[off + 1], X = info.shape[off + 2];
    if (halves && R < 2) {
        rc = ss_fail(SS_ERR_INPUT, "n2n_apply: model %s was trained on half-means; %s holds %lld repeat", wst, label,
                     (long long)R);
        goto done;
    }
    size_t plane = (size_t)(Y * X);
    if ((rc = cnn_stage_tiler(c, &a, Y, X, &tl)) != SS_OK) goto done;
    buf = malloc((size_t)R * plane * sizeof *buf);
    view = malloc(plane * sizeof *view);
    res = malloc(plane * sizeof *res);
    acc = malloc(plane * sizeof *acc);
    int median = !strcmp(ctx_str(c, "combine"), "median");
    int views = halves ? 2 : (int)R;
    outs = median ? malloc((size_t)views * plane * sizeof *outs) : NULL;
    if (!buf || !view || !res || !acc || (median && !outs)) {
        rc = ss_nomem(((size_t)R + 2) * plane * sizeof *buf + plane * sizeof *acc,
                      "%lld planes of %lld x %lld", (long long)R, (long long)Y,
                      (long long)X);
        goto done;
    }
    array_meta m = array_meta_of(&info);
    if (off) memmove(m.axes, m.axes + 1, strlen(m.axes));
    int64_t oshape[3] = {Z, Y, X};
    if ((rc = store_writer_array(ctx_writer(c), "denoised", DT_F32, 3, oshape, NULL, &m, &out)) != SS_OK) goto done;
    ctx_progress_begin(c, "planes", Z);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        int64_t st[4] = {0, z, 0, 0}, ct[4] = {R, 1, Y, X};
        if ((rc = ctx_read_f32(c, in, label, info.rank, st + 1 - off, ct + 1 - off, buf)) != SS_OK) break;
        memset(acc, 0, plane * sizeof *acc);
        for (int v = 0; v < views; v++) {
            if (halves) {
                int64_t lo = v ? R / 2 : 0, hi = v ? R : R / 2;
                for (size_t i = 0; i < plane; i++) {
                    double s = 0;
                    for (int64_t q = lo; q < hi; q++) s += buf[(size_t)q * plane + i];
                    view[i] = (float)(s / (double)(hi - lo));
                }
            } else {
                memcpy(view, buf + (size_t)v * plane, plane * sizeof *view);
            }
            cnn_norm_apply(&nm, view, plane);
            cnn_tiler_run(tl, params, view, median ? outs + (size_t)v * plane : res);
            if (!median)
                for (size_t i = 0; i < plane; i++) acc[i] += res[i];
        }
        if (median)
            ctx_kernels(c)->fuse_median_f32(outs, views, plane, res);
        for (size_t i = 0; i < plane; i++)
            res[i] = (float)((median ? (double)res[i] : acc[i] / views) / nm.scale + nm.offset);
        int64_t so[3] = {z, 0, 0}, co[3] = {1, Y, X};
        rc = store_array_write(out, so, co, DT_F32, res);
        ctx_progress(c, z + 1);
        if (rc == SS_OK && ctx_cancelled(c)) rc = ss_fail(SS_ERR_INTERRUPTED, "interrupted at plane %lld", (long long)z);
    }
    if (rc == SS_OK) {
        cnn_tiler_attrs(c, tl);
        ctx_attr(c, "views", json_integer(views));
        ctx_attr(c, "combine", json_string(median ? "median" : "mean"));
    }
done:
    json_decref(mattrs);
    cnn_tiler_free(tl);
    store_array_close(in);
    store_array_close(out);
    free(params), free(buf), free(view), free(res), free(acc), free(outs);
    return rc;
}

static const param_spec params[] = {
    {.name = "combine", .type = P_ENUM, .def = "\"mean\"", .choices = "mean|median",
     .doc = "how the denoised repeats are combined (median: robust to a repeat with motion)"},
    CNN_APPLY_PARAMS,
    {0},
};
static const port_spec inputs[] = {
    {.name = "repeats", .kinds = KIND_REPEATS | KIND_IMAGE, .doc = "repeats R x Z x Y x X (or one image)"},
    {.name = "model", .kinds = KIND_WEIGHTS, .doc = "weights from n2n_train (or denoise_train)"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "denoised", .kinds = KIND_IMAGE, .doc = "the mean of the network's output over the repeats (or half-means)"},
    {0},
};

const stage_type stage_n2n_apply = {
    .name = "n2n_apply",
    .version = 1,
    .summary = "denoise with a Noise2Noise model, every repeat through the network, the results averaged",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
