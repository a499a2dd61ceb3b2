#!/usr/bin/python3
"""`sirenstack submit` on a real single-node SLURM, in TAP.

scripts/slurm/local-cluster starts slurmctld, slurmd (and munged where none
answers) on this machine, in a folder of the test's own and on ports of its
own; every daemon it started is stopped by PID at the end, whatever happens.
A run over 4 samples with SIREN fits, a cohort denoiser (denoise_train,
scope: cohort) applied back to each sample, and a cohort summary is submitted:
an array, the cohort job, a second array, the second cohort job. The test
waits with a bounded loop and checks every job's exit, every stage's status,
the cohort table and that the outputs are identical to an uninterrupted run on
one thread outside SLURM (the tasks have one CPU each). Then a fresh submission
of the same run has one array task requeued mid-fit (`scontrol requeue`): the
task resumes from its checkpoint (SLURM_RESTART_COUNT 1, "resuming from the
checkpoint" in its log), the cohort jobs wait for it, and the outputs are
identical again. Also: squeue names each task RUN:SAMPLE; --dry-run submits
nothing.

Skips, with the reason, where SLURM is not installed or the test is not root.
"""
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import sslib  # noqa: E402

T = sslib.Tap()
ROOT = os.environ.get("SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
CLUSTER = os.path.join(ROOT, "scripts", "slurm", "local-cluster")
SAMPLES = [{"id": f"m{i}", "repeats": 2, "genotype": "wt" if i % 2 else "ko"} for i in range(1, 5)]
STAGES = {
    "raw": {"uses": "synth_smooth", "params": {"shape": [4, 48, 48], "repeats": 2}},
    "fit": {"uses": "siren_fuse", "inputs": {"repeats": "raw.repeats"},
            "params": {"width": 32, "hidden_layers": 2, "steps": 3000, "batch": 8192}},
    "unet": {"uses": "denoise_train", "scope": "cohort", "inputs": {"input": "fit.fused", "target": "raw.truth"},
             "params": {"depth": 2, "width": 8, "patch": 32, "batch": 4, "steps": 30, "lr": 0.001}},
    "den": {"uses": "denoise_apply", "inputs": {"image": "fit.fused", "model": "unet.weights"}},
    "scores": {"uses": "metrics", "inputs": {"reference": "raw.truth", "methods": ["fit.fused", "den.denoised"]}},
    "table": {"uses": "summarize", "inputs": {"tables": "scores.summary"}},
}
SLURM = {"cpus": 1, "memory": "1G", "time": "00:20:00"}


def sh(args, env=None, timeout=60):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def config(tmp, out):
    path = os.path.join(tmp, f"{out}.yaml")
    sslib.make_config(path, STAGES, samples=SAMPLES, output=out, name="study",
                      run_extra={"checkpoint": {"every_steps": 100}, "progress_interval": 0.2})
    with open(path, "a") as f:
        f.write("slurm: " + json.dumps(SLURM) + "\n")
    return path


def squeue(env):
    p = sh(["squeue", "-h", "-o", "%i %j %T"], env=env)
    return [line.split() for line in p.stdout.splitlines() if line.strip()]


def wait_empty(env, limit):
    names = set()
    t0 = time.time()
    while time.time() - t0 < limit:
        q = squeue(env)
        names |= {row[1] for row in q if len(row) > 1 and row[2] == "RUNNING"}
        if not q:
            return True, names
        time.sleep(0.5)
    return False, names


def jobcomp(cdir):
    """JobId -> {Name, JobState, ExitCode, ...} from jobcomp/filetxt (the last record of each)."""
    out = {}
    path = os.path.join(cdir, "jobcomp.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                rec = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
                out[rec.get("JobId")] = rec
    return out


def status_all_done(cfg):
    p = sslib.run(["status", cfg])
    rows = [l.split()[:3] for l in p.stdout.splitlines()[1:] if l.strip()]
    return p.returncode == 0 and rows and all(r[2] == "done" for r in rows), p.stdout


def outputs_equal(out_a, out_b):
    why = ""
    for sid in [s["id"] for s in SAMPLES] + ["_cohort"]:
        a = sslib.read_arrays(sslib.container_path(out_a, sid, "hdf5"), "hdf5")
        b = sslib.read_arrays(sslib.container_path(out_b, sid, "hdf5"), "hdf5")
        eq, detail = sslib.arrays_equal(a, b)
        if not eq or not a:
            why += f"{sid}: {detail or 'no arrays'}\n"
    return not why, why


def submit(cfg, env):
    p = sslib.run(["submit", cfg], env=env)
    ids = re.findall(r"^submitted job (\d+):", p.stdout, re.M)
    return p, ids


def main():
    if os.geteuid() != 0:
        T.skip("SLURM integration", "the local cluster's daemons need root")
        return
    missing = [p for p in ("slurmctld", "slurmd", "munged", "sbatch") if not shutil.which(p)]
    if missing:
        T.skip("SLURM integration", f"not installed: {', '.join(missing)} (scripts/setup-deps test installs them)")
        return
    tmp = T.tmpdir("slurm")
    cdir = os.path.join(tmp, "cluster")
    env = dict(os.environ, SS_SLURM_PORT=str(random.randrange(20000, 40000, 2)),
               SLURM_CONF=os.path.join(cdir, "slurm.conf"))
    p = sh([CLUSTER, "start", cdir], env=env, timeout=120)
    try:
        if p.returncode != 0:
            T.check(False, "the local cluster starts", sslib.describe(p) + "\n" + "".join(
                open(f).read()[-2000:] for f in glob.glob(os.path.join(cdir, "*.log"))))
            return
        T.check(True, "the local cluster starts (slurmctld, slurmd)")
        run_tests(tmp, cdir, env)
    finally:
        pids = []
        for f in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            path = os.path.join(cdir, f)
            if os.path.exists(path):
                pids.append(int(open(path).read().strip() or 0))
        q = sh([CLUSTER, "stop", cdir], env=env, timeout=60)

        def alive(pid):
            try:
                with open(f"/proc/{pid}/status") as s:
                    return not re.search(r"^State:\s+Z", s.read(), re.M)
            except OSError:
                return False
        left = [pid for pid in pids if pid and alive(pid)]
        T.check(q.returncode == 0 and not left, "every daemon the test started is stopped",
                sslib.describe(q) + f"\nstill running: {left}")


def run_tests(tmp, cdir, env):
    ref_cfg = config(tmp, "ref")
    p = sslib.run(["run", ref_cfg, "--threads", "1", "-q"], timeout=900)
    T.check(p.returncode == 0, "the uninterrupted reference run (one thread, no SLURM)", sslib.describe(p))
    ref_out = os.path.join(tmp, "ref")

    dry_cfg = config(tmp, "dry")
    p = sslib.run(["submit", dry_cfg, "--dry-run"], env=env)
    T.check(p.returncode == 0 and p.stdout.count("#!/usr/bin/env bash") == 4 and "--cohort" in p.stdout
            and "--array=0-3" in p.stdout and not squeue(env), "submit --dry-run prints 4 job scripts, submits nothing",
            sslib.describe(p))

    cfg = config(tmp, "out")
    p, ids = submit(cfg, env)
    T.check(p.returncode == 0 and len(ids) == 4, "submit: 2 arrays and 2 cohort jobs, each after the one before",
            sslib.describe(p))
    done, names = wait_empty(env, 900)
    T.check(done, "all jobs finish (bounded wait)", str(squeue(env)))
    jc = jobcomp(cdir)
    # the cohort jobs may run between two polls of squeue; SLURM's own record of names is jobcomp
    recorded = {r.get("Name") for r in jc.values()}
    T.check({f"study:{s['id']}" for s in SAMPLES} <= names and "study:_cohort" in names | recorded,
            "squeue shows each task as RUN:SAMPLE, and the cohort job is named RUN:_cohort",
            f"squeue: {sorted(names)}; jobcomp: {sorted(n for n in recorded if n)}")
    recs = [r for r in jc.values() if r.get("ArrayJobId") in ids[0::2] or r.get("JobId") in ids]
    ok = len(recs) == 2 * len(SAMPLES) + 2 and all(r.get("JobState") == "COMPLETED" and r.get("ExitCode") == "0:0"
                                                   for r in recs)
    T.check(ok, "every job and array task completed with exit 0 (jobcomp)",
            "\n".join(f"{r.get('JobId')} {r.get('Name')} {r.get('JobState')} {r.get('ExitCode')}" for r in recs))
    good, text = status_all_done(cfg)
    T.check(good, "status: every stage of every sample and of the cohort is done", text)
    out = os.path.join(tmp, "out")
    t = sslib.read_arrays(os.path.join(out, "_cohort.h5"), "hdf5").get("table/summary")
    T.check(t is not None and sorted({v.decode() for v in t["sample"]}) == [s["id"] for s in SAMPLES],
            "the cohort table has a row set for every sample", str(t))
    eq, why = outputs_equal(out, ref_out)
    T.check(eq, "the outputs are identical to the uninterrupted run", why)

    # requeue one task mid-fit
    cfg2 = config(tmp, "rq")
    p, ids = submit(cfg2, env)
    T.check(p.returncode == 0 and len(ids) == 4, "second submission", sslib.describe(p))
    if len(ids) != 4:
        return
    logs = os.path.join(tmp, "rq", "_slurm", "logs")
    events = os.path.join(logs, f"study-{ids[0]}_1.jsonl")
    t0, mid = time.time(), False
    while time.time() - t0 < 300 and not mid:
        if os.path.exists(events):
            with open(events) as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if e.get("event") == "progress" and e.get("label") == "m2/fit" and e.get("done", 0) >= 300:
                        mid = True
        time.sleep(0.2)
    T.check(mid, "task 1 (sample m2) is fitting, past its first checkpoints")
    q = sh(["scontrol", "requeue", f"{ids[0]}_1"], env=env)
    T.check(q.returncode == 0, "scontrol requeue of that task", sslib.describe(q))
    done, _ = wait_empty(env, 900)
    T.check(done, "after the requeue all jobs finish (bounded wait)", str(squeue(env)))
    log = "".join(open(f).read() for f in glob.glob(os.path.join(logs, f"study-{ids[0]}_1.out")))
    # the kill may come before sirenstack's own "interrupted" line reaches the log; the
    # resume from a checkpoint past step 0 on the second attempt is the proof
    resumed = re.search(r"attempt 2.*resuming from the checkpoint at step ([1-9]\d*)", log, re.S)
    T.check(resumed is not None and "m2/fit: done" in log,
            "the requeued task stopped at a checkpoint and resumed from it", log[-3000:])
    restarts = [r for r in jobcomp(cdir).values() if r.get("ArrayJobId") == ids[0] and r.get("ArrayTaskId") == "1"]
    T.check(restarts and restarts[-1].get("JobState") == "COMPLETED", "the requeued task completed",
            str(restarts))
    good, text = status_all_done(cfg2)
    T.check(good, "status: everything done after the requeue", text)
    eq, why = outputs_equal(os.path.join(tmp, "rq"), ref_out)
    T.check(eq, "the outputs are identical to the uninterrupted run after the requeue", why)
    T.check(not sslib.leftovers(os.path.join(tmp, "rq")), "no temporaries left",
            "\n".join(sslib.leftovers(os.path.join(tmp, "rq"))))


main()
T.done()
