/* Numeric kernels behind one dispatch table.
 *
 * kernels/cpu/ is the reference and always built; kernels/cuda/ is built where
 * nvcc is found and fills the same table. Stages call kernels only through a
 * `const kernels *` they get from ctx_kernels(), so the device is chosen in
 * one place. Kernels depend on nothing else in the project and never fail
 * except where a return value says so. Float arrays are contiguous,
 * C order. */
#ifndef SS_KERNELS_H
#define SS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "siren.h"

/* The CPU-only helpers no backend replaces (percentiles over a stream,
 * random numbers, PSFs and phantoms, detector noise) are in kernels/host.h. */

/* The SSIM window and constants (Wang et al. 2004) as
 * skimage.metrics.structural_similarity uses them; ssim_spec_init fills it. */
#define SSIM_MAX_WIN 31
typedef struct {
    int win;                /* odd window width */
    double w[SSIM_MAX_WIN]; /* symmetric 1-D weights summing to 1; the window is their outer product */
    double cov_norm;        /* 1 (population covariance) or NP / (NP - 1), NP = win^dims */
    double c1, c2;          /* (K1 L)^2 and (K2 L)^2, L the data range */
} ssim_spec;

/* Translation registration (kernels/cpu/xcorr.c, shift.c). */
typedef struct {
    int hann;         /* subtract the mean, then multiply by a separable periodic Hann window */
    int phase;        /* 1: normalised cross-power spectrum (phase correlation); 0: plain cross-correlation */
    int upsample;     /* >= 1: shifts in steps of 1/upsample px (Guizar-Sicairos upsampled DFT) */
    double max_shift; /* > 0: only shifts with |s_d| <= max_shift on every axis are considered */
} xcorr_opts;
typedef struct xcorr_state xcorr_state;
enum { SHIFT_FOURIER, SHIFT_LINEAR, SHIFT_CUBIC };
enum { EDGE_REFLECT, EDGE_ZERO, EDGE_NEAREST };

typedef struct spectrum_state spectrum_state;
typedef struct fmask_state fmask_state;
typedef struct rl_state rl_state;

/* A 2-D convolution layer over a batch of NCHW float tensors, as PyTorch's
 * nn.Conv2d(cin, cout, k, stride, padding=k // 2) with k odd (output
 * ceil(h / stride) x ceil(w / stride)), or with transposed set as
 * nn.ConvTranspose2d(cin, cout, k, stride) giving h stride x w stride: k ==
 * stride (padding 0), or k odd (padding k // 2, output_padding stride - 1).
 * Weights as PyTorch stores them: cout x cin x k x k, transposed cin x cout x
 * k x k; bias cout. */
typedef struct {
    int n, cin, h, w; /* input batch: n x cin x h x w */
    int cout, k;      /* output channels, kernel size */
    int stride;       /* 1 or 2 */
    int transposed;
    int act;          /* fwd applies a leaky ReLU of slope `slope` after the bias
                         (as leaky_relu_f32 would, in the same pass) */
    float slope;
    int bf16;         /* products in bfloat16, sums in float32, where the CPU has
                         AVX512-BF16 (conv_impl then says "gemm-bf16" or
                         "dnnl-bf16"); float32 elsewhere. Relative error about
                         2^-8 of the sum of |w x| */
} conv_shape;
typedef struct conv_state conv_state;
/* The output size, or -1 for a shape the layers do not take (k even other
 * than a transposed k == stride, k above 15, stride other than 1 or 2). */
int conv_out_size(const conv_shape *s, int *oh, int *ow);

/* upsample2 modes */
enum { UPSAMPLE_NEAREST, UPSAMPLE_BILINEAR };

typedef struct kernels {
    const char *name; /* "cpu" or "cuda" */
    /* Entries this table took from the CPU table because its backend lacks
     * them (kernels_fill); NULL-terminated, empty for the CPU table. */
    const char *const *filled;

    /* Fusion of R repeats: rep holds R consecutive arrays of n floats.
     * Non-finite inputs propagate (the stages reject them earlier). */
    void (*fuse_mean_f32)(const float *rep, int R, size_t n, float *out);
    /* Median over R; for even R the mean of the two middle values (numpy). */
    void (*fuse_median_f32)(const float *rep, int R, size_t n, float *out);

    /* x = (x - lo) * scale computed in double, then clamped to [0, 1] when
     * clip, and rounded to float. */
    void (*affine_f32)(float *x, size_t n, double lo, double scale, int clip);

    /* Counts NaN and +-Inf values. */
    size_t (*count_nonfinite_f32)(const float *x, size_t n);
    /* Minimum and maximum (of finite values; both NaN if none). -0 counts
     * as below +0, so the result does not depend on the thread count. */
    void (*minmax_f32)(const float *x, size_t n, float *mn, float *mx);

    /* In-place separable Gaussian blur of a ZYX volume, sigmas in voxels
     * (0: no blur along that axis), edges by reflection (scipy 'reflect'),
     * kernel truncated at 4 sigma. Matches scipy.ndimage.gaussian_filter(
     * vol, (sz, sy, sx), mode='reflect', truncate=4.0) to float rounding:
     * radius int(4 sigma + 0.5), sigma <= 1e-15 (or NaN) skips the axis,
     * axes shorter than the kernel reflect repeatedly. Sigmas above 2^28 act
     * as 2^28. Uses one line buffer per thread; if even those cannot be
     * allocated it aborts, having no error return. */
    void (*gauss_blur3d_f32)(float *vol, int64_t nz, int64_t ny, int64_t nx,
                             double sz, double sy, double sx);

    /* One output plane of a median filter of odd size sz x sy x sx (each at
     * most 7), scipy.ndimage.median_filter(mode='reflect'): planes are the sz
     * input planes around it, reflected in z by the caller; y and x reflect
     * here. Exact: the same on every backend and thread count. */
    void (*median_filter_plane_f32)(const float *const *planes, int sz, int64_t ny, int64_t nx, int sy, int sx,
                                    float *out);
    /* Sum of (a[i] - b[i])^2 in double; fixed blocks added in order, so the
     * result does not depend on the thread count. */
    double (*sq_diff_sum_f32)(const float *a, const float *b, size_t n);
    /* SSIM map of two ny x nx planes over the positions skimage averages
     * (edges cropped by (win - 1) / 2, so every window lies inside the
     * plane): sums[0] = sum of the map, sums[1] = sum of its squares, over
     * (ny - win + 1) (nx - win + 1) values. Moments are filtered in double.
     * work: ssim_work_len(win, ny, nx) doubles. Deterministic for any thread
     * count. Needs ny, nx >= win. */
    void (*ssim2d_f32)(const ssim_spec *s, const float *a, const float *b, int64_t ny, int64_t nx,
                       double *work, double sums[2]);
    /* The same with a win^3 window centred on the middle one of win
     * consecutive planes a[0..win-1], b[0..win-1]: a sliding window over z
     * gives the 3D SSIM map plane by plane. */
    void (*ssim3d_plane_f32)(const ssim_spec *s, const float *const *a, const float *const *b, int64_t ny,
                             int64_t nx, double *work, double sums[2]);

    /* Translation between volumes of one shape (nz = 1: images), as
     * skimage.registration.phase_cross_correlation(ref, mov,
     * upsample_factor, normalization='phase' or None) finds it: coarse
     * peak of |IFFT(F_ref conj(F_mov))| (first in C order on ties), then
     * the upsampled DFT over +-0.75 px around it. shift[] (z, y, x) is what
     * moving must be shifted by to match the reference (0 on axes of
     * length 1); peak is |correlation| / N for phase correlation (1: pure
     * translation) and the cosine similarity of the two (windowed) arrays
     * at the shift otherwise. xcorr_new returns NULL when memory or an
     * FFTW plan cannot be had; set the reference before finding shifts. */
    xcorr_state *(*xcorr_new)(int64_t nz, int64_t ny, int64_t nx, const xcorr_opts *o);
    void (*xcorr_free)(xcorr_state *s);
    void (*xcorr_reference_f32)(xcorr_state *s, const float *ref);
    void (*xcorr_find_f32)(xcorr_state *s, const float *mov, double shift[3], double *peak);
    /* vol(x) <- vol(x - shift) in place, as scipy.ndimage.shift(vol, shift,
     * order=1 or 3, mode='reflect' | 'grid-constant' | 'nearest') does
     * (cubic: B-spline with exact prefilter), or SHIFT_FOURIER as
     * ifftn(scipy.ndimage.fourier_shift(fftn(vol), shift)).real (periodic;
     * edge ignored). Axes with shift 0 are left untouched. Returns 0, or -1
     * when memory or an FFTW plan cannot be had (vol unchanged). */
    int (*shift_f32)(float *vol, int64_t nz, int64_t ny, int64_t nx, const double shift[3], int interp,
                     int edge);
    /* out[i] = sum_j w[j] x[j][i], accumulated in double in j order. */
    void (*weighted_sum_f32)(const float *const *x, const double *w, int n, size_t len, float *out);

    /* SIREN (kernels/siren.h): loss and gradient of a batch, evaluation on a
     * grid, and the Adam update. */
    double (*siren_loss_grad)(const siren_arch *a, const float *params, const siren_batch *b, float *grad,
                              siren_work *w);
    void (*siren_eval)(const siren_arch *a, const float *params, const siren_grid *g, const int64_t *index,
                       int64_t start, int64_t n, float *out, siren_work *w);
    void (*adam_step)(float *p, const float *g, float *m, float *v, size_t n, int64_t t, float lr, float beta1,
                      float beta2, float eps);
    /* The workspace siren_loss_grad and siren_eval use (the backend's own
     * buffers; threads: how many CPU threads, results bit-identical for the
     * same count). NULL when memory runs out. The kernel path it runs, e.g.
     * "avx512" or "blas" on the CPU, for the fit's metadata. */
    siren_work *(*siren_work_new)(const siren_arch *a, int threads);
    void (*siren_work_free)(siren_work *w);
    const char *(*siren_work_kernel)(const siren_work *w);

    /* Log-magnitude spectra log(1 + |fft2(plane)|) of ny x nx float planes
     * (unnormalised transform, as numpy.fft.fft2), and the mean over the full
     * frequency grid of the squared difference of two of them. Only the
     * non-redundant half is stored: spectrum_len(s) doubles. FFTW single
     * precision with the plane's mean removed before the transform (the DC term
     * comes from a double sum). spectrum_new returns NULL when memory runs out
     * or a side exceeds 2^31 - 1; plans are made under a lock, so states may be
     * created from any thread. One state is used by one thread at a time. */
    spectrum_state *(*spectrum_new)(int64_t ny, int64_t nx);
    void (*spectrum_free)(spectrum_state *s);
    size_t (*spectrum_len)(const spectrum_state *s);
    void (*spectrum_logmag)(spectrum_state *s, const float *plane, double *out);
    double (*spectrum_mse)(const spectrum_state *s, const double *a, const double *b);

    /* Radial Fourier masks of ny x nx planes (Fourier noise suppression),
     * radii in units of the Nyquist frequency (1 at either axis's Nyquist,
     * sqrt(2) in the corners; kernels/cpu/fourier_mask.c). fmask_new returns
     * NULL when memory runs out or FFTW has no plan. radial_power adds
     * |fft2(plane)|^2 / (ny nx) over each of nbins radius bins of width
     * sqrt(2) / nbins to power[] and the number of frequencies to count[],
     * in a fixed order. apply: out = ifft2(fft2(plane) * mask(r)), the mask 1
     * up to cutoff - rolloff, 0 from cutoff + rolloff, a raised cosine
     * between; plane and out may be the same. */
    fmask_state *(*fmask_new)(int64_t ny, int64_t nx);
    void (*fmask_free)(fmask_state *s);
    void (*fmask_radial_power)(fmask_state *s, const float *plane, int nbins, double *power, double *count);
    void (*fmask_apply)(fmask_state *s, const float *plane, double cutoff, double rolloff, float *out);
    /* For the mask as a network layer with a trainable cut-off: the
     * derivative of <fmask_apply(plane), dy> with respect to cutoff (0 when
     * rolloff is 0); the gradient with respect to the plane is
     * fmask_apply(dy) (the mask is real and symmetric). */
    double (*fmask_cutoff_grad)(fmask_state *s, const float *plane, const float *dy, double cutoff, double rolloff);

    /* Richardson-Lucy deconvolution on a periodic nz x ny x nx grid
     * (kernels/cpu/deconv.c; the caller pads for other edges). rl_new takes
     * a PSF of pz x py x px (odd sizes, centred on (pz/2, py/2, px/2), at
     * most the grid, non-negative, summing to 1) and keeps its transform;
     * NULL for sizes it refuses or when memory or an FFTW plan cannot be
     * had. rl_step_f32 is one iteration in place,
     *   u <- max(0, u (H^T (data / max(H u, floor))) / (1 - tv_lambda div(grad u / |grad u|_e)))
     * with H the circular convolution with the PSF, H^T the correlation,
     * and the TV term (Dey et al. 2006; forward differences for the
     * gradient, backward for the divergence, |g|_e = sqrt(|g|^2 + tv_eps^2),
     * 0 / 0 read as 0) left out at tv_lambda 0; tv_lambda below 1/6 keeps the divisor positive. sums
     * receives sum (u_new - u)^2 and sum u^2 over the box lo <= (z, y, x) <
     * hi, in double in a fixed order. Returns 0, or -1 when memory runs out
     * (u unchanged). Results do not depend on the thread count. rl_bytes:
     * the memory a state of that grid holds, with or without the TV term. */
    rl_state *(*rl_new)(int64_t nz, int64_t ny, int64_t nx, const float *psf, int64_t pz, int64_t py, int64_t px);
    void (*rl_free)(rl_state *s);
    int (*rl_step_f32)(rl_state *s, const float *data, float *u, double tv_lambda, double tv_eps, float floor,
                       const int64_t lo[3], const int64_t hi[3], double sums[2]);
    size_t (*rl_bytes)(int64_t nz, int64_t ny, int64_t nx, int tv);

    /* ---- network layers (kernels/cpu/conv.c, layers.c); tensors NCHW ---- */

    /* A convolution layer of one shape (conv_shape): NULL for a shape
     * conv_out_size refuses or when memory runs out. The state holds the
     * workspace of as many threads as OpenMP may use when it is made; one
     * state is used by one caller at a time. impl names the method the
     * shape got ("gemm", or "dnnl" for oneDNN's direct convolutions where it
     * is built; kernels/cpu/conv.c has the rule). fwd: y = conv(x, w) + b
     * (b may be NULL). bwd_data: dx = the gradient with respect to x given
     * dy. bwd_weights: dw (and db unless NULL) = the gradients with respect
     * to w and b summed over the batch; they overwrite. fwd and bwd_data do not depend on the thread
     * count; bwd_weights is bit-identical for a given thread count and
     * within float rounding across counts. */
    conv_state *(*conv_new)(const conv_shape *s);
    void (*conv_free)(conv_state *s);
    const char *(*conv_impl)(const conv_state *s);
    void (*conv_fwd)(conv_state *s, const float *x, const float *w, const float *b, float *y);
    void (*conv_bwd_data)(conv_state *s, const float *dy, const float *w, float *dx);
    void (*conv_bwd_weights)(conv_state *s, const float *x, const float *dy, float *dw, float *db);

    /* 2 x 2 max pooling of nc planes of h x w (odd sizes drop the last row
     * or column, as PyTorch's MaxPool2d(2)): y is nc x h/2 x w/2, arg the
     * index in its plane of each maximum (the first in row order on ties;
     * NaN wins). bwd: dx = dy routed to those positions, 0 elsewhere. */
    void (*maxpool2_f32)(const float *x, int64_t nc, int h, int w, float *y, int32_t *arg);
    void (*maxpool2_bwd_f32)(const float *dy, const int32_t *arg, int64_t nc, int h, int w, float *dx);
    /* x2 upsampling of nc planes of h x w to 2h x 2w: UPSAMPLE_NEAREST or
     * UPSAMPLE_BILINEAR as torch.nn.functional.interpolate(scale_factor=2,
     * mode='bilinear', align_corners=False); bwd its adjoint (dx: h x w). */
    void (*upsample2_f32)(const float *x, int64_t nc, int h, int w, int mode, float *y);
    void (*upsample2_bwd_f32)(const float *dy, int64_t nc, int h, int w, int mode, float *dx);
    /* In place: x = x for x > 0, slope x otherwise (slope 0: ReLU). bwd:
     * dy *= 1 where y > 0, slope where not, from the layer's output y. */
    void (*leaky_relu_f32)(float *x, size_t n, float slope);
    void (*leaky_relu_bwd_f32)(const float *y, float *dy, size_t n, float slope);
    /* Channels src[:, s0 : s0 + c] of an n x csrc x hw tensor to dst[:, d0 :
     * d0 + c] of an n x cdst x hw tensor (concatenation for skip connections,
     * and its gradient); accumulate adds instead of copying. */
    void (*chan_copy_f32)(const float *src, int64_t n, int csrc, int s0, int c, int64_t hw, float *dst, int cdst,
                          int d0, int accumulate);
    /* x[i] = keep[i] ? x[i] scale : 0 (dropout with a mask drawn on the
     * host, scale 1 / (1 - rate); the same call is its backward). */
    void (*mask_scale_f32)(float *x, const uint8_t *keep, size_t n, float scale);
    /* Mean squared error: dy = scale (y - t) (dy may be NULL); returns the
     * sum of (y - t)^2 in double, in fixed blocks added in order. */
    double (*mse_grad_f32)(const float *y, const float *t, size_t n, float scale, float *dy);
    /* torch.optim.SGD: g' = g + weight_decay p; v = momentum v + g'; p -=
     * lr v (v starts at 0). */
    void (*sgd_step)(float *p, const float *g, float *v, size_t n, float lr, float momentum, float weight_decay);
} kernels;

/* Every entry of the table after name and filled, for code that walks them
 * (kernels_fill, tests/kernels/backend_ops.c). A new entry goes here too;
 * a static assertion in kernels/dispatch.c keeps the list complete. */
#define KERNEL_ENTRIES(X)                                                                                   \
    X(fuse_mean_f32) X(fuse_median_f32) X(affine_f32) X(count_nonfinite_f32) X(minmax_f32) \
    X(gauss_blur3d_f32) X(median_filter_plane_f32) X(sq_diff_sum_f32) X(ssim2d_f32) X(ssim3d_plane_f32) X(xcorr_new) X(xcorr_free) \
    X(xcorr_reference_f32) X(xcorr_find_f32) X(shift_f32) X(weighted_sum_f32) X(siren_loss_grad) \
    X(siren_eval) X(adam_step) X(siren_work_new) X(siren_work_free) X(siren_work_kernel) X(spectrum_new) \
    X(spectrum_free) X(spectrum_len) X(spectrum_logmag) X(spectrum_mse) \
    X(fmask_new) X(fmask_free) X(fmask_radial_power) X(fmask_apply) X(fmask_cutoff_grad) \
    X(rl_new) X(rl_free) X(rl_step_f32) X(rl_bytes) \
    X(conv_new) X(conv_free) X(conv_impl) X(conv_fwd) X(conv_bwd_data) X(conv_bwd_weights) \
    X(maxpool2_f32) X(maxpool2_bwd_f32) X(upsample2_f32) X(upsample2_bwd_f32) X(leaky_relu_f32) \
    X(leaky_relu_bwd_f32) X(chan_copy_f32) X(mask_scale_f32) X(mse_grad_f32) X(sgd_step)

const kernels *kernels_cpu(void);
/* The CUDA table, or NULL when not built or no device is usable. Entries
 * it lacks are the CPU's (listed in its `filled`). */
const kernels *kernels_cuda(void);
/* Sets every NULL entry of t to ref's and lists their names in filled
 * (room for every entry plus the NULL end); t->filled is pointed at it.
 * Returns how many were filled. */
int kernels_fill(kernels *t, const kernels *ref, const char **filled);

/* ---- the SSIM window of the ssim entries (kernels/cpu/ssim.c) ---- */

/* gaussian: sigma 1.5, truncate 3.5 (11 taps), population covariance (Wang
 * et al.; skimage gaussian_weights=True, use_sample_covariance=False);
 * otherwise a uniform 7-wide window with sample covariance (skimage's
 * default). dims (2 or 3) sets NP for the sample covariance. Returns 0, or -1
 * for other dims. */
int ssim_spec_init(ssim_spec *s, int gaussian, int dims, double data_range, double k1, double k2);
/* Doubles of work ssim2d_f32 / ssim3d_plane_f32 need (0 if the plane is
 * smaller than the window): about 5 ny nx. */
size_t ssim_work_len(int win, int64_t ny, int64_t nx);

#endif
