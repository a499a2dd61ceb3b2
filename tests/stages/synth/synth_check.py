#!/usr/bin/python3
"""Stage `synth` and `sirenstack synth`, checked against numpy/scipy, in TAP.

usage: synth_check.py [WORKDIR]

Every container is made with the `sirenstack synth` command (or a config run
where the config path matters) and read back with h5py + hdf5plugin. The
checks use independent computations, never outputs recorded from the program:
  - determinism: same seed and file name -> identical arrays and tables (also
    across thread counts); another seed -> different data
  - dendrites: spine heads inside the volume, radii in range, and the truth
    near each head at least what the head sphere alone gives when blurred by
    the requested Gaussian PSF (a numpy integral over the ball)
  - photons: the brightest voxel is gain (background + photons); the repeats'
    mean is the truth
  - noise: per-voxel variance over the repeats without motion regressed on
    the expectation and on the empirical mean: slope gain, intercept
    read_noise^2 (+ 1/12 for rounding to integers)
  - motion: rows the artifacts table lists are the truth shifted by the
    recorded amount (a search over shifts with scipy.ndimage.shift finds it),
    and all other rows are the unshifted truth (chi-square near 1)
  - PSF: beads give the Zipfel et al. 2003 lateral and axial FWHM (Gaussian
    fits) within 10%, also for explicit FWHMs and for psf: computed, which
    also matches a numpy Debye integral
  - nuclei / membranes: label counts, sizes, volume fraction, where the
    intensity is
  - the command line: help, usage and config errors, reuse, Zarr output
Environment: SIRENSTACK (the binary; default $BUILD_ROOT/sirenstack).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import hdf5plugin  # noqa: F401 - registers the blosc filter with h5py
except ImportError:  # pragma: no cover
    hdf5plugin = None
import h5py
from scipy import ndimage
from scipy.optimize import curve_fit
from scipy.special import j0

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BUILD_ROOT = os.environ.get("BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build")
BIN = os.environ.get("SIRENSTACK") or os.path.join(BUILD_ROOT, "sirenstack")
FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer


T = Tap()
WORK = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="synth-check-")


def run(args, **kw):
    return subprocess.run([BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def synth(path, *args, threads=2):
    """Runs `sirenstack synth -o path args`; returns the process."""
    return run(["synth", "-o", path, "--quiet", "--threads", str(threads)] + list(args))


def load(path, group="synth"):
    """All arrays, tables and attributes of a stage group."""
    with h5py.File(path, "r") as f:
        g = f[group]
        out = {k: g[k][()] for k in g}
        attrs = dict(g.attrs)
    for k in ("params", "psf_fwhm_um", "voxel_size", "motion_repeats"):
        v = attrs.get(k)
        if isinstance(v, (str, bytes)):
            attrs[k] = json.loads(v)
        elif isinstance(v, np.ndarray):
            attrs[k] = v.tolist()
    return out, attrs


def describe(p):
    return f"exit {p.returncode}\nstdout: {p.stdout[-1500:]}\nstderr: {p.stderr[-1500:]}"


def make(name, *args, threads=2):
    path = os.path.join(WORK, name)
    p = synth(path, *args, threads=threads)
    if p.returncode != 0:
        raise RuntimeError(f"synth {args} failed: {describe(p)}")
    return load(path)


def guard(desc, fn):
    try:
        fn()
    except Exception as e:  # a crash of a check is a failed point, not a dead test
        import traceback
        T.check(False, f"{desc} (raised {type(e).__name__})", traceback.format_exc())


# ---- determinism -------------------------------------------------------------------

def determinism():
    a, _ = make("d1/s.h5", "--seed", "5", "--shape", "8,96,96", threads=1)
    b, _ = make("d2/s.h5", "--seed", "5", "--shape", "8,96,96", threads=2)
    c, _ = make("d3/s.h5", "--seed", "6", "--shape", "8,96,96")
    same = all(np.array_equal(a[k], b[k]) for k in a) and set(a) == set(b)
    T.check(same, "same seed and name, 1 and 2 threads: identical arrays and tables",
            [k for k in a if not np.array_equal(a[k], b.get(k))])
    T.check(not np.array_equal(a["truth"], c["truth"]) and not np.array_equal(a["repeats"], c["repeats"]),
            "another seed: different truth and repeats")
    T.check(set(a) == {"repeats", "truth", "labels", "spines", "artifacts"},
            "outputs: repeats, truth, labels, spines, artifacts", sorted(a))
    T.check(a["repeats"].dtype == np.uint16 and a["repeats"].shape == (4, 8, 96, 96) and
            a["truth"].dtype == np.float32 and a["truth"].shape == (8, 96, 96) and
            a["labels"].dtype == np.int32 and a["labels"].shape == (8, 96, 96),
            "dtypes and shapes: uint16 RZYX repeats, float32 truth, int32 labels",
            f"{a['repeats'].dtype}{a['repeats'].shape} {a['truth'].dtype}{a['truth'].shape}")


# ---- dendrites ------------------------------------------------------------------------

def ball_integral(centre, r, p, sigma, h=0.025):
    """Integral over the ball (centre, r) of the normalised Gaussian of sigma (z, y, x) at p."""
    n = int(np.ceil(r / h))
    ax = np.arange(-n, n + 1) * h
    zz, yy, xx = np.meshgrid(ax, ax, ax, indexing="ij")
    m = zz ** 2 + yy ** 2 + xx ** 2 <= r * r
    q = np.stack([zz[m], yy[m], xx[m]], 1) + centre
    d = (p - q) / sigma
    w = np.exp(-0.5 * (d ** 2).sum(1)) / ((2 * np.pi) ** 1.5 * np.prod(sigma))
    return w.sum() * h ** 3


def dendrites():
    t0 = time.time()
    path = os.path.join(WORK, "dend/dend.h5")
    p = synth(path, "--phantom", "dendrites", "--shape", "16,256,256", "--repeats", "4", "--seed", "1")
    T.diag(f"16x256x256 dendrite phantom, 4 repeats: {time.time() - t0:.2f} s (wall, with process start)")
    if not T.check(p.returncode == 0, "synth --phantom dendrites --shape 16,256,256 --repeats 4 --seed 1", describe(p)):
        return
    d, attrs = load(path)
    par = attrs["params"]
    t, sp, vox = d["truth"], d["spines"], np.array(attrs["voxel_size"])
    T.check(np.allclose(vox, [1.0, 0.1, 0.1]), "default voxel size 1 x 0.1 x 0.1 um", vox)
    fz, fxy = zipfel(1.0, 0.92, 1.33)
    T.check(np.allclose(attrs["psf_fwhm_um"], [fz, fxy, fxy], rtol=1e-6),
            f"default PSF: Zipfel FWHM {fxy:.3f} um lateral, {fz:.3f} um axial (NA 1, 920 nm, water)",
            attrs["psf_fwhm_um"])
    n = len(sp)
    T.check(n >= 20, f"spine table has heads ({n})")
    inside = all(-0.5 <= r[a] < s - 0.5 for r in sp for a, s in zip("zyx", t.shape))
    T.check(inside, "every head centre of the table lies inside the volume")
    T.check(n and sp["radius_um"].min() >= 0.3 and sp["radius_um"].max() <= 0.8,
            "head radii within [0.3, 0.8] um", (sp["radius_um"].min(), sp["radius_um"].max()) if n else "")
    T.check(n and len(set(sp["id"])) == n and set(sp["dendrite"]) <= set(np.unique(d["labels"])) - {0},
            "spine ids unique, each on a dendrite that is labelled in the volume")
    # The head sphere alone, of brightness >= 0.54 (dendrites 0.6-1, heads
    # +-10%), blurred by the requested Gaussian, is a lower bound of the truth.
    gain, bg, ph, smax = par["gain"], par["background"], par["photons"], attrs["signal_max"]
    sigma = np.array(attrs["psf_fwhm_um"]) / FWHM
    ratios, rel = [], []
    for r in sp:
        c = np.array([r["z"], r["y"], r["x"]]) * vox
        iv = np.clip(np.round([r["z"], r["y"], r["x"]]).astype(int), 0, np.array(t.shape) - 1)
        lower = gain * ph * 0.54 * ball_integral(c, r["radius_um"], iv * vox, sigma) / smax
        sig = t[tuple(iv)] - gain * bg
        ratios.append(sig / lower)
        rel.append(sig / (gain * ph))
    ratios, rel = np.array(ratios), np.array(rel)
    T.diag(f"truth at heads / lower bound: min {ratios.min():.2f}, median {np.median(ratios):.2f}; "
           f"signal at heads / peak: min {rel.min():.2f}, median {np.median(rel):.2f}")
    T.check(ratios.min() >= 0.9, "truth at every head centre >= the blurred head sphere alone (numpy integral)",
            f"worst ratio {ratios.min():.3f}")
    T.check(rel.min() >= 0.1, "every head is bright: >= 10% of the peak signal at its centre", f"min {rel.min():.3f}")
    # The labels: dendrite voxels are where the truth is high.
    lab = d["labels"]
    T.check(set(np.unique(lab)) <= set(range(0, par["dendrites"] + 1)) and (lab > 0).mean() > 0.005,
            "labels are dendrite ids 1..3 and cover the shafts", np.unique(lab))
    T.check(np.median(t[lab > 0]) - gain * bg > 10 * max(np.median(t[lab == 0]) - gain * bg, 1e-3),
            "truth inside labelled voxels far above outside")
    # Photon level.
    T.check(abs(t.max() - gain * (bg + ph)) < 1e-3 * gain * (bg + ph) and t.min() >= gain * bg - 1e-3,
            f"brightest voxel is gain (background + photons) = {gain * (bg + ph):g}; nothing below background",
            (t.min(), t.max()))
    still = [r for r in range(d["repeats"].shape[0]) if r not in attrs["motion_repeats"]]
    mean = d["repeats"][still].astype(np.float64).mean(0)
    rel_err = abs(mean.mean() - t.mean()) / t.mean()
    bright = t > gain * (bg + 0.5 * ph)
    rel_bright = abs(mean[bright].mean() - t[bright].mean()) / t[bright].mean()
    T.check(rel_err < 0.005 and rel_bright < 0.01,
            "mean photon level: repeats without motion average to the truth (all voxels, bright voxels)",
            f"relative error {rel_err:.4f} (all), {rel_bright:.4f} (bright)")
    T.check(len(attrs["motion_repeats"]) == 1, "motion_fraction 0.25 of 4 repeats: one repeat with motion",
            attrs["motion_repeats"])


# ---- noise -----------------------------------------------------------------------------

def noise():
    gain, rn, bg, ph = 2.0, 3.0, 10.0, 200.0
    d, attrs = make("noise/n.h5", "--shape", "12,128,128", "--repeats", "8", "--seed", "2",
                    "--set", f"gain={gain}", "--set", f"read_noise={rn}", "--set", f"background={bg}",
                    "--set", f"photons={ph}", "--set", "motion_repeats=[0, 5]")
    T.check(attrs["motion_repeats"] == [0, 5], "motion_repeats [0, 5] are the moving repeats", attrs["motion_repeats"])
    arts = d["artifacts"]
    T.check(set(arts["repeat"]) <= {0, 5} and len(arts) > 0, "artifacts only in repeats 0 and 5")
    still = [r for r in range(8) if r not in (0, 5)]
    x = d["repeats"][still].astype(np.float64)
    t = d["truth"].astype(np.float64).ravel()
    var = x.var(0, ddof=1).ravel()
    mean = x.mean(0).ravel()
    slope, icpt = np.polyfit(t, var, 1)
    expect_icpt = rn * rn + 1.0 / 12.0
    T.diag(f"variance vs expectation: slope {slope:.4f} (gain {gain}), intercept {icpt:.3f} "
           f"(read_noise^2 + 1/12 = {expect_icpt:.3f})")
    T.check(abs(slope - gain) < 0.03 * gain, "variance vs expectation: slope = gain within 3%", slope)
    T.check(abs(icpt - expect_icpt) < 0.1 * expect_icpt, "variance vs expectation: intercept = read_noise^2 within 10%",
            icpt)
    # The same with the empirical mean, binned so that its noise averages
    # out within each bin.
    edges = np.quantile(mean, np.linspace(0, 1, 41))
    idx = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, 39)
    bm = np.array([mean[idx == i].mean() for i in range(40)])
    bv = np.array([var[idx == i].mean() for i in range(40)])
    s2, i2 = np.polyfit(bm, bv, 1)
    T.diag(f"variance vs empirical mean (40 quantile bins): slope {s2:.4f}, intercept {i2:.3f}")
    T.check(abs(s2 - gain) < 0.05 * gain and abs(i2 - expect_icpt) < 0.25 * expect_icpt,
            "variance vs empirical mean: slope = gain within 5%, intercept = read_noise^2 within 25%", (s2, i2))
    T.check(abs(mean.mean() - t.mean()) < 0.005 * t.mean(), "repeats average to the truth")
    motion_check(d, attrs)


# ---- motion ----------------------------------------------------------------------------

def motion_check(d, attrs):
    par = attrs["params"]
    gain, rn = par["gain"], par["read_noise"]
    truth, reps, arts = d["truth"].astype(np.float64), d["repeats"].astype(np.float64), d["artifacts"]
    R, Z, Y, X = reps.shape
    S = par["motion_shift_px"]
    ok_rows, ok_part, ok_chi, found, bands_tested, detail = True, True, True, 0, 0, []
    covered = np.zeros((R, Z, Y), bool)
    for a in arts:
        r, z, r0, r1 = int(a["repeat"]), int(a["z"]), int(a["row_start"]), int(a["row_end"])
        if not (0 <= r0 < r1 <= Y):
            ok_rows = False
        if covered[r, z, r0:r1].any():
            ok_part = False
        covered[r, z, r0:r1] = True
        if a["band"] and not (1 <= abs(round(a["shift_x"] - 0)) <= S + 1):
            ok_rows = False
    T.check(ok_rows and ok_part, "artifact rows are valid, disjoint ranges; band shifts within motion_shift_px")
    m = S + 4  # columns that need content from beyond the field

    def chi2(frame, model, rows):
        v = gain * model + rn * rn + 1.0 / 12.0
        sl = (slice(rows[0], rows[1]), slice(m, X - m))
        return np.mean((frame[sl] - model[sl]) ** 2 / v[sl])

    for a in arts:
        r, z, r0, r1 = int(a["repeat"]), int(a["z"]), int(a["row_start"]), int(a["row_end"])
        lo, hi = max(r0, 2), min(r1, Y - 2)
        if hi - lo < 3:
            continue
        frame = reps[r, z]
        at = ndimage.shift(truth[z], (a["shift_y"], a["shift_x"]), order=3, mode="nearest")
        c_at = chi2(frame, at, (lo, hi))
        if c_at > 1.15:
            ok_chi = False
            detail.append(f"repeat {r} z {z} rows {r0}-{r1}: chi2 {c_at:.2f} at the recorded shift")
        # Enough structure in the band to pin the shift down?
        if not a["band"] or truth[z, lo:hi, m:X - m].std() < 2 * np.sqrt(gain * truth[z].mean() + rn * rn):
            continue
        bands_tested += 1
        cands = np.arange(-S - 2, S + 2.001, 0.25) + (a["shift_x"] - round(a["shift_x"] * 4) / 4)
        cost = [chi2(frame, ndimage.shift(truth[z], (a["shift_y"], s), order=3, mode="nearest"), (lo, hi))
                for s in cands]
        best = cands[int(np.argmin(cost))]
        if abs(best - a["shift_x"]) < 0.13:
            found += 1
        else:
            detail.append(f"repeat {r} z {z} band {r0}-{r1}: search finds {best:.2f}, table says {a['shift_x']:.2f}")
    T.check(ok_chi, "listed rows match the truth shifted by the recorded (shift_y, shift_x): chi2 <= 1.15",
            "\n".join(detail[:10]))
    T.check(bands_tested > 0 and found == bands_tested,
            f"searching the shift of each band with structure finds the recorded one ({found}/{bands_tested})",
            "\n".join(detail[:10]))
    worst = 0.0
    for r in range(R):
        for z in range(Z):
            rows = np.where(~covered[r, z])[0]
            if len(rows) == 0:
                continue
            sl_rows = rows[(rows >= 0)]
            v = gain * truth[z] + rn * rn + 1.0 / 12.0
            res = (reps[r, z] - truth[z]) ** 2 / v
            worst = max(worst, res[sl_rows].mean())
    T.check(worst < 1.15, "rows the table does not list are the unshifted truth (chi2 <= 1.15 in every plane)",
            f"worst chi2 {worst:.3f}")


# ---- PSF -------------------------------------------------------------------------------

def zipfel(na, lam, n):
    """Axial and lateral FWHM (um) from Zipfel et al. 2003 (1/e radii of the 2P PSF)."""
    wxy = 0.320 * lam / (np.sqrt(2) * na) if na <= 0.7 else 0.325 * lam / (np.sqrt(2) * na ** 0.91)
    wz = 0.532 * lam / np.sqrt(2) / (n - np.sqrt(n * n - na * na))
    return 2 * np.sqrt(np.log(2)) * wz, 2 * np.sqrt(np.log(2)) * wxy


def debye_fwhm(na, lam, n):
    """FWHM of the scalar Debye 2P PSF by direct numpy integration."""
    k, al = 2 * np.pi / lam, np.arcsin(na / n)
    th = np.linspace(0, al, 4001)

    def inten(r, z):
        f = np.sqrt(np.cos(th)) * np.sin(th) * j0(k * n * r * np.sin(th)) * np.exp(1j * k * n * z * np.cos(th))
        return abs(np.trapz(f, th)) ** 4

    def width(x, y):
        y = y / y[0]
        i = int(np.argmax(y < 0.5))
        return 2 * (x[i - 1] + (0.5 - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))

    r = np.linspace(0, 1, 1001)
    z = np.linspace(0, 3, 1501)
    return width(z, np.array([inten(0, v) for v in z])), width(r, np.array([inten(v, 0) for v in r]))


def gauss_fwhm(prof, dx):
    x = np.arange(len(prof)) * dx
    p0 = [prof.max() - prof.min(), x[int(np.argmax(prof))], 3 * dx, prof.min()]
    p, _ = curve_fit(lambda x, a, m, s, c: a * np.exp(-(x - m) ** 2 / (2 * s * s)) + c, x, prof, p0=p0)
    return abs(p[2]) * FWHM


def bead_fwhms(t, vox):
    """FWHM along z, y, x through each bead's peak voxel."""
    bg = np.median(t)
    mx = ndimage.maximum_filter(t, size=15)
    peaks = np.argwhere((t == mx) & (t > bg + 0.5 * (t.max() - bg)))
    out = []
    for z, y, x in peaks:
        out.append((gauss_fwhm(t[max(0, z - 30):z + 31, y, x], vox[0]),
                    gauss_fwhm(t[z, max(0, y - 15):y + 16, x], vox[1]),
                    gauss_fwhm(t[z, y, max(0, x - 15):x + 16], vox[2])))
    return np.array(out)


def psf():
    fz, fxy = zipfel(1.0, 0.92, 1.33)
    common = ["--phantom", "beads", "--shape", "64,96,96", "--voxel", "0.1,0.1,0.1", "--set", "beads=4",
              "--repeats", "1"]
    for name, extra, want, tol in (
            ("gaussian (Zipfel)", [], (fz, fxy), 0.10),
            ("gaussian, fwhm_xy_um 0.5, fwhm_z_um 2", ["--set", "fwhm_xy_um=0.5", "--set", "fwhm_z_um=2"],
             (2.0, 0.5), 0.10),
            ("computed (Debye)", ["--set", "psf=computed"], (fz, fxy), 0.10)):
        d, attrs = make(f"psf{len(extra)}/b.h5", *(common + extra))
        w = bead_fwhms(d["truth"].astype(np.float64), attrs["voxel_size"])
        if not T.check(len(w) >= 2, f"psf {name}: beads found in the truth ({len(w)})"):
            continue
        T.diag(f"psf {name}: measured FWHM z {w[:, 0].mean():.3f}, y {w[:, 1].mean():.3f}, x {w[:, 2].mean():.3f} um; "
               f"wanted z {want[0]:.3f}, xy {want[1]:.3f}")
        lat_err = np.abs(w[:, 1:] / want[1] - 1).max()
        ax_err = np.abs(w[:, 0] / want[0] - 1).max()
        T.check(lat_err < tol and ax_err < tol, f"psf {name}: lateral and axial FWHM within 10% of the requested",
                f"lateral error {lat_err:.3f}, axial {ax_err:.3f}")
        T.check(w[:, 0].mean() > 3 * w[:, 1:].mean(), f"psf {name}: axial FWHM several times the lateral")
        if "computed" in name:
            dz, dxy = debye_fwhm(1.0, 0.92, 1.33)
            e = max(abs(w[:, 0].mean() / dz - 1), abs(w[:, 1:].mean() / dxy - 1))
            T.check(e < 0.05, f"psf computed: FWHM within 5% of a numpy Debye integral ({dxy:.3f}, {dz:.3f} um)", e)


# ---- cells -----------------------------------------------------------------------------

def cells():
    shape = "48,96,96"
    nuc, na = make("cells/c.h5", "--phantom", "nuclei", "--shape", shape, "--seed", "4")
    vox = np.array(na["voxel_size"])
    T.check(np.allclose(vox, 0.5), "nuclei: isotropic 0.5 um voxels by default", vox)
    T.check(np.allclose(na["psf_fwhm_um"][0], na["psf_fwhm_um"][1]), "nuclei: isotropic PSF by default",
            na["psf_fwhm_um"])
    lab, t = nuc["labels"], nuc["truth"].astype(np.float64)
    ids = np.unique(lab)
    ids = ids[ids > 0]
    frac = (lab > 0).mean()
    dc = na["params"]["cell_diameter_um"]
    vol_um = np.prod(lab.shape) * vox.prod()
    # At most one nucleus per (dc^3 / 0.74) um^3 (spheres of diameter dc packed densely).
    max_n = vol_um / (np.pi / 6 * dc ** 3) / 0.74 * 3
    T.diag(f"nuclei: {len(ids)} labels, volume fraction {frac:.3f}")
    T.check(5 <= len(ids) <= max_n, f"nuclei: plausible count for the volume ({len(ids)})")
    T.check(0.08 <= frac <= 0.5, f"nuclei: plausible volume fraction ({frac:.3f})")
    comps, ncomp = ndimage.label(lab > 0)
    T.check(abs(ncomp - len(ids)) <= max(1, 0.1 * len(ids)), "nuclei: one connected region per label (about)",
            f"{ncomp} components, {len(ids)} labels")
    border = set(np.unique(np.concatenate([lab[0].ravel(), lab[-1].ravel(), lab[:, 0].ravel(), lab[:, -1].ravel(),
                                           lab[:, :, 0].ravel(), lab[:, :, -1].ravel()])))
    sizes = ndimage.sum_labels(np.ones_like(lab), lab, ids) * vox.prod()
    whole = np.array([i not in border for i in ids])
    lo, hi = 4 / 3 * np.pi * (0.34 * dc) ** 3, 4 / 3 * np.pi * (0.46 * dc) ** 3
    if whole.any():
        ok = ((sizes[whole] > 0.8 * lo) & (sizes[whole] < 1.2 * hi)).all()
        T.check(ok, f"nuclei: whole nuclei have the volume of ellipsoids with semi-axes 0.34-0.46 cell diameter",
                f"{sizes[whole].min():.1f}..{sizes[whole].max():.1f} um^3, expected {lo:.1f}..{hi:.1f}")
    bg = na["params"]["gain"] * na["params"]["background"]
    T.check(np.mean(t[lab > 0]) - bg > 5 * (np.mean(t[lab == 0]) - bg), "nuclei: the signal is in the nuclei")

    # The same sample name (c) and seed: the same cells.
    mem, ma = make("cells_m/c.h5", "--phantom", "membranes", "--shape", shape, "--seed", "4")
    ml, mt = mem["labels"], mem["truth"].astype(np.float64)
    T.check((ml > 0).all(), "membranes: every voxel belongs to a cell")
    T.check(np.array_equal(ml[lab > 0], lab[lab > 0]), "nucleus k lies inside cell k (same seed and sample)",
            f"{(ml[lab > 0] != lab[lab > 0]).sum()} nucleus voxels in another cell")
    edge = np.zeros(ml.shape, bool)
    for ax in range(3):
        dlab = np.diff(ml, axis=ax) != 0
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax], b[ax] = slice(0, -1), slice(1, None)
        edge[tuple(a)] |= dlab
        edge[tuple(b)] |= dlab
    inner = ndimage.binary_erosion(~edge, iterations=2)
    s_edge, s_in = mt[edge].mean() - bg, mt[inner].mean() - bg
    T.diag(f"membranes: mean signal at cell boundaries {s_edge:.2f}, inside cells {s_in:.2f}")
    T.check(s_edge > 5 * max(s_in, 1e-6), "membranes: the signal is on the boundaries between labelled cells")

    both, ba = make("cells_nm/c.h5", "--phantom", "nuclei_membranes", "--shape", shape,
                    "--seed", "4")
    T.check(np.array_equal(both["labels"], lab), "nuclei_membranes: same seed and name -> the nuclei's labels")
    bt = both["truth"].astype(np.float64)
    T.check(bt[edge & (lab == 0)].mean() - bg > 3 * (bt[inner & (lab == 0)].mean() - bg) and
            bt[lab > 0].mean() - bg > 3 * (bt[inner & (lab == 0)].mean() - bg),
            "nuclei_membranes: signal in nuclei and on membranes, little in the cytoplasm")
    T.check(len(nuc["spines"]) == 0 and len(mem["spines"]) == 0 and nuc["spines"].dtype.names ==
            ("id", "dendrite", "z", "y", "x", "radius_um"), "cell phantoms: an empty spine table with the columns")


# ---- command line and configs ---------------------------------------------------------

def cli():
    p = run(["synth", "--help"])
    T.check(p.returncode == 0 and p.stdout.startswith("usage: sirenstack synth"), "synth --help: usage, exit 0",
            describe(p))
    p = run(["--help"])
    T.check("synth" in p.stdout, "sirenstack --help lists synth")
    for args, what in ((["synth"], "no output"), (["synth", "-o", "x.h5", "--shape", "1,2"], "--shape 1,2"),
                       (["synth", "-o", "x.txt"], "an output that is not .h5 or .zarr"),
                       (["synth", "-o", "bad name.h5"], "a file name that is not a sample name"),
                       (["synth", "-o", "x.h5", "--bogus"], "an unknown option"),
                       (["synth", "-o", "x.h5", "--set", "photons"], "--set without =")):
        p = run(args, cwd=WORK)
        T.check(p.returncode == 64 and "usage:" in p.stderr, f"synth with {what}: exit 64 with the usage", describe(p))
    for sets, word, what in ((["photons=-1"], "photons", "a negative photon count"),
                             (["bogus=1"], "bogus", "an unknown parameter"),
                             (["psf=computed", "fwhm_xy_um=0.4"], "fwhm_xy_um", "fwhm with psf: computed"),
                             (["motion_repeats=[7]"], "motion_repeats", "a motion repeat that does not exist"),
                             (["na=1.4"], "na", "NA above the refractive index")):
        args = ["synth", "-o", os.path.join(WORK, "bad/b.h5")]
        for s in sets:
            args += ["--set", s]
        p = run(args)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        T.check(p.returncode == 2 and any(word in ln for ln in lines) and "Traceback" not in p.stderr and
                "synth.yaml" not in p.stderr, f"synth with {what}: exit 2, names {word}", describe(p))
    T.check(not os.path.exists(os.path.join(WORK, "bad/b.h5")), "bad options commit nothing")
    path = os.path.join(WORK, "again/a.h5")
    synth(path, "--shape", "4,32,32")
    p = run(["synth", "-o", path, "--shape", "4,32,32"])
    T.check(p.returncode == 0 and "up to date" in p.stderr, "synth again with the same options reuses the container",
            describe(p))
    p = run(["synth", "-o", path, "--shape", "4,32,32", "--seed", "9"])
    T.check(p.returncode == 0 and "running synth" in p.stderr, "synth with another seed reruns", describe(p))
    # --compression: the arrays' filters, and a refused name
    gz = os.path.join(WORK, "gzip/g.h5")
    p = synth(gz, "--shape", "4,32,32", "--compression", "gzip")
    filters, comp = set(), None
    if p.returncode == 0:
        with h5py.File(gz, "r") as f:
            for d in f["synth"].values():
                plist = d.id.get_create_plist()
                filters.add(tuple(plist.get_filter(k)[0] for k in range(plist.get_nfilters())))
            comp = f["synth"].attrs.get("compression")
    T.check(p.returncode == 0 and filters == {(2, 1)} and comp == "gzip",
            "synth --compression gzip: every array has HDF5's shuffle + deflate, the stage records gzip",
            f"{filters}\n{describe(p)}")
    p = run(["synth", "-o", os.path.join(WORK, "bad/c.h5"), "--compression", "gzip9"])
    T.check(p.returncode == 2 and "compression: 'gzip9' is not allowed" in p.stderr and
            "(did you mean 'gzip'?)" in p.stderr and "synth.yaml" not in p.stderr, "synth --compression gzip9: exit 2, did you mean 'gzip'", describe(p))
    # Zarr: the same sample name and seed give the same data as HDF5.
    zp, hp = os.path.join(WORK, "z/s.zarr"), os.path.join(WORK, "z/s.h5")
    pz, ph = synth(zp, "--shape", "4,48,40", "--seed", "3"), synth(hp, "--shape", "4,48,40", "--seed", "3")
    try:
        import zarr
    except ImportError:
        zarr = None
    if zarr is None:
        T.skip("synth -o x.zarr: zarr-python reads the same arrays as the HDF5 container", "zarr-python absent")
    else:
        ok = pz.returncode == 0 and ph.returncode == 0
        if ok:
            zg = zarr.open(zp, mode="r")["synth"]
            hd, _ = load(hp)
            ok = all(np.array_equal(np.asarray(zg[k]["0"][...]), hd[k]) for k in ("truth", "repeats", "labels"))
        T.check(ok, "synth -o x.zarr: zarr-python reads the same arrays as the HDF5 container", describe(pz))


def config_run():
    """The stage in a config: a sample's voxel size and repeats, kinds that fit fuse_mean."""
    d = os.path.join(WORK, "cfg")
    os.makedirs(d, exist_ok=True)

    def write(sample_extra, params):
        text = ("version: 1\nrun: {name: t, output: out, seed: 3, threads: 2}\nsamples:\n"
                f"  - {{id: s1{sample_extra}}}\nstages:\n"
                f"  raw: {{uses: synth, params: {json.dumps(params)}}}\n"
                "  mean: {uses: fuse_mean, inputs: {repeats: raw.repeats}}\n")
        with open(os.path.join(d, "c.yaml"), "w") as f:
            f.write(text)
        return run(["run", os.path.join(d, "c.yaml"), "--quiet"])

    p = write(", voxel_size: [0.8, 0.2, 0.2], repeats: 3", {"shape": [6, 40, 40], "repeats": 3})
    if T.check(p.returncode == 0, "config: synth -> fuse_mean runs", describe(p)):
        _, attrs = load(os.path.join(d, "out/s1.h5"), "raw")
        T.check(np.allclose(attrs["voxel_size"], [0.8, 0.2, 0.2]), "config: the sample's voxel size is used",
                attrs["voxel_size"])
        with h5py.File(os.path.join(d, "out/s1.h5"), "r") as f:
            T.check(f["mean/fused"].shape == (6, 40, 40), "config: fuse_mean takes synth's repeats")
    p = write(", repeats: 5", {"shape": [4, 32, 32], "repeats": 3})
    T.check(p.returncode == 2 and "repeats" in p.stderr, "config: sample repeats differ from the stage's: exit 2",
            describe(p))
    p = write(", voxel_size: [1, 0.1, 0.1]", {"shape": [4, 32, 32], "voxel_size": [1, 0.2, 0.2]})
    T.check(p.returncode == 2 and "voxel_size" in p.stderr, "config: voxel_size differs from the sample's: exit 2",
            describe(p))


guard("determinism", determinism)
guard("dendrites", dendrites)
guard("noise and motion", noise)
guard("psf", psf)
guard("cells", cells)
guard("command line", cli)
guard("config", config_run)
if len(sys.argv) <= 1 and not os.environ.get("KEEP_TMP"):
    shutil.rmtree(WORK, ignore_errors=True)
T.done()
