/* denoise_train: trains the SIREN paper's U-Net denoiser on (input, target)
 * pairs of two images of one shape: SIREN predictions against the acquired
 * planes (the paper), a phantom's noisy data against its ground truth
 * (supervised), or any two stacks. Random patches of the planes a mask
 * selects (all without one), flipped and rotated; the model (weights,
 * architecture, normalisation) is the `weights` output, for denoise_apply.
 * With scope: cohort, one model learns from the pairs of every sample (one
 * normalisation fitted over all of them; patches drawn from every sample's
 * planes alike), for each sample's denoise_apply to use. */
#include "cnn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The pairs of every sample (one for a per-sample stage), one after the
 * other in in[] and tgt[]; patches come from the planes listed. */
typedef struct {
    float *in, *tgt;
    size_t len;
    int64_t *vol_off, (*dims)[2]; /* per sample: where its planes start, Y and X */
    int64_t (*planes)[2];         /* (sample, plane) to draw from */
    int64_t n_planes;
} pair_src;

static void fill(const void *ctx, ss_rng *r, int P, float *in, float *tgt)
{
    const pair_src *s = ctx;
    const int64_t *pl = s->planes[rng_next(r) % (uint64_t)s->n_planes];
    int64_t Y = s->dims[pl[0]][0], X = s->dims[pl[0]][1];
    int64_t y0 = (int64_t)(rng_next(r) % (uint64_t)(Y - P + 1)), x0 = (int64_t)(rng_next(r) % (uint64_t)(X - P + 1));
    for (int i = 0; i < P; i++) {
        size_t at = (size_t)(s->vol_off[pl[0]] + (pl[1] * Y + y0 + i) * X + x0);
        memcpy(in + (size_t)i * P, s->in + at, (size_t)P * sizeof *in);
        memcpy(tgt + (size_t)i * P, s->tgt + at, (size_t)P * sizeof *tgt);
    }
}

static int grow(void *pp, size_t n, size_t elem)
{
    void *q = realloc(*(void **)pp, n * elem);
    if (!q) return ss_nomem(n * elem, "denoise_train: the training pairs");
    *(void **)pp = q;
    return SS_OK;
}

/* Appends the selected sample's (input, target) pair and its mask's planes. */
static int add_sample(stage_ctx *c, int k, pair_src *src)
{
    float *in = NULL, *tgt = NULL;
    uint8_t *use = NULL;
    int64_t si[3], st[3];
    char li[256], lt[256];
    int rc = cnn_read_input(c, "input", NULL, si, &in, li, sizeof li);
    if (rc == SS_OK) rc = cnn_read_input(c, "target", NULL, st, &tgt, lt, sizeof lt);
    const char *who = ctx_is_cohort(c) ? ctx_sample(c)->id : NULL;
    if (rc == SS_OK && memcmp(si, st, sizeof si))
        rc = ss_fail(SS_ERR_INPUT, "denoise_train: %s%sinput %s is %lld x %lld x %lld but target %s is %lld x %lld x %lld",
                     who ? "sample " : "", who ? who : "", li, (long long)si[0], (long long)si[1], (long long)si[2],
                     lt, (long long)st[0], (long long)st[1], (long long)st[2]);
    int64_t Z = si[0], n_used;
    size_t n = rc == SS_OK ? (size_t)(Z * si[1] * si[2]) : 0;
    if (rc == SS_OK && !(use = malloc((size_t)Z ? (size_t)Z : 1))) rc = ss_nomem((size_t)Z, "the plane list");
    if (rc == SS_OK) rc = cnn_read_mask(c, "mask", Z, use, &n_used);
    if (rc == SS_OK) rc = grow(&src->in, src->len + n, sizeof *src->in);
    if (rc == SS_OK) rc = grow(&src->tgt, src->len + n, sizeof *src->tgt);
    if (rc == SS_OK) rc = grow(&src->vol_off, (size_t)k + 1, sizeof *src->vol_off);
    if (rc == SS_OK) rc = grow(&src->dims, (size_t)k + 1, sizeof *src->dims);
    if (rc == SS_OK) rc = grow(&src->planes, (size_t)(src->n_planes + Z), sizeof *src->planes);
    if (rc == SS_OK) {
        memcpy(src->in + src->len, in, n * sizeof *in);
        memcpy(src->tgt + src->len, tgt, n * sizeof *tgt);
        src->vol_off[k] = (int64_t)src->len;
        src->dims[k][0] = si[1];
        src->dims[k][1] = si[2];
        src->len += n;
        for (int64_t z = 0; z < Z; z++)
            if (use[z]) {
                src->planes[src->n_planes][0] = k;
                src->planes[src->n_planes++][1] = z;
            }
    }
    free(in), free(tgt), free(use);
    return rc;
}

static int run(stage_ctx *c)
{
    pair_src src = {0};
    int ns = ctx_n_samples(c), rc = SS_OK;
    int64_t Y = INT64_MAX, X = INT64_MAX;
    for (int k = 0; k < ns && rc == SS_OK; k++) {
        rc = ctx_select_sample(c, k);
        if (rc == SS_OK) rc = add_sample(c, k, &src);
        if (rc == SS_OK && src.dims[k][0] < Y) Y = src.dims[k][0];
        if (rc == SS_OK && src.dims[k][1] < X) X = src.dims[k][1];
    }
    if (rc == SS_OK && src.n_planes == 0) rc = ss_fail(SS_ERR_INPUT, "denoise_train: the mask selects no plane");
    cnn_norm nm;
    if (rc == SS_OK) rc = cnn_norm_fit(c, src.in, src.len, &nm);
    if (rc == SS_OK) {
        cnn_norm_apply(&nm, src.in, src.len);
        cnn_norm_apply(&nm, src.tgt, src.len);
        net_arch a;
        cnn_unet_from_params(c, 1, 1, &a);
        /* every patch fits the smallest plane */
        cnn_pairs pairs = {1, 1, Y, X, fill, &src};
        rc = cnn_train(c, &a, &pairs, &nm, NULL);
    }
    if (rc == SS_OK) ctx_attr(c, "train_planes", json_integer(src.n_planes));
    free(src.in), free(src.tgt), free(src.vol_off), free(src.dims), free(src.planes);
    return rc;
}

static const param_spec params[] = {
    CNN_UNET_PARAMS,
    CNN_TRAIN_PARAMS("0.01", "\"adam\""),
    {0},
};
static const port_spec inputs[] = {
    {.name = "input", .kinds = KIND_IMAGE, .doc = "what the network sees, Z x Y x X"},
    {.name = "target", .kinds = KIND_IMAGE, .doc = "what it should give, the input's shape"},
    {.name = "mask", .kinds = KIND_MASK, .optional = 1, .doc = "planes to train on (1 per plane); all without"},
    {0},
};
static const port_spec outputs[] = {
    {.name = "weights", .kinds = KIND_WEIGHTS, .doc = "the trained U-Net with its normalisation (see denoise_apply)"},
    {.name = "curve", .kinds = KIND_TABLE, .doc = "training curve: step, loss (normalised MSE), seconds"},
    {0},
};

const stage_type stage_denoise_train = {
    .name = "denoise_train",
    .version = 1,
    .summary = "train a U-Net denoiser on (input, target) image pairs (the SIREN paper's denoiser)",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .flags = STAGE_STOCHASTIC | STAGE_COHORT,
    .run = run,
    .check = cnn_train_check,
};
