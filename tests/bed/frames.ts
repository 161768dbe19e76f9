/**
 * Deterministic test frames: the same seed gives the same frames, byte for byte, so a sender
 * and a receiver (or a test and its expectation) agree without exchanging them.
 *
 * Two kinds:
 * - raw test frames with EtherType {@linkcode TEST_ETHERTYPE} (0x88b5, IEEE "local
 *   experimental"), 60..1514 bytes, carrying a magic, the seed, a sequence number and a
 *   pattern derived from both, so a receiver can tell test frames from noise and check them;
 * - UDP/IPv4 frames spread over a number of flows (distinct addresses and ports per flow,
 *   valid IPv4 header and UDP checksums), for multiqueue/RSS tests.
 *
 * Sizes (both kinds): sequence numbers ≡ 0 mod 16 get the minimum size, ≡ 1 the maximum, the
 * others a pseudo-random size in between.
 *
 * @module
 */

/** EtherType of raw test frames (IEEE 802 local experimental EtherType 1). */
export const TEST_ETHERTYPE = 0x88b5;
/** Magic at the start of a raw test frame's payload ("vdT1"). */
export const TEST_MAGIC = 0x76645431;
/** Magic at the start of a UDP test frame's payload ("vdU1"). */
export const UDP_TEST_MAGIC = 0x76645531;
/** The Ethernet broadcast address. */
export const BROADCAST_MAC = "ff:ff:ff:ff:ff:ff";
/** Default source MAC of generated frames (locally administered). */
export const DEFAULT_SRC_MAC = "02:00:00:00:00:01";
/** Smallest Ethernet frame without FCS. */
export const MIN_FRAME = 60;
/** Largest standard Ethernet frame without FCS. */
export const MAX_FRAME = 1514;

const ETH_HDR = 14;
const RAW_HDR = ETH_HDR + 14; // magic, seed, seq, size
const IP_HDR = 20;
const UDP_HDR = 8;
const UDP_PAYLOAD_HDR = 16; // magic, seed, seq, flow
const UDP_MIN = ETH_HDR + IP_HDR + UDP_HDR + UDP_PAYLOAD_HDR;

/** Parses "aa:bb:cc:dd:ee:ff" into 6 bytes. */
export function parseMac(mac: string): Uint8Array<ArrayBuffer> {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new Error(`bad MAC address "${mac}"`);
  }
  return new Uint8Array(parts.map((p) => parseInt(p, 16)));
}

/** Formats 6 bytes as "aa:bb:cc:dd:ee:ff". */
export function formatMac(b: Uint8Array): string {
  return Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, "0")).join(":");
}

/** mulberry32: a small, fast, deterministic 32-bit PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function mix(seed: number, seq: number, salt: number): number {
  return (Math.imul(seed ^ salt, 0x9e3779b1) ^ Math.imul(seq + 1, 0x85ebca6b)) >>> 0;
}

/** The size of frame `seq` of a stream with this seed, in [min, max]. */
export function frameSize(seed: number, seq: number, min = MIN_FRAME, max = MAX_FRAME): number {
  if (seq % 16 === 0) return min;
  if (seq % 16 === 1) return max;
  return min + (prng(mix(seed, seq, 0x5a5a))() % (max - min + 1));
}

/**
 * Fills `b[from..]` with the pattern of frame `seq` of stream `seed` (what the parsers check).
 *
 * @example
 * ```ts
 * import { fillPattern } from "./frames.ts";
 * fillPattern(new Uint8Array(64), 16, 1, 0);
 * ```
 */
export function fillPattern(b: Uint8Array, from: number, seed: number, seq: number): void {
  const r = prng(mix(seed, seq, 0x1234));
  for (let i = from; i < b.length; i += 4) {
    const x = r();
    b[i] = x;
    if (i + 1 < b.length) b[i + 1] = x >>> 8;
    if (i + 2 < b.length) b[i + 2] = x >>> 16;
    if (i + 3 < b.length) b[i + 3] = x >>> 24;
  }
}

function checkSizes(min: number, max: number, floor: number): void {
  if (!(floor <= min && min <= max && max <= 65535)) {
    throw new Error(`frame sizes must satisfy ${floor} <= min <= max (got ${min}..${max})`);
  }
}

/** Options of {@linkcode testFrames}. */
export interface TestFrameOptions {
  /** Seed of the stream (default 1). */
  seed?: number;
  /** Number of frames. */
  count: number;
  /** Sequence number of the first frame (default 0). */
  startSeq?: number;
  /** Destination MAC (default broadcast). */
  dst?: string;
  /** Source MAC (default {@linkcode DEFAULT_SRC_MAC}). */
  src?: string;
  /** Smallest frame size (default 60; at least 28). */
  minSize?: number;
  /** Largest frame size (default 1514). */
  maxSize?: number;
}

/** One raw test frame: sequence `seq` of the stream `seed`, `size` bytes long. */
export function testFrame(
  seed: number,
  seq: number,
  size: number,
  dst = BROADCAST_MAC,
  src = DEFAULT_SRC_MAC,
): Uint8Array<ArrayBuffer> {
  checkSizes(size, size, RAW_HDR);
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  b.set(parseMac(dst), 0);
  b.set(parseMac(src), 6);
  v.setUint16(12, TEST_ETHERTYPE);
  v.setUint32(14, TEST_MAGIC);
  v.setUint32(18, seed >>> 0);
  v.setUint32(22, seq >>> 0);
  v.setUint16(26, size);
  fillPattern(b, RAW_HDR, seed, seq);
  return b;
}

/**
 * A stream of raw test frames (EtherType 0x88b5).
 *
 * @example
 * ```ts
 * import { testFrames } from "./frames.ts";
 * const frames = testFrames({ seed: 7, count: 100 });
 * frames[0].length; // 60
 * frames[1].length; // 1514
 * ```
 */
export function testFrames(opts: TestFrameOptions): Uint8Array<ArrayBuffer>[] {
  const seed = opts.seed ?? 1, start = opts.startSeq ?? 0;
  const min = opts.minSize ?? MIN_FRAME, max = opts.maxSize ?? MAX_FRAME;
  checkSizes(min, max, RAW_HDR);
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (let i = 0; i < opts.count; i++) {
    const seq = start + i;
    out.push(testFrame(seed, seq, frameSize(seed, seq, min, max), opts.dst, opts.src));
  }
  return out;
}

/** What a receiver learns from a valid raw test frame. */
export interface TestFrameInfo {
  /** Seed of the stream the frame belongs to. */
  seed: number;
  /** Its sequence number. */
  seq: number;
  /** Its length. */
  size: number;
}

/**
 * Recognises a raw test frame: EtherType, magic, length and the whole pattern must match
 * (so a corrupted frame is rejected). Returns null for anything else.
 */
export function parseTestFrame(frame: Uint8Array): TestFrameInfo | null {
  if (frame.length < RAW_HDR) return null;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (v.getUint16(12) !== TEST_ETHERTYPE || v.getUint32(14) !== TEST_MAGIC) return null;
  const seed = v.getUint32(18), seq = v.getUint32(22), size = v.getUint16(26);
  if (size !== frame.length) return null;
  const expect = new Uint8Array(size);
  fillPattern(expect, RAW_HDR, seed, seq);
  for (let i = RAW_HDR; i < size; i++) if (frame[i] !== expect[i]) return null;
  return { seed, seq, size };
}

/** Addresses and ports of one UDP flow. */
export interface UdpFlow {
  /** Source IPv4 address, e.g. "10.1.0.5". */
  srcIp: string;
  /** Destination IPv4 address, e.g. "10.2.0.5". */
  dstIp: string;
  /** UDP source port. */
  srcPort: number;
  /** UDP destination port. */
  dstPort: number;
}

/**
 * The addresses of flow `flow` (0..65535): 10.1.x.y → 10.2.x.y with x.y = flow, source port
 * 1024 + flow, destination port 50000 + flow % 10000. Every flow differs in all four.
 */
export function udpFlow(flow: number): UdpFlow {
  if (!(flow >= 0 && flow < 65536)) throw new Error(`flow must be in 0..65535 (got ${flow})`);
  const x = flow >> 8, y = flow & 255;
  return {
    srcIp: `10.1.${x}.${y}`,
    dstIp: `10.2.${x}.${y}`,
    srcPort: 1024 + flow,
    dstPort: 50000 + (flow % 10000),
  };
}

function ipBytes(ip: string): number[] {
  return ip.split(".").map(Number);
}

/** Parsed MACs and flows, reused by {@linkcode udpFrame}: a test makes 10^5–10^6 frames. */
const macCache = new Map<string, Uint8Array<ArrayBuffer>>();
const flowCache = new Map<number, { src: number[]; dst: number[]; f: UdpFlow }>();

function cachedMac(mac: string): Uint8Array<ArrayBuffer> {
  let b = macCache.get(mac);
  if (b === undefined) macCache.set(mac, b = parseMac(mac));
  return b;
}

function cachedFlow(flow: number): { src: number[]; dst: number[]; f: UdpFlow } {
  let e = flowCache.get(flow);
  if (e === undefined) {
    const f = udpFlow(flow);
    flowCache.set(flow, e = { src: ipBytes(f.srcIp), dst: ipBytes(f.dstIp), f });
  }
  return e;
}

/** The Internet checksum (RFC 1071) of `b`, plus an initial partial sum. */
export function internetChecksum(b: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (b.length & 1) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Options of {@linkcode udpFrames}. */
export interface UdpFrameOptions extends TestFrameOptions {
  /** Number of flows; frame i belongs to flow i % flows (default 1). */
  flows?: number;
}

/** One UDP test frame of flow `flow`. */
export function udpFrame(
  seed: number,
  seq: number,
  flow: number,
  size: number,
  dst = BROADCAST_MAC,
  src = DEFAULT_SRC_MAC,
): Uint8Array<ArrayBuffer> {
  checkSizes(size, size, UDP_MIN);
  const { src: srcIp, dst: dstIp, f } = cachedFlow(flow);
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  b.set(cachedMac(dst), 0);
  b.set(cachedMac(src), 6);
  v.setUint16(12, 0x0800);
  const ip = ETH_HDR, udp = ip + IP_HDR, pay = udp + UDP_HDR;
  const ipLen = size - ETH_HDR, udpLen = ipLen - IP_HDR;
  b[ip] = 0x45;
  v.setUint16(ip + 2, ipLen);
  v.setUint16(ip + 4, seq & 0xffff); // identification
  v.setUint16(ip + 6, 0x4000); // don't fragment
  b[ip + 8] = 64;
  b[ip + 9] = 17;
  b.set(srcIp, ip + 12);
  b.set(dstIp, ip + 16);
  v.setUint16(ip + 10, internetChecksum(b.subarray(ip, ip + IP_HDR)));
  v.setUint16(udp, f.srcPort);
  v.setUint16(udp + 2, f.dstPort);
  v.setUint16(udp + 4, udpLen);
  v.setUint32(pay, UDP_TEST_MAGIC);
  v.setUint32(pay + 4, seed >>> 0);
  v.setUint32(pay + 8, seq >>> 0);
  v.setUint32(pay + 12, flow);
  fillPattern(b, pay + UDP_PAYLOAD_HDR, seed, seq);
  // UDP checksum over the pseudo header (src, dst, proto, length) and the datagram.
  const pseudo = new Uint8Array(12);
  pseudo.set(b.subarray(ip + 12, ip + 20), 0);
  pseudo[9] = 17;
  new DataView(pseudo.buffer).setUint16(10, udpLen);
  const partial = 0xffff & ~internetChecksum(pseudo);
  const c = internetChecksum(b.subarray(udp, udp + udpLen), partial);
  v.setUint16(udp + 6, c === 0 ? 0xffff : c);
  return b;
}

/**
 * A stream of UDP/IPv4 test frames over `flows` flows.
 *
 * @example
 * ```ts
 * import { udpFrames } from "./frames.ts";
 * const frames = udpFrames({ seed: 3, count: 64, flows: 8 });
 * frames.length; // 64
 * ```
 */
export function udpFrames(opts: UdpFrameOptions): Uint8Array<ArrayBuffer>[] {
  const seed = opts.seed ?? 1, start = opts.startSeq ?? 0, flows = opts.flows ?? 1;
  const min = opts.minSize ?? MIN_FRAME, max = opts.maxSize ?? MAX_FRAME;
  checkSizes(min, max, UDP_MIN);
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (let i = 0; i < opts.count; i++) {
    const seq = start + i;
    out.push(udpFrame(seed, seq, i % flows, frameSize(seed, seq, min, max), opts.dst, opts.src));
  }
  return out;
}

/** What a receiver learns from a valid UDP test frame. */
export interface UdpTestFrameInfo extends TestFrameInfo {
  /** Flow number. */
  flow: number;
}

/**
 * Recognises a UDP test frame: IPv4/UDP, magic, lengths, IPv4 header checksum and pattern
 * must all be right. Returns null for anything else.
 */
export function parseUdpTestFrame(frame: Uint8Array): UdpTestFrameInfo | null {
  if (frame.length < UDP_MIN) return null;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const ip = ETH_HDR, pay = ip + IP_HDR + UDP_HDR;
  if (v.getUint16(12) !== 0x0800 || frame[ip] !== 0x45 || frame[ip + 9] !== 17) return null;
  if (v.getUint16(ip + 2) !== frame.length - ETH_HDR) return null;
  if (internetChecksum(frame.subarray(ip, ip + IP_HDR)) !== 0) return null;
  if (v.getUint32(pay) !== UDP_TEST_MAGIC) return null;
  const seed = v.getUint32(pay + 4), seq = v.getUint32(pay + 8), flow = v.getUint32(pay + 12);
  const expect = new Uint8Array(frame.length);
  fillPattern(expect, pay + UDP_PAYLOAD_HDR, seed, seq);
  for (let i = pay + UDP_PAYLOAD_HDR; i < frame.length; i++) {
    if (frame[i] !== expect[i]) return null;
  }
  return { seed, seq, size: frame.length, flow };
}

/**
 * The reply to a UDP/IPv4 frame of 14 + 20 bytes of headers: MAC addresses, IP addresses
 * and ports swapped. Both checksums stay valid (their sums do not depend on the order).
 *
 * @example
 * ```ts
 * import { udpFrame, udpReply } from "./frames.ts";
 * const r = udpReply(udpFrame(1, 0, 5, 128));
 * r.length; // 128
 * ```
 */
export function udpReply(frame: Uint8Array): Uint8Array {
  const r = frame.slice();
  const swap = (a: number, b: number, n: number) => {
    for (let i = 0; i < n; i++) [r[a + i], r[b + i]] = [r[b + i], r[a + i]];
  };
  swap(0, 6, 6);
  swap(ETH_HDR + 12, ETH_HDR + 16, 4);
  swap(ETH_HDR + IP_HDR, ETH_HDR + IP_HDR + 2, 2);
  return r;
}
