/* The CPU image-quality kernels (kernels/cpu/ssim.c, mse.c, spectrum.c), as the dispatch
 * table in kernels/cpu/table.c takes them. Internal to kernels/. */
#ifndef SS_KERNELS_CPU_QUALITY_H
#define SS_KERNELS_CPU_QUALITY_H

#include "kernels.h"

double cpu_sq_diff_sum_f32(const float *a, const float *b, size_t n);
void cpu_ssim2d_f32(const ssim_spec *s, const float *a, const float *b, int64_t ny, int64_t nx, double *work,
                    double sums[2]);
void cpu_ssim3d_plane_f32(const ssim_spec *s, const float *const *a, const float *const *b, int64_t ny, int64_t nx,
                          double *work, double sums[2]);
spectrum_state *cpu_spectrum_new(int64_t ny, int64_t nx);
void cpu_spectrum_free(spectrum_state *s);
size_t cpu_spectrum_len(const spectrum_state *s);
void cpu_spectrum_logmag(spectrum_state *s, const float *plane, double *out);
double cpu_spectrum_mse(const spectrum_state *s, const double *a, const double *b);
fmask_state *cpu_fmask_new(int64_t ny, int64_t nx);
void cpu_fmask_free(fmask_state *s);
void cpu_fmask_radial_power(fmask_state *s, const float *plane, int nbins, double *power, double *count);
void cpu_fmask_apply(fmask_state *s, const float *plane, double cutoff, double rolloff, float *out);
double cpu_fmask_cutoff_grad(fmask_state *s, const float *plane, const float *dy, double cutoff, double rolloff);
/* The mask's value at radius r (fourier_mask.c). */
double cpu_fmask_value(double r, double cutoff, double rolloff);

#endif
