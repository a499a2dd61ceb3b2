/* The container store: one container per sample, one group per stage.
 *
 * The store knows nothing of stages or the runner. It offers:
 *   - reading committed stage groups (attributes, arrays, tables);
 *   - writing a new stage group off to the side and committing it atomically
 *     (DESIGN.md invariant 1): until store_stage_commit returns SS_OK nothing
 *     of the new group is visible, and a process killed at any instant leaves
 *     every earlier committed group readable and byte-identical;
 *   - a private work directory per container for locks, checkpoints and status
 *     files, which the runner owns.
 * The on-disk layout of both backends is specified in schemas/container-layout.md.
 *
 * Ownership: every *_open / *_begin / *_create returns an object the caller
 * frees with the matching close / commit / abort. Strings passed in are copied. */
#ifndef SS_STORE_H
#define SS_STORE_H

#include <jansson.h>
#include <stdio.h>
#include <stdint.h>

#define STORE_LAYOUT_VERSION 2
#define STORE_MAX_RANK 8

typedef enum { STORE_HDF5, STORE_ZARR } store_format;

/* How arrays are compressed, chosen per run (run.compression). All are
 * lossless. blosc-lz4 is the default (fast); blosc-zstd is smaller and slower;
 * gzip (HDF5 deflate / Zarr zlib) needs no plugin in any HDF5 reader (Fiji,
 * MATLAB, HDFView); none stores chunks as they are. */
typedef enum {
    STORE_COMP_BLOSC_LZ4, STORE_COMP_BLOSC_ZSTD, STORE_COMP_GZIP, STORE_COMP_NONE,
    STORE_COMP_COUNT
} store_compression;
/* "blosc-lz4", "blosc-zstd", "gzip", "none". */
const char *store_compression_name(store_compression c);
/* 0 and *c set when name is one of the above; SS_ERR_CONFIG otherwise. */
int store_compression_from_name(const char *name, store_compression *c);
/* SS_OK when this build can write c; SS_ERR_CONFIG with a message naming what
 * is missing otherwise (blosc-zstd needs a blosc library built with zstd). */
int store_compression_check(store_compression c);

typedef enum {
    DT_U8, DT_U16, DT_I16, DT_U32, DT_I32, DT_I64, DT_F32, DT_F64, DT_COUNT
} ss_dtype;
size_t dtype_size(ss_dtype t);
const char *dtype_name(ss_dtype t);              /* "uint16", "float32", ... */
int dtype_from_name(const char *name, ss_dtype *t);
/* Converts n elements between dtypes (numpy-style casts: float to int truncates
 * toward zero and saturates; NaN becomes 0). */
void dtype_convert(void *dst, ss_dtype dt, const void *src, ss_dtype st, size_t n);

/* Image metadata carried by arrays. axes: lower-case axis letters, one per
 * dimension, e.g. "zyx" or "rzyx". voxel: physical size of one voxel along z,
 * y, x (always these three, whatever the rank). unit: "micrometer". */
typedef struct {
    char axes[STORE_MAX_RANK + 1];
    double voxel[3];
    char unit[32];
} array_meta;

typedef struct {
    int rank;
    int64_t shape[STORE_MAX_RANK];
    int64_t chunk[STORE_MAX_RANK];
    ss_dtype dtype;
    int has_meta;      /* axes/voxel/unit present */
    array_meta meta;
    int64_t stored_bytes; /* compressed bytes on disk (0 when unknown) */
    char compressor[64];  /* "blosc:lz4:5:shuffle", "gzip:4:shuffle" or "none" */
} array_info;

/* The metadata an output derived from this array carries: the array's own,
 * or when it has none, voxel 1 x 1 x 1 micrometer with axes "zyx" (rank 3)
 * or "rzyx" (rank 4). */
array_meta array_meta_of(const array_info *info);

/* Metric tables: named columns of float64, int64 or short strings. */
typedef enum { COL_F64, COL_I64, COL_STR } col_type;
#define TABLE_STR_LEN 64
typedef struct {
    const char *name;
    col_type type;
    const double *f64;       /* n_rows values, for COL_F64 */
    const int64_t *i64;      /* for COL_I64 */
    const char *const *str;  /* for COL_STR, each at most TABLE_STR_LEN-1 bytes */
} table_col;
typedef struct {
    int n_cols;
    int64_t n_rows;
    const table_col *cols;
} table_view;
/* A table read back: owns its memory; free with table_free. */
typedef struct {
    int n_cols;
    int64_t n_rows;
    char **names;
    col_type *types;
    void **data; /* double*, int64_t*, or char[n_rows][TABLE_STR_LEN] */
} table_data;
void table_free(table_data *t);
/* A table as CSV: a header of column names, then one line per row; numbers
 * with 17 significant digits ("nan", "inf"), strings quoted where they hold
 * a comma, a quote or a newline. 0, or -1 when writing failed. */
int table_write_csv(const table_data *t, FILE *f);

typedef struct store store;
typedef struct store_writer store_writer;
typedef struct store_array store_array;

/* Opens a container. flags: STORE_OPEN_CREATE makes it (and parent
 * directories) if missing; STORE_OPEN_REPAIRABLE accepts a container whose
 * HDF5 index is damaged or missing while its committed stage files are there:
 * it is opened with the index rebuilt from them in memory
 * (store_index_problem says so), and store_recover writes that index.
 * CREATE implies REPAIRABLE; without either such a container is an input
 * error whose message says how to repair it. Callers that write must hold
 * the container lock (store_lock) and call store_recover first.
 * The path is <dir>/<sample>.h5 or <dir>/<sample>.zarr. */
#define STORE_OPEN_CREATE 1
#define STORE_OPEN_REPAIRABLE 2
int store_open(const char *path, store_format fmt, int flags, store **out);
void store_close(store *s);
store_format store_get_format(const store *s);
/* Layout version of the container as found (1..STORE_LAYOUT_VERSION), or
 * STORE_LAYOUT_VERSION for one just made. */
int store_layout_version(const store *s);
const char *store_path(const store *s);
/* Compression of the arrays and tables written from now on (default
 * STORE_COMP_BLOSC_LZ4). Committed arrays keep theirs; each stage records the
 * one it was written with (attribute "compression"). */
void store_set_compression(store *s, store_compression c);
store_compression store_get_compression(const store *s);
/* Private directory for the runner's own files (locks, checkpoints, status);
 * exists after store_open(create=1). Never holds committed stage data of the
 * Zarr backend; in the HDF5 backend the committed stage files live beside it. */
const char *store_workdir(const store *s);

/* Exclusive advisory lock on the container for writing (flock on a file in
 * the work directory). Returns SS_ERR_IO with a message naming the holder if
 * another process has it. Released by store_close. */
int store_lock(store *s);
/* Removes what killed runs left behind (temporary files and groups, stage
 * files no committed index refers to), and writes an index or commit order
 * that was found damaged, rebuilt from the committed stages. Requires the
 * lock. */
int store_recover(store *s);
/* What store_recover rebuilt (one line naming it, for a warning), or NULL. */
const char *store_repaired(const store *s);
/* Why the index had to be rebuilt in memory at open (STORE_OPEN_REPAIRABLE),
 * or NULL when it was intact. Cleared once store_recover has written it. */
const char *store_index_problem(const store *s);

/* Committed stages, in commit order. *names is a NULL-terminated array the
 * caller frees with store_names_free. */
int store_list_stages(store *s, char ***names);
void store_names_free(char **names);
/* 1 if stage is committed, 0 if not, negative on error. */
int store_has_stage(store *s, const char *stage);
/* All attributes of a committed stage group as a JSON object (new reference). */
int store_stage_attrs(store *s, const char *stage, json_t **attrs);
/* Arrays and tables of a committed stage (NULL-terminated names). */
int store_list_arrays(store *s, const char *stage, char ***names);

/* Writing a stage: begin, add arrays/tables/attributes, then commit or abort.
 * Beginning a stage that is already committed is allowed: the old group stays
 * visible and intact until the commit replaces it in one atomic step. */
int store_stage_begin(store *s, const char *stage, store_writer **w);
/* Attribute values may be any JSON (borrowed: the store copies what it needs);
 * objects and arrays of non-numbers are stored as JSON text in HDF5 (see the
 * layout spec). */
int store_writer_attr(store_writer *w, const char *key, json_t *value);
/* chunk may be NULL (the store picks plane-shaped chunks of about 1 MiB). */
int store_writer_array(store_writer *w, const char *name, ss_dtype dt, int rank,
                       const int64_t *shape, const int64_t *chunk,
                       const array_meta *meta, store_array **a);
int store_writer_table(store_writer *w, const char *name, const table_view *t);
/* The same for a table held as table_data (one read back, or built whole). */
int store_writer_table_data(store_writer *w, const char *name, const table_data *t);
/* Arrays created with store_writer_array must be closed before the commit;
 * a write error that only shows when an array is flushed is reported by
 * store_commit_stage. */
int store_commit_stage(store_writer *w);   /* frees w whatever the outcome */
void store_abort_stage(store_writer *w);   /* frees w, removes its files */

/* Arrays: open from a committed stage; read/write hyperslabs. mem is the
 * dtype of buf; the store converts. count[i] elements from start[i]. */
int store_array_open(store *s, const char *stage, const char *name, store_array **a);
int store_array_info(store_array *a, array_info *info);
int store_array_read(store_array *a, const int64_t *start, const int64_t *count,
                     ss_dtype mem, void *buf);
int store_array_write(store_array *a, const int64_t *start, const int64_t *count,
                      ss_dtype mem, const void *buf);
void store_array_close(store_array *a);
/* From now on a reads as a[0] (numpy's indexing): the array without its first
 * axis, which must have length 1. Rank, shape, chunks and axes lose their
 * first entry; voxel size and unit stay; hyperslabs are given in the new rank.
 * Lets a reader take a repeats array R x Z x Y x X with R = 1 as its stack. */
int store_array_drop_first_axis(store_array *a);

int store_table_read(store *s, const char *stage, const char *name, table_data *t);
/* 1 if name in stage is a table, 0 if an array, negative if neither. */
int store_is_table(store *s, const char *stage, const char *name);

/* ---- integrity (schemas/container-layout.md, "Checksums") --------------
 *
 * Every array and table a stage commits records its shape, chunks, dtype and
 * compressor in the stage attribute sirenstack_arrays, and an XXH3-64
 * checksum of every chunk. Opening an array compares its metadata with that
 * record; reading checks every chunk it decodes against its checksum, once
 * per open handle (a mismatch is SS_ERR_INPUT naming the container, stage,
 * array and chunk). Stages committed before checksums existed have no
 * record: they are read as they are, and are "unverified". */

/* Checksum verification of reads, on by default; SIRENSTACK_VERIFY=0 (or
 * off, no, false) in the environment turns it off for every store opened
 * afterwards (trusted local disks). Metadata is compared either way. */
#define STORE_VERIFY_ENV "SIRENSTACK_VERIFY"
void store_set_verify(store *s, int on);
int store_get_verify(const store *s);

/* Cheap check of a committed stage before it is reused: its record is there,
 * every array and table it names exists with the committed metadata and
 * checksum list, and every chunk it stored is there (chunk files, HDF5 chunk
 * records); no chunk is decoded. SS_OK when intact or unverified;
 * SS_ERR_INPUT with the first problem as the message when damaged; other
 * codes for errors of the check itself. */
int store_stage_check(store *s, const char *stage);

typedef enum { STORE_PROBLEM, STORE_NOTE } store_severity;
/* One finding of a full check: a problem (damage) or a note (unverified, or
 * leftovers the next run removes). member is NULL for the stage or the
 * container itself; stage is NULL for the index. */
typedef void (*store_finding_fn)(void *ctx, store_severity sev, const char *stage, const char *member,
                                 const char *message);
typedef enum { STORE_INTACT, STORE_UNVERIFIED, STORE_DAMAGED } store_state;
/* Full check of a committed stage: the cheap check, and every stored chunk
 * decoded and compared with its checksum, one chunk in memory at a time.
 * Every problem goes to fn; *state says how the stage came out; *chunks
 * counts the chunks checked. Returns SS_OK unless the check itself failed. */
int store_stage_verify(store *s, const char *stage, store_finding_fn fn, void *ctx, store_state *state,
                       int64_t *chunks);
/* The container's own files: the HDF5 index and its links, the Zarr commit
 * order and image series. Returns the number of problems reported. */
int store_index_verify(store *s, store_finding_fn fn, void *ctx);

/* ---- archives ------------------------------------------------------------
 *
 * A packed archive is one self-contained HDF5 file (no external links): the
 * root attributes of an index plus sirenstack_packed = 1 and the attributes
 * given, one group per committed stage holding exactly what its stage file
 * held (attributes, datasets, filters, chunks, checksums), and the group
 * ".sirenstack" with named texts (the configs). store_open reads it like
 * any HDF5 container, read-only (STORE_OPEN_CREATE, store_recover and
 * store_stage_begin refuse it).
 *
 * store_pack writes the archive of s (an HDF5 container; a Zarr one is
 * copied into an HDF5 container first, store_copy_stage) to dest, under a
 * temporary name renamed into place. texts: name -> string. */
int store_pack(store *s, const char *dest, const json_t *attrs, const json_t *texts);
/* 1 for a packed archive. */
int store_is_packed(store *s);
/* A text of an archive (*text NULL when it has none, or s is no archive). */
int store_archive_text(store *s, const char *name, char **text);
/* Copies committed stage `stage` of from into to (begin, every attribute of
 * the stage's own, every array chunk by chunk and every table, commit), with
 * the compression the stage records. The caller holds to's lock. */
int store_copy_stage(store *from, store *to, const char *stage);

/* Damage records: what a full check or a failed read found wrong with a
 * committed stage, kept in the work directory until that stage is committed
 * again, so that status reports it and the next run recomputes it.
 * store_mark_damaged records it (a failure to write only loses the record;
 * why NULL removes the record: a full check found the stage intact);
 * store_damage_of gives the reason (malloc'd) when a record is there for the
 * stage as it is committed now, else NULL. */
int store_mark_damaged(store *s, const char *stage, const char *why);
char *store_damage_of(store *s, const char *stage);
/* Stages whose damage the reads and checks of this store found since the
 * last call: a JSON object stage -> reason (new reference, empty when none). */
json_t *store_damage_take(store *s);

/* Names a stage, array or sample may take: [A-Za-z0-9_-], 1 to 100 chars. */
int store_valid_name(const char *name);

/* Versions of the libraries behind the store, for provenance. */
const char *store_hdf5_version(void);
const char *store_blosc_version(void);

#endif
