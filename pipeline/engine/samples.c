/* Samples: an inline list in the config, or a manifest file (TSV or CSV with a
 * header row) with one sample per row. Known fields: id (required), input,
 * voxel_size (three numbers z y x in micrometer), repeats. Every other column
 * is free metadata (animal, session, ...) available to {field} substitution. */
#include "samples.h"
#include "error.h"
#include "yamltree.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int sample_id_valid(const char *id) { return store_valid_name(id) && strcmp(id, COHORT_ID); }

void samples_free(sample_info *s, int n)
{
    for (int i = 0; i < n; i++) json_decref(s[i].fields);
    free(s);
}

/* id/input point into fields, which owns the strings. */
static void sample_bind(sample_info *s)
{
    s->id = json_string_value(json_object_get(s->fields, "id"));
    s->input = json_string_value(json_object_get(s->fields, "input"));
}

/* Parses "z y x" / "z,y,x" / "zxyxx" / "[z, y, x]". */
static int parse_voxel(const char *text, double v[3])
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    int n = 0;
    char *p = buf;
    while (*p && n <= 3) {
        while (*p && (isspace((unsigned char)*p) || *p == ',' || *p == 'x' || *p == 'X' || *p == '[' || *p == ']' ||
                      *p == ';'))
            p++;
        if (!*p) break;
        char *end;
        errno = 0;
        double d = strtod(p, &end);
        if (end == p || errno == ERANGE) return -1;
        if (n < 3) v[n] = d;
        n++;
        p = end;
    }
    if (n != 3) return -1;
    for (int i = 0; i < 3; i++)
        if (!(v[i] > 0) || !isfinite(v[i])) return -1;
    return 0;
}

/* Why an id is refused, for the one-line error (a static buffer). */
static const char *id_problem(const char *id)
{
    static char msg[256];
    size_t n = strlen(id);
    if (!strcmp(id, COHORT_ID))
        snprintf(msg, sizeof msg, "invalid sample id '%s': the run's cohort container has that name", id);
    else if (n > 100)
        snprintf(msg, sizeof msg, "invalid sample id '%.40s...': %zu characters; at most 100", id, n);
    else
        snprintf(msg, sizeof msg, "invalid sample id '%s': use letters, digits, '_' and '-' (1 to 100 characters, "
                 "not starting with '.')", id);
    return msg;
}

/* Sample ids seen so far: an open-addressing hash set of indices into the
 * sample array (which may move as it grows), so that a manifest of 10^6
 * rows is checked in linear time. */
typedef struct {
    int *slot; /* -1: empty */
    size_t cap; /* a power of two, at least twice the ids held */
    size_t n;
} id_set;

static void id_set_free(id_set *t) { free(t->slot); }

static int id_set_grow(id_set *t, const sample_info *all)
{
    size_t cap = t->cap ? 2 * t->cap : 1024;
    int *slot = malloc(cap * sizeof *slot);
    if (!slot) return -1;
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slot[i] < 0) continue;
        size_t h = (size_t)XXH3_64bits(all[t->slot[i]].id, strlen(all[t->slot[i]].id)) & (cap - 1);
        while (slot[h] >= 0) h = (h + 1) & (cap - 1);
        slot[h] = t->slot[i];
    }
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return 0;
}

/* Adds all[n].id unless an earlier sample has it (then an error at line:col). */
static int check_duplicate(cfg_errors *e, id_set *t, sample_info *all, int n, int line, int col, const char *kp)
{
    if (2 * (t->n + 1) > t->cap && id_set_grow(t, all) != 0) abort();
    const char *id = all[n].id;
    size_t h = (size_t)XXH3_64bits(id, strlen(id)) & (t->cap - 1);
    for (; t->slot[h] >= 0; h = (h + 1) & (t->cap - 1))
        if (!strcmp(all[t->slot[h]].id, id)) {
            cfg_error(e, line, col, kp, "duplicate sample id '%s'", id);
            return -1;
        }
    t->slot[h] = n;
    t->n++;
    return 0;
}

int samples_load_inline(const ynode *seq, cfg_errors *e, sample_info **out, int *n_out)
{
    int before = e->count;
    sample_info *all = calloc(seq->n + 1, sizeof *all);
    if (!all) abort();
    int n = 0;
    id_set ids = {0};
    if (seq->n == 0) cfg_error(e, seq->line, seq->col, "samples", "the sample list is empty");
    for (size_t i = 0; i < seq->n; i++) {
        const ynode *m = seq->items[i];
        char kp[64];
        snprintf(kp, sizeof kp, "samples[%zu]", i);
        if (m->kind != YN_MAP) {
            cfg_error(e, m->line, m->col, kp, "expected a map with at least 'id', got %s", yn_kind_name(m->kind));
            continue;
        }
        sample_info *s = &all[n];
        s->fields = json_object();
        int bad = 0;
        for (size_t k = 0; k < m->n; k++) {
            const char *key = m->keys[k]->value;
            const ynode *v = m->items[k];
            char fkp[200];
            snprintf(fkp, sizeof fkp, "%s.%s", kp, key);
            if (!strcmp(key, "voxel_size")) {
                double vv[3];
                int ok = v->kind == YN_SEQ && v->n == 3;
                for (size_t q = 0; ok && q < 3; q++) ok = yscalar_num(v->items[q], &vv[q]) == 1 && vv[q] > 0;
                if (!ok) {
                    cfg_error(e, v->line, v->col, fkp, "expected a list of three positive numbers [z, y, x] in micrometer");
                    bad = 1;
                    continue;
                }
                memcpy(s->voxel, vv, sizeof vv);
                json_object_set_new(s->fields, key, json_pack("[fff]", vv[0], vv[1], vv[2]));
            } else if (!strcmp(key, "repeats")) {
                long long r;
                if (yscalar_int(v, &r) != 1 || r < 1 || r > 100000) {
                    cfg_error(e, v->line, v->col, fkp, "expected an integer in [1, 100000]");
                    bad = 1;
                    continue;
                }
                s->repeats = (int)r;
                json_object_set_new(s->fields, key, json_integer(r));
            } else if (v->kind != YN_SCALAR || yscalar_is_null(v)) {
                cfg_error(e, v->line, v->col, fkp, "expected a plain value, got %s",
                          v->kind == YN_SCALAR ? "null" : yn_kind_name(v->kind));
                bad = 1;
            } else {
                long long iv;
                double dv;
                if (v->plain && yscalar_int(v, &iv) == 1) json_object_set_new(s->fields, key, json_integer(iv));
                else if (v->plain && yscalar_num(v, &dv) == 1) json_object_set_new(s->fields, key, json_real(dv));
                else json_object_set_new(s->fields, key, json_string(v->value));
            }
        }
        json_t *id = json_object_get(s->fields, "id");
        if (!json_is_string(id)) {
            if (id) json_object_set_new(s->fields, "id", json_string(ymap_get(m, "id")->value));
            else {
                cfg_error(e, m->line, m->col, kp, "missing required key 'id'");
                bad = 1;
            }
        }
        if (!bad && !sample_id_valid(json_string_value(json_object_get(s->fields, "id")))) {
            const ynode *idn = ymap_get(m, "id");
            cfg_error(e, idn->line, idn->col, kp, "%s", id_problem(idn->value));
            bad = 1;
        }
        if (bad) {
            json_decref(s->fields);
            s->fields = NULL;
            continue;
        }
        sample_bind(s);
        const ynode *idn = ymap_get(m, "id");
        if (check_duplicate(e, &ids, all, n, idn->line, idn->col, kp) == 0) n++;
        else json_decref(s->fields);
    }
    id_set_free(&ids);
    if (e->count != before) {
        samples_free(all, n);
        return SS_ERR_CONFIG;
    }
    *out = all;
    *n_out = n;
    return SS_OK;
}

/* ---- manifests ------------------------------------------------------------ */

typedef struct {
    char **cells;
    int *cols; /* 1-based column of each cell */
    int n;
} row;

static void row_free(row *r)
{
    for (int i = 0; i < r->n; i++) free(r->cells[i]);
    free(r->cells);
    free(r->cols);
    memset(r, 0, sizeof *r);
}

/* Splits one record (RFC 4180 quoting for CSV). *p advances past the record.
 * Returns -1 on an unterminated quote. */
static int split_record(const char **p, char sep, row *r, int *lines)
{
    const char *s = *p;
    int col = 1;
    for (;;) {
        sbuf cell = {0};
        int start_col = col;
        if (*s == '"') {
            s++, col++;
            for (;;) {
                if (!*s) {
                    sbuf_free(&cell);
                    return -1;
                }
                if (*s == '"' && s[1] == '"') {
                    sbuf_putn(&cell, "\"", 1);
                    s += 2, col += 2;
                } else if (*s == '"') {
                    s++, col++;
                    break;
                } else {
                    if (*s == '\n') (*lines)++, col = 0;
                    sbuf_putn(&cell, s, 1);
                    s++, col++;
                }
            }
            while (*s && *s != sep && *s != '\n' && *s != '\r') s++, col++;
        } else {
            while (*s && *s != sep && *s != '\n' && *s != '\r') sbuf_putn(&cell, s, 1), s++, col++;
        }
        r->cells = realloc(r->cells, (size_t)(r->n + 1) * sizeof *r->cells);
        r->cols = realloc(r->cols, (size_t)(r->n + 1) * sizeof *r->cols);
        /* Cells are trimmed: manifests are edited by hand and in spreadsheets. */
        const char *t = sbuf_str(&cell);
        while (isspace((unsigned char)*t)) t++;
        size_t len = strlen(t);
        while (len && isspace((unsigned char)t[len - 1])) len--;
        r->cells[r->n] = strndup(t, len);
        r->cols[r->n] = start_col;
        r->n++;
        sbuf_free(&cell);
        if (*s == sep) {
            s++, col++;
            continue;
        }
        if (*s == '\r') s++;
        if (*s == '\n') s++;
        break;
    }
    *p = s;
    return 0;
}

int samples_load_manifest(const char *path, cfg_errors *e, const char *cfg_file, int line, int col,
                          sample_info **out, int *n_out)
{
    char *text;
    size_t len;
    if (fs_read_text(path, SS_TEXT_MAX, &text, &len) != SS_OK) {
        const char *why = ss_errmsg();
        size_t lp = strlen(path);
        if (!strncmp(why, path, lp) && !strncmp(why + lp, ": ", 2)) why += lp + 2;
        cfg_error(e, line, col, "samples.manifest", "cannot read manifest %s: %s", path, why);
        return SS_ERR_CONFIG;
    }
    (void)cfg_file;
    int before = e->count;
    cfg_errors me = {.file = path, .out = e->out, .count = e->count};
    size_t lp = strlen(path);
    char sep = lp > 4 && !strcasecmp(path + lp - 4, ".csv") ? ',' : '\t';
    if (sep == '\t' && !strchr(text, '\t') && strchr(text, ',')) sep = ',';
    if (memchr(text, 0, len)) {
        cfg_error(&me, 0, 0, "", "contains NUL bytes: not a text manifest");
        e->count = me.count;
        free(text);
        return SS_ERR_CONFIG;
    }
    const char *p = text;
    if (!strncmp(p, "\xEF\xBB\xBF", 3)) p += 3; /* spreadsheet BOM */
    int lineno = 0;
    row header = {0};
    sample_info *all = NULL;
    int n = 0, cap = 0;
    id_set ids = {0};
    int id_col = -1, input_col = -1, vox_col = -1, rep_col = -1;
    while (*p) {
        lineno++;
        int extra = 0;
        row r = {0};
        /* Blank and comment lines. */
        const char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        if (*q == '\n' || *q == '\r' || *q == '#' || !*q) {
            while (*p && *p != '\n') p++;
            if (*p) p++;
            continue;
        }
        int start_line = lineno;
        if (split_record(&p, sep, &r, &extra) != 0) {
            cfg_error(&me, start_line, 1, "", "unterminated quoted field");
            row_free(&r);
            break;
        }
        lineno += extra;
        if (!header.n) {
            header = r;
            for (int i = 0; i < header.n; i++) {
                for (int k = 0; k < i; k++)
                    if (!strcmp(header.cells[i], header.cells[k]))
                        cfg_error(&me, start_line, header.cols[i], "", "duplicate column '%s'", header.cells[i]);
                if (!header.cells[i][0]) cfg_error(&me, start_line, header.cols[i], "", "empty column name");
                if (!strcmp(header.cells[i], "id")) id_col = i;
                else if (!strcmp(header.cells[i], "input")) input_col = i;
                else if (!strcmp(header.cells[i], "voxel_size")) vox_col = i;
                else if (!strcmp(header.cells[i], "repeats")) rep_col = i;
            }
            if (id_col < 0) cfg_error(&me, start_line, 1, "", "the header row has no 'id' column");
            continue;
        }
        if (r.n != header.n) {
            cfg_error(&me, start_line, 1, "", "%d fields, but the header has %d (separator '%s')", r.n, header.n,
                      sep == '\t' ? "tab" : ",");
            row_free(&r);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            all = realloc(all, (size_t)cap * sizeof *all);
        }
        sample_info *s = &all[n];
        memset(s, 0, sizeof *s);
        s->fields = json_object();
        int bad = 0;
        char *dir = path_dirname(path);
        for (int i = 0; i < r.n; i++) {
            const char *v = r.cells[i];
            if (i == vox_col) {
                if (!v[0]) continue;
                if (parse_voxel(v, s->voxel) != 0) {
                    cfg_error(&me, start_line, r.cols[i], "voxel_size",
                              "'%s' is not three positive numbers z y x (micrometer)", v);
                    bad = 1;
                    continue;
                }
                json_object_set_new(s->fields, "voxel_size", json_pack("[fff]", s->voxel[0], s->voxel[1], s->voxel[2]));
            } else if (i == rep_col) {
                if (!v[0]) continue;
                char *end;
                errno = 0;
                long rr = strtol(v, &end, 10);
                if (*end || errno || rr < 1 || rr > 100000) {
                    cfg_error(&me, start_line, r.cols[i], "repeats", "'%s' is not an integer in [1, 100000]", v);
                    bad = 1;
                    continue;
                }
                s->repeats = (int)rr;
                json_object_set_new(s->fields, "repeats", json_integer(rr));
            } else if (i == input_col) {
                /* Inputs in a manifest are relative to the manifest's folder. */
                char *abs = v[0] ? path_join(dir, v) : NULL;
                if (abs) json_object_set_new(s->fields, "input", json_string(abs));
                free(abs);
            } else {
                json_object_set_new(s->fields, header.cells[i], json_string(v));
            }
        }
        free(dir);
        const char *id = id_col >= 0 ? r.cells[id_col] : "";
        if (!bad && id_col >= 0 && !sample_id_valid(id)) {
            cfg_error(&me, start_line, r.cols[id_col], "id", "%s", id_problem(id));
            bad = 1;
        }
        if (bad || id_col < 0) {
            json_decref(s->fields);
            row_free(&r);
            continue;
        }
        sample_bind(s);
        if (check_duplicate(&me, &ids, all, n, start_line, r.cols[id_col], "id") == 0) n++;
        else json_decref(s->fields);
        row_free(&r);
    }
    if (!header.n) cfg_error(&me, 0, 0, "", "the manifest is empty (expected a header row with an 'id' column)");
    else if (n == 0 && me.count == before) cfg_error(&me, 0, 0, "", "the manifest lists no samples");
    row_free(&header);
    free(text);
    id_set_free(&ids);
    e->count = me.count;
    if (e->count != before) {
        samples_free(all, n);
        return SS_ERR_CONFIG;
    }
    *out = all;
    *n_out = n;
    return SS_OK;
}
