/* Reading grey-level planes from TIFF files (classic and BigTIFF) with
 * libtiff: one page (IFD) is one plane. Knows nothing of stages or the
 * runner; errors are SS_ERR_INPUT (or SS_ERR_NOMEM) with a one-line message
 * naming the file, the page and the problem (pipeline/base/error.h).
 *
 * Supported pages: strips (not tiles), one sample per pixel, min-is-black or
 * min-is-white, 8/16/32-bit integers or 32/64-bit floats, any codec libtiff
 * was built with (none, LZW, Deflate, PackBits, ...). int8 is widened to
 * int16 and float64 narrowed to float32 (the pipeline computes in float32).
 *
 * Ownership: tiff_reader_open returns a reader the caller frees with
 * tiff_reader_close. Strings it returns live as long as the reader. */
#ifndef SS_TIFF_READ_H
#define SS_TIFF_READ_H

#include <stdint.h>

#include "store.h"

typedef struct tiff_reader tiff_reader;

typedef struct {
    int64_t width, height;
    ss_dtype dtype;     /* element type delivered by tiff_reader_read */
    int bits;           /* bits per sample in the file */
    int sample_format;  /* 1 unsigned, 2 signed, 3 float */
    int compression;    /* TIFF compression code */
} tiff_page_info;

/* Opens path read-only and walks its chain of IFDs once (so that any page
 * can then be reached directly). A file that is not a TIFF, is truncated
 * inside its IFD chain, or has none, is an error. */
int tiff_reader_open(const char *path, tiff_reader **out);
void tiff_reader_close(tiff_reader *r);
const char *tiff_reader_path(const tiff_reader *r);
/* Pages in the file's IFD chain (or as set by tiff_reader_set_contiguous). */
int64_t tiff_reader_pages(const tiff_reader *r);
int tiff_reader_is_bigtiff(const tiff_reader *r);
/* ImageDescription of the first page; NULL when it has none. */
const char *tiff_reader_description(const tiff_reader *r);
/* XResolution, YResolution (pixels per unit) and ResolutionUnit (1 none,
 * 2 inch, 3 cm) of the first page; 0 when absent. */
void tiff_reader_resolution(const tiff_reader *r, double *xres, double *yres, int *unit);

/* Checks that page p is a plane this reader can read and describes it. */
int tiff_reader_page(tiff_reader *r, int64_t p, tiff_page_info *info);
/* Reads page p into buf: info.width * info.height elements of info.dtype. */
int tiff_reader_read(tiff_reader *r, int64_t p, void *buf);

/* ImageJ saves stacks over 4 GiB with a single IFD and the planes stored
 * back to back after the first one. Declares that the file holds n such
 * planes. Returns SS_ERR_INPUT without setting a message (the caller knows
 * what the metadata claimed) and changes nothing unless the file has one
 * IFD, the first page is uncompressed, its strips are contiguous and the
 * file is long enough. */
int tiff_reader_set_contiguous(tiff_reader *r, int64_t n);

#endif
