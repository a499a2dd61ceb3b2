#!/usr/bin/python3
"""The fingerprint of a pattern import covers exactly the files the import
reads, in TAP: with pattern img_{z:04d}_{r:04d}.tif, a file a shell glob
img_*_*.tif would match but the pattern does not (img_7_7.tif) can change
without rerunning anything; a file the pattern reads changes and the import
reruns; a new file the pattern matches (another z) reruns it too."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

import tifflib as L  # noqa: E402

T = L.Tap()
TMP = T.tmpdir("patfp")
DATA = os.path.join(TMP, "planes")
os.makedirs(DATA)
rng = np.random.default_rng(5)


def plane(path, seed=0):
    tifffile.imwrite(path, rng.integers(0, 4000, (16, 20), dtype=np.uint16), photometric="minisblack")


for z in (1, 2):
    for r in (1, 2):
        plane(os.path.join(DATA, f"img_{z:04d}_{r:04d}.tif"))
plane(os.path.join(DATA, "img_7_7.tif"))  # a glob's match, not the pattern's

stages = {"raw": {"uses": "import_tiff", "params": {"file": None,
                                                     "pattern": L.esc(os.path.join(DATA, "img_{z:04d}_{r:04d}.tif"))}}}
cfg = L.write_config(os.path.join(TMP, "c.yaml"), stages, [{"id": "s1"}], "hdf5")


def dry():
    p = L.run(["run", cfg, "--dry-run"])
    return p, [ln for ln in p.stdout.splitlines() if "raw" in ln]


p = L.run(["run", cfg, "-q"])
T.check(p.returncode == 0, "the pattern import runs", p.stderr)
plane(os.path.join(DATA, "img_7_7.tif"))
p, lines = dry()
T.check(p.returncode == 0 and lines and all("reuse" in ln for ln in lines),
        "a file outside the pattern (img_7_7.tif) changed: the import is reused", "\n".join(lines) or p.stderr)
plane(os.path.join(DATA, "img_0002_0001.tif"))
p, lines = dry()
T.check(p.returncode == 0 and lines and any(" run" in ln or ln.split()[1:2] == ["run"] for ln in lines),
        "a file the pattern reads changed: the import reruns", "\n".join(lines) or p.stderr)
p = L.run(["run", cfg, "-q"])
for r in (1, 2):
    plane(os.path.join(DATA, f"img_0003_{r:04d}.tif"))
p, lines = dry()
T.check(p.returncode == 0 and lines and any("run" in ln.split() for ln in lines),
        "new planes the pattern matches: the import reruns", "\n".join(lines) or p.stderr)
T.done()
