#!/usr/bin/python3
"""Noise2Noise in sirenstack (n2n_train + n2n_apply) against CAREamics'
Noise2Noise (PyPI `careamics`, PyTorch), for scripts/bench.

usage: bench_n2n_careamics.py SIRENSTACK WORKDIR VENV

Data: one dendrite phantom per photon level (30 and 500 photons at the peak;
independent seeds), from sirenstack's `synth` stage with the motion of
configs/denoise_phantoms.yaml, normalised as that config does (`normalize`,
the truth mapped alike). Both sides learn from the same four repeats with no
clean data: sirenstack from a random ordered pair of repeats per patch
(`pairs: repeats`), CAREamics from the stack of all ordered pairs (input
repeat a, target repeat b, a != b), which is the same distribution. The same
U-Net size (3 levels, 16 filters at the first; CAREamics counts 2
downsamplings), patch size, batch size, learning rate (Adam, 1e-3), number of
patches seen (steps x batch; CAREamics' Lightning trainer stops at max_steps,
full batches only) and thread count. Each side then denoises every repeat and
takes the median of the four (n2n_apply's `combine: median`). The baseline is
the median of the repeats, Gaussian-filtered laterally (sigma 1.0).

PSNR and 3D SSIM (skimage: Gaussian window sigma 1.5, population covariance)
against the normalised noiseless truth, data range = the truth's range.
Times: sirenstack's stage `seconds` (training: the whole n2n_train stage;
inference: the whole n2n_apply stage); CAREamics: the wall time of
CAREamist.train() and of CAREamist.predict() plus the median.

CAREamics is installed from PyPI into VENV (kept and reused). Where PyPI
cannot be reached and VENV lacks it, prints "skipped: REASON" and exits 0.
Exits non-zero when a program fails or a result is not finite, never because
of a measured quality or speed.

Environment: BENCH_N2N_STEPS (1500), BENCH_N2N_SHAPE ("16 128 128", z y x),
BENCH_N2N_LOSSES ("mae mse": CAREamics' N2N default loss, L1, and the MSE
that sirenstack's n2n_train minimises), BENCH_THREADS (all cores).
"""
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np

from bench_ssim import cpu_name  # the same CPU line as the SSIM table

CAREAMICS = "careamics>=0.3.5,<0.4"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PHOTONS = (30, 500)
DEPTH, WIDTH, PATCH, BATCH, LR = 3, 16, 64, 10, 1e-3
GAUSS_SIGMA = 1.0


def reachable(host):
    try:
        socket.create_connection((host, 443), timeout=15).close()
        return True
    except OSError:
        return False


def careamics_python(venv):
    """The venv's python with careamics importable, or (None, why). The venv
    is kept and reused; PyPI is asked only when it lacks careamics."""
    py = os.path.join(venv, "bin", "python")
    probe = [py, "-c", "import careamics, torch"]
    if os.path.exists(py) and subprocess.run(probe, capture_output=True).returncode == 0:
        return py, None
    if not reachable("pypi.org"):
        return None, "PyPI (pypi.org) cannot be reached and " + venv + " lacks careamics"
    shutil.rmtree(venv, ignore_errors=True)
    # an isolated venv: Debian's torch 1.13 and numpy would only be shadowed
    p = subprocess.run(["/usr/bin/python3", "-m", "venv", venv], capture_output=True, text=True)
    if p.returncode != 0:
        return None, f"python3 -m venv failed: {p.stderr.strip()[-300:]}"
    cmd = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--timeout", "60"]
    # PyTorch's CPU wheels are a tenth of the size of PyPI's, which bring the
    # CUDA libraries (5 GB installed); their index is used where it resolves
    if reachable("download.pytorch.org"):
        cmd += ["--extra-index-url", CPU_INDEX]
    print(f"# installing {CAREAMICS} into {venv} (minutes)", file=sys.stderr, flush=True)
    try:
        p = subprocess.run(cmd + [CAREAMICS], capture_output=True, text=True, timeout=3000)
    except subprocess.TimeoutExpired:
        shutil.rmtree(venv, ignore_errors=True)
        return None, f"pip install {CAREAMICS} took more than 50 minutes"
    if p.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        shutil.rmtree(venv, ignore_errors=True)
        return None, f"pip install {CAREAMICS} failed (PyPI unreachable?): {last[:200]}"
    return py, None


# The CAREamics side, run by the venv's python in its own process:
# PEER REPEATS.npy OUT.npy WORKDIR STEPS THREADS LOSS SEED; prints one JSON line.
PEER = r"""
import json, os, sys, time, warnings
import numpy as np
import torch

src, dst, work = sys.argv[1:4]
steps, threads, loss, seed = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
depth, width, patch, batch, lr = int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10]), int(sys.argv[11]), \
    float(sys.argv[12])
torch.set_num_threads(threads)
warnings.filterwarnings("ignore")
import logging
logging.getLogger("lightning").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
import careamics, lightning
from careamics import CAREamist
from careamics.config import create_advanced_n2n_config

rep = np.load(src).astype(np.float32)
R, Z, Y, X = rep.shape
pairs = [(a, b) for a in range(R) for b in range(R) if a != b]
inp = np.concatenate([rep[a] for a, _ in pairs])
tgt = np.concatenate([rep[b] for _, b in pairs])
cfg = create_advanced_n2n_config(
    experiment_name="n2n_bench", data_type="array", axes="SYX", patch_size=[patch, patch], batch_size=batch,
    # CAREamics' depth counts downsamplings; sirenstack's counts levels
    num_epochs=1000000, model_params={"depth": depth - 1, "num_channels_init": width},
    optimizer="Adam", optimizer_params={"lr": lr}, num_workers=0,
    train_dataloader_params={"shuffle": True, "drop_last": True},
    trainer_params={"max_steps": steps, "accelerator": "cpu", "devices": 1}, logger="none", seed=seed)
cfg.algorithm_config.loss = loss
cam = CAREamist(cfg, work_dir=work, enable_progress_bar=False)
n_params = sum(p.numel() for p in cam.model.parameters())
t0 = time.perf_counter()
cam.train(train_data=inp, train_data_target=tgt)
train_s = time.perf_counter() - t0
seen = int(cam.trainer.global_step) * batch
t0 = time.perf_counter()
pred, _ = cam.predict(rep.reshape(R * Z, Y, X), axes="SYX")
out = np.median(np.asarray(pred[0] if len(pred) == 1 else pred, dtype=np.float32).reshape(R, Z, Y, X), axis=0)
infer_s = time.perf_counter() - t0
np.save(dst, out.astype(np.float32))
print(json.dumps({"train_s": train_s, "infer_s": infer_s, "patches": seen, "n_params": n_params,
                  "careamics": careamics.__version__, "torch": torch.__version__,
                  "lightning": lightning.__version__, "threads": torch.get_num_threads(),
                  "loss": cam.config.algorithm_config.loss, "pairs": len(pairs)}))
"""


def config(steps, shape):
    synth = {"shape": list(shape), "repeats": 4, "motion_fraction": 0.25, "motion_planes": 0.5}
    stages = {}
    for ph in PHOTONS:
        stages[f"test_{ph}"] = {"uses": "synth", "params": dict(synth, photons=ph)}
        stages[f"norm_{ph}"] = {"uses": "normalize", "inputs": {"stack": f"test_{ph}.repeats",
                                                               "reference": f"test_{ph}.truth"}}
        stages[f"median_{ph}"] = {"uses": "fuse_median", "inputs": {"repeats": f"norm_{ph}.data"}}
        stages[f"gauss_{ph}"] = {"uses": "filter_gaussian", "inputs": {"image": f"median_{ph}.fused"},
                                 "params": {"sigma": [0, GAUSS_SIGMA, GAUSS_SIGMA]}}
        stages[f"n2n_train_{ph}"] = {"uses": "n2n_train", "inputs": {"repeats": f"norm_{ph}.data"},
                                     "params": {"pairs": "repeats", "depth": DEPTH, "width": WIDTH, "patch": PATCH,
                                                "batch": BATCH, "steps": steps, "lr": LR}}
        stages[f"n2n_{ph}"] = {"uses": "n2n_apply", "inputs": {"repeats": f"norm_{ph}.data",
                                                              "model": f"n2n_train_{ph}.weights"},
                               "params": {"combine": "median"}}
    return {"version": 1, "run": {"name": "n2n_careamics", "output": "out", "seed": 11},
            "samples": [{"id": "p", "voxel_size": [1.0, 0.1, 0.1], "repeats": 4}], "stages": stages}


def scores(x, ref):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    L = float(ref.max() - ref.min())
    return (peak_signal_noise_ratio(ref, x, data_range=L),
            structural_similarity(ref, x, data_range=L, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False))


def main():
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 64
    sirenstack, work, venv = (os.path.abspath(a) for a in sys.argv[1:4])
    steps = int(os.environ.get("BENCH_N2N_STEPS", "1500"))
    shape = [int(v) for v in os.environ.get("BENCH_N2N_SHAPE", "16 128 128").split()]
    losses = os.environ.get("BENCH_N2N_LOSSES", "mae mse").split()
    threads = int(os.environ.get("BENCH_THREADS") or os.cpu_count() or 1)
    if len(shape) != 3 or min(shape[1:]) < PATCH or not losses or set(losses) - {"mae", "mse"}:
        print(f"bench: BENCH_N2N_SHAPE needs z y x with y, x >= {PATCH}; BENCH_N2N_LOSSES: mae and/or mse",
              file=sys.stderr)
        return 64
    py, why = careamics_python(venv)
    if not py:
        print(f"# Noise2Noise against CAREamics: skipped: {why}")
        return 0
    import yaml
    import h5py
    import hdf5plugin  # noqa: F401 - the blosc filter 32001

    load0 = os.getloadavg()[0]
    d = os.path.join(work, "n2n_careamics")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cfg = os.path.join(d, "config.yaml")
    with open(cfg, "w") as f:
        yaml.safe_dump(config(steps, shape), f, sort_keys=False)
    print(f"# sirenstack run {cfg} --threads {threads}", file=sys.stderr, flush=True)
    try:
        p = subprocess.run([sirenstack, "run", cfg, "--threads", str(threads), "-q"], capture_output=True,
                           text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)), timeout=7200)
    except subprocess.TimeoutExpired:
        print("bench: sirenstack run took more than 2 hours", file=sys.stderr)
        return 1
    if p.returncode != 0:
        print(f"bench: sirenstack run failed (exit {p.returncode}): {p.stderr.strip()[-2000:]}", file=sys.stderr)
        return 1

    errors, peer_info = [], {}
    with h5py.File(os.path.join(d, "out", "p.h5"), "r") as f:
        data = {ph: {"rep": f[f"norm_{ph}/data"][:], "ref": f[f"norm_{ph}/reference"][:],
                     "gauss": f[f"gauss_{ph}/filtered"][:], "n2n": f[f"n2n_{ph}/denoised"][:],
                     "train_s": float(f[f"n2n_train_{ph}"].attrs["seconds"]),
                     "infer_s": float(f[f"n2n_{ph}"].attrs["seconds"]),
                     "gauss_s": float(f[f"median_{ph}"].attrs["seconds"]) + float(f[f"gauss_{ph}"].attrs["seconds"]),
                     "n_params": int(f[f"n2n_train_{ph}"].attrs["n_params"])} for ph in PHOTONS}

    for ph in PHOTONS:
        dd = data[ph]
        src = os.path.join(d, f"repeats_{ph}.npy")
        np.save(src, dd["rep"].astype(np.float32))
        for loss in losses:
            dst = os.path.join(d, f"careamics_{ph}_{loss}.npy")
            wd = os.path.join(d, f"careamics_{ph}_{loss}")
            print(f"# CAREamics N2N, {ph} photons, loss {loss}", file=sys.stderr, flush=True)
            try:
                p = subprocess.run([py, "-c", PEER, src, dst, wd, str(steps), str(threads), loss, str(11 + ph),
                                    str(DEPTH), str(WIDTH), str(PATCH), str(BATCH), repr(LR)],
                                   capture_output=True, text=True, cwd=d, timeout=7200,
                                   env=dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore"))
            except subprocess.TimeoutExpired:
                print(f"bench: CAREamics ({ph} photons, {loss}) took more than 2 hours", file=sys.stderr)
                return 1
            try:
                got = json.loads(p.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                got = None
            if p.returncode != 0 or got is None:
                print(f"bench: CAREamics ({ph} photons, {loss}) failed (exit {p.returncode}): "
                      f"{p.stderr.strip()[-3000:]}", file=sys.stderr)
                return 1
            if got["patches"] != steps * BATCH:
                errors.append(f"CAREamics ({ph}, {loss}) saw {got['patches']} patches, not {steps * BATCH}")
            peer_info = got
            dd[f"care_{loss}"] = np.load(dst)
            dd[f"care_{loss}_t"] = (got["train_s"], got["infer_s"], got["n_params"])

    print(f"# Noise2Noise against CAREamics: {shape[0]} x {shape[1]} x {shape[2]} dendrite phantoms, 4 repeats, "
          f"normalised; {steps} steps x {BATCH} patches of {PATCH} x {PATCH} = {steps * BATCH} patches; "
          f"U-Net 3 levels, {WIDTH} filters at the first; Adam lr {LR}; {threads} threads")
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs; careamics {peer_info['careamics']}, torch {peer_info['torch']}, "
          f"lightning {peer_info['lightning']}; torch threads {peer_info['threads']}; load average (1 min) "
          f"{load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"# parameters: sirenstack {data[PHOTONS[0]]['n_params']}, CAREamics "
          f"{data[PHOTONS[0]]['care_' + losses[0] + '_t'][2]}")
    fmt = "{:>7} {:<30} {:>9} {:>7} {:>9} {:>9} {:>11} {:>11}"
    print(fmt.format("photons", "method", "PSNR dB", "SSIM", "train s", "infer s", "ours/this", "ours - this"))
    for ph in PHOTONS:
        dd = data[ph]
        methods = [("median + Gaussian 1.0", dd["gauss"], float("nan"), dd["gauss_s"]),
                   ("sirenstack n2n (MSE)", dd["n2n"], dd["train_s"], dd["infer_s"])]
        for loss in losses:
            t = dd[f"care_{loss}_t"]
            name = "CAREamics N2N (L1, default)" if loss == "mae" else "CAREamics N2N (MSE)"
            methods.append((name, dd[f"care_{loss}"], t[0], t[1]))
        got = {}
        for name, x, ts, ti in methods:
            if x.shape != dd["ref"].shape or not np.all(np.isfinite(x)):
                errors.append(f"{name} at {ph} photons: shape {x.shape} or values not finite")
                continue
            got[name] = scores(x.astype(np.float64), dd["ref"].astype(np.float64)) + (ts, ti)
        ours = got.get("sirenstack n2n (MSE)")
        for name, (ps, ss, ts, ti) in got.items():
            ratio = diff = ""
            if ours and name.startswith("CAREamics"):
                ratio = f"{ours[2] / ts:.2f} / {ours[3] / ti:.2f}"
                diff = f"{ours[0] - ps:+.2f}"
            elif ours and name.startswith("median"):
                diff = f"{ours[0] - ps:+.2f}"
            print(fmt.format(ph, name, f"{ps:.2f}", f"{ss:.3f}", f"{ts:.1f}" if ts == ts else "",
                             f"{ti:.2f}" if ti == ti else "", ratio, diff))
    print("# ours/this: sirenstack time / this time, training / inference (below 1: sirenstack is faster);")
    print("# ours - this: sirenstack n2n's PSNR minus this method's (dB). Baseline: fuse_median + filter_gaussian stage times.")
    for e in errors:
        print(f"bench: error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
