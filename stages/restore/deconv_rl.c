/* deconv_rl: Richardson-Lucy deconvolution (Richardson 1972, Lucy 1974),
 * optionally with the total-variation term of Dey et al. (2006), the IsoNet
 * paper's classical baseline.
 *
 * RL is the maximum-likelihood estimate of a non-negative object under
 * Poisson noise for a known, shift-invariant PSF: each iteration multiplies
 * the estimate by the correlation of the PSF with data / (estimate (x) PSF).
 * Here the estimate starts flat at the image's mean (a start with no zeros
 * to freeze, since RL's update is multiplicative, and no noise to sharpen),
 * the data are clipped at 0 and the blurred estimate floored at `floor`.
 *
 * Edges: the transforms are periodic, so each axis is padded by twice the
 * PSF's half extent (rounded up to a size FFTW does fast, the extra at the
 * high end) with the image mirrored (`reflect`, numpy's 'symmetric': the edge
 * voxel repeated) or zeros (`zero`); `periodic` pads nothing and wraps.
 * Twice, because the estimate in the padding is itself shaped by data a
 * PSF's reach further in: the seam where the transform wraps stays a whole
 * PSF away from the image. Reflect is the default: a mirrored border continues the image without a
 * step, where zeros make RL explain a dark border by darkening the edge and
 * periodic wrapping pulls the opposite side's content in.
 *
 * Memory: the volume is deconvolved whole when its padded grid fits
 * max_memory_mb (the data, the estimate and the kernel's state), otherwise
 * in blocks of planes along z, each read with `margin` planes beyond the
 * PSF's half extent on either side (as the edge mode maps them) and only
 * its core written. RL mixes information a PSF's reach further at each
 * iteration, so blocks differ from one whole pass by what leaks across the
 * margin: 6e-5 of the maximum in the test's 7 blocks of 14 planes, 20
 * iterations of a Gaussian PSF (sigma_z 2 voxels), the default margin, and
 * 5e-6 with periodic edges in 3 blocks (tests/stages/restore/deconv_rl.py). */
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RL_REFLECT, RL_ZERO, RL_PERIODIC };
/* |grad u| is taken as sqrt(|grad u|^2 + eps^2) with eps this fraction of
 * the image's mean: without it the unit vectors in flat regions point
 * wherever rounding sends them, and the TV term there is noise of full
 * strength. */
#define TV_EPS 1e-3
static const char *const edge_names[] = {"reflect", "zero", "periodic", NULL};

typedef struct {
    float *h;
    int64_t n[3];
    double sum; /* before normalising */
    char label[256];
} psf_kernel;

/* The grid of one axis: pad voxels before the data, len in all. */
typedef struct {
    int64_t pad, len;
} axis_grid;

/* The smallest length >= n with no prime factor above 7. */
static int64_t fft_size(int64_t n)
{
    for (int64_t m = n;; m++) {
        int64_t r = m;
        for (int p = 2; p <= 7; p++)
            while (r % p == 0) r /= p;
        if (r == 1) return m;
    }
}

/* Index into an axis of n voxels of position i outside or inside it, or -1
 * for a zero. */
static int64_t edge_index(int64_t i, int64_t n, int mode)
{
    if (i >= 0 && i < n) return i;
    if (mode == RL_ZERO) return -1;
    if (mode == RL_PERIODIC) return ((i % n) + n) % n;
    int64_t p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

static axis_grid axis_of(int64_t n, int64_t half, int mode)
{
    if (mode == RL_PERIODIC) return (axis_grid){0, n};
    return (axis_grid){2 * half, fft_size(n + 4 * half)};
}

static int psf_from_sigmas(stage_ctx *c, const int64_t shape[3], psf_kernel *p)
{
    double sig[3] = {ctx_num(c, "sigma_z"), ctx_num(c, "sigma_xy"), ctx_num(c, "sigma_xy")};
    int64_t r[3];
    for (int a = 0; a < 3; a++) {
        /* scipy.ndimage's truncate 4, cut to what fits the volume */
        r[a] = sig[a] > 0 ? (int64_t)(4.0 * sig[a] + 0.5) : 0;
        if (2 * r[a] + 1 > shape[a]) r[a] = (shape[a] - 1) / 2;
        p->n[a] = 2 * r[a] + 1;
    }
    size_t n = (size_t)(p->n[0] * p->n[1] * p->n[2]);
    if (!(p->h = malloc(n * sizeof *p->h))) return ss_nomem(n * sizeof *p->h, "deconv_rl: the Gaussian PSF");
    if (psf_gaussian3(p->n[0], p->n[1], p->n[2], sig[0], sig[1], sig[2], p->h))
        return ss_fail(SS_ERR_INTERNAL, "deconv_rl: a Gaussian PSF of %lld x %lld x %lld", (long long)p->n[0],
                       (long long)p->n[1], (long long)p->n[2]);
    p->sum = 1;
    snprintf(p->label, sizeof p->label, "gaussian sigma_z %g, sigma_xy %g", sig[0], sig[1]);
    return SS_OK;
}

static int psf_from_input(stage_ctx *c, const int64_t shape[3], psf_kernel *p)
{
    ctx_input_label(c, "psf", p->label, sizeof p->label);
    store_array *a;
    int rc = ctx_open_input(c, "psf", &a);
    if (rc != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(a, &info)) != SS_OK) goto done;
    if (info.rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "deconv_rl: psf %s has rank %d; expected a PSF Z x Y x X", p->label, info.rank);
        goto done;
    }
    static const char *const axis[] = {"z", "y", "x"};
    for (int i = 0; i < 3; i++) {
        p->n[i] = info.shape[i];
        if (p->n[i] % 2 == 0) {
            rc = ss_fail(SS_ERR_INPUT, "deconv_rl: psf %s is %lld x %lld x %lld, even along %s; a centred PSF needs odd "
                         "sizes (crop or pad it by one)", p->label, (long long)info.shape[0], (long long)info.shape[1],
                         (long long)info.shape[2], axis[i]);
            goto done;
        }
        if (p->n[i] > shape[i]) {
            rc = ss_fail(SS_ERR_INPUT, "deconv_rl: psf %s is %lld x %lld x %lld, larger than the image (%lld x %lld x "
                         "%lld) along %s", p->label, (long long)info.shape[0], (long long)info.shape[1],
                         (long long)info.shape[2], (long long)shape[0], (long long)shape[1], (long long)shape[2],
                         axis[i]);
            goto done;
        }
    }
    size_t n = (size_t)(p->n[0] * p->n[1] * p->n[2]);
    if (!(p->h = malloc(n * sizeof *p->h))) {
        rc = ss_nomem(n * sizeof *p->h, "deconv_rl: psf %s", p->label);
        goto done;
    }
    int64_t st[3] = {0, 0, 0};
    if ((rc = ctx_read_f32(c, a, p->label, 3, st, p->n, p->h)) != SS_OK) goto done;
    double s = 0, m[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (p->h[i] < 0) {
            int64_t z = (int64_t)i / (p->n[1] * p->n[2]);
            rc = ss_fail(SS_ERR_INPUT, "deconv_rl: psf %s has a negative value (%g) in plane %lld; a PSF is an "
                         "intensity", p->label, (double)p->h[i], (long long)z);
            goto done;
        }
        s += p->h[i];
        int64_t q[3] = {(int64_t)i / (p->n[1] * p->n[2]), (int64_t)i / p->n[2] % p->n[1], (int64_t)i % p->n[2]};
        for (int k = 0; k < 3; k++) m[k] += p->h[i] * (double)(q[k] - p->n[k] / 2);
    }
    if (!(s > 0) || !isfinite(s)) {
        rc = ss_fail(SS_ERR_INPUT, "deconv_rl: psf %s sums to %g; it cannot be normalised", p->label, s);
        goto done;
    }
    p->sum = s;
    double off = sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]) / s;
    if (off > 1.0)
        ctx_warn(c, "deconv_rl: the centroid of psf %s lies %.2f voxels from its centre voxel; the result is shifted "
                 "by as much", p->label, off);
done:
    store_array_close(a);
    return rc;
}

/* One block: core planes [c0, c1) of the volume, its grid along z from c0 -
 * lo to c1 + hi (hi including the rounding up). */
typedef struct {
    int64_t c0, c1, lo, hi;
} z_block;

static z_block block_of(int64_t c0, int64_t c1, int64_t Z, int nb, int64_t hz, int64_t margin, int mode)
{
    z_block b = {c0, c1, hz + margin, hz + margin};
    if (nb == 1 && mode == RL_PERIODIC) b.lo = b.hi = 0;
    else if (mode != RL_PERIODIC) {
        if (c0 == 0) b.lo = 2 * hz;
        if (c1 == Z) b.hi = 2 * hz;
    }
    if (!(nb == 1 && mode == RL_PERIODIC)) b.hi += fft_size(c1 - c0 + b.lo + b.hi) - (c1 - c0 + b.lo + b.hi);
    return b;
}

typedef struct {
    stage_ctx *c;
    const kernels *k;
    store_array *in, *out;
    char label[256];
    int64_t Z, Y, X;
    axis_grid gy, gx;
    int mode, tv;
    psf_kernel psf;
    float *plane;   /* Y x X */
    double *acc;    /* per iteration: sum of squared changes and of squares */
    double mean;
    int64_t iterations;
} rl_run;

static double block_bytes(const rl_run *r, int64_t nz)
{
    double grid = (double)nz * (double)r->gy.len * (double)r->gx.len;
    return 2.0 * grid * sizeof(float) + (double)r->k->rl_bytes(nz, r->gy.len, r->gx.len, r->tv);
}

/* Reads the data of a block into d (nz x gy.len x gx.len), padded. */
static int read_block(rl_run *r, const z_block *b, float *d)
{
    const int64_t Ly = r->gy.len, Lx = r->gx.len, nz = b->c1 - b->c0 + b->lo + b->hi;
    for (int64_t z = 0; z < nz; z++) {
        float *dst = d + (size_t)(z * Ly * Lx);
        int64_t src = edge_index(b->c0 - b->lo + z, r->Z, r->mode);
        if (src < 0) {
            memset(dst, 0, (size_t)(Ly * Lx) * sizeof *dst);
            continue;
        }
        int64_t st[3] = {src, 0, 0}, ct[3] = {1, r->Y, r->X};
        int rc = ctx_read_f32(r->c, r->in, r->label, 3, st, ct, r->plane);
        if (rc != SS_OK) return rc;
        for (int64_t y = 0; y < Ly; y++) {
            int64_t sy = edge_index(y - r->gy.pad, r->Y, r->mode);
            for (int64_t x = 0; x < Lx; x++) {
                int64_t sx = edge_index(x - r->gx.pad, r->X, r->mode);
                float v = sy < 0 || sx < 0 ? 0.0f : r->plane[sy * r->X + sx];
                dst[y * Lx + x] = v > 0 ? v : 0.0f;
            }
        }
    }
    return SS_OK;
}

static int run_block(rl_run *r, const z_block *b, int64_t *done)
{
    stage_ctx *c = r->c;
    const int64_t Ly = r->gy.len, Lx = r->gx.len, nz = b->c1 - b->c0 + b->lo + b->hi;
    size_t n = (size_t)(nz * Ly * Lx);
    float *d = malloc(n * sizeof *d), *u = malloc(n * sizeof *u);
    rl_state *s = NULL;
    int rc = SS_OK;
    if (!d || !u) {
        rc = ss_nomem(2 * n * sizeof *d, "deconv_rl: a block of %lld x %lld x %lld", (long long)nz, (long long)Ly,
                      (long long)Lx);
        goto done;
    }
    if ((rc = read_block(r, b, d)) != SS_OK) goto done;
    if (!(s = r->k->rl_new(nz, Ly, Lx, r->psf.h, r->psf.n[0], r->psf.n[1], r->psf.n[2]))) {
        rc = ss_nomem(r->k->rl_bytes(nz, Ly, Lx, r->tv), "deconv_rl: the FFT state of a %lld x %lld x %lld grid",
                      (long long)nz, (long long)Ly, (long long)Lx);
        goto done;
    }
    for (size_t i = 0; i < n; i++) u[i] = (float)r->mean;
    const int64_t lo[3] = {b->lo, r->gy.pad, r->gx.pad}, hi[3] = {b->lo + b->c1 - b->c0, r->gy.pad + r->Y,
                                                                  r->gx.pad + r->X};
    double lambda = ctx_num(c, "tv_lambda"), tv_eps = TV_EPS * r->mean;
    float floor = (float)ctx_num(c, "floor");
    for (int64_t it = 0; it < r->iterations; it++) {
        double sums[2];
        if (r->k->rl_step_f32(s, d, u, lambda, tv_eps, floor, lo, hi, sums)) {
            rc = ss_nomem(0, "deconv_rl: the TV term of a %lld x %lld x %lld grid", (long long)nz, (long long)Ly,
                          (long long)Lx);
            goto done;
        }
        r->acc[2 * it] += sums[0];
        r->acc[2 * it + 1] += sums[1];
        ctx_progress(c, ++*done);
        if (ctx_cancelled(c)) {
            rc = ss_fail(SS_ERR_INTERRUPTED, "deconv_rl: interrupted");
            goto done;
        }
    }
    for (int64_t z = b->c0; z < b->c1; z++) {
        const float *src = u + (size_t)(((z - b->c0 + b->lo) * Ly + r->gy.pad) * Lx + r->gx.pad);
        for (int64_t y = 0; y < r->Y; y++) memcpy(r->plane + y * r->X, src + y * Lx, (size_t)r->X * sizeof(float));
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, r->Y, r->X};
        if ((rc = store_array_write(r->out, st, ct, DT_F32, r->plane)) != SS_OK) goto done;
    }
done:
    r->k->rl_free(s);
    free(d);
    free(u);
    return rc;
}

/* The mean of the data clipped at 0, the flat start; every plane is read
 * (and checked) once before any work. */
static int image_mean(rl_run *r, int64_t *negative)
{
    double s = 0;
    *negative = 0;
    for (int64_t z = 0; z < r->Z; z++) {
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, r->Y, r->X};
        int rc = ctx_read_f32(r->c, r->in, r->label, 3, st, ct, r->plane);
        if (rc != SS_OK) return rc;
        double p = 0;
        for (int64_t i = 0; i < r->Y * r->X; i++) {
            if (r->plane[i] > 0) p += r->plane[i];
            else if (r->plane[i] < 0) ++*negative;
        }
        s += p;
    }
    r->mean = s / ((double)r->Z * (double)r->Y * (double)r->X);
    return SS_OK;
}

static int write_curve(rl_run *r)
{
    static const char *const names[] = {"iteration", "relative_change"};
    static const col_type types[] = {COL_I64, COL_F64};
    table_builder *t = tb_new(2, names, types);
    if (!t) return ss_nomem(0, "deconv_rl: the curve table");
    double last = 0;
    for (int64_t it = 0; it < r->iterations; it++) {
        tb_row(t);
        tb_i64(t, 0, it + 1);
        last = r->acc[2 * it + 1] > 0 ? sqrt(r->acc[2 * it] / r->acc[2 * it + 1]) : 0.0;
        tb_f64(t, 1, last);
    }
    int rc = tb_write(t, ctx_writer(r->c), "curve");
    tb_free(t);
    if (rc == SS_OK) ctx_attr(r->c, "final_change", json_real(last));
    return rc;
}

static int run(stage_ctx *c)
{
    rl_run r = {.c = c, .k = ctx_kernels(c), .iterations = ctx_int(c, "iterations"), .tv = ctx_num(c, "tv_lambda") > 0};
    const char *edge = ctx_str(c, "edge");
    for (r.mode = 0; edge_names[r.mode] && strcmp(edge_names[r.mode], edge); r.mode++) {}
    ctx_input_label(c, "image", r.label, sizeof r.label);
    int rc = ctx_open_input(c, "image", &r.in);
    if (rc != SS_OK) return rc;
    array_info info;
    if ((rc = store_array_info(r.in, &info)) != SS_OK) goto done;
    if (info.rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "deconv_rl: %s has rank %d; expected an image Z x Y x X", r.label, info.rank);
        goto done;
    }
    r.Z = info.shape[0], r.Y = info.shape[1], r.X = info.shape[2];
    const char *ps, *pa;
    int has_psf = ctx_input(c, "psf", &ps, &pa) == 1;
    int has_sigma = !ctx_is_null(c, "sigma_xy") || !ctx_is_null(c, "sigma_z");
    if (has_psf && has_sigma) {
        rc = ss_fail(SS_ERR_CONFIG, "deconv_rl: sigma_xy and sigma_z make a Gaussian PSF; they do not apply with a psf "
                     "input");
        goto done;
    }
    if (!has_psf && (ctx_is_null(c, "sigma_xy") || ctx_is_null(c, "sigma_z"))) {
        rc = ss_fail(SS_ERR_CONFIG, "deconv_rl: no psf input; connect one or set sigma_xy and sigma_z (voxels)");
        goto done;
    }
    if ((rc = has_psf ? psf_from_input(c, info.shape, &r.psf) : psf_from_sigmas(c, info.shape, &r.psf)) != SS_OK)
        goto done;
    size_t np = (size_t)(r.psf.n[0] * r.psf.n[1] * r.psf.n[2]);
    for (size_t i = 0; i < np; i++) r.psf.h[i] = (float)(r.psf.h[i] / r.psf.sum);
    r.gy = axis_of(r.Y, r.psf.n[1] / 2, r.mode);
    r.gx = axis_of(r.X, r.psf.n[2] / 2, r.mode);
    if (!(r.plane = malloc((size_t)(r.Y * r.X) * sizeof *r.plane)) ||
        !(r.acc = calloc((size_t)r.iterations * 2, sizeof *r.acc))) {
        rc = ss_nomem((size_t)(r.Y * r.X) * sizeof *r.plane, "deconv_rl: a plane of %s", r.label);
        goto done;
    }
    int64_t negative;
    if ((rc = image_mean(&r, &negative)) != SS_OK) goto done;
    if (negative) {
        ctx_warn(c, "deconv_rl: %s has %lld negative values; Richardson-Lucy reads them as 0", r.label,
                 (long long)negative);
    }

    /* The fewest blocks that fit: whole when it can, else cores of
     * ceil(Z / nb) planes. */
    const int64_t hz = r.psf.n[0] / 2, margin = ctx_int(c, "margin");
    const double budget = ctx_num(c, "max_memory_mb") * 1048576.0;
    int64_t nb = 0, core = 0;
    double need = 0;
    for (int64_t k = 1; k <= r.Z && !nb; k++) {
        int64_t cz = (r.Z + k - 1) / k, len;
        if (k == 1) {
            z_block w = block_of(0, r.Z, r.Z, 1, hz, margin, r.mode);
            len = r.Z + w.lo + w.hi;
        } else {
            len = fft_size(cz + 2 * (hz + margin)); /* both sides inside the volume: the longest */
        }
        need = block_bytes(&r, len);
        if (need <= budget) nb = k, core = cz;
    }
    if (!nb) {
        rc = ss_fail(SS_ERR_INPUT, "deconv_rl: max_memory_mb %g is below what a block of one plane of %s needs (%.0f "
                     "MB with a margin of %lld + %lld planes); raise it", ctx_num(c, "max_memory_mb"), r.label,
                     need / 1048576.0, (long long)hz, (long long)margin);
        goto done;
    }
    nb = (r.Z + core - 1) / core; /* cores of `core` planes, the last possibly shorter */
    array_meta m = array_meta_of(&info);
    if ((rc = store_writer_array(ctx_writer(c), "deconvolved", DT_F32, 3, info.shape, NULL, &m, &r.out)) != SS_OK)
        goto done;
    ctx_progress_begin(c, "iterations", nb * r.iterations);
    int64_t done_steps = 0;
    int64_t fft0[3] = {0, r.gy.len, r.gx.len};
    for (int64_t k = 0; k < nb && rc == SS_OK; k++) {
        int64_t c1 = (k + 1) * core < r.Z ? (k + 1) * core : r.Z;
        z_block b = block_of(k * core, c1, r.Z, (int)nb, hz, margin, r.mode);
        if (!k) fft0[0] = c1 - b.c0 + b.lo + b.hi;
        rc = run_block(&r, &b, &done_steps);
    }
    if (rc == SS_OK) {
        store_array_close(r.out);
        r.out = NULL;
        rc = write_curve(&r);
    }
    if (rc == SS_OK) {
        ctx_attr(c, "blocks", json_integer(nb));
        ctx_attr(c, "block_planes", json_integer(core));
        ctx_attr(c, "fft_shape", json_pack("[I,I,I]", (json_int_t)fft0[0], (json_int_t)fft0[1], (json_int_t)fft0[2]));
        ctx_attr(c, "pad", json_pack("[I,I,I]", (json_int_t)(nb == 1 && r.mode == RL_PERIODIC ? 0 : 2 * hz),
                                     (json_int_t)r.gy.pad, (json_int_t)r.gx.pad));
        ctx_attr(c, "psf_shape", json_pack("[I,I,I]", (json_int_t)r.psf.n[0], (json_int_t)r.psf.n[1],
                                           (json_int_t)r.psf.n[2]));
        ctx_attr(c, "psf_source", json_string(r.psf.label));
        ctx_attr(c, "start_value", json_real(r.mean));
        ctx_attr(c, "negative_clipped", json_integer(negative));
        ctx_attr(c, "memory_mb", json_real(need / 1048576.0));
    }
done:
    free(r.psf.h);
    free(r.plane);
    free(r.acc);
    store_array_close(r.out);
    store_array_close(r.in);
    return rc;
}

static const param_spec params[] = {
    {.name = "iterations", .type = P_INT, .def = "20", .flags = PARAM_RANGE, .lo = 1, .hi = 100000,
     .doc = "Richardson-Lucy iterations"},
    {.name = "edge", .type = P_ENUM, .def = "\"reflect\"", .choices = "reflect|zero|periodic",
     .doc = "what lies beyond the image: its mirror image (reflect), zeros, or its opposite side (periodic)"},
    {.name = "tv_lambda", .type = P_NUM, .def = "0", .flags = PARAM_RANGE, .lo = 0, .hi = 0.1,
     .doc = "weight of the total-variation term (Dey et al. 2006; 0: plain RL; 0.001-0.01 typical)"},
    {.name = "floor", .type = P_NUM, .def = "1e-6", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1e6,
     .doc = "the blurred estimate is taken as at least this (in the image's units) where data are divided by it"},
    {.name = "sigma_xy", .type = P_NUM, .def = "null", .flags = PARAM_RANGE | PARAM_NULLABLE, .lo = 0, .hi = 1000,
     .doc = "without a psf input: a Gaussian PSF, lateral standard deviation in voxels"},
    {.name = "sigma_z", .type = P_NUM, .def = "null", .flags = PARAM_RANGE | PARAM_NULLABLE, .lo = 0, .hi = 1000,
     .doc = "without a psf input: a Gaussian PSF, axial standard deviation in voxels"},
    {.name = "max_memory_mb", .type = P_NUM, .def = "2048", .flags = PARAM_RANGE, .lo = 1, .hi = 1e8,
     .doc = "memory for one block; the volume goes in blocks of planes along z when it does not fit whole"},
    {.name = "margin", .type = P_INT, .def = "16", .flags = PARAM_RANGE, .lo = 0, .hi = 65536,
     .doc = "planes each block reads beyond the PSF's half extent on either side"},
    {0},
};

static const port_spec inputs[] = {
    {.name = "image", .kinds = KIND_IMAGE, .doc = "the image to deconvolve, Z x Y x X (non-negative: counts)"},
    {.name = "psf", .kinds = KIND_IMAGE, .optional = 1,
     .doc = "the PSF, Z x Y x X with odd sizes, centred on its middle voxel, non-negative; normalised to sum 1"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "deconvolved", .kinds = KIND_IMAGE, .doc = "the estimate, float32, the image's shape and voxel size"},
    {.name = "curve", .kinds = KIND_TABLE, .doc = "iteration, relative_change (|u_k - u_(k-1)| / |u_(k-1)|)"},
    {0},
};

const stage_type stage_deconv_rl = {
    .name = "deconv_rl",
    .version = 1,
    .summary = "Richardson-Lucy deconvolution by FFT (reflect, zero or periodic edges), optionally with TV "
               "regularisation (Dey et al. 2006), in blocks along z for large stacks",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .run = run,
};
