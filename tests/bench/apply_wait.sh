#!/usr/bin/env bash
# Time from `orchctl apply --wait` to running for one busybox container on a
# local one-node cluster (real etcd, scheduler, agent), N times (default 20).
# Prints the runs, then the median and p90 for people and as JSON.
#
#   sudo ORCH_BUILD_DIR=build tests/bench/apply_wait.sh [N]
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
runs=${1:-20}
itest_init
itest_start_cluster
itest_start_agent bench
itest_import_busybox bench

times=()
for i in $(seq "$runs"); do
  cat > "$IT_DIR/svc.json" <<SPEC
{"name": "bench-$i", "image": "busybox", "command": ["/bin/sh", "-c", "exec sleep 1000"],
 "resources": {"cpu": "10m", "memory": "8Mi"}, "stop_grace": "1s"}
SPEC
  start=$(date +%s%N)
  orchctl apply -f "$IT_DIR/svc.json" --wait > /dev/null || fail "apply $i failed"
  end=$(date +%s%N)
  times+=($(( (end - start) / 1000 )))
  orchctl delete service "bench-$i" > /dev/null
done
printf '%s\n' "${times[@]}" | sort -n > "$IT_DIR/times"
median=$(awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}' "$IT_DIR/times")
p90=$(awk '{a[NR]=$1} END {i=int(NR*0.9+0.999); print a[i]}' "$IT_DIR/times")
min=$(head -1 "$IT_DIR/times"); max=$(tail -1 "$IT_DIR/times")
echo "orchctl apply --wait -> running, $runs runs (ms): $(awk '{printf "%.1f ", $1/1000}' "$IT_DIR/times")"
awk -v m="$median" -v p="$p90" -v lo="$min" -v hi="$max" \
  'BEGIN {printf "median %.1f ms  p90 %.1f ms  min %.1f ms  max %.1f ms\n", m/1000, p/1000, lo/1000, hi/1000}'
printf '{"bench": "apply_wait", "runs": %d, "median_us": %d, "p90_us": %d, "min_us": %d, "max_us": %d}\n' \
  "$runs" "${median%.*}" "$p90" "$min" "$max"
