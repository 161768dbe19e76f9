#!/usr/bin/env bash
# Builds QEMU 7.2 with its vfio-user server (test bed 2) from Debian's own source package.
#
# Debian's qemu-system-x86 binary lacks `-object x-vfio-user-server`, but the source package
# carries subprojects/libvfio-user. This script, run as root on Debian 12:
#   1. installs the build dependencies with apt-get (adds a bookworm deb-src entry if none),
#   2. unpacks `apt-get source qemu` into a cache directory outside the repository
#      (default /var/cache/virtio-deno/qemu-vfio-user, override with QEMU_VFIO_USER_CACHE),
#   3. stops pc-bios/meson.build from unpacking the edk2 firmware blobs (the source package
#      ships none, so meson would fail there),
#   4. configures x86_64-softmmu with the vfio-user server and builds qemu-system-x86_64.
# Idempotent: when the binary exists and starts, nothing is rebuilt. The build tree is kept:
# the binary loads libvfio-user.so.0 from build/subprojects/libvfio-user/lib via its run path.
# The last line printed is the binary's path.
set -euo pipefail

CACHE="${QEMU_VFIO_USER_CACHE:-/var/cache/virtio-deno/qemu-vfio-user}"
BUILD_DEPS=(
  dpkg-dev ninja-build meson python3 gcc pkg-config flex bison libglib2.0-dev libpixman-1-dev
  libjson-c-dev libcmocka-dev libslirp-dev libfdt-dev zlib1g-dev
)
SRC_LIST=/etc/apt/sources.list.d/virtio-deno-bookworm-src.sources

log() { echo "build_qemu_vfio_user: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "run as root (it installs Debian packages)."
  exit 1
fi

find_binary() {
  local b
  for b in "$CACHE"/qemu-*/build/qemu-system-x86_64; do
    if [ -x "$b" ] && "$b" -object help 2>/dev/null | grep -q x-vfio-user-server; then
      echo "$b"
      return 0
    fi
  done
  return 1
}

if bin="$(find_binary)"; then
  echo "$bin"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive

# 1. Build dependencies.
missing=()
for p in "${BUILD_DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt_updated=0
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -q >/dev/null
  apt_updated=1
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$CACHE"
src_dir="$(find "$CACHE" -maxdepth 1 -type d -name 'qemu-*' | sort | tail -1)"

# 2. Source package (deb-src entry for bookworm if apt has none).
if [ -z "$src_dir" ] || [ ! -f "$src_dir/subprojects/libvfio-user/meson.build" ]; then
  if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding $SRC_LIST"
    cat >"$SRC_LIST" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt_updated=0
  fi
  if [ "$apt_updated" = 0 ]; then apt-get update -q >/dev/null; fi
  log "fetching the qemu source package into $CACHE"
  rm -rf "$CACHE"/qemu-* "$CACHE"/qemu_*
  (cd "$CACHE" && apt-get source -q qemu >/dev/null 2>&1) || {
    log "apt-get source qemu failed; run it by hand in $CACHE to see why."
    exit 1
  }
  src_dir="$(find "$CACHE" -maxdepth 1 -type d -name 'qemu-*' | sort | tail -1)"
  if [ -z "$src_dir" ] || [ ! -f "$src_dir/subprojects/libvfio-user/meson.build" ]; then
    log "the unpacked source in $CACHE has no subprojects/libvfio-user."
    exit 1
  fi
fi

# 3. No prebuilt firmware in the source package: never run the edk2 unpack block.
if grep -q '^if unpack_edk2_blobs' "$src_dir/pc-bios/meson.build"; then
  log "patching pc-bios/meson.build (no edk2 blobs in the source package)"
  sed -i 's/^if unpack_edk2_blobs/if false and unpack_edk2_blobs/' "$src_dir/pc-bios/meson.build"
fi

# 4. Configure (once) and build.
cd "$src_dir"
if [ ! -f build/build.ninja ]; then
  log "configuring in $src_dir/build"
  rm -rf build
  ./configure --target-list=x86_64-softmmu \
    --enable-vfio-user-server --enable-multiprocess --enable-slirp \
    --disable-docs --disable-werror --disable-tools --disable-guest-agent \
    --disable-install-blobs \
    --disable-gtk --disable-sdl --disable-vnc --disable-curses --disable-spice \
    --disable-opengl --disable-virglrenderer --disable-cocoa --disable-brlapi \
    >"$CACHE/configure.log" 2>&1 || {
    log "configure failed; see $CACHE/configure.log"
    tail -20 "$CACHE/configure.log" >&2
    rm -rf build
    exit 1
  }
fi
log "building qemu-system-x86_64 (about 150 s on 2 cores; log: $CACHE/build.log)"
ninja -C build qemu-system-x86_64 >"$CACHE/build.log" 2>&1 || {
  log "ninja failed; see $CACHE/build.log"
  tail -30 "$CACHE/build.log" >&2
  exit 1
}

if bin="$(find_binary)"; then
  echo "$bin"
else
  log "built, but $src_dir/build/qemu-system-x86_64 does not offer x-vfio-user-server."
  exit 1
fi
