#!/usr/bin/python3
"""Compares the registration kernels with skimage and scipy; prints TAP.

usage: check_kernels.py BASELINES_REF

  xcorr_*   against skimage.registration.phase_cross_correlation with the
            same upsample factor and normalisation ('phase' or None); for
            the Hann option the reference gets the same preprocessing done
            in numpy (mean removed, times the separable periodic Hann window
            of scipy.signal.get_window).
  shift_*   against scipy.ndimage.shift(order=3 or 1, mode='reflect',
            'grid-constant', 'nearest') and, for the Fourier shift,
            numpy.fft.ifftn(scipy.ndimage.fourier_shift(fftn(x), s)).real.

Inputs come from numpy's generator with fixed seeds.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

try:
    import numpy as np
    import scipy.ndimage as ndi
    import scipy.signal
    from skimage.registration import phase_cross_correlation
except ImportError as e:
    print(f"1..0 # SKIP numpy/scipy/skimage not available: {e}")
    sys.exit(0)

REF = sys.argv[1]
T = Tap()
TMP = T.tmpdir("baselines")
tap = T.check  # tap(ok, desc, detail shown on failure)


def as3(shape):
    return (1,) * (3 - len(shape)) + tuple(shape)


def xcorr(ref, mov, hann=0, phase=1, up=20, max_shift=0):
    a, b = os.path.join(TMP, "a.f32"), os.path.join(TMP, "b.f32")
    np.ascontiguousarray(ref, np.float32).tofile(a)
    np.ascontiguousarray(mov, np.float32).tofile(b)
    out = subprocess.run([REF, "xcorr", a, b, *map(str, as3(ref.shape)), str(hann), str(phase), str(up), str(max_shift)],
                         capture_output=True, text=True, check=True).stdout.split()
    v = np.array([float(x) for x in out])
    return v[3 - ref.ndim:3], v[3]


def shift(x, s, interp, edge):
    a, o = os.path.join(TMP, "a.f32"), os.path.join(TMP, "o.f32")
    np.ascontiguousarray(x, np.float32).tofile(a)
    s3 = (0.0,) * (3 - x.ndim) + tuple(s)
    subprocess.run([REF, "shift", a, *map(str, as3(x.shape)), *map(str, s3), interp, edge, o], check=True)
    return np.fromfile(o, np.float32).reshape(x.shape)


def hann_prep(x):
    x = np.asarray(x, np.float32).astype(np.float64)
    w = np.ones(x.shape)
    for d, n in enumerate(x.shape):
        shape = [1] * x.ndim
        shape[d] = n
        w = w * (scipy.signal.get_window("hann", n) if n > 1 else np.ones(1)).reshape(shape)
    return (x - x.mean()) * w


def fourier_shift(x, s):
    return np.fft.ifftn(ndi.fourier_shift(np.fft.fftn(x), s)).real


rng = np.random.default_rng(20240611)

# ---- phase correlation against skimage ------------------------------------------
cases = [((61, 57), 2.0), ((64, 48), 1.5), ((15, 40, 36), 2.0), ((1, 50, 45), 1.5)]
for shape, sigma in cases:
    base = ndi.gaussian_filter(rng.standard_normal(shape), sigma) * 100 + 500
    true = rng.uniform(-6, 6, len(shape)) * (np.array(shape) > 1)
    # a real-world pair: a translated crop of a larger field, plus noise
    mov = fourier_shift(base, true) + rng.normal(0, 2, shape)
    ref = base + rng.normal(0, 2, shape)
    ref32, mov32 = ref.astype(np.float32), mov.astype(np.float32)
    for hann in (0, 1):
        for phase in (1, 0):
            for up in (1, 20, 7):
                got, peak = xcorr(ref32, mov32, hann, phase, up)
                a, b = (hann_prep(ref32), hann_prep(mov32)) if hann else (ref32.astype(np.float64), mov32.astype(np.float64))
                want = phase_cross_correlation(a, b, upsample_factor=up, normalization="phase" if phase else None)[0]
                d = np.max(np.abs(got - want))
                tap(d <= 0.1 and 0 < peak <= 1 + 1e-6,
                    f"xcorr {shape} hann={hann} {'phase' if phase else 'plain'} upsample {up}: "
                    f"{np.round(got, 3).tolist()} vs skimage {np.round(want, 3).tolist()} (max diff {d:.3f} <= 0.1)",
                    f"peak {peak}")

# max_shift: the restricted answer is the best peak inside the bound, as a
# brute-force search over skimage's correlation surface restricted the same way finds it
shape = (63, 59)
base = ndi.gaussian_filter(rng.standard_normal(shape), 2)
mov = fourier_shift(base, (-9.3, 2.6)) + rng.normal(0, 0.02, shape)
got, _ = xcorr(base.astype(np.float32), mov.astype(np.float32), 0, 1, 1, 5)
F = np.fft.fftn(base.astype(np.float32).astype(np.float64)) * np.conj(np.fft.fftn(mov.astype(np.float32).astype(np.float64)))
cc = np.abs(np.fft.ifftn(F / np.maximum(np.abs(F), 100 * np.finfo(float).eps)))
idx = [np.where(np.arange(n) > n // 2, np.arange(n) - n, np.arange(n)) for n in shape]
allowed = (np.abs(idx[0])[:, None] <= 5) & (np.abs(idx[1])[None, :] <= 5)
best = np.unravel_index(np.argmax(np.where(allowed, cc, -1)), shape)
want = np.array([idx[0][best[0]], idx[1][best[1]]], float)
tap(np.array_equal(got, want), f"max_shift 5, upsample 1: {got.tolist()} is the best admissible peak {want.tolist()}")

# ---- shifts against scipy.ndimage -------------------------------------------------
modes = {"reflect": "reflect", "zero": "grid-constant", "nearest": "nearest"}
for shape in [(9, 17, 20), (33, 28), (64,)]:
    x = rng.standard_normal(shape).astype(np.float32)
    for trial in range(2):
        s = tuple(rng.uniform(-4, 4, len(shape)))
        for interp, order in (("cubic", 3), ("linear", 1)):
            for edge, mode in modes.items():
                got = shift(x, s, interp, edge)
                want = ndi.shift(x.astype(np.float64), s, order=order, mode=mode)
                d = np.max(np.abs(got - want))
                tap(d <= 1e-5, f"shift {interp} {edge} {shape} by {np.round(s, 2).tolist()}: max diff {d:.2g} "
                               f"from scipy.ndimage.shift(order={order}, mode='{mode}')")

# Short axes: scipy's 'reflect' B-spline prefilter starts from a truncated
# sum, which is visibly inexact on a line of 3 samples; the exact spline of the
# reflected line is what scipy gives on the line padded by reflection first.
x = rng.standard_normal((3, 17, 20)).astype(np.float32)
s = (0.7, 1.3, -2.2)
got = shift(x, s, "cubic", "reflect")
pad = 40
want = ndi.shift(np.pad(x.astype(np.float64), pad, mode="symmetric"), s, order=3, mode="reflect")[pad:-pad, pad:-pad, pad:-pad]
d = np.max(np.abs(got - want))
tap(d <= 1e-5, f"cubic reflect on an axis of 3 samples: max diff {d:.2g} from scipy on the reflect-padded volume")

for shape in [(31, 26), (32, 27), (6, 20, 21), (7, 16, 18)]:
    x = rng.standard_normal(shape).astype(np.float32)
    s = tuple(rng.uniform(-5, 5, len(shape)))
    got = shift(x, s, "fourier", "reflect")
    want = fourier_shift(x.astype(np.float64), s)
    d = np.max(np.abs(got - want))
    tap(d <= 1e-5, f"Fourier shift {shape} by {np.round(s, 2).tolist()} (Nyquist bins included): max diff {d:.2g} "
                   "from ifftn(fourier_shift(fftn(x))).real")

T.done()
