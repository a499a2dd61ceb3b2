/* register_rigid: the motion-correction baseline. Each repeat is aligned to
 * a reference by translation, found by phase correlation with subpixel
 * refinement (the upsampled DFT of Guizar-Sicairos et al. 2008, as
 * skimage.registration.phase_cross_correlation), and resampled; fusion
 * (fuse_mean, ...) follows downstream.
 *   mode plane:  every plane of every repeat gets its own 2D shift (dy, dx)
 *                against the reference plane at the same z. Repeats of one
 *                plane are taken moments apart, so in-plane drift between
 *                planes is followed. Memory: R + 1 planes and their spectra.
 *   mode repeat: one 3D shift (dz, dy, dx) per repeat against the reference
 *                volume. Memory: about five volumes (the volume, the
 *                transform's input, its spectrum, the reference spectrum
 *                and the cross-power spectrum).
 * reference: an integer repeat index (default 0: the first, as StackReg's
 * 'first'), the voxel-wise mean or median of the unregistered repeats, or
 * previous: each repeat against the one before it (unregistered), the
 * steps summed from repeat 0 on, as StackReg's 'previous' (slow drift
 * between distant repeats then never has to be found in one step). With
 * mean/median, each repeat's own noise is part of the reference, which
 * pulls weak peaks toward zero shift; an index or previous avoids that.
 * max_shift_px bounds every component of a shift found (with previous: of
 * each step between neighbours): on_max_shift error fails the stage naming
 * the repeat and plane; restrict searches for the peak only among shifts
 * within the bound (the best plausible match wins).
 * Shifts are what each repeat is moved by (registered(x) = repeat(x - s)),
 * the sign convention of skimage and scipy.ndimage.shift. */
#include "stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { REF_INDEX, REF_MEAN, REF_MEDIAN, REF_PREVIOUS };

/* "mean", "median", "previous" or a repeat index written with digits;
 * returns -1 when the text is none of these. */
static int parse_reference(const char *s, long *index)
{
    *index = 0;
    if (!strcmp(s, "mean")) return REF_MEAN;
    if (!strcmp(s, "median")) return REF_MEDIAN;
    if (!strcmp(s, "previous")) return REF_PREVIOUS;
    if (!*s || strlen(s) > 9) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    *index = strtol(s, NULL, 10);
    return REF_INDEX;
}

typedef struct {
    stage_ctx *c;
    const kernels *k;
    store_array *in, *out;
    const char *in_stage, *in_name;
    char label[256]; /* "stage.array" of the input, for errors */
    int64_t R, Z, Y, X;
    int ref_kind;
    long ref_index;
    xcorr_opts o;
    double max_shift;
    int restrict_search;
    int interp, edge;
    /* the shifts table */
    int64_t *t_rep, *t_z;
    double *t_dz, *t_dy, *t_dx, *t_peak;
    int64_t rows;
} reg_job;

/* Reads a slab of the input, checked (ctx_read_f32). */
static int read_checked(reg_job *j, const int64_t *st, const int64_t *ct, float *buf)
{
    return ctx_read_f32(j->c, j->in, j->label, 4, st, ct, buf);
}

/* Checks the shift found (step) against max_shift_px and records the
 * shift applied (s: the step, or with reference previous the sum of the
 * steps so far). */
static int record(reg_job *j, int64_t r, int64_t z, const double step[3], const double s[3], double peak)
{
    if (j->max_shift > 0 && !j->restrict_search)
        for (int d = 0; d < 3; d++)
            if (fabs(step[d]) > j->max_shift) {
                char where[64] = "";
                if (z >= 0) snprintf(where, sizeof where, " plane %lld", (long long)z);
                return ss_fail(SS_ERR_INPUT,
                               "register_rigid: %s.%s repeat %lld%s: shift (dz %g, dy %g, dx %g) exceeds max_shift_px %g "
                               "(correlation peak %.3g); raise max_shift_px or set on_max_shift: restrict",
                               j->in_stage, j->in_name, (long long)r, where, step[0], step[1], step[2], j->max_shift,
                               peak);
            }
    int64_t i = j->rows++;
    j->t_rep[i] = r;
    j->t_z[i] = z;
    j->t_dz[i] = s[0];
    j->t_dy[i] = s[1];
    j->t_dx[i] = s[2];
    j->t_peak[i] = peak;
    return SS_OK;
}

static int shift_or_fail(reg_job *j, float *x, int64_t nz, const double s[3])
{
    if (j->k->shift_f32(x, nz, j->Y, j->X, s, j->interp, j->edge) != 0)
        return ss_fail(SS_ERR_NOMEM, "register_rigid: out of memory (or no FFTW plan) shifting a %lld x %lld x %lld block",
                       (long long)nz, (long long)j->Y, (long long)j->X);
    return SS_OK;
}

static int run_planes(reg_job *j)
{
    size_t plane = (size_t)(j->Y * j->X);
    int64_t R = j->R;
    float *rep = malloc((size_t)R * plane * sizeof *rep), *ref = malloc(plane * sizeof *ref);
    xcorr_state *xs = j->k->xcorr_new(1, j->Y, j->X, &j->o);
    int rc = SS_OK;
    if (!rep || !ref || !xs)
        rc = ss_fail(SS_ERR_NOMEM, "register_rigid: out of memory (or no FFTW plan) for %lld planes of %lld x %lld",
                     (long long)R + 1, (long long)j->Y, (long long)j->X);
    ctx_progress_begin(j->c, "planes", j->Z);
    for (int64_t z = 0; z < j->Z && rc == SS_OK; z++) {
        if (ctx_cancelled(j->c)) {
            rc = ss_fail(SS_ERR_INTERRUPTED, "register_rigid: interrupted at plane %lld", (long long)z);
            break;
        }
        int64_t st[4] = {0, z, 0, 0}, ct[4] = {R, 1, j->Y, j->X};
        if ((rc = read_checked(j, st, ct, rep)) != SS_OK) break;
        if (j->ref_kind == REF_MEAN) j->k->fuse_mean_f32(rep, (int)R, plane, ref);
        else if (j->ref_kind == REF_MEDIAN) j->k->fuse_median_f32(rep, (int)R, plane, ref);
        else memcpy(ref, rep + (size_t)j->ref_index * plane, plane * sizeof *ref);
        j->k->xcorr_reference_f32(xs, ref);
        double sum[3] = {0, 0, 0};
        for (int64_t r = 0; r < R && rc == SS_OK; r++) {
            double step[3], peak;
            float *x = rep + (size_t)r * plane;
            j->k->xcorr_find_f32(xs, x, step, &peak);
            const double *s = step;
            if (j->ref_kind == REF_PREVIOUS) {
                for (int d = 0; d < 3; d++) sum[d] += step[d];
                s = sum;
                if (r > 0 && r + 1 < R) j->k->xcorr_reference_f32(xs, x); /* before x is shifted */
            }
            if ((rc = record(j, r, z, step, s, peak)) == SS_OK) rc = shift_or_fail(j, x, 1, s);
        }
        if (rc == SS_OK) rc = store_array_write(j->out, st, ct, DT_F32, rep);
        ctx_progress(j->c, z + 1);
    }
    j->k->xcorr_free(xs);
    free(rep);
    free(ref);
    return rc;
}

static int read_volume(reg_job *j, int64_t r, float *vol)
{
    int64_t st[4] = {r, 0, 0, 0}, ct[4] = {1, j->Z, j->Y, j->X};
    return read_checked(j, st, ct, vol);
}

static int run_volumes(reg_job *j)
{
    size_t plane = (size_t)(j->Y * j->X), nvox = plane * (size_t)j->Z;
    int64_t R = j->R;
    float *vol = malloc(nvox * sizeof *vol), *rep = NULL;
    xcorr_state *xs = j->k->xcorr_new(j->Z, j->Y, j->X, &j->o);
    int rc = SS_OK;
    if (!vol || !xs)
        rc = ss_fail(SS_ERR_NOMEM, "register_rigid: out of memory (or no FFTW plan) for volumes of %lld x %lld x %lld",
                     (long long)j->Z, (long long)j->Y, (long long)j->X);
    ctx_progress_begin(j->c, "repeats", R + 1);
    if (rc == SS_OK && (j->ref_kind == REF_INDEX || j->ref_kind == REF_PREVIOUS)) rc = read_volume(j, j->ref_index, vol);
    else if (rc == SS_OK) {
        if (!(rep = malloc((size_t)R * plane * sizeof *rep)))
            rc = ss_fail(SS_ERR_NOMEM, "register_rigid: out of memory for one plane of %lld repeats", (long long)R);
        for (int64_t z = 0; z < j->Z && rc == SS_OK; z++) {
            int64_t st[4] = {0, z, 0, 0}, ct[4] = {R, 1, j->Y, j->X};
            if ((rc = read_checked(j, st, ct, rep)) != SS_OK) break;
            if (j->ref_kind == REF_MEAN) j->k->fuse_mean_f32(rep, (int)R, plane, vol + (size_t)z * plane);
            else j->k->fuse_median_f32(rep, (int)R, plane, vol + (size_t)z * plane);
        }
        free(rep);
    }
    if (rc == SS_OK) j->k->xcorr_reference_f32(xs, vol);
    ctx_progress(j->c, 1);
    double sum[3] = {0, 0, 0};
    for (int64_t r = 0; r < R && rc == SS_OK; r++) {
        if (ctx_cancelled(j->c)) {
            rc = ss_fail(SS_ERR_INTERRUPTED, "register_rigid: interrupted at repeat %lld", (long long)r);
            break;
        }
        if ((rc = read_volume(j, r, vol)) != SS_OK) break;
        double step[3], peak;
        j->k->xcorr_find_f32(xs, vol, step, &peak);
        const double *s = step;
        if (j->ref_kind == REF_PREVIOUS) {
            for (int d = 0; d < 3; d++) sum[d] += step[d];
            s = sum;
            if (r > 0 && r + 1 < R) j->k->xcorr_reference_f32(xs, vol); /* before vol is shifted */
        }
        if ((rc = record(j, r, -1, step, s, peak)) != SS_OK) break;
        if ((rc = shift_or_fail(j, vol, j->Z, s)) != SS_OK) break;
        int64_t st[4] = {r, 0, 0, 0}, ct[4] = {1, j->Z, j->Y, j->X};
        rc = store_array_write(j->out, st, ct, DT_F32, vol);
        ctx_progress(j->c, r + 2);
    }
    j->k->xcorr_free(xs);
    free(vol);
    return rc;
}

static int write_table(reg_job *j, int volumes)
{
    table_col cols[6];
    int n = 0;
    cols[n++] = (table_col){.name = "repeat", .type = COL_I64, .i64 = j->t_rep};
    cols[n++] = (table_col){.name = "z", .type = COL_I64, .i64 = j->t_z};
    cols[n++] = (table_col){.name = "dy", .type = COL_F64, .f64 = j->t_dy};
    cols[n++] = (table_col){.name = "dx", .type = COL_F64, .f64 = j->t_dx};
    if (volumes) cols[n++] = (table_col){.name = "dz", .type = COL_F64, .f64 = j->t_dz};
    cols[n++] = (table_col){.name = "peak", .type = COL_F64, .f64 = j->t_peak};
    table_view v = {.n_cols = n, .n_rows = j->rows, .cols = cols};
    return store_writer_table(ctx_writer(j->c), "shifts", &v);
}

static int run(stage_ctx *c)
{
    reg_job j = {.c = c, .k = ctx_kernels(c)};
    ctx_input(c, "repeats", &j.in_stage, &j.in_name);
    ctx_input_label(c, "repeats", j.label, sizeof j.label);
    int rc = ctx_open_input(c, "repeats", &j.in);
    if (rc != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(j.in, &info)) != SS_OK) goto done;
    if (info.rank != 4) {
        rc = ss_fail(SS_ERR_INPUT, "register_rigid: %s.%s has rank %d; expected repeats R x Z x Y x X", j.in_stage,
                     j.in_name, info.rank);
        goto done;
    }
    j.R = info.shape[0], j.Z = info.shape[1], j.Y = info.shape[2], j.X = info.shape[3];
    if (j.R * j.Z * j.Y * j.X == 0) {
        rc = ss_fail(SS_ERR_INPUT, "register_rigid: %s.%s is empty (%lld x %lld x %lld x %lld)", j.in_stage, j.in_name,
                     (long long)j.R, (long long)j.Z, (long long)j.Y, (long long)j.X);
        goto done;
    }
    j.ref_kind = parse_reference(ctx_str(c, "reference"), &j.ref_index);
    if (j.ref_kind == REF_INDEX && j.ref_index >= j.R) {
        rc = ss_fail(SS_ERR_INPUT, "register_rigid: reference repeat %ld, but %s.%s holds %lld repeats (0 to %lld)",
                     j.ref_index, j.in_stage, j.in_name, (long long)j.R, (long long)j.R - 1);
        goto done;
    }
    int volumes = !strcmp(ctx_str(c, "mode"), "repeat");
    j.max_shift = ctx_num(c, "max_shift_px");
    j.restrict_search = !strcmp(ctx_str(c, "on_max_shift"), "restrict");
    j.o = (xcorr_opts){.hann = !strcmp(ctx_str(c, "window"), "hann"),
                       .phase = !strcmp(ctx_str(c, "normalization"), "phase"),
                       .upsample = (int)ctx_int(c, "upsample"),
                       .max_shift = j.restrict_search ? j.max_shift : 0};
    const char *ip = ctx_str(c, "interpolation"), *ed = ctx_str(c, "edge");
    j.interp = !strcmp(ip, "fourier") ? SHIFT_FOURIER : !strcmp(ip, "linear") ? SHIFT_LINEAR : SHIFT_CUBIC;
    j.edge = !strcmp(ed, "zero") ? EDGE_ZERO : !strcmp(ed, "nearest") ? EDGE_NEAREST : EDGE_REFLECT;
    size_t nrows = (size_t)(volumes ? j.R : j.R * j.Z);
    j.t_rep = malloc(nrows * sizeof *j.t_rep);
    j.t_z = malloc(nrows * sizeof *j.t_z);
    j.t_dz = malloc(nrows * sizeof *j.t_dz);
    j.t_dy = malloc(nrows * sizeof *j.t_dy);
    j.t_dx = malloc(nrows * sizeof *j.t_dx);
    j.t_peak = malloc(nrows * sizeof *j.t_peak);
    if (!j.t_rep || !j.t_z || !j.t_dz || !j.t_dy || !j.t_dx || !j.t_peak) {
        rc = ss_fail(SS_ERR_NOMEM, "register_rigid: out of memory for a table of %zu shifts", nrows);
        goto done;
    }
    array_meta m = array_meta_of(&info);
    strcpy(m.axes, "rzyx");
    if ((rc = store_writer_array(ctx_writer(c), "registered", DT_F32, 4, info.shape, NULL, &m, &j.out)) != SS_OK)
        goto done;
    rc = volumes ? run_volumes(&j) : run_planes(&j);
    if (rc == SS_OK) rc = write_table(&j, volumes);
    if (rc == SS_OK) {
        double mx = 0;
        for (int64_t i = 0; i < j.rows; i++) mx = fmax(mx, fmax(fabs(j.t_dz[i]), fmax(fabs(j.t_dy[i]), fabs(j.t_dx[i]))));
        ctx_attr(c, "max_abs_shift_px", json_real(mx));
    }
done:
    free(j.t_rep);
    free(j.t_z);
    free(j.t_dz);
    free(j.t_dy);
    free(j.t_dx);
    free(j.t_peak);
    store_array_close(j.out);
    store_array_close(j.in);
    return rc;
}

static const char *check(const json_t *p)
{
    long idx;
    if (parse_reference(json_string_value(json_object_get(p, "reference")), &idx) < 0)
        return "reference must be mean, median, previous or a repeat index (0, 1, ...)";
    return NULL;
}

static const param_spec params[] = {
    {.name = "mode", .type = P_ENUM, .def = "\"plane\"", .choices = "plane|repeat",
     .doc = "plane: a 2D shift per plane of each repeat; repeat: one 3D shift per repeat"},
    {.name = "reference", .type = P_STR, .def = "\"0\"",
     .doc = "what repeats are aligned to: a repeat index, mean or median of the repeats, or previous (chained)"},
    {.name = "normalization", .type = P_ENUM, .def = "\"phase\"", .choices = "phase|none",
     .doc = "phase: normalised cross-power spectrum (phase correlation); none: plain cross-correlation"},
    {.name = "window", .type = P_ENUM, .def = "\"none\"", .choices = "none|hann",
     .doc = "hann: subtract the mean and apply a separable Hann window before the transform"},
    {.name = "upsample", .type = P_INT, .def = "20", .flags = PARAM_RANGE, .lo = 1, .hi = 100,
     .doc = "subpixel precision 1/upsample px (upsampled DFT around the peak)"},
    {.name = "max_shift_px", .type = P_NUM, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 1e9,
     .doc = "largest plausible shift per axis in pixels (0: no limit)"},
    {.name = "on_max_shift", .type = P_ENUM, .def = "\"error\"", .choices = "error|restrict",
     .doc = "a larger shift fails the stage, or the peak is searched only within max_shift_px"},
    {.name = "interpolation", .type = P_ENUM, .def = "\"cubic\"", .choices = "cubic|linear|fourier",
     .doc = "resampling: cubic B-spline or linear (scipy.ndimage.shift order 3/1), or Fourier shift (periodic)"},
    {.name = "edge", .type = P_ENUM, .def = "\"reflect\"", .choices = "reflect|zero|nearest",
     .doc = "values beyond the edge for cubic/linear resampling"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "repeats", .kinds = KIND_REPEATS, .doc = "repeated acquisitions R x Z x Y x X"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "registered", .kinds = KIND_REPEATS, .like = "repeats", .doc = "the repeats shifted onto the reference, float32, same shape"},
    {.name = "shifts", .kinds = KIND_TABLE,
     .doc = "repeat, z (-1: whole volume), dy, dx, dz (mode repeat), peak: the shift applied and its correlation peak"},
    {0},
};

const stage_type stage_register_rigid = {
    .name = "register_rigid",
    .version = 1,
    .summary = "translation registration of the repeats to a reference by phase correlation (baseline motion correction)",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
    .check = check,
};
