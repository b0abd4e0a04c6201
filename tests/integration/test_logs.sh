#!/usr/bin/env bash
# Allocation logs on a real node: capped and rotated (--log-max-size,
# --log-max-files: log, log.1, log.2 and no more, each near the cap), while
# the workload keeps writing through its own descriptor; `orchctl logs
# --follow` streams what is appended, across rotations, until interrupted;
# `--tail` gives the last lines.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
itest_init
itest_start_cluster
IT_AGENT_ARGS="--log-max-size 16Ki --log-max-files 3" itest_start_agent n1
itest_import_busybox n1

cat > "$IT_DIR/svc.json" <<'SPEC'
{
  "name": "chatty",
  "image": "busybox",
  "network": "host",
  "command": ["/bin/sh", "-c", "pad=$(printf '%0100d' 0); i=0; while true; do i=$((i+1)); echo \"line-$i $pad\"; usleep 10000; done"],
  "resources": {"cpu": "100m", "memory": "16Mi"},
  "stop_grace": "1s"
}
SPEC
orchctl apply -f "$IT_DIR/svc.json" --wait > "$IT_DIR/apply.out" 2>&1 || { cat "$IT_DIR/apply.out"; fail "apply --wait failed"; }
alloc=$(orchctl get allocs chatty -o json | json_get "d['allocs'][0]['alloc_id']")
dir="$IT_DIR/n1/allocs/$alloc"

# Follow from now on, in the background.
orchctl logs "$alloc" --tail 0 --follow > "$IT_DIR/follow.out" 2>"$IT_DIR/follow.err" &
follow_pid=$!

# ~11 KB/s: the 16 KiB cap is passed every ~1.5 s, so within 10 s the log
# has been rotated several times.
wait_until 20 "log.2 exists (two rotations)" test -s "$dir/log.2"
sleep 4
[ -e "$dir/log.3" ] && fail "more than 3 files kept: $(ls "$dir")"
for f in log log.1 log.2; do
  size=$(stat -c %s "$dir/$f")
  # The check runs every 2 s: a file may pass the cap by what 2 s write.
  [ "$size" -le $((16 * 1024 + 40 * 1024)) ] || fail "$f is $size bytes, far over the cap"
done
# Rotated copies are whole lines in order: log.2 is older than log.1.
last2=$(tail -n 1 "$dir/log.2" | sed 's/^line-\([0-9]*\) .*/\1/')
first1=$(head -n 1 "$dir/log.1" | sed 's/^line-\([0-9]*\) .*/\1/')
[ "$last2" -lt "$first1" ] || fail "log.2 ($last2) is not older than log.1 ($first1)"

# The workload never noticed: still writing to the live log.
n1=$(tail -n 1 "$dir/log" | sed 's/^line-\([0-9]*\) .*/\1/')
sleep 1
n2=$(tail -n 1 "$dir/log" | sed 's/^line-\([0-9]*\) .*/\1/')
[ "$n2" -gt "$n1" ] || fail "the workload stopped writing after rotation ($n1 -> $n2)"

# --tail N: the last N lines of the live log.
[ "$(orchctl logs "$alloc" --tail 3 | grep -c '^line-')" = 3 ] || fail "--tail 3 did not give 3 lines"

# The follow streamed lines written after it started, across rotations, in
# order, without repeating any.
kill -0 "$follow_pid" 2>/dev/null || { cat "$IT_DIR/follow.err"; fail "orchctl logs --follow ended early"; }
sleep 1
kill -TERM "$follow_pid" 2>/dev/null || true
wait "$follow_pid" 2>/dev/null || true
lines=$(grep -c '^line-' "$IT_DIR/follow.out" || true)
[ "$lines" -gt 500 ] || fail "follow got only $lines lines"
sed -n 's/^line-\([0-9]*\) .*/\1/p' "$IT_DIR/follow.out" > "$IT_DIR/follow.nums"
sort -n -c "$IT_DIR/follow.nums" 2>/dev/null || fail "followed lines out of order"
[ "$(sort -n -u "$IT_DIR/follow.nums" | wc -l)" = "$(wc -l < "$IT_DIR/follow.nums")" ] || fail "followed lines repeated"
# copytruncate may lose what is written between the copy and the truncate:
# at most a few lines per rotation, never whole stretches.
first=$(head -n 1 "$IT_DIR/follow.nums"); last=$(tail -n 1 "$IT_DIR/follow.nums")
missing=$(( last - first + 1 - lines ))
[ "$missing" -le 40 ] || fail "follow lost $missing of $((last - first + 1)) lines"

# The agent ends follows itself when the allocation goes away.
orchctl logs "$alloc" --tail 0 --follow > "$IT_DIR/follow2.out" 2>&1 &
follow_pid=$!
sleep 1
orchctl delete service chatty > /dev/null
wait_until 20 "follow ends when the allocation is gone" sh -c "! kill -0 $follow_pid 2>/dev/null"
echo PASS
