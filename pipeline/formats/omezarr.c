/* OME-Zarr 0.4: three small JSON files and blosc chunks, written through the
 * store's Zarr layer (zarr.h) in the layout zarr-python and numcodecs read
 * (see omezarr.h). */
#include "omezarr.h"

#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "util.h"
#include "zarr.h"

#define CHUNK_TARGET ((int64_t)16 << 20)
/* The export's metadata keeps its keys in the order written. */
#define OMEZARR_JSON_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER)

struct omezarr_out {
    char *dir;
    omezarr_spec spec;
    zarr_codec codec;
    int64_t planes, written, rows; /* rows per chunk */
    void *cbuf;
    size_t cbuf_size;
    int threads;
};

static json_t *group_attrs(const omezarr_spec *s)
{
    char axes[5];
    snprintf(axes, sizeof axes, "%s%s", s->has_t ? "t" : "", s->has_z ? "zyx" : "yx");
    double scale[3];
    for (int i = 0; i < 3; i++) scale[i] = s->voxel[i] > 0 ? s->voxel[i] : 1.0;
    json_t *ms = zarr_ngff_multiscales(s->name ? s->name : "image", axes, scale, "micrometer", "0");
    return ms ? json_pack("{s:[o]}", "multiscales", ms) : NULL;
}

static json_t *zarray(const omezarr_spec *s, const zarr_codec *codec, int64_t rows)
{
    int64_t shape[4], chunks[4];
    int rank = 0;
    if (s->has_t) shape[rank] = s->t, chunks[rank++] = 1;
    if (s->has_z) shape[rank] = s->z, chunks[rank++] = 1;
    shape[rank] = s->y, chunks[rank++] = rows;
    shape[rank] = s->x, chunks[rank++] = s->x;
    json_t *fill = s->dtype == DT_F32 || s->dtype == DT_F64 ? json_real(0.0) : json_integer(0);
    return zarr_zarray_json(rank, shape, chunks, json_string(zarr_dtype_string(s->dtype)), codec, fill);
}

int omezarr_open(const char *dir, const omezarr_spec *spec, omezarr_out **out)
{
    *out = NULL;
    const omezarr_spec *s = spec;
    if (s->t < 1 || s->z < 1 || s->y < 1 || s->x < 1)
        return ss_fail(SS_ERR_CONFIG, "%s: cannot write an empty array", dir);
    if (mkdir(dir, 0777) != 0) return ss_fail(SS_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    omezarr_out *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        rmdir(dir);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    w->spec = *s;
    w->spec.name = NULL;
    w->codec = zarr_codec_of(STORE_COMP_BLOSC_LZ4);
    w->planes = s->t * s->z;
    int64_t row = s->x * (int64_t)dtype_size(s->dtype);
    w->rows = s->y * row <= CHUNK_TARGET ? s->y : CHUNK_TARGET / row;
    if (w->rows < 1) w->rows = 1;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    w->threads = nc < 1 ? 1 : nc > 8 ? 8 : (int)nc;
    w->cbuf_size = zarr_codec_bound(&w->codec, (size_t)(w->rows * row));
    w->cbuf = malloc(w->cbuf_size);
    char *arr = path_join(dir, "0"), *file = arr ? path_join(arr, ".zarray") : NULL;
    json_t *attrs = group_attrs(s), *za = zarray(s, &w->codec, w->rows);
    int rc = w->cbuf && file && attrs && za ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = zarr_group_write(dir, attrs, OMEZARR_JSON_FLAGS, ZARR_WRITE_NEW_SYNCED);
    if (rc == SS_OK && mkdir(arr, 0777) != 0) rc = ss_fail(SS_ERR_IO, "%s: cannot create: %s", arr, strerror(errno));
    if (rc == SS_OK) rc = zarr_json_write(file, za, OMEZARR_JSON_FLAGS, ZARR_WRITE_NEW_SYNCED);
    json_decref(attrs);
    json_decref(za);
    free(file);
    free(arr);
    if (rc != SS_OK) {
        omezarr_abort(w);
        return rc;
    }
    *out = w;
    return SS_OK;
}

int omezarr_write_plane(omezarr_out *w, const void *plane)
{
    const omezarr_spec *s = &w->spec;
    if (w->written >= w->planes) return ss_fail(SS_ERR_INTERNAL, "%s: more planes than declared", w->dir);
    int64_t t = w->written / s->z, z = w->written % s->z;
    size_t es = dtype_size(s->dtype), row = (size_t)s->x * es;
    sbuf key = {0};
    sbuf_printf(&key, "%s/0", w->dir);
    if (s->has_t) sbuf_printf(&key, "/%lld", (long long)t);
    if (s->has_z) sbuf_printf(&key, "/%lld", (long long)z);
    int rc = SS_OK;
    for (int64_t y = 0, b = 0; y < s->y && rc == SS_OK; y += w->rows, b++) {
        int64_t rows = s->y - y < w->rows ? s->y - y : w->rows;
        /* zarr chunks at the edge are stored full size, padded with the fill value */
        size_t n = (size_t)w->rows * row;
        const void *src = (const char *)plane + (size_t)y * row;
        void *pad = NULL;
        if (rows < w->rows) {
            if (!(pad = calloc(1, n))) {
                rc = ss_fail(SS_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(pad, src, (size_t)rows * row);
            src = pad;
        }
        char *file = ss_asprintf("%s/%lld/0", sbuf_str(&key), (long long)b);
        const void *data = NULL;
        size_t size = 0;
        rc = file ? zarr_chunk_encode(file, &w->codec, es, w->threads, src, n, w->cbuf, &data, &size)
                  : ss_fail(SS_ERR_NOMEM, "out of memory");
        if (rc == SS_OK) rc = zarr_chunk_write(file, data, size, ZARR_WRITE_NEW_SYNCED);
        free(pad);
        free(file);
    }
    sbuf_free(&key);
    if (rc == SS_OK) w->written++;
    return rc;
}

int omezarr_close(omezarr_out *w)
{
    int rc = w->written == w->planes ? SS_OK
                                     : ss_fail(SS_ERR_INTERNAL, "%s: %lld of %lld planes written", w->dir,
                                               (long long)w->written, (long long)w->planes);
    /* Chunk files are synced as written, the nested directories are not one
     * by one: an export is repeatable, and a crash can only lose the export's
     * own temporary tree, never a container. */
    if (rc == SS_OK) rc = fs_fsync_path(w->dir);
    if (rc != SS_OK) {
        omezarr_abort(w);
        return rc;
    }
    free(w->cbuf);
    free(w->dir);
    free(w);
    return SS_OK;
}

void omezarr_abort(omezarr_out *w)
{
    if (!w) return;
    fs_rm_rf(w->dir);
    free(w->cbuf);
    free(w->dir);
    free(w);
}
