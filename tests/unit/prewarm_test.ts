/**
 * Warm-up on synthetic frames (src/engine/prewarm.ts, src/engine/prewarmed_workers.ts):
 * the in-memory loopback forwards with the worker's own code and allocates nothing per
 * frame, warm-up stops at its frame count or its time bound, and workers warmed before any
 * port opens say what they did.
 */

import assert from "node:assert/strict";
import { InMemoryLoopback, type MakeQueue, prewarm } from "../../src/engine/prewarm.ts";
import { prewarmWorkers } from "../../src/engine/prewarmed_workers.ts";
import { VIRTIO_NET_HDR_SIZE } from "../../src/net/header.ts";
import { createVirtqueue } from "../../src/virtio/ring_format.ts";

const makeQueue: MakeQueue = (format, memory, offset, size, notify, name) =>
  createVirtqueue(format, memory, offset, { index: 0, size, eventIdx: true, notify, name });

function options(macRewrite = false) {
  const clock = new Float64Array(1);
  const mac = new Uint8Array([2, 0, 0, 0, 0, 9]);
  return {
    burst: 32,
    drainMs: 0.1,
    txFull: "wait" as const,
    macRewrite,
    headerSizes: [VIRTIO_NET_HDR_SIZE, VIRTIO_NET_HDR_SIZE],
    macs: [mac, mac],
    clock,
    tick: () => clock[0] += 0.001,
  };
}

Deno.test("the in-memory loopback allocates nothing per frame once warm, split or packed", () => {
  for (const [rewrite, format] of [[false, "split"], [true, "split"], [false, "packed"]] as const) {
    const o = options(rewrite);
    const loop = new InMemoryLoopback(o, makeQueue, format);
    const forward = (n: number) => {
      let f = 0;
      while (f < n) {
        o.tick();
        f += loop.poll();
      }
      return f;
    };
    assert.ok(forward(300_000) >= 300_000);
    // What reading the heap costs by itself (Deno.memoryUsage() returns a new object).
    const reading = () => {
      const a = Deno.memoryUsage().heapUsed;
      return Deno.memoryUsage().heapUsed - a;
    };
    const growth: number[] = [];
    for (let k = 0; k < 4; k++) {
      const base = reading();
      const h0 = Deno.memoryUsage().heapUsed;
      forward(1_000_000);
      growth.push(Deno.memoryUsage().heapUsed - h0 - base);
    }
    // One byte a frame would be 1 MB; V8 may still compile in a window, so the best counts.
    assert.ok(
      Math.min(...growth) < 1024,
      `${format}, mac rewrite ${rewrite}: the heap grew by ${
        growth.join(", ")
      } bytes per 1,000,000 frames`,
    );
    loop.close();
  }
});

Deno.test("warm-up stops at its frame count, or at its time bound whatever it reached", () => {
  const o = options();
  const r = prewarm(
    { ...o, frames: 50_000, maxMs: 60_000, formats: ["split", "packed"] },
    makeQueue,
  );
  assert.ok(r.frames >= 50_000 && r.frames < 50_000 + 64, `forwarded ${r.frames}`);
  assert.ok(r.ms > 0);
  const bounded = prewarm({ ...o, frames: 1e12, maxMs: 5 }, makeQueue);
  assert.ok(bounded.frames > 0 && bounded.frames < 1e12);
  assert.ok(bounded.ms >= 5, `stopped after ${bounded.ms} ms`);
});

Deno.test("workers warmed before any port opens report their frames and time", async () => {
  const warm = await prewarmWorkers(2, {
    frames: 20_000,
    formats: ["split", "packed"],
    burst: 32,
    drainMs: 0.1,
    txFull: "wait",
    macRewrite: false,
  });
  try {
    assert.equal(warm.count, 2);
    for (const f of warm.frames) assert.ok(f >= 20_000, `a worker forwarded ${f}`);
    for (const ms of warm.ms) assert.ok(ms > 0);
    const taken = warm.take();
    assert.equal(taken.length, 2);
    assert.throws(() => warm.take(), /already used/);
    for (const w of taken) w.terminate();
  } finally {
    warm.terminate(); // taken: a no-op
  }
});
