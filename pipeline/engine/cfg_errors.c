#include "cfg_errors.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

void cfg_error(cfg_errors *e, int line, int col, const char *keypath, const char *fmt, ...)
{
    e->count++;
    if (e->count > CFG_MAX_ERRORS) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line_buf[1600];
    if (line > 0)
        snprintf(line_buf, sizeof line_buf, "%s:%d:%d: %s%s%s", e->file, line, col, keypath ? keypath : "",
                 keypath && keypath[0] ? ": " : "", msg);
    else
        snprintf(line_buf, sizeof line_buf, "%s: %s%s%s", e->file, keypath ? keypath : "",
                 keypath && keypath[0] ? ": " : "", msg);
    if (e->count == 1) ss_fail(SS_ERR_CONFIG, "%s", line_buf);
    sbuf_put(e->out, line_buf);
    sbuf_put(e->out, "\n");
}

