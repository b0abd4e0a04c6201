#!/usr/bin/env bash
# SIGKILL the scheduler and start it again: services and allocations are all
# still there, and the containers were not restarted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
itest_start_cluster
itest_start_agent n1
itest_import_busybox n1

cat > "$IT_DIR/svc.json" <<'SPEC'
{"name": "keep", "replicas": 2, "image": "busybox",
 "command": ["/bin/sh", "-c", "echo started; exec sleep 1000"],
 "resources": {"cpu": "100m", "memory": "16Mi"}}
SPEC
orchctl apply -f "$IT_DIR/svc.json" --wait > /dev/null || fail "apply failed"
wait_until 10 "pids reported" sh -c "[ \$('$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs -o json | grep -c '\"pid\": [1-9]') = 2 ]"
orchctl get allocs -o json | json_get "sorted((a['alloc_id'], a['status']['pid'], a['status']['started_at_ms']) for a in d['allocs'])" > "$IT_DIR/before"

kill -KILL "$IT_SCHED_PID"
wait "$IT_SCHED_PID" 2>/dev/null || true
itest_start_scheduler
wait_until 20 "node n1 ready again" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get nodes | grep -q '^n1 .*ready'"
wait_until 10 "allocations running" sh -c "[ \$('$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs -o json | grep -c '\"state\": \"running\"') = 2 ]"

[ "$(orchctl get services -o json | json_get "[s['name'] for s in d['services']]")" = "['keep']" ] ||
  fail "service lost"
orchctl get allocs -o json | json_get "sorted((a['alloc_id'], a['status']['pid'], a['status']['started_at_ms']) for a in d['allocs'])" > "$IT_DIR/after"
diff "$IT_DIR/before" "$IT_DIR/after" || fail "allocations changed across the scheduler restart"
for pid in $(orchctl get allocs -o json | json_get "' '.join(str(a['status']['pid']) for a in d['allocs'])"); do
  kill -0 "$pid" || fail "container $pid is gone"
done
# The restarted scheduler still places: scale up by one.
sed 's/"replicas": 2/"replicas": 3/' "$IT_DIR/svc.json" > "$IT_DIR/svc3.json"
orchctl apply -f "$IT_DIR/svc3.json" --wait > /dev/null || fail "scale-up after restart failed"
[ "$(orchctl get allocs -o json | json_get "len(d['allocs'])")" = 3 ] || fail "scale-up did not add one"
echo PASS
