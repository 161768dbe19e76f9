/**
 * RSS hash types and hash input (virtio 1.2 §5.1.6.4.3 "Hash calculation for incoming
 * packets", §5.1.6.4.4 "Hash reporting"), and the receive queue an RSS device picks
 * (§5.1.6.5.7.3 "RSS processing").
 *
 * `rssHashInput()` parses an Ethernet frame the way QEMU 7.2's software RSS does
 * (hw/net/virtio-net.c virtio_net_process_rss → net/eth.c eth_get_protocols, and
 * hw/net/net_rx_pkt.c net_rx_pkt_calc_rss_hash), so that `predictRss()` names the queue
 * and hash that QEMU's device reports:
 * - Ethernet: one 802.1Q tag (0x8100) is skipped; 802.1ad (0x88a8) is skipped together
 *   with an inner 0x8100 tag when there is one (eth_get_l2_hdr_length). No other L2.
 * - IPv4 (ethertype 0x0800): source and destination address; the ports too when the
 *   header says version 4, protocol TCP (6) or UDP (17), the packet is not a fragment
 *   (MF set or a fragment offset: ports are never hashed for any fragment, the first one
 *   included) and the frame holds the whole 20-byte TCP or 8-byte UDP header at
 *   l3 + 4·IHL.
 * - IPv6 (ethertype 0x86dd): extension headers are walked (hop-by-hop 0, routing 43,
 *   fragment 44, AH 51, destination options 60, mobility 135; each is (len + 1)·8 bytes,
 *   AH included, as QEMU does). A routing header of type 2 with segments left 1 and
 *   length 2 supplies the "_EX" destination address; a home-address option (0xC9) in a
 *   destination-options header supplies the "_EX" source address. A fragment header means
 *   no ports. ESP (50) and anything else ends the walk as the upper-layer protocol.
 * - Frames whose IP header is cut short give VIRTIO_NET_HASH_REPORT_NONE here. (QEMU 7.2
 *   would hash leftover header bytes of an earlier packet there: not predictable.)
 *
 * Which hash type applies differs between QEMU 7.2 and the spec for IPv6 ("flavor"):
 * - "qemu" (default; virtio_net_get_hash_type): TCP if TCPv6 or TCP_EX is enabled, then
 *   UDP if UDPv6 or UDP_EX, then IPv6 if IPv6 or IP_EX; an enabled _EX bit picks the _EX
 *   variant (and report) whether or not the packet has extension headers.
 * - "spec" (§5.1.6.4.3.3 and .4): packets with extension headers try TCP_EX, UDP_EX, IP_EX
 *   first and else fall back to the rules without extension headers (TCPv6, UDPv6, IPv6).
 * A "_EX" hash uses the home address / type-2 routing address when present and the
 * header's source / destination address otherwise, so the hash value is the same either
 * way; only the reported type differs.
 *
 * @module
 */

import { toeplitzHash, ToeplitzHasher } from "./toeplitz.ts";

// §5.1.6.4.3.1 "Supported/enabled hash types". The spec spells them VIRTIO_NET_HASH_TYPE_*;
// Linux and QEMU (include/uapi/linux/virtio_net.h) use these names for the same bits.

/** IPv4: source and destination address. */
export const VIRTIO_NET_RSS_HASH_TYPE_IPv4 = 1 << 0;
/** TCP over IPv4: addresses and TCP ports. */
export const VIRTIO_NET_RSS_HASH_TYPE_TCPv4 = 1 << 1;
/** UDP over IPv4: addresses and UDP ports. */
export const VIRTIO_NET_RSS_HASH_TYPE_UDPv4 = 1 << 2;
/** IPv6 (without extension headers, per spec): source and destination address. */
export const VIRTIO_NET_RSS_HASH_TYPE_IPv6 = 1 << 3;
/** TCP over IPv6: addresses and TCP ports. */
export const VIRTIO_NET_RSS_HASH_TYPE_TCPv6 = 1 << 4;
/** UDP over IPv6: addresses and UDP ports. */
export const VIRTIO_NET_RSS_HASH_TYPE_UDPv6 = 1 << 5;
/** IPv6 with extension headers: home address / type-2 routing address. */
export const VIRTIO_NET_RSS_HASH_TYPE_IP_EX = 1 << 6;
/** TCP over IPv6 with extension headers. */
export const VIRTIO_NET_RSS_HASH_TYPE_TCP_EX = 1 << 7;
/** UDP over IPv6 with extension headers. */
export const VIRTIO_NET_RSS_HASH_TYPE_UDP_EX = 1 << 8;
/** All nine hash types: what QEMU 7.2 advertises in supported_hash_types. */
export const VIRTIO_NET_RSS_HASH_TYPES_ALL = 0x1ff;

// §5.1.6.4.4 "Hash reporting for incoming packets": hash_report in virtio_net_hdr_v1_hash.
// VIRTIO_NET_HASH_TYPE_XXX = 1 << (VIRTIO_NET_HASH_REPORT_XXX - 1).

/** No hash was calculated (the packet was unclassified). */
export const VIRTIO_NET_HASH_REPORT_NONE = 0;
/** Hashed as IPv4. */
export const VIRTIO_NET_HASH_REPORT_IPv4 = 1;
/** Hashed as TCP over IPv4. */
export const VIRTIO_NET_HASH_REPORT_TCPv4 = 2;
/** Hashed as UDP over IPv4. */
export const VIRTIO_NET_HASH_REPORT_UDPv4 = 3;
/** Hashed as IPv6. */
export const VIRTIO_NET_HASH_REPORT_IPv6 = 4;
/** Hashed as TCP over IPv6. */
export const VIRTIO_NET_HASH_REPORT_TCPv6 = 5;
/** Hashed as UDP over IPv6. */
export const VIRTIO_NET_HASH_REPORT_UDPv6 = 6;
/** Hashed as IPv6 with extension headers. */
export const VIRTIO_NET_HASH_REPORT_IPv6_EX = 7;
/** Hashed as TCP over IPv6 with extension headers. */
export const VIRTIO_NET_HASH_REPORT_TCPv6_EX = 8;
/** Hashed as UDP over IPv6 with extension headers. */
export const VIRTIO_NET_HASH_REPORT_UDPv6_EX = 9;

/** Longest hash input: two IPv6 addresses and two ports. */
export const RSS_HASH_INPUT_MAX_LENGTH = 36;

// Index r - 1 for report r (and bit r - 1 of hash_types).
const TYPE_NAMES = [
  "IPv4",
  "TCPv4",
  "UDPv4",
  "IPv6",
  "TCPv6",
  "UDPv6",
  "IPv6_EX",
  "TCPv6_EX",
  "UDPv6_EX",
];
// Input length per report: addresses (8 or 32 bytes) plus 4 bytes of ports for TCP/UDP.
const INPUT_LENGTH = [0, 8, 12, 12, 32, 36, 36, 32, 36, 36];
const BIT_NAMES = ["IPv4", "TCPv4", "UDPv4", "IPv6", "TCPv6", "UDPv6", "IP_EX", "TCP_EX", "UDP_EX"];

/**
 * The hash-type bits set in `mask`, by the spec's suffix; unknown bits as hex.
 *
 * @example
 * ```ts
 * import { formatHashTypes } from "./hash_types.ts";
 * formatHashTypes(0b11); // "IPv4|TCPv4"
 * formatHashTypes(0); // "none"
 * formatHashTypes(1 << 12); // "0x1000"
 * ```
 */
export function formatHashTypes(mask: number): string {
  const parts: string[] = [];
  for (let b = 0; b < BIT_NAMES.length; b++) if (mask & (1 << b)) parts.push(BIT_NAMES[b]);
  const unknown = (mask >>> 0) & ~VIRTIO_NET_RSS_HASH_TYPES_ALL;
  if (unknown) parts.push(`0x${(unknown >>> 0).toString(16)}`);
  return parts.length ? parts.join("|") : "none";
}

/**
 * The spec name of a hash_report value.
 *
 * @example
 * ```ts
 * import { hashReportName } from "./hash_types.ts";
 * hashReportName(2); // "VIRTIO_NET_HASH_REPORT_TCPv4"
 * hashReportName(0); // "VIRTIO_NET_HASH_REPORT_NONE"
 * hashReportName(42); // "hash report 42 (unknown)"
 * ```
 */
export function hashReportName(report: number): string {
  if (report === VIRTIO_NET_HASH_REPORT_NONE) return "VIRTIO_NET_HASH_REPORT_NONE";
  const name = TYPE_NAMES[report - 1];
  return name ? `VIRTIO_NET_HASH_REPORT_${name}` : `hash report ${report} (unknown)`;
}

/**
 * Bytes of hash input for a report type: 0 (NONE), 8 (IPv4), 12 (TCPv4, UDPv4),
 * 32 (IPv6, IPv6_EX) or 36 (TCP/UDP over IPv6).
 *
 * @example
 * ```ts
 * import { hashInputLength, VIRTIO_NET_HASH_REPORT_TCPv6 } from "./hash_types.ts";
 * hashInputLength(VIRTIO_NET_HASH_REPORT_TCPv6); // 36
 * ```
 */
export function hashInputLength(report: number): number {
  return INPUT_LENGTH[report] ?? 0;
}

/** Which rules pick the hash type of an IPv6 packet (see the module documentation). */
export type RssFlavor = "qemu" | "spec";

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
/** QEMU checks for a whole struct tcp_header (20 bytes) / struct udp_header (8 bytes). */
const TCP_HEADER_SIZE = 20;
const UDP_HEADER_SIZE = 8;
const IPV4_HEADER_SIZE = 20;
const IPV6_HEADER_SIZE = 40;

function be16(f: Uint8Array, i: number): number {
  return (f[i] << 8) | f[i + 1];
}

/** QEMU's eth_is_ip6_extension_header_type: the headers it walks over. */
function isIp6Extension(t: number): boolean {
  return t === 0 || t === 43 || t === 44 || t === 51 || t === 60 || t === 135;
}

// Result of the last IPv6 walk (module state: rssHashInput allocates nothing).
let v6HasExt = false;
let v6Fragment = false;
let v6L4Proto = -1;
let v6L4 = 0;
let v6ExSrc = -1;
let v6ExDst = -1;

/** Offset of the address in a type-2 routing header at `at`, or -1 (QEMU's rules). */
function routingType2Address(f: Uint8Array, end: number, at: number): number {
  if (end - at < 8 + 16) return -1;
  return f[at + 2] === 2 && f[at + 3] === 1 ? at + 8 : -1;
}

/** Offset of the home address in a destination-options header at `at`, or -1. */
function homeAddress(f: Uint8Array, end: number, at: number, extLen: number): number {
  let left = (extLen + 1) * 8 - 2;
  let opt = at + 2;
  while (left > 2) {
    if (end - opt < 2) return -1;
    const type = f[opt];
    const optLen = type === 0 ? 1 : f[opt + 1] + 2; // Pad1 is one byte, others TLV
    if (optLen > left) return -1;
    if (type === 0xc9) return end - (opt + 2) >= 16 ? opt + 2 : -1;
    opt += optLen;
    left -= optLen;
  }
  return -1;
}

/**
 * Walks the IPv6 header at `l3` like QEMU's eth_parse_ipv6_hdr. False when an extension
 * header is cut short (no upper-layer protocol then; addresses found so far still count).
 */
function walkIpv6(f: Uint8Array, end: number, l3: number): boolean {
  v6Fragment = false;
  v6ExSrc = -1;
  v6ExDst = -1;
  v6L4Proto = -1;
  let cur = f[l3 + 6];
  let hdrLen = IPV6_HEADER_SIZE;
  v6HasExt = isIp6Extension(cur);
  if (!v6HasExt) {
    v6L4Proto = cur;
    v6L4 = l3 + hdrLen;
    return true;
  }
  let next: number;
  do {
    const at = l3 + hdrLen;
    if (end - at < 2) return false;
    next = f[at];
    const extLen = f[at + 1];
    if (cur === 43) {
      // Only a routing header of length 2 (one address) is looked at; it may clear an
      // address found in an earlier one, as in QEMU.
      if (extLen === 2) v6ExDst = routingType2Address(f, end, at);
    } else if (cur === 60) {
      v6ExSrc = homeAddress(f, end, at, extLen);
    } else if (cur === 44) {
      v6Fragment = true;
    }
    hdrLen += (extLen + 1) * 8;
    cur = next;
  } while (isIp6Extension(cur));
  v6L4Proto = next;
  v6L4 = l3 + hdrLen;
  return true;
}

function put(f: Uint8Array, from: number, out: Uint8Array, at: number, n: number): void {
  for (let i = 0; i < n; i++) out[at + i] = f[from + i];
}

/** Selects the IPv6 report type (0 when none) for the enabled `types`. */
function ipv6Report(
  types: number,
  tcp: boolean,
  udp: boolean,
  hasExt: boolean,
  flavor: RssFlavor,
): number {
  if (flavor === "qemu") {
    // hw/net/virtio-net.c virtio_net_get_hash_type
    if (tcp && (types & (VIRTIO_NET_RSS_HASH_TYPE_TCP_EX | VIRTIO_NET_RSS_HASH_TYPE_TCPv6))) {
      return types & VIRTIO_NET_RSS_HASH_TYPE_TCP_EX
        ? VIRTIO_NET_HASH_REPORT_TCPv6_EX
        : VIRTIO_NET_HASH_REPORT_TCPv6;
    }
    if (udp && (types & (VIRTIO_NET_RSS_HASH_TYPE_UDP_EX | VIRTIO_NET_RSS_HASH_TYPE_UDPv6))) {
      return types & VIRTIO_NET_RSS_HASH_TYPE_UDP_EX
        ? VIRTIO_NET_HASH_REPORT_UDPv6_EX
        : VIRTIO_NET_HASH_REPORT_UDPv6;
    }
    if (types & (VIRTIO_NET_RSS_HASH_TYPE_IP_EX | VIRTIO_NET_RSS_HASH_TYPE_IPv6)) {
      return types & VIRTIO_NET_RSS_HASH_TYPE_IP_EX
        ? VIRTIO_NET_HASH_REPORT_IPv6_EX
        : VIRTIO_NET_HASH_REPORT_IPv6;
    }
    return VIRTIO_NET_HASH_REPORT_NONE;
  }
  // §5.1.6.4.3.4: with extension headers, the _EX types first …
  if (hasExt) {
    if (tcp && (types & VIRTIO_NET_RSS_HASH_TYPE_TCP_EX)) return VIRTIO_NET_HASH_REPORT_TCPv6_EX;
    if (udp && (types & VIRTIO_NET_RSS_HASH_TYPE_UDP_EX)) return VIRTIO_NET_HASH_REPORT_UDPv6_EX;
    if (types & VIRTIO_NET_RSS_HASH_TYPE_IP_EX) return VIRTIO_NET_HASH_REPORT_IPv6_EX;
  }
  // … else (and without extension headers, §5.1.6.4.3.3) the plain IPv6 types.
  if (tcp && (types & VIRTIO_NET_RSS_HASH_TYPE_TCPv6)) return VIRTIO_NET_HASH_REPORT_TCPv6;
  if (udp && (types & VIRTIO_NET_RSS_HASH_TYPE_UDPv6)) return VIRTIO_NET_HASH_REPORT_UDPv6;
  if (types & VIRTIO_NET_RSS_HASH_TYPE_IPv6) return VIRTIO_NET_HASH_REPORT_IPv6;
  return VIRTIO_NET_HASH_REPORT_NONE;
}

/**
 * Builds the RSS hash input of the Ethernet frame `frame[offset, offset + len)` for the
 * enabled `hashTypes` (§5.1.6.4.3.2–4): source address, destination address, then source
 * port and destination port when the type hashes ports, all in network byte order as
 * they appear in the packet. Writes it to `out` (which must hold 36 bytes) and returns the
 * hash_report type; the input is `hashInputLength(report)` bytes long. Returns
 * VIRTIO_NET_HASH_REPORT_NONE (and writes nothing) when no enabled type applies: the
 * device then calculates no hash and the packet is unclassified. Allocates nothing.
 *
 * @param frame buffer holding the frame (Ethernet header first, no virtio-net header)
 * @param offset where the frame starts in `frame`
 * @param len frame length in bytes
 * @param hashTypes enabled VIRTIO_NET_RSS_HASH_TYPE_* bits
 * @param out receives the hash input; at least RSS_HASH_INPUT_MAX_LENGTH (36) bytes
 * @param flavor "qemu" (default) or "spec": how IPv6 hash types are chosen
 * @returns the VIRTIO_NET_HASH_REPORT_* type
 *
 * @example
 * ```ts
 * import { hashInputLength, rssHashInput, VIRTIO_NET_HASH_REPORT_IPv4, VIRTIO_NET_RSS_HASH_TYPE_IPv4 } from "./hash_types.ts";
 * const frame = new Uint8Array(60);
 * frame.set([0x08, 0x00, 0x45], 12); // IPv4, IHL 5
 * frame[23] = 17; // UDP
 * frame.set([10, 0, 0, 1, 10, 0, 0, 2], 26); // source, destination
 * const out = new Uint8Array(36);
 * const report = rssHashInput(frame, 0, 60, VIRTIO_NET_RSS_HASH_TYPE_IPv4, out);
 * report === VIRTIO_NET_HASH_REPORT_IPv4; // true: UDPv4 is not enabled
 * out.subarray(0, hashInputLength(report)); // 10 0 0 1 10 0 0 2
 * ```
 */
export function rssHashInput(
  frame: Uint8Array,
  offset: number,
  len: number,
  hashTypes: number,
  out: Uint8Array,
  flavor: RssFlavor = "qemu",
): number {
  if (
    !Number.isInteger(offset) || !Number.isInteger(len) || offset < 0 || len < 0 ||
    offset + len > frame.length
  ) {
    throw new RangeError(
      `frame range offset ${offset}, length ${len} does not lie within the ` +
        `${frame.length}-byte buffer.`,
    );
  }
  if (out.length < RSS_HASH_INPUT_MAX_LENGTH) {
    throw new RangeError(
      `the hash input buffer has ${out.length} bytes: give it ${RSS_HASH_INPUT_MAX_LENGTH}.`,
    );
  }
  const end = offset + len;
  // QEMU reads 18 bytes to size the L2 header; any shorter frame has no IP header in it.
  if (len < 18) return VIRTIO_NET_HASH_REPORT_NONE;
  const outer = be16(frame, offset + 12);
  let l3 = offset + 14;
  if (outer === ETH_P_8021Q) l3 = offset + 18;
  else if (outer === ETH_P_8021AD) {
    l3 = be16(frame, offset + 16) === ETH_P_8021Q ? offset + 22 : offset + 18;
  }
  if (l3 > end) return VIRTIO_NET_HASH_REPORT_NONE;
  const proto = be16(frame, l3 - 2);

  if (proto === ETH_P_IP) {
    if (end - l3 < IPV4_HEADER_SIZE) return VIRTIO_NET_HASH_REPORT_NONE;
    const verIhl = frame[l3];
    const l4proto = verIhl >> 4 === 4 ? frame[l3 + 9] : -1;
    const fragment = (be16(frame, l3 + 6) & 0x3fff) !== 0; // IP_MF | IP_OFFMASK
    const l4 = l3 + ((verIhl & 0xf) << 2);
    const tcp = !fragment && l4proto === IPPROTO_TCP && end - l4 >= TCP_HEADER_SIZE;
    const udp = !fragment && l4proto === IPPROTO_UDP && end - l4 >= UDP_HEADER_SIZE;
    let report: number;
    if (tcp && (hashTypes & VIRTIO_NET_RSS_HASH_TYPE_TCPv4)) report = VIRTIO_NET_HASH_REPORT_TCPv4;
    else if (udp && (hashTypes & VIRTIO_NET_RSS_HASH_TYPE_UDPv4)) {
      report = VIRTIO_NET_HASH_REPORT_UDPv4;
    } else if (hashTypes & VIRTIO_NET_RSS_HASH_TYPE_IPv4) report = VIRTIO_NET_HASH_REPORT_IPv4;
    else return VIRTIO_NET_HASH_REPORT_NONE;
    put(frame, l3 + 12, out, 0, 8); // ip_src, ip_dst
    if (report !== VIRTIO_NET_HASH_REPORT_IPv4) put(frame, l4, out, 8, 4); // sport, dport
    return report;
  }

  if (proto === ETH_P_IPV6) {
    if (end - l3 < IPV6_HEADER_SIZE) return VIRTIO_NET_HASH_REPORT_NONE;
    const whole = walkIpv6(frame, end, l3);
    const l4ok = whole && !v6Fragment;
    const tcp = l4ok && v6L4Proto === IPPROTO_TCP && end - v6L4 >= TCP_HEADER_SIZE;
    const udp = l4ok && v6L4Proto === IPPROTO_UDP && end - v6L4 >= UDP_HEADER_SIZE;
    const report = ipv6Report(hashTypes, tcp, udp, v6HasExt, flavor);
    if (report === VIRTIO_NET_HASH_REPORT_NONE) return report;
    const ex = report >= VIRTIO_NET_HASH_REPORT_IPv6_EX;
    put(frame, ex && v6ExSrc >= 0 ? v6ExSrc : l3 + 8, out, 0, 16);
    put(frame, ex && v6ExDst >= 0 ? v6ExDst : l3 + 24, out, 16, 16);
    if (report !== VIRTIO_NET_HASH_REPORT_IPv6 && report !== VIRTIO_NET_HASH_REPORT_IPv6_EX) {
      put(frame, v6L4, out, 32, 4);
    }
    return report;
  }
  return VIRTIO_NET_HASH_REPORT_NONE;
}

/**
 * What `predictRss()` needs: the fields of struct virtio_net_rss_config (an RssConfig from
 * rss_config.ts fits), with the key optionally as a prebuilt ToeplitzHasher.
 */
export interface RssSteeringParams {
  /** hash_key_data, or a ToeplitzHasher built from it (faster for many packets). */
  key: Uint8Array | ToeplitzHasher;
  /** Enabled VIRTIO_NET_RSS_HASH_TYPE_* bits. */
  hashTypes: number;
  /** indirection_table: receive queue indices; its length is a power of two. */
  indirectionTable: ArrayLike<number>;
  /** unclassified_queue: where packets without a hash go. */
  unclassifiedQueue: number;
  /**
   * max_tx_vq. When given, the queue is taken modulo it, as QEMU 7.2 does: it sets
   * curr_queue_pairs to max_tx_vq and delivers to queue `index % curr_queue_pairs`.
   */
  maxTxVq?: number;
  /** How IPv6 hash types are chosen (default "qemu"). */
  flavor?: RssFlavor;
}

/** Where an RSS device puts a packet, and what it reports in the header. */
export interface RssPrediction {
  /** 0-based receive queue (0 is receiveq1). */
  queue: number;
  /** hash_value (0 when unclassified). */
  hash: number;
  /** hash_report: VIRTIO_NET_HASH_REPORT_*. */
  report: number;
}

const scratch = new Uint8Array(RSS_HASH_INPUT_MAX_LENGTH);

/**
 * The receive queue, hash and hash report an RSS device gives the frame (§5.1.6.5.7.3):
 * the Toeplitz hash of the hash input, masked with indirection_table_mask (table length
 * - 1) to index the indirection table; unclassified packets go to unclassified_queue.
 * This is QEMU 7.2's software RSS (virtio_net_process_rss), used whenever the driver
 * negotiated VIRTIO_NET_F_HASH_REPORT or QEMU could not attach its eBPF steering program.
 * Pass `out` to avoid allocating a result.
 *
 * @example
 * ```ts
 * import { predictRss, VIRTIO_NET_RSS_HASH_TYPES_ALL } from "./hash_types.ts";
 * import { microsoftRssKey } from "./toeplitz.ts";
 * const frame = new Uint8Array(60); // not IP: unclassified
 * const p = predictRss(frame, 0, 60, {
 *   key: microsoftRssKey(),
 *   hashTypes: VIRTIO_NET_RSS_HASH_TYPES_ALL,
 *   indirectionTable: [0, 1, 2, 3],
 *   unclassifiedQueue: 2,
 * });
 * p.queue; // 2
 * p.report; // 0 (VIRTIO_NET_HASH_REPORT_NONE)
 * ```
 */
export function predictRss(
  frame: Uint8Array,
  offset: number,
  len: number,
  params: RssSteeringParams,
  out: RssPrediction = { queue: 0, hash: 0, report: 0 },
): RssPrediction {
  const table = params.indirectionTable;
  const n = table.length;
  if (n === 0 || (n & (n - 1)) !== 0) {
    throw new RangeError(
      `the indirection table has ${n} entries: the count must be a power of two.`,
    );
  }
  const report = rssHashInput(frame, offset, len, params.hashTypes, scratch, params.flavor);
  let queue: number;
  let hash = 0;
  if (report === VIRTIO_NET_HASH_REPORT_NONE) {
    queue = params.unclassifiedQueue;
  } else {
    const inputLen = hashInputLength(report);
    const key = params.key;
    hash = key instanceof ToeplitzHasher
      ? key.hash(scratch, 0, inputLen)
      : toeplitzHash(key, scratch, inputLen);
    queue = table[hash & (n - 1)];
  }
  if (params.maxTxVq) queue %= params.maxTxVq;
  out.queue = queue;
  out.hash = hash;
  out.report = report;
  return out;
}
