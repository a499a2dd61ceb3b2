/* The runner: for each selected sample, for each stage in topological order,
 * decide by fingerprint whether to reuse or run, run through the stage table,
 * commit through the store. Also answers status and dry-run questions with
 * the same planning code, so what --dry-run says is what run does. */
#ifndef SS_RUNNER_H
#define SS_RUNNER_H

#include <stdio.h>

#include "config.h"
#include "progress.h"

typedef struct {
    const char *sample;     /* --sample ID (NULL: all) */
    long array_index;       /* --array-index N (-1: all) */
    char **force;           /* --force STAGE (repeatable) */
    int n_force;
    char **only;            /* --stages a,b */
    int n_only;
    int dry_run;
    int cohort_only;        /* --cohort: the cohort stages only */
    char **from;            /* --from ARCHIVE (repeatable): packed archives to reuse stages from */
    int n_from;
    int threads;            /* --threads (-1: from the config) */
    const char *device;     /* --device (NULL: from the config) */
    FILE *json_log;
    int quiet;
} run_options;

int runner_run(const config *c, const run_options *o, reporter *rep);
int runner_status(const config *c, const run_options *o);

/* Installs SIGINT/SIGTERM handlers that ask running stages to checkpoint and stop. */
void runner_install_signals(void);

#endif
