/* A table that grows a row at a time, written through the store when done:
 * what metrics (per-plane scores, summaries) and synth (spines, artefacts)
 * build. Columns are float64, int64 or short strings (store.h's table_col). */
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns as the store reads tables back (table_data), with room for
 * cap rows. */
struct table_builder {
    table_data t;
    int64_t cap;
    int nomem;
};

static size_t col_size(col_type t) { return t == COL_STR ? TABLE_STR_LEN : 8; }

table_builder *tb_new(int n_cols, const char *const *names, const col_type *types)
{
    table_builder *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    table_data *t = &b->t;
    t->n_cols = n_cols;
    t->names = calloc((size_t)n_cols, sizeof *t->names);
    t->types = calloc((size_t)n_cols, sizeof *t->types);
    t->data = calloc((size_t)n_cols, sizeof *t->data);
    if (!t->names || !t->types || !t->data) {
        tb_free(b);
        return NULL;
    }
    for (int i = 0; i < n_cols; i++) {
        t->types[i] = types[i];
        if (!(t->names[i] = strdup(names[i]))) {
            tb_free(b);
            return NULL;
        }
    }
    return b;
}

void tb_free(table_builder *t)
{
    if (!t) return;
    table_free(&t->t);
    free(t);
}

int64_t tb_rows(const table_builder *t) { return t->t.n_rows; }

int tb_row(table_builder *t)
{
    if (t->nomem) return SS_ERR_NOMEM;
    if (t->t.n_rows == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 64;
        for (int i = 0; i < t->t.n_cols; i++) {
            void *q = realloc(t->t.data[i], (size_t)cap * col_size(t->t.types[i]));
            if (!q) {
                t->nomem = 1;
                return ss_fail(SS_ERR_NOMEM, "out of memory for a table of %lld rows", (long long)cap);
            }
            t->t.data[i] = q;
        }
        t->cap = cap;
    }
    /* a new row starts zeroed (strings empty) */
    for (int i = 0; i < t->t.n_cols; i++) memset((char *)t->t.data[i] + (size_t)t->t.n_rows * col_size(t->t.types[i]), 0,
                                                col_size(t->t.types[i]));
    t->t.n_rows++;
    return SS_OK;
}

void tb_f64(table_builder *t, int col, double v)
{
    if (t->t.n_rows > 0 && t->t.types[col] == COL_F64) ((double *)t->t.data[col])[t->t.n_rows - 1] = v;
}

void tb_i64(table_builder *t, int col, int64_t v)
{
    if (t->t.n_rows > 0 && t->t.types[col] == COL_I64) ((int64_t *)t->t.data[col])[t->t.n_rows - 1] = v;
}

void tb_str(table_builder *t, int col, const char *s)
{
    if (t->t.n_rows > 0 && t->t.types[col] == COL_STR)
        snprintf((char *)t->t.data[col] + (size_t)(t->t.n_rows - 1) * TABLE_STR_LEN, TABLE_STR_LEN, "%s", s);
}

double tb_get_f64(const table_builder *t, int col, int64_t row)
{
    return t->t.types[col] == COL_F64 && row >= 0 && row < t->t.n_rows ? ((const double *)t->t.data[col])[row] : NAN;
}

int64_t tb_get_i64(const table_builder *t, int col, int64_t row)
{
    return t->t.types[col] == COL_I64 && row >= 0 && row < t->t.n_rows ? ((const int64_t *)t->t.data[col])[row] : 0;
}

int tb_write(const table_builder *t, store_writer *w, const char *name)
{
    table_col *cols = calloc((size_t)t->t.n_cols, sizeof *cols);
    size_t nstr = (size_t)(t->t.n_rows ? t->t.n_rows : 1);
    const char **strs = calloc((size_t)t->t.n_cols * nstr, sizeof *strs);
    if (!cols || !strs) {
        free(cols);
        free(strs);
        return ss_fail(SS_ERR_NOMEM, "out of memory writing table '%s'", name);
    }
    for (int i = 0; i < t->t.n_cols; i++) {
        cols[i].name = t->t.names[i];
        cols[i].type = t->t.types[i];
        if (t->t.types[i] == COL_F64) cols[i].f64 = t->t.data[i];
        else if (t->t.types[i] == COL_I64) cols[i].i64 = t->t.data[i];
        else {
            const char **s = strs + (size_t)i * nstr;
            for (int64_t r = 0; r < t->t.n_rows; r++) s[r] = (const char *)t->t.data[i] + (size_t)r * TABLE_STR_LEN;
            cols[i].str = s;
        }
    }
    table_view v = {.n_cols = t->t.n_cols, .n_rows = t->t.n_rows, .cols = cols};
    int rc = store_writer_table(w, name, &v);
    free(cols);
    free(strs);
    return rc;
}
