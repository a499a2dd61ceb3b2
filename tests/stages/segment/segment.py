#!/usr/bin/python3
"""Stages segment3d and seg_score, in TAP.

  - segment3d on a stack of touching, blurred, noisy spheres with an
    anisotropic voxel size against the same steps in numpy, scipy and
    skimage: the intermodes threshold (a numpy transcription of ImageJ's),
    binary_fill_holes, distance_transform_edt(sampling), h_maxima inside the
    foreground labelled 26-connected, watershed(-edt, connectivity=1,
    mask), unmarked components, renumbering in raster order: the same
    threshold and objects, the labels equal but for watershed ties; the
    objects table against the labels it came with; a given threshold
  - the IsoNet check on a nuclei phantom: SEG of segment3d on the noisy
    stack against the phantom's labels well above chance, the labels against
    themselves 1
  - bad input: a constant (all-zero) image, a threshold no voxel reaches,
    float labels and labels of another shape (exit 3, one line naming them)
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

try:
    import numpy as np
    import scipy.ndimage as ndi
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed
    import seglib
except ImportError as e:
    print(f"1..0 # SKIP numpy/scipy/skimage not available: {e}")
    sys.exit(0)

import h5py  # noqa: E402

import sslib  # noqa: E402

T = sslib.Tap()
VOX = [1.0, 0.5, 0.5]


def threshold_numpy(img):
    x = img.astype(np.float64)
    lo, hi = float(img.min()), float(img.max())
    w = (hi - lo) / 256
    b = np.clip(np.floor((x - lo) / w), 0, 255).astype(int)
    t = seglib.intermodes(np.bincount(b.ravel(), minlength=256).astype(np.float64))[1]
    return lo + (t + 1) * w


def segment_numpy(img, thr, h, vox):
    mask = ndi.binary_fill_holes(img >= thr)
    d = ndi.distance_transform_edt(mask, sampling=vox)
    mk, nm = ndi.label(h_maxima(d, h).astype(bool) & mask, structure=np.ones((3, 3, 3)))
    lab = watershed(-d, mk, connectivity=1, mask=mask).astype(np.int64)
    rest, _ = ndi.label(mask & (lab == 0))
    lab[rest > 0] = nm + rest[rest > 0]
    # Background comes first (voxel 0 is background here), so the rank of
    # each label's first voxel is its new number.
    _, first, inv = np.unique(lab.ravel(), return_index=True, return_inverse=True)
    assert lab.flat[0] == 0
    return np.argsort(np.argsort(first))[inv].reshape(img.shape)


def spheres_image(seed):
    r = np.random.default_rng(seed)
    shape = (24, 64, 72)
    zz, yy, xx = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, VOX)], indexing="ij")
    f = np.zeros(shape)
    for c, rad in [((12, 16, 10), 5.5), ((12, 16, 19.5), 5), ((11, 17, 28), 4.5), ((12, 6, 30), 3), ((5, 25, 8), 3)]:
        f += (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= rad * rad
    f = ndi.gaussian_filter(np.minimum(f, 1) * 100 + 10, (0.7, 1.2, 1.2))
    return r.poisson(f).astype(np.float32)


def import_cfg(d, datasets, extra, name="c.yaml"):
    """A config importing each (stage, dataset) of in.h5 as an image, plus extra stages."""
    st = {k: {"uses": "import_hdf5", "params": {"file": "in.h5", "dataset": v, "axes": "zyx", "voxel_size": VOX}}
          for k, v in datasets.items()}
    st.update(extra)
    return sslib.make_config(os.path.join(d, name), st)


def run(cfg):
    return sslib.run(["run", cfg, "--threads", "2", "-q"], timeout=300)


def against_numpy():
    d = T.tmpdir("segment")
    img = spheres_image(1)
    with h5py.File(os.path.join(d, "in.h5"), "w") as f:
        f["img"] = img
    cfg = import_cfg(d, {"raw": "/img"}, {
        "seg": {"uses": "segment3d", "inputs": {"image": "raw.raw"}, "params": {"h_um": 0.75}},
        "given": {"uses": "segment3d", "inputs": {"image": "raw.raw"}, "params": {"threshold": 70, "h_um": 0.75}}})
    p = run(cfg)
    if not T.check(p.returncode == 0, "segment3d on touching spheres runs", sslib.describe(p)):
        return
    cont = sslib.container_path(os.path.join(d, "out"), "s1", "hdf5")
    a = sslib.read_arrays(cont, "hdf5")
    at = sslib.stage_attrs(cont, "hdf5", "seg")
    thr = threshold_numpy(img)
    T.check(at.get("threshold") == thr and at.get("threshold_method") == "intermodes",
            "the intermodes threshold equals numpy's", f"{at.get('threshold')} vs {thr}")
    got = a["seg/labels"]
    want = segment_numpy(img, thr, 0.75, VOX)
    fg = want > 0
    agree = np.mean(got[fg] == want[fg])
    T.diag(f"touching spheres: {got.max()} objects ({want.max()} by skimage), {agree:.5f} of the foreground equal")
    T.check(got.dtype == np.uint32 and np.array_equal(got > 0, fg) and got.max() == want.max() == 5 and agree > 0.99,
            "labels: uint32, the same foreground and 5 objects as the numpy/skimage steps, > 99% of voxels equal (ties)",
            f"{got.dtype}, {got.max()} vs {want.max()} objects, agreement {agree}")
    obj = a["seg/objects"]
    ids = np.arange(1, got.max() + 1)
    sizes = ndi.sum_labels(np.ones_like(got), got, ids)
    cents = np.array(ndi.center_of_mass(np.ones_like(got), got, ids))
    T.check(np.array_equal(obj["label"], ids) and np.array_equal(obj["voxels"], sizes) and
            np.allclose(np.stack([obj["z"], obj["y"], obj["x"]], 1), cents, rtol=0, atol=1e-9),
            "objects: label, voxels and centroid of each label", str(obj))
    first = [np.flatnonzero(got.ravel() == i)[0] for i in ids]
    T.check(first == sorted(first), "labels are numbered in raster order of their first voxel")
    gl = a["given/labels"]
    ga = sslib.stage_attrs(cont, "hdf5", "given")
    T.check(ga.get("threshold") == 70 and ga.get("threshold_method") == "given" and
            np.array_equal(gl > 0, ndi.binary_fill_holes(img >= 70)),
            "a given threshold: foreground is value >= threshold (holes filled)", str(ga.get("threshold")))


def phantom():
    d = T.tmpdir("segment-phantom")
    st = {
        "phantom": {"uses": "synth", "params": {"phantom": "nuclei", "shape": [40, 64, 64], "repeats": 1,
                                                "photons": 200}},
        "seg": {"uses": "segment3d", "inputs": {"image": "phantom.repeats"}},
        "score": {"uses": "seg_score", "inputs": {"reference": "phantom.labels",
                                                  "methods": ["seg.labels", "phantom.labels"]}},
    }
    p = run(sslib.make_config(os.path.join(d, "c.yaml"), st, samples=[{"id": "s1"}]))
    if not T.check(p.returncode == 0, "nuclei phantom -> segment3d -> seg_score runs", sslib.describe(p)):
        return
    t = sslib.read_arrays(sslib.container_path(os.path.join(d, "out"), "s1", "hdf5"), "hdf5")["score/seg"]
    rows = {r["method"].decode(): r for r in t}
    s, self_ = rows.get("seg.labels"), rows.get("phantom.labels")
    T.diag(f"nuclei phantom: SEG {s['seg']:.4f}, {s['n_matched']} of {s['n_reference']} nuclei matched")
    T.check(s["seg"] > 0.7 and s["n_matched"] > 0.8 * s["n_reference"] and s["n_reference"] > 20,
            "SEG of segment3d on the noisy phantom is well above chance (> 0.7, > 80% of nuclei matched)", str(s))
    T.check(self_["seg"] == 1.0 and self_["n_matched"] == self_["n_reference"], "the phantom's labels against "
            "themselves: SEG 1", str(self_))


def bad_input():
    d = T.tmpdir("segment-bad")
    img = spheres_image(2)
    with h5py.File(os.path.join(d, "in.h5"), "w") as f:
        f["zeros"] = np.zeros((8, 20, 20), np.float32)
        f["img"] = img
        f["small"] = np.ones((8, 20, 20), np.uint16)
        f["float"] = np.ones(img.shape, np.float32)
    cases = [
        ("an all-zero (empty, constant) image", {"z": "/zeros"},
         {"seg": {"uses": "segment3d", "inputs": {"image": "z.raw"}}}, ["z.raw is constant"]),
        ("a threshold no voxel reaches", {"i": "/img"},
         {"seg": {"uses": "segment3d", "inputs": {"image": "i.raw"}, "params": {"threshold": 1e9}}},
         ["no voxel of i.raw reaches"]),
        ("labels of another shape", {"i": "/img", "s": "/small"},
         {"seg": {"uses": "segment3d", "inputs": {"image": "i.raw"}},
          "score": {"uses": "seg_score", "inputs": {"reference": "seg.labels", "methods": ["s.raw"]}}},
         ["s.raw is 8 x 20 x 20 but reference seg.labels is 24 x 64 x 72"]),
        ("float labels", {"i": "/img", "f": "/float"},
         {"seg": {"uses": "segment3d", "inputs": {"image": "i.raw"}},
          "score": {"uses": "seg_score", "inputs": {"reference": "seg.labels", "methods": ["f.raw"]}}},
         ["f.raw is float32; labels are integers"]),
    ]
    for k, (desc, ds, extra, words) in enumerate(cases):
        p = run(import_cfg(d, ds, extra, name=f"c{k}.yaml"))
        T.check(p.returncode == 3 and all(w in p.stderr for w in words),
                f"{desc}: input error (exit 3) naming it", sslib.describe(p))


for fn in (against_numpy, phantom, bad_input):
    try:
        fn()
    except Exception as e:  # a crash of a check is a failed point, not a dead test
        import traceback
        T.check(False, f"{fn.__name__} (raised {type(e).__name__})", traceback.format_exc())
T.done()
