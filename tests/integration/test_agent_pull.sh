#!/usr/bin/env bash
# The agent pulls on demand, through its orch-image helper, from a real
# registry (Debian's docker-registry on loopback, the busybox image pushed
# with skopeo) behind a proxy that slows every request down so that the
# pull can be watched:
#   - an allocation of an image the node lacks shows `pulling`, an
#     orch-image process (the agent's child) does the work, then it runs;
#   - the agent itself never maps libcurl, libarchive or libcrypto;
#   - deleting the service mid-pull stops the helper and publishes nothing;
#   - a missing image fails the allocation with the helper's reason;
#   - image GC (--image-budget 1 --image-gc-interval 2s) keeps the image
#     while it is in use and removes it after the service is deleted.
# Skips (77) without docker-registry or skopeo.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

for t in docker-registry skopeo; do
  command -v "$t" >/dev/null 2>&1 || { echo "SKIP: $t is not installed"; exit 77; }
done
check="$ORCH_BUILD_DIR/tests/unit/registry_check"
[ -x "$check" ] || { echo "SKIP: $check not built"; exit 77; }

itest_init
pids=()
pull_cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  itest_cleanup "$rc"
}
trap pull_cleanup EXIT

# ---- a registry with busybox:1 and busybox:2, and a slow proxy in front -----
reg_port=$(itest_free_port)
mkdir -p "$IT_DIR/registry"
cat > "$IT_DIR/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $IT_DIR/registry/storage
http:
  addr: 127.0.0.1:$reg_port
EOF
docker-registry serve "$IT_DIR/registry/config.yml" > "$IT_DIR/registry.log" 2>&1 &
pids+=($!)
wait_until 10 "registry answers" curl -sf "http://127.0.0.1:$reg_port/v2/"

tar=$(itest_busybox_tar)
gzip -c "$tar" > "$IT_DIR/busybox.tar.gz"
"$check" mkoci "$tar" "$IT_DIR/busybox.tar.gz" "$IT_DIR/oci" >/dev/null || fail "mkoci"
for tag in 1 2; do
  skopeo copy -q --dest-tls-verify=false "oci:$IT_DIR/oci:1" \
    "docker://127.0.0.1:$reg_port/busybox:$tag" || fail "skopeo could not push busybox:$tag"
done

# Every request but the /v2/ ping waits DELAY seconds: a pull (manifest,
# config, layer) takes a few seconds, whatever the store already holds.
proxy_port=$(itest_free_port)
cat > "$IT_DIR/proxy.py" <<'PY'
import http.server, socketserver, sys, time, urllib.request, urllib.error
upstream, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def relay(self, body):
        if self.path != "/v2/":
            time.sleep(delay)
        req = urllib.request.Request(upstream + self.path, method=self.command,
                                     headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        try:
            r = urllib.request.urlopen(req)
        except urllib.error.HTTPError as e:
            r = e
        data = r.read()
        self.send_response(r.status if hasattr(r, "status") else r.code)
        for k, v in r.headers.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
    def do_GET(self): self.relay(True)
    def do_HEAD(self): self.relay(False)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
PY
/usr/bin/python3 "$IT_DIR/proxy.py" "http://127.0.0.1:$reg_port" "$proxy_port" 1.5 \
  > "$IT_DIR/proxy.log" 2>&1 &
pids+=($!)
wait_until 10 "proxy answers" curl -sf "http://127.0.0.1:$proxy_port/v2/"
slow=127.0.0.1:$proxy_port

# ---- the cluster -------------------------------------------------------------
itest_start_cluster
IT_AGENT_ARGS="--image-budget 1 --image-gc-interval 2s" itest_start_agent n1
agent=$(agent_pid n1)
image() { "$BIN/orch-image" --state-dir "$IT_DIR/n1" "$@"; }
state_of() {
  orchctl get allocs "$1" -o json 2>/dev/null | json_get "d['allocs'][0]['status']['state']"
}
reason_of() {
  orchctl get allocs "$1" -o json 2>/dev/null | json_get "d['allocs'][0]['status']['reason']"
}
helpers() { pgrep -P "$agent" -x orch-image || true; }

spec() { # NAME IMAGE
  cat > "$IT_DIR/$1.json" <<SPEC
{
  "name": "$1",
  "image": "$2",
  "network": "host",
  "command": ["/bin/sh", "-c", "echo pulled-ok; exec sleep 1000"],
  "resources": {"cpu": "50m", "memory": "16Mi"},
  "restart": {"policy": "never"},
  "stop_grace": "1s"
}
SPEC
  echo "$IT_DIR/$1.json"
}

# 1. Pull on demand, watched.
orchctl apply -f "$(spec web "$slow/busybox:1")" >/dev/null || fail "apply web"
saw_pulling=0
saw_helper=0
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
  s=$(state_of web || true)
  [ "$s" = pulling ] && saw_pulling=1
  [ -n "$(helpers)" ] && saw_helper=1
  [ "$s" = running ] && break
  sleep 0.1
done
[ "$s" = running ] || fail "web is $s, not running, after the pull ($(reason_of web))"
[ $saw_pulling = 1 ] || fail "web was never shown as pulling"
[ $saw_helper = 1 ] || fail "no orch-image process was seen doing the pull"
alloc=$(orchctl get allocs web -o json | json_get "d['allocs'][0]['alloc_id']")
wait_until 10 "web's output" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT logs $alloc | grep -q pulled-ok"
grep -q "pulling image $slow/busybox:1" "$IT_DIR/agent-n1.log" || fail "the agent did not log the pull"
[ -z "$(helpers)" ] || fail "an orch-image process outlived its pull"
echo "ok: pulled on demand through orch-image (pulling, then running)"

# 2. The daemon maps none of the pull's libraries.
if grep -E 'libcurl|libarchive|libcrypto|libssl|libxml2' "/proc/$agent/maps" >/dev/null; then
  fail "the agent maps $(grep -oE 'lib(curl|archive|crypto|ssl|xml2)[^ ]*' "/proc/$agent/maps" | sort -u | tr '\n' ' ')"
fi
echo "ok: the agent maps no libcurl, libarchive, OpenSSL or libxml2 (RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/$agent/status"))"

# 3. Deleting a service mid-pull stops the helper and publishes nothing.
orchctl apply -f "$(spec half "$slow/busybox:2")" >/dev/null || fail "apply half"
wait_until 20 "an orch-image process for half" sh -c "pgrep -P $agent -x orch-image"
helper=$(helpers)
orchctl delete service half >/dev/null || fail "delete half"
wait_until 15 "the pull's helper to stop" sh -c "! kill -0 $helper 2>/dev/null"
sleep 5 # longer than the rest of the pull would have taken
image inspect "$slow/busybox:2" >/dev/null 2>&1 && fail "the cancelled pull published busybox:2"
if ls "$IT_DIR/n1/images/tmp" 2>/dev/null | grep -q .; then
  fail "the cancelled pull left work directories: $(ls "$IT_DIR/n1/images/tmp")"
fi
echo "ok: a pull cancelled by delete stops its helper and leaves nothing"

# 4. A missing image fails the allocation with the helper's reason.
orchctl apply -f "$(spec ghost "127.0.0.1:$reg_port/nothere:1")" >/dev/null || fail "apply ghost"
wait_until 30 "ghost failed" sh -c "'$BIN/orchctl' --server 127.0.0.1:$IT_API_PORT get allocs ghost -o json | grep -q '\"failed\"'"
why=$(reason_of ghost)
case $why in
  *"pull 127.0.0.1:$reg_port/nothere:1"*) ;;
  *) fail "ghost failed with an unhelpful reason: $why" ;;
esac
echo "ok: a missing image fails with: $why"
orchctl delete service ghost >/dev/null || true

# 5. Image GC through the helper: kept while used, removed once not.
sleep 5 # several GC rounds with web running
image inspect "$slow/busybox:1" >/dev/null || fail "GC removed an image in use"
orchctl delete service web >/dev/null || fail "delete web"
wait_until 30 "GC removed busybox:1" sh -c "! '$BIN/orch-image' --state-dir '$IT_DIR/n1' inspect '$slow/busybox:1'"
echo "ok: image GC kept busybox:1 while in use and removed it after"
echo PASS
