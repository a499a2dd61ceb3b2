/* normalize: percentile normalisation y = (x - P_low) / (P_high - P_low + eps)
 * over the whole stack (all repeats together, so repeats stay comparable).
 * The percentiles are exact (numpy's 'linear' definition) or, in one pass, a
 * streaming estimate with the bound documented in kernels/kernels.h. Memory is
 * one plane (R planes for repeats) whatever the stack's size. */
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    stage_ctx *c;
    char label[256]; /* "stage.array", for errors */
    store_array *a;
    array_info info;
    int64_t planes; /* leading axes flattened: R*Z or Z */
    size_t plane;   /* Y*X */
} stack_view;

/* The slab of flattened plane p: one z (and one r) index, whole y and x. */
static void plane_slab(const stack_view *v, int64_t p, int64_t *st, int64_t *ct)
{
    int r = v->info.rank;
    for (int i = 0; i < r; i++) st[i] = 0, ct[i] = v->info.shape[i];
    if (r == 4) {
        st[0] = p / v->info.shape[1];
        st[1] = p % v->info.shape[1];
        ct[0] = ct[1] = 1;
    } else {
        st[0] = p;
        ct[0] = 1;
    }
}

static int read_plane(stack_view *v, int64_t p, float *buf)
{
    int64_t st[4], ct[4];
    plane_slab(v, p, st, ct);
    return ctx_read_f32(v->c, v->a, v->label, v->info.rank, st, ct, buf);
}

static int write_plane(store_array *out, const stack_view *v, int64_t p, const float *buf)
{
    int64_t st[4], ct[4];
    plane_slab(v, p, st, ct);
    return store_array_write(out, st, ct, DT_F32, buf);
}

/* Writes output `name`: every plane of v mapped by (x - lo) * scale, refusing
 * NaN or infinity in the result (a finite input far outside the percentiles
 * can overflow float32). done, when given, counts planes for the progress. */
static int write_normalized(stage_ctx *c, stack_view *v, const char *name, float *buf, double lo, double scale,
                            int clip, int64_t *done)
{
    store_array *out = NULL;
    const kernels *k = ctx_kernels(c);
    array_meta m = array_meta_of(&v->info);
    int rc = store_writer_array(ctx_writer(c), name, DT_F32, v->info.rank, v->info.shape, NULL, &m, &out);
    for (int64_t p = 0; p < v->planes && rc == SS_OK; p++) {
        if ((rc = read_plane(v, p, buf)) != SS_OK) break;
        k->affine_f32(buf, v->plane, lo, scale, clip);
        size_t bad = k->count_nonfinite_f32(buf, v->plane);
        if (bad) {
            rc = ss_fail(SS_ERR_INPUT, "normalize: output %s plane %lld has %zu values that are NaN or beyond float32 "
                         "after scaling", name, (long long)p, bad);
            break;
        }
        rc = write_plane(out, v, p, buf);
        if (done) ctx_progress(c, ++*done);
    }
    store_array_close(out);
    return rc;
}

static int run(stage_ctx *c)
{
    stack_view v = {0}, ref = {0};
    float *buf = NULL;
    pct_state *ps = NULL;
    const char *in_stage, *in_name, *ref_stage, *ref_name;
    ctx_input(c, "stack", &in_stage, &in_name);
    v.c = ref.c = c;
    ctx_input_label(c, "stack", v.label, sizeof v.label);
    int rc = ctx_open_input(c, "stack", &v.a);
    if (rc != SS_OK) return rc;
    if ((rc = store_array_info(v.a, &v.info)) != SS_OK) goto done;
    if (v.info.rank != 3 && v.info.rank != 4) {
        rc = ss_fail(SS_ERR_INPUT, "normalize: %s.%s has rank %d; expected Z x Y x X or R x Z x Y x X", in_stage,
                     in_name, v.info.rank);
        goto done;
    }
    int r = v.info.rank;
    v.plane = (size_t)(v.info.shape[r - 1] * v.info.shape[r - 2]);
    v.planes = r == 4 ? v.info.shape[0] * v.info.shape[1] : v.info.shape[0];
    if (v.plane == 0 || v.planes == 0) {
        rc = ss_fail(SS_ERR_INPUT, "normalize: %s.%s is empty", in_stage, in_name);
        goto done;
    }
    buf = malloc(v.plane * sizeof *buf);
    double q[2] = {ctx_num(c, "p_low"), ctx_num(c, "p_high")};
    int exact = !strcmp(ctx_str(c, "method"), "exact");
    ps = pct_new(2, q, exact);
    if (!buf || !ps) {
        rc = ss_fail(SS_ERR_NOMEM, "normalize: out of memory");
        goto done;
    }
    int passes = exact ? 3 : 2; /* estimate, (refine,) write */
    ctx_progress_begin(c, "planes", v.planes * passes);
    int64_t done_planes = 0;
    while (pct_need_pass(ps) && rc == SS_OK) {
        for (int64_t p = 0; p < v.planes && rc == SS_OK; p++) {
            if ((rc = read_plane(&v, p, buf)) != SS_OK) break;
            pct_feed(ps, buf, v.plane);
            ctx_progress(c, ++done_planes);
        }
        pct_end_pass(ps);
    }
    if (rc != SS_OK) goto done;
    double lo = pct_result(ps, 0), hi = pct_result(ps, 1), eps = ctx_num(c, "eps");
    if (!(hi > lo)) {
        rc = ss_fail(SS_ERR_INPUT,
                     "normalize: %s.%s is constant between the %g and %g percentiles (both %g): nothing to normalise",
                     in_stage, in_name, q[0], q[1], lo);
        goto done;
    }
    if (eps >= 1e-3 * (hi - lo))
        ctx_warn(c, "%s.%s: the range between the %g and %g percentiles (%g) is within a factor 1000 of eps (%g), "
                 "so the result is compressed toward 0 (scale the data or lower eps)", in_stage, in_name, q[0], q[1],
                 hi - lo, eps);
    double scale = 1.0 / (hi - lo + eps);
    int clip = ctx_bool(c, "clip");
    done_planes = v.planes * (passes - 1);
    rc = write_normalized(c, &v, "data", buf, lo, scale, clip, &done_planes);
    if (rc == SS_OK && ctx_input(c, "reference", &ref_stage, &ref_name) == 1) {
        ctx_input_label(c, "reference", ref.label, sizeof ref.label);
        if ((rc = ctx_open_input(c, "reference", &ref.a)) != SS_OK) goto done;
        if ((rc = store_array_info(ref.a, &ref.info)) != SS_OK) goto done;
        int rr = ref.info.rank;
        if ((rr != 3 && rr != 4) || ref.info.shape[rr - 1] != v.info.shape[r - 1] ||
            ref.info.shape[rr - 2] != v.info.shape[r - 2]) {
            rc = ss_fail(SS_ERR_INPUT, "normalize: reference %s.%s must be Z x Y x X or R x Z x Y x X with the planes of "
                         "%s.%s (%lld x %lld)", ref_stage, ref_name, in_stage, in_name,
                         (long long)v.info.shape[r - 2], (long long)v.info.shape[r - 1]);
            goto done;
        }
        ref.plane = v.plane;
        ref.planes = rr == 4 ? ref.info.shape[0] * ref.info.shape[1] : ref.info.shape[0];
        rc = write_normalized(c, &ref, "reference", buf, lo, scale, clip, NULL);
    }
    if (rc == SS_OK) {
        ctx_attr(c, "p_low_value", json_real(lo));
        ctx_attr(c, "p_high_value", json_real(hi));
        ctx_attr(c, "n_values", json_integer((json_int_t)pct_count(ps)));
    }
done:
    pct_free(ps);
    free(buf);
    store_array_close(ref.a);
    store_array_close(v.a);
    return rc;
}

static const char *check(const json_t *p)
{
    if (!(json_number_value(json_object_get(p, "p_low")) < json_number_value(json_object_get(p, "p_high"))))
        return "p_low must be below p_high";
    return NULL;
}

static const param_spec params[] = {
    {.name = "p_low", .type = P_NUM, .def = "2", .flags = PARAM_RANGE, .lo = 0, .hi = 100,
     .doc = "lower percentile, mapped to 0"},
    {.name = "p_high", .type = P_NUM, .def = "99.9", .flags = PARAM_RANGE, .lo = 0, .hi = 100,
     .doc = "upper percentile, mapped to 1"},
    {.name = "eps", .type = P_NUM, .def = "1e-20", .flags = PARAM_RANGE, .lo = 0, .hi = 1,
     .doc = "added to the denominator"},
    {.name = "method", .type = P_ENUM, .def = "\"exact\"", .choices = "exact|streaming",
     .doc = "exact percentiles (2 passes over float data) or a 1-pass estimate (relative error <= 2^-11)"},
    {.name = "clip", .type = P_BOOL, .def = "false", .doc = "clamp the result to [0, 1]"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "stack", .kinds = KIND_IMAGE | KIND_REPEATS, .doc = "image Z x Y x X or repeats R x Z x Y x X"},
    {.name = "reference", .kinds = KIND_IMAGE | KIND_REPEATS, .optional = 1,
     .doc = "mapped with the stack's percentiles (e.g. a ground truth), so it compares with what is made of the stack"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "data", .kinds = KIND_IMAGE | KIND_REPEATS, .like = "stack", .doc = "normalised float32, same shape"},
    {.name = "reference", .kinds = KIND_IMAGE | KIND_REPEATS, .like = "reference",
     .doc = "the reference input mapped the same way (only when it is connected)"},
    {0},
};

const stage_type stage_normalize = {
    .name = "normalize",
    .version = 2, /* 2: arithmetic in double (float32 overflowed on stacks spanning its range) */
    .summary = "percentile normalisation (x - P_low) / (P_high - P_low + eps)",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
    .check = check,
};
