/* Internal: what a store backend implements. store.c dispatches to it and
 * holds what is common (locking, argument checks, dtype helpers). */
#ifndef SS_STORE_IMPL_H
#define SS_STORE_IMPL_H

#include "store.h"

typedef struct store_backend store_backend;

struct store {
    store_format fmt;
    char *path;      /* the container: <dir>/<sample>.h5 or .zarr */
    char *workdir;   /* runner's private folder */
    int lock_fd;     /* -1 when not locked */
    store_compression comp; /* for arrays written from now on */
    int layout_version;     /* the container's (backends that know it set it in open) */
    const store_backend *be;
    void *impl;
};

struct store_writer {
    store *s;
    char *stage;
    void *impl;
};

struct store_array {
    store *s;
    int writable;
    int view_rank;   /* > 0 after store_array_drop_first_axis: read as a[0], of this rank */
    void *impl;
};

struct store_backend {
    /* Sets s->impl and s->workdir (malloc'd). create: make the container. */
    int (*open)(store *s, int create);
    void (*close)(store *s);
    int (*recover)(store *s);
    int (*list_stages)(store *s, char ***names);
    int (*has_stage)(store *s, const char *stage);
    int (*stage_attrs)(store *s, const char *stage, json_t **attrs);
    int (*list_arrays)(store *s, const char *stage, char ***names);
    int (*stage_begin)(store_writer *w);      /* w->s, w->stage set */
    int (*writer_attr)(store_writer *w, const char *key, json_t *value);
    int (*writer_array)(store_writer *w, const char *name, ss_dtype dt, int rank,
                        const int64_t *shape, const int64_t *chunk,
                        const array_meta *meta, store_array *a); /* fills a->impl */
    int (*writer_table)(store_writer *w, const char *name, const table_view *t);
    int (*commit)(store_writer *w);           /* does not free w */
    void (*abort)(store_writer *w);           /* does not free w */
    int (*array_open)(store *s, const char *stage, const char *name, store_array *a);
    int (*array_info)(store_array *a, array_info *info);
    int (*array_read)(store_array *a, const int64_t *start, const int64_t *count,
                      ss_dtype mem, void *buf);
    int (*array_write)(store_array *a, const int64_t *start, const int64_t *count,
                       ss_dtype mem, const void *buf);
    void (*array_close)(store_array *a);
    int (*table_read)(store *s, const char *stage, const char *name, table_data *t);
    int (*is_table)(store *s, const char *stage, const char *name);
};

extern const store_backend store_backend_hdf5;
extern const store_backend store_backend_zarr;

/* Default chunk shape: whole planes (last two axes), as many as fit in about
 * 1 MiB, at least one; leading axes 1. A plane over STORE_MAX_CHUNK_BYTES is
 * chunked in blocks of rows of at most that size. */
#define STORE_MAX_CHUNK_BYTES ((int64_t)1 << 30)
void store_default_chunk(int rank, const int64_t *shape, size_t elem, int64_t *chunk);
/* Checks that a hyperslab lies inside shape. */
int store_check_slab(const char *what, int rank, const int64_t *shape,
                     const int64_t *start, const int64_t *count);
/* Blosc settings shared by both backends (the compressor by store_compression). */
#define STORE_BLOSC_CNAME "lz4"
#define STORE_BLOSC_CLEVEL 5
#define STORE_BLOSC_SHUFFLE 1 /* byte shuffle */
#define STORE_GZIP_LEVEL 4    /* h5py's and zarr's default deflate level */

#endif
