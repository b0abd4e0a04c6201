#!/bin/bash
# Fetches the microVM guest kernel: Debian's cloud kernel package, downloaded
# with apt-get download and unpacked with dpkg-deb (never installed), into
#
#   DIR/guest-kernel/<version>/vmlinuz
#   DIR/guest-kernel/<version>/vmlinux   (uncompressed, when it has a PVH entry:
#                                         QEMU's microvm boots it directly,
#                                         0.4 s faster under TCG but 35 MiB more
#                                         VMM memory; the agent uses it only with
#                                         ORCH_VM_PVH=1)
#   DIR/guest-kernel/<version>/modules/NN-name.ko   (load order: deps first)
#   DIR/guest-kernel/<version>/modules.order         (the same, one a line)
#   DIR/guest-kernel/current                         (<version>)
#
# The guest needs virtio-mmio (QEMU's microvm machine has no PCI), the block,
# net and console drivers and vsock; in Debian's cloud kernel these are
# modules (=m), so the guest init loads them from the boot image.
#
# Usage: fetch-guest-kernel.sh DIR     (DIR is the agent's state dir or a cache)
# Idempotent: returns at once when DIR/guest-kernel/current names a complete
# kernel. Set ORCH_GUEST_KERNEL_PKG to pin a package (linux-image-6.1.0-N-cloud-amd64).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
base="$dir/guest-kernel"
mkdir -p "$base"

# extract_vmlinux BZIMAGE OUT: the ELF kernel inside a bzImage, kept only
# when it has a PVH entry point (ELF note 0x12). Quietly does nothing when
# the decompressor is missing.
extract_vmlinux() {
  local img=$1 out=$2 magic tool off
  for pair in '\x02\x21\x4c\x18:lz4 -dc' '\xfd\x37\x7a\x58\x5a\x00:xz -dc' \
    '\x28\xb5\x2f\xfd:zstd -qdc' '\x1f\x8b\x08:gzip -dc'; do
    magic=${pair%%:*}
    tool=${pair#*:}
    command -v "${tool%% *}" >/dev/null || continue
    for off in $(LC_ALL=C grep -abo "$(printf "$magic")" "$img" 2>/dev/null | cut -d: -f1 | head -n 4); do
      tail -c +$((off + 1)) "$img" | $tool >"$out.tmp" 2>/dev/null || true
      if [ "$(head -c 4 "$out.tmp" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] &&
        readelf -n "$out.tmp" 2>/dev/null | grep -q 'Unknown note type: (0x00000012)'; then
        mv "$out.tmp" "$out"
        return 0
      fi
    done
  done
  rm -f "$out.tmp"
  return 0
}

if [ -f "$base/current" ]; then
  v=$(cat "$base/current")
  if [ -n "$v" ] && [ -s "$base/$v/vmlinuz" ] && [ -s "$base/$v/modules.order" ]; then
    # Caches made before vmlinux was extracted get it now, once.
    if [ ! -e "$base/$v/vmlinux" ] && [ ! -e "$base/$v/no-vmlinux" ]; then
      extract_vmlinux "$base/$v/vmlinuz" "$base/$v/vmlinux"
      [ -e "$base/$v/vmlinux" ] || : >"$base/$v/no-vmlinux"
    fi
    echo "$v"
    exit 0
  fi
fi

pkg=${ORCH_GUEST_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
  # The meta package depends on the current versioned one.
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9].*-cloud-amd64/ { print $2; exit }')
fi
if [ -z "$pkg" ]; then
  echo "$0: cannot resolve the cloud kernel package (apt-get update?)" >&2
  exit 1
fi

work=$(mktemp -d "$base/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
deb=$(ls "$work"/*.deb)
dpkg-deb -x "$deb" "$work/x"

vmlinuz=$(ls "$work"/x/boot/vmlinuz-* | head -n1)
v=${vmlinuz##*/vmlinuz-}
mods="$work/x/lib/modules/$v"
[ -d "$mods" ] || { echo "$0: no modules for $v in $pkg" >&2; exit 1; }
config="$work/x/boot/config-$v"

out="$work/out"
mkdir -p "$out/modules"
cp "$vmlinuz" "$out/vmlinuz"
extract_vmlinux "$out/vmlinuz" "$out/vmlinux"
[ -e "$out/vmlinux" ] || : >"$out/no-vmlinux"
[ -f "$config" ] && cp "$config" "$out/config"

# Wanted drivers, by config symbol and module path. A driver that is built in
# (=y) needs no module; one that is absent is an error for the required ones.
wanted="
VIRTIO_MMIO kernel/drivers/virtio/virtio_mmio.ko
VIRTIO_BLK kernel/drivers/block/virtio_blk.ko
VIRTIO_NET kernel/drivers/net/virtio_net.ko
VIRTIO_CONSOLE kernel/drivers/char/virtio_console.ko
VIRTIO_VSOCKETS kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko
EXT4_FS kernel/fs/ext4/ext4.ko
"

# The package ships no modules.dep (depmod makes it at install time): read
# each module's dependencies from its .modinfo section and resolve them
# depth-first, so that every module follows what it needs.
declare -A seen=()
order=()
mod_path() { # module name -> path relative to $mods
  local n=${1//-/_} f
  f=$(find "$mods/kernel" \( -name "$n.ko*" -o -name "${n//_/-}.ko*" \) | head -n1)
  [ -n "$f" ] && echo "${f#$mods/}"
}
add_module() {
  local m=$1 deps d p
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  if [ ! -f "$mods/$m" ]; then
    echo "$0: $m not in the package" >&2
    return 1
  fi
  deps=$(objcopy -O binary --only-section=.modinfo "$mods/$m" /dev/stdout 2>/dev/null |
    tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' ')
  for d in $deps; do
    p=$(mod_path "$d")
    if [ -z "$p" ]; then
      echo "$0: $m needs $d, which is not in the package" >&2
      return 1
    fi
    add_module "$p"
  done
  order+=("$m")
}

while read -r sym path; do
  [ -n "$sym" ] || continue
  val=""
  [ -f "$config" ] && val=$(grep -E "^CONFIG_${sym}=" "$config" | cut -d= -f2) || true
  case "$val" in
    y) continue ;;
    m | "") add_module "$path" ;;
  esac
done <<<"$wanted"

i=0
: >"$out/modules.order"
for m in "${order[@]}"; do
  name=$(basename "$m")
  src="$mods/$m"
  dst=$(printf '%02d-%s' "$i" "$name")
  case "$name" in
    *.ko.xz) xz -dc "$src" >"$out/modules/${dst%.xz}"; dst=${dst%.xz} ;;
    *.ko.zst) zstd -qdc "$src" >"$out/modules/${dst%.zst}"; dst=${dst%.zst} ;;
    *) cp "$src" "$out/modules/$dst" ;;
  esac
  echo "$dst" >>"$out/modules.order"
  i=$((i + 1))
done

rm -rf "${base:?}/$v"
mv "$out" "$base/$v"
echo "$v" >"$base/current.tmp"
mv "$base/current.tmp" "$base/current"
echo "$v"
