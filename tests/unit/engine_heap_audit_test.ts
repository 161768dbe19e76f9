/**
 * Heap figures cost no packets by default: a forwarding worker forces full GCs only with
 * the engine option `heapAudit` (each one pauses forwarding), and the snapshot says
 * whether its heap figures are live memory. Run against the fake NIC (engine_fake_nic.ts).
 */

import assert from "node:assert/strict";
import { counterLayout, W_HEAP_WARM } from "../../src/engine/counters.ts";
import { readSnapshot, type WorkerStats } from "../../src/engine/snapshot.ts";
import { udpFrames } from "../bed/frames.ts";
import { FakeBed } from "./engine_fake_nic.ts";

/** Forwards past warm-up (1,000 packets), waits for warm-up to end, stops the worker. */
async function worker(heapAudit?: boolean): Promise<WorkerStats> {
  const bed = await FakeBed.start({ warmupPackets: 1000, heapAudit });
  try {
    const frames = udpFrames({ seed: 21, count: 1500, flows: 8 });
    await bed.exchange(0, frames);
    await bed.exchange(1, frames);
    // Past twice the warm-up packets, warm-up ends at the next once-a-second sample.
    const until = performance.now() + 10000;
    while (bed.counters[W_HEAP_WARM] === 0 && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    const done = await bed.close();
    assert.equal(done?.type, "done");
  }
  const layout = counterLayout(2, 0, 0);
  return readSnapshot([bed.counters], layout, ["fake0", "fake1"], []).workers[0];
}

Deno.test("by default a worker forces no GC and reports its heap figures as not live", async () => {
  const w = await worker();
  assert.equal(w.state, "done");
  assert.equal(w.heapLive, false, "heapLive");
  assert.equal(w.forcedGcs, 0, "forced GCs");
  assert.ok(w.heapWarm > 0, "the heap is still sampled at warm-up");
  assert.ok(w.heapLast > 0, "the heap is still sampled at the stop");
});

Deno.test("with heapAudit a worker forces its GCs and reports live heap figures", async () => {
  const w = await worker(true);
  assert.equal(w.heapLive, true, "heapLive");
  // The first sample, the end of warm-up and the stop.
  assert.equal(w.forcedGcs, 3, "forced GCs");
  assert.ok(w.heapWarm > 0 && w.heapLast > 0);
});
