#include "blosc_filter.h"
#include "error.h"

#include <blosc.h>
#include <string.h>

static herr_t blosc_set_local(hid_t dcpl, hid_t type, hid_t space)
{
    unsigned flags;
    size_t nelements = 8;
    unsigned values[8] = {0};
    if (H5Pget_filter_by_id2(dcpl, SS_H5Z_FILTER_BLOSC, &flags, &nelements, values, 0, NULL, NULL) < 0) return -1;
    if (nelements < 4) nelements = 4;
    values[0] = SS_BLOSC_FILTER_REVISION;
    values[1] = BLOSC_VERSION_FORMAT;

    hsize_t chunk[32];
    int rank = H5Pget_chunk(dcpl, 32, chunk);
    if (rank < 0) return -1;
    size_t typesize = H5Tget_size(type);
    if (typesize == 0) return -1;
    /* Blosc shuffles elements of at most BLOSC_MAX_TYPESIZE bytes; larger
     * records (compound tables) are treated as bytes, as hdf5-blosc does. */
    if (typesize > BLOSC_MAX_TYPESIZE) typesize = 1;
    size_t bytes = H5Tget_size(type);
    for (int i = 0; i < rank; i++) bytes *= chunk[i];
    values[2] = (unsigned)typesize;
    values[3] = (unsigned)bytes;
    (void)space;
    return H5Pmodify_filter(dcpl, SS_H5Z_FILTER_BLOSC, flags, nelements, values);
}

static size_t blosc_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                           size_t *buf_size, void **buf)
{
    if (cd_nelmts < 4) return 0;
    size_t typesize = cd_values[2];
    if (flags & H5Z_FLAG_REVERSE) {
        size_t outbytes = 0, cbytes = 0, blocksize = 0;
        /* Validate before trusting the header: a corrupt chunk must give an
         * error, not a read past the buffer. */
        if (blosc_cbuffer_validate(*buf, nbytes, &outbytes) != 0) return 0;
        blosc_cbuffer_sizes(*buf, &outbytes, &cbytes, &blocksize);
        if (cbytes > nbytes || outbytes == 0) return 0;
        /* A chunk decodes to exactly the chunk's bytes (cd_values[3], set at
         * creation): HDF5 1.10 copies that many out of what a filter returns. */
        if (cd_values[3] && outbytes != cd_values[3]) return 0;
        void *out = H5allocate_memory(outbytes, 0);
        if (!out) return 0;
        int n = blosc_decompress_ctx(*buf, out, outbytes, 1);
        if (n <= 0 || (size_t)n != outbytes) {
            H5free_memory(out);
            return 0;
        }
        H5free_memory(*buf);
        *buf = out;
        *buf_size = outbytes;
        return outbytes;
    }
    int clevel = cd_nelmts >= 5 ? (int)cd_values[4] : 5;
    int shuffle = cd_nelmts >= 6 ? (int)cd_values[5] : 1;
    int code = cd_nelmts >= 7 ? (int)cd_values[6] : 0;
    const char *cname = NULL;
    if (blosc_compcode_to_compname(code, &cname) < 0 || !cname) return 0;
    if (typesize == 0) typesize = 1;
    void *out = H5allocate_memory(nbytes, 0);
    if (!out) return 0;
    /* When the data does not compress into nbytes the filter fails, and
     * HDF5 stores the chunk unfiltered (the filter is optional). */
    int n = blosc_compress_ctx(clevel, shuffle, typesize, nbytes, *buf, out, nbytes, cname, 0, 1);
    if (n <= 0) {
        H5free_memory(out);
        return 0;
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = nbytes;
    return (size_t)n;
}

int blosc_filter_register(void)
{
    static int done;
    if (done) return SS_OK;
    static const H5Z_class2_t cls = {
        .version = H5Z_CLASS_T_VERS,
        .id = SS_H5Z_FILTER_BLOSC,
        .encoder_present = 1,
        .decoder_present = 1,
        .name = "blosc",
        .can_apply = NULL,
        .set_local = blosc_set_local,
        .filter = blosc_filter,
    };
    if (H5Zregister(&cls) < 0) return ss_fail(SS_ERR_INTERNAL, "cannot register the blosc HDF5 filter");
    done = 1;
    return SS_OK;
}
