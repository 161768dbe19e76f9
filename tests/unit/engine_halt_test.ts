/**
 * The engine's halt word (control.ts CTL_HALT, ForwardingEngine.halt/resume; testpmd's
 * interactive stop and start) against the forwarding worker and two fake devices
 * (engine_fake_nic.ts): halted, frames wait in the receive ring and nothing goes out;
 * resumed, every one of them comes out in order. The tx_first word beside it
 * (CTL_TX_FIRST_BURSTS): requests add up.
 */

import assert from "node:assert/strict";
import { CTL_HALT, CTL_TX_FIRST_BURSTS } from "../../src/engine/control.ts";
import { TX_FIRST_FRAME } from "../../src/engine/tx_first.ts";
import { P_RX_PACKETS, portBase, W_LOOPS } from "../../src/engine/counters.ts";
import { udpFrames } from "../bed/frames.ts";
import { FakeBed } from "./engine_fake_nic.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("engine worker: halted it polls nothing, resumed it forwards what waited, in order", async () => {
  const bed = await FakeBed.start();
  try {
    const frames = udpFrames({ seed: 7, count: 40, flows: 4 });
    Atomics.store(bed.control, CTL_HALT, 1);
    // The worker reads the word every 64 polls, when it also updates W_LOOPS: once that
    // moved on by two such steps, it has read the word set.
    const loops = bed.counters[W_LOOPS];
    while (bed.counters[W_LOOPS] < loops + 128) await sleep(5);
    const before = bed.counters[portBase(0) + P_RX_PACKETS];
    for (const f of frames) assert.ok(bed.inject(0, f));
    bed.publishRx(0);
    await sleep(300);
    assert.equal(bed.counters[portBase(0) + P_RX_PACKETS], before, "halted: nothing received");
    assert.equal(bed.drainTx(1).length, 0, "halted: nothing sent");
    Atomics.store(bed.control, CTL_HALT, 0);
    const out: Uint8Array[] = [];
    for (let i = 0; i < 200 && out.length < frames.length; i++) {
      await sleep(10);
      out.push(...bed.drainTx(1));
    }
    assert.equal(out.length, frames.length);
    for (let i = 0; i < frames.length; i++) assert.deepEqual(out[i], frames[i], `frame ${i}`);
  } finally {
    await bed.close();
  }
});

Deno.test("engine worker: tx_first requests close together add up, each port sending their bursts", async () => {
  const bed = await FakeBed.start({ burst: 8 });
  try {
    // Two requests with no poll between them: 2 + 3 bursts of 8 frames on each port.
    Atomics.add(bed.control, CTL_TX_FIRST_BURSTS, 2);
    Atomics.add(bed.control, CTL_TX_FIRST_BURSTS, 3);
    const out: Uint8Array[][] = [[], []];
    for (let i = 0; i < 200 && out[0].length + out[1].length < 80; i++) {
      await sleep(10);
      for (const p of [0, 1]) out[p].push(...bed.drainTx(p));
    }
    await sleep(100);
    for (const p of [0, 1]) {
      out[p].push(...bed.drainTx(p));
      assert.equal(out[p].length, 5 * 8, `port ${p}`);
      for (const f of out[p]) {
        assert.equal(f.length, TX_FIRST_FRAME);
        assert.equal(f[23], 17, "UDP");
      }
    }
  } finally {
    await bed.close();
  }
});
