#!/bin/bash
# The microvm runtime on this host: fetches the guest kernel (Debian's cloud
# kernel, into a cache reused across runs: $ORCH_VM_CACHE, default
# /var/cache/orch), builds a busybox image and runs vm_check
# (tests/integration/vm_check.c) under every accelerator this host has: KVM
# when /dev/kvm is there and the guest boots under it, and always TCG
# (ORCH_VMM_ACCEL=tcg). TCG boots take seconds: allow minutes.
# Needs root (exit 77 otherwise); cleans up whatever happens.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${ORCH_SOURCE_DIR:-$here/../..}
build=${ORCH_BUILD_DIR:-$src/build}
check="$build/tests/unit/vm_check"
init="$build/bin/orch-init"
[ -x "$init" ] || init="$build/agent/orch-init"
cache=${ORCH_VM_CACHE:-/var/cache/orch}

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: the microvm runtime needs root"
  exit 77
fi
for f in "$check" "$init"; do
  if [ ! -x "$f" ]; then
    echo "SKIP: $f not built (cmake --build ... --target vm_check orch-init)"
    exit 77
  fi
done
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 is not installed"
  exit 77
fi
if ! "$src/deploy/fetch-guest-kernel.sh" "$cache" >/dev/null; then
  echo "SKIP: could not fetch the guest kernel into $cache"
  exit 77
fi

dir=$(mktemp -d /tmp/orch-test-microvm.XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

if ! "$src/deploy/make-busybox-image.sh" "$dir/busybox.tar" >/dev/null; then
  echo "FAIL: could not build the busybox image"
  exit 1
fi

export ORCH_TEST_BUSYBOX_TAR="$dir/busybox.tar" ORCH_INIT_PATH="$init"
export ORCH_GUEST_KERNEL_DIR="$cache/guest-kernel"
rc=0
skipped=0
tcg_done=0
if [ -e /dev/kvm ]; then
  echo "# default accelerator (KVM when the guest boots under it, else TCG)"
  env -u ORCH_VMM_ACCEL "$check" | tee "$dir/default.out"
  r=${PIPESTATUS[0]}
  [ $r -eq 77 ] && skipped=$((skipped + 1))
  [ $r -ne 0 ] && [ $r -ne 77 ] && rc=1
  # Where KVM does not boot the guest, the runtime fell back to TCG: that
  # run was the TCG run.
  grep -q '^ok - \[tcg\]' "$dir/default.out" && tcg_done=1
fi
if [ $tcg_done -eq 0 ]; then
  echo "# TCG (ORCH_VMM_ACCEL=tcg)"
  ORCH_VMM_ACCEL=tcg "$check"
  r=$?
  [ $r -eq 77 ] && skipped=$((skipped + 1))
  [ $r -ne 0 ] && [ $r -ne 77 ] && rc=1
fi
if [ $rc -ne 0 ]; then
  echo "FAIL: vm_check"
  exit 1
fi
[ $skipped -gt 0 ] && [ ! -e /dev/kvm ] && exit 77
exit 0
