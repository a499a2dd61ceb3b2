/* filter_gaussian: the classical denoising baseline, a separable Gaussian
 * filter of an image, as scipy.ndimage.gaussian_filter(image, sigma,
 * mode='reflect', truncate=4.0) (sigmas in voxels, z y x). Every method that
 * denoises or fuses is judged against it (the Gaussian of the median is hard
 * to beat on photon noise).
 *
 * Streamed: each plane is filtered in y and x as it is read, and output plane
 * z is the weighted sum of the filtered planes z - r .. z + r (reflected at
 * the ends), held in a ring, so memory is 2 r + 1 planes (r = int(4 sigma_z +
 * 0.5)) whatever the depth. The z pass therefore comes last rather than
 * first as in scipy; the two differ by float rounding only. */
#include "plane_window.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    const kernels *k;
    double sy, sx;
    const double *w; /* 2 r + 1 weights of the z pass */
    int taps;
} gauss;

static void blur_yx(float *plane, int64_t ny, int64_t nx, void *arg)
{
    const gauss *g = arg;
    g->k->gauss_blur3d_f32(plane, 1, ny, nx, 0.0, g->sy, g->sx);
}

static void blur_z(const float *const *taps, int64_t ny, int64_t nx, float *out, void *arg)
{
    const gauss *g = arg;
    g->k->weighted_sum_f32(taps, g->w, g->taps, (size_t)(ny * nx), out);
}

static int run(stage_ctx *c)
{
    double sz = ctx_list_num(c, "sigma", 0), sy = ctx_list_num(c, "sigma", 1), sx = ctx_list_num(c, "sigma", 2);
    /* The kernel of scipy's _gaussian_kernel1d: radius int(truncate sigma + 0.5). */
    int64_t r = sz > 1e-15 ? (int64_t)(4.0 * sz + 0.5) : 0;
    double *w = malloc((size_t)(2 * r + 1) * sizeof *w);
    if (!w) return ss_nomem((size_t)(2 * r + 1) * sizeof *w, "the %lld weights of the z pass", (long long)(2 * r + 1));
    double wsum = 0;
    for (int64_t i = -r; i <= r; i++) wsum += w[i + r] = r ? exp(-0.5 * (double)(i * i) / (sz * sz)) : 1.0;
    for (int64_t i = 0; i <= 2 * r; i++) w[i] /= wsum;
    gauss g = {ctx_kernels(c), sy, sx, w, (int)(2 * r + 1)};
    plane_filter f = {"filter_gaussian", r, blur_yx, blur_z, &g};
    int rc = plane_filter_run(c, &f);
    free(w);
    return rc;
}

static const param_spec params[] = {
    {.name = "sigma", .type = P_NUM_LIST, .def = "[0.0, 1.0, 1.0]", .flags = PARAM_RANGE, .lo = 0, .hi = 1000,
     .list_min = 3, .list_max = 3, .doc = "standard deviation z, y, x in voxels (0: that axis is not filtered)"},
    {0},
};
PLANE_FILTER_PORTS;

const stage_type stage_filter_gaussian = {
    .name = "filter_gaussian",
    .version = 1,
    .summary = "Gaussian filter (scipy.ndimage.gaussian_filter, reflect, truncate 4): the denoising baseline",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
