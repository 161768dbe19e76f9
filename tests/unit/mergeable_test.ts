/**
 * Mergeable receive buffers (VIRTIO_NET_F_MRG_RXBUF, docs/mergeable.md): RxQueue turns a
 * frame the device spread over several buffers into one frame linked through
 * `pool.next`, refuses buffers that break §5.1.6.4's rules, and TxQueue sends such a frame
 * as one descriptor chain. The test plays the device (tests/unit/rx_tx_fixture.ts).
 */

import assert from "node:assert/strict";
import { NO_BUFFER } from "../../src/dma/buffer_pool.ts";
import { HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE } from "../../src/net/header.ts";
import { RxQueue } from "../../src/net/rx_queue.ts";
import { TxQueue } from "../../src/net/tx_queue.ts";
import { PackedQueue } from "../../src/virtio/packed_queue.ts";
import { packedRingLayout } from "../../src/virtio/packed_ring_math.ts";
import { VIRTQ_DESC_F_NEXT } from "../../src/virtio/ring_math.ts";
import { frame, type Rig, withRig } from "./rx_tx_fixture.ts";

const HDR = VIRTIO_NET_HDR_SIZE;
const BUF = 2048;

/**
 * The device receives `f` into the next `count` posted descriptors as §5.1.6.4 says:
 * header with num_buffers in the first, every buffer but the last full. Returns the used
 * entries it would write (descriptor, bytes).
 */
function spread(r: Rig, ids: number[], f: Uint8Array, numBuffers?: number): [number, number][] {
  const entries: [number, number][] = [];
  let at = 0;
  for (let k = 0; at < f.length || k === 0; k++) {
    const b = r.nic.bytes(ids[k]);
    let written = 0;
    if (k === 0) {
      b.fill(0, 0, HDR);
      written = HDR;
    }
    const take = Math.min(BUF - written, f.length - at);
    b.set(f.subarray(at, at + take), written);
    at += take;
    entries.push([ids[k], written + take]);
  }
  const hdr = r.nic.bytes(ids[0]);
  const n = numBuffers ?? entries.length;
  hdr[HDR_NUM_BUFFERS] = n & 0xff;
  hdr[HDR_NUM_BUFFERS + 1] = n >> 8;
  return entries;
}

/** The bytes of the frame named by buffer `b` of `r`'s pool, gathered through `next`. */
function gather(r: Rig, b: number, len: number): Uint8Array {
  const out = new Uint8Array(len), pool = r.pool;
  let at = 0, first = true;
  for (let x = b; x !== NO_BUFFER && at < len; x = pool.next[x]) {
    const from = pool.offset(x) + (first ? HDR : 0);
    const take = Math.min(BUF - (first ? HDR : 0), len - at);
    out.set(pool.data.subarray(from, from + take), at);
    at += take;
    first = false;
  }
  return out;
}

Deno.test("a 9,014-byte frame in five 2 KiB buffers comes out as one frame, its buffers linked", () => {
  withRig(16, 64, (r) => {
    const rx = new RxQueue(r.vq, r.pool, HDR, undefined, 0, true);
    rx.refill();
    const ids = r.nic.takeAvail();
    const big = frame(9014, 7), small = frame(60, 8);
    const used = [...spread(r, ids.slice(0, 5), big), ...spread(r, ids.slice(5), small)];
    assert.equal(used.length, 6);
    r.nic.use(used);
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 8), 2);
    assert.deepEqual([lens[0], lens[1]], [9014, 60]);
    assert.deepEqual(gather(r, bufs[0], 9014), big);
    assert.deepEqual(gather(r, bufs[1], 60), small);
    assert.equal(r.pool.next[bufs[1]], NO_BUFFER, "a frame in one buffer links nothing");
    assert.equal(rx.packets, 2);
    assert.equal(rx.bytes, 9074);
    const before = r.pool.available;
    r.pool.free(bufs[0]); // the whole frame goes back
    assert.equal(r.pool.available, before + 5);
    r.pool.free(bufs[1]);
  }, BUF);
});

Deno.test("a frame whose last buffers come in a later burst waits for them", () => {
  withRig(16, 64, (r) => {
    const rx = new RxQueue(r.vq, r.pool, HDR, undefined, 0, true);
    rx.refill();
    const ids = r.nic.takeAvail();
    const big = frame(5000, 3);
    const used = spread(r, ids.slice(0, 3), big);
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    r.nic.use(used.slice(0, 2));
    assert.equal(rx.rxBurst(bufs, lens, 8), 0, "two of three buffers: no frame yet");
    r.nic.use(used.slice(2));
    assert.equal(rx.rxBurst(bufs, lens, 8), 1);
    assert.equal(lens[0], 5000);
    assert.deepEqual(gather(r, bufs[0], 5000), big);
    // And with `max` cutting a frame's buffers: the rest come with the next call.
    const more = r.nic.takeAvail();
    r.nic.use(spread(r, more.slice(0, 3), frame(4500, 4)));
    assert.equal(rx.rxBurst(bufs, lens, 2), 0);
    assert.equal(rx.rxBurst(bufs, lens, 2), 1);
    assert.equal(lens[0], 4500);
  }, BUF);
});

Deno.test("buffers that break §5.1.6.4 drop their frame whole, counted, and the next frame is intact", () => {
  withRig(16, 64, (r) => {
    const rx = new RxQueue(r.vq, r.pool, HDR, undefined, 0, true);
    rx.refill();
    const ids = r.nic.takeAvail();
    const bufs = new Uint32Array(16), lens = new Uint32Array(16);
    const available = r.pool.available;
    // num_buffers 0: that buffer alone is dropped.
    r.nic.use(spread(r, [ids[0]], frame(100, 1), 0));
    // A middle buffer not full: the whole three-buffer frame is dropped.
    const bad = spread(r, ids.slice(1, 4), frame(5000, 2));
    bad[1][1] = 1000;
    r.nic.use(bad);
    // num_buffers larger than the ring: dropped.
    r.nic.use(spread(r, [ids[4]], frame(100, 3), 17));
    // A good frame after them.
    const good = frame(3000, 4);
    r.nic.use(spread(r, ids.slice(5, 7), good));
    assert.equal(rx.rxBurst(bufs, lens, 16), 1);
    assert.equal(lens[0], 3000);
    assert.deepEqual(gather(r, bufs[0], 3000), good);
    assert.equal(rx.dropsBadMerge, 3);
    // Every dropped buffer went back (the ring took fresh ones from the pool meanwhile).
    r.pool.free(bufs[0]);
    assert.equal(r.pool.available, available);
  }, BUF);
});

Deno.test("without mergeable buffers num_buffers is not read: a frame is one buffer", () => {
  withRig(8, 32, (r) => {
    const rx = new RxQueue(r.vq, r.pool, HDR);
    rx.refill();
    const ids = r.nic.takeAvail();
    r.nic.use(spread(r, [ids[0]], frame(100, 1), 0));
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 8), 1);
    assert.equal(lens[0], 100);
    assert.equal(rx.dropsBadMerge, 0);
  }, BUF);
});

Deno.test("TxQueue sends a frame that spans buffers as one descriptor chain, and reclaims it whole", () => {
  withRig(16, 64, (r) => {
    const rx = new RxQueue(r.vq, r.pool, HDR, undefined, 0, true);
    rx.refill();
    const ids = r.nic.takeAvail();
    const big = frame(9014, 9);
    r.nic.use(spread(r, ids.slice(0, 5), big));
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 8), 1);
    // Send it on a second queue of the same pool (the rig's ring is the receive one).
    withRig(16, 1, (t) => {
      const tx = new TxQueue(t.vq, r.pool, HDR);
      const head = bufs[0];
      assert.equal(tx.txBurst(bufs, lens, 1), 1);
      const [d0] = t.nic.takeAvail();
      const chain: { addr: number; len: number }[] = [];
      for (let d = d0;;) {
        const desc = t.nic.desc(d);
        chain.push({ addr: desc.addr, len: desc.len });
        if (!(desc.flags & VIRTQ_DESC_F_NEXT)) break;
        d = t.nic.ring.getUint16(t.nic.layout.descOffset + 16 * d + 14, true);
      }
      assert.equal(chain.length, 5);
      assert.deepEqual(chain.map((c) => c.len), [BUF, BUF, BUF, BUF, HDR + 9014 - 4 * BUF]);
      assert.equal(chain[0].addr, r.region.iova + r.pool.offset(head));
      // The device reads the chain: header zeroed, then the frame.
      const read = new Uint8Array(HDR + 9014);
      let at = 0;
      for (const c of chain) {
        read.set(r.pool.data.subarray(c.addr - r.region.iova, c.addr - r.region.iova + c.len), at);
        at += c.len;
      }
      assert.deepEqual(read.subarray(0, HDR), new Uint8Array(HDR));
      assert.deepEqual(read.subarray(HDR), big);
      assert.equal(tx.packets, 1);
      assert.equal(tx.bytes, 9014);
      const available = r.pool.available;
      t.nic.use([[d0, 0]]);
      assert.equal(tx.reclaim(), 1);
      assert.equal(r.pool.available, available + 5, "all five buffers back");
      assert.equal(t.vq.freeCount, 16, "all five descriptors free");
    }, BUF);
  }, BUF);
});

Deno.test("a chain the ring cannot take yet waits (ring full), a lone over-long buffer is too long", () => {
  withRig(16, 64, (r) => {
    const rx = new RxQueue(r.vq, r.pool, HDR, undefined, 0, true);
    rx.refill();
    const ids = r.nic.takeAvail();
    r.nic.use(spread(r, ids.slice(0, 5), frame(9014, 1)));
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 8), 1);
    withRig(8, 1, (t) => {
      const tx = new TxQueue(t.vq, r.pool, HDR);
      const four = Uint32Array.from({ length: 4 }, () => r.pool.alloc());
      assert.equal(tx.txBurst(four, Uint32Array.of(60, 60, 60, 60), 4), 4);
      assert.equal(tx.txBurst(bufs, lens, 1), 0, "5 descriptors, 4 free: the ring is full");
      assert.equal(tx.ringFull, 1);
      assert.equal(tx.tooLong, 0);
      t.nic.use(t.nic.takeAvail().map((d) => [d, 0]));
      assert.equal(tx.txBurst(bufs, lens, 1), 1, "sent once the device returned the four");
      const lone = r.pool.alloc();
      assert.equal(tx.txBurst(Uint32Array.of(lone), Uint32Array.of(BUF), 1), 0);
      assert.equal(tx.tooLong, 1);
      r.pool.free(lone);
    }, BUF);
  }, BUF);
});

Deno.test("PackedQueue.addSegments() writes the chain in consecutive slots, head flags last, one id", () => {
  const size = 8, mem = new ArrayBuffer(packedRingLayout(size).totalBytes);
  const q = new PackedQueue(mem, 0, {
    index: 0,
    size,
    eventIdx: false,
    notify: { notify() {} },
    name: "q",
  });
  q.add(1, 0x1000, 0, 100, false); // slot 0
  const lo = Uint32Array.of(0x2000, 0x3000, 0x4000), hi = Uint32Array.of(0, 1, 0);
  assert.ok(q.addSegments(7, lo, hi, Uint32Array.of(2048, 2048, 500), 3));
  const v = new DataView(mem);
  const ids = [1, 2, 3].map((s) => v.getUint16(16 * s + 12, true));
  assert.equal(new Set(ids).size, 1, "one buffer id in every descriptor");
  assert.deepEqual([1, 2, 3].map((s) => v.getUint16(16 * s + 14, true) & VIRTQ_DESC_F_NEXT), [
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_NEXT,
    0,
  ]);
  assert.equal(v.getBigUint64(16 * 2, true), 0x1_0000_3000n);
  assert.equal(q.freeCount, size - 4);
  assert.ok(!q.addSegments(8, lo, hi, Uint32Array.of(1, 1, 1), 5), "5 slots are not free");
  // The device uses the chain: one used descriptor at its first slot, the chain skipped.
  v.setUint16(16 * 0 + 12, v.getUint16(12, true), true);
  const used = (slot: number, id: number) => {
    v.setUint16(16 * slot + 12, id, true);
    v.setUint16(16 * slot + 14, (1 << 7) | (1 << 15), true);
  };
  used(0, v.getUint16(12, true));
  used(1, ids[0]);
  // Another thread's view (a steering switch): the chain's used descriptor covers 3 slots.
  const observer = new PackedQueue(mem, 0, {
    index: 0,
    size,
    eventIdx: false,
    notify: { notify() {} },
    name: "observer",
  }, q.exportState());
  assert.equal(observer.deviceUsedIdx(), 4);
  const tokens = new Uint32Array(4), lens = new Uint32Array(4);
  assert.equal(q.takeUsed(tokens, lens, 0, 4), 2);
  assert.deepEqual([...tokens.subarray(0, 2)], [1, 7]);
  assert.equal(q.freeCount, size);
});

Deno.test("a burst of frames that span buffers goes out whole while the ring has the descriptors", () => {
  withRig(16, 64, (r) => {
    const rx = new RxQueue(r.vq, r.pool, HDR, undefined, 0, true);
    rx.refill();
    const ids = r.nic.takeAvail();
    const frames = [frame(9014, 1), frame(9014, 2), frame(60, 3)];
    r.nic.use([
      ...spread(r, ids.slice(0, 5), frames[0]),
      ...spread(r, ids.slice(5, 10), frames[1]),
      ...spread(r, ids.slice(10, 11), frames[2]),
    ]);
    const bufs = new Uint32Array(16), lens = new Uint32Array(16);
    assert.equal(rx.rxBurst(bufs, lens, 16), 3);
    withRig(16, 1, (t) => {
      const tx = new TxQueue(t.vq, r.pool, HDR);
      assert.equal(tx.txBurst(bufs, lens, 3), 3, "5 + 5 + 1 descriptors of 16");
      assert.equal(t.vq.freeCount, 5);
      assert.equal(tx.ringFull, 0);
    }, BUF);
  }, BUF);
});

Deno.test("dropPartial() gives back a frame still being assembled before a worker takes the queue", () => {
  withRig(16, 64, (r) => {
    const rx = new RxQueue(r.vq, r.pool, HDR, undefined, 0, true);
    rx.refill();
    const ids = r.nic.takeAvail();
    const available = r.pool.available;
    r.nic.use(spread(r, ids.slice(0, 3), frame(5000, 5)).slice(0, 2));
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 8), 0);
    assert.equal(r.pool.available, available - 2, "two buffers held by the frame");
    assert.equal(rx.dropPartial(), true);
    assert.equal(r.pool.available, available);
    assert.equal(rx.dropsBadMerge, 1);
    assert.equal(rx.dropPartial(), false, "nothing left to drop");
  }, BUF);
});
