/* Runs the metrics stage on a committed container with inputs that no
 * registered stage makes yet: a plane mask (KIND_MASK, as interplane stages
 * will write it) and a spines table (KIND_TABLE, as stage synth will write
 * it). Both are committed through the store API as stages of their own, then
 * the stage runs through the same stage_ctx the runner gives it and commits.
 * check_mask_spines.py drives it.
 *
 * usage: metrics_harness CONTAINER OUT REFERENCE METHOD[,METHOD...]
 *                        [--array STAGE:Z,Y,X:FILE]... [--voxel Z,Y,X]
 *                        [--mask 0110...] [--mask-rank2]
 *                        [--spines FILE] [--spines-column NAME]
 *                        [--param NAME=JSON]...
 *   CONTAINER: an HDF5 container (made if missing)
 *   REFERENCE, METHOD: stage.array of the container
 *   --array: commits raw float32 FILE as stage STAGE, array "img" (ZYX, with
 *            the --voxel size, default none), before anything else
 *   --mask: one digit per plane, committed as OUT_mask/mask (uint8)
 *   --mask-rank2: commit the mask with shape 1 x Z instead (a bad mask)
 *   --spines FILE: lines "z y x radius_um", committed as OUT_spines/spines
 *                  with columns id, dendrite, z, y, x, radius_um
 *   --spines-column NAME: call the radius_um column NAME instead
 * Exit status: 0, or the stage's error status with its message on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "progress.h"
#include "stage.h"
#include "stage_ctx.h"

static int commit_mask(store *st, const char *stage, const char *digits, int rank2)
{
    int64_t n = (int64_t)strlen(digits);
    uint8_t *v = malloc((size_t)n + 1);
    if (!v) return ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) v[i] = (uint8_t)(digits[i] - '0');
    store_writer *w;
    store_array *a = NULL;
    int64_t shape1[1] = {n}, shape2[2] = {1, n}, st1[2] = {0, 0};
    int rc = store_stage_begin(st, stage, &w);
    if (rc == SS_OK) {
        rc = store_writer_array(w, "mask", DT_U8, rank2 ? 2 : 1, rank2 ? shape2 : shape1, NULL, NULL, &a);
        if (rc == SS_OK) rc = store_array_write(a, st1, rank2 ? shape2 : shape1, DT_U8, v);
        store_array_close(a);
        if (rc == SS_OK) rc = store_commit_stage(w);
        else store_abort_stage(w);
    }
    free(v);
    return rc;
}

static int commit_array(store *st, const char *spec, const double *voxel)
{
    char stage[128];
    long long z, y, x;
    int used = 0;
    if (sscanf(spec, "%127[^:]:%lld,%lld,%lld:%n", stage, &z, &y, &x, &used) != 4 || !used)
        return ss_fail(SS_ERR_USAGE, "bad --array %s", spec);
    const char *path = spec + used;
    size_t n = (size_t)(z * y * x);
    float *v = malloc(n * sizeof *v);
    FILE *f = fopen(path, "rb");
    int rc = v && f && fread(v, sizeof *v, n, f) == n ? SS_OK : ss_fail(SS_ERR_INPUT, "%s: cannot read", path);
    if (f) fclose(f);
    array_meta m = {.axes = "zyx", .unit = "micrometer"};
    if (voxel) memcpy(m.voxel, voxel, sizeof m.voxel);
    int64_t shape[3] = {z, y, x}, st0[3] = {0, 0, 0};
    store_writer *w;
    store_array *a = NULL;
    if (rc == SS_OK && (rc = store_stage_begin(st, stage, &w)) == SS_OK) {
        rc = store_writer_array(w, "img", DT_F32, 3, shape, NULL, voxel ? &m : NULL, &a);
        if (rc == SS_OK) rc = store_array_write(a, st0, shape, DT_F32, v);
        store_array_close(a);
        if (rc == SS_OK) rc = store_commit_stage(w);
        else store_abort_stage(w);
    }
    free(v);
    return rc;
}

static int commit_spines(store *st, const char *stage, const char *path, const char *radius_name)
{
    FILE *f = fopen(path, "r");
    if (!f) return ss_fail(SS_ERR_INPUT, "%s: cannot open", path);
    int64_t n = 0, cap = 16;
    double *c[4];
    int64_t *id = malloc((size_t)cap * sizeof *id), *den = malloc((size_t)cap * sizeof *den);
    for (int i = 0; i < 4; i++) c[i] = malloc((size_t)cap * sizeof(double));
    double z, y, x, r;
    while (fscanf(f, "%lf %lf %lf %lf", &z, &y, &x, &r) == 4) {
        if (n == cap) {
            cap *= 2;
            id = realloc(id, (size_t)cap * sizeof *id);
            den = realloc(den, (size_t)cap * sizeof *den);
            for (int i = 0; i < 4; i++) c[i] = realloc(c[i], (size_t)cap * sizeof(double));
        }
        id[n] = n;
        den[n] = 0;
        c[0][n] = z, c[1][n] = y, c[2][n] = x, c[3][n] = r;
        n++;
    }
    fclose(f);
    table_col cols[6] = {
        {.name = "id", .type = COL_I64, .i64 = id},      {.name = "dendrite", .type = COL_I64, .i64 = den},
        {.name = "z", .type = COL_F64, .f64 = c[0]},     {.name = "y", .type = COL_F64, .f64 = c[1]},
        {.name = "x", .type = COL_F64, .f64 = c[2]},     {.name = radius_name, .type = COL_F64, .f64 = c[3]},
    };
    table_view tv = {.n_cols = 6, .n_rows = n, .cols = cols};
    store_writer *w;
    int rc = store_stage_begin(st, stage, &w);
    if (rc == SS_OK) {
        rc = store_writer_table(w, "spines", &tv);
        if (rc == SS_OK) rc = store_commit_stage(w);
        else store_abort_stage(w);
    }
    free(id);
    free(den);
    for (int i = 0; i < 4; i++) free(c[i]);
    return rc;
}

/* The parameters as the config loader leaves them: every declared one, with
 * its default unless given. */
static json_t *params_for(const stage_type *t, json_t *given)
{
    json_t *p = json_object();
    for (const param_spec *s = t->params; s->name; s++) {
        json_t *v = json_object_get(given, s->name);
        json_object_set_new(p, s->name, v ? json_incref(v) : json_loads(s->def, JSON_DECODE_ANY, NULL));
    }
    return p;
}

static void add_input(stage_decl *d, const char *port, const char *ref)
{
    const char *dot = strchr(ref, '.');
    stage_input *in = &d->inputs[d->n_inputs++];
    in->port = strdup(port);
    in->stage = dot ? strndup(ref, (size_t)(dot - ref)) : strdup(ref);
    in->output = strdup(dot ? dot + 1 : "");
    in->stage_index = -1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: metrics_harness CONTAINER OUT REFERENCE METHOD[,METHOD...] [options]\n");
        return 64;
    }
    const char *container = argv[1], *out = argv[2], *mask = NULL, *spines = NULL, *radius_name = "radius_um";
    const char *arrays[16];
    int rank2 = 0, n_arrays = 0, has_voxel = 0;
    double voxel[3];
    json_t *given = json_object();
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--mask") && i + 1 < argc) mask = argv[++i];
        else if (!strcmp(argv[i], "--array") && i + 1 < argc && n_arrays < 16) arrays[n_arrays++] = argv[++i];
        else if (!strcmp(argv[i], "--voxel") && i + 1 < argc)
            has_voxel = sscanf(argv[++i], "%lf,%lf,%lf", &voxel[0], &voxel[1], &voxel[2]) == 3;
        else if (!strcmp(argv[i], "--spines-column") && i + 1 < argc) radius_name = argv[++i];
        else if (!strcmp(argv[i], "--mask-rank2")) rank2 = 1;
        else if (!strcmp(argv[i], "--spines") && i + 1 < argc) spines = argv[++i];
        else if (!strcmp(argv[i], "--param") && i + 1 < argc) {
            char *eq = strchr(argv[++i], '=');
            if (!eq) return 64;
            *eq = 0;
            json_object_set_new(given, argv[i], json_loads(eq + 1, JSON_DECODE_ANY, NULL));
        } else {
            fprintf(stderr, "metrics_harness: unknown argument %s\n", argv[i]);
            return 64;
        }
    }
    const stage_type *t = stage_type_find("metrics");
    store *st = NULL;
    int rc = store_open(container, STORE_HDF5, 1, &st);
    if (rc == SS_OK) rc = store_lock(st);
    if (rc == SS_OK) rc = store_recover(st);
    for (int i = 0; i < n_arrays && rc == SS_OK; i++) rc = commit_array(st, arrays[i], has_voxel ? voxel : NULL);
    char mask_stage[128], spines_stage[128];
    snprintf(mask_stage, sizeof mask_stage, "%s_mask", out);
    snprintf(spines_stage, sizeof spines_stage, "%s_spines", out);
    if (rc == SS_OK && mask) rc = commit_mask(st, mask_stage, mask, rank2);
    if (rc == SS_OK && spines) rc = commit_spines(st, spines_stage, spines, radius_name);

    stage_decl d = {.name = (char *)out, .type = t, .params = params_for(t, given)};
    d.inputs = calloc(1024, sizeof *d.inputs);
    add_input(&d, "reference", argv[3]);
    char *methods = strdup(argv[4]);
    for (char *save = NULL, *m = strtok_r(methods, ",", &save); m && d.n_inputs < 1000; m = strtok_r(NULL, ",", &save))
        add_input(&d, "methods", m);
    char ref[256];
    if (mask) snprintf(ref, sizeof ref, "%s.mask", mask_stage), add_input(&d, "mask", ref);
    if (spines) snprintf(ref, sizeof ref, "%s.spines", spines_stage), add_input(&d, "spines", ref);
    config cfg = {.stages = &d, .n_stages = 1, .seed = 1};
    sample_info sample = {.id = "s1"};
    reporter *rep = reporter_new(0, 1e9, NULL, 0);
    stage_ctx ctx = {.cfg = &cfg, .stage = 0, .sample = &sample, .params = d.params, .st = st, .k = kernels_cpu(),
                     .rep = rep, .threads = 1};
    snprintf(ctx.label, sizeof ctx.label, "s1/%s", out);
    if (rc == SS_OK) rc = store_stage_begin(st, out, &ctx.w);
    if (rc == SS_OK) {
        rc = t->run(&ctx);
        progress_end(rep);
        if (rc == SS_OK && ctx.extra_attrs) {
            const char *key;
            json_t *v;
            json_object_foreach(ctx.extra_attrs, key, v) if (rc == SS_OK) rc = store_writer_attr(ctx.w, key, v);
        }
        if (rc == SS_OK) rc = store_commit_stage(ctx.w);
        else store_abort_stage(ctx.w);
    }
    if (rc != SS_OK) fprintf(stderr, "error: %s\n", ss_errmsg());
    json_decref(ctx.extra_attrs);
    reporter_free(rep);
    for (int i = 0; i < d.n_inputs; i++) free(d.inputs[i].port), free(d.inputs[i].stage), free(d.inputs[i].output);
    free(d.inputs);
    free(methods);
    json_decref(d.params);
    json_decref(given);
    store_close(st);
    return ss_exit_status(rc);
}
