/* Integrity of committed stages, common to both backends: the chunk grid and
 * its checksums, the record a stage keeps of what it committed
 * (sirenstack_arrays), the cheap check before reuse, the full check, and
 * damage records. The backends store the checksums and decode the chunks;
 * schemas/container-layout.md ("Checksums") specifies the format. */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include "store_impl.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* libxxhash's SSE2 kernels. Its run-time dispatch (xxh_x86dispatch.h) hashes
 * faster on its own, but its AVX-512 code made the rest of a stage write
 * several times slower (BENCHMARKS.md). */
#define hash_oneshot XXH3_64bits
#define hash_update XXH3_64bits_update

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checksums are taken over memory as is, which must be the little-endian file layout"
#endif

/* ---- checksum lists ------------------------------------------------------ */

int store_sums_init(store_sums *c, int64_t n)
{
    memset(c, 0, sizeof *c);
    size_t k = n > 0 ? (size_t)n : 1;
    c->n = n;
    c->sum = calloc(k, sizeof *c->sum);
    c->stored = calloc(k, 1);
    c->seen = calloc(k, 1);
    if (!c->sum || !c->stored || !c->seen) {
        store_sums_free(c);
        return ss_fail(SS_ERR_NOMEM, "out of memory for the checksums of %lld chunks", (long long)n);
    }
    return SS_OK;
}

void store_sums_free(store_sums *c)
{
    if (!c) return;
    free(c->sum);
    free(c->stored);
    free(c->seen);
    memset(c, 0, sizeof *c);
}

json_t *store_sums_json(const store_sums *c)
{
    json_t *a = json_array();
    for (int64_t i = 0; a && i < c->n; i++) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, c->sum[i]);
        if (json_array_append_new(a, c->stored[i] ? json_string(hex) : json_null()) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

int store_sums_from_json(const json_t *j, int64_t n, const char *where, store_sums *c)
{
    if (!json_is_array(j) || (int64_t)json_array_size(j) != n)
        return ss_fail(SS_ERR_INPUT, "%s: the checksum list has %lld entries for %lld chunks", where,
                       json_is_array(j) ? (long long)json_array_size(j) : -1LL, (long long)n);
    int rc = store_sums_init(c, n);
    for (int64_t i = 0; rc == SS_OK && i < n; i++) {
        const json_t *v = json_array_get(j, (size_t)i);
        const char *hex = json_string_value(v);
        char *end = NULL;
        if (json_is_null(v)) continue;
        if (hex && strlen(hex) == 16) c->sum[i] = strtoull(hex, &end, 16);
        if (!hex || !end || *end)
            rc = ss_fail(SS_ERR_INPUT, "%s: checksum %lld is not 16 hex digits or null", where, (long long)i);
        c->stored[i] = 1;
    }
    if (rc != SS_OK) store_sums_free(c);
    return rc;
}

/* ---- the chunk grid ------------------------------------------------------- */

static int64_t grid_extent(int64_t shape, int64_t chunk) { return chunk > 0 ? (shape + chunk - 1) / chunk : 0; }

int64_t store_chunk_count(int rank, const int64_t *shape, const int64_t *chunk)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= grid_extent(shape[i], chunk[i]);
    return n;
}

int64_t store_chunk_linear(int rank, const int64_t *shape, const int64_t *chunk, const int64_t *idx)
{
    int64_t k = 0;
    for (int i = 0; i < rank; i++) k = k * grid_extent(shape[i], chunk[i]) + idx[i];
    return k;
}

void store_chunk_index(int rank, const int64_t *shape, const int64_t *chunk, int64_t linear, int64_t *idx)
{
    for (int i = rank - 1; i >= 0; i--) {
        int64_t g = grid_extent(shape[i], chunk[i]);
        idx[i] = g > 0 ? linear % g : 0;
        linear = g > 0 ? linear / g : 0;
    }
}

void store_chunk_region(int rank, const int64_t *shape, const int64_t *chunk, const int64_t *idx, int64_t *start,
                        int64_t *ext)
{
    for (int i = 0; i < rank; i++) {
        start[i] = idx[i] * chunk[i];
        int64_t end = start[i] + chunk[i] < shape[i] ? start[i] + chunk[i] : shape[i];
        ext[i] = end > start[i] ? end - start[i] : 0;
    }
}

int store_for_chunks(int rank, const int64_t *shape, const int64_t *chunk, const int64_t *start, const int64_t *count,
                     store_chunk_fn fn, void *ctx)
{
    int64_t c0[STORE_MAX_RANK], c1[STORE_MAX_RANK], ci[STORE_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        if (count[i] <= 0) return 0;
        c0[i] = ci[i] = start[i] / chunk[i];
        c1[i] = (start[i] + count[i] - 1) / chunk[i];
    }
    for (;;) {
        int64_t rs[STORE_MAX_RANK], re[STORE_MAX_RANK];
        store_chunk_region(rank, shape, chunk, ci, rs, re);
        int whole = 1;
        for (int i = 0; i < rank; i++)
            if (rs[i] < start[i] || rs[i] + re[i] > start[i] + count[i]) whole = 0;
        int r = fn(ctx, ci, rs, re, whole);
        if (r) return r;
        int i = rank - 1;
        for (; i >= 0; i--) {
            if (++ci[i] <= c1[i]) break;
            ci[i] = c0[i];
        }
        if (i < 0) return 0;
    }
}

uint64_t store_hash_block(const void *buf, int rank, const int64_t *dims, const int64_t *off, const int64_t *ext,
                          size_t elem)
{
    for (int i = 0; i < rank; i++)
        if (ext[i] <= 0) return hash_oneshot(NULL, 0);
    /* The longest contiguous run: the last axis, and the axes before it for
     * as long as the block spans the whole buffer along the axis after. */
    int j = rank - 1;
    size_t run = elem * (size_t)ext[j];
    while (j > 0 && ext[j] == dims[j]) {
        j--;
        run *= (size_t)ext[j];
    }
    int64_t stride[STORE_MAX_RANK];
    stride[rank - 1] = (int64_t)elem;
    for (int i = rank - 2; i >= 0; i--) stride[i] = stride[i + 1] * dims[i + 1];
    const unsigned char *base = buf;
    for (int i = 0; i < rank; i++) base += off[i] * stride[i];
    if (j == 0) return hash_oneshot(base, run);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    int64_t p[STORE_MAX_RANK] = {0};
    for (;;) {
        const unsigned char *q = base;
        for (int i = 0; i < j; i++) q += p[i] * stride[i];
        hash_update(&st, q, run);
        int i = j - 1;
        for (; i >= 0; i--) {
            if (++p[i] < ext[i]) break;
            p[i] = 0;
        }
        if (i < 0) break;
    }
    return XXH3_64bits_digest(&st);
}

/* ---- the record of what a stage committed --------------------------------- */

static json_t *ints_json(const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

json_t *store_entry_new(int rank, const int64_t *shape, const int64_t *chunk, json_t *dtype, const char *compressor)
{
    return json_pack("{s:o, s:o, s:o, s:s, s:s}", "shape", ints_json(shape, rank), "chunks", ints_json(chunk, rank),
                     "dtype", dtype, "compressor", compressor, "checksum", STORE_SUM_ALGORITHM);
}

static void value_text(sbuf *b, const json_t *v)
{
    if (!v) {
        sbuf_put(b, "nothing");
        return;
    }
    if (json_is_string(v)) {
        sbuf_put(b, json_string_value(v));
        return;
    }
    size_t i;
    const json_t *x;
    int ints = json_is_array(v) && json_array_size(v) > 0;
    json_array_foreach(v, i, x) ints &= json_is_integer(x);
    if (ints) { /* a shape: 6x48x40 */
        json_array_foreach(v, i, x) sbuf_printf(b, "%s%lld", i ? "x" : "", (long long)json_integer_value(x));
        return;
    }
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    sbuf_put(b, t ? t : "?");
    free(t);
}

int store_entry_differs(const json_t *committed, const json_t *found, sbuf *why)
{
    static const char *const keys[] = {"shape", "chunks", "dtype", "compressor", "checksum", NULL};
    static const char *const said[] = {"shape", "chunks", "dtype", "compressor", "checksum algorithm", NULL};
    for (int k = 0; keys[k]; k++) {
        const json_t *c = json_object_get(committed, keys[k]), *f = json_object_get(found, keys[k]);
        if (c && f && json_equal((json_t *)c, (json_t *)f)) continue;
        sbuf_printf(why, "%s is ", said[k]);
        value_text(why, f);
        sbuf_put(why, " where the stage committed ");
        value_text(why, c);
        return 1;
    }
    return 0;
}

int store_check_entry(store *s, const char *stage, const char *name, const json_t *committed, json_t *found)
{
    sbuf why = {0};
    int rc = !found ? ss_fail(SS_ERR_NOMEM, "out of memory") : SS_OK;
    if (rc == SS_OK && store_entry_differs(committed, found, &why))
        rc = store_fail_damaged(s, stage, name, "%s (metadata damaged)", sbuf_str(&why));
    json_decref(found);
    sbuf_free(&why);
    return rc;
}

int store_committed_entry(store *s, const char *stage, const char *name, json_t **entry)
{
    *entry = NULL;
    json_t *attrs = NULL;
    int rc = store_stage_attrs(s, stage, &attrs);
    if (rc != SS_OK) return rc;
    json_t *all = json_object_get(attrs, STORE_ARRAYS_ATTR);
    if (all && !json_is_object(all))
        rc = store_fail_damaged(s, stage, NULL, "the attribute %s is not a JSON object", STORE_ARRAYS_ATTR);
    else if (all && !json_object_get(all, name))
        rc = ss_fail(SS_ERR_INPUT, "%s: stage '%s' committed no array or table '%s'", s->path, stage, name);
    else if (all)
        *entry = json_incref(json_object_get(all, name));
    json_decref(attrs);
    return rc;
}

void store_chunk_text(sbuf *b, int rank, const int64_t *shape, const int64_t *chunk, const int64_t *idx,
                      const char *axes, int table)
{
    sbuf_put(b, "chunk (");
    for (int i = 0; i < rank; i++) sbuf_printf(b, "%s%lld", i ? "," : "", (long long)idx[i]);
    sbuf_put(b, ")");
    int64_t start[STORE_MAX_RANK], ext[STORE_MAX_RANK];
    store_chunk_region(rank, shape, chunk, idx, start, ext);
    /* images: the planes (axes before the last two); else the first axis */
    int lead = rank >= 3 ? rank - 2 : 1;
    int planes = rank >= 3;
    for (int i = 0; i < lead; i++) {
        if (i == 0) sbuf_put(b, planes ? (ext[0] > 1 || lead > 1 ? " (planes " : " (plane ") : " (");
        else sbuf_put(b, ", ");
        if (table) sbuf_put(b, "rows ");
        else if (axes && (int)strlen(axes) == rank) sbuf_printf(b, "%c ", axes[i]);
        else sbuf_printf(b, "dim%d ", i);
        if (ext[i] <= 1) sbuf_printf(b, "%lld", (long long)start[i]);
        else sbuf_printf(b, "%lld-%lld", (long long)start[i], (long long)(start[i] + ext[i] - 1));
    }
    sbuf_put(b, ")");
}

/* Arrays of one store may be read from several threads (the Zarr backend
 * allows it): what they find goes to one list. */
static pthread_mutex_t damage_mutex = PTHREAD_MUTEX_INITIALIZER;

static void note_damage(store *s, const char *stage, const char *why)
{
    if (!stage) return;
    pthread_mutex_lock(&damage_mutex);
    if (!s->damage_seen) s->damage_seen = json_object();
    if (s->damage_seen && !json_object_get(s->damage_seen, stage))
        json_object_set_new(s->damage_seen, stage, json_string(why));
    pthread_mutex_unlock(&damage_mutex);
}

int store_fail_damaged(store *s, const char *stage, const char *name, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int rc = name ? ss_fail(SS_ERR_INPUT, "%s: stage '%s', '%s': %s", s->path, stage, name, what)
                  : ss_fail(SS_ERR_INPUT, "%s: stage '%s': %s", s->path, stage, what);
    note_damage(s, stage, ss_errmsg());
    return rc;
}

int store_finding_of(int code, store_finding_fn fn, void *ctx, const char *stage, const char *name)
{
    if (code != SS_ERR_INPUT) return code;
    fn(ctx, STORE_PROBLEM, stage, name, ss_errmsg());
    ss_errclear();
    return 1;
}

json_t *store_damage_take(store *s)
{
    pthread_mutex_lock(&damage_mutex);
    json_t *seen = s->damage_seen ? s->damage_seen : json_object();
    s->damage_seen = NULL;
    pthread_mutex_unlock(&damage_mutex);
    return seen;
}

void store_set_verify(store *s, int on) { s->verify = on; }
int store_get_verify(const store *s) { return s->verify; }

/* ---- checks --------------------------------------------------------------- */

typedef struct {
    char *first;  /* the first problem, for store_stage_check */
    store_finding_fn fn;
    void *ctx;
    int problems;
} findings;

static void collect(void *op, store_severity sev, const char *stage, const char *member, const char *msg)
{
    findings *f = op;
    if (sev == STORE_PROBLEM) {
        f->problems++;
        if (!f->first) f->first = ss_strdup(msg);
    }
    if (f->fn) f->fn(f->ctx, sev, stage, member, msg);
}

/* The record of stage: *arrays (borrowed from *attrs) or NULL. A problem,
 * reported, when the attributes or the record cannot be read. */
static int stage_record(store *s, const char *stage, json_t **attrs, json_t **arrays, findings *f)
{
    *arrays = NULL;
    if (store_stage_attrs(s, stage, attrs) != SS_OK) {
        *attrs = NULL;
        collect(f, STORE_PROBLEM, stage, NULL, ss_errmsg());
        return 0;
    }
    json_t *a = json_object_get(*attrs, STORE_ARRAYS_ATTR);
    if (a && !json_is_object(a)) {
        char *m = ss_asprintf("%s: stage '%s': the attribute %s is not a JSON object", s->path, stage,
                              STORE_ARRAYS_ATTR);
        collect(f, STORE_PROBLEM, stage, NULL, m ? m : "out of memory");
        free(m);
        return 0;
    }
    *arrays = a;
    return 1;
}

static int check_stage(store *s, const char *stage, int content, int stop, findings *f, store_state *state,
                       int64_t *chunks)
{
    json_t *attrs = NULL, *arrays = NULL;
    int rc = SS_OK;
    *state = STORE_DAMAGED;
    if (!stage_record(s, stage, &attrs, &arrays, f)) return SS_OK;
    /* the full check looks for itself; the cheap one trusts the record */
    char *recorded = content ? NULL : store_damage_of(s, stage);
    if (recorded) {
        char *m = ss_asprintf("%s (found earlier)", recorded);
        collect(f, STORE_PROBLEM, stage, NULL, m ? m : recorded);
        free(m);
        free(recorded);
        if (stop) {
            json_decref(attrs);
            return SS_OK;
        }
    }
    if (!arrays) {
        json_decref(attrs);
        if (f->problems) return SS_OK;
        *state = STORE_UNVERIFIED;
        char *m = ss_asprintf("%s: stage '%s': committed without checksums (before they existed): not verified",
                              s->path, stage);
        collect(f, STORE_NOTE, stage, NULL, m ? m : "not verified");
        free(m);
        return SS_OK;
    }
    const char *name;
    json_t *entry;
    json_object_foreach(arrays, name, entry)
    {
        int n = s->be->check_member(s, stage, name, entry, content, stop, collect, f, chunks);
        if (n < 0) {
            rc = n;
            break;
        }
        if (stop && f->problems) break;
    }
    json_decref(attrs);
    if (rc == SS_OK && !f->problems) *state = STORE_INTACT;
    return rc;
}

int store_stage_check(store *s, const char *stage)
{
    findings f = {0};
    store_state state;
    int64_t chunks = 0;
    int rc = check_stage(s, stage, 0, 1, &f, &state, &chunks);
    if (rc == SS_OK && f.problems) rc = ss_fail(SS_ERR_INPUT, "%s", f.first);
    free(f.first);
    return rc;
}

int store_stage_verify(store *s, const char *stage, store_finding_fn fn, void *ctx, store_state *state,
                       int64_t *chunks)
{
    findings f = {.fn = fn, .ctx = ctx};
    int rc = check_stage(s, stage, 1, 0, &f, state, chunks);
    free(f.first);
    return rc;
}

int store_index_verify(store *s, store_finding_fn fn, void *ctx)
{
    findings f = {.fn = fn, .ctx = ctx};
    if (s->index_problem) {
        char *m = ss_asprintf("%s: the next run does", s->index_problem);
        collect(&f, STORE_PROBLEM, NULL, NULL, m ? m : s->index_problem);
        free(m);
    }
    int n = s->be->check_index(s, collect, &f);
    free(f.first);
    return n < 0 ? n : f.problems;
}

/* ---- damage records ------------------------------------------------------- */

/* What identifies one commit of a stage: a recommit gets another. */
static char *commit_identity(store *s, const char *stage)
{
    json_t *attrs = NULL;
    if (store_stage_attrs(s, stage, &attrs) != SS_OK) {
        ss_errclear();
        return NULL;
    }
    const char *fp = json_string_value(json_object_get(attrs, "fingerprint"));
    const char *t = json_string_value(json_object_get(attrs, STORE_COMMIT_TIME_ATTR));
    const char *a = json_string_value(json_object_get(attrs, "started"));
    const char *b = json_string_value(json_object_get(attrs, "finished"));
    char *id = ss_asprintf("%s %s %s %s", fp ? fp : "-", t ? t : "-", a ? a : "-", b ? b : "-");
    json_decref(attrs);
    return id;
}

static char *damage_path(store *s, const char *stage)
{
    return store_valid_name(stage) ? ss_asprintf("%s/damaged/%s.json", s->workdir, stage) : NULL;
}

int store_mark_damaged(store *s, const char *stage, const char *why)
{
    if (store_is_packed(s)) return SS_OK; /* an archive is never written to, nor beside */
    if (!why) {
        store_clear_damage(s, stage);
        return SS_OK;
    }
    char *p = damage_path(s, stage), *id = commit_identity(s, stage);
    char *dir = ss_asprintf("%s/damaged", s->workdir);
    json_t *j = id ? json_pack("{s:s,s:s,s:s}", "stage", stage, "reason", why, "commit", id) : NULL;
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int rc = p && dir && text ? fs_mkdir_p(dir) : SS_OK;
    if (rc == SS_OK && p && text) rc = fs_write_atomic(p, text, strlen(text));
    json_decref(j);
    free(text);
    free(dir);
    free(id);
    free(p);
    return rc;
}

char *store_damage_of(store *s, const char *stage)
{
    char *p = damage_path(s, stage);
    json_t *j = p && path_exists(p) ? json_load_file(p, 0, NULL) : NULL;
    char *why = NULL;
    if (j) {
        char *id = commit_identity(s, stage);
        const char *rec = json_string_value(json_object_get(j, "commit"));
        const char *r = json_string_value(json_object_get(j, "reason"));
        if (id && rec && r && !strcmp(id, rec)) why = ss_strdup(r);
        free(id);
    }
    json_decref(j);
    free(p);
    return why;
}

/* Called by a commit: the stage is new, so is its data. */
void store_clear_damage(store *s, const char *stage)
{
    char *p = damage_path(s, stage);
    if (p) unlink(p);
    free(p);
}

int store_verify_default(void)
{
    const char *e = getenv(STORE_VERIFY_ENV);
    if (!e || !*e) return 1;
    return !(!strcmp(e, "0") || !strcasecmp(e, "off") || !strcasecmp(e, "no") || !strcasecmp(e, "false"));
}
