/* The CPU dispatch table: the reference every other backend is checked
 * against. */
#include "cpu.h"

static const kernels cpu_table = {
    .name = "cpu",
    .fuse_mean_f32 = cpu_fuse_mean_f32,
    .fuse_median_f32 = cpu_fuse_median_f32,
    .affine_f32 = cpu_affine_f32,
    .count_nonfinite_f32 = cpu_count_nonfinite_f32,
    .minmax_f32 = cpu_minmax_f32,
    .gauss_blur3d_f32 = cpu_gauss_blur3d_f32,
};

const kernels *kernels_cpu(void)
{
    return &cpu_table;
}
