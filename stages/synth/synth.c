/* synth: phantoms with ground truth, imaged through a two-photon PSF with
 * photon and read noise and (in some repeats) scanning motion, by seed.
 *
 * Phantoms (geometry in micrometres, kernels/cpu/phantom.c renders them):
 *   dendrites         smooth random tubes crossing the field with spines (a
 *                     thin neck and a round head); the SIREN paper's setting
 *   nuclei            textured ellipsoids, one per cell, never overlapping
 *   membranes         the boundaries of a 3D Voronoi tessellation
 *   nuclei_membranes  both, as two stains summed
 *   beads             sub-resolution beads (100 nm), to measure the PSF
 *
 * Imaging. Each output plane is the scene convolved with the PSF and sampled
 * at the plane: the scene is averaged over thin z bins (m per z step, so the
 * axial PSF is integrated finely even with 1 um steps) and over each pixel
 * (supersampled, with partial volume at edges), then combined over the bins
 * near the plane with the PSF's axial profile and blurred laterally; with a
 * computed PSF each bin is convolved with the PSF slice at its distance by
 * FFT. Bins live in a ring, so memory is a few dozen planes whatever Z is.
 * The scene is rendered with a margin around the field, so the edges of the
 * volume are a crop of a larger image (no reflection artefacts) and motion
 * can bring real content into view.
 *
 * Intensities: truth = gain (background + photons s / max s), s the blurred
 * dye density, so `photons` is the expected signal at the brightest voxel;
 * repeats = round(gain Poisson(truth / gain) + Normal(0, read_noise)),
 * clipped to uint16. The maximum of s is found by a first pass over the
 * planes (rendering twice is cheaper than holding the volume). */
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PH_DENDRITES, PH_NUCLEI, PH_MEMBRANES, PH_NUCLEI_MEMBRANES, PH_BEADS };
static const char *const phantom_names[] = {"dendrites", "nuclei", "membranes", "nuclei_membranes", "beads", NULL};

enum { PSF_GAUSS, PSF_COMPUTED, PSF_NONE };

/* The spine table and the artefact table grow as they are made. */
enum { SP_ID, SP_DENDRITE, SP_Z, SP_Y, SP_X, SP_RADIUS };
enum { AR_REPEAT, AR_Z, AR_ROW_START, AR_ROW_END, AR_SHIFT_X, AR_SHIFT_Y, AR_BAND };

static table_builder *spine_table_new(void)
{
    static const char *const names[] = {"id", "dendrite", "z", "y", "x", "radius_um"};
    static const col_type types[] = {COL_I64, COL_I64, COL_F64, COL_F64, COL_F64, COL_F64};
    return tb_new(6, names, types);
}

static table_builder *artefact_table_new(void)
{
    static const char *const names[] = {"repeat", "z", "row_start", "row_end", "shift_x", "shift_y", "band"};
    static const col_type types[] = {COL_I64, COL_I64, COL_I64, COL_I64, COL_F64, COL_F64, COL_I64};
    return tb_new(7, names, types);
}

static int spine_add(table_builder *s, int64_t dendrite, const double h[3], const double vox[3], double r)
{
    if (tb_row(s) != SS_OK) return -1;
    tb_i64(s, SP_ID, tb_rows(s));
    tb_i64(s, SP_DENDRITE, dendrite);
    tb_f64(s, SP_Z, h[0] / vox[0]);
    tb_f64(s, SP_Y, h[1] / vox[1]);
    tb_f64(s, SP_X, h[2] / vox[2]);
    tb_f64(s, SP_RADIUS, r);
    return 0;
}

static int artefact_add(table_builder *a, int64_t r, int64_t z, int64_t r0, int64_t r1, double sx, double sy, int band)
{
    if (tb_row(a) != SS_OK) return -1;
    tb_i64(a, AR_REPEAT, r);
    tb_i64(a, AR_Z, z);
    tb_i64(a, AR_ROW_START, r0);
    tb_i64(a, AR_ROW_END, r1);
    tb_f64(a, AR_SHIFT_X, sx);
    tb_f64(a, AR_SHIFT_Y, sy);
    tb_i64(a, AR_BAND, band);
    return 0;
}

static double uni(ss_rng *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform(r); }

static void list_range(stage_ctx *c, const char *name, double out[2])
{
    out[0] = ctx_list_num(c, name, 0);
    out[1] = ctx_list_num(c, name, 1);
}

/* ---- scenes -------------------------------------------------------------- */

typedef struct {
    int64_t n[3];   /* Z, Y, X */
    double vox[3];  /* z, y, x in um */
    double lo[3], len[3]; /* the field: voxel centres at i * vox, so [-vox/2, (n - 1/2) vox) */
} field;

static int inside(const field *f, const double p[3])
{
    for (int i = 0; i < 3; i++)
        if (p[i] < f->lo[i] || p[i] >= f->lo[i] + f->len[i]) return 0;
    return 1;
}

static double norm3(double v[3])
{
    double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (n > 0)
        for (int i = 0; i < 3; i++) v[i] /= n;
    return n;
}

/* Dendrites cross the field laterally (as the dendrites of one imaging
 * plane do), wander a little in z, and extend well past the field's edges;
 * spines point in every direction around the shaft. Heads inside the field
 * go to the table. */
static int make_dendrites(stage_ctx *c, const field *f, ss_rng *rng, phantom *ph, table_builder *spines)
{
    int nd = (int)ctx_int(c, "dendrites");
    double rr[2], dens[2], neck[2], head[2];
    list_range(c, "dendrite_radius_um", rr);
    list_range(c, "spine_density", dens);
    list_range(c, "neck_length_um", neck);
    list_range(c, "head_radius_um", head);
    double neck_r = ctx_num(c, "neck_radius_um");
    const double step = 0.25; /* um between polyline points: below the thinnest shaft radius */
    double half = 0.5 * hypot(f->len[1], f->len[2]) + 2.0 * neck[1] + 2.0 * head[1] + rr[1] + 4.0;
    int64_t np = (int64_t)(2.0 * half / step) + 1;
    double *pts = malloc((size_t)np * 3 * sizeof *pts), *rad = malloc((size_t)np * sizeof *rad);
    if (!pts || !rad) {
        free(pts);
        free(rad);
        return ss_fail(SS_ERR_NOMEM, "synth: out of memory for dendrite paths");
    }
    int rc = SS_OK;
    for (int d = 0; d < nd && rc == SS_OK; d++) {
        double bright = uni(rng, 0.6, 1.0), r0 = uni(rng, rr[0], rr[1]);
        double th = uni(rng, 0, M_PI), dir[2] = {sin(th), cos(th)}, perp[2] = {-cos(th), sin(th)};
        double ctr[3] = {f->lo[0] + f->len[0] * uni(rng, 0.35, 0.65),
                         f->lo[1] + f->len[1] * uni(rng, 0.2, 0.8), f->lo[2] + f->len[2] * uni(rng, 0.2, 0.8)};
        double a1 = uni(rng, 0.5, 2.0), l1 = uni(rng, 15, 40), p1 = uni(rng, 0, 2 * M_PI);
        double a2 = uni(rng, 0.2, 0.8), l2 = uni(rng, 5, 12), p2 = uni(rng, 0, 2 * M_PI);
        double slope = uni(rng, -0.25, 0.25) * f->len[0] / half;
        double az = uni(rng, 0, 0.3) * fmin(f->len[0] / 4, 1.5), lz = uni(rng, 10, 30), pz = uni(rng, 0, 2 * M_PI);
        double lr = uni(rng, 5, 15), pr = uni(rng, 0, 2 * M_PI);
        for (int64_t j = 0; j < np; j++) {
            double t = -half + (double)j * step;
            double w = a1 * sin(2 * M_PI * t / l1 + p1) + a2 * sin(2 * M_PI * t / l2 + p2);
            double *p = pts + 3 * j;
            p[0] = ctr[0] + slope * t + az * sin(2 * M_PI * t / lz + pz);
            p[1] = ctr[1] + dir[0] * t + perp[0] * w;
            p[2] = ctr[2] + dir[1] * t + perp[1] * w;
            rad[j] = r0 * (1.0 + 0.12 * sin(2 * M_PI * t / lr + pr));
        }
        double arc = 0;
        for (int64_t j = 0; j + 1 < np && rc == SS_OK; j++) {
            const double *a = pts + 3 * j, *b = a + 3;
            arc += sqrt((b[0] - a[0]) * (b[0] - a[0]) + (b[1] - a[1]) * (b[1] - a[1]) + (b[2] - a[2]) * (b[2] - a[2]));
            if (phantom_add_capsule(ph, a, b, 0.5 * (rad[j] + rad[j + 1]), bright, d + 1))
                rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory for the scene");
        }
        double rho = uni(rng, dens[0], dens[1]);
        int64_t ns = (int64_t)rng_poisson(rng, rho * arc);
        for (int64_t s = 0; s < ns && rc == SS_OK; s++) {
            /* Uniform along the polyline: points are nearly equidistant, so
             * a uniform segment index and fraction is close enough. */
            double u = uni(rng, 0, (double)(np - 1));
            int64_t j = (int64_t)u;
            if (j >= np - 1) j = np - 2;
            double fr = u - (double)j, base[3], tan[3], v[3];
            const double *a = pts + 3 * j, *b = a + 3;
            for (int i = 0; i < 3; i++) base[i] = a[i] + fr * (b[i] - a[i]), tan[i] = b[i] - a[i];
            norm3(tan);
            /* A direction uniform around the shaft: an isotropic vector
             * with its tangential part removed. */
            double vn;
            do {
                for (int i = 0; i < 3; i++) v[i] = rng_normal(rng);
                double dt = v[0] * tan[0] + v[1] * tan[1] + v[2] * tan[2];
                for (int i = 0; i < 3; i++) v[i] -= dt * tan[i];
                vn = norm3(v);
            } while (vn < 1e-6);
            double rd = rad[j], ln = uni(rng, neck[0], neck[1]), rh = uni(rng, head[0], head[1]);
            double rn = neck_r * uni(rng, 0.8, 1.2), hb = bright * uni(rng, 0.9, 1.1);
            double h[3], ne[3];
            for (int i = 0; i < 3; i++) {
                h[i] = base[i] + v[i] * (rd + ln + rh);
                ne[i] = base[i] + v[i] * (rd + ln + 0.5 * rh);
            }
            if (phantom_add_capsule(ph, base, ne, rn, bright, d + 1) || phantom_add_capsule(ph, h, h, rh, hb, d + 1))
                rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory for the scene");
            else if (inside(f, h) && spine_add(spines, d + 1, h, f->vox, rh))
                rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory for the spine table");
        }
    }
    free(pts);
    free(rad);
    return rc;
}

/* Dart throwing with a minimum distance (a Poisson-disk pattern), on a grid
 * whose cells hold at most one point. Attempts are bounded, so the pattern
 * is dense but not necessarily saturated. */
static int poisson_disk(ss_rng *rng, const double lo[3], const double len[3], double dmin, int64_t max_pts,
                        double **out, int64_t *n_out)
{
    double cell = dmin / sqrt(3.0);
    int64_t g[3];
    double vol = 1;
    for (int i = 0; i < 3; i++) {
        g[i] = (int64_t)ceil(len[i] / cell);
        if (g[i] < 1) g[i] = 1;
        vol *= len[i];
    }
    int64_t expect = (int64_t)(vol / (dmin * dmin * dmin)) + 1;
    if (expect > max_pts) expect = max_pts;
    int64_t *grid = malloc((size_t)(g[0] * g[1] * g[2]) * sizeof *grid);
    double *pts = malloc((size_t)(expect + 1) * 3 * sizeof *pts);
    if (!grid || !pts) {
        free(grid);
        free(pts);
        return ss_fail(SS_ERR_NOMEM, "synth: out of memory placing %lld objects", (long long)expect);
    }
    for (int64_t i = 0; i < g[0] * g[1] * g[2]; i++) grid[i] = -1;
    int64_t n = 0, attempts = 40 * expect + 100;
    for (int64_t a = 0; a < attempts && n < expect; a++) {
        double p[3];
        int64_t gi[3];
        for (int i = 0; i < 3; i++) {
            p[i] = lo[i] + len[i] * rng_uniform(rng);
            gi[i] = (int64_t)((p[i] - lo[i]) / cell);
            if (gi[i] >= g[i]) gi[i] = g[i] - 1;
        }
        int ok = 1;
        for (int64_t z = gi[0] - 2; z <= gi[0] + 2 && ok; z++)
            for (int64_t y = gi[1] - 2; y <= gi[1] + 2 && ok; y++)
                for (int64_t x = gi[2] - 2; x <= gi[2] + 2 && ok; x++) {
                    if (z < 0 || y < 0 || x < 0 || z >= g[0] || y >= g[1] || x >= g[2]) continue;
                    int64_t q = grid[(z * g[1] + y) * g[2] + x];
                    if (q < 0) continue;
                    double d2 = 0;
                    for (int i = 0; i < 3; i++) d2 += (p[i] - pts[3 * q + i]) * (p[i] - pts[3 * q + i]);
                    if (d2 < dmin * dmin) ok = 0;
                }
        if (!ok) continue;
        grid[(gi[0] * g[1] + gi[1]) * g[2] + gi[2]] = n;
        for (int i = 0; i < 3; i++) pts[3 * n + i] = p[i];
        n++;
    }
    free(grid);
    *out = pts;
    *n_out = n;
    return SS_OK;
}

/* A uniformly random rotation (Shoemake's unit quaternion), row major. */
static void random_rotation(ss_rng *r, double m[9])
{
    double u1 = rng_uniform(r), u2 = 2 * M_PI * rng_uniform(r), u3 = 2 * M_PI * rng_uniform(r);
    double a = sqrt(1 - u1) * sin(u2), b = sqrt(1 - u1) * cos(u2), cq = sqrt(u1) * sin(u3), d = sqrt(u1) * cos(u3);
    double w = d, x = a, y = b, z = cq;
    double v[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - z * w),     2 * (x * z + y * w),
                   2 * (x * y + z * w),     1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                   2 * (x * z - y * w),     2 * (y * z + x * w),     1 - 2 * (x * x + y * y)};
    memcpy(m, v, sizeof v);
}

/* Cells: seeds at least one cell diameter apart in the field and a margin
 * around it (so cells at the edges have all their neighbours). A nucleus
 * sits at each seed with semi-axes below half the seed spacing, so nuclei
 * never overlap and stay inside their cell. */
static int make_cells(stage_ctx *c, const field *f, ss_rng *rng, phantom *ph, int nuclei, int membranes,
                      int64_t *n_objects)
{
    double dc = ctx_num(c, "cell_diameter_um"), lo[3], len[3];
    for (int i = 0; i < 3; i++) lo[i] = f->lo[i] - dc, len[i] = f->len[i] + 2 * dc;
    double *seeds = NULL;
    int64_t n = 0;
    int rc = poisson_disk(rng, lo, len, dc, 1000000, &seeds, &n);
    if (rc != SS_OK) return rc;
    for (int64_t i = 0; i < n && nuclei && rc == SS_OK; i++) {
        double semi[3], rot[9];
        for (int k = 0; k < 3; k++) semi[k] = dc * uni(rng, 0.34, 0.46);
        random_rotation(rng, rot);
        double v = uni(rng, 0.6, 1.0);
        uint64_t ts = rng_next(rng);
        if (phantom_add_ellipsoid(ph, seeds + 3 * i, semi, rot, v, 0.25, dc / 8, dc / 3, ts, (int32_t)(i + 1)))
            rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory for the scene");
    }
    if (rc == SS_OK && membranes &&
        phantom_set_cells(ph, seeds, (int)n, ctx_num(c, "membrane_um"), nuclei ? 0.5 : 1.0, 0.2, dc, 3 * dc,
                          rng_next(rng), !nuclei))
        rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory for the scene");
    int64_t in = 0;
    for (int64_t i = 0; i < n; i++) in += inside(f, seeds + 3 * i);
    *n_objects = in;
    free(seeds);
    return rc;
}

static int make_beads(stage_ctx *c, const field *f, ss_rng *rng, phantom *ph, int64_t *n_objects)
{
    int64_t nb = ctx_int(c, "beads");
    double lo[3], len[3];
    /* Away from the edges where the field allows, so whole profiles fit. */
    for (int i = 0; i < 3; i++) {
        double inset = fmin(2.0, f->len[i] / 4);
        lo[i] = f->lo[i] + inset;
        len[i] = f->len[i] - 2 * inset;
    }
    double *pts = NULL;
    int64_t n = 0;
    int rc = poisson_disk(rng, lo, len, 3.0, nb, &pts, &n);
    for (int64_t i = 0; i < n && rc == SS_OK; i++)
        if (phantom_add_capsule(ph, pts + 3 * i, pts + 3 * i, 0.05, 1.0, (int32_t)(i + 1)))
            rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory for the scene");
    *n_objects = n;
    free(pts);
    return rc;
}

/* ---- imaging ------------------------------------------------------------- */

typedef struct {
    const phantom *ph;
    const kernels *k;
    phantom_plane g;      /* the padded plane */
    int64_t py, px;       /* where the field starts in it */
    double vz, db;        /* z step, bin thickness */
    int m, nzs, kb;       /* bins per z step, z samples per bin, bins on each side */
    double *wz;           /* Gaussian: axial weights, 2 kb + 1 */
    double sy, sx;        /* Gaussian: lateral sigmas in pixels */
    fftconv2 *fc;         /* computed PSF */
    int slots;
    float **ring;         /* rendered bins (Gaussian) or their spectra (computed) */
    int64_t *tag;
    float *scratch, *acc;
} imager;

static void imager_free(imager *im)
{
    for (int i = 0; im->ring && i < im->slots; i++) free(im->ring[i]);
    free(im->ring);
    free(im->tag);
    free(im->wz);
    free(im->scratch);
    free(im->acc);
    fftconv2_free(im->fc);
}

static void imager_reset(imager *im)
{
    for (int i = 0; i < im->slots; i++) im->tag[i] = INT64_MIN;
}

/* FFTW is fastest on sizes with small prime factors. */
static int64_t fft_size(int64_t n)
{
    for (;; n++) {
        int64_t m = n;
        for (int p = 2; p <= 7; p++)
            while (m % p == 0) m /= p;
        if (m == 1) return n;
    }
}

/* The padded plane i (z = i * vz), before intensity scaling. */
static int imager_plane(imager *im, int64_t i, float *out)
{
    size_t n = (size_t)(im->g.ny * im->g.nx);
    for (int q = -im->kb; q <= im->kb; q++) {
        int64_t b = i * im->m + q;
        int s = (int)(((b % im->slots) + im->slots) % im->slots);
        if (im->tag[s] == b) continue;
        double zc = (double)b * im->db;
        float *dst = im->fc ? im->scratch : im->ring[s];
        if (phantom_render_box(im->ph, &im->g, zc - 0.5 * im->db, zc + 0.5 * im->db, im->nzs, dst))
            return ss_fail(SS_ERR_NOMEM, "synth: out of memory rendering");
        if (im->fc) fftconv2_forward(im->fc, im->scratch, im->ring[s]);
        im->tag[s] = b;
    }
    if (im->fc) {
        size_t ns = fftconv2_spectrum_len(im->fc);
        memset(im->acc, 0, ns * sizeof *im->acc);
        for (int q = -im->kb; q <= im->kb; q++) {
            int64_t b = i * im->m + q;
            int s = (int)(((b % im->slots) + im->slots) % im->slots);
            /* out(z) = sum_b bin(b) psf(z - z_b): bin offset q pairs with
             * the PSF slice at -q. */
            fftconv2_accumulate(im->fc, im->acc, im->ring[s], im->kb - q);
        }
        fftconv2_inverse(im->fc, im->acc, out);
        return SS_OK;
    }
    for (size_t j = 0; j < n; j++) out[j] = 0;
    for (int q = -im->kb; q <= im->kb; q++) {
        int64_t b = i * im->m + q;
        int s = (int)(((b % im->slots) + im->slots) % im->slots);
        float w = (float)im->wz[q + im->kb];
        const float *src = im->ring[s];
        for (size_t j = 0; j < n; j++) out[j] += w * src[j];
    }
    im->k->gauss_blur3d_f32(out, 1, im->g.ny, im->g.nx, 0, im->sy, im->sx);
    return SS_OK;
}

/* Sets up bins, PSF and padding. fwhm: z, y, x in um (0: no blur). */
static int imager_init(imager *im, stage_ctx *c, const phantom *ph, const field *f, int psf, const double fwhm[3],
                       int64_t motion_margin)
{
    memset(im, 0, sizeof *im);
    im->ph = ph;
    im->k = ctx_kernels(c);
    int sub = (int)ctx_int(c, "supersample");
    double vz = f->vox[0], vy = f->vox[1], vx = f->vox[2];
    double lat = fmin(vy, vx) / sub;
    const double to_sigma = 1.0 / (2.0 * sqrt(2.0 * log(2.0)));
    double sz = fwhm[0] * to_sigma;
    /* Bins of at most half an axial sigma integrate the axial profile to
     * well under 1%; an odd count puts a bin centre on every plane. */
    int mmax = (int)floor(vz / lat + 1e-9), m = sz > 0 ? (int)ceil(vz / (0.5 * sz) - 1e-9) : 1;
    if (mmax < 1) mmax = 1;
    if (m > mmax) m = mmax;
    if (m < 1) m = 1;
    if (m % 2 == 0) m = m + 1 <= mmax ? m + 1 : m - 1;
    im->m = m;
    im->vz = vz;
    im->db = vz / m;
    im->nzs = (int)ceil(im->db / lat - 1e-9);
    if (im->nzs < 1) im->nzs = 1;
    int64_t ky, kx;
    if (psf == PSF_COMPUTED) {
        double na = ctx_num(c, "na"), wl = ctx_num(c, "wavelength_nm") / 1000.0, n = ctx_num(c, "refractive_index");
        double tana = tan(asin(na / n));
        /* Two axial FWHM each way: beyond, each plane holds under 3% of the
         * focal plane's energy (about a tenth of a uniform sheet's signal in
         * all, the faint out-of-focus tail, which the Gaussian model lacks
         * too). The defocused cone there is z tan(alpha) wide. */
        im->kb = (int)ceil(2.0 * fwhm[0] / im->db);
        double rxy = 2.0 * fwhm[0] * tana + fwhm[1];
        ky = (int64_t)ceil(rxy / vy);
        kx = (int64_t)ceil(rxy / vx);
        int64_t nz = 2 * im->kb + 1, ny = 2 * ky + 1, nx = 2 * kx + 1;
        float *tab = malloc((size_t)(nz * ny * nx) * sizeof *tab);
        if (!tab) return ss_fail(SS_ERR_NOMEM, "synth: out of memory for the PSF");
        if (psf2p_debye(na, wl, n, nz, ny, nx, im->db, vy, vx, tab)) {
            free(tab);
            return ss_fail(SS_ERR_NOMEM, "synth: cannot compute the PSF (out of memory)");
        }
        im->py = ky + motion_margin;
        im->px = kx + motion_margin;
        im->g.ny = fft_size(f->n[1] + 2 * im->py);
        im->g.nx = fft_size(f->n[2] + 2 * im->px);
        im->fc = fftconv2_new(im->g.ny, im->g.nx, (int)nz, tab, ny, nx);
        free(tab);
        if (!im->fc) return ss_fail(SS_ERR_NOMEM, "synth: out of memory for the PSF transforms");
    } else {
        /* Pixel and bin averaging are box filters: their variance comes off
         * the Gaussian's so the total blur is the one asked for. */
        double szz = sz * sz - im->db * im->db / 12.0;
        double syy = pow(fwhm[1] * to_sigma, 2) - vy * vy / 12.0, sxx = pow(fwhm[2] * to_sigma, 2) - vx * vx / 12.0;
        szz = szz > 0 ? sqrt(szz) : 0;
        im->sy = syy > 0 ? sqrt(syy) / vy : 0;
        im->sx = sxx > 0 ? sqrt(sxx) / vx : 0;
        im->kb = szz > 0 ? (int)(4.0 * szz / im->db + 0.5) : 0;
        im->wz = malloc((size_t)(2 * im->kb + 1) * sizeof *im->wz);
        if (!im->wz) return ss_fail(SS_ERR_NOMEM, "synth: out of memory");
        double tot = 0;
        for (int q = -im->kb; q <= im->kb; q++) {
            double d = q * im->db;
            im->wz[q + im->kb] = szz > 0 ? exp(-d * d / (2 * szz * szz)) : 1.0;
            tot += im->wz[q + im->kb];
        }
        for (int q = 0; q < 2 * im->kb + 1; q++) im->wz[q] /= tot;
        /* The blur kernel's radius, as gauss_blur3d_f32 truncates it. */
        ky = im->sy > 1e-15 ? (int64_t)(4.0 * im->sy + 0.5) : 0;
        kx = im->sx > 1e-15 ? (int64_t)(4.0 * im->sx + 0.5) : 0;
        im->py = ky + motion_margin;
        im->px = kx + motion_margin;
        im->g.ny = f->n[1] + 2 * im->py;
        im->g.nx = f->n[2] + 2 * im->px;
    }
    im->g.dy = vy;
    im->g.dx = vx;
    im->g.y0 = -(double)im->py * vy;
    im->g.x0 = -(double)im->px * vx;
    im->g.sub = sub;
    im->slots = 2 * im->kb + 1;
    size_t plane = (size_t)(im->g.ny * im->g.nx);
    size_t slot_len = im->fc ? fftconv2_spectrum_len(im->fc) : plane;
    im->ring = calloc((size_t)im->slots, sizeof *im->ring);
    im->tag = malloc((size_t)im->slots * sizeof *im->tag);
    if (!im->ring || !im->tag) return ss_fail(SS_ERR_NOMEM, "synth: out of memory");
    for (int i = 0; i < im->slots; i++)
        if (!(im->ring[i] = malloc(slot_len * sizeof(float))))
            return ss_fail(SS_ERR_NOMEM, "synth: out of memory for %d planes of %lld x %lld", im->slots,
                           (long long)im->g.ny, (long long)im->g.nx);
    if (im->fc) {
        im->scratch = malloc(plane * sizeof *im->scratch);
        im->acc = malloc(slot_len * sizeof *im->acc);
        if (!im->scratch || !im->acc) return ss_fail(SS_ERR_NOMEM, "synth: out of memory");
    }
    imager_reset(im);
    return SS_OK;
}

/* ---- motion -------------------------------------------------------------- */

/* Keys' cubic convolution (a = -0.5): the four weights for taps -1..2 at
 * fraction t. */
static void cubic_weights(double t, double w[4])
{
    const double a = -0.5;
    double d[4] = {1 + t, t, 1 - t, 2 - t};
    for (int i = 0; i < 4; i++) {
        double x = fabs(d[i]);
        w[i] = x <= 1 ? ((a + 2) * x - (a + 3)) * x * x + 1 : x < 2 ? ((a * x - 5 * a) * x + 8 * a) * x - 4 * a : 0;
    }
}

/* Rows [r0, r1) of the field as seen displaced by (sy, sx): the content at
 * (y, x) came from (y - sy, x - sx) of the padded plane. */
static void shifted_rows(const imager *im, const float *pad, int64_t X, int64_t r0, int64_t r1, double sy, double sx,
                         float *dst)
{
    double fy = floor(sy), fx = floor(sx), wy[4], wx[4];
    /* Source y = y - sy = (y - fy - 1) + (1 - (sy - fy)). */
    cubic_weights(sy - fy > 0 ? 1 - (sy - fy) : 0, wy);
    cubic_weights(sx - fx > 0 ? 1 - (sx - fx) : 0, wx);
    int64_t oy = sy - fy > 0 ? -(int64_t)fy - 1 : -(int64_t)fy;
    int64_t ox = sx - fx > 0 ? -(int64_t)fx - 1 : -(int64_t)fx;
    for (int64_t y = r0; y < r1; y++)
        for (int64_t x = 0; x < X; x++) {
            double s = 0;
            for (int a = 0; a < 4; a++) {
                const float *row = pad + (size_t)((im->py + y + oy + a - 1) * im->g.nx) + im->px + x + ox - 1;
                s += wy[a] * (wx[0] * row[0] + wx[1] * row[1] + wx[2] * row[2] + wx[3] * row[3]);
            }
            dst[y * X + x] = (float)s;
        }
}

typedef struct {
    int64_t first, count; /* rows of the artefact table for one (repeat, plane) */
} motion_index;

/* Which repeats move, and in each of their planes a subpixel jitter of the
 * whole frame and, in some planes, a band of rows displaced along x (the
 * fast axis of a resonant scanner). The table lists every run of rows that
 * is displaced, with its total shift. */
static int plan_motion(stage_ctx *c, const field *f, int R, uint64_t seed, table_builder *art, motion_index *idx,
                       int *moving)
{
    ss_rng rng;
    rng_split(&rng, seed, 1);
    for (int r = 0; r < R; r++) moving[r] = 0;
    if (!ctx_is_null(c, "motion_repeats")) {
        for (size_t i = 0; i < ctx_list_len(c, "motion_repeats"); i++) moving[(int)ctx_list_num(c, "motion_repeats", i)] = 1;
    } else {
        int nm = (int)floor(ctx_num(c, "motion_fraction") * R + 0.5);
        int *perm = malloc((size_t)R * sizeof *perm);
        if (!perm) return ss_fail(SS_ERR_NOMEM, "synth: out of memory");
        for (int r = 0; r < R; r++) perm[r] = r;
        for (int r = 0; r < nm; r++) {
            int j = r + (int)(rng_uniform(&rng) * (R - r));
            int t = perm[r];
            perm[r] = perm[j];
            perm[j] = t;
            moving[perm[r]] = 1;
        }
        free(perm);
    }
    int64_t Z = f->n[0], Y = f->n[1];
    double jit = ctx_num(c, "jitter_px"), pband = ctx_num(c, "motion_planes");
    int64_t smax = ctx_int(c, "motion_shift_px");
    int64_t hmin = Y / 16 > 1 ? Y / 16 : 1, hmax = Y / 4 > hmin ? Y / 4 : hmin;
    for (int r = 0; r < R; r++)
        for (int64_t z = 0; z < Z; z++) {
            motion_index *mi = &idx[r * Z + z];
            mi->first = tb_rows(art);
            mi->count = 0;
            if (!moving[r]) continue;
            double jy = jit > 0 ? uni(&rng, -jit, jit) : 0, jx = jit > 0 ? uni(&rng, -jit, jit) : 0;
            int64_t b0 = 0, b1 = 0, bs = 0;
            if (smax > 0 && rng_uniform(&rng) < pband) {
                int64_t h = hmin + (int64_t)(rng_uniform(&rng) * (double)(hmax - hmin + 1));
                if (h > Y) h = Y;
                b0 = (int64_t)(rng_uniform(&rng) * (double)(Y - h + 1));
                b1 = b0 + h;
                bs = 1 + (int64_t)(rng_uniform(&rng) * (double)smax);
                if (rng_uniform(&rng) < 0.5) bs = -bs;
            }
            int64_t cuts[4] = {0, b0, b1, Y};
            for (int s = 0; s < 3; s++) {
                int64_t r0 = cuts[s], r1 = cuts[s + 1];
                int band = s == 1;
                double sx = jx + (band ? (double)bs : 0);
                if (r1 <= r0 || (sx == 0 && jy == 0)) continue;
                if (artefact_add(art, r, z, r0, r1, sx, jy, band)) return ss_fail(SS_ERR_NOMEM, "synth: out of memory");
                mi->count++;
            }
        }
    return SS_OK;
}

/* ---- the stage ------------------------------------------------------------ */

static int write_tables(stage_ctx *c, const table_builder *s, const table_builder *a)
{
    int rc = tb_write(s, ctx_writer(c), "spines");
    if (rc == SS_OK) rc = tb_write(a, ctx_writer(c), "artifacts");
    return rc;
}

static int lookup(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return i;
    return 0;
}

static int run(stage_ctx *c)
{
    const sample_info *smp = ctx_sample(c);
    int ph_kind = lookup(phantom_names, ctx_str(c, "phantom"));
    int R = (int)ctx_int(c, "repeats");
    field f;
    for (int i = 0; i < 3; i++) f.n[i] = (int64_t)ctx_list_num(c, "shape", (size_t)i);
    int iso = ph_kind == PH_NUCLEI || ph_kind == PH_MEMBRANES || ph_kind == PH_NUCLEI_MEMBRANES;
    int have_param = !ctx_is_null(c, "voxel_size"), have_sample = smp->voxel[0] > 0;
    for (int i = 0; i < 3; i++) {
        double pv = have_param ? ctx_list_num(c, "voxel_size", (size_t)i) : 0;
        f.vox[i] = have_param ? pv : have_sample ? smp->voxel[i] : iso ? 0.5 : i == 0 ? 1.0 : 0.1;
        f.lo[i] = -0.5 * f.vox[i];
        f.len[i] = (double)f.n[i] * f.vox[i];
    }
    int64_t Z = f.n[0], Y = f.n[1], X = f.n[2];
    size_t plane = (size_t)(Y * X);

    /* PSF widths: explicit, else Zipfel's for the objective; IsoNet
     * phantoms default to an isotropic PSF (their anisotropy is simulated
     * downstream). */
    const char *psf_s = ctx_str(c, "psf");
    int psf = !strcmp(psf_s, "computed") ? PSF_COMPUTED : !strcmp(psf_s, "none") ? PSF_NONE : PSF_GAUSS;
    double fw_xy, fw_z, fwhm[3] = {0, 0, 0};
    psf2p_fwhm(ctx_num(c, "na"), ctx_num(c, "wavelength_nm") / 1000.0, ctx_num(c, "refractive_index"), &fw_xy, &fw_z);
    if (!strcmp(psf_s, "auto") && iso) fw_z = fw_xy;
    if (!ctx_is_null(c, "fwhm_xy_um")) fw_xy = ctx_num(c, "fwhm_xy_um");
    if (!ctx_is_null(c, "fwhm_z_um")) fw_z = ctx_num(c, "fwhm_z_um");
    if (psf != PSF_NONE) fwhm[0] = fw_z, fwhm[1] = fwhm[2] = fw_xy;

    uint64_t seed = ctx_seed(c);
    ss_rng rng;
    rng_split(&rng, seed, 0);
    phantom *ph = phantom_new();
    table_builder *spines = spine_table_new(), *art = artefact_table_new();
    imager im = {0};
    motion_index *midx = calloc((size_t)(R * Z) + 1, sizeof *midx);
    int *moving = calloc((size_t)R, sizeof *moving);
    float *pad = NULL, *truth = NULL, *frame = NULL;
    uint16_t *counts = NULL;
    int32_t *labels = NULL;
    store_array *a_truth = NULL, *a_rep = NULL, *a_lab = NULL;
    int rc = SS_OK;
    if (!ph || !midx || !moving || !spines || !art) {
        rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory");
        goto done;
    }
    int64_t n_objects = 0;
    switch (ph_kind) {
    case PH_DENDRITES: rc = make_dendrites(c, &f, &rng, ph, spines); break;
    case PH_NUCLEI: rc = make_cells(c, &f, &rng, ph, 1, 0, &n_objects); break;
    case PH_MEMBRANES: rc = make_cells(c, &f, &rng, ph, 0, 1, &n_objects); break;
    case PH_NUCLEI_MEMBRANES: rc = make_cells(c, &f, &rng, ph, 1, 1, &n_objects); break;
    default: rc = make_beads(c, &f, &rng, ph, &n_objects); break;
    }
    if (rc != SS_OK) goto done;
    if ((rc = plan_motion(c, &f, R, seed, art, midx, moving)) != SS_OK) goto done;
    int any_motion = 0;
    for (int r = 0; r < R; r++) any_motion |= moving[r];
    int64_t margin = any_motion ? ctx_int(c, "motion_shift_px") + (int64_t)ceil(ctx_num(c, "jitter_px")) + 3 : 0;
    if ((rc = imager_init(&im, c, ph, &f, psf, fwhm, margin)) != SS_OK) goto done;

    size_t pplane = (size_t)(im.g.ny * im.g.nx);
    pad = malloc(pplane * sizeof *pad);
    truth = malloc(plane * sizeof *truth);
    frame = malloc(plane * sizeof *frame);
    counts = malloc(plane * sizeof *counts);
    labels = malloc(plane * sizeof *labels);
    if (!pad || !truth || !frame || !counts || !labels) {
        rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory for planes of %lld x %lld", (long long)im.g.ny,
                     (long long)im.g.nx);
        goto done;
    }

    /* Pass 1: the brightest voxel of the blurred scene. */
    ctx_progress_begin(c, "planes", 2 * Z);
    double smax = 0;
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        if (ctx_cancelled(c)) {
            rc = ss_fail(SS_ERR_INTERRUPTED, "synth: interrupted");
            break;
        }
        if ((rc = imager_plane(&im, z, pad)) != SS_OK) break;
        for (int64_t y = 0; y < Y; y++)
            for (int64_t x = 0; x < X; x++) smax = fmax(smax, pad[(im.py + y) * im.g.nx + im.px + x]);
        ctx_progress(c, z + 1);
    }
    if (rc != SS_OK) goto done;
    if (!(smax > 0)) ctx_warn(c, "no structure falls inside the %lld x %lld x %lld field; the truth is background only",
                              (long long)Z, (long long)Y, (long long)X);
    double photons = ctx_num(c, "photons"), bg = ctx_num(c, "background"), gain = ctx_num(c, "gain");
    double rn = ctx_num(c, "read_noise"), scale = smax > 0 ? photons / smax : 0;

    array_meta m = {.axes = "zyx", .unit = "micrometer"};
    memcpy(m.voxel, f.vox, sizeof m.voxel);
    array_meta rm = m;
    strcpy(rm.axes, "rzyx");
    int64_t shape[3] = {Z, Y, X}, rshape[4] = {R, Z, Y, X};
    if ((rc = write_tables(c, spines, art)) != SS_OK) goto done;
    if ((rc = store_writer_array(ctx_writer(c), "truth", DT_F32, 3, shape, NULL, &m, &a_truth)) != SS_OK) goto done;
    if ((rc = store_writer_array(ctx_writer(c), "labels", DT_I32, 3, shape, NULL, &m, &a_lab)) != SS_OK) goto done;
    if ((rc = store_writer_array(ctx_writer(c), "repeats", DT_U16, 4, rshape, NULL, &rm, &a_rep)) != SS_OK) goto done;

    /* Pass 2: the same planes again, scaled, with noise and motion. */
    imager_reset(&im);
    phantom_plane lg = {.ny = Y, .nx = X, .y0 = 0, .x0 = 0, .dy = f.vox[1], .dx = f.vox[2], .sub = 1};
    int64_t clipped = 0;
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        if (ctx_cancelled(c)) {
            rc = ss_fail(SS_ERR_INTERRUPTED, "synth: interrupted");
            break;
        }
        if ((rc = imager_plane(&im, z, pad)) != SS_OK) break;
        /* Photons per voxel, in place over the padded plane: motion samples
         * it, so it has to be in the same units as the truth. */
        for (size_t j = 0; j < pplane; j++) pad[j] = (float)(bg + scale * fmax(pad[j], 0.0f));
        for (int64_t y = 0; y < Y; y++)
            for (int64_t x = 0; x < X; x++)
                truth[y * X + x] = (float)(gain * pad[(im.py + y) * im.g.nx + im.px + x]);
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        if ((rc = store_array_write(a_truth, st, ct, DT_F32, truth)) != SS_OK) break;
        if (phantom_labels(ph, &lg, (double)z * f.vox[0], labels)) {
            rc = ss_fail(SS_ERR_NOMEM, "synth: out of memory labelling");
            break;
        }
        if ((rc = store_array_write(a_lab, st, ct, DT_I32, labels)) != SS_OK) break;
        for (int r = 0; r < R && rc == SS_OK; r++) {
            const motion_index *mi = &midx[r * Z + z];
            for (size_t j = 0; j < plane; j++) frame[j] = truth[j] / (float)gain;
            for (int64_t q = mi->first; q < mi->first + mi->count; q++)
                shifted_rows(&im, pad, X, tb_get_i64(art, AR_ROW_START, q), tb_get_i64(art, AR_ROW_END, q),
                             tb_get_f64(art, AR_SHIFT_Y, q), tb_get_f64(art, AR_SHIFT_X, q), frame);
            /* One stream per (repeat, plane): the noise does not depend on
             * the order planes are made in. */
            clipped += noise_poisson_gauss_u16(frame, Y, X, gain, rn, seed, 2 + (uint64_t)r * (uint64_t)Z + (uint64_t)z,
                                               counts);
            int64_t rs[4] = {r, z, 0, 0}, rcnt[4] = {1, 1, Y, X};
            rc = store_array_write(a_rep, rs, rcnt, DT_U16, counts);
        }
        ctx_progress(c, Z + z + 1);
    }
    if (rc != SS_OK) goto done;
    /* A few negative counts are expected wherever background and read
     * noise are low; say so only when the clipping biases the data. */
    if ((double)clipped > 1e-3 * (double)R * (double)(Z * Y * X))
        ctx_warn(c, "%lld of %lld counts fell outside 0..65535 and were clipped (raise background or lower gain)",
                 (long long)clipped, (long long)((int64_t)R * Z * Y * X));
    json_t *mr = json_array();
    for (int r = 0; r < R; r++)
        if (moving[r]) json_array_append_new(mr, json_integer(r));
    ctx_attr(c, "motion_repeats", mr);
    ctx_attr(c, "psf_fwhm_um", json_pack("[f,f,f]", fwhm[0], fwhm[1], fwhm[2]));
    ctx_attr(c, "voxel_size", json_pack("[f,f,f]", f.vox[0], f.vox[1], f.vox[2]));
    ctx_attr(c, "signal_max", json_real(smax));
    ctx_attr(c, "objects", json_integer((json_int_t)(ph_kind == PH_DENDRITES ? ctx_int(c, "dendrites") : n_objects)));
    ctx_attr(c, "spines_in_field", json_integer((json_int_t)tb_rows(spines)));
done:
    store_array_close(a_truth);
    store_array_close(a_lab);
    store_array_close(a_rep);
    imager_free(&im);
    phantom_free(ph);
    tb_free(spines);
    tb_free(art);
    free(midx);
    free(moving);
    free(pad);
    free(truth);
    free(frame);
    free(counts);
    free(labels);
    return rc;
}

/* ---- declaration --------------------------------------------------------- */

static const param_spec params[] = {
    {.name = "phantom", .type = P_ENUM, .def = "\"dendrites\"", .choices = "dendrites|nuclei|membranes|nuclei_membranes|beads",
     .doc = "what to draw: dendrites with spines, IsoNet nuclei / membranes / both, or PSF beads"},
    {.name = "shape", .type = P_INT_LIST, .def = "[16, 256, 256]", .flags = PARAM_RANGE, .lo = 1, .hi = 65536,
     .list_min = 3, .list_max = 3, .doc = "volume size [z, y, x] in voxels"},
    PARAM_VOXEL_SIZE("[z, y, x] um; null: the sample's, else [1, 0.1, 0.1] (dendrites, beads) or 0.5 isotropic (cells)"),
    {.name = "repeats", .type = P_INT, .def = "4", .flags = PARAM_RANGE, .lo = 1, .hi = 64,
     .doc = "number of noisy repeats R"},
    {.name = "dendrites", .type = P_INT, .def = "3", .flags = PARAM_RANGE, .lo = 1, .hi = 1000,
     .doc = "dendrites: number of dendrites crossing the field"},
    {.name = "dendrite_radius_um", .type = P_NUM_LIST, .def = "[0.3, 0.6]", .flags = PARAM_RANGE | PARAM_LO_OPEN,
     .lo = 0, .hi = 100, .list_min = 2, .list_max = 2, .doc = "dendrites: shaft radius range [lo, hi], um"},
    {.name = "spine_density", .type = P_NUM_LIST, .def = "[1, 3]", .flags = PARAM_RANGE, .lo = 0, .hi = 100,
     .list_min = 2, .list_max = 2, .doc = "dendrites: spines per um of dendrite, range [lo, hi] (one draw per dendrite)"},
    {.name = "neck_length_um", .type = P_NUM_LIST, .def = "[0.5, 2]", .flags = PARAM_RANGE, .lo = 0, .hi = 100,
     .list_min = 2, .list_max = 2, .doc = "dendrites: spine neck length range, shaft surface to head surface, um"},
    {.name = "neck_radius_um", .type = P_NUM, .def = "0.1", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 100,
     .doc = "dendrites: spine neck radius (each neck varies by +-20%), um"},
    {.name = "head_radius_um", .type = P_NUM_LIST, .def = "[0.3, 0.8]", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0,
     .hi = 100, .list_min = 2, .list_max = 2, .doc = "dendrites: spine head radius range, um"},
    {.name = "cell_diameter_um", .type = P_NUM, .def = "8", .flags = PARAM_RANGE, .lo = 0.5, .hi = 1000,
     .doc = "nuclei/membranes: minimum distance between cell centres, um (nuclei span 68-92% of it)"},
    {.name = "membrane_um", .type = P_NUM, .def = "0.4", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 100,
     .doc = "membranes: sheet thickness, um"},
    {.name = "beads", .type = P_INT, .def = "10", .flags = PARAM_RANGE, .lo = 1, .hi = 100000,
     .doc = "beads: number of 100 nm beads (at least 3 um apart; fewer if they do not fit)"},
    {.name = "psf", .type = P_ENUM, .def = "\"auto\"", .choices = "auto|gaussian|computed|none",
     .doc = "auto: gaussian, isotropic for the cell phantoms; computed: scalar Debye 2P PSF by FFT"},
    {.name = "na", .type = P_NUM, .def = "1.0", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1.7,
     .doc = "numerical aperture of the objective"},
    {.name = "wavelength_nm", .type = P_NUM, .def = "920", .flags = PARAM_RANGE, .lo = 200, .hi = 3000,
     .doc = "two-photon excitation wavelength, nm"},
    {.name = "refractive_index", .type = P_NUM, .def = "1.33", .flags = PARAM_RANGE, .lo = 1, .hi = 2,
     .doc = "refractive index of the immersion medium (must exceed na)"},
    {.name = "fwhm_xy_um", .type = P_NUM, .def = "null", .flags = PARAM_RANGE | PARAM_NULLABLE | PARAM_LO_OPEN,
     .lo = 0, .hi = 1000, .doc = "gaussian PSF: lateral FWHM, um (null: Zipfel et al. 2003 from na, wavelength)"},
    {.name = "fwhm_z_um", .type = P_NUM, .def = "null", .flags = PARAM_RANGE | PARAM_NULLABLE | PARAM_LO_OPEN,
     .lo = 0, .hi = 1000, .doc = "gaussian PSF: axial FWHM, um (null: Zipfel et al. 2003)"},
    {.name = "supersample", .type = P_INT, .def = "2", .flags = PARAM_RANGE, .lo = 1, .hi = 8,
     .doc = "scene samples per pixel along y and x (and as finely along z)"},
    PARAM_PHOTONS("50", "expected photons above background at the brightest voxel"),
    PARAM_BACKGROUND("10"),
    {.name = "gain", .type = P_NUM, .def = "1", .flags = PARAM_RANGE | PARAM_LO_OPEN, .lo = 0, .hi = 1000,
     .doc = "counts per photon"},
    PARAM_READ_NOISE("1"),
    {.name = "motion_repeats", .type = P_INT_LIST, .def = "null", .flags = PARAM_RANGE | PARAM_NULLABLE, .lo = 0,
     .hi = 63, .doc = "repeats (0-based) with motion artefacts; null: motion_fraction of them at random"},
    {.name = "motion_fraction", .type = P_NUM, .def = "0.25", .flags = PARAM_RANGE, .lo = 0, .hi = 1,
     .doc = "fraction of the repeats with motion when motion_repeats is null (rounded)"},
    {.name = "motion_planes", .type = P_NUM, .def = "0.5", .flags = PARAM_RANGE, .lo = 0, .hi = 1,
     .doc = "probability that a plane of a moving repeat has a displaced band of rows"},
    {.name = "motion_shift_px", .type = P_INT, .def = "3", .flags = PARAM_RANGE, .lo = 0, .hi = 256,
     .doc = "largest displacement of a band along x, pixels (each band: 1 to this, either sign)"},
    {.name = "jitter_px", .type = P_NUM, .def = "0.3", .flags = PARAM_RANGE, .lo = 0, .hi = 64,
     .doc = "rigid subpixel jitter of each plane of a moving repeat, uniform in +-this, pixels"},
    {0},
};
static const port_spec no_inputs[] = {{0}};
static const port_spec outputs[] = {
    {.name = "repeats", .kinds = KIND_REPEATS, .doc = "R noisy repeats, uint16 R x Z x Y x X (counts)"},
    {.name = "truth", .kinds = KIND_IMAGE, .doc = "the noiseless blurred volume, float32, expected counts"},
    {.name = "labels", .kinds = KIND_IMAGE, .doc = "instance labels, int32 (dendrite, nucleus, cell or bead ids)"},
    {.name = "spines", .kinds = KIND_TABLE,
     .doc = "spine heads in the field: id, dendrite, z, y, x (voxels), radius_um; empty for other phantoms"},
    {.name = "artifacts", .kinds = KIND_TABLE,
     .doc = "displaced rows: repeat, z, row_start, row_end (exclusive), shift_x, shift_y (px), band"},
    {0},
};

static const char *check(const json_t *p)
{
    static __thread char msg[256];
    json_t *s = json_object_get(p, "shape");
    double n = 1;
    for (size_t i = 0; i < json_array_size(s); i++) n *= json_number_value(json_array_get(s, i));
    if (n > (double)(1 << 30)) return "shape: at most 2^30 voxels";
    static const char *const ranges[] = {"dendrite_radius_um", "spine_density", "neck_length_um", "head_radius_um", NULL};
    for (int i = 0; ranges[i]; i++) {
        json_t *r = json_object_get(p, ranges[i]);
        if (json_number_value(json_array_get(r, 0)) > json_number_value(json_array_get(r, 1))) {
            snprintf(msg, sizeof msg, "%s: expected [lo, hi] with lo <= hi", ranges[i]);
            return msg;
        }
    }
    if (json_number_value(json_object_get(p, "na")) >= json_number_value(json_object_get(p, "refractive_index")))
        return "na must be below refractive_index";
    const char *psf = json_string_value(json_object_get(p, "psf"));
    int fw = !json_is_null(json_object_get(p, "fwhm_xy_um")) || !json_is_null(json_object_get(p, "fwhm_z_um"));
    if (fw && psf && (!strcmp(psf, "computed") || !strcmp(psf, "none")))
        return "fwhm_xy_um and fwhm_z_um set a Gaussian PSF; they do not apply with psf: computed or none";
    json_t *mr = json_object_get(p, "motion_repeats");
    json_int_t R = json_integer_value(json_object_get(p, "repeats"));
    for (size_t i = 0; i < json_array_size(mr); i++) {
        json_int_t r = json_integer_value(json_array_get(mr, i));
        if (r >= R) {
            snprintf(msg, sizeof msg, "motion_repeats: repeat %lld does not exist (repeats: %lld)", (long long)r,
                     (long long)R);
            return msg;
        }
        for (size_t j = 0; j < i; j++)
            if (json_integer_value(json_array_get(mr, j)) == r) {
                snprintf(msg, sizeof msg, "motion_repeats: repeat %lld is listed twice", (long long)r);
                return msg;
            }
    }
    return NULL;
}

/* stage_type.repeats_of: the repeats the stage draws. */
static int64_t repeats_of(const json_t *p, const char *output)
{
    return strcmp(output, "repeats") ? 0 : json_integer_value(json_object_get(p, "repeats"));
}

/* The sample's repeats and voxel size, where it gives them, are the stage's. */
static const char *check_sample(const json_t *p, const sample_info *smp)
{
    const char *why = sample_repeats_mismatch(p, smp);
    if (why) return why;
    const json_t *vs = json_object_get(p, "voxel_size");
    if (!json_is_array(vs) || smp->voxel[0] <= 0) return NULL;
    static _Thread_local char msg[256];
    double v[3];
    for (int i = 0; i < 3; i++) v[i] = json_number_value(json_array_get(vs, (size_t)i));
    for (int i = 0; i < 3; i++)
        if (fabs(v[i] - smp->voxel[i]) > 1e-9 * v[i]) {
            snprintf(msg, sizeof msg, "voxel_size [%g, %g, %g] differs from the sample's voxel_size [%g, %g, %g]", v[0],
                     v[1], v[2], smp->voxel[0], smp->voxel[1], smp->voxel[2]);
            return msg;
        }
    return NULL;
}

const stage_type stage_synth = {
    .name = "synth",
    .version = 1,
    .summary = "phantoms with ground truth (dendrites with spines, nuclei, membranes, beads) through a 2P PSF, "
               "with Poisson-Gaussian noise and motion artefacts, by seed",
    .params = params,
    .inputs = no_inputs,
    .outputs = outputs,
    .flags = STAGE_STOCHASTIC | STAGE_SOURCE,
    .run = run,
    .check = check,
    .check_sample = check_sample,
    .repeats_of = repeats_of,
};
