#!/usr/bin/python3
"""Plane masks and spine recovery of the metrics stage, in TAP.

usage: check_mask_spines.py METRICS_HARNESS

A hand-made phantom: a flat background with bright disks (spine heads of
radius 0.3 um = 3 pixels at 0.1 um) at known positions on 12 planes. The
method is the phantom plus noise with some heads removed, some dimmed to 10%
and some to 50% of their contrast, so the recovered fraction is known
exactly. The reference and method are imported by a real pipeline
(import_hdf5 -> fuse_mean); no registered stage writes plane masks or spine
tables yet, so metrics_harness commits those through the store API and runs
the stage as the runner does. The recovered fraction is checked against the
design and against a numpy implementation of the documented criterion; the
masked run against skimage on the masked planes; then bad masks, bad spine
tables and NaN in a method. Last, where stages synth and interp_linear are
built, a plain config with synth's spines table and interp_linear's held-out
mask, checked against numpy on what those stages wrote.
"""
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import yaml

try:
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover
    pass
import h5py
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BIN = os.environ.get("SIRENSTACK") or os.path.join(os.environ.get("BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build"),
                                                   "sirenstack")
HARNESS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("BUILD_ROOT", "build"), "tests", "stages",
                                                              "metrics_harness")
Z, Y, X = 13, 64, 64
VOXEL = (1.0, 0.1, 0.1)
R_UM = 0.3
BG, HEAD = 10.0, 50.0
GRID_Y = (8.3, 24.6, 40.2, 56.7)
GRID_X = (8.4, 24.1, 40.6, 56.2)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

T = Tap()


def s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def disk(y, x, r_um, shape=(Y, X)):
    """Squared distances in um from (y, x) to every pixel centre."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    dy, dx = (yy - y) * VOXEL[1], (xx - x) * VOXEL[2]
    with np.errstate(over="ignore"):
        return dy * dy + dx * dx


def head_contrast(plane, y, x, r_um):
    """The documented criterion, written independently: mean over distance <=
    r minus mean over r < distance <= 2r, distances in um between pixel
    centres, pixels outside the plane ignored."""
    d2 = disk(y, x, r_um, plane.shape)
    head, ring = d2 <= r_um * r_um, (d2 > r_um * r_um) & (d2 <= 4 * (r_um * r_um))
    if not head.any() or not ring.any():
        return math.nan
    p = plane.astype(np.float64)
    return p[head].mean() - p[ring].mean()


def phantom(rng):
    """Reference, method, spine rows (z, y, x, r) and each head's fate."""
    ref = np.full((Z, Y, X), BG, np.float64)
    met = ref.copy()
    fates = ("keep", "remove", "dim10", "keep", "dim50", "keep", "remove", "dim10", "keep")
    spines, fate = [], []
    i = 0
    for z in range(Z):
        # two or three heads per plane; z given off-centre to test the rounding
        for k in range(2 + z % 2):
            y, x = GRID_Y[(z + k) % 4], GRID_X[(2 * z + 3 * k) % 4]
            zc = z + (-0.5 if (i % 3 == 0 and z > 0) else 0.49 if i % 3 == 1 else 0.0)
            d = disk(y, x, R_UM) <= R_UM * R_UM
            f = fates[i % len(fates)]
            ref[z][d] = BG + HEAD
            met[z][d] = BG + {"keep": HEAD, "remove": 0.0, "dim10": 0.1 * HEAD, "dim50": 0.5 * HEAD}[f]
            spines.append((zc, y, x, R_UM))
            fate.append(f)
            i += 1
    # never counted: outside the stack (plane, or far beyond the plane's edge),
    # and a place with no head in the reference
    spines.append((-3.0, 30.0, 30.0, R_UM))
    fate.append("outside")
    spines.append((3.0, 1e300, -1e300, R_UM))
    fate.append("outside")
    spines.append((5.2, 8.3, 56.2, R_UM))
    fate.append("nothing")
    met += rng.normal(0, 0.5, met.shape)
    return ref.astype(np.float32), met.astype(np.float32), spines, fate


def plane_of(z):
    return int(math.floor(z + 0.5))


def harness(container, out, ref, methods, *extra):
    return subprocess.run([HARNESS, container, out, ref, ",".join(methods)] + [str(e) for e in extra],
                          capture_output=True, text=True, timeout=120)


def describe(p):
    return f"argv: {' '.join(map(str, p.args))}\nexit: {p.returncode}\nstderr: {p.stderr[-1500:]}"


def tables(container, stage):
    with h5py.File(container, "r") as f:
        if stage not in f:
            return None, None, None
        return f[f"{stage}/per_plane"][()], f[f"{stage}/summary"][()], dict(f[stage].attrs)


def committed(container, stage):
    with h5py.File(container, "r") as f:
        return stage in f


def summary_row(sm, method, metric):
    rows = [r for r in sm if s(r["method"]) == method and s(r["metric"]) == metric]
    return rows[0] if rows else None


def main():
    if not os.path.exists(BIN) or not os.path.exists(HARNESS):
        print(f"1..0 # SKIP {BIN} or {HARNESS} not built")
        return
    work = tempfile.mkdtemp(prefix="ss-metrics-ms-")
    try:
        body(work)
    finally:
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(work, ignore_errors=True)
    T.done()


def body(work):
    rng = np.random.default_rng(3)
    ref, met, spines, fate = phantom(rng)
    with h5py.File(os.path.join(work, "in.h5"), "w") as f:
        f["ref"], f["m"] = ref, met
    stages = {}
    for n in ("ref", "m"):
        stages[f"imp_{n}"] = {"uses": "import_hdf5", "params": {"dataset": f"/{n}", "axes": "zyx"}}
        stages[n] = {"uses": "fuse_mean", "inputs": {"repeats": f"imp_{n}.raw"}}
    cfg = {"version": 1, "run": {"name": "ms", "output": "out", "seed": 1},
           "samples": [{"id": "s1", "input": "in.h5", "voxel_size": list(VOXEL)}], "stages": stages}
    with open(os.path.join(work, "c.yaml"), "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    p = subprocess.run([BIN, "run", os.path.join(work, "c.yaml"), "--quiet"], capture_output=True, text=True,
                       timeout=120)
    if not T.check(p.returncode == 0, "pipeline imports the phantom and the method", describe(p)):
        return
    container = os.path.join(work, "out", "s1.h5")
    spath = os.path.join(work, "spines.txt")
    with open(spath, "w") as f:
        for row in spines:
            f.write(" ".join(repr(v) for v in row) + "\n")

    # ---- spine recovery over every plane ----
    def expected(mask, contrast):
        counted = [i for i, (z, y, x, r) in enumerate(spines)
                   if 0 <= plane_of(z) < Z and mask[plane_of(z)] and fate[i] not in ("outside", "nothing")]
        ok = {"keep", "dim50"} | ({"dim10"} if contrast <= 0.1 else set())
        design = sum(fate[i] in ok for i in counted) / len(counted)
        # the criterion in numpy, over every head it would count
        n_np, vis_np = 0, 0
        for z, y, x, r in spines:
            zp = plane_of(z)
            if not (0 <= zp < Z and mask[zp]):
                continue
            cr = head_contrast(ref[zp], y, x, r)
            if not cr > 0:
                continue
            n_np += 1
            vis_np += head_contrast(met[zp], y, x, r) >= contrast * cr
        return design, len(counted), vis_np / n_np, n_np

    all_planes = [1] * Z
    p = harness(container, "full", "ref.fused", ["m.fused"], "--spines", spath)
    pp_full, sm, attrs = tables(container, "full")
    design, n, frac_np, n_np = expected(all_planes, 0.2)
    row = summary_row(sm, "m.fused", "spine_recovery") if sm is not None else None
    T.check(p.returncode == 0 and row is not None, "metrics with spines runs, summary has spine_recovery", describe(p))
    if row is not None:
        T.check(row["mean"] == design and int(row["n"]) == n,
                f"spine recovery {float(row['mean']):.4f} of {int(row['n'])} heads equals the design "
                f"({design:.4f} of {n})", f"{row}")
        T.check(row["mean"] == frac_np and n_np == n, "and the criterion computed with numpy",
                f"numpy {frac_np} of {n_np}")
        T.check(abs(row["std"] - math.sqrt(design * (1 - design))) < 1e-15, "std is that of the 0/1 outcomes")
        T.check(int(attrs.get("spines_total", -1)) == len(spines) and int(attrs.get("spines_counted", -1)) == n,
                "attributes spines_total, spines_counted", attrs)
    T.check("not counted" in p.stderr, "a warning says that some heads are not counted", p.stderr)

    p = harness(container, "lowc", "ref.fused", ["m.fused"], "--spines", spath, "--param", "spine_contrast=0.05")
    _, sm, _ = tables(container, "lowc")
    design, n, frac_np, _ = expected(all_planes, 0.05)
    row = summary_row(sm, "m.fused", "spine_recovery") if sm is not None else None
    T.check(row is not None and row["mean"] == design == frac_np and design > 0.7,
            f"spine_contrast 0.05: heads dimmed to 10% count as recovered ({design:.4f})", describe(p) + str(row))

    p = harness(container, "selfsp", "ref.fused", ["ref.fused"], "--spines", spath)
    _, sm, _ = tables(container, "selfsp")
    row = summary_row(sm, "ref.fused", "spine_recovery") if sm is not None else None
    T.check(row is not None and row["mean"] == 1.0 and row["std"] == 0.0, "the reference recovers all its heads",
            describe(p) + str(row))

    empty = os.path.join(work, "nospines.txt")
    open(empty, "w").close()
    p = harness(container, "nosp", "ref.fused", ["m.fused"], "--spines", empty)
    _, sm, _ = tables(container, "nosp")
    row = summary_row(sm, "m.fused", "spine_recovery") if sm is not None else None
    T.check(row is not None and math.isnan(row["mean"]) and int(row["n"]) == 0 and "spine_recovery is NaN" in p.stderr,
            "an empty spines table: spine_recovery NaN with n 0, and a warning", describe(p) + str(row))

    # ---- a plane mask ----
    mask = [0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0]
    mtext = "".join(map(str, mask))
    p = harness(container, "masked", "ref.fused", ["m.fused"], "--mask", mtext, "--spines", spath)
    pp, sm, attrs = tables(container, "masked")
    if not T.check(p.returncode == 0 and pp is not None, "metrics with a mask runs", describe(p)):
        return
    zs = [z for z in range(Z) if mask[z]]
    T.check(list(pp["z"]) == zs, f"per-plane rows only for the masked planes {zs}", list(pp["z"]))
    full_rows = {int(r["z"]): r for r in pp_full}
    T.check(all(r.tobytes() == full_rows[int(r["z"])].tobytes() for r in pp),
            "masked rows are bit-identical to the unmasked run's rows for those planes")
    r64, m64 = ref.astype(np.float64), met.astype(np.float64)
    L = float(ref.max()) - float(ref.min())
    sk = dict(data_range=L, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    want_ssim = [structural_similarity(r64[z], m64[z], **sk) for z in zs]
    T.check(np.max(np.abs(pp["ssim"] - want_ssim)) <= 1e-4, "masked per-plane SSIM matches skimage",
            f"{pp['ssim']} vs {want_ssim}")
    row = summary_row(sm, "m.fused", "ssim")
    T.check(abs(row["mean"] - np.mean(want_ssim)) <= 1e-4 and int(row["n"]) == len(zs),
            "summary ssim averages the masked planes only", row)
    row = summary_row(sm, "m.fused", "psnr_volume")
    want = peak_signal_noise_ratio(r64[zs], m64[zs], data_range=L)
    T.check(abs(row["mean"] - want) <= 1e-6 and int(row["n"]) == len(zs) * Y * X,
            "psnr_volume over the masked planes matches skimage", f"{row} vs {want}")
    _, full = structural_similarity(r64, m64, full=True, **sk)
    centres = [z for z in range(5, Z - 5) if mask[z]]
    crop = full[centres, 5:-5, 5:-5]
    row = summary_row(sm, "m.fused", "ssim3d")
    T.check(abs(row["mean"] - crop.mean()) <= 1e-4 and abs(row["std"] - crop.std()) <= 1e-4
            and int(row["n"]) == crop.size,
            f"ssim3d averages skimage's 3D map over the masked centre planes {centres}", f"{row} vs {crop.mean()}")
    design, n, frac_np, n_np = expected(mask, 0.2)
    row = summary_row(sm, "m.fused", "spine_recovery")
    T.check(row["mean"] == design == frac_np and int(row["n"]) == n == n_np,
            f"spine recovery counts heads on masked planes only ({n} heads, {design:.4f})", f"{row}")
    T.check(int(attrs.get("planes_evaluated", -1)) == len(zs), "attribute planes_evaluated")

    # ---- bad inputs: exit 3, one line, nothing committed ----
    def bad(out, words, *extra, ref_name="ref.fused", methods=("m.fused",)):
        p = harness(container, out, ref_name, list(methods), *extra)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        ok = (p.returncode == 3 and len(lines) == 1 and all(w in lines[0] for w in words)
              and not committed(container, out))
        T.check(ok, f"{out}: exit 3, one line with {words}, not committed", describe(p))

    bad("mask_short", ["mask", "12 values", "13 planes"], "--mask", mtext[:-1])
    bad("mask_rank", ["mask", "rank 2"], "--mask", mtext, "--mask-rank2")
    bad("mask_none", ["mask", "selects no plane"], "--mask", "0" * Z)
    bad("sp_col", ["spines", "radius_um"], "--spines", spath, "--spines-column", "radius")
    badsp = os.path.join(work, "badspines.txt")
    with open(badsp, "w") as f:
        f.write("1 10 10 0.3\n2 20 20 -0.5\n")
    bad("sp_val", ["spines", "row 1", "radius_um positive"], "--spines", badsp)
    nanm = met.copy()
    nanm[4, 7, 9] = np.nan
    nanpath = os.path.join(work, "nan.f32")
    nanm.astype("<f4").tofile(nanpath)
    bad("nan", ["nanm.img", "plane 4", "NaN"], "--array", f"nanm:{Z},{Y},{X}:{nanpath}",
        methods=("m.fused", "nanm.img"))

    try:
        with_producers(work)
    except Exception as e:  # noqa: BLE001 - reported as a failed point
        T.check(False, "synth spines and interp_linear mask through a config", f"{type(e).__name__}: {e}")


def with_producers(work):
    """The real producers: spines from stage synth, the mask from
    interp_linear, checked against numpy on the tables and arrays they wrote."""
    p = subprocess.run([BIN, "stages"], capture_output=True, text=True, timeout=60)
    names = {line.split()[0] for line in p.stdout.splitlines() if line and not line[0].isspace()}
    what = "synth spines and interp_linear mask through a config"
    if not {"synth", "interp_linear"} <= names:
        T.skip(what, "stage synth or interp_linear not built")
        return
    d = os.path.join(work, "producers")
    os.makedirs(d)
    stages = {
        "ph": {"uses": "synth", "params": {"shape": [14, 96, 96], "dendrites": 3}},
        "median": {"uses": "fuse_median", "inputs": {"repeats": "ph.repeats"}},
        "interp": {"uses": "interp_linear", "inputs": {"stack": "median.fused"}, "params": {"keep_every": 2}},
        "mi": {"uses": "metrics", "inputs": {"reference": "ph.truth", "methods": ["interp.restored", "ph.truth"],
                                              "mask": "interp.mask", "spines": "ph.spines"}},
    }
    cfg = {"version": 1, "run": {"name": "prod", "output": "out", "seed": 4},
           "samples": [{"id": "s1", "voxel_size": list(VOXEL)}], "stages": stages}
    with open(os.path.join(d, "c.yaml"), "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    p = subprocess.run([BIN, "run", os.path.join(d, "c.yaml"), "--quiet"], capture_output=True, text=True,
                       timeout=300)
    if not T.check(p.returncode == 0, f"{what}: runs", describe(p)):
        return
    with h5py.File(os.path.join(d, "out", "s1.h5"), "r") as f:
        truth, rest = f["ph/truth"][()], f["interp/restored"][()]
        mask, sp = f["interp/mask"][()], f["ph/spines"][()]
        pp, sm = f["mi/per_plane"][()], f["mi/summary"][()]
    zs = [z for z in range(len(mask)) if mask[z]]
    T.check(sorted({int(z) for z in pp["z"]}) == zs, f"{what}: rows for the held-out planes {zs} only",
            sorted({int(z) for z in pp["z"]}))
    n_vis = n_cnt = 0
    for r in sp:
        zp = plane_of(float(r["z"]))
        if not (0 <= zp < truth.shape[0] and mask[zp]):
            continue
        cr = head_contrast(truth[zp], float(r["y"]), float(r["x"]), float(r["radius_um"]))
        if cr > 0:
            n_cnt += 1
            n_vis += head_contrast(rest[zp], float(r["y"]), float(r["x"]), float(r["radius_um"])) >= 0.2 * cr
    row = summary_row(sm, "interp.restored", "spine_recovery")
    self_row = summary_row(sm, "ph.truth", "spine_recovery")
    T.check(row is not None and n_cnt > 0 and int(row["n"]) == n_cnt and row["mean"] == n_vis / n_cnt
            and self_row["mean"] == 1.0,
            f"{what}: recovery {n_vis}/{n_cnt} of synth's heads as numpy finds it; the truth recovers all",
            f"{row} {self_row}; numpy {n_vis}/{n_cnt} of {len(sp)}")


if __name__ == "__main__":
    main()
