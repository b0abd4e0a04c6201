#!/usr/bin/env bash
# Three agents, each in its own network namespace with its own address,
# connected to one scheduler: a 6-replica service is spread over all three
# as their cgroup-reported capacity dictates, and `get nodes` shows three
# ready nodes with that capacity.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
IT_AGENT_LISTEN=0.0.0.0
itest_start_cluster

tag=$(( $$ % 10000 ))
# A subnet of this run's own, so that leftovers of a killed run cannot
# capture its traffic.
net="10.$(( 64 + $$ % 128 ))"
ip -br addr | grep -q " $net\." && fail "subnet $net.0.0/16 is in use on this host"
mib=$((1024 * 1024))
for i in 1 2 3; do
  ns="orchit-$tag-n$i"
  ip netns add "$ns" || fail "cannot create netns $ns"
  IT_NETNS+=("$ns")
  ip link add "oh${tag}n$i" type veth peer name eth0 netns "$ns"
  ip addr add "$net.$i.1/24" dev "oh${tag}n$i"
  ip link set "oh${tag}n$i" up
  ip -n "$ns" addr add "$net.$i.2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  # Each node's agent gets a cgroup parent limited to 160 MiB: its capacity.
  parent="orch-it-$$-n$i"
  if [ -d /sys/fs/cgroup/memory ]; then
    mkdir -p "/sys/fs/cgroup/memory/$parent"
    echo $((160 * mib)) > "/sys/fs/cgroup/memory/$parent/memory.limit_in_bytes"
  else
    mkdir -p "/sys/fs/cgroup/$parent"
    echo "+memory" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    echo $((160 * mib)) > "/sys/fs/cgroup/$parent/memory.max"
  fi
  itest_start_agent "n$i" "$ns" "$net.$i.1"
  itest_import_busybox "n$i"
done

orchctl get nodes -o json > "$IT_DIR/nodes.json"
[ "$(json_get "sorted((n['node_id'], n['state']) for n in d['nodes'])" < "$IT_DIR/nodes.json")" = \
  "[('n1', 'ready'), ('n2', 'ready'), ('n3', 'ready')]" ] || fail "expected three ready nodes: $(cat "$IT_DIR/nodes.json")"
[ "$(json_get "sorted(n['address'] for n in d['nodes'])" < "$IT_DIR/nodes.json")" = \
  "['$net.1.2', '$net.2.2', '$net.3.2']" ] || fail "nodes do not report their own addresses"
[ "$(json_get "set(n['capacity']['memory_bytes'] for n in d['nodes'])" < "$IT_DIR/nodes.json")" = \
  "{$((160 * mib))}" ] || fail "capacity is not the cgroup limit of 160Mi"

cat > "$IT_DIR/svc.json" <<'SPEC'
{"name": "web", "replicas": 6, "image": "busybox",
 "command": ["/bin/sh", "-c", "exec sleep 1000"],
 "resources": {"cpu": "50m", "memory": "64Mi"}}
SPEC
orchctl apply -f "$IT_DIR/svc.json" --wait > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply failed"; }
orchctl get allocs -o json > "$IT_DIR/allocs.json"
dist=$(json_get "sorted(__import__('collections').Counter(a['node'] for a in d['allocs']).items())" < "$IT_DIR/allocs.json")
[ "$dist" = "[('n1', 2), ('n2', 2), ('n3', 2)]" ] || fail "replicas not spread by capacity: $dist"
[ "$(json_get "all(a['status']['state'] == 'running' for a in d['allocs'])" < "$IT_DIR/allocs.json")" = True ] ||
  fail "not all replicas are running"

# A seventh replica does not fit anywhere: it stays pending with the reason.
sed 's/"replicas": 6/"replicas": 7/' "$IT_DIR/svc.json" > "$IT_DIR/svc7.json"
orchctl apply -f "$IT_DIR/svc7.json" > "$IT_DIR/apply7.out" 2>&1 || true
orchctl describe service web > "$IT_DIR/describe.out"
grep -q "insufficient memory" "$IT_DIR/describe.out" || fail "pending reason missing: $(cat "$IT_DIR/describe.out")"
echo PASS
