/* OME-Zarr 0.4 written directly: three small JSON files and blosc chunks in
 * the layout zarr-python and numcodecs read (see omezarr.h). */
#include "omezarr.h"

#include <blosc.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

#define CHUNK_TARGET ((int64_t)16 << 20)
#define BLOSC_CNAME "lz4"
#define BLOSC_LEVEL 5
#define BLOSC_SHUFFLE_MODE 1

struct omezarr_out {
    char *dir;
    omezarr_spec spec;
    int64_t planes, written, rows; /* rows per chunk */
    void *cbuf;
    size_t cbuf_size;
    int threads;
};

static const char *zarr_dtype(ss_dtype t)
{
    static const char *d[DT_COUNT] = {"|u1", "<u2", "<i2", "<u4", "<i4", "<i8", "<f4", "<f8"};
    return d[t];
}

/* Writes and fsyncs a whole file. */
static int write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return ss_fail(SS_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int bad = fs_write_full(fd, data, n) != 0 || fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) bad = 1, e = errno;
    return bad ? ss_fail(SS_ERR_IO, "%s: write failed: %s", path, strerror(e)) : SS_OK;
}

static int write_json(const char *dir, const char *name, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    char *path = path_join(dir, name);
    int rc = text && path ? write_file(path, text, strlen(text)) : ss_fail(SS_ERR_NOMEM, "out of memory");
    free(text);
    free(path);
    json_decref(j);
    return rc;
}

static json_t *multiscales(const omezarr_spec *s)
{
    json_t *axes = json_array(), *scale = json_array();
    if (s->has_t) {
        json_array_append_new(axes, json_pack("{s:s, s:s}", "name", "t", "type", "time"));
        json_array_append_new(scale, json_real(1.0));
    }
    static const char *const names[3] = {"z", "y", "x"};
    for (int i = s->has_z ? 0 : 1; i < 3; i++) {
        json_array_append_new(axes, json_pack("{s:s, s:s, s:s}", "name", names[i], "type", "space", "unit", "micrometer"));
        json_array_append_new(scale, json_real(s->voxel[i] > 0 ? s->voxel[i] : 1.0));
    }
    json_t *ms = json_pack("{s:s, s:s, s:o, s:[{s:s, s:[{s:s, s:o}]}]}", "version", "0.4", "name",
                           s->name ? s->name : "image", "axes", axes, "datasets", "path", "0",
                           "coordinateTransformations", "type", "scale", "scale", scale);
    return json_pack("{s:[o]}", "multiscales", ms);
}

static json_t *zarray(const omezarr_spec *s, int64_t rows)
{
    json_t *shape = json_array(), *chunks = json_array();
    if (s->has_t) json_array_append_new(shape, json_integer(s->t)), json_array_append_new(chunks, json_integer(1));
    if (s->has_z) json_array_append_new(shape, json_integer(s->z)), json_array_append_new(chunks, json_integer(1));
    json_array_append_new(shape, json_integer(s->y));
    json_array_append_new(chunks, json_integer(rows));
    json_array_append_new(shape, json_integer(s->x));
    json_array_append_new(chunks, json_integer(s->x));
    json_t *fill = s->dtype == DT_F32 || s->dtype == DT_F64 ? json_real(0.0) : json_integer(0);
    return json_pack("{s:i, s:o, s:o, s:s, s:{s:s, s:s, s:i, s:i, s:i}, s:o, s:s, s:n, s:s}", "zarr_format", 2,
                     "shape", shape, "chunks", chunks, "dtype", zarr_dtype(s->dtype), "compressor", "id", "blosc",
                     "cname", BLOSC_CNAME, "clevel", BLOSC_LEVEL, "shuffle", BLOSC_SHUFFLE_MODE, "blocksize", 0,
                     "fill_value", fill, "order", "C", "filters", "dimension_separator", "/");
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
    w->planes = s->t * s->z;
    int64_t row = s->x * (int64_t)dtype_size(s->dtype);
    w->rows = s->y * row <= CHUNK_TARGET ? s->y : CHUNK_TARGET / row;
    if (w->rows < 1) w->rows = 1;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    w->threads = nc < 1 ? 1 : nc > 8 ? 8 : (int)nc;
    w->cbuf_size = (size_t)(w->rows * row) + BLOSC_MAX_OVERHEAD;
    w->cbuf = malloc(w->cbuf_size);
    char *arr = path_join(dir, "0");
    int rc = w->cbuf && arr ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = write_json(dir, ".zgroup", json_pack("{s:i}", "zarr_format", 2));
    if (rc == SS_OK) rc = write_json(dir, ".zattrs", multiscales(s));
    if (rc == SS_OK && mkdir(arr, 0777) != 0) rc = ss_fail(SS_ERR_IO, "%s: cannot create: %s", arr, strerror(errno));
    if (rc == SS_OK) rc = write_json(arr, ".zarray", zarray(s, w->rows));
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
        int c = blosc_compress_ctx(BLOSC_LEVEL, BLOSC_SHUFFLE_MODE, es, n, src, w->cbuf, w->cbuf_size, BLOSC_CNAME, 0,
                                   w->threads);
        free(pad);
        if (c <= 0) {
            rc = ss_fail(SS_ERR_INTERNAL, "%s: blosc compression failed (%d)", w->dir, c);
            break;
        }
        char *dir = ss_asprintf("%s/%lld", sbuf_str(&key), (long long)b);
        char *file = dir ? ss_asprintf("%s/0", dir) : NULL;
        rc = file ? fs_mkdir_p(dir) : ss_fail(SS_ERR_NOMEM, "out of memory");
        if (rc == SS_OK) rc = write_file(file, w->cbuf, (size_t)c);
        free(dir);
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
