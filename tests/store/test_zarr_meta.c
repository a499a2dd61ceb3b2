/* The store's Zarr layer (pipeline/store/zarr.h): the dtype and table-field
 * type strings both ways, compressors to and from their JSON, .zarray text
 * against what zarr-python writes, chunk encoding and decoding, the file
 * writers and readers, the NGFF multiscales entry; and with Debian's
 * python3-zarr, arrays written through it read by zarr-python and arrays
 * zarr-python wrote decoded by it. */
#include "tap.h"
#include "error.h"
#include "store.h"
#include "util.h"
#include "zarr.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char root[1024]; /* scratch directory of this run */

/* "a/b" by value, so that paths held for a while need no freeing. */
typedef struct {
    char s[2048];
} pathbuf;

static pathbuf pjoin(const char *a, const char *b)
{
    pathbuf p;
    size_t la = strlen(a), lb = strlen(b);
    if (la + 1 + lb >= sizeof p.s) la = lb = 0; /* no test path is that long */
    memcpy(p.s, a, la);
    p.s[la] = '/';
    memcpy(p.s + la + 1, b, lb);
    p.s[la + 1 + lb] = 0;
    return p;
}

/* A path for one call (the last 8 stay valid). */
static const char *cat(const char *a, const char *b)
{
    static pathbuf buf[8];
    static int k;
    pathbuf *p = &buf[k++ % 8];
    *p = pjoin(a, b);
    return p->s;
}

/* 1 if j serialised with flags is exactly want; else prints both. */
static int dumps_as(const json_t *j, size_t flags, const char *want)
{
    char *got = j ? json_dumps(j, flags) : NULL;
    int same = got && !strcmp(got, want);
    if (!same) printf("#   got:  %s\n#   want: %s\n", got ? got : "(null)", want);
    free(got);
    return same;
}

static int file_is(const char *path, const char *want)
{
    char *got = NULL;
    int same = fs_read_all(path, &got, NULL) == SS_OK && !strcmp(got, want);
    if (!same) printf("#   %s holds: %s\n", path, got ? got : "(unreadable)");
    free(got);
    return same;
}

/* ---- dtypes ----------------------------------------------------------------- */

static void test_dtypes(void)
{
    static const char *const want[DT_COUNT] = {
        [DT_U8] = "|u1",  [DT_U16] = "<u2", [DT_I16] = "<i2", [DT_U32] = "<u4",
        [DT_I32] = "<i4", [DT_I64] = "<i8", [DT_F32] = "<f4", [DT_F64] = "<f8",
    };
    for (int i = 0; i < DT_COUNT; i++) {
        const char *s = zarr_dtype_string((ss_dtype)i);
        ss_dtype back = DT_COUNT;
        CHECK(s && !strcmp(s, want[i]) && zarr_dtype_parse(s, &back) == SS_OK && back == (ss_dtype)i,
              "%s: type string %s, parsed back", dtype_name((ss_dtype)i), s ? s : "(null)");
    }
    CHECK(zarr_dtype_string(DT_COUNT) == NULL && zarr_dtype_string((ss_dtype)-1) == NULL,
          "no type string for a dtype out of range");
    static const char *const one_byte[] = {"|u1", "<u1", ">u1"};
    for (size_t i = 0; i < sizeof one_byte / sizeof *one_byte; i++) {
        ss_dtype t = DT_COUNT;
        CHECK(zarr_dtype_parse(one_byte[i], &t) == SS_OK && t == DT_U8, "%s is uint8 (byte order is moot)",
              one_byte[i]);
    }
    static const char *const refused[] = {">u2", "|u2", "=u2", ">f8", "<u8", "<f2", "<c8", "<b1", "|i1",
                                          "u2",  "<u22", "",   "<U1", "|S8", "<M8"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        ss_dtype t = DT_COUNT;
        int rc = zarr_dtype_parse(refused[i], &t);
        char quoted[32];
        snprintf(quoted, sizeof quoted, "'%s'", refused[i]);
        CHECK(rc == SS_ERR_INPUT && t == DT_COUNT && strstr(ss_errmsg(), quoted), "'%s' refused: %s", refused[i],
              ss_errmsg());
    }
    ss_dtype t = DT_COUNT;
    CHECK(zarr_dtype_parse(NULL, &t) == SS_ERR_INPUT, "no type string refused");
}

static void test_fields(void)
{
    static const struct {
        col_type type;
        size_t size;
        const char *s;
    } fields[] = {{COL_I64, 8, "<i8"}, {COL_F64, 8, "<f8"}, {COL_STR, 64, "|S64"}, {COL_STR, 1, "|S1"},
                  {COL_STR, 99999, "|S99999"}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        json_t *j = zarr_field_json(fields[i].type, fields[i].size);
        col_type type = COL_STR + 1;
        size_t size = 0;
        CHECK(json_is_string(j) && !strcmp(json_string_value(j), fields[i].s) &&
                  zarr_field_parse(fields[i].s, &type, &size) == SS_OK && type == fields[i].type &&
                  size == fields[i].size,
              "table field %s both ways", fields[i].s);
        json_decref(j);
    }
    static const char *const refused[] = {"<i4", ">i8", "<f4", "|S0", "|S", "|S01", "|Sx", "|S123456", "<S8", "|U8"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        col_type type;
        size_t size;
        CHECK(zarr_field_parse(refused[i], &type, &size) == SS_ERR_INPUT && strstr(ss_errmsg(), refused[i]),
              "table field '%s' refused: %s", refused[i], ss_errmsg());
    }
}

/* ---- compressors -------------------------------------------------------- */

static int codec_equal(const zarr_codec *a, const zarr_codec *b)
{
    return a->id == b->id && !strcmp(a->cname, b->cname) && a->level == b->level && a->shuffle == b->shuffle &&
           a->blocksize == b->blocksize;
}

static void test_codecs(void)
{
    static const struct {
        zarr_codec c;
        const char *json, *text;
    } cases[] = {
        {{ZARR_CODEC_BLOSC, "lz4", 5, 1, 0}, "{\"blocksize\":0,\"clevel\":5,\"cname\":\"lz4\",\"id\":\"blosc\",\"shuffle\":1}",
         "blosc:lz4:5:shuffle"},
        {{ZARR_CODEC_BLOSC, "zstd", 3, 2, 65536},
         "{\"blocksize\":65536,\"clevel\":3,\"cname\":\"zstd\",\"id\":\"blosc\",\"shuffle\":2}", "blosc:zstd:3:bitshuffle"},
        {{ZARR_CODEC_BLOSC, "blosclz", 9, 0, 0},
         "{\"blocksize\":0,\"clevel\":9,\"cname\":\"blosclz\",\"id\":\"blosc\",\"shuffle\":0}", "blosc:blosclz:9:noshuffle"},
        {{ZARR_CODEC_BLOSC, "zlib", 1, -1, 0},
         "{\"blocksize\":0,\"clevel\":1,\"cname\":\"zlib\",\"id\":\"blosc\",\"shuffle\":-1}", "blosc:zlib:1:autoshuffle"},
        {{ZARR_CODEC_ZLIB, "", 4, 0, 0}, "{\"id\":\"zlib\",\"level\":4}", "zlib:4"},
        {{ZARR_CODEC_GZIP, "", 6, 0, 0}, "{\"id\":\"gzip\",\"level\":6}", "gzip:6"},
        {{ZARR_CODEC_NONE, "", 0, 0, 0}, "null", "none"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = zarr_codec_json(&cases[i].c);
        zarr_codec back;
        char text[64];
        zarr_codec_text(&cases[i].c, text, sizeof text);
        CHECK(dumps_as(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY, cases[i].json) &&
                  zarr_codec_parse(j, &back) == SS_OK && codec_equal(&back, &cases[i].c),
              "compressor %s: JSON %s and back", cases[i].text, cases[i].json);
        CHECK(!strcmp(text, cases[i].text), "compressor text %s (got %s)", cases[i].text, text);
        json_decref(j);
    }
    zarr_codec none = {ZARR_CODEC_BLOSC, "x", 1, 1, 1};
    CHECK(zarr_codec_parse(NULL, &none) == SS_OK && none.id == ZARR_CODEC_NONE, "no compressor key: none");
    /* what numcodecs leaves out reads as 0, as zarr-python would default it */
    json_t *j = json_pack("{s:s, s:s}", "id", "blosc", "cname", "lz4");
    zarr_codec c;
    CHECK(zarr_codec_parse(j, &c) == SS_OK && c.id == ZARR_CODEC_BLOSC && !strcmp(c.cname, "lz4") && c.level == 0 &&
              c.shuffle == 0 && c.blocksize == 0,
          "blosc without clevel, shuffle, blocksize: zeros");
    json_decref(j);
    static const char *const refused[] = {"{\"id\": \"lzma\"}", "{\"id\": \"zstd\", \"level\": 1}", "{}", "3",
                                          "{\"id\": 7}"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        j = json_loads(refused[i], JSON_DECODE_ANY, NULL);
        CHECK(j && zarr_codec_parse(j, &c) == SS_ERR_INPUT && strstr(ss_errmsg(), "not supported"),
              "compressor %s refused: %s", refused[i], ss_errmsg());
        json_decref(j);
    }
    static const struct {
        store_compression comp;
        const char *text;
    } of[] = {{STORE_COMP_BLOSC_LZ4, "blosc:lz4:5:shuffle"},
              {STORE_COMP_BLOSC_ZSTD, "blosc:zstd:5:shuffle"},
              {STORE_COMP_GZIP, "zlib:4"},
              {STORE_COMP_NONE, "none"}};
    for (size_t i = 0; i < sizeof of / sizeof *of; i++) {
        char text[64];
        c = zarr_codec_of(of[i].comp);
        zarr_codec_text(&c, text, sizeof text);
        CHECK(!strcmp(text, of[i].text) && c.blocksize == 0, "store compression %d writes %s (got %s)", (int)of[i].comp,
              of[i].text, text);
    }
}

/* ---- .zarray ------------------------------------------------------------ */

/* zarr.open(..., shape=(6, 37, 29), chunks=(2, 16, 16), dtype="<u2",
 * compressor=Blosc("lz4", 5, 1), fill_value=0, dimension_separator="/")
 * with zarr-python 2.13 */
static const char zarray_u16_blosc[] =
    "{\n    \"chunks\": [\n        2,\n        16,\n        16\n    ],\n    \"compressor\": {\n        \"blocksize\": "
    "0,\n        \"clevel\": 5,\n        \"cname\": \"lz4\",\n        \"id\": \"blosc\",\n        \"shuffle\": 1\n    "
    "},\n    \"dimension_separator\": \"/\",\n    \"dtype\": \"<u2\",\n    \"fill_value\": 0,\n    \"filters\": "
    "null,\n    \"order\": \"C\",\n    \"shape\": [\n        6,\n        37,\n        29\n    ],\n    "
    "\"zarr_format\": 2\n}";
/* shape (3, 4), chunks (3, 4), dtype "<f4", compressor None, fill_value 0 */
static const char zarray_f32_raw[] =
    "{\n    \"chunks\": [\n        3,\n        4\n    ],\n    \"compressor\": null,\n    \"dimension_separator\": "
    "\"/\",\n    \"dtype\": \"<f4\",\n    \"fill_value\": 0.0,\n    \"filters\": null,\n    \"order\": \"C\",\n    "
    "\"shape\": [\n        3,\n        4\n    ],\n    \"zarr_format\": 2\n}";
/* shape (10,), chunks (4,), dtype [("a", "<i8"), ("b", "<f8"), ("s", "|S64")],
 * compressor Zlib(4), fill_value None */
static const char zarray_table_zlib[] =
    "{\n    \"chunks\": [\n        4\n    ],\n    \"compressor\": {\n        \"id\": \"zlib\",\n        \"level\": "
    "4\n    },\n    \"dimension_separator\": \"/\",\n    \"dtype\": [\n        [\n            \"a\",\n            "
    "\"<i8\"\n        ],\n        [\n            \"b\",\n            \"<f8\"\n        ],\n        [\n            "
    "\"s\",\n            \"|S64\"\n        ]\n    ],\n    \"fill_value\": null,\n    \"filters\": null,\n    "
    "\"order\": \"C\",\n    \"shape\": [\n        10\n    ],\n    \"zarr_format\": 2\n}";
/* zarr.open_group(..., mode="w") */
static const char zgroup_text[] = "{\n    \"zarr_format\": 2\n}";

static json_t *table_fields(void)
{
    return json_pack("[[s,o],[s,o],[s,o]]", "a", zarr_field_json(COL_I64, 8), "b", zarr_field_json(COL_F64, 8), "s",
                     zarr_field_json(COL_STR, 64));
}

static void test_zarray(void)
{
    zarr_codec blosc = zarr_codec_of(STORE_COMP_BLOSC_LZ4), none = zarr_codec_of(STORE_COMP_NONE),
               zlib = zarr_codec_of(STORE_COMP_GZIP);
    json_t *j = zarr_zarray_json(3, (int64_t[]){6, 37, 29}, (int64_t[]){2, 16, 16},
                                 json_string(zarr_dtype_string(DT_U16)), &blosc, json_integer(0));
    CHECK(dumps_as(j, ZARR_JSON_FLAGS, zarray_u16_blosc), ".zarray of a u16 blosc array: zarr-python's text");
    json_decref(j);
    j = zarr_zarray_json(2, (int64_t[]){3, 4}, (int64_t[]){3, 4}, json_string(zarr_dtype_string(DT_F32)), &none,
                         json_real(0.0));
    CHECK(dumps_as(j, ZARR_JSON_FLAGS, zarray_f32_raw), ".zarray of an uncompressed f32 array: zarr-python's text");
    json_decref(j);
    j = zarr_zarray_json(1, (int64_t[]){10}, (int64_t[]){4}, table_fields(), &zlib, json_null());
    CHECK(dumps_as(j, ZARR_JSON_FLAGS, zarray_table_zlib), ".zarray of a zlib table: zarr-python's text");
    json_decref(j);
    /* the OME-Zarr export keeps the keys in the order written */
    j = zarr_zarray_json(2, (int64_t[]){3, 4}, (int64_t[]){1, 4}, json_string("<u2"), &blosc, json_integer(0));
    CHECK(dumps_as(j, JSON_COMPACT | JSON_PRESERVE_ORDER,
                   "{\"zarr_format\":2,\"shape\":[3,4],\"chunks\":[1,4],\"dtype\":\"<u2\",\"compressor\":{\"id\":"
                   "\"blosc\",\"cname\":\"lz4\",\"clevel\":5,\"shuffle\":1,\"blocksize\":0},\"fill_value\":0,"
                   "\"order\":\"C\",\"filters\":null,\"dimension_separator\":\"/\"}"),
          ".zarray keys in zarr_format, shape, chunks, dtype, compressor, fill_value, order, filters, separator order");
    json_decref(j);
}

/* ---- chunks ------------------------------------------------------------- */

static void test_chunks(void)
{
    enum { N = 3000 };
    uint16_t src[N], dst[N];
    for (int i = 0; i < N; i++) src[i] = (uint16_t)(i * 7 % 1000);
    const size_t n = sizeof src;
    const zarr_codec codecs[] = {zarr_codec_of(STORE_COMP_BLOSC_LZ4), zarr_codec_of(STORE_COMP_BLOSC_ZSTD),
                                 {ZARR_CODEC_BLOSC, "lz4", 5, 2, 0}, {ZARR_CODEC_BLOSC, "blosclz", 9, 0, 1024},
                                 zarr_codec_of(STORE_COMP_GZIP), zarr_codec_of(STORE_COMP_NONE)};
    for (size_t i = 0; i < sizeof codecs / sizeof *codecs; i++) {
        char text[64];
        zarr_codec_text(&codecs[i], text, sizeof text);
        size_t bound = zarr_codec_bound(&codecs[i], n), size = 0;
        unsigned char *buf = malloc(bound);
        const void *out = NULL;
        memset(dst, 0xff, sizeof dst);
        int rc = zarr_chunk_encode("c", &codecs[i], 2, 2, src, n, buf, &out, &size);
        CHECK(rc == SS_OK && size > 0 && size <= bound && (codecs[i].id == ZARR_CODEC_NONE) == (out == src) &&
                  zarr_chunk_decode("c", &codecs[i], out, size, dst, n) == SS_OK && !memcmp(src, dst, n),
              "%s: a chunk encodes (%zu of %zu bytes) and decodes to itself", text, size, n);
        if (codecs[i].id != ZARR_CODEC_NONE) {
            if (codecs[i].shuffle != 0) CHECK(size < n / 2, "%s: compresses smooth data", text);
            rc = zarr_chunk_decode("c", &codecs[i], out, size, dst, n - 2);
            CHECK(rc == SS_ERR_INPUT && strstr(ss_errmsg(), "c: corrupt chunk"), "%s: a chunk of another size: %s",
                  text, ss_errmsg());
            memset(buf + size / 2, 0x5a, size - size / 2);
            rc = zarr_chunk_decode("c", &codecs[i], out, size / 2, dst, n);
            CHECK(rc == SS_ERR_INPUT && strstr(ss_errmsg(), "c: corrupt chunk"), "%s: a cut chunk: %s", text,
                  ss_errmsg());
        }
        free(buf);
    }
    zarr_codec none = zarr_codec_of(STORE_COMP_NONE);
    memcpy(dst, src, n);
    CHECK(zarr_chunk_decode("c", &none, dst, n, dst, n) == SS_OK && !memcmp(src, dst, n),
          "none: a chunk decodes in place");
    CHECK(zarr_chunk_decode("c", &none, src, n - 1, dst, n) == SS_ERR_INPUT && strstr(ss_errmsg(), "bytes for a chunk"),
          "none: a chunk of another size: %s", ss_errmsg());

    /* gzip is read, not written */
    zarr_codec gzip = {ZARR_CODEC_GZIP, "", 5, 0, 0};
    size_t bound = zarr_codec_bound(&gzip, n), size = 0;
    unsigned char *buf = malloc(bound);
    const void *out = NULL;
    CHECK(zarr_chunk_encode("c", &gzip, 2, 1, src, n, buf, &out, &size) == SS_ERR_INTERNAL,
          "gzip: chunks are not encoded");
    z_stream z;
    memset(&z, 0, sizeof z);
    int ok = deflateInit2(&z, 5, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)n;
    z.next_out = buf;
    z.avail_out = (uInt)bound;
    ok = ok && deflate(&z, Z_FINISH) == Z_STREAM_END;
    size = z.total_out;
    deflateEnd(&z);
    memset(dst, 0, n);
    CHECK(ok && buf[0] == 0x1f && buf[1] == 0x8b && zarr_chunk_decode("c", &gzip, buf, size, dst, n) == SS_OK &&
              !memcmp(src, dst, n),
          "gzip: an RFC 1952 stream decodes");
    free(buf);

    /* records wider than blosc's type sizes shuffle as bytes */
    enum { REC = 300, RECS = 20 };
    unsigned char *rec = malloc(REC * RECS), *back = malloc(REC * RECS);
    for (int i = 0; i < REC * RECS; i++) rec[i] = (unsigned char)(i % 251);
    zarr_codec blosc = zarr_codec_of(STORE_COMP_BLOSC_LZ4);
    buf = malloc(zarr_codec_bound(&blosc, REC * RECS));
    CHECK(zarr_chunk_encode("t", &blosc, REC, 1, rec, REC * RECS, buf, &out, &size) == SS_OK &&
              zarr_chunk_decode("t", &blosc, out, size, back, REC * RECS) == SS_OK && !memcmp(rec, back, REC * RECS),
          "blosc: records of %d bytes round trip", REC);
    free(buf);
    free(rec);
    free(back);
}

/* ---- files -------------------------------------------------------------- */

/* Entries of dir besides "." and ".."; -1 when it cannot be listed. */
static int count_entries(const char *dir)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, NULL);
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    return n < 0 ? -1 : n - 2;
}

static void test_files(void)
{
    pathbuf files = pjoin(root, "files");
    const char *dir = files.s;
    CHECK(mkdir(dir, 0777) == 0, "scratch folder");
    pathbuf fa = pjoin(dir, "a");
    const char *f = fa.s;
    CHECK(zarr_file_write(f, "first", 5, ZARR_WRITE_NEW_SYNCED) == SS_OK && file_is(f, "first"),
          "new synced: a new file");
    int rc = zarr_file_write(f, "again", 5, ZARR_WRITE_NEW_SYNCED);
    CHECK(rc == SS_ERR_IO && strstr(ss_errmsg(), "cannot create") && file_is(f, "first"),
          "new synced: an existing file is refused and kept: %s", ss_errmsg());
    CHECK(zarr_file_write(f, "2nd", 3, ZARR_WRITE_IN_TREE) == SS_OK && file_is(f, "2nd"),
          "in tree: an existing file is truncated and rewritten");
    CHECK(zarr_file_write(f, "third", 5, ZARR_WRITE_ATOMIC) == SS_OK && file_is(f, "third") && count_entries(dir) == 1,
          "atomic: replaced, no temporary left");
    CHECK(zarr_file_write(cat(dir, "no/such/b"), "x", 1, ZARR_WRITE_IN_TREE) == SS_ERR_IO,
          "a plain file in a missing folder is refused: %s", ss_errmsg());
    static const zarr_write_mode modes[] = {ZARR_WRITE_IN_TREE, ZARR_WRITE_NEW_SYNCED, ZARR_WRITE_ATOMIC};
    for (int m = 0; m < 3; m++) {
        char key[64];
        snprintf(key, sizeof key, "arr%d/0/1/2", m);
        pathbuf c = pjoin(dir, key);
        CHECK(zarr_chunk_write(c.s, "chunk", 5, modes[m]) == SS_OK && file_is(c.s, "chunk"),
              "chunk write (mode %d) makes the folders of its key", m);
    }
    CHECK(zarr_chunk_write(cat(dir, "arr1/0/1/2"), "x", 1, ZARR_WRITE_NEW_SYNCED) == SS_ERR_IO && strstr(ss_errmsg(), "cannot create chunk"),
          "chunk write: an existing chunk refused when new: %s", ss_errmsg());

    json_t *j = json_pack("{s:i, s:[s]}", "b", 2, "a", "x");
    pathbuf jpath = pjoin(dir, "j.json");
    const char *jf = jpath.s;
    CHECK(zarr_json_write(jf, j, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE) == SS_OK &&
              file_is(jf, "{\n    \"a\": [\n        \"x\"\n    ],\n    \"b\": 2\n}"),
          "JSON written with the flags given");
    json_t *back = NULL;
    CHECK(zarr_json_read(jf, 0, &back) == SS_OK && json_equal(back, j), "JSON read back");
    json_decref(back);
    json_decref(j);
    CHECK(zarr_json_write(cat(dir, "null.json"), NULL, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE) == SS_ERR_NOMEM &&
              !path_exists(cat(dir, "null.json")),
          "no JSON to write (it could not be made): out of memory, no file");
    json_t *sentinel = json_object();
    back = sentinel; /* the read must set NULL, not leave what was there */
    CHECK(zarr_json_read(cat(dir, "missing.json"), 1, &back) == SS_OK && back == NULL, "missing file, missing_ok: NULL");
    json_decref(sentinel);
    CHECK(zarr_json_read(cat(dir, "missing.json"), 0, &back) == SS_ERR_INPUT && strstr(ss_errmsg(), "missing.json"),
          "missing file: %s", ss_errmsg());
    CHECK(zarr_json_read(cat(dir, "arr0"), 1, &back) == SS_ERR_INPUT && strstr(ss_errmsg(), "not a regular file"),
          "a folder: %s", ss_errmsg());
    pathbuf bpath = pjoin(dir, "bad.json");
    const char *bad = bpath.s;
    CHECK(zarr_file_write(bad, "{\"a\":\n  [1,", 11, ZARR_WRITE_IN_TREE) == SS_OK &&
              zarr_json_read(bad, 0, &back) == SS_ERR_INPUT && strstr(ss_errmsg(), "bad.json:2:") && back == NULL,
          "invalid JSON names the file and line: %s", ss_errmsg());

    pathbuf gpath = pjoin(dir, "g");
    const char *g = gpath.s;
    json_t *attrs = json_pack("{s:s}", "k", "v");
    CHECK(mkdir(g, 0777) == 0 && zarr_group_write(g, attrs, ZARR_JSON_FLAGS, ZARR_WRITE_NEW_SYNCED) == SS_OK &&
              file_is(cat(g, ".zgroup"), zgroup_text) && file_is(cat(g, ".zattrs"), "{\n    \"k\": \"v\"\n}"),
          "group: .zgroup as zarr-python writes it, and .zattrs");
    CHECK(zarr_group_write(g, attrs, ZARR_JSON_FLAGS, ZARR_WRITE_NEW_SYNCED) == SS_ERR_IO,
          "group: written twice when new is refused");
    json_decref(attrs);
    pathbuf hpath = pjoin(dir, "h");
    const char *h = hpath.s;
    CHECK(mkdir(h, 0777) == 0 && zarr_group_write(h, NULL, ZARR_JSON_FLAGS, ZARR_WRITE_ATOMIC) == SS_OK &&
              file_is(cat(h, ".zgroup"), zgroup_text) && !path_exists(cat(h, ".zattrs")) && count_entries(h) == 1,
          "group without attributes: only .zgroup");
}

/* ---- OME-NGFF ----------------------------------------------------------- */

static void test_multiscales(void)
{
    const double voxel[3] = {1.5, 0.25, 0.125};
    json_t *j = zarr_ngff_multiscales("fused/repeats", "rzyx", voxel, "micrometer", "0");
    CHECK(dumps_as(j, JSON_COMPACT | JSON_PRESERVE_ORDER,
                   "{\"version\":\"0.4\",\"name\":\"fused/repeats\",\"axes\":[{\"name\":\"r\",\"type\":\"time\"},"
                   "{\"name\":\"z\",\"type\":\"space\",\"unit\":\"micrometer\"},{\"name\":\"y\",\"type\":\"space\","
                   "\"unit\":\"micrometer\"},{\"name\":\"x\",\"type\":\"space\",\"unit\":\"micrometer\"}],"
                   "\"datasets\":[{\"path\":\"0\",\"coordinateTransformations\":[{\"type\":\"scale\",\"scale\":"
                   "[1.0,1.5,0.25,0.125]}]}]}"),
          "multiscales rzyx: r time, z y x space in micrometer, scale 1 and the voxel size");
    json_decref(j);
    j = zarr_ngff_multiscales("image", "tcyx", voxel, "", "level0");
    CHECK(dumps_as(j, JSON_COMPACT | JSON_PRESERVE_ORDER,
                   "{\"version\":\"0.4\",\"name\":\"image\",\"axes\":[{\"name\":\"t\",\"type\":\"time\"},"
                   "{\"name\":\"c\",\"type\":\"channel\"},{\"name\":\"y\",\"type\":\"space\"},{\"name\":\"x\","
                   "\"type\":\"space\"}],\"datasets\":[{\"path\":\"level0\",\"coordinateTransformations\":[{\"type\":"
                   "\"scale\",\"scale\":[1.0,1.0,0.25,0.125]}]}]}"),
          "multiscales tcyx without unit: c channel, y x by the voxel's y and x");
    json_decref(j);
    j = zarr_ngff_multiscales("q", "qyx", voxel, NULL, "0");
    json_t *axes = json_object_get(j, "axes");
    CHECK(dumps_as(json_array_get(axes, 0), JSON_COMPACT, "{\"name\":\"q\"}") && json_array_size(axes) == 3,
          "an axis of no NGFF type has a name only");
    json_decref(j);
    const double bad[3] = {NAN, 1, 1};
    CHECK(zarr_ngff_multiscales("n", "zyx", bad, "micrometer", "0") == NULL, "a voxel size that is no number: NULL");
    CHECK(zarr_ngff_multiscales("n", "zyx", voxel, "\xff", "0") == NULL, "a unit that is not UTF-8: NULL");
}

/* ---- zarr-python -------------------------------------------------------- */

#define PY "/usr/bin/python3"

static const char py_script[] =
    "import sys\n"
    "import numpy as np\n"
    "import zarr\n"
    "from numcodecs import Blosc, GZip, Zlib\n"
    "mode, root = sys.argv[1], sys.argv[2]\n"
    "if mode == 'read':\n"
    "    z, y, x = np.meshgrid(np.arange(6), np.arange(37), np.arange(29), indexing='ij')\n"
    "    want = ((z * 1000 + y * 31 + x * 7) % 65521).astype('<u2')\n"
    "    for name in sys.argv[3:]:\n"
    "        a = zarr.open_array(root + '/' + name, mode='r')\n"
    "        ok = a.dtype == np.dtype('<u2') and a.shape == want.shape and np.array_equal(a[...], want)\n"
    "        print(('ok ' if ok else 'bad ') + name, a.compressor, flush=True)\n"
    "    t = zarr.open_array(root + '/table', mode='r')[...]\n"
    "    ok = list(t['a']) == list(range(10)) and list(t['b']) == [i * 0.5 for i in range(10)] and \\\n"
    "        [s.decode() for s in t['s']] == ['row%d' % i for i in range(10)]\n"
    "    print('ok table' if ok else 'bad table %r' % t, flush=True)\n"
    "    ms = zarr.open_group(root, mode='r').attrs['multiscales'][0]\n"
    "    ok = [a['name'] for a in ms['axes']] == ['z', 'y', 'x'] and ms['datasets'][0]['path'] == 'lz4' and \\\n"
    "        ms['datasets'][0]['coordinateTransformations'][0]['scale'] == [2.0, 0.5, 0.5]\n"
    "    print('ok multiscales' if ok else 'bad multiscales %r' % ms, flush=True)\n"
    "else:\n"
    "    v = (np.arange(200) - 100).reshape(5, 40)\n"
    "    for name, comp in [('lz4bit', Blosc('lz4', 5, Blosc.BITSHUFFLE)), ('zstd', Blosc('zstd', 3, "
    "Blosc.NOSHUFFLE)),\n"
    "                       ('zlib', Zlib(1)), ('gzip', GZip(5)), ('raw', None)]:\n"
    "        for dt in ('<i2', '|u1'):\n"
    "            a = zarr.open_array(root + '/' + name + dt[1:], mode='w', shape=v.shape, chunks=v.shape, dtype=dt,\n"
    "                                compressor=comp, dimension_separator='/')\n"
    "            a[...] = v.astype(dt)\n"
    "    print('written', flush=True)\n";

/* Writes the u16 array zarr_read.py's fused/stack formula describes, (6, 37,
 * 29) in chunks (2, 16, 16), at dir with compressor c. */
static int write_u16_array(const char *dir, const zarr_codec *c)
{
    const int64_t shape[3] = {6, 37, 29}, chunk[3] = {2, 16, 16};
    json_t *za = zarr_zarray_json(3, shape, chunk, json_string(zarr_dtype_string(DT_U16)), c, json_integer(0));
    int rc = mkdir(dir, 0777) == 0 ? SS_OK : ss_fail(SS_ERR_IO, "%s: %s", dir, strerror(errno));
    if (rc == SS_OK) rc = zarr_json_write(cat(dir, ".zarray"), za, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE);
    json_decref(za);
    uint16_t buf[2 * 16 * 16];
    unsigned char *enc = malloc(zarr_codec_bound(c, sizeof buf));
    for (int cz = 0; rc == SS_OK && cz < 3; cz++)
        for (int cy = 0; rc == SS_OK && cy < 3; cy++)
            for (int cx = 0; rc == SS_OK && cx < 2; cx++) {
                memset(buf, 0, sizeof buf); /* edge chunks are padded with the fill value */
                for (int z = 0; z < 2; z++)
                    for (int y = 0; y < 16 && cy * 16 + y < 37; y++)
                        for (int x = 0; x < 16 && cx * 16 + x < 29; x++) {
                            int64_t gz = cz * 2 + z, gy = cy * 16 + y, gx = cx * 16 + x;
                            buf[(z * 16 + y) * 16 + x] = (uint16_t)((gz * 1000 + gy * 31 + gx * 7) % 65521);
                        }
                char key[64];
                snprintf(key, sizeof key, "%d/%d/%d", cz, cy, cx);
                const void *out = NULL;
                size_t n = 0;
                rc = zarr_chunk_encode(key, c, 2, 1, buf, sizeof buf, enc, &out, &n);
                if (rc == SS_OK) rc = zarr_chunk_write(cat(dir, key), out, n, ZARR_WRITE_IN_TREE);
            }
    free(enc);
    return rc;
}

/* Writes a table of 10 rows (a: i, b: i / 2, s: "row<i>") in chunks of 4. */
static int write_table(const char *dir)
{
    enum { REC = 8 + 8 + 64 };
    const zarr_codec zlib = zarr_codec_of(STORE_COMP_GZIP);
    json_t *za = zarr_zarray_json(1, (int64_t[]){10}, (int64_t[]){4}, table_fields(), &zlib, json_null());
    int rc = mkdir(dir, 0777) == 0 ? SS_OK : ss_fail(SS_ERR_IO, "%s: %s", dir, strerror(errno));
    if (rc == SS_OK) rc = zarr_json_write(cat(dir, ".zarray"), za, ZARR_JSON_FLAGS, ZARR_WRITE_IN_TREE);
    json_decref(za);
    unsigned char buf[4 * REC], enc[4096];
    for (int c = 0; rc == SS_OK && c < 3; c++) {
        memset(buf, 0, sizeof buf);
        for (int r = 0; r < 4 && c * 4 + r < 10; r++) {
            int64_t a = c * 4 + r;
            double b = a * 0.5;
            memcpy(buf + r * REC, &a, 8);
            memcpy(buf + r * REC + 8, &b, 8);
            snprintf((char *)buf + r * REC + 16, 64, "row%d", (int)a);
        }
        char key[16];
        snprintf(key, sizeof key, "%d", c);
        const void *out = NULL;
        size_t n = 0;
        rc = zarr_chunk_encode(key, &zlib, REC, 1, buf, sizeof buf, enc, &out, &n);
        if (rc == SS_OK) rc = zarr_chunk_write(cat(dir, key), out, n, ZARR_WRITE_IN_TREE);
    }
    return rc;
}

/* Each line of text as a TAP comment. */
static void diag_lines(const char *text)
{
    for (const char *p = text; p && *p;) {
        size_t n = strcspn(p, "\n");
        printf("#   %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
}

static int run_python(const char *mode, const char *dir, const char *args, char **output)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s %s %s %s > %s 2>&1", PY, cat(root, "zarr_check.py"), mode, dir, args,
             cat(root, "py.out"));
    int st = system(cmd);
    *output = NULL;
    fs_read_all(cat(root, "py.out"), output, NULL);
    if (!*output) *output = strdup("");
    return st;
}

/* 1 if output has the line "ok <name>..." */
static int says_ok(const char *output, const char *name)
{
    char want[128];
    snprintf(want, sizeof want, "ok %s", name);
    for (const char *p = output; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        size_t n = strlen(want);
        if (!strncmp(p, want, n) && (p[n] == ' ' || p[n] == '\n' || p[n] == 0)) return 1;
    }
    return 0;
}

static void test_zarr_python(void)
{
    static const char *const arrays[] = {"lz4", "zstd", "zlib", "raw"};
    static const char *const written[] = {"lz4bit", "zstd", "zlib", "gzip", "raw"};
    const int points = 1 + 1 + 4 + 1 + 1 + 1 + 2 * 5; /* the points below, for the skips */
    if (access(PY, X_OK) != 0 || system(PY " -c 'import zarr, numcodecs' > /dev/null 2>&1") != 0) {
        for (int i = 0; i < points; i++) TAP_SKIP("no %s with python3-zarr here", PY);
        return;
    }
    CHECK(zarr_file_write(cat(root, "zarr_check.py"), py_script, strlen(py_script), ZARR_WRITE_IN_TREE) == SS_OK,
          "the zarr-python script");

    /* written here, read by zarr-python */
    pathbuf ours = pjoin(root, "ours.zarr"), theirs = pjoin(root, "theirs.zarr");
    const char *dir = ours.s;
    const zarr_codec codecs[] = {zarr_codec_of(STORE_COMP_BLOSC_LZ4), zarr_codec_of(STORE_COMP_BLOSC_ZSTD),
                                 zarr_codec_of(STORE_COMP_GZIP), zarr_codec_of(STORE_COMP_NONE)};
    const double voxel[3] = {2.0, 0.5, 0.5};
    json_t *ms = zarr_ngff_multiscales("ours", "zyx", voxel, "micrometer", "lz4");
    json_t *attrs = ms ? json_pack("{s:[o]}", "multiscales", ms) : NULL;
    int rc = mkdir(dir, 0777) == 0 ? SS_OK : ss_fail(SS_ERR_IO, "%s: %s", dir, strerror(errno));
    if (rc == SS_OK) rc = zarr_group_write(dir, attrs, ZARR_JSON_FLAGS, ZARR_WRITE_NEW_SYNCED);
    json_decref(attrs);
    for (int i = 0; rc == SS_OK && i < 4; i++) rc = write_u16_array(pjoin(dir, arrays[i]).s, &codecs[i]);
    if (rc == SS_OK) rc = write_table(pjoin(dir, "table").s);
    CHECK(rc == SS_OK, "a group of arrays and a table written through zarr.h: %s", rc == SS_OK ? "" : ss_errmsg());
    char *out = NULL;
    int st = run_python("read", dir, "lz4 zstd zlib raw", &out), failed = tap_failed;
    for (int i = 0; i < 4; i++)
        CHECK(says_ok(out, arrays[i]), "zarr-python reads the %s array written here", arrays[i]);
    CHECK(says_ok(out, "table"), "zarr-python reads the table written here");
    CHECK(st == 0 && says_ok(out, "multiscales"), "zarr-python reads the group's multiscales");
    if (tap_failed > failed) diag_lines(out);
    free(out);

    /* written by zarr-python, read here */
    dir = theirs.s;
    st = run_python("write", dir, "", &out);
    CHECK(st == 0 && strstr(out, "written"), "zarr-python writes its arrays");
    if (st != 0) diag_lines(out);
    free(out);
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 2; k++) {
            char name[32];
            snprintf(name, sizeof name, "%s%s", written[i], k ? "u1" : "i2");
            pathbuf apath = pjoin(dir, name);
            const char *a = apath.s;
            json_t *za = NULL;
            ss_dtype t = DT_COUNT;
            zarr_codec c;
            char *chunk = NULL;
            size_t size = 0;
            int ok = zarr_json_read(cat(a, ".zarray"), 0, &za) == SS_OK &&
                     zarr_dtype_parse(json_string_value(json_object_get(za, "dtype")), &t) == SS_OK &&
                     t == (k ? DT_U8 : DT_I16) && zarr_codec_parse(json_object_get(za, "compressor"), &c) == SS_OK &&
                     fs_read_all(cat(a, "0/0"), &chunk, &size) == SS_OK;
            unsigned char dst[400];
            ok = ok && zarr_chunk_decode(name, &c, chunk, size, dst, 200 * dtype_size(t)) == SS_OK;
            for (int e = 0; ok && e < 200; e++) {
                double got;
                dtype_convert(&got, DT_F64, dst + e * dtype_size(t), t, 1);
                double want = k ? (double)(uint8_t)(e - 100) : e - 100;
                ok = got == want;
            }
            char text[64] = "?";
            if (ok) zarr_codec_text(&c, text, sizeof text);
            CHECK(ok, "zarr-python's %s array (%s) decodes here", name, ok ? text : ss_errmsg());
            free(chunk);
            json_decref(za);
        }
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/ss_zarr_meta_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_dtypes();
    test_fields();
    test_codecs();
    test_zarray();
    test_chunks();
    test_files();
    test_multiscales();
    test_zarr_python();
    if (!tap_failed) fs_rm_rf(root);
    else printf("# left %s for inspection\n", root);
    return tap_done();
}
