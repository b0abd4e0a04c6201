#!/usr/bin/env bash
# A bad spec is refused with exit 1, the error names the JSON path, and
# nothing is stored: not by orchctl's own check, and not by the scheduler's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
itest_start_cluster

cat > "$IT_DIR/bad.json" <<'SPEC'
{"services": [
  {"name": "ok", "image": "busybox", "resources": {"cpu": "100m", "memory": "16Mi"}},
  {"name": "bad", "image": "busybox", "resources": {"cpu": "100m", "memory": "64MB"}}
]}
SPEC
set +e
orchctl apply -f "$IT_DIR/bad.json" > "$IT_DIR/out" 2> "$IT_DIR/err"
rc=$?
set -e
[ $rc = 1 ] || fail "apply of a bad spec exited $rc, not 1"
grep -q 'services\[1\].resources.memory' "$IT_DIR/err" || fail "error does not name the path: $(cat "$IT_DIR/err")"

# Nothing stored, not even the valid first service: apply is all-or-nothing.
keys=$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINT" get --prefix /orch/services/ --keys-only)
[ -z "$keys" ] || fail "something was stored: $keys"
[ "$(orchctl get services -o json | json_get "len(d['services'])")" = 0 ] || fail "services listed"

# Usage errors exit 2.
set +e
orchctl apply > /dev/null 2>&1; rc=$?
set -e
[ $rc = 2 ] || fail "apply without -f exited $rc, not 2"

# An unreachable scheduler is a clear error, exit 1.
set +e
"$BIN/orchctl" --server 127.0.0.1:1 get nodes > /dev/null 2> "$IT_DIR/err2"; rc=$?
set -e
[ $rc = 1 ] || fail "unreachable scheduler exited $rc"
grep -qi "cannot reach" "$IT_DIR/err2" || fail "unclear error: $(cat "$IT_DIR/err2")"
echo PASS
