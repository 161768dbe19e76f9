#!/usr/bin/env bash
# The main job: installs what is needed (tools/setup.sh), boots the QEMU test bed and runs
# examples/l2fwd.ts on its two virtio-net NICs with host-generated traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec deno run --allow-all tests/bed/demo.ts "$@"
