/* Writing image stacks as ImageJ hyperstack TIFF or OME-TIFF with libtiff,
 * one plane (page) at a time, so memory is one plane whatever the stack.
 * Knows nothing of stages, the runner or the store (it takes ss_dtype from
 * store.h only as the project's element-type enum). Errors are SS_ERR_IO or
 * SS_ERR_CONFIG with a one-line message (pipeline/base/error.h).
 *
 * Layout written: pages in T-major, Z-minor order (page = t * Z + z), one
 * strip per plane (planes over 256 MiB: strips of at most 64 MiB),
 * uncompressed, min-is-black, little-endian.
 *   ImageJ: ImageDescription "ImageJ=1.11a images= slices= frames=
 *     hyperstack=true unit=micron spacing=" on page 0; XResolution and
 *     YResolution = 1 / voxel size (pixels per micron, ResolutionUnit none),
 *     as ImageJ and tifffile read them. Repeats are ImageJ frames.
 *   OME: OME-XML (2016-06) on page 0: DimensionOrder XYZTC, SizeT = frames,
 *     SizeC = 1, PhysicalSize{X,Y,Z} in µm, one TiffData for all planes.
 * BigTIFF is chosen when the file would pass 4 GiB (or by request).
 *
 * Ownership: tiff_out_open returns a writer that tiff_out_close (keeps the
 * file) or tiff_out_abort (removes it) frees. Writing to a temporary name
 * and renaming is the caller's business. */
#ifndef SS_TIFF_WRITE_H
#define SS_TIFF_WRITE_H

#include <stdint.h>

#include "store.h"

typedef enum { TIFF_OUT_IMAGEJ, TIFF_OUT_OME } tiff_out_kind;

typedef struct {
    tiff_out_kind kind;
    int64_t frames, slices, height, width; /* T (repeats), Z, Y, X; each >= 1 */
    ss_dtype dtype;
    double voxel[3];        /* z, y, x in micrometer; 0: unknown (not written) */
    int bigtiff;            /* 1: always BigTIFF; 0: only when needed */
    uint64_t bigtiff_above; /* pixel bytes above which BigTIFF is used; 0: when the file would pass 4 GiB */
    const char *name;       /* OME Image Name; may be NULL */
    const char *creator;    /* Software tag and OME Creator; may be NULL */
} tiff_out_spec;

typedef struct tiff_out tiff_out;

int tiff_out_open(const char *path, const tiff_out_spec *spec, tiff_out **out);
/* Writes the next plane (height * width elements of spec.dtype). */
int tiff_out_write_plane(tiff_out *w, const void *plane);
/* All planes must have been written; flushes, fsyncs, closes, frees. */
int tiff_out_close(tiff_out *w);
void tiff_out_abort(tiff_out *w);
int tiff_out_is_bigtiff(const tiff_out *w);

/* The ImageJ description or OME-XML that tiff_out_open writes for spec
 * (new string, caller frees; NULL when out of memory). */
char *tiff_out_description(const tiff_out_spec *spec);

#endif
