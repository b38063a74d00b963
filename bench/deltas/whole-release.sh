#!/usr/bin/env bash
# Whole-release delta benchmark (bench/results/deltas.md): orch's delta path (everything the agent fetches, from
# `orch release plan`) side by side with `ostree static-delta generate`, zstd --patch-from whole-tree and per file,
# xdelta3 and casync, on successive releases of a NuGet package. Needs ostree, zstd, xdelta3, casync (apt-get install)
# and the .NET SDK (bsdiff too: apt-get install bsdiff). Usage: bench/deltas/whole-release.sh WORK LEVEL PACKAGE VERSION...
#   (LEVEL "default" leaves the level to the memory budget, as a node does)
#   e.g. whole-release.sh /tmp/grpc 19 Grpc.Tools 2.67.0 2.70.0 2.71.0 2.72.0
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$1; level=$2; package=$3; shift 3
for tool in ostree xdelta3 zstd casync bsdiff; do command -v $tool >/dev/null || { echo "$tool missing: apt-get install $tool" >&2; exit 1; }; done
mkdir -p "$work"
for v in "$@"; do [ -d "$work/trees/$v" ] || { "$repo/bench/content/fetch-nuget.sh" "$package" "$work" "$@"; break; }; done
[ -x "$work/orch/orch" ] || dotnet publish "$repo/src/Cli" -c Release -r linux-x64 -o "$work/orch" >/dev/null   # Native AOT
python3 "$repo/bench/deltas/whole_release.py" "$work" "$work/orch/orch" "$level" "$(echo "$package" | tr '[:upper:]' '[:lower:]' | tr . -)" "$@"
