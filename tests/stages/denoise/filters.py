#!/usr/bin/python3
"""The classical filters, the baselines every denoiser is judged against, in
TAP.

filter_gaussian equals scipy.ndimage.gaussian_filter(image, sigma,
mode='reflect', truncate=4.0) to float rounding for lateral, axial and 3D
sigmas, a z kernel longer than the stack (repeated reflection) and sigma 0
(a copy), on both stores, while holding only 2 r + 1 planes. filter_median
equals scipy.ndimage.median_filter(image, size, mode='reflect') exactly for
3 x 3 per plane, 3 x 3 x 3, 5 x 5, a z window longer than the stack and data
with ties, holding 2 r + 1 planes; even and oversized windows are refused at
validation."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import numpy as np  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402

import sslib  # noqa: E402

T = sslib.Tap()
SHAPE = (6, 40, 36)
SIGMAS = {"lateral": [0.0, 1.0, 1.0], "axial": [0.8, 0.0, 0.0], "all": [0.5, 1.3, 0.7],
          "long_z": [3.0, 0.5, 2.0], "none": [0.0, 0.0, 0.0]}
SIZES = {"plane3": [1, 3, 3], "cube3": [3, 3, 3], "plane5": [1, 5, 5], "z5": [5, 1, 1], "long_z": [7, 3, 1]}


def gaussian(store):
    d = T.tmpdir(f"gauss-{store}")
    st = sslib.synth_stages(shape=SHAPE)
    for name, s in SIGMAS.items():
        st[f"g_{name}"] = {"uses": "filter_gaussian", "inputs": {"image": "median.fused"}, "params": {"sigma": s}}
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), st, store=store)
    p = sslib.run(["run", cfg, "--threads", "2", "-q"])
    if not T.check(p.returncode == 0, f"{store}: a run with filter_gaussian stages completes", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", store)
    a = sslib.read_arrays(cont, store)
    med = a["median/fused"]
    for name, s in SIGMAS.items():
        got = a[f"g_{name}/filtered"]
        want = ndi.gaussian_filter(med.astype(np.float64), s, mode="reflect", truncate=4.0)
        err = float(np.abs(got - want).max())
        T.check(got.dtype == np.float32 and got.shape == med.shape and err < 2e-6 * float(np.abs(want).max()),
                f"{store}: sigma {s} equals scipy.ndimage.gaussian_filter (max error {err:.2e})")
    T.check(np.array_equal(a["g_none/filtered"], med), f"{store}: sigma 0 on every axis is an exact copy")
    T.check(not np.allclose(a["g_all/filtered"], med, atol=1e-3), f"{store}: a nonzero sigma changes the image")
    held = {n: sslib.stage_attrs(cont, store, f"g_{n}").get("planes_held") for n in ("lateral", "all", "long_z")}
    T.check(held == {"lateral": 1, "all": 5, "long_z": SHAPE[0]},
            f"{store}: planes held: 1 without z filtering, 2 r + 1 with it, the stack's depth at most", str(held))


def median(store):
    d = T.tmpdir(f"median-{store}")
    st = sslib.synth_stages(shape=SHAPE)
    for name, s in SIZES.items():
        st[f"m_{name}"] = {"uses": "filter_median", "inputs": {"image": "mean.fused"}, "params": {"size": s}}
    # the repeats are counts, so their median takes few values and windows hold ties
    for name in ("plane3", "cube3"):
        st[f"t_{name}"] = {"uses": "filter_median", "inputs": {"image": "median.fused"},
                           "params": {"size": SIZES[name]}}
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), st, store=store)
    p = sslib.run(["run", cfg, "--threads", "2", "-q"])
    if not T.check(p.returncode == 0, f"{store}: a run with filter_median stages completes", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", store)
    a = sslib.read_arrays(cont, store)
    for src, names in (("mean/fused", SIZES), ("median/fused", ("plane3", "cube3"))):
        img = a[src]
        for name in names:
            got = a[f"{'m' if src == 'mean/fused' else 't'}_{name}/filtered"]
            want = ndi.median_filter(img, size=SIZES[name], mode="reflect")
            T.check(got.dtype == np.float32 and got.shape == img.shape and np.array_equal(got, want),
                    f"{store}: size {SIZES[name]} of {src} equals scipy.ndimage.median_filter exactly",
                    f"{int((got != want).sum())} voxels differ")
    ties = a["median/fused"]
    T.check(len(np.unique(ties)) < ties.size // 2, f"{store}: the tie case has ties "
            f"({len(np.unique(ties))} values in {ties.size} voxels)")
    T.check(not np.array_equal(a["m_cube3/filtered"], a["mean/fused"]),
            f"{store}: a 3 x 3 x 3 window changes the image")
    held = {n: sslib.stage_attrs(cont, store, f"m_{n}").get("planes_held") for n in ("plane3", "cube3", "long_z")}
    T.check(held == {"plane3": 1, "cube3": 3, "long_z": SHAPE[0]},
            f"{store}: planes held: 1 for a plane window, 2 r + 1 for a 3D one, the stack's depth at most", str(held))


def median_refused():
    d = T.tmpdir("median-bad")
    for size, words in (([1, 4, 3], "odd"), ([1, 9, 9], "size")):
        st = sslib.synth_stages(shape=SHAPE)
        st["m"] = {"uses": "filter_median", "inputs": {"image": "median.fused"}, "params": {"size": size}}
        cfg = sslib.make_config(os.path.join(d, f"c{size[1]}.yaml"), st)
        p = sslib.run(["validate", cfg])
        T.check(p.returncode == 2 and words in p.stderr and "stages.m.params" in p.stderr,
                f"filter_median size {size} is refused at validation (exit 2, says '{words}')", sslib.describe(p))


for store in ("hdf5", "zarr"):
    T.guard(f"{store}: filter_gaussian", gaussian, store)
    T.guard(f"{store}: filter_median", median, store)
T.guard("filter_median: bad sizes", median_refused)
T.done()
