/** IOVA allocation (src/dma/iova.ts). */

import assert from "node:assert/strict";
import { IOVA_CEILING, IOVA_FLOOR, IovaAllocator } from "../../src/dma/iova.ts";
import { DriverError } from "../../src/errors.ts";

const KiB = 1024, MiB = 1024 * KiB;
const GiB = 1n << 30n;

function assertNoSpace(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.equal(e.code, "DMA");
    assert.match(e.message, /No IOVA space left/);
    return true;
  });
}

Deno.test("the floor is 4 GiB and the ceiling 2^53", () => {
  assert.equal(IOVA_FLOOR, 4n * GiB);
  assert.equal(IOVA_CEILING, 1n << 53n);
});

Deno.test("allocate() starts at the 4 GiB floor even when the IOMMU accepts address 0", () => {
  const a = new IovaAllocator([{ start: 0n, end: (1n << 39n) - 1n }]);
  assert.equal(a.allocate(4096, 2 * MiB), 4n * GiB);
});

Deno.test("allocate() aligns every range and never overlaps the previous one", () => {
  const a = new IovaAllocator([{ start: 0n, end: (1n << 39n) - 1n }]);
  const base = 4n * GiB;
  assert.equal(a.allocate(4096, 4096), base);
  assert.equal(a.allocate(8192, 2 * MiB), base + 2n * 1048576n);
  assert.equal(a.allocate(1, 4096), base + 2n * 1048576n + 8192n);
  assert.equal(a.allocate(100, 64), base + 2n * 1048576n + 8192n + 64n);
  const big = a.allocate(3 * MiB, 2 * MiB);
  assert.equal(big % BigInt(2 * MiB), 0n);
  assert.ok(big >= base + 2n * 1048576n + 8192n + 164n);
});

Deno.test("allocate() never hands out the x86 MSI hole 0xfee00000–0xfeefffff", () => {
  // The usable ranges VFIO reports on Intel: everything but the interrupt window.
  const a = new IovaAllocator([
    { start: 0n, end: 0xfedf_ffffn },
    { start: 0xfef0_0000n, end: (1n << 48n) - 1n },
  ]);
  for (let i = 0; i < 16; i++) {
    const iova = a.allocate(2 * MiB, 2 * MiB);
    assert.ok(iova >= 4n * GiB, "at or above the floor");
    assert.ok(iova + BigInt(2 * MiB) - 1n < 0xfee0_0000n || iova > 0xfeef_ffffn);
  }
});

Deno.test("allocate() skips a hole above the floor, including a block that would straddle it", () => {
  const base = 4n * GiB;
  const a = new IovaAllocator([
    { start: base, end: base + BigInt(3 * MiB) - 1n },
    // hole: base + 3 MiB … base + 4 MiB - 1
    { start: base + BigInt(4 * MiB), end: base + BigInt(64 * MiB) - 1n },
  ]);
  assert.equal(a.allocate(2 * MiB, 2 * MiB), base);
  // The next 2 MiB-aligned block would cover base+2M…base+4M-1, across the hole.
  assert.equal(a.allocate(2 * MiB, 2 * MiB), base + BigInt(4 * MiB));
  assert.equal(a.allocate(4096, 4096), base + BigInt(6 * MiB), "no going back into the gap");
});

Deno.test("allocate() accepts ranges in any order", () => {
  const base = 4n * GiB;
  const a = new IovaAllocator([
    { start: base + 16n * GiB, end: base + 17n * GiB - 1n },
    { start: base, end: base + BigInt(MiB) - 1n },
  ]);
  assert.equal(a.allocate(MiB, 4096), base);
  assert.equal(a.allocate(MiB, 4096), base + 16n * GiB);
});

Deno.test("allocate() uses a range exactly up to its inclusive end", () => {
  const base = 4n * GiB;
  const a = new IovaAllocator([{ start: base, end: base + 8191n }]);
  assert.equal(a.allocate(4096, 4096), base);
  assert.equal(a.allocate(4096, 4096), base + 4096n);
  assertNoSpace(() => a.allocate(1, 1));
});

Deno.test("allocate() throws DMA when the ranges are exhausted", () => {
  const base = 4n * GiB;
  const a = new IovaAllocator([{ start: base, end: base + BigInt(4 * MiB) - 1n }]);
  a.allocate(2 * MiB, 2 * MiB);
  a.allocate(2 * MiB, 2 * MiB);
  assertNoSpace(() => a.allocate(4096, 4096));
});

Deno.test("allocate() throws DMA when every usable range lies below the floor", () => {
  assertNoSpace(() => new IovaAllocator([{ start: 0n, end: 0xfedf_ffffn }]).allocate(4096, 4096));
  assertNoSpace(() => new IovaAllocator([]).allocate(4096, 4096));
});

Deno.test("allocate() stays below 2^53 so IOVAs are exact JS numbers", () => {
  const top = 1n << 53n;
  const a = new IovaAllocator([{ start: top - BigInt(4 * MiB), end: (1n << 64n) - 1n }]);
  const x = a.allocate(2 * MiB, 2 * MiB);
  const y = a.allocate(2 * MiB, 2 * MiB);
  assert.equal(y, top - BigInt(2 * MiB));
  assert.ok(y + BigInt(2 * MiB) - 1n < top);
  assert.equal(BigInt(Number(x)), x);
  assertNoSpace(() => a.allocate(4096, 4096));
  assertNoSpace(() => new IovaAllocator([{ start: top, end: top * 2n }]).allocate(1, 1));
});

Deno.test("free() gives IOVAs back: opening and closing again and again reuses the same range", () => {
  const base = 4n * GiB;
  // Room for two 10 MiB regions only: without reuse the third open would find none.
  const a = new IovaAllocator([{ start: base, end: base + BigInt(20 * MiB) - 1n }]);
  for (let i = 0; i < 100; i++) {
    const x = a.allocate(10 * MiB, 2 * MiB), y = a.allocate(10 * MiB, 2 * MiB);
    assert.deepEqual([x, y], [base, base + BigInt(10 * MiB)]);
    a.free(y, 10 * MiB); // as ports close: last opened first
    a.free(x, 10 * MiB);
  }
  const x = a.allocate(10 * MiB, 2 * MiB), y = a.allocate(10 * MiB, 2 * MiB);
  a.free(x, 10 * MiB); // the other order: x's range waits below y's for the next open
  assert.equal(a.allocate(4 * MiB, 2 * MiB), base, "a freed range below the top is reused");
  assert.equal(a.allocate(6 * MiB, 2 * MiB), base + BigInt(4 * MiB));
  assertNoSpace(() => a.allocate(4096, 4096));
  a.free(y, 10 * MiB);
  assert.equal(a.allocate(10 * MiB, 2 * MiB), base + BigInt(10 * MiB));
});

Deno.test("free() merges neighbours and refuses a range freed twice or never allocated", () => {
  const base = 4n * GiB;
  const a = new IovaAllocator([{ start: base, end: base + BigInt(64 * MiB) - 1n }]);
  const [p, q, r] = [a.allocate(MiB, 4096), a.allocate(MiB, 4096), a.allocate(MiB, 4096)];
  a.allocate(MiB, 4096); // keeps the three below the top
  a.free(q, MiB);
  assert.throws(() => a.free(q, MiB), RangeError);
  assert.throws(() => a.free(base + BigInt(32 * MiB), MiB), RangeError, "never allocated");
  a.free(p, MiB);
  a.free(r, MiB);
  assert.equal(a.allocate(3 * MiB, 4096), p, "the three freed ranges are one again");
});
