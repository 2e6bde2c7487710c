#!/usr/bin/env bash
# Training against PyTorch on this machine's CPU, written into
# docs/BENCHMARKS.md between `<!-- bench-training.sh: begin -->` and `end`:
#  1. time per epoch (8,000/2,000 MNIST sample, batch 64, Adam, with the
#     per-epoch evaluation): the worker's `epoch` example against
#     scripts/torch_epoch.py, medians of 3;
#  2. whole quick sweeps: `sweep run` (embedded coordinator, one local worker
#     per core) against scripts/torch_sweep.py (the same tasks one after the
#     other in a plain PyTorch loop), every quick spec, wall time of each
#     command, medians of 3 interleaved rounds.
# Needs the PyTorch venv (scripts/torch-venv.sh installs it once). About 15
# minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/BENCHMARKS.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python=$(scripts/torch-venv.sh)/bin/python
cargo build --release --locked -q -p sweep-cli --bin sweep
cargo build --release --locked -q -p sweep-worker --example epoch
epoch=target/release/examples/epoch

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
seconds() { # COMMAND...: wall seconds, output dropped
  local start=$EPOCHREALTIME
  "$@" >/dev/null 2>&1
  echo "$EPOCHREALTIME - $start" | bc
}

out=$tmp/table.md
{
  echo "Written by \`scripts/bench-training.sh\` on $(date -u +%F): $(nproc) cores,"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), burn $(grep -A1 '^name = "burn"$' Cargo.lock | awk -F'"' '/version/ {print $2}') flex,"
  echo "$("$python" -c 'import torch; print("PyTorch", torch.__version__)' 2>/dev/null)."
  echo
  echo "### Time per epoch (8,000/2,000 sample, batch 64, Adam, with the evaluation)"
  echo
  echo '```sh'
  echo "$epoch SPEC --repeat 3"
  echo "python scripts/torch_epoch.py --model JSON --lr 1e-4 --epochs 3"
  echo '```'
  echo
  echo "| model | params | flex | PyTorch | flex / PyTorch |"
  echo "|---|---|---|---|---|"
} >"$out"
for quick in 1.2-deep-vs-shallow-mnist 1.3-cnn-mnist; do
  sed 's/^classify = .*/classify = { train_subset = 8000, test_subset = 2000 }/' \
    "sweeps/quick/$quick.toml" >"$tmp/$quick.toml"
  echo "== epoch $quick" >&2
  "$epoch" "$tmp/$quick.toml" --repeat 3 | tail -n +2 >"$tmp/runs"
  for name in $(awk '{print $1}' "$tmp/runs" | uniq); do
    ours=$(awk -v n="$name" '$1 == n {for (i = 1; i <= NF; i++) if ($i == "s") print $(i - 1)}' "$tmp/runs" | median)
    params=$(awk -v n="$name" '$1 == n {print $3; exit}' "$tmp/runs")
    model=$(awk -v n="$name" '$1 == n {sub(/.*model /, ""); print; exit}' "$tmp/runs")
    theirs=$("$python" scripts/torch_epoch.py --model "$model" --lr 1e-4 --epochs 3 2>/dev/null |
      grep -o 'epoch [0-9]*: [0-9.]* s' | awk '{print $3}' | median)
    echo "| $name | $params | $ours s | $theirs s | $(printf '%.2f' "$(echo "scale=3; $ours / $theirs" | bc)")x |" >>"$out"
  done
done

{
  echo
  echo "### Whole quick sweeps: \`sweep run\` against a sequential PyTorch loop"
  echo
  echo '```sh'
  echo "target/release/sweep run sweeps/quick/SPEC.toml --db FILE"
  echo "python scripts/torch_sweep.py sweeps/quick/SPEC.toml"
  echo '```'
  echo
  echo "| spec | tasks | sweep run | PyTorch loop (its training alone) | PyTorch / sweep |"
  echo "|---|---|---|---|---|"
} >>"$out"
for quick in $(ls sweeps/quick | sed 's/\.toml$//'); do
  spec=sweeps/quick/$quick.toml
  echo "== sweep $quick" >&2
  tasks=$("$epoch" "$spec" --tasks | wc -l)
  : >"$tmp/ours" >"$tmp/theirs" >"$tmp/training"
  for _ in 1 2 3; do # interleaved rounds; the medians are reported
    rm -f "$tmp/$quick.db"
    seconds target/release/sweep run "$spec" --db "$tmp/$quick.db" >>"$tmp/ours"
    start=$EPOCHREALTIME
    "$python" scripts/torch_sweep.py "$spec" 2>/dev/null |
      grep -o 'tasks in [0-9.]* s' | awk '{print $3}' >>"$tmp/training"
    echo "$EPOCHREALTIME - $start" | bc >>"$tmp/theirs"
  done
  ours=$(median <"$tmp/ours") theirs=$(median <"$tmp/theirs") training=$(median <"$tmp/training")
  printf '| %s | %s | %.1f s | %.1f s (%.1f s) | %.2fx |\n' "$quick" "$tasks" "$ours" "$theirs" \
    "$training" "$(echo "scale=3; $theirs / $ours" | bc)" >>"$out"
done

cat "$out" >&2
scripts/write-block.py "$doc" bench-training.sh "$out"
echo "== wrote $doc" >&2
