#!/usr/bin/python3
"""The segmentation kernels against numpy, scipy and skimage; prints TAP.

usage: check_segment.py SEGMENT_REF

  intermodes  against a numpy transcription of ImageJ's Intermodes (3-point
              running mean, 0 outside, until exactly two strict maxima;
              floor of their mean), on bimodal, skewed, noisy (many passes)
              and degenerate histograms
  fill        against scipy.ndimage.binary_fill_holes (default structure)
  edt         against scipy.ndimage.distance_transform_edt, isotropic and
              with anisotropic sampling
  hmax        against skimage.morphology.h_maxima
  label       against scipy.ndimage.label, 6- and 26-connected, numbering
              included
  watershed   against skimage.segmentation.watershed with the same markers,
              mask and connectivity: equal on images without ties; on the
              negated EDT of touching spheres (many ties) nearly equal
  seg         1 for identical labels, 0 for disjoint ones, a small case by
              hand, and a brute-force numpy SEG on random label images
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

try:
    import numpy as np
    import scipy.ndimage as ndi
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed
    import seglib
except ImportError as e:
    print(f"1..0 # SKIP numpy/scipy/skimage not available: {e}")
    sys.exit(0)

REF = sys.argv[1]
T = Tap()
TMP = T.tmpdir("segment")


def path(name):
    return os.path.join(TMP, name)


def run(*args):
    return subprocess.run([REF, *map(str, args)], capture_output=True, text=True, check=True).stdout.split()


def put(name, a, dtype):
    np.ascontiguousarray(a, dtype).tofile(path(name))
    return path(name)


def get(name, dtype, shape):
    return np.fromfile(path(name), dtype).reshape(shape)


# ---- intermodes ------------------------------------------------------------------

intermodes_numpy = seglib.intermodes


def intermodes(h):
    out = run("intermodes", put("h.f64", h, np.float64), len(h))
    return int(out[0]), int(out[1])


rng = np.random.default_rng(20250301)
edges = np.linspace(0, 1, 257)


def hist_of(samples):
    return np.histogram(np.clip(samples, 0, 1 - 1e-12), bins=edges)[0].astype(np.float64)


hists = {
    "bimodal": hist_of(np.concatenate([rng.normal(0.25, 0.05, 60000), rng.normal(0.7, 0.08, 30000)])),
    "skewed": hist_of(np.concatenate([rng.gamma(2.0, 0.04, 80000), rng.normal(0.6, 0.12, 8000)])),
    "noisy, many passes": hist_of(np.concatenate([rng.normal(0.3, 0.1, 400), rng.normal(0.75, 0.06, 200)])),
    "by hand": np.array([0, 5, 0, 0, 3, 0], np.float64),
}
for name, h in hists.items():
    got, want = intermodes(h), intermodes_numpy(h)
    T.check(got == want and got[0] >= 0, f"intermodes {name}: passes and threshold bin as numpy", f"{got} vs {want}")
T.check(intermodes(hists["by hand"]) == (0, 2), "intermodes by hand: maxima 1 and 4 -> bin 2 without smoothing")
T.check(intermodes_numpy(hists["noisy, many passes"])[0] > 20, "the noisy histogram needs more than 20 passes",
        intermodes_numpy(hists["noisy, many passes"]))
for name, h in {"flat": np.ones(256), "one spike": np.eye(1, 256, 100)[0] * 1000, "one Gaussian":
                1000 * np.exp(-0.5 * ((edges[:-1] - 0.5) / 0.1) ** 2)}.items():
    got = intermodes(h)
    want = intermodes_numpy(h)
    T.check(got[0] == -1 and want[0] == -1, f"intermodes {name}: never bimodal, refused (-1) as numpy finds", f"{got} {want}")


# ---- volumes ----------------------------------------------------------------------

def blobs(shape, sigma, frac, seed):
    r = np.random.default_rng(seed)
    f = ndi.gaussian_filter(r.standard_normal(shape), sigma)
    return f > np.quantile(f, 1 - frac)


def spheres(shape, centres, radii, sampling=(1, 1, 1)):
    zz, yy, xx = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, sampling)], indexing="ij")
    m = np.zeros(shape, bool)
    for c, r in zip(centres, radii):
        m |= (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
    return m


def shells(shape, seed):
    """Hollow balls (cavities to fill), one open to the border, blobs around them."""
    m = blobs(shape, 1.5, 0.2, seed)
    z, y, x = shape
    for c, r in [((z / 2, y / 3, x / 3), 5), ((z / 2, 2 * y / 3, 2 * x / 3), 4), ((0, y / 2, x / 2), 4)]:
        m |= spheres(shape, [c], [r]) & ~spheres(shape, [c], [r - 1.5])
    return m


vols = {
    "blobs": blobs((20, 33, 29), 2.0, 0.4, 1),
    "shells": shells((24, 40, 36), 2),
    "sparse": blobs((9, 50, 47), 1.0, 0.15, 3),
    "plane": blobs((1, 61, 57), 2.0, 0.5, 4),
}

for name, m in vols.items():
    run("fill", put("m.u8", m, np.uint8), *m.shape, path("o.u8"))
    got, want = get("o.u8", np.uint8, m.shape).astype(bool), ndi.binary_fill_holes(m)
    T.check(np.array_equal(got, want) and (name != "shells" or want.sum() > m.sum()),
            f"fill {name}: equal to binary_fill_holes", f"{np.sum(got != want)} voxels differ")

for name, m in list(vols.items()) + [("touching spheres", spheres((26, 40, 44), [(13, 20, 15), (13, 20, 28)], [8, 7]))]:
    for s in [(1.0, 1.0, 1.0), (2.0, 0.5, 0.7)]:
        run("edt", put("m.u8", m, np.uint8), *m.shape, *s, path("d.f64"))
        got, want = get("d.f64", np.float64, m.shape), ndi.distance_transform_edt(m, sampling=s)
        err = np.max(np.abs(got - want) / np.maximum(want, 1))
        T.check(err < 1e-12, f"edt {name}, sampling {s}: equal to distance_transform_edt (1e-12)", f"max rel err {err}")


def hmax(f, h):
    run("hmax", put("f.f64", f, np.float64), *f.shape, h, path("o.u8"))
    return get("o.u8", np.uint8, f.shape)


touching = spheres((30, 48, 60), [(15, 24, 17), (15, 24, 32), (14, 25, 45), (6, 10, 10)], [9, 7, 8, 3])
edt_touch = ndi.distance_transform_edt(touching, sampling=(1.0, 0.5, 0.5))
smooth = ndi.gaussian_filter(np.random.default_rng(5).standard_normal((16, 40, 40)), 2.0)
for name, f, h in [("edt of touching spheres", edt_touch, 0.5), ("edt of touching spheres", edt_touch, 1.5),
                   ("smooth noise", smooth, 0.05), ("smooth noise", smooth, 0.3), ("edt, h above range", edt_touch, 1e3)]:
    got, want = hmax(f, h), h_maxima(f, h)
    T.check(np.array_equal(got, want) and (h > 100 or want.any()), f"hmax {name}, h {h}: equal to skimage h_maxima",
            f"{np.sum(got != want)} voxels differ of {want.sum()} maxima")


def label(m, conn):
    count = int(run("label", put("m.u8", m, np.uint8), *m.shape, conn, path("l.u32"))[0])
    return count, get("l.u32", np.uint32, m.shape)


for name, m in vols.items():
    for conn, st in [(6, None), (26, np.ones((3, 3, 3)))]:
        n, got = label(m, conn)
        want, wn = ndi.label(m, structure=st)
        T.check(n == wn and np.array_equal(got, want), f"label {name}, {conn}-connected: equal to ndimage.label",
                f"{n} vs {wn} components, {np.sum(got != want)} voxels differ")


def ws(img, markers, mask, conn):
    mpath = put("mask.u8", mask, np.uint8) if mask is not None else "-"
    run("watershed", put("img.f64", img, np.float64), put("mk.u32", markers, np.uint32), mpath, *img.shape, conn,
        path("w.u32"))
    return get("w.u32", np.uint32, img.shape)


r = np.random.default_rng(6)
shape = (18, 36, 40)
img = r.random(shape)
markers = np.zeros(shape, np.uint32)
idx = r.choice(img.size, 12, replace=False)
markers.flat[idx] = np.arange(1, 13)
mask = blobs(shape, 2.0, 0.7, 7)
for m, mname in [(None, "no mask"), (mask, "blob mask")]:
    for conn, sk in [(6, 1), (26, 3)]:
        got = ws(img, markers, m, conn)
        want = watershed(img, markers, connectivity=sk, mask=m)
        T.check(np.array_equal(got, want), f"watershed of random values, {mname}, {conn}-connected: equal to skimage",
                f"{np.sum(got != want)} voxels differ")

mk_touch = ndi.label(h_maxima(edt_touch, 1.0), structure=np.ones((3, 3, 3)))[0].astype(np.uint32)
got = ws(-edt_touch, mk_touch, touching, 6)
want = watershed(-edt_touch, mk_touch, connectivity=1, mask=touching)
agree = np.mean(got[touching] == want[touching])
T.diag(f"watershed of touching spheres: {mk_touch.max()} markers, {agree:.5f} of the foreground as skimage")
T.check(mk_touch.max() == 4 and agree > 0.99 and set(np.unique(got)) == set(np.unique(want)),
        "watershed of -EDT of 4 touching spheres from h-maxima: same objects, > 99% of voxels as skimage (ties)",
        f"{mk_touch.max()} markers, agreement {agree}")


# ---- SEG --------------------------------------------------------------------------

def seg(a, b):
    out = run("seg", put("a.u32", a, np.uint32), put("b.u32", b, np.uint32), a.size)
    return float(out[0]), int(out[1]), int(out[2])


def seg_numpy(a, b):
    js = []
    for r in np.unique(a[a > 0]):
        inr = a == r
        s, c = np.unique(b[inr], return_counts=True)
        j = 0.0
        for sv, cv in zip(s, c):
            if sv and 2 * cv > inr.sum():
                j = cv / np.sum(inr | (b == sv))
        js.append(j)
    return float(np.mean(js)) if js else float("nan"), len(js), int(np.sum(np.array(js) > 0))


lab = ndi.label(vols["blobs"])[0].astype(np.uint32)
T.check(seg(lab, lab) == (1.0, lab.max(), lab.max()), "seg of identical labels is 1, every object matched",
        seg(lab, lab))
shifted = np.where(lab > 0, lab + 1000, 0).astype(np.uint32)
T.check(seg(lab, shifted)[0] == 1.0, "seg does not depend on the predicted label numbers")
other = ndi.label(~vols["blobs"])[0].astype(np.uint32)
T.check(seg(lab, other)[:3:2] == (0.0, 0), "seg of disjoint labels is 0, nothing matched", seg(lab, other))
# R1 = voxels 0-3 (4); S5 = 0-2 inside it: 3 > 2, J = 3 / (4 + 3 - 3) = 0.75.
# R2 = 5-7 (3); S2 covers 1, S7 = 6-8 covers 2 > 1.5: J = 2 / (3 + 3 - 2) = 0.5.
# R3 = 9 (1) lies on background: 0.
# R4 = 10-13 (4); S8 and S9 cover 2 each, not more than half: 0.
# SEG = (0.75 + 0.5 + 0 + 0) / 4 = 0.3125, 2 of 4 matched.
a = np.array([1, 1, 1, 1, 0, 2, 2, 2, 0, 3, 4, 4, 4, 4], np.uint32)
b = np.array([5, 5, 5, 0, 0, 2, 7, 7, 7, 0, 8, 8, 9, 9], np.uint32)
T.check(seg(a, b) == (0.3125, 4, 2), "seg by hand: (3/4 + 2/4 + 0 + 0) / 4 = 0.3125, 2 of 4 matched", seg(a, b))
for k in range(3):
    rr = np.random.default_rng(30 + k)
    ra = ndi.label(blobs((12, 30, 30), 1.5, 0.4, 40 + k))[0].astype(np.uint32)
    rb = ndi.label(ndi.binary_dilation(blobs((12, 30, 30), 1.5, 0.4, 40 + k), iterations=int(rr.integers(0, 2))) &
                   (rr.random((12, 30, 30)) > 0.1))[0].astype(np.uint32)
    got, want = seg(ra, rb), seg_numpy(ra, rb)
    T.check(abs(got[0] - want[0]) < 1e-12 and got[1:] == want[1:] and 0 < want[0] < 1,
            f"seg of random labels {k}: equal to brute force numpy", f"{got} vs {want}")

T.done()
