#!/usr/bin/env bash
# Start or stop a private two-node Ray cluster on 127.0.0.1, for the Ray executor's tests (#15).
#
#   eval "$(scripts/ray-cluster.sh start)"   # head + one worker node, 1 CPU each; prints
#                                            # `export EVOCADE_TEST_RAY_ADDRESS=127.0.0.1:PORT`
#   scripts/ray-cluster.sh address           # prints the address alone
#   scripts/ray-cluster.sh status            # says whether both nodes are alive
#   scripts/ray-cluster.sh stop              # stops both nodes by their pids
#   scripts/ray-cluster.sh join ADDR [CPUS]  # one more worker node, in the foreground until
#                                            # killed (the tests kill it to lose a node)
#
# Both nodes are on this machine, so each gets its own temp dir and its own ports (picked free
# at start): they show up as two nodes in `ray.nodes()`. Each node runs as `ray start --block`
# in a session of its own; stopping sends SIGTERM to that process (Ray then stops the node's
# raylet, workers and, on the head, the GCS), then SIGKILL to the session if it lingers. Never
# `ray stop`: that kills every Ray process on the machine, other people's clusters included.
# Every server of it listens on 127.0.0.1 alone (checked with `ss -ltn`: GCS, raylets, agents,
# workers) and usage stats are off. Needs `pip install -e '.[ray]'`.
# Progress goes to stderr; stdout carries only the export line or the address.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR="${EVOCADE_RAY_DIR:-/tmp/evocade-ray}"  # short: Ray's unix sockets live below it
RAY="${RAY:-.venv/bin/ray}"
PYTHON="${PYTHON:-.venv/bin/python}"
NODES=2
export RAY_USAGE_STATS_ENABLED=0

say() { echo "ray-cluster.sh: $*" >&2; }

# N free TCP ports on 127.0.0.1 (held together while picked, so they are distinct).
free_ports() {
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
EOF
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pid_of() { [ -f "$STATE_DIR/$1.pid" ] && cat "$STATE_DIR/$1.pid"; }

# How many nodes the cluster at $1 reports alive (0 when it does not answer); the variable keeps
# the client on 127.0.0.1 (see ray_start).
alive_nodes() {
  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 timeout 120 "$PYTHON" - "$1" 2>/dev/null <<'EOF' || echo 0
import logging, sys
import ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
print(sum(1 for node in ray.nodes() if node["Alive"]))
EOF
}

# `ray start ...` such that every address is 127.0.0.1. Ray 2.60 rewrites a loopback
# --node-ip-address and --address to the machine's outward address (so that other machines
# could reach it), unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which also forbids worker nodes.
# So: that variable for the node's processes (they then resolve 127.0.0.1 as itself), and in
# this launcher alone the multi-node switch back on with the node IP fixed at 127.0.0.1.
ray_start() {
  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 exec "$PYTHON" -c '
import sys
import ray._private.ray_constants as constants
import ray._private.services as services
constants.ENABLE_RAY_CLUSTER = True
services.get_node_ip_address = lambda address=None: "127.0.0.1"
from ray.scripts.scripts import main
sys.argv = ["ray", "start", *sys.argv[1:]]
main()
' --node-ip-address 127.0.0.1 --disable-usage-stats "$@"
}

# One node, blocking, with ports of its own: `$0 join` runs this in the foreground.
run_node() {
  local dir="$1"
  shift
  local ports
  read -r -a ports <<<"$(free_ports 6)"
  mkdir -p "$dir"
  ray_start --block --temp-dir "$dir/tmp" --node-manager-port "${ports[0]}" \
    --object-manager-port "${ports[1]}" --metrics-export-port "${ports[2]}" \
    --dashboard-agent-listen-port "${ports[3]}" --dashboard-agent-grpc-port "${ports[4]}" \
    --runtime-env-agent-port "${ports[5]}" --object-store-memory 100000000 "$@"
}

# One node of the cluster in a session of its own, its pid kept in STATE_DIR/NAME.pid (every
# step up to `ray start` execs, so that pid is the `ray start --block` process itself).
start_node() {
  local name="$1"
  shift
  mkdir -p "$STATE_DIR/$name"
  setsid "$0" node "$STATE_DIR/$name" --num-cpus 1 "$@" </dev/null \
    >"$STATE_DIR/$name/start.log" 2>&1 &
  echo $! >"$STATE_DIR/$name.pid"
}

wait_for_nodes() {
  local address="$1" want="$2" seen=0
  for _ in $(seq 1 60); do
    seen="$(alive_nodes "$address")"
    [ "$seen" -ge "$want" ] && return 0
    sleep 2
  done
  say "only $seen of $want nodes came up at $address; the logs: $STATE_DIR/*/start.log"
  tail -n 20 "$STATE_DIR"/*/start.log >&2 || true
  return 1
}

start() {
  if [ -f "$STATE_DIR/address" ] && alive "$(pid_of head)" && alive "$(pid_of worker)"; then
    say "already running at $(cat "$STATE_DIR/address")"
    echo "export EVOCADE_TEST_RAY_ADDRESS=$(cat "$STATE_DIR/address")"
    return 0
  fi
  [ -x "$RAY" ] || {
    say "$RAY is missing: pip install -e '.[ray]'"
    exit 1
  }
  stop >/dev/null 2>&1 || true
  rm -rf "$STATE_DIR"
  mkdir -p "$STATE_DIR"
  local port address
  port="$(free_ports 1)"
  address="127.0.0.1:$port"
  say "starting the head node on $address (state $STATE_DIR)"
  # Even with the dashboard off, 2.60 runs its minimal server (the job API) on 8265 by default.
  start_node head --head --port "$port" --include-dashboard=false \
    --dashboard-host 127.0.0.1 --dashboard-port "$(free_ports 1)"
  wait_for_nodes "$address" 1
  say "starting a worker node"
  start_node worker --address "$address"
  wait_for_nodes "$address" "$NODES"
  echo "$address" >"$STATE_DIR/address"
  say "ready: $NODES nodes at $address (pids $(pid_of head), $(pid_of worker))"
  echo "export EVOCADE_TEST_RAY_ADDRESS=$address"
}

# SIGTERM to `ray start --block` (it stops its node), then SIGKILL to its session.
stop_node() {
  local pid
  pid="$(pid_of "$1")" || return 0
  if alive "$pid"; then
    say "stopping the $1 node (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true  # whatever is left in the node's session
  rm -f "$STATE_DIR/$1.pid"
}

stop() {
  if [ ! -f "$STATE_DIR/head.pid" ] && [ ! -f "$STATE_DIR/worker.pid" ]; then
    say "not running"
    return 0
  fi
  stop_node worker
  stop_node head
  rm -f "$STATE_DIR/address"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  address)
    [ -f "$STATE_DIR/address" ] || {
      say "not running (run: $0 start)"
      exit 1
    }
    cat "$STATE_DIR/address"
    ;;
  node)  # internal: one node in the foreground (start_node runs it in its own session)
    shift
    run_node "$@"
    ;;
  join)  # one more worker node in the foreground until killed (the node-loss tests)
    [ -n "${2:-}" ] || {
      echo "usage: $0 join ADDRESS [CPUS]" >&2
      exit 2
    }
    mkdir -p "$STATE_DIR"
    run_node "$(mktemp -d "$STATE_DIR/extra-XXXXXX")" --address "$2" --num-cpus "${3:-1}"
    ;;
  status)
    if [ -f "$STATE_DIR/address" ]; then
      say "$(alive_nodes "$(cat "$STATE_DIR/address")") nodes alive at $(cat "$STATE_DIR/address")"
    else
      say "not running"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|address|status|join ADDRESS [CPUS]" >&2
    exit 2
    ;;
esac
