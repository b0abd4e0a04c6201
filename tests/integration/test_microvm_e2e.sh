#!/usr/bin/env bash
# MicroVMs through the whole system (orchctl -> scheduler -> agent -> QEMU):
#  - a workload with "isolation": "microvm" prints `uname -r` (the guest
#    kernel's version, not the host's) and exits 3: the allocation reports
#    exit code 3 and the output is in `orchctl logs`;
#  - get allocs -o json and describe show the VMM and the guest kernel;
#  - a long-running microVM survives an agent SIGKILL + restart (same VMM
#    pid, not restarted), and deleting its service afterwards stops it
#    gracefully through the guest init (its TERM trap runs).
# The guest kernel is fetched into $ORCH_VM_CACHE (default /var/cache/orch)
# and handed to the agent with ORCH_GUEST_KERNEL_DIR. TCG boots take
# seconds: the waits are long.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }
cache=${ORCH_VM_CACHE:-/var/cache/orch}
"$ORCH_SOURCE_DIR/deploy/fetch-guest-kernel.sh" "$cache" >/dev/null ||
  { echo "SKIP: cannot fetch the guest kernel"; exit 77; }
export ORCH_GUEST_KERNEL_DIR="$cache/guest-kernel"
guest_version=$(cat "$cache/guest-kernel/current")

itest_start_cluster
itest_start_agent n1
itest_import_busybox n1
grep -q "runtime microvm is not available" "$IT_DIR/agent-n1.log" &&
  fail "the agent did not enable the microvm runtime"

cat > "$IT_DIR/svc.json" <<'SPEC'
{"services": [
  {"name": "vmexit",
   "image": "busybox",
   "isolation": "microvm",
   "network": "host",
   "command": ["/bin/sh", "-c", "echo guest-kernel=$(uname -r); exit 3"],
   "resources": {"cpu": "1", "memory": "128Mi"},
   "restart": {"policy": "never"}},
  {"name": "vmlong",
   "image": "busybox",
   "isolation": "microvm",
   "network": "host",
   "command": ["/bin/sh", "-c", "trap 'echo bye; sleep 2; exit 0' TERM; echo ready; sleep 100000 & wait"],
   "resources": {"cpu": "1", "memory": "128Mi"},
   "restart": {"policy": "on-failure"},
   "stop_grace": "60s"}
]}
SPEC
orchctl apply -f "$IT_DIR/svc.json" > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply failed"; }

alloc_of() { orchctl get allocs "$1" -o json | json_get "d['allocs'][0]['alloc_id'] if d['allocs'] else ''"; }
status_of() { orchctl get allocs "$1" -o json | json_get "d['allocs'][0]['status']['$2']"; }

wait_until 30 "vmexit placed" sh -c "[ -n \"\$('$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs vmexit -o json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"allocs\"][0][\"alloc_id\"] if d[\"allocs\"] else \"\")')\" ]"
ex=$(alloc_of vmexit)
[ "$(orchctl get allocs vmexit -o json | json_get "d['allocs'][0]['isolation']")" = microvm ] ||
  fail "vmexit was not placed as a microVM"
wait_until 180 "vmexit exits" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs vmexit -o json | grep -Eq '\"state\": *\"(exited|failed|dead|complete)'"
[ "$(status_of vmexit exit_code)" = 3 ] || fail "vmexit reports exit code $(status_of vmexit exit_code), not 3"
orchctl logs "$ex" > "$IT_DIR/vmexit.log" || fail "orchctl logs $ex failed"
grep -q "^guest-kernel=$guest_version\$" "$IT_DIR/vmexit.log" || { cat "$IT_DIR/vmexit.log"; fail "the log lacks guest-kernel=$guest_version"; }
[ "$guest_version" != "$(uname -r)" ] || fail "the guest kernel is the host's"
echo "ok - microVM exit code 3 and guest kernel $guest_version in orchctl logs"

lg=$(alloc_of vmlong)
wait_until 180 "vmlong prints ready" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT logs $lg | grep -q '^ready'"
pid=$(status_of vmlong pid)
vmm=$(status_of vmlong vmm)
case "$vmm" in
  "qemu-microvm (kvm)" | "qemu-microvm (tcg)") ;;
  *) fail "get allocs -o json shows vmm '$vmm'" ;;
esac
[ "$(status_of vmlong guest_kernel)" = "$guest_version" ] || fail "get allocs shows guest kernel '$(status_of vmlong guest_kernel)'"
orchctl describe service vmlong > "$IT_DIR/describe.out" || fail "describe vmlong failed"
grep -q "vmm $vmm, guest kernel $guest_version" "$IT_DIR/describe.out" || { cat "$IT_DIR/describe.out"; fail "describe does not show the VMM and guest kernel"; }
echo "ok - get allocs and describe show $vmm, guest kernel $guest_version"
[ "$pid" -gt 0 ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q qemu-system ||
  fail "vmlong's pid $pid is not a QEMU"

apid=$(agent_pid n1)
kill -KILL "$apid"
wait "$apid" 2>/dev/null || true
sleep 1
kill -0 "$pid" 2>/dev/null || fail "the VM died with the agent"
itest_start_agent n1
sleep 2
[ "$(status_of vmlong pid)" = "$pid" ] || fail "vmlong has pid $(status_of vmlong pid), was $pid"
[ "$(status_of vmlong restarts)" = 0 ] || fail "vmlong was restarted"
[ "$(status_of vmlong state)" = running ] || fail "vmlong is $(status_of vmlong state) after re-adoption"
echo "ok - the VM survived an agent SIGKILL and was re-adopted (pid $pid)"

orchctl delete service vmlong >/dev/null || fail "delete vmlong failed"
# The agent removes the allocation's directory once the VM is gone: keep
# copies of its log meanwhile (the trap sleeps 2 s after "bye" for that).
vmlog="$IT_DIR/n1/allocs/$lg/log"
for _ in $(seq 1 600); do
  cp "$vmlog" "$IT_DIR/vmlong.log" 2>/dev/null || true
  grep -q "^bye" "$IT_DIR/vmlong.log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
grep -q "^bye" "$IT_DIR/vmlong.log" || { tail -20 "$IT_DIR/vmlong.log"; fail "the stop was not graceful (no bye)"; }
for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the VM still runs 60 s after its service was deleted"
echo "ok - deleting the service stopped the VM through its guest init (TERM trap ran)"
echo "PASS"
