#!/usr/bin/python3
"""Stage deconv_rl (Richardson-Lucy, optionally with TV), in TAP.

Against an independent NumPy implementation written here (numpy.fft, float64,
the stage's padding: the PSF's half extent each side, rounded up to a
7-smooth length at the high end, mirrored with numpy's 'symmetric', zeros, or
none for periodic): the estimate after 1, 5 and 20 iterations and the curve,
with an asymmetric PSF from an input (so a convolution mistaken for a
correlation shows) and with the Gaussian from sigma_xy/sigma_z; zero and
periodic edges; RL-TV. On a point source and beads the peak sharpens and the
residual falls. Blocks along z (max_memory_mb forcing several) against one
whole pass. TV at lambda 0 is plain RL, and a small lambda beats plain RL on
a noisy phantom. RL beats its blurred input on synth's nuclei. Bad input:
exit 3 (2 at validation), one line, nothing committed."""
import os
import stat
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))

import numpy as np  # noqa: E402

import sslib  # noqa: E402
from sslib import h5py  # noqa: E402

T = sslib.Tap()
TOL = 1e-4  # max |stage - numpy| / max |numpy|: float32 transforms against float64


def fft_size(n):
    m = n
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def gaussian_psf(shape, sz, sxy):
    r = []
    for s, n in zip((sz, sxy, sxy), shape):
        k = int(4 * s + 0.5) if s > 0 else 0
        r.append(min(k, (n - 1) // 2))
    g = [np.arange(-k, k + 1, dtype=np.float64) for k in r]
    e = np.zeros([2 * k + 1 for k in r])
    for a, (s, v) in enumerate(zip((sz, sxy, sxy), g)):
        if s > 0:
            sh = [1, 1, 1]
            sh[a] = len(v)
            e = e + 0.5 * (v.reshape(sh) / s) ** 2
    h = np.exp(-e)
    return h / h.sum()


def otf_of(psf, shape):
    big = np.zeros(shape)
    big[tuple(slice(0, n) for n in psf.shape)] = psf
    big = np.roll(big, [-(n // 2) for n in psf.shape], axis=(0, 1, 2))
    return np.fft.rfftn(big)


def conv(x, otf, conj=False):
    return np.fft.irfftn(np.fft.rfftn(x) * (np.conj(otf) if conj else otf), s=x.shape)


def tv_divisor(u, lam, eps):
    g = [np.roll(u, -1, axis=a) - u for a in range(3)]
    m = np.sqrt(sum(x * x for x in g) + eps * eps)
    inv = np.where(m > 0, 1 / np.where(m > 0, m, 1), 0)
    n = [x * inv for x in g]
    div = sum(n[a] - np.roll(n[a], 1, axis=a) for a in range(3))
    return 1 - lam * div


def rl_numpy(img, psf, iters, edge="reflect", lam=0.0, floor=1e-6, keep=()):
    """Estimates after each iteration in keep, and the relative changes."""
    d = np.maximum(img.astype(np.float64), 0)
    psf = psf / psf.sum()
    if edge == "periodic":
        pads = [(0, 0)] * 3
    else:
        pads = [(2 * h, fft_size(n + 4 * h) - n - 2 * h) for n, h in zip(d.shape, [k // 2 for k in psf.shape])]
    dp = np.pad(d, pads, mode="symmetric" if edge == "reflect" else "wrap" if edge == "periodic" else "constant")
    otf = otf_of(psf, dp.shape)
    core = tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, d.shape))
    u = np.full(dp.shape, d.mean())
    out, changes = {}, []
    for it in range(1, iters + 1):
        new = u * conv(dp / np.maximum(conv(u, otf), floor), otf, conj=True)
        if lam > 0:
            new = new / tv_divisor(u, lam, 1e-3 * d.mean())
        new = np.maximum(new, 0)
        changes.append(float(np.sqrt(np.sum((new[core] - u[core]) ** 2) / np.sum(u[core] ** 2))))
        u = new
        if it in keep:
            out[it] = u[core].copy()
    return out, changes


def rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())


def psnr(a, ref):
    a = a.astype(np.float64)
    return 10 * np.log10(float(ref.max() - ref.min()) ** 2 / float(np.mean((a - ref) ** 2)))


def write_h5(d, arrays):
    with h5py.File(os.path.join(d, "in.h5"), "w") as f:
        for k, v in arrays.items():
            f[k] = v


def imp(name):
    return {"uses": "import_hdf5", "params": {"file": "in.h5", "dataset": "/" + name, "axes": "zyx"}}


def run_config(d, stages, tag="c", env=None):
    cfg = sslib.make_config(os.path.join(d, tag + ".yaml"), stages, output="out_" + tag)
    p = sslib.run(["run", cfg, "--threads", "2", "-q"], env=env, timeout=600)
    cont = sslib.container_path(os.path.join(d, "out_" + tag), "s1", "hdf5")
    return p, cont, cfg


def beads_volume(shape, rng, n=5):
    t = np.zeros(shape)
    t[tuple(s // 2 for s in shape)] = 1000.0
    for _ in range(n):
        t[tuple(int(rng.integers(4, s - 4)) for s in shape)] = rng.uniform(300, 800)
    return t


def against_numpy():
    rng = np.random.default_rng(3)
    shape = (20, 40, 36)
    truth = beads_volume(shape, rng)
    # an asymmetric PSF: a Gaussian with a tail to one side in each axis
    g = gaussian_psf((9, 9, 11), 1.5, 1.2)
    asym = g * (1 + 0.8 * np.linspace(0, 1, 9)[:, None, None]) * (1 + 0.5 * np.linspace(0, 1, 11)[None, None, :])
    asym = (asym / asym.sum() * 3.0).astype(np.float32)  # not normalised: the stage must
    blurred = conv(np.pad(truth, [(0, 0)] * 3), otf_of(asym.astype(np.float64) / asym.sum(), shape))
    img = (np.maximum(blurred, 0) + 1.0).astype(np.float32)
    d = T.tmpdir("rl-numpy")
    write_h5(d, {"img": img, "psf": asym})
    st = {"img": imp("img"), "psf": imp("psf")}
    for it in (1, 5, 20):
        st[f"rl{it}"] = {"uses": "deconv_rl", "inputs": {"image": "img.raw", "psf": "psf.raw"},
                         "params": {"iterations": it}}
    for edge in ("zero", "periodic"):
        st[edge] = {"uses": "deconv_rl", "inputs": {"image": "img.raw", "psf": "psf.raw"},
                    "params": {"iterations": 5, "edge": edge}}
    st["gauss"] = {"uses": "deconv_rl", "inputs": {"image": "img.raw"},
                   "params": {"iterations": 5, "sigma_xy": 1.2, "sigma_z": 1.5}}
    st["tv"] = {"uses": "deconv_rl", "inputs": {"image": "img.raw", "psf": "psf.raw"},
                "params": {"iterations": 5, "tv_lambda": 0.002}}
    p, cont, _ = run_config(d, st)
    if not T.check(p.returncode == 0, "a run of deconv_rl stages completes", sslib.describe(p)):
        return
    a = sslib.read_arrays(cont, "hdf5")
    want, changes = rl_numpy(img, asym.astype(np.float64), 20, keep=(1, 5, 20))
    for it in (1, 5, 20):
        got = a[f"rl{it}/deconvolved"]
        e = rel(got, want[it])
        T.check(got.dtype == np.float32 and got.shape == shape and e <= TOL,
                f"reflect edges, an asymmetric PSF input, {it} iterations: equals NumPy (error {e:.2e})")
    cv = a["rl20/curve"]
    ce = float(np.max(np.abs(cv["relative_change"] - changes) / np.array(changes)))
    T.check(list(cv["iteration"]) == list(range(1, 21)) and ce <= 1e-3,
            f"the curve's relative changes equal NumPy's for 20 iterations (error {ce:.1e})", str(cv))
    T.check(changes[-1] < changes[0] / 5, f"the relative change falls ({changes[0]:.3g} to {changes[-1]:.3g})")
    for edge in ("zero", "periodic"):
        w, _ = rl_numpy(img, asym.astype(np.float64), 5, edge=edge, keep=(5,))
        e = rel(a[f"{edge}/deconvolved"], w[5])
        T.check(e <= TOL, f"{edge} edges, 5 iterations: equals NumPy (error {e:.2e})")
    w, _ = rl_numpy(img, gaussian_psf(shape, 1.5, 1.2), 5, keep=(5,))
    e = rel(a["gauss/deconvolved"], w[5])
    T.check(e <= TOL, f"the Gaussian PSF from sigma_xy 1.2, sigma_z 1.5: equals NumPy (error {e:.2e})")
    w, _ = rl_numpy(img, asym.astype(np.float64), 5, lam=0.002, keep=(5,))
    got = a["tv/deconvolved"].astype(np.float64)
    e = float(np.linalg.norm(got - w[5]) / np.linalg.norm(w[5]))
    T.check(e <= 1e-3, f"RL-TV at lambda 0.002, 5 iterations: equals NumPy (relative L2 error {e:.2e})")
    at = sslib.stage_attrs(cont, "hdf5", "rl20")
    T.check(int(at["blocks"]) == 1 and list(at["psf_shape"]) == [9, 9, 11] and list(at["pad"]) == [8, 8, 10],
            "one block, the PSF's shape and the padding are recorded", str(at))

    # convergence on the point source and the beads
    c = tuple(s // 2 for s in shape)
    peaks = [float(img[c])] + [float(a[f"rl{it}/deconvolved"][c]) for it in (1, 5, 20)]
    otf = otf_of(asym.astype(np.float64) / asym.sum(), shape)
    resid = [float(np.linalg.norm(conv(a[f"rl{it}/deconvolved"].astype(np.float64), otf) - img))
             for it in (1, 5, 20)]
    T.check(all(x < y for x, y in zip(peaks[1:], peaks[2:])) and peaks[-1] > 3 * peaks[0],
            f"the point source's peak sharpens with iterations, beyond 3 times the data's (data, 1, 5, 20: "
            f"{', '.join(f'{x:.0f}' for x in peaks)}; truth 1000)")
    T.check(all(x > y for x, y in zip(resid, resid[1:])),
            f"the residual |psf * u - data| falls ({', '.join(f'{x:.1f}' for x in resid)})")
    u20 = a["rl20/deconvolved"]
    T.check(tuple(int(i) for i in np.unravel_index(np.argmax(u20), shape)) == c,
            "the brightest voxel after 20 iterations is the point source")


def blocks_and_tv():
    rng = np.random.default_rng(5)
    shape = (96, 48, 48)
    truth = beads_volume(shape, rng, n=30)
    psf = gaussian_psf(shape, 2.0, 1.2)
    img = (np.maximum(conv(truth, otf_of(psf, shape)), 0) + 2.0).astype(np.float32)
    d = T.tmpdir("rl-blocks")
    write_h5(d, {"img": img})
    base = {"sigma_xy": 1.2, "sigma_z": 2.0, "iterations": 20}
    st = {"img": imp("img"),
          "whole": {"uses": "deconv_rl", "inputs": {"image": "img.raw"}, "params": dict(base)},
          "blocks": {"uses": "deconv_rl", "inputs": {"image": "img.raw"}, "params": dict(base, max_memory_mb=6)},
          "pblocks": {"uses": "deconv_rl", "inputs": {"image": "img.raw"},
                      "params": dict(base, max_memory_mb=4, edge="periodic")},
          "pwhole": {"uses": "deconv_rl", "inputs": {"image": "img.raw"}, "params": dict(base, edge="periodic")},
          "tv0": {"uses": "deconv_rl", "inputs": {"image": "img.raw"}, "params": dict(base, tv_lambda=0)},
          "tvtiny": {"uses": "deconv_rl", "inputs": {"image": "img.raw"}, "params": dict(base, tv_lambda=1e-6)}}
    p, cont, _ = run_config(d, st)
    if not T.check(p.returncode == 0, "whole, blocked and TV runs complete", sslib.describe(p)):
        return
    a = sslib.read_arrays(cont, "hdf5")
    for w, b in (("whole", "blocks"), ("pwhole", "pblocks")):
        at = sslib.stage_attrs(cont, "hdf5", b)
        e = rel(a[f"{b}/deconvolved"], a[f"{w}/deconvolved"].astype(np.float64))
        T.diag(f"{b}: {int(at['blocks'])} blocks of {int(at['block_planes'])} planes, {at['memory_mb']:.2f} MB, "
               f"max difference {e:.2e} of the maximum")
        T.check(int(at["blocks"]) >= 3 and int(sslib.stage_attrs(cont, "hdf5", w)["blocks"]) == 1 and e <= 1e-4,
                f"{b}: {int(at['blocks'])} blocks equal one whole pass within 1e-4 of the maximum ({e:.2e})")
    T.check(np.array_equal(a["tv0/deconvolved"], a["whole/deconvolved"]),
            "tv_lambda 0 is plain RL, bit-identical")
    e = rel(a["tvtiny/deconvolved"], a["whole/deconvolved"].astype(np.float64))
    T.check(0 < e <= 1e-3, f"tv_lambda 1e-6 runs the TV term and stays within 1e-3 of plain RL ({e:.1e})")


def tv_noisy():
    rng = np.random.default_rng(11)
    shape = (24, 64, 64)
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    truth = np.full(shape, 5.0)
    for _ in range(8):
        c = [rng.uniform(4, n - 4) for n in shape]
        r = rng.uniform(3, 7)
        inside = ((zz - c[0]) / 0.6) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r
        truth[inside] = rng.uniform(30, 60)
    psf = gaussian_psf(shape, 2.0, 1.5)
    blurred = np.maximum(conv(truth, otf_of(psf, shape)), 0)
    img = rng.poisson(blurred).astype(np.float32)
    d = T.tmpdir("rl-tv")
    write_h5(d, {"img": img})
    base = {"sigma_xy": 1.5, "sigma_z": 2.0, "iterations": 60}
    st = {"img": imp("img"),
          "rl": {"uses": "deconv_rl", "inputs": {"image": "img.raw"}, "params": dict(base)},
          "rltv": {"uses": "deconv_rl", "inputs": {"image": "img.raw"}, "params": dict(base, tv_lambda=0.004)}}
    p, cont, _ = run_config(d, st)
    if not T.check(p.returncode == 0, "RL and RL-TV on a noisy phantom complete", sslib.describe(p)):
        return
    a = sslib.read_arrays(cont, "hdf5")
    s = {"input": psnr(img, truth), "rl": psnr(a["rl/deconvolved"], truth), "rltv": psnr(a["rltv/deconvolved"], truth)}
    T.diag("PSNR against the truth (Poisson noise, 60 iterations): " + ", ".join(f"{k} {v:.2f} dB" for k, v in s.items()))
    T.check(s["rltv"] > s["rl"], f"RL-TV at lambda 0.004 beats plain RL ({s['rltv']:.2f} against {s['rl']:.2f} dB)")


def nuclei():
    """synth's nuclei without a PSF are the sharp scene; blurred here with a
    Gaussian and Poisson noise, RL must come closer to the scene."""
    import scipy.ndimage as ndi
    d = T.tmpdir("rl-nuclei")
    st = {"syn": {"uses": "synth", "params": {"phantom": "nuclei", "shape": [32, 64, 64], "repeats": 1,
                                               "photons": 200, "psf": "none"}}}
    p, cont, _ = run_config(d, st, "syn")
    if not T.check(p.returncode == 0, "synth nuclei without a PSF completes", sslib.describe(p)):
        return
    sharp = sslib.read_arrays(cont, "hdf5")["syn/truth"].astype(np.float64)
    blurred = ndi.gaussian_filter(sharp, (2.0, 1.5, 1.5), mode="reflect", truncate=4.0)
    img = np.random.default_rng(2).poisson(np.maximum(blurred, 0)).astype(np.float32)
    write_h5(d, {"img": img})
    st = {"img": imp("img"), "dec": {"uses": "deconv_rl", "inputs": {"image": "img.raw"},
                                     "params": {"sigma_xy": 1.5, "sigma_z": 2.0, "iterations": 20}}}
    p, cont, _ = run_config(d, st, "dec")
    if not T.check(p.returncode == 0, "deconv_rl of the blurred nuclei completes", sslib.describe(p)):
        return
    out = sslib.read_arrays(cont, "hdf5")["dec/deconvolved"]
    s_in, s_out = psnr(img, sharp), psnr(out, sharp)
    T.diag(f"PSNR against the sharp nuclei: blurred noisy input {s_in:.2f} dB, RL {s_out:.2f} dB")
    T.check(s_out > s_in, f"RL improves PSNR over its blurred input on synth's nuclei ({s_out:.2f} > {s_in:.2f} dB)")


def bad_inputs():
    d = T.tmpdir("rl-bad")
    img = np.random.default_rng(1).uniform(1, 10, (8, 16, 16)).astype(np.float32)
    good = gaussian_psf((5, 5, 5), 1, 1).astype(np.float32)
    neg = good.copy()
    neg[2, 1, 1] = -0.1
    nanp = good.copy()
    nanp[3, 2, 2] = np.nan
    write_h5(d, {"img": img, "big": np.ones((9, 5, 5), np.float32), "zeros": np.zeros((5, 5, 5), np.float32),
                 "neg": neg, "even": np.ones((5, 4, 5), np.float32), "good": good, "nanp": nanp,
                 "wide": np.ones((40, 128, 128), np.float32)})

    def case(tag, psf, words, params=None, image="img"):
        st = {image: imp(image), "dec": {"uses": "deconv_rl", "inputs": {"image": image + ".raw"},
                                         "params": params or {}}}
        if psf:
            st[psf] = imp(psf)
            st["dec"]["inputs"]["psf"] = psf + ".raw"
        p, cont, _ = run_config(d, st, tag)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        with h5py.File(cont, "r") as f:
            committed = "dec" in f
        T.check(p.returncode == 3 and len(lines) == 1 and all(w in lines[0] for w in words) and not committed,
                f"{tag}: exit 3, one line naming {words}, nothing committed", sslib.describe(p))

    case("psf_larger", "big", ["big.raw", "larger than the image", "along z"])
    case("psf_zeros", "zeros", ["zeros.raw", "sums to 0", "cannot be normalised"])
    case("psf_negative", "neg", ["neg.raw", "negative value", "plane 2"])
    case("psf_even", "even", ["even.raw", "even along y"])
    case("psf_nan", "nanp", ["nanp", "plane 3", "NaN"])
    case("memory", "good", ["max_memory_mb 1", "wide.raw", "raise it"], {"max_memory_mb": 1}, image="wide")

    # a NaN in the image, written into committed data behind the store's back
    st = {"img": imp("img"), "good": imp("good"),
          "dec": {"uses": "deconv_rl", "inputs": {"image": "img.raw", "psf": "good.raw"}}}
    p, cont, cfg = run_config(d, st, "nan")
    if T.check(p.returncode == 0, "a run to damage completes", sslib.describe(p)):
        sf = sslib.h5_stage_files(cont)["img"]
        os.chmod(sf, os.stat(sf).st_mode | stat.S_IWUSR)
        with h5py.File(sf, "r+") as f:
            ds = f["raw"]
            idx = (0, 5) if ds.ndim == 4 else (5,)
            plane = ds[idx]
            plane[3, 4] = np.inf
            ds[idx] = plane
        p = sslib.run(["run", cfg, "-q", "--force", "dec", "--stages", "dec"], env={"SIRENSTACK_VERIFY": "0"})
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        T.check(p.returncode == 3 and len(lines) == 1 and "img.raw" in lines[0] and "plane 5" in lines[0],
                "an infinite value in the image: exit 3, one line naming the input and plane", sslib.describe(p))

    for params, words in (({"iterations": 0}, "iterations"), ({"tv_lambda": 0.5}, "tv_lambda"),
                          ({"floor": 0}, "floor"), ({"edge": "nearest"}, "edge")):
        st = {"img": imp("img"), "dec": {"uses": "deconv_rl", "inputs": {"image": "img.raw"},
                                         "params": dict(params, sigma_xy=1, sigma_z=1)}}
        cfg = sslib.make_config(os.path.join(d, "v.yaml"), st)
        p = sslib.run(["validate", cfg])
        T.check(p.returncode == 2 and words in p.stderr, f"{params} is refused at validation", sslib.describe(p))
    st = {"img": imp("img"), "dec": {"uses": "deconv_rl", "inputs": {"image": "img.raw"}}}
    p, _, _ = run_config(d, st, "nosigma")
    T.check(p.returncode == 2 and "sigma_xy and sigma_z" in p.stderr, "no psf input and no sigmas: exit 2, says what "
            "to set", sslib.describe(p))


T.guard("deconv_rl against numpy", against_numpy)
T.guard("deconv_rl blocks and TV at 0", blocks_and_tv)
T.guard("deconv_rl TV on noise", tv_noisy)
T.guard("deconv_rl on nuclei", nuclei)
T.guard("deconv_rl bad input", bad_inputs)
T.done()
