/* synth_smooth: a smooth random volume and R noisy repeats of it, by seed.
 * A minimal source so that a pipeline runs with no data at all; the phantoms
 * with ground truth of real structures (dendrites, nuclei) are stage `synth`.
 *
 * truth   = background + photons * s^2, s = Gaussian-smoothed white noise
 *           rescaled to [0, 1] (squared: sparse bright structure, dark gaps)
 * repeats = Poisson(truth) + Normal(0, read_noise), rounded to uint16 */
#include "stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int run(stage_ctx *c)
{
    int64_t Z = (int64_t)ctx_list_num(c, "shape", 0), Y = (int64_t)ctx_list_num(c, "shape", 1),
            X = (int64_t)ctx_list_num(c, "shape", 2);
    int R = (int)ctx_int(c, "repeats");
    const sample_info *s = ctx_sample(c);
    size_t n = (size_t)(Z * Y * X), plane = (size_t)(Y * X);
    float *vol = malloc(n * sizeof *vol);
    uint16_t *rep = malloc(plane * sizeof *rep);
    if (!vol || !rep) {
        free(vol);
        free(rep);
        return ss_fail(SS_ERR_NOMEM, "synth_smooth: out of memory for %lld voxels", (long long)n);
    }
    ss_rng rng;
    rng_split(&rng, ctx_seed(c), 0);
    for (size_t i = 0; i < n; i++) vol[i] = (float)rng_normal(&rng);
    const kernels *k = ctx_kernels(c);
    double sxy = ctx_num(c, "sigma_xy"), sz = ctx_num(c, "sigma_z");
    k->gauss_blur3d_f32(vol, Z, Y, X, Z > 1 ? sz : 0, sxy, sxy);
    float mn, mx;
    k->minmax_f32(vol, n, &mn, &mx);
    double photons = ctx_num(c, "photons"), bg = ctx_num(c, "background"), rn = ctx_num(c, "read_noise");
    double span = mx > mn ? (double)mx - mn : 1;
    for (size_t i = 0; i < n; i++) {
        double v = ((double)vol[i] - mn) / span;
        vol[i] = (float)(bg + photons * v * v);
    }
    array_meta m = {.axes = "zyx", .unit = "micrometer"};
    for (int i = 0; i < 3; i++) m.voxel[i] = s->voxel[i] > 0 ? s->voxel[i] : (i == 0 ? 1.0 : 0.1);
    store_array *truth = NULL, *reps = NULL;
    int64_t shape[3] = {Z, Y, X}, rshape[4] = {R, Z, Y, X};
    int rc = store_writer_array(ctx_writer(c), "truth", DT_F32, 3, shape, NULL, &m, &truth);
    if (rc == SS_OK) {
        int64_t st[3] = {0, 0, 0};
        rc = store_array_write(truth, st, shape, DT_F32, vol);
    }
    array_meta rm = m;
    strcpy(rm.axes, "rzyx");
    if (rc == SS_OK) rc = store_writer_array(ctx_writer(c), "repeats", DT_U16, 4, rshape, NULL, &rm, &reps);
    ctx_progress_begin(c, "planes", (int64_t)R * Z);
    for (int r = 0; r < R && rc == SS_OK; r++)
        for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
            /* One stream per plane: the result does not depend on the order
             * planes are made in. */
            rng_split(&rng, ctx_seed(c), 1 + (uint64_t)r * (uint64_t)Z + (uint64_t)z);
            const float *t = vol + (size_t)z * plane;
            for (size_t i = 0; i < plane; i++) {
                double v = (double)rng_poisson(&rng, t[i]) + rn * rng_normal(&rng);
                v = floor(v + 0.5);
                rep[i] = (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : v);
            }
            int64_t st[4] = {r, z, 0, 0}, ct[4] = {1, 1, Y, X};
            rc = store_array_write(reps, st, ct, DT_U16, rep);
            ctx_progress(c, (int64_t)r * Z + z + 1);
        }
    store_array_close(truth);
    store_array_close(reps);
    free(vol);
    free(rep);
    return rc;
}

static const param_spec params[] = {
    {.name = "shape", .type = P_INT_LIST, .def = "[16, 128, 128]", .flags = PARAM_RANGE, .lo = 1, .hi = 4096,
     .list_min = 3, .list_max = 3, .doc = "volume size [z, y, x] in voxels"},
    {.name = "repeats", .type = P_INT, .def = "4", .flags = PARAM_RANGE, .lo = 1, .hi = 64,
     .doc = "number of noisy repeats R"},
    {.name = "sigma_xy", .type = P_NUM, .def = "3", .flags = PARAM_RANGE, .lo = 0, .hi = 100,
     .doc = "lateral smoothness of the structure, voxels"},
    {.name = "sigma_z", .type = P_NUM, .def = "1.5", .flags = PARAM_RANGE, .lo = 0, .hi = 100,
     .doc = "axial smoothness of the structure, voxels"},
    PARAM_PHOTONS("200", "peak signal in photons"),
    PARAM_BACKGROUND("10"),
    PARAM_READ_NOISE("2"),
    {0},
};
static const port_spec no_inputs[] = {{0}};
static const port_spec outputs[] = {
    {.name = "repeats", .kinds = KIND_REPEATS, .doc = "R noisy repeats, uint16 R x Z x Y x X"},
    {.name = "truth", .kinds = KIND_IMAGE, .doc = "the noiseless volume, float32 Z x Y x X"},
    {0},
};

static const char *check(const json_t *p)
{
    json_t *s = json_object_get(p, "shape");
    double n = 1;
    for (size_t i = 0; i < json_array_size(s); i++) n *= (double)json_integer_value(json_array_get(s, i));
    return n > 1 << 30 ? "shape: at most 2^30 voxels" : NULL;
}

/* stage_type.repeats_of: the repeats the stage draws. */
static int64_t repeats_of(const json_t *p, const char *output)
{
    return strcmp(output, "repeats") ? 0 : json_integer_value(json_object_get(p, "repeats"));
}

const stage_type stage_synth_smooth = {
    .name = "synth_smooth",
    .version = 1,
    .summary = "smooth random volume with R Poisson-Gaussian noisy repeats, by seed (needs no data)",
    .params = params,
    .inputs = no_inputs,
    .outputs = outputs,
    .flags = STAGE_STOCHASTIC | STAGE_SOURCE,
    .run = run,
    .check = check,
    .check_sample = sample_repeats_mismatch,
    .repeats_of = repeats_of,
};
