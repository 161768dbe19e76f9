/**
 * RxQueue and TxQueue (src/net/rx_queue.ts, src/net/tx_queue.ts) over a SplitQueue in a
 * plain ArrayBuffer and a BufferPool in real DMA memory. The test plays the device: it
 * reads descriptors, reads or writes the buffer bytes at the descriptor's IOVA, and writes
 * used-ring entries.
 */

import assert from "node:assert/strict";
import { BufferPool, NO_BUFFER } from "../../src/dma/buffer_pool.ts";
import {
  netHeaderSize,
  VIRTIO_NET_HDR_HASH_SIZE,
  VIRTIO_NET_HDR_SIZE,
} from "../../src/net/header.ts";
import { RxQueue } from "../../src/net/rx_queue.ts";
import { TxQueue } from "../../src/net/tx_queue.ts";
import { VIRTQ_DESC_F_WRITE } from "../../src/virtio/ring_math.ts";
import { frame, rig, withRig } from "./rx_tx_fixture.ts";

const HDR = VIRTIO_NET_HDR_SIZE;

Deno.test("netHeaderSize() is 12 bytes with VERSION_1 and 20 with HASH_REPORT", () => {
  assert.equal(netHeaderSize(false), 12);
  assert.equal(netHeaderSize(true), 20);
  assert.equal(VIRTIO_NET_HDR_SIZE, 12);
  assert.equal(VIRTIO_NET_HDR_HASH_SIZE, 20);
});

// ---------------------------------------------------------------------------------------
// RxQueue
// ---------------------------------------------------------------------------------------

Deno.test("RxQueue.refill() fills every descriptor with a device-writable pool buffer", () => {
  withRig(8, 32, ({ pool, vq, nic, kicks }) => {
    const rx = new RxQueue(vq, pool, HDR);
    rx.refill();
    assert.equal(vq.freeCount, 0);
    assert.equal(pool.available, 32 - 8);
    assert.equal(nic.availIdx, 8);
    assert.equal(kicks(), 1, "one notification for the whole fill");
    const bufs = nic.takeAvail().map((d) => {
      const desc = nic.desc(d);
      assert.equal(desc.flags, VIRTQ_DESC_F_WRITE);
      assert.equal(desc.len, pool.bufferSize, "whole buffer, header included");
      return nic.bufferOf(d, pool.bufferSize);
    });
    assert.deepEqual(bufs, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(rx.refillFailures, 0);
  });
});

Deno.test("RxQueue.refill() stops and counts a failure when the pool runs dry", () => {
  withRig(8, 5, ({ pool, vq, nic }) => {
    const rx = new RxQueue(vq, pool, HDR);
    rx.refill();
    assert.equal(nic.availIdx, 5);
    assert.equal(vq.freeCount, 3);
    assert.equal(pool.available, 0);
    assert.equal(rx.refillFailures, 1);
  });
});

Deno.test("RxQueue.rxBurst() returns buffer indices and header-stripped lengths, then refills", () => {
  withRig(8, 32, ({ pool, vq, nic, kicks }) => {
    const rx = new RxQueue(vq, pool, HDR);
    rx.refill();
    const ids = nic.takeAvail();
    // The device receives three frames into the 3rd, 1st and 6th buffers posted.
    const lens = [60, 1514, 342];
    const used = [ids[2], ids[0], ids[5]];
    used.forEach((d, k) => {
      const b = nic.bytes(d);
      b.fill(0x77, 0, HDR); // some header
      b.set(frame(lens[k], k), HDR);
    });
    nic.use(used.map((d, k) => [d, HDR + lens[k]]));
    // Which pool buffers those are (read now: the refill reuses the descriptors).
    const usedBufs = used.map((d) => nic.bufferOf(d, pool.bufferSize));

    const bufs = new Uint32Array(32), outLens = new Uint32Array(32);
    const n = rx.rxBurst(bufs, outLens, 32);
    assert.equal(n, 3);
    assert.deepEqual([...outLens.subarray(0, 3)], lens);
    assert.deepEqual([...bufs.subarray(0, 3)], usedBufs);
    for (let k = 0; k < 3; k++) {
      const at = pool.offset(bufs[k]) + rx.headerSize;
      assert.deepEqual(pool.data.subarray(at, at + lens[k]), frame(lens[k], k));
    }
    assert.equal(rx.packets, 3);
    assert.equal(rx.bytes, 60 + 1514 + 342);
    // Refilled: three fresh buffers went to the device, published with one more kick.
    assert.equal(vq.freeCount, 0);
    assert.equal(nic.availIdx, 11);
    assert.equal(kicks(), 2);
    assert.equal(pool.available, 32 - 8 - 3, "the caller owns the three received buffers");
    const fresh = nic.takeAvail().map((d) => nic.bufferOf(d, pool.bufferSize));
    assert.deepEqual(fresh, [8, 9, 10]);
    for (let k = 0; k < 3; k++) pool.free(bufs[k]);
  });
});

Deno.test("RxQueue.rxBurst() drops runts (no frame after the header), counts and recycles them", () => {
  withRig(8, 16, ({ pool, vq, nic }) => {
    const rx = new RxQueue(vq, pool, HDR);
    rx.refill();
    const ids = nic.takeAvail();
    nic.use([[ids[0], 5], [ids[1], HDR + 64], [ids[2], HDR], [ids[3], 0], [ids[4], HDR + 1]]);
    const delivered = [ids[1], ids[4]].map((d) => nic.bufferOf(d, pool.bufferSize));
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    const n = rx.rxBurst(bufs, lens, 8);
    assert.equal(n, 2);
    assert.deepEqual([...lens.subarray(0, 2)], [64, 1]);
    assert.deepEqual([...bufs.subarray(0, 2)], delivered, "arrival order kept after the drops");
    assert.equal(rx.dropsRunt, 3);
    assert.equal(rx.packets, 2);
    assert.equal(rx.bytes, 65);
    // 16 buffers: 8 posted again after the refill, 2 held by the caller, 6 free.
    assert.equal(vq.freeCount, 0);
    assert.equal(pool.available, 16 - 8 - 2);
  });
});

Deno.test("RxQueue.rxBurst() with nothing received returns 0 and publishes nothing", () => {
  withRig(8, 16, ({ pool, vq, nic, kicks }) => {
    const rx = new RxQueue(vq, pool, HDR);
    rx.refill();
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 8), 0);
    assert.equal(nic.availIdx, 8);
    assert.equal(kicks(), 1);
  });
});

Deno.test("RxQueue.rxBurst() takes at most `max` frames; the rest wait for the next call", () => {
  withRig(8, 16, ({ pool, vq, nic }) => {
    const rx = new RxQueue(vq, pool, HDR);
    rx.refill();
    const ids = nic.takeAvail();
    nic.use(ids.slice(0, 5).map((d) => [d, HDR + 100]));
    const bufs = new Uint32Array(8), lens = new Uint32Array(8);
    assert.equal(rx.rxBurst(bufs, lens, 2), 2);
    assert.equal(rx.rxBurst(bufs, lens, 8), 3);
    assert.equal(rx.packets, 5);
  });
});

Deno.test("RxQueue with a 20-byte hash-report header strips 20 bytes", () => {
  withRig(4, 8, ({ pool, vq, nic }) => {
    const rx = new RxQueue(vq, pool, netHeaderSize(true));
    rx.refill();
    const [d] = nic.takeAvail();
    nic.use([[d, 20 + 60]]);
    const bufs = new Uint32Array(4), lens = new Uint32Array(4);
    assert.equal(rx.rxBurst(bufs, lens, 4), 1);
    assert.equal(lens[0], 60);
    nic.use([[nic.takeAvail()[0], 20]]);
    assert.equal(rx.rxBurst(bufs, lens, 4), 0);
    assert.equal(rx.dropsRunt, 1);
  });
});

// ---------------------------------------------------------------------------------------
// TxQueue
// ---------------------------------------------------------------------------------------

/** Allocates `n` buffers and writes a frame into each, with garbage where the header goes. */
function prepare(pool: BufferPool, lens: number[], hdr = HDR): Uint32Array {
  const bufs = new Uint32Array(lens.length);
  lens.forEach((len, k) => {
    const b = pool.alloc();
    assert.notEqual(b, NO_BUFFER);
    bufs[k] = b;
    const off = pool.offset(b);
    pool.data.fill(0xaa, off, off + hdr);
    pool.data.set(frame(Math.min(len, pool.bufferSize - hdr), k + 1), off + hdr);
  });
  return bufs;
}

Deno.test("TxQueue.txBurst() zeroes each header and posts header + frame, device-readable", () => {
  withRig(8, 16, ({ pool, vq, nic, kicks }) => {
    const tx = new TxQueue(vq, pool, HDR);
    const lens = [60, 1514, 0];
    const bufs = prepare(pool, lens);
    assert.equal(tx.txBurst(bufs, Uint32Array.from(lens), 3), 3);
    assert.equal(kicks(), 1, "one notification per burst");
    assert.equal(nic.availIdx, 3);
    const posted = nic.takeAvail();
    posted.forEach((d, k) => {
      const desc = nic.desc(d);
      assert.equal(desc.flags, 0, "device-readable");
      assert.equal(desc.len, HDR + lens[k]);
      assert.equal(desc.addr, nic.iova + pool.offset(bufs[k]));
      const bytes = nic.bytes(d);
      assert.ok(bytes.subarray(0, HDR).every((x) => x === 0), "header zeroed");
      assert.deepEqual(bytes.subarray(HDR), frame(lens[k], k + 1));
    });
    assert.equal(tx.packets, 3);
    assert.equal(tx.bytes, 60 + 1514);
  });
});

Deno.test("TxQueue.txBurst() stops at a frame longer than a buffer holds and returns the count queued", () => {
  withRig(8, 16, ({ pool, vq, nic }) => {
    const tx = new TxQueue(vq, pool, HDR);
    const room = pool.bufferSize - HDR;
    const lens = [60, room, room + 1, 60];
    const bufs = prepare(pool, lens);
    const off2 = pool.offset(bufs[2]);
    assert.equal(tx.txBurst(bufs, Uint32Array.from(lens), 4), 2);
    assert.equal(nic.availIdx, 2);
    assert.ok(tx.tooLong >= 1);
    assert.equal(tx.packets, 2);
    assert.equal(tx.bytes, 60 + room);
    assert.ok(pool.data.subarray(off2, off2 + HDR).every((x) => x === 0xaa), "refused: untouched");
  });
});

Deno.test("TxQueue.txBurst() counts only the over-long frame in tooLong", () => {
  // tooLong is documented as "frames refused because they were longer than a buffer can
  // hold"; the frame after it was not refused for its length (the caller retries it).
  withRig(8, 16, ({ pool, vq }) => {
    const tx = new TxQueue(vq, pool, HDR);
    const lens = [60, pool.bufferSize, 60, 60];
    const bufs = prepare(pool, lens);
    assert.equal(tx.txBurst(bufs, Uint32Array.from(lens), 4), 1);
    assert.equal(tx.tooLong, 1);
  });
});

Deno.test("TxQueue.txBurst() on a full ring queues what fits and counts the rest in ringFull", () => {
  withRig(4, 16, ({ pool, vq, nic, kicks }) => {
    const tx = new TxQueue(vq, pool, HDR);
    const lens = [60, 61, 62, 63, 64, 65];
    const bufs = prepare(pool, lens);
    assert.equal(tx.txBurst(bufs, Uint32Array.from(lens), 6), 4);
    assert.equal(tx.ringFull, 2);
    assert.equal(nic.availIdx, 4);
    assert.equal(kicks(), 1);
    // The device has not finished anything: a retry queues nothing and changes nothing.
    assert.equal(tx.txBurst(bufs.subarray(4), Uint32Array.from(lens.slice(4)), 2), 0);
    assert.equal(tx.ringFull, 4);
    assert.equal(nic.availIdx, 4);
    assert.equal(kicks(), 1, "nothing new, no notification");
  });
});

Deno.test("TxQueue.reclaim() returns buffers the device finished to the pool", () => {
  withRig(8, 16, ({ pool, vq, nic }) => {
    const tx = new TxQueue(vq, pool, HDR);
    const lens = [60, 60, 60, 60];
    const bufs = prepare(pool, lens);
    tx.txBurst(bufs, Uint32Array.from(lens), 4);
    assert.equal(pool.available, 12);
    assert.equal(tx.reclaim(), 0);
    const ids = nic.takeAvail();
    nic.use([[ids[1], 0], [ids[3], 0], [ids[0], 0]]);
    assert.equal(tx.reclaim(), 3);
    assert.equal(pool.available, 15);
    assert.equal(vq.inFlight, 1);
    // The reclaimed buffers are the ones the device completed: they can be freed no more.
    assert.throws(() => pool.free(bufs[1]), RangeError);
    assert.throws(() => pool.free(bufs[3]), RangeError);
    assert.throws(() => pool.free(bufs[0]), RangeError);
  });
});

Deno.test("TxQueue.txBurst() reclaims completed buffers itself when the ring is short", () => {
  withRig(4, 16, ({ pool, vq, nic }) => {
    const tx = new TxQueue(vq, pool, HDR);
    const first = prepare(pool, [60, 60, 60, 60]);
    assert.equal(tx.txBurst(first, Uint32Array.from([60, 60, 60, 60]), 4), 4);
    nic.use(nic.takeAvail().map((d) => [d, 0]));
    const more = prepare(pool, [70, 70]);
    assert.equal(tx.txBurst(more, Uint32Array.from([70, 70]), 2), 2);
    assert.equal(tx.ringFull, 0);
    assert.equal(pool.available, 16 - 2, "the first four went back to the pool");
    assert.equal(vq.inFlight, 2);
  });
});

// ---------------------------------------------------------------------------------------
// Steering epochs: the gate shared by receive queues (src/net/steering.ts)
// ---------------------------------------------------------------------------------------

Deno.test("after a steering switch every queue delivers its old frames before any new one, and new frames are held off the ring", () => {
  withRig(8, 64, (a) =>
    withRig(8, 64, (b) => {
      const rxA = new RxQueue(a.vq, a.pool, HDR), rxB = new RxQueue(b.vq, b.pool, HDR);
      rxA.refill();
      rxB.refill();
      const availA = a.nic.takeAvail(), availB = b.nic.takeAvail();
      // Old rule: frames of 101, 102 bytes on A and 201 on B.
      a.nic.use([[availA[0], HDR + 101], [availA[1], HDR + 102]]);
      b.nic.use([[availB[0], HDR + 201]]);
      const gate = new Int32Array([2]);
      rxA.beginEpoch(gate);
      rxB.beginEpoch(gate);
      // New rule: 103, 104 on A and 202, 203 on B.
      a.nic.use([[availA[2], HDR + 103], [availA[3], HDR + 104]]);
      b.nic.use([[availB[1], HDR + 202], [availB[2], HDR + 203]]);

      const bufs = new Uint32Array(32), lens = new Uint32Array(32);
      const take = (rx: RxQueue) => Array.from(lens.subarray(0, rx.rxBurst(bufs, lens, 32)));
      assert.deepEqual(take(rxB), [201], "B: its old frame, and no further");
      assert.deepEqual(take(rxB), [], "B waits for A");
      assert.equal(rxB.heldFrames, 2, "B's new frames are taken off the ring…");
      assert.equal(b.nic.takeAvail().length, 3, "…and the ring refilled (201's, 202's, 203's)");
      assert.equal(rxB.held, true);
      assert.deepEqual(take(rxA), [101, 102], "A: old frames up to its boundary");
      assert.deepEqual(take(rxA), [103, 104], "A reached its boundary: the gate opens");
      assert.equal(gate[0], 0);
      assert.deepEqual(take(rxB), [202, 203], "B: held frames, in ring order");
      assert.equal(rxB.heldFrames, 0);
      assert.equal(rxB.held, false);
      b.nic.use([[availB[3], HDR + 204]]);
      assert.deepEqual(take(rxB), [204], "then the ring again");
    }));
});

Deno.test("under random steering switches, every frame is delivered once, in ring order, by every queue", () => {
  const QUEUES = 3, SIZE = 8;
  const rigs = Array.from({ length: QUEUES }, () => rig(SIZE, 256));
  try {
    const rx = rigs.map((r) => new RxQueue(r.vq, r.pool, HDR));
    for (const q of rx) q.refill();
    // Device side: the descriptors it holds, per queue, and the next frame number.
    const avail = rigs.map(() => [] as number[]);
    const next = new Array(QUEUES).fill(0), seen = new Array(QUEUES).fill(0);
    let seed = 12345;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
    const bufs = new Uint32Array(32), lens = new Uint32Array(32);
    for (let step = 0; step < 20000; step++) {
      const q = rand(QUEUES), r = rigs[q];
      const op = rand(10);
      if (op < 5) {
        avail[q].push(...r.nic.takeAvail());
        if (avail[q].length > 0) {
          // The device fills a buffer with frame number next[q] (its length encodes it).
          const d = avail[q].shift()!;
          r.nic.use([[d, HDR + 100 + (next[q]++ % 1000)]]);
        }
      } else if (op < 9) {
        const n = rx[q].rxBurst(bufs, lens, 1 + rand(4));
        for (let i = 0; i < n; i++) {
          assert.equal(lens[i], 100 + (seen[q]++ % 1000), `queue ${q}: frame out of order`);
          r.pool.free(bufs[i]);
        }
      } else if (rx.every((x) => x.pendingEpochs < 16)) {
        const gate = new Int32Array([QUEUES]);
        for (const x of rx) x.beginEpoch(gate);
      }
    }
  } finally {
    for (const r of rigs) r.region.free();
  }
});
