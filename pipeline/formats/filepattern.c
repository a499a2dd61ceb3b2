/* Pattern matching on file names with numeric fields, and natural sorting. */
#include "filepattern.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "util.h"

enum { T_LIT, T_STAR, T_ANY, T_FIELD };

typedef struct {
    int kind;
    char c;      /* T_LIT */
    int field;   /* T_FIELD: 0 z, 1 r, 2 c */
    int width;   /* T_FIELD: 0 = any number of digits */
} tok;

typedef struct {
    tok *t;
    int n;
    int has[3];
} compiled;

static int compile(const char *pattern, const char *name, compiled *c)
{
    size_t len = strlen(name);
    c->t = calloc(len + 1, sizeof *c->t);
    c->n = 0;
    c->has[0] = c->has[1] = c->has[2] = 0;
    if (!c->t) return ss_fail(SS_ERR_NOMEM, "out of memory");
    for (const char *p = name; *p;) {
        tok *k = &c->t[c->n++];
        if (*p == '*') k->kind = T_STAR, p++;
        else if (*p == '?') k->kind = T_ANY, p++;
        else if (*p == '{') {
            const char *end = strchr(p, '}');
            char f[32];
            size_t n = end ? (size_t)(end - p - 1) : 0;
            if (!end || n == 0 || n >= sizeof f) goto bad;
            memcpy(f, p + 1, n);
            f[n] = 0;
            char *colon = strchr(f, ':');
            if (colon) *colon = 0;
            if (!strcmp(f, "z")) k->field = 0;
            else if (!strcmp(f, "r") || !strcmp(f, "t")) k->field = 1;
            else if (!strcmp(f, "c")) k->field = 2;
            else goto bad;
            k->kind = T_FIELD;
            if (colon) {
                const char *s = colon + 1;
                if (*s == '0') s++;
                char *e;
                long w = strtol(s, &e, 10);
                if (e == s || w < 1 || w > 18 || (*e && strcmp(e, "d"))) goto bad;
                k->width = (int)w;
            }
            c->has[k->field] = 1;
            p = end + 1;
        } else if (*p == '}') {
            goto bad;
        } else {
            k->kind = T_LIT, k->c = *p++;
        }
    }
    return SS_OK;
bad:
    free(c->t);
    c->t = NULL;
    return ss_fail(SS_ERR_CONFIG, "pattern '%s': fields are {z}, {r} (or {t}) and {c}, optionally with a width such as {z:04d}",
                   pattern);
}

/* Matches s against tokens from i; v holds field values found so far (-1: not yet). */
static int match(const compiled *c, int i, const char *s, int64_t v[3])
{
    if (i == c->n) return *s == 0;
    const tok *k = &c->t[i];
    switch (k->kind) {
    case T_LIT: return *s == k->c && match(c, i + 1, s + 1, v);
    case T_ANY: return *s && match(c, i + 1, s + 1, v);
    case T_STAR:
        for (const char *q = s;; q++) {
            if (match(c, i + 1, q, v)) return 1;
            if (!*q) return 0;
        }
    default: {
        int digits = 0;
        while (isdigit((unsigned char)s[digits]) && digits < 18) digits++;
        for (int L = 1; L <= digits; L++) {
            if (k->width && !(L == k->width || (L > k->width && s[0] != '0'))) continue;
            int64_t x = 0;
            for (int q = 0; q < L; q++) x = x * 10 + (s[q] - '0');
            int64_t old = v[k->field];
            if (old >= 0 && old != x) continue; /* the same field twice must agree */
            v[k->field] = x;
            if (match(c, i + 1, s + L, v)) return 1;
            v[k->field] = old;
        }
        return 0;
    }
    }
}

static int has_magic(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '*' || s[i] == '?' || s[i] == '{' || s[i] == '}') return 1;
    return 0;
}

int fpat_is_pattern(const char *pattern)
{
    const char *slash = strrchr(pattern, '/');
    const char *name = slash ? slash + 1 : pattern;
    return has_magic(name, strlen(name));
}

int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            const char *sa = a, *sb = b;
            while (*sa == '0') sa++;
            while (*sb == '0') sb++;
            const char *ea = sa, *eb = sb;
            while (isdigit((unsigned char)*ea)) ea++;
            while (isdigit((unsigned char)*eb)) eb++;
            if (ea - sa != eb - sb) return ea - sa < eb - sb ? -1 : 1;
            int c = memcmp(sa, sb, (size_t)(ea - sa));
            if (c) return c < 0 ? -1 : 1;
            if (ea - a != eb - b) return ea - a < eb - b ? -1 : 1; /* fewer leading zeros first */
            a = ea, b = eb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++, b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int cmp_files(const void *x, const void *y)
{
    return natural_cmp(((const fpat_file *)x)->path, ((const fpat_file *)y)->path);
}

void fpat_free(fpat_set *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->files[i].path);
    free(s->files);
    memset(s, 0, sizeof *s);
}

int fpat_expand(const char *pattern, fpat_set *out)
{
    memset(out, 0, sizeof *out);
    const char *slash = strrchr(pattern, '/');
    const char *name = slash ? slash + 1 : pattern;
    char *dir = slash ? strndup(pattern, slash == pattern ? 1 : (size_t)(slash - pattern)) : strdup(".");
    if (!dir) return ss_fail(SS_ERR_NOMEM, "out of memory");
    if (has_magic(dir, strlen(dir))) {
        free(dir);
        return ss_fail(SS_ERR_CONFIG, "pattern '%s': wildcards and fields may only appear in the file name, not the folder",
                       pattern);
    }
    if (!*name) {
        free(dir);
        return ss_fail(SS_ERR_CONFIG, "pattern '%s' names a folder; add the file names, e.g. '%s*.tif'", pattern, pattern);
    }
    compiled c;
    int rc = compile(pattern, name, &c);
    if (rc != SS_OK) {
        free(dir);
        return rc;
    }
    out->has_z = c.has[0];
    out->has_r = c.has[1];
    out->has_c = c.has[2];
    DIR *d = opendir(dir);
    if (!d) {
        rc = ss_fail(SS_ERR_INPUT, "%s: cannot list the folder of pattern '%s': %s", dir, name, strerror(errno));
        free(dir);
        free(c.t);
        return rc;
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) && rc == SS_OK) {
        if (e->d_name[0] == '.' && name[0] != '.') continue;
        int64_t v[3] = {-1, -1, -1};
        if (!match(&c, 0, e->d_name, v)) continue;
        char *path = path_join(dir, e->d_name);
        struct stat st;
        if (!path) {
            rc = ss_fail(SS_ERR_NOMEM, "out of memory");
            break;
        }
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            fpat_file *f = realloc(out->files, cap * sizeof *f);
            if (!f) {
                free(path);
                rc = ss_fail(SS_ERR_NOMEM, "out of memory");
                break;
            }
            out->files = f;
        }
        out->files[out->n++] = (fpat_file){.path = path, .z = v[0], .r = v[1], .c = v[2]};
    }
    closedir(d);
    free(dir);
    free(c.t);
    if (rc != SS_OK) {
        fpat_free(out);
        return rc;
    }
    if (out->n > 1) qsort(out->files, out->n, sizeof *out->files, cmp_files);
    return SS_OK;
}
