#!/usr/bin/python3
"""kill -9 at any instant never loses a committed stage (DESIGN.md invariant 1), in TAP.

For each store (hdf5, zarr) and each scenario, a reference is made by an
uninterrupted run of the target config (--threads 2). Then, for every kill
point -- each named crash point (SIRENSTACK_CRASHPOINT=NAME:K, for several K),
stage.progress:K values landing inside each stage, checkpoint points where a
stage reaches them, and SIGKILLs at random wall-clock times -- starting from a
container where stages are already committed:

  * the process died by SIGKILL (returncode -9) for crash points;
  * `sirenstack inspect` exits 0 and h5py / zarr-python read every array it lists;
  * zarr: OME/.zattrs "series" names only image groups that are there;
  * every stage committed before is byte-identical (sha256 of its file or tree),
    and `sirenstack verify` finds the container intact (every chunk's checksum);
    or -- for a stage the run replaces -- is the complete new version (the
    target fingerprint, arrays equal to the reference): never a mix or a torso;
    a stage the target does not change is byte-identical, full stop;
  * a rerun without the crash point exits 0, recomputes exactly the stages whose
    committed fingerprint is not the target's, leaves no temporaries (*.tmp*,
    non-empty tmp dirs, .creating. dirs, stage files outside the index) and
    gives arrays equal to the reference exactly, and (zarr) a series that
    names every image group, in commit order.

Every config ends in a small siren_fuse stage ("fit") that writes a
checkpoint every 4 steps, so kills before and after a checkpoint write, and
inside the training loop, are among the points; its resumed result must
equal the uninterrupted one exactly too.

Scenarios: "p_high" (raw committed and kept; norm, mean, median, fit
replaced), "seed" (all five replaced), "fresh" (nothing committed yet).
SS_CRASH_SEED fixes the random kill times (default: random, printed).
"""
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import sslib  # noqa: E402

T = sslib.Tap()
RNG = sslib.seeded_rng(T, "SS_CRASH_SEED", "random kill times")
SHAPE = (6, 48, 40)
ALL = ["raw", "norm", "mean", "median", "fit"]
FIT_STEPS = 40
RUN_EXTRA = {"checkpoint": {"every_steps": 4}}


def stages(p_high):
    st = sslib.synth_stages(shape=SHAPE, p_high=p_high)
    st["fit"] = {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"},
                 "params": {"width": 32, "hidden_layers": 1, "steps": FIT_STEPS, "loss": "cauchy"}}
    return st


def cfg_for(scenario):
    """(base stages, base seed, target stages, target seed)"""
    a = stages(99.9)
    if scenario == "p_high":
        return a, 1, stages(99.5), 1
    if scenario == "seed":
        return a, 1, stages(99.9), 5
    return None, None, a, 1  # fresh


class Scenario:
    def __init__(self, store, name, root):
        self.store, self.name = store, name
        self.root = os.path.join(root, name)
        os.makedirs(self.root)
        base_stages, base_seed, tgt_stages, tgt_seed = cfg_for(name)
        # reference: uninterrupted run of the target
        refdir = os.path.join(self.root, "ref")
        os.makedirs(refdir)
        rcfg = sslib.make_config(os.path.join(refdir, "c.yaml"), tgt_stages, store=store, seed=tgt_seed,
                                 run_extra=RUN_EXTRA)
        t0 = time.monotonic()
        p = sslib.run(["run", rcfg, "--threads", "2", "-q"])
        self.ref_seconds = time.monotonic() - t0
        if p.returncode != 0:
            raise RuntimeError("reference run failed\n" + sslib.describe(p))
        rc = sslib.container_path(os.path.join(refdir, "out"), "s1", store)
        self.ref_arrays = sslib.read_arrays(rc, store)
        self.ref_fp = {s: sslib.stage_attrs(rc, store, s)["fingerprint"] for s in ALL}
        # base: a container with the base config committed (copied for every case)
        self.base = None
        self.base_fp = {}
        self.tgt_stages, self.tgt_seed = tgt_stages, tgt_seed
        if base_stages is not None:
            self.base = os.path.join(self.root, "base")
            os.makedirs(self.base)
            bcfg = sslib.make_config(os.path.join(self.base, "c.yaml"), base_stages, store=store, seed=base_seed,
                                     run_extra=RUN_EXTRA)
            p = sslib.run(["run", bcfg, "--threads", "2", "-q"])
            if p.returncode != 0:
                raise RuntimeError("base run failed\n" + sslib.describe(p))
            bc = sslib.container_path(os.path.join(self.base, "out"), "s1", store)
            self.base_fp = {s: sslib.stage_attrs(bc, store, s)["fingerprint"] for s in ALL}
        self.n = 0

    def case_dir(self):
        self.n += 1
        d = os.path.join(self.root, f"case{self.n:03d}")
        if self.base:
            shutil.copytree(self.base, d, symlinks=True)
        else:
            os.makedirs(d)
        cfg = sslib.make_config(os.path.join(d, "c.yaml"), self.tgt_stages, store=self.store, seed=self.tgt_seed,
                                run_extra=RUN_EXTRA)
        return d, cfg


def verify_after_kill(sc, label, d, cont, pre, p_desc):
    """The container opens, readers read it, committed stages are intact."""
    store = sc.store
    ok = True
    if not os.path.exists(cont):
        ok &= T.check(not pre, f"{label}: container absent after the kill only if nothing was committed",
                      f"committed before: {sorted(pre)}")
        return ok
    p, js = sslib.inspect_json(cont)
    ok &= T.check(p.returncode == 0 and isinstance(js, dict), f"{label}: inspect opens the container",
                  sslib.describe(p) + "\n" + p_desc)
    if not js:
        return False
    listed = {f"{s}/{a}" for s, v in js.items() if isinstance(v, dict) for a in v.get("arrays", {})}
    try:
        arrays = sslib.read_arrays(cont, store)
        missing = sorted(listed - set(arrays))
        ok &= T.check(not missing, f"{label}: {'h5py' if store == 'hdf5' else 'zarr'} reads every array inspect lists"
                      f" ({len(listed)})", f"missing: {missing}")
    except Exception as e:  # noqa: BLE001
        return T.check(False, f"{label}: readers open the container", f"{type(e).__name__}: {e}")
    post = sslib.stage_hashes(cont, store)
    bad = []
    for s, h in pre.items():
        if s not in post:
            bad.append(f"{s}: committed before, gone after the kill")
            continue
        if post[s] == h:
            continue
        # replaced: must be the complete new version
        if sc.base_fp.get(s) == sc.ref_fp[s]:
            bad.append(f"{s}: unchanged by the target config, yet its bytes changed")
            continue
        fp = sslib.stage_attrs(cont, store, s).get("fingerprint")
        if fp != sc.ref_fp[s]:
            bad.append(f"{s}: bytes changed but fingerprint {fp} is neither old nor target")
            continue
        eq, det = sslib.arrays_equal({k: v for k, v in arrays.items() if k.startswith(s + "/")},
                                     {k: v for k, v in sc.ref_arrays.items() if k.startswith(s + "/")})
        if not eq:
            bad.append(f"{s}: replaced by the target fingerprint, but arrays differ from the reference: {det}")
    # stages that appeared: complete new versions only
    for s in set(post) - set(pre):
        fp = sslib.stage_attrs(cont, store, s).get("fingerprint")
        eq, det = sslib.arrays_equal({k: v for k, v in arrays.items() if k.startswith(s + "/")},
                                     {k: v for k, v in sc.ref_arrays.items() if k.startswith(s + "/")})
        if fp != sc.ref_fp.get(s) or not eq:
            bad.append(f"{s}: newly visible but not the complete target version ({fp}; {det})")
    ok &= T.check(not bad, f"{label}: committed stages byte-identical or atomically replaced ({len(pre)} before)",
                  "\n".join(bad))
    # and verifiable: every chunk of every committed stage matches its checksum
    p = sslib.run(["verify", cont])
    ok &= T.check(p.returncode == 0, f"{label}: verify finds every committed stage intact", sslib.describe(p))
    if store == "zarr":
        series, present = sslib.zarr_series(cont), sslib.zarr_image_groups(cont)
        ok &= T.check(series is not None and not set(series) - set(present),
                      f"{label}: OME series names only image groups that are there",
                      f"series {series}\npresent {present}")
    return ok


def rerun_and_compare(sc, label, d, cfg, cont):
    store = sc.store
    # which stages must run: those whose committed fingerprint is not the target's
    must = set(ALL)
    if os.path.exists(cont):
        try:
            for s in sslib.stage_hashes(cont, store):
                if sslib.stage_attrs(cont, store, s).get("fingerprint") == sc.ref_fp[s]:
                    must.discard(s)
        except Exception:  # noqa: BLE001 - reported by verify_after_kill
            pass
    before = sslib.stage_hashes(cont, store) if os.path.exists(cont) else {}
    p, ev, ran, _ = sslib.run_logged(cfg, d)
    got = sslib.stages_ran(ran)
    T.check(p.returncode == 0, f"{label}: rerun completes", sslib.describe(p))
    T.check(got == must, f"{label}: rerun recomputes exactly the stages not yet committed with the target fingerprint",
            f"expected {sorted(must)}, ran {sorted(got)}")
    after = sslib.stage_hashes(cont, store)
    kept = [s for s in set(ALL) - got if before.get(s) != after.get(s)]
    T.check(not kept, f"{label}: stages reused by the rerun stay byte-identical", f"changed: {kept}")
    left = sslib.leftovers(os.path.join(d, "out"))
    T.check(not left, f"{label}: no temporaries left after the rerun", "\n".join(left))
    try:
        arrays = sslib.read_arrays(cont, store)
        eq, det = sslib.arrays_equal(arrays, sc.ref_arrays)
    except Exception as e:  # noqa: BLE001
        eq, det = False, f"{type(e).__name__}: {e}"
    T.check(eq, f"{label}: every array equals the uninterrupted reference exactly", det)
    if store == "zarr":
        series, present = sslib.zarr_series(cont), sslib.zarr_image_groups(cont)
        T.check(series == present, f"{label}: after the rerun the OME series names every image group, in commit order",
                f"series {series}\npresent {present}")
    rs = sslib.running_stages(cont, store)
    if rs:
        T.diag(f"{label}: note: stale status/{rs}.running left after the completed rerun")


def crashpoint_case(sc, point, stats):
    """point: NAME:K, or NAME:K+NAME2:K2 -- a kill, then a second kill during
    the first rerun (recovery itself interrupted)."""
    d, cfg = sc.case_dir()
    cont = sslib.container_path(os.path.join(d, "out"), "s1", sc.store)
    label = f"{sc.store}/{sc.name}: {point}"
    points = point.split("+")
    for n, pt in enumerate(points):
        pre = sslib.stage_hashes(cont, sc.store)
        lab = label if len(points) == 1 else f"{label} (kill {n + 1} at {pt})"
        p = sslib.run(["run", cfg, "--threads", "2", "-q"], env={"SIRENSTACK_CRASHPOINT": pt})
        if p.returncode == 0 and (pt.startswith("checkpoint.") or pt.startswith("zarr.write_chunk")
                                  or pt.startswith("stage.progress")):
            T.skip(f"{lab}: killed", "crash point not reached that often by these stages")
            shutil.rmtree(d, ignore_errors=True)
            return
        where = sslib.running_stages(cont, sc.store)
        if not T.check(p.returncode == -9, f"{lab}: killed by SIGKILL" + (f" (in {where})" if where else ""),
                       sslib.describe(p)):
            return
        stats["killed"].add((sc.name, point))
        if where:
            stats["stages"].add(where)
        if not verify_after_kill(sc, lab, d, cont, pre, sslib.describe(p)):
            return
    rerun_and_compare(sc, label, d, cfg, cont)
    if point == "runner.after_commit:1":
        status_while_locked(sc, label, cfg, cont)
    shutil.rmtree(d, ignore_errors=True)


def status_while_locked(sc, label, cfg, cont):
    """After the rerun completed, another run holding the container lock must
    not make `status` report the killed process as running."""
    lock = os.path.join(sslib.workdir(cont, sc.store), "lock")
    if not os.path.exists(lock):
        T.skip(f"{label}: status during a later run", f"no lock file at {lock}")
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        p = sslib.run(["status", cfg])
    finally:
        os.close(fd)
    running = [ln for ln in p.stdout.splitlines()[1:] if ln.split()[2:3] == ["running"]]
    T.check(p.returncode == 0 and not running,
            f"{label}: after the rerun, status during a later run shows no stage of the killed run as running",
            "\n".join(running) + "\n" + sslib.describe(p))


def random_kill_case(sc, i, stats, sig=signal.SIGKILL):
    """SIGKILL (or SIGTERM: the run stops after the stage in progress, exit 75)
    at a random wall-clock time."""
    d, cfg = sc.case_dir()
    cont = sslib.container_path(os.path.join(d, "out"), "s1", sc.store)
    pre = sslib.stage_hashes(cont, sc.store)
    delay = RNG.uniform(0.0, max(0.02, sc.ref_seconds * 1.1))
    signame = "SIGKILL" if sig == signal.SIGKILL else "SIGTERM"
    label = f"{sc.store}/{sc.name}: random {signame} {i} after {delay * 1000:.1f} ms"
    env = dict(os.environ)
    env.pop("SIRENSTACK_CRASHPOINT", None)
    proc = subprocess.Popen([sslib.BIN, "run", cfg, "--threads", "2", "-q"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    desc = f"exit {proc.returncode}\nstdout: {out[-800:]}\nstderr: {err[-800:]}"
    where = sslib.running_stages(cont, sc.store)
    if proc.returncode == -sig:
        stats["killed"].add((sc.name, f"random-{signame}-{i}"))
        if where:
            stats["stages"].add(where)
        T.diag(f"{label}: killed" + (f" in {where}" if where else ""))
        if sig == signal.SIGTERM:
            # only before the handler is installed, i.e. before any stage ran
            T.check(sslib.stage_hashes(cont, sc.store) == pre,
                    f"{label}: died of SIGTERM only before touching any stage", desc)
    elif sig == signal.SIGTERM:
        T.check(proc.returncode in (0, 75) and (proc.returncode == 0 or "interrupted" in err),
                f"{label}: stops cleanly (exit 75 'interrupted', or 0 if it had finished)", desc)
        T.check(where is None, f"{label}: no stage left marked running after a clean stop", where or "")
    else:
        T.check(proc.returncode == 0, f"{label}: finished before the kill with exit 0", desc)
    if verify_after_kill(sc, label, d, cont, pre, desc):
        rerun_and_compare(sc, label, d, cfg, cont)
    shutil.rmtree(d, ignore_errors=True)


def points_for(store, scenario):
    """Crash points with the K-th pass at which to die, for a target run that
    recomputes 3 stages (p_high) or 4 (seed, fresh)."""
    n_commits = 3 if scenario == "p_high" else 4
    pts = []
    for k in sorted({1, 2, n_commits}):
        pts += [f"runner.stage_start:{k}", f"runner.before_commit:{k}", f"runner.after_commit:{k}"]
        if store == "hdf5":
            pts += [f"hdf5.commit.before_close:{k}", f"hdf5.commit.before_rename:{k}",
                    f"hdf5.commit.stage_file_renamed:{k}", f"hdf5.commit.index_renamed:{k}"]
        else:
            pts += [f"zarr.commit.before_swap:{k}", f"zarr.commit.after_swap:{k}", f"zarr.commit.before_series:{k}"]
    if store == "hdf5":
        # a fresh container writes its empty index once before any commit
        idx = [1, 2, n_commits + (1 if scenario == "fresh" else 0)]
        pts += [f"hdf5.index.written:{k}" for k in sorted(set(idx))]
    else:
        pts += [f"zarr.write_chunk:{k}" for k in (1, 3, 5, 7, 9)]
    # progress: raw makes R*Z = 24 updates, normalize 3 passes x 24, each fusion Z = 6,
    # the fit one per step (40) and a few for its prediction
    if scenario == "p_high":
        prog = [1, 12, 24, 25, 48, 60, 72, 73, 76, 78, 79, 82, 84, 90, 105, 123]
    else:
        prog = [1, 10, 24, 25, 40, 70, 96, 97, 100, 102, 103, 106, 108, 114, 130, 147]
    pts += [f"stage.progress:{k}" for k in prog]
    # the fit checkpoints after steps 4, 8, ..., 36 (and not after its last)
    pts += [f"checkpoint.before_write:{k}" for k in (1, 2, 5)]
    pts += [f"checkpoint.after_write:{k}" for k in (1, 3, 9)]
    # a second kill while the first rerun recovers and resumes
    if store == "hdf5":
        pts += ["hdf5.commit.stage_file_renamed:1+hdf5.commit.index_renamed:1",
                "hdf5.index.written:2+hdf5.commit.before_rename:1", "runner.after_commit:1+stage.progress:3"]
    else:
        pts += ["zarr.commit.after_swap:1+zarr.commit.before_swap:1", "zarr.write_chunk:3+zarr.commit.after_swap:2",
                "runner.after_commit:1+stage.progress:3"]
    return pts


def store_suite(store):
    root = T.tmpdir(f"crash-{store}")
    stats = {"killed": set(), "stages": set()}
    n_random = int(os.environ.get("SS_CRASH_RANDOM", "6"))
    for scenario in ("p_high", "seed", "fresh"):
        sc = Scenario(store, scenario, root)
        T.diag(f"{store}/{scenario}: reference and base runs done (reference {sc.ref_seconds * 1000:.0f} ms)")
        pts = points_for(store, scenario)
        if scenario == "fresh":
            pts = [p for p in pts if not p.startswith("stage.progress")][:12] + ["stage.progress:1", "stage.progress:30"]
        for point in pts:
            T.guard(f"{store}/{scenario}: {point}", crashpoint_case, sc, point, stats)
        for i in range(n_random if scenario != "fresh" else max(2, n_random // 2)):
            T.guard(f"{store}/{scenario}: random kill {i}", random_kill_case, sc, i, stats)
        for i in range(2):
            T.guard(f"{store}/{scenario}: random SIGTERM {i}", random_kill_case, sc, i, stats, signal.SIGTERM)
    T.check(len(stats["killed"]) >= 24, f"{store}: at least 24 distinct kill points hit ({len(stats['killed'])})")
    T.check(set(ALL) <= stats["stages"], f"{store}: kills landed inside every stage ({sorted(stats['stages'])})")
    ck = sorted(f"{sc}/{pt}" for sc, pt in stats["killed"] if pt.startswith("checkpoint."))
    T.check(len(ck) >= 4, f"{store}: kills before and after checkpoint writes ({', '.join(ck)})")


def planted_temporaries(store):
    """What a kill leaves while a file is written atomically (<path>.tmp.<pid>,
    fsync'ed before the rename, so the window is milliseconds wide: the random
    kills above hit it now and then) must be removed by the next run. Planted
    here with exactly those names so the check does not depend on luck."""
    tmp = T.tmpdir(f"plant-{store}")
    cfg = sslib.make_config(os.path.join(tmp, "c.yaml"), sslib.synth_stages(shape=SHAPE), store=store)
    p = sslib.run(["run", cfg, "-q"])
    if not T.check(p.returncode == 0, f"{store}: planted temporaries: first run", sslib.describe(p)):
        return
    out = os.path.join(tmp, "out")
    cont = sslib.container_path(out, "s1", store)
    wd = sslib.workdir(cont, store)
    pid = 4000000  # above pid_max: no live process owns these
    planted = [os.path.join(wd, f"inputs.json.tmp.{pid}"),
               os.path.join(wd, "status", f"norm.running.tmp.{pid}"),
               os.path.join(wd, "status", f"norm.failed.tmp.{pid}"),
               os.path.join(wd, "ckpt", f"norm.ckpt.tmp.{pid}")]
    if store == "zarr":
        planted += [os.path.join(wd, f"order.json.tmp.{pid}"), os.path.join(wd, "tmp", f"norm.{pid}.0", ".zgroup"),
                    os.path.join(cont, "OME", f".zattrs.tmp.{pid}")]
    else:
        planted += [f"{cont}.tmp.{pid}", os.path.join(wd, "stages", f"norm.6b02bf0000000.h5.tmp")]
    for f in planted:
        os.makedirs(os.path.dirname(f), exist_ok=True)
        with open(f, "w") as fh:
            fh.write("partial")
    before = sslib.stage_hashes(cont, store)
    p = sslib.run(["run", cfg, "-q"])
    T.check(p.returncode == 0 and sslib.stage_hashes(cont, store) == before,
            f"{store}: planted temporaries: the next run succeeds, stages untouched", sslib.describe(p))
    left = [os.path.relpath(f, out) for f in planted if os.path.exists(f)]
    T.check(not left, f"{store}: the next run removes the temporaries a killed run leaves in its work dir",
            "\n".join(left))


for store in ("hdf5", "zarr"):
    T.guard(f"{store}: crash suite", store_suite, store)
    T.guard(f"{store}: planted temporaries", planted_temporaries, store)
T.done()
