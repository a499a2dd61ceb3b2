#!/usr/bin/python3
"""TIFF throughput for scripts/bench: import_tiff and `sirenstack export -o
.tif` against tifffile doing the same in the same run.

usage: bench_tiff.py SIRENSTACK WORKDIR Z Y X REPEATS

A Z x Y x X uint16 stack (smooth background, noise, bright blobs) is written
once as an uncompressed multi-page TIFF by tifffile. Each repeat then runs, each
in its own process:
  import  ours: `sirenstack run` with one import_tiff stage (HDF5 container,
          blosc lz4); the time is the stage's own `seconds` attribute.
          peers: tifffile.imread alone; tifffile.imread + h5py writing the same
          container-like dataset (one-plane chunks, blosc lz4/5/shuffle).
  export  ours: `sirenstack export CONTAINER raw/raw -o x.tif` (ImageJ
          hyperstack), wall time of the process.
          peers: tifffile.imwrite(imagej=True) of an array already in memory;
          h5py reading the container's array + tifffile.imwrite.
MB = 10^6 bytes of pixels; medians over the repeats; reads come from the page
cache. Exits non-zero only when a program fails or the data disagree.
"""
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

BIN, WORK = sys.argv[1], sys.argv[2]
Z, Y, X, REPEATS = (int(v) for v in sys.argv[3:7])
PY = sys.executable
NBYTES = Z * Y * X * 2

PEER = r"""
import sys, time
import numpy as np, tifffile, h5py, hdf5plugin
op, src, dst = sys.argv[1:4]
t0 = time.perf_counter()
if op == "imread":
    a = tifffile.imread(src)
elif op == "imread+h5py":
    a = tifffile.imread(src)
    with h5py.File(dst, "w") as f:
        f.create_dataset("raw", data=a[None], chunks=(1, 1) + a.shape[1:],
                         **hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
elif op == "imwrite":
    with h5py.File(src, "r") as f:
        a = f["raw/raw"][0]
    t0 = time.perf_counter()
    tifffile.imwrite(dst, a, imagej=True, metadata={"axes": "ZYX"})
elif op == "h5py+imwrite":
    with h5py.File(src, "r") as f:
        a = f["raw/raw"][0]
    tifffile.imwrite(dst, a, imagej=True, metadata={"axes": "ZYX"})
print(time.perf_counter() - t0, int(a.sum(dtype=np.uint64)))
"""


def stack():
    rng = np.random.default_rng(1)
    zz, yy, xx = np.meshgrid(np.linspace(0, 1, Z), np.linspace(0, 1, Y), np.linspace(0, 1, X), indexing="ij",
                             sparse=True)
    a = 300 + 200 * np.sin(3 * xx + 2 * yy + zz)
    a = a + rng.normal(0, 20, (Z, Y, X))
    for _ in range(200):
        cz, cy, cx = rng.integers(0, Z), rng.integers(0, Y), rng.integers(0, X)
        a[max(cz - 2, 0):cz + 2, max(cy - 6, 0):cy + 6, max(cx - 6, 0):cx + 6] += 2000
    return np.clip(a, 0, 65535).astype(np.uint16)


def peer(op, src, dst):
    p = subprocess.run([PY, "-c", PEER, op, src, dst], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench: peer {op} failed: {p.stderr[-500:]}")
    secs, total = p.stdout.split()
    return float(secs), int(total)


def main():
    import h5py
    import hdf5plugin  # noqa: F401
    import tifffile
    os.makedirs(WORK, exist_ok=True)
    src = os.path.join(WORK, "stack.tif")
    data = stack()
    checksum = int(data.sum(dtype=np.uint64))
    tifffile.imwrite(src, data, photometric="minisblack")
    del data
    cfg = os.path.join(WORK, "import.yaml")
    with open(cfg, "w") as f:
        json.dump({"version": 1, "run": {"name": "bench", "output": "out"}, "samples": [{"id": "s"}],
                   "stages": {"raw": {"uses": "import_tiff", "params": {"file": src, "voxel_size": [2, 0.5, 0.5]}}}}, f)
    cont = os.path.join(WORK, "out", "s.h5")
    rows = {k: [] for k in ("ours_import", "ours_import_wall", "imread", "imread+h5py", "ours_export", "imwrite",
                            "h5py+imwrite")}
    errors = []
    threads = str(os.cpu_count() or 1)
    for rep in range(REPEATS):
        shutil.rmtree(os.path.join(WORK, "out"), ignore_errors=True)
        t0 = time.perf_counter()
        p = subprocess.run([BIN, "run", cfg, "-q", "--threads", threads], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"bench: sirenstack run failed: {p.stderr[-500:]}")
        with h5py.File(cont, "r") as f:
            rows["ours_import"].append(float(f["raw"].attrs["seconds"]))
            if rep == 0 and int(f["raw/raw"][0].sum(dtype=np.uint64)) != checksum:
                errors.append("the imported stack differs from the TIFF")
        rows["ours_import_wall"].append(wall)
        for op in ("imread", "imread+h5py"):
            secs, total = peer(op, src, os.path.join(WORK, "peer.h5"))
            rows[op].append(secs)
            if total != checksum:
                errors.append(f"peer {op} read other data")
        out = os.path.join(WORK, "ours.tif")
        t0 = time.perf_counter()
        p = subprocess.run([BIN, "export", cont, "raw/raw", "-o", out], capture_output=True, text=True)
        rows["ours_export"].append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"bench: sirenstack export failed: {p.stderr[-500:]}")
        if rep == 0 and int(tifffile.imread(out).sum(dtype=np.uint64)) != checksum:
            errors.append("the exported TIFF differs from the container")
        for op in ("imwrite", "h5py+imwrite"):
            secs, total = peer(op, cont, os.path.join(WORK, "peer.tif"))
            rows[op].append(secs)
        for f in ("ours.tif", "peer.tif", "peer.h5"):
            if os.path.exists(os.path.join(WORK, f)):
                os.unlink(os.path.join(WORK, f))
        print(f"  tiff repeat {rep + 1} of {REPEATS} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rows.items()}
    mbs = {k: NBYTES / 1e6 / v for k, v in med.items()}
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# TIFF throughput: {Z} x {Y} x {X} uint16 ({NBYTES / 2**20:.0f} MiB), uncompressed multi-page TIFF")
    print(f"# {cpu}, {os.cpu_count()} CPUs, {platform.python_version()} tifffile {tifffile.__version__}; median of "
          f"{REPEATS} runs; MB = 10^6 bytes; reads from the page cache")
    fmt = "{:<8} {:<44} {:>8} {:<34} {:>8} {:>9}"
    print(fmt.format("op", "ours", "MB/s", "peer", "MB/s", "ours/peer"))
    for op, ours, what, peers in (
            ("import", "ours_import", "import_tiff stage (TIFF -> HDF5 blosc)",
             (("imread", "tifffile.imread"), ("imread+h5py", "tifffile.imread + h5py blosc write"))),
            ("export", "ours_export", "sirenstack export -o .tif (process wall)",
             (("imwrite", "tifffile.imwrite (array in memory)"), ("h5py+imwrite", "h5py read + tifffile.imwrite")))):
        for i, (k, name) in enumerate(peers):
            print(fmt.format(op if i == 0 else "", what if i == 0 else "", f"{mbs[ours]:.0f}" if i == 0 else "",
                             name, f"{mbs[k]:.0f}", f"{mbs[ours] / mbs[k]:.2f}x"))
    print(f"# import wall time of the whole `sirenstack run` (startup, planning, commit): "
          f"{med['ours_import_wall']:.2f} s = {NBYTES / 1e6 / med['ours_import_wall']:.0f} MB/s")
    print("# raw seconds: " + " ".join(f"{k}={','.join(f'{x:.3f}' for x in v)}" for k, v in rows.items()))
    for e in errors:
        print(f"bench: error: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


main()
