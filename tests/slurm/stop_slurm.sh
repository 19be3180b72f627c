#!/usr/bin/env bash
# stop_slurm.sh STATE_DIR - stop the cluster start_slurm.sh started there, by its PID files.
#
# Cancels what is still queued (so no job step outlives the daemons), sends TERM to slurmd,
# slurmctld and munged (KILL after 10 s), KILLs any job process left behind (found by this
# cluster's SLURM_CONF in its environment), puts back any /etc/slurm file start_slurm.sh moved
# aside, and removes STATE_DIR. A munged that start_slurm.sh reused (no PID file) is left alone.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
D=$(realpath -m "$1")
[ -d "$D" ] || { echo "[stop_slurm] nothing to stop: $D does not exist"; exit 0; }
export SLURM_CONF=$D/slurm.conf

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if alive "$D/slurmctld.pid"; then
  ids=$(timeout -s KILL 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${ids// /}" ]; then
    echo "[stop_slurm] scancel $ids"
    # shellcheck disable=SC2086
    timeout -s KILL 10 scancel $ids
    for _ in $(seq 1 20); do
      [ -z "$(timeout -s KILL 5 squeue -h -t RUNNING,PENDING,COMPLETING -o %i 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
fi

stop() {  # stop NAME=PIDFILE... : TERM them all, wait up to 10 s, KILL what is left
  local item name pf pid pids=() names=()
  for item in "$@"; do
    name=${item%%=*} pf=${item#*=}
    [ -s "$pf" ] || continue
    pid=$(cat "$pf")
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; pids+=("$pid"); names+=("$name"); fi
    rm -f "$pf"
  done
  local i
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "[stop_slurm] ${names[$i]} (pid ${pids[$i]}) ignored TERM: KILL"
      kill -KILL "${pids[$i]}"
    fi
    echo "[stop_slurm] stopped ${names[$i]} (pid ${pids[$i]})"
  done
}
stop slurmd="$D/slurmd.pid" slurmctld="$D/slurmctld.pid"
stop munged="$D/munged.pid"

# A job process that outlived its job (seen once: a cancelled job's Snakemake, blocked after
# catching SIGTERM, re-parented to init) still carries this cluster's SLURM_CONF: end it.
for env in /proc/[0-9]*/environ; do
  pid=${env#/proc/}; pid=${pid%/environ}
  [ "$pid" = $$ ] || [ "$pid" = "$PPID" ] && continue
  if grep -qxzF "SLURM_CONF=$D/slurm.conf" "$env" 2>/dev/null; then
    echo "[stop_slurm] left-over job process $pid: KILL ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-80))"
    kill -KILL "$pid" 2>/dev/null
  fi
done

for f in slurm.conf gres.conf cgroup.conf; do
  t=/etc/slurm/$f
  if [ -L "$t" ] && [ "$(readlink "$t")" = "$D/$f" ]; then
    rm -f "$t"
    if [ -e "$t.cryo-test" ]; then mv "$t.cryo-test" "$t"; fi
  fi
done
rm -rf "$D"
echo "[stop_slurm] removed $D"
