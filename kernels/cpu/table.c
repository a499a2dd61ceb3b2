/* The CPU dispatch table: the reference every other backend is checked
 * against. */
#include "cpu.h"
#include "nn.h"
#include "quality.h"
#include "register.h"
#include "siren_cpu.h"

static const char *const none_filled[] = {NULL};

static const kernels cpu_table = {
    .name = "cpu",
    .filled = none_filled,
    .fuse_mean_f32 = cpu_fuse_mean_f32,
    .fuse_median_f32 = cpu_fuse_median_f32,
    .affine_f32 = cpu_affine_f32,
    .count_nonfinite_f32 = cpu_count_nonfinite_f32,
    .minmax_f32 = cpu_minmax_f32,
    .gauss_blur3d_f32 = cpu_gauss_blur3d_f32,
    .median_filter_plane_f32 = cpu_median_filter_plane_f32,
    .sq_diff_sum_f32 = cpu_sq_diff_sum_f32,
    .ssim2d_f32 = cpu_ssim2d_f32,
    .ssim3d_plane_f32 = cpu_ssim3d_plane_f32,
    .xcorr_new = cpu_xcorr_new,
    .xcorr_free = cpu_xcorr_free,
    .xcorr_reference_f32 = cpu_xcorr_reference_f32,
    .xcorr_find_f32 = cpu_xcorr_find_f32,
    .shift_f32 = cpu_shift_f32,
    .weighted_sum_f32 = cpu_weighted_sum_f32,
    .siren_loss_grad = siren_cpu_loss_grad,
    .siren_eval = siren_cpu_eval,
    .adam_step = adam_cpu_step,
    .siren_work_new = siren_cpu_work_new,
    .siren_work_free = siren_cpu_work_free,
    .siren_work_kernel = siren_cpu_work_kernel,
    .spectrum_new = cpu_spectrum_new,
    .spectrum_free = cpu_spectrum_free,
    .spectrum_len = cpu_spectrum_len,
    .spectrum_logmag = cpu_spectrum_logmag,
    .spectrum_mse = cpu_spectrum_mse,
    .fmask_new = cpu_fmask_new,
    .fmask_free = cpu_fmask_free,
    .fmask_radial_power = cpu_fmask_radial_power,
    .fmask_apply = cpu_fmask_apply,
    .fmask_cutoff_grad = cpu_fmask_cutoff_grad,
    .rl_new = cpu_rl_new,
    .rl_free = cpu_rl_free,
    .rl_step_f32 = cpu_rl_step_f32,
    .rl_bytes = cpu_rl_bytes,
    .conv_new = cpu_conv_new,
    .conv_free = cpu_conv_free,
    .conv_impl = cpu_conv_impl,
    .conv_fwd = cpu_conv_fwd,
    .conv_bwd_data = cpu_conv_bwd_data,
    .conv_bwd_weights = cpu_conv_bwd_weights,
    .maxpool2_f32 = cpu_maxpool2_f32,
    .maxpool2_bwd_f32 = cpu_maxpool2_bwd_f32,
    .upsample2_f32 = cpu_upsample2_f32,
    .upsample2_bwd_f32 = cpu_upsample2_bwd_f32,
    .leaky_relu_f32 = cpu_leaky_relu_f32,
    .leaky_relu_bwd_f32 = cpu_leaky_relu_bwd_f32,
    .chan_copy_f32 = cpu_chan_copy_f32,
    .mask_scale_f32 = cpu_mask_scale_f32,
    .mse_grad_f32 = cpu_mse_grad_f32,
    .sgd_step = cpu_sgd_step,
};

const kernels *kernels_cpu(void)
{
    return &cpu_table;
}
