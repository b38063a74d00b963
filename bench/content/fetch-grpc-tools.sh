#!/usr/bin/env bash
# Fetches several Grpc.Tools versions into $WORK/trees/<version> (bench/content/fetch-nuget.sh).
# Usage: fetch-grpc-tools.sh WORK VERSION...
set -euo pipefail
exec "$(dirname "$0")/fetch-nuget.sh" Grpc.Tools "$@"
