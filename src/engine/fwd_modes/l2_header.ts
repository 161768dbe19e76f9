/**
 * Where a frame's network header starts: after the Ethernet header and up to two VLAN
 * tags (802.1Q 0x8100, 802.1ad 0x88a8, and the older QinQ 0x9100), as DPDK testpmd's
 * 5tswap and icmpecho skip them. Reads only bytes the caller says it has; allocates
 * nothing.
 *
 * @module
 */

/** Ethertype of 802.1Q. */
const VLAN = 0x8100;
/** Ethertype of 802.1ad (service tag). */
const QINQ = 0x88a8;
/** The pre-standard QinQ ethertype some switches still send. */
const QINQ_OLD = 0x9100;

/**
 * Bytes of the Ethernet header and its VLAN tags (at most two) of the frame at `off` in
 * `d`, of which `avail` bytes are there: 14, 18 or 22, or -1 when the header does not
 * fit. The ethertype of what follows is the 16 bits before that offset.
 *
 * @example
 * ```ts
 * import { l2HeaderLength } from "./l2_header.ts";
 * const f = new Uint8Array(64);
 * f[12] = 0x81; f[16] = 0x08; // one 802.1Q tag, then IPv4
 * l2HeaderLength(f, 0, 64); // 18
 * ```
 */
export function l2HeaderLength(d: Uint8Array, off: number, avail: number): number {
  let l2 = 14;
  for (let tags = 0; tags < 3; tags++) {
    if (avail < l2) return -1;
    const type = (d[off + l2 - 2] << 8) | d[off + l2 - 1];
    if ((type !== VLAN && type !== QINQ && type !== QINQ_OLD) || tags === 2) return l2;
    l2 += 4;
  }
  return l2;
}
