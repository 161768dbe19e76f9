/**
 * /proc/self/pagemap parsing (src/dma/pagemap.ts): present bit, PFN field, hidden PFNs,
 * huge-page alignment, and a physically addressed pool's per-page IOVAs in a worker's
 * partition (pages need not be contiguous).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { physicalFromEntry, physicalPages } from "../../src/dma/pagemap.ts";
import { PartitionPool } from "../../src/engine/partition_pool.ts";

const PRESENT = 1n << 63n, HUGE = 2 * 1024 * 1024;

Deno.test("pagemap entry: PFN bits 0–54 when present, offset within the 4 KiB page kept", () => {
  assert.equal(physicalFromEntry(PRESENT | 0x12345n, 0x7f00_0000_0abcn), 0x12345abc);
  // Bits 55–62 (soft-dirty, exclusive, file/shared, swapped) are not part of the PFN.
  assert.equal(physicalFromEntry(PRESENT | (1n << 55n) | (1n << 61n) | 0x10n, 0n), 0x10000);
  assert.equal(physicalFromEntry(0x12345n, 0n), null, "not present");
  assert.equal(physicalFromEntry(PRESENT, 0n), null, "PFN hidden without CAP_SYS_ADMIN");
});

Deno.test("physical pages: one address per huge page, refused when hidden or misaligned", () => {
  const base = 0x7f00_0000_0000n;
  const table = new Map([
    [base, PRESENT | (0x4_0000n >> 0n)], // PFN 0x40000: 1 GiB
    [base + BigInt(HUGE), PRESENT | 0x200n], // 2 MiB: below the first, not contiguous
  ]);
  const read = (v: bigint) => table.get(v) ?? 0n;
  assert.deepEqual(physicalPages(base, 2, HUGE, read), [0x4000_0000, 0x20_0000]);
  assert.throws(
    () => physicalPages(base, 3, HUGE, read),
    (e: DriverError) => e.code === "DMA" && /run as root/.test(e.message),
  );
  table.set(base, PRESENT | 0x4_0001n);
  assert.throws(() => physicalPages(base, 1, HUGE, read), /not on a 2097152-byte page boundary/);
});

Deno.test("a worker's partition of a physical pool takes each buffer's IOVA from its own page", () => {
  const mem = new ArrayBuffer(2 * HUGE);
  const count = (2 * HUGE) / 2048;
  const p = new PartitionPool(mem, 0, count, 2048, [0, 1023, 1024, count - 1], [], [
    0x4000_0000,
    0x20_0000,
  ]);
  const iova = (b: number) => p.iovaLo[b] + p.iovaHi[b] * 2 ** 32;
  assert.equal(iova(0), 0x4000_0000);
  assert.equal(iova(1023), 0x4000_0000 + 1023 * 2048);
  assert.equal(iova(1024), 0x20_0000, "the second page's buffers live at its own address");
  assert.equal(iova(count - 1), 0x20_0000 + 1023 * 2048);
});
