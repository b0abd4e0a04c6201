# Helpers to run a throw-away etcd on loopback for integration tests.
# Source this file, then:
#   etcd_start DIR   # data in DIR/etcd, log in DIR/etcd.log; exports
#                    # ETCD_ENDPOINT and ETCD_PID
#   etcd_stop        # stops the etcd started by etcd_start
# Both return non-zero with a message on stderr on failure.

ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now. The
# kernel picks it (bind to port 0), so concurrent tests do not collide on a
# fixed range; the small window between this and etcd's bind is retried by
# etcd_start.
etcd__free_port ()
{
  local p
  if command -v python3 >/dev/null 2>&1; then
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null)
    if [ -n "$p" ]; then
      echo "$p"
      return 0
    fi
  fi
  # Fallback without python: a random high port that ss does not list.
  local i
  for i in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! ss -ltnH "sport = :$p" 2>/dev/null | grep -q .; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

etcd_start ()
{
  local dir=$1 attempt port pport i
  if [ -z "$dir" ]; then
    echo "etcd_start: usage: etcd_start DIR" >&2
    return 2
  fi
  if [ ! -x "$ETCD_BIN" ]; then
    echo "etcd_start: $ETCD_BIN not found" >&2
    return 1
  fi
  mkdir -p "$dir" || return 1
  for attempt in 1 2 3; do
    port=$(etcd__free_port) || return 1
    pport=$(etcd__free_port) || return 1
    if [ "$port" = "$pport" ]; then
      continue
    fi
    rm -rf "$dir/etcd" "$dir/etcd.pid"
    # etcd runs under a subshell that waits for it, so that a test killing
    # etcd on purpose does not make this shell print a "Killed" job notice.
    (
      "$ETCD_BIN" --name default --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$port" \
        --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "default=http://127.0.0.1:$pport" \
        --initial-cluster-state new \
        >"$dir/etcd.log" 2>&1 &
      echo $! >"$dir/etcd.pid"
      wait $!
    ) 2>/dev/null &
    ETCD__JOB=$!
    ETCD_PID=
    for i in $(seq 1 50); do
      if [ -s "$dir/etcd.pid" ]; then
        ETCD_PID=$(cat "$dir/etcd.pid")
        break
      fi
      sleep 0.02
    done
    if [ -z "$ETCD_PID" ]; then
      echo "etcd_start: etcd did not start" >&2
      return 1
    fi
    # Wait up to 20 s for /health; stop early if etcd died (port taken).
    for i in $(seq 1 200); do
      if ! kill -0 "$ETCD_PID" 2>/dev/null; then
        break
      fi
      if curl -fsS --max-time 1 "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"health":"true"'; then
        export ETCD_ENDPOINT="http://127.0.0.1:$port"
        export ETCD_PID
        return 0
      fi
      sleep 0.1
    done
    kill "$ETCD_PID" 2>/dev/null
    wait "$ETCD__JOB" 2>/dev/null
    ETCD_PID=
  done
  echo "etcd_start: etcd did not become healthy; log follows:" >&2
  tail -n 20 "$dir/etcd.log" >&2
  return 1
}

etcd_stop ()
{
  local i
  if [ -z "$ETCD_PID" ]; then
    return 0
  fi
  kill "$ETCD_PID" 2>/dev/null
  for i in $(seq 1 50); do
    if ! kill -0 "$ETCD_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  kill -9 "$ETCD_PID" 2>/dev/null
  wait "$ETCD__JOB" 2>/dev/null
  ETCD_PID=
  ETCD__JOB=
  unset ETCD_ENDPOINT
  return 0
}
