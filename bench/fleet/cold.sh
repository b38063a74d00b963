#!/usr/bin/env bash
# Cold-start benchmark (issue #22): bench/fleet/cold.sh WORKDIR
# Restarts a node on the data folder a `KEEP_WORK=1 STEADY_WORK=WORKDIR bench/fleet/steady.sh N` run left behind and,
# after each /health/ready, lets every device check in once (pass 1: steady.sh's cold phase) and once more (pass 2: the
# same check-ins in the same process, now warm), so the two passes differ only by what the process does the first time.
# Env: ROUNDS (2), PASSES (2), CONCURRENCY (64), NODE_ENV ("A=1 B=2": environment of the node only, e.g. runtime knobs, over the shipped DOTNET_GCgen0size=0x4000000),
# NODE_DLL (default: this checkout's Release build), TRACE=FILE.nettrace (dotnet-trace with managed frames of round 1, pass TRACE_PASS (1); TRACE_PASS=2 PASSES=4 is the warm fast path),
# COUNTERS=PREFIX (System.Runtime counters each second, PREFIX-roundN.csv), COLD_BATCH=0 (check-ins ask for one directive
# signature each, as an agent without a root document; default: batch-signed, as steady.sh's client and a provisioned agent).
# The folder must be younger than Gateway:IdleLastSeenPersistInterval (1 h) since its warm phase: later, a device's
# first check-in goes to its actor to journal its last-seen, and the passes measure actor recoveries instead.
# Wrap in flock on shared machines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
work="${1:?usage: cold.sh WORKDIR (kept by KEEP_WORK=1 steady.sh)}"
dotnet build -c Release "$root/src/Orchestrator" -v q -nologo >/dev/null
dotnet build -c Release "$here/ColdBench" -v q -nologo >/dev/null
tools="$here/SteadyBench/bin/tools"
if [ -n "${TRACE:-}" ] && [ ! -x "$tools/dotnet-trace" ]; then dotnet tool install dotnet-trace --version 10.0.750501 --tool-path "$tools" >/dev/null; fi
if [ -n "${COUNTERS:-}" ] && [ ! -x "$tools/dotnet-counters" ]; then dotnet tool install dotnet-counters --version 10.0.750501 --tool-path "$tools" >/dev/null; fi
DOTNET_COUNTERS="$tools/dotnet-counters" DOTNET_TRACE="$tools/dotnet-trace" dotnet "$here/ColdBench/bin/Release/net10.0/ColdBench.dll" "$work" \
  "${NODE_DLL:-$root/src/Orchestrator/bin/Release/net10.0/orchestrator.dll}"
