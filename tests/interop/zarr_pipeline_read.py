#!/usr/bin/python3
"""The Zarr containers of a real pipeline run, as zarr-python reads them, in TAP.

usage: zarr_pipeline_read.py [WORKDIR]

Runs the pipeline of h5py_read.py twice, once with `store: hdf5` and once with
`store: zarr`, then opens <out>/<sample>.zarr with zarr.open(mode='r') and
checks that every array reads and equals the HDF5 run's array exactly (dtype,
shape, chunks, values), that each stage group's .zattrs carries the same stage
attributes as the HDF5 stage group (timings aside), that every image array is
an OME-NGFF 0.4 image group <stage>/<array> (one multiscales entry, dataset
path 0, axes and scale matching the voxel size) listed in OME/.zattrs
"series", and that .zarray names the blosc compressor.
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h5py_read as H  # noqa: E402 - the pipeline, config and reference helpers

BLOSC_JSON = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}
# Attributes only one backend has: the HDF5 stage file's commit marker, the
# Zarr stage group's OME-NGFF metadata.
BACKEND_ONLY = {"sirenstack_committed", "multiscales"}
# the hash of the config text, which names the store: the two runs' configs differ there
BACKEND_ONLY |= {"config"}


def read_hdf5(path):
    import h5py
    vals, attrs = {}, {}
    with h5py.File(path, "r") as f:
        attrs["__order__"] = H.commit_order_hdf5(f)
        for st in H.STAGES:
            attrs[st] = H.attrs_json(f[st].attrs)
            for name in f[st]:
                d = f[st][name]
                vals[(st, name)] = (d[...], d.chunks)
    return vals, attrs


def load_json(path):
    with open(path) as f:
        return json.load(f)


def check_root(tap, root, path, h5order):
    import zarr
    tap.check(isinstance(root, zarr.hierarchy.Group), "zarr.open(<sample>.zarr) gives a group", type(root))
    tap.check(dict(root.attrs).get("sirenstack") == {"layout_version": 2, "format": "zarr"},
              "root .zattrs names the sirenstack layout", dict(root.attrs))
    tap.check(dict(root.attrs).get("bioformats2raw.layout") == 3, "root .zattrs: bioformats2raw.layout 3",
              dict(root.attrs))
    tap.check(sorted(root.group_keys()) == sorted(list(H.STAGES) + ["OME"]),
              "stage groups and the OME group visible to zarr", sorted(root.group_keys()))
    want = [f"{st}/{name}" for st in h5order or [] for name in sorted(H.STAGES[st][1])]
    series = dict(root["OME"].attrs).get("series") if "OME" in root else None
    tap.check(series == want, "OME/.zattrs series: every image group, stages in commit order", (series, want))
    left = os.listdir(os.path.join(path, ".sirenstack", "tmp")) if os.path.isdir(
        os.path.join(path, ".sirenstack", "tmp")) else []
    tap.check(not left, "no temporary stage trees left after the run", left)
    order = load_json(os.path.join(path, ".sirenstack", "order.json"))
    tap.check(order == h5order and H.is_topological(order),
              ".sirenstack/order.json: commit order, the same as the HDF5 index's", (order, h5order))


def check_arrays(tap, root, path, h5vals, src_data):
    import numpy as np
    from numcodecs import Blosc
    for st, (stype, arrays, ports) in H.STAGES.items():
        g = root[st]
        tap.check(sorted(g.group_keys()) == sorted(arrays) and not list(g.array_keys()),
                  f"{st}: holds image groups {sorted(arrays)}", (sorted(g.group_keys()), sorted(g.array_keys())))
        for name, axes in arrays.items():
            where = f"{st}/{name}/0"
            a = g[name]["0"]
            v = a[...]
            want, h5chunks = h5vals[(st, name)]
            tap.check(v.dtype == want.dtype and v.shape == want.shape and np.array_equal(v, want),
                      f"{where}: reads fully and equals the HDF5 run exactly (dtype, shape, values)",
                      f"zarr {v.dtype} {v.shape}, hdf5 {want.dtype} {want.shape}, "
                      f"differing {int(np.sum(v != want)) if v.shape == want.shape else 'n/a'}")
            tap.check(a.chunks == h5chunks, f"{where}: chunks equal the HDF5 run's", (a.chunks, h5chunks))
            za = load_json(os.path.join(path, st, name, "0", ".zarray"))
            tap.check(za.get("compressor") == BLOSC_JSON, f"{where}: .zarray compressor is blosc lz4 5 shuffle",
                      za.get("compressor"))
            tap.check(a.compressor == Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE, blocksize=0),
                      f"{where}: zarr sees the blosc compressor", a.compressor)
            tap.check(za.get("zarr_format") == 2 and za.get("order") == "C" and za.get("filters") is None and
                      za.get("dimension_separator") == "/" and za.get("fill_value") == 0,
                      f"{where}: .zarray zarr_format 2, order C, no filters, '/' separator, fill 0", za)
            at = dict(a.attrs)
            tap.check(at.get("axes") == list(axes) and at.get("voxel_size") == H.VOXEL and
                      at.get("unit") == "micrometer", f"{where}: array attrs axes, voxel_size, unit", at)
            tap.check(at.get("_ARRAY_DIMENSIONS") == list(axes), f"{where}: _ARRAY_DIMENSIONS {list(axes)}", at)
    for st in ("imp", "imp_blosc"):
        imp = root[st]["raw/0"][...]
        tap.check(imp.dtype == src_data.dtype and np.array_equal(imp, src_data), f"{st}/raw equals the source exactly")


def check_stage_attrs(tap, root, h5attrs):
    fps = {st: dict(root[st].attrs).get("fingerprint") for st in H.STAGES}
    for st, (stype, arrays, ports) in H.STAGES.items():
        raw = dict(root[st].attrs)
        missing = [k for k in H.STR_ATTRS + H.INT_ATTRS + H.FLOAT_ATTRS if k not in raw]
        tap.check(not missing, f"{st}: .zattrs carries every stage attribute", f"missing {missing}")
        if missing:
            continue
        # schemas/container-layout.md: params is a JSON object, and Zarr
        # stage attributes are native JSON (JSON text is HDF5's encoding).
        tap.check(isinstance(raw["params"], dict), f"{st}: params is a native JSON object in .zattrs",
                  f"{type(raw['params']).__name__}: {raw['params']!r}")
        tap.check(all(isinstance(raw[k], dict) for k in H.JSON_ATTRS if k != "params"),
                  f"{st}: inputs, input_fingerprints, input_files, libraries are native JSON objects",
                  {k: type(raw[k]).__name__ for k in H.JSON_ATTRS})
        tap.check(raw["stage_type"] == stype and isinstance(raw["stage_version"], int) and
                  isinstance(raw["threads"], int) and isinstance(raw["seconds"], float),
                  f"{st}: stage_type {stype}, integer stage_version/threads, number seconds",
                  {k: raw[k] for k in ("stage_type", "stage_version", "threads", "seconds")})
        z = H.attrs_json(raw)
        tap.check(H.HEX32.match(str(z["fingerprint"])) is not None, f"{st}: fingerprint is 32 hex chars",
                  z["fingerprint"])
        want_fps = {port: fps[up] for port, up in ports.items()}
        tap.check(z["input_fingerprints"] == want_fps,
                  f"{st}: input_fingerprints equal the upstream stages' fingerprints", (z["input_fingerprints"], want_fps))
        h = h5attrs[st]
        skip = H.VOLATILE_ATTRS | BACKEND_ONLY
        zk = {k for k in z if k not in skip}
        hk = {k for k in h if k not in skip}
        tap.check(zk == hk, f"{st}: same attribute names as the HDF5 stage group (timings aside)",
                  f"zarr only {sorted(zk - hk)}, hdf5 only {sorted(hk - zk)}")
        diff = {k: (z[k], h[k]) for k in zk & hk if z[k] != h[k]}
        tap.check(not diff, f"{st}: same attribute values as the HDF5 stage group (fingerprints included)", diff)


def check_inspect(tap, h5path, zpath):
    """`sirenstack inspect --json` describes both containers alike."""
    h = H.inspect_json(h5path, "/")
    z = H.inspect_json(zpath, "/")
    tap.check(sorted(h) == sorted(z), "inspect --json: same stages for both containers", (sorted(h), sorted(z)))
    skip = H.VOLATILE_ATTRS | BACKEND_ONLY
    for st in H.STAGES:
        hs, zs = h.get(st, {}), z.get(st, {})
        diff = {k: (zs.get(k), hs.get(k)) for k in (set(hs) | set(zs)) - skip - {"arrays"} if hs.get(k) != zs.get(k)}
        tap.check(not diff, f"inspect {st}: same stage attributes for zarr and hdf5 (zarr, hdf5 shown)", diff)
        ha, za = hs.get("arrays", {}), zs.get("arrays", {})
        keys = ("shape", "chunks", "dtype", "compressor", "kind")
        same = sorted(ha) == sorted(za) and all(
            {k: ha[n].get(k) for k in keys} == {k: za[n].get(k) for k in keys} for n in ha)
        tap.check(same, f"inspect {st}: same arrays (shape, chunks, dtype, compressor)", (ha, za))


def check_multiscales(tap, root):
    import zarr
    for st, (stype, arrays, ports) in H.STAGES.items():
        tap.check("multiscales" not in root[st].attrs, f"{st}: the stage group is no image (no multiscales)")
        for name in sorted(arrays):
            ig = root[st][name]
            ms = dict(ig.attrs).get("multiscales")
            if not tap.check(isinstance(ms, list) and len(ms) == 1 and isinstance(ms[0], dict) and
                             ms[0].get("name") == f"{st}/{name}",
                             f"{st}/{name}: .zattrs has an OME-NGFF 'multiscales' list of one entry, named so", ms):
                continue
            m = ms[0]
            where = f"{st}/{name} multiscales"
            tap.check(m.get("version") == "0.4", f"{where}: version 0.4", m.get("version"))
            axes = m.get("axes", [])
            want_axes = arrays.get(name, "")
            want = [{"name": a, "type": "space", "unit": "micrometer"} if a in "zyx" else {"name": a, "type": "time"}
                    for a in want_axes]
            tap.check(axes == want, f"{where}: axes {want_axes}, spatial in micrometer" + (", r as time" if "r" in want_axes else ""), axes)
            tap.check(2 <= len(axes) <= 5 and sum(1 for a in axes if a.get("type") == "space") in (2, 3),
                      f"{where}: 2 to 5 axes, 2 or 3 spatial (NGFF 0.4)", axes)
            ds = m.get("datasets", [])
            if not tap.check(isinstance(ds, list) and len(ds) >= 1, f"{where}: datasets non-empty", ds):
                continue
            for d in ds:
                p = d.get("path")
                arr = ig.get(p) if isinstance(p, str) else None
                tap.check(p == "0" and isinstance(arr, zarr.core.Array) and len(arr.shape) == len(axes),
                          f"{where}: dataset path '{p}' resolves to an array of rank {len(axes)}",
                          type(arr))
                scale = [1.0] * (len(axes) - 3) + H.VOXEL
                tap.check(d.get("coordinateTransformations") == [{"type": "scale", "scale": scale}],
                          f"{where}: scale {scale} matches the voxel size", d.get("coordinateTransformations"))
                if isinstance(arr, zarr.core.Array):
                    tap.check(dict(arr.attrs).get("voxel_size") == scale[-3:],
                              f"{where}: scale agrees with the array's voxel_size", dict(arr.attrs))


def main():
    tap = H.new_tap()
    try:
        import h5py  # noqa: F401
        import hdf5plugin  # noqa: F401
        import numcodecs  # noqa: F401
        import numpy  # noqa: F401
        import zarr
    except ImportError as e:
        print(f"1..0 # SKIP zarr/h5py/hdf5plugin/numpy not available: {e}")
        return 0
    keep = len(sys.argv) > 1
    tmp = os.path.abspath(sys.argv[1]) if keep else tempfile.mkdtemp(prefix="ss_zarr_pipeline_")
    os.makedirs(tmp, exist_ok=True)
    cwd0 = os.getcwd()
    try:
        h5path, src_data = H.run_pipeline(tap, tmp, "hdf5")
        zpath, _ = H.run_pipeline(tap, tmp, "zarr")
        h5 = tap.guard("read the HDF5 run", read_hdf5, h5path) if h5path else None
        if zpath and h5:
            h5vals, h5attrs = h5
            os.chdir("/")  # nothing may depend on the cwd
            root = tap.guard("zarr.open", zarr.open, zpath, "r")
            if root is not None:
                tap.guard("root", check_root, tap, root, zpath, h5attrs.get("__order__"))
                tap.guard("arrays", check_arrays, tap, root, zpath, h5vals, src_data)
                tap.guard("stage attributes", check_stage_attrs, tap, root, h5attrs)
                tap.guard("multiscales", check_multiscales, tap, root)
            tap.guard("inspect --json", check_inspect, tap, h5path, zpath)
    finally:
        os.chdir(cwd0)
    rc = tap.done(exit=False)
    if not keep and not rc:
        shutil.rmtree(tmp, ignore_errors=True)
    elif not keep:
        print(f"# left {tmp} for inspection")
    return rc


if __name__ == "__main__":
    sys.exit(main())
