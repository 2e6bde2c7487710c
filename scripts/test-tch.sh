#!/usr/bin/env bash
# The worker's model and learning tests on LibTorch (CPU): the `tch` feature
# without flex, so every CPU tensor goes through LibTorch; then the PyTorch
# reference scripts on tiny specs. Needs PyTorch 2.9.0, from the venv that
# scripts/torch-venv.sh makes once.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$(scripts/torch-venv.sh)
torch_lib=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib

export VIRTUAL_ENV=$venv PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
features=(-p sweep-worker --no-default-features --features tch --locked)
cargo clippy "${features[@]}" --all-targets -- -D warnings
cargo test "${features[@]}" --lib --test learning

# The PyTorch references of the training benchmarks (scripts/bench-training.sh)
# on tiny specs, so they keep running between benchmark runs.
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
cat >"$check/classify.toml" <<'SPEC'
name = "torch-reference-check"
experiment = "classify"
dataset = "mnist-sample"
train = { optimizer = "adam", lr = 1e-3, epochs = 1, batch_size = 64, record_every = 2 }
classify = { train_subset = 256, test_subset = 128 }
models = [
  { name = "mlp", kind = "mlp", hidden = [32] },
  { name = "cnn", kind = "cnn", convs = [4], fc = [16] },
]
SPEC
cat >"$check/fit.toml" <<'SPEC'
name = "torch-reference-check-fit"
experiment = "fit"
train = { optimizer = "adam", lr = 0.005, steps = 20, record_every = 5 }
fit = { target = "x_cos_x", points = 100, x_min = -1.0, x_max = 10.0 }
models = [{ name = "mlp", kind = "mlp", hidden = [8, 8] }]
SPEC
cat >"$check/hessian.toml" <<'SPEC'
name = "torch-reference-check-hessian"
experiment = "hessian"
model = { kind = "mlp", hidden = [4] }
train = { optimizer = "adam", lr = 1e-3, steps = 20, record_every = 5 }
hessian = { abs_tol = 1e-6, rel_tol = 1e-6 }
fit = { record_grad_norm = true, grad_norm_phase = { steps = 10, objective = "norm_squared", scale = 1.0, lr = 1e-4 } }
SPEC
cat >"$check/interpolate.toml" <<'SPEC'
name = "torch-reference-check-interpolate"
experiment = "classify"
dataset = "mnist-sample"
model = { name = "mlp", kind = "mlp", hidden = [16] }
train = { optimizer = "adam", lr = 1e-3, epochs = 1, record_every = 2 }
classify = { train_subset = 256, test_subset = 128 }
interpolate = { between = "batch_size", alpha = { from = 0.0, to = 1.0, step = 0.5 }, same_init = true }
grid = { batch_size = [32, 64], seed = [0] }
SPEC
epoch=target/debug/examples/epoch
cargo build "${features[@]}" --example epoch
# Every task the worker plans (dependent ones included) is run by the loop.
for spec in classify fit hessian interpolate; do
  python scripts/torch_sweep.py "$check/$spec.toml" --epoch "$epoch" | tee "$check/out"
  planned=$("$epoch" "$check/$spec.toml" --tasks | grep -c .)
  grep -q ": $planned tasks in" "$check/out"
done
python scripts/torch_epoch.py --model '{"kind":"mlp","input":784,"hidden":[32],"output":10}' --epochs 1
