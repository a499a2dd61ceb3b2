/* TIFF planes through libtiff. libtiff reports problems through handlers
 * that print to stderr by default; each reader installs its own (libtiff
 * 4.5's per-handle options), keeps the first message, and turns it into the
 * one-line error of pipeline/base/error.h. */
#include "tiff_read.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include "error.h"

/* Bounds that keep a corrupt header from asking for absurd buffers. */
#define MAX_SIDE (1 << 24)
#define MAX_PLANE_BYTES ((int64_t)1 << 34)
/* No codec libtiff decodes packs more than about this many bytes of pixels
 * into one byte of file (zstd's run-length blocks come closest; Deflate stops
 * near 1032, LZW near 2730, PackBits at 64). */
#define MAX_CODEC_RATIO ((int64_t)1 << 16)

struct tiff_reader {
    TIFF *tif;
    char *path;
    char *desc;
    uint64_t *ifd;       /* offset of each page's IFD */
    int64_t n_pages;
    int64_t cur;         /* page libtiff has loaded */
    double xres, yres;
    int res_unit;
    int64_t file_size;
    /* contiguous ImageJ data (tiff_reader_set_contiguous) */
    int contiguous;
    uint64_t data_offset;
    tiff_page_info first;
    void *scratch;       /* file-typed plane when a conversion is needed */
    size_t scratch_size;
    char msg[256];       /* first libtiff error since the last reset */
    int decoding;        /* pixels are being decoded: warnings count as errors */
    int decode_warned;   /* msg holds such a warning */
};

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    tiff_reader *r = user;
    if (r && !r->msg[0]) {
        vsnprintf(r->msg, sizeof r->msg, fmt, ap);
        for (char *p = r->msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return 1; /* handled: nothing reaches stderr */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    /* Unknown private tags (ImageJ's 50838/50839, vendors' own) are normal in
     * microscopy files and change nothing that is read. While pixels are
     * decoded, though, a warning means the codec patched over damaged data
     * (PackBits "Discarding N bytes", LZW "Premature EOL"): the pixels would
     * be wrong, so it counts as an error of that strip. */
    tiff_reader *r = user;
    if (r && r->decoding && !r->msg[0]) {
        vsnprintf(r->msg, sizeof r->msg, fmt, ap);
        for (char *p = r->msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        r->decode_warned = 1;
    }
    return 1;
}

static const char *why(const tiff_reader *r, const char *fallback) { return r->msg[0] ? r->msg : fallback; }

const char *tiff_reader_path(const tiff_reader *r) { return r->path; }
int64_t tiff_reader_pages(const tiff_reader *r) { return r->n_pages; }
int tiff_reader_is_bigtiff(const tiff_reader *r) { return TIFFIsBigTIFF(r->tif); }
const char *tiff_reader_description(const tiff_reader *r) { return r->desc; }

void tiff_reader_resolution(const tiff_reader *r, double *xres, double *yres, int *unit)
{
    *xres = r->xres;
    *yres = r->yres;
    *unit = r->res_unit;
}

void tiff_reader_close(tiff_reader *r)
{
    if (!r) return;
    if (r->tif) TIFFClose(r->tif);
    free(r->path);
    free(r->desc);
    free(r->ifd);
    free(r->scratch);
    free(r);
}

int tiff_reader_open(const char *path, tiff_reader **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return ss_fail(SS_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ss_fail(SS_ERR_INPUT, "%s: not a regular file", path);
    tiff_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return ss_nomem(0, "the reader of %s", path);
    }
    r->file_size = (int64_t)st.st_size;
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o) {
        tiff_reader_close(r);
        return ss_nomem(0, "libtiff's options for %s", path);
    }
    TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, r);
    TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, r);
    TIFFOpenOptionsSetMaxSingleMemAlloc(o, (tmsize_t)1 << 31);
    /* 'm': no memory mapping, so a file cut short while we read it gives a
     * read error instead of SIGBUS. */
    r->tif = TIFFOpenExt(path, "rm", o);
    TIFFOpenOptionsFree(o);
    if (!r->tif) {
        int rc = ss_fail(SS_ERR_INPUT, "%s: cannot open as TIFF (%s)", path, why(r, "not a TIFF file"));
        tiff_reader_close(r);
        return rc;
    }
    char *d = NULL;
    if (TIFFGetField(r->tif, TIFFTAG_IMAGEDESCRIPTION, &d) == 1 && d && !(r->desc = strdup(d))) goto nomem;
    float xr = 0, yr = 0;
    uint16_t ru = 0;
    if (TIFFGetField(r->tif, TIFFTAG_XRESOLUTION, &xr) == 1) r->xres = xr;
    if (TIFFGetField(r->tif, TIFFTAG_YRESOLUTION, &yr) == 1) r->yres = yr;
    if (TIFFGetField(r->tif, TIFFTAG_RESOLUTIONUNIT, &ru) == 1) r->res_unit = ru;
    size_t cap = 0;
    for (;;) {
        if ((size_t)r->n_pages == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *n = realloc(r->ifd, cap * sizeof *n);
            if (!n) goto nomem;
            r->ifd = n;
        }
        r->ifd[r->n_pages++] = TIFFCurrentDirOffset(r->tif);
        r->msg[0] = 0;
        if (TIFFLastDirectory(r->tif)) break;
        if (!TIFFReadDirectory(r->tif)) {
            /* libtiff stops quietly at an IFD it has seen before: a chain
             * that loops back (page 4 -> page 2) would read as a shorter
             * file. */
            if (!r->msg[0]) {
                int rc = ss_fail(SS_ERR_INPUT, "%s: corrupt TIFF: the IFD chain loops (page %lld points back to an "
                                 "earlier page)", path, (long long)r->n_pages);
                tiff_reader_close(r);
                return rc;
            }
            break;
        }
    }
    if (r->msg[0]) {
        int rc = ss_fail(SS_ERR_INPUT, "%s: corrupt or truncated TIFF: cannot read the IFD after page %lld (%s)", path,
                         (long long)(r->n_pages - 1), r->msg);
        tiff_reader_close(r);
        return rc;
    }
    r->cur = r->n_pages - 1;
    *out = r;
    return SS_OK;
nomem:
    tiff_reader_close(r);
    return ss_nomem(0, "the page list and description of %s", path);
}

static int goto_page(tiff_reader *r, int64_t p)
{
    if (p < 0 || p >= r->n_pages)
        return ss_fail(SS_ERR_INPUT, "%s: no page %lld (the file has %lld)", r->path, (long long)p, (long long)r->n_pages);
    if (r->contiguous) p = 0;
    if (r->cur == p) return SS_OK;
    r->msg[0] = 0;
    int ok = p == r->cur + 1 ? TIFFReadDirectory(r->tif) : TIFFSetSubDirectory(r->tif, r->ifd[p]);
    if (!ok) {
        r->cur = -1;
        return ss_fail(SS_ERR_INPUT, "%s: corrupt or truncated TIFF: cannot read the IFD of page %lld (%s)", r->path,
                       (long long)p, why(r, "read error"));
    }
    r->cur = p;
    return SS_OK;
}

static const char *photometric_name(int p)
{
    switch (p) {
    case PHOTOMETRIC_RGB: return "RGB";
    case PHOTOMETRIC_PALETTE: return "palette";
    case PHOTOMETRIC_MASK: return "transparency mask";
    case PHOTOMETRIC_SEPARATED: return "CMYK";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_CIELAB: case PHOTOMETRIC_ICCLAB: case PHOTOMETRIC_ITULAB: return "CIE L*a*b*";
    default: return "colour";
    }
}

static int page_info(tiff_reader *r, int64_t p, tiff_page_info *info)
{
    TIFF *t = r->tif;
    const char *f = r->path;
    long long pg = (long long)p;
    uint32_t w = 0, h = 0;
    uint16_t spp = 1, planar = 1, photo = PHOTOMETRIC_MINISBLACK, bits = 1, fmt = SAMPLEFORMAT_UINT, comp = 1;
    uint16_t *cm[3];
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &fmt);
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &comp);
    if (TIFFIsTiled(t)) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
        return ss_fail(SS_ERR_INPUT, "%s: page %lld is tiled (%ux%u tiles); only strip TIFFs are supported (save it without tiles)",
                       f, pg, tw, th);
    }
    if (planar == PLANARCONFIG_SEPARATE && spp > 1)
        return ss_fail(SS_ERR_INPUT, "%s: page %lld has planar configuration 2 (%u samples stored as separate planes); "
                       "expected one grey-level sample per pixel", f, pg, spp);
    if (photo == PHOTOMETRIC_PALETTE || TIFFGetField(t, TIFFTAG_COLORMAP, &cm[0], &cm[1], &cm[2]) == 1)
        return ss_fail(SS_ERR_INPUT, "%s: page %lld is a palette (colormap) image; expected grey-level intensities", f, pg);
    if (spp != 1)
        return ss_fail(SS_ERR_INPUT, "%s: page %lld has %u samples per pixel (%s); expected one grey-level sample per pixel "
                       "(split the channels first)", f, pg, spp, photo == PHOTOMETRIC_RGB ? "RGB" : "interleaved channels");
    if (photo != PHOTOMETRIC_MINISBLACK && photo != PHOTOMETRIC_MINISWHITE)
        return ss_fail(SS_ERR_INPUT, "%s: page %lld is a %s image (photometric %u); expected grey levels", f, pg,
                       photometric_name(photo), photo);
    ss_dtype dt;
    if (fmt == SAMPLEFORMAT_UINT && bits == 8) dt = DT_U8;
    else if (fmt == SAMPLEFORMAT_INT && bits == 8) dt = DT_I16;
    else if (fmt == SAMPLEFORMAT_UINT && bits == 16) dt = DT_U16;
    else if (fmt == SAMPLEFORMAT_INT && bits == 16) dt = DT_I16;
    else if (fmt == SAMPLEFORMAT_UINT && bits == 32) dt = DT_U32;
    else if (fmt == SAMPLEFORMAT_INT && bits == 32) dt = DT_I32;
    else if (fmt == SAMPLEFORMAT_IEEEFP && (bits == 32 || bits == 64)) dt = DT_F32;
    else {
        static const char *const kind[] = {"?", "unsigned", "signed", "float", "untyped", "complex int", "complex float"};
        return ss_fail(SS_ERR_INPUT, "%s: page %lld has unsupported samples: %u-bit %s (supported: 8, 16, 32-bit integers, "
                       "32 or 64-bit floats)", f, pg, bits, fmt < 7 ? kind[fmt] : "?");
    }
    if (!TIFFIsCODECConfigured(comp)) {
        const TIFFCodec *c = TIFFFindCODEC(comp);
        return ss_fail(SS_ERR_INPUT, "%s: page %lld uses compression %u (%s), which this libtiff cannot decode", f, pg, comp,
                       c ? c->name : "unknown");
    }
    if (w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || (int64_t)w * h * (bits / 8) > MAX_PLANE_BYTES)
        return ss_fail(SS_ERR_INPUT, "%s: page %lld has an implausible size %ux%u", f, pg, w, h);
    /* A small file cannot hold a big plane (uncompressed pixels take their
     * own bytes in it): checked before anything the size of the plane is
     * allocated, so that a damaged header is an input error, not exit 71. */
    int64_t plane = (int64_t)w * h * (bits / 8);
    if (plane > (comp == COMPRESSION_NONE ? r->file_size : r->file_size * MAX_CODEC_RATIO))
        return ss_fail(SS_ERR_INPUT, "%s: corrupt or truncated TIFF: page %lld claims %ux%u pixels of %u bits (%lld bytes%s), "
                       "more than the file's %lld bytes can hold", f, pg, w, h, bits, (long long)plane,
                       comp == COMPRESSION_NONE ? ", uncompressed" : "", (long long)r->file_size);
    info->width = w;
    info->height = h;
    info->dtype = dt;
    info->bits = bits;
    info->sample_format = fmt;
    info->compression = comp;
    return SS_OK;
}

int tiff_reader_page(tiff_reader *r, int64_t p, tiff_page_info *info)
{
    if (r->contiguous) {
        if (p < 0 || p >= r->n_pages)
            return ss_fail(SS_ERR_INPUT, "%s: no page %lld (the file has %lld)", r->path, (long long)p, (long long)r->n_pages);
        *info = r->first;
        return SS_OK;
    }
    int rc = goto_page(r, p);
    return rc != SS_OK ? rc : page_info(r, p, info);
}

static void swap_bytes(void *buf, size_t n, int size)
{
    unsigned char *b = buf;
    for (size_t i = 0; i < n; i++, b += size)
        for (int k = 0; k < size / 2; k++) {
            unsigned char x = b[k];
            b[k] = b[size - 1 - k];
            b[size - 1 - k] = x;
        }
}

int tiff_reader_read(tiff_reader *r, int64_t p, void *buf)
{
    tiff_page_info in;
    int rc = tiff_reader_page(r, p, &in);
    if (rc != SS_OK) return rc;
    size_t n = (size_t)(in.width * in.height), fsize = (size_t)in.bits / 8, bytes = n * fsize;
    int convert = (size_t)in.bits / 8 != dtype_size(in.dtype);
    void *dst = buf;
    if (convert) {
        if (r->scratch_size < bytes) {
            free(r->scratch);
            r->scratch_size = 0;
            if (!(r->scratch = malloc(bytes)))
                return ss_nomem(bytes, "page %lld of %s (%lld x %lld, %d bits)", (long long)p, r->path,
                                (long long)in.height, (long long)in.width, in.bits);
            r->scratch_size = bytes;
        }
        dst = r->scratch;
    }
    if (r->contiguous) {
        int fd = TIFFFileno(r->tif);
        off_t off = (off_t)(r->data_offset + (uint64_t)p * bytes);
        size_t got = 0;
        while (got < bytes) {
            ssize_t k = pread(fd, (char *)dst + got, bytes - got, off + (off_t)got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0)
                return ss_fail(SS_ERR_INPUT, "%s: truncated TIFF: plane %lld of the contiguous ImageJ data is cut short (%s)",
                               r->path, (long long)p, k < 0 ? strerror(errno) : "end of file");
            got += (size_t)k;
        }
        if (TIFFIsByteSwapped(r->tif) && fsize > 1) swap_bytes(dst, n, (int)fsize);
    } else {
        uint32_t rps = 0, nstrips = TIFFNumberOfStrips(r->tif);
        TIFFGetFieldDefaulted(r->tif, TIFFTAG_ROWSPERSTRIP, &rps);
        if (rps == 0 || rps > (uint32_t)in.height) rps = (uint32_t)in.height;
        size_t row = (size_t)in.width * fsize;
        if ((uint64_t)nstrips * rps < (uint64_t)in.height)
            return ss_fail(SS_ERR_INPUT, "%s: corrupt TIFF: page %lld has %u strips of %u rows for %lld rows", r->path,
                           (long long)p, nstrips, rps, (long long)in.height);
        for (uint32_t s = 0; s * (uint64_t)rps < (uint64_t)in.height; s++) {
            uint32_t rows = (uint32_t)in.height - s * rps;
            if (rows > rps) rows = rps;
            tmsize_t want = (tmsize_t)(rows * row);
            r->msg[0] = 0;
            r->decoding = 1;
            r->decode_warned = 0;
            tmsize_t got = TIFFReadEncodedStrip(r->tif, s, (char *)dst + (size_t)s * rps * row, want);
            r->decoding = 0;
            if (got == want && r->decode_warned)
                return ss_fail(SS_ERR_INPUT, "%s: corrupt TIFF: page %lld, strip %u does not decode cleanly: %s", r->path,
                               (long long)p, s, r->msg);
            if (got != want)
                return ss_fail(SS_ERR_INPUT, "%s: corrupt or truncated TIFF: page %lld, strip %u: %s", r->path, (long long)p,
                               s, why(r, "short read"));
        }
    }
    if (convert) {
        if (in.bits == 8) { /* int8 -> int16 */
            const int8_t *s = dst;
            int16_t *o = buf;
            for (size_t i = 0; i < n; i++) o[i] = s[i];
        } else {
            dtype_convert(buf, DT_F32, dst, DT_F64, n);
        }
    }
    return SS_OK;
}

int tiff_reader_set_contiguous(tiff_reader *r, int64_t n)
{
    tiff_page_info in;
    int rc = goto_page(r, 0);
    if (rc == SS_OK) rc = page_info(r, 0, &in);
    if (rc != SS_OK) return rc;
    if (r->n_pages != 1 || in.compression != COMPRESSION_NONE || n < 1) return SS_ERR_INPUT;
    uint64_t bytes = (uint64_t)in.width * (uint64_t)in.height * (uint64_t)(in.bits / 8);
    uint32_t ns = TIFFNumberOfStrips(r->tif);
    uint64_t off0 = TIFFGetStrileOffset(r->tif, 0), next = off0, total = 0;
    for (uint32_t s = 0; s < ns; s++) {
        uint64_t o = TIFFGetStrileOffset(r->tif, s), c = TIFFGetStrileByteCount(r->tif, s);
        if (o != next) return SS_ERR_INPUT;
        next = o + c;
        total += c;
    }
    /* ImageJ writes the IFD first and the pixels last: planes running into an
     * IFD would not be pixels. */
    /* Overflow-safe: n * bytes of a hostile count can wrap past the size check. */
    uint64_t span;
    if (total != bytes || off0 <= r->ifd[0] || __builtin_mul_overflow((uint64_t)n, bytes, &span) ||
        off0 > (uint64_t)r->file_size || span > (uint64_t)r->file_size - off0)
        return SS_ERR_INPUT;
    r->first = in;
    r->data_offset = off0;
    r->contiguous = 1;
    r->n_pages = n;
    return SS_OK;
}
