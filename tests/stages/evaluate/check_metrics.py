#!/usr/bin/python3
"""The metrics stage in real pipelines, against skimage.metrics and numpy, in TAP.

Writes an HDF5 input with h5py (a smooth random reference around 100 and
three methods: reference + noise, blurred reference + noise, an exact copy),
imports each dataset with import_hdf5 (axes zyx, so R = 1) and fuse_mean (a
ZYX image), and scores the methods with two metrics stages:
  mg: ssim_window gaussian, data_range null (max - min of the reference)
  mu: ssim_window uniform, data_range 150
The tables are read back with h5py and compared with
skimage.metrics.mean_squared_error / peak_signal_noise_ratio /
structural_similarity (float64 copies of the same float32 arrays, the
matching window settings, data_range given explicitly) per plane and over
the volume, and with numpy for the spectrum MSE. Then: CSV export of inf,
the same numbers with one thread, with store: zarr, and the errors (shape
mismatch, NaN, planes smaller than the window, too few planes for 3D SSIM).

Environment: SIRENSTACK (the binary), KEEP_TMP (keep the work folder).
"""
import csv
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import yaml

try:
    import hdf5plugin  # noqa: F401 - the blosc filter of the containers
except ImportError:  # pragma: no cover
    pass
import h5py
from scipy.ndimage import gaussian_filter
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BIN = os.environ.get("SIRENSTACK") or os.path.join(os.environ.get("BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build"),
                                                   "sirenstack")
SHAPE = (14, 48, 40)
TOL_SSIM = 1e-4  # the requirement


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

T = Tap()


def run(args, timeout=240):
    return subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def describe(p):
    return f"argv: {' '.join(map(str, p.args))}\nexit: {p.returncode}\nstderr: {p.stderr[-2000:]}"


def write_config(path, stages, store="hdf5", output="out"):
    cfg = {"version": 1, "run": {"name": "metrics-test", "output": output, "store": store, "seed": 1},
           "samples": [{"id": "s1", "input": "in.h5", "voxel_size": [1.0, 0.1, 0.1]}], "stages": stages}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None)


def import_stages(names):
    st = {}
    for n in names:
        st[f"imp_{n}"] = {"uses": "import_hdf5", "params": {"dataset": f"/{n}", "axes": "zyx"}}
        st[n] = {"uses": "fuse_mean", "inputs": {"repeats": f"imp_{n}.raw"}}
    return st


def make_data(rng):
    ref = gaussian_filter(rng.normal(size=SHAPE), (1.0, 2.0, 2.0))
    ref = (100 + 20 * ref / ref.std()).astype(np.float32)
    m1 = (ref + rng.normal(0, 2.0, SHAPE)).astype(np.float32)
    m2 = (gaussian_filter(ref.astype(np.float64), 1.0) + rng.normal(0, 5.0, SHAPE)).astype(np.float32)
    return {"ref": ref, "m1": m1, "m2": m2, "same": ref.copy()}


def read_tables(container, stage):
    with h5py.File(container, "r") as f:
        return f[f"{stage}/per_plane"][()], f[f"{stage}/summary"][()], dict(f[stage].attrs)


def s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def ssim_args(window, L):
    if window == "gaussian":
        return dict(data_range=L, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=None)
    return dict(data_range=L, win_size=7, use_sample_covariance=True, channel_axis=None)


def spectrum_mse(a, b):
    fa = np.log(1 + np.abs(np.fft.fftshift(np.fft.fft2(a))))
    fb = np.log(1 + np.abs(np.fft.fftshift(np.fft.fft2(b))))
    return float(np.mean((fa - fb) ** 2))


def expected(ref, m, window, L):
    """Per-plane values and summary rows by skimage / numpy."""
    r64, m64 = ref.astype(np.float64), m.astype(np.float64)
    rows = []
    for z in range(ref.shape[0]):
        rows.append((mean_squared_error(r64[z], m64[z]),
                     peak_signal_noise_ratio(r64[z], m64[z], data_range=L) if not np.array_equal(r64[z], m64[z])
                     else math.inf,
                     structural_similarity(r64[z], m64[z], **ssim_args(window, L)),
                     spectrum_mse(r64[z], m64[z])))
    rows = np.array(rows)
    summ = {}
    with np.errstate(invalid="ignore"):
        for i, name in enumerate(("mse", "psnr", "ssim", "spectrum_mse")):
            summ[name] = (float(np.mean(rows[:, i])), float(np.std(rows[:, i])), ref.shape[0])
    mse_vol = mean_squared_error(r64, m64)
    summ["psnr_volume"] = (peak_signal_noise_ratio(r64, m64, data_range=L) if mse_vol > 0 else math.inf, math.nan,
                           ref.size)
    win = 11 if window == "gaussian" else 7
    if min(ref.shape) >= win:
        mssim, full = structural_similarity(r64, m64, full=True, **ssim_args(window, L))
        p = (win - 1) // 2
        crop = full[p:-p, p:-p, p:-p]
        summ["ssim3d"] = (float(mssim), float(crop.std()), crop.size)
    else:
        summ["ssim3d"] = (math.nan, math.nan, 0)
    return rows, summ


def close(a, b, tol, rel=False):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= (tol * max(abs(b), 1e-300) if rel else tol)


# (metric, tolerance, relative?)
TOLS = {"mse": (1e-9, True), "psnr": (1e-6, False), "ssim": (TOL_SSIM, False), "spectrum_mse": (1e-4, True),
        "psnr_volume": (1e-6, False), "ssim3d": (TOL_SSIM, False)}


def compare_stage(container, stage, data, window, L, methods):
    pp, sm, attrs = read_tables(container, stage)
    T.check(set(pp.dtype.names) == {"method", "z", "mse", "psnr", "ssim", "spectrum_mse"}
            and set(sm.dtype.names) == {"method", "metric", "mean", "std", "n"},
            f"{stage}: table columns", f"{pp.dtype.names} {sm.dtype.names}")
    T.check(len(pp) == len(methods) * SHAPE[0], f"{stage}: {len(methods)} x {SHAPE[0]} per-plane rows", len(pp))
    for mname in methods:
        rows, summ = expected(data["ref"], data[mname], window, L)
        mine = pp[[s(x) == f"{mname}.fused" for x in pp["method"]]]
        T.check(list(mine["z"]) == list(range(SHAPE[0])), f"{stage} {mname}: one row per plane in z order",
                list(mine["z"]))
        for i, metric in enumerate(("mse", "psnr", "ssim", "spectrum_mse")):
            tol, rel = TOLS[metric]
            got = mine[metric].astype(np.float64)
            bad = [(z, got[z], rows[z, i]) for z in range(SHAPE[0]) if not close(got[z], rows[z, i], tol, rel)]
            worst = max((abs(g - w) for g, w in zip(got, rows[:, i]) if np.isfinite(g) and np.isfinite(w)),
                        default=0.0)
            T.check(not bad, f"{stage} {mname}: per-plane {metric} matches skimage/numpy (worst |diff| {worst:.2e})",
                    "\n".join(f"z={z}: got {g!r} want {w!r}" for z, g, w in bad[:10]))
        srows = {s(r["metric"]): r for r in sm if s(r["method"]) == f"{mname}.fused"}
        for metric, (mean, std, n) in summ.items():
            r = srows.get(metric)
            if r is None:
                T.check(False, f"{stage} {mname}: summary row {metric}", sorted(srows))
                continue
            tol, rel = TOLS[metric]
            ok = close(float(r["mean"]), mean, tol, rel) and close(float(r["std"]), std, tol, rel) and int(r["n"]) == n
            T.check(ok, f"{stage} {mname}: summary {metric} mean {float(r['mean']):.6g} std {float(r['std']):.3g} "
                        f"n {int(r['n'])} matches",
                    f"got mean {float(r['mean'])!r} std {float(r['std'])!r} n {int(r['n'])}; "
                    f"want {mean!r} {std!r} {n}")
        T.check("spine_recovery" not in srows, f"{stage} {mname}: no spine_recovery row without spines")
    return pp, sm, attrs


def main():
    if not os.path.exists(BIN):
        print(f"1..0 # SKIP {BIN} not built")
        return
    work = tempfile.mkdtemp(prefix="ss-metrics-")
    try:
        body(work)
    finally:
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            T.diag(f"kept {work}")
    T.done()


def body(work):
    rng = np.random.default_rng(11)
    data = make_data(rng)
    with h5py.File(os.path.join(work, "in.h5"), "w") as f:
        for k, v in data.items():
            f[k] = v
    methods = ["m1", "m2", "same"]
    stages = import_stages(["ref"] + methods)
    refs = [f"{m}.fused" for m in methods]
    stages["mg"] = {"uses": "metrics", "inputs": {"reference": "ref.fused", "methods": refs}}
    stages["mu"] = {"uses": "metrics", "inputs": {"reference": "ref.fused", "methods": refs},
                    "params": {"ssim_window": "uniform", "data_range": 150}}
    cfg = os.path.join(work, "c.yaml")
    write_config(cfg, stages)
    p = run(["run", cfg, "--quiet"])
    if not T.check(p.returncode == 0, "pipeline import -> fuse_mean -> metrics runs", describe(p)):
        return
    container = os.path.join(work, "out", "s1.h5")
    ref = data["ref"]
    L_auto = float(ref.max()) - float(ref.min())
    T.diag(f"data_range null -> {L_auto!r} (skimage's own default for float input would be "
           f"{2.0 if ref.min() < 0 else 1.0}, from the dtype, not the data)")
    pp_g, sm_g, attrs = compare_stage(container, "mg", data, "gaussian", L_auto, methods)
    T.check(float(attrs.get("data_range_value", math.nan)) == L_auto,
            "mg: data_range null is max - min of the reference volume", attrs.get("data_range_value"))
    T.check(int(attrs.get("ssim_window_size", 0)) == 11, "mg: gaussian window 11 taps")
    _, _, attrs_u = compare_stage(container, "mu", data, "uniform", 150.0, methods)
    T.check(float(attrs_u.get("data_range_value", math.nan)) == 150.0 and int(attrs_u.get("ssim_window_size", 0)) == 7,
            "mu: explicit data_range 150, uniform window 7")

    # The identical method, exactly.
    same = pp_g[[s(x) == "same.fused" for x in pp_g["method"]]]
    T.check(np.all(same["mse"] == 0) and np.all(np.isposinf(same["psnr"])) and np.all(same["ssim"] == 1.0)
            and np.all(same["spectrum_mse"] == 0), "identical method: mse 0, psnr +inf, ssim 1, spectrum_mse 0 exactly")
    srow = {s(r["metric"]): r for r in sm_g if s(r["method"]) == "same.fused"}
    T.check(srow["ssim3d"]["mean"] == 1.0 and srow["ssim3d"]["std"] == 0.0 and np.isposinf(srow["psnr_volume"]["mean"]),
            "identical method: ssim3d 1 (std 0), psnr_volume +inf")

    # CSV export prints inf.
    csv_path = os.path.join(work, "summary.csv")
    p = run(["export", container, "mg/summary", "-o", csv_path])
    ok = p.returncode == 0 and os.path.exists(csv_path)
    rows = list(csv.DictReader(open(csv_path))) if ok else []
    psnr_same = [r for r in rows if r["method"] == "same.fused" and r["metric"] == "psnr"]
    T.check(ok and psnr_same and psnr_same[0]["mean"] == "inf" and psnr_same[0]["std"] == "nan",
            "export mg/summary to CSV: psnr of the identical method reads inf (std nan)", describe(p) + str(psnr_same))
    m1 = [r for r in rows if r["method"] == "m1.fused" and r["metric"] == "ssim"]
    want = float(sm_g[[(s(r["method"]), s(r["metric"])) == ("m1.fused", "ssim") for r in sm_g]]["mean"][0])
    T.check(m1 and float(m1[0]["mean"]) == want, "CSV values round-trip exactly (%.17g)")
    p = run(["export", container, "mg/per_plane", "-o", os.path.join(work, "pp.csv")])
    rows = list(csv.DictReader(open(os.path.join(work, "pp.csv")))) if p.returncode == 0 else []
    T.check(len(rows) == 3 * SHAPE[0] and all(r["psnr"] == "inf" for r in rows if r["method"] == "same.fused"),
            "export mg/per_plane to CSV: 42 rows, psnr inf for the identical method", describe(p))

    # One thread: the same bits.
    p = run(["run", cfg, "--quiet", "--force", "mg", "--threads", "1"])
    pp1, sm1, _ = read_tables(container, "mg") if p.returncode == 0 else (None, None, None)
    T.check(p.returncode == 0 and pp1.tobytes() == pp_g.tobytes() and sm1.tobytes() == sm_g.tobytes(),
            "--threads 1 gives bit-identical tables", describe(p))

    # store: zarr gives the same tables.
    try:
        import zarr
    except ImportError:
        zarr = None
    if zarr is None:
        T.skip("zarr store: same tables", "zarr-python missing")
    else:
        cfgz = os.path.join(work, "cz.yaml")
        write_config(cfgz, {k: v for k, v in stages.items() if k != "mu"}, store="zarr", output="outz")
        p = run(["run", cfgz, "--quiet"])
        same_tables = False
        detail = describe(p)
        if p.returncode == 0:
            g = zarr.open_group(os.path.join(work, "outz", "s1.zarr"), mode="r")
            zp, zs = g["mg/per_plane"][...], g["mg/summary"][...]
            same_tables = all(np.array_equal(zp[n], pp_g[n], equal_nan=zp[n].dtype.kind == "f") for n in pp_g.dtype.names)
            same_tables &= all(np.array_equal(zs[n], sm_g[n], equal_nan=zs[n].dtype.kind == "f")
                               for n in sm_g.dtype.names)
            detail = f"{zp[:3]}\n{pp_g[:3]}"
        T.check(same_tables, "store: zarr gives the same tables (zarr-python reads them)", detail)

    errors(work, data)


def errors(work, data):
    """Bad inputs: one-line errors, exit 3, nothing committed. (NaN never gets
    this far: import_hdf5 refuses it; check_mask_spines.py commits one.)"""
    rng = np.random.default_rng(5)
    Z, Y, X = SHAPE
    bad = {"ref": data["ref"], "wide": np.zeros((Z, Y, X + 1), np.float32), "short": np.zeros((Z - 1, Y, X), np.float32),
           "tiny_ref": rng.normal(size=(6, 8, 9)).astype(np.float32),
           "tiny_m": rng.normal(size=(6, 8, 9)).astype(np.float32),
           "thin_ref": rng.normal(size=(6, 12, 13)).astype(np.float32),
           "thin_m": rng.normal(size=(6, 12, 13)).astype(np.float32),
           "const": np.full((12, 12, 12), 3.0, np.float32), "const_m": np.full((12, 12, 12), 3.0, np.float32),
           "m_ok": data["m1"]}
    d = os.path.join(work, "bad")
    os.makedirs(d)
    with h5py.File(os.path.join(d, "in.h5"), "w") as f:
        for k, v in bad.items():
            f[k] = v

    def case(name, ref, methods, params=None):
        st = import_stages(sorted({ref} | set(methods)))
        st["met"] = {"uses": "metrics", "inputs": {"reference": f"{ref}.fused", "methods": [f"{m}.fused" for m in methods]}}
        if params:
            st["met"]["params"] = params
        cfg = os.path.join(d, f"{name}.yaml")
        write_config(cfg, st, output=f"out_{name}")
        p = run(["run", cfg, "--quiet"])
        with h5py.File(os.path.join(d, f"out_{name}", "s1.h5"), "r") as f:
            committed = "met" in f
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        return p, committed, lines

    for name, methods, words in (("wide", ["wide"], ["wide.fused", "ref.fused", "14 x 48 x 41", "14 x 48 x 40"]),
                                 ("short", ["m_ok", "short"], ["short.fused", "ref.fused", "13 x 48 x 40"])):
        p, committed, lines = case(name, "ref", methods)
        T.check(p.returncode == 3 and not committed and len(lines) == 1 and all(w in lines[0] for w in words),
                f"{name}: exit 3, one line naming {', '.join(words)}, metrics not committed", describe(p))

    p, committed, lines = case("tiny", "tiny_ref", ["tiny_m"])
    T.check(p.returncode == 3 and not committed and len(lines) == 1 and "smaller than the gaussian SSIM window (11)"
            in lines[0] and "8 x 9" in lines[0], "planes of 8 x 9 with the gaussian window: exit 3, clear message",
            describe(p))
    p, committed, lines = case("const", "const", ["const_m"])
    T.check(p.returncode == 3 and not committed and len(lines) == 1 and "constant" in lines[0]
            and "data_range" in lines[0], "constant reference with data_range null: exit 3, asks for data_range",
            describe(p))
    p, committed, lines = case("const_ok", "const", ["const_m"], {"data_range": 1.0})
    T.check(p.returncode == 0 and committed, "constant reference with data_range given: runs", describe(p))

    # Six planes: 2D metrics as usual (uniform window), ssim3d NaN with n 0 and a warning.
    p, committed, lines = case("thin", "thin_ref", ["thin_m"], {"ssim_window": "uniform"})
    ok = p.returncode == 0 and committed
    detail = describe(p)
    if ok:
        pp, sm, _ = read_tables(os.path.join(d, "out_thin", "s1.h5"), "met")
        r64, m64 = bad["thin_ref"].astype(np.float64), bad["thin_m"].astype(np.float64)
        L = float(bad["thin_ref"].max()) - float(bad["thin_ref"].min())
        want = [structural_similarity(r64[z], m64[z], **ssim_args("uniform", L)) for z in range(6)]
        row3 = [r for r in sm if s(r["metric"]) == "ssim3d"][0]
        ok = (np.max(np.abs(pp["ssim"] - want)) <= TOL_SSIM and math.isnan(row3["mean"]) and int(row3["n"]) == 0)
        detail = f"{pp['ssim']} vs {want}; ssim3d row {row3}"
    p2 = run(["run", os.path.join(d, "thin.yaml"), "--force", "met"])
    T.check(ok and "fewer than the SSIM window" in p2.stderr,
            "6 planes: per-plane SSIM matches skimage, ssim3d NaN with n 0 and a warning", detail + p2.stderr[-500:])

    # Repeats where an image is expected: one repeat (axes zyx) is the image and
    # scores as fuse_mean's; two (one dataset per repeat) are refused before
    # anything runs.
    st = import_stages(["ref", "m_ok"])
    st["met"] = {"uses": "metrics", "inputs": {"reference": "imp_ref.raw", "methods": ["m_ok.fused"]}}
    st["met_fused"] = {"uses": "metrics", "inputs": {"reference": "ref.fused", "methods": ["m_ok.fused"]}}
    write_config(os.path.join(d, "kind.yaml"), st, output="out_kind")
    p = run(["run", os.path.join(d, "kind.yaml")])
    same = False
    if p.returncode == 0:
        with h5py.File(os.path.join(d, "out_kind", "s1.h5"), "r") as f:
            tabs = [(f[f"met/{t}"][()], f[f"met_fused/{t}"][()]) for t in ("per_plane", "summary")]
            same = all(np.array_equal(a[c], b[c], equal_nan=a[c].dtype.kind == "f") for a, b in tabs
                       for c in a.dtype.names)
    T.check(same, "one repeat as reference: scored as the image it is (the tables equal those through fuse_mean)",
            describe(p))
    st["imp_two"] = {"uses": "import_hdf5", "params": {"datasets": ["/ref", "/m_ok"], "axes": "zyx"}}
    st["met"]["inputs"]["reference"] = "imp_two.raw"
    write_config(os.path.join(d, "kind2.yaml"), st, output="out_kind2")
    p = run(["validate", os.path.join(d, "kind2.yaml")])
    T.check(p.returncode == 2 and "'imp_two.raw' holds 2 repeats, but input 'reference' of metrics" in p.stderr,
            "two repeats as reference: config error (exit 2)", describe(p))


if __name__ == "__main__":
    main()
