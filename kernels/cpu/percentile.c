/* Exact and streaming percentiles by radix selection on order-preserving
 * keys of the float values (cpu.h: f32_key).
 *
 * Exact: pass 1 counts the top 16 key bits of every value (65536 bins).
 * The bins holding the needed order statistics (ranks floor(h) and
 * floor(h) + 1 of each quantile) follow from the cumulative counts; pass 2
 * counts the low 16 bits of only the values in those bins, which fixes each
 * order statistic's full key, hence its exact float. Memory: 512 KiB for
 * pass 1, then 256 KiB per distinct bin holding a needed order statistic
 * (at most 32 such bins), counted in 32 bits where the bin holds fewer than
 * 2^32 values.
 *
 * Streaming: one pass counting the top 20 key bits (sign, exponent and 11
 * mantissa bits; 2^20 bins, 8 MiB). An order statistic is represented by
 * its bin's value truncated toward zero to 11 mantissa bits, which is exact
 * for integers below 4096 and off by less than 2^-11 of the value otherwise
 * (absolute error below 2^-137 for subnormals).
 *
 * The interpolation is numpy's ('linear', numpy >= 1.22 _lerp): for sorted
 * v and h = (N - 1) * (q / 100), with a = v[floor h], b = v[floor h + 1],
 * t = h - floor h and d = b - a computed in float32 as numpy does for
 * float32 input, the result is a + d t for t < 0.5 and b - d (1 - t)
 * otherwise, in double. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

#define PCT_MAX_Q 16
#define PCT_MAX_RANKS (2 * PCT_MAX_Q)

#define EXACT_HI_BITS 16
#define EXACT_LO_BITS (32 - EXACT_HI_BITS)
#define STREAM_HI_BITS 20
#define STREAM_LO_BITS (32 - STREAM_HI_BITS)

#define NO_SLOT 0xff

typedef struct {
    uint32_t bin;  /* top key bits shared by the values counted here */
    int wide;      /* 64-bit counters: the bin held 2^32 values or more */
    void *count;   /* 2^EXACT_LO_BITS counters of uint32_t or uint64_t */
} sub_hist;

typedef struct {
    uint64_t rank;    /* 0-based position in the sorted values */
    uint64_t offset;  /* position among the values of its bin */
    uint32_t bin;
    int slot;         /* exact pass 2: sub-histogram holding the bin */
    float value;
} order_stat;

struct pct_state {
    int nq;
    double q[PCT_MAX_Q];
    int exact;
    int passes_done, passes;
    int failed;             /* memory ran out or pass 2 saw other data */
    uint64_t count;         /* values fed in pass 1 */
    uint64_t fed;           /* values fed in the current pass */
    unsigned shift;         /* key >> shift: pass-1 bin */
    uint64_t *hist;         /* pass 1: 2^(32 - shift) bins */
    int nstat;
    order_stat stat[PCT_MAX_RANKS];
    int qlo[PCT_MAX_Q], qhi[PCT_MAX_Q]; /* indices into stat per quantile */
    double qt[PCT_MAX_Q];               /* interpolation weight */
    int nslot;
    sub_hist slot[PCT_MAX_RANKS];
    uint8_t *bin_slot;      /* pass 2: slot of each pass-1 bin, or NO_SLOT */
    double result[PCT_MAX_Q];
};

pct_state *pct_new(int nq, const double *q_percent, int exact)
{
    if (nq < 1 || nq > PCT_MAX_Q || !q_percent) return NULL;
    for (int i = 0; i < nq; i++)
        if (!(q_percent[i] >= 0.0 && q_percent[i] <= 100.0)) return NULL;
    pct_state *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->nq = nq;
    for (int i = 0; i < nq; i++) p->q[i] = q_percent[i];
    p->exact = !!exact;
    p->passes = exact ? 2 : 1;
    p->shift = exact ? EXACT_LO_BITS : STREAM_LO_BITS;
    p->hist = calloc((size_t)1 << (32 - p->shift), sizeof *p->hist);
    if (!p->hist) {
        free(p);
        return NULL;
    }
    for (int i = 0; i < nq; i++) p->result[i] = NAN;
    return p;
}

static void free_pass2(pct_state *p)
{
    for (int s = 0; s < p->nslot; s++) free(p->slot[s].count);
    p->nslot = 0;
    free(p->bin_slot);
    p->bin_slot = NULL;
}

void pct_free(pct_state *p)
{
    if (!p) return;
    free(p->hist);
    free_pass2(p);
    free(p);
}

int pct_need_pass(const pct_state *p)
{
    return p && !p->failed && p->passes_done < p->passes;
}

static void feed_pass1(pct_state *p, const float *x, size_t n)
{
    uint64_t *h = p->hist;
    const unsigned shift = p->shift;
    for (size_t i = 0; i < n; i++) h[f32_key(f32_bits(x[i])) >> shift]++;
}

static void feed_pass2(pct_state *p, const float *x, size_t n)
{
    const uint8_t *bs = p->bin_slot;
    const uint32_t lo_mask = ((uint32_t)1 << EXACT_LO_BITS) - 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = f32_key(f32_bits(x[i]));
        unsigned s = bs[k >> EXACT_LO_BITS];
        if (s == NO_SLOT) continue;
        sub_hist *sh = &p->slot[s];
        if (sh->wide)
            ((uint64_t *)sh->count)[k & lo_mask]++;
        else
            ((uint32_t *)sh->count)[k & lo_mask]++;
    }
}

void pct_feed(pct_state *p, const float *x, size_t n)
{
    if (!pct_need_pass(p)) return;
    p->fed += n;
    if (p->passes_done == 0)
        feed_pass1(p, x, n);
    else
        feed_pass2(p, x, n);
}

static int rank_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Ranks each quantile interpolates between, as numpy's _get_indexes and
 * _get_gamma find them, deduplicated into p->stat. */
static void plan_ranks(pct_state *p)
{
    uint64_t n = p->count;
    uint64_t lo[PCT_MAX_Q], hi[PCT_MAX_Q], ranks[PCT_MAX_RANKS];
    int nr = 0;
    for (int i = 0; i < p->nq; i++) {
        double h = (double)(n - 1) * (p->q[i] / 100.0);
        if (h >= (double)(n - 1)) {
            lo[i] = hi[i] = n - 1;
            p->qt[i] = 0.0; /* b == a: every weight gives a */
        } else {
            double f = floor(h);
            lo[i] = (uint64_t)f;
            hi[i] = lo[i] + 1;
            p->qt[i] = h - f;
        }
        ranks[nr++] = lo[i];
        ranks[nr++] = hi[i];
    }
    qsort(ranks, (size_t)nr, sizeof *ranks, rank_cmp);
    p->nstat = 0;
    for (int j = 0; j < nr; j++)
        if (p->nstat == 0 || p->stat[p->nstat - 1].rank != ranks[j])
            p->stat[p->nstat++].rank = ranks[j];
    for (int i = 0; i < p->nq; i++)
        for (int s = 0; s < p->nstat; s++) {
            if (p->stat[s].rank == lo[i]) p->qlo[i] = s;
            if (p->stat[s].rank == hi[i]) p->qhi[i] = s;
        }
}

/* Walks the cumulative counts of hist (nbins bins) to the bin of each
 * order statistic (sorted by rank) and its offset within that bin. */
static void locate_bins(pct_state *p, const uint64_t *hist, size_t nbins)
{
    uint64_t below = 0;
    int s = 0;
    for (size_t b = 0; b < nbins && s < p->nstat; b++) {
        uint64_t c = hist[b];
        while (s < p->nstat && p->stat[s].rank < below + c) {
            p->stat[s].bin = (uint32_t)b;
            p->stat[s].offset = p->stat[s].rank - below;
            s++;
        }
        below += c;
    }
}

/* numpy's _lerp on float32 order statistics with a float64 weight. */
static double lerp_numpy(float a, float b, double t)
{
    float d = b - a;
    /* numpy would overflow to Inf for values more than FLT_MAX apart; the
     * double difference is exact there and finite. */
    double dd = isinf(d) ? (double)b - (double)a : (double)d;
    /* volatile: a fused multiply-add would round differently from numpy. */
    volatile double prod;
    if (t >= 0.5) {
        prod = dd * (1.0 - t);
        return (double)b - prod;
    }
    prod = dd * t;
    return (double)a + prod;
}

static void finish(pct_state *p)
{
    for (int i = 0; i < p->nq; i++)
        p->result[i] = lerp_numpy(p->stat[p->qlo[i]].value, p->stat[p->qhi[i]].value, p->qt[i]);
}

static void end_stream_pass(pct_state *p)
{
    locate_bins(p, p->hist, (size_t)1 << STREAM_HI_BITS);
    for (int s = 0; s < p->nstat; s++) {
        /* Within a bin the top 20 bits of the float itself are fixed too
         * (the sign decides how keys map to bits); clearing the rest
         * truncates toward zero. */
        uint32_t bits = f32_unkey(p->stat[s].bin << STREAM_LO_BITS);
        p->stat[s].value = f32_from_bits(bits & ~(((uint32_t)1 << STREAM_LO_BITS) - 1));
    }
    finish(p);
}

/* After exact pass 1: one sub-histogram per distinct bin of a needed order
 * statistic. */
static int start_pass2(pct_state *p)
{
    locate_bins(p, p->hist, (size_t)1 << EXACT_HI_BITS);
    p->bin_slot = malloc((size_t)1 << EXACT_HI_BITS);
    if (!p->bin_slot) return -1;
    memset(p->bin_slot, NO_SLOT, (size_t)1 << EXACT_HI_BITS);
    for (int s = 0; s < p->nstat; s++) {
        uint32_t bin = p->stat[s].bin;
        if (p->bin_slot[bin] == NO_SLOT) {
            sub_hist *sh = &p->slot[p->nslot];
            sh->bin = bin;
            sh->wide = p->hist[bin] >= ((uint64_t)1 << 32);
            sh->count = calloc((size_t)1 << EXACT_LO_BITS, sh->wide ? 8 : 4);
            if (!sh->count) return -1;
            p->bin_slot[bin] = (uint8_t)p->nslot++;
        }
        p->stat[s].slot = p->bin_slot[bin];
    }
    /* stat[] now holds all pass 2 needs of pass 1's counts. */
    free(p->hist);
    p->hist = NULL;
    return 0;
}

static int end_exact_pass2(pct_state *p)
{
    for (int s = 0; s < p->nstat; s++) {
        const sub_hist *sh = &p->slot[p->stat[s].slot];
        uint64_t below = 0, off = p->stat[s].offset;
        size_t nb = (size_t)1 << EXACT_LO_BITS, b;
        for (b = 0; b < nb; b++) {
            below += sh->wide ? ((const uint64_t *)sh->count)[b] : ((const uint32_t *)sh->count)[b];
            if (off < below) break;
        }
        if (b == nb) return -1; /* pass 2 saw fewer values in this bin */
        uint32_t key = (sh->bin << EXACT_LO_BITS) | (uint32_t)b;
        p->stat[s].value = f32_from_bits(f32_unkey(key));
    }
    finish(p);
    return 0;
}

void pct_end_pass(pct_state *p)
{
    if (!pct_need_pass(p)) return;
    uint64_t fed = p->fed;
    p->fed = 0;
    p->passes_done++;
    if (p->passes_done == 1) {
        p->count = fed;
        if (fed == 0) {
            p->passes = 1; /* results stay NaN */
            return;
        }
        plan_ranks(p);
        if (!p->exact) {
            end_stream_pass(p);
        } else if (start_pass2(p) < 0) {
            p->failed = 1;
            free_pass2(p);
        }
        return;
    }
    /* A second pass over other data than the first has no defined answer. */
    if (fed != p->count || end_exact_pass2(p) < 0) {
        p->failed = 1;
        for (int i = 0; i < p->nq; i++) p->result[i] = NAN;
    }
    free_pass2(p);
}

double pct_result(const pct_state *p, int i)
{
    if (!p || i < 0 || i >= p->nq || p->failed || p->passes_done < p->passes) return NAN;
    return p->result[i];
}

uint64_t pct_count(const pct_state *p)
{
    if (!p) return 0;
    return p->passes_done == 0 ? p->fed : p->count;
}
