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
    int cohort;           /* a cohort stage (in a sample's plan: run elsewhere, its fingerprint
                             copied from the cohort plan) */
    int ready;            /* cohort plans: committed and current, so dependants may read it */
    int waiting;          /* would run, but reads a cohort stage that is not ready (directly
                             or through stages that wait too) */
    char waits_for[128];  /* the first such cohort stage */
    int from_archive;     /* reused: committed with this fingerprint in the sample's archive
                             (run --from), where its dependants read it */
} stage_plan;

/* The archives of run --from, opened read-only: one per sample id (or
 * COHORT_ID) they hold. */
typedef struct {
    int n;
    store **st;
    char **id;
} archive_set;

store *archive_for(const archive_set *as, const char *id);

void plan_free(stage_plan *p, int n);
char *container_path(const config *c, const sample_info *s);
int container_exists(const config *c, const char *path);
int load_cache(store *st, json_t **cache);
void save_cache(store *st, json_t *cache);
int port_is_multiple(const stage_type *t, const char *port);
/* Plans one sample. st may be NULL (no container yet). cohort: the cohort
 * plan (n_stages entries, those of cohort stages filled), or NULL when the
 * config has no cohort stages or none is planned yet (every cohort stage is
 * then not ready). Returns SS_OK, or an error for problems of the request
 * itself (unknown --force stage, ...). */
int plan_sample(const config *c, const sample_info *s, store *st, store *archive, const run_options *o,
                const int *order, const stage_plan *cohort, json_t *hash_cache, stage_plan **out);
/* Plans cohort stage i into cohort[i] from the plans of its samples
 * (samples[k] for the config's sample k, each planned with the cohort plan
 * as it stood) and the cohort container cst (NULL: none yet). */
int plan_cohort_stage(const config *c, int i, stage_plan *const *samples, store *cst, store *archive,
                      const run_options *o,
                      stage_plan *cohort);
/* Whether a plan entry's output can be read now: committed and current. */
int plan_entry_ready(const stage_plan *p);

#endif
