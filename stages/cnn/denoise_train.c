/* denoise_train: trains the SIREN paper's U-Net denoiser on (input, target)
 * pairs of two images of one shape: SIREN predictions against the acquired
 * planes (the paper), a phantom's noisy data against its ground truth
 * (supervised), or any two stacks. Random patches of the planes a mask
 * selects (all without one), flipped and rotated; the model (weights,
 * architecture, normalisation) is the `weights` output, for denoise_apply. */
#include "cnn.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const float *in, *tgt;
    int64_t Z, Y, X;
    const int64_t *planes; /* the planes to draw from */
    int64_t n_planes;
} pair_src;

static void fill(const void *ctx, ss_rng *r, int P, float *in, float *tgt)
{
    const pair_src *s = ctx;
    int64_t z = s->planes[rng_next(r) % (uint64_t)s->n_planes];
    int64_t y0 = (int64_t)(rng_next(r) % (uint64_t)(s->Y - P + 1)), x0 = (int64_t)(rng_next(r) % (uint64_t)(s->X - P + 1));
    for (int i = 0; i < P; i++) {
        size_t at = (size_t)((z * s->Y + y0 + i) * s->X + x0);
        memcpy(in + (size_t)i * P, s->in + at, (size_t)P * sizeof *in);
        memcpy(tgt + (size_t)i * P, s->tgt + at, (size_t)P * sizeof *tgt);
    }
}

static int run(stage_ctx *c)
{
    float *in = NULL, *tgt = NULL;
    int64_t *planes = NULL;
    uint8_t *use = NULL;
    int64_t si[3], st[3];
    char li[256], lt[256];
    int rc = cnn_read_input(c, "input", NULL, si, &in, li, sizeof li);
    if (rc == SS_OK) rc = cnn_read_input(c, "target", NULL, st, &tgt, lt, sizeof lt);
    if (rc != SS_OK) goto done;
    if (memcmp(si, st, sizeof si)) {
        rc = ss_fail(SS_ERR_INPUT, "denoise_train: input %s is %lld x %lld x %lld but target %s is %lld x %lld x %lld",
                     li, (long long)si[0], (long long)si[1], (long long)si[2], lt, (long long)st[0],
                     (long long)st[1], (long long)st[2]);
        goto done;
    }
    int64_t Z = si[0], n_used;
    use = malloc((size_t)Z);
    planes = malloc((size_t)Z * sizeof *planes);
    if (!use || !planes) {
        rc = ss_nomem((size_t)Z * 9, "the plane list");
        goto done;
    }
    if ((rc = cnn_read_mask(c, "mask", Z, use, &n_used)) != SS_OK) goto done;
    int64_t np_ = 0;
    for (int64_t z = 0; z < Z; z++)
        if (use[z]) planes[np_++] = z;
    size_t n = (size_t)(Z * si[1] * si[2]);
    cnn_norm nm;
    if ((rc = cnn_norm_fit(c, in, n, &nm)) != SS_OK) goto done;
    cnn_norm_apply(&nm, in, n);
    cnn_norm_apply(&nm, tgt, n);
    net_arch a;
    cnn_unet_from_params(c, 1, 1, &a);
    pair_src src = {in, tgt, Z, si[1], si[2], planes, np_};
    cnn_pairs pairs = {1, 1, si[1], si[2], fill, &src};
    if ((rc = cnn_train(c, &a, &pairs, &nm, NULL)) != SS_OK) goto done;
    ctx_attr(c, "train_planes", json_integer(np_));
done:
    free(in), free(tgt), free(planes), free(use);
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
    .flags = STAGE_STOCHASTIC,
    .run = run,
    .check = cnn_train_check,
};
