/* crop: a sub-volume [z0, z1) x [y0, y1) x [x0, x1) of an image or of every
 * repeat of a repeats stack, element type and voxel size kept. The ranges are
 * 0-based and half-open (as numpy slices); null takes the whole axis. For
 * trying settings on a region before running a whole stack, and for cutting
 * a region of interest out of a larger acquisition. Memory is one cropped
 * plane. */
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const axis_name[3] = {"z", "y", "x"};

/* [lo, hi) of axis a (0 z, 1 y, 2 x) of extent n, from the parameter. */
static int axis_range(stage_ctx *c, int a, int64_t n, const char *what, int64_t *lo, int64_t *hi)
{
    *lo = 0, *hi = n;
    if (ctx_is_null(c, axis_name[a])) return SS_OK;
    *lo = (int64_t)ctx_list_num(c, axis_name[a], 0);
    *hi = (int64_t)ctx_list_num(c, axis_name[a], 1);
    if (*hi > n)
        return ss_fail(SS_ERR_INPUT, "%s: %s: [%lld, %lld) reaches past the stack's %lld %s positions (0..%lld)",
                       ctx_stage_name(c), axis_name[a], (long long)*lo, (long long)*hi, (long long)n, what,
                       (long long)n - 1);
    return SS_OK;
}

static int run(stage_ctx *c)
{
    const char *in_stage, *in_name;
    ctx_input(c, "stack", &in_stage, &in_name);
    store_array *in = NULL, *out = NULL;
    void *buf = NULL;
    int rc = ctx_open_input(c, "stack", &in);
    array_info info;
    if (rc == SS_OK) rc = store_array_info(in, &info);
    if (rc == SS_OK && info.rank != 3 && info.rank != 4)
        rc = ss_fail(SS_ERR_INPUT, "%s: %s.%s has rank %d; expected Z x Y x X or R x Z x Y x X", ctx_stage_name(c),
                     in_stage, in_name, info.rank);
    if (rc != SS_OK) goto done;
    int r = info.rank, off = r - 3; /* index of z in shape[] */
    static const char *const what[3] = {"plane", "row", "column"};
    int64_t lo[3], hi[3];
    for (int a = 0; a < 3 && rc == SS_OK; a++) rc = axis_range(c, a, info.shape[off + a], what[a], &lo[a], &hi[a]);
    if (rc != SS_OK) goto done;
    int64_t shape[4];
    for (int i = 0; i < r; i++) shape[i] = i < off ? info.shape[i] : hi[i - off] - lo[i - off];
    array_meta m = array_meta_of(&info);
    size_t plane = (size_t)(shape[r - 1] * shape[r - 2]);
    buf = malloc(plane * dtype_size(info.dtype));
    if (!buf) {
        rc = ss_fail(SS_ERR_NOMEM, "%s: out of memory", ctx_stage_name(c));
        goto done;
    }
    if ((rc = store_writer_array(ctx_writer(c), "data", info.dtype, r, shape, NULL, &m, &out)) != SS_OK) goto done;
    int64_t R = r == 4 ? shape[0] : 1, Z = shape[off];
    ctx_progress_begin(c, "planes", R * Z);
    for (int64_t p = 0; p < R * Z && rc == SS_OK; p++) {
        int64_t src[4], dst[4], ct[4];
        if (r == 4) src[0] = dst[0] = p / Z, ct[0] = 1;
        src[off] = lo[0] + p % Z, dst[off] = p % Z, ct[off] = 1;
        src[off + 1] = lo[1], dst[off + 1] = 0, ct[off + 1] = shape[off + 1];
        src[off + 2] = lo[2], dst[off + 2] = 0, ct[off + 2] = shape[off + 2];
        if ((rc = store_array_read(in, src, ct, info.dtype, buf)) == SS_OK)
            rc = store_array_write(out, dst, ct, info.dtype, buf);
        ctx_progress(c, p + 1);
    }
    if (rc == SS_OK) ctx_attr(c, "origin", json_pack("[I,I,I]", (json_int_t)lo[0], (json_int_t)lo[1], (json_int_t)lo[2]));
done:
    free(buf);
    store_array_close(out);
    store_array_close(in);
    return rc;
}

static const char *check(const json_t *p)
{
    static char msg[96];
    for (int a = 0; a < 3; a++) {
        const json_t *v = json_object_get(p, axis_name[a]);
        if (json_is_array(v) && !(json_number_value(json_array_get(v, 0)) < json_number_value(json_array_get(v, 1)))) {
            snprintf(msg, sizeof msg, "%s: [start, stop) needs start < stop", axis_name[a]);
            return msg;
        }
    }
    return NULL;
}

#define RANGE_PARAM(axis, what)                                                                                      \
    {.name = axis, .type = P_INT_LIST, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 0, .hi = 1e12,  \
     .list_min = 2, .list_max = 2, .doc = "[start, stop) of the " what " kept, 0-based, stop excluded; null: all"}

static const param_spec params[] = {
    RANGE_PARAM("z", "planes"),
    RANGE_PARAM("y", "rows"),
    RANGE_PARAM("x", "columns"),
    {0},
};
static const port_spec inputs[] = {
    {.name = "stack", .kinds = KIND_IMAGE | KIND_REPEATS, .doc = "image Z x Y x X or repeats R x Z x Y x X"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "data", .kinds = KIND_IMAGE | KIND_REPEATS, .like = "stack",
     .doc = "the sub-volume, same element type and voxel size (every repeat for repeats)"},
    {0},
};

const stage_type stage_crop = {
    .name = "crop",
    .version = 1,
    .summary = "a sub-volume [z0, z1) x [y0, y1) x [x0, x1) of an image or of every repeat",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
    .check = check,
};
