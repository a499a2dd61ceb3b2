/* Runs the segmentation kernels (kernels/host.h) on raw little-endian files,
 * for check_segment.py to compare with numpy, scipy and skimage.
 *
 *   segment_ref intermodes HIST.f64 N                 prints "passes t"
 *   segment_ref fill MASK.u8 Z Y X OUT.u8
 *   segment_ref edt MASK.u8 Z Y X SZ SY SX OUT.f64
 *   segment_ref hmax F.f64 Z Y X H OUT.u8
 *   segment_ref label MASK.u8 Z Y X CONN OUT.u32      prints the count
 *   segment_ref watershed IMG.f64 MARKERS.u32 MASK.u8|- Z Y X CONN OUT.u32
 *   segment_ref seg REF.u32 PRED.u32 N                prints "seg n_reference n_matched"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

static void *read_raw(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *x = malloc(bytes ? bytes : 1);
    if (x && fread(x, 1, bytes, f) != bytes) {
        free(x);
        x = NULL;
    }
    fclose(f);
    return x;
}

static int write_raw(const char *path, const void *x, size_t bytes)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, 1, bytes, f) == bytes;
    if (f && fclose(f) != 0) ok = 0;
    return ok ? 0 : 1;
}

static int fail(const char *msg)
{
    fprintf(stderr, "segment_ref: %s\n", msg);
    return 1;
}

int main(int argc, char **argv)
{
    const char *op = argc > 1 ? argv[1] : "";
    if (argc == 4 && !strcmp(op, "intermodes")) {
        int n = atoi(argv[3]), t = -1;
        double *h = read_raw(argv[2], (size_t)n * sizeof *h);
        if (!h) return fail("cannot read the histogram");
        int passes = threshold_intermodes(h, n, &t);
        free(h);
        printf("%d %d\n", passes, passes >= 0 ? t : -1);
        return 0;
    }
    if (argc < 5) return fail("usage: see the head of segment_ref.c");
    int64_t nz = atoll(argv[3]), ny = atoll(argv[4]), nx = argc > 5 ? atoll(argv[5]) : 1;
    size_t n = (size_t)(nz * ny * nx);
    if (!strcmp(op, "seg")) n = (size_t)atoll(argv[4]);
    int rc = 1;
    if (argc == 7 && !strcmp(op, "fill")) {
        uint8_t *m = read_raw(argv[2], n);
        if (m && fill_holes_u8(m, nz, ny, nx) == 0) rc = write_raw(argv[6], m, n);
        free(m);
    } else if (argc == 10 && !strcmp(op, "edt")) {
        uint8_t *m = read_raw(argv[2], n);
        double s[3] = {atof(argv[6]), atof(argv[7]), atof(argv[8])}, *d = malloc(n * sizeof *d);
        if (m && d && edt_f64(m, nz, ny, nx, s, d) == 0) rc = write_raw(argv[9], d, n * sizeof *d);
        free(m);
        free(d);
    } else if (argc == 8 && !strcmp(op, "hmax")) {
        double *f = read_raw(argv[2], n * sizeof *f);
        uint8_t *o = malloc(n ? n : 1);
        if (f && o && hmaxima_f64(f, nz, ny, nx, atof(argv[6]), o) == 0) rc = write_raw(argv[7], o, n);
        free(f);
        free(o);
    } else if (argc == 8 && !strcmp(op, "label")) {
        uint8_t *m = read_raw(argv[2], n);
        uint32_t *o = malloc((n ? n : 1) * sizeof *o);
        int64_t count = m && o ? label_u32(m, nz, ny, nx, atoi(argv[6]), o) : -1;
        if (count >= 0) {
            printf("%lld\n", (long long)count);
            rc = write_raw(argv[7], o, n * sizeof *o);
        }
        free(m);
        free(o);
    } else if (argc == 10 && !strcmp(op, "watershed")) {
        nz = atoll(argv[5]), ny = atoll(argv[6]), nx = atoll(argv[7]);
        n = (size_t)(nz * ny * nx);
        double *img = read_raw(argv[2], n * sizeof *img);
        uint32_t *mk = read_raw(argv[3], n * sizeof *mk), *o = malloc((n ? n : 1) * sizeof *o);
        uint8_t *m = strcmp(argv[4], "-") ? read_raw(argv[4], n) : NULL;
        if (img && mk && o && (m || !strcmp(argv[4], "-")) &&
            watershed_f64(img, mk, m, nz, ny, nx, atoi(argv[8]), o) == 0)
            rc = write_raw(argv[9], o, n * sizeof *o);
        free(img);
        free(mk);
        free(o);
        free(m);
    } else if (argc == 5 && !strcmp(op, "seg")) {
        uint32_t *a = read_raw(argv[2], n * sizeof *a), *b = read_raw(argv[3], n * sizeof *b);
        seg_result r;
        if (a && b && seg_score(a, b, n, &r) == 0) {
            printf("%.17g %lld %lld\n", r.seg, (long long)r.n_reference, (long long)r.n_matched);
            rc = 0;
        }
        free(a);
        free(b);
    } else
        return fail("usage: see the head of segment_ref.c");
    return rc ? fail("cannot read the inputs, run the kernel or write the output") : 0;
}
