#include "checkpoint.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static const char MAGIC[8] = {'S', 'S', 'C', 'K', 'P', 'T', 0, 0};

struct checkpoint {
    char *path;
    char fp[33];
    int64_t every_steps;
    double every_s;
    double last_save;
    int64_t last_step;
};

int checkpoint_new(const char *path, const char *fingerprint, int64_t every_steps, double every_s,
                   checkpoint **out)
{
    checkpoint *c = calloc(1, sizeof *c);
    if (!c) return ss_fail(SS_ERR_NOMEM, "out of memory");
    c->path = ss_strdup(path);
    snprintf(c->fp, sizeof c->fp, "%s", fingerprint);
    c->every_steps = every_steps;
    c->every_s = every_s;
    c->last_save = ss_now();
    c->last_step = 0;
    *out = c;
    return SS_OK;
}

void checkpoint_free(checkpoint *c)
{
    if (!c) return;
    free(c->path);
    free(c);
}

const char *checkpoint_path(const checkpoint *c) { return c->path; }

int checkpoint_due(checkpoint *c, int64_t step)
{
    if (c->every_steps > 0 && step - c->last_step >= c->every_steps) return 1;
    if (c->every_s > 0 && ss_now() - c->last_save >= c->every_s) return 1;
    return 0;
}

static void put(sbuf *b, const void *p, size_t n) { sbuf_putn(b, p, n); }

int checkpoint_save(checkpoint *c, int64_t step, const ckpt_entry *e, int n)
{
    sbuf b = {0};
    uint32_t version = CHECKPOINT_VERSION, count = (uint32_t)n;
    put(&b, MAGIC, 8);
    put(&b, &version, 4);
    put(&b, &count, 4);
    put(&b, &step, 8);
    put(&b, c->fp, 32);
    for (int i = 0; i < n; i++) {
        uint32_t len = (uint32_t)strlen(e[i].name);
        uint64_t bytes = e[i].bytes;
        put(&b, &len, 4);
        put(&b, e[i].name, len);
        put(&b, &bytes, 8);
        put(&b, e[i].data, e[i].bytes);
    }
    uint64_t sum = XXH3_64bits(b.s, b.len);
    put(&b, &sum, 8);
    ss_crashpoint("checkpoint.before_write");
    int rc = fs_write_atomic(c->path, b.s, b.len);
    sbuf_free(&b);
    ss_crashpoint("checkpoint.after_write");
    if (rc == SS_OK) {
        c->last_save = ss_now();
        c->last_step = step;
    }
    return rc;
}

int checkpoint_load(checkpoint *c, int64_t *step, ckpt_entry *e, int n)
{
    if (!path_exists(c->path)) return 0;
    char *data;
    size_t len;
    int rc = fs_read_all(c->path, &data, &len);
    if (rc != SS_OK) return rc;
    rc = SS_ERR_IO;
    const char *p = data, *end = data + len;
    if (len < 56 + 8 || memcmp(p, MAGIC, 8) != 0) {
        rc = ss_fail(SS_ERR_IO, "%s: not a checkpoint file", c->path);
        goto done;
    }
    uint64_t sum;
    memcpy(&sum, end - 8, 8);
    if (XXH3_64bits(data, len - 8) != sum) {
        rc = ss_fail(SS_ERR_IO, "%s: checkpoint checksum mismatch (corrupt file)", c->path);
        goto done;
    }
    uint32_t version, count;
    memcpy(&version, p + 8, 4);
    memcpy(&count, p + 12, 4);
    if (version != CHECKPOINT_VERSION) {
        rc = ss_fail(SS_ERR_IO, "%s: checkpoint version %u, expected %d", c->path, version, CHECKPOINT_VERSION);
        goto done;
    }
    if (memcmp(p + 24, c->fp, 32) != 0) {
        rc = 0; /* another configuration's checkpoint: start afresh */
        goto done;
    }
    int64_t st;
    memcpy(&st, p + 16, 8);
    p += 56;
    end -= 8;
    if ((int)count != n) {
        rc = ss_fail(SS_ERR_IO, "%s: checkpoint has %u entries, expected %d", c->path, count, n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        uint32_t l;
        uint64_t bytes;
        if (end - p < 4) goto trunc;
        memcpy(&l, p, 4);
        p += 4;
        if ((size_t)(end - p) < (size_t)l + 8) goto trunc;
        if (l != strlen(e[i].name) || memcmp(p, e[i].name, l) != 0) {
            rc = ss_fail(SS_ERR_IO, "%s: checkpoint entry %d is not '%s'", c->path, i, e[i].name);
            goto done;
        }
        p += l;
        memcpy(&bytes, p, 8);
        p += 8;
        if (bytes != e[i].bytes) {
            rc = ss_fail(SS_ERR_IO, "%s: checkpoint entry '%s' has %llu bytes, expected %zu", c->path, e[i].name,
                         (unsigned long long)bytes, e[i].bytes);
            goto done;
        }
        if ((size_t)(end - p) < bytes) goto trunc;
        memcpy(e[i].data, p, bytes);
        p += bytes;
    }
    *step = st;
    c->last_step = st;
    c->last_save = ss_now();
    rc = 1;
    goto done;
trunc:
    rc = ss_fail(SS_ERR_IO, "%s: truncated checkpoint", c->path);
done:
    free(data);
    return rc;
}

int checkpoint_remove(checkpoint *c)
{
    if (unlink(c->path) != 0 && errno != ENOENT)
        return ss_fail(SS_ERR_IO, "%s: cannot remove checkpoint: %s", c->path, strerror(errno));
    return SS_OK;
}
