#!/usr/bin/env bash
# steady.sh with the node's garbage collections beside it: bench/fleet/gc-steady.sh N   (env as steady.sh)
# Runs steady.sh N and attaches GcWatch (bench/fleet/GcWatch) to every node process it starts (the restart for the cold
# phase is a new process); writes steady.sh's output with a wall-clock time on each line and one GC log per node process
# to GC_OUT (default /tmp/orch-gc-<tag>), so a stall in the benchmark's output is found in the GC log by its time.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/node-pid.sh"
n="${1:-10000}"
tag="${STEADY_TAG:-gc}"
out="${GC_OUT:-${TMPDIR:-/tmp}/orch-gc-$tag}"
mkdir -p "$out"
dotnet build -c Release "$here/GcWatch" -o "$out/gcwatch" > "$out/gcwatch-build.log" 2>&1 || { echo "GcWatch did not build: $out/gcwatch-build.log" >&2; exit 1; }
( STEADY_TAG="$tag" bash "$here/steady.sh" "$n" 2>&1 | while IFS= read -r l; do echo "$(date +%T.%3N) $l"; done > "$out/steady.log" ) &
main=$!
last=""
while kill -0 $main 2>/dev/null; do
  node=$(steady_node_pid)
  if [ -n "$node" ] && [ "$node" != "$last" ]; then
    sleep 1
    dotnet "$out/gcwatch/GcWatch.dll" "$node" > "$out/gc-$node.log" 2>&1 &
    last=$node
  fi
  sleep 1
done
echo "steady.sh output: $out/steady.log; GC logs: $out/gc-*.log"
