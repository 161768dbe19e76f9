/**
 * Splitting the shared pool among workers (src/engine/handoff.ts partitionPool) and a
 * worker's partition (src/engine/partition_pool.ts).
 */

import assert from "node:assert/strict";
import { createSharedPool } from "../../src/dma/buffer_pool.ts";
import { DriverError } from "../../src/errors.ts";
import { partitionPool } from "../../src/engine/handoff.ts";
import { NO_BUFFER, PartitionPool } from "../../src/engine/partition_pool.ts";

Deno.test("partitionPool gives each worker its ring buffers and an equal share of the free ones", () => {
  const pool = createSharedPool(64, 2048, { hugePages: false });
  try {
    const inRings = [[], []] as number[][];
    for (let i = 0; i < 10; i++) inRings[i % 2].push(pool.alloc());
    const parts = partitionPool(pool, inRings);
    assert.equal(pool.available, 0, "the main thread keeps no free buffer");
    assert.deepEqual([...parts[0].inUse], [0, 2, 4, 6, 8]);
    assert.deepEqual([...parts[1].inUse], [1, 3, 5, 7, 9]);
    assert.equal(parts[0].free.length, 27);
    assert.equal(parts[1].free.length, 27);
    const all = [...parts.flatMap((p) => [...p.free, ...p.inUse])].sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: 64 }, (_, i) => i), "each buffer exactly once");
  } finally {
    pool.region.free();
  }
});

Deno.test("partitionPool refuses a buffer in two rings and a buffer held elsewhere", () => {
  const pool = createSharedPool(16, 2048, { hugePages: false });
  try {
    const a = pool.alloc(), b = pool.alloc();
    assert.throws(
      () => partitionPool(pool, [[a], [a]]),
      (e) => e instanceof DriverError && /rings of two queue pairs/.test(e.message),
    );
    assert.throws(
      () => partitionPool(pool, [[a]]),
      (e) => e instanceof DriverError && e.code === "BAD_ARGUMENT" && e.message.includes(`${b}`),
    );
  } finally {
    pool.region.free();
  }
});

Deno.test("PartitionPool allocates only its own buffers and refuses foreign or double frees", () => {
  const mem = new ArrayBuffer(8 * 2048);
  const p = new PartitionPool(mem, 0x1_0000_0000, 8, 2048, [4, 5], [6]);
  assert.equal(p.size, 3);
  assert.equal(p.iovaLo[5], 5 * 2048);
  assert.equal(p.iovaHi[5], 1);
  assert.equal(p.offset(5), 10240);
  assert.equal(p.alloc(), 4, "lowest index first");
  assert.equal(p.alloc(), 5);
  assert.equal(p.alloc(), NO_BUFFER);
  p.free(6); // was posted in a ring at hand-over
  assert.throws(() => p.free(6), /not in use/);
  assert.throws(() => p.free(0), /not in use/, "another worker's buffer");
  assert.throws(() => p.free(99), /not in use/);
  assert.equal(p.alloc(), 6);
  assert.throws(() => new PartitionPool(mem, 0, 8, 2048, [1, 1], []), /cannot join/);
});
