#!/usr/bin/python3
"""`sirenstack submit` against a stand-in sbatch (a script that records its
arguments and answers with job ids), in TAP: the job chain and its
dependencies, the scripts made from the config's slurm section, failures of
sbatch, validation of the slurm section and unsafe paths. The real cluster is
tests/cluster/slurm.py."""
import os
import re
import stat
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import sslib  # noqa: E402

T = sslib.Tap()
SAMPLES = [{"id": f"s{i}", "repeats": 2} for i in range(3)]
BASE = {
    "raw": {"uses": "synth_smooth", "params": {"shape": [4, 32, 32], "repeats": 2}},
    "mean": {"uses": "fuse_mean", "inputs": {"repeats": "raw.repeats"}},
}
COHORT = dict(BASE, **{
    "train": {"uses": "denoise_train", "scope": "cohort", "inputs": {"input": "mean.fused", "target": "raw.truth"},
              "params": {"depth": 2, "width": 8, "patch": 16, "batch": 2, "steps": 5}},
    "den": {"uses": "denoise_apply", "inputs": {"image": "mean.fused", "model": "train.weights"}},
})


def fake_sbatch(tmp, fail_at=0):
    """A stand-in that appends its arguments to calls.txt and prints 100, 101, ...;
    the fail_at-th call (1-based) fails."""
    path = os.path.join(tmp, f"sbatch-{fail_at}")
    with open(path, "w") as f:
        f.write(f"""#!/bin/sh
n=$(wc -l < "{tmp}/calls.txt" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$*" >> "{tmp}/calls.txt"
if [ "$n" = "{fail_at}" ]; then echo "sbatch: error: Batch job submission failed: Invalid account" >&2; exit 1; fi
echo $((99 + n))
""")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def calls(tmp):
    p = os.path.join(tmp, "calls.txt")
    lines = open(p).read().splitlines() if os.path.exists(p) else []
    os.path.exists(p) and os.unlink(p)
    return lines


def config(tmp, stages, slurm=None, name="c"):
    path = sslib.make_config(os.path.join(tmp, f"{name}.yaml"), stages, samples=SAMPLES, name="study")
    if slurm is not None:
        import yaml
        with open(path) as f:
            doc = yaml.safe_load(f)
        doc["slurm"] = slurm
        with open(path, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
    return path


tmp = T.tmpdir("submit")
sb = fake_sbatch(tmp)

cfg = config(tmp, COHORT, {"cpus": 2, "memory": "3G", "time": "01:00:00", "partition": "short", "account": "lab",
                           "gpus": 1, "max_parallel": 2, "cohort_cpus": 6, "cohort_memory": "20G",
                           "sbatch": ["--qos=long"], "setup": ["module load hdf5"]})
p = sslib.run(["submit", cfg, "--sbatch", sb])
c = calls(tmp)
ids = re.findall(r"^submitted job (\d+):", p.stdout, re.M)
T.check(p.returncode == 0 and ids == ["100", "101", "102"], "a cohort config: array, cohort job, array", sslib.describe(p))
deps = [re.search(r"--dependency=(\S+)", x) for x in c]
T.check(len(c) == 3 and deps[0] is None and deps[1] and deps[1].group(1) == "afterok:100" and deps[2]
        and deps[2].group(1) == "afterok:101", "each job depends on the one before (afterok)", "\n".join(c))
scripts = [x.split()[-1] for x in c]
texts = [open(s).read() for s in scripts if os.path.exists(s)]
T.check(len(texts) == 3 and all(os.path.dirname(s).endswith("/out/_slurm") for s in scripts),
        "the scripts are in OUTPUT/_slurm", "\n".join(scripts))
if len(texts) == 3:
    a, co = texts[0], texts[1]
    want_a = ["#SBATCH --array=0-2%2", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=3G", "#SBATCH --time=01:00:00",
              "#SBATCH --partition=short", "#SBATCH --account=lab", "#SBATCH --gres=gpu:1", "#SBATCH --qos=long",
              "#SBATCH --requeue", "#SBATCH --signal=B:USR1@120", "module load hdf5", "--array-index \"$task\"",
              "samples=(s0 s1 s2)", 'JobName="study:${samples[$task]}"']
    T.check(all(w in a for w in want_a), "the array script carries the slurm section",
            "\n".join(w for w in want_a if w not in a))
    want_c = ["#SBATCH --cpus-per-task=6", "#SBATCH --mem=20G", "--cohort", "#SBATCH --job-name=study:_cohort"]
    T.check(all(w in co for w in want_c) and "--array" not in co, "the cohort script: its own resources, --cohort",
            "\n".join(w for w in want_c if w not in co))
    sh = sslib.subprocess.run(["bash", "-n", scripts[0]], capture_output=True, text=True)
    T.check(sh.returncode == 0, "the script is valid bash (bash -n)", sh.stderr)

cfg = config(tmp, BASE, {"cpus": 1}, name="plain")
p = sslib.run(["submit", cfg, "--sbatch", sb])
c = calls(tmp)
T.check(p.returncode == 0 and len(c) == 1 and "--dependency" not in c[0],
        "a config without cohort stages: one array job", sslib.describe(p))

p = sslib.run(["submit", cfg, "--dry-run", "--sbatch", sb])
T.check(p.returncode == 0 and not calls(tmp) and "#!/usr/bin/env bash" in p.stdout,
        "--dry-run prints the script and runs no sbatch", sslib.describe(p))

sb2 = fake_sbatch(tmp, fail_at=2)
cfg = config(tmp, COHORT, {}, name="fail")
p = sslib.run(["submit", cfg, "--sbatch", sb2])
calls(tmp)
T.check(p.returncode == 4 and "Invalid account" in p.stderr and "already submitted: 100" in p.stderr,
        "sbatch failing: exit 4 with its message and the jobs already submitted", sslib.describe(p))

p = sslib.run(["submit", cfg, "--sbatch", os.path.join(tmp, "no-such-sbatch")])
T.check(p.returncode == 4 and "cannot run" in p.stderr, "a missing sbatch: exit 4", sslib.describe(p))

cfg = config(tmp, BASE, {"cpus": 0, "colour": "red"}, name="bad")
p = sslib.run(["validate", cfg])
T.check(p.returncode == 2 and "slurm.cpus" in p.stderr and "slurm" in p.stderr and "colour" in p.stderr,
        "a bad slurm section is refused by validate (exit 2)", sslib.describe(p))

odd = os.path.join(tmp, "with space")
os.makedirs(odd)
cfg = config(odd, BASE, {}, name="odd")
p = sslib.run(["submit", cfg, "--sbatch", sb])
T.check(p.returncode == 2 and "cannot go into a job script" in p.stderr and not calls(tmp),
        "a path with a space is refused before anything is submitted", sslib.describe(p))

p = sslib.run(["submit"])
T.check(p.returncode == 64, "submit without a config: usage error", sslib.describe(p))
T.done()
