/* filter_median: the classical baseline against impulse noise and outliers, a
 * median filter of an image, as scipy.ndimage.median_filter(image, size,
 * mode='reflect'): size z, y, x in voxels, odd, at most 7 each; [1, 3, 3]
 * filters each plane by itself, [3, 3, 3] in 3D.
 *
 * Streamed: output plane z is the median over the window of input planes
 * z - r .. z + r (r = size_z / 2, reflected at the ends), held in a ring, so
 * memory is 2 r + 1 planes whatever the depth. */
#include "plane_window.h"

typedef struct {
    const kernels *k;
    int sz, sy, sx;
} median;

static void median_window(const float *const *taps, int64_t ny, int64_t nx, float *out, void *arg)
{
    const median *m = arg;
    m->k->median_filter_plane_f32(taps, m->sz, ny, nx, m->sy, m->sx, out);
}

static int run(stage_ctx *c)
{
    median m = {ctx_kernels(c), (int)ctx_list_num(c, "size", 0), (int)ctx_list_num(c, "size", 1),
                (int)ctx_list_num(c, "size", 2)};
    plane_filter f = {"filter_median", m.sz / 2, NULL, median_window, &m};
    return plane_filter_run(c, &f);
}

static const char *check(const json_t *p)
{
    const json_t *size = json_object_get(p, "size");
    for (size_t i = 0; i < 3; i++)
        if (!((json_integer_value(json_array_get(size, i)) & 1)))
            return "size: each of z, y, x must be odd (1, 3, 5 or 7), so that a window has one middle value";
    return NULL;
}

static const param_spec params[] = {
    {.name = "size", .type = P_INT_LIST, .def = "[1, 3, 3]", .flags = PARAM_RANGE, .lo = 1, .hi = 7,
     .list_min = 3, .list_max = 3,
     .doc = "window z, y, x in voxels, odd: [1, 3, 3] filters each plane, [3, 3, 3] in 3D"},
    {0},
};
PLANE_FILTER_PORTS;

const stage_type stage_filter_median = {
    .name = "filter_median",
    .version = 1,
    .summary = "median filter (scipy.ndimage.median_filter, reflect; 3x3 per plane or 3x3x3): the outlier baseline",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
    .check = check,
};
