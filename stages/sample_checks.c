/* Validation helpers for check_sample (stage.h). */
#include "stage.h"

#include <stdio.h>

const char *sample_repeats_mismatch(const json_t *params, const sample_info *sample)
{
    static _Thread_local char why[160];
    json_int_t r = json_integer_value(json_object_get(params, "repeats"));
    if (!sample->repeats || sample->repeats == r) return NULL;
    snprintf(why, sizeof why, "the sample declares %d repeats but the stage makes %lld", sample->repeats, (long long)r);
    return why;
}
