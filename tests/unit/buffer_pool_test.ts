/**
 * BufferPool (src/dma/buffer_pool.ts) over real DMA memory: DmaRegion.allocate with 4 KiB
 * pages (a memfd mmap'd into the process, no device needed).
 */

import assert from "node:assert/strict";
import { BufferPool, NO_BUFFER } from "../../src/dma/buffer_pool.ts";
import { DmaRegion, PAGE_SIZE } from "../../src/dma/memory.ts";

/**
 * Places `region` at a chosen IOVA. DmaRegion.iova is `readonly` (the process-wide
 * allocator assigns it); tests override the field to put a pool at an interesting address.
 * BufferPool reads it once, in its constructor.
 */
function setIova(region: DmaRegion, iova: number): void {
  (region as unknown as { iova: number }).iova = iova;
}

/** Runs `fn` with a fresh 4 KiB-page region of `bytes`, freeing it afterwards. */
function withRegion(bytes: number, fn: (r: DmaRegion) => void): void {
  const region = DmaRegion.allocate(bytes, { hugePages: false });
  try {
    fn(region);
  } finally {
    region.free();
  }
}

Deno.test("DmaRegion.allocate() without huge pages gives zeroed, page-rounded memory", () => {
  withRegion(10_000, (r) => {
    assert.equal(r.size, 3 * PAGE_SIZE);
    assert.equal(r.hugePages, false);
    assert.equal(r.buffer.byteLength, r.size);
    // Every region has its IOVA from the process-wide allocator: at or above 4 GiB.
    assert.ok(r.iova >= 2 ** 32 && r.iova % PAGE_SIZE === 0, `iova ${r.iova}`);
    assert.ok(r.vaddr > 0n && r.vaddr % BigInt(PAGE_SIZE) === 0n);
    assert.ok(r.fd >= 0);
    const bytes = new Uint8Array(r.buffer);
    assert.ok(bytes.every((b) => b === 0));
    bytes[r.size - 1] = 0x5a; // writable to the last byte
    assert.equal(bytes[r.size - 1], 0x5a);
  });
});

Deno.test("alloc() hands out buffers 0, 1, 2, … and then the most recently freed first", () => {
  withRegion(16 * 2048, (region) => {
    const pool = new BufferPool(region, 0, 16, 2048);
    assert.equal(pool.available, 16);
    assert.deepEqual([0, 1, 2, 3, 4].map(() => pool.alloc()), [0, 1, 2, 3, 4]);
    assert.equal(pool.available, 11);
    pool.free(3);
    pool.free(1);
    assert.equal(pool.alloc(), 1, "LIFO: last freed first");
    assert.equal(pool.alloc(), 3);
    assert.equal(pool.alloc(), 5, "then the untouched ones in order");
    assert.equal(pool.available, 10);
  });
});

Deno.test("an empty pool returns NO_BUFFER and counts each failure in allocFailures", () => {
  withRegion(4 * 512, (region) => {
    const pool = new BufferPool(region, 0, 4, 512);
    const got = [pool.alloc(), pool.alloc(), pool.alloc(), pool.alloc()];
    assert.deepEqual(got, [0, 1, 2, 3]);
    assert.equal(pool.available, 0);
    assert.equal(pool.allocFailures, 0);
    assert.equal(pool.alloc(), NO_BUFFER);
    assert.equal(pool.alloc(), NO_BUFFER);
    assert.equal(pool.allocFailures, 2);
    assert.equal(NO_BUFFER, 0xffff_ffff, "fits a Uint32Array slot, never a valid index");
    pool.free(2);
    assert.equal(pool.alloc(), 2);
    assert.equal(pool.allocFailures, 2);
  });
});

Deno.test("free() throws on a double free, a never-allocated buffer and an index out of range", () => {
  withRegion(8 * 256, (region) => {
    const pool = new BufferPool(region, 0, 8, 256);
    const a = pool.alloc();
    pool.free(a);
    assert.throws(() => pool.free(a), /buffer 0 is not allocated/);
    assert.throws(() => pool.free(5), RangeError, "never taken");
    assert.throws(() => pool.free(8), RangeError);
    assert.throws(() => pool.free(NO_BUFFER), RangeError);
    assert.throws(() => pool.free(-1), RangeError);
    assert.equal(pool.available, 8, "the free list was not corrupted");
    const all = new Set(Array.from({ length: 8 }, () => pool.alloc()));
    assert.equal(all.size, 8, "no buffer handed out twice");
  });
});

Deno.test("offset(i) places buffers back to back from `base` inside the region's bytes", () => {
  withRegion(4 * PAGE_SIZE, (region) => {
    const base = 1024;
    const pool = new BufferPool(region, base, 6, 2048);
    assert.equal(pool.count, 6);
    assert.equal(pool.bufferSize, 2048);
    assert.equal(pool.data.length, region.size);
    for (let i = 0; i < 6; i++) assert.equal(pool.offset(i), base + i * 2048);
    // pool.data is the region's memory, not a copy.
    const i = pool.alloc();
    pool.data[pool.offset(i) + 7] = 0xa5;
    assert.equal(new Uint8Array(region.buffer)[base + 7], 0xa5);
  });
});

Deno.test("the constructor rejects a pool that does not fit the region", () => {
  withRegion(PAGE_SIZE, (region) => {
    assert.throws(() => new BufferPool(region, 0, 3, 2048), RangeError);
    assert.throws(() => new BufferPool(region, 1, 2, 2048), RangeError);
    new BufferPool(region, 0, 2, 2048); // exactly fits
  });
});

Deno.test("IOVA halves are the region's own IOVA plus each buffer's offset", () => {
  withRegion(8 * 2048, (region) => {
    const pool = new BufferPool(region, 0, 8, 2048);
    for (let i = 0; i < 8; i++) {
      const iova = pool.iovaHi[i] * 0x1_0000_0000 + pool.iovaLo[i];
      assert.equal(iova, region.iova + i * 2048, `${i}`);
    }
    assert.ok(pool.iovaHi[0] >= 1, "above 4 GiB: the high word is used");
  });
});

Deno.test("regions get distinct, non-overlapping IOVAs", () => {
  withRegion(3 * PAGE_SIZE, (a) => {
    withRegion(PAGE_SIZE, (b) => {
      assert.ok(a.iova + a.size <= b.iova || b.iova + b.size <= a.iova);
    });
  });
});

Deno.test("IOVA halves split an address above 4 GiB, carrying into the high word", () => {
  withRegion(8 * 2048, (region) => {
    // Set before the pool is created: the pool precomputes each buffer's IOVA.
    setIova(region, 0x1_ffff_f000); // 4 KiB below 8 GiB
    const pool = new BufferPool(region, 0x800, 6, 2048);
    const iova = (i: number) => pool.iovaHi[i] * 0x1_0000_0000 + pool.iovaLo[i];
    for (let i = 0; i < 6; i++) assert.equal(iova(i), region.iova + 0x800 + i * 2048, `${i}`);
    assert.deepEqual([pool.iovaHi[0], pool.iovaLo[0]], [1, 0xffff_f800]);
    assert.deepEqual([pool.iovaHi[1], pool.iovaLo[1]], [2, 0x0000_0000], "carry at 8 GiB");
    assert.deepEqual([pool.iovaHi[5], pool.iovaLo[5]], [2, 0x2000]);
  });
});

Deno.test("IOVA halves are exact for an IOVA near 2^52", () => {
  withRegion(2 * 4096, (region) => {
    setIova(region, 2 ** 52 + 0x1000);
    const pool = new BufferPool(region, 0, 2, 4096);
    assert.deepEqual([pool.iovaHi[0], pool.iovaLo[0]], [0x10_0000, 0x1000]);
    assert.deepEqual([pool.iovaHi[1], pool.iovaLo[1]], [0x10_0000, 0x2000]);
  });
});
