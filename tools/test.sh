#!/usr/bin/env bash
# Runs every check and test: formatting, lint, type check, doc lint, the unit tests and
# the driver against QEMU in the test beds. Installs what it needs first (tools/setup.sh).
# Ends with a plain "N passed, N failed" line; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
if [ -f tools/build_bed_qemu.sh ]; then
  bash tools/build_bed_qemu.sh >/tmp/virtio-deno-qemu-build.log 2>&1 || {
    tail -30 /tmp/virtio-deno-qemu-build.log
    echo "building the test beds' QEMU failed (log: /tmp/virtio-deno-qemu-build.log)"
    echo "0 passed, 1 failed"
    exit 1
  }
fi

passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@" >/tmp/virtio-deno-check.log 2>&1; then
    echo "check ok: $name"
    passed=$((passed + 1))
  else
    cat /tmp/virtio-deno-check.log
    echo "check FAILED: $name"
    failed=$((failed + 1))
  fi
}
check "deno fmt --check" deno fmt --check
check "deno lint" deno lint
check "deno check" deno task -q check
check "deno doc --lint" deno doc --lint mod.ts low_level.ts
check "imports point down the layers (docs/architecture.md)" deno run --allow-read tools/check_layers.ts

log=$(mktemp)
# --no-check: "deno check" above type-checked every test already; checking again here would
# also type-check each forwarding worker's modules every time a test starts an engine.
NO_COLOR=1 deno test --allow-all --no-check "${@:-tests/}" 2>&1 | tee "$log"
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -1)
if [ -n "$summary" ]; then
  p=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
  f=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
  passed=$((passed + p))
  failed=$((failed + f))
else
  echo "deno test ended without a summary line"
  failed=$((failed + 1))
fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
