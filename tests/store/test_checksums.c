/* Chunk checksums and integrity checks of the store, the same scenario on
 * both backends: what a commit records (schemas/container-layout.md,
 * "Checksums"), checksums recomputed here from the values as the layout
 * defines them, reads that refuse damaged chunks (naming container, stage,
 * array, chunk and planes) unless verification is off, the cheap check and
 * the full one, damage records; then the HDF5 index rebuilt from the stage
 * files, and Zarr's chunks that were never written. */
#include "tap.h"
#include "error.h"
#include "store.h"
#include "store_impl.h"
#include "util.h"

#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define Z 5
#define Y 33
#define X 17

static float value(int z, int y, int x) { return (float)(z * 1000 + y * 17 + x) + 0.25f; }

/* Array "a": planes written one at a time into chunks two planes deep, plane
 * 1 from float64 (converted by the store), plane 4 never written (fill);
 * table "t". Compression none: a flipped byte still decodes, so only the
 * checksum can notice it. */
static int write_stage(store *s, const char *stage)
{
    store_writer *w;
    int rc = store_stage_begin(s, stage, &w);
    if (rc) return rc;
    int64_t shape[3] = {Z, Y, X}, chunk[3] = {2, 16, X};
    array_meta m = {.axes = "zyx", .voxel = {1.0, 0.1, 0.1}, .unit = "micrometer"};
    store_array *a;
    if ((rc = store_writer_array(w, "a", DT_F32, 3, shape, chunk, &m, &a))) return rc;
    float plane[Y * X];
    double plane64[Y * X];
    for (int z = 0; z < 4 && rc == SS_OK; z++) {
        for (int y = 0; y < Y; y++)
            for (int x = 0; x < X; x++) plane[y * X + x] = value(z, y, x), plane64[y * X + x] = value(z, y, x);
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        rc = z == 1 ? store_array_write(a, st, ct, DT_F64, plane64) : store_array_write(a, st, ct, DT_F32, plane);
    }
    store_array_close(a);
    /* a table of two chunks in both stores (65536 rows of HDF5, 4 MiB of Zarr) */
    enum { ROWS = 70000 };
    static int64_t iv[ROWS];
    static const char *sv[ROWS];
    for (int r = 0; r < ROWS; r++) iv[r] = r * 3, sv[r] = r % 2 ? "median" : "mean";
    table_col cols[2] = {{"plane", COL_I64, NULL, iv, NULL}, {"method", COL_STR, NULL, NULL, sv}};
    table_view tv = {2, ROWS, cols};
    if (rc == SS_OK) rc = store_writer_table(w, "t", &tv);
    if (rc != SS_OK) {
        store_abort_stage(w);
        return rc;
    }
    return store_commit_stage(w);
}

/* The stored checksums of stage/name, however the backend keeps them. */
static int stored_sums(store *s, const char *stage, const char *name, uint64_t *out, int *present, int n)
{
    if (store_get_format(s) == STORE_ZARR) {
        char *p = ss_asprintf("%s/%s/.sirenstack_checksums.json", store_path(s), stage);
        json_t *j = json_load_file(p, 0, NULL);
        free(p);
        json_t *l = json_object_get(json_object_get(j, "arrays"), name);
        int ok = json_is_array(l) && (int)json_array_size(l) == n &&
                 !strcmp(json_string_value(json_object_get(j, "algorithm")) ?: "", "xxh3-64");
        for (int i = 0; ok && i < n; i++) {
            const char *h = json_string_value(json_array_get(l, (size_t)i));
            present[i] = h != NULL;
            out[i] = h ? strtoull(h, NULL, 16) : 0;
        }
        json_decref(j);
        return ok ? 0 : -1;
    }
    char *p = ss_asprintf("%s:%s", store_path(s), stage);
    hid_t f = H5Fopen(store_path(s), H5F_ACC_RDONLY, H5P_DEFAULT);
    free(p);
    hid_t g = f >= 0 ? H5Gopen2(f, stage, H5P_DEFAULT) : -1;
    hid_t d = g >= 0 ? H5Dopen2(g, name, H5P_DEFAULT) : -1;
    hid_t at = d >= 0 ? H5Aopen(d, "sirenstack_checksums", H5P_DEFAULT) : -1;
    hid_t sp = at >= 0 ? H5Aget_space(at) : -1;
    int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == n && H5Aread(at, H5T_NATIVE_UINT64, out) >= 0;
    for (int i = 0; i < n; i++) present[i] = 1;
    if (sp >= 0) H5Sclose(sp);
    if (at >= 0) H5Aclose(at);
    if (d >= 0) H5Dclose(d);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    return ok ? 0 : -1;
}

/* The file and byte offset where chunk k of stage/name begins (compression
 * none: the chunk's bytes as they are). */
static char *chunk_place(store *s, const char *stage, const char *name, int64_t k, int64_t *offset)
{
    *offset = 0;
    if (store_get_format(s) == STORE_ZARR) {
        int64_t idx[3], shape[3] = {Z, Y, X}, chunk[3] = {2, 16, X};
        store_chunk_index(3, shape, chunk, k, idx);
        return ss_asprintf("%s/%s/%s/0/%lld/%lld/%lld", store_path(s), stage, name, (long long)idx[0],
                           (long long)idx[1], (long long)idx[2]);
    }
    hid_t f = H5Fopen(store_path(s), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, stage, H5P_DEFAULT);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hsize_t off[3];
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    hid_t sp = H5Dget_space(d);
    H5Dget_chunk_info(d, sp, (hsize_t)k, off, &mask, &addr, &size);
    char file[4096];
    ssize_t n = H5Fget_name(g, file, sizeof file); /* the stage file, through the external link */
    H5Sclose(sp);
    H5Dclose(d);
    H5Gclose(g);
    H5Fclose(f);
    *offset = (int64_t)addr;
    return n > 0 ? ss_strdup(file) : NULL;
}

static void flip_byte(const char *path, int64_t at)
{
    int fd = open(path, O_RDWR);
    unsigned char b = 0;
    if (pread(fd, &b, 1, at) == 1) {
        b ^= 0x10;
        if (pwrite(fd, &b, 1, at) != 1) printf("# cannot write %s\n", path);
    }
    close(fd);
}

typedef struct {
    int problems, notes;
    char first[2048];
} found;

static void collect(void *op, store_severity sev, const char *stage, const char *member, const char *msg)
{
    found *f = op;
    (void)stage, (void)member;
    if (sev == STORE_PROBLEM && !f->problems++) snprintf(f->first, sizeof f->first, "%s", msg);
    if (sev == STORE_NOTE) f->notes++;
}

static void block_hashes(void)
{
    unsigned char buf[6 * 7 * 5 * 4];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 31 + 7);
    int64_t dims[3] = {6, 7, 5};
    int64_t cases[][6] = {{0, 0, 0, 6, 7, 5}, {1, 0, 0, 2, 7, 5}, {1, 2, 0, 3, 4, 5}, {2, 3, 1, 2, 2, 3}, {5, 6, 4, 1, 1, 1}};
    int all = 1;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const int64_t *off = cases[c], *ext = cases[c] + 3;
        unsigned char packed[sizeof buf];
        size_t n = 0;
        for (int64_t z = 0; z < ext[0]; z++)
            for (int64_t y = 0; y < ext[1]; y++) {
                memcpy(packed + n, buf + (((off[0] + z) * 7 + off[1] + y) * 5 + off[2]) * 4, (size_t)ext[2] * 4);
                n += (size_t)ext[2] * 4;
            }
        all &= store_hash_block(buf, 3, dims, off, ext, 4) == XXH3_64bits(packed, n);
    }
    CHECK(all, "the checksum of a block is XXH3-64 of its elements in C order, however it lies in the buffer");
    int64_t shape[3] = {5, 33, 17}, chunk[3] = {2, 16, 17}, idx[3], back = -1, rs[3], re[3];
    CHECK(store_chunk_count(3, shape, chunk) == 9, "5x33x17 in chunks of 2x16x17: 9 chunks");
    store_chunk_index(3, shape, chunk, 8, idx);
    back = store_chunk_linear(3, shape, chunk, idx);
    store_chunk_region(3, shape, chunk, idx, rs, re);
    CHECK(idx[0] == 2 && idx[1] == 2 && back == 8 && rs[0] == 4 && re[0] == 1 && rs[1] == 32 && re[1] == 1,
          "the last chunk is (2,2,0), holding plane 4 and row 32");
    sbuf b = {0};
    store_chunk_text(&b, 3, shape, chunk, idx, "zyx", 0);
    CHECK(!strcmp(sbuf_str(&b), "chunk (2,2,0) (plane z 4)"), "chunks are named with their planes: %s", sbuf_str(&b));
    sbuf_free(&b);
}

static void backend(const char *dir, store_format fmt)
{
    const char *fname = fmt == STORE_ZARR ? "zarr" : "hdf5";
    char *path = ss_asprintf("%s/%s/s1.%s", dir, fname, fmt == STORE_ZARR ? "zarr" : "h5");
    store *s;
    CHECK(store_open(path, fmt, STORE_OPEN_CREATE, &s) == SS_OK && store_lock(s) == SS_OK &&
              store_recover(s) == SS_OK,
          "%s: create a container", fname);
    store_set_compression(s, STORE_COMP_NONE);
    CHECK(write_stage(s, "st") == SS_OK, "%s: commit a stage: %s", fname, ss_errmsg());

    json_t *attrs = NULL;
    store_stage_attrs(s, "st", &attrs);
    json_t *rec = json_object_get(json_object_get(attrs, "sirenstack_arrays"), "a");
    char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(text && strstr(text, "\"shape\":[5,33,17]") && strstr(text, "\"chunks\":[2,16,17]") &&
              strstr(text, "\"dtype\":\"float32\"") && strstr(text, "\"checksum\":\"xxh3-64\"") &&
              strstr(text, "\"compressor\":\"none\""),
          "%s: the stage records shape, chunks, dtype, compressor and checksum of 'a': %s", fname, text);
    free(text);
    text = json_dumps(json_object_get(json_object_get(attrs, "sirenstack_arrays"), "t"), JSON_COMPACT);
    CHECK(text && strstr(text, "[[\"plane\",\"<i8\"],[\"method\",\"|S64\"]]"),
          "%s: and of table 't', its fields as numpy names them: %s", fname, text);
    free(text);
    CHECK(json_string_value(json_object_get(attrs, "sirenstack_stage")) &&
              strlen(json_string_value(json_object_get(attrs, "sirenstack_commit_time")) ?: "") == 27,
          "%s: and its name and commit time to the microsecond", fname);
    json_decref(attrs);

    /* the stored checksums are those of the values, chunk by chunk */
    uint64_t sums[9];
    int present[9];
    int64_t shape[3] = {Z, Y, X}, chunk[3] = {2, 16, X};
    int ok = stored_sums(s, "st", "a", sums, present, 9) == 0;
    for (int64_t k = 0; ok && k < 9; k++) {
        int64_t idx[3], rs[3], re[3];
        store_chunk_index(3, shape, chunk, k, idx);
        store_chunk_region(3, shape, chunk, idx, rs, re);
        float v[2 * 16 * X];
        size_t n = 0;
        for (int64_t z = rs[0]; z < rs[0] + re[0]; z++)
            for (int64_t y = rs[1]; y < rs[1] + re[1]; y++)
                for (int64_t x = 0; x < X; x++) v[n++] = z < 4 ? value((int)z, (int)y, (int)x) : 0.0f;
        int unwritten = rs[0] == 4;
        if (fmt == STORE_ZARR && unwritten) ok &= !present[k];
        else ok &= present[k] && sums[k] == XXH3_64bits(v, n * sizeof *v);
    }
    CHECK(ok, "%s: every chunk's checksum is XXH3-64 of its values (little endian, C order, inside the array)%s",
          fname, fmt == STORE_ZARR ? "; chunks never written have none" : "; chunks never written are stored as fill");

    store_array *a;
    float plane[Y * X];
    int64_t st[3] = {0, 0, 0}, ct[3] = {1, Y, X};
    int good = store_array_open(s, "st", "a", &a) == SS_OK;
    for (int z = 0; good && z < Z; z++) {
        st[0] = z;
        good = store_array_read(a, st, ct, DT_F32, plane) == SS_OK &&
               plane[Y * X - 1] == (z < 4 ? value(z, Y - 1, X - 1) : 0.0f);
    }
    if (good) store_array_close(a);
    CHECK(good, "%s: every plane reads back, verified: %s", fname, good ? "" : ss_errmsg());
    CHECK(store_stage_check(s, "st") == SS_OK, "%s: the cheap check passes", fname);
    found f = {0};
    store_state state;
    int64_t chunks = 0;
    CHECK(store_stage_verify(s, "st", collect, &f, &state, &chunks) == SS_OK && state == STORE_INTACT && !f.problems &&
              chunks == (fmt == STORE_ZARR ? 6 : 9) + 2,
          "%s: the full check finds it intact (%lld chunks checked)", fname, (long long)chunks);

    /* a flipped byte in chunk (1,0,0), the fourth: planes 2 and 3 */
    int64_t off;
    char *file = chunk_place(s, "st", "a", 3, &off);
    flip_byte(file, off + 100);
    free(file);
    CHECK(store_stage_check(s, "st") == SS_OK, "%s: the cheap check decodes nothing, so it passes", fname);
    st[0] = 3;
    CHECK(store_array_open(s, "st", "a", &a) == SS_OK, "%s: the damaged array opens", fname);
    int rc = store_array_read(a, st, ct, DT_F32, plane);
    const char *m = ss_errmsg();
    CHECK(rc == SS_ERR_INPUT && strstr(m, path) && strstr(m, "stage 'st'") && strstr(m, "'a'") &&
              strstr(m, "chunk (1,0,0) (planes z 2-3)") && strstr(m, "checksum mismatch"),
          "%s: reading a damaged chunk is an input error naming it: %s", fname, m);
    json_t *seen = store_damage_take(s);
    CHECK(json_object_get(seen, "st") != NULL, "%s: the store notes which stage it found damaged", fname);
    json_decref(seen);
    store_array_close(a);
    store_set_verify(s, 0);
    CHECK(store_array_open(s, "st", "a", &a) == SS_OK && store_array_read(a, st, ct, DT_F32, plane) == SS_OK,
          "%s: with verification off it reads", fname);
    store_array_close(a);
    store_set_verify(s, 1);
    f = (found){0};
    chunks = 0;
    CHECK(store_stage_verify(s, "st", collect, &f, &state, &chunks) == SS_OK && state == STORE_DAMAGED &&
              f.problems == 1 && strstr(f.first, "chunk (1,0,0)"),
          "%s: the full check finds the one damaged chunk: %s", fname, f.first);
    CHECK(store_mark_damaged(s, "st", f.first) == SS_OK && store_stage_check(s, "st") == SS_ERR_INPUT &&
              strstr(ss_errmsg(), "chunk (1,0,0)"),
          "%s: once recorded, the cheap check reports it too", fname);
    char *why = store_damage_of(s, "st");
    CHECK(why && strstr(why, "checksum mismatch"), "%s: the record gives the reason", fname);
    free(why);

    /* the table */
    char *tfile = chunk_place(s, "st", "t", 0, &off);
    if (fmt == STORE_ZARR) {
        free(tfile);
        tfile = ss_asprintf("%s/st/t/0", path);
    }
    flip_byte(tfile, off + 9);
    free(tfile);
    table_data t;
    rc = store_table_read(s, "st", "t", &t);
    CHECK(rc == SS_ERR_INPUT && strstr(ss_errmsg(), "'t'") && strstr(ss_errmsg(), "chunk (0) (rows 0-") &&
              strstr(ss_errmsg(), "checksum mismatch"),
          "%s: a damaged table is refused: %s", fname, ss_errmsg());
    if (rc == SS_OK) table_free(&t);

    /* a recommit is new data: the record goes */
    CHECK(write_stage(s, "st") == SS_OK && !store_damage_of(s, "st") && store_stage_check(s, "st") == SS_OK,
          "%s: the stage recommitted, nothing is recorded against it", fname);
    store_close(s);

    if (fmt == STORE_HDF5) {
        /* the index, truncated: rebuilt from the stage files */
        CHECK(store_open(path, fmt, STORE_OPEN_CREATE, &s) == SS_OK && store_lock(s) == SS_OK &&
                  write_stage(s, "second") == SS_OK,
              "hdf5: a second stage");
        store_close(s);
        char *idx_before = NULL;
        size_t nb = 0;
        fs_read_all(path, &idx_before, &nb);
        truncate(path, 100);
        rc = store_open(path, fmt, 0, &s);
        CHECK(rc == SS_ERR_INPUT && strstr(ss_errmsg(), "index is damaged") && strstr(ss_errmsg(), "sirenstack run") &&
                  strstr(ss_errmsg(), "st, second"),
              "hdf5: a reader refuses a damaged index, naming the stages that can rebuild it: %s", ss_errmsg());
        CHECK(store_open(path, fmt, STORE_OPEN_REPAIRABLE, &s) == SS_OK && store_index_problem(s) &&
                  store_has_stage(s, "st") == 1 && store_has_stage(s, "second") == 1,
              "hdf5: opened to repair, it lists the stages of the stage files");
        char **names = NULL;
        CHECK(store_list_stages(s, &names) == SS_OK && names[0] && !strcmp(names[0], "st") && names[1] &&
                  !strcmp(names[1], "second") && !names[2],
              "hdf5: in commit order");
        store_names_free(names);
        f = (found){0};
        CHECK(store_index_verify(s, collect, &f) == 1 && strstr(f.first, "index is damaged"),
              "hdf5: the index check reports it: %s", f.first);
        CHECK(store_lock(s) == SS_OK && store_recover(s) == SS_OK && store_repaired(s) &&
                  strstr(store_repaired(s), "rebuilt it from the 2 committed stage files") && !store_index_problem(s),
              "hdf5: recovery writes it: %s", store_repaired(s) ?: "");
        store_close(s);
        CHECK(store_open(path, fmt, 0, &s) == SS_OK && store_has_stage(s, "second") == 1 && !store_index_problem(s),
              "hdf5: the written index opens as any other");
        store_close(s);
        free(idx_before);
    } else {
        /* Zarr: a chunk never written has no file; one appearing is damage, as
         * is a stored one that goes */
        char *extra = ss_asprintf("%s/st/a/0/2/0/0", path), *chunk0 = ss_asprintf("%s/st/a/0/0/0/0", path);
        CHECK(!path_exists(extra), "zarr: the chunk of plane 4 was never written, and has no file");
        CHECK(store_open(path, fmt, 0, &s) == SS_OK, "zarr: reopen");
        char *parent = path_dirname(extra);
        fs_mkdir_p(parent);
        free(parent);
        fs_copy_file(chunk0, extra);
        CHECK(store_stage_check(s, "st") == SS_ERR_INPUT && strstr(ss_errmsg(), "stored no such chunk"),
              "zarr: a chunk file where the stage stored none is found: %s", ss_errmsg());
        unlink(extra);
        unlink(chunk0);
        CHECK(store_stage_check(s, "st") == SS_ERR_INPUT && strstr(ss_errmsg(), "chunk (0,0,0) (planes z 0-1)") &&
                  strstr(ss_errmsg(), "missing"),
              "zarr: a deleted chunk is found by the cheap check: %s", ss_errmsg());
        CHECK(store_array_open(s, "st", "a", &a) == SS_OK && store_array_read(a, (int64_t[3]){0, 0, 0}, ct, DT_F32,
                                                                            plane) == SS_ERR_INPUT,
              "zarr: and reading it is an error, not zeros");
        store_array_close(a);
        store_close(s);
        free(extra);
        free(chunk0);
    }
    free(path);
}

/* Whole-chunk reads (one-plane chunks read plane by plane: HDF5 decodes them
 * itself, straight into the caller's buffer), blosc and uncompressed: a
 * damaged chunk is named, the others read. */
static void whole_chunks(const char *dir, store_format fmt, store_compression comp)
{
    const char *fname = fmt == STORE_ZARR ? "zarr" : "hdf5";
    char *path = ss_asprintf("%s/%s-%s/s1.%s", dir, fname, store_compression_name(comp), fmt == STORE_ZARR ? "zarr" : "h5");
    store *s;
    store_writer *w;
    store_array *a;
    int64_t shape[3] = {4, 64, 64}, chunk[3] = {1, 64, 64}, st[3] = {0, 0, 0}, ct[3] = {1, 64, 64};
    array_meta m = {.axes = "zyx", .voxel = {1, 1, 1}, .unit = "micrometer"};
    static uint16_t plane[64 * 64];
    int rc = store_open(path, fmt, STORE_OPEN_CREATE, &s);
    if (rc == SS_OK) rc = store_lock(s);
    if (rc == SS_OK) store_set_compression(s, comp);
    if (rc == SS_OK) rc = store_stage_begin(s, "pl", &w);
    if (rc == SS_OK) rc = store_writer_array(w, "p", DT_U16, 3, shape, chunk, &m, &a);
    for (int z = 0; rc == SS_OK && z < 4; z++) {
        for (int i = 0; i < 64 * 64; i++) plane[i] = (uint16_t)((i % 64) * 3 + (i / 64) + z * 7 + (i * 2654435761u >> 28));
        st[0] = z;
        rc = store_array_write(a, st, ct, DT_U16, plane);
    }
    if (rc == SS_OK) store_array_close(a);
    if (rc == SS_OK) rc = store_commit_stage(w);
    CHECK(rc == SS_OK, "%s, %s: a stage of one-plane chunks", fname, store_compression_name(comp));
    int64_t off;
    char *file = chunk_place(s, "pl", "p", 2, &off);
    if (fmt == STORE_ZARR) {
        free(file);
        file = ss_asprintf("%s/pl/p/0/2/0/0", path);
        struct stat sb;
        off = stat(file, &sb) == 0 ? sb.st_size / 2 : 0;
    } else {
        off += 2000; /* past blosc's header, inside the data */
    }
    flip_byte(file, off);
    free(file);
    int good = store_array_open(s, "pl", "p", &a) == SS_OK;
    for (int z = 0; good && z < 4; z++) {
        st[0] = z;
        rc = store_array_read(a, st, ct, DT_U16, plane);
        good = z == 2 ? rc == SS_ERR_INPUT && strstr(ss_errmsg(), "chunk (2,0,0) (plane z 2)") : rc == SS_OK;
        if (!good) printf("# plane %d: %s\n", z, ss_errmsg());
    }
    store_array_close(a);
    CHECK(good, "%s, %s: reading plane by plane, the damaged chunk is named and the others read", fname,
          store_compression_name(comp));
    store_close(s);
    free(path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ss_sums_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    block_hashes();
    backend(dir, STORE_HDF5);
    backend(dir, STORE_ZARR);
    for (int f = 0; f < 2; f++) {
        whole_chunks(dir, f ? STORE_ZARR : STORE_HDF5, STORE_COMP_BLOSC_LZ4);
        whole_chunks(dir, f ? STORE_ZARR : STORE_HDF5, STORE_COMP_NONE);
    }
    if (!tap_failed) fs_rm_rf(dir);
    else printf("# left %s for inspection\n", dir);
    return tap_done();
}
