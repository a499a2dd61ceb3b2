#include "plan.h"
#include "error.h"
#include "filepattern.h"
#include "graph.h"

#include <stdlib.h>
#include <string.h>

void plan_free(stage_plan *p, int n)
{
    for (int i = 0; i < n; i++) {
        json_decref(p[i].params);
        json_decref(p[i].file_hashes);
        json_decref(p[i].input_fps);
        json_decref(p[i].attrs);
        sbuf_free(&p[i].reason);
    }
    free(p);
}

char *container_path(const config *c, const sample_info *s)
{
    return ss_asprintf("%s/%s.%s", c->output, s->id, c->store == STORE_ZARR ? "zarr" : "h5");
}

/* Whether there may be a container to open: the container, or for HDF5 its
 * stages folder without the index (opening rebuilds it from the stage
 * files; with none there, it is "no such container", as without a folder). */
int container_exists(const config *c, const char *path)
{
    if (path_exists(path)) return 1;
    if (c->store == STORE_ZARR) return 0;
    char *stages = ss_asprintf("%s.d/stages", path);
    int there = stages && path_is_dir(stages);
    free(stages);
    return there;
}

static void value_text(sbuf *b, const json_t *v)
{
    if (!v) {
        sbuf_put(b, "(none)");
        return;
    }
    char *t = canonical_json(v);
    sbuf_put(b, t);
    free(t);
}

/* Why a committed stage no longer matches: the first few differences. */
static void explain_stale(const config *c, int i, stage_plan *p, const stage_plan *all)
{
    const stage_decl *d = &c->stages[i];
    json_t *a = p->attrs;
    sbuf *r = &p->reason;
    int n = 0;
    const char *otype = json_string_value(json_object_get(a, "stage_type"));
    if (otype && strcmp(otype, d->type->name)) {
        sbuf_printf(r, "stage type changed (%s -> %s)", otype, d->type->name);
        return;
    }
    json_int_t over = json_integer_value(json_object_get(a, "stage_version"));
    if (over != d->type->version) {
        sbuf_printf(r, "stage version changed (%lld -> %d)", (long long)over, d->type->version);
        n++;
    }
    json_t *op = json_object_get(a, "params");
    const char *k;
    json_t *v;
    json_object_foreach(p->params, k, v)
    {
        json_t *ov = json_object_get(op, k);
        const json_t *fh = json_object_get(p->file_hashes, k);
        if (fh) continue; /* input files are compared by content below */
        char *x = canonical_json(v), *y = ov ? canonical_json(ov) : NULL;
        int differ = !y || strcmp(x, y);
        free(x);
        free(y);
        if (!differ) continue;
        if (n++ < 3) {
            sbuf_printf(r, "%sparameter %s changed (", n > 1 ? "; " : "", k);
            value_text(r, ov);
            sbuf_put(r, " -> ");
            value_text(r, v);
            sbuf_put(r, ")");
        }
    }
    json_t *ofiles = json_object_get(a, "input_files");
    json_object_foreach(p->file_hashes, k, v)
    {
        json_t *ov = json_object_get(json_object_get(ofiles, k), "hash");
        if (ov && !strcmp(json_string_value(ov), json_string_value(v))) continue;
        if (n++ < 3)
            sbuf_printf(r, "%sinput file %s changed (%s)", n > 1 ? "; " : "", k,
                        json_string_value(json_object_get(p->params, k)));
    }
    json_t *oin = json_object_get(a, "input_fingerprints");
    for (int q = 0; q < d->n_inputs; q++) {
        const stage_input *in = &d->inputs[q];
        if (q > 0 && !strcmp(d->inputs[q - 1].port, in->port)) continue; /* a list port, compared whole */
        char *nf = canonical_json(json_object_get(p->input_fps, in->port));
        json_t *ov = json_object_get(oin, in->port);
        char *of = ov ? canonical_json(ov) : NULL;
        int same = of && !strcmp(nf, of);
        free(nf);
        free(of);
        if (same) continue;
        if (n++ < 3) {
            const stage_plan *up = &all[in->stage_index];
            sbuf_printf(r, "%sinput %s changed (%s %s)", n > 1 ? "; " : "", in->port, in->stage,
                        up->act == ACT_RUN ? "reruns" : "was recomputed");
        }
    }
    if ((d->type->flags & STAGE_STOCHASTIC) &&
        json_integer_value(json_object_get(a, "seed")) != (json_int_t)c->seed && n++ < 3)
        sbuf_printf(r, "%sseed changed", n > 1 ? "; " : "");
    if (n == 0) sbuf_put(r, "fingerprint changed (sample voxel size or repeats)");
    else if (n > 3) sbuf_printf(r, "; and %d more changes", n - 3);
}

/* Compression does not change results, so it is no part of the fingerprint:
 * a reused stage keeps the compression it was written with. Stages committed
 * before the attribute existed were all blosc-lz4. */
static void note_kept_compression(const config *c, int i, stage_plan *sp)
{
    const char *was = json_string_value(json_object_get(sp->attrs, "compression"));
    const char *want = store_compression_name(c->compression);
    if (!was) was = store_compression_name(STORE_COMP_BLOSC_LZ4);
    if (strcmp(was, want))
        snprintf(sp->kept, sizeof sp->kept, "written with %s, kept (--force %s rewrites it with %s)", was,
                 c->stages[i].name, want);
}

int load_cache(store *st, json_t **cache)
{
    char *p = path_join(store_workdir(st), "inputs.json");
    *cache = path_exists(p) ? json_load_file(p, 0, NULL) : NULL;
    if (!json_is_object(*cache)) {
        json_decref(*cache);
        *cache = json_object();
    }
    free(p);
    return SS_OK;
}

void save_cache(store *st, json_t *cache)
{
    char *p = path_join(store_workdir(st), "inputs.json");
    char *text = json_dumps(cache, JSON_COMPACT | JSON_SORT_KEYS);
    if (p && text) fs_write_atomic(p, text, strlen(text)); /* a lost cache only costs a rehash */
    free(text);
    free(p);
}

static int stage_index_or_fail(const config *c, const char *name, const char *opt)
{
    int i = config_find_stage(c, name);
    if (i < 0) return ss_fail(SS_ERR_CONFIG, "%s %s: no stage of that name in %s", opt, name, c->path);
    return i;
}

int port_is_multiple(const stage_type *t, const char *port)
{
    for (const port_spec *p = t->inputs; p && p->name; p++)
        if (!strcmp(p->name, port)) return p->multiple;
    return 0;
}

static int cmp_strp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Appends "name<TAB>content hash" for one file; a missing file gives
 * "name<TAB>missing" when that is allowed, else the error. */
static int list_file(sbuf *all, const char *path, json_t *cache, int may_be_missing)
{
    const char *slash = strrchr(path, '/');
    char h[FP_HEX];
    if (may_be_missing && !path_exists(path)) {
        snprintf(h, sizeof h, "missing");
    } else {
        int rc = fp_hash_file(path, cache, h);
        if (rc != SS_OK) return rc;
    }
    sbuf_printf(all, "%s\t%s\n", slash ? slash + 1 : path, h);
    return SS_OK;
}

/* Content hash of every file a pattern names, found by the same expansion
 * the import reads them with (formats/filepattern.h), so the fingerprint
 * covers exactly the files read: the hash of the list of (file name,
 * content hash) in the expansion's order. */
static int hash_pattern(const char *pattern, json_t *cache, char out[FP_HEX])
{
    fpat_set fs;
    int rc = fpat_expand(pattern, &fs);
    if (rc != SS_OK) return rc;
    if (fs.n == 0) {
        fpat_free(&fs);
        return ss_fail(SS_ERR_INPUT, "%s: matches no file", pattern);
    }
    sbuf all = {0};
    for (size_t i = 0; i < fs.n && rc == SS_OK; i++) rc = list_file(&all, fs.files[i].path, cache, 0);
    fpat_free(&fs);
    if (rc == SS_OK) fp_hash_bytes(all.s, all.len, out);
    sbuf_free(&all);
    return rc;
}

/* A file and the members of its set (stage_type.companions): the hash of the
 * file's own line and then its members' lines in name order, each line a
 * file name and its content hash ("missing" for a member not there: its
 * arrival changes the hash too). */
static int hash_with_companions(const char *path, json_t *members, json_t *cache, char out[FP_HEX])
{
    size_t n = json_array_size(members);
    const char **v = calloc(n ? n : 1, sizeof *v);
    if (!v) return ss_fail(SS_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *m = json_string_value(json_array_get(members, i));
        if (m && strcmp(m, path)) v[k++] = m;
    }
    qsort(v, k, sizeof *v, cmp_strp);
    sbuf all = {0};
    int rc = list_file(&all, path, cache, 0);
    for (size_t i = 0; i < k && rc == SS_OK; i++)
        if (i == 0 || strcmp(v[i], v[i - 1])) rc = list_file(&all, v[i], cache, 1);
    if (rc == SS_OK) fp_hash_bytes(all.s, all.len, out);
    sbuf_free(&all);
    free(v);
    return rc;
}

/* The committed fingerprint and attributes of a stage, where st has it
 * committed; 1 when they cannot be read. */
static int read_committed(store *st, const char *stage, stage_plan *sp)
{
    if (!st || store_has_stage(st, stage) != 1) return 0;
    if (store_stage_attrs(st, stage, &sp->attrs) != SS_OK) return 1;
    const char *cf = json_string_value(json_object_get(sp->attrs, "fingerprint"));
    if (cf) {
        sp->committed = 1;
        snprintf(sp->committed_fp, FP_HEX, "%s", cf);
    }
    return 0;
}

/* An input's fingerprint under its port (a list for a port taking several). */
static void add_input_fp(stage_plan *sp, const stage_type *t, const char *port, json_t *fp)
{
    if (port_is_multiple(t, port)) {
        json_t *arr = json_object_get(sp->input_fps, port);
        if (!arr) json_object_set_new(sp->input_fps, port, arr = json_array());
        json_array_append_new(arr, fp);
    } else {
        json_object_set_new(sp->input_fps, port, fp);
    }
}

int plan_entry_ready(const stage_plan *p)
{
    if (p->cohort) return p->ready;
    return !p->error && !p->waiting && (p->act == ACT_REUSE || (p->act == ACT_SKIP && p->committed));
}

/* A cohort stage in a sample's plan: not run with the sample; its
 * fingerprint is the cohort plan's. */
static void plan_cohort_entry(const config *c, int i, const stage_plan *cohort, stage_plan *sp)
{
    sp->cohort = 1;
    sp->act = ACT_SKIP;
    sp->file_hashes = json_object();
    sp->input_fps = json_object();
    const stage_plan *cp = cohort ? &cohort[i] : NULL;
    if (cp && cp->fp[0]) {
        memcpy(sp->fp, cp->fp, FP_HEX);
        sp->error = cp->error;
        sp->ready = cp->ready;
        sp->from_archive = cp->from_archive;
        sp->waiting = !cp->ready;
    } else {
        snprintf(sp->fp, FP_HEX, "not-planned");
        sp->waiting = 1;
    }
    if (sp->waiting) snprintf(sp->waits_for, sizeof sp->waits_for, "%s", c->stages[i].name);
    sbuf_put(&sp->reason, "cohort stage (runs once for the run)");
}

store *archive_for(const archive_set *as, const char *id)
{
    for (int i = 0; as && i < as->n; i++)
        if (!strcmp(as->id[i], id)) return as->st[i];
    return NULL;
}

/* Whether the archive holds stage `stage` as planned (its fingerprint) and intact. */
static int archive_has(store *archive, const char *stage, const char *fp)
{
    json_t *a = NULL;
    int ok = archive && store_has_stage(archive, stage) == 1 && store_stage_attrs(archive, stage, &a) == SS_OK &&
             json_is_string(json_object_get(a, "fingerprint")) &&
             !strcmp(json_string_value(json_object_get(a, "fingerprint")), fp) &&
             store_stage_check(archive, stage) == SS_OK;
    json_decref(a);
    ss_errclear();
    return ok;
}

int plan_sample(const config *c, const sample_info *s, store *st, store *archive, const run_options *o,
                const int *order, const stage_plan *cohort, json_t *hash_cache, stage_plan **out)
{
    int n = c->n_stages;
    stage_plan *p = calloc((size_t)n, sizeof *p);
    unsigned char *forced = calloc((size_t)n, 1), *below = calloc((size_t)n, 1);
    /* redo_from[i]: a damaged stage that i reads, directly or not, or -1 */
    int *redo_from = malloc((size_t)(n ? n : 1) * sizeof *redo_from);
    for (int i = 0; i < n && redo_from; i++) redo_from[i] = -1;
    int rc = p && forced && below && redo_from ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) p[i].selected = o->n_only == 0;
    for (int k = 0; k < o->n_only && rc == SS_OK; k++) {
        int i = stage_index_or_fail(c, o->only[k], "--stages");
        if (i < 0) rc = i;
        else p[i].selected = 1;
    }
    for (int k = 0; k < o->n_force && rc == SS_OK; k++) {
        int i = stage_index_or_fail(c, o->force[k], "--force");
        if (i < 0) rc = i;
        else graph_mark_dependants(c, i, forced);
    }
    for (int oi = 0; oi < n && rc == SS_OK; oi++) {
        int i = order[oi];
        const stage_decl *d = &c->stages[i];
        stage_plan *sp = &p[i];
        if (d->cohort) {
            plan_cohort_entry(c, i, cohort, sp);
            continue;
        }
        sp->file_hashes = json_object();
        sp->input_fps = json_object();
        if ((rc = config_stage_params(c, i, s, &sp->params)) != SS_OK) break;
        for (const param_spec *ps = d->type->params; ps && ps->name; ps++) {
            if (!(ps->flags & (PARAM_INPUT_FILE | PARAM_INPUT_GLOB))) continue;
            const char *path = json_string_value(json_object_get(sp->params, ps->name));
            if (!path) continue;
            char h[FP_HEX];
            int hrc = ps->flags & PARAM_INPUT_GLOB ? hash_pattern(path, hash_cache, h) : fp_hash_file(path, hash_cache, h);
            if (hrc == SS_OK && (ps->flags & PARAM_INPUT_FILE) && d->type->companions) {
                json_t *members = d->type->companions(sp->params, ps->name, path);
                if (json_array_size(members)) hrc = hash_with_companions(path, members, hash_cache, h);
                json_decref(members);
            }
            if (hrc != SS_OK && (ps->flags & PARAM_INPUT_GLOB)) {
                /* The stage knows its pattern syntax and says best what is
                 * wrong with one that matches nothing: let it run and say so. */
                snprintf(h, sizeof h, "unmatched");
                hrc = SS_OK;
            }
            if (hrc != SS_OK) {
                sp->error = 1;
                sbuf_put(&sp->reason, ss_errmsg());
                break;
            }
            json_object_set_new(sp->file_hashes, ps->name, json_string(h));
        }
        int upstream_error = -1;
        for (int q = 0; q < d->n_inputs; q++) {
            const stage_plan *up = &p[d->inputs[q].stage_index];
            if (up->error && upstream_error < 0) upstream_error = d->inputs[q].stage_index;
            add_input_fp(sp, d->type, d->inputs[q].port, json_string(up->fp));
        }
        if (upstream_error >= 0 && !sp->error) {
            sp->error = 1;
            sbuf_printf(&sp->reason, "%s stage %s cannot run", c->stages[upstream_error].cohort ? "cohort" : "input",
                        c->stages[upstream_error].name);
        }
        json_t *basis = fp_basis(d->type, sp->params, sp->input_fps, sp->file_hashes, s, c->seed);
        fp_of_basis(basis, sp->fp);
        json_decref(basis);
        int unreadable = read_committed(st, d->name, sp);
        if (sp->error) {
            sp->act = ACT_RUN;
            continue;
        }
        if (!sp->selected) {
            sp->act = ACT_SKIP;
            if (sp->committed) {
                /* Downstream stages read what is committed. */
                if (strcmp(sp->fp, sp->committed_fp)) sbuf_put(&sp->reason, "not selected (stale)");
                memcpy(sp->fp, sp->committed_fp, FP_HEX);
            } else {
                sbuf_put(&sp->reason, "not selected (no committed output)");
            }
            continue;
        }
        for (int q = 0; q < d->n_inputs; q++) {
            const stage_plan *up = &p[d->inputs[q].stage_index];
            if (up->act == ACT_SKIP && !up->committed && !up->cohort) {
                rc = ss_fail(SS_ERR_CONFIG, "sample %s: stage '%s' reads '%s', which has no committed output; add %s to --stages",
                             s->id, d->name, d->inputs[q].stage, d->inputs[q].stage);
                break;
            }
        }
        if (rc != SS_OK) break;
        /* A committed stage is reused only when intact: every array and
         * table it recorded is there with its metadata and every chunk
         * (no chunk is decoded: reading verifies content, and verify does
         * it all). Its dependants may have read damaged values, so they
         * are recomputed with it. */
        int reusable = sp->committed && !strcmp(sp->fp, sp->committed_fp);
        if (unreadable) sp->damaged = 1;
        if (reusable && !forced[i] && store_stage_check(st, d->name) != SS_OK) {
            sp->damaged = 1;
            reusable = 0;
            sbuf_printf(&sp->reason, "committed output is damaged: %s", ss_errmsg());
            memset(below, 0, (size_t)n);
            graph_mark_dependants(c, i, below);
            for (int j = 0; j < n; j++)
                if (below[j] && j != i && redo_from[j] < 0) redo_from[j] = i;
        }
        if (forced[i]) {
            sp->act = ACT_RUN;
            sbuf_put(&sp->reason, "forced");
        } else if (sp->damaged && !unreadable) {
            sp->act = ACT_RUN;
        } else if (reusable && redo_from[i] >= 0) {
            sp->act = ACT_RUN;
            sbuf_printf(&sp->reason, "input stage %s was damaged (it is recomputed)", c->stages[redo_from[i]].name);
        } else if (reusable) {
            sp->act = ACT_REUSE;
            sbuf_put(&sp->reason, "fingerprint matches");
            note_kept_compression(c, i, sp);
            if (sp->kept[0]) sbuf_printf(&sp->reason, "; %s", sp->kept);
        } else {
            sp->act = ACT_RUN;
            if (unreadable) sbuf_printf(&sp->reason, "committed output is unreadable (%s)", ss_errmsg());
            else if (!sp->committed) sbuf_put(&sp->reason, "no committed output");
            else explain_stale(c, i, sp, p);
        }
        if (sp->act == ACT_RUN && !forced[i] && redo_from[i] < 0 && archive_has(archive, d->name, sp->fp)) {
            sp->act = ACT_REUSE;
            sp->from_archive = 1;
            sbuf_free(&sp->reason);
            sbuf_printf(&sp->reason, "fingerprint matches the archive's (read from %s)", store_path(archive));
        }
        for (int q = 0; q < d->n_inputs && sp->act == ACT_RUN && !sp->waiting; q++) {
            const stage_plan *up = &p[d->inputs[q].stage_index];
            if (!up->waiting) continue;
            sp->waiting = 1;
            memcpy(sp->waits_for, up->waits_for, sizeof sp->waits_for);
        }
    }
    free(forced);
    free(below);
    free(redo_from);
    if (rc != SS_OK) {
        plan_free(p, n);
        return rc;
    }
    *out = p;
    return SS_OK;
}

/* The fingerprints a cohort stage reads on one port reference: one per
 * sample, by id (or the cohort stage's own, for a cohort input). */
static json_t *cohort_input_fps(const config *c, int i, int j, stage_plan *const *samples, const stage_plan *cohort,
                                int *ready, int *error, sbuf *why)
{
    if (c->stages[j].cohort) {
        *ready &= cohort[j].ready;
        *error |= cohort[j].error;
        if (!cohort[j].ready && !why->len) sbuf_printf(why, "cohort stage %s is not ready", c->stages[j].name);
        return json_string(cohort[j].fp);
    }
    json_t *o = json_object();
    int n = config_cohort_n(c, i);
    for (int k = 0; k < n; k++) {
        int si = config_cohort_sample(c, i, k);
        const stage_plan *sp = samples[si] ? &samples[si][j] : NULL;
        if (!sp) {
            *ready = 0;
            *error = 1;
            json_object_set_new(o, c->samples[si].id, json_string("not-planned"));
            continue;
        }
        json_object_set_new(o, c->samples[si].id, json_string(sp->fp));
        if (sp->error) *error = 1;
        if (!plan_entry_ready(sp)) {
            if (*ready && !why->len)
                sbuf_printf(why, "sample %s: %s %s", c->samples[si].id, c->stages[j].name,
                            sp->error ? "cannot run" : sp->waiting ? "waits for a cohort stage" : "is not done yet");
            *ready = 0;
        }
    }
    return o;
}

/* Why a committed cohort stage no longer matches: samples added, gone or
 * with changed inputs, or another parameter, type or version. */
static void list_ids(sbuf *r, const char *what, json_t *ids)
{
    size_t n = json_object_size(ids);
    if (!n) return;
    sbuf_printf(r, "%s%s%s ", r->len ? "; " : "", what, n > 1 ? "s" : "");
    const char *id;
    json_t *v;
    int k = 0;
    json_object_foreach(ids, id, v) sbuf_printf(r, "%s%s", k++ ? ", " : "", id);
}

static void explain_cohort_stale(const stage_decl *d, stage_plan *sp)
{
    json_t *old = json_object_get(sp->attrs, "input_fingerprints");
    json_t *added = json_object(), *gone = json_object(), *changed = json_object();
    const char *port;
    json_t *now;
    json_object_foreach(sp->input_fps, port, now)
    {
        json_t *was = json_object_get(old, port);
        size_t n = json_is_array(now) ? json_array_size(now) : 1;
        for (size_t r = 0; r < n; r++) {
            json_t *a = json_is_array(now) ? json_array_get(now, r) : now;
            json_t *b = json_is_array(was) ? json_array_get(was, r) : was;
            if (!json_is_object(a)) continue; /* a cohort input: its own stage explains */
            const char *id;
            json_t *fp;
            json_object_foreach(a, id, fp)
            {
                json_t *bf = json_object_get(b, id);
                if (!bf) json_object_set(added, id, json_true());
                else if (!json_equal(bf, fp)) json_object_set(changed, id, json_true());
            }
            json_object_foreach(b, id, fp)
                if (!json_object_get(a, id)) json_object_set(gone, id, json_true());
        }
    }
    list_ids(&sp->reason, "new sample", added);
    list_ids(&sp->reason, "no longer reads sample", gone);
    list_ids(&sp->reason, "changed inputs of sample", changed);
    if (!sp->reason.len) {
        const char *ot = json_string_value(json_object_get(sp->attrs, "stage_type"));
        if (ot && strcmp(ot, d->type->name)) sbuf_printf(&sp->reason, "stage type changed (%s -> %s)", ot, d->type->name);
        else sbuf_put(&sp->reason, "parameters, version or seed changed");
    }
    json_decref(added);
    json_decref(gone);
    json_decref(changed);
}

int plan_cohort_stage(const config *c, int i, stage_plan *const *samples, store *cst, store *archive,
                      const run_options *o,
                      stage_plan *cohort)
{
    const stage_decl *d = &c->stages[i];
    stage_plan *sp = &cohort[i];
    json_decref(sp->params);
    json_decref(sp->file_hashes);
    json_decref(sp->input_fps);
    json_decref(sp->attrs);
    sbuf_free(&sp->reason);
    memset(sp, 0, sizeof *sp);
    sp->cohort = 1;
    sp->file_hashes = json_object();
    sp->input_fps = json_object();
    int rc = config_stage_params(c, i, NULL, &sp->params);
    if (rc != SS_OK) return rc;
    sp->selected = o->n_only == 0;
    for (int k = 0; k < o->n_only; k++) sp->selected |= !strcmp(o->only[k], d->name);
    unsigned char *forced = calloc((size_t)c->n_stages, 1);
    if (!forced) return ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int k = 0; k < o->n_force; k++) {
        int f = config_find_stage(c, o->force[k]);
        if (f >= 0) graph_mark_dependants(c, f, forced);
    }
    int is_forced = forced[i];
    free(forced);
    int inputs_ready = 1;
    sbuf why = {0};
    for (int q = 0; q < d->n_inputs; q++) {
        int j = d->inputs[q].stage_index;
        add_input_fp(sp, d->type, d->inputs[q].port,
                     cohort_input_fps(c, i, j, samples, cohort, &inputs_ready, &sp->error, &why));
    }
    json_t *basis = fp_basis(d->type, sp->params, sp->input_fps, sp->file_hashes, NULL, c->seed);
    fp_of_basis(basis, sp->fp);
    json_decref(basis);
    int unreadable = read_committed(cst, d->name, sp);
    int current = sp->committed && !strcmp(sp->fp, sp->committed_fp);
    if (sp->error) {
        sp->act = ACT_RUN;
        sbuf_printf(&sp->reason, "an upstream stage cannot run (%s)", sbuf_str(&why));
    } else if (!sp->selected) {
        sp->act = ACT_SKIP;
        if (sp->committed) memcpy(sp->fp, sp->committed_fp, FP_HEX);
        sbuf_put(&sp->reason, sp->committed ? (current ? "not selected" : "not selected (stale)")
                                            : "not selected (no committed output)");
    } else if (current && !is_forced && store_stage_check(cst, d->name) == SS_OK) {
        sp->act = ACT_REUSE;
        sbuf_put(&sp->reason, "fingerprint matches");
    } else {
        sp->act = ACT_RUN;
        if (is_forced) sbuf_put(&sp->reason, "forced");
        else if (current) sbuf_printf(&sp->reason, "committed output is damaged: %s", ss_errmsg());
        else if (unreadable) sbuf_printf(&sp->reason, "committed output is unreadable (%s)", ss_errmsg());
        else if (!sp->committed) sbuf_put(&sp->reason, "no committed output");
        else explain_cohort_stale(d, sp);
    }
    if (sp->act == ACT_RUN && !sp->error && !is_forced && archive_has(archive, d->name, sp->fp)) {
        sp->act = ACT_REUSE;
        sp->from_archive = 1;
        sbuf_free(&sp->reason);
        sbuf_printf(&sp->reason, "fingerprint matches the archive's (read from %s)", store_path(archive));
    }
    sp->ready = !sp->error && (sp->act == ACT_REUSE || (sp->act == ACT_SKIP && sp->committed));
    if (sp->act == ACT_RUN && !sp->error && !inputs_ready) {
        sp->waiting = 1;
        snprintf(sp->waits_for, sizeof sp->waits_for, "%s", sbuf_str(&why));
        sbuf_printf(&sp->reason, "; waits: %s", sbuf_str(&why));
    }
    sbuf_free(&why);
    return SS_OK;
}
