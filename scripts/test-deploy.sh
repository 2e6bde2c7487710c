#!/usr/bin/env bash
# The deployment checks of the README's test command:
# - Kubernetes: every overlay of deploy/k8s renders with `kubectl kustomize`
#   and validates, strictly, against the Kubernetes API schemas
#   (PyPI kubernetes-validate, in a venv cached at ~/.cache/sweep).
# - Slurm: a real one-node cluster on this machine
#   (deploy/slurm/local-cluster.sh; installs Debian's slurm-wlm and munge
#   when missing, which needs root), then tests/tests/slurm.rs submits the
#   worker batch script against a coordinator and runs a sweep.
# Docker images and compose are checked on demand: scripts/test-docker.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '== %s\n' "$*"; }

# Kubernetes. kustomize inside kubectl >= 1.21 reads the `labels` and
# `patches` fields the overlays use.
if ! command -v kubectl >/dev/null; then
  log "installing kubectl (Debian's kubernetes-client)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null
fi
minor=$(kubectl version --client -o json 2>/dev/null | python3 -c 'import json, sys; print(int("".join(c for c in json.load(sys.stdin)["clientVersion"]["minor"] if c.isdigit())))')
((minor >= 21)) || { echo "kubectl 1.$minor is too old for the overlays' kustomize syntax: install kubectl >= 1.21" >&2; exit 1; }
venv=${SWEEP_VALIDATE_VENV:-$HOME/.cache/sweep/k8s-validate}
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  log "installing kubernetes-validate into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate
fi
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" >"$rendered/$name.yaml"
  # 1.30: the oldest Kubernetes release still maintained by the big clouds.
  "$venv/bin/kubernetes-validate" --strict --quiet -k 1.30.0 "$rendered/$name.yaml"
  log "k8s overlay $name: $(grep -c '^kind:' "$rendered/$name.yaml") resources render and validate"
done

# Slurm.
deploy/slurm/local-cluster.sh
cargo test -p sweep-tests --test slurm --locked -- --ignored
