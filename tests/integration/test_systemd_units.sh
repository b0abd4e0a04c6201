#!/usr/bin/env bash
# The systemd units are valid (systemd-analyze verify) and keep the
# properties the agent relies on: workloads survive an agent restart
# (KillMode=process) and the agent owns its cgroup subtree (Delegate=yes).
set -euo pipefail
ROOT=${ORCH_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${ORCH_BUILD_DIR:-$ROOT/build}/bin
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for u in orch-scheduler orch-agent; do
  # verify checks that ExecStart's program exists: point it at the build.
  sed "s|/usr/local/bin/|$BIN/|" "$ROOT/deploy/systemd/$u.service" > "$dir/$u.service"
done
out=$(cd "$dir" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no ./orch-scheduler.service ./orch-agent.service 2>&1 | grep -v -e 'Failed to connect to bus' -e 'systemd is not running' || true)
if [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify:"; echo "$out"; exit 1
fi
grep -qx 'Delegate=yes' "$ROOT/deploy/systemd/orch-agent.service" || { echo "FAIL: agent unit lacks Delegate=yes"; exit 1; }
grep -qx 'KillMode=process' "$ROOT/deploy/systemd/orch-agent.service" || { echo "FAIL: agent unit lacks KillMode=process"; exit 1; }
echo PASS
