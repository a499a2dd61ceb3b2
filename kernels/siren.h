/* SIREN: a multilayer perceptron with sine activations (Sitzmann et al. 2020)
 * mapping coordinates to intensities, as the SIREN microscopy paper fits it.
 *
 * Layers: 0: in_dim -> width, h = sin(omega_first * (W x + b));
 *         1..hidden: width -> width, h = sin(omega_hidden * (W h + b));
 *         last: width -> out_dim, y = W h + b (linear).
 * Parameters are one contiguous float array: for each layer in order, W
 * (fan_out x fan_in, row-major) then b (fan_out). This is also the order of
 * PyTorch's state_dict for nn.Linear layers, which the tests rely on.
 *
 * Coordinates are generated from voxel indices, never stored (DESIGN.md
 * invariant 6): voxel (iz, iy, ix) of a grid has coordinates
 * (z[iz], y0 + dy*iy, x0 + dx*ix), in that order (in_dim 3), or (y, x)
 * (in_dim 2). */
#ifndef SS_SIREN_H
#define SS_SIREN_H

#include <stddef.h>
#include <stdint.h>

#define SIREN_ARCH_VERSION 1

typedef struct {
    int in_dim;         /* 3 (z, y, x) or 2 (y, x) */
    int width;          /* units per hidden layer (paper: 128) */
    int hidden;         /* hidden sine layers after the first (paper: 3) */
    int out_dim;        /* 1 */
    float omega_first;  /* paper: 32 */
    float omega_hidden; /* paper: 34 */
} siren_arch;

static inline int siren_n_layers(const siren_arch *a) { return a->hidden + 2; }
void siren_layer_dims(const siren_arch *a, int l, int *fan_in, int *fan_out);
/* Offset of layer l's W in the parameter array (its b follows W). */
size_t siren_layer_offset(const siren_arch *a, int l);
size_t siren_n_params(const siren_arch *a);
/* Sitzmann et al.'s initialisation, from a seed. */
void siren_init(const siren_arch *a, float *params, uint64_t seed);
/* NULL when the architecture is usable, else a reason. */
const char *siren_arch_check(const siren_arch *a);

typedef struct {
    int64_t nz, ny, nx;
    const float *z;     /* nz z coordinates (need not be uniform) */
    float y0, dy;       /* y coordinate of row iy: y0 + dy * iy */
    float x0, dx;
} siren_grid;

typedef enum { SIREN_LOSS_MSE, SIREN_LOSS_L1, SIREN_LOSS_HUBER, SIREN_LOSS_CAUCHY } siren_loss;

/* A batch: n voxels of the grid by linear index (iz*ny*nx + iy*nx + ix),
 * each with R target values (voxel-major: target[i*R + r]). The loss is the
 * mean over all n*R residuals y - t of:
 *   mse: r^2        l1: |r|
 *   huber: r^2/2 for |r| <= s, s(|r| - s/2) beyond (s = scale)
 *   cauchy: (s^2/2) log(1 + (r/s)^2)
 * Robust losses let a fit reject motion outliers among the repeats instead
 * of averaging them in. */
typedef struct {
    const siren_grid *grid;
    const int64_t *index;
    int64_t n;
    const float *target;
    int R;
    siren_loss loss;
    float scale;
} siren_batch;

/* A backend's workspace for a network's blocks of voxels, made and freed
 * through the kernel table (siren_work_new / siren_work_free). */
typedef struct siren_work siren_work;

#endif
