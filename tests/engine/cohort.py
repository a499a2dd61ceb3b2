#!/usr/bin/python3
"""Cohort stages (scope: cohort), in TAP, for the hdf5 and zarr stores.

Covered: validation of scope and samples; a whole run (samples, then the
cohort stages, then the per-sample stages reading a cohort output, then the
cohort stages reading those); the summarize table against every sample's own
tables and its CSV twin; a second run reruns nothing; the array-job flow
(--array-index per sample, --cohort twice as a requeued job would, --array-index
again, --cohort again)
gives outputs identical to the whole run, with the waiting stages reported by
run, status and --dry-run; adding a sample reruns the cohort stages that read
every sample and what depends on them, and nothing else (a cohort stage over
a named subset is not rerun); a sample that fails stops the cohort stage with
a message naming it.
"""
import csv
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402

T = sslib.Tap()

SAMPLES = [
    {"id": "a", "repeats": 2, "genotype": "wt", "age": 3},
    {"id": "b", "repeats": 2, "genotype": "ko", "age": 5},
    {"id": "c", "repeats": 2, "genotype": "wt", "age": 4.5},
]


def stages(subset=None):
    train = {"uses": "denoise_train", "scope": "cohort",
             "inputs": {"input": "mean.fused", "target": "raw.truth"},
             "params": {"depth": 2, "width": 8, "patch": 32, "batch": 4, "steps": 20, "lr": 0.001}}
    if subset:
        train["samples"] = subset
    return {
        "raw": {"uses": "synth_smooth", "params": {"shape": [4, 40, 40], "repeats": 2}},
        "mean": {"uses": "fuse_mean", "inputs": {"repeats": "raw.repeats"}},
        "train": train,
        "den": {"uses": "denoise_apply", "inputs": {"image": "mean.fused", "model": "train.weights"}},
        "scores": {"uses": "metrics", "inputs": {"reference": "raw.truth", "methods": ["mean.fused", "den.denoised"]}},
        "table": {"uses": "summarize", "inputs": {"tables": "scores.summary"}},
    }


def cohort_path(out, store):
    return sslib.container_path(out, "_cohort", store)


def read_table(container, store, stage, name):
    """A table as {column: list}, through h5py or zarr."""
    if store == "zarr":
        import zarr
        g = zarr.open_group(container, mode="r")
        arr = g[f"{stage}/{name}"][...]
    else:
        from sslib import h5py
        with h5py.File(container, "r") as f:
            arr = f[f"{stage}/{name}"][...]
    out = {}
    for k in arr.dtype.names:
        col = arr[k]
        out[k] = [v.decode() if isinstance(v, bytes) else v for v in col.tolist()]
    return out


def validation():
    tmp = T.tmpdir("cohort-valid")
    cfg = os.path.join(tmp, "c.yaml")
    cases = [
        ("a per-sample type at cohort scope",
         {"raw": {"uses": "synth_smooth", "params": {"shape": [4, 40, 40], "repeats": 2}},
          "m": {"uses": "fuse_mean", "scope": "cohort", "inputs": {"repeats": "raw.repeats"}}},
         SAMPLES, "runs per sample only"),
        ("summarize at sample scope",
         {**stages(), "table": {"uses": "summarize", "scope": "sample", "inputs": {"tables": "scores.summary"}}},
         SAMPLES, "(scope: cohort) only"),
        ("a subset naming an unknown sample", stages(["a", "zz"]), SAMPLES, "no sample has the id"),
        ("a subset listing a sample twice", stages(["a", "a"]), SAMPLES, "listed twice"),
        ("a subset on a per-sample stage",
         {**stages(), "mean": {"uses": "fuse_mean", "samples": ["a"], "inputs": {"repeats": "raw.repeats"}}},
         SAMPLES, "only a stage with scope: cohort"),
        ("a bad scope", {**stages(), "table": {"uses": "summarize", "scope": "all", "inputs": {"tables": "scores.summary"}}},
         SAMPLES, "expected sample or cohort"),
        ("a sample field in a cohort stage's parameters",
         {**stages(), "table": {"uses": "summarize", "inputs": {"tables": "scores.summary"},
                                "params": {"fields": ["{genotype}"]}}},
         SAMPLES, "runs once for all samples"),
        ("the reserved sample id", stages(), SAMPLES + [{"id": "_cohort", "repeats": 2}], "cohort container"),
    ]
    for what, st, smp, want in cases:
        sslib.make_config(cfg, st, samples=smp)
        p = sslib.run(["validate", cfg])
        T.check(p.returncode == 2 and want in p.stderr, f"validate refuses {what} (exit 2)", sslib.describe(p))
    sslib.make_config(cfg, {"raw": {"uses": "synth_smooth", "params": {"shape": [4, 40, 40], "repeats": 2}}},
                      samples=SAMPLES)
    p = sslib.run(["run", cfg, "--cohort"])
    T.check(p.returncode == 2 and "declares no stage with scope: cohort" in p.stderr,
            "--cohort on a config without cohort stages: exit 2", sslib.describe(p))
    p = sslib.run(["run", cfg, "--cohort", "--sample", "a"])
    T.check(p.returncode != 0 and "--cohort" in p.stderr, "--cohort with --sample is a usage error", sslib.describe(p))


def whole_run(store):
    tmp = T.tmpdir(f"cohort-{store}")
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), stages(), store=store, samples=SAMPLES)
    out = os.path.join(tmp, "out")
    p = sslib.run(["run", cfg, "--dry-run"])
    T.check(p.returncode == 0 and "cohort (" in p.stdout and "train" in p.stdout and not os.path.exists(out),
            f"{store}: --dry-run lists the cohort stages and writes nothing", sslib.describe(p))
    p, ev, ran, reused = sslib.run_logged(cfg, tmp)
    order = [(e["sample"], e["stage"]) for e in ev if e.get("event") == "stage_start"]
    want = {(s["id"], st) for s in SAMPLES for st in ("raw", "mean", "den", "scores")} | {("_cohort", "train"),
                                                                                          ("_cohort", "table")}
    T.check(p.returncode == 0 and set(order) == want, f"{store}: a whole run runs every stage once",
            sslib.describe(p) + f"\nran {sorted(order)}")
    pos = {k: i for i, k in enumerate(order)}
    ok = all(pos[(s["id"], "mean")] < pos[("_cohort", "train")] < pos[(s["id"], "den")] < pos[("_cohort", "table")]
             for s in SAMPLES) if set(order) == want else False
    T.check(ok, f"{store}: the cohort stage runs after every sample's inputs and before what reads it", str(order))
    cont = cohort_path(out, store)
    attrs = sslib.stage_attrs(cont, store, "train")
    fps = attrs.get("input_fingerprints")
    fps = json.loads(fps) if isinstance(fps, str) else fps
    samples_attr = attrs.get("samples")
    samples_attr = json.loads(samples_attr) if isinstance(samples_attr, str) else samples_attr
    T.check(samples_attr == ["a", "b", "c"] and sorted(fps.get("input", {})) == ["a", "b", "c"],
            f"{store}: the cohort stage records its samples and each sample's input fingerprint", str(attrs)[:800])
    t = read_table(cont, store, "table", "summary")
    rows_ok = True
    n_rows = 0
    for s in SAMPLES:
        own = read_table(sslib.container_path(out, s["id"], store), store, "scores", "summary")
        idx = [i for i, v in enumerate(t.get("sample", [])) if v == s["id"]]
        n_rows += len(own["metric"])
        rows_ok &= len(idx) == len(own["metric"])
        for j, i in enumerate(idx):
            rows_ok &= t["metric"][i] == own["metric"][j] and t["method"][i] == own["method"][j]
            a, b = t["mean"][i], own["mean"][j]
            rows_ok &= (np.isnan(a) and np.isnan(b)) or a == b
            rows_ok &= t["genotype"][i] == s["genotype"] and float(t["age"][i]) == float(s["age"])
    T.check(rows_ok and len(t.get("sample", [])) == n_rows and "input" not in t,
            f"{store}: summarize holds every sample's rows with its metadata columns",
            str({k: v[:4] for k, v in t.items()}))
    csvp = os.path.join(out, "table.csv")
    with open(csvp) as f:
        rows = list(csv.DictReader(f))
    same = len(rows) == n_rows and all(
        r["sample"] == t["sample"][i] and r["metric"] == t["metric"][i] and
        (r["mean"] == "nan" and np.isnan(t["mean"][i]) or float(r["mean"]) == t["mean"][i])
        for i, r in enumerate(rows))
    T.check(same and list(rows[0].keys())[:4] == ["sample", "repeats", "genotype", "age"],
            f"{store}: the CSV beside the cohort container is the same table", str(rows[:2]))
    p, ev, ran, reused = sslib.run_logged(cfg, tmp)
    T.check(p.returncode == 0 and not ran and ("_cohort", "train") in reused and ("_cohort", "table") in reused,
            f"{store}: a second run reruns nothing", sslib.describe(p) + f"\nran {sorted(ran)}")
    p = sslib.run(["status", cfg])
    lines = [l.split() for l in p.stdout.splitlines()[1:]]
    T.check(p.returncode == 0 and ["_cohort", "train", "done"] == lines[-2][:3] and lines[-1][:3] == ["_cohort", "table", "done"],
            f"{store}: status shows the cohort stages done", p.stdout)
    return tmp, out


def array_flow(store, whole_out):
    tmp = T.tmpdir(f"cohort-array-{store}")
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), stages(), store=store, samples=SAMPLES)
    out = os.path.join(tmp, "out")
    waits = set()
    for i, s in enumerate(SAMPLES):
        p, ev, ran, reused = sslib.run_logged(cfg, tmp, extra=["--array-index", str(i)])
        waits |= {(e["sample"], e["stage"]) for e in ev if e.get("event") == "stage_wait"}
        T.check(p.returncode == 0 and ran == {(s["id"], "raw"), (s["id"], "mean")},
                f"{store}: array task {i} runs its sample's stages up to the cohort stage", sslib.describe(p))
    T.check(waits == {(s["id"], st) for s in SAMPLES for st in ("den", "scores")},
            f"{store}: the stages reading the cohort stage wait", str(sorted(waits)))
    p = sslib.run(["status", cfg])
    st = {tuple(l.split()[:2]): l.split()[2] for l in p.stdout.splitlines()[1:] if len(l.split()) >= 3}
    T.check(st.get(("a", "den")) == "waiting" and st.get(("_cohort", "table")) == "waiting" and
            st.get(("_cohort", "train")) == "pending", f"{store}: status shows what waits", p.stdout)
    p, ev, ran, reused = sslib.run_logged(cfg, tmp, extra=["--cohort"])
    T.check(p.returncode == 0 and ran == {("_cohort", "train")},
            f"{store}: --cohort runs the cohort stage whose inputs are all there (summarize still waits)",
            sslib.describe(p) + f"\nran {sorted(ran)}")
    p, ev, ran, reused = sslib.run_logged(cfg, tmp, extra=["--cohort"])
    T.check(p.returncode == 0 and not ran and ("_cohort", "train") in reused and "_cohort/table: waits" in p.stderr,
            f"{store}: --cohort again (a requeued job) reuses the model and leaves summarize waiting, exit 0",
            sslib.describe(p) + f"\nran {sorted(ran)}")
    for i, s in enumerate(SAMPLES):
        p, ev, ran, reused = sslib.run_logged(cfg, tmp, extra=["--array-index", str(i)])
        T.check(p.returncode == 0 and ran == {(s["id"], "den"), (s["id"], "scores")},
                f"{store}: the second array task {i} runs what read the cohort model", sslib.describe(p))
    p, ev, ran, reused = sslib.run_logged(cfg, tmp, extra=["--cohort"])
    T.check(p.returncode == 0 and ran == {("_cohort", "table")}, f"{store}: the second --cohort job summarizes",
            sslib.describe(p) + f"\nran {sorted(ran)}")
    same, why = True, ""
    for sid in [s["id"] for s in SAMPLES] + ["_cohort"]:
        a = sslib.read_arrays(sslib.container_path(out, sid, store), store)
        b = sslib.read_arrays(sslib.container_path(whole_out, sid, store), store)
        eq, detail = sslib.arrays_equal(a, b)
        same &= eq and len(a) > 0
        why += f"{sid}: {detail}\n" if not eq else ""
    T.check(same, f"{store}: the array-job outputs are identical to the whole run's", why)
    return tmp, cfg, out


def adding_samples(store, tmp, cfg):
    more = SAMPLES + [{"id": "d", "repeats": 2, "genotype": "ko", "age": 6}]
    sslib.make_config(cfg, stages(), store=store, samples=more)
    p, ev, ran, reused = sslib.run_logged(cfg, tmp)
    want = {("d", s) for s in ("raw", "mean", "den", "scores")} | {("_cohort", "train"), ("_cohort", "table")} | \
        {(s["id"], st) for s in SAMPLES for st in ("den", "scores")}
    T.check(p.returncode == 0 and ran == want,
            f"{store}: a new sample reruns the cohort stages over every sample and what reads them, nothing else",
            sslib.describe(p) + f"\nran {sorted(ran)}")
    sslib.make_config(cfg, stages(["a", "b"]), store=store, samples=more)
    sslib.run_logged(cfg, tmp)
    more.append({"id": "e", "repeats": 2, "genotype": "wt", "age": 2})
    sslib.make_config(cfg, stages(["a", "b"]), store=store, samples=more)
    p, ev, ran, reused = sslib.run_logged(cfg, tmp)
    T.check(p.returncode == 0 and ran == {("e", s) for s in ("raw", "mean", "den", "scores")} | {("_cohort", "table")},
            f"{store}: a cohort stage over a named subset is not rerun for a new sample",
            sslib.describe(p) + f"\nran {sorted(ran)}")


def failing_sample():
    from sslib import h5py
    tmp = T.tmpdir("cohort-fail")
    st = stages()
    st["raw"] = {"uses": "import_hdf5", "params": {"dataset": "/raw", "axes": "rzyx"}}
    st["mean"]["inputs"]["repeats"] = "raw.raw"
    st["train"]["inputs"]["target"] = "mean.fused"
    st["scores"]["inputs"]["reference"] = "mean.fused"
    smp = []
    for s in SAMPLES:
        path = os.path.join(tmp, f"{s['id']}.h5")
        if s["id"] != "b":  # b's file is missing
            with h5py.File(path, "w") as f:
                f["raw"] = np.random.default_rng(1).random((2, 4, 40, 40)).astype("float32")
        smp.append(dict(s, input=path))
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), st, samples=smp)
    p = sslib.run(["run", cfg, "--threads", "2"])
    T.check(p.returncode == 3 and "b/raw" in p.stderr and "_cohort/train cannot run" in p.stderr,
            "a sample that fails stops the cohort stage with a message naming it (exit 3)", sslib.describe(p))
    T.check(os.path.exists(os.path.join(tmp, "out", "c.h5")) and os.path.exists(os.path.join(tmp, "out", "a.h5")),
            "the other samples ran their own stages")


def cohort_n2n():
    """One Noise2Noise model from every sample's repeats, applied to each."""
    tmp = T.tmpdir("cohort-n2n")
    st = {
        "raw": {"uses": "synth_smooth", "params": {"shape": [4, 40, 40], "repeats": 2}},
        "n2n": {"uses": "n2n_train", "scope": "cohort", "inputs": {"repeats": "raw.repeats"},
                "params": {"depth": 2, "width": 8, "patch": 32, "batch": 4, "steps": 10}},
        "den": {"uses": "n2n_apply", "inputs": {"repeats": "raw.repeats", "model": "n2n.weights"}},
    }
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), st, samples=SAMPLES)
    p, ev, ran, reused = sslib.run_logged(cfg, tmp)
    attrs = sslib.stage_attrs(os.path.join(tmp, "out", "_cohort.h5"), "hdf5", "n2n") if p.returncode == 0 else {}
    T.check(p.returncode == 0 and ("_cohort", "n2n") in ran and {(s["id"], "den") for s in SAMPLES} <= ran
            and int(attrs.get("train_planes", 0)) == 3 * 4,
            "n2n_train at cohort scope draws from every sample's planes; n2n_apply uses its model per sample",
            sslib.describe(p) + f"\n{attrs.get('train_planes')}")


validation()
cohort_n2n()
for store in ("hdf5", "zarr"):
    tmp, whole_out = whole_run(store)
    atmp, acfg, aout = array_flow(store, whole_out)
    adding_samples(store, atmp, acfg)
failing_sample()
T.done()
