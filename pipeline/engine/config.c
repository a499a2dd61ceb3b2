#include "config.h"
#include "error.h"
#include "graph.h"
#include "yamltree.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *describe(const ynode *n)
{
    static _Thread_local char buf[96];
    if (!n) return "nothing";
    if (n->kind != YN_SCALAR) return yn_kind_name(n->kind);
    if (yscalar_is_null(n)) return "null";
    snprintf(buf, sizeof buf, "'%.60s%s'", n->value, strlen(n->value) > 60 ? "..." : "");
    return buf;
}

/* "; expected one of: a b c", after a "did you mean" when one is close. */
static void suggest(sbuf *b, const char *got, const char *const *options)
{
    const char *best = ss_closest(got, options);
    if (best) sbuf_printf(b, " (did you mean '%s'?)", best);
    sbuf_put(b, "; expected one of:");
    for (const char *const *o = options; *o; o++) sbuf_printf(b, " %s", *o);
}

static void check_keys(cfg_errors *e, const ynode *map, const char *path, const char *const *allowed)
{
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->value;
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, k);
        if (ok) continue;
        sbuf b = {0};
        suggest(&b, k, allowed);
        char kp[512];
        snprintf(kp, sizeof kp, "%s%s%s", path, path[0] ? "." : "", k);
        cfg_error(e, map->keys[i]->line, map->keys[i]->col, kp, "unknown key%s", sbuf_str(&b));
        sbuf_free(&b);
    }
}

/* ---- parameters ---------------------------------------------------------- */

void config_param_range_text(const param_spec *p, char *buf, size_t n)
{
    if (!(p->flags & PARAM_RANGE)) {
        buf[0] = 0;
        return;
    }
    snprintf(buf, n, " in %c%g, %g%c", p->flags & PARAM_LO_OPEN ? '(' : '[', p->lo, p->hi,
             p->flags & PARAM_HI_OPEN ? ')' : ']');
}

static int in_range(const param_spec *p, double v)
{
    if (!(p->flags & PARAM_RANGE)) return 1;
    if (p->flags & PARAM_LO_OPEN ? !(v > p->lo) : !(v >= p->lo)) return 0;
    if (p->flags & PARAM_HI_OPEN ? !(v < p->hi) : !(v <= p->hi)) return 0;
    return 1;
}

static const char *type_word(param_type t)
{
    switch (t) {
    case P_INT: return "an integer";
    case P_NUM: return "a number";
    case P_BOOL: return "true or false";
    case P_STR: return "a string";
    case P_ENUM: return "one of the listed words";
    case P_PATH: return "a file path";
    case P_INT_LIST: return "a list of integers";
    case P_NUM_LIST: return "a list of numbers";
    case P_STR_LIST: return "a list of strings";
    }
    return "?";
}

/* One scalar element of a parameter; returns a new JSON value or NULL after
 * reporting. elem_type is the element type for lists. */
static json_t *scalar_value(cfg_errors *e, const param_spec *p, param_type t, const ynode *n, const char *kp)
{
    char rng[96];
    config_param_range_text(p, rng, sizeof rng);
    if (!n || n->kind != YN_SCALAR) {
        cfg_error(e, n ? n->line : 0, n ? n->col : 0, kp, "expected %s%s, got %s", type_word(t), rng, describe(n));
        return NULL;
    }
    if ((t == P_INT || t == P_NUM) && !n->plain) {
        ynode plain = *n;
        double d;
        plain.plain = 1;
        if (yscalar_num(&plain, &d) != 0) {
            cfg_error(e, n->line, n->col, kp, "expected %s%s, got the string '%s' (remove the quotes)", type_word(t),
                      rng, n->value);
            return NULL;
        }
    }
    switch (t) {
    case P_INT: {
        long long v;
        int r = yscalar_int(n, &v);
        double d;
        if (r == -1) {
            cfg_error(e, n->line, n->col, kp, "number %s is too large for an integer", describe(n));
            return NULL;
        }
        if (r == 0) {
            if (yscalar_num(n, &d) == 1 && d != floor(d))
                cfg_error(e, n->line, n->col, kp, "expected an integer%s, got the fraction %s", rng, describe(n));
            else if (yscalar_num(n, &d) == 1)
                cfg_error(e, n->line, n->col, kp, "expected an integer%s written with digits only, got %s", rng,
                          describe(n));
            else
                cfg_error(e, n->line, n->col, kp, "expected an integer%s, got %s", rng, describe(n));
            return NULL;
        }
        if (!in_range(p, (double)v)) {
            cfg_error(e, n->line, n->col, kp, "%lld is out of range: expected an integer%s", v, rng);
            return NULL;
        }
        return json_integer(v);
    }
    case P_NUM: {
        double d;
        int r = yscalar_num(n, &d);
        if (r == -1) {
            cfg_error(e, n->line, n->col, kp, "%s is not a finite number that fits a double", describe(n));
            return NULL;
        }
        if (r == 0) {
            cfg_error(e, n->line, n->col, kp, "expected a number%s, got %s", rng, describe(n));
            return NULL;
        }
        if (!in_range(p, d)) {
            cfg_error(e, n->line, n->col, kp, "%s is out of range: expected a number%s", n->value, rng);
            return NULL;
        }
        return json_real(d);
    }
    case P_BOOL: {
        int b;
        if (!yscalar_bool(n, &b)) {
            cfg_error(e, n->line, n->col, kp, "expected true or false, got %s", describe(n));
            return NULL;
        }
        return json_boolean(b);
    }
    case P_ENUM: {
        /* The choices "a|b|c" as a list, for the match and the suggestion. */
        char words[512];
        const char *opts[64];
        int k = 0, ok = 0;
        snprintf(words, sizeof words, "%s", p->choices ? p->choices : "");
        char *save = NULL;
        for (char *w = strtok_r(words, "|", &save); w && k < 63; w = strtok_r(NULL, "|", &save)) {
            ok |= !strcmp(w, n->value);
            opts[k++] = w;
        }
        opts[k] = NULL;
        if (!ok) {
            const char *best = ss_closest(n->value, opts);
            char hint[96] = "";
            if (best) snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
            cfg_error(e, n->line, n->col, kp, "%s is not allowed: expected one of %s%s", describe(n), p->choices, hint);
            return NULL;
        }
        return json_string(n->value);
    }
    case P_STR:
    case P_PATH:
        if (!n->value[0] && t == P_PATH) {
            cfg_error(e, n->line, n->col, kp, "expected a file path, got an empty string");
            return NULL;
        }
        if (n->plain && yscalar_is_null(n)) {
            cfg_error(e, n->line, n->col, kp, "expected %s, got null", type_word(t));
            return NULL;
        }
        return json_string(n->value);
    default: return NULL;
    }
}

static json_t *param_value(cfg_errors *e, const param_spec *p, const ynode *n, const char *kp)
{
    if ((p->flags & PARAM_NULLABLE) && n->kind == YN_SCALAR && yscalar_is_null(n)) return json_null();
    param_type et;
    switch (p->type) {
    case P_INT_LIST: et = P_INT; break;
    case P_NUM_LIST: et = P_NUM; break;
    case P_STR_LIST: et = P_STR; break;
    default: return scalar_value(e, p, p->type, n, kp);
    }
    if (n->kind != YN_SEQ) {
        cfg_error(e, n->line, n->col, kp, "expected %s, got %s", type_word(p->type), describe(n));
        return NULL;
    }
    if ((p->list_min && (int)n->n < p->list_min) || (p->list_max && (int)n->n > p->list_max)) {
        if (p->list_min == p->list_max)
            cfg_error(e, n->line, n->col, kp, "expected exactly %d items, got %zu", p->list_min, n->n);
        else
            cfg_error(e, n->line, n->col, kp, "expected %d to %d items, got %zu", p->list_min, p->list_max, n->n);
        return NULL;
    }
    json_t *arr = json_array();
    int bad = 0;
    for (size_t i = 0; i < n->n; i++) {
        char ikp[600];
        snprintf(ikp, sizeof ikp, "%s[%zu]", kp, i);
        json_t *v = scalar_value(e, p, et, n->items[i], ikp);
        if (!v) bad = 1;
        else json_array_append_new(arr, v);
    }
    if (bad) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* Validates a params map (may be NULL) against a type; returns the canonical
 * object with defaults, or NULL if anything was wrong. */
static json_t *validate_params(cfg_errors *e, const stage_type *t, const ynode *map, const char *kp, int line,
                               int col)
{
    json_t *out = json_object();
    int bad = 0;
    if (map && map->kind != YN_MAP && !yscalar_is_null(map)) {
        cfg_error(e, map->line, map->col, kp, "expected a map of parameters, got %s", describe(map));
        json_decref(out);
        return NULL;
    }
    if (map && map->kind == YN_MAP) {
        const char *names[128];
        int n = 0;
        for (const param_spec *p = t->params; p && p->name && n < 127; p++) names[n++] = p->name;
        names[n] = NULL;
        if (n == 0 && map->n) {
            cfg_error(e, map->keys[0]->line, map->keys[0]->col, kp, "stage type '%s' takes no parameters", t->name);
            bad = 1;
        } else {
            int before = e->count;
            check_keys(e, map, kp, names);
            bad |= e->count != before;
        }
    }
    for (const param_spec *p = t->params; p && p->name; p++) {
        char pkp[512];
        snprintf(pkp, sizeof pkp, "%s.%s", kp, p->name);
        const ynode *v = map && map->kind == YN_MAP ? ymap_get(map, p->name) : NULL;
        json_t *val = NULL;
        if (v) {
            val = param_value(e, p, v, pkp);
            if (!val) bad = 1;
        } else if (p->def) {
            json_error_t je;
            val = json_loads(p->def, JSON_DECODE_ANY, &je);
            if (!val) {
                cfg_error(e, line, col, pkp, "internal: bad default '%s' in stage type %s", p->def, t->name);
                bad = 1;
            }
            if (val && json_is_integer(val) && p->type == P_NUM) {
                json_t *r = json_real((double)json_integer_value(val));
                json_decref(val);
                val = r;
            }
        } else {
            cfg_error(e, map ? map->line : line, map ? map->col : col, kp, "missing required parameter '%s' (%s)",
                      p->name, type_word(p->type));
            bad = 1;
        }
        if (val) json_object_set_new(out, p->name, val);
    }
    if (bad) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* ---- run section --------------------------------------------------------- */

static const char *const top_keys[] = {"version", "run", "samples", "stages", "slurm", NULL};
static const char *const run_keys[] = {"name", "output", "store", "compression", "device", "threads", "seed",
                                       "checkpoint", "progress_interval", NULL};
static const char *const stage_keys[] = {"uses", "inputs", "params", "description", "scope", "samples", NULL};

/* The run section is validated with the same machinery as stage params. */
static const param_spec run_params[] = {
    {.name = "name", .type = P_STR, .doc = "name of the run"},
    {.name = "output", .type = P_PATH, .doc = "output folder; one container per sample goes here"},
    {.name = "store", .type = P_ENUM, .def = "\"hdf5\"", .choices = "hdf5|zarr", .doc = "container format"},
    {.name = "compression", .type = P_ENUM, .def = "\"blosc-lz4\"", .choices = "blosc-lz4|blosc-zstd|gzip|none",
     .doc = "how arrays are compressed (lossless; gzip needs no plugin in HDF5 readers); committed stages keep "
            "theirs, --force STAGE rewrites"},
    {.name = "device", .type = P_ENUM, .def = "\"auto\"", .choices = "auto|cpu|cuda", .doc = "where kernels run"},
    {.name = "threads", .type = P_INT, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 4096,
     .doc = "CPU threads (0: all cores)"},
    {.name = "seed", .type = P_INT, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 9007199254740992.0,
     .doc = "seed of every random choice"},
    {.name = "progress_interval", .type = P_NUM, .def = "10", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0,
     .hi = 86400, .doc = "seconds between progress lines when not on a terminal"},
    {0},
};
static const param_spec ckpt_params[] = {
    {.name = "every_seconds", .type = P_NUM, .def = "300", .flags = PARAM_RANGE, .lo = 0, .hi = 1e9,
     .doc = "save a checkpoint of long stages this often (0: never by time)"},
    {.name = "every_steps", .type = P_INT, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 1e15,
     .doc = "and every this many steps (0: never by steps)"},
    {0},
};

/* The cluster section: what `sirenstack submit` asks SLURM for. */
static const param_spec slurm_params[] = {
    {.name = "cpus", .type = P_INT, .def = "4", .flags = PARAM_RANGE, .lo = 1, .hi = 4096,
     .doc = "CPUs per array task (--cpus-per-task; also the run's threads)"},
    {.name = "memory", .type = P_STR, .def = "\"8G\"", .doc = "memory per task (--mem: 500M, 16G, ...)"},
    {.name = "time", .type = P_STR, .def = "\"12:00:00\"", .doc = "time limit per task (--time: [D-]HH:MM:SS)"},
    {.name = "gpus", .type = P_INT, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 64,
     .doc = "GPUs per task (--gres=gpu:N; 0: none)"},
    {.name = "partition", .type = P_STR, .def = "null", .flags = PARAM_NULLABLE,
     .doc = "partition (--partition; null: the cluster's default)"},
    {.name = "account", .type = P_STR, .def = "null", .flags = PARAM_NULLABLE, .doc = "account to charge (--account)"},
    {.name = "max_parallel", .type = P_INT, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 100000,
     .doc = "at most this many array tasks at once (--array=0-N%M; 0: no cap)"},
    {.name = "cohort_cpus", .type = P_INT, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 1, .hi = 4096,
     .doc = "CPUs of the cohort job (null: cpus)"},
    {.name = "cohort_memory", .type = P_STR, .def = "null", .flags = PARAM_NULLABLE,
     .doc = "memory of the cohort job (null: memory)"},
    {.name = "cohort_time", .type = P_STR, .def = "null", .flags = PARAM_NULLABLE,
     .doc = "time limit of the cohort job (null: time)"},
    {.name = "cohort_gpus", .type = P_INT, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 0, .hi = 64,
     .doc = "GPUs of the cohort job (null: gpus)"},
    {.name = "signal_seconds", .type = P_INT, .def = "120", .flags = PARAM_RANGE, .lo = 0, .hi = 86400,
     .doc = "SIGTERM this long before the time limit, so the stage checkpoints (--signal; 0: none)"},
    {.name = "sbatch", .type = P_STR_LIST, .def = "[]", .doc = "more #SBATCH options, one each (\"--qos=long\")"},
    {.name = "setup", .type = P_STR_LIST, .def = "[]",
     .doc = "shell lines each job runs first (\"module load hdf5\")"},
    {0},
};

static void validate_slurm(cfg_errors *e, config *c, const ynode *root, const ynode *sl)
{
    stage_type fake = {.name = "slurm", .params = slurm_params};
    c->slurm = validate_params(e, &fake, sl, "slurm", sl ? sl->line : root->line, sl ? sl->col : root->col);
}

static int validate_run(cfg_errors *e, config *c, const ynode *root, const ynode *run)
{
    if (!run) {
        cfg_error(e, root->line, root->col, "run", "missing required section 'run' (name, output)");
        return -1;
    }
    if (run->kind != YN_MAP) {
        cfg_error(e, run->line, run->col, "run", "expected a map, got %s", describe(run));
        return -1;
    }
    check_keys(e, run, "run", run_keys);
    stage_type fake = {.name = "run", .params = run_params};
    /* Validate everything but 'checkpoint' through the param machinery. */
    ynode tmp = *run;
    ynode *keys[32], *items[32];
    tmp.n = 0;
    tmp.keys = keys;
    tmp.items = items;
    for (size_t i = 0; i < run->n && tmp.n < 32; i++) {
        const char *k = run->keys[i]->value;
        int known = 0;
        for (const param_spec *p = run_params; p->name; p++) known |= !strcmp(p->name, k);
        if (!known) continue;
        keys[tmp.n] = run->keys[i];
        items[tmp.n] = run->items[i];
        tmp.n++;
    }
    json_t *v = validate_params(e, &fake, &tmp, "run", run->line, run->col);
    const ynode *ck = ymap_get(run, "checkpoint");
    stage_type fake_ck = {.name = "checkpoint", .params = ckpt_params};
    json_t *cv = validate_params(e, &fake_ck, ck, "run.checkpoint", run->line, run->col);
    if (!v || !cv) {
        json_decref(v);
        json_decref(cv);
        return -1;
    }
    c->run_name = ss_strdup(json_string_value(json_object_get(v, "name")));
    const char *out = json_string_value(json_object_get(v, "output"));
    char *joined = path_join(c->dir, out);
    c->output = path_normalize(joined);
    free(joined);
    c->store = strcmp(json_string_value(json_object_get(v, "store")), "zarr") ? STORE_HDF5 : STORE_ZARR;
    store_compression_from_name(json_string_value(json_object_get(v, "compression")), &c->compression);
    int comp_ok = store_compression_check(c->compression) == SS_OK;
    if (!comp_ok) {
        const ynode *cn = ymap_get(run, "compression");
        cfg_error(e, cn ? cn->line : run->line, cn ? cn->col : run->col, "run.compression", "%s", ss_errmsg());
        json_decref(v);
        json_decref(cv);
        return -1;
    }
    const char *dev = json_string_value(json_object_get(v, "device"));
    c->device = !strcmp(dev, "cpu") ? DEVICE_CPU : !strcmp(dev, "cuda") ? DEVICE_CUDA : DEVICE_AUTO;
    c->threads = (int)json_integer_value(json_object_get(v, "threads"));
    c->seed = (uint64_t)json_integer_value(json_object_get(v, "seed"));
    c->progress_interval = json_real_value(json_object_get(v, "progress_interval"));
    c->checkpoint_seconds = json_real_value(json_object_get(cv, "every_seconds"));
    c->checkpoint_steps = json_integer_value(json_object_get(cv, "every_steps"));
    json_decref(v);
    json_decref(cv);
    return 0;
}

/* ---- stages ------------------------------------------------------------- */

static const char *const *type_names(void)
{
    static const char *names[128];
    if (!names[0]) {
        int n = 0;
        for (const stage_type *const *t = stage_types_all(); *t && n < 127; t++) names[n++] = (*t)->name;
        names[n] = NULL;
    }
    return names;
}

static const port_spec *find_port(const port_spec *ports, const char *name)
{
    for (const port_spec *p = ports; p && p->name; p++)
        if (!strcmp(p->name, name)) return p;
    return NULL;
}

static int n_ports(const port_spec *ports)
{
    int n = 0;
    for (const port_spec *p = ports; p && p->name; p++) n++;
    return n;
}

/* The port a single reference (`inputs: stage.output`) goes to: the one
 * required input port, when the type has exactly one. */
static const port_spec *shorthand_port(const port_spec *ports)
{
    const port_spec *one = NULL;
    for (const port_spec *p = ports; p && p->name; p++) {
        if (p->optional) continue;
        if (one) return NULL;
        one = p;
    }
    return one;
}

static int parse_ref(const char *ref, char **stage, char **output)
{
    const char *dot = strchr(ref, '.');
    if (!dot || dot == ref || !dot[1] || strchr(dot + 1, '.')) return -1;
    *stage = strndup(ref, (size_t)(dot - ref));
    *output = ss_strdup(dot + 1);
    return 0;
}

static void add_input(stage_decl *d, const char *port, const ynode *ref, cfg_errors *e, const char *kp)
{
    if (!ref || ref->kind != YN_SCALAR || yscalar_is_null(ref)) {
        cfg_error(e, ref ? ref->line : d->line, ref ? ref->col : d->col, kp,
                  "expected a reference 'stage.output', got %s", describe(ref));
        return;
    }
    char *st = NULL, *out = NULL;
    if (parse_ref(ref->value, &st, &out) != 0) {
        cfg_error(e, ref->line, ref->col, kp, "expected a reference 'stage.output', got %s", describe(ref));
        return;
    }
    const port_spec *ps = find_port(d->type->inputs, port);
    if (ps && ps->ref_max && strlen(ref->value) > (size_t)ps->ref_max) {
        cfg_error(e, ref->line, ref->col, kp,
                  "reference '%.80s%s' has %zu characters; input '%s' of %s writes it into a table column of at "
                  "most %d", ref->value, strlen(ref->value) > 80 ? "..." : "", strlen(ref->value), port,
                  d->type->name, ps->ref_max);
        free(st), free(out);
        return;
    }
    stage_input *in = realloc(d->inputs, (size_t)(d->n_inputs + 1) * sizeof *in);
    if (!in) abort();
    d->inputs = in;
    in[d->n_inputs] = (stage_input){.port = ss_strdup(port), .stage = st, .output = out, .stage_index = -1};
    d->n_inputs++;
}

static void validate_inputs(cfg_errors *e, stage_decl *d, const ynode *inputs, const char *kp)
{
    const stage_type *t = d->type;
    int before = e->count;
    if (inputs && !yscalar_is_null(inputs)) {
        if (inputs->kind == YN_SCALAR) {
            /* Shorthand for a type with exactly one required input port. */
            const port_spec *sp = shorthand_port(t->inputs);
            if (n_ports(t->inputs) == 0)
                cfg_error(e, inputs->line, inputs->col, kp, "stage type '%s' takes no inputs", t->name);
            else if (!sp)
                cfg_error(e, inputs->line, inputs->col, kp,
                          "stage type '%s' has %d input ports; name them in a map (port: stage.output)", t->name,
                          n_ports(t->inputs));
            else
                add_input(d, sp->name, inputs, e, kp);
        } else if (inputs->kind == YN_MAP) {
            for (size_t i = 0; i < inputs->n; i++) {
                const char *port = inputs->keys[i]->value;
                char pkp[1024];
                snprintf(pkp, sizeof pkp, "%s.%s", kp, port);
                if (!find_port(t->inputs, port)) {
                    const char *names[32];
                    int n = 0;
                    for (const port_spec *p = t->inputs; p && p->name && n < 31; p++) names[n++] = p->name;
                    names[n] = NULL;
                    sbuf b = {0};
                    if (n) suggest(&b, port, names);
                    else sbuf_put(&b, "; this stage type takes no inputs");
                    cfg_error(e, inputs->keys[i]->line, inputs->keys[i]->col, pkp, "unknown input port of '%s'%s",
                              t->name, sbuf_str(&b));
                    sbuf_free(&b);
                    continue;
                }
                const port_spec *ps = find_port(t->inputs, port);
                const ynode *v = inputs->items[i];
                if (v->kind == YN_SEQ && ps->multiple) {
                    if (v->n == 0) cfg_error(e, v->line, v->col, pkp, "expected one or more references, got an empty list");
                    for (size_t q = 0; q < v->n; q++) {
                        char qkp[1100];
                        snprintf(qkp, sizeof qkp, "%s[%zu]", pkp, q);
                        add_input(d, port, v->items[q], e, qkp);
                    }
                } else if (v->kind == YN_SEQ) {
                    cfg_error(e, v->line, v->col, pkp, "input '%s' of %s takes one reference 'stage.output', not a list",
                              port, t->name);
                } else {
                    add_input(d, port, v, e, pkp);
                }
            }
        } else {
            cfg_error(e, inputs->line, inputs->col, kp, "expected a map of port: stage.output, got %s",
                      describe(inputs));
        }
        /* A malformed 'inputs' was reported; missing ports would only repeat it. */
        if (e->count != before) return;
    }
    for (const port_spec *p = t->inputs; p && p->name; p++) {
        if (p->optional) continue;
        int have = 0;
        for (int i = 0; i < d->n_inputs; i++) have |= !strcmp(d->inputs[i].port, p->name);
        if (!have)
            cfg_error(e, inputs ? inputs->line : d->line, inputs ? inputs->col : d->col, kp,
                      "missing required input '%s' of stage type '%s'", p->name, t->name);
    }
}

static const char *kind_word(unsigned k)
{
    if (k & KIND_IMAGE && k & KIND_REPEATS) return "an image or repeats";
    if (k & KIND_IMAGE) return "an image (ZYX)";
    if (k & KIND_REPEATS) return "repeats (RZYX)";
    if (k & KIND_TABLE) return "a table";
    if (k & KIND_WEIGHTS) return "model weights";
    if (k & KIND_MASK) return "a per-plane mask (Z)";
    return "data";
}

/* Kind produced by output `out` of stage i, following `like` links. */
static unsigned output_kind(const config *c, int i, const char *out, int depth)
{
    const stage_decl *d = &c->stages[i];
    const port_spec *p = find_port(d->type->outputs, out);
    if (!p || depth > c->n_stages) return 0;
    if (!p->like) return p->kinds;
    for (int k = 0; k < d->n_inputs; k++)
        if (!strcmp(d->inputs[k].port, p->like) && d->inputs[k].stage_index >= 0)
            return output_kind(c, d->inputs[k].stage_index, d->inputs[k].output, depth + 1);
    return p->kinds;
}

static int stage_has_input(const stage_decl *d, const char *port)
{
    for (int k = 0; k < d->n_inputs; k++)
        if (!strcmp(d->inputs[k].port, port)) return 1;
    return 0;
}

/* How many repeats output `out` of stage i holds for sample s, as far as the
 * config tells before anything runs (following `like` links); 0 when it does
 * not say. *by_sample: the count is the sample's `repeats`. */
static int64_t output_repeats(const config *c, int i, const char *out, const sample_info *s, int depth, int *by_sample)
{
    const stage_decl *d = &c->stages[i];
    const port_spec *p = find_port(d->type->outputs, out);
    if (!p || depth > c->n_stages) return 0;
    if (p->like) {
        for (int k = 0; k < d->n_inputs; k++)
            if (!strcmp(d->inputs[k].port, p->like) && d->inputs[k].stage_index >= 0)
                return output_repeats(c, d->inputs[k].stage_index, d->inputs[k].output, s, depth + 1, by_sample);
        return 0;
    }
    int64_t r = d->type->repeats_of && d->params ? d->type->repeats_of(d->params, out) : 0;
    if (r == 0 && (d->type->flags & STAGE_SOURCE)) r = s->repeats, *by_sample = 1;
    return r;
}

static void check_references(cfg_errors *e, config *c, const ynode *stages)
{
    for (int i = 0; i < c->n_stages; i++) {
        stage_decl *d = &c->stages[i];
        const ynode *sn = ymap_get(stages, d->name);
        const ynode *in = ymap_get(sn, "inputs");
        for (int k = 0; k < d->n_inputs; k++) {
            stage_input *x = &d->inputs[k];
            const ynode *rn = in && in->kind == YN_MAP ? ymap_get(in, x->port) : in;
            char kp[512];
            snprintf(kp, sizeof kp, "stages.%s.inputs.%s", d->name, x->port);
            int j = config_find_stage(c, x->stage);
            if (j < 0) {
                const char *names[256];
                int n = 0;
                for (int q = 0; q < c->n_stages && n < 255; q++) names[n++] = c->stages[q].name;
                names[n] = NULL;
                sbuf b = {0};
                suggest(&b, x->stage, names);
                cfg_error(e, rn ? rn->line : d->line, rn ? rn->col : d->col, kp, "refers to a missing stage '%s'%s",
                          x->stage, sbuf_str(&b));
                sbuf_free(&b);
                continue;
            }
            const port_spec *op = find_port(c->stages[j].type->outputs, x->output);
            if (!op) {
                sbuf b = {0};
                for (const port_spec *p = c->stages[j].type->outputs; p && p->name; p++)
                    sbuf_printf(&b, " %s", p->name);
                cfg_error(e, rn ? rn->line : d->line, rn ? rn->col : d->col, kp,
                          "stage '%s' (%s) has no output '%s'; its outputs are:%s", x->stage, c->stages[j].type->name,
                          x->output, sbuf_str(&b));
                sbuf_free(&b);
                continue;
            }
            const port_spec *lp = op->like ? find_port(c->stages[j].type->inputs, op->like) : NULL;
            if (lp && lp->optional && !stage_has_input(&c->stages[j], op->like)) {
                cfg_error(e, rn ? rn->line : d->line, rn ? rn->col : d->col, kp,
                          "stage '%s' (%s) writes output '%s' only when its input '%s' is connected", x->stage,
                          c->stages[j].type->name, x->output, op->like);
                continue;
            }
            x->stage_index = j;
        }
    }
}

static void check_kinds(cfg_errors *e, config *c, const ynode *stages)
{
    for (int i = 0; i < c->n_stages; i++) {
        stage_decl *d = &c->stages[i];
        for (int k = 0; k < d->n_inputs; k++) {
            stage_input *x = &d->inputs[k];
            if (x->stage_index < 0) continue;
            const port_spec *ip = find_port(d->type->inputs, x->port);
            unsigned got = output_kind(c, x->stage_index, x->output, 0);
            if (!ip || !got || (got & ip->kinds)) continue;
            const ynode *in = ymap_get(ymap_get(stages, d->name), "inputs");
            const ynode *rn = in && in->kind == YN_MAP ? ymap_get(in, x->port) : in;
            char kp[512];
            snprintf(kp, sizeof kp, "stages.%s.inputs.%s", d->name, x->port);
            if (got == KIND_REPEATS && (ip->kinds & KIND_IMAGE)) {
                /* One repeat is an image; so may be a count not known yet
                 * (the stage's reader checks it at run time). */
                int64_t r = 0;
                int si = 0, by_sample = 0;
                for (; si < c->n_samples && r <= 1; si++)
                    r = output_repeats(c, x->stage_index, x->output, &c->samples[si], 0, &by_sample);
                char who[160] = "";
                if (by_sample) snprintf(who, sizeof who, " (sample %s)", c->samples[si - 1].id);
                if (r > 1)
                    cfg_error(e, rn ? rn->line : d->line, rn ? rn->col : d->col, kp,
                              "'%s.%s' holds %lld repeats%s, but input '%s' of %s expects an image (ZYX); "
                              "fuse them first (fuse_mean, fuse_median, siren_fuse)", x->stage, x->output,
                              (long long)r, who, x->port, d->type->name);
                continue;
            }
            cfg_error(e, rn ? rn->line : d->line, rn ? rn->col : d->col, kp,
                      "'%s.%s' is %s, but input '%s' of %s expects %s", x->stage, x->output, kind_word(got), x->port,
                      d->type->name, kind_word(ip->kinds));
        }
    }
}

/* {field} references in string parameters must name fields every sample has,
 * and each stage's parameters must suit each sample (check_sample). */
static void check_substitutions(cfg_errors *e, config *c, const ynode *stages)
{
    for (int i = 0; i < c->n_stages; i++) {
        stage_decl *d = &c->stages[i];
        const ynode *pm = ymap_get(ymap_get(stages, d->name), "params");
        if (d->cohort) {
            json_t *p;
            if (config_stage_params(c, i, NULL, &p) == SS_OK) json_decref(p);
            else cfg_error(e, pm ? pm->line : d->line, pm ? pm->col : d->col, "", "stages.%s.params: %s", d->name,
                           ss_errmsg());
            continue;
        }
        for (int si = 0; si < c->n_samples; si++) {
            json_t *p;
            if (config_stage_params(c, i, &c->samples[si], &p) == SS_OK) {
                const char *why = d->type->check_sample ? d->type->check_sample(p, &c->samples[si]) : NULL;
                json_decref(p);
                if (!why) continue;
                cfg_error(e, pm ? pm->line : d->line, pm ? pm->col : d->col, "", "stages.%s.params: sample %s: %s",
                          d->name, c->samples[si].id, why);
                break;
            }
            cfg_error(e, pm ? pm->line : d->line, pm ? pm->col : d->col, "", "stages.%s.params: %s", d->name,
                      ss_errmsg());
            break;
        }
    }
}

/* scope: sample (the default) or cohort, and a cohort stage's samples. */
static void validate_scope(cfg_errors *e, config *c, stage_decl *d, const ynode *sn, const char *kp)
{
    const stage_type *t = d->type;
    const ynode *sc = ymap_get(sn, "scope"), *sm = ymap_get(sn, "samples");
    char skp[600];
    snprintf(skp, sizeof skp, "%s.scope", kp);
    d->cohort = (t->flags & STAGE_COHORT_ONLY) != 0;
    if (sc) {
        if (sc->kind != YN_SCALAR || (strcmp(sc->value, "sample") && strcmp(sc->value, "cohort"))) {
            cfg_error(e, sc->line, sc->col, skp, "expected sample or cohort, got %s", describe(sc));
            return;
        }
        d->cohort = !strcmp(sc->value, "cohort");
        if (!d->cohort && (t->flags & STAGE_COHORT_ONLY))
            cfg_error(e, sc->line, sc->col, skp, "stage type '%s' runs once per run over every sample's outputs "
                      "(scope: cohort) only", t->name);
        else if (d->cohort && !(t->flags & (STAGE_COHORT | STAGE_COHORT_ONLY)))
            cfg_error(e, sc->line, sc->col, skp, "stage type '%s' runs per sample only; the types that take "
                      "scope: cohort are listed by `sirenstack stages` (\"cohort\")", t->name);
    }
    if (!sm) return;
    snprintf(skp, sizeof skp, "%s.samples", kp);
    if (!d->cohort) {
        cfg_error(e, sm->line, sm->col, skp, "only a stage with scope: cohort reads a subset of the samples");
        return;
    }
    if (sm->kind != YN_SEQ || sm->n == 0) {
        cfg_error(e, sm->line, sm->col, skp, "expected a list of one or more sample ids, got %s", describe(sm));
        return;
    }
    d->subset = calloc(sm->n, sizeof *d->subset);
    if (!d->subset) abort();
    for (size_t q = 0; q < sm->n; q++) {
        const ynode *v = sm->items[q];
        int found = -1;
        for (int k = 0; v->kind == YN_SCALAR && k < c->n_samples && found < 0; k++)
            if (!strcmp(c->samples[k].id, v->value)) found = k;
        for (int k = 0; found >= 0 && k < d->n_subset; k++)
            if (d->subset[k] == found) {
                cfg_error(e, v->line, v->col, skp, "sample '%s' is listed twice", v->value);
                found = -2;
            }
        if (found == -1) cfg_error(e, v->line, v->col, skp, "no sample has the id %s", describe(v));
        if (found >= 0) d->subset[d->n_subset++] = found;
    }
}

int config_cohort_n(const config *c, int i)
{
    return c->stages[i].n_subset ? c->stages[i].n_subset : c->n_samples;
}

int config_cohort_sample(const config *c, int i, int k)
{
    return c->stages[i].n_subset ? c->stages[i].subset[k] : k;
}

/* Levels: the longest chain of cohort stages upstream (stage_decl.level). */
static void set_levels(config *c)
{
    int *order = calloc((size_t)c->n_stages + 1, sizeof *order);
    if (!order) abort();
    graph_topo_order(c, order);
    for (int oi = 0; oi < c->n_stages; oi++) {
        stage_decl *d = &c->stages[order[oi]];
        d->level = 0;
        for (int k = 0; k < d->n_inputs; k++) {
            const stage_decl *u = &c->stages[d->inputs[k].stage_index];
            int l = u->level + (u->cohort && !d->cohort);
            if (l > d->level) d->level = l;
        }
    }
    free(order);
}

static void validate_stages(cfg_errors *e, config *c, const ynode *root, const ynode *stages)
{
    if (!stages) {
        cfg_error(e, root->line, root->col, "stages", "missing required section 'stages'");
        return;
    }
    if (stages->kind != YN_MAP) {
        cfg_error(e, stages->line, stages->col, "stages", "expected a map of stage name: {uses, inputs, params}, got %s",
                  describe(stages));
        return;
    }
    if (stages->n == 0) {
        cfg_error(e, stages->line, stages->col, "stages", "no stages declared");
        return;
    }
    c->stages = calloc(stages->n, sizeof *c->stages);
    if (!c->stages) abort();
    for (size_t i = 0; i < stages->n; i++) {
        const ynode *kn = stages->keys[i], *sn = stages->items[i];
        char kp[512];
        snprintf(kp, sizeof kp, "stages.%s", kn->value);
        if (!store_valid_name(kn->value)) {
            cfg_error(e, kn->line, kn->col, kp,
                      "invalid stage name: use letters, digits, '_' and '-' (at most 100, not starting with '.')");
            continue;
        }
        if (sn->kind != YN_MAP) {
            cfg_error(e, sn->line, sn->col, kp, "expected a map with 'uses', got %s", describe(sn));
            continue;
        }
        check_keys(e, sn, kp, stage_keys);
        const ynode *uses = ymap_get(sn, "uses");
        char ukp[600];
        snprintf(ukp, sizeof ukp, "%s.uses", kp);
        if (!uses || uses->kind != YN_SCALAR || yscalar_is_null(uses)) {
            cfg_error(e, uses ? uses->line : sn->line, uses ? uses->col : sn->col, ukp,
                      "expected the name of a stage type, got %s", describe(uses));
            continue;
        }
        const stage_type *t = stage_type_find(uses->value);
        if (!t) {
            sbuf b = {0};
            suggest(&b, uses->value, type_names());
            cfg_error(e, uses->line, uses->col, ukp, "unknown stage type '%s'%s", uses->value, sbuf_str(&b));
            sbuf_free(&b);
            continue;
        }
        stage_decl *d = &c->stages[c->n_stages++];
        d->name = ss_strdup(kn->value);
        d->type = t;
        d->line = kn->line;
        d->col = kn->col;
        char pkp[600], ikp[600];
        snprintf(pkp, sizeof pkp, "%s.params", kp);
        snprintf(ikp, sizeof ikp, "%s.inputs", kp);
        d->params = validate_params(e, t, ymap_get(sn, "params"), pkp, sn->line, sn->col);
        const char *why = d->params && t->check ? t->check(d->params) : NULL;
        if (why) {
            const ynode *pn = ymap_get(sn, "params");
            cfg_error(e, pn ? pn->line : sn->line, pn ? pn->col : sn->col, pkp, "%s", why);
        }
        validate_inputs(e, d, ymap_get(sn, "inputs"), ikp);
        validate_scope(e, c, d, sn, kp);
        const ynode *desc = ymap_get(sn, "description");
        char dkp[600];
        snprintf(dkp, sizeof dkp, "%s.description", kp);
        if (desc && desc->kind != YN_SCALAR)
            cfg_error(e, desc->line, desc->col, dkp, "expected a string, got %s", describe(desc));
    }
}

int config_find_stage(const config *c, const char *name)
{
    for (int i = 0; i < c->n_stages; i++)
        if (!strcmp(c->stages[i].name, name)) return i;
    return -1;
}

int config_load(const char *path, config **out, sbuf *errors)
{
    *out = NULL;
    cfg_errors e = {.file = path, .out = errors};
    ydoc *doc;
    int rc = ydoc_load(path, &doc);
    if (rc != SS_OK) {
        sbuf_put(errors, ss_errmsg());
        sbuf_put(errors, "\n");
        return rc;
    }
    config *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->path = ss_strdup(path);
    c->dir = path_dirname(path);
    const ynode *root = doc->root;
    if (!root || (root->kind == YN_SCALAR && yscalar_is_null(root))) {
        cfg_error(&e, 0, 0, "", "the config is empty; expected a map with version, run, samples and stages");
        goto done;
    }
    if (root->kind != YN_MAP) {
        cfg_error(&e, root->line, root->col, "", "expected a map with version, run, samples and stages, got %s",
                  describe(root));
        goto done;
    }
    check_keys(&e, root, "", top_keys);
    const ynode *ver = ymap_get(root, "version");
    long long v;
    if (!ver) cfg_error(&e, root->line, root->col, "version", "missing required key 'version' (use version: %d)",
                        CONFIG_VERSION);
    else if (ver->kind == YN_SCALAR && !ver->plain)
        cfg_error(&e, ver->line, ver->col, "version", "expected the integer %d, got the string '%s' (remove the quotes)",
                  CONFIG_VERSION, ver->value);
    else if (yscalar_int(ver, &v) != 1 || v != CONFIG_VERSION)
        cfg_error(&e, ver->line, ver->col, "version", "unsupported config version %s: this program reads version %d",
                  describe(ver), CONFIG_VERSION);
    validate_run(&e, c, root, ymap_get(root, "run"));
    validate_slurm(&e, c, root, ymap_get(root, "slurm"));

    const ynode *samples = ymap_get(root, "samples");
    if (!samples) {
        cfg_error(&e, root->line, root->col, "samples", "missing required section 'samples' (a list, or manifest: FILE)");
    } else if (samples->kind == YN_SEQ) {
        samples_load_inline(samples, &e, &c->samples, &c->n_samples);
    } else if (samples->kind == YN_MAP) {
        static const char *const skeys[] = {"manifest", NULL};
        check_keys(&e, samples, "samples", skeys);
        const ynode *m = ymap_get(samples, "manifest");
        if (!m || m->kind != YN_SCALAR || yscalar_is_null(m) || !m->value[0]) {
            cfg_error(&e, samples->line, samples->col, "samples.manifest", "expected the path of a TSV or CSV file");
        } else {
            c->manifest = path_join(c->dir, m->value);
            samples_load_manifest(c->manifest, &e, path, m->line, m->col, &c->samples, &c->n_samples);
        }
    } else {
        cfg_error(&e, samples->line, samples->col, "samples", "expected a list of samples or manifest: FILE, got %s",
                  describe(samples));
    }

    const ynode *stages = ymap_get(root, "stages");
    validate_stages(&e, c, root, stages);
    if (e.count == 0) check_references(&e, c, stages);
    if (e.count == 0) {
        sbuf cyc = {0};
        int at = graph_find_cycle(c, &cyc);
        if (at >= 0)
            cfg_error(&e, c->stages[at].line, c->stages[at].col, "stages", "the stages form a cycle: %s",
                      sbuf_str(&cyc));
        sbuf_free(&cyc);
    }
    if (e.count == 0) set_levels(c);
    if (e.count == 0) check_kinds(&e, c, stages);
    if (e.count == 0) check_substitutions(&e, c, stages);
done:
    ydoc_free(doc);
    if (e.count > CFG_MAX_ERRORS) sbuf_printf(errors, "%s: ... and %d more errors\n", path, e.count - CFG_MAX_ERRORS);
    if (e.count) {
        config_free(c);
        return SS_ERR_CONFIG;
    }
    *out = c;
    return SS_OK;
}

void config_free(config *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_stages; i++) {
        stage_decl *d = &c->stages[i];
        free(d->name);
        json_decref(d->params);
        for (int k = 0; k < d->n_inputs; k++) {
            free(d->inputs[k].port);
            free(d->inputs[k].stage);
            free(d->inputs[k].output);
        }
        free(d->inputs);
        free(d->subset);
    }
    free(c->stages);
    samples_free(c->samples, c->n_samples);
    free(c->path);
    free(c->dir);
    free(c->run_name);
    free(c->output);
    free(c->manifest);
    json_decref(c->slurm);
    free(c);
}

/* ---- per-sample parameters ---------------------------------------------- */

static int substitute(const char *in, const sample_info *s, sbuf *out)
{
    for (const char *p = in; *p;) {
        if (p[0] == '{' && p[1] == '{') {
            sbuf_put(out, "{");
            p += 2;
            continue;
        }
        if (p[0] == '}' && p[1] == '}') {
            sbuf_put(out, "}");
            p += 2;
            continue;
        }
        if (*p != '{') {
            sbuf_putn(out, p, 1);
            p++;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end) return ss_fail(SS_ERR_CONFIG, "'%s': unmatched '{' (write {{ for a literal brace)", in);
        char field[128];
        size_t n = (size_t)(end - p - 1);
        if (n == 0 || n >= sizeof field) return ss_fail(SS_ERR_CONFIG, "'%s': empty or too long {field}", in);
        memcpy(field, p + 1, n);
        field[n] = 0;
        /* {z}, {r}, {t}, {c} (with an optional :format) are fields of file
         * patterns, filled by the stage that reads the files. */
        if (strchr("zrtc", field[0]) && (field[1] == 0 || field[1] == ':')) {
            sbuf_putn(out, p, n + 2);
            p = end + 1;
            continue;
        }
        if (!s)
            return ss_fail(SS_ERR_CONFIG, "'%s': {%s} names a sample's field, but a stage with scope: cohort runs once "
                           "for all samples", in, field);
        json_t *v = json_object_get(s->fields, field);
        if (!v || json_is_null(v))
            return ss_fail(SS_ERR_CONFIG, "'%s': sample '%s' has no field '%s'", in, s->id, field);
        if (json_is_string(v)) sbuf_put(out, json_string_value(v));
        else if (json_is_integer(v)) sbuf_printf(out, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v)) sbuf_printf(out, "%g", json_real_value(v));
        else return ss_fail(SS_ERR_CONFIG, "'%s': field '%s' of sample '%s' is not a plain value", in, field, s->id);
        p = end + 1;
    }
    return SS_OK;
}

int config_stage_params(const config *c, int i, const sample_info *s, json_t **out)
{
    const stage_decl *d = &c->stages[i];
    json_t *p = json_deep_copy(d->params);
    if (!p) return ss_fail(SS_ERR_NOMEM, "out of memory");
    for (const param_spec *ps = d->type->params; ps && ps->name; ps++) {
        if (ps->type != P_STR && ps->type != P_PATH && ps->type != P_STR_LIST) continue;
        json_t *v = json_object_get(p, ps->name);
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t k = 0; k < n; k++) {
            json_t *e = json_is_array(v) ? json_array_get(v, k) : v;
            if (!json_is_string(e)) continue;
            sbuf b = {0};
            int rc = substitute(json_string_value(e), s, &b);
            if (rc != SS_OK) {
                sbuf_free(&b);
                json_decref(p);
                return ss_fail_prefix(rc, "%s", ps->name);
            }
            json_t *nv;
            if (ps->type == P_PATH) {
                char *joined = path_join(c->dir, sbuf_str(&b));
                char *abs = joined ? path_normalize(joined) : NULL;
                nv = json_string(abs ? abs : "");
                free(joined);
                free(abs);
            } else {
                nv = json_string(sbuf_str(&b));
            }
            sbuf_free(&b);
            if (json_is_array(v)) json_array_set_new(v, k, nv);
            else json_object_set_new(p, ps->name, nv);
        }
    }
    *out = p;
    return SS_OK;
}

/* ---- JSON Schema ----------------------------------------------------------- */

/* "a|b|c" -> ["a", "b", "c"] */
static json_t *choices_json(const char *choices)
{
    json_t *en = json_array();
    for (const char *c = choices; c && *c;) {
        size_t l = strcspn(c, "|");
        json_array_append_new(en, json_stringn(c, l));
        c += l + (c[l] == '|');
    }
    return en;
}

static json_t *param_schema(const param_spec *p)
{
    json_t *s = json_object();
    param_type et = p->type == P_INT_LIST ? P_INT : p->type == P_NUM_LIST ? P_NUM : p->type == P_STR_LIST ? P_STR : p->type;
    json_t *e = json_object();
    switch (et) {
    case P_INT: json_object_set_new(e, "type", json_string("integer")); break;
    case P_NUM: json_object_set_new(e, "type", json_string("number")); break;
    case P_BOOL: json_object_set_new(e, "type", json_string("boolean")); break;
    case P_ENUM: json_object_set_new(e, "enum", choices_json(p->choices)); break;
    case P_PATH:
        json_object_set_new(e, "type", json_string("string"));
        json_object_set_new(e, "minLength", json_integer(1));
        break;
    default:
        /* A plain YAML scalar is taken as text for a string parameter
         * (reference: 0), as the validator does. */
        json_object_set_new(e, "type", json_pack("[sss]", "string", "number", "boolean"));
        break;
    }
    if ((p->flags & PARAM_RANGE) && (et == P_INT || et == P_NUM)) {
        json_object_set_new(e, p->flags & PARAM_LO_OPEN ? "exclusiveMinimum" : "minimum", json_real(p->lo));
        json_object_set_new(e, p->flags & PARAM_HI_OPEN ? "exclusiveMaximum" : "maximum", json_real(p->hi));
    }
    if (et != p->type) {
        json_object_set_new(s, "type", json_string("array"));
        json_object_set_new(s, "items", e);
        if (p->list_min) json_object_set_new(s, "minItems", json_integer(p->list_min));
        if (p->list_max) json_object_set_new(s, "maxItems", json_integer(p->list_max));
    } else {
        json_object_update(s, e);
        json_decref(e);
    }
    if (p->flags & PARAM_NULLABLE) {
        json_t *any = json_pack("{s:[o,{s:s}]}", "anyOf", s, "type", "null");
        s = any;
    }
    if (p->doc) json_object_set_new(s, "description", json_string(p->doc));
    if (p->def) {
        json_t *d = json_loads(p->def, JSON_DECODE_ANY, NULL);
        if (d) json_object_set_new(s, "default", d);
    }
    return s;
}

static json_t *params_schema(const param_spec *params)
{
    json_t *props = json_object(), *req = json_array();
    for (const param_spec *p = params; p && p->name; p++) {
        json_object_set_new(props, p->name, param_schema(p));
        if (!p->def) json_array_append_new(req, json_string(p->name));
    }
    json_t *s = json_pack("{s:s,s:o,s:b}", "type", "object", "properties", props, "additionalProperties", 0);
    if (json_array_size(req)) json_object_set_new(s, "required", req);
    else json_decref(req);
    return s;
}

json_t *config_json_schema(void)
{
    json_t *defs = json_object();
    json_object_set_new(defs, "ref",
                        json_pack("{s:s,s:s,s:s}", "type", "string", "pattern", "^[A-Za-z0-9_-]{1,100}\\.[A-Za-z0-9_-]{1,100}$",
                                  "description", "an output of another stage: stage.output"));
    json_t *types = json_array(), *cases = json_array();
    for (const stage_type *const *t = stage_types_all(); *t; t++) {
        json_array_append_new(types, json_string((*t)->name));
        json_t *ports = json_object(), *req = json_array();
        for (const port_spec *p = (*t)->inputs; p && p->name; p++) {
            if (p->multiple)
                json_object_set_new(ports, p->name,
                                    json_pack("{s:[{s:s},{s:s,s:{s:s},s:i}],s:s}", "anyOf", "$ref", "#/definitions/ref",
                                              "type", "array", "items", "$ref", "#/definitions/ref", "minItems", 1,
                                              "description", p->doc ? p->doc : ""));
            else
                json_object_set_new(ports, p->name, json_pack("{s:s,s:s}", "$ref", "#/definitions/ref", "description",
                                                              p->doc ? p->doc : ""));
            if (!p->optional) json_array_append_new(req, json_string(p->name));
        }
        json_t *inputs = json_pack("{s:s,s:o,s:b}", "type", "object", "properties", ports, "additionalProperties", 0);
        if (json_array_size(req)) json_object_set_new(inputs, "required", json_incref(req));
        if (shorthand_port((*t)->inputs))
            inputs = json_pack("{s:[o,{s:s}]}", "anyOf", inputs, "$ref", "#/definitions/ref");
        /* An empty 'params:' or 'inputs:' (null) means none. */
        int required_params = 0;
        for (const param_spec *p = (*t)->params; p && p->name; p++) required_params |= !p->def;
        json_t *pnull = params_schema((*t)->params);
        if (!required_params) pnull = json_pack("{s:[o,{s:s}]}", "anyOf", pnull, "type", "null");
        if (!json_array_size(req)) inputs = json_pack("{s:[o,{s:s}]}", "anyOf", inputs, "type", "null");
        json_t *then = json_pack("{s:{s:o,s:o}}", "properties", "params", pnull, "inputs", inputs);
        if (json_array_size(req)) json_object_set_new(then, "required", json_pack("[s]", "inputs"));
        json_decref(req);
        json_array_append_new(cases, json_pack("{s:{s:{s:{s:s}}},s:o}", "if", "properties", "uses", "const",
                                               (*t)->name, "then", then));
    }
    json_t *stage = json_pack("{s:s,s:[s],s:{s:{s:o,s:s},s:{},s:{},s:{s:s}},s:b,s:o}", "type", "object", "required",
                              "uses", "properties", "uses", "enum", types, "description",
                              "stage type (see `sirenstack stages`)", "inputs", "params", "description", "type",
                              "string", "additionalProperties", 0, "allOf", cases);
    json_t *props = json_object_get(stage, "properties");
    json_object_set_new(props, "scope",
                        json_pack("{s:[s,s],s:s}", "enum", "sample", "cohort", "description",
                                  "sample (the default): once per sample; cohort: once per run, over every "
                                  "sample's outputs (the types flagged cohort in `sirenstack stages`)"));
    json_object_set_new(props, "samples",
                        json_pack("{s:s,s:{s:s},s:i,s:b,s:s}", "type", "array", "items", "type", "string", "minItems",
                                  1, "uniqueItems", 1, "description",
                                  "scope cohort: the ids of the samples it reads (default: all)"));
    json_object_set_new(defs, "stage", stage);
    json_t *run = params_schema(run_params);
    json_t *slurm = params_schema(slurm_params);
    json_object_set_new(json_object_get(run, "properties"), "checkpoint", params_schema(ckpt_params));
    json_t *sample = json_pack(
        "{s:s,s:[s],s:{s:{s:s,s:s},s:{s:s},s:{s:s,s:{s:s,s:i},s:i,s:i},s:{s:s,s:i,s:i}},s:{s:[{s:s},{s:s},{s:s}]}}",
        "type", "object", "required", "id", "properties", "id", "type", "string", "pattern", "^[A-Za-z0-9_-]{1,100}$",
        "input", "type", "string", "voxel_size", "type", "array", "items", "type", "number", "exclusiveMinimum", 0,
        "minItems", 3, "maxItems", 3, "repeats", "type", "integer", "minimum", 1, "maximum", 100000,
        "additionalProperties", "anyOf", "type", "string", "type", "number", "type", "boolean");
    json_t *samples = json_pack("{s:[{s:s,s:i,s:o},{s:s,s:{s:{s:s,s:i}},s:[s],s:b}]}", "oneOf", "type", "array",
                                "minItems", 1, "items", sample, "type", "object", "properties", "manifest", "type",
                                "string", "minLength", 1, "required", "manifest", "additionalProperties", 0);
    return json_pack("{s:s,s:s,s:s,s:i,s:s,s:[ssss],s:b,s:{s:{s:i},s:o,s:o,s:o,s:{s:s,s:i,s:{s:s},s:{s:s}}},s:o}",
                     "$schema", "http://json-schema.org/draft-07/schema#", "title", "sirenstack run configuration",
                     "description", "One YAML file declares a run: samples and a graph of stages. Generated by `sirenstack schema`.",
                     "x-config-version", CONFIG_VERSION, "type", "object", "required", "version", "run", "samples",
                     "stages", "additionalProperties", 0, "properties", "version", "const", CONFIG_VERSION, "run", run,
                     "slurm", slurm, "samples", samples, "stages", "type", "object", "minProperties", 1, "propertyNames", "pattern",
                     "^[A-Za-z0-9_-]{1,100}$", "additionalProperties", "$ref", "#/definitions/stage", "definitions",
                     defs);
}

/* ---- stage types as data (sirenstack stages --json) ------------------------ */

const char *config_param_type_name(param_type t)
{
    static const char *const n[] = {"int", "number", "bool", "string", "enum", "path", "int list", "number list",
                                    "string list"};
    return n[t];
}

static const char *const kind_names[] = {"image", "repeats", "table", "weights", "mask"};
#define N_KIND_NAMES (sizeof kind_names / sizeof *kind_names)

void config_kinds_text(unsigned kinds, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (unsigned i = 0; i < N_KIND_NAMES && len < n; i++)
        if (kinds & (1u << i)) len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "|" : "", kind_names[i]);
}

static json_t *kinds_json(unsigned kinds)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < N_KIND_NAMES; i++)
        if (kinds & (1u << i)) json_array_append_new(a, json_string(kind_names[i]));
    return a;
}

static json_t *ports_json(const port_spec *ports, int inputs)
{
    json_t *a = json_array();
    for (const port_spec *p = ports; p && p->name; p++) {
        json_t *o = json_pack("{s:s,s:o,s:s}", "name", p->name, "kinds", kinds_json(p->kinds), "doc", p->doc ? p->doc : "");
        if (inputs) {
            json_object_set_new(o, "optional", json_boolean(p->optional));
            json_object_set_new(o, "multiple", json_boolean(p->multiple));
        } else {
            json_object_set_new(o, "like", p->like ? json_string(p->like) : json_null());
        }
        json_array_append_new(a, o);
    }
    return a;
}

json_t *config_stage_type_json(const stage_type *t)
{
    json_t *params = json_array();
    for (const param_spec *p = t->params; p && p->name; p++) {
        json_t *def = p->def ? json_loads(p->def, JSON_DECODE_ANY, NULL) : NULL;
        json_t *o = json_pack("{s:s,s:s,s:o,s:b,s:b,s:s}", "name", p->name, "type", config_param_type_name(p->type),
                              "default", def ? def : json_null(), "required", !p->def, "nullable",
                              (p->flags & PARAM_NULLABLE) != 0, "doc", p->doc ? p->doc : "");
        if (p->flags & PARAM_RANGE)
            json_object_set_new(o, "range", json_pack("{s:f,s:f,s:b,s:b}", "min", p->lo, "max", p->hi, "min_exclusive",
                                                      (p->flags & PARAM_LO_OPEN) != 0, "max_exclusive",
                                                      (p->flags & PARAM_HI_OPEN) != 0));
        if (p->type == P_ENUM) json_object_set_new(o, "choices", choices_json(p->choices));
        if (p->list_min || p->list_max)
            json_object_set_new(o, "items", json_pack("{s:i,s:i}", "min", p->list_min, "max", p->list_max));
        json_array_append_new(params, o);
    }
    const char *cohort = t->flags & STAGE_COHORT_ONLY ? "only" : t->flags & STAGE_COHORT ? "allowed" : "no";
    return json_pack("{s:s,s:i,s:s,s:b,s:b,s:s,s:o,s:o,s:o}", "name", t->name, "version", t->version, "doc",
                     t->summary ? t->summary : "", "stochastic", (t->flags & STAGE_STOCHASTIC) != 0, "source",
                     (t->flags & STAGE_SOURCE) != 0, "cohort", cohort, "params", params, "inputs",
                     ports_json(t->inputs, 1), "outputs", ports_json(t->outputs, 0));
}
