#!/usr/bin/env bash
# Reproduces the report and keeps what docs/REPRODUCTION.md quotes: each
# sweep's report table, its figures and, at full scale, what it cost.
#
#   scripts/reproduce.sh [OUT]          # the quick specs (sweeps/quick/) with
#                                       # `sweep run`; OUT: target/reproduce
#   scripts/reproduce.sh --full [OUT] [SPEC...]
#                                       # the full specs (sweeps/full/, or the
#                                       # SPECs named) through the cluster
#                                       # path; OUT: target/reproduce-full
#
# Quick: OUT/sweeps.db holds every sweep, OUT/reports/NAME.txt each report
# (with the wall time of its run) and OUT/figures/NAME/ each figure (SVG).
#
# Full: a `sweep-coordinator` on SWEEP_DATABASE_URL (default: the SQLite
# file OUT/sweeps.db; give postgres://... for PostgreSQL) and worker
# processes of their own, as on a cluster, one spec after another so that
# each one's cost is its own. Workers come from SWEEP_WORKERS:
#   local (default)  one `sweep-worker --slots $(nproc)` on this machine,
#                    started for each spec and stopped after it;
#   slurm            SWEEP_JOBS (default 2) jobs of deploy/slurm/worker.sbatch
#                    with one CPU each and --time=SWEEP_JOB_TIME (minutes,
#                    default 10): a task longer than that finishes across
#                    requeued jobs from its checkpoints.
# It needs the whole MNIST where the workers look (`sweep data fetch mnist`,
# or `sweep data fetch mnist --from DIR` for a local copy; SWEEP_DATA_DIR).
# OUT/costs.tsv gets a line per spec: tasks, wall and worker CPU seconds,
# the largest worker's peak RSS, checkpoints stored and resumed from,
# attempts, Slurm jobs and requeues, metric points and artifact bytes.
#
# Either way a spec whose sweep already finished is not run again, and one
# that was interrupted goes on where it stopped (its finished tasks are
# kept, its running ones resume from their checkpoints); delete OUT (and
# the PostgreSQL database) to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '== %s\n' "$*" >&2; }
sweep=target/release/sweep

name_of() { sed -n 's/^name = "\(.*\)"$/\1/p' "$1" | head -n 1; }

# Writes OUT/reports/NAME.txt (a first line saying how long the run took)
# and OUT/figures/NAME/ from the results at --database-url $2.
keep_results() {
  local name=$1 url=$2 header=$3
  {
    echo "$header"
    "$sweep" report "$name" --database-url "$url"
  } | tee "$out/reports/$name.txt"
  "$sweep" plot "$name" --database-url "$url" --out "$out/figures/$name" >/dev/null
}

quick() {
  out=${1:-target/reproduce}
  mkdir -p "$out/reports" "$out/figures"
  cargo build --release --locked -q -p sweep-cli
  for spec in sweeps/quick/*.toml; do
    local name started seconds
    name=$(name_of "$spec")
    log "$name"
    started=$(date +%s.%N)
    "$sweep" run "$spec" --db "$out/sweeps.db" >/dev/null
    seconds=$(echo "$(date +%s.%N) - $started" | bc)
    keep_results "$name" "sqlite://$out/sweeps.db" "$(printf '# %s (%s), sweep run: %.1f s on %s cores, %s' \
      "$name" "$spec" "$seconds" "$(nproc)" "$(date -u +%F)")"
  done
}

# --- full scale ----------------------------------------------------------

# Every worker process's CPU ticks and peak RSS (kB), sampled until killed:
# the last line per pid is what it used (requeued jobs are new pids).
sample_workers() {
  local file=$1
  while sleep 2; do
    for pid in $(pgrep -x sweep-worker || true); do
      local stat hwm
      stat=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
      hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
      echo "$pid ${stat% *} ${stat#* } ${hwm:-0}" >>"$file"
    done
  done
}

sql() { psql "$database_url" -Atq -v ON_ERROR_STOP=1 -c "$1"; }
sqlite_sql() { python3 -c 'import sqlite3, sys; print(*sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone(), sep="\t")' "${database_url#sqlite://}" "$1"; }
query() { if [[ $database_url == postgres* ]]; then sql "$1"; else sqlite_sql "$1" | tr '\t' '|'; fi; }

state_of() {
  "$sweep" status "$1" --format json 2>/dev/null |
    python3 -c 'import json, sys; print(json.loads(sys.stdin.read() or "[{}]")[0].get("state", ""))' 2>/dev/null || true
}

start_coordinator() {
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export SWEEP_ENDPOINT=http://127.0.0.1:$port
  target/release/sweep-coordinator --listen "127.0.0.1:$port" --database-url "$database_url" \
    >>"$out/logs/coordinator.log" 2>&1 &
  coordinator=$!
  for _ in $(seq 1 100); do
    "$sweep" status >/dev/null 2>&1 && break
    sleep 0.2
  done
  log "coordinator on $SWEEP_ENDPOINT (dashboard: $SWEEP_ENDPOINT/), $(redacted "$database_url")"
}
redacted() { sed -E 's#//([^:@/]+):[^@/]*@#//\1:***@#' <<<"$1"; }

# Starts this spec's workers; `stop_workers` ends them (they hand back).
start_workers() {
  local name=$1
  jobs_started=()
  if [[ $workers == slurm ]]; then
    local count=${SWEEP_JOBS:-2} minutes=${SWEEP_JOB_TIME:-10} i
    for i in $(seq 1 "$count"); do
      jobs_started+=("$(SWEEP_COORDINATOR=$SWEEP_ENDPOINT SWEEP_WORKER_BIN=$PWD/target/release/sweep-worker \
        sbatch --parsable --cpus-per-task=1 --time="$minutes" --job-name="sweep-$name" \
        --output="$out/logs/$name-slurm-%j.out" deploy/slurm/worker.sbatch)")
    done
    log "$name: Slurm jobs ${jobs_started[*]} (--time=$minutes, one CPU each)"
  else
    target/release/sweep-worker --coordinator "$SWEEP_ENDPOINT" --slots "$(nproc)" \
      --name "reproduce-$name" >>"$out/logs/$name-worker.log" 2>&1 &
    worker_pid=$!
  fi
}

stop_workers() {
  if ((${#jobs_started[@]})); then
    scancel "${jobs_started[@]}" 2>/dev/null || true
    while squeue -h -j "$(IFS=,; echo "${jobs_started[*]}")" 2>/dev/null | grep -q .; do sleep 1; done
  elif [[ -n ${worker_pid:-} ]]; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
    worker_pid=
  fi
}

# One line of OUT/costs.tsv for the sweep `name`, run in `seconds`.
costs() {
  local name=$1 seconds=$2 samples=$3 tck id usage
  tck=$(getconf CLK_TCK)
  usage=$(awk -v tck="$tck" '{cpu[$1] = $2 + $3; rss[$1] = $4}
    END {for (p in cpu) {c += cpu[p]; if (rss[p] > m) m = rss[p]}; printf "%.0f\t%.0f", c / tck, m / 1024}' "$samples")
  id=$(query "SELECT max(id) FROM sweeps WHERE name = '$name'")
  local tasks attempts resumed points bytes stored resumes requeues=-
  tasks=$(query "SELECT count(*) FROM tasks WHERE sweep_id = $id")
  attempts=$(query "SELECT coalesce(sum(attempt), 0) FROM tasks WHERE sweep_id = $id")
  resumed=$(query "SELECT count(*) FROM tasks WHERE sweep_id = $id AND resumed_from > 0")
  points=$(query "SELECT count(*) FROM metrics WHERE task_id IN (SELECT id FROM tasks WHERE sweep_id = $id)")
  bytes=$(query "SELECT coalesce(sum(size), 0) FROM artifacts WHERE task_id IN (SELECT id FROM tasks WHERE sweep_id = $id)")
  stored=$(cat "$out/logs/$name"-* 2>/dev/null | grep -c 'checkpoint stored' || true)
  resumes=$(cat "$out/logs/$name"-* 2>/dev/null | grep -c 'resuming from a checkpoint' || true)
  if [[ $workers == slurm ]]; then
    requeues=$(cat "$out/logs/$name"-slurm-* 2>/dev/null | grep -c 'requeued, to go on' || true)
  fi
  printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$workers" "$tasks" "$seconds" \
    "${usage%%$'\t'*}" "${usage##*$'\t'}" "$stored" "$resumes" "$resumed" "$attempts" "$requeues" \
    "$points" "$bytes" | tee -a "$out/costs.tsv"
}

full_spec() {
  local spec=$1 name state started seconds samples sampler
  name=$(name_of "$spec")
  state=$(state_of "$name")
  if [[ $state == succeeded ]]; then
    log "$name: finished earlier"
    return
  fi
  if [[ -z $state ]]; then
    "$sweep" submit "$spec" >/dev/null
  else
    log "$name: $state earlier; resuming"
  fi
  samples=$out/logs/$name-usage.txt
  : >"$samples"
  sample_workers "$samples" &
  sampler=$!
  started=$(date +%s.%N)
  start_workers "$name"
  local watched=0
  "$sweep" watch "$name" || watched=$?
  stop_workers
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  seconds=$(echo "$(date +%s.%N) - $started" | bc)
  ((watched == 0)) || { log "$name did not succeed (sweep tasks $name --state failed)"; return 1; }
  costs "$name" "$seconds" "$samples"
  keep_results "$name" "$database_url" "$(printf '# %s (%s): %.0f s on %s cores (%s workers), %s' \
    "$name" "$spec" "$seconds" "$(nproc)" "$workers" "$(date -u +%F)")"
}

full() {
  out=${1:-target/reproduce-full}
  shift || true
  local specs=("$@")
  ((${#specs[@]})) || specs=(sweeps/full/*.toml)
  workers=${SWEEP_WORKERS:-local}
  mkdir -p "$out/reports" "$out/figures" "$out/logs"
  out=$(cd "$out" && pwd)
  database_url=${SWEEP_DATABASE_URL:-sqlite://$out/sweeps.db}
  [[ -s $out/costs.tsv ]] || printf 'spec\tworkers\ttasks\twall_s\tcpu_s\tpeak_rss_mb\tcheckpoints\tresumes\ttasks_resumed\tattempts\trequeues\tmetric_points\tartifact_bytes\n' >"$out/costs.tsv"
  cargo build --release --locked -q -p sweep-cli -p sweep-coordinator -p sweep-worker
  [[ $workers != slurm ]] || deploy/slurm/local-cluster.sh
  coordinator=
  worker_pid=
  jobs_started=()
  trap 'stop_workers; [[ -z $coordinator ]] || kill -TERM "$coordinator" 2>/dev/null; jobs -p | xargs -r kill 2>/dev/null; true' EXIT
  start_coordinator
  for spec in "${specs[@]}"; do
    full_spec "$spec"
  done
  log "costs: $out/costs.tsv (as Markdown: $out/costs.md)"
  column -t -s $'\t' "$out/costs.tsv" >&2
  awk -F'\t' '{row = "|"; for (i = 1; i <= NF; i++) row = row " " $i " |"; print row}
    NR == 1 {row = "|"; for (i = 1; i <= NF; i++) row = row (i < 3 ? "---|" : "---:|"); print row}' \
    "$out/costs.tsv" >"$out/costs.md"
}

if [[ ${1:-} == --full ]]; then
  shift
  full "$@"
else
  quick "$@"
fi
