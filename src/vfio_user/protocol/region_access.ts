/**
 * VFIO_USER_REGION_READ and VFIO_USER_REGION_WRITE payloads (vfio-user.rst sections of
 * those names, under "Read and Write Operations").
 *
 * @module
 */

import { dv, need } from "./bytes.ts";

/** Size of struct vfio_user_region_access without data. */
export const REGION_ACCESS_SIZE = 16;

/** A REGION_READ/REGION_WRITE request or reply. */
export interface RegionAccess {
  /** Offset into the region (offset 0, u64). */
  offset: number;
  /** Region index (offset 8). */
  region: number;
  /** Bytes transferred (offset 12). */
  count: number;
  /** The data (offset 16): in a write request and a read reply. */
  data: Uint8Array;
}

/**
 * Writes a region access header (offset u64, region u32, count u32) into `out` at `at`;
 * the data, if any, goes at `at + 16`. For hot paths that reuse one buffer.
 *
 * @example
 * ```ts
 * import { encodeRegionAccessInto } from "./region_access.ts";
 * const b = new Uint8Array(20);
 * encodeRegionAccessInto(b, 0, 0x3000, 4, 2);
 * b[12]; // 2
 * ```
 */
export function encodeRegionAccessInto(
  out: Uint8Array,
  at: number,
  offset: number,
  region: number,
  count: number,
): void {
  const d = new DataView(out.buffer, out.byteOffset + at, REGION_ACCESS_SIZE);
  d.setBigUint64(0, BigInt(offset), true);
  d.setUint32(8, region, true);
  d.setUint32(12, count, true);
}

/**
 * Encodes a REGION_READ request (no data; `count` bytes wanted).
 *
 * @example
 * ```ts
 * import { encodeRegionRead } from "./region_access.ts";
 * encodeRegionRead(7, 0, 4).length; // 16
 * ```
 */
export function encodeRegionRead(
  region: number,
  offset: number,
  count: number,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(REGION_ACCESS_SIZE);
  encodeRegionAccessInto(b, 0, offset, region, count);
  return b;
}

/**
 * Encodes a REGION_WRITE request carrying `data`.
 *
 * @example
 * ```ts
 * import { encodeRegionWrite } from "./region_access.ts";
 * encodeRegionWrite(4, 0x3000, new Uint8Array([1, 0])).length; // 18
 * ```
 */
export function encodeRegionWrite(
  region: number,
  offset: number,
  data: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(REGION_ACCESS_SIZE + data.length);
  encodeRegionAccessInto(b, 0, offset, region, data.length);
  b.set(data, REGION_ACCESS_SIZE);
  return b;
}

/**
 * Decodes a REGION_READ/WRITE payload; `data` is a view of the bytes after the 16-byte
 * access header (empty in a write reply), at most `count` long.
 *
 * @example
 * ```ts
 * import { decodeRegionAccess, encodeRegionWrite } from "./region_access.ts";
 * decodeRegionAccess(encodeRegionWrite(4, 8, new Uint8Array([9]))).data[0]; // 9
 * ```
 */
export function decodeRegionAccess(b: Uint8Array): RegionAccess {
  need(b, REGION_ACCESS_SIZE, "a region access payload");
  const d = dv(b);
  const count = d.getUint32(12, true);
  return {
    offset: Number(d.getBigUint64(0, true)),
    region: d.getUint32(8, true),
    count,
    data: b.subarray(REGION_ACCESS_SIZE, REGION_ACCESS_SIZE + count),
  };
}
