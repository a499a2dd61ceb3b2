/* Fuzz target: what microscopy software writes into a TIFF's
 * ImageDescription, parsed alone (pipeline/formats/tiff_meta.c): ImageJ
 * hyperstack descriptions and OME-XML. The input is the description. */
#include <stdlib.h>

#include "fuzz_common.h"
#include "tiff_meta.h"

/* The plane mapping import_tiff does with the counts: indices only when
 * Z x T x C fits (the import refuses the rest before it maps anything). */
static void map_planes(const tiff_meta *m)
{
    int64_t n;
    if (__builtin_mul_overflow(m->size_z, m->size_t, &n) || __builtin_mul_overflow(n, m->size_c, &n) || n < 1) return;
    int64_t last = n - 1, z, t, c;
    tiff_meta_plane_coords(m, last, &z, &t, &c);
    if (tiff_meta_plane_index(m, z, t, c) != last) abort(); /* the two are inverses */
    for (int k = 0; k < m->n_td; k++) {
        const ome_tiffdata *d = &m->td[k];
        if (d->first_z >= 0 && d->first_t >= 0 && d->first_c >= 0 && d->first_z < m->size_z && d->first_t < m->size_t &&
            d->first_c < m->size_c)
            (void)tiff_meta_plane_index(m, d->first_z, d->first_t, d->first_c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *desc = fuzz_strndup(data, size);
    tiff_meta m;
    if (tiff_meta_parse(desc, &m) == 0) {
        map_planes(&m);
        tiff_meta_free(&m);
    }
    (void)unit_to_um(desc);
    free(desc);
    return 0;
}
