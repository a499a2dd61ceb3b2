"""The SIREN stages end to end: siren_fuse with a robust loss beats fuse_mean
against the ground truth when one repeat in four carries motion artifacts;
a fit killed or signalled mid-training resumes from its checkpoint and ends
bit-identical; siren_render reproduces the fitted grid and renders finer ones;
siren_interplane keeps acquired planes exactly; bad input gets clear errors."""
import os
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
rng = np.random.default_rng(5)


def smooth_volume(shape, sigma):
    from scipy.ndimage import gaussian_filter
    v = gaussian_filter(rng.standard_normal(shape), sigma)
    v = (v - v.min()) / (v.max() - v.min())
    return 20 + 400 * v ** 2


def write_repeats(path, truth, R=4, motion_repeat=3, shift=6):
    """R Poisson repeats of truth; one repeat with bands of rows displaced
    laterally (resonant-scanner motion) in every plane."""
    reps = np.stack([rng.poisson(truth).astype(np.uint16) for _ in range(R)])
    if motion_repeat is not None:
        Z, Y, X = truth.shape
        for z in range(Z):
            for start in range(3, Y, 12):
                reps[motion_repeat, z, start:start + 5] = np.roll(reps[motion_repeat, z, start:start + 5], shift, axis=-1)
    with h5py.File(path, "w") as f:
        f["raw"] = reps
    return reps


def psnr(x, ref):
    return 10 * np.log10(1.0 / np.mean((x - ref) ** 2))


fit = {"width": 64, "hidden_layers": 2, "steps": 300}

# ---- motion correction ------------------------------------------------------------
tmp = T.tmpdir("siren")
truth = smooth_volume((4, 64, 64), (1, 3, 3))
write_repeats(os.path.join(tmp, "acq.h5"), truth)
stages = {
    "raw": {"uses": "import_hdf5", "params": {"file": "acq.h5", "dataset": "/raw", "axes": "rzyx"}},
    "norm": {"uses": "normalize", "inputs": {"stack": "raw.raw"}},
    "mean": {"uses": "fuse_mean", "inputs": {"repeats": "norm.data"}},
    "median": {"uses": "fuse_median", "inputs": {"repeats": "norm.data"}},
    "robust": {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(fit, loss="cauchy", loss_scale=0.05)},
    "plain": {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(fit, loss="mse")},
}
cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), stages)
p = sslib.run(["run", cfg, "--threads", "2", "-q"], timeout=600)
T.check(p.returncode == 0, "motion pipeline runs", sslib.describe(p))
if p.returncode == 0:
    with h5py.File(os.path.join(tmp, "out", "s1.h5")) as f:
        lo, hi = f["norm"].attrs["p_low_value"], f["norm"].attrs["p_high_value"]
        ref = (truth - lo) / (hi - lo)
        res = {k: psnr(f[f"{k}/fused"][:], ref) for k in ("mean", "median", "robust", "plain")}
        T.diag("PSNR vs truth (dB): " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
        T.check(res["robust"] > res["mean"], f"siren_fuse (cauchy) beats fuse_mean: {res['robust']:.2f} > {res['mean']:.2f} dB")
        curve = f["robust/curve"][:]
        T.check(len(curve) == fit["steps"] and curve["loss"][-1] < curve["loss"][0], "training curve: every step, loss falls")
        a = f["robust"].attrs
        T.check("siren" in a and "coordinates" in a and f["robust/weights"].shape[0] > 0, "weights and model description stored")

# ---- checkpoints: SIGKILL and SIGTERM mid-training, resume, bit-identical -------------------
tmp2 = T.tmpdir("siren-ckpt")
stages2 = {
    "raw": {"uses": "synth_smooth", "params": {"shape": [3, 40, 40], "repeats": 2}},
    "fit": {"uses": "siren_fuse", "inputs": {"repeats": "raw.repeats"}, "params": dict(fit, steps=240, loss="huber", loss_scale=5.0)},
}


def fresh(tag):
    d = os.path.join(tmp2, tag)
    os.makedirs(d)
    return sslib.make_config(os.path.join(d, "c.yaml"), stages2, run_extra={"checkpoint": {"every_steps": 40, "every_seconds": 0}})


def arrays(cfgpath):
    with h5py.File(os.path.join(os.path.dirname(cfgpath), "out", "s1.h5")) as f:
        return f["fit/weights"][:], f["fit/fused"][:], f["fit/curve"]["loss"][:]


ref_cfg = fresh("ref")
p = sslib.run(["run", ref_cfg, "--threads", "2", "-q"], timeout=600)
T.check(p.returncode == 0, "uninterrupted fit", sslib.describe(p))
ref = arrays(ref_cfg) if p.returncode == 0 else None
for k in (1, 3, 5):
    c = fresh(f"kill{k}")
    p = sslib.run(["run", c, "--threads", "2", "-q"], env={"SIRENSTACK_CRASHPOINT": f"checkpoint.after_write:{k}"}, timeout=600)
    T.check(p.returncode == -9, f"killed after checkpoint {k}", sslib.describe(p))
    p = sslib.run(["run", c, "--threads", "2"], timeout=600)
    T.check(p.returncode == 0 and f"resuming from the checkpoint at step {40 * k}" in p.stderr,
            f"rerun resumes at step {40 * k}", sslib.describe(p))
    if ref is not None and p.returncode == 0:
        got = arrays(c)
        T.check(np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]) and np.array_equal(got[2], ref[2]),
                f"resumed after checkpoint {k}: weights, output and curve bit-identical")
    ck = os.path.join(os.path.dirname(c), "out", "s1.h5.d", "ckpt", "fit.ckpt")
    T.check(not os.path.exists(ck), "the checkpoint is removed once the stage commits")

# A fit checkpointed by one kernel path and resumed by another (a cluster of
# mixed nodes): it resumes and keeps its fingerprint; its loss curve follows
# the uninterrupted fit's closely, though the weights are not bit-identical
# (Adam turns rounding differences in near-zero gradient components into
# step-sized ones).
c = fresh("mixed")
p = sslib.run(["run", c, "--threads", "2", "-q"], env={"SIRENSTACK_CRASHPOINT": "checkpoint.after_write:2",
                                                       "SIRENSTACK_SIREN_KERNEL": "blas"}, timeout=600)
T.check(p.returncode == -9, "sgemm path: killed after checkpoint 2", sslib.describe(p))
p = sslib.run(["run", c, "--threads", "2"], timeout=600)
T.check(p.returncode == 0 and "resuming from the checkpoint at step 80" in p.stderr,
        "resumed at step 80 by the default kernel path", sslib.describe(p))
if ref is not None and p.returncode == 0:
    got = arrays(c)
    with h5py.File(os.path.join(os.path.dirname(c), "out", "s1.h5")) as f:
        kernel, fp = f["fit"].attrs["kernel"], f["fit"].attrs["fingerprint"]
    with h5py.File(os.path.join(os.path.dirname(ref_cfg), "out", "s1.h5")) as f:
        ref_fp = f["fit"].attrs["fingerprint"]
    err = float(np.max(np.abs(got[2] - ref[2]) / ref[2]))
    T.check(fp == ref_fp, "the kernel path does not enter the fingerprint", f"{fp} vs {ref_fp}")
    T.check(err < 1e-2, f"mixed paths ({kernel} after blas): loss curve within {err:.2g} (relative) of the "
            "uninterrupted fit's at every step")

c = fresh("term")
env = dict(os.environ)
env.pop("SIRENSTACK_CRASHPOINT", None)
proc = subprocess.Popen([sslib.BIN, "run", c, "--threads", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
ck = os.path.join(os.path.dirname(c), "out", "s1.h5.d", "status", "fit.running")
t0 = time.time()
while not os.path.exists(ck) and time.time() - t0 < 60 and proc.poll() is None:
    time.sleep(0.01)
time.sleep(0.3)
proc.send_signal(signal.SIGTERM)
out, err = proc.communicate(timeout=120)
T.check(proc.returncode in (75, 0), f"SIGTERM during training: exit 75 (got {proc.returncode})", err[-800:])
if proc.returncode == 75:
    T.check("interrupted at step" in err, "the message names the step", err[-800:])
p = sslib.run(["run", c, "--threads", "2", "-q"], timeout=600)
T.check(p.returncode == 0, "rerun after SIGTERM completes", sslib.describe(p))
if ref is not None and p.returncode == 0:
    got = arrays(c)
    T.check(np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]), "after SIGTERM: bit-identical to the uninterrupted fit")

# ---- render and interplane ---------------------------------------------------------------
tmp3 = T.tmpdir("siren-render")
stack = smooth_volume((9, 40, 36), (1.5, 3, 3)).astype(np.float32)
with h5py.File(os.path.join(tmp3, "stack.h5"), "w") as f:
    f["s"] = stack
st3 = {
    "raw": {"uses": "import_hdf5", "params": {"file": "stack.h5", "dataset": "/s", "axes": "zyx"}},
    "norm": {"uses": "normalize", "inputs": {"stack": "raw.raw"}},
    "img": {"uses": "fuse_mean", "inputs": {"repeats": "norm.data"}},
    "fit": {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(fit, steps=100)},
    "same": {"uses": "siren_render", "inputs": {"weights": "fit.weights"}, "params": {"z_step": 1}},
    "fine": {"uses": "siren_render", "inputs": {"weights": "fit.weights"},
             "params": {"z_planes": [0, 0.5, 4, 7.75], "xy_scale": 2}},
    "inter": {"uses": "siren_interplane", "inputs": {"stack": "img.fused"}, "params": dict(fit, steps=100, keep_every=3, z_upsample=4)},
}
cfg3 = sslib.make_config(os.path.join(tmp3, "c.yaml"), st3)
p = sslib.run(["run", cfg3, "--threads", "2", "-q"], timeout=600)
T.check(p.returncode == 0, "render and interplane pipeline runs", sslib.describe(p))
if p.returncode == 0:
    with h5py.File(os.path.join(tmp3, "out", "s1.h5")) as f:
        T.check(np.array_equal(f["same/rendered"][:], f["fit/fused"][:]), "rendering the fitted grid reproduces the fit's output exactly")
        fine = f["fine/rendered"]
        T.check(fine.shape == (4, 79, 71), f"finer grid shape {fine.shape} = (4, 79, 71)")
        T.check(np.allclose(fine[2, ::2, ::2], f["fit/fused"][4], atol=1e-5), "integer positions of the finer grid match the fit")
        T.check(abs(fine.attrs["voxel_size"][1] - 0.05) < 1e-9, "finer grid's voxel size is halved")
        img, rest, mask = f["img/fused"][:], f["inter/restored"][:], f["inter/mask"][:]
        T.check(list(mask) == [0, 1, 1, 0, 1, 1, 0, 1, 1], f"held-out mask {list(mask)}")
        T.check(np.array_equal(rest[mask == 0], img[mask == 0]), "kept planes are restored exactly as acquired")
        T.check(np.array_equal(f["inter/predicted"][:], rest[mask == 1]), "predicted planes = restored at the mask")
        up = f["inter/upsampled"]
        T.check(up.shape == (33, 40, 36) and abs(up.attrs["voxel_size"][0] - 0.25) < 1e-9, f"z_upsample 4: {up.shape}, 0.25 um")
        T.check(bool(np.all(np.isfinite(rest))), "predictions are finite")

# ---- bad input ------------------------------------------------------------------------------


def bad(stages_extra, expect_rc, expect_text, desc):
    d = T.tmpdir("siren-bad")
    with h5py.File(os.path.join(d, "stack.h5"), "w") as f:
        f["s"] = stack
    st = dict(st3)
    st = {k: st3[k] for k in ("raw", "norm", "img")}
    st.update(stages_extra)
    cfgb = sslib.make_config(os.path.join(d, "c.yaml"), st)
    p = sslib.run(["run", cfgb, "--threads", "2", "-q"], timeout=300)
    T.check(p.returncode == expect_rc and expect_text in p.stderr, f"{desc}: exit {expect_rc}, says '{expect_text}'", sslib.describe(p))
    return d


bad({"i": {"uses": "siren_interplane", "inputs": {"stack": "img.fused"}, "params": dict(fit, keep_planes=[0, 4, 12])}},
    3, "outside the stack's planes", "kept plane out of range (the stack's depth is data)")
bad({"i": {"uses": "siren_interplane", "inputs": {"stack": "img.fused"}, "params": dict(fit, keep_planes=[0, 4, 3])}},
    2, "increasing", "unsorted kept planes")
bad({"i": {"uses": "siren_interplane", "inputs": {"stack": "img.fused"}, "params": dict(fit, keep_planes=list(range(9)))}},
    3, "nothing to predict", "nothing left to predict (the stack's depth is data)")
bad({"f": {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(fit, fraction=1.5)}},
    2, "fraction", "fraction above 1")
bad({"f": {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(fit, fraction=0)}},
    2, "fraction", "fraction 0")
bad({"f": {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(fit, steps=20)},
     "r": {"uses": "siren_render", "inputs": {"weights": "f.weights"}, "params": {"xy_scale": 64, "max_memory_mb": 1}}},
    3, "needs", "render grid too large for the memory allowed (known from the fitted shape, while running)")
# Values near the float limit overflow the gradient: the loss turns NaN at
# the next step, and the fit stops there rather than writing garbage.
d = T.tmpdir("siren-nan")
with h5py.File(os.path.join(d, "huge.h5"), "w") as f:
    f["s"] = np.full((3, 16, 16), 3e38, np.float32)
cfgn = sslib.make_config(os.path.join(d, "c.yaml"), {
    "raw": {"uses": "import_hdf5", "params": {"file": "huge.h5", "dataset": "/s", "axes": "zyx"}},
    "f": {"uses": "siren_fuse", "inputs": {"repeats": "raw.raw"}, "params": dict(fit, steps=50)}},
    run_extra={"checkpoint": {"every_steps": 1, "every_seconds": 0}})
p = sslib.run(["run", cfgn, "-q"], timeout=300)
T.check(p.returncode == 1 and "the loss became NaN at step 2" in p.stderr, "a non-finite loss stops the fit, naming the step",
        sslib.describe(p))
ckn = os.path.join(d, "out", "s1.h5.d", "ckpt", "f.ckpt")
T.check(os.path.exists(ckn), "the last good checkpoint is kept")
st = sslib.run(["status", cfgn])
T.check("failed" in st.stdout and "the loss became" in st.stdout, "status shows the failure", sslib.describe(st))
# an unknown architecture version in stored weights
d = bad({"f": {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(fit, steps=10)}}, 0, "", "a short fit")
stagefiles = [x for x in os.listdir(os.path.join(d, "out", "s1.h5.d", "stages")) if x.startswith("f.")]
if stagefiles:
    import json
    path = os.path.join(d, "out", "s1.h5.d", "stages", stagefiles[0])
    with h5py.File(path, "r+") as f:
        s = json.loads(f.attrs["siren"])
        s["arch_version"] = 99
        f.attrs["siren"] = json.dumps(s)
    st = {k: st3[k] for k in ("raw", "norm", "img")}
    st["f"] = {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(fit, steps=10)}
    st["r"] = {"uses": "siren_render", "inputs": {"weights": "f.weights"}, "params": {"z_step": 1}}
    cfgb = sslib.make_config(os.path.join(d, "c.yaml"), st)
    p = sslib.run(["run", cfgb, "-q"], timeout=300)
    T.check(p.returncode == 3 and "architecture version 99" in p.stderr, "weights of an unknown architecture version are refused",
            sslib.describe(p))
T.done()
