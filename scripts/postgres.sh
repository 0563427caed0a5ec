#!/usr/bin/env bash
# Start or stop a private PostgreSQL server for the storage tests on PostgreSQL.
#
#   eval "$(scripts/postgres.sh start)"   # installs postgresql if missing, starts the server,
#                                         # prints `export EVOCADE_TEST_POSTGRES_URL=...`
#   scripts/postgres.sh url               # prints the SQLAlchemy URL alone
#   scripts/postgres.sh status            # says whether it answers
#   scripts/postgres.sh stop              # pg_ctl stop (by the postmaster's pid); data stays
#
# There is no systemd here, so the cluster is made with initdb (not pg_createcluster) in its own
# data directory and run by pg_ctl as the `postgres` user (PostgreSQL refuses to run as root).
# It listens on 127.0.0.1 only, on an uncommon port, plus a unix socket in its own run
# directory, and trusts every local connection: it is a throwaway test server, so it also runs
# with fsync off (a crash of the machine may lose it; a crash of a client never can).
# The tests create and drop a database per test; `evocade_test` is the one they connect to
# for that. Progress goes to stderr; stdout carries only the export line or the URL.
set -euo pipefail

STATE_DIR="${EVOCADE_POSTGRES_DIR:-/var/lib/evocade-postgres}"
RUN_DIR="${EVOCADE_POSTGRES_RUN:-/run/evocade-postgres}"  # the unix socket lives here
PORT="${EVOCADE_POSTGRES_PORT:-54329}"
DATA="$STATE_DIR/data"
LOG="$STATE_DIR/postgres.log"
DATABASE="evocade_test"
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/$DATABASE"

say() { echo "postgres.sh: $*" >&2; }

# The server's binaries: the version the data directory was made with, else the newest installed.
bindir() {
  local version
  if [ -f "$DATA/PG_VERSION" ]; then
    version="$(cat "$DATA/PG_VERSION")"
    [ -x "/usr/lib/postgresql/$version/bin/postgres" ] && echo "/usr/lib/postgresql/$version/bin"
    return
  fi
  version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null |
    sort -V | tail -n 1)"
  [ -n "$version" ] && [ -x "/usr/lib/postgresql/$version/bin/postgres" ] &&
    echo "/usr/lib/postgresql/$version/bin"
}

as_postgres() { runuser -u postgres -- "$@"; }

answers() {
  local bin
  bin="$(bindir)" || return 1
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U postgres -t 2 >/dev/null 2>&1
}

psql_admin() {
  "$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"
}

install_server() {
  if bindir >/dev/null && getent passwd postgres >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL is missing; run as root or: sudo apt-get install -y postgresql"
    exit 1
  fi
  say "installing postgresql (apt) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  if ! bindir >/dev/null; then
    say "postgresql installed, but no server binaries under /usr/lib/postgresql/*/bin"
    exit 1
  fi
}

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  say "initdb into $DATA (trust auth, UTF8)"
  mkdir -p "$DATA"
  chown postgres:postgres "$STATE_DIR" "$DATA"
  chmod 700 "$DATA"
  as_postgres "$(bindir)/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 --no-instructions >/dev/null
  cat >>"$DATA/postgresql.conf" <<EOF

# evocade test server (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$RUN_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
EOF
}

ensure_database() {
  if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" ]; then
    say "creating database $DATABASE"
    psql_admin -c "CREATE DATABASE $DATABASE"
  fi
}

postmaster_pid() {
  [ -f "$DATA/postmaster.pid" ] && head -n 1 "$DATA/postmaster.pid"
}

# A postmaster that does not answer but has not exited yet (just killed, or shutting down)
# still holds the data directory: give it time to go, then stop it.
wait_for_old_server() {
  local pid
  pid="$(postmaster_pid)" || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "pid $pid holds $DATA but does not answer; stopping it"
  as_postgres "$(bindir)/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}

start() {
  if answers; then
    say "already running on 127.0.0.1:$PORT (data $DATA)"
    ensure_database
    echo "export EVOCADE_TEST_POSTGRES_URL=$URL"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    say "run as root: the server runs as the postgres user, started with runuser"
    exit 1
  fi
  install_server
  mkdir -p "$STATE_DIR" "$RUN_DIR"
  chown postgres:postgres "$STATE_DIR" "$RUN_DIR"
  init_cluster
  wait_for_old_server
  say "starting postgres on 127.0.0.1:$PORT (data $DATA, log $LOG)"
  # pg_ctl starts the postmaster in its own session, so it outlives the shell that started it;
  # a postmaster.pid left by a dead server is recognised as stale and replaced.
  if ! as_postgres "$(bindir)/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 start >/dev/null; then
    say "postgres did not start within 30 s; the end of $LOG:"
    tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
  for _ in $(seq 1 50); do
    if answers; then
      ensure_database
      say "ready (pid $(postmaster_pid))"
      echo "export EVOCADE_TEST_POSTGRES_URL=$URL"
      return 0
    fi
    sleep 0.2
  done
  say "postgres started but does not answer on 127.0.0.1:$PORT; the end of $LOG:"
  tail -n 20 "$LOG" >&2 || true
  exit 1
}

stop() {
  if [ -f "$DATA/postmaster.pid" ] && bindir >/dev/null &&
    as_postgres "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    say "stopping postgres (pid $(postmaster_pid))"
    # fast: roll back open transactions and disconnect clients, then shut down cleanly.
    as_postgres "$(bindir)/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null
  else
    say "not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url)
    answers || say "warning: nothing answers on 127.0.0.1:$PORT yet (run: $0 start)"
    echo "$URL"
    ;;
  status)
    if answers; then
      say "running (pid $(postmaster_pid)); $URL"
    else
      say "not answering on 127.0.0.1:$PORT"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|url|status" >&2
    exit 2
    ;;
esac
