/* ImageJ descriptions and OME-XML. The OME reader is a small pull tokenizer
 * rather than a full XML parser: OME-TIFF headers are machine-written, and
 * only element names, attributes and one text node (UUID) matter here. It
 * accepts namespace prefixes, comments, processing instructions, CDATA,
 * DOCTYPE, single or double quotes, blanks around '=', and the predefined
 * and numeric character references. */
#include "tiff_meta.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void tiff_meta_free(tiff_meta *m)
{
    for (int i = 0; i < m->n_td; i++) {
        free(m->td[i].file);
        free(m->td[i].uuid);
    }
    free(m->td);
    free(m->uuid);
    memset(m, 0, sizeof *m);
}

double unit_to_um(const char *u)
{
    if (!u) return 0;
    while (isspace((unsigned char)*u)) u++;
    size_t n = strlen(u);
    while (n && isspace((unsigned char)u[n - 1])) n--;
    char s[32];
    if (n == 0 || n >= sizeof s) return 0;
    memcpy(s, u, n);
    s[n] = 0;
    static const struct {
        const char *name;
        double um;
    } t[] = {
        {"um", 1},           {"\xc2\xb5m", 1},     {"\xce\xbcm", 1},   {"\xb5m", 1},  {"\\u00B5m", 1},
        {"\\u00b5m", 1},     {"micron", 1},        {"microns", 1},      {"micrometer", 1},
        {"micrometre", 1},   {"micrometers", 1},   {"micrometres", 1},  {"nm", 1e-3},  {"nanometer", 1e-3},
        {"nanometre", 1e-3}, {"nanometers", 1e-3}, {"pm", 1e-6},        {"mm", 1e3},   {"millimeter", 1e3},
        {"millimetre", 1e3}, {"cm", 1e4},          {"centimeter", 1e4}, {"m", 1e6},    {"meter", 1e6},
        {"metre", 1e6},      {"\xc3\x85", 1e-4},   {"\xe2\x84\xab", 1e-4}, {"A", 1e-4}, {"angstrom", 1e-4},
        {"inch", 25400},     {"in", 25400},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(s, t[i].name) || (strlen(t[i].name) > 2 && !strcasecmp(s, t[i].name))) return t[i].um;
    return 0;
}

static int parse_i64(const char *s, int64_t *v)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    while (isspace((unsigned char)*end)) end++;
    if (errno || *end || x < 0) return -1;
    *v = x;
    return 0;
}

static int parse_f64(const char *s, double *v)
{
    if (!s || !*s) return -1;
    char *end;
    double x = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (*end || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

/* ---- ImageJ ------------------------------------------------------------- */

static void parse_imagej(const char *desc, tiff_meta *m)
{
    int64_t images = 0, ch = 0, sl = 0, fr = 0;
    double spacing = 0;
    char unit[64] = "", zunit[64] = "";
    for (const char *p = desc; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq) {
            char key[32], val[64];
            size_t kl = (size_t)(eq - p), vl = len - kl - 1;
            if (kl < sizeof key && vl < sizeof val) {
                memcpy(key, p, kl);
                key[kl] = 0;
                memcpy(val, eq + 1, vl);
                val[vl] = 0;
                if (vl && val[vl - 1] == '\r') val[vl - 1] = 0;
                int64_t v;
                if (!strcmp(key, "images") && !parse_i64(val, &v)) images = v;
                else if (!strcmp(key, "channels") && !parse_i64(val, &v)) ch = v;
                else if (!strcmp(key, "slices") && !parse_i64(val, &v)) sl = v;
                else if (!strcmp(key, "frames") && !parse_i64(val, &v)) fr = v;
                else if (!strcmp(key, "spacing")) parse_f64(val, &spacing);
                else if (!strcmp(key, "unit")) snprintf(unit, sizeof unit, "%s", val);
                else if (!strcmp(key, "zunit")) snprintf(zunit, sizeof zunit, "%s", val);
            }
        }
        p += len + (eol != NULL);
    }
    m->kind = TMETA_IMAGEJ;
    strcpy(m->dim_order, "XYCZT");
    m->ij_images = images;
    if (ch < 1) ch = 1;
    if (sl < 1) sl = 1;
    if (fr < 1) fr = 1;
    /* ImageJ itself opens a description whose counts do not multiply out to
     * images as a plain stack of slices. */
    int64_t n;
    if (images > 0 && (__builtin_mul_overflow(ch, sl, &n) || __builtin_mul_overflow(n, fr, &n) || n != images))
        ch = fr = 1, sl = images;
    m->size_c = ch;
    m->size_z = sl;
    m->size_t = fr;
    m->ij_unit_um = unit_to_um(unit);
    double zu = zunit[0] ? unit_to_um(zunit) : m->ij_unit_um;
    if (spacing > 0 && zu > 0) m->voxel[0] = spacing * zu;
}

/* ---- OME-XML ------------------------------------------------------------ */

typedef struct {
    const char *start, *p, *end;
    char err[160];
} xml_in;

/* Appends the UTF-8 encoding of code point c. */
static size_t utf8_put(char *o, unsigned long c)
{
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xc0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3f)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xe0 | c >> 12), o[1] = (char)(0x80 | ((c >> 6) & 0x3f)), o[2] = (char)(0x80 | (c & 0x3f)), 3;
    o[0] = (char)(0xf0 | c >> 18), o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f)), o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* A copy of s[0..n) with character references replaced (never longer). */
static char *xml_unescape(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') {
            o[k++] = s[i++];
            continue;
        }
        const char *semi = memchr(s + i, ';', n - i);
        size_t el = semi ? (size_t)(semi - (s + i)) + 1 : 0;
        static const char *const names[] = {"&lt;", "&gt;", "&amp;", "&quot;", "&apos;"};
        static const char chars[] = "<>&\"'";
        int done = 0;
        for (int q = 0; q < 5 && el && !done; q++)
            if (el == strlen(names[q]) && !memcmp(s + i, names[q], el)) o[k++] = chars[q], i += el, done = 1;
        if (!done && el > 3 && s[i + 1] == '#') {
            int hex = s[i + 2] == 'x' || s[i + 2] == 'X';
            char num[16];
            size_t nl = el - 3 - (size_t)hex;
            if (nl > 0 && nl < sizeof num) {
                memcpy(num, s + i + 2 + hex, nl);
                num[nl] = 0;
                char *e;
                unsigned long c = strtoul(num, &e, hex ? 16 : 10);
                /* A reference never expands beyond its own text ("&#1;" is 4 bytes, UTF-8 at most 4). */
                if (!*e && c > 0 && c < 0x110000) k += utf8_put(o + k, c), i += el, done = 1;
            }
        }
        if (!done) o[k++] = s[i++];
    }
    o[k] = 0;
    return o;
}

#define XML_MAX_ATTRS 64
typedef struct {
    char name[64];        /* local name, prefix stripped */
    int closing, empty;   /* </x>, <x/> */
    int n_attr;
    char *key[XML_MAX_ATTRS], *val[XML_MAX_ATTRS];
} xml_tag;

static void tag_clear(xml_tag *t)
{
    for (int i = 0; i < t->n_attr; i++) free(t->key[i]), free(t->val[i]);
    t->n_attr = 0;
}

static const char *tag_attr(const xml_tag *t, const char *key)
{
    for (int i = 0; i < t->n_attr; i++)
        if (!strcmp(t->key[i], key)) return t->val[i];
    return NULL;
}

static int is_name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == ':' || (unsigned char)c >= 0x80; }

static const char *find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    for (; p + n <= end; p++)
        if (!memcmp(p, needle, n)) return p;
    return NULL;
}

/* Next token: 1 = a tag in *t (the text before it in *text, *text_len),
 * 0 = end of input, -1 = malformed (in->err). */
static int xml_next(xml_in *in, xml_tag *t, const char **text, size_t *text_len)
{
    tag_clear(t);
    for (;;) {
        const char *lt = memchr(in->p, '<', (size_t)(in->end - in->p));
        *text = in->p;
        *text_len = lt ? (size_t)(lt - in->p) : (size_t)(in->end - in->p);
        if (!lt) return in->p = in->end, 0;
        const char *p = lt + 1, *e = in->end;
        const char *skip_to = NULL;
        if (p < e && (*p == '?')) skip_to = find(p, e, "?>"), skip_to = skip_to ? skip_to + 2 : NULL;
        else if (e - p >= 3 && !memcmp(p, "!--", 3)) skip_to = find(p + 3, e, "-->"), skip_to = skip_to ? skip_to + 3 : NULL;
        else if (e - p >= 8 && !memcmp(p, "![CDATA[", 8)) skip_to = find(p, e, "]]>"), skip_to = skip_to ? skip_to + 3 : NULL;
        else if (p < e && *p == '!') skip_to = memchr(p, '>', (size_t)(e - p)), skip_to = skip_to ? skip_to + 1 : NULL;
        else goto tag;
        if (!skip_to) return snprintf(in->err, sizeof in->err, "unterminated <%.8s", p), -1;
        in->p = skip_to;
    }
tag:;
    const char *p = *text + *text_len + 1, *e = in->end;
    if (p < e && *p == '/') t->closing = 1, p++;
    else t->closing = 0;
    const char *ns = p;
    while (p < e && is_name_char(*p)) p++;
    if (p == ns) return snprintf(in->err, sizeof in->err, "expected an element name at offset %ld", (long)(ns - in->start)), -1;
    const char *colon = ns;
    for (const char *q = ns; q < p; q++)
        if (*q == ':') colon = q + 1;
    size_t nl = (size_t)(p - colon);
    snprintf(t->name, sizeof t->name, "%.*s", (int)(nl < sizeof t->name ? nl : sizeof t->name - 1), colon);
    t->empty = 0;
    for (;;) {
        while (p < e && isspace((unsigned char)*p)) p++;
        if (p >= e) return snprintf(in->err, sizeof in->err, "unterminated <%s> tag", t->name), -1;
        if (*p == '>') {
            p++;
            break;
        }
        if (*p == '/' && p + 1 < e && p[1] == '>') {
            t->empty = 1;
            p += 2;
            break;
        }
        const char *ks = p;
        while (p < e && is_name_char(*p)) p++;
        if (p == ks) return snprintf(in->err, sizeof in->err, "unexpected '%c' in <%s>", *p, t->name), -1;
        const char *ke = p;
        while (p < e && isspace((unsigned char)*p)) p++;
        if (p >= e || *p != '=') return snprintf(in->err, sizeof in->err, "attribute without value in <%s>", t->name), -1;
        p++;
        while (p < e && isspace((unsigned char)*p)) p++;
        if (p >= e || (*p != '"' && *p != '\'')) return snprintf(in->err, sizeof in->err, "unquoted attribute in <%s>", t->name), -1;
        char q = *p++;
        const char *vs = p;
        p = memchr(p, q, (size_t)(e - p));
        if (!p) return snprintf(in->err, sizeof in->err, "unterminated attribute value in <%s>", t->name), -1;
        if (t->n_attr < XML_MAX_ATTRS) {
            const char *kc = ks;
            for (const char *x = ks; x < ke; x++)
                if (*x == ':') kc = x + 1;
            /* xmlns:foo and similar keep their prefix out of the way */
            t->key[t->n_attr] = strndup(kc, (size_t)(ke - kc));
            t->val[t->n_attr] = xml_unescape(vs, (size_t)(p - vs));
            if (!t->key[t->n_attr] || !t->val[t->n_attr]) return snprintf(in->err, sizeof in->err, "out of memory"), -2;
            t->n_attr++;
        }
        p++;
    }
    in->p = p;
    return 1;
}

static void ome_pixels(const xml_tag *t, tiff_meta *m)
{
    const char *o = tag_attr(t, "DimensionOrder");
    if (o && strlen(o) == 5 && !strncmp(o, "XY", 2) && strchr(o + 2, 'Z') && strchr(o + 2, 'C') && strchr(o + 2, 'T'))
        memcpy(m->dim_order, o, 6);
    int64_t v;
    /* The OME schema requires SizeZ, SizeC and SizeT, positive integers: a
     * file whose counts are missing or garbage cannot say which page is
     * which plane. */
    static const char *const sizes[3] = {"SizeZ", "SizeT", "SizeC"};
    int64_t *dst[3] = {&m->size_z, &m->size_t, &m->size_c};
    for (int i = 0; i < 3; i++) {
        const char *a = tag_attr(t, sizes[i]);
        if (!parse_i64(a, &v) && v > 0) *dst[i] = v;
        else if (!m->invalid[0] && !a)
            snprintf(m->invalid, sizeof m->invalid, "<Pixels> has no %s", sizes[i]);
        else if (!m->invalid[0])
            snprintf(m->invalid, sizeof m->invalid, "<Pixels> %s=\"%.40s\" is not a positive integer", sizes[i], a);
    }
    if (!parse_i64(tag_attr(t, "SizeX"), &v)) m->size_x = v;
    if (!parse_i64(tag_attr(t, "SizeY"), &v)) m->size_y = v;
    const char *ty = tag_attr(t, "Type");
    if (ty) snprintf(m->pixel_type, sizeof m->pixel_type, "%s", ty);
    static const char *const ax[3][2] = {{"PhysicalSizeZ", "PhysicalSizeZUnit"},
                                         {"PhysicalSizeY", "PhysicalSizeYUnit"},
                                         {"PhysicalSizeX", "PhysicalSizeXUnit"}};
    for (int i = 0; i < 3; i++) {
        double s;
        if (parse_f64(tag_attr(t, ax[i][0]), &s) || !(s > 0)) continue;
        const char *u = tag_attr(t, ax[i][1]);
        double f = u ? unit_to_um(u) : 1.0; /* the OME schema's default unit is the micrometer */
        if (f > 0) m->voxel[i] = s * f;
    }
}

static int ome_tiffdata_add(const xml_tag *t, tiff_meta *m)
{
    ome_tiffdata *td = realloc(m->td, (size_t)(m->n_td + 1) * sizeof *td);
    if (!td) return -1;
    m->td = td;
    ome_tiffdata *d = &td[m->n_td++];
    memset(d, 0, sizeof *d);
    d->plane_count = -1;
    int64_t v;
    if (!parse_i64(tag_attr(t, "IFD"), &v)) d->ifd = v, d->has_ifd = 1;
    if (!parse_i64(tag_attr(t, "PlaneCount"), &v)) d->plane_count = v;
    if (!parse_i64(tag_attr(t, "FirstZ"), &v)) d->first_z = v;
    if (!parse_i64(tag_attr(t, "FirstT"), &v)) d->first_t = v;
    if (!parse_i64(tag_attr(t, "FirstC"), &v)) d->first_c = v;
    return 0;
}

static int parse_ome(const char *desc, tiff_meta *m)
{
    xml_in in = {.start = desc, .p = desc, .end = desc + strlen(desc)};
    xml_tag t = {0};
    const char *text;
    size_t tl;
    /* Element path of the first Image: 0 outside, else its depth; likewise
     * for its Pixels, the current TiffData and its UUID. */
    int depth = 0, img = 0, pix = 0, tdd = 0, uu = 0, saw_ome = 0, rc;
    tiff_meta r = {.kind = TMETA_OME, .size_z = 1, .size_t = 1, .size_c = 1};
    strcpy(r.dim_order, "XYZCT");
    while ((rc = xml_next(&in, &t, &text, &tl)) == 1) {
        if (uu && tl && !r.td[r.n_td - 1].uuid) {
            char *u = xml_unescape(text, tl);
            if (!u) goto nomem;
            r.td[r.n_td - 1].uuid = u;
        }
        if (t.closing) {
            if (uu == depth) uu = 0;
            if (tdd == depth) tdd = 0;
            if (pix == depth) pix = 0;
            if (img == depth) img = -1; /* only the first Image counts */
            if (--depth < 0) break;
            continue;
        }
        depth++;
        if (!strcmp(t.name, "OME")) {
            saw_ome = 1;
            const char *u = tag_attr(&t, "UUID");
            if (u && !r.uuid && !(r.uuid = strdup(u))) goto nomem;
        } else if (!strcmp(t.name, "Image")) {
            if (++r.n_images == 1) img = depth;
        } else if (!strcmp(t.name, "Pixels") && img > 0 && !pix) {
            pix = depth;
            ome_pixels(&t, &r);
        } else if (!strcmp(t.name, "TiffData") && pix && !tdd) {
            tdd = depth;
            if (ome_tiffdata_add(&t, &r) != 0) goto nomem;
        } else if (!strcmp(t.name, "UUID") && tdd && !uu) {
            uu = depth;
            const char *fn = tag_attr(&t, "FileName");
            if (fn && !r.td[r.n_td - 1].file && !(r.td[r.n_td - 1].file = strdup(fn))) goto nomem;
        }
        if (t.empty) {
            if (uu == depth) uu = 0;
            if (tdd == depth) tdd = 0;
            if (pix == depth) pix = 0;
            if (img == depth) img = -1;
            depth--;
        }
    }
    tag_clear(&t);
    if (rc == -2) goto nomem;
    if (rc < 0 || !saw_ome || r.n_images == 0) {
        snprintf(m->error, sizeof m->error, "%s", rc < 0 ? in.err : !saw_ome ? "no <OME> element" : "no <Image> element");
        tiff_meta_free(&r);
        m->kind = TMETA_NONE;
        return 0;
    }
    *m = r;
    return 0;
nomem:
    tag_clear(&t);
    tiff_meta_free(&r);
    return -1;
}

int tiff_meta_parse(const char *desc, tiff_meta *m)
{
    memset(m, 0, sizeof *m);
    m->size_z = m->size_t = m->size_c = 1;
    strcpy(m->dim_order, "XYZCT");
    if (!desc) return 0;
    const char *p = desc;
    while (isspace((unsigned char)*p)) p++;
    if (!strncmp(p, "ImageJ=", 7)) {
        parse_imagej(p, m);
        return 0;
    }
    if (*p == '<' && strstr(p, "OME")) return parse_ome(p, m);
    return 0;
}

static int64_t size_of(const tiff_meta *m, char axis)
{
    return axis == 'Z' ? m->size_z : axis == 'T' ? m->size_t : m->size_c;
}

int64_t tiff_meta_plane_index(const tiff_meta *m, int64_t z, int64_t t, int64_t c)
{
    int64_t idx = 0;
    for (int i = 4; i >= 2; i--) {
        char a = m->dim_order[i];
        idx = idx * size_of(m, a) + (a == 'Z' ? z : a == 'T' ? t : c);
    }
    return idx;
}

void tiff_meta_plane_coords(const tiff_meta *m, int64_t index, int64_t *z, int64_t *t, int64_t *c)
{
    for (int i = 2; i <= 4; i++) {
        char a = m->dim_order[i];
        int64_t n = size_of(m, a), v = index % n;
        index /= n;
        if (a == 'Z') *z = v;
        else if (a == 'T') *t = v;
        else *c = v;
    }
}
