#include "util.h"
#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void sbuf_grow(sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) abort(); /* string building is small; running out here is unrecoverable */
    b->s = s;
    b->cap = cap;
}

void sbuf_putn(sbuf *b, const char *s, size_t n)
{
    sbuf_grow(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sbuf_put(sbuf *b, const char *s) { sbuf_putn(b, s, strlen(s)); }

void sbuf_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        sbuf_grow(b, (size_t)n);
        vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

const char *sbuf_str(const sbuf *b) { return b->s ? b->s : ""; }

void sbuf_free(sbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

char *ss_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *ss_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    if (vasprintf(&out, fmt, ap) < 0) out = NULL;
    va_end(ap);
    return out;
}

char *path_join(const char *a, const char *b)
{
    if (b[0] == '/' || !a || !a[0]) return ss_strdup(b);
    size_t la = strlen(a);
    return ss_asprintf("%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
}

char *path_dirname(const char *p)
{
    const char *slash = strrchr(p, '/');
    if (!slash) return ss_strdup(".");
    if (slash == p) return ss_strdup("/");
    return strndup(p, (size_t)(slash - p));
}

int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int path_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Why an existing path cannot serve as a directory. */
static int not_a_dir(const char *path)
{
    struct stat st;
    char target[1024];
    ssize_t n;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && stat(path, &st) != 0 &&
        (n = readlink(path, target, sizeof target - 1)) >= 0) {
        target[n] = 0;
        return ss_fail(SS_ERR_IO, "%s: a symbolic link to '%s', which does not exist (create it or remove the link)", path,
                       target);
    }
    return ss_fail(SS_ERR_IO, "%s: exists and is not a directory", path);
}

int fs_mkdir_p(const char *path)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf) return ss_fail(SS_ERR_IO, "%s: path too long", path);
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return ss_fail(SS_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return ss_fail(SS_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    if (!path_is_dir(buf)) return not_a_dir(buf);
    return SS_OK;
}

int fs_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ss_fail(SS_ERR_IO, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    /* Some filesystems refuse fsync on directories; that is not data loss. */
    if (rc != 0 && e != EINVAL && e != EBADF)
        return ss_fail(SS_ERR_IO, "%s: fsync failed: %s", path, strerror(e));
    return SS_OK;
}

int fs_fsync_dir_of(const char *path)
{
    char *d = path_dirname(path);
    if (!d) return ss_fail(SS_ERR_NOMEM, "out of memory");
    int rc = fs_fsync_path(d);
    free(d);
    return rc;
}

int fs_write_full(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t n)
{
    char *tmp = ss_asprintf("%s.tmp.%ld", path, (long)getpid());
    if (!tmp) return ss_fail(SS_ERR_NOMEM, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        int rc = ss_fail(SS_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    if (fs_write_full(fd, data, n) != 0 || fsync(fd) != 0) {
        int rc = ss_fail(SS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int rc = ss_fail(SS_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    return fs_fsync_dir_of(path);
}

int fs_publish_dir(const char *tmp, const char *final, const char *park, char **old_at)
{
    *old_at = NULL;
    struct stat st;
    if (lstat(final, &st) != 0) {
        if (rename(tmp, final) != 0) return ss_fail(SS_ERR_IO, "%s: cannot commit: %s", final, strerror(errno));
        return SS_OK;
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
        *old_at = ss_strdup(tmp);
        return SS_OK;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP && errno != EOPNOTSUPP)
        return ss_fail(SS_ERR_IO, "%s: cannot commit: %s", final, strerror(errno));
    if (rename(final, park) != 0) return ss_fail(SS_ERR_IO, "%s: cannot move aside: %s", final, strerror(errno));
    if (rename(tmp, final) != 0) {
        int rc = ss_fail(SS_ERR_IO, "%s: cannot commit: %s", final, strerror(errno));
        rename(park, final); /* should this fail too, the caller's recovery restores it */
        return rc;
    }
    *old_at = ss_strdup(park);
    return SS_OK;
}

int fs_read_text(const char *path, size_t max, char **data, size_t *n)
{
    *data = NULL;
    if (n) *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ss_fail(SS_ERR_CONFIG, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ss_fail(SS_ERR_CONFIG, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return ss_fail(SS_ERR_CONFIG, "%s: %lld bytes, more than the %zu MiB a config or manifest may have", path,
                       (long long)st.st_size, max >> 20);
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return ss_fail(SS_ERR_NOMEM, "%s: out of memory for %zu bytes", path, cap);
    }
    /* Read at most max + 1 bytes, whatever the file does meanwhile. */
    for (;;) {
        if (len == cap) {
            if (cap > max) break;
            size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, nc + 1);
            if (!nb) {
                free(buf);
                close(fd);
                return ss_fail(SS_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb, cap = nc;
        }
        ssize_t k = read(fd, buf + len, cap - len);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return ss_fail(SS_ERR_CONFIG, "%s: read error: %s", path, strerror(e));
        }
        if (k == 0) break;
        len += (size_t)k;
    }
    close(fd);
    if (len > max) {
        free(buf);
        return ss_fail(SS_ERR_CONFIG, "%s: more than the %zu MiB a config or manifest may have", path, max >> 20);
    }
    buf[len] = 0;
    *data = buf;
    if (n) *n = len;
    return SS_OK;
}

int fs_read_all(const char *path, char **data, size_t *n)
{
    *data = NULL;
    if (n) *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ss_fail(errno == ENOENT ? SS_ERR_INPUT : SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    sbuf b = {0};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) sbuf_putn(&b, chunk, r);
    int err = ferror(f);
    fclose(f);
    if (err) {
        sbuf_free(&b);
        return ss_fail(SS_ERR_IO, "%s: read error", path);
    }
    if (!b.s) sbuf_putn(&b, "", 0);
    *data = b.s;
    if (n) *n = b.len;
    return SS_OK;
}

int fs_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? SS_OK : ss_fail(SS_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return ss_fail(SS_ERR_IO, "%s: cannot list: %s", path, strerror(errno));
        struct dirent *e;
        int rc = SS_OK;
        while ((e = readdir(d)) && rc == SS_OK) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *child = path_join(path, e->d_name);
            rc = child ? fs_rm_rf(child) : ss_fail(SS_ERR_NOMEM, "out of memory");
            free(child);
        }
        closedir(d);
        if (rc != SS_OK) return rc;
        if (rmdir(path) != 0) return ss_fail(SS_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        return SS_OK;
    }
    if (unlink(path) != 0) return ss_fail(SS_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return SS_OK;
}

int fs_copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return ss_fail(SS_ERR_INPUT, "%s: cannot open: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (out < 0) {
        close(in);
        return ss_fail(SS_ERR_IO, "%s: cannot create: %s", to, strerror(errno));
    }
    char buf[1 << 16];
    ssize_t r;
    int rc = SS_OK;
    while ((r = read(in, buf, sizeof buf)) > 0)
        if (fs_write_full(out, buf, (size_t)r) != 0) {
            rc = ss_fail(SS_ERR_IO, "%s: write failed: %s", to, strerror(errno));
            break;
        }
    if (r < 0 && rc == SS_OK) rc = ss_fail(SS_ERR_IO, "%s: read failed: %s", from, strerror(errno));
    if (rc == SS_OK && fsync(out) != 0) rc = ss_fail(SS_ERR_IO, "%s: fsync failed: %s", to, strerror(errno));
    close(in);
    close(out);
    return rc;
}

double ss_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ss_utc_iso8601(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void ss_fmt_duration(double s, char out[32])
{
    if (s < 0 || s != s) s = 0;
    if (s < 60) snprintf(out, 32, "%.1fs", s);
    else if (s < 3600) snprintf(out, 32, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(out, 32, "%dh%02dm%02ds", (int)(s / 3600), (int)(s / 60) % 60, (int)s % 60);
}

const char *ss_hostname(void)
{
    static char h[256];
    if (!h[0] && gethostname(h, sizeof h - 1) != 0) strcpy(h, "unknown");
    return h;
}

char *path_normalize(const char *p)
{
    /* Lexical: drops "." and folds "dir/.." (no symlink resolution). */
    char *out = malloc(strlen(p) + 2);
    if (!out) return NULL;
    int abs = p[0] == '/';
    size_t n = 0;
    const char *s = p;
    while (*s) {
        while (*s == '/') s++;
        const char *e = s;
        while (*e && *e != '/') e++;
        size_t len = (size_t)(e - s);
        if (len == 0) break;
        if (len == 1 && s[0] == '.') {
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            /* Fold the previous component unless it is itself "..". */
            size_t k = n;
            while (k > 0 && out[k - 1] != '/') k--;
            int prev_dotdot = n - k == 2 && out[k] == '.' && out[k + 1] == '.';
            if (n > 0 && !prev_dotdot) n = k > 0 ? k - 1 : 0;
            else if (!abs) {
                if (n) out[n++] = '/';
                out[n++] = '.', out[n++] = '.';
            }
        } else {
            if (n || abs) out[n++] = '/';
            memcpy(out + n, s, len);
            n += len;
        }
        s = e;
    }
    if (n == 0) {
        if (abs) out[n++] = '/';
        else out[n++] = '.';
    }
    out[n] = 0;
    return out;
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

const char *ss_closest(const char *got, const char *const *options)
{
    const char *best = NULL;
    int bd = 3;
    for (const char *const *o = options; *o; o++) {
        int dd = edit_distance(got, *o);
        if (dd < bd) bd = dd, best = *o;
    }
    return best;
}
