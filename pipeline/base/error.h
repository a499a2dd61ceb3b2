/* Error codes and the thread-local message that goes with them.
 *
 * Every function that can fail returns an int: SS_OK (0) or a negative code.
 * The code, negated, is the process exit status (DESIGN.md, invariant 4), so the
 * values are part of the interface and documented in README.md. The message is
 * one line naming the file, the place and the problem; it is set by ss_fail()
 * at the point that knows most and read once by the caller that reports it. */
#ifndef SS_ERROR_H
#define SS_ERROR_H

#include <stdarg.h>
#include <stddef.h>

enum {
    SS_OK = 0,
    SS_ERR_FAILED = -1,       /* generic: a stage reported failure */
    SS_ERR_CONFIG = -2,       /* config file, manifest, command-line values */
    SS_ERR_INPUT = -3,        /* input data: unreadable, corrupt, wrong shape, NaN */
    SS_ERR_IO = -4,           /* output: unwritable, disk full, lock held */
    SS_ERR_USAGE = -64,       /* command line syntax (EX_USAGE) */
    SS_ERR_INTERNAL = -70,    /* a bug or an impossible state (EX_SOFTWARE) */
    SS_ERR_NOMEM = -71,       /* out of memory (EX_OSERR) */
    SS_ERR_INTERRUPTED = -75, /* SIGTERM/SIGINT: checkpoint saved, rerun resumes (EX_TEMPFAIL) */
};

/* Sets the thread's message (printf-style) and returns code, so that
 * `return ss_fail(SS_ERR_INPUT, "%s: ...", path);` reads naturally. */
int ss_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ss_failv(int code, const char *fmt, va_list ap);
/* Prefixes the current message with "prefix: " (adds context on the way up). */
int ss_fail_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* SS_ERR_NOMEM with "out of memory for WHAT (SIZE)": what was being allocated
 * (and for which file, stage or array), and how much; bytes 0 leaves the size
 * out. */
int ss_nomem(size_t bytes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message set on this thread; never NULL. */
const char *ss_errmsg(void);
void ss_errclear(void);
/* A short name for a code: "config", "input", "io", ... */
const char *ss_errname(int code);
/* Exit status for a code (0 for SS_OK). */
int ss_exit_status(int code);

/* Fault injection for the crash tests: when the environment variable
 * SIRENSTACK_CRASHPOINT is "NAME" or "NAME:K", the K-th (default first) time
 * the program passes ss_crashpoint("NAME") it kills itself with SIGKILL.
 * Costs one string compare when unset. */
void ss_crashpoint(const char *name);

#endif
