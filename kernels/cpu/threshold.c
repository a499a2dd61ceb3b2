/* Intermodes threshold (Prewitt & Mendelsohn 1966), in the form of ImageJ's
 * AutoThresholder: smoothing into a separate buffer (the in-place running
 * mean of older ImageJ versions drifts the histogram to the right). */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* Strict local maxima among bins 1..n-2; stops counting past 3. */
static int count_modes(const double *h, int n, int mode[2])
{
    int m = 0;
    for (int i = 1; i < n - 1 && m < 3; i++)
        if (h[i - 1] < h[i] && h[i + 1] < h[i]) {
            if (m < 2) mode[m] = i;
            m++;
        }
    return m;
}

int threshold_intermodes(const double *hist, int n, int *t)
{
    if (n < 3) return -2;
    double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return -2;
    }
    memcpy(a, hist, (size_t)n * sizeof *a);
    int mode[2], passes = 0;
    while (count_modes(a, n, mode) != 2) {
        if (passes == SEG_INTERMODES_MAX_PASSES) {
            passes = -1;
            break;
        }
        b[0] = (a[0] + a[1]) / 3;
        for (int i = 1; i < n - 1; i++) b[i] = (a[i - 1] + a[i] + a[i + 1]) / 3;
        b[n - 1] = (a[n - 2] + a[n - 1]) / 3;
        double *s = a;
        a = b;
        b = s;
        passes++;
    }
    if (passes >= 0) *t = (mode[0] + mode[1]) / 2;
    free(a);
    free(b);
    return passes;
}
