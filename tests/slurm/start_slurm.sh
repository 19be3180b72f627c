#!/usr/bin/env bash
# start_slurm.sh STATE_DIR - a real single-node SLURM cluster on 127.0.0.1 for the tests.
#
# munged -> slurmctld -> slurmd, all state, logs and PID files under STATE_DIR, then a smoke
# job (sbatch + nested srun + a GPU request). Stop it with stop_slurm.sh STATE_DIR, which
# ends the daemons by their PID files. Used by tests/slurm/cluster.py; runnable by hand:
#
#   bash tests/slurm/start_slurm.sh /tmp/cryo-slurm
#   snakemake --profile profiles/slurm ...
#   bash tests/slurm/stop_slurm.sh /tmp/cryo-slurm
#
# Exit status: 0 ready; 3 cannot run on this machine (not root, no apt-get, ports taken);
# 1 a step failed. The last line on stderr starting "ERROR:" is the reason.
#
# Knobs (environment, all optional):
#   CRYO_SLURM_CPUS       CPUs the node advertises          (default 64)
#   CRYO_SLURM_MEM_MB     RealMemory the node advertises    (default 512000)
#   CRYO_SLURM_GPUS       fake gres/gpu devices             (default 8)
#   CRYO_SLURM_PARTITION  the one (default) partition       (default debug)
#   CRYO_SLURM_INSTALL    1 = apt-get install what is missing (default 1)
#   CRYO_SLURM_OWNER_PID  the process the cluster belongs to (default: the caller); while it
#                         runs, a second start_slurm.sh refuses instead of stopping this one
#
# The node advertises more CPUs, memory and GPUs than the machine has
# (SlurmdParameters=config_overrides), so profiles/slurm's real requests (8 CPUs, 32 GB, a
# GPU) schedule unchanged on a 2-core CI runner. Nothing is enforced: no cgroups
# (proctrack/linuxproc, task/none), and a fake GPU is a character device aliasing /dev/null,
# so jobs see CUDA_VISIBLE_DEVICES but torch stays on the CPU.
#
# System paths touched: /etc/slurm/{slurm,gres,cgroup}.conf become symlinks into STATE_DIR
# (a real file there is moved aside to *.cryo-test and put back by stop_slurm.sh): the
# snakemake slurm-jobstep plugin drops every SLURM_* variable, SLURM_CONF included, before
# its nested srun, so srun must find the configuration at the default path. munged uses
# its default socket /run/munge/munge.socket.2 (an already running munged is reused).
set -uo pipefail

MARKER="# cryo_pipeline test cluster (tests/slurm/start_slurm.sh)"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T0=${EPOCHREALTIME/[.,]/}

log() { local ds=$(((${EPOCHREALTIME/[.,]/} - T0) / 100000)); printf '[start_slurm %3d.%ds] %s\n' $((ds / 10)) $((ds % 10)) "$*"; }
cannot() { echo "ERROR: $*" >&2; exit 3; }
die() {
  echo "--- daemon logs (tails) ---" >&2
  for f in "$D"/log/*.log; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  echo "ERROR: $*" >&2
  exit 1
}

[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || cannot "a test SLURM cluster needs root (slurmd starts jobs as their user); running as uid $(id -u)"

D=$(realpath -m "$1")
CPUS=${CRYO_SLURM_CPUS:-64}
MEM=${CRYO_SLURM_MEM_MB:-512000}
GPUS=${CRYO_SLURM_GPUS:-8}
PARTITION=${CRYO_SLURM_PARTITION:-debug}

# ------------------------------------------------------------------ packages
missing=()
for p in slurmctld slurmd slurm-client munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "${CRYO_SLURM_INSTALL:-1}" = 1 ] || cannot "packages missing: ${missing[*]} (CRYO_SLURM_INSTALL=0)"
  command -v apt-get >/dev/null || cannot "packages missing: ${missing[*]}, and no apt-get to install them"
  log "apt-get install ${missing[*]}"
  apt-get update -qq >"${TMPDIR:-/tmp}/cryo-slurm-apt.log" 2>&1 \
    || cannot "apt-get update failed: $(tail -n 2 "${TMPDIR:-/tmp}/cryo-slurm-apt.log" | tr '\n' ' ')"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >>"${TMPDIR:-/tmp}/cryo-slurm-apt.log" 2>&1 \
    || cannot "apt-get install ${missing[*]} failed: $(tail -n 2 "${TMPDIR:-/tmp}/cryo-slurm-apt.log" | tr '\n' ' ')"
  log "installed"
fi

# ------------------------------------------------------------------ a cluster left behind
# A killed test session leaves its daemons running; /etc/slurm/slurm.conf then still points
# into its state dir, whose PID files say what to stop. A cluster whose owner (the process
# that started it, e.g. another pytest session) still runs is left alone.
if [ -L /etc/slurm/slurm.conf ]; then
  old=$(dirname "$(readlink /etc/slurm/slurm.conf)")
  if [ -f "$old/slurm.conf" ] && head -n 1 "$old/slurm.conf" | grep -qF "$MARKER"; then
    owner=$(cat "$old/owner.pid" 2>/dev/null)
    if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && [ -s "$old/slurmctld.pid" ]; then
      cannot "another test SLURM cluster ($old) is in use by process $owner"
    fi
    log "stopping the test cluster left in $old"
    bash "$HERE/stop_slurm.sh" "$old" >/dev/null 2>&1 || true
  fi
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 6817 6818; do
  port_open "$port" && cannot "port $port on 127.0.0.1 is in use (a SLURM daemon that is not this test's?)"
done

# ------------------------------------------------------------------ configuration
rm -rf "$D"
mkdir -p "$D"/{log,ctld,spool,munge}
chmod 755 "$D"
echo "${CRYO_SLURM_OWNER_PID:-$PPID}" >"$D/owner.pid"
GRES_TYPES="" NODE_GRES=""
if [ "$GPUS" -gt 0 ]; then GRES_TYPES="GresTypes=gpu"; NODE_GRES="Gres=gpu:$GPUS"; fi
cat >"$D/slurm.conf" <<EOF
$MARKER
ClusterName=cryotest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$D/ctld
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: runs in containers without a delegated cgroup tree
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no slurmdbd: sacct does not work; Snakemake's profile uses slurm-status-command: squeue
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
# finished jobs stay visible (squeue --states=all, scontrol show job) for 30 min: the
# Snakemake slurm plugin only trusts squeue for status when MinJobAge >= 3 x its first-check
# delay, and the tests read each job's rule, state and GPU request from there
MinJobAge=1800
# a job without --mem gets 500 MB per CPU, not the whole (advertised) node
DefMemPerCPU=500
KillWait=2
InactiveLimit=0
# trust CPUs/RealMemory/Gres below, larger than the machine's (never DRAIN the node)
SlurmdParameters=config_overrides
$GRES_TYPES
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM $NODE_GRES State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
if [ "$GPUS" -gt 0 ]; then
  mkdir -p "$D/fakegpu"
  for i in $(seq 0 $((GPUS - 1))); do
    mknod "$D/fakegpu/gpu$i" c 1 3 2>/dev/null || touch "$D/fakegpu/gpu$i"
  done
  echo "NodeName=localhost Name=gpu File=$D/fakegpu/gpu[0-$((GPUS - 1))]" >"$D/gres.conf"
fi
version=$(slurmd -V 2>/dev/null | awk '{print $2}')
case "$version" in  # Slurm >= 23.02 may insist on cgroups unless told not to
  2[3-9].*|[3-9]?.*) echo "CgroupPlugin=disabled" >"$D/cgroup.conf" ;;
esac

mkdir -p /etc/slurm
for f in slurm.conf gres.conf cgroup.conf; do
  t=/etc/slurm/$f
  if [ -e "$t" ] && [ ! -L "$t" ]; then mv "$t" "$t.cryo-test"; fi
  if [ -e "$D/$f" ]; then ln -sfn "$D/$f" "$t"; elif [ -L "$t" ]; then rm -f "$t"; fi
done
export SLURM_CONF=$D/slurm.conf
log "configured $D (slurm $version, CPUs=$CPUS, RealMemory=$MEM, gpu=$GPUS, partition $PARTITION)"

# ------------------------------------------------------------------ munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running: reused"
else
  key=/etc/munge/munge.key
  [ -s "$key" ] || key=$D/munge/generated.key
  [ -s "$key" ] || dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
  install -m 600 "$key" "$D/munge/munge.key"
  mkdir -p /run/munge
  munged --key-file="$D/munge/munge.key" --pid-file="$D/munged.pid" --log-file="$D/log/munged.log" \
         --seed-file="$D/munge/munged.seed" || die "munged did not start"
  munge -n | unmunge >/dev/null || die "munge credential round trip failed"
  log "munged up (pid $(cat "$D/munged.pid"))"
fi

# ------------------------------------------------------------------ slurmctld + slurmd
slurmctld || die "slurmctld did not start"
slurmd -N localhost || die "slurmd did not start"
# wait for the events (node idle, smoke job ended) as long as the daemons live: a loaded machine takes
# longer; the caller's hard timeout (tests/slurm/cluster.py) ends a hang
daemons_alive() {  # false once slurmctld or slurmd has exited (a PID file not written yet counts as alive)
  local f
  for f in "$D/slurmctld.pid" "$D/slurmd.pid"; do
    [ -s "$f" ] || continue
    kill -0 "$(cat "$f")" 2>/dev/null || return 1
  done
}
state=""
while daemons_alive; do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null)
  [ "$state" = idle ] && break
  sleep 0.25
done
[ "$state" = idle ] || die "node localhost is '${state:-unknown}', not idle, and a daemon has exited"
log "slurmctld (pid $(cat "$D/slurmctld.pid")) and slurmd (pid $(cat "$D/slurmd.pid")) up, node idle"

# ------------------------------------------------------------------ smoke job
gpu_flag=""
[ "$GPUS" -gt 0 ] && gpu_flag="--gpus=1"
job=$(cd "$D" && sbatch --parsable -J smoke -t 1 --mem 10 $gpu_flag -o "$D/log/smoke-%j.out" \
        --wrap 'srun -n1 true && echo "ok $SLURM_JOB_ID gpu=${CUDA_VISIBLE_DEVICES:-none}"') \
  || die "sbatch of the smoke job failed"
st=""
while daemons_alive; do
  st=$(squeue -h -j "$job" --states=all -o %T 2>/dev/null)
  case "$st" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL) break ;; esac
  sleep 0.1
done
[ "$st" = COMPLETED ] || die "smoke job $job ended as '${st:-unknown}': $(cat "$D/log/smoke-$job.out" 2>/dev/null)"
grep -q "^ok $job" "$D/log/smoke-$job.out" || die "smoke job $job wrote: $(cat "$D/log/smoke-$job.out")"
log "smoke job $job COMPLETED ($(cut -d' ' -f3 "$D/log/smoke-$job.out"))"
log "READY: SLURM_CONF=$D/slurm.conf; stop with: bash $HERE/stop_slurm.sh $D"
