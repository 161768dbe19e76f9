/**
 * Split-virtqueue arithmetic (src/virtio/ring_math.ts) against virtio 1.x §2.7 and, when
 * a C compiler is present, against Linux's include/uapi/linux/virtio_ring.h.
 */

import assert from "node:assert/strict";
import {
  isValidQueueSize,
  ringDistance,
  splitRingLayout,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_SIZE,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from "../../src/virtio/ring_math.ts";
import { cProbeAvailable, runCProbe } from "./c_probe.ts";

const POWERS_OF_TWO = Array.from({ length: 16 }, (_, i) => 1 << i); // 1 … 32768

Deno.test("ring constants are the values of virtio 1.x §2.7", () => {
  assert.equal(VIRTQ_DESC_SIZE, 16); // struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }
  assert.equal(VIRTQ_DESC_F_NEXT, 1);
  assert.equal(VIRTQ_DESC_F_WRITE, 2);
  assert.equal(VIRTQ_DESC_F_INDIRECT, 4);
  assert.equal(VIRTQ_AVAIL_F_NO_INTERRUPT, 1);
  assert.equal(VIRTQ_USED_F_NO_NOTIFY, 1);
  assert.equal(VIRTQ_MAX_SIZE, 32768);
});

Deno.test("isValidQueueSize() accepts exactly the powers of two from 1 to 32768", () => {
  for (const n of POWERS_OF_TWO) assert.equal(isValidQueueSize(n), true, `${n}`);
  for (const n of [0, -1, -256, 3, 6, 100, 255, 257, 1000, 32767, 32769, 65536, 1 << 20]) {
    assert.equal(isValidQueueSize(n), false, `${n}`);
  }
  for (const n of [0.5, 1.5, 256.0001, NaN, Infinity, -Infinity]) {
    assert.equal(isValidQueueSize(n), false, `${n}`);
  }
});

Deno.test("splitRingLayout() follows §2.7's sizes and alignments for every valid size", () => {
  for (const n of POWERS_OF_TWO) {
    const l = splitRingLayout(n);
    assert.equal(l.size, n);
    // Alignment (§2.7, table "Virtqueue Part / Alignment / Size").
    assert.equal(l.descOffset % 16, 0, `desc alignment, size ${n}`);
    assert.equal(l.availOffset % 2, 0, `avail alignment, size ${n}`);
    assert.equal(l.usedOffset % 4, 0, `used alignment, size ${n}`);
    // Sizes: descriptor table 16·N, available ring 6 + 2·N, used ring 6 + 8·N; no overlap.
    assert.ok(l.availOffset >= l.descOffset + 16 * n, `desc/avail overlap, size ${n}`);
    assert.ok(l.usedOffset >= l.availOffset + 6 + 2 * n, `avail/used overlap, size ${n}`);
    assert.equal(l.totalBytes, l.usedOffset + 6 + 8 * n);
    // The implementation promises 64-byte alignment of each part (no false sharing).
    assert.equal(l.availOffset % 64, 0);
    assert.equal(l.usedOffset % 64, 0);
  }
});

Deno.test("splitRingLayout() offsets for sizes 1, 256 and 32768", () => {
  // size 1: desc 16 bytes -> avail at 64 (6+2 = 8 bytes) -> used at 128 (6+8 = 14 bytes)
  assert.deepEqual(splitRingLayout(1), {
    size: 1,
    descOffset: 0,
    availOffset: 64,
    usedOffset: 128,
    totalBytes: 142,
  });
  // size 256: desc 4096 -> avail 4096..4614 -> used at 4672, 6 + 2048 bytes
  assert.deepEqual(splitRingLayout(256), {
    size: 256,
    descOffset: 0,
    availOffset: 4096,
    usedOffset: 4672,
    totalBytes: 4672 + 6 + 2048,
  });
  // size 32768: desc 524288 -> avail 524288..589830 -> used at 589888, 6 + 262144 bytes
  assert.deepEqual(splitRingLayout(32768), {
    size: 32768,
    descOffset: 0,
    availOffset: 524288,
    usedOffset: 589888,
    totalBytes: 589888 + 6 + 262144,
  });
});

Deno.test("splitRingLayout() rejects sizes that are not a power of two up to 32768", () => {
  for (const n of [0, 3, 100, 65536, -8, 1.5]) {
    assert.throws(() => splitRingLayout(n), RangeError, `${n}`);
  }
});

Deno.test("ringDistance() counts entries between free-running 16-bit indices across the wrap", () => {
  assert.equal(ringDistance(0, 0), 0);
  assert.equal(ringDistance(0, 1), 1);
  assert.equal(ringDistance(65530, 4), 10);
  assert.equal(ringDistance(65535, 0), 1);
  assert.equal(ringDistance(0, 65535), 65535);
  assert.equal(ringDistance(1, 0), 65535);
  assert.equal(ringDistance(32768, 0), 32768);
  // (from + d) mod 2^16 is always d entries ahead, wherever `from` is.
  for (const from of [0, 1, 255, 32767, 32768, 65000, 65535]) {
    for (const d of [0, 1, 7, 256, 32767, 32768, 65535]) {
      assert.equal(ringDistance(from, (from + d) & 0xffff), d, `${from}+${d}`);
    }
  }
});

/**
 * The semantic definition of vring_need_event (§2.7.10): notify iff the other side's event
 * index lies in [old, new) modulo 2^16 — written independently of the C expression.
 */
function needEventReference(event: number, newIdx: number, oldIdx: number): boolean {
  const fromOld = (x: number) => (x - oldIdx + 0x10000) % 0x10000;
  return fromOld(event) < fromOld(newIdx);
}

/** The C macro, transcribed operation by operation with __u16 casts:
 *  `(__u16)(new_idx - event_idx - 1) < (__u16)(new_idx - old)`. */
function needEventCMacro(event: number, newIdx: number, oldIdx: number): boolean {
  const u16 = (x: number) => ((x % 0x10000) + 0x10000) % 0x10000;
  return u16(newIdx - event - 1) < u16(newIdx - oldIdx);
}

/** (old, new) pairs around 0, the sign boundary and the top of the 16-bit space. */
function idxPairs(): [number, number][] {
  const pairs: [number, number][] = [];
  for (const old of [0, 1, 2, 100, 32766, 32767, 32768, 65533, 65534, 65535]) {
    for (const d of [0, 1, 2, 3, 7, 64, 255, 256, 32767, 32768, 65535]) {
      pairs.push([old, (old + d) & 0xffff]);
    }
  }
  return pairs;
}

Deno.test("vringNeedEvent() agrees with the C macro and with [old, new) for every event index", () => {
  let checked = 0;
  for (const [oldIdx, newIdx] of idxPairs()) {
    for (let event = 0; event < 0x10000; event++) {
      const got = vringNeedEvent(event, newIdx, oldIdx);
      if (
        got !== needEventCMacro(event, newIdx, oldIdx) ||
        got !== needEventReference(event, newIdx, oldIdx)
      ) {
        assert.fail(`vringNeedEvent(${event}, ${newIdx}, ${oldIdx}) = ${got}`);
      }
      checked++;
    }
  }
  assert.equal(checked, idxPairs().length * 0x10000);
});

Deno.test("vringNeedEvent() examples: passed, not reached, and across the wrap", () => {
  assert.equal(vringNeedEvent(10, 12, 10), true); // event == old: crossed
  assert.equal(vringNeedEvent(11, 12, 10), true); // event == new - 1: crossed
  assert.equal(vringNeedEvent(12, 12, 10), false); // event == new: not yet
  assert.equal(vringNeedEvent(9, 12, 10), false); // already passed before this batch
  assert.equal(vringNeedEvent(20, 12, 10), false);
  assert.equal(vringNeedEvent(65535, 2, 65534), true); // [65534, 2) contains 65535
  assert.equal(vringNeedEvent(0, 2, 65534), true);
  assert.equal(vringNeedEvent(1, 2, 65534), true);
  assert.equal(vringNeedEvent(2, 2, 65534), false);
  assert.equal(vringNeedEvent(65533, 2, 65534), false);
  assert.equal(vringNeedEvent(5, 5, 5), false); // nothing new: never notify
});

// ---------------------------------------------------------------------------------------
// Against include/uapi/linux/virtio_ring.h, compiled.
// ---------------------------------------------------------------------------------------

const { ok: HAVE_C, reason: REASON } = cProbeAvailable(["linux/virtio_ring.h"]);

Deno.test({
  name: HAVE_C
    ? "ring constants and vringNeedEvent() match linux/virtio_ring.h compiled with cc"
    : `ring constants and vringNeedEvent() match linux/virtio_ring.h [SKIPPED: ${REASON}]`,
  ignore: !HAVE_C,
  async fn() {
    const values = [0, 1, 2, 3, 5, 100, 255, 256, 32766, 32767, 32768, 32769, 65533, 65534, 65535];
    const src = `#include <stdio.h>
#include <linux/virtio_ring.h>
static const unsigned v[] = {${values.join(",")}};
int main(void) {
  unsigned n = sizeof v / sizeof v[0];
  printf("%zu %d %d %d %d %d\\n", sizeof(struct vring_desc), VRING_DESC_F_NEXT,
         VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT, VRING_AVAIL_F_NO_INTERRUPT,
         VRING_USED_F_NO_NOTIFY);
  for (unsigned e = 0; e < n; e++)
    for (unsigned a = 0; a < n; a++)
      for (unsigned o = 0; o < n; o++)
        putchar(vring_need_event(v[e], v[a], v[o]) ? '1' : '0');
  putchar('\\n');
  return 0;
}
`;
    const [consts, bits] = (await runCProbe(src)).trim().split("\n");
    assert.deepEqual(consts.split(" ").map(Number), [
      VIRTQ_DESC_SIZE,
      VIRTQ_DESC_F_NEXT,
      VIRTQ_DESC_F_WRITE,
      VIRTQ_DESC_F_INDIRECT,
      VIRTQ_AVAIL_F_NO_INTERRUPT,
      VIRTQ_USED_F_NO_NOTIFY,
    ]);
    let k = 0;
    for (const e of values) {
      for (const a of values) {
        for (const o of values) {
          assert.equal(vringNeedEvent(e, a, o), bits[k++] === "1", `(${e}, ${a}, ${o})`);
        }
      }
    }
    assert.equal(k, bits.length);
  },
});
