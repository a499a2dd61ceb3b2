/* The stage table: adding a stage type is one file in stages/ and one line here. */
#include "stage.h"

#include <string.h>

extern const stage_type stage_synth_smooth;
extern const stage_type stage_synth;
extern const stage_type stage_import_hdf5;
extern const stage_type stage_import_tiff;
extern const stage_type stage_normalize;
extern const stage_type stage_crop;
extern const stage_type stage_fuse_mean;
extern const stage_type stage_fuse_median;
extern const stage_type stage_filter_gaussian;
extern const stage_type stage_filter_median;
extern const stage_type stage_fnsm;
extern const stage_type stage_deconv_rl;
extern const stage_type stage_denoise_train;
extern const stage_type stage_denoise_apply;
extern const stage_type stage_n2n_train;
extern const stage_type stage_n2n_apply;
extern const stage_type stage_cnn_motion;
extern const stage_type stage_import_model;
extern const stage_type stage_metrics;
extern const stage_type stage_summarize;
extern const stage_type stage_seg_score;
extern const stage_type stage_segment3d;
extern const stage_type stage_psf;
extern const stage_type stage_register_rigid;
extern const stage_type stage_interp_linear;
extern const stage_type stage_interp_cubic;
extern const stage_type stage_siren_fuse;
extern const stage_type stage_siren_interplane;
extern const stage_type stage_siren_render;

static const stage_type *const table[] = {
    &stage_synth_smooth,
    &stage_synth,
    &stage_import_hdf5,
    &stage_import_tiff,
    &stage_normalize,
    &stage_crop,
    &stage_fuse_mean,
    &stage_fuse_median,
    &stage_filter_gaussian,
    &stage_filter_median,
    &stage_fnsm,
    &stage_deconv_rl,
    &stage_denoise_train,
    &stage_denoise_apply,
    &stage_n2n_train,
    &stage_n2n_apply,
    &stage_cnn_motion,
    &stage_import_model,
    &stage_metrics,
    &stage_summarize,
    &stage_seg_score,
    &stage_segment3d,
    &stage_psf,
    &stage_register_rigid,
    &stage_interp_linear,
    &stage_interp_cubic,
    &stage_siren_fuse,
    &stage_siren_interplane,
    &stage_siren_render,
    NULL,
};

const stage_type *const *stage_types_all(void) { return table; }

const stage_type *stage_type_find(const char *name)
{
    for (const stage_type *const *t = table; *t; t++)
        if (!strcmp((*t)->name, name)) return *t;
    return NULL;
}
