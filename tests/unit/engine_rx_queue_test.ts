/**
 * A forwarding worker's receive queue (src/net/rx_queue.ts over a worker's partition and
 * shared counters) over a split ring in
 * plain memory, the test playing the device: refill from the worker's partition, header
 * stripping, runts, counters, and waking the sibling queues only when the device had run
 * dry (asked for a notification through avail_event, virtio 1.x §2.7.10).
 */

import assert from "node:assert/strict";
import {
  counterLayout,
  P_DROP_RUNT,
  P_RX_BYTES,
  P_RX_KICKS,
  P_RX_PACKETS,
  P_RX_SIBLING_WAKES,
  portBase,
  sharedCounters,
} from "../../src/engine/counters.ts";
import { RxQueue } from "../../src/net/rx_queue.ts";
import { PartitionPool } from "../../src/engine/partition_pool.ts";
import { splitRingLayout } from "../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";

const SIZE = 8;

function setup() {
  const layout = splitRingLayout(SIZE);
  const ring = new ArrayBuffer(layout.totalBytes);
  let kicks = 0, wakes = 0;
  const vq = new SplitQueue(ring, 0, {
    index: 0,
    size: SIZE,
    eventIdx: true,
    notify: { notify: () => kicks++ },
    name: "receiveq1 of test",
  });
  const pool = new PartitionPool(
    new ArrayBuffer(32 * 2048),
    0x1_0000_0000,
    32,
    2048,
    Array.from({ length: 32 }, (_, i) => i),
    [],
  );
  const c = sharedCounters(counterLayout(2, 0, 0));
  const rx = new RxQueue(vq, pool, 12, c, portBase(0));
  rx.siblings = [{ notify: () => wakes++ }, { notify: () => wakes++ }];
  const view = new DataView(ring);
  let usedIdx = 0;
  const device = {
    /** Returns buffer `id` used with `len` bytes written. */
    use(id: number, len: number) {
      const at = layout.usedOffset + 4 + 8 * (usedIdx & (SIZE - 1));
      view.setUint32(at, id, true);
      view.setUint32(at + 4, len, true);
      usedIdx = (usedIdx + 1) & 0xffff;
      view.setUint16(layout.usedOffset + 2, usedIdx, true);
    },
    /** Sets avail_event: the device wants a notification once avail->idx passes it. */
    availEvent(v: number) {
      view.setUint16(layout.usedOffset + 4 + 8 * SIZE, v, true);
    },
    availIdx: () => view.getUint16(layout.availOffset + 2, true),
    descOf: (slot: number) => view.getUint16(layout.availOffset + 4 + 2 * slot, true),
  };
  return { vq, pool, c, rx, device, kicks: () => kicks, wakes: () => wakes };
}

Deno.test("RxQueue in a worker refills from its partition and delivers frames without their header", () => {
  const { pool, c, rx, device } = setup();
  rx.refill();
  assert.equal(device.availIdx(), SIZE);
  assert.equal(pool.available, 32 - SIZE);
  device.use(device.descOf(0), 12 + 60);
  device.use(device.descOf(1), 12); // a runt: a header and no frame
  device.use(device.descOf(2), 12 + 1514);
  const bufs = new Uint32Array(8), lens = new Uint32Array(8);
  assert.equal(rx.rxBurst(bufs, lens, 8), 2);
  assert.deepEqual([...lens.subarray(0, 2)], [60, 1514]);
  assert.deepEqual([...bufs.subarray(0, 2)], [0, 2]);
  assert.equal(c[portBase(0) + P_RX_PACKETS], 2);
  assert.equal(c[portBase(0) + P_RX_BYTES], 1574);
  assert.equal(c[portBase(0) + P_DROP_RUNT], 1);
  assert.equal(device.availIdx(), SIZE + 3, "three buffers posted again");
  assert.ok(pool.inUse(0) && pool.inUse(2), "delivered buffers belong to the caller");
});

Deno.test("RxQueue in a worker wakes the sibling queues only when the device had run dry", () => {
  const { c, rx, device, kicks, wakes } = setup();
  device.availEvent(0); // a fresh device wants to hear about the first buffers
  rx.refill();
  assert.equal(kicks(), 1);
  assert.equal(wakes(), 2, "both siblings woken");
  device.availEvent(100); // busy device: no notification wanted
  const bufs = new Uint32Array(8), lens = new Uint32Array(8);
  for (let i = 0; i < 3; i++) device.use(device.descOf(i), 100);
  assert.equal(rx.rxBurst(bufs, lens, 8), 3);
  assert.equal(kicks(), 1);
  assert.equal(wakes(), 2);
  device.availEvent(SIZE + 3); // it ran dry at avail->idx 11 and asks to be told
  for (let i = 3; i < 5; i++) device.use(device.descOf(i), 100);
  assert.equal(rx.rxBurst(bufs, lens, 8), 2);
  assert.equal(kicks(), 2);
  assert.equal(wakes(), 4);
  assert.equal(c[portBase(0) + P_RX_KICKS], 2);
  assert.equal(c[portBase(0) + P_RX_SIBLING_WAKES], 4);
});
