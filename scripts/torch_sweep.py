#!/usr/bin/env python3
"""The PyTorch side of the whole-sweep benchmark: trains every task of a sweep
spec one after the other in a plain PyTorch loop, doing what the worker does
for it (same models, data, optimizer, batches, recorded metrics and per-epoch
evaluation), and prints the time of each task and of the whole loop.

The tasks come from the worker's own planner (`epoch SPEC --tasks` prints one
JSON line per task), so both sides train exactly the same list. Supported:
`fit` without a gradient-norm phase (1.1) and `classify` without the
sensitivity measure (1.2, 1.3, 2.1, 3.1, 3.2); any other task is reported as
skipped, and a spec with skipped tasks is not a fair comparison.

    python3 scripts/torch_sweep.py sweeps/quick/1.3-cnn-mnist.toml
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_epoch import build, evaluate, load  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def initialise(model):
    """Glorot-uniform weights and zero biases, as the worker starts."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def optimizer(params, model):
    chosen = params["optimizer"]
    if chosen["name"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=params["lr"], eps=chosen["epsilon"])
    return torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=chosen["momentum"])


def unsupported(params):
    kind = params["experiment"]
    if kind == "fit" and not params["fit"].get("grad_norm_phase"):
        return None
    if kind == "classify" and not params["classify"]["sensitivity"]:
        return None
    return f"{kind} with extras this loop does not implement"


def fit(params, _data):
    spec = params["fit"]
    x = torch.linspace(spec["x_min"], spec["x_max"], max(spec["points"], 2)).unsqueeze(1)
    y = 2 * x * torch.cos(x) + 2
    model = initialise(build(params["model"]))
    optim, loss_fn = optimizer(params, model), nn.MSELoss()
    flattest, last = float("inf"), None
    for step in range(1, spec["steps"] + 1):
        optim.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        # The worker measures every step's gradient norm and keeps the
        # weights of the flattest point (2.2, 2.3 start from them).
        norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())).item()
        if norm < flattest:
            flattest, _kept = norm, [p.detach().clone() for p in model.parameters()]
        if step % spec["record_every"] == 0 or step == spec["steps"]:
            last = loss.item()
        optim.step()
    return {"loss": last}


def dataset(name, data_dir, cache):
    if name not in cache:
        if name == "mnist-sample":
            directory = os.path.join(REPO, "data", name)
        elif os.path.isdir(name):
            directory = name
        else:
            directory = os.path.join(data_dir or "/usr/share/sweep/data", name)
        cache[name] = (load(directory, "train"), load(directory, "t10k"))
    return cache[name]


def classify(params, data):
    spec = params["classify"]
    (train_x, train_y), (test_x, test_y) = data
    n_train = spec.get("train_subset") or len(train_x)
    n_test = spec.get("test_subset") or len(test_x)
    train_x, train_y = train_x[:n_train], train_y[:n_train]
    test_x, test_y = test_x[:n_test], test_y[:n_test]
    generator = torch.Generator().manual_seed(params["seed"])
    if spec["shuffle_labels"]:
        train_y = train_y[torch.randperm(len(train_y), generator=generator)]
    model = initialise(build(params["model"]))
    optim, loss_fn = optimizer(params, model), nn.CrossEntropyLoss()
    batch = params.get("batch_size") or len(train_x)
    step, result = 0, {}
    for epoch in range(1, spec["epochs"] + 1):
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            step += 1
            optim.zero_grad(set_to_none=True)
            logits = model(train_x[chosen])
            loss = loss_fn(logits, train_y[chosen])
            loss.backward()
            optim.step()
            if step % spec["record_every"] == 0:
                loss.item()
                (logits.argmax(1) == train_y[chosen]).float().mean().item()
        if spec.get("snapshot_every") and epoch % spec["snapshot_every"] == 0:
            _snapshot = [p.detach().clone() for p in model.parameters()]
        result["train_loss"], _ = evaluate(model, loss_fn, train_x, train_y)
        result["test_loss"], result["test_acc"] = evaluate(model, loss_fn, test_x, test_y)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("spec")
    parser.add_argument("--epoch", default=os.path.join(REPO, "target/release/examples/epoch"),
                        help="the worker's epoch example, which plans the spec")
    parser.add_argument("--data-dir", help="where datasets other than mnist-sample live")
    args = parser.parse_args()
    started = time.perf_counter()
    listed = subprocess.run([args.epoch, args.spec, "--tasks"], check=True,
                            capture_output=True, text=True).stdout
    tasks = [json.loads(line) for line in listed.splitlines() if line.strip()]
    cache, skipped = {}, 0
    for params in tasks:
        reason = unsupported(params)
        if reason:
            skipped += 1
            print(f"{params['model_name']:<10} skipped: {reason}")
            continue
        task_started = time.perf_counter()
        if params["experiment"] == "fit":
            result = fit(params, None)
        else:
            result = classify(params, dataset(params["dataset"], args.data_dir, cache))
        shown = "  ".join(f"{k} {v:.4f}" for k, v in result.items())
        print(f"{params['model_name']:<10} params {params['param_count']:>9} "
              f"seed {params['seed']:>3}  {time.perf_counter() - task_started:8.2f} s  {shown}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
          f"{len(tasks) - skipped} tasks in {time.perf_counter() - started:.1f} s, "
          f"{skipped} skipped")


if __name__ == "__main__":
    main()
