/* The subcommands behind main(). Each parses its own options, does its work
 * through the runner or the store, and returns an SS_* code. */
#include "commands.h"
#include "config.h"
#include "error.h"
#include "fingerprint.h"
#include "provenance.h"
#include "runner.h"
#include "omezarr.h"
#include "tiff_meta.h"
#include "tiff_write.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int usage_error(const char *help, const char *fmt, const char *arg)
{
    fprintf(stderr, "sirenstack: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", help);
    return SS_ERR_USAGE;
}

static void print_errors(const sbuf *errors)
{
    fputs(sbuf_str(errors), stderr);
}

int load_config(const char *path, config **c)
{
    sbuf errors = {0};
    int rc = config_load(path, c, &errors);
    if (rc != SS_OK) {
        print_errors(&errors);
        /* Already printed in full; main adds the first line once more. */
        int n = 0;
        for (const char *p = sbuf_str(&errors); *p; p++) n += *p == '\n';
        if (n > 1) ss_fail(rc, "%s: %d problems found (listed above)", path, n);
        else ss_fail(rc, "%s: invalid config (see above)", path);
    }
    sbuf_free(&errors);
    return rc;
}

/* ---- run / status / validate ---------------------------------------------- */

static const char run_help[] =
    "usage: sirenstack run CONFIG [options]\n"
    "\n"
    "Runs every stage of every sample that is not up to date. A committed stage\n"
    "is reused when its fingerprint (type, version, parameters, inputs, input\n"
    "file contents) matches and it is intact (every array, table and chunk it\n"
    "committed is there, as committed); a changed or damaged stage reruns with\n"
    "everything downstream. Every chunk read is checked against its checksum\n"
    "(SIRENSTACK_VERIFY=0 in the environment skips that, for trusted disks). A\n"
    "damaged HDF5 index is rebuilt from the stage files, with a warning.\n"
    "\n"
    "  --sample ID          only this sample\n"
    "  --array-index N      only the N-th sample of the config (0-based), as a\n"
    "                       cluster array task uses it (e.g. $SLURM_ARRAY_TASK_ID);\n"
    "                       stages that read a cohort stage not yet run wait for it\n"
    "  --cohort             only the cohort stages (scope: cohort) whose inputs every\n"
    "                       sample has committed, into OUTPUT/_cohort.h5\n"
    "  --from ARCHIVE       reuse, read-only, every stage a packed archive (sirenstack\n"
    "                       pack) holds with a matching fingerprint; compute the rest\n"
    "                       into this run's containers (repeatable: one per sample)\n"
    "  --stages A,B         only these stages (their inputs must be committed)\n"
    "  --force STAGE        recompute STAGE and everything downstream (repeatable)\n"
    "  --dry-run            print what would run and why; change nothing\n"
    "  --threads N          CPU threads (overrides run.threads; 0: all cores)\n"
    "  --device D           auto, cpu or cuda (overrides run.device)\n"
    "  --log-json FILE      append machine-readable events, one JSON object per line\n"
    "  --quiet              only warnings and errors\n"
    "  --help               this text\n";

static void split_list(const char *s, char ***out, int *n)
{
    char *copy = ss_strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        *out = realloc(*out, (size_t)(*n + 1) * sizeof **out);
        (*out)[(*n)++] = ss_strdup(t);
    }
    free(copy);
}

static int parse_run_options(int argc, char **argv, run_options *o, const char **log_path, const char *help,
                             int allow_run_opts)
{
    static const struct option opts[] = {
        {"sample", required_argument, 0, 's'}, {"array-index", required_argument, 0, 'a'},
        {"stages", required_argument, 0, 'S'}, {"force", required_argument, 0, 'f'},
        {"dry-run", no_argument, 0, 'n'},      {"threads", required_argument, 0, 't'},
        {"device", required_argument, 0, 'd'}, {"log-json", required_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {"cohort", no_argument, 0, 'c'},       {"from", required_argument, 0, 'F'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->array_index = -1;
    o->threads = -1;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        char *end;
        if (!allow_run_opts && ch != 's' && ch != 'a' && ch != 'c' && ch != 'h' && ch != '?' && ch != ':')
            return usage_error(help, "option %s is not used by this command", argv[optind - 1]);
        switch (ch) {
        case 's': o->sample = optarg; break;
        case 'a':
            o->array_index = strtol(optarg, &end, 10);
            if (*end || o->array_index < 0) return usage_error(help, "--array-index needs an integer >= 0, got '%s'", optarg);
            break;
        case 'S': split_list(optarg, &o->only, &o->n_only); break;
        case 'f': split_list(optarg, &o->force, &o->n_force); break;
        case 'n': o->dry_run = 1; break;
        case 'c': o->cohort_only = 1; break;
        case 'F':
            o->from = realloc(o->from, (size_t)(o->n_from + 1) * sizeof *o->from);
            o->from[o->n_from++] = ss_strdup(optarg);
            break;
        case 't':
            o->threads = (int)strtol(optarg, &end, 10);
            if (*end || o->threads < 0) return usage_error(help, "--threads needs an integer >= 0, got '%s'", optarg);
            break;
        case 'd':
            if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
                return usage_error(help, "--device must be auto, cpu or cuda, not '%s'", optarg);
            o->device = optarg;
            break;
        case 'j': *log_path = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'h': fputs(help, stdout); return 1;
        default: return usage_error(help, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return usage_error(help, "%s", optind >= argc ? "expected one CONFIG file" : "expected exactly one CONFIG file");
    if (o->cohort_only && (o->sample || o->array_index >= 0))
        return usage_error(help, "%s", "--cohort runs the cohort stages; --sample and --array-index run one sample's");
    return 0;
}

static void free_run_options(run_options *o)
{
    for (int i = 0; i < o->n_only; i++) free(o->only[i]);
    for (int i = 0; i < o->n_force; i++) free(o->force[i]);
    for (int i = 0; i < o->n_from; i++) free(o->from[i]);
    free(o->only);
    free(o->force);
    free(o->from);
}

int cmd_run(int argc, char **argv)
{
    run_options o;
    const char *log_path = NULL;
    int r = parse_run_options(argc, argv, &o, &log_path, run_help, 1);
    if (r) {
        free_run_options(&o);
        return r > 0 ? SS_OK : r;
    }
    config *c;
    int rc = load_config(argv[optind], &c);
    if (rc != SS_OK) {
        free_run_options(&o);
        return rc;
    }
    FILE *log = NULL;
    if (log_path && !(log = fopen(log_path, "a"))) {
        rc = ss_fail(SS_ERR_IO, "%s: cannot open the JSON log for writing", log_path);
        config_free(c);
        free_run_options(&o);
        return rc;
    }
    o.json_log = log;
    reporter *rep = reporter_new(isatty(2), c->progress_interval, log, o.quiet);
    runner_install_signals();
    rc = runner_run(c, &o, rep);
    reporter_free(rep);
    if (log) {
        /* A log that could not be written (a full disk) fails the run: a
         * cluster's bookkeeping would otherwise miss its events silently. */
        int bad = fflush(log) != 0 || ferror(log);
        int e = errno;
        if (fclose(log) != 0 && !bad) bad = 1, e = errno;
        if (bad && rc == SS_OK)
            rc = ss_fail(SS_ERR_IO, "%s: writing the JSON log failed (%s); the stages themselves ran as reported",
                         log_path, strerror(e));
    }
    config_free(c);
    free_run_options(&o);
    return rc;
}

static const char status_help[] =
    "usage: sirenstack status CONFIG [--sample ID | --array-index N]\n"
    "\n"
    "Shows, per sample and stage: done (fingerprint matches), stale (and what\n"
    "changed), pending, running (with pid and host), failed (with the error),\n"
    "blocked (an input cannot be read), damaged (what it committed is missing or\n"
    "not as committed, with the reason; run recomputes it and its dependants).\n"
    "Reads only; safe while a run is going.\n";

int cmd_status(int argc, char **argv)
{
    run_options o;
    const char *log_path = NULL;
    int r = parse_run_options(argc, argv, &o, &log_path, status_help, 0);
    if (r) return r > 0 ? SS_OK : r;
    config *c;
    int rc = load_config(argv[optind], &c);
    if (rc == SS_OK) rc = runner_status(c, &o);
    config_free(c);
    free_run_options(&o);
    return rc;
}

static const char validate_help[] =
    "usage: sirenstack validate CONFIG\n"
    "\n"
    "Checks the config (and its manifest) completely and runs nothing: unknown\n"
    "keys, wrong types, out-of-range values, unknown stage types, references to\n"
    "missing stages or outputs, cycles, duplicate names. Every problem is listed\n"
    "as file:line:column: key.path: message. Exit status 2 if any.\n";

int cmd_validate(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(validate_help, stdout);
        return SS_OK;
    }
    if (argc != 2 || argv[1][0] == '-') return usage_error(validate_help, "%s", "expected one CONFIG file");
    config *c;
    int rc = load_config(argv[1], &c);
    if (rc != SS_OK) return rc;
    printf("%s: valid: %d sample%s, %d stage%s, output %s (%s)\n", argv[1], c->n_samples, c->n_samples == 1 ? "" : "s",
           c->n_stages, c->n_stages == 1 ? "" : "s", c->output, c->store == STORE_ZARR ? "zarr" : "hdf5");
    config_free(c);
    return SS_OK;
}

/* ---- inspect ------------------------------------------------------------- */

static const char inspect_help[] =
    "usage: sirenstack inspect CONTAINER [--json]\n"
    "\n"
    "Prints the container's stages in commit order with their type, version,\n"
    "fingerprint, parameters and provenance, and every array with shape, dtype,\n"
    "chunking, compression and ratio, axes and voxel size.\n";

int open_container_flags(const char *path, int flags, store **st)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    store_format f = n > 5 && !strncmp(path + n - 5, ".zarr", 5) ? STORE_ZARR : STORE_HDF5;
    char *p = strndup(path, n);
    int rc = store_open(p, f, flags, st);
    free(p);
    return rc;
}

static int open_container(const char *path, store **st) { return open_container_flags(path, 0, st); }

/* Attributes every committed stage carries (the runner's provenance); the
 * rest are the stage's own results (final loss, kernel path, files read...). */
static int is_provenance_attr(const char *key)
{
    static const char *const keys[] = {"stage_type", "stage_version", "params", "fingerprint", "input_fingerprints",
                                       "inputs", "input_files", "sample", "software_version", "libraries", "host",
                                       "device", "started", "finished", "seconds", "threads", "seed",
                                       "compression", "sirenstack_committed", "sirenstack_arrays",
                                       "sirenstack_stage", "sirenstack_commit_time", "config", "manifest",
                                       "samples", "inputs_from_archive", NULL};
    for (const char *const *k = keys; *k; k++)
        if (!strcmp(key, *k)) return 1;
    return 0;
}

/* The stage's own attributes: numbers, strings and booleans on one line;
 * structured ones named on another (their values are in --json). */
static void print_stage_results(json_t *attrs)
{
    const char *key;
    json_t *v;
    int n = 0, m = 0;
    json_object_foreach(attrs, key, v) {
        if (is_provenance_attr(key) || json_is_object(v) || json_is_array(v)) continue;
        printf("%s%s ", n++ ? ", " : "    results  ", key);
        if (json_is_string(v)) printf("%s", json_string_value(v));
        else if (json_is_integer(v)) printf("%lld", (long long)json_integer_value(v));
        else if (json_is_real(v)) printf("%.6g", json_real_value(v));
        else printf("%s", json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null");
    }
    if (n) printf("\n");
    json_object_foreach(attrs, key, v) {
        if (is_provenance_attr(key) || !(json_is_object(v) || json_is_array(v))) continue;
        printf("%s%s", m++ ? ", " : "    details  ", key);
    }
    if (m) printf(" (see inspect --json)\n");
}

static void print_shape(const int64_t *v, int rank)
{
    for (int i = 0; i < rank; i++) printf("%s%lld", i ? "x" : "", (long long)v[i]);
}

int cmd_inspect(int argc, char **argv)
{
    int as_json = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(inspect_help, stdout);
            return SS_OK;
        }
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (argv[i][0] == '-') return usage_error(inspect_help, "unknown option '%s'", argv[i]);
        else if (path) return usage_error(inspect_help, "%s", "expected one CONTAINER");
        else path = argv[i];
    }
    if (!path) return usage_error(inspect_help, "%s", "expected one CONTAINER");
    store *st;
    int rc = open_container(path, &st);
    if (rc != SS_OK) return rc;
    char **stages = NULL;
    rc = store_list_stages(st, &stages);
    json_t *all = json_object();
    if (rc == SS_OK && !as_json)
        printf("%s (%s, layout version %d%s)\n", store_path(st), store_get_format(st) == STORE_ZARR ? "zarr" : "hdf5",
               store_layout_version(st), store_is_packed(st) ? ", a packed archive: read-only" : "");
    for (char **s = stages; rc == SS_OK && s && *s; s++) {
        json_t *attrs;
        if ((rc = store_stage_attrs(st, *s, &attrs)) != SS_OK) break;
        json_t *arrays_json = json_object();
        if (!as_json) {
            printf("/%s  [%s v%lld]  fingerprint %s\n", *s, json_string_value(json_object_get(attrs, "stage_type")),
                   (long long)json_integer_value(json_object_get(attrs, "stage_version")),
                   json_string_value(json_object_get(attrs, "fingerprint")));
            char *p = canonical_json(json_object_get(attrs, "params"));
            printf("    params   %s\n", p);
            free(p);
            json_t *in = json_object_get(attrs, "inputs");
            if (json_object_size(in)) {
                char *t = canonical_json(in);
                printf("    inputs   %s\n", t);
                free(t);
            }
            printf("    ran      %s .. %s (%.2fs) on %s, %s\n", json_string_value(json_object_get(attrs, "started")),
                   json_string_value(json_object_get(attrs, "finished")),
                   json_number_value(json_object_get(attrs, "seconds")), json_string_value(json_object_get(attrs, "host")),
                   json_string_value(json_object_get(attrs, "device")));
            printf("    software sirenstack %s\n", json_string_value(json_object_get(attrs, "software_version")));
            print_stage_results(attrs);
        }
        char **arrays = NULL;
        if ((rc = store_list_arrays(st, *s, &arrays)) != SS_OK) {
            json_decref(attrs);
            json_decref(arrays_json);
            break;
        }
        for (char **a = arrays; *a && rc == SS_OK; a++) {
            if (store_is_table(st, *s, *a) == 1) {
                table_data t;
                if ((rc = store_table_read(st, *s, *a, &t)) != SS_OK) break;
                json_t *cols = json_array();
                for (int k = 0; k < t.n_cols; k++) json_array_append_new(cols, json_string(t.names[k]));
                if (!as_json) {
                    printf("    %-10s table %lld rows:", *a, (long long)t.n_rows);
                    for (int k = 0; k < t.n_cols; k++) printf(" %s", t.names[k]);
                    printf("\n");
                }
                json_object_set_new(arrays_json, *a,
                                    json_pack("{s:s,s:I,s:o}", "kind", "table", "rows", (json_int_t)t.n_rows, "columns", cols));
                table_free(&t);
                continue;
            }
            store_array *arr;
            array_info info;
            if ((rc = store_array_open(st, *s, *a, &arr)) != SS_OK) break;
            rc = store_array_info(arr, &info);
            store_array_close(arr);
            if (rc != SS_OK) break;
            double raw = (double)dtype_size(info.dtype);
            for (int k = 0; k < info.rank; k++) raw *= (double)info.shape[k];
            double ratio = info.stored_bytes > 0 ? raw / (double)info.stored_bytes : 0;
            if (!as_json) {
                printf("    %-10s ", *a);
                print_shape(info.shape, info.rank);
                printf(" %s  chunks ", dtype_name(info.dtype));
                print_shape(info.chunk, info.rank);
                printf("  %s", info.compressor);
                if (ratio > 0) printf(" (ratio %.2f)", ratio);
                if (info.has_meta)
                    printf("  axes %s, voxel %g x %g x %g %s", info.meta.axes, info.meta.voxel[0], info.meta.voxel[1],
                           info.meta.voxel[2], info.meta.unit);
                printf("\n");
            }
            json_t *shape = json_array(), *chunk = json_array();
            for (int k = 0; k < info.rank; k++) {
                json_array_append_new(shape, json_integer(info.shape[k]));
                json_array_append_new(chunk, json_integer(info.chunk[k]));
            }
            json_object_set_new(arrays_json, *a,
                                json_pack("{s:s,s:o,s:o,s:s,s:s,s:I,s:f}", "kind", "array", "shape", shape, "chunks",
                                          chunk, "dtype", dtype_name(info.dtype), "compressor", info.compressor,
                                          "stored_bytes", (json_int_t)info.stored_bytes, "ratio", ratio));
        }
        store_names_free(arrays);
        json_object_set_new(attrs, "arrays", arrays_json);
        json_object_set_new(all, *s, attrs);
    }
    if (rc == SS_OK && as_json) {
        char *t = json_dumps(all, JSON_INDENT(2) | JSON_SORT_KEYS);
        puts(t);
        free(t);
    }
    json_decref(all);
    store_names_free(stages);
    store_close(st);
    return rc;
}

/* ---- verify -------------------------------------------------------------- */

static const char verify_help[] =
    "usage: sirenstack verify CONTAINER [--json]\n"
    "\n"
    "Checks a container completely without running anything: the index (HDF5)\n"
    "or the commit order and image series (Zarr), and for every committed stage\n"
    "every array and table it recorded: metadata as committed, every chunk\n"
    "present, and every chunk decoded and compared with its checksum. Prints one\n"
    "line per problem and a summary; notes (stages committed before checksums,\n"
    "reported as unverified; leftovers the next run removes) start with 'note:'.\n"
    "Damaged stages are recorded in the container's work folder, so that\n"
    "'sirenstack status' shows them and the next 'sirenstack run' recomputes them\n"
    "and what depends on them (and writes a damaged index anew).\n"
    "Exit status 0 when intact, 3 when damaged.\n"
    "\n"
    "  --json   one JSON object: container, intact, stages {name: intact |\n"
    "           unverified | damaged}, problems [{stage, member, message}], notes,\n"
    "           chunks_checked\n";

typedef struct {
    int as_json;
    json_t *problems, *notes;
} verify_out;

static void verify_finding(void *op, store_severity sev, const char *stage, const char *member, const char *msg)
{
    verify_out *v = op;
    if (v->as_json) {
        json_t *o = json_pack("{s:s?,s:s?,s:s}", "stage", stage, "member", member, "message", msg);
        json_array_append_new(sev == STORE_PROBLEM ? v->problems : v->notes, o);
    } else {
        printf("%s%s\n", sev == STORE_PROBLEM ? "" : "note: ", msg);
    }
}

int cmd_verify(int argc, char **argv)
{
    verify_out v = {0};
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(verify_help, stdout);
            return SS_OK;
        }
        if (!strcmp(argv[i], "--json")) v.as_json = 1;
        else if (argv[i][0] == '-') return usage_error(verify_help, "unknown option '%s'", argv[i]);
        else if (path) return usage_error(verify_help, "%s", "expected one CONTAINER");
        else path = argv[i];
    }
    if (!path) return usage_error(verify_help, "%s", "expected one CONTAINER");
    store *st;
    int rc = open_container_flags(path, STORE_OPEN_REPAIRABLE, &st);
    if (rc != SS_OK) return rc;
    v.problems = json_array();
    v.notes = json_array();
    json_t *states = json_object();
    int problems = store_index_verify(st, verify_finding, &v);
    int index_damaged = problems > 0;
    if (problems < 0) rc = problems, problems = 0;
    char **stages = NULL;
    if (rc == SS_OK && (rc = store_list_stages(st, &stages)) != SS_OK) {
        /* a commit order that cannot be read was reported above */
        if (index_damaged) rc = SS_OK;
    }
    int64_t chunks = 0;
    int n_stages = 0, n_damaged = 0;
    sbuf damaged = {0};
    for (char **s = stages; rc == SS_OK && s && *s; s++) {
        store_state state;
        rc = store_stage_verify(st, *s, verify_finding, &v, &state, &chunks);
        n_stages++;
        json_object_set_new(states, *s, json_string(state == STORE_INTACT       ? "intact"
                                                    : state == STORE_UNVERIFIED ? "unverified"
                                                                                : "damaged"));
        json_t *seen = store_damage_take(st);
        if (state == STORE_DAMAGED) {
            n_damaged++;
            sbuf_printf(&damaged, "%s%s", damaged.len ? ", " : "", *s);
            /* for status and the next run; a read-only container keeps none */
            const char *why = json_string_value(json_object_get(seen, *s));
            if (store_mark_damaged(st, *s, why ? why : "damaged (found by sirenstack verify)") != SS_OK) ss_errclear();
        } else if (state == STORE_INTACT && store_mark_damaged(st, *s, NULL) != SS_OK) {
            ss_errclear();
        }
        json_decref(seen);
    }
    store_names_free(stages);
    if (rc == SS_OK) {
        int intact = n_damaged == 0 && !index_damaged;
        if (v.as_json) {
            json_t *o = json_pack("{s:s,s:b,s:o,s:O,s:O,s:I}", "container", store_path(st), "intact", intact,
                                  "stages", states, "problems", v.problems, "notes", v.notes, "chunks_checked",
                                  (json_int_t)chunks);
            states = NULL;
            char *t = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
            puts(t);
            free(t);
            json_decref(o);
        } else if (intact) {
            printf("%s: intact: %d stage%s, %lld chunk%s checked\n", store_path(st), n_stages,
                   n_stages == 1 ? "" : "s", (long long)chunks, chunks == 1 ? "" : "s");
        } else {
            sbuf what = {0};
            if (index_damaged) sbuf_put(&what, "the index (the next run rebuilds it)");
            if (index_damaged && n_damaged) sbuf_put(&what, "; ");
            if (n_damaged)
                sbuf_printf(&what, "%d of %d stage%s (%s; the next run recomputes %s and what depends on %s)",
                            n_damaged, n_stages, n_stages == 1 ? "" : "s", sbuf_str(&damaged),
                            n_damaged == 1 ? "it" : "them", n_damaged == 1 ? "it" : "them");
            printf("%s: damaged: %s\n", store_path(st), sbuf_str(&what));
            sbuf_free(&what);
        }
        if (!intact)
            rc = ss_fail(SS_ERR_INPUT, "%s: damaged (%s%s%s)", store_path(st), index_damaged ? "index" : "",
                         index_damaged && n_damaged ? ", " : "", sbuf_str(&damaged));
    }
    sbuf_free(&damaged);
    json_decref(states);
    json_decref(v.problems);
    json_decref(v.notes);
    store_close(st);
    return rc;
}

/* ---- export -------------------------------------------------------------- */

static const char export_help[] =
    "usage: sirenstack export CONTAINER STAGE/NAME -o FILE [--bigtiff]\n"
    "\n"
    "Writes one array or table of a container to FILE. The format follows the\n"
    "extension:\n"
    "  .csv                tables\n"
    "  .npy                arrays, readable by numpy.load\n"
    "  .tif .tiff          ImageJ hyperstack: repeats as frames, voxel size as the\n"
    "                      calibration (unit micron, spacing, XResolution/YResolution)\n"
    "  .ome.tif .ome.tiff  OME-TIFF: DimensionOrder XYZTC, repeats as T, PhysicalSize in um\n"
    "  .ome.zarr           OME-Zarr 0.4 (Zarr v2, blosc lz4), repeats as the t axis\n"
    "Image exports take arrays Y x X, Z x Y x X or R x Z x Y x X and keep the\n"
    "element type. TIFFs become BigTIFF when they would pass 4 GiB (or above\n"
    "$SIRENSTACK_BIGTIFF_BYTES bytes of pixels), or always with --bigtiff.\n"
    "FILE is written under a temporary name and renamed when complete.\n";

static const char *npy_descr(ss_dtype t)
{
    static const char *d[DT_COUNT] = {"|u1", "<u2", "<i2", "<u4", "<i4", "<i8", "<f4", "<f8"};
    return d[t];
}

static int export_npy(store_array *a, const array_info *info, FILE *f)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", npy_descr(info->dtype));
    for (int i = 0; i < info->rank; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld,%s", (long long)info->shape[i], i + 1 < info->rank ? " " : "");
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    /* Pad so that magic + length + header is a multiple of 64 (NPY 1.0). */
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    unsigned short hl = (unsigned short)(n + pad + 1);
    fputc(hl & 0xff, f);
    fputc(hl >> 8, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    /* Stream plane by plane (the last two axes), so memory is one plane
     * whatever the leading axes hold. */
    int r = info->rank, lead = r > 2 ? r - 2 : 0;
    int64_t start[STORE_MAX_RANK] = {0}, count[STORE_MAX_RANK], planes = 1;
    size_t slab = dtype_size(info->dtype);
    for (int i = 0; i < r; i++) {
        count[i] = i < lead ? 1 : info->shape[i];
        if (i < lead) planes *= info->shape[i];
        else slab *= (size_t)info->shape[i];
    }
    if (r == 0 || slab == 0) planes = 0;
    void *buf = malloc(slab ? slab : 1);
    if (!buf) return ss_fail(SS_ERR_NOMEM, "out of memory");
    int rc = SS_OK;
    for (int64_t p = 0; p < planes && rc == SS_OK; p++) {
        int64_t rem = p;
        for (int i = lead - 1; i >= 0; i--) {
            start[i] = rem % info->shape[i];
            rem /= info->shape[i];
        }
        rc = store_array_read(a, start, count, info->dtype, buf);
        if (rc == SS_OK && fwrite(buf, 1, slab, f) != slab) rc = ss_fail(SS_ERR_IO, "write failed (disk full?)");
    }
    free(buf);
    return rc;
}

typedef enum { EXPORT_UNKNOWN, EXPORT_CSV, EXPORT_NPY, EXPORT_IMAGEJ, EXPORT_OMETIFF, EXPORT_OMEZARR } export_format;

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && !strncasecmp(s + n - k, suffix, k);
}

/* n: length of out without trailing slashes. */
static export_format export_format_of(const char *out, size_t n)
{
    if (ends_with(out, n, ".csv")) return EXPORT_CSV;
    if (ends_with(out, n, ".npy")) return EXPORT_NPY;
    if (ends_with(out, n, ".ome.tif") || ends_with(out, n, ".ome.tiff")) return EXPORT_OMETIFF;
    if (ends_with(out, n, ".tif") || ends_with(out, n, ".tiff")) return EXPORT_IMAGEJ;
    if (ends_with(out, n, ".ome.zarr")) return EXPORT_OMEZARR;
    return EXPORT_UNKNOWN;
}

/* An array as frames x slices x Y x X, from its rank and axes. */
static int image_dims(const char *what, const array_info *info, int64_t *t, int64_t *z, int *has_t, int *has_z)
{
    int r = info->rank;
    char lead[STORE_MAX_RANK + 1] = "";
    if (r >= 2 && r <= 4) {
        if (info->has_meta && strlen(info->meta.axes) == (size_t)r) {
            if (strcmp(info->meta.axes + r - 2, "yx")) r = 0;
            else snprintf(lead, sizeof lead, "%.*s", r - 2, info->meta.axes);
        } else {
            snprintf(lead, sizeof lead, "%s", r == 4 ? "rz" : r == 3 ? "z" : "");
        }
    }
    *has_t = lead[0] == 'r' || lead[0] == 't';
    *has_z = strchr(lead, 'z') != NULL;
    int ok = (r >= 2 && r <= 4) && (!strcmp(lead, "") || !strcmp(lead, "z") || !strcmp(lead, "r") ||
                                    !strcmp(lead, "t") || !strcmp(lead, "rz") || !strcmp(lead, "tz"));
    if (!ok)
        return ss_fail(SS_ERR_USAGE, "%s has %d dimensions (axes '%s'); image formats take Y x X, Z x Y x X or R x Z x Y x X",
                       what, info->rank, info->has_meta ? info->meta.axes : "?");
    *t = *has_t ? info->shape[0] : 1;
    *z = *has_z ? info->shape[*has_t] : 1;
    return SS_OK;
}

/* Streams an array plane by plane into a TIFF or OME-Zarr at tmp. */
static int export_image(store_array *a, const array_info *info, export_format fmt, const char *what, const char *tmp,
                        int bigtiff)
{
    int64_t T = 1, Z = 1;
    int has_t = 0, has_z = 0;
    int rc = image_dims(what, info, &T, &Z, &has_t, &has_z);
    if (rc != SS_OK) return rc;
    int r = info->rank;
    int64_t Y = info->shape[r - 2], X = info->shape[r - 1];
    double voxel[3] = {0, 0, 0};
    double um = info->has_meta ? unit_to_um(info->meta.unit[0] ? info->meta.unit : "micrometer") : 0;
    for (int i = 0; i < 3 && um > 0; i++) voxel[i] = info->meta.voxel[i] > 0 ? info->meta.voxel[i] * um : 0;
    if (T * Z == 0 || Y == 0 || X == 0) return ss_fail(SS_ERR_INPUT, "%s is empty", what);
    tiff_out *tw = NULL;
    omezarr_out *zw = NULL;
    if (fmt == EXPORT_OMEZARR) {
        omezarr_spec zs = {.has_t = has_t, .has_z = has_z, .t = T, .z = Z, .y = Y, .x = X, .dtype = info->dtype,
                           .name = what};
        memcpy(zs.voxel, voxel, sizeof voxel);
        rc = omezarr_open(tmp, &zs, &zw);
    } else {
        const char *env = getenv("SIRENSTACK_BIGTIFF_BYTES");
        char *creator = ss_asprintf("sirenstack %s", provenance_software_version());
        tiff_out_spec ts = {.kind = fmt == EXPORT_OMETIFF ? TIFF_OUT_OME : TIFF_OUT_IMAGEJ, .frames = T, .slices = Z,
                            .height = Y, .width = X, .dtype = info->dtype, .bigtiff = bigtiff,
                            .bigtiff_above = env && *env ? strtoull(env, NULL, 10) : 0, .name = what,
                            .creator = creator};
        memcpy(ts.voxel, voxel, sizeof voxel);
        rc = tiff_out_open(tmp, &ts, &tw);
        free(creator);
    }
    if (rc != SS_OK) return rc;
    void *buf = malloc((size_t)(Y * X) * dtype_size(info->dtype));
    if (!buf) rc = ss_fail(SS_ERR_NOMEM, "out of memory for a %lldx%lld plane", (long long)Y, (long long)X);
    for (int64_t t = 0; t < T && rc == SS_OK; t++)
        for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
            int64_t st[4] = {0}, ct[4] = {0};
            int k = 0;
            if (has_t) st[k] = t, ct[k++] = 1;
            if (has_z) st[k] = z, ct[k++] = 1;
            st[k] = 0, ct[k++] = Y;
            st[k] = 0, ct[k] = X;
            rc = store_array_read(a, st, ct, info->dtype, buf);
            if (rc == SS_OK) rc = zw ? omezarr_write_plane(zw, buf) : tiff_out_write_plane(tw, buf);
        }
    free(buf);
    if (rc != SS_OK) {
        if (zw) omezarr_abort(zw);
        else tiff_out_abort(tw);
        return rc;
    }
    return zw ? omezarr_close(zw) : tiff_out_close(tw);
}

/* Moves the finished OME-Zarr tree into place. An existing one is replaced,
 * but only if it is a Zarr group: a typo must not delete someone's folder. */
static int replace_dir(const char *tmp, const char *out)
{
    struct stat st;
    if (lstat(out, &st) == 0) {
        char *zg = ss_asprintf("%s/.zgroup", out);
        int is_zarr = zg && S_ISDIR(st.st_mode) && path_exists(zg);
        free(zg);
        if (!is_zarr) return ss_fail(SS_ERR_IO, "%s: exists and is not a Zarr group; not replacing it", out);
    }
    char *park = ss_asprintf("%s.old.%ld", out, (long)getpid()), *old = NULL;
    int rc = park ? fs_publish_dir(tmp, out, park, &old) : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && old) fs_rm_rf(old);
    free(old);
    free(park);
    return rc;
}

/* A stage or name the container lacks: the names it has (exit 3, as any
 * missing input), with the closest one. */
static int export_source_exists(store *st, const char *stage, const char *name)
{
    int has = store_has_stage(st, stage);
    if (has < 0) return has;
    char **names = NULL;
    int rc = has ? store_list_arrays(st, stage, &names) : store_list_stages(st, &names);
    if (rc != SS_OK) return rc;
    const char *want = has ? name : stage;
    sbuf list = {0};
    for (char **n = names; n && *n && rc == SS_OK; n++) {
        if (!strcmp(*n, want)) rc = 1;
        sbuf_printf(&list, "%s%s", n == names ? "" : ", ", *n);
    }
    if (rc == 1) rc = SS_OK;
    else {
        const char *near = names ? ss_closest(want, (const char *const *)names) : NULL;
        char hint[160] = "";
        if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
        if (has)
            rc = ss_fail(SS_ERR_INPUT, "%s: no array '%s' in stage '%s'; it has: %s%s", store_path(st), name, stage,
                         list.len ? sbuf_str(&list) : "nothing", hint);
        else
            rc = ss_fail(SS_ERR_INPUT, "%s: no stage '%s'; the container has: %s%s", store_path(st), stage,
                         list.len ? sbuf_str(&list) : "no committed stage", hint);
    }
    sbuf_free(&list);
    store_names_free(names);
    return rc;
}

int cmd_export(int argc, char **argv)
{
    const char *out = NULL, *pos[2] = {0};
    int npos = 0, bigtiff = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(export_help, stdout);
            return SS_OK;
        }
        if (!strcmp(argv[i], "--bigtiff")) {
            bigtiff = 1;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (++i >= argc) return usage_error(export_help, "%s", "-o needs a FILE");
            out = argv[i];
        } else if (argv[i][0] == '-') {
            return usage_error(export_help, "unknown option '%s'", argv[i]);
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            return usage_error(export_help, "unexpected argument '%s'", argv[i]);
        }
    }
    if (npos != 2 || !out) return usage_error(export_help, "%s", "expected CONTAINER STAGE/NAME -o FILE");
    const char *slash = strchr(pos[1], '/');
    if (!slash || slash == pos[1] || !slash[1]) return usage_error(export_help, "'%s' is not STAGE/NAME", pos[1]);
    char *stage = strndup(pos[1], (size_t)(slash - pos[1]));
    const char *name = slash + 1;
    store *st;
    int rc = open_container(pos[0], &st);
    if (rc != SS_OK) {
        free(stage);
        return rc;
    }
    size_t lo = strlen(out);
    while (lo > 1 && out[lo - 1] == '/') lo--;
    char *dst = strndup(out, lo);
    export_format fmt = export_format_of(out, lo);
    int is_table = export_source_exists(st, stage, name);
    if (is_table == SS_OK) is_table = store_is_table(st, stage, name);
    char *tmp = ss_asprintf("%s.tmp.%ld", dst, (long)getpid());
    FILE *f = NULL;
    if (is_table < 0) rc = is_table;
    else if (is_table == 1 && fmt != EXPORT_CSV)
        rc = ss_fail(SS_ERR_USAGE, "%s/%s is a table: export it to a .csv file", stage, name);
    else if (is_table == 0 && (fmt == EXPORT_CSV || fmt == EXPORT_UNKNOWN))
        rc = ss_fail(SS_ERR_USAGE, "%s/%s is an array: export it to a .npy, .tif, .ome.tif or .ome.zarr file", stage, name);
    else if ((fmt == EXPORT_CSV || fmt == EXPORT_NPY) && !(f = fopen(tmp, "wb")))
        rc = ss_fail(SS_ERR_IO, "%s: cannot write", out);
    if (rc == SS_OK && is_table == 1) {
        table_data t;
        if (rc == SS_OK && (rc = store_table_read(st, stage, name, &t)) == SS_OK) {
            if (table_write_csv(&t, f) != 0) rc = ss_fail(SS_ERR_IO, "%s: write failed", out);
            table_free(&t);
        }
    } else if (rc == SS_OK) {
        store_array *a;
        array_info info;
        if ((rc = store_array_open(st, stage, name, &a)) == SS_OK) {
            if ((rc = store_array_info(a, &info)) == SS_OK)
                rc = f ? export_npy(a, &info, f) : export_image(a, &info, fmt, pos[1], tmp, bigtiff);
            store_array_close(a);
        }
    }
    if (f && fclose(f) != 0 && rc == SS_OK) rc = ss_fail(SS_ERR_IO, "%s: write failed", out);
    if (rc == SS_OK && fmt == EXPORT_OMEZARR) rc = replace_dir(tmp, dst);
    else if (rc == SS_OK && rename(tmp, dst) != 0) rc = ss_fail(SS_ERR_IO, "%s: cannot write", out);
    if (rc == SS_OK) rc = fs_fsync_dir_of(dst);
    if (rc != SS_OK && fmt == EXPORT_OMEZARR) fs_rm_rf(tmp);
    else if (rc != SS_OK) unlink(tmp);
    if (rc == SS_OK) printf("%s\n", dst);
    free(tmp);
    free(dst);
    free(stage);
    store_close(st);
    /* the message is set; re-formatting it into itself would be undefined */
    return rc == SS_ERR_USAGE ? SS_ERR_CONFIG : rc;
}

/* ---- stages / schema ------------------------------------------------------ */

static int no_args(int argc, char **argv, const char *help)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(help, stdout);
        return 1;
    }
    if (argc > 1) return usage_error(help, "unexpected argument '%s'", argv[1]);
    return 0;
}

static const char version_help[] =
    "usage: sirenstack version\n"
    "\n"
    "Prints the version and the git revision the program was built from, e.g.\n"
    "'sirenstack 0.1.0 (git ec2d9e5-dirty)'. 'sirenstack --version' is the same.\n";

int cmd_version(int argc, char **argv)
{
    int r = no_args(argc, argv, version_help);
    if (r) return r > 0 ? SS_OK : r;
    puts(provenance_version_line());
    return SS_OK;
}

static const char stages_help[] =
    "usage: sirenstack stages [NAME...] [--json]\n"
    "\n"
    "Lists every stage type (or the ones named) with its version, inputs and\n"
    "outputs with the kinds of data they take and give (image, repeats, table,\n"
    "weights, mask), and its parameters (type, range or choices, default, meaning).\n"
    "\n"
    "  --json   the same as a JSON list, one object per type: name, version, doc,\n"
    "           stochastic, source, cohort (no, allowed, only), params [name,\n"
    "           type, default, required, nullable, doc, range {min, max,\n"
    "           min_exclusive, max_exclusive}, choices, items {min, max}],\n"
    "           inputs [name, kinds, doc, optional, multiple], outputs [name,\n"
    "           kinds, doc, like]\n";

static void print_stage_type(const stage_type *t)
{
    printf("%s (version %d)\n    %s\n", t->name, t->version, t->summary);
    if (t->flags & STAGE_COHORT_ONLY) printf("    scope  cohort: runs once per run, over every sample's outputs\n");
    else if (t->flags & STAGE_COHORT) printf("    scope  sample (default), or cohort: once per run, over every sample\n");
    for (int out = 0; out < 2; out++)
        for (const port_spec *p = out ? t->outputs : t->inputs; p && p->name; p++) {
            char kinds[64];
            config_kinds_text(p->kinds, kinds, sizeof kinds);
            printf("    %s %-14s %s", out ? "output" : "input ", p->name, kinds);
            if (p->like) printf(" (as input %s)", p->like);
            printf(": %s%s%s", p->doc ? p->doc : "", p->optional ? " (optional)" : "",
                   p->multiple ? " (one or more)" : "");
            if (p->ref_max) printf(" (references of at most %d characters)", p->ref_max);
            printf("\n");
        }
    for (const param_spec *p = t->params; p && p->name; p++) {
        char rng[96];
        config_param_range_text(p, rng, sizeof rng);
        printf("    param  %-14s %s", p->name, config_param_type_name(p->type));
        if (p->type == P_ENUM) printf(" (%s)", p->choices);
        printf("%s, %s%s: %s\n", rng, p->def ? "default " : "required", p->def ? p->def : "", p->doc ? p->doc : "");
    }
}

int cmd_stages(int argc, char **argv)
{
    int as_json = 0, n_names = 0;
    const stage_type **chosen = calloc((size_t)argc + 1, sizeof *chosen);
    if (!chosen) return ss_fail(SS_ERR_NOMEM, "out of memory");
    int rc = SS_OK;
    for (int i = 1; i < argc && rc == SS_OK; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(stages_help, stdout);
            free(chosen);
            return SS_OK;
        }
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (argv[i][0] == '-') rc = usage_error(stages_help, "unknown option '%s'", argv[i]);
        else if (!(chosen[n_names++] = stage_type_find(argv[i]))) {
            const char *names[128];
            int n = 0;
            for (const stage_type *const *t = stage_types_all(); *t && n < 127; t++) names[n++] = (*t)->name;
            names[n] = NULL;
            const char *near = ss_closest(argv[i], names);
            rc = ss_fail(SS_ERR_CONFIG, "no stage type '%s'%s%s%s; 'sirenstack stages' lists them", argv[i],
                         near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        }
    }
    const stage_type *const *types = n_names ? chosen : stage_types_all();
    json_t *all = json_array();
    for (const stage_type *const *t = types; rc == SS_OK && *t; t++) {
        if (as_json) json_array_append_new(all, config_stage_type_json(*t));
        else {
            print_stage_type(*t);
            if (t[1]) printf("\n");
        }
    }
    if (rc == SS_OK && as_json) {
        char *text = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(text);
        free(text);
    }
    json_decref(all);
    free(chosen);
    return rc;
}

static const char schema_help[] =
    "usage: sirenstack schema\n"
    "\n"
    "Prints the JSON Schema (draft-07) of the config format, generated from the\n"
    "stage table; schemas/config.schema.json is this output.\n";

int cmd_schema(int argc, char **argv)
{
    int r = no_args(argc, argv, schema_help);
    if (r) return r > 0 ? SS_OK : r;
    json_t *s = config_json_schema();
    char *t = json_dumps(s, JSON_INDENT(2) | JSON_SORT_KEYS);
    puts(t);
    free(t);
    json_decref(s);
    return SS_OK;
}
