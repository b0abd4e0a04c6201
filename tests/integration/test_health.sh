#!/usr/bin/env bash
# Health checks and restart policies on a real node:
#  - tcp on a port the workload never opens: unhealthy, restarted through
#    its policy (counted) until max_restarts, then failed;
#  - http against busybox httpd (host network, and bridge): healthy;
#  - exec inside the container (its namespaces, its filesystem): healthy
#    when the command succeeds, unhealthy when it fails;
#  - on-failure with `exit 1`: restarts climb to max_restarts, then failed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
itest_start_cluster
itest_start_agent n1
itest_import_busybox n1

closed_port=$(itest_free_port)
http_port=$(itest_free_port)

cat > "$IT_DIR/svc.json" <<SPEC
{"services": [
  {"name": "deaf", "image": "busybox", "network": "host",
   "command": ["/bin/sh", "-c", "echo deaf; exec sleep 1000"],
   "resources": {"cpu": "50m", "memory": "16Mi"},
   "health": {"tcp": $closed_port, "interval": "300ms", "timeout": "300ms", "failure_threshold": 2},
   "restart": {"policy": "on-failure", "max_restarts": 2, "backoff": "100ms"},
   "stop_grace": "1s"},
  {"name": "web", "image": "busybox", "network": "host",
   "command": ["/bin/sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p $http_port -h /www"],
   "resources": {"cpu": "50m", "memory": "16Mi"},
   "health": {"http": {"port": $http_port, "path": "/index.html"}, "interval": "300ms", "timeout": "1s", "failure_threshold": 2},
   "stop_grace": "1s"},
  {"name": "bridged", "image": "busybox",
   "command": ["/bin/sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],
   "resources": {"cpu": "50m", "memory": "16Mi"},
   "health": {"http": {"port": 8080}, "interval": "300ms", "timeout": "1s", "failure_threshold": 2},
   "stop_grace": "1s"},
  {"name": "inside", "image": "busybox",
   "command": ["/bin/sh", "-c", "touch /tmp/ready; exec sleep 1000"],
   "resources": {"cpu": "50m", "memory": "16Mi"},
   "health": {"exec": ["/bin/sh", "-c", "test -f /tmp/ready && hostname | grep -q '^inside-' && ! grep -q '[.][.]' /proc/self/cgroup"], "interval": "300ms", "timeout": "2s", "failure_threshold": 2},
   "stop_grace": "1s"},
  {"name": "sick", "image": "busybox",
   "command": ["/bin/sh", "-c", "exec sleep 1000"],
   "resources": {"cpu": "50m", "memory": "16Mi"},
   "health": {"exec": ["/bin/sh", "-c", "test -f /tmp/never"], "interval": "300ms", "timeout": "2s", "failure_threshold": 2},
   "restart": {"policy": "on-failure", "max_restarts": 1, "backoff": "100ms"},
   "stop_grace": "1s"},
  {"name": "crash", "image": "busybox",
   "command": ["/bin/sh", "-c", "echo crashing; exit 1"],
   "resources": {"cpu": "50m", "memory": "16Mi"},
   "restart": {"policy": "on-failure", "max_restarts": 3, "backoff": "100ms"}}
]}
SPEC
orchctl apply -f "$IT_DIR/svc.json" > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply failed"; }

# status FIELD SERVICE : the field of the service's (only) allocation.
status() { orchctl get allocs "$2" -o json | json_get "d['allocs'][0]['status']['$1'] if d['allocs'] else ''"; }
alloc_of() { orchctl get allocs "$1" -o json | json_get "d['allocs'][0]['alloc_id'] if d['allocs'] else ''"; }
status_is() { [ "$(status "$1" "$2")" = "$3" ]; }

# The port that never opens: unhealthy twice in a row -> restarted, counted,
# up to max_restarts (2), then failed and left so.
deaf_done() { status_is restarts deaf 2 && status_is state deaf failed; }
wait_until 40 "deaf restarted twice then failed" deaf_done
sleep 1
[ "$(status restarts deaf)" = 2 ] || fail "deaf restarts $(status restarts deaf), want 2"
status reason deaf | grep -q "^unhealthy: failed 2 health checks in a row" ||
  fail "deaf reason: $(status reason deaf)"
deaf=$(alloc_of deaf)
[ "$(grep -c "alloc $deaf: unhealthy" "$IT_DIR/agent-n1.log")" = 3 ] ||
  fail "deaf should have been unhealthy 3 times: $(grep "alloc $deaf" "$IT_DIR/agent-n1.log")"

# httpd answers: healthy, never restarted.
wait_until 20 "web healthy" grep -q "alloc $(alloc_of web): healthy" "$IT_DIR/agent-n1.log"
wait_until 20 "bridged healthy" grep -q "alloc $(alloc_of bridged): healthy" "$IT_DIR/agent-n1.log"
# exec runs inside the container: its files, its hostname, and within its
# cgroups (no path outside the container's cgroup namespace root).
wait_until 20 "inside healthy" grep -q "alloc $(alloc_of inside): healthy" "$IT_DIR/agent-n1.log"

# A failing exec check: unhealthy, restarted once (max_restarts 1), failed.
sick_done() { status_is restarts sick 1 && status_is state sick failed; }
wait_until 40 "sick restarted once then failed" sick_done
[ "$(status restarts sick)" = 1 ] || fail "sick restarts $(status restarts sick), want 1"
status reason sick | grep -q "unhealthy.*command exited with code 1" || fail "sick reason: $(status reason sick)"

# on-failure with exit 1: restarts climb to max_restarts, then failed... as
# exited 1 (the last end), with no more starts.
wait_until 30 "crash restarted 3 times" status_is restarts crash 3
sleep 1
[ "$(status restarts crash)" = 3 ] || fail "crash restarted beyond max_restarts"
[ "$(status exit_code crash)" = 1 ] || fail "crash exit code $(status exit_code crash)"
case "$(status state crash)" in exited | failed) ;; *) fail "crash is $(status state crash)" ;; esac
[ "$(orchctl logs "$(alloc_of crash)" | grep -c crashing)" = 4 ] || fail "crash should have run 4 times"

# Healthy ones stayed up: no restarts.
for s in web bridged inside; do
  [ "$(status state $s)" = running ] || fail "$s is $(status state $s)"
  [ "$(status restarts $s)" = 0 ] || fail "$s was restarted"
done
echo PASS
