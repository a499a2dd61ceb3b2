"""denoise_train and denoise_apply end to end: a small U-Net trained on one
dendrite phantom (noisy against truth) and applied to another it never saw
makes the PSNR better than its input's (the Gaussian filter is shown beside
it); the model is stored with its description; tiled inference equals the
whole-plane result; a training killed after a checkpoint resumes
bit-identical; bad input gets one-line errors with the documented exit codes
and commits nothing."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
SMALL = {"depth": 2, "width": 8, "patch": 32, "batch": 8, "lr": 0.003}


def phantoms(shape=(8, 64, 64)):
    st = {}
    for part in ("train", "test"):
        st[f"{part}_raw"] = {"uses": "synth", "params": {"shape": list(shape), "repeats": 1, "photons": 30,
                                                          "motion_fraction": 0}}
        st[f"{part}_norm"] = {"uses": "normalize", "inputs": {"stack": f"{part}_raw.repeats",
                                                              "reference": f"{part}_raw.truth"}}
        st[f"{part}_in"] = {"uses": "fuse_mean", "inputs": {"repeats": f"{part}_norm.data"}}
    return st


def psnr(x, ref):
    return 10 * np.log10(1.0 / np.mean((x - ref) ** 2))


# ---- quality on an unseen phantom, model description, tiles ------------------------
tmp = T.tmpdir("denoise")
stages = phantoms()
stages.update({
    "gauss": {"uses": "filter_gaussian", "inputs": {"image": "test_in.fused"}, "params": {"sigma": [0, 1.0, 1.0]}},
    "train": {"uses": "denoise_train", "inputs": {"input": "train_in.fused", "target": "train_norm.reference"},
              "params": dict(SMALL, steps=300)},
    "apply": {"uses": "denoise_apply", "inputs": {"image": "test_in.fused", "model": "train.weights"},
              "params": {"tile": 64}},
    "tiled": {"uses": "denoise_apply", "inputs": {"image": "test_in.fused", "model": "train.weights"},
              "params": {"tile": 16}},
})
cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), stages)
p = sslib.run(["run", cfg, "--threads", "2", "-q"], timeout=1200)
T.check(p.returncode == 0, "train on one phantom, apply to another", sslib.describe(p))
if p.returncode == 0:
    with h5py.File(os.path.join(tmp, "out", "s1.h5")) as f:
        ref = f["test_norm/reference"][:]
        got = {k: psnr(f[k][:], ref) for k in ("test_in/fused", "gauss/filtered", "apply/denoised")}
        T.diag("PSNR against the truth (dB): " + ", ".join(f"{k} {v:.2f}" for k, v in got.items()))
        T.check(got["apply/denoised"] > got["test_in/fused"] + 3,
                f"the denoiser improves its input on an unseen phantom: {got['apply/denoised']:.2f} > "
                f"{got['test_in/fused']:.2f} dB (+3)")
        curve = f["train/curve"][:]
        T.check(len(curve) == 300 and curve["loss"][-30:].mean() < 0.5 * curve["loss"][:30].mean(),
                "training curve: one row per step, the loss falls by half",
                f"first {curve['loss'][:30].mean():.4g}, last {curve['loss'][-30:].mean():.4g}")
        a = f["train"].attrs
        import json
        arch = json.loads(a["cnn"]) if isinstance(a["cnn"], (str, bytes)) else None
        w = f["train/weights"][:]
        # depth 2, width 8: convs 1->8, 8->8, 8->16, 16->16, up 16->8 (2x2), 16->8, 8->8, 8->1 (1x1)
        n = sum(ci * co * k * k + co for ci, co, k in
                [(1, 8, 3), (8, 8, 3), (8, 16, 3), (16, 16, 3), (16, 8, 2), (16, 8, 3), (8, 8, 3), (8, 1, 1)])
        T.check(arch is not None and arch.get("format") == 1 and arch.get("kind") == "unet" and arch.get("depth") == 2
                and w.shape == (n,) and np.isfinite(w).all() and "normalisation" in a,
                f"the model: {n} weights, architecture and normalisation as attributes", str(dict(a))[:800])
        d = np.abs(f["apply/denoised"][:] - f["tiled/denoised"][:]).max()
        T.check(d <= 1e-5 * np.abs(f["apply/denoised"][:]).max(), f"tiles of 16 equal one tile of the whole plane "
                f"(largest difference {d:.3g})")
        T.check(f["tiled"].attrs["tile"] == 16 and f["tiled"].attrs["overlap"] >= 8,
                "the tile and its overlap are recorded")

# a model written by a newer sirenstack (its format number raised in place) is refused
if p.returncode == 0:
    import gc
    import glob
    import json
    a = f = None  # the objects of the first read keep its files open
    gc.collect()
    f = glob.glob(os.path.join(tmp, "out", "s1.h5.d", "stages", "train.*.h5"))[0]
    with h5py.File(f, "r+") as h:
        a = json.loads(h.attrs["cnn"])
        a["format"] = 2
        h.attrs["cnn"] = json.dumps(a)
    stages["again"] = {"uses": "denoise_apply", "inputs": {"image": "test_in.fused", "model": "train.weights"},
                       "params": {"tile": 32}}
    sslib.make_config(cfg, stages)
    p = sslib.run(["run", cfg, "--threads", "2", "-q"], timeout=600)
    T.check(p.returncode == 3 and "format version 2; this program reads version 1 (made by a newer sirenstack)"
            in p.stderr and p.stderr.count("\n") == 1, "a model of a newer format: one line, exit 3",
            sslib.describe(p))

# ---- a killed training resumes bit-identical ----------------------------------------------
tmp2 = T.tmpdir("denoise-ckpt")
st2 = phantoms((4, 32, 32))
st2["train"] = {"uses": "denoise_train", "inputs": {"input": "train_in.fused", "target": "train_norm.reference"},
                "params": dict(SMALL, steps=60, patch=16, batch=4, dropout=0.2)}


def fresh(tag):
    d = os.path.join(tmp2, tag)
    os.makedirs(d)
    return sslib.make_config(os.path.join(d, "c.yaml"), st2, run_extra={"checkpoint": {"every_steps": 20,
                                                                                       "every_seconds": 0}})


def trained(c):
    with h5py.File(os.path.join(os.path.dirname(c), "out", "s1.h5")) as f:
        return f["train/weights"][:], f["train/curve"]["loss"][:]


ref_cfg = fresh("ref")
p = sslib.run(["run", ref_cfg, "--threads", "2", "-q"], timeout=600)
T.check(p.returncode == 0, "uninterrupted training", sslib.describe(p))
refw = trained(ref_cfg) if p.returncode == 0 else None
for k in (1, 2):
    c = fresh(f"kill{k}")
    p = sslib.run(["run", c, "--threads", "2", "-q"], env={"SIRENSTACK_CRASHPOINT": f"checkpoint.after_write:{k}"},
                  timeout=600)
    T.check(p.returncode == -9, f"killed after checkpoint {k}", sslib.describe(p))
    p = sslib.run(["run", c, "--threads", "2"], timeout=600)
    T.check(p.returncode == 0 and f"resuming from the checkpoint at step {20 * k}" in p.stderr,
            f"the rerun resumes at step {20 * k}", sslib.describe(p))
    if refw is not None and p.returncode == 0:
        got = trained(c)
        T.check(np.array_equal(got[0], refw[0]) and np.array_equal(got[1], refw[1]),
                f"resumed after checkpoint {k}: weights and loss curve bit-identical (dropout included)")

# ---- bad input ----------------------------------------------------------------------------
tmp3 = T.tmpdir("denoise-bad")


def bad(tag, train_params, want_rc, want_text, every=5):
    d = os.path.join(tmp3, tag)
    os.makedirs(d)
    st = phantoms((4, 32, 32))
    st["train"] = {"uses": "denoise_train", "inputs": {"input": "train_in.fused", "target": "train_norm.reference"},
                   "params": {**SMALL, "steps": 20, "patch": 16, "batch": 2, **train_params}}
    c = sslib.make_config(os.path.join(d, "c.yaml"), st, run_extra={"checkpoint": {"every_steps": every,
                                                                                   "every_seconds": 0}})
    p = sslib.run(["run", c, "--threads", "2", "-q"], timeout=600)
    lines = [ln for ln in p.stderr.splitlines() if want_text in ln]
    T.check(p.returncode == want_rc and len(lines) == 1,
            f"{tag}: exit {want_rc}, one line saying '{want_text}'", sslib.describe(p))
    T.diag(lines[0] if lines else p.stderr[-300:])
    if p.returncode not in (0, 2):
        st_ = sslib.run(["status", c])
        state = [ln.split()[2] for ln in st_.stdout.splitlines() if ln.split()[1:2] == ["train"]]
        T.check(state == ["failed"],
                f"{tag}: the training stage committed nothing", sslib.describe(st_))
    return d


bad("patch larger than the planes", {"patch": 64}, 3, "do not fit in planes of 32 x 32")
bad("patch not a multiple of 2^(depth-1)", {"patch": 15}, 2, "patch must be a multiple of 2^(depth-1)")
d = bad("divergence", {"optimizer": "sgd", "lr": 10.0, "steps": 400}, 1, "the loss became", every=1)
ck = os.path.join(d, "out", "s1.h5.d", "ckpt", "train.ckpt")
T.check(os.path.exists(ck), "divergence: the last good checkpoint is kept (saved every step here)")
T.done()
