#!/usr/bin/python3
"""Faults and concurrency, in TAP, for the hdf5 and zarr stores.

Locks. While a `run` is fitting (it is stopped with SIGSTOP once its fit is
marked running, so nothing depends on timing), a second `run` of the same
sample exits 4 with one error line naming the holder's pid and host; the lock
file still names the holder; `status` shows the fit running with that pid; no
committed stage changes; the first run, continued, completes with outputs
identical to an uninterrupted run. The same for the cohort container: two
`run --cohort` at once while a cohort denoise_train trains. A stale lock is
taken over: after a run is killed with SIGKILL mid-fit (its lock file naming
the dead pid), and where the lock file names a process that never held it,
the next run completes and the lock file then names the new process.
Where flock fails (a stand-in preloaded, failing with ENOLCK as NFS without
a lock manager does), a run exits 4 saying it cannot lock and why, not that
another run holds the container, and status shows no stage running.
sirenstack takes none of HDF5's own file locks: it imports an input and
rewrites a container whose files another process holds flock'ed (h5py,
locking, cannot open them then).

Disk full, on a tmpfs small enough (mount -t tmpfs -o size=N): a run whose
last stage does not fit exits 4 with one error line saying there is no space;
the stages committed before are byte-identical and `verify` finds them intact;
nothing of the failed stage is committed or left behind; after `mount -o
remount,size=BIGGER` a rerun computes only that stage, with outputs identical
to a run elsewhere.

Inputs are read-only: import_hdf5 and import_tiff inputs and the manifest on a
tmpfs remounted read-only, and as files chmod 0444 in a folder chmod 0555:
the runs succeed (outputs elsewhere), and every input file's sha256 and the
folder listing (names, sizes, modes, mtimes) are what they were.

The mounts need root; without it (or where mount fails) those points are
skipped with the reason. Every mount is unmounted whatever happens.
"""
import fcntl
import os
import signal
import socket
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
HOST = socket.gethostname()
RUN = ["--threads", "2", "-q"]


def popen_run(cfg, extra=()):
    env = dict(os.environ)
    env.pop("SIRENSTACK_CRASHPOINT", None)
    return subprocess.Popen([sslib.BIN, "run", cfg] + RUN + list(extra), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_file(proc, path):
    """Polls until path exists (True) or proc has ended (False)."""
    while not os.path.exists(path):
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return True


def stop_inside(label, proc, marker, what):
    """Waits for the marker file, then stops proc (SIGSTOP): True; or the
    point fails when proc ends first."""
    if wait_for_file(proc, marker):
        proc.send_signal(signal.SIGSTOP)
        return True
    T.check(False, f"{label}: {what}", finish(proc)[1])
    return False


def finish(proc):
    out, err = proc.communicate()
    return proc.returncode, f"exit {proc.returncode}\nstdout: {out[-1500:]}\nstderr: {err[-1500:]}"


def error_lines(p):
    return [ln for ln in p.stderr.splitlines() if ln.strip()]


def read_lock(cont, store):
    with open(os.path.join(sslib.workdir(cont, store), "lock")) as f:
        return f.read()


def status_line(cfg, sample, stage, extra=(), env=None):
    p = sslib.run(["status", cfg] + list(extra), env=env)
    for ln in p.stdout.splitlines()[1:]:
        if ln.split()[:2] == [sample, stage]:
            return ln, p
    return "", p


def same_as(label, cont, store, ref):
    try:
        eq, det = sslib.arrays_equal(sslib.read_arrays(cont, store), ref)
    except Exception as e:  # noqa: BLE001
        eq, det = False, f"{type(e).__name__}: {e}"
    T.check(eq and len(ref) > 0, f"{label}: outputs identical to an uninterrupted run", det)


def intact(label, cont, out):
    p = sslib.run(["verify", cont])
    T.check(p.returncode == 0, f"{label}: verify finds the container intact", sslib.describe(p))
    left = sslib.leftovers(out)
    T.check(not left, f"{label}: no temporaries left", "\n".join(left))


def reference(root, name, stages, store, samples=None, extra=()):
    """An uninterrupted run in its own folder: {sample id: arrays}."""
    d = os.path.join(root, name)
    os.makedirs(d)
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), stages, store=store, samples=samples)
    p = sslib.run(["run", cfg] + RUN + list(extra))
    if p.returncode != 0:
        raise RuntimeError("reference run failed\n" + sslib.describe(p))
    ids = [s["id"] for s in samples] if samples else ["s1"]
    return {i: sslib.read_arrays(sslib.container_path(os.path.join(d, "out"), i, store), store)
            for i in ids + (["_cohort"] if any(v.get("scope") == "cohort" for v in stages.values()) else [])}


# ---- locks -------------------------------------------------------------------

def fit_stages(steps=1500):
    st = sslib.synth_stages(shape=(4, 32, 32), repeats=2, fuse=False)
    st["fit"] = {"uses": "siren_fuse", "inputs": {"repeats": "norm.data"},
                 "params": {"width": 16, "hidden_layers": 1, "steps": steps}}
    return st


def second_run_refused(label, cfg, cont, store, holder, stage, sample, extra=()):
    """With the holder stopped inside `stage`: a second run exits 4 naming it,
    changes nothing, and status shows the stage running with its pid."""
    want = f"pid {holder.pid} on {HOST}"
    lock = read_lock(cont, store)
    T.check(lock == want + "\n", f"{label}: the lock file names the running process", repr(lock))
    before = sslib.stage_hashes(cont, store)
    p = sslib.run(["run", cfg] + RUN + list(extra))
    lines = error_lines(p)
    T.check(p.returncode == 4, f"{label}: a second run exits 4", sslib.describe(p))
    T.check(len(lines) == 1 and lines[0].startswith("error:") and want in lines[0] and "in use" in lines[0]
            and os.path.basename(cont) in lines[0],
            f"{label}: its one error line names the container and the holder ({want})", p.stderr)
    T.check(read_lock(cont, store) == lock and sslib.stage_hashes(cont, store) == before,
            f"{label}: the refused run changes neither the lock file nor a committed stage")
    ln, ps = status_line(cfg, sample, stage, ["--cohort"] if sample == "_cohort" else [])
    T.check(ps.returncode == 0 and ln.split()[2:3] == ["running"] and want in ln,
            f"{label}: status shows {stage} running with the holder's pid and host", sslib.describe(ps))


def sample_lock(store, root):
    ref = reference(root, f"ref-{store}", fit_stages(), store)["s1"]
    d = os.path.join(root, f"lock-{store}")
    os.makedirs(d)
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), fit_stages(), store=store)
    out = os.path.join(d, "out")
    cont = sslib.container_path(out, "s1", store)
    label = f"{store}: lock"
    first = popen_run(cfg)
    marker = os.path.join(sslib.workdir(cont, store), "status", "fit.running")
    if not stop_inside(label, first, marker, "the first run reaches its fit"):
        return
    try:
        second_run_refused(label, cfg, cont, store, first, "fit", "s1")
    finally:
        first.send_signal(signal.SIGCONT)
    rc, desc = finish(first)
    T.check(rc == 0, f"{label}: the first run, continued, completes", desc)
    same_as(label, cont, store, ref)
    intact(label, cont, out)
    stale_locks(store, cfg, cont, out, ref)


def stale_locks(store, cfg, cont, out, ref):
    label = f"{store}: stale lock"
    # a run killed mid-fit leaves its pid in the lock file, and no flock
    run = popen_run(cfg, ["--force", "fit"])
    marker = os.path.join(sslib.workdir(cont, store), "status", "fit.running")
    if not stop_inside(label, run, marker, "the run to kill reaches its fit"):
        return
    run.send_signal(signal.SIGKILL)
    rc, desc = finish(run)
    lock = read_lock(cont, store)
    T.check(rc == -signal.SIGKILL and lock == f"pid {run.pid} on {HOST}\n",
            f"{label}: killed by SIGKILL mid-fit, the lock file names the dead process", f"{desc}\nlock {lock!r}")
    ln, _ = status_line(cfg, "s1", "fit")
    T.check("running" not in ln.split()[2:3], f"{label}: status does not show the dead run's fit running", ln)
    for how in ("after SIGKILL", "naming a process that never held it"):
        if how != "after SIGKILL":
            with open(os.path.join(sslib.workdir(cont, store), "lock"), "w") as f:
                f.write("pid 4000000 on elsewhere.example\n")
        nxt = popen_run(cfg, [] if how == "after SIGKILL" else ["--force", "fit"])
        rc, desc = finish(nxt)
        T.check(rc == 0, f"{label} ({how}): the next run takes it over and completes", desc)
        lock = read_lock(cont, store)
        T.check(lock == f"pid {nxt.pid} on {HOST}\n", f"{label} ({how}): the lock file then names the new process",
                f"lock {lock!r}, new pid {nxt.pid}")
        T.check(sslib.running_stages(cont, store) is None, f"{label} ({how}): no stage left marked running",
                str(sslib.running_stages(cont, store)))
        same_as(f"{label} ({how})", cont, store, ref)
    intact(label, cont, out)


COHORT_SAMPLES = [{"id": "a", "repeats": 2}, {"id": "b", "repeats": 2}]


def cohort_stages():
    return {
        "raw": {"uses": "synth_smooth", "params": {"shape": [4, 32, 32], "repeats": 2}},
        "mean": {"uses": "fuse_mean", "inputs": {"repeats": "raw.repeats"}},
        "train": {"uses": "denoise_train", "scope": "cohort", "inputs": {"input": "mean.fused", "target": "raw.truth"},
                  "params": {"depth": 2, "width": 8, "patch": 16, "batch": 4, "steps": 300}},
    }


def cohort_lock(store, root):
    ref = reference(root, f"ref-cohort-{store}", cohort_stages(), store, COHORT_SAMPLES)["_cohort"]
    d = os.path.join(root, f"lock-cohort-{store}")
    os.makedirs(d)
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), cohort_stages(), store=store, samples=COHORT_SAMPLES)
    out = os.path.join(d, "out")
    cont = sslib.container_path(out, "_cohort", store)
    label = f"{store}: cohort lock"
    for i in range(len(COHORT_SAMPLES)):
        p = sslib.run(["run", cfg, "--array-index", str(i)] + RUN)
        if not T.check(p.returncode == 0, f"{label}: array task {i}", sslib.describe(p)):
            return
    marker = os.path.join(sslib.workdir(cont, store), "status", "train.running")
    first = popen_run(cfg, ["--cohort"])
    if not stop_inside(label, first, marker, "the first --cohort run reaches its training"):
        return
    try:
        second_run_refused(label, cfg, cont, store, first, "train", "_cohort", ["--cohort"])
    finally:
        first.send_signal(signal.SIGCONT)
    rc, desc = finish(first)
    T.check(rc == 0, f"{label}: the first --cohort run, continued, completes", desc)
    same_as(label, cont, store, ref)
    # killed mid-training: the next --cohort run takes the lock over
    run = popen_run(cfg, ["--cohort", "--force", "train"])
    if stop_inside(label, run, marker, "the --cohort run to kill reaches its training"):
        run.send_signal(signal.SIGKILL)
        finish(run)
        T.check(read_lock(cont, store) == f"pid {run.pid} on {HOST}\n",
                f"{label}: after SIGKILL the lock file names the dead process", read_lock(cont, store))
        nxt = popen_run(cfg, ["--cohort"])
        rc, desc = finish(nxt)
        T.check(rc == 0 and read_lock(cont, store) == f"pid {nxt.pid} on {HOST}\n",
                f"{label}: the next --cohort run takes the stale lock over, completes and names itself", desc)
        same_as(f"{label} (after the takeover)", cont, store, ref)
    intact(label, cont, out)


FLOCK_ENOLCK = """#include <errno.h>
int flock(int fd, int op) { (void)fd; (void)op; errno = ENOLCK; return -1; }
"""


def locks_unsupported(root):
    """Where flock fails (ENOLCK: an NFS mount without a lock manager), a run
    says it cannot lock, with the reason, rather than that another run holds
    the container; status does not take a killed run's stage for running.
    flock is made to fail by a preloaded stand-in, compiled here."""
    d = os.path.join(root, "enolck")
    os.makedirs(d)
    src, so = os.path.join(d, "flock.c"), os.path.join(d, "flock.so")
    with open(src, "w") as f:
        f.write(FLOCK_ENOLCK)
    try:
        p = subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-o", so, src], capture_output=True,
                           text=True)
        why = None if p.returncode == 0 else f"cannot compile the flock stand-in: {p.stderr.strip()}"
    except OSError as e:
        why = f"no C compiler to build the flock stand-in: {e}"
    if why:
        T.skip("file system without locks", why)
        return
    env = {"LD_PRELOAD": so, "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")}
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), fit_stages(steps=100))
    cont = sslib.container_path(os.path.join(d, "out"), "s1", "hdf5")
    p = sslib.run(["run", cfg] + RUN, env={"SIRENSTACK_CRASHPOINT": "runner.stage_start:3"})
    T.check(p.returncode == -signal.SIGKILL and sslib.running_stages(cont, "hdf5") == "fit",
            "no locks: a run killed inside its fit leaves its marker", sslib.describe(p))
    p = sslib.run(["run", cfg] + RUN, env=env)
    lines = error_lines(p)
    lock = os.path.join(sslib.workdir(cont, "hdf5"), "lock")
    T.check(p.returncode == 4 and len(lines) == 1 and lines[0].startswith("error:") and lock in lines[0]
            and "No locks available" in lines[0] and "in use" not in lines[0],
            "no locks: run exits 4 saying it cannot lock, and why (not that another run holds it)", sslib.describe(p))
    ln, ps = status_line(cfg, "s1", "fit", env=env)
    ln = ln if ps.returncode == 0 else sslib.describe(ps)
    T.check(ps.returncode == 0 and ln.split()[2:3] != ["running"], "no locks: status does not show the killed fit running",
            ln)
    p = sslib.run(["run", cfg] + RUN)
    T.check(p.returncode == 0, "no locks: with locks again the run completes", sslib.describe(p))


def hdf5_locks_off(root):
    """sirenstack opens HDF5 files with HDF5's own file locks off: a run
    imports a file and reuses a container that another process holds an
    exclusive flock on (as an HDF5 writer does), where h5py, locking, fails."""
    d = os.path.join(root, "h5locks")
    os.makedirs(d)
    src = os.path.join(d, "in.h5")
    with h5py.File(src, "w") as f:
        f["raw"] = np.random.default_rng(3).poisson(100, (2, 4, 32, 32)).astype(np.uint16)
    st = sslib.import_stages(file=src)
    cfg = sslib.make_config(os.path.join(d, "c.yaml"), st)
    p = sslib.run(["run", cfg] + RUN)
    if not T.check(p.returncode == 0, "HDF5 locks: the first run", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", "hdf5")
    held = [src, cont] + sorted(sslib.h5_stage_files(cont).values())
    fds = [os.open(f, os.O_RDWR) for f in held]
    try:
        for fd in fds:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            h5py.File(src, "r", locking=True).close()
            refused = ""
        except OSError as e:
            refused = str(e)
        T.check("lock" in refused, "HDF5 locks: with the files flock'ed, h5py (locking) cannot open the input",
                refused or "h5py opened it")
        p, ev, ran, reused = sslib.run_logged(cfg, d, extra=["--force", "raw"])
        T.check(p.returncode == 0 and sslib.stages_ran(ran) == {"raw", "norm", "mean", "median"},
                "HDF5 locks: sirenstack imports the flock'ed input and rewrites the flock'ed container",
                sslib.describe(p))
        for cmd in (["status", cfg], ["inspect", cont], ["verify", cont]):
            p = sslib.run(cmd)
            T.check(p.returncode == 0, f"HDF5 locks: {cmd[0]} reads the flock'ed container", sslib.describe(p))
    finally:
        for fd in fds:
            os.close(fd)


# ---- mounts --------------------------------------------------------------------

def mount(args):
    """None when `mount args` succeeded, else why not."""
    if os.geteuid() != 0:
        return "not root: mounting a tmpfs needs root"
    try:
        p = subprocess.run(["mount"] + args, capture_output=True, text=True)
    except OSError as e:
        return f"mount cannot run: {e}"
    return None if p.returncode == 0 else f"mount {' '.join(args)} failed: {p.stderr.strip()}"


def unmount(path):
    if os.path.ismount(path):
        p = subprocess.run(["umount", path], capture_output=True, text=True)
        T.check(p.returncode == 0 and not os.path.ismount(path), f"{path} unmounted", p.stderr)


def usage(path):
    """Bytes a tree takes on disk (allocated blocks, as du counts them)."""
    total = 0
    for r, dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(r, name)).st_blocks * 512
    return total


# ---- disk full -----------------------------------------------------------------

def full_stages(with_big):
    st = sslib.synth_stages(shape=(8, 128, 128), repeats=4)
    if with_big:
        st["big"] = {"uses": "crop", "inputs": {"stack": "norm.data"}}
    return st


def disk_full(store, root):
    label = f"{store}: disk full"
    # sizes on a real disk: the tmpfs holds everything but half of the last stage
    refdir = os.path.join(root, f"full-ref-{store}")
    os.makedirs(refdir)
    rcfg = sslib.make_config(os.path.join(refdir, "c.yaml"), full_stages(True), store=store)
    p = sslib.run(["run", rcfg] + RUN)
    if not T.check(p.returncode == 0, f"{label}: the reference run", sslib.describe(p)):
        return
    rcont = sslib.container_path(os.path.join(refdir, "out"), "s1", store)
    ref = sslib.read_arrays(rcont, store)
    big = sslib.zarr_stage_dirs(rcont)["big"] if store == "zarr" else sslib.h5_stage_files(rcont)["big"]
    big_bytes = usage(big) if os.path.isdir(big) else os.lstat(big).st_blocks * 512
    size = usage(os.path.join(refdir, "out")) - big_bytes // 2
    mnt = os.path.join(root, f"full-{store}")
    os.makedirs(mnt)
    why = mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt])
    if why:
        T.skip(f"{label}: on a small tmpfs", why)
        return
    try:
        disk_full_on(label, store, root, mnt, size, big_bytes, ref)
    finally:
        unmount(mnt)


def disk_full_on(label, store, root, mnt, size, big_bytes, ref):
    T.diag(f"{label}: tmpfs of {size} bytes; the last stage needs {big_bytes}")
    cfg = os.path.join(root, f"full-{store}.yaml")
    out = os.path.join(mnt, "out")
    cont = sslib.container_path(out, "s1", store)
    sslib.make_config(cfg, full_stages(False), store=store, output=out)
    p = sslib.run(["run", cfg] + RUN)
    if not T.check(p.returncode == 0, f"{label}: the first stages fit and commit", sslib.describe(p)):
        return
    before = sslib.stage_hashes(cont, store)
    sslib.make_config(cfg, full_stages(True), store=store, output=out)
    p = sslib.run(["run", cfg] + RUN)
    lines = error_lines(p)
    T.check(p.returncode == 4, f"{label}: the stage that does not fit fails with exit 4", sslib.describe(p))
    T.check(len(lines) == 1 and lines[0].startswith("error:") and "s1/big" in lines[0]
            and "no space" in lines[0].lower(),
            f"{label}: one error line naming the stage and saying there is no space", p.stderr)
    T.check(sslib.stage_hashes(cont, store) == before and len(before) == 4,
            f"{label}: the stages committed before are byte-identical", sorted(before))
    p2, js = sslib.inspect_json(cont)
    T.check(isinstance(js, dict) and set(js) == set(before), f"{label}: no partial commit (inspect lists {sorted(before)})",
            sslib.describe(p2))
    intact(label, cont, out)
    ln, _ = status_line(cfg, "s1", "big")
    T.check(ln.split()[2:3] == ["failed"] and "no space" in ln.lower(), f"{label}: status shows big failed, no space", ln)
    why = mount(["-o", f"remount,size={size * 2 + big_bytes}", mnt])
    if not T.check(why is None, f"{label}: remount the tmpfs bigger", why or ""):
        return
    p, ev, ran, reused = sslib.run_logged(cfg, root)
    T.check(p.returncode == 0 and sslib.stages_ran(ran) == {"big"},
            f"{label}: with room again the rerun computes only the failed stage", sslib.describe(p) + f"\nran {sorted(ran)}")
    after = sslib.stage_hashes(cont, store)
    T.check(all(after.get(s) == h for s, h in before.items()), f"{label}: ... and keeps the committed stages byte-identical")
    same_as(label, cont, store, ref)
    intact(f"{label} (after the rerun)", cont, out)


# ---- inputs read-only ------------------------------------------------------------

def make_inputs(d):
    """Two samples, each an HDF5 file and a TIFF, and a manifest listing them."""
    import tifffile
    rows = ["id\tinput\ttiff\trepeats\tvoxel_size"]
    for i, sid in enumerate(("a", "b")):
        data = np.random.default_rng(i).poisson(100, (2, 4, 32, 32)).astype(np.uint16)
        with h5py.File(os.path.join(d, f"{sid}.h5"), "w") as f:
            f["raw"] = data
        tifffile.imwrite(os.path.join(d, f"{sid}.tif"), data.reshape(-1, 32, 32))
        rows.append(f"{sid}\t{sid}.h5\t{os.path.join(d, sid + '.tif')}\t2\t1 0.1 0.1")
    with open(os.path.join(d, "samples.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")


def import_stages():
    return {
        "h5": {"uses": "import_hdf5", "params": {"dataset": "/raw", "axes": "rzyx"}},
        "tif": {"uses": "import_tiff", "params": {"file": "{tiff}", "repeats_layout": "blocked"}},
        "mean": {"uses": "fuse_mean", "inputs": {"repeats": "h5.raw"}},
        "median": {"uses": "fuse_median", "inputs": {"repeats": "tif.raw"}},
    }


def snapshot(d):
    """sha256 of every file, and every entry's kind, size, mode and mtime."""
    ls = {k: v + (stat.S_IMODE(os.lstat(os.path.join(d, k)).st_mode),) for k, v in sslib.listing(d).items()}
    st = os.lstat(d)
    ls["."] = ("d", 0, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return ls, {k: sslib.sha256_file(os.path.join(d, k)) for k, v in ls.items() if v[0] == "f"}


def run_on_inputs(label, indir, work, store):
    cfg = os.path.join(work, f"c-{store}.yaml")
    cfgd = {"version": 1, "run": {"name": "ro", "output": f"out-{store}", "store": store, "seed": 1},
            "samples": {"manifest": os.path.join(indir, "samples.tsv")}, "stages": import_stages()}
    import yaml
    with open(cfg, "w") as f:
        yaml.safe_dump(cfgd, f, sort_keys=False)
    before = snapshot(indir)
    p = sslib.run(["run", cfg] + RUN)
    T.check(p.returncode == 0, f"{label} ({store}): the run succeeds", sslib.describe(p))
    arrays = {}
    for sid in ("a", "b"):
        cont = sslib.container_path(os.path.join(work, f"out-{store}"), sid, store)
        arrays[sid] = sslib.read_arrays(cont, store) if os.path.exists(cont) else {}
    with h5py.File(os.path.join(indir, "a.h5"), "r", locking=False) as f:
        want = f["raw"][()]
    T.check(np.array_equal(arrays["a"].get("h5/raw"), want) and np.array_equal(arrays["a"].get("tif/raw"), want),
            f"{label} ({store}): both imports read the inputs", str(sorted(arrays["a"])))
    after = snapshot(indir)
    T.check(after == before, f"{label} ({store}): every input's sha256 and the folder's listing are unchanged",
            f"before {before[0]}\nafter {after[0]}")


def inputs_read_only(root):
    label = "inputs on a read-only tmpfs"
    mnt = os.path.join(root, "ro")
    os.makedirs(mnt)
    why = mount(["-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt])
    if why:
        T.skip(label, why)
    else:
        try:
            make_inputs(mnt)
            why = mount(["-o", "remount,ro", mnt])
            if T.check(why is None, f"{label}: remount read-only", why or ""):
                try:
                    open(os.path.join(mnt, "probe"), "w").close()
                    writable = True
                except OSError:
                    writable = False
                T.check(not writable, f"{label}: even root cannot write there")
                for store in ("hdf5", "zarr"):
                    run_on_inputs(label, mnt, root, store)
        finally:
            unmount(mnt)
    label = "inputs chmod 0444 in a folder chmod 0555"
    d = os.path.join(root, "ro-mode")
    os.makedirs(d)
    make_inputs(d)
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o444)
    os.chmod(d, 0o555)
    work = os.path.join(root, "ro-mode-work")
    os.makedirs(work)
    try:
        for store in ("hdf5", "zarr"):
            run_on_inputs(label, d, work, store)
    finally:
        os.chmod(d, 0o755)


def suite():
    root = T.tmpdir("faults")
    for store in ("hdf5", "zarr"):
        T.guard(f"{store}: locks", sample_lock, store, root)
        T.guard(f"{store}: cohort locks", cohort_lock, store, root)
        T.guard(f"{store}: disk full", disk_full, store, root)
    T.guard("file system without locks", locks_unsupported, root)
    T.guard("HDF5 locks", hdf5_locks_off, root)
    T.guard("inputs read-only", inputs_read_only, root)


suite()
T.done()
