/** Register access helpers (MappedRegionIo, SubRegionIo in src/pci/pci_device.ts). */

import assert from "node:assert/strict";
import { MappedRegionIo, type RegionIo, SubRegionIo } from "../../src/pci/pci_device.ts";

Deno.test("MappedRegionIo reads and writes 8/16/32-bit little-endian registers in place", () => {
  const buf = new ArrayBuffer(64);
  const io = new MappedRegionIo(buf);
  assert.equal(io.size, 64);
  assert.equal(io.mapped, true);
  io.write32(4, 0xdeadbeef);
  assert.equal(io.read32(4), 0xdeadbeef);
  assert.equal(io.read16(4), 0xbeef);
  assert.equal(io.read16(6), 0xdead);
  assert.equal(io.read8(4), 0xef);
  assert.equal(io.read8(7), 0xde);
  io.write16(8, 0x1234);
  io.write8(10, 0x56);
  assert.deepEqual([...new Uint8Array(buf, 8, 3)], [0x34, 0x12, 0x56]);
  const dv = new DataView(buf);
  assert.equal(dv.getUint32(4, true), 0xdeadbeef, "the buffer itself holds the value");
  dv.setUint32(60, 0x89abcdef, true);
  assert.equal(io.read32(60), 0x89abcdef, "reads see writes made through other views");
});

Deno.test("MappedRegionIo stores only the low bits of a wider value", () => {
  const io = new MappedRegionIo(new ArrayBuffer(16));
  io.write8(0, 0x1ff);
  io.write16(2, 0x1_2345);
  assert.equal(io.read8(0), 0xff);
  assert.equal(io.read8(1), 0, "no spill into the next byte");
  assert.equal(io.read16(2), 0x2345);
  assert.equal(io.read16(4), 0);
});

Deno.test("SubRegionIo offsets every access by its base", () => {
  const bar = new MappedRegionIo(new ArrayBuffer(4096));
  const common = new SubRegionIo(bar, 0x100, 0x38);
  assert.equal(common.size, 0x38);
  assert.equal(common.mapped, true);
  common.write8(0x14, 1);
  assert.equal(bar.read8(0x114), 1);
  common.write16(0x16, 0xabcd);
  assert.equal(bar.read16(0x116), 0xabcd);
  common.write32(0x20, 0x1234_5678);
  assert.equal(bar.read32(0x120), 0x1234_5678);
  bar.write32(0x104, 0xcafe_f00d);
  assert.equal(common.read32(4), 0xcafe_f00d);
  assert.equal(common.read16(6), 0xcafe);
  assert.equal(common.read8(4), 0x0d);
});

Deno.test("SubRegionIo nests and passes `mapped` through", () => {
  const bar = new MappedRegionIo(new ArrayBuffer(256));
  const outer = new SubRegionIo(bar, 0x40, 0x80);
  const inner = new SubRegionIo(outer, 0x10, 0x10);
  inner.write32(4, 7);
  assert.equal(bar.read32(0x54), 7);
  // A region reached through read/write calls (as vfio-user config space is).
  const unmapped: RegionIo = {
    size: 256,
    mapped: false,
    read8: (o) => bar.read8(o),
    read16: (o) => bar.read16(o),
    read32: (o) => bar.read32(o),
    write8: (o, v) => bar.write8(o, v),
    write16: (o, v) => bar.write16(o, v),
    write32: (o, v) => bar.write32(o, v),
  };
  const sub = new SubRegionIo(unmapped, 0x50, 16);
  assert.equal(sub.mapped, false);
  assert.equal(sub.read32(4), 7);
});

Deno.test("SubRegionIo rejects a window outside its region", () => {
  const bar = new MappedRegionIo(new ArrayBuffer(0x1000));
  new SubRegionIo(bar, 0, 0x1000); // the whole region
  new SubRegionIo(bar, 0x1000, 0); // empty window at the end
  assert.throws(() => new SubRegionIo(bar, 0xff0, 0x20), /lies outside a region of 4096 bytes/);
  assert.throws(() => new SubRegionIo(bar, 0x1001, 0), RangeError);
  assert.throws(() => new SubRegionIo(bar, -4, 8), RangeError);
  assert.throws(() => new SubRegionIo(bar, 0, -1), RangeError);
});

Deno.test("SubRegionIo rejects a window whose base or length is not an integer", () => {
  // Offsets come from device-provided capabilities; NaN slips through `<` / `>` checks.
  const bar = new MappedRegionIo(new ArrayBuffer(0x1000));
  for (const [base, length] of [[NaN, 16], [0, NaN], [undefined, 16], [0.5, 16]]) {
    assert.throws(
      () => new SubRegionIo(bar, base as number, length as number),
      RangeError,
      `base ${base}, length ${length}`,
    );
  }
});
