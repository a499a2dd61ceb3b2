#include "fuzz_common.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

static char *scratch;

static void remove_scratch(void)
{
    if (scratch) fs_rm_rf(scratch);
}

const char *fuzz_dir(void)
{
    if (scratch) return scratch;
    const char *tmp = getenv("TMPDIR");
    char *tmpl = ss_asprintf("%s/sirenstack-fuzz.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!tmpl || !mkdtemp(tmpl)) {
        fprintf(stderr, "fuzz: cannot make a scratch folder: %s\n", strerror(errno));
        abort();
    }
    scratch = tmpl;
    atexit(remove_scratch);
    return scratch;
}

char *fuzz_path(const char *name)
{
    char *p = path_join(fuzz_dir(), name);
    if (!p) abort();
    return p;
}

void fuzz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

void fuzz_fresh_dir(const char *path)
{
    if (fs_rm_rf(path) != SS_OK || fs_mkdir_p(path) != SS_OK) {
        fprintf(stderr, "fuzz: %s\n", ss_errmsg());
        abort();
    }
}

char *fuzz_strndup(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

/* ---- archives ------------------------------------------------------------ */

#define NAME_MAX_LEN 255
#define NAME_MAX_DEPTH 16

static int name_ok(const char *name)
{
    size_t len = strlen(name);
    if (!len || len > NAME_MAX_LEN) return 0;
    int depth = 0;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-'))
                return 0;
        }
        if (++depth > NAME_MAX_DEPTH) return 0;
        p += n + (e != NULL);
        if (e && !*p) return 0; /* trailing slash */
    }
    return 1;
}

static void put_member(const char *dir, const char *name, const uint8_t *data, size_t n)
{
    if (!name_ok(name)) return;
    char *path = path_join(dir, name), *parent = path ? path_dirname(path) : NULL;
    struct stat st;
    /* A name that is also a folder of an earlier member (or under a file)
     * cannot be made; like a bad name, it drops the member. */
    if (parent && fs_mkdir_p(parent) == SS_OK && !(lstat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        fuzz_write(path, data, n);
    ss_errclear();
    free(parent);
    free(path);
}

void fuzz_unpack(const char *dir, const uint8_t *data, size_t n)
{
    static const char mark[] = "--- ";
    const size_t ml = sizeof mark - 1;
    const uint8_t *end = data + n, *p = data;
    char name[NAME_MAX_LEN + 2];
    int have = 0;
    const uint8_t *body = NULL;
    for (;;) {
        /* p is at the start of a line */
        int header = (size_t)(end - p) >= ml && !memcmp(p, mark, ml);
        const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
        if (header || p == end) {
            if (have) {
                /* the newline before a header belongs to the header */
                const uint8_t *stop = p > body && p[-1] == '\n' && p != end ? p - 1 : p;
                put_member(dir, name, body, (size_t)(stop - body));
            }
            if (p == end) break;
            const uint8_t *ne = eol ? eol : end;
            size_t nl = (size_t)(ne - (p + ml));
            have = nl <= NAME_MAX_LEN && !memchr(p + ml, 0, nl);
            if (have) {
                memcpy(name, p + ml, nl);
                name[nl] = 0;
            }
            body = eol ? eol + 1 : end;
        }
        p = eol ? eol + 1 : end;
    }
}

/* ---- reading a container ----------------------------------------------- */

/* A slab of at most FUZZ_READ_ELEMS elements at a corner of the array: the
 * first elements (corner 0) or the last (corner 1), where partial chunks are. */
static void read_corner(store_array *a, const array_info *in, int corner)
{
    int64_t start[STORE_MAX_RANK], count[STORE_MAX_RANK], left = FUZZ_READ_ELEMS, total = 1;
    for (int i = in->rank - 1; i >= 0; i--) {
        count[i] = in->shape[i] < left ? in->shape[i] : left;
        if (count[i] > 0) left /= count[i];
        if (left < 1) left = 1;
        start[i] = corner ? in->shape[i] - count[i] : 0;
        total *= count[i];
    }
    size_t esize = dtype_size(in->dtype);
    void *buf = malloc(total > 0 ? (size_t)total * esize : 1);
    if (!buf) abort();
    if (store_array_read(a, start, count, in->dtype, buf) != SS_OK) ss_errclear();
    /* and once through a conversion, as stages read their inputs */
    float *f = malloc(total > 0 ? (size_t)total * sizeof *f : 1);
    if (!f) abort();
    if (store_array_read(a, start, count, DT_F32, f) != SS_OK) ss_errclear();
    free(f);
    free(buf);
}

static void walk_array(store *s, const char *stage, const char *name)
{
    store_array *a = NULL;
    if (store_array_open(s, stage, name, &a) != SS_OK) {
        ss_errclear();
        return;
    }
    array_info in;
    if (store_array_info(a, &in) == SS_OK) {
        array_meta m = array_meta_of(&in);
        (void)m;
        read_corner(a, &in, 0);
        read_corner(a, &in, 1);
        if (in.rank >= 2 && in.shape[0] == 1 && store_array_drop_first_axis(a) == SS_OK &&
            store_array_info(a, &in) == SS_OK)
            read_corner(a, &in, 1);
    }
    ss_errclear();
    store_array_close(a);
}

void fuzz_walk_store(store *s)
{
    char **stages = NULL;
    if (store_list_stages(s, &stages) != SS_OK) {
        ss_errclear();
        return;
    }
    for (char **st = stages; *st; st++) {
        if (store_has_stage(s, *st) < 0) ss_errclear();
        json_t *attrs = NULL;
        if (store_stage_attrs(s, *st, &attrs) == SS_OK) {
            char *text = json_dumps(attrs, JSON_SORT_KEYS);
            free(text);
            json_decref(attrs);
        }
        ss_errclear();
        char **names = NULL;
        if (store_list_arrays(s, *st, &names) != SS_OK) {
            ss_errclear();
            continue;
        }
        for (char **nm = names; *nm; nm++) {
            int t = store_is_table(s, *st, *nm);
            if (t == 1) {
                table_data td = {0};
                if (store_table_read(s, *st, *nm, &td) == SS_OK) table_free(&td);
            } else if (t == 0) {
                walk_array(s, *st, *nm);
            }
            ss_errclear();
        }
        store_names_free(names);
    }
    store_names_free(stages);
}
