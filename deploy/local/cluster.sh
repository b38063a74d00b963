#!/usr/bin/env bash
# A 3-node Orchestrator cluster on 127.0.0.1 sharing one PostgreSQL and one store folder (see README.md). The nodes
# form the cluster with Akka Cluster Bootstrap and config discovery (each node's HTTP address is a contact point).
#
#   deploy/local/cluster.sh start          build if needed, start nodes 1..3, wait until all are Ready
#   deploy/local/cluster.sh status         pid, ports and /health/ready of each node
#   deploy/local/cluster.sh kill N         SIGKILL node N (a crash: no CoordinatedShutdown, no leave)
#   deploy/local/cluster.sh stop [N]       SIGTERM (graceful leave) node N or every node, wait for exit
#   deploy/local/cluster.sh restart N      start node N again (after kill/stop) and wait until Ready
#   deploy/local/cluster.sh env            print ORCH_SERVER / ORCH_TOKEN exports for `orch`
#
# Environment (all optional):
#   ORCH_LOCAL_DIR         state folder (pids, logs, per-node data, shared store, admin token); default /tmp/orch-local
#   ORCH_LOCAL_NODES       node count, default 3
#   ORCH_LOCAL_HTTP_BASE   HTTP port of node 1 (node N: base+N-1), default 5081
#   ORCH_LOCAL_AKKA_BASE   Akka remoting port of node 1, default 4061
#   ORCH_LOCAL_PG          Npgsql connection string; default $PG_CONNECTION_STRING, else the private server of
#                          deploy/local/postgres.sh is started
#   ORCH_LOCAL_STABLE_AFTER  split-brain resolver stable-after (default: the node's, Node:SplitBrainStableAfter)
#   ORCH_LOCAL_NODE_DLL    node binary (default: src/Orchestrator/bin/Debug/net10.0/orchestrator.dll, built when missing)
#   ORCH_LOCAL_READY_TIMEOUT  seconds to wait for readiness, default 120
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${ORCH_LOCAL_DIR:-/tmp/orch-local}
nodes=${ORCH_LOCAL_NODES:-3}
http_base=${ORCH_LOCAL_HTTP_BASE:-5081}
akka_base=${ORCH_LOCAL_AKKA_BASE:-4061}
stable_after=${ORCH_LOCAL_STABLE_AFTER:-}
node_dll=${ORCH_LOCAL_NODE_DLL:-$repo/src/Orchestrator/bin/Debug/net10.0/orchestrator.dll}
ready_timeout=${ORCH_LOCAL_READY_TIMEOUT:-120}

die() { echo "cluster.sh: $*" >&2; exit 1; }

http_port() { echo $((http_base + $1 - 1)); }
akka_port() { echo $((akka_base + $1 - 1)); }
pid_of() { [ -s "$dir/node-$1/pid" ] && cat "$dir/node-$1/pid" || true; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
check_node() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$nodes" ] || die "node '$1' is not one of 1..$nodes"; }

pg_connection() {
  if [ -n "${ORCH_LOCAL_PG:-}" ]; then echo "$ORCH_LOCAL_PG"; return; fi
  if [ -n "${PG_CONNECTION_STRING:-}" ]; then echo "$PG_CONNECTION_STRING"; return; fi
  # shellcheck source=postgres.sh
  source "$here/postgres.sh"
  pg_start_private >&2 || die "could not start the private PostgreSQL (deploy/local/postgres.sh); set ORCH_LOCAL_PG instead"
  echo "$PG_CONNECTION_STRING"
}

admin_token() {
  # One token for the whole local cluster, created once; only its SHA-256 is given to the nodes.
  if [ ! -s "$dir/admin-token" ]; then
    mkdir -p "$dir"
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/admin-token.tmp")
    mv "$dir/admin-token.tmp" "$dir/admin-token"
  fi
  cat "$dir/admin-token"
}

start_node() {
  local n=$1 conn=$2 hash=$3 i
  if alive "$n"; then echo "node $n already running (pid $(pid_of "$n"))"; return; fi
  mkdir -p "$dir/node-$n/data" "$dir/store"
  local env=(
    "ORCH_Urls=http://127.0.0.1:$(http_port "$n")"
    "ORCH_Node__DataDirectory=$dir/node-$n/data"
    "ORCH_Node__StoreRoot=$dir/store"
    "ORCH_Node__Hostname=127.0.0.1"
    "ORCH_Node__Port=$(akka_port "$n")"
    "ORCH_Node__Discovery=config"
    "ORCH_Node__DiscoveryContactPoints=$nodes"
    "ORCH_Database__Provider=postgresql"
    "ORCH_Database__ConnectionString=$conn"
    "ORCH_Admin__Tokens__0__Name=local"
    "ORCH_Admin__Tokens__0__Sha256=$hash"
    "ORCH_Admin__Tokens__0__Scopes__0=read"
    "ORCH_Admin__Tokens__0__Scopes__1=operate"
    "ORCH_Logging__LogLevel__Default=${ORCH_LOCAL_LOG_LEVEL:-Information}"
  )
  # Cluster Bootstrap with config discovery: every node's HTTP contact point; no seed list.
  for ((i = 1; i <= nodes; i++)); do env+=("ORCH_Node__DiscoveryEndpoints__$((i - 1))=127.0.0.1:$(http_port "$i")"); done
  [ -z "$stable_after" ] || env+=("ORCH_Node__SplitBrainStableAfter=$stable_after")
  # exec: the recorded pid is the node process itself, so `kill` really SIGKILLs the node.
  (cd "$dir/node-$n" && exec env "${env[@]}" dotnet "$node_dll" </dev/null >>"$dir/node-$n/node.log" 2>&1) &
  echo $! > "$dir/node-$n/pid"
  echo "node $n: pid $!, http://127.0.0.1:$(http_port "$n"), akka.tcp://orchestrator@127.0.0.1:$(akka_port "$n"), log $dir/node-$n/node.log"
}

wait_ready() {
  local deadline=$((SECONDS + ready_timeout)) n
  for n in "$@"; do
    until curl -fsS -o /dev/null "http://127.0.0.1:$(http_port "$n")/health/ready" 2>/dev/null; do
      alive "$n" || die "node $n exited during start; last log lines:
$(tail -n 20 "$dir/node-$n/node.log")"
      [ $SECONDS -lt $deadline ] || die "node $n not Ready after ${ready_timeout}s; see $dir/node-$n/node.log"
      sleep 0.5
    done
    echo "node $n Ready"
  done
}

stop_node() {
  local n=$1 p deadline
  p=$(pid_of "$n")
  if [ -z "$p" ] || ! kill -0 "$p" 2>/dev/null; then rm -f "$dir/node-$n/pid"; return; fi
  kill -TERM "$p"
  deadline=$((SECONDS + 60))
  while kill -0 "$p" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "node $n did not stop in 60s; SIGKILL"; kill -KILL "$p"; break; }
    sleep 0.2
  done
  rm -f "$dir/node-$n/pid"
  echo "node $n stopped"
}

ensure_binary() {
  if [ -z "${ORCH_LOCAL_NODE_DLL:-}" ] && [ ! -f "$node_dll" ]; then
    echo "building src/Orchestrator ..."
    dotnet build "$repo/src/Orchestrator" -nologo -v q >&2
  fi
  [ -f "$node_dll" ] || die "node binary $node_dll not found; run dotnet build src/Orchestrator or set ORCH_LOCAL_NODE_DLL"
}

cmd=${1:-}
case "$cmd" in
  start)
    ensure_binary
    conn=$(pg_connection)
    hash=$(printf %s "$(admin_token)" | sha256sum | cut -c1-64)
    all=()
    for ((n = 1; n <= nodes; n++)); do start_node "$n" "$conn" "$hash"; all+=("$n"); done
    wait_ready "${all[@]}"
    echo "admin token: $dir/admin-token   (eval \"\$($0 env)\" to point orch at node 1)"
    ;;
  restart)
    [ $# -eq 2 ] || die "usage: cluster.sh restart N"
    check_node "$2"; ensure_binary
    conn=$(pg_connection)
    start_node "$2" "$conn" "$(printf %s "$(admin_token)" | sha256sum | cut -c1-64)"
    wait_ready "$2"
    ;;
  kill)
    [ $# -eq 2 ] || die "usage: cluster.sh kill N"
    check_node "$2"
    p=$(pid_of "$2"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null || die "node $2 is not running"
    kill -KILL "$p"
    while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    rm -f "$dir/node-$2/pid"
    echo "node $2 (pid $p) killed"
    ;;
  stop)
    if [ $# -eq 2 ]; then check_node "$2"; stop_node "$2"
    else for ((n = 1; n <= nodes; n++)); do stop_node "$n"; done; fi
    ;;
  status)
    for ((n = 1; n <= nodes; n++)); do
      if alive "$n"; then
        ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(http_port "$n")/health/ready" || true)
        echo "node $n: pid $(pid_of "$n"), http $(http_port "$n"), akka $(akka_port "$n"), ready HTTP $ready"
      else
        echo "node $n: not running"
      fi
    done
    ;;
  env)
    echo "export ORCH_SERVER=http://127.0.0.1:$(http_port 1) ORCH_TOKEN=$(admin_token)"
    ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
    ;;
esac
