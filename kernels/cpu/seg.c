/* SEG by a majority vote: the S with |R n S| > |R| / 2 is the strict
 * majority of the predicted labels over R's voxels (0 included), which
 * Boyer-Moore's vote finds in one pass; a second pass counts the overlap
 * with the candidate to confirm it. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

int seg_score(const uint32_t *ref, const uint32_t *pred, size_t n, seg_result *r)
{
    uint32_t mr = 0, mp = 0;
    for (size_t i = 0; i < n; i++) {
        if (ref[i] > mr) mr = ref[i];
        if (pred[i] > mp) mp = pred[i];
    }
    size_t nr = (size_t)mr + 1, np = (size_t)mp + 1;
    uint32_t *cand = calloc(nr, sizeof *cand);
    int64_t *votes = calloc(nr, sizeof *votes), *size_r = calloc(nr, sizeof *size_r), *inter = calloc(nr, sizeof *inter);
    int64_t *size_p = calloc(np, sizeof *size_p);
    int rc = cand && votes && size_r && inter && size_p ? 0 : -1;
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            uint32_t a = ref[i], b = pred[i];
            size_p[b]++;
            if (!a) continue;
            size_r[a]++;
            if (votes[a] == 0) cand[a] = b, votes[a] = 1;
            else votes[a] += cand[a] == b ? 1 : -1;
        }
        for (size_t i = 0; i < n; i++)
            if (ref[i] && pred[i] == cand[ref[i]]) inter[ref[i]]++;
        double sum = 0;
        int64_t count = 0, matched = 0;
        for (size_t a = 1; a < nr; a++) {
            if (!size_r[a]) continue;
            count++;
            uint32_t b = cand[a];
            if (b && 2 * inter[a] > size_r[a]) {
                matched++;
                sum += (double)inter[a] / (double)(size_r[a] + size_p[b] - inter[a]);
            }
        }
        r->seg = count ? sum / (double)count : NAN;
        r->n_reference = count;
        r->n_matched = matched;
    }
    free(cand);
    free(votes);
    free(size_r);
    free(inter);
    free(size_p);
    return rc;
}
