#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, to try the batch scripts or
# to test them (scripts/test-deploy.sh). Installs Debian's slurm-wlm and munge
# when missing (needs root), writes a one-node slurm.conf with the machine's
# own CPU count, starts munged, slurmctld and slurmd, and waits until the node
# is idle. Does nothing when `sinfo` already answers.
#
#   deploy/slurm/local-cluster.sh          start (or check) the cluster
#   deploy/slurm/local-cluster.sh stop     stop what it started
set -euo pipefail

log() { printf '== slurm: %s\n' "$*"; }
node_idle() { sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^idle|^mixed|^allocated'; }

if [[ ${1:-} == stop ]]; then
  scontrol shutdown >/dev/null 2>&1 || true
  exit 0
fi

if node_idle; then
  log "a cluster is up: $(sinfo -h -o '%P %D %T' | head -n 1)"
  exit 0
fi
[[ $(id -u) == 0 ]] || { echo "local-cluster.sh: run as root (it installs and configures Slurm)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munged refuses to start unless its directories belong to the munge user.
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
[[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge: /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 700 /etc/munge /var/log/munge && chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged

host=$(hostname)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
# linuxproc tracks a job's processes by parentage (no cgroups needed), which
# is what lets scancel and the time limit signal every worker of a job.
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=30
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$(nproc) RealMemory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 )) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 60); do node_idle && break; sleep 1; done
node_idle || { echo "local-cluster.sh: the node did not come up; see /var/log/slurm/" >&2; exit 1; }
log "up: $(sinfo -h -o '%P %D %T' | head -n 1)"
