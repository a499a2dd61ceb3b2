#include "fitting.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *siren_fit_check(const json_t *p)
{
    json_t *zr = json_object_get(p, "z_range");
    if (json_array_size(zr) == 2 &&
        !(json_number_value(json_array_get(zr, 0)) < json_number_value(json_array_get(zr, 1))))
        return "z_range: the first value must be below the second";
    return NULL;
}

void siren_model_free(siren_model *m)
{
    free(m->z);
    m->z = NULL;
}

int siren_model_from_params(stage_ctx *c, const int64_t shape[3], const double voxel[3], siren_model *m)
{
    memset(m, 0, sizeof *m);
    m->arch = (siren_arch){
        .in_dim = 3,
        .width = (int)ctx_int(c, "width"),
        .hidden = (int)ctx_int(c, "hidden_layers"),
        .out_dim = 1,
        .omega_first = (float)ctx_num(c, "omega_first"),
        .omega_hidden = (float)ctx_num(c, "omega_hidden"),
    };
    memcpy(m->shape, shape, sizeof m->shape);
    for (int i = 0; i < 3; i++) m->voxel[i] = voxel[i] > 0 ? voxel[i] : 1;
    if (shape[1] < 2 || shape[2] < 2)
        return ss_fail(SS_ERR_INPUT, "%s: planes of %lld x %lld are too small to fit", ctx_stage_name(c),
                       (long long)shape[1], (long long)shape[2]);
    /* x and y span [-1, 1] (the paper's mapping). */
    m->x0 = m->y0 = -1;
    m->dx = 2.0f / (float)(shape[2] - 1);
    m->dy = 2.0f / (float)(shape[1] - 1);
    m->z = malloc(sizeof *m->z * (size_t)shape[0]);
    if (!m->z)
        return ss_nomem(sizeof *m->z * (size_t)shape[0], "the z coordinates of %lld planes",
                        (long long)shape[0]);
    snprintf(m->z_mapping, sizeof m->z_mapping, "%s", ctx_str(c, "z_mapping"));
    if (!strcmp(m->z_mapping, "range")) {
        double lo = ctx_list_num(c, "z_range", 0), hi = ctx_list_num(c, "z_range", 1);
        for (int64_t i = 0; i < shape[0]; i++)
            m->z[i] = shape[0] > 1 ? (float)(lo + (hi - lo) * (double)i / (double)(shape[0] - 1)) : (float)(0.5 * (lo + hi));
    } else {
        /* Physical: one z step is as long in coordinates as the voxel's
         * z size is in x pixels; centred on 0. */
        double step = (double)m->dx * m->voxel[0] / m->voxel[2];
        for (int64_t i = 0; i < shape[0]; i++) m->z[i] = (float)(step * ((double)i - 0.5 * (double)(shape[0] - 1)));
    }
    return SS_OK;
}

float siren_model_z_at(const siren_model *m, double plane)
{
    int64_t Z = m->shape[0];
    if (Z == 1) return m->z[0];
    /* Linear in the plane position; beyond the ends, the end slope. */
    int64_t i = (int64_t)floor(plane);
    if (i < 0) i = 0;
    if (i > Z - 2) i = Z - 2;
    double f = plane - (double)i;
    return (float)((1 - f) * m->z[i] + f * m->z[i + 1]);
}

void siren_model_grid(const siren_model *m, int64_t nz, const float *z, double xy_scale, siren_grid *g)
{
    g->nz = nz;
    g->z = z;
    g->ny = (int64_t)llround((double)(m->shape[1] - 1) * xy_scale) + 1;
    g->nx = (int64_t)llround((double)(m->shape[2] - 1) * xy_scale) + 1;
    g->y0 = m->y0;
    g->x0 = m->x0;
    g->dy = (float)(m->dy / xy_scale);
    g->dx = (float)(m->dx / xy_scale);
}

int64_t *siren_pick_voxels(uint64_t seed, int64_t N, int64_t n)
{
    int64_t *idx = malloc(sizeof *idx * (size_t)(n > 0 ? n : 1));
    if (!idx) return NULL;
    ss_rng r;
    rng_split(&r, seed, 0x70c4ull);
    int64_t got = 0;
    for (int64_t i = 0; i < N && got < n; i++)
        if (n == N || rng_uniform(&r) * (double)(N - i) < (double)(n - got)) idx[got++] = i;
    return idx;
}

void siren_data_free(siren_data *d)
{
    free(d->index);
    free(d->target);
    memset(d, 0, sizeof *d);
}

/* ---- training ------------------------------------------------------------------ */

static siren_loss loss_of(const char *s)
{
    return !strcmp(s, "l1") ? SIREN_LOSS_L1 : !strcmp(s, "huber") ? SIREN_LOSS_HUBER
         : !strcmp(s, "cauchy") ? SIREN_LOSS_CAUCHY : SIREN_LOSS_MSE;
}

/* The order mini-batches take voxels in during epoch e: a permutation drawn
 * from the seed and the epoch alone, so a resumed fit redraws it exactly. */
static void epoch_order(uint64_t seed, int64_t e, int64_t n, int64_t *order)
{
    ss_rng r;
    rng_split(&r, seed, 0x5eed0000ull + (uint64_t)e);
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next(&r) % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

int siren_fit_train(stage_ctx *c, const siren_model *m, const siren_data *d, float *params)
{
    const kernels *k = ctx_kernels(c);
    const siren_arch *a = &m->arch;
    size_t np = siren_n_params(a);
    int64_t steps = ctx_int(c, "steps"), batch = ctx_int(c, "batch");
    if (batch <= 0 || batch > d->n) batch = d->n;
    float lr = (float)ctx_num(c, "lr"), b1 = (float)ctx_num(c, "beta1"), b2 = (float)ctx_num(c, "beta2"),
          eps = (float)ctx_num(c, "adam_eps");
    siren_grid g;
    siren_model_grid(m, m->shape[0], m->z, 1.0, &g);
    float *grad = malloc(np * sizeof *grad), *am = calloc(np, sizeof *am), *av = calloc(np, sizeof *av);
    double *curve_loss = calloc((size_t)steps, sizeof *curve_loss), *curve_s = calloc((size_t)steps, sizeof *curve_s);
    int64_t *order = batch < d->n ? malloc(sizeof *order * (size_t)d->n) : NULL;
    int64_t *bidx = batch < d->n ? malloc(sizeof *bidx * (size_t)batch) : NULL;
    float *btgt = batch < d->n ? malloc(sizeof *btgt * (size_t)batch * (size_t)d->R) : NULL;
    siren_work *w = k->siren_work_new(a, ctx_threads(c));
    int rc = SS_OK;
    if (!grad || !am || !av || !curve_loss || !curve_s || !w || (batch < d->n && (!order || !bidx || !btgt)))
        rc = ss_nomem(0, "training (optimiser state, batches of %lld voxels, a workspace for %d threads)",
                      (long long)batch, ctx_threads(c));

    int64_t step = 0;
    double elapsed0 = 0;
    ckpt_entry e[6] = {
        {"params", params, np * sizeof *params},
        {"adam_m", am, np * sizeof *am},
        {"adam_v", av, np * sizeof *av},
        {"curve_loss", curve_loss, (size_t)steps * sizeof *curve_loss},
        {"curve_seconds", curve_s, (size_t)steps * sizeof *curve_s},
        {"elapsed", &elapsed0, sizeof elapsed0},
    };
    if (rc == SS_OK) {
        siren_init(a, params, ctx_seed(c));
        int reinit;
        step = train_resume(c, e, 6, steps, &reinit);
        if (reinit) {
            siren_init(a, params, ctx_seed(c));
            memset(am, 0, np * sizeof *am);
            memset(av, 0, np * sizeof *av);
            elapsed0 = 0;
        }
    }
    siren_batch b = {.grid = &g, .index = d->index, .n = d->n, .target = d->target, .R = d->R,
                     .loss = loss_of(ctx_str(c, "loss")), .scale = (float)ctx_num(c, "loss_scale")};
    int64_t epoch_of_order = -1;
    int64_t per_epoch = (d->n + batch - 1) / batch;
    double t0 = ss_now() - elapsed0;
    ctx_progress_begin(c, "steps", steps);
    for (; rc == SS_OK && step < steps; step++) {
        if (batch < d->n) {
            int64_t e_no = step / per_epoch, pos = (step % per_epoch) * batch;
            if (e_no != epoch_of_order) epoch_order(ctx_seed(c), e_no, d->n, order), epoch_of_order = e_no;
            int64_t nb = d->n - pos < batch ? d->n - pos : batch;
            for (int64_t i = 0; i < nb; i++) {
                bidx[i] = d->index[order[pos + i]];
                memcpy(btgt + i * d->R, d->target + order[pos + i] * d->R, sizeof *btgt * (size_t)d->R);
            }
            b.index = bidx;
            b.target = btgt;
            b.n = nb;
        }
        double loss = k->siren_loss_grad(a, params, &b, grad, w);
        if (!isfinite(loss)) {
            rc = ss_fail(SS_ERR_FAILED,
                         "the loss became %s at step %lld (learning rate too high, or data not normalised?); "
                         "the last good checkpoint is kept",
                         isnan(loss) ? "NaN" : "infinite", (long long)step + 1);
            break;
        }
        k->adam_step(params, grad, am, av, np, step + 1, lr, b1, b2, eps);
        curve_loss[step] = loss;
        curve_s[step] = ss_now() - t0;
        ctx_progress(c, step + 1);
        rc = train_checkpoint(c, step + 1, e, 6, &elapsed0, t0, NULL);
    }
    if (rc == SS_OK) {
        rc = train_write_curve(c, steps, curve_loss, curve_s);
        if (rc == SS_OK) {
            ctx_attr(c, "train_voxels", json_integer(d->n));
            ctx_attr(c, "kernel", json_string(k->siren_work_kernel(w)));
        }
    }
    k->siren_work_free(w);
    free(grad), free(am), free(av), free(curve_loss), free(curve_s), free(order), free(bidx), free(btgt);
    return rc;
}

/* ---- evaluation and weights ------------------------------------------------------ */

int siren_fit_eval_to(stage_ctx *c, const siren_model *m, const float *params, const siren_grid *g,
                      store_array *out, const char *what)
{
    const kernels *k = ctx_kernels(c);
    size_t plane = (size_t)(g->ny * g->nx);
    float *buf = malloc(plane * sizeof *buf);
    siren_work *w = k->siren_work_new(&m->arch, ctx_threads(c));
    int rc = buf && w ? SS_OK : ss_fail(SS_ERR_NOMEM, "%s: out of memory for a plane of %zu voxels", ctx_stage_name(c), plane);
    ctx_progress_begin(c, what, g->nz);
    for (int64_t z = 0; z < g->nz && rc == SS_OK; z++) {
        /* One plane at a time: the grid restricted to plane z. */
        siren_grid one = *g;
        one.nz = 1;
        one.z = g->z + z;
        k->siren_eval(&m->arch, params, &one, NULL, 0, (int64_t)plane, buf, w);
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, g->ny, g->nx};
        rc = store_array_write(out, st, ct, DT_F32, buf);
        ctx_progress(c, z + 1);
    }
    k->siren_work_free(w);
    free(buf);
    return rc;
}

/* The values the fit saw came from the input port's stage; when that stage
 * normalised them, its percentiles are copied beside the weights so that
 * rendered intensities can be mapped back to the raw scale. */
static void note_normalisation(stage_ctx *c, const char *port)
{
    const char *stage, *array;
    json_t *a;
    if (ctx_input(c, port, &stage, &array) != 1 || store_stage_attrs(ctx_input_store(c, port), stage, &a) != SS_OK) return;
    json_t *lo = json_object_get(a, "p_low_value"), *hi = json_object_get(a, "p_high_value");
    if (lo && hi)
        ctx_attr(c, "normalisation",
                 json_pack("{s:s,s:O,s:O,s:O}", "stage", stage, "p_low_value", lo, "p_high_value", hi, "eps",
                           json_object_get(json_object_get(a, "params"), "eps") ?: json_null()));
    json_decref(a);
}

int siren_fit_save(stage_ctx *c, const siren_model *m, const float *params, const char *input_port)
{
    note_normalisation(c, input_port);
    const siren_arch *a = &m->arch;
    int rc = train_write_weights(c, "weights", params, (int64_t)siren_n_params(a));
    if (rc != SS_OK) return rc;
    json_t *z = json_array();
    for (int64_t i = 0; i < m->shape[0]; i++) json_array_append_new(z, json_real(m->z[i]));
    ctx_attr(c, "siren",
             json_pack("{s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:s}", "arch_version", SIREN_ARCH_VERSION, "in_dim", a->in_dim,
                       "width", a->width, "hidden", a->hidden, "out_dim", a->out_dim, "omega_first",
                       (double)a->omega_first, "omega_hidden", (double)a->omega_hidden, "layout",
                       "per layer: W (fan_out x fan_in, row-major) then b; layers: first sine, hidden sines, linear"));
    ctx_attr(c, "coordinates",
             json_pack("{s:[III],s:[fff],s:o,s:f,s:f,s:f,s:f,s:s,s:s}", "shape", (json_int_t)m->shape[0],
                       (json_int_t)m->shape[1], (json_int_t)m->shape[2], "voxel_size", m->voxel[0], m->voxel[1],
                       m->voxel[2], "z", z, "y0", (double)m->y0, "dy", (double)m->dy, "x0", (double)m->x0, "dx",
                       (double)m->dx, "z_mapping", m->z_mapping, "order", "coordinates are (z, y, x)"));
    return SS_OK;
}

int siren_fit_load(store *st, const char *stage, const char *array, siren_model *m, float **params)
{
    memset(m, 0, sizeof *m);
    *params = NULL;
    json_t *attrs;
    int rc = store_stage_attrs(st, stage, &attrs);
    if (rc != SS_OK) return rc;
    json_t *s = json_object_get(attrs, "siren"), *co = json_object_get(attrs, "coordinates");
    if (!json_is_object(s) || !json_is_object(co)) {
        json_decref(attrs);
        return ss_fail(SS_ERR_INPUT, "%s: stage '%s' holds no SIREN weights description", store_path(st), stage);
    }
    json_int_t ver = json_integer_value(json_object_get(s, "arch_version"));
    if (ver != SIREN_ARCH_VERSION) {
        json_decref(attrs);
        return ss_fail(SS_ERR_INPUT, "%s: weights of '%s' have architecture version %lld; this program reads version %d",
                       store_path(st), stage, (long long)ver, SIREN_ARCH_VERSION);
    }
    m->arch = (siren_arch){
        .in_dim = (int)json_integer_value(json_object_get(s, "in_dim")),
        .width = (int)json_integer_value(json_object_get(s, "width")),
        .hidden = (int)json_integer_value(json_object_get(s, "hidden")),
        .out_dim = (int)json_integer_value(json_object_get(s, "out_dim")),
        .omega_first = (float)json_number_value(json_object_get(s, "omega_first")),
        .omega_hidden = (float)json_number_value(json_object_get(s, "omega_hidden")),
    };
    const char *why = siren_arch_check(&m->arch);
    json_t *shape = json_object_get(co, "shape"), *z = json_object_get(co, "z"), *vox = json_object_get(co, "voxel_size");
    if (!why && (json_array_size(shape) != 3 || json_array_size(vox) != 3)) why = "coordinates are incomplete";
    for (int i = 0; !why && i < 3; i++) {
        m->shape[i] = json_integer_value(json_array_get(shape, (size_t)i));
        m->voxel[i] = json_number_value(json_array_get(vox, (size_t)i));
    }
    if (!why && (m->shape[0] < 1 || (int64_t)json_array_size(z) != m->shape[0])) why = "the z coordinates do not match the shape";
    if (why) {
        json_decref(attrs);
        return ss_fail(SS_ERR_INPUT, "%s: weights of '%s': %s", store_path(st), stage, why);
    }
    m->z = malloc(sizeof *m->z * (size_t)m->shape[0]);
    for (int64_t i = 0; m->z && i < m->shape[0]; i++) m->z[i] = (float)json_number_value(json_array_get(z, (size_t)i));
    m->y0 = (float)json_number_value(json_object_get(co, "y0"));
    m->dy = (float)json_number_value(json_object_get(co, "dy"));
    m->x0 = (float)json_number_value(json_object_get(co, "x0"));
    m->dx = (float)json_number_value(json_object_get(co, "dx"));
    snprintf(m->z_mapping, sizeof m->z_mapping, "%s", json_string_value(json_object_get(co, "z_mapping")) ?: "?");
    json_decref(attrs);
    store_array *wa;
    if ((rc = store_array_open(st, stage, array, &wa)) != SS_OK) {
        siren_model_free(m);
        return rc;
    }
    array_info info;
    size_t np = siren_n_params(&m->arch);
    rc = store_array_info(wa, &info);
    if (rc == SS_OK && (info.rank != 1 || info.shape[0] != (int64_t)np))
        rc = ss_fail(SS_ERR_INPUT, "%s: '%s/%s' holds %lld values; the architecture needs %zu", store_path(st), stage,
                     array, (long long)info.shape[0], np);
    float *p = rc == SS_OK ? malloc(np * sizeof *p) : NULL;
    if (rc == SS_OK && !p) rc = ss_nomem(np * sizeof *p, "the %zu weights of %s/%s", np, stage, array);
    int64_t s0 = 0, n = (int64_t)np;
    if (rc == SS_OK) rc = store_array_read(wa, &s0, &n, DT_F32, p);
    store_array_close(wa);
    if (rc != SS_OK) {
        free(p);
        siren_model_free(m);
        return rc;
    }
    *params = p;
    return SS_OK;
}
