#!/usr/bin/env bash
# Runs the coordinator's benchmarks at size and writes their tables into
# docs/BENCHMARKS.md, between the markers `<!-- bench.sh: begin -->` and
# `<!-- bench.sh: end -->`, with the machine, the date and each command.
# Needs PostgreSQL on 127.0.0.1:5432 (SWEEP_TEST_POSTGRES_URL), like the
# tests. About 8 minutes on 2 cores, then scripts/bench-training.sh (training
# against PyTorch) unless quick. `cargo test` runs each benchmark in a tiny
# configuration, so they keep working between runs of this script.
#
#   scripts/bench.sh            # everything
#   SWEEP_BENCH_QUICK=1 scripts/bench.sh   # small sizes, a minute (a check)
#   SWEEP_BENCH_TRAINING=0 scripts/bench.sh   # the coordinator's only
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/BENCHMARKS.md
out=$(mktemp)
trap 'rm -f "$out"' EXIT

if [[ ${SWEEP_BENCH_QUICK:-0} == 1 ]]; then
  scale=(1000 2000 1,8 "1000,10000" 20 100 200 5000 20)
else
  scale=(20000 20000 1,2,4,8,16,32,64 "1000,10000,100000,1000000" 64 20 2000 5000 30,35,40,60,100)
fi
read -r tasks sqlite_tasks workers sizes streams batches report_tasks report_points task_ms <<<"${scale[*]}"

cargo bench -p sweep-coordinator --no-run -q 2>/dev/null
bench() { # NAME ARGS...: runs it, echoes the command, keeps the table
  local name=$1
  shift
  printf '\n```sh\ncargo bench -p sweep-coordinator --bench %s -- %s\n```\n\n' "$name" "$*" >>"$out"
  echo "== $name $*" >&2
  cargo bench -q -p sweep-coordinator --bench "$name" -- "$@" | tee -a "$out" >&2
}

{
  echo "Written by \`scripts/bench.sh\` on $(date -u +%F): $(nproc) cores,"
  echo "$(free -g | awk '/^Mem:/ {print $2}') GiB, $(psql -V 2>/dev/null | awk '{print "PostgreSQL " $3}' || echo PostgreSQL)"
  echo "on the same machine (fsync on), client, coordinator and database sharing the cores."
  echo
  echo "### Queue: lease → complete (with its metric points) over gRPC, by number of workers"
} >"$out"
bench throughput postgres "$tasks" "$workers" 4 10
bench throughput sqlite "$sqlite_tasks" 8 4 10
{
  echo
  echo "### Queue: the cost per task against the size of the sweep (64 workers, the first tasks of each)"
} >>"$out"
bench throughput postgres "$sizes" 64 4 10 "$tasks"
{
  echo
  echo "### Queue below saturation: 64 workers whose tasks take 0.5-1.5x TASK_MS between calls"
} >>"$out"
bench throughput postgres "$((2 * tasks))" 64 4 10 "$((2 * tasks))" "$task_ms"
{
  echo
  echo "### Metric ingestion: concurrent ReportMetrics streams"
} >>"$out"
bench ingest postgres "$streams" "$batches" 1000
bench ingest sqlite "$streams" "$batches" 1000
{
  echo
  echo "### Report against raw-metric volume"
} >>"$out"
bench report postgres "$report_tasks" "$report_points"

scripts/write-block.py "$doc" bench.sh "$out"
echo "== wrote $doc" >&2
[[ ${SWEEP_BENCH_QUICK:-0} == 1 || ${SWEEP_BENCH_TRAINING:-1} == 0 ]] || scripts/bench-training.sh
