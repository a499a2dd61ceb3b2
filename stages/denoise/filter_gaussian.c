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
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* scipy's 'reflect' (d c b a | a b c d | d c b a): period 2n. */
static int64_t reflect_index(int64_t i, int64_t n)
{
    int64_t p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

static int run(stage_ctx *c)
{
    store_array *in, *out = NULL;
    const char *in_stage, *in_name;
    ctx_input(c, "image", &in_stage, &in_name);
    char label[256];
    ctx_input_label(c, "image", label, sizeof label);
    int rc = ctx_open_input(c, "image", &in);
    if (rc != SS_OK) return rc;
    array_info info;
    float *ring = NULL, *res = NULL;
    const float **taps = NULL;
    double *w = NULL;
    if ((rc = store_array_info(in, &info)) != SS_OK) goto done;
    if (info.rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "filter_gaussian: %s.%s has rank %d; expected an image Z x Y x X", in_stage,
                     in_name, info.rank);
        goto done;
    }
    int64_t Z = info.shape[0], Y = info.shape[1], X = info.shape[2];
    size_t plane = (size_t)(Y * X);
    double sz = ctx_list_num(c, "sigma", 0), sy = ctx_list_num(c, "sigma", 1), sx = ctx_list_num(c, "sigma", 2);
    /* The kernel of scipy's _gaussian_kernel1d: radius int(truncate sigma + 0.5). */
    int64_t r = sz > 1e-15 ? (int64_t)(4.0 * sz + 0.5) : 0;
    int64_t taps_n = 2 * r + 1, W = taps_n < Z ? taps_n : Z;
    ring = malloc((size_t)W * plane * sizeof *ring);
    res = malloc(plane * sizeof *res);
    taps = malloc((size_t)taps_n * sizeof *taps);
    w = malloc((size_t)taps_n * sizeof *w);
    if (!ring || !res || !taps || !w) {
        rc = ss_fail(SS_ERR_NOMEM, "filter_gaussian: out of memory for %lld planes of %lld x %lld", (long long)W,
                     (long long)Y, (long long)X);
        goto done;
    }
    double wsum = 0;
    for (int64_t i = -r; i <= r; i++) wsum += w[i + r] = r ? exp(-0.5 * (double)(i * i) / (sz * sz)) : 1.0;
    for (int64_t i = 0; i < taps_n; i++) w[i] /= wsum;

    array_meta m = array_meta_of(&info);
    if ((rc = store_writer_array(ctx_writer(c), "filtered", DT_F32, 3, info.shape, NULL, &m, &out)) != SS_OK)
        goto done;
    const kernels *k = ctx_kernels(c);
    int64_t loaded = 0; /* planes 0 .. loaded - 1 have been read and filtered in y, x */
    ctx_progress_begin(c, "planes", Z);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        int64_t need = z + r < Z - 1 ? z + r : Z - 1;
        for (; loaded <= need && rc == SS_OK; loaded++) {
            float *p = ring + (size_t)(loaded % W) * plane;
            int64_t st[3] = {loaded, 0, 0}, ct[3] = {1, Y, X};
            if ((rc = ctx_read_f32(c, in, label, 3, st, ct, p)) == SS_OK) k->gauss_blur3d_f32(p, 1, Y, X, 0.0, sy, sx);
        }
        if (rc != SS_OK) break;
        for (int64_t i = -r; i <= r; i++) taps[i + r] = ring + (size_t)(reflect_index(z + i, Z) % W) * plane;
        k->weighted_sum_f32(taps, w, (int)taps_n, plane, res);
        int64_t so[3] = {z, 0, 0}, co[3] = {1, Y, X};
        rc = store_array_write(out, so, co, DT_F32, res);
        ctx_progress(c, z + 1);
    }
    if (rc == SS_OK) ctx_attr(c, "planes_held", json_integer((json_int_t)W));
done:
    free(ring);
    free(res);
    free(taps);
    free(w);
    store_array_close(out);
    store_array_close(in);
    return rc;
}

static const param_spec params[] = {
    {.name = "sigma", .type = P_NUM_LIST, .def = "[0.0, 1.0, 1.0]", .flags = PARAM_RANGE, .lo = 0, .hi = 1000,
     .list_min = 3, .list_max = 3, .doc = "standard deviation z, y, x in voxels (0: that axis is not filtered)"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "image", .kinds = KIND_IMAGE, .doc = "image Z x Y x X"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "filtered", .kinds = KIND_IMAGE, .doc = "filtered image Z x Y x X, float32"},
    {0},
};

const stage_type stage_filter_gaussian = {
    .name = "filter_gaussian",
    .version = 1,
    .summary = "Gaussian filter (scipy.ndimage.gaussian_filter, reflect, truncate 4): the denoising baseline",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
