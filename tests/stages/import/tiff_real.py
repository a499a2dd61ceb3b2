#!/usr/bin/python3
"""Every TIFF dataset of $SHARED_DATA imports, in TAP.

Each import is compared with tifffile reading the same files (LZW planes
through tifflib.lzw_decode, tifffile having no LZW codec here): identical
arrays, and the voxel size where the metadata has one (checked against the
acquisition's Experiment.xml for the ThorImage data). Skips cleanly when
$SHARED_DATA (../shared/data) is absent; never copies the data.
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

import tifflib as L  # noqa: E402

if not os.path.isdir(L.SHARED):
    print("1..0 # SKIP shared data absent")
    sys.exit(0)

L.install_lzw()
T = L.Tap()
TMP = T.tmpdir("real")
n_case = [0]


def imp(params, sample=None):
    n_case[0] += 1
    return L.import_tiff(TMP, params, sample, name=f"c{n_case[0]}")


def check(res, ref, desc):
    if not res.ok:
        return T.check(False, desc, res.why())
    eq, why = L.same(res.array, ref)
    return T.check(eq, desc, why)


def dataset(rel, points):
    """Skips `points` checks when the dataset folder is missing."""
    d = os.path.join(L.SHARED, rel)
    if not os.path.isdir(d):
        for p in points:
            T.skip(f"{rel}: {p}", f"{d} absent")
        return None
    return d


def page0(path):
    """The file's own first page (tifffile.imread would follow a multi-file OME set)."""
    with tifffile.TiffFile(path) as t:
        return t.pages[0].asarray()


def experiment_voxel(folder):
    """(z step, pixel size) in micrometer from ThorImage's Experiment.xml."""
    root = ET.parse(os.path.join(folder, "Experiment.xml")).getroot()
    return float(root.find("ZStage").get("stepSizeUM")), float(root.find("LSM").get("pixelSizeUM"))


def cellfinder():
    d = dataset("cellfinder-crop-ch0", ["glob imports"] * 4)
    if not d:
        return
    files = sorted(glob.glob(os.path.join(d, "ch*.tif")))
    ref = np.stack([tifffile.imread(f) for f in files])[None]
    res = imp({"file": None, "pattern": os.path.join(d, "*.tif")})
    check(res, ref, f"cellfinder-crop-ch0: folder of {len(files)} single-plane TIFFs -> R=1, Z={len(files)}, as tifffile")
    T.check(res.ok and res.array.shape[:2] == (1, 30), "cellfinder-crop-ch0: 1 x 30 planes", str(getattr(res.array, "shape", None)))
    with tifffile.TiffFile(files[0]) as t:
        ij = t.imagej_metadata or {}
    T.check(res.ok and not ij.get("unit") and L.near(res.voxel, [1, 1, 1]) and "no voxel size" in res.proc.stderr,
            "cellfinder-crop-ch0: uncalibrated (ImageJ unit empty): 1 um and a warning", f"{ij} {res.voxel}")
    check(imp({"file": None, "pattern": os.path.join(d, "ch{z:05d}.tif")}), ref,
          "cellfinder-crop-ch0: the same through the pattern ch{z:05d}.tif (0-based)")


def kidney_series():
    d = dataset("utils2p-kidney/mouse_kidney_time_series_z_stack", ["import"] * 8)
    if not d:
        return
    zstep, px = experiment_voxel(d)
    ref = np.zeros((3, 3, 128, 128), np.uint16)
    for r in range(3):
        for z in range(3):
            ref[r, z] = page0(os.path.join(d, f"ChanA_0001_0001_{z + 1:04d}_{r + 1:04d}.tif"))
    res = imp({"file": None, "pattern": os.path.join(d, "ChanA_0001_0001_{z:04d}_{r:04d}.tif")})
    check(res, ref, "utils2p time series: ThorImage pattern ChanA_..._{z:04d}_{r:04d}.tif -> 3 repeats x 3 z (LZW)")
    T.check(res.ok and L.near(res.voxel, [zstep, px, px]),
            f"utils2p time series: voxel size from the OME-XML equals Experiment.xml ({zstep}, {px}, {px})", str(res.voxel))
    master = os.path.join(d, "ChanA_0001_0001_0001_0001.tif")
    with tifffile.TiffFile(master) as t:
        series = t.series[0]
        axes = series.axes
        full = series.asarray()
    T.check(axes == "TZCYX" and full.shape == (3, 3, 2, 128, 128), f"tifffile sees the multi-file OME set as {axes} {full.shape}")
    res = imp({"file": master, "channel": 0})
    check(res, full[:, :, 0], "utils2p time series: multi-file OME set from ChanA_..._0001_0001.tif, channel 0 (auto: time)")
    res = imp({"file": master, "channel": 1})
    check(res, full[:, :, 1], "utils2p time series: the same set, channel 1 (the ChanB files)")
    zs = tifffile.imread(os.path.join(d, "z_stack.tif"))
    res = imp({"file": os.path.join(d, "z_stack.tif")})
    check(res, zs, "utils2p time series: z_stack.tif ImageJ hyperstack (3 t x 3 z) -> 3 repeats x 3 z")
    T.check(np.array_equal(zs, ref), "utils2p: z_stack.tif holds the same channel A planes as the ThorImage files")
    res = imp({"file": os.path.join(d, "z_stack.tif"), "repeats_layout": "blocked", "repeats": 3})
    check(res, zs, "utils2p time series: z_stack.tif read as blocked R=3 (ImageJ TZ order)")


def kidney_stack():
    d = dataset("utils2p-kidney/mouse_kidney_z_stack", ["import"] * 5)
    if not d:
        return
    zstep, px = experiment_voxel(d)
    ref = np.stack([page0(os.path.join(d, f"ChanA_0001_0001_{z + 1:04d}_0001.tif")) for z in range(3)])[None]
    res = imp({"file": None, "pattern": os.path.join(d, "ChanA_0001_0001_{z:04d}_0001.tif")})
    check(res, ref, "utils2p z stack: pattern with {z} only -> 1 x 3 planes (LZW)")
    T.check(res.ok and L.near(res.voxel, [zstep, px, px]), f"utils2p z stack: voxel ({zstep}, {px}, {px})", str(res.voxel))
    with tifffile.TiffFile(os.path.join(d, "ChanA_0001_0001_0001_0001.tif")) as t:
        full = t.series[0].asarray()  # ZCYX
    res = imp({"file": os.path.join(d, "ChanA_0001_0001_0001_0001.tif"), "channel": 0})
    check(res, full[None, :, 0], "utils2p z stack: multi-file OME set, channel 0")
    zs = tifffile.imread(os.path.join(d, "z_stack.tif"))
    res = imp({"file": os.path.join(d, "z_stack.tif")})
    check(res, zs[None], "utils2p z stack: z_stack.tif (ImageJ, 3 slices)")
    T.check(np.array_equal(zs[None], ref), "utils2p z stack: z_stack.tif equals the ThorImage planes")


def pc12():
    d = dataset("pystackreg-pc12", ["import"] * 4)
    if not d:
        return
    f = os.path.join(d, "pc12-unreg.tif")
    ref = tifffile.imread(f)
    T.check(ref.shape == (5, 201, 199), f"tifffile reads pc12-unreg.tif as {ref.shape}")
    check(imp({"file": f}), ref[None], "pc12-unreg.tif as Z = 5 (auto: no time axis in the metadata)")
    check(imp({"file": f, "repeats_layout": "time"}), ref[:, None], "pc12-unreg.tif as R = 5 time points (layout time)")
    check(imp({"file": f, "repeats_layout": "blocked"}, {"repeats": 5}), ref[:, None],
          "pc12-unreg.tif as R = 5 (layout blocked, repeats from the sample)")
    for other in ("pc12-reg-translation.tif", "pc12-reg-rigid-body.tif"):
        g = os.path.join(d, other)
        if os.path.exists(g):
            check(imp({"file": g}), tifffile.imread(g)[None], f"{other} imports")


for name, fn in [("cellfinder", cellfinder), ("kidney time series", kidney_series), ("kidney z stack", kidney_stack),
                 ("pc12", pc12)]:
    T.guard(name, fn)
T.done()
