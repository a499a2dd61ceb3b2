/* Internal: the state behind a stage_ctx (runner.c builds it, stage_ctx.c
 * answers the stage's questions from it). */
#ifndef SS_STAGE_CTX_H
#define SS_STAGE_CTX_H

#include <signal.h>

#include "config.h"
#include "progress.h"

struct stage_ctx {
    const config *cfg;
    int stage;                 /* index into cfg->stages */
    const sample_info *sample;
    json_t *params;            /* per-sample parameters */
    store *st;
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

#endif
