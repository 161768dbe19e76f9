/**
 * The split ring alone (src/virtio/split_queue.ts): a burst of 32 buffers made available
 * and published, returned by a device that is a few typed-array stores, and taken back
 * with every used entry validated. A name's "×N" is the buffers per iteration.
 *
 * @module
 */

import { SplitQueue } from "../../src/virtio/split_queue.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";

const SIZE = 256, BURST = 32;
const layout = splitRingLayout(SIZE);
const memory = new ArrayBuffer(layout.totalBytes);
const vq = new SplitQueue(memory, 0, {
  index: 0,
  size: SIZE,
  eventIdx: true,
  notify: { notify() {} },
  name: "bench",
});
const avail = new Uint16Array(memory, layout.availOffset, 3 + SIZE);
const used16 = new Uint16Array(memory, layout.usedOffset, 3 + 4 * SIZE);
const used32 = new Uint32Array(memory, layout.usedOffset, 1 + 2 * SIZE);
const tokens = new Uint32Array(BURST), lens = new Uint32Array(BURST);
let lastAvail = 0, usedIdx = 0;

/** The device: returns every available buffer, 64 bytes written. */
function device(): void {
  while (avail[1] !== lastAvail) {
    const slot = usedIdx & (SIZE - 1);
    used32[1 + 2 * slot] = avail[2 + (lastAvail & (SIZE - 1))];
    used32[2 + 2 * slot] = 64;
    usedIdx = (usedIdx + 1) & 0xffff;
    lastAvail = (lastAvail + 1) & 0xffff;
  }
  used16[1] = usedIdx;
}

Deno.bench("split ring: add, publish, take used ×32", () => {
  for (let i = 0; i < BURST; i++) vq.add(i, 0x1000 * i, 0, 2048, true);
  vq.publish();
  device();
  vq.takeUsed(tokens, lens, 0, BURST);
});
