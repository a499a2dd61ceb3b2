/* psf: the point spread function of the microscope, for deconvolution and
 * isotropic restoration, and the three PSFs IsoNet (Weigert et al. 2017)
 * derives from it.
 *
 *   psf        on the stack's voxel grid (odd sizes, centred, sum 1)
 *   rotated    on an isotropic grid of the lateral voxel size, its z and x
 *              axes swapped: what a lateral slice is blurred with to look
 *              like an axial one
 *   isotropic  on the same grid: a PSF of the lateral resolution in every
 *              direction (Gaussians: sigma_xy along each axis; a measured
 *              PSF: the radial profile of its central lateral plane)
 *   split      h_split with rotated = isotropic * h_split: the blur a lateral
 *              slice, which already carries the lateral PSF, still lacks
 *              (Gaussians: the difference of the variances per axis, exact;
 *              a measured PSF: Fourier division, Tikhonov-regularised by
 *              split_eps, which rings where the split is below a voxel)
 * Models: a Gaussian of given widths; widefield, confocal, two-photon and
 * light-sheet microscopes from NA, wavelengths and refractive index through
 * Gaussian approximations (kernels/host.h, psf_model_sigma: Zhang et al.
 * 2007, Zipfel et al. 2003); or a measured PSF (a bead stack, e.g. from
 * import_tiff or synth's beads phantom), background-subtracted (the median
 * of its border), cut at zero, centred on its brightest voxel. */
#include "stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { M_GAUSSIAN, M_WIDEFIELD, M_CONFOCAL, M_TWO_PHOTON, M_LIGHT_SHEET, M_MEASURED };

static int model_of(const char *s)
{
    static const char *const names[] = {"gaussian", "widefield", "confocal", "two_photon", "light_sheet", "measured"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(s, names[i])) return i;
    return M_GAUSSIAN;
}

/* A measured PSF: the border's median off, negatives cut, the brightest
 * voxel moved to the centre of an odd box as large as fits. */
static int measured_psf(stage_ctx *c, float **out, int64_t n[3], double vox[3])
{
    store_array *a;
    char label[256];
    ctx_input_label(c, "measured", label, sizeof label);
    int rc = ctx_open_input(c, "measured", &a);
    if (rc != SS_OK) return rc;
    array_info info;
    float *h = NULL, *edge = NULL;
    if ((rc = store_array_info(a, &info)) == SS_OK && info.rank != 3)
        rc = ss_fail(SS_ERR_INPUT, "psf: %s has rank %d; a measured PSF is Z x Y x X", label, info.rank);
    size_t total = rc == SS_OK ? (size_t)(info.shape[0] * info.shape[1] * info.shape[2]) : 0;
    if (rc == SS_OK && !(h = malloc(total * sizeof *h))) rc = ss_nomem(total * sizeof *h, "psf: %s", label);
    int64_t st[3] = {0}, ct[3] = {info.shape[0], info.shape[1], info.shape[2]};
    if (rc == SS_OK) rc = ctx_read_f32(c, a, label, 3, st, ct, h);
    store_array_close(a);
    if (rc != SS_OK) {
        free(h);
        return rc;
    }
    array_meta m = array_meta_of(&info);
    memcpy(vox, m.voxel, sizeof m.voxel);
    int64_t Z = ct[0], Y = ct[1], X = ct[2], ne = 0;
    edge = malloc(total * sizeof *edge);
    if (!edge) {
        free(h);
        return ss_nomem(total * sizeof *edge, "psf: %s", label);
    }
    for (int64_t z = 0; z < Z; z++)
        for (int64_t y = 0; y < Y; y++)
            for (int64_t x = 0; x < X; x++)
                if (!z || !y || !x || z == Z - 1 || y == Y - 1 || x == X - 1) edge[ne++] = h[(z * Y + y) * X + x];
    /* the border's median, numpy.percentile(border, 50) */
    double half = 50.0;
    pct_state *ps = pct_new(1, &half, 1);
    while (ps && pct_need_pass(ps)) {
        pct_feed(ps, edge, (size_t)ne);
        pct_end_pass(ps);
    }
    float bg = ps && ne ? (float)pct_result(ps, 0) : 0;
    pct_free(ps);
    free(edge);
    if (!ps) {
        free(h);
        return ss_fail(SS_ERR_NOMEM, "psf: out of memory for the border's median");
    }
    size_t peak = 0;
    for (size_t i = 0; i < total; i++) {
        h[i] = h[i] > bg ? h[i] - bg : 0;
        if (h[i] > h[peak]) peak = i;
    }
    if (!(h[peak] > 0)) {
        free(h);
        return ss_fail(SS_ERR_INPUT, "psf: %s holds nothing above its background (%g): no PSF to measure", label, bg);
    }
    int64_t p[3] = {(int64_t)(peak / (size_t)(Y * X)), (int64_t)(peak / (size_t)X % (size_t)Y), (int64_t)(peak % (size_t)X)};
    int64_t r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = p[i] < ct[i] - 1 - p[i] ? p[i] : ct[i] - 1 - p[i];
        n[i] = 2 * r[i] + 1;
    }
    float *box = malloc((size_t)(n[0] * n[1] * n[2]) * sizeof *box);
    if (!box) {
        free(h);
        return ss_nomem((size_t)(n[0] * n[1] * n[2]) * sizeof *box, "psf: the PSF");
    }
    double s = 0;
    for (int64_t z = 0; z < n[0]; z++)
        for (int64_t y = 0; y < n[1]; y++)
            for (int64_t x = 0; x < n[2]; x++) {
                float v = h[((p[0] - r[0] + z) * Y + p[1] - r[1] + y) * X + p[2] - r[2] + x];
                box[(z * n[1] + y) * n[2] + x] = v;
                s += v;
            }
    free(h);
    for (int64_t i = 0; i < n[0] * n[1] * n[2]; i++) box[i] = (float)(box[i] / s);
    *out = box;
    return SS_OK;
}

/* An odd size that holds +-4 sigma, at least 3, at most 255. */
static int64_t extent(double sigma_vox)
{
    int64_t h = (int64_t)ceil(4.0 * sigma_vox);
    if (h < 1) h = 1;
    if (h > 127) h = 127;
    return 2 * h + 1;
}

static int write3(stage_ctx *c, const char *name, const float *h, const int64_t n[3], const double vox[3])
{
    array_meta m = {.axes = "zyx", .voxel = {vox[0], vox[1], vox[2]}, .unit = "micrometer"};
    store_array *a = NULL;
    int rc = store_writer_array(ctx_writer(c), name, DT_F32, 3, n, NULL, &m, &a);
    int64_t st[3] = {0};
    if (rc == SS_OK) rc = store_array_write(a, st, n, DT_F32, h);
    if (a) store_array_close(a);
    return rc;
}

static int run(stage_ctx *c)
{
    int model = model_of(ctx_str(c, "model"));
    double vox[3] = {1, 1, 1};
    const sample_info *smp = ctx_sample(c);
    if (!ctx_is_null(c, "voxel_size"))
        for (int i = 0; i < 3; i++) vox[i] = ctx_list_num(c, "voxel_size", (size_t)i);
    else if (smp && smp->voxel[0] > 0)
        memcpy(vox, smp->voxel, sizeof vox);
    float *h = NULL;
    int64_t n[3];
    double sxy = 0, sz = 0; /* micrometres, for the Gaussian models */
    int rc = SS_OK;
    if (model == M_MEASURED) {
        const char *s, *a;
        if (ctx_input(c, "measured", &s, &a) != 1)
            return ss_fail(SS_ERR_INPUT, "psf: model measured reads a bead stack: connect the input 'measured'");
        double mv[3];
        if ((rc = measured_psf(c, &h, n, mv)) != SS_OK) return rc;
        if (ctx_is_null(c, "voxel_size")) memcpy(vox, mv, sizeof vox);
    } else {
        if (model == M_GAUSSIAN) {
            sxy = ctx_num(c, "sigma_xy"), sz = ctx_num(c, "sigma_z");
        } else {
            double em = ctx_num(c, "wavelength_nm") / 1000.0;
            double ex = ctx_is_null(c, "excitation_nm") ? em : ctx_num(c, "excitation_nm") / 1000.0;
            psf_model_sigma((psf_model)(model - M_WIDEFIELD), ctx_num(c, "na"), em, ex, ctx_num(c, "refractive_index"),
                            ctx_num(c, "illumination_na"), &sxy, &sz);
        }
        if (!ctx_is_null(c, "shape"))
            for (int i = 0; i < 3; i++) n[i] = (int64_t)ctx_list_num(c, "shape", (size_t)i);
        else
            n[0] = extent(sz / vox[0]), n[1] = extent(sxy / vox[1]), n[2] = extent(sxy / vox[2]);
        h = malloc((size_t)(n[0] * n[1] * n[2]) * sizeof *h);
        if (!h) return ss_nomem((size_t)(n[0] * n[1] * n[2]) * sizeof *h, "psf: the PSF");
        if (psf_gaussian3(n[0], n[1], n[2], sz / vox[0], sxy / vox[1], sxy / vox[2], h) != 0)
            rc = ss_fail(SS_ERR_INPUT, "psf: widths %g (xy) and %g (z) micrometres give no PSF", sxy, sz);
    }
    /* the isotropic grid: the lateral voxel size, as wide as the widest axis */
    double iso = fmin(vox[1], vox[2]);
    int64_t m = 0;
    for (int i = 0; i < 3; i++) {
        int64_t e = (int64_t)ceil((double)(n[i] / 2) * vox[i] / iso);
        m = e > m ? e : m;
    }
    int64_t ni = 2 * (m < 127 ? m : 127) + 1, nn[3] = {ni, ni, ni};
    size_t n3 = (size_t)(ni * ni * ni);
    float *rot = malloc(n3 * sizeof *rot), *isoh = malloc(n3 * sizeof *isoh), *fine = malloc(n3 * sizeof *fine),
          *split = malloc(n3 * sizeof *split);
    if (rc == SS_OK && (!rot || !isoh || !fine || !split)) rc = ss_nomem(4 * n3 * sizeof *rot, "psf: the derived PSFs");
    if (rc == SS_OK && (psf_resample(h, n[0], n[1], n[2], vox, iso, ni, 1, rot) != 0 ||
                        psf_resample(h, n[0], n[1], n[2], vox, iso, ni, 0, fine) != 0))
        rc = ss_fail(SS_ERR_INPUT, "psf: the PSF does not resample onto a %lld^3 grid", (long long)ni);
    if (rc == SS_OK) {
        int e = model == M_MEASURED ? psf_radial_iso(fine, ni, isoh)
                                    : psf_gaussian3(ni, ni, ni, sxy / iso, sxy / iso, sxy / iso, isoh);
        if (e != 0) rc = ss_fail(SS_ERR_INPUT, "psf: no isotropic PSF from this one");
    }
    /* Gaussians split exactly: the variances subtract, axis by axis (zero,
     * a delta, along the axes where the rotated PSF is the lateral one) */
    double rz = sxy / iso, ry = sxy / iso, rx = sz / iso, ii = sxy / iso;
    if (rc == SS_OK && model != M_MEASURED &&
        psf_gaussian3(ni, ni, ni, sqrt(fmax(rz * rz - ii * ii, 0)), sqrt(fmax(ry * ry - ii * ii, 0)),
                      sqrt(fmax(rx * rx - ii * ii, 0)), split) != 0)
        rc = ss_fail(SS_ERR_INPUT, "psf: no split PSF for these widths");
    if (rc == SS_OK && model == M_MEASURED && psf_split(rot, isoh, ni, ctx_num(c, "split_eps"), split) != 0)
        rc = ss_fail(SS_ERR_INPUT, "psf: the split PSF cannot be solved (split_eps %g)", ctx_num(c, "split_eps"));
    if (rc == SS_OK) ctx_attr(c, "split_method", json_string(model == M_MEASURED ? "fourier" : "gaussian"));
    double vi[3] = {iso, iso, iso};
    if (rc == SS_OK) rc = write3(c, "psf", h, n, vox);
    if (rc == SS_OK) rc = write3(c, "rotated", rot, nn, vi);
    if (rc == SS_OK) rc = write3(c, "isotropic", isoh, nn, vi);
    if (rc == SS_OK) rc = write3(c, "split", split, nn, vi);
    if (rc == SS_OK && model != M_MEASURED) ctx_attr(c, "sigma_um", json_pack("{s:f,s:f}", "xy", sxy, "z", sz));
    free(h), free(rot), free(isoh), free(fine), free(split);
    return rc;
}

static const char *check(const json_t *p)
{
    const char *m = json_string_value(json_object_get(p, "model"));
    if (m && !strcmp(m, "gaussian") &&
        (json_is_null(json_object_get(p, "sigma_xy")) || json_is_null(json_object_get(p, "sigma_z"))))
        return "model gaussian needs sigma_xy and sigma_z (micrometres)";
    const json_t *sh = json_object_get(p, "shape");
    for (size_t i = 0; json_is_array(sh) && i < json_array_size(sh); i++)
        if (json_integer_value(json_array_get(sh, i)) % 2 == 0) return "shape: odd sizes only (the PSF is centred)";
    double na = json_number_value(json_object_get(p, "na")), n = json_number_value(json_object_get(p, "refractive_index"));
    if (m && strcmp(m, "gaussian") && strcmp(m, "measured") && !(na < n))
        return "na must be below the refractive index of the immersion medium";
    return NULL;
}

static const param_spec params[] = {
    {.name = "model", .type = P_ENUM, .def = "\"gaussian\"",
     .choices = "gaussian|widefield|confocal|two_photon|light_sheet|measured", .doc = "PSF model"},
    {.name = "sigma_xy", .type = P_NUM, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 0, .hi = 1000,
     .doc = "gaussian: lateral standard deviation, micrometres"},
    {.name = "sigma_z", .type = P_NUM, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 0, .hi = 1000,
     .doc = "gaussian: axial standard deviation, micrometres"},
    {.name = "na", .type = P_NUM, .def = "1.0", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1.7,
     .doc = "numerical aperture of the objective (detection)"},
    {.name = "wavelength_nm", .type = P_NUM, .def = "520", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 5000,
     .doc = "emission wavelength, nm"},
    {.name = "excitation_nm", .type = P_NUM, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE | PARAM_LO_OPEN,
     .lo = 0, .hi = 5000, .doc = "excitation wavelength, nm (confocal, two-photon, light sheet; null: the emission's)"},
    {.name = "refractive_index", .type = P_NUM, .def = "1.33", .flags = PARAM_RANGE, .lo = 1, .hi = 2,
     .doc = "refractive index of the immersion medium"},
    {.name = "illumination_na", .type = P_NUM, .def = "0.05", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1.5,
     .doc = "light sheet: NA of the illumination (the sheet's waist is lambda / (pi NA))"},
    {.name = "shape", .type = P_INT_LIST, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 1, .hi = 255,
     .list_min = 3, .list_max = 3, .doc = "size z, y, x of the PSF on the stack's grid (odd; null: +-4 sigma)"},
    PARAM_VOXEL_SIZE("[z, y, x] um of the stack; null: the sample's, the measured stack's, else 1 x 1 x 1"),
    {.name = "split_eps", .type = P_NUM, .def = "1e-4", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1,
     .doc = "regularisation of the split PSF's Fourier division, relative to the largest |H_iso|^2"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "measured", .kinds = KIND_IMAGE, .optional = 1, .doc = "model measured: a stack of one bead, Z x Y x X"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "psf", .kinds = KIND_IMAGE, .doc = "the PSF on the stack's grid, centred, sum 1"},
    {.name = "rotated", .kinds = KIND_IMAGE, .doc = "on an isotropic grid, z and x swapped"},
    {.name = "isotropic", .kinds = KIND_IMAGE, .doc = "the lateral PSF in every direction, same grid"},
    {.name = "split", .kinds = KIND_IMAGE, .doc = "rotated = isotropic * split, same grid"},
    {0},
};

const stage_type stage_psf = {
    .name = "psf",
    .version = 1,
    .summary = "a microscope's PSF (Gaussian, widefield, confocal, two-photon, light sheet, measured) and IsoNet's "
               "rotated, isotropic and split PSFs",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .flags = STAGE_SOURCE,
    .run = run,
    .check = check,
};
