#!/usr/bin/env bash
# Builds the QEMU both test beds run: Debian 12's QEMU 7.2 from its own source package, with
# the vfio-user server (Debian's binary lacks `-object x-vfio-user-server`; the source
# package carries subprojects/libvfio-user), virtio-9p for the VM bed, and the fixes in
# tools/qemu_patches/ (why: tests/bed/README.md, "The bed's QEMU"). Run as root on Debian 12, it:
#   1. installs the build dependencies with apt-get (adds a bookworm deb-src entry if none),
#   2. unpacks the source package into a cache directory outside the repository
#      (default /var/cache/virtio-deno/qemu-bed, override with BED_QEMU_CACHE), downloading
#      it with `apt-get source qemu` the first time,
#   3. applies tools/qemu_patches/*.patch and stops pc-bios/meson.build from unpacking the
#      edk2 firmware blobs (the source package ships none, so meson would fail there),
#   4. configures x86_64-softmmu and builds qemu-system-x86_64 (the source package has no
#      firmware: the VM bed points -L at Debian's SeaBIOS and option ROMs).
# Idempotent: when the binary exists, starts and was built with the current patches, nothing
# is rebuilt; changed patches rebuild it from a clean source tree. The build tree is kept:
# the binary loads libvfio-user.so.0 from build/subprojects/libvfio-user/lib via its run path.
# The last line printed is the binary's path.
set -euo pipefail

CACHE="${BED_QEMU_CACHE:-/var/cache/virtio-deno/qemu-bed}"
PATCH_DIR="$(cd "$(dirname "$0")" && pwd)/qemu_patches"
BUILD_DEPS=(
  dpkg-dev ninja-build meson python3 gcc pkg-config flex bison libglib2.0-dev libpixman-1-dev
  libjson-c-dev libcmocka-dev libslirp-dev libfdt-dev zlib1g-dev libcap-ng-dev libattr1-dev patch
)
# What the tree must have been patched with: one line per patch, its sha256 and name.
PATCH_STAMP="$(cd "$PATCH_DIR" && sha256sum ./*.patch)"
SRC_LIST=/etc/apt/sources.list.d/virtio-deno-bookworm-src.sources

log() { echo "build_bed_qemu: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "run as root (it installs Debian packages)."
  exit 1
fi

find_binary() {
  local b
  for b in "$CACHE"/qemu-*/build/qemu-system-x86_64; do
    if [ -x "$b" ] && [ "$(cat "${b%/build/*}/.virtio-deno-patches" 2>/dev/null)" = "$PATCH_STAMP" ] &&
      "$b" -object help 2>/dev/null | grep -q x-vfio-user-server &&
      "$b" -device help 2>/dev/null | grep -q '"virtio-9p-pci"'; then
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
src_dir="$(find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | sort | tail -1)"

# 2. Source package, unpacked afresh whenever the tree was patched differently.
if [ -n "$src_dir" ] && [ "$(cat "$src_dir/.virtio-deno-patches" 2>/dev/null)" != "$PATCH_STAMP" ]; then
  log "the source tree in $src_dir was not built with the current patches: unpacking it again"
  rm -rf "$src_dir"
  src_dir=""
fi
if [ -z "$src_dir" ] && ! ls "$CACHE"/qemu_*.dsc >/dev/null 2>&1; then
  if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding $SRC_LIST"
    cat >"$SRC_LIST" <<'SOURCES'
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
SOURCES
    apt_updated=0
  fi
  if [ "$apt_updated" = 0 ]; then apt-get update -q >/dev/null; fi
  log "fetching the qemu source package into $CACHE"
  rm -rf "$CACHE"/qemu-* "$CACHE"/qemu_*
  (cd "$CACHE" && apt-get source -q --download-only qemu >/dev/null 2>&1) || {
    log "apt-get source qemu failed; run it by hand in $CACHE to see why."
    exit 1
  }
fi
if [ -z "$src_dir" ]; then
  log "unpacking the qemu source package in $CACHE"
  (cd "$CACHE" && dpkg-source -x "$(ls qemu_*.dsc | tail -1)" >"$CACHE/unpack.log" 2>&1) || {
    log "dpkg-source -x failed in $CACHE (see $CACHE/unpack.log); remove $CACHE and run again."
    exit 1
  }
  src_dir="$(find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | sort | tail -1)"
  if [ -z "$src_dir" ] || [ ! -f "$src_dir/subprojects/libvfio-user/meson.build" ]; then
    log "the unpacked source in $CACHE has no subprojects/libvfio-user."
    exit 1
  fi
  for p in "$PATCH_DIR"/*.patch; do
    log "applying $(basename "$p")"
    patch -d "$src_dir" -p1 -s --forward <"$p" || {
      log "$(basename "$p") does not apply to $src_dir."
      exit 1
    }
  done
  echo "$PATCH_STAMP" >"$src_dir/.virtio-deno-patches"
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
    --enable-vfio-user-server --enable-multiprocess --enable-slirp --enable-virtfs \
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
log "building qemu-system-x86_64 (6–7 minutes on 2 cores; log: $CACHE/build.log)"
ninja -C build qemu-system-x86_64 >"$CACHE/build.log" 2>&1 || {
  log "ninja failed; see $CACHE/build.log"
  tail -30 "$CACHE/build.log" >&2
  exit 1
}

if bin="$(find_binary)"; then
  echo "$bin"
else
  log "built, but $src_dir/build/qemu-system-x86_64 lacks x-vfio-user-server or virtio-9p-pci."
  exit 1
fi
