/* import_tiff: raw repeats from TIFF files as microscopes and Fiji write them:
 * one multi-page file (plain, ImageJ hyperstack, OME-TIFF, BigTIFF), a
 * folder of single-plane files (glob, natural order), one file per repeat,
 * or vendor numbering with z and repeat fields (ThorImage). Planes are
 * streamed one at a time into the store (memory: two planes), in the
 * store's order; the files are opened read-only (DESIGN.md invariant 3).
 *
 * How pages become R x Z (repeats_layout):
 *   none         R = 1, every plane is a z plane
 *   time         the T axis of an ImageJ hyperstack or OME-TIFF holds the
 *                repeats; a file without such metadata is R time points of
 *                one plane
 *   interleaved  each plane acquired R times before the stage moves:
 *                page = z * R + r (the SIREN paper's order)
 *   blocked      one whole stack after the other: page = r * Z + z
 *   files        one file per repeat, pattern with {r}: stack_rep{r}.tif
 *   pattern      one single-plane file per (z, r), pattern with {z} and {r}
 *   auto         files or pattern when the pattern has fields; time when the
 *                file has a T axis; none otherwise (declared repeats > 1
 *                without a T axis must name interleaved or blocked).
 * Hyperstack and OME metadata give the planes of one file (Z, T, channel);
 * files matched by a glob or a {z} pattern are read as plain pages, their
 * metadata only giving the voxel size, and {c} in their names selects the
 * channel. Errors name the file (or pattern) and commit nothing. */
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "filepattern.h"
#include "tiff_meta.h"
#include "tiff_read.h"
#include "util.h"

typedef struct {
    int file;
    int64_t page;
} plane_ref;

typedef struct {
    stage_ctx *c;
    char **path;        /* every file read, in first-use order */
    int64_t *pages;     /* page count of each (-1: not opened yet) */
    int n, cap;
    int *slot;          /* open-addressing hash of path -> index (-1: empty), size nslot */
    int nslot;
    tiff_reader *rd;    /* the one open reader, for file rd_file */
    int rd_file;
    /* voxel size z, y, x from the first file's metadata (0: absent) */
    double meta_voxel[3];
    int meta_voxel_done;
    const char *meta_name; /* "ImageJ", "OME", "none": metadata of the first file */
} importer;

/* The planes of one file for the chosen channel: t * Z + z -> page. */
typedef struct {
    int64_t Z, T;
    plane_ref *p;
    tmeta_kind kind;
} file_view;

static uint64_t path_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Rebuilds the hash at twice the size (keeps the load at most 1/2). */
static int rehash(importer *im)
{
    int ns = im->nslot ? 2 * im->nslot : 64;
    int *sl = malloc((size_t)ns * sizeof *sl);
    if (!sl) return ss_nomem((size_t)ns * sizeof *sl, "the index of %d input files", im->n);
    for (int i = 0; i < ns; i++) sl[i] = -1;
    for (int i = 0; i < im->n; i++) {
        uint64_t h = path_hash(im->path[i]) & (uint64_t)(ns - 1);
        while (sl[h] >= 0) h = (h + 1) & (uint64_t)(ns - 1);
        sl[h] = i;
    }
    free(im->slot);
    im->slot = sl;
    im->nslot = ns;
    return SS_OK;
}

/* Index of path in the list of files, added if new (globs list thousands). */
static int file_index(importer *im, const char *path, int *idx)
{
    if (2 * (im->n + 1) > im->nslot) {
        int rc = rehash(im);
        if (rc != SS_OK) return rc;
    }
    uint64_t h = path_hash(path) & (uint64_t)(im->nslot - 1);
    for (; im->slot[h] >= 0; h = (h + 1) & (uint64_t)(im->nslot - 1))
        if (!strcmp(im->path[im->slot[h]], path)) return *idx = im->slot[h], SS_OK;
    if (im->n == im->cap) {
        int cap = im->cap ? 2 * im->cap : 16;
        char **p = realloc(im->path, (size_t)cap * sizeof *p);
        if (p) im->path = p;
        int64_t *g = p ? realloc(im->pages, (size_t)cap * sizeof *g) : NULL;
        if (g) im->pages = g;
        if (!p || !g) return ss_nomem((size_t)cap * (sizeof *p + sizeof *g), "the list of %d input files", cap);
        im->cap = cap;
    }
    if (!(im->path[im->n] = strdup(path))) return ss_nomem(strlen(path) + 1, "the name of %s", path);
    im->pages[im->n] = -1;
    im->slot[h] = im->n;
    *idx = im->n++;
    return SS_OK;
}

static int reader_for(importer *im, int f, tiff_reader **r)
{
    if (im->rd && im->rd_file == f) return *r = im->rd, SS_OK;
    tiff_reader_close(im->rd);
    im->rd = NULL;
    int rc = tiff_reader_open(im->path[f], &im->rd);
    if (rc != SS_OK) return rc;
    im->rd_file = f;
    if (im->pages[f] < 0) im->pages[f] = tiff_reader_pages(im->rd);
    *r = im->rd;
    return SS_OK;
}

static int page_count(importer *im, int f, int64_t *n)
{
    if (im->pages[f] < 0) {
        tiff_reader *r;
        int rc = reader_for(im, f, &r);
        if (rc != SS_OK) return rc;
    }
    *n = im->pages[f];
    return SS_OK;
}

/* Voxel size from the metadata of an open file (first call only). */
static void note_voxel(importer *im, tiff_reader *r, const tiff_meta *m)
{
    if (im->meta_voxel_done) return;
    im->meta_voxel_done = 1;
    im->meta_name = m->kind == TMETA_IMAGEJ ? "ImageJ" : m->kind == TMETA_OME ? "OME" : "none";
    memcpy(im->meta_voxel, m->voxel, sizeof m->voxel);
    if (m->kind == TMETA_IMAGEJ && m->ij_unit_um > 0) {
        /* ImageJ: XResolution/YResolution are pixels per `unit`. */
        double xr, yr;
        int ru;
        tiff_reader_resolution(r, &xr, &yr, &ru);
        if (xr > 0) im->meta_voxel[2] = m->ij_unit_um / xr;
        if (yr > 0) im->meta_voxel[1] = m->ij_unit_um / yr;
    }
}

static const char *plural(int64_t n) { return n == 1 ? "" : "s"; }

/* The path of the set member a TiffData's UUID FileName names: its base name
 * (written with / or, on Windows, \\) in the folder of the file holding the
 * XML, as OME-TIFF readers resolve it. A new string, NULL when out of memory. */
static char *member_path(const char *dir, const char *file)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    const char *bs = strrchr(base, '\\');
    return path_join(dir, bs ? bs + 1 : base);
}

/* OME TiffData: every (z, t, c) plane -> (file, IFD). A TiffData naming
 * another file without IFD or PlaneCount covers every IFD of that file;
 * counting them means opening it, so unless `all` is set such an element
 * maps only its first plane (enough for one-plane-per-file sets such as
 * ThorImage's, where this spares opening the other channels' files). */
static int ome_map(importer *im, int self, const char *path, const tiff_meta *m, plane_ref *map, int64_t N, int all)
{
    char *dir = path_dirname(path);
    if (!dir) return ss_nomem(strlen(path) + 1, "the folder of %s", path);
    int rc = SS_OK;
    if (!all)
        for (int64_t i = 0; i < N; i++) map[i].file = -1;
    for (int k = 0; k < m->n_td && rc == SS_OK; k++) {
        const ome_tiffdata *td = &m->td[k];
        int f = self;
        if (td->file) {
            char *p = member_path(dir, td->file);
            rc = p ? file_index(im, p, &f) : ss_nomem(0, "the path of %s, named in %s", td->file, path);
            free(p);
            if (rc != SS_OK) break;
        }
        int64_t count = td->plane_count;
        if (count < 0) {
            if (td->has_ifd || (f != self && !all)) count = 1;
            else if ((rc = page_count(im, f, &count)) != SS_OK) break;
            else count -= td->ifd;
        }
        if (td->first_z >= m->size_z || td->first_t >= m->size_t || td->first_c >= m->size_c) {
            rc = ss_fail(SS_ERR_INPUT, "%s: OME TiffData %d starts at z=%lld t=%lld c=%lld, outside SizeZ=%lld SizeT=%lld SizeC=%lld",
                         path, k, (long long)td->first_z, (long long)td->first_t, (long long)td->first_c,
                         (long long)m->size_z, (long long)m->size_t, (long long)m->size_c);
            break;
        }
        int64_t start = tiff_meta_plane_index(m, td->first_z, td->first_t, td->first_c);
        for (int64_t q = 0; q < count && start + q < N; q++)
            if (!all || map[start + q].file < 0 || q == 0) map[start + q] = (plane_ref){f, td->ifd + q};
    }
    free(dir);
    return rc;
}

/* Bytes in the files of an OME set (this file and every member its TiffData
 * names that exists): each plane needs an IFD of at least 18 bytes in one of
 * them, so a plane count beyond bytes / 18 is a lie that must not size an
 * allocation. */
#define MIN_IFD_BYTES 18

static int64_t ome_set_bytes(const char *path, const tiff_meta *m)
{
    struct stat st;
    int64_t total = stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
    char *dir = path_dirname(path);
    for (int k = 0; dir && k < m->n_td; k++) {
        if (!m->td[k].file) continue;
        int seen = 0;
        for (int j = 0; j < k && !seen; j++) seen = m->td[j].file && !strcmp(m->td[j].file, m->td[k].file);
        char *p = seen ? NULL : member_path(dir, m->td[k].file);
        if (p && stat(p, &st) == 0) total += (int64_t)st.st_size;
        free(p);
    }
    free(dir);
    return total;
}

/* The planes of one file as its metadata describes them (plain: every page
 * is a z plane), for channel `channel` (-1: none asked for). */
static int view_file(importer *im, const char *path, int plain, int64_t channel, file_view *v)
{
    memset(v, 0, sizeof *v);
    stage_ctx *c = im->c;
    int self, rc = file_index(im, path, &self);
    tiff_reader *r;
    if (rc == SS_OK) rc = reader_for(im, self, &r);
    if (rc != SS_OK) return rc;
    tiff_meta m;
    if (tiff_meta_parse(tiff_reader_description(r), &m) != 0)
        return ss_nomem(0, "the image description of %s", path);
    if (m.error[0] && !plain)
        ctx_warn(c, "%s: unreadable OME-XML (%s); reading the pages as a plain stack", path, m.error);
    if (m.invalid[0] && !plain && m.kind == TMETA_OME) {
        rc = ss_fail(SS_ERR_INPUT, "%s: invalid OME-XML metadata: %s", path, m.invalid);
        tiff_meta_free(&m);
        return rc;
    }
    note_voxel(im, r, &m);
    int64_t pages = tiff_reader_pages(r);
    int64_t Z = pages, T = 1, C = 1, N = pages;
    plane_ref *map = NULL;
    if (!plain && m.kind != TMETA_NONE) {
        Z = m.size_z, T = m.size_t, C = m.size_c;
        if (__builtin_mul_overflow(Z, T, &N) || __builtin_mul_overflow(N, C, &N)) N = -1;
        v->kind = m.kind;
        /* an ImageJ description without images= says nothing about the pages */
        if (m.kind == TMETA_IMAGEJ && m.ij_images == 0 && N == 1) Z = N = pages;
    }
    if (N < 1 || N > ((int64_t)1 << 40)) {
        rc = ss_fail(SS_ERR_INPUT, "%s: metadata describes %lld planes", path, (long long)N);
        goto done;
    }
    if (v->kind == TMETA_IMAGEJ && N > pages) {
        /* ImageJ writes stacks over 4 GiB as one IFD and raw planes after it. */
        if (pages != 1 || tiff_reader_set_contiguous(r, N) != SS_OK) {
            rc = ss_fail(SS_ERR_INPUT, "%s: ImageJ metadata claims %lld images but the file has %lld page%s (truncated file?)",
                         path, (long long)N, (long long)pages, plural(pages));
            goto done;
        }
        im->pages[self] = N;
    }
    if (v->kind == TMETA_OME && m.n_images > 1)
        ctx_warn(c, "%s: the OME-XML describes %d images; importing the first", path, m.n_images);
    if (v->kind == TMETA_OME && m.n_td == 0 && N > pages) {
        rc = ss_fail(SS_ERR_INPUT, "%s: OME-XML describes %lld planes (SizeZ=%lld SizeT=%lld SizeC=%lld) but the file has %lld "
                     "page%s and no TiffData naming other files (part of a multi-file set? import the file that lists them)",
                     path, (long long)N, (long long)Z, (long long)T, (long long)C, (long long)pages, plural(pages));
        goto done;
    }
    if (v->kind == TMETA_OME && m.n_td > 0) {
        int64_t bytes = ome_set_bytes(path, &m);
        if (N > bytes / MIN_IFD_BYTES) {
            rc = ss_fail(SS_ERR_INPUT, "%s: OME-XML describes %lld planes (SizeZ=%lld SizeT=%lld SizeC=%lld), more than "
                         "the %lld bytes of its file set can hold", path, (long long)N, (long long)Z, (long long)T,
                         (long long)C, (long long)bytes);
            goto done;
        }
    }
    if (!(map = malloc((size_t)N * sizeof *map))) {
        rc = ss_nomem((size_t)N * sizeof *map, "the map of %lld planes of %s", (long long)N, path);
        goto done;
    }
    for (int64_t i = 0; i < N; i++) map[i] = (plane_ref){self, i};
    if (v->kind == TMETA_OME && m.n_td > 0 && (rc = ome_map(im, self, path, &m, map, N, 0)) != SS_OK) goto done;
    int64_t ch = 0;
    if (C > 1 && channel < 0) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s metadata describes %lld channels; set the stage's 'channel' (0 to %lld) to pick one",
                     path, v->kind == TMETA_OME ? "OME" : "ImageJ", (long long)C, (long long)C - 1);
        goto done;
    }
    if (channel >= 0) {
        ch = channel;
        if (ch >= C) {
            rc = ss_fail(SS_ERR_INPUT, "%s: channel %lld asked for, but the file has %lld channel%s", path, (long long)ch,
                         (long long)C, plural(C));
            goto done;
        }
    }
    if (!(v->p = malloc((size_t)(Z * T) * sizeof *v->p))) {
        rc = ss_nomem((size_t)(Z * T) * sizeof *v->p, "the map of %lld x %lld planes of %s", (long long)T,
                      (long long)Z, path);
        goto done;
    }
    v->Z = Z, v->T = T;
    if (v->kind == TMETA_OME && m.n_td > 0)
        for (int64_t t = 0, again = 0; t < T && !again && rc == SS_OK; t++)
            for (int64_t z = 0; z < Z && !again; z++)
                if (map[tiff_meta_plane_index(&m, z, t, ch)].file < 0)
                    again = 1, rc = ome_map(im, self, path, &m, map, N, 1);
    for (int64_t t = 0; t < T && rc == SS_OK; t++)
        for (int64_t z = 0; z < Z; z++) {
            int64_t idx = v->kind == TMETA_NONE ? z : tiff_meta_plane_index(&m, z, t, ch);
            if (map[idx].file < 0) {
                rc = ss_fail(SS_ERR_INPUT, "%s: the OME TiffData elements name no IFD for plane z=%lld t=%lld c=%lld", path,
                             (long long)z, (long long)t, (long long)ch);
                break;
            }
            v->p[t * Z + z] = map[idx];
        }
done:
    free(map);
    tiff_meta_free(&m);
    if (rc != SS_OK) {
        free(v->p);
        v->p = NULL;
    }
    return rc;
}

/* Field values of a pattern's files, checked to form a full grid base..base+n-1. */
static int check_index(const char *pattern, const char *field, const int64_t *vals, size_t n, const char *base_param,
                       int64_t *base, int64_t *count)
{
    int64_t mn = INT64_MAX, mx = -1;
    for (size_t i = 0; i < n; i++) {
        if (vals[i] < mn) mn = vals[i];
        if (vals[i] > mx) mx = vals[i];
    }
    if (!strcmp(base_param, "auto")) {
        if (mn > 1)
            return ss_fail(SS_ERR_INPUT, "pattern '%s': the first {%s} found is %lld, not 0 or 1 (files missing? or set index_base)",
                           pattern, field, (long long)mn);
        *base = mn;
    } else {
        *base = base_param[0] - '0';
        if (mn < *base)
            return ss_fail(SS_ERR_INPUT, "pattern '%s': {%s}=%lld is below index_base %lld", pattern, field, (long long)mn,
                           (long long)*base);
    }
    *count = mx - *base + 1;
    return SS_OK;
}

typedef struct {
    int64_t r, z;
    size_t i;
} rz_key;

static int cmp_rz(const void *a, const void *b)
{
    const rz_key *x = a, *y = b;
    if (x->r != y->r) return x->r < y->r ? -1 : 1;
    if (x->z != y->z) return x->z < y->z ? -1 : 1;
    return 0;
}

/* Pattern with {z} and/or {r}: every (r, z) of the grid must have exactly one file. */
static int grid_files(stage_ctx *c, const char *pattern, const fpat_set *fs, int64_t *R, int64_t *Z, size_t **order)
{
    size_t n = fs->n;
    int64_t *zv = malloc(n * sizeof *zv), *rv = malloc(n * sizeof *rv);
    rz_key *k = malloc(n * sizeof *k);
    int rc = zv && rv && k ? SS_OK : ss_nomem(n * (sizeof *zv + sizeof *rv + sizeof *k),
                                             "the indexes of %zu files matching '%s'", n, pattern);
    const char *bp = ctx_str(c, "index_base");
    int64_t zb = 0, rb = 0, nz = 1, nr = 1;
    for (size_t i = 0; i < n && rc == SS_OK; i++) zv[i] = fs->files[i].z, rv[i] = fs->files[i].r;
    if (rc == SS_OK && fs->has_z) rc = check_index(pattern, "z", zv, n, bp, &zb, &nz);
    if (rc == SS_OK && fs->has_r) rc = check_index(pattern, "r", rv, n, bp, &rb, &nr);
    if (rc == SS_OK)
        for (size_t i = 0; i < n; i++)
            k[i] = (rz_key){fs->has_r ? rv[i] - rb : 0, fs->has_z ? zv[i] - zb : 0, i};
    if (rc == SS_OK) qsort(k, n, sizeof *k, cmp_rz);
    /* Walk the expected grid in (r, z) order against the sorted files: every
     * key lies inside the grid, so a key ahead of the walk is a gap and two
     * equal keys are a duplicate. */
    size_t i = 0;
    for (int64_t r = 0; r < nr && rc == SS_OK; r++)
        for (int64_t z = 0; z < nz && rc == SS_OK; z++) {
            if (i < n && k[i].r == r && k[i].z == z) {
                if (++i < n && k[i].r == r && k[i].z == z)
                    rc = ss_fail(SS_ERR_INPUT, "pattern '%s': two files for the same index: %s and %s", pattern,
                                 fs->files[k[i - 1].i].path, fs->files[k[i].i].path);
                continue;
            }
            char what[96] = "";
            if (fs->has_z) snprintf(what, sizeof what, "z=%lld", (long long)(z + zb));
            if (fs->has_r)
                snprintf(what + strlen(what), sizeof what - strlen(what), "%sr=%lld", fs->has_z ? " " : "",
                         (long long)(r + rb));
            rc = ss_fail(SS_ERR_INPUT, "pattern '%s': no file for %s (the files skip an index)", pattern, what);
        }
    if (rc == SS_OK) {
        *order = malloc(n * sizeof **order);
        if (!*order) rc = ss_nomem(n * sizeof **order, "the order of %zu files matching '%s'", n, pattern);
        else
            for (size_t q = 0; q < n; q++) (*order)[q] = k[q].i;
        *R = nr, *Z = nz;
    }
    free(zv);
    free(rv);
    free(k);
    return rc;
}

/* R as declared by the stage or the sample; 0 when neither says. */
static int64_t declared_repeats(stage_ctx *c, const char **who)
{
    if (!ctx_is_null(c, "repeats")) return *who = "the stage's 'repeats'", ctx_int(c, "repeats");
    const sample_info *s = ctx_sample(c);
    static char buf[160];
    snprintf(buf, sizeof buf, "sample %s", s->id);
    *who = buf;
    return s->repeats;
}

/* Interleaved or blocked: flat planes -> R x Z. */
static int split_flat(stage_ctx *c, const char *src, const char *layout, const plane_ref *flat, int64_t N, int64_t *R,
                      int64_t *Z, plane_ref **map)
{
    const char *who;
    int64_t r = declared_repeats(c, &who);
    if (r < 1)
        return ss_fail(SS_ERR_INPUT, "%s: repeats_layout %s needs the number of repeats: set the stage's 'repeats' or the "
                       "sample's", src, layout);
    if (N % r)
        return ss_fail(SS_ERR_INPUT, "%s: %lld planes do not divide into %lld repeats (%s)", src, (long long)N, (long long)r,
                       who);
    int64_t z = N / r;
    plane_ref *m = malloc((size_t)N * sizeof *m);
    if (!m) return ss_nomem((size_t)N * sizeof *m, "the map of %lld planes of %s", (long long)N, src);
    int inter = !strcmp(layout, "interleaved");
    for (int64_t i = 0; i < r; i++)
        for (int64_t k = 0; k < z; k++) m[i * z + k] = flat[inter ? k * r + i : i * z + k];
    *R = r, *Z = z, *map = m;
    return SS_OK;
}

/* Builds the R x Z plane map from a single file. */
static int plan_file(importer *im, const char *file, const char **layout_io, int64_t *R, int64_t *Z, plane_ref **map)
{
    const char *layout = *layout_io;
    stage_ctx *c = im->c;
    file_view v;
    int rc = view_file(im, file, 0, ctx_is_null(c, "channel") ? -1 : ctx_int(c, "channel"), &v);
    if (rc != SS_OK) return rc;
    const char *who;
    int64_t decl = declared_repeats(c, &who);
    const char *meta = v.kind == TMETA_OME ? "OME SizeT" : "ImageJ frames";
    if (!strcmp(layout, "auto")) {
        if (v.T > 1) layout = "time";
        else if (decl > 1) {
            rc = ss_fail(SS_ERR_INPUT, "%s: %s declares %lld repeats but the file has no time axis: set repeats_layout "
                         "(interleaved: page = z * R + r; blocked: page = r * Z + z; time)", file, who, (long long)decl);
            goto done;
        } else layout = "none";
        *layout_io = layout;
    }
    if (!strcmp(layout, "files") || !strcmp(layout, "pattern")) {
        rc = ss_fail(SS_ERR_INPUT, "%s: repeats_layout %s needs a 'pattern' with %s", file, layout,
                     layout[0] == 'f' ? "{r} (one file per repeat)" : "{z} and {r}");
    } else if (!strcmp(layout, "none")) {
        if (v.T > 1)
            rc = ss_fail(SS_ERR_INPUT, "%s: the file holds %lld time points (%s); use repeats_layout time (they are the "
                         "repeats), interleaved or blocked", file, (long long)v.T, meta);
        *R = 1, *Z = v.Z, *map = v.p, v.p = NULL;
    } else if (!strcmp(layout, "time")) {
        if (v.T > 1) *R = v.T, *Z = v.Z;
        else if (v.kind == TMETA_NONE) *R = v.Z, *Z = 1; /* a plain series: each page a time point */
        else
            rc = ss_fail(SS_ERR_INPUT, "%s: repeats_layout time, but the %s metadata has no time axis (%s = 1, %lld z planes); "
                         "use interleaved or blocked", file, v.kind == TMETA_OME ? "OME" : "ImageJ", meta, (long long)v.Z);
        if (rc == SS_OK) *map = v.p, v.p = NULL;
    } else { /* interleaved, blocked: the planes in file order (t-major) */
        rc = split_flat(c, file, layout, v.p, v.Z * v.T, R, Z, map);
    }
done:
    free(v.p);
    return rc;
}

/* A pattern with {c}: keeps the files of the chosen channel (the number as
 * written in the file names). */
static int pick_channel(stage_ctx *c, const char *pattern, fpat_set *fs)
{
    int64_t first = fs->files[0].c, other = -1;
    for (size_t i = 1; i < fs->n && other < 0; i++)
        if (fs->files[i].c != first) other = fs->files[i].c;
    if (ctx_is_null(c, "channel")) {
        if (other >= 0)
            return ss_fail(SS_ERR_INPUT, "pattern '%s': {c} takes several values (%lld, %lld, ...); set 'channel' to the one "
                           "to import", pattern, (long long)first, (long long)other);
        return SS_OK;
    }
    int64_t want = ctx_int(c, "channel");
    size_t k = 0;
    for (size_t i = 0; i < fs->n; i++) {
        if (fs->files[i].c == want) fs->files[k++] = fs->files[i];
        else free(fs->files[i].path);
    }
    fs->n = k;
    if (k == 0) return ss_fail(SS_ERR_INPUT, "pattern '%s': no file with {c}=%lld", pattern, (long long)want);
    return SS_OK;
}

/* Builds the plan from a glob or a pattern with fields. */
static int plan_pattern(importer *im, const char *pattern, const char **layout_io, int64_t *R, int64_t *Z,
                        plane_ref **map)
{
    const char *layout = *layout_io;
    stage_ctx *c = im->c;
    fpat_set fs;
    int rc = fpat_expand(pattern, &fs);
    if (rc != SS_OK) return rc;
    size_t *order = NULL;
    plane_ref *flat = NULL;
    file_view v = {0};
    if (fs.n == 0) {
        rc = ss_fail(SS_ERR_INPUT, "pattern '%s' matches no file", pattern);
        goto done;
    }
    if (fs.has_c && (rc = pick_channel(c, pattern, &fs)) != SS_OK) goto done;
    int fields = fs.has_z || fs.has_r;
    if (!strcmp(layout, "auto")) layout = !fields ? "none" : fs.has_r && !fs.has_z ? "files" : "pattern";
    *layout_io = layout;
    if (fields && strcmp(layout, "files") && strcmp(layout, "pattern")) {
        rc = ss_fail(SS_ERR_INPUT, "pattern '%s' has {z}/{r} fields: use repeats_layout pattern, files or auto", pattern);
        goto done;
    }
    if (!strcmp(layout, "files") && (!fs.has_r || fs.has_z)) {
        rc = ss_fail(SS_ERR_INPUT, "pattern '%s': repeats_layout files needs {r} (one file per repeat) and no {z}", pattern);
        goto done;
    }
    if (!strcmp(layout, "pattern") && !fs.has_z) {
        rc = ss_fail(SS_ERR_INPUT, "pattern '%s': repeats_layout pattern needs a {z} field (and {r} for repeats)", pattern);
        goto done;
    }
    if (!strcmp(layout, "time")) {
        rc = ss_fail(SS_ERR_INPUT, "pattern '%s': repeats_layout time reads the T axis of one file; give 'file'", pattern);
        goto done;
    }
    if (fields) {
        int64_t nr, nz;
        if ((rc = grid_files(c, pattern, &fs, &nr, &nz, &order)) != SS_OK) goto done;
        int per_repeat = !strcmp(layout, "files");
        int64_t zz = per_repeat ? -1 : nz;
        plane_ref *m = NULL;
        for (int64_t r = 0; r < nr && rc == SS_OK; r++) {
            const char *path = fs.files[order[per_repeat ? r : r * nz]].path;
            if (per_repeat) {
                /* with {c} the names chose the channel; else the file's metadata does */
                int64_t ch = fs.has_c || ctx_is_null(c, "channel") ? -1 : ctx_int(c, "channel");
                if ((rc = view_file(im, path, 0, ch, &v)) != SS_OK) break;
                if (v.T > 1) {
                    rc = ss_fail(SS_ERR_INPUT, "%s: holds %lld time points; with repeats_layout files each file is one "
                                 "repeat's z stack", path, (long long)v.T);
                    break;
                }
                if (zz < 0) zz = v.Z, m = malloc((size_t)(nr * zz) * sizeof *m);
                if (!m) {
                    rc = ss_nomem((size_t)(nr * zz) * sizeof *m, "the map of %lld x %lld planes of '%s'",
                                  (long long)nr, (long long)zz, pattern);
                    break;
                }
                if (v.Z != zz) {
                    rc = ss_fail(SS_ERR_INPUT, "%s: %lld planes, but %s has %lld (repeats must have the same z planes)", path,
                                 (long long)v.Z, fs.files[order[0]].path, (long long)zz);
                    break;
                }
                memcpy(m + r * zz, v.p, (size_t)zz * sizeof *m);
                free(v.p);
                v.p = NULL;
                continue;
            }
            if (!m && !(m = malloc((size_t)(nr * nz) * sizeof *m))) {
                rc = ss_nomem((size_t)(nr * nz) * sizeof *m, "the map of %lld x %lld planes of '%s'",
                              (long long)nr, (long long)nz, pattern);
                break;
            }
            for (int64_t z = 0; z < nz && rc == SS_OK; z++) {
                const char *p = fs.files[order[r * nz + z]].path;
                int f;
                int64_t np = 0;
                if ((rc = file_index(im, p, &f)) != SS_OK) break;
                if (z == 0 && r == 0) {
                    /* the first file's metadata gives the voxel size */
                    if ((rc = view_file(im, p, 1, -1, &v)) != SS_OK) break;
                    free(v.p);
                    v.p = NULL;
                }
                if ((rc = page_count(im, f, &np)) != SS_OK) break;
                if (np != 1)
                    rc = ss_fail(SS_ERR_INPUT, "%s: %lld pages; with repeats_layout pattern each file holds one plane", p,
                                 (long long)np);
                m[r * nz + z] = (plane_ref){f, 0};
            }
        }
        if (rc == SS_OK) *R = nr, *Z = zz, *map = m;
        else free(m);
        goto done;
    }
    /* A glob: the pages of every file, in natural order, form one sequence. */
    int64_t N = 0, cap = 0;
    for (size_t i = 0; i < fs.n && rc == SS_OK; i++) {
        if ((rc = view_file(im, fs.files[i].path, 1, -1, &v)) != SS_OK) break;
        if (N + v.Z > cap) {
            cap = 2 * (N + v.Z);
            plane_ref *nf = realloc(flat, (size_t)cap * sizeof *nf);
            if (!nf) {
                rc = ss_nomem((size_t)cap * sizeof *nf, "the map of %lld planes of '%s'", (long long)cap,
                              pattern);
                break;
            }
            flat = nf;
        }
        memcpy(flat + N, v.p, (size_t)v.Z * sizeof *flat);
        N += v.Z;
        free(v.p);
        v.p = NULL;
    }
    if (rc != SS_OK) goto done;
    const char *who;
    int64_t decl = declared_repeats(c, &who);
    if (!strcmp(layout, "none")) {
        if (decl > 1)
            rc = ss_fail(SS_ERR_INPUT, "pattern '%s': %s declares %lld repeats: set repeats_layout interleaved (page = z * R + r) "
                         "or blocked (page = r * Z + z)", pattern, who, (long long)decl);
        else *R = 1, *Z = N, *map = flat, flat = NULL;
    } else {
        rc = split_flat(c, pattern, layout, flat, N, R, Z, map);
    }
done:
    free(v.p);
    free(flat);
    free(order);
    fpat_free(&fs);
    return rc;
}

/* Records the files whose planes were imported (the engine hashes only
 * `file`; see README, "import_tiff"). */
static int record_files(importer *im, const plane_ref *map, int64_t n)
{
    json_t *list = json_array();
    json_int_t total = 0;
    unsigned char *used = calloc((size_t)im->n, 1);
    if (!used || !list) {
        free(used);
        json_decref(list);
        return ss_nomem((size_t)im->n, "the list of %d files read", im->n);
    }
    for (int64_t i = 0; i < n; i++) used[map[i].file] = 1;
    int count = 0;
    for (int i = 0; i < im->n; i++) {
        if (!used[i]) continue;
        count++;
        struct stat st;
        json_int_t sz = stat(im->path[i], &st) == 0 ? (json_int_t)st.st_size : -1;
        total += sz > 0 ? sz : 0;
        json_array_append_new(list, json_pack("[s,I]", im->path[i], sz));
    }
    free(used);
    return ctx_attr(im->c, "files_read", json_pack("{s:i,s:I,s:o}", "count", count, "bytes", total, "files", list));
}

static int run(stage_ctx *c)
{
    importer im = {.c = c, .rd_file = -1};
    const char *file = ctx_str(c, "file"), *pattern = ctx_str(c, "pattern");
    const char *layout = ctx_str(c, "repeats_layout");
    if (!file == !pattern)
        return ss_fail(SS_ERR_CONFIG, "import_tiff: give either 'file' or 'pattern' (with 'pattern', set file: null)");
    int64_t R = 0, Z = 0;
    plane_ref *map = NULL;
    void *buf = NULL;
    store_array *out = NULL;
    int rc = file ? plan_file(&im, file, &layout, &R, &Z, &map) : plan_pattern(&im, pattern, &layout, &R, &Z, &map);
    if (rc != SS_OK) goto done;
    const char *src = file ? file : pattern, *who;
    int64_t decl = declared_repeats(c, &who);
    if (decl > 0 && decl != R) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s declares %lld repeats, but the data holds %lld (repeats_layout %s)", src, who,
                     (long long)decl, (long long)R, layout);
        goto done;
    }
    /* The first plane fixes the element type and the plane size. */
    tiff_reader *rd;
    tiff_page_info first, in;
    if ((rc = reader_for(&im, map[0].file, &rd)) != SS_OK || (rc = tiff_reader_page(rd, map[0].page, &first)) != SS_OK)
        goto done;
    const sample_info *smp = ctx_sample(c);
    array_meta m = {.axes = "rzyx", .unit = "micrometer"};
    const char *vsrc;
    if (!ctx_is_null(c, "voxel_size")) {
        for (int i = 0; i < 3; i++) m.voxel[i] = ctx_list_num(c, "voxel_size", i);
        vsrc = "params";
    } else if (smp->voxel[0] > 0) {
        memcpy(m.voxel, smp->voxel, sizeof m.voxel);
        vsrc = "sample";
    } else {
        static const char *const ax[3] = {"z", "y", "x"};
        char missing[16] = "";
        for (int i = 0; i < 3; i++) {
            m.voxel[i] = im.meta_voxel[i] > 0 ? im.meta_voxel[i] : 1.0;
            if (!(im.meta_voxel[i] > 0)) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                                                  missing[0] ? ", " : "", ax[i]);
        }
        vsrc = missing[0] ? (strlen(missing) == 7 ? "default" : "file+default") : "file";
        if (missing[0])
            ctx_warn(c, "%s: no voxel size for %s in the config, the sample or the file's metadata; using 1 um there", src,
                     missing);
    }
    int64_t shape[4] = {R, Z, first.height, first.width};
    if ((rc = store_writer_array(ctx_writer(c), "raw", first.dtype, 4, shape, NULL, &m, &out)) != SS_OK) goto done;
    size_t plane = (size_t)(first.width * first.height);
    if (!(buf = malloc(plane * dtype_size(first.dtype)))) {
        rc = ss_nomem(plane * dtype_size(first.dtype), "one plane of %lld x %lld %s of %s",
                      (long long)first.height, (long long)first.width, dtype_name(first.dtype), src);
        goto done;
    }
    ctx_progress_begin(c, "planes", R * Z);
    for (int64_t r = 0; r < R && rc == SS_OK; r++)
        for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
            if (ctx_cancelled(c)) {
                rc = ss_fail(SS_ERR_INTERRUPTED, "import_tiff: interrupted");
                break;
            }
            const plane_ref *p = &map[r * Z + z];
            if ((rc = reader_for(&im, p->file, &rd)) != SS_OK || (rc = tiff_reader_page(rd, p->page, &in)) != SS_OK) break;
            if (in.width != first.width || in.height != first.height || in.dtype != first.dtype) {
                rc = ss_fail(SS_ERR_INPUT, "%s: page %lld is %lldx%lld %s, but the first plane (%s page %lld) is %lldx%lld %s",
                             im.path[p->file], (long long)p->page, (long long)in.height, (long long)in.width,
                             dtype_name(in.dtype), im.path[map[0].file], (long long)map[0].page, (long long)first.height,
                             (long long)first.width, dtype_name(first.dtype));
                break;
            }
            if ((rc = tiff_reader_read(rd, p->page, buf)) != SS_OK) break;
            if (first.dtype == DT_F32) {
                size_t bad = ctx_kernels(c)->count_nonfinite_f32(buf, plane);
                if (bad) {
                    rc = ss_fail(SS_ERR_INPUT, "%s: page %lld holds %zu NaN or infinite values", im.path[p->file],
                                 (long long)p->page, bad);
                    break;
                }
            }
            int64_t os[4] = {r, z, 0, 0}, oc[4] = {1, 1, first.height, first.width};
            rc = store_array_write(out, os, oc, first.dtype, buf);
            ctx_progress(c, r * Z + z + 1);
        }
    if (rc == SS_OK) rc = record_files(&im, map, R * Z);
    if (rc == SS_OK)
        ctx_attr(c, "tiff_source", json_pack("{s:s,s:s,s:I,s:I,s:s}", "repeats_layout", layout, "metadata",
                                             im.meta_name ? im.meta_name : "none", "repeats", (json_int_t)R, "planes",
                                             (json_int_t)Z, "voxel_size_from", vsrc));
done:
    free(buf);
    store_array_close(out);
    free(map);
    tiff_reader_close(im.rd);
    for (int i = 0; i < im.n; i++) free(im.path[i]);
    free(im.path);
    free(im.pages);
    free(im.slot);
    return rc;
}

/* The other members of a multi-file OME-TIFF set, as its file's TiffData
 * elements name them (stage_type.companions): every member, those of other
 * channels too, so that the fingerprint covers whatever the import reads. */
static json_t *companions(const json_t *params, const char *param, const char *path)
{
    (void)params, (void)param;
    tiff_reader *r;
    if (tiff_reader_open(path, &r) != SS_OK) {
        ss_errclear(); /* run() says what is wrong with the file */
        return NULL;
    }
    tiff_meta m;
    json_t *out = NULL;
    char *dir = path_dirname(path);
    if (dir && tiff_meta_parse(tiff_reader_description(r), &m) == 0) {
        for (int k = 0; m.kind == TMETA_OME && k < m.n_td; k++) {
            char *p = m.td[k].file ? member_path(dir, m.td[k].file) : NULL;
            if (p && (out || (out = json_array()))) json_array_append_new(out, json_string(p));
            free(p);
        }
        tiff_meta_free(&m);
    }
    free(dir);
    tiff_reader_close(r);
    return out;
}

/* Which of the fields {z}, {r} ({t}) a pattern as written in the config holds
 * ({{z}} there, since {name} is a sample field): 1 when known, 0 when the
 * pattern takes part of its text from the sample and so is known only per
 * sample. */
static int config_fields(const char *pattern, int *has_z, int *has_r)
{
    *has_z = *has_r = 0;
    for (const char *q = pattern; *q; q++) {
        if (q[0] == '{' && q[1] == '{') {
            char f = q[2];
            *has_z |= f == 'z';
            *has_r |= f == 'r' || f == 't';
            const char *end = strstr(q + 2, "}}");
            if (!end) return 1; /* malformed: left to the pattern parser */
            q = end + 1;
        } else if (q[0] == '{') {
            return 0;
        }
    }
    return 1;
}

/* What validation can tell from the parameters alone; what depends on the
 * files (channels, time axes, file counts) is an input error of run(). */
static const char *check(const json_t *p)
{
    static _Thread_local char why[512], shown[256];
    const char *file = json_string_value(json_object_get(p, "file"));
    const char *pattern = json_string_value(json_object_get(p, "pattern"));
    const char *layout = json_string_value(json_object_get(p, "repeats_layout")) ?: "auto";
    if (!file == !pattern)
        return "give either 'file' (one TIFF) or 'pattern' (a glob or {z}/{r} fields); with 'pattern', set file: null";
    why[0] = 0;
    /* the pattern as its files are named: {{z}} in the config is the field {z} */
    size_t n = 0;
    for (const char *q = pattern ? pattern : ""; *q && n + 1 < sizeof shown; q++) {
        shown[n++] = *q;
        if ((q[0] == '{' || q[0] == '}') && q[1] == q[0]) q++;
    }
    shown[n] = 0;
    int z, r;
    if (file && (!strcmp(layout, "files") || !strcmp(layout, "pattern")))
        snprintf(why, sizeof why, "'%s': repeats_layout %s needs a 'pattern' with %s, not 'file'", file, layout,
                 layout[0] == 'f' ? "{r} (one file per repeat)" : "{z} and {r}");
    else if (pattern && !strcmp(layout, "time"))
        snprintf(why, sizeof why, "pattern '%s': repeats_layout time reads the T axis of one file; give 'file'", shown);
    else if (pattern && config_fields(pattern, &z, &r)) {
        if ((z || r) && strcmp(layout, "auto") && strcmp(layout, "files") && strcmp(layout, "pattern"))
            snprintf(why, sizeof why, "pattern '%s' has {z}/{r} fields: use repeats_layout pattern, files or auto", shown);
        else if (!strcmp(layout, "files") && (!r || z))
            snprintf(why, sizeof why, "pattern '%s': repeats_layout files needs {r} (one file per repeat) and no {z}", shown);
        else if (!strcmp(layout, "pattern") && !z)
            snprintf(why, sizeof why, "pattern '%s': repeats_layout pattern needs a {z} field (and {r} for repeats)", shown);
    }
    return why[0] ? why : NULL;
}

/* Interleaved and blocked pages need the number of repeats from the stage or
 * the sample. */
static const char *check_sample(const json_t *p, const sample_info *smp)
{
    const char *layout = json_string_value(json_object_get(p, "repeats_layout")) ?: "auto";
    if ((strcmp(layout, "interleaved") && strcmp(layout, "blocked")) || !json_is_null(json_object_get(p, "repeats")) ||
        smp->repeats > 0)
        return NULL;
    return !strcmp(layout, "interleaved")
               ? "repeats_layout interleaved needs the number of repeats: set the stage's 'repeats' or the sample's"
               : "repeats_layout blocked needs the number of repeats: set the stage's 'repeats' or the sample's";
}

/* stage_type.repeats_of: R when the parameters fix it. */
static int64_t repeats_of(const json_t *p, const char *output)
{
    (void)output;
    const json_t *r = json_object_get(p, "repeats");
    if (json_is_integer(r)) return json_integer_value(r);
    return !strcmp(json_string_value(json_object_get(p, "repeats_layout")) ?: "", "none") ? 1 : 0;
}

static const param_spec params[] = {
    {.name = "file", .type = P_PATH, .def = "\"{input}\"", .flags = PARAM_INPUT_FILE | PARAM_NULLABLE,
     .doc = "one TIFF: multi-page, ImageJ hyperstack or OME-TIFF (default: the sample's input); null with 'pattern'"},
    {.name = "pattern", .type = P_PATH, .def = "null", .flags = PARAM_NULLABLE | PARAM_INPUT_GLOB,
     .doc = "several TIFFs: a glob (planes/*.tif, natural order) or numbered files with fields {z} {r} {c}, e.g. {z:04d}"},
    {.name = "repeats_layout", .type = P_ENUM, .def = "\"auto\"",
     .choices = "auto|none|time|interleaved|blocked|files|pattern",
     .doc = "how pages map to repeats: interleaved page = z*R+r, blocked page = r*Z+z, time = T axis, files = one per {r}"},
    {.name = "repeats", .type = P_INT, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 1, .hi = 1e6,
     .doc = "number of repeats R (default: the sample's, else the file's T axis or the pattern's {r} count)"},
    {.name = "channel", .type = P_INT, .def = "null", .flags = PARAM_NULLABLE | PARAM_RANGE, .lo = 0, .hi = 1e5,
     .doc = "channel to import from multi-channel ImageJ or OME files (0-based), or the {c} value of a pattern"},
    {.name = "index_base", .type = P_ENUM, .def = "\"auto\"", .choices = "auto|0|1",
     .doc = "first index of {z} and {r} in file names (auto: the smallest found, 0 or 1)"},
    PARAM_VOXEL_SIZE("voxel size [z, y, x] in micrometer (default: the sample's, then the file's metadata)"),
    {0},
};
static const port_spec no_inputs[] = {{0}};
static const port_spec outputs[] = {
    {.name = "raw", .kinds = KIND_REPEATS, .doc = "the repeats R x Z x Y x X in the file's element type"},
    {0},
};

const stage_type stage_import_tiff = {
    .name = "import_tiff",
    .version = 1,
    .summary = "import raw repeats from TIFF, ImageJ hyperstack or OME-TIFF files, or a folder of planes",
    .params = params,
    .inputs = no_inputs,
    .outputs = outputs,
    .flags = STAGE_SOURCE,
    .run = run,
    .check = check,
    .check_sample = check_sample,
    .companions = companions,
    .repeats_of = repeats_of,
};
