/**
 * testpmd's icmpecho: a port that answers ARP requests for any address with its own MAC,
 * and ICMPv4 echo requests with echo replies, sent back out of the port the request came
 * in on; every other frame is left unanswered (the forwarder frees it and counts it,
 * P_DROP_MODE). Up to two VLAN tags are kept as they are. Works in place on the first
 * buffer's bytes; allocates nothing.
 *
 * @module
 */

import { l2HeaderLength } from "./l2_header.ts";
import { swapMacs } from "./mac_swap.ts";
import { MODE_BOUNCE, MODE_DROP } from "./modes.ts";

/** ARP over Ethernet for IPv4 (RFC 826): 28 bytes. */
const ARP_BYTES = 28;
const ARP_REQUEST = 1, ARP_REPLY = 2;
const ICMP = 1, ECHO_REQUEST = 8, ECHO_REPLY = 0;

/**
 * Turns the frame at `off` in `d` (`avail` bytes there) into its answer, in place, for
 * the port whose MAC is `mac`; returns MODE_BOUNCE (send it back) or MODE_DROP (no
 * answer: not an ARP request for IPv4 over Ethernet, nor an ICMPv4 echo request to a
 * unicast address that fits in the first buffer, nor a fragment).
 *
 * - ARP request: the reply goes to the request's source MAC (target hardware address:
 *   the request's sender hardware address), from `mac` (source MAC and sender hardware
 *   address); sender and target protocol addresses trade places, so the asked address
 *   is answered.
 * - ICMP echo request: MACs and IPv4 addresses swapped (the IPv4 header checksum is a
 *   sum: unchanged), type 8 becomes 0 and the ICMP checksum is updated incrementally
 *   (RFC 1624, eqn. 3), so payload beyond the first buffer is never read.
 *
 * @example
 * ```ts
 * import { icmpEcho } from "./icmp_echo.ts";
 * import { MODE_DROP } from "./modes.ts";
 * icmpEcho(new Uint8Array(60), 0, 60, new Uint8Array(6)) === MODE_DROP; // true: not ARP nor IP
 * ```
 */
export function icmpEcho(d: Uint8Array, off: number, avail: number, mac: Uint8Array): number {
  const l2 = l2HeaderLength(d, off, avail);
  if (l2 < 0) return MODE_DROP;
  const type = (d[off + l2 - 2] << 8) | d[off + l2 - 1];
  const l3 = off + l2, end = off + avail;
  if (type === 0x0806) {
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, a request.
    if (
      l3 + ARP_BYTES > end || d[l3] !== 0 || d[l3 + 1] !== 1 || d[l3 + 2] !== 0x08 ||
      d[l3 + 3] !== 0 || d[l3 + 4] !== 6 || d[l3 + 5] !== 4 || d[l3 + 6] !== 0 ||
      d[l3 + 7] !== ARP_REQUEST
    ) {
      return MODE_DROP;
    }
    d[l3 + 7] = ARP_REPLY;
    // As testpmd: to the frame's source, the target hardware address the sender's.
    for (let j = 0; j < 6; j++) {
      d[off + j] = d[off + 6 + j];
      d[off + 6 + j] = mac[j];
      d[l3 + 18 + j] = d[l3 + 8 + j];
      d[l3 + 8 + j] = mac[j];
    }
    for (let j = 0; j < 4; j++) {
      const t = d[l3 + 14 + j];
      d[l3 + 14 + j] = d[l3 + 24 + j];
      d[l3 + 24 + j] = t;
    }
    return MODE_BOUNCE;
  }
  if (type !== 0x0800) return MODE_DROP;
  const ihl = (d[l3] & 0x0f) << 2;
  if ((d[l3] >> 4) !== 4 || ihl < 20 || d[l3 + 9] !== ICMP) return MODE_DROP;
  const icmp = l3 + ihl;
  // Not a fragment (MF or an offset), the ICMP header there, a unicast destination.
  if (
    (((d[l3 + 6] << 8) | d[l3 + 7]) & 0x3fff) !== 0 || icmp + 8 > end ||
    d[icmp] !== ECHO_REQUEST || d[icmp + 1] !== 0 || d[l3 + 16] >= 224
  ) {
    return MODE_DROP;
  }
  swapMacs(d, off);
  for (let j = 0; j < 4; j++) {
    const t = d[l3 + 12 + j];
    d[l3 + 12 + j] = d[l3 + 16 + j];
    d[l3 + 16 + j] = t;
  }
  d[icmp] = ECHO_REPLY;
  // HC' = ~(~HC + ~m + m') with m = 0x0800 (type 8, code 0), m' = 0x0000.
  let sum = (~((d[icmp + 2] << 8) | d[icmp + 3]) & 0xffff) + 0xf7ff;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  const hc = ~sum & 0xffff;
  d[icmp + 2] = hc >> 8;
  d[icmp + 3] = hc & 0xff;
  return MODE_BOUNCE;
}
