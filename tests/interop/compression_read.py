#!/usr/bin/python3
"""run.compression as standard tools read it, in TAP.

usage: compression_read.py [WORKDIR]

(a) For each compression (blosc-lz4, blosc-zstd, gzip, none): configs/quickstart.yaml
    with `compression` set (and fewer SIREN steps) runs for real; `sirenstack
    inspect --json` names each array's compressor; `sirenstack export` writes every
    array as .npy and every table as .csv. h5_read_every.py then reads every array
    and table with h5py in a subprocess whose environment the test leaves as it
    found it (`import h5py, hdf5plugin` for blosc, plain `import h5py` otherwise),
    and each must equal the export, carry the HDF5 filters the layout specifies,
    and equal the blosc-lz4 run's (compression does not change results).
(b) With HDF5_PLUGIN_PATH pointing at an empty folder (no filter plugin can be
    found) and plain h5py: the gzip run reads in full and `h5dump -d` prints a
    dataset's values; the blosc-lz4 run does not read (the counterpart that shows
    the check can fail), with the error texts README.md's Troubleshooting quotes.

Environment: SIRENSTACK (the binary; default $BUILD_ROOT/sirenstack); KEEP_TMP
keeps the temporary folder.
"""
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

SOURCE_ROOT = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("SIRENSTACK") or os.path.join(os.environ.get("BUILD_ROOT") or
                                                   os.path.join(SOURCE_ROOT, "build"), "sirenstack")
READER = os.path.join(HERE, "h5_read_every.py")
PYTHON = "/usr/bin/python3"
SAMPLE = "demo"            # the sample of configs/quickstart.yaml
SIREN_STEPS = 40
DUMPED = "/mean/fused"     # the dataset h5dump prints
WALL_TIME_COLUMNS = {"seconds"}  # table columns that differ between any two runs
# What tests/meson.build sets for the project's own tests: not passed on to readers.
PROJECT_VARS = {"SIRENSTACK", "SOURCE_ROOT", "BUILD_ROOT", "SHARED_DATA", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}

BLOSC = 32001
SHUFFLE, DEFLATE = 2, 1    # HDF5's built-in filters
# compression -> (inspect's compressor, the filter pipeline as [(id, checked cd_values)])
EXPECT = {
    "blosc-lz4": ("blosc:lz4:5:shuffle", [(BLOSC, (5, 1, 1))]),
    "blosc-zstd": ("blosc:zstd:5:shuffle", [(BLOSC, (5, 1, 5))]),
    "gzip": ("gzip:4:shuffle", [(SHUFFLE, None), (DEFLATE, (4,))]),
    "none": ("none", []),
}
ORDER = ["blosc-lz4", "blosc-zstd", "gzip", "none"]  # the first is the reference


def reader_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_VARS}
    env.update(extra or {})
    return env


def run_bin(args, cwd, timeout=300):
    return subprocess.run([BIN] + args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def detail(p):
    return f"argv: {' '.join(p.args)}\nexit: {p.returncode}\nstdout: {p.stdout[-1500:]}\nstderr: {p.stderr[-1500:]}"


def write_config(path, comp):
    """configs/quickstart.yaml with compression set, output beside the config."""
    import yaml
    with open(os.path.join(SOURCE_ROOT, "configs", "quickstart.yaml")) as f:
        cfg = yaml.safe_load(f)
    cfg["run"]["output"] = f"out_{comp}"
    cfg["run"]["compression"] = comp
    cfg["stages"]["siren"]["params"]["steps"] = SIREN_STEPS
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return cfg


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def table_equals_csv(values, path):
    """A structured array as h5py read it against the export's CSV (floats
    written with 17 digits, so exact)."""
    names, rows = read_csv(path)
    if list(values.dtype.names) != names or len(rows) != len(values):
        return False, f"columns {values.dtype.names} vs {names}, rows {len(values)} vs {len(rows)}"
    for c, name in enumerate(names):
        col = values[name]
        kind = col.dtype.kind
        for r, row in enumerate(rows):
            got = col[r]
            if kind == "S":
                ok = got.decode() == row[c]
            elif kind == "f":
                ok = (row[c] == "nan" and got != got) or float(row[c]) == float(got)
            else:
                ok = int(row[c]) == int(got)
            if not ok:
                return False, f"{name}[{r}]: h5py {got!r}, csv {row[c]!r}"
    return True, ""


def filters_match(got, want):
    """got: [[id, cd]] from the reader; want: [(id, cd[4:] for blosc, the whole cd otherwise, or None)]."""
    if [g[0] for g in got] != [w[0] for w in want]:
        return False
    for (fid, cd), (_, wcd) in zip(got, want):
        if wcd is None:
            continue
        if fid == BLOSC and (len(cd) != 7 or cd[0] != 2 or tuple(cd[4:]) != wcd):
            return False
        if fid != BLOSC and tuple(cd) != wcd:
            return False
    return True


def read_every(tap, container, outdir, what, plugin, extra_env=None):
    """Runs h5_read_every.py; returns its JSON result or None."""
    args = [PYTHON, READER, container, outdir] + (["--hdf5plugin"] if plugin else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=300, env=reader_env(extra_env),
                       cwd=os.path.dirname(container), stdin=subprocess.DEVNULL)
    try:
        res = json.loads(p.stdout)
    except ValueError:
        res = None
    tap.check(p.returncode == 0 and res is not None, f"{what}: the reader ran", detail(p))
    return res


def run_one(tap, tmp, comp):
    """Runs the pipeline with compression comp and exports everything.
    Returns (container, {stage/name: (kind, export path)}) or None."""
    cfg = os.path.join(tmp, f"quickstart_{comp}.yaml")
    write_config(cfg, comp)
    p = run_bin(["run", cfg, "--threads", "2", "-q"], tmp, timeout=600)
    if not tap.check(p.returncode == 0, f"{comp}: sirenstack run of quickstart.yaml with compression: {comp}",
                     detail(p)):
        return None
    container = os.path.join(tmp, f"out_{comp}", f"{SAMPLE}.h5")
    p = run_bin(["inspect", container, "--json"], tmp)
    try:
        tree = json.loads(p.stdout)
    except ValueError:
        tree = {}
    compressor = EXPECT[comp][0]
    arrays = {f"{s}/{a}": info for s, v in tree.items() for a, info in v.get("arrays", {}).items()}
    tap.check(p.returncode == 0 and len(arrays) >= 8, f"{comp}: inspect --json lists the arrays and tables",
              detail(p))
    bad = {k: v.get("compressor") for k, v in arrays.items() if v.get("kind") == "array" and
           v.get("compressor") != compressor}
    tap.check(not bad, f"{comp}: inspect names every array's compressor {compressor}", bad)
    bad = {s: v.get("compression") for s, v in tree.items() if v.get("compression") != comp}
    tap.check(tree and not bad, f"{comp}: every stage records compression {comp}", bad)
    exported, failed = {}, []
    for key, info in arrays.items():
        kind = info.get("kind")
        out = os.path.join(tmp, f"export_{comp}", key.replace("/", ".") + (".csv" if kind == "table" else ".npy"))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        p = run_bin(["export", container, key, "-o", out], tmp)
        if p.returncode != 0:
            failed.append(detail(p))
        exported[key] = (kind, out)
    tap.check(not failed, f"{comp}: sirenstack export writes every array (.npy) and table (.csv)", "\n".join(failed))
    if comp != "none":
        images = {k: v.get("ratio") for k, v in arrays.items() if len(v.get("shape", [])) >= 3}
        tap.check(images and all(r > 1.05 for r in images.values()),
                  f"{comp}: image arrays are stored smaller than raw (inspect's ratio)", images)
    return container, exported


def check_read(tap, comp, res, exported, plugin):
    """Every dataset read, equal to the export, with the expected filters."""
    import numpy as np
    ds = res["datasets"]
    tap.check(res["hdf5plugin_loaded"] == plugin and res["plugin_path"] == os.environ.get("HDF5_PLUGIN_PATH"),
              f"{comp}: read with {'h5py + hdf5plugin' if plugin else 'plain h5py'}, HDF5_PLUGIN_PATH as the test found it",
              {k: res[k] for k in ("hdf5plugin_loaded", "plugin_path")})
    tap.check(sorted(ds) == sorted(exported), f"{comp}: h5py sees the same arrays and tables as inspect",
              f"{sorted(ds)}\n{sorted(exported)}")
    errors = {k: v["error"] for k, v in ds.items() if "error" in v}
    tap.check(not errors, f"{comp}: h5py reads every array and table", errors)
    want = EXPECT[comp][1]
    bad = {k: v["filters"] for k, v in ds.items() if not filters_match(v["filters"], want)}
    tap.check(not bad, f"{comp}: every dataset's filter pipeline is {[w[0] for w in want]} "
              f"({'cd_values ' + str(want[0][1]) + ' at [4:]' if want and want[0][0] == BLOSC else 'HDF5 built-ins' if want else 'no filter'})",
              bad)
    if want:
        filtered = sum(v["filtered_chunks"] for v in ds.values())
        tap.check(filtered > 0, f"{comp}: chunks stored through the filters exist (the decoder was exercised)",
                  {k: (v["filtered_chunks"], v["chunks"]) for k, v in ds.items()})
    mismatch = []
    values = {}
    for key, (kind, path) in exported.items():
        info = ds.get(key, {})
        if "file" not in info:
            continue
        got = np.load(info["file"])
        values[key] = got
        if kind == "table":
            ok, why = table_equals_csv(got, path)
        else:
            want_v = np.load(path)
            ok = same_values(got, want_v)
            why = f"{got.dtype} {got.shape} vs {want_v.dtype} {want_v.shape}"
        if not ok:
            mismatch.append(f"{key}: {why}")
    tap.check(not mismatch and len(values) == len(exported),
              f"{comp}: every array equals its `sirenstack export` .npy and every table its .csv",
              "\n".join(mismatch) or f"read {len(values)} of {len(exported)}")
    return values


def same_values(a, b):
    """Equal dtype, shape and values, NaN equal to NaN (a table's std of one
    value, a spine recovery without spines), field by field for tables."""
    import numpy as np
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.names:
        return all(same_values(a[c], b[c]) for c in a.dtype.names)
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def same_as_reference(tap, comp, values, ref):
    import numpy as np
    diff = []
    for key, v in ref.items():
        got = values.get(key)
        if got is None:
            diff.append(f"{key}: missing")
        elif v.dtype.names:
            cols = [c for c in v.dtype.names if c not in WALL_TIME_COLUMNS]
            if got.dtype.names != v.dtype.names or any(not same_values(got[c], v[c]) for c in cols):
                diff.append(f"{key}: table differs")
        elif not same_values(got, v):
            diff.append(f"{key}: values differ")
    tap.check(not diff and set(values) == set(ref),
              f"{comp}: every array and table equals the blosc-lz4 run's (compression changes no result)",
              "\n".join(diff))


def h5dump_values(text):
    """The numbers of the dataset's own DATA block of `h5dump -d` output (at
    the dataset's indent, not the attributes' deeper ones)."""
    lines = text.splitlines()
    try:
        start = lines.index("   DATA {")
        stop = lines.index("   }", start)
    except ValueError:
        return None
    nums = []
    for line in lines[start + 1:stop]:
        if ":" in line:
            nums += [float(x) for x in line.split(":", 1)[1].replace(",", " ").split()]
    return nums


def no_plugin_suite(tap, tmp, runs):
    """(b): no filter plugin can be found; plain h5py and h5dump."""
    import numpy as np
    empty = os.path.join(tmp, "no_plugins")
    os.makedirs(empty, exist_ok=True)
    env = {"HDF5_PLUGIN_PATH": empty}
    h5dump = shutil.which("h5dump")
    tap.check(h5dump is not None, "h5dump is installed (hdf5-tools, scripts/setup-deps)")

    gz = runs.get("gzip")
    if gz:
        container, exported, values = gz
        res = read_every(tap, container, os.path.join(tmp, "read_gzip_noplugin"), "gzip, no plugins", False, env)
        if res:
            errors = {k: v["error"] for k, v in res["datasets"].items() if "error" in v}
            tap.check(not res["hdf5plugin_loaded"] and res["plugin_path"] == empty and not errors and
                      sorted(res["datasets"]) == sorted(exported),
                      "gzip, HDF5_PLUGIN_PATH an empty folder: plain h5py reads every array and table", errors)
            bad = [k for k, v in res["datasets"].items() if "file" in v and not
                   same_values(np.load(v["file"]), values[k])]
            tap.check(not bad, "gzip, no plugins: the values are those read before", bad)
        if h5dump:
            p = subprocess.run([h5dump, "-d", DUMPED, container], capture_output=True, text=True, timeout=300,
                               env=reader_env(env))
            nums = h5dump_values(p.stdout)
            want = np.load(exported[DUMPED[1:]][1]).astype(np.float64).ravel()
            ok = nums is not None and len(nums) == want.size and np.allclose(nums, want, rtol=1e-5, atol=0)
            tap.check(p.returncode == 0 and "unable to print data" not in p.stderr and ok,
                      f"gzip, no plugins: `h5dump -d {DUMPED}` prints all {want.size} values (equal to the export "
                      "to h5dump's 6 digits)",
                      f"{len(nums) if nums is not None else 'no DATA block'} numbers\n{detail(p)}")

    lz = runs.get("blosc-lz4")
    if lz:
        container, exported, values = lz
        res = read_every(tap, container, os.path.join(tmp, "read_lz4_noplugin"), "blosc-lz4, no plugins", False, env)
        if res:
            ds = res["datasets"]
            compressed = {k for k, v in ds.items() if v["filtered_chunks"] > 0}
            failed = {k: v.get("error", "") for k, v in ds.items() if "error" in v}
            texts = sorted(set(failed.values()))
            tap.diag("blosc-lz4 without the plugin, h5py says: " + " | ".join(texts))
            tap.check(compressed and set(failed) >= compressed and
                      all("Can't read data" in t and "filter" in t for t in texts),
                      "counterpart: blosc-lz4, HDF5_PLUGIN_PATH an empty folder: plain h5py cannot read the "
                      "blosc-compressed arrays (OSError: Can't read data (required filter ... is not registered))",
                      f"compressed {sorted(compressed)}, failed {failed}")
        missing = os.path.join(tmp, "no_such_plugin_folder")
        res = read_every(tap, container, os.path.join(tmp, "read_lz4_nofolder"), "blosc-lz4, missing plugin folder",
                         False, {"HDF5_PLUGIN_PATH": missing})
        if res:
            texts = sorted({v["error"] for v in res["datasets"].values() if "error" in v})
            tap.check(texts and all(f"can't open directory: {missing}" in t for t in texts),
                      "counterpart: blosc-lz4 with the plugin folder missing (as without Debian's "
                      "hdf5-filter-plugin-blosc-serial): OSError: Can't read data (can't open directory: ...)", texts)
        if h5dump:
            p = subprocess.run([h5dump, "-d", DUMPED, container], capture_output=True, text=True, timeout=300,
                               env=reader_env(env))
            tap.check(p.returncode != 0 and "unable to print data" in p.stderr,
                      f"counterpart: blosc-lz4, no plugins: `h5dump -d {DUMPED}` fails with 'unable to print data'",
                      detail(p))


def main():
    tap = Tap(max_detail_lines=40)
    missing = [m for m in ("h5py", "hdf5plugin", "numpy", "yaml") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"1..0 # SKIP not available: {', '.join(missing)}")
        return 0
    # WORKDIR is kept; the temporary folder goes unless KEEP_TMP is set
    tmp = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else tap.tmpdir("compression")
    os.makedirs(tmp, exist_ok=True)
    runs, ref = {}, None
    for comp in ORDER:
        r = tap.guard(f"{comp}: run and export", run_one, tap, tmp, comp)
        if not r:
            continue
        container, exported = r
        blosc = comp.startswith("blosc")
        res = read_every(tap, container, os.path.join(tmp, f"read_{comp}"), comp, blosc)
        if not res:
            continue
        values = tap.guard(f"{comp}: h5py reads", check_read, tap, comp, res, exported, blosc)
        if values is None:
            continue
        if comp == ORDER[0]:
            ref = values
        elif ref is not None:
            same_as_reference(tap, comp, values, ref)
        runs[comp] = (container, exported, values)
    tap.guard("no plugins", no_plugin_suite, tap, tmp, runs)
    tap.done()


if __name__ == "__main__":
    sys.exit(main())
