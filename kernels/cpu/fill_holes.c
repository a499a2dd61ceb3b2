/* Hole filling: a flood of the background from the border; what it does
 * not reach is enclosed and becomes foreground. */
#include <stdlib.h>

#include "cpu.h"

int fill_holes_u8(uint8_t *mask, int64_t nz, int64_t ny, int64_t nx)
{
    size_t n = (size_t)(nz * ny * nx);
    if (n == 0) return 0;
    /* 0: background not reached yet, 1: foreground, 2: reached from the border. */
    uint8_t *st = malloc(n);
    int64_t *queue = malloc(n * sizeof *queue);
    if (!st || !queue) {
        free(st);
        free(queue);
        return -1;
    }
    for (size_t i = 0; i < n; i++) st[i] = mask[i] != 0;
    size_t head = 0, tail = 0;
    for (int64_t z = 0; z < nz; z++)
        for (int64_t y = 0; y < ny; y++)
            for (int64_t x = 0; x < nx; x++) {
                if (z && y && x && z < nz - 1 && y < ny - 1 && x < nx - 1) {
                    x = nx - 2; /* jump over the interior of the row */
                    continue;
                }
                int64_t i = (z * ny + y) * nx + x;
                if (!st[i]) st[i] = 2, queue[tail++] = i;
            }
    const int64_t sy = nx, sz = ny * nx;
    while (head < tail) {
        int64_t i = queue[head++], x = i % nx, y = (i / nx) % ny, z = i / sz;
        int64_t nb[6];
        int k = 0;
        if (x > 0) nb[k++] = i - 1;
        if (x < nx - 1) nb[k++] = i + 1;
        if (y > 0) nb[k++] = i - sy;
        if (y < ny - 1) nb[k++] = i + sy;
        if (z > 0) nb[k++] = i - sz;
        if (z < nz - 1) nb[k++] = i + sz;
        for (int j = 0; j < k; j++)
            if (!st[nb[j]]) st[nb[j]] = 2, queue[tail++] = nb[j];
    }
    for (size_t i = 0; i < n; i++) mask[i] = st[i] != 2;
    free(st);
    free(queue);
    return 0;
}
