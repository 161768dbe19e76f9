/**
 * The frames the traffic generator sends (generator.ts), as DPDK testpmd's txonly and
 * flowgen modes do: Ethernet, IPv4 (header checksum valid), UDP (checksum 0: none, which
 * IPv4 allows), then a payload the receiving side recognises and times:
 *
 * | bytes | field                                                                    |
 * | ----- | ------------------------------------------------------------------------ |
 * | 0–13  | destination 02:00:00:00:00:<port> (testpmd's default peer), source the port's MAC, 0x0800 |
 * | 14–33 | IPv4: DF, TTL 64, UDP, 198.18.0.1 + flow → 198.18.0.2 (RFC 2544's range)  |
 * | 34–41 | UDP: source port 9 for flow 0, 1024 + (flow − 1) mod 64,512 for the others; destination 9 |
 * | 42–43 | the flow index (big-endian)                                              |
 * | 44–47 | {@linkcode GEN_MAGIC} with the stream tag (queue << 1 \| port) in its low byte |
 * | 48–55 | sequence number of the stream's flow (u64, little-endian)                |
 * | 56–63 | transmit time (CLOCK_MONOTONIC, ns, u64 little-endian)                   |
 * | 64–   | zeros up to the frame size                                               |
 *
 * A frame starts 4-byte aligned in its buffer (buffers and virtio-net headers are
 * multiples of 4 bytes), so bytes 0–63 are 16 words: the first 11 come from a template
 * per port and flow built here once, the last 5 vary per frame.
 *
 * @module
 */

/** The smallest frame: headers and the generator's fields (testpmd's --txpkts minimum). */
export const GEN_MIN_FRAME = 64;
/** Words of a frame's template (bytes 0–43: headers and flow index). */
export const TEMPLATE_WORDS = 11;
/** The magic's value in the word at byte 44 (as a little-endian u32), low byte the tag. */
export const GEN_MAGIC = 0x56444700;
/** Mask of the magic in that word. */
export const GEN_MAGIC_MASK = 0xffffff00 | 0;
/** Word offsets (from the frame's first word) of the fields that vary. */
export const W_MAGIC = 11, W_SEQ_LO = 12, W_SEQ_HI = 13, W_TS_LO = 14, W_TS_HI = 15;
/** The most flows: the flow index is 16 bits. */
export const GEN_MAX_FLOWS = 65536;

/** 198.18.0.1, the first source address (RFC 2544's benchmark range 198.18.0.0/15). */
const SRC_IP = 0xc6120001;
/** 198.18.0.2, the destination. */
const DST_IP = 0xc6120002;

/**
 * The RFC 791 header checksum of the 20-byte IPv4 header at `b[at…]` (its checksum field
 * taken as 0).
 *
 * @example
 * ```ts
 * import { ipv4Checksum } from "./gen_frame.ts";
 * const h = Uint8Array.from([0x45, 0, 0, 0x32, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
 * ipv4Checksum(h, 0).toString(16); // the value for bytes 10–11
 * ```
 */
export function ipv4Checksum(b: Uint8Array, at: number): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) {
    if (i !== 10) sum += (b[at + i] << 8) | b[at + i + 1];
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * The first 44 bytes of flow `flow`'s frames of `frameSize` bytes out of a port with MAC
 * `mac` whose index is `port`.
 *
 * @example
 * ```ts
 * import { templateBytes } from "./gen_frame.ts";
 * const t = templateBytes(0, new Uint8Array([2, 0, 0, 0, 0, 9]), 64, 3);
 * t[29]; // 4: source 198.18.0.4 (flow 3)
 * ```
 */
export function templateBytes(
  port: number,
  mac: Uint8Array,
  frameSize: number,
  flow: number,
): Uint8Array {
  const b = new Uint8Array(44);
  const v = new DataView(b.buffer);
  b.set([0x02, 0, 0, 0, 0, port & 0xff], 0);
  b.set(mac.subarray(0, 6), 6);
  v.setUint16(12, 0x0800);
  b[14] = 0x45; // version 4, 5 words
  v.setUint16(16, frameSize - 14); // total length
  v.setUint16(20, 0x4000); // DF, so identification 0 is fine (RFC 6864)
  b[22] = 64; // TTL
  b[23] = 17; // UDP
  v.setUint32(26, (SRC_IP + flow) >>> 0);
  v.setUint32(30, DST_IP);
  v.setUint16(24, ipv4Checksum(b, 14));
  v.setUint16(34, flow === 0 ? 9 : 1024 + (flow - 1) % 64512); // flowgen varies it
  v.setUint16(36, 9);
  v.setUint16(38, frameSize - 34);
  v.setUint16(40, 0); // no UDP checksum
  v.setUint16(42, flow);
  return b;
}

/**
 * The templates of both ports, `flows` each: `TEMPLATE_WORDS` words (as this machine
 * stores them: little-endian) per port and flow, flow f of port p at
 * `(p * flows + f) * TEMPLATE_WORDS`.
 *
 * @example
 * ```ts
 * import { genTemplates, TEMPLATE_WORDS } from "./gen_frame.ts";
 * const mac = new Uint8Array(6);
 * genTemplates([mac, mac], 64, 4).length; // 2 * 4 * TEMPLATE_WORDS
 * ```
 */
export function genTemplates(
  macs: readonly Uint8Array[],
  frameSize: number,
  flows: number,
): Uint32Array {
  const out = new Uint32Array(2 * flows * TEMPLATE_WORDS);
  for (let p = 0; p < 2; p++) {
    for (let f = 0; f < flows; f++) {
      const t = templateBytes(p, macs[p], frameSize, f);
      out.set(new Uint32Array(t.buffer), (p * flows + f) * TEMPLATE_WORDS);
    }
  }
  return out;
}

/**
 * The magic word of stream (`queue`, `port`): the tag is queue << 1 | port, 8 bits.
 *
 * @example
 * ```ts
 * import { GEN_MAGIC, magicWord } from "./gen_frame.ts";
 * magicWord(1, 1) === (GEN_MAGIC | 3); // true
 * ```
 */
export function magicWord(queue: number, port: number): number {
  return (GEN_MAGIC | (((queue & 0x7f) << 1) | (port & 1))) >>> 0;
}

/** What {@linkcode parseGenFrame} reads of a generated frame. */
export interface GenFields {
  /** The sending worker's queue pair (mod 128). */
  queue: number;
  /** The port it left through. */
  port: number;
  /** Its flow. */
  flow: number;
  /** Its sequence number in that flow. */
  seq: number;
  /** When it left (ns, CLOCK_MONOTONIC). */
  txNs: number;
}

/**
 * The generator's fields of the frame `f` (bytes from its Ethernet header), or null when
 * it carries no magic (for tests and tools, not the hot path).
 *
 * @example
 * ```ts
 * import { parseGenFrame } from "./gen_frame.ts";
 * parseGenFrame(new Uint8Array(64)); // null
 * ```
 */
export function parseGenFrame(f: Uint8Array): GenFields | null {
  if (f.length < GEN_MIN_FRAME) return null;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const m = v.getUint32(44, true);
  if ((m & GEN_MAGIC_MASK) !== GEN_MAGIC) return null;
  return {
    queue: (m & 0xff) >>> 1,
    port: m & 1,
    flow: v.getUint16(42),
    seq: v.getUint32(48, true) + v.getUint32(52, true) * 2 ** 32,
    txNs: v.getUint32(56, true) + v.getUint32(60, true) * 2 ** 32,
  };
}
