#!/usr/bin/env bash
# Runs every quick spec (sweeps/quick/) with `sweep run` on this machine and
# keeps what docs/REPRODUCTION.md quotes: each sweep's report table and its
# figures. Usage:
#
#   scripts/reproduce.sh [OUT]     # OUT defaults to target/reproduce
#
# OUT/sweeps.db holds every sweep, OUT/reports/NAME.txt each report (with the
# wall time of its run) and OUT/figures/NAME/ each figure (SVG). A spec whose
# sweep already finished in OUT/sweeps.db is not run again (`sweep run`
# resumes); delete OUT to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/reproduce}
mkdir -p "$out/reports" "$out/figures"
cargo build --release --locked -q -p sweep-cli
sweep=target/release/sweep
for spec in sweeps/quick/*.toml; do
  name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$spec" | head -n 1)
  echo "== $name"
  started=$(date +%s.%N)
  "$sweep" run "$spec" --db "$out/sweeps.db" >/dev/null
  seconds=$(echo "$(date +%s.%N) - $started" | bc)
  {
    printf '# %s (%s), sweep run: %.1f s on %s cores, %s\n' \
      "$name" "$spec" "$seconds" "$(nproc)" "$(date -u +%F)"
    "$sweep" report "$name" --database-url "$out/sweeps.db"
  } | tee "$out/reports/$name.txt"
  "$sweep" plot "$name" --database-url "$out/sweeps.db" --out "$out/figures/$name" >/dev/null
done
