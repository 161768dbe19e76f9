#!/usr/bin/env bash
# Runs the mixed-traffic bed tests (tests/mixed_traffic_vm_test.ts: l2fwd and DPDK testpmd
# in the VM bed; tests/mixed_traffic_vfio_user_test.ts and tests/mixed_traffic_vhost_user_test.ts:
# l2fwd in the vfio-user and vhost-user beds) N times
# (default 5), one test file at a time, each run with other frames (MIXED_RUN), and prints
# per run and in total, for each bed, forwarder and queue count: frames sent, captured,
# byte-identical and reordered within their flow. Exits 1 when any run failed.
#
#   bash tools/mixed_runs.sh [N]      (as root; logs in $MIXED_LOG_DIR, default a temp dir)
set -uo pipefail

N="${1:-5}"
if ! [[ "$N" =~ ^[1-9][0-9]*$ ]]; then
  echo "mixed_runs.sh: N must be a positive whole number of runs, not '$N'." >&2
  exit 2
fi
cd "$(dirname "$0")/.."
LOG_DIR="${MIXED_LOG_DIR:-$(mktemp -d /tmp/mixed-runs-XXXXXX)}"
mkdir -p "$LOG_DIR"
failed=0
for run in $(seq 1 "$N"); do
  for t in tests/mixed_traffic_vm_test.ts tests/mixed_traffic_vfio_user_test.ts \
    tests/mixed_traffic_vhost_user_test.ts; do
    log="$LOG_DIR/run$run-$(basename "$t" .ts).log"
    start=$SECONDS
    if NO_COLOR=1 MIXED_RUN="$run" deno test --allow-all "$t" >"$log" 2>&1; then
      echo "run $run $t: ok ($((SECONDS - start)) s)"
    else
      echo "run $run $t: FAILED ($((SECONDS - start)) s), see $log"
      grep -E "^error|AssertionError|Error:" "$log" | head -5 | sed 's/^/  /'
      failed=1
    fi
  done
done

# Adds up the MIXED {json} lines the tests printed.
cat "$LOG_DIR"/run*.log | grep -h '^MIXED ' | deno eval --quiet '
const lines = (await new Response(Deno.stdin.readable).text()).trim().split("\n")
  .filter((l) => l).map((l) => JSON.parse(l.slice(6)));
const key = (l) => `${l.bed} ${l.forwarder} --queues ${l.queues}`;
const row = (k, l) =>
  `${k.padEnd(34)} ${String(l.sent).padStart(7)} ${String(l.captured).padStart(8)} ` +
  `${String(l.identical).padStart(14)} ${String(l.reordered).padStart(9)} ` +
  `${String(l.reorderedFlows).padStart(15)}`;
const head = `${"".padEnd(34)} ${"sent".padStart(7)} ${"captured".padStart(8)} ` +
  `${"byte-identical".padStart(14)} ${"reordered".padStart(9)} ${"reordered flows".padStart(15)}`;
const runs = [...new Set(lines.map((l) => l.run))].sort((a, b) => a - b);
for (const r of runs) {
  console.log(`\nrun ${r}\n${head}`);
  for (const l of lines.filter((l) => l.run === r)) {
    const kinds = Object.entries(l.reorderedByKind).map(([k, n]) => `${k} ${n}`).join(", ");
    console.log(row(key(l), l) + (kinds ? `  (${kinds})` : ""));
  }
}
const total = new Map();
for (const l of lines) {
  const t = total.get(key(l)) ?? { runs: 0, sent: 0, captured: 0, identical: 0, reordered: 0,
    reorderedFlows: 0 };
  for (const f of ["sent", "captured", "identical", "reordered", "reorderedFlows"]) t[f] += l[f];
  t.runs++;
  total.set(key(l), t);
}
console.log(`\ntotal over ${runs.length} runs\n${head}   runs`);
for (const [k, t] of total) console.log(`${row(k, t)} ${String(t.runs).padStart(6)}`);
'
echo "logs: $LOG_DIR"
exit "$failed"
