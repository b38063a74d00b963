# Sourced by the scripts that watch a benchmark's node (gc-steady.sh, perf-steady.sh, alloc-cold.sh).
# steady_node_pid: the PID of the node process SteadyBench or ColdBench started, or nothing. Both name the node's dll
# among their own arguments, so a process whose command line also names one of them is left out.
steady_node_pid() {
  pgrep -f "orchestrator.dll" | while read -r p; do grep -qE "SteadyBench|ColdBench" "/proc/$p/cmdline" 2>/dev/null || echo "$p"; done | head -1
}
