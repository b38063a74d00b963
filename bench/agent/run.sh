#!/usr/bin/env bash
# orch-agent side by side with casync and ostree (issue 23, "Targets"): the .NET shared runtime as release 1, a
# rebuild of 39 of its files as release 2, a repair of 5 files; idle start, first install, upgrade and repair, each
# under /usr/bin/time -v with write_bytes and every byte fetched counted in one nginx log. Details: bench.py.
# Needs: casync ostree nginx time (Debian), clang lld zlib1g-dev (the AOT agent). Results: bench/results/agent-vs-casync-ostree.md
# Usage: bench/agent/run.sh [WORKDIR] [OUT.json]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/orch-agent-bench}
out=${2:-$work.json}
for tool in casync ostree nginx /usr/bin/time; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null \
    || { echo "bench/agent: $tool is missing (apt-get install casync ostree nginx time)" >&2; exit 2; }
done
export PATH=$PATH:/usr/sbin
runtime=$(dotnet --list-runtimes | awk '$1 == "Microsoft.NETCore.App" { v = $2; p = $3 } END { gsub(/[\[\]]/, "", p); print p "/" v }')
[ -f "$runtime/System.Private.CoreLib.dll" ] || { echo "bench/agent: no Microsoft.NETCore.App runtime folder at $runtime" >&2; exit 2; }

bin=$(mktemp -d /tmp/orch-agent-bench-bin.XXXXXX)
# The device binary as a device maker builds it; the node and orch as Release builds.
dotnet publish "$repo/src/DeviceAgent" -c Release -r linux-x64 -o "$bin/agent" --nologo -v q >/dev/null
dotnet build "$repo/src/Orchestrator" -c Release --nologo -v q >/dev/null
dotnet build "$repo/src/Cli" -c Release --nologo -v q >/dev/null
label=$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- src || echo "+local changes")

python3 "$repo/bench/agent/bench.py" --work "$work" --agent-dir "$bin/agent" \
  --node-dll "$repo/src/Orchestrator/bin/Release/net10.0/orchestrator.dll" \
  --orch-dll "$repo/src/Cli/bin/Release/net10.0/orch.dll" \
  --runtime "$runtime" --label "$label" --json "$out"
python3 "$repo/bench/agent/report.py" "$out"
