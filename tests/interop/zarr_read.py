#!/usr/bin/python3
"""Interop of the Zarr backend with zarr-python (Debian python3-zarr), in TAP.

usage: zarr_read.py MAKE_ZARR_FIXTURE [CONTAINER]

Runs `MAKE_ZARR_FIXTURE write` to make a container (in a temporary directory
unless CONTAINER is given), opens every array with zarr and compares it with
the formulas of tests/store/make_zarr_fixture.c, checks the OME-NGFF 0.4
metadata (an image group per image array, the bioformats2raw.layout series)
and xarray's _ARRAY_DIMENSIONS, then writes a stage "py" with zarr-python
(every compressor the store reads) and has `MAKE_ZARR_FIXTURE verify` read it
through the store API. Then the same container is written once per
compression choice (blosc-lz4, blosc-zstd, gzip, none) and read back.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

T = Tap()


try:
    import numpy as np
    import zarr
    from numcodecs import GZip, Blosc, Zlib
except ImportError as e:
    print(f"1..0 # SKIP zarr-python not available: {e}")
    sys.exit(0)


# ---- the formulas of make_zarr_fixture.c ----------------------------------

def f_stack():
    z, y, x = np.meshgrid(np.arange(6), np.arange(37), np.arange(29), indexing="ij")
    return ((z * 1000 + y * 31 + x * 7) % 65521).astype(np.uint16)


def f_repeats():
    r, z, y, x = np.meshgrid(np.arange(4), np.arange(3), np.arange(20), np.arange(24), indexing="ij")
    return (r + z * 0.5 + y * 0.25 - x * 0.125).astype(np.float32)


def f_weights():
    return np.arange(1000) * 0.25 - 7


def f_labels():
    z, y, x = np.meshgrid(np.arange(3), np.arange(10), np.arange(10), indexing="ij")
    return (z * 100 + y * 10 + x - 150).astype(np.int32)


def f_mask():
    z, y, x = np.meshgrid(np.arange(5), np.arange(16), np.arange(16), indexing="ij")
    return np.where(z < 3, (x + y + z) % 2 * 255, 0).astype(np.uint8)


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


# ---- checks of what the C side wrote ---------------------------------------

# The image arrays (those with axes), as OME-NGFF images <stage>/<name>, in
# commit order: OME/.zattrs "series".
IMAGES = ["fused/repeats", "fused/stack", "denoised/stack"]
BLOSC_LZ4 = Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE, blocksize=0)


def array_of(path, stage, name):
    """The zarr array of stage/name: level 0 of an image group, else the plain array."""
    rel = f"{stage}/{name}/0" if f"{stage}/{name}" in IMAGES else f"{stage}/{name}"
    return zarr.open(os.path.join(path, rel), mode="r")


def check_root(path):
    root = zarr.open_group(path, mode="r")
    T.check(dict(root.attrs) == {"sirenstack": {"layout_version": 2, "format": "zarr"}, "bioformats2raw.layout": 3},
            "root attrs name the sirenstack layout (2) and bioformats2raw.layout 3", dict(root.attrs))
    T.check(sorted(root.group_keys()) == ["OME", "denoised", "fused"], "stage groups and the OME group visible to zarr",
            list(root.group_keys()))
    ome = dict(root["OME"].attrs)
    T.check(ome == {"series": IMAGES}, "OME group: series lists every image group, in commit order", ome)
    T.check(all(isinstance(root.get(p), zarr.hierarchy.Group) and "multiscales" in root[p].attrs for p in IMAGES),
            "every series path is an OME-NGFF image group")
    with open(os.path.join(path, ".sirenstack", "order.json")) as f:
        order = json.load(f)
    T.check(order == ["fused", "denoised"], "order.json lists commit order", order)


def check_arrays(path):
    g = zarr.open_group(path, mode="r")["fused"]
    expect = {"stack": (f_stack(), (2, 16, 16)), "repeats": (f_repeats(), (1, 2, 8, 8)),
              "weights": (f_weights(), (128,)), "labels": (f_labels(), (3, 10, 10)),
              "mask": (f_mask(), (1, 8, 8))}
    for name, (want, chunks) in expect.items():
        a = array_of(path, "fused", name)
        got = a[...]
        T.check(same(got, want), f"fused/{name} values and dtype match",
                f"dtype {got.dtype} vs {want.dtype}, max diff "
                f"{np.abs(got.astype(float) - want.astype(float)).max() if got.shape == want.shape else got.shape}")
        T.check(a.chunks == chunks, f"fused/{name} chunks {chunks}", a.chunks)
        T.check(a.compressor == BLOSC_LZ4, f"fused/{name} blosc lz4 compressor", a.compressor)
        T.check(a.fill_value == 0 and a.order == "C", f"fused/{name} fill 0, order C")
        image = f"fused/{name}" in IMAGES
        T.check(name in (g.group_keys() if image else g.array_keys()),
                f"fused/{name} listed by the group as {'an image group' if image else 'an array'}")
    # sub-slab across edge chunks
    a = array_of(path, "fused", "stack")
    T.check(same(a[1:5, 10:37, 3:29], f_stack()[1:5, 10:37, 3:29]), "fused/stack sub-slab across edge chunks")
    # planes 3, 4 of mask were never written: no chunk files
    mdir = os.path.join(path, "fused", "mask")
    T.check(sorted(os.listdir(mdir)) == [".zarray", ".zattrs", "0", "1", "2"] and
            sorted(os.listdir(os.path.join(mdir, "0"))) == ["0", "1"],
            "fused/mask has chunk files only for written planes, '/' separated", sorted(os.listdir(mdir)))
    d = array_of(path, "denoised", "stack")
    T.check(same(d[...], (f_stack() / 2).astype(np.float32)), "denoised/stack values (default chunks)")
    T.check(d.chunks == (6, 37, 29), "denoised/stack default chunks hold whole planes", d.chunks)


def check_ome(path):
    g = zarr.open_group(os.path.join(path, "fused"), mode="r")
    attrs = dict(g.attrs)
    T.check(attrs.get("stage_type") == "fuse" and attrs.get("stage_version") == 2 and
            attrs.get("params") == {"omega0": 32, "steps": 1500, "inputs": ["raw", "psf"]},
            "stage attributes stored as native JSON", attrs)
    T.check("multiscales" not in attrs, "the stage group itself is no image (no multiscales)", list(attrs))
    by = {}
    for name in ("stack", "repeats"):
        ms = dict(zarr.open_group(os.path.join(path, "fused", name), mode="r").attrs).get("multiscales", [])
        T.check(len(ms) == 1 and ms[0].get("name") == f"fused/{name}",
                f"fused/{name}: an image group with one multiscales entry named fused/{name}", ms)
        by[name] = ms[0] if ms else {}
    st = by["stack"]
    T.check(st.get("version") == "0.4", "multiscales version 0.4")
    T.check(st.get("axes") == [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
            "stack axes: z, y, x space in micrometer", st.get("axes"))
    T.check(st.get("datasets") == [{"path": "0",
                                    "coordinateTransformations": [{"type": "scale", "scale": [1.5, 0.25, 0.25]}]}],
            "stack dataset path 0 and scale", st.get("datasets"))
    rp = by["repeats"]
    T.check(rp.get("axes", [{}])[0] == {"name": "r", "type": "time"} and len(rp.get("axes", [])) == 4,
            "repeats axis r is a time axis", rp.get("axes"))
    T.check(rp.get("datasets", [{}])[0].get("coordinateTransformations") ==
            [{"type": "scale", "scale": [1.0, 1.5, 0.25, 0.25]}], "repeats scale is 1 on r", rp.get("datasets"))
    # every dataset path resolves to an array of the declared rank
    ok = all(len(zarr.open(os.path.join(path, "fused", name, d["path"]), mode="r").shape) == len(m["axes"])
             for name, m in by.items() for d in m.get("datasets", [{"path": "?"}]))
    T.check(ok, "multiscales dataset paths resolve to arrays of the declared rank")
    a = array_of(path, "fused", "stack")
    T.check(dict(a.attrs) == {"axes": ["z", "y", "x"], "voxel_size": [1.5, 0.25, 0.25], "unit": "micrometer",
                              "_ARRAY_DIMENSIONS": ["z", "y", "x"]},
            "array attrs: axes, voxel_size, unit, _ARRAY_DIMENSIONS", dict(a.attrs))
    dims = {name: array_of(path, "fused", name).attrs.get("_ARRAY_DIMENSIONS")
            for name in ("repeats", "weights", "labels", "metrics")}
    T.check(dims == {"repeats": ["r", "z", "y", "x"], "weights": ["weights_dim0"],
                     "labels": ["labels_dim0", "labels_dim1", "labels_dim2"], "metrics": ["metrics_row"]},
            "_ARRAY_DIMENSIONS of repeats, arrays without axes and tables", dims)


def check_tables(path):
    t = zarr.open(os.path.join(path, "fused", "metrics"), mode="r")
    T.check(t.dtype == np.dtype([("plane", "<i8"), ("psnr", "<f8"), ("method", "S64")]),
            "metrics structured dtype", t.dtype)
    T.check(dict(t.attrs) == {"sirenstack_table": True, "_ARRAY_DIMENSIONS": ["metrics_row"]},
            "metrics marked as a table", dict(t.attrs))
    v = t[...]
    T.check(np.array_equal(v["plane"], np.arange(10)) and np.array_equal(v["psnr"], 20 + np.arange(10) * 0.5) and
            list(v["method"]) == [b"linear" if i % 2 else b"siren" for i in range(10)], "metrics values", v)
    b = zarr.open(os.path.join(path, "fused", "big"), mode="r")
    v = b[...]
    T.check(b.shape == (70000,) and b.nchunks > 1, "big table spans several chunks", (b.shape, b.chunks))
    T.check(np.array_equal(v["id"], np.arange(70000)) and np.array_equal(v["val"], np.arange(70000) * 0.5) and
            v["name"][69999] == b"row69999" and v["name"][0] == b"row0", "big table values")


# ---- the other direction: zarr-python writes, the store reads ----------------

def write_py_stage(path):
    g = zarr.open_group(os.path.join(path, "py"), mode="w")
    g.attrs["written_by"] = "zarr-python"
    z, y, x = np.meshgrid(np.arange(5), np.arange(20), np.arange(30), indexing="ij")
    g.create_dataset("a", data=((z * 900 + y * 30 + x) % 65536).astype(np.uint16), chunks=(2, 7, 8),
                     compressor=Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE), dimension_separator="/")
    z, y, x = np.meshgrid(np.arange(3), np.arange(10), np.arange(10), indexing="ij")
    g.create_dataset("b", data=(z - y * 0.5 + x * 0.25).astype(np.float32))
    y, x = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    g.create_dataset("c", data=(y * 10 + x + 0.5).astype(np.float64), compressor=None)
    d = g.create_dataset("d", shape=(4, 6, 6), chunks=(1, 3, 3), dtype=np.int16, fill_value=7)
    d[1] = -np.arange(36, dtype=np.int16).reshape(6, 6)
    t = np.zeros(12, dtype=[("plane", "<i8"), ("psnr", "<f8"), ("method", "S64")])
    t["plane"] = np.arange(12)
    t["psnr"] = 30 + np.arange(12) * 0.25
    t["method"] = [f"m{i}".encode() for i in range(12)]
    g.create_dataset("t", data=t, chunks=(5,), compressor=Blosc(cname="zstd", clevel=3, shuffle=Blosc.NOSHUFFLE))
    a = g["a"][...]
    for name, comp in (("e", Zlib(level=4)), ("f", GZip(level=4)), ("g", Blosc(cname="zstd", clevel=5))):
        g.create_dataset(name, data=a, chunks=(2, 7, 8), compressor=comp, dimension_separator="/")


# ---- each compression choice of the store ------------------------------------

COMPRESSORS = {"blosc-lz4": BLOSC_LZ4, "blosc-zstd": Blosc(cname="zstd", clevel=5, shuffle=Blosc.SHUFFLE, blocksize=0),
               "gzip": Zlib(level=4), "none": None}


def check_compression(fixture, tmp, name):
    path = os.path.join(tmp, f"c-{name}.zarr")
    r = subprocess.run([fixture, "write", path, name], capture_output=True, text=True)
    if not T.check(r.returncode == 0, f"{name}: make_zarr_fixture writes the container", r.stdout + r.stderr):
        return
    want = {"fused/stack": f_stack(), "fused/repeats": f_repeats(), "fused/weights": f_weights(),
            "fused/labels": f_labels(), "fused/mask": f_mask(), "denoised/stack": (f_stack() / 2).astype(np.float32)}
    comps, bad = set(), []
    for where, ref in want.items():
        a = array_of(path, *where.split("/"))
        comps.add(repr(a.compressor))
        if not same(a[...], ref):
            bad.append(where)
    for t in ("metrics", "big"):
        a = array_of(path, "fused", t)
        comps.add(repr(a.compressor))
        if a[...].shape != ((10,) if t == "metrics" else (70000,)):
            bad.append(f"fused/{t}")
    v = array_of(path, "fused", "big")[...]
    if not (np.array_equal(v["id"], np.arange(70000)) and v["name"][69999] == b"row69999"):
        bad.append("fused/big values")
    T.check(not bad, f"{name}: zarr-python reads every array and table equal to the formulas", bad)
    T.check(comps == {repr(COMPRESSORS[name])}, f"{name}: every .zarray names {COMPRESSORS[name]!r}", comps)


def main():
    if len(sys.argv) < 2:
        print("Bail out! usage: zarr_read.py MAKE_ZARR_FIXTURE [CONTAINER]")
        return 1
    fixture = sys.argv[1]
    tmp = None
    if len(sys.argv) > 2:
        path = sys.argv[2]
    else:
        tmp = tempfile.mkdtemp(prefix="ss_zarr_interop_")
        path = os.path.join(tmp, "sample.zarr")
    r = subprocess.run([fixture, "write", path], capture_output=True, text=True)
    if not T.check(r.returncode == 0, "make_zarr_fixture writes the container", r.stdout + r.stderr):
        return T.done(exit=False)

    T.guard("root group", check_root, path)
    T.guard("arrays", check_arrays, path)
    T.guard("OME-NGFF metadata", check_ome, path)
    T.guard("tables", check_tables, path)
    T.guard("zarr-python writes stage py", write_py_stage, path)
    r = subprocess.run([fixture, "verify", path], capture_output=True, text=True)
    T.check(r.returncode == 0, "the store reads what zarr-python wrote (blosc lz4 and zstd, zlib, gzip, none, "
            "'/' and '.', fill_value, table)", r.stdout + r.stderr)
    ctmp = tmp or os.path.dirname(os.path.abspath(path))
    for name in COMPRESSORS:
        T.guard(f"compression {name}", check_compression, fixture, ctmp, name)

    rc = T.done(exit=False)
    if tmp and not rc:
        shutil.rmtree(tmp)
    elif tmp:
        print(f"# left {tmp} for inspection")
    return rc


if __name__ == "__main__":
    sys.exit(main())
