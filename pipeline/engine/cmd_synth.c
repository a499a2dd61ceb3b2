/* sirenstack synth: a phantom container without a config.
 *
 * The command writes a small temporary config (one sample named after the
 * output file, one stage `synth`) and runs it with the runner, so the
 * container, its provenance, the fingerprint and the reuse of an
 * up-to-date container are exactly those of `sirenstack run`; the
 * temporary config is removed afterwards. Config errors are reported
 * against the options that caused them rather than the temporary file. */
#include "commands.h"
#include "config.h"
#include "error.h"
#include "runner.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char synth_help[] =
    "usage: sirenstack synth -o OUT.h5|OUT.zarr [options]\n"
    "\n"
    "Writes a phantom with ground truth (stage type synth) into a standalone\n"
    "container: group /synth with repeats, truth, labels, spines and artifacts.\n"
    "The sample is named after the file (OUT), so a given seed and file name\n"
    "always give the same data; an up-to-date container is left as it is.\n"
    "\n"
    "  -o, --output PATH    the container: .h5 (HDF5, with PATH.d beside it) or .zarr\n"
    "  --phantom NAME       dendrites (default), nuclei, membranes, nuclei_membranes, beads\n"
    "  --shape Z,Y,X        volume size in voxels (default 16,256,256)\n"
    "  --repeats R          noisy repeats (default 4)\n"
    "  --voxel Z,Y,X        voxel size in micrometer (default by phantom)\n"
    "  --seed N             run seed (default 1)\n"
    "  --compression NAME   blosc-lz4 (default), blosc-zstd, gzip (no plugin needed in\n"
    "                       HDF5 readers), none\n"
    "  --set KEY=VALUE      any other parameter of stage synth (repeatable); VALUE\n"
    "                       is JSON where it parses (20, [1, 2], null), else a string\n"
    "  --threads N          CPU threads (0: all cores, the default)\n"
    "  --quiet              only warnings and errors\n"
    "  --help               this text\n"
    "\n"
    "'sirenstack stages' lists the parameters of synth.\n";

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "sirenstack synth: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", synth_help);
    return SS_ERR_USAGE;
}

/* "16,256,256" or "16x256x256": three positive numbers. */
static json_t *parse_triple(const char *s, int integers)
{
    json_t *a = json_array();
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v > 0) || (integers && v != (double)(long long)v)) break;
        json_array_append_new(a, integers ? json_integer((json_int_t)v) : json_real(v));
        p = end;
        if (i < 2) {
            if (*p != ',' && *p != 'x') break;
            p++;
        }
    }
    if (json_array_size(a) != 3 || *p) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* Config errors name the temporary file and a key path inside it; what the
 * user wrote was an option, so say which. */
static void report_config_errors(const char *tmp, const sbuf *errors)
{
    const char *p = sbuf_str(errors);
    size_t lt = strlen(tmp);
    while (*p) {
        size_t l = strcspn(p, "\n");
        const char *line = p, *stop = p + l;
        if (l > lt && !strncmp(line, tmp, lt)) {
            /* file:line:col: -> drop the three fields. */
            int colons = 0;
            const char *q = line + lt;
            while (q < stop && colons < 3) colons += *q++ == ':';
            while (q < stop && *q == ' ') q++;
            line = q;
        }
        static const char *const prefixes[] = {"stages.synth.params.", "run.", NULL};
        for (int i = 0; prefixes[i]; i++)
            if (!strncmp(line, prefixes[i], strlen(prefixes[i]))) line += strlen(prefixes[i]);
        fprintf(stderr, "sirenstack synth: %.*s\n", (int)(stop - line), line);
        p = *stop ? stop + 1 : stop;
    }
}

int cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},  {"phantom", required_argument, 0, 'p'},
        {"shape", required_argument, 0, 's'},   {"repeats", required_argument, 0, 'r'},
        {"voxel", required_argument, 0, 'v'},   {"seed", required_argument, 0, 'S'},
        {"set", required_argument, 0, 'k'},     {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"compression", required_argument, 0, 'c'},
        {0, 0, 0, 0},
    };
    const char *out = NULL, *compression = "blosc-lz4";
    long long seed = 1;
    int threads = 0, quiet = 0;
    json_t *params = json_object();
    int rc = SS_OK;
    optind = 1;
    opterr = 0;
    int ch;
    while (rc == SS_OK && (ch = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        char *end;
        json_t *v;
        switch (ch) {
        case 'o': out = optarg; break;
        case 'p': json_object_set_new(params, "phantom", json_string(optarg)); break;
        case 's':
        case 'v':
            if (!(v = parse_triple(optarg, ch == 's'))) {
                rc = usage(ch == 's' ? "--shape needs three positive integers Z,Y,X, got '%s'"
                                     : "--voxel needs three positive numbers Z,Y,X, got '%s'",
                           optarg);
                break;
            }
            json_object_set_new(params, ch == 's' ? "shape" : "voxel_size", v);
            break;
        case 'r': {
            long r = strtol(optarg, &end, 10);
            if (*end || end == optarg) rc = usage("--repeats needs an integer, got '%s'", optarg);
            else json_object_set_new(params, "repeats", json_integer(r));
            break;
        }
        case 'S':
            seed = strtoll(optarg, &end, 10);
            if (*end || end == optarg || seed < 0) rc = usage("--seed needs an integer >= 0, got '%s'", optarg);
            break;
        case 'k': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                rc = usage("--set needs KEY=VALUE, got '%s'", optarg);
                break;
            }
            char *key = strndup(optarg, (size_t)(eq - optarg));
            json_error_t je;
            v = json_loads(eq + 1, JSON_DECODE_ANY, &je);
            json_object_set_new(params, key, v ? v : json_string(eq + 1));
            free(key);
            break;
        }
        case 't':
            threads = (int)strtol(optarg, &end, 10);
            if (*end || end == optarg || threads < 0) rc = usage("--threads needs an integer >= 0, got '%s'", optarg);
            break;
        case 'c': compression = optarg; break;
        case 'q': quiet = 1; break;
        case 'h':
            fputs(synth_help, stdout);
            json_decref(params);
            return SS_OK;
        default: rc = usage("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (rc == SS_OK && optind < argc) rc = usage("unexpected argument '%s'", argv[optind]);
    if (rc == SS_OK && !out) rc = usage("%s", "an output container is required (-o OUT.h5)");
    if (rc != SS_OK) {
        json_decref(params);
        return rc;
    }

    /* The container is <dir>/<sample>.h5: the file's base name is the
     * sample. */
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') n--;
    int zarr = n > 5 && !strncmp(out + n - 5, ".zarr", 5);
    size_t ext = zarr ? 5 : n > 3 && !strncmp(out + n - 3, ".h5", 3) ? 3 : 0;
    const char *slash = memrchr(out, '/', n);
    const char *base = slash ? slash + 1 : out;
    char *sample = ext ? strndup(base, (size_t)(out + n - ext - base)) : NULL;
    if (!ext || !sample || !sample_id_valid(sample)) {
        free(sample);
        json_decref(params);
        return usage("the output must be NAME.h5 or NAME.zarr with NAME of letters, digits, _ and -, got '%s'", out);
    }
    char *dir = slash ? strndup(out, (size_t)(slash - out)) : ss_strdup(".");
    if (slash == out) free(dir), dir = ss_strdup("/");
    char cwd[4096];
    char *absdir = dir[0] == '/' ? ss_strdup(dir) : getcwd(cwd, sizeof cwd) ? path_join(cwd, dir) : NULL;
    char *normdir = absdir ? path_normalize(absdir) : NULL;
    free(dir);
    free(absdir);
    if (!normdir) {
        free(sample);
        json_decref(params);
        return ss_fail(SS_ERR_IO, "%s: cannot resolve the output folder", out);
    }

    const char *tmpbase = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *tmpdir = ss_asprintf("%s/sirenstack-synth-XXXXXX", tmpbase);
    char *cfgpath = NULL;
    if (!mkdtemp(tmpdir)) {
        rc = ss_fail(SS_ERR_IO, "%s: cannot make a temporary folder for the config", tmpbase);
    } else {
        cfgpath = path_join(tmpdir, "synth.yaml");
        json_t *outj = json_string(normdir);
        char *outq = json_dumps(outj, JSON_ENCODE_ANY);
        json_decref(outj);
        json_t *compj = json_string(compression);
        char *compq = json_dumps(compj, JSON_ENCODE_ANY);
        json_decref(compj);
        char *pj = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
        /* JSON is YAML's flow style, so values pass through unchanged. */
        char *text = ss_asprintf("version: 1\n"
                                 "run:\n"
                                 "  name: synth\n"
                                 "  output: %s\n"
                                 "  store: %s\n"
                                 "  compression: %s\n"
                                 "  seed: %lld\n"
                                 "  threads: %d\n"
                                 "samples:\n"
                                 "  - id: %s\n"
                                 "stages:\n"
                                 "  synth:\n"
                                 "    uses: synth\n"
                                 "    params: %s\n",
                                 outq, zarr ? "zarr" : "hdf5", compq, seed, threads, sample, pj);
        FILE *f = fopen(cfgpath, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
            if (f) fclose(f);
            rc = ss_fail(SS_ERR_IO, "%s: cannot write the temporary config", cfgpath);
        }
        free(outq);
        free(compq);
        free(pj);
        free(text);
    }
    config *c = NULL;
    if (rc == SS_OK) {
        sbuf errors = {0};
        rc = config_load(cfgpath, &c, &errors);
        if (rc != SS_OK) {
            report_config_errors(cfgpath, &errors);
            rc = ss_fail(SS_ERR_CONFIG, "synth: invalid options (see above)");
        }
        sbuf_free(&errors);
    }
    if (rc == SS_OK) {
        run_options o = {.array_index = -1, .threads = -1, .device = "cpu", .quiet = quiet};
        reporter *rep = reporter_new(isatty(2), c->progress_interval, NULL, quiet);
        runner_install_signals();
        rc = runner_run(c, &o, rep);
        reporter_free(rep);
    }
    config_free(c);
    if (cfgpath) unlink(cfgpath);
    if (tmpdir) rmdir(tmpdir);
    free(cfgpath);
    free(tmpdir);
    free(normdir);
    free(sample);
    json_decref(params);
    return rc;
}
