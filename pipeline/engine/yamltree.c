#include "yamltree.h"
#include "error.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Aliases can make a small file expand to a huge tree; refuse past this. */
#define MAX_EXPANDED_NODES 1000000
#define MAX_DEPTH 64

typedef struct {
    char *name;
    ynode *node;
} anchor;

typedef struct {
    ydoc *doc;
    yaml_parser_t p;
    anchor *anchors;
    size_t n_anchors;
    long expanded;
} loader;

static ynode *node_new(loader *L, yn_kind k, const yaml_mark_t *m)
{
    ynode *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = k;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    n->next_alloc = L->doc->all;
    L->doc->all = n;
    return n;
}

static int err_at(loader *L, const yaml_mark_t *m, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    return ss_fail(SS_ERR_CONFIG, "%s:%d:%d: %s", L->doc->file, (int)m->line + 1, (int)m->column + 1, msg);
}

static int parser_error(loader *L)
{
    yaml_parser_t *p = &L->p;
    const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->mark;
    const char *what = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_READER_ERROR)
        return ss_fail(SS_ERR_CONFIG, "%s: byte %zu: not a YAML text file (%s)", L->doc->file, p->problem_offset,
                       what);
    char ctx[256] = "";
    if (p->context) snprintf(ctx, sizeof ctx, " %s (line %d),", p->context, (int)p->context_mark.line + 1);
    return ss_fail(SS_ERR_CONFIG, "%s:%d:%d: YAML syntax error:%s %s", L->doc->file, (int)m->line + 1,
                   (int)m->column + 1, ctx, what);
}

static long count_expanded(const ynode *n, int depth)
{
    if (!n || depth > MAX_DEPTH) return MAX_EXPANDED_NODES + 1;
    long c = 1;
    for (size_t i = 0; i < n->n && c <= MAX_EXPANDED_NODES; i++) {
        c += count_expanded(n->items[i], depth + 1);
        if (n->keys) c++;
    }
    return c;
}

static int add_anchor(loader *L, const yaml_char_t *name, ynode *n)
{
    if (!name) return SS_OK;
    anchor *a = realloc(L->anchors, (L->n_anchors + 1) * sizeof *a);
    if (!a) return ss_fail(SS_ERR_NOMEM, "out of memory");
    L->anchors = a;
    /* A later anchor of the same name shadows the earlier (YAML rule). */
    a[L->n_anchors].name = ss_strdup((const char *)name);
    a[L->n_anchors].node = n;
    L->n_anchors++;
    return SS_OK;
}

static int parse_node(loader *L, yaml_event_t *ev, ynode **out, int depth);

static int next_event(loader *L, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&L->p, ev)) return parser_error(L);
    return SS_OK;
}

static int push(ynode *parent, ynode *key, ynode *val)
{
    size_t n = parent->n + 1;
    ynode **items = realloc(parent->items, n * sizeof *items);
    if (!items) return ss_fail(SS_ERR_NOMEM, "out of memory");
    parent->items = items;
    if (key) {
        ynode **keys = realloc(parent->keys, n * sizeof *keys);
        if (!keys) return ss_fail(SS_ERR_NOMEM, "out of memory");
        parent->keys = keys;
        keys[n - 1] = key;
    }
    items[n - 1] = val;
    parent->n = n;
    return SS_OK;
}

static int parse_node(loader *L, yaml_event_t *ev, ynode **out, int depth)
{
    int rc = SS_OK;
    *out = NULL;
    if (depth > MAX_DEPTH) return err_at(L, &ev->start_mark, "nesting deeper than %s levels", "64");
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        for (size_t i = L->n_anchors; i-- > 0;)
            if (!strcmp(L->anchors[i].name, name)) {
                *out = L->anchors[i].node;
                L->expanded += count_expanded(*out, 0);
                if (L->expanded > MAX_EXPANDED_NODES)
                    return err_at(L, &ev->start_mark, "aliases expand to more than a million nodes (*%s)", name);
                return SS_OK;
            }
        return err_at(L, &ev->start_mark, "alias *%s refers to no anchor defined before it", name);
    }
    case YAML_SCALAR_EVENT: {
        ynode *n = node_new(L, YN_SCALAR, &ev->start_mark);
        if (!n) return ss_fail(SS_ERR_NOMEM, "out of memory");
        n->value = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        if (strlen(n->value) != ev->data.scalar.length)
            return err_at(L, &ev->start_mark, "%s", "a NUL byte inside a value");
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (ev->data.scalar.tag && ev->data.scalar.quoted_implicit == 0 && ev->data.scalar.plain_implicit == 0)
            if (strcmp((const char *)ev->data.scalar.tag, "tag:yaml.org,2002:str") == 0) n->plain = 0;
        *out = n;
        L->expanded++;
        return add_anchor(L, ev->data.scalar.anchor, n);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        ynode *n = node_new(L, is_map ? YN_MAP : YN_SEQ, &ev->start_mark);
        if (!n) return ss_fail(SS_ERR_NOMEM, "out of memory");
        L->expanded++;
        rc = add_anchor(L, is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor, n);
        for (;;) {
            yaml_event_t e;
            if (rc != SS_OK) return rc;
            if ((rc = next_event(L, &e)) != SS_OK) return rc;
            if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            ynode *key = NULL, *val = NULL;
            if (is_map) {
                if (e.type != YAML_SCALAR_EVENT) {
                    rc = err_at(L, &e.start_mark, "%s", "a map key must be a plain value, not a list or map");
                    yaml_event_delete(&e);
                    return rc;
                }
                rc = parse_node(L, &e, &key, depth + 1);
                yaml_event_delete(&e);
                if (rc != SS_OK) return rc;
                for (size_t i = 0; i < n->n; i++)
                    if (!strcmp(n->keys[i]->value, key->value)) {
                        char msg[600];
                        snprintf(msg, sizeof msg, "duplicate key '%.200s' (first at line %d)", key->value,
                                 n->keys[i]->line);
                        return ss_fail(SS_ERR_CONFIG, "%s:%d:%d: %s", L->doc->file, key->line, key->col, msg);
                    }
                if ((rc = next_event(L, &e)) != SS_OK) return rc;
            }
            rc = parse_node(L, &e, &val, depth + 1);
            yaml_event_delete(&e);
            if (rc != SS_OK) return rc;
            rc = push(n, key, val);
        }
        *out = n;
        return rc;
    }
    default:
        return err_at(L, &ev->start_mark, "%s", "unexpected YAML event");
    }
}

static int load(loader *L)
{
    yaml_event_t ev;
    int rc, docs = 0;
    for (;;) {
        if ((rc = next_event(L, &ev)) != SS_OK) return rc;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1) {
                rc = err_at(L, &ev.start_mark, "%s", "more than one YAML document (---); a config is one document");
                yaml_event_delete(&ev);
                return rc;
            }
        } else if (t != YAML_STREAM_START_EVENT && t != YAML_DOCUMENT_END_EVENT) {
            rc = parse_node(L, &ev, &L->doc->root, 0);
        }
        yaml_event_delete(&ev);
        if (rc != SS_OK) return rc;
    }
    return SS_OK;
}

int ydoc_load_string(const char *name, const char *text, size_t len, ydoc **out)
{
    *out = NULL;
    ydoc *d = calloc(1, sizeof *d);
    if (!d) return ss_fail(SS_ERR_NOMEM, "out of memory");
    d->file = ss_strdup(name);
    loader L = {.doc = d};
    if (!yaml_parser_initialize(&L.p)) {
        ydoc_free(d);
        return ss_fail(SS_ERR_NOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&L.p, (const unsigned char *)text, len);
    int rc = SS_OK;
    if (memchr(text, 0, len)) rc = ss_fail(SS_ERR_CONFIG, "%s: contains NUL bytes: not a YAML text file", name);
    if (rc == SS_OK) rc = load(&L);
    yaml_parser_delete(&L.p);
    for (size_t i = 0; i < L.n_anchors; i++) free(L.anchors[i].name);
    free(L.anchors);
    if (rc != SS_OK) {
        ydoc_free(d);
        return rc;
    }
    *out = d;
    return SS_OK;
}

int ydoc_load(const char *path, ydoc **out)
{
    char *text;
    size_t n;
    int rc = fs_read_text(path, SS_TEXT_MAX, &text, &n);
    if (rc != SS_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ss_errmsg());
        return ss_fail(rc, "cannot read the config: %s", why);
    }
    rc = ydoc_load_string(path, text, n, out);
    free(text);
    return rc;
}

void ydoc_free(ydoc *d)
{
    if (!d) return;
    for (ynode *n = d->all, *next; n; n = next) {
        next = n->next_alloc;
        free(n->value);
        free(n->items);
        free(n->keys);
        free(n);
    }
    free(d->file);
    free(d);
}

ynode *ymap_get(const ynode *map, const char *key)
{
    if (!map || map->kind != YN_MAP) return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i]->value, key)) return map->items[i];
    return NULL;
}

const char *yn_kind_name(yn_kind k) { return k == YN_MAP ? "a map" : k == YN_SEQ ? "a list" : "a value"; }

int yscalar_is_null(const ynode *n)
{
    if (!n) return 1;
    if (n->kind != YN_SCALAR || !n->plain) return 0;
    const char *v = n->value;
    return !v[0] || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

int yscalar_bool(const ynode *n, int *v)
{
    if (!n || n->kind != YN_SCALAR || !n->plain) return 0;
    const char *s = n->value;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return *v = 1, 1;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return *v = 0, 1;
    return 0;
}

int yscalar_int(const ynode *n, long long *v)
{
    if (!n || n->kind != YN_SCALAR || !n->plain || !n->value[0]) return 0;
    const char *s = n->value;
    int base = 10;
    const char *digits = s;
    if (*digits == '+' || *digits == '-') digits++;
    if (!strncmp(digits, "0x", 2)) base = 16;
    else if (!strncmp(digits, "0o", 2)) base = 8;
    const char *p = digits + (base == 10 ? 0 : 2);
    if (!*p) return 0;
    for (const char *q = p; *q; q++) {
        int ok = base == 16 ? !!strchr("0123456789abcdefABCDEF", *q) : base == 8 ? (*q >= '0' && *q <= '7')
                                                                                  : (*q >= '0' && *q <= '9');
        if (!ok) return 0;
    }
    errno = 0;
    unsigned long long u = strtoull(p, NULL, base);
    if (errno == ERANGE || u > (unsigned long long)LLONG_MAX + (s[0] == '-')) return -1;
    *v = s[0] == '-' ? (long long)(0 - u) : (long long)u;
    return 1;
}

int yscalar_num(const ynode *n, double *v)
{
    long long i;
    int r = yscalar_int(n, &i);
    if (r == 1) return *v = (double)i, 1;
    if (!n || n->kind != YN_SCALAR || !n->plain || !n->value[0]) return 0;
    const char *s = n->value;
    const char *t = s + (*s == '+' || *s == '-');
    if (!strcmp(t, ".inf") || !strcmp(t, ".Inf") || !strcmp(t, ".INF") || !strcmp(t, ".nan") || !strcmp(t, ".NaN") ||
        !strcmp(t, ".NAN"))
        return -1;
    /* YAML 1.2 core: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    const char *p = t;
    int digits = 0;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++, digits++;
    }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p) return 0;
    errno = 0;
    double d = strtod(s, NULL);
    if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) return -1;
    if (!isfinite(d)) return -1;
    *v = d;
    return 1;
}
