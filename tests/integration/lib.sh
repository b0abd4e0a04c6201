# Shared helpers for orch's integration tests: real etcd, orch-scheduler and
# orch-agents on loopback (or in network namespaces), cleaned up on exit
# whatever happens. Source it at the top of a test:
#
#   . "$(dirname "$0")/lib.sh"
#   itest_init            # root check (exit 77 to skip), temp dir, trap
#   itest_start_cluster   # etcd + scheduler
#   itest_start_agent n1  # one agent (optionally in a netns: itest_start_agent n1 NETNS ADDR)
#   orchctl get nodes     # orchctl talking to this cluster
#
# Failures: `fail "message"` prints the message, the daemons' log tails, and
# exits 1.

ORCH_SOURCE_DIR=${ORCH_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ORCH_BUILD_DIR=${ORCH_BUILD_DIR:-$ORCH_SOURCE_DIR/build}
BIN=$ORCH_BUILD_DIR/bin
. "$ORCH_SOURCE_DIR/tests/integration/lib_etcd.sh"
. "$ORCH_SOURCE_DIR/deploy/node-cleanup.sh"

IT_DIR=
IT_AGENTS=()
IT_PIDS=()         # other daemons a test started, stopped at cleanup
IT_NETNS=()
IT_CGROUP_PARENTS=()
IT_BRIDGES=()      # bridges of agents in this host's network namespace
IT_NFT_WAS_THERE=1 # whether table ip orch existed before the test

itest_init() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: integration tests need root (namespaces, cgroups)"
    exit 77
  fi
  for b in orch-scheduler orch-agent orchctl orch-init orch-image; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: build first"; exit 1; }
  done
  IT_DIR=$(mktemp -d /tmp/orch-it.XXXXXX)
  nft list table ip orch >/dev/null 2>&1 || IT_NFT_WAS_THERE=0
  trap itest_cleanup EXIT
  trap 'exit 1' INT TERM
}

itest_free_port() { etcd__free_port; }

fail() {
  echo "FAIL: $*" >&2
  for f in "$IT_DIR"/*.log; do
    [ -f "$f" ] || continue
    echo "---- tail of $(basename "$f")" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

# wait_until SECONDS DESCRIPTION COMMAND... : polls every 100 ms.
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  while [ $SECONDS -lt $deadline ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "timed out after ${secs}s waiting for: $what"
}

itest_start_cluster() {
  etcd_start "$IT_DIR" || fail "etcd did not start"
  IT_API_PORT=$(itest_free_port)
  IT_AGENT_PORT=$(itest_free_port)
  IT_AGENT_LISTEN=${IT_AGENT_LISTEN:-127.0.0.1}
  itest_start_scheduler
}

itest_start_scheduler() {
  "$BIN/orch-scheduler" --etcd "$ETCD_ENDPOINT" --api-listen "127.0.0.1:$IT_API_PORT" \
    --agent-listen "$IT_AGENT_LISTEN:$IT_AGENT_PORT" --node-ttl "${IT_NODE_TTL:-3s}" \
    --node-grace "${IT_NODE_GRACE:-2s}" --leader-ttl "${IT_LEADER_TTL:-2s}" \
    >>"$IT_DIR/scheduler.log" 2>&1 &
  IT_SCHED_PID=$!
  wait_until 20 "scheduler answers" orchctl get nodes
}

orchctl() { "$BIN/orchctl" --server "127.0.0.1:$IT_API_PORT" "$@"; }

# itest_start_agent NODE [NETNS SCHEDULER_ADDR] : state in $IT_DIR/NODE.
itest_start_agent() {
  local node=$1 netns=${2:-} sched=${3:-127.0.0.1}
  local parent="orch-it-$$-$node"
  mkdir -p "$IT_DIR/$node"
  IT_CGROUP_PARENTS+=("$parent")
  local net_args=()
  if [ -z "$netns" ] && [[ " ${IT_AGENT_ARGS:-} " != *" --bridge "* ]]; then
    # An agent in this host's namespace gets a bridge and subnet of this
    # test's own, removed at the end.
    local n=${#IT_BRIDGES[@]}
    local br="oit$(( $$ % 10000 ))b$n"
    IT_BRIDGES+=("$br")
    net_args=(--bridge "$br" --bridge-subnet "10.$(( 64 + $$ % 128 )).$(( 200 + n )).0/24")
  fi
  local cmd=("$BIN/orch-agent" --scheduler "$sched:$IT_AGENT_PORT" --node-id "$node"
             --state-dir "$IT_DIR/$node" --cgroup-parent "$parent" --heartbeat-interval 1s
             "${net_args[@]}" ${IT_AGENT_ARGS:-})
  if [ -n "$netns" ]; then
    # nsenter, not `ip netns exec`: that also remounts /sys, hiding the cgroup
    # mounts the agent needs. Only the network namespace changes.
    nsenter --net="/var/run/netns/$netns" "${cmd[@]}" >>"$IT_DIR/agent-$node.log" 2>&1 &
  else
    "${cmd[@]}" >>"$IT_DIR/agent-$node.log" 2>&1 &
  fi
  eval "IT_AGENT_PID_${node//-/_}=$!"
  IT_AGENTS+=("$!")
  wait_until 20 "node $node ready" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get nodes | grep -q '^$node .*ready'"
}

agent_pid() { local v="IT_AGENT_PID_${1//-/_}"; echo "${!v}"; }

itest_busybox_tar() {
  if [ ! -f "$IT_DIR/busybox.tar" ]; then
    "$ORCH_SOURCE_DIR/deploy/make-busybox-image.sh" "$IT_DIR/busybox.tar" >/dev/null 2>&1 ||
      fail "cannot make the busybox image"
  fi
  echo "$IT_DIR/busybox.tar"
}

# itest_import_busybox NODE : imports busybox into that node's image store.
itest_import_busybox() {
  "$BIN/orchctl" image import busybox "$(itest_busybox_tar)" --state-dir "$IT_DIR/$1" >/dev/null ||
    fail "image import on $1 failed"
}

# json_get FILTER : reads JSON on stdin, prints the filter's result (python3).
json_get() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# itest_cleanup [RC]: stops everything, removes the test's traces and exits
# with RC (default: the status it was called with; a wrapper of its own in
# a test passes the status it saw).
itest_cleanup() {
  local rc=${1:-$?}
  set +e
  local daemons=("${IT_AGENTS[@]}" ${IT_SCHED_PID:-} "${IT_PIDS[@]}")
  for pid in "${daemons[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${daemons[@]}"; do wait "$pid" 2>/dev/null; done
  for parent in "${IT_CGROUP_PARENTS[@]}"; do orch_node_kill_cgroups "$parent"; done
  etcd_stop 2>/dev/null
  for ns in "${IT_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  for br in "${IT_BRIDGES[@]}"; do orch_node_remove_bridge "$br"; done
  [ "$IT_NFT_WAS_THERE" = 0 ] && nft delete table ip orch 2>/dev/null
  if [ -n "$IT_DIR" ] && [ -d "$IT_DIR" ]; then
    orch_node_umount_under "$IT_DIR"
    if [ $rc -ne 0 ] && [ -n "${ORCH_KEEP_TEST_DIR:-}" ]; then
      echo "kept $IT_DIR"
    else
      rm -rf "$IT_DIR"
    fi
  fi
  exit $rc
}
