/* fuse_mean and fuse_median: the baseline fusions of R repeats into one
 * stack, voxel by voxel, streamed plane by plane. */
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fuse(stage_ctx *c, int median)
{
    store_array *in, *out = NULL;
    char label[256];
    ctx_input_label(c, "repeats", label, sizeof label);
    int rc = ctx_open_input(c, "repeats", &in);
    if (rc != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(in, &info)) != SS_OK) goto done;
    if (info.rank != 4) {
        rc = ss_fail(SS_ERR_INPUT, "fuse: expected repeats R x Z x Y x X, got rank %d", info.rank);
        goto done;
    }
    int64_t R = info.shape[0], Z = info.shape[1], Y = info.shape[2], X = info.shape[3];
    size_t plane = (size_t)(Y * X);
    array_meta m = array_meta_of(&info);
    strcpy(m.axes, "zyx");
    int64_t shape[3] = {Z, Y, X};
    if ((rc = store_writer_array(ctx_writer(c), "fused", DT_F32, 3, shape, NULL, &m, &out)) != SS_OK) goto done;
    float *rep = malloc((size_t)R * plane * sizeof *rep), *res = malloc(plane * sizeof *res);
    if (!rep || !res) rc = ss_fail(SS_ERR_NOMEM, "fuse: out of memory for one plane of %lld repeats", (long long)R);
    const kernels *k = ctx_kernels(c);
    ctx_progress_begin(c, "planes", Z);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        int64_t st[4] = {0, z, 0, 0}, ct[4] = {R, 1, Y, X};
        if ((rc = ctx_read_f32(c, in, label, 4, st, ct, rep)) != SS_OK) break;
        if (median) k->fuse_median_f32(rep, (int)R, plane, res);
        else k->fuse_mean_f32(rep, (int)R, plane, res);
        int64_t so[3] = {z, 0, 0}, co[3] = {1, Y, X};
        rc = store_array_write(out, so, co, DT_F32, res);
        ctx_progress(c, z + 1);
    }
    free(rep);
    free(res);
done:
    store_array_close(out);
    store_array_close(in);
    return rc;
}

static int run_mean(stage_ctx *c) { return fuse(c, 0); }
static int run_median(stage_ctx *c) { return fuse(c, 1); }

static const port_spec inputs[] = {
    {.name = "repeats", .kinds = KIND_REPEATS, .doc = "repeated acquisitions R x Z x Y x X"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "fused", .kinds = KIND_IMAGE, .doc = "fused stack Z x Y x X, float32"},
    {0},
};
static const param_spec no_params[] = {{0}};

const stage_type stage_fuse_mean = {
    .name = "fuse_mean",
    .version = 1,
    .summary = "voxel-wise mean of the repeats (baseline fusion)",
    .params = no_params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run_mean,
};

const stage_type stage_fuse_median = {
    .name = "fuse_median",
    .version = 1,
    .summary = "voxel-wise median of the repeats (robust baseline fusion; even R: mean of the middle two)",
    .params = no_params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run_median,
};
