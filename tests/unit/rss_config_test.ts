/**
 * struct virtio_net_rss_config and struct virtio_net_hash_config (src/steering/rss_config.ts)
 * against virtio 1.2 §5.1.6.5.7.1 and §5.1.6.5.6.4, and, when a C compiler is present,
 * against Linux's include/uapi/linux/virtio_net.h.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import {
  decodeHashConfig,
  decodeRssConfig,
  encodeHashConfig,
  encodeRssConfig,
  hashConfigSize,
  type RssConfig,
  rssConfigSize,
  type RssLimits,
  validateRssConfig,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN,
} from "../../src/steering/rss_config.ts";
import {
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_HASH_CONFIG,
  VIRTIO_NET_CTRL_MQ_RSS_CONFIG,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
} from "../../src/net/control_queue.ts";
import {
  VIRTIO_NET_RSS_HASH_TYPE_IPv4,
  VIRTIO_NET_RSS_HASH_TYPE_TCPv4,
  VIRTIO_NET_RSS_HASH_TYPES_ALL,
} from "../../src/steering/hash_types.ts";
import { cProbeAvailable, runCProbe } from "./c_probe.ts";

const KEY = Uint8Array.from({ length: 40 }, (_, i) => 0xa0 + i);
/** QEMU 7.2's limits: rss_max_key_size 40, rss_max_indirection_table_length 128. */
const QEMU: RssLimits = { queuePairs: 4, maxKeySize: 40, maxIndirectionTableLength: 128 };

function config(over: Partial<RssConfig> = {}): RssConfig {
  return {
    hashTypes: VIRTIO_NET_RSS_HASH_TYPE_IPv4 | VIRTIO_NET_RSS_HASH_TYPE_TCPv4,
    indirectionTable: [0, 1, 2, 3],
    unclassifiedQueue: 1,
    maxTxVq: 4,
    key: KEY,
    ...over,
  };
}

function assertBad(fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.equal(e.code, "BAD_ARGUMENT");
    assert.match(e.message, why);
    return true;
  });
}

Deno.test("control class and command numbers are virtio 1.2 §5.1.6.5.5 / §5.1.6.5.7", () => {
  assert.equal(VIRTIO_NET_CTRL_MQ, 4);
  assert.equal(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 0);
  assert.equal(VIRTIO_NET_CTRL_MQ_RSS_CONFIG, 1);
  assert.equal(VIRTIO_NET_CTRL_MQ_HASH_CONFIG, 2);
  assert.equal(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN, 1);
  assert.equal(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX, 0x8000);
});

Deno.test("encodeRssConfig() lays out struct virtio_net_rss_config little-endian", () => {
  const key = Uint8Array.from({ length: 40 }, (_, i) => i);
  const bytes = encodeRssConfig(
    config({
      hashTypes: 0x1ff,
      indirectionTable: [3, 0, 2, 1],
      unclassifiedQueue: 2,
      maxTxVq: 3,
      key,
    }),
    QEMU,
  );
  assert.deepEqual(Array.from(bytes.subarray(0, 21)), [
    0xff,
    0x01,
    0x00,
    0x00, // hash_types
    0x03,
    0x00, // indirection_table_mask = 4 - 1
    0x02,
    0x00, // unclassified_queue
    0x03,
    0x00,
    0x00,
    0x00,
    0x02,
    0x00,
    0x01,
    0x00, // indirection_table[4]
    0x03,
    0x00, // max_tx_vq
    40, // hash_key_length
    0x00,
    0x01, // hash_key_data …
  ]);
  assert.deepEqual(bytes.subarray(19), key);
  assert.equal(bytes.length, rssConfigSize(4, 40));
  assert.equal(rssConfigSize(4, 40), 8 + 8 + 2 + 1 + 40);
  assert.equal(rssConfigSize(128, 40), 307);
  assert.equal(rssConfigSize(1, 0), 13);
});

Deno.test("encodeRssConfig() takes big tables and queue numbers above 255", () => {
  const table = Array.from({ length: 128 }, (_, i) => (i * 37) % 300);
  const bytes = encodeRssConfig(
    config({ indirectionTable: table, maxTxVq: 300, unclassifiedQueue: 299 }),
    { ...QEMU, queuePairs: 300 },
  );
  const v = new DataView(bytes.buffer);
  assert.equal(v.getUint16(4, true), 127);
  assert.equal(v.getUint16(6, true), 299);
  table.forEach((q, i) => assert.equal(v.getUint16(8 + 2 * i, true), q));
  assert.equal(v.getUint16(8 + 256, true), 300);
  const back = decodeRssConfig(bytes);
  assert.deepEqual(back.indirectionTable, table);
  assert.equal(back.maxTxVq, 300);
  assert.equal(back.unclassifiedQueue, 299);
});

Deno.test("encodeRssConfig() writes into a given buffer and decodeRssConfig() reads it back", () => {
  const buf = new Uint8Array(512).fill(0x55);
  const c = config({ indirectionTable: new Uint16Array([1, 1]), hashTypes: 0x3f });
  const bytes = encodeRssConfig(c, QEMU, buf.subarray(16));
  assert.equal(bytes.buffer, buf.buffer);
  assert.equal(bytes.byteOffset, 16);
  assert.equal(bytes.length, rssConfigSize(2, 40));
  assert.equal(buf[16 + bytes.length], 0x55, "nothing written past the structure");
  assert.deepEqual(decodeRssConfig(bytes), {
    hashTypes: 0x3f,
    indirectionTable: [1, 1],
    unclassifiedQueue: 1,
    maxTxVq: 4,
    key: KEY,
  });
  assertBad(() => encodeRssConfig(c, QEMU, new Uint8Array(rssConfigSize(2, 40) - 1)), /needed/);
});

Deno.test("decodeRssConfig() rejects structures cut short", () => {
  const bytes = encodeRssConfig(config(), QEMU);
  for (const n of [0, 7, 8, 15, 18, bytes.length - 1]) {
    assertBad(() => decodeRssConfig(bytes.subarray(0, n)), /bytes, but the structure needs/);
  }
  assert.equal(decodeRssConfig(bytes.subarray(0, bytes.length)).key.length, 40);
});

Deno.test("validateRssConfig() rejects malformed indirection tables", () => {
  for (const n of [0, 3, 6, 100]) {
    assertBad(
      () => validateRssConfig(config({ indirectionTable: new Array(n).fill(0) }), QEMU),
      new RegExp(`has ${n} entries: the count must be a power of two`),
    );
  }
  assertBad(
    () => validateRssConfig(config({ indirectionTable: new Array(256).fill(0) }), QEMU),
    /256 entries, more than the device's rss_max_indirection_table_length \(128\)/,
  );
  validateRssConfig(config({ indirectionTable: new Array(128).fill(0) }), QEMU);
  validateRssConfig(config({ indirectionTable: [2] }), QEMU);
  for (const bad of [4, 9, -1, 1.5, NaN]) {
    assertBad(
      () => validateRssConfig(config({ indirectionTable: [0, 1, bad, 3] }), QEMU),
      /indirection table entry 2 is .*: receive queues are 0 … 3 \(4 queue pairs\)/,
    );
  }
});

Deno.test("validateRssConfig() rejects bad queues, max_tx_vq and hash types", () => {
  assertBad(
    () => validateRssConfig(config({ unclassifiedQueue: 4 }), QEMU),
    /unclassified queue 4/,
  );
  assertBad(() => validateRssConfig(config({ unclassifiedQueue: -1 }), QEMU), /use 0 … 3/);
  assertBad(() => validateRssConfig(config({ maxTxVq: 0 }), QEMU), /max_tx_vq 0 must be 1 … 4/);
  assertBad(() => validateRssConfig(config({ maxTxVq: 5 }), QEMU), /max_tx_vq 5/);
  assertBad(
    () => validateRssConfig(config(), { ...QEMU, queuePairs: 0 }),
    /queue pairs 0 must be 1 … 32768/,
  );
  assertBad(
    () => validateRssConfig(config({ hashTypes: 1 << 9 }), QEMU),
    /include 0x200, which the device does not support/,
  );
  assertBad(
    () => validateRssConfig(config({ hashTypes: 0x3 }), { ...QEMU, supportedHashTypes: 0x1 }),
    /include 0x2, .*supported_hash_types 0x1\)/,
  );
  assertBad(() => validateRssConfig(config({ hashTypes: -1 }), QEMU), /not a 32-bit mask/);
  assertBad(() => validateRssConfig(config({ hashTypes: 0.5 }), QEMU), /not a 32-bit mask/);
  validateRssConfig(config({ hashTypes: VIRTIO_NET_RSS_HASH_TYPES_ALL }), QEMU);
});

Deno.test("validateRssConfig() checks the key length against rss_max_key_size", () => {
  assertBad(
    () => validateRssConfig(config({ key: new Uint8Array(41) }), QEMU),
    /41-byte key is longer than the device's rss_max_key_size \(40\)/,
  );
  assertBad(
    () => validateRssConfig(config({ key: new Uint8Array(300) }), { ...QEMU, maxKeySize: 255 }),
    /at most 255 bytes/,
  );
  validateRssConfig(config({ key: new Uint8Array(52) }), { ...QEMU, maxKeySize: 52 });
  assertBad(
    () => validateRssConfig(config({ key: new Uint8Array(16) }), QEMU),
    /16-byte key is too short: .* 40 bytes/,
  );
  assertBad(() => validateRssConfig(config({ key: new Uint8Array(0) }), QEMU), /too short/);
  // No hash types and no key: QEMU acknowledges it and only sets the queue pairs.
  const off = encodeRssConfig(config({ hashTypes: 0, key: new Uint8Array(0) }), QEMU);
  assert.equal(off.length, rssConfigSize(4, 0));
  assert.equal(off[off.length - 1], 0);
});

Deno.test("encodeHashConfig() lays out struct virtio_net_hash_config like a one-entry RSS config", () => {
  const bytes = encodeHashConfig({ hashTypes: 0x1ff, key: KEY }, { maxKeySize: 40 });
  assert.equal(bytes.length, hashConfigSize(40));
  assert.equal(hashConfigSize(40), 53);
  assert.deepEqual(Array.from(bytes.subarray(0, 14)), [
    0xff,
    0x01,
    0,
    0, // hash_types
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0, // reserved[4]
    40, // hash_key_length
    0xa0, // hash_key_data …
  ]);
  assert.deepEqual(bytes.subarray(13), KEY);
  assert.deepEqual(decodeHashConfig(bytes), { hashTypes: 0x1ff, key: KEY });
  // QEMU 7.2 parses HASH_CONFIG as an RSS config (virtio_net_handle_rss with do_rss false):
  // the reserved words stand where mask, unclassified_queue, table[0] and max_tx_vq are.
  const asRss = decodeRssConfig(bytes);
  assert.equal(asRss.hashTypes, 0x1ff);
  assert.deepEqual(asRss.indirectionTable, [0]);
  assert.deepEqual(asRss.key, KEY);
  const buf = new Uint8Array(64).fill(0xff);
  assert.equal(encodeHashConfig({ hashTypes: 1, key: KEY }, { maxKeySize: 40 }, buf)[5], 0);
});

Deno.test("encodeHashConfig() and decodeHashConfig() validate", () => {
  assertBad(
    () => encodeHashConfig({ hashTypes: 1, key: new Uint8Array(48) }, { maxKeySize: 40 }),
    /hash config: the 48-byte key is longer/,
  );
  assertBad(
    () => encodeHashConfig({ hashTypes: 1 << 10, key: KEY }, { maxKeySize: 40 }),
    /hash config: .*does not support/,
  );
  assertBad(
    () => encodeHashConfig({ hashTypes: 1, key: new Uint8Array(8) }, { maxKeySize: 40 }),
    /too short/,
  );
  assert.equal(
    encodeHashConfig({ hashTypes: 0, key: new Uint8Array(0) }, { maxKeySize: 40 })
      .length,
    13,
  );
  const bytes = encodeHashConfig({ hashTypes: 1, key: KEY }, { maxKeySize: 40 });
  assertBad(() => decodeHashConfig(bytes.subarray(0, 12)), /12 bytes, but it needs 13/);
  assertBad(() => decodeHashConfig(bytes.subarray(0, 52)), /52 bytes, but it needs 53/);
  const dirty = bytes.slice();
  dirty[6] = 1;
  assertBad(() => decodeHashConfig(dirty), /reserved byte 6 is 1/);
});

// ---------------------------------------------------------------------------------------
// Against the kernel's header, when there is a compiler.

const { ok: HAVE_C, reason: REASON } = cProbeAvailable(["linux/virtio_net.h"]);

Deno.test({
  name: HAVE_C
    ? "constants and struct offsets match linux/virtio_net.h compiled with cc"
    : `constants and struct offsets match linux/virtio_net.h [SKIPPED: ${REASON}]`,
  ignore: !HAVE_C,
  async fn() {
    const src = `#include <stdio.h>
#include <stddef.h>
#include <linux/virtio_net.h>
int main(void) {
  printf("%d %d %d %d %d %d\\n", VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
         VIRTIO_NET_CTRL_MQ_RSS_CONFIG, VIRTIO_NET_CTRL_MQ_HASH_CONFIG,
         VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX);
  /* indirection_table[1] in the header: offsets are those of a one-entry table. */
  printf("%zu %zu %zu %zu %zu %zu\\n", offsetof(struct virtio_net_rss_config, hash_types),
         offsetof(struct virtio_net_rss_config, indirection_table_mask),
         offsetof(struct virtio_net_rss_config, unclassified_queue),
         offsetof(struct virtio_net_rss_config, indirection_table),
         offsetof(struct virtio_net_rss_config, max_tx_vq),
         offsetof(struct virtio_net_rss_config, hash_key_length));
  printf("%zu %zu %zu\\n", offsetof(struct virtio_net_hash_config, reserved),
         offsetof(struct virtio_net_hash_config, hash_key_length),
         offsetof(struct virtio_net_hash_config, hash_key_data));
  return 0;
}
`;
    const [consts, rss, hash] = (await runCProbe(src)).trim().split("\n")
      .map((l) => l.split(" ").map(Number));
    assert.deepEqual(consts, [
      VIRTIO_NET_CTRL_MQ,
      VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
      VIRTIO_NET_CTRL_MQ_RSS_CONFIG,
      VIRTIO_NET_CTRL_MQ_HASH_CONFIG,
      VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN,
      VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX,
    ]);
    // Where our encoder puts each field for a one-entry table.
    const one = encodeRssConfig(
      config({ hashTypes: 0x01020304, indirectionTable: [3], unclassifiedQueue: 2, maxTxVq: 1 }),
      { ...QEMU, supportedHashTypes: 0xffffffff }, // a pattern, not real hash types
    );
    const v = new DataView(one.buffer);
    const [hashTypes, mask, unclassified, table, maxTx, keyLen] = rss;
    assert.equal(v.getUint32(hashTypes, true), 0x01020304);
    assert.equal(v.getUint16(mask, true), 0);
    assert.equal(v.getUint16(unclassified, true), 2);
    assert.equal(v.getUint16(table, true), 3);
    assert.equal(v.getUint16(maxTx, true), 1);
    assert.equal(one[keyLen], 40);
    assert.equal(one.length, keyLen + 1 + 40);
    const h = encodeHashConfig({ hashTypes: 1, key: KEY }, { maxKeySize: 40 });
    assert.deepEqual(hash, [4, 12, 13]);
    assert.equal(h[hash[1]], 40);
    assert.equal(h[hash[2]], KEY[0]);
  },
});
