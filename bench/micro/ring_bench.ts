/**
 * The rings alone (src/virtio/split_queue.ts, src/virtio/packed_queue.ts): a burst of 32
 * buffers made available and published, returned by a device that is a few typed-array
 * stores, and taken back with every used entry validated. A name's "×N" is the buffers per
 * iteration.
 *
 * @module
 */

import { PackedQueue } from "../../src/virtio/packed_queue.ts";
import {
  packedRingLayout,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
} from "../../src/virtio/packed_ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";

const SIZE = 256, BURST = 32;
const notify = { notify() {} };
const tokens = new Uint32Array(BURST), lens = new Uint32Array(BURST);

/** A split ring and a device returning every available buffer, 64 bytes written. */
function splitBed(inOrder = false) {
  const layout = splitRingLayout(SIZE);
  const memory = new ArrayBuffer(layout.totalBytes);
  const vq = new SplitQueue(memory, 0, {
    index: 0,
    size: SIZE,
    eventIdx: true,
    notify,
    name: "b",
    inOrder,
  });
  const avail = new Uint16Array(memory, layout.availOffset, 3 + SIZE);
  const used16 = new Uint16Array(memory, layout.usedOffset, 3 + 4 * SIZE);
  const used32 = new Uint32Array(memory, layout.usedOffset, 1 + 2 * SIZE);
  let lastAvail = 0, usedIdx = 0;
  const device = (): void => {
    while (avail[1] !== lastAvail) {
      const slot = usedIdx & (SIZE - 1);
      used32[1 + 2 * slot] = avail[2 + (lastAvail & (SIZE - 1))];
      used32[2 + 2 * slot] = 64;
      usedIdx = (usedIdx + 1) & 0xffff;
      lastAvail = (lastAvail + 1) & 0xffff;
    }
    used16[1] = usedIdx;
  };
  return { vq, device };
}

/** A packed ring and a device returning every available buffer in place, 64 bytes written. */
function packedBed(inOrder = false) {
  const layout = packedRingLayout(SIZE);
  const memory = new ArrayBuffer(layout.totalBytes);
  const vq = new PackedQueue(memory, 0, {
    index: 0,
    size: SIZE,
    eventIdx: true,
    notify,
    name: "b",
    inOrder,
  });
  const d16 = new Uint16Array(memory, layout.descOffset, 8 * SIZE);
  const d32 = new Uint32Array(memory, layout.descOffset, 4 * SIZE);
  let pos = 0;
  const device = (): void => {
    for (;;) {
      const s = pos & (SIZE - 1);
      const wrap = ((pos >> 8) & 1) ^ 1; // log2(SIZE) = 8
      const f = d16[8 * s + 7];
      if (((f & VIRTQ_DESC_F_AVAIL) !== 0 ? 1 : 0) !== wrap) return;
      if (((f & VIRTQ_DESC_F_USED) !== 0 ? 1 : 0) === wrap) return;
      d32[4 * s + 2] = 64;
      d16[8 * s + 7] = wrap ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
      pos = (pos + 1) & 0xffff;
    }
  };
  return { vq, device };
}

const split = splitBed();
Deno.bench("split ring: add, publish, take used ×32", () => {
  const { vq, device } = split;
  for (let i = 0; i < BURST; i++) vq.add(i, 0x1000 * i, 0, 2048, true);
  vq.publish();
  device();
  vq.takeUsed(tokens, lens, 0, BURST);
});

const packed = packedBed();
Deno.bench("packed ring: add, publish, take used ×32", () => {
  const { vq, device } = packed;
  for (let i = 0; i < BURST; i++) vq.add(i, 0x1000 * i, 0, 2048, true);
  vq.publish();
  device();
  vq.takeUsed(tokens, lens, 0, BURST);
});

// VIRTIO_F_IN_ORDER (split_in_order.ts, packed_in_order.ts): the same device, one used
// entry per buffer, which in order is a batch of one.
const splitInOrder = splitBed(true);
Deno.bench("split ring, in order: add, publish, take used ×32", () => {
  const { vq, device } = splitInOrder;
  for (let i = 0; i < BURST; i++) vq.add(i, 0x1000 * i, 0, 2048, true);
  vq.publish();
  device();
  vq.takeUsed(tokens, lens, 0, BURST);
});

const packedInOrder = packedBed(true);
Deno.bench("packed ring, in order: add, publish, take used ×32", () => {
  const { vq, device } = packedInOrder;
  for (let i = 0; i < BURST; i++) vq.add(i, 0x1000 * i, 0, 2048, true);
  vq.publish();
  device();
  vq.takeUsed(tokens, lens, 0, BURST);
});
