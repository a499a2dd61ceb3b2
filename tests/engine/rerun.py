#!/usr/bin/python3
"""Resume by fingerprint (DESIGN.md invariant 2), for the hdf5 and zarr stores, in TAP.

Which stages ran is read from the --log-json events (stage_start / stage_reuse),
never guessed from timings. Covered: a second run reruns nothing; a changed
parameter reruns exactly that stage and its dependants; a changed seed reruns
the stochastic source and everything downstream; --force, --stages, --dry-run
(changes nothing on disk), `status` (done / stale / pending with the reason),
--sample / --array-index selection, import_hdf5 input files (content change
reruns, mtime-only change does not, the input is never modified), byte-identical
stage files of reused stages, and deterministic outputs for a given seed;
run.compression, which is no part of the fingerprint: changing it reuses every
stage (each keeps its compression, --dry-run says so), --force rewrites.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
ALL = {"raw", "norm", "mean", "median"}
DOWN = {"norm", "mean", "median"}


def ran_check(store, what, cfg, tmp, expect, extra=(), sample="s1", expect_rc=0):
    p, ev, ran, reused = sslib.run_logged(cfg, tmp, extra=extra)
    got = sslib.stages_ran(ran, sample)
    T.check(p.returncode == expect_rc and got == set(expect),
            f"{store}: {what}: ran {sorted(expect) or 'nothing'}",
            f"ran {sorted(got)}, reused {sorted(sslib.stages_ran(reused, sample))}\n" + sslib.describe(p))
    return p, ev, ran, reused


def status_map(cfg, extra=()):
    """(proc, {(sample, stage): (state, detail)}) from `sirenstack status`."""
    p = sslib.run(["status", cfg] + list(extra))
    out = {}
    for line in p.stdout.splitlines()[1:]:
        parts = line.split(None, 3)
        if len(parts) >= 3:
            out[(parts[0], parts[1])] = (parts[2], parts[3] if len(parts) > 3 else "")
    return p, out


def resume_suite(store):
    tmp = T.tmpdir(f"rerun-{store}")
    cfg = os.path.join(tmp, "c.yaml")
    out = os.path.join(tmp, "out")
    cont = sslib.container_path(out, "s1", store)

    # status before anything ran: all pending
    sslib.make_config(cfg, sslib.synth_stages(), store=store)
    p, st = status_map(cfg)
    T.check(p.returncode == 0 and all(st.get(("s1", s), ("",))[0] == "pending" for s in ALL),
            f"{store}: status before the first run: every stage pending", sslib.describe(p))
    T.check(not os.path.exists(out), f"{store}: status creates nothing", str(sslib.listing(tmp)))

    ran_check(store, "first run", cfg, tmp, ALL)
    h1 = sslib.stage_hashes(cont, store)
    T.check(set(h1) == ALL, f"{store}: all four stages committed", str(sorted(h1)))
    ref = sslib.read_arrays(cont, store)

    _, ev, _, reused = ran_check(store, "second run, nothing changed", cfg, tmp, set())
    T.check(sslib.stages_ran(reused) == ALL, f"{store}: second run reports stage_reuse for all four",
            str(sorted(reused)))
    T.check(sslib.stage_hashes(cont, store) == h1, f"{store}: second run leaves every stage byte-identical")

    p, st = status_map(cfg)
    T.check(p.returncode == 0 and all(st.get(("s1", s), ("",))[0] == "done" for s in ALL),
            f"{store}: status after the run: every stage done", sslib.describe(p))

    # parameter change: exactly norm and its dependants
    sslib.make_config(cfg, sslib.synth_stages(p_high=99.5), store=store)
    p, st = status_map(cfg)
    T.check(st.get(("s1", "raw"), ("",))[0] == "done" and st.get(("s1", "norm"), ("",))[0] == "stale"
            and "parameter p_high changed (99.9 -> 99.5)" in st.get(("s1", "norm"), ("", ""))[1]
            and "(none)" not in st.get(("s1", "norm"), ("", ""))[1]
            and st.get(("s1", "mean"), ("",))[0] == "stale" and st.get(("s1", "median"), ("",))[0] == "stale",
            f"{store}: status after changing p_high: raw done, norm stale ('parameter p_high changed (99.9 -> 99.5)'), fusions stale",
            sslib.describe(p))

    # dry-run: prints the plan with reasons, changes nothing on disk
    before = sslib.listing(tmp)
    p = sslib.run(["run", cfg, "--dry-run"])
    after = sslib.listing(tmp)
    lines = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln.startswith("  ")}
    T.check(p.returncode == 0 and "reuse" in lines.get("raw", "") and "run" in lines.get("norm", "").split()[1:2]
            and "parameter p_high changed (99.9 -> 99.5)" in lines.get("norm", "")
            and "(none)" not in lines.get("norm", "") and all(lines.get(s, "").split()[1:2] == ["run"] for s in DOWN),
            f"{store}: --dry-run prints the plan (raw reuse; norm, mean, median run) with the reason",
            sslib.describe(p))
    T.check(before == after, f"{store}: --dry-run changes nothing on disk",
            f"changed: {sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))}")

    ran_check(store, "p_high changed", cfg, tmp, DOWN)
    h2 = sslib.stage_hashes(cont, store)
    T.check(h2.get("raw") == h1["raw"], f"{store}: reused raw is byte-identical after the p_high rerun")
    T.check(all(h2.get(s) != h1[s] for s in DOWN), f"{store}: norm, mean, median were rewritten")
    a2 = sslib.read_arrays(cont, store)
    T.check(np.array_equal(a2["raw/repeats"], ref["raw/repeats"]) and not np.array_equal(a2["norm/data"], ref["norm/data"]),
            f"{store}: raw unchanged, norm/data changed with p_high")

    # seed: synth_smooth is stochastic, everything reruns
    sslib.make_config(cfg, sslib.synth_stages(p_high=99.5), store=store, seed=7)
    p, st = status_map(cfg)
    T.check(st.get(("s1", "raw"), ("", ""))[0] == "stale" and "seed" in st.get(("s1", "raw"), ("", ""))[1],
            f"{store}: status after changing run.seed: raw stale ('seed changed')", sslib.describe(p))
    ran_check(store, "run.seed changed", cfg, tmp, ALL)
    h3 = sslib.stage_hashes(cont, store)
    a3 = sslib.read_arrays(cont, store)
    T.check(not np.array_equal(a3["raw/repeats"], a2["raw/repeats"]), f"{store}: another seed gives other data")

    # --force norm: norm and its dependants, not raw
    ran_check(store, "--force norm", cfg, tmp, DOWN, extra=["--force", "norm"])
    h4 = sslib.stage_hashes(cont, store)
    T.check(h4.get("raw") == h3["raw"], f"{store}: --force norm leaves raw byte-identical")
    a4 = sslib.read_arrays(cont, store)
    eq, detail = sslib.arrays_equal(a4, a3)
    T.check(eq, f"{store}: forced recomputation gives identical arrays", detail)
    _, ev, _, _ = ran_check(store, "after --force, a plain run", cfg, tmp, set())

    # --stages: only the named ones
    sslib.make_config(cfg, sslib.synth_stages(p_high=99.0), store=store, seed=7)
    ran_check(store, "--stages norm after a p_high change", cfg, tmp, {"norm"}, extra=["--stages", "norm"])
    h5 = sslib.stage_hashes(cont, store)
    T.check(h5.get("mean") == h4["mean"] and h5.get("median") == h4["median"] and h5.get("raw") == h4["raw"],
            f"{store}: --stages norm leaves the other stages byte-identical")
    ran_check(store, "--stages mean", cfg, tmp, {"mean"}, extra=["--stages", "mean"])
    h6 = sslib.stage_hashes(cont, store)
    T.check(h6.get("median") == h4["median"] and h6.get("norm") == h5["norm"],
            f"{store}: --stages mean leaves median and norm byte-identical")
    p, st = status_map(cfg)
    T.check(st.get(("s1", "median"), ("",))[0] == "stale" and st.get(("s1", "mean"), ("",))[0] == "done",
            f"{store}: status: mean done, median still stale", sslib.describe(p))
    ran_check(store, "plain run completes the rest", cfg, tmp, {"median"})
    p = sslib.run(["run", cfg, "--stages", "nosuch"])
    T.check(p.returncode == 2 and "nosuch" in p.stderr, f"{store}: --stages with an unknown stage exits 2",
            sslib.describe(p))
    p = sslib.run(["run", cfg, "--force", "nosuch"])
    T.check(p.returncode == 2 and "nosuch" in p.stderr, f"{store}: --force with an unknown stage exits 2",
            sslib.describe(p))

    # dry-run on a fresh output: nothing created
    cfg2 = os.path.join(tmp, "fresh.yaml")
    sslib.make_config(cfg2, sslib.synth_stages(), store=store, output="fresh_out")
    before = sslib.listing(tmp)
    p = sslib.run(["run", cfg2, "--dry-run"])
    T.check(p.returncode == 0 and not os.path.exists(os.path.join(tmp, "fresh_out")) and before == sslib.listing(tmp)
            and p.stdout.count("no committed output") == 4,
            f"{store}: --dry-run on a fresh output: 4 stages 'no committed output', nothing created",
            sslib.describe(p))


def determinism(store):
    tmp = T.tmpdir(f"det-{store}")
    arrays = []
    for i in range(2):
        cfg = os.path.join(tmp, f"c{i}.yaml")
        sslib.make_config(cfg, sslib.synth_stages(), store=store, output=f"out{i}", seed=3)
        p = sslib.run(["run", cfg, "--threads", "2", "-q"])
        if not T.check(p.returncode == 0, f"{store}: fresh run {i + 1} with seed 3", sslib.describe(p)):
            return
        arrays.append(sslib.read_arrays(sslib.container_path(os.path.join(tmp, f"out{i}"), "s1", store), store))
    eq, detail = sslib.arrays_equal(arrays[0], arrays[1])
    T.check(eq and len(arrays[0]) == 5, f"{store}: two fresh runs with the same seed give identical arrays",
            detail + f"\narrays: {sorted(arrays[0])}")
    # one thread vs two: invariant 5 says deterministic for seed and thread count; check same-count only
    a = arrays[0]
    T.check(a["raw/repeats"].dtype == np.uint16 and a["raw/repeats"].shape == (4, 6, 48, 40)
            and a["norm/data"].dtype == np.float32 and a["mean/fused"].shape == (6, 48, 40),
            f"{store}: dtypes and shapes as documented",
            {k: (v.dtype, v.shape) for k, v in a.items()})
    # the fusions are what they say, computed from norm/data
    nd = a["norm/data"].astype(np.float64)
    T.check(np.allclose(a["mean/fused"], nd.mean(axis=0), rtol=1e-5, atol=1e-6)
            and np.allclose(a["median/fused"], np.median(nd, axis=0), rtol=1e-5, atol=1e-6),
            f"{store}: mean/median fusions equal numpy's on norm/data")
    lo, hi = np.percentile(a["raw/repeats"].astype(np.float64), [2, 99.9])
    T.check(np.allclose(nd, (a["raw/repeats"] - lo) / (hi - lo), rtol=1e-4, atol=1e-5),
            f"{store}: norm/data equals numpy percentile normalisation of raw/repeats")


def samples_suite(store):
    tmp = T.tmpdir(f"samples-{store}")
    cfg = os.path.join(tmp, "c.yaml")
    out = os.path.join(tmp, "out")
    samples = [{"id": "s1", "voxel_size": [1.0, 0.1, 0.1]}, {"id": "s2", "voxel_size": [2.0, 0.2, 0.2]}]
    sslib.make_config(cfg, sslib.synth_stages(), store=store, samples=samples)
    p, ev, ran, _ = sslib.run_logged(cfg, tmp, extra=["--sample", "s2"])
    T.check(p.returncode == 0 and ran == {("s2", s) for s in ALL} and not os.path.exists(sslib.container_path(out, "s1", store)),
            f"{store}: --sample s2 runs only s2", f"ran {sorted(ran)}\n" + sslib.describe(p))
    p, st = status_map(cfg)
    T.check(all(st.get(("s1", s), ("",))[0] == "pending" and st.get(("s2", s), ("",))[0] == "done" for s in ALL),
            f"{store}: status: s1 pending, s2 done", sslib.describe(p))
    p, st = status_map(cfg, ["--array-index", "1"])
    T.check(p.returncode == 0 and {k[0] for k in st} == {"s2"}, f"{store}: status --array-index 1 shows only s2",
            sslib.describe(p))
    p, ev, ran, _ = sslib.run_logged(cfg, tmp, extra=["--array-index", "0"])
    T.check(p.returncode == 0 and ran == {("s1", s) for s in ALL}, f"{store}: --array-index 0 runs s1 (and only s1)",
            f"ran {sorted(ran)}\n" + sslib.describe(p))
    p, ev, ran, reused = sslib.run_logged(cfg, tmp, extra=["--array-index", "1"])
    T.check(p.returncode == 0 and not ran and reused == {("s2", s) for s in ALL},
            f"{store}: --array-index 1 selects s2 (all reused)", f"ran {sorted(ran)} reused {sorted(reused)}")
    a1 = sslib.read_arrays(sslib.container_path(out, "s1", store), store)
    a2 = sslib.read_arrays(sslib.container_path(out, "s2", store), store)
    T.check(not np.array_equal(a1["raw/repeats"], a2["raw/repeats"]),
            f"{store}: the two samples get different random data (per-sample stream)")
    before = sslib.listing(tmp)
    for args, what in ((["--array-index", "2"], "--array-index 2 with 2 samples"),
                       (["--array-index", "99"], "--array-index 99"),
                       (["--sample", "nosuch"], "--sample nosuch"),
                       (["--sample", "s1", "--array-index", "1"], "--sample s1 with --array-index 1")):
        p = sslib.run(["run", cfg] + args)
        T.check(p.returncode == 2 and p.stderr.strip().startswith("error:") and len(p.stderr.strip().splitlines()) == 1,
                f"{store}: run {what} exits 2 with one error line", sslib.describe(p))
    p = sslib.run(["status", cfg, "--array-index", "2"])
    T.check(p.returncode == 2, f"{store}: status --array-index 2 exits 2", sslib.describe(p))
    T.check(before == sslib.listing(tmp), f"{store}: rejected selections change nothing on disk")


def make_input(path, seed=0, shape=(4, 6, 48, 40)):
    rng = np.random.default_rng(seed)
    z = np.linspace(0, 1, shape[1])[:, None, None]
    y = np.linspace(0, 1, shape[2])[None, :, None]
    x = np.linspace(0, 1, shape[3])[None, None, :]
    base = 100 + 500 * np.sin(3 * x + 2 * y) ** 2 * (1 + z)
    data = rng.poisson(np.broadcast_to(base, shape[1:]), size=shape).astype(np.uint16)
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=data)
    return data


def import_suite(store):
    tmp = T.tmpdir(f"import-{store}")
    inp = os.path.join(tmp, "input.h5")
    data = make_input(inp)
    cfg = os.path.join(tmp, "c.yaml")
    out = os.path.join(tmp, "out")
    cont = sslib.container_path(out, "s1", store)
    samples = [{"id": "s1", "input": inp, "voxel_size": [1.0, 0.2, 0.2]}]
    sslib.make_config(cfg, sslib.import_stages(), store=store, samples=samples)
    in_hash = sslib.sha256_file(inp)
    in_stat = os.stat(inp)
    ran_check(store, "import_hdf5 first run", cfg, tmp, ALL)
    a = sslib.read_arrays(cont, store)
    T.check(np.array_equal(a.get("raw/raw"), data), f"{store}: imported raw/raw equals the input dataset")
    h1 = sslib.stage_hashes(cont, store)
    ran_check(store, "import_hdf5 second run", cfg, tmp, set())

    # mtime only
    os.utime(inp, ns=(in_stat.st_atime_ns, in_stat.st_mtime_ns + 5_000_000_000))
    ran_check(store, "input touched (mtime only, same content)", cfg, tmp, set())
    T.check(sslib.stage_hashes(cont, store) == h1, f"{store}: touching the input leaves every stage byte-identical")
    # same content, new inode (copied over)
    tmpcopy = inp + ".copy"
    with open(inp, "rb") as f, open(tmpcopy, "wb") as g:
        g.write(f.read())
    os.replace(tmpcopy, inp)
    ran_check(store, "input replaced by an identical copy", cfg, tmp, set())

    T.check(sslib.sha256_file(inp) == in_hash, f"{store}: the input file is never modified (invariant 3)")

    # content change
    with h5py.File(inp, "r+") as f:
        d = f["raw"]
        d[0, 0, 0, 0] = int(d[0, 0, 0, 0]) + 1000
    p, st = status_map(cfg)
    T.check(st.get(("s1", "raw"), ("", ""))[0] == "stale" and "input file" in st.get(("s1", "raw"), ("", ""))[1],
            f"{store}: status: raw stale because the input file changed", sslib.describe(p))
    ran_check(store, "input content changed", cfg, tmp, ALL)
    a2 = sslib.read_arrays(cont, store)
    T.check(a2["raw/raw"][0, 0, 0, 0] == data[0, 0, 0, 0] + 1000, f"{store}: the changed voxel was imported")
    ran_check(store, "after the content change, a plain run", cfg, tmp, set())

    # a different file with the same content: the fingerprint is by content, the path is a parameter
    # (documented: a changed parameter reruns), so only check that it still runs cleanly
    inp2 = os.path.join(tmp, "input2.h5")
    with open(inp, "rb") as f, open(inp2, "wb") as g:
        g.write(f.read())
    samples = [{"id": "s1", "input": inp2, "voxel_size": [1.0, 0.2, 0.2]}]
    sslib.make_config(cfg, sslib.import_stages(), store=store, samples=samples)
    p, ev, ran, _ = sslib.run_logged(cfg, tmp)
    T.check(p.returncode == 0, f"{store}: switching to a copy of the input runs cleanly", sslib.describe(p))
    a3 = sslib.read_arrays(cont, store)
    eq, detail = sslib.arrays_equal(a3, a2)
    T.check(eq, f"{store}: a copy of the same input gives identical arrays", detail)


def canonical_suite(store):
    """Edits that do not change what a stage computes rerun nothing."""
    tmp = T.tmpdir(f"canon-{store}")
    cfg = os.path.join(tmp, "c.yaml")
    sslib.make_config(cfg, sslib.synth_stages(), store=store)
    ran_check(store, "canonical: first run", cfg, tmp, ALL)
    h = sslib.stage_hashes(sslib.container_path(os.path.join(tmp, "out"), "s1", store), store)
    # 2 -> 2.0, explicit defaults, other run-level settings, comments and key order
    st = sslib.synth_stages(p_low=2.0, extra_norm={"eps": 1e-20, "method": "exact", "clip": False})
    st["raw"]["params"].update({"sigma_xy": 3, "photons": 200.0})
    sslib.make_config(cfg, st, store=store, name="renamed", run_extra={"progress_interval": 3, "threads": 1})
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write("# a comment\n" + text.replace("stages:", "# another\nstages:"))
    ran_check(store, "canonical: 2 -> 2.0, explicit defaults, run name, threads, comments", cfg, tmp, set())
    ran_check(store, "canonical: --threads 1", cfg, tmp, set(), extra=["--threads", "1"])
    T.check(sslib.stage_hashes(sslib.container_path(os.path.join(tmp, "out"), "s1", store), store) == h,
            f"{store}: canonical edits leave every stage byte-identical")
    # a real change of a default-valued parameter does rerun
    st["raw"]["params"]["sigma_xy"] = 2.5
    sslib.make_config(cfg, st, store=store)
    ran_check(store, "sigma_xy 3 -> 2.5", cfg, tmp, ALL)
    # the sample's voxel size is part of a source stage's fingerprint
    sslib.make_config(cfg, st, store=store, samples=[{"id": "s1", "voxel_size": [2.0, 0.1, 0.1]}])
    ran_check(store, "sample voxel_size changed", cfg, tmp, ALL)
    a = sslib.read_arrays(sslib.container_path(os.path.join(tmp, "out"), "s1", store), store)
    T.check(a["raw/truth"].shape == (6, 48, 40), f"{store}: still readable after the voxel change")


def filter_kind(fid, cd):
    """A dataset filter as ('blosc', compressor code), ('shuffle',),
    ('deflate', level) or ('filter', id)."""
    if fid == 32001:
        return ("blosc", cd[6] if len(cd) > 6 else None)
    return {2: ("shuffle",), 1: ("deflate", cd[0] if cd else None)}.get(fid, ("filter", fid))


def h5_compression(cont):
    """({'stage/array': [filter kinds]}, {stage: (attribute compression,
    fingerprint)}) of a container, read with h5py."""
    filters, stages = {}, {}
    with h5py.File(cont, "r", locking=False) as f:
        for sname in f.keys():
            stages[sname] = (f[sname].attrs.get("compression"), f[sname].attrs.get("fingerprint"))
            for aname, d in f[sname].items():
                plist = d.id.get_create_plist()
                filters[f"{sname}/{aname}"] = [filter_kind(*plist.get_filter(k)[:3:2])
                                               for k in range(plist.get_nfilters())]
    return filters, stages


def compression_suite():
    """Compression does not change results: changing run.compression reuses
    every committed stage (which keeps its compression), --force rewrites."""
    store = "hdf5"
    lz4, gzip = [("blosc", 1)], [("shuffle",), ("deflate", 4)]
    tmp = T.tmpdir("compression")
    cfg = os.path.join(tmp, "c.yaml")
    cont = sslib.container_path(os.path.join(tmp, "out"), "s1", store)
    sslib.make_config(cfg, sslib.synth_stages(), store=store)
    ran_check(store, "compression: first run (default blosc-lz4)", cfg, tmp, ALL)
    h1 = sslib.stage_hashes(cont, store)
    ref = sslib.read_arrays(cont, store)
    filters, st1 = h5_compression(cont)
    T.check({s: c for s, (c, fp) in st1.items()} == {s: "blosc-lz4" for s in ALL} and
            all(v == lz4 for v in filters.values()),
            "hdf5: compression: by default every stage records blosc-lz4 and every array has filter 32001 with lz4",
            f"{st1}\n{filters}")

    sslib.make_config(cfg, sslib.synth_stages(), store=store, run_extra={"compression": "gzip"})
    p = sslib.run(["run", cfg, "--dry-run"])
    lines = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln.startswith("  ")}
    T.check(p.returncode == 0 and all(lines.get(s, "").split()[1:2] == ["reuse"] and
                                      f"written with blosc-lz4, kept (--force {s} rewrites it with gzip)" in lines[s]
                                      for s in ALL),
            "hdf5: compression: --dry-run after blosc-lz4 -> gzip: every stage reuse, 'written with blosc-lz4, kept "
            "(--force STAGE rewrites it with gzip)'", sslib.describe(p))
    p, _, _, reused = ran_check(store, "compression: blosc-lz4 -> gzip", cfg, tmp, set())
    T.check(sslib.stages_ran(reused) == ALL and "s1/norm: up to date; written with blosc-lz4, kept" in p.stderr,
            "hdf5: compression: the run reuses all four and says the arrays keep blosc-lz4", sslib.describe(p))
    T.check(sslib.stage_hashes(cont, store) == h1, "hdf5: compression: the reused stages are byte-identical")
    p, st = status_map(cfg)
    T.check(all(st.get(("s1", s), ("",))[0] == "done" for s in ALL), "hdf5: compression: status: every stage done",
            sslib.describe(p))

    ran_check(store, "compression: --force norm with gzip", cfg, tmp, DOWN, extra=["--force", "norm"])
    filters, st2 = h5_compression(cont)
    T.check({s: c for s, (c, fp) in st2.items()} == {"raw": "blosc-lz4", "norm": "gzip", "mean": "gzip",
                                                      "median": "gzip"},
            "hdf5: compression: after --force norm, norm and its dependants record gzip, raw keeps blosc-lz4", st2)
    T.check(all(v == (lz4 if k.startswith("raw/") else gzip) for k, v in filters.items()),
            "hdf5: compression: the rewritten arrays have shuffle + deflate 4, raw's still blosc lz4", filters)
    eq, detail = sslib.arrays_equal(sslib.read_arrays(cont, store), ref)
    T.check(eq, "hdf5: compression: the values are the same whatever the compression", detail)
    T.check({s: fp for s, (c, fp) in st2.items()} == {s: fp for s, (c, fp) in st1.items()},
            "hdf5: compression: the fingerprints are unchanged", f"{st1}\n{st2}")
    ran_check(store, "compression: a plain run after --force", cfg, tmp, set())


for store in ("hdf5", "zarr"):
    T.guard(f"{store}: resume suite", resume_suite, store)
    T.guard(f"{store}: canonical parameters", canonical_suite, store)
    T.guard(f"{store}: determinism", determinism, store)
    T.guard(f"{store}: sample selection", samples_suite, store)
    T.guard(f"{store}: import_hdf5 inputs", import_suite, store)
T.guard("compression", compression_suite)
T.done()
