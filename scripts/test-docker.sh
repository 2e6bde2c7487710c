#!/usr/bin/env bash
# The images and the compose file, for real, on demand (a release build in an
# image takes 15+ minutes on 2 cores: too slow for every CI run). Needs root
# and Debian's package mirror; no container registry is used:
#   1. installs docker.io, docker-compose and debootstrap when missing and
#      starts dockerd without a bridge (host networking only);
#   2. makes the base images with debootstrap: a Debian runtime base and a
#      builder (Debian + gcc, g++ + this machine's Rust toolchain);
#   3. builds the coordinator and CPU worker images from deploy/Dockerfile
#      with those bases as build arguments, and a stand-in postgres:15;
#   4. brings up deploy/compose.yaml (host network), submits a sweep with the
#      image's own `sweep`, scales workers 1 -> 3 while it runs and checks
#      that it succeeds with every task done once, then takes it all down.
# The CUDA image needs PyTorch's 7 GB wheel and a GPU to mean anything:
# SWEEP_DOCKER_CUDA=1 builds it too (it is not run here).
# SWEEP_DOCKER_REUSE=1 keeps images already built instead of rebuilding.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '== %s: %s\n' "$(date +%T)" "$*"; }
cache=${SWEEP_DOCKER_CACHE:-$HOME/.cache/sweep/docker}
mkdir -p "$cache"

# 1. Docker.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (no bridge, no iptables)"
  dockerd --bridge=none --iptables=false >"$cache/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $cache/dockerd.log" >&2; exit 1; }
fi

# 2. Bases, made once and kept.
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
bootstrap() { # NAME PACKAGES
  local rootfs=$cache/rootfs-$1
  rm -rf "$rootfs"
  debootstrap --variant=minbase ${2:+--include="$2"} bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap-$1.log"
  echo "$rootfs"
}
if ! image_exists local/debian:bookworm; then
  log "debootstrap: local/debian:bookworm"
  rootfs=$(bootstrap base "")
  tar -C "$rootfs" -c . | docker import - local/debian:bookworm >/dev/null
  rm -rf "$rootfs"
fi
toolchain=$(rustc --print sysroot)
builder_tag=local/rust:$(rustc --version | awk '{print $2}')
if ! image_exists "$builder_tag"; then
  log "debootstrap: $builder_tag (Debian, gcc and $toolchain)"
  rootfs=$(bootstrap builder "gcc,g++,libc6-dev,ca-certificates,pkg-config,python3-venv")
  mkdir -p "$rootfs/usr/local/rust"
  tar -C "$toolchain" --exclude=./share/doc -c . | tar -C "$rootfs/usr/local/rust" -x
  # This machine may reach crates.io through a TLS-inspecting proxy: the
  # builder trusts what the host trusts.
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # pip trusts its own bundle unless told otherwise (worker-cuda's torch).
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' - "$builder_tag" >/dev/null
  rm -rf "$rootfs"
fi

# 3. Images. Builds use the host's network (crates.io, Debian's mirror).
build() { # TARGET TAG [ARGS...]
  local target=$1 tag=$2
  shift 2
  if [[ ${SWEEP_DOCKER_REUSE:-0} == 1 ]] && image_exists "$tag"; then
    log "reusing $tag (SWEEP_DOCKER_REUSE=1)"
    return
  fi
  log "docker build --target $target -t $tag"
  docker build --network host -f deploy/Dockerfile --target "$target" -t "$tag" \
    --build-arg BUILDER="$builder_tag" --build-arg BASE=local/debian:bookworm "$@" . \
    >"$cache/build-$target.log" 2>&1 || { tail -n 40 "$cache/build-$target.log"; exit 1; }
}
started=$(date +%s)
build coordinator sweep-coordinator
build worker-cpu sweep-worker-cpu
if [[ ${SWEEP_DOCKER_CUDA:-0} == 1 ]]; then
  build worker-cuda sweep-worker-cuda --build-arg CUDA_BASE=local/debian:bookworm
  # No GPU here: the binary must start (the loader finds LibTorch without
  # LD_LIBRARY_PATH) and refuse cuda:0 at once, saying why.
  docker run --rm sweep-worker-cuda --version
  if out=$(docker run --rm --network host sweep-worker-cuda --coordinator http://127.0.0.1:9 2>&1); then
    echo "the CUDA worker started without a GPU" >&2; exit 1
  fi
  grep -q "cuda:0" <<<"$out" || { echo "unexpected failure: $out" >&2; exit 1; }
  log "worker-cuda starts and refuses cuda:0 without a GPU: $(tail -n 1 <<<"$out")"
fi
if [[ ${SWEEP_DOCKER_REUSE:-0} != 1 ]] || ! image_exists local/postgres:15; then
  log "docker build: local/postgres:15 (a stand-in for postgres:15)"
  docker build --network host -f scripts/docker/postgres.Dockerfile --build-arg BASE=local/debian:bookworm \
    -t local/postgres:15 . >"$cache/build-postgres.log" 2>&1 || { tail -n 40 "$cache/build-postgres.log"; exit 1; }
fi
log "images built in $(($(date +%s) - started)) s"

# 4. Compose.
env_file=$(mktemp)
cat >"$env_file" <<ENV
POSTGRES_IMAGE=local/postgres:15
POSTGRES_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=55432
SWEEP_PORT=55051
SWEEP_COORDINATOR_HOST=127.0.0.1
SWEEP_WORKER_TOKEN=worker-$RANDOM$RANDOM
SWEEP_TOKEN=client-$RANDOM$RANDOM
SWEEP_DATA_DIR=$cache/data
ENV
mkdir -p "$cache/data"
# Host networking refuses published ports (and compose v1 cannot drop a
# list in an override), so the test runs a copy without the coordinator's
# `ports:`; everything else is deploy/compose.yaml as shipped.
sed '/^    ports:$/,+1d' deploy/compose.yaml >"$cache/compose.yaml"
compose=(docker-compose -p sweeptest --project-directory deploy -f "$cache/compose.yaml"
  -f scripts/docker/compose.host.yaml --env-file "$env_file")
cleanup() { "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; rm -f "$env_file"; }
trap cleanup EXIT
token=$(grep '^SWEEP_TOKEN=' "$env_file" | cut -d= -f2)
cli() { docker exec -i -e SWEEP_ENDPOINT=http://127.0.0.1:55051 -e SWEEP_TOKEN="$token" sweeptest_coordinator_1 sweep "$@"; }

log "compose up: postgres, coordinator, 1 worker"
"${compose[@]}" up -d --scale worker=1 postgres coordinator worker
for _ in $(seq 1 60); do cli status >/dev/null 2>&1 && break; sleep 1; done
cli submit /dev/stdin <<'SPEC'
name = "compose"
experiment = "classify"
dataset = "mnist-sample"
model = { kind = "mlp", hidden = [128] }
train = { lr = 1e-3, epochs = 60, batch_size = 64 }
classify = { train_subset = 2000, test_subset = 200 }

[grid]
seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
SPEC
sleep 5
log "scaling workers 1 -> 3 while the sweep runs"
"${compose[@]}" up -d --no-recreate --scale worker=3 worker
# `watch` exits non-zero unless every task succeeded.
cli watch compose || { "${compose[@]}" logs --tail 50; exit 1; }
cli workers
workers=$(cli workers --format csv 2>/dev/null | tail -n +2 | wc -l)
((workers >= 3)) || { echo "expected 3 workers, the coordinator lists $workers" >&2; exit 1; }
# Every worker took part: the scale-out happened while the sweep ran.
for n in 1 2 3; do
  done_here=$(docker logs "sweeptest_worker_$n" 2>&1 | grep -c 'task succeeded' || true)
  log "worker $n: $done_here tasks"
  ((done_here >= 1)) || { echo "worker $n ran no task: the scale-out came too late" >&2; exit 1; }
done
log "compose: the sweep succeeded on $workers workers; total $(($(date +%s) - started)) s"
