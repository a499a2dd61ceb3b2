/* Internal to the runner: what a run will do, stage by stage, decided by
 * fingerprint before anything runs (plan.c), so that run, --dry-run and
 * status answer from the same code. */
#ifndef SS_PLAN_H
#define SS_PLAN_H

#include "config.h"
#include "fingerprint.h"
#include "runner.h"

typedef enum { ACT_REUSE, ACT_RUN, ACT_SKIP } action;

typedef struct {
    char fp[FP_HEX];
    json_t *params;
    json_t *file_hashes;  /* param -> hash */
    json_t *input_fps;    /* port -> fingerprint */
    int committed;
    char committed_fp[FP_HEX];
    json_t *attrs;        /* committed attributes, or NULL */
    action act;
    sbuf reason;
    int selected;
    int error;            /* planning failed for this stage (missing input file, ...) */
    int damaged;          /* committed, but unreadable or failing the store's check */
    char kept[160];       /* reused with another compression than the run's: what to say */
} stage_plan;

void plan_free(stage_plan *p, int n);
char *container_path(const config *c, const sample_info *s);
int container_exists(const config *c, const char *path);
int load_cache(store *st, json_t **cache);
void save_cache(store *st, json_t *cache);
int port_is_multiple(const stage_type *t, const char *port);
int plan_sample(const config *c, const sample_info *s, store *st, const run_options *o, const int *order,
                json_t *hash_cache, stage_plan **out);

#endif
