#include "fingerprint.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static void put_real(sbuf *b, double d)
{
    char buf[64];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    /* Plain decimals where people write them (200.0, not 2e+02). */
    double a = fabs(d);
    if (strchr(buf, 'e') && a >= 1e-4 && a < 1e16) {
        int exp10 = (int)floor(log10(a));
        int decimals = prec - 1 - exp10;
        snprintf(buf, sizeof buf, "%.*f", decimals > 0 ? decimals : 0, d);
    }
    /* Keep reals distinguishable from integers: 2.0 stays "2.0". */
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    sbuf_put(b, buf);
}

static void put_string(sbuf *b, const char *s)
{
    sbuf_put(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sbuf_printf(b, "\\%c", *p);
        else if (*p < 0x20) sbuf_printf(b, "\\u%04x", *p);
        else sbuf_putn(b, (const char *)p, 1);
    }
    sbuf_put(b, "\"");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void put_json(sbuf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_str);
        sbuf_put(b, "{");
        for (i = 0; i < n; i++) {
            if (i) sbuf_put(b, ",");
            put_string(b, keys[i]);
            sbuf_put(b, ":");
            put_json(b, json_object_get(v, keys[i]));
        }
        sbuf_put(b, "}");
        free(keys);
        break;
    }
    case JSON_ARRAY:
        sbuf_put(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) sbuf_put(b, ",");
            put_json(b, json_array_get(v, i));
        }
        sbuf_put(b, "]");
        break;
    case JSON_STRING: put_string(b, json_string_value(v)); break;
    case JSON_INTEGER: sbuf_printf(b, "%lld", (long long)json_integer_value(v)); break;
    case JSON_REAL: put_real(b, json_real_value(v)); break;
    case JSON_TRUE: sbuf_put(b, "true"); break;
    case JSON_FALSE: sbuf_put(b, "false"); break;
    case JSON_NULL: sbuf_put(b, "null"); break;
    }
}

char *canonical_json(const json_t *v)
{
    sbuf b = {0};
    put_json(&b, v);
    return b.s ? b.s : ss_strdup("");
}

void fp_hash_bytes(const void *data, size_t n, char out[FP_HEX])
{
    XXH128_hash_t h = XXH3_128bits(data, n);
    snprintf(out, FP_HEX, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}

int fp_hash_file(const char *path, json_t *cache, char out[FP_HEX])
{
    struct stat st;
    if (stat(path, &st) != 0) return ss_fail(SS_ERR_INPUT, "%s: cannot read input file: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ss_fail(SS_ERR_INPUT, "%s: not a regular file", path);
    long long mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    json_t *e = cache ? json_object_get(cache, path) : NULL;
    if (e && json_integer_value(json_object_get(e, "size")) == (json_int_t)st.st_size &&
        json_integer_value(json_object_get(e, "mtime_ns")) == mtime_ns &&
        json_integer_value(json_object_get(e, "ino")) == (json_int_t)st.st_ino &&
        json_is_string(json_object_get(e, "hash"))) {
        snprintf(out, FP_HEX, "%s", json_string_value(json_object_get(e, "hash")));
        return SS_OK;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ss_fail(SS_ERR_INPUT, "%s: cannot open input file: %s", path, strerror(errno));
    XXH3_state_t *s = XXH3_createState();
    XXH3_128bits_reset(s);
    static char buf[1 << 20];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) XXH3_128bits_update(s, buf, (size_t)r);
    int err = r < 0 ? errno : 0;
    close(fd);
    XXH128_hash_t h = XXH3_128bits_digest(s);
    XXH3_freeState(s);
    if (err) return ss_fail(SS_ERR_INPUT, "%s: read error: %s", path, strerror(err));
    snprintf(out, FP_HEX, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
    if (cache)
        json_object_set_new(cache, path,
                            json_pack("{s:I,s:I,s:I,s:s}", "size", (json_int_t)st.st_size, "mtime_ns",
                                      (json_int_t)mtime_ns, "ino", (json_int_t)st.st_ino, "hash", out));
    return SS_OK;
}

json_t *fp_basis(const stage_type *t, const json_t *params, const json_t *input_fps, const json_t *file_hashes,
                 const sample_info *s, uint64_t seed)
{
    json_t *p = json_deep_copy(params);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)file_hashes, k, v) json_object_set(p, k, v);
    json_t *b = json_pack("{s:s,s:i,s:o,s:O}", "type", t->name, "version", t->version, "params", p, "inputs",
                          input_fps);
    if (json_object_size(file_hashes)) json_object_set(b, "files", (json_t *)file_hashes);
    if (t->flags & STAGE_STOCHASTIC) json_object_set_new(b, "seed", json_integer((json_int_t)seed));
    if (t->flags & STAGE_SOURCE)
        json_object_set_new(b, "sample",
                            json_pack("{s:[fff],s:i}", "voxel_size", s->voxel[0], s->voxel[1], s->voxel[2], "repeats",
                                      s->repeats));
    return b;
}

void fp_of_basis(const json_t *basis, char out[FP_HEX])
{
    char *text = canonical_json(basis);
    size_t n = strlen(text);
    /* Versioned prefix: a change of this scheme must rerun everything. */
    sbuf b = {0};
    sbuf_put(&b, "sirenstack-fingerprint-v1\n");
    sbuf_putn(&b, text, n);
    fp_hash_bytes(b.s, b.len, out);
    sbuf_free(&b);
    free(text);
}
