/* What every training loop of the stages does the same way (stage.h):
 * resuming from a checkpoint, saving one, and writing the curve and the
 * weights. */
#include "stage.h"
#include "util.h"

#include <stdlib.h>

int64_t train_resume(stage_ctx *c, ckpt_entry *e, int n, int64_t steps, int *reinit)
{
    int64_t step = 0;
    *reinit = 0;
    int r = checkpoint_load(ctx_checkpoint(c), &step, e, n);
    if (r < 0) {
        /* A damaged checkpoint costs the time it saved, nothing else. */
        ctx_warn(c, "ignoring the checkpoint: %s; training from the start", ss_errmsg());
        *reinit = 1;
        return 0;
    }
    if (r == 1) ctx_warn(c, "resuming from the checkpoint at step %lld of %lld", (long long)step, (long long)steps);
    return r == 1 ? step : 0;
}

int train_checkpoint(stage_ctx *c, int64_t done, ckpt_entry *e, int n, double *elapsed, double t0,
                     int64_t *saved)
{
    checkpoint *ck = ctx_checkpoint(c);
    if (!ctx_cancelled(c) && !checkpoint_due(ck, done)) return SS_OK;
    *elapsed = ss_now() - t0;
    int rc = checkpoint_save(ck, done, e, n);
    if (rc != SS_OK) return rc;
    if (saved) *saved = done;
    if (ctx_cancelled(c))
        return ss_fail(SS_ERR_INTERRUPTED, "interrupted at step %lld; the next run resumes there", (long long)done);
    return SS_OK;
}

int train_write_curve(stage_ctx *c, int64_t steps, const double *loss, const double *seconds)
{
    int64_t *sidx = malloc(sizeof *sidx * (size_t)steps);
    if (!sidx) return ss_nomem(sizeof *sidx * (size_t)steps, "the loss curve of %lld steps", (long long)steps);
    for (int64_t i = 0; i < steps; i++) sidx[i] = i + 1;
    table_col cols[3] = {{"step", COL_I64, NULL, sidx, NULL},
                         {"loss", COL_F64, loss, NULL, NULL},
                         {"seconds", COL_F64, seconds, NULL, NULL}};
    table_view tv = {3, steps, cols};
    int rc = store_writer_table(ctx_writer(c), "curve", &tv);
    free(sidx);
    if (rc == SS_OK) {
        ctx_attr(c, "final_loss", json_real(loss[steps - 1]));
        ctx_attr(c, "train_seconds", json_real(seconds[steps - 1]));
    }
    return rc;
}

int train_write_weights(stage_ctx *c, const char *name, const float *w, int64_t n)
{
    store_array *wa;
    int rc = store_writer_array(ctx_writer(c), name, DT_F32, 1, &n, NULL, NULL, &wa);
    if (rc != SS_OK) return rc;
    int64_t st = 0;
    rc = store_array_write(wa, &st, &n, DT_F32, w);
    store_array_close(wa);
    return rc;
}
