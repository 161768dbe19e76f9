/**
 * The command data of VIRTIO_NET_CTRL_MQ_RSS_CONFIG (struct virtio_net_rss_config, virtio
 * 1.2 §5.1.6.5.7.1 "Setting RSS parameters") and VIRTIO_NET_CTRL_MQ_HASH_CONFIG (struct
 * virtio_net_hash_config, §5.1.6.5.6.4 "Hash calculation"), checked before they are sent.
 *
 * Layouts (little-endian):
 * ```
 * struct virtio_net_rss_config {      struct virtio_net_hash_config {
 *   le32 hash_types;          // 0      le32 hash_types;        // 0
 *   le16 indirection_table_mask; // 4   le16 reserved[4];       // 4 (zero)
 *   le16 unclassified_queue;  // 6      u8 hash_key_length;     // 12
 *   le16 indirection_table[mask + 1]; // 8  u8 hash_key_data[];  // 13
 *   le16 max_tx_vq;                   };
 *   u8 hash_key_length;
 *   u8 hash_key_data[hash_key_length];
 * };
 * ```
 * The hash config is the RSS config with a one-entry table, as the spec intends; QEMU 7.2
 * parses both with one function (virtio_net_handle_rss). Queue numbers are 0-based
 * receive queues (0 is receiveq1), i.e. queue pairs. Virtio 1.4 re-spells them as struct
 * rss_rq_id { vq_index_1_16: 15; reserved: 1 } — bits 1…16 of the receive virtqueue index
 * 2·n, which is the same number n.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { VIRTIO_NET_RSS_HASH_TYPES_ALL } from "./hash_types.ts";
import { RSS_KEY_LENGTH } from "./toeplitz.ts";

/** Fewest queue pairs VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET accepts (§5.1.6.5.5). */
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN = 1;
/** Most queue pairs VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET accepts (§5.1.6.5.5). */
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX = 0x8000;

/** Bytes of struct virtio_net_rss_config before indirection_table. */
const RSS_HEADER_SIZE = 8;
/** Bytes of struct virtio_net_hash_config before hash_key_data. */
const HASH_CONFIG_HEADER_SIZE = 13;

/** The fields of struct virtio_net_rss_config. */
export interface RssConfig {
  /** hash_types: enabled VIRTIO_NET_RSS_HASH_TYPE_* bits. */
  hashTypes: number;
  /** indirection_table: receive queues; a power-of-two count (mask = count - 1). */
  indirectionTable: ArrayLike<number>;
  /** unclassified_queue: the receive queue for packets that get no hash. */
  unclassifiedQueue: number;
  /** max_tx_vq: transmit queues the device may use (1 … queue pairs). */
  maxTxVq: number;
  /** hash_key_data (hash_key_length is its length). */
  key: Uint8Array;
}

/** The fields of struct virtio_net_hash_config. */
export interface HashConfig {
  /** hash_types: enabled VIRTIO_NET_RSS_HASH_TYPE_* bits. */
  hashTypes: number;
  /** hash_key_data. */
  key: Uint8Array;
}

/** What the device allows for hash calculation (from struct virtio_net_config, §5.1.4). */
export interface HashLimits {
  /** rss_max_key_size. */
  maxKeySize: number;
  /** supported_hash_types (default: all nine types). */
  supportedHashTypes?: number;
}

/** What the device and the port allow for RSS. */
export interface RssLimits extends HashLimits {
  /** Receive queues in use by the port: every queue named must be below this. */
  queuePairs: number;
  /** rss_max_indirection_table_length. */
  maxIndirectionTableLength: number;
}

function bad(message: string): never {
  throw new DriverError("BAD_ARGUMENT", message);
}

function isQueue(q: number, pairs: number): boolean {
  return Number.isInteger(q) && q >= 0 && q < pairs;
}

/** Checks hash_types and the key, shared by both commands. */
function checkHashAndKey(
  what: string,
  hashTypes: number,
  key: Uint8Array,
  limits: HashLimits,
): void {
  const supported = limits.supportedHashTypes ?? VIRTIO_NET_RSS_HASH_TYPES_ALL;
  if (!Number.isInteger(hashTypes) || hashTypes < 0 || hashTypes > 0xffffffff) {
    bad(`${what}: hash types ${hashTypes} is not a 32-bit mask of VIRTIO_NET_RSS_HASH_TYPE_*.`);
  }
  const unsupported = (hashTypes & ~supported) >>> 0;
  if (unsupported) {
    bad(
      `${what}: hash types 0x${hashTypes.toString(16)} include 0x${unsupported.toString(16)}, ` +
        `which the device does not support (supported_hash_types 0x${supported.toString(16)}).`,
    );
  }
  const max = Math.min(limits.maxKeySize, 255);
  if (key.length > max) {
    bad(
      `${what}: the ${key.length}-byte key is longer than the device's rss_max_key_size ` +
        `(${limits.maxKeySize}): give at most ${max} bytes.`,
    );
  }
  if (hashTypes !== 0 && key.length < RSS_KEY_LENGTH) {
    bad(
      `${what}: the ${key.length}-byte key is too short: hashing IPv6 with ports needs ` +
        `${RSS_KEY_LENGTH} bytes (QEMU fills the rest from stale key bytes).`,
    );
  }
}

/**
 * Throws DriverError BAD_ARGUMENT, naming the field and the fix, unless `config` is a
 * valid RSS configuration for `limits` (§5.1.6.5.7.2): a power-of-two table of at most
 * rss_max_indirection_table_length entries, every queue (table, unclassified_queue) below
 * `queuePairs`, max_tx_vq in 1 … queuePairs, only supported hash types, and a key of at
 * most rss_max_key_size bytes that is at least 40 bytes long when any type is enabled (an
 * empty key with no hash types is allowed: QEMU then only sets the queue pairs).
 *
 * @example
 * ```ts
 * import { validateRssConfig } from "./rss_config.ts";
 * try {
 *   validateRssConfig(
 *     { hashTypes: 1, indirectionTable: [0, 1, 2], unclassifiedQueue: 0, maxTxVq: 2, key: new Uint8Array(40) },
 *     { queuePairs: 2, maxKeySize: 40, maxIndirectionTableLength: 128 },
 *   );
 * } catch (e) {
 *   console.error((e as Error).message); // "… 3 entries: the count must be a power of two …"
 * }
 * ```
 */
export function validateRssConfig(config: RssConfig, limits: RssLimits): void {
  const what = "RSS config";
  const pairs = limits.queuePairs;
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX) {
    bad(`${what}: queue pairs ${pairs} must be 1 … ${VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX}.`);
  }
  const table = config.indirectionTable;
  const n = table.length;
  const maxLen = limits.maxIndirectionTableLength;
  if (n === 0 || (n & (n - 1)) !== 0) {
    bad(
      `${what}: the indirection table has ${n} entries: the count must be a power of two ` +
        `(1, 2, 4, … ${maxLen}).`,
    );
  }
  if (n > maxLen) {
    bad(
      `${what}: the indirection table has ${n} entries, more than the device's ` +
        `rss_max_indirection_table_length (${maxLen}).`,
    );
  }
  for (let i = 0; i < n; i++) {
    if (!isQueue(table[i], pairs)) {
      bad(
        `${what}: indirection table entry ${i} is ${table[i]}: receive queues are ` +
          `0 … ${pairs - 1} (${pairs} queue pairs).`,
      );
    }
  }
  if (!isQueue(config.unclassifiedQueue, pairs)) {
    bad(
      `${what}: unclassified queue ${config.unclassifiedQueue} is not a receive queue: ` +
        `use 0 … ${pairs - 1}.`,
    );
  }
  const tx = config.maxTxVq;
  if (!Number.isInteger(tx) || tx < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || tx > pairs) {
    bad(`${what}: max_tx_vq ${tx} must be ${VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN} … ${pairs}.`);
  }
  checkHashAndKey(what, config.hashTypes, config.key, limits);
}

/**
 * Bytes of a struct virtio_net_rss_config with `tableLength` entries and a key of
 * `keyLength` bytes: 8 + 2·tableLength + 3 + keyLength.
 *
 * @example
 * ```ts
 * import { rssConfigSize } from "./rss_config.ts";
 * rssConfigSize(128, 40); // 307
 * ```
 */
export function rssConfigSize(tableLength: number, keyLength: number): number {
  return RSS_HEADER_SIZE + 2 * tableLength + 3 + keyLength;
}

/**
 * Bytes of a struct virtio_net_hash_config with a key of `keyLength` bytes: 13 + keyLength.
 *
 * @example
 * ```ts
 * import { hashConfigSize } from "./rss_config.ts";
 * hashConfigSize(40); // 53
 * ```
 */
export function hashConfigSize(keyLength: number): number {
  return HASH_CONFIG_HEADER_SIZE + keyLength;
}

function target(out: Uint8Array | undefined, size: number, what: string): Uint8Array {
  if (!out) return new Uint8Array(size);
  if (out.length < size) bad(`${what}: the output buffer has ${out.length} bytes, ${size} needed.`);
  return out.subarray(0, size);
}

/**
 * Validates (see {@link validateRssConfig}) and encodes the command data of
 * VIRTIO_NET_CTRL_MQ_RSS_CONFIG. Writes into `out` when given (returning the written
 * part), else into a new array.
 *
 * @example
 * ```ts
 * import { encodeRssConfig } from "./rss_config.ts";
 * const bytes = encodeRssConfig(
 *   { hashTypes: 0x3f, indirectionTable: [0, 1, 0, 1], unclassifiedQueue: 0, maxTxVq: 2, key: new Uint8Array(40) },
 *   { queuePairs: 2, maxKeySize: 40, maxIndirectionTableLength: 128 },
 * );
 * bytes.length; // 59 = 8 + 4·2 + 2 + 1 + 40
 * ```
 */
export function encodeRssConfig(
  config: RssConfig,
  limits: RssLimits,
  out?: Uint8Array,
): Uint8Array {
  validateRssConfig(config, limits);
  const table = config.indirectionTable;
  const n = table.length;
  const key = config.key;
  const bytes = target(out, rssConfigSize(n, key.length), "RSS config");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  v.setUint32(0, config.hashTypes >>> 0, true);
  v.setUint16(4, n - 1, true); // indirection_table_mask
  v.setUint16(6, config.unclassifiedQueue, true);
  for (let i = 0; i < n; i++) v.setUint16(RSS_HEADER_SIZE + 2 * i, table[i], true);
  const after = RSS_HEADER_SIZE + 2 * n;
  v.setUint16(after, config.maxTxVq, true);
  bytes[after + 2] = key.length;
  bytes.set(key, after + 3);
  return bytes;
}

/**
 * Validates and encodes the command data of VIRTIO_NET_CTRL_MQ_HASH_CONFIG (for
 * VIRTIO_NET_F_HASH_REPORT without VIRTIO_NET_F_RSS; with RSS negotiated, use the RSS
 * config — QEMU 7.2 would steer every packet to queue 0 after a HASH_CONFIG).
 *
 * @example
 * ```ts
 * import { encodeHashConfig } from "./rss_config.ts";
 * const bytes = encodeHashConfig({ hashTypes: 0x1ff, key: new Uint8Array(40) }, { maxKeySize: 40 });
 * bytes.length; // 53
 * ```
 */
export function encodeHashConfig(
  config: HashConfig,
  limits: HashLimits,
  out?: Uint8Array,
): Uint8Array {
  checkHashAndKey("hash config", config.hashTypes, config.key, limits);
  const key = config.key;
  const bytes = target(out, hashConfigSize(key.length), "hash config");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  v.setUint32(0, config.hashTypes >>> 0, true);
  bytes.fill(0, 4, 12); // reserved[4]
  bytes[12] = key.length;
  bytes.set(key, HASH_CONFIG_HEADER_SIZE);
  return bytes;
}

/**
 * Parses struct virtio_net_rss_config (as a device would; no limits checked). Throws
 * DriverError BAD_ARGUMENT when `bytes` is shorter than the structure it announces.
 *
 * @example
 * ```ts
 * import { decodeRssConfig, encodeRssConfig } from "./rss_config.ts";
 * const config = { hashTypes: 2, indirectionTable: [1, 0], unclassifiedQueue: 1, maxTxVq: 2, key: new Uint8Array(40) };
 * decodeRssConfig(encodeRssConfig(config, { queuePairs: 2, maxKeySize: 40, maxIndirectionTableLength: 128 }))
 *   .indirectionTable; // [1, 0]
 * ```
 */
export function decodeRssConfig(bytes: Uint8Array): RssConfig & { indirectionTable: number[] } {
  const short = (need: number) =>
    bad(`RSS config: ${bytes.length} bytes, but the structure needs ${need}.`);
  if (bytes.length < RSS_HEADER_SIZE) short(RSS_HEADER_SIZE);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = v.getUint16(4, true) + 1;
  const after = RSS_HEADER_SIZE + 2 * n;
  if (bytes.length < after + 3) short(after + 3);
  const keyLength = bytes[after + 2];
  if (bytes.length < after + 3 + keyLength) short(after + 3 + keyLength);
  const indirectionTable: number[] = [];
  for (let i = 0; i < n; i++) indirectionTable.push(v.getUint16(RSS_HEADER_SIZE + 2 * i, true));
  return {
    hashTypes: v.getUint32(0, true),
    indirectionTable,
    unclassifiedQueue: v.getUint16(6, true),
    maxTxVq: v.getUint16(after, true),
    key: bytes.slice(after + 3, after + 3 + keyLength),
  };
}

/**
 * Parses struct virtio_net_hash_config. Throws DriverError BAD_ARGUMENT when `bytes` is
 * shorter than the structure it announces or a reserved field is not zero.
 *
 * @example
 * ```ts
 * import { decodeHashConfig, encodeHashConfig } from "./rss_config.ts";
 * const bytes = encodeHashConfig({ hashTypes: 1, key: new Uint8Array(40) }, { maxKeySize: 40 });
 * decodeHashConfig(bytes).hashTypes; // 1
 * ```
 */
export function decodeHashConfig(bytes: Uint8Array): HashConfig {
  const need = bytes.length < HASH_CONFIG_HEADER_SIZE
    ? HASH_CONFIG_HEADER_SIZE
    : HASH_CONFIG_HEADER_SIZE + bytes[12];
  if (bytes.length < need) bad(`hash config: ${bytes.length} bytes, but it needs ${need}.`);
  for (let i = 4; i < 12; i++) {
    if (bytes[i] !== 0) bad(`hash config: reserved byte ${i} is ${bytes[i]}, not 0.`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { hashTypes: v.getUint32(0, true), key: bytes.slice(13, need) };
}
