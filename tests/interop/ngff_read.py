#!/usr/bin/python3
"""A quickstart run's Zarr container as zarr-python, xarray and ome-zarr-py read it, in TAP.

usage: ngff_read.py [WORKDIR]

Runs configs/quickstart.yaml (its SIREN fit shortened to a few steps) once with
store: hdf5 and once with store: zarr, then checks the Zarr container:

  * zarr-python: every array is an image group's level 0 (<stage>/<array>/0) or
    a plain array or table (<stage>/<name>), nothing else; each reads in full
    and equals the HDF5 run's array exactly;
  * the bioformats2raw layout of OME-NGFF 0.4: the root says
    "bioformats2raw.layout": 3 and OME/.zattrs "series" lists every image
    group, in commit order;
  * xarray.open_zarr(container, group=<image>) for each image: one variable
    "0" whose dimensions are the image's axes and whose values are the array's;
  * ome-zarr-py (from PyPI, in the venv <build>/venv-ngff, made once and kept):
    its ZarrLocation reads the layout and series from the root, and its Reader
    opens each image with the right shape, axes, name and scale. Without PyPI
    (or the venv) those points are TAP skips with the reason, never passes;
  * a stage named OME (the group of the series) is refused: exit 2, one line.

ome-zarr-py 0.11 is the last release on zarr-python 2 (Debian's); its Reader
follows neither bioformats2raw.layout nor series from the root by itself, so
the root is read through its ZarrLocation as the 0.4 spec describes, and the
Reader is given each listed image group.
"""
import json
import os
import shutil
import subprocess
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
import sslib  # noqa: E402 - the shared helpers (runs, readers, TAP)

T = sslib.Tap()
OME_ZARR = "ome-zarr>=0.10,<0.12"
SIREN_STEPS = 12


def quickstart_config(path, out, store):
    import yaml
    with open(os.path.join(sslib.SOURCE_ROOT, "configs", "quickstart.yaml")) as f:
        cfg = yaml.safe_load(f)
    cfg["run"]["output"] = out
    cfg["run"]["store"] = store
    cfg["stages"]["siren"]["params"]["steps"] = SIREN_STEPS
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return cfg


def run_quickstart(work, store):
    cfg_path = os.path.join(work, f"quickstart_{store}.yaml")
    cfg = quickstart_config(cfg_path, f"out_{store}", store)
    p = sslib.run(["run", cfg_path, "-q", "--threads", "2"])
    cont = sslib.container_path(os.path.join(work, f"out_{store}"), cfg["samples"][0]["id"], store)
    ok = T.check(p.returncode == 0 and os.path.exists(cont), f"quickstart with store: {store} runs", sslib.describe(p))
    return (cont if ok else None), cfg


# ---- zarr-python -------------------------------------------------------------

def zarr_arrays(cont):
    """'stage/name' -> array, and the paths of arrays that fit neither form."""
    import zarr
    root = zarr.open_group(cont, mode="r")
    found, odd = {}, []

    def visit(path, obj):
        if not isinstance(obj, zarr.core.Array):
            return
        parts = path.split("/")
        if len(parts) == 2 and parts[0] in stages:
            found[path] = obj
        elif len(parts) == 3 and parts[2] == "0" and parts[0] in stages and "multiscales" in root["/".join(parts[:2])].attrs:
            found["/".join(parts[:2])] = obj
        else:
            odd.append(path)
    stages = set(sslib.zarr_stage_dirs(cont))
    root.visititems(visit)
    return root, found, odd


def check_zarr_python(cont, h5cont):
    root, found, odd = zarr_arrays(cont)
    T.check(not odd, "zarr-python: every array is <stage>/<name> or an image group's <stage>/<array>/0", odd)
    h5 = sslib.read_arrays(h5cont, "hdf5")
    T.check(sorted(found) == sorted(h5), "zarr-python: the same arrays and tables as the HDF5 container",
            f"zarr only {sorted(set(found) - set(h5))}, hdf5 only {sorted(set(h5) - set(found))}")
    eq, det = sslib.arrays_equal({k: a[...] for k, a in found.items()}, h5)
    T.check(eq, f"zarr-python: all {len(found)} read in full and equal the HDF5 run's exactly", det)
    return root


def check_layout(root, cont):
    images = sslib.zarr_image_groups(cont)
    order = json.load(open(os.path.join(cont, ".sirenstack", "order.json")))
    T.check(root.attrs.get("bioformats2raw.layout") == 3, "root .zattrs: bioformats2raw.layout 3", dict(root.attrs))
    series = root["OME"].attrs.get("series") if "OME" in root else None
    T.check(series == images and len(images) >= 6,
            f"OME/.zattrs series lists the {len(images)} image groups, stages in commit order {order}",
            f"series {series}\nimage groups {images}")
    return series or []


# ---- xarray --------------------------------------------------------------------

def check_xarray(cont, series, h5):
    import numpy as np
    import xarray as xr
    bad = []
    for img in series:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no consolidated metadata: xarray says so
            ds = xr.open_zarr(cont, group=img, consolidated=False, mask_and_scale=False)
        axes = [a["name"] for a in ds.attrs["multiscales"][0]["axes"]]
        v = ds.get("0")
        if v is None or list(v.dims) != axes or v.dtype != h5[img].dtype or not np.array_equal(v.values, h5[img]):
            bad.append(f"{img}: {None if v is None else (v.dims, v.dtype)} vs axes {axes}, {h5[img].dtype}")
    T.check(series and not bad, f"xarray.open_zarr opens all {len(series)} image groups: variable 0, dims = axes, "
            "values equal", "\n".join(bad))


# ---- ome-zarr-py -----------------------------------------------------------------

CHILD = r"""
import json, sys
from ome_zarr.io import parse_url
from ome_zarr.reader import Multiscales, Reader
root = sys.argv[1]
loc = parse_url(root)
ome = parse_url(root + "/OME")
out = {"layout": loc.root_attrs.get("bioformats2raw.layout"), "series": ome.root_attrs.get("series"), "images": {}}
for path in out["series"] or []:
    nodes = list(Reader(parse_url(root + "/" + path))())
    n = nodes[0] if nodes else None
    ms = n and n.first(Multiscales)
    out["images"][path] = None if not ms else {
        "shape": list(n.data[0].shape), "dtype": str(n.data[0].dtype), "name": n.metadata.get("name"),
        "axes": [a["name"] + ":" + str(a.get("type")) for a in n.metadata["axes"]],
        "scale": n.metadata["coordinateTransformations"][0][0]["scale"],
        "sum": float(n.data[0].sum().compute())}
print(json.dumps(out))
"""


def ngff_venv():
    """The venv's python with ome-zarr importable, or (None, why)."""
    venv = os.path.join(sslib.BUILD_ROOT, "venv-ngff")
    py = os.path.join(venv, "bin", "python")
    probe = [py, "-c", "import ome_zarr.reader"]
    if os.path.exists(py) and subprocess.run(probe, capture_output=True).returncode == 0:
        return py, None
    shutil.rmtree(venv, ignore_errors=True)
    p = subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], capture_output=True,
                       text=True)
    if p.returncode != 0:
        return None, f"python3 -m venv failed: {p.stderr.strip()[-300:]}"
    try:
        p = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--timeout", "30",
                            OME_ZARR], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return None, f"pip install {OME_ZARR} took more than 10 minutes"
    if p.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"pip install {OME_ZARR} failed (PyPI unreachable?): {last[:200]}"
    return py, None


def check_ome_zarr(cont, series, h5, voxel):
    py, why = ngff_venv()
    what = ["reads the layout and series from the root", "opens every image with its shape and dtype",
            "axes and scale", "values"]
    if not py:
        for w in what:
            T.skip(f"ome-zarr-py {w}", why)
        return
    p = subprocess.run([py, "-c", CHILD, cont], capture_output=True, text=True, timeout=300)
    try:
        got = json.loads(p.stdout)
    except ValueError:
        T.check(False, "ome-zarr-py reads the container", f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
        return
    T.diag(f"ome-zarr-py from {py}")
    T.check(got["layout"] == 3 and got["series"] == series, f"ome-zarr-py {what[0]} ({len(series)} images)", got)
    imgs = got["images"]
    bad_shape, bad_axes, bad_sum = [], [], []
    for path in series:
        g, ref = imgs.get(path), h5[path]
        if not g or g["shape"] != list(ref.shape) or g["dtype"] != str(ref.dtype) or g["name"] != path:
            bad_shape.append(f"{path}: {g and (g['shape'], g['dtype'], g['name'])} vs {ref.shape} {ref.dtype}")
            continue
        want_axes = ["r:time"] * (ref.ndim - 3) + ["z:space", "y:space", "x:space"]
        if g["axes"] != want_axes or g["scale"] != [1.0] * (ref.ndim - 3) + voxel:
            bad_axes.append(f"{path}: {g['axes']} {g['scale']}")
        if abs(g["sum"] - float(ref.astype("float64").sum())) > 1e-6 * max(1.0, abs(g["sum"])):
            bad_sum.append(f"{path}: sum {g['sum']} vs {ref.sum()}")
    T.check(not bad_shape, f"ome-zarr-py {what[1]} (named <stage>/<array>)", "\n".join(bad_shape))
    T.check(not bad_axes, f"ome-zarr-py {what[2]}: r as time, z y x space, scale 1 on r and the voxel size on z y x",
            "\n".join(bad_axes))
    T.check(not bad_sum, f"ome-zarr-py {what[3]}: each image sums as the HDF5 run's", "\n".join(bad_sum))


def check_reserved_name(work):
    cfg = sslib.make_config(os.path.join(work, "ome.yaml"), {
        "raw": {"uses": "synth_smooth", "params": {"shape": [4, 16, 16], "repeats": 2}},
        "OME": {"uses": "fuse_mean", "inputs": {"repeats": "raw.repeats"}}}, store="zarr", output="out_ome")
    p = sslib.run(["run", cfg, "-q"])
    err = p.stderr.strip().splitlines()
    cont = sslib.container_path(os.path.join(work, "out_ome"), "s1", "zarr")
    T.check(p.returncode == 2 and len(err) == 1 and "'OME' is reserved" in err[0] and
            sslib.zarr_series(cont) == ["raw/repeats", "raw/truth"],
            "a stage named OME: exit 2, one line; the OME group still lists the images", sslib.describe(p))


def main():
    try:
        import numpy  # noqa: F401
        import xarray  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as e:
        print(f"1..0 # SKIP zarr-python, xarray or numpy not available: {e}")
        return 0
    work = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else T.tmpdir("ngff")
    os.makedirs(work, exist_ok=True)
    h5cont, cfg = run_quickstart(work, "hdf5")
    cont, _ = run_quickstart(work, "zarr")
    if not (cont and h5cont):
        return T.done()
    voxel = [float(v) for v in cfg["samples"][0]["voxel_size"]]
    root = T.guard("zarr-python reads the container", check_zarr_python, cont, h5cont)
    h5 = sslib.read_arrays(h5cont, "hdf5")
    series = T.guard("bioformats2raw layout", check_layout, root, cont) if root is not None else []
    T.guard("xarray", check_xarray, cont, series or [], h5)
    T.guard("ome-zarr-py", check_ome_zarr, cont, series or [], h5, voxel)
    T.guard("stage OME", check_reserved_name, work)
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
