/* Seeded flooding and the h-maxima that seed it.
 *
 * The flood keeps its front in a binary heap ordered by (value, age), age
 * counting pushes, so equal values are taken first in first out as in
 * skimage's watershed; a voxel is labelled when it is pushed, so each voxel
 * enters the heap once. The reconstruction behind the h-maxima is Vincent's
 * hybrid algorithm (1993): a forward and a backward raster sweep, then a
 * FIFO propagation of what the sweeps left unsettled. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

typedef struct {
    double v;
    uint64_t age;
    int64_t i;
} front_item;

static int item_less(const front_item *a, const front_item *b)
{
    return a->v < b->v || (a->v == b->v && a->age < b->age);
}

static void heap_push(front_item *h, size_t *n, front_item e)
{
    size_t k = (*n)++;
    while (k > 0) {
        size_t p = (k - 1) / 2;
        if (!item_less(&e, &h[p])) break;
        h[k] = h[p];
        k = p;
    }
    h[k] = e;
}

static front_item heap_pop(front_item *h, size_t *n)
{
    front_item top = h[0], e = h[--*n];
    size_t k = 0;
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_less(&h[c + 1], &h[c])) c++;
        if (!item_less(&h[c], &e)) break;
        h[k] = h[c];
        k = c;
    }
    if (*n) h[k] = e;
    return top;
}

int watershed_f64(const double *img, const uint32_t *markers, const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx,
                  int connectivity, uint32_t *out)
{
    if (connectivity != 6 && connectivity != 26) return -1;
    size_t n = (size_t)(nz * ny * nx);
    front_item *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) return -1;
    size_t hn = 0;
    uint64_t age = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = markers[i] && (!mask || mask[i]) ? markers[i] : 0;
        if (out[i]) heap_push(h, &hn, (front_item){img[i], 0, (int64_t)i});
    }
    int64_t nb[26];
    while (hn) {
        front_item e = heap_pop(h, &hn);
        int k = cpu_neighbours(e.i, nz, ny, nx, connectivity, nb);
        for (int j = 0; j < k; j++) {
            int64_t q = nb[j];
            if (out[q] || (mask && !mask[q])) continue;
            out[q] = out[e.i];
            heap_push(h, &hn, (front_item){img[q], ++age, q});
        }
    }
    free(h);
    return 0;
}

/* Reconstruction by dilation of g (g <= f) under f, 26-connected, in place. */
static int reconstruct(const double *f, double *g, int64_t nz, int64_t ny, int64_t nx)
{
    size_t n = (size_t)(nz * ny * nx);
    int64_t *queue = malloc((n ? n : 1) * sizeof *queue);
    uint8_t *queued = calloc(n ? n : 1, 1);
    if (!queue || !queued) {
        free(queue);
        free(queued);
        return -1;
    }
    int64_t nb[26];
    for (size_t u = 0; u < n; u++) {
        int64_t i = (int64_t)u;
        int k = cpu_neighbours(i, nz, ny, nx, 26, nb);
        double m = g[i];
        for (int j = 0; j < k && nb[j] < i; j++) m = fmax(m, g[nb[j]]);
        g[i] = fmin(m, f[i]);
    }
    /* The queue is a ring of n slots: a voxel is in it at most once. */
    size_t head = 0, len = 0;
    for (size_t u = n; u-- > 0;) {
        int64_t i = (int64_t)u;
        int k = cpu_neighbours(i, nz, ny, nx, 26, nb), j0 = 0;
        while (j0 < k && nb[j0] < i) j0++;
        double m = g[i];
        for (int j = j0; j < k; j++) m = fmax(m, g[nb[j]]);
        g[i] = fmin(m, f[i]);
        for (int j = j0; j < k; j++)
            if (g[nb[j]] < g[i] && g[nb[j]] < f[nb[j]]) {
                queue[(head + len++) % n] = i;
                queued[i] = 1;
                break;
            }
    }
    while (len) {
        int64_t p = queue[head];
        head = (head + 1) % n;
        len--;
        queued[p] = 0;
        int k = cpu_neighbours(p, nz, ny, nx, 26, nb);
        for (int j = 0; j < k; j++) {
            int64_t q = nb[j];
            if (g[q] < g[p] && f[q] != g[q]) {
                g[q] = fmin(g[p], f[q]);
                if (!queued[q]) {
                    queue[(head + len++) % n] = q;
                    queued[q] = 1;
                }
            }
        }
    }
    free(queue);
    free(queued);
    return 0;
}

int hmaxima_f64(const double *f, int64_t nz, int64_t ny, int64_t nx, double h, uint8_t *out)
{
    size_t n = (size_t)(nz * ny * nx);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) lo = fmin(lo, f[i]), hi = fmax(hi, f[i]);
    if (n == 0 || h > hi - lo) {
        for (size_t i = 0; i < n; i++) out[i] = 0;
        return 0;
    }
    double *g = malloc(n * sizeof *g);
    if (!g) return -1;
    /* skimage's offset below f - h, so that a dome exactly h high counts. */
    for (size_t i = 0; i < n; i++) g[i] = f[i] - h - 2e-15 * fabs(f[i]);
    int rc = reconstruct(f, g, nz, ny, nx);
    if (rc == 0)
        for (size_t i = 0; i < n; i++) out[i] = f[i] - g[i] >= h;
    free(g);
    return rc;
}
