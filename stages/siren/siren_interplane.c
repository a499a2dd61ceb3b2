/* siren_interplane: predicts planes that were never acquired (SIREN
 * microscopy paper). The network is fitted to the kept planes only - every
 * n-th plane, or a list - and evaluated at the skipped ones, and optionally on
 * a z grid any factor finer. The held-out mask lets `metrics` score the
 * predictions against acquired planes only. */
#include "fitting.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* kept[z] = 1 for planes the fit sees. */
static int kept_planes(stage_ctx *c, int64_t Z, unsigned char *kept)
{
    memset(kept, 0, (size_t)Z);
    if (!ctx_is_null(c, "keep_planes")) {
        for (size_t i = 0; i < ctx_list_len(c, "keep_planes"); i++) {
            int64_t z = (int64_t)ctx_list_num(c, "keep_planes", i);
            if (z < 0 || z >= Z)
                return ss_fail(SS_ERR_INPUT, "siren_interplane: keep_planes holds %lld, outside the stack's planes 0..%lld",
                               (long long)z, (long long)Z - 1);
            kept[z] = 1;
        }
    } else {
        int64_t n = ctx_int(c, "keep_every"), off = ctx_int(c, "offset");
        for (int64_t z = off; z < Z; z += n) kept[z] = 1;
    }
    int64_t nk = 0;
    for (int64_t z = 0; z < Z; z++) nk += kept[z];
    if (nk < 2) return ss_fail(SS_ERR_INPUT, "siren_interplane: %lld kept plane(s) of %lld; at least 2 are needed", (long long)nk, (long long)Z);
    if (nk == Z) return ss_fail(SS_ERR_INPUT, "siren_interplane: every one of the %lld planes is kept; nothing to predict", (long long)Z);
    return SS_OK;
}

static int run(stage_ctx *c)
{
    store_array *in, *a_pred = NULL, *a_rest = NULL, *a_mask = NULL, *a_up = NULL;
    const char *src_stage, *src_name;
    ctx_input(c, "stack", &src_stage, &src_name);
    char label[256];
    ctx_input_label(c, "stack", label, sizeof label);
    int rc = ctx_open_input(c, "stack", &in);
    if (rc != SS_OK) return rc;
    array_info info;
    siren_model m = {0};
    siren_data d = {0};
    float *params = NULL, *plane = NULL, *zup = NULL;
    unsigned char *kept = NULL;
    int64_t *pidx = NULL;
    if ((rc = store_array_info(in, &info)) != SS_OK) goto done;
    if (info.rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "siren_interplane: %s.%s has rank %d; expected an image Z x Y x X", src_stage, src_name,
                     info.rank);
        goto done;
    }
    int64_t Z = info.shape[0], Y = info.shape[1], X = info.shape[2], P = Y * X;
    double voxel[3] = {1, 1, 1};
    if (info.has_meta) memcpy(voxel, info.meta.voxel, sizeof voxel);
    kept = malloc((size_t)Z);
    if (!kept) {
        rc = ss_nomem((size_t)Z, "the mask of %lld planes", (long long)Z);
        goto done;
    }
    if ((rc = kept_planes(c, Z, kept)) != SS_OK) goto done;
    if ((rc = siren_model_from_params(c, info.shape, voxel, &m)) != SS_OK) goto done;

    /* Training voxels: a fraction of those of the kept planes, as grid indices. */
    int64_t nk = 0;
    for (int64_t z = 0; z < Z; z++) nk += kept[z];
    int64_t Nk = nk * P, n = (int64_t)llround(ctx_num(c, "fraction") * (double)Nk);
    if (n < 1) n = 1;
    d.R = 1;
    d.n = n;
    d.index = siren_pick_voxels(ctx_seed(c), Nk, n); /* indices among the kept voxels, mapped below */
    d.target = malloc(sizeof *d.target * (size_t)n);
    plane = malloc(sizeof *plane * (size_t)P);
    params = malloc(sizeof *params * siren_n_params(&m.arch));
    if (!d.index || !d.target || !plane || !params) {
        rc = ss_fail(SS_ERR_NOMEM, "siren_interplane: out of memory for %lld training voxels", (long long)n);
        goto done;
    }
    const kernels *k = ctx_kernels(c);
    int64_t at = 0, kz = 0;
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        if (!kept[z]) continue;
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        if ((rc = ctx_read_f32(c, in, label, 3, st, ct, plane)) != SS_OK) break;
        for (; at < n && d.index[at] < (kz + 1) * P; at++) {
            int64_t off = d.index[at] - kz * P;
            d.target[at] = plane[off];
            d.index[at] = z * P + off;
        }
        kz++;
    }
    if (rc != SS_OK) goto done;
    if ((rc = siren_fit_train(c, &m, &d, params)) != SS_OK) goto done;
    siren_data_free(&d);

    /* Outputs: predicted planes, the restored stack (kept planes exactly as
     * acquired), the held-out mask, and the network on a finer z grid. */
    array_meta meta = {.axes = "zyx", .unit = "micrometer"};
    memcpy(meta.voxel, m.voxel, sizeof meta.voxel);
    int64_t np_ = Z - nk, pshape[3] = {np_, Y, X};
    json_t *jk = json_array(), *jp = json_array();
    for (int64_t z = 0; z < Z; z++) json_array_append_new(kept[z] ? jk : jp, json_integer(z));
    ctx_attr(c, "kept_planes", jk);
    ctx_attr(c, "predicted_planes", jp);
    store_writer *w = ctx_writer(c);
    if ((rc = store_writer_array(w, "predicted", DT_F32, 3, pshape, NULL, &meta, &a_pred)) != SS_OK) goto done;
    if ((rc = store_writer_array(w, "restored", DT_F32, 3, info.shape, NULL, &meta, &a_rest)) != SS_OK) goto done;
    int64_t mshape = Z;
    if ((rc = store_writer_array(w, "mask", DT_U8, 1, &mshape, NULL, NULL, &a_mask)) != SS_OK) goto done;
    unsigned char *mask = malloc((size_t)Z);
    for (int64_t z = 0; mask && z < Z; z++) mask[z] = !kept[z];
    int64_t s0 = 0;
    rc = mask ? store_array_write(a_mask, &s0, &mshape, DT_U8, mask)
              : ss_nomem((size_t)Z, "the mask of %lld planes", (long long)Z);
    free(mask);
    siren_work *sw = k->siren_work_new(&m.arch, ctx_threads(c));
    if (!sw && rc == SS_OK) rc = ss_nomem(0, "the SIREN workspace for %d threads", ctx_threads(c));
    ctx_progress_begin(c, "planes", Z);
    for (int64_t z = 0, p = 0; z < Z && rc == SS_OK; z++) {
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        if (kept[z]) {
            if ((rc = store_array_read(in, st, ct, DT_F32, plane)) == SS_OK) rc = store_array_write(a_rest, st, ct, DT_F32, plane);
        } else {
            siren_grid g;
            siren_model_grid(&m, 1, m.z + z, 1.0, &g);
            k->siren_eval(&m.arch, params, &g, NULL, 0, P, plane, sw);
            int64_t sp[3] = {p++, 0, 0};
            if ((rc = store_array_write(a_rest, st, ct, DT_F32, plane)) == SS_OK) rc = store_array_write(a_pred, sp, ct, DT_F32, plane);
        }
        ctx_progress(c, z + 1);
    }
    k->siren_work_free(sw);
    if (rc != SS_OK) goto done;
    int64_t f = ctx_int(c, "z_upsample"), nz = (Z - 1) * f + 1;
    zup = malloc(sizeof *zup * (size_t)nz);
    if (!zup) {
        rc = ss_nomem(sizeof *zup * (size_t)nz, "the z coordinates of %lld planes", (long long)nz);
        goto done;
    }
    for (int64_t i = 0; i < nz; i++) zup[i] = siren_model_z_at(&m, (double)i / (double)f);
    array_meta um = meta;
    um.voxel[0] = m.voxel[0] / (double)f;
    int64_t ushape[3] = {nz, Y, X};
    if ((rc = store_writer_array(w, "upsampled", DT_F32, 3, ushape, NULL, &um, &a_up)) != SS_OK) goto done;
    siren_grid ug;
    siren_model_grid(&m, nz, zup, 1.0, &ug);
    if ((rc = siren_fit_eval_to(c, &m, params, &ug, a_up, "upsampled planes")) != SS_OK) goto done;
    rc = siren_fit_save(c, &m, params, "stack");
done:
    store_array_close(a_pred);
    store_array_close(a_rest);
    store_array_close(a_mask);
    store_array_close(a_up);
    store_array_close(in);
    siren_data_free(&d);
    siren_model_free(&m);
    free(params), free(plane), free(kept), free(pidx), free(zup);
    return rc;
}

static const char *check(const json_t *p)
{
    json_t *kp = json_object_get(p, "keep_planes");
    for (size_t i = 1; i < json_array_size(kp); i++)
        if (json_integer_value(json_array_get(kp, i)) <= json_integer_value(json_array_get(kp, i - 1)))
            return "keep_planes must be increasing (sorted, no repeats)";
    if (json_is_array(kp) && json_array_size(kp) < 2) return "keep_planes needs at least 2 planes";
    if (json_integer_value(json_object_get(p, "offset")) >= json_integer_value(json_object_get(p, "keep_every")))
        return "offset must be below keep_every";
    return siren_fit_check(p);
}

static const param_spec params[] = {
    {.name = "keep_every", .type = P_INT, .def = "2", .flags = PARAM_RANGE, .lo = 2, .hi = 64,
     .doc = "keep every n-th plane (the paper: n = 2..8) and predict the rest"},
    {.name = "offset", .type = P_INT, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 63,
     .doc = "first kept plane with keep_every"},
    {.name = "keep_planes", .type = P_INT_LIST, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 0,
     .hi = 1e9, .doc = "explicit kept planes (0-based, increasing); overrides keep_every"},
    {.name = "z_upsample", .type = P_INT, .def = "1", .flags = PARAM_RANGE, .lo = 1, .hi = 64,
     .doc = "the 'upsampled' output has (Z-1)*k+1 planes"},
    SIREN_FIT_PARAMS,
    /* Planes spread over [-1, 1] predict better between kept planes than
     * physically scaled ones, which put anisotropic planes far apart for the
     * sine layers (README, "SIREN stages"). */
    SIREN_Z_MAPPING("\"range\""),
    {0},
};
static const port_spec inputs[] = {
    {.name = "stack", .kinds = KIND_IMAGE, .doc = "an acquired stack Z x Y x X (normalised)"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "predicted", .kinds = KIND_IMAGE, .doc = "the predicted (skipped) planes, in z order"},
    {.name = "restored", .kinds = KIND_IMAGE, .doc = "the full stack: kept planes as acquired, skipped ones predicted"},
    {.name = "mask", .kinds = KIND_MASK, .doc = "1 for predicted (held-out) planes"},
    {.name = "upsampled", .kinds = KIND_IMAGE, .doc = "the network on a z grid z_upsample times finer"},
    {.name = "weights", .kinds = KIND_WEIGHTS, .doc = "the fitted network (see siren_render)"},
    {.name = "curve", .kinds = KIND_TABLE, .doc = "training curve: step, loss, seconds"},
    {0},
};

const stage_type stage_siren_interplane = {
    .name = "siren_interplane",
    .version = 1,
    .summary = "fit a SIREN to every n-th plane and predict the planes between (and a finer z grid)",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .flags = STAGE_STOCHASTIC,
    .run = run,
    .check = check,
};
