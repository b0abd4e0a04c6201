#!/bin/bash
# Runs vm_boot_bench: fetches the guest kernel into $ORCH_VM_CACHE (default
# /var/cache/orch), builds the busybox image, and passes its arguments on
# (--runs N, --accel all|kvm|tcg, --json).
set -eu
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${ORCH_SOURCE_DIR:-$here/../..}
build=${ORCH_BUILD_DIR:-$src/build}
cache=${ORCH_VM_CACHE:-/var/cache/orch}
init="$build/bin/orch-init"
[ -x "$init" ] || init="$build/agent/orch-init"
bench="$build/tests/bench/vm_boot_bench"
"$src/deploy/fetch-guest-kernel.sh" "$cache" >/dev/null
dir=$(mktemp -d /tmp/orch-vmbench-img.XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$src/deploy/make-busybox-image.sh" "$dir/busybox.tar" >/dev/null
ORCH_TEST_BUSYBOX_TAR="$dir/busybox.tar" ORCH_INIT_PATH="$init" \
  ORCH_GUEST_KERNEL_DIR="$cache/guest-kernel" "$bench" "$@"
