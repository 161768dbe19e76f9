/**
 * The packed ring against a hostile device: a million random steps under `deno task soak`,
 * 100,000 in CI, with every invariant checked after each step (fuzz/packed_ring_harness.ts).
 * VIRTIO_FUZZ_SEED=<seed> replays a run; a failure names its seed and step.
 */

import assert from "node:assert/strict";
import { fuzzSeed, Prng } from "./fuzz/prng.ts";
import { type PackedRejection, PackedRingHarness } from "./fuzz/packed_ring_harness.ts";
import { soakLength } from "./soak_length.ts";

const STEPS = soakLength(1_000_000, 100_000);

Deno.test("a packed ring refuses every bad batch a hostile device returns, whole, and never loses or doubles a buffer", () => {
  const seed = fuzzSeed();
  const h = new PackedRingHarness(new Prng(seed), new ArrayBuffer(PackedRingHarness.memoryBytes));
  try {
    for (let i = 0; i < STEPS; i++) h.step(0.01);
  } catch (e) {
    throw new Error(
      `fuzz failed at step ${h.counts.steps} (replay: VIRTIO_FUZZ_SEED=${seed}): ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  const c = h.counts;
  const rejected = Object.entries(c.rejections).map(([k, n]) => `${k} ${n}`).join(", ");
  console.log(
    `packed ring fuzz: seed ${seed}, ${c.steps} steps, ${c.taken} buffers taken back and ` +
      `checked, ${c.deepChecks} deep checks, ${c.resets} resets; rejected: ${rejected}`,
  );
  for (const [kind, n] of Object.entries(c.rejections)) {
    assert.ok(n > 0, `no batch with ${kind as PackedRejection} in ${STEPS} steps`);
  }
  assert.ok(c.taken > STEPS / 10, `only ${c.taken} buffers went round`);
});
