/* Runs one CPU kernel on raw little-endian files, for check_numpy.py to
 * compare with numpy and scipy. Sizes follow from the file sizes.
 *
 *   kernels_ref pct IN.f32 EXACT.f64 STREAM.f64 Q...
 *   kernels_ref fuse IN.f32 R MEAN.f32 MEDIAN.f32
 *   kernels_ref blur IN.f32 NZ NY NX SZ SY SX OUT.f32
 *   kernels_ref stats IN.f32            (prints count_nonfinite min max)
 *   kernels_ref next SEED N OUT.u64     (rng_next)
 *   kernels_ref split SEED STREAM N OUT.u64
 *   kernels_ref uniform|normal SEED N OUT.f64
 *   kernels_ref poisson SEED LAMBDA N OUT.u64
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "kernels.h"

static void *read_all(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *bytes = (size_t)len;
    return buf;
}

static int write_all(const char *path, const void *buf, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(buf, 1, bytes, f);
    return fclose(f) == 0 && w == bytes ? 0 : -1;
}

static int fail(const char *msg, const char *arg)
{
    fprintf(stderr, "kernels_ref: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    return 1;
}

static int cmd_pct(int argc, char **argv)
{
    if (argc < 4) return fail("usage: pct IN EXACT STREAM Q...", NULL);
    size_t bytes;
    float *x = read_all(argv[0], &bytes);
    if (!x) return fail("cannot read", argv[0]);
    size_t n = bytes / sizeof *x;
    int nq = argc - 3;
    double q[16];
    if (nq > 16) return fail("at most 16 quantiles", NULL);
    for (int i = 0; i < nq; i++) q[i] = strtod(argv[3 + i], NULL);
    for (int exact = 1; exact >= 0; exact--) {
        pct_state *p = pct_new(nq, q, exact);
        if (!p) return fail("pct_new failed", NULL);
        while (pct_need_pass(p)) {
            /* Uneven pieces, as a chunked reader would feed them. */
            size_t at = 0, piece = 1;
            while (at < n) {
                size_t m = piece < n - at ? piece : n - at;
                pct_feed(p, x + at, m);
                at += m;
                piece = piece * 3 + 1;
            }
            pct_end_pass(p);
        }
        double r[16];
        for (int i = 0; i < nq; i++) r[i] = pct_result(p, i);
        if (pct_count(p) != n) return fail("pct_count differs from the values fed", NULL);
        pct_free(p);
        if (write_all(argv[exact ? 1 : 2], r, (size_t)nq * sizeof *r)) return fail("cannot write", argv[1]);
    }
    free(x);
    return 0;
}

static int cmd_fuse(int argc, char **argv)
{
    if (argc != 4) return fail("usage: fuse IN R MEAN MEDIAN", NULL);
    size_t bytes;
    float *x = read_all(argv[0], &bytes);
    if (!x) return fail("cannot read", argv[0]);
    int R = atoi(argv[1]);
    size_t n = bytes / sizeof *x / (size_t)R;
    float *out = malloc((n ? n : 1) * sizeof *out);
    const kernels *k = kernels_cpu();
    k->fuse_mean_f32(x, R, n, out);
    if (write_all(argv[2], out, n * sizeof *out)) return fail("cannot write", argv[2]);
    k->fuse_median_f32(x, R, n, out);
    if (write_all(argv[3], out, n * sizeof *out)) return fail("cannot write", argv[3]);
    free(out);
    free(x);
    return 0;
}

static int cmd_blur(int argc, char **argv)
{
    if (argc != 8) return fail("usage: blur IN NZ NY NX SZ SY SX OUT", NULL);
    size_t bytes;
    float *x = read_all(argv[0], &bytes);
    if (!x) return fail("cannot read", argv[0]);
    int64_t nz = atoll(argv[1]), ny = atoll(argv[2]), nx = atoll(argv[3]);
    if ((size_t)(nz * ny * nx) * sizeof *x != bytes) return fail("shape does not match", argv[0]);
    kernels_cpu()->gauss_blur3d_f32(x, nz, ny, nx, strtod(argv[4], NULL), strtod(argv[5], NULL),
                                    strtod(argv[6], NULL));
    if (write_all(argv[7], x, bytes)) return fail("cannot write", argv[7]);
    free(x);
    return 0;
}

static int cmd_stats(int argc, char **argv)
{
    if (argc != 1) return fail("usage: stats IN", NULL);
    size_t bytes;
    float *x = read_all(argv[0], &bytes);
    if (!x) return fail("cannot read", argv[0]);
    size_t n = bytes / sizeof *x;
    float mn, mx;
    const kernels *k = kernels_cpu();
    k->minmax_f32(x, n, &mn, &mx);
    printf("%zu %.9g %.9g\n", k->count_nonfinite_f32(x, n), mn, mx);
    free(x);
    return 0;
}

static int cmd_rng(const char *what, int argc, char **argv)
{
    int split = strcmp(what, "split") == 0, poisson = strcmp(what, "poisson") == 0;
    if (argc != 3 + split + poisson) return fail("wrong arguments for", what);
    uint64_t seed = strtoull(argv[0], NULL, 0);
    ss_rng r;
    if (split)
        rng_split(&r, seed, strtoull(argv[1], NULL, 0));
    else
        rng_seed(&r, seed);
    double lambda = poisson ? strtod(argv[1], NULL) : 0;
    size_t n = strtoull(argv[1 + split + poisson], NULL, 0);
    uint64_t *out = malloc((n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(what, "uniform") == 0) {
            double u = rng_uniform(&r);
            memcpy(&out[i], &u, 8);
        } else if (strcmp(what, "normal") == 0) {
            double z = rng_normal(&r);
            memcpy(&out[i], &z, 8);
        } else if (poisson) {
            out[i] = rng_poisson(&r, lambda);
        } else {
            out[i] = rng_next(&r);
        }
    }
    if (write_all(argv[2 + split + poisson], out, n * sizeof *out)) return fail("cannot write", what);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return fail("usage: kernels_ref COMMAND ARGS...", NULL);
    const char *c = argv[1];
    if (!strcmp(c, "pct")) return cmd_pct(argc - 2, argv + 2);
    if (!strcmp(c, "fuse")) return cmd_fuse(argc - 2, argv + 2);
    if (!strcmp(c, "blur")) return cmd_blur(argc - 2, argv + 2);
    if (!strcmp(c, "stats")) return cmd_stats(argc - 2, argv + 2);
    if (!strcmp(c, "next") || !strcmp(c, "split") || !strcmp(c, "uniform") || !strcmp(c, "normal") ||
        !strcmp(c, "poisson"))
        return cmd_rng(c, argc - 2, argv + 2);
    return fail("unknown command", c);
}
