#!/usr/bin/python3
"""import_tiff against the arrays it was given, in TAP.

Every file is written here by tifffile (or by Pillow, for the LZW and PackBits
codecs that tifffile cannot write without imagecodecs), then imported by a
sirenstack run; the container is read with h5py + hdf5plugin (one case with
zarr-python) and compared with the array the file was made from: element
type, shape, every value, and the voxel size where the metadata has one.
"""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

import tifflib as L  # noqa: E402

T = L.Tap()
TMP = T.tmpdir("import")
DATA = os.path.join(TMP, "data")
os.makedirs(DATA)
SHAPE = (4, 33, 47)
n_case = [0]


def tw(file, data, **kw):
    """tifffile.imwrite, grey levels: without photometric, tifffile stores
    arrays with 3 or 4 leading planes as RGB(A) samples."""
    kw.setdefault("photometric", "minisblack")
    tifffile.imwrite(file, data, **kw)


def path(name):
    return os.path.join(DATA, name)


def imp(params, sample=None, store="hdf5"):
    n_case[0] += 1
    return L.import_tiff(TMP, params, sample, store, name=f"c{n_case[0]}")


def check_array(res, expected, desc):
    if not res.ok:
        return T.check(False, desc, res.why())
    eq, why = L.same(res.array, expected)
    return T.check(eq, desc, why)


# ---- element types and codecs -------------------------------------------------------

def element_types():
    for dt in ("uint8", "uint16", "int16", "uint32", "int32", "float32"):
        a = L.test_data(SHAPE, dt, seed=1)
        tw(path(f"t_{dt}.tif"), a)
        check_array(imp({"file": path(f"t_{dt}.tif")}), a[None], f"{dt}: multi-page TIFF imported unchanged (1 x 4 x 33 x 47)")
    a = L.test_data(SHAPE, "int8", seed=2)
    tw(path("t_int8.tif"), a)
    check_array(imp({"file": path("t_int8.tif")}), a[None].astype(np.int16), "int8 widens to int16, values kept")
    a = L.test_data(SHAPE, "float64", seed=3)
    tw(path("t_float64.tif"), a)
    check_array(imp({"file": path("t_float64.tif")}), a[None].astype(np.float32), "float64 narrows to float32 (as numpy casts)")


def codecs():
    a = L.test_data((3, 40, 37), "uint16", seed=4) // 16  # compressible
    tw(path("deflate.tif"), a, compression="zlib")
    check_array(imp({"file": path("deflate.tif")}), a[None], "Deflate (tifffile zlib)")
    tw(path("deflate_pred.tif"), a, compression="zlib", predictor=True)
    check_array(imp({"file": path("deflate_pred.tif")}), a[None], "Deflate with horizontal predictor")
    L.write_pil(path("lzw.tif"), list(a), "tiff_lzw")
    check_array(imp({"file": path("lzw.tif")}), a[None], "LZW (Pillow) uint16")
    L.write_pil(path("packbits.tif"), list(a), "packbits")
    check_array(imp({"file": path("packbits.tif")}), a[None], "PackBits (Pillow) uint16")
    b = (a % 256).astype(np.uint8)
    L.write_pil(path("lzw8.tif"), list(b), "tiff_lzw")
    check_array(imp({"file": path("lzw8.tif")}), b[None], "LZW uint8")
    f = L.test_data((2, 21, 19), "float32", seed=5)
    L.write_pil(path("lzwf.tif"), list(f), "tiff_lzw")
    check_array(imp({"file": path("lzwf.tif")}), f[None], "LZW float32")
    L.write_pil(path("adobe_deflate.tif"), list(a), "tiff_adobe_deflate")
    check_array(imp({"file": path("adobe_deflate.tif")}), a[None], "Adobe Deflate (Pillow)")


def variants():
    a = L.test_data(SHAPE, "uint16", seed=6)
    tw(path("big.tif"), a, bigtiff=True)
    with tifffile.TiffFile(path("big.tif")) as t:
        assert t.is_bigtiff
    check_array(imp({"file": path("big.tif")}), a[None], "BigTIFF")
    tw(path("be.tif"), a, byteorder=">")
    check_array(imp({"file": path("be.tif")}), a[None], "big-endian TIFF")
    tw(path("strips.tif"), a, rowsperstrip=5)
    with tifffile.TiffFile(path("strips.tif")) as t:
        assert len(t.pages[0].dataoffsets) > 1
    check_array(imp({"file": path("strips.tif")}), a[None], "several strips per page (5 rows each)")
    g = L.test_data((6, 16, 16), "uint16", seed=7)
    tw(path("bigpred.tif"), g, bigtiff=True, compression="zlib", predictor=True, byteorder=">")
    check_array(imp({"file": path("bigpred.tif")}), g[None], "BigTIFF, big-endian, Deflate with predictor together")


# ---- layouts -------------------------------------------------------------------------

def layouts():
    R, Z = 3, 4
    pages = L.test_data((R * Z, 20, 24), "uint16", seed=8)
    tw(path("flat12.tif"), pages)
    inter = np.stack([np.stack([pages[z * R + r] for z in range(Z)]) for r in range(R)])
    block = pages.reshape(R, Z, 20, 24)
    check_array(imp({"file": path("flat12.tif"), "repeats_layout": "interleaved", "repeats": R}), inter,
                "interleaved: page = z * R + r (R from the stage)")
    check_array(imp({"file": path("flat12.tif"), "repeats_layout": "interleaved"}, {"repeats": R}), inter,
                "interleaved: R from the sample's repeats")
    check_array(imp({"file": path("flat12.tif"), "repeats_layout": "blocked", "repeats": R}), block,
                "blocked: page = r * Z + z")
    check_array(imp({"file": path("flat12.tif")}), pages[None], "auto on a plain file: R = 1, every page a z plane")
    check_array(imp({"file": path("flat12.tif"), "repeats_layout": "time"}), pages[:, None],
                "time on a plain file: each page a repeat of one plane (R = 12, Z = 1)")

    hs = L.test_data((3, 4, 20, 24), "uint16", seed=9)
    tw(path("hyper.tif"), hs, imagej=True, metadata={"axes": "TZYX"})
    res = imp({"file": path("hyper.tif")})
    check_array(res, hs, "ImageJ hyperstack TZYX: auto picks time (frames are repeats)")
    if res.ok:
        T.check(res.stage_json("tiff_source")["repeats_layout"] == "time", "the stage records the layout it used (time)",
                str(res.stage))
    check_array(imp({"file": path("hyper.tif"), "repeats_layout": "blocked", "repeats": 3}), hs,
                "ImageJ hyperstack read as blocked R = 3 (same order as time)")
    check_array(imp({"file": path("hyper.tif"), "repeats_layout": "interleaved", "repeats": 2}),
                np.stack([hs.reshape(12, 20, 24)[r::2] for r in range(2)]),
                "ImageJ hyperstack read as interleaved R = 2 (the 12 planes in file order)")

    tw(path("ome_tz.ome.tif"), hs, metadata={"axes": "TZYX"})
    check_array(imp({"file": path("ome_tz.ome.tif")}), hs, "OME-TIFF TZYX: auto picks time")
    zt = np.ascontiguousarray(hs.transpose(1, 0, 2, 3))
    tw(path("ome_zt.ome.tif"), zt, metadata={"axes": "ZTYX"})
    with tifffile.TiffFile(path("ome_zt.ome.tif")) as t:
        order = t.pages[0].description.split('DimensionOrder="')[1][:5]
    check_array(imp({"file": path("ome_zt.ome.tif"), "repeats_layout": "time"}), hs,
                f"OME-TIFF ZTYX (DimensionOrder {order}): planes mapped by the order")

    ch = L.test_data((4, 2, 20, 24), "uint16", seed=10)
    tw(path("ij_ch.tif"), ch, imagej=True, metadata={"axes": "ZCYX"})
    check_array(imp({"file": path("ij_ch.tif"), "channel": 1}), ch[None, :, 1], "ImageJ ZCYX with channel 1")
    och = L.test_data((2, 3, 2, 20, 24), "uint16", seed=11)
    tw(path("ome_ch.ome.tif"), och, metadata={"axes": "TZCYX"})
    check_array(imp({"file": path("ome_ch.ome.tif"), "channel": 0}), och[:, :, 0], "OME TZCYX with channel 0 (R = T = 2)")

    reps = L.test_data((3, 5, 16, 18), "int16", seed=12)
    for r in range(3):
        tw(path(f"stack_rep{r}.tif"), reps[r])
    check_array(imp({"file": None, "pattern": L.esc(path("stack_rep{r}.tif"))}), reps,
                "files: one file per repeat, stack_rep{r}.tif (auto, 0-based)")
    for r in range(3):
        tw(path(f"one_rep{r + 1}.tif"), reps[r])
    check_array(imp({"file": None, "pattern": L.esc(path("one_rep{r}.tif")), "repeats_layout": "files"}), reps,
                "files: 1-based {r} detected")
    for r in range(3):
        for cc in range(2):
            tw(path(f"rc_rep{r}_ch{cc}.tif"), reps[r] + cc)
    check_array(imp({"file": None, "pattern": path("rc_rep{r}_ch{c}.tif"), "channel": 1}), reps + 1,
                "files with {c}: one stack per repeat, channel 1 chosen by the names")
    zc = L.test_data((3, 5, 2, 16, 18), "uint16", seed=21)
    for r in range(3):
        tw(path(f"zc_rep{r}.tif"), zc[r], imagej=True, metadata={"axes": "ZCYX"})
    check_array(imp({"file": None, "pattern": path("zc_rep{r}.tif"), "channel": 1}), zc[:, :, 1],
                "files of ImageJ ZCYX stacks: channel 1 from each repeat's file")

    thor = os.path.join(DATA, "thor")
    os.makedirs(thor)
    tz = L.test_data((3, 4, 16, 20), "uint16", seed=13)
    for r in range(3):
        for z in range(4):
            tw(os.path.join(thor, f"ChanA_0001_0001_{z + 1:04d}_{r + 1:04d}.tif"), tz[r, z])
            tw(os.path.join(thor, f"ChanB_0001_0001_{z + 1:04d}_{r + 1:04d}.tif"), tz[r, z] // 2)
    res = imp({"file": None, "pattern": L.esc(os.path.join(thor, "ChanA_0001_0001_{z:04d}_{r:04d}.tif"))})
    check_array(res, tz, "pattern: ThorImage ChanA_0001_0001_{z:04d}_{r:04d}.tif, 1-based, ChanB ignored")
    if res.ok:
        files = res.stage_json("files_read")
        names = [os.path.basename(f[0]) for f in files["files"]]
        sizes_ok = all(f[1] == os.path.getsize(f[0]) for f in files["files"])
        T.check(files["count"] == 12 and len(names) == 12 and all(n.startswith("ChanA") for n in names) and sizes_ok,
                "files_read lists the 12 files read with their sizes", json.dumps(files)[:500])
    check_array(imp({"file": None, "pattern": os.path.join(thor, "ChanA_0001_0001_{z:04d}_{t:04d}.tif")}), tz,
                "pattern written without escapes, {t} for the repeats")
    # Every file a pattern matches is in the fingerprint: the same config
    # reruns nothing, then reruns the import once one plane's file changes.
    pat = {"file": None, "pattern": os.path.join(thor, "ChanA_0001_0001_{z:04d}_{t:04d}.tif")}
    first = L.import_tiff(TMP, pat, name="refp")
    again = L.import_tiff(TMP, pat, name="refp")
    T.check(first.ok and again.ok and "raw: up to date" in again.proc.stderr, "pattern import: rerun reuses it",
            again.proc.stderr[-400:])
    tw(os.path.join(thor, "ChanA_0001_0001_0002_0003.tif"), tz[2, 1] + 1)
    changed = L.import_tiff(TMP, pat, name="refp")
    T.check(changed.ok and "raw: running import_tiff" in changed.proc.stderr, "changing one matched file reruns the import",
            changed.proc.stderr[-400:])
    tw(os.path.join(thor, "ChanA_0001_0001_0002_0003.tif"), tz[2, 1])
    chans = os.path.join(DATA, "chans")
    os.makedirs(chans)
    for cc in range(2):
        for z in range(4):
            tw(os.path.join(chans, f"ch{cc}_z{z + 1}.tif"), tz[0, z] + cc)
    check_array(imp({"file": None, "pattern": os.path.join(chans, "ch{c}_z{z}.tif"), "channel": 1}), tz[:1] + 1,
                "pattern with {c}: 'channel' picks the files of channel 1")
    zero = os.path.join(DATA, "zero")
    os.makedirs(zero)
    for r in range(2):
        for z in range(4):
            tw(os.path.join(zero, f"img_z{z}_r{r}.tif"), tz[r, z])
    check_array(imp({"file": None, "pattern": L.esc(os.path.join(zero, "img_z{z}_r{r}.tif")), "index_base": "0",
                     "repeats_layout": "pattern"}), tz[:2], "pattern: unpadded 0-based fields with index_base 0")

    planes = os.path.join(DATA, "planes")
    os.makedirs(planes)
    pl = L.test_data((12, 14, 15), "uint16", seed=14)
    for i in range(12):
        tw(os.path.join(planes, f"p{i + 1}.tif"), pl[i])
    res = imp({"file": None, "pattern": os.path.join(planes, "p*.tif")})
    check_array(res, pl[None], "glob folder p*.tif in natural order (p2 before p10)")
    check_array(imp({"file": None, "pattern": os.path.join(planes, "p*.tif"), "repeats_layout": "interleaved"},
                    {"repeats": 2}), np.stack([pl[0::2], pl[1::2]]), "glob folder, interleaved R = 2 from the sample")
    check_array(imp({"file": None, "pattern": "{input}"}, {"input": os.path.join(planes, "p?.tif")}), pl[None, :9],
                "pattern from the sample's input ({input}), ? wildcard")


def multi_file_ome():
    d = os.path.join(DATA, "omeset")
    os.makedirs(d)
    st = L.test_data((3, 12, 13), "uint16", seed=15)
    names = ["c.ome.tif", "a.ome.tif", "b.ome.tif"]  # z = 0, 1, 2
    tds = "".join(f'<TiffData FirstZ="{z}" FirstT="0" FirstC="0"><UUID FileName="{n}">urn:uuid:{z}</UUID></TiffData>'
                  for z, n in enumerate(names))
    master = ('<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
              '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="13" SizeY="12" '
              'SizeZ="3" SizeC="1" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeY="0.5" PhysicalSizeZ="3">'
              f'<Channel ID="Channel:0:0" SamplesPerPixel="1"/>{tds}</Pixels></Image></OME>')
    part = master.split("<TiffData")[0] + "</Pixels></Image></OME>"
    for z, n in enumerate(names):
        tw(os.path.join(d, n), st[z], description=master if z == 0 else part, metadata=None)
    res = imp({"file": os.path.join(d, names[0])})
    check_array(res, st[None], "multi-file OME set: TiffData UUID FileName maps z to the right files")
    if res.ok:
        T.check(L.near(res.voxel, [3, 0.5, 0.5]), "multi-file OME: voxel from PhysicalSize", str(res.voxel))
        T.check(res.stage_json("files_read")["count"] == 3, "multi-file OME: files_read lists all 3 files")
    # Every member's content joins the fingerprint: a rerun with nothing changed
    # reuses the import; replacing one member (not the file named) reruns it.
    first = L.import_tiff(TMP, {"file": os.path.join(d, names[0])}, name="omeset_rerun")
    again = L.import_tiff(TMP, {"file": os.path.join(d, names[0])}, name="omeset_rerun")
    fp = (first.stage.get("fingerprint"), again.stage.get("fingerprint"))
    T.check(first.ok and again.ok and fp[0] == fp[1] and fp[0] is not None,
            "multi-file OME: a rerun with no member changed keeps the fingerprint", f"{fp}")
    st2 = st.copy()
    st2[2] = L.test_data((12, 13), "uint16", seed=16)
    tw(os.path.join(d, names[2]), st2[2], description=part, metadata=None)
    res2 = L.import_tiff(TMP, {"file": os.path.join(d, names[0])}, name="omeset_rerun")
    T.check(res2.ok and res2.stage.get("fingerprint") != fp[0],
            "multi-file OME: replacing another member of the set changes the import's fingerprint",
            f"{fp[0]} -> {res2.stage.get('fingerprint')}")
    check_array(res2, st2[None], "multi-file OME: after a member was replaced, the rerun imports its new planes")


def contiguous():
    st = L.test_data((5, 10, 12), "uint16", seed=16)
    L.imagej_contiguous(path("contig.tif"), st)
    with tifffile.TiffFile(path("contig.tif")) as t:
        ref = t.series[0].asarray()
        npages = len(t.pages)
    T.check(npages == 1 and np.array_equal(ref, st), "tifffile reads the hand-made contiguous ImageJ file (1 IFD, 5 planes)")
    res = imp({"file": path("contig.tif")})
    check_array(res, st[None], "ImageJ contiguous planes after a single IFD (how ImageJ saves > 4 GiB)")
    if res.ok:
        T.check(L.near(res.voxel, [2.5, 0.2, 0.25]), "contiguous ImageJ: spacing and 1/resolution as voxel size",
                str(res.voxel))


# ---- voxel size ----------------------------------------------------------------------

def voxel_sizes():
    a = L.test_data((3, 10, 11), "uint16", seed=17)
    tw(path("vox.ome.tif"), a, metadata={"axes": "ZYX", "PhysicalSizeX": 250, "PhysicalSizeXUnit": "nm",
                                                      "PhysicalSizeY": 0.3, "PhysicalSizeYUnit": "\u00b5m",
                                                      "PhysicalSizeZ": 0.002, "PhysicalSizeZUnit": "mm"})
    with tifffile.TiffFile(path("vox.ome.tif")) as t:
        desc = t.pages[0].description
    res = imp({"file": path("vox.ome.tif")})
    T.check(res.ok and L.near(res.voxel, [2.0, 0.3, 0.25]), "OME PhysicalSize in mm, um, nm -> [2, 0.3, 0.25] um",
            f"{res.voxel}\n{desc[:600]}\n{res.why()}")
    tw(path("vox_ij.tif"), a, imagej=True, resolution=(1 / 0.3, 1 / 0.4),
                     metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})
    res = imp({"file": path("vox_ij.tif")})
    T.check(res.ok and L.near(res.voxel, [2.0, 0.4, 0.3], 1e-6), "ImageJ spacing + 1/XResolution, 1/YResolution in um",
            f"{res.voxel} {res.why()}")
    tw(path("vox_ij_nm.tif"), a, imagej=True, resolution=(1 / 300, 1 / 400),
                     metadata={"axes": "ZYX", "spacing": 1500, "unit": "nm"})
    res = imp({"file": path("vox_ij_nm.tif")})
    T.check(res.ok and L.near(res.voxel, [1.5, 0.4, 0.3], 1e-6), "ImageJ unit nm converted to micrometer",
            f"{res.voxel} {res.why()}")
    res = imp({"file": path("vox_ij.tif")}, {"voxel_size": [5, 6, 7]})
    T.check(res.ok and L.near(res.voxel, [5, 6, 7]) and res.stage_json("tiff_source")["voxel_size_from"] == "sample",
            "the sample's voxel_size overrides the file's", f"{res.voxel} {res.stage.get('tiff_source')}")
    res = imp({"file": path("vox_ij.tif"), "voxel_size": [1, 2, 3]}, {"voxel_size": [5, 6, 7]})
    T.check(res.ok and L.near(res.voxel, [1, 2, 3]) and res.stage_json("tiff_source")["voxel_size_from"] == "params",
            "the stage's voxel_size overrides the sample's and the file's", f"{res.voxel}")
    tw(path("novox.tif"), a)
    res = imp({"file": path("novox.tif")})
    T.check(res.ok and L.near(res.voxel, [1, 1, 1]) and "voxel size" in res.proc.stderr and "warning" in res.proc.stderr,
            "no voxel size anywhere: a warning and 1 um", res.why())
    tw(path("xyonly.tif"), a, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "ZYX", "unit": "micron"})
    res = imp({"file": path("xyonly.tif")})
    T.check(res.ok and L.near(res.voxel, [1, 0.5, 0.5]) and "for z" in res.proc.stderr,
            "only x and y calibrated: z falls back to 1 um with a warning naming z", f"{res.voxel} {res.why()}")
    res = imp({"file": path("novox.tif")})
    T.check(res.ok and res.attrs.get("unit") in ("micrometer", b"micrometer") and list(res.attrs.get("axes")) in
            (["r", "z", "y", "x"], [b"r", b"z", b"y", b"x"]), "axes rzyx, unit micrometer", str(res.attrs))


# ---- stores, fingerprints, memory -------------------------------------------------------

def zarr_store():
    hs = L.test_data((2, 3, 20, 24), "float32", seed=18)
    tw(path("z_hyper.tif"), hs, imagej=True, metadata={"axes": "TZYX", "spacing": 3.0, "unit": "micron"},
                     resolution=(2.0, 2.0))
    res = imp({"file": path("z_hyper.tif")}, store="zarr")
    check_array(res, hs, "store zarr: the hyperstack read back by zarr-python")
    T.check(res.ok and L.near([float(x) for x in res.attrs.get("voxel_size", [])], [3.0, 0.5, 0.5]),
            "store zarr: voxel size attribute", str(res.attrs))


def rerun():
    d = os.path.join(TMP, "rerun")
    os.makedirs(d)
    a = L.test_data((3, 10, 10), "uint16", seed=19)
    f = os.path.join(d, "in.tif")
    tw(f, a)
    cfg = L.write_config(os.path.join(d, "c.yaml"), {"raw": {"uses": "import_tiff"}}, [{"id": "s1", "input": f}])
    p1 = L.run(["run", cfg])
    p2 = L.run(["run", cfg, "--dry-run"])
    T.check(p1.returncode == 0 and p2.returncode == 0 and "reuse" in p2.stdout + p2.stderr,
            "file from the sample's input: an unchanged file is reused", L.describe(p2))
    a[1, 2, 3] += 1
    tw(f, a)
    p3 = L.run(["run", cfg, "--dry-run"])
    T.check(p3.returncode == 0 and "reuse" not in p3.stdout + p3.stderr, "a changed file's content reruns the import",
            L.describe(p3))


def memory():
    """Peak RSS stays far below the stack: planes are streamed."""
    Z, Y, X = 48, 1024, 1024
    f = path("mem.tif")
    with tifffile.TiffWriter(f) as w:
        plane = np.arange(Y * X, dtype=np.uint32).reshape(Y, X).astype(np.uint16)
        for z in range(Z):
            w.write(plane + z, contiguous=True)
    d = os.path.join(TMP, "mem")
    os.makedirs(d)
    cfg = L.write_config(os.path.join(d, "c.yaml"), {"raw": {"uses": "import_tiff", "params": {"file": f}}},
                         [{"id": "s1"}])
    # a fresh interpreter whose only child is sirenstack, so ru_maxrss is its own
    probe = ("import resource, subprocess, sys\n"
             "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, L.BIN, "run", cfg, "--threads", "2"], capture_output=True,
                         text=True, timeout=300)
    res = L.Imported(out, os.path.join(d, "out", "s1.h5"), "hdf5")
    rc, kib = (int(x) for x in out.stdout.split()) if out.stdout.strip() else (-1, 0)
    stack = Z * Y * X * 2
    T.check(rc == 0 and res.array is not None and res.array.shape == (1, Z, Y, X) and int(res.array[0, 47, 0, 5]) == 52,
            "a 96 MiB stack imports", out.stdout + out.stderr)
    if os.environ.get("SIRENSTACK_SANITIZE", "none") != "none":
        T.skip("peak RSS is below half the 96 MiB stack (streamed by plane)",
               "sanitizer build: shadow memory and ASan's quarantine of freed blocks count in the RSS")
        return
    T.check(rc == 0 and kib * 1024 < stack / 2,
            f"peak RSS {kib / 1024:.0f} MiB is below half the 96 MiB stack (streamed by plane)", out.stdout)


def main():
    for name, fn in [("element types", element_types), ("codecs", codecs), ("variants", variants), ("layouts", layouts),
                     ("multi-file OME", multi_file_ome), ("contiguous ImageJ", contiguous), ("voxel sizes", voxel_sizes),
                     ("zarr store", zarr_store), ("rerun", rerun), ("memory", memory)]:
        T.guard(name, fn)
    T.done()


main()
