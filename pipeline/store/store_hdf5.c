/* HDF5 backend of the store.
 *
 * HDF5 has no journal: a process killed while writing a file can corrupt the
 * whole file. So committed data never lives in a file that is being written:
 *
 *   <dir>/<sample>.h5                    the index: one external link per stage,
 *                                        rewritten whole and renamed into place
 *   <dir>/<sample>.h5.d/stages/<stage>.<uniq>.h5
 *                                        one file per committed stage, written
 *                                        once, never modified afterwards
 *   <dir>/<sample>.h5.d/                 the runner's work directory
 *
 * A commit writes the stage file under a temporary name, fsyncs and renames it,
 * then writes a new index beside the old one, fsyncs and renames it over the
 * old one. The index rename is the commit point. Readers (h5py, HDFView) open
 * <sample>.h5 and follow the external links transparently; HDF5 resolves the
 * relative link targets against the index file's own folder.
 * See schemas/container-layout.md. */
#include "blosc_filter.h"
#include "store_impl.h"
#include "canonjson.h"
#include "error.h"
#include "util.h"

#include <blosc.h>
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAGE_SUBDIR "stages"
#define LAYOUT_ATTR "sirenstack_layout_version"
#define TABLE_ATTR "sirenstack_table"
#define COMMITTED_ATTR "sirenstack_committed"
/* On every dataset of a stage: the XXH3-64 of each chunk, uint64 in C order
 * of the chunk grid (schemas/container-layout.md, "Checksums"). */
#define SUMS_ATTR "sirenstack_checksums"
#define PACKED_ATTR "sirenstack_packed"
#define ARCHIVE_META ".sirenstack" /* the archive's own group: the configs (no stage name starts with '.') */
#define TABLE_MAX_BYTES ((uint64_t)1 << 30) /* as read back into table_data, as in the Zarr store */

typedef struct {
    char *stage;
    char *file; /* relative to the index's folder: <sample>.h5.d/stages/<stage>.<uniq>.h5 */
} index_entry;

typedef struct {
    char *dir;       /* folder holding the index */
    char *base;      /* <sample>.h5 */
    char *stagedir;  /* <workdir>/stages */
    index_entry *entries;
    int n;
    char *rebuilt;   /* with s->index_problem: what recovery says once it wrote the index */
    int packed;      /* a packed archive (store_pack): stages are groups of one file, read-only */
    hid_t archive;   /* the archive, open while the store is (packed only) */
} h5store;

typedef struct {
    hid_t file;
    store_compression comp; /* of every array and table of this stage */
    char *tmp_path;   /* absolute-ish path of the temporary stage file */
    char *final_rel;  /* relative path once committed */
    int failed;       /* first error an array close could not report */
    char *failed_msg;
    struct h5array **open;  /* arrays handed out and not closed yet */
    struct h5array **done;  /* arrays closed: their checksums are finished at the commit */
    int n_open, n_done;
} h5writer;

typedef struct h5array {
    hid_t file; /* owned only when the array was opened from a committed stage */
    hid_t dset;
    int owns_file;
    h5writer *hw;     /* arrays being written: their writer (NULL once it committed or aborted) */
    char *name;       /* arrays being written */
    int rank;
    int64_t shape[STORE_MAX_RANK], chunk[STORE_MAX_RANK];
    ss_dtype dtype;   /* the file's element type (arrays) */
    int table;
    hid_t rtype;      /* memory type of the file's element layout; owned for tables */
    size_t elem;
    char axes[STORE_MAX_RANK + 1];
    int has_sums;     /* reading: checksums to verify against; writing: being made */
    store_sums sums;
    void *scratch;    /* reads: the file-typed copy of a slab */
    size_t scratch_size;
    void *chunk_buf;  /* one chunk, for its checksum */
    size_t chunk_buf_size;
    int direct;       /* the chunks can be decoded here: DIRECT_RAW, DIRECT_BLOSC, or 0 */
    void *stored_buf; /* a chunk as stored, for direct reads */
    size_t stored_buf_size;
} h5array;

enum { DIRECT_RAW = 1, DIRECT_BLOSC = 2 };

/* The arrays of a stage (defined with the reading code, used by the writer). */
static int member_fill(h5array *ha, hid_t d, const char *what);
static json_t *member_entry(const h5array *ha);
static void member_release(h5array *ha);
static int sums_write(hid_t d, const store_sums *c);
static int writer_track(h5array ***list, int *n, h5array *ha);
static int writer_finish_arrays(h5writer *hw, int commit);

static int h5_init(void)
{
    static int done;
    if (done) return SS_OK;
    /* No cleanup at exit: every file is closed explicitly, and after a failed
     * write (disk full) HDF5 1.10 crashes closing the broken file a second
     * time at exit. Must precede every other HDF5 call. */
    H5dont_atexit();
    /* Errors are reported through ss_fail with the file and dataset named;
     * HDF5's own stack dump on stderr would only confuse. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = blosc_filter_register();
    if (rc == SS_OK) done = 1;
    return rc;
}

/* Why an HDF5 write failed: the system's reason, which HDF5's file driver
 * records in its error stack ("..., errno = 28, error message = 'No space
 * left on device'"), since errno itself is gone by then. Read it before any
 * other HDF5 call: each clears the stack. */
static herr_t write_reason_visit(unsigned n, const H5E_error2_t *e, void *data)
{
    static const char key[] = "error message = '";
    char *buf = data;
    const char *m = e->desc ? strstr(e->desc, key) : NULL;
    (void)n;
    if (m && !buf[0]) snprintf(buf, 128, "%.*s", (int)strcspn(m + sizeof key - 1, "'"), m + sizeof key - 1);
    return 0;
}

static const char *write_reason(void)
{
    static char buf[128];
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, write_reason_visit, buf);
    return buf[0] ? buf : "disk full?";
}

static hid_t fapl_new(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* Files are written once and renamed into place, so HDF5's own file
     * locks add nothing, and they fail on many cluster filesystems. */
    H5Pset_file_locking(fapl, 0, 1);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    return fapl;
}

static hid_t file_open_ro(const char *path)
{
    hid_t fapl = fapl_new();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}

/* large_attrs: HDF5 1.8 object headers, whose attributes may pass 64 KiB
 * (the checksums of an array of many chunks); every HDF5 since 1.8 reads them. */
static hid_t file_create(const char *path, int track_order, int large_attrs)
{
    hid_t fapl = fapl_new();
    if (large_attrs) H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (track_order) H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    return f;
}

static hid_t mem_type(ss_dtype t)
{
    switch (t) {
    case DT_U8: return H5T_NATIVE_UINT8;
    case DT_U16: return H5T_NATIVE_UINT16;
    case DT_I16: return H5T_NATIVE_INT16;
    case DT_U32: return H5T_NATIVE_UINT32;
    case DT_I32: return H5T_NATIVE_INT32;
    case DT_I64: return H5T_NATIVE_INT64;
    case DT_F32: return H5T_NATIVE_FLOAT;
    case DT_F64: return H5T_NATIVE_DOUBLE;
    default: return H5I_INVALID_HID;
    }
}

static hid_t file_type(ss_dtype t)
{
    switch (t) {
    case DT_U8: return H5T_STD_U8LE;
    case DT_U16: return H5T_STD_U16LE;
    case DT_I16: return H5T_STD_I16LE;
    case DT_U32: return H5T_STD_U32LE;
    case DT_I32: return H5T_STD_I32LE;
    case DT_I64: return H5T_STD_I64LE;
    case DT_F32: return H5T_IEEE_F32LE;
    case DT_F64: return H5T_IEEE_F64LE;
    default: return H5I_INVALID_HID;
    }
}

static int dtype_of(hid_t t, ss_dtype *out)
{
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    if (cls == H5T_FLOAT) {
        if (size == 4) *out = DT_F32;
        else if (size == 8) *out = DT_F64;
        else return -1;
        return 0;
    }
    if (cls != H5T_INTEGER) return -1;
    int sign = H5Tget_sign(t) == H5T_SGN_2;
    if (size == 1 && !sign) *out = DT_U8;
    else if (size == 2) *out = sign ? DT_I16 : DT_U16;
    else if (size == 4) *out = sign ? DT_I32 : DT_U32;
    else if (size == 8 && sign) *out = DT_I64;
    else return -1;
    return 0;
}

/* ---- index -------------------------------------------------------------- */

static void index_clear(h5store *h)
{
    for (int i = 0; i < h->n; i++) {
        free(h->entries[i].stage);
        free(h->entries[i].file);
    }
    free(h->entries);
    h->entries = NULL;
    h->n = 0;
}

static int index_add(h5store *h, const char *stage, const char *file)
{
    index_entry *e = realloc(h->entries, (size_t)(h->n + 1) * sizeof *e);
    if (!e) return ss_fail(SS_ERR_NOMEM, "out of memory");
    h->entries = e;
    e[h->n].stage = ss_strdup(stage);
    e[h->n].file = ss_strdup(file);
    h->n++;
    return SS_OK;
}

static int index_find(const h5store *h, const char *stage)
{
    for (int i = 0; i < h->n; i++)
        if (!strcmp(h->entries[i].stage, stage)) return i;
    return -1;
}

typedef struct {
    h5store *h;
    int rc;
    int outside; /* a link pointed at a file that is not one of this container's stage files */
} index_iter;

/* The stage files an index may link to: <base>.d/stages/<name>, nothing
 * above or beside it (a damaged or hostile index must not make the store
 * open other files of the machine). */
static int own_stage_file(const h5store *h, const char *file)
{
    size_t nb = strlen(h->base);
    if (strncmp(file, h->base, nb) || strncmp(file + nb, ".d/" STAGE_SUBDIR "/", 4 + strlen(STAGE_SUBDIR))) return 0;
    const char *name = file + nb + 4 + strlen(STAGE_SUBDIR);
    return name[0] && name[0] != '.' && !strchr(name, '/');
}

static herr_t index_visit(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    index_iter *it = op;
    if (info->type != H5L_TYPE_EXTERNAL) return 0; /* the index holds only links */
    char val[4096];
    if (info->u.val_size > sizeof val) return 0;
    if (H5Lget_val(g, name, val, sizeof val, H5P_DEFAULT) < 0) return 0;
    const char *file = NULL, *obj = NULL;
    unsigned flags;
    if (H5Lunpack_elink_val(val, info->u.val_size, &flags, &file, &obj) < 0) return 0;
    if (!own_stage_file(it->h, file)) {
        it->outside = 1;
        it->rc = ss_fail(SS_ERR_INPUT, "stage '%s' links to '%s', not a stage file of this container", name, file);
        return -1;
    }
    it->rc = index_add(it->h, name, file);
    return it->rc == SS_OK ? 0 : -1;
}

static herr_t group_visit(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    index_iter *it = op;
    H5O_info_t oi;
    if (info->type != H5L_TYPE_HARD || name[0] == '.') return 0;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP) return 0;
    it->rc = index_add(it->h, name, name);
    return it->rc == SS_OK ? 0 : -1;
}

/* *damaged: the file is no readable index (truncated, overwritten), as
 * opposed to a readable file that is no index of this program's. */
static int index_read(store *s, h5store *h, int *damaged)
{
    index_clear(h);
    *damaged = 0;
    hid_t f = file_open_ro(s->path);
    if (f < 0) {
        *damaged = 1;
        return ss_fail(SS_ERR_INPUT, "%s: not an HDF5 file, or corrupt", s->path);
    }
    int rc = SS_OK;
    if (H5Aexists(f, LAYOUT_ATTR) <= 0) {
        rc = ss_fail(SS_ERR_INPUT, "%s: not a sirenstack container (no %s attribute)", s->path, LAYOUT_ATTR);
    } else {
        int64_t v = 0;
        hid_t a = H5Aopen(f, LAYOUT_ATTR, H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
            *damaged = 1, rc = ss_fail(SS_ERR_INPUT, "%s: unreadable %s attribute", s->path, LAYOUT_ATTR);
        else if (v > STORE_LAYOUT_VERSION)
            rc = ss_fail(SS_ERR_INPUT, "%s: container layout version %lld is newer than this program's (%d)",
                         s->path, (long long)v, STORE_LAYOUT_VERSION);
        if (a >= 0) H5Aclose(a);
    }
    if (rc == SS_OK && H5Aexists(f, PACKED_ATTR) > 0) {
        /* a packed archive: its stages are the groups of the root, in creation order */
        h->packed = 1;
        hsize_t idx = 0;
        index_iter it = {h, SS_OK, 0};
        if (H5Literate(f, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, group_visit, &it) < 0 || it.rc != SS_OK)
            rc = it.rc != SS_OK ? it.rc : ss_fail(SS_ERR_INPUT, "%s: cannot list the stages of the archive", s->path);
        if (rc == SS_OK) {
            if (h->archive >= 0) H5Fclose(h->archive);
            h->archive = f;
            return SS_OK;
        }
    } else if (rc == SS_OK) {
        index_iter it = {h, SS_OK, 0};
        hsize_t idx = 0;
        /* Indices written by this program track creation order = commit order. */
        herr_t e = H5Literate(f, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, index_visit, &it);
        if (e < 0 && it.rc == SS_OK) {
            idx = 0;
            index_clear(h);
            e = H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, index_visit, &it);
        }
        if (it.outside) *damaged = 1, rc = ss_fail_prefix(it.rc, "%s", s->path);
        else if (it.rc != SS_OK) rc = it.rc;
        else if (e < 0) *damaged = 1, rc = ss_fail(SS_ERR_INPUT, "%s: cannot list stages (corrupt index)", s->path);
    }
    H5Fclose(f);
    return rc;
}

static int attr_write_scalar(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

static int attr_write_i64(hid_t obj, const char *name, int64_t v)
{
    return attr_write_scalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int attr_write_str(hid_t obj, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, &v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return e < 0 ? -1 : 0;
}

/* Writes the index naming every entry of h, atomically. */
static int index_write(store *s, h5store *h)
{
    char *tmp = ss_asprintf("%s.tmp.%ld", s->path, (long)getpid());
    if (!tmp) return ss_fail(SS_ERR_NOMEM, "out of memory");
    int rc = SS_OK;
    hid_t f = file_create(tmp, 1, 0);
    if (f < 0) {
        rc = ss_fail(SS_ERR_IO, "%s: cannot create the container index (%s)", tmp,
                     errno ? strerror(errno) : "HDF5 error");
        free(tmp);
        return rc;
    }
    if (attr_write_i64(f, LAYOUT_ATTR, STORE_LAYOUT_VERSION) != 0 || attr_write_str(f, "sirenstack_format", "hdf5") != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot write the container index", tmp);
    for (int i = 0; i < h->n && rc == SS_OK; i++)
        if (H5Lcreate_external(h->entries[i].file, "/", f, h->entries[i].stage, H5P_DEFAULT, H5P_DEFAULT) < 0)
            rc = ss_fail(SS_ERR_IO, "%s: cannot link stage %s", tmp, h->entries[i].stage);
    if (H5Fclose(f) < 0 && rc == SS_OK) rc = ss_fail(SS_ERR_IO, "%s: write failed (%s)", tmp, write_reason());
    if (rc == SS_OK) rc = fs_fsync_path(tmp);
    ss_crashpoint("hdf5.index.written");
    if (rc == SS_OK && rename(tmp, s->path) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot rename the new index into place: %s", s->path, strerror(errno));
    if (rc == SS_OK) rc = fs_fsync_dir_of(s->path);
    if (rc != SS_OK) unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- open / close / recover --------------------------------------------- */

static int index_rebuild(store *s, h5store *h, sbuf *names);

/* Builds the index of h from the committed stage files when the index file
 * is missing or damaged (why: the reason); 1 if there were any, and then
 * s->index_problem says what was done. */
static int index_from_stage_files(store *s, h5store *h, const char *why)
{
    sbuf names = {0};
    int n = index_rebuild(s, h, &names);
    if (n > 0) {
        s->index_problem = ss_asprintf("%s: %s; the %d committed stage file%s in %s (%s) can rebuild it", s->path, why,
                                       n, n == 1 ? "" : "s", h->stagedir, sbuf_str(&names));
        h->rebuilt = ss_asprintf("%s: %s; rebuilt it from the %d committed stage file%s in %s (%s)", s->path, why, n,
                                 n == 1 ? "" : "s", h->stagedir, sbuf_str(&names));
    }
    sbuf_free(&names);
    return n > 0;
}

/* Reads the index into h. One that is missing or damaged beside committed
 * stage files is built from them instead, and s->index_problem says so;
 * anything else, such as someone's own HDF5 file, is an error and left
 * alone. *none: neither an index nor a stage file is there. */
static int index_load(store *s, h5store *h, int *none)
{
    *none = 0;
    free(s->index_problem);
    free(h->rebuilt);
    s->index_problem = h->rebuilt = NULL;
    if (!path_exists(s->path)) {
        /* deleted: writing an empty one would let recovery delete every stage */
        if (index_from_stage_files(s, h, "the index is missing")) return SS_OK;
        *none = 1;
        return ss_fail(SS_ERR_INPUT, "%s: no such container", s->path);
    }
    if (path_is_dir(s->path)) return ss_fail(SS_ERR_INPUT, "%s: is a directory, not an HDF5 container", s->path);
    int damaged = 0, rc = index_read(s, h, &damaged);
    if (rc == SS_OK || !damaged) return rc;
    char why[1024];
    snprintf(why, sizeof why, "%s", ss_errmsg());
    size_t lp = strlen(s->path);
    const char *reason = !strncmp(why, s->path, lp) && !strncmp(why + lp, ": ", 2) ? why + lp + 2 : why;
    char *said = ss_asprintf("the index is damaged (%s)", reason);
    int rebuilt = said && index_from_stage_files(s, h, said);
    free(said);
    if (!rebuilt) return ss_fail(rc, "%s", why);
    ss_errclear();
    return SS_OK;
}

static int h5_open(store *s, int flags)
{
    const int create = flags & STORE_OPEN_CREATE;
    int rc = h5_init();
    if (rc != SS_OK) return rc;
    h5store *h = calloc(1, sizeof *h);
    if (!h) return ss_fail(SS_ERR_NOMEM, "out of memory");
    h->archive = H5I_INVALID_HID;
    s->impl = h;
    h->dir = path_dirname(s->path);
    const char *slash = strrchr(s->path, '/');
    h->base = ss_strdup(slash ? slash + 1 : s->path);
    s->workdir = ss_asprintf("%s.d", s->path);
    h->stagedir = path_join(s->workdir, STAGE_SUBDIR);
    if (!h->dir || !h->base || !s->workdir || !h->stagedir) {
        rc = ss_fail(SS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int none = 0;
    if ((rc = index_load(s, h, &none)) == SS_OK && h->packed && create)
        rc = ss_fail(SS_ERR_INPUT, "%s: a packed archive is read-only; `sirenstack run CONFIG --from %s` writes a "
                     "new container", s->path, s->path);
    if (rc != SS_OK && h->packed) goto fail;
    if (rc != SS_OK) {
        if (!none || !create) goto fail;
        ss_errclear();
        if ((rc = fs_mkdir_p(h->stagedir)) != SS_OK) goto fail;
        if ((rc = index_write(s, h)) != SS_OK) goto fail;
        return SS_OK;
    }
    if (create && (rc = fs_mkdir_p(h->stagedir)) != SS_OK) goto fail;
    return SS_OK;
fail:
    s->impl = NULL;
    if (h->archive >= 0) H5Fclose(h->archive);
    free(h->rebuilt);
    index_clear(h);
    free(h->dir);
    free(h->base);
    free(h->stagedir);
    free(h);
    return rc;
}

static void h5_close(store *s)
{
    h5store *h = s->impl;
    if (!h) return;
    if (h->archive >= 0) H5Fclose(h->archive);
    free(h->rebuilt);
    index_clear(h);
    free(h->dir);
    free(h->base);
    free(h->stagedir);
    free(h);
    s->impl = NULL;
}

static int h5_recover(store *s)
{
    h5store *h = s->impl;
    if (h->packed) return ss_fail(SS_ERR_INPUT, "%s: a packed archive is read-only", s->path);
    /* Under the lock what the index says is final: read it again, for a run
     * that committed between our open and our lock. */
    int none, rc = index_load(s, h, &none);
    if (rc != SS_OK) return rc;
    if (s->index_problem) {
        /* the same atomic replacement as a commit's */
        if ((rc = fs_mkdir_p(h->stagedir)) == SS_OK) rc = index_write(s, h);
        if (rc != SS_OK) return rc;
        free(s->repaired);
        s->repaired = h->rebuilt;
        h->rebuilt = NULL;
        free(s->index_problem);
        s->index_problem = NULL;
    }
    /* Stage files no index entry refers to: temporaries of killed runs and
     * files replaced by a commit that was killed before deleting them. */
    DIR *d = opendir(h->stagedir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char *rel = ss_asprintf("%s.d/%s/%s", h->base, STAGE_SUBDIR, e->d_name);
            int used = 0;
            for (int i = 0; rel && i < h->n; i++) used |= !strcmp(h->entries[i].file, rel);
            free(rel);
            if (used) continue;
            char *p = path_join(h->stagedir, e->d_name);
            if (p && unlink(p) != 0 && errno != ENOENT)
                rc = ss_fail(SS_ERR_IO, "%s: cannot remove leftover: %s", p, strerror(errno));
            free(p);
        }
        closedir(d);
    }
    /* Index temporaries: <sample>.h5.tmp.<pid> */
    d = opendir(h->dir);
    if (d) {
        size_t lb = strlen(h->base);
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, h->base, lb) != 0 || strncmp(e->d_name + lb, ".tmp.", 5) != 0) continue;
            char *p = path_join(h->dir, e->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(d);
    }
    return rc;
}

/* ---- reading committed stages ------------------------------------------- */

static char **names_new(int n)
{
    return calloc((size_t)n + 1, sizeof(char *));
}

static int h5_list_stages(store *s, char ***names)
{
    h5store *h = s->impl;
    char **out = names_new(h->n);
    if (!out) return ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < h->n; i++) out[i] = ss_strdup(h->entries[i].stage);
    *names = out;
    return SS_OK;
}

static int h5_has_stage(store *s, const char *stage) { return index_find(s->impl, stage) >= 0; }

static char *stage_file_path(store *s, const char *stage)
{
    h5store *h = s->impl;
    int i = index_find(h, stage);
    return i < 0 ? NULL : path_join(h->dir, h->entries[i].file);
}

static int stage_open(store *s, const char *stage, hid_t *f)
{
    h5store *h = s->impl;
    if (h->packed) {
        *f = index_find(h, stage) < 0 ? H5I_INVALID_HID : H5Gopen2(h->archive, stage, H5P_DEFAULT);
        if (*f < 0) return ss_fail(SS_ERR_INPUT, "%s: no readable stage '%s' in the archive", s->path, stage);
        return SS_OK;
    }
    char *p = stage_file_path(s, stage);
    if (!p) return ss_fail(SS_ERR_INPUT, "%s: no committed stage '%s'", s->path, stage);
    *f = file_open_ro(p);
    int rc = *f < 0 ? ss_fail(SS_ERR_INPUT, "%s: stage file of '%s' is missing or corrupt", p, stage) : SS_OK;
    free(p);
    return rc;
}

/* What stage_open gave: a stage file, or an archive's group. */
static void stage_close(hid_t f)
{
    if (H5Iget_type(f) == H5I_GROUP) H5Gclose(f);
    else H5Fclose(f);
}

/* No attribute this program reads comes near this; one whose header claims
 * more (a damaged file) is skipped rather than sizing an allocation. */
#define ATTR_MAX_BYTES ((uint64_t)64 << 20)

static json_t *attr_to_json(hid_t a)
{
    hid_t t = H5Aget_type(a);
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int scalar = H5Sget_simple_extent_type(sp) == H5S_SCALAR;
    H5T_class_t cls = H5Tget_class(t);
    size_t esz = H5Tget_size(t);
    json_t *out = NULL;
    if (n < 0 || esz == 0 || (uint64_t)n > ATTR_MAX_BYTES / (esz > 8 ? esz : 8)) {
        /* skipped */
    } else if (cls == H5T_STRING && scalar) {
        char *str = NULL;
        if (H5Tis_variable_str(t) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Aread(a, mt, &str) >= 0 && str) {
                out = NULL;
                if (str[0] == '{' || str[0] == '[') out = json_loads(str, 0, NULL);
                if (!out) out = json_string(str);
                H5free_memory(str);
            }
            H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(t);
            char *buf = calloc(1, sz + 1);
            if (buf && H5Aread(a, t, buf) >= 0) out = json_stringn(buf, strnlen(buf, sz));
            free(buf);
        }
    } else if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && n >= 1) {
        /* Integers as int64: exact beyond 2^53 (seeds), and HDF5 saturates a
         * value that does not fit where a cast from double would be undefined. */
        int integer = cls == H5T_INTEGER;
        union {
            int64_t i;
            double d;
        } *v = malloc((size_t)n * sizeof *v);
        if (v && H5Aread(a, integer ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, v) >= 0) {
            if (scalar) {
                out = integer ? json_integer((json_int_t)v[0].i) : json_real(v[0].d);
            } else {
                out = json_array();
                for (hssize_t i = 0; i < n; i++)
                    json_array_append_new(out, integer ? json_integer((json_int_t)v[i].i) : json_real(v[i].d));
            }
        }
        free(v);
    } else if (cls == H5T_STRING && n >= 1 && H5Tis_variable_str(t) > 0) {
        char **v = calloc((size_t)n, sizeof *v);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (v && H5Aread(a, mt, v) >= 0) {
            out = json_array();
            for (hssize_t i = 0; i < n; i++) json_array_append_new(out, json_string(v[i] ? v[i] : ""));
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
        }
        H5Tclose(mt);
        free(v);
    }
    H5Sclose(sp);
    H5Tclose(t);
    return out;
}

/* A string attribute of obj (malloc'd), or NULL. */
static char *attr_text(hid_t obj, const char *name)
{
    if (H5Aexists(obj, name) <= 0) return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    json_t *v = a >= 0 ? attr_to_json(a) : NULL;
    if (a >= 0) H5Aclose(a);
    char *out = json_is_string(v) ? ss_strdup(json_string_value(v)) : NULL;
    json_decref(v);
    return out;
}

static int64_t attr_int(hid_t obj, const char *name, int64_t dflt)
{
    int64_t v = dflt;
    if (H5Aexists(obj, name) <= 0) return dflt;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT64, &v) < 0) v = dflt;
    if (a >= 0) H5Aclose(a);
    return v;
}

typedef struct {
    char *stage, *file; /* file: its name in the stages folder */
    char *when;         /* commit time (sirenstack_commit_time, else finished) */
    int64_t mtime_ns;
} stage_file;

static int cmp_commit(const void *a, const void *b)
{
    const stage_file *x = a, *y = b;
    int c = strcmp(x->when, y->when);
    if (c) return c;
    if (x->mtime_ns != y->mtime_ns) return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return strcmp(x->file, y->file);
}

/* Fills the index of h from the committed stage files of the stages folder
 * (sirenstack_committed = 1): per stage the newest commit, the stages in
 * commit order. Files that do not open or were never committed are left
 * out. Returns the number of stages; their names go to names. */
static int index_rebuild(store *s, h5store *h, sbuf *names)
{
    (void)s;
    DIR *d = opendir(h->stagedir);
    if (!d) return 0;
    stage_file *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 4 || strcmp(e->d_name + l - 3, ".h5") != 0) continue;
        char *p = path_join(h->stagedir, e->d_name);
        struct stat st;
        hid_t f = p && stat(p, &st) == 0 && S_ISREG(st.st_mode) ? file_open_ro(p) : H5I_INVALID_HID;
        free(p);
        if (f < 0) continue;
        int committed = attr_int(f, COMMITTED_ATTR, 0) == 1;
        char *stage = attr_text(f, STORE_STAGE_ATTR);
        if (!stage) stage = strndup(e->d_name, strcspn(e->d_name, "."));
        char *when = attr_text(f, STORE_COMMIT_TIME_ATTR);
        if (!when) when = attr_text(f, "finished");
        H5Fclose(f);
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            stage_file *nv = realloc(v, nc * sizeof *nv);
            if (nv) v = nv, cap = nc;
        }
        if (committed && stage && store_valid_name(stage) && n < cap) {
            v[n] = (stage_file){stage, ss_strdup(e->d_name), when ? when : ss_strdup(""),
                                (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec};
            n++;
        } else {
            free(stage);
            free(when);
        }
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, cmp_commit);
    index_clear(h);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        int newer = 0; /* a later commit of the same stage wins */
        for (size_t j = i + 1; j < n && !newer; j++) newer = !strcmp(v[j].stage, v[i].stage);
        char *rel = newer ? NULL : ss_asprintf("%s.d/%s/%s", h->base, STAGE_SUBDIR, v[i].file);
        if (rel && v[i].file && index_add(h, v[i].stage, rel) == SS_OK) {
            sbuf_printf(names, "%s%s", count ? ", " : "", v[i].stage);
            count++;
        }
        free(rel);
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].stage);
        free(v[i].file);
        free(v[i].when);
    }
    free(v);
    return count;
}

static herr_t attr_visit(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    json_t *v = attr_to_json(a);
    if (v) json_object_set_new(op, name, v);
    H5Aclose(a);
    return 0;
}

static int h5_stage_attrs(store *s, const char *stage, json_t **attrs)
{
    hid_t f;
    int rc = stage_open(s, stage, &f);
    if (rc != SS_OK) return rc;
    json_t *o = json_object();
    hsize_t idx = 0;
    if (H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_visit, o) < 0)
        rc = ss_fail(SS_ERR_INPUT, "%s: cannot read attributes of stage '%s'", s->path, stage);
    stage_close(f);
    if (rc != SS_OK) {
        json_decref(o);
        return rc;
    }
    *attrs = o;
    return SS_OK;
}

typedef struct {
    char **names;
    int n, cap;
} name_list;

static herr_t dset_visit(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    name_list *l = op;
    H5O_info_t oi;
    if (info->type != H5L_TYPE_HARD || H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0) return 0;
    if (oi.type != H5O_TYPE_DATASET) return 0;
    if (l->n + 1 >= l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        char **nn = realloc(l->names, (size_t)cap * sizeof *nn);
        if (!nn) return -1;
        l->names = nn;
        l->cap = cap;
    }
    l->names[l->n++] = ss_strdup(name);
    l->names[l->n] = NULL;
    return 0;
}

static int h5_list_arrays(store *s, const char *stage, char ***names)
{
    hid_t f;
    int rc = stage_open(s, stage, &f);
    if (rc != SS_OK) return rc;
    name_list l = {0};
    hsize_t idx = 0;
    if (H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, dset_visit, &l) < 0)
        rc = ss_fail(SS_ERR_INPUT, "%s: cannot list arrays of stage '%s'", s->path, stage);
    stage_close(f);
    if (rc == SS_OK && !l.names) l.names = names_new(0);
    if (rc != SS_OK || !l.names) {
        store_names_free(l.names);
        return rc != SS_OK ? rc : ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    *names = l.names;
    return SS_OK;
}

/* ---- writing a stage ----------------------------------------------------- */

static int h5_stage_begin(store_writer *w)
{
    store *s = w->s;
    h5store *h = s->impl;
    if (h->packed) return ss_fail(SS_ERR_INPUT, "%s: a packed archive is read-only", s->path);
    static unsigned counter;
    h5writer *hw = calloc(1, sizeof *hw);
    if (!hw) return ss_fail(SS_ERR_NOMEM, "out of memory");
    char uniq[64];
    snprintf(uniq, sizeof uniq, "%lx%lx%x", (unsigned long)time(NULL), (unsigned long)getpid(), counter++);
    hw->final_rel = ss_asprintf("%s.d/%s/%s.%s.h5", h->base, STAGE_SUBDIR, w->stage, uniq);
    hw->tmp_path = ss_asprintf("%s/%s.%s.h5.tmp", h->stagedir, w->stage, uniq);
    /* Fixed for the whole stage (store_stage_begin records it), so a stage
     * never mixes two. */
    hw->comp = s->comp;
    int rc = SS_OK;
    if (!hw->final_rel || !hw->tmp_path) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && (rc = fs_mkdir_p(h->stagedir)) == SS_OK) {
        hw->file = file_create(hw->tmp_path, 0, 1);
        if (hw->file < 0)
            rc = ss_fail(SS_ERR_IO, "%s: cannot create stage file (%s)", hw->tmp_path,
                         errno ? strerror(errno) : "HDF5 error");
    }
    if (rc != SS_OK) {
        free(hw->final_rel);
        free(hw->tmp_path);
        free(hw);
        return rc;
    }
    w->impl = hw;
    return SS_OK;
}

static int all_numbers(const json_t *arr, int *all_int)
{
    size_t i;
    json_t *v;
    *all_int = 1;
    if (json_array_size(arr) == 0) return 0;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_number(v)) return 0;
        if (!json_is_integer(v)) *all_int = 0;
    }
    return 1;
}

static int attr_write_json(hid_t obj, const char *key, json_t *v)
{
    if (H5Aexists(obj, key) > 0) H5Adelete(obj, key);
    if (json_is_string(v)) return attr_write_str(obj, key, json_string_value(v));
    if (json_is_integer(v)) return attr_write_i64(obj, key, json_integer_value(v));
    if (json_is_boolean(v)) return attr_write_i64(obj, key, json_is_true(v));
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return attr_write_scalar(obj, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &d);
    }
    int all_int;
    if (json_is_array(v) && all_numbers(v, &all_int)) {
        hsize_t n = json_array_size(v);
        double *d = malloc(n * sizeof *d);
        if (!d) return -1;
        for (size_t i = 0; i < n; i++) d[i] = json_number_value(json_array_get(v, i));
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t ft = all_int ? H5T_STD_I64LE : H5T_IEEE_F64LE;
        hid_t a = H5Acreate2(obj, key, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
        herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, d);
        if (a >= 0) H5Aclose(a);
        H5Sclose(sp);
        free(d);
        return e < 0 ? -1 : 0;
    }
    if (json_is_null(v)) return 0;
    /* Objects and mixed arrays: JSON text (schemas/container-layout.md). */
    char *text = canonical_json(v);
    if (!text) return -1;
    int e = attr_write_str(obj, key, text);
    free(text);
    return e;
}

static int h5_writer_attr(store_writer *w, const char *key, json_t *value)
{
    h5writer *hw = w->impl;
    if (attr_write_json(hw->file, key, value) != 0)
        return ss_fail(SS_ERR_IO, "%s: cannot write attribute '%s'", hw->tmp_path, key);
    return SS_OK;
}

static int attr_write_strs(hid_t obj, const char *name, const char *const *v, hsize_t n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, t, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return e < 0 ? -1 : 0;
}

static int attr_write_f64s(hid_t obj, const char *name, hid_t ft, const double *v, hsize_t n)
{
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(obj, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

static int write_meta(hid_t d, const array_meta *m)
{
    const char *axes[STORE_MAX_RANK];
    char letters[STORE_MAX_RANK][2];
    int n = (int)strlen(m->axes);
    for (int i = 0; i < n; i++) {
        letters[i][0] = m->axes[i];
        letters[i][1] = 0;
        axes[i] = letters[i];
    }
    if (attr_write_strs(d, "axes", axes, (hsize_t)n) != 0) return -1;
    if (attr_write_f64s(d, "voxel_size", H5T_IEEE_F64LE, m->voxel, 3) != 0) return -1;
    if (attr_write_str(d, "unit", m->unit[0] ? m->unit : "micrometer") != 0) return -1;
    /* Fiji's HDF5 reader and BigDataViewer take the voxel size from here. */
    if (!strcmp(m->unit, "micrometer") || !m->unit[0])
        if (attr_write_f64s(d, "element_size_um", H5T_IEEE_F32LE, m->voxel, 3) != 0) return -1;
    return 0;
}

/* Chunked layout and the filters of compression c (schemas/container-layout.md):
 * blosc is filter 32001 with hdf5-blosc's cd_values, [0..3] filled in by its
 * set_local; gzip is HDF5's built-in shuffle + deflate, which every HDF5
 * library decodes without a plugin. */
static hid_t dcpl_for(store_compression c, int rank, const hsize_t *chunk)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (c == STORE_COMP_BLOSC_LZ4 || c == STORE_COMP_BLOSC_ZSTD) {
        unsigned cd[7] = {0, 0, 0, 0, STORE_BLOSC_CLEVEL, STORE_BLOSC_SHUFFLE,
                          c == STORE_COMP_BLOSC_ZSTD ? BLOSC_ZSTD : BLOSC_LZ4};
        H5Pset_filter(dcpl, SS_H5Z_FILTER_BLOSC, H5Z_FLAG_OPTIONAL, 7, cd);
    } else if (c == STORE_COMP_GZIP) {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, STORE_GZIP_LEVEL);
    }
    return dcpl;
}

/* Chunk cache sized to the access pattern: reads and writes go plane by
 * plane (one index of the third axis from the end, all of the others). When
 * chunks are one plane deep every chunk is touched once, so no cache at all
 * is fastest (HDF5 then moves whole chunks straight to and from the caller's
 * buffer). When chunks are k planes deep, the chunks one plane touches must
 * stay cached until all k planes are done. */
static hid_t dapl_for(int rank, const hsize_t *dims, const hsize_t *chunk, size_t elem)
{
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    int deep = rank >= 3 ? rank - 3 : -1;
    size_t nbytes = 0, nchunks = 1, chunk_bytes = elem;
    for (int i = 0; i < rank; i++) {
        chunk_bytes *= chunk[i];
        if (i != deep && chunk[i]) nchunks *= (dims[i] + chunk[i] - 1) / chunk[i];
    }
    if (deep >= 0 && chunk[deep] > 1) nbytes = chunk_bytes * nchunks;
    else if (rank < 3) nbytes = (size_t)1 << 20; /* HDF5's default */
    if (nbytes > ((size_t)256 << 20)) nbytes = (size_t)256 << 20;
    size_t slots = nchunks * 10 + 1;
    if (slots < 521) slots = 521;
    H5Pset_chunk_cache(dapl, slots, nbytes, 1.0);
    return dapl;
}

static int h5_writer_array(store_writer *w, const char *name, ss_dtype dt, int rank, const int64_t *shape,
                           const int64_t *chunk, const array_meta *meta, store_array *a)
{
    h5writer *hw = w->impl;
    hsize_t dims[STORE_MAX_RANK], ch[STORE_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        dims[i] = (hsize_t)shape[i];
        ch[i] = (hsize_t)(chunk[i] < shape[i] ? chunk[i] : (shape[i] > 0 ? shape[i] : 1));
    }
    if (H5Lexists(hw->file, name, H5P_DEFAULT) > 0)
        return ss_fail(SS_ERR_INTERNAL, "stage %s: array '%s' written twice", w->stage, name);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = dcpl_for(hw->comp, rank, ch);
    hid_t dapl = dapl_for(rank, dims, ch, dtype_size(dt));
    hid_t d = H5Dcreate2(hw->file, name, file_type(dt), sp, H5P_DEFAULT, dcpl, dapl);
    H5Pclose(dcpl);
    H5Pclose(dapl);
    H5Sclose(sp);
    if (d < 0) return ss_fail(SS_ERR_IO, "%s: cannot create array '%s'", hw->tmp_path, name);
    if (meta && write_meta(d, meta) != 0) {
        H5Dclose(d);
        return ss_fail(SS_ERR_IO, "%s: cannot write metadata of '%s'", hw->tmp_path, name);
    }
    h5array *ha = calloc(1, sizeof *ha);
    if (!ha) {
        H5Dclose(d);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    ha->file = hw->file;
    ha->hw = hw;
    int rc = member_fill(ha, d, hw->tmp_path);
    if (rc == SS_OK) rc = store_sums_init(&ha->sums, store_chunk_count(ha->rank, ha->shape, ha->chunk));
    json_t *entry = rc == SS_OK ? member_entry(ha) : NULL;
    if (rc == SS_OK && (!entry || json_object_set_new(w->arrays, name, entry) != 0))
        rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc != SS_OK) {
        member_release(ha);
        H5Dclose(d);
        free(ha);
        return rc;
    }
    ha->has_sums = 1;
    if (!(ha->name = ss_strdup(name)) || writer_track(&hw->open, &hw->n_open, ha) != SS_OK) {
        member_release(ha);
        H5Dclose(d);
        free(ha->name);
        free(ha);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    a->impl = ha;
    return SS_OK;
}

static hid_t table_type(const table_view *t, size_t *offsets, size_t *rec)
{
    size_t off = 0;
    for (int c = 0; c < t->n_cols; c++) {
        offsets[c] = off;
        off += t->cols[c].type == COL_STR ? TABLE_STR_LEN : 8;
    }
    *rec = off;
    hid_t ct = H5Tcreate(H5T_COMPOUND, off);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, TABLE_STR_LEN);
    H5Tset_strpad(st, H5T_STR_NULLPAD);
    for (int c = 0; c < t->n_cols; c++) {
        hid_t mt = t->cols[c].type == COL_STR ? st : t->cols[c].type == COL_I64 ? H5T_STD_I64LE : H5T_IEEE_F64LE;
        H5Tinsert(ct, t->cols[c].name, offsets[c], mt);
    }
    H5Tclose(st);
    return ct;
}

static int h5_writer_table(store_writer *w, const char *name, const table_view *t)
{
    h5writer *hw = w->impl;
    if (t->n_cols < 1 || t->n_cols > 256) return ss_fail(SS_ERR_INTERNAL, "table %s: bad column count", name);
    size_t offsets[256], rec;
    hid_t ct = table_type(t, offsets, &rec);
    size_t nrows = (size_t)t->n_rows;
    char *buf = calloc(nrows ? nrows : 1, rec);
    if (!buf) {
        H5Tclose(ct);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    for (size_t r = 0; r < nrows; r++)
        for (int c = 0; c < t->n_cols; c++) {
            char *p = buf + r * rec + offsets[c];
            const table_col *col = &t->cols[c];
            if (col->type == COL_F64) memcpy(p, &col->f64[r], 8);
            else if (col->type == COL_I64) memcpy(p, &col->i64[r], 8);
            else strncpy(p, col->str[r] ? col->str[r] : "", TABLE_STR_LEN - 1);
        }
    hsize_t n = nrows, ch = nrows ? (nrows < 65536 ? nrows : 65536) : 1;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t dcpl = dcpl_for(hw->comp, 1, &ch);
    hid_t d = H5Dcreate2(hw->file, name, ct, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = SS_OK;
    if (d < 0 || (nrows && H5Dwrite(d, ct, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) ||
        attr_write_i64(d, TABLE_ATTR, 1) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot write table '%s'", hw->tmp_path, name);
    /* buf holds the records as the file does: the checksums come from it */
    h5array ha = {.rtype = H5I_INVALID_HID};
    if (rc == SS_OK && (rc = member_fill(&ha, d, hw->tmp_path)) == SS_OK &&
        (rc = store_sums_init(&ha.sums, store_chunk_count(1, ha.shape, ha.chunk))) == SS_OK) {
        for (int64_t k = 0; k < ha.sums.n; k++) {
            int64_t idx = k, r0, nr;
            store_chunk_region(1, ha.shape, ha.chunk, &idx, &r0, &nr);
            ha.sums.sum[k] = store_hash_block(buf + (size_t)r0 * rec, 1, &nr, (int64_t[1]){0}, &nr, rec);
        }
        json_t *entry = member_entry(&ha);
        if (sums_write(d, &ha.sums) != 0) rc = ss_fail(SS_ERR_IO, "%s: cannot write the checksums of '%s'", hw->tmp_path, name);
        else if (!entry || json_object_set_new(w->arrays, name, entry) != 0) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    member_release(&ha);
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Tclose(ct);
    free(buf);
    return rc;
}

static int h5_commit(store_writer *w)
{
    store *s = w->s;
    h5store *h = s->impl;
    h5writer *hw = w->impl;
    int rc = SS_OK;
    char *final_abs = path_join(h->dir, hw->final_rel);
    if (!final_abs) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && hw->failed) rc = ss_fail(hw->failed, "%s", hw->failed_msg ? hw->failed_msg : "closing an array failed");
    if (rc == SS_OK) rc = writer_finish_arrays(hw, 1);
    else writer_finish_arrays(hw, 0);
    if (rc == SS_OK && attr_write_i64(hw->file, COMMITTED_ATTR, 1) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot write attribute", hw->tmp_path);
    /* Objects left open would keep the file from closing: a stage bug. */
    if (rc == SS_OK && H5Fget_obj_count(hw->file, H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_ATTR) > 0)
        rc = ss_fail(SS_ERR_INTERNAL, "stage %s: an array was not closed before commit", w->stage);
    ss_crashpoint("hdf5.commit.before_close");
    if (H5Fclose(hw->file) < 0 && rc == SS_OK)
        rc = ss_fail(SS_ERR_IO, "%s: write failed (%s)", hw->tmp_path, write_reason());
    hw->file = H5I_INVALID_HID;
    if (rc == SS_OK) rc = fs_fsync_path(hw->tmp_path);
    ss_crashpoint("hdf5.commit.before_rename");
    if (rc == SS_OK && rename(hw->tmp_path, final_abs) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: rename failed: %s", final_abs, strerror(errno));
    if (rc == SS_OK) rc = fs_fsync_dir_of(final_abs);
    ss_crashpoint("hdf5.commit.stage_file_renamed");

    char *old = NULL;
    int i = index_find(h, w->stage);
    if (rc == SS_OK) {
        /* Commit order: a recommitted stage moves to the end. */
        if (i >= 0) {
            old = h->entries[i].file;
            free(h->entries[i].stage);
            memmove(&h->entries[i], &h->entries[i + 1], (size_t)(h->n - i - 1) * sizeof *h->entries);
            h->n--;
        }
        rc = index_add(h, w->stage, hw->final_rel);
        if (rc == SS_OK) rc = index_write(s, h);
        if (rc != SS_OK) {
            /* The old index is still in place: restore our view of it. */
            free(old);
            old = NULL;
            int keep = rc;
            int damaged;
            index_read(s, h, &damaged);
            unlink(final_abs);
            rc = keep;
        }
    } else {
        unlink(hw->tmp_path);
    }
    ss_crashpoint("hdf5.commit.index_renamed");
    if (old) {
        char *p = path_join(h->dir, old);
        if (p) unlink(p); /* a leftover here is removed by the next recover */
        free(p);
        free(old);
    }
    free(final_abs);
    free(hw->final_rel);
    free(hw->tmp_path);
    free(hw->failed_msg);
    free(hw);
    w->impl = NULL;
    return rc;
}

static void h5_abort(store_writer *w)
{
    h5writer *hw = w->impl;
    if (!hw) return;
    writer_finish_arrays(hw, 0);
    if (hw->file >= 0) {
        /* Close whatever the stage left open so the file can go. */
        ssize_t n = H5Fget_obj_count(hw->file, H5F_OBJ_DATASET | H5F_OBJ_ATTR | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE);
        if (n > 0) {
            hid_t *ids = calloc((size_t)n, sizeof *ids);
            if (ids) {
                n = H5Fget_obj_ids(hw->file, H5F_OBJ_DATASET | H5F_OBJ_ATTR | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE,
                                   (size_t)n, ids);
                for (ssize_t k = 0; k < n; k++) H5Oclose(ids[k]);
                free(ids);
            }
        }
        H5Fclose(hw->file);
    }
    unlink(hw->tmp_path);
    free(hw->final_rel);
    free(hw->tmp_path);
    free(hw->failed_msg);
    free(hw);
    w->impl = NULL;
}

/* ---- arrays -------------------------------------------------------------- */

static int select_slab(hid_t dset, int rank_expected, const int64_t *start, const int64_t *count, hid_t *fsp,
                       hid_t *msp);
static int read_meta(hid_t d, array_meta *m);

/* What the filter pipeline of dcpl compresses with, as inspect names it:
 * "blosc:lz4:5:shuffle", "gzip:4:shuffle", "none". */
static void compressor_text(hid_t dcpl, char *out, size_t size)
{
    snprintf(out, size, "none");
    int nf = H5Pget_nfilters(dcpl), shuffled = 0;
    for (int k = 0; k < nf; k++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char fname[64];
        unsigned conf;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, sizeof fname, fname, &conf);
        if (id == SS_H5Z_FILTER_BLOSC) {
            const char *cname = "?";
            if (ncd >= 7) blosc_compcode_to_compname((int)cd[6], &cname);
            snprintf(out, size, "blosc:%s:%u:%s", cname, ncd >= 5 ? cd[4] : 5,
                     ncd >= 6 ? (cd[5] == 2 ? "bitshuffle" : cd[5] ? "shuffle" : "noshuffle") : "shuffle");
        } else if (id == H5Z_FILTER_SHUFFLE) {
            shuffled = 1;
        } else if (id == H5Z_FILTER_DEFLATE) {
            snprintf(out, size, "gzip:%u:%s", ncd >= 1 ? cd[0] : 0, shuffled ? "shuffle" : "noshuffle");
        } else if (id >= 0 && !strcmp(out, "none")) {
            snprintf(out, size, "filter-%d", (int)id);
        }
    }
}

/* The numpy type string of an element type: "<f8", "<i8", "|S64". */
static json_t *numpy_type(hid_t t)
{
    H5T_class_t cls = H5Tget_class(t);
    size_t size = H5Tget_size(t);
    char bo = H5Tget_order(t) == H5T_ORDER_BE ? '>' : '<';
    if (cls == H5T_STRING) return json_sprintf("|S%zu", size);
    if (cls == H5T_INTEGER) return json_sprintf("%c%c%zu", size == 1 ? '|' : bo, H5Tget_sign(t) == H5T_SGN_2 ? 'i' : 'u', size);
    if (cls == H5T_FLOAT) return json_sprintf("%c" "f%zu", bo, size);
    return json_string("?");
}

/* Shape, chunks, element layout, axes of dataset d, into ha (which takes d). */
static int member_fill(h5array *ha, hid_t d, const char *what)
{
    ha->dset = d;
    ha->rtype = H5I_INVALID_HID;
    hid_t sp = H5Dget_space(d), dcpl = H5Dget_create_plist(d), t = H5Dget_type(d);
    int rank = H5Sget_simple_extent_ndims(sp), rc = SS_OK;
    hsize_t dims[STORE_MAX_RANK], ch[STORE_MAX_RANK];
    if (rank < 1 || rank > STORE_MAX_RANK) {
        rc = ss_fail(SS_ERR_INPUT, "%s: array of unsupported rank %d", what, rank);
    } else {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        int chunked = H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, STORE_MAX_RANK, ch) == rank;
        ha->rank = rank;
        for (int i = 0; i < rank; i++) {
            ha->shape[i] = (int64_t)dims[i];
            ha->chunk[i] = chunked ? (int64_t)ch[i] : (dims[i] ? (int64_t)dims[i] : 1);
        }
        ha->table = H5Tget_class(t) == H5T_COMPOUND;
        /* no filter, or blosc alone: whole chunks can be decoded here */
        int nf = chunked ? H5Pget_nfilters(dcpl) : -1;
        unsigned fl, cd[8];
        size_t ncd = 8;
        if (nf == 0) ha->direct = DIRECT_RAW;
        else if (nf == 1 && H5Pget_filter2(dcpl, 0, &fl, &ncd, cd, 0, NULL, NULL) == SS_H5Z_FILTER_BLOSC)
            ha->direct = DIRECT_BLOSC;
        if (ha->table) {
            ha->rtype = H5Tcopy(t);
            ha->elem = H5Tget_size(t);
        } else if (dtype_of(t, &ha->dtype) == 0) {
            ha->rtype = mem_type(ha->dtype);
            ha->elem = dtype_size(ha->dtype);
        } else {
            rc = ss_fail(SS_ERR_INPUT, "%s: array has an unsupported element type", what);
        }
    }
    H5Tclose(t);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return rc;
}

/* The entry of sirenstack_arrays that describes the dataset of ha. */
static json_t *member_entry(const h5array *ha)
{
    hid_t dcpl = H5Dget_create_plist(ha->dset), t = H5Dget_type(ha->dset);
    char comp[64];
    compressor_text(dcpl, comp, sizeof comp);
    json_t *dt;
    if (ha->table) {
        dt = json_array();
        int n = H5Tget_nmembers(t);
        for (int c = 0; dt && c < n; c++) {
            char *mname = H5Tget_member_name(t, (unsigned)c);
            hid_t mt = H5Tget_member_type(t, (unsigned)c);
            json_array_append_new(dt, json_pack("[s,o]", mname ? mname : "?", numpy_type(mt)));
            H5Tclose(mt);
            H5free_memory(mname);
        }
    } else {
        dt = json_string(dtype_name(ha->dtype));
    }
    H5Tclose(t);
    H5Pclose(dcpl);
    return store_entry_new(ha->rank, ha->shape, ha->chunk, dt, comp);
}

static void member_release(h5array *ha)
{
    if (ha->table && ha->rtype >= 0) H5Tclose(ha->rtype);
    ha->rtype = H5I_INVALID_HID;
    store_sums_free(&ha->sums);
    free(ha->scratch);
    free(ha->chunk_buf);
    free(ha->stored_buf);
    ha->scratch = ha->chunk_buf = ha->stored_buf = NULL;
    ha->scratch_size = ha->chunk_buf_size = ha->stored_buf_size = 0;
}

/* *buf of at least n bytes, grown as needed (*size: what it holds). */
static void *buffer_get(void **buf, size_t *size, size_t n)
{
    if (n > *size || !*buf) {
        void *p = realloc(*buf, n ? n : 1);
        if (!p) return NULL;
        *buf = p;
        *size = n;
    }
    return *buf;
}

static size_t region_elems(int rank, const int64_t *ext)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)ext[i];
    return n;
}

/* Reads the region (start, ext) in the file's element layout into buf. */
static int region_read(const h5array *ha, const int64_t *start, const int64_t *ext, void *buf)
{
    hid_t fsp, msp;
    if (select_slab(ha->dset, ha->rank, start, ext, &fsp, &msp) != 0) return -1;
    herr_t r = H5Dread(ha->dset, ha->rtype, msp, fsp, H5P_DEFAULT, buf);
    H5Sclose(msp);
    H5Sclose(fsp);
    return r < 0 ? -1 : 0;
}

/* Compares the committed entry with the dataset and loads its checksums. */
static int member_committed(store *s, const char *stage, const char *name, h5array *ha, const json_t *entry)
{
    int rc = store_check_entry(s, stage, name, entry, member_entry(ha));
    if (rc != SS_OK) return rc;
    int64_t n = store_chunk_count(ha->rank, ha->shape, ha->chunk);
    hid_t a = H5Aexists(ha->dset, SUMS_ATTR) > 0 ? H5Aopen(ha->dset, SUMS_ATTR, H5P_DEFAULT) : H5I_INVALID_HID;
    if (a < 0) return store_fail_damaged(s, stage, name, "its chunk checksums (attribute %s) are missing", SUMS_ATTR);
    hid_t sp = H5Aget_space(a);
    hssize_t got = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (got != n) rc = store_fail_damaged(s, stage, name, "%lld chunk checksums for %lld chunks", (long long)got,
                                          (long long)n);
    if (rc == SS_OK) rc = store_sums_init(&ha->sums, n);
    if (rc == SS_OK && n > 0 && H5Aread(a, H5T_NATIVE_UINT64, ha->sums.sum) < 0)
        rc = store_fail_damaged(s, stage, name, "its chunk checksums cannot be read");
    H5Aclose(a);
    if (rc == SS_OK) {
        memset(ha->sums.stored, 1, (size_t)(n > 0 ? n : 1));
        ha->has_sums = 1;
    }
    return rc;
}

/* Reads chunk idx whole and compares it with its checksum. */
static int chunk_verify(store *s, const char *stage, const char *name, h5array *ha, const int64_t *idx)
{
    int64_t rs[STORE_MAX_RANK], re[STORE_MAX_RANK];
    store_chunk_region(ha->rank, ha->shape, ha->chunk, idx, rs, re);
    int64_t k = store_chunk_linear(ha->rank, ha->shape, ha->chunk, idx);
    size_t n = region_elems(ha->rank, re);
    void *buf = buffer_get(&ha->chunk_buf, &ha->chunk_buf_size, n * ha->elem);
    if (!buf) return ss_fail(SS_ERR_NOMEM, "out of memory for a chunk of %zu bytes", n * ha->elem);
    sbuf where = {0};
    store_chunk_text(&where, ha->rank, ha->shape, ha->chunk, idx, ha->axes, ha->table);
    int rc = SS_OK;
    if (region_read(ha, rs, re, buf) != 0)
        rc = store_fail_damaged(s, stage, name, "%s cannot be decoded (corrupt or truncated data)", sbuf_str(&where));
    else if (store_hash_block(buf, ha->rank, re, (int64_t[STORE_MAX_RANK]){0}, re, ha->elem) != ha->sums.sum[k])
        rc = store_fail_damaged(s, stage, name, "%s: checksum mismatch (the stored data is damaged)", sbuf_str(&where));
    else ha->sums.seen[k] = 1;
    sbuf_free(&where);
    return rc;
}


/* Opens dataset name of the open stage file f, with a chunk cache fitted
 * to its chunk shape. */
static hid_t dataset_open(hid_t f, const char *name)
{
    hid_t d = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : H5I_INVALID_HID;
    if (d < 0) return d;
    hid_t sp = H5Dget_space(d), dcpl = H5Dget_create_plist(d), t = H5Dget_type(d);
    hsize_t dims[STORE_MAX_RANK], ch[STORE_MAX_RANK];
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank > 0 && rank <= STORE_MAX_RANK && H5Pget_layout(dcpl) == H5D_CHUNKED &&
        H5Pget_chunk(dcpl, STORE_MAX_RANK, ch) == rank) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        hid_t dapl = dapl_for(rank, dims, ch, H5Tget_size(t));
        H5Dclose(d);
        d = H5Dopen2(f, name, dapl);
        H5Pclose(dapl);
    }
    H5Tclose(t);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return d;
}

/* Opens member name of a committed stage into ha, checked against what
 * the stage committed (when it recorded that). */
static int member_open(store *s, const char *stage, const char *name, h5array *ha)
{
    memset(ha, 0, sizeof *ha);
    ha->rtype = H5I_INVALID_HID;
    hid_t f;
    int rc = stage_open(s, stage, &f);
    if (rc != SS_OK) return rc;
    hid_t d = dataset_open(f, name);
    if (d < 0) {
        stage_close(f);
        return ss_fail(SS_ERR_INPUT, "%s: stage '%s' has no array or table '%s'", s->path, stage, name);
    }
    ha->file = f;
    ha->owns_file = 1;
    char what[512];
    snprintf(what, sizeof what, "%s: %s/%s", s->path, stage, name);
    rc = member_fill(ha, d, what);
    array_meta m;
    if (rc == SS_OK && read_meta(d, &m)) memcpy(ha->axes, m.axes, sizeof ha->axes);
    json_t *entry = NULL;
    if (rc == SS_OK) rc = store_committed_entry(s, stage, name, &entry);
    if (rc == SS_OK && entry) rc = member_committed(s, stage, name, ha, entry);
    json_decref(entry);
    if (rc != SS_OK) {
        member_release(ha);
        H5Dclose(d);
        stage_close(f);
    }
    return rc;
}

static int h5_array_open(store *s, const char *stage, const char *name, store_array *a)
{
    h5array *ha = calloc(1, sizeof *ha);
    if (!ha) return ss_fail(SS_ERR_NOMEM, "out of memory");
    int rc = member_open(s, stage, name, ha);
    if (rc == SS_OK && ha->table) {
        rc = ss_fail(SS_ERR_INPUT, "%s: '%s/%s' is a table, not an array", s->path, stage, name);
        member_release(ha);
        H5Dclose(ha->dset);
        stage_close(ha->file);
    }
    if (rc != SS_OK) {
        free(ha);
        return rc;
    }
    a->impl = ha;
    return SS_OK;
}

static int read_meta(hid_t d, array_meta *m)
{
    memset(m, 0, sizeof *m);
    if (H5Aexists(d, "axes") <= 0) return 0;
    hid_t a = H5Aopen(d, "axes", H5P_DEFAULT);
    json_t *axes = attr_to_json(a);
    H5Aclose(a);
    size_t i;
    json_t *v;
    if (json_is_array(axes))
        json_array_foreach(axes, i, v) if (i < STORE_MAX_RANK && json_is_string(v)) m->axes[i] = json_string_value(v)[0];
    json_decref(axes);
    if (H5Aexists(d, "voxel_size") > 0) {
        a = H5Aopen(d, "voxel_size", H5P_DEFAULT);
        hid_t sp = H5Aget_space(a);
        if (H5Sget_simple_extent_npoints(sp) == 3) H5Aread(a, H5T_NATIVE_DOUBLE, m->voxel);
        H5Sclose(sp);
        H5Aclose(a);
    }
    if (H5Aexists(d, "unit") > 0) {
        a = H5Aopen(d, "unit", H5P_DEFAULT);
        json_t *u = attr_to_json(a);
        H5Aclose(a);
        if (json_is_string(u)) snprintf(m->unit, sizeof m->unit, "%s", json_string_value(u));
        json_decref(u);
    }
    return 1;
}

static int h5_array_info(store_array *a, array_info *info)
{
    h5array *ha = a->impl;
    hid_t sp = H5Dget_space(ha->dset);
    hsize_t dims[STORE_MAX_RANK];
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank < 0 || rank > STORE_MAX_RANK) {
        H5Sclose(sp);
        return ss_fail(SS_ERR_INPUT, "array of unsupported rank %d", rank);
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    info->rank = rank;
    for (int i = 0; i < rank; i++) info->shape[i] = (int64_t)dims[i];
    hid_t t = H5Dget_type(ha->dset);
    int bad = dtype_of(t, &info->dtype);
    H5Tclose(t);
    if (bad) return ss_fail(SS_ERR_INPUT, "array has an unsupported element type");
    hid_t dcpl = H5Dget_create_plist(ha->dset);
    hsize_t ch[STORE_MAX_RANK];
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, STORE_MAX_RANK, ch) == rank)
        for (int i = 0; i < rank; i++) info->chunk[i] = (int64_t)ch[i];
    else
        for (int i = 0; i < rank; i++) info->chunk[i] = info->shape[i];
    compressor_text(dcpl, info->compressor, sizeof info->compressor);
    H5Pclose(dcpl);
    info->stored_bytes = (int64_t)H5Dget_storage_size(ha->dset);
    info->has_meta = read_meta(ha->dset, &info->meta);
    return SS_OK;
}

static int select_slab(hid_t dset, int rank_expected, const int64_t *start, const int64_t *count, hid_t *fsp,
                       hid_t *msp)
{
    *fsp = H5Dget_space(dset);
    int rank = H5Sget_simple_extent_ndims(*fsp);
    if (rank != rank_expected && rank_expected >= 0) {
        H5Sclose(*fsp);
        return -1;
    }
    hsize_t dims[STORE_MAX_RANK], st[STORE_MAX_RANK], ct[STORE_MAX_RANK];
    H5Sget_simple_extent_dims(*fsp, dims, NULL);
    int64_t shape[STORE_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        shape[i] = (int64_t)dims[i];
        st[i] = (hsize_t)start[i];
        ct[i] = (hsize_t)count[i];
    }
    if (store_check_slab("array", rank, shape, start, count) != SS_OK) {
        H5Sclose(*fsp);
        return -2;
    }
    H5Sselect_hyperslab(*fsp, H5S_SELECT_SET, st, NULL, ct, NULL);
    *msp = H5Screate_simple(rank, ct, NULL);
    return 0;
}

static int slab_empty(int rank, const int64_t *count)
{
    for (int i = 0; i < rank; i++)
        if (count[i] == 0) return 1;
    return 0;
}

static int h5_array_io(store_array *a, const int64_t *start, const int64_t *count, ss_dtype mem, void *buf,
                       int write)
{
    h5array *ha = a->impl;
    hid_t sp0 = H5Dget_space(ha->dset);
    int rank = H5Sget_simple_extent_ndims(sp0);
    H5Sclose(sp0);
    if (slab_empty(rank, count)) return SS_OK;
    hid_t fsp, msp;
    int e = select_slab(ha->dset, rank, start, count, &fsp, &msp);
    if (e == -2) return SS_ERR_INTERNAL; /* message set by store_check_slab */
    if (e != 0) return ss_fail(SS_ERR_INTERNAL, "array rank mismatch");
    herr_t r = write ? H5Dwrite(ha->dset, mem_type(mem), msp, fsp, H5P_DEFAULT, buf)
                     : H5Dread(ha->dset, mem_type(mem), msp, fsp, H5P_DEFAULT, buf);
    H5Sclose(msp);
    H5Sclose(fsp);
    if (r < 0) {
        char name[256] = "?", file[1024] = "?";
        const char *why = write ? write_reason() : NULL;
        H5Iget_name(ha->dset, name, sizeof name);
        H5Fget_name(ha->dset, file, sizeof file);
        return write ? ss_fail(SS_ERR_IO, "%s: cannot write %s (%s)", file, name, why)
                     : ss_fail(SS_ERR_INPUT, "%s: cannot read %s (corrupt or truncated file)", file, name);
    }
    return SS_OK;
}

typedef struct {
    store_array *a;
    h5array *ha;
    const int64_t *start, *count;
    const void *buf; /* the slab, in the file's element layout */
    int same_type;   /* writing: buf is in the file's element layout */
    int rc;
} slab_ctx;

/* Reading: checks each chunk of the slab not yet verified through this
 * handle, from the slab where it covers the chunk, else by reading it. */
static int verify_in_slab(void *op, const int64_t *idx, const int64_t *rs, const int64_t *re, int whole)
{
    slab_ctx *c = op;
    h5array *ha = c->ha;
    int64_t k = store_chunk_linear(ha->rank, ha->shape, ha->chunk, idx);
    if (ha->sums.seen[k]) return 0;
    if (!whole) {
        c->rc = chunk_verify(c->a->s, c->a->stage, c->a->name, ha, idx);
        return c->rc != SS_OK;
    }
    int64_t off[STORE_MAX_RANK];
    for (int i = 0; i < ha->rank; i++) off[i] = rs[i] - c->start[i];
    if (store_hash_block(c->buf, ha->rank, c->count, off, re, ha->elem) != ha->sums.sum[k]) {
        sbuf where = {0};
        store_chunk_text(&where, ha->rank, ha->shape, ha->chunk, idx, ha->axes, 0);
        c->rc = store_fail_damaged(c->a->s, c->a->stage, c->a->name, "%s: checksum mismatch (the stored data is damaged)",
                                   sbuf_str(&where));
        sbuf_free(&where);
        return 1;
    }
    ha->sums.seen[k] = 1;
    return 0;
}

/* A slab that did not decode: the chunk that does not, named. */
static int find_undecodable(void *op, const int64_t *idx, const int64_t *rs, const int64_t *re, int whole)
{
    slab_ctx *c = op;
    (void)rs, (void)re, (void)whole;
    c->rc = chunk_verify(c->a->s, c->a->stage, c->a->name, c->ha, idx);
    return c->rc != SS_OK;
}

/* Reads the whole chunk at start straight into buf (bytes) as the filter
 * would decode it, without HDF5's copy of it: its checksum is then taken
 * while the chunk is in the cache. -1 when that cannot be done here; the
 * caller reads the usual way, which names any error. */
static int direct_read(h5array *ha, const int64_t *start, void *buf, size_t bytes)
{
    hsize_t off[STORE_MAX_RANK], stored = 0;
    uint32_t mask = 0;
    for (int i = 0; i < ha->rank; i++) off[i] = (hsize_t)start[i];
    if (H5Dget_chunk_storage_size(ha->dset, off, &stored) < 0 || stored == 0) return -1;
    int raw = ha->direct == DIRECT_RAW;
    void *c = raw && stored == bytes ? buf : buffer_get(&ha->stored_buf, &ha->stored_buf_size, stored);
    if (!c || H5Dread_chunk(ha->dset, H5P_DEFAULT, off, &mask, c) < 0) return -1;
    if (raw || (mask & 1)) { /* stored as it is (an optional filter that did not shrink it) */
        if (stored != bytes) return -1;
        if (c != buf) memcpy(buf, c, bytes);
        return 0;
    }
    size_t out = 0;
    if (blosc_cbuffer_validate(c, stored, &out) != 0 || out != bytes) return -1;
    return blosc_decompress_ctx(c, buf, bytes, 1) == (int)bytes ? 0 : -1;
}

static int h5_array_read(store_array *a, const int64_t *start, const int64_t *count, ss_dtype mem, void *buf)
{
    h5array *ha = a->impl;
    if (!ha->has_sums || !a->s->verify || ha->hw) return h5_array_io(a, start, count, mem, buf, 0);
    if (slab_empty(ha->rank, count)) return SS_OK;
    int rc = store_check_slab("array", ha->rank, ha->shape, start, count);
    if (rc != SS_OK) return rc;
    /* Read in the file's element layout, check, then convert as H5Dread
     * would have. */
    size_t n = region_elems(ha->rank, count), msize = dtype_size(mem);
    void *slab = buf;
    if (mem != ha->dtype && !(slab = buffer_get(&ha->scratch, &ha->scratch_size, n * (msize > ha->elem ? msize : ha->elem))))
        return ss_fail(SS_ERR_NOMEM, "out of memory for a slab of %zu elements", n);
    slab_ctx c = {.a = a, .ha = ha, .start = start, .count = count, .buf = slab, .rc = SS_OK};
    int one_chunk = ha->direct && slab == buf;
    for (int i = 0; one_chunk && i < ha->rank; i++) one_chunk = start[i] % ha->chunk[i] == 0 && count[i] == ha->chunk[i];
    if (one_chunk && direct_read(ha, start, buf, n * msize) == 0) {
        store_for_chunks(ha->rank, ha->shape, ha->chunk, start, count, verify_in_slab, &c);
        return c.rc;
    }
    if (region_read(ha, start, count, slab) != 0) {
        memset(ha->sums.seen, 0, (size_t)(ha->sums.n > 0 ? ha->sums.n : 1));
        store_for_chunks(ha->rank, ha->shape, ha->chunk, start, count, find_undecodable, &c);
        if (c.rc == SS_OK) c.rc = h5_array_io(a, start, count, mem, buf, 0); /* names the file */
        return c.rc != SS_OK ? c.rc : ss_fail(SS_ERR_INPUT, "%s: stage '%s', '%s': cannot be read", a->s->path,
                                               a->stage, a->name);
    }
    store_for_chunks(ha->rank, ha->shape, ha->chunk, start, count, verify_in_slab, &c);
    if (c.rc != SS_OK) return c.rc;
    if (slab != buf) {
        if (H5Tconvert(ha->rtype, mem_type(mem), n, slab, NULL, H5P_DEFAULT) < 0)
            return ss_fail(SS_ERR_INTERNAL, "%s: cannot convert %s to %s", a->s->path, dtype_name(ha->dtype),
                           dtype_name(mem));
        memcpy(buf, slab, n * msize);
    }
    return SS_OK;
}

/* Writing: the checksum of each chunk a slab covers whole comes from the
 * slab; the others are read back when the array is closed. */
static int sum_in_slab(void *op, const int64_t *idx, const int64_t *rs, const int64_t *re, int whole)
{
    slab_ctx *c = op;
    h5array *ha = c->ha;
    int64_t k = store_chunk_linear(ha->rank, ha->shape, ha->chunk, idx);
    ha->sums.stored[k] = 1;
    ha->sums.seen[k] = 0;
    if (whole && c->same_type) {
        int64_t off[STORE_MAX_RANK];
        for (int i = 0; i < ha->rank; i++) off[i] = rs[i] - c->start[i];
        ha->sums.sum[k] = store_hash_block(c->buf, ha->rank, c->count, off, re, ha->elem);
        ha->sums.seen[k] = 1;
    }
    return 0;
}

static int h5_array_write(store_array *a, const int64_t *start, const int64_t *count, ss_dtype mem,
                          const void *buf)
{
    h5array *ha = a->impl;
    int rc = h5_array_io(a, start, count, mem, (void *)buf, 1);
    if (rc == SS_OK && ha->hw) {
        slab_ctx c = {.a = a, .ha = ha, .start = start, .count = count, .buf = buf, .same_type = mem == ha->dtype};
        store_for_chunks(ha->rank, ha->shape, ha->chunk, start, count, sum_in_slab, &c);
    }
    return rc;
}

/* The checksum attribute of a dataset. */
static int sums_write(hid_t d, const store_sums *c)
{
    hsize_t n = (hsize_t)c->n;
    hid_t sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_NULL);
    hid_t at = H5Acreate2(d, SUMS_ATTR, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = at < 0 ? -1 : n ? H5Awrite(at, H5T_NATIVE_UINT64, c->sum) : 0;
    if (at >= 0) H5Aclose(at);
    H5Sclose(sp);
    return e < 0 ? -1 : 0;
}

/* At the close of an array being written: chunks never written are written
 * as fill, so that every chunk is stored; chunks no single write covered are
 * read back; then the checksums are stored. */
static int sums_finish(h5array *ha, const char *tmp_path)
{
    int rc = SS_OK;
    for (int64_t k = 0; rc == SS_OK && k < ha->sums.n; k++) {
        if (ha->sums.stored[k] && ha->sums.seen[k]) continue;
        int64_t idx[STORE_MAX_RANK], rs[STORE_MAX_RANK], re[STORE_MAX_RANK];
        store_chunk_index(ha->rank, ha->shape, ha->chunk, k, idx);
        store_chunk_region(ha->rank, ha->shape, ha->chunk, idx, rs, re);
        size_t bytes = region_elems(ha->rank, re) * ha->elem;
        void *buf = buffer_get(&ha->chunk_buf, &ha->chunk_buf_size, bytes);
        if (!buf) {
            rc = ss_fail(SS_ERR_NOMEM, "out of memory for a chunk of %zu bytes", bytes);
            break;
        }
        if (!ha->sums.stored[k]) {
            memset(buf, 0, bytes);
            hid_t fsp, msp;
            herr_t r = select_slab(ha->dset, ha->rank, rs, re, &fsp, &msp) != 0 ? -1 : 0;
            if (r == 0) {
                r = H5Dwrite(ha->dset, ha->rtype, msp, fsp, H5P_DEFAULT, buf);
                H5Sclose(msp);
                H5Sclose(fsp);
            }
            if (r < 0) rc = ss_fail(SS_ERR_IO, "%s: cannot write '%s' (%s)", tmp_path, ha->name, write_reason());
        } else if (region_read(ha, rs, re, buf) != 0) {
            rc = ss_fail(SS_ERR_IO, "%s: cannot read back '%s' to take its checksums", tmp_path, ha->name);
        }
        if (rc == SS_OK) ha->sums.sum[k] = store_hash_block(buf, ha->rank, re, (int64_t[STORE_MAX_RANK]){0}, re, ha->elem);
    }
    if (rc == SS_OK && sums_write(ha->dset, &ha->sums) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot write the checksums of '%s'", tmp_path, ha->name);
    return rc;
}

static void array_free(h5array *ha)
{
    member_release(ha);
    free(ha->name);
    free(ha);
}

static int writer_track(h5array ***list, int *n, h5array *ha)
{
    h5array **v = realloc(*list, (size_t)(*n + 1) * sizeof *v);
    if (!v) return ss_fail(SS_ERR_NOMEM, "out of memory");
    v[(*n)++] = ha;
    *list = v;
    return SS_OK;
}

/* Finishes the checksums of the arrays closed (commit), or drops them
 * (abort); arrays still open are cut loose. */
static int writer_finish_arrays(h5writer *hw, int commit)
{
    int rc = SS_OK;
    for (int i = 0; i < hw->n_open; i++) hw->open[i]->hw = NULL;
    for (int i = 0; i < hw->n_done; i++) {
        h5array *ha = hw->done[i];
        if (commit && rc == SS_OK) {
            ha->dset = H5Dopen2(hw->file, ha->name, H5P_DEFAULT);
            rc = ha->dset < 0 ? ss_fail(SS_ERR_IO, "%s: cannot reopen '%s'", hw->tmp_path, ha->name)
                              : sums_finish(ha, hw->tmp_path);
            if (ha->dset >= 0) H5Dclose(ha->dset);
        }
        array_free(ha);
    }
    free(hw->open);
    free(hw->done);
    hw->open = hw->done = NULL;
    hw->n_open = hw->n_done = 0;
    return rc;
}

static void h5_array_close(store_array *a)
{
    h5array *ha = a->impl;
    if (!ha) return;
    a->impl = NULL;
    H5Dclose(ha->dset);
    ha->dset = H5I_INVALID_HID;
    if (ha->owns_file) stage_close(ha->file);
    h5writer *hw = ha->hw;
    if (hw) {
        /* the checksums are finished at the commit, which reports errors */
        for (int i = 0; i < hw->n_open; i++)
            if (hw->open[i] == ha) hw->open[i] = hw->open[--hw->n_open];
        if (writer_track(&hw->done, &hw->n_done, ha) == SS_OK) return;
        if (!hw->failed) {
            hw->failed = SS_ERR_NOMEM;
            hw->failed_msg = ss_strdup(ss_errmsg());
        }
    }
    array_free(ha);
}

/* ---- tables --------------------------------------------------------------- */

static int h5_is_table(store *s, const char *stage, const char *name)
{
    hid_t f;
    if (stage_open(s, stage, &f) != SS_OK) return SS_ERR_INPUT;
    int r = SS_ERR_INPUT;
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
        if (d >= 0) {
            r = H5Aexists(d, TABLE_ATTR) > 0;
            H5Dclose(d);
        }
    }
    stage_close(f);
    if (r < 0) ss_fail(SS_ERR_INPUT, "%s: stage '%s' has no array or table '%s'", s->path, stage, name);
    return r;
}

/* 1 when the file stores every row the table's shape claims, as a table this
 * program wrote does (all chunks written; contiguous data of its full size):
 * a damaged shape must not size the buffers the rows are read into. */
static int table_rows_stored(hid_t d, hid_t ft, hid_t sp, hssize_t nrows)
{
    hid_t dcpl = H5Dget_create_plist(d);
    hsize_t chunk = 0, chunks = 0;
    int ok;
    if (H5Pget_layout(dcpl) == H5D_CHUNKED)
        ok = H5Pget_chunk(dcpl, 1, &chunk) == 1 && chunk > 0 && H5Dget_num_chunks(d, sp, &chunks) >= 0 &&
             ((hsize_t)nrows + chunk - 1) / chunk <= chunks;
    else
        ok = (double)nrows * (double)H5Tget_size(ft) <= (double)H5Dget_storage_size(d);
    H5Pclose(dcpl);
    return ok;
}

static int h5_table_read(store *s, const char *stage, const char *name, table_data *t)
{
    h5array ha;
    int rc = member_open(s, stage, name, &ha);
    if (rc != SS_OK) return rc;
    hid_t f = ha.file, d = ha.dset;
    /* Tables are read whole: every chunk is checked first. */
    for (int64_t k = 0; rc == SS_OK && ha.has_sums && s->verify && k < ha.sums.n; k++) {
        int64_t idx = k;
        rc = chunk_verify(s, stage, name, &ha, &idx);
    }
    hid_t ft = H5Dget_type(d);
    hid_t sp = H5Dget_space(d);
    hssize_t nrows = H5Sget_simple_extent_npoints(sp);
    int ncols = H5Tget_class(ft) == H5T_COMPOUND ? H5Tget_nmembers(ft) : -1;
    if (rc != SS_OK) goto done; /* a chunk failed its checksum */
    if (ncols < 1 || nrows < 0) {
        rc = ss_fail(SS_ERR_INPUT, "%s: '%s/%s' is not a table", s->path, stage, name);
        goto done;
    }
    if ((uint64_t)nrows * (uint64_t)ncols * TABLE_STR_LEN > TABLE_MAX_BYTES) {
        rc = ss_fail(SS_ERR_INPUT, "%s: table '%s/%s' of %lld rows and %d columns is larger than the %d MiB supported",
                     s->path, stage, name, (long long)nrows, ncols, (int)(TABLE_MAX_BYTES >> 20));
        goto done;
    }
    if (nrows > 0 && !table_rows_stored(d, ft, sp, nrows)) {
        rc = ss_fail(SS_ERR_INPUT, "%s: table '%s/%s' is damaged: its shape claims %lld rows, more than the file stores",
                     s->path, stage, name, (long long)nrows);
        goto done;
    }
    t->n_cols = ncols;
    t->n_rows = nrows;
    t->names = calloc((size_t)ncols, sizeof *t->names);
    t->types = calloc((size_t)ncols, sizeof *t->types);
    t->data = calloc((size_t)ncols, sizeof *t->data);
    if (!t->names || !t->types || !t->data) {
        rc = ss_fail(SS_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int c = 0; c < ncols && rc == SS_OK; c++) {
        char *mname = H5Tget_member_name(ft, (unsigned)c);
        hid_t mt = H5Tget_member_type(ft, (unsigned)c);
        t->names[c] = ss_strdup(mname);
        H5free_memory(mname);
        H5T_class_t cls = H5Tget_class(mt);
        size_t esz;
        hid_t memt;
        if (cls == H5T_STRING) {
            t->types[c] = COL_STR;
            esz = TABLE_STR_LEN;
            memt = H5Tcopy(H5T_C_S1);
            H5Tset_size(memt, TABLE_STR_LEN);
            H5Tset_strpad(memt, H5T_STR_NULLTERM);
        } else if (cls == H5T_INTEGER) {
            t->types[c] = COL_I64;
            esz = 8;
            memt = H5Tcopy(H5T_NATIVE_INT64);
        } else {
            t->types[c] = COL_F64;
            esz = 8;
            memt = H5Tcopy(H5T_NATIVE_DOUBLE);
        }
        /* Read one column at a time through a one-member compound type. */
        hid_t one = H5Tcreate(H5T_COMPOUND, esz);
        H5Tinsert(one, t->names[c], 0, memt);
        t->data[c] = calloc(nrows ? (size_t)nrows : 1, esz);
        if (!t->data[c]) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
        else if (nrows && H5Dread(d, one, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data[c]) < 0)
            rc = ss_fail(SS_ERR_INPUT, "%s: cannot read table '%s/%s'", s->path, stage, name);
        H5Tclose(one);
        H5Tclose(memt);
        H5Tclose(mt);
    }
done:
    if (rc != SS_OK) table_free(t);
    H5Sclose(sp);
    H5Tclose(ft);
    member_release(&ha);
    H5Dclose(d);
    stage_close(f);
    return rc;
}

/* ---- checks ---------------------------------------------------------------- */

static int h5_check_member(store *s, const char *stage, const char *name, const json_t *entry, int content, int stop,
                           store_finding_fn fn, void *ctx, int64_t *chunks)
{
    h5array ha = {.rtype = H5I_INVALID_HID};
    hid_t f;
    int rc = stage_open(s, stage, &f);
    if (rc != SS_OK) return store_finding_of(rc, fn, ctx, stage, name);
    hid_t d = dataset_open(f, name);
    int problems = 0;
    if (d < 0) {
        problems = store_finding_of(store_fail_damaged(s, stage, name, "missing (the stage committed it)"), fn, ctx,
                                    stage, name);
        stage_close(f);
        return problems;
    }
    ha.file = f;
    char what[512];
    snprintf(what, sizeof what, "%s: %s/%s", s->path, stage, name);
    rc = member_fill(&ha, d, what);
    array_meta m;
    if (rc == SS_OK && read_meta(d, &m)) memcpy(ha.axes, m.axes, sizeof ha.axes);
    if (rc == SS_OK) rc = member_committed(s, stage, name, &ha, entry);
    problems = rc == SS_OK ? 0 : store_finding_of(rc, fn, ctx, stage, name);
    if (problems == 0) {
        hsize_t nc = 0;
        hid_t sp = H5Dget_space(d);
        herr_t e = H5Dget_num_chunks(d, sp, &nc);
        H5Sclose(sp);
        if (e < 0 || (int64_t)nc != ha.sums.n)
            problems = store_finding_of(
                store_fail_damaged(s, stage, name, "%lld of its %lld chunks are missing",
                                   (long long)(ha.sums.n - (int64_t)nc), (long long)ha.sums.n),
                fn, ctx, stage, name);
    }
    for (int64_t k = 0; content && problems >= 0 && !(stop && problems) && ha.has_sums && k < ha.sums.n; k++) {
        int64_t idx[STORE_MAX_RANK];
        store_chunk_index(ha.rank, ha.shape, ha.chunk, k, idx);
        int r = store_finding_of(chunk_verify(s, stage, name, &ha, idx), fn, ctx, stage, name);
        if (r < 0) problems = r;
        else problems += r;
        (*chunks)++;
    }
    member_release(&ha);
    H5Dclose(d);
    stage_close(f);
    return problems;
}

static int h5_check_index(store *s, store_finding_fn fn, void *ctx)
{
    h5store *h = s->impl;
    DIR *d = opendir(h->stagedir);
    int extra = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *rel = ss_asprintf("%s.d/%s/%s", h->base, STAGE_SUBDIR, e->d_name);
        int used = 0;
        for (int i = 0; rel && i < h->n; i++) used |= !strcmp(h->entries[i].file, rel);
        free(rel);
        extra += !used;
    }
    if (d) closedir(d);
    if (extra) {
        char *m = ss_asprintf("%s: %d file%s in %s that the index does not name (left by a killed run or a "
                              "replaced stage; the next run removes them)",
                              s->path, extra, extra == 1 ? "" : "s", h->stagedir);
        fn(ctx, STORE_NOTE, NULL, NULL, m ? m : "files outside the index");
        free(m);
    }
    return 0;
}

/* ---- packing ------------------------------------------------------------------ */

/* Attributes one by one, as stored (type, shape, bytes). H5Ocopy would do it
 * with the datasets, but HDF5 1.10 crashes copying attributes kept in dense
 * storage (more than eight on an object, or one above 64 KiB), as a stage's
 * provenance and a large array's checksums are. */
static herr_t attr_copy_visit(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    hid_t dst = *(hid_t *)op;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID, sp = a >= 0 ? H5Aget_space(a) : H5I_INVALID_HID;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t sz = t >= 0 ? H5Tget_size(t) : 0;
    void *buf = n >= 0 && sz ? calloc((size_t)(n ? n : 1), sz) : NULL;
    herr_t r = -1;
    if (buf && H5Aread(a, t, buf) >= 0) {
        hid_t b = H5Acreate2(dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (b >= 0 && H5Awrite(b, t, buf) >= 0) r = 0;
        if (b >= 0) H5Aclose(b);
        if (H5Tdetect_class(t, H5T_VLEN) > 0 || H5Tis_variable_str(t) > 0) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, buf);
    }
    free(buf);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return r;
}

static int copy_attrs(hid_t from, hid_t to)
{
    hsize_t idx = 0;
    return H5Aiterate2(from, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, attr_copy_visit, &to) < 0 &&
                   (idx = 0, H5Aiterate2(from, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_copy_visit, &to) < 0)
               ? -1
               : 0;
}

typedef struct {
    hid_t to;
    int rc;
} copy_iter;

static herr_t dset_copy_visit(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    copy_iter *it = op;
    H5O_info_t oi;
    if (info->type != H5L_TYPE_HARD || H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_DATASET)
        return 0;
    hid_t ocp = H5Pcreate(H5P_OBJECT_COPY);
    H5Pset_copy_object(ocp, H5O_COPY_WITHOUT_ATTR_FLAG);
    herr_t e = H5Ocopy(g, name, it->to, name, ocp, H5P_DEFAULT);
    H5Pclose(ocp);
    hid_t a = e >= 0 ? H5Dopen2(g, name, H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t b = e >= 0 ? H5Dopen2(it->to, name, H5P_DEFAULT) : H5I_INVALID_HID;
    if (e < 0 || a < 0 || b < 0 || copy_attrs(a, b) != 0) it->rc = -1;
    if (a >= 0) H5Dclose(a);
    if (b >= 0) H5Dclose(b);
    return it->rc;
}

/* A stage's group: its attributes and every dataset with theirs. */
static int copy_object(hid_t from, hid_t to, const char *path, const char *stage, const char *tmp)
{
    copy_iter it = {to, 0};
    hsize_t idx = 0;
    if (copy_attrs(from, to) != 0 || H5Literate(from, H5_INDEX_NAME, H5_ITER_INC, &idx, dset_copy_visit, &it) < 0 ||
        it.rc != 0)
        return ss_fail(SS_ERR_IO, "%s: cannot copy stage '%s' into %s (disk full?)", path, stage, tmp);
    return SS_OK;
}

/* Every committed stage copied whole (H5Ocopy: the same datasets, filters,
 * chunks and checksum attributes) into a group of one new file, with the
 * root attributes that make it a packed archive, written under a temporary
 * name and renamed into place. */
static int h5_pack(store *s, const char *dest, const json_t *attrs, const json_t *texts)
{
    h5store *h = s->impl;
    char *tmp = ss_asprintf("%s.tmp.%ld", dest, (long)getpid());
    if (!tmp) return ss_fail(SS_ERR_NOMEM, "out of memory");
    hid_t f = file_create(tmp, 1, 1);
    if (f < 0) {
        int rc = ss_fail(SS_ERR_IO, "%s: cannot create the archive (%s)", tmp, errno ? strerror(errno) : "HDF5 error");
        free(tmp);
        return rc;
    }
    int rc = SS_OK;
    if (attr_write_i64(f, LAYOUT_ATTR, STORE_LAYOUT_VERSION) != 0 || attr_write_str(f, "sirenstack_format", "hdf5") != 0 ||
        attr_write_i64(f, PACKED_ATTR, 1) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot write the archive's attributes", tmp);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)attrs, key, v) if (rc == SS_OK && attr_write_json(f, key, v) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot write attribute %s", tmp, key);
    for (int i = 0; i < h->n && rc == SS_OK; i++) {
        hid_t src;
        if ((rc = stage_open(s, h->entries[i].stage, &src)) != SS_OK) break;
        hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED);
        hid_t g = H5Gcreate2(f, h->entries[i].stage, H5P_DEFAULT, gcpl, H5P_DEFAULT);
        H5Pclose(gcpl);
        if (g < 0 || copy_object(src, g, s->path, h->entries[i].stage, tmp) != SS_OK)
            rc = g < 0 ? ss_fail(SS_ERR_IO, "%s: cannot create group %s", tmp, h->entries[i].stage) : SS_ERR_IO;
        if (g >= 0) H5Gclose(g);
        stage_close(src);
        ss_crashpoint("hdf5.pack.stage");
    }
    if (rc == SS_OK && json_object_size(texts)) {
        hid_t g = H5Gcreate2(f, ARCHIVE_META, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) rc = ss_fail(SS_ERR_IO, "%s: cannot create %s", tmp, ARCHIVE_META);
        json_object_foreach((json_t *)texts, key, v)
        {
            if (rc != SS_OK) break;
            const char *text = json_string_value(v);
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, strlen(text) + 1);
            H5Tset_cset(t, H5T_CSET_UTF8);
            hid_t sp = H5Screate(H5S_SCALAR);
            hid_t d = H5Dcreate2(g, key, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) < 0)
                rc = ss_fail(SS_ERR_IO, "%s: cannot write %s/%s", tmp, ARCHIVE_META, key);
            if (d >= 0) H5Dclose(d);
            H5Sclose(sp);
            H5Tclose(t);
        }
        if (g >= 0) H5Gclose(g);
    }
    if (H5Fclose(f) < 0 && rc == SS_OK) rc = ss_fail(SS_ERR_IO, "%s: write failed (disk full?)", tmp);
    if (rc == SS_OK) rc = fs_fsync_path(tmp);
    if (rc == SS_OK && rename(tmp, dest) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot rename the archive into place: %s", dest, strerror(errno));
    if (rc == SS_OK) rc = fs_fsync_dir_of(dest);
    if (rc != SS_OK) unlink(tmp);
    free(tmp);
    return rc;
}

static int h5_is_packed(store *s) { return ((h5store *)s->impl)->packed; }

static int h5_archive_text(store *s, const char *name, char **text)
{
    h5store *h = s->impl;
    *text = NULL;
    if (!h->packed) return SS_OK;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ARCHIVE_META, name);
    if (H5Lexists(h->archive, ARCHIVE_META, H5P_DEFAULT) <= 0 || H5Lexists(h->archive, path, H5P_DEFAULT) <= 0)
        return SS_OK;
    hid_t d = H5Dopen2(h->archive, path, H5P_DEFAULT);
    hid_t t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    size_t n = t >= 0 ? H5Tget_size(t) : 0;
    char *buf = n && n < ((size_t)64 << 20) ? calloc(n + 1, 1) : NULL;
    int rc = SS_OK;
    if (!buf || H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        rc = ss_fail(SS_ERR_INPUT, "%s: cannot read %s", s->path, path);
    } else {
        *text = buf;
    }
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return rc;
}

const store_backend store_backend_hdf5 = {
    .open = h5_open,
    .close = h5_close,
    .recover = h5_recover,
    .list_stages = h5_list_stages,
    .has_stage = h5_has_stage,
    .stage_attrs = h5_stage_attrs,
    .list_arrays = h5_list_arrays,
    .stage_begin = h5_stage_begin,
    .writer_attr = h5_writer_attr,
    .writer_array = h5_writer_array,
    .writer_table = h5_writer_table,
    .commit = h5_commit,
    .abort = h5_abort,
    .array_open = h5_array_open,
    .array_info = h5_array_info,
    .array_read = h5_array_read,
    .array_write = h5_array_write,
    .array_close = h5_array_close,
    .table_read = h5_table_read,
    .is_table = h5_is_table,
    .check_member = h5_check_member,
    .check_index = h5_check_index,
    .pack = h5_pack,
    .is_packed = h5_is_packed,
    .archive_text = h5_archive_text,
};
