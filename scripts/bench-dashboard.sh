#!/usr/bin/env bash
# The dashboard's pages over a 100,000-task sweep (5 batch sizes x 20,000
# seeds) submitted to a release coordinator on a fresh PostgreSQL database:
# the median of 5 loads of each page after one warm-up, as curl times the
# whole response. Needs PostgreSQL on 127.0.0.1:5432 and release binaries
# (`cargo build --release -p sweep-coordinator -p sweep-cli`, or
# SWEEP_BIN=DIR).
#
#   scripts/bench-dashboard.sh [TASKS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SWEEP_BIN:-target/release}
tasks=${1:-100000}
port=50978
base="http://127.0.0.1:$port"
database=sweep_bench_dashboard
server=postgres://postgres@127.0.0.1:5432

psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)"
psql "$server/postgres" -qc "CREATE DATABASE $database"
"$bin/sweep-coordinator" --listen "127.0.0.1:$port" --database-url "$server/$database" 2>/dev/null &
coordinator=$!
trap 'kill $coordinator 2>/dev/null; sleep 1; psql "$server/postgres" -qc "DROP DATABASE $database WITH (FORCE)"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "$base/" && break; sleep 0.2; done

spec=$(mktemp --suffix .toml)
{
  printf 'name = "dashboard-bench"\nexperiment = "classify"\ndataset = "mnist-sample"\n'
  printf 'model = { kind = "mlp", hidden = [16] }\ntrain = { lr = 1e-3, epochs = 1 }\n'
  printf '[grid]\nbatch_size = [16, 32, 64, 128, 256]\n'
  printf 'seed = [%s]\n' "$(seq -s, 0 $((tasks / 5 - 1)))"
} >"$spec"
"$bin/sweep" submit "$spec" --endpoint "$base" >/dev/null
rm "$spec"

middle=$((tasks / 2))
echo "| page | bytes | median seconds |"
echo "|---|---:|---:|"
for path in / /sweeps/1 "/sweeps/1?state=queued&from=$middle" "/sweeps/1?sort=state&from=$middle" \
  "/sweeps/1?sort=duration&from=$middle" "/tasks/$middle" /workers /sweeps/1/figures; do
  curl -s -o /dev/null "$base$path"
  times=$(for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "$base$path"; done | sort -n)
  bytes=$(curl -s "$base$path" | wc -c)
  echo "| \`$path\` | $bytes | $(echo "$times" | sed -n 3p) |"
done
