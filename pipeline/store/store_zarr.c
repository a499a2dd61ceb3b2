/* Zarr v2 backend of the container store.
 *
 * Layout, version 2 (schemas/container-layout.md is the specification):
 *   <sample>.zarr/.zgroup, .zattrs         {"sirenstack": {"layout_version", "format"},
 *                                           "bioformats2raw.layout": 3}
 *   <sample>.zarr/OME/.zgroup, .zattrs     {"series": [every image group, "<stage>/<array>"]}
 *   <sample>.zarr/.sirenstack/             work dir: lock, order.json, tmp/
 *   <sample>.zarr/<stage>/.zgroup, .zattrs stage attributes
 *   <sample>.zarr/<stage>/<image>/         an OME-NGFF 0.4 image: .zgroup, .zattrs
 *                                          (multiscales), 0/ the array (.zarray, .zattrs, chunks)
 *   <sample>.zarr/<stage>/<name>/          other arrays and tables: .zarray, .zattrs, chunks
 * Version 1 containers (every array at <stage>/<name>, multiscales on the
 * stage group) are read; stages are not added to them.
 *
 * Commit (DESIGN.md invariant 1): a stage is written under
 * .sirenstack/tmp/<stage>.<pid>.<n>/, every file and directory of it is
 * fsynced, and then one rename(2) publishes it -- renameat2(RENAME_EXCHANGE)
 * when a committed stage of that name is being replaced. The entry <stage>
 * therefore always names either the complete old tree or the complete new
 * one, whatever instant the process dies at. OME/.zattrs is replaced
 * atomically around that rename so that it never names an image that is not
 * there; recovery adds what a kill kept it from naming.
 *
 * Threads: blosc is called through its _ctx functions, so different arrays
 * may be read or written from different threads. One array handle, and one
 * writer with the arrays it created, belong to one thread at a time. */
#include "store_impl.h"
#include "error.h"
#include "util.h"
#include "zarr.h"

#include <blosc.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Decoded chunks kept per open array. A plane-by-plane write or read touches
 * every chunk under the plane once per plane; holding them all saves a
 * decompress/compress round trip per plane and chunk (64x for chunks 64
 * planes deep). The cache starts at ZARR_CACHE_BYTES and grows to hold the
 * chunks one slab touches, up to ZARR_CACHE_MAX_BYTES: the working set the
 * chunk shape implies, bounded whatever the size of the array (invariant 6).
 * Beyond it, access stays correct but re-encodes chunks. */
#define ZARR_CACHE_BYTES ((size_t)32 << 20)
#define ZARR_CACHE_MAX_BYTES ((size_t)512 << 20)
#define ZARR_CACHE_MAX_SLOTS 1024
/* Caps the slots per array, for tests of eviction and for tight memory. */
#define ZARR_CACHE_ENV "SIRENSTACK_ZARR_CACHE_SLOTS"
#define ZARR_TABLE_CHUNK_ROWS 65536
#define ZARR_TABLE_CHUNK_BYTES ((size_t)4 << 20)
#define ZARR_TABLE_MAX_COLS 4096
#define ZARR_TABLE_MAX_BYTES ((uint64_t)1 << 30) /* as read back into table_data */
/* The group that lists the images for OME-NGFF readers (the 0.4
 * "bioformats2raw.layout"); no stage may take its name. */
#define ZARR_OME_GROUP "OME"
/* The one resolution level of an image group. */
#define ZARR_LEVEL "0"
/* In each stage group: the chunk checksums of its arrays and tables
 * (schemas/container-layout.md, "Checksums"); zarr readers pass it by. */
#define ZARR_SUMS_FILE ".sirenstack_checksums.json"

/* ---- small file helpers ------------------------------------------------- */

/* Makes the group dir of a tree that is not visible yet: .zgroup, and
 * .zattrs holding attrs. */
static int write_group(const char *dir, const json_t *attrs)
{
    if (mkdir(dir, 0777) != 0)
        return errno == EEXIST ? ss_fail(SS_ERR_INTERNAL, "%s: written twice", dir)
                               : ss_fail(SS_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    return zarr_group_write(dir, attrs, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE);
}

static int file_exists_in(const char *dir, const char *name)
{
    char *p = path_join(dir, name);
    struct stat st;
    int ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

/* fsyncs every file and directory under path, children before their parent,
 * so that the rename publishing the tree never exposes unsynced data. */
static int fsync_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return ss_fail(SS_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return ss_fail(SS_ERR_IO, "%s: cannot list: %s", path, strerror(errno));
        struct dirent *e;
        int rc = SS_OK;
        while (rc == SS_OK && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *child = path_join(path, e->d_name);
            rc = child ? fsync_tree(child) : ss_fail(SS_ERR_NOMEM, "out of memory");
            free(child);
        }
        closedir(d);
        if (rc != SS_OK) return rc;
    }
    return fs_fsync_path(path);
}

/* Names of the entries of a directory that pass keep() (NULL-terminated,
 * sorted by strcmp). */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_dir(const char *dir, int (*keep)(const char *dir, const char *name), char ***out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return ss_fail(errno == ENOENT ? SS_ERR_INPUT : SS_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    size_t n = 0, cap = 8;
    char **v = malloc(cap * sizeof *v);
    int rc = v ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    struct dirent *e;
    while (rc == SS_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (keep && !keep(dir, e->d_name)) continue;
        if (n + 1 >= cap) {
            char **nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                rc = ss_fail(SS_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
            cap *= 2;
        }
        if (!(v[n] = ss_strdup(e->d_name))) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
        else n++;
    }
    closedir(d);
    if (rc != SS_OK) {
        for (size_t i = 0; v && i < n; i++) free(v[i]);
        free(v);
        return rc;
    }
    v[n] = NULL;
    qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    return SS_OK;
}

/* ---- the container ------------------------------------------------------ */

typedef struct {
    char *tmproot; /* <container>/.sirenstack/tmp */
    char *order;   /* <container>/.sirenstack/order.json */
    char *series;  /* <container>/OME/.zattrs */
    int version;   /* layout version of the container */
} zarr_store;

/* Serialises commits of one process from the rename that publishes a stage
 * to the last update of order.json and the series (other processes are kept
 * out by the container lock). */
static pthread_mutex_t order_mutex = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint tmp_counter;

static json_t *root_attrs(void)
{
    return json_pack("{s:{s:i,s:s},s:i}", "sirenstack", "layout_version", STORE_LAYOUT_VERSION, "format", "zarr",
                     "bioformats2raw.layout", 3);
}

/* Removes <path>.creating.<pid> folders of creators that died (killed
 * between building and renaming); live creators' are left alone. */
static void remove_dead_staging(const char *path, const char *parent)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t lb = strlen(base);
    DIR *d = opendir(parent);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, base, lb) != 0 || strncmp(e->d_name + lb, ".creating.", 10) != 0) continue;
        long pid = strtol(e->d_name + lb + 10, NULL, 10);
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) continue;
        char *p = path_join(parent, e->d_name);
        if (p) fs_rm_rf(p);
        free(p);
    }
    closedir(d);
}

/* Builds the container beside its final path and renames it into place, so
 * that a container either does not exist or is complete. */
static int create_container(const char *given)
{
    /* "out/s.zarr/" names the same container as "out/s.zarr" */
    char *path = ss_strdup(given);
    for (size_t n = path ? strlen(path) : 0; n > 1 && path[n - 1] == '/'; n--) path[n - 1] = 0;
    char *parent = path ? path_dirname(path) : NULL;
    char *staging = path ? ss_asprintf("%s.creating.%ld", path, (long)getpid()) : NULL;
    char *work = staging ? path_join(staging, ".sirenstack/tmp") : NULL;
    char *ome = staging ? path_join(staging, ZARR_OME_GROUP) : NULL;
    json_t *a = root_attrs(), *series = json_pack("{s:[]}", "series");
    int rc = parent && work && ome && a && series ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = fs_mkdir_p(parent);
    if (rc == SS_OK) remove_dead_staging(path, parent);
    if (rc == SS_OK) rc = fs_rm_rf(staging);
    if (rc == SS_OK) rc = fs_mkdir_p(work);
    if (rc == SS_OK) rc = zarr_group_write(staging, a, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE);
    if (rc == SS_OK) rc = write_group(ome, series);
    if (rc == SS_OK) rc = fsync_tree(staging);
    if (rc == SS_OK) {
        /* rename(2) also replaces an empty directory, which we adopt; a
         * non-empty one (another process won the race) is checked by the
         * caller like any existing container. */
        if (rename(staging, path) != 0) {
            if (errno != EEXIST && errno != ENOTEMPTY)
                rc = ss_fail(SS_ERR_IO, "%s: cannot create container: %s", path, strerror(errno));
            fs_rm_rf(staging);
        } else {
            rc = fs_fsync_path(parent);
        }
    } else if (staging) {
        fs_rm_rf(staging);
    }
    json_decref(a);
    json_decref(series);
    free(path);
    free(parent);
    free(staging);
    free(work);
    free(ome);
    return rc;
}

/* Checks that path is a sirenstack Zarr container this build reads; *version:
 * its layout version. */
static int check_container(const char *path, int *version)
{
    char *zattrs = path_join(path, ".zattrs");
    char *zgroup = path_join(path, ".zgroup");
    json_t *a = NULL, *g = NULL;
    int rc = zattrs && zgroup ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && (!file_exists_in(path, ".zattrs") || !file_exists_in(path, ".zgroup")))
        rc = ss_fail(SS_ERR_INPUT, "%s: not a sirenstack zarr container (no .zgroup/.zattrs)", path);
    if (rc == SS_OK) rc = zarr_json_read(zgroup, 0, &g);
    if (rc == SS_OK) {
        json_t *f = json_object_get(g, "zarr_format");
        if (!json_is_integer(f) || json_integer_value(f) != 2)
            rc = ss_fail(SS_ERR_INPUT, "%s: not a zarr v2 group (zarr_format is not 2)", zgroup);
    }
    if (rc == SS_OK) rc = zarr_json_read(zattrs, 0, &a);
    if (rc == SS_OK) {
        json_t *ss = json_object_get(a, "sirenstack");
        json_t *fmt = json_object_get(ss, "format"), *ver = json_object_get(ss, "layout_version");
        if (!json_is_object(ss) || !json_is_string(fmt) || strcmp(json_string_value(fmt), "zarr") != 0 ||
            !json_is_integer(ver))
            rc = ss_fail(SS_ERR_INPUT,
                         "%s: not a sirenstack zarr container (no sirenstack.format \"zarr\" in .zattrs)", path);
        else if (json_integer_value(ver) > STORE_LAYOUT_VERSION || json_integer_value(ver) < 1)
            rc = ss_fail(SS_ERR_INPUT, "%s: container layout version %lld is not supported (this build reads 1..%d)",
                         zattrs, (long long)json_integer_value(ver), STORE_LAYOUT_VERSION);
        else *version = (int)json_integer_value(ver);
    }
    json_decref(a);
    json_decref(g);
    free(zattrs);
    free(zgroup);
    return rc;
}

static void zarr_store_free(zarr_store *zs)
{
    if (!zs) return;
    free(zs->tmproot);
    free(zs->order);
    free(zs->series);
    free(zs);
}

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

static int zarr_open(store *s, int flags)
{
    const int create = flags & STORE_OPEN_CREATE;
    struct stat st;
    int rc = SS_OK;
    if (stat(s->path, &st) != 0) {
        if (errno != ENOENT) return ss_fail(SS_ERR_IO, "%s: %s", s->path, strerror(errno));
        if (!create) return ss_fail(SS_ERR_INPUT, "%s: no such container", s->path);
        rc = create_container(s->path);
    } else if (!S_ISDIR(st.st_mode)) {
        return ss_fail(SS_ERR_INPUT, "%s: not a sirenstack zarr container (not a directory)", s->path);
    } else if (create && dir_is_empty(s->path)) {
        rc = create_container(s->path);
    }
    int version = 0;
    if (rc == SS_OK) rc = check_container(s->path, &version);
    if (rc != SS_OK) return rc;

    zarr_store *zs = calloc(1, sizeof *zs);
    s->workdir = path_join(s->path, ".sirenstack");
    if (zs && s->workdir) {
        zs->tmproot = path_join(s->workdir, "tmp");
        zs->order = path_join(s->workdir, "order.json");
        zs->series = path_join(s->path, ZARR_OME_GROUP "/.zattrs");
        zs->version = version;
        s->layout_version = version;
    }
    if (!zs || !s->workdir || !zs->tmproot || !zs->order || !zs->series) {
        zarr_store_free(zs);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    s->impl = zs;
    /* A reader on read-only media has no use for the work dir; only a
     * writer, which creates it anyway, must see the failure. */
    if (!path_is_dir(zs->tmproot)) {
        rc = fs_mkdir_p(zs->tmproot);
        if (rc != SS_OK && !create) rc = SS_OK;
    }
    if (rc != SS_OK) {
        zarr_store_free(zs);
        s->impl = NULL;
    }
    return rc;
}

static void zarr_close(store *s)
{
    zarr_store_free(s->impl);
    s->impl = NULL;
}

static int lexists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* A displaced committed stage of the rename fallback (see swap_in). */
static int is_displaced(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".old");
}

/* Removes the <file>.tmp.<pid> files fs_write_atomic leaves in dir when
 * killed. */
static int remove_atomic_leftovers(const char *dir, const char *file)
{
    char **names = NULL;
    char *prefix = ss_asprintf("%s.tmp.", file);
    int rc = prefix ? list_dir(dir, NULL, &names) : ss_fail(SS_ERR_NOMEM, "out of memory");
    for (char **p = names; rc == SS_OK && p && *p; p++) {
        if (strncmp(*p, prefix, strlen(prefix)) != 0) continue;
        char *full = path_join(dir, *p);
        rc = full ? fs_rm_rf(full) : ss_fail(SS_ERR_NOMEM, "out of memory");
        free(full);
    }
    store_names_free(names);
    free(prefix);
    return rc;
}

static int series_sync(store *s, const char *stage, const char *new_tree);
static int zarr_stage_attrs(store *s, const char *stage, json_t **attrs);
static int stage_dir_ok_v2(const char *dir, const char *name);
static int is_name_list(const json_t *j);
static int listed(const json_t *list, const char *name);

typedef struct {
    char *name, *when;
} timed_stage;

static int cmp_timed(const void *a, const void *b)
{
    const timed_stage *x = a, *y = b;
    int c = strcmp(x->when, y->when);
    return c ? c : strcmp(x->name, y->name);
}

/* Rebuilds a damaged order.json (s->repaired says so): the stages it still
 * names in their order (none, when unreadable), then the others by commit
 * time. An intact list that lacks a stage (a kill between a commit's rename
 * and its update of the list) is left as it is: such stages are listed after
 * the known ones. */
static int order_repair(store *s)
{
    zarr_store *zs = s->impl;
    json_t *order = NULL;
    int damaged = zarr_json_read(zs->order, 1, &order) != SS_OK || (order && !is_name_list(order));
    if (!damaged) {
        json_decref(order);
        return SS_OK;
    }
    ss_errclear();
    json_decref(order);
    order = NULL;
    char **stages = NULL;
    int rc = list_dir(s->path, stage_dir_ok_v2, &stages);
    size_t n = 0, m = 0;
    while (stages && stages[n]) n++;
    timed_stage *add = rc == SS_OK ? calloc(n + 1, sizeof *add) : NULL;
    if (rc == SS_OK && !add) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == SS_OK && i < n; i++) {
        if (order && listed(order, stages[i])) continue;
        json_t *a = NULL;
        const char *t = NULL;
        if (zarr_stage_attrs(s, stages[i], &a) == SS_OK) {
            t = json_string_value(json_object_get(a, STORE_COMMIT_TIME_ATTR));
            if (!t) t = json_string_value(json_object_get(a, "finished"));
        }
        ss_errclear();
        add[m].name = stages[i];
        add[m++].when = ss_strdup(t ? t : "");
        json_decref(a);
    }
    if (rc == SS_OK) {
        json_t *fresh = json_array();
        size_t i;
        json_t *v;
        qsort(add, m, sizeof *add, cmp_timed);
        for (size_t k = 0; k < m; k++) json_array_append_new(fresh, json_string(add[k].name));
        rc = fresh ? zarr_json_write(zs->order, fresh, ZARR_JSON_FLAGS, ZARR_WRITE_ATOMIC)
                   : ss_fail(SS_ERR_NOMEM, "out of memory");
        if (rc == SS_OK) {
            sbuf names = {0};
            json_array_foreach(fresh, i, v) sbuf_printf(&names, "%s%s", i ? ", " : "", json_string_value(v));
            free(s->repaired);
            s->repaired = ss_asprintf("%s: the commit order was damaged; rebuilt it from the committed stages (%s)",
                                      zs->order, names.len ? sbuf_str(&names) : "none");
            sbuf_free(&names);
        }
        json_decref(fresh);
    }
    for (size_t k = 0; add && k < m; k++) free(add[k].when);
    free(add);
    store_names_free(stages);
    json_decref(order);
    return rc;
}

static int zarr_recover(store *s)
{
    zarr_store *zs = s->impl;
    int rc = fs_mkdir_p(zs->tmproot);
    char **names = NULL;
    if (rc == SS_OK) rc = list_dir(zs->tmproot, NULL, &names);
    for (char **p = names; rc == SS_OK && p && *p; p++) {
        char *full = path_join(zs->tmproot, *p);
        if (!full) {
            rc = ss_fail(SS_ERR_NOMEM, "out of memory");
            break;
        }
        /* A kill between the two renames of the fallback left the committed
         * stage here and nothing at its name: put it back. */
        if (is_displaced(*p)) {
            char *stage = strndup(*p, strcspn(*p, "."));
            char *dest = stage && store_valid_name(stage) ? path_join(s->path, stage) : NULL;
            if (dest && !lexists(dest)) {
                if (rename(full, dest) != 0)
                    rc = ss_fail(SS_ERR_IO, "%s: cannot restore to %s: %s", full, dest, strerror(errno));
                else
                    rc = fs_fsync_path(s->path);
            }
            free(stage);
            free(dest);
        }
        if (rc == SS_OK && lexists(full)) rc = fs_rm_rf(full);
        free(full);
    }
    store_names_free(names);
    /* fs_write_atomic's temporaries of order.json and of the OME group */
    if (rc == SS_OK) rc = remove_atomic_leftovers(s->workdir, "order.json");
    if (rc == SS_OK && zs->version >= 2) {
        char *ome = path_join(s->path, ZARR_OME_GROUP);
        rc = ome ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
        if (rc == SS_OK && path_is_dir(ome)) rc = remove_atomic_leftovers(ome, ".zattrs");
        if (rc == SS_OK && path_is_dir(ome)) rc = remove_atomic_leftovers(ome, ".zgroup");
        free(ome);
        if (rc == SS_OK) rc = order_repair(s);
        /* a kill between a commit's rename and its series update */
        if (rc == SS_OK) rc = series_sync(s, NULL, NULL);
    }
    return rc;
}

/* ---- committed stages --------------------------------------------------- */

static int stage_dir_ok(const char *dir, const char *name)
{
    if (!store_valid_name(name)) return 0;
    char *p = path_join(dir, name);
    int ok = p && path_is_dir(p) && file_exists_in(p, ".zgroup");
    free(p);
    return ok;
}

/* From version 2 on, the OME group is not a stage. */
static int stage_dir_ok_v2(const char *dir, const char *name)
{
    return strcmp(name, ZARR_OME_GROUP) != 0 && stage_dir_ok(dir, name);
}

static int is_stage(store *s, const char *name)
{
    const zarr_store *zs = s->impl;
    return zs->version >= 2 ? stage_dir_ok_v2(s->path, name) : stage_dir_ok(s->path, name);
}

/* Path of a committed stage; SS_ERR_INPUT if there is none. */
static int stage_path(store *s, const char *stage, char **out)
{
    *out = NULL;
    if (!store_valid_name(stage)) return ss_fail(SS_ERR_INTERNAL, "invalid stage name '%s'", stage ? stage : "");
    if (!is_stage(s, stage)) return ss_fail(SS_ERR_INPUT, "%s: no committed stage '%s'", s->path, stage);
    *out = path_join(s->path, stage);
    return *out ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
}

static int zarr_has_stage(store *s, const char *stage)
{
    return store_valid_name(stage) && is_stage(s, stage);
}

typedef struct {
    char *name;
    size_t rank;
} ordered_name;

static int cmp_ordered(const void *a, const void *b)
{
    const ordered_name *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int zarr_list_stages(store *s, char ***out)
{
    zarr_store *zs = s->impl;
    *out = NULL;
    char **names = NULL;
    json_t *order = NULL;
    int rc = list_dir(s->path, zs->version >= 2 ? stage_dir_ok_v2 : stage_dir_ok, &names);
    if (rc == SS_OK && (rc = zarr_json_read(zs->order, 1, &order)) != SS_OK)
        ss_fail_prefix(rc, "commit order (remove %s to list stages by name)", zs->order);
    if (rc == SS_OK && order && !json_is_array(order))
        rc = ss_fail(SS_ERR_INPUT, "%s: not a JSON list of stage names (remove it to list stages by name)",
                     zs->order);
    if (rc != SS_OK) {
        store_names_free(names);
        json_decref(order);
        return rc;
    }
    size_t n = 0;
    while (names[n]) n++;
    ordered_name *v = calloc(n + 1, sizeof *v);
    if (!v) {
        store_names_free(names);
        json_decref(order);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    /* Stages the list does not know (a kill between the rename and the list
     * update) sort after the known ones, by name. */
    for (size_t i = 0; i < n; i++) {
        v[i].name = names[i];
        v[i].rank = SIZE_MAX;
        size_t k;
        json_t *e;
        json_array_foreach(order, k, e) {
            if (json_is_string(e) && !strcmp(json_string_value(e), names[i])) {
                v[i].rank = k;
                break;
            }
        }
    }
    qsort(v, n, sizeof *v, cmp_ordered);
    for (size_t i = 0; i < n; i++) names[i] = v[i].name;
    free(v);
    json_decref(order);
    *out = names;
    return SS_OK;
}

static int zarr_stage_attrs(store *s, const char *stage, json_t **attrs)
{
    *attrs = NULL;
    char *dir = NULL;
    int rc = stage_path(s, stage, &dir);
    char *file = dir ? path_join(dir, ".zattrs") : NULL;
    json_t *j = NULL;
    if (rc == SS_OK) rc = file ? zarr_json_read(file, 1, &j) : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && j && !json_is_object(j)) rc = ss_fail(SS_ERR_INPUT, "%s: not a JSON object", file);
    if (rc == SS_OK && !j && !(j = json_object())) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) *attrs = j;
    else json_decref(j);
    free(dir);
    free(file);
    return rc;
}

/* *level: the dataset path of the first resolution level of the OME-NGFF
 * image group <dir>/<name> (malloc'd), or NULL if that is no image group.
 * SS_ERR_INPUT if its .zattrs is not JSON. */
static int image_level(const char *dir, const char *name, char **level)
{
    *level = NULL;
    char *g = path_join(dir, name), *file = g ? path_join(g, ".zattrs") : NULL;
    json_t *j = NULL;
    int rc = file ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && file_exists_in(g, ".zgroup")) rc = zarr_json_read(file, 1, &j);
    if (rc == SS_OK && j) {
        json_t *ds = json_object_get(json_array_get(json_object_get(j, "multiscales"), 0), "datasets");
        const char *path = json_string_value(json_object_get(json_array_get(ds, 0), "path"));
        char *arr = path && store_valid_name(path) ? path_join(g, path) : NULL;
        if (arr && file_exists_in(arr, ".zarray")) *level = ss_strdup(path);
        free(arr);
    }
    json_decref(j);
    free(file);
    free(g);
    return rc;
}

static int is_image_group(const char *dir, const char *name)
{
    char *level = NULL;
    if (!store_valid_name(name)) return 0;
    if (image_level(dir, name, &level) != SS_OK) ss_errclear(); /* reading it names the damage */
    free(level);
    return level != NULL;
}

/* A member of a stage: an array or table at <stage>/<name>, or an image
 * group whose first level is the array. */
static int member_ok(const char *dir, const char *name)
{
    if (!store_valid_name(name)) return 0;
    char *p = path_join(dir, name);
    int ok = p && path_is_dir(p) && (file_exists_in(p, ".zarray") || is_image_group(dir, name));
    free(p);
    return ok;
}

static int zarr_list_arrays(store *s, const char *stage, char ***names)
{
    *names = NULL;
    char *dir = NULL;
    int rc = stage_path(s, stage, &dir);
    if (rc == SS_OK) rc = list_dir(dir, member_ok, names);
    free(dir);
    return rc;
}

/* ---- .zarray ------------------------------------------------------------ */

typedef struct {
    char *name;
    col_type type;
    size_t offset, size;
} zcol;

/* What a .zarray says, checked. */
typedef struct {
    int rank;
    int64_t shape[STORE_MAX_RANK], chunk[STORE_MAX_RANK];
    int is_table;
    ss_dtype dtype;        /* arrays */
    int n_cols;            /* tables: fields of the structured dtype */
    zcol *cols;
    size_t elem;           /* bytes per element (per row for tables) */
    size_t chunk_elems, chunk_bytes;
    zarr_codec codec;
    char sep;              /* separator of chunk key indices */
    double fill;
    unsigned char *fill_rec; /* tables: one record of fill, or NULL for zeros */
} zhdr;

static void hdr_free(zhdr *h)
{
    free(h->fill_rec);
    h->fill_rec = NULL;
    for (int i = 0; i < h->n_cols; i++) free(h->cols[i].name);
    free(h->cols);
    h->cols = NULL;
    h->n_cols = 0;
}

/* Decodes standard base64 (with or without padding); NULL if malformed. */
static unsigned char *base64_decode(const char *in, size_t *n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = strlen(in);
    while (len && in[len - 1] == '=') len--;
    unsigned char *out = malloc(len * 3 / 4 + 1);
    if (!out) return NULL;
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        const char *c = in[i] ? strchr(alphabet, in[i]) : NULL;
        if (!c) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)(c - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
        }
    }
    *n = k;
    return out;
}

static int parse_fields(const char *file, json_t *dt, zhdr *h)
{
    size_t n = json_array_size(dt);
    if (n < 1 || n > ZARR_TABLE_MAX_COLS) return ss_fail(SS_ERR_INPUT, "%s: structured dtype with %zu fields", file, n);
    h->cols = calloc(n, sizeof *h->cols);
    if (!h->cols) return ss_fail(SS_ERR_NOMEM, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(dt, i);
        json_t *fn = json_array_get(f, 0), *ft = json_array_get(f, 1);
        if (!json_is_array(f) || json_array_size(f) != 2 || !json_is_string(fn) || !json_is_string(ft))
            return ss_fail(SS_ERR_INPUT, "%s: dtype field %zu is not [name, type]", file, i);
        zcol *c = &h->cols[i];
        if (zarr_field_parse(json_string_value(ft), &c->type, &c->size) != SS_OK)
            return ss_fail_prefix(SS_ERR_INPUT, "%s: table column '%s'", file, json_string_value(fn));
        if (!(c->name = ss_strdup(json_string_value(fn)))) return ss_fail(SS_ERR_NOMEM, "out of memory");
        h->n_cols++;
        c->offset = off;
        off += c->size;
    }
    h->elem = off;
    h->is_table = 1;
    return SS_OK;
}

static int header_from_json(const char *file, json_t *j, zhdr *h)
{
    if (!json_is_object(j)) return ss_fail(SS_ERR_INPUT, "%s: not a JSON object", file);
    json_t *v = json_object_get(j, "zarr_format");
    if (!json_is_integer(v) || json_integer_value(v) != 2)
        return ss_fail(SS_ERR_INPUT, "%s: zarr_format is not 2", file);

    json_t *shape = json_object_get(j, "shape"), *chunks = json_object_get(j, "chunks");
    if (!json_is_array(shape) || !json_is_array(chunks) || json_array_size(shape) != json_array_size(chunks))
        return ss_fail(SS_ERR_INPUT, "%s: shape and chunks must be lists of the same length", file);
    size_t rank = json_array_size(shape);
    if (rank < 1 || rank > STORE_MAX_RANK)
        return ss_fail(SS_ERR_INPUT, "%s: rank %zu not supported (1..%d)", file, rank, STORE_MAX_RANK);
    h->rank = (int)rank;
    for (int i = 0; i < h->rank; i++) {
        json_t *a = json_array_get(shape, (size_t)i), *c = json_array_get(chunks, (size_t)i);
        if (!json_is_integer(a) || json_integer_value(a) < 0 || json_integer_value(a) > ((int64_t)1 << 48))
            return ss_fail(SS_ERR_INPUT, "%s: shape[%d] is not a valid size", file, i);
        if (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > INT_MAX)
            return ss_fail(SS_ERR_INPUT, "%s: chunks[%d] is not a valid size", file, i);
        h->shape[i] = json_integer_value(a);
        h->chunk[i] = json_integer_value(c);
    }

    json_t *dt = json_object_get(j, "dtype");
    if (json_is_string(dt)) {
        if (zarr_dtype_parse(json_string_value(dt), &h->dtype) != SS_OK) return ss_fail_prefix(SS_ERR_INPUT, "%s", file);
        h->elem = dtype_size(h->dtype);
    } else if (json_is_array(dt)) {
        int rc = parse_fields(file, dt, h);
        if (rc != SS_OK) return rc;
        if (h->rank != 1) return ss_fail(SS_ERR_INPUT, "%s: a table must have rank 1", file);
    } else {
        return ss_fail(SS_ERR_INPUT, "%s: dtype missing or not a string or list", file);
    }

    /* Chunks are decoded whole into memory: bound them by what blosc takes. */
    size_t ce = 1;
    for (int i = 0; i < h->rank; i++) {
        if ((size_t)h->chunk[i] > (size_t)BLOSC_MAX_BUFFERSIZE / ce)
            return ss_fail(SS_ERR_INPUT, "%s: chunks too large", file);
        ce *= (size_t)h->chunk[i];
    }
    if (ce > (size_t)BLOSC_MAX_BUFFERSIZE / h->elem) return ss_fail(SS_ERR_INPUT, "%s: chunks too large", file);
    h->chunk_elems = ce;
    h->chunk_bytes = ce * h->elem;

    v = json_object_get(j, "order");
    if (!json_is_string(v) || strcmp(json_string_value(v), "C") != 0)
        return ss_fail(SS_ERR_INPUT, "%s: only order \"C\" is supported", file);
    v = json_object_get(j, "filters");
    if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0))
        return ss_fail(SS_ERR_INPUT, "%s: filters are not supported", file);

    if (zarr_codec_parse(json_object_get(j, "compressor"), &h->codec) != SS_OK)
        return ss_fail_prefix(SS_ERR_INPUT, "%s", file);

    v = json_object_get(j, "fill_value");
    if (h->is_table) {
        /* numpy stores a structured fill value as the base64 of one record */
        if (v && json_is_string(v)) {
            size_t n = 0;
            h->fill_rec = base64_decode(json_string_value(v), &n);
            if (!h->fill_rec || n != h->elem)
                return ss_fail(SS_ERR_INPUT, "%s: fill_value is not the base64 of one %zu-byte record", file, h->elem);
        } else if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 0)) {
            return ss_fail(SS_ERR_INPUT, "%s: fill_value of a table must be null or base64", file);
        }
    } else if (!v || json_is_null(v)) h->fill = 0;
    else if (json_is_number(v)) h->fill = json_number_value(v);
    else if (json_is_string(v) && !strcmp(json_string_value(v), "NaN")) h->fill = NAN;
    else if (json_is_string(v) && !strcmp(json_string_value(v), "Infinity")) h->fill = INFINITY;
    else if (json_is_string(v) && !strcmp(json_string_value(v), "-Infinity")) h->fill = -INFINITY;
    else return ss_fail(SS_ERR_INPUT, "%s: fill_value not supported", file);

    v = json_object_get(j, "dimension_separator");
    if (!v) h->sep = '.';
    else if (json_is_string(v) && (!strcmp(json_string_value(v), "/") || !strcmp(json_string_value(v), ".")))
        h->sep = json_string_value(v)[0];
    else return ss_fail(SS_ERR_INPUT, "%s: dimension_separator must be \"/\" or \".\"", file);
    return SS_OK;
}

static int parse_header(const char *dir, zhdr *h)
{
    memset(h, 0, sizeof *h);
    char *file = path_join(dir, ".zarray");
    if (!file) return ss_fail(SS_ERR_NOMEM, "out of memory");
    json_t *j = NULL;
    int rc = zarr_json_read(file, 0, &j);
    if (rc == SS_OK) rc = header_from_json(file, j, h);
    json_decref(j);
    free(file);
    if (rc != SS_OK) hdr_free(h);
    return rc;
}

/* Bytes a stored chunk of h may take. */
static size_t chunk_file_max(const zhdr *h) { return zarr_codec_bound(&h->codec, h->chunk_bytes); }

/* The entry of sirenstack_arrays that describes what h says. */
static json_t *hdr_entry(const zhdr *h)
{
    char comp[64];
    zarr_codec_text(&h->codec, comp, sizeof comp);
    json_t *dt;
    if (h->is_table) {
        dt = json_array();
        for (int c = 0; dt && c < h->n_cols; c++) {
            const zcol *col = &h->cols[c];
            json_array_append_new(dt, json_pack("[s,o]", col->name, zarr_field_json(col->type, col->size)));
        }
    } else {
        dt = json_string(dtype_name(h->dtype));
    }
    return store_entry_new(h->rank, h->shape, h->chunk, dt, comp);
}

/* .zarray of an array we write: dtype is a numpy type string, or a list of
 * [name, type] fields for a table (stolen). */
static json_t *zarray_json(const zhdr *h, json_t *dtype)
{
    return zarr_zarray_json(h->rank, h->shape, h->chunk, dtype, &h->codec,
                            json_is_string(dtype) ? json_integer(0) : json_null());
}

/* ---- array metadata (.zattrs) and OME-NGFF ------------------------------ */

static int parse_meta(const char *dir, int rank, int *has_meta, array_meta *m)
{
    *has_meta = 0;
    memset(m, 0, sizeof *m);
    char *file = path_join(dir, ".zattrs");
    json_t *j = NULL;
    int rc = file ? zarr_json_read(file, 1, &j) : ss_fail(SS_ERR_NOMEM, "out of memory");
    json_t *axes = j ? json_object_get(j, "axes") : NULL;
    if (rc == SS_OK && axes) {
        json_t *vox = json_object_get(j, "voxel_size"), *unit = json_object_get(j, "unit");
        int ok = json_is_array(axes) && json_array_size(axes) == (size_t)rank && json_is_array(vox) &&
                 json_array_size(vox) == 3 && (!unit || json_is_string(unit));
        for (int i = 0; ok && i < rank; i++) {
            const char *a = json_string_value(json_array_get(axes, (size_t)i));
            ok = a && strlen(a) == 1;
            if (ok) m->axes[i] = a[0];
        }
        for (int i = 0; ok && i < 3; i++) {
            ok = json_is_number(json_array_get(vox, (size_t)i));
            if (ok) m->voxel[i] = json_number_value(json_array_get(vox, (size_t)i));
        }
        if (ok && unit) snprintf(m->unit, sizeof m->unit, "%s", json_string_value(unit));
        if (!ok)
            rc = ss_fail(SS_ERR_INPUT, "%s: axes (one letter per dimension), voxel_size (3 numbers) or unit malformed",
                         file);
        else *has_meta = 1;
    }
    json_decref(j);
    free(file);
    return rc;
}

static json_t *meta_json(const array_meta *m)
{
    json_t *axes = json_array();
    for (const char *p = m->axes; axes && *p; p++) json_array_append_new(axes, json_stringn(p, 1));
    return json_pack("{s:o, s:[f,f,f], s:s#}", "axes", axes, "voxel_size", m->voxel[0], m->voxel[1], m->voxel[2],
                     "unit", m->unit, (int)strnlen(m->unit, sizeof m->unit));
}

/* .zattrs of the image group of stage/name: its one OME-NGFF "multiscales"
 * entry, named "<stage>/<array>" (what viewers label the image with), with
 * the array as level ZARR_LEVEL. */
static json_t *image_group_attrs(const char *stage, const char *name, const array_meta *m)
{
    char *label = ss_asprintf("%s/%s", stage, name);
    char unit[sizeof m->unit + 1]; /* m->unit need not end in a NUL */
    snprintf(unit, sizeof unit, "%.*s", (int)sizeof m->unit, m->unit);
    json_t *ms = label ? zarr_ngff_multiscales(label, m->axes, m->voxel, unit, ZARR_LEVEL) : NULL;
    free(label);
    return ms ? json_pack("{s:[o]}", "multiscales", ms) : NULL;
}

static int is_time_axis(char a) { return a == 'r' || a == 't'; }

/* Whether axes m (one per dimension) make an OME-NGFF 0.4 image: 2 to 5
 * axes, the last 2 or 3 spatial (z, y, x), before them at most one time
 * axis (r, t) and then at most one other (channel or custom). */
static int is_ngff_image(const array_meta *m, int rank)
{
    if (rank < 2 || rank > 5) return 0;
    int lead = rank;
    while (lead > 0 && m->axes[lead - 1] && strchr("zyx", m->axes[lead - 1])) lead--;
    if (rank - lead < 2 || rank - lead > 3) return 0;
    int i = 0;
    if (i < lead && is_time_axis(m->axes[i])) i++;
    if (i < lead && !is_time_axis(m->axes[i])) i++;
    return i == lead;
}

/* _ARRAY_DIMENSIONS, the dimension names xarray reads: the axis letters, or
 * for arrays without axes names made from the array's own name
 * ("<name>_row" for a table, "<name>_dim0", ... otherwise), so that the
 * dimensions of different arrays of a stage group never clash. */
static json_t *dims_json(const char *name, int rank, const array_meta *m, int table)
{
    json_t *d = json_array();
    for (int i = 0; d && i < rank; i++) {
        json_t *v = m ? json_stringn(&m->axes[i], 1)
                      : table ? json_sprintf("%s_row", name)
                              : json_sprintf("%s_dim%d", name, i);
        if (json_array_append_new(d, v) != 0) {
            json_decref(d);
            return NULL;
        }
    }
    return d;
}

/* ---- arrays and their chunk cache --------------------------------------- */

typedef struct zarr_writer zarr_writer;

typedef struct {
    int64_t idx[STORE_MAX_RANK];
    unsigned char *buf; /* chunk_bytes, allocated on first use */
    uint64_t stamp;     /* last use, for LRU; 0: slot empty */
    int dirty;
} chunk_slot;

typedef struct {
    char *dir;
    zhdr h;
    int has_meta;
    array_meta meta;
    zarr_writer *w;    /* writer the array belongs to; NULL when read-only */
    int detached;      /* its writer committed or aborted */
    store_array *handle;
    chunk_slot *slots;
    int n_slots;
    uint64_t clock;
    unsigned char *cbuf; /* compressed bytes, chunk_file_max */
    int has_sums;        /* reading: the committed checksums; writing: those being made */
    store_sums sums;
} zarr_array;

/* What chunk_load checks a chunk of a committed array against. */
typedef struct {
    store *s;
    const char *stage, *name;
    store_sums *sums;  /* NULL: the stage committed no checksums */
    int verify;        /* decoded chunks are compared with their checksums */
    const char *axes;
} zcheck;

/* The check of the chunks of a committed array za, or NULL. */
static const zcheck *array_check(const zarr_array *za, zcheck *c)
{
    if (za->w || !za->has_sums) return NULL;
    *c = (zcheck){za->handle->s, za->handle->stage, za->handle->name, (store_sums *)&za->sums, za->handle->s->verify,
                  za->has_meta ? za->meta.axes : NULL};
    return c;
}

static int chunk_damaged(const zcheck *ck, const zhdr *h, const int64_t *idx, const char *path, const char *what)
{
    sbuf where = {0};
    store_chunk_text(&where, h->rank, h->shape, h->chunk, idx, ck->axes, h->is_table);
    int rc = store_fail_damaged(ck->s, ck->stage, ck->name, "%s, file %s: %s", sbuf_str(&where), path, what);
    sbuf_free(&where);
    return rc;
}

static char *chunk_path(const char *dir, const zhdr *h, const int64_t *idx)
{
    sbuf b = {0};
    sbuf_put(&b, dir);
    sbuf_put(&b, "/");
    for (int i = 0; i < h->rank; i++) {
        if (i) sbuf_putn(&b, &h->sep, 1);
        sbuf_printf(&b, "%lld", (long long)idx[i]);
    }
    return b.s;
}

static void fill_chunk(const zhdr *h, unsigned char *buf)
{
    if (h->is_table ? !h->fill_rec : h->fill == 0) {
        memset(buf, 0, h->chunk_bytes);
        return;
    }
    unsigned char one[8];
    const unsigned char *rec = h->fill_rec;
    if (!h->is_table) {
        dtype_convert(one, h->dtype, &h->fill, DT_F64, 1);
        rec = one;
    }
    for (size_t i = 0; i < h->chunk_elems; i++) memcpy(buf + i * h->elem, rec, h->elem);
}

/* Reads chunk idx into dst (chunk_bytes); an absent chunk is all fill value,
 * unless ck (NULL: no checks) says that it was stored. With ck->verify the
 * chunk is compared with its checksum the first time it is read.
 * cbuf: scratch of chunk_file_max(h) bytes. */
static int chunk_load(const char *dir, const zhdr *h, const int64_t *idx, unsigned char *dst, unsigned char *cbuf,
                      const zcheck *ck)
{
    char *path = chunk_path(dir, h, idx);
    int64_t k = ck && ck->sums ? store_chunk_linear(h->rank, h->shape, h->chunk, idx) : -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = SS_OK;
        if (errno != ENOENT)
            rc = ss_fail(errno == ENOTDIR ? SS_ERR_INPUT : SS_ERR_IO, "%s: cannot open chunk: %s", path,
                         strerror(errno));
        /* An absent chunk is fill, unless the whole array went away under an
         * open handle (its stage recommitted): that must not read as zeros. */
        else if (!file_exists_in(dir, ".zarray"))
            rc = ss_fail(SS_ERR_INPUT, "%s: array removed while open (stage replaced?)", dir);
        else if (k >= 0 && ck->sums->stored[k])
            rc = chunk_damaged(ck, h, idx, path, "missing (the stage stored it)");
        else fill_chunk(h, dst);
        free(path);
        return rc;
    }
    if (k >= 0 && !ck->sums->stored[k]) {
        close(fd);
        int rc = chunk_damaged(ck, h, idx, path, "there, but the stage stored no such chunk");
        free(path);
        return rc;
    }
    struct stat st;
    int rc = SS_OK;
    const int raw = h->codec.id == ZARR_CODEC_NONE;
    if (fstat(fd, &st) != 0) rc = ss_fail(SS_ERR_IO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) rc = ss_fail(SS_ERR_INPUT, "%s: chunk is not a regular file", path);
    else if ((size_t)st.st_size > chunk_file_max(h) || (raw && (size_t)st.st_size != h->chunk_bytes))
        rc = ss_fail(SS_ERR_INPUT, "%s: corrupt chunk: %lld bytes for a chunk of %zu bytes", path,
                     (long long)st.st_size, h->chunk_bytes);
    size_t size = rc == SS_OK ? (size_t)st.st_size : 0, got = 0;
    unsigned char *into = raw ? dst : cbuf;
    while (rc == SS_OK && got < size) {
        ssize_t r = read(fd, into + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = ss_fail(SS_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        else if (r == 0) rc = ss_fail(SS_ERR_INPUT, "%s: chunk shrank while being read", path);
        else got += (size_t)r;
    }
    close(fd);
    if (rc == SS_OK) rc = zarr_chunk_decode(path, &h->codec, into, size, dst, h->chunk_bytes);
    if (rc == SS_ERR_INPUT && k >= 0) {
        /* named as damage of the stage, the decoder's words kept */
        char why[1024];
        const char *m = ss_errmsg();
        snprintf(why, sizeof why, "%s", !strncmp(m, path, strlen(path)) ? m + strlen(path) + 2 : m);
        rc = chunk_damaged(ck, h, idx, path, why);
    }
    if (rc == SS_OK && k >= 0 && ck->verify && !ck->sums->seen[k]) {
        int64_t rs[STORE_MAX_RANK], re[STORE_MAX_RANK];
        store_chunk_region(h->rank, h->shape, h->chunk, idx, rs, re);
        if (store_hash_block(dst, h->rank, h->chunk, (int64_t[STORE_MAX_RANK]){0}, re, h->elem) != ck->sums->sum[k])
            rc = chunk_damaged(ck, h, idx, path, "checksum mismatch (the stored data is damaged)");
        else ck->sums->seen[k] = 1;
    }
    free(path);
    return rc;
}

/* Compresses and writes one chunk file of a tree that is not visible yet,
 * and notes its checksum in sums. */
static int chunk_store(const char *dir, const zhdr *h, const int64_t *idx, const unsigned char *src,
                       unsigned char *cbuf, store_sums *sums)
{
    int64_t k = store_chunk_linear(h->rank, h->shape, h->chunk, idx), rs[STORE_MAX_RANK], re[STORE_MAX_RANK];
    store_chunk_region(h->rank, h->shape, h->chunk, idx, rs, re);
    sums->sum[k] = store_hash_block(src, h->rank, h->chunk, (int64_t[STORE_MAX_RANK]){0}, re, h->elem);
    sums->stored[k] = 1;
    char *path = chunk_path(dir, h, idx);
    const void *data = NULL;
    size_t n = 0;
    int rc = path ? zarr_chunk_encode(path, &h->codec, h->elem, 1, src, h->chunk_bytes, cbuf, &data, &n)
                  : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) {
        ss_crashpoint("zarr.write_chunk");
        rc = zarr_chunk_write(path, data, n, ZARR_WRITE_IN_TREE);
    }
    free(path);
    return rc;
}

static int cache_slot_limit(void)
{
    const char *e = getenv(ZARR_CACHE_ENV);
    long n = e ? strtol(e, NULL, 10) : 0;
    return n > 0 && n < ZARR_CACHE_MAX_SLOTS ? (int)n : ZARR_CACHE_MAX_SLOTS;
}

static zarr_array *array_new(char *dir, const zhdr *h)
{
    zarr_array *za = calloc(1, sizeof *za);
    if (!za) return NULL;
    za->dir = dir;
    za->h = *h;
    size_t n = ZARR_CACHE_BYTES / h->chunk_bytes;
    za->n_slots = n < 1 ? 1 : n > 64 ? 64 : (int)n; /* cache_reserve grows it */
    if (za->n_slots > cache_slot_limit()) za->n_slots = cache_slot_limit();
    za->slots = calloc((size_t)za->n_slots, sizeof *za->slots);
    if (!za->slots) {
        free(za);
        return NULL;
    }
    return za;
}

static void array_free(zarr_array *za)
{
    if (!za) return;
    store_sums_free(&za->sums);
    for (int i = 0; i < za->n_slots; i++) free(za->slots[i].buf);
    free(za->slots);
    free(za->cbuf);
    hdr_free(&za->h);
    free(za->dir);
    free(za);
}

static int ensure_cbuf(zarr_array *za)
{
    if (!za->cbuf && !(za->cbuf = malloc(chunk_file_max(&za->h))))
        return ss_fail(SS_ERR_NOMEM, "out of memory for a chunk of %zu bytes", za->h.chunk_bytes);
    return SS_OK;
}

static int slot_flush(zarr_array *za, chunk_slot *sl)
{
    if (!sl->dirty) return SS_OK;
    int rc = ensure_cbuf(za);
    if (rc == SS_OK) rc = chunk_store(za->dir, &za->h, sl->idx, sl->buf, za->cbuf, &za->sums);
    if (rc == SS_OK) sl->dirty = 0;
    return rc;
}

static int array_flush(zarr_array *za)
{
    for (int i = 0; i < za->n_slots; i++) {
        int rc = slot_flush(za, &za->slots[i]);
        if (rc != SS_OK) return rc;
    }
    return SS_OK;
}

static json_t *writer_sums(zarr_writer *zw);

/* An array being written is complete: its chunks are flushed and its
 * checksums go to the writer, for the stage's checksum file. */
static int array_finish(zarr_array *za)
{
    int rc = array_flush(za);
    json_t *list = rc == SS_OK ? store_sums_json(&za->sums) : NULL;
    if (rc == SS_OK && (!list || json_object_set_new(writer_sums(za->w), za->handle->name, list) != 0))
        rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    return rc;
}

/* Grows the cache towards n slots within ZARR_CACHE_MAX_BYTES. Failing to
 * grow only costs speed. */
static void cache_reserve(zarr_array *za, int n)
{
    size_t cap = ZARR_CACHE_MAX_BYTES / za->h.chunk_bytes;
    if ((size_t)n > cap) n = cap > 0 ? (int)cap : 1;
    if (n > cache_slot_limit()) n = cache_slot_limit();
    if (n <= za->n_slots) return;
    chunk_slot *v = realloc(za->slots, (size_t)n * sizeof *v);
    if (!v) return;
    memset(v + za->n_slots, 0, (size_t)(n - za->n_slots) * sizeof *v);
    za->slots = v;
    za->n_slots = n;
}

/* The cached chunk idx, loading it (or, when the caller overwrites all of
 * it, just filling it) after evicting the least recently used slot. */
static int chunk_get(zarr_array *za, const int64_t *idx, int overwrite_all, chunk_slot **out)
{
    const size_t key = (size_t)za->h.rank * sizeof *idx;
    chunk_slot *victim = &za->slots[0];
    for (int i = 0; i < za->n_slots; i++) {
        chunk_slot *sl = &za->slots[i];
        if (sl->stamp && !memcmp(sl->idx, idx, key)) {
            sl->stamp = ++za->clock;
            *out = sl;
            return SS_OK;
        }
        if (sl->stamp < victim->stamp) victim = sl;
    }
    int rc = slot_flush(za, victim);
    if (rc != SS_OK) return rc;
    victim->stamp = 0;
    if (!victim->buf && !(victim->buf = malloc(za->h.chunk_bytes)))
        return ss_fail(SS_ERR_NOMEM, "out of memory for a chunk of %zu bytes", za->h.chunk_bytes);
    if (overwrite_all) fill_chunk(&za->h, victim->buf); /* the padding of edge chunks */
    else {
        zcheck c;
        if ((rc = ensure_cbuf(za)) != SS_OK ||
            (rc = chunk_load(za->dir, &za->h, idx, victim->buf, za->cbuf, array_check(za, &c))) != SS_OK)
            return rc;
    }
    memcpy(victim->idx, idx, key);
    victim->stamp = ++za->clock;
    *out = victim;
    return SS_OK;
}

/* Copies a hyperslab between buf (dtype mem, C order, extent count) and the
 * array, chunk by chunk, converting dtypes on the way. */
static int slab_io(zarr_array *za, const int64_t *start, const int64_t *count, ss_dtype mem, void *buf, int writing)
{
    const zhdr *h = &za->h;
    const int r = h->rank;
    int64_t c0[STORE_MAX_RANK], c1[STORE_MAX_RANK], ci[STORE_MAX_RANK];
    int64_t ustride[STORE_MAX_RANK], cstride[STORE_MAX_RANK];
    for (int i = 0; i < r; i++)
        if (count[i] == 0) return SS_OK;
    ustride[r - 1] = cstride[r - 1] = 1;
    for (int i = r - 2; i >= 0; i--) {
        ustride[i] = ustride[i + 1] * count[i + 1];
        cstride[i] = cstride[i + 1] * h->chunk[i + 1];
    }
    /* Reading one whole chunk (plane by plane with one-plane chunks): it is
     * decoded straight into buf, and checked there while in the cache,
     * instead of going through a cache slot and a copy. */
    int whole_chunk = !writing && !za->w && mem == h->dtype && !h->is_table;
    for (int i = 0; whole_chunk && i < r; i++) {
        whole_chunk = start[i] % h->chunk[i] == 0 && count[i] == h->chunk[i];
        ci[i] = start[i] / h->chunk[i];
    }
    if (whole_chunk) {
        zcheck c;
        int rc = ensure_cbuf(za);
        return rc == SS_OK ? chunk_load(za->dir, h, ci, buf, za->cbuf, array_check(za, &c)) : rc;
    }
    int64_t touched = 1;
    for (int i = 0; i < r; i++) {
        c0[i] = ci[i] = start[i] / h->chunk[i];
        c1[i] = (start[i] + count[i] - 1) / h->chunk[i];
        touched *= c1[i] - c0[i] + 1;
        if (touched > ZARR_CACHE_MAX_SLOTS) touched = ZARR_CACHE_MAX_SLOTS;
    }
    cache_reserve(za, (int)touched);
    const size_t msize = dtype_size(mem);
    for (;;) {
        int64_t lo[STORE_MAX_RANK], hi[STORE_MAX_RANK], p[STORE_MAX_RANK];
        int whole = writing;
        for (int i = 0; i < r; i++) {
            int64_t b = ci[i] * h->chunk[i], e = b + h->chunk[i];
            lo[i] = start[i] > b ? start[i] : b;
            hi[i] = start[i] + count[i] < e ? start[i] + count[i] : e;
            if (lo[i] != b || hi[i] != (e < h->shape[i] ? e : h->shape[i])) whole = 0;
        }
        chunk_slot *sl = NULL;
        int rc = chunk_get(za, ci, whole, &sl);
        if (rc != SS_OK) return rc;
        /* one contiguous run along the last axis per position of the others */
        const size_t run = (size_t)(hi[r - 1] - lo[r - 1]);
        for (int i = 0; i < r; i++) p[i] = lo[i];
        for (;;) {
            int64_t co = 0, uo = 0;
            for (int i = 0; i < r; i++) {
                co += (p[i] - ci[i] * h->chunk[i]) * cstride[i];
                uo += (p[i] - start[i]) * ustride[i];
            }
            unsigned char *cp = sl->buf + (size_t)co * h->elem;
            unsigned char *up = (unsigned char *)buf + (size_t)uo * msize;
            if (writing) dtype_convert(cp, h->dtype, up, mem, run);
            else dtype_convert(up, mem, cp, h->dtype, run);
            int i = r - 2;
            for (; i >= 0; i--) {
                if (++p[i] < hi[i]) break;
                p[i] = lo[i];
            }
            if (i < 0) break;
        }
        if (writing) sl->dirty = 1;
        int i = r - 1;
        for (; i >= 0; i--) {
            if (++ci[i] <= c1[i]) break;
            ci[i] = c0[i];
        }
        if (i < 0) break;
    }
    return SS_OK;
}

/* ---- writing stages ----------------------------------------------------- */

struct zarr_writer {
    char *tmp;          /* <container>/.sirenstack/tmp/<stage>.<pid>.<n> */
    json_t *attrs;      /* user attributes */
    json_t *sums;       /* array or table name -> its chunk checksums (ZARR_SUMS_FILE) */
    zarr_array **open;  /* arrays handed out and not closed yet */
    int n_open, cap_open;
    int failed;         /* first error an array close could not report */
    char *failed_msg;
};

static json_t *writer_sums(zarr_writer *zw) { return zw->sums; }

static void writer_free(zarr_writer *zw)
{
    if (!zw) return;
    free(zw->tmp);
    json_decref(zw->attrs);
    json_decref(zw->sums);
    free(zw->open);
    free(zw->failed_msg);
    free(zw);
}

static int zarr_stage_begin(store_writer *w)
{
    zarr_store *zs = w->s->impl;
    if (zs->version < STORE_LAYOUT_VERSION)
        return ss_fail(SS_ERR_IO,
                       "%s: container layout version %d (an older sirenstack's) is read but not added to by this "
                       "build (layout %d): run into a new output folder, or move this container away",
                       w->s->path, zs->version, STORE_LAYOUT_VERSION);
    if (!strcasecmp(w->stage, ZARR_OME_GROUP))
        return ss_fail(SS_ERR_CONFIG, "%s: stage name '%s' is reserved in Zarr containers (the OME-NGFF group that "
                       "lists the images): rename the stage", w->s->path, w->stage);
    zarr_writer *zw = calloc(1, sizeof *zw);
    if (!zw) return ss_fail(SS_ERR_NOMEM, "out of memory");
    unsigned n = atomic_fetch_add(&tmp_counter, 1);
    zw->tmp = ss_asprintf("%s/%s.%ld.%u", zs->tmproot, w->stage, (long)getpid(), n);
    zw->attrs = json_object();
    zw->sums = json_object();
    int rc = zw->tmp && zw->attrs && zw->sums ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = fs_mkdir_p(zs->tmproot);
    if (rc == SS_OK && mkdir(zw->tmp, 0777) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: cannot create: %s", zw->tmp, strerror(errno));
    if (rc != SS_OK) {
        writer_free(zw);
        return rc;
    }
    w->impl = zw;
    return SS_OK;
}

static int zarr_writer_attr(store_writer *w, const char *key, json_t *value)
{
    zarr_writer *zw = w->impl;
    if (!key || !key[0] || !value)
        return ss_fail(SS_ERR_INTERNAL, "stage %s: attribute without key or value", w->stage);
    /* A copy, so that the caller may keep changing its own value. */
    json_t *copy = json_deep_copy(value);
    if (!copy || json_object_set_new(zw->attrs, key, copy) != 0)
        return ss_fail(SS_ERR_NOMEM, "stage %s: cannot set attribute '%s'", w->stage, key);
    return SS_OK;
}

static int writer_track(zarr_writer *zw, zarr_array *za)
{
    if (zw->n_open == zw->cap_open) {
        int cap = zw->cap_open ? 2 * zw->cap_open : 8;
        zarr_array **v = realloc(zw->open, (size_t)cap * sizeof *v);
        if (!v) return ss_fail(SS_ERR_NOMEM, "out of memory");
        zw->open = v;
        zw->cap_open = cap;
    }
    zw->open[zw->n_open++] = za;
    return SS_OK;
}

static void writer_untrack(zarr_writer *zw, zarr_array *za)
{
    for (int i = 0; i < zw->n_open; i++)
        if (zw->open[i] == za) {
            zw->open[i] = zw->open[--zw->n_open];
            return;
        }
}

/* Makes <tmp>/<name>/ with its .zarray and .zattrs. */
static int write_array_dir(zarr_writer *zw, const char *name, json_t *zarray, json_t *zattrs, char **dir_out)
{
    char *dir = path_join(zw->tmp, name);
    char *fa = dir ? path_join(dir, ".zarray") : NULL, *fb = dir ? path_join(dir, ".zattrs") : NULL;
    int rc = fa && fb && zarray && zattrs ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && mkdir(dir, 0777) != 0)
        rc = errno == EEXIST ? ss_fail(SS_ERR_INTERNAL, "%s: '%s' written twice in one stage", zw->tmp, name)
                             : ss_fail(SS_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    if (rc == SS_OK) rc = zarr_json_write(fa, zarray, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE);
    if (rc == SS_OK) rc = zarr_json_write(fb, zattrs, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE);
    free(fa);
    free(fb);
    if (rc == SS_OK && dir_out) *dir_out = dir;
    else free(dir);
    return rc;
}

static int zarr_writer_array(store_writer *w, const char *name, ss_dtype dt, int rank, const int64_t *shape,
                             const int64_t *chunk, const array_meta *meta, store_array *a)
{
    zarr_writer *zw = w->impl;
    if ((unsigned)dt >= DT_COUNT) return ss_fail(SS_ERR_INTERNAL, "%s: bad dtype %d", name, (int)dt);
    zhdr h = {.rank = rank, .dtype = dt, .elem = dtype_size(dt), .sep = '/', .fill = 0};
    h.codec = zarr_codec_of(w->s->comp);
    size_t ce = 1;
    for (int i = 0; i < rank; i++) {
        h.shape[i] = shape[i];
        h.chunk[i] = chunk[i];
        if ((size_t)chunk[i] > (size_t)BLOSC_MAX_BUFFERSIZE / ce / h.elem)
            return ss_fail(SS_ERR_INTERNAL, "%s: chunk too large for blosc", name);
        ce *= (size_t)chunk[i];
    }
    h.chunk_elems = ce;
    h.chunk_bytes = ce * h.elem;
    if (meta) {
        size_t na = strnlen(meta->axes, sizeof meta->axes);
        int ok = na == (size_t)rank;
        for (size_t i = 0; ok && i < na; i++)
            ok = meta->axes[i] >= 'a' && meta->axes[i] <= 'z' && !memchr(meta->axes, meta->axes[i], i);
        if (!ok) return ss_fail(SS_ERR_INTERNAL, "%s: axes '%.*s' do not name %d distinct axes", name,
                                (int)sizeof meta->axes, meta->axes, rank);
        for (int i = 0; i < 3; i++)
            if (!isfinite(meta->voxel[i]))
                return ss_fail(SS_ERR_INTERNAL, "%s: voxel size %d is not finite", name, i);
    }

    /* Images are OME-NGFF groups with the array as level 0; other arrays
     * (1-D ones, those without axes) are plain arrays at <stage>/<name>. */
    const int image = meta && is_ngff_image(meta, rank);
    json_t *zattrs = meta ? meta_json(meta) : json_object();
    json_t *group = image ? image_group_attrs(w->stage, name, meta) : NULL;
    json_t *dims = dims_json(name, rank, meta, 0);
    if (!zattrs || !dims || (image && !group) || json_object_set_new(zattrs, "_ARRAY_DIMENSIONS", dims) != 0) {
        json_decref(zattrs); /* json_string refuses text that is not UTF-8 */
        json_decref(group);
        return ss_fail(SS_ERR_INTERNAL, "%s: metadata cannot be encoded as JSON (is the unit UTF-8?)", name);
    }
    json_t *zarray = zarray_json(&h, json_string(zarr_dtype_string(dt)));
    char *dir = NULL, *gdir = image ? path_join(zw->tmp, name) : NULL;
    char *rel = image ? path_join(name, ZARR_LEVEL) : ss_strdup(name);
    int rc = rel && (gdir || !image) ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && image) rc = write_group(gdir, group);
    if (rc == SS_OK) rc = write_array_dir(zw, rel, zarray, zattrs, &dir);
    json_decref(zarray);
    json_decref(zattrs);
    json_decref(group);
    free(gdir);
    free(rel);
    if (rc != SS_OK) {
        free(dir);
        return rc;
    }
    zarr_array *za = array_new(dir, &h);
    if (!za) {
        free(dir);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    if (meta) {
        za->has_meta = 1;
        za->meta = *meta;
    }
    za->w = zw;
    za->handle = a;
    za->has_sums = 1;
    rc = store_sums_init(&za->sums, store_chunk_count(rank, h.shape, h.chunk));
    json_t *entry = rc == SS_OK ? hdr_entry(&h) : NULL;
    if (rc == SS_OK && (!entry || json_object_set_new(w->arrays, name, entry) != 0))
        rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = writer_track(zw, za);
    if (rc != SS_OK) {
        array_free(za);
        return rc;
    }
    a->impl = za;
    return SS_OK;
}

static int zarr_writer_table(store_writer *w, const char *name, const table_view *t)
{
    zarr_writer *zw = w->impl;
    /* the reader takes at most ZARR_TABLE_MAX_COLS fields */
    if (!t || t->n_cols < 1 || t->n_cols > ZARR_TABLE_MAX_COLS || t->n_rows < 0 || !t->cols)
        return ss_fail(SS_ERR_INTERNAL, "table %s: needs 1..%d columns", name, ZARR_TABLE_MAX_COLS);
    zhdr h = {.rank = 1, .is_table = 1, .sep = '/'};
    h.codec = zarr_codec_of(w->s->comp);
    json_t *fields = json_array();
    size_t off = 0;
    size_t *offs = calloc((size_t)t->n_cols, sizeof *offs);
    int rc = fields && offs ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int c = 0; rc == SS_OK && c < t->n_cols; c++) {
        const table_col *col = &t->cols[c];
        const void *data = col->type == COL_F64 ? (const void *)col->f64
                           : col->type == COL_I64 ? (const void *)col->i64
                                                  : (const void *)col->str;
        if (!col->name || !col->name[0] || (unsigned)col->type > COL_STR || (t->n_rows > 0 && !data)) {
            rc = ss_fail(SS_ERR_INTERNAL, "table %s: column %d has no name, a bad type or no data", name, c);
            break;
        }
        for (int k = 0; k < c; k++)
            if (!strcmp(t->cols[k].name, col->name))
                rc = ss_fail(SS_ERR_INTERNAL, "table %s: column '%s' appears twice", name, col->name);
        for (int64_t i = 0; rc == SS_OK && col->type == COL_STR && i < t->n_rows; i++)
            if (col->str[i] && strlen(col->str[i]) >= TABLE_STR_LEN)
                rc = ss_fail(SS_ERR_INTERNAL, "table %s: column '%s' row %lld longer than %d bytes", name, col->name,
                             (long long)i, TABLE_STR_LEN - 1);
        if (rc != SS_OK) break;
        const size_t size = col->type == COL_STR ? TABLE_STR_LEN : 8;
        json_t *f = json_pack("[s,o]", col->name, zarr_field_json(col->type, size));
        if (!f) rc = ss_fail(SS_ERR_INTERNAL, "table %s: column name '%s' is not UTF-8", name, col->name);
        else if (json_array_append_new(fields, f) != 0) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
        offs[c] = off;
        off += size;
    }
    if (rc != SS_OK) {
        json_decref(fields);
        free(offs);
        return rc;
    }
    /* Rows are packed records, as numpy lays out a structured array. */
    const size_t rec = off;
    int64_t rows = ZARR_TABLE_CHUNK_BYTES / rec;
    if (rows > ZARR_TABLE_CHUNK_ROWS) rows = ZARR_TABLE_CHUNK_ROWS;
    if (rows > t->n_rows) rows = t->n_rows;
    if (rows < 1) rows = 1;
    h.shape[0] = t->n_rows;
    h.chunk[0] = rows;
    h.elem = rec;
    h.chunk_elems = (size_t)rows;
    h.chunk_bytes = (size_t)rows * rec;

    char comp[64];
    zarr_codec_text(&h.codec, comp, sizeof comp);
    json_t *entry = store_entry_new(1, h.shape, h.chunk, json_deep_copy(fields), comp);
    json_t *zarray = zarray_json(&h, fields);
    json_t *zattrs = json_pack("{s:b, s:o}", "sirenstack_table", 1, "_ARRAY_DIMENSIONS", dims_json(name, 1, NULL, 1));
    char *dir = NULL;
    store_sums sums;
    rc = store_sums_init(&sums, store_chunk_count(1, h.shape, h.chunk));
    if (rc == SS_OK && (!entry || json_object_set(w->arrays, name, entry) != 0))
        rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    json_decref(entry);
    if (rc == SS_OK) rc = write_array_dir(zw, name, zarray, zattrs, &dir);
    json_decref(zarray);
    json_decref(zattrs);
    unsigned char *buf = rc == SS_OK ? malloc(h.chunk_bytes) : NULL;
    unsigned char *cbuf = rc == SS_OK ? malloc(chunk_file_max(&h)) : NULL;
    if (rc == SS_OK && (!buf || !cbuf)) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int64_t c0 = 0; rc == SS_OK && c0 < t->n_rows; c0 += rows) {
        memset(buf, 0, h.chunk_bytes); /* padding of the last chunk, and of strings */
        for (int64_t i = c0; i < c0 + rows && i < t->n_rows; i++) {
            unsigned char *r = buf + (size_t)(i - c0) * rec;
            for (int c = 0; c < t->n_cols; c++) {
                const table_col *col = &t->cols[c];
                if (col->type == COL_F64) memcpy(r + offs[c], &col->f64[i], 8);
                else if (col->type == COL_I64) memcpy(r + offs[c], &col->i64[i], 8);
                else if (col->str[i]) memcpy(r + offs[c], col->str[i], strlen(col->str[i]));
            }
        }
        int64_t idx = c0 / rows;
        rc = chunk_store(dir, &h, &idx, buf, cbuf, &sums);
    }
    json_t *list = rc == SS_OK ? store_sums_json(&sums) : NULL;
    if (rc == SS_OK && (!list || json_object_set_new(zw->sums, name, list) != 0))
        rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    store_sums_free(&sums);
    free(buf);
    free(cbuf);
    free(offs);
    free(dir);
    return rc;
}

/* Flushes (commit) or drops (abort) what the writer's open arrays hold, and
 * cuts them loose: the caller may still close them, but not use them. */
static int detach_arrays(zarr_writer *zw, int flush)
{
    int rc = SS_OK;
    for (int i = 0; i < zw->n_open; i++) {
        zarr_array *za = zw->open[i];
        if (flush && rc == SS_OK) rc = array_finish(za);
        for (int k = 0; k < za->n_slots; k++) {
            free(za->slots[k].buf);
            za->slots[k] = (chunk_slot){0};
        }
        za->w = NULL;
        za->detached = 1;
        za->handle->writable = 0;
    }
    zw->n_open = 0;
    return rc;
}

/* Moves stage to the end of order.json. The caller holds order_mutex. */
static int update_order(store *s, const char *stage)
{
    zarr_store *zs = s->impl;
    json_t *order = NULL;
    /* A damaged list costs only the listing order of earlier stages (they
     * sort after the listed ones, by name): start it afresh. */
    if (zarr_json_read(zs->order, 1, &order) != SS_OK || (order && !json_is_array(order))) {
        json_decref(order);
        order = NULL;
    }
    int rc = order || (order = json_array()) ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) {
        for (size_t i = json_array_size(order); i-- > 0;) {
            json_t *e = json_array_get(order, i);
            if (json_is_string(e) && !strcmp(json_string_value(e), stage)) json_array_remove(order, i);
        }
        json_array_append_new(order, json_string(stage));
        rc = zarr_json_write(zs->order, order, ZARR_JSON_FLAGS, ZARR_WRITE_ATOMIC);
    }
    json_decref(order);
    return rc;
}

/* ---- the OME group: where OME-NGFF readers find the images --------------- */

/* Appends "<stage>/<image>" to series for each image group of the stage;
 * with only_in, just those that are image groups of that tree too. */
static int series_add_stage(json_t *series, const char *container, const char *stage, const char *only_in)
{
    char *dir = path_join(container, stage);
    char **names = NULL;
    int rc = dir ? list_dir(dir, is_image_group, &names) : ss_fail(SS_ERR_NOMEM, "out of memory");
    for (char **p = names; rc == SS_OK && p && *p; p++) {
        if (only_in && !is_image_group(only_in, *p)) continue;
        if (json_array_append_new(series, json_sprintf("%s/%s", stage, *p)) != 0)
            rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    store_names_free(names);
    free(dir);
    return rc;
}

/* The series: every image group of the committed stages, the stages in
 * commit order, each stage's images by name. While stage is being replaced
 * by the tree new_tree, its images are those both trees have. */
static int series_compute(store *s, const char *stage, const char *new_tree, json_t **out)
{
    char **stages = NULL;
    /* a damaged order.json only costs the order (the next commit rewrites it) */
    if (zarr_list_stages(s, &stages) != SS_OK) {
        ss_errclear();
        stages = NULL;
    }
    int rc = stages ? SS_OK : list_dir(s->path, stage_dir_ok_v2, &stages);
    json_t *series = json_array();
    if (rc == SS_OK && !series) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    for (char **p = stages; rc == SS_OK && p && *p; p++)
        rc = series_add_stage(series, s->path, *p, stage && !strcmp(*p, stage) ? new_tree : NULL);
    store_names_free(stages);
    if (rc == SS_OK) *out = series;
    else json_decref(series);
    return rc;
}

/* Makes OME/.zattrs say {"series": series}, replacing it atomically unless it
 * says so already; makes the group first if it went missing. */
static int series_write(store *s, json_t *series)
{
    zarr_store *zs = s->impl;
    json_t *cur = NULL, *want = json_pack("{s:O}", "series", series);
    char *ome = path_join(s->path, ZARR_OME_GROUP);
    int rc = want && ome ? SS_OK : ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && zarr_json_read(zs->series, 1, &cur) != SS_OK) ss_errclear(); /* damaged: rewritten */
    if (rc == SS_OK && !path_is_dir(ome)) {
        if (mkdir(ome, 0777) != 0) rc = ss_fail(SS_ERR_IO, "%s: cannot create: %s", ome, strerror(errno));
        else rc = fs_fsync_path(s->path);
    }
    if (rc == SS_OK && !file_exists_in(ome, ".zgroup"))
        rc = zarr_group_write(ome, NULL, ZARR_JSON_FLAGS, ZARR_WRITE_ATOMIC);
    if (rc == SS_OK && !(cur && json_equal(cur, want)))
        rc = zarr_json_write(zs->series, want, ZARR_JSON_FLAGS, ZARR_WRITE_ATOMIC);
    json_decref(cur);
    json_decref(want);
    free(ome);
    return rc;
}

/* Brings the series up to date (see series_compute). */
static int series_sync(store *s, const char *stage, const char *new_tree)
{
    json_t *series = NULL;
    int rc = series_compute(s, stage, new_tree, &series);
    if (rc == SS_OK) rc = series_write(s, series);
    json_decref(series);
    return rc;
}

/* Moves the finished tree tmp to final (fs_publish_dir); the old tree of a
 * replaced stage is parked at tmp.old where the filesystem cannot exchange,
 * so that store_recover can put it back if the process dies between the two
 * renames. *old_at: where the old tree is, to remove. */
static int swap_in(const char *tmp, const char *final, char **old_at)
{
    char *parked = ss_asprintf("%s.old", tmp);
    if (!parked) return ss_fail(SS_ERR_NOMEM, "out of memory");
    ss_crashpoint("zarr.commit.before_swap");
    int rc = fs_publish_dir(tmp, final, parked, old_at);
    free(parked);
    if (rc == SS_OK) ss_crashpoint("zarr.commit.after_swap");
    return rc;
}

static int zarr_commit(store_writer *w)
{
    zarr_writer *zw = w->impl;
    store *s = w->s;
    int rc = detach_arrays(zw, 1);
    if (rc == SS_OK && zw->failed)
        rc = ss_fail(zw->failed, "%s", zw->failed_msg ? zw->failed_msg : "closing an array failed");

    char *final = path_join(s->path, w->stage), *old = NULL;
    if (rc == SS_OK && !final) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    char *sums = path_join(zw->tmp, ZARR_SUMS_FILE);
    json_t *sj = json_pack("{s:s,s:O}", "algorithm", STORE_SUM_ALGORITHM, "arrays", zw->sums);
    if (rc == SS_OK && (!sums || !sj)) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK) rc = zarr_group_write(zw->tmp, zw->attrs, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE);
    if (rc == SS_OK) rc = zarr_json_write(sums, sj, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE);
    json_decref(sj);
    free(sums);
    if (rc == SS_OK) rc = fsync_tree(zw->tmp);
    int swapped = 0;
    pthread_mutex_lock(&order_mutex);
    /* Replacing a stage: the series first drops the images the new tree
     * lacks, so that at no instant does it name a missing one. */
    if (rc == SS_OK && lexists(final)) rc = series_sync(s, w->stage, zw->tmp);
    if (rc == SS_OK) {
        rc = swap_in(zw->tmp, final, &old);
        swapped = rc == SS_OK;
    }
    /* From here on the new stage is visible; later errors are reported but
     * cannot undo the commit. What a kill keeps from the list and the series,
     * store_recover adds. */
    if (swapped) rc = fs_fsync_path(s->path);
    if (swapped && rc == SS_OK) rc = update_order(s, w->stage);
    if (swapped && rc == SS_OK) {
        ss_crashpoint("zarr.commit.before_series");
        rc = series_sync(s, NULL, NULL);
    }
    pthread_mutex_unlock(&order_mutex);
    if (old) {
        /* A failure to remove the old tree costs only disk space until
         * store_recover; it must not mask the message of rc. */
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", ss_errmsg());
        fs_rm_rf(old);
        if (rc != SS_OK) ss_fail(rc, "%s", msg);
    }
    if (!swapped) fs_rm_rf(zw->tmp);
    free(final);
    free(old);
    writer_free(zw);
    w->impl = NULL;
    return rc;
}

static void zarr_abort(store_writer *w)
{
    zarr_writer *zw = w->impl;
    if (!zw) return;
    detach_arrays(zw, 0);
    fs_rm_rf(zw->tmp); /* what this leaves behind, store_recover removes */
    writer_free(zw);
    w->impl = NULL;
}

/* ---- reading ------------------------------------------------------------ */

/* Directory of the array or table <name> of a committed stage: <stage>/<name>,
 * or for an image group the array of its first level. */
static int member_path(store *s, const char *stage, const char *name, char **out)
{
    *out = NULL;
    char *dir = NULL;
    int rc = stage_path(s, stage, &dir);
    if (rc != SS_OK) return rc;
    char *p = NULL, *level = NULL;
    if (!store_valid_name(name)) rc = ss_fail(SS_ERR_INTERNAL, "invalid array name '%s'", name ? name : "");
    else if (!(p = path_join(dir, name))) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    else if (path_is_dir(p) && file_exists_in(p, ".zarray")) {
        *out = p;
        p = NULL;
    } else if ((rc = image_level(dir, name, &level)) == SS_OK) {
        if (!level) rc = ss_fail(SS_ERR_INPUT, "%s: no array or table '%s'", dir, name);
        else if (!(*out = path_join(p, level))) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    free(level);
    free(p);
    free(dir);
    return rc;
}

/* The checksums stage/name committed, from the stage's ZARR_SUMS_FILE. */
static int sums_load(store *s, const char *stage, const char *name, const zhdr *h, store_sums *out)
{
    char *dir = NULL, *file = NULL;
    json_t *j = NULL;
    int rc = stage_path(s, stage, &dir);
    if (rc == SS_OK && !(file = path_join(dir, ZARR_SUMS_FILE))) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc == SS_OK && (rc = zarr_json_read(file, 1, &j)) != SS_OK)
        rc = store_fail_damaged(s, stage, name, "its checksums cannot be read (%s)", ss_errmsg());
    else if (rc == SS_OK && !j)
        rc = store_fail_damaged(s, stage, name, "its checksums are missing (no %s)", file);
    const char *alg = json_string_value(json_object_get(j, "algorithm"));
    if (rc == SS_OK && (!alg || strcmp(alg, STORE_SUM_ALGORITHM) != 0))
        rc = store_fail_damaged(s, stage, name, "%s: checksum algorithm '%s' (this build knows %s)", file,
                                alg ? alg : "?", STORE_SUM_ALGORITHM);
    if (rc == SS_OK &&
        (rc = store_sums_from_json(json_object_get(json_object_get(j, "arrays"), name),
                                   store_chunk_count(h->rank, h->shape, h->chunk), file, out)) != SS_OK)
        rc = store_fail_damaged(s, stage, name, "%s", ss_errmsg());
    json_decref(j);
    free(file);
    free(dir);
    return rc;
}

/* Opens member name of a committed stage: its folder and header, checked
 * against what the stage committed (when it recorded that), with its
 * checksums in *sums (has_sums set) for the chunk reads to verify. */
static int member_open(store *s, const char *stage, const char *name, char **dir, zhdr *h, int *has_sums,
                       store_sums *sums)
{
    *dir = NULL;
    *has_sums = 0;
    memset(h, 0, sizeof *h);
    json_t *entry = NULL;
    int rc = member_path(s, stage, name, dir);
    if (rc == SS_OK) rc = store_committed_entry(s, stage, name, &entry);
    if (rc == SS_OK && (rc = parse_header(*dir, h)) != SS_OK && entry)
        rc = store_fail_damaged(s, stage, name, "%s", ss_errmsg());
    if (rc == SS_OK && entry && (rc = store_check_entry(s, stage, name, entry, hdr_entry(h))) == SS_OK &&
        (rc = sums_load(s, stage, name, h, sums)) == SS_OK)
        *has_sums = 1;
    json_decref(entry);
    if (rc != SS_OK) {
        hdr_free(h);
        free(*dir);
        *dir = NULL;
    }
    return rc;
}

static int zarr_array_open(store *s, const char *stage, const char *name, store_array *a)
{
    char *dir = NULL;
    zhdr h;
    int has_sums;
    store_sums sums = {0};
    int rc = member_open(s, stage, name, &dir, &h, &has_sums, &sums);
    if (rc != SS_OK) return rc;
    if (h.is_table) rc = ss_fail(SS_ERR_INPUT, "%s: is a table, not an array", dir);
    int has_meta;
    array_meta meta;
    if (rc == SS_OK) rc = parse_meta(dir, h.rank, &has_meta, &meta);
    zarr_array *za = rc == SS_OK ? array_new(dir, &h) : NULL;
    if (rc == SS_OK && !za) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    if (rc != SS_OK) {
        store_sums_free(&sums);
        hdr_free(&h);
        free(dir);
        return rc;
    }
    za->has_meta = has_meta;
    za->meta = meta;
    za->handle = a;
    za->has_sums = has_sums;
    za->sums = sums;
    a->impl = za;
    return SS_OK;
}

static int check_usable(zarr_array *za)
{
    if (za->detached)
        return ss_fail(SS_ERR_INTERNAL, "%s: array used after its stage was committed or aborted", za->dir);
    return SS_OK;
}

static int chunk_bytes_on_disk(const char *path, int64_t *total)
{
    struct stat st;
    if (lstat(path, &st) != 0) return ss_fail(SS_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        *total += st.st_size;
        return SS_OK;
    }
    if (!S_ISDIR(st.st_mode)) return SS_OK;
    DIR *d = opendir(path);
    if (!d) return ss_fail(SS_ERR_IO, "%s: cannot list: %s", path, strerror(errno));
    struct dirent *e;
    int rc = SS_OK;
    while (rc == SS_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* metadata, not chunks */
        char *child = path_join(path, e->d_name);
        rc = child ? chunk_bytes_on_disk(child, total) : ss_fail(SS_ERR_NOMEM, "out of memory");
        free(child);
    }
    closedir(d);
    return rc;
}

static int zarr_array_info(store_array *a, array_info *info)
{
    zarr_array *za = a->impl;
    int rc = check_usable(za);
    if (rc == SS_OK && za->w) rc = array_flush(za); /* count what is cached too */
    if (rc != SS_OK) return rc;
    const zhdr *h = &za->h;
    info->rank = h->rank;
    memcpy(info->shape, h->shape, sizeof info->shape);
    memcpy(info->chunk, h->chunk, sizeof info->chunk);
    info->dtype = h->dtype;
    info->has_meta = za->has_meta;
    info->meta = za->meta;
    zarr_codec_text(&h->codec, info->compressor, sizeof info->compressor);
    info->stored_bytes = 0;
    return chunk_bytes_on_disk(za->dir, &info->stored_bytes);
}

static int zarr_array_read(store_array *a, const int64_t *start, const int64_t *count, ss_dtype mem, void *buf)
{
    zarr_array *za = a->impl;
    int rc = check_usable(za);
    if (rc == SS_OK) rc = store_check_slab(za->dir, za->h.rank, za->h.shape, start, count);
    if (rc == SS_OK && (unsigned)mem >= DT_COUNT) rc = ss_fail(SS_ERR_INTERNAL, "%s: bad memory dtype", za->dir);
    return rc == SS_OK ? slab_io(za, start, count, mem, buf, 0) : rc;
}

static int zarr_array_write(store_array *a, const int64_t *start, const int64_t *count, ss_dtype mem,
                            const void *buf)
{
    zarr_array *za = a->impl;
    int rc = check_usable(za);
    if (rc == SS_OK && !za->w) rc = ss_fail(SS_ERR_INTERNAL, "%s: array opened read-only", za->dir);
    if (rc == SS_OK) rc = store_check_slab(za->dir, za->h.rank, za->h.shape, start, count);
    if (rc == SS_OK && (unsigned)mem >= DT_COUNT) rc = ss_fail(SS_ERR_INTERNAL, "%s: bad memory dtype", za->dir);
    return rc == SS_OK ? slab_io(za, start, count, mem, (void *)buf, 1) : rc;
}

static void zarr_array_close(store_array *a)
{
    zarr_array *za = a->impl;
    if (!za) return;
    if (za->w) {
        /* close cannot return an error: the commit reports it instead */
        int rc = array_finish(za);
        if (rc != SS_OK && !za->w->failed) {
            za->w->failed = rc;
            za->w->failed_msg = ss_strdup(ss_errmsg());
        }
        writer_untrack(za->w, za);
    }
    array_free(za);
    a->impl = NULL;
}

static int zarr_table_read(store *s, const char *stage, const char *name, table_data *t)
{
    char *dir = NULL;
    zhdr h;
    int has_sums;
    store_sums sums = {0};
    int rc = member_open(s, stage, name, &dir, &h, &has_sums, &sums);
    if (rc != SS_OK) return rc;
    zcheck ck = {s, stage, name, &sums, s->verify, NULL};
    if (!h.is_table) rc = ss_fail(SS_ERR_INPUT, "%s: is an array, not a table", dir);
    /* Read whole into memory: bound it so that a damaged shape cannot. */
    const int64_t n = h.shape[0];
    if (rc == SS_OK && (uint64_t)n * (uint64_t)h.n_cols * TABLE_STR_LEN > ZARR_TABLE_MAX_BYTES)
        rc = ss_fail(SS_ERR_INPUT, "%s: table of %lld rows and %d columns is larger than the %d MiB supported", dir,
                     (long long)n, h.n_cols, (int)(ZARR_TABLE_MAX_BYTES >> 20));
    if (rc == SS_OK) {
        t->names = calloc((size_t)h.n_cols, sizeof *t->names);
        t->types = calloc((size_t)h.n_cols, sizeof *t->types);
        t->data = calloc((size_t)h.n_cols, sizeof *t->data);
        if (!t->names || !t->types || !t->data) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    for (int c = 0; rc == SS_OK && c < h.n_cols; c++) {
        size_t per = h.cols[c].type == COL_STR ? TABLE_STR_LEN : 8;
        t->names[c] = ss_strdup(h.cols[c].name);
        t->types[c] = h.cols[c].type;
        t->data[c] = calloc(n > 0 ? (size_t)n : 1, per);
        t->n_cols = c + 1;
        if (!t->names[c] || !t->data[c]) rc = ss_fail(SS_ERR_NOMEM, "out of memory for table %s", dir);
    }
    t->n_rows = n;
    unsigned char *buf = rc == SS_OK ? malloc(h.chunk_bytes) : NULL;
    unsigned char *cbuf = rc == SS_OK ? malloc(chunk_file_max(&h)) : NULL;
    if (rc == SS_OK && (!buf || !cbuf)) rc = ss_fail(SS_ERR_NOMEM, "out of memory");
    for (int64_t c0 = 0; rc == SS_OK && c0 < n; c0 += h.chunk[0]) {
        int64_t idx = c0 / h.chunk[0];
        rc = chunk_load(dir, &h, &idx, buf, cbuf, has_sums ? &ck : NULL);
        for (int64_t i = c0; rc == SS_OK && i < c0 + h.chunk[0] && i < n; i++) {
            const unsigned char *r = buf + (size_t)(i - c0) * h.elem;
            for (int c = 0; c < h.n_cols; c++) {
                const zcol *col = &h.cols[c];
                if (col->type == COL_STR) {
                    /* numpy pads with NULs and need not terminate */
                    char *d = (char *)t->data[c] + (size_t)i * TABLE_STR_LEN;
                    size_t len = strnlen((const char *)r + col->offset, col->size);
                    if (len >= TABLE_STR_LEN) len = TABLE_STR_LEN - 1;
                    memcpy(d, r + col->offset, len);
                    d[len] = 0;
                } else {
                    memcpy((char *)t->data[c] + (size_t)i * 8, r + col->offset, 8);
                }
            }
        }
    }
    free(buf);
    free(cbuf);
    store_sums_free(&sums);
    hdr_free(&h);
    free(dir);
    if (rc != SS_OK) table_free(t);
    return rc;
}

static int zarr_is_table(store *s, const char *stage, const char *name)
{
    char *dir = NULL;
    zhdr h;
    int rc = member_path(s, stage, name, &dir);
    if (rc == SS_OK) rc = parse_header(dir, &h);
    free(dir);
    if (rc != SS_OK) return rc;
    int is = h.is_table;
    hdr_free(&h);
    return is;
}

/* ---- checks ---------------------------------------------------------------- */

static int zarr_check_member(store *s, const char *stage, const char *name, const json_t *entry, int content,
                             int stop, store_finding_fn fn, void *ctx, int64_t *chunks)
{
    char *dir = NULL;
    zhdr h;
    memset(&h, 0, sizeof h);
    store_sums sums = {0};
    int rc = member_path(s, stage, name, &dir);
    if (rc == SS_ERR_INPUT) rc = store_fail_damaged(s, stage, name, "missing (%s)", ss_errmsg());
    if (rc == SS_OK && (rc = parse_header(dir, &h)) == SS_ERR_INPUT) rc = store_fail_damaged(s, stage, name, "%s", ss_errmsg());
    if (rc == SS_OK) rc = store_check_entry(s, stage, name, entry, hdr_entry(&h));
    if (rc == SS_OK) rc = sums_load(s, stage, name, &h, &sums);
    int problems = rc == SS_OK ? 0 : store_finding_of(rc, fn, ctx, stage, name);
    zcheck ck = {s, stage, name, &sums, 1, NULL};
    int has_meta = 0;
    array_meta meta;
    if (problems == 0 && !h.is_table && parse_meta(dir, h.rank, &has_meta, &meta) == SS_OK && has_meta)
        ck.axes = meta.axes;
    ss_errclear();
    /* every chunk the stage stored is there, and no other */
    const int listed_ok = problems == 0;
    for (int64_t k = 0; listed_ok && problems >= 0 && !(stop && problems) && k < sums.n; k++) {
        int64_t idx[STORE_MAX_RANK];
        store_chunk_index(h.rank, h.shape, h.chunk, k, idx);
        char *path = chunk_path(dir, &h, idx);
        struct stat st;
        int there = path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
        if (!path) problems = ss_fail(SS_ERR_NOMEM, "out of memory");
        else if (sums.stored[k] != there && (sums.seen[k] = 1))
            problems += store_finding_of(chunk_damaged(&ck, &h, idx, path,
                                                       there ? "there, but the stage stored no such chunk"
                                                             : "missing (the stage stored it)"),
                                         fn, ctx, stage, name);
        free(path);
    }
    unsigned char *buf = NULL, *cbuf = NULL;
    if (content && listed_ok && problems >= 0 && !(stop && problems) && sums.n > 0) {
        buf = malloc(h.chunk_bytes);
        cbuf = malloc(chunk_file_max(&h));
        if (!buf || !cbuf) problems = ss_fail(SS_ERR_NOMEM, "out of memory for a chunk of %zu bytes", h.chunk_bytes);
    }
    for (int64_t k = 0; content && buf && cbuf && problems >= 0 && !(stop && problems) && k < sums.n; k++) {
        if (!sums.stored[k] || sums.seen[k]) continue; /* seen: reported missing above */
        int64_t idx[STORE_MAX_RANK];
        store_chunk_index(h.rank, h.shape, h.chunk, k, idx);
        int r = store_finding_of(chunk_load(dir, &h, idx, buf, cbuf, &ck), fn, ctx, stage, name);
        if (r < 0) problems = r;
        else problems += r;
        (*chunks)++;
    }
    free(buf);
    free(cbuf);
    store_sums_free(&sums);
    hdr_free(&h);
    free(dir);
    return problems;
}

static int is_name_list(const json_t *j)
{
    size_t i;
    const json_t *v;
    if (!json_is_array(j)) return 0;
    json_array_foreach(j, i, v) if (!json_is_string(v)) return 0;
    return 1;
}

static int listed(const json_t *list, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), name)) return 1;
    return 0;
}

static void finding(store_finding_fn fn, void *ctx, store_severity sev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finding(store_finding_fn fn, void *ctx, store_severity sev, const char *fmt, ...)
{
    char m[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    fn(ctx, sev, NULL, NULL, m);
}

static int zarr_check_index(store *s, store_finding_fn fn, void *ctx)
{
    zarr_store *zs = s->impl;
    int problems = 0;
    json_t *order = NULL;
    char **stages = NULL;
    if (zarr_json_read(zs->order, 1, &order) != SS_OK || (order && !is_name_list(order))) {
        finding(fn, ctx, STORE_PROBLEM, "%s: the commit order is damaged (%s); the next run rebuilds it", zs->order,
                order ? "not a list of stage names" : ss_errmsg());
        problems++;
        ss_errclear();
    } else if (list_dir(s->path, zs->version >= 2 ? stage_dir_ok_v2 : stage_dir_ok, &stages) == SS_OK) {
        for (char **p = stages; p && *p; p++)
            if (!listed(order, *p))
                finding(fn, ctx, STORE_NOTE, "%s: stage '%s' is not in the commit order yet (the next run adds it)",
                        zs->order, *p);
    }
    store_names_free(stages);
    json_decref(order);
    if (zs->version < 2) return problems;
    json_t *cur = NULL, *want = NULL;
    if (zarr_json_read(zs->series, 1, &cur) != SS_OK || (cur && !is_name_list(json_object_get(cur, "series")))) {
        finding(fn, ctx, STORE_PROBLEM, "%s: the image series is damaged (%s); the next run rewrites it", zs->series,
                cur ? "no list \"series\"" : ss_errmsg());
        problems++;
        ss_errclear();
    } else if (series_compute(s, NULL, NULL, &want) == SS_OK) {
        json_t *have = json_object_get(cur, "series");
        size_t i;
        json_t *v;
        json_array_foreach(have, i, v) if (!listed(want, json_string_value(v)))
        {
            finding(fn, ctx, STORE_PROBLEM, "%s: the image series names '%s', which is no image group here",
                    zs->series, json_string_value(v));
            problems++;
        }
        json_array_foreach(want, i, v) if (!listed(have, json_string_value(v)))
            finding(fn, ctx, STORE_NOTE, "%s: image '%s' is not in the series yet (the next run adds it)", zs->series,
                    json_string_value(v));
    } else {
        ss_errclear();
    }
    json_decref(cur);
    json_decref(want);
    return problems;
}

const store_backend store_backend_zarr = {
    .open = zarr_open,
    .close = zarr_close,
    .recover = zarr_recover,
    .list_stages = zarr_list_stages,
    .has_stage = zarr_has_stage,
    .stage_attrs = zarr_stage_attrs,
    .list_arrays = zarr_list_arrays,
    .stage_begin = zarr_stage_begin,
    .writer_attr = zarr_writer_attr,
    .writer_array = zarr_writer_array,
    .writer_table = zarr_writer_table,
    .commit = zarr_commit,
    .abort = zarr_abort,
    .array_open = zarr_array_open,
    .array_info = zarr_array_info,
    .array_read = zarr_array_read,
    .array_write = zarr_array_write,
    .array_close = zarr_array_close,
    .table_read = zarr_table_read,
    .is_table = zarr_is_table,
    .check_member = zarr_check_member,
    .check_index = zarr_check_index,
};
