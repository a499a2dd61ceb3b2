/* Zarr v2 as zarr-python and numcodecs write it (see zarr.h). */
#include "zarr.h"

#include <blosc.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "error.h"
#include "store_impl.h"
#include "util.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "zarr chunks hold memory as is under little-endian dtypes"
#endif

/* ---- dtypes ----------------------------------------------------------------- */

static const char *const dtype_strings[DT_COUNT] = {
    [DT_U8] = "|u1",  [DT_U16] = "<u2", [DT_I16] = "<i2", [DT_U32] = "<u4",
    [DT_I32] = "<i4", [DT_I64] = "<i8", [DT_F32] = "<f4", [DT_F64] = "<f8",
};

const char *zarr_dtype_string(ss_dtype t) { return (unsigned)t < DT_COUNT ? dtype_strings[t] : NULL; }

int zarr_dtype_parse(const char *s, ss_dtype *t)
{
    for (int i = 0; s && strlen(s) == 3 && i < DT_COUNT; i++) {
        const char *z = dtype_strings[i];
        if (strcmp(s + 1, z + 1) != 0) continue;
        /* byte order matters only for multi-byte types */
        if (s[0] == '<' || (z[2] == '1' && (s[0] == '|' || s[0] == '>'))) {
            *t = (ss_dtype)i;
            return SS_OK;
        }
    }
    return ss_fail(SS_ERR_INPUT, "dtype '%s' not supported", s ? s : "?");
}

json_t *zarr_field_json(col_type type, size_t size)
{
    switch (type) {
    case COL_I64: return json_string("<i8");
    case COL_F64: return json_string("<f8");
    case COL_STR: return json_sprintf("|S%zu", size);
    }
    return NULL;
}

int zarr_field_parse(const char *s, col_type *type, size_t *size)
{
    if (s && !strcmp(s, "<i8")) {
        *type = COL_I64;
        *size = 8;
    } else if (s && !strcmp(s, "<f8")) {
        *type = COL_F64;
        *size = 8;
    } else if (s && s[0] == '|' && s[1] == 'S' && s[2] >= '1' && s[2] <= '9' && strlen(s) <= 7 &&
               strspn(s + 2, "0123456789") == strlen(s + 2)) {
        *type = COL_STR;
        *size = (size_t)atoi(s + 2);
    } else {
        return ss_fail(SS_ERR_INPUT, "type '%s' not supported (supported: <i8, <f8, |S<n>)", s ? s : "?");
    }
    return SS_OK;
}

/* ---- compressors -------------------------------------------------------- */

zarr_codec zarr_codec_of(store_compression c)
{
    zarr_codec z = {.id = c == STORE_COMP_NONE ? ZARR_CODEC_NONE : c == STORE_COMP_GZIP ? ZARR_CODEC_ZLIB : ZARR_CODEC_BLOSC,
                    .shuffle = STORE_BLOSC_SHUFFLE};
    z.level = z.id == ZARR_CODEC_ZLIB ? STORE_GZIP_LEVEL : STORE_BLOSC_CLEVEL;
    snprintf(z.cname, sizeof z.cname, "%s", c == STORE_COMP_BLOSC_ZSTD ? "zstd" : STORE_BLOSC_CNAME);
    return z;
}

json_t *zarr_codec_json(const zarr_codec *c)
{
    switch (c->id) {
    case ZARR_CODEC_BLOSC:
        return json_pack("{s:s, s:s, s:i, s:i, s:i}", "id", "blosc", "cname", c->cname, "clevel", c->level, "shuffle",
                         c->shuffle, "blocksize", c->blocksize);
    case ZARR_CODEC_ZLIB: return json_pack("{s:s, s:i}", "id", "zlib", "level", c->level);
    case ZARR_CODEC_GZIP: return json_pack("{s:s, s:i}", "id", "gzip", "level", c->level);
    case ZARR_CODEC_NONE: break;
    }
    return json_null();
}

int zarr_codec_parse(const json_t *j, zarr_codec *c)
{
    memset(c, 0, sizeof *c);
    const char *id = json_string_value(json_object_get(j, "id"));
    if (!j || json_is_null(j)) {
        c->id = ZARR_CODEC_NONE;
    } else if (id && !strcmp(id, "blosc")) {
        c->id = ZARR_CODEC_BLOSC;
        const json_t *cn = json_object_get(j, "cname");
        snprintf(c->cname, sizeof c->cname, "%s", json_is_string(cn) ? json_string_value(cn) : "?");
        c->level = (int)json_integer_value(json_object_get(j, "clevel"));
        c->shuffle = (int)json_integer_value(json_object_get(j, "shuffle"));
        c->blocksize = (int)json_integer_value(json_object_get(j, "blocksize"));
    } else if (id && (!strcmp(id, "zlib") || !strcmp(id, "gzip"))) {
        c->id = id[0] == 'z' ? ZARR_CODEC_ZLIB : ZARR_CODEC_GZIP;
        c->level = (int)json_integer_value(json_object_get(j, "level"));
    } else {
        return ss_fail(SS_ERR_INPUT, "compressor '%s' not supported (blosc, zlib, gzip or null)", id ? id : "?");
    }
    return SS_OK;
}

void zarr_codec_text(const zarr_codec *c, char *out, size_t size)
{
    if (c->id == ZARR_CODEC_BLOSC) {
        const char *sh = c->shuffle == 0   ? "noshuffle"
                         : c->shuffle == 1 ? "shuffle"
                         : c->shuffle == 2 ? "bitshuffle"
                                           : "autoshuffle";
        snprintf(out, size, "blosc:%s:%d:%s", c->cname, c->level, sh);
    } else if (c->id == ZARR_CODEC_ZLIB || c->id == ZARR_CODEC_GZIP) {
        snprintf(out, size, "%s:%d", c->id == ZARR_CODEC_ZLIB ? "zlib" : "gzip", c->level);
    } else {
        snprintf(out, size, "none");
    }
}

size_t zarr_codec_bound(const zarr_codec *c, size_t n)
{
    if (c->id == ZARR_CODEC_NONE) return n;
    if (c->id == ZARR_CODEC_BLOSC) return n + BLOSC_MAX_OVERHEAD;
    return (size_t)compressBound((uLong)n) + 1024;
}

/* ---- .zarray ------------------------------------------------------------ */

static json_t *json_ints(const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *zarr_zarray_json(int rank, const int64_t *shape, const int64_t *chunks, json_t *dtype, const zarr_codec *c,
                         json_t *fill_value)
{
    return json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:s, s:n, s:s}", "zarr_format", 2, "shape",
                     json_ints(shape, rank), "chunks", json_ints(chunks, rank), "dtype", dtype, "compressor",
                     zarr_codec_json(c), "fill_value", fill_value, "order", "C", "filters", "dimension_separator", "/");
}

/* ---- chunks ------------------------------------------------------------- */

int zarr_chunk_encode(const char *path, const zarr_codec *c, size_t elem, int threads, const void *src, size_t n,
                      void *dst, const void **out, size_t *out_n)
{
    *out = dst;
    *out_n = 0;
    if (c->id == ZARR_CODEC_NONE) {
        *out = src;
        *out_n = n;
        return SS_OK;
    }
    if (n > (size_t)BLOSC_MAX_BUFFERSIZE)
        return ss_fail(SS_ERR_INTERNAL, "%s: chunk of %zu bytes too large to encode", path, n);
    if (c->id == ZARR_CODEC_ZLIB) {
        uLongf len = (uLongf)zarr_codec_bound(c, n);
        int e = compress2(dst, &len, src, (uLong)n, c->level);
        *out_n = len;
        return e == Z_OK ? SS_OK : ss_fail(SS_ERR_INTERNAL, "%s: zlib compression failed (%d)", path, e);
    }
    if (c->id != ZARR_CODEC_BLOSC)
        return ss_fail(SS_ERR_INTERNAL, "%s: chunks of this compressor are not written", path);
    /* blosc takes type sizes up to 255; wider records shuffle as bytes */
    size_t typesize = elem >= 1 && elem <= BLOSC_MAX_TYPESIZE ? elem : 1;
    int k = blosc_compress_ctx(c->level, c->shuffle, typesize, n, src, dst, zarr_codec_bound(c, n), c->cname,
                               (size_t)c->blocksize, threads < 1 ? 1 : threads);
    *out_n = k > 0 ? (size_t)k : 0;
    return k > 0 ? SS_OK : ss_fail(SS_ERR_INTERNAL, "%s: blosc compression failed (%d)", path, k);
}

/* Inflates a zlib or gzip stream that must decode to exactly n bytes. */
static int inflate_exact(const char *path, const unsigned char *src, size_t size, unsigned char *dst, size_t n)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* 32: either header */
        return ss_fail(SS_ERR_NOMEM, "%s: cannot start zlib", path);
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)size;
    z.next_out = dst;
    z.avail_out = (uInt)n;
    int e = inflate(&z, Z_FINISH);
    size_t got = z.total_out;
    inflateEnd(&z);
    if (e == Z_STREAM_END && got == n) return SS_OK;
    if (e == Z_STREAM_END) /* not the size of the chunk */
        return ss_fail(SS_ERR_INPUT, "%s: corrupt chunk: decodes to %zu bytes, expected %zu", path, got, n);
    return ss_fail(SS_ERR_INPUT, "%s: corrupt chunk: %s", path,
                   e == Z_BUF_ERROR && z.avail_out == 0 ? "decodes to more bytes than the chunk holds"
                                                         : "not a valid zlib/gzip stream");
}

int zarr_chunk_decode(const char *path, const zarr_codec *c, const void *src, size_t size, void *dst, size_t n)
{
    switch (c->id) {
    case ZARR_CODEC_NONE:
        if (size != n)
            return ss_fail(SS_ERR_INPUT, "%s: corrupt chunk: %zu bytes for a chunk of %zu bytes", path, size, n);
        if (src != dst) memcpy(dst, src, n);
        return SS_OK;
    case ZARR_CODEC_ZLIB:
    case ZARR_CODEC_GZIP: return inflate_exact(path, src, size, dst, n);
    case ZARR_CODEC_BLOSC: {
        size_t nbytes = 0;
        if (blosc_cbuffer_validate(src, size, &nbytes) != 0)
            return ss_fail(SS_ERR_INPUT, "%s: corrupt chunk: not a valid blosc buffer (%zu bytes)", path, size);
        if (nbytes != n)
            return ss_fail(SS_ERR_INPUT, "%s: corrupt chunk: decodes to %zu bytes, expected %zu", path, nbytes, n);
        if (blosc_decompress_ctx(src, dst, n, 1) != (int)n)
            return ss_fail(SS_ERR_INPUT, "%s: corrupt chunk: blosc decompression failed", path);
        return SS_OK;
    }
    }
    return ss_fail(SS_ERR_INTERNAL, "%s: unknown compressor", path);
}

/* ---- files -------------------------------------------------------------- */

/* Writes a whole file as mode says; what: "" or " chunk", for the messages.
 * With make_parent, a missing folder of path is made. */
static int write_whole(const char *path, const void *data, size_t n, zarr_write_mode mode, int make_parent,
                       const char *what)
{
    if (mode == ZARR_WRITE_ATOMIC) {
        char *parent = make_parent ? path_dirname(path) : NULL;
        int rc = !make_parent ? SS_OK : parent ? fs_mkdir_p(parent) : ss_fail(SS_ERR_NOMEM, "out of memory");
        free(parent);
        return rc == SS_OK ? fs_write_atomic(path, data, n) : rc;
    }
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (mode == ZARR_WRITE_NEW_SYNCED ? O_EXCL : O_TRUNC);
    int fd = open(path, flags, 0666);
    if (fd < 0 && errno == ENOENT && make_parent) {
        char *parent = path_dirname(path);
        int rc = parent ? fs_mkdir_p(parent) : ss_fail(SS_ERR_NOMEM, "out of memory");
        free(parent);
        if (rc != SS_OK) return rc;
        fd = open(path, flags, 0666);
    }
    if (fd < 0) return ss_fail(SS_ERR_IO, "%s: cannot create%s: %s", path, what, strerror(errno));
    int bad = fs_write_full(fd, data, n) != 0 || (mode == ZARR_WRITE_NEW_SYNCED && fsync(fd) != 0);
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad) return SS_OK;
    return what[0] ? ss_fail(SS_ERR_IO, "%s: cannot write%s: %s", path, what, strerror(e))
                   : ss_fail(SS_ERR_IO, "%s: write failed: %s", path, strerror(e));
}

int zarr_file_write(const char *path, const void *data, size_t n, zarr_write_mode mode)
{
    return write_whole(path, data, n, mode, 0, "");
}

int zarr_chunk_write(const char *path, const void *data, size_t n, zarr_write_mode mode)
{
    return write_whole(path, data, n, mode, 1, " chunk");
}

int zarr_json_write(const char *path, const json_t *j, size_t flags, zarr_write_mode mode)
{
    char *text = j ? json_dumps(j, flags) : NULL;
    if (!text) return ss_fail(SS_ERR_NOMEM, "%s: cannot serialise JSON", path);
    int rc = zarr_file_write(path, text, strlen(text), mode);
    free(text);
    return rc;
}

int zarr_json_read(const char *path, int missing_ok, json_t **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT && missing_ok) return SS_OK;
        return ss_fail(errno == ENOENT ? SS_ERR_INPUT : SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) return ss_fail(SS_ERR_INPUT, "%s: not a regular file", path);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) return ss_fail(SS_ERR_INPUT, "%s:%d:%d: invalid JSON: %s", path, err.line, err.column, err.text);
    *out = j;
    return SS_OK;
}

int zarr_group_write(const char *dir, const json_t *attrs, size_t flags, zarr_write_mode mode)
{
    char *fg = path_join(dir, ".zgroup"), *fa = attrs ? path_join(dir, ".zattrs") : NULL;
    json_t *g = json_pack("{s:i}", "zarr_format", 2);
    int rc = fg && (fa || !attrs) && g ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = zarr_json_write(fg, g, flags, mode);
    if (rc == SS_OK && attrs) rc = zarr_json_write(fa, attrs, flags, mode);
    json_decref(g);
    free(fg);
    free(fa);
    return rc;
}

/* ---- OME-NGFF 0.4 ------------------------------------------------------- */

json_t *zarr_ngff_multiscales(const char *name, const char *axes, const double voxel[3], const char *unit,
                              const char *dataset)
{
    json_t *list = json_array(), *scale = json_array();
    int ok = list && scale;
    for (const char *p = axes; ok && *p; p++) {
        const char *space = strchr("zyx", *p);
        const char *type = space ? "space" : *p == 'r' || *p == 't' ? "time" : *p == 'c' ? "channel" : NULL;
        json_t *axis = json_pack("{s:s#}", "name", p, (int)1);
        ok = axis != NULL;
        if (ok && type) ok = json_object_set_new(axis, "type", json_string(type)) == 0;
        if (ok && space && unit && unit[0]) ok = json_object_set_new(axis, "unit", json_string(unit)) == 0;
        if (ok) ok = json_array_append_new(scale, json_real(space ? voxel[space - "zyx"] : 1.0)) == 0;
        if (ok) ok = json_array_append_new(list, axis) == 0;
        else json_decref(axis);
    }
    if (!ok) {
        json_decref(list);
        json_decref(scale);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:o, s:[{s:s, s:[{s:s, s:o}]}]}", "version", "0.4", "name", name, "axes", list,
                     "datasets", "path", dataset, "coordinateTransformations", "type", "scale", "scale", scale);
}
