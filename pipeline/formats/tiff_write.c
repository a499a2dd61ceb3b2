/* ImageJ and OME-TIFF through libtiff; see tiff_write.h for the layout. */
#include "tiff_write.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

#define SINGLE_STRIP_MAX ((int64_t)256 << 20)
#define STRIP_TARGET ((int64_t)64 << 20)

struct tiff_out {
    TIFF *tif;
    char *path;
    tiff_out_spec spec;
    char *desc;
    int64_t planes, written;
    uint32_t rows_per_strip;
    int bigtiff;
    char msg[256];
};

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    tiff_out *w = user;
    if (w && !w->msg[0]) {
        vsnprintf(w->msg, sizeof w->msg, fmt, ap);
        for (char *p = w->msg; *p; p++)
            if (*p == '\n') *p = ' ';
    }
    return 1;
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) { return 1; }

static const char *ome_type(ss_dtype t)
{
    switch (t) {
    case DT_U8: return "uint8";
    case DT_U16: return "uint16";
    case DT_I16: return "int16";
    case DT_U32: return "uint32";
    case DT_I32: return "int32";
    case DT_F32: return "float";
    case DT_F64: return "double";
    default: return NULL;
    }
}

static void xml_attr(sbuf *b, const char *key, const char *v)
{
    sbuf_printf(b, " %s=\"", key);
    for (; *v; v++) {
        switch (*v) {
        case '&': sbuf_put(b, "&amp;"); break;
        case '<': sbuf_put(b, "&lt;"); break;
        case '>': sbuf_put(b, "&gt;"); break;
        case '"': sbuf_put(b, "&quot;"); break;
        default:
            if ((unsigned char)*v < 0x20) sbuf_printf(b, "&#%d;", *v);
            else sbuf_putn(b, v, 1);
        }
    }
    sbuf_put(b, "\"");
}

/* Shortest decimal text that reads back as the same double. */
static void put_num(sbuf *b, double v)
{
    char t[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v) break;
    }
    sbuf_put(b, t);
}

char *tiff_out_description(const tiff_out_spec *s)
{
    sbuf b = {0};
    const double *v = s->voxel;
    if (s->kind == TIFF_OUT_IMAGEJ) {
        /* The keys and their order follow what ImageJ itself writes. */
        sbuf_printf(&b, "ImageJ=1.11a\nimages=%lld\n", (long long)(s->frames * s->slices));
        if (s->slices > 1) sbuf_printf(&b, "slices=%lld\n", (long long)s->slices);
        if (s->frames > 1) sbuf_printf(&b, "frames=%lld\n", (long long)s->frames);
        if (s->slices > 1 && s->frames > 1) sbuf_put(&b, "hyperstack=true\n");
        sbuf_put(&b, "mode=grayscale\n");
        if (v[1] > 0 && v[2] > 0) sbuf_put(&b, "unit=micron\n");
        if (v[0] > 0) {
            sbuf_put(&b, "spacing=");
            put_num(&b, v[0]);
            sbuf_put(&b, "\n");
        }
        sbuf_put(&b, "loop=false\n");
    } else {
        sbuf_put(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                     "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\""
                     " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""
                     " xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06"
                     " http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\"");
        if (s->creator) xml_attr(&b, "Creator", s->creator);
        sbuf_put(&b, "><Image ID=\"Image:0\"");
        if (s->name) xml_attr(&b, "Name", s->name);
        sbuf_printf(&b, "><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYZTC\" Type=\"%s\" SizeX=\"%lld\" SizeY=\"%lld\""
                        " SizeZ=\"%lld\" SizeT=\"%lld\" SizeC=\"1\" BigEndian=\"false\" Interleaved=\"false\"",
                    ome_type(s->dtype) ? ome_type(s->dtype) : "uint8", (long long)s->width, (long long)s->height,
                    (long long)s->slices, (long long)s->frames);
        static const char axis[3] = {'Z', 'Y', 'X'};
        for (int i = 2; i >= 0; i--)
            if (v[i] > 0) {
                sbuf_printf(&b, " PhysicalSize%c=\"", axis[i]);
                put_num(&b, v[i]);
                sbuf_printf(&b, "\" PhysicalSize%cUnit=\"\xc2\xb5m\"", axis[i]);
            }
        sbuf_printf(&b, "><Channel ID=\"Channel:0:0\" SamplesPerPixel=\"1\"><LightPath/></Channel>"
                        "<TiffData IFD=\"0\" PlaneCount=\"%lld\"/></Pixels></Image></OME>",
                    (long long)(s->frames * s->slices));
    }
    char *out = b.s ? b.s : strdup("");
    return out;
}

int tiff_out_is_bigtiff(const tiff_out *w) { return w->bigtiff; }

int tiff_out_open(const char *path, const tiff_out_spec *spec, tiff_out **out)
{
    *out = NULL;
    const tiff_out_spec *s = spec;
    if (s->frames < 1 || s->slices < 1 || s->height < 1 || s->width < 1 || s->height > UINT32_MAX ||
        s->width > UINT32_MAX)
        return ss_fail(SS_ERR_CONFIG, "%s: cannot write a %lldx%lldx%lldx%lld stack as TIFF", path, (long long)s->frames,
                       (long long)s->slices, (long long)s->height, (long long)s->width);
    if (s->kind == TIFF_OUT_OME && !ome_type(s->dtype))
        return ss_fail(SS_ERR_CONFIG, "%s: OME-TIFF has no pixel type for %s; export to .tif instead", path,
                       dtype_name(s->dtype));
    tiff_out *w = calloc(1, sizeof *w);
    if (!w) return ss_fail(SS_ERR_NOMEM, "out of memory");
    w->spec = *s;
    w->spec.name = w->spec.creator = NULL;
    w->planes = s->frames * s->slices;
    w->path = strdup(path);
    w->desc = tiff_out_description(s);
    char *creator = s->creator ? strdup(s->creator) : NULL;
    if (!w->path || !w->desc || (s->creator && !creator)) {
        free(creator);
        tiff_out_abort(w);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    size_t es = dtype_size(s->dtype);
    int64_t row = s->width * (int64_t)es, plane = row * s->height;
    int64_t rps = plane <= SINGLE_STRIP_MAX ? s->height : STRIP_TARGET / row;
    if (rps < 1) rps = 1;
    if (rps > s->height) rps = s->height;
    w->rows_per_strip = (uint32_t)rps;
    uint64_t strips = (uint64_t)((s->height + rps - 1) / rps);
    uint64_t data = (uint64_t)plane * (uint64_t)w->planes;
    /* Classic TIFF offsets are 32-bit: pixel data, the IFDs (a dozen tags
     * and the strip arrays each) and the description must all fit. */
    uint64_t need = data + (uint64_t)w->planes * (512 + 8 * strips) + strlen(w->desc) + 4096;
    w->bigtiff = s->bigtiff || (s->bigtiff_above ? data > s->bigtiff_above : need > 0xFFFFFFFFull);
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (!o) {
        free(creator);
        tiff_out_abort(w);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    TIFFOpenOptionsSetErrorHandlerExtR(o, on_error, w);
    TIFFOpenOptionsSetWarningHandlerExtR(o, on_warning, w);
    w->tif = TIFFOpenExt(path, w->bigtiff ? "wl8" : "wl", o);
    TIFFOpenOptionsFree(o);
    if (!w->tif) {
        int rc = ss_fail(SS_ERR_IO, "%s: cannot create (%s)", path, w->msg[0] ? w->msg : strerror(errno));
        free(creator);
        free(w->desc);
        free(w->path);
        free(w);
        return rc;
    }
    w->spec.creator = creator;
    *out = w;
    return SS_OK;
}

static int set_tags(tiff_out *w)
{
    TIFF *t = w->tif;
    const tiff_out_spec *s = &w->spec;
    uint16_t bits = (uint16_t)(dtype_size(s->dtype) * 8);
    uint16_t fmt = s->dtype == DT_F32 || s->dtype == DT_F64                      ? SAMPLEFORMAT_IEEEFP
                   : s->dtype == DT_I16 || s->dtype == DT_I32 || s->dtype == DT_I64 ? SAMPLEFORMAT_INT
                                                                                  : SAMPLEFORMAT_UINT;
    int ok = TIFFSetField(t, TIFFTAG_SUBFILETYPE, 0) && TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)s->width) &&
             TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)s->height) && TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bits) &&
             TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, fmt) && TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1) &&
             TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK) &&
             TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_NONE) &&
             TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, w->rows_per_strip);
    if (ok && s->voxel[1] > 0 && s->voxel[2] > 0) {
        if (s->kind == TIFF_OUT_IMAGEJ) /* ImageJ: pixels per `unit` (micron), no TIFF unit */
            ok = TIFFSetField(t, TIFFTAG_XRESOLUTION, 1.0 / s->voxel[2]) &&
                 TIFFSetField(t, TIFFTAG_YRESOLUTION, 1.0 / s->voxel[1]) &&
                 TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_NONE);
        else /* plain TIFF readers: pixels per centimeter */
            ok = TIFFSetField(t, TIFFTAG_XRESOLUTION, 1e4 / s->voxel[2]) &&
                 TIFFSetField(t, TIFFTAG_YRESOLUTION, 1e4 / s->voxel[1]) &&
                 TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    }
    if (ok && w->written == 0) {
        ok = TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, w->desc);
        if (ok && s->creator) ok = TIFFSetField(t, TIFFTAG_SOFTWARE, s->creator);
    }
    return ok;
}

int tiff_out_write_plane(tiff_out *w, const void *plane)
{
    if (w->written >= w->planes) return ss_fail(SS_ERR_INTERNAL, "%s: more planes than declared", w->path);
    const tiff_out_spec *s = &w->spec;
    w->msg[0] = 0;
    if (!set_tags(w))
        return ss_fail(SS_ERR_IO, "%s: cannot set the tags of page %lld (%s)", w->path, (long long)w->written,
                       w->msg[0] ? w->msg : "libtiff error");
    size_t row = (size_t)s->width * dtype_size(s->dtype);
    for (int64_t y = 0, k = 0; y < s->height; y += w->rows_per_strip, k++) {
        int64_t rows = s->height - y < w->rows_per_strip ? s->height - y : w->rows_per_strip;
        tmsize_t n = (tmsize_t)((size_t)rows * row);
        /* libtiff takes a non-const buffer but does not change it without a
         * predictor or byte swapping, neither of which is used here. */
        if (TIFFWriteEncodedStrip(w->tif, (uint32_t)k, (char *)(uintptr_t)plane + (size_t)y * row, n) != n)
            return ss_fail(SS_ERR_IO, "%s: write failed at page %lld (%s)", w->path, (long long)w->written,
                           w->msg[0] ? w->msg : "disk full?");
    }
    if (!TIFFWriteDirectory(w->tif))
        return ss_fail(SS_ERR_IO, "%s: write failed at page %lld (%s)", w->path, (long long)w->written,
                       w->msg[0] ? w->msg : "disk full?");
    w->written++;
    return SS_OK;
}

static void out_free(tiff_out *w)
{
    free(w->desc);
    free(w->path);
    free((char *)w->spec.creator);
    free(w);
}

int tiff_out_close(tiff_out *w)
{
    int rc = SS_OK;
    if (w->written != w->planes)
        rc = ss_fail(SS_ERR_INTERNAL, "%s: %lld of %lld planes written", w->path, (long long)w->written,
                     (long long)w->planes);
    w->msg[0] = 0;
    if (rc == SS_OK && !TIFFFlush(w->tif))
        rc = ss_fail(SS_ERR_IO, "%s: write failed (%s)", w->path, w->msg[0] ? w->msg : "disk full?");
    if (rc == SS_OK && fsync(TIFFFileno(w->tif)) != 0)
        rc = ss_fail(SS_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    TIFFClose(w->tif);
    w->tif = NULL;
    if (rc != SS_OK) unlink(w->path);
    out_free(w);
    return rc;
}

void tiff_out_abort(tiff_out *w)
{
    if (!w) return;
    if (w->tif) {
        TIFFClose(w->tif);
        unlink(w->path);
    }
    out_free(w);
}
