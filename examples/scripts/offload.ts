/**
 * l2fwd script for offloads (docs/offloads.md): reports what the receiving device said of
 * each frame's checksum, checks in software the IPv4/IPv6 TCP/UDP checksums it said
 * nothing of, and asks the output device for TSO on TCP super-frames (TSO4, TSO6).
 *
 *     deno run --allow-ffi --allow-read=examples/scripts/offload.ts examples/l2fwd.ts \
 *       --script examples/scripts/offload.ts --script-arg tso=1000 PORT0 PORT1
 *
 * Args: `tso=MSS` (a TCP frame longer than 1,514 bytes goes out as a TSO request
 * cut into segments of MSS payload bytes; default: super-frames keep their received
 * gso_size).
 *
 * Counters: "csumValid", "csumPartial", "csumNone" (frames by the device's checksum
 * state); "swGood", "swBad" (of the csumNone TCP/UDP frames in one buffer, those
 * whose checksum is right or wrong); "pseudoGood", "pseudoBad" (of the partial ones,
 * those whose checksum field holds the pseudo-header sum or not); "superFrames"
 * (received as super-frames); "tso" (sent with a TSO request).
 *
 * @example
 * ```ts ignore
 * // Run by every l2fwd worker for each received burst:
 * handleBurst(burst); // counts, and sets burst.gsoType/gsoSize for TSO
 * ```
 *
 * @module
 */

import type { Burst, ScriptInit } from "../../mod.ts";

/**
 * The script's counters (summed over workers in l2fwd's statistics).
 *
 * @example
 * ```ts ignore
 * counters[0]; // "csumValid"
 * ```
 */
export const counters = [
  "csumValid",
  "csumPartial",
  "csumNone",
  "swGood",
  "swBad",
  "pseudoGood",
  "pseudoBad",
  "superFrames",
  "tso",
];

// Values of src/engine/script_api.ts (a script imports nothing at run time).
const CSUM_NONE = 0, CSUM_VALID = 1, CSUM_PARTIAL = 2;
const GSO_NONE = 0, GSO_TCPV4 = 1, GSO_TCPV6 = 4;
let mss = 0;

/**
 * Reads `tso=MSS`.
 *
 * @example
 * ```ts ignore
 * init({ queue: 0, workers: 1, ports: 2, macs: [], args: { tso: "1000" } });
 * ```
 */
export function init(init: ScriptInit): void {
  const t = init.args.tso;
  mss = t === undefined ? 0 : Number(t);
  if (!(Number.isInteger(mss) && mss >= 0 && mss <= 65535)) {
    throw new RangeError(`tso must be an MSS from 1 to 65535, not '${t}'`);
  }
}

/** Ones'-complement sum of `len` bytes of `d` from `at` added to `sum` (RFC 1071). */
function sum16(d: Uint8Array, at: number, len: number, sum: number): number {
  let i = 0;
  for (; i + 1 < len; i += 2) sum += (d[at + i] << 8) | d[at + i + 1];
  if (i < len) sum += d[at + i] << 8;
  return sum;
}

/** Folds a sum to 16 bits. */
function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * Counts each frame's checksum state, checks some in software, requests TSO.
 *
 * @example
 * ```ts ignore
 * handleBurst(burst);
 * ```
 */
export function handleBurst(b: Burst): void {
  const d = b.data, c = b.counters;
  for (let i = 0; i < b.count; i++) {
    const o = b.offsets[i], len = b.lens[i], cs = b.csum[i];
    c[cs === CSUM_VALID ? 0 : cs === CSUM_PARTIAL ? 1 : 2]++;
    if (b.gsoType[i] !== GSO_NONE) c[7]++;
    // IPv4 (its header length) or IPv6 without extension headers; TCP (6) or UDP (17).
    if (
      len < 54 || d[o + 12] !== 0x08 && d[o + 12] !== 0x86 ||
      d[o + 13] !== 0x00 && d[o + 13] !== 0xdd
    ) continue;
    const l3 = o + 14, v6 = d[o + 12] === 0x86 && d[o + 13] === 0xdd;
    if (d[l3] >> 4 !== (v6 ? 6 : 4)) continue;
    const ihl = v6 ? 40 : (d[l3] & 15) * 4, proto = d[l3 + (v6 ? 6 : 9)], l4 = l3 + ihl;
    if (proto !== 6 && proto !== 17) continue;
    const l4Len = len - 14 - ihl, field = l4 + (proto === 6 ? 16 : 6);
    // Pseudo header (RFC 793 §3.1, RFC 768, RFC 8200 §8.1): addresses, protocol, L4 length.
    const pseudo = sum16(d, l3 + (v6 ? 8 : 12), v6 ? 32 : 8, proto + l4Len);
    const at = (d[field] << 8) | d[field + 1];
    if (cs === CSUM_PARTIAL) {
      c[at === fold(pseudo) ? 5 : 6]++;
    } else if (cs === CSUM_NONE && len <= b.room) {
      c[fold(sum16(d, l4, l4Len, pseudo)) === 0xffff ? 3 : 4]++;
    }
    if (mss === 0 || proto !== 6 || len <= 1514) continue;
    // TSO: a partial checksum whose field holds the pseudo-header sum (§5.1.6.2).
    if (cs !== CSUM_PARTIAL) {
      const p = fold(pseudo);
      d[field] = p >> 8;
      d[field + 1] = p & 0xff;
    }
    b.csum[i] = CSUM_PARTIAL;
    b.csumStart[i] = 14 + ihl;
    b.csumOffset[i] = 16;
    b.gsoType[i] = v6 ? GSO_TCPV6 : GSO_TCPV4;
    b.gsoSize[i] = mss;
    b.hdrLen[i] = 14 + ihl + (d[l4 + 12] >> 4) * 4;
    c[8]++;
  }
}
