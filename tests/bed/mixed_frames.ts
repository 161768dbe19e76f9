/**
 * A deterministic mix of the traffic a NIC meets: untagged UDP and TCP over IPv4, UDP over
 * IPv6, 802.1Q-tagged UDP over IPv4 and IPv6, and ARP, 60..1514 bytes, over many flows.
 * Every frame carries, after its headers (ARP: in the Ethernet padding), a magic, the seed,
 * its sequence number and its flow, then the pattern of frames.ts, so a receiver can tell
 * which flow it belongs to and check per-flow order (sequence numbers grow within a flow).
 *
 * Flow f has kind `MIXED_KINDS[f % 6]` and the addresses of `udpFlow(f)` (IPv6: the same
 * numbers under 2001:db8:1:: and 2001:db8:2::), tagged kinds VLAN ID 1 + f % 4094. All
 * checksums (IPv4 header, UDP, TCP) are valid; sizes include the tag and are raised to the
 * kind's headers when the drawn size is smaller.
 *
 * @module
 */

import {
  DEFAULT_SRC_MAC,
  fillPattern,
  frameSize,
  internetChecksum,
  MAX_FRAME,
  MIN_FRAME,
  parseMac,
  udpFlow,
} from "./frames.ts";

/** Magic at the start of a mixed frame's payload ("vdX1"). */
export const MIXED_MAGIC = 0x76645831;

/** The kinds of frame, in the order flows take them (flow f: kind f % 6). */
export const MIXED_KINDS = ["udp4", "tcp4", "udp6", "vlan-udp4", "vlan-udp6", "arp"] as const;
/** One kind of mixed frame. */
export type MixedKind = typeof MIXED_KINDS[number];

const PAYLOAD_HDR = 16; // magic, seed, seq, flow

interface Layout {
  vlan: boolean;
  l3: "ip4" | "ip6" | "arp";
  l4: "udp" | "tcp" | null;
}

function layout(kind: MixedKind): Layout {
  return {
    vlan: kind.startsWith("vlan-"),
    l3: kind === "arp" ? "arp" : kind.endsWith("6") ? "ip6" : "ip4",
    l4: kind === "arp" ? null : kind.startsWith("tcp") ? "tcp" : "udp",
  };
}

/** Offset of the payload header (magic…) in a frame of this layout. */
function payloadOffset(l: Layout): number {
  const l2 = 14 + (l.vlan ? 4 : 0);
  if (l.l3 === "arp") return l2 + 28;
  return l2 + (l.l3 === "ip4" ? 20 : 40) + (l.l4 === "tcp" ? 20 : 8);
}

/** Smallest frame of a kind: its headers and the payload header (at least 60). */
export function mixedMinSize(kind: MixedKind): number {
  return Math.max(MIN_FRAME, payloadOffset(layout(kind)) + PAYLOAD_HDR);
}

function ip4(a: string): number[] {
  return a.split(".").map(Number);
}

/** 2001:db8:N::x.y as 16 bytes (the IPv4 flow address's last two bytes at the end). */
function ip6(net: number, v4: string): number[] {
  const [, , x, y] = ip4(v4);
  return [0x20, 0x01, 0x0d, 0xb8, 0, net, ...new Array(8).fill(0), x, y];
}

/** One frame of the mix: sequence `seq` of stream `seed`, flow `flow`, `size` bytes. */
export function mixedFrame(
  seed: number,
  seq: number,
  flow: number,
  size: number,
  dst: string,
  src = DEFAULT_SRC_MAC,
): Uint8Array<ArrayBuffer> {
  const kind = MIXED_KINDS[flow % MIXED_KINDS.length];
  const l = layout(kind);
  const f = udpFlow(flow);
  size = Math.max(size, mixedMinSize(kind));
  if (size > 65535) throw new Error(`frame size ${size} too large`);
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  b.set(parseMac(dst), 0);
  b.set(parseMac(src), 6);
  let o = 12;
  if (l.vlan) {
    v.setUint16(o, 0x8100);
    v.setUint16(o + 2, 1 + (flow % 4094));
    o += 4;
  }
  const pay = payloadOffset(l);
  if (l.l3 === "arp") {
    v.setUint16(o, 0x0806);
    const a = o + 2;
    v.setUint16(a, 1); // Ethernet
    v.setUint16(a + 2, 0x0800);
    b[a + 4] = 6;
    b[a + 5] = 4;
    v.setUint16(a + 6, 2); // reply: no answer expected from anyone
    b.set(parseMac(src), a + 8);
    b.set(ip4(f.srcIp), a + 14);
    b.set(parseMac(dst), a + 18);
    b.set(ip4(f.dstIp), a + 24);
  } else {
    const ip = o + 2;
    const l4 = ip + (l.l3 === "ip4" ? 20 : 40);
    const l4Len = size - l4;
    const proto = l.l4 === "tcp" ? 6 : 17;
    const pseudo: number[] = [];
    if (l.l3 === "ip4") {
      v.setUint16(o, 0x0800);
      b[ip] = 0x45;
      v.setUint16(ip + 2, size - ip);
      v.setUint16(ip + 4, seq & 0xffff);
      v.setUint16(ip + 6, 0x4000);
      b[ip + 8] = 64;
      b[ip + 9] = proto;
      b.set(ip4(f.srcIp), ip + 12);
      b.set(ip4(f.dstIp), ip + 16);
      v.setUint16(ip + 10, internetChecksum(b.subarray(ip, ip + 20)));
      pseudo.push(...b.subarray(ip + 12, ip + 20), 0, proto, l4Len >> 8, l4Len & 255);
    } else {
      v.setUint16(o, 0x86dd);
      v.setUint32(ip, 0x60000000);
      v.setUint16(ip + 4, l4Len);
      b[ip + 6] = proto;
      b[ip + 7] = 64;
      b.set(ip6(1, f.srcIp), ip + 8);
      b.set(ip6(2, f.dstIp), ip + 24);
      pseudo.push(...b.subarray(ip + 8, ip + 40), 0, 0, l4Len >> 8, l4Len & 255, 0, 0, 0, proto);
    }
    v.setUint16(l4, f.srcPort);
    v.setUint16(l4 + 2, f.dstPort);
    if (l.l4 === "udp") v.setUint16(l4 + 4, l4Len);
    else {
      v.setUint32(l4 + 4, seq >>> 0); // sequence number
      b[l4 + 12] = 5 << 4; // data offset: 5 words
      b[l4 + 13] = 0x18; // PSH, ACK
      v.setUint16(l4 + 14, 65535);
    }
    writePayload(b, pay, seed, seq, flow);
    const partial = 0xffff & ~internetChecksum(new Uint8Array(pseudo));
    const c = internetChecksum(b.subarray(l4), partial);
    v.setUint16(l4 + (l.l4 === "udp" ? 6 : 16), l.l4 === "udp" && c === 0 ? 0xffff : c);
    return b;
  }
  writePayload(b, pay, seed, seq, flow);
  return b;
}

function writePayload(b: Uint8Array, at: number, seed: number, seq: number, flow: number): void {
  const v = new DataView(b.buffer, b.byteOffset);
  v.setUint32(at, MIXED_MAGIC);
  v.setUint32(at + 4, seed >>> 0);
  v.setUint32(at + 8, seq >>> 0);
  v.setUint32(at + 12, flow);
  fillPattern(b, at + PAYLOAD_HDR, seed, seq);
}

/** Options of {@linkcode mixedFrames}. */
export interface MixedFrameOptions {
  /** Seed of the stream (default 1). */
  seed?: number;
  /** Number of frames. */
  count: number;
  /** Number of flows; frame i belongs to flow i % flows (default 600: 100 of each kind). */
  flows?: number;
  /** Destination MAC (the NIC's). */
  dst: string;
  /** Source MAC (default {@linkcode DEFAULT_SRC_MAC}). */
  src?: string;
  /** Sequence number of the first frame (default 0). */
  startSeq?: number;
  /** Smallest frame size (default 60; a kind's headers raise it). */
  minSize?: number;
  /** Largest frame size, tag included (default 1514). */
  maxSize?: number;
}

/**
 * A deterministic stream of mixed frames (see the module comment).
 *
 * @example
 * ```ts
 * import { mixedFrames, parseMixedFrame } from "./mixed_frames.ts";
 * const frames = mixedFrames({ seed: 5, count: 1200, flows: 600, dst: "52:54:00:12:34:50" });
 * parseMixedFrame(frames[3])?.kind; // "vlan-udp4"
 * ```
 */
export function mixedFrames(opts: MixedFrameOptions): Uint8Array<ArrayBuffer>[] {
  const seed = opts.seed ?? 1, start = opts.startSeq ?? 0, flows = opts.flows ?? 600;
  const min = opts.minSize ?? MIN_FRAME, max = opts.maxSize ?? MAX_FRAME;
  if (!(flows >= 1 && flows <= 65536)) throw new Error(`flows must be 1..65536 (got ${flows})`);
  if (!(MIN_FRAME <= min && min <= max && max <= 65535)) {
    throw new Error(`frame sizes must satisfy 60 <= min <= max (got ${min}..${max})`);
  }
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (let i = 0; i < opts.count; i++) {
    const seq = start + i;
    out.push(mixedFrame(seed, seq, i % flows, frameSize(seed, seq, min, max), opts.dst, opts.src));
  }
  return out;
}

/** What a receiver learns from a valid mixed frame. */
export interface MixedFrameInfo {
  /** Seed of the stream. */
  seed: number;
  /** Sequence number (grows within a flow). */
  seq: number;
  /** Flow number: the flow key. */
  flow: number;
  /** Its kind. */
  kind: MixedKind;
  /** VLAN ID, or null when untagged. */
  vlan: number | null;
  /** Its length. */
  size: number;
}

/**
 * Recognises a mixed frame: the layout its flow's kind implies, magic and pattern must
 * match (a frame altered after the headers, or with a tag removed, is rejected). Returns
 * null for anything else.
 *
 * @example
 * ```ts
 * import { mixedFrame, parseMixedFrame } from "./mixed_frames.ts";
 * parseMixedFrame(mixedFrame(1, 7, 4, 200, "52:54:00:12:34:50"))?.vlan; // 5
 * ```
 */
export function parseMixedFrame(frame: Uint8Array): MixedFrameInfo | null {
  if (frame.length < MIN_FRAME) return null;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const vlan = v.getUint16(12) === 0x8100;
  const type = v.getUint16(vlan ? 16 : 12);
  const l3 = type === 0x0800 ? "ip4" : type === 0x86dd ? "ip6" : type === 0x0806 ? "arp" : null;
  if (!l3) return null;
  const ipAt = vlan ? 18 : 14;
  const proto = l3 === "ip4" ? frame[ipAt + 9] : l3 === "ip6" ? frame[ipAt + 6] : 0;
  const l: Layout = { vlan, l3, l4: l3 === "arp" ? null : proto === 6 ? "tcp" : "udp" };
  const at = payloadOffset(l);
  if (frame.length < at + PAYLOAD_HDR || v.getUint32(at) !== MIXED_MAGIC) return null;
  const seed = v.getUint32(at + 4), seq = v.getUint32(at + 8), flow = v.getUint32(at + 12);
  const kind = MIXED_KINDS[flow % MIXED_KINDS.length];
  const want = layout(kind);
  if (want.vlan !== l.vlan || want.l3 !== l.l3 || want.l4 !== l.l4) return null;
  const expect = new Uint8Array(frame.length);
  fillPattern(expect, at + PAYLOAD_HDR, seed, seq);
  for (let i = at + PAYLOAD_HDR; i < frame.length; i++) if (frame[i] !== expect[i]) return null;
  return { seed, seq, flow, kind, vlan: vlan ? v.getUint16(14) & 0xfff : null, size: frame.length };
}
