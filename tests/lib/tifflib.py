"""Shared helpers of the TIFF tests (tests/stages/import, tests/formats, tests/engine), in TAP.

`T = Tap()`, then `T.check(cond, desc, detail)` per point, `T.skip(desc, why)`
for points that cannot run here (never counted as passes), `T.done()`.
The binary is $SIRENSTACK, else build/sirenstack beside the sources. Work
happens in temporary folders, removed at the end unless KEEP_TMP is set.

Independent references: the arrays the tests generate, tifffile for TIFF
structure and metadata, and lzw_decode below, a plain-Python TIFF LZW decoder
(this Debian tifffile has no imagecodecs, so it cannot decode LZW itself;
install_lzw() plugs lzw_decode into it). libtiff is what sirenstack uses, so
it is never the reference.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import yaml

import hdf5plugin  # noqa: F401 - registers blosc (32001) with h5py
import h5py
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
BUILD_ROOT = os.environ.get("BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build")
BIN = os.environ.get("SIRENSTACK") or os.path.join(BUILD_ROOT, "sirenstack")
SHARED = os.environ.get("SHARED_DATA") or os.path.join(SOURCE_ROOT, "..", "shared", "data")


sys.path.insert(0, HERE)
from taplib import Tap  # noqa: E402,F401 - the shared TAP writer


def run(args, env=None, timeout=300):
    e = dict(os.environ)
    e.pop("SIRENSTACK_CRASHPOINT", None)
    if env:
        e.update(env)
    return subprocess.run([BIN] + [str(a) for a in args], env=e, timeout=timeout, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def describe(p):
    return f"argv: {' '.join(map(str, p.args))}\nexit: {p.returncode}\nstdout: {p.stdout[-1500:]}\nstderr: {p.stderr[-2000:]}"


def write_config(path, stages, samples, store="hdf5"):
    cfg = {"version": 1, "run": {"name": "tiff", "output": "out", "store": store, "seed": 1},
           "samples": samples, "stages": stages}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None)
    return path


def esc(pattern):
    """A pattern with {z}/{r} fields as a config string ({field} is a sample field there)."""
    return pattern.replace("{", "{{").replace("}", "}}")


class Imported:
    """Result of one import_tiff run: process, array, attributes."""

    def __init__(self, proc, cont, store):
        self.proc = proc
        self.cont = cont
        self.array = None
        self.attrs = {}
        self.stage = {}
        if proc.returncode != 0 or not os.path.exists(cont):
            return
        if store == "zarr":
            import zarr
            g = zarr.open_group(cont, mode="r")
            if "raw" in g and "raw/0" in g["raw"]:  # the image group raw/raw, its array at 0
                self.array = g["raw"]["raw/0"][...]
                self.attrs = dict(g["raw"]["raw/0"].attrs)
                with open(os.path.join(cont, "raw", ".zattrs")) as f:
                    self.stage = json.load(f)
            return
        with h5py.File(cont, "r", locking=False) as f:
            if "raw" in f and "raw" in f["raw"]:
                d = f["raw"]["raw"]
                self.array = d[()]
                self.attrs = {k: d.attrs[k] for k in d.attrs}
                self.stage = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["raw"].attrs.items()}

    def stage_json(self, key):
        v = self.stage.get(key)
        return json.loads(v) if isinstance(v, str) else v

    @property
    def voxel(self):
        v = self.attrs.get("voxel_size")
        return None if v is None else [float(x) for x in v]

    @property
    def ok(self):
        return self.proc.returncode == 0 and self.array is not None

    def why(self):
        return describe(self.proc)


def import_tiff(tmp, params, sample=None, store="hdf5", extra_stages=None, name="c"):
    """Runs one import_tiff stage named raw for sample s1; returns Imported."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    s = {"id": "s1"}
    if sample:
        s.update(sample)
    stages = {"raw": {"uses": "import_tiff", "params": params}}
    if extra_stages:
        stages.update(extra_stages)
    cfg = write_config(os.path.join(d, "c.yaml"), stages, [s], store)
    p = run(["run", cfg, "--threads", "2"])
    cont = os.path.join(d, "out", "s1." + ("zarr" if store == "zarr" else "h5"))
    return Imported(p, cont, store)


def same(a, b):
    """(equal?, detail) for two arrays: dtype, shape and every value."""
    if a is None or b is None:
        return False, f"missing array ({'ours' if a is None else 'reference'})"
    if a.dtype != b.dtype or a.shape != b.shape:
        return False, f"ours {a.dtype}{a.shape} vs reference {b.dtype}{b.shape}"
    if not np.array_equal(a, b):
        bad = np.argwhere(a != b)
        return False, f"{len(bad)} values differ, first at {tuple(bad[0])}: {a[tuple(bad[0])]} vs {b[tuple(bad[0])]}"
    return True, ""


def near(a, b, rtol=1e-6):
    return a is not None and b is not None and len(a) == len(b) and all(
        abs(x - y) <= rtol * max(abs(x), abs(y)) for x, y in zip(a, b))


def test_data(shape, dtype, seed=0):
    """Values that use the type's range (negative ones for signed types)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 1000).astype(dt)
    info = np.iinfo(dt)
    lo, hi = max(info.min, -(1 << 40)), min(info.max, 1 << 40)
    return rng.integers(lo, hi, shape, endpoint=True, dtype=np.int64).astype(dt)


# ---- TIFF LZW (the reference decoder) -----------------------------------------

def lzw_decode(data, out=None):
    """TIFF LZW (codes of 9 to 12 bits, MSB first, 256 clear, 257 end, the
    width grows one code early), written from the TIFF 6.0 specification."""
    data = bytes(data) + b"\0\0\0"
    nbits_total = (len(data) - 3) * 8
    result = bytearray()
    table = [bytes([i]) for i in range(256)] + [b"", b""]
    nbits, pos, prev = 9, 0, None
    while pos + nbits <= nbits_total:
        i, off = pos >> 3, pos & 7
        word = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2]
        code = (word >> (24 - off - nbits)) & ((1 << nbits) - 1)
        pos += nbits
        if code == 256:
            del table[258:]
            nbits, prev = 9, None
            continue
        if code == 257:
            break
        if prev is None:
            entry = table[code]
        elif code < len(table):
            entry = table[code]
            table.append(prev + entry[:1])
        else:
            entry = prev + prev[:1]
            table.append(entry)
        result += entry
        prev = entry
        if len(table) + 1 >= (1 << nbits) and nbits < 12:
            nbits += 1
    return bytes(result)


def install_lzw():
    """Lets tifffile decode LZW with lzw_decode."""
    tifffile.TIFF.DECOMPRESSORS._codecs[5] = lzw_decode


# ---- writing test files --------------------------------------------------------

def write_pil(path, planes, compression):
    """Multi-page TIFF through Pillow (LZW and PackBits, which tifffile cannot
    write here). planes: uint8, uint16 or float32 arrays."""
    from PIL import Image
    ims = [Image.fromarray(p) for p in planes]
    ims[0].save(path, save_all=True, append_images=ims[1:], compression=compression)
    return path


def imagej_contiguous(path, stack, extra_description=""):
    """An ImageJ file as ImageJ writes stacks over 4 GiB: one IFD, then every
    plane back to back (data after the first IFD's strip)."""
    z = stack.shape[0]
    desc = f"ImageJ=1.53t\nimages={z}\nslices={z}\nunit=micron\nspacing=2.5\nloop=false\n{extra_description}"
    tifffile.imwrite(path, stack[0], description=desc, metadata=None, resolution=(4.0, 5.0), photometric="minisblack")
    with tifffile.TiffFile(path) as t:
        off = t.pages[0].dataoffsets[0] + t.pages[0].databytecounts[0]
    size = os.path.getsize(path)
    assert off == size, "tifffile no longer writes the strip last"
    with open(path, "ab") as f:
        f.write(stack[1:].astype(stack.dtype.newbyteorder("<")).tobytes())
    return path


def tiny_imagej(images, width, height, with_pixels=False):
    """A classic TIFF of one IFD whose ImageJ description claims `images`
    planes of width x height uint16 stored back to back after it: with no
    pixels in the file at all, or (with_pixels) with all of them."""
    desc = f"ImageJ=1.53t\nimages={images}\nslices={images}\n\0".encode()
    tags = [(256, 4, width), (257, 4, height), (258, 3, 16), (259, 3, 1), (262, 3, 1), (270, 2, None),
            (273, 4, None), (277, 3, 1), (278, 4, height), (279, 4, width * height * 2)]
    ifd_off = 8
    ifd_len = 2 + 12 * len(tags) + 4
    desc_off = ifd_off + ifd_len
    data_off = desc_off + len(desc)
    out = bytearray(b"II*\0" + struct.pack("<I", ifd_off))
    out += struct.pack("<H", len(tags))
    for tag, typ, val in tags:
        if tag == 270:
            out += struct.pack("<HHII", tag, typ, len(desc), desc_off)
        elif tag == 273:
            out += struct.pack("<HHII", tag, typ, 1, data_off)
        elif typ == 3:
            out += struct.pack("<HHIHH", tag, typ, 1, val, 0)
        else:
            out += struct.pack("<HHII", tag, typ, 1, val)
    out += struct.pack("<I", 0) + desc
    if with_pixels:
        out += bytes((i * 7) % 256 for i in range(images * width * height * 2))
    return bytes(out)
