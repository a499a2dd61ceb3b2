/* cnn_motion: the SIREN paper's supervised CNN baseline for motion
 * correction: three 5 x 5 convolutions (64, 64 and 1 filters, ReLU after
 * the first two) trained with SGD on pairs of a repeat (with or without
 * motion artefacts) and the average of the clean repeats, then applied to
 * every repeat and the results averaged. The clean repeats are named
 * (clean_repeats) or read from a phantom's artefact table (the repeats with
 * no displaced rows). */
#include "cnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const float *rep, *target;
    int64_t R, Z, Y, X;
} motion_src;

static void fill(const void *ctx, ss_rng *r, int P, float *in, float *tgt)
{
    const motion_src *s = ctx;
    int64_t q = (int64_t)(rng_next(r) % (uint64_t)s->R), z = (int64_t)(rng_next(r) % (uint64_t)s->Z);
    int64_t y0 = (int64_t)(rng_next(r) % (uint64_t)(s->Y - P + 1)), x0 = (int64_t)(rng_next(r) % (uint64_t)(s->X - P + 1));
    size_t at = (size_t)((z * s->Y + y0) * s->X + x0), vol = (size_t)(s->Z * s->Y * s->X);
    for (int i = 0; i < P; i++) {
        memcpy(in + (size_t)i * P, s->rep + (size_t)q * vol + at + (size_t)i * s->X, (size_t)P * sizeof *in);
        memcpy(tgt + (size_t)i * P, s->target + at + (size_t)i * s->X, (size_t)P * sizeof *tgt);
    }
}

/* clean[r] = 1 for the repeats averaged into the target. */
static int clean_repeats(stage_ctx *c, int64_t R, uint8_t *clean, int *n_clean)
{
    memset(clean, 0, (size_t)R);
    *n_clean = 0;
    if (!ctx_is_null(c, "clean_repeats")) {
        for (size_t i = 0; i < ctx_list_len(c, "clean_repeats"); i++) {
            double v = ctx_list_num(c, "clean_repeats", i);
            if (v >= (double)R)
                return ss_fail(SS_ERR_INPUT, "cnn_motion: clean repeat %.0f does not exist (%lld repeats)", v,
                               (long long)R);
            *n_clean += !clean[(int64_t)v];
            clean[(int64_t)v] = 1;
        }
        return SS_OK;
    }
    const char *stg, *arr;
    if (ctx_input(c, "artifacts", &stg, &arr) != 1)
        return ss_fail(SS_ERR_INPUT, "cnn_motion: no clean repeats: name them (clean_repeats) or connect an artefact "
                       "table (artifacts)");
    table_data t;
    int rc = store_table_read(ctx_input_store(c, "artifacts"), stg, arr, &t);
    if (rc != SS_OK) return rc;
    int col = -1;
    for (int i = 0; i < t.n_cols; i++)
        if (!strcmp(t.names[i], "repeat") && t.types[i] != COL_STR) col = i;
    if (col < 0) {
        table_free(&t);
        return ss_fail(SS_ERR_INPUT, "cnn_motion: artefact table %s.%s has no numeric column 'repeat'", stg, arr);
    }
    memset(clean, 1, (size_t)R);
    for (int64_t i = 0; i < t.n_rows; i++) {
        double v = t.types[col] == COL_F64 ? ((double *)t.data[col])[i] : (double)((int64_t *)t.data[col])[i];
        if (v >= 0 && v < (double)R) clean[(int64_t)v] = 0;
    }
    table_free(&t);
    for (int64_t q = 0; q < R; q++) *n_clean += clean[q];
    if (!*n_clean)
        return ss_fail(SS_ERR_INPUT, "cnn_motion: every repeat of the artefact table %s.%s has artefacts; none is "
                       "clean to train towards", stg, arr);
    return SS_OK;
}

static int run(stage_ctx *c)
{
    float *rep = NULL, *target = NULL, *params = NULL, *res = NULL, *view = NULL;
    double *acc = NULL;
    uint8_t *clean = NULL;
    cnn_tiler *tl = NULL;
    store_array *out = NULL;
    int64_t R, sh[3];
    char label[256];
    int rc = cnn_read_input(c, "repeats", &R, sh, &rep, label, sizeof label);
    if (rc != SS_OK) return rc;
    int64_t Z = sh[0], Y = sh[1], X = sh[2];
    size_t plane = (size_t)(Y * X), vol = plane * (size_t)Z;
    int n_clean;
    if (!(clean = malloc((size_t)R))) {
        rc = ss_nomem((size_t)R, "the repeat list");
        goto done;
    }
    if ((rc = clean_repeats(c, R, clean, &n_clean)) != SS_OK) goto done;
    cnn_norm nm;
    if ((rc = cnn_norm_fit(c, rep, vol * (size_t)R, &nm)) != SS_OK) goto done;
    cnn_norm_apply(&nm, rep, vol * (size_t)R);
    if (!(target = calloc(vol, sizeof *target))) {
        rc = ss_nomem(vol * sizeof *target, "the clean average");
        goto done;
    }
    for (int64_t q = 0; q < R; q++)
        if (clean[q])
            for (size_t i = 0; i < vol; i++) target[i] += rep[(size_t)q * vol + i] / (float)n_clean;
    net_arch a = {.kind = NET_PLAIN, .in_ch = 1, .out_ch = 1, .n_layers = 3};
    int k = (int)ctx_int(c, "kernel");
    for (int i = 0; i < 3; i++) a.kernels[i] = k;
    a.filters[0] = (int)ctx_list_num(c, "filters", 0);
    a.filters[1] = (int)ctx_list_num(c, "filters", 1);
    a.filters[2] = 1;
    motion_src src = {rep, target, R, Z, Y, X};
    cnn_pairs pairs = {1, 1, Y, X, fill, &src};
    if ((rc = cnn_train(c, &a, &pairs, &nm, &params)) != SS_OK) goto done;
    if ((rc = cnn_stage_tiler(c, &a, Y, X, &tl)) != SS_OK) goto done;
    res = malloc(plane * sizeof *res);
    view = malloc(plane * sizeof *view);
    acc = malloc(plane * sizeof *acc);
    if (!res || !view || !acc) {
        rc = ss_nomem(3 * plane * sizeof(double), "planes of %lld x %lld", (long long)Y, (long long)X);
        goto done;
    }
    array_meta m = {.axes = "zyx", .unit = "micrometer"};
    const sample_info *si = ctx_sample(c);
    for (int i = 0; i < 3; i++) m.voxel[i] = si->voxel[i] > 0 ? si->voxel[i] : 1;
    if ((rc = store_writer_array(ctx_writer(c), "fused", DT_F32, 3, sh, NULL, &m, &out)) != SS_OK) goto done;
    ctx_progress_begin(c, "planes", Z);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        memset(acc, 0, plane * sizeof *acc);
        for (int64_t q = 0; q < R; q++) {
            memcpy(view, rep + (size_t)q * vol + (size_t)z * plane, plane * sizeof *view);
            cnn_tiler_run(tl, params, view, res);
            for (size_t i = 0; i < plane; i++) acc[i] += res[i];
        }
        for (size_t i = 0; i < plane; i++) res[i] = (float)(acc[i] / (double)R / nm.scale + nm.offset);
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        rc = store_array_write(out, st, ct, DT_F32, res);
        ctx_progress(c, z + 1);
    }
    if (rc == SS_OK) {
        json_t *cl = json_array();
        for (int64_t q = 0; q < R; q++)
            if (clean[q]) json_array_append_new(cl, json_integer(q));
        ctx_attr(c, "clean_repeats", cl);
        cnn_tiler_attrs(c, tl);
    }
done:
    cnn_tiler_free(tl);
    store_array_close(out);
    free(rep), free(target), free(params), free(res), free(view), free(acc), free(clean);
    return rc;
}

static const param_spec params[] = {
    {.name = "clean_repeats", .type = P_INT_LIST, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 0,
     .hi = 63, .list_min = 1, .list_max = 64,
     .doc = "repeats (0-based) averaged into the target; null: those the artifacts table does not list"},
    {.name = "filters", .type = P_INT_LIST, .def = "[64, 64]", .flags = PARAM_RANGE, .lo = 1, .hi = 1024,
     .list_min = 2, .list_max = 2, .doc = "filters of the first two convolutions (the third has 1)"},
    {.name = "kernel", .type = P_INT, .def = "5", .flags = PARAM_RANGE, .lo = 1, .hi = 15,
     .doc = "odd kernel size of the three convolutions"},
    CNN_TRAIN_PARAMS("0.01", "\"sgd\""),
    {.name = "tile", .type = P_INT, .def = "256", .flags = PARAM_RANGE, .lo = 8, .hi = 16384,
     .doc = "side of the tiles the planes are processed in"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "repeats", .kinds = KIND_REPEATS, .doc = "repeated acquisitions R x Z x Y x X"},
    {.name = "artifacts", .kinds = KIND_TABLE, .optional = 1,
     .doc = "artefact table with a column 'repeat' (as synth writes it): the repeats it lists are not clean"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "fused", .kinds = KIND_IMAGE, .doc = "the network's output averaged over the repeats"},
    {.name = "weights", .kinds = KIND_WEIGHTS, .doc = "the trained network with its normalisation"},
    {.name = "curve", .kinds = KIND_TABLE, .doc = "training curve: step, loss, seconds"},
    {0},
};

const stage_type stage_cnn_motion = {
    .name = "cnn_motion",
    .version = 1,
    .summary = "the paper's supervised CNN motion-correction baseline (3 conv layers, SGD) from clean repeats",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .flags = STAGE_STOCHASTIC,
    .run = run,
    .check = cnn_train_check,
};
