/* 2-D convolution and transposed convolution as gathered matrix products.
 *
 * Every pass of both layers is one of two products with a gathered matrix
 * G(src): rows (c, ky, kx) over the channels of src and the taps of the
 * kernel, columns the pixels of an output grid.
 *   mul:   out[m][pix] = sum_r A[m][r] G[r][pix] (+ bias[m])
 *   wgrad: dA[m][r]   += sum_pix D[m][pix] G[r][pix]
 * with two gathers of the same geometry (kernel k, stride s, padding p):
 *   FWD: G[(c,ky,kx)][(gy,gx)] = src[c][gy s - p + ky][gx s - p + kx]
 *   TRN: G[(c,ky,kx)][(gy,gx)] = src[c][(gy + p - ky) / s][(gx + p - kx) / s]
 *        where the division is exact, 0 elsewhere (and 0 outside src).
 * Convolution:  forward = mul(W, FWD(x)); data gradient = mul(W', TRN(dy))
 *               with W'[ci][(co,ky,kx)] = W[co][ci][ky][kx]; weight gradient
 *               = wgrad(dy, FWD(x)).
 * Transposed:   forward = mul(W', TRN(x)) with W'[co][(ci,ky,kx)] =
 *               W[ci][co][ky][kx]; data gradient = mul(W, FWD(dy)); weight
 *               gradient = wgrad(x, FWD(dy)).
 * G is built block by block (a fixed number of pixels, set by the shape
 * alone) into a per-thread buffer and multiplied with OpenBLAS's sgemm on the
 * calling thread, so mul's output does not depend on the thread count.
 * wgrad sums each thread's blocks into its own partial gradient and adds the
 * partials in thread order: bit-identical for a given thread count, and
 * within rounding across counts. A 1 x 1 kernel at stride 1 multiplies src
 * itself, with no gather.
 *
 * Where oneDNN is built (conv_dnnl.c), a layer of a shape where its direct
 * convolutions measured faster runs through it instead (cpu_conv_new). */
#include "cpu.h"
#include "gemm_bf16.h"
#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

enum { GATHER_FWD, GATHER_TRN };

typedef struct {
    int mode;
    int c, h, w;    /* the gathered tensor: c x h x w per image */
    int k, s, p;    /* kernel, stride, padding */
    int gh, gw;     /* the output grid */
} gather;

struct conv_state {
    conv_shape sh;
    int oh, ow, pad;
    int64_t block;   /* pixels per gathered block: fixed by the shape */
    int nthreads;    /* buffers below are per thread */
    float **gbuf;    /* gathered blocks */
    float **part;    /* wgrad partials */
    size_t gbuf_len, part_len;
    float *wperm;    /* the permuted weights of the TRN products */
    int bf16;        /* the bf16 products are in use */
    uint32_t *apack; /* bf16: the packed weights of a mul */
    uint32_t **bpack, **dpack; /* bf16: per thread, packed gathers and gradients */
    size_t apack_len, bpack_len, dpack_len;
    conv_dnnl *dn;   /* the layer runs through oneDNN; nothing above is allocated */
};

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int64_t rows_of(const gather *g)
{
    return (int64_t)g->c * g->k * g->k;
}

static int identity_gather(const gather *g)
{
    return g->mode == GATHER_FWD && g->k == 1 && g->s == 1 && g->p == 0 && g->gh == g->h && g->gw == g->w;
}

/* Source index along one axis for grid position gpos and tap t, or -1. */
static inline int src_at(const gather *g, int gpos, int t, int n)
{
    int i;
    if (g->mode == GATHER_FWD) {
        i = gpos * g->s - g->p + t;
    } else {
        int num = gpos + g->p - t;
        if (num < 0 || num % g->s) return -1;
        i = num / g->s;
    }
    return i >= 0 && i < n ? i : -1;
}

/* G's columns pix0 .. pix0 + np - 1 into out (rows_of(g) x np). */
static void gather_block(const gather *g, const float *src, int64_t pix0, int64_t np, float *out)
{
    int64_t hw = (int64_t)g->h * g->w;
    for (int c = 0; c < g->c; c++) {
        const float *sc = src + c * hw;
        for (int ky = 0; ky < g->k; ky++)
            for (int kx = 0; kx < g->k; kx++) {
                float *o = out + (((int64_t)c * g->k + ky) * g->k + kx) * np;
                int64_t j = 0;
                while (j < np) {
                    int64_t pix = pix0 + j;
                    int gy = (int)(pix / g->gw), gx0 = (int)(pix % g->gw);
                    int64_t run = g->gw - gx0;
                    if (run > np - j) run = np - j;
                    int iy = src_at(g, gy, ky, g->h);
                    if (iy < 0) {
                        memset(o + j, 0, (size_t)run * sizeof *o);
                    } else {
                        const float *row = sc + (int64_t)iy * g->w;
                        if (g->mode == GATHER_FWD || g->s == 1) {
                            /* ix = gx s + off (FWD: off = kx - p; TRN at stride 1:
                             * off = p - kx): inside the row for gx in [lo, hi) */
                            int64_t s = g->s, off = g->mode == GATHER_FWD ? kx - g->p : g->p - kx;
                            int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
                            int64_t hi = ((int64_t)g->w - 1 - off) / s + 1;
                            if ((int64_t)g->w - 1 - off < 0) hi = 0;
                            lo -= gx0, hi -= gx0;
                            lo = lo < 0 ? 0 : lo > run ? run : lo;
                            hi = hi < lo ? lo : hi > run ? run : hi;
                            float *dst = o + j;
                            memset(dst, 0, (size_t)lo * sizeof *dst);
                            const float *src = row + (gx0 + lo) * s + off;
                            if (s == 1) {
                                memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof *dst);
                            } else {
                                for (int64_t q = lo; q < hi; q++) dst[q] = src[(q - lo) * s];
                            }
                            memset(dst + hi, 0, (size_t)(run - hi) * sizeof *dst);
                        } else {
                            for (int64_t q = 0; q < run; q++) {
                                int ix = src_at(g, gx0 + (int)q, kx, g->w);
                                o[j + q] = ix >= 0 ? row[ix] : 0.0f;
                            }
                        }
                    }
                    j += run;
                }
            }
    }
}

static int64_t pixels_of(const gather *g)
{
    return (int64_t)g->gh * g->gw;
}

/* out (n images of M x pixels) = A (M x R) G(src) + bias. */
static void mul(conv_state *st, const float *A, int M, const gather *g, const float *src, int n,
                const float *bias, int act, float slope, float *out)
{
    int64_t R = rows_of(g), P = pixels_of(g), B = st->block;
    int64_t nblk = (P + B - 1) / B, total = nblk * n, src_len = (int64_t)g->c * g->h * g->w;
    int ident = identity_gather(g);
    if (st->bf16) bf16_pack_rows(A, M, R, R, st->apack);
#pragma omp parallel for schedule(static) num_threads(st->nthreads) if (total > 1 && (size_t)(M * R * P) > SS_PAR_MIN)
    for (int64_t t = 0; t < total; t++) {
        int64_t img = t / nblk, pix0 = (t % nblk) * B, np = P - pix0 < B ? P - pix0 : B;
        const float *s = src + img * src_len;
        float *o = out + img * (int64_t)M * P + pix0;
        const float *G;
        int64_t ldg;
        if (ident) {
            G = s + pix0;
            ldg = P;
        } else {
            float *buf = st->gbuf[thread_id()];
            gather_block(g, s, pix0, np, buf);
            G = buf;
            ldg = np;
        }
        if (st->bf16) {
            uint32_t *bp = st->bpack[thread_id()];
            bf16_pack_cols(G, R, np, ldg, 0, bp);
            bf16_gemm_packed(M, np, R, st->apack, bp, o, P, 0);
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, (int)np, (int)R, 1.0f, A, (int)R, G, (int)ldg,
                        0.0f, o, (int)P);
        }
        if (bias || act)
            for (int m = 0; m < M; m++) {
                float bm = bias ? bias[m] : 0.0f, *om = o + (int64_t)m * P;
                if (act)
                    for (int64_t q = 0; q < np; q++) {
                        float v = om[q] + bm;
                        om[q] = v > 0 ? v : slope * v;
                    }
                else
                    for (int64_t q = 0; q < np; q++) om[q] += bm;
            }
    }
}

/* dA (M x R) = sum over n images of D (M x pixels) G(src)^T. */
static void wgrad(conv_state *st, const float *D, int M, const gather *g, const float *src, int n, float *dA)
{
    int64_t R = rows_of(g), P = pixels_of(g), B = st->block;
    int64_t nblk = (P + B - 1) / B, total = nblk * n, src_len = (int64_t)g->c * g->h * g->w;
    size_t len = (size_t)M * (size_t)R;
    int ident = identity_gather(g);
    int T = st->nthreads;
#pragma omp parallel num_threads(T)
    {
        int tid = thread_id(), nt = 1;
#ifdef _OPENMP
        nt = omp_get_num_threads();
#endif
        float *part = st->part[tid];
        memset(part, 0, len * sizeof *part);
        /* contiguous runs of blocks per thread, in order */
        int64_t lo = total * tid / nt, hi = total * (tid + 1) / nt;
        for (int64_t t = lo; t < hi; t++) {
            int64_t img = t / nblk, pix0 = (t % nblk) * B, np = P - pix0 < B ? P - pix0 : B;
            const float *s = src + img * src_len;
            const float *G;
            int64_t ldg;
            if (ident) {
                G = s + pix0;
                ldg = P;
            } else {
                gather_block(g, s, pix0, np, st->gbuf[tid]);
                G = st->gbuf[tid];
                ldg = np;
            }
            const float *Dm = D + img * (int64_t)M * P + pix0;
            if (st->bf16) {
                bf16_pack_rows(Dm, M, np, P, st->dpack[tid]);
                bf16_pack_cols(G, np, R, ldg, 1, st->bpack[tid]);
                bf16_gemm_packed(M, R, np, st->dpack[tid], st->bpack[tid], part, R, 1);
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, (int)R, (int)np, 1.0f, Dm, (int)P, G,
                            (int)ldg, 1.0f, part, (int)R);
            }
        }
#pragma omp barrier
        /* dA = partials of threads 0, 1, ... added in that order */
        size_t e0 = len * (size_t)tid / (size_t)nt, e1 = len * (size_t)(tid + 1) / (size_t)nt;
        for (size_t e = e0; e < e1; e++) {
            float acc = st->part[0][e];
            for (int q = 1; q < nt; q++) acc += st->part[q][e];
            dA[e] = acc;
        }
    }
}

/* db[m] = sum over images and pixels of D, in double, in order. */
static void bias_grad(const float *D, int M, int64_t P, int n, float *db)
{
#pragma omp parallel for schedule(static) if ((size_t)(M * P * n) > SS_PAR_MIN)
    for (int m = 0; m < M; m++) {
        double acc = 0;
        for (int img = 0; img < n; img++) {
            const float *d = D + ((int64_t)img * M + m) * P;
            for (int64_t q = 0; q < P; q++) acc += d[q];
        }
        db[m] = (float)acc;
    }
}

/* dst[a][(b,t)] = src[b][a][t] for src of nb x na x nt (the weight
 * permutation the TRN products use). */
static void permute_weights(const float *src, int nb, int na, int nt, float *dst)
{
    for (int b = 0; b < nb; b++)
        for (int a = 0; a < na; a++)
            memcpy(dst + ((int64_t)a * nb + b) * nt, src + ((int64_t)b * na + a) * nt, (size_t)nt * sizeof *dst);
}

int conv_out_size(const conv_shape *s, int *oh, int *ow)
{
    if (s->n < 1 || s->cin < 1 || s->cout < 1 || s->h < 1 || s->w < 1 || s->k < 1 || s->k > 15 ||
        (s->stride != 1 && s->stride != 2))
        return -1;
    if (!s->transposed) {
        if (s->k % 2 == 0) return -1;
        *oh = (s->h - 1) / s->stride + 1;
        *ow = (s->w - 1) / s->stride + 1;
    } else {
        if (s->k % 2 == 0 && s->k != s->stride) return -1;
        if ((int64_t)s->h * s->stride > INT32_MAX / 2 || (int64_t)s->w * s->stride > INT32_MAX / 2) return -1;
        *oh = s->h * s->stride;
        *ow = s->w * s->stride;
    }
    if ((int64_t)*oh * *ow > (int64_t)1 << 40) return -1;
    return 0;
}

/* The gathers of each pass: of the layer's input x (cin x h x w) over the
 * output grid, or of its output gradient dy (cout x oh x ow) over the input
 * grid. */
static gather gather_of(const conv_state *st, int mode, int of_dy)
{
    const conv_shape *s = &st->sh;
    return of_dy ? (gather){mode, s->cout, st->oh, st->ow, s->k, s->stride, st->pad, s->h, s->w}
                 : (gather){mode, s->cin, s->h, s->w, s->k, s->stride, st->pad, st->oh, st->ow};
}

enum { CONV_GEMM, CONV_DNNL };

/* Which version a layer of shape s uses: a fixed rule of the shape, so a
 * run's arithmetic does not depend on timings. SIRENSTACK_CONV_IMPL=gemm or
 * dnnl forces one (tests, benchmarks); dnnl falls back to gemm where oneDNN
 * is not built or has only its reference loops for the shape.
 *
 * The rule is tests/bench/bench_conv's table (BENCHMARKS.md, U-Net, version
 * 4: 2 cores of an AMD EPYC with AVX512-BF16, oneDNN 2.6.3, OpenBLAS
 * 0.3.21): oneDNN's direct convolutions were faster in every layer of both
 * U-Nets, float32 and bf16, forward, data and weight gradient (1.1x to 5x in
 * float32, 1.3x to 11x in bf16; the blocked layouts need no gather), except
 * the 1 x 1 output layer with one output channel, which oneDNN pads to a
 * block of 16 channels: there it was 2x to 8x slower in every pass. */
static int conv_version(const conv_shape *s)
{
    const char *e = getenv("SIRENSTACK_CONV_IMPL");
    if (e && !strcmp(e, "gemm")) return CONV_GEMM;
    if (e && !strcmp(e, "dnnl")) return CONV_DNNL;
    return s->cout == 1 ? CONV_GEMM : CONV_DNNL;
}

void cpu_conv_free(conv_state *st)
{
    if (!st) return;
    conv_dnnl_free(st->dn);
    for (int t = 0; t < st->nthreads; t++) {
        if (st->gbuf) free(st->gbuf[t]);
        if (st->part) free(st->part[t]);
        if (st->bpack) free(st->bpack[t]);
        if (st->dpack) free(st->dpack[t]);
    }
    free(st->gbuf);
    free(st->part);
    free(st->bpack);
    free(st->dpack);
    free(st->apack);
    free(st->wperm);
    free(st);
}

conv_state *cpu_conv_new(const conv_shape *s)
{
    int oh, ow;
    if (!s || conv_out_size(s, &oh, &ow)) return NULL;
    conv_state *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->sh = *s;
    st->oh = oh;
    st->ow = ow;
    st->pad = s->transposed && s->k == s->stride ? 0 : s->k / 2;
    if (conv_version(s) == CONV_DNNL) {
        st->bf16 = s->bf16 && bf16_gemm_available();
        st->dn = conv_dnnl_new(s, st->bf16);
        if (st->dn) return st;
    }
    int64_t taps = (int64_t)s->k * s->k;
    int64_t rmax = (s->cin > s->cout ? s->cin : s->cout) * taps;
    /* about 1 MiB of gathered floats per block, 64 to 4096 pixels */
    int64_t b = ((int64_t)1 << 18) / rmax;
    b = b < 64 ? 64 : b > 4096 ? 4096 : b;
    st->block = b / 16 * 16;
    st->nthreads = max_threads();
    st->gbuf_len = (size_t)(rmax * st->block);
    st->part_len = (size_t)s->cin * (size_t)s->cout * (size_t)taps;
    st->gbuf = calloc((size_t)st->nthreads, sizeof *st->gbuf);
    st->part = calloc((size_t)st->nthreads, sizeof *st->part);
    st->wperm = malloc(st->part_len * sizeof *st->wperm);
    if (!st->gbuf || !st->part || !st->wperm) goto fail;
    for (int t = 0; t < st->nthreads; t++) {
        st->gbuf[t] = malloc(st->gbuf_len * sizeof(float));
        st->part[t] = malloc(st->part_len * sizeof(float));
        if (!st->gbuf[t] || !st->part[t]) goto fail;
    }
    st->bf16 = s->bf16 && bf16_gemm_available();
    if (st->bf16) {
        /* words of bf16 pairs: the weights (M x ceil(R / 2)); per thread a
         * packed gather (ceil(R / 2) x block, or ceil(block / 2) x R) and a
         * packed gradient block (M x ceil(block / 2)) */
        int64_t mmax = s->cin > s->cout ? s->cin : s->cout;
        st->apack_len = (size_t)(mmax * ((rmax + 1) / 2));
        size_t b1 = bf16_pack_cols_len(rmax, st->block), b2 = bf16_pack_cols_len(st->block, rmax);
        st->bpack_len = b1 > b2 ? b1 : b2;
        st->dpack_len = (size_t)(mmax * ((st->block + 1) / 2));
        st->apack = malloc(st->apack_len * sizeof *st->apack);
        st->bpack = calloc((size_t)st->nthreads, sizeof *st->bpack);
        st->dpack = calloc((size_t)st->nthreads, sizeof *st->dpack);
        if (!st->apack || !st->bpack || !st->dpack) goto fail;
        for (int t = 0; t < st->nthreads; t++) {
            st->bpack[t] = malloc(st->bpack_len * sizeof(uint32_t));
            st->dpack[t] = malloc(st->dpack_len * sizeof(uint32_t));
            if (!st->bpack[t] || !st->dpack[t]) goto fail;
        }
    }
    return st;
fail:
    cpu_conv_free(st);
    return NULL;
}

const char *cpu_conv_impl(const conv_state *st)
{
    if (st->dn) return st->bf16 ? "dnnl-bf16" : "dnnl";
    return st->bf16 ? "gemm-bf16" : "gemm";
}

void cpu_conv_fwd(conv_state *st, const float *x, const float *w, const float *b, float *y)
{
    if (st->dn) {
        conv_dnnl_fwd(st->dn, x, w, b, y);
        return;
    }
    const conv_shape *s = &st->sh;
    gather g;
    const float *A = w;
    if (!s->transposed) {
        g = gather_of(st, GATHER_FWD, 0);
    } else {
        g = gather_of(st, GATHER_TRN, 0);
        permute_weights(w, s->cin, s->cout, s->k * s->k, st->wperm);
        A = st->wperm;
    }
    mul(st, A, s->cout, &g, x, s->n, b, s->act, s->slope, y);
}

void cpu_conv_bwd_data(conv_state *st, const float *dy, const float *w, float *dx)
{
    if (st->dn) {
        conv_dnnl_bwd_data(st->dn, dy, w, dx);
        return;
    }
    const conv_shape *s = &st->sh;
    gather g;
    const float *A = w;
    if (!s->transposed) {
        g = gather_of(st, GATHER_TRN, 1);
        permute_weights(w, s->cout, s->cin, s->k * s->k, st->wperm);
        A = st->wperm;
    } else {
        g = gather_of(st, GATHER_FWD, 1);
    }
    mul(st, A, s->cin, &g, dy, s->n, NULL, 0, 0.0f, dx);
}

void cpu_conv_bwd_weights(conv_state *st, const float *x, const float *dy, float *dw, float *db)
{
    const conv_shape *s = &st->sh;
    int64_t P = (int64_t)st->oh * st->ow;
    if (st->dn) {
        conv_dnnl_bwd_weights(st->dn, x, dy, dw);
    } else if (!s->transposed) {
        gather g = gather_of(st, GATHER_FWD, 0);
        wgrad(st, dy, s->cout, &g, x, s->n, dw);
    } else {
        gather g = gather_of(st, GATHER_FWD, 1);
        wgrad(st, x, s->cin, &g, dy, s->n, dw);
    }
    if (db) bias_grad(dy, s->cout, P, s->n, db);
}
