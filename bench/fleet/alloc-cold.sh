#!/usr/bin/env bash
# Where an idle check-in's allocations come from: bench/fleet/alloc-cold.sh WORKDIR [OUT]
# Runs cold.sh (ROUNDS=1, PASSES=6) on a folder `KEEP_WORK=1 STEADY_WORK=WORKDIR steady.sh N` left behind and attaches
# AllocWatch (bench/fleet/AllocWatch) to the node for 6 s from the start of pass 3 (the warm fast path). Prints cold.sh's
# passes (each with the node's allocated bytes per check-in, from its own counter) and AllocWatch's tables; the trace
# stays in OUT (default /tmp/orch-alloc-$$). NODE_DLL as cold.sh. Wrap in flock on shared machines.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/node-pid.sh"
root="$here/../.."
work="${1:?usage: alloc-cold.sh WORKDIR (kept by KEEP_WORK=1 steady.sh) [OUT]}"
out="${2:-${TMPDIR:-/tmp}/orch-alloc-$$}"
mkdir -p "$out"
dll="${NODE_DLL:-$(cd "$root" && pwd)/src/Orchestrator/bin/Release/net10.0/orchestrator.dll}"
dotnet build -c Release "$here/AllocWatch" -o "$out/allocwatch" > "$out/allocwatch-build.log" 2>&1 || { echo "AllocWatch did not build: $out/allocwatch-build.log" >&2; exit 1; }
( NODE_DLL="$dll" ROUNDS=1 PASSES=6 bash "$here/cold.sh" "$work" > "$out/cold.log" 2>&1 ) &
main=$!
until grep -q "pass 2:" "$out/cold.log" 2>/dev/null; do sleep 0.2; kill -0 $main 2>/dev/null || { echo "cold.sh ended early: $out/cold.log" >&2; exit 1; }; done
node=$(steady_node_pid)
dotnet "$out/allocwatch/AllocWatch.dll" "$node" 6 "$out/node.nettrace" > "$out/alloc.txt" 2>&1
wait $main
grep "pass" "$out/cold.log"
cat "$out/alloc.txt"
echo "trace: $out/node.nettrace"
