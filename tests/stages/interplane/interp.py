#!/usr/bin/python3
"""Stages interp_linear and interp_cubic end to end through the sirenstack
binary, in TAP.

Synthetic: smooth random stacks, every n-th plane kept (n = 2..8, with and
without offset) or a given uneven list; predicted planes against numpy.interp
per voxel (linear) and scipy.interpolate.CubicSpline(bc_type='natural')
(cubic; planes outside the kept range: the nearest kept plane), kept planes
bit-exact copies, the predicted output and mask consistent with the full
stack, the attributes listing kept and predicted planes; a long stack (the
spline's weights are dropped below 1e-12 to bound memory: still the same
result); validation errors for bad lists and settings.
Real: $SHARED_DATA/cellfinder-crop-ch0 (30 planes): every n = 2..8 gives
finite predictions, and for n = 2 linear interpolation predicts held-out
planes better (MSE) than copying the previous kept plane.
"""
import glob
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

try:
    import numpy as np
    import scipy.ndimage as ndi
    from scipy.interpolate import CubicSpline
    import sslib
    from sslib import h5py
except ImportError as e:
    print(f"1..0 # SKIP numpy/scipy/h5py not available: {e}")
    sys.exit(0)

T = sslib.Tap()
ROOT = T.tmpdir("interp")
SHARED = os.environ.get("SHARED_DATA") or os.path.join(sslib.SOURCE_ROOT, "..", "shared", "data")
rng = np.random.default_rng(11)
counter = [0]


def pipeline(stack, kind, params, src=None, store="hdf5"):
    """stack (Z, Y, X) -> HDF5 -> import_hdf5 (axes zyx: one repeat) ->
    fuse_mean (the image) -> interp_<kind>. Returns (proc, container)."""
    counter[0] += 1
    d = os.path.join(ROOT, f"c{counter[0]}")
    os.makedirs(d)
    if src is None:
        src = os.path.join(d, "in.h5")
        with h5py.File(src, "w") as f:
            f["stack"] = stack
    stages = {
        "raw": {"uses": "import_hdf5", "params": {"file": src, "dataset": "/stack", "axes": "zyx"}},
        "img": {"uses": "fuse_mean", "inputs": {"repeats": "raw.raw"}},
        "ip": {"uses": f"interp_{kind}", "inputs": {"stack": "img.fused"}, "params": params},
    }
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), stages, store=store)
    p = sslib.run(["run", cfg, "--threads", "2"], timeout=300)
    return p, sslib.container_path(os.path.join(d, "out"), "s1", store)


def outputs(cont):
    with h5py.File(cont, "r", locking=False) as f:
        g = f["ip"]
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()}
        return g["restored"][()], g["predicted"][()], g["mask"][()], attrs, f["img/fused"][()]


def attr_list(v):
    if isinstance(v, str):
        v = json.loads(v)
    return [int(x) for x in np.atleast_1d(v)]


def reference(stack, kept, kind):
    """Prediction of every plane from the kept ones, in float64."""
    Z = stack.shape[0]
    z = np.arange(Z)
    k = np.asarray(kept)
    y = stack[k].astype(np.float64)
    if kind == "linear":
        flat = y.reshape(len(k), -1)
        out = np.stack([np.interp(z, k, flat[:, i]) for i in range(flat.shape[1])], 1)
        return out.reshape(stack.shape)
    out = CubicSpline(k, y, axis=0, bc_type="natural")(z)
    out[z < k[0]] = y[0]
    out[z > k[-1]] = y[-1]
    return out


def check_case(stack, kind, params, kept, label):
    p, cont = pipeline(stack, kind, params)
    if not T.check(p.returncode == 0, f"{label}: the run succeeds", sslib.describe(p)):
        return None
    restored, predicted, mask, attrs, img = outputs(cont)
    Z = stack.shape[0]
    held = [z for z in range(Z) if z not in set(kept)]
    want = reference(img, kept, kind)
    scale = np.max(np.abs(img))
    err = np.max(np.abs(restored[held] - want[held])) / scale
    T.check(err <= 2e-6, f"{label}: predicted planes {held[:6]}{'...' if len(held) > 6 else ''} match "
                         f"{'numpy.interp' if kind == 'linear' else 'scipy CubicSpline (natural)'} "
                         f"(max diff {err:.2g} of the data's magnitude)")
    T.check(np.array_equal(restored[kept], img[kept]) and restored.dtype == np.float32,
            f"{label}: kept planes copied bit for bit (float32)")
    T.check(mask.dtype == np.uint8 and mask.shape == (Z,) and np.array_equal(np.flatnonzero(mask), held)
            and np.array_equal(predicted, restored[held]),
            f"{label}: mask (uint8, 1 = predicted) and the predicted output agree with the full stack")
    T.check(attr_list(attrs.get("kept_planes")) == list(kept) and attr_list(attrs.get("predicted_planes")) == held,
            f"{label}: attributes kept_planes and predicted_planes", f"{attrs.get('kept_planes')} / "
                                                                    f"{attrs.get('predicted_planes')}")
    return attrs


Z, Y, X = 23, 14, 17
smooth = (ndi.gaussian_filter(rng.standard_normal((Z, Y, X)), (2, 2, 2)) * 300 + 800).astype(np.float32)

for kind in ("linear", "cubic"):
    for n in range(2, 9):
        check_case(smooth, kind, {"keep_every": n}, list(range(0, Z, n)), f"{kind} keep_every {n}")
    check_case(smooth, kind, {"keep_every": 4, "offset": 3}, list(range(3, Z, 4)),
               f"{kind} keep_every 4 offset 3 (planes before the first kept one: nearest)")
    uneven = [1, 2, 6, 13, 14, 20]
    check_case(smooth, kind, {"keep_planes": uneven}, uneven, f"{kind} keep_planes {uneven}")

# the Zarr store holds the same outputs (the mask as a 1-D uint8 array)
if sslib.zarr is None:
    T.skip("zarr store: same outputs as HDF5", "zarr-python not available")
else:
    p, cont = pipeline(smooth, "cubic", {"keep_every": 3}, store="zarr")
    p2, cont2 = pipeline(smooth, "cubic", {"keep_every": 3})
    ok = p.returncode == 0 and p2.returncode == 0
    if ok:
        g = sslib.zarr.open_group(cont, mode="r")
        h = outputs(cont2)
        ok = (np.array_equal(g["ip/restored/0"][...], h[0]) and np.array_equal(g["ip/mask"][...], h[2])
              and g["ip/mask"].dtype == np.uint8 and attr_list(g["ip"].attrs["kept_planes"]) == list(range(0, Z, 3)))
    T.check(ok, "zarr store: restored, mask (1-D uint8) and kept_planes equal the HDF5 run's",
            sslib.describe(p) + "\n" + sslib.describe(p2))

# integer input: the kept planes are the raw counts exactly
counts = rng.poisson(smooth / 4).astype(np.uint16)
check_case(counts, "cubic", {"keep_every": 3}, list(range(0, Z, 3)), "cubic on uint16 counts")

# a long stack: the spline's far weights are dropped (memory bound), the
# result is the same, and the planes held at once do not grow with the stack
long = (ndi.gaussian_filter(rng.standard_normal((301, 4, 5)), (3, 1, 1)) * 100).astype(np.float32)
for kind, bound in (("cubic", 48), ("linear", 2)):
    attrs = check_case(long, kind, {"keep_every": 2, "offset": 1}, list(range(1, 301, 2)), f"{kind} on 301 planes")
    held = int(attrs.get("max_planes_held", -1)) if attrs else -1
    T.check(0 < held <= bound, f"{kind} on 301 planes (150 kept): at most {bound} planes in memory at once ({held})")

# ---- validation ------------------------------------------------------------------
bad = [
    ({"keep_planes": [0, 5, 3]}, 2, "keep_planes must be sorted and without repeats", "unsorted keep_planes"),
    ({"keep_planes": [0, 4, 4, 9]}, 2, "keep_planes must be sorted and without repeats", "repeated plane in keep_planes"),
    ({"keep_planes": [3]}, 2, "expected 2 to", "a single kept plane"),
    ({"keep_planes": [-1, 4]}, 2, "out of range", "a negative plane index"),
    ({"keep_every": 9}, 2, "out of range", "keep_every 9"),
    ({"keep_every": 1}, 2, "out of range", "keep_every 1"),
    ({}, 2, "give either keep_every", "neither keep_every nor keep_planes"),
    ({"keep_every": 2, "keep_planes": [0, 4]}, 2, "give either keep_every", "both keep_every and keep_planes"),
    ({"keep_every": 3, "offset": 3}, 2, "offset must be below keep_every", "offset 3 with keep_every 3"),
    ({"keep_planes": [0, 4], "offset": 1}, 2, "offset applies to keep_every", "offset with keep_planes"),
    # the stack's depth is known only at run time: the data does not fit (exit 3)
    ({"keep_planes": [0, 4, 23]}, 3, "beyond the last plane (22)", "a kept plane beyond the stack (at run time)"),
    ({"keep_planes": list(range(23))}, 3, "nothing is left to predict", "every plane kept (at run time)"),
]
for params, code, text, label in bad:
    for kind in ("linear", "cubic"):
        p, cont = pipeline(smooth, kind, params)
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
        ok = p.returncode == code and any(text in ln for ln in p.stderr.splitlines()) and not sslib.crashed_by_signal(p)
        if os.path.exists(cont):
            with h5py.File(cont, "r", locking=False) as f:
                ok = ok and "ip" not in f
        T.check(ok and len(errors) <= 1, f"interp_{kind}, {label}: exit {code} with '{text}', nothing committed",
                sslib.describe(p))
p, cont = pipeline(smooth[:3], "linear", {"keep_every": 4})
T.check(p.returncode == 3 and "keeps 1 of the 3 planes" in p.stderr,
        "keep_every 4 on 3 planes keeps one plane: exit 3 (input data) with a message saying so", sslib.describe(p))

# ---- real data: held-out planes of a two-photon stack ------------------------------
CF = os.path.join(SHARED, "cellfinder-crop-ch0")
if not os.path.isdir(CF):
    for i in range(20):
        T.skip(f"cellfinder check {i + 1}", "shared data absent")
else:
    import tifffile
    files = sorted(glob.glob(os.path.join(CF, "ch*.tif")))
    stack = np.stack([tifffile.imread(f) for f in files])
    d = os.path.join(ROOT, "cellfinder")
    os.makedirs(d)
    src = os.path.join(d, "cf.h5")
    with h5py.File(src, "w") as f:
        f["stack"] = stack
    T.diag(f"cellfinder stack {stack.shape} {stack.dtype}")
    for n in range(2, 9):
        for kind in ("linear", "cubic"):
            if kind == "cubic" and n not in (2, 5, 8):
                continue
            p, cont = pipeline(None, kind, {"keep_every": n}, src=src)
            if not T.check(p.returncode == 0, f"cellfinder {kind} keep_every {n}: the run succeeds", sslib.describe(p)):
                continue
            restored, predicted, mask, attrs, img = outputs(cont)
            held = np.flatnonzero(mask)
            fin = bool(np.all(np.isfinite(predicted)))
            if n == 2 and kind == "linear":
                x = stack.astype(np.float64)
                mse_lin = np.mean((predicted - x[held]) ** 2)
                prev = np.array([max(k for k in range(0, 30, n) if k < z) for z in held])
                mse_copy = np.mean((x[prev] - x[held]) ** 2)
                T.check(fin and mse_lin < mse_copy,
                        f"cellfinder n = 2: linear prediction of held-out planes (MSE {mse_lin:.1f}) beats copying "
                        f"the previous kept plane (MSE {mse_copy:.1f})")
            else:
                T.check(fin and predicted.shape == (len(held),) + stack.shape[1:],
                        f"cellfinder {kind} keep_every {n}: {len(held)} predicted planes, all finite")

T.done()
