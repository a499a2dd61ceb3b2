#include "canonjson.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

