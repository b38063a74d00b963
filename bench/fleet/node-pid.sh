# Sourced by the scripts that watch steady.sh's node (gc-steady.sh, perf-steady.sh).
# steady_node_pid: the PID of the node process SteadyBench started, or nothing. SteadyBench names the node's dll among
# its own arguments, so the process whose command line also names SteadyBench is left out.
steady_node_pid() {
  pgrep -f "orchestrator.dll" | while read -r p; do grep -q SteadyBench "/proc/$p/cmdline" 2>/dev/null || echo "$p"; done | head -1
}
