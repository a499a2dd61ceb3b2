/* Fuzz target: a config file. The input is written as config.yaml in the
 * scratch folder and loaded as `sirenstack validate` does: the YAML loader
 * (pipeline/engine/yamltree.c: anchors, aliases, depth and size limits), then every
 * check of pipeline/engine/config.c (run, samples, stages, parameters, references,
 * kinds, cycles, {field} substitution) and, for `samples: {manifest: ...}`,
 * the manifest parser of pipeline/engine/samples.c on the two manifests the
 * folder holds (manifests/samples.tsv and .csv). Nothing else is read:
 * validation opens no sample data, and a manifest named outside the scratch
 * folder makes the input one to skip. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "fuzz_common.h"
#include "util.h"
#include "yamltree.h"

static const char tsv[] = "# samples\nid\tanimal\tvoxel_size\trepeats\tinput\n"
                          "m1-s1\tm1\t1.0 0.1 0.1\t4\tdata/m1.h5\nm2-s1\tm2\t1,0.1,0.1\t1\tdata/m2.h5\n";
static const char csv[] = "\xEF\xBB\xBFid,input,voxel_size,condition\r\n"
                          "a1,a1.h5,\"1.0, 0.1, 0.1\",control\r\na2,\"b, c/a2.h5\",2x0.2x0.2,\"drug \"\"X\"\"\"\r\n";

static char *cfg_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char *dir = fuzz_path("manifests");
    fuzz_fresh_dir(dir);
    char *t = path_join(dir, "samples.tsv"), *c = path_join(dir, "samples.csv");
    fuzz_write(t, tsv, strlen(tsv));
    fuzz_write(c, csv, strlen(csv));
    free(t);
    free(c);
    free(dir);
    cfg_path = fuzz_path("config.yaml");
    return 0;
}

/* 1 when the config's manifest, if it names one, lies inside the scratch
 * folder (which holds no links, so the lexical check is the real one). */
static int manifest_inside(const uint8_t *data, size_t size)
{
    ydoc *d;
    if (ydoc_load_string(cfg_path, (const char *)data, size, &d) != SS_OK) {
        ss_errclear();
        return 1; /* config_load fails the same way, before any manifest */
    }
    const ynode *m = ymap_get(ymap_get(d->root, "samples"), "manifest");
    int ok = 1;
    if (m && m->kind == YN_SCALAR) {
        const char *dir = fuzz_dir();
        char *joined = path_join(dir, m->value), *norm = joined ? path_normalize(joined) : NULL;
        size_t n = strlen(dir);
        ok = norm && !strncmp(norm, dir, n) && (norm[n] == '/' || !norm[n]);
        free(norm);
        free(joined);
    }
    ydoc_free(d);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!manifest_inside(data, size)) return 0;
    fuzz_write(cfg_path, data, size);
    config *c = NULL;
    sbuf errors = {0};
    int rc = config_load(cfg_path, &c, &errors);
    if (rc == SS_OK) {
        /* what a run asks of a valid config first */
        for (int i = 0; i < c->n_stages; i++) {
            if (config_find_stage(c, c->stages[i].name) != i) abort();
            for (int s = 0; s < c->n_samples; s++) {
                json_t *p = NULL;
                if (config_stage_params(c, i, &c->samples[s], &p) == SS_OK) json_decref(p);
                ss_errclear();
            }
        }
        config_free(c);
    } else if (rc != SS_ERR_CONFIG && rc != SS_ERR_NOMEM) {
        abort(); /* a config is wrong with exit 2, or memory ran out */
    }
    sbuf_free(&errors);
    ss_errclear();
    return 0;
}
