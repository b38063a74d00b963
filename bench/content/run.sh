#!/usr/bin/env bash
# Content benchmark: orch publish vs casync make over successive Grpc.Tools releases (bench/results/content.md).
# Needs casync (apt-get install casync) and the .NET SDK. Usage: bench/content/run.sh [WORK] [REPS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/orch-content-bench}
reps=${2:-3}
versions=(2.67.0 2.70.0 2.71.0 2.72.0)
command -v casync >/dev/null || { echo "casync missing: apt-get install casync" >&2; exit 1; }
mkdir -p "$work"
[ -d "$work/trees/${versions[-1]}" ] || "$repo/bench/content/fetch-grpc-tools.sh" "$work" "${versions[@]}"
# ReadyToRun (precompiled) cuts orch's JIT start-up; it needs the crossgen2 package, which the mirror has.
dotnet publish "$repo/src/Cli" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -o "$work/orch" >/dev/null
python3 "$repo/bench/content/bench.py" "$work" "$work/orch/orch" "${versions[@]}" --reps "$reps"
