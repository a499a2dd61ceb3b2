/* Small leaf helpers shared by the engine and the store: strings, files, time.
 * Nothing here knows about stages, configs or containers. */
#ifndef SS_UTIL_H
#define SS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Growable string. Zero-initialise; sbuf_free releases. s is always
 * NUL-terminated once anything was appended (use sbuf_str for "" when empty). */
typedef struct {
    char *s;
    size_t len, cap;
} sbuf;
void sbuf_put(sbuf *b, const char *s);
void sbuf_putn(sbuf *b, const char *s, size_t n);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *sbuf_str(const sbuf *b);
void sbuf_free(sbuf *b);

/* Allocation that aborts on failure is never used: these return NULL and the
 * caller reports SS_ERR_NOMEM. */
char *ss_strdup(const char *s);
char *ss_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Paths. path_join returns a new string "a/b" (b absolute: copy of b). */
char *path_join(const char *a, const char *b);
/* Directory part of a path (new string, "." when none). */
char *path_dirname(const char *p);
/* Lexically normalised copy: a/./b/../c -> a/c. */
char *path_normalize(const char *p);
int path_exists(const char *p);
int path_is_dir(const char *p);

/* Files. All return SS_OK or a negative SS_ERR_* with the message set. */
int fs_mkdir_p(const char *path);
int fs_fsync_path(const char *path);  /* a file or a directory */
int fs_fsync_dir_of(const char *path); /* the directory holding path */
/* write(2) until all n bytes are written (EINTR retried); 0 or -1 with errno. */
int fs_write_full(int fd, const void *data, size_t n);
/* Writes data to path atomically: path.tmp.PID, fsync, rename, fsync dir. */
int fs_write_atomic(const char *path, const void *data, size_t n);
/* Reads a whole file (NUL-terminated; *n excludes the NUL). Caller frees. */
int fs_read_all(const char *path, char **data, size_t *n);
/* The same for a file a user names (a config, a manifest): it must be a
 * regular file of at most max bytes, so a device or a FIFO named by mistake
 * cannot make the program read forever. Errors (SS_ERR_CONFIG) say which. */
int fs_read_text(const char *path, size_t max, char **data, size_t *n);
/* The size limit of configs and manifests. */
#define SS_TEXT_MAX ((size_t)256 << 20)
int fs_rm_rf(const char *path);
/* Publishes the finished folder tmp at final: a rename when final does not
 * exist; else one renameat2(RENAME_EXCHANGE), the old folder ending at tmp;
 * where the filesystem cannot exchange (some network and cluster
 * filesystems), final is first renamed to park, then tmp to final (put back
 * if that fails). *old_at (malloc'd, NULL when there was none): where the old
 * folder now is, for the caller to remove. */
int fs_publish_dir(const char *tmp, const char *final, const char *park, char **old_at);
/* Copies a file byte for byte (then fsync). */
int fs_copy_file(const char *from, const char *to);

/* Time. */
double ss_now(void);                    /* monotonic seconds */
void ss_utc_iso8601(char out[32]);      /* current UTC time, 2026-01-01T12:00:00Z */
void ss_fmt_duration(double s, char out[32]); /* 1h02m03s / 4m05s / 6.1s */

/* The option closest to got by edit distance, for a "did you mean"; NULL when
 * none is within two edits. options is NULL-terminated. */
const char *ss_closest(const char *got, const char *const *options);

/* Host name (static buffer). */
const char *ss_hostname(void);

#endif
