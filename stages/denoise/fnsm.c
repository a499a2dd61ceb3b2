/* fnsm: Fourier noise suppression (Qiao et al., rationalised deep learning):
 * each plane is low-pass filtered by a radial mask in the Fourier domain,
 * with the cut-off where the image's radially averaged power spectrum meets
 * its noise floor. Beyond the optical transfer function's support a
 * microscope passes no signal, so those frequencies hold noise only.
 *
 * The cut-off (unless given): the power spectrum of every plane is averaged
 * over rings of radius (in units of the Nyquist frequency); the noise floor
 * is the median of the rings from `floor_from` to 1 (Nyquist); walking down
 * from Nyquist, the cut-off is the outer edge of the first ring whose power
 * is above `threshold` times the floor, smoothed over three rings. The mask
 * is 1 up to cutoff - rolloff, 0 from cutoff + rolloff, a raised cosine
 * between.
 *
 * Two passes over the input, one plane held at a time: the profile, then the
 * mask. The profile goes into the table radial_power (for reports and for
 * checking the estimate). */
#include "stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NBINS 128

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Bin b covers radii [b, b + 1) * sqrt(2) / NBINS. */
static double bin_edge(int b) { return (double)b * sqrt(2.0) / NBINS; }

static double estimate_cutoff(const double *power, const double *count, double floor_from, double threshold,
                              double *floor_out)
{
    double mean[NBINS], tail[NBINS];
    int nt = 0;
    for (int b = 0; b < NBINS; b++) {
        mean[b] = count[b] > 0 ? power[b] / count[b] : NAN;
        if (count[b] > 0 && bin_edge(b) >= floor_from && bin_edge(b + 1) <= 1.0 + 1e-12) tail[nt++] = mean[b];
    }
    if (nt == 0) return *floor_out = NAN, 1.0;
    qsort(tail, (size_t)nt, sizeof *tail, cmp_double);
    double floor = nt % 2 ? tail[nt / 2] : 0.5 * (tail[nt / 2 - 1] + tail[nt / 2]);
    *floor_out = floor;
    int top = 0;
    while (top + 1 < NBINS && bin_edge(top + 1) < 1.0 - 1e-12) top++;
    for (int b = top; b >= 0; b--) {
        double s = 0, n = 0;
        for (int j = b - 1; j <= b + 1; j++)
            if (j >= 0 && j < NBINS && count[j] > 0) s += mean[j], n++;
        if (n > 0 && s / n > threshold * floor) return bin_edge(b + 1);
    }
    return bin_edge(1);
}

static int run(stage_ctx *c)
{
    store_array *in, *out = NULL;
    char label[256];
    ctx_input_label(c, "image", label, sizeof label);
    int rc = ctx_open_input(c, "image", &in);
    if (rc != SS_OK) return rc;
    const kernels *k = ctx_kernels(c);
    array_info info;
    fmask_state *fm = NULL;
    float *buf = NULL;
    table_builder *tb = NULL;
    if ((rc = store_array_info(in, &info)) != SS_OK) goto done;
    if (info.rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "fnsm: %s has rank %d; expected an image Z x Y x X", label, info.rank);
        goto done;
    }
    int64_t Z = info.shape[0], Y = info.shape[1], X = info.shape[2];
    size_t plane = (size_t)(Y * X);
    fm = k->fmask_new(Y, X);
    buf = malloc(plane * sizeof *buf);
    if (!fm || !buf) {
        rc = ss_nomem(plane * (sizeof *buf + 12), "the Fourier transforms of planes of %lld x %lld", (long long)Y,
                      (long long)X);
        goto done;
    }
    double power[NBINS] = {0}, count[NBINS] = {0};
    ctx_progress_begin(c, "planes", 2 * Z);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        if ((rc = ctx_read_f32(c, in, label, 3, st, ct, buf)) != SS_OK) break;
        k->fmask_radial_power(fm, buf, NBINS, power, count);
        ctx_progress(c, z + 1);
    }
    if (rc != SS_OK) goto done;
    double floor = NAN, cutoff;
    int estimated = ctx_is_null(c, "cutoff");
    double est = estimate_cutoff(power, count, ctx_num(c, "floor_from"), ctx_num(c, "threshold"), &floor);
    cutoff = estimated ? est : ctx_num(c, "cutoff");
    double rolloff = ctx_num(c, "rolloff");
    static const char *names[] = {"radius", "power", "frequencies"};
    static const col_type types[] = {COL_F64, COL_F64, COL_I64};
    if (!(tb = tb_new(3, names, types))) {
        rc = ss_nomem(0, "the table radial_power");
        goto done;
    }
    for (int b = 0; b < NBINS; b++) {
        if (count[b] == 0) continue;
        tb_row(tb);
        tb_f64(tb, 0, 0.5 * (bin_edge(b) + bin_edge(b + 1)));
        tb_f64(tb, 1, power[b] / count[b]);
        tb_i64(tb, 2, (int64_t)(count[b] / (double)Z)); /* per plane */
    }
    if ((rc = tb_write(tb, ctx_writer(c), "radial_power")) != SS_OK) goto done;
    array_meta m = array_meta_of(&info);
    if ((rc = store_writer_array(ctx_writer(c), "filtered", DT_F32, 3, info.shape, NULL, &m, &out)) != SS_OK)
        goto done;
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        if ((rc = ctx_read_f32(c, in, label, 3, st, ct, buf)) != SS_OK) break;
        k->fmask_apply(fm, buf, cutoff, rolloff, buf);
        rc = store_array_write(out, st, ct, DT_F32, buf);
        ctx_progress(c, Z + z + 1);
    }
    if (rc == SS_OK) {
        ctx_attr(c, "cutoff", json_real(cutoff));
        ctx_attr(c, "cutoff_estimated", json_boolean(estimated));
        ctx_attr(c, "cutoff_estimate", json_real(est));
        if (isfinite(floor)) ctx_attr(c, "noise_floor", json_real(floor));
    }
done:
    tb_free(tb);
    if (fm) k->fmask_free(fm);
    free(buf);
    store_array_close(out);
    store_array_close(in);
    return rc;
}

static const param_spec params[] = {
    {.name = "cutoff", .type = P_NUM, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE | PARAM_LO_OPEN, .lo = 0,
     .hi = 1.5, .doc = "cut-off radius in units of the Nyquist frequency (null: estimated from the data)"},
    {.name = "rolloff", .type = P_NUM, .def = "0.05", .flags = PARAM_RANGE, .lo = 0, .hi = 0.5,
     .doc = "half-width of the raised-cosine edge of the mask, in units of the Nyquist frequency"},
    {.name = "floor_from", .type = P_NUM, .def = "0.8", .flags = PARAM_RANGE | PARAM_HI_OPEN, .lo = 0.1, .hi = 1,
     .doc = "the noise floor is the median power of the rings from this radius to Nyquist"},
    {.name = "threshold", .type = P_NUM, .def = "2.0", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 1, .hi = 1e6,
     .doc = "the cut-off is where the ring power first rises above threshold times the floor, from Nyquist down"},
    {0},
};
static const port_spec inputs[] = {
    {.name = "image", .kinds = KIND_IMAGE, .doc = "image Z x Y x X"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "filtered", .kinds = KIND_IMAGE, .doc = "each plane low-pass filtered, float32"},
    {.name = "radial_power", .kinds = KIND_TABLE, .doc = "mean power per frequency of each ring: radius (of Nyquist), power, frequencies per plane"},
    {0},
};

const stage_type stage_fnsm = {
    .name = "fnsm",
    .version = 1,
    .summary = "Fourier noise suppression: a radial low-pass mask at the cut-off where the spectrum meets the noise",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
