/* Rendering geometric phantoms: the mean dye density of a scene over a box
 * [z0, z1) x pixel, for every pixel of a plane.
 *
 * Solids (capsules, spheres, ellipsoids) combine by maximum, as a union of
 * compartments filled with dye; Voronoi cell membranes are added on top, as a
 * second stain. Each pixel box is sampled on a regular sub-grid, and each
 * sample takes the partial volume of the shapes' edges from their signed
 * distance over a ramp one sample spacing wide, so structures thinner than a
 * pixel (spine necks) keep their mass instead of flickering in and out
 * between samples.
 *
 * Work is split into tiles of pixels; each tile collects the shapes that can
 * reach it (bounding boxes, and for the cells a distance bound) and
 * evaluates only those. Every pixel is computed the same way whatever the
 * thread count, so results are reproducible. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

#define TILE 16
#define TEX_WAVES 6

typedef struct {
    double a[3], ba[3], inv_len2, r, value;
    double lo[3], hi[3];
    int32_t label;
} capsule;

typedef struct {
    double c[3], rt[9], inv_a[3], inv_a2[3], amin, value, texture;
    double wave[TEX_WAVES][4]; /* wave vector (z, y, x) and phase */
    double lo[3], hi[3];
    int32_t label;
} ellipsoid;

struct phantom {
    capsule *cap;
    int ncap, capcap;
    ellipsoid *ell;
    int nell, capell;
    double *seed; /* nseed x 3 */
    int nseed, label_cells;
    double half_thick, mvalue, mtexture;
    double mwave[TEX_WAVES][4];
};

phantom *phantom_new(void) { return calloc(1, sizeof(phantom)); }

void phantom_free(phantom *p)
{
    if (!p) return;
    free(p->cap);
    free(p->ell);
    free(p->seed);
    free(p);
}

static int grow(void **arr, int *cap, int n, size_t elem)
{
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 64;
    void *q = realloc(*arr, (size_t)nc * elem);
    if (!q) return -1;
    *arr = q;
    *cap = nc;
    return 0;
}

int phantom_add_capsule(phantom *p, const double a[3], const double b[3], double radius, double value, int32_t label)
{
    if (grow((void **)&p->cap, &p->capcap, p->ncap, sizeof *p->cap)) return -1;
    capsule *c = &p->cap[p->ncap++];
    double l2 = 0;
    for (int i = 0; i < 3; i++) {
        c->a[i] = a[i];
        c->ba[i] = b[i] - a[i];
        l2 += c->ba[i] * c->ba[i];
        c->lo[i] = fmin(a[i], b[i]) - radius;
        c->hi[i] = fmax(a[i], b[i]) + radius;
    }
    c->inv_len2 = l2 > 0 ? 1.0 / l2 : 0;
    c->r = radius;
    c->value = value;
    c->label = label;
    return 0;
}

/* Smooth random texture: plane waves of random direction, wavelength and
 * phase, averaged, so T is in [-1, 1]. */
static void make_waves(double w[TEX_WAVES][4], double wl_lo, double wl_hi, uint64_t seed)
{
    ss_rng r;
    rng_seed(&r, seed);
    for (int j = 0; j < TEX_WAVES; j++) {
        double v[3], n2;
        do {
            for (int i = 0; i < 3; i++) v[i] = 2.0 * rng_uniform(&r) - 1.0;
            n2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        } while (n2 > 1.0 || n2 < 1e-6);
        double wl = wl_lo + (wl_hi - wl_lo) * rng_uniform(&r);
        double k = 2.0 * M_PI / wl / sqrt(n2);
        for (int i = 0; i < 3; i++) w[j][i] = v[i] * k;
        w[j][3] = 2.0 * M_PI * rng_uniform(&r);
    }
}

static double texture(const double w[TEX_WAVES][4], const double d[3])
{
    double s = 0;
    for (int j = 0; j < TEX_WAVES; j++) s += cos(w[j][0] * d[0] + w[j][1] * d[1] + w[j][2] * d[2] + w[j][3]);
    return s / TEX_WAVES;
}

int phantom_add_ellipsoid(phantom *p, const double c[3], const double semi[3], const double rot[9], double value,
                          double tex, double tex_lo, double tex_hi, uint64_t seed, int32_t label)
{
    if (grow((void **)&p->ell, &p->capell, p->nell, sizeof *p->ell)) return -1;
    ellipsoid *e = &p->ell[p->nell++];
    double amax = fmax(semi[0], fmax(semi[1], semi[2]));
    e->amin = fmin(semi[0], fmin(semi[1], semi[2]));
    for (int i = 0; i < 3; i++) {
        e->c[i] = c[i];
        e->inv_a[i] = 1.0 / semi[i];
        e->inv_a2[i] = 1.0 / (semi[i] * semi[i]);
        e->lo[i] = c[i] - amax;
        e->hi[i] = c[i] + amax;
        /* Local coordinates q = R^T (p - c): the transpose of rot. */
        for (int j = 0; j < 3; j++) e->rt[i * 3 + j] = rot[j * 3 + i];
    }
    e->value = value;
    e->texture = tex;
    e->label = label;
    make_waves(e->wave, tex_lo, tex_hi, seed);
    return 0;
}

int phantom_set_cells(phantom *p, const double *seeds, int n, double thickness, double value, double tex,
                      double tex_lo, double tex_hi, uint64_t seed, int label_cells)
{
    double *s = malloc((size_t)(n > 0 ? n : 1) * 3 * sizeof *s);
    if (!s) return -1;
    for (int i = 0; i < 3 * n; i++) s[i] = seeds[i];
    free(p->seed);
    p->seed = s;
    p->nseed = n;
    p->half_thick = thickness / 2;
    p->mvalue = value;
    p->mtexture = tex;
    p->label_cells = label_cells;
    make_waves(p->mwave, tex_lo, tex_hi, seed);
    return 0;
}

/* ---- signed distances ---------------------------------------------------- */

static double sd_capsule(const capsule *c, const double p[3])
{
    double pa[3] = {p[0] - c->a[0], p[1] - c->a[1], p[2] - c->a[2]};
    double t = (pa[0] * c->ba[0] + pa[1] * c->ba[1] + pa[2] * c->ba[2]) * c->inv_len2;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double d0 = pa[0] - t * c->ba[0], d1 = pa[1] - t * c->ba[1], d2 = pa[2] - t * c->ba[2];
    return sqrt(d0 * d0 + d1 * d1 + d2 * d2) - c->r;
}

/* The first-order distance to an ellipsoid's surface (exact on it, and a
 * good estimate within a sample spacing of it, which is all the ramp
 * needs). */
static double sd_ellipsoid(const ellipsoid *e, const double p[3], double d[3])
{
    for (int i = 0; i < 3; i++) d[i] = p[i] - e->c[i];
    double k0 = 0, k1 = 0;
    for (int i = 0; i < 3; i++) {
        double q = e->rt[i * 3] * d[0] + e->rt[i * 3 + 1] * d[1] + e->rt[i * 3 + 2] * d[2];
        k0 += q * q * e->inv_a2[i];
        k1 += q * q * e->inv_a2[i] * e->inv_a2[i];
    }
    k0 = sqrt(k0);
    k1 = sqrt(k1);
    if (k1 < 1e-300) return -e->amin;
    return k0 * (k0 - 1.0) / k1;
}

static double ramp(double sd, double w)
{
    if (w <= 0) return sd <= 0 ? 1.0 : 0.0;
    double v = 0.5 - sd / w;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* ---- tiles ---------------------------------------------------------------- */

typedef struct {
    int *cap, *ell, *seed;
    int ncap, nell, nseed;
} cands;

typedef struct {
    double lo[3], hi[3];
} box3;

static int overlaps(const double lo[3], const double hi[3], const box3 *b, double w)
{
    for (int i = 0; i < 3; i++)
        if (hi[i] + w < b->lo[i] || lo[i] - w > b->hi[i]) return 0;
    return 1;
}

static double dist2(const double *a, const double *b)
{
    double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return d0 * d0 + d1 * d1 + d2 * d2;
}

/* margin: how far outside the box a shape may be and still matter. */
static void collect(const phantom *p, const int *zcap, int nzcap, const int *zell, int nzell, const box3 *b,
                    double margin, cands *c)
{
    c->ncap = c->nell = c->nseed = 0;
    for (int i = 0; i < nzcap; i++)
        if (overlaps(p->cap[zcap[i]].lo, p->cap[zcap[i]].hi, b, margin)) c->cap[c->ncap++] = zcap[i];
    for (int i = 0; i < nzell; i++)
        if (overlaps(p->ell[zell[i]].lo, p->ell[zell[i]].hi, b, margin)) c->ell[c->nell++] = zell[i];
    if (p->nseed == 0) return;
    /* The seed nearest to any point of the box is within D + 2h of the
     * centre (D: nearest distance from the centre, h: half diagonal), and a
     * bisector closer than T to such a point belongs to a seed within
     * D + 2h + 2T. */
    double ctr[3], h2 = 0;
    for (int i = 0; i < 3; i++) {
        ctr[i] = 0.5 * (b->lo[i] + b->hi[i]);
        double e = 0.5 * (b->hi[i] - b->lo[i]);
        h2 += e * e;
    }
    double dmin = DBL_MAX;
    for (int s = 0; s < p->nseed; s++) dmin = fmin(dmin, dist2(ctr, p->seed + 3 * s));
    double lim = sqrt(dmin) + 2.0 * sqrt(h2) + 2.0 * margin;
    lim *= lim;
    for (int s = 0; s < p->nseed; s++)
        if (dist2(ctr, p->seed + 3 * s) <= lim) c->seed[c->nseed++] = s;
}

static double eval_point(const phantom *p, const cands *c, const double q[3], double w)
{
    double v = 0, d[3];
    const double hw = 0.5 * w;
    for (int i = 0; i < c->ncap; i++) {
        const capsule *k = &p->cap[c->cap[i]];
        if (k->value <= v) continue;
        /* Most candidates of a tile are short segments far from this
         * point: the bounding box says so for less than the distance. */
        if (q[0] < k->lo[0] - hw || q[0] > k->hi[0] + hw || q[1] < k->lo[1] - hw || q[1] > k->hi[1] + hw ||
            q[2] < k->lo[2] - hw || q[2] > k->hi[2] + hw)
            continue;
        double s = sd_capsule(k, q);
        if (s < 0.5 * w) v = fmax(v, k->value * ramp(s, w));
    }
    for (int i = 0; i < c->nell; i++) {
        const ellipsoid *e = &p->ell[c->ell[i]];
        double s = sd_ellipsoid(e, q, d);
        if (s < 0.5 * w) {
            double f = e->value * ramp(s, w);
            if (e->texture != 0) f *= 1.0 + e->texture * texture(e->wave, d);
            v = fmax(v, f);
        }
    }
    if (c->nseed > 1) {
        int a = -1;
        double da = DBL_MAX, db = DBL_MAX;
        for (int i = 0; i < c->nseed; i++) {
            double dd = dist2(q, p->seed + 3 * c->seed[i]);
            if (dd < da) db = da, da = dd, a = c->seed[i];
            else if (dd < db) db = dd;
        }
        /* The bisector with b is at least (|p - b| - |p - a|) / 2 away:
         * inside a cell, far from every wall, nothing more to do. */
        if (sqrt(db) - sqrt(da) > 2.0 * (p->half_thick + w)) return v;
        const double *sa = p->seed + 3 * a;
        double bd = DBL_MAX;
        for (int i = 0; i < c->nseed; i++) {
            int b = c->seed[i];
            if (b == a) continue;
            double ab = sqrt(dist2(sa, p->seed + 3 * b));
            if (ab <= 0) continue;
            bd = fmin(bd, (dist2(q, p->seed + 3 * b) - da) / (2.0 * ab));
        }
        double cov = ramp(bd - p->half_thick, w);
        if (cov > 0) {
            double f = p->mvalue * cov;
            if (p->mtexture != 0) f *= 1.0 + p->mtexture * texture(p->mwave, q);
            v += f;
        }
    }
    return v;
}

static int32_t label_point(const phantom *p, const cands *c, const double q[3])
{
    double best = 0, d[3];
    int32_t lab = 0;
    for (int i = 0; i < c->ncap; i++) {
        double s = sd_capsule(&p->cap[c->cap[i]], q);
        if (s <= best) best = s, lab = p->cap[c->cap[i]].label;
    }
    for (int i = 0; i < c->nell; i++) {
        double s = sd_ellipsoid(&p->ell[c->ell[i]], q, d);
        if (s <= best) best = s, lab = p->ell[c->ell[i]].label;
    }
    if (lab || !p->label_cells || c->nseed == 0) return lab;
    int a = 0;
    double da = DBL_MAX;
    for (int i = 0; i < c->nseed; i++) {
        double dd = dist2(q, p->seed + 3 * c->seed[i]);
        if (dd < da) da = dd, a = c->seed[i];
    }
    return (int32_t)a + 1;
}

/* Shared by rendering and labelling: tiles of one plane, z range [z0, z1]. */
static int for_tiles(const phantom *p, const phantom_plane *g, double z0, double z1, int nzs, double w, float *out,
                     int32_t *labels)
{
    int *zcap = malloc((size_t)(p->ncap + 1) * sizeof *zcap), *zell = malloc((size_t)(p->nell + 1) * sizeof *zell);
    if (!zcap || !zell) {
        free(zcap);
        free(zell);
        return -1;
    }
    int nzcap = 0, nzell = 0;
    for (int i = 0; i < p->ncap; i++)
        if (p->cap[i].hi[0] + w >= z0 && p->cap[i].lo[0] - w <= z1) zcap[nzcap++] = i;
    for (int i = 0; i < p->nell; i++)
        if (p->ell[i].hi[0] + w >= z0 && p->ell[i].lo[0] - w <= z1) zell[nzell++] = i;
    /* Cells: the candidate seeds of a tile grow with its diagonal, so
     * smaller tiles. */
    const int64_t ts = p->nseed ? TILE / 2 : TILE;
    const int64_t nty = (g->ny + ts - 1) / ts, ntx = (g->nx + ts - 1) / ts;
    const int sub = g->sub < 1 ? 1 : g->sub;
    const double margin = p->nseed ? w + p->half_thick : w;
    int fail = 0;
#pragma omp parallel
    {
        cands c;
        c.cap = malloc((size_t)(nzcap + 1) * sizeof *c.cap);
        c.ell = malloc((size_t)(nzell + 1) * sizeof *c.ell);
        c.seed = malloc((size_t)(p->nseed + 1) * sizeof *c.seed);
        int ok = c.cap && c.ell && c.seed;
        if (!ok) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < nty * ntx; t++) {
            if (!ok) continue;
            int64_t y0 = (t / ntx) * ts, x0 = (t % ntx) * ts;
            int64_t y1 = y0 + ts < g->ny ? y0 + ts : g->ny, x1 = x0 + ts < g->nx ? x0 + ts : g->nx;
            box3 b = {{z0, g->y0 + ((double)y0 - 0.5) * g->dy, g->x0 + ((double)x0 - 0.5) * g->dx},
                      {z1, g->y0 + ((double)y1 - 0.5) * g->dy, g->x0 + ((double)x1 - 0.5) * g->dx}};
            collect(p, zcap, nzcap, zell, nzell, &b, margin, &c);
            int empty = c.ncap == 0 && c.nell == 0 && c.nseed < (labels ? 1 : 2);
            for (int64_t y = y0; y < y1; y++)
                for (int64_t x = x0; x < x1; x++) {
                    size_t o = (size_t)(y * g->nx + x);
                    if (labels) {
                        double q[3] = {z0, g->y0 + (double)y * g->dy, g->x0 + (double)x * g->dx};
                        labels[o] = empty ? 0 : label_point(p, &c, q);
                        continue;
                    }
                    if (empty) {
                        out[o] = 0;
                        continue;
                    }
                    double s = 0;
                    for (int iz = 0; iz < nzs; iz++) {
                        double q[3];
                        q[0] = z0 + (z1 - z0) * (iz + 0.5) / nzs;
                        for (int iy = 0; iy < sub; iy++) {
                            q[1] = g->y0 + ((double)y + (iy + 0.5) / sub - 0.5) * g->dy;
                            for (int ix = 0; ix < sub; ix++) {
                                q[2] = g->x0 + ((double)x + (ix + 0.5) / sub - 0.5) * g->dx;
                                s += eval_point(p, &c, q, w);
                            }
                        }
                    }
                    out[o] = (float)(s / ((double)nzs * sub * sub));
                }
        }
        free(c.cap);
        free(c.ell);
        free(c.seed);
    }
    free(zcap);
    free(zell);
    return fail ? -1 : 0;
}

int phantom_render_box(const phantom *p, const phantom_plane *g, double z0, double z1, int nzs, float *out)
{
    if (nzs < 1) nzs = 1;
    int sub = g->sub < 1 ? 1 : g->sub;
    double w = fmax((z1 - z0) / nzs, fmax(g->dy / sub, g->dx / sub));
    return for_tiles(p, g, z0, z1, nzs, w, out, NULL);
}

int phantom_labels(const phantom *p, const phantom_plane *g, double z, int32_t *out)
{
    return for_tiles(p, g, z, z, 1, 0, NULL, out);
}
