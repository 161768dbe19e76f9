/**
 * Checks of VFIO info replies (Linux `include/uapi/linux/vfio.h`), shared by kernel VFIO
 * (ffi/vfio_uapi.ts) and vfio-user (src/vfio_user/protocol/), which decode the same
 * structs: argsz, the capability chain (struct vfio_info_cap_header), and the region's
 * sparse-mmap list (VFIO_REGION_INFO_CAP_SPARSE_MMAP; vfio-user.rst "Sparse Regions").
 * Each sparse area is a part of the region that may be mmap'd, so an area that ends past
 * the region, wraps past 2^64 or overlaps another would map memory that is not the
 * region's. Every failure is a RangeError naming the field; callers word it for users.
 *
 * @module
 */

/**
 * Largest argsz accepted in a VFIO info reply: the kernel's capability chains take a few
 * hundred bytes, so a larger ask is a broken reply, not a buffer to allocate.
 */
export const MAX_INFO_ARGSZ = 65536;

/**
 * A u64 field in hex, as messages name it.
 *
 * @example
 * ```ts
 * import { hex } from "./vfio_info_checks.ts";
 * hex(0x4000n); // "0x4000"
 * ```
 */
export function hex(n: bigint): string {
  return "0x" + n.toString(16);
}

/**
 * Refuses an argsz below the fixed struct (the kernel never shrinks it) or beyond
 * {@linkcode MAX_INFO_ARGSZ}: callers allocate argsz bytes for the second ioctl.
 *
 * @example
 * ```ts
 * import { checkArgsz } from "./vfio_info_checks.ts";
 * checkArgsz(32, 32, "region 0 info"); // fine; 16 or 1 << 20 would throw
 * ```
 */
export function checkArgsz(argsz: number, structSize: number, what: string): void {
  if (argsz < structSize) {
    throw new RangeError(
      `${what} argsz ${argsz} is below the ${structSize} bytes of the struct`,
    );
  }
  if (argsz > MAX_INFO_ARGSZ) {
    throw new RangeError(`${what} argsz ${argsz} is beyond ${MAX_INFO_ARGSZ} bytes`);
  }
}

/**
 * Refuses a region whose size is beyond 2^53 (it becomes a Number) or whose file range
 * (`offset` in the device fd, `size` bytes) ends past 2^63: pread/pwrite/mmap take a
 * signed 64-bit off_t.
 *
 * @example
 * ```ts
 * import { checkRegionEnd } from "./vfio_info_checks.ts";
 * checkRegionEnd(0, 0x4000n, 0x1000n); // fine; offset 2^63 - 0x800 would throw
 * ```
 */
export function checkRegionEnd(index: number, offset: bigint, size: bigint): void {
  // Sizes become Numbers (mmap lengths, bounds checks): beyond 2^53 they would round.
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`region ${index} size ${hex(size)} is beyond 2^53 bytes`);
  }
  if (offset + size > 1n << 63n) {
    throw new RangeError(
      `region ${index} (offset ${hex(offset)}, size ${
        hex(size)
      }) ends past 2^63, the largest file offset`,
    );
  }
}

/**
 * Refuses a reply whose `what` would end at byte `end`, past the reply's `b.length`.
 *
 * @example
 * ```ts
 * import { needBytes } from "./vfio_info_checks.ts";
 * needBytes(new Uint8Array(48), 48, "the sparse mmap capability at offset 32"); // fine
 * ```
 */
export function needBytes(b: Uint8Array, end: number, what: string): void {
  if (end > b.length) {
    throw new RangeError(`${what} ends at byte ${end}, past the reply's ${b.length}`);
  }
}

/**
 * Walks a VFIO capability chain (struct vfio_info_cap_header: id u16, version u16, next
 * u32) and returns each capability's id and offset within `b`. A header outside `b`, a
 * loop, or an offset below `start` (inside the fixed struct the chain follows) is a
 * RangeError.
 *
 * @example
 * ```ts
 * import { capabilityChain } from "./vfio_info_checks.ts";
 * capabilityChain(new Uint8Array(64), 0); // []
 * ```
 */
export function capabilityChain(
  b: Uint8Array,
  first: number,
  start = 0,
): { id: number; version: number; offset: number }[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const caps = [];
  const seen = new Set<number>();
  for (let off = first; off !== 0;) {
    if (off < start) {
      throw new RangeError(
        `VFIO capability at offset ${off} lies inside the ${start}-byte struct before the chain`,
      );
    }
    if (off + 8 > b.length || seen.has(off)) {
      throw new RangeError(`VFIO capability chain is malformed at offset ${off}`);
    }
    seen.add(off);
    caps.push({ id: v.getUint16(off, true), version: v.getUint16(off + 2, true), offset: off });
    off = v.getUint32(off + 4, true);
  }
  return caps;
}

/** One mmap-able area of a region, checked: both fields are exact numbers. */
export interface CheckedSparseArea {
  /** Offset of the area within the region. */
  offset: number;
  /** Size of the area. */
  size: number;
}

/**
 * The sparse areas as numbers, once each lies inside a region of `regionSize` bytes (the
 * u64 sums are BigInt, so they cannot wrap) and no two overlap; else a RangeError naming
 * the area. Empty areas are allowed anywhere inside the region.
 *
 * @example
 * ```ts
 * import { checkSparseAreas } from "./vfio_info_checks.ts";
 * checkSparseAreas([{ offset: 0n, size: 0x3000n }, { offset: 0x4000n, size: 0x1000n }], 0x5000n);
 * // [{ offset: 0, size: 0x3000 }, { offset: 0x4000, size: 0x1000 }]
 * ```
 */
export function checkSparseAreas(
  raw: readonly { offset: bigint; size: bigint }[],
  regionSize: bigint,
): CheckedSparseArea[] {
  raw.forEach((a, i) => {
    if (a.offset + a.size > regionSize) {
      throw new RangeError(
        `sparse mmap area ${i} (offset ${hex(a.offset)}, size ${
          hex(a.size)
        }) ends past the region's ${hex(regionSize)} bytes`,
      );
    }
  });
  const order = raw.map((_, i) => i).filter((i) => raw[i].size > 0n)
    .sort((x, y) => (raw[x].offset < raw[y].offset ? -1 : raw[x].offset > raw[y].offset ? 1 : 0));
  for (let k = 1; k < order.length; k++) {
    const prev = raw[order[k - 1]], cur = raw[order[k]];
    if (cur.offset < prev.offset + prev.size) {
      const [i, j] = [order[k - 1], order[k]].sort((x, y) => x - y);
      throw new RangeError(`sparse mmap areas ${i} and ${j} overlap`);
    }
  }
  return raw.map((a) => ({ offset: Number(a.offset), size: Number(a.size) }));
}
