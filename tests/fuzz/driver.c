/* Runs a fuzz target over files without libFuzzer, as libFuzzer projects do
 * to reproduce a finding with any compiler: `fuzz_config FILE|FOLDER...`
 * passes every regular file (a folder's in name order) to
 * LLVMFuzzerTestOneInput once. The normal build runs each target over its
 * seed corpus this way (meson suite fuzz-corpus), so every input that once
 * crashed stays a regression test.
 *
 * Output is TAP, one point per file. A file that crashes the target ends the
 * process (the line "# input FILE" before it names the file), which meson
 * counts as a failure; a target that returns non-zero fails the point. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    if (f) {
        for (;;) {
            if (n == cap) {
                cap = cap ? 2 * cap : 65536;
                uint8_t *b = realloc(buf, cap);
                if (!b) {
                    fprintf(stderr, "%s: out of memory\n", path);
                    exit(71);
                }
                buf = b;
            }
            size_t k = fread(buf + n, 1, cap - n, f);
            n += k;
            if (k == 0) break;
        }
    }
    if (!f || ferror(f)) {
        CHECK(0, "%s: cannot read: %s", path, strerror(errno));
    } else {
        printf("# input %s\n", path);
        fflush(stdout);
        /* libFuzzer hands over a buffer of exactly size bytes; so does this,
         * so that a read past the end is one under AddressSanitizer too. */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact) exit(71);
        memcpy(exact, buf, n);
        int rc = LLVMFuzzerTestOneInput(exact, n);
        free(exact);
        CHECK(rc == 0, "%s (%zu bytes)", path, n);
    }
    fflush(stdout);
    if (f) fclose(f);
    free(buf);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        CHECK(0, "%s: cannot list: %s", dir, strerror(errno));
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        if (!names || !(names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2))) exit(71);
        sprintf(names[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) run_file(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|FOLDER...\n", argv[0]);
        return 64;
    }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) run_dir(argv[i]);
        else run_file(argv[i]);
    }
    return tap_done();
}
