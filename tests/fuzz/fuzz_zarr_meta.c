/* Fuzz target: an untrusted Zarr container. The input is an archive of
 * files (fuzz_common.h: "--- NAME" lines) unpacked into a fresh c.zarr
 * folder, which is then opened and read through the store API as `inspect`,
 * `export` and a resuming run do: the root .zgroup/.zattrs (layout version),
 * the commit order (.sirenstack/order.json), stage .zattrs, image groups
 * (multiscales), every .zarray and array .zattrs, chunks (blosc, zlib, gzip,
 * none), tables; then, as a run that writes to it, the lock and the recovery
 * that reconciles OME/.zattrs (series) with the stages. */
#include <stdlib.h>

#include "error.h"
#include "fuzz_common.h"
#include "store.h"

static char *cont;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    cont = fuzz_path("c.zarr");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_fresh_dir(cont);
    fuzz_unpack(cont, data, size);
    store *s = NULL;
    if (store_open(cont, STORE_ZARR, 0, &s) == SS_OK) {
        (void)store_layout_version(s);
        fuzz_walk_store(s);
        if (store_lock(s) == SS_OK && store_recover(s) == SS_OK) fuzz_walk_store(s);
        store_close(s);
    }
    ss_errclear();
    return 0;
}
