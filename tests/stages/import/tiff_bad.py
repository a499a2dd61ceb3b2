#!/usr/bin/python3
"""Bad TIFF input gets a clear error, never a crash (DESIGN.md invariant 4).

Each case runs import_tiff on one bad input and checks: the exit status (3
for input data, 2 for config problems); no signal; stderr holds exactly one
'error:' line, naming the file (or pattern) and the problem; nothing is
committed (no 'raw' stage in the container, no temporaries left); and, at the
end, that no input file was changed (invariant 3).
"""
import hashlib
import os
import re
import resource
import struct
import subprocess
import sys
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

import tifflib as L  # noqa: E402
from tifflib import h5py  # noqa: E402

T = L.Tap()
TMP = T.tmpdir("bad")
DATA = os.path.join(TMP, "data")
os.makedirs(DATA)
n_case = [0]


def path(*names):
    return os.path.join(DATA, *names)


def tw(file, data, **kw):
    kw.setdefault("photometric", "minisblack")
    tifffile.imwrite(file, data, **kw)
    return file


def committed_stages(cont):
    if not os.path.exists(cont):
        return set()
    with h5py.File(cont, "r", locking=False) as f:
        return set(f.keys())


def leftovers(root):
    return [os.path.join(r, n) for r, ds, fs in os.walk(root) for n in ds + fs if ".tmp" in n]


def case(desc, params, words, sample=None, status=3, names=None):
    """One bad input: exit status, one error line naming `names` and `words`, no commit."""
    n_case[0] += 1
    before = hash_tree(DATA)
    res = L.import_tiff(TMP, params, sample, name=f"case{n_case[0]}")
    if hash_tree(DATA) != before:
        CHANGED.append(desc)
    p = res.proc
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    msg = errs[0] if errs else ""
    if names is None:
        src = params.get("pattern") or params.get("file") or ""
        names = [os.path.basename(src.replace("{{", "{").replace("}}", "}"))]
    # config errors found by validation are listed above the error line
    text = p.stderr if status == 2 else msg
    missing = [w for w in list(words) + list(names) if w.lower() not in text.lower()]
    cont = os.path.join(os.path.dirname(os.path.dirname(res.cont)), "out", "s1.h5")
    stray = leftovers(os.path.dirname(cont)) if os.path.isdir(os.path.dirname(cont)) else []
    ok = p.returncode == status and len(errs) == 1 and not missing and "raw" not in committed_stages(cont) and not stray
    T.check(ok, f"{desc}: exit {status}, one error line naming the file and the problem, nothing committed",
            f"missing in the message: {missing}\nleftovers: {stray}\n{L.describe(p)}")


def hash_tree(root):
    h = {}
    for r, _, fs in os.walk(root):
        for n in fs:
            with open(os.path.join(r, n), "rb") as f:
                h[os.path.join(r, n)] = hashlib.sha256(f.read()).hexdigest()
    return h



def zero_strip_tiff(file, width, height, rows=50, pad=100000):
    """A valid deflate TIFF of one width x height uint16 plane of zeros whose
    strips all point at the same few compressed bytes: a plane of gigabytes in
    a file of kilobytes (padded so the size check of a plane against its file
    lets it through)."""
    blob = zlib.compress(bytes(width * rows * 2), 9)
    n = (height + rows - 1) // rows
    out = bytearray(b"II*\0" + struct.pack("<I", 0)) + bytes(pad)
    at = len(out)
    out += blob
    offsets = len(out)
    out += struct.pack(f"<{n}I", *([at] * n))
    counts = len(out)
    out += struct.pack(f"<{n}I", *([len(blob)] * n))
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 16), (259, 3, 1, 8), (262, 3, 1, 1),
            (273, 4, n, offsets), (277, 3, 1, 1), (278, 4, 1, rows), (279, 4, n, counts), (339, 3, 1, 1)]
    ifd = len(out)
    out += struct.pack("<H", len(tags))
    for tag, typ, count, value in tags:
        out += struct.pack("<HHIHH", tag, typ, count, value, 0) if typ == 3 else struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    out[4:8] = struct.pack("<I", ifd)
    with open(file, "wb") as f:
        f.write(out)
    return file


def out_of_memory():
    """Exit 71 names what could not be allocated, for which file, and how much."""
    if os.environ.get("SIRENSTACK_SANITIZE", "") not in ("", "none"):
        T.skip("out of memory: exit 71 names the plane, the file and the size",
               "a sanitizer build reserves terabytes of address space, so an address-space limit cannot be set")
        return
    big = zero_strip_tiff(path("huge-plane.tif"), 40000, 40000)
    d = os.path.join(TMP, "nomem")
    os.makedirs(d)
    cfg = L.write_config(os.path.join(d, "c.yaml"), {"raw": {"uses": "import_tiff", "params": {"file": big}}},
                         [{"id": "s1"}])
    limit = 2 << 30  # the plane alone is 3.0 GiB

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    p = subprocess.run([L.BIN, "run", cfg, "--threads", "2"], capture_output=True, text=True, preexec_fn=cap,
                       stdin=subprocess.DEVNULL, timeout=300)
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    want = "error: s1/raw: out of memory for one plane of 40000 x 40000 uint16 of " + big + " (3.0 GiB)"
    T.check(p.returncode == 71 and errs == [want] and "raw" not in committed_stages(os.path.join(d, "out", "s1.h5")),
            "out of memory: exit 71, one error line naming the plane, the file and the size, nothing committed",
            f"expected: {want}\n{L.describe(p)}")

def main():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4000, (3, 32, 32), dtype=np.uint16)

    # page structures the reader refuses
    case("tiled TIFF", {"file": tw(path("tiled.tif"), a, tile=(16, 16))}, ["tiled"])
    rgb = rng.integers(0, 255, (3, 32, 32), dtype=np.uint8)
    case("planar configuration 2", {"file": tw(path("planar.tif"), rgb, photometric="rgb", planarconfig="separate")},
         ["planar configuration 2"])
    cmap = np.zeros((3, 256), np.uint16)
    case("palette image", {"file": tw(path("palette.tif"), rgb[0], photometric="palette", colormap=cmap)}, ["palette"])
    case("RGB (3 samples per pixel)", {"file": tw(path("rgb.tif"), np.moveaxis(rgb, 0, -1), photometric="rgb")},
         ["3 samples per pixel"])
    case("1-bit (bilevel) TIFF", {"file": tw(path("bits1.tif"), a[0] > 2000)}, ["1-bit", "unsupported"])
    case("64-bit integers", {"file": tw(path("int64.tif"), a.astype(np.int64))}, ["64-bit signed", "unsupported"])
    case("16-bit floats", {"file": tw(path("f16.tif"), a.astype(np.float16))}, ["16-bit float", "unsupported"])
    f = a.astype(np.float32)
    f[1, 3, 4] = np.nan
    case("NaN in a float32 TIFF", {"file": tw(path("nan.tif"), f)}, ["NaN", "page 1"])

    # damaged files
    with open(path("text.tif"), "w") as fh:
        fh.write("not a TIFF file\n" * 50)
    case("not a TIFF at all", {"file": path("text.tif")}, ["cannot open as TIFF"])
    whole = open(tw(path("good.tif"), a), "rb").read()
    with open(path("trunc.tif"), "wb") as fh:
        fh.write(whole[: len(whole) - 1000])
    case("truncated TIFF (last page cut short)", {"file": path("trunc.tif")}, ["truncated"])
    bad_ifd = bytearray(whole)
    struct.pack_into("<I", bad_ifd, 4, len(whole) + 12345)  # first IFD beyond the end
    with open(path("badifd.tif"), "wb") as fh:
        fh.write(bad_ifd)
    case("corrupt header (first IFD beyond the end)", {"file": path("badifd.tif")}, ["cannot open as TIFF"])
    with tifffile.TiffFile(path("good.tif")) as t:
        ifd1 = t.pages[1].offset
    chain = bytearray(whole)
    ntags = struct.unpack_from("<H", chain, ifd1)[0]
    struct.pack_into("<I", chain, ifd1 + 2 + 12 * ntags, len(whole) - 3)  # next IFD: 3 bytes before the end
    with open(path("badchain.tif"), "wb") as fh:
        fh.write(chain)
    case("corrupt IFD chain (third IFD cut off)", {"file": path("badchain.tif")}, ["corrupt", "IFD"])
    # IFD chains that loop back: libtiff stops quietly, which read as fewer planes
    with tifffile.TiffFile(path("good.tif")) as t:
        offs = [pg.offset for pg in t.pages]
    for name, at, to in (("loop3to2.tif", 2, 1), ("loop1to1.tif", 0, 0)):
        lp = bytearray(whole)
        n = struct.unpack_from("<H", lp, offs[at])[0]
        struct.pack_into("<I", lp, offs[at] + 2 + 12 * n, offs[to])
        with open(path(name), "wb") as fh:
            fh.write(lp)
        case(f"IFD chain looping from page {at + 1} back to page {to + 1}", {"file": path(name)},
             ["IFD chain loops", f"page {at + 1}"])

    # PackBits strips of garbage: libtiff's decoder discards bytes with a warning
    from PIL import Image
    pb = (np.arange(4 * 32 * 40) % 251).astype(np.uint8).reshape(4, 32, 40)
    ims = [Image.fromarray(x) for x in pb]
    ims[0].save(path("packbits.tif"), compression="packbits", save_all=True, append_images=ims[1:])
    with tifffile.TiffFile(path("packbits.tif")) as t:
        T.check(np.array_equal(t.asarray(), pb) and t.pages[0].compression == 32773, "a PackBits fixture reads back")
        offs2, cnts2 = t.pages[2].dataoffsets, t.pages[2].databytecounts
    blob = bytearray(open(path("packbits.tif"), "rb").read())
    grng = np.random.default_rng(1)
    for o, c in zip(offs2, cnts2):
        blob[o:o + c] = grng.integers(0, 256, c, dtype=np.uint8).tobytes()
    with open(path("packbits_bad.tif"), "wb") as fh:
        fh.write(blob)
    case("PackBits strips of garbage (the decoder warns)", {"file": path("packbits_bad.tif")},
         ["page 2", "does not decode cleanly"])

    # OME-XML whose plane counts are missing or garbage
    tw(path("ome_ok.ome.tif"), a, metadata={"axes": "ZYX"})
    with tifffile.TiffFile(path("ome_ok.ome.tif")) as t:
        desc = t.pages[0].description
    for tag, sub, words in (("nosz", "", "has no SizeZ"), ("negsz", ' SizeZ="-3"', 'SizeZ="-3" is not'),
                            ("nansz", ' SizeZ="three"', 'SizeZ="three" is not')):
        d2 = re.sub(r' SizeZ="\d+"', sub, desc)
        tw(path(f"{tag}.ome.tif"), a, description=d2, metadata=None)
        case(f"OME-TIFF whose <Pixels> {words}", {"file": path(f"{tag}.ome.tif")}, ["invalid OME-XML", words])

    # counts that a tiny file claims must not size allocations
    d3 = re.sub(r'SizeZ="\d+"', 'SizeZ="10000000000"', desc)
    d3 = re.sub(r'<TiffData[^>]*/>|<TiffData.*?</TiffData>', '<TiffData IFD="0" PlaneCount="3"/>', d3, flags=re.S)
    tw(path("huge_z.ome.tif"), a, description=d3, metadata=None)
    case("OME-TIFF of a few KB claiming SizeZ=1e10 with TiffData", {"file": path("huge_z.ome.tif")},
         ["10000000000 planes", "bytes of its file set"])
    with open(path("imagej_2e40.tif"), "wb") as fh:
        fh.write(L.tiny_imagej(1 << 40, 4096, 4096))
    case("a 300-byte ImageJ file claiming 2^40 images of 4096 x 4096", {"file": path("imagej_2e40.tif")},
         ["1099511627776 images", "1 page"])
    # found by fuzzing (tests/fuzz/corpus/tiff_import/regress-*): the plane
    # buffer was allocated (2 GiB) before any strip was read
    with open(path("plane_2gib.tif"), "wb") as fh:
        fh.write(L.tiny_imagej(1, 524288, 2048))
    case("a 300-byte TIFF claiming one uncompressed 2048 x 524288 uint16 plane", {"file": path("plane_2gib.tif")},
         ["2147483648 bytes, uncompressed", "more than the file's"])

    z = tw(path("zcorrupt.tif"), a, compression="zlib")
    with tifffile.TiffFile(z) as t:
        off, cnt = t.pages[1].dataoffsets[0], t.pages[1].databytecounts[0]
    blob = bytearray(open(z, "rb").read())
    blob[off + 2:off + cnt] = bytes(rng.integers(0, 255, cnt - 2, dtype=np.uint8))
    with open(path("zcorrupt.tif"), "wb") as fh:
        fh.write(blob)
    case("corrupt Deflate data", {"file": path("zcorrupt.tif")}, ["corrupt", "page 1"])

    # metadata that promises more than the file holds
    case("ImageJ images=9 but 3 pages", {"file": tw(path("ij9.tif"), a, description="ImageJ=1.11a\nimages=9\nslices=9\n",
                                                    metadata=None)}, ["claims 9 images", "3 pages"])
    ome = ('<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0">'
           '<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="32" SizeY="32" SizeZ="5" SizeC="1" '
           'SizeT="2"/></Image></OME>')
    case("OME SizeZ x SizeT = 10 but 3 pages", {"file": tw(path("ome10.ome.tif"), a, description=ome, metadata=None)},
         ["10 planes", "3 page"])
    ome_missing = ome.replace('SizeT="2"/>', 'SizeT="1"><TiffData FirstZ="1"><UUID FileName="gone.ome.tif">u</UUID>'
                              '</TiffData></Pixels>').replace('SizeZ="5"', 'SizeZ="2"')
    tw(path("omeset.ome.tif"), a[0], description=ome_missing, metadata=None)
    case("OME TiffData naming a missing file", {"file": path("omeset.ome.tif")}, ["gone.ome.tif"], names=[])
    hs = rng.integers(0, 4000, (3, 2, 2, 16, 16), dtype=np.uint16)
    tw(path("ch2.tif"), hs, imagej=True, metadata={"axes": "TZCYX"})
    case("2 channels and no 'channel'", {"file": path("ch2.tif")}, ["2 channels", "channel"])
    case("channel 3 of 2", {"file": path("ch2.tif"), "channel": 3}, ["channel 3"])
    case("sample declares 4 repeats, hyperstack holds 3", {"file": path("ch2.tif"), "channel": 0}, ["4 repeats", "3"],
         sample={"repeats": 4})
    case("interleaved: 3 pages do not divide into 2 repeats", {"file": path("good.tif"), "repeats_layout": "interleaved",
                                                               "repeats": 2}, ["do not divide"])
    case("interleaved without a repeat count", {"file": path("good.tif"), "repeats_layout": "interleaved"},
         ["repeats", "sample s1"], status=2, names=[])
    case("4 declared repeats, plain file, no layout", {"file": path("good.tif")}, ["4 repeats", "repeats_layout"],
         sample={"repeats": 4})
    case("repeats_layout time on an ImageJ stack without frames",
         {"file": tw(path("ijz.tif"), a, imagej=True, metadata={"axes": "ZYX"}), "repeats_layout": "time"},
         ["no time axis"])
    case("missing file", {"file": path("nosuch.tif")}, ["nosuch.tif"])

    # folders and patterns
    os.makedirs(path("mixed"))
    tw(path("mixed", "p1.tif"), a[0])
    tw(path("mixed", "p2.tif"), a[0, :, :31])
    case("folder with mismatched plane sizes", {"file": None, "pattern": path("mixed", "p*.tif")},
         ["p2.tif", "32x31", "32x32"], names=[])
    os.makedirs(path("mixtype"))
    tw(path("mixtype", "p1.tif"), a[0])
    tw(path("mixtype", "p2.tif"), a[0].astype(np.uint8))
    case("folder with mismatched element types", {"file": None, "pattern": path("mixtype", "p*.tif")},
         ["p2.tif", "uint8", "uint16"], names=[])
    case("glob matching nothing", {"file": None, "pattern": path("mixed", "q*.tif")}, ["matches no file"])
    os.makedirs(path("gap"))
    for zz in (1, 2, 4):
        for r in (1, 2):
            tw(path("gap", f"img_{zz:04d}_{r:04d}.tif"), a[0])
    case("pattern skipping z = 3", {"file": None, "pattern": L.esc(path("gap", "img_{z:04d}_{r:04d}.tif"))},
         ["no file for z=3", "skip"])
    os.remove(path("gap", "img_0002_0002.tif"))
    tw(path("gap", "img_0003_0001.tif"), a[0])
    tw(path("gap", "img_0003_0002.tif"), a[0])
    tw(path("gap", "img_0004_0002.tif"), a[0])
    case("pattern missing one (z, r) pair", {"file": None, "pattern": L.esc(path("gap", "img_{z:04d}_{r:04d}.tif"))},
         ["no file for z=2 r=2"])
    os.makedirs(path("late"))
    for zz in (5, 6):
        tw(path("late", f"s{zz}.tif"), a[0])
    case("pattern starting at 5", {"file": None, "pattern": L.esc(path("late", "s{z}.tif"))}, ["5", "not 0 or 1"])
    case("pattern with index_base 1 starting at 5",
         {"file": None, "pattern": L.esc(path("late", "s{z}.tif")), "index_base": "1"}, ["no file for z=1"])
    os.makedirs(path("dup"))
    tw(path("dup", "a_1x.tif"), a[0])
    tw(path("dup", "a_1y.tif"), a[0])
    case("two files for one index", {"file": None, "pattern": L.esc(path("dup", "a_{z}*.tif"))}, ["two files"])
    os.makedirs(path("multi"))
    tw(path("multi", "m_1.tif"), a)
    tw(path("multi", "m_2.tif"), a)
    case("pattern layout with multi-page files", {"file": None, "pattern": L.esc(path("multi", "m_{z}.tif"))},
         ["3 pages", "one plane"], names=["m_1.tif"])
    tw(path("multi", "r_0.tif"), a)
    tw(path("multi", "r_1.tif"), a[:2])
    case("one file per repeat with different z counts", {"file": None, "pattern": L.esc(path("multi", "r_{r}.tif"))},
         ["2 planes", "3"], names=["r_1.tif"])
    case("repeats_layout files without {r}",
         {"file": None, "pattern": L.esc(path("multi", "m_{z}.tif")), "repeats_layout": "files"}, ["{r}"], status=2)
    case("repeats_layout time with a pattern", {"file": None, "pattern": path("mixed", "p*.tif"), "repeats_layout": "time"},
         ["time"], status=2)

    # config-time errors (validation: exit 2 before anything runs)
    case("both 'file' and 'pattern'", {"file": path("good.tif"), "pattern": path("mixed", "p*.tif")},
         ["either 'file'"], status=2, names=[])
    case("neither 'file' nor 'pattern'", {"file": None}, ["either 'file'"], status=2, names=[])
    case("unknown pattern field written {{q}}", {"file": None, "pattern": L.esc(path("late", "s{q}.tif"))},
         ["{z}"], status=2, names=[])
    os.makedirs(path("chan"))
    for cc in (0, 1):
        tw(path("chan", f"c{cc}_z1.tif"), a[0])
    case("pattern with two {c} values and no 'channel'", {"file": None, "pattern": path("chan", "c{c}_z{z}.tif")},
         ["{c}", "channel"])
    case("pattern with no file for {c}=5", {"file": None, "pattern": path("chan", "c{c}_z{z}.tif"), "channel": 5},
         ["{c}=5"])

    out_of_memory()
    T.check(not CHANGED and n_case[0] > 40, f"no input file changed by the {n_case[0]} failed imports", str(CHANGED))
    T.done()


CHANGED = []
main()
