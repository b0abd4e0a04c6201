#!/bin/sh
# make-busybox-image.sh OUT.tar
#
# Builds a minimal busybox root filesystem (Debian's busybox-static: one
# static binary plus a symlink per applet) and writes it as a tar archive
# with numeric owners, ready for `orchctl image import busybox OUT.tar`.
# The archive is a build product: never commit it.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUT.tar" >&2
  exit 2
fi
out=$1

busybox=/bin/busybox
if ! [ -x "$busybox" ] || ! "$busybox" --list >/dev/null 2>&1; then
  echo "make-busybox-image: $busybox missing, installing busybox-static" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >&2
fi
# The image must not depend on the host's libraries.
if ldd "$busybox" >/dev/null 2>&1; then
  echo "make-busybox-image: $busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/busybox-root.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM

for d in bin sbin etc proc sys dev tmp root var var/www usr usr/bin usr/sbin; do
  mkdir -p "$root/$d"
done
chmod 0755 "$root"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"

# One symlink per applet, where busybox would install it (bin for most).
"$root/bin/busybox" --list-full 2>/dev/null | while read -r path; do
  [ -n "$path" ] || continue
  case $path in bin/busybox | linuxrc) continue ;; esac
  mkdir -p "$root/$(dirname "$path")"
  [ -e "$root/$path" ] || ln -s /bin/busybox "$root/$path"
done
# Older busybox builds have no --list-full: fall back to bin/<applet>.
"$root/bin/busybox" --list | while read -r applet; do
  [ -n "$applet" ] || continue
  case $applet in busybox | linuxrc) continue ;; esac
  found=
  for d in bin sbin usr/bin usr/sbin; do
    if [ -e "$root/$d/$applet" ] || [ -L "$root/$d/$applet" ]; then found=1; fi
  done
  [ -n "$found" ] || ln -s busybox "$root/bin/$applet"
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo busybox >"$root/etc/hostname"
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/hostname"

tmp_out="$out.tmp.$$"
tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$tmp_out" .
mv "$tmp_out" "$out"
echo "make-busybox-image: wrote $out ($("$root/bin/busybox" --list | wc -l) applets)" >&2
