/* HDF5 store: write, commit, reopen, read back; abort; recommit; recover. */
#include "store.h"
#include "store_impl.h"
#include "error.h"
#include "util.h"
#include "tap.h"

#include <string.h>
#include <unistd.h>

static int write_stage(store *s, const char *stage, float offset, int abort_it)
{
    store_writer *w;
    int rc = store_stage_begin(s, stage, &w);
    if (rc) return rc;
    int64_t shape[3] = {5, 33, 17}, chunk[3] = {2, 16, 17};
    array_meta m = {.axes = "zyx", .voxel = {1.0, 0.1, 0.1}, .unit = "micrometer"};
    store_array *a;
    if ((rc = store_writer_array(w, "data", DT_F32, 3, shape, chunk, &m, &a))) return rc;
    float plane[33 * 17];
    for (int z = 0; z < 5; z++) {
        for (int i = 0; i < 33 * 17; i++) plane[i] = offset + z * 1000 + i;
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, 33, 17};
        if ((rc = store_array_write(a, st, ct, DT_F32, plane))) return rc;
    }
    store_array_close(a);
    int64_t rshape[4] = {3, 2, 4, 4};
    uint16_t rep[3 * 2 * 16];
    for (int i = 0; i < 96; i++) rep[i] = (uint16_t)(i * 7);
    array_meta rm = {.axes = "rzyx", .voxel = {2.0, 0.5, 0.5}, .unit = "micrometer"};
    if ((rc = store_writer_array(w, "reps", DT_U16, 4, rshape, NULL, &rm, &a))) return rc;
    int64_t st4[4] = {0}, ct4[4] = {3, 2, 4, 4};
    if ((rc = store_array_write(a, st4, ct4, DT_U16, rep))) return rc;
    store_array_close(a);
    double f[3] = {1.5, 2.5, -3};
    int64_t iv[3] = {1, 2, 3};
    const char *sv[3] = {"mean", "median", "siren"};
    table_col cols[3] = {{"plane", COL_I64, NULL, iv, NULL}, {"psnr", COL_F64, f, NULL, NULL},
                         {"method", COL_STR, NULL, NULL, sv}};
    table_view tv = {3, 3, cols};
    if ((rc = store_writer_table(w, "metrics", &tv))) return rc;
    json_t *params = json_pack("{s:f,s:s}", "p_high", 99.9, "mode", "exact");
    store_writer_attr(w, "params", params);
    json_decref(params);
    json_t *fp = json_string("abc123");
    store_writer_attr(w, "fingerprint", fp);
    json_decref(fp);
    if (abort_it) {
        store_abort_stage(w);
        return 0;
    }
    return store_commit_stage(w);
}

/* Each compression: the stage records it, the arrays carry its filters,
 * values and tables round-trip. */
static void compression_round_trips(const char *dir)
{
    static const char *const want[STORE_COMP_COUNT] = {"blosc:lz4:5:shuffle", "blosc:zstd:5:shuffle",
                                                       "gzip:4:shuffle", "none"};
    char *path = ss_asprintf("%s/comp/sample1.h5", dir);
    store *s;
    CHECK(store_open(path, STORE_HDF5, 1, &s) == SS_OK && store_lock(s) == SS_OK, "create a container for compressions");
    CHECK(store_get_compression(s) == STORE_COMP_BLOSC_LZ4, "blosc-lz4 is the default");
    for (int c = 0; c < STORE_COMP_COUNT; c++) {
        const char *name = store_compression_name((store_compression)c);
        store_compression back;
        CHECK(store_compression_from_name(name, &back) == SS_OK && back == (store_compression)c &&
                  store_compression_check(back) == SS_OK,
              "%s: name round-trips and this build writes it", name);
        store_set_compression(s, (store_compression)c);
        char stage[32];
        snprintf(stage, sizeof stage, "c%d", c);
        CHECK(write_stage(s, stage, (float)c, 0) == SS_OK, "%s: write and commit a stage: %s", name, ss_errmsg());
    }
    store_set_compression(s, STORE_COMP_BLOSC_LZ4);
    store_close(s);
    CHECK(store_open(path, STORE_HDF5, 0, &s) == SS_OK, "reopen the container of compressions");
    for (int c = 0; c < STORE_COMP_COUNT; c++) {
        const char *name = store_compression_name((store_compression)c);
        char stage[32];
        snprintf(stage, sizeof stage, "c%d", c);
        json_t *attrs = NULL;
        CHECK(store_stage_attrs(s, stage, &attrs) == SS_OK &&
                  !strcmp(json_string_value(json_object_get(attrs, "compression")) ?: "", name),
              "%s: stage attribute compression", name);
        json_decref(attrs);
        store_array *a;
        array_info info;
        float plane[33 * 17];
        int64_t st[3] = {4, 0, 0}, ct[3] = {1, 33, 17};
        int ok = store_array_open(s, stage, "data", &a) == SS_OK && store_array_info(a, &info) == SS_OK &&
                 store_array_read(a, st, ct, DT_F32, plane) == SS_OK;
        CHECK(ok && !strcmp(info.compressor, want[c]), "%s: data compressor %s (%s)", name, want[c],
              ok ? info.compressor : ss_errmsg());
        int good = ok;
        for (int i = 0; ok && i < 33 * 17; i++) good &= plane[i] == c + 4 * 1000 + i;
        CHECK(good, "%s: data values exact", name);
        if (ok) store_array_close(a);
        table_data t;
        CHECK(store_table_read(s, stage, "metrics", &t) == SS_OK && t.n_rows == 3 &&
                  ((double *)t.data[1])[2] == -3 && !strcmp((char *)t.data[2] + 2 * TABLE_STR_LEN, "siren"),
              "%s: table round-trips", name);
        table_free(&t);
    }
    store_close(s);
    store_compression bad;
    CHECK(store_compression_from_name("lz4", &bad) == SS_ERR_CONFIG && strstr(ss_errmsg(), "blosc-lz4"),
          "an unknown compression name is refused, naming the known ones: %s", ss_errmsg());
    CHECK(store_compression_check(STORE_COMP_COUNT) != SS_OK, "an out-of-range compression is refused");
    free(path);
}

/* Planes too large for one chunk: HDF5 refuses chunks of 4 GiB, blosc
 * buffers of 2 GiB. The default chunks split them in blocks of rows (or a
 * huge row in pieces), and such an array can be created in both stores. */
static void test_huge_planes(const char *dir)
{
    int64_t shape[3] = {2, 40000, 40000}, ch[3];
    store_default_chunk(3, shape, 4, ch);
    CHECK(ch[0] == 1 && ch[2] == 40000 && ch[1] >= 1 && ch[1] < 40000 && ch[1] * 40000 * 4 <= STORE_MAX_CHUNK_BYTES,
          "a 6.4 GB float32 plane is chunked in blocks of rows (%lld x %lld x %lld)", (long long)ch[0],
          (long long)ch[1], (long long)ch[2]);
    int64_t row[2] = {3, (int64_t)1 << 29};
    store_default_chunk(2, row, 4, ch);
    CHECK(ch[0] == 1 && ch[1] * 4 <= STORE_MAX_CHUNK_BYTES && ch[1] > 0, "a 2 GiB row is chunked in pieces (%lld)",
          (long long)ch[1]);
    int64_t small[3] = {30, 512, 512};
    store_default_chunk(3, small, 2, ch);
    CHECK(ch[0] == 2 && ch[1] == 512 && ch[2] == 512, "ordinary planes keep whole-plane chunks of about 1 MiB");
    for (int f = 0; f < 2; f++) {
        char *path = ss_asprintf("%s/huge/s.%s", dir, f ? "zarr" : "h5");
        store *s;
        store_writer *w;
        store_array *a = NULL;
        int rc = store_open(path, f ? STORE_ZARR : STORE_HDF5, 1, &s);
        if (rc == SS_OK) rc = store_lock(s);
        if (rc == SS_OK) rc = store_stage_begin(s, "raw", &w);
        array_meta m = {.axes = "zyx", .voxel = {1, 1, 1}, .unit = "micrometer"};
        if (rc == SS_OK) {
            rc = store_writer_array(w, "data", DT_F32, 3, shape, NULL, &m, &a);
            store_array_close(a);
            store_abort_stage(w);
        }
        CHECK(rc == SS_OK, "%s: an array of 40000 x 40000 float32 planes can be created: %s", f ? "zarr" : "hdf5",
              rc == SS_OK ? "" : ss_errmsg());
        store_close(s);
        free(path);
    }
}

int main(void)
{
    char tmpl[] = "/tmp/ss_h5_XXXXXX";
    char *dir = mkdtemp(tmpl);
    char *path = ss_asprintf("%s/out/sample1.h5", dir);
    store *s;
    CHECK(store_open(path, STORE_HDF5, 0, &s) == SS_ERR_INPUT, "opening a missing container without create fails");
    CHECK(store_open(path, STORE_HDF5, 1, &s) == SS_OK, "create container");
    CHECK(store_lock(s) == SS_OK, "lock");
    CHECK(store_recover(s) == SS_OK, "recover on a fresh container");
    CHECK(store_has_stage(s, "a") == 0, "no stage yet");
    CHECK(write_stage(s, "a", 0, 0) == SS_OK, "write and commit stage a: %s", ss_errmsg());
    CHECK(write_stage(s, "b", 0.5f, 1) == SS_OK, "write and abort stage b");
    CHECK(store_has_stage(s, "b") == 0, "aborted stage is not visible");
    CHECK(write_stage(s, "c", 7, 0) == SS_OK, "commit stage c");
    store_close(s);

    CHECK(store_open(path, STORE_HDF5, 0, &s) == SS_OK, "reopen");
    char **names;
    CHECK(store_list_stages(s, &names) == SS_OK && names[0] && !strcmp(names[0], "a") && names[1] &&
              !strcmp(names[1], "c") && !names[2],
          "stages listed in commit order");
    store_names_free(names);
    store_array *a;
    CHECK(store_array_open(s, "c", "data", &a) == SS_OK, "open array");
    array_info info;
    CHECK(store_array_info(a, &info) == SS_OK && info.rank == 3 && info.shape[1] == 33 && info.dtype == DT_F32 &&
              info.chunk[0] == 2 && info.has_meta && !strcmp(info.meta.axes, "zyx") && info.meta.voxel[1] == 0.1,
          "array info: shape, dtype, chunk, axes, voxel");
    CHECK(strncmp(info.compressor, "blosc:lz4:5", 11) == 0, "blosc lz4 compression (%s)", info.compressor);
    double sub[2 * 3 * 4];
    int64_t st[3] = {3, 30, 13}, ct[3] = {2, 3, 4};
    CHECK(store_array_read(a, st, ct, DT_F64, sub) == SS_OK, "read sub-slab as float64");
    int good = 1;
    for (int z = 0; z < 2; z++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
                good &= sub[(z * 3 + y) * 4 + x] == 7 + (3 + z) * 1000 + (30 + y) * 17 + 13 + x;
    CHECK(good, "sub-slab values exact");
    int64_t bad[3] = {4, 0, 0}, badc[3] = {2, 1, 1};
    CHECK(store_array_read(a, bad, badc, DT_F32, sub) == SS_ERR_INTERNAL, "slab outside the array is refused");
    store_array_close(a);
    json_t *attrs;
    CHECK(store_stage_attrs(s, "c", &attrs) == SS_OK, "stage attrs");
    CHECK(json_real_value(json_object_get(json_object_get(attrs, "params"), "p_high")) == 99.9 &&
              !strcmp(json_string_value(json_object_get(attrs, "fingerprint")), "abc123"),
          "JSON and string attributes round-trip");
    json_decref(attrs);
    table_data t;
    CHECK(store_table_read(s, "c", "metrics", &t) == SS_OK && t.n_cols == 3 && t.n_rows == 3, "table read");
    CHECK(t.types[0] == COL_I64 && ((int64_t *)t.data[0])[2] == 3 && ((double *)t.data[1])[1] == 2.5 &&
              !strcmp((char *)t.data[2] + TABLE_STR_LEN, "median"),
          "table values round-trip");
    table_free(&t);
    CHECK(store_is_table(s, "c", "metrics") == 1 && store_is_table(s, "c", "data") == 0, "table vs array");
    CHECK(store_list_arrays(s, "c", &names) == SS_OK && names[0] && names[1] && names[2] && !names[3],
          "three datasets listed");
    store_names_free(names);
    store_close(s);

    /* Recommit replaces; a stray temporary is cleaned by recover. */
    CHECK(store_open(path, STORE_HDF5, 1, &s) == SS_OK && store_lock(s) == SS_OK, "reopen for writing");
    char *stray = ss_asprintf("%s/stages/zz.deadbeef.h5.tmp", store_workdir(s));
    FILE *fz = fopen(stray, "w");
    fputs("junk", fz);
    fclose(fz);
    CHECK(write_stage(s, "a", 100, 0) == SS_OK, "recommit a");
    CHECK(store_recover(s) == SS_OK && !path_exists(stray), "recover removes stray temporary");
    CHECK(store_list_stages(s, &names) == SS_OK && !strcmp(names[0], "c") && !strcmp(names[1], "a"),
          "recommitted stage moves to the end");
    store_names_free(names);
    float v;
    int64_t s0[3] = {0, 0, 0}, c1[3] = {1, 1, 1};
    CHECK(store_array_open(s, "a", "data", &a) == SS_OK && store_array_read(a, s0, c1, DT_F32, &v) == SS_OK &&
              v == 100,
          "recommitted values visible");
    store_array_close(a);
    store *s2;
    CHECK(store_open(path, STORE_HDF5, 0, &s2) == SS_OK && store_lock(s2) == SS_ERR_IO, "second lock refused: %s",
          ss_errmsg());
    store_close(s2);
    store_close(s);

    /* Not a container / corrupt. */
    char *junk = ss_asprintf("%s/junk.h5", dir);
    FILE *fj = fopen(junk, "w");
    fputs("this is not hdf5", fj);
    fclose(fj);
    CHECK(store_open(junk, STORE_HDF5, 0, &s) == SS_ERR_INPUT, "junk file refused: %s", ss_errmsg());

    compression_round_trips(dir);
    test_huge_planes(dir);

    free(junk);
    free(stray);
    if (!getenv("KEEP")) fs_rm_rf(dir);
    free(path);
    return tap_done();
}
