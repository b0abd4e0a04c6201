#!/usr/bin/env bash
# Installs what orch needs to build, run and test, from Debian's packages
# only. Safe to run again: it installs only what is missing.
#   deploy/install-deps.sh [--with-docker]
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git curl ca-certificates
  libuv1-dev libprotobuf-c-dev protobuf-c-compiler libjansson-dev
  libcurl4-openssl-dev libssl-dev libseccomp-dev libarchive-dev libcmocka-dev libnftables-dev libmnl-dev
  etcd-server etcd-client busybox-static iproute2 nftables systemd
  qemu-system-x86 crun runc e2fsprogs util-linux python3 openssl
)
# Only the tests need these: a registry to pull from, skopeo to push to it,
# and GNU cpio to cross-check the microVM initramfs writer.
[ "${ORCH_WITH_TEST_DEPS:-0}" = 1 ] && pkgs+=(docker-registry skopeo gzip cpio)
[ "${1:-}" = "--with-docker" ] && pkgs+=(docker.io docker-compose)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get needs it)" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
# Installing etcd-server on a systemd host starts its own etcd on :2379;
# orch starts the etcd it needs itself, so keep package scripts from
# starting services while we install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
