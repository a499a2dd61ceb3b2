/* Writing an image stack as OME-Zarr (OME-NGFF 0.4 on a Zarr v2 directory
 * store): a group with one "multiscales" entry of one level, "0", holding
 * the array; chunks of one plane (split into row blocks over 16 MiB),
 * blosc lz4 level 5 with byte shuffle, dimension separator "/". The axes
 * are t (time: the repeats), z, y, x as present; scale = voxel size in
 * micrometer on z, y, x and 1 on t. Planes are written one at a time in
 * T-major, Z-minor order, so memory is one plane.
 *
 * Knows nothing of stages, the runner or containers: it takes ss_dtype from
 * store.h, and the Zarr metadata, compressor (the store's default blosc
 * settings) and chunk files from the store's Zarr layer (zarr.h). Errors are
 * SS_ERR_IO (or SS_ERR_CONFIG, SS_ERR_NOMEM) with a one-line message.
 *
 * Ownership: omezarr_open creates the directory `dir` (which must not
 * exist) and returns a writer that omezarr_close (keeps the directory) or
 * omezarr_abort (removes it) frees. */
#ifndef SS_OMEZARR_H
#define SS_OMEZARR_H

#include <stdint.h>

#include "store.h"

typedef struct {
    int has_t, has_z;                /* which of the leading axes exist */
    int64_t t, z, y, x;              /* sizes (1 for absent axes) */
    ss_dtype dtype;
    double voxel[3];                 /* z, y, x micrometer; 0: unknown (scale 1) */
    const char *name;                /* multiscales name; may be NULL */
} omezarr_spec;

typedef struct omezarr_out omezarr_out;

int omezarr_open(const char *dir, const omezarr_spec *spec, omezarr_out **out);
int omezarr_write_plane(omezarr_out *w, const void *plane);
/* All planes must have been written; fsyncs the chunks and metadata. */
int omezarr_close(omezarr_out *w);
void omezarr_abort(omezarr_out *w);

#endif
