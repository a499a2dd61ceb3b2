/* Container throughput: a Z x Y x X uint16 stack written through the store
 * plane by plane and committed, or read back plane by plane, in one process
 * per phase so that the peak RSS of each phase is its own.
 *
 *   bench_container write hdf5|zarr CONTAINER [Z Y X]
 *   bench_container read  hdf5|zarr CONTAINER [Z Y X]
 *   bench_container selftest DIR       (TAP: small round trips, both formats)
 *
 * CONTAINER is <dir>/<sample>.h5 or <dir>/<sample>.zarr. Default 100 x 1024 x
 * 1024. Each phase prints one line of key=value pairs (scripts/bench parses
 * it). Seconds count the store calls only -- open, stage begin, array writes
 * or reads, close, and the commit with its fsyncs -- not the making of the
 * test data, which is the same integer formula as tests/bench/bench_h5py.py:
 * a smooth background, noise from an integer hash, and bright blobs. The
 * checksum lets the driver check that both programs wrote the same content. */
#include "error.h"
#include "store.h"
#include "tap.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define N_BLOBS 2000

/* ---- the test data (keep in step with bench_h5py.py) ------------------- */

static uint32_t hash3(uint32_t x, uint32_t y, uint32_t z)
{
    uint32_t h = x * 0x9E3779B1u ^ y * 0x85EBCA77u ^ z * 0xC2B2AE3Du;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    h *= 0x297A2D39u;
    h ^= h >> 15;
    return h;
}

static int64_t tri(int64_t v, int64_t period)
{
    int64_t m = v % period - period / 2;
    return m < 0 ? -m : m;
}

typedef struct {
    int64_t z, y, x, r, rz, amp;
} blob;

static void make_blobs(blob *b, int64_t Z, int64_t Y, int64_t X)
{
    for (uint32_t i = 0; i < N_BLOBS; i++) {
        b[i].z = hash3(i, 1, 7) % (uint32_t)Z;
        b[i].y = hash3(i, 2, 7) % (uint32_t)Y;
        b[i].x = hash3(i, 3, 7) % (uint32_t)X;
        b[i].r = 4 + hash3(i, 4, 7) % 12;
        b[i].rz = 1 + b[i].r / 4;
        b[i].amp = 500 + hash3(i, 5, 7) % 3000;
    }
}

/* Plane z: background 100 + two triangle waves (100..212), noise in
 * [-31, 31], blobs: amp * (1 - d^2) on an ellipsoid of radii r, r, rz. */
static void make_plane(uint16_t *p, int64_t z, int64_t Y, int64_t X, const blob *b, int32_t *acc)
{
    for (int64_t y = 0; y < Y; y++)
        for (int64_t x = 0; x < X; x++) {
            uint32_t h = hash3((uint32_t)x, (uint32_t)y, (uint32_t)z);
            acc[y * X + x] = (int32_t)(100 + tri(x + 4 * z, 512) / 4 + tri(y, 384) / 4) + (int32_t)(h & 31) +
                             (int32_t)((h >> 5) & 31) - 31;
        }
    for (int i = 0; i < N_BLOBS; i++) {
        int64_t dz = z - b[i].z;
        if (dz < -b[i].rz || dz > b[i].rz) continue;
        int64_t r = b[i].r, rz = b[i].rz, R2 = r * r * rz * rz;
        for (int64_t y = b[i].y - r; y <= b[i].y + r; y++) {
            if (y < 0 || y >= Y) continue;
            for (int64_t x = b[i].x - r; x <= b[i].x + r; x++) {
                if (x < 0 || x >= X) continue;
                int64_t dy = y - b[i].y, dx = x - b[i].x;
                int64_t d2 = (dx * dx + dy * dy) * rz * rz + dz * dz * r * r;
                if (d2 < R2) acc[y * X + x] += (int32_t)(b[i].amp * (R2 - d2) / R2);
            }
        }
    }
    for (int64_t i = 0; i < Y * X; i++) p[i] = (uint16_t)(acc[i] < 0 ? 0 : acc[i] > 65535 ? 65535 : acc[i]);
}

/* Order-sensitive checksum of the planes, in uint64 arithmetic. */
static uint64_t plane_sum(const uint16_t *p, int64_t n)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < n; i++) s += (uint64_t)p[i] * (uint64_t)(i % 251 + 1);
    return s;
}

/* ---- measurement helpers -------------------------------------------------- */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static long peak_rss_kib(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

static uint64_t du_total;
static int du_visit(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)path, (void)f;
    if (flag == FTW_F) du_total += (uint64_t)st->st_size;
    return 0;
}

/* Bytes of files under path (a file or a folder); for HDF5 also <path>.d. */
static uint64_t disk_bytes(const char *path, store_format fmt)
{
    du_total = 0;
    nftw(path, du_visit, 32, FTW_PHYS);
    if (fmt == STORE_HDF5) {
        char d[8192];
        snprintf(d, sizeof d, "%s.d/stages", path);
        nftw(d, du_visit, 32, FTW_PHYS);
    }
    return du_total;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_container: %s: %s\n", what, ss_errmsg());
    return rc ? rc : 1;
}

/* ---- the two phases --------------------------------------------------------- */

typedef struct {
    double seconds;
    uint64_t checksum;
    long base_rss, peak_rss;
} result;

static int phase_write(const char *path, store_format fmt, int64_t Z, int64_t Y, int64_t X, result *res)
{
    size_t plane = (size_t)(Y * X);
    uint16_t *p = malloc(plane * sizeof *p);
    int32_t *acc = malloc(plane * sizeof *acc);
    blob *b = malloc(N_BLOBS * sizeof *b);
    if (!p || !acc || !b) return fail("out of memory", SS_ERR_NOMEM);
    make_blobs(b, Z, Y, X);
    res->base_rss = peak_rss_kib();
    res->checksum = 0;
    store *s = NULL;
    store_writer *w = NULL;
    store_array *a = NULL;
    double t0 = now(), gen = 0;
    int rc = store_open(path, fmt, 1, &s);
    if (rc == SS_OK) rc = store_lock(s);
    if (rc == SS_OK) rc = store_stage_begin(s, "bench", &w);
    int64_t shape[3] = {Z, Y, X}, chunk[3] = {1, Y, X};
    array_meta m = {.axes = "zyx", .voxel = {1.0, 0.1, 0.1}, .unit = "micrometer"};
    if (rc == SS_OK) rc = store_writer_array(w, "stack", DT_U16, 3, shape, chunk, &m, &a);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        double g0 = now();
        make_plane(p, z, Y, X, b, acc);
        res->checksum = res->checksum * 31 + plane_sum(p, (int64_t)plane);
        gen += now() - g0;
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        rc = store_array_write(a, st, ct, DT_U16, p);
    }
    store_array_close(a);
    if (rc == SS_OK) {
        rc = store_commit_stage(w); /* flush, fsync, rename: part of the cost */
        w = NULL;
    }
    if (w) store_abort_stage(w);
    store_close(s);
    res->seconds = now() - t0 - gen;
    res->peak_rss = peak_rss_kib();
    free(p);
    free(acc);
    free(b);
    return rc == SS_OK ? SS_OK : fail("write", rc);
}

static int phase_read(const char *path, store_format fmt, int64_t Z, int64_t Y, int64_t X, result *res)
{
    size_t plane = (size_t)(Y * X);
    uint16_t *p = malloc(plane * sizeof *p);
    if (!p) return fail("out of memory", SS_ERR_NOMEM);
    memset(p, 0, plane * sizeof *p);
    res->base_rss = peak_rss_kib();
    res->checksum = 0;
    store *s = NULL;
    store_array *a = NULL;
    double t0 = now(), sum = 0;
    int rc = store_open(path, fmt, 0, &s);
    if (rc == SS_OK) rc = store_array_open(s, "bench", "stack", &a);
    array_info info;
    if (rc == SS_OK) rc = store_array_info(a, &info);
    if (rc == SS_OK && (info.rank != 3 || info.shape[0] != Z || info.shape[1] != Y || info.shape[2] != X ||
                        info.dtype != DT_U16))
        rc = ss_fail(SS_ERR_INPUT, "%s: bench/stack is not %" PRId64 " x %" PRId64 " x %" PRId64 " uint16", path, Z,
                     Y, X);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        int64_t st[3] = {z, 0, 0}, ct[3] = {1, Y, X};
        rc = store_array_read(a, st, ct, DT_U16, p);
        double c0 = now();
        res->checksum = res->checksum * 31 + plane_sum(p, (int64_t)plane);
        sum += now() - c0;
    }
    store_array_close(a);
    store_close(s);
    res->seconds = now() - t0 - sum;
    res->peak_rss = peak_rss_kib();
    free(p);
    return rc == SS_OK ? SS_OK : fail("read", rc);
}

static int parse_format(const char *s, store_format *fmt)
{
    if (!strcmp(s, "hdf5")) *fmt = STORE_HDF5;
    else if (!strcmp(s, "zarr")) *fmt = STORE_ZARR;
    else return -1;
    return 0;
}

static int rm_visit(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    remove(path);
    return 0;
}

/* Small round trips in both formats, for the test suite (TAP). Works in a
 * fresh folder under DIR and removes it. */
static int selftest(const char *dir)
{
    enum { SZ = 4, SY = 200, SX = 300 };
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/bench_selftest.XXXXXX", dir);
    if (!mkdtemp(tmp)) {
        printf("Bail out! cannot make a folder under %s\n", dir);
        return 1;
    }
    const char *fmts[2] = {"hdf5", "zarr"};
    for (int k = 0; k < 2; k++) {
        store_format fmt = k ? STORE_ZARR : STORE_HDF5;
        char path[4200];
        snprintf(path, sizeof path, "%s/selftest.%s", tmp, k ? "zarr" : "h5");
        result w = {0}, r = {0};
        int ok = phase_write(path, fmt, SZ, SY, SX, &w) == SS_OK;
        CHECK(ok, "%s: write %d x %d x %d", fmts[k], SZ, SY, SX);
        ok = ok && phase_read(path, fmt, SZ, SY, SX, &r) == SS_OK;
        CHECK(ok, "%s: read back", fmts[k]);
        CHECK(ok && r.checksum == w.checksum && w.checksum != 0, "%s: read checksum equals written", fmts[k]);
        uint64_t disk = disk_bytes(path, fmt), raw = (uint64_t)SZ * SY * SX * 2;
        CHECK(disk > 0 && disk < raw, "%s: content compresses (%" PRIu64 " of %" PRIu64 " bytes on disk)", fmts[k],
              disk, raw);
    }
    int rc = tap_done();
    nftw(tmp, rm_visit, 32, FTW_DEPTH | FTW_PHYS);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "selftest")) return selftest(argv[2]);
    store_format fmt;
    if ((argc != 4 && argc != 7) || (strcmp(argv[1], "write") && strcmp(argv[1], "read")) ||
        parse_format(argv[2], &fmt) != 0) {
        fprintf(stderr, "usage: bench_container write|read hdf5|zarr CONTAINER [Z Y X]\n"
                        "       bench_container selftest DIR\n");
        return 64;
    }
    int64_t Z = 100, Y = 1024, X = 1024;
    if (argc == 7) {
        Z = strtoll(argv[4], NULL, 10);
        Y = strtoll(argv[5], NULL, 10);
        X = strtoll(argv[6], NULL, 10);
        if (Z < 1 || Y < 1 || X < 1 || Z * Y * X > ((int64_t)1 << 34)) {
            fprintf(stderr, "bench_container: bad shape\n");
            return 64;
        }
    }
    int write = !strcmp(argv[1], "write");
    result res;
    int rc = write ? phase_write(argv[3], fmt, Z, Y, X, &res) : phase_read(argv[3], fmt, Z, Y, X, &res);
    if (rc) return 1;
    uint64_t bytes = (uint64_t)(Z * Y * X) * 2;
    printf("impl=sirenstack format=%s op=%s z=%" PRId64 " y=%" PRId64 " x=%" PRId64 " bytes=%" PRIu64
           " disk_bytes=%" PRIu64 " seconds=%.6f mb_per_s=%.3f base_rss_kib=%ld peak_rss_kib=%ld checksum=%" PRIu64
           "\n",
           argv[2], argv[1], Z, Y, X, bytes, disk_bytes(argv[3], fmt), res.seconds, (double)bytes / 1e6 / res.seconds,
           res.base_rss, res.peak_rss, res.checksum);
    return 0;
}
