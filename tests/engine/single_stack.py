#!/usr/bin/python3
"""Single stacks where an image is expected, in TAP, on both stores.

A single-stack TIFF (import_tiff, repeats_layout auto and none) or HDF5
dataset (import_hdf5, axes zyx) gives R = 1 repeats; normalize keeps them
repeats; interp_linear, interp_cubic and metrics take them as the Z x Y x X
image they are, with the voxel size kept. The results equal those of the
same pipeline with a fuse_mean stage in between (the old workaround), and
interp_linear's equal numpy's interpolation of the normalised stack. More
than one repeat is refused: at validation when the count is known (the
import's repeats, the sample's), else at run time with one line, exit 3 and
nothing of the stage committed.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

import sslib  # noqa: E402

T = sslib.Tap()
SHAPE = (12, 40, 36)
VOXEL = [5.0, 2.0, 2.0]
FUSE_HINT = "fuse them first (fuse_mean, fuse_median, siren_fuse)"


def stack(seed=1):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(0, 1, n) for n in SHAPE], indexing="ij")
    smooth = 800 * np.sin(3 * z + 5 * y) * np.cos(4 * x) + 1200
    return (smooth + rng.normal(0, 30, SHAPE)).clip(0, 65535).astype(np.uint16)


def pipeline(source, via_mean=False):
    """source (a stage declaration) -> norm -> linear, cubic, scores; with
    via_mean the image is norm's fuse_mean, as configs had to write it."""
    img = "img.fused" if via_mean else "norm.data"
    st = {"raw": source, "norm": {"uses": "normalize", "inputs": {"stack": "raw.raw"}}}
    if via_mean:
        st["img"] = {"uses": "fuse_mean", "inputs": {"repeats": "norm.data"}}
    st["linear"] = {"uses": "interp_linear", "inputs": {"stack": img}, "params": {"keep_every": 2}}
    st["cubic"] = {"uses": "interp_cubic", "inputs": {"stack": img}, "params": {"keep_every": 3}}
    st["scores"] = {"uses": "metrics", "inputs": {"reference": img, "methods": ["linear.restored", "cubic.restored"],
                                                  "mask": "linear.mask"}}
    return st


def voxel_of(cont, store, name):
    if store == "zarr":
        import zarr
        return list(zarr.open_group(cont, mode="r")[name + "/0"].attrs["voxel_size"])  # an NGFF image group
    with h5py.File(cont, "r", locking=False) as f:
        return [float(v) for v in f[name].attrs["voxel_size"]]


def run_ok(d, name, stages, store, samples=None):
    cfg = sslib.make_config(os.path.join(d, f"{name}.yaml"), stages, store=store, output=name,
                            samples=samples or [{"id": "s1", "input": "one.tif", "voxel_size": VOXEL}])
    p = sslib.run(["run", cfg, "--threads", "2", "-q"])
    ok = T.check(p.returncode == 0 and not p.stderr, f"{store}: {name}: runs without fuse_mean (exit 0)",
                 sslib.describe(p))
    return sslib.read_arrays(sslib.container_path(os.path.join(d, name), "s1", store), store) if ok else None


def single_stack(store):
    d = T.tmpdir(f"single-{store}")
    data = stack()
    tifffile.imwrite(os.path.join(d, "one.tif"), data)
    with h5py.File(os.path.join(d, "one.h5"), "w") as f:
        f["stack"] = data
    ref = run_ok(d, "tiff_mean", pipeline({"uses": "import_tiff"}, via_mean=True), store)
    for name, src in (("tiff_auto", {"uses": "import_tiff"}),
                      ("tiff_none", {"uses": "import_tiff", "params": {"repeats_layout": "none"}}),
                      ("hdf5_zyx", {"uses": "import_hdf5", "params": {"file": "one.h5", "dataset": "/stack",
                                                                      "axes": "zyx"}})):
        a = run_ok(d, name, pipeline(src), store)
        if a is None or ref is None:
            continue
        cont = sslib.container_path(os.path.join(d, name), "s1", store)
        norm = a["norm/data"]
        T.check(a["raw/raw"].shape == (1,) + SHAPE and norm.shape == (1,) + SHAPE,
                f"{store}: {name}: the import and normalize give 1 x {' x '.join(map(str, SHAPE))} repeats",
                f"raw {a['raw/raw'].shape}, norm {norm.shape}")
        img = norm[0]
        lin = a["linear/restored"]
        z = np.arange(SHAPE[0])
        kept = z[::2]
        want = np.empty_like(img)
        for i in z:
            lo = kept[kept <= i].max()
            hi = kept[kept >= i].min() if (kept >= i).any() else lo
            w = 0 if hi == lo else (i - lo) / (hi - lo)
            want[i] = (1 - w) * img[lo] + w * img[hi]
        T.check(lin.shape == SHAPE and np.array_equal(lin[::2], img[::2]) and np.allclose(lin, want, atol=1e-6),
                f"{store}: {name}: interp_linear's restored stack is Z x Y x X: kept planes exact, the rest "
                f"numpy's linear interpolation", f"{lin.shape}, max diff {np.abs(lin - want).max() if lin.shape == want.shape else '?'}")
        T.check(voxel_of(cont, store, "linear/restored") == VOXEL and voxel_of(cont, store, "cubic/restored") == VOXEL,
                f"{store}: {name}: the interpolated stacks keep the voxel size {VOXEL}",
                f"{voxel_of(cont, store, 'linear/restored')}")
        same = {k: v for k, v in a.items() if k.split("/")[0] in ("linear", "cubic", "scores")}
        want_same = {k: v for k, v in ref.items() if k.split("/")[0] in ("linear", "cubic", "scores")}
        eq, why = sslib.arrays_equal(same, want_same)
        T.check(eq, f"{store}: {name}: linear, cubic and scores equal those through fuse_mean", why)
        summary = a.get("scores/summary")
        psnr = summary[(summary["method"] == b"linear.restored") & (summary["metric"] == b"psnr")]["mean"] \
            if summary is not None else []
        T.check(len(psnr) == 1 and 20 < psnr[0] < 60,
                f"{store}: {name}: metrics scores linear against the single stack (PSNR {psnr[0] if len(psnr) else '?':.4g} dB)",
                str(summary))


def refused(store):
    d = T.tmpdir(f"single-bad-{store}")
    three = np.stack([stack(s) for s in (1, 2, 3)])
    tifffile.imwrite(os.path.join(d, "three.tif"), three.reshape((-1,) + SHAPE[1:]))
    with h5py.File(os.path.join(d, "three.h5"), "w") as f:
        f["raw"] = three
    sample = [{"id": "s1", "input": "three.tif", "voxel_size": VOXEL}]
    # known at validation: the import's repeats, or the sample's
    for what, src, samples, word in (
            ("the import's repeats: 3", {"uses": "import_tiff", "params": {"repeats_layout": "blocked", "repeats": 3}},
             sample, "holds 3 repeats, but"),
            ("the sample's repeats: 3", {"uses": "import_tiff", "params": {"repeats_layout": "blocked"}},
             [dict(sample[0], repeats=3)], "holds 3 repeats (sample s1), but")):
        cfg = sslib.make_config(os.path.join(d, "v.yaml"), pipeline(src), store=store, samples=samples)
        for cmd in ("validate", "run"):
            p = sslib.run([cmd, cfg, "-q"] if cmd == "run" else [cmd, cfg])
            T.check(p.returncode == 2 and f"'norm.data' {word} input 'stack' of interp_linear expects an image (ZYX); "
                    f"{FUSE_HINT}" in p.stderr and not os.path.exists(os.path.join(d, "out")),
                    f"{store}: {what}: {cmd} refuses repeats where an image is expected (exit 2), nothing written",
                    sslib.describe(p))
    # not known before the run: the reader refuses it, nothing of the stage committed
    st = pipeline({"uses": "import_hdf5", "params": {"file": "three.h5", "dataset": "/raw"}})
    cfg = sslib.make_config(os.path.join(d, "r.yaml"), st, store=store, samples=sample)
    p = sslib.run(["validate", cfg])
    T.check(p.returncode == 0, f"{store}: repeats of a count the config does not give pass validation",
            sslib.describe(p))
    p = sslib.run(["run", cfg, "-q", "--threads", "2"])
    want = f"error: s1/linear: input stack: norm.data has 3 repeats where an image is expected; {FUSE_HINT}"
    T.check(p.returncode == 3 and want in p.stderr.splitlines(),
            f"{store}: at run time: exit 3, one line naming the stage, the port and the repeats", sslib.describe(p))
    cont = sslib.container_path(os.path.join(d, "out"), "s1", store)
    p2, js = sslib.inspect_json(cont)
    T.check(js is not None and set(js) == {"raw", "norm"},
            f"{store}: at run time: nothing of the refusing stages is committed", str(js and sorted(js)))
    T.check(not sslib.leftovers(os.path.join(d, "out")), f"{store}: at run time: no temporaries left",
            str(sslib.leftovers(os.path.join(d, "out"))))
    p = sslib.run(["status", cfg])
    line = [ln for ln in p.stdout.splitlines() if " linear " in ln]
    T.check(line and " failed " in line[0] and "has 3 repeats where an image is expected" in line[0],
            f"{store}: status shows the stage failed with the reason", p.stdout)


for store in ("hdf5", "zarr"):
    T.guard(f"{store}: single stacks as images", single_stack, store)
    T.guard(f"{store}: more repeats refused", refused, store)
T.done()
