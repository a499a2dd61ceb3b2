#!/usr/bin/python3
"""The HDF5 containers of a real pipeline run, as h5py + hdf5plugin read them, in TAP.

usage: h5py_read.py [WORKDIR]

Writes an HDF5 source file with h5py (gzip), writes a config
  raw:    synth_smooth [5, 40, 36], 4 repeats
  norm:   normalize raw.repeats
  mean:   fuse_mean norm.data
  median: fuse_median norm.data
  imp:    import_hdf5 of the source file
runs `$SIRENSTACK run` on it, then opens <out>/<sample>.h5 with h5py from a
different working directory than the output folder (the external links of the
index must resolve against the index file's folder, not the cwd) and checks
values, attributes, filters and chunks, and that `sirenstack inspect --json`
agrees with h5py. zarr_pipeline_read.py imports the helpers of this file.

Environment: SIRENSTACK (the binary; default $BUILD_ROOT/sirenstack or
build/sirenstack beside the sources).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

SAMPLE = "s1"
SHAPE = (5, 40, 36)
REPEATS = 4
VOXEL = [2.0, 0.5, 0.25]
P_LOW, P_HIGH, EPS = 2.0, 99.9, 1e-20
SEED = 7
# stage -> (stage type, {array name: axes}, {port: upstream stage})
STAGES = {
    "raw": ("synth_smooth", {"repeats": "rzyx", "truth": "zyx"}, {}),
    "norm": ("normalize", {"data": "rzyx"}, {"stack": "raw"}),
    "mean": ("fuse_mean", {"fused": "zyx"}, {"repeats": "norm"}),
    "median": ("fuse_median", {"fused": "zyx"}, {"repeats": "norm"}),
    "imp": ("import_hdf5", {"raw": "rzyx"}, {}),
    "imp_blosc": ("import_hdf5", {"raw": "rzyx"}, {}),
}
# Stage attributes every committed stage carries, with their Python types as
# h5py returns them (JSON text for objects).
STR_ATTRS = ["stage_type", "params", "fingerprint", "input_fingerprints", "inputs", "input_files", "sample",
             "software_version", "libraries", "host", "device", "started", "finished"]
INT_ATTRS = ["stage_version", "threads"]
FLOAT_ATTRS = ["seconds"]
JSON_ATTRS = ["params", "input_fingerprints", "inputs", "input_files", "libraries", "sirenstack_arrays"]
# Attributes that legitimately differ between two runs (timings).
VOLATILE_ATTRS = {"started", "finished", "seconds", "sirenstack_commit_time"}

HEX32 = re.compile(r"^[0-9a-f]{32}$")
ISO8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def sirenstack_bin():
    b = os.environ.get("SIRENSTACK")
    if b:
        return b
    here = os.path.dirname(os.path.abspath(__file__))
    build = os.environ.get("BUILD_ROOT") or os.path.join(here, "..", "..", "build")
    return os.path.join(build, "sirenstack")


def source_repeats():
    """Deterministic raw repeats for import_hdf5: smooth background, a few
    bright blobs, Poisson noise, so blosc has something to compress."""
    import numpy as np
    rng = np.random.default_rng(20240611)
    z, y, x = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), np.arange(SHAPE[2]), indexing="ij")
    truth = 40 + 20 * np.sin(y / 9.0) * np.cos(x / 7.0) + 3 * z
    for cz, cy, cx, a in [(1, 10, 8, 900), (3, 30, 25, 1500), (2, 20, 30, 600)]:
        truth = truth + a * np.exp(-((z - cz) ** 2 / 2.0 + (y - cy) ** 2 / 18.0 + (x - cx) ** 2 / 18.0))
    reps = rng.poisson(np.broadcast_to(truth, (REPEATS,) + SHAPE))
    return np.clip(reps, 0, 65535).astype(np.uint16)


def write_source(path):
    """The source of the import stages: the same repeats twice, gzip (imp)
    and hdf5plugin's blosc zstd + bitshuffle (imp_blosc: the store's own blosc
    filter decodes what hdf5plugin wrote)."""
    import h5py
    import hdf5plugin
    data = source_repeats()
    with h5py.File(path, "w") as f:
        d = f.create_dataset("acq/raw", data=data, chunks=(1, 1) + SHAPE[1:], compression="gzip",
                             compression_opts=4, shuffle=True)
        d.attrs["element_size_um"] = [9.0, 9.0, 9.0]  # the sample's voxel size takes precedence
        f.create_dataset("acq/raw_blosc", data=data, chunks=(2, 1) + SHAPE[1:],
                         **hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.BITSHUFFLE))
    return data


def write_config(path, out_rel, store):
    text = f"""# written by tests/interop/h5py_read.py
version: 1
run:
  name: interop_{store}
  output: {out_rel}
  store: {store}
  seed: {SEED}
samples:
  - id: {SAMPLE}
    input: src.h5
    voxel_size: [{VOXEL[0]}, {VOXEL[1]}, {VOXEL[2]}]
    repeats: {REPEATS}
stages:
  raw:
    uses: synth_smooth
    params:
      shape: [{SHAPE[0]}, {SHAPE[1]}, {SHAPE[2]}]
      repeats: {REPEATS}
  norm:
    uses: normalize
    inputs: {{stack: raw.repeats}}
    params: {{p_low: {P_LOW}, p_high: {P_HIGH}}}
  mean:
    uses: fuse_mean
    inputs: {{repeats: norm.data}}
  median:
    uses: fuse_median
    inputs: {{repeats: norm.data}}
  imp:
    uses: import_hdf5
    params: {{dataset: /acq/raw, axes: rzyx}}
  imp_blosc:
    uses: import_hdf5
    params: {{dataset: /acq/raw_blosc, axes: rzyx}}
"""
    with open(path, "w") as f:
        f.write(text)


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def run_pipeline(tap, tmp, store):
    """Writes the source (once) and a config under tmp/cfg/ and runs the
    pipeline from tmp (not the config's folder). Runs of both stores share the
    source, so their provenance attributes are comparable. Returns (container
    path or None, source array)."""
    cfg_dir = os.path.join(tmp, "cfg")
    os.makedirs(cfg_dir, exist_ok=True)
    src = os.path.join(cfg_dir, "src.h5")
    data = source_repeats() if os.path.exists(src) else write_source(src)
    before = file_bytes(src)
    cfg = os.path.join(cfg_dir, f"pipeline_{store}.yaml")
    write_config(cfg, f"../out_{store}", store)
    r = subprocess.run([sirenstack_bin(), "run", cfg], cwd=tmp, capture_output=True, text=True, timeout=300)
    ok = tap.check(r.returncode == 0, f"sirenstack run ({store}) exits 0",
                   f"exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    tap.check(file_bytes(src) == before, f"the import source is unchanged by the run ({store})")
    ext = "h5" if store == "hdf5" else "zarr"
    path = os.path.join(tmp, f"out_{store}", f"{SAMPLE}.{ext}")
    ok = tap.check(os.path.exists(path), f"container {SAMPLE}.{ext} exists", path) and ok
    return (path if ok else None), data


def inspect_json(path, cwd):
    r = subprocess.run([sirenstack_bin(), "inspect", path, "--json"], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"inspect exit {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


# ---- reference values ---------------------------------------------------------

def expected_norm(raw):
    """numpy's percentiles of the raw repeats and the normalised stack."""
    import numpy as np
    x = raw.astype(np.float64)
    lo = float(np.percentile(x, P_LOW))
    hi = float(np.percentile(x, P_HIGH))
    return lo, hi, (x - lo) / (hi - lo + EPS)


def close_rel(got, want, rtol):
    """|got - want| <= rtol * max(1, |want|): relative, but values near 0 (the
    low percentile maps to 0) are held to rtol absolute."""
    import numpy as np
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False, f"shape {got.shape} vs {want.shape}"
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    m = float(err.max()) if err.size else 0.0
    return m <= rtol, f"max scaled error {m:.3g} (tolerance {rtol:g})"


def attrs_json(attrs):
    """Stage attributes as plain JSON values (JSON text parsed, numpy scalars
    and arrays converted), for comparing across backends."""
    import numpy as np
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        if k in JSON_ATTRS and isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[k] = v
    return out


# ---- checks of the HDF5 container ------------------------------------------------

def check_index(tap, f, path):
    import h5py
    tap.check(f.attrs.get("sirenstack_layout_version") == 2 and f.attrs.get("sirenstack_format") == "hdf5",
              "index root attrs: sirenstack_layout_version 2, sirenstack_format hdf5", dict(f.attrs))
    names = sorted(f.keys())
    tap.check(names == sorted(STAGES), "index lists exactly the stages of the config", names)
    order = commit_order_hdf5(f)
    tap.check(is_topological(order), "index links in creation (commit) order, each stage after its inputs", order)
    for st in STAGES:
        link = f.get(st, getlink=True)
        if not tap.check(isinstance(link, h5py.ExternalLink), f"{st}: index entry is an external link",
                         type(link)):
            continue
        fn = link.filename
        tap.check(not os.path.isabs(fn) and fn.startswith(f"{SAMPLE}.h5.d/stages/{st}.") and fn.endswith(".h5")
                  and link.path == "/",
                  f"{st}: link target is relative, {SAMPLE}.h5.d/stages/{st}.<uniq>.h5:/", f"{fn}:{link.path}")
        g = f.get(st)
        tap.check(isinstance(g, h5py.Group), f"{st}: stage group reachable by name through the link", type(g))
    # nothing but links in the index, no temporaries left beside it
    d = os.path.dirname(path)
    left = [n for n in os.listdir(d) if ".tmp" in n]
    left += [n for n in os.listdir(os.path.join(d, f"{SAMPLE}.h5.d", "stages")) if ".tmp" in n]
    tap.check(not left, "no temporary files left after the run", left)


def commit_order_hdf5(f):
    """The index's links in creation order (the commit order)."""
    import h5py
    names = []
    f.id.links.iterate(lambda n: names.append(n.decode()), idx_type=h5py.h5.INDEX_CRT_ORDER)
    return names


def is_topological(order):
    pos = {st: i for i, st in enumerate(order)}
    return sorted(order) == sorted(STAGES) and all(
        pos[up] < pos[st] for st, (t, a, ports) in STAGES.items() for up in ports.values())


def check_stage_attrs(tap, f):
    fps = {st: f[st].attrs.get("fingerprint") for st in STAGES}
    for st, (stype, arrays, ports) in STAGES.items():
        a = f[st].attrs
        missing = [k for k in STR_ATTRS + INT_ATTRS + FLOAT_ATTRS if k not in a]
        tap.check(not missing, f"{st}: every stage attribute present", f"missing {missing}")
        bad = [k for k in STR_ATTRS if k in a and not isinstance(a[k], str)]
        bad += [k for k in INT_ATTRS if k in a and not (hasattr(a[k], "dtype") and a[k].dtype.kind == "i"
                                                       and a[k].shape == ())]
        bad += [k for k in FLOAT_ATTRS if k in a and not (hasattr(a[k], "dtype") and a[k].dtype.kind == "f"
                                                         and a[k].shape == ())]
        tap.check(not bad, f"{st}: attribute types (strings, scalar int64, scalar float64)",
                  {k: (type(a[k]), getattr(a[k], "dtype", None)) for k in bad})
        if missing or bad:
            continue
        tap.check(a["stage_type"] == stype and a["stage_version"] >= 1 and a["sample"] == SAMPLE,
                  f"{st}: stage_type {stype}, stage_version >= 1, sample {SAMPLE}",
                  (a["stage_type"], a["stage_version"], a["sample"]))
        parsed = {}
        for k in JSON_ATTRS:
            try:
                parsed[k] = json.loads(a[k])
            except ValueError as e:
                parsed[k] = e
        tap.check(all(isinstance(parsed[k], dict) for k in JSON_ATTRS),
                  f"{st}: params, inputs, input_fingerprints, input_files, libraries, sirenstack_arrays are JSON objects",
                  {k: a[k] for k in JSON_ATTRS if not isinstance(parsed[k], dict)})
        if not all(isinstance(parsed[k], dict) for k in JSON_ATTRS):
            continue
        tap.check(HEX32.match(a["fingerprint"]) is not None, f"{st}: fingerprint is 32 hex chars", a["fingerprint"])
        want_inputs = {port: f"{up}.{'data' if up == 'norm' else 'repeats'}" for port, up in ports.items()}
        tap.check(parsed["inputs"] == want_inputs, f"{st}: inputs names the upstream arrays", parsed["inputs"])
        want_fps = {port: fps[up] for port, up in ports.items()}
        tap.check(parsed["input_fingerprints"] == want_fps,
                  f"{st}: input_fingerprints equal the upstream stages' fingerprint attrs",
                  f"{parsed['input_fingerprints']} vs {want_fps}")
        libs = parsed["libraries"]
        tap.check("hdf5" in libs and "blosc" in libs and all(isinstance(v, str) for v in libs.values()),
                  f"{st}: libraries names hdf5 and blosc versions", libs)
        tap.check(all(ISO8601.match(a[k]) for k in ("started", "finished")) and a["started"] <= a["finished"],
                  f"{st}: started <= finished, ISO 8601", (a["started"], a["finished"]))
        tap.check(a["seconds"] >= 0 and a["threads"] >= 1 and a["host"] and a["device"] and a["software_version"],
                  f"{st}: seconds >= 0, threads >= 1, host/device/software_version non-empty",
                  (a["seconds"], a["threads"], a["host"], a["device"], a["software_version"]))
    # stage-specific parameters and provenance
    p = json.loads(f["norm"].attrs["params"])
    tap.check(p.get("p_low") == P_LOW and p.get("p_high") == P_HIGH, "norm: params carry p_low/p_high", p)
    p = json.loads(f["raw"].attrs["params"])
    tap.check(p.get("shape") == list(SHAPE) and p.get("repeats") == REPEATS, "raw: params carry shape/repeats", p)
    p = json.loads(f["imp"].attrs["params"])
    files = json.loads(f["imp"].attrs["input_files"])
    tap.check(p.get("dataset") == "/acq/raw" and "file" in files and HEX32.match(str(files["file"].get("hash"))),
              "imp: params name the dataset, input_files carries the source's content hash", (p, files))
    tap.check(json.loads(f["imp_blosc"].attrs["input_files"]) == files and
              f["imp_blosc"].attrs["fingerprint"] != f["imp"].attrs["fingerprint"],
              "imp_blosc: same input file hash as imp, different fingerprint (other dataset)")
    for st in ("mean", "median", "norm", "raw"):
        tap.check(json.loads(f[st].attrs["input_files"]) == {}, f"{st}: no input files")


def check_array_common(tap, where, d, axes):
    """Attributes, filter and chunks of one HDF5 dataset."""
    import numpy as np
    a = d.attrs
    ax = a.get("axes")
    tap.check(ax is not None and [str(v) for v in ax] == list(axes), f"{where}: axes {list(axes)}", ax)
    vs = a.get("voxel_size")
    tap.check(vs is not None and vs.dtype == np.float64 and list(vs) == VOXEL, f"{where}: voxel_size {VOXEL} float64",
              vs)
    tap.check(a.get("unit") == "micrometer", f"{where}: unit micrometer", a.get("unit"))
    es = a.get("element_size_um")
    tap.check(es is not None and es.dtype == np.float32 and np.array_equal(es, np.float32(VOXEL)),
              f"{where}: element_size_um {VOXEL} float32", es)

    plist = d.id.get_create_plist()
    nf = plist.get_nfilters()
    if tap.check(nf == 1, f"{where}: exactly one filter", nf):
        fid, flags, cd, name = plist.get_filter(0)
        chunk_bytes = int(np.prod(d.chunks)) * d.dtype.itemsize
        tap.check(fid == 32001, f"{where}: filter 0 is blosc 32001", (fid, name))
        tap.check(len(cd) == 7 and cd[2] == d.dtype.itemsize and cd[3] == chunk_bytes and tuple(cd[4:]) == (5, 1, 1),
                  f"{where}: cd_values (rev, fmt, typesize={d.dtype.itemsize}, {chunk_bytes}, 5, shuffle, lz4)", cd)
    ch = d.chunks
    rank = len(d.shape)
    ok = (ch is not None and ch[-2:] == d.shape[-2:] and all(c == 1 for c in ch[:rank - 3])
          and 1 <= ch[rank - 3] <= d.shape[rank - 3])
    tap.check(ok, f"{where}: chunks are plane-shaped (whole Y x X planes, leading axes 1)", (ch, d.shape))


def compressed_chunks(d):
    """(chunks stored with the filter applied, all chunks) of a dataset."""
    n = d.id.get_num_chunks()
    on = sum(1 for i in range(n) if d.id.get_chunk_info(i).filter_mask == 0)
    return on, n


def check_arrays(tap, f, src_data):
    import numpy as np
    vals = {}
    n_on = n_all = 0
    for st, (stype, arrays, ports) in STAGES.items():
        g = f[st]
        tap.check(sorted(g.keys()) == sorted(arrays), f"{st}: holds arrays {sorted(arrays)}", sorted(g.keys()))
        for name, axes in arrays.items():
            d = g[name]
            v = d[...]  # reads every chunk through hdf5plugin's blosc
            tap.check(v.shape == d.shape and np.all(np.isfinite(v)), f"{st}/{name}: reads fully, all finite",
                      v.shape)
            vals[(st, name)] = v
            check_array_common(tap, f"{st}/{name}", d, axes)
            on, n = compressed_chunks(d)
            n_on += on
            n_all += n
            tap.check(n == int(np.prod([-(-s // c) for s, c in zip(d.shape, d.chunks)])),
                      f"{st}/{name}: every chunk written", (n, d.shape, d.chunks))
    tap.check(n_on > 0, "blosc-compressed chunks exist (the decoder was exercised)", f"{n_on} of {n_all}")

    raw = vals[("raw", "repeats")]
    tap.check(raw.dtype == np.uint16 and raw.shape == (REPEATS,) + SHAPE, "raw/repeats uint16 R x Z x Y x X",
              (raw.dtype, raw.shape))
    truth = vals[("raw", "truth")]
    tap.check(truth.dtype == np.float32 and truth.shape == SHAPE, "raw/truth float32 Z x Y x X", truth.dtype)
    cc = np.corrcoef(raw.astype(np.float64).mean(axis=0).ravel(), truth.astype(np.float64).ravel())[0, 1]
    tap.check(cc > 0.8, "raw/repeats average follows raw/truth (correlation > 0.8)", cc)

    for st, how in (("imp", "gzip"), ("imp_blosc", "hdf5plugin blosc zstd/bitshuffle")):
        imp = vals[(st, "raw")]
        tap.check(imp.dtype == src_data.dtype and imp.shape == src_data.shape and np.array_equal(imp, src_data),
                  f"{st}/raw equals the {how} source array exactly (dtype, shape, values)",
                  f"{imp.dtype} {imp.shape} vs {src_data.dtype} {src_data.shape}")

    lo, hi, want = expected_norm(raw)
    a = f["norm"].attrs
    tap.check(float(a.get("p_low_value", np.nan)) == lo and float(a.get("p_high_value", np.nan)) == hi,
              "norm: p_low_value/p_high_value equal numpy.percentile exactly",
              f"store {a.get('p_low_value')}, {a.get('p_high_value')}; numpy {lo!r}, {hi!r}")
    tap.check(int(a.get("n_values", -1)) == raw.size, "norm: n_values is the voxel count", a.get("n_values"))
    norm = vals[("norm", "data")]
    tap.check(norm.dtype == np.float32, "norm/data float32", norm.dtype)
    ok, msg = close_rel(norm, want, 1e-6)
    tap.check(ok, "norm/data equals (x - p_lo) / (p_hi - p_lo + eps) within 1e-6 relative", msg)

    mean = vals[("mean", "fused")]
    want = norm.astype(np.float64).mean(axis=0)
    err = float(np.abs(mean - want).max())
    tap.check(mean.dtype == np.float32 and err <= 1e-6, "mean/fused equals numpy mean over axis 0 within 1e-6",
              f"max abs error {err:.3g}")
    med = vals[("median", "fused")]
    want = np.median(norm, axis=0)
    err = float(np.abs(med.astype(np.float64) - want.astype(np.float64)).max())
    tap.check(med.dtype == np.float32 and err <= 1e-6, "median/fused equals numpy.median over axis 0 within 1e-6",
              f"max abs error {err:.3g}, exact: {np.array_equal(med, want)}")
    return vals


def check_inspect(tap, f, path, cwd):
    import numpy as np
    js = inspect_json(path, cwd)
    tap.check(sorted(js) == sorted(STAGES), "inspect --json lists the same stages as h5py", sorted(js))
    for st, (stype, arrays, ports) in STAGES.items():
        ja = js.get(st, {}).get("arrays", {})
        tap.check(sorted(ja) == sorted(f[st].keys()), f"inspect {st}: same arrays as h5py", sorted(ja))
        for name in arrays:
            d = f[st][name]
            j = ja.get(name, {})
            tap.check(j.get("shape") == list(d.shape) and j.get("chunks") == list(d.chunks) and
                      np.dtype(j.get("dtype", "void")) == d.dtype,
                      f"inspect {st}/{name}: shape, chunks, dtype agree with h5py",
                      f"inspect {j.get('shape')} {j.get('chunks')} {j.get('dtype')}; h5py {d.shape} {d.chunks} {d.dtype}")
            tap.check(j.get("stored_bytes") == d.id.get_storage_size() and j.get("compressor") == "blosc:lz4:5:shuffle",
                      f"inspect {st}/{name}: stored_bytes and compressor agree with h5py",
                      f"inspect {j.get('stored_bytes')} {j.get('compressor')}; h5py {d.id.get_storage_size()}")
        want = attrs_json(f[st].attrs)
        got = {k: v for k, v in js.get(st, {}).items() if k != "arrays"}
        tap.check(got == want, f"inspect {st}: stage attributes agree with h5py",
                  {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)})


def check_hdf5_container(tap, path, src_data, elsewhere):
    """Opens path with h5py from the folder `elsewhere`, by a relative path,
    and runs every check. Returns {(stage, array): values} and attrs."""
    import h5py
    os.chdir(elsewhere)
    rel = os.path.relpath(path, elsewhere)
    tap.check(os.path.dirname(os.path.abspath(rel)) != os.getcwd() and
              not os.path.exists(os.path.join(elsewhere, f"{SAMPLE}.h5.d")),
              "h5py opens the index from a different working directory", f"cwd {os.getcwd()}, path {rel}")
    out = {}
    with h5py.File(rel, "r") as f:
        tap.guard("index", check_index, tap, f, path)
        tap.guard("stage attributes", check_stage_attrs, tap, f)
        out["values"] = tap.guard("arrays", check_arrays, tap, f, src_data)
        out["attrs"] = {st: attrs_json(f[st].attrs) for st in STAGES if st in f}
        out["chunks"] = {(st, n): f[st][n].chunks for st in STAGES if st in f for n in f[st]}
        tap.guard("inspect --json", check_inspect, tap, f, rel, elsewhere)
    # the same through an absolute path from the filesystem root
    os.chdir("/")
    with h5py.File(os.path.abspath(path), "r") as f:
        ok = all(f[st][n][...].size > 0 for st, (t, arrays, p) in STAGES.items() for n in arrays)
        tap.check(ok, "every array reads again through the absolute path from cwd /")
    return out


def new_tap():
    """The TAP writer of both interop drivers: long details cut to 40 lines."""
    return Tap(max_detail_lines=40)


def main():
    tap = new_tap()
    try:
        import hdf5plugin  # noqa: F401 - registers the blosc filter with h5py
        import h5py  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as e:
        print(f"1..0 # SKIP h5py/hdf5plugin/numpy not available: {e}")
        return 0
    keep = len(sys.argv) > 1
    tmp = os.path.abspath(sys.argv[1]) if keep else tempfile.mkdtemp(prefix="ss_h5py_interop_")
    os.makedirs(tmp, exist_ok=True)
    cwd0 = os.getcwd()
    try:
        path, src_data = run_pipeline(tap, tmp, "hdf5")
        if path:
            elsewhere = os.path.join(tmp, "elsewhere")
            os.makedirs(elsewhere, exist_ok=True)
            tap.guard("h5py reads the container", check_hdf5_container, tap, path, src_data, elsewhere)
    finally:
        os.chdir(cwd0)
    rc = tap.done(exit=False)
    if not keep and not rc:
        shutil.rmtree(tmp, ignore_errors=True)
    elif not keep:
        print(f"# left {tmp} for inspection")
    return rc


if __name__ == "__main__":
    sys.exit(main())
