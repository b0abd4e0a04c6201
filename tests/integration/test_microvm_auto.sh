#!/usr/bin/env bash
# isolation "auto" through the whole system: the scheduler decides per
# workload, and the agent runs what it decided.
#  - tenant b next to tenant a's containers on the only node: a microVM
#    (containers of two tenants never share a kernel), really booted;
#  - tenant b alone on an empty node: a container;
#  - "untrusted": true: a microVM even on an empty node.
# TCG boots take seconds: the waits are long.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
cache=${ORCH_VM_CACHE:-/var/cache/orch}
"$ORCH_SOURCE_DIR/deploy/fetch-guest-kernel.sh" "$cache" >/dev/null ||
  { echo "SKIP: cannot fetch the guest kernel"; exit 77; }
export ORCH_GUEST_KERNEL_DIR="$cache/guest-kernel"

itest_start_cluster
itest_start_agent n1
itest_import_busybox n1
orchctl get nodes | grep -q "^n1 .*microvm" || fail "n1 does not offer the microvm runtime"

svc() { # svc NAME TENANT [EXTRA_JSON]
  printf '{"name": "%s", "tenant": "%s", "isolation": "auto", "image": "busybox", %s
  "command": ["/bin/sh", "-c", "echo up; exec sleep 1000"], "network": "host",
  "resources": {"cpu": "100m", "memory": "96Mi"}, "stop_grace": "1s"}\n' "$1" "$2" "${3:-}"
}
iso_of() { orchctl get allocs "$1" -o json | json_get "d['allocs'][0]['isolation']"; }
reason_of() { orchctl get allocs "$1" -o json | json_get "d['allocs'][0]['reason']"; }

# Tenant a's container, then tenant b on the same (only) node.
svc ca a > "$IT_DIR/a.json"
orchctl apply -f "$IT_DIR/a.json" --wait > /dev/null || fail "tenant a's service did not start"
[ "$(iso_of ca)" = container ] || fail "tenant a alone should run as a container, got $(iso_of ca)"
svc vb b > "$IT_DIR/b.json"
orchctl apply -f "$IT_DIR/b.json" --wait --wait-timeout 120s > "$IT_DIR/b.out" 2>&1 ||
  { cat "$IT_DIR/b.out"; fail "tenant b's service did not start"; }
[ "$(iso_of vb)" = microvm ] || fail "tenant b next to tenant a should be a microVM, got $(iso_of vb)"
reason_of vb | grep -q "tenant" || fail "the placement reason does not say why: $(reason_of vb)"
orchctl get allocs vb -o json | json_get "d['allocs'][0]['status']['vmm']" | grep -q qemu ||
  fail "the allocation does not report a VMM"
orchctl describe service vb | grep -q "microvm" || fail "describe does not show the isolation"

# An empty node: tenant b as a container; untrusted as a microVM.
orchctl delete service ca > /dev/null
orchctl delete service vb > /dev/null
wait_until 60 "node empty" sh -c "[ \$('$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs -o json | grep -c '\"alloc_id\"') = 0 ]"
svc cb b > "$IT_DIR/b2.json"
orchctl apply -f "$IT_DIR/b2.json" --wait > /dev/null || fail "tenant b alone did not start"
[ "$(iso_of cb)" = container ] || fail "tenant b on an empty node should be a container, got $(iso_of cb)"
svc ub b '"untrusted": true,' > "$IT_DIR/u.json"
orchctl apply -f "$IT_DIR/u.json" > /dev/null || fail "apply of the untrusted service failed"
[ "$(iso_of ub)" = microvm ] || fail "an untrusted workload should be a microVM, got $(iso_of ub)"
reason_of ub | grep -q "untrusted" || fail "the reason does not name untrusted: $(reason_of ub)"
echo PASS
