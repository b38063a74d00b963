#!/usr/bin/env bash
# Fleet provisioning benchmark (issue #22): bench/fleet/provision.sh N   (default 1000000)
# What an operator runs to bring a fleet in, through the real CLI against a real node (Release build, all roles, SQLite,
# fresh data folder): `orch device provision --count N --prefix P --out FILE` (credentials, one streamed request), then
# `orch device register-batch IDS --product acme` (product and tags, 10 000 devices per request). Each step is timed on
# its own; the node's RSS is read after each. The last line is one JSON object.
# Env: PROVISION_WORK (work folder, default under /tmp), PORT (18555). Wrap in flock on shared machines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
n="${1:-1000000}"
port="${PORT:-18555}"
dotnet build -c Release "$root/src/Orchestrator" -v q -nologo >/dev/null
dotnet build -c Release "$root/src/Cli" -v q -nologo >/dev/null
orch="$root/src/Cli/bin/Release/net10.0/orch"
work="${PROVISION_WORK:-${TMPDIR:-/tmp}/orch-provision-$n-$$}"
rm -rf "$work"; mkdir -p "$work"
token="provision-bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sha="$(printf %s "$token" | sha256sum | cut -d' ' -f1)"
dotnet "$root/src/Orchestrator/bin/Release/net10.0/orchestrator.dll" --Urls="http://127.0.0.1:$port" \
  --Node:DataDirectory="$work/data" --Node:StoreRoot="$work/store" --Node:Port=0 \
  --Admin:Tokens:0:Name=bench --Admin:Tokens:0:Sha256="$sha" --Admin:Tokens:0:Scopes:0=read --Admin:Tokens:0:Scopes:1=operate \
  --Logging:LogLevel:Default=Warning >"$work/node.log" 2>&1 &
node=$!
trap 'kill $node 2>/dev/null || true; wait $node 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.5; done
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$node/status"; }
export ORCH_SERVER="http://127.0.0.1:$port" ORCH_TOKEN="$token"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
rss_empty=$(rss)
t0=$(date +%s.%N)
"$orch" device provision --count "$n" --prefix dev- --out "$work/credentials.csv"
t1=$(date +%s.%N)
rss_provisioned=$(rss)
tail -n +2 "$work/credentials.csv" | cut -d, -f1 >"$work/ids.txt"
provisioned=$(wc -l <"$work/ids.txt")
t2=$(date +%s.%N)
"$orch" device register-batch "$work/ids.txt" --product acme --tags bench
t3=$(date +%s.%N)
rss_registered=$(rss)
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$n" "$provisioned" "$t0" "$t1" "$t2" "$t3" "$rss_empty" "$rss_provisioned" "$rss_registered" <<'PY'
import json, sys
n, prov, t0, t1, t2, t3, e, p, r = sys.argv[1:]
n, prov = int(n), int(prov)
cred, reg = float(t1) - float(t0), float(t3) - float(t2)
print(json.dumps({"devices": n, "provisioned": prov, "credentialSeconds": round(cred, 1),
  "credentialsPerSecond": round(prov / cred), "registerSeconds": round(reg, 1), "registeredPerSecond": round(prov / reg),
  "totalSeconds": round(cred + reg, 1), "rssEmptyBytes": int(e), "rssAfterCredentialsBytes": int(p), "rssAfterRegistrationBytes": int(r)}))
PY
