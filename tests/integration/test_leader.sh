#!/usr/bin/env bash
# Two schedulers on one etcd (DESIGN.md §8): one leads (/orch/leader on an
# etcd lease), the other stands by and refuses clients with the leader's
# name. An agent and orchctl are given both addresses.
#   - SIGKILL the leader: the standby takes over once the lease expires
#     (--leader-ttl 2s), with the whole state; the agent moves to it and
#     its workload is not restarted; a scale-up works.
#   - The old scheduler, started again, stands by.
#   - SIGTERM the leader: it gives the lease back (exit 0) and the standby
#     leads at once, without waiting for the TTL.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
etcd_start "$IT_DIR" || fail "etcd did not start"

api_a=$(itest_free_port); agents_a=$(itest_free_port); metrics_a=$(itest_free_port)
api_b=$(itest_free_port); agents_b=$(itest_free_port); metrics_b=$(itest_free_port)
declare -A pid
start_sched() { # NAME API AGENTS METRICS
  "$BIN/orch-scheduler" --etcd "$ETCD_ENDPOINT" --name "$1" --api-listen "127.0.0.1:$2" \
    --agent-listen "127.0.0.1:$3" --metrics-listen "127.0.0.1:$4" --leader-ttl 2s \
    --node-ttl 3s --node-grace 2s >>"$IT_DIR/scheduler-$1.log" 2>&1 &
  pid[$1]=$!
  IT_PIDS+=($!)
}
logged() { grep -q "$2" "$IT_DIR/scheduler-$1.log"; }
both="127.0.0.1:$api_a,127.0.0.1:$api_b"
octl() { "$BIN/orchctl" --server "$both" "$@"; }
# lib.sh's helpers talk to "127.0.0.1:$IT_API_PORT": give them both.
IT_API_PORT="$api_a,127.0.0.1:$api_b"
IT_AGENT_PORT="$agents_a,127.0.0.1:$agents_b"

start_sched sched-a "$api_a" "$agents_a" "$metrics_a"
wait_until 20 "sched-a leads" logged sched-a "leading"
start_sched sched-b "$api_b" "$agents_b" "$metrics_b"
wait_until 20 "sched-b stands by" logged sched-b "standing by: sched-a"

# The standby refuses, naming the leader; the list finds the leader.
if out=$("$BIN/orchctl" --server "127.0.0.1:$api_b" get nodes 2>&1); then
  fail "the standby answered: $out"
fi
case $out in
  *"scheduler sched-b is standing by: sched-a (orchctl at 127.0.0.1:$api_a"*) ;;
  *) fail "the standby's refusal does not name the leader: $out" ;;
esac
octl get nodes >/dev/null || fail "orchctl with both addresses did not reach the leader"
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
[ "$(metric "$metrics_a" orch_scheduler_leader)" = 1 ] || fail "sched-a's metrics do not say it leads"
[ "$(metric "$metrics_b" orch_scheduler_leader)" = 0 ] || fail "sched-b's metrics do not say it stands by"
echo "ok: sched-a leads, sched-b stands by and says who leads (and so do their /metrics)"

itest_start_agent n1
itest_import_busybox n1
cat > "$IT_DIR/web.json" <<'SPEC'
{
  "name": "web",
  "image": "busybox",
  "network": "host",
  "replicas": 1,
  "command": ["sleep", "100000"],
  "resources": {"cpu": "50m", "memory": "16Mi"},
  "stop_grace": "1s"
}
SPEC
octl apply -f "$IT_DIR/web.json" --wait >/dev/null || fail "apply web"
alloc=$(octl get allocs web -o json | json_get "d['allocs'][0]['alloc_id']")
wpid=$(awk '$1 == "pid" {print $2}' "$IT_DIR/n1/allocs/$alloc/state")
[ -n "$wpid" ] && kill -0 "$wpid" || fail "no workload process for $alloc"

# 1. The leader dies: the standby takes over when the lease expires.
t0=$SECONDS
kill -KILL "${pid[sched-a]}"
wait "${pid[sched-a]}" 2>/dev/null || true
wait_until 20 "sched-b leads" logged sched-b "leading"
echo "ok: sched-b took over $((SECONDS - t0)) s after sched-a was killed (lease TTL 2 s)"
running() { [ "$(octl get allocs web -o json | json_get "sum(1 for a in d['allocs'] if a['status']['state'] == 'running')")" = "$1" ]; }
wait_until 20 "n1 registered with sched-b" grep -q "registered with scheduler 127.0.0.1:$agents_b" "$IT_DIR/agent-n1.log"
wait_until 20 "web running under sched-b" running 1
[ "$(octl get allocs web -o json | json_get "d['allocs'][0]['alloc_id']")" = "$alloc" ] ||
  fail "sched-b does not know allocation $alloc"
kill -0 "$wpid" 2>/dev/null || fail "the workload was restarted (pid $wpid gone)"
sed 's/"replicas": 1/"replicas": 2/' "$IT_DIR/web.json" > "$IT_DIR/web2.json"
octl apply -f "$IT_DIR/web2.json" --wait >/dev/null || fail "scale-up under sched-b"
wait_until 20 "two replicas running" running 2
[ "$(metric "$metrics_b" orch_scheduler_leader)" = 1 ] || fail "sched-b's metrics do not say it leads"
[ "$(metric "$metrics_b" 'orch_allocations{state="running"}')" = 2 ] ||
  fail "sched-b's metrics do not count 2 running allocations"
echo "ok: the agent moved to sched-b; the workload kept running (pid $wpid); a scale-up works"

# 2. The old leader comes back as a standby.
start_sched sched-a "$api_a" "$agents_a" "$metrics_a"
wait_until 20 "sched-a stands by" logged sched-a "standing by: sched-b"
echo "ok: sched-a, started again, stands by"

# 3. A clean stop hands over at once.
t0=$SECONDS
kill -TERM "${pid[sched-b]}"
rc=0
wait "${pid[sched-b]}" || rc=$?
[ $rc = 0 ] || fail "sched-b exited $rc after SIGTERM"
logged sched-b "gave up the leadership" || fail "sched-b did not give up its lease"
wait_until 10 "sched-a leads again" sh -c "grep -c leading '$IT_DIR/scheduler-sched-a.log' | grep -q '^2$'"
took=$((SECONDS - t0))
[ $took -le 3 ] || fail "the handover after SIGTERM took $took s"
wait_until 20 "web running under sched-a" running 2
kill -0 "$wpid" 2>/dev/null || fail "the workload was restarted in the handover"
echo "ok: SIGTERM handed the leadership to sched-a in ${took} s; both replicas still running"
echo PASS
