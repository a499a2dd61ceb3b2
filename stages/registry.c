/* The stage table: adding a stage type is one file in stages/ and one line here. */
#include "stage.h"

#include <string.h>

extern const stage_type stage_synth_smooth;
extern const stage_type stage_import_hdf5;
extern const stage_type stage_normalize;
extern const stage_type stage_fuse_mean;
extern const stage_type stage_fuse_median;

static const stage_type *const table[] = {
    &stage_synth_smooth,
    &stage_import_hdf5,
    &stage_normalize,
    &stage_fuse_mean,
    &stage_fuse_median,
    NULL,
};

const stage_type *const *stage_types_all(void) { return table; }

const stage_type *stage_type_find(const char *name)
{
    for (const stage_type *const *t = table; *t; t++)
        if (!strcmp((*t)->name, name)) return *t;
    return NULL;
}
