/* Checkpoints for long stages: named binary blobs (weights, optimiser moments,
 * RNG state, ...) saved together with a step counter, so that a killed or
 * preempted stage resumes where it was.
 *
 * File format (one file per stage and fingerprint, little-endian):
 *   header  : magic "SSCKPT\0\0" | u32 version (1) | u32 n_entries |
 *             i64 step | 32 bytes fingerprint (hex)
 *   entries : u32 name_len | name | u64 n_bytes | bytes
 *   trailer : u64 XXH3-64 of everything before it
 * Written to a temporary file, fsynced, renamed: a checkpoint is either the
 * previous one or the new one, never half of each. A checkpoint whose
 * fingerprint differs from the stage's is ignored (the config changed).
 * The runner deletes the checkpoint when the stage commits. */
#ifndef SS_CHECKPOINT_H
#define SS_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CHECKPOINT_VERSION 1

typedef struct checkpoint checkpoint;

typedef struct {
    const char *name;
    void *data;     /* save: read from here; load: filled (bytes must match) */
    size_t bytes;
} ckpt_entry;

/* path: the checkpoint file. fingerprint: the stage's, 32 hex digits.
 * Saves are due every every_steps steps (0: never by steps) or every_s
 * seconds (0: never by time), whichever comes first. */
int checkpoint_new(const char *path, const char *fingerprint, int64_t every_steps,
                   double every_s, checkpoint **out);
void checkpoint_free(checkpoint *c);
/* 1 when a save is due at this step. */
int checkpoint_due(checkpoint *c, int64_t step);
int checkpoint_save(checkpoint *c, int64_t step, const ckpt_entry *e, int n);
/* Returns 1 and fills *step and every entry when a matching checkpoint
 * exists, 0 when there is none (or it belongs to another fingerprint),
 * negative when the file is corrupt or its entries do not match. */
int checkpoint_load(checkpoint *c, int64_t *step, ckpt_entry *e, int n);
int checkpoint_remove(checkpoint *c);
const char *checkpoint_path(const checkpoint *c);

#endif
