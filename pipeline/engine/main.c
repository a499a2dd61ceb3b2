/* sirenstack: the command line. Only main exits; everything below returns codes. */
#include "commands.h"
#include "error.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: sirenstack COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run CONFIG        run the pipeline (reuses committed stages whose fingerprint matches)\n"
    "  validate CONFIG   check a config and its manifest; run nothing\n"
    "  status CONFIG     show, per sample and stage: done, stale, pending, running, failed, damaged\n"
    "  inspect CONTAINER print a container's tree: arrays, shapes, chunks, compression, provenance\n"
    "  verify CONTAINER  check every stage, array, table and chunk checksum of a container; run nothing\n"
    "  export CONTAINER  write an array or table to TIFF, OME-TIFF, OME-Zarr, NPY or CSV\n"
    "  stages [NAME]     list the stage types (or one) with their parameters, inputs and outputs\n"
    "  schema            print the JSON Schema of the config format\n"
    "  pack CONTAINER    write one self-contained HDF5 archive of a container (-o ARCHIVE.h5)\n"
    "  submit CONFIG     submit the run to SLURM: an array job per level, the cohort stages between\n"
    "  synth -o OUT.h5   write a phantom with ground truth (dendrites, nuclei, ...) without a config\n"
    "  version           print the version (also --version)\n"
    "  help [COMMAND]    this text, or a command's options (as 'sirenstack COMMAND --help')\n"
    "\n"
    "'sirenstack COMMAND --help' describes each command's options.\n"
    "exit status: 0 ok, 2 config, 3 input data, 4 I/O, 64 usage, 70 internal, 75 interrupted (rerun resumes)\n";

static const struct {
    const char *name;
    int (*fn)(int, char **);
} cmds[] = {
    {"run", cmd_run},       {"validate", cmd_validate}, {"status", cmd_status}, {"inspect", cmd_inspect},
    {"verify", cmd_verify}, {"export", cmd_export},     {"stages", cmd_stages}, {"schema", cmd_schema},
    {"synth", cmd_synth},   {"version", cmd_version}, {"submit", cmd_submit},
    {"pack", cmd_pack},
};
#define N_CMDS (sizeof cmds / sizeof *cmds)

static int find_command(const char *name)
{
    for (size_t i = 0; i < N_CMDS; i++)
        if (!strcmp(name, cmds[i].name)) return (int)i;
    return -1;
}

/* One line: the unknown name, the closest command, the commands there are. */
static int unknown_command(const char *name)
{
    const char *names[N_CMDS + 2];
    for (size_t i = 0; i < N_CMDS; i++) names[i] = cmds[i].name;
    names[N_CMDS] = "help";
    names[N_CMDS + 1] = NULL;
    const char *near = ss_closest(name, names);
    fprintf(stderr, "sirenstack: unknown command '%s'", name);
    if (near) fprintf(stderr, " (did you mean '%s'?)", near);
    fputs("; commands:", stderr);
    for (const char *const *n = names; *n; n++) fprintf(stderr, " %s", *n);
    fputs(" (sirenstack --help)\n", stderr);
    return 64;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        (!strcmp(argv[1], "help") && (argc == 2 || !strcmp(argv[2], "help")))) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 64 : 0;
    }
    if (!strcmp(argv[1], "--version")) argv[1] = (char *)"version";
    /* 'help COMMAND' is 'COMMAND --help' */
    char *help_argv[] = {argv[0], NULL, (char *)"--help", NULL};
    if (!strcmp(argv[1], "help")) {
        if (argc > 3) {
            fprintf(stderr, "sirenstack: help takes one COMMAND, got %d words\n", argc - 2);
            return 64;
        }
        if (find_command(argv[2]) < 0) return unknown_command(argv[2]);
        help_argv[1] = argv[2];
        argc = 3;
        argv = help_argv;
    }
    int i = find_command(argv[1]);
    if (i < 0) return unknown_command(argv[1]);
    int rc = cmds[i].fn(argc - 1, argv + 1);
    if (rc != SS_OK && rc != SS_ERR_USAGE) fprintf(stderr, "error: %s\n", ss_errmsg());
    return ss_exit_status(rc);
}
