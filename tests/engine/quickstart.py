#!/usr/bin/python3
"""The quickstart config (configs/quickstart.yaml, what scripts/demo runs), in
TAP: it validates and runs on a fresh output folder, scores every fusion
method against the ground truth normalised with the repeats' percentiles, and
the scores agree with a numpy recomputation from the container."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

import sslib  # noqa: E402

T = sslib.Tap()
CONFIG = os.path.join(sslib.SOURCE_ROOT, "configs", "quickstart.yaml")


def quickstart():
    d = T.tmpdir("quickstart")
    with open(CONFIG) as f:
        cfg = yaml.safe_load(f)
    cfg["run"]["output"] = os.path.join(d, "out")
    path = os.path.join(d, "quickstart.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    p = sslib.run(["run", path, "-q"], timeout=600)
    if not T.check(p.returncode == 0, "the quickstart runs to the end", sslib.describe(p)):
        return
    cont = os.path.join(d, "out", "demo.h5")
    csv = os.path.join(d, "scores.csv")
    p = sslib.run(["export", cont, "scores/summary", "-o", csv])
    if not T.check(p.returncode == 0, "its score table exports as CSV", sslib.describe(p)):
        return
    rows = [line.rstrip("\n").split(",") for line in open(csv)][1:]
    got = {(r[0], r[1]): float(r[2]) for r in rows}
    methods = cfg["stages"]["scores"]["inputs"]["methods"]
    T.check(len(methods) >= 5 and all(np.isfinite(got.get((m, k), np.nan)) for m in methods for k in ("psnr", "ssim")),
            "every fusion method has a finite PSNR and SSIM", ", ".join(methods))
    a = sslib.read_arrays(cont, "hdf5")
    ref = a["norm/reference"].astype(np.float64)
    L = ref.max() - ref.min()
    for m in methods:
        x = a[m.replace(".", "/")].astype(np.float64)
        psnr = np.mean([10 * np.log10(L * L / np.mean((x[z] - ref[z]) ** 2)) for z in range(ref.shape[0])])
        T.check(abs(psnr - got[(m, "psnr")]) < 1e-6, f"{m}: PSNR {got[(m, 'psnr')]:.2f} dB is numpy's", f"{psnr}")
    T.check(got[("mean_gauss.filtered", "psnr")] > got[("mean.fused", "psnr")],
            "the Gaussian filter of the mean improves on the mean (the baseline the SIREN must beat)")


T.guard("quickstart", quickstart)
T.done()
