#!/usr/bin/env python3
"""The PyTorch side of the whole-sweep benchmark: trains every task of a sweep
spec one after the other in a plain PyTorch loop, doing what the worker does
for it (same models, data, optimizer, batches, recorded metrics and per-epoch
evaluation), and prints the time of each task and of the whole loop.

The tasks come from the worker's own planner (`epoch SPEC --tasks` prints one
JSON line per task), so both sides train exactly the same list. Every kind is
implemented: `fit` with its gradient-norm phase (1.1, 2.2), `hessian` (2.3:
the exact f64 Hessian at the flattest step, by double backward, and its
eigenvalues), `classify` with the sensitivity measure and kept weights (1.2,
1.3, 2.1, 3.1, 3.2, 3.4) and `interpolate` between two kept models (3.3).

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


def flat_optimizer(chosen, lr, tensors):
    if chosen["name"] == "adam":
        return torch.optim.Adam(tensors, lr=lr, eps=chosen["epsilon"])
    return torch.optim.SGD(tensors, lr=lr, momentum=chosen["momentum"])


def optimizer(params, model):
    return flat_optimizer(params["optimizer"], params["lr"], model.parameters())


def flat(model):
    """An MLP's weights as one f64 vector, layer by layer (weight, bias)."""
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def mlp64(theta, model, x):
    """The MLP `model` evaluated with the flat weights `theta`, in f64."""
    offset, layers = 0, [m for m in model if isinstance(m, nn.Linear)]
    for i, layer in enumerate(layers):
        out, into = layer.weight.shape
        weight = theta[offset : offset + out * into].reshape(out, into)
        bias = theta[offset + out * into : offset + out * into + out]
        offset += out * into + out
        x = x @ weight.T + bias
        if i + 1 < len(layers):
            x = torch.relu(x)
    return x


def fit_loss(theta, model, x, y):
    return ((mlp64(theta, model, x) - y) ** 2).mean()


def grad_norm_phase(phase, model, theta, data, record_every, flattest):
    """The worker's second phase (2.2): minimise scale·‖∇L‖ (or ‖∇L‖²) in
    f64; the gradient of that is a Hessian-vector product (double backward)."""
    theta = theta.clone().requires_grad_(True)
    optim = flat_optimizer(phase["optimizer"], phase["lr"], [theta])
    for step in range(1, phase["steps"] + 1):
        optim.zero_grad(set_to_none=True)
        loss = fit_loss(theta, model, *data)
        (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
        norm = grad.norm()
        if norm.item() < flattest[0]:
            flattest = (norm.item(), theta.detach().clone(), loss.item())
        if step % record_every == 0:
            loss.item()
        objective = norm if phase["objective"] == "norm" else norm**2
        (phase["scale"] * objective).backward()
        optim.step()
    return theta.detach(), flattest


def fit(params, _data):
    """1.1's MSE training in f32, then 2.2's gradient-norm phase if asked;
    returns the summary and the flattest point (norm, f64 weights, loss)."""
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
            flattest, kept = norm, flat(model)
        if step % spec["record_every"] == 0 or step == spec["steps"]:
            last = loss.item()
        optim.step()
    data = (x.double(), y.double())
    # As the worker, the flattest point measured again in f64.
    kept = kept.requires_grad_(True)
    loss = fit_loss(kept, model, *data)
    (grad,) = torch.autograd.grad(loss, kept)
    best = (grad.norm().item(), kept.detach(), loss.item())
    phase = spec.get("grad_norm_phase")
    if phase:
        theta, best = grad_norm_phase(phase, model, flat(model), data, spec["record_every"], best)
        last = fit_loss(theta, model, *data).item()
    return {"loss": last, "min_grad_norm": best[0]}, (model, data, best)


def hessian(params, _data):
    """2.3: the fit, then the exact f64 Hessian at its flattest point and
    the share of its eigenvalues above zero and about ±abs_tol."""
    result, (model, data, (_, theta, _)) = fit(params, None)
    matrix = torch.autograd.functional.hessian(lambda t: fit_loss(t, model, *data), theta)
    values = torch.linalg.eigvalsh((matrix + matrix.T) / 2)
    tol = params["hessian"]["abs_tol"]
    result["minimal_ratio"] = (values > 0).double().mean().item()
    result["zero_fraction"] = (values.abs() <= tol).double().mean().item()
    return result


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


def sensitivity(model, loss_fn, x, y, chunk=1000):
    """3.4's ‖∂L/∂X‖_F of the mean test loss, as the worker measures it:
    each example's own loss gradient with respect to its input."""
    squares = 0.0
    for i in range(0, len(x), chunk):
        inputs = x[i : i + chunk].clone().requires_grad_(True)
        summed = loss_fn(model(inputs), y[i : i + chunk]) * len(inputs)
        (grad,) = torch.autograd.grad(summed, inputs)
        squares += (grad.double() ** 2).sum().item()
    return squares**0.5 / len(x)


def subsets(data, train_subset, test_subset):
    (train_x, train_y), (test_x, test_y) = data
    n_train = train_subset or len(train_x)
    n_test = test_subset or len(test_x)
    return (train_x[:n_train], train_y[:n_train]), (test_x[:n_test], test_y[:n_test])


def classify(params, data):
    spec = params["classify"]
    (train_x, train_y), (test_x, test_y) = subsets(
        data, spec.get("train_subset"), spec.get("test_subset"))
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
    if spec["sensitivity"]:
        result["sensitivity"] = sensitivity(model, loss_fn, test_x, test_y)
    return result, (flat(model) if spec["save_weights"] else None)


@torch.no_grad()
def interpolate(params, data, ends):
    """3.3: loss and accuracy of θ(α) = (1-α)·θ₁ + α·θ₂ on both splits."""
    spec = params["interpolate"]
    (train_x, train_y), (test_x, test_y) = subsets(
        data, spec.get("train_subset"), spec.get("test_subset"))
    model, loss_fn = build(params["model"]), nn.CrossEntropyLoss()
    count = int((spec["alpha_to"] - spec["alpha_from"]) / spec["alpha_step"] + 1e-9) + 1
    highest = float("-inf")
    for i in range(count):
        alpha = spec["alpha_from"] + i * spec["alpha_step"]
        blend = ((1 - alpha) * ends[0] + alpha * ends[1]).float()
        torch.nn.utils.vector_to_parameters(blend, model.parameters())
        train_loss, _ = evaluate(model, loss_fn, train_x, train_y)
        evaluate(model, loss_fn, test_x, test_y)
        if 0 < alpha < 1:
            highest = max(highest, train_loss)
    return {"points": count, "highest_train_loss_between": highest}


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
    cache, kept = {}, {}
    for index, params in enumerate(tasks):
        task_started = time.perf_counter()
        kind = params["experiment"]
        if kind == "fit":
            result, _ = fit(params, None)
        elif kind == "hessian":
            result = hessian(params, None)
        elif kind == "classify":
            data = dataset(params["dataset"], args.data_dir, cache)
            result, kept[index] = classify(params, data)
        else:
            data = dataset(params["dataset"], args.data_dir, cache)
            result = interpolate(params, data, [kept[i] for i in params["depends_on"]])
        shown = "  ".join(f"{k} {v:.4g}" for k, v in result.items())
        print(f"{params['model_name']:<10} params {params['param_count']:>9} "
              f"seed {params['seed']:>3}  {time.perf_counter() - task_started:8.2f} s  {shown}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: "
          f"{len(tasks)} tasks in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
