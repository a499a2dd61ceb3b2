/* The blosc HDF5 filter (id 32001), registered in-process. cd_values follow
 * hdf5-blosc exactly, so h5py + hdf5plugin (and any reader with the standard
 * plugin) decode the chunks unchanged:
 *   [0] filter revision (2)   [1] blosc format version   [2] type size
 *   [3] uncompressed chunk bytes   [4] clevel   [5] shuffle (0 none, 1 byte, 2 bit)
 *   [6] compressor code (0 blosclz, 1 lz4, 2 lz4hc, 3 snappy, 4 zlib, 5 zstd)
 * [0..3] are filled by the filter's set_local callback at dataset creation. */
#ifndef SS_BLOSC_FILTER_H
#define SS_BLOSC_FILTER_H

#include <hdf5.h>

#define SS_H5Z_FILTER_BLOSC 32001
#define SS_BLOSC_FILTER_REVISION 2

/* Idempotent; returns SS_OK or SS_ERR_INTERNAL. */
int blosc_filter_register(void);

#endif
