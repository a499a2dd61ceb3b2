#!/usr/bin/python3
"""The Python peer of bench_container: the same stack, chunks, compressor and
plane-by-plane access, through h5py + hdf5plugin (hdf5) or zarr-python (zarr).

usage: bench_h5py.py write|read hdf5|zarr PATH [Z Y X]

Prints one line of key=value pairs like bench_container. Seconds count the
library calls only (open, create, plane writes or reads, close, and an fsync
of every written file and folder, as the store's commit does), not the making
of the data, which is bench_container.c's integer formula (the checksums of
the two programs agree when the content does). Blosc: lz4, clevel 5, byte
shuffle, one thread (as the store's blosc_*_ctx calls use).
"""
import os
import resource
import sys
import time

os.environ.setdefault("BLOSC_NTHREADS", "1")

import numpy as np  # noqa: E402

N_BLOBS = 2000
M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1


def hash3_arr(x, y, z):
    """hash3 of bench_container.c on uint32 arrays x, y and an int z."""
    zt = np.uint32((z * 0xC2B2AE3D) & M32)
    h = (x * np.uint32(0x9E3779B1)) ^ (y * np.uint32(0x85EBCA77)) ^ zt
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h


def hash3_int(x, y, z):
    h = ((x * 0x9E3779B1) & M32) ^ ((y * 0x85EBCA77) & M32) ^ ((z * 0xC2B2AE3D) & M32)
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & M32
    h ^= h >> 12
    h = (h * 0x297A2D39) & M32
    h ^= h >> 15
    return h


def tri(v, period):
    return np.abs(v % period - period // 2)


class Maker:
    def __init__(self, Z, Y, X):
        self.Z, self.Y, self.X = Z, Y, X
        yy, xx = np.meshgrid(np.arange(Y, dtype=np.int64), np.arange(X, dtype=np.int64), indexing="ij")
        self.yy, self.xx = yy, xx
        self.yu, self.xu = yy.astype(np.uint32), xx.astype(np.uint32)
        self.bg_y = tri(yy, 384) // 4
        self.blobs = []
        for i in range(N_BLOBS):
            r = 4 + hash3_int(i, 4, 7) % 12
            self.blobs.append((hash3_int(i, 1, 7) % Z, hash3_int(i, 2, 7) % Y, hash3_int(i, 3, 7) % X, r, 1 + r // 4,
                               500 + hash3_int(i, 5, 7) % 3000))
        self.weights = (np.arange(Y * X, dtype=np.uint64) % 251 + 1).astype(np.uint64)

    def plane(self, z):
        h = hash3_arr(self.xu, self.yu, z).astype(np.int64)
        acc = 100 + tri(self.xx + 4 * z, 512) // 4 + self.bg_y + (h & 31) + ((h >> 5) & 31) - 31
        for bz, by, bx, r, rz, amp in self.blobs:
            dz = z - bz
            if dz < -rz or dz > rz:
                continue
            y0, y1 = max(by - r, 0), min(by + r, self.Y - 1)
            x0, x1 = max(bx - r, 0), min(bx + r, self.X - 1)
            dy = self.yy[y0:y1 + 1, x0:x1 + 1] - by
            dx = self.xx[y0:y1 + 1, x0:x1 + 1] - bx
            R2 = r * r * rz * rz
            d2 = (dx * dx + dy * dy) * rz * rz + dz * dz * r * r
            acc[y0:y1 + 1, x0:x1 + 1] += np.where(d2 < R2, amp * (R2 - d2) // R2, 0)
        return np.clip(acc, 0, 65535).astype(np.uint16)

    def plane_sum(self, p):
        return int((p.reshape(-1).astype(np.uint64) * self.weights).sum(dtype=np.uint64))


def peak_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fsync_tree(path):
    """fsync every file and folder under path (or the file path) and the
    folder holding it."""
    paths = [path]
    if os.path.isdir(path):
        paths = []
        for root, dirs, files in os.walk(path):
            paths += [os.path.join(root, f) for f in files] + [root]
    paths.append(os.path.dirname(os.path.abspath(path)))
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def disk_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def blosc_hdf5():
    import hdf5plugin
    return hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)


def blosc_zarr():
    import numcodecs
    from numcodecs import Blosc
    numcodecs.blosc.use_threads = False
    numcodecs.blosc.set_nthreads(1)
    return Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE)


def write(fmt, path, Z, Y, X):
    mk = Maker(Z, Y, X)
    if fmt == "hdf5":
        import h5py
        comp = blosc_hdf5()
    else:
        import zarr
        comp = blosc_zarr()
    base = peak_rss_kib()
    chk = 0
    gen = 0.0
    t0 = time.perf_counter()
    if fmt == "hdf5":
        f = h5py.File(path, "w")
        d = f.create_dataset("stack", shape=(Z, Y, X), dtype="<u2", chunks=(1, Y, X), **comp)
    else:
        d = zarr.open(path, mode="w", shape=(Z, Y, X), chunks=(1, Y, X), dtype="<u2", compressor=comp,
                      dimension_separator="/")
    for z in range(Z):
        g0 = time.perf_counter()
        p = mk.plane(z)
        chk = (chk * 31 + mk.plane_sum(p)) & M64
        gen += time.perf_counter() - g0
        d[z] = p
    if fmt == "hdf5":
        f.close()
    fsync_tree(path)
    secs = time.perf_counter() - t0 - gen
    return secs, chk, base


def read(fmt, path, Z, Y, X):
    mk = Maker(Z, Y, X)
    if fmt == "hdf5":
        import h5py
        import hdf5plugin  # noqa: F401 - registers blosc
    else:
        import zarr
        blosc_zarr()
    buf = np.zeros((1, Y, X), dtype=np.uint16)
    base = peak_rss_kib()
    chk = 0
    csum = 0.0
    t0 = time.perf_counter()
    if fmt == "hdf5":
        f = h5py.File(path, "r")
        d = f["stack"]
    else:
        f = None
        d = zarr.open(path, mode="r")
    if d.shape != (Z, Y, X) or d.dtype != np.uint16:
        raise SystemExit(f"bench_h5py: {path}: stack is {d.shape} {d.dtype}, not {(Z, Y, X)} uint16")
    for z in range(Z):
        if fmt == "hdf5":
            d.read_direct(buf, np.s_[z:z + 1])
            p = buf
        else:
            p = d[z]
        c0 = time.perf_counter()
        chk = (chk * 31 + mk.plane_sum(p)) & M64
        csum += time.perf_counter() - c0
    if f is not None:
        f.close()
    secs = time.perf_counter() - t0 - csum
    return secs, chk, base


def main():
    a = sys.argv[1:]
    if len(a) not in (3, 6) or a[0] not in ("write", "read") or a[1] not in ("hdf5", "zarr"):
        print(__doc__, file=sys.stderr)
        return 64
    op, fmt, path = a[:3]
    Z, Y, X = (int(v) for v in a[3:6]) if len(a) == 6 else (100, 1024, 1024)
    secs, chk, base = (write if op == "write" else read)(fmt, path, Z, Y, X)
    nbytes = Z * Y * X * 2
    impl = "h5py" if fmt == "hdf5" else "zarr-python"
    print(f"impl={impl} format={fmt} op={op} z={Z} y={Y} x={X} bytes={nbytes} disk_bytes={disk_bytes(path)} "
          f"seconds={secs:.6f} mb_per_s={nbytes / 1e6 / secs:.3f} base_rss_kib={base} "
          f"peak_rss_kib={peak_rss_kib()} checksum={chk}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
