#!/usr/bin/python3
"""The peer of bench_deconv.c: Richardson-Lucy iterations per second with
scipy.fft (rfftn/irfftn, float32 in, complex64 spectra, workers=THREADS) on
the same periodic N^3 volume and 9^3 Gaussian PSF.

    bench_deconv.py N ITERATIONS THREADS"""
import sys
import time

import numpy as np
import scipy.fft as sfft


def main():
    n, iters, workers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    data = (1.0 + (np.arange(n ** 3) % 97) / 97.0).astype(np.float32).reshape(n, n, n)
    g = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
    psf = (g[:, None, None] * g[None, :, None] * g[None, None, :])
    psf = (psf / psf.sum()).astype(np.float32)
    big = np.zeros((n, n, n), np.float32)
    big[:9, :9, :9] = psf
    otf = sfft.rfftn(np.roll(big, (-4, -4, -4), axis=(0, 1, 2)), workers=workers)
    otf_c = np.conj(otf)
    u = np.full((n, n, n), 1.5, np.float32)

    def step(u):
        blur = sfft.irfftn(sfft.rfftn(u, workers=workers) * otf, s=u.shape, workers=workers)
        ratio = data / np.maximum(blur, np.float32(1e-6))
        corr = sfft.irfftn(sfft.rfftn(ratio, workers=workers) * otf_c, s=u.shape, workers=workers)
        return np.maximum(u * corr, 0)

    u = step(u)
    t0 = time.perf_counter()
    for _ in range(iters):
        u = step(u)
    t = time.perf_counter() - t0
    print(f"peer n={n} iterations={iters} seconds={t:.3f} its_per_s={iters / t:.3f} "
          f"checksum={float(u.astype(np.float64).mean()):.6f} dtype={u.dtype}")


main()
