/* denoise_apply: runs a trained network (denoise_train, n2n_train) on every
 * plane of an image, in overlapping tiles so that memory is bounded by the
 * tile whatever the plane size; the model's normalisation is applied before
 * and inverted after. */
#include "cnn.h"

#include <stdlib.h>
#include <string.h>

static int run(stage_ctx *c)
{
    net_arch a;
    float *params = NULL, *buf = NULL, *res = NULL;
    cnn_norm nm;
    cnn_tiler *tl = NULL;
    store_array *in = NULL, *out = NULL;
    int rc = cnn_open_model(c, &a, &params, &nm);
    if (rc != SS_OK) return rc;
    char label[256];
    ctx_input_label(c, "image", label, sizeof label);
    if ((rc = ctx_open_input(c, "image", &in)) != SS_OK) goto done;
    array_info info;
    if ((rc = store_array_info(in, &info)) != SS_OK) goto done;
    if (info.rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "denoise_apply: %s has rank %d; expected an image Z x Y x X", label, info.rank);
        goto done;
    }
    int64_t Z = info.shape[0], Y = info.shape[1], X = info.shape[2];
    size_t plane = (size_t)(Y * X);
    if ((rc = cnn_stage_tiler(c, &a, Y, X, &tl)) != SS_OK) goto done;
    buf = malloc(plane * sizeof *buf);
    res = malloc(plane * sizeof *res);
    if (!buf || !res) {
        rc = ss_nomem(2 * plane * sizeof *buf, "two planes of %lld x %lld", (long long)Y, (long long)X);
        goto done;
    }
    array_meta m = array_meta_of(&info);
    if ((rc = store_writer_array(ctx_writer(c), "denoised", DT_F32, 3, info.shape, NULL, &m, &out)) != SS_OK)
        goto done;
    ctx_progress_begin(c, "planes", Z);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        if ((rc = ctx_read_f32(c, in, label, 3, st, ct, buf)) != SS_OK) break;
        cnn_norm_apply(&nm, buf, plane);
        cnn_tiler_run(tl, params, buf, res);
        cnn_norm_invert(&nm, res, plane);
        rc = store_array_write(out, st, ct, DT_F32, res);
        ctx_progress(c, z + 1);
        if (rc == SS_OK && ctx_cancelled(c)) rc = ss_fail(SS_ERR_INTERRUPTED, "interrupted at plane %lld", (long long)z);
    }
    if (rc == SS_OK) cnn_tiler_attrs(c, tl);
done:
    cnn_tiler_free(tl);
    store_array_close(in);
    store_array_close(out);
    free(params), free(buf), free(res);
    return rc;
}

static const param_spec params[] = {
    CNN_APPLY_PARAMS,
    {0},
};
static const port_spec inputs[] = {
    {.name = "image", .kinds = KIND_IMAGE, .doc = "image Z x Y x X"},
    {.name = "model", .kinds = KIND_WEIGHTS, .doc = "weights from denoise_train or n2n_train"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "denoised", .kinds = KIND_IMAGE, .doc = "the network's output for every plane, float32"},
    {0},
};

const stage_type stage_denoise_apply = {
    .name = "denoise_apply",
    .version = 1,
    .summary = "run a trained denoiser on every plane, in overlapping tiles",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
