"""Shared helpers of the integration tests (tests/engine, tests/stages, tests/interop).

Every driver speaks TAP: `T = Tap()`, then `T.check(cond, desc, detail)` per
test point, `T.skip(desc, why)` for points that cannot run here, and
`T.done()` at the end (prints the plan, exits 1 if any point failed).

The binary is $SIRENSTACK (set by tests/meson.build), else build/sirenstack
beside the sources. Everything runs in temporary directories made with
tempfile.mkdtemp and removed at the end unless KEEP_TMP is set.
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import yaml

try:
    import hdf5plugin  # noqa: F401 - registers the blosc filter 32001 with h5py
except ImportError:  # pragma: no cover
    hdf5plugin = None
import h5py

try:
    import zarr
except ImportError:  # pragma: no cover
    zarr = None

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
BUILD_ROOT = os.environ.get("BUILD_ROOT") or os.path.join(SOURCE_ROOT, "build")
BIN = os.environ.get("SIRENSTACK") or os.path.join(BUILD_ROOT, "sirenstack")

SANITIZER_MARKERS = ("AddressSanitizer", "UndefinedBehaviorSanitizer", "LeakSanitizer", "runtime error:",
                     "ThreadSanitizer", "Segmentation fault", "core dumped")


sys.path.insert(0, HERE)
from taplib import Tap  # noqa: E402,F401 - the shared TAP writer


def seeded_rng(tap, env, what):
    """A random.Random seeded from $env, else at random; the seed is printed
    (as "what: env=seed") so that a failure can be repeated."""
    import random
    seed = int(os.environ.get(env) or random.SystemRandom().randrange(1 << 30))
    tap.diag(f"{what}: {env}={seed}")
    return random.Random(seed)


# ---- configs -----------------------------------------------------------------

def synth_stages(shape=(6, 48, 40), repeats=4, p_low=2, p_high=99.9, fuse=True, extra_norm=None):
    st = {
        "raw": {"uses": "synth_smooth", "params": {"shape": list(shape), "repeats": repeats}},
        "norm": {"uses": "normalize", "inputs": {"stack": "raw.repeats"},
                 "params": {"p_low": p_low, "p_high": p_high}},
    }
    if extra_norm:
        st["norm"]["params"].update(extra_norm)
    if fuse:
        st["mean"] = {"uses": "fuse_mean", "inputs": {"repeats": "norm.data"}}
        st["median"] = {"uses": "fuse_median", "inputs": {"repeats": "norm.data"}}
    return st


def import_stages(file=None, dataset="/raw", datasets=None, axes="rzyx", p_low=2, p_high=99.9, fuse=True):
    params = {"axes": axes}
    if file is not None:
        params["file"] = file
    if datasets is not None:
        params["datasets"] = list(datasets)
    else:
        params["dataset"] = dataset
    st = {
        "raw": {"uses": "import_hdf5", "params": params},
        "norm": {"uses": "normalize", "inputs": {"stack": "raw.raw"}, "params": {"p_low": p_low, "p_high": p_high}},
    }
    if fuse:
        st["mean"] = {"uses": "fuse_mean", "inputs": {"repeats": "norm.data"}}
        st["median"] = {"uses": "fuse_median", "inputs": {"repeats": "norm.data"}}
    return st


def make_config(path, stages, store="hdf5", seed=1, output="out", samples=None, name="it", run_extra=None):
    """Writes a config; returns its path. output is relative to the config."""
    if samples is None:
        samples = [{"id": "s1", "voxel_size": [1.0, 0.1, 0.1]}]
    run = {"name": name, "output": output, "store": store, "seed": seed}
    if run_extra:
        run.update(run_extra)
    cfg = {"version": 1, "run": run, "samples": samples, "stages": stages}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None)
    return path


# ---- running -------------------------------------------------------------------

def run(args, env=None, timeout=120, cwd=None, preexec_fn=None):
    """Runs sirenstack with args; returns CompletedProcess (text mode)."""
    e = dict(os.environ)
    e.pop("SIRENSTACK_CRASHPOINT", None)
    if env:
        e.update(env)
    return subprocess.run([BIN] + [str(a) for a in args], env=e, cwd=cwd, timeout=timeout, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)


def describe(p):
    """A short text of a CompletedProcess for TAP diagnostics."""
    return f"argv: {' '.join(map(str, p.args))}\nexit: {p.returncode}\nstdout: {p.stdout[-1500:]}\nstderr: {p.stderr[-1500:]}"


def read_events(path):
    events = []
    if not os.path.exists(path):
        return events
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                events.append(json.loads(line))
    return events


def run_logged(cfg, tmp, extra=(), env=None, timeout=120, tag="log"):
    """Runs `run CFG --log-json FILE extra`; returns (proc, events, ran, reused)
    where ran/reused are sets of (sample, stage)."""
    log = os.path.join(tmp, f"{tag}.{os.getpid()}.{len(os.listdir(tmp))}.jsonl")
    p = run(["run", cfg, "--log-json", log, "--threads", "2"] + list(extra), env=env, timeout=timeout)
    ev = read_events(log)
    os.unlink(log) if os.path.exists(log) else None
    ran = {(e["sample"], e["stage"]) for e in ev if e.get("event") == "stage_start"}
    reused = {(e["sample"], e["stage"]) for e in ev if e.get("event") == "stage_reuse"}
    return p, ev, ran, reused


def stages_ran(ran, sample="s1"):
    return {st for (s, st) in ran if s == sample}


# ---- containers ------------------------------------------------------------------

def container_path(outdir, sample, store):
    return os.path.join(outdir, f"{sample}.{'zarr' if store == 'zarr' else 'h5'}")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def sha256_tree(path):
    """Hash of a directory tree: relative names, kinds and file contents."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        rel = os.path.relpath(root, path)
        h.update(f"D {rel}\n".encode())
        for name in sorted(files):
            h.update(f"F {os.path.join(rel, name)}\n".encode())
            with open(os.path.join(root, name), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def h5_stage_files(container):
    """stage -> absolute path of its committed stage file, from the index's links."""
    out = {}
    d = os.path.dirname(os.path.abspath(container))
    with h5py.File(container, "r", locking=False) as f:
        for name in f.keys():
            link = f.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                out[name] = os.path.normpath(os.path.join(d, link.filename))
    return out


def zarr_stage_dirs(container):
    """stage -> its group folder; OME (the list of images for OME-NGFF readers) is no stage."""
    out = {}
    for name in sorted(os.listdir(container)):
        p = os.path.join(container, name)
        if not name.startswith(".") and name != "OME" and os.path.isdir(p) and os.path.exists(os.path.join(p, ".zgroup")):
            out[name] = p
    return out


def zarr_image_level(group):
    """The array of an OME-NGFF image group (its first multiscales dataset), or None."""
    ms = group.attrs.get("multiscales")
    if not ms:
        return None
    return group[ms[0]["datasets"][0]["path"]]


def zarr_image_groups(container):
    """'stage/array' of every OME-NGFF image group (multiscales whose first
    dataset is an array), stages in commit order (order.json, then by name),
    arrays by name: what OME/.zattrs "series" must list."""
    try:
        with open(os.path.join(container, ".sirenstack", "order.json")) as f:
            order = json.load(f)
    except (OSError, ValueError):
        order = []
    stages = zarr_stage_dirs(container)
    ranked = sorted(stages, key=lambda s: (order.index(s) if s in order else len(order), s))
    out = []
    for st in ranked:
        for name in sorted(os.listdir(stages[st])):
            g = os.path.join(stages[st], name)
            try:
                with open(os.path.join(g, ".zattrs")) as f:
                    path = json.load(f)["multiscales"][0]["datasets"][0]["path"]
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                continue
            if os.path.exists(os.path.join(g, ".zgroup")) and os.path.exists(os.path.join(g, path, ".zarray")):
                out.append(f"{st}/{name}")
    return out


def zarr_series(container):
    """OME/.zattrs "series", or None when it is missing or not a list."""
    try:
        with open(os.path.join(container, "OME", ".zattrs")) as f:
            s = json.load(f).get("series")
        return s if isinstance(s, list) else None
    except (OSError, ValueError, AttributeError):
        return None


def workdir(container, store):
    """The container's work folder: lock, status markers, checkpoints, temporaries."""
    return os.path.join(container, ".sirenstack") if store == "zarr" else container + ".d"


def running_stages(container, store):
    """The stages marked running in the container's work folder (status/*.running),
    joined by commas, or None: where a killed run was."""
    sd = os.path.join(workdir(container, store), "status")
    if not os.path.isdir(sd):
        return None
    r = sorted(f[:-8] for f in os.listdir(sd) if f.endswith(".running"))
    return ",".join(r) or None


def stage_hashes(container, store):
    """stage -> sha256 of its committed file (hdf5) or tree (zarr)."""
    if not os.path.exists(container):
        return {}
    if store == "zarr":
        return {k: sha256_tree(v) for k, v in zarr_stage_dirs(container).items()}
    return {k: sha256_file(v) for k, v in h5_stage_files(container).items()}


def read_arrays(container, store):
    """'stage/array' -> numpy array, read with h5py (+hdf5plugin) or zarr-python."""
    out = {}
    if store == "zarr":
        g = zarr.open_group(container, mode="r")
        for sname in zarr_stage_dirs(container):
            sg = g[sname]
            for aname, a in sg.arrays():
                out[f"{sname}/{aname}"] = a[...]
            # images: OME-NGFF groups <stage>/<array> with the array at level 0
            for aname, ig in sg.groups():
                a = zarr_image_level(ig)
                if a is not None:
                    out[f"{sname}/{aname}"] = a[...]
        return out
    with h5py.File(container, "r", locking=False) as f:
        for sname in f.keys():
            g = f[sname]
            for aname in g.keys():
                obj = g[aname]
                if isinstance(obj, h5py.Dataset):
                    out[f"{sname}/{aname}"] = obj[()]
    return out


def stage_attrs(container, store, stage):
    if store == "zarr":
        with open(os.path.join(container, stage, ".zattrs")) as f:
            return json.load(f)
    with h5py.File(container, "r", locking=False) as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f[stage].attrs.items()}


def inspect_json(container):
    p = run(["inspect", "--json", container])
    if p.returncode != 0:
        return p, None
    try:
        return p, json.loads(p.stdout)
    except ValueError:
        return p, None


# Table columns that hold wall-clock times (a training curve's "seconds"):
# they differ between any two runs and are left out of exact comparisons.
WALL_TIME_COLUMNS = {"seconds"}


def arrays_equal(a, b):
    """(equal?, detail): exact comparison of two {'stage/array': ndarray} maps;
    tables (structured arrays) column by column, wall-clock columns excepted."""
    if set(a) != set(b):
        return False, f"different arrays: {sorted(set(a) ^ set(b))}"
    bad = []
    for k in sorted(a):
        x, y = a[k], b[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            bad.append(f"{k}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
            continue
        cols = [(f"{k}.{n}", x[n], y[n]) for n in x.dtype.names if n not in WALL_TIME_COLUMNS] \
            if x.dtype.names else [(k, x, y)]
        for name, u, v in cols:
            if not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
                diff = f"max abs diff {np.max(np.abs(u.astype(np.float64) - v)):g}" if u.dtype.kind in "fiu" else ""
                bad.append(f"{name}: values differ ({diff})")
    return not bad, "\n".join(bad)


def listing(root):
    """{relative path: (kind, size, mtime_ns)} of everything under root."""
    out = {}
    if not os.path.exists(root):
        return out
    for r, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(r, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = ("d" if os.path.isdir(p) else "f", st.st_size if not os.path.isdir(p) else 0,
                                             st.st_mtime_ns)
    return out


def leftovers(outdir):
    """Temporaries a finished run should not leave: *.tmp*, tmp dirs with
    content, .creating. staging dirs, stage files no index refers to."""
    found = []
    for r, dirs, files in os.walk(outdir):
        for name in dirs + files:
            p = os.path.join(r, name)
            rel = os.path.relpath(p, outdir)
            if ".tmp" in name or ".creating." in name or name.endswith(".old"):
                found.append(rel)
            elif name == "tmp" and os.path.isdir(p) and os.listdir(p):
                found.append(rel + "/ (not empty: " + ", ".join(sorted(os.listdir(p))[:5]) + ")")
    # hdf5: stage files that the index does not link
    outdir = os.path.abspath(outdir)
    for name in os.listdir(outdir) if os.path.isdir(outdir) else []:
        if name.endswith(".h5") and os.path.isfile(os.path.join(outdir, name)):
            sd = os.path.join(outdir, name + ".d", "stages")
            if not os.path.isdir(sd):
                continue
            try:
                linked = set(h5_stage_files(os.path.join(outdir, name)).values())
            except Exception as e:  # noqa: BLE001
                found.append(f"{name}: index unreadable ({e})")
                continue
            for f in os.listdir(sd):
                if os.path.normpath(os.path.join(sd, f)) not in linked:
                    found.append(os.path.relpath(os.path.join(sd, f), outdir) + " (not in the index)")
    return found


def crashed_by_signal(p):
    return any(m in (p.stderr or "") for m in SANITIZER_MARKERS) or p.returncode < 0
