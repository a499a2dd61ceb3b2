/* Internal: the state behind a stage_ctx (runner.c builds it, stage_ctx.c
 * answers the stage's questions from it). */
#ifndef SS_STAGE_CTX_H
#define SS_STAGE_CTX_H

#include <signal.h>

#include "config.h"
#include "plan.h"
#include "progress.h"

struct stage_ctx {
    const config *cfg;
    int stage;                 /* index into cfg->stages */
    const sample_info *sample;
    json_t *params;            /* per-sample parameters */
    store *st;                 /* where outputs go */
    store *in_st;              /* inputs from per-sample stages (a cohort stage's: the selected sample's) */
    store *cohort_st;          /* inputs from cohort stages (NULL when none is read) */
    store *owned_in;           /* a cohort stage's selected sample container, opened here */
    int cur;                   /* a cohort stage's selected sample, 0..n_samples-1 */
    const stage_plan *plan;    /* the sample's plan (a cohort stage: the selected sample's) */
    stage_plan *const *splans; /* a cohort stage: every sample's plan */
    const archive_set *archives; /* run --from */
    store *archive_st;         /* the (selected) sample's archive: inputs the plan reuses from it */
    store_writer *w;
    const kernels *k;
    reporter *rep;
    checkpoint *ckpt;
    uint64_t seed;
    int threads;
    json_t *extra_attrs;
    char label[256];
};

extern volatile sig_atomic_t runner_cancel_requested;

/* Closes what ctx_select_sample opened. */
void ctx_release(stage_ctx *c);

#endif
