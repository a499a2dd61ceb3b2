/* Fingerprints (DESIGN.md invariant 2): XXH3-128 of a canonical JSON text of
 * everything that determines a stage's outputs. Equal fingerprint: the stage
 * is reused; different: it reruns, and so does everything downstream. */
#ifndef SS_FINGERPRINT_H
#define SS_FINGERPRINT_H

#include <jansson.h>
#include <stddef.h>

#include "canonjson.h"
#include "stage.h"

#define FP_HEX 33 /* 32 hex digits + NUL */

void fp_hash_bytes(const void *data, size_t n, char out[FP_HEX]);

/* Content hash of a file. cache: a JSON object path -> {size, mtime_ns, ino,
 * hash} kept by the caller; an entry whose size, mtime and inode match is
 * trusted, otherwise the file is read and the entry updated. */
int fp_hash_file(const char *path, json_t *cache, char out[FP_HEX]);

/* The basis of a stage's fingerprint (a new JSON object):
 *   {"type", "version", "params", "inputs": {port: fp}, "files": {param: hash},
 *    "seed" (stochastic types), "sample": {voxel_size, repeats} (source types)}
 * params are the per-sample parameters; input-file parameters are replaced
 * by the content hash, so moving a file does not rerun anything. */
json_t *fp_basis(const stage_type *t, const json_t *params, const json_t *input_fps, const json_t *file_hashes,
                 const sample_info *s, uint64_t seed);
void fp_of_basis(const json_t *basis, char out[FP_HEX]);

#endif
