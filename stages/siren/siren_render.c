/* siren_render: evaluates saved SIREN weights on any grid - planes at
 * arbitrary z positions (fractional plane numbers of the fitted stack, so 2.5
 * lies halfway between planes 2 and 3) and a finer xy grid: analysing the
 * sample at positions that were never acquired. Streams plane by plane. */
#include "fitting.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(stage_ctx *c)
{
    const char *wst, *wname;
    ctx_input(c, "weights", &wst, &wname);
    siren_model m;
    float *params;
    int rc = siren_fit_load(ctx_input_store(c, "weights"), wst, wname, &m, &params);
    if (rc != SS_OK) return rc;
    /* The z positions, in planes of the fitted stack. */
    int64_t nz;
    double *pz = NULL;
    if (!ctx_is_null(c, "z_planes")) {
        nz = (int64_t)ctx_list_len(c, "z_planes");
        pz = malloc(sizeof *pz * (size_t)nz);
        for (int64_t i = 0; pz && i < nz; i++) pz[i] = ctx_list_num(c, "z_planes", (size_t)i);
    } else {
        double step = ctx_num(c, "z_step");
        nz = (int64_t)floor((double)(m.shape[0] - 1) / step + 1e-9) + 1;
        pz = nz <= (1 << 24) ? malloc(sizeof *pz * (size_t)nz) : NULL;
        for (int64_t i = 0; pz && i < nz; i++) pz[i] = (double)i * step;
    }
    float *z = pz ? malloc(sizeof *z * (size_t)nz) : NULL;
    double xy = ctx_num(c, "xy_scale");
    siren_grid g;
    siren_model_grid(&m, nz, z, xy, &g);
    /* Memory: one plane of output plus the network's block buffers. */
    double need = (double)g.ny * (double)g.nx * 4 + 64.0 * 1024 * 1024;
    double limit = ctx_num(c, "max_memory_mb") * 1024 * 1024;
    if (limit <= 0) limit = 0.5 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    store_array *out = NULL;
    if (!pz || !z) rc = ss_fail(SS_ERR_NOMEM, "siren_render: out of memory for %lld plane positions", (long long)nz);
    else if (need > limit)
        rc = ss_fail(SS_ERR_INPUT,
                     "siren_render: a plane of %lld x %lld voxels needs %.0f MiB, more than the %.0f MiB allowed "
                     "(lower xy_scale or raise max_memory_mb)",
                     (long long)g.ny, (long long)g.nx, need / 1048576, limit / 1048576);
    if (rc == SS_OK) {
        for (int64_t i = 0; i < nz; i++) z[i] = siren_model_z_at(&m, pz[i]);
        array_meta meta = {.axes = "zyx", .unit = "micrometer"};
        int uniform = nz > 1;
        for (int64_t i = 2; i < nz; i++) uniform &= fabs((pz[i] - pz[i - 1]) - (pz[1] - pz[0])) < 1e-9;
        meta.voxel[0] = uniform ? m.voxel[0] * (pz[1] - pz[0]) : m.voxel[0];
        meta.voxel[1] = m.voxel[1] * (double)(m.shape[1] - 1) / (double)(g.ny - 1);
        meta.voxel[2] = m.voxel[2] * (double)(m.shape[2] - 1) / (double)(g.nx - 1);
        int64_t shape[3] = {nz, g.ny, g.nx};
        json_t *jz = json_array();
        for (int64_t i = 0; i < nz; i++) json_array_append_new(jz, json_real(pz[i]));
        ctx_attr(c, "z_planes", jz);
        ctx_attr(c, "z_micrometer_from_first_plane", json_real(m.voxel[0]));
        rc = store_writer_array(ctx_writer(c), "rendered", DT_F32, 3, shape, NULL, &meta, &out);
    }
    if (rc == SS_OK) rc = siren_fit_eval_to(c, &m, params, &g, out, "planes");
    store_array_close(out);
    siren_model_free(&m);
    free(params), free(pz), free(z);
    return rc;
}

static const char *check(const json_t *p)
{
    if (json_is_null(json_object_get(p, "z_planes")) && json_is_null(json_object_get(p, "z_step")))
        return "give z_planes (a list of plane positions) or z_step";
    return NULL;
}

static const param_spec params[] = {
    {.name = "z_planes", .type = P_NUM_LIST, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = -1e6,
     .hi = 1e6, .list_min = 1, .list_max = 1 << 20,
     .doc = "plane positions to render, in planes of the fitted stack (fractions allowed)"},
    {.name = "z_step", .type = P_NUM, .def = "1", .flags = PARAM_NULLABLE | PARAM_RANGE | PARAM_LO_OPEN, .lo = 0,
     .hi = 1e6, .doc = "without z_planes: render from the first to the last plane in this step"},
    {.name = "xy_scale", .type = P_NUM, .def = "1", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 64,
     .doc = "lateral refinement: (Y-1)*s+1 rows, (X-1)*s+1 columns"},
    {.name = "max_memory_mb", .type = P_NUM, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 1e9,
     .doc = "refuse grids whose plane needs more (0: half the machine's memory)"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "weights", .kinds = KIND_WEIGHTS, .doc = "weights from siren_fuse or siren_interplane"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "rendered", .kinds = KIND_IMAGE, .doc = "the network on the requested grid, float32"},
    {0},
};

const stage_type stage_siren_render = {
    .name = "siren_render",
    .version = 1,
    .summary = "evaluate fitted SIREN weights at any z positions and a finer xy grid",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
    .check = check,
};
