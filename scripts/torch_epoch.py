#!/usr/bin/env python3
"""PyTorch reference for the training benchmark: trains the same net as the
worker (a ModelShape as the JSON `epoch` prints it) on the same IDX data with
Adam, and prints the wall time of each epoch and the final test accuracy.

    python3 scripts/torch_epoch.py --model '{"kind":"mlp","input":784,"hidden":[256],"output":10}' \
        --data data/mnist-sample --batch-size 64 --epochs 1 --device cuda
"""
import argparse
import gzip
import json
import os
import struct
import time

import torch
from torch import nn


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"no {stem}[.gz] in {directory}")


def load(directory, split):
    images = read_idx(find(directory, f"{split}-images-idx3-ubyte"))
    labels = read_idx(find(directory, f"{split}-labels-idx1-ubyte"))
    x = images.to(torch.float32).div_(255.0).unsqueeze(1)
    return x, labels.to(torch.int64)


def build(shape):
    layers = []
    if shape["kind"] == "mlp":
        layers.append(nn.Flatten())
        fan_in = shape["input"]
    else:
        channels, side, k = shape["in_channels"], shape["image_size"], shape["kernel"]
        for out in shape["convs"]:
            layers += [nn.Conv2d(channels, out, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2)]
            channels, side = out, side // 2
        layers.append(nn.Flatten())
        fan_in = channels * side * side
    hidden = shape["hidden"] if shape["kind"] == "mlp" else shape["fc"]
    for width in hidden:
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, shape["output"]))
    return nn.Sequential(*layers)


@torch.no_grad()
def evaluate(model, loss_fn, x, y, chunk=1000):
    """Loss and accuracy over a whole split, as the worker records per epoch."""
    loss, correct = 0.0, 0
    for i in range(0, len(x), chunk):
        logits = model(x[i : i + chunk])
        loss += loss_fn(logits, y[i : i + chunk]).item() * len(logits)
        correct += (logits.argmax(1) == y[i : i + chunk]).sum().item()
    return loss / len(x), correct / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="ModelShape JSON")
    parser.add_argument("--data", default="data/mnist-sample")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    train_x, train_y = (t.to(device) for t in load(args.data, "train"))
    test_x, test_y = (t.to(device) for t in load(args.data, "t10k"))
    model = build(json.loads(args.model)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-8)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        started = time.perf_counter()
        order = torch.randperm(len(train_x), device=device)
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
        train_loss, _ = evaluate(model, loss_fn, train_x, train_y)
        test_loss, test_acc = evaluate(model, loss_fn, test_x, test_y)
        sync()
        seconds = time.perf_counter() - started
        print(
            f"torch {torch.__version__} {device} epoch {epoch}: {seconds:.2f} s "
            f"(train and full evaluation)  train_loss {train_loss:.4f}  "
            f"test_loss {test_loss:.4f}  test_acc {test_acc:.4f}"
        )


if __name__ == "__main__":
    main()
