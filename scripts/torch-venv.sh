#!/usr/bin/env bash
# Makes sure the PyTorch 2.9.0 venv exists (the version tch 0.22 is built
# for; made once and cached at $SWEEP_TORCH_VENV, default
# ~/.cache/sweep/torch-2.9.0, about 7 GB: the registry's wheel is a CUDA
# build, which runs on CPU too) and prints its path. Used by the LibTorch
# tests and the PyTorch side of the training benchmarks.
set -euo pipefail
venv=${SWEEP_TORCH_VENV:-$HOME/.cache/sweep/torch-2.9.0}
if ! "$venv/bin/python" -c 'import torch; assert torch.__version__.startswith("2.9.0")' 2>/dev/null; then
  echo "== installing torch==2.9.0 into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.9.0 >&2
fi
echo "$venv"
