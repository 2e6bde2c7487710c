#!/usr/bin/env bash
# Full-scale specs (sweeps/full/) against the sequential PyTorch loop, back to
# back on this machine: `sweep run` (embedded coordinator, one local slot per
# core, a fresh SQLite file) and then scripts/torch_sweep.py (PyTorch, one
# task after the other, as many threads as cores), on the whole MNIST in
# DATA_DIR/mnist. Wall time of each command, one round.
#
#   scripts/bench-full-torch.sh [SPEC...]     (default: every full spec)
#
# The longest specs are cut to a share of their tasks or epochs, so that a
# pair takes minutes, not hours; each task and epoch of a cut spec does what
# the full spec's do, and the cut is in the table's second column. Prints a
# Markdown table (also kept in target/bench-full-torch/table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${DATA_DIR:-/usr/local/share/datasets}
out=target/bench-full-torch
mkdir -p "$out"
python=$(scripts/torch-venv.sh)/bin/python
cargo build --release --locked -q -p sweep-cli --bin sweep
cargo build --release --locked -q -p sweep-worker --example epoch
[ -e "$data_dir/mnist/train-images-idx3-ubyte.gz" ] || [ -e "$data_dir/mnist/train-images-idx3-ubyte" ] ||
  { echo "no MNIST in $data_dir/mnist (sweep data fetch mnist --dir $data_dir/mnist)" >&2; exit 1; }

# SPEC: the spec's text as this benchmark trains it, and what was cut.
cut_spec() {
  "$python" - "$1" <<'EOF'
import re, sys
name = sys.argv[1]
seeds = r"seed = \[[^\]]*\]"
# Per spec: what is cut, and the (pattern, replacement) edits that cut it.
cuts = {
    "1.1-deep-vs-shallow-fit": ("seeds 0-4 (10 of 40 tasks)", [(seeds, "seed = [0, 1, 2, 3, 4]")]),
    "1.3-cnn-mnist": ("seed 0, 2 of 5 epochs (2 of 6 tasks)",
                      [(seeds, "seed = [0]"), (r"epochs = 5,", "epochs = 2,")]),
    "2.1-optimization-path": ("seeds 0-1 (2 of 8 tasks)", [(seeds, "seed = [0, 1]")]),
    "2.3-minimal-ratio": ("5 of 100 seeds", [(seeds, "seed = [0, 1, 2, 3, 4]")]),
    "3.1-random-labels": ("23 of 233 epochs", [(r"epochs = 233", "epochs = 23")]),
    "3.2-params-vs-generalization": ("seed 0 (10 of 30 tasks)", [(seeds, "seed = [0]")]),
    "3.3-interpolation": ("25 of 100 epochs", [(r"epochs = 100", "epochs = 25")]),
    "3.4-sensitivity": ("10 of 100 epochs", [(r"epochs = 100", "epochs = 10")]),
}
text = open(f"sweeps/full/{name}.toml").read()
what, edits = cuts.get(name, ("whole", []))
for pattern, replacement in edits:
    text, count = re.subn(pattern, replacement, text)
    assert count == 1, f"{name}: the cut {pattern!r} no longer matches the spec"
open(f"target/bench-full-torch/{name}.toml", "w").write(text)
print(what)
EOF
}

seconds() { # LOG COMMAND...: wall seconds; the command's output goes to LOG
  local log=$1 start=$EPOCHREALTIME
  shift
  "$@" >"$log" 2>&1
  echo "$EPOCHREALTIME - $start" | bc
}

specs=("$@")
[ ${#specs[@]} -gt 0 ] || mapfile -t specs < <(ls sweeps/full | sed 's/\.toml$//')
table=$out/table.md
{
  echo "$(date -u +%F), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
    "(family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p')),"
  echo "$("$python" -c 'import torch; print("PyTorch", torch.__version__, "with", torch.get_num_threads(), "threads")')."
  echo
  echo "| spec | trained | tasks | sweep run | PyTorch loop | sweep / PyTorch |"
  echo "|---|---|---:|---:|---:|---:|"
} >"$table"
for spec in "${specs[@]}"; do
  what=$(cut_spec "$spec")
  file=$out/$spec.toml
  tasks=$(target/release/examples/epoch "$file" --tasks | wc -l)
  rm -f "$out/$spec.db"
  echo "== $spec ($what, $tasks tasks): sweep run" >&2
  ours=$(seconds "$out/$spec.sweep.log" target/release/sweep run "$file" --db "$out/$spec.db" \
    --data-dir "$data_dir" --no-dashboard)
  echo "== $spec: PyTorch loop" >&2
  theirs=$(seconds "$out/$spec.torch.log" "$python" scripts/torch_sweep.py "$file" --data-dir "$data_dir")
  printf '| %s | %s | %s | %.1f s | %.1f s | %.2fx |\n' "$spec" "$what" "$tasks" "$ours" "$theirs" \
    "$(echo "scale=3; $ours / $theirs" | bc)" | tee -a "$table" >&2
done
cat "$table"
