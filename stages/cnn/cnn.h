/* What the CNN stages (denoise_train, denoise_apply, n2n_train, n2n_apply,
 * cnn_motion) share: their parameters, training on random patches with
 * checkpoints, tiled inference on whole planes, and the model they store.
 * Not a stage: the stage files call it; it calls the network (net.h), the
 * kernels and the store. */
#ifndef SS_CNN_H
#define SS_CNN_H

#include "net.h"
#include "stage.h"

/* The U-Net's shape (spliced into a stage's param_spec list); defaults are
 * the SIREN paper's denoiser: 64, 128, 256, 512 filters. */
#define CNN_UNET_PARAMS                                                                                            \
    {.name = "depth", .type = P_INT, .def = "4", .flags = PARAM_RANGE, .lo = 1, .hi = 8,                           \
     .doc = "U-Net levels (3 poolings for 4)"},                                                                    \
    {.name = "width", .type = P_INT, .def = "64", .flags = PARAM_RANGE, .lo = 1, .hi = 1024,                       \
     .doc = "filters at the first level, doubled per level"},                                                      \
    {.name = "max_width", .type = P_INT, .def = "512", .flags = PARAM_RANGE, .lo = 1, .hi = 2048,                  \
     .doc = "most filters of any level"},                                                                          \
    {.name = "kernel", .type = P_INT, .def = "3", .flags = PARAM_RANGE, .lo = 1, .hi = 15,                         \
     .doc = "odd kernel size of the level convolutions"},                                                          \
    {.name = "convs", .type = P_INT, .def = "2", .flags = PARAM_RANGE, .lo = 1, .hi = 4,                           \
     .doc = "convolutions per level"},                                                                             \
    {.name = "upsampling", .type = P_ENUM, .def = "\"transposed\"", .choices = "transposed|bilinear|nearest",     \
     .doc = "2x2 transposed convolution, or x2 interpolation (CARE), on the way up"},                              \
    {.name = "slope", .type = P_NUM, .def = "0", .flags = PARAM_RANGE | PARAM_HI_OPEN, .lo = 0, .hi = 1,           \
     .doc = "leaky ReLU slope (0: ReLU)"},                                                                         \
    {.name = "dropout", .type = P_NUM, .def = "0", .flags = PARAM_RANGE | PARAM_HI_OPEN, .lo = 0, .hi = 1,         \
     .doc = "dropout rate after each level convolution, in training"},                                            \
    {.name = "residual", .type = P_BOOL, .def = "false",                                                           \
     .doc = "learn the residual: the input is added to the output"},                                              \
    {.name = "fourier_mask", .type = P_BOOL, .def = "false",                                                       \
     .doc = "low-pass the output by fnsm's radial mask, its cut-off learned with the weights"},                    \
    {.name = "fmask_rolloff", .type = P_NUM, .def = "0.1", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0,          \
     .hi = 0.5, .doc = "half-width of the learned mask's raised-cosine edge, of Nyquist"}

/* Training on random patches (spliced into a training stage's params). */
#define CNN_TRAIN_PARAMS(lr_def, opt_def)                                                                          \
    {.name = "steps", .type = P_INT, .def = "2000", .flags = PARAM_RANGE, .lo = 1, .hi = 1e8,                      \
     .doc = "optimiser steps (batches)"},                                                                          \
    {.name = "batch", .type = P_INT, .def = "10", .flags = PARAM_RANGE, .lo = 1, .hi = 4096,                       \
     .doc = "patches per step"},                                                                                   \
    {.name = "patch", .type = P_INT, .def = "64", .flags = PARAM_RANGE, .lo = 4, .hi = 4096,                       \
     .doc = "side of the square training patches (a multiple of 2^(depth-1))"},                                    \
    {.name = "optimizer", .type = P_ENUM, .def = opt_def, .choices = "adam|sgd", .doc = "Adam or SGD"},            \
    {.name = "lr", .type = P_NUM, .def = lr_def, .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 10,          \
     .doc = "learning rate"},                                                                                      \
    PARAM_ADAM_MOMENTS,                                                                                            \
    {.name = "momentum", .type = P_NUM, .def = "0.9", .flags = PARAM_RANGE | PARAM_HI_OPEN, .lo = 0, .hi = 1,      \
     .doc = "SGD momentum"},                                                                                       \
    {.name = "augment", .type = P_BOOL, .def = "true",                                                             \
     .doc = "random flips and 90-degree rotations of every patch"},                                               \
    {.name = "normalize", .type = P_ENUM, .def = "\"percentile\"", .choices = "percentile|none",                   \
     .doc = "map the input's p_low..p_high percentiles to 0..1 (targets alike); stored with the model"},          \
    {.name = "p_low", .type = P_NUM, .def = "0.1", .flags = PARAM_RANGE, .lo = 0, .hi = 100,                       \
     .doc = "lower percentile of the normalisation"},                                                              \
    {.name = "p_high", .type = P_NUM, .def = "99.9", .flags = PARAM_RANGE, .lo = 0, .hi = 100,                     \
     .doc = "upper percentile of the normalisation"},                                                              \
    CNN_BF16_PARAM

/* The convolutions' products in bfloat16 (README, "Learned denoisers"). */
#define CNN_BF16_PARAM                                                                                             \
    {.name = "bf16", .type = P_BOOL, .def = "false",                                                               \
     .doc = "convolution products in bfloat16, sums in float32, on CPUs with AVX512-BF16 (float32 elsewhere)"}

/* Tiled inference (spliced into an applying stage's params). */
#define CNN_APPLY_PARAMS                                                                                           \
    CNN_BF16_PARAM,                                                                                                \
    {.name = "tile", .type = P_INT, .def = "256", .flags = PARAM_RANGE, .lo = 8, .hi = 16384,                      \
     .doc = "side of the square tiles a plane is processed in (rounded up to a multiple of 2^(depth-1))"},        \
    {.name = "overlap", .type = P_INT, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 0, .hi = 4096,  \
     .doc = "context each tile reads beyond its edges (null: the network's receptive field)"}

/* Reads the whole array of an input port (rank 3, Z x Y x X; or rank 4, R x
 * Z x Y x X where repeats is non-NULL, which then receives R) as checked
 * float32; shape gets Z, Y, X. label receives "stage.array". */
int cnn_read_input(stage_ctx *c, const char *port, int64_t *repeats, int64_t shape[3], float **data, char *label,
                   size_t label_len);
/* The optional per-plane mask of port (1 = use the plane) for Z planes into
 * use[] (all 1 without one); the number selected, or a negative status. */
int cnn_read_mask(stage_ctx *c, const char *port, int64_t Z, uint8_t *use, int64_t *n_used);

/* Checks shared by the training stages' `check` hooks (NULL when fine). */
const char *cnn_train_check(const json_t *params);
/* The U-Net of the stage's parameters. */
void cnn_unet_from_params(stage_ctx *c, int in_ch, int out_ch, net_arch *a);

/* The value map a model applies before the network and inverts after:
 * x' = (x - offset) * scale. */
typedef struct {
    double offset, scale;
} cnn_norm;

/* Training pairs: fill writes one patch of in_ch x P x P input and out_ch x
 * P x P target, at a place (and pair) it draws from r. */
typedef struct {
    int in_ch, out_ch;
    int64_t Y, X; /* plane size: patches must fit */
    void (*fill)(const void *ctx, ss_rng *r, int P, float *in, float *target);
    const void *ctx;
} cnn_pairs;

/* The normalisation of the stage's parameters for values x[0..n-1]
 * (percentiles of the input data, or the identity). */
int cnn_norm_fit(stage_ctx *c, const float *x, size_t n, cnn_norm *nm);
void cnn_norm_apply(const cnn_norm *nm, float *x, size_t n);

/* Trains a network (initialised from the seed unless a checkpoint resumes)
 * on batches of random patches, flipped and rotated when `augment`; writes
 * the curve (step, loss, seconds) as table `curve` and the model (weights,
 * architecture, the normalisation nm). A killed training resumes from its
 * checkpoint, bit-identical for the same thread count; a non-finite loss
 * stops with an error naming the step, the last good checkpoint kept. With
 * params_out the trained weights are handed over (free them). */
int cnn_train(stage_ctx *c, const net_arch *a, const cnn_pairs *p, const cnn_norm *nm, float **params_out);

/* Runs the network on a whole plane (in_ch x Y x X, normalised) in tiles of
 * `tile` (core) with `overlap` context on each side, edges reflected, so
 * memory is bounded by the tile; out: out_ch x Y x X. The tile network comes
 * from cnn_tiler_new (NULL when memory runs out). */
typedef struct cnn_tiler cnn_tiler;
cnn_tiler *cnn_tiler_new(const kernels *k, const net_arch *a, int64_t Y, int64_t X, int tile, int overlap,
                         int bf16);
void cnn_tiler_free(cnn_tiler *t);
void cnn_tiler_run(cnn_tiler *t, const float *params, const float *in, float *out);

/* The model on the input port `model`, which must take and give one channel. */
int cnn_open_model(stage_ctx *c, net_arch *a, float **params, cnn_norm *nm);
/* A tiler for planes of Y x X from the stage's `tile`, `overlap` (where it
 * has one; null or absent: the receptive field) and `bf16` parameters. */
int cnn_stage_tiler(stage_ctx *c, const net_arch *a, int64_t Y, int64_t X, cnn_tiler **out);
/* The attributes of an applying stage: tile, overlap, kernel, and the model
 * (stage and array of the `model` input, when connected). */
void cnn_tiler_attrs(stage_ctx *c, const cnn_tiler *t);
/* x = x / scale + offset: the network's output back to the data's values. */
void cnn_norm_invert(const cnn_norm *nm, float *x, size_t n);

/* Writes the `weights` array and the model's description (architecture,
 * normalisation, training) as stage attributes. */
int cnn_model_save(stage_ctx *c, const net_arch *a, const float *params, const cnn_norm *nm);
/* Reads them back from a committed stage of st. */
int cnn_model_load(store *st, const char *stage, const char *array, net_arch *a, float **params, cnn_norm *nm);
#define CNN_MODEL_FORMAT 1

#endif
