#include "runner.h"
#include "plan.h"
#include "error.h"
#include "filepattern.h"
#include "fingerprint.h"
#include "graph.h"
#include "provenance.h"
#include "stage_ctx.h"
#include "ss_build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <cblas.h>

volatile sig_atomic_t runner_cancel_requested;

static void on_signal(int sig)
{
    runner_cancel_requested = 1;
    /* A second signal ends the process at once. */
    signal(sig, SIG_DFL);
}

void runner_install_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Samples selected by --sample / --array-index, as indices. */
static int select_samples(const config *c, const run_options *o, int **idx, int *n)
{
    *idx = calloc((size_t)c->n_samples + 1, sizeof **idx);
    *n = 0;
    if (o->array_index >= 0) {
        if (o->array_index >= c->n_samples)
            return ss_fail(SS_ERR_CONFIG, "--array-index %ld: the config has %d samples (indices 0 to %d)",
                           o->array_index, c->n_samples, c->n_samples - 1);
        (*idx)[(*n)++] = (int)o->array_index;
        if (o->sample && strcmp(o->sample, c->samples[o->array_index].id))
            return ss_fail(SS_ERR_CONFIG, "--sample %s and --array-index %ld name different samples", o->sample,
                           o->array_index);
        return SS_OK;
    }
    for (int i = 0; i < c->n_samples; i++)
        if (!o->sample || !strcmp(o->sample, c->samples[i].id)) (*idx)[(*n)++] = i;
    if (o->sample && *n == 0) return ss_fail(SS_ERR_CONFIG, "--sample %s: no sample of that id in %s", o->sample, c->path);
    return SS_OK;
}

static char *status_path(store *st, const char *stage, const char *ext)
{
    return ss_asprintf("%s/status/%s.%s", store_workdir(st), stage, ext);
}

static void write_status(store *st, const char *stage, const char *ext, json_t *content)
{
    char *dir = ss_asprintf("%s/status", store_workdir(st));
    fs_mkdir_p(dir);
    free(dir);
    char *p = status_path(st, stage, ext);
    char *text = json_dumps(content, JSON_COMPACT | JSON_SORT_KEYS);
    if (p && text) fs_write_atomic(p, text, strlen(text));
    free(text);
    free(p);
    json_decref(content);
}

static void remove_status(store *st, const char *stage, const char *ext)
{
    char *p = status_path(st, stage, ext);
    if (p) unlink(p);
    free(p);
}

static const kernels *pick_kernels(const config *c, const run_options *o, int *rc)
{
    *rc = SS_OK;
    const char *dev = o->device;
    run_device d = c->device;
    if (dev) d = !strcmp(dev, "cpu") ? DEVICE_CPU : !strcmp(dev, "cuda") ? DEVICE_CUDA : DEVICE_AUTO;
    const kernels *cu = d == DEVICE_CPU ? NULL : kernels_cuda();
    if (d == DEVICE_CUDA && !cu) {
        *rc = ss_fail(SS_ERR_CONFIG, "device cuda was requested, but %s",
                      SS_HAVE_CUDA ? "no CUDA device is usable" : "this build has no CUDA kernels (nvcc was not found)");
        return NULL;
    }
    return cu ? cu : kernels_cpu();
}

/* The config file (and manifest) of this run, as read when it started: each
 * committed stage names them by content hash, and the container's work
 * folder keeps the texts (configs/<hash>.yaml, .tsv), for pack. */
static struct {
    char config[FP_HEX], manifest[FP_HEX];
    char *config_text, *manifest_text;
    size_t config_len, manifest_len;
} run_texts;

static void texts_load(const config *c)
{
    free(run_texts.config_text);
    free(run_texts.manifest_text);
    memset(&run_texts, 0, sizeof run_texts);
    if (fs_read_all(c->path, &run_texts.config_text, &run_texts.config_len) == SS_OK)
        fp_hash_bytes(run_texts.config_text, run_texts.config_len, run_texts.config);
    if (c->manifest && fs_read_all(c->manifest, &run_texts.manifest_text, &run_texts.manifest_len) == SS_OK)
        fp_hash_bytes(run_texts.manifest_text, run_texts.manifest_len, run_texts.manifest);
    ss_errclear();
}

static void texts_keep(store *st)
{
    char *dir = ss_asprintf("%s/configs", store_workdir(st));
    if (!dir || fs_mkdir_p(dir) != SS_OK) {
        free(dir);
        return;
    }
    const char *hash[2] = {run_texts.config, run_texts.manifest}, *ext[2] = {"yaml", "tsv"};
    const char *text[2] = {run_texts.config_text, run_texts.manifest_text};
    size_t len[2] = {run_texts.config_len, run_texts.manifest_len};
    for (int k = 0; k < 2; k++) {
        if (!hash[k][0]) continue;
        char *p = ss_asprintf("%s/%s.%s", dir, hash[k], ext[k]);
        if (p && !path_exists(p)) fs_write_atomic(p, text[k], len[k]); /* a lost copy only leaves pack without it */
        free(p);
    }
    free(dir);
}

/* What a stage sees of the rest of the run: the cohort plan (NULL when the
 * config has none) and the cohort container its stages read from; every
 * sample's plan (for a cohort stage's reads from the samples' archives). */
typedef struct {
    stage_plan *plan;
    store *st;
    stage_plan **splans;
} cohort_view;

/* run --from: the archives, by sample id */
static archive_set run_archives;

static int run_stage(const config *c, int i, const sample_info *s, store *st, const cohort_view *cv,
                     const stage_plan *plan, stage_plan *sp,
                     const kernels *k, int threads, reporter *rep)
{
    const stage_decl *d = &c->stages[i];
    char started[32];
    ss_utc_iso8601(started);
    double t0 = ss_now();
    write_status(st, d->name, "running",
                 json_pack("{s:i,s:s,s:s,s:s}", "pid", (int)getpid(), "host", ss_hostname(), "started", started,
                           "fingerprint", sp->fp));
    report_event(rep, "stage_start", json_pack("{s:s,s:s,s:s,s:s}", "sample", s->id, "stage", d->name, "type",
                                               d->type->name, "reason", sbuf_str(&sp->reason)));
    ss_crashpoint("runner.stage_start");
    texts_keep(st);
    stage_ctx ctx = {
        .cfg = c, .stage = i, .sample = s, .params = sp->params, .st = st, .in_st = d->cohort ? NULL : st,
        .cohort_st = cv ? cv->st : NULL, .k = k, .rep = rep, .threads = threads, .plan = plan,
        .splans = cv ? cv->splans : NULL, .archives = &run_archives,
        .archive_st = d->cohort ? NULL : archive_for(&run_archives, s->id),
    };
    snprintf(ctx.label, sizeof ctx.label, "%s/%s", s->id, d->name);
    /* A stable per-(seed, sample, stage) stream. */
    char seedtext[512];
    snprintf(seedtext, sizeof seedtext, "%llu/%s/%s", (unsigned long long)c->seed, s->id, d->name);
    char h[FP_HEX];
    fp_hash_bytes(seedtext, strlen(seedtext), h);
    ctx.seed = strtoull(h + 16, NULL, 16);
    char *ckdir = ss_asprintf("%s/ckpt", store_workdir(st));
    char *ckpath = ss_asprintf("%s/%s.ckpt", ckdir, d->name);
    int rc = fs_mkdir_p(ckdir);
    if (rc == SS_OK) rc = checkpoint_new(ckpath, sp->fp, c->checkpoint_steps, c->checkpoint_seconds, &ctx.ckpt);
    if (rc == SS_OK) rc = store_stage_begin(st, d->name, &ctx.w);
    if (rc == SS_OK && d->cohort) rc = ctx_select_sample(&ctx, 0);
    if (rc == SS_OK) {
        rc = d->type->run(&ctx);
        progress_end(rep);
    }
    ctx_release(&ctx);
    char finished[32];
    ss_utc_iso8601(finished);
    double secs = ss_now() - t0;
    if (rc == SS_OK) {
        json_t *files = json_object();
        const char *key;
        json_t *v;
        json_object_foreach(sp->file_hashes, key, v)
            json_object_set_new(files, key, json_pack("{s:O,s:O}", "path", json_object_get(sp->params, key), "hash", v));
        json_t *refs = json_object();
        for (int q = 0; q < d->n_inputs; q++) {
            json_t *r = json_sprintf("%s.%s", d->inputs[q].stage, d->inputs[q].output);
            if (port_is_multiple(d->type, d->inputs[q].port)) {
                json_t *arr = json_object_get(refs, d->inputs[q].port);
                if (!arr) json_object_set_new(refs, d->inputs[q].port, arr = json_array());
                json_array_append_new(arr, r);
            } else {
                json_object_set_new(refs, d->inputs[q].port, r);
            }
        }
        char devtext[128];
        snprintf(devtext, sizeof devtext, "%s (%d threads)", k->name, threads);
        json_t *attrs = json_pack(
            "{s:s,s:i,s:O,s:s,s:O,s:o,s:o,s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:f,s:i}", "stage_type", d->type->name,
            "stage_version", d->type->version, "params", sp->params, "fingerprint",
            sp->fp, "input_fingerprints", sp->input_fps, "inputs", refs, "input_files", files, "sample", s->id,
            "software_version", provenance_software_version(), "libraries", provenance_libraries(), "host",
            ss_hostname(), "device", devtext, "started", started, "finished", finished, "seconds", secs, "threads",
            threads);
        if (d->type->flags & STAGE_STOCHASTIC) json_object_set_new(attrs, "seed", json_integer((json_int_t)c->seed));
        if (run_texts.config[0]) json_object_set_new(attrs, "config", json_string(run_texts.config));
        json_t *arch = json_object();
        for (int q = 0; plan && ctx.archive_st && q < d->n_inputs; q++)
            if (plan[d->inputs[q].stage_index].from_archive)
                json_object_set_new(arch, d->inputs[q].port, json_string(store_path(ctx.archive_st)));
        if (json_object_size(arch)) json_object_set(attrs, "inputs_from_archive", arch);
        json_decref(arch);
        if (run_texts.manifest[0]) json_object_set_new(attrs, "manifest", json_string(run_texts.manifest));
        if (d->cohort) {
            json_t *ids = json_array();
            for (int q = 0; q < config_cohort_n(c, i); q++)
                json_array_append_new(ids, json_string(c->samples[config_cohort_sample(c, i, q)].id));
            json_object_set_new(attrs, "samples", ids);
        }
        if (ctx.extra_attrs) json_object_update(attrs, ctx.extra_attrs);
        json_object_foreach(attrs, key, v) if (rc == SS_OK) rc = store_writer_attr(ctx.w, key, v);
        json_decref(attrs);
    }
    if (rc == SS_OK) {
        ss_crashpoint("runner.before_commit");
        store_writer *w = ctx.w;
        ctx.w = NULL;
        rc = store_commit_stage(w);
        ss_crashpoint("runner.after_commit");
    }
    if (ctx.w) store_abort_stage(ctx.w);
    if (rc == SS_OK) {
        checkpoint_remove(ctx.ckpt);
        remove_status(st, d->name, "failed");
        char dur[32];
        ss_fmt_duration(secs, dur);
        report_info(rep, "%s/%s: done in %s", s->id, d->name, dur);
        report_event(rep, "stage_end", json_pack("{s:s,s:s,s:s,s:f,s:s}", "sample", s->id, "stage", d->name, "status",
                                                 "done", "seconds", secs, "fingerprint", sp->fp));
    } else {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s/%s: %s", s->id, d->name, ss_errmsg());
        if (rc != SS_ERR_INTERRUPTED)
            write_status(st, d->name, "failed",
                         json_pack("{s:s,s:i,s:s,s:s,s:s}", "error", msg, "code", rc, "kind", ss_errname(rc), "time",
                                   finished, "fingerprint", sp->fp));
        report_event(rep, "stage_end", json_pack("{s:s,s:s,s:s,s:f,s:s,s:i}", "sample", s->id, "stage", d->name,
                                                 "status", rc == SS_ERR_INTERRUPTED ? "interrupted" : "failed",
                                                 "seconds", secs, "error", msg, "code", rc));
        ss_fail(rc, "%s", msg);
    }
    remove_status(st, d->name, "running");
    json_decref(ctx.extra_attrs);
    checkpoint_free(ctx.ckpt);
    free(ckdir);
    free(ckpath);
    return rc;
}

static void unlink_matching(const char *dir, int all_running)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        int tmp = strstr(e->d_name, ".tmp.") != NULL;
        int running = all_running && l > 8 && !strcmp(e->d_name + l - 8, ".running");
        if (!tmp && !running) continue;
        char *p = path_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
}

/* Under the lock, at the start of a sample: what killed runs of ours left in
 * the work folder (temporaries of atomic writes, 'running' markers). */
static void clean_workdir(store *st)
{
    const char *w = store_workdir(st);
    char *status = path_join(w, "status"), *ckpt = path_join(w, "ckpt"), *configs = path_join(w, "configs");
    unlink_matching(w, 0);
    if (status) unlink_matching(status, 1);
    if (ckpt) unlink_matching(ckpt, 0);
    if (configs) unlink_matching(configs, 0);
    free(status);
    free(ckpt);
    free(configs);
}

/* A stage that failed on damaged input: the damaged stages are recorded, so
 * that status shows them and the next run recomputes them with what depends
 * on them; the message says so. */
static void note_damage(store *st, int rc)
{
    json_t *seen = store_damage_take(st);
    if (json_object_size(seen)) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", ss_errmsg());
        sbuf names = {0};
        const char *stage;
        json_t *why;
        json_object_foreach(seen, stage, why)
        {
            store_mark_damaged(st, stage, json_string_value(why));
            sbuf_printf(&names, "%s%s", names.len ? ", " : "", stage);
        }
        ss_fail(rc, "%s; the next run recomputes %s and what depends on it", msg, sbuf_str(&names));
        sbuf_free(&names);
    }
    json_decref(seen);
}

static int worse(int a, int b)
{
    if (a == SS_OK) return b;
    if (b == SS_OK) return a;
    return a; /* the first failure decides the exit status */
}

/* The first failure of a run of several samples or stages: its code is the
 * exit status and its message what main prints; later ones are only listed. */
typedef struct {
    int rc;
    char msg[2048];
} first_failure;

static void failure_note(first_failure *f, int rc)
{
    if (rc == SS_OK || f->rc != SS_OK) return;
    f->rc = rc;
    snprintf(f->msg, sizeof f->msg, "%s", ss_errmsg());
}

static int failure_result(const first_failure *f)
{
    return f->rc == SS_OK ? SS_OK : ss_fail(f->rc, "%s", f->msg);
}


/* full: the whole run, where what waits runs in its turn */
static const char *plan_word(const stage_plan *p, int full)
{
    if (p->error) return "cannot run";
    if (p->waiting) return full ? "run" : "wait";
    return p->act == ACT_RUN ? "run" : p->act == ACT_REUSE ? "reuse" : "skip";
}

/* Runs the stages of one sample: those of the given level (-1: every level),
 * skipping those that wait for a cohort stage. *keep (when given) receives
 * the plan, with the stages that committed now marked reused. */
static int run_sample(const config *c, const sample_info *s, const run_options *o, const int *order,
                      const cohort_view *cv, int level, const kernels *k, int threads, reporter *rep,
                      stage_plan **keep)
{
    char *path = container_path(c, s);
    store *st = NULL;
    int rc = SS_OK;
    if (keep) *keep = NULL;
    if (!o->dry_run) {
        rc = fs_mkdir_p(c->output);
        if (rc == SS_OK) rc = store_open(path, c->store, STORE_OPEN_CREATE, &st);
        if (rc == SS_OK) rc = store_lock(st);
        if (rc == SS_OK) rc = store_recover(st);
        if (rc == SS_OK && store_repaired(st)) report_warn(rep, "%s: %s", s->id, store_repaired(st));
        if (rc == SS_OK) clean_workdir(st);
        if (rc == SS_OK) store_set_compression(st, c->compression);
    } else if (container_exists(c, path)) {
        rc = store_open(path, c->store, STORE_OPEN_REPAIRABLE, &st);
        if (rc != SS_OK && !path_exists(path)) rc = SS_OK; /* an empty stages folder: nothing committed */
        if (rc == SS_OK && st && store_index_problem(st))
            report_warn(rep, "%s: %s: the run does", s->id, store_index_problem(st));
    }
    if (rc != SS_OK) {
        store_close(st);
        free(path);
        return rc;
    }
    json_t *cache;
    if (st) load_cache(st, &cache);
    else cache = json_object();
    stage_plan *plan;
    rc = plan_sample(c, s, st, archive_for(&run_archives, s->id), o, order, cv ? cv->plan : NULL, cache, &plan);
    if (st && !o->dry_run) save_cache(st, cache);
    json_decref(cache);
    if (rc != SS_OK) {
        store_close(st);
        free(path);
        return rc;
    }
    if (o->dry_run) {
        int full = !o->sample && o->array_index < 0;
        printf("sample %s (%s):\n", s->id, path);
        for (int oi = 0; oi < c->n_stages; oi++) {
            int i = order[oi];
            if (c->stages[i].cohort) continue;
            const char *why = sbuf_str(&plan[i].reason);
            if (plan[i].waiting)
                printf("  %-20s %-10s after cohort stage %s (%s)\n", c->stages[i].name, plan_word(&plan[i], full),
                       plan[i].waits_for, why);
            else printf("  %-20s %-10s %s\n", c->stages[i].name, plan_word(&plan[i], full), why);
        }
        int blocked = 0;
        for (int i = 0; i < c->n_stages; i++)
            if (plan[i].error && !plan[i].cohort && !blocked) {
                blocked = 1;
                ss_fail(SS_ERR_INPUT, "%s/%s cannot run: %s", s->id, c->stages[i].name, sbuf_str(&plan[i].reason));
            }
        if (keep) *keep = plan;
        else plan_free(plan, c->n_stages);
        store_close(st);
        free(path);
        return blocked ? SS_ERR_INPUT : SS_OK;
    }
    report_event(rep, "sample_start", json_pack("{s:s,s:s}", "sample", s->id, "container", path));
    int result = SS_OK, waits = 0;
    const char *waited = NULL;
    for (int oi = 0; oi < c->n_stages; oi++) {
        int i = order[oi];
        stage_plan *sp = &plan[i];
        const stage_decl *d = &c->stages[i];
        if (sp->act == ACT_SKIP || d->cohort || (level >= 0 && d->level != level)) continue;
        if (sp->error) {
            result = worse(result, ss_fail(SS_ERR_INPUT, "%s/%s: %s", s->id, d->name, sbuf_str(&sp->reason)));
            break;
        }
        if (sp->act == ACT_REUSE) {
            report_event(rep, "stage_reuse", json_pack("{s:s,s:s,s:s}", "sample", s->id, "stage", d->name,
                                                       "fingerprint", sp->fp));
            if (!o->quiet && sp->from_archive)
                report_info(rep, "%s/%s: up to date in the archive %s", s->id, d->name,
                            store_path(archive_for(&run_archives, s->id)));
            else if (!o->quiet)
                report_info(rep, "%s/%s: up to date%s%s", s->id, d->name, sp->kept[0] ? "; " : "", sp->kept);
            continue;
        }
        if (sp->waiting) {
            if (!waits++) waited = sp->waits_for;
            report_event(rep, "stage_wait", json_pack("{s:s,s:s,s:s}", "sample", s->id, "stage", d->name, "cohort_stage",
                                                      sp->waits_for));
            continue;
        }
        if (!o->quiet) report_info(rep, "%s/%s: running %s (%s)", s->id, d->name, d->type->name, sbuf_str(&sp->reason));
        json_decref(store_damage_take(st)); /* what planning found is planned for */
        rc = run_stage(c, i, s, st, cv, plan, sp, k, threads, rep);
        if (rc != SS_OK) note_damage(st, rc);
        if (rc == SS_OK) {
            sp->act = ACT_REUSE;
            sp->committed = 1;
            memcpy(sp->committed_fp, sp->fp, FP_HEX);
        }
        /* A stage that finished is committed even when a signal came during
         * it; the run stops before the next one. */
        if (rc == SS_OK && runner_cancel_requested)
            rc = ss_fail(SS_ERR_INTERRUPTED, "%s: interrupted after %s; run again to resume", s->id, d->name);
        if (rc != SS_OK) {
            result = worse(result, rc);
            /* Later stages of this sample would read missing or stale data. */
            break;
        }
    }
    if (waits && level < 0 && !o->quiet)
        report_info(rep, "%s: %d stage%s wait%s for cohort stage %s (`sirenstack run CONFIG --cohort` runs it once "
                    "every sample has run)", s->id, waits, waits == 1 ? "" : "s", waits == 1 ? "s" : "", waited);
    if (keep) *keep = plan;
    else plan_free(plan, c->n_stages);
    store_close(st);
    free(path);
    return result;
}

static const sample_info cohort_sample = {.id = COHORT_ID};

static int has_cohort_stages(const config *c)
{
    for (int i = 0; i < c->n_stages; i++)
        if (c->stages[i].cohort) return 1;
    return 0;
}

static int max_level(const config *c)
{
    int m = 0;
    for (int i = 0; i < c->n_stages; i++)
        if (c->stages[i].level > m) m = c->stages[i].level;
    return m;
}

/* Plans every sample (reading its container, changing nothing) and the
 * cohort stages from them, level by level: a cohort stage's fingerprint
 * covers every sample's inputs to it. */
static int plan_all(const config *c, const run_options *o, const int *order, stage_plan **splans, stage_plan *cplan,
                    store *cst)
{
    int rc = SS_OK;
    for (int level = 0; level <= max_level(c) && rc == SS_OK; level++) {
        for (int si = 0; si < c->n_samples && rc == SS_OK; si++) {
            const sample_info *s = &c->samples[si];
            char *path = container_path(c, s);
            store *st = NULL;
            if (container_exists(c, path) && store_open(path, c->store, STORE_OPEN_REPAIRABLE, &st) != SS_OK)
                st = NULL; /* planned as empty; its own run reports the problem */
            json_t *cache;
            if (st) load_cache(st, &cache);
            else cache = json_object();
            if (splans[si]) plan_free(splans[si], c->n_stages);
            splans[si] = NULL;
            rc = plan_sample(c, s, st, archive_for(&run_archives, s->id), o, order, cplan, cache, &splans[si]);
            json_decref(cache);
            store_close(st);
            free(path);
        }
        for (int oi = 0; oi < c->n_stages && rc == SS_OK; oi++)
            if (c->stages[order[oi]].cohort && c->stages[order[oi]].level == level)
                rc = plan_cohort_stage(c, order[oi], splans, cst, archive_for(&run_archives, COHORT_ID), o, cplan);
    }
    return rc;
}

/* Runs the cohort stages of one level (-1: all) whose inputs are ready.
 * strict: a stage whose inputs are not ready fails (a sample did not get
 * that far); otherwise a stage that waits for per-sample stages that wait
 * for a cohort stage themselves is reported and left for the next job. */
static int run_cohort(const config *c, const run_options *o, const int *order, int level, stage_plan **splans,
                      stage_plan *cplan, store *cst, const kernels *k, int threads, reporter *rep, int strict)
{
    first_failure first = {0};
    int shown = 0;
    for (int oi = 0; oi < c->n_stages && !runner_cancel_requested; oi++) {
        int i = order[oi];
        const stage_decl *d = &c->stages[i];
        if (!d->cohort || (level >= 0 && d->level != level)) continue;
        int rc = plan_cohort_stage(c, i, splans, cst, archive_for(&run_archives, COHORT_ID), o, cplan);
        stage_plan *sp = &cplan[i];
        if (rc == SS_OK && o->dry_run) {
            if (!shown++) {
                char *path = container_path(c, &cohort_sample);
                printf("cohort (%s):\n", path);
                free(path);
            }
            if (sp->waiting && !o->cohort_only)
                printf("  %-20s %-10s when every sample has run its inputs (%s)\n", d->name, plan_word(sp, 1),
                       sbuf_str(&sp->reason));
            else printf("  %-20s %-10s %s\n", d->name, plan_word(sp, 0), sbuf_str(&sp->reason));
            continue;
        }
        if (rc == SS_OK && sp->act == ACT_SKIP) continue;
        if (rc == SS_OK && sp->act == ACT_REUSE) {
            report_event(rep, "stage_reuse", json_pack("{s:s,s:s,s:s}", "sample", COHORT_ID, "stage", d->name,
                                                       "fingerprint", sp->fp));
            if (!o->quiet) report_info(rep, "%s/%s: up to date%s", COHORT_ID, d->name, sp->from_archive ? " in the archive" : "");
            continue;
        }
        if (rc == SS_OK && (sp->error || sp->waiting)) {
            /* Per-sample inputs that follow a cohort stage are the next array
             * job's, whether that stage ran now or before (a requeued job). */
            int later = sp->waiting && !sp->error && !strict &&
                        (strstr(sp->waits_for, "waits for a cohort stage") ||
                         (d->level > 0 && strstr(sp->waits_for, "is not done yet")));
            if (later) {
                if (!o->quiet) report_info(rep, "%s/%s: waits (%s)", COHORT_ID, d->name, sp->waits_for);
                continue;
            }
            rc = ss_fail(SS_ERR_INPUT, "%s/%s cannot run: %s", COHORT_ID, d->name,
                         sp->error ? sbuf_str(&sp->reason) : sp->waits_for);
        }
        if (rc == SS_OK) {
            if (!o->quiet) report_info(rep, "%s/%s: running %s over %d samples (%s)", COHORT_ID, d->name, d->type->name,
                                       config_cohort_n(c, i), sbuf_str(&sp->reason));
            cohort_view self = {cplan, cst, splans};
            rc = run_stage(c, i, &cohort_sample, cst, &self, NULL, sp, k, threads, rep);
            if (rc != SS_OK) note_damage(cst, rc);
        }
        if (rc == SS_OK) {
            sp->act = ACT_REUSE;
            sp->committed = 1;
            memcpy(sp->committed_fp, sp->fp, FP_HEX);
            sp->ready = 1;
        }
        if (rc == SS_OK && runner_cancel_requested)
            rc = ss_fail(SS_ERR_INTERRUPTED, "%s: interrupted after %s; run again to resume", COHORT_ID, d->name);
        if (rc != SS_OK) {
            /* each failure is listed as it happens; the run's error is the first */
            if (rc != SS_ERR_INTERRUPTED) report_warn(rep, "%s", ss_errmsg());
            failure_note(&first, rc);
            if (rc == SS_ERR_INTERRUPTED) break;
        }
    }
    return failure_result(&first);
}

/* The cohort container: made and locked to write (run, --cohort), or read
 * only, when there is one (one sample's run, --dry-run). */
static int open_cohort(const config *c, const run_options *o, int write, reporter *rep, store **out)
{
    *out = NULL;
    char *path = container_path(c, &cohort_sample);
    int rc = SS_OK;
    if (write && !o->dry_run) {
        rc = fs_mkdir_p(c->output);
        if (rc == SS_OK) rc = store_open(path, c->store, STORE_OPEN_CREATE, out);
        if (rc == SS_OK) rc = store_lock(*out);
        if (rc == SS_OK) rc = store_recover(*out);
        if (rc == SS_OK && store_repaired(*out)) report_warn(rep, "%s: %s", COHORT_ID, store_repaired(*out));
        if (rc == SS_OK) clean_workdir(*out);
        if (rc == SS_OK) store_set_compression(*out, c->compression);
    } else if (container_exists(c, path)) {
        rc = store_open(path, c->store, STORE_OPEN_REPAIRABLE, out);
        if (rc != SS_OK && !path_exists(path)) rc = SS_OK;
    }
    if (rc != SS_OK) {
        store_close(*out);
        *out = NULL;
    }
    free(path);
    return rc;
}

static void free_plans(const config *c, stage_plan **splans, stage_plan *cplan)
{
    for (int si = 0; splans && si < c->n_samples; si++)
        if (splans[si]) plan_free(splans[si], c->n_stages);
    free(splans);
    if (cplan) plan_free(cplan, c->n_stages);
}

/* A config with cohort stages: all samples level by level with the cohort
 * stages between (no selection), one sample's stages (--sample,
 * --array-index), or the cohort stages alone (--cohort). */
static int run_with_cohort(const config *c, const run_options *o, const int *idx, int n, const int *order,
                           const kernels *k, int threads, reporter *rep)
{
    int one = o->sample || o->array_index >= 0;
    stage_plan **splans = calloc((size_t)c->n_samples + 1, sizeof *splans);
    stage_plan *cplan = calloc((size_t)c->n_stages + 1, sizeof *cplan);
    store *cst = NULL;
    int rc = splans && cplan ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = open_cohort(c, o, !one, rep, &cst);
    if (rc == SS_OK) rc = plan_all(c, o, order, splans, cplan, cst);
    first_failure first = {0};
    failure_note(&first, rc);
    cohort_view cv = {cplan, cst, splans};
    if (rc == SS_OK && o->cohort_only) {
        failure_note(&first, run_cohort(c, o, order, -1, splans, cplan, cst, k, threads, rep, 0));
    } else if (rc == SS_OK && (one || o->dry_run)) {
        /* A dry run shows each sample's whole plan, then the cohort's. */
        for (int q = 0; q < n; q++)
            failure_note(&first, run_sample(c, &c->samples[idx[q]], o, order, &cv, -1, k, threads, rep, NULL));
        if (!one) failure_note(&first, run_cohort(c, o, order, -1, splans, cplan, cst, k, threads, rep, 0));
    } else if (rc == SS_OK) {
        int stop = 0;
        unsigned char *failed = calloc((size_t)n + 1, 1);
        for (int level = 0; failed && level <= max_level(c) && !stop && !runner_cancel_requested; level++) {
            for (int q = 0; q < n && !stop && !runner_cancel_requested; q++) {
                const sample_info *s = &c->samples[idx[q]];
                if (failed[q]) continue; /* reported at its first failure */
                stage_plan *kept = NULL;
                rc = run_sample(c, s, o, order, &cv, level, k, threads, rep, &kept);
                if (kept) {
                    if (splans[idx[q]]) plan_free(splans[idx[q]], c->n_stages);
                    splans[idx[q]] = kept;
                }
                if (rc != SS_OK && rc != SS_ERR_INTERRUPTED)
                    report_warn(rep, "sample %s failed: %s", s->id, ss_errmsg());
                failure_note(&first, rc);
                failed[q] = rc != SS_OK;
                stop = rc == SS_ERR_INTERRUPTED || rc == SS_ERR_CONFIG;
            }
            if (stop || runner_cancel_requested) break;
            rc = run_cohort(c, o, order, level, splans, cplan, cst, k, threads, rep, 1);
            failure_note(&first, rc);
            stop = rc == SS_ERR_INTERRUPTED;
        }
        if (!failed) failure_note(&first, ss_fail(SS_ERR_NOMEM, "out of memory"));
        free(failed);
    }
    int result = failure_result(&first);
    store_close(cst);
    free_plans(c, splans, cplan);
    return result;
}

static void archives_close(void)
{
    for (int i = 0; i < run_archives.n; i++) {
        store_close(run_archives.st[i]);
        free(run_archives.id[i]);
    }
    free(run_archives.st);
    free(run_archives.id);
    memset(&run_archives, 0, sizeof run_archives);
}

/* --from: each archive read-only, under the sample id its stages carry. */
static int archives_open(const config *c, const run_options *o)
{
    archives_close();
    run_archives.st = calloc((size_t)o->n_from + 1, sizeof *run_archives.st);
    run_archives.id = calloc((size_t)o->n_from + 1, sizeof *run_archives.id);
    if (!run_archives.st || !run_archives.id) return ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < o->n_from; i++) {
        store *st = NULL;
        int rc = store_open(o->from[i], STORE_HDF5, 0, &st);
        if (rc == SS_OK && !store_is_packed(st))
            rc = ss_fail(SS_ERR_INPUT, "--from %s: not a packed archive (`sirenstack pack CONTAINER -o ARCHIVE.h5` "
                         "writes one)", o->from[i]);
        char **stages = NULL;
        json_t *a = NULL;
        if (rc == SS_OK) rc = store_list_stages(st, &stages);
        if (rc == SS_OK && stages[0]) rc = store_stage_attrs(st, stages[0], &a);
        const char *id = json_string_value(json_object_get(a, "sample"));
        if (rc == SS_OK && !id) rc = ss_fail(SS_ERR_INPUT, "--from %s: the archive holds no stage", o->from[i]);
        int known = id && !strcmp(id, COHORT_ID);
        for (int k = 0; id && k < c->n_samples; k++) known |= !strcmp(c->samples[k].id, id);
        if (rc == SS_OK && !known)
            rc = ss_fail(SS_ERR_INPUT, "--from %s: its sample '%s' is not one of %s's samples", o->from[i], id, c->path);
        if (rc == SS_OK && archive_for(&run_archives, id))
            rc = ss_fail(SS_ERR_INPUT, "--from %s: a second archive of sample '%s'", o->from[i], id);
        if (rc == SS_OK) {
            run_archives.st[run_archives.n] = st;
            run_archives.id[run_archives.n++] = ss_strdup(id);
            st = NULL;
        }
        json_decref(a);
        store_names_free(stages);
        store_close(st);
        if (rc != SS_OK) return rc;
    }
    return SS_OK;
}

int runner_run(const config *c, const run_options *o, reporter *rep)
{
    int *idx, n;
    int rc = select_samples(c, o, &idx, &n);
    if (rc == SS_OK) rc = archives_open(c, o);
    if (rc == SS_OK && o->cohort_only && !has_cohort_stages(c))
        rc = ss_fail(SS_ERR_CONFIG, "--cohort: %s declares no stage with scope: cohort", c->path);
    const kernels *k = rc == SS_OK ? pick_kernels(c, o, &rc) : NULL;
    if (rc != SS_OK) {
        archives_close();
        free(idx);
        return rc;
    }
    int threads = o->threads >= 0 ? o->threads : c->threads;
    if (threads <= 0) threads = omp_get_num_procs();
    omp_set_num_threads(threads);
    /* BLAS inside an OpenMP region must not start threads of its own. */
    openblas_set_num_threads(1);
    int *order = calloc((size_t)c->n_stages + 1, sizeof *order);
    graph_topo_order(c, order);
    texts_load(c);
    report_event(rep, "run_start", json_pack("{s:s,s:s,s:i,s:s,s:i}", "config", c->path, "run", c->run_name,
                                             "samples", n, "device", k->name, "threads", threads));
    int result = SS_OK;
    if (has_cohort_stages(c)) {
        result = run_with_cohort(c, o, idx, n, order, k, threads, rep);
    } else {
        first_failure first = {0};
        for (int q = 0; q < n && !runner_cancel_requested; q++) {
            const sample_info *s = &c->samples[idx[q]];
            rc = run_sample(c, s, o, order, NULL, -1, k, threads, rep, NULL);
            /* With one sample, main prints the error; with several, each
             * failure is listed as it happens and main prints the first. */
            if (rc != SS_OK && rc != SS_ERR_INTERRUPTED && n > 1)
                report_warn(rep, "sample %s failed: %s", s->id, ss_errmsg());
            failure_note(&first, rc);
            if (rc == SS_ERR_INTERRUPTED || rc == SS_ERR_CONFIG) break;
        }
        result = failure_result(&first);
    }
    if (runner_cancel_requested && result == SS_OK)
        result = ss_fail(SS_ERR_INTERRUPTED, "interrupted; run again to resume");
    if (result == SS_OK && !o->dry_run && !o->quiet) report_info(rep, "outputs: %s", c->output);
    report_event(rep, "run_end", json_pack("{s:s,s:i}", "status", result == SS_OK ? "ok" : ss_errname(result), "exit",
                                           ss_exit_status(result)));
    free(order);
    free(idx);
    archives_close();
    free(run_texts.config_text);
    free(run_texts.manifest_text);
    memset(&run_texts, 0, sizeof run_texts);
    return result;
}


/* ---- status --------------------------------------------------------------- */

static int lock_held(store *st)
{
    char *p = path_join(store_workdir(st), "lock");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0) return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK; /* not where locks fail */
    close(fd);
    return held;
}

/* One status line per stage of a plan: the sample's stages, or with
 * cohort set the cohort stages. */
static void print_status(const config *c, const int *order, const char *id, store *st, stage_plan *plan, int cohort)
{
    int running = st && lock_held(st);
    for (int oi = 0; oi < c->n_stages; oi++) {
        int i = order[oi];
        if (c->stages[i].cohort != cohort) continue;
        stage_plan *sp = &plan[i];
        const char *name = c->stages[i].name;
        const char *state;
        sbuf detail = {0};
        json_t *failed = NULL, *run = NULL;
        if (st) {
            char *fp = status_path(st, name, "failed"), *rp = status_path(st, name, "running");
            if (path_exists(fp)) failed = json_load_file(fp, 0, NULL);
            if (path_exists(rp)) run = json_load_file(rp, 0, NULL);
            free(fp);
            free(rp);
        }
        if (run && running) {
            state = "running";
            sbuf_printf(&detail, "since %s, pid %lld on %s", json_string_value(json_object_get(run, "started")),
                        (long long)json_integer_value(json_object_get(run, "pid")),
                        json_string_value(json_object_get(run, "host")));
        } else if (sp->damaged) {
            state = "damaged";
            sbuf_put(&detail, sbuf_str(&sp->reason));
        } else if (sp->act == ACT_REUSE) {
            state = "done";
            sbuf_printf(&detail, "%.12s, finished %s (%.1fs)", sp->fp,
                        json_string_value(json_object_get(sp->attrs, "finished")),
                        json_number_value(json_object_get(sp->attrs, "seconds")));
        } else if (failed && !strcmp(json_string_value(json_object_get(failed, "fingerprint")) ?: "", sp->fp)) {
            state = "failed";
            sbuf_put(&detail, json_string_value(json_object_get(failed, "error")) ?: "unknown error");
        } else if (sp->error) {
            state = "blocked";
            sbuf_put(&detail, sbuf_str(&sp->reason));
        } else if (sp->waiting) {
            state = "waiting";
            if (cohort) sbuf_printf(&detail, "for %s", sp->waits_for);
            else sbuf_printf(&detail, "for cohort stage %s", sp->waits_for);
        } else if (sp->committed) {
            state = "stale";
            sbuf_put(&detail, sbuf_str(&sp->reason));
        } else {
            state = "pending";
            if (run) sbuf_printf(&detail, "interrupted run started %s; ",
                                 json_string_value(json_object_get(run, "started")));
            sbuf_put(&detail, sbuf_str(&sp->reason));
        }
        printf("%-16s %-20s %-8s %s\n", id, name, state, sbuf_str(&detail));
        sbuf_free(&detail);
        json_decref(failed);
        json_decref(run);
    }
}

int runner_status(const config *c, const run_options *o)
{
    int *idx, n;
    int rc = select_samples(c, o, &idx, &n);
    if (rc != SS_OK) {
        free(idx);
        return rc;
    }
    int *order = calloc((size_t)c->n_stages + 1, sizeof *order);
    graph_topo_order(c, order);
    run_options all = *o;
    all.n_only = 0;
    all.n_force = 0;
    /* With cohort stages, every sample is planned to know theirs. */
    int cohort = has_cohort_stages(c);
    stage_plan **splans = cohort ? calloc((size_t)c->n_samples + 1, sizeof *splans) : NULL;
    stage_plan *cplan = cohort ? calloc((size_t)c->n_stages + 1, sizeof *cplan) : NULL;
    store *cst = NULL;
    if (cohort) {
        rc = splans && cplan ? open_cohort(c, &all, 0, NULL, &cst) : ss_fail(SS_ERR_NOMEM, "out of memory");
        if (rc == SS_OK) rc = plan_all(c, &all, order, splans, cplan, cst);
        if (rc != SS_OK) {
            free_plans(c, splans, cplan);
            store_close(cst);
            free(order);
            free(idx);
            return rc;
        }
    }
    printf("%-16s %-20s %-8s %s\n", "SAMPLE", "STAGE", "STATE", "DETAIL");
    int result = SS_OK;
    for (int q = 0; q < n && !o->cohort_only; q++) {
        const sample_info *s = &c->samples[idx[q]];
        char *path = container_path(c, s);
        store *st = NULL;
        if (container_exists(c, path) && store_open(path, c->store, STORE_OPEN_REPAIRABLE, &st) != SS_OK &&
            path_exists(path)) {
            printf("%-16s %-20s %-8s %s\n", s->id, "-", "error", ss_errmsg());
            result = SS_ERR_INPUT;
            free(path);
            continue;
        }
        if (st && store_index_problem(st))
            fprintf(stderr, "warning: %s: %s: 'sirenstack run' does\n", s->id, store_index_problem(st));
        json_t *cache;
        if (st) load_cache(st, &cache);
        else cache = json_object();
        stage_plan *plan;
        rc = plan_sample(c, s, st, NULL, &all, order, cplan, cache, &plan);
        json_decref(cache);
        if (rc != SS_OK) {
            store_close(st);
            free(path);
            result = rc;
            break;
        }
        print_status(c, order, s->id, st, plan, 0);
        plan_free(plan, c->n_stages);
        store_close(st);
        free(path);
    }
    if (cohort && result == SS_OK && (o->cohort_only || (!o->sample && o->array_index < 0)))
        print_status(c, order, COHORT_ID, cst, cplan, 1);
    free_plans(c, splans, cplan);
    store_close(cst);
    free(order);
    free(idx);
    return result;
}
