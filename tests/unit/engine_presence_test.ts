/**
 * Workers' presence words (src/engine/control.ts): a worker is inside shared memory from
 * before its first access until it will never access it again, and one that enters after
 * the stop flag leaves at once; against the fake NIC, a worker stuck in its loop stays
 * inside after the stop (its memory is then kept), one that stopped does not.
 */

import assert from "node:assert/strict";
import {
  enterShared,
  leaveShared,
  requestStop,
  sharedControl,
  WORKER_LEFT,
  workersInside,
} from "../../src/engine/control.ts";
import { udpFrames } from "../bed/frames.ts";
import { FakeBed } from "./engine_fake_nic.ts";

const STUCK = new URL("./engine_stuck_script.ts", import.meta.url).href;

Deno.test("fake NIC: a worker stuck in its loop stays inside shared memory after the stop", async () => {
  const bed = await FakeBed.start({ script: { url: STUCK } });
  bed.inject(0, udpFrames({ seed: 2, count: 1, flows: 1 })[0]);
  bed.publishRx(0);
  // The script counts `entered` before it blocks (5 s): then the worker is surely stuck.
  const until = performance.now() + 30_000;
  while (bed.scriptCounter("entered") === 0) {
    assert.ok(performance.now() < until, "the worker never reached the script");
    await new Promise((r) => setTimeout(r, 5));
  }
  const done = await bed.close(300);
  assert.equal(done, null, "the worker did not finish");
  assert.equal(bed.workerStuck, true, "the worker is still inside");
});

Deno.test("fake NIC: a worker that stopped has left shared memory", async () => {
  const bed = await FakeBed.start();
  const done = await bed.close();
  assert.equal(done?.type, "done");
  assert.equal(bed.workerStuck, false);
});

Deno.test("a worker that enters after the stop flag leaves at once; only workers inside are listed", () => {
  const ctl = sharedControl(3);
  assert.equal(enterShared(ctl, 0), true);
  assert.equal(enterShared(ctl, 1), true);
  leaveShared(ctl, 1);
  requestStop(ctl);
  assert.equal(enterShared(ctl, 2), false, "entered after the stop");
  assert.equal(Atomics.load(ctl, 4 + 2), WORKER_LEFT);
  assert.deepEqual(workersInside(ctl, 3), [0]);
});
