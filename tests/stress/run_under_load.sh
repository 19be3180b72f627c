#!/usr/bin/env bash
# run_under_load.sh - run a command (default: `make test`) with N busy-loop processes alongside,
# to prove the suite holds on a loaded machine (a shared CI runner, a cluster login node).
#
#   tests/stress/run_under_load.sh                    # N = 2 x cores busy loops, then `make test`
#   LOAD_PROCS=4 tests/stress/run_under_load.sh make test-fast
#   tests/stress/run_under_load.sh .venv/bin/python -m pytest tests/reliability/test_crash_safety.py
#
# The busy loops run for exactly as long as the command and are always stopped (trap), each by
# its own PID. At the end it prints the command's wall time, its exit status and the load
# averages (before, during = sampled every 10 s, at the end) and exits with the command's status.
set -uo pipefail
cd "$(dirname "$0")/../.."

CORES=$(nproc)
N=${LOAD_PROCS:-$((2 * CORES))}
[ $# -gt 0 ] || set -- make test

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
busy=()
stop_busy() {
  for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${busy[@]}"; do wait "$pid" 2>/dev/null; done
  busy=()
}
trap stop_busy EXIT
trap 'exit 130' INT TERM

echo "[run_under_load] $(date -Is) cores=$CORES busy_loops=$N load_before=$(loadavg) command: $*"
for _ in $(seq 1 "$N"); do
  bash -c 'while :; do :; done' &
  busy+=($!)
done

samples=$(mktemp "${TMPDIR:-/tmp}/run_under_load.XXXXXX")
( while :; do loadavg | cut -d' ' -f1 >>"$samples"; sleep 10; done ) &
busy+=($!)  # the load sampler, stopped with the busy loops

start=$(date +%s)
"$@"
status=$?
seconds=$(( $(date +%s) - start ))

stop_busy
mean=$(awk '{s+=$1; n++} END {if (n) printf "%.1f", s/n; else print "n/a"}' "$samples")
peak=$(sort -g "$samples" | tail -n 1)
rm -f "$samples"
trap - EXIT
printf '[run_under_load] %s exit=%d wall=%dm%02ds (%d s) busy_loops=%d cores=%d load_1min: mean=%s peak=%s end=%s\n' \
  "$(date -Is)" "$status" $((seconds / 60)) $((seconds % 60)) "$seconds" "$N" "$CORES" "$mean" "${peak:-n/a}" \
  "$(loadavg)"
exit "$status"
