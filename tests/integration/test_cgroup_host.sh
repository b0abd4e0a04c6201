#!/usr/bin/env bash
# The cgroup manager on this host's real cgroups (v1 or v2, whichever the
# host has): limits, attach, usage, OOM kills, pids limit, destroy.
# Needs root; skips (77) otherwise.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "# skip: needs root"
  exit 77
fi
bin="${ORCH_BUILD_DIR:?ORCH_BUILD_DIR is not set}/tests/unit/cg_check"
if [ ! -x "$bin" ]; then
  echo "cg_check is not built: $bin" >&2
  exit 1
fi
exec "$bin"
