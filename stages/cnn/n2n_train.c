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
 * The model is for n2n_apply (or denoise_apply on a single image). With
 * scope: cohort one model learns from every sample's repeats (one
 * normalisation fitted over all of them; patches drawn from every sample's
 * planes alike). */
#include "cnn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { PAIR_REPEATS, PAIR_HALVES, PAIR_PLANES };

/* One sample's repeats (normalised) and its plane means. */
typedef struct {
    float *rep; /* R x Z x Y x X */
    int64_t R, Z, Y, X;
    double *plane_mean; /* R x Z */
} n2n_vol;

typedef struct {
    n2n_vol *vol;   /* every sample's (one for a per-sample stage) */
    int64_t (*planes)[2]; /* (sample, plane) to draw from */
    int64_t n_planes;
    int mode;
} n2n_src;

static void fill(const void *ctx, ss_rng *r, int P, float *in, float *tgt)
{
    const n2n_src *src = ctx;
    const int64_t *pl = src->planes[rng_next(r) % (uint64_t)src->n_planes];
    const n2n_vol *s = &src->vol[pl[0]];
    int64_t z = pl[1];
    int64_t y0 = (int64_t)(rng_next(r) % (uint64_t)(s->Y - P + 1)), x0 = (int64_t)(rng_next(r) % (uint64_t)(s->X - P + 1));
    size_t vol = (size_t)(s->Z * s->Y * s->X);
    const float *base = s->rep + (size_t)((z * s->Y + y0) * s->X + x0);
    if (src->mode == PAIR_REPEATS) {
        int64_t a = (int64_t)(rng_next(r) % (uint64_t)s->R), b = (int64_t)(rng_next(r) % (uint64_t)(s->R - 1));
        if (b >= a) b++;
        for (int i = 0; i < P; i++) {
            memcpy(in + (size_t)i * P, base + a * vol + (size_t)i * s->X, (size_t)P * sizeof *in);
            memcpy(tgt + (size_t)i * P, base + b * vol + (size_t)i * s->X, (size_t)P * sizeof *tgt);
        }
    } else if (src->mode == PAIR_HALVES) {
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

/* Reads the selected sample's repeats and its planes into src (as volume k). */
static int add_sample(stage_ctx *c, int k, int mode, const char *ms, n2n_src *src)
{
    n2n_vol *v = &src->vol[k];
    int64_t sh[3];
    char label[256];
    uint8_t *use = NULL;
    int rc = cnn_read_input(c, "repeats", &v->R, sh, &v->rep, label, sizeof label);
    if (rc != SS_OK) return rc;
    v->Z = sh[0], v->Y = sh[1], v->X = sh[2];
    const char *who = ctx_is_cohort(c) ? ctx_sample(c)->id : NULL;
    char pre[160] = "";
    if (who) snprintf(pre, sizeof pre, "sample %s: ", who);
    if (mode != PAIR_PLANES && v->R < 2)
        return ss_fail(SS_ERR_INPUT, "n2n_train: %s%s holds %lld repeat; pairs '%s' need at least 2 (or use pairs: planes)",
                       pre, label, (long long)v->R, ms);
    if (v->R > 64)
        return ss_fail(SS_ERR_INPUT, "n2n_train: %s%s holds %lld repeats; at most 64 are supported", pre, label,
                       (long long)v->R);
    int64_t Z = v->Z, n_used, before = src->n_planes;
    use = malloc((size_t)Z ? (size_t)Z : 1);
    void *np = realloc(src->planes, (size_t)(src->n_planes + Z + 1) * sizeof *src->planes);
    v->plane_mean = malloc((size_t)(v->R * Z + 1) * sizeof *v->plane_mean);
    if (!use || !np || !v->plane_mean) {
        free(use);
        if (np) src->planes = np;
        return ss_nomem((size_t)(Z * 17 + v->R * Z * 8), "the plane lists");
    }
    src->planes = np;
    rc = cnn_read_mask(c, "mask", Z, use, &n_used);
    for (int64_t z = 0; rc == SS_OK && z < Z; z++)
        if (use[z] && (mode != PAIR_PLANES || (z + 1 < Z && use[z + 1]))) {
            src->planes[src->n_planes][0] = k;
            src->planes[src->n_planes++][1] = z;
        }
    free(use);
    if (rc == SS_OK && src->n_planes == before)
        rc = ss_fail(SS_ERR_INPUT, "n2n_train: %s%s has no %s to train on", pre, label,
                     mode == PAIR_PLANES ? "two neighbouring planes to pair (pairs: planes)" : "plane");
    return rc;
}

static int run(stage_ctx *c)
{
    const char *ms = ctx_str(c, "pairs");
    int mode = !strcmp(ms, "halves") ? PAIR_HALVES : !strcmp(ms, "planes") ? PAIR_PLANES : PAIR_REPEATS;
    int ns = ctx_n_samples(c), rc = SS_OK;
    n2n_src src = {.vol = calloc((size_t)ns, sizeof(n2n_vol)), .mode = mode};
    if (!src.vol) return ss_fail(SS_ERR_NOMEM, "out of memory");
    int64_t Y = INT64_MAX, X = INT64_MAX, R = 0;
    size_t total = 0;
    for (int k = 0; k < ns && rc == SS_OK; k++) {
        rc = ctx_select_sample(c, k);
        if (rc == SS_OK) rc = add_sample(c, k, mode, ms, &src);
        if (rc != SS_OK) break;
        n2n_vol *v = &src.vol[k];
        Y = v->Y < Y ? v->Y : Y, X = v->X < X ? v->X : X, R = v->R > R ? v->R : R;
        total += (size_t)(v->R * v->Z * v->Y * v->X);
    }
    /* one normalisation over every sample's values */
    float *all = rc == SS_OK && ns > 1 ? malloc(total * sizeof *all) : NULL;
    if (rc == SS_OK && ns > 1 && !all) rc = ss_nomem(total * sizeof *all, "n2n_train: the cohort's values");
    size_t at = 0;
    for (int k = 0; all && k < ns; k++) {
        size_t n = (size_t)(src.vol[k].R * src.vol[k].Z * src.vol[k].Y * src.vol[k].X);
        memcpy(all + at, src.vol[k].rep, n * sizeof *all);
        at += n;
    }
    cnn_norm nm;
    if (rc == SS_OK) rc = cnn_norm_fit(c, all ? all : src.vol[0].rep, total, &nm);
    free(all);
    for (int k = 0; rc == SS_OK && k < ns; k++) {
        n2n_vol *v = &src.vol[k];
        cnn_norm_apply(&nm, v->rep, (size_t)(v->R * v->Z * v->Y * v->X));
        for (int64_t q = 0; q < v->R * v->Z; q++) {
            double s = 0;
            const float *pl = v->rep + (size_t)q * (size_t)(v->Y * v->X);
            for (int64_t i = 0; i < v->Y * v->X; i++) s += pl[i];
            v->plane_mean[q] = s / (double)(v->Y * v->X);
        }
    }
    if (rc == SS_OK) {
        net_arch a;
        cnn_unet_from_params(c, 1, 1, &a);
        /* every patch fits the smallest plane */
        cnn_pairs pairs = {1, 1, Y, X, fill, &src};
        rc = cnn_train(c, &a, &pairs, &nm, NULL);
    }
    if (rc == SS_OK) {
        ctx_attr(c, "pairs", json_string(ms));
        ctx_attr(c, "train_planes", json_integer(src.n_planes));
        ctx_attr(c, "repeats", json_integer(R));
    }
    for (int k = 0; k < ns; k++) free(src.vol[k].rep), free(src.vol[k].plane_mean);
    free(src.vol);
    free(src.planes);
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
    .flags = STAGE_STOCHASTIC | STAGE_COHORT,
    .run = run,
    .check = cnn_train_check,
};
