#!/usr/bin/python3
"""The CPU network layers against PyTorch (float64 on the same float32
inputs): convolution and transposed convolution, forward and both gradients,
2 x 2 max pooling, nearest and bilinear x2 upsampling, leaky ReLU, the MSE
gradient, and SGD with momentum and Adam over several steps; prints TAP.

usage: torch_layers.py NN_REF

Inputs come from numpy's generator with fixed seeds. Tolerances are relative
to the largest value of each output: float32 sums of a few thousand terms."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from taplib import Tap  # noqa: E402

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"1..0 # SKIP python3-torch or numpy is not installed: {e}")
    sys.exit(0)

REF = sys.argv[1]
T = Tap()
TMP = T.tmpdir("nn")
rng = np.random.default_rng(20261204)
torch.set_num_threads(2)


def path(name):
    return os.path.join(TMP, name)


def put(name, a):
    np.asarray(a, np.float32).tofile(path(name))
    return path(name)


def get(name, shape):
    return np.fromfile(path(name), np.float32).reshape(shape)


def run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    r = subprocess.run([REF] + [str(a) for a in args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"nn_ref {' '.join(map(str, args[:1]))}: rc {r.returncode} {r.stderr.strip()}")
    return r.stdout


def rel(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


# ---- convolutions ---------------------------------------------------------
CONVS = [  # n, cin, h, w, cout, k, stride, transposed
    (2, 3, 9, 11, 4, 3, 1, 0), (1, 5, 16, 16, 6, 3, 2, 0), (2, 4, 7, 8, 3, 5, 1, 0), (1, 8, 12, 12, 8, 1, 1, 0),
    (2, 3, 9, 10, 2, 1, 2, 0), (2, 6, 5, 6, 3, 2, 2, 1), (1, 4, 6, 5, 3, 3, 2, 1), (3, 7, 4, 4, 5, 3, 1, 1),
    (2, 64, 32, 32, 64, 3, 1, 0), (1, 16, 33, 31, 8, 7, 1, 0), (2, 32, 20, 20, 16, 2, 2, 1),
]


def conv_case(n, cin, h, w, cout, k, s, tr):
    x = rng.uniform(-1, 1, (n, cin, h, w)).astype(np.float32)
    wshape = (cin, cout, k, k) if tr else (cout, cin, k, k)
    wt = rng.uniform(-0.5, 0.5, wshape).astype(np.float32)
    b = rng.uniform(-1, 1, cout).astype(np.float32)
    X, W, B = t64(x, True), t64(wt, True), t64(b, True)
    if tr:
        p = 0 if k == s else k // 2
        Y = F.conv_transpose2d(X, W, B, stride=s, padding=p, output_padding=0 if k == s else s - 1)
    else:
        Y = F.conv2d(X, W, B, stride=s, padding=k // 2)
    dy = rng.uniform(-1, 1, Y.shape).astype(np.float32)
    Y.backward(t64(dy))
    run("conv", n, cin, h, w, cout, k, s, tr, put("x", x), put("w", wt), put("b", b), put("dy", dy),
        path("y"), path("dx"), path("dw"), path("db"))
    got = [get("y", Y.shape), get("dx", x.shape), get("dw", wshape), get("db", (cout,))]
    want = [Y.detach().numpy(), X.grad.numpy(), W.grad.numpy(), B.grad.numpy()]
    errs = [rel(g, w_) for g, w_ in zip(got, want)]
    name = f"{'conv_transpose2d' if tr else 'conv2d'} {n}x{cin}x{h}x{w} -> {cout}, k {k}, stride {s}"
    T.check(max(errs) < 2e-6, f"{name}: output, input gradient, weight and bias gradients equal PyTorch's",
            f"relative errors {errs}")


for c in CONVS:
    T.guard(f"conv {c}", conv_case, *c)


# ---- pooling, upsampling, activation ---------------------------------------
def pool_case(nc, h, w):
    x = rng.uniform(-1, 1, (1, nc, h, w)).astype(np.float32)
    X = t64(x, True)
    Y = F.max_pool2d(X, 2)
    dy = rng.uniform(-1, 1, Y.shape).astype(np.float32)
    Y.backward(t64(dy))
    run("pool", nc, h, w, put("x", x), put("dy", dy), path("y"), path("dx"))
    e = (rel(get("y", Y.shape), Y.detach().numpy()), rel(get("dx", x.shape), X.grad.numpy()))
    T.check(max(e) == 0, f"max_pool2d(2) of {nc}x{h}x{w}: output and gradient equal PyTorch's", f"errors {e}")


def up_case(nc, h, w, mode):
    x = rng.uniform(-1, 1, (1, nc, h, w)).astype(np.float32)
    X = t64(x, True)
    kw = {} if mode == "nearest" else {"align_corners": False}
    Y = F.interpolate(X, scale_factor=2, mode=mode, **kw)
    dy = rng.uniform(-1, 1, Y.shape).astype(np.float32)
    Y.backward(t64(dy))
    run("up", nc, h, w, 0 if mode == "nearest" else 1, put("x", x), put("dy", dy), path("y"), path("dx"))
    e = (rel(get("y", Y.shape), Y.detach().numpy()), rel(get("dx", x.shape), X.grad.numpy()))
    T.check(max(e) < 1e-6, f"interpolate(scale_factor=2, mode={mode}) of {nc}x{h}x{w}: output and gradient equal "
            "PyTorch's", f"errors {e}")


def relu_case(slope):
    x = rng.uniform(-1, 1, 10007).astype(np.float32)
    x[:5] = [0, -0.0, 1e-30, -1e-30, 3]
    X = t64(x, True)
    Y = F.leaky_relu(X, slope) if slope else F.relu(X)
    dy = rng.uniform(-1, 1, x.shape).astype(np.float32)
    Y.backward(t64(dy))
    run("relu", slope, x.size, put("x", x), put("dy", dy), path("y"), path("dx"))
    e = (rel(get("y", x.shape), Y.detach().numpy()), rel(get("dx", x.shape), X.grad.numpy()))
    T.check(max(e) < 1e-7, f"{'leaky_relu' if slope else 'relu'}({slope}): output and gradient equal PyTorch's",
            f"errors {e}")


for nc, h, w in [(3, 8, 8), (5, 9, 7), (16, 32, 30)]:
    T.guard(f"pool {nc}x{h}x{w}", pool_case, nc, h, w)
    for mode in ("nearest", "bilinear"):
        T.guard(f"up {mode}", up_case, nc, h, w, mode)
for slope in (0.0, 0.01, 0.2):
    T.guard(f"relu {slope}", relu_case, slope)


# ---- loss and optimisers ---------------------------------------------------
def mse_case():
    y = rng.uniform(-1, 1, 5003).astype(np.float32)
    t = rng.uniform(-1, 1, 5003).astype(np.float32)
    Y = t64(y, True)
    L = F.mse_loss(Y, t64(t))
    L.backward()
    mean = float(run("mse", y.size, put("y", y), put("t", t), path("dy")))
    e = (abs(mean - L.item()) / L.item(), rel(get("dy", y.shape), Y.grad.numpy()))
    T.check(max(e) < 1e-6, "mse_loss: the mean and the gradient equal PyTorch's", f"errors {e}")


def optim_case(name):
    n, steps = 1001, 20
    p = rng.uniform(-1, 1, n).astype(np.float32)
    g = rng.uniform(-1, 1, (steps, n)).astype(np.float32)
    P = torch.nn.Parameter(torch.tensor(p))  # float32, as the kernels
    if name == "sgd":
        opt = torch.optim.SGD([P], lr=0.05, momentum=0.9, weight_decay=1e-3)
        args = ["sgd", 0.05, 0.9, 1e-3]
    else:
        opt = torch.optim.Adam([P], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
        args = ["adam", 0.01, 0.9, 0.999, 1e-8]
    for s in range(steps):
        P.grad = torch.tensor(g[s])
        opt.step()
    run(*args, steps, n, put("p", p), put("g", g), path("po"))
    e = rel(get("po", (n,)), P.detach().numpy())
    T.check(e < 1e-5, f"{name}: {steps} steps of torch.optim.{'SGD(momentum 0.9, weight decay)' if name == 'sgd' else 'Adam'} "
            "on float32 parameters give the same parameters", f"relative error {e}")


T.guard("mse", mse_case)
for name in ("sgd", "adam"):
    T.guard(name, optim_case, name)
T.done()
