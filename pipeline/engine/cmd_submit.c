/* sirenstack submit: a run as SLURM jobs. An array job with one task per
 * sample runs the per-sample stages; where the config has cohort stages, a
 * job that depends on it runs them (`run --cohort`), then, if per-sample
 * stages read cohort outputs, another array, and so on: one job per level of
 * the stage graph (stage_decl.level), each after the one before (afterok).
 * The scripts come from scripts/slurm/job.sbatch.in (built in) and the
 * config's `slurm` section; they go to OUTPUT/_slurm/, the logs to
 * OUTPUT/_slurm/logs/. */
#include "commands.h"
#include "config.h"
#include "error.h"
#include "slurm_template.h"
#include "ss_build.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char submit_help[] =
    "usage: sirenstack submit CONFIG [--dry-run] [--sbatch PROGRAM]\n"
    "\n"
    "Submits the run to SLURM: an array job with one task per sample (task N runs\n"
    "`sirenstack run CONFIG --array-index N`), then, where the config has cohort\n"
    "stages, a job running them (`run CONFIG --cohort`) after the array has\n"
    "finished, then an array for the per-sample stages that read cohort outputs,\n"
    "and so on, each after the one before (afterok; a failed job cancels its\n"
    "dependants). Resources come from the config's `slurm` section (cpus, memory,\n"
    "time, gpus, partition, account, max_parallel, cohort_*, signal_seconds,\n"
    "sbatch, setup: `sirenstack schema`). Tasks are requeued on preemption and\n"
    "node failure, and requeue themselves at their time limit, resuming from the\n"
    "last commit or checkpoint. squeue shows each task as RUN:SAMPLE. The scripts\n"
    "are written to OUTPUT/_slurm/, the logs (SLURM output and --log-json events)\n"
    "to OUTPUT/_slurm/logs/.\n"
    "\n"
    "  --dry-run          write and print the scripts and the sbatch commands;\n"
    "                     submit nothing\n"
    "  --sbatch PROGRAM   the sbatch to run (default: $SIRENSTACK_SBATCH, else sbatch)\n"
    "  --help             this text\n";

typedef struct {
    int cohort;  /* a --cohort job, else an array over the samples */
    int level;
    char *script;
} job;

/* Characters that would break the generated shell lines and #SBATCH options. */
static int unsafe_path(const char *p) { return strpbrk(p, "\"$`\\\n' %") != NULL; }

static void put_sbatch(sbuf *b, const char *opt, const char *value)
{
    sbuf_printf(b, "#SBATCH --%s=%s\n", opt, value);
}

static const char *sl_str(const config *c, const char *k)
{
    return json_string_value(json_object_get(c->slurm, k));
}

static long long sl_int(const config *c, const char *k, const char *fallback)
{
    json_t *v = json_object_get(c->slurm, k);
    if (json_is_null(v) && fallback) v = json_object_get(c->slurm, fallback);
    return json_integer_value(v);
}

/* The template with every {{KEY}} replaced by its value. */
static char *render(const char *const *kv)
{
    sbuf out = {0};
    for (const char *p = slurm_template; *p;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            sbuf_put(&out, p);
            break;
        }
        sbuf_putn(&out, p, (size_t)(open - p));
        const char *close = strstr(open, "}}");
        size_t n = close ? (size_t)(close - open - 2) : 0;
        const char *val = NULL;
        for (int i = 0; close && kv[i]; i += 2)
            if (strlen(kv[i]) == n && !strncmp(kv[i], open + 2, n)) val = kv[i + 1];
        if (!val) { /* a template bug: keep the text, so that it shows */
            sbuf_putn(&out, open, 2);
            p = open + 2;
            continue;
        }
        sbuf_put(&out, val);
        p = close + 2;
    }
    return out.s ? out.s : ss_strdup("");
}

static char *job_script(const config *c, const job *j, const char *self, const char *cfg_path, const char *logs,
                        const char *run)
{
    char cpus[32], title[256], jobname[160], log[PATH_MAX + 64], events[PATH_MAX + 96];
    snprintf(cpus, sizeof cpus, "%lld", sl_int(c, j->cohort ? "cohort_cpus" : "cpus", "cpus"));
    const char *mem = j->cohort && sl_str(c, "cohort_memory") ? sl_str(c, "cohort_memory") : sl_str(c, "memory");
    const char *tim = j->cohort && sl_str(c, "cohort_time") ? sl_str(c, "cohort_time") : sl_str(c, "time");
    long long gpus = sl_int(c, j->cohort ? "cohort_gpus" : "gpus", "gpus");
    sbuf sb = {0}, setup = {0}, name = {0};
    if (!j->cohort) {
        long long cap = sl_int(c, "max_parallel", NULL);
        char arr[64];
        if (cap > 0) snprintf(arr, sizeof arr, "0-%d%%%lld", c->n_samples - 1, cap);
        else snprintf(arr, sizeof arr, "0-%d", c->n_samples - 1);
        put_sbatch(&sb, "array", arr);
    }
    if (sl_str(c, "partition")) put_sbatch(&sb, "partition", sl_str(c, "partition"));
    if (sl_str(c, "account")) put_sbatch(&sb, "account", sl_str(c, "account"));
    if (gpus > 0) {
        char g[32];
        snprintf(g, sizeof g, "gpu:%lld", gpus);
        put_sbatch(&sb, "gres", g);
    }
    long long sig = sl_int(c, "signal_seconds", NULL);
    char sigs[32];
    snprintf(sigs, sizeof sigs, "%lld", sig);
    if (sig > 0) {
        char s[48];
        snprintf(s, sizeof s, "B:USR1@%lld", sig);
        put_sbatch(&sb, "signal", s);
    }
    json_t *extra = json_object_get(c->slurm, "sbatch");
    for (size_t i = 0; i < json_array_size(extra); i++)
        sbuf_printf(&sb, "#SBATCH %s\n", json_string_value(json_array_get(extra, i)));
    json_t *lines = json_object_get(c->slurm, "setup");
    for (size_t i = 0; i < json_array_size(lines); i++) sbuf_printf(&setup, "%s\n", json_string_value(json_array_get(lines, i)));
    if (j->cohort) {
        snprintf(title, sizeof title, "run %s: the cohort stages of level %d", run, j->level);
        snprintf(jobname, sizeof jobname, "%s:_cohort", run);
        snprintf(log, sizeof log, "%s/%s-cohort-%%j.out", logs, run);
        snprintf(events, sizeof events, "%s/%s-cohort-${SLURM_JOB_ID}.jsonl", logs, run);
    } else {
        snprintf(title, sizeof title, "run %s: the per-sample stages of level %d, one task per sample", run, j->level);
        snprintf(jobname, sizeof jobname, "%s", run);
        snprintf(log, sizeof log, "%s/%s-%%A_%%a.out", logs, run);
        snprintf(events, sizeof events, "%s/%s-${SLURM_ARRAY_JOB_ID}_${task}.jsonl", logs, run);
        sbuf_put(&name, "samples=(");
        for (int i = 0; i < c->n_samples; i++) sbuf_printf(&name, "%s%s", i ? " " : "", c->samples[i].id);
        sbuf_printf(&name, ")\ntask=${SLURM_ARRAY_TASK_ID:?not an array task}\n"
                           "# squeue shows the run and the sample (addressed as ARRAY_TASK: renaming the\n"
                           "# array's own record would rename the tasks still pending in it)\n"
                           "scontrol update JobId=\"${SLURM_ARRAY_JOB_ID}_${task}\" JobName=\"%s:${samples[$task]}\" "
                           ">/dev/null 2>&1 || true\n",
                    run);
    }
    const char *kv[] = {
        "TITLE", title, "CONFIG", cfg_path, "VERSION", SS_VERSION, "JOB_NAME", jobname, "CPUS", cpus,
        "MEMORY", mem, "TIME", tim, "LOG", log, "SBATCH", sbuf_str(&sb), "SETUP", sbuf_str(&setup),
        "NAME_TASK", sbuf_str(&name), "SIGNAL_SECONDS", sigs, "SIRENSTACK", self,
        "SELECT", j->cohort ? "--cohort" : "--array-index \"$task\"", "EVENTS", events, NULL,
    };
    char *text = render(kv);
    sbuf_free(&sb);
    sbuf_free(&setup);
    sbuf_free(&name);
    return text;
}

/* Runs PROGRAM --parsable [--dependency=afterok:DEP] SCRIPT; *id gets the job id. */
static int sbatch(const char *prog, const char *script, const char *dep, char *id, size_t n)
{
    int fd[2];
    if (pipe(fd) != 0) return ss_fail(SS_ERR_IO, "pipe: %s", strerror(errno));
    char depopt[96] = "";
    if (dep) snprintf(depopt, sizeof depopt, "--dependency=afterok:%s", dep);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return ss_fail(SS_ERR_IO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        if (dep) execlp(prog, prog, "--parsable", depopt, script, (char *)NULL);
        else execlp(prog, prog, "--parsable", script, (char *)NULL);
        fprintf(stderr, "cannot run %s: %s", prog, strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    sbuf out = {0};
    char buf[512];
    ssize_t r;
    while ((r = read(fd[0], buf, sizeof buf)) > 0) sbuf_putn(&out, buf, (size_t)r);
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    char *text = ss_strdup(sbuf_str(&out));
    sbuf_free(&out);
    for (char *e = text + strlen(text); e > text && (e[-1] == '\n' || e[-1] == ' '); e--) e[-1] = 0;
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    /* --parsable: "jobid" or "jobid;cluster", on the last line */
    const char *last = strrchr(text, '\n') ? strrchr(text, '\n') + 1 : text;
    size_t k = strspn(last, "0123456789");
    int rc = SS_OK;
    if (!ok || k == 0)
        rc = ss_fail(SS_ERR_IO, "%s %s failed (%s %d): %s", prog, script, WIFEXITED(status) ? "exit" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), text[0] ? text : "no output");
    else snprintf(id, n, "%.*s", (int)k, last);
    free(text);
    return rc;
}

int cmd_submit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dry-run", no_argument, 0, 'n'}, {"sbatch", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int dry = 0;
    const char *prog = getenv("SIRENSTACK_SBATCH");
    if (!prog || !prog[0]) prog = "sbatch";
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'n': dry = 1; break;
        case 'b': prog = optarg; break;
        case 'h': fputs(submit_help, stdout); return SS_OK;
        default:
            fprintf(stderr, "sirenstack submit: unknown or incomplete option '%s'\n%s", argv[optind - 1], submit_help);
            return SS_ERR_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "sirenstack submit: expected one CONFIG file\n%s", submit_help);
        return SS_ERR_USAGE;
    }
    config *c;
    int rc = load_config(argv[optind], &c);
    if (rc != SS_OK) return rc;
    char self[PATH_MAX], cfg_path[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) snprintf(self, sizeof self, "sirenstack");
    else self[sl] = 0;
    if (!realpath(c->path, cfg_path)) snprintf(cfg_path, sizeof cfg_path, "%s", c->path);
    if (!dry) rc = fs_mkdir_p(c->output);
    char *outdir = rc == SS_OK ? realpath(c->output, NULL) : NULL;
    char *base = outdir ? outdir : ss_strdup(c->output);
    char *dir = path_join(base, "_slurm"), *logs = path_join(dir, "logs");
    free(base);
    sbuf run = {0};
    for (const char *p = c->run_name; *p; p++)
        sbuf_printf(&run, "%c", (isalnum((unsigned char)*p) || strchr("_.-", *p)) ? *p : '_');
    const char *bad = unsafe_path(self) ? self : unsafe_path(cfg_path) ? cfg_path : unsafe_path(logs) ? logs : NULL;
    if (bad && rc == SS_OK)
        rc = ss_fail(SS_ERR_CONFIG, "%s: a path with a quote, space, %%, $, ` or \\ cannot go into a job script; "
                     "use another folder", bad);
    if (rc == SS_OK) rc = fs_mkdir_p(logs);
    /* one job per level and kind, in order */
    job jobs[2 * 64];
    int nj = 0, max_level = 0;
    for (int i = 0; i < c->n_stages; i++) max_level = c->stages[i].level > max_level ? c->stages[i].level : max_level;
    for (int l = 0; l <= max_level && l < 64; l++)
        for (int kind = 0; kind < 2; kind++) {
            int any = 0;
            for (int i = 0; i < c->n_stages; i++) any |= c->stages[i].level == l && c->stages[i].cohort == kind;
            if (any) jobs[nj++] = (job){.cohort = kind, .level = l};
        }
    char ids[2 * 64][32];
    int submitted = 0;
    for (int k = 0; k < nj && rc == SS_OK; k++) {
        char *text = job_script(c, &jobs[k], self, cfg_path, logs, sbuf_str(&run));
        char name[160];
        snprintf(name, sizeof name, "%s-%d-%s.sbatch", sbuf_str(&run), k, jobs[k].cohort ? "cohort" : "array");
        jobs[k].script = path_join(dir, name);
        rc = fs_write_atomic(jobs[k].script, text, strlen(text));
        const char *dep = k ? ids[k - 1] : NULL;
        if (rc == SS_OK && dry) {
            if (k) printf("# job %d: sbatch --parsable --dependency=afterok:<id of job %d> %s\n", k + 1, k, jobs[k].script);
            else printf("# job 1: sbatch --parsable %s\n", jobs[k].script);
            fputs(text, stdout);
            printf("\n");
        } else if (rc == SS_OK) {
            rc = sbatch(prog, jobs[k].script, dep, ids[k], sizeof ids[k]);
            if (rc == SS_OK) {
                submitted++;
                if (jobs[k].cohort) printf("submitted job %s: %s, the cohort stages (level %d)%s%s\n", ids[k],
                                           sbuf_str(&run), jobs[k].level, k ? ", after job " : "", k ? dep : "");
                else printf("submitted job %s: %s, %d array tasks, one per sample (level %d)%s%s\n", ids[k],
                            sbuf_str(&run), c->n_samples, jobs[k].level, k ? ", after job " : "", k ? dep : "");
            }
        }
        free(text);
    }
    if (rc != SS_OK && submitted) {
        sbuf ids_text = {0};
        for (int k = 0; k < submitted; k++) sbuf_printf(&ids_text, " %s", ids[k]);
        char why[2048];
        snprintf(why, sizeof why, "%s", ss_errmsg());
        ss_fail(rc, "%s; already submitted:%s (scancel them to withdraw the run)", why, sbuf_str(&ids_text));
        sbuf_free(&ids_text);
    }
    if (rc == SS_OK && !dry) printf("logs: %s\n", logs);
    for (int k = 0; k < nj; k++) free(jobs[k].script);
    sbuf_free(&run);
    free(dir);
    free(logs);
    config_free(c);
    return rc;
}
