#!/usr/bin/env bash
# Fleet load benchmark: bench/fleet/run.sh [devices...]   (default: 10000)
# Per size: one node + N simulated devices in one process; devices provisioned and registered (tag "bench") through
# the admin API, then a phased rollout (1 %, 10 %, 100 %) created through POST /admin/v1/rollouts runs to Completed.
# Env: CONCURRENCY (sessions at once, default 64), INTERVAL (check-in seconds, default max(20, N/250)),
#      MAX_CONCURRENT (rollout maxConcurrent, default N/5). Device zones live under ${TMPDIR:-/tmp}: use a tmpfs
#      (TMPDIR=/dev/shm) for 100k devices, and FLEET_DATA_ROOT (a folder on disk) for the node's databases: the SQLite
#      WAL of a 100k run grows by gigabytes and must not live in RAM. Wrap in `flock /work/wt/bench.lock` on shared machines.
# Writes bench/results/fleet-<N>.{csv,txt} and bench/results/fleet-progress.svg (plain python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
results="$here/../results"
dotnet build -c Release "$here/FleetBench" -v q -nologo
for n in "${@:-10000}"; do
  echo "loadavg before $n: $(cat /proc/loadavg)"
  data=""; [ -n "${FLEET_DATA_ROOT:-}" ] && data="$FLEET_DATA_ROOT/orch-fleet-bench-$n-data"
  FLEET_DATA_DIR="$data" dotnet "$here/FleetBench/bin/Release/net10.0/FleetBench.dll" "$n" "${TMPDIR:-/tmp}/orch-fleet-bench-$n" "$results/fleet-$n" \
    "${CONCURRENCY:-64}" "${INTERVAL:-auto}" "${MAX_CONCURRENT:-auto}"
  rm -rf "${TMPDIR:-/tmp}/orch-fleet-bench-$n" ${data:+"$data"}
done
python3 "$here/plot.py" "$results" "$results"/fleet-*.csv
