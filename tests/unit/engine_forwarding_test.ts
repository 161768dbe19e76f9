/**
 * The forwarding worker end to end against two fake devices (engine_fake_nic.ts): frames
 * injected on one port come out of the other byte for byte and in order, counters add up,
 * the transmit buffer drains on time, and the hot path does not allocate.
 */

import assert from "node:assert/strict";
import {
  P_DROP_TX_RING_FULL,
  P_RX_PACKETS,
  P_TX_BYTES,
  P_TX_PACKETS,
  portBase,
  W_HEAP_DROPS,
  W_HEAP_LAST,
  W_HEAP_WARM,
} from "../../src/engine/counters.ts";
import { udpFrames } from "../bed/frames.ts";
import { FakeBed } from "./engine_fake_nic.ts";

/**
 * Sends `frames` into port `from` and collects what port `from ^ 1` sends, keeping at most
 * `window` frames in flight (as a device of finite speed would: a transmit ring that the
 * device does not empty overflows, and the worker counts that as a drop).
 */
async function pump(
  bed: FakeBed,
  from: number,
  frames: Uint8Array[],
  out: Uint8Array[][],
  window = 128,
): Promise<void> {
  const to = from ^ 1, start = out[to].length;
  let i = 0;
  const until = performance.now() + 60000;
  while (out[to].length - start < frames.length) {
    if (performance.now() > until) {
      throw new Error(`only ${out[to].length - start} frames came out`);
    }
    let n = 0;
    while (i < frames.length && i - (out[to].length - start) < window) {
      if (!bed.inject(from, frames[i])) break;
      i++;
      n++;
    }
    bed.publishRx(from);
    for (let p = 0; p < 2; p++) out[p].push(...bed.drainTx(p));
    if (n === 0) await new Promise((r) => setTimeout(r, 0));
  }
}

Deno.test("engine worker: forwards 20,000 frames each way between two fake ports, byte for byte", async () => {
  const bed = await FakeBed.start();
  try {
    const a = udpFrames({ seed: 1, count: 20000, flows: 64 });
    const b = udpFrames({ seed: 2, count: 20000, flows: 64 });
    const out: Uint8Array[][] = [[], []];
    await pump(bed, 0, a, out);
    await pump(bed, 1, b, out);
    assert.equal(out[1].length, a.length);
    assert.equal(out[0].length, b.length);
    for (let i = 0; i < a.length; i++) assert.deepEqual(out[1][i], a[i], `0→1 frame ${i}`);
    for (let i = 0; i < b.length; i++) assert.deepEqual(out[0][i], b[i], `1→0 frame ${i}`);
    const c = bed.counters;
    assert.equal(c[portBase(0) + P_RX_PACKETS], 20000);
    assert.equal(c[portBase(1) + P_TX_PACKETS], 20000);
    assert.equal(c[portBase(1) + P_TX_BYTES], a.reduce((s, f) => s + f.length, 0));
    assert.equal(c[portBase(1) + P_DROP_TX_RING_FULL], 0);
  } finally {
    const done = await bed.close();
    assert.equal(done?.type, "done");
  }
});

Deno.test("engine worker: the forwarding loop allocates nothing once warm (no GC, heap flat)", async () => {
  const bed = await FakeBed.start({ warmupPackets: 20000 });
  try {
    const frames = udpFrames({ seed: 3, count: 2000, flows: 16 });
    const out: Uint8Array[][] = [[], []];
    const rounds = async (n: number) => {
      for (let r = 0; r < n; r++) {
        out[0].length = 0;
        out[1].length = 0;
        await pump(bed, r & 1, frames, out);
      }
    };
    const sample = async () => {
      await new Promise((r) => setTimeout(r, 1200)); // the worker samples once a second
      return { heap: bed.counters[W_HEAP_LAST], drops: bed.counters[W_HEAP_DROPS] };
    };
    // 200,000 frames of warm-up: V8 keeps optimising (and growing the heap by code) for
    // the first 100,000 or so.
    await rounds(100);
    const before = await sample();
    // 200,000 frames: if each allocated even 8 bytes, that is 1.6 MB, more than the young
    // generation holds at first, so a GC would run and the heap would grow or drop.
    await rounds(100);
    const after = await sample();
    const growth = after.heap - before.heap;
    console.log(
      `worker heap: ${
        bed.counters[W_HEAP_WARM]
      } B at warm-up, ${before.heap} B before and ${after.heap} B after 200,000 more frames (${growth} B); GCs seen: ${
        after.drops - before.drops
      }`,
    );
    assert.ok(bed.counters[W_HEAP_WARM] > 0);
    assert.equal(after.drops, before.drops, "a GC ran in the worker while it forwarded");
    // Only the once-a-second heap samples themselves allocate (a few hundred bytes each).
    assert.ok(growth < 32768, `the worker's heap grew by ${growth} bytes`);
  } finally {
    await bed.close();
  }
});
