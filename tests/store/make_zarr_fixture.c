/* Interop fixture for the Zarr backend (driven by tests/interop/zarr_read.py).
 *
 *   make_zarr_fixture write  <dir>/<name>.zarr [COMPRESSION]   writes stages
 *       "fused" and "denoised" whose contents follow the formulas below, with
 *       COMPRESSION (blosc-lz4, the default, blosc-zstd, gzip or none); the
 *       Python side recomputes them and compares what zarr-python reads.
 *   make_zarr_fixture verify <dir>/<name>.zarr   reads stage "py", which
 *       zarr-python wrote with the same formulas, through the store API.
 *
 * Keep the formulas in step with zarr_read.py. They are exact in binary
 * floating point so that both sides compute identical values. */
#include "error.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define EXPECT(cond, ...)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            printf("FAIL: ");                                                                                          \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
        }                                                                                                              \
    } while (0)

/* fused/stack  u16 zyx (6,37,29) chunks (2,16,16): (z*1000 + y*31 + x*7) % 65521 */
static double f_stack(int64_t z, int64_t y, int64_t x) { return (double)((z * 1000 + y * 31 + x * 7) % 65521); }
/* fused/repeats f32 rzyx (4,3,20,24) chunks (1,2,8,8): r + z*0.5 + y*0.25 - x*0.125 */
static double f_repeats(int64_t r, int64_t z, int64_t y, int64_t x) { return r + z * 0.5 + y * 0.25 - x * 0.125; }
/* fused/weights f64 (1000,) chunks (128,): i*0.25 - 7 */
static double f_weights(int64_t i) { return i * 0.25 - 7; }
/* fused/labels i32 (3,10,10) default chunks: z*100 + y*10 + x - 150 */
static double f_labels(int64_t z, int64_t y, int64_t x) { return (double)(z * 100 + y * 10 + x - 150); }
/* fused/mask u8 (5,16,16) chunks (1,8,8): planes 0..2 written, (x+y+z)%2 * 255 */
static double f_mask(int64_t z, int64_t y, int64_t x) { return z < 3 ? (double)((x + y + z) % 2 * 255) : 0; }
/* denoised/stack f32 zyx (6,37,29) default chunks: stack / 2 */

static int fail(const char *what)
{
    fprintf(stderr, "make_zarr_fixture: %s: %s\n", what, ss_errmsg());
    return 1;
}

static array_meta meta(const char *axes, double z, double y, double x)
{
    array_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.axes, sizeof m.axes, "%s", axes);
    m.voxel[0] = z;
    m.voxel[1] = y;
    m.voxel[2] = x;
    snprintf(m.unit, sizeof m.unit, "micrometer");
    return m;
}

static int write_fused(store *s)
{
    store_writer *w;
    store_array *a;
    int rc = store_stage_begin(s, "fused", &w);
    if (rc != SS_OK) return rc;

    array_meta m = meta("zyx", 1.5, 0.25, 0.25);
    int64_t sh[3] = {6, 37, 29}, ch[3] = {2, 16, 16};
    rc = store_writer_array(w, "stack", DT_U16, 3, sh, ch, &m, &a);
    double plane[37 * 29];
    for (int64_t z = 0; rc == SS_OK && z < 6; z++) {
        for (int64_t y = 0; y < 37; y++)
            for (int64_t x = 0; x < 29; x++) plane[y * 29 + x] = f_stack(z, y, x);
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, 37, 29};
        rc = store_array_write(a, st, ct, DT_F64, plane);
    }
    store_array_close(a);

    m = meta("rzyx", 1.5, 0.25, 0.25);
    int64_t rsh[4] = {4, 3, 20, 24}, rch[4] = {1, 2, 8, 8};
    if (rc == SS_OK) rc = store_writer_array(w, "repeats", DT_F32, 4, rsh, rch, &m, &a);
    if (rc == SS_OK) {
        float *v = malloc(sizeof(float) * 4 * 3 * 20 * 24);
        size_t k = 0;
        for (int64_t r = 0; r < 4; r++)
            for (int64_t z = 0; z < 3; z++)
                for (int64_t y = 0; y < 20; y++)
                    for (int64_t x = 0; x < 24; x++) v[k++] = (float)f_repeats(r, z, y, x);
        int64_t st[4] = {0, 0, 0, 0};
        rc = store_array_write(a, st, rsh, DT_F32, v);
        free(v);
        store_array_close(a);
    }

    int64_t wsh[1] = {1000}, wch[1] = {128};
    if (rc == SS_OK) rc = store_writer_array(w, "weights", DT_F64, 1, wsh, wch, NULL, &a);
    if (rc == SS_OK) {
        double v[1000];
        for (int i = 0; i < 1000; i++) v[i] = f_weights(i);
        int64_t st = 0;
        rc = store_array_write(a, &st, wsh, DT_F64, v);
        store_array_close(a);
    }

    int64_t lsh[3] = {3, 10, 10};
    if (rc == SS_OK) rc = store_writer_array(w, "labels", DT_I32, 3, lsh, NULL, NULL, &a);
    if (rc == SS_OK) {
        int32_t v[300];
        for (int z = 0; z < 3; z++)
            for (int y = 0; y < 10; y++)
                for (int x = 0; x < 10; x++) v[(z * 10 + y) * 10 + x] = (int32_t)f_labels(z, y, x);
        int64_t st[3] = {0, 0, 0};
        rc = store_array_write(a, st, lsh, DT_I32, v);
        store_array_close(a);
    }

    int64_t msh[3] = {5, 16, 16}, mch[3] = {1, 8, 8};
    if (rc == SS_OK) rc = store_writer_array(w, "mask", DT_U8, 3, msh, mch, NULL, &a);
    if (rc == SS_OK) {
        uint8_t v[3 * 16 * 16];
        for (int z = 0; z < 3; z++)
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++) v[(z * 16 + y) * 16 + x] = (uint8_t)f_mask(z, y, x);
        int64_t st[3] = {0, 0, 0}, ct[3] = {3, 16, 16};
        rc = store_array_write(a, st, ct, DT_U8, v);
        store_array_close(a);
    }

    /* metrics: plane = i, psnr = 20 + i/2, method alternates siren/linear */
    if (rc == SS_OK) {
        int64_t plane_[10];
        double psnr[10];
        const char *method[10];
        for (int i = 0; i < 10; i++) {
            plane_[i] = i;
            psnr[i] = 20 + i * 0.5;
            method[i] = i % 2 ? "linear" : "siren";
        }
        table_col cols[3] = {{"plane", COL_I64, NULL, plane_, NULL}, {"psnr", COL_F64, psnr, NULL, NULL},
                             {"method", COL_STR, NULL, NULL, method}};
        table_view t = {3, 10, cols};
        rc = store_writer_table(w, "metrics", &t);
    }
    /* big: 70000 rows in two chunks: id = i, val = i/2, name = "row<i>" */
    if (rc == SS_OK) {
        enum { N = 70000 };
        int64_t *id = malloc(sizeof(int64_t) * N);
        double *val = malloc(sizeof(double) * N);
        char(*names)[16] = malloc(16 * (size_t)N);
        const char **np = malloc(sizeof(char *) * N);
        for (int i = 0; i < N; i++) {
            id[i] = i;
            val[i] = i * 0.5;
            snprintf(names[i], 16, "row%d", i);
            np[i] = names[i];
        }
        table_col cols[3] = {{"id", COL_I64, NULL, id, NULL}, {"val", COL_F64, val, NULL, NULL},
                             {"name", COL_STR, NULL, NULL, np}};
        table_view t = {3, N, cols};
        rc = store_writer_table(w, "big", &t);
        free(id);
        free(val);
        free(names);
        free(np);
    }

    json_t *v = json_string("fuse");
    if (rc == SS_OK) rc = store_writer_attr(w, "stage_type", v);
    json_decref(v);
    v = json_integer(2);
    if (rc == SS_OK) rc = store_writer_attr(w, "stage_version", v);
    json_decref(v);
    v = json_pack("{s:i, s:i, s:[s,s]}", "omega0", 32, "steps", 1500, "inputs", "raw", "psf");
    if (rc == SS_OK) rc = store_writer_attr(w, "params", v);
    json_decref(v);
    if (rc != SS_OK) {
        store_abort_stage(w);
        return rc;
    }
    return store_commit_stage(w);
}

static int write_denoised(store *s)
{
    store_writer *w;
    store_array *a;
    int rc = store_stage_begin(s, "denoised", &w);
    if (rc != SS_OK) return rc;
    array_meta m = meta("zyx", 1.5, 0.25, 0.25);
    int64_t sh[3] = {6, 37, 29};
    rc = store_writer_array(w, "stack", DT_F32, 3, sh, NULL, &m, &a);
    float plane[37 * 29];
    for (int64_t z = 0; rc == SS_OK && z < 6; z++) {
        for (int64_t y = 0; y < 37; y++)
            for (int64_t x = 0; x < 29; x++) plane[y * 29 + x] = (float)(f_stack(z, y, x) / 2);
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, 37, 29};
        rc = store_array_write(a, st, ct, DT_F32, plane);
    }
    store_array_close(a);
    if (rc != SS_OK) {
        store_abort_stage(w);
        return rc;
    }
    return store_commit_stage(w);
}

/* ---- verify: stage "py" written by zarr-python ----------------------------- */

/* py/a  u16 (5,20,30) chunks (2,7,8), blosc lz4, "/":  (z*900 + y*30 + x) % 65536
 * py/b  f32 (3,10,10) default compressor, ".":         z - y*0.5 + x*0.25
 * py/c  f64 (10,10) no compressor:                     y*10 + x + 0.5
 * py/d  i16 (4,6,6) chunks (1,3,3), fill_value 7, only plane 1 written: -(y*6+x)
 * py/e  u16 like py/a, chunks (2,7,8), zlib level 4
 * py/f  u16 like py/a, chunks (2,7,8), gzip level 4
 * py/g  u16 like py/a, chunks (2,7,8), blosc zstd
 * py/t  table plane <i8, psnr <f8, method |S64:        i, 30 + i*0.25, "m<i>" */
static void check_array(store *s, const char *name, int rank, const int64_t *shape, ss_dtype want,
                        double (*f)(const int64_t *p))
{
    store_array *a;
    if (store_array_open(s, "py", name, &a) != SS_OK) {
        EXPECT(0, "open py/%s: %s", name, ss_errmsg());
        return;
    }
    array_info info;
    EXPECT(store_array_info(a, &info) == SS_OK && info.rank == rank && info.dtype == want, "py/%s info", name);
    int64_t n = 1, st[STORE_MAX_RANK] = {0};
    for (int i = 0; i < rank; i++) {
        n *= shape[i];
        EXPECT(info.shape[i] == shape[i], "py/%s shape[%d] = %lld", name, i, (long long)info.shape[i]);
    }
    double *v = malloc(sizeof(double) * (size_t)n);
    int rc = store_array_read(a, st, shape, DT_F64, v);
    EXPECT(rc == SS_OK, "read py/%s: %s", name, ss_errmsg());
    int64_t p[STORE_MAX_RANK] = {0}, bad = 0;
    for (int64_t k = 0; rc == SS_OK && k < n; k++) {
        int64_t rem = k;
        for (int i = rank - 1; i >= 0; i--) {
            p[i] = rem % shape[i];
            rem /= shape[i];
        }
        if (v[k] != f(p)) {
            if (!bad) printf("py/%s: element %lld is %g, expected %g\n", name, (long long)k, v[k], f(p));
            bad++;
        }
    }
    EXPECT(!bad, "py/%s: %lld wrong values", name, (long long)bad);
    free(v);
    store_array_close(a);
}

static double g_a(const int64_t *p) { return (double)((p[0] * 900 + p[1] * 30 + p[2]) % 65536); }
static double g_b(const int64_t *p) { return (double)(float)(p[0] - p[1] * 0.5 + p[2] * 0.25); }
static double g_c(const int64_t *p) { return p[0] * 10 + p[1] + 0.5; }
static double g_d(const int64_t *p) { return p[0] == 1 ? (double)-(p[1] * 6 + p[2]) : 7; }

static int verify(store *s)
{
    EXPECT(store_has_stage(s, "py") == 1, "stage py is committed");
    check_array(s, "a", 3, (int64_t[]){5, 20, 30}, DT_U16, g_a);
    check_array(s, "b", 3, (int64_t[]){3, 10, 10}, DT_F32, g_b);
    check_array(s, "c", 2, (int64_t[]){10, 10}, DT_F64, g_c);
    check_array(s, "d", 3, (int64_t[]){4, 6, 6}, DT_I16, g_d);
    check_array(s, "e", 3, (int64_t[]){5, 20, 30}, DT_U16, g_a);
    check_array(s, "f", 3, (int64_t[]){5, 20, 30}, DT_U16, g_a);
    check_array(s, "g", 3, (int64_t[]){5, 20, 30}, DT_U16, g_a);
    table_data t;
    int rc = store_table_read(s, "py", "t", &t);
    EXPECT(rc == SS_OK, "read py/t: %s", ss_errmsg());
    if (rc == SS_OK) {
        EXPECT(t.n_cols == 3 && t.n_rows == 12 && t.types[0] == COL_I64 && t.types[1] == COL_F64 &&
                   t.types[2] == COL_STR && !strcmp(t.names[2], "method"),
               "py/t columns");
        for (int i = 0; i < t.n_rows && t.n_cols == 3; i++) {
            char want[16];
            snprintf(want, sizeof want, "m%d", i);
            EXPECT(((int64_t *)t.data[0])[i] == i && ((double *)t.data[1])[i] == 30 + i * 0.25 &&
                       !strcmp((char *)t.data[2] + (size_t)i * TABLE_STR_LEN, want),
                   "py/t row %d", i);
        }
        table_free(&t);
    }
    EXPECT(store_is_table(s, "py", "t") == 1 && store_is_table(s, "py", "a") == 0, "py: is_table");
    json_t *attrs;
    if (store_stage_attrs(s, "py", &attrs) == SS_OK) {
        const char *by = json_string_value(json_object_get(attrs, "written_by"));
        EXPECT(by && !strcmp(by, "zarr-python"), "py attrs: written_by");
        json_decref(attrs);
    } else {
        EXPECT(0, "py attrs: %s", ss_errmsg());
    }
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    store_compression comp = STORE_COMP_BLOSC_LZ4;
    if (argc < 3 || argc > 4 || (strcmp(argv[1], "write") && strcmp(argv[1], "verify")) ||
        (argc == 4 && store_compression_from_name(argv[3], &comp) != SS_OK)) {
        fprintf(stderr, "usage: make_zarr_fixture write|verify <container.zarr> [blosc-lz4|blosc-zstd|gzip|none]\n");
        return 64;
    }
    store *s;
    int write = !strcmp(argv[1], "write");
    if (store_open(argv[2], STORE_ZARR, write, &s) != SS_OK) return fail(argv[2]);
    store_set_compression(s, comp);
    if (write) {
        if (store_lock(s) != SS_OK || store_recover(s) != SS_OK) return fail("lock");
        if (write_fused(s) != SS_OK) return fail("stage fused");
        if (write_denoised(s) != SS_OK) return fail("stage denoised");
        store_close(s);
        return 0;
    }
    int rc = verify(s);
    store_close(s);
    printf("%s\n", rc ? "verify failed" : "verify ok");
    return rc;
}
