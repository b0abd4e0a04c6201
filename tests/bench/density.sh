#!/usr/bin/env bash
# density.sh: N idle containers (default 500) on one node, with a real etcd,
# orch-scheduler and orch-agent (tests/integration/lib.sh), and what they
# cost while idle:
#   - the agent's resident memory (VmRSS, and what it is made of:
#     /proc/PID/smaps_rollup), before and after the containers start;
#   - the agent's CPU over IDLE seconds (default 60) with every container
#     running: utime+stime from /proc/PID/stat, as % of one core;
#   - host memory per container: the drop of MemAvailable from just before
#     the apply to when all are running, divided by N.
# Targets (issue 4): agent RSS < 10 MiB, idle agent CPU < 1% of a core.
#
#   sudo tests/bench/density.sh [--json]
#
# Environment: N=500, IDLE=60, NETWORK=bridge|host, HEARTBEAT=2s (the
# agent's default; the integration helpers use 1s), PROFILE=1 to sample the
# idle agent with perf and print where its CPU goes (adds perf's overhead).
#
# ORCH_BUILD_DIR picks the build (default: build/). The containers get the
# node bridge (a dedicated bridge and /22 so that 500 addresses fit) unless
# NETWORK=host. Needs root; exits 77 otherwise. Cleans up whatever happens.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ORCH_SOURCE_DIR=${ORCH_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
. "$ORCH_SOURCE_DIR/tests/integration/lib.sh"

json=0
[ "${1:-}" = "--json" ] && json=1
N=${N:-500}
IDLE=${IDLE:-60}
NETWORK=${NETWORK:-bridge}
HEARTBEAT=${HEARTBEAT:-2s}
PROFILE=${PROFILE:-0}
BRIDGE=orchdn$$
BRIDGE=${BRIDGE:0:15}

log() { [ $json = 1 ] || echo "# $*"; }

itest_init
density_cleanup() {
  local rc=$?
  orch_node_remove_bridge "$BRIDGE"
  itest_cleanup "$rc"
}
trap density_cleanup EXIT

# Enough file descriptors and pids for the daemons at this scale.
ulimit -n 65536 2>/dev/null || true
IT_NODE_TTL=30s IT_NODE_GRACE=30s itest_start_cluster
IT_AGENT_ARGS="--bridge $BRIDGE --bridge-subnet 10.89.0.0/22 --heartbeat-interval $HEARTBEAT" \
  itest_start_agent n1
itest_import_busybox n1
agent=$(agent_pid n1)

kb() { awk -v k="$2:" '$1 == k { print $2 }' "$1"; }
rss_kb() { kb "/proc/$agent/status" VmRSS; }
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$agent/stat"; }
running() {
  orchctl get allocs -o json 2>/dev/null |
    json_get "sum(1 for a in d['allocs'] if a['status']['state'] == 'running')" 2>/dev/null || echo 0
}

sleep 2
rss_empty=$(rss_kb)
sync
echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true
avail_before=$(kb /proc/meminfo MemAvailable)

cat > "$IT_DIR/idle.json" <<SPEC
{
  "name": "idle",
  "image": "busybox",
  "replicas": $N,
  "command": ["sleep", "1000000"],
  "resources": {"cpu": "1m", "memory": "8Mi"},
  "network": "$NETWORK",
  "restart": {"policy": "never"}
}
SPEC
t0=$SECONDS
orchctl apply -f "$IT_DIR/idle.json" > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply failed"; }
n=0
deadline=$((SECONDS + 900))
while [ $SECONDS -lt $deadline ]; do
  n=$(running)
  [ "$n" -ge "$N" ] && break
  sleep 2
done
[ "$n" -ge "$N" ] || fail "only $n of $N containers running after 900 s"
start_s=$((SECONDS - t0))
log "$N containers running after ${start_s} s"

# Settle (the last starts' page cache, the first heartbeats), then idle.
sleep 5
avail_after=$(kb /proc/meminfo MemAvailable)
# What the workloads' cgroups are charged (their memory, page cache and
# kernel objects), unaffected by the rest of the host.
parent_cg=${IT_CGROUP_PARENTS[0]}
cg_bytes=0
for f in "/sys/fs/cgroup/memory/$parent_cg/memory.usage_in_bytes" "/sys/fs/cgroup/$parent_cg/memory.current"; do
  if [ -f "$f" ]; then cg_bytes=$(cat "$f"); break; fi
done
cg_per_ctr_kb=$((cg_bytes / 1024 / N))
rss_full=$(rss_kb)
hz=$(getconf CLK_TCK)
c0=$(cpu_ticks)
if [ "$PROFILE" = 1 ] && command -v perf >/dev/null; then
  perf record -q -F 997 -g -p "$agent" -o "$IT_DIR/perf.data" -- sleep "$IDLE" >/dev/null 2>&1 || true
else
  sleep "$IDLE"
fi
c1=$(cpu_ticks)
rss_idle=$(rss_kb)
hwm=$(kb "/proc/$agent/status" VmHWM)
threads=$(kb "/proc/$agent/status" Threads)
fds=$(ls "/proc/$agent/fd" | wc -l)
cpu_pct=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "%.3f", d / hz / s * 100 }')
per_ctr_kb=$(( (avail_before - avail_after) / N ))
anon=$(kb "/proc/$agent/smaps_rollup" Pss_Anon)
file=$(kb "/proc/$agent/smaps_rollup" Pss_File)
n_end=$(running)
rss_ok=$([ "$rss_idle" -lt 10240 ] && echo true || echo false)
cpu_ok=$(awk -v c="$cpu_pct" 'BEGIN { print (c < 1.0) ? "true" : "false" }')

if [ $json = 1 ]; then
  printf '{"bench":"density","containers":%d,"network":"%s","start_all_s":%d,' "$N" "$NETWORK" "$start_s"
  printf '"agent_rss_empty_kib":%d,"agent_rss_full_kib":%d,"agent_rss_idle_kib":%d,"agent_hwm_kib":%d,' \
    "$rss_empty" "$rss_full" "$rss_idle" "$hwm"
  printf '"agent_pss_anon_kib":%d,"agent_pss_file_kib":%d,"agent_threads":%d,"agent_fds":%d,' \
    "$anon" "$file" "$threads" "$fds"
  printf '"idle_s":%d,"agent_idle_cpu_pct":%s,"host_mem_per_container_kib":%d,' "$IDLE" "$cpu_pct" "$per_ctr_kb"
  printf '"cgroup_mem_per_container_kib":%d,' "$cg_per_ctr_kb"
  printf '"still_running":%d,"target_rss_met":%s,"target_cpu_met":%s}\n' "$n_end" "$rss_ok" "$cpu_ok"
else
  echo "density: $N idle busybox containers (network $NETWORK), all running after ${start_s} s"
  echo "  agent RSS: ${rss_empty} KiB empty, ${rss_full} KiB with $N, ${rss_idle} KiB after ${IDLE} s idle" \
    "(HWM ${hwm} KiB; Pss anon ${anon} KiB, file ${file} KiB; ${threads} threads, ${fds} fds)" \
    "-> target < 10240 KiB: $([ "$rss_ok" = true ] && echo met || echo missed)"
  echo "  agent CPU over ${IDLE} s idle: ${cpu_pct}% of one core ($((c1 - c0)) ticks at ${hz} Hz)" \
    "-> target < 1%: $([ "$cpu_ok" = true ] && echo met || echo missed)"
  echo "  host memory per container: ${per_ctr_kb} KiB (MemAvailable ${avail_before} -> ${avail_after} KiB;" \
    "the rest of the host moves it too); charged to the workloads' cgroups: ${cg_per_ctr_kb} KiB each"
  echo "  still running at the end: $n_end of $N"
fi
if [ "$PROFILE" = 1 ] && [ -f "$IT_DIR/perf.data" ]; then
  echo "# where the idle agent's CPU goes (perf, self time):"
  perf report -q -i "$IT_DIR/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
    grep -v '^$' | grep '%' | head -25 | sed 's/^/#   /'
fi
