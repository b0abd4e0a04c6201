#!/bin/bash
# The container runtime on this host: builds a busybox image with
# deploy/make-busybox-image.sh and runs rt_check (tests/integration/rt_check.c)
# against it: namespaces, cgroup limits, overlay, orch-init's signal
# forwarding and exit records, failure clean-up, every isolation promise
# probed from inside a running container (seccomp, masked and read-only
# /proc and /sys, capabilities, no_new_privs, cgroup namespace, rlimits,
# /etc/hosts and resolv.conf), user namespaces with an idmapped image,
# re-adoption after the starting process died, OOM kills, bridge networking
# with a published port reached from another network namespace (in a
# private node namespace; needs ip, nsenter and curl), start latency.
# Needs root (exit 77 otherwise); cleans up whatever happens.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${ORCH_SOURCE_DIR:-$here/../..}
build=${ORCH_BUILD_DIR:-$src/build}
check="$build/tests/unit/rt_check"
init="$build/bin/orch-init"
[ -x "$init" ] || init="$build/agent/orch-init"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: the container runtime needs root"
  exit 77
fi
for f in "$check" "$init"; do
  if [ ! -x "$f" ]; then
    echo "SKIP: $f not built (cmake --build ... --target rt_check orch-init)"
    exit 77
  fi
done

dir=$(mktemp -d /tmp/orch-test-runtime.XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

if ! "$src/deploy/make-busybox-image.sh" "$dir/busybox.tar"; then
  echo "FAIL: could not build the busybox image"
  exit 1
fi

ORCH_TEST_BUSYBOX_TAR="$dir/busybox.tar" ORCH_INIT_PATH="$init" "$check"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
  echo "FAIL: rt_check exited $rc"
fi
exit $rc
