/* Canonical JSON text: keys sorted, no whitespace, integers as integers,
 * reals in the shortest form that reads back to the same double (with a
 * decimal point: 2.0, 99.9, 1e-20). The same value always gives the same
 * text, so it can be hashed (fingerprints) and compared (stale reasons). */
#ifndef SS_CANONJSON_H
#define SS_CANONJSON_H

#include <jansson.h>

/* Caller frees. */
char *canonical_json(const json_t *v);

#endif
