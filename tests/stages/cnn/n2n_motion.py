"""n2n_train/n2n_apply and cnn_motion end to end on dendrite phantoms: the
self-supervised denoisers (repeat pairs, half-means, and neighbouring planes
on a finely sampled stack) beat their inputs with no clean data; the CNN
motion baseline trains towards the clean repeats the artefact table leaves
and beats the plain mean; bad input (too few repeats, no clean repeat, a
clean repeat that does not exist) gets one-line errors, exit 3."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
SMALL = {"depth": 2, "width": 8, "patch": 32, "batch": 8, "lr": 0.003, "steps": 250}


def psnr(x, ref):
    return 10 * np.log10(1.0 / np.mean((x - ref) ** 2))


def base(shape, repeats, motion=0.0, voxel=None):
    p = {"shape": shape, "repeats": repeats, "photons": 30, "motion_fraction": motion}
    if voxel:
        p["voxel_size"] = voxel
    return {
        "raw": {"uses": "synth", "params": p},
        "norm": {"uses": "normalize", "inputs": {"stack": "raw.repeats", "reference": "raw.truth"}},
        "mean": {"uses": "fuse_mean", "inputs": {"repeats": "norm.data"}},
    }


def run(tag, stages, samples=None):
    d = T.tmpdir(tag)
    c = sslib.make_config(os.path.join(d, "c.yaml"), stages, samples=samples)
    p = sslib.run(["run", c, "--threads", "2", "-q"], timeout=1200)
    return d, c, p


# ---- Noise2Noise ------------------------------------------------------------------------
st = base([8, 64, 64], 4)
for name, pairs in (("n2n", "repeats"), ("n2nh", "halves")):
    st[name] = {"uses": "n2n_train", "inputs": {"repeats": "norm.data"}, "params": dict(SMALL, pairs=pairs)}
    st[name + "_out"] = {"uses": "n2n_apply", "inputs": {"repeats": "norm.data", "model": f"{name}.weights"}}
d, c, p = run("n2n", st)
T.check(p.returncode == 0, "n2n with repeat pairs and with half-mean pairs", sslib.describe(p))
if p.returncode == 0:
    with h5py.File(os.path.join(d, "out", "s1.h5")) as f:
        ref = f["norm/reference"][:]
        one = psnr(f["norm/data"][0], ref)
        got = {k: psnr(f[k][:], ref) for k in ("mean/fused", "n2n_out/denoised", "n2nh_out/denoised")}
        T.diag(f"PSNR (dB): one repeat {one:.2f}, " + ", ".join(f"{k} {v:.2f}" for k, v in got.items()))
        for k in ("n2n_out/denoised", "n2nh_out/denoised"):
            T.check(got[k] > got["mean/fused"] + 3, f"{k} beats the mean of the repeats by 3 dB without clean data: "
                    f"{got[k]:.2f} > {got['mean/fused']:.2f}")
        T.check(f["n2n"].attrs["pairs"] in ("repeats", b"repeats") and f["n2nh_out"].attrs["views"] == 2
                and f["n2n_out"].attrs["views"] == 4,
                "the pairing is recorded; repeat-pair models see every repeat, half-mean models both halves")

# one model serves another sample: import_model from the first run's container
if p.returncode == 0:
    src_cfg, src_stages = c, st
    st2 = base([8, 64, 64], 4)
    st2["raw"]["params"]["photons"] = 30
    st2["model"] = {"uses": "import_model", "params": {"container": os.path.join(d, "out", "s1.h5"),
                                                         "stage": "n2nh"}}
    st2["out"] = {"uses": "n2n_apply", "inputs": {"repeats": "norm.data", "model": "model.weights"}}
    d2 = T.tmpdir("n2n-import")
    c2 = sslib.make_config(os.path.join(d2, "c.yaml"), st2, seed=2)
    p2 = sslib.run(["run", c2, "--threads", "2", "-q"], timeout=600)
    T.check(p2.returncode == 0, "import_model: the half-mean model of one run applied in another", sslib.describe(p2))
    if p2.returncode == 0:
        with h5py.File(os.path.join(d2, "out", "s1.h5")) as f:
            ref = f["norm/reference"][:]
            a, b = psnr(f["mean/fused"][:], ref), psnr(f["out/denoised"][:], ref)
            src = json.loads(f["model"].attrs["source"])
            T.check(b > a + 3 and f["out"].attrs["views"] == 2 and src["stage"] == "n2nh",
                    f"on a phantom it never saw the imported model gains over the mean ({b:.2f} > {a:.2f} dB), as "
                    "a half-mean model, and says where it came from")
        p2 = sslib.run(["run", c2, "--threads", "2"], timeout=600)
        T.check(p2.returncode == 0 and "import_model" not in p2.stderr.replace("up to date", ""),
                "unchanged, the import is reused", sslib.describe(p2))
        src_stages["n2nh"]["params"]["steps"] = 240
        sslib.make_config(src_cfg, src_stages)
        p3 = sslib.run(["run", src_cfg, "--threads", "2", "-q"], timeout=1200)
        p2 = sslib.run(["run", c2, "--threads", "2"], timeout=600)
        T.check(p3.returncode == 0 and p2.returncode == 0 and "s1/model: running import_model" in p2.stderr
                and "s1/out: running n2n_apply" in p2.stderr,
                "the model retrained in its own run: the import and what uses it run again", sslib.describe(p2))

# neighbouring planes of a stack sampled finely in z (0.2 um, well below the axial resolution), one repeat
st = base([16, 64, 64], 1, voxel=[0.2, 0.1, 0.1])
st["n2np"] = {"uses": "n2n_train", "inputs": {"repeats": "norm.data"}, "params": dict(SMALL, pairs="planes")}
st["out"] = {"uses": "n2n_apply", "inputs": {"repeats": "norm.data", "model": "n2np.weights"}}
d, c, p = run("n2n-planes", st, samples=[{"id": "s1", "voxel_size": [0.2, 0.1, 0.1]}])
T.check(p.returncode == 0, "n2n with neighbouring-plane pairs on one repeat", sslib.describe(p))
if p.returncode == 0:
    with h5py.File(os.path.join(d, "out", "s1.h5")) as f:
        ref = f["norm/reference"][:]
        a, b = psnr(f["mean/fused"][:], ref), psnr(f["out/denoised"][:], ref)
        T.check(b > a + 3, f"plane pairs: the one repeat denoised gains 3 dB: {b:.2f} > {a:.2f}")

# too few repeats
st = base([4, 32, 32], 1)
st["n2n"] = {"uses": "n2n_train", "inputs": {"repeats": "norm.data"}, "params": dict(SMALL, patch=16, steps=5)}
d, c, p = run("n2n-one", st)
T.check(p.returncode == 3 and "pairs 'repeats' need at least 2" in p.stderr, "n2n on one repeat with repeat pairs: "
        "exit 3, says to use planes", sslib.describe(p))

# ---- the CNN motion baseline ---------------------------------------------------------------
st = base([8, 64, 64], 4, motion=0.5)
st["cnn"] = {"uses": "cnn_motion", "inputs": {"repeats": "norm.data", "artifacts": "raw.artifacts"},
             "params": {"filters": [16, 16], "steps": 250, "patch": 32, "batch": 8}}
d, c, p = run("motion", st)
T.check(p.returncode == 0, "cnn_motion with the phantom's artefact table", sslib.describe(p))
if p.returncode == 0:
    with h5py.File(os.path.join(d, "out", "s1.h5")) as f:
        ref = f["norm/reference"][:]
        a, b = psnr(f["mean/fused"][:], ref), psnr(f["cnn/fused"][:], ref)
        T.diag(f"PSNR (dB): mean {a:.2f}, cnn_motion {b:.2f}")
        T.check(b > a, f"cnn_motion beats the mean: {b:.2f} > {a:.2f}")
        moved = set(int(r) for r in f["raw/artifacts"][:]["repeat"])
        clean = [int(x) for x in f["cnn"].attrs["clean_repeats"]]
        T.check(clean == [r for r in range(4) if r not in moved] and len(moved) == 2,
                f"the target averages the repeats the artefact table does not list: {clean} (moving: {sorted(moved)})")
        arch = json.loads(f["cnn"].attrs["cnn"])
        T.check(arch["kind"] == "plain" and [x["kernel"] for x in arch["layers"]] == [5, 5, 5]
                and [x["filters"] for x in arch["layers"]] == [16, 16, 1],
                "the model: three 5x5 layers with 16, 16 and 1 filters")

for tag, params, inputs, want in [
    ("no clean repeat named or found", {}, {"repeats": "norm.data"}, "no clean repeats"),
    ("a clean repeat that does not exist", {"clean_repeats": [5]}, {"repeats": "norm.data"},
     "clean repeat 5 does not exist"),
]:
    st = base([4, 32, 32], 4)
    st["cnn"] = {"uses": "cnn_motion", "inputs": inputs, "params": dict(params, patch=16, steps=5, filters=[4, 4])}
    d, c, p = run("motion-bad", st)
    T.check(p.returncode == 3 and want in p.stderr and p.stderr.count("\n") <= 2, f"cnn_motion, {tag}: exit 3, "
            f"'{want}'", sslib.describe(p))
T.done()
