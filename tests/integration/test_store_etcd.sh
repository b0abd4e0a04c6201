#!/bin/bash
# The etcd store against a real etcd on loopback: runs store_etcd_check
# (tests/integration/store_etcd_check.c) with a fresh etcd, then cleans up
# whatever happened. Exit 77 (skip) when etcd or the checker is missing.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${ORCH_BUILD_DIR:-$here/../../build}
check="$build/tests/unit/store_etcd_check"

. "$here/lib_etcd.sh"

if [ ! -x "$ETCD_BIN" ]; then
  echo "SKIP: $ETCD_BIN not found"
  exit 77
fi
if [ ! -x "$check" ]; then
  echo "SKIP: $check not built (cmake --build ... --target store_etcd_check)"
  exit 77
fi

dir=$(mktemp -d /tmp/orch-store-etcd.XXXXXX) || exit 1
cleanup ()
{
  etcd_stop
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! etcd_start "$dir"; then
  echo "FAIL: could not start etcd"
  exit 1
fi

if ! "$check" "$ETCD_ENDPOINT"; then
  echo "FAIL: store_etcd_check against $ETCD_ENDPOINT; etcd log tail:"
  tail -n 20 "$dir/etcd.log"
  exit 1
fi
echo "PASS: store against etcd at $ETCD_ENDPOINT"
exit 0
