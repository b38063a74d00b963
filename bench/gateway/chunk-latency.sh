#!/usr/bin/env bash
# Sequential chunk GET latency through a node (curl, one device, one 64 KiB chunk): 400 whole-chunk GETs and 200
# Range GETs after 50 warm-up requests. Compare two builds in one run (e.g. main vs a branch), interleaved:
#   bash bench/gateway/chunk-latency.sh <orchestrator.dll> <http port> <akka port> <name>

set -euo pipefail
DLL=$1; PORT=$2; AKKA=$3; NAME=$4
W=${LAT_WORK:-/tmp/orch-chunk-latency}/$NAME; rm -rf $W; mkdir -p $W/store $W/data
python3 - $W/store > $W/chunk.txt <<'PY'
import os, hashlib, sys
data = os.urandom(65536); cid = hashlib.sha256(data).hexdigest()
d = os.path.join(sys.argv[1], "chunks", cid[:2]); os.makedirs(d, exist_ok=True)
open(os.path.join(d, cid), "wb").write(data); print(f"chunks/{cid[:2]}/{cid}")
PY
ORCH_Urls="http://127.0.0.1:$PORT" ORCH_Node__DataDirectory=$W/data ORCH_Node__StoreRoot=$W/store ORCH_Node__Port=$AKKA \
  dotnet $DLL > $W/node.log 2>&1 &
NODE=$!
for i in $(seq 1 120); do curl -sf http://127.0.0.1:$PORT/health/ready >/dev/null 2>&1 && break; sleep 0.5; done
TOKEN=$(cat $W/data/admin-token)
SECRET=$(curl -sf -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/admin/v1/devices/lat-1/credential | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
P=$(cat $W/chunk.txt)
for i in $(seq 1 50); do curl -s -o /dev/null -u "lat-1:$SECRET" http://127.0.0.1:$PORT/v1/store/$P; done
for i in $(seq 1 400); do curl -s -o /dev/null -w '%{time_total}\n' -u "lat-1:$SECRET" http://127.0.0.1:$PORT/v1/store/$P; done > $W/times.txt
for i in $(seq 1 200); do curl -s -o /dev/null -w '%{time_total}\n' -H 'Range: bytes=1000-' -u "lat-1:$SECRET" http://127.0.0.1:$PORT/v1/store/$P; done > $W/range.txt
kill $NODE; wait $NODE 2>/dev/null || true
python3 - $W/times.txt $W/range.txt $NAME <<'PY'
import sys, statistics
for f, what in ((sys.argv[1], "whole"), (sys.argv[2], "range")):
    t = sorted(float(x) * 1000 for x in open(f) if x.strip())
    print(f"{sys.argv[3]} {what}: n={len(t)} p50={statistics.median(t):.2f} ms p90={t[int(len(t)*0.9)]:.2f} ms")
PY
