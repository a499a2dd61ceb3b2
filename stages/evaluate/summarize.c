/* summarize: one cohort table from every sample's tables (the metric
 * summaries, usually). A cohort stage: it runs once per run, after every
 * sample has committed the tables it reads.
 *
 * Rows: for each sample in the run's order, for each connected table in
 * config order, that table's rows. Columns: sample (the id); the sample's
 * metadata fields (every field of the config's sample entries or the
 * manifest's columns but id and input, or those named by `fields`); table
 * ("stage.table", when more than one table is connected); then the union of
 * the tables' columns in the order first seen. A value a row lacks is NaN
 * (numbers) or "" (strings); a column that is an integer in one table and a
 * float in another is a float; a metadata field that is not a number in
 * every sample is a string. The same table is written as CSV beside the
 * cohort container (OUTPUT/<stage>.csv) unless `csv` is false. */
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct {
    char *name;
    col_type type;
} column;

typedef struct {
    column *cols;
    int n;
} schema;

static int find_col(const schema *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->cols[i].name, name)) return i;
    return -1;
}

/* Adds a column, or widens an existing one: i64 + f64 -> f64, any + str -> str. */
static int add_col(schema *s, const char *name, col_type t)
{
    int i = find_col(s, name);
    if (i >= 0) {
        col_type o = s->cols[i].type;
        if (o != t) s->cols[i].type = (o == COL_STR || t == COL_STR) ? COL_STR : COL_F64;
        return SS_OK;
    }
    column *nc = realloc(s->cols, (size_t)(s->n + 1) * sizeof *nc);
    if (!nc) return ss_fail(SS_ERR_NOMEM, "summarize: out of memory");
    s->cols = nc;
    s->cols[s->n].name = ss_strdup(name);
    s->cols[s->n].type = t;
    s->n++;
    return SS_OK;
}

static void schema_free(schema *s)
{
    for (int i = 0; i < s->n; i++) free(s->cols[i].name);
    free(s->cols);
}

static col_type json_col_type(const json_t *v)
{
    return json_is_integer(v) ? COL_I64 : json_is_number(v) ? COL_F64 : COL_STR;
}

/* The metadata fields the table carries, in the first sample's order. */
static int meta_fields(stage_ctx *c, const sample_info *first, schema *meta)
{
    int rc = SS_OK;
    if (!ctx_is_null(c, "fields")) {
        for (size_t i = 0; i < ctx_list_len(c, "fields") && rc == SS_OK; i++)
            rc = add_col(meta, ctx_list_str(c, "fields", i), COL_I64);
        return rc;
    }
    const char *k;
    json_t *v;
    json_object_foreach(first->fields, k, v)
    {
        if (!strcmp(k, "id") || !strcmp(k, "input")) continue;
        if ((rc = add_col(meta, k, COL_I64)) != SS_OK) break;
    }
    return rc;
}

static void cell_text(char *out, const table_data *t, int col, int64_t row)
{
    if (t->types[col] == COL_STR) snprintf(out, TABLE_STR_LEN, "%s", (const char *)t->data[col] + row * TABLE_STR_LEN);
    else if (t->types[col] == COL_I64) snprintf(out, TABLE_STR_LEN, "%lld", (long long)((int64_t *)t->data[col])[row]);
    else snprintf(out, TABLE_STR_LEN, "%.17g", ((double *)t->data[col])[row]);
}

static double cell_num(const table_data *t, int col, int64_t row)
{
    return t->types[col] == COL_I64 ? (double)((int64_t *)t->data[col])[row] : ((double *)t->data[col])[row];
}

/* Sets out's cell (col, row) from a JSON value (a metadata field). */
static void put_json(table_data *out, int col, int64_t row, const json_t *v)
{
    if (out->types[col] == COL_STR) {
        char *dst = (char *)out->data[col] + row * TABLE_STR_LEN;
        if (json_is_string(v)) snprintf(dst, TABLE_STR_LEN, "%s", json_string_value(v));
        else if (json_is_integer(v)) snprintf(dst, TABLE_STR_LEN, "%lld", (long long)json_integer_value(v));
        else if (json_is_number(v)) snprintf(dst, TABLE_STR_LEN, "%.17g", json_number_value(v));
        else if (json_is_boolean(v)) snprintf(dst, TABLE_STR_LEN, "%s", json_is_true(v) ? "true" : "false");
    } else if (out->types[col] == COL_I64) {
        ((int64_t *)out->data[col])[row] = json_integer_value(v);
    } else {
        ((double *)out->data[col])[row] = json_is_number(v) ? json_number_value(v) : NAN;
    }
}

static int alloc_table(table_data *t, const schema *s, int64_t rows)
{
    t->n_cols = s->n;
    t->n_rows = rows;
    t->names = calloc((size_t)s->n, sizeof *t->names);
    t->types = calloc((size_t)s->n, sizeof *t->types);
    t->data = calloc((size_t)s->n, sizeof *t->data);
    if (!t->names || !t->types || !t->data) return ss_fail(SS_ERR_NOMEM, "summarize: out of memory");
    size_t n = rows ? (size_t)rows : 1;
    for (int i = 0; i < s->n; i++) {
        t->names[i] = ss_strdup(s->cols[i].name);
        t->types[i] = s->cols[i].type;
        t->data[i] = t->types[i] == COL_STR ? calloc(n, TABLE_STR_LEN) : malloc(n * 8);
        if (!t->data[i]) return ss_fail(SS_ERR_NOMEM, "summarize: out of memory");
        if (t->types[i] == COL_F64)
            for (size_t r = 0; r < n; r++) ((double *)t->data[i])[r] = NAN;
        else if (t->types[i] == COL_I64) memset(t->data[i], 0, n * 8);
    }
    return SS_OK;
}

/* Reads table q of the selected sample. */
static int read_table(stage_ctx *c, int q, table_data *t, char *label, size_t n)
{
    const char *stg, *arr;
    int rc = ctx_input_at(c, "tables", q, &stg, &arr);
    if (rc != SS_OK) return rc;
    snprintf(label, n, "%s.%s", stg, arr);
    rc = store_table_read(ctx_stage_store(c, stg), stg, arr, t);
    if (rc != SS_OK) return ss_fail_prefix(rc, "summarize: sample %s: %s", ctx_sample(c)->id, label);
    return SS_OK;
}

static int write_csv(stage_ctx *c, const table_data *t)
{
    char *dir = path_dirname(store_path(ctx_store(c)));
    char *name = ss_asprintf("%s.csv", ctx_stage_name(c));
    char *path = dir && name ? path_join(dir, name) : NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = path ? open_memstream(&text, &len) : NULL;
    int rc = f ? SS_OK : ss_fail(SS_ERR_NOMEM, "summarize: out of memory");
    if (f) {
        int bad = table_write_csv(t, f) != 0;
        if (fclose(f) != 0 || bad) rc = ss_fail(SS_ERR_NOMEM, "summarize: out of memory");
    }
    if (rc == SS_OK) rc = fs_write_atomic(path, text, len);
    free(text);
    free(path);
    free(name);
    free(dir);
    return rc;
}

static int run(stage_ctx *c)
{
    int ns = ctx_n_samples(c), nt = ctx_input_count(c, "tables");
    schema meta = {0}, cols = {0};
    table_data out = {0};
    int64_t rows = 0;
    int rc = ctx_select_sample(c, 0);
    if (rc == SS_OK) rc = meta_fields(c, ctx_sample(c), &meta);
    /* First pass: the columns, their types and the row count. */
    for (int k = 0; k < ns && rc == SS_OK; k++) {
        if ((rc = ctx_select_sample(c, k)) != SS_OK) break;
        for (int m = 0; m < meta.n; m++) {
            json_t *v = json_object_get(ctx_sample(c)->fields, meta.cols[m].name);
            if (!v && !ctx_is_null(c, "fields")) {
                rc = ss_fail(SS_ERR_INPUT, "summarize: sample %s has no field '%s'", ctx_sample(c)->id,
                             meta.cols[m].name);
                break;
            }
            if (k == 0) meta.cols[m].type = json_col_type(v);
            else if (v && json_col_type(v) != meta.cols[m].type) rc = add_col(&meta, meta.cols[m].name, json_col_type(v));
        }
        for (int q = 0; q < nt && rc == SS_OK; q++) {
            table_data t;
            char label[256];
            if ((rc = read_table(c, q, &t, label, sizeof label)) != SS_OK) break;
            for (int i = 0; i < t.n_cols && rc == SS_OK; i++) rc = add_col(&cols, t.names[i], t.types[i]);
            rows += t.n_rows;
            table_free(&t);
        }
    }
    schema all = {0};
    if (rc == SS_OK) rc = add_col(&all, "sample", COL_STR);
    for (int m = 0; m < meta.n && rc == SS_OK; m++) {
        if (find_col(&all, meta.cols[m].name) >= 0 || !strcmp(meta.cols[m].name, "table"))
            rc = ss_fail(SS_ERR_INPUT, "summarize: the sample field '%s' names a column of the table itself",
                         meta.cols[m].name);
        else rc = add_col(&all, meta.cols[m].name, meta.cols[m].type);
    }
    if (rc == SS_OK && nt > 1) rc = add_col(&all, "table", COL_STR);
    for (int i = 0; i < cols.n && rc == SS_OK; i++) {
        if (find_col(&all, cols.cols[i].name) >= 0)
            rc = ss_fail(SS_ERR_INPUT, "summarize: a table column is named '%s', as a sample field or the sample id; "
                         "list the fields to keep with `fields`", cols.cols[i].name);
        else rc = add_col(&all, cols.cols[i].name, cols.cols[i].type);
    }
    if (rc == SS_OK) rc = alloc_table(&out, &all, rows);
    /* Second pass: the rows. */
    int64_t row = 0;
    int first_col = 1 + meta.n + (nt > 1);
    for (int k = 0; k < ns && rc == SS_OK; k++) {
        if ((rc = ctx_select_sample(c, k)) != SS_OK) break;
        const sample_info *s = ctx_sample(c);
        for (int q = 0; q < nt && rc == SS_OK; q++) {
            table_data t;
            char label[256];
            if ((rc = read_table(c, q, &t, label, sizeof label)) != SS_OK) break;
            for (int64_t r = 0; r < t.n_rows; r++, row++) {
                snprintf((char *)out.data[0] + row * TABLE_STR_LEN, TABLE_STR_LEN, "%s", s->id);
                for (int m = 0; m < meta.n; m++) put_json(&out, 1 + m, row, json_object_get(s->fields, meta.cols[m].name));
                if (nt > 1) snprintf((char *)out.data[1 + meta.n] + row * TABLE_STR_LEN, TABLE_STR_LEN, "%.63s", label);
                for (int i = 0; i < t.n_cols; i++) {
                    int o = first_col + find_col(&cols, t.names[i]);
                    if (out.types[o] == COL_STR) cell_text((char *)out.data[o] + row * TABLE_STR_LEN, &t, i, r);
                    else if (out.types[o] == COL_I64) ((int64_t *)out.data[o])[row] = ((int64_t *)t.data[i])[r];
                    else ((double *)out.data[o])[row] = cell_num(&t, i, r);
                }
            }
            table_free(&t);
        }
    }
    if (rc == SS_OK) rc = store_writer_table_data(ctx_writer(c), "summary", &out);
    if (rc == SS_OK && ctx_bool(c, "csv")) rc = write_csv(c, &out);
    if (rc == SS_OK) ctx_attr(c, "rows", json_integer(rows));
    if (out.names) table_free(&out);
    schema_free(&meta);
    schema_free(&cols);
    schema_free(&all);
    return rc;
}

static const param_spec params[] = {
    {.name = "fields", .type = P_STR_LIST, .def = "null", .flags = PARAM_NULLABLE,
     .doc = "the sample fields to add as columns (null: every field but id and input)"},
    {.name = "csv", .type = P_BOOL, .def = "true", .doc = "also write the table as OUTPUT/<stage>.csv"},
    {0},
};

static const port_spec inputs[] = {
    {.name = "tables", .kinds = KIND_TABLE, .multiple = 1, .ref_max = TABLE_STR_LEN - 1,
     .doc = "the tables to merge, from every sample (e.g. scores.summary)"},
    {0},
};

static const port_spec outputs[] = {
    {.name = "summary", .kinds = KIND_TABLE, .doc = "one row per row of every sample's tables"},
    {0},
};

const stage_type stage_summarize = {
    .name = "summarize",
    .version = 1,
    .summary = "merge every sample's tables into one cohort table with the samples' metadata (HDF5 and CSV)",
    .params = params,
    .inputs = inputs,
    .outputs = outputs,
    .flags = STAGE_COHORT_ONLY,
    .run = run,
};
