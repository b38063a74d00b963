#!/usr/bin/env bash
# Bounded memory of the agent's chunk path (issue 23, "Bounded memory"): peak RSS of one orch-agent install of a one-file
# release of MiB mebibytes (default 1024) against one of 4 MiB, each by a fresh device through a real node. It runs the
# real-process test tests/EndToEnd.Tests/Agent/AgentMemoryTests with its large file raised to that size (the test's
# assertions hold: a native agent's large install peaks within 20 MiB of the small one (the dll within 24) and at most 40 MB). Results: bench/results/agent.md.
# Needs /usr/bin/time (apt-get install time), the .NET SDK, and about 3x the file size free on disk.
# Usage: bench/agent-memory/run.sh [MiB]
#   ORCH_AGENT_BINARY=/path/to/orch-agent bench/agent-memory/run.sh   measures a Native AOT agent
#   (dotnet publish src/DeviceAgent -c Release -r linux-x64 -o DIR), otherwise the framework-dependent dll.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
mib=${1:-1024}
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 1; }
echo "agent: ${ORCH_AGENT_BINARY:-framework-dependent dll}; large file: $mib MiB"
ORCH_AGENT_MEMORY_LARGE_MIB=$mib dotnet test "$repo/tests/EndToEnd.Tests" \
  --filter "FullyQualifiedName~AgentMemoryTests" --logger "console;verbosity=detailed" \
  | grep -E "byte file: peak RSS|^\s+(Passed|Failed) |Error Message|peak RSS .* KiB for"
