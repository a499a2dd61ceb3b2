#include "error.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Thread_local char msg[2048];

int ss_failv(int code, const char *fmt, va_list ap)
{
    vsnprintf(msg, sizeof msg, fmt, ap);
    return code;
}

int ss_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ss_failv(code, fmt, ap);
    va_end(ap);
    return code;
}

int ss_fail_prefix(int code, const char *fmt, ...)
{
    char prefix[1024], old[sizeof msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, msg, sizeof old);
    /* the result is cut at sizeof msg, the old message's end first */
    snprintf(msg, sizeof msg, "%.1000s: %.1040s", prefix, old);
    return code;
}

int ss_nomem(size_t bytes, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!bytes) return ss_fail(SS_ERR_NOMEM, "out of memory for %s", what);
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) v /= 1024, u++;
    if (u == 0) return ss_fail(SS_ERR_NOMEM, "out of memory for %s (%zu bytes)", what, bytes);
    return ss_fail(SS_ERR_NOMEM, "out of memory for %s (%.1f %s)", what, v, unit[u]);
}

const char *ss_errmsg(void) { return msg[0] ? msg : "unknown error"; }
void ss_errclear(void) { msg[0] = 0; }

const char *ss_errname(int code)
{
    switch (code) {
    case SS_OK: return "ok";
    case SS_ERR_CONFIG: return "config";
    case SS_ERR_INPUT: return "input";
    case SS_ERR_IO: return "io";
    case SS_ERR_USAGE: return "usage";
    case SS_ERR_INTERNAL: return "internal";
    case SS_ERR_NOMEM: return "memory";
    case SS_ERR_INTERRUPTED: return "interrupted";
    default: return "failed";
    }
}

int ss_exit_status(int code)
{
    if (code >= 0) return 0;
    if (code < -125) return 1;
    return -code;
}

void ss_crashpoint(const char *name)
{
    static int init;
    static char want[128];
    static long at = 1, seen;
    if (!init) {
        const char *e = getenv("SIRENSTACK_CRASHPOINT");
        init = 1;
        if (e && *e) {
            snprintf(want, sizeof want, "%s", e);
            char *colon = strchr(want, ':');
            if (colon) {
                *colon = 0;
                at = strtol(colon + 1, NULL, 10);
                if (at < 1) at = 1;
            }
        }
    }
    if (!want[0] || strcmp(want, name) != 0) return;
    if (++seen == at) {
        fflush(NULL);
        kill(getpid(), SIGKILL);
    }
}
