/* interp_linear and interp_cubic: the interplane-prediction baselines. Keep
 * every n-th plane (or a given list), predict the others along z from the
 * kept ones, and write the full stack, the predicted planes alone, and a
 * per-plane mask of what was predicted. Held-out planes are never read.
 *   linear: between the two nearest kept planes (numpy.interp per voxel).
 *   cubic:  the natural cubic spline through all kept planes
 *           (scipy.interpolate.CubicSpline(kept_z, kept, bc_type='natural')).
 * Planes before the first or after the last kept plane take the nearest kept
 * plane (as numpy.interp does; a spline's end piece would extrapolate a
 * cubic). Kept planes are copied exactly (as float32).
 *
 * Every predicted plane is a fixed linear combination of kept planes; the
 * weights are worked out once, in double, from the plane positions alone
 * (the spline's from two rows of the inverse of its tridiagonal system).
 * The spline's weights fall by about 2 - sqrt(3) = 0.27 per kept plane away
 * from the predicted one (for even spacing), so weights below 1e-12 of the
 * plane's total weight are dropped from both ends: the change is below
 * float32 resolution, and memory stays at the kept planes a prediction
 * still needs: 2 planes for linear, at most about 45 for the spline with
 * even spacing, whatever the stack's length (all kept planes at worst, for
 * very uneven spacing). Planes are streamed in z order and each kept plane
 * is read once. */
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEIGHT_DROP 1e-12

typedef struct {
    int64_t z;
    int lo, hi; /* the kept planes with weights that count */
    double *w;  /* their weights, hi - lo + 1 */
} prediction;

static void linear_weights(const int64_t *kz, int K, int64_t p, double *w)
{
    memset(w, 0, (size_t)K * sizeof *w);
    if (p <= kz[0]) {
        w[0] = 1;
        return;
    }
    if (p >= kz[K - 1]) {
        w[K - 1] = 1;
        return;
    }
    int j = 0;
    while (kz[j + 1] < p) j++;
    double t = (double)(p - kz[j]) / (double)(kz[j + 1] - kz[j]);
    w[j] = 1 - t;
    w[j + 1] = t;
}

/* Natural cubic spline: second derivatives M at the knots are linear in the
 * knot values y: M_0 = M_{K-1} = 0 and, for the interior knots, T M = D y
 * with T tridiagonal and symmetric (h_{j-1}, 2 (h_{j-1} + h_j), h_j) and
 * D y = 6 ((y_{j+1} - y_j) / h_j - (y_j - y_{j-1}) / h_{j-1}). Row j of
 * T^-1 D (M_j as weights on y) is v^T D with T v = e_j, by symmetry: one
 * Thomas solve (T is diagonally dominant) and one pass over D's three
 * diagonals, so no K x K matrix is ever held. g gets K weights; scratch
 * holds 3 (K - 2) doubles. */
static void spline_m_row(const int64_t *kz, int K, int j, double *g, double *scratch)
{
    memset(g, 0, (size_t)K * sizeof *g);
    int n = K - 2;
    if (n <= 0 || j <= 0 || j >= K - 1) return;
    double *cp = scratch, *d = scratch + n, *v = scratch + 2 * n;
    for (int r = 0; r < n; r++) {
        double h0 = (double)(kz[r + 1] - kz[r]), h1 = (double)(kz[r + 2] - kz[r + 1]);
        double b = 2 * (h0 + h1), rhs = r == j - 1 ? 1.0 : 0.0;
        double den = r == 0 ? b : b - h0 * cp[r - 1];
        cp[r] = h1 / den;
        d[r] = (r == 0 ? rhs : rhs - h0 * d[r - 1]) / den;
    }
    for (int r = n - 1; r >= 0; r--) v[r] = d[r] - (r + 1 < n ? cp[r] * v[r + 1] : 0);
    for (int r = 0; r < n; r++) {
        double h0 = (double)(kz[r + 1] - kz[r]), h1 = (double)(kz[r + 2] - kz[r + 1]);
        g[r] += v[r] * 6 / h0;
        g[r + 1] -= v[r] * (6 / h0 + 6 / h1);
        g[r + 2] += v[r] * 6 / h1;
    }
}

/* w, g: K doubles each; scratch: 3 K doubles. */
static void spline_weights(const int64_t *kz, int K, int64_t p, double *w, double *g, double *scratch)
{
    if (p <= kz[0] || p >= kz[K - 1]) {
        linear_weights(kz, K, p, w);
        return;
    }
    int j = 0;
    while (kz[j + 1] < p) j++;
    double h = (double)(kz[j + 1] - kz[j]);
    double A = (double)(kz[j + 1] - p) / h, B = (double)(p - kz[j]) / h;
    double c = (A * A * A - A) * h * h / 6, e = (B * B * B - B) * h * h / 6;
    memset(w, 0, (size_t)K * sizeof *w);
    spline_m_row(kz, K, j, g, scratch);
    for (int i = 0; i < K; i++) w[i] += c * g[i];
    spline_m_row(kz, K, j + 1, g, scratch);
    for (int i = 0; i < K; i++) w[i] += e * g[i];
    w[j] += A;
    w[j + 1] += B;
}

/* Keeps the weights w[lo..hi] that count; returns -1 when out of memory. */
static int weight_window(prediction *pr, const double *w, int K)
{
    double total = 0;
    for (int i = 0; i < K; i++) total += fabs(w[i]);
    double drop = WEIGHT_DROP * total;
    pr->lo = 0;
    pr->hi = K - 1;
    while (pr->lo < pr->hi && fabs(w[pr->lo]) < drop) pr->lo++;
    while (pr->hi > pr->lo && fabs(w[pr->hi]) < drop) pr->hi--;
    size_t n = (size_t)(pr->hi - pr->lo + 1);
    if (!(pr->w = malloc(n * sizeof *pr->w))) return -1;
    memcpy(pr->w, w + pr->lo, n * sizeof *pr->w);
    return 0;
}

/* Kept planes from the parameters; fails when they do not fit a stack of Z
 * planes. *kz is allocated. */
static int kept_planes(stage_ctx *c, const char *who, const char *where, int64_t Z, int64_t **kz, int *K)
{
    *kz = NULL;
    *K = 0;
    int64_t *k = malloc((size_t)Z * sizeof *k);
    if (!k) return ss_fail(SS_ERR_NOMEM, "%s: out of memory", who);
    int n = 0;
    if (!ctx_is_null(c, "keep_every")) {
        int64_t every = ctx_int(c, "keep_every"), off = ctx_int(c, "offset");
        for (int64_t z = off; z < Z; z += every) k[n++] = z;
        if (n < 2 || n == Z) {
            free(k);
            return ss_fail(SS_ERR_INPUT,
                           "%s: keep_every %lld with offset %lld keeps %d of the %lld planes of %s; at least 2 must be "
                           "kept and 1 predicted",
                           who, (long long)every, (long long)off, n, (long long)Z, where);
        }
    } else {
        size_t L = ctx_list_len(c, "keep_planes");
        for (size_t i = 0; i < L; i++) {
            double v = ctx_list_num(c, "keep_planes", i);
            if (v >= (double)Z) {
                free(k);
                return ss_fail(SS_ERR_INPUT, "%s: keep_planes[%zu] = %.0f is beyond the last plane (%lld) of %s", who,
                               i, v, (long long)Z - 1, where);
            }
            k[n++] = (int64_t)v;
        }
        if (n == Z) {
            free(k);
            return ss_fail(SS_ERR_INPUT, "%s: keep_planes keeps all %lld planes of %s; nothing is left to predict", who,
                           (long long)Z, where);
        }
    }
    *kz = k;
    *K = n;
    return SS_OK;
}

typedef struct {
    store_array *in;
    float **plane; /* per kept index: loaded plane or NULL */
    const int64_t *kz;
    int K;
    int held, max_held; /* planes in memory now, and at most */
    int64_t Y, X;
    const kernels *k;
    stage_ctx *c;
    const char *who, *in_stage, *in_name;
    char label[256]; /* "stage.array" of the input, for errors */
} plane_cache;

static int cache_load(plane_cache *pc, int j)
{
    if (pc->plane[j]) return SS_OK;
    size_t n = (size_t)(pc->Y * pc->X);
    float *p = malloc(n * sizeof *p);
    if (!p) return ss_fail(SS_ERR_NOMEM, "%s: out of memory for a plane", pc->who);
    int64_t st[3] = {pc->kz[j], 0, 0}, ct[3] = {1, pc->Y, pc->X};
    int rc = ctx_read_f32(pc->c, pc->in, pc->label, 3, st, ct, p);
    if (rc != SS_OK) {
        free(p);
        return rc;
    }
    pc->plane[j] = p;
    if (++pc->held > pc->max_held) pc->max_held = pc->held;
    return SS_OK;
}

static int run_interp(stage_ctx *c, int cubic)
{
    const char *who = cubic ? "interp_cubic" : "interp_linear";
    plane_cache pc = {.k = ctx_kernels(c), .c = c, .who = who};
    store_array *out = NULL, *pred = NULL, *mask = NULL;
    int64_t *kz = NULL;
    prediction *pr = NULL;
    double *wk = NULL;
    int *lo_from = NULL;
    float *res = NULL;
    uint8_t *mk = NULL;
    int P = 0;
    ctx_input(c, "stack", &pc.in_stage, &pc.in_name);
    ctx_input_label(c, "stack", pc.label, sizeof pc.label);
    int rc = ctx_open_input(c, "stack", &pc.in);
    if (rc != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(pc.in, &info)) != SS_OK) goto done;
    if (info.rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s.%s has rank %d; expected a stack Z x Y x X", who, pc.in_stage, pc.in_name,
                     info.rank);
        goto done;
    }
    int64_t Z = info.shape[0], Y = info.shape[1], X = info.shape[2];
    if (Y * X == 0) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s.%s has empty planes (%lld x %lld)", who, pc.in_stage, pc.in_name,
                     (long long)Y, (long long)X);
        goto done;
    }
    char where[300];
    snprintf(where, sizeof where, "%s.%s", pc.in_stage, pc.in_name);
    if ((rc = kept_planes(c, who, where, Z, &kz, &pc.K)) != SS_OK) goto done;
    int K = pc.K;
    pc.kz = kz;
    pc.Y = Y, pc.X = X;
    P = (int)(Z - K);
    mk = calloc((size_t)Z, 1);
    pr = calloc((size_t)P, sizeof *pr);
    wk = malloc(5 * (size_t)K * sizeof *wk);
    lo_from = malloc((size_t)(P + 1) * sizeof *lo_from);
    pc.plane = calloc((size_t)K, sizeof *pc.plane);
    res = malloc((size_t)(Y * X) * sizeof *res);
    if (!mk || !pr || !wk || !lo_from || !pc.plane || !res) {
        rc = ss_fail(SS_ERR_NOMEM, "%s: out of memory for the weights of %d kept and %d predicted planes", who, K, P);
        goto done;
    }
    for (int64_t z = 0, j = 0, p = 0; z < Z; z++) {
        if (j < K && kz[j] == z) {
            j++;
            continue;
        }
        mk[z] = 1;
        pr[p].z = z;
        if (cubic) spline_weights(kz, K, z, wk, wk + K, wk + 2 * K);
        else linear_weights(kz, K, z, wk);
        if (weight_window(&pr[p], wk, K) != 0) {
            rc = ss_fail(SS_ERR_NOMEM, "%s: out of memory for the weights of %d kept and %d predicted planes", who, K, P);
            goto done;
        }
        p++;
    }
    /* lo_from[p]: the lowest kept plane any prediction from p on needs. */
    lo_from[P] = K;
    for (int p = P - 1; p >= 0; p--) lo_from[p] = pr[p].lo < lo_from[p + 1] ? pr[p].lo : lo_from[p + 1];

    array_meta m = array_meta_of(&info);
    strcpy(m.axes, "zyx");
    array_meta mm = m;
    strcpy(mm.axes, "z");
    int64_t pshape[3] = {P, Y, X}, mshape[1] = {Z};
    if ((rc = store_writer_array(ctx_writer(c), "restored", DT_F32, 3, info.shape, NULL, &m, &out)) == SS_OK &&
        (rc = store_writer_array(ctx_writer(c), "predicted", DT_F32, 3, pshape, NULL, &m, &pred)) == SS_OK &&
        (rc = store_writer_array(ctx_writer(c), "mask", DT_U8, 1, mshape, NULL, &mm, &mask)) == SS_OK) {
        int64_t s0[1] = {0};
        rc = store_array_write(mask, s0, mshape, DT_U8, mk);
    }
    const float **src = rc == SS_OK ? malloc((size_t)K * sizeof *src) : NULL;
    if (rc == SS_OK && !src) rc = ss_fail(SS_ERR_NOMEM, "%s: out of memory", who);
    ctx_progress_begin(c, "planes", Z);
    int evicted = 0;
    for (int64_t z = 0, j = 0, p = 0; z < Z && rc == SS_OK; z++) {
        if (ctx_cancelled(c)) {
            rc = ss_fail(SS_ERR_INTERRUPTED, "%s: interrupted at plane %lld", who, (long long)z);
            break;
        }
        int64_t so[3] = {z, 0, 0}, co[3] = {1, Y, X};
        if (j < K && kz[j] == z) {
            if ((rc = cache_load(&pc, (int)j)) == SS_OK) rc = store_array_write(out, so, co, DT_F32, pc.plane[j]);
            j++;
        } else {
            const prediction *q = &pr[p];
            for (int i = q->lo; i <= q->hi && rc == SS_OK; i++) {
                rc = cache_load(&pc, i);
                src[i - q->lo] = pc.plane[i];
            }
            if (rc != SS_OK) break;
            pc.k->weighted_sum_f32(src, q->w, q->hi - q->lo + 1, (size_t)(Y * X), res);
            int64_t sp[3] = {p, 0, 0};
            if ((rc = store_array_write(out, so, co, DT_F32, res)) == SS_OK)
                rc = store_array_write(pred, sp, co, DT_F32, res);
            p++;
        }
        /* Planes below both the next kept plane and every later prediction's
         * window are done with. */
        int keep_from = lo_from[p] < (int)j ? lo_from[p] : (int)j;
        for (; evicted < keep_from; evicted++)
            if (pc.plane[evicted]) {
                free(pc.plane[evicted]);
                pc.plane[evicted] = NULL;
                pc.held--;
            }
        ctx_progress(c, z + 1);
    }
    free(src);
    if (rc == SS_OK) {
        json_t *kept = json_array(), *held = json_array();
        for (int i = 0; i < K; i++) json_array_append_new(kept, json_integer((json_int_t)kz[i]));
        for (int p = 0; p < P; p++) json_array_append_new(held, json_integer((json_int_t)pr[p].z));
        ctx_attr(c, "kept_planes", kept);
        ctx_attr(c, "predicted_planes", held);
        ctx_attr(c, "max_planes_held", json_integer(pc.max_held));
    }
done:
    if (pc.plane)
        for (int i = 0; i < pc.K; i++) free(pc.plane[i]);
    free(pc.plane);
    free(kz);
    if (pr)
        for (int p = 0; p < P; p++) free(pr[p].w);
    free(pr);
    free(wk);
    free(lo_from);
    free(res);
    free(mk);
    store_array_close(mask);
    store_array_close(pred);
    store_array_close(out);
    store_array_close(pc.in);
    return rc;
}

static int run_linear(stage_ctx *c) { return run_interp(c, 0); }
static int run_cubic(stage_ctx *c) { return run_interp(c, 1); }

static const char *check(const json_t *p)
{
    const json_t *every = json_object_get(p, "keep_every"), *list = json_object_get(p, "keep_planes");
    int has_every = every && !json_is_null(every), has_list = list && !json_is_null(list);
    if (has_every == has_list) return "give either keep_every (n = 2..8) or keep_planes (a list of plane indices)";
    json_int_t off = json_integer_value(json_object_get(p, "offset"));
    if (has_list) {
        if (off != 0) return "offset applies to keep_every; with keep_planes list the planes themselves";
        for (size_t i = 1; i < json_array_size(list); i++)
            if (json_integer_value(json_array_get(list, i)) <= json_integer_value(json_array_get(list, i - 1)))
                return "keep_planes must be sorted and without repeats (0-based plane indices)";
    } else if (off >= json_integer_value(every)) {
        return "offset must be below keep_every";
    }
    return NULL;
}

static const param_spec params[] = {
    {.name = "keep_every", .type = P_INT, .def = "null", .flags = PARAM_RANGE | PARAM_NULLABLE, .lo = 2, .hi = 8,
     .doc = "keep planes offset, offset + n, offset + 2n, ...; predict the rest"},
    {.name = "offset", .type = P_INT, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 7,
     .doc = "first kept plane with keep_every (below keep_every)"},
    {.name = "keep_planes", .type = P_INT_LIST, .def = "null", .flags = PARAM_RANGE | PARAM_NULLABLE, .lo = 0,
     .hi = 2147483647, .list_min = 2,
     .doc = "instead of keep_every: the kept planes, 0-based, sorted, at least 2"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "stack", .kinds = KIND_IMAGE, .doc = "stack Z x Y x X"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "restored", .kinds = KIND_IMAGE, .doc = "the full stack: kept planes copied, the others predicted (float32)"},
    {.name = "predicted", .kinds = KIND_IMAGE, .doc = "the predicted planes alone, in z order (P x Y x X)"},
    {.name = "mask", .kinds = KIND_MASK, .doc = "per plane: 1 where predicted (held out), 0 where kept"},
    {0},
};

const stage_type stage_interp_linear = {
    .name = "interp_linear",
    .version = 1,
    .summary = "interplane prediction baseline: linear interpolation between the nearest kept planes",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run_linear,
    .check = check,
};

const stage_type stage_interp_cubic = {
    .name = "interp_cubic",
    .version = 1,
    .summary = "interplane prediction baseline: natural cubic spline through the kept planes (scipy CubicSpline)",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run_cubic,
    .check = check,
};
