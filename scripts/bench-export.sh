#!/usr/bin/env bash
# `sweep export` through the coordinator at two sizes (10^5 and 10^6 metric
# points, as 100 and 1,000 tasks of 1,000 points): wall time, and the peak
# resident memory of the cli and of the coordinator, which must not grow
# with the sweep. Needs PostgreSQL on 127.0.0.1:5432 and release binaries
# (`cargo build --release --workspace --bins`, or SWEEP_BIN=DIR).
#
#   scripts/bench-export.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SWEEP_BIN:-target/release}
port=50977

for tasks in 100 1000; do
  url=$(cargo bench -q -p sweep-coordinator --bench report -- postgres "$tasks" 1000 keep |
    awk '/^kept: / {print $2}')
  "$bin/sweep-coordinator" --listen "127.0.0.1:$port" --database-url "$url" 2>/dev/null &
  coordinator=$!
  for _ in $(seq 50); do
    "$bin/sweep" status --endpoint "http://127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 0.2
  done
  /usr/bin/time -f '%e %M' -o /tmp/export-time "$bin/sweep" export 1 \
    --endpoint "http://127.0.0.1:$port" >/tmp/export-out
  read -r seconds cli_kib </tmp/export-time
  coordinator_kib=$(awk '/VmHWM/ {print $2}' "/proc/$coordinator/status")
  rows=$(($(wc -l </tmp/export-out) - 1))
  echo "| $((tasks * 1000)) | $rows | $seconds | $((cli_kib / 1024)) | $((coordinator_kib / 1024)) |"
  kill "$coordinator"
  wait "$coordinator" 2>/dev/null || true
  psql "${url%/*}/postgres" -qc "DROP DATABASE ${url##*/} WITH (FORCE)"
done
