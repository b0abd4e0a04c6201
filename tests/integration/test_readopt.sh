#!/usr/bin/env bash
# Re-adoption: SIGKILL the agent and start it again on the same state
# directory. Every container still runs (same pids), was not restarted
# (restarts 0, same started_at), keeps its log, and is supervised again: a
# workload that exits afterwards is seen, with its exit code, and restarted
# by its policy.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
itest_start_cluster
itest_start_agent n1
itest_import_busybox n1

cat > "$IT_DIR/svc.json" <<'SPEC'
{"services": [
  {"name": "keep",
   "replicas": 2,
   "image": "busybox",
   "network": "host",
   "command": ["/bin/sh", "-c", "echo started-$(hostname); i=0; while [ ! -f /tmp/quit ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done; echo quitting; exit 42"],
   "resources": {"cpu": "100m", "memory": "32Mi"},
   "restart": {"policy": "on-failure", "max_restarts": 3, "backoff": "200ms"},
   "stop_grace": "2s"},
  {"name": "checked",
   "image": "busybox",
   "command": ["/bin/sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],
   "resources": {"cpu": "50m", "memory": "16Mi"},
   "health": {"http": {"port": 8080}, "interval": "300ms", "timeout": "1s", "failure_threshold": 2},
   "stop_grace": "1s"}
]}
SPEC
orchctl apply -f "$IT_DIR/svc.json" --wait > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply --wait failed"; }

allocs_json() { orchctl get allocs keep -o json; }
field() { allocs_json | json_get "[a['status']['$2'] for a in d['allocs'] if a['alloc_id'] == '$1'][0]"; }

wait_until 20 "both pids reported" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs keep -o json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d[\"allocs\"]) == 2 and all(a[\"status\"][\"pid\"] > 0 and a[\"status\"][\"state\"] == \"running\" for a in d[\"allocs\"]) else 1)'"
ids=$(allocs_json | json_get "' '.join(sorted(a['alloc_id'] for a in d['allocs']))")
declare -A pid started
for id in $ids; do
  pid[$id]=$(field "$id" pid)
  started[$id]=$(field "$id" started_at_ms)
  [ -d "/proc/${pid[$id]}" ] || fail "workload $id (pid ${pid[$id]}) is not running"
  wait_until 10 "$id writes its log" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT logs $id | grep -q tick-2"
done

checked=$(orchctl get allocs checked -o json | json_get "d['allocs'][0]['alloc_id']")
wait_until 20 "checked healthy" grep -q "alloc $checked: healthy" "$IT_DIR/agent-n1.log"
checked_pid=$(orchctl get allocs checked -o json | json_get "d['allocs'][0]['status']['pid']")

# SIGKILL: no chance to clean up anything.
log_lines=$(wc -l < "$IT_DIR/agent-n1.log")
apid=$(agent_pid n1)
kill -KILL "$apid"
wait "$apid" 2>/dev/null || true
sleep 1
for id in $ids; do
  kill -0 "${pid[$id]}" 2>/dev/null || fail "workload $id died with the agent"
done

itest_start_agent n1
grep -q "re-adopted, running" "$IT_DIR/agent-n1.log" || fail "the agent did not say it re-adopted"
grep -q "cleaned up .* left by a previous run" "$IT_DIR/agent-n1.log" && fail "the agent cleaned up instead of re-adopting"

# Same processes, not restarted, same start time, still running.
sleep 2
for id in $ids; do
  [ "$(field "$id" state)" = running ] || fail "$id is $(field "$id" state) after re-adoption"
  [ "$(field "$id" pid)" = "${pid[$id]}" ] || fail "$id has pid $(field "$id" pid), was ${pid[$id]}"
  [ "$(field "$id" restarts)" = 0 ] || fail "$id was restarted ($(field "$id" restarts))"
  [ "$(field "$id" started_at_ms)" = "${started[$id]}" ] || fail "$id started_at changed"
  kill -0 "${pid[$id]}" || fail "workload $id is gone"
done
[ "$(allocs_json | json_get "len(d['allocs'])")" = 2 ] || fail "the scheduler made new allocations"

# Health checks resume on the re-adopted workload (over its bridge address).
wait_until 20 "checked healthy again after re-adoption" sh -c "tail -n +$((log_lines + 1)) '$IT_DIR/agent-n1.log' | grep -q 'alloc $checked: healthy'"
[ "$(orchctl get allocs checked -o json | json_get "d['allocs'][0]['status']['pid']")" = "$checked_pid" ] ||
  fail "checked was restarted"

# Logs kept: the first line from before the agent's death is still there,
# and the workload kept writing.
first=$(echo $ids | cut -d' ' -f1)
orchctl logs "$first" > "$IT_DIR/logs1.out"
grep -q "started-$first" "$IT_DIR/logs1.out" || fail "log of $first lost its start"
n1=$(grep -c tick- "$IT_DIR/logs1.out")
sleep 1
n2=$(orchctl logs "$first" | grep -c tick-)
[ "$n2" -gt "$n1" ] || fail "log of $first does not grow ($n1 -> $n2)"

# Supervised again: make the workload exit 42 (not the agent's child any
# more). The agent sees it, reports the code, and on-failure restarts it.
touch "/proc/${pid[$first]}/root/tmp/quit"
wait_until 20 "$first restarted after exiting 42" sh -c "[ \"\$('$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs keep -o json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print([a[\"status\"][\"restarts\"] for a in d[\"allocs\"] if a[\"alloc_id\"] == \"$first\"][0])')\" = 1 ]"
grep -q "alloc $first: exited with code 42" "$IT_DIR/agent-n1.log" || fail "exit code 42 of $first not reported"
wait_until 10 "$first running again" sh -c "[ \"\$('$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs keep -o json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print([a[\"status\"][\"state\"] for a in d[\"allocs\"] if a[\"alloc_id\"] == \"$first\"][0])')\" = running ]"
[ "$(field "$first" pid)" != "${pid[$first]}" ] || fail "$first kept its old pid after the restart"
orchctl logs "$first" | grep -q quitting || fail "the log lost the output before the exit"

# The other one is untouched.
second=$(echo $ids | cut -d' ' -f2)
[ "$(field "$second" pid)" = "${pid[$second]}" ] || fail "$second was disturbed"

# And a second agent restart re-adopts the restarted one, counting kept.
apid=$(agent_pid n1)
kill -KILL "$apid"
wait "$apid" 2>/dev/null || true
itest_start_agent n1
sleep 2
[ "$(field "$first" restarts)" = 1 ] || fail "restart count lost across re-adoption: $(field "$first" restarts)"
[ "$(field "$first" state)" = running ] || fail "$first is not running after the second re-adoption"
echo PASS
