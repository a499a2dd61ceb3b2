/* Sets of files named by a pattern, as acquisition software writes them:
 * a folder of single-plane TIFFs (the glob `*.tif` in a folder) or vendor numbering such as
 * ThorImage's `ChanA_0001_0001_{z:04d}_{r:04d}.tif`.
 *
 * The folder part of a pattern is taken literally; the file-name part may hold
 * the wildcards * and ? and the numeric fields {z}, {r} ({t} is a synonym of
 * {r}) and {c}, with an optional width as in Python: {z:04d}, {z:4}. A field of
 * width w matches exactly w digits, or more when the first is not 0 (what
 * Python's formatting produces); without a width it matches any digits.
 * Names starting with '.' match only a pattern starting with '.'.
 *
 * Ownership: fpat_expand fills a caller-owned fpat_set that fpat_free
 * releases. */
#ifndef SS_FILEPATTERN_H
#define SS_FILEPATTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *path;     /* folder + matched name */
    int64_t z, r, c; /* field values; -1 when the pattern has no such field */
} fpat_file;

typedef struct {
    fpat_file *files;
    size_t n;
    int has_z, has_r, has_c;
} fpat_set;

/* 1 when pattern holds a wildcard or a field in its file-name part. */
int fpat_is_pattern(const char *pattern);
/* Lists the matching regular files in natural order (ch2 before ch10).
 * Matching nothing is not an error here (n = 0). Errors: a malformed pattern
 * (SS_ERR_CONFIG) or an unreadable folder (SS_ERR_INPUT). */
int fpat_expand(const char *pattern, fpat_set *out);
void fpat_free(fpat_set *s);

/* Natural order: runs of digits compare by value (then fewer leading zeros
 * first), everything else byte by byte. */
int natural_cmp(const char *a, const char *b);

#endif
