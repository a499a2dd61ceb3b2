/* n2n_train: self-supervised denoising from the repeats (Noise2Noise;
 * Lehtinen et al. 2018, and the temporally and spatially interleaved pairs
 * of rationalised deep learning, Qiao et al.): no clean data. Two
 * independent noisy views of one structure train a network towards their
 * common expectation.
 *   repeats: input one repeat, target another (drawn per patch);
 *   halves:  input the mean of a random half of the repeats, target the mean
 *            of the other half;
 *   planes:  input plane z, target plane z + 1 of the same repeat (one
 *            repeat is enough), the target shifted by the difference of the
 *            two planes' means (the expected difference between
 *            neighbouring planes, which the network must not learn).
 * The model is for n2n_apply (or denoise_apply on a single image). */
#include "cnn.h"

#include <stdlib.h>
#include <string.h>

enum { PAIR_REPEATS, PAIR_HALVES, PAIR_PLANES };

typedef struct {
    const float *rep; /* R x Z x Y x X, normalised */
    int64_t R, Z, Y, X;
    const int64_t *planes;
    int64_t n_planes;
    const double *plane_mean; /* R x Z */
    int mode;
} n2n_src;

static void fill(const void *ctx, ss_rng *r, int P, float *in, float *tgt)
{
    const n2n_src *s = ctx;
    int64_t z = s->planes[rng_next(r) % (uint64_t)s->n_planes];
    int64_t y0 = (int64_t)(rng_next(r) % (uint64_t)(s->Y - P + 1)), x0 = (int64_t)(rng_next(r) % (uint64_t)(s->X - P + 1));
    size_t vol = (size_t)(s->Z * s->Y * s->X);
    const float *base = s->rep + (size_t)((z * s->Y + y0) * s->X + x0);
    if (s->mode == PAIR_REPEATS) {
        int64_t a = (int64_t)(rng_next(r) % (uint64_t)s->R), b = (int64_t)(rng_next(r) % (uint64_t)(s->R - 1));
        if (b >= a) b++;
        for (int i = 0; i < P; i++) {
            memcpy(in + (size_t)i * P, base + a * vol + (size_t)i * s->X, (size_t)P * sizeof *in);
            memcpy(tgt + (size_t)i * P, base + b * vol + (size_t)i * s->X, (size_t)P * sizeof *tgt);
        }
    } else if (s->mode == PAIR_HALVES) {
        /* a random split: a shuffle of the repeats, the first half the input */
        int64_t order[64] = {0};
        for (int64_t q = 0; q < s->R; q++) order[q] = q;
        for (int64_t q = s->R - 1; q > 0; q--) {
            int64_t j = (int64_t)(rng_next(r) % (uint64_t)(q + 1)), t = order[q];
            order[q] = order[j], order[j] = t;
        }
        int64_t h = s->R / 2;
        for (int i = 0; i < P; i++)
            for (int j = 0; j < P; j++) {
                double a = 0, b = 0;
                size_t off = (size_t)i * s->X + (size_t)j;
                for (int64_t q = 0; q < h; q++) a += base[order[q] * vol + off];
                for (int64_t q = h; q < s->R; q++) b += base[order[q] * vol + off];
                in[(size_t)i * P + j] = (float)(a / (double)h);
                tgt[(size_t)i * P + j] = (float)(b / (double)(s->R - h));
            }
    } else {
        int64_t rr = (int64_t)(rng_next(r) % (uint64_t)s->R);
        const float *a = base + rr * vol, *b = a + s->Y * s->X;
        float shift = (float)(s->plane_mean[rr * s->Z + z] - s->plane_mean[rr * s->Z + z + 1]);
        for (int i = 0; i < P; i++)
            for (int j = 0; j < P; j++) {
                in[(size_t)i * P + j] = a[(size_t)i * s->X + j];
                tgt[(size_t)i * P + j] = b[(size_t)i * s->X + j] + shift;
            }
    }
}

static int run(stage_ctx *c)
{
    float *rep = NULL;
    int64_t *planes = NULL;
    uint8_t *use = NULL;
    double *pm = NULL;
    int64_t R, sh[3];
    char label[256];
    int rc = cnn_read_input(c, "repeats", &R, sh, &rep, label, sizeof label);
    if (rc != SS_OK) return rc;
    const char *ms = ctx_str(c, "pairs");
    int mode = !strcmp(ms, "halves") ? PAIR_HALVES : !strcmp(ms, "planes") ? PAIR_PLANES : PAIR_REPEATS;
    int64_t Z = sh[0], Y = sh[1], X = sh[2], n_used, np_ = 0;
    if (mode != PAIR_PLANES && R < 2) {
        rc = ss_fail(SS_ERR_INPUT, "n2n_train: %s holds %lld repeat; pairs '%s' need at least 2 (or use pairs: planes)",
                     label, (long long)R, ms);
        goto done;
    }
    if (R > 64) {
        rc = ss_fail(SS_ERR_INPUT, "n2n_train: %s holds %lld repeats; at most 64 are supported", label, (long long)R);
        goto done;
    }
    use = malloc((size_t)Z);
    planes = malloc((size_t)Z * sizeof *planes);
    pm = malloc((size_t)(R * Z) * sizeof *pm);
    if (!use || !planes || !pm) {
        rc = ss_nomem((size_t)(Z * 9 + R * Z * 8), "the plane lists");
        goto done;
    }
    if ((rc = cnn_read_mask(c, "mask", Z, use, &n_used)) != SS_OK) goto done;
    for (int64_t z = 0; z < Z; z++)
        if (use[z] && (mode != PAIR_PLANES || (z + 1 < Z && use[z + 1]))) planes[np_++] = z;
    if (!np_) {
        rc = ss_fail(SS_ERR_INPUT, "n2n_train: %s has no two neighbouring planes to pair (pairs: planes)", label);
        goto done;
    }
    size_t n = (size_t)(R * Z * Y * X);
    cnn_norm nm;
    if ((rc = cnn_norm_fit(c, rep, n, &nm)) != SS_OK) goto done;
    cnn_norm_apply(&nm, rep, n);
    for (int64_t q = 0; q < R * Z; q++) {
        double s = 0;
        const float *pl = rep + (size_t)q * (size_t)(Y * X);
        for (int64_t i = 0; i < Y * X; i++) s += pl[i];
        pm[q] = s / (double)(Y * X);
    }
    net_arch a;
    cnn_unet_from_params(c, 1, 1, &a);
    n2n_src src = {rep, R, Z, Y, X, planes, np_, pm, mode};
    cnn_pairs pairs = {1, 1, Y, X, fill, &src};
    if ((rc = cnn_train(c, &a, &pairs, &nm, NULL)) != SS_OK) goto done;
    ctx_attr(c, "pairs", json_string(ms));
    ctx_attr(c, "train_planes", json_integer(np_));
    ctx_attr(c, "repeats", json_integer(R));
done:
    free(rep), free(planes), free(use), free(pm);
    return rc;
}

static const param_spec params[] = {
    {.name = "pairs", .type = P_ENUM, .def = "\"repeats\"", .choices = "repeats|halves|planes",
     .doc = "training pairs: two repeats, the means of two halves of the repeats, or neighbouring planes"},
    CNN_UNET_PARAMS,
    CNN_TRAIN_PARAMS("1e-3", "\"adam\""),
    {0},
};
static const port_spec inputs[] = {
    {.name = "repeats", .kinds = KIND_REPEATS | KIND_IMAGE,
     .doc = "repeated acquisitions R x Z x Y x X (an image is one repeat, for pairs: planes)"},
    {.name = "mask", .kinds = KIND_MASK, .optional = 1, .doc = "planes to train on (1 per plane); all without"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "weights", .kinds = KIND_WEIGHTS, .doc = "the trained U-Net with its normalisation (see n2n_apply)"},
    {.name = "curve", .kinds = KIND_TABLE, .doc = "training curve: step, loss (normalised MSE between views), seconds"},
    {0},
};

const stage_type stage_n2n_train = {
    .name = "n2n_train",
    .version = 1,
    .summary = "train a U-Net denoiser from the repeats alone (Noise2Noise: repeat, half-mean or plane pairs)",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .flags = STAGE_STOCHASTIC,
    .run = run,
    .check = cnn_train_check,
};
