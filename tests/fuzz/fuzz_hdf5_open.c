/* Fuzz target: an untrusted HDF5 container. The input is two HDF5 files one
 * after the other: the index (c.h5) and a stage file, written as
 * c.h5.d/stages/st.h5 (the name the seeds' index links to); the second file
 * starts at the second HDF5 signature. The container is opened and read
 * through the store API: the index (layout version attribute, external links
 * in creation or name order), then per stage its attributes (strings, JSON
 * text, numbers, lists), its datasets and tables, array info (shape, chunks,
 * type, axes, voxel size, filters) and a corner of each array. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuzz_common.h"
#include "store.h"
#include "util.h"

static const char signature[8] = "\x89HDF\r\n\x1a\n";
static char *dir, *index_path, *stage_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    dir = fuzz_path("h5");
    index_path = path_join(dir, "c.h5");
    stage_path = path_join(dir, "c.h5.d/stages/st.h5");
    return 0;
}

/* Offset of the stage file: the second signature (HDF5 looks for it at 0,
 * 512, 1024, ...; a seed's files start with it), or the end. */
static size_t split_at(const uint8_t *data, size_t size)
{
    for (size_t i = 1; i + sizeof signature <= size; i++)
        if (data[i] == 0x89 && !memcmp(data + i, signature, sizeof signature)) return i;
    return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_fresh_dir(dir);
    char *stages = path_join(dir, "c.h5.d/stages");
    fuzz_fresh_dir(stages);
    free(stages);
    size_t k = split_at(data, size);
    fuzz_write(index_path, data, k);
    fuzz_write(stage_path, data + k, size - k);
    store *s = NULL;
    if (store_open(index_path, STORE_HDF5, 0, &s) == SS_OK) {
        (void)store_layout_version(s);
        fuzz_walk_store(s);
        store_close(s);
    }
    ss_errclear();
    return 0;
}
