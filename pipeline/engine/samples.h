/* The samples of a run: inline in the config or from a TSV/CSV manifest.
 * Problems are collected in e (cfg_errors.h). Ownership: the loaders return
 * an array the caller frees with samples_free. */
#ifndef SS_SAMPLES_H
#define SS_SAMPLES_H

#include "stage.h"
#include "cfg_errors.h"
#include "yamltree.h"

int samples_load_inline(const ynode *seq, cfg_errors *e, sample_info **out, int *n);
int samples_load_manifest(const char *path, cfg_errors *e, const char *cfg_file, int line, int col,
                          sample_info **out, int *n);
void samples_free(sample_info *s, int n);
/* The container of a run's cohort stages: <output>/_cohort.h5 (or .zarr);
 * no sample may have this id. */
#define COHORT_ID "_cohort"
int sample_id_valid(const char *id);

#endif
