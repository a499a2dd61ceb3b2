/* Internal: what a store backend implements. store.c dispatches to it and
 * holds what is common (locking, argument checks, dtype helpers). */
#ifndef SS_STORE_IMPL_H
#define SS_STORE_IMPL_H

#include "store.h"
#include "util.h"

typedef struct store_backend store_backend;

struct store {
    store_format fmt;
    char *path;      /* the container: <dir>/<sample>.h5 or .zarr */
    char *workdir;   /* runner's private folder */
    int lock_fd;     /* -1 when not locked */
    store_compression comp; /* for arrays written from now on */
    int layout_version;     /* the container's (backends that know it set it in open) */
    int verify;             /* reads check chunk checksums */
    char *index_problem;    /* set by open: the index was rebuilt in memory, and why */
    char *repaired;         /* set by recover: what it rebuilt */
    json_t *damage_seen;    /* stage -> reason, found by reads */
    const store_backend *be;
    void *impl;
};

struct store_writer {
    store *s;
    char *stage;
    json_t *arrays;  /* name -> committed entry (the stage attribute sirenstack_arrays) */
    void *impl;
};

struct store_array {
    store *s;
    int writable;
    int view_rank;   /* > 0 after store_array_drop_first_axis: read as a[0], of this rank */
    char *stage, *name;
    void *impl;
};

struct store_backend {
    /* Sets s->impl and s->workdir (malloc'd). flags: STORE_OPEN_*. */
    int (*open)(store *s, int flags);
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
    /* Checks member name of a committed stage against its entry (metadata,
     * checksum list, every stored chunk present) and with content every
     * stored chunk against its checksum; reports each problem to fn and
     * counts the chunks decoded in *chunks. Returns the number of problems,
     * or a negative code when the check itself failed. With stop, returns
     * at the first problem. */
    int (*check_member)(store *s, const char *stage, const char *name, const json_t *entry, int content, int stop,
                        store_finding_fn fn, void *ctx, int64_t *chunks);
    /* The index (HDF5) or commit order and series (Zarr); problems count. */
    int (*check_index)(store *s, store_finding_fn fn, void *ctx);
    /* Optional (HDF5): store_pack, store_is_packed, store_archive_text. */
    int (*pack)(store *s, const char *dest, const json_t *attrs, const json_t *texts);
    int (*is_packed)(store *s);
    int (*archive_text)(store *s, const char *name, char **text);
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

/* ---- checksums (store_verify.c) ---------------------------------------- */

#define STORE_SUM_ALGORITHM "xxh3-64"
#define STORE_ARRAYS_ATTR "sirenstack_arrays"       /* stage attribute: what the stage committed */
#define STORE_STAGE_ATTR "sirenstack_stage"         /* stage attribute: the stage's name */
#define STORE_COMMIT_TIME_ATTR "sirenstack_commit_time" /* stage attribute: UTC, microseconds */

/* The chunks of one array or table, in C order of the chunk grid. */
typedef struct {
    int64_t n;
    uint64_t *sum;         /* XXH3-64 of the chunk's elements inside the array */
    unsigned char *stored; /* 1: the chunk was written; 0: never (Zarr: no chunk file, reads as fill) */
    unsigned char *seen;   /* reading: verified through this handle; writing: summed */
} store_sums;
int store_sums_init(store_sums *c, int64_t n);
void store_sums_free(store_sums *c);
/* ["<16 hex digits>" | null, ...] */
json_t *store_sums_json(const store_sums *c);
/* SS_ERR_INPUT naming where when j is not a list of n checksums. */
int store_sums_from_json(const json_t *j, int64_t n, const char *where, store_sums *c);

/* The chunk grid: number of chunks; the C-order index of chunk idx and back;
 * the elements of chunk idx inside the array (start and extent). */
int64_t store_chunk_count(int rank, const int64_t *shape, const int64_t *chunk);
int64_t store_chunk_linear(int rank, const int64_t *shape, const int64_t *chunk, const int64_t *idx);
void store_chunk_index(int rank, const int64_t *shape, const int64_t *chunk, int64_t linear, int64_t *idx);
void store_chunk_region(int rank, const int64_t *shape, const int64_t *chunk, const int64_t *idx, int64_t *start,
                        int64_t *ext);
/* Calls fn for every chunk the slab (start, count) touches, in C order, with
 * the chunk's index, its region inside the array and whether the slab covers
 * that region whole; stops at the first non-zero return and returns it. */
typedef int (*store_chunk_fn)(void *ctx, const int64_t *idx, const int64_t *rstart, const int64_t *rext, int whole);
int store_for_chunks(int rank, const int64_t *shape, const int64_t *chunk, const int64_t *start, const int64_t *count,
                     store_chunk_fn fn, void *ctx);
/* XXH3-64 of the block (offset off, extent ext) of a C-order buffer of
 * extent dims whose elements have elem bytes, taken in C order: the checksum
 * of a chunk is that of its region inside the array, in the file's (little
 * endian) element layout, whatever padding the stored chunk has. */
uint64_t store_hash_block(const void *buf, int rank, const int64_t *dims, const int64_t *off, const int64_t *ext,
                          size_t elem);

/* An entry of sirenstack_arrays: {"shape", "chunks", "dtype" (a name, or
 * [[field, numpy type], ...] for tables), "compressor", "checksum"}. dtype
 * is stolen. */
json_t *store_entry_new(int rank, const int64_t *shape, const int64_t *chunk, json_t *dtype, const char *compressor);
/* 0 when found describes what committed does; else 1 and what differs in why. */
int store_entry_differs(const json_t *committed, const json_t *found, sbuf *why);
/* SS_OK when found (stolen) describes what committed does; else the
 * difference, as damage of stage/name. */
int store_check_entry(store *s, const char *stage, const char *name, const json_t *committed, json_t *found);
/* The committed entry of stage/name (a new reference), or NULL when the
 * stage has no record (committed before checksums). SS_ERR_INPUT when the
 * stage has a record that does not name the member. */
int store_committed_entry(store *s, const char *stage, const char *name, json_t **entry);
/* Where a chunk is: "chunk (0,3,0,0): r 0, z 3" (axes: letters or NULL). */
void store_chunk_text(sbuf *b, int rank, const int64_t *shape, const int64_t *chunk, const int64_t *idx,
                      const char *axes, int table);
/* A commit of stage removes its damage record. */
void store_clear_damage(store *s, const char *stage);
/* Reads verify unless STORE_VERIFY_ENV says otherwise. */
int store_verify_default(void);
/* Records that stage is damaged for store_damage_seen; returns SS_ERR_INPUT
 * with the message "<container>: stage 'S', 'A': <what>" (what: printf;
 * name NULL: the stage itself). */
int store_fail_damaged(store *s, const char *stage, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* For the backends' check_member: the message of the error just set, as a
 * problem; returns 1 (one problem) for code SS_ERR_INPUT, else code. */
int store_finding_of(int code, store_finding_fn fn, void *ctx, const char *stage, const char *name);

#endif
