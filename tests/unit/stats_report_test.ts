/** The report l2fwd prints (src/engine/stats_report.ts): rates, and device faults. */

import assert from "node:assert/strict";
import { buildReport } from "../../src/engine/stats_report.ts";
import type { EngineSnapshot } from "../../src/engine/snapshot.ts";
import { counters } from "./queue_counters_fixture.ts";

/** One port of one queue pair that received `rx` frames. */
function snapshot(rx: number): EngineSnapshot {
  const c = counters({ rxPackets: rx, rxBytes: 64 * rx });
  return {
    ports: [{ port: 0, name: "p0", ...c, kicks: 0, queues: [{ queue: 0, ...c }] }],
    workers: [],
    scriptCounters: null,
  } as unknown as EngineSnapshot;
}

const ctx = { event: "stats" as const, elapsedS: 2, intervalS: 0.5, links: ["up"] };

Deno.test("buildReport() gives rates per second since the previous snapshot", () => {
  const r = buildReport(snapshot(1500), snapshot(1000), ctx);
  assert.equal(r.ports[0].rxPps, 1000);
  assert.equal(r.ports[0].queues[0].rxPps, 1000);
  assert.equal(r.ports[0].link, "up");
});

Deno.test("buildReport() carries device faults once there is one, and no field before", () => {
  assert.equal("faults" in buildReport(snapshot(1), null, ctx), false);
  assert.equal("faults" in buildReport(snapshot(1), null, { ...ctx, faults: [] }), false);
  const fault = { atS: 1.5, reason: "0000:00:04.0 was reset under the driver." };
  assert.deepEqual(buildReport(snapshot(1), null, { ...ctx, faults: [fault] }).faults, [fault]);
});
