/* Collecting config problems: each one line `file:line:col: key.path:
 * message`, at most 50 kept; the first also becomes the error message
 * (pipeline/base/error.h). Used by the config loader and the sample loaders. */
#ifndef SS_CFG_ERRORS_H
#define SS_CFG_ERRORS_H

#include "util.h"

#define CFG_MAX_ERRORS 50 /* kept; the rest are counted */

typedef struct {
    const char *file;
    sbuf *out;
    int count;
} cfg_errors;
void cfg_error(cfg_errors *e, int line, int col, const char *keypath, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
