"""Writes the generated seeds of tests/fuzz/corpus/<target>/: small real files
(tifffile, Pillow, h5py, and containers `sirenstack synth` writes) and the
adversarial cases of the project's tests (looping IFD chains, OME SizeZ
huge, negative or missing, ImageJ images=2^40, deep YAML, alias bombs,
duplicate ids, ...). Files it does not make (inputs that fuzzing found,
named regress-*) are left as they are.

    /usr/bin/python3 tests/fuzz/make_corpus.py build/sirenstack

Needs Debian's python3-numpy, python3-tifffile, python3-pil, python3-h5py.
Two runs differ only in time stamps, UUIDs and timings inside the files;
rerun it when a seed should change (the committed seeds are the corpus)."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import tifffile
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from tifflib import tiny_imagej  # noqa: E402 - the tests' own adversarial ImageJ file
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tiff_bytes(tmp, data, **kw):
    p = os.path.join(tmp, "t.tif")
    kw.setdefault("metadata", None)
    if "colormap" not in kw:
        kw.setdefault("photometric", "minisblack")
    tifffile.imwrite(p, data, **kw)
    with open(p, "rb") as f:
        return f.read()


def pil_bytes(tmp, planes, **kw):
    p = os.path.join(tmp, "p.tif")
    ims = [Image.fromarray(x) for x in planes]
    ims[0].save(p, save_all=True, append_images=ims[1:], **kw)
    with open(p, "rb") as f:
        return f.read()


def ifd_offsets(blob):
    """Offsets of the IFDs of a little-endian classic TIFF, in chain order."""
    offs, o = [], struct.unpack_from("<I", blob, 4)[0]
    while o and o not in offs and o + 2 <= len(blob):
        offs.append(o)
        n = struct.unpack_from("<H", blob, o)[0]
        o = struct.unpack_from("<I", blob, o + 2 + 12 * n)[0]
    return offs


OME_HEAD = '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" ' \
           'UUID="urn:uuid:0a0b">'


def ome(pixels_attrs, inner="", images=1):
    img = (f'<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="8" SizeY="8" '
           f'{pixels_attrs}>{inner}</Pixels></Image>')
    return OME_HEAD + img * images + "</OME>"


def tiffs(tmp):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4000, (3, 8, 8), dtype=np.uint16)
    T = "tiff_import"
    descs = {}

    good = tiff_bytes(tmp, a)
    put(T, "plain-uint16-3pages.tif", good)
    put(T, "uint8.tif", tiff_bytes(tmp, a[:2].astype(np.uint8)))
    put(T, "int8.tif", tiff_bytes(tmp, (a[:1] % 200 - 100).astype(np.int8)))
    put(T, "int16-bigendian.tif", tiff_bytes(tmp, a[:2].astype(">i2")))
    put(T, "uint32.tif", tiff_bytes(tmp, a[:1].astype(np.uint32)))
    put(T, "int32.tif", tiff_bytes(tmp, a[:1].astype(np.int32)))
    put(T, "float32.tif", tiff_bytes(tmp, a[:2].astype(np.float32)))
    put(T, "float64.tif", tiff_bytes(tmp, a[:1].astype(np.float64)))
    put(T, "bigtiff.tif", tiff_bytes(tmp, a, bigtiff=True))
    put(T, "deflate-strips.tif", tiff_bytes(tmp, a, compression="zlib", rowsperstrip=3))
    put(T, "miniswhite.tif", tiff_bytes(tmp, a[:1], photometric="miniswhite"))
    pb = (np.arange(2 * 8 * 8) % 251).astype(np.uint8).reshape(2, 8, 8)
    put(T, "packbits.tif", pil_bytes(tmp, pb, compression="packbits"))
    put(T, "lzw.tif", pil_bytes(tmp, pb, compression="tiff_lzw"))

    hs = rng.integers(0, 4000, (2, 2, 2, 4, 4), dtype=np.uint16)
    ij = tiff_bytes(tmp, hs, imagej=True, metadata={"axes": "TZCYX", "spacing": 2.5, "unit": "um"},
                    resolution=(10.0, 10.0))
    put(T, "imagej-tzcyx.tif", ij)
    put(T, "imagej-zyx.tif", tiff_bytes(tmp, a, imagej=True, metadata={"axes": "ZYX"}))
    put(T, "imagej-contiguous-3.tif", tiny_imagej(3, 4, 4, with_pixels=True))
    put(T, "imagej-images-2e40.tif", tiny_imagej(1 << 40, 4096, 4096))
    put(T, "imagej-images-9-of-3.tif", tiff_bytes(tmp, a, description="ImageJ=1.11a\nimages=9\nslices=9\n"))

    okp = os.path.join(tmp, "ok.ome.tif")
    tifffile.imwrite(okp, a, metadata={"axes": "ZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeX": 0.5})
    with tifffile.TiffFile(okp) as t:
        desc = t.pages[0].description
    with open(okp, "rb") as f:
        put(T, "ome-zyx.ome.tif", f.read())
    descs["ome-tifffile.xml"] = desc
    tzp = os.path.join(tmp, "tz.ome.tif")
    tifffile.imwrite(tzp, rng.integers(0, 9, (2, 3, 5, 5), dtype=np.uint16), photometric="minisblack",
                     metadata={"axes": "TZYX"})
    with open(tzp, "rb") as f:
        put(T, "ome-tzyx.ome.tif", f.read())
    for tag, sub in (("no-sizez", ""), ("negative-sizez", ' SizeZ="-3"'), ("sizez-three", ' SizeZ="three"')):
        d2 = re.sub(r' SizeZ="\d+"', sub, desc)
        descs[f"ome-{tag}.xml"] = d2
        put(T, f"ome-{tag}.ome.tif", tiff_bytes(tmp, a, description=d2))
    d3 = re.sub(r'SizeZ="\d+"', 'SizeZ="10000000000"', desc)
    d3 = re.sub(r'<TiffData[^>]*/>|<TiffData.*?</TiffData>', '<TiffData IFD="0" PlaneCount="3"/>', d3, flags=re.S)
    descs["ome-sizez-1e10-tiffdata.xml"] = d3
    put(T, "ome-sizez-1e10-tiffdata.ome.tif", tiff_bytes(tmp, a, description=d3))
    o10 = ome('SizeZ="5" SizeC="1" SizeT="2"')
    descs["ome-10-planes.xml"] = o10
    put(T, "ome-10-planes-of-3.ome.tif", tiff_bytes(tmp, a, description=o10))
    miss = ome('SizeZ="2" SizeC="1" SizeT="1"', '<TiffData FirstZ="1"><UUID FileName="gone.ome.tif">u</UUID></TiffData>')
    descs["ome-member-missing.xml"] = miss
    put(T, "ome-member-missing.ome.tif", tiff_bytes(tmp, a[0], description=miss))
    selfref = ome('SizeZ="3" SizeC="1" SizeT="1"',
                  '<TiffData IFD="0" PlaneCount="2"><UUID FileName="C:\\data\\in.tif">urn:uuid:0a0b</UUID></TiffData>'
                  '<TiffData FirstZ="2" IFD="2"/>')
    descs["ome-tiffdata-self.xml"] = selfref
    put(T, "ome-tiffdata-self.ome.tif", tiff_bytes(tmp, a, description=selfref))
    ch2 = ome('SizeZ="1" SizeC="3" SizeT="1" DimensionOrder="XYCZT"', '<TiffData/>', images=2)
    descs["ome-3-channels-2-images.xml"] = ch2
    put(T, "ome-3-channels-2-images.ome.tif", tiff_bytes(tmp, a, description=ch2))

    # page structures the reader refuses
    put(T, "tiled.tif", tiff_bytes(tmp, rng.integers(0, 9, (16, 16), dtype=np.uint16), tile=(16, 16)))
    rgb = rng.integers(0, 255, (3, 4, 4), dtype=np.uint8)
    put(T, "planar-separate.tif", tiff_bytes(tmp, rgb, photometric="rgb", planarconfig="separate"))
    put(T, "palette.tif", tiff_bytes(tmp, rgb[0], photometric="palette", colormap=np.zeros((3, 256), np.uint16)))
    put(T, "rgb.tif", tiff_bytes(tmp, np.moveaxis(rgb, 0, -1), photometric="rgb"))
    put(T, "bilevel.tif", tiff_bytes(tmp, a[0] > 2000))
    put(T, "int64.tif", tiff_bytes(tmp, a[:1].astype(np.int64)))
    put(T, "float16.tif", tiff_bytes(tmp, a[:1].astype(np.float16)))
    f = a[:2].astype(np.float32)
    f[1, 3, 4] = np.nan
    put(T, "float32-nan.tif", tiff_bytes(tmp, f))

    # damaged files
    put(T, "not-a-tiff.tif", "not a TIFF file\n" * 4)
    put(T, "truncated.tif", good[:len(good) - 100])
    bad = bytearray(good)
    struct.pack_into("<I", bad, 4, len(good) + 12345)
    put(T, "first-ifd-beyond-end.tif", bytes(bad))
    offs = ifd_offsets(good)
    chain = bytearray(good)
    n = struct.unpack_from("<H", chain, offs[1])[0]
    struct.pack_into("<I", chain, offs[1] + 2 + 12 * n, len(good) - 3)
    put(T, "ifd-chain-cut.tif", bytes(chain))
    for name, at, to in (("ifd-loop-3-to-2.tif", 2, 1), ("ifd-loop-1-to-1.tif", 0, 0)):
        lp = bytearray(good)
        n = struct.unpack_from("<H", lp, offs[at])[0]
        struct.pack_into("<I", lp, offs[at] + 2 + 12 * n, offs[to])
        put(T, name, bytes(lp))
    pbb = bytearray(pil_bytes(tmp, pb, compression="packbits"))
    with tifffile.TiffFile(os.path.join(tmp, "p.tif")) as t:
        o, c = t.pages[1].dataoffsets[0], t.pages[1].databytecounts[0]
    pbb[o:o + c] = np.random.default_rng(1).integers(0, 256, c, dtype=np.uint8).tobytes()
    put(T, "packbits-garbage.tif", bytes(pbb))
    zb = bytearray(tiff_bytes(tmp, a, compression="zlib"))
    with tifffile.TiffFile(os.path.join(tmp, "t.tif")) as t:
        o, c = t.pages[1].dataoffsets[0], t.pages[1].databytecounts[0]
    zb[o + 2:o + c] = bytes(rng.integers(0, 255, c - 2, dtype=np.uint8))
    put(T, "deflate-corrupt.tif", bytes(zb))

    # descriptions alone
    M = "tiff_meta"
    with tifffile.TiffFile(os.path.join(CORPUS, T, "imagej-tzcyx.tif")) as t:
        put(M, "imagej-tzcyx.txt", t.pages[0].description)
    put(M, "imagej-images-2e40.txt", "ImageJ=1.53t\nimages=1099511627776\nslices=1099511627776\n")
    put(M, "imagej-counts-overflow.txt", "ImageJ=1.53t\nimages=6\nchannels=4611686018427387904\nslices=4\nframes=2\n")
    put(M, "imagej-crlf-units.txt", "ImageJ=1.53t\r\nimages=4\r\nslices=2\r\nframes=2\r\nspacing=0.5\r\nunit=\\u00B5m\r\n"
                                    "zunit=nm\r\nloop=false\r\n")
    put(M, "imagej-no-images.txt", "  ImageJ=1.4\nslices=-3\nframes=x\nunit=" + "m" * 80 + "\n")
    for k, v in descs.items():
        put(M, k, v)
    put(M, "ome-prefixes-comments-cdata.xml",
        '<?xml version="1.0"?><!DOCTYPE ome><!-- c --><ome:OME xmlns:ome="http://www.openmicroscopy.org/Schemas/OME/'
        '2016-06" UUID=\'urn:uuid:1\'><![CDATA[<Image>]]><ome:Image ID="Image:0"><ome:Pixels DimensionOrder="XYTCZ" '
        'SizeZ = "2" SizeC="1" SizeT="3" PhysicalSizeZ="1.5" PhysicalSizeZUnit="&#181;m" PhysicalSizeX="100" '
        'PhysicalSizeXUnit="nm"><ome:TiffData IFD="1" PlaneCount="5" FirstT="1"><ome:UUID FileName="a&amp;b.ome.tif">'
        'urn:uuid:&#x31;</ome:UUID></ome:TiffData></ome:Pixels></ome:Image></ome:OME>')
    put(M, "ome-unterminated.xml", '<OME><Image><Pixels SizeZ="2')
    put(M, "ome-references.xml", '<OME UUID="&#0;&#1114112;&#x;&lt;&bogus;&#99999999999999999999;"><Image><Pixels '
                                 'SizeZ="1" SizeC="1" SizeT="1"/></Image></OME>')
    put(M, "ome-many-attributes.xml", "<OME><Image><Pixels " + " ".join(f'a{i}="{i}"' for i in range(80)) +
        ' SizeZ="2" SizeC="1" SizeT="1"/></Image></OME>')
    put(M, "ome-nested-images.xml", "<OME>" + "<Image>" * 40 + '<Pixels SizeZ="1" SizeC="1" SizeT="1"/>' +
        "</Image>" * 40 + "</OME>")
    put(M, "ome-closing-only.xml", "<OME></Image></Pixels></OME></OME><Image>")


def configs():
    C = "config"
    for d in ("tests/engine/configs/valid", "tests/engine/configs/invalid", "configs"):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            if name.endswith(".yaml"):
                with open(os.path.join(ROOT, d, name), "rb") as f:
                    put(C, f"{os.path.basename(d)}-{name}", f.read())
    head = "version: 1\nrun: {name: fuzz, output: out}\n"
    put(C, "gen-empty.yaml", "")
    put(C, "gen-binary-nul.yaml", bytes(range(256)))
    put(C, "gen-deep-lists.yaml", "version: 1\nrun: " + "[" * 2000 + "]" * 2000 + "\n")
    put(C, "gen-deep-maps.yaml", head + "samples: [{id: a}]\nstages:\n  s:\n    uses: normalize\n    params: " +
        "{a: " * 70 + "1" + "}" * 70 + "\n")
    put(C, "gen-alias-squares.yaml", "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n")
    put(C, "gen-alias-recursive.yaml", head + "samples: &s [{id: a, x: *s}]\nstages: {}\n")
    put(C, "gen-duplicate-ids.yaml", head + "samples: [{id: a}, {id: b}, {id: a}, {id: A}, {id: b}]\n"
        "stages: {s: {uses: synth_smooth}}\n")
    put(C, "gen-manifest-tsv.yaml", head + "samples: {manifest: manifests/samples.tsv}\n"
        "stages:\n  raw: {uses: import_tiff, params: {file: '{input}', voxel_size: [1, 2, 3]}}\n"
        "  n: {uses: normalize, inputs: raw.raw}\n  m: {uses: fuse_mean, inputs: {repeats: n.data}}\n")
    put(C, "gen-manifest-csv.yaml", head + "samples:\n  manifest: manifests/samples.csv\n"
        "stages:\n  s: {uses: synth, params: {phantom: nuclei, shape: [4, 8, 8]}}\n")
    put(C, "gen-substitution-braces.yaml", head + "samples: [{id: a, tag: '{{x}}'}]\nstages:\n"
        "  raw: {uses: import_hdf5, params: {file: '{{{tag}}}/{id}{', dataset: '/{nosuch}'}}\n")
    put(C, "gen-tags-and-styles.yaml", "%YAML 1.1\n---\nversion: !!int 1\nrun: {name: t, output: !!str out, threads: 0x10, "
        "seed: 0o17}\nsamples: [{id: a, repeats: !!str 4}]\nstages: {s: {uses: synth_smooth, params: {shape: "
        "[+1, 2, 3]}}}\n...\n")


def manifests():
    M = "manifest"
    for d in ("tests/engine/configs/valid/manifests", "tests/engine/configs/invalid/manifests"):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            with open(os.path.join(ROOT, d, name), "rb") as f:
                put(M, f"{d.split('/')[2]}-{name}", f.read())
    put(M, "gen-empty.tsv", "")
    put(M, "gen-nul.tsv", "id\tinput\na\0b\tx\n")
    put(M, "gen-duplicate-ids.tsv", "id\tx\n" + "".join(f"s{i % 7}\t{i}\n" for i in range(20)))
    put(M, "gen-bad-ids.csv", 'id,voxel_size,repeats\n"a b",1 1 1,1\n../x,1x1x1,0\n' + "a" * 120 +
        ',"1,1",100001\nok,1e999 1 1,-1\nok2,nan 1 1,2\n')
    put(M, "gen-quotes.csv", 'id,"in""put",x\n"a","multi\nline ""quoted""",  "q" trailing\n"b,c",,\n"open')
    put(M, "gen-cr-only.csv", "id,x\ra,1\rb,2\r")
    put(M, "gen-wide-header.tsv", "\t".join(["id"] + [f"c{i}" for i in range(300)] + ["id"]) + "\n" +
        "\t".join(str(i) for i in range(302)) + "\n")


def synth(sirenstack, tmp, name, *args):
    out = os.path.join(tmp, name)
    subprocess.run([sirenstack, "synth", "--shape", "2,4,4", "--repeats", "2", "--seed", "1", *args, "-o", out],
                   check=True, capture_output=True, cwd=tmp)
    return out


def pack(root, skip=(".sirenstack/lock", ".sirenstack/inputs.json")):
    """A folder as the archive fuzz_zarr_meta reads ("--- NAME" lines)."""
    out = bytearray()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            rel = os.path.relpath(p, root)
            if rel in skip:
                continue
            with open(p, "rb") as f:
                out += b"--- " + rel.encode() + b"\n" + f.read() + b"\n"
    return bytes(out)


def unpack(blob):
    files, name = {}, None
    for part in re.split(rb"(?m)^--- ", blob)[1:]:
        head, _, body = part.partition(b"\n")
        files[head.decode()] = body[:-1] if body.endswith(b"\n") else body
    return files


def repack(files):
    return b"".join(b"--- " + k.encode() + b"\n" + v + b"\n" for k, v in files.items())


def zarrs(sirenstack, tmp):
    Z = "zarr_meta"
    base = pack(synth(sirenstack, tmp, "lz4.zarr"))
    put(Z, "synth-blosc-lz4.txt", base)
    put(Z, "synth-gzip.txt", pack(synth(sirenstack, tmp, "gz.zarr", "--compression", "gzip")))
    put(Z, "synth-none.txt", pack(synth(sirenstack, tmp, "none.zarr", "--compression", "none")))
    put(Z, "layout-v1-fixture.txt", pack(os.path.join(ROOT, "tests/store/zarr-v1/out/s1.zarr")))
    # the variants keep one image and one table of the stage
    files = {k: v for k, v in unpack(base).items() if not re.match(r"synth/(labels|truth|artifacts)/", k)}
    files["OME/.zattrs"] = b'{"series": ["synth/repeats"]}'
    arr = "synth/repeats/0/.zarray"
    za = json.loads(files[arr])

    def variant(name, changes):
        f = dict(files)
        for k, v in changes.items():
            if v is None:
                f.pop(k, None)
            else:
                f[k] = v if isinstance(v, bytes) else json.dumps(v).encode()
        put(Z, name, repack(f))

    def zarray(**kw):
        z = dict(za)
        z.update(kw)
        return json.dumps(z).encode()

    variant("layout-version-99.txt", {".zattrs": {"sirenstack": {"layout_version": 99, "format": "zarr"}}})
    variant("zarr-format-3.txt", {".zgroup": {"zarr_format": 3}})
    variant("order-not-a-list.txt", {".sirenstack/order.json": {"synth": 1}})
    variant("series-not-a-list.txt", {"OME/.zattrs": {"series": "synth/repeats"}})
    files2 = dict(files)
    files2["OME/.zattrs"] = b'{"series": ["nosuch/x", 7, "synth/repeats", "synth/repeats"]}'
    put(Z, "series-dangling.txt", repack(files2))

    def zvariant(name, text):
        f = dict(files)
        f[arr] = text
        put(Z, name, repack(f))

    zvariant("shape-huge-chunk-1.txt", zarray(shape=[1 << 40, 2, 4, 4], chunks=[1, 1, 4, 4]))
    zvariant("chunks-2e31.txt", zarray(chunks=[1, 1, 1 << 16, 1 << 15]))
    zvariant("shape-negative.txt", zarray(shape=[2, -1, 4, 4]))
    zvariant("rank-9.txt", zarray(shape=[1] * 9, chunks=[1] * 9))
    zvariant("dtype-bigendian.txt", zarray(dtype=">u2"))
    zvariant("dtype-object.txt", zarray(dtype="|O"))
    zvariant("order-F.txt", zarray(order="F"))
    zvariant("filters.txt", zarray(filters=[{"id": "delta"}]))
    zvariant("compressor-lzma.txt", zarray(compressor={"id": "lzma"}))
    zvariant("compressor-blosc-bad.txt", zarray(compressor={"id": "blosc", "cname": 5, "clevel": "x"}))
    zvariant("fill-nan.txt", zarray(fill_value="NaN"))
    zvariant("separator-bad.txt", zarray(dimension_separator="-"))
    zvariant("not-json.txt", b'{"zarr_format": 2, "shape": [2,')
    zvariant("json-deep.txt", b"[" * 2100 + b"]" * 2100)
    f = dict(files)
    chunk = "synth/repeats/0/0/0/0/0"
    f[chunk] = f[chunk][: len(f[chunk]) // 2]
    put(Z, "chunk-truncated.txt", repack(f))
    f = dict(files)
    f[chunk] = b"\x02\x01\x21\x02" + struct.pack("<III", 1 << 30, 1 << 30, 1 << 30) + b"\0" * 16
    put(Z, "chunk-blosc-header-lies.txt", repack(f))
    f = dict(files)
    f.pop(chunk)
    put(Z, "chunk-missing.txt", repack(f))
    tab = "synth/spines/.zarray"
    t = json.loads(files[tab])
    for name, change in (("table-fill-bad.txt", {"fill_value": "AAAA"}),
                         ("table-string-0.txt", {"dtype": [["id", "|S0"]]}),
                         ("table-rows-huge.txt", {"shape": [1 << 40], "chunks": [1]}),
                         ("table-field-not-pair.txt", {"dtype": [["a"], 3, ["b", "<i8", 1]]})):
        f = dict(files)
        t2 = dict(t)
        t2.update(change)
        f[tab] = json.dumps(t2).encode()
        put(Z, name, repack(f))
    f = dict(files)
    f["synth/repeats/.zattrs"] = b'{"multiscales": [{"datasets": [{"path": "../../.."}]}]}'
    put(Z, "multiscales-path-escape.txt", repack(f))
    f = dict(files)
    f["synth/repeats/0/.zattrs"] = b'{"axes": ["r", "zz", 1], "voxel_size": [1, "a"], "unit": 5}'
    put(Z, "array-attrs-malformed.txt", repack(f))


def hdf5s(sirenstack, tmp):
    H = "hdf5_open"

    def index(path, links, version=2):
        with h5py.File(path, "w", track_order=True) as f:
            f.attrs["sirenstack_layout_version"] = np.int64(version)
            f.attrs["sirenstack_format"] = "hdf5"
            for name in links:
                f[name] = h5py.ExternalLink("c.h5.d/stages/st.h5", "/")
        with open(path, "rb") as fh:
            return fh.read()

    src = synth(sirenstack, tmp, "s.h5", "--compression", "gzip")
    stage_files = os.listdir(src + ".d/stages")
    with open(os.path.join(src + ".d/stages", stage_files[0]), "rb") as f:
        stage = f.read()
    idx = index(os.path.join(tmp, "i.h5"), ["synth"])
    put(H, "synth-gzip.h5", idx + stage)
    # a small stage file of every attribute and dataset kind the store reads
    sp = os.path.join(tmp, "st.h5")
    with h5py.File(sp, "w") as f:
        f.attrs["stage_type"] = "normalize"
        f.attrs["stage_version"] = np.int64(1)
        f.attrs["params"] = '{"p_low": 2, "nested": [1, "a"]}'
        f.attrs["voxel"] = np.array([1.0, 0.5, 0.5])
        f.attrs["names"] = np.array(["a", "bc"], dtype=h5py.string_dtype())
        f.attrs["fixed"] = np.bytes_(b"fixed\0pad")
        f.attrs["broken_json"] = "{not json"
        f.attrs["sirenstack_committed"] = np.int64(1)
        d = f.create_dataset("data", data=np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4), chunks=(1, 3, 4),
                             compression="gzip", shuffle=True)
        d.attrs["axes"] = np.array(["z", "y", "x"], dtype=h5py.string_dtype())
        d.attrs["voxel_size"] = np.array([2.0, 0.1, 0.1])
        d.attrs["unit"] = "micrometer"
        r = f.create_dataset("one_repeat", data=np.ones((1, 2, 2, 2), np.uint16), chunks=(1, 1, 2, 2))
        r.attrs["axes"] = np.array(["r", "z", "y", "x"], dtype=h5py.string_dtype())
        rec = np.zeros(3, dtype=[("method", "S64"), ("psnr", "<f8"), ("n", "<i8")])
        rec["method"] = [b"mean", b"median", b"siren"]
        rec["psnr"] = [30.5, 31.0, np.nan]
        t = f.create_dataset("summary", data=rec)
        t.attrs["sirenstack_table"] = np.int64(1)
        f.create_dataset("empty", shape=(0, 4), dtype=np.int64)
        f.create_dataset("scalar", data=np.int32(5))
        f.create_dataset("odd_type", data=np.zeros((2, 2), dtype=np.complex64))
        f.create_group("group")
    with open(sp, "rb") as fh:
        small = fh.read()
    put(H, "kinds-of-attrs-and-datasets.h5", index(os.path.join(tmp, "i2.h5"), ["norm", "again"]) + small)
    put(H, "layout-version-3.h5", index(os.path.join(tmp, "i3.h5"), ["norm"], version=3) + small)
    put(H, "index-only.h5", index(os.path.join(tmp, "i4.h5"), ["norm"]))
    put(H, "stage-truncated.h5", idx + stage[: len(stage) // 3])
    with h5py.File(os.path.join(tmp, "plain.h5"), "w") as f:
        f["x"] = np.zeros(3)
    with open(os.path.join(tmp, "plain.h5"), "rb") as fh:
        put(H, "not-a-container.h5", fh.read())


def main():
    sirenstack = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/sirenstack"))
    tmp = tempfile.mkdtemp()
    try:
        tiffs(tmp)
        configs()
        manifests()
        zarrs(sirenstack, tmp)
        hdf5s(sirenstack, tmp)
    finally:
        shutil.rmtree(tmp)
    total = 0
    for dirpath, _, filenames in os.walk(CORPUS):
        for fn in filenames:
            total += os.path.getsize(os.path.join(dirpath, fn))
    print(f"corpus: {total} bytes")


if __name__ == "__main__":
    main()
