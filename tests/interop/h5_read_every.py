#!/usr/bin/python3
"""Reads every dataset of a sirenstack HDF5 container with h5py, the way a
user's own script does, and saves each one as OUTDIR/<stage>.<name>.npy
(tables as numpy structured arrays).

usage: h5_read_every.py CONTAINER OUTDIR [--hdf5plugin]

--hdf5plugin imports hdf5plugin (which registers the blosc filter 32001);
without it only h5py is imported, so the HDF5 library finds filters where its
environment says (HDF5_PLUGIN_PATH, else its built-in plugin folder). Nothing
of sirenstack is imported. Prints one JSON object on stdout:
  {"hdf5plugin_loaded": bool, "plugin_path": value of HDF5_PLUGIN_PATH or null,
   "stages": {stage: its attribute "compression"},
   "datasets": {"stage/name": {"filters": [[id, [cd_values]], ...],
                               "chunks": n, "filtered_chunks": n,
                               "file": the .npy written, or "error": text}}}
compression_read.py runs it in a subprocess.
"""
import json
import os
import sys

import h5py
import numpy as np

if "--hdf5plugin" in sys.argv[3:]:
    import hdf5plugin  # noqa: F401 - registers the blosc filter with h5py


def describe(d):
    plist = d.id.get_create_plist()
    filters = []
    for k in range(plist.get_nfilters()):
        fid, _flags, cd, _name = plist.get_filter(k)
        filters.append([int(fid), [int(v) for v in cd]])
    n = d.id.get_num_chunks() if d.chunks else 0
    # filter_mask 0: every filter of the pipeline was applied to the chunk
    filtered = sum(1 for i in range(n) if d.id.get_chunk_info(i).filter_mask == 0)
    return {"filters": filters, "chunks": n, "filtered_chunks": filtered}


def main():
    container, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    out = {"hdf5plugin_loaded": "hdf5plugin" in sys.modules, "plugin_path": os.environ.get("HDF5_PLUGIN_PATH"),
           "stages": {}, "datasets": {}}
    with h5py.File(container, "r", locking=False) as f:
        for stage in f:
            g = f[stage]
            comp = g.attrs.get("compression")
            out["stages"][stage] = comp.decode() if isinstance(comp, bytes) else comp
            for name, d in g.items():
                if not isinstance(d, h5py.Dataset):
                    continue
                info = describe(d)
                try:
                    values = d[()]
                except Exception as e:  # noqa: BLE001 - the error text is the result
                    info["error"] = f"{type(e).__name__}: {e}"
                else:
                    path = os.path.join(outdir, f"{stage}.{name}.npy")
                    if values.dtype.names:
                        # h5py tags string fields with metadata that .npy files cannot carry
                        plain = [(n, values.dtype.fields[n][0].str) for n in values.dtype.names]
                        values = values.astype(np.dtype(plain))
                    np.save(path, values)
                    info["file"] = path
                out["datasets"][f"{stage}/{name}"] = info
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
