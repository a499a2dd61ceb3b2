/* What the fuzz targets of tests/fuzz share: a scratch folder of the
 * process's own, files made from the input, and a walk over a container
 * through the store API.
 *
 * A target is built two ways (tests/fuzz/meson.build): with libFuzzer
 * (-Dfuzz=true, clang) and with driver.c, a main that runs it over the files
 * of its seed corpus as an ordinary test. Either way it must never write
 * outside fuzz_dir() nor read files the input did not make, so the inputs
 * name no paths of their own. */
#ifndef SS_FUZZ_COMMON_H
#define SS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The libFuzzer entry points. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A folder made for this process under $TMPDIR (or /tmp), removed at exit.
 * Aborts when it cannot be made: a target without it can do nothing. */
const char *fuzz_dir(void);
/* fuzz_dir()/name, malloc'd. */
char *fuzz_path(const char *name);
/* Writes n bytes to path (created or truncated); aborts on failure, which
 * in the scratch folder is a broken machine, not a finding. */
void fuzz_write(const char *path, const void *data, size_t n);
/* Removes path and everything below it, then makes it an empty folder. */
void fuzz_fresh_dir(const char *path);
/* A NUL-terminated copy of the input. */
char *fuzz_strndup(const uint8_t *data, size_t n);

/* Unpacks an input that holds several files, as the Zarr target reads them:
 *
 *   --- .zgroup
 *   {"zarr_format": 2}
 *   --- raw/repeats/0/.zarray
 *   {...}
 *
 * Each line "--- NAME" starts a file NAME (relative to dir) whose content is
 * everything up to the newline before the next such line or the end.
 * Folders are made as needed. Names are made of [A-Za-z0-9._-] parts
 * separated by '/', at most 16 deep and 255 long, no part "." or ".."; a
 * header with any other name drops its file (and bytes before the first
 * header are dropped too), so an input can never reach outside dir. */
void fuzz_unpack(const char *dir, const uint8_t *data, size_t n);

/* Everything a reader does with an untrusted container: list the stages,
 * read each one's attributes, list its arrays and tables, read every table,
 * and read every array's info and a corner of at most FUZZ_READ_ELEMS
 * elements (and, for R x ... arrays with R = 1, the same without the first
 * axis). Errors are the expected outcome and are cleared. */
#define FUZZ_READ_ELEMS ((int64_t)1 << 16)
void fuzz_walk_store(store *s);

#endif
