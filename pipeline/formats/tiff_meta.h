/* What microscopy software writes into a TIFF's ImageDescription: ImageJ
 * hyperstack descriptions ("ImageJ=1.53t\nimages=...") and OME-XML. Parsing
 * only; no file I/O, nothing of stages or the store (a leaf of
 * pipeline/formats, used by tiff_read and the import stage).
 *
 * Ownership: tiff_meta_parse fills a caller-owned tiff_meta whose strings and
 * arrays tiff_meta_free releases. */
#ifndef SS_TIFF_META_H
#define SS_TIFF_META_H

#include <stdint.h>

typedef enum { TMETA_NONE, TMETA_IMAGEJ, TMETA_OME } tmeta_kind;

/* One OME <TiffData> element: PlaneCount planes starting at plane (FirstZ,
 * FirstT, FirstC), in DimensionOrder, live in IFDs IFD, IFD+1, ... of the
 * file named by the UUID child (NULL: the file holding the XML). */
typedef struct {
    char *file;           /* UUID FileName attribute, NULL when absent */
    char *uuid;           /* UUID text, NULL when absent */
    int64_t ifd;          /* 0 when absent */
    int has_ifd;
    int64_t plane_count;  /* -1 when absent (OME: 1 if IFD is given, else every IFD of the file) */
    int64_t first_z, first_t, first_c;
} ome_tiffdata;

typedef struct {
    tmeta_kind kind;
    /* Planes the metadata describes; 1 where it says nothing. */
    int64_t size_z, size_t, size_c;
    int64_t size_x, size_y;   /* OME only; 0 when absent */
    /* Order of the planes in the file, fastest first after X and Y, as OME
     * writes it ("XYZCT"); ImageJ hyperstacks are "XYCZT" (TZCYX in numpy). */
    char dim_order[6];
    /* Physical size z, y, x in micrometer; 0 when the metadata lacks it.
     * ImageJ keeps x and y in the XResolution/YResolution tags: ij_unit_um
     * (micrometer per ImageJ unit, 0 when uncalibrated) converts them. */
    double voxel[3];
    double ij_unit_um;
    int64_t ij_images;        /* ImageJ images=, 0 when absent */
    int n_images;             /* OME <Image> elements; only the first is described */
    char pixel_type[16];      /* OME Pixels Type ("uint16"), "" when absent */
    char *uuid;               /* OME root UUID attribute, NULL when absent */
    ome_tiffdata *td;
    int n_td;
    /* OME-XML that could not be read: why (kind is then TMETA_NONE). */
    char error[160];
    /* OME-XML that was read but breaks the schema where it matters (a
     * missing or non-positive SizeZ, SizeT or SizeC): why. */
    char invalid[160];
} tiff_meta;

/* Parses an ImageDescription (may be NULL). Never fails: descriptions that
 * are neither ImageJ nor OME give kind TMETA_NONE; malformed OME-XML also
 * sets error. Returns -1 only when out of memory. */
int tiff_meta_parse(const char *desc, tiff_meta *m);
void tiff_meta_free(tiff_meta *m);

/* Linear index of plane (z, t, c) in m's dimension order. */
int64_t tiff_meta_plane_index(const tiff_meta *m, int64_t z, int64_t t, int64_t c);
/* The inverse: plane index -> z, t, c. */
void tiff_meta_plane_coords(const tiff_meta *m, int64_t index, int64_t *z, int64_t *t, int64_t *c);

/* Micrometers per unit for the unit names OME, ImageJ and people write
 * ("µm", "um", "micron", "\\u00B5m", "nm", "mm", "cm", "m", "Å", "inch", ...);
 * 0 for unknown names and for "pixel" or "". */
double unit_to_um(const char *unit);

#endif
