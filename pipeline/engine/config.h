/* A run's config: loaded from one YAML file, validated completely before
 * anything runs. Every problem found is reported (not only the first), each as
 * "file:line:col: key.path: what is wrong, what was expected". */
#ifndef SS_CONFIG_H
#define SS_CONFIG_H

#include <jansson.h>
#include <stdint.h>

#include "stage.h"
#include "util.h"

#define CONFIG_VERSION 1

typedef enum { DEVICE_AUTO, DEVICE_CPU, DEVICE_CUDA } run_device;

typedef struct {
    char *port;
    char *stage;   /* referenced stage */
    char *output;  /* referenced output of that stage */
    int stage_index;
} stage_input;

typedef struct {
    char *name;
    const stage_type *type;
    json_t *params;     /* validated, defaults applied, before sample substitution */
    stage_input *inputs;
    int n_inputs;
    int line, col;      /* where the stage is declared */
    int cohort;         /* scope: cohort: runs once per run over the samples' outputs */
    int *subset;        /* scope cohort: indices of the samples it reads (all when n_subset == 0) */
    int n_subset;
    int level;          /* how many cohort stages lie upstream on the longest path; a
                           per-sample stage of level L runs after the cohort stages of
                           level L - 1, a cohort stage of level L after the per-sample
                           stages of level L */
} stage_decl;

typedef struct config {
    char *path;   /* the config file */
    char *dir;    /* its folder: relative paths are taken from here */
    char *run_name;
    char *output; /* absolute or relative to dir, resolved */
    store_format store;
    store_compression compression; /* of the arrays this run writes */
    run_device device;
    int threads;  /* 0: all cores */
    uint64_t seed;
    double checkpoint_seconds;
    int64_t checkpoint_steps;
    double progress_interval; /* seconds between plain progress lines off a terminal */
    sample_info *samples;
    int n_samples;
    char *manifest; /* the manifest file, if samples came from one */
    json_t *slurm;      /* the slurm section, validated, defaults applied */
    stage_decl *stages; /* in file order */
    int n_stages;
} config;

/* Loads and validates. On failure returns SS_ERR_CONFIG; every error line is
 * appended to *errors (one per line), and ss_errmsg() holds the first. */
int config_load(const char *path, config **out, sbuf *errors);
void config_free(config *c);
int config_find_stage(const config *c, const char *name);

/* The samples a cohort stage reads: n and the k-th sample's index. */
int config_cohort_n(const config *c, int i);
int config_cohort_sample(const config *c, int i, int k);

/* Parameters of stage i for one sample (s NULL for a cohort stage): {field} substituted, paths resolved
 * against the config's folder. New reference. */
int config_stage_params(const config *c, int i, const sample_info *s, json_t **out);

/* Validation of one parameter block against a type's spec (also used by the
 * JSON Schema generator's tests). */
typedef struct ynode ynode;

/* The JSON Schema of the config format, generated from the stage table. */
json_t *config_json_schema(void);

/* A stage type as data, the shape `sirenstack stages --json` prints (README,
 * "Stage types"): {name, version, doc, stochastic, source, params: [{name,
 * type, default, required, nullable, doc, range?: {min, max, min_exclusive,
 * max_exclusive}, choices?: [...], items?: {min, max}}], inputs: [{name,
 * kinds, doc, optional, multiple}], outputs: [{name, kinds, doc, like}]}.
 * kinds: a list of image, repeats, table, weights, mask; cohort: no, allowed or
 * only (scope: cohort). New reference. */
json_t *config_stage_type_json(const stage_type *t);
/* "int", "number", "bool", "string", "enum", "path", "int list", ... */
const char *config_param_type_name(param_type t);
/* Port kinds as "image|repeats" (the names --json uses). */
void config_kinds_text(unsigned kinds, char *buf, size_t n);
/* " in [lo, hi]" ("(" and ")" where open) for a parameter with a range, else "". */
void config_param_range_text(const param_spec *p, char *buf, size_t n);

#include "cfg_errors.h"
#include "samples.h"

#endif
