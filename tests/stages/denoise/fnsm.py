#!/usr/bin/python3
"""Stage fnsm (Fourier noise suppression), in TAP.

On a stack that is band-limited to radius 0.3 of the Nyquist frequency plus
white noise: the estimated cut-off lies at the band edge; the ring power
beyond it is the noise variance (the table radial_power); the filtered planes
equal numpy's rfft2 -> radial raised-cosine mask -> irfft2 to float
rounding, for the estimated and for a given cut-off; filtering beats the
noisy input against the clean stack, and a Gaussian filter is scored beside
it. Bad parameters are refused at validation."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import numpy as np  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
Z, Y, X = 4, 96, 80
BAND, SIGMA = 0.3, 0.05


def radius(ny, nx):
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    return 2 * np.sqrt(ky ** 2 + kx ** 2)


def mask(r, cutoff, rolloff):
    m = np.where(r <= cutoff - rolloff, 1.0, 0.0)
    if rolloff > 0:
        edge = (r > cutoff - rolloff) & (r < cutoff + rolloff)
        m[edge] = 0.5 * (1 + np.cos(np.pi * (r[edge] - (cutoff - rolloff)) / (2 * rolloff)))
    return m


def numpy_fnsm(stack, cutoff, rolloff):
    m = mask(radius(stack.shape[1], stack.shape[2]), cutoff, rolloff)
    return np.stack([np.fft.irfft2(np.fft.rfft2(p.astype(np.float64)) * m, s=p.shape) for p in stack])


def psnr(a, ref):
    return 10 * np.log10(float(ref.max() - ref.min()) ** 2 / float(np.mean((a.astype(np.float64) - ref) ** 2)))


def main():
    rng = np.random.default_rng(7)
    r = radius(Y, X)
    clean = np.stack([np.fft.irfft2((rng.normal(size=r.shape) + 1j * rng.normal(size=r.shape)) * (r < BAND), s=(Y, X))
                      for _ in range(Z)])
    clean = 0.5 + clean / np.abs(clean).max() * 0.4
    noisy = (clean + rng.normal(0, SIGMA, clean.shape)).astype(np.float32)
    d = T.tmpdir("fnsm")
    with h5py.File(os.path.join(d, "stack.h5"), "w") as f:
        f["s"] = noisy
    st = {"raw": {"uses": "import_hdf5", "params": {"file": "stack.h5", "dataset": "/s", "axes": "zyx"}},
          "auto": {"uses": "fnsm", "inputs": {"image": "raw.raw"}},
          "given": {"uses": "fnsm", "inputs": {"image": "raw.raw"}, "params": {"cutoff": 0.45, "rolloff": 0.0}},
          "gauss": {"uses": "filter_gaussian", "inputs": {"image": "raw.raw"}, "params": {"sigma": [0, 1.0, 1.0]}}}
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), st)
    p = sslib.run(["run", cfg, "--threads", "2", "-q"])
    if not T.check(p.returncode == 0, "a run with fnsm stages completes", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", "hdf5")
    a = sslib.read_arrays(cont, "hdf5")
    at = sslib.stage_attrs(cont, "hdf5", "auto")
    cut = float(at["cutoff"])
    T.check(bool(at["cutoff_estimated"]) and abs(cut - BAND) <= 0.04,
            f"the estimated cut-off {cut:.3f} is at the band edge {BAND} (within 0.04)", str(at))
    tab = a["auto/radial_power"]
    tail = tab["power"][(tab["radius"] > BAND + 0.1) & (tab["radius"] < 1.0)]
    T.check(len(tail) > 10 and abs(float(np.mean(tail)) / SIGMA ** 2 - 1) < 0.1,
            f"radial_power beyond the band is the noise variance ({float(np.mean(tail)):.3g} vs {SIGMA ** 2:.3g})")
    T.check(abs(float(at["noise_floor"]) / SIGMA ** 2 - 1) < 0.1, "the noise floor attribute is the noise variance",
            str(at.get("noise_floor")))
    T.check(np.all(np.diff(tab["radius"]) > 0) and int(tab["frequencies"].sum()) == Y * X, "radial_power rings run outwards and count every frequency of the plane once",
        str(int(tab["frequencies"].sum())))
    for name, c, ro in (("auto", cut, 0.05), ("given", 0.45, 0.0)):
        want = numpy_fnsm(noisy, c, ro)
        got = a[f"{name}/filtered"]
        err = float(np.abs(got - want).max())
        T.check(got.dtype == np.float32 and got.shape == noisy.shape and err < 1e-5,
                f"{name}: cut-off {c:.3f}, rolloff {ro}: equals numpy's rfft2 -> mask -> irfft2 (max error {err:.2e})")
    scores = {"input": psnr(noisy, clean), "fnsm": psnr(a["auto/filtered"], clean),
              "gaussian 1 px": psnr(a["gauss/filtered"], clean)}
    T.diag("PSNR against the clean stack: " + ", ".join(f"{k} {v:.1f} dB" for k, v in scores.items()))
    T.check(scores["fnsm"] > scores["input"] + 3, "fnsm beats its noisy input by more than 3 dB", str(scores))

    for params, words in (({"cutoff": 0}, "cutoff"), ({"threshold": 0.5}, "threshold"),
                          ({"floor_from": 1.0}, "floor_from")):
        st2 = dict(st, bad={"uses": "fnsm", "inputs": {"image": "raw.raw"}, "params": params})
        cfg2 = sslib.make_config(os.path.join(d, "bad.yaml"), st2)
        p = sslib.run(["validate", cfg2])
        T.check(p.returncode == 2 and words in p.stderr, f"fnsm {params} is refused at validation", sslib.describe(p))


T.guard("fnsm", main)
T.done()
