/* sirenstack: the command line. Only main exits; everything below returns codes. */
#include "commands.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: sirenstack COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  run CONFIG        run the pipeline (reuses committed stages whose fingerprint matches)\n"
    "  validate CONFIG   check a config and its manifest; run nothing\n"
    "  status CONFIG     show, per sample and stage: done, stale, pending, running, failed\n"
    "  inspect CONTAINER print a container's tree: arrays, shapes, chunks, compression, provenance\n"
    "  export CONTAINER  write an array or table to TIFF, OME-TIFF, OME-Zarr, NPY or CSV\n"
    "  stages            list the stage types with their parameters, inputs and outputs\n"
    "  schema            print the JSON Schema of the config format\n"
    "  synth -o OUT.h5   write a phantom with ground truth (dendrites, nuclei, ...) without a config\n"
    "\n"
    "'sirenstack COMMAND --help' describes each command's options.\n"
    "exit status: 0 ok, 2 config, 3 input data, 4 I/O, 64 usage, 70 internal, 75 interrupted (rerun resumes)\n";

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 64 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("sirenstack %s\n", cmd_version());
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", cmd_run},         {"validate", cmd_validate}, {"status", cmd_status}, {"inspect", cmd_inspect},
        {"export", cmd_export},   {"stages", cmd_stages},     {"schema", cmd_schema},
        {"synth", cmd_synth},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(argv[1], cmds[i].name)) {
            int rc = cmds[i].fn(argc - 1, argv + 1);
            if (rc != SS_OK && rc != SS_ERR_USAGE) fprintf(stderr, "error: %s\n", ss_errmsg());
            return ss_exit_status(rc);
        }
    fprintf(stderr, "sirenstack: unknown command '%s'\n\n%s", argv[1], usage);
    return 64;
}
