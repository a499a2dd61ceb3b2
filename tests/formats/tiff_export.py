#!/usr/bin/python3
"""`sirenstack export` to ImageJ TIFF, OME-TIFF and OME-Zarr, in TAP.

Arrays are imported into a container, exported, and read back by tifffile
(ImageJ and OME metadata, resolution tags) and zarr-python (OME-NGFF 0.4
multiscales), then compared with the container read by h5py: same element
type, shape and values, and the voxel size. BigTIFF is checked with a lowered
threshold ($SIRENSTACK_BIGTIFF_BYTES) and with --bigtiff.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402
import zarr  # noqa: E402

import tifflib as L  # noqa: E402
from tifflib import h5py  # noqa: E402

T = L.Tap()
TMP = T.tmpdir("export")
VOX = [2.5, 0.4, 0.3]
R, Z, Y, X = 3, 4, 21, 26


def tw(file, data, **kw):
    kw.setdefault("photometric", "minisblack")
    tifffile.imwrite(file, data, **kw)
    return file


def container(dt):
    """A container with raw (R x Z x Y x X of dt) and mean (Z x Y x X float32)."""
    d = os.path.join(TMP, dt)
    os.makedirs(d)
    src = tw(os.path.join(d, "in.tif"), L.test_data((R, Z, Y, X), dt, seed=3), imagej=True,
             metadata={"axes": "TZYX"}) if dt != "uint32" and dt != "int32" else None
    if src is None:  # ImageJ has no 32-bit integers: a plain file read as blocked
        src = tw(os.path.join(d, "in.tif"), L.test_data((R * Z, Y, X), dt, seed=3))
    params = {"file": src, "voxel_size": VOX}
    if dt in ("uint32", "int32"):
        params.update({"repeats_layout": "blocked", "repeats": R})
    stages = {"raw": {"uses": "import_tiff", "params": params},
              "mean": {"uses": "fuse_mean", "inputs": {"repeats": "raw.raw"}}}
    cfg = L.write_config(os.path.join(d, "c.yaml"), stages, [{"id": "s1"}])
    p = L.run(["run", cfg, "--threads", "2"])
    cont = os.path.join(d, "out", "s1.h5")
    if not T.check(p.returncode == 0, f"{dt}: container made (import_tiff + fuse_mean)", L.describe(p)):
        return None, None
    with h5py.File(cont, "r", locking=False) as f:
        arrays = {"raw/raw": f["raw/raw"][()], "mean/fused": f["mean/fused"][()]}
    return cont, arrays


def export(cont, name, out, *extra, env=None):
    p = L.run(["export", cont, name, "-o", out] + list(extra), env=env)
    return p


def ome_pixels(desc):
    root = ET.fromstring(desc.encode())
    ns = {"o": root.tag.split("}")[0].strip("{")}
    return root.find("o:Image/o:Pixels", ns)


def check_imagej(cont, name, ref, out, dt):
    p = export(cont, name, out)
    if not T.check(p.returncode == 0 and os.path.exists(out), f"{dt} {name} -> .tif: exit 0", L.describe(p)):
        return
    with tifffile.TiffFile(out) as t:
        arr = t.series[0].asarray()
        ij = t.imagej_metadata or {}
        page = t.pages[0]
        xr, yr = page.tags["XResolution"].value, page.tags["YResolution"].value
        axes, imagej, big = t.series[0].axes, t.is_imagej, t.is_bigtiff
    eq, why = L.same(arr, ref)
    T.check(eq and imagej, f"{dt} {name} -> .tif: tifffile reads an ImageJ file with the same array ({axes})", why)
    want_axes = "TZYX" if ref.ndim == 4 else "ZYX"
    frames = ref.shape[0] if ref.ndim == 4 else 1
    ok = (axes == want_axes and ij.get("images") == ref.size // (Y * X) and ij.get("slices") == Z and
          ij.get("frames", 1) == frames and ij.get("unit") == "micron" and abs(ij.get("spacing", 0) - VOX[0]) < 1e-12 and
          not big)
    T.check(ok, f"{dt} {name} -> .tif: ImageJ images, slices, frames (repeats), unit micron, spacing", str(ij))
    T.check(abs(xr[1] / xr[0] - VOX[2]) < 1e-6 and abs(yr[1] / yr[0] - VOX[1]) < 1e-6,
            f"{dt} {name} -> .tif: XResolution, YResolution = 1 / voxel", f"{xr} {yr}")


def check_ome(cont, name, ref, out, dt):
    p = export(cont, name, out)
    if not T.check(p.returncode == 0, f"{dt} {name} -> .ome.tif: exit 0", L.describe(p)):
        return
    with tifffile.TiffFile(out) as t:
        arr = t.series[0].asarray()
        is_ome, axes, desc = t.is_ome, t.series[0].axes, t.pages[0].description
    eq, why = L.same(arr, ref)
    T.check(eq and is_ome, f"{dt} {name} -> .ome.tif: tifffile reads OME-TIFF with the same array ({axes})", why)
    px = ome_pixels(desc)
    frames = ref.shape[0] if ref.ndim == 4 else 1
    ok = (px.get("DimensionOrder") == "XYZTC" and int(px.get("SizeT")) == frames and int(px.get("SizeZ")) == Z and
          int(px.get("SizeC")) == 1 and float(px.get("PhysicalSizeX")) == VOX[2] and float(px.get("PhysicalSizeY")) == VOX[1]
          and float(px.get("PhysicalSizeZ")) == VOX[0] and px.get("PhysicalSizeXUnit") == "\u00b5m")
    T.check(ok, f"{dt} {name} -> .ome.tif: DimensionOrder XYZTC, SizeT = repeats, PhysicalSize in um", str(px.attrib))


def check_zarr(cont, name, ref, out, dt):
    p = export(cont, name, out)
    if not T.check(p.returncode == 0, f"{dt} {name} -> .ome.zarr: exit 0", L.describe(p)):
        return
    g = zarr.open_group(out, mode="r")
    ms = g.attrs["multiscales"][0]
    arr = g[ms["datasets"][0]["path"]]
    eq, why = L.same(arr[...], ref)
    T.check(eq and arr.compressor.codec_id == "blosc", f"{dt} {name} -> .ome.zarr: zarr-python reads the same array (blosc)",
            why)
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    names = [a["name"] for a in ms["axes"]]
    want = (["t"] if ref.ndim == 4 else []) + ["z", "y", "x"]
    T.check(ms["version"] == "0.4" and names == want and scale == ([1.0] if ref.ndim == 4 else []) + VOX and
            ms["axes"][-1].get("unit") == "micrometer",
            f"{dt} {name} -> .ome.zarr: OME-NGFF 0.4 axes {want}, scale = voxel size", json.dumps(ms))


def roundtrip_import(cont, ref, d, dt):
    """Our own export read back by our own import (both TIFF flavours)."""
    for ext in (".tif", ".ome.tif"):
        out = os.path.join(d, "rt" + ext)
        p = export(cont, "raw/raw", out)
        res = L.import_tiff(d, {"file": out}, name="rt" + ext.replace(".", "_")) if p.returncode == 0 else None
        ok = res is not None and res.ok
        eq, why = L.same(res.array, ref) if ok else (False, res.why() if res else L.describe(p))
        T.check(eq and L.near(res.voxel, VOX), f"{dt}: export {ext} then import_tiff gives the array and voxel back", why)


def main():
    for dt in ("uint8", "uint16", "int16", "uint32", "int32", "float32"):
        cont, arrays = container(dt)
        if not cont:
            continue
        d = os.path.dirname(cont)
        ref = arrays["raw/raw"]
        check_imagej(cont, "raw/raw", ref, os.path.join(d, "raw.tif"), dt)
        check_ome(cont, "raw/raw", ref, os.path.join(d, "raw.ome.tif"), dt)
        check_zarr(cont, "raw/raw", ref, os.path.join(d, "raw.ome.zarr"), dt)
        if dt in ("uint16", "float32"):
            roundtrip_import(cont, ref, d, dt)
        if dt == "uint16":
            mean = arrays["mean/fused"]
            T.check(mean.dtype == np.float32 and mean.shape == (Z, Y, X), "fuse_mean gives a float32 Z x Y x X array")
            check_imagej(cont, "mean/fused", mean, os.path.join(d, "mean.tif"), "float32")
            check_ome(cont, "mean/fused", mean, os.path.join(d, "mean.ome.tif"), "float32")
            check_zarr(cont, "mean/fused", mean, os.path.join(d, "mean.ome.zarr"), "float32")
            extras(cont, ref, d)
    T.done()


def extras(cont, ref, d):
    # BigTIFF: lowered threshold, forced, and the default for a small array
    for flag, env, want, what in (([], {"SIRENSTACK_BIGTIFF_BYTES": "1000"}, True, "above a lowered threshold"),
                                  (["--bigtiff"], None, True, "with --bigtiff"),
                                  ([], {"SIRENSTACK_BIGTIFF_BYTES": str(ref.nbytes)}, False, "at the threshold"),
                                  ([], None, False, "by default for a small array")):
        for ext in (".tif", ".ome.tif"):
            out = os.path.join(d, f"big{len(flag)}{bool(env)}{want}{ext}")
            p = export(cont, "raw/raw", out, *flag, env=env)
            ok = p.returncode == 0
            if ok:
                with tifffile.TiffFile(out) as t:
                    big, arr = t.is_bigtiff, t.series[0].asarray()
                ok = big == want and np.array_equal(arr, ref)
            T.check(ok, f"{ext}: {'BigTIFF' if want else 'classic TIFF'} {what}, same array", L.describe(p))
    # replacing an earlier export; refusing to replace what is not a Zarr group
    out = os.path.join(d, "raw.ome.zarr")
    p = export(cont, "raw/raw", out)
    T.check(p.returncode == 0 and np.array_equal(zarr.open_group(out, mode="r")["0"][...], ref),
            ".ome.zarr: exporting again replaces the earlier export", L.describe(p))
    mine = os.path.join(d, "mine.ome.zarr")
    os.makedirs(mine)
    with open(os.path.join(mine, "notes.txt"), "w") as f:
        f.write("keep me\n")
    p = export(cont, "raw/raw", mine)
    T.check(p.returncode == 4 and "not a Zarr group" in p.stderr and os.listdir(mine) == ["notes.txt"],
            ".ome.zarr: an existing folder that is not a Zarr group is left alone (exit 4)", L.describe(p))
    p = export(cont, "raw/raw", os.path.join(d, "raw.png"))
    T.check(p.returncode == 2 and ".tif" in p.stderr and not os.path.exists(os.path.join(d, "raw.png")),
            "an unknown extension is refused, naming the formats", L.describe(p))
    p = export(cont, "raw/raw", os.path.join(d, "nodir", "raw.tif"))
    T.check(p.returncode == 4 and "nodir" in p.stderr, "an unwritable destination: exit 4", L.describe(p))
    npy = os.path.join(d, "raw.npy")
    p = export(cont, "raw/raw", npy)
    T.check(p.returncode == 0 and np.array_equal(np.load(npy), ref), ".npy export still works", L.describe(p))
    T.check(not [n for r, ds, fs in os.walk(d) for n in ds + fs if ".tmp." in n or ".old." in n],
            "no temporaries left by exports, failed ones included")


main()
