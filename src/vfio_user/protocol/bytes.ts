/**
 * Byte helpers shared by the vfio-user message codecs.
 *
 * @module
 */

/**
 * A little-endian-capable DataView over exactly the bytes of `b`.
 *
 * @example
 * ```ts
 * import { dv } from "./bytes.ts";
 * dv(new Uint8Array([1, 0]).subarray(0, 2)).getUint16(0, true); // 1
 * ```
 */
export function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Throws a RangeError naming `what` when `b` is shorter than `n` bytes.
 *
 * @example
 * ```ts
 * import { need } from "./bytes.ts";
 * need(new Uint8Array(16), 16, "a header"); // fine
 * ```
 */
export function need(b: Uint8Array, n: number, what: string): void {
  if (b.length < n) {
    throw new RangeError(`${what} needs ${n} bytes, got ${b.length}`);
  }
}
