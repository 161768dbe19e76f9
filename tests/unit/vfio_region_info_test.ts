/**
 * Replies of the kernel's VFIO_DEVICE_GET_REGION_INFO and VFIO_IOMMU_GET_INFO are checked
 * before the driver sizes a buffer, maps a BAR or picks IOVAs from them
 * (ffi/vfio_uapi.ts): argsz, capability offsets, sparse-mmap areas and IOVA ranges.
 */

import assert from "node:assert/strict";
import {
  decodeIommuInfo,
  decodeRegionInfo,
  SIZEOF_IOMMU_TYPE1_INFO,
  SIZEOF_REGION_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from "../../ffi/vfio_uapi.ts";

const U64 = 1n << 64n;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function capHeader(v: DataView, at: number, id: number, next: number): void {
  v.setUint16(at, id, true);
  v.setUint16(at + 2, 1, true);
  v.setUint32(at + 4, next, true);
}

/** A BAR's region info with a sparse-mmap capability right after the fixed struct. */
function regionInfo(
  areas: [bigint, bigint][],
  size = 0x4000n,
  offset = 0x400_0000_0000n,
): Uint8Array {
  const capAt = SIZEOF_REGION_INFO;
  const b = new Uint8Array(capAt + 16 + 16 * areas.length);
  const v = dv(b);
  v.setUint32(0, b.length, true);
  v.setUint32(
    4,
    VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP |
      VFIO_REGION_INFO_FLAG_CAPS,
    true,
  );
  v.setUint32(8, 4, true);
  v.setUint32(12, capAt, true);
  v.setBigUint64(16, size, true);
  v.setBigUint64(24, offset, true);
  capHeader(v, capAt, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 0);
  v.setUint32(capAt + 8, areas.length, true);
  areas.forEach(([o, s], i) => {
    v.setBigUint64(capAt + 16 + 16 * i, o, true);
    v.setBigUint64(capAt + 24 + 16 * i, s, true);
  });
  return b;
}

Deno.test("sparse-mmap areas inside the region are decoded in the kernel's order", () => {
  assert.deepEqual(decodeRegionInfo(regionInfo([[0x3000n, 0x1000n], [0n, 0x2000n]])).sparseAreas, [
    { offset: 0x3000, size: 0x1000 },
    { offset: 0, size: 0x2000 },
  ]);
});

Deno.test("a sparse-mmap area that ends past its region is refused", () => {
  assert.throws(
    () => decodeRegionInfo(regionInfo([[0n, 0x1000n], [0x3000n, 0x1001n]])),
    /^RangeError: sparse mmap area 1 \(offset 0x3000, size 0x1001\) ends past the region's 0x4000 bytes$/,
  );
});

Deno.test("a sparse-mmap area whose offset + size wraps past 2^64 is refused", () => {
  assert.throws(
    () => decodeRegionInfo(regionInfo([[U64 - 0x1000n, 0x2000n]])),
    /sparse mmap area 0 .* ends past the region's/,
  );
});

Deno.test("overlapping sparse-mmap areas are refused", () => {
  assert.throws(
    () => decodeRegionInfo(regionInfo([[0n, 0x2000n], [0x1fffn, 1n]])),
    /^RangeError: sparse mmap areas 0 and 1 overlap$/,
  );
});

Deno.test("a region size beyond 2^53 bytes is refused", () => {
  assert.throws(() => decodeRegionInfo(regionInfo([], 1n << 60n, 0n)), /beyond 2\^53 bytes/);
});

Deno.test("a region that ends past the largest file offset (2^63) is refused", () => {
  assert.throws(
    () => decodeRegionInfo(regionInfo([], 0x2000n, (1n << 63n) - 0x1000n)),
    /region 4 \(offset 0x7ffffffffffff000, size 0x2000\) ends past 2\^63/,
  );
});

Deno.test("a region info whose argsz asks for more than 64 KiB is refused before anyone allocates it", () => {
  const b = new Uint8Array(SIZEOF_REGION_INFO);
  dv(b).setUint32(0, 0x8000_0000, true);
  dv(b).setUint32(4, VFIO_REGION_INFO_FLAG_CAPS, true);
  assert.throws(
    () => decodeRegionInfo(b),
    /^RangeError: region 0 info argsz 2147483648 is beyond 65536 bytes$/,
  );
  dv(b).setUint32(0, 65536, true);
  assert.equal(decodeRegionInfo(b).argsz, 65536);
});

Deno.test("a region info whose argsz is smaller than the struct is refused", () => {
  const b = new Uint8Array(SIZEOF_REGION_INFO);
  dv(b).setUint32(0, 16, true);
  assert.throws(
    () => decodeRegionInfo(b),
    /^RangeError: region 0 info argsz 16 is below the 32 bytes of the struct$/,
  );
});

Deno.test("a capability offset inside the fixed struct is refused", () => {
  const b = regionInfo([[0n, 0x1000n]]);
  dv(b).setUint32(12, 8, true); // would read index and cap_offset as a capability header
  assert.throws(() => decodeRegionInfo(b), /capability at offset 8 lies inside the 32-byte/);
  const c = regionInfo([[0n, 0x1000n]]);
  capHeader(dv(c), 32, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 16); // next points back into it
  assert.throws(() => decodeRegionInfo(c), /capability at offset 16 lies inside the 32-byte/);
});

Deno.test("capabilities past argsz are not read (the kernel wrote only argsz bytes)", () => {
  const b = new Uint8Array(96);
  b.set(regionInfo([[0n, 0x1000n]]));
  const v = dv(b);
  v.setUint32(0, 48, true); // the sparse cap's header fits, its areas do not
  assert.throws(
    () => decodeRegionInfo(b),
    /^RangeError: the list of 1 sparse mmap areas ends at byte 64, past the reply's 48$/,
  );
});

Deno.test("a sparse-mmap capability cut off before nr_areas is refused with a sentence", () => {
  const b = regionInfo([]);
  const cut = b.slice(0, SIZEOF_REGION_INFO + 8);
  dv(cut).setUint32(0, cut.length, true);
  assert.throws(
    () => decodeRegionInfo(cut),
    /^RangeError: the sparse mmap capability at offset 32 ends at byte 48, past the reply's 40$/,
  );
});

/** An IOMMU info with one IOVA-range capability holding `ranges`. */
function iommuInfo(ranges: [bigint, bigint][]): Uint8Array {
  const capAt = SIZEOF_IOMMU_TYPE1_INFO;
  const b = new Uint8Array(capAt + 16 + 16 * ranges.length);
  const v = dv(b);
  v.setUint32(0, b.length, true);
  v.setUint32(4, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS, true);
  v.setBigUint64(8, 0x40201000n, true);
  v.setUint32(16, capAt, true);
  capHeader(v, capAt, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 0);
  v.setUint32(capAt + 8, ranges.length, true);
  ranges.forEach(([s, e], i) => {
    v.setBigUint64(capAt + 16 + 16 * i, s, true);
    v.setBigUint64(capAt + 24 + 16 * i, e, true);
  });
  return b;
}

Deno.test("an IOVA range that ends before it starts is refused", () => {
  assert.throws(
    () => decodeIommuInfo(iommuInfo([[0n, 0xfedf_ffffn], [0x2000n, 0x1fffn]])),
    /^RangeError: IOVA range 1 \(0x2000–0x1fff\) ends before it starts$/,
  );
});

Deno.test("an IOMMU info with argsz beyond 64 KiB or a capability inside the struct is refused", () => {
  const big = iommuInfo([[0n, 0xffffn]]);
  dv(big).setUint32(0, 0xffff_ffff, true);
  assert.throws(() => decodeIommuInfo(big), /argsz 4294967295 is beyond 65536/);
  const inside = iommuInfo([[0n, 0xffffn]]);
  dv(inside).setUint32(16, 8, true);
  assert.throws(() => decodeIommuInfo(inside), /capability at offset 8 lies inside the 24-byte/);
});

Deno.test("an IOVA-range capability cut off before nr_iovas is refused with a sentence", () => {
  const cut = iommuInfo([]).slice(0, SIZEOF_IOMMU_TYPE1_INFO + 8);
  dv(cut).setUint32(0, cut.length, true);
  assert.throws(
    () => decodeIommuInfo(cut),
    /^RangeError: the IOVA range capability at offset 24 ends at byte 40, past the reply's 32$/,
  );
});
