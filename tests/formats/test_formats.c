/* Unit tests of pipeline/formats: metadata parsing (ImageJ, OME-XML), file
 * patterns and natural order, and TIFF write -> read round trips through the
 * library's own writer and reader (the Python tests check both against
 * tifffile). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "filepattern.h"
#include "tiff_meta.h"
#include "tiff_read.h"
#include "tiff_write.h"
#include "util.h"
#include "tap.h"

static char tmp[256];

static void touch(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}

static void test_natural(void)
{
    CHECK(natural_cmp("ch2.tif", "ch10.tif") < 0, "natural order: ch2 before ch10");
    CHECK(natural_cmp("ch10.tif", "ch9.tif") > 0, "natural order: ch10 after ch9");
    CHECK(natural_cmp("a02", "a2") > 0 && natural_cmp("a2", "a02") < 0, "natural order: equal values, fewer zeros first");
    CHECK(natural_cmp("x1y10", "x1y9") > 0, "natural order: second number decides");
    CHECK(natural_cmp("abc", "abc") == 0 && natural_cmp("ab", "abc") < 0, "natural order: prefixes");
    CHECK(natural_cmp("z99999999999999999999", "z100000000000000000000") < 0, "natural order: numbers wider than 64 bits");
}

static void test_patterns(void)
{
    const char *names[] = {"ch2.tif", "ch10.tif", "ch1.tif", ".ch3.tif", "ch4.txt", "A_0001_0002.tif", "A_0002_0001.tif",
                           "A_01_0001.tif", "A_12345_0001.tif", "A_01234_0002.tif", "rep0.tif", "rep1.tif"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) touch(names[i]);
    char p[512];
    fpat_set s;
    snprintf(p, sizeof p, "%s/ch*.tif", tmp);
    int rc = fpat_expand(p, &s);
    CHECK(rc == SS_OK && s.n == 3 && !s.has_z && !s.has_r, "glob ch*.tif: 3 files (hidden and .txt excluded), no fields");
    if (rc == SS_OK && s.n == 3)
        CHECK(strstr(s.files[0].path, "/ch1.tif") && strstr(s.files[1].path, "/ch2.tif") && strstr(s.files[2].path, "/ch10.tif"),
              "glob: natural order ch1, ch2, ch10");
    fpat_free(&s);
    snprintf(p, sizeof p, "%s/A_{z:04d}_{r:04d}.tif", tmp);
    rc = fpat_expand(p, &s);
    int ok = rc == SS_OK && s.n == 3 && s.has_z && s.has_r;
    CHECK(ok, "pattern {z:04d}_{r:04d}: 4-digit fields, and 5 digits only without a leading 0 (3 files)");
    if (ok) {
        int found = 0;
        for (size_t i = 0; i < s.n; i++) {
            if (strstr(s.files[i].path, "A_0001_0002") && s.files[i].z == 1 && s.files[i].r == 2) found++;
            if (strstr(s.files[i].path, "A_0002_0001") && s.files[i].z == 2 && s.files[i].r == 1) found++;
            if (strstr(s.files[i].path, "A_12345_0001") && s.files[i].z == 12345 && s.files[i].r == 1) found++;
        }
        CHECK(found == 3, "pattern: field values parsed (z=1 r=2, z=2 r=1, z=12345 r=1)");
    }
    fpat_free(&s);
    snprintf(p, sizeof p, "%s/A_{z}_{t}.tif", tmp);
    rc = fpat_expand(p, &s);
    CHECK(rc == SS_OK && s.n == 5 && s.has_r, "pattern {z}_{t}: any digits, {t} is r (5 files)");
    fpat_free(&s);
    snprintf(p, sizeof p, "%s/rep{r}.tif", tmp);
    rc = fpat_expand(p, &s);
    CHECK(rc == SS_OK && s.n == 2 && s.files[0].r == 0 && s.files[1].r == 1 && s.files[0].z == -1,
          "pattern rep{r}.tif: r = 0, 1; z absent");
    fpat_free(&s);
    snprintf(p, sizeof p, "%s/none{z}.tif", tmp);
    rc = fpat_expand(p, &s);
    CHECK(rc == SS_OK && s.n == 0, "a pattern matching nothing gives 0 files");
    fpat_free(&s);
    snprintf(p, sizeof p, "%s/A_{q}.tif", tmp);
    rc = fpat_expand(p, &s);
    CHECK(rc == SS_ERR_CONFIG && strstr(ss_errmsg(), "{z}"), "unknown field {q}: config error naming the fields (%s)",
          ss_errmsg());
    snprintf(p, sizeof p, "%s/A_{z:0x}.tif", tmp);
    CHECK(fpat_expand(p, &s) == SS_ERR_CONFIG, "bad width {z:0x}: config error");
    snprintf(p, sizeof p, "%s/*/x.tif", tmp);
    CHECK(fpat_expand(p, &s) == SS_ERR_CONFIG && strstr(ss_errmsg(), "folder"), "wildcard in the folder: config error");
    CHECK(fpat_expand("/nonexistent-dir-ss/x*.tif", &s) == SS_ERR_INPUT && strstr(ss_errmsg(), "/nonexistent-dir-ss"),
          "missing folder: input error naming it");
    CHECK(fpat_is_pattern("/a/b/c*.tif") && fpat_is_pattern("/a/{z}.tif") && !fpat_is_pattern("/a*/b/c.tif"),
          "fpat_is_pattern looks at the file name only");
}

static void test_units(void)
{
    CHECK(unit_to_um("\xc2\xb5m") == 1 && unit_to_um("um") == 1 && unit_to_um("micron") == 1 &&
              unit_to_um("\\u00B5m") == 1 && unit_to_um("\xb5m") == 1,
          "unit: the spellings of micrometer");
    CHECK(unit_to_um("nm") == 1e-3 && unit_to_um("mm") == 1e3 && unit_to_um("cm") == 1e4 && unit_to_um("m") == 1e6,
          "unit: nm, mm, cm, m");
    CHECK(unit_to_um("pixel") == 0 && unit_to_um("") == 0 && unit_to_um(NULL) == 0 && unit_to_um("furlong") == 0,
          "unit: pixel, empty and unknown give 0");
    CHECK(unit_to_um("\xc3\x85") == 1e-4 && unit_to_um(" Micron ") == 1, "unit: angstrom; case and blanks");
}

static void test_imagej(void)
{
    tiff_meta m;
    tiff_meta_parse("ImageJ=1.53t\nimages=24\nchannels=2\nslices=4\nframes=3\nhyperstack=true\nmode=composite\n"
                    "unit=nm\nspacing=250\nloop=false\n",
                    &m);
    CHECK(m.kind == TMETA_IMAGEJ && m.size_c == 2 && m.size_z == 4 && m.size_t == 3 && m.ij_images == 24,
          "ImageJ hyperstack: channels 2, slices 4, frames 3");
    CHECK_NEAR(m.voxel[0], 0.25, 1e-12, "ImageJ spacing 250 nm -> 0.25 um");
    CHECK_NEAR(m.ij_unit_um, 1e-3, 1e-15, "ImageJ unit nm");
    CHECK(tiff_meta_plane_index(&m, 2, 1, 1) == (1 * 4 + 2) * 2 + 1, "ImageJ page of (z=2, t=1, c=1) is TZC order");
    tiff_meta_free(&m);
    tiff_meta_parse("ImageJ=1.11a\nimages=10\nslices=3\nframes=3\n", &m);
    CHECK(m.size_z == 10 && m.size_t == 1 && m.size_c == 1, "ImageJ counts that do not multiply to images: a plain stack");
    tiff_meta_free(&m);
    tiff_meta_parse("ImageJ=1.52n\r\nunit=\\u00B5m\r\nspacing=1.5\r\n", &m);
    CHECK(m.kind == TMETA_IMAGEJ && m.ij_unit_um == 1 && m.voxel[0] == 1.5, "ImageJ with CRLF and an escaped mu");
    tiff_meta_free(&m);
    tiff_meta_parse("{\"shape\": [5, 20, 30]}", &m);
    CHECK(m.kind == TMETA_NONE && m.size_z == 1 && !m.error[0], "tifffile's shaped description: no metadata");
    tiff_meta_free(&m);
    tiff_meta_parse(NULL, &m);
    CHECK(m.kind == TMETA_NONE, "no description: no metadata");
    tiff_meta_free(&m);
}

static void test_ome(void)
{
    tiff_meta m;
    /* ThorImage's header: blanks around '=', default namespace, a UUID per file */
    const char *thor =
        "<?xml version=\"1.0\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2010-06\">"
        "<Image ID=\"Image:0\"><Pixels DimensionOrder=\"XYCZT\" ID=\"Pixels:0\" PhysicalSizeX=\"0.593\" "
        "PhysicalSizeY=\"0.593\" PhysicalSizeZ=\"15\" SizeC=\"2\" SizeT=\"3\" SizeX=\"128\" SizeY=\"128\" SizeZ=\"3\" "
        "Type=\"uint16\"><Channel ID=\"Channel:0:0\" SamplesPerPixel=\"1\"><LightPath/></Channel>"
        "<BinData BigEndian=\"false\" Length = \"0\" xmlns=\"http://www.openmicroscopy.org/Schemas/BinaryFile/2010-06\"/>"
        "<TiffData FirstT=\"0\" FirstZ=\"0\" FirstC=\"0\"><UUID FileName=\"ChanA_0001_0001_0001_0001.tif\">urn:uuid:A2</UUID>"
        "</TiffData><TiffData FirstT=\"2\" FirstZ=\"1\" FirstC=\"1\"><UUID FileName=\"ChanB_0001_0001_0002_0003.tif\">"
        "urn:uuid:B9</UUID></TiffData></Pixels></Image><StructuredAnnotations/></OME>";
    tiff_meta_parse(thor, &m);
    CHECK(m.kind == TMETA_OME && m.size_z == 3 && m.size_t == 3 && m.size_c == 2 && !strcmp(m.dim_order, "XYCZT") &&
              !strcmp(m.pixel_type, "uint16"),
          "OME (ThorImage): sizes, order XYCZT, type");
    CHECK(m.voxel[0] == 15 && m.voxel[1] == 0.593 && m.voxel[2] == 0.593, "OME: PhysicalSize (default unit um)");
    int ok = m.n_td == 2 && m.td[0].file && !strcmp(m.td[0].file, "ChanA_0001_0001_0001_0001.tif") && m.td[1].first_t == 2 &&
             m.td[1].first_z == 1 && m.td[1].first_c == 1 && m.td[1].plane_count == -1 && !m.td[1].has_ifd &&
             m.td[1].uuid && !strcmp(m.td[1].uuid, "urn:uuid:B9");
    CHECK(ok, "OME: TiffData with UUID FileName, First*, no IFD/PlaneCount");
    CHECK(tiff_meta_plane_index(&m, 1, 2, 1) == 1 + 2 * (1 + 3 * 2), "OME XYCZT: index = c + C * (z + Z * t)");
    int roundtrip = 1;
    for (int64_t i = 0; i < 18; i++) {
        int64_t z, t, c;
        tiff_meta_plane_coords(&m, i, &z, &t, &c);
        roundtrip &= tiff_meta_plane_index(&m, z, t, c) == i;
    }
    CHECK(roundtrip, "OME: plane coords and index are inverses");
    tiff_meta_free(&m);

    tiff_meta_parse("<?xml version='1.0' encoding='UTF-8'?>\n<!-- written by hand -->\n<ome:OME xmlns:ome=\"x\" UUID=\"urn:uuid:1\">"
                    "<ome:Image ID='Image:0' Name='a &amp; b &#x3c;c&#62;'><ome:Pixels DimensionOrder='XYZTC' SizeZ='4' SizeT='2' "
                    "SizeC='1' PhysicalSizeX='250' PhysicalSizeXUnit='nm' PhysicalSizeZ='0.002' PhysicalSizeZUnit='mm'>"
                    "<ome:TiffData IFD='3' PlaneCount='5' FirstZ='1'/></ome:Pixels></ome:Image>"
                    "<ome:Image ID='Image:1'><ome:Pixels SizeZ='99'/></ome:Image></ome:OME>",
                    &m);
    CHECK(m.kind == TMETA_OME && m.size_z == 4 && m.size_t == 2 && m.n_images == 2 && m.uuid && !strcmp(m.uuid, "urn:uuid:1"),
          "OME with prefixes, comments, single quotes, 2 images (the first counts)");
    CHECK_NEAR(m.voxel[2], 0.25, 1e-12, "OME: 250 nm -> 0.25 um");
    CHECK_NEAR(m.voxel[0], 2.0, 1e-12, "OME: 0.002 mm -> 2 um");
    CHECK(m.voxel[1] == 0, "OME: PhysicalSizeY absent -> 0");
    CHECK(m.n_td == 1 && m.td[0].has_ifd && m.td[0].ifd == 3 && m.td[0].plane_count == 5 && m.td[0].first_z == 1 && !m.td[0].file,
          "OME: TiffData IFD, PlaneCount, FirstZ; no file");
    CHECK(tiff_meta_plane_index(&m, 3, 1, 0) == 3 + 4 * 1, "OME XYZTC: index = z + Z * t");
    tiff_meta_free(&m);

    tiff_meta_parse("<?xml version=\"1.0\"?><OME><Image><Pixels SizeZ=\"3\" SizeT=\"2\"", &m);
    CHECK(m.kind == TMETA_NONE && m.error[0], "truncated OME-XML: no metadata, with a reason (%s)", m.error);
    tiff_meta_free(&m);
    tiff_meta_parse("<OME><Image><Pixels SizeZ=3/></Image></OME>", &m);
    CHECK(m.kind == TMETA_NONE && strstr(m.error, "unquoted"), "unquoted attribute: no metadata (%s)", m.error);
    tiff_meta_free(&m);
    tiff_meta_parse("<OME></OME>", &m);
    CHECK(m.kind == TMETA_NONE && strstr(m.error, "Image"), "OME without Image: no metadata (%s)", m.error);
    tiff_meta_free(&m);
}

static int write_stack(const char *path, tiff_out_kind kind, ss_dtype dt, int64_t T, int64_t Z, int64_t Y, int64_t X,
                       int bigtiff, uint64_t above, void **data_out)
{
    size_t es = dtype_size(dt), plane = (size_t)(Y * X) * es;
    unsigned char *data = malloc(plane * (size_t)(T * Z));
    for (size_t i = 0; i < plane * (size_t)(T * Z); i++) data[i] = (unsigned char)(i * 131 + i / 7);
    if (dt == DT_F32) /* finite floats only */
        for (size_t i = 0; i < plane * (size_t)(T * Z) / 4; i++) ((float *)data)[i] = (float)i * 0.5f - 100.f;
    tiff_out_spec s = {.kind = kind, .frames = T, .slices = Z, .height = Y, .width = X, .dtype = dt,
                       .voxel = {2.5, 0.4, 0.3}, .bigtiff = bigtiff, .bigtiff_above = above, .name = "t<&>",
                       .creator = "test"};
    tiff_out *w;
    int rc = tiff_out_open(path, &s, &w);
    for (int64_t p = 0; p < T * Z && rc == SS_OK; p++) rc = tiff_out_write_plane(w, data + (size_t)p * plane);
    if (rc == SS_OK) rc = tiff_out_close(w);
    else if (w) tiff_out_abort(w);
    *data_out = data;
    return rc;
}

static int read_all_equal(const char *path, ss_dtype dt, int64_t n, int64_t Y, int64_t X, const void *data, tiff_reader **rdo)
{
    tiff_reader *r;
    if (tiff_reader_open(path, &r) != SS_OK) return 0;
    size_t plane = (size_t)(Y * X) * dtype_size(dt);
    void *buf = malloc(plane);
    int ok = tiff_reader_pages(r) == n;
    for (int64_t p = 0; p < n && ok; p++) {
        tiff_page_info in;
        ok = tiff_reader_page(r, p, &in) == SS_OK && in.dtype == dt && in.width == X && in.height == Y &&
             tiff_reader_read(r, p, buf) == SS_OK && !memcmp(buf, (const char *)data + (size_t)p * plane, plane);
    }
    /* backwards, so that pages are reached out of order */
    for (int64_t p = n - 1; p >= 0 && ok; p--)
        ok = tiff_reader_read(r, p, buf) == SS_OK && !memcmp(buf, (const char *)data + (size_t)p * plane, plane);
    free(buf);
    if (rdo) *rdo = r;
    else tiff_reader_close(r);
    return ok;
}

static void test_roundtrip(void)
{
    const ss_dtype dts[] = {DT_U8, DT_U16, DT_I16, DT_U32, DT_I32, DT_F32};
    char path[512];
    for (size_t i = 0; i < sizeof dts / sizeof *dts; i++) {
        snprintf(path, sizeof path, "%s/rt_%s.tif", tmp, dtype_name(dts[i]));
        void *data;
        int rc = write_stack(path, TIFF_OUT_IMAGEJ, dts[i], 2, 3, 17, 23, 0, 0, &data);
        tiff_reader *r = NULL;
        int ok = rc == SS_OK && read_all_equal(path, dts[i], 6, 17, 23, data, &r);
        CHECK(ok, "ImageJ %s: written and read back identical, any page order", dtype_name(dts[i]));
        if (ok) {
            tiff_meta m;
            tiff_meta_parse(tiff_reader_description(r), &m);
            double xr, yr;
            int u;
            tiff_reader_resolution(r, &xr, &yr, &u);
            CHECK(m.kind == TMETA_IMAGEJ && m.size_t == 2 && m.size_z == 3 && m.voxel[0] == 2.5 && m.ij_unit_um == 1 &&
                      fabs(1 / xr - 0.3) < 1e-6 && fabs(1 / yr - 0.4) < 1e-6 && !tiff_reader_is_bigtiff(r),
                  "ImageJ %s: frames 2, slices 3, spacing, unit, 1/XResolution = voxel x", dtype_name(dts[i]));
            tiff_meta_free(&m);
        }
        tiff_reader_close(r);
        free(data);
    }
    void *data;
    snprintf(path, sizeof path, "%s/rt.ome.tif", tmp);
    int rc = write_stack(path, TIFF_OUT_OME, DT_U16, 3, 2, 9, 11, 1, 0, &data);
    tiff_reader *r = NULL;
    int ok = rc == SS_OK && read_all_equal(path, DT_U16, 6, 9, 11, data, &r);
    CHECK(ok && tiff_reader_is_bigtiff(r), "OME-TIFF forced BigTIFF: read back identical");
    if (ok) {
        tiff_meta m;
        tiff_meta_parse(tiff_reader_description(r), &m);
        CHECK(m.kind == TMETA_OME && m.size_t == 3 && m.size_z == 2 && m.size_c == 1 && !strcmp(m.dim_order, "XYZTC") &&
                  m.voxel[0] == 2.5 && m.voxel[1] == 0.4 && m.voxel[2] == 0.3 && m.n_td == 1 && m.td[0].plane_count == 6,
              "OME-TIFF: our OME-XML parses back (sizes, order, PhysicalSize, TiffData)");
        tiff_meta_free(&m);
    }
    tiff_reader_close(r);
    free(data);
    snprintf(path, sizeof path, "%s/rt_auto.tif", tmp);
    rc = write_stack(path, TIFF_OUT_IMAGEJ, DT_U8, 1, 4, 8, 8, 0, 200, &data);
    ok = rc == SS_OK && read_all_equal(path, DT_U8, 4, 8, 8, data, &r);
    CHECK(ok && tiff_reader_is_bigtiff(r), "BigTIFF chosen above the threshold (256 bytes of pixels > 200)");
    tiff_reader_close(r);
    free(data);
    rc = write_stack(path, TIFF_OUT_IMAGEJ, DT_U8, 1, 4, 8, 8, 0, 256, &data);
    FILE *f;
    ok = rc == SS_OK && read_all_equal(path, DT_U8, 4, 8, 8, data, &r);
    CHECK(ok && !tiff_reader_is_bigtiff(r), "classic TIFF at the threshold (256 bytes, threshold 256)");
    tiff_reader_close(r);
    free(data);

    /* ImageJ over 4 GiB: one IFD, then the planes back to back. libtiff puts
     * the IFD after the pixels, so bytes appended to its file are not
     * contiguous planes (tests/stages/import/tiff_import.py checks the real layout). */
    snprintf(path, sizeof path, "%s/contig.tif", tmp);
    rc = write_stack(path, TIFF_OUT_IMAGEJ, DT_U16, 1, 1, 6, 5, 0, 0, &data);
    uint16_t more[2][30] = {{0}};
    f = fopen(path, "ab");
    if (f) fwrite(more, 1, sizeof more, f), fclose(f);
    ok = rc == SS_OK && tiff_reader_open(path, &r) == SS_OK;
    CHECK(ok && tiff_reader_set_contiguous(r, 3) != SS_OK && tiff_reader_pages(r) == 1,
          "contiguous: refused when the IFD lies after the pixels");
    if (ok) tiff_reader_close(r);
    free(data);
}

static void test_errors(void)
{
    char path[512];
    tiff_reader *r;
    snprintf(path, sizeof path, "%s/junk.tif", tmp);
    FILE *f = fopen(path, "w");
    if (f) fputs("this is not a TIFF file at all, just text\n", f), fclose(f);
    int rc = tiff_reader_open(path, &r);
    CHECK(rc == SS_ERR_INPUT && strstr(ss_errmsg(), path) && !strchr(ss_errmsg(), '\n'),
          "not a TIFF: input error naming the file, one line (%s)", ss_errmsg());
    snprintf(path, sizeof path, "%s/missing.tif", tmp);
    CHECK(tiff_reader_open(path, &r) == SS_ERR_INPUT && strstr(ss_errmsg(), "missing.tif"), "missing file: input error");
    CHECK(tiff_reader_open(tmp, &r) == SS_ERR_INPUT && strstr(ss_errmsg(), "not a regular file"), "a folder: input error");
    /* truncated inside the pixel data of the last page */
    void *data;
    snprintf(path, sizeof path, "%s/trunc.tif", tmp);
    rc = write_stack(path, TIFF_OUT_IMAGEJ, DT_U16, 1, 3, 40, 40, 0, 0, &data);
    free(data);
    struct stat st;
    stat(path, &st);
    if (truncate(path, 8 + 40 * 40 * 2 * 2 + 100) != 0) perror("truncate");
    int failed = 0;
    if (tiff_reader_open(path, &r) != SS_OK) {
        failed = 1;
    } else {
        uint16_t *buf = malloc(40 * 40 * 2);
        for (int64_t p = 0; p < tiff_reader_pages(r) && !failed; p++) failed = tiff_reader_read(r, p, buf) != SS_OK;
        if (tiff_reader_pages(r) < 3) failed = 1;
        free(buf);
        tiff_reader_close(r);
    }
    CHECK(rc == SS_OK && failed && strstr(ss_errmsg(), "trunc.tif"), "truncated TIFF: an error naming the file (%s)",
          ss_errmsg());
    tiff_out *w;
    tiff_out_spec s = {.kind = TIFF_OUT_OME, .frames = 1, .slices = 1, .height = 2, .width = 2, .dtype = DT_I64};
    snprintf(path, sizeof path, "%s/i64.ome.tif", tmp);
    CHECK(tiff_out_open(path, &s, &w) == SS_ERR_CONFIG && strstr(ss_errmsg(), "int64"), "OME-TIFF of int64: refused");
    s.kind = TIFF_OUT_IMAGEJ;
    CHECK(tiff_out_open("/nonexistent-dir-ss/x.tif", &s, &w) == SS_ERR_IO, "unwritable path: I/O error");
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "%s/ss-formats-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) SKIP_ALL("cannot make a temporary folder");
    test_natural();
    test_patterns();
    test_units();
    test_imagej();
    test_ome();
    test_roundtrip();
    test_errors();
    if (!getenv("KEEP_TMP")) fs_rm_rf(tmp);
    return tap_done();
}
