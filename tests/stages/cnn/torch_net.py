#!/usr/bin/python3
"""The networks of stages/cnn/net.c against PyTorch: the same U-Net (and plain
CNN), initial weights and data trained in C (float32, net_trainer.c) and in
PyTorch (float64) with full-batch Adam; the first gradient agrees parameter
by parameter and the losses agree step by step. Also: the gradient of a
network with dropout against central differences (the masks are a function
of the seed), and two passes with one seed giving identical results.

usage: torch_net.py NET_TRAINER"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lib"))
from taplib import Tap  # noqa: E402

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"1..0 # SKIP python3-torch or numpy is not installed: {e}")
    sys.exit(0)

TRAINER = sys.argv[1]
T = Tap()
TMP = T.tmpdir("net")
rng = np.random.default_rng(20261204)
torch.set_num_threads(2)


def p(name):
    return os.path.join(TMP, name)


def trainer(mode, **kw):
    args = [TRAINER, mode] + [f"{k}={v}" for k, v in kw.items()]
    r = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    if r.returncode != 0:
        raise RuntimeError(f"net_trainer {mode}: rc {r.returncode}: {r.stderr.strip()}")
    return dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())


def convs_of(cfg):
    """(cin, cout, k, transposed) in net.c's build order."""
    out = []
    if cfg["kind"] == "plain":
        c = cfg["in"]
        for k, f in cfg["layers"]:
            out.append((c, f, k, False))
            c = f
        return out
    width = lambda l: min(cfg["width"] << l, cfg["max_width"])  # noqa: E731
    c = cfg["in"]
    for l in range(cfg["depth"]):
        for _ in range(cfg["convs"]):
            out.append((c, width(l), cfg["kernel"], False))
            c = width(l)
    for l in range(cfg["depth"] - 2, -1, -1):
        if cfg["up"] == "transposed":
            out.append((width(l + 1), width(l), 2, True))
            c = 2 * width(l)
        else:
            c = width(l) + width(l + 1)
        for _ in range(cfg["convs"]):
            out.append((c, width(l), cfg["kernel"], False))
            c = width(l)
    out.append((c, cfg["out"], 1, False))
    return out


def torch_params(cfg, flat):
    ps, off = [], 0
    for cin, cout, k, tr in convs_of(cfg):
        shape = (cin, cout, k, k) if tr else (cout, cin, k, k)
        nw = int(np.prod(shape))
        ps.append(torch.tensor(flat[off:off + nw].reshape(shape).astype(np.float64), requires_grad=True))
        off += nw
        ps.append(torch.tensor(flat[off:off + cout].astype(np.float64), requires_grad=True))
        off += cout
    if cfg.get("fourier_mask"):
        ps.append(torch.tensor(flat[off:off + 1].astype(np.float64), requires_grad=True))
        off += 1
    assert off == flat.size, (off, flat.size)
    return ps


def fourier_mask(y, c, ro):
    """fnsm's radial raised-cosine mask, cut-off c (a tensor), half-width ro,
    radii in units of Nyquist, on every plane."""
    h, w = y.shape[-2:]
    ky = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    kx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    r = 2 * torch.sqrt(ky ** 2 + kx ** 2)
    edge = 0.5 * (1 + torch.cos(np.pi * (r - (c - ro)) / (2 * ro)))
    m = torch.where(r <= c - ro, torch.ones_like(r), torch.where(r >= c + ro, torch.zeros_like(r), edge))
    return torch.fft.irfft2(torch.fft.rfft2(y) * m, s=(h, w))


def forward(cfg, ps, x):
    act = (lambda y: F.leaky_relu(y, cfg["slope"])) if cfg["slope"] else F.relu
    it = iter(range(0, len(ps), 2))

    def conv(y, k, tr=False, a=True):
        i = next(it)
        if tr:
            y = F.conv_transpose2d(y, ps[i], ps[i + 1], stride=2)
        else:
            y = F.conv2d(y, ps[i], ps[i + 1], padding=k // 2)
        return act(y) if a else y

    if cfg["kind"] == "plain":
        y = x
        for j, (k, _) in enumerate(cfg["layers"]):
            y = conv(y, k, a=j < len(cfg["layers"]) - 1)
        return y + x if cfg["residual"] else y
    y, skips = x, []
    for l in range(cfg["depth"]):
        for _ in range(cfg["convs"]):
            y = conv(y, cfg["kernel"])
        skips.append(y)
        if l < cfg["depth"] - 1:
            y = F.max_pool2d(y, 2)
    for l in range(cfg["depth"] - 2, -1, -1):
        if cfg["up"] == "transposed":
            y = conv(y, 2, tr=True, a=False)
        elif cfg["up"] == "bilinear":
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        else:
            y = F.interpolate(y, scale_factor=2, mode="nearest")
        y = torch.cat([skips[l], y], 1)
        for _ in range(cfg["convs"]):
            y = conv(y, cfg["kernel"])
    y = conv(y, 1, a=False)
    if cfg.get("fourier_mask"):
        y = fourier_mask(y, ps[-1], cfg["fmask_rolloff"])
    return y + x if cfg["residual"] else y


def args_of(cfg):
    kw = {k: cfg[k] for k in ("kind", "in", "out", "slope", "residual")}
    if cfg.get("fourier_mask"):
        kw.update(fourier_mask=1, fmask_rolloff=cfg["fmask_rolloff"])
    if cfg["kind"] == "plain":
        kw["layers"] = ",".join(f"{k}:{f}" for k, f in cfg["layers"])
    else:
        kw.update({k: cfg[k] for k in ("depth", "width", "max_width", "kernel", "convs", "up")})
    return kw


def compare(name, cfg, n, h, w, steps=25, lr=1e-3, bf16=0):
    x = rng.uniform(0, 1, (n, cfg["in"], h, w)).astype(np.float32)
    t = rng.uniform(0, 1, (n, cfg["out"], h, w)).astype(np.float32)
    x.tofile(p("x")), t.tofile(p("t"))
    info = trainer("train", **args_of(cfg), n=n, h=h, w=w, steps=steps, lr=lr, seed=7, x=p("x"), t=p("t"), bf16=bf16,
                   params=p("p0"), grad=p("g0"), losses=p("losses"), final=p("final"))
    flat = np.fromfile(p("p0"), np.float32)
    T.check(int(info["params"]) == flat.size, f"{name}: {flat.size} parameters")
    ps = torch_params(cfg, flat)
    opt = torch.optim.Adam(ps, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    X, Tt = torch.tensor(x.astype(np.float64)), torch.tensor(t.astype(np.float64))
    losses = []
    g0 = None
    for s in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(forward(cfg, ps, X), Tt)
        loss.backward()
        if s == 0:
            g0 = np.concatenate([q.grad.numpy().ravel() for q in ps])
        losses.append(loss.item())
        opt.step()
    gc = np.fromfile(p("g0"), np.float32).astype(np.float64)
    ge = float(np.abs(gc - g0).max() / np.abs(g0).max())
    if bf16 and not info["kernel"].endswith("-bf16"):
        T.skip(f"{name}", "this CPU lacks AVX512-BF16")
        return
    gtol, l0tol, ltol = (1e-2, 1e-2, 3e-2) if bf16 else (1e-4, 1e-5, 1e-4)
    T.check(ge < gtol, f"{name}: the first gradient equals PyTorch's (worst error {ge:.2g} of the largest, "
            f"within {gtol})")
    if cfg.get("fourier_mask"):
        ce = abs(gc[-1] - g0[-1]) / abs(g0[-1])
        T.check(ce < 1e-4 and g0[-1] != 0, f"{name}: the cut-off's own gradient equals PyTorch's ({gc[-1]:.6g} against "
                f"{g0[-1]:.6g})")
    lc = np.fromfile(p("losses"), np.float64)
    le = np.abs(lc - np.array(losses)) / np.array(losses)
    T.check(le[0] < l0tol and le.max() < ltol and lc[-1] < 0.9 * lc[0],
            f"{name}: {steps} Adam steps, the losses agree step by step (worst {le.max():.2g}; "
            f"{lc[0]:.4g} -> {lc[-1]:.4g} in C, {losses[-1]:.4g} in PyTorch)",
            f"C {lc[:6]} ...\ntorch {np.array(losses[:6])} ...")


UNET = dict(kind="unet", depth=3, width=4, max_width=512, kernel=3, convs=2, up="transposed", slope=0.0,
            residual=0)
CASES = [
    ("U-Net depth 3, width 4, transposed up, ReLU", dict(UNET, **{"in": 1, "out": 1}), 3, 16, 24),
    ("U-Net depth 2, width 6, bilinear up, leaky ReLU 0.1, residual, 2 channels",
     dict(UNET, depth=2, width=6, up="bilinear", slope=0.1, residual=1, **{"in": 2, "out": 2}), 2, 12, 8),
    ("U-Net depth 4, width 4 (cap 8), nearest up, 5x5 kernels, 1 conv per level",
     dict(UNET, depth=4, width=4, max_width=8, up="nearest", kernel=5, convs=1, **{"in": 1, "out": 1}), 2, 16, 16),
    ("plain 5x5 64, 5x5 64, 5x5 1 (the CNN motion baseline)",
     dict(kind="plain", layers=[(5, 64), (5, 64), (5, 1)], slope=0.0, residual=0, **{"in": 1, "out": 1}), 2, 12, 10),
]
for name, cfg, n, h, w in CASES:
    T.guard(name, compare, name, cfg, n, h, w)
# a trainable Fourier mask on the output (its cut-off the last parameter)
T.guard("fmask", compare, "U-Net depth 2, width 4, Fourier mask with a trainable cut-off (rolloff 0.2)",
        dict(UNET, depth=2, fourier_mask=1, fmask_rolloff=0.2, **{"in": 1, "out": 1}), 2, 16, 20)
# bfloat16 products, float32 sums: the same training, looser
T.guard("bf16", compare, "U-Net depth 3, width 8, bf16 products", dict(UNET, width=8, **{"in": 1, "out": 1}),
        3, 16, 24, bf16=1)


def dropout_checks():
    cfg = dict(UNET, depth=2, width=4, **{"in": 1, "out": 1})
    x = rng.uniform(0, 1, (2, 1, 8, 8)).astype(np.float32)
    t = rng.uniform(0, 1, (2, 1, 8, 8)).astype(np.float32)
    x.tofile(p("x")), t.tofile(p("t"))
    r = trainer("fd", **args_of(cfg), dropout=0.3, n=2, h=8, w=8, seed=3, x=p("x"), t=p("t"))
    T.check(float(r["worst"]) < 2e-2, f"U-Net with 30% dropout: the gradient equals central differences at "
            f"{r['checked']} parameters (worst {float(r['worst']):.2g} of the largest)")
    r = trainer("repeat", **args_of(cfg), dropout=0.3, n=2, h=8, w=8, seed=3, x=p("x"), t=p("t"))
    T.check(r["identical"] == "1", "U-Net with dropout: two passes with one seed give identical loss and gradient")


T.guard("dropout", dropout_checks)
T.done()
