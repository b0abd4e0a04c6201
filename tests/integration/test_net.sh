#!/usr/bin/env bash
# The node network on real rtnetlink and nftables (agent/net.h): bridge,
# veth into a container's namespace, published ports reached from another
# namespace acting as a client host, masquerading, detach, tap devices, and
# the cost of an attach. net_check makes its own network namespace as the
# node, so the host's network is never changed. Needs root; skips (77)
# otherwise. NET_CHECK_SUBNET / NET_CHECK_CLIENT_SUBNET pick other subnets.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "# skip: needs root"
  exit 77
fi
bin="${ORCH_BUILD_DIR:?ORCH_BUILD_DIR is not set}/tests/unit/net_check"
if [ ! -x "$bin" ]; then
  echo "net_check is not built: $bin" >&2
  exit 1
fi
exec "$bin"
