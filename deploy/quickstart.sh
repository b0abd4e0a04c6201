#!/usr/bin/env bash
# One command to a local orch cluster: etcd, orch-scheduler and one
# orch-agent on this machine, with the example service running.
#
#   sudo deploy/quickstart.sh          install, build, start, run deploy/examples/hello.json
#   sudo deploy/quickstart.sh status   what is running
#   sudo deploy/quickstart.sh down     stop everything it started and clean up
#
# Everything lives under $ORCH_QUICKSTART_DIR (default /var/lib/orch-quickstart):
# logs in logs/, etcd's data in etcd/, the agent's state in agent/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${ORCH_QUICKSTART_DIR:-/var/lib/orch-quickstart}
BUILD=${ORCH_BUILD_DIR:-$ROOT/build}
BIN=$BUILD/bin
ETCD_PORT=${ORCH_QUICKSTART_ETCD_PORT:-12379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
API=127.0.0.1:7700
AGENT_PORT=7701
METRICS=127.0.0.1:7780
NODE=${ORCH_QUICKSTART_NODE:-node1}
CGROUP_PARENT=orch-quickstart
KERNEL_CACHE=${ORCH_VM_CACHE:-/var/cache/orch}
BRIDGE=orchqs0
. "$ROOT/deploy/node-cleanup.sh"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what did not come up within ${secs}s; see $STATE/logs/"
}

start_bg() { # start_bg NAME COMMAND...
  local name=$1; shift
  if pid_alive "$STATE/$name.pid"; then
    echo "   $name already running (pid $(cat "$STATE/$name.pid"))"
    return
  fi
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$STATE/$name.pid"
  echo "   $name started (pid $!, log $STATE/logs/$name.log)"
}

stop_pid() { # stop_pid NAME
  local f=$STATE/$1.pid
  pid_alive "$f" || { rm -f "$f"; return 0; }
  local pid; pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$f"
  echo "   $1 stopped"
}

up() {
  [ "$(id -u)" -eq 0 ] || die "run as root: containers need namespaces and cgroups (sudo $0)"
  say "Installing what is missing (Debian packages)"
  "$ROOT/deploy/install-deps.sh"

  say "Building orch in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target orch-scheduler orch-agent orchctl orch-init orch-image >/dev/null

  mkdir -p "$STATE/logs" "$STATE/agent"
  say "Starting etcd on 127.0.0.1:$ETCD_PORT"
  start_bg etcd etcd --name quickstart --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "quickstart=http://127.0.0.1:$ETCD_PEER_PORT"
  wait_for 20 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  say "Starting orch-scheduler (orchctl on $API, agents on 127.0.0.1:$AGENT_PORT)"
  start_bg scheduler "$BIN/orch-scheduler" --etcd "http://127.0.0.1:$ETCD_PORT" \
    --api-listen "$API" --agent-listen "127.0.0.1:$AGENT_PORT" --metrics-listen "$METRICS"
  wait_for 20 orch-scheduler "$BIN/orchctl" --server "$API" get nodes

  say "Fetching the microVM guest kernel (Debian's cloud kernel, into $KERNEL_CACHE)"
  vm_args=()
  if "$ROOT/deploy/fetch-guest-kernel.sh" "$KERNEL_CACHE" >/dev/null; then
    vm_args=(--guest-kernel-dir "$KERNEL_CACHE/guest-kernel")
    echo "   guest kernel $(cat "$KERNEL_CACHE/guest-kernel/current")"
  else
    echo "   could not fetch it: this node will run containers only"
  fi

  say "Starting orch-agent as node $NODE"
  start_bg agent env ORCH_INIT_PATH="$BIN/orch-init" "$BIN/orch-agent" \
    --scheduler "127.0.0.1:$AGENT_PORT" --node-id "$NODE" --labels "zone=local" \
    --state-dir "$STATE/agent" --cgroup-parent "$CGROUP_PARENT" --bridge "$BRIDGE" "${vm_args[@]}"
  wait_for 20 "node $NODE" sh -c "'$BIN/orchctl' --server '$API' get nodes | grep -q '^$NODE .*ready'"

  say "Importing the busybox image (from Debian's busybox-static)"
  "$ROOT/deploy/make-busybox-image.sh" "$STATE/busybox.tar" >/dev/null
  "$BIN/orchctl" image import busybox "$STATE/busybox.tar" --state-dir "$STATE/agent"

  say "Applying deploy/examples/hello.json (containers)"
  "$BIN/orchctl" --server "$API" apply -f "$ROOT/deploy/examples/hello.json" --wait
  if "$BIN/orchctl" --server "$API" get nodes | grep -q "^$NODE .*microvm"; then
    say "Applying deploy/examples/hello-vm.json (a microVM: its own kernel; a few seconds to boot without KVM)"
    "$BIN/orchctl" --server "$API" apply -f "$ROOT/deploy/examples/hello-vm.json" --wait --wait-timeout 120s ||
      echo "   the microVM did not come up; see $STATE/logs/agent.log"
  fi

  echo
  "$BIN/orchctl" --server "$API" get allocs
  cat <<MSG

orch is running. Try:
  export PATH=$BIN:\$PATH
  orchctl get nodes
  orchctl get allocs
  orchctl describe service hello
  orchctl logs \$(orchctl get allocs -o json | sed -n 's/.*"alloc_id": "\\(hello-[0-9a-f]*\\)".*/\\1/p' | head -1)
  orchctl delete service hello
Metrics: curl http://$METRICS/metrics
Logs: $STATE/logs/   Stop everything: sudo $0 down
MSG
}

down() {
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 down)"
  say "Stopping the local orch cluster"
  if pid_alive "$STATE/scheduler.pid" && pid_alive "$STATE/agent.pid"; then
    # Delete every service so that the agent stops its workloads.
    for svc in $("$BIN/orchctl" --server "$API" get services 2>/dev/null | awk 'NR > 1 {print $1}'); do
      "$BIN/orchctl" --server "$API" delete service "$svc" || true
    done
    for _ in $(seq 100); do
      [ "$("$BIN/orchctl" --server "$API" get allocs -o json 2>/dev/null | grep -c '"alloc_id"')" = 0 ] && break
      sleep 0.2
    done
  fi
  stop_pid agent
  stop_pid scheduler
  stop_pid etcd
  # Whatever a workload left behind: its processes and cgroups, the node
  # network the agent made (veths and taps on the bridge, the bridge, the
  # nftables table), overlay mounts.
  orch_node_kill_cgroups "$CGROUP_PARENT"
  orch_node_remove_bridge "$BRIDGE"
  nft delete table ip orch 2>/dev/null || true
  orch_node_umount_under "$STATE"
  rm -rf "$STATE"
  echo "   removed $STATE"
}

status() {
  for n in etcd scheduler agent; do
    if pid_alive "$STATE/$n.pid"; then echo "$n: running (pid $(cat "$STATE/$n.pid"))"; else echo "$n: stopped"; fi
  done
  pid_alive "$STATE/scheduler.pid" && "$BIN/orchctl" --server "$API" get nodes || true
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command \"$1\" (use: up, status, down)" ;;
esac
