/* Host helpers: CPU code no backend will replace, called directly (not
 * through the dispatch table): percentiles over a stream of planes, random
 * numbers with a serialisable state, two-photon PSFs, FFT convolution and
 * geometric phantoms for synthetic data, and detector noise. They depend on
 * nothing else in the project. */
#ifndef SS_KERNELS_HOST_H
#define SS_KERNELS_HOST_H

#include <stddef.h>
#include <stdint.h>

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

/* ---- PSF models for restoration (kernels/cpu/psf_models.c) ---- */

typedef enum { PSF_WIDEFIELD, PSF_CONFOCAL, PSF_TWO_PHOTON, PSF_LIGHT_SHEET } psf_model;
/* Gaussian standard deviations (lateral, axial; units of the wavelengths)
 * of a microscope's PSF: widefield and confocal (pinhole well below one
 * Airy unit) by the paraxial fits of Zhang et al. (Appl. Opt. 2007) at
 * emission lambda_em (confocal: and excitation lambda_ex); two-photon by
 * Zipfel et al. (psf2p_fwhm) at lambda_ex; light sheet: widefield detection
 * times a Gaussian sheet of waist lambda_ex / (pi na_ill) along z. */
void psf_model_sigma(psf_model m, double na, double lambda_em, double lambda_ex, double n, double na_ill,
                     double *sigma_xy, double *sigma_z);
/* A Gaussian on an nz x ny x nx grid centred at (nz/2, ny/2, nx/2),
 * standard deviations in voxels (0: a delta along that axis), sum 1.
 * 0, or -1 for bad arguments. */
int psf_gaussian3(int64_t nz, int64_t ny, int64_t nx, double sz, double sy, double sx, float *out);
/* h (nz x ny x nx, centred, voxel size from[3] z y x) resampled trilinearly
 * onto an n^3 grid of spacing `to`, centred; with rotate, the output's z and
 * x axes swapped (the axial direction along x: the PSF a lateral slice must
 * be blurred with to look axial). Sum 1. 0, or -1. */
int psf_resample(const float *h, int64_t nz, int64_t ny, int64_t nx, const double from[3], double to, int64_t n,
                 int rotate, float *out);
/* An isotropic PSF from h (n^3, centred): the radial profile of its central
 * lateral plane turned round the centre in 3D. Sum 1. 0, or -1. */
int psf_radial_iso(const float *h, int64_t n, float *out);
/* The split PSF of IsoNet: h_split with h_rot = h_iso * h_split, all n^3
 * and centred, by Tikhonov-regularised division in Fourier space (eps
 * relative to the largest |H_iso|^2), sum 1; it rings (negative lobes)
 * along axes where h_rot is no wider than h_iso. 0, or -1 for bad
 * arguments, memory, or a zero sum. */
int psf_split(const float *h_rot, const float *h_iso, int64_t n, double eps, float *out);

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

/* ---- 3D segmentation (kernels/cpu/threshold.c, fill_holes.c, edt.c,
 * watershed.c, label.c, seg.c) ----
 * Volumes are nz x ny x nx in C order; masks are uint8 (non-zero = set). */

/* The intermodes threshold of Prewitt & Mendelsohn as ImageJ's
 * AutoThresholder "Intermodes" computes it: while the histogram does not
 * have exactly two strict local maxima (among bins 1..n-2), replace it by
 * its 3-point running mean (0 outside the ends); then *t = floor((i + j) / 2)
 * for the two maxima i < j, bins 0..*t being the background class. Returns
 * the number of smoothing passes, -1 when the histogram has not become
 * bimodal after SEG_INTERMODES_MAX_PASSES (ImageJ's limit), -2 for n < 3 or
 * when memory runs out. */
#define SEG_INTERMODES_MAX_PASSES 10000
int threshold_intermodes(const double *hist, int n, int *t);
/* Background components (6-connected, as scipy.ndimage.binary_fill_holes'
 * default structure) that do not touch the volume's border become
 * foreground (1). Returns 0, or -1 when memory runs out. */
int fill_holes_u8(uint8_t *mask, int64_t nz, int64_t ny, int64_t nx);
/* Exact Euclidean distance of each set voxel to the nearest unset one, 0 on
 * unset voxels, with voxel spacing sampling[3] (z, y, x), as
 * scipy.ndimage.distance_transform_edt(mask, sampling); Felzenszwalb &
 * Huttenlocher's separable lower envelope of parabolas on squared
 * distances. Without any unset voxel every distance is +inf. Returns 0, or
 * -1 when memory runs out. */
int edt_f64(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, const double sampling[3], double *out);
/* The h-maxima of f as skimage.morphology.h_maxima(f, h) for float64: the
 * reconstruction by dilation (26-connected) of f - h - 2e-15 |f| under f,
 * and out = 1 where f - reconstruction >= h; all 0 when h exceeds
 * max(f) - min(f). Returns 0, or -1 when memory runs out. */
int hmaxima_f64(const double *f, int64_t nz, int64_t ny, int64_t nx, double h, uint8_t *out);
/* Connected components of the set voxels, connectivity 6 (faces, as
 * scipy.ndimage.label's default) or 26 (faces, edges, corners), numbered
 * 1..N in raster order of each component's first voxel (scipy's order); 0
 * elsewhere. Returns N, or -1 for another connectivity or when memory runs
 * out. */
int64_t label_u32(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, int connectivity, uint32_t *out);
/* Marker-based watershed (flooding) of img inside mask (NULL: everywhere),
 * as skimage.segmentation.watershed(img, markers, connectivity=1 or 3,
 * mask=mask): from the non-zero markers, the lowest voxel of the front is
 * taken next (ties: the earliest pushed; markers in raster order) and
 * gives its label to its unlabelled neighbours in the mask (connectivity 6
 * or 26). Voxels the flood never reaches stay 0. Returns 0, or -1 for
 * another connectivity or when memory runs out. */
int watershed_f64(const double *img, const uint32_t *markers, const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx,
                  int connectivity, uint32_t *out);
/* SEG of the cell tracking challenge (Maska et al. 2014): each reference
 * object R (label > 0 in ref) is matched to the predicted object S with
 * |R n S| > 0.5 |R| (found by a majority vote over R's voxels; label 0 is
 * no object) and scores |R n S| / |R u S|, else 0; seg is the mean over the
 * reference objects (NaN when there are none). Memory: 16 bytes per label
 * value up to the largest of either image. Returns 0, or -1 when memory
 * runs out. */
typedef struct {
    double seg;
    int64_t n_reference, n_matched;
} seg_result;
int seg_score(const uint32_t *ref, const uint32_t *pred, size_t n, seg_result *r);

#endif
