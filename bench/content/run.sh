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
# orch is published Native AOT (src/Cli/Orchestrator.Cli.csproj): no runtime start-up or JIT in the timings.
# The native link needs clang and zlib (apt-get install clang lld zlib1g-dev).
command -v clang >/dev/null && [ -e /usr/include/zlib.h ] || { echo "Native AOT needs clang and zlib: apt-get install clang lld zlib1g-dev" >&2; exit 1; }
rm -rf "$work/orch"
dotnet publish "$repo/src/Cli" -c Release -r linux-x64 -o "$work/orch" >/dev/null
python3 "$repo/bench/content/bench.py" "$work" "$work/orch/orch" "${versions[@]}" --reps "$reps"
# The same with --packs: each new chunk stored once, inside pack objects (store bytes = chunks/ + packs/).
python3 "$repo/bench/content/bench.py" "$work" "$work/orch/orch" "${versions[@]}" --reps "$reps" --packs
# Chunk path (packs + coalesced Range vs chunk objects vs casync, 64K and 16K): bench/content/chunk_path.py.
python3 "$repo/bench/content/chunk_path.py" "$work" "$work/orch/orch" "${versions[@]}"
