/* Zarr v2 on a directory store, in the form zarr-python 2 and numcodecs read
 * and write it: the numpy type strings of the store dtypes and of table
 * fields, the compressor of the chunks and its .zarray JSON, the .zarray of
 * an array, chunk encoding and decoding, the files of groups and arrays, and
 * the OME-NGFF 0.4 "multiscales" entry of an image. The Zarr backend of the
 * container store and the OME-Zarr export both write through this one copy,
 * so what the one writes, readers of the other read the same way.
 *
 * Chunks hold memory as it is under little-endian type strings, so this
 * builds on little-endian hosts only.
 *
 * Errors are negative SS_ERR_* codes with a one-line message: SS_ERR_INPUT
 * for what a file says that is not supported (the message without the file
 * name, for the caller to prefix, unless a path is given), SS_ERR_IO,
 * SS_ERR_NOMEM, SS_ERR_INTERNAL. JSON results are new references, NULL when
 * out of memory or when a string is not UTF-8. */
#ifndef SS_ZARR_H
#define SS_ZARR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* How zarr-python writes its metadata: sorted keys, indent 4. The metadata
 * is then a function of its content only. */
#define ZARR_JSON_FLAGS (JSON_INDENT(4) | JSON_SORT_KEYS)

/* ---- dtypes ----------------------------------------------------------------- */

/* The numpy type string of t: "|u1", "<u2", ..., "<f8"; NULL for no dtype. */
const char *zarr_dtype_string(ss_dtype t);
/* The dtype of a numpy type string: little-endian ("<"), and for one-byte
 * types any byte order ("|", "<", ">"). SS_ERR_INPUT for any other. */
int zarr_dtype_parse(const char *s, ss_dtype *t);

/* A field of a table's structured dtype: "<i8", "<f8", or "|S<size>"
 * (COL_STR, size 1..99999 bytes). */
json_t *zarr_field_json(col_type type, size_t size);
/* *size: the field's bytes. SS_ERR_INPUT for any other type string. */
int zarr_field_parse(const char *s, col_type *type, size_t *size);

/* ---- compressors -------------------------------------------------------- */

/* The numcodecs compressors of chunks: "blosc", "zlib" (RFC 1950 streams),
 * "gzip" (RFC 1952; decoded, never encoded), and none (null). */
typedef enum { ZARR_CODEC_NONE, ZARR_CODEC_BLOSC, ZARR_CODEC_ZLIB, ZARR_CODEC_GZIP } zarr_codec_id;

typedef struct {
    zarr_codec_id id;
    char cname[16]; /* blosc: "lz4", "zstd", ... */
    int level;      /* blosc clevel; zlib and gzip level */
    int shuffle;    /* blosc: 0 none, 1 byte, 2 bit, -1 automatic */
    int blocksize;  /* blosc: 0 automatic */
} zarr_codec;

/* The compressor arrays are written with under c: blosc (lz4 or zstd) at
 * the store's blosc settings, zlib at its deflate level, or none. */
zarr_codec zarr_codec_of(store_compression c);
/* The "compressor" of a .zarray (JSON null for none). */
json_t *zarr_codec_json(const zarr_codec *c);
/* The compressor a .zarray's "compressor" names; j NULL or null: none.
 * SS_ERR_INPUT for an id other than blosc, zlib and gzip. */
int zarr_codec_parse(const json_t *j, zarr_codec *c);
/* As `inspect` names it: "blosc:lz4:5:shuffle", "zlib:4", "gzip:6", "none". */
void zarr_codec_text(const zarr_codec *c, char *out, size_t size);
/* The most bytes an encoded chunk of n bytes takes (zlib's bound with room
 * for a gzip header; blosc's overhead; n itself for none). */
size_t zarr_codec_bound(const zarr_codec *c, size_t n);

/* ---- .zarray ------------------------------------------------------------ */

/* The .zarray of an array we write: zarr_format 2, order "C", no filters,
 * chunk keys separated by "/". dtype: a type string or a list of [name,
 * type] fields; fill_value: JSON null for none. Both are stolen. */
json_t *zarr_zarray_json(int rank, const int64_t *shape, const int64_t *chunks, json_t *dtype, const zarr_codec *c,
                         json_t *fill_value);

/* ---- chunks ------------------------------------------------------------- */

/* Encodes the n bytes of src, elements of elem bytes (blosc shuffles by
 * them), into dst of zarr_codec_bound(c, n) bytes with up to threads
 * threads; *out: what to store (src itself for none), *out_n: its size.
 * path names the chunk in messages. */
int zarr_chunk_encode(const char *path, const zarr_codec *c, size_t elem, int threads, const void *src, size_t n,
                      void *dst, const void **out, size_t *out_n);
/* Decodes the size bytes of src into dst, which they must fill exactly (n
 * bytes). For none, src may be dst. SS_ERR_INPUT "<path>: corrupt chunk: ..."
 * when they do not. */
int zarr_chunk_decode(const char *path, const zarr_codec *c, const void *src, size_t size, void *dst, size_t n);

/* ---- files -------------------------------------------------------------- */

typedef enum {
    /* Created or truncated, not synced: a file of a tree that is fsynced
     * whole before one rename makes it visible. */
    ZARR_WRITE_IN_TREE,
    /* Created (it must not exist yet) and fsynced. */
    ZARR_WRITE_NEW_SYNCED,
    /* Replaced atomically: a temporary beside it, fsync, rename, fsync of
     * the folder (fs_write_atomic). */
    ZARR_WRITE_ATOMIC,
} zarr_write_mode;

int zarr_file_write(const char *path, const void *data, size_t n, zarr_write_mode mode);
/* A chunk file: as zarr_file_write, and the folders of its key made first
 * where missing. */
int zarr_chunk_write(const char *path, const void *data, size_t n, zarr_write_mode mode);
/* j serialised with json_dumps flags. */
int zarr_json_write(const char *path, const json_t *j, size_t flags, zarr_write_mode mode);
/* Reads a JSON file into *out (a new reference). With missing_ok, a missing
 * file is SS_OK and *out NULL. Not a regular file, or not JSON: SS_ERR_INPUT
 * naming the file (and line:column). */
int zarr_json_read(const char *path, int missing_ok, json_t **out);
/* Makes the existing folder dir a group: .zgroup, and .zattrs holding attrs
 * unless attrs is NULL. */
int zarr_group_write(const char *dir, const json_t *attrs, size_t flags, zarr_write_mode mode);

/* ---- OME-NGFF 0.4 ------------------------------------------------------- */

/* The "multiscales" entry of a one-level image called name, whose level is
 * the array at dataset: one axis per letter of axes (z, y, x of type space,
 * with unit unless it is empty; r and t of type time; c of type channel;
 * any other without a type), and a scale of voxel[] (z, y, x) on the
 * spatial axes and 1 on the others. */
json_t *zarr_ngff_multiscales(const char *name, const char *axes, const double voxel[3], const char *unit,
                              const char *dataset);

#endif
