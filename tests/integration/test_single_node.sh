#!/usr/bin/env bash
# apply -> a container runs on the node: in its own pid namespace, in a
# cgroup with the requested memory limit, its output in `orchctl logs`;
# delete -> its process and cgroup are gone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
itest_start_cluster
itest_start_agent n1
itest_import_busybox n1

# The node is ready and reports capacity.
orchctl get nodes -o json > "$IT_DIR/nodes.json"
[ "$(json_get "len(d['nodes'])" < "$IT_DIR/nodes.json")" = 1 ] || fail "expected one node"
[ "$(json_get "d['nodes'][0]['state']" < "$IT_DIR/nodes.json")" = ready ] || fail "node not ready"
[ "$(json_get "d['nodes'][0]['capacity']['memory_bytes'] > 0" < "$IT_DIR/nodes.json")" = True ] ||
  fail "node reports no memory capacity"

cat > "$IT_DIR/svc.json" <<'SPEC'
{
  "name": "echo",
  "image": "busybox",
  "command": ["/bin/sh", "-c", "echo marker-$(hostname); echo pid-in-ns=$$; exec sleep 1000"],
  "resources": {"cpu": "200m", "memory": "48Mi"},
  "stop_grace": "2s"
}
SPEC
orchctl apply -f "$IT_DIR/svc.json" --wait > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply --wait failed"; }

orchctl get allocs -o json > "$IT_DIR/allocs.json"
[ "$(json_get "len(d['allocs'])" < "$IT_DIR/allocs.json")" = 1 ] || fail "expected one allocation"
alloc=$(json_get "d['allocs'][0]['alloc_id']" < "$IT_DIR/allocs.json")
state=$(json_get "d['allocs'][0]['status']['state']" < "$IT_DIR/allocs.json")
[ "$state" = running ] || fail "allocation state is $state, not running"
wait_until 10 "pid reported" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs -o json | grep -q '\"pid\": [1-9]'"
pid=$(orchctl get allocs -o json | json_get "d['allocs'][0]['status']['pid']")
[ -d "/proc/$pid" ] || fail "workload pid $pid is not running"

# Its own pid namespace: the host pid differs from the one it sees, and the
# namespace is not ours.
[ "$(readlink /proc/$pid/ns/pid)" != "$(readlink /proc/self/ns/pid)" ] || fail "no new pid namespace"
[ "$(readlink /proc/$pid/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] || fail "no new mount namespace"

# In a cgroup with the requested memory limit (v1 or v2).
limit_ok=0
while IFS=: read -r _ ctrl path; do
  case "$ctrl" in
    memory) f=/sys/fs/cgroup/memory$path/memory.limit_in_bytes ;;
    "") f=/sys/fs/cgroup$path/memory.max ;;
    *) continue ;;
  esac
  if [ -f "$f" ] && [ "$(cat "$f")" = $((48 * 1024 * 1024)) ]; then limit_ok=1; cg_dir=$(dirname "$f"); fi
done < "/proc/$pid/cgroup"
[ $limit_ok = 1 ] || fail "workload is not in a cgroup limited to 48Mi: $(cat /proc/$pid/cgroup)"
case "$cg_dir" in *"$alloc"*) ;; *) fail "cgroup $cg_dir is not the allocation's" ;; esac

# Its output, through the scheduler from the agent.
wait_until 10 "logs show the marker" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT logs $alloc | grep -q marker-$alloc"
# orch-init is pid 1 of the container (it reaps and forwards signals); the
# command is its first child.
orchctl logs "$alloc" | grep -q "pid-in-ns=2" || fail "the workload is not orch-init's child in its own pid namespace"
[ "$(cat /proc/$pid/comm)" = orch-init ] || fail "pid 1 of the container is $(cat /proc/$pid/comm), not orch-init"

# Delete: the process and its cgroup go away.
orchctl delete service echo > "$IT_DIR/delete.out" || fail "delete failed"
wait_until 20 "workload process gone" sh -c "! kill -0 $pid 2>/dev/null"
wait_until 10 "cgroup removed" sh -c "! [ -d '$cg_dir' ]"
[ "$(orchctl get allocs -o json | json_get "len(d['allocs'])")" = 0 ] || fail "allocations left after delete"
orchctl get services -o json | json_get "d['services']" | grep -q '^\[\]$' || fail "service left after delete"
echo PASS
