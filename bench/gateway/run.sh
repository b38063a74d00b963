#!/usr/bin/env bash
# Gateway benchmark: chunk GETs through the gateway (auth + throttle + sharded chunk actors + LRU) vs nginx
# serving the same static store, both on loopback, same run, same wrk settings; then check-ins per second.
# Usage: bash bench/gateway/run.sh [duration-seconds]   (needs wrk and nginx: apt-get install wrk nginx)
# Writes raw wrk output to bench/work/gateway/ and prints a Markdown table for bench/results/gateway.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
DURATION=${1:-15}
THREADS=${WRK_THREADS:-2}
CONNECTIONS=${WRK_CONNECTIONS:-64}
WORK=$REPO/bench/work/gateway
GW_PORT=${GW_PORT:-5190}
NGINX_PORT=${NGINX_PORT:-5191}
AKKA_PORT=${AKKA_PORT:-5192}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx not found: apt-get install nginx" >&2; exit 1; }

rm -rf "$WORK"; mkdir -p "$WORK/store" "$WORK/data"

echo "== building the node (Release)"
dotnet build "$REPO/src/Orchestrator" -c Release --nologo -v q >/dev/null

echo "== generating stores"
# Two chunk populations, each listed in its own paths file: "typical" = FastCDC default sizes (16-256 KiB,
# uniform), "small" = 4 KiB chunks (request-rate bound). Random bytes stand in for encrypted chunks.
python3 - "$WORK/store" <<'PY'
import hashlib, os, random, sys
root = sys.argv[1]
random.seed(42)
def write(n, size_fn, listfile):
    with open(listfile, "w") as out:
        for _ in range(n):
            data = os.urandom(size_fn())
            cid = hashlib.sha256(data).hexdigest()
            d = os.path.join(root, "chunks", cid[:2]); os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, cid), "wb") as f: f.write(data)
            out.write(f"chunks/{cid[:2]}/{cid}\n")
write(1000, lambda: random.randint(16*1024, 256*1024), root + "/../typical.txt")
write(2000, lambda: 4096, root + "/../small.txt")
PY
du -sh "$WORK/store"

echo "== starting the gateway on 127.0.0.1:$GW_PORT"
# Limits far above what loopback can do: the benchmark measures serving cost, not the throttle refusing.
ORCH_Urls="http://127.0.0.1:$GW_PORT" \
ORCH_Node__DataDirectory="$WORK/data" ORCH_Node__StoreRoot="$WORK/store" ORCH_Node__Port=$AKKA_PORT \
ORCH_ChunkStore__CacheBytes=$((1024*1024*1024)) \
ORCH_Throttle__DeviceBytesPerSecond=$((1<<50)) ORCH_Throttle__DeviceBurstBytes=$((1<<50)) \
ORCH_Throttle__DeviceMaxBytesPerWindow=$((1<<60)) \
ORCH_Throttle__GlobalBytesPerSecond=$((1<<50)) ORCH_Throttle__GlobalBurstBytes=$((1<<50)) \
ORCH_Logging__LogLevel__Default=Warning \
  dotnet "$REPO/src/Orchestrator/bin/Release/net10.0/orchestrator.dll" >"$WORK/node.log" 2>&1 &
NODE_PID=$!
cleanup() {
  kill "$NODE_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$GW_PORT/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$GW_PORT/health/ready" >/dev/null

TOKEN=$(cat "$WORK/data/admin-token")
provision() {
  curl -fsS -X POST -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW_PORT/admin/v1/devices/$1/credential" \
    | python3 -c 'import sys,json; d=json.load(sys.stdin); print(d["deviceId"], d["secret"])'
}
read -r _ BENCH_SECRET < <(provision bench-device)
SIGN="$REPO/bench/gateway/sign.py"   # protocol v2: wrk's Lua cannot sign, so requests are pre-signed just before each run

echo "== starting nginx on 127.0.0.1:$NGINX_PORT"
sed -e "s|@WORK@|$WORK|g" -e "s|@STORE@|$WORK/store|g" -e "s|@PORT@|$NGINX_PORT|g" \
  "$REPO/bench/gateway/nginx.conf.template" > "$WORK/nginx.conf"
nginx -c "$WORK/nginx.conf" -p "$WORK"

run_wrk() { # name url script script-args...
  local name=$1 url=$2 script=$3; shift 3
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$url" -- "$@" > "$WORK/$name.txt" 2>&1
  grep '^RESULT' "$WORK/$name.txt" | sed "s/^RESULT/$name/"
}

# Warm both (page cache for nginx, LRU for the gateway) with one pass over every chunk.
for set in typical small; do python3 "$SIGN" get bench-device "$BENCH_SECRET" /v1/store/ "$WORK/$set.txt" > "$WORK/$set.signed.txt"; done
python3 - "$WORK" "$GW_PORT" "$NGINX_PORT" <<'PY'
import http.client, sys
work, gw, ngx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
signed = [l.rstrip("\n").split("\t") for f in ("typical.signed.txt", "small.signed.txt") for l in open(f"{work}/{f}")]
for port, prefix, signed_paths in ((gw, "/v1/store/", True), (ngx, "/", False)):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for p, auth in signed:
        headers = {"Authorization": auth} if signed_paths else {}
        c.request("GET", prefix + p, headers=headers)
        r = c.getresponse(); r.read()
        if r.status != 200: sys.exit(f"warm-up {port}{prefix}{p}: HTTP {r.status}")
PY

echo "== wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION}s per run; order nginx, gateway, nginx, gateway"
RESULTS=$WORK/results.txt; : > "$RESULTS"
for set in typical small; do
  for round in 1 2; do
    run_wrk "nginx-$set-$round" "http://127.0.0.1:$NGINX_PORT" "$REPO/bench/gateway/random-chunk.lua" "$WORK/$set.txt" "/" | tee -a "$RESULTS"
    python3 "$SIGN" get bench-device "$BENCH_SECRET" /v1/store/ "$WORK/$set.txt" > "$WORK/$set.signed.txt"
    run_wrk "gateway-$set-$round" "http://127.0.0.1:$GW_PORT" "$REPO/bench/gateway/random-chunk.lua" "$WORK/$set.signed.txt" "/v1/store/" | tee -a "$RESULTS"
  done
done

# Check-ins: needs a published product. CHECKIN_PRODUCT/CHECKIN_VERSION_ID/CHECKIN_DIGEST describe an installed,
# intact release (the server answers None) published into $WORK/store by bench/gateway/publish-release.sh.
if [ -x "$REPO/bench/gateway/publish-release.sh" ]; then
  eval "$(bash "$REPO/bench/gateway/publish-release.sh" "$WORK/store")"
  : > "$WORK/devices.txt"
  for i in $(seq 1 200); do provision "bench-ci-$i" >> "$WORK/devices.txt"; done
  # One signed check-in per request; 50 000 per second of the run is more than the gateway answers.
  python3 "$SIGN" checkin "$WORK/devices.txt" $((DURATION * 50000)) "$CHECKIN_PRODUCT" "$CHECKIN_VERSION_ID" "$CHECKIN_DIGEST" > "$WORK/checkins.signed.txt"
  run_wrk "checkin-none" "http://127.0.0.1:$GW_PORT" "$REPO/bench/gateway/check-in.lua" \
    "$WORK/checkins.signed.txt" "$CHECKIN_PRODUCT" "$CHECKIN_VERSION_ID" "$CHECKIN_DIGEST" "$THREADS" | tee -a "$RESULTS"
fi

echo
echo "| run | requests/s | MB/s | p50 ms | p99 ms | non-2xx |"
echo "|---|---:|---:|---:|---:|---:|"
awk '{
  for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  printf "| %s | %.0f | %.1f | %s | %s | %s |\n", $1, v["requests"] / v["seconds"], v["bytes"] / v["seconds"] / 1e6, v["p50_ms"], v["p99_ms"], v["errors_status"]
}' "$RESULTS"
