/* seg_score: SEG, the segmentation measure of the ISBI cell tracking
 * challenge (Maska et al. 2014, Ulman et al. 2017), of label images against
 * reference labels (a phantom's `labels`): each reference object R matches
 * the predicted object S with |R n S| > 0.5 |R| (at most one exists) and
 * scores the Jaccard index |R n S| / |R u S|, or 0 without a match; SEG is
 * the mean over the reference objects. Label 0 is background in both;
 * labels are integers 0..2^32-1. Memory: both label volumes as uint32. */
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An input's labels as uint32, after checking rank, shape (like, when
 * given) and values. ref is "stage.array". */
static int read_labels(stage_ctx *c, const char *port, int i, const array_info *like, const char *like_ref,
                       array_info *info, uint32_t **out, char *ref)
{
    const char *name = ctx_stage_name(c), *stg, *arr;
    int rc = i < 0 ? (ctx_input(c, port, &stg, &arr) == 1 ? SS_OK : SS_ERR_INTERNAL) : ctx_input_at(c, port, i, &stg, &arr);
    if (rc != SS_OK) return ss_fail(SS_ERR_INTERNAL, "%s: input %s is not connected", name, port);
    snprintf(ref, TABLE_STR_LEN, "%s.%s", stg, arr);
    store_array *a = NULL;
    if ((rc = i < 0 ? ctx_open_input(c, port, &a) : ctx_open_input_at(c, port, i, &a)) != SS_OK) return rc;
    if ((rc = store_array_info(a, info)) != SS_OK) goto done;
    if (info->rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s %s has rank %d; expected Z x Y x X labels", name, port, ref, info->rank);
        goto done;
    }
    if (info->dtype == DT_F32 || info->dtype == DT_F64) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s %s is %s; labels are integers", name, port, ref, dtype_name(info->dtype));
        goto done;
    }
    const int64_t *sh = info->shape;
    if (like && (sh[0] != like->shape[0] || sh[1] != like->shape[1] || sh[2] != like->shape[2])) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s %s is %lld x %lld x %lld but reference %s is %lld x %lld x %lld", name, port,
                     ref, (long long)sh[0], (long long)sh[1], (long long)sh[2], like_ref, (long long)like->shape[0],
                     (long long)like->shape[1], (long long)like->shape[2]);
        goto done;
    }
    size_t plane = (size_t)(sh[1] * sh[2]), n = plane * (size_t)sh[0];
    if (n == 0) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s %s is empty", name, port, ref);
        goto done;
    }
    int64_t *buf = malloc(plane * sizeof *buf);
    uint32_t *lab = malloc(n * sizeof *lab);
    if (!buf || !lab) {
        free(buf);
        free(lab);
        rc = ss_nomem(n * sizeof *lab, "%s: the labels of %s", name, ref);
        goto done;
    }
    for (int64_t z = 0; z < sh[0] && rc == SS_OK; z++) {
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, sh[1], sh[2]};
        if ((rc = store_array_read(a, st, ct, DT_I64, buf)) != SS_OK) break;
        for (size_t j = 0; j < plane; j++) {
            if (buf[j] < 0 || buf[j] > (int64_t)UINT32_MAX) {
                rc = ss_fail(SS_ERR_INPUT, "%s: %s %s plane %lld: label %lld is outside 0..4294967295", name, port, ref,
                             (long long)z, (long long)buf[j]);
                break;
            }
            lab[(size_t)z * plane + j] = (uint32_t)buf[j];
        }
    }
    free(buf);
    if (rc != SS_OK) free(lab);
    else *out = lab;
done:
    store_array_close(a);
    return rc;
}

static int run(stage_ctx *c)
{
    const char *name = ctx_stage_name(c);
    static const char *const cols[4] = {"method", "seg", "n_reference", "n_matched"};
    static const col_type types[4] = {COL_STR, COL_F64, COL_I64, COL_I64};
    table_builder *t = tb_new(4, cols, types);
    if (!t) return ss_fail(SS_ERR_NOMEM, "%s: out of memory", name);
    array_info ri, mi;
    char rref[TABLE_STR_LEN], mref[TABLE_STR_LEN];
    uint32_t *ref = NULL;
    int rc = read_labels(c, "reference", -1, NULL, NULL, &ri, &ref, rref);
    size_t n = (size_t)(ri.shape[0] * ri.shape[1] * ri.shape[2]);
    int nm = ctx_input_count(c, "methods");
    for (int i = 0; i < nm && rc == SS_OK; i++) {
        uint32_t *pred = NULL;
        if ((rc = read_labels(c, "methods", i, &ri, rref, &mi, &pred, mref)) != SS_OK) break;
        seg_result r;
        if (seg_score(ref, pred, n, &r)) rc = ss_fail(SS_ERR_NOMEM, "%s: out of memory scoring %s", name, mref);
        free(pred);
        if (rc != SS_OK || (rc = tb_row(t)) != SS_OK) break;
        if (r.n_reference == 0) ctx_warn(c, "reference %s holds no object: SEG is NaN", rref);
        tb_str(t, 0, mref);
        tb_f64(t, 1, r.seg);
        tb_i64(t, 2, r.n_reference);
        tb_i64(t, 3, r.n_matched);
    }
    if (rc == SS_OK) rc = tb_write(t, ctx_writer(c), "seg");
    free(ref);
    tb_free(t);
    return rc;
}

static const param_spec params[] = {{0}};
static const port_spec inputs[] = {
    {.name = "reference", .kinds = KIND_IMAGE, .ref_max = TABLE_STR_LEN - 1,
     .doc = "ground-truth labels Z x Y x X (integers, 0 background), e.g. a phantom's labels"},
    {.name = "methods", .kinds = KIND_IMAGE, .multiple = 1, .ref_max = TABLE_STR_LEN - 1,
     .doc = "predicted labels to score (e.g. segment3d.labels), each the reference's shape"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "seg", .kinds = KIND_TABLE, .doc = "method, seg, n_reference, n_matched"},
    {0},
};

const stage_type stage_seg_score = {
    .name = "seg_score",
    .version = 1,
    .summary = "SEG of the cell tracking challenge: mean Jaccard index of reference objects and their >50% matches",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
