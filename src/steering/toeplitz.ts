/**
 * The Toeplitz hash that virtio-net RSS uses (virtio 1.2 §5.1.6.4.3, "Hash calculation for
 * incoming packets"; VIRTIO_NET_F_RSS is "RSS with Toeplitz hash calculation", §5.1.3).
 *
 * For each input bit set, counting from the most significant bit of the first byte, the
 * hash is XORed with the 32 key bits that start at that bit position; the result is an
 * unsigned 32-bit number. This is Microsoft's RSS hash, checked against its verification
 * suite in tests/unit/toeplitz_test.ts, and what QEMU computes (net_toeplitz_add in
 * include/net/checksum.h).
 *
 * Key bytes past the end of the key count as zero. A key shorter than input length + 4
 * bytes is therefore well defined here, but QEMU 7.2 would read stale bytes of its 40-byte
 * key buffer instead (virtio_net_handle_rss copies only hash_key_length bytes): give the
 * device a key of at least {@link RSS_KEY_LENGTH} bytes.
 *
 * @module
 */

/** Key length in bytes that covers the longest RSS hash input (36 bytes + 4). */
export const RSS_KEY_LENGTH = 40;

/** Longest RSS hash input: IPv6 source and destination addresses plus two ports. */
const DEFAULT_MAX_INPUT = 36;

const MICROSOFT_KEY = [
  0x6d,
  0x5a,
  0x56,
  0xda,
  0x25,
  0x5b,
  0x0e,
  0xc2,
  0x41,
  0x67,
  0x25,
  0x3d,
  0x43,
  0xa3,
  0x8f,
  0xb0,
  0xd0,
  0xca,
  0x2b,
  0xcb,
  0xae,
  0x7b,
  0x30,
  0xb4,
  0x77,
  0xcb,
  0x2d,
  0xa3,
  0x80,
  0x30,
  0xf2,
  0x0c,
  0x6a,
  0x42,
  0xb7,
  0x3b,
  0xbe,
  0xac,
  0x01,
  0xfa,
];

/**
 * A fresh copy of the 40-byte key of Microsoft's RSS verification suite
 * ("Verifying the RSS Hash Calculation"), 6d5a56da…01fa. It is also DPDK's default key;
 * any 40 random bytes work as well.
 *
 * @example
 * ```ts
 * import { microsoftRssKey } from "./toeplitz.ts";
 * microsoftRssKey().length; // 40
 * ```
 */
export function microsoftRssKey(): Uint8Array {
  return Uint8Array.from(MICROSOFT_KEY);
}

function checkRange(input: Uint8Array, offset: number, len: number): void {
  if (
    !Number.isInteger(offset) || !Number.isInteger(len) || offset < 0 || len < 0 ||
    offset + len > input.length
  ) {
    throw new RangeError(
      `Toeplitz input range offset ${offset}, length ${len} does not lie within the ` +
        `${input.length}-byte buffer.`,
    );
  }
}

/** Key byte `i`, zero past the end of the key. */
function keyByte(key: Uint8Array, i: number): number {
  return i < key.length ? key[i] : 0;
}

/**
 * The Toeplitz hash of `input[offset, offset + len)` under `key`, as an unsigned 32-bit
 * number. Bit by bit, without allocating; for many packets under one key,
 * {@link ToeplitzHasher} is several times faster and gives the same result.
 *
 * @param key the RSS key (hash_key_data); bytes past its end count as zero
 * @param input the hash input, e.g. from rssHashInput() in hash_types.ts
 * @param len bytes to hash (default: from `offset` to the end of `input`)
 * @param offset where the input starts in `input` (default 0)
 * @returns the hash, 0 … 2^32 - 1
 *
 * @example
 * ```ts
 * import { microsoftRssKey, toeplitzHash } from "./toeplitz.ts";
 * // 66.9.149.187:2794 → 161.142.100.80:1766: src addr, dst addr, src port, dst port
 * const input = new Uint8Array([66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6]);
 * toeplitzHash(microsoftRssKey(), input).toString(16); // "51ccc178"
 * toeplitzHash(microsoftRssKey(), input, 8).toString(16); // "323e8fc2" (addresses only)
 * ```
 */
export function toeplitzHash(
  key: Uint8Array,
  input: Uint8Array,
  len?: number,
  offset = 0,
): number {
  const n = len ?? input.length - offset;
  checkRange(input, offset, n);
  // The 32-bit key window that starts at the current input bit.
  let window = (keyByte(key, 0) << 24) | (keyByte(key, 1) << 16) | (keyByte(key, 2) << 8) |
    keyByte(key, 3);
  let result = 0;
  for (let i = 0; i < n; i++) {
    const b = input[offset + i];
    const next = keyByte(key, i + 4);
    for (let bit = 7; bit >= 0; bit--) {
      if ((b >> bit) & 1) result ^= window;
      window = (window << 1) | ((next >> bit) & 1);
    }
  }
  return result >>> 0;
}

/**
 * Toeplitz hashing under one key with a precomputed table: for each input byte position
 * and byte value, the XOR of the key windows of its set bits (maxInputLength × 256 words,
 * 36 KiB for RSS). `hash()` is one table look-up per input byte and allocates nothing.
 * It agrees with {@link toeplitzHash} on every input.
 *
 * @example
 * ```ts
 * import { microsoftRssKey, ToeplitzHasher } from "./toeplitz.ts";
 * const hasher = new ToeplitzHasher(microsoftRssKey());
 * const input = new Uint8Array([66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6]);
 * hasher.hash(input, 0, 12).toString(16); // "51ccc178"
 * ```
 */
export class ToeplitzHasher {
  /** Longest input `hash()` accepts. */
  readonly maxInputLength: number;
  /** Length of the key the table was built from. */
  readonly keyLength: number;
  readonly #table: Uint32Array;

  /**
   * Builds the table for `key` (copied; later changes to `key` do not matter).
   *
   * @param key the RSS key; bytes past its end count as zero
   * @param maxInputLength longest input to hash (default 36, the longest RSS input)
   */
  constructor(key: Uint8Array, maxInputLength = DEFAULT_MAX_INPUT) {
    if (!Number.isInteger(maxInputLength) || maxInputLength < 0 || maxInputLength > 4096) {
      throw new RangeError(`maxInputLength ${maxInputLength} must be an integer 0 … 4096.`);
    }
    this.maxInputLength = maxInputLength;
    this.keyLength = key.length;
    const table = new Uint32Array(maxInputLength * 256);
    const windows = new Uint32Array(8);
    for (let i = 0; i < maxInputLength; i++) {
      // windows[b]: the 32 key bits starting at bit 8i + b (b = 0 is the byte's MSB).
      const k0 = keyByte(key, i), k1 = keyByte(key, i + 1), k2 = keyByte(key, i + 2);
      const k3 = keyByte(key, i + 3), k4 = keyByte(key, i + 4);
      const word = (k0 << 24) | (k1 << 16) | (k2 << 8) | k3;
      for (let b = 0; b < 8; b++) {
        windows[b] = b === 0 ? word : (word << b) | (k4 >>> (8 - b));
      }
      const base = i << 8;
      for (let v = 1; v < 256; v++) {
        const low = v & -v; // lowest set bit: input bit (7 - log2(low)) counted from the MSB
        table[base + v] = table[base + (v ^ low)] ^ windows[7 - (31 - Math.clz32(low))];
      }
    }
    this.#table = table;
  }

  /**
   * The Toeplitz hash of `input[offset, offset + len)`, unsigned 32-bit.
   *
   * @param input the hash input
   * @param offset where it starts (default 0)
   * @param len its length (default: to the end of `input`); at most `maxInputLength`
   */
  hash(input: Uint8Array, offset = 0, len: number = input.length - offset): number {
    checkRange(input, offset, len);
    if (len > this.maxInputLength) {
      throw new RangeError(
        `Toeplitz input of ${len} bytes is longer than this hasher's table ` +
          `(${this.maxInputLength} bytes): construct it with a larger maxInputLength.`,
      );
    }
    const t = this.#table;
    let result = 0;
    for (let i = 0; i < len; i++) result ^= t[(i << 8) | input[offset + i]];
    return result >>> 0;
  }
}
