/* What a stage type is, and what a stage sees while it runs.
 *
 * A stage type is one file in stages/ defining one `const stage_type` and one
 * line in stages/registry.c. It declares its parameters (validated and
 * defaulted before anything runs), its inputs and outputs, and run().
 * run() reads inputs from the store, calls kernels, and writes its declared
 * outputs through ctx_writer(); the runner commits them atomically after run()
 * returns SS_OK. run() never exits, never prints to stdout, and reports errors
 * with ss_fail() (pipeline/base/error.h). Stages never call each other. */
#ifndef SS_STAGE_H
#define SS_STAGE_H

#include <jansson.h>
#include <stdint.h>

#include "host.h"
#include "kernels.h"
#include "checkpoint.h"
#include "error.h"
#include "store.h"

/* ---- declarations ------------------------------------------------------ */

typedef enum {
    P_INT,      /* integer */
    P_NUM,      /* number */
    P_BOOL,
    P_STR,      /* free string; {field} is replaced by the sample's fields */
    P_ENUM,     /* one of `choices` ("a|b|c") */
    P_PATH,     /* file path; relative paths are taken from the config's folder;
                   {field} substitution as P_STR */
    P_INT_LIST, /* list of integers, length in [list_min, list_max] */
    P_NUM_LIST, /* list of numbers */
    P_STR_LIST, /* list of strings ({field} substitution) */
} param_type;

enum {
    PARAM_RANGE = 1u << 0,      /* lo/hi apply (to each element of a list) */
    PARAM_LO_OPEN = 1u << 1,    /* lo is exclusive */
    PARAM_HI_OPEN = 1u << 2,    /* hi is exclusive */
    PARAM_INPUT_FILE = 1u << 3, /* a raw input file: its content hash joins the fingerprint */
    PARAM_NULLABLE = 1u << 4,   /* null is allowed (means "not given") */
    PARAM_INPUT_GLOB = 1u << 5, /* raw input files given as a pattern (formats/filepattern.h:
                                   wildcards and {z}, {r}, {t}, {c} fields, {z:04d}): every
                                   file the pattern matches, as the stage expands it, joins
                                   the fingerprint, and no other */
};

typedef struct {
    const char *name;
    param_type type;
    const char *def;     /* default as JSON text; NULL: the parameter is required */
    unsigned flags;
    double lo, hi;       /* with PARAM_RANGE */
    const char *choices; /* P_ENUM: "exact|streaming" */
    int list_min, list_max; /* lists: allowed lengths (0, 0: any) */
    const char *doc;     /* one line, shown by `sirenstack stages` and in the JSON Schema */
} param_spec;

/* Parameters several stage types share, written once. */
#define PARAM_VOXEL_SIZE(doc_)                                                                                     \
    {.name = "voxel_size", .type = P_NUM_LIST, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE | PARAM_LO_OPEN, \
     .lo = 0, .hi = 1e6, .list_min = 3, .list_max = 3, .doc = (doc_)}
/* Poisson-Gaussian detector noise of the synthetic stages. */
#define PARAM_PHOTONS(def_, doc_)                                                                                  \
    {.name = "photons", .type = P_NUM, .def = (def_), .flags = PARAM_RANGE, .lo = 0, .hi = 60000, .doc = (doc_)}
#define PARAM_BACKGROUND(def_)                                                                                     \
    {.name = "background", .type = P_NUM, .def = (def_), .flags = PARAM_RANGE, .lo = 0, .hi = 60000,                \
     .doc = "expected background photons per voxel"}
#define PARAM_READ_NOISE(def_)                                                                                     \
    {.name = "read_noise", .type = P_NUM, .def = (def_), .flags = PARAM_RANGE, .lo = 0, .hi = 10000,                \
     .doc = "Gaussian read noise, standard deviation in counts"}

/* Adam's moment parameters (beta1, beta2, adam_eps), as torch.optim.Adam's
 * defaults, for the training stages. */
#define PARAM_ADAM_MOMENTS                                                                                         \
    {.name = "beta1", .type = P_NUM, .def = "0.9", .flags = PARAM_RANGE | PARAM_HI_OPEN, .lo = 0, .hi = 1,         \
     .doc = "Adam beta1"},                                                                                         \
    {.name = "beta2", .type = P_NUM, .def = "0.999", .flags = PARAM_RANGE | PARAM_HI_OPEN, .lo = 0, .hi = 1,       \
     .doc = "Adam beta2"},                                                                                         \
    {.name = "adam_eps", .type = P_NUM, .def = "1e-8", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1,     \
     .doc = "Adam epsilon"}

/* Kinds of data flowing between stages. */
enum {
    KIND_IMAGE = 1u << 0,   /* ZYX image stack */
    KIND_REPEATS = 1u << 1, /* RZYX repeated acquisitions */
    KIND_TABLE = 1u << 2,   /* compound table */
    KIND_WEIGHTS = 1u << 3, /* model weights */
    KIND_MASK = 1u << 4,    /* one value per plane (uint8, 1 = selected), shape Z */
};

typedef struct {
    const char *name;
    unsigned kinds;      /* inputs: kinds accepted; outputs: kind produced */
    const char *like;    /* outputs only: the kind equals that of this input port
                            (and for repeats, the repeat count) */
    int optional;        /* inputs only */
    int multiple;        /* inputs only: takes a list of one or more references */
    int ref_max;         /* inputs only: the longest reference 'stage.output' it
                            takes (the stage writes it into a table column);
                            0: any */
    const char *doc;
} port_spec;

enum {
    STAGE_STOCHASTIC = 1u << 0, /* uses ctx_seed(): the run seed joins the fingerprint */
    STAGE_SOURCE = 1u << 1,     /* reads the sample's data: voxel size and repeats join the fingerprint */
    STAGE_COHORT = 1u << 2,     /* may be declared `scope: cohort`: run() then sees every sample
                                   (ctx_n_samples, ctx_select_sample) */
    STAGE_COHORT_ONLY = 1u << 3, /* runs at cohort scope only (its default scope) */
};

typedef struct stage_ctx stage_ctx;

/* A sample as the config or manifest describes it. */
typedef struct {
    const char *id;
    const char *input;     /* path or pattern; may be NULL */
    double voxel[3];       /* z, y, x in micrometer; 0 = not given */
    int repeats;           /* 0 = not given */
    json_t *fields;        /* every field, free metadata columns included */
} sample_info;

typedef struct stage_type {
    const char *name;
    int version;            /* bump when outputs change for the same params */
    const char *summary;
    const param_spec *params;  /* terminated by an entry with name NULL */
    const port_spec *inputs;   /* terminated by name NULL */
    const port_spec *outputs;  /* terminated by name NULL */
    unsigned flags;
    int (*run)(stage_ctx *ctx);
    /* Optional: constraints between parameters, checked at validation time.
     * Returns NULL when fine, else a message ("p_low must be below p_high"). */
    const char *(*check)(const json_t *params);
    /* Optional: constraints between the parameters as one sample fills them
     * in and that sample's fields (its repeats, its voxel size), checked at
     * validation for every sample. NULL when fine, else a message. */
    const char *(*check_sample)(const json_t *params, const sample_info *sample);
    /* Optional: for the PARAM_INPUT_FILE parameter `param` naming `path`, the
     * other files it brings with it (the members of a multi-file OME-TIFF
     * set, named in the file's own metadata): their contents join the
     * fingerprint, so replacing any member reruns the stage. Returns a new
     * JSON array of paths, or NULL when there are none; problems reading the
     * file are left to run(), which reports them in full. */
    json_t *(*companions)(const json_t *params, const char *param, const char *path);
    /* Optional, for a KIND_REPEATS output without `like`: the repeats it will
     * hold as far as the validated parameters tell (an import's `repeats`,
     * `repeats_layout: none`), or 0 when they do not say; a source stage's
     * count then falls back to the sample's `repeats`. Validation refuses
     * repeats where an image is expected only when this count is above 1;
     * with one repeat, or one not known before the run, the input is read as
     * an image (ctx_open_input) and more repeats are refused there. */
    int64_t (*repeats_of)(const json_t *params, const char *output);
} stage_type;

/* For check_sample of a source stage that makes its repeats: a message when
 * the sample declares another number of repeats than the 'repeats' parameter
 * (stages/sample_checks.c). */
const char *sample_repeats_mismatch(const json_t *params, const sample_info *sample);

/* The registry (stages/registry.c). */
const stage_type *stage_type_find(const char *name);
const stage_type *const *stage_types_all(void); /* NULL-terminated */

/* ---- the running stage -------------------------------------------------- */


const char *ctx_stage_name(const stage_ctx *c);
const sample_info *ctx_sample(const stage_ctx *c);
/* Parameters, validated and with defaults applied. Asking for a name the type
 * does not declare is a bug and aborts. */
int64_t ctx_int(const stage_ctx *c, const char *name);
double ctx_num(const stage_ctx *c, const char *name);
int ctx_bool(const stage_ctx *c, const char *name);
const char *ctx_str(const stage_ctx *c, const char *name); /* NULL when null */
int ctx_is_null(const stage_ctx *c, const char *name);
size_t ctx_list_len(const stage_ctx *c, const char *name);
double ctx_list_num(const stage_ctx *c, const char *name, size_t i);
const char *ctx_list_str(const stage_ctx *c, const char *name, size_t i);
const json_t *ctx_params(const stage_ctx *c);

/* Seed for this stage and sample, from the run seed (stable across runs). */
uint64_t ctx_seed(const stage_ctx *c);
int ctx_threads(const stage_ctx *c);
const kernels *ctx_kernels(const stage_ctx *c);

/* The container the stage writes: its sample's, or for a cohort stage the
 * run's cohort container. */
store *ctx_store(stage_ctx *c);
/* The container an input port's array is read from (with ctx_input's stage
 * and array names): the cohort container when the port reads a cohort
 * stage, else the sample's (a cohort stage's: the selected sample's). */
store *ctx_input_store(stage_ctx *c, const char *port);
/* The same for a referenced stage by name (each reference of a port that
 * takes several may live elsewhere). */
store *ctx_stage_store(stage_ctx *c, const char *stage);
/* A stage with scope: cohort sees its samples one at a time: there are
 * ctx_n_samples of them (1 for a per-sample stage), and ctx_select_sample
 * makes the k-th the one ctx_sample, ctx_input_store and the ctx_open_input
 * family read (its container opened read-only; an input error when it
 * cannot be). Sample 0 is selected when run() starts. */
int ctx_is_cohort(const stage_ctx *c);
int ctx_n_samples(const stage_ctx *c);
int ctx_select_sample(stage_ctx *c, int k);
/* Resolves input port -> (stage, array) of the container. Returns 0 when an
 * optional port is not connected, 1 when it is, negative on error. */
int ctx_input(const stage_ctx *c, const char *port, const char **stage, const char **array);
/* Opens an input port's array (SS_ERR_INTERNAL if the port is unconnected).
 * A port that takes KIND_IMAGE but not KIND_REPEATS gets a repeats array
 * with one repeat as a Z x Y x X image (same voxel size); one with more
 * repeats is refused (SS_ERR_INPUT, "fuse them first"). */
int ctx_open_input(stage_ctx *c, const char *port, store_array **a);
/* "stage.array" of an input port (of its first reference), for messages;
 * "" when the port is not connected. */
void ctx_input_label(const stage_ctx *c, const char *port, char *buf, size_t n);
/* Reads count[] elements from start[] (the array's rank) of an input array as
 * float32 into buf and rejects NaN and infinity: an input error naming the
 * stage type, `label` (e.g. "norm.data") and, for the first bad value, its
 * repeat and plane ("repeat 2 plane 7" for R x Z x Y x X, "plane 7" for
 * Z x Y x X). The one checked way stages read image data. */
int ctx_read_f32(stage_ctx *c, store_array *a, const char *label, int rank, const int64_t *start,
                 const int64_t *count, float *buf);
/* A table built a row at a time (stages/table_builder.c): tb_row appends a
 * zeroed row, tb_f64/tb_i64/tb_str set its columns (strings are cut to
 * TABLE_STR_LEN - 1 bytes), tb_write hands it to the store. tb_new returns
 * NULL when memory runs out; a failed tb_row fails every later one. */
typedef struct table_builder table_builder;
table_builder *tb_new(int n_cols, const char *const *names, const col_type *types);
void tb_free(table_builder *t);
int tb_row(table_builder *t);
void tb_f64(table_builder *t, int col, double v);
void tb_i64(table_builder *t, int col, int64_t v);
void tb_str(table_builder *t, int col, const char *s);
int64_t tb_rows(const table_builder *t);
/* Values already set (NaN or 0 for a wrong type or row). */
double tb_get_f64(const table_builder *t, int col, int64_t row);
int64_t tb_get_i64(const table_builder *t, int col, int64_t row);
int tb_write(const table_builder *t, store_writer *w, const char *name);
/* Ports with `multiple`: how many references, and the i-th (in config order). */
int ctx_input_count(const stage_ctx *c, const char *port);
int ctx_input_at(const stage_ctx *c, const char *port, int i, const char **stage, const char **array);
int ctx_open_input_at(stage_ctx *c, const char *port, int i, store_array **a);
/* Where outputs go: arrays/tables named after the output ports, plus any
 * auxiliary arrays the stage documents. */
store_writer *ctx_writer(stage_ctx *c);

/* Progress of the current stage, in units of the stage's choosing. */
void ctx_progress_begin(stage_ctx *c, const char *what, int64_t total);
void ctx_progress(stage_ctx *c, int64_t done);
/* Non-zero once SIGINT/SIGTERM arrived: a long stage saves a checkpoint and
 * returns SS_ERR_INTERRUPTED. */
int ctx_cancelled(const stage_ctx *c);
void ctx_warn(stage_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Checkpoints of this stage (see pipeline/base/checkpoint.h). */
checkpoint *ctx_checkpoint(stage_ctx *c);
/* Records an extra attribute on the stage group (steals the reference). */
int ctx_attr(stage_ctx *c, const char *key, json_t *value);

/* ---- training loops (stages/training.c): the SIREN and CNN stages ---- */

/* Loads the stage's checkpoint into e[0..n-1] (filled with their initial
 * values by the caller) and returns the step to go on from: 0 when there is
 * none, or when it is damaged (a warning; *reinit is then set, for the caller
 * to restore the initial values the load may have overwritten). */
int64_t train_resume(stage_ctx *c, ckpt_entry *e, int n, int64_t steps, int *reinit);
/* After step `done`: saves the checkpoint when one is due or the run was
 * cancelled (*elapsed, an entry of e, set from t0 first); a cancelled run
 * then returns SS_ERR_INTERRUPTED. *saved (may be NULL) receives `done`
 * after a save. */
int train_checkpoint(stage_ctx *c, int64_t done, ckpt_entry *e, int n, double *elapsed, double t0,
                     int64_t *saved);
/* The table `curve` (step, loss, seconds) and the attributes final_loss and
 * train_seconds. */
int train_write_curve(stage_ctx *c, int64_t steps, const double *loss, const double *seconds);
/* A 1-D float32 array `name` of n values (a model's weights). */
int train_write_weights(stage_ctx *c, const char *name, const float *w, int64_t n);

#endif
