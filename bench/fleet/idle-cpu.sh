#!/usr/bin/env bash
# CPU of an idle node holding a fleet: bench/fleet/idle-cpu.sh WORKDIR [node arguments...]
# Starts this checkout's Release node on the data folder a `KEEP_WORK=1 STEADY_WORK=WORKDIR bench/fleet/steady.sh N` run
# left (its devices registered and checked in), with the node's defaults plus the given arguments (e.g.
# --Admission:BusyProbeCalmMilliseconds=0), waits for /health/ready and SETTLE_SECONDS (20) more, then reads the node's
# CPU time over SECONDS_IDLE (30) seconds with no device checking in: what the node spends on its own (timers, probes, journal polling).
# Env: ROUNDS (1) restarts, each printed; PERF=FILE also records `perf record -g` of the last 20 s (JIT symbols need
# DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 in the environment). Wrap in flock on shared machines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
work="${1:?usage: idle-cpu.sh WORKDIR [node arguments...]}"; shift
dotnet build -c Release "$root/src/Orchestrator" -v q -nologo > /dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hz=$(getconf CLK_TCK)
for round in $(seq 1 "${ROUNDS:-1}"); do
  dotnet "$root/src/Orchestrator/bin/Release/net10.0/orchestrator.dll" --Urls="http://127.0.0.1:$port" --Node:DataDirectory="$work/data" \
    --Node:StoreRoot="$work/store" --Node:Port=0 --Logging:LogLevel:Default=Warning "$@" > "$work/idle-node.log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/health/ready" > /dev/null; do
    sleep 0.5; kill -0 "$pid" 2> /dev/null || { echo "the node ended: $work/idle-node.log" >&2; exit 1; }
  done
  sleep "${SETTLE_SECONDS:-20}"
  seconds="${SECONDS_IDLE:-30}"
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat"); sleep "$seconds"; t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  echo "round $round: idle node CPU $(python3 -c "print(f'{($t1-$t0)/$hz/$seconds*100:.1f}')") % of a core over $seconds s (arguments: ${*:-none})"
  if [ -n "${PERF:-}" ]; then perf record -F 999 -g -p "$pid" -o "$PERF" -- sleep 20 > /dev/null 2>&1; fi
  kill "$pid"; wait "$pid" 2> /dev/null || true
done
