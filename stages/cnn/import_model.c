/* import_model: a trained model from another container (another run, or the
 * cohort's training run), so one model serves many samples: its weights,
 * architecture and normalisation are copied into this sample's container as
 * the `weights` output, with where they came from. The source stage's files
 * join the fingerprint: retraining the model there reruns what uses it here.
 * HDF5 containers (the `.h5` index, with its `.h5.d` stage files beside it). */
#include "cnn.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

/* The committed files of the stage in <container>.d/stages/ (<stage>.<id>.h5). */
static json_t *companions(const json_t *params, const char *param, const char *path)
{
    (void)param;
    const char *stage = json_string_value(json_object_get(params, "stage"));
    if (!stage) return NULL;
    size_t dl = strlen(path) + 16;
    char *dir = malloc(dl);
    if (!dir) return NULL;
    snprintf(dir, dl, "%s.d/stages", path);
    json_t *out = json_array();
    DIR *d = opendir(dir);
    size_t sl = strlen(stage);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, stage, sl) || e->d_name[sl] != '.') continue;
        size_t fl = strlen(dir) + strlen(e->d_name) + 2;
        char *f = malloc(fl);
        if (!f) continue;
        snprintf(f, fl, "%s/%s", dir, e->d_name);
        json_array_append_new(out, json_string(f));
        free(f);
    }
    if (d) closedir(d);
    free(dir);
    return out;
}

static int run(stage_ctx *c)
{
    const char *path = ctx_str(c, "container"), *stage = ctx_str(c, "stage"), *array = ctx_str(c, "array");
    store *src;
    int rc = store_open(path, STORE_HDF5, 0, &src);
    if (rc != SS_OK) return rc;
    net_arch a;
    float *params = NULL;
    cnn_norm nm;
    json_t *attrs = NULL;
    if ((rc = cnn_model_load(src, stage, array, &a, &params, &nm)) != SS_OK) goto done;
    if ((rc = store_stage_attrs(src, stage, &attrs)) != SS_OK) goto done;
    if ((rc = cnn_model_save(c, &a, params, &nm)) != SS_OK) goto done;
    json_t *pairs = json_object_get(attrs, "pairs");
    if (json_is_string(pairs)) ctx_attr(c, "pairs", json_incref(pairs));
    json_t *fp = json_object_get(attrs, "fingerprint"), *type = json_object_get(attrs, "type");
    ctx_attr(c, "source", json_pack("{s:s,s:s,s:s,s:O?,s:O?}", "container", path, "stage", stage, "array", array,
                                    "fingerprint", fp, "type", type));
done:
    json_decref(attrs);
    free(params);
    store_close(src);
    return rc;
}

static const param_spec params[] = {
    {.name = "container", .type = P_PATH, .flags = PARAM_INPUT_FILE,
     .doc = "the container holding the model: an .h5 file (its .h5.d folder beside it)"},
    {.name = "stage", .type = P_STR, .doc = "the training stage there (denoise_train, n2n_train, cnn_motion, ...)"},
    {.name = "array", .type = P_STR, .def = "\"weights\"", .doc = "the weights array of that stage"},
    {0},
};
static const port_spec inputs[] = {{0}};
static const port_spec outputs[] = {
    {.name = "weights", .kinds = KIND_WEIGHTS, .doc = "the model, for denoise_apply or n2n_apply"},
    {0},
};

const stage_type stage_import_model = {
    .name = "import_model",
    .version = 1,
    .summary = "a trained CNN model from another container, so one model serves many samples",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
    .companions = companions,
};
