/* segment3d: nuclei of a ZYX image as labelled objects, the 3D segmentation
 * check of IsoNet (Weigert et al. 2017):
 *   1. a global threshold: intermodes (Prewitt & Mendelsohn, as ImageJ) on
 *      a 256-bin histogram over [min, max] of the image, bins of width
 *      w = (max - min) / 256; threshold = min + (t + 1) w, the upper edge of
 *      the last background bin t; or the `threshold` given. Foreground:
 *      value >= threshold.
 *   2. holes filled (background not 6-connected to the border)
 *   3. the exact Euclidean distance transform in micrometres (the image's
 *      voxel size)
 *   4. markers: the h-maxima of the distance (height `h_um`, 26-connected
 *      reconstruction), inside the foreground, labelled 26-connected
 *   5. watershed of the negated distance from the markers inside the
 *      foreground, 6-connected, splitting touching nuclei
 *   6. foreground the flood did not reach (components without a marker) as
 *      objects of their own (6-connected); objects below `min_voxels`
 *      removed; labels renumbered 1..N in raster order of first voxels.
 * Outputs `labels` (uint32) and the table `objects`. The whole volume is
 * held: about 60 bytes per voxel at the peak (the watershed's front). */
#include "stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { HIST_BINS = 256 };

typedef struct {
    stage_ctx *c;
    int64_t Z, Y, X;
    size_t n;
    float *img;
    uint8_t *mask, *peaks;
    double *dist;
    uint32_t *markers, *lab;
} seg_run;

static void seg_run_free(seg_run *s)
{
    free(s->img);
    free(s->mask);
    free(s->peaks);
    free(s->dist);
    free(s->markers);
    free(s->lab);
}

/* Step 1: the mask of voxels at or above the threshold. */
static int threshold_mask(seg_run *s, const char *label)
{
    stage_ctx *c = s->c;
    const char *name = ctx_stage_name(c);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < s->n; i++) lo = fminf(lo, s->img[i]), hi = fmaxf(hi, s->img[i]);
    double thr;
    if (!ctx_is_null(c, "threshold")) {
        thr = ctx_num(c, "threshold");
        ctx_attr(c, "threshold_method", json_string("given"));
    } else {
        if (!(hi > lo))
            return ss_fail(SS_ERR_INPUT, "%s: %s is constant (every voxel %g): no threshold separates objects", name,
                           label, (double)lo);
        double w = ((double)hi - (double)lo) / HIST_BINS, hist[HIST_BINS] = {0};
        for (size_t i = 0; i < s->n; i++) {
            int64_t b = (int64_t)floor(((double)s->img[i] - lo) / w);
            hist[b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b] += 1;
        }
        int t = 0, passes = threshold_intermodes(hist, HIST_BINS, &t);
        if (passes == -2) return ss_fail(SS_ERR_NOMEM, "%s: out of memory for the histogram", name);
        if (passes < 0)
            return ss_fail(SS_ERR_INPUT,
                           "%s: the histogram of %s does not become bimodal after %d smoothing passes (no "
                           "intermodes threshold); give `threshold`",
                           name, label, SEG_INTERMODES_MAX_PASSES);
        thr = lo + (t + 1) * w;
        ctx_attr(c, "threshold_method", json_string("intermodes"));
        ctx_attr(c, "intermodes_passes", json_integer(passes));
        ctx_attr(c, "intermodes_bin", json_integer(t));
    }
    ctx_attr(c, "threshold", json_real(thr));
    size_t fg = 0;
    for (size_t i = 0; i < s->n; i++) fg += s->mask[i] = s->img[i] >= thr;
    if (fg == 0)
        return ss_fail(SS_ERR_INPUT, "%s: no voxel of %s reaches the threshold %g (range %g to %g)", name, label, thr,
                       (double)lo, (double)hi);
    if (fg == s->n)
        return ss_fail(SS_ERR_INPUT, "%s: every voxel of %s is at or above the threshold %g: no background", name,
                       label, thr);
    return SS_OK;
}

/* Steps 3-6: objects from the filled mask into s->lab. Returns the count or
 * a negative error. */
static int64_t split_objects(seg_run *s, const double vox[3])
{
    const char *name = ctx_stage_name(s->c);
    int64_t Z = s->Z, Y = s->Y, X = s->X;
    if (edt_f64(s->mask, Z, Y, X, vox, s->dist) || hmaxima_f64(s->dist, Z, Y, X, ctx_num(s->c, "h_um"), s->peaks))
        return ss_fail(SS_ERR_NOMEM, "%s: out of memory for the distance transform", name);
    for (size_t i = 0; i < s->n; i++) {
        s->peaks[i] &= s->mask[i];
        s->dist[i] = -s->dist[i];
    }
    int64_t nm = label_u32(s->peaks, Z, Y, X, 26, s->markers);
    if (nm < 0 || watershed_f64(s->dist, s->markers, s->mask, Z, Y, X, 6, s->lab))
        return ss_fail(SS_ERR_NOMEM, "%s: out of memory for the watershed", name);
    for (size_t i = 0; i < s->n; i++) s->peaks[i] = s->mask[i] && !s->lab[i];
    int64_t nr = label_u32(s->peaks, Z, Y, X, 6, s->markers);
    if (nr < 0 || nm + nr > (int64_t)UINT32_MAX)
        return ss_fail(SS_ERR_NOMEM, "%s: out of memory labelling the foreground", name);
    for (size_t i = 0; i < s->n; i++)
        if (s->markers[i]) s->lab[i] = (uint32_t)nm + s->markers[i];
    ctx_attr(s->c, "markers", json_integer(nm));
    ctx_attr(s->c, "unmarked_components", json_integer(nr));
    return nm + nr;
}

/* Step 6: drop small objects, renumber, and tabulate. */
static int renumber(seg_run *s, int64_t count, table_builder *t, int64_t *kept)
{
    int64_t min_vox = ctx_int(s->c, "min_voxels");
    int64_t *size = calloc((size_t)count + 1, sizeof *size);
    uint32_t *map = calloc((size_t)count + 1, sizeof *map);
    double *sum = calloc(3 * ((size_t)count + 1), sizeof *sum);
    if (!size || !map || !sum) {
        free(size);
        free(map);
        free(sum);
        return ss_fail(SS_ERR_NOMEM, "%s: out of memory for %lld objects", ctx_stage_name(s->c), (long long)count);
    }
    for (size_t i = 0; i < s->n; i++) size[s->lab[i]]++;
    uint32_t next = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint32_t l = s->lab[i];
        if (l && !map[l] && size[l] >= min_vox) map[l] = ++next;
        uint32_t m = l ? map[l] : 0;
        s->lab[i] = m;
        if (!m) continue;
        int64_t v = (int64_t)i;
        sum[3 * m] += (double)(v / (s->Y * s->X));
        sum[3 * m + 1] += (double)((v / s->X) % s->Y);
        sum[3 * m + 2] += (double)(v % s->X);
    }
    /* The old label of each new one, for the rows in label order. */
    uint32_t *old = calloc((size_t)next + 1, sizeof *old);
    int rc = old ? SS_OK : ss_fail(SS_ERR_NOMEM, "%s: out of memory", ctx_stage_name(s->c));
    for (int64_t l = 1; l <= count && rc == SS_OK; l++)
        if (map[l]) old[map[l]] = (uint32_t)l;
    for (uint32_t m = 1; m <= next && rc == SS_OK; m++) {
        if ((rc = tb_row(t)) != SS_OK) break;
        double nv = (double)size[old[m]];
        tb_i64(t, 0, m);
        tb_i64(t, 1, size[old[m]]);
        for (int d = 0; d < 3; d++) tb_f64(t, 2 + d, sum[3 * m + d] / nv);
    }
    free(old);
    *kept = next;
    free(size);
    free(map);
    free(sum);
    return rc;
}

static int run(stage_ctx *c)
{
    const char *name = ctx_stage_name(c);
    char label[160];
    ctx_input_label(c, "image", label, sizeof label);
    seg_run s = {.c = c};
    store_array *in = NULL, *out = NULL;
    static const char *const cols[5] = {"label", "voxels", "z", "y", "x"};
    static const col_type types[5] = {COL_I64, COL_I64, COL_F64, COL_F64, COL_F64};
    table_builder *t = tb_new(5, cols, types);
    int rc = t ? ctx_open_input(c, "image", &in) : ss_fail(SS_ERR_NOMEM, "%s: out of memory", name);
    array_info info;
    if (rc == SS_OK) rc = store_array_info(in, &info);
    if (rc == SS_OK && info.rank != 3)
        rc = ss_fail(SS_ERR_INPUT, "%s: %s has rank %d; expected Z x Y x X", name, label, info.rank);
    if (rc != SS_OK) goto done;
    s.Z = info.shape[0], s.Y = info.shape[1], s.X = info.shape[2];
    s.n = (size_t)(s.Z * s.Y * s.X);
    if (s.n == 0) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s is empty (%lld x %lld x %lld)", name, label, (long long)s.Z, (long long)s.Y,
                     (long long)s.X);
        goto done;
    }
    s.img = malloc(s.n * sizeof *s.img);
    s.mask = malloc(s.n);
    if (!s.img || !s.mask) {
        rc = ss_nomem(s.n * 5, "%s: the image and its mask", name);
        goto done;
    }
    int64_t st[3] = {0, 0, 0}, ct[3] = {s.Z, s.Y, s.X};
    ctx_progress_begin(c, "steps", 4);
    if ((rc = ctx_read_f32(c, in, label, 3, st, ct, s.img)) != SS_OK) goto done;
    if ((rc = threshold_mask(&s, label)) != SS_OK) goto done;
    free(s.img);
    s.img = NULL;
    ctx_progress(c, 1);
    if (ctx_bool(c, "fill_holes") && fill_holes_u8(s.mask, s.Z, s.Y, s.X)) {
        rc = ss_fail(SS_ERR_NOMEM, "%s: out of memory filling holes", name);
        goto done;
    }
    s.dist = malloc(s.n * sizeof *s.dist);
    s.peaks = malloc(s.n);
    s.markers = malloc(s.n * sizeof *s.markers);
    s.lab = malloc(s.n * sizeof *s.lab);
    if (!s.dist || !s.peaks || !s.markers || !s.lab) {
        rc = ss_nomem(s.n * 17, "%s: the distance transform and labels", name);
        goto done;
    }
    array_meta m = array_meta_of(&info);
    ctx_progress(c, 2);
    int64_t count = split_objects(&s, m.voxel);
    if (count < 0) {
        rc = (int)count;
        goto done;
    }
    ctx_progress(c, 3);
    int64_t kept = 0;
    if ((rc = renumber(&s, count, t, &kept)) != SS_OK) goto done;
    if (kept == 0) ctx_warn(c, "no object of at least min_voxels %lld voxels", (long long)ctx_int(c, "min_voxels"));
    ctx_attr(c, "objects", json_integer(kept));
    if ((rc = store_writer_array(ctx_writer(c), "labels", DT_U32, 3, ct, NULL, &m, &out)) != SS_OK) goto done;
    if ((rc = store_array_write(out, st, ct, DT_U32, s.lab)) != SS_OK) goto done;
    rc = tb_write(t, ctx_writer(c), "objects");
    ctx_progress(c, 4);
done:
    store_array_close(out);
    store_array_close(in);
    tb_free(t);
    seg_run_free(&s);
    return rc;
}

static const param_spec params[] = {
    {.name = "threshold", .type = P_NUM, .def = "null", .flags = PARAM_NULLABLE,
     .doc = "foreground is value >= threshold; null: intermodes on a 256-bin histogram over [min, max]"},
    {.name = "fill_holes", .type = P_BOOL, .def = "true",
     .doc = "fill background enclosed by foreground (not 6-connected to the border)"},
    {.name = "h_um", .type = P_NUM, .def = "1.0", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1e6,
     .doc = "markers: h-maxima of the distance transform of this height, micrometres (larger: fewer splits)"},
    {.name = "min_voxels", .type = P_INT, .def = "1", .flags = PARAM_RANGE, .lo = 1, .hi = 1e12,
     .doc = "objects with fewer voxels are removed"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "image", .kinds = KIND_IMAGE, .doc = "Z x Y x X image, nuclei bright"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "labels", .kinds = KIND_IMAGE, .doc = "objects 1..N, uint32 Z x Y x X, 0 background"},
    {.name = "objects", .kinds = KIND_TABLE, .doc = "label, voxels, z, y, x (centroid in voxels)"},
    {0},
};

const stage_type stage_segment3d = {
    .name = "segment3d",
    .version = 1,
    .summary = "3D nuclei segmentation: intermodes threshold, hole filling, EDT, h-maxima markers, watershed",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
