#!/usr/bin/env bash
# Installs what the test beds and the demo need on Debian 12 (as root): Deno from npm
# (pinned), QEMU, the Debian kernel (booted by the VM test bed), busybox, and the host-side
# packet tools. Idempotent: installs only what is missing.
set -euo pipefail

DENO_VERSION=2.9.6
APT_PACKAGES=(
  qemu-system-x86 linux-image-amd64 busybox-static cpio kmod iproute2
  tcpdump tcpreplay python3-scapy gcc libc6-dev linux-libc-dev
)
# DPDK 22.11: dpdk-testpmd (in dpdk-dev) with its virtio PMD, run inside the VM bed's guest
# as the reference forwarder of tests/mixed_traffic_vm_test.ts.
APT_PACKAGES+=(dpdk-dev librte-net-virtio23 librte-mempool-ring23)
# A real terminal for testpmd.ts's interactive session (tests/testpmd_vhost_user_test.ts).
APT_PACKAGES+=(tmux)
# The vhost-user test bed (tests/bed/vhost_user_bed.ts): testpmd on the host as the vhost-user
# back-end (net_vhost PMD) with pcap-fed ports (net_pcap PMD, pulls libpcap0.8); its test's
# front-end is DPDK's virtio-user (in librte-net-virtio23 above).
APT_PACKAGES+=(librte-net-vhost23 librte-net-pcap23)

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "tools/setup.sh: run as root (it installs Debian packages and drives VFIO)." >&2
    exit 1
  fi
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if ! deno --version 2>/dev/null | grep -q "^deno $DENO_VERSION "; then
  echo "setup: installing deno $DENO_VERSION from npm"
  $SUDO npm install -g --no-fund --no-audit "deno@$DENO_VERSION" >/dev/null
fi
deno --version | head -1
