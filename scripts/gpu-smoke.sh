#!/usr/bin/env bash
# CUDA smoke test and speed check: trains the 1.2 models (deep vs shallow MLP
# on the built-in MNIST sample) for one epoch on cuda:0 with the worker's
# LibTorch backend, then the same nets with PyTorch for comparison.
#
#   scripts/gpu-smoke.sh            # build (if needed) and run here
#   scripts/gpu-smoke.sh build      # only build target/gpu-smoke/epoch
#   DEVICE=cpu scripts/gpu-smoke.sh # the same steps without a GPU (a dry run)
#
# The build links against the PyTorch that `$PYTHON` (default python3)
# imports; the binary then runs on any machine with that PyTorch version and
# a GPU. A machine that cannot build (no cargo, no registry) runs a binary
# built elsewhere against the same PyTorch, found at $SWEEP_EPOCH_BIN or
# target/gpu-smoke/epoch.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SPEC=${SPEC:-sweeps/quick/1.2-deep-vs-shallow-mnist.toml}
DEVICE=${DEVICE:-cuda:0}
BIN=${SWEEP_EPOCH_BIN:-target/gpu-smoke/epoch}

torch_dir=$("$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))') || {
  echo "gpu-smoke: $PYTHON cannot import torch; set PYTHON to one that can" >&2
  exit 1
}
torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])')
export LD_LIBRARY_PATH="$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

build() {
  echo "== building the worker with tch against torch $torch_version ($torch_dir)"
  # tch 0.22 is made for torch 2.9.0; 2.11.0 builds and runs (notes in
  # docs/BENCHMARKS.md), other versions may not.
  [ "$torch_version" = 2.9.0 ] || export LIBTORCH_BYPASS_VERSION_CHECK=1
  LIBTORCH_USE_PYTORCH=1 PATH="$(dirname "$(command -v "$PYTHON")"):$PATH" \
    cargo build --release --locked -p sweep-worker --features tch --example epoch
  mkdir -p "$(dirname "$BIN")"
  cp target/release/examples/epoch "$BIN"
}

if [ "${1:-}" = build ]; then
  build
  exit 0
fi
if [ ! -x "$BIN" ]; then
  command -v cargo >/dev/null || { echo "gpu-smoke: no $BIN and no cargo to build it" >&2; exit 1; }
  build
fi

if [ "${DEVICE%%:*}" = cuda ]; then
  "$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print("gpu:", torch.cuda.get_device_name(0))'
fi

echo "== sweep worker on $DEVICE: $SPEC"
out=$("$BIN" "$SPEC" --device "$DEVICE" --repeat 2 | tee /dev/stderr)
if [ "${DEVICE%%:*}" = cuda ]; then
  grep -q "backend tch" <<<"$out" || { echo "gpu-smoke: the worker did not use LibTorch" >&2; exit 1; }
fi
# One epoch at lr 1e-4 reaches about 0.8 on the sample (flex on CPU: 0.78-0.81).
awk '{ for (i = 1; i < NF; i++) if ($i == "test_acc" && $(i + 1) < 0.5) bad = 1 } END { exit bad }' <<<"$out" \
  || { echo "gpu-smoke: a model did not learn (test_acc < 0.5)" >&2; exit 1; }

echo "== PyTorch $torch_version on ${DEVICE%%:*}, the same nets"
grep -o 'model {.*}' <<<"$out" | sort -u | sed 's/^model //' | while read -r model; do
  echo "model $model"
  "$PYTHON" scripts/torch_epoch.py --model "$model" --device "${DEVICE%%:*}" --epochs 2 --lr 1e-4
done
echo "gpu-smoke: ok"
