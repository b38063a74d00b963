#!/usr/bin/env bash
# usage: flock /work/bench.lock bench/deltas/time_pair.sh [W] (after whole_release.py filled W/hb and W/grpc; W below)
# orch (one frame, --method release, no --level) and ostree static-delta generate back to back, both under /usr/bin/time -v.
set -u
W=${1:-/work/bench-s12-onepass}
one() { # dir product from to
  local d=$W/$1
  rm -rf $d/orch-store/deltas $d/ostree-repo/deltas
  local to=$(ostree --repo=$d/ostree-repo rev-parse $2) from=$(ostree --repo=$d/ostree-repo rev-parse $2^)
  echo "== $1 orch start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v $W/orch/orch delta build --store $d/orch-store --keys $d/keys --product $2 --from $3 --to $4 --method release --json 2>$d/orch.time >$d/orch.json
  grep -E "Elapsed|User time|System time|Maximum resident" $d/orch.time
  echo "== $1 ostree start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v ostree --repo=$d/ostree-repo static-delta generate --from=$from --to=$to 2>$d/ostree.time >/dev/null
  grep -E "Elapsed|User time|System time|Maximum resident" $d/ostree.time
  echo "== $1 end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
}
one hb harfbuzzsharp-nativeassets-linux 14.2.1.401 14.4.0
one grpc grpc-tools 2.71.0 2.72.0
