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

typedef struct kernels {
    const char *name; /* "cpu" or "cuda" */

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
} kernels;

const kernels *kernels_cpu(void);
/* The CUDA table, or NULL when not built or no device is usable. */
const kernels *kernels_cuda(void);

/* ---- exact and streaming percentiles (CPU, multi-pass over a stream) ---- */

/* Percentiles with numpy's default ('linear') interpolation between order
 * statistics, over a stream of float values fed in any number of pieces.
 *   exact:     the result equals numpy.percentile; floats take 2 passes over
 *              the data (radix selection on the value bits), memory 512 KiB
 *              plus 256 KiB per distinct 16-bit key bin holding a needed
 *              order statistic (at most 8.5 MiB for 16 quantiles, usually
 *              about 1 MiB). One deliberate difference: where the float32
 *              difference of the two bracketing values overflows (numpy then
 *              returns Inf or NaN), this takes the difference in double.
 *   streaming: 1 pass, 8 MiB (a 2^20-bin histogram of the top key bits).
 *              Each order statistic is replaced by its value truncated toward
 *              zero to 11 mantissa bits (exact for integers below 4096), so
 *              |est - exact| <= 2^-11 * max(|lo|,|hi|) + 2^-137, where lo, hi
 *              are the two order statistics numpy interpolates between (the
 *              absolute term only matters for subnormal values).
 * Usage:
 *   pct_state *p = pct_new(nq, q, exact);
 *   while (pct_need_pass(p)) { for each piece: pct_feed(p, x, n); pct_end_pass(p); }
 *   pct_result(p, i);
 * Non-finite values must be rejected before feeding. pct_new returns NULL
 * when nq is not 1..16, a q is outside [0, 100] or memory runs out.
 * pct_result is NaN for N == 0, before the last pass has ended, and when the
 * second pass saw a different number of values than the first or its memory
 * ran out. pct_count is the number of values fed in the first pass. */
typedef struct pct_state pct_state;
pct_state *pct_new(int nq, const double *q_percent, int exact);
void pct_free(pct_state *p);
int pct_need_pass(const pct_state *p);
void pct_feed(pct_state *p, const float *x, size_t n);
void pct_end_pass(pct_state *p);
double pct_result(const pct_state *p, int i);
uint64_t pct_count(const pct_state *p);

/* ---- random numbers (deterministic, serialisable state) ---- */

/* xoshiro256** seeded through splitmix64. The state is plain data so that
 * checkpoints can save it. */
typedef struct {
    uint64_t s[4];
} ss_rng;
void rng_seed(ss_rng *r, uint64_t seed);
uint64_t rng_next(ss_rng *r);
double rng_uniform(ss_rng *r);       /* [0, 1) */
double rng_normal(ss_rng *r);        /* standard normal (polar method) */
/* Exact: Knuth's product of uniforms below lambda 30, PTRS (Hormann 1993)
 * above. 0 for lambda <= 0 or NaN. */
uint64_t rng_poisson(ss_rng *r, double lambda);
/* An independent stream: rng_seed(out, hash(seed, stream)). */
void rng_split(ss_rng *out, uint64_t seed, uint64_t stream);

/* ---- image quality helpers (kernels/cpu/ssim.c, spectrum.c) ---- */

/* gaussian: sigma 1.5, truncate 3.5 (11 taps), population covariance (Wang
 * et al.; skimage gaussian_weights=True, use_sample_covariance=False);
 * otherwise a uniform 7-wide window with sample covariance (skimage's
 * default). dims (2 or 3) sets NP for the sample covariance. Returns 0, or -1
 * for other dims. */
int ssim_spec_init(ssim_spec *s, int gaussian, int dims, double data_range, double k1, double k2);
/* Doubles of work ssim2d_f32 / ssim3d_plane_f32 need (0 if the plane is
 * smaller than the window): about 5 ny nx. */
size_t ssim_work_len(int win, int64_t ny, int64_t nx);

/* Log-magnitude spectra log(1 + |fft2(plane)|) of ny x nx float planes
 * (unnormalised transform, as numpy.fft.fft2), and the mean over the full
 * frequency grid of the squared difference of two of them. Only the
 * non-redundant half is stored: spectrum_len(s) doubles. FFTW single
 * precision with the plane's mean removed before the transform (the DC term
 * comes from a double sum). spectrum_new returns NULL when memory runs out
 * or a side exceeds 2^31 - 1; plans are made under a lock, so states may be
 * created from any thread. One state is used by one thread at a time. */
typedef struct spectrum_state spectrum_state;
spectrum_state *spectrum_new(int64_t ny, int64_t nx);
void spectrum_free(spectrum_state *s);
size_t spectrum_len(const spectrum_state *s);
void spectrum_logmag(spectrum_state *s, const float *plane, double *out);
double spectrum_mse(const spectrum_state *s, const double *a, const double *b);

/* ---- two-photon PSFs and phantoms (kernels/cpu/psf.c, fftconv.c, phantom.c) ---- */

/* FWHM of the two-photon PSF (excitation intensity squared) by the Gaussian
 * fits of Zipfel et al. 2003, in the units of wavelength: lateral and axial.
 * n: refractive index of the immersion medium (na < n). */
void psf2p_fwhm(double na, double wavelength, double n, double *fwhm_xy, double *fwhm_z);
/* The scalar Debye two-photon PSF, |integral over the aperture|^4 with the
 * aplanatic sqrt(cos) apodisation, sampled on an nz x ny x nx grid of
 * spacing dz, dy, dx (lengths in the units of wavelength) centred on
 * (nz/2, ny/2, nx/2), normalised to sum 1. Returns 0, or -1 for bad
 * arguments or when memory runs out. */
int psf2p_debye(double na, double wavelength, double n, int64_t nz, int64_t ny, int64_t nx, double dz,
                double dy, double dx, float *out);

/* Circular convolution of ny x nx planes with nk kernels of kh x kw (odd
 * sizes, centred, kh <= ny, kw <= nx) by FFT: spectra of planes
 * (fftconv2_spectrum_len floats) are multiplied with kernel k and summed
 * into an accumulator, which fftconv2_inverse turns back into a plane
 * (destroying the accumulator). fftconv2_new returns NULL when memory runs
 * out or a size is unusable; plans are made under the FFTW planner lock. */
typedef struct fftconv2 fftconv2;
fftconv2 *fftconv2_new(int64_t ny, int64_t nx, int nk, const float *kern, int64_t kh, int64_t kw);
void fftconv2_free(fftconv2 *c);
size_t fftconv2_spectrum_len(const fftconv2 *c);
void fftconv2_forward(const fftconv2 *c, const float *plane, float *spec);
void fftconv2_accumulate(const fftconv2 *c, float *acc, const float *spec, int k);
void fftconv2_inverse(const fftconv2 *c, float *acc, float *out);

/* Geometric phantoms in micrometres, coordinates (z, y, x). Solids combine
 * by maximum (compartments filled with one dye); Voronoi cell membranes add
 * on top (a second stain). Textures multiply a value by 1 + tex T(p), T an
 * average of random plane waves with wavelengths in [tex_lo, tex_hi]
 * (in [-1, 1]). Labels must be >= 1. The add functions return 0, or -1 when
 * memory runs out. */
typedef struct phantom phantom;
phantom *phantom_new(void); /* NULL when memory runs out; free with phantom_free */
void phantom_free(phantom *p);
/* A capsule (a sphere when a == b) of the given radius. */
int phantom_add_capsule(phantom *p, const double a[3], const double b[3], double radius, double value,
                        int32_t label);
/* An ellipsoid with semi-axes semi[i] along column i of rot (3 x 3, row
 * major, orthonormal). */
int phantom_add_ellipsoid(phantom *p, const double c[3], const double semi[3], const double rot[9], double value,
                          double tex, double tex_lo, double tex_hi, uint64_t seed, int32_t label);
/* Membranes between the Voronoi cells of n seeds (copied): sheets of the
 * given thickness. label_cells: points in no solid get their cell's index
 * + 1 as label. */
int phantom_set_cells(phantom *p, const double *seeds, int n, double thickness, double value, double tex,
                      double tex_lo, double tex_hi, uint64_t seed, int label_cells);
typedef struct {
    int64_t ny, nx; /* pixels */
    double y0, x0;  /* centre of pixel (0, 0) */
    double dy, dx;  /* pixel size */
    int sub;        /* samples per pixel along y and x */
} phantom_plane;
/* out[y][x] = mean intensity over [z0, z1) x the pixel, from nzs x sub x sub
 * samples with edges anti-aliased over one sample spacing. Returns 0, or -1
 * when memory runs out. Deterministic for any thread count. */
int phantom_render_box(const phantom *p, const phantom_plane *g, double z0, double z1, int nzs, float *out);
/* The label of the solid containing each pixel centre of plane z (the one
 * reaching deepest where solids overlap), else the cell's label (with
 * label_cells), else 0. */
int phantom_labels(const phantom *p, const phantom_plane *g, double z, int32_t *out);
/* Detector counts round(gain Poisson(photons) + Normal(0, read_noise)),
 * clipped to 0..65535, for an ny x nx plane (kernels/cpu/noise.c). Each row
 * draws from its own stream of (seed, stream, row): the same counts for any
 * thread count. Returns how many values were clipped. */
int64_t noise_poisson_gauss_u16(const float *photons, int64_t ny, int64_t nx, double gain, double read_noise,
                                uint64_t seed, uint64_t stream, uint16_t *out);

#endif
