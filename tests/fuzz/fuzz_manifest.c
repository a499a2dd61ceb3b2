/* Fuzz target: a sample manifest (pipeline/engine/samples.c), TSV or CSV with RFC
 * 4180 quoting. The input is written as a .tsv and as a .csv manifest (the
 * name picks the separator) and read as a config's `samples: {manifest:}`
 * reads it: header, comments, quoting, voxel sizes, repeats, sample ids,
 * duplicates. */
#include <stdlib.h>

#include "config.h"
#include "error.h"
#include "fuzz_common.h"
#include "util.h"

static char *paths[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    paths[0] = fuzz_path("samples.tsv");
    paths[1] = fuzz_path("samples.csv");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int k = 0; k < 2; k++) {
        fuzz_write(paths[k], data, size);
        sbuf errors = {0};
        cfg_errors e = {.file = "config.yaml", .out = &errors};
        sample_info *s = NULL;
        int n = 0;
        int rc = samples_load_manifest(paths[k], &e, "config.yaml", 3, 3, &s, &n);
        if (rc == SS_OK) {
            for (int i = 0; i < n; i++)
                if (!sample_id_valid(s[i].id)) abort(); /* an accepted id is a valid name */
            samples_free(s, n);
        } else if (e.count == 0) {
            abort(); /* a refused manifest says why */
        }
        sbuf_free(&errors);
        ss_errclear();
    }
    return 0;
}
