#!/usr/bin/env bash
# Starts (or stops) a throw-away PostgreSQL server owned by this checkout: data under a temp folder, listening
# on 127.0.0.1:${ORCH_PG_PORT:-55432}. Source it, then call pg_start_private / pg_stop_private.
# Sets PG_CONNECTION_STRING (Npgsql format) for the database "orchestrator".

pg_bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || { echo "PostgreSQL binaries not found: apt-get install postgresql" >&2; return 1; }
  echo "$d"
}

pg_start_private() {
  local bin port dir
  bin=$(pg_bin_dir) || return 1
  port=${ORCH_PG_PORT:-55432}
  dir=${ORCH_PG_DIR:-/tmp/orch-pg-$port}
  if ! id postgres >/dev/null 2>&1; then useradd -r -m postgres; fi
  if [ ! -s "$dir/PG_VERSION" ]; then
    rm -rf "$dir"; mkdir -p "$dir"; chown postgres "$dir"
    su postgres -c "$bin/initdb -D '$dir' -U postgres --auth=trust -E UTF8 >/dev/null"
  fi
  if ! su postgres -c "$bin/pg_ctl -D '$dir' status" >/dev/null 2>&1; then
    su postgres -c "$bin/pg_ctl -D '$dir' -l '$dir/server.log' -w -o \"-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on\" start" >/dev/null
  fi
  su postgres -c "$bin/psql -h 127.0.0.1 -p $port -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='orchestrator'\"" | grep -q 1 \
    || su postgres -c "$bin/psql -h 127.0.0.1 -p $port -U postgres -c 'CREATE DATABASE orchestrator' >/dev/null"
  export PG_CONNECTION_STRING="Host=127.0.0.1;Port=$port;Username=postgres;Database=orchestrator;Pooling=true;Maximum Pool Size=50"
  export ORCH_PG_BIN="$bin" ORCH_PG_PORT="$port" ORCH_PG_DIR="$dir"
}

pg_stop_private() {
  local bin dir
  bin=$(pg_bin_dir) || return 0
  dir=${ORCH_PG_DIR:-/tmp/orch-pg-${ORCH_PG_PORT:-55432}}
  su postgres -c "$bin/pg_ctl -D '$dir' -m fast stop" >/dev/null 2>&1 || true
}
