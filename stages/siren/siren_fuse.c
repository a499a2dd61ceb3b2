/* siren_fuse: motion correction from repeats (SIREN microscopy paper). A SIREN
 * is fitted to the R repeats of a stack; its output is the fused stack. With a
 * robust loss, a repeat whose rows were displaced by motion is treated as an
 * outlier where it disagrees with the others, instead of being averaged in.
 *   stacked:       every training voxel carries all R repeats as targets
 *   random_repeat: every training voxel carries one repeat drawn at random
 *                  (the paper's faster mode: one stack sampled from the repeats) */
#include "fitting.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(stage_ctx *c)
{
    store_array *in, *out = NULL;
    const char *src_stage, *src_name;
    ctx_input(c, "repeats", &src_stage, &src_name);
    char label[256];
    ctx_input_label(c, "repeats", label, sizeof label);
    int rc = ctx_open_input(c, "repeats", &in);
    if (rc != SS_OK) return rc;
    array_info info;
    siren_model m = {0};
    siren_data d = {0};
    float *params = NULL, *plane = NULL;
    if ((rc = store_array_info(in, &info)) != SS_OK) goto done;
    if (info.rank != 4) {
        rc = ss_fail(SS_ERR_INPUT, "siren_fuse: %s.%s has rank %d; expected repeats R x Z x Y x X", src_stage, src_name,
                     info.rank);
        goto done;
    }
    int64_t R = info.shape[0], shape[3] = {info.shape[1], info.shape[2], info.shape[3]};
    double voxel[3] = {1, 1, 1};
    if (info.has_meta) memcpy(voxel, info.meta.voxel, sizeof voxel);
    if ((rc = siren_model_from_params(c, shape, voxel, &m)) != SS_OK) goto done;

    int64_t N = shape[0] * shape[1] * shape[2], P = shape[1] * shape[2];
    int64_t n = (int64_t)llround(ctx_num(c, "fraction") * (double)N);
    if (n < 1) n = 1;
    int stacked = !strcmp(ctx_str(c, "mode"), "stacked");
    d.R = stacked ? (int)R : 1;
    d.n = n;
    d.index = siren_pick_voxels(ctx_seed(c), N, n);
    d.target = malloc(sizeof *d.target * (size_t)n * (size_t)d.R);
    plane = malloc(sizeof *plane * (size_t)(R * P));
    params = malloc(sizeof *params * siren_n_params(&m.arch));
    if (!d.index || !d.target || !plane || !params) {
        rc = ss_fail(SS_ERR_NOMEM, "siren_fuse: out of memory for %lld training voxels", (long long)n);
        goto done;
    }
    /* Targets, plane by plane (indices are increasing, so each plane's
     * voxels are one run of the list). */
    ss_rng pick;
    rng_split(&pick, ctx_seed(c), 0x7e9eull);
    int64_t at = 0;
    for (int64_t z = 0; z < shape[0] && rc == SS_OK; z++) {
        int64_t st[4] = {0, z, 0, 0}, ct[4] = {R, 1, shape[1], shape[2]};
        if ((rc = ctx_read_f32(c, in, label, 4, st, ct, plane)) != SS_OK) break;
        for (; at < n && d.index[at] < (z + 1) * P; at++) {
            int64_t off = d.index[at] - z * P;
            if (stacked)
                for (int64_t r = 0; r < R; r++) d.target[at * R + r] = plane[r * P + off];
            else
                d.target[at] = plane[(int64_t)(rng_next(&pick) % (uint64_t)R) * P + off];
        }
    }
    free(plane);
    plane = NULL;
    store_array_close(in);
    in = NULL;
    if (rc != SS_OK) goto done;

    if ((rc = siren_fit_train(c, &m, &d, params)) != SS_OK) goto done;
    siren_data_free(&d);
    array_meta meta = {.axes = "zyx", .unit = "micrometer"};
    memcpy(meta.voxel, m.voxel, sizeof meta.voxel);
    if ((rc = store_writer_array(ctx_writer(c), "fused", DT_F32, 3, shape, NULL, &meta, &out)) != SS_OK) goto done;
    siren_grid g;
    siren_model_grid(&m, shape[0], m.z, 1.0, &g);
    if ((rc = siren_fit_eval_to(c, &m, params, &g, out, "planes")) != SS_OK) goto done;
    rc = siren_fit_save(c, &m, params, "repeats");
done:
    store_array_close(out);
    store_array_close(in);
    siren_data_free(&d);
    siren_model_free(&m);
    free(params);
    free(plane);
    return rc;
}

static const char *check(const json_t *p) { return siren_fit_check(p); }

static const param_spec params[] = {
    {.name = "mode", .type = P_ENUM, .def = "\"stacked\"", .choices = "stacked|random_repeat",
     .doc = "stacked: all repeats at each voxel; random_repeat: one repeat per voxel, drawn by seed"},
    SIREN_FIT_PARAMS,
    SIREN_Z_MAPPING("\"physical\""),
    {0},
};
static const port_spec inputs[] = {
    {.name = "repeats", .kinds = KIND_REPEATS, .doc = "repeated acquisitions R x Z x Y x X (normalised)"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "fused", .kinds = KIND_IMAGE, .doc = "the network on the input grid: the fused stack"},
    {.name = "weights", .kinds = KIND_WEIGHTS, .doc = "the fitted network (see siren_render)"},
    {.name = "curve", .kinds = KIND_TABLE, .doc = "training curve: step, loss, seconds"},
    {0},
};

const stage_type stage_siren_fuse = {
    .name = "siren_fuse",
    .version = 1,
    .summary = "fit a SIREN to the repeats: motion-corrected fusion (robust losses reject outliers)",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .flags = STAGE_STOCHASTIC,
    .run = run,
    .check = check,
};
