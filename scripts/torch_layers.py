#!/usr/bin/env python3
"""PyTorch reference for the worker's `kernels` example: the layers of the
report's CNNs at batch 64 (5x5 "same" convolutions, 2x2 max pooling), forward
alone and forward plus backward, medians of 15, in the table form the example
prints.

    $(scripts/torch-venv.sh)/bin/python scripts/torch_layers.py
"""
import time

import torch
import torch.nn.functional as F


def median_ms(run):
    times = []
    for _ in range(15):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[7]


def timed(x, layer):
    """Milliseconds of `layer(x)`, and of it with its backward to `x`."""
    with torch.no_grad():
        forward = median_ms(lambda: layer(x))
    xg = x.clone().requires_grad_()
    both = median_ms(lambda: layer(xg).sum().backward())
    return forward, both


def main():
    torch.set_num_threads(2)
    print("| layer | pass | PyTorch |")
    print("|---|---|---|")
    for channels, outputs, side in [(1, 16, 28), (16, 36, 14), (36, 144, 7)]:
        conv = torch.nn.Conv2d(channels, outputs, 5, padding=2)
        x = torch.rand(64, channels, side, side) * 2 - 1
        rows = [(f"conv {channels}→{outputs}, {side}x{side}", timed(x, conv))]
        pooled = conv(x).detach()
        rows.append((f"max pool 2x2, {outputs}x{side}x{side}",
                     timed(pooled, lambda t: F.max_pool2d(t, 2, 2))))
        for name, (forward, both) in rows:
            print(f"| {name} | forward | {forward:.2f} ms |")
            print(f"| {name} | forward + backward | {both:.2f} ms |")


if __name__ == "__main__":
    main()
