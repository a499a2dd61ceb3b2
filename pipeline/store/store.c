#include "store_impl.h"
#include "error.h"
#include "util.h"

#include <blosc.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[DT_COUNT] = {
    [DT_U8] = {"uint8", 1},   [DT_U16] = {"uint16", 2}, [DT_I16] = {"int16", 2},
    [DT_U32] = {"uint32", 4}, [DT_I32] = {"int32", 4},  [DT_I64] = {"int64", 8},
    [DT_F32] = {"float32", 4}, [DT_F64] = {"float64", 8},
};

size_t dtype_size(ss_dtype t) { return (unsigned)t < DT_COUNT ? dtypes[t].size : 0; }
const char *dtype_name(ss_dtype t) { return (unsigned)t < DT_COUNT ? dtypes[t].name : "?"; }

array_meta array_meta_of(const array_info *info)
{
    if (info->has_meta) return info->meta;
    array_meta m;
    memset(&m, 0, sizeof m);
    if (info->rank == 3 || info->rank == 4) strcpy(m.axes, info->rank == 4 ? "rzyx" : "zyx");
    m.voxel[0] = m.voxel[1] = m.voxel[2] = 1;
    strcpy(m.unit, "micrometer");
    return m;
}

int dtype_from_name(const char *name, ss_dtype *t)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (!strcmp(name, dtypes[i].name)) {
            *t = (ss_dtype)i;
            return SS_OK;
        }
    return ss_fail(SS_ERR_INPUT, "unknown dtype '%s'", name);
}

static double load_f64(const void *p, ss_dtype t, size_t i)
{
    switch (t) {
    case DT_U8: return ((const uint8_t *)p)[i];
    case DT_U16: return ((const uint16_t *)p)[i];
    case DT_I16: return ((const int16_t *)p)[i];
    case DT_U32: return ((const uint32_t *)p)[i];
    case DT_I32: return ((const int32_t *)p)[i];
    case DT_I64: return (double)((const int64_t *)p)[i];
    case DT_F32: return ((const float *)p)[i];
    case DT_F64: return ((const double *)p)[i];
    default: return 0;
    }
}

static double sat(double v, double lo, double hi)
{
    if (v != v) return 0;
    v = trunc(v);
    return v < lo ? lo : v > hi ? hi : v;
}

void dtype_convert(void *dst, ss_dtype dt, const void *src, ss_dtype st, size_t n)
{
    if (dt == st) {
        memcpy(dst, src, n * dtype_size(dt));
        return;
    }
    if (dt == DT_F32 && st == DT_U16) { /* the common case, kept tight */
        const uint16_t *s = src;
        float *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = s[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = load_f64(src, st, i);
        switch (dt) {
        case DT_U8: ((uint8_t *)dst)[i] = (uint8_t)sat(v, 0, 255); break;
        case DT_U16: ((uint16_t *)dst)[i] = (uint16_t)sat(v, 0, 65535); break;
        case DT_I16: ((int16_t *)dst)[i] = (int16_t)sat(v, -32768, 32767); break;
        case DT_U32: ((uint32_t *)dst)[i] = (uint32_t)sat(v, 0, 4294967295.0); break;
        case DT_I32: ((int32_t *)dst)[i] = (int32_t)sat(v, -2147483648.0, 2147483647.0); break;
        case DT_I64:
            ((int64_t *)dst)[i] = (int64_t)sat(v, -9.2233720368547748e18, 9.2233720368547748e18);
            break;
        case DT_F32: ((float *)dst)[i] = (float)v; break;
        case DT_F64: ((double *)dst)[i] = v; break;
        default: break;
        }
    }
}

void table_free(table_data *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_cols; i++) {
        if (t->names) free(t->names[i]);
        if (t->data) free(t->data[i]);
    }
    free(t->names);
    free(t->types);
    free(t->data);
    memset(t, 0, sizeof *t);
}

void store_default_chunk(int rank, const int64_t *shape, size_t elem, int64_t *chunk)
{
    const int64_t target = 1 << 20;
    for (int i = 0; i < rank; i++) chunk[i] = 1;
    if (rank <= 0) return;
    int64_t plane = (int64_t)elem;
    for (int i = rank - 1; i >= 0 && i >= rank - 2; i--) {
        chunk[i] = shape[i] > 0 ? shape[i] : 1;
        plane *= chunk[i];
    }
    /* A plane over STORE_MAX_CHUNK_BYTES is cut into blocks of rows (and a
     * row of that size into pieces): HDF5 refuses chunks of 4 GiB and more,
     * blosc buffers of 2 GiB. */
    if (plane > STORE_MAX_CHUNK_BYTES && rank >= 2) {
        int64_t row = (int64_t)elem * chunk[rank - 1];
        if (row > STORE_MAX_CHUNK_BYTES) {
            chunk[rank - 2] = 1;
            chunk[rank - 1] = STORE_MAX_CHUNK_BYTES / (int64_t)elem;
        } else {
            chunk[rank - 2] = STORE_MAX_CHUNK_BYTES / row;
        }
        return;
    }
    if (rank >= 3) {
        int64_t k = plane > 0 ? target / plane : 1;
        int a = rank - 3;
        if (k < 1) k = 1;
        if (k > shape[a]) k = shape[a] > 0 ? shape[a] : 1;
        chunk[a] = k;
    }
}

int store_check_slab(const char *what, int rank, const int64_t *shape, const int64_t *start,
                     const int64_t *count)
{
    for (int i = 0; i < rank; i++)
        if (start[i] < 0 || count[i] < 0 || start[i] + count[i] > shape[i])
            return ss_fail(SS_ERR_INTERNAL, "%s: slab [%lld,+%lld) outside axis %d of size %lld", what,
                           (long long)start[i], (long long)count[i], i, (long long)shape[i]);
    return SS_OK;
}

int store_valid_name(const char *name)
{
    if (!name || !name[0] || name[0] == '.' || strlen(name) > 100) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-'))
            return 0;
    return 1;
}

/* ---- dispatch ---------------------------------------------------------- */

static void array_free(store_array *a)
{
    free(a->stage);
    free(a->name);
    free(a);
}

static void store_free(store *s)
{
    free(s->path);
    free(s->workdir);
    free(s->index_problem);
    free(s->repaired);
    json_decref(s->damage_seen);
    free(s);
}

int store_open(const char *path, store_format fmt, int flags, store **out)
{
    *out = NULL;
    store *s = calloc(1, sizeof *s);
    if (!s) return ss_fail(SS_ERR_NOMEM, "out of memory");
    s->fmt = fmt;
    s->path = ss_strdup(path);
    s->lock_fd = -1;
    s->comp = STORE_COMP_BLOSC_LZ4;
    s->layout_version = STORE_LAYOUT_VERSION;
    s->verify = store_verify_default();
    s->be = fmt == STORE_ZARR ? &store_backend_zarr : &store_backend_hdf5;
    if (flags & STORE_OPEN_CREATE) flags |= STORE_OPEN_REPAIRABLE;
    int rc = s->be->open(s, flags);
    if (rc != SS_OK) {
        store_free(s);
        return rc;
    }
    if (s->index_problem && !(flags & STORE_OPEN_REPAIRABLE)) {
        rc = ss_fail(SS_ERR_INPUT, "%s: 'sirenstack run' does ('sirenstack verify' checks the stages)",
                     s->index_problem);
        store_close(s);
        return rc;
    }
    *out = s;
    return SS_OK;
}

void store_close(store *s)
{
    if (!s) return;
    s->be->close(s);
    if (s->lock_fd >= 0) close(s->lock_fd);
    store_free(s);
}

const char *store_repaired(const store *s) { return s->repaired; }
const char *store_index_problem(const store *s) { return s->index_problem; }

store_format store_get_format(const store *s) { return s->fmt; }
void store_set_compression(store *s, store_compression c) { s->comp = c; }
store_compression store_get_compression(const store *s) { return s->comp; }
int store_layout_version(const store *s) { return s->layout_version; }

static const char *const compression_names[STORE_COMP_COUNT] = {"blosc-lz4", "blosc-zstd", "gzip", "none"};

const char *store_compression_name(store_compression c)
{
    return (unsigned)c < STORE_COMP_COUNT ? compression_names[c] : "?";
}

int store_compression_from_name(const char *name, store_compression *c)
{
    for (int i = 0; i < STORE_COMP_COUNT; i++)
        if (name && !strcmp(name, compression_names[i])) {
            *c = (store_compression)i;
            return SS_OK;
        }
    return ss_fail(SS_ERR_CONFIG, "unknown compression '%s' (blosc-lz4, blosc-zstd, gzip, none)", name ? name : "");
}

int store_compression_check(store_compression c)
{
    if (c == STORE_COMP_BLOSC_ZSTD && blosc_compname_to_compcode(BLOSC_ZSTD_COMPNAME) < 0)
        return ss_fail(SS_ERR_CONFIG,
                       "blosc-zstd is not available: this blosc library (%s) was built without zstd (it has %s); "
                       "use blosc-lz4, gzip or none",
                       blosc_get_version_string(), blosc_list_compressors());
    if ((unsigned)c >= STORE_COMP_COUNT) return ss_fail(SS_ERR_INTERNAL, "compression %d out of range", (int)c);
    return SS_OK;
}
const char *store_path(const store *s) { return s->path; }
const char *store_workdir(const store *s) { return s->workdir; }

int store_lock(store *s)
{
    if (s->lock_fd >= 0) return SS_OK;
    char *p = path_join(s->workdir, "lock");
    if (!p) return ss_fail(SS_ERR_NOMEM, "out of memory");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        int rc = ss_fail(SS_ERR_IO, "%s: cannot open lock file: %s", p, strerror(errno));
        free(p);
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        /* Anything but EWOULDBLOCK: no lock to be had here (ENOLCK: NFS
         * without a lock manager; ENOSYS: Lustre without -o flock). */
        int rc = e != EWOULDBLOCK
                     ? ss_fail(SS_ERR_IO, "%s: cannot lock %s: %s (the file system may not support file locks: NFS "
                               "needs NFSv4 or lockd, Lustre the flock mount option)", s->path, p, strerror(e))
                     : ss_fail(SS_ERR_IO, "%s: container is in use by another run (%s)", s->path,
                               holder[0] ? holder : "unknown process");
        close(fd);
        free(p);
        return rc;
    }
    char me[300];
    int n = snprintf(me, sizeof me, "pid %ld on %s\n", (long)getpid(), ss_hostname());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, me, (size_t)n, 0) != n) { /* informative only */
    }
    free(p);
    s->lock_fd = fd;
    return SS_OK;
}

int store_recover(store *s)
{
    if (s->lock_fd < 0) return ss_fail(SS_ERR_INTERNAL, "%s: recover without the lock", s->path);
    return s->be->recover(s);
}

int store_list_stages(store *s, char ***names) { return s->be->list_stages(s, names); }

void store_names_free(char **names)
{
    if (!names) return;
    for (char **p = names; *p; p++) free(*p);
    free(names);
}

int store_has_stage(store *s, const char *stage) { return s->be->has_stage(s, stage); }
int store_stage_attrs(store *s, const char *stage, json_t **attrs) { return s->be->stage_attrs(s, stage, attrs); }
int store_list_arrays(store *s, const char *stage, char ***names) { return s->be->list_arrays(s, stage, names); }

int store_stage_begin(store *s, const char *stage, store_writer **w)
{
    *w = NULL;
    if (!store_valid_name(stage)) return ss_fail(SS_ERR_INTERNAL, "invalid stage name '%s'", stage);
    store_writer *nw = calloc(1, sizeof *nw);
    if (!nw) return ss_fail(SS_ERR_NOMEM, "out of memory");
    nw->s = s;
    nw->stage = ss_strdup(stage);
    nw->arrays = json_object();
    int rc = nw->stage && nw->arrays ? store_compression_check(s->comp) : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = s->be->stage_begin(nw);
    if (rc != SS_OK) {
        json_decref(nw->arrays);
        free(nw->stage);
        free(nw);
        return rc;
    }
    /* Every stage records the compression its arrays and tables get. */
    json_t *comp = json_string(store_compression_name(s->comp));
    rc = s->be->writer_attr(nw, "compression", comp);
    json_decref(comp);
    if (rc != SS_OK) {
        store_abort_stage(nw);
        return rc;
    }
    *w = nw;
    return SS_OK;
}

int store_writer_attr(store_writer *w, const char *key, json_t *value)
{
    return w->s->be->writer_attr(w, key, value);
}

int store_writer_array(store_writer *w, const char *name, ss_dtype dt, int rank, const int64_t *shape,
                       const int64_t *chunk, const array_meta *meta, store_array **a)
{
    *a = NULL;
    if (!store_valid_name(name)) return ss_fail(SS_ERR_INTERNAL, "invalid array name '%s'", name);
    if (rank < 1 || rank > STORE_MAX_RANK) return ss_fail(SS_ERR_INTERNAL, "%s: rank %d not supported", name, rank);
    for (int i = 0; i < rank; i++)
        if (shape[i] < 0 || (chunk && chunk[i] < 1))
            return ss_fail(SS_ERR_INTERNAL, "%s: bad shape or chunk on axis %d", name, i);
    store_array *na = calloc(1, sizeof *na);
    if (!na) return ss_fail(SS_ERR_NOMEM, "out of memory");
    na->s = w->s;
    na->writable = 1;
    na->stage = ss_strdup(w->stage);
    na->name = ss_strdup(name);
    int64_t ch[STORE_MAX_RANK];
    if (!chunk) {
        store_default_chunk(rank, shape, dtype_size(dt), ch);
        chunk = ch;
    }
    int rc = na->stage && na->name ? w->s->be->writer_array(w, name, dt, rank, shape, chunk, meta, na)
                                   : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc != SS_OK) {
        array_free(na);
        return rc;
    }
    *a = na;
    return SS_OK;
}

int store_writer_table(store_writer *w, const char *name, const table_view *t)
{
    if (!store_valid_name(name)) return ss_fail(SS_ERR_INTERNAL, "invalid table name '%s'", name);
    return w->s->be->writer_table(w, name, t);
}

/* UTC with microseconds, 2026-12-01T10:11:12.123456Z: orders the commits
 * of one stage even within a second. */
static void utc_micro(char out[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

int store_commit_stage(store_writer *w)
{
    /* What the stage commits, for the checks of every later read. */
    char now[40];
    utc_micro(now);
    json_t *name = json_string(w->stage), *when = json_string(now);
    int rc = name && when ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = w->s->be->writer_attr(w, STORE_ARRAYS_ATTR, w->arrays);
    if (rc == SS_OK) rc = w->s->be->writer_attr(w, STORE_STAGE_ATTR, name);
    if (rc == SS_OK) rc = w->s->be->writer_attr(w, STORE_COMMIT_TIME_ATTR, when);
    json_decref(name);
    json_decref(when);
    if (rc != SS_OK) {
        store_abort_stage(w);
        return rc;
    }
    rc = w->s->be->commit(w);
    if (rc == SS_OK) store_clear_damage(w->s, w->stage);
    json_decref(w->arrays);
    free(w->stage);
    free(w);
    return rc;
}

void store_abort_stage(store_writer *w)
{
    if (!w) return;
    w->s->be->abort(w);
    json_decref(w->arrays);
    free(w->stage);
    free(w);
}

int store_array_open(store *s, const char *stage, const char *name, store_array **a)
{
    *a = NULL;
    store_array *na = calloc(1, sizeof *na);
    if (!na) return ss_fail(SS_ERR_NOMEM, "out of memory");
    na->s = s;
    na->stage = ss_strdup(stage);
    na->name = ss_strdup(name);
    int rc = na->stage && na->name ? s->be->array_open(s, stage, name, na) : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc != SS_OK) {
        array_free(na);
        return rc;
    }
    *a = na;
    return SS_OK;
}

int store_array_info(store_array *a, array_info *info)
{
    memset(info, 0, sizeof *info);
    int rc = a->s->be->array_info(a, info);
    if (rc != SS_OK || !a->view_rank) return rc;
    info->rank--;
    memmove(info->shape, info->shape + 1, (size_t)info->rank * sizeof *info->shape);
    memmove(info->chunk, info->chunk + 1, (size_t)info->rank * sizeof *info->chunk);
    if (info->has_meta && info->meta.axes[0])
        memmove(info->meta.axes, info->meta.axes + 1, strlen(info->meta.axes));
    return SS_OK;
}

int store_array_drop_first_axis(store_array *a)
{
    array_info info;
    int rc = store_array_info(a, &info);
    if (rc != SS_OK) return rc;
    if (a->view_rank || info.rank < 2 || info.shape[0] != 1)
        return ss_fail(SS_ERR_INTERNAL, "cannot drop the first axis of %s array of rank %d, first axis %lld",
                       a->view_rank ? "a viewed" : "an", info.rank, (long long)info.shape[0]);
    a->view_rank = info.rank - 1;
    return SS_OK;
}

int store_array_read(store_array *a, const int64_t *start, const int64_t *count, ss_dtype mem, void *buf)
{
    if (!a->view_rank) return a->s->be->array_read(a, start, count, mem, buf);
    /* the backend's hyperslab: index 0 of the first axis, then the caller's */
    int64_t fs[STORE_MAX_RANK] = {0}, fc[STORE_MAX_RANK] = {1};
    memcpy(fs + 1, start, (size_t)a->view_rank * sizeof *fs);
    memcpy(fc + 1, count, (size_t)a->view_rank * sizeof *fc);
    return a->s->be->array_read(a, fs, fc, mem, buf);
}

int store_array_write(store_array *a, const int64_t *start, const int64_t *count, ss_dtype mem, const void *buf)
{
    if (!a->writable) return ss_fail(SS_ERR_INTERNAL, "array opened read-only");
    if (a->view_rank) return ss_fail(SS_ERR_INTERNAL, "writing through a view without the first axis");
    return a->s->be->array_write(a, start, count, mem, buf);
}

void store_array_close(store_array *a)
{
    if (!a) return;
    a->s->be->array_close(a);
    array_free(a);
}

int store_table_read(store *s, const char *stage, const char *name, table_data *t)
{
    memset(t, 0, sizeof *t);
    return s->be->table_read(s, stage, name, t);
}

int store_is_table(store *s, const char *stage, const char *name) { return s->be->is_table(s, stage, name); }

const char *store_hdf5_version(void)
{
    static char v[32];
    unsigned maj, min, rel;
    if (!v[0] && H5get_libversion(&maj, &min, &rel) >= 0) snprintf(v, sizeof v, "%u.%u.%u", maj, min, rel);
    return v;
}

const char *store_blosc_version(void) { return blosc_get_version_string(); }

int table_write_csv(const table_data *t, FILE *f)
{
    for (int c = 0; c < t->n_cols; c++) fprintf(f, "%s%s", c ? "," : "", t->names[c]);
    fputc('\n', f);
    for (int64_t r = 0; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) {
            if (c) fputc(',', f);
            if (t->types[c] == COL_F64) {
                double v = ((double *)t->data[c])[r];
                if (isnan(v)) fputs("nan", f);
                else fprintf(f, "%.17g", v);
            }
            else if (t->types[c] == COL_I64) fprintf(f, "%lld", (long long)((int64_t *)t->data[c])[r]);
            else {
                const char *s = (const char *)t->data[c] + r * TABLE_STR_LEN;
                if (strpbrk(s, ",\"\n")) {
                    fputc('"', f);
                    for (; *s; s++) {
                        if (*s == '"') fputc('"', f);
                        fputc(*s, f);
                    }
                    fputc('"', f);
                } else {
                    fputs(s, f);
                }
            }
        }
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

/* ---- archives -------------------------------------------------------------- */

int store_pack(store *s, const char *dest, const json_t *attrs, const json_t *texts)
{
    if (!s->be->pack) return ss_fail(SS_ERR_INTERNAL, "%s: this store cannot pack itself", s->path);
    return s->be->pack(s, dest, attrs, texts);
}

int store_is_packed(store *s) { return s->be->is_packed ? s->be->is_packed(s) : 0; }

int store_archive_text(store *s, const char *name, char **text)
{
    *text = NULL;
    return s->be->archive_text ? s->be->archive_text(s, name, text) : SS_OK;
}

/* The attributes the store writes itself at a commit. */
static int store_own_attr(const char *key)
{
    return !strcmp(key, "sirenstack_arrays") || !strcmp(key, "sirenstack_stage") ||
           !strcmp(key, "sirenstack_commit_time") || !strcmp(key, "sirenstack_committed");
}

/* One array, a chunk at a time (the chunk grid of the source). */
static int copy_array(store *from, const char *stage, const char *name, store_writer *w)
{
    store_array *a = NULL, *b = NULL;
    int rc = store_array_open(from, stage, name, &a);
    array_info info;
    if (rc == SS_OK) rc = store_array_info(a, &info);
    array_meta meta = rc == SS_OK ? array_meta_of(&info) : (array_meta){0};
    if (rc == SS_OK)
        rc = store_writer_array(w, name, info.dtype, info.rank, info.shape, info.chunk, info.has_meta ? &meta : NULL, &b);
    size_t n = 1;
    for (int i = 0; rc == SS_OK && i < info.rank; i++) n *= (size_t)info.chunk[i];
    void *buf = rc == SS_OK ? malloc(n * dtype_size(info.dtype) + 1) : NULL;
    if (rc == SS_OK && !buf) rc = ss_nomem(n * dtype_size(info.dtype), "%s/%s: one chunk", stage, name);
    int64_t nchunks = 1, grid[STORE_MAX_RANK];
    for (int i = 0; rc == SS_OK && i < info.rank; i++) {
        grid[i] = (info.shape[i] + info.chunk[i] - 1) / info.chunk[i];
        nchunks *= grid[i];
    }
    for (int64_t k = 0; rc == SS_OK && k < nchunks; k++) {
        int64_t start[STORE_MAX_RANK], count[STORE_MAX_RANK], r = k;
        for (int i = info.rank - 1; i >= 0; i--) {
            start[i] = (r % grid[i]) * info.chunk[i];
            r /= grid[i];
            count[i] = info.shape[i] - start[i] < info.chunk[i] ? info.shape[i] - start[i] : info.chunk[i];
        }
        rc = store_array_read(a, start, count, info.dtype, buf);
        if (rc == SS_OK) rc = store_array_write(b, start, count, info.dtype, buf);
    }
    free(buf);
    if (b) store_array_close(b);
    if (a) store_array_close(a);
    return rc;
}

int store_writer_table_data(store_writer *w, const char *name, const table_data *t)
{
    size_t rows = (size_t)(t->n_rows ? t->n_rows : 1);
    table_col *cols = calloc((size_t)t->n_cols + 1, sizeof *cols);
    const char **strs = calloc((size_t)t->n_cols * rows + 1, sizeof *strs);
    int rc = cols && strs ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int c = 0; rc == SS_OK && c < t->n_cols; c++) {
        cols[c].name = t->names[c];
        cols[c].type = t->types[c];
        if (t->types[c] == COL_F64) cols[c].f64 = t->data[c];
        else if (t->types[c] == COL_I64) cols[c].i64 = t->data[c];
        else {
            const char **col = strs + (size_t)c * rows;
            for (int64_t r = 0; r < t->n_rows; r++) col[r] = (const char *)t->data[c] + r * TABLE_STR_LEN;
            cols[c].str = col;
        }
    }
    table_view v = {.n_cols = t->n_cols, .n_rows = t->n_rows, .cols = cols};
    if (rc == SS_OK) rc = store_writer_table(w, name, &v);
    free(strs);
    free(cols);
    return rc;
}

static int copy_table(store *from, const char *stage, const char *name, store_writer *w)
{
    table_data t;
    int rc = store_table_read(from, stage, name, &t);
    if (rc != SS_OK) return rc;
    rc = store_writer_table_data(w, name, &t);
    table_free(&t);
    return rc;
}

int store_copy_stage(store *from, store *to, const char *stage)
{
    json_t *attrs = NULL;
    char **names = NULL;
    store_writer *w = NULL;
    int rc = store_stage_attrs(from, stage, &attrs);
    store_compression was = to->comp, comp = was;
    const char *cname = json_string_value(json_object_get(attrs, "compression"));
    if (rc == SS_OK && cname && store_compression_from_name(cname, &comp) == SS_OK) to->comp = comp;
    if (rc == SS_OK) rc = store_list_arrays(from, stage, &names);
    if (rc == SS_OK) rc = store_stage_begin(to, stage, &w);
    const char *key;
    json_t *v;
    json_object_foreach(attrs, key, v) if (rc == SS_OK && !store_own_attr(key)) rc = store_writer_attr(w, key, v);
    for (int i = 0; rc == SS_OK && names[i]; i++) {
        int t = store_is_table(from, stage, names[i]);
        rc = t < 0 ? t : t ? copy_table(from, stage, names[i], w) : copy_array(from, stage, names[i], w);
    }
    if (rc == SS_OK) {
        rc = store_commit_stage(w);
        w = NULL;
    }
    if (w) store_abort_stage(w);
    to->comp = was;
    store_names_free(names);
    json_decref(attrs);
    return rc;
}
