/**
 * The split ring against a hostile device (issue 13, item 2): a million random steps under
 * `deno task soak`, 100,000 in CI, with every invariant checked after each step
 * (fuzz/split_ring_harness.ts). VIRTIO_FUZZ_SEED=<seed> replays a run; a failure names its
 * seed and step.
 */

import assert from "node:assert/strict";
import { fuzzSeed, Prng } from "./fuzz/prng.ts";
import { type FuzzCounts, type Rejection, RingHarness } from "./fuzz/split_ring_harness.ts";
import type { ScribblerStart } from "./fuzz/used_ring_scribbler.ts";
import { soakLength } from "./soak_length.ts";

const STEPS = soakLength(1_000_000, 100_000);

/** Runs `steps` steps; a failure says which seed and step to replay. */
function run(h: RingHarness, seed: number, steps: number, hostility: number): void {
  try {
    for (let i = 0; i < steps; i++) h.step(hostility);
  } catch (e) {
    throw new Error(
      `fuzz failed at step ${h.counts.steps} (replay: VIRTIO_FUZZ_SEED=${seed}): ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
}

function report(what: string, seed: number, c: FuzzCounts, extra = ""): void {
  const rejected = Object.entries(c.rejections).map(([k, n]) => `${k} ${n}`).join(", ");
  console.log(
    `${what}: seed ${seed}, ${c.steps} steps, ${c.taken} buffers taken back and checked, ` +
      `${c.deepChecks} deep checks, ${c.resets} resets; rejected: ${rejected}` +
      (c.rejectedConcurrently ? `, under a concurrent writer ${c.rejectedConcurrently}` : "") +
      extra,
  );
}

Deno.test("a split ring refuses every bad batch a hostile device returns, whole, and never loses or doubles a buffer", () => {
  const seed = fuzzSeed();
  const h = new RingHarness(new Prng(seed), new ArrayBuffer(RingHarness.memoryBytes));
  run(h, seed, STEPS, 0.01);
  report("split ring fuzz", seed, h.counts);
  // The fuzz reached every kind of bad entry and still moved buffers through.
  for (const [kind, n] of Object.entries(h.counts.rejections)) {
    assert.ok(n > 0, `no batch with ${kind as Rejection} in ${STEPS} steps`);
  }
  assert.ok(h.counts.taken > STEPS / 10, `only ${h.counts.taken} buffers went round`);
});

Deno.test("a split ring stays consistent while another thread rewrites its used entries", async () => {
  const seed = fuzzSeed();
  const ctlAt = RingHarness.memoryBytes;
  const memory = new SharedArrayBuffer(ctlAt + 16);
  const ctl = new Int32Array(memory, ctlAt, 4);
  const worker = new Worker(new URL("./fuzz/used_ring_scribbler.ts", import.meta.url), {
    type: "module",
  });
  const next = () => new Promise((resolve) => (worker.onmessage = (e) => resolve(e.data)));
  try {
    // A SharedArrayBuffer is what a device's memory is to the driver: plain bytes it reads.
    const h = new RingHarness(new Prng(seed), memory as unknown as ArrayBuffer, true);
    h.onReset = (size) => Atomics.store(ctl, 1, size);
    Atomics.store(ctl, 1, h.size);
    const ready = next();
    worker.postMessage({ memory, ctlAt, seed: seed ^ 0x5eed } satisfies ScribblerStart);
    assert.equal(await ready, "ready");
    // No hostility of the harness's own: every refusal here is the other thread's doing.
    run(h, seed, STEPS, 0);
    const done = next();
    Atomics.store(ctl, 0, 1);
    assert.equal(await done, "done");
    const writes = Atomics.load(ctl, 2);
    report("split ring under a concurrent writer", seed, h.counts, `; ${writes} rewrites`);
    assert.ok(writes > 0, "the other thread wrote nothing");
    assert.ok(h.counts.rejectedConcurrently > 0, "no rewrite was ever caught");
    assert.ok(h.counts.taken > 0, "no buffer went round");
  } finally {
    Atomics.store(ctl, 0, 1);
    worker.terminate();
  }
});
