#!/usr/bin/env bash
# Fleet load benchmark: bench/fleet/run.sh [devices...]   (default: 10000)
# Writes bench/results/fleet-<N>.{csv,txt} and bench/results/fleet-progress.svg (plain python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
results="$here/../results"
dotnet build -c Release "$here/FleetBench" -v q -nologo
for n in "${@:-10000}"; do
  dotnet "$here/FleetBench/bin/Release/net10.0/FleetBench.dll" "$n" "${TMPDIR:-/tmp}/orch-fleet-bench-$n" "$results/fleet-$n" "${CONCURRENCY:-64}"
  rm -rf "${TMPDIR:-/tmp}/orch-fleet-bench-$n"
done
python3 "$here/plot.py" "$results" "$results"/fleet-*.csv
