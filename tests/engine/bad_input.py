#!/usr/bin/python3
"""Bad input gets a clear error, never a crash (DESIGN.md invariant 4), in TAP.

Each case checks: the documented exit status (2 config, 3 input data, 4 I/O);
no signal and no sanitizer report; stderr is one 'error: ...' line (plus at
most one warning line) naming the file and the problem; no partial commit
(inspect and h5py/zarr list exactly the stages committed before, plus those
that legitimately finished before the failing one; no stray stage files or
temporaries); the inputs are unchanged (invariant 3).
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
ROOT = T.tmpdir("bad")
IS_ROOT = os.geteuid() == 0
SHAPE = (4, 6, 48, 40)


def make_inputs(d):
    rng = np.random.default_rng(0)
    data = rng.poisson(100, SHAPE).astype(np.uint16)
    good = os.path.join(d, "good.h5")
    with h5py.File(good, "w") as f:
        f["raw"] = data
        f["a"] = data[0]
        f["b"] = data[1, :, :20]
        f["b2"] = data[1]
        f["empty"] = np.zeros((0,) + SHAPE[1:], np.uint16)
        f["const"] = np.full(SHAPE, 7, np.uint16)
        f["r3"] = data[:3]
        x = data.astype(np.float32)
        x[1, 2, 3, 4] = np.nan
        f["nan"] = x
        y = data.astype(np.float32)
        y[2, 2, 3, 4] = np.inf
        f["inf"] = y
    with open(os.path.join(d, "junk.h5"), "w") as f:
        f.write("this is a text file, not HDF5\n" * 200)
    blob = open(good, "rb").read()
    with open(os.path.join(d, "trunc.h5"), "wb") as f:
        f.write(blob[: len(blob) // 2])
    return good


def case_dir(name):
    d = os.path.join(ROOT, name)
    os.makedirs(d)
    return d


def input_hashes(d):
    return {f: sslib.sha256_file(os.path.join(d, f)) for f in sorted(os.listdir(d))
            if f.endswith(".h5") and os.path.isfile(os.path.join(d, f))}


def committed(cont, store):
    """Stages inspect lists (None if inspect fails), and those the readers list."""
    if not os.path.exists(cont):
        return set(), set()
    p, js = sslib.inspect_json(cont)
    ins = set(js) if isinstance(js, dict) else None
    try:
        if store == "zarr":
            rd = set(sslib.zarr_stage_dirs(cont))
        else:
            with h5py.File(cont, "r", locking=False) as f:
                rd = set(f.keys())
    except Exception:  # noqa: BLE001
        rd = None
    return ins, rd


def check_stderr(label, p, must):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith("error:")]
    others = [ln for ln in lines if not ln.startswith("error:")]
    T.check(len(errs) == 1 and lines[-1:] == errs and len(others) <= 1
            and all(ln.startswith("warning:") for ln in others),
            f"{label}: stderr is one 'error:' line plus at most one warning line", p.stderr)
    text = errs[0] if errs else p.stderr
    missing = [m for m in must if m.lower() not in text.lower()]
    T.check(not missing, f"{label}: the error line names {', '.join(repr(m) for m in must)}",
            f"missing {missing} in: {text}")


def bad_case(label, d, cfg, expect_rc, must, store="hdf5", after=None, extra=(), preexec_fn=None,
             sample="s1", out="out"):
    """Runs cfg and checks the invariant-4 properties. after: stages that must be
    committed after the failure (default: those committed before)."""
    outdir = os.path.join(d, out)
    cont = sslib.container_path(outdir, sample, store)
    before_hashes = sslib.stage_hashes(cont, store) if os.path.isfile(cont) or os.path.isdir(cont) else {}
    before_inputs = input_hashes(d)
    p = sslib.run(["run", cfg, "-q", "--threads", "2"] + list(extra), preexec_fn=preexec_fn)
    T.check(p.returncode >= 0 and not any(m in p.stderr for m in sslib.SANITIZER_MARKERS),
            f"{label}: no crash (no signal, no sanitizer report)", sslib.describe(p))
    T.check(p.returncode == expect_rc, f"{label}: exit status {expect_rc}", sslib.describe(p))
    check_stderr(label, p, must)
    want = set(before_hashes) if after is None else set(after)
    ins, rd = committed(cont, store)
    if os.path.exists(cont) or want:
        T.check(ins == want and rd == want, f"{label}: no partial commit (committed: {sorted(want) or 'none'})",
                f"inspect lists {ins}, reader lists {rd}")
    after_hashes = sslib.stage_hashes(cont, store) if want else {}
    changed = [s for s in before_hashes if after_hashes.get(s) != before_hashes[s] and s in want]
    T.check(not changed, f"{label}: earlier committed stages byte-identical", f"changed: {changed}")
    left = sslib.leftovers(outdir) if os.path.isdir(outdir) else []
    T.check(not left, f"{label}: no stray stage files or temporaries", "\n".join(left))
    T.check(input_hashes(d) == before_inputs, f"{label}: input files unchanged")
    return p


def import_cfg(d, name, good, store="hdf5", **kw):
    file = kw.pop("file", good)
    sx = kw.pop("sample_extra", {})
    samples = [dict({"id": "s1", "input": file, "voxel_size": [1.0, 0.1, 0.1]}, **sx)]
    return sslib.make_config(os.path.join(d, f"{name}.yaml"), sslib.import_stages(**kw), store=store, samples=samples)


def import_cases():
    d = case_dir("import")
    good = make_inputs(d)
    cases = [
        ("missing input file", dict(file=os.path.join(d, "nope.h5")), 3, ["nope.h5"]),
        ("truncated HDF5", dict(file=os.path.join(d, "trunc.h5")), 3, ["trunc.h5"]),
        ("input path is a directory", dict(file=d), 3, [os.path.basename(d)]),
        ("not an HDF5 file", dict(file=os.path.join(d, "junk.h5")), 3, ["junk.h5", "HDF5"]),
        ("dataset does not exist", dict(dataset="/nosuch"), 3, ["good.h5", "/nosuch"]),
        ("wrong rank for the axes", dict(dataset="/a"), 3, ["good.h5", "/a", "dimensions"]),
        ("repeats with mismatched shapes", dict(datasets=["/a", "/b"], axes="zyx"), 3, ["good.h5", "/b", "shape"]),
        ("float data with NaN", dict(dataset="/nan"), 3, ["good.h5", "/nan", "NaN"]),
        ("float data with Inf", dict(dataset="/inf"), 3, ["good.h5", "/inf", "infinite"]),
        ("empty dataset (shape 0)", dict(dataset="/empty"), 3, ["good.h5", "/empty", "empty"]),
        ("sample declares 4 repeats, file has 3", dict(dataset="/r3", sample_extra={"repeats": 4}), 3,
         ["good.h5", "4", "3", "repeats"]),
    ]
    for i, (label, kw, rc, must) in enumerate(cases):
        cd = os.path.join(d, f"c{i:02d}")
        os.makedirs(cd)
        cfg = import_cfg(cd, "c", good, **kw)
        T.guard(label, bad_case, f"import: {label}", cd, cfg, rc, must, after=set())
    # a constant stack: import succeeds, normalize fails clearly
    cd = os.path.join(d, "const")
    os.makedirs(cd)
    cfg = import_cfg(cd, "c", good, dataset="/const")
    T.guard("constant", bad_case, "constant stack: normalize fails", cd, cfg, 3, ["constant", "normalise"],
            after={"raw"})
    # a constant stack must be rejected again on the next run, and raw reused
    p, ev, ran, reused = sslib.run_logged(cfg, cd)
    T.check(p.returncode == 3 and sslib.stages_ran(ran) == {"norm"} and ("s1", "raw") in reused,
            "constant stack, second run: raw reused, norm fails again with exit 3",
            f"ran {sorted(ran)}\n" + sslib.describe(p))
    p = sslib.run(["status", cfg])
    T.check(p.returncode == 0 and any(ln.split()[1:3] == ["norm", "failed"] and "constant" in ln
                                      for ln in p.stdout.splitlines()),
            "constant stack: status shows norm failed with the error", sslib.describe(p))
    # an unreadable file
    cd = os.path.join(d, "unreadable")
    os.makedirs(cd)
    locked = os.path.join(cd, "locked.h5")
    shutil.copy(good, locked)
    os.chmod(locked, 0)
    if IS_ROOT or os.access(locked, os.R_OK):
        T.skip("import: unreadable input file (chmod 000)", "running as root: chmod 000 does not block reads")
    else:
        cfg = import_cfg(cd, "c", good, file=locked)
        T.guard("unreadable", bad_case, "import: unreadable input file (chmod 000)", cd, cfg, 3,
                ["locked.h5"], after=set())
    os.chmod(locked, 0o644)


def output_cases():
    for store in ("hdf5", "zarr"):
        d = case_dir(f"outdir-{store}")
        block = os.path.join(d, "out")
        with open(block, "w") as f:
            f.write("a file where the output directory should be\n")
        cfg = sslib.make_config(os.path.join(d, "c.yaml"), sslib.synth_stages(), store=store)
        p = sslib.run(["run", cfg, "-q"])
        T.check(p.returncode == 4 and p.returncode >= 0, f"{store}: output directory is a file: exit 4",
                sslib.describe(p))
        check_stderr(f"{store}: output directory is a file", p, ["out"])
        T.check(open(block).read().startswith("a file where") and sorted(os.listdir(d)) == ["c.yaml", "out"],
                f"{store}: output directory is a file: the file is untouched, nothing created",
                str(sorted(os.listdir(d))))
        # the output's parent is a file
        cfg = sslib.make_config(os.path.join(d, "c2.yaml"), sslib.synth_stages(), store=store, output="out/deeper")
        p = sslib.run(["run", cfg, "-q"])
        T.check(p.returncode == 4, f"{store}: output below a file: exit 4", sslib.describe(p))
        check_stderr(f"{store}: output below a file", p, ["out/deeper"])
        # the output is a symbolic link to nowhere
        os.symlink(os.path.join(d, "nowhere"), os.path.join(d, "dangling"))
        cfg = sslib.make_config(os.path.join(d, "c3.yaml"), sslib.synth_stages(), store=store, output="dangling")
        p = sslib.run(["run", cfg, "-q"])
        T.check(p.returncode == 4, f"{store}: output is a dangling symbolic link: exit 4", sslib.describe(p))
        check_stderr(f"{store}: output is a dangling symbolic link", p, ["dangling", "symbolic link", "nowhere"])
    # a JSON log that cannot be written fails the run (exit 4) after the stages ran
    d = case_dir("log-full")
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), sslib.synth_stages())
    p = sslib.run(["run", cfg, "-q", "--log-json", "/dev/full"])
    T.check(p.returncode == 4 and "/dev/full" in p.stderr and "JSON log" in p.stderr,
            "--log-json on a full device: exit 4 naming the log", sslib.describe(p))
    p = sslib.run(["status", cfg])
    T.check(p.returncode == 0 and p.stdout.count(" done ") >= 4, "... and the stages it ran are committed", p.stdout)


def disk_full_cases():
    for store in ("hdf5", "zarr"):
        d = case_dir(f"diskfull-{store}")
        cfg = os.path.join(d, "c.yaml")
        sslib.make_config(cfg, sslib.synth_stages(), store=store)
        p = sslib.run(["run", cfg, "-q"])
        if not T.check(p.returncode == 0, f"{store}: disk full: the first run commits every stage", sslib.describe(p)):
            continue
        # a bigger volume with another seed reruns everything, and no file may exceed 64 KiB
        sslib.make_config(cfg, sslib.synth_stages(shape=(8, 96, 96)), store=store, seed=9)
        limit = 64 * 1024

        def limit_files():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        p = T.guard(f"{store}: disk full", bad_case, f"{store}: disk full (RLIMIT_FSIZE 64 KiB)", d, cfg, 4,
                    ["s1"], store=store, preexec_fn=limit_files)
        if p is not None:
            err = p.stderr.lower()
            T.check(any(w in err for w in ("disk full", "too large", "no space", "quota")),
                    f"{store}: disk full: the error says why the write failed", p.stderr)
        p = sslib.run(["run", cfg, "-q"])
        T.check(p.returncode == 0, f"{store}: disk full: a run with room again completes", sslib.describe(p))
        left = sslib.leftovers(os.path.join(d, "out"))
        T.check(not left, f"{store}: disk full: no temporaries after the completed run", "\n".join(left))


def config_cases():
    d = case_dir("manifest")
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), sslib.synth_stages(), samples={"manifest": "nope.tsv"})
    p = sslib.run(["run", cfg, "-q"])
    T.check(p.returncode == 2, "config whose manifest is missing: exit 2", sslib.describe(p))
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    T.check(any("nope.tsv" in ln for ln in lines) and lines and lines[-1].startswith("error:") and len(lines) <= 2,
            "missing manifest: stderr names nope.tsv, ends with one 'error:' line", p.stderr)
    T.check(not os.path.exists(os.path.join(d, "out")), "missing manifest: nothing created")
    p = sslib.run(["validate", cfg])
    T.check(p.returncode == 2 and "nope.tsv" in p.stderr, "validate: missing manifest exits 2", sslib.describe(p))
    # a YAML syntax error: exit 2 with file:line
    bad = os.path.join(d, "syntax.yaml")
    with open(bad, "w") as f:
        f.write("version: 1\nrun:\n  name: x\n  output: [unclosed\nsamples: []\n")
    p = sslib.run(["run", bad, "-q"])
    T.check(p.returncode == 2 and re.search(r"syntax\.yaml:\d+", p.stderr) and p.returncode >= 0,
            "YAML syntax error: exit 2 naming syntax.yaml:LINE", sslib.describe(p))
    # a manifest that exists but lists a sample with an empty id
    with open(os.path.join(d, "m.tsv"), "w") as f:
        f.write("id\tinput\n\tx.h5\n")
    cfg = sslib.make_config(os.path.join(d, "c2.yaml"), sslib.synth_stages(), samples={"manifest": "m.tsv"})
    p = sslib.run(["run", cfg, "-q"])
    T.check(p.returncode == 2 and "m.tsv" in p.stderr, "manifest with an empty id: exit 2 naming the manifest",
            sslib.describe(p))
    # devices and FIFOs where a config or a manifest belongs: refused at once,
    # never read (a character device like /dev/zero never ends)
    fifo = os.path.join(d, "fifo.yaml")
    os.mkfifo(fifo)
    for what, path in (("/dev/zero", "/dev/zero"), ("a FIFO", fifo)):
        try:
            p = sslib.run(["validate", path], timeout=60)
            T.check(p.returncode == 2 and "not a regular file" in p.stderr and path in p.stderr,
                    f"{what} as the config: exit 2, not a regular file", sslib.describe(p))
        except subprocess.TimeoutExpired:
            T.check(False, f"{what} as the config: exit 2, not a regular file", "still reading after 60 s")
    cfg = sslib.make_config(os.path.join(d, "c3.yaml"), sslib.synth_stages(), samples={"manifest": "/dev/zero"})
    try:
        p = sslib.run(["validate", cfg], timeout=60)
        T.check(p.returncode == 2 and "not a regular file" in p.stderr and "/dev/zero" in p.stderr,
                "/dev/zero as the manifest: exit 2, not a regular file", sslib.describe(p))
    except subprocess.TimeoutExpired:
        T.check(False, "/dev/zero as the manifest: exit 2, not a regular file", "still reading after 60 s")
    # a large manifest: a duplicate id at the very end is found and placed
    with open(os.path.join(d, "big.tsv"), "w") as f:
        f.write("id\tinput\n")
        f.write("".join(f"s{i}\tx.h5\n" for i in range(300000)))
        f.write("s123456\tx.h5\n")
    cfg = sslib.make_config(os.path.join(d, "c4.yaml"), sslib.synth_stages(), samples={"manifest": "big.tsv"})
    p = sslib.run(["validate", cfg], timeout=600)
    T.check(p.returncode == 2 and "big.tsv:300002:1" in p.stderr and "duplicate sample id 's123456'" in p.stderr,
            "a 300,000-row manifest: the duplicate id on its last row is reported at big.tsv:300002", sslib.describe(p))


def corrupt_container_cases():
    # hdf5: junk where the index should be, beside committed stage files.
    # Readers refuse it, saying that a run rebuilds it, and change nothing;
    # the run rebuilds it from the stage files (tests/engine/integrity.py
    # checks the rebuilt container in depth).
    d = case_dir("corrupt-hdf5")
    good = make_inputs(d)
    cfg = import_cfg(d, "c", good)
    p = sslib.run(["run", cfg, "-q"])
    if T.check(p.returncode == 0, "corrupt container: the first run completes", sslib.describe(p)):
        cont = os.path.join(d, "out", "s1.h5")
        hashes = sslib.stage_hashes(cont, "hdf5")
        with open(cont, "wb") as f:
            f.write(os.urandom(4096))
        junk = sslib.sha256_file(cont)
        stages_dir = os.path.join(d, "out", "s1.h5.d", "stages")
        files_before = sorted(os.listdir(stages_dir))
        inputs = input_hashes(d)
        for cmd in (["inspect", cont], ["export", cont, "norm/data", "-o", os.path.join(d, "x.npy")]):
            p = sslib.run(cmd)
            T.check(p.returncode == 3 and p.returncode >= 0, f"hdf5 corrupt container: {cmd[0]} exits 3",
                    sslib.describe(p))
            check_stderr(f"hdf5 corrupt container: {cmd[0]}", p, ["s1.h5", "index is damaged", "sirenstack run"])
        T.check(sslib.sha256_file(cont) == junk and sorted(os.listdir(stages_dir)) == files_before
                and input_hashes(d) == inputs and not os.path.exists(os.path.join(d, "x.npy")),
                "hdf5 corrupt container: readers modify neither the container, the stage files nor the input")
        p, ev, ran, _ = sslib.run_logged(cfg, d)
        T.check(p.returncode == 0 and not ran and "rebuilt it from the 4 committed stage files" in p.stderr,
                "hdf5 corrupt container: run rebuilds the index from the stage files, warns, recomputes nothing",
                f"ran {sorted(ran)}\n" + sslib.describe(p))
        T.check(sslib.stage_hashes(cont, "hdf5") == hashes and input_hashes(d) == inputs,
                "hdf5 corrupt container: the stage files and the input are as they were")
    # an HDF5 file of someone else's (no sirenstack layout attribute) where
    # the container would be, and junk without any stage files: refused, kept
    for what, content in (("someone's HDF5 file", None), ("junk without stage files", os.urandom(4096))):
        d = case_dir("foreign-hdf5" if content is None else "junk-alone")
        cfg = sslib.make_config(os.path.join(d, "c.yaml"), sslib.synth_stages())
        os.makedirs(os.path.join(d, "out"))
        cont = os.path.join(d, "out", "s1.h5")
        if content is None:
            with h5py.File(cont, "w") as f:
                f["mine"] = np.arange(10)
            os.makedirs(os.path.join(d, "out", "s1.h5.d", "stages"))
        else:
            with open(cont, "wb") as f:
                f.write(content)
        h = sslib.sha256_file(cont)
        p = sslib.run(["run", cfg, "-q"])
        T.check(p.returncode == 3 and sslib.sha256_file(cont) == h, f"hdf5 {what}: run exits 3 and leaves it alone",
                sslib.describe(p))
        check_stderr(f"hdf5 {what}", p, ["s1.h5"])
    # zarr: junk in the root .zgroup
    d = case_dir("corrupt-zarr")
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), sslib.synth_stages(), store="zarr")
    p = sslib.run(["run", cfg, "-q"])
    if T.check(p.returncode == 0, "zarr corrupt container: the first run completes", sslib.describe(p)):
        cont = os.path.join(d, "out", "s1.zarr")
        with open(os.path.join(cont, ".zgroup"), "w") as f:
            f.write("{not json")
        h = sslib.sha256_tree(cont)
        p = sslib.run(["run", cfg, "-q"])
        T.check(p.returncode == 3, "zarr corrupt .zgroup: run exits 3", sslib.describe(p))
        check_stderr("zarr corrupt .zgroup", p, [".zgroup"])
        T.check(sslib.sha256_tree(cont) == h, "zarr corrupt .zgroup: container not modified")


def deleted_stage_file_case():
    d = case_dir("deleted")
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), sslib.synth_stages())
    p = sslib.run(["run", cfg, "-q"])
    if not T.check(p.returncode == 0, "deleted stage file: the first run completes", sslib.describe(p)):
        return
    cont = os.path.join(d, "out", "s1.h5")
    ref = sslib.read_arrays(cont, "hdf5")
    files = sslib.h5_stage_files(cont)
    hashes = sslib.stage_hashes(cont, "hdf5")
    os.unlink(files["norm"])
    p = sslib.run(["inspect", cont])
    T.check(p.returncode in (0, 3) and p.returncode >= 0 and (p.returncode == 0 or "norm" in p.stderr),
            "deleted stage file: inspect reports it clearly (or lists the rest)", sslib.describe(p))
    p, ev, ran, _ = sslib.run_logged(cfg, d)
    recomputed = p.returncode == 0 and sslib.stages_ran(ran) == {"norm"}
    clear_error = p.returncode == 3 and "norm" in p.stderr and p.stderr.strip().splitlines()[-1].startswith("error:")
    T.check(recomputed or clear_error, "deleted stage file: the run recomputes that stage, or fails with a clear error",
            f"ran {sorted(ran)}\n" + sslib.describe(p))
    T.check(p.returncode >= 0, "deleted stage file: no crash", sslib.describe(p))
    if recomputed:
        try:
            eq, det = sslib.arrays_equal(sslib.read_arrays(cont, "hdf5"), ref)
        except Exception as e:  # noqa: BLE001
            eq, det = False, str(e)
        T.check(eq, "deleted stage file: after recomputation every array equals the original", det)
        after = sslib.stage_hashes(cont, "hdf5")
        T.check(all(after.get(s) == hashes[s] for s in ("raw", "mean", "median")),
                "deleted stage file: the other stages stay byte-identical")
        T.check(not sslib.leftovers(os.path.join(d, "out")), "deleted stage file: no temporaries",
                "\n".join(sslib.leftovers(os.path.join(d, "out"))))


T.guard("import cases", import_cases)
T.guard("output cases", output_cases)
T.guard("disk full cases", disk_full_cases)
T.guard("config cases", config_cases)
T.guard("corrupt container cases", corrupt_container_cases)
T.guard("deleted stage file", deleted_stage_file_case)
T.done()
