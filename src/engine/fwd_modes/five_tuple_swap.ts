/**
 * testpmd's 5tswap: a frame is turned into one of the reverse flow by swapping its MACs,
 * its IPv4 or IPv6 addresses and, for TCP, UDP and SCTP, its ports, past up to two VLAN
 * tags. IPv4, TCP and UDP checksums stay valid: the Internet checksum is a sum of 16-bit
 * words, and swapping two fields (addresses, ports) does not change it. SCTP's CRC32c
 * covers its ports in order, so a swapped SCTP packet's CRC no longer matches (testpmd
 * leaves it so too).
 * Reads only the first buffer's bytes; allocates nothing.
 *
 * @module
 */

import { l2HeaderLength } from "./l2_header.ts";
import { swapMacs } from "./mac_swap.ts";

/** IP protocol numbers whose first four bytes are source and destination port. */
const TCP = 6, UDP = 17, SCTP = 132;

/** Swaps `n` bytes at `a` with those at `b`. */
function swapBytes(d: Uint8Array, a: number, b: number, n: number): void {
  for (let j = 0; j < n; j++) {
    const t = d[a + j];
    d[a + j] = d[b + j];
    d[b + j] = t;
  }
}

/** Swaps the ports of a TCP/UDP/SCTP header at `l4` when protocol `proto` has them there. */
function swapPorts(d: Uint8Array, l4: number, end: number, proto: number): void {
  if ((proto === TCP || proto === UDP || proto === SCTP) && l4 + 4 <= end) {
    swapBytes(d, l4, l4 + 2, 2);
  }
}

/**
 * 5tswap of the frame at `off` in `d`, of which `avail` bytes are there (the first
 * buffer's): MACs always (a frame under 12 bytes is left as it is); for IPv4 (a header
 * that fits) and IPv6 the addresses; for TCP, UDP and SCTP the ports too, unless the
 * IPv4 packet is a fragment past the first (its bytes there are payload). IPv6 extension
 * headers are not walked (as testpmd): only a TCP/UDP/SCTP next header gets its ports
 * swapped.
 *
 * @example
 * ```ts
 * import { fiveTupleSwap } from "./five_tuple_swap.ts";
 * const f = new Uint8Array(42);
 * f[12] = 0x08; f[14] = 0x45; f[23] = 17; // IPv4, UDP
 * f[26] = 10; f[30] = 20; f[35] = 1; f[37] = 2; // 10.0.0.0 -> 20.0.0.0, port 1 -> 2
 * fiveTupleSwap(f, 0, 42);
 * [f[26], f[30], f[35], f[37]]; // [20, 10, 2, 1]
 * ```
 */
export function fiveTupleSwap(d: Uint8Array, off: number, avail: number): void {
  if (avail < 12) return;
  swapMacs(d, off);
  const l2 = l2HeaderLength(d, off, avail);
  if (l2 < 0) return;
  const type = (d[off + l2 - 2] << 8) | d[off + l2 - 1];
  const l3 = off + l2, end = off + avail;
  if (type === 0x0800) {
    const ihl = (d[l3] & 0x0f) << 2;
    if ((d[l3] >> 4) !== 4 || ihl < 20 || l3 + ihl > end) return;
    swapBytes(d, l3 + 12, l3 + 16, 4);
    // A fragment past the first carries payload where the ports would be.
    if ((((d[l3 + 6] << 8) | d[l3 + 7]) & 0x1fff) !== 0) return;
    swapPorts(d, l3 + ihl, end, d[l3 + 9]);
  } else if (type === 0x86dd) {
    if ((d[l3] >> 4) !== 6 || l3 + 40 > end) return;
    swapBytes(d, l3 + 8, l3 + 24, 16);
    swapPorts(d, l3 + 40, end, d[l3 + 6]);
  }
}
