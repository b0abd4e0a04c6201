#!/usr/bin/env bash
# A long-running microVM service with a published port answers on its node's
# address from another host: the node is a network namespace with its own
# agent and bridge (the VM's tap is on it), the client another namespace
# wired only to the node. Deleting the service closes the port. The guest
# kernel is fetched into $ORCH_VM_CACHE (default /var/cache/orch); TCG boots
# take seconds, the waits are long.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
cache=${ORCH_VM_CACHE:-/var/cache/orch}
"$ORCH_SOURCE_DIR/deploy/fetch-guest-kernel.sh" "$cache" >/dev/null ||
  { echo "SKIP: cannot fetch the guest kernel"; exit 77; }
export ORCH_GUEST_KERNEL_DIR="$cache/guest-kernel"
IT_AGENT_LISTEN=0.0.0.0
itest_start_cluster

tag=$(( $$ % 10000 ))
net="10.$(( 64 + ($$ + 7) % 128 ))"
ip -br addr | grep -q " $net\." && fail "subnet $net.0.0/16 is in use on this host"
node_ns="orchvm-$tag-node"
client_ns="orchvm-$tag-client"
ip netns add "$node_ns"; IT_NETNS+=("$node_ns")
ip netns add "$client_ns"; IT_NETNS+=("$client_ns")
ip link add "vh${tag}n" type veth peer name eth0 netns "$node_ns"
ip addr add "$net.1.1/24" dev "vh${tag}n"; ip link set "vh${tag}n" up
ip -n "$node_ns" addr add "$net.1.2/24" dev eth0; ip -n "$node_ns" link set eth0 up
ip -n "$node_ns" link set lo up
ip -n "$node_ns" link add eth1 type veth peer name eth0 netns "$client_ns"
ip -n "$node_ns" addr add "$net.3.1/24" dev eth1; ip -n "$node_ns" link set eth1 up
ip -n "$client_ns" addr add "$net.3.2/24" dev eth0; ip -n "$client_ns" link set eth0 up
ip -n "$client_ns" link set lo up

IT_AGENT_ARGS="--bridge orchvm$tag --bridge-subnet $net.200.0/24"
itest_start_agent vm-node "$node_ns" "$net.1.1"
itest_import_busybox vm-node
grep -q "runtime microvm is not available" "$IT_DIR/agent-vm-node.log" &&
  fail "the agent did not enable the microvm runtime"

cat > "$IT_DIR/svc.json" <<'SPEC'
{"name": "vmsite", "image": "busybox", "isolation": "microvm",
 "command": ["/bin/sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"],
 "resources": {"cpu": "1", "memory": "128Mi"},
 "ports": [{"name": "http", "port": 8080}],
 "stop_grace": "5s"}
SPEC
orchctl apply -f "$IT_DIR/svc.json" > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply failed"; }
wait_until 60 "vmsite running" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs -o json | grep -q '\"state\": *\"running\"'"
orchctl get allocs -o json > "$IT_DIR/allocs.json"
alloc=$(json_get "d['allocs'][0]['alloc_id']" < "$IT_DIR/allocs.json")
host_port=$(json_get "d['allocs'][0]['ports'][0]['host_port']" < "$IT_DIR/allocs.json")
addr=$(json_get "d['allocs'][0]['status']['address']" < "$IT_DIR/allocs.json")
[ "$(json_get "d['allocs'][0]['isolation']" < "$IT_DIR/allocs.json")" = microvm ] || fail "not placed as a microVM"
case "$addr" in "$net.200."*) ;; *) fail "VM address '$addr' is not on the node bridge" ;; esac

wait_until 180 "the microVM's published port answers from the client host" \
  sh -c "nsenter --net=/var/run/netns/$client_ns curl -sf --max-time 2 http://$net.3.1:$host_port/ | grep -q hello-from-$alloc"
echo "ok - microVM $alloc ($addr) answers on $net.3.1:$host_port from another namespace"

orchctl delete service vmsite > /dev/null
wait_until 30 "port closed after delete" \
  sh -c "! nsenter --net=/var/run/netns/$client_ns curl -sf --max-time 1 http://$net.3.1:$host_port/"
wait_until 30 "the VM's tap removed after delete" sh -c "! ip -n '$node_ns' link show | grep -q '$alloc'"
echo PASS
