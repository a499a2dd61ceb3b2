/* metrics: how close each method's stack is to a reference, per plane and
 * over the volume: MSE, PSNR, SSIM (2D per plane, 3D over the volume), the
 * Fourier-spectrum MSE of the SIREN paper, and the fraction of ground-truth
 * spine heads a method still shows.
 *
 * Definitions (README.md, "metrics"), all on the arrays as given (no
 * normalisation here: put a normalize stage in front where wanted):
 *   mse          mean((m - r)^2) over the plane
 *   psnr         10 log10(L^2 / mse), L = data_range, or max(r) - min(r) over
 *                the whole reference volume when data_range is null; +inf when
 *                mse is 0 (stored as IEEE inf, exported as "inf")
 *   ssim         skimage.metrics.structural_similarity with the window of
 *                ssim_window, K1 0.01, K2 0.03, data range L, edges cropped
 *   spectrum_mse mean((log(1 + |F(m)|) - log(1 + |F(r)|))^2), F the
 *                unnormalised 2D DFT of the plane (numpy.fft.fft2); the
 *                paper's fftshift reorders the grid only
 *   ssim3d       the same SSIM with a win^3 window, averaged over the cropped
 *                volume's evaluated planes
 *   psnr_volume  PSNR of the mean MSE over the evaluated planes
 *   spine_recovery (with `spines`) the fraction of heads whose head-minus-
 *                annulus contrast keeps spine_contrast of the reference's
 * With `mask`, only planes whose mask value is non-zero are evaluated (the
 * held-out planes of an interplane run); 3D SSIM windows still span their
 * neighbours.
 *
 * Memory: the stage streams plane by plane, one method at a time; 3D SSIM
 * keeps a sliding window of win reference and method planes, and the SSIM
 * kernel about 5 double planes of work. */
#include "stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t row;          /* in the spines table, for messages */
    int64_t plane;        /* nearest plane, floor(z + 0.5) */
    double y, x, r_um;
    double ref_contrast;  /* head mean - annulus mean in the reference; NaN where a region is empty */
} spine;

static const char *const plane_metric[4] = {"mse", "psnr", "ssim", "spectrum_mse"};

/* The two tables: per_plane (method, z, mse, psnr, ssim, spectrum_mse) and
 * summary (method, metric, mean, std, n). */
static table_builder *plane_table_new(void)
{
    const char *names[6] = {"method", "z", plane_metric[0], plane_metric[1], plane_metric[2], plane_metric[3]};
    const col_type types[6] = {COL_STR, COL_I64, COL_F64, COL_F64, COL_F64, COL_F64};
    return tb_new(6, names, types);
}

static table_builder *summary_table_new(void)
{
    static const char *const names[5] = {"method", "metric", "mean", "std", "n"};
    static const col_type types[5] = {COL_STR, COL_STR, COL_F64, COL_F64, COL_I64};
    return tb_new(5, names, types);
}

static int plane_rows_add(table_builder *t, const char *method, int64_t z, const double v[4])
{
    int rc = tb_row(t);
    if (rc != SS_OK) return rc;
    tb_str(t, 0, method);
    tb_i64(t, 1, z);
    for (int i = 0; i < 4; i++) tb_f64(t, 2 + i, v[i]);
    return SS_OK;
}

/* NaN from inf - inf has the sign bit set, which printf shows as "-nan". */
static double plain_nan(double v)
{
    return isnan(v) ? NAN : v;
}

static int summary_add(table_builder *t, const char *method, const char *metric, double mean, double std, int64_t n)
{
    int rc = tb_row(t);
    if (rc != SS_OK) return rc;
    tb_str(t, 0, method);
    tb_str(t, 1, metric);
    tb_f64(t, 2, plain_nan(mean));
    tb_f64(t, 3, plain_nan(std));
    tb_i64(t, 4, n);
    return SS_OK;
}

/* Population mean and standard deviation (numpy's defaults), two passes. */
static void mean_std(const double *x, int64_t n, double *mean, double *std)
{
    if (n == 0) {
        *mean = *std = NAN;
        return;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    double m = s / (double)n, q = 0;
    for (int64_t i = 0; i < n; i++) q += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = sqrt(q / (double)n);
}

/* Mean over the head disk (distance <= r) minus mean over the annulus
 * (r < distance <= 2r) around (y, x), distances in micrometer between pixel
 * centres; NaN when either region holds no pixel of the plane. */
static double head_contrast(const float *p, int64_t ny, int64_t nx, double vy, double vx, const spine *s)
{
    double r2 = s->r_um * s->r_um, reach_y = 2 * s->r_um / vy, reach_x = 2 * s->r_um / vx;
    double fy0 = fmax(0, floor(s->y - reach_y)), fy1 = fmin((double)ny - 1, ceil(s->y + reach_y));
    double fx0 = fmax(0, floor(s->x - reach_x)), fx1 = fmin((double)nx - 1, ceil(s->x + reach_x));
    if (!(fy0 <= fy1 && fx0 <= fx1)) return NAN; /* wholly outside the plane */
    double head = 0, ring = 0;
    int64_t nh = 0, nr = 0;
    for (int64_t y = (int64_t)fy0; y <= (int64_t)fy1; y++) {
        double dy = ((double)y - s->y) * vy;
        for (int64_t x = (int64_t)fx0; x <= (int64_t)fx1; x++) {
            double dx = ((double)x - s->x) * vx, d2 = dy * dy + dx * dx;
            if (d2 <= r2) head += p[y * nx + x], nh++;
            else if (d2 <= 4 * r2) ring += p[y * nx + x], nr++;
        }
    }
    return nh && nr ? head / (double)nh - ring / (double)nr : NAN;
}

static int cmp_spine(const void *a, const void *b)
{
    const spine *p = a, *q = b;
    if (p->plane != q->plane) return p->plane < q->plane ? -1 : 1;
    return p->row < q->row ? -1 : p->row > q->row;
}

static int find_col(const table_data *t, const char *name)
{
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->names[i], name)) return i;
    return -1;
}

static double table_num(const table_data *t, int col, int64_t row)
{
    return t->types[col] == COL_F64 ? ((const double *)t->data[col])[row]
                                    : (double)((const int64_t *)t->data[col])[row];
}

/* The spines table -> heads sorted by plane. */
static int load_spines(stage_ctx *c, const char *stg, const char *arr, spine **out, int64_t *n_out)
{
    table_data t;
    int rc = store_table_read(ctx_input_store(c, "spines"), stg, arr, &t);
    if (rc != SS_OK) return ss_fail_prefix(rc, "metrics: spines %s.%s", stg, arr);
    static const char *const need[4] = {"z", "y", "x", "radius_um"};
    int col[4];
    for (int i = 0; i < 4 && rc == SS_OK; i++) {
        col[i] = find_col(&t, need[i]);
        if (col[i] < 0 || t.types[col[i]] == COL_STR)
            rc = ss_fail(SS_ERR_INPUT, "metrics: spines table %s.%s has no numeric column '%s'", stg, arr, need[i]);
    }
    spine *s = NULL;
    if (rc == SS_OK && t.n_rows > 0 && !(s = calloc((size_t)t.n_rows, sizeof *s)))
        rc = ss_fail(SS_ERR_NOMEM, "metrics: out of memory for %lld spines", (long long)t.n_rows);
    for (int64_t i = 0; i < t.n_rows && rc == SS_OK; i++) {
        double z = table_num(&t, col[0], i), y = table_num(&t, col[1], i), x = table_num(&t, col[2], i),
               r = table_num(&t, col[3], i);
        if (!isfinite(z) || !isfinite(y) || !isfinite(x) || !isfinite(r) || !(r > 0) || fabs(z) > 1e15) {
            rc = ss_fail(SS_ERR_INPUT,
                         "metrics: spines table %s.%s row %lld: z, y, x must be finite and radius_um positive "
                         "(got %g, %g, %g, %g)",
                         stg, arr, (long long)i, z, y, x, r);
            break;
        }
        s[i] = (spine){.row = i, .plane = (int64_t)floor(z + 0.5), .y = y, .x = x, .r_um = r, .ref_contrast = NAN};
    }
    if (rc == SS_OK && t.n_rows > 0) qsort(s, (size_t)t.n_rows, sizeof *s, cmp_spine);
    *n_out = rc == SS_OK ? t.n_rows : 0;
    table_free(&t);
    if (rc != SS_OK) {
        free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

typedef struct {
    stage_ctx *c;
    const kernels *k;
    int64_t Z, Y, X;
    size_t plane;
    uint8_t *eval;        /* per plane: evaluate? */
    int64_t n_eval;
    double L;             /* data range */
    ssim_spec s2, s3;
    int win, ssim3d_ok;
    double vy, vx;        /* voxel size in y, x for the spine radii */
    spine *spines;
    int64_t n_spines, n_counted; /* counted: plane evaluated, contrast > 0 in the reference */
    double spine_contrast;
    /* buffers */
    float **ring_r, **ring_m; /* win planes each */
    double *work, *spec_r, *spec_m, *plane_vals[4];
    spectrum_state *spec;
    table_builder *pr, *sr;
} metrics_run;

/* Plane z of an input, checked (ctx_read_f32); what: "reference" or "method". */
static int read_plane(metrics_run *m, store_array *a, const char *what, const char *name, int64_t z, float *buf)
{
    int64_t st[3] = {z, 0, 0}, ct[3] = {1, m->Y, m->X};
    char label[256];
    snprintf(label, sizeof label, "%s %s", what, name);
    return ctx_read_f32(m->c, a, label, 3, st, ct, buf);
}

/* One method against the reference: plane rows, then its summary rows. */
static int eval_method(metrics_run *m, store_array *ref, store_array *met, const char *name, int64_t *progress)
{
    const int64_t Z = m->Z, Y = m->Y, X = m->X;
    const int win = m->win, r = win / 2;
    const double vals_per_plane2 = (double)((Y - win + 1) * (X - win + 1));
    const int spines = m->spines != NULL;
    double sse_total = 0, s3 = 0, q3 = 0;
    int64_t n3 = 0, n_vals = 0, visible = 0, si = 0;
    const float *wa[SSIM_MAX_WIN], *wb[SSIM_MAX_WIN];
    int rc = SS_OK;
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        if (ctx_cancelled(m->c)) return ss_fail(SS_ERR_INTERRUPTED, "metrics: interrupted");
        float *pr = m->ring_r[z % win], *pm = m->ring_m[z % win];
        /* The reference was checked plane by plane when its range was found. */
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        if ((rc = store_array_read(ref, st, ct, DT_F32, pr)) != SS_OK ||
            (rc = read_plane(m, met, "method", name, z, pm)) != SS_OK)
            break;
        while (spines && si < m->n_spines && m->spines[si].plane < z) si++;
        if (m->eval[z]) {
            double sse = m->k->sq_diff_sum_f32(pr, pm, m->plane), v[4], sums[2];
            v[0] = sse / (double)m->plane;
            v[1] = v[0] > 0 ? 10 * log10(m->L * m->L / v[0]) : INFINITY;
            m->k->ssim2d_f32(&m->s2, pr, pm, Y, X, m->work, sums);
            v[2] = sums[0] / vals_per_plane2;
            m->k->spectrum_logmag(m->spec, pr, m->spec_r);
            m->k->spectrum_logmag(m->spec, pm, m->spec_m);
            v[3] = m->k->spectrum_mse(m->spec, m->spec_r, m->spec_m);
            for (int i = 0; i < 4; i++) m->plane_vals[i][n_vals] = v[i];
            n_vals++;
            sse_total += sse;
            if ((rc = plane_rows_add(m->pr, name, z, v)) != SS_OK) break;
            for (; spines && si < m->n_spines && m->spines[si].plane == z; si++) {
                const spine *s = &m->spines[si];
                if (!(s->ref_contrast > 0)) continue;
                double cm = head_contrast(pm, Y, X, m->vy, m->vx, s);
                visible += cm >= m->spine_contrast * s->ref_contrast;
            }
        }
        int64_t zc = z - r;
        if (m->ssim3d_ok && zc >= r && m->eval[zc]) {
            for (int k = 0; k < win; k++) {
                int64_t zk = z - win + 1 + k;
                wa[k] = m->ring_r[zk % win];
                wb[k] = m->ring_m[zk % win];
            }
            double sums[2];
            m->k->ssim3d_plane_f32(&m->s3, wa, wb, Y, X, m->work, sums);
            s3 += sums[0];
            q3 += sums[1];
            n3 += (Y - win + 1) * (X - win + 1);
        }
        ctx_progress(m->c, ++*progress);
    }
    if (rc != SS_OK) return rc;
    for (int i = 0; i < 4 && rc == SS_OK; i++) {
        double mean, std;
        mean_std(m->plane_vals[i], n_vals, &mean, &std);
        rc = summary_add(m->sr, name, plane_metric[i], mean, std, n_vals);
    }
    if (rc != SS_OK) return rc;
    double mse_vol = sse_total / ((double)n_vals * (double)m->plane);
    rc = summary_add(m->sr, name, "psnr_volume", mse_vol > 0 ? 10 * log10(m->L * m->L / mse_vol) : INFINITY, NAN,
                     n_vals * (int64_t)m->plane);
    if (rc != SS_OK) return rc;
    double mean3 = n3 ? s3 / (double)n3 : NAN, std3 = n3 ? sqrt(fmax(0, q3 / (double)n3 - mean3 * mean3)) : NAN;
    if ((rc = summary_add(m->sr, name, "ssim3d", mean3, std3, n3)) != SS_OK) return rc;
    if (spines) {
        double p = m->n_counted ? (double)visible / (double)m->n_counted : NAN;
        rc = summary_add(m->sr, name, "spine_recovery", p, m->n_counted ? sqrt(p * (1 - p)) : NAN, m->n_counted);
    }
    return rc;
}

static int open_checked(stage_ctx *c, const char *port, int i, const array_info *like, const char *like_name,
                        store_array **a, char *name)
{
    const char *stg, *arr;
    int rc = i < 0 ? (ctx_input(c, port, &stg, &arr) == 1 ? SS_OK : SS_ERR_INTERNAL)
                   : ctx_input_at(c, port, i, &stg, &arr);
    if (rc != SS_OK) return ss_fail(SS_ERR_INTERNAL, "metrics: input %s is not connected", port);
    size_t ls = strlen(stg), la = strlen(arr);
    if (ls + la + 2 > TABLE_STR_LEN) /* validation refuses these (port ref_max) */
        return ss_fail(SS_ERR_INTERNAL, "metrics: %s %s.%s: names in the tables are limited to %d characters", port, stg,
                       arr, TABLE_STR_LEN - 1);
    memcpy(name, stg, ls);
    name[ls] = '.';
    memcpy(name + ls + 1, arr, la + 1);
    if ((rc = i < 0 ? ctx_open_input(c, port, a) : ctx_open_input_at(c, port, i, a)) != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(*a, &info)) != SS_OK) return rc;
    if (!like) {
        if (info.rank != 3)
            return ss_fail(SS_ERR_INPUT, "metrics: reference %s has rank %d; expected Z x Y x X", name, info.rank);
        if (info.shape[0] < 1 || info.shape[1] < 1 || info.shape[2] < 1)
            return ss_fail(SS_ERR_INPUT, "metrics: reference %s is empty", name);
        return SS_OK;
    }
    int same = info.rank == like->rank;
    for (int d = 0; same && d < info.rank; d++) same = info.shape[d] == like->shape[d];
    if (!same) {
        char a_s[96] = "", b_s[96] = "";
        for (int d = 0; d < info.rank; d++)
            snprintf(a_s + strlen(a_s), sizeof a_s - strlen(a_s), "%s%lld", d ? " x " : "", (long long)info.shape[d]);
        for (int d = 0; d < like->rank; d++)
            snprintf(b_s + strlen(b_s), sizeof b_s - strlen(b_s), "%s%lld", d ? " x " : "", (long long)like->shape[d]);
        return ss_fail(SS_ERR_INPUT, "metrics: method %s is %s but reference %s is %s", name, a_s, like_name, b_s);
    }
    return SS_OK;
}

/* The mask -> m->eval; without one every plane is evaluated. */
static int load_mask(stage_ctx *c, metrics_run *m)
{
    const char *stg, *arr;
    if (ctx_input(c, "mask", &stg, &arr) != 1) {
        memset(m->eval, 1, (size_t)m->Z);
        m->n_eval = m->Z;
        return SS_OK;
    }
    store_array *a;
    int rc = store_array_open(ctx_input_store(c, "mask"), stg, arr, &a);
    if (rc != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(a, &info)) == SS_OK && info.rank != 1)
        rc = ss_fail(SS_ERR_INPUT, "metrics: mask %s.%s has rank %d; expected one value per plane", stg, arr, info.rank);
    else if (rc == SS_OK && info.shape[0] != m->Z)
        rc = ss_fail(SS_ERR_INPUT, "metrics: mask %s.%s has %lld values but the reference has %lld planes", stg, arr,
                     (long long)info.shape[0], (long long)m->Z);
    if (rc == SS_OK) {
        int64_t st[1] = {0}, ct[1] = {m->Z};
        rc = store_array_read(a, st, ct, DT_U8, m->eval);
    }
    store_array_close(a);
    if (rc != SS_OK) return rc;
    m->n_eval = 0;
    for (int64_t z = 0; z < m->Z; z++) m->n_eval += m->eval[z] = m->eval[z] != 0;
    if (!m->n_eval) return ss_fail(SS_ERR_INPUT, "metrics: mask %s.%s selects no plane", stg, arr);
    return SS_OK;
}

static int run(stage_ctx *c)
{
    metrics_run m = {.c = c, .k = ctx_kernels(c), .pr = plane_table_new(), .sr = summary_table_new()};
    store_array *ref = NULL, *met = NULL;
    char ref_name[TABLE_STR_LEN], met_name[TABLE_STR_LEN];
    float *rbuf = NULL;
    array_info ri;
    int rc = m.pr && m.sr ? open_checked(c, "reference", -1, NULL, NULL, &ref, ref_name)
                          : ss_fail(SS_ERR_NOMEM, "metrics: out of memory");
    if (rc == SS_OK) rc = store_array_info(ref, &ri);
    if (rc != SS_OK) goto done;
    m.Z = ri.shape[0], m.Y = ri.shape[1], m.X = ri.shape[2];
    m.plane = (size_t)(m.Y * m.X);
    int gaussian = !strcmp(ctx_str(c, "ssim_window"), "gaussian");
    ssim_spec_init(&m.s2, gaussian, 2, 1, 0.01, 0.03);
    m.win = m.s2.win;
    if (m.Y < m.win || m.X < m.win) {
        rc = ss_fail(SS_ERR_INPUT, "metrics: reference %s has planes of %lld x %lld, smaller than the %s SSIM window (%d)",
                     ref_name, (long long)m.Y, (long long)m.X, ctx_str(c, "ssim_window"), m.win);
        goto done;
    }
    m.ssim3d_ok = m.Z >= m.win;
    m.spine_contrast = ctx_num(c, "spine_contrast");
    m.vy = m.vx = 1;
    if (!(m.eval = malloc((size_t)m.Z)) || !(rbuf = malloc(m.plane * sizeof *rbuf))) {
        rc = ss_fail(SS_ERR_NOMEM, "metrics: out of memory");
        goto done;
    }
    if ((rc = load_mask(c, &m)) != SS_OK) goto done;
    const char *sp_stage, *sp_arr;
    if (ctx_input(c, "spines", &sp_stage, &sp_arr) == 1) {
        if ((rc = load_spines(c, sp_stage, sp_arr, &m.spines, &m.n_spines)) != SS_OK) goto done;
        if (!m.spines) m.spines = calloc(1, sizeof *m.spines); /* connected but empty: still report the row */
        if (!m.spines) {
            rc = ss_fail(SS_ERR_NOMEM, "metrics: out of memory");
            goto done;
        }
        if (ri.has_meta && ri.meta.voxel[1] > 0 && ri.meta.voxel[2] > 0) {
            m.vy = ri.meta.voxel[1];
            m.vx = ri.meta.voxel[2];
        } else {
            ctx_warn(c, "reference %s has no voxel size: spine radii are taken in pixels", ref_name);
        }
    }
    int n_methods = ctx_input_count(c, "methods");
    ctx_progress_begin(c, "planes", m.Z * (1 + n_methods));
    int64_t progress = 0;

    /* Reference pass: finite values, the data range, the heads' contrast. */
    double lo = INFINITY, hi = -INFINITY;
    int64_t si = 0;
    for (int64_t z = 0; z < m.Z; z++) {
        if (ctx_cancelled(c)) {
            rc = ss_fail(SS_ERR_INTERRUPTED, "metrics: interrupted");
            goto done;
        }
        if ((rc = read_plane(&m, ref, "reference", ref_name, z, rbuf)) != SS_OK) goto done;
        float mn, mx;
        m.k->minmax_f32(rbuf, m.plane, &mn, &mx);
        lo = fmin(lo, mn);
        hi = fmax(hi, mx);
        for (; si < m.n_spines && m.spines[si].plane < z; si++) {}
        for (; si < m.n_spines && m.spines[si].plane == z; si++) {
            spine *s = &m.spines[si];
            s->ref_contrast = head_contrast(rbuf, m.Y, m.X, m.vy, m.vx, s);
            m.n_counted += m.eval[z] && s->ref_contrast > 0;
        }
        ctx_progress(c, ++progress);
    }
    if (ctx_is_null(c, "data_range")) {
        m.L = hi - lo;
        if (!(m.L > 0)) {
            rc = ss_fail(SS_ERR_INPUT, "metrics: reference %s is constant (%g): PSNR and SSIM need a data_range", ref_name,
                         lo);
            goto done;
        }
    } else {
        m.L = ctx_num(c, "data_range");
    }
    ssim_spec_init(&m.s2, gaussian, 2, m.L, 0.01, 0.03);
    ssim_spec_init(&m.s3, gaussian, 3, m.L, 0.01, 0.03);
    if (!m.ssim3d_ok)
        ctx_warn(c, "reference %s has %lld planes, fewer than the SSIM window (%d): ssim3d is NaN", ref_name,
                 (long long)m.Z, m.win);
    if (m.spines && m.n_counted == 0)
        ctx_warn(c, "no spine head of %lld is counted (on an evaluated plane, brighter than its surround in the "
                 "reference): spine_recovery is NaN",
                 (long long)m.n_spines);
    else if (m.spines && m.n_counted < m.n_spines)
        ctx_warn(c, "%lld of %lld spine heads are not counted (plane outside the stack or not evaluated, or no "
                 "head-over-annulus contrast in the reference)",
                 (long long)(m.n_spines - m.n_counted), (long long)m.n_spines);

    m.ring_r = calloc((size_t)m.win, sizeof *m.ring_r);
    m.ring_m = calloc((size_t)m.win, sizeof *m.ring_m);
    m.work = malloc(ssim_work_len(m.win, m.Y, m.X) * sizeof *m.work);
    m.spec = m.k->spectrum_new(m.Y, m.X);
    int ok = m.ring_r && m.ring_m && m.work && m.spec;
    for (int i = 0; ok && i < m.win; i++) {
        /* Without 3D SSIM the ring only needs the current plane. */
        if (i > 0 && !m.ssim3d_ok) m.ring_r[i] = m.ring_r[0], m.ring_m[i] = m.ring_m[0];
        else ok = (m.ring_r[i] = malloc(m.plane * sizeof(float))) && (m.ring_m[i] = malloc(m.plane * sizeof(float)));
    }
    if (ok) {
        m.spec_r = malloc(m.k->spectrum_len(m.spec) * sizeof *m.spec_r);
        m.spec_m = malloc(m.k->spectrum_len(m.spec) * sizeof *m.spec_m);
        ok = m.spec_r && m.spec_m;
        for (int i = 0; ok && i < 4; i++) ok = (m.plane_vals[i] = malloc((size_t)m.n_eval * sizeof(double))) != NULL;
    }
    if (!ok) {
        rc = ss_fail(SS_ERR_NOMEM, "metrics: out of memory for %d planes of %lld x %lld", 2 * m.win, (long long)m.Y,
                     (long long)m.X);
        goto done;
    }

    for (int i = 0; i < n_methods && rc == SS_OK; i++) {
        if ((rc = open_checked(c, "methods", i, &ri, ref_name, &met, met_name)) == SS_OK)
            rc = eval_method(&m, ref, met, met_name, &progress);
        store_array_close(met);
        met = NULL;
    }
    if (rc != SS_OK) goto done;

    rc = tb_write(m.pr, ctx_writer(c), "per_plane");
    if (rc == SS_OK) rc = tb_write(m.sr, ctx_writer(c), "summary");
    if (rc == SS_OK) {
        ctx_attr(c, "data_range_value", json_real(m.L));
        ctx_attr(c, "ssim_window_size", json_integer(m.win));
        ctx_attr(c, "planes_evaluated", json_integer((json_int_t)m.n_eval));
        if (m.spines) {
            ctx_attr(c, "spines_total", json_integer((json_int_t)m.n_spines));
            ctx_attr(c, "spines_counted", json_integer((json_int_t)m.n_counted));
        }
    }
done:
    if (m.ring_r)
        for (int i = 0; i < m.win; i++)
            if (i == 0 || m.ssim3d_ok) free(m.ring_r[i]);
    if (m.ring_m)
        for (int i = 0; i < m.win; i++)
            if (i == 0 || m.ssim3d_ok) free(m.ring_m[i]);
    free(m.ring_r);
    free(m.ring_m);
    free(m.work);
    free(m.spec_r);
    free(m.spec_m);
    for (int i = 0; i < 4; i++) free(m.plane_vals[i]);
    if (m.spec) m.k->spectrum_free(m.spec);
    free(m.spines);
    free(m.eval);
    free(rbuf);
    tb_free(m.pr);
    tb_free(m.sr);
    store_array_close(met);
    store_array_close(ref);
    return rc;
}

static const param_spec params[] = {
    {.name = "data_range", .type = P_NUM, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE | PARAM_LO_OPEN,
     .lo = 0, .hi = 1e150, /* L^2 stays finite */
     .doc = "L of PSNR and SSIM; null: max - min of the reference over the whole volume (skimage's float default differs)"},
    {.name = "ssim_window", .type = P_ENUM, .def = "\"gaussian\"", .choices = "gaussian|uniform",
     .doc = "gaussian: sigma 1.5, 11 taps, population covariance (Wang et al.); uniform: 7 wide, sample covariance"},
    {.name = "spine_contrast", .type = P_NUM, .def = "0.2", .flags = PARAM_RANGE, .lo = 0, .hi = 1,
     .doc = "a head is recovered when its head-minus-annulus contrast is at least this fraction of the reference's"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "reference", .kinds = KIND_IMAGE, .ref_max = TABLE_STR_LEN - 1,
     .doc = "ground truth or best estimate Z x Y x X"},
    {.name = "methods", .kinds = KIND_IMAGE, .multiple = 1, .ref_max = TABLE_STR_LEN - 1,
     .doc = "stacks to score, each the reference's shape"},
    {.name = "mask", .kinds = KIND_MASK, .optional = 1, .doc = "planes to evaluate (1 per plane), e.g. held-out planes"},
    {.name = "spines", .kinds = KIND_TABLE, .optional = 1,
     .doc = "ground-truth spine heads: z, y, x (voxels), radius_um, as stage synth writes them"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "per_plane", .kinds = KIND_TABLE, .doc = "method, z, mse, psnr, ssim, spectrum_mse"},
    {.name = "summary", .kinds = KIND_TABLE,
     .doc = "method, metric, mean, std, n for mse, psnr, ssim, spectrum_mse, psnr_volume, ssim3d, spine_recovery"},
    {0},
};

const stage_type stage_metrics = {
    .name = "metrics",
    .version = 1,
    .summary = "MSE, PSNR, SSIM (2D, 3D), Fourier-spectrum MSE and spine recovery of methods against a reference",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
