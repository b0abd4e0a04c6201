#!/usr/bin/env bash
# `orchctl plan` and `orchctl describe service` against a running scheduler
# with two agents of different capacities (cgroup parents limited to 330 MiB
# and 200 MiB) and different zone labels:
#   - plan shows where each replica would go and why, and the replicas that
#     cannot fit with the aggregated reason ("0/2 nodes: 2 insufficient
#     memory"), and changes nothing (no service, no allocation, no /orch/ key
#     in etcd besides the node records);
#   - plan -o json is parseable and agrees with the apply that follows (the
#     same number of replicas on each node);
#   - label.zone constraints steer placement, in plan and in apply;
#   - describe shows each allocation's node, isolation and placement reason,
#     and the pending replicas with their aggregated reason.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
itest_start_cluster

mib=$((1024 * 1024))
# make_parent NODE MIB : the agent's cgroup parent (the name lib.sh gives it)
# with a memory limit, which becomes the node's memory capacity.
make_parent() {
  local parent="orch-it-$$-$1"
  IT_CGROUP_PARENTS+=("$parent") # removed on exit even if the agent never starts
  if [ -d /sys/fs/cgroup/memory ]; then
    mkdir -p "/sys/fs/cgroup/memory/$parent"
    echo $(($2 * mib)) > "/sys/fs/cgroup/memory/$parent/memory.limit_in_bytes"
  else
    mkdir -p "/sys/fs/cgroup/$parent"
    echo "+memory" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    echo $(($2 * mib)) > "/sys/fs/cgroup/$parent/memory.max"
  fi
}
make_parent big 330
make_parent small 200
IT_AGENT_ARGS="--labels zone=a,size=big" itest_start_agent big
IT_AGENT_ARGS="--labels zone=b,size=small" itest_start_agent small
itest_import_busybox big
itest_import_busybox small

orchctl get nodes -o json > "$IT_DIR/nodes.json"
[ "$(json_get "sorted((n['node_id'], n['capacity']['memory_bytes'], n['labels'].get('zone')) for n in d['nodes'])" \
  < "$IT_DIR/nodes.json")" = "[('big', $((330 * mib)), 'a'), ('small', $((200 * mib)), 'b')]" ] ||
  fail "nodes do not report their cgroup capacity and labels: $(cat "$IT_DIR/nodes.json")"

etcd_keys() { ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINT" get --prefix "$1" --keys-only | sed '/^$/d'; }

# 10 replicas of 64Mi: 5 fit on big (330Mi), 3 on small (200Mi), 2 nowhere.
cat > "$IT_DIR/web.json" <<'SPEC'
{"name": "web", "replicas": 10, "image": "busybox",
 "command": ["/bin/sh", "-c", "exec sleep 1000"],
 "resources": {"cpu": "10m", "memory": "64Mi"}, "stop_grace": "1s"}
SPEC

# ---- plan, as text --------------------------------------------------------
orchctl plan -f "$IT_DIR/web.json" > "$IT_DIR/plan.out" 2>&1 || { cat "$IT_DIR/plan.out"; fail "plan failed"; }
grep -q "service/web would be created" "$IT_DIR/plan.out" || fail "plan does not say web would be created: $(cat "$IT_DIR/plan.out")"
[ "$(grep -cE '^web +([^ ]+ +)?big +container +[^ ]' "$IT_DIR/plan.out")" = 5 ] ||
  fail "plan text does not show 5 replicas on big as container with a reason: $(cat "$IT_DIR/plan.out")"
[ "$(grep -cE '^web +([^ ]+ +)?small +container +[^ ]' "$IT_DIR/plan.out")" = 3 ] ||
  fail "plan text does not show 3 replicas on small: $(cat "$IT_DIR/plan.out")"
grep -qE '^web +\(2 pending\) .*0/2 nodes: 2 insufficient memory' "$IT_DIR/plan.out" ||
  fail "plan text does not show the 2 unplaceable replicas with the aggregated reason: $(cat "$IT_DIR/plan.out")"

# ---- plan changed nothing ----------------------------------------------------
[ "$(orchctl get services -o json | json_get "len(d['services'])")" = 0 ] || fail "plan created a service"
[ "$(orchctl get allocs -o json | json_get "len(d['allocs'])")" = 0 ] || fail "plan created allocations"
[ -z "$(etcd_keys /orch/services/)" ] || fail "plan wrote /orch/services/: $(etcd_keys /orch/services/)"
# The engine ran on the real cluster state and must have given it all back.
[ "$(orchctl get nodes -o json | json_get "sorted((n['node_id'], n['allocated']['memory_bytes'], n['allocs']) for n in d['nodes'])")" = \
  "[('big', 0, 0), ('small', 0, 0)]" ] || fail "plan left resources allocated on the nodes: $(orchctl get nodes -o json)"
# (/orch/leader is the scheduler's own election key.)
others=$(etcd_keys /orch/ | grep -v -e '^/orch/nodes/' -e '^/orch/leader$' || true)
[ -z "$others" ] || fail "plan left /orch/ keys besides the nodes and the leader key: $others"

# ---- plan -o json --------------------------------------------------------------
orchctl plan -f "$IT_DIR/web.json" -o json > "$IT_DIR/plan.json" || fail "plan -o json failed"
planned=$(json_get "sorted(__import__('collections').Counter(p['node'] for p in d['placements'] if p['node']).items())" < "$IT_DIR/plan.json") ||
  fail "plan -o json is not JSON: $(cat "$IT_DIR/plan.json")"
[ "$planned" = "[('big', 5), ('small', 3)]" ] || fail "plan -o json places $planned, expected 5 on big and 3 on small"
[ "$(json_get "[c['action'] for c in d['changes'] if c['name'] == 'web']" < "$IT_DIR/plan.json")" = "['created']" ] ||
  fail "plan -o json does not report web as created: $(cat "$IT_DIR/plan.json")"
[ "$(json_get "sorted(set(p['isolation'] for p in d['placements'] if p['node']))" < "$IT_DIR/plan.json")" = "['container']" ] ||
  fail "plan -o json isolation is not container"
[ "$(json_get "all(p['reason'] for p in d['placements'])" < "$IT_DIR/plan.json")" = True ] ||
  fail "a planned placement has no reason"
[ "$(json_get "sorted(set(p['reason'] for p in d['placements'] if not p['node']))" < "$IT_DIR/plan.json")" = \
  "['0/2 nodes: 2 insufficient memory']" ] ||
  fail "plan -o json does not give the aggregated reason for the unplaced: $(cat "$IT_DIR/plan.json")"
[ "$(json_get "len([p for p in d['placements'] if not p['node']])" < "$IT_DIR/plan.json")" = 2 ] ||
  fail "plan -o json does not list 2 unplaced replicas"

# ---- constraints steer plan --------------------------------------------------
# zone_spec NAME REPLICAS MEMORY OPERATOR VALUE
zone_spec() {
  cat > "$IT_DIR/$1.json" <<SPEC
{"name": "$1", "replicas": $2, "image": "busybox",
 "command": ["/bin/sh", "-c", "exec sleep 1000"],
 "resources": {"cpu": "10m", "memory": "$3"}, "stop_grace": "1s",
 "constraints": [{"attribute": "label.zone", "operator": "$4", "value": "$5"}]}
SPEC
}
plan_nodes() { orchctl plan -f "$IT_DIR/$1.json" -o json | json_get "sorted(__import__('collections').Counter(p['node'] for p in d['placements']).items())"; }
zone_spec in-a 3 16Mi "=" a
[ "$(plan_nodes in-a)" = "[('big', 3)]" ] || fail "zone=a is not planned on big: $(plan_nodes in-a)"
zone_spec in-b 3 16Mi "=" b
[ "$(plan_nodes in-b)" = "[('small', 3)]" ] || fail "zone=b is not planned on small: $(plan_nodes in-b)"
zone_spec not-a 2 16Mi "!=" a
[ "$(plan_nodes not-a)" = "[('small', 2)]" ] || fail "zone!=a is not planned on small: $(plan_nodes not-a)"
zone_spec in-c 1 16Mi "=" c
orchctl plan -f "$IT_DIR/in-c.json" -o json > "$IT_DIR/plan-c.json"
[ "$(json_get "[(p['node'], p['reason']) for p in d['placements']]" < "$IT_DIR/plan-c.json")" = \
  "[('', '0/2 nodes: 2 not matching label.zone = c')]" ] ||
  fail "zone=c is not unplaceable for the constraint: $(cat "$IT_DIR/plan-c.json")"
orchctl plan -f "$IT_DIR/in-c.json" > "$IT_DIR/plan-c.out"
grep -qE '^in-c +\(1 pending\) .*0/2 nodes: 2 not matching label.zone = c' "$IT_DIR/plan-c.out" ||
  fail "plan text does not give the constraint reason: $(cat "$IT_DIR/plan-c.out")"
[ "$(orchctl get services -o json | json_get "len(d['services'])")" = 0 ] || fail "constraint plans created a service"

# ---- apply agrees with plan -----------------------------------------------------
orchctl apply -f "$IT_DIR/web.json" > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply failed"; }
running_web() { orchctl get allocs -o json | json_get "sum(1 for a in d['allocs'] if a['service'] == 'web' and a['status']['state'] == 'running')"; }
web_running_is_8() { [ "$(running_web)" = 8 ]; }
wait_until 60 "8 web replicas running" web_running_is_8
orchctl get allocs -o json > "$IT_DIR/allocs.json"
applied=$(json_get "sorted(__import__('collections').Counter(a['node'] for a in d['allocs'] if a['service'] == 'web').items())" < "$IT_DIR/allocs.json")
[ "$applied" = "$planned" ] || fail "apply placed $applied but plan said $planned"
[ "$(etcd_keys /orch/allocs/web/ | wc -l)" = 8 ] || fail "etcd does not hold the 8 web allocations"

# ---- describe --------------------------------------------------------------
orchctl describe service web > "$IT_DIR/describe.out" || fail "describe failed"
grep -qE '^Replicas: +10 desired, 8 running, 2 pending' "$IT_DIR/describe.out" ||
  fail "describe does not count 8 running and 2 pending: $(cat "$IT_DIR/describe.out")"
grep -qE '^Pending: +2 replicas: 0/2 nodes: 2 insufficient memory' "$IT_DIR/describe.out" ||
  fail "describe does not give the pending replicas' aggregated reason: $(cat "$IT_DIR/describe.out")"
for id in $(json_get "' '.join(a['alloc_id'] for a in d['allocs'] if a['service'] == 'web')" < "$IT_DIR/allocs.json"); do
  node=$(json_get "[a['node'] for a in d['allocs'] if a['alloc_id'] == '$id'][0]" < "$IT_DIR/allocs.json")
  reason=$(json_get "[a['reason'] for a in d['allocs'] if a['alloc_id'] == '$id'][0]" < "$IT_DIR/allocs.json")
  [ -n "$reason" ] || fail "allocation $id has no placement reason"
  grep -qE "^ +$id +$node +container +running .*$(printf '%s' "$reason" | sed 's/[][\.*^$()+?{}|/]/\\&/g')\$" "$IT_DIR/describe.out" ||
    fail "describe does not show $id on $node as container with reason \"$reason\": $(cat "$IT_DIR/describe.out")"
done
orchctl describe service web -o json > "$IT_DIR/describe.json" || fail "describe -o json failed"
[ "$(json_get "(d['service']['pending'], d['service']['pending_reason'], len(d['allocs']))" < "$IT_DIR/describe.json")" = \
  "(2, '0/2 nodes: 2 insufficient memory', 8)" ] || fail "describe -o json disagrees: $(cat "$IT_DIR/describe.json")"

# ---- plan on a cluster with allocations still changes nothing -----------------
sed 's/"replicas": 10/"replicas": 12/' "$IT_DIR/web.json" > "$IT_DIR/web12.json"
orchctl plan -f "$IT_DIR/web12.json" > "$IT_DIR/plan12.out" || fail "plan of a scale-up failed"
grep -q "service/web would be scaled" "$IT_DIR/plan12.out" || fail "plan does not say web would be scaled: $(cat "$IT_DIR/plan12.out")"
grep -qE '^web +\(4 pending\) .*0/2 nodes: 2 insufficient memory' "$IT_DIR/plan12.out" ||
  fail "plan of 12 does not show 4 pending: $(cat "$IT_DIR/plan12.out")"
[ "$(orchctl get services -o json | json_get "[(s['name'], s['replicas']) for s in d['services']]")" = "[('web', 10)]" ] ||
  fail "plan changed the service"
[ "$(etcd_keys /orch/allocs/ | wc -l)" = 8 ] || fail "plan changed the allocations in etcd"

# ---- constraints steer apply ------------------------------------------------------
# What is left: big 330-320 = 10Mi, small 200-192 = 8Mi. Two 4Mi replicas
# pinned to zone b both go to small, though big has more room left.
zone_spec pinned 2 4Mi "=" b
[ "$(plan_nodes pinned)" = "[('small', 2)]" ] || fail "pinned is not planned on small: $(plan_nodes pinned)"
orchctl apply -f "$IT_DIR/pinned.json" > "$IT_DIR/apply-pinned.out" 2>&1 || { cat "$IT_DIR/apply-pinned.out"; fail "apply pinned failed"; }
pinned_running() { orchctl describe service pinned | grep -qE '^Replicas: +2 desired, 2 running'; }
wait_until 30 "pinned placed" pinned_running
orchctl describe service pinned -o json > "$IT_DIR/pinned.json.out"
[ "$(json_get "sorted(a['node'] for a in d['allocs'])" < "$IT_DIR/pinned.json.out")" = "['small', 'small']" ] ||
  fail "zone=b allocations are not on small: $(cat "$IT_DIR/pinned.json.out")"
echo PASS
