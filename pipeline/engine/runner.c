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

static int run_stage(const config *c, int i, const sample_info *s, store *st, stage_plan *sp, const kernels *k,
                     int threads, reporter *rep)
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
    stage_ctx ctx = {
        .cfg = c, .stage = i, .sample = s, .params = sp->params, .st = st, .k = k, .rep = rep, .threads = threads,
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
    if (rc == SS_OK) {
        rc = d->type->run(&ctx);
        progress_end(rep);
    }
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
    char *status = path_join(w, "status"), *ckpt = path_join(w, "ckpt");
    unlink_matching(w, 0);
    if (status) unlink_matching(status, 1);
    if (ckpt) unlink_matching(ckpt, 0);
    free(status);
    free(ckpt);
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

static int run_sample(const config *c, const sample_info *s, const run_options *o, const int *order,
                      const kernels *k, int threads, reporter *rep)
{
    char *path = container_path(c, s);
    store *st = NULL;
    int rc = SS_OK;
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
    rc = plan_sample(c, s, st, o, order, cache, &plan);
    if (st && !o->dry_run) save_cache(st, cache);
    json_decref(cache);
    if (rc != SS_OK) {
        store_close(st);
        free(path);
        return rc;
    }
    if (o->dry_run) {
        printf("sample %s (%s):\n", s->id, path);
        for (int oi = 0; oi < c->n_stages; oi++) {
            int i = order[oi];
            const char *what = plan[i].error ? "cannot run" : plan[i].act == ACT_RUN ? "run" : plan[i].act == ACT_REUSE ? "reuse" : "skip";
            printf("  %-20s %-10s %s\n", c->stages[i].name, what, sbuf_str(&plan[i].reason));
        }
        int blocked = 0;
        for (int i = 0; i < c->n_stages; i++)
            if (plan[i].error && !blocked) {
                blocked = 1;
                ss_fail(SS_ERR_INPUT, "%s/%s cannot run: %s", s->id, c->stages[i].name, sbuf_str(&plan[i].reason));
            }
        plan_free(plan, c->n_stages);
        store_close(st);
        free(path);
        return blocked ? SS_ERR_INPUT : SS_OK;
    }
    report_event(rep, "sample_start", json_pack("{s:s,s:s}", "sample", s->id, "container", path));
    int result = SS_OK;
    for (int oi = 0; oi < c->n_stages; oi++) {
        int i = order[oi];
        stage_plan *sp = &plan[i];
        const stage_decl *d = &c->stages[i];
        if (sp->act == ACT_SKIP) continue;
        if (sp->error) {
            result = worse(result, ss_fail(SS_ERR_INPUT, "%s/%s: %s", s->id, d->name, sbuf_str(&sp->reason)));
            break;
        }
        if (sp->act == ACT_REUSE) {
            report_event(rep, "stage_reuse", json_pack("{s:s,s:s,s:s}", "sample", s->id, "stage", d->name,
                                                       "fingerprint", sp->fp));
            if (!o->quiet) report_info(rep, "%s/%s: up to date%s%s", s->id, d->name, sp->kept[0] ? "; " : "", sp->kept);
            continue;
        }
        if (!o->quiet) report_info(rep, "%s/%s: running %s (%s)", s->id, d->name, d->type->name, sbuf_str(&sp->reason));
        json_decref(store_damage_take(st)); /* what planning found is planned for */
        rc = run_stage(c, i, s, st, sp, k, threads, rep);
        if (rc != SS_OK) note_damage(st, rc);
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
    plan_free(plan, c->n_stages);
    store_close(st);
    free(path);
    return result;
}

int runner_run(const config *c, const run_options *o, reporter *rep)
{
    int *idx, n;
    int rc = select_samples(c, o, &idx, &n);
    if (rc != SS_OK) {
        free(idx);
        return rc;
    }
    const kernels *k = pick_kernels(c, o, &rc);
    if (rc != SS_OK) {
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
    report_event(rep, "run_start", json_pack("{s:s,s:s,s:i,s:s,s:i}", "config", c->path, "run", c->run_name,
                                             "samples", n, "device", k->name, "threads", threads));
    int result = SS_OK;
    for (int q = 0; q < n && !runner_cancel_requested; q++) {
        const sample_info *s = &c->samples[idx[q]];
        rc = run_sample(c, s, o, order, k, threads, rep);
        if (rc != SS_OK) {
            /* With one sample, main prints the error; with several, each
             * failure is listed as it happens and main prints the first. */
            if (rc != SS_ERR_INTERRUPTED && n > 1) report_warn(rep, "sample %s failed: %s", s->id, ss_errmsg());
            char keep[2048];
            snprintf(keep, sizeof keep, "%s", ss_errmsg());
            result = worse(result, rc);
            if (result == rc) ss_fail(rc, "%s", keep);
            if (rc == SS_ERR_INTERRUPTED || rc == SS_ERR_CONFIG) break;
        }
    }
    if (runner_cancel_requested && result == SS_OK)
        result = ss_fail(SS_ERR_INTERRUPTED, "interrupted; run again to resume");
    if (result == SS_OK && !o->dry_run && !o->quiet) report_info(rep, "outputs: %s", c->output);
    report_event(rep, "run_end", json_pack("{s:s,s:i}", "status", result == SS_OK ? "ok" : ss_errname(result), "exit",
                                           ss_exit_status(result)));
    free(order);
    free(idx);
    return result;
}

/* ---- status --------------------------------------------------------------- */

static int lock_held(store *st)
{
    char *p = path_join(store_workdir(st), "lock");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0) return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0;
    close(fd);
    return held;
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
    printf("%-16s %-20s %-8s %s\n", "SAMPLE", "STAGE", "STATE", "DETAIL");
    int result = SS_OK;
    for (int q = 0; q < n; q++) {
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
        run_options all = *o;
        all.n_only = 0;
        all.n_force = 0;
        rc = plan_sample(c, s, st, &all, order, cache, &plan);
        json_decref(cache);
        if (rc != SS_OK) {
            store_close(st);
            free(path);
            result = rc;
            break;
        }
        int running = st && lock_held(st);
        for (int oi = 0; oi < c->n_stages; oi++) {
            int i = order[oi];
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
            } else if (sp->committed) {
                state = "stale";
                sbuf_put(&detail, sbuf_str(&sp->reason));
            } else {
                state = "pending";
                if (run) sbuf_printf(&detail, "interrupted run started %s; ",
                                     json_string_value(json_object_get(run, "started")));
                sbuf_put(&detail, sbuf_str(&sp->reason));
            }
            printf("%-16s %-20s %-8s %s\n", s->id, name, state, sbuf_str(&detail));
            sbuf_free(&detail);
            json_decref(failed);
            json_decref(run);
        }
        plan_free(plan, c->n_stages);
        store_close(st);
        free(path);
    }
    free(order);
    free(idx);
    return result;
}
