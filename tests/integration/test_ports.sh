#!/usr/bin/env bash
# A bridge-networked service's published port answers on its node's address
# from another host: the node is a network namespace with its own agent and
# bridge, the client another namespace wired only to the node.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
IT_AGENT_LISTEN=0.0.0.0
itest_start_cluster

tag=$(( $$ % 10000 ))
net="10.$(( 64 + $$ % 128 ))"
ip -br addr | grep -q " $net\." && fail "subnet $net.0.0/16 is in use on this host"
node_ns="orchit-$tag-node"
client_ns="orchit-$tag-client"
ip netns add "$node_ns"; IT_NETNS+=("$node_ns")
ip netns add "$client_ns"; IT_NETNS+=("$client_ns")
# Node <-> host, for the scheduler.
ip link add "oh${tag}n" type veth peer name eth0 netns "$node_ns"
ip addr add "$net.1.1/24" dev "oh${tag}n"; ip link set "oh${tag}n" up
ip -n "$node_ns" addr add "$net.1.2/24" dev eth0; ip -n "$node_ns" link set eth0 up
ip -n "$node_ns" link set lo up
# Client <-> node, and nothing else: the client has no route to the bridge.
ip -n "$node_ns" link add eth1 type veth peer name eth0 netns "$client_ns"
ip -n "$node_ns" addr add "$net.3.1/24" dev eth1; ip -n "$node_ns" link set eth1 up
ip -n "$client_ns" addr add "$net.3.2/24" dev eth0; ip -n "$client_ns" link set eth0 up
ip -n "$client_ns" link set lo up

IT_AGENT_ARGS="--bridge orchit$tag --bridge-subnet $net.200.0/24"
itest_start_agent web-node "$node_ns" "$net.1.1"
itest_import_busybox web-node

cat > "$IT_DIR/svc.json" <<'SPEC'
{"name": "site", "image": "busybox",
 "command": ["/bin/sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"],
 "resources": {"cpu": "50m", "memory": "16Mi"},
 "ports": [{"name": "http", "port": 8080}],
 "stop_grace": "1s"}
SPEC
orchctl apply -f "$IT_DIR/svc.json" --wait > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply failed"; }
orchctl get allocs -o json > "$IT_DIR/allocs.json"
alloc=$(json_get "d['allocs'][0]['alloc_id']" < "$IT_DIR/allocs.json")
host_port=$(json_get "d['allocs'][0]['ports'][0]['host_port']" < "$IT_DIR/allocs.json")
addr=$(json_get "d['allocs'][0]['status']['address']" < "$IT_DIR/allocs.json")
[ "$host_port" -ge 30000 ] && [ "$host_port" -le 32767 ] || fail "host port $host_port is not from the range"
case "$addr" in "$net.200."*) ;; *) fail "workload address $addr is not on the node bridge" ;; esac
orchctl get allocs | grep -q ":$host_port->8080" || fail "get allocs does not show the published port"

# From the client host, through the node's address.
wait_until 10 "published port answers" \
  sh -c "nsenter --net=/var/run/netns/$client_ns curl -sf --max-time 2 http://$net.3.1:$host_port/ | grep -q hello-from-$alloc"

# A second replica gets another host port; both answer.
sed 's/"name": "site",/"name": "site", "replicas": 2,/' "$IT_DIR/svc.json" > "$IT_DIR/svc2.json"
orchctl apply -f "$IT_DIR/svc2.json" --wait > /dev/null || fail "scale-up failed"
ports=$(orchctl get allocs -o json | json_get "' '.join(str(a['ports'][0]['host_port']) for a in d['allocs'])")
[ "$(echo $ports | tr ' ' '\n' | sort -u | wc -l)" = 2 ] || fail "replicas share a host port: $ports"
for p in $ports; do
  wait_until 10 "port $p answers" \
    sh -c "nsenter --net=/var/run/netns/$client_ns curl -sf --max-time 2 http://$net.3.1:$p/ | grep -q hello-from-site-"
done

# Deleting the service closes the port.
orchctl delete service site > /dev/null
wait_until 15 "port closed after delete" \
  sh -c "! nsenter --net=/var/run/netns/$client_ns curl -sf --max-time 1 http://$net.3.1:$host_port/"
# The agent removes the forwarding rules once the workload has exited.
wait_until 15 "DNAT rules removed after delete" \
  sh -c "! ip netns exec $node_ns nft list table ip orch 2>/dev/null | grep -q $alloc"
echo PASS
