#!/usr/bin/env bash
# Publishes a small release (product "bench", 20 files of 64 KiB) into the store given as $1 with the real `orch`
# CLI and prints shell assignments describing an intact install of it, for check-in benchmarks:
#   CHECKIN_PRODUCT=bench CHECKIN_VERSION_ID=1 CHECKIN_DIGEST=<inventory digest>
set -euo pipefail
STORE=$1
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
dotnet build "$REPO/src/Cli" -c Release --nologo -v q >/dev/null
ORCH=(dotnet "$REPO/src/Cli/bin/Release/net10.0/orch.dll")
"${ORCH[@]}" keys init --dir "$WORK/keys" >/dev/null
mkdir -p "$WORK/tree/bin"
for i in $(seq 1 20); do head -c 65536 /dev/urandom > "$WORK/tree/bin/file$i.bin"; done
"${ORCH[@]}" release publish --store "$STORE" --keys "$WORK/keys" --product bench --version 1.0.0 --json "$WORK/tree" > "$WORK/publish.json"
python3 - "$WORK/publish.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"CHECKIN_PRODUCT={d['product']} CHECKIN_VERSION_ID={d['versionId']} CHECKIN_DIGEST={d['inventoryDigest']}")
PY
