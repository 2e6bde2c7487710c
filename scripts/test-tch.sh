#!/usr/bin/env bash
# The worker's model and learning tests on LibTorch (CPU): the `tch` feature
# without flex, so every CPU tensor goes through LibTorch. Needs PyTorch
# 2.9.0 (the version tch 0.22 is built for); a venv with it is made once and
# cached at $SWEEP_TORCH_VENV (default ~/.cache/sweep/torch-2.9.0, about 7 GB:
# the registry's wheel is a CUDA build, which runs on CPU too).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SWEEP_TORCH_VENV:-$HOME/.cache/sweep/torch-2.9.0}
if ! "$venv/bin/python" -c 'import torch; assert torch.__version__.startswith("2.9.0")' 2>/dev/null; then
  echo "== installing torch==2.9.0 into $venv (once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.9.0
fi
torch_lib=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib

export VIRTUAL_ENV=$venv PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
features=(-p sweep-worker --no-default-features --features tch --locked)
cargo clippy "${features[@]}" --all-targets -- -D warnings
cargo test "${features[@]}" --lib --test learning
