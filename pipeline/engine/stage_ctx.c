#include "stage_ctx.h"
#include "error.h"
#include "plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *param(const stage_ctx *c, const char *name)
{
    json_t *v = json_object_get(c->params, name);
    if (!v) {
        /* A stage asking for a parameter it does not declare is a bug. */
        fprintf(stderr, "internal error: stage type %s has no parameter '%s'\n", c->cfg->stages[c->stage].type->name,
                name);
        abort();
    }
    return v;
}

const char *ctx_stage_name(const stage_ctx *c) { return c->cfg->stages[c->stage].name; }
const sample_info *ctx_sample(const stage_ctx *c) { return c->sample; }
int64_t ctx_int(const stage_ctx *c, const char *name) { return json_integer_value(param(c, name)); }
double ctx_num(const stage_ctx *c, const char *name) { return json_number_value(param(c, name)); }
int ctx_bool(const stage_ctx *c, const char *name) { return json_is_true(param(c, name)); }
const char *ctx_str(const stage_ctx *c, const char *name) { return json_string_value(param(c, name)); }
int ctx_is_null(const stage_ctx *c, const char *name) { return json_is_null(param(c, name)); }
size_t ctx_list_len(const stage_ctx *c, const char *name) { return json_array_size(param(c, name)); }
double ctx_list_num(const stage_ctx *c, const char *name, size_t i)
{
    return json_number_value(json_array_get(param(c, name), i));
}
const char *ctx_list_str(const stage_ctx *c, const char *name, size_t i)
{
    return json_string_value(json_array_get(param(c, name), i));
}
const json_t *ctx_params(const stage_ctx *c) { return c->params; }
uint64_t ctx_seed(const stage_ctx *c) { return c->seed; }
int ctx_threads(const stage_ctx *c) { return c->threads; }
const kernels *ctx_kernels(const stage_ctx *c) { return c->k; }
store *ctx_store(stage_ctx *c) { return c->st; }

static int port_stage(const stage_ctx *c, const char *port)
{
    const stage_decl *d = &c->cfg->stages[c->stage];
    for (int i = 0; i < d->n_inputs; i++)
        if (!strcmp(d->inputs[i].port, port)) return d->inputs[i].stage_index;
    return -1;
}

/* Where stage j's outputs are read: the cohort container, the sample's
 * archive (run --from reused it from there) or the sample's container. */
static store *store_of(stage_ctx *c, int j)
{
    if (j >= 0 && c->cfg->stages[j].cohort) {
        store *arch = c->plan && c->plan[j].from_archive ? archive_for(c->archives, COHORT_ID) : NULL;
        if (arch || c->cohort_st) return arch ? arch : c->cohort_st;
    }
    if (j >= 0 && c->plan && c->plan[j].from_archive && c->archive_st) return c->archive_st;
    /* a per-sample stage reads its own container (in_st is set to it by the
     * runner; a context made elsewhere may give only st) */
    return c->in_st ? c->in_st : c->cfg->stages[c->stage].cohort ? NULL : c->st;
}

store *ctx_input_store(stage_ctx *c, const char *port) { return store_of(c, port_stage(c, port)); }

store *ctx_stage_store(stage_ctx *c, const char *stage) { return store_of(c, config_find_stage(c->cfg, stage)); }

int ctx_is_cohort(const stage_ctx *c) { return c->cfg->stages[c->stage].cohort; }

int ctx_n_samples(const stage_ctx *c) { return ctx_is_cohort(c) ? config_cohort_n(c->cfg, c->stage) : 1; }

int ctx_select_sample(stage_ctx *c, int k)
{
    if (k < 0 || k >= ctx_n_samples(c))
        return ss_fail(SS_ERR_INTERNAL, "sample %d of %d selected", k, ctx_n_samples(c));
    if (!ctx_is_cohort(c) || (c->owned_in && k == c->cur)) return SS_OK;
    ctx_release(c);
    const sample_info *s = &c->cfg->samples[config_cohort_sample(c->cfg, c->stage, k)];
    char *path = container_path(c->cfg, s);
    store *st = NULL;
    int rc = path ? store_open(path, c->cfg->store, STORE_OPEN_REPAIRABLE, &st) : ss_fail(SS_ERR_NOMEM, "out of memory");
    free(path);
    if (rc != SS_OK) return ss_fail_prefix(rc == SS_ERR_NOMEM ? rc : SS_ERR_INPUT, "sample %s", s->id);
    c->owned_in = c->in_st = st;
    c->cur = k;
    c->sample = s;
    int si = config_cohort_sample(c->cfg, c->stage, k);
    c->plan = c->splans ? c->splans[si] : NULL;
    c->archive_st = archive_for(c->archives, s->id);
    snprintf(c->label, sizeof c->label, "%s/%s (sample %s)", COHORT_ID, ctx_stage_name(c), s->id);
    return SS_OK;
}

void ctx_release(stage_ctx *c)
{
    if (c->owned_in) store_close(c->owned_in);
    if (c->in_st == c->owned_in) c->in_st = NULL;
    c->owned_in = NULL;
}
store_writer *ctx_writer(stage_ctx *c) { return c->w; }
checkpoint *ctx_checkpoint(stage_ctx *c) { return c->ckpt; }
int ctx_cancelled(const stage_ctx *c)
{
    (void)c;
    return runner_cancel_requested != 0;
}

int ctx_input(const stage_ctx *c, const char *port, const char **stage, const char **array)
{
    const stage_decl *d = &c->cfg->stages[c->stage];
    for (int i = 0; i < d->n_inputs; i++)
        if (!strcmp(d->inputs[i].port, port)) {
            *stage = d->inputs[i].stage;
            *array = d->inputs[i].output;
            return 1;
        }
    for (const port_spec *p = d->type->inputs; p && p->name; p++)
        if (!strcmp(p->name, port)) return 0;
    return ss_fail(SS_ERR_INTERNAL, "stage type %s has no input port '%s'", d->type->name, port);
}

/* Opens stage/array for input port `port`. A port that takes an image but not
 * repeats reads a repeats array (R x Z x Y x X) with one repeat as that
 * repeat's Z x Y x X stack, with its voxel size: validation let it through
 * because the count was 1 or not known before the run. More repeats are
 * refused here, before the stage has written anything. */
static int open_for_port(stage_ctx *c, const char *port, const char *stage, const char *array, store_array **a)
{
    int rc = store_array_open(ctx_stage_store(c, stage), stage, array, a);
    const port_spec *ps = c->cfg->stages[c->stage].type->inputs;
    while (ps && ps->name && strcmp(ps->name, port)) ps++;
    if (rc != SS_OK || !ps || !ps->name || !(ps->kinds & KIND_IMAGE) || (ps->kinds & KIND_REPEATS)) return rc;
    array_info info;
    if ((rc = store_array_info(*a, &info)) != SS_OK) goto fail;
    int repeats = info.rank == 4 && (!info.has_meta || info.meta.axes[0] == 'r' || info.meta.axes[0] == 't');
    if (!repeats) return SS_OK;
    if (info.shape[0] == 1 && (rc = store_array_drop_first_axis(*a)) == SS_OK) return SS_OK;
    if (rc == SS_OK)
        rc = ss_fail(SS_ERR_INPUT, "input %s: %s.%s has %lld repeats where an image is expected; fuse them first "
                     "(fuse_mean, fuse_median, siren_fuse)", port, stage, array, (long long)info.shape[0]);
fail:
    store_array_close(*a);
    *a = NULL;
    return rc;
}

int ctx_open_input(stage_ctx *c, const char *port, store_array **a)
{
    const char *stage, *array;
    int r = ctx_input(c, port, &stage, &array);
    if (r < 0) return r;
    if (r == 0) return ss_fail(SS_ERR_INTERNAL, "input port '%s' is not connected", port);
    return open_for_port(c, port, stage, array, a);
}

void ctx_input_label(const stage_ctx *c, const char *port, char *buf, size_t n)
{
    const char *stage, *array;
    if (ctx_input(c, port, &stage, &array) == 1) snprintf(buf, n, "%s.%s", stage, array);
    else if (n) buf[0] = 0;
}

int ctx_read_f32(stage_ctx *c, store_array *a, const char *label, int rank, const int64_t *start,
                 const int64_t *count, float *buf)
{
    int rc = store_array_read(a, start, count, DT_F32, buf);
    if (rc != SS_OK) return rc;
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)count[i];
    size_t bad = c->k->count_nonfinite_f32(buf, n);
    if (!bad) return SS_OK;
    size_t first = 0;
    while (first < n && isfinite(buf[first])) first++;
    /* the index of the first bad value along each axis */
    int64_t at[STORE_MAX_RANK] = {0};
    for (int i = rank - 1; i >= 0; i--) {
        at[i] = start[i] + (int64_t)(first % (size_t)count[i]);
        first /= (size_t)count[i];
    }
    const char *type = c->cfg->stages[c->stage].type->name;
    char where[96] = "";
    if (rank == 4) snprintf(where, sizeof where, " repeat %lld plane %lld", (long long)at[0], (long long)at[1]);
    else if (rank >= 3) snprintf(where, sizeof where, " plane %lld", (long long)at[rank - 3]);
    return ss_fail(SS_ERR_INPUT, "%s: %s%s holds %zu NaN or infinite value%s", type, label, where, bad,
                   bad == 1 ? "" : "s");
}

void ctx_progress_begin(stage_ctx *c, const char *what, int64_t total)
{
    progress_begin(c->rep, c->label, what, total);
}

void ctx_progress(stage_ctx *c, int64_t done)
{
    ss_crashpoint("stage.progress");
    progress_update(c->rep, done);
}

void ctx_warn(stage_ctx *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report_warn(c->rep, "%s: %s", c->label, msg);
}

int ctx_attr(stage_ctx *c, const char *key, json_t *value)
{
    if (!c->extra_attrs) c->extra_attrs = json_object();
    json_object_set_new(c->extra_attrs, key, value);
    return SS_OK;
}

int ctx_input_count(const stage_ctx *c, const char *port)
{
    const stage_decl *d = &c->cfg->stages[c->stage];
    int n = 0;
    for (int i = 0; i < d->n_inputs; i++) n += !strcmp(d->inputs[i].port, port);
    return n;
}

int ctx_input_at(const stage_ctx *c, const char *port, int k, const char **stage, const char **array)
{
    const stage_decl *d = &c->cfg->stages[c->stage];
    for (int i = 0; i < d->n_inputs; i++)
        if (!strcmp(d->inputs[i].port, port) && k-- == 0) {
            *stage = d->inputs[i].stage;
            *array = d->inputs[i].output;
            return SS_OK;
        }
    return ss_fail(SS_ERR_INTERNAL, "input port '%s' has no reference %d", port, k);
}

int ctx_open_input_at(stage_ctx *c, const char *port, int i, store_array **a)
{
    const char *stage, *array;
    int rc = ctx_input_at(c, port, i, &stage, &array);
    return rc != SS_OK ? rc : open_for_port(c, port, stage, array, a);
}
