#!/usr/bin/env bash
# The dashboard's pages over a 100,000-task sweep (5 batch sizes x 20,000
# seeds, every task succeeded with 10 metric points: the report bench's
# database on PostgreSQL), served by a release coordinator: the median of 5
# loads of each page after one warm-up, as curl times the whole response.
# Needs PostgreSQL on 127.0.0.1:5432 and release binaries
# (`cargo build --release -p sweep-coordinator`, or SWEEP_BIN=DIR).
#
#   scripts/bench-dashboard.sh [TASKS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SWEEP_BIN:-target/release}
tasks=${1:-100000}
port=50978
base="http://127.0.0.1:$port"

url=$(cargo bench -q -p sweep-coordinator --bench report -- postgres "$tasks" 10 keep |
  awk '/^kept: / {print $2}')
"$bin/sweep-coordinator" --listen "127.0.0.1:$port" --database-url "$url" 2>/dev/null &
coordinator=$!
trap 'kill $coordinator 2>/dev/null; psql "${url%/*}/postgres" -qc "DROP DATABASE ${url##*/} WITH (FORCE)"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "$base/" && break; sleep 0.2; done

middle=$((tasks / 2))
echo "| page | bytes | median seconds |"
echo "|---|---:|---:|"
for path in / /sweeps/1 "/sweeps/1?state=succeeded&from=$middle" "/tasks/$middle" /workers /sweeps/1/figures; do
  curl -s -o /dev/null "$base$path"
  times=$(for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "$base$path"; done | sort -n)
  bytes=$(curl -s "$base$path" | wc -c)
  echo "| \`$path\` | $bytes | $(echo "$times" | sed -n 3p) |"
done
