#!/usr/bin/python3
"""Compares the CPU kernels with numpy and scipy; prints TAP.

usage: check_numpy.py KERNELS_REF

Writes inputs to a temporary folder, runs KERNELS_REF (kernels_ref.c) on
them, and checks its outputs against numpy.percentile, numpy.mean,
numpy.median, scipy.ndimage.gaussian_filter and scipy.stats. The inputs come
from numpy's generator with fixed seeds, so a run either always passes or
always fails.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from taplib import Tap  # noqa: E402 - the shared TAP writer

try:
    import numpy as np
    import scipy.ndimage
    import scipy.stats
except ImportError as e:  # the interop extras are optional
    print(f"1..0 # SKIP numpy/scipy not available: {e}")
    sys.exit(0)

REF = sys.argv[1]
T = Tap()
TMP = T.tmpdir("kernels")
tap = T.check  # tap(ok, desc, detail shown on failure)


def path(name):
    return os.path.join(TMP, name)


def run(*args, threads=2):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = subprocess.run([REF] + [str(a) for a in args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"kernels_ref {' '.join(map(str, args))}: {r.stderr.strip()}")
    return r.stdout


def ulps(a, b):
    """Distance in float64 ulps (0 for equal values, also -0 vs 0)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ia = a.view(np.int64).copy()
    ib = b.view(np.int64).copy()
    ia[ia < 0] = np.int64(-(2**63)) - ia[ia < 0]
    ib[ib < 0] = np.int64(-(2**63)) - ib[ib < 0]
    d = np.abs(ia - ib)
    d[a == b] = 0
    return int(d.max()) if d.size else 0


# ---- percentiles ---------------------------------------------------------

Q_FIXED = [0, 0.1, 1, 2.5, 25, 33.3, 50, 66.6, 75, 99, 99.8, 99.9, 100]


def pct_case(desc, x, qs=Q_FIXED, overflow=False):
    x = np.ascontiguousarray(x, np.float32)
    x.tofile(path("pct.f32"))
    run("pct", path("pct.f32"), path("exact.f64"), path("stream.f64"), *[repr(float(q)) for q in qs])
    exact = np.fromfile(path("exact.f64"), np.float64)
    stream = np.fromfile(path("stream.f64"), np.float64)
    # Where numpy's float32 difference of the bracketing values overflows,
    # the kernel takes it in double (kernels.h), as numpy does for float64.
    want = np.percentile(x.astype(np.float64) if overflow else x, qs)
    d = ulps(exact, want)
    tap(d == 0, f"exact percentiles == numpy.percentile: {desc} (N={x.size})",
        f"max {d} ulp\ngot  {exact!r}\nwant {want!r}")
    # The documented streaming bound: within 2^-11 of the larger magnitude of
    # the two order statistics numpy interpolates between (2^-137 absolute
    # for subnormals).
    s = np.sort(x).astype(np.float64)
    n = x.size
    h = (n - 1) * (np.asarray(qs, np.float64) / 100)
    lo = np.where(h >= n - 1, n - 1, np.floor(h)).astype(np.int64)
    hi = np.where(h >= n - 1, n - 1, lo + 1)
    bound = 2.0**-11 * np.maximum(np.abs(s[lo]), np.abs(s[hi])) + 2.0**-137
    err = np.abs(stream - want)
    worst = float(np.max(err / bound))
    tap(bool(np.all(err <= bound)), f"streaming percentiles within the bound: {desc} (worst {worst:.3f} of it)",
        f"got  {stream!r}\nwant {want!r}")


def test_percentiles():
    rng = np.random.default_rng(1)
    pct_case("normal", rng.standard_normal(100_003))
    pct_case("many duplicates (10 values)", rng.integers(0, 10, 50_001))
    pct_case("negative", rng.uniform(-1000, -1, 30_000))
    mag = 10.0 ** rng.uniform(-30, 30, 40_000)
    pct_case("huge range 1e-30..1e30, both signs", np.where(rng.random(40_000) < 0.5, -mag, mag))
    pct_case("uint16-like integers", rng.integers(0, 65536, 65_537))
    pct_case("uint16-like integers, skewed", np.minimum(rng.exponential(300, 80_000), 65535).astype(np.uint16))
    pct_case("N=1", [3.7])
    pct_case("N=2", [-1.5, 8.25])
    pct_case("N=3", [5, 1, 3])
    pct_case("all equal", np.full(1000, 2.5))
    pct_case("subnormals", rng.uniform(-1e-40, 1e-40, 10_000))
    pct_case("zeros of both signs and a few values", np.r_[np.zeros(500), -np.zeros(500), [1, -1]])
    pct_case("+-FLT_MAX", np.r_[np.full(10, np.finfo(np.float32).max), np.full(11, -np.finfo(np.float32).max)],
             overflow=True)
    pct_case("16 random quantiles", rng.gamma(2.0, 10.0, 77_777), qs=sorted(rng.uniform(0, 100, 16)))
    pct_case("0 and 100 only", rng.standard_normal(1001), qs=[0, 100])


# ---- fusion ----------------------------------------------------------------

def test_fuse():
    rng = np.random.default_rng(2)
    for R in (1, 2, 3, 4, 5, 8, 16, 17, 64, 65):
        n = 4099
        x = rng.normal(0, 100, (R, n)).astype(np.float32)
        x[:, ::5] = np.round(x[:, ::5] / 50)  # ties
        x.tofile(path("rep.f32"))
        run("fuse", path("rep.f32"), R, path("mean.f32"), path("median.f32"))
        mean = np.fromfile(path("mean.f32"), np.float32)
        median = np.fromfile(path("median.f32"), np.float32)
        want_med = np.median(x, axis=0)
        tap(np.array_equal(median, want_med), f"median of R={R} == numpy.median",
            f"max diff {np.max(np.abs(median - want_med))}")
        want_mean = np.mean(x, axis=0, dtype=np.float64).astype(np.float32)
        tap(np.array_equal(mean, want_mean), f"mean of R={R} == numpy.mean in float64, rounded to float32")
        # numpy's own float32 mean rounds every partial sum; the kernel's
        # sum is the better one, so agreement is to float32 summation error.
        f32 = np.mean(x, axis=0)
        tol = R * 2.0**-23 * np.max(np.abs(x), axis=0)
        tap(bool(np.all(np.abs(mean - f32) <= tol)), f"mean of R={R} within float32 summation error of numpy.mean")


# ---- Gaussian blur -------------------------------------------------------

def test_blur():
    rng = np.random.default_rng(3)
    cases = [
        ((16, 32, 48), (1.0, 2.0, 3.0)),
        ((7, 33, 29), (0.0, 1.3, 0.0)),
        ((4, 5, 6), (3.0, 4.0, 5.0)),  # kernels longer than every axis
        ((1, 2, 40), (2.0, 2.0, 0.5)),
        ((3, 1, 9), (0.7, 6.0, 9.9)),
        ((20, 21, 17), (0.3, 0.12, 1e-16)),  # radius 0 and a skipped axis
        ((12, 64, 64), (2.5, 1.5, 1.5)),
    ]
    for shape, sig in cases:
        x = rng.normal(1.0, 1.0, shape).astype(np.float32)
        x.tofile(path("vol.f32"))
        run("blur", path("vol.f32"), *shape, *[repr(s) for s in sig], path("out.f32"))
        got = np.fromfile(path("out.f32"), np.float32).reshape(shape)
        want = scipy.ndimage.gaussian_filter(x, sigma=sig, mode="reflect", truncate=4.0)
        rel = np.abs(got.astype(np.float64) - want) / np.maximum(np.abs(want), 1e-3)
        same = np.mean(got == want)
        tap(float(rel.max()) <= 1e-5,
            f"blur {shape} sigma {sig} matches scipy gaussian_filter "
            f"(max rel {rel.max():.2g}, {100 * same:.1f}% bit-identical)")


# ---- statistics ----------------------------------------------------------

def test_stats():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1e3, 100_000).astype(np.float32)
    x[::101] = np.nan
    x[7::211] = np.inf
    x[9::307] = -np.inf
    x.tofile(path("stats.f32"))
    nf, mn, mx = run("stats", path("stats.f32")).split()
    fin = x[np.isfinite(x)]
    tap(int(nf) == int(np.sum(~np.isfinite(x))), "count_nonfinite == numpy")
    tap(np.float32(mn) == fin.min() and np.float32(mx) == fin.max(), "minmax == numpy nanmin/nanmax of finite")


# ---- random numbers --------------------------------------------------------

M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def xoshiro_seed(seed):
    s = []
    x = seed
    for _ in range(4):
        x, z = splitmix64(x)
        s.append(z)
    return s


def xoshiro_next(s):
    rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & M64
    r = (rotl((s[1] * 5) & M64, 7) * 9) & M64
    t = (s[1] << 17) & M64
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 45)
    return r


def test_rng():
    s = xoshiro_seed(12345)
    want = np.array([xoshiro_next(s) for _ in range(1000)], np.uint64)
    run("next", 12345, 1000, path("next.u64"))
    tap(np.array_equal(np.fromfile(path("next.u64"), np.uint64), want),
        "rng_seed + rng_next == a Python xoshiro256**/splitmix64")
    run("uniform", 12345, 1000, path("u.f64"))
    tap(np.array_equal(np.fromfile(path("u.f64"), np.float64), (want >> np.uint64(11)) * 2.0**-53),
        "rng_uniform is the top 53 bits times 2^-53")

    # rng_split: splitmix64 of the seed, plus stream times an odd constant,
    # through splitmix64 again, seeds the generator.
    _, h = splitmix64(99)
    _, seed = splitmix64((h + 5 * 0xD1B54A32D192ED03) & M64)
    s = xoshiro_seed(seed)
    want = np.array([xoshiro_next(s) for _ in range(100)], np.uint64)
    run("split", 99, 5, 100, path("split.u64"))
    tap(np.array_equal(np.fromfile(path("split.u64"), np.uint64), want), "rng_split as documented")

    n = 200_000
    run("normal", 7, n, path("z.f64"))
    z = np.fromfile(path("z.f64"), np.float64)
    p = scipy.stats.kstest(z, "norm").pvalue
    tap(p > 1e-3, f"rng_normal passes a KS test against N(0, 1) (p = {p:.3g})")

    for i, lam in enumerate((0.05, 0.5, 4.0, 29.5, 30.0, 31.7, 100.0, 1000.0, 123456.7)):
        run("poisson", 100 + i, lam, n, path("k.u64"))
        k = np.fromfile(path("k.u64"), np.uint64).astype(np.int64)
        # Chi-square over the central values, tails pooled so that every
        # cell expects at least 20 draws.
        lo, hi = scipy.stats.poisson.ppf([1e-4, 1 - 1e-4], lam)
        edges = np.arange(lo, hi + 2)
        cdf = scipy.stats.poisson.cdf(edges - 1, lam)
        probs = np.diff(np.r_[0.0, cdf, 1.0])
        counts = np.bincount(np.clip(np.searchsorted(edges, k, side="right"), 0, len(edges)),
                             minlength=len(edges) + 1)
        exp = probs * n
        # Merge cells with small expectations into neighbours.
        obs_m, exp_m, acc_o, acc_e = [], [], 0.0, 0.0
        for o, e in zip(counts, exp):
            acc_o += o
            acc_e += e
            if acc_e >= 20:
                obs_m.append(acc_o)
                exp_m.append(acc_e)
                acc_o = acc_e = 0.0
        if acc_e > 0 and exp_m:
            obs_m[-1] += acc_o
            exp_m[-1] += acc_e
        obs_m, exp_m = np.array(obs_m), np.array(exp_m)
        if len(exp_m) < 2:
            p = 1.0 if abs(k.mean() - lam) < 5 * np.sqrt(lam / n) else 0.0
        else:
            p = scipy.stats.chisquare(obs_m, exp_m * obs_m.sum() / exp_m.sum()).pvalue
        tap(p > 1e-3, f"rng_poisson({lam}) passes a chi-square test (p = {p:.3g}, mean {k.mean():.6g})")


# ---- determinism -----------------------------------------------------------

def test_threads():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (10, 70, 90)).astype(np.float32)
    x.tofile(path("vol.f32"))
    outs = []
    for t in (1, 2, 3):
        run("blur", path("vol.f32"), 10, 70, 90, "1.5", "2", "2.5", path(f"b{t}.f32"), threads=t)
        run("fuse", path("vol.f32"), 5, path(f"m{t}.f32"), path(f"d{t}.f32"), threads=t)
        run("pct", path("vol.f32"), path(f"e{t}.f64"), path(f"s{t}.f64"), 1, 50, 99.8, threads=t)
        outs.append(b"".join(open(path(f"{f}{t}.{e}"), "rb").read()
                             for f, e in (("b", "f32"), ("m", "f32"), ("d", "f32"), ("e", "f64"), ("s", "f64"))))
    tap(outs[0] == outs[1] == outs[2], "OMP_NUM_THREADS=1, 2, 3 give identical bytes")


def main():
    for t in (test_percentiles, test_fuse, test_blur, test_stats, test_rng, test_threads):
        try:
            t()
        except Exception as e:  # one broken group must not hide the others
            tap(False, f"{t.__name__} raised", repr(e))
    return T.done(exit=False)


if __name__ == "__main__":
    sys.exit(main())
