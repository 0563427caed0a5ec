#!/usr/bin/env bash
# Start or stop a private Docker engine for the docker sandbox backend (docs/DESIGN.md §5).
#
#   eval "$(scripts/dockerd.sh start)"   # installs docker.io if missing, starts dockerd,
#                                        # prints `export DOCKER_HOST=unix://...`
#   scripts/dockerd.sh status            # says whether it answers
#   scripts/dockerd.sh stop              # kills it by its pid; images stay cached
#
# There is no systemd here, so dockerd runs by hand in the background with its own data-root,
# exec-root, socket and pidfile. `--bridge=none --iptables=false --ip6tables=false`: the engine
# never touches the host's network (sandbox containers run with `--network none` anyway).
# The data-root survives `stop`, so built images are cached between runs on this machine.
# Progress goes to stderr; stdout carries only the export line, for `eval`.
set -euo pipefail

STATE_DIR="${EVOCADE_DOCKER_DIR:-/var/lib/evocade-docker}"
RUN_DIR="${EVOCADE_DOCKER_RUN:-/run/evocade-docker}"  # short: a unix socket path has <108 bytes
SOCKET="$RUN_DIR/docker.sock"
PIDFILE="$RUN_DIR/dockerd.pid"
LOG="$STATE_DIR/dockerd.log"
export DOCKER_HOST="unix://$SOCKET"

say() { echo "dockerd.sh: $*" >&2; }

answers() {
  # The engine's /_ping over its socket; the docker CLI may be newer than the engine, so curl.
  [ -S "$SOCKET" ] && curl -sf --max-time 2 --unix-socket "$SOCKET" http://localhost/_ping \
    >/dev/null 2>&1
}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

install_engine() {
  command -v dockerd >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    say "dockerd is missing; run as root or: sudo apt-get install -y docker.io"
    exit 1
  fi
  say "installing docker.io (apt) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
}

start() {
  if answers; then
    say "already running (pid $(running_pid || echo '?'))"
    echo "export DOCKER_HOST=$DOCKER_HOST"
    return 0
  fi
  install_engine
  mkdir -p "$STATE_DIR/data" "$RUN_DIR/exec"
  if pid="$(running_pid)"; then
    say "pid $pid holds $PIDFILE but does not answer; stopping it"
    stop_pid "$pid"
  fi
  rm -f "$PIDFILE" "$SOCKET"
  say "starting dockerd (data-root $STATE_DIR/data, log $LOG)"
  # setsid: its own session, so it outlives the shell that started it.
  setsid dockerd \
    --data-root "$STATE_DIR/data" \
    --exec-root "$RUN_DIR/exec" \
    -H "$DOCKER_HOST" \
    --pidfile "$PIDFILE" \
    --bridge=none --iptables=false --ip6tables=false \
    >>"$LOG" 2>&1 </dev/null &
  for _ in $(seq 1 150); do
    if answers; then
      say "ready (pid $(running_pid || echo '?'))"
      echo "export DOCKER_HOST=$DOCKER_HOST"
      return 0
    fi
    sleep 0.2
  done
  say "dockerd did not answer within 30 s; the end of $LOG:"
  tail -n 20 "$LOG" >&2 || true
  exit 1
}

stop_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  if pid="$(running_pid)"; then
    say "stopping dockerd (pid $pid)"
    stop_pid "$pid"
  else
    say "not running"
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if answers; then
      say "running (pid $(running_pid || echo '?')); export DOCKER_HOST=$DOCKER_HOST"
    else
      say "not answering on $SOCKET"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
