/* Runs the registration kernels on raw little-endian float32 files, for
 * check_kernels.py to compare with skimage and scipy.
 *
 *   baselines_ref xcorr REF.f32 MOV.f32 NZ NY NX HANN PHASE UPSAMPLE MAXSHIFT
 *       prints "dz dy dx peak"
 *   baselines_ref shift IN.f32 NZ NY NX SZ SY SX cubic|linear|fourier reflect|zero|nearest OUT.f32
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *x = malloc(n * sizeof *x);
    if (x && fread(x, sizeof *x, n, f) != n) {
        free(x);
        x = NULL;
    }
    fclose(f);
    return x;
}

static int fail(const char *msg)
{
    fprintf(stderr, "baselines_ref: %s\n", msg);
    return 1;
}

int main(int argc, char **argv)
{
    const kernels *k = kernels_cpu();
    if (argc == 11 && !strcmp(argv[1], "xcorr")) {
        int64_t nz = atoll(argv[4]), ny = atoll(argv[5]), nx = atoll(argv[6]);
        size_t n = (size_t)(nz * ny * nx);
        float *ref = read_f32(argv[2], n), *mov = read_f32(argv[3], n);
        xcorr_opts o = {.hann = atoi(argv[7]), .phase = atoi(argv[8]), .upsample = atoi(argv[9]),
                        .max_shift = atof(argv[10])};
        xcorr_state *s = ref && mov ? k->xcorr_new(nz, ny, nx, &o) : NULL;
        if (!s) {
            free(ref);
            free(mov);
            return fail("cannot read the inputs or make the state");
        }
        double sh[3], peak;
        k->xcorr_reference_f32(s, ref);
        k->xcorr_find_f32(s, mov, sh, &peak);
        printf("%.17g %.17g %.17g %.17g\n", sh[0], sh[1], sh[2], peak);
        k->xcorr_free(s);
        free(ref);
        free(mov);
        return 0;
    }
    if (argc == 12 && !strcmp(argv[1], "shift")) {
        int64_t nz = atoll(argv[3]), ny = atoll(argv[4]), nx = atoll(argv[5]);
        size_t n = (size_t)(nz * ny * nx);
        double sh[3] = {atof(argv[6]), atof(argv[7]), atof(argv[8])};
        int interp = !strcmp(argv[9], "fourier") ? SHIFT_FOURIER : !strcmp(argv[9], "linear") ? SHIFT_LINEAR : SHIFT_CUBIC;
        int edge = !strcmp(argv[10], "zero") ? EDGE_ZERO : !strcmp(argv[10], "nearest") ? EDGE_NEAREST : EDGE_REFLECT;
        float *x = read_f32(argv[2], n);
        if (!x) return fail("cannot read the input");
        if (k->shift_f32(x, nz, ny, nx, sh, interp, edge) != 0) {
            free(x);
            return fail("shift_f32 failed");
        }
        FILE *f = fopen(argv[11], "wb");
        int ok = f && fwrite(x, sizeof *x, n, f) == n;
        if (f && fclose(f) != 0) ok = 0;
        free(x);
        return ok ? 0 : fail("cannot write the output");
    }
    return fail("usage: xcorr REF MOV NZ NY NX HANN PHASE UPSAMPLE MAXSHIFT | shift IN NZ NY NX SZ SY SX INTERP EDGE OUT");
}
