/* What the SIREN stages (siren_fuse, siren_interplane, siren_render) share:
 * their common parameters, the coordinate mapping, the training loop with
 * checkpoints, plane-by-plane evaluation, and the weights they store.
 * Not a stage: the three stage files call it, it calls kernels and the store. */
#ifndef SS_SIREN_FIT_H
#define SS_SIREN_FIT_H

#include "stage.h"

/* Parameters every fitting stage takes (spliced into its param_spec list).
 * Defaults are the SIREN microscopy paper's. */
#define SIREN_FIT_PARAMS                                                                                           \
    {.name = "width", .type = P_INT, .def = "128", .flags = PARAM_RANGE, .lo = 1, .hi = 4096,                      \
     .doc = "units per hidden layer"},                                                                             \
    {.name = "hidden_layers", .type = P_INT, .def = "3", .flags = PARAM_RANGE, .lo = 0, .hi = 64,                  \
     .doc = "hidden sine layers after the first"},                                                                 \
    {.name = "omega_first", .type = P_NUM, .def = "32", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1e4,  \
     .doc = "frequency factor of the first layer"},                                                                \
    {.name = "omega_hidden", .type = P_NUM, .def = "34", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1e4, \
     .doc = "frequency factor of the hidden layers"},                                                              \
    {.name = "steps", .type = P_INT, .def = "1500", .flags = PARAM_RANGE, .lo = 1, .hi = 1e8,                      \
     .doc = "optimiser steps"},                                                                                    \
    {.name = "lr", .type = P_NUM, .def = "1e-3", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 10,          \
     .doc = "Adam learning rate"},                                                                                 \
    PARAM_ADAM_MOMENTS,                                                                                            \
    {.name = "batch", .type = P_INT, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 1e12,                        \
     .doc = "voxels per step; 0: full batch (every training voxel every step, as the paper)"},                    \
    {.name = "fraction", .type = P_NUM, .def = "1.0", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1,      \
     .doc = "fraction of the voxels used for training, drawn once by seed (the paper's Fig. 2c-f)"},               \
    {.name = "loss", .type = P_ENUM, .def = "\"mse\"", .choices = "mse|l1|huber|cauchy",                           \
     .doc = "training loss; robust losses reject motion outliers among repeats"},                                  \
    {.name = "loss_scale", .type = P_NUM, .def = "0.1", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1e9,  \
     .doc = "Huber delta / Cauchy scale, in the data's units"},                                                    \
    {.name = "z_range", .type = P_NUM_LIST, .def = "[-1, 1]", .flags = PARAM_RANGE, .lo = -1e6, .hi = 1e6,         \
     .list_min = 2, .list_max = 2, .doc = "z coordinates of the first and last plane with z_mapping: range"}

/* The z mapping parameter; each stage chooses its default (see README). */
#define SIREN_Z_MAPPING(def_text)                                                                                  \
    {.name = "z_mapping", .type = P_ENUM, .def = def_text, .choices = "physical|range",                           \
     .doc = "z coordinate: physical (same scale as x, from the voxel size) or range (z_range)"}

/* Checks shared by the fitting stages' `check` hooks (NULL when fine). */
const char *siren_fit_check(const json_t *params);

/* The network and where it sits in space. */
typedef struct {
    siren_arch arch;
    int64_t shape[3];  /* Z, Y, X of the grid it was fitted on */
    double voxel[3];   /* physical voxel size, z y x */
    float *z;          /* Z coordinates of the planes */
    float y0, dy, x0, dx;
    char z_mapping[16];
} siren_model;

void siren_model_free(siren_model *m);
/* Architecture and grid from the stage's parameters and the data's shape. */
int siren_model_from_params(stage_ctx *c, const int64_t shape[3], const double voxel[3], siren_model *m);
/* The grid of coordinates for planes at (possibly fractional) plane
 * positions pz, with xy refined by xy_scale. z owned by the caller. */
void siren_model_grid(const siren_model *m, int64_t nz, const float *z, double xy_scale, siren_grid *g);
/* The z coordinate of a (fractional) plane position of the fitted grid. */
float siren_model_z_at(const siren_model *m, double plane);

/* A training set: n voxels of the model's grid with R targets each. */
/* Draws n of N voxel indices uniformly without replacement, in increasing
 * order (selection sampling: O(N) time, O(n) memory). */
int64_t *siren_pick_voxels(uint64_t seed, int64_t N, int64_t n);
typedef struct {
    int64_t *index;
    float *target;
    int64_t n;
    int R;
} siren_data;

void siren_data_free(siren_data *d);

/* Trains params (initialised here unless a checkpoint resumes) and appends
 * the curve (step, loss, seconds) as table `curve`. Checkpoints through the
 * engine; a cancelled run saves and returns SS_ERR_INTERRUPTED; a
 * non-finite loss stops with an error naming the step. */
int siren_fit_train(stage_ctx *c, const siren_model *m, const siren_data *d, float *params);

/* Evaluates the network on every plane of grid g and writes them to the
 * array out (ZYX float32), plane by plane. */
int siren_fit_eval_to(stage_ctx *c, const siren_model *m, const float *params, const siren_grid *g,
                      store_array *out, const char *what);

/* Writes the `weights` array and the model description attributes (with the
 * normalisation of the data read from input_port, when it was normalised). */
int siren_fit_save(stage_ctx *c, const siren_model *m, const float *params, const char *input_port);
/* Reads them back from a committed stage (for siren_render). */
int siren_fit_load(store *st, const char *stage, const char *array, siren_model *m, float **params);

#endif
