# Sourced, not run: removing what an orch node leaves on a host once its
# agent is stopped. Workloads outlive their agent by design, so they are
# killed through their cgroups. Used by deploy/quickstart.sh down and by
# the integration tests (tests/integration/lib.sh). Every function ignores
# what is already gone and always succeeds.

# orch_node_kill_cgroups PARENT: kills every process in each workload cgroup
# under PARENT (every v1 hierarchy and the v2 tree) and removes the cgroups.
orch_node_kill_cgroups() {
  local parent=$1 hier cg
  for hier in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
    [ -d "$hier" ] || continue
    for cg in "$hier"/*/; do
      [ -f "$cg/cgroup.procs" ] || continue
      # A cgroup whose last task is still exiting refuses rmdir (EBUSY)
      # for a moment after cgroup.procs reads empty: retry for up to 3 s.
      for _ in $(seq 30); do
        xargs -r kill -KILL < "$cg/cgroup.procs" 2>/dev/null || true
        rmdir "$cg" 2>/dev/null && break
        sleep 0.1
      done
    done
    rmdir "$hier" 2>/dev/null || true
  done
  return 0
}

# orch_node_remove_bridge BRIDGE: the veths and taps left on the bridge,
# then the bridge.
orch_node_remove_bridge() {
  local br=$1 l
  for l in $(ip -o link show master "$br" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$l" 2>/dev/null || true
  done
  ip link del "$br" 2>/dev/null || true
  return 0
}

# orch_node_umount_under DIR: every mount below DIR (workload overlays),
# deepest first, lazily.
orch_node_umount_under() {
  local dir=$1 m
  { grep -o " $dir/[^ ]*" /proc/self/mountinfo || true; } | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  return 0
}
