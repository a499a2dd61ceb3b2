#include "plane_window.h"

#include <stdlib.h>

static int64_t reflect_index(int64_t i, int64_t n)
{
    int64_t p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

int plane_filter_run(stage_ctx *c, const plane_filter *f)
{
    store_array *in, *out = NULL;
    char label[256];
    ctx_input_label(c, "image", label, sizeof label);
    int rc = ctx_open_input(c, "image", &in);
    if (rc != SS_OK) return rc;
    array_info info;
    float *ring = NULL, *res = NULL;
    const float **taps = NULL;
    if ((rc = store_array_info(in, &info)) != SS_OK) goto done;
    if (info.rank != 3) {
        rc = ss_fail(SS_ERR_INPUT, "%s: %s has rank %d; expected an image Z x Y x X", f->stage_type, label, info.rank);
        goto done;
    }
    int64_t Z = info.shape[0], Y = info.shape[1], X = info.shape[2], r = f->r;
    int64_t held = 2 * r + 1 < Z ? 2 * r + 1 : Z;
    size_t plane = (size_t)(Y * X);
    if (!(ring = malloc((size_t)held * plane * sizeof *ring))) {
        rc = ss_nomem((size_t)held * plane * sizeof *ring, "%lld planes of %lld x %lld of %s", (long long)held,
                      (long long)Y, (long long)X, label);
        goto done;
    }
    res = malloc(plane * sizeof *res);
    taps = malloc((size_t)(2 * r + 1) * sizeof *taps);
    if (!res || !taps) {
        rc = ss_nomem(plane * sizeof *res, "one filtered plane of %lld x %lld", (long long)Y, (long long)X);
        goto done;
    }
    array_meta m = array_meta_of(&info);
    if ((rc = store_writer_array(ctx_writer(c), "filtered", DT_F32, 3, info.shape, NULL, &m, &out)) != SS_OK)
        goto done;
    int64_t loaded = 0; /* planes 0 .. loaded - 1 have been read (and prepared) */
    ctx_progress_begin(c, "planes", Z);
    for (int64_t z = 0; z < Z && rc == SS_OK; z++) {
        int64_t need = z + r < Z - 1 ? z + r : Z - 1;
        for (; loaded <= need && rc == SS_OK; loaded++) {
            float *p = ring + (size_t)(loaded % held) * plane;
            int64_t st[3] = {loaded, 0, 0}, ct[3] = {1, Y, X};
            if ((rc = ctx_read_f32(c, in, label, 3, st, ct, p)) == SS_OK && f->prepare) f->prepare(p, Y, X, f->arg);
        }
        if (rc != SS_OK) break;
        for (int64_t i = -r; i <= r; i++) taps[i + r] = ring + (size_t)(reflect_index(z + i, Z) % held) * plane;
        f->combine(taps, Y, X, res, f->arg);
        int64_t so[3] = {z, 0, 0}, co[3] = {1, Y, X};
        rc = store_array_write(out, so, co, DT_F32, res);
        ctx_progress(c, z + 1);
    }
    if (rc == SS_OK) ctx_attr(c, "planes_held", json_integer((json_int_t)held));
done:
    free(ring);
    free(res);
    free(taps);
    store_array_close(out);
    store_array_close(in);
    return rc;
}
