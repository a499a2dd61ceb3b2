#!/usr/bin/python3
"""kill -9 across every stage type, three samples and the cohort stages, in TAP.

One config holds every stage type (synth, synth_smooth, import_hdf5,
import_tiff, normalize, crop, fuse_mean, fuse_median, filter_gaussian,
filter_median, fnsm, register_rigid, interp_linear, interp_cubic, siren_fuse,
siren_interplane, siren_render, denoise_train at sample and at cohort scope,
denoise_apply, n2n_train at sample and at cohort scope, n2n_apply,
cnn_motion, import_model, metrics, summarize), each small, over three
samples, with checkpoints every 4 steps. An uninterrupted run is the
reference (its duration and its order of stages measured once).

Kills come in chains: a run is killed, the next run of the chain resumes
what it left and is killed again, and so on, until a last run completes.
  * random: SIGKILL at times drawn across the duration of a full run;
  * named: for one instance of every stage type (drawn at random), the crash
    points (SIRENSTACK_CRASHPOINT) at its start, before its commit, inside
    the HDF5 commit, in its progress and its checkpoint writes, and after
    its commit, counted from where the resumed run starts; among them the
    cohort stages of a whole run;
  * cohort: the array-job flow (`--array-index`, then `run --cohort`) killed
    inside the cohort stages.
After every kill: every stage committed before is byte-identical (sha256 of
its stage file), every stage the killed run committed is the complete
reference version, and `verify` finds every container intact. After each
chain's last run: exit 0, exactly the stages not committed were run, the
committed ones byte-identical, every array of every container identical to
the reference, no temporaries left. At least 50 kills, and kills land inside
every stage type.

SS_CRASH_SEED fixes the random draws (default: random, printed);
SS_ZOO_CHAINS and SS_ZOO_KILLS set the random chains and kills per chain (6, 8).
"""
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
RNG = sslib.seeded_rng(T, "SS_CRASH_SEED", "random kill times and points")
STORE = "hdf5"
SHAPE = (4, 32, 32)
IDS = ["s1", "s2", "s3"]
COHORT = "_cohort"
RUN = ["--threads", "2", "-q"]
UNET = {"depth": 2, "width": 4, "patch": 16, "batch": 2, "steps": 12}
SIREN = {"width": 16, "hidden_layers": 1, "steps": 24}


def zoo_stages(model):
    return {
        "syn": {"uses": "synth", "params": {"shape": list(SHAPE), "repeats": 2, "supersample": 1, "dendrites": 1}},
        "smooth": {"uses": "synth_smooth", "params": {"shape": list(SHAPE), "repeats": 2}},
        "h5": {"uses": "import_hdf5", "params": {"dataset": "/raw", "axes": "rzyx"}},
        "tif": {"uses": "import_tiff", "params": {"file": "{tiff}", "repeats_layout": "blocked"}},
        "norm": {"uses": "normalize", "inputs": {"stack": "smooth.repeats"}},
        "crop": {"uses": "crop", "inputs": {"stack": "h5.raw"}, "params": {"y": [0, 24], "x": [4, 32]}},
        "mean": {"uses": "fuse_mean", "inputs": {"repeats": "norm.data"}},
        "median": {"uses": "fuse_median", "inputs": {"repeats": "tif.raw"}},
        "gauss": {"uses": "filter_gaussian", "inputs": {"image": "mean.fused"}},
        "medf": {"uses": "filter_median", "inputs": {"image": "mean.fused"}},
        "fnsm": {"uses": "fnsm", "inputs": {"image": "mean.fused"}},
        "reg": {"uses": "register_rigid", "inputs": {"repeats": "syn.repeats"}},
        "lin": {"uses": "interp_linear", "inputs": {"stack": "mean.fused"}, "params": {"keep_every": 2}},
        "cub": {"uses": "interp_cubic", "inputs": {"stack": "mean.fused"}, "params": {"keep_every": 2}},
        "fit": {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"}, "params": dict(SIREN, loss="cauchy")},
        "inter": {"uses": "siren_interplane", "inputs": {"stack": "mean.fused"}, "params": SIREN},
        "render": {"uses": "siren_render", "inputs": {"weights": "fit.weights"}, "params": {"z_step": 0.5}},
        "dtrain": {"uses": "denoise_train", "inputs": {"input": "mean.fused", "target": "smooth.truth"}, "params": UNET},
        "ctrain": {"uses": "denoise_train", "scope": "cohort",
                   "inputs": {"input": "mean.fused", "target": "smooth.truth"}, "params": UNET},
        "dapply": {"uses": "denoise_apply", "inputs": {"image": "mean.fused", "model": "ctrain.weights"}},
        "n2n": {"uses": "n2n_train", "inputs": {"repeats": "norm.data"}, "params": UNET},
        "n2nc": {"uses": "n2n_train", "scope": "cohort", "inputs": {"repeats": "norm.data"}, "params": UNET},
        "n2napply": {"uses": "n2n_apply", "inputs": {"repeats": "norm.data", "model": "n2nc.weights"}},
        "cnn": {"uses": "cnn_motion", "inputs": {"repeats": "syn.repeats", "artifacts": "syn.artifacts"},
                "params": {"filters": [4, 4], "kernel": 3, "steps": 12, "batch": 2, "patch": 16}},
        "imodel": {"uses": "import_model", "params": {"container": model, "stage": "train"}},
        "mapply": {"uses": "denoise_apply", "inputs": {"image": "median.fused", "model": "imodel.weights"}},
        "scores": {"uses": "metrics", "inputs": {"reference": "smooth.truth",
                                                 "methods": ["mean.fused", "fit.fused", "dapply.denoised"]}},
        "table": {"uses": "summarize", "inputs": {"tables": "scores.summary"}},
    }


def kind(stages, name):
    """A stage's type, its scope named for those that take both."""
    st = stages[name]
    return st["uses"] + (" (cohort)" if st.get("scope") == "cohort" and st["uses"] != "summarize" else "")


def make_inputs(d):
    """Per sample an HDF5 file and a TIFF of its repeats; and a container with
    a trained denoiser for import_model."""
    import tifffile
    samples = []
    for i, sid in enumerate(IDS):
        data = np.random.default_rng(i).poisson(100, (2,) + SHAPE).astype(np.uint16)
        h5 = os.path.join(d, f"{sid}.h5")
        with h5py.File(h5, "w") as f:
            f["raw"] = data
        tif = os.path.join(d, f"{sid}.tif")
        tifffile.imwrite(tif, data.reshape((-1,) + SHAPE[1:]))
        samples.append({"id": sid, "input": h5, "tiff": tif, "repeats": 2, "voxel_size": [1.0, 0.1, 0.1]})
    md = os.path.join(d, "model")
    os.makedirs(md)
    st = {"raw": {"uses": "synth_smooth", "params": {"shape": list(SHAPE), "repeats": 2}},
          "mean": {"uses": "fuse_mean", "inputs": {"repeats": "raw.repeats"}},
          "train": {"uses": "denoise_train", "inputs": {"input": "mean.fused", "target": "raw.truth"}, "params": UNET}}
    cfg = sslib.make_config(os.path.join(md, "c.yaml"), st, samples=[{"id": "m", "repeats": 2}])
    p = sslib.run(["run", cfg] + RUN)
    if p.returncode != 0:
        raise RuntimeError("the model run failed\n" + sslib.describe(p))
    return samples, sslib.container_path(os.path.join(md, "out"), "m", STORE)


class Zoo:
    def __init__(self, root):
        self.root = root
        inputs = os.path.join(root, "inputs")
        os.makedirs(inputs)
        self.samples, model = make_inputs(inputs)
        self.stages = zoo_stages(model)
        self.ids = IDS + [COHORT]
        d, cfg = self.folder("ref")
        log = os.path.join(d, "log.jsonl")
        t0 = time.monotonic()
        p = sslib.run(["run", cfg, "--log-json", log] + RUN, timeout=600)
        self.seconds = time.monotonic() - t0
        if p.returncode != 0:
            raise RuntimeError("the reference run failed\n" + sslib.describe(p))
        self.order = [(e["sample"], e["stage"]) for e in sslib.read_events(log) if e.get("event") == "stage_start"]
        t0 = time.monotonic()
        sslib.run(["run", cfg] + RUN)
        self.resume_seconds = time.monotonic() - t0
        self.ref = {i: sslib.read_arrays(self.container(d, i), STORE) for i in self.ids}
        self.kills = 0
        self.landed = set()

    def folder(self, name):
        d = os.path.join(self.root, name)
        os.makedirs(d)
        return d, sslib.make_config(os.path.join(d, "c.yaml"), self.stages, store=STORE, samples=self.samples,
                                    run_extra={"checkpoint": {"every_steps": 4}})

    @staticmethod
    def container(d, sid):
        return sslib.container_path(os.path.join(d, "out"), sid, STORE)


class Chain:
    """A sequence of killed runs in one output folder, then a completing one."""

    def __init__(self, zoo, name):
        self.zoo, self.name = zoo, name
        self.d, self.cfg = zoo.folder(name)

    def hashes(self):
        out = {}
        for sid in self.zoo.ids:
            for st, h in sslib.stage_hashes(Zoo.container(self.d, sid), STORE).items():
                out[(sid, st)] = h
        return out

    def remaining(self):
        done = self.hashes()
        return [x for x in self.zoo.order if x not in done]

    def where(self):
        return [(sid, st) for sid in self.zoo.ids
                for st in (sslib.running_stages(Zoo.container(self.d, sid), STORE) or "").split(",") if st]

    def killed(self, label, pre, proc_desc):
        """The checks after a kill; True when the container is sound."""
        self.zoo.kills += 1
        where = self.where()
        for sid, st in where:
            self.zoo.landed.add(kind(self.zoo.stages, st))
        post = self.hashes()
        changed = [f"{k[0]}/{k[1]}" for k, h in pre.items() if post.get(k) != h]
        ok = T.check(not changed, f"{label}: every stage committed before is byte-identical ({len(pre)})",
                     "changed: " + ", ".join(changed) + "\n" + proc_desc)
        new = sorted(set(post) - set(pre))
        bad = []
        for sid in {s for s, _ in new}:
            arrays = sslib.read_arrays(Zoo.container(self.d, sid), STORE)
            for _, st in (k for k in new if k[0] == sid):
                eq, det = sslib.arrays_equal({k: v for k, v in arrays.items() if k.startswith(st + "/")},
                                             {k: v for k, v in self.zoo.ref[sid].items() if k.startswith(st + "/")})
                if not eq:
                    bad.append(f"{sid}/{st}: {det}")
        ok &= T.check(not bad, f"{label}: the {len(new)} stages it committed are complete", "\n".join(bad))
        bad = []
        for sid in self.zoo.ids:
            cont = Zoo.container(self.d, sid)
            if os.path.exists(cont):
                p = sslib.run(["verify", cont])
                if p.returncode != 0:
                    bad.append(sslib.describe(p))
        ok &= T.check(not bad, f"{label}: verify finds every container intact", "\n".join(bad))
        T.diag(f"{label}: killed in {', '.join(f'{s}/{t}' for s, t in where) or 'no stage'}")
        return ok

    def crashpoint(self, label, point, extra=()):
        pre = self.hashes()
        p = sslib.run(["run", self.cfg] + RUN + list(extra), env={"SIRENSTACK_CRASHPOINT": point}, timeout=600)
        if p.returncode == 0:
            T.diag(f"{label}: {point} not reached; the run completed")
            return True
        if not T.check(p.returncode == -signal.SIGKILL, f"{label}: killed by SIGKILL at {point}", sslib.describe(p)):
            return False
        return self.killed(f"{label} ({point})", pre, sslib.describe(p))

    def timed(self, label, delay):
        pre = self.hashes()
        env = dict(os.environ)
        env.pop("SIRENSTACK_CRASHPOINT", None)
        proc = subprocess.Popen([sslib.BIN, "run", self.cfg] + RUN, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        desc = f"exit {proc.returncode}\nstderr: {err[-1500:]}"
        if proc.returncode == 0:
            T.diag(f"{label}: the run completed before the kill")
            return True
        if not T.check(proc.returncode == -signal.SIGKILL, f"{label}: killed by SIGKILL", desc):
            return False
        return self.killed(label, pre, desc)

    def complete(self, label):
        pre = self.hashes()
        must = set(self.zoo.order) - set(pre)
        p, ev, ran, reused = sslib.run_logged(self.cfg, self.d, timeout=600)
        T.check(p.returncode == 0, f"{label}: the last run completes", sslib.describe(p))
        T.check(ran == must, f"{label}: it runs exactly the {len(must)} stages not committed",
                f"expected {sorted(must)}\nran {sorted(ran)}")
        post = self.hashes()
        changed = [f"{k[0]}/{k[1]}" for k, h in pre.items() if post.get(k) != h]
        T.check(not changed, f"{label}: the {len(pre)} committed stages stay byte-identical", ", ".join(changed))
        bad = []
        for sid in self.zoo.ids:
            try:
                eq, det = sslib.arrays_equal(sslib.read_arrays(Zoo.container(self.d, sid), STORE), self.zoo.ref[sid])
            except Exception as e:  # noqa: BLE001
                eq, det = False, f"{type(e).__name__}: {e}"
            if not eq:
                bad.append(f"{sid}: {det}")
        T.check(not bad, f"{label}: every array of every container equals the reference", "\n".join(bad))
        left = sslib.leftovers(os.path.join(self.d, "out"))
        T.check(not left, f"{label}: no temporaries left", "\n".join(left))


def random_chains(zoo, n_chains, kills):
    """Kill times drawn across a full run: each kill at the next of sorted
    uniform positions in the run's duration, plus what a resumed run takes
    to get going again."""
    for c in range(n_chains):
        ch = Chain(zoo, f"random{c}")
        pos = sorted(RNG.uniform(0, zoo.seconds) for _ in range(kills))
        last = 0.0
        for i, t in enumerate(pos):
            delay = t - last + (zoo.resume_seconds if i else 0.0)
            last = t
            if not ch.remaining():
                break
            if not T.guard(f"random {c}.{i}", ch.timed, f"random {c}.{i} after {delay:.2f} s", delay):
                break
        T.guard(f"random {c}", ch.complete, f"random chain {c}")


PRE = ["runner.stage_start", "runner.before_commit", "hdf5.commit.before_close", "hdf5.commit.before_rename"]
POST = ["runner.after_commit", "hdf5.commit.stage_file_renamed", "hdf5.commit.index_renamed"]
TRAINING = {"siren_fuse", "siren_interplane", "denoise_train", "n2n_train", "cnn_motion"}


def named_chain(zoo):
    """For one instance of every stage type: a kill at its start or inside its
    commit (counted from where the resumed run starts), one in its progress or
    its checkpoint writes (it is then the first stage the run starts), one at
    or after its commit."""
    by_kind = {}
    for x in zoo.order:
        by_kind.setdefault(kind(zoo.stages, x[1]), []).append(x)
    targets = sorted((RNG.choice(v) for v in by_kind.values()), key=zoo.order.index)
    ch = Chain(zoo, "named")
    for sid, st in targets:
        label = f"named {sid}/{st}"
        rem = ch.remaining()
        if (sid, st) not in rem:
            continue
        k = rem.index((sid, st)) + 1
        pre = RNG.choice(PRE)
        if not T.guard(label, ch.crashpoint, label, f"{pre}:{k}"):
            return
        if ch.remaining()[:1] == [(sid, st)]:
            inside = [f"stage.progress:{RNG.randint(1, 3)}"]
            # a training killed after its last step resumes there: no checkpoint is written again
            if zoo.stages[st]["uses"] in TRAINING and pre == "runner.stage_start":
                inside = ["checkpoint.before_write:1", "checkpoint.after_write:1"]
            if not T.guard(label, ch.crashpoint, label, RNG.choice(inside)):
                return
        if ch.remaining()[:1] == [(sid, st)]:
            if not T.guard(label, ch.crashpoint, label, f"{RNG.choice(POST)}:1"):
                return
    T.guard("named", ch.complete, "named chain")


def cohort_chain(zoo):
    """The array-job flow with kills inside the cohort stages."""
    ch = Chain(zoo, "cohort")
    for i in range(len(IDS)):
        p = sslib.run(["run", ch.cfg, "--array-index", str(i)] + RUN)
        if not T.check(p.returncode == 0, f"cohort chain: array task {i}", sslib.describe(p)):
            return
    for point in ("stage.progress:5", "checkpoint.after_write:1", "runner.before_commit:1", "runner.after_commit:1",
                  "checkpoint.before_write:2", "hdf5.commit.index_renamed:1"):
        if not T.guard(f"cohort {point}", ch.crashpoint, "cohort chain --cohort", point, ["--cohort"]):
            return
    p = sslib.run(["run", ch.cfg, "--cohort"] + RUN)
    T.check(p.returncode == 0, "cohort chain: --cohort completes its cohort stages", sslib.describe(p))
    for i in range(len(IDS)):
        p = sslib.run(["run", ch.cfg, "--array-index", str(i)] + RUN)
        T.check(p.returncode == 0, f"cohort chain: second array task {i}", sslib.describe(p))
    for point in ("runner.stage_start:1", "hdf5.commit.before_rename:1"):
        if not T.guard(f"cohort {point}", ch.crashpoint, "cohort chain --cohort (summarize)", point, ["--cohort"]):
            return
    T.guard("cohort", ch.complete, "cohort chain")


def suite():
    zoo = Zoo(T.tmpdir("zoo"))
    kinds = {kind(zoo.stages, s) for s in zoo.stages}
    T.diag(f"reference: {len(zoo.order)} stages of {len(kinds)} kinds over {len(IDS)} samples in {zoo.seconds:.1f} s "
           f"(a resumed run starts in {zoo.resume_seconds:.2f} s)")
    named_chain(zoo)
    cohort_chain(zoo)
    random_chains(zoo, int(os.environ.get("SS_ZOO_CHAINS", "6")), int(os.environ.get("SS_ZOO_KILLS", "8")))
    T.check(zoo.kills >= 50, f"at least 50 kills ({zoo.kills})")
    T.check(kinds <= zoo.landed, f"kills landed inside every stage type ({len(zoo.landed & kinds)} of {len(kinds)})",
            f"missed: {sorted(kinds - zoo.landed)}")


T.guard("crash zoo", suite)
T.done()
