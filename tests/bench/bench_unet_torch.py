"""PyTorch peer of bench_unet.c: the same U-Net (3x3 convolutions, two per
level, ReLU, 2x2 max pooling, 2x2 transposed convolutions, concatenated skip
connections, a 1x1 output layer; widths doubling from WIDTH, at most 512),
float32, on THREADS threads, in the same process layout.

  bench_unet_torch.py THREADS train DEPTH WIDTH PATCH BATCH SECONDS
  bench_unet_torch.py THREADS infer DEPTH WIDTH TILE OVERLAP SECONDS
Prints patches_per_s=... or mpix_per_s=... (core pixels of the tile)."""
import sys
import time

import torch
import torch.nn as nn

threads, mode = int(sys.argv[1]), sys.argv[2]
depth, width = int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)


class UNet(nn.Module):
    def __init__(self, depth, width):
        super().__init__()
        w = [min(width << l, 512) for l in range(depth)]
        self.down = nn.ModuleList()
        c = 1
        for l in range(depth):
            self.down.append(nn.Sequential(nn.Conv2d(c, w[l], 3, padding=1), nn.ReLU(),
                                           nn.Conv2d(w[l], w[l], 3, padding=1), nn.ReLU()))
            c = w[l]
        self.ups, self.up_convs = nn.ModuleList(), nn.ModuleList()
        for l in range(depth - 2, -1, -1):
            self.ups.append(nn.ConvTranspose2d(w[l + 1], w[l], 2, stride=2))
            self.up_convs.append(nn.Sequential(nn.Conv2d(2 * w[l], w[l], 3, padding=1), nn.ReLU(),
                                               nn.Conv2d(w[l], w[l], 3, padding=1), nn.ReLU()))
        self.out = nn.Conv2d(w[0], 1, 1)

    def forward(self, x):
        skips = []
        for i, d in enumerate(self.down):
            x = d(x)
            skips.append(x)
            if i < len(self.down) - 1:
                x = nn.functional.max_pool2d(x, 2)
        for up, conv, s in zip(self.ups, self.up_convs, reversed(skips[:-1])):
            x = conv(torch.cat([s, up(x)], 1))
        return self.out(x)


net = UNet(depth, width)
if mode == "train":
    P, B, seconds = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.rand(B, 1, P, P), torch.rand(B, 1, P, P)
    steps, t0 = 0, None
    while steps < 2 or time.perf_counter() - t0 < seconds:
        if steps == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
        steps += 1
    print(f"patches_per_s={(steps - 1) * B / (time.perf_counter() - t0):.3f} steps={steps} torch={torch.__version__}")
else:
    tile, overlap, seconds = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
    side = tile + 2 * overlap
    x = torch.rand(1, 1, side, side)
    with torch.no_grad():
        net(x)
        runs, t0 = 0, time.perf_counter()
        while runs < 1 or time.perf_counter() - t0 < seconds:
            net(x)
            runs += 1
    print(f"mpix_per_s={runs * tile * tile / (time.perf_counter() - t0) / 1e6:.4f} torch={torch.__version__}")
