#!/usr/bin/env bash
# Delta benchmark: bytes a device downloads per upgrade step of successive Grpc.Tools releases, with orch's delta
# path side by side with xdelta3 -9, zstd --patch-from -19 and casync in the same run (bench/results/deltas.md).
# Needs xdelta3, zstd, casync (apt-get install xdelta3 zstd casync) and the .NET SDK.
# Usage: bench/deltas/run.sh [WORK] [LEVEL]   (wrap in: flock /work/wt/bench.lock bench/deltas/run.sh)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/orch-delta-bench}
level=${2:-19}
versions=(2.67.0 2.70.0 2.71.0 2.72.0)
for tool in xdelta3 zstd casync; do command -v $tool >/dev/null || { echo "$tool missing: apt-get install $tool" >&2; exit 1; }; done
mkdir -p "$work"
[ -d "$work/trees/${versions[-1]}" ] || "$repo/bench/content/fetch-grpc-tools.sh" "$work" "${versions[@]}"
dotnet publish "$repo/src/Cli" -c Release -r linux-x64 -o "$work/orch" >/dev/null   # Native AOT (PublishAot), as bench/content
python3 "$repo/bench/deltas/bench.py" "$work" "$work/orch/orch" "$level" "${versions[@]}"
