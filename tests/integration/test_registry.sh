#!/bin/bash
# Image pulls from a real registry: starts Debian's docker-registry on
# loopback with a temporary storage dir, pushes the busybox image of
# deploy/make-busybox-image.sh there with skopeo (as an OCI layout that
# registry_check writes: a plain image "1" and an index "multi" with an
# arm64 decoy), then pulls with orch-image, the program the agent pulls
# with (a cancelled pull goes through registry_check.c): the rootfs has a working bin/busybox, a second pull
# needs no registry, the index resolves to linux/amd64, digests and size
# limits are enforced, a corrupted blob is refused, GC keeps what is in use;
# and against a registry behind bearer-token auth with a tiny token server.
# Skips (77) when docker-registry, skopeo or the helper are missing.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${ORCH_SOURCE_DIR:-$here/../..}
build=${ORCH_BUILD_DIR:-$src/build}
check="$build/tests/unit/registry_check"

for t in docker-registry skopeo gzip curl; do
  if ! command -v "$t" >/dev/null 2>&1; then
    echo "SKIP: $t is not installed"
    exit 77
  fi
done
image="$build/bin/orch-image"
for b in "$check" "$image"; do
  if [ ! -x "$b" ]; then
    echo "SKIP: $b not built (cmake --build ... --target registry_check orch-image)"
    exit 77
  fi
done

# pull STATE REF [--always|--never] [--max-blob N] [--ca-file PEM] [--user U --password P]
pull() {
  local st=$1 ref=$2 pw=
  local args=()
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --always) args+=(--policy always) ;;
      --never) args+=(--policy never) ;;
      --password) pw=$2; shift ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  ORCH_REGISTRY_PASSWORD=$pw "$image" --state-dir "$st" "${args[@]}" pull "$ref"
}

dir=$(mktemp -d /tmp/orch-test-registry.XXXXXX) || exit 1
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_registry NAME PORT [EXTRA_YAML [SCHEME]]: a registry with its own storage.
start_registry() {
  local name=$1 port=$2 auth=${3:-} scheme=${4:-http}
  mkdir -p "$dir/$name"
  cat > "$dir/$name/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/$name/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
EOF
  docker-registry serve "$dir/$name/config.yml" > "$dir/$name/log" 2>&1 &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 50); do
    code=$(curl -sk -o /dev/null -w '%{http_code}' "$scheme://127.0.0.1:$port/v2/" || true)
    case $code in 200 | 401) return 0 ;; esac
    sleep 0.1
  done
  echo "FAIL: $name registry did not start:"; cat "$dir/$name/log"
  exit 1
}

# ---- the image -------------------------------------------------------------
if ! "$src/deploy/make-busybox-image.sh" "$dir/busybox.tar" >/dev/null 2>&1; then
  echo "FAIL: could not build the busybox image"
  exit 1
fi
gzip -c "$dir/busybox.tar" > "$dir/busybox.tar.gz"
read -r man_d idx_d layer_d < <("$check" mkoci "$dir/busybox.tar" "$dir/busybox.tar.gz" "$dir/oci") \
  || { echo "FAIL: mkoci"; exit 1; }

port=$(free_port)
start_registry plain "$port"
reg=127.0.0.1:$port
if ! skopeo copy -q --dest-tls-verify=false "oci:$dir/oci:1" "docker://$reg/busybox:1" \
  || ! skopeo copy -q --all --dest-tls-verify=false "oci:$dir/oci:multi" "docker://$reg/busybox:multi"; then
  echo "FAIL: skopeo could not push to $reg"; exit 1
fi

# ---- a pull ------------------------------------------------------------------
st=$dir/state
rootfs=$(pull "$st" "$reg/busybox:1" 2> "$dir/err") || fail "pull: $(cat "$dir/err")"
if [ -x "$rootfs/bin/busybox" ] && [ "$("$rootfs/bin/busybox" echo pulled)" = pulled ] \
  && [ -L "$rootfs/bin/sh" ]; then
  ok "pulled rootfs has a working bin/busybox"
else
  fail "rootfs $rootfs has no working bin/busybox"
fi
"$check" present "$st" "$reg/busybox:1" && ok "present after pull" || fail "not present after pull"
[ -f "$st/images/blobs/sha256/${layer_d#sha256:}" ] && [ -f "$st/images/blobs/sha256/${man_d#sha256:}" ] \
  && ok "layer and manifest stored by digest" || fail "blobs missing from the store"

# ---- a second pull is a no-op: it works with the registry gone --------------
kill "$plain_pid"; wait "$plain_pid" 2>/dev/null
again=$(pull "$st" "$reg/busybox:1" 2> "$dir/err") || fail "second pull: $(cat "$dir/err")"
[ "$again" = "$rootfs" ] && ok "second pull is a no-op (registry down)" || fail "second pull gave $again"
if pull "$st" "$reg/busybox:1" --always 2> "$dir/err" >/dev/null; then
  fail "--always pull succeeded with the registry down"
else
  grep -q "pull $reg/busybox:1: ping: GET https://$reg/v2/: .*connect" "$dir/err" && ok "--always names ref and step: $(cat "$dir/err")" \
    || fail "--always error: $(cat "$dir/err")"
fi
start_registry plain "$port"

# --always re-resolves the tag but fetches no blob it already has.
ino_before=$(stat -c %i "$st/images/blobs/sha256/${layer_d#sha256:}")
again=$(pull "$st" "$reg/busybox:1" --always 2> "$dir/err") || fail "--always pull: $(cat "$dir/err")"
ino_after=$(stat -c %i "$st/images/blobs/sha256/${layer_d#sha256:}")
[ "$again" = "$rootfs" ] && [ "$ino_before" = "$ino_after" ] && ok "--always keeps held blobs" \
  || fail "--always refetched ($ino_before -> $ino_after) or moved the rootfs ($again)"

# ---- an index resolves to linux/amd64; by digest -----------------------------
multi=$(pull "$dir/state2" "$reg/busybox:multi" 2> "$dir/err") || fail "multi: $(cat "$dir/err")"
if [ -x "$multi/bin/busybox" ] && [ ! -e "$multi/ARCH" ]; then
  ok "manifest list resolved to linux/amd64"
else
  fail "manifest list gave the wrong image ($multi)"
fi
bydigest=$(pull "$dir/state3" "$reg/busybox@$man_d" 2> "$dir/err") || fail "by digest: $(cat "$dir/err")"
[ -x "$bydigest/bin/busybox" ] && ok "pull by digest" || fail "pull by digest"
if pull "$dir/state3" "$reg/busybox@sha256:$(printf '0%.0s' $(seq 64))" 2> "$dir/err" >/dev/null; then
  fail "an unknown digest was pulled"
else
  grep -q "HTTP 404" "$dir/err" && ok "unknown digest: $(cat "$dir/err")" || fail "unknown digest: $(cat "$dir/err")"
fi

# ---- limits --------------------------------------------------------------------
if pull "$dir/state4" "$reg/busybox:1" --max-blob 100000 2> "$dir/err" >/dev/null; then
  fail "a blob over --max-blob was pulled"
else
  grep -q "limit" "$dir/err" && ok "blob size limit: $(cat "$dir/err")" || fail "limit: $(cat "$dir/err")"
fi

# ---- a canceled pull stops and leaves nothing ------------------------------------
if "$check" pull "$dir/state8" "$reg/busybox:1" --cancel 2> "$dir/err" >/dev/null; then
  fail "a canceled pull succeeded"
else
  grep -q "pull $reg/busybox:1: .*: canceled" "$dir/err" && [ -z "$(ls "$dir/state8/images/refs")" ] \
    && ok "canceled pull: $(cat "$dir/err")" || fail "canceled pull: $(cat "$dir/err")"
fi

# ---- a corrupted blob is refused ---------------------------------------------
data=$(find "$dir/plain/storage" -path "*/blobs/sha256/*/${layer_d#sha256:}/data")
if [ -z "$data" ]; then
  fail "layer not found in the registry's storage"
else
  cp "$data" "$dir/layer.bak"
  printf 'XXXX' | dd of="$data" bs=1 seek=1000 conv=notrunc 2>/dev/null
  if pull "$dir/state5" "$reg/busybox:1" 2> "$dir/err" >/dev/null; then
    fail "a corrupted layer was accepted"
  else
    if grep -q "pull $reg/busybox:1: blob $layer_d: digest mismatch" "$dir/err"; then
      ok "corrupted blob refused: $(cat "$dir/err")"
    else
      fail "corrupted blob: $(cat "$dir/err")"
    fi
  fi
  "$check" present "$dir/state5" "$reg/busybox:1" && fail "corrupted image is present"
  [ -z "$(ls "$dir/state5/images/rootfs")" ] && [ -z "$(ls "$dir/state5/images/refs")" ] \
    && [ ! -e "$dir/state5/images/blobs/sha256/${layer_d#sha256:}" ] \
    && ok "nothing of the corrupted pull is published" || fail "the corrupted pull left something"
  cp "$dir/layer.bak" "$data"
fi

# ---- archives written by a real tool import to the same image --------------------
if skopeo copy -q "oci:$dir/oci:1" "docker-archive:$dir/bb-docker.tar:busybox:1" \
  && skopeo copy -q "oci:$dir/oci:1" "oci-archive:$dir/bb-oci.tar:1"; then
  d_root=$("$image" --state-dir "$dir/state6" import busybox:1 "$dir/bb-docker.tar" 2> "$dir/err") || fail "docker-archive: $(cat "$dir/err")"
  o_root=$("$image" --state-dir "$dir/state6" import bb-oci:1 "$dir/bb-oci.tar" 2> "$dir/err") || fail "oci-archive: $(cat "$dir/err")"
  p_root=$(pull "$dir/state6" "$reg/busybox:1" 2> "$dir/err") || fail "pull: $(cat "$dir/err")"
  if [ -n "$d_root" ] && [ "$d_root" = "$o_root" ] && [ "$(realpath "$d_root")" = "$(realpath "$p_root")" ] \
    && [ "$("$d_root/bin/busybox" echo imported)" = imported ]; then
    ok "skopeo's docker-archive and oci-archive import to the pulled image's rootfs"
  else
    fail "imports differ: docker-archive $d_root, oci-archive $o_root, pull $p_root"
  fi
else
  fail "skopeo could not write the archives"
fi

# ---- concurrent pulls of one image into one store --------------------------------
for i in 1 2 3; do
  pull "$dir/state7" "$reg/busybox:1" > "$dir/conc$i" 2>&1 &
  cpids[$i]=$!
done
conc_ok=1
for i in 1 2 3; do wait "${cpids[$i]}" || conc_ok=0; done
if [ $conc_ok -eq 1 ] && [ "$(sort -u "$dir"/conc? | wc -l)" -eq 1 ] && [ -x "$(head -1 "$dir/conc1")/bin/busybox" ] \
  && [ "$(ls "$dir/state7/images/rootfs" | wc -l)" -eq 1 ] && [ -z "$(ls "$dir/state7/images/tmp")" ]; then
  ok "three concurrent pulls agree on one rootfs"
else
  fail "concurrent pulls: $(cat "$dir"/conc?)"
fi

# ---- GC keeps what is in use -----------------------------------------------------
out=$("$image" --state-dir "$st" gc --budget 0 --in-use "$rootfs" 2> "$dir/err") || fail "gc: $(cat "$dir/err")"
[ -x "$rootfs/bin/busybox" ] && ok "gc kept the image in use ($out)" || fail "gc removed the image in use"
out=$("$image" --state-dir "$st" gc --budget 0 2> "$dir/err") || fail "gc: $(cat "$dir/err")"
[ ! -e "$rootfs" ] && ! "$check" present "$st" "$reg/busybox:1" && ok "gc removed it once unused ($out)" \
  || fail "gc left the unused image ($out)"

# ---- bearer-token auth -----------------------------------------------------------
# A registry that wants tokens from a token service (JWTs signed with a
# throwaway RSA key whose certificate the registry trusts); the service
# hands out tokens only for the right Basic credentials and logs each ask.
token_test() {
  local tdir=$dir/token
  mkdir -p "$tdir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tdir/key.pem" -out "$tdir/cert.pem" \
    -days 1 -subj /CN=orch-test-token >/dev/null 2>&1 || { fail "openssl req"; return; }
  cat > "$tdir/server.py" <<'PY'
import base64, http.server, json, os, subprocess, sys, time, urllib.parse
port, key, cert, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True,
                     capture_output=True).stdout
def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        auth = self.headers.get("Authorization", "")
        with open(log, "a") as f:
            f.write("%s service=%s scope=%s auth=%s\n" % (u.path, q.get("service"), q.get("scope"),
                    "basic" if auth.startswith("Basic ") else "none"))
        if auth != "Basic " + base64.b64encode(b"orch:s3cret").decode():
            self.send_response(401); self.send_header("Content-Type", "application/json")
            self.end_headers(); self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
            return
        access = []
        for s in q.get("scope", []):
            for one in s.split(" "):
                t, name, actions = one.split(":")
                access.append({"type": t, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        hdr = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": "orch-test-issuer", "sub": "orch", "aud": q.get("service", [""])[0],
                  "exp": now + 600, "nbf": now - 60, "iat": now, "jti": os.urandom(8).hex(),
                  "access": access}
        si = b64u(json.dumps(hdr).encode()) + "." + b64u(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=si.encode(),
                             check=True, capture_output=True).stdout
        tok = si + "." + b64u(sig)
        body = json.dumps({"token": tok, "access_token": tok, "expires_in": 600}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
  local tport rport
  tport=$(free_port)
  /usr/bin/python3 "$tdir/server.py" "$tport" "$tdir/key.pem" "$tdir/cert.pem" "$tdir/asks" 2> "$tdir/server.log" &
  pids+=($!)
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$tport/token" && break
    sleep 0.1
  done
  rport=$(free_port)
  start_registry token "$rport" "auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: orch-test
    issuer: orch-test-issuer
    rootcertbundle: $tdir/cert.pem"
  local treg=127.0.0.1:$rport
  if ! skopeo copy -q --dest-tls-verify=false --dest-creds orch:s3cret "oci:$dir/oci:1" \
    "docker://$treg/team/busybox:1" 2> "$tdir/err"; then
    fail "skopeo push to the token registry: $(cat "$tdir/err")"
    return
  fi
  : > "$tdir/asks"
  local troot
  if troot=$(pull "$dir/state-token" "$treg/team/busybox:1" --user orch --password s3cret 2> "$tdir/err") \
    && [ -x "$troot/bin/busybox" ]; then
    ok "pull through bearer-token auth"
  else
    fail "token pull: $(cat "$tdir/err")"
  fi
  if grep -q "/token service=\['orch-test'\] scope=\['repository:team/busybox:pull'\] auth=basic" "$tdir/asks"; then
    ok "token asked with service, scope and credentials"
  else
    fail "token service asks: $(cat "$tdir/asks")"
  fi
  if pull "$dir/state-token2" "$treg/team/busybox:1" --user orch --password wrong 2> "$tdir/err" >/dev/null; then
    fail "pulled with wrong credentials"
  else
    grep -q "token service http://127.0.0.1:$tport/token: HTTP 401: UNAUTHORIZED: bad credentials" "$tdir/err" \
      && ok "wrong credentials refused: $(cat "$tdir/err")" || fail "wrong credentials: $(cat "$tdir/err")"
  fi
}

# ---- https with certificate verification -------------------------------------------
# A TLS-only registry: a pull that works went over https. Without its CA the
# pull fails on the certificate and says so.
tls_test() {
  local tdir=$dir/tls
  mkdir -p "$tdir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tdir/key.pem" -out "$tdir/cert.pem" -days 1 \
    -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1 || { fail "openssl req (tls)"; return; }
  local sport
  sport=$(free_port)
  start_registry tls "$sport" "  tls:
    certificate: $tdir/cert.pem
    key: $tdir/key.pem" https
  local sreg=127.0.0.1:$sport
  if ! skopeo copy -q --dest-tls-verify=false "oci:$dir/oci:1" "docker://$sreg/busybox:1" 2> "$tdir/err"; then
    fail "skopeo push over https: $(cat "$tdir/err")"; return
  fi
  local sroot
  if sroot=$(pull "$dir/state-tls" "$sreg/busybox:1" --ca-file "$tdir/cert.pem" 2> "$tdir/err") \
    && [ -x "$sroot/bin/busybox" ]; then
    ok "pull over https with the registry's CA"
  else
    fail "https pull: $(cat "$tdir/err")"
  fi
  if pull "$dir/state-tls2" "$sreg/busybox:1" 2> "$tdir/err" >/dev/null; then
    fail "pulled over https from an untrusted certificate"
  else
    grep -qi "certificate" "$tdir/err" && ok "untrusted certificate refused: $(cat "$tdir/err")" \
      || fail "untrusted certificate: $(cat "$tdir/err")"
  fi
}
# ---- basic auth (htpasswd) ------------------------------------------------------------
basic_test() {
  local bdir=$dir/basic hash
  mkdir -p "$bdir"
  hash=$(/usr/bin/python3 -W ignore -c 'import crypt; print(crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH)))') \
    || { echo "skip: basic auth (no bcrypt in python3)"; return; }
  echo "orch:$hash" > "$bdir/htpasswd"
  local bport
  bport=$(free_port)
  start_registry basic "$bport" "auth:
  htpasswd:
    realm: orch-basic
    path: $bdir/htpasswd"
  local breg=127.0.0.1:$bport
  if ! skopeo copy -q --dest-tls-verify=false --dest-creds orch:s3cret "oci:$dir/oci:1" "docker://$breg/busybox:1" 2> "$bdir/err"; then
    fail "skopeo push with basic auth: $(cat "$bdir/err")"; return
  fi
  local broot
  if broot=$(pull "$dir/state-basic" "$breg/busybox:1" --user orch --password s3cret 2> "$bdir/err") \
    && [ -x "$broot/bin/busybox" ]; then
    ok "pull with basic credentials"
  else
    fail "basic pull: $(cat "$bdir/err")"
  fi
  if pull "$dir/state-basic2" "$breg/busybox:1" 2> "$bdir/err" >/dev/null; then
    fail "anonymous pull from a basic-auth registry succeeded"
  else
    grep -q "pull $breg/busybox:1: manifest 1: HTTP 401" "$dir/basic/err" && ok "anonymous pull refused: $(cat "$bdir/err")" \
      || fail "anonymous pull: $(cat "$bdir/err")"
  fi
}
basic_test

if command -v openssl >/dev/null 2>&1; then
  tls_test
else
  echo "skip: https (needs openssl)"
fi

if command -v openssl >/dev/null 2>&1 && [ -x /usr/bin/python3 ] && declare -F token_test >/dev/null; then
  token_test
else
  echo "skip: token auth (needs openssl and /usr/bin/python3)"
fi

if [ $failures -ne 0 ]; then
  echo "FAIL: $failures check(s) failed"
  for n in plain basic tls token; do [ -f "$dir/$n/log" ] && { echo "--- $n registry log"; tail -20 "$dir/$n/log"; }; done
  exit 1
fi
echo "PASS"
