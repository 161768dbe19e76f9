/**
 * testpmd's macswap: a frame's destination and source MAC trade places, so that it goes
 * back to where it came from. Allocates nothing.
 *
 * @module
 */

/**
 * Swaps the destination and source MAC of the frame at `off` in `d` (12 bytes there).
 *
 * @example
 * ```ts
 * import { swapMacs } from "./mac_swap.ts";
 * const f = Uint8Array.from({ length: 14 }, (_, i) => i);
 * swapMacs(f, 0);
 * f[0]; // 6
 * ```
 */
export function swapMacs(d: Uint8Array, off: number): void {
  for (let j = 0; j < 6; j++) {
    const t = d[off + j];
    d[off + j] = d[off + 6 + j];
    d[off + 6 + j] = t;
  }
}
