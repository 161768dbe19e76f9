/**
 * The steering mailbox between the main thread and forwarding workers, both sides in one
 * thread (the test answers for the worker): pause, acknowledgement, barriers and gate,
 * refusals, and a worker that never answers.
 */

import assert from "node:assert/strict";
import {
  MailboxEpochs,
  MailboxReader,
  steeringMailbox,
} from "../../src/engine/steering_mailbox.ts";

function bed(workers: number) {
  const sab = steeringMailbox(2, workers);
  const used = [17, 42, 7].slice(0, workers);
  const main = new MailboxEpochs(
    sab,
    1,
    workers,
    used.map((u) => ({ deviceUsedIdx: () => u })),
    "port 1",
  );
  const epochs: { worker: number; port: number; barrier: number; gate: number }[] = [];
  const readers = Array.from(
    { length: workers },
    (_, w) =>
      new MailboxReader(
        sab,
        w,
        workers,
        [0, 1].map((port) => ({
          beginEpoch: (gate: Int32Array, barrier: number) =>
            epochs.push({ worker: w, port, barrier, gate: gate[0] }),
        })),
      ),
  );
  const paused = readers.map(() => new Uint8Array(2));
  const check = () => readers.forEach((r, w) => r.check(paused[w]));
  return { sab, main, readers, paused, epochs, check };
}

Deno.test("MailboxReader pauses the port asked for, and begins an epoch at the main thread's barrier on release", () => {
  const b = bed(2);
  // The workers answer as soon as they check; answering first lets hold() return at once.
  const mb = new Int32Array(b.sab);
  const block = 4 + 2 * 2 + 16;
  Atomics.store(mb, block + 4, 1);
  Atomics.store(mb, block + 5, 1);
  b.main.hold();
  b.check();
  assert.deepEqual(b.paused.map((p) => [...p]), [[0, 1], [0, 1]]);
  assert.deepEqual(b.epochs, []);
  b.main.release(true);
  b.check();
  assert.deepEqual(b.paused.map((p) => [...p]), [[0, 0], [0, 0]]);
  assert.deepEqual(b.epochs, [
    { worker: 0, port: 1, barrier: 17, gate: 2 },
    { worker: 1, port: 1, barrier: 42, gate: 2 },
  ]);
});

Deno.test("MailboxReader resumes without an epoch when the device refused the switch", () => {
  const b = bed(1);
  Atomics.store(new Int32Array(b.sab), 4 + 2 + 16 + 4, 1);
  b.main.hold();
  b.check();
  assert.equal(b.paused[0][1], 1);
  b.main.release(false);
  b.check();
  assert.equal(b.paused[0][1], 0);
  assert.deepEqual(b.epochs, []);
});

Deno.test("MailboxEpochs.hold() gives up with one sentence when a worker does not answer", () => {
  const b = bed(1);
  assert.throws(() => b.main.hold(20), /queue pair 0 did not pause port 1's receive queue/);
  // It let the workers go again: one that checks late resumes at once, with no epoch.
  b.check();
  assert.deepEqual([...b.paused[0]], [0, 0]);
  assert.deepEqual(b.epochs, []);
});

Deno.test("MailboxEpochs.hold() refuses a 17th switch while the first one's gate is still closed", () => {
  const b = bed(1);
  const mb = new Int32Array(b.sab);
  const block = 4 + 2 + 16;
  for (let s = 1; s <= 16; s++) {
    Atomics.store(mb, block + 4, s);
    b.main.hold();
    b.main.release(true); // gate s % 16 = 1 worker still to pass; nobody passes it here
  }
  assert.throws(() => b.main.hold(), /still hold frames of 16 earlier steering switches/);
});
