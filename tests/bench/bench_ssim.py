#!/usr/bin/python3
"""3D SSIM benchmark for scripts/bench: the metrics stage's kernel
(bench_ssim, all cores and one thread) against
skimage.metrics.structural_similarity on the same float32 arrays, same run.

usage: bench_ssim.py BENCH_SSIM WORKDIR Z Y X REPEATS

The pair: a smooth random volume scaled to [0, 1] (Gaussian-filtered white
noise, sigma 1, 2, 2 voxels) and it plus N(0, 0.05) noise, float32. Window:
gaussian (sigma 1.5, 11 taps), population covariance, K1 0.01, K2 0.03,
data_range = max - min of the first. skimage gets the float32 arrays as they
are (it then filters in float32; ours filters in double). Each time is the
median of REPEATS. Exits non-zero when a program fails or the two SSIM values
differ by more than 1e-4 (never because of a speed).
"""
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


def main():
    bench, work = sys.argv[1], sys.argv[2]
    Z, Y, X, reps = (int(v) for v in sys.argv[3:7])
    rng = np.random.default_rng(2026)
    a = gaussian_filter(rng.normal(size=(Z, Y, X)).astype(np.float32), (1, 2, 2))
    a = ((a - a.min()) / (a.max() - a.min())).astype(np.float32)
    b = (a + rng.normal(0, 0.05, a.shape).astype(np.float32)).astype(np.float32)
    pa, pb = os.path.join(work, "ssim_a.f32"), os.path.join(work, "ssim_b.f32")
    a.astype("<f4").tofile(pa)
    b.astype("<f4").tofile(pb)
    L = float(a.max()) - float(a.min())
    ncpu = os.cpu_count() or 1

    ours = {}
    for threads in sorted({ncpu, 1}, reverse=True):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        p = subprocess.run([bench, "run", pa, pb, str(Z), str(Y), str(X), "gaussian", repr(L), str(reps)],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0:
            print(f"bench: {bench} failed: {p.stderr.strip()}", file=sys.stderr)
            return 1
        kv = dict(x.split("=", 1) for x in p.stdout.split())
        ours[threads] = (float(kv["seconds"]), float(kv["ssim"]))

    times, value = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        value = structural_similarity(a, b, data_range=L, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, channel_axis=None)
        times.append(time.perf_counter() - t0)
    peer = statistics.median(times)
    os.unlink(pa)
    os.unlink(pb)

    print(f"# 3D SSIM: {Z} x {Y} x {X} float32 pair, gaussian window (sigma 1.5, 11 taps), data_range {L:g}")
    print(f"# {cpu_name()}, {ncpu} CPUs; median of {reps} runs; skimage {__import__('skimage').__version__}, "
          f"scipy {__import__('scipy').__version__}, numpy {np.__version__} (single-threaded)")
    fmt = "{:<34} {:>8} {:>10} {:>14} {:>12}"
    print(fmt.format("implementation", "threads", "seconds", "ssim", "skimage/ours"))
    for threads, (sec, v) in ours.items():
        print(fmt.format("sirenstack ssim3d_plane_f32", threads, f"{sec:.3f}", f"{v:.8f}", f"{peer / sec:.1f}x"))
    print(fmt.format("skimage structural_similarity", 1, f"{peer:.3f}", f"{value:.8f}", "1.0x"))
    worst = max(abs(v - value) for _, v in ours.values())
    print(f"# |ours - skimage| = {worst:.2e} (skimage filters float32 input in float32)")
    if worst > 1e-4:
        print(f"bench: error: the SSIM values disagree by {worst:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
