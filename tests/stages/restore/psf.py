#!/usr/bin/python3
"""The psf stage, in TAP: every model against formulas computed here (Zhang
et al. 2007, Zipfel et al. 2003), normalisation, centring and symmetry; the
rotated PSF's axes swapped (second moments); the split PSF reconvolved with
the isotropic one (numpy FFT) gives the rotated one; a measured bead stack
off centre with a background gives the Gaussian it holds; bad input."""
import math
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
tmp = T.tmpdir("psf")
VOX = [0.5, 0.1, 0.1]


def run_psf(name, params, extra_stages=None, expect=0):
    st = dict(extra_stages or {})
    st["p"] = {"uses": "psf", "params": params}
    if extra_stages:
        st["p"]["inputs"] = {"measured": "bead.raw"}
    cfg = sslib.make_config(os.path.join(tmp, f"{name}.yaml"), st, output=f"out-{name}",
                            samples=[{"id": "s1", "voxel_size": VOX}])
    p = sslib.run(["run", cfg, "-q"])
    if p.returncode != expect:
        return p, None, None
    if expect:
        return p, None, None
    cont = os.path.join(tmp, f"out-{name}", "s1.h5")
    arrays = sslib.read_arrays(cont, "hdf5")
    return p, {k.split("/")[1]: v for k, v in arrays.items() if k.startswith("p/")}, sslib.stage_attrs(cont, "hdf5", "p")


def moments(h, spacing):
    """standard deviations along z, y, x (in the units of spacing) about the centre voxel"""
    out = []
    for ax in range(3):
        n = h.shape[ax]
        c = (np.arange(n) - n // 2) * spacing[ax]
        prof = h.sum(axis=tuple(a for a in range(3) if a != ax))
        out.append(math.sqrt(float((prof * c * c).sum() / prof.sum())))
    return out


def centred_symmetric(h):
    peak = np.unravel_index(np.argmax(h), h.shape)
    sym = all(np.allclose(h, np.flip(h, axis=a), atol=1e-7) for a in range(3))
    return peak == tuple(s // 2 for s in h.shape) and sym and all(s % 2 for s in h.shape)


# ---- Gaussian ----
p, a, attrs = run_psf("gauss", {"model": "gaussian", "sigma_xy": 0.15, "sigma_z": 0.9})
ok = a is not None
T.check(ok and abs(a["psf"].sum() - 1) < 1e-5 and centred_symmetric(a["psf"]),
        "gaussian: sum 1, odd, centred, symmetric", sslib.describe(p))
if ok:
    s = moments(a["psf"].astype(np.float64), VOX)
    T.check(abs(s[0] - 0.9) / 0.9 < 0.03 and abs(s[1] - 0.15) / 0.15 < 0.03 and abs(s[2] - 0.15) / 0.15 < 0.03,
            "gaussian: its second moments are the widths asked for", str(s))
    iso = 0.1
    r = moments(a["rotated"].astype(np.float64), [iso] * 3)
    T.check(abs(r[0] - 0.15) / 0.15 < 0.05 and abs(r[2] - 0.9) / 0.9 < 0.05 and abs(r[1] - 0.15) / 0.15 < 0.05,
            "rotated: on the isotropic grid with z and x swapped", str(r))
    q = moments(a["isotropic"].astype(np.float64), [iso] * 3)
    T.check(all(abs(v - 0.15) / 0.15 < 0.05 for v in q), "isotropic: the lateral width along every axis", str(q))
    # reconvolve: isotropic * split = rotated (circular, on the common grid)
    hi, hs, hr = (a[k].astype(np.float64) for k in ("isotropic", "split", "rotated"))
    conv = np.real(np.fft.ifftn(np.fft.fftn(np.fft.ifftshift(hi)) * np.fft.fftn(np.fft.ifftshift(hs))))
    conv = np.fft.fftshift(conv)
    err = np.abs(conv - hr).sum() / np.abs(hr).sum()
    # sampled Gaussians of 1.5 voxels are closed under convolution only up to about 2%
    T.check(err < 0.03 and (hs >= 0).all() and abs(hs.sum() - 1) < 1e-5 and attrs.get("split_method") == "gaussian",
            "split (Gaussian, exact): isotropic * split gives the rotated PSF (relative L1 error below 3%)",
            f"error {err:.4f}")
    T.check("sigma_um" in attrs, "the widths are recorded", str(attrs.get("sigma_um")))

# ---- microscope models against the formulas ----
NA, N, EM, EX, NAI = 1.0, 1.33, 0.52, 0.92, 0.05


def expected(model):
    if model == "widefield":
        return 0.21 * EM / NA, 0.66 * EM * N / NA ** 2
    if model == "confocal":
        q = EX * EM / math.sqrt(EX ** 2 + EM ** 2)
        return 0.21 * q / NA, 0.66 * q * N / NA ** 2
    if model == "two_photon":  # Zipfel 2003: 1/e radii of I^2, NA > 0.7
        wxy = 0.325 * EX / (math.sqrt(2) * NA ** 0.91)
        wz = 0.532 * EX / math.sqrt(2) / (N - math.sqrt(N * N - NA * NA))
        return wxy / math.sqrt(2), wz / math.sqrt(2)
    wfz = 0.66 * EM * N / NA ** 2
    sheet = EX / (math.pi * NAI) / 2
    return 0.21 * EM / NA, 1 / math.sqrt(1 / wfz ** 2 + 1 / sheet ** 2)


for model in ("widefield", "confocal", "two_photon", "light_sheet"):
    p, a, attrs = run_psf(model, {"model": model, "na": NA, "refractive_index": N, "wavelength_nm": EM * 1000,
                                  "excitation_nm": EX * 1000, "illumination_na": NAI})
    got = attrs.get("sigma_um") if attrs else None
    if isinstance(got, (str, bytes)):
        import json
        got = json.loads(got)
    exy, ez = expected(model)
    T.check(got is not None and abs(got["xy"] - exy) / exy < 1e-6 and abs(got["z"] - ez) / ez < 1e-6 and
            centred_symmetric(a["psf"]), f"{model}: the widths of its Gaussian approximation, a centred PSF",
            f"{got} vs {exy:.5f} {ez:.5f}\n" + sslib.describe(p))

# ---- measured ----
zz, yy, xx = np.meshgrid(np.arange(21), np.arange(41), np.arange(45), indexing="ij")
bead = 100 * np.exp(-0.5 * (((zz - 9) * 0.5 / 0.9) ** 2 + ((yy - 22) * 0.1 / 0.15) ** 2 + ((xx - 19) * 0.1 / 0.15) ** 2))
bead = (bead + 7.0).astype(np.float32)
path = os.path.join(tmp, "bead.h5")
with h5py.File(path, "w") as f:
    f["raw"] = bead[None]
imp = {"bead": {"uses": "import_hdf5", "params": {"file": path, "dataset": "/raw", "axes": "rzyx",
                                                    "voxel_size": VOX}}}
p, a, attrs = run_psf("measured", {"model": "measured"}, extra_stages=imp)
ok = a is not None
T.check(ok and centred_symmetric(a["psf"]) and abs(a["psf"].sum() - 1) < 1e-5,
        "measured: the bead's peak centred in an odd box, background off, sum 1", sslib.describe(p))
if ok:
    s = moments(a["psf"].astype(np.float64), VOX)
    T.check(abs(s[0] - 0.9) / 0.9 < 0.08 and abs(s[1] - 0.15) / 0.15 < 0.08,
            "measured: the widths of the bead it was given", str(s))
    hi, hs, hr = (a[k].astype(np.float64) for k in ("isotropic", "split", "rotated"))
    conv = np.fft.fftshift(np.real(np.fft.ifftn(np.fft.fftn(np.fft.ifftshift(hi)) * np.fft.fftn(np.fft.ifftshift(hs)))))
    err = np.abs(conv - hr).sum() / np.abs(hr).sum()
    T.check(err < 0.05 and attrs.get("split_method") == "fourier" and abs(hs.sum() - 1) < 1e-4,
            "split (measured, Fourier division): isotropic * split gives the rotated PSF (relative L1 below 5%)",
            f"error {err:.4f}")

# ---- bad input ----
with h5py.File(os.path.join(tmp, "flat.h5"), "w") as f:
    f["raw"] = np.full((1, 9, 9, 9), 3.0, np.float32)
imp_flat = {"bead": {"uses": "import_hdf5", "params": {"file": os.path.join(tmp, "flat.h5"), "dataset": "/raw",
                                                         "axes": "rzyx"}}}
p, _, _ = run_psf("flat", {"model": "measured"}, extra_stages=imp_flat, expect=3)
T.check(p.returncode == 3 and "nothing above its background" in p.stderr, "a flat bead stack: exit 3",
        sslib.describe(p))
for what, params, msg in [
    ("gaussian without widths", {"model": "gaussian"}, "needs sigma_xy and sigma_z"),
    ("an even shape", {"model": "gaussian", "sigma_xy": 0.1, "sigma_z": 0.5, "shape": [8, 9, 9]}, "odd sizes"),
    ("na above the refractive index", {"model": "widefield", "na": 1.4, "refractive_index": 1.33}, "below the refractive"),
]:
    p, _, _ = run_psf("bad", params, expect=2)
    T.check(p.returncode == 2 and msg in p.stderr, f"refused at validation: {what}", sslib.describe(p))
p, _, _ = run_psf("nomeas", {"model": "measured"}, expect=3)
T.check(p.returncode == 3 and "connect the input 'measured'" in p.stderr, "model measured without a bead stack: exit 3",
        sslib.describe(p))
T.done()
