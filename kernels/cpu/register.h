/* The CPU registration and plane-combination kernels (kernels/cpu/xcorr.c,
 * shift.c, wsum.c) as the dispatch table in kernels/cpu/table.c takes them,
 * and the FFTW planner lock. Internal to kernels/. */
#ifndef SS_KERNELS_CPU_REGISTER_H
#define SS_KERNELS_CPU_REGISTER_H

#include "kernels.h"

xcorr_state *cpu_xcorr_new(int64_t nz, int64_t ny, int64_t nx, const xcorr_opts *o);
void cpu_xcorr_free(xcorr_state *s);
void cpu_xcorr_reference_f32(xcorr_state *s, const float *ref);
void cpu_xcorr_find_f32(xcorr_state *s, const float *mov, double shift[3], double *peak);
int cpu_shift_f32(float *vol, int64_t nz, int64_t ny, int64_t nx, const double shift[3], int interp, int edge);
void cpu_weighted_sum_f32(const float *const *x, const double *w, int n, size_t len, float *out);

/* FFTW's planner is not thread-safe (only fftwf_execute is): every
 * fftwf_plan_* and fftwf_destroy_plan call goes between these, so kernels
 * may plan from any thread. One process-wide lock: FFTW's planner state is
 * global, so every caller in the process has to share it. */
void cpu_fftw_lock(void);
void cpu_fftw_unlock(void);

#endif
