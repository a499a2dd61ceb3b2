#!/usr/bin/python3
"""Stage normalize, in TAP.

normalize maps
its optional reference with the stack's own percentiles; a config that reads
norm.reference without connecting it is refused at validation, and a
reference of other plane size at run time. A float32 stack spanning nearly
all of float32's range normalises to finite values (numpy's float64 result),
and the fusions after it stay finite. Input whose percentile range is near eps
(denormals) gets a warning."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

import sslib  # noqa: E402

T = sslib.Tap()
SHAPE = (6, 40, 36)


def reference():
    d = T.tmpdir("norm-ref")
    st = sslib.synth_stages(shape=SHAPE, fuse=False)
    st["norm"]["inputs"]["reference"] = "raw.truth"
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), st)
    p = sslib.run(["run", cfg, "-q"])
    if not T.check(p.returncode == 0, "normalize with a reference completes", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", "hdf5")
    a = sslib.read_arrays(cont, "hdf5")
    at = sslib.stage_attrs(cont, "hdf5", "norm")
    lo, hi = float(at["p_low_value"]), float(at["p_high_value"])
    want = (a["raw/truth"].astype(np.float64) - lo) / (hi - lo + 1e-20)
    got = a["norm/reference"]
    T.check(got.shape == a["raw/truth"].shape and float(np.abs(got - want).max()) < 1e-6,
            "the reference is mapped with the stack's percentiles, not its own")
    rep = np.percentile(a["raw/repeats"].astype(np.float64), [2, 99.9])
    T.check(abs(rep[0] - lo) < 1e-9 and abs(rep[1] - hi) < 1e-9, "the percentiles are the stack's alone",
            f"{rep} vs {lo}, {hi}")

    st = sslib.synth_stages(shape=SHAPE)
    st["score"] = {"uses": "metrics", "inputs": {"reference": "norm.reference", "methods": ["mean.fused"]}}
    cfg = sslib.make_config(os.path.join(d, "c2.yaml"), st)
    p = sslib.run(["validate", cfg])
    T.check(p.returncode == 2 and "only when its input 'reference' is connected" in p.stderr,
            "reading norm.reference with no reference connected: config error at validation", sslib.describe(p))

    st = sslib.synth_stages(shape=SHAPE, fuse=False)
    st["small"] = {"uses": "crop", "inputs": {"stack": "raw.truth"}, "params": {"y": [0, 20]}}
    st["norm"]["inputs"]["reference"] = "small.data"
    d = T.tmpdir("norm-ref-bad")
    cfg = sslib.make_config(os.path.join(d, "c3.yaml"), st)
    p = sslib.run(["run", cfg, "-q"])
    T.check(p.returncode == 3 and "reference small.data" in p.stderr and "40 x 36" in p.stderr,
            "a reference whose planes differ from the stack's: input error naming both", sslib.describe(p))
    T.check(not os.path.exists(os.path.join(d, "out", "s1.h5.d", "stages")) or
            not any(n.startswith("norm.") for n in os.listdir(os.path.join(d, "out", "s1.h5.d", "stages"))),
            "nothing of the failed normalize is committed")


def full_range():
    d = T.tmpdir("norm-range")
    rng = np.random.default_rng(3)
    x = rng.uniform(-3.3e38, 3.3e38, size=(4, 3, 16, 16)).astype(np.float32)
    src = os.path.join(d, "big.h5")
    with h5py.File(src, "w") as f:
        f["raw"] = x
    st = sslib.import_stages(file=src)
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), st)
    p = sslib.run(["run", cfg, "-q"])
    if not T.check(p.returncode == 0, "a float32 stack spanning +-3.3e38 normalises and fuses", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", "hdf5")
    a = sslib.read_arrays(cont, "hdf5")
    at = sslib.stage_attrs(cont, "hdf5", "norm")
    lo, hi = float(at["p_low_value"]), float(at["p_high_value"])
    want = ((x.astype(np.float64) - lo) / (hi - lo + 1e-20)).astype(np.float32)
    got = a["norm/data"]
    T.check(bool(np.isfinite(got).all()) and float(np.abs(got - want).max()) <= 1e-6,
            "every normalised value is finite and equals numpy's float64 result rounded to float32",
            f"{int((~np.isfinite(got)).sum())} not finite")
    T.check(bool(np.isfinite(a["mean/fused"]).all() and np.isfinite(a["median/fused"]).all()),
            "fuse_mean and fuse_median of it are finite")


def denormal():
    d = T.tmpdir("norm-denormal")
    x = (np.arange(4 * 3 * 8 * 8, dtype=np.float32).reshape(4, 3, 8, 8) + 1) * np.float32(1e-42)
    src = os.path.join(d, "tiny.h5")
    with h5py.File(src, "w") as f:
        f["raw"] = x
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), sslib.import_stages(file=src, fuse=False))
    p = sslib.run(["run", cfg])
    T.check(p.returncode == 0 and "compressed toward 0" in p.stderr and "eps" in p.stderr,
            "denormal-only input: normalize warns that eps dominates the percentile range", sslib.describe(p))
    st = sslib.import_stages(file=src, fuse=False)
    st["norm"]["params"]["eps"] = 0
    cfg = sslib.make_config(os.path.join(d, "c2.yaml"), st, output="out2")
    p = sslib.run(["run", cfg])
    T.check(p.returncode == 0 and "compressed toward 0" not in p.stderr, "with eps 0 it does not", sslib.describe(p))


def nan_in_committed():
    """A NaN that gets into committed data (written behind the store's back)
    is refused by the stage that reads it, naming input, repeat and plane; with
    checksums on, the read already fails as damaged data."""
    import stat
    d = T.tmpdir("nan-committed")
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), sslib.synth_stages(shape=SHAPE))
    p = sslib.run(["run", cfg, "-q"])
    if not T.check(p.returncode == 0, "a run to damage completes", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", "hdf5")
    sf = sslib.h5_stage_files(cont)["norm"]
    os.chmod(sf, os.stat(sf).st_mode | stat.S_IWUSR)
    with h5py.File(sf, "r+") as f:
        ds = f["data"]
        plane = ds[2, 3]
        plane[5, 7] = np.nan
        ds[2, 3] = plane
    p = sslib.run(["run", cfg, "-q", "--force", "mean", "--stages", "mean"], env={"SIRENSTACK_VERIFY": "0"})
    T.check(p.returncode == 3 and "fuse_mean: norm.data repeat 2 plane 3 holds 1 NaN or infinite value" in p.stderr,
            "verification off: fuse_mean refuses the NaN, naming input, repeat and plane", sslib.describe(p))
    p = sslib.run(["run", cfg, "-q", "--force", "median", "--stages", "median"])
    T.check(p.returncode == 3 and "norm" in p.stderr, "verification on: the damaged chunk is an input error first",
            sslib.describe(p))


T.guard("a NaN in committed data", nan_in_committed)
T.guard("normalize: denormal input", denormal)
T.guard("normalize: the whole float32 range", full_range)
T.guard("normalize: reference", reference)
T.done()
