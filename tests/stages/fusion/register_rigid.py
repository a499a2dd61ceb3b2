#!/usr/bin/python3
"""Stage register_rigid end to end through the sirenstack binary, in TAP.

Synthetic: smooth random planes moved by known subpixel shifts (Fourier
shift, odd sizes so that no Nyquist bin is involved) must come back within
0.05 px; the shifts must equal skimage's phase_cross_correlation on the same
frames (0.1 px); the registered output must be scipy.ndimage.shift of the
input by the reported shift; mode repeat finds 3D shifts.
Real: the PC12 frames of pystackreg ($SHARED_DATA/pystackreg-pc12) against
TurboReg/StackReg's translation output (pc12-reg-translation.tif). The shifts
that output implies (least-squares fit) show it was made with StackReg's
'previous' reference (each frame to the one before, chained): reference
previous must reproduce them within 0.1 px (plain correlation; 0.5 px with
phase correlation), reference 0 (each frame to the first) within 0.25/0.5 px,
and the registered frames must correlate > 0.99 with that output.
Bad input: clear errors, exit codes, nothing committed.
"""
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

try:
    import numpy as np
    import scipy.ndimage as ndi
    import scipy.optimize
    from skimage.registration import phase_cross_correlation
    import sslib
    from sslib import h5py
except ImportError as e:
    print(f"1..0 # SKIP numpy/scipy/skimage/h5py not available: {e}")
    sys.exit(0)

T = sslib.Tap()
ROOT = T.tmpdir("reg")
SHARED = os.environ.get("SHARED_DATA") or os.path.join(sslib.SOURCE_ROOT, "..", "shared", "data")
rng = np.random.default_rng(7)


def fourier_shift(x, s):
    return np.fft.ifftn(ndi.fourier_shift(np.fft.fftn(x), s)).real


def pipeline(name, data, reg_params, axes="rzyx", extra=None, store="hdf5"):
    """Writes data to an HDF5 input, runs import_hdf5 -> register_rigid;
    returns (proc, container)."""
    d = os.path.join(ROOT, name)
    os.makedirs(d)
    src = os.path.join(d, "in.h5")
    with h5py.File(src, "w") as f:
        f["data"] = data
    stages = {
        "raw": {"uses": "import_hdf5", "params": {"file": src, "dataset": "/data", "axes": axes}},
        "reg": {"uses": "register_rigid", "inputs": {"repeats": "raw.raw"}, "params": dict(reg_params)},
    }
    if extra:
        stages.update(extra)
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), stages, store=store)
    p = sslib.run(["run", cfg, "--threads", "2"], timeout=300)
    return p, sslib.container_path(os.path.join(d, "out"), "s1", store)


def read(cont):
    with h5py.File(cont, "r", locking=False) as f:
        return f["reg/registered"][()], f["reg/shifts"][()], f["raw/raw"][()]


def committed(cont):
    if not os.path.exists(cont):
        return set()
    with h5py.File(cont, "r", locking=False) as f:
        return set(f.keys())


def smooth(shape, sigma=2.0):
    return (ndi.gaussian_filter(rng.standard_normal(shape), sigma) * 400 + 1000).astype(np.float64)


# ---- plane mode: known 2D shifts per plane ---------------------------------------
R, Z, Y, X = 4, 3, 63, 55
base = np.stack([smooth((Y, X)) for _ in range(Z)])
moves = rng.uniform(-6, 6, (R, Z, 2))
moves[0] = 0
reps = np.stack([[fourier_shift(base[z], moves[r, z]) for z in range(Z)] for r in range(R)]).astype(np.float32)
p, cont = pipeline("plane", reps, {"interpolation": "fourier"})
if T.check(p.returncode == 0, "mode plane, reference 0, Fourier resampling: the run succeeds", sslib.describe(p)):
    out, tab, raw = read(cont)
    T.check(tab.dtype.names == ("repeat", "z", "dy", "dx", "peak") and len(tab) == R * Z,
            f"shifts table: columns repeat, z, dy, dx, peak and R*Z = {R * Z} rows", f"{tab.dtype.names} {len(tab)}")
    found = np.zeros((R, Z, 2))
    for row in tab:
        found[row["repeat"], row["z"]] = (row["dy"], row["dx"])
    err = np.max(np.abs(found + moves))
    T.check(err <= 0.05, f"known subpixel shifts recovered: max error {err:.3f} px <= 0.05", f"found {found}\nmoved {moves}")
    sk = np.array([[phase_cross_correlation(raw[0, z].astype(np.float64), raw[r, z].astype(np.float64),
                                            upsample_factor=20)[0] for z in range(Z)] for r in range(R)])
    d = np.max(np.abs(found - sk))
    T.check(d <= 0.1, f"shifts equal skimage phase_cross_correlation(upsample_factor=20) within 0.1 px (max diff {d:.3f})")
    T.check(np.array_equal(out[0], raw[0].astype(np.float32)), "the reference repeat is copied unchanged (shift 0)")
    corr = min(np.corrcoef(out[r, z].ravel(), base[z].ravel())[0, 1] for r in range(R) for z in range(Z))
    T.check(corr > 0.9999, f"registered repeats match the unshifted planes (lowest correlation {corr:.6f} > 0.9999)")
    T.check(out.dtype == np.float32 and out.shape == reps.shape, f"registered: float32 {out.shape}")
    T.check(np.all(tab["peak"] > 0.5) and np.all(tab["peak"] <= 1 + 1e-6),
            f"peaks of these clean shifts are high ({tab['peak'].min():.3f} .. {tab['peak'].max():.3f})")

# ---- resampling: the output is scipy.ndimage.shift of the input by the shift reported
for interp, edge, order, mode in (("cubic", "reflect", 3, "reflect"), ("linear", "zero", 1, "grid-constant"),
                                  ("cubic", "nearest", 3, "nearest")):
    p, cont = pipeline(f"resample-{interp}-{edge}", reps, {"interpolation": interp, "edge": edge})
    if not T.check(p.returncode == 0, f"interpolation {interp}, edge {edge}: the run succeeds", sslib.describe(p)):
        continue
    out, tab, raw = read(cont)
    worst = 0
    for row in tab:
        r, z = row["repeat"], row["z"]
        want = ndi.shift(raw[r, z].astype(np.float64), (row["dy"], row["dx"]), order=order, mode=mode)
        worst = max(worst, np.max(np.abs(out[r, z] - want)) / np.ptp(raw[r, z]))
    T.check(worst <= 1e-5, f"{interp}/{edge}: registered = scipy.ndimage.shift(order={order}, mode='{mode}') "
                           f"by the reported shift (max diff {worst:.2g} of the range)")

# ---- the Zarr store: the same registered repeats and shifts table
if sslib.zarr is None:
    T.skip("zarr store: same outputs as HDF5", "zarr-python not available")
else:
    p, cont = pipeline("zarr", reps, {}, store="zarr")
    p2, cont2 = pipeline("zarr-h5", reps, {})
    ok = p.returncode == 0 and p2.returncode == 0
    if ok:
        g = sslib.zarr.open_group(cont, mode="r")
        out, tab, raw = read(cont2)
        zt = g["reg/shifts"][...]
        ok = np.array_equal(g["reg/registered/0"][...], out) and all(np.array_equal(zt[c], tab[c]) for c in tab.dtype.names)
    T.check(ok, "zarr store: registered repeats and the shifts table equal the HDF5 run's",
            sslib.describe(p) + "\n" + sslib.describe(p2))

# ---- references: mean and median -------------------------------------------------
noisy = (reps + rng.normal(0, 20, reps.shape)).astype(np.float32)
for ref in ("mean", "median", "2"):
    p, cont = pipeline(f"ref-{ref}", noisy, {"reference": ref, "interpolation": "linear"})
    if not T.check(p.returncode == 0, f"reference {ref}: the run succeeds", sslib.describe(p)):
        continue
    out, tab, raw = read(cont)
    worst = 0
    for row in tab:
        r, z = row["repeat"], row["z"]
        planes = raw[:, z].astype(np.float64)
        target = (planes.mean(0) if ref == "mean" else np.median(planes, 0) if ref == "median"
                  else planes[int(ref)]).astype(np.float32).astype(np.float64)
        want = phase_cross_correlation(target, planes[r], upsample_factor=20)[0]
        worst = max(worst, np.max(np.abs(want - (row["dy"], row["dx"]))))
    T.check(worst <= 0.1, f"reference {ref}: shifts equal skimage's against the {ref} plane (max diff {worst:.3f} <= 0.1)")

# ---- mode repeat: one 3D shift per repeat ----------------------------------------
R3 = 3
vol = smooth((15, 45, 41), 1.5)
moves3 = rng.uniform(-3, 3, (R3, 3))
moves3[0] = 0
reps3 = np.stack([fourier_shift(vol, moves3[r]) for r in range(R3)]).astype(np.float32)
p, cont = pipeline("repeat", reps3, {"mode": "repeat", "interpolation": "fourier"})
if T.check(p.returncode == 0, "mode repeat: the run succeeds", sslib.describe(p)):
    out, tab, raw = read(cont)
    T.check(tab.dtype.names == ("repeat", "z", "dy", "dx", "dz", "peak") and len(tab) == R3 and np.all(tab["z"] == -1),
            "mode repeat: one row per repeat, z = -1, with a dz column", f"{tab.dtype.names} {tab}")
    found = np.stack([tab["dz"], tab["dy"], tab["dx"]], 1)
    err = np.max(np.abs(found + moves3))
    T.check(err <= 0.05, f"known 3D subpixel shifts recovered: max error {err:.3f} px <= 0.05", f"{found}\n{moves3}")
    sk = np.array([phase_cross_correlation(raw[0].astype(np.float64), raw[r].astype(np.float64),
                                           upsample_factor=20)[0] for r in range(R3)])
    d = np.max(np.abs(found - sk))
    T.check(d <= 0.1, f"3D shifts equal skimage's within 0.1 px (max diff {d:.3f})")
p, cont = pipeline("repeat-previous", reps3, {"mode": "repeat", "reference": "previous"})
if T.check(p.returncode == 0, "mode repeat, reference previous: the run succeeds", sslib.describe(p)):
    out, tab, raw = read(cont)
    found = np.stack([tab["dz"], tab["dy"], tab["dx"]], 1)
    r64 = raw.astype(np.float64)
    chained = np.cumsum([np.zeros(3)] + [phase_cross_correlation(r64[r - 1], r64[r], upsample_factor=20)[0]
                                         for r in range(1, R3)], 0)
    d = np.max(np.abs(found - chained))
    T.check(d <= 0.1 and np.max(np.abs(found + moves3)) <= 0.1,
            f"reference previous: the shifts are skimage's between neighbours, summed (max diff {d:.3f}), "
            f"and undo the known moves (max error {np.max(np.abs(found + moves3)):.3f} px)")

# ---- bad input and parameters ----------------------------------------------------
p, cont = pipeline("bad-index", reps, {"reference": "7"})
errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
T.check(p.returncode == 3 and len(errors) == 1 and "reference repeat 7" in errors[0] and "4 repeats" in errors[0]
        and "raw.raw" in errors[0] and "reg" not in committed(cont),
        "reference index beyond the repeats (known from the data): exit 3, one line naming it, nothing committed", sslib.describe(p))
p, cont = pipeline("bad-word", reps, {"reference": "first"})
T.check(p.returncode == 2 and "reference must be mean, median, previous or a repeat index" in p.stderr and not committed(cont),
        "reference 'first': a validation error (exit 2) before anything runs", sslib.describe(p))
p, cont = pipeline("too-far", reps, {"max_shift_px": 2})
T.check(p.returncode == 3 and "exceeds max_shift_px 2" in p.stderr and "repeat" in p.stderr and "plane" in p.stderr
        and "reg" not in committed(cont),
        "a shift beyond max_shift_px (on_max_shift error): exit 3 naming repeat and plane, nothing committed",
        sslib.describe(p))
p, cont = pipeline("restrict", reps, {"max_shift_px": 2, "on_max_shift": "restrict"})
if T.check(p.returncode == 0, "on_max_shift restrict: the run succeeds", sslib.describe(p)):
    out, tab, raw = read(cont)
    T.check(np.all(np.abs(tab["dy"]) <= 2) and np.all(np.abs(tab["dx"]) <= 2),
            f"on_max_shift restrict: every shift within 2 px (largest {np.max(np.abs([tab['dy'], tab['dx']])):.2f})")
p, cont = pipeline("bad-rank", reps[0, 0], {}, axes="yx",
                   extra={"img": {"uses": "fuse_mean", "inputs": {"repeats": "raw.raw"}},
                          "reg": {"uses": "register_rigid", "inputs": {"repeats": "img.fused"}}})
T.check(p.returncode == 2 and "reg" not in committed(cont),
        "an image (ZYX) where repeats are expected: a validation error (exit 2)", sslib.describe(p))

# ---- real data: PC12 frames against TurboReg/StackReg ------------------------------
PC12 = os.path.join(SHARED, "pystackreg-pc12")
POINTS = 17
if not os.path.isdir(PC12):
    for i in range(POINTS):
        T.skip(f"PC12 check {i + 1}", "shared data absent")
else:
    import tifffile
    unreg = tifffile.imread(os.path.join(PC12, "pc12-unreg.tif"))
    turbo = tifffile.imread(os.path.join(PC12, "pc12-reg-translation.tif")).astype(np.float64)
    n = unreg.shape[0]
    # The shifts TurboReg applied: least-squares fit of a cubic-spline shift of
    # each raw frame to its output, away from the zero-filled border.
    inner = np.zeros(unreg.shape[1:], bool)
    inner[20:-20, 20:-20] = True
    implied = np.zeros((n, 2))
    for i in range(1, n):
        u = unreg[i].astype(np.float64)
        start = phase_cross_correlation(turbo[i], u, upsample_factor=20, normalization=None)[0]
        f = lambda s: np.sum((ndi.shift(u, s, order=3, mode="grid-constant") - turbo[i])[inner] ** 2)  # noqa: E731
        implied[i] = scipy.optimize.minimize(f, start, method="Nelder-Mead",
                                             options={"xatol": 1e-4, "fatol": 1e-6}).x
    # StackReg's 'first' (every frame to frame 0) or 'previous' (each frame to
    # the one before, transforms chained)? Whichever reproduces its output.
    u64 = unreg.astype(np.float64)

    def sk_shifts(ref, norm):
        norm = "phase" if norm == "phase" else None
        if ref == "previous":
            return np.cumsum([np.zeros(2)] + [phase_cross_correlation(u64[i - 1], u64[i], upsample_factor=20,
                                                                      normalization=norm)[0] for i in range(1, n)], 0)
        return np.array([phase_cross_correlation(u64[0], u64[i], upsample_factor=20, normalization=norm)[0]
                         for i in range(n)])

    e_first = np.abs(sk_shifts("0", "none") - implied).max()
    e_prev = np.abs(sk_shifts("previous", "none") - implied).max()
    T.diag(f"TurboReg's implied shifts (dy, dx): {np.round(implied, 2).tolist()}")
    T.diag(f"largest difference from them (skimage, plain correlation): reference first {e_first:.2f} px, "
           f"previous (chained) {e_prev:.2f} px")
    T.check(e_prev < e_first and e_prev <= 0.1,
            f"the reference output was registered with StackReg's 'previous' semantics: chained shifts match it "
            f"(largest difference {e_prev:.2f} px) better than shifts to the first frame ({e_first:.2f} px)")
    for ref, norm, tol in (("previous", "none", 0.1), ("previous", "phase", 0.5), ("0", "none", 0.25),
                           ("0", "phase", 0.5)):
        what = f"PC12, reference {ref}, normalization {norm}"
        p, cont = pipeline(f"pc12-{ref}-{norm}", unreg, {"reference": ref, "normalization": norm, "edge": "zero"},
                           axes="tyx")
        if not T.check(p.returncode == 0, f"{what}: the run succeeds", sslib.describe(p)):
            continue
        out, tab, raw = read(cont)
        found = np.stack([tab["dy"], tab["dx"]], 1)
        d = np.abs(found - implied).max()
        T.check(d <= tol, f"{what}: shifts within {tol} px of TurboReg's (largest difference {d:.2f} px)",
                f"found {found.tolist()}\nimplied {implied.tolist()}")
        d = np.abs(found - sk_shifts(ref, norm)).max()
        T.check(d <= 0.1, f"{what}: shifts equal skimage phase_cross_correlation's within 0.1 px (max diff {d:.3f})")
        corr = [np.corrcoef(out[i, 0].ravel(), turbo[i].ravel())[0, 1] for i in range(n)]
        before = [np.corrcoef(u64[i].ravel(), turbo[i].ravel())[0, 1] for i in range(n)]
        T.check(min(corr) > 0.99, f"{what}: registered frames correlate with TurboReg's output "
                                  f"(lowest {min(corr):.4f} > 0.99; unregistered: {min(before):.3f})")

T.done()
