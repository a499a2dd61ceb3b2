/* Connected components by union-find over the preceding neighbours in one
 * raster pass, then a second pass numbering roots by first appearance; and
 * the neighbourhoods the segmentation kernels share. */
#include <stdlib.h>

#include "cpu.h"

int cpu_neighbours(int64_t i, int64_t nz, int64_t ny, int64_t nx, int connectivity, int64_t out[26])
{
    int64_t x = i % nx, y = (i / nx) % ny, z = i / (ny * nx);
    int k = 0;
    for (int dz = -1; dz <= 1; dz++)
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int faces = (dz != 0) + (dy != 0) + (dx != 0);
                if (faces == 0 || (connectivity == 6 && faces > 1)) continue;
                if (z + dz < 0 || z + dz >= nz || y + dy < 0 || y + dy >= ny || x + dx < 0 || x + dx >= nx) continue;
                out[k++] = i + (dz * ny + dy) * nx + dx;
            }
    return k;
}

static int64_t find_root(int64_t *parent, int64_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

int64_t label_u32(const uint8_t *mask, int64_t nz, int64_t ny, int64_t nx, int connectivity, uint32_t *out)
{
    if (connectivity != 6 && connectivity != 26) return -1;
    size_t n = (size_t)(nz * ny * nx);
    int64_t *parent = malloc((n ? n : 1) * sizeof *parent);
    if (!parent) return -1;
    int64_t nb[26];
    for (size_t u = 0; u < n; u++) {
        int64_t i = (int64_t)u;
        parent[i] = i;
        if (!mask[i]) continue;
        int k = cpu_neighbours(i, nz, ny, nx, connectivity, nb);
        for (int j = 0; j < k && nb[j] < i; j++) {
            if (!mask[nb[j]]) continue;
            int64_t a = find_root(parent, i), b = find_root(parent, nb[j]);
            /* The smaller index stays root: it is the component's first voxel. */
            if (a < b) parent[b] = a;
            else if (b < a) parent[a] = b;
        }
    }
    int64_t count = 0;
    for (size_t u = 0; u < n; u++) {
        int64_t i = (int64_t)u;
        if (!mask[i]) {
            out[i] = 0;
            continue;
        }
        int64_t r = find_root(parent, i);
        if (r == i) {
            if (count == UINT32_MAX) {
                free(parent);
                return -1;
            }
            out[i] = (uint32_t)++count;
        } else
            out[i] = out[r];
    }
    free(parent);
    return count;
}
