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
