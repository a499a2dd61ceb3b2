#!/usr/bin/python3
"""Stage crop, in TAP: the sub-volume equals the numpy slice of its input for
repeats and for images (element type kept), on both stores; voxel size kept
and the origin recorded; null axes keep the whole axis; ranges past the end
and empty ranges are refused with the axis named."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402

T = sslib.Tap()
SHAPE = (6, 48, 40)


def stages(crop_params, of="raw.repeats"):
    st = sslib.synth_stages(shape=SHAPE)
    st["cut"] = {"uses": "crop", "inputs": {"stack": of}, "params": crop_params}
    return st


def case(store):
    d = T.tmpdir(f"crop-{store}")
    st = stages({"z": [1, 5], "y": [3, 40], "x": [0, 17]})
    st["cut_img"] = {"uses": "crop", "inputs": {"stack": "mean.fused"}, "params": {"y": [10, 11]}}
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), st, store=store)
    p = sslib.run(["run", cfg, "--threads", "2", "-q"])
    if not T.check(p.returncode == 0, f"{store}: a run with crop stages completes", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", store)
    a = sslib.read_arrays(cont, store)
    raw, cut = a["raw/repeats"], a["cut/data"]
    T.check(cut.dtype == raw.dtype and np.array_equal(cut, raw[:, 1:5, 3:40, 0:17]),
            f"{store}: repeats cropped to [1,5) x [3,40) x [0,17) equal the numpy slice, element type {raw.dtype} kept",
            f"{cut.dtype}{cut.shape} vs {raw.dtype}{raw[:, 1:5, 3:40, 0:17].shape}")
    img, cimg = a["mean/fused"], a["cut_img/data"]
    T.check(cimg.dtype == img.dtype and np.array_equal(cimg, img[:, 10:11, :]),
            f"{store}: an image cropped in y only keeps z and x whole", f"{cimg.dtype}{cimg.shape}")
    at = sslib.stage_attrs(cont, store, "cut")
    T.check(list(at.get("origin", [])) == [1, 3, 0], f"{store}: the crop's origin is recorded", str(at.get("origin")))
    if store == "hdf5":
        import h5py
        with h5py.File(cont, "r") as f:
            vr, vc = list(f["raw/repeats"].attrs["voxel_size"]), list(f["cut/data"].attrs["voxel_size"])
        T.check(vr == vc, "hdf5: voxel size kept", f"{vr} vs {vc}")


def refused():
    d = T.tmpdir("crop-bad")
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), stages({"y": [40, 49]}))
    p = sslib.run(["run", cfg, "-q"])
    T.check(p.returncode == 3 and "y: [40, 49)" in p.stderr and "48 row" in p.stderr,
            "a range past the end: input error (exit 3) naming the axis and the stack's extent", sslib.describe(p))
    cfg = sslib.make_config(os.path.join(d, "c2.yaml"), stages({"x": [7, 7]}))
    p = sslib.run(["validate", cfg])
    T.check(p.returncode == 2 and "start < stop" in p.stderr, "an empty range: config error (exit 2) at validation",
            sslib.describe(p))
    cfg = sslib.make_config(os.path.join(d, "c3.yaml"), stages({"z": [1, 2, 3]}))
    p = sslib.run(["validate", cfg])
    T.check(p.returncode == 2, "a range of three numbers: config error (exit 2)", sslib.describe(p))


for store in ("hdf5", "zarr"):
    T.guard(f"{store}: crop", case, store)
T.guard("crop: refused ranges", refused)
T.done()
