#!/usr/bin/env bash
# The main job: installs what is needed (tools/setup.sh), boots the QEMU test bed and runs
# examples/l2fwd.ts on its two virtio-net NICs with host-generated traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
echo "demo: the test bed's QEMU (built from Debian's source with a TCG fix the first time, a few minutes)"
bash tools/build_bed_qemu.sh >/tmp/virtio-deno-qemu-build.log 2>&1 || {
  tail -30 /tmp/virtio-deno-qemu-build.log
  echo "building the test bed's QEMU failed (log: /tmp/virtio-deno-qemu-build.log)"
  exit 1
}
exec deno run --allow-all tests/bed/demo.ts "$@"
