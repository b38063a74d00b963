#!/usr/bin/env bash
# CPU per idle check-in by where it is spent, node against the bare endpoint: bench/fleet/perf-steady.sh [N]  (default 100000)
# Runs steady.sh N (MAX_SECONDS=30, FIXED_SECONDS=20) and records `perf record -F 999 -g` of the node's process for 15 s
# of its idle closed-loop maximum and of the baseline's for 12 s of its own, with JIT symbols (DOTNET_PerfMapEnabled=1;
# DOTNET_EnableWriteXorExecute=0 so that perf can read them). perf's own overhead lowers both rates: the run's ratio is
# void; the per-check-in split (perf_leaf.py) is the result. Needs perf (apt-get install linux-perf) and a quiet machine.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/node-pid.sh"
n="${1:-100000}"
tag="${STEADY_TAG:-perf}"
out="$here/../results/fleet-steady-$n-$tag.txt"
work="${PERF_WORK:-${TMPDIR:-/tmp}/orch-perf-$$}"
mkdir -p "$work"
rm -f "$out"
export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
( STEADY_TAG="$tag" MAX_SECONDS=30 FIXED_SECONDS=20 bash "$here/steady.sh" "$n" > "$work/steady.log" 2>&1 ) &
main=$!
until grep -q "^passivation wave:" "$out" 2>/dev/null; do sleep 0.5; kill -0 $main 2>/dev/null || { echo "steady.sh ended early: $work/steady.log" >&2; exit 1; }; done
sleep 4
node=$(steady_node_pid)
perf record -F 999 -g -p "$node" -o "$work/node.data" -- sleep 15 > /dev/null 2>&1
# The baseline's own maximum runs in a baseline process started after the interleaved windows (whose baseline is idle
# half of the time): the newest baseline process once those windows have ended.
until grep -q "^interleaved (" "$out" 2>/dev/null; do sleep 0.5; kill -0 $main 2>/dev/null || exit 1; done
sleep 3
until base=$(pgrep -n -f "SteadyBench.dll baseline"); do sleep 0.2; kill -0 $main 2>/dev/null || exit 1; done
sleep 6
perf record -F 999 -g -p "$base" -o "$work/base.data" -- sleep 12 > /dev/null 2>&1
wait $main
rate() { grep "^$1" "$out" | sed -E 's/.* = ([0-9]+) \/s.*/\1/' | head -1; }
perf script -i "$work/node.data" 2> /dev/null | python3 "$here/perf_leaf.py" "$(rate 'max (closed loop, 64 clients, idle fleet')" 15 "node"
perf script -i "$work/base.data" 2> /dev/null | python3 "$here/perf_leaf.py" "$(rate 'baseline max')" 12 "baseline"
echo "perf data: $work"
