"""PyTorch peer for the SIREN training benchmark: the paper's network (3 hidden
layers of 128, omega 32/34), MSE, Adam, float32, on THREADS threads, at
several batch sizes; prints the best rate in voxel-steps per second.
Usage: bench_torch.py THREADS [SECONDS_PER_SIZE]"""
import sys
import time

import torch

threads = int(sys.argv[1])
budget = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
torch.set_num_threads(threads)


class Sine(torch.nn.Module):
    def __init__(self, fan_in, fan_out, omega):
        super().__init__()
        self.lin = torch.nn.Linear(fan_in, fan_out)
        self.omega = omega

    def forward(self, x):
        return torch.sin(self.omega * self.lin(x))


net = torch.nn.Sequential(Sine(3, 128, 32.0), Sine(128, 128, 34.0), Sine(128, 128, 34.0), Sine(128, 128, 34.0),
                          torch.nn.Linear(128, 1))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
best = (0.0, 0)
for batch in (4096, 16384, 65536):
    x = torch.rand(batch, 3) * 2 - 1
    y = torch.rand(batch, 1)
    for _ in range(2):  # warm up
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
        steps += 1
    rate = batch * steps / (time.perf_counter() - t0)
    print(f"# torch {torch.__version__} batch {batch}: {rate:.0f} voxel-steps/s", file=sys.stderr)
    best = max(best, (rate, batch))
print(f"voxel_steps_per_s={best[0]:.0f} batch={best[1]} torch={torch.__version__} threads={threads}")
