/**
 * VIRTIO_F_INDIRECT_DESC on both ring layouts (SplitQueue §2.7.5.3, PackedQueue §2.8.19),
 * with and without VIRTIO_F_IN_ORDER, over a plain ArrayBuffer; TxQueue sending a jumbo
 * frame through one slot; and the negotiation. The test plays the device: it reads what
 * was made available (following an INDIRECT descriptor into its table at the IOVA the
 * descriptor gives) and returns buffers with used entries it writes itself.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { VIRTIO_NET_HDR_SIZE } from "../../src/net/header.ts";
import { selectFeatures } from "../../src/net/negotiate.ts";
import { RxQueue } from "../../src/net/rx_queue.ts";
import { TxQueue } from "../../src/net/tx_queue.ts";
import { bit, hasFeature, VIRTIO_F_INDIRECT_DESC } from "../../src/virtio/features.ts";
import { INDIRECT_TABLE_BYTES, INDIRECT_TABLE_DESCS } from "../../src/virtio/indirect_table.ts";
import { VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_USED } from "../../src/virtio/packed_ring_math.ts";
import { createVirtqueue, ringAreas, type RingFormat } from "../../src/virtio/ring_format.ts";
import {
  splitRingLayout,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
} from "../../src/virtio/ring_math.ts";
import type { Virtqueue } from "../../src/virtio/virtqueue.ts";
import { openFakePort, portDevice } from "./fake_virtio_pci.ts";
import { frame, withRig } from "./rx_tx_fixture.ts";

/** Where the test says the ring's memory sits for the device (the ring starts there). */
const RING_IOVA = 0x40_0000;

/** A piece of a buffer as the device reads it. */
interface Piece {
  addr: number;
  len: number;
}

/** A buffer the device read: its id (split: head descriptor; packed: buffer id). */
interface Buf {
  id: number;
  slots: number; // ring slots (descriptors in the ring) it took
  indirect: boolean;
  pieces: Piece[];
}

/** A device over either layout that follows indirect descriptors into their tables. */
class Device {
  readonly v: DataView;
  readonly fifo: Buf[] = [];
  availPos = 0;
  usedPos = 0;

  constructor(
    readonly format: RingFormat,
    readonly memory: ArrayBuffer,
    readonly size: number,
  ) {
    this.v = new DataView(memory);
  }

  /** 16 bytes at ring-relative IOVA `iova`: addr, len, and the last two 16-bit fields. */
  #descAt(iova: number) {
    const at = iova - RING_IOVA;
    assert.ok(at >= 0 && at + 16 <= this.memory.byteLength, `IOVA ${iova} is in the ring's memory`);
    return {
      addr: Number(this.v.getBigUint64(at, true)),
      len: this.v.getUint32(at + 8, true),
      w16: this.v.getUint16(at + 12, true), // split: flags; packed: id
      x16: this.v.getUint16(at + 14, true), // split: next; packed: flags
    };
  }

  #wrap(pos: number): number {
    return (Math.floor((pos & 0xffff) / this.size) & 1) ^ 1;
  }

  /** The pieces of an indirect table at `addr`, `len` bytes, as §2.7.5.3 / §2.8.19 read it. */
  #table(addr: number, len: number): Piece[] {
    assert.equal(len % 16, 0, "a table is whole descriptors");
    const n = len / 16, out: Piece[] = [];
    if (this.format === "split") {
      for (let i = 0;;) {
        const d = this.#descAt(addr + 16 * i);
        assert.equal(d.w16 & VIRTQ_DESC_F_INDIRECT, 0, "no INDIRECT inside a table");
        out.push({ addr: d.addr, len: d.len });
        if (!(d.w16 & VIRTQ_DESC_F_NEXT)) break;
        assert.equal(d.x16, i + 1, "next indexes the table");
        i = d.x16;
        assert.ok(i < n);
      }
      assert.equal(out.length, n, "the table's length counts its chain");
      return out;
    }
    for (let i = 0; i < n; i++) {
      const d = this.#descAt(addr + 16 * i);
      assert.equal(d.x16 & (VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT), 0, "plain entries");
      out.push({ addr: d.addr, len: d.len });
    }
    return out;
  }

  /** Reads everything newly made available into the FIFO. */
  poll(): void {
    const mask = this.size - 1;
    if (this.format === "split") {
      const a = splitRingLayout(this.size).availOffset;
      const end = this.v.getUint16(a + 2, true);
      while (this.availPos !== end) {
        const id = this.v.getUint16(a + 4 + 2 * (this.availPos & mask), true);
        let d = this.#descAt(RING_IOVA + 16 * id), slots = 1;
        const indirect = (d.w16 & VIRTQ_DESC_F_INDIRECT) !== 0;
        let pieces: Piece[];
        if (indirect) {
          assert.equal(d.w16 & VIRTQ_DESC_F_NEXT, 0, "INDIRECT without NEXT (§2.7.5.3.1)");
          pieces = this.#table(d.addr, d.len);
        } else {
          pieces = [{ addr: d.addr, len: d.len }];
          while (d.w16 & VIRTQ_DESC_F_NEXT) {
            d = this.#descAt(RING_IOVA + 16 * d.x16);
            pieces.push({ addr: d.addr, len: d.len });
            slots++;
          }
        }
        this.fifo.push({ id, slots, indirect, pieces });
        this.availPos = (this.availPos + 1) & 0xffff;
      }
      return;
    }
    for (;;) {
      const p = this.availPos, w = this.#wrap(p);
      let d = this.#descAt(RING_IOVA + 16 * (p & mask));
      const avail = ((d.x16 & VIRTQ_DESC_F_AVAIL) !== 0 ? 1 : 0) === w &&
        ((d.x16 & VIRTQ_DESC_F_USED) !== 0 ? 1 : 0) !== w;
      if (!avail) return;
      const id = d.w16, indirect = (d.x16 & VIRTQ_DESC_F_INDIRECT) !== 0;
      let slots = 1, pieces: Piece[];
      if (indirect) {
        assert.equal(d.x16 & VIRTQ_DESC_F_NEXT, 0, "INDIRECT without NEXT (§2.8.20)");
        pieces = this.#table(d.addr, d.len);
      } else {
        pieces = [{ addr: d.addr, len: d.len }];
        while (d.x16 & VIRTQ_DESC_F_NEXT) {
          d = this.#descAt(RING_IOVA + 16 * ((p + slots) & mask));
          pieces.push({ addr: d.addr, len: d.len });
          slots++;
        }
      }
      this.fifo.push({ id, slots, indirect, pieces });
      this.availPos = (p + slots) & 0xffff;
    }
  }

  /** Writes a used entry for the buffers `bufs` (taken out of the FIFO) naming `id`. */
  use(bufs: Buf[], len: number, id = bufs[bufs.length - 1].id): void {
    const mask = this.size - 1;
    if (this.format === "split") {
      const u = splitRingLayout(this.size).usedOffset;
      const at = u + 4 + 8 * (this.usedPos & mask);
      this.v.setUint32(at, id, true);
      this.v.setUint32(at + 4, len, true);
      this.usedPos = (this.usedPos + bufs.length) & 0xffff;
      this.v.setUint16(u + 2, this.usedPos, true);
      return;
    }
    const at = 16 * (this.usedPos & mask);
    this.v.setUint32(at + 8, len, true);
    this.v.setUint16(at + 12, id, true);
    const w = this.#wrap(this.usedPos) ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    this.v.setUint16(at + 14, w, true);
    this.usedPos = (this.usedPos + bufs.reduce((a, b) => a + b.slots, 0)) & 0xffff;
  }

  /** Returns buffers one used entry each, in the order of `order` (FIFO indices). */
  returnEach(order?: number[]): void {
    this.poll();
    const bufs = this.fifo.splice(0, this.fifo.length);
    for (const i of order ?? bufs.map((_, k) => k)) this.use([bufs[i]], 0);
  }
}

const FORMATS: RingFormat[] = ["split", "packed"];

function setup(format: RingFormat, inOrder: boolean, size = 8) {
  const areas = ringAreas(format, size, false, true);
  const memory = new ArrayBuffer(areas.totalBytes);
  const opts = {
    index: 1,
    size,
    eventIdx: false,
    inOrder,
    notify: { notify() {} },
    name: "transmitq1 of test",
    indirectIova: RING_IOVA + areas.indirectOffset,
  };
  const q = createVirtqueue(format, memory, 0, opts);
  return { q, dev: new Device(format, memory, size), memory, opts, areas };
}

/** `count` pieces of a frame: piece i at 0x10_0000 + 0x1000·i + 0x100·tag, 2048 bytes but the last. */
function pieces(count: number, tag: number, last = 500) {
  const lo = new Uint32Array(count), hi = new Uint32Array(count), lens = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    lo[i] = 0x10_0000 + 0x1000 * i + 0x100 * tag;
    hi[i] = i % 2; // a high word too
    lens[i] = i === count - 1 ? last : 2048;
  }
  return { lo, hi, lens };
}

function expectPieces(count: number, tag: number, last = 500): Piece[] {
  const p = pieces(count, tag, last);
  return [...p.lo].map((lo, i) => ({ addr: lo + p.hi[i] * 2 ** 32, len: p.lens[i] }));
}

function take(q: Virtqueue, max = q.size): { tokens: number[]; lens: number[] } {
  const tokens = new Uint32Array(max), lens = new Uint32Array(max);
  const n = q.takeUsed(tokens, lens, 0, max);
  return { tokens: [...tokens.subarray(0, n)], lens: [...lens.subarray(0, n)] };
}

function assertMisbehaved(fn: () => unknown, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.equal(e.code, "DEVICE_MISBEHAVED");
    assert.match(e.message, what);
    return true;
  });
}

Deno.test("ringAreas() with indirect tables puts one table per slot after the ring", () => {
  const plain = ringAreas("split", 256), ind = ringAreas("split", 256, false, true);
  assert.equal(plain.indirectOffset, -1);
  assert.equal(ind.indirectOffset % 64, 0);
  assert.ok(ind.indirectOffset >= plain.totalBytes);
  assert.equal(ind.totalBytes, ind.indirectOffset + 256 * INDIRECT_TABLE_BYTES);
  const packed = ringAreas("packed", 256, false, true);
  assert.ok(packed.indirectOffset >= ringAreas("packed", 256).totalBytes, "after the shadow");
  assert.equal(INDIRECT_TABLE_BYTES, 16 * INDIRECT_TABLE_DESCS);
});

for (const f of FORMATS) {
  for (const inOrder of [false, true]) {
    const name = `${f}${inOrder ? ", in order" : ""}`;

    Deno.test(`${name}: a frame of several pieces takes one slot, INDIRECT, its table right`, () => {
      const { q, dev, opts } = setup(f, inOrder);
      assert.equal(q.indirectMax, 7, "fewer than the queue size (8)");
      assert.ok(q.add(1, 0x9000, 0, 60, false), "a single-buffer frame");
      const p = pieces(5, 2);
      assert.ok(q.addSegments(2, p.lo, p.hi, p.lens, 5));
      assert.equal(q.freeCount, 6, "two slots for two frames");
      q.publish();
      dev.poll();
      assert.equal(dev.fifo.length, 2);
      const [single, multi] = dev.fifo;
      assert.equal(single.indirect, false, "a single buffer stays direct");
      assert.deepEqual(single.pieces, [{ addr: 0x9000, len: 60 }]);
      assert.equal(multi.indirect, true);
      assert.equal(multi.slots, 1);
      assert.deepEqual(multi.pieces, expectPieces(5, 2));
      // The table is the one of the buffer's slot (split: head descriptor; packed: id).
      const ringDesc = new DataView(dev.memory).getBigUint64(
        16 * (f === "split" ? multi.id : 1),
        true,
      );
      assert.equal(Number(ringDesc), opts.indirectIova + multi.id * INDIRECT_TABLE_BYTES);
      // Completion frees the one slot, and hands the token back with nothing written.
      dev.returnEach();
      assert.deepEqual(take(q), { tokens: [1, 2], lens: [0, 0] });
      assert.equal(q.freeCount, 8);
      assert.equal(q.inFlight, 0);
    });

    Deno.test(`${name}: a full ring of indirect frames, many laps, completed ${inOrder ? "in batches" : "out of order"}`, () => {
      const { q, dev } = setup(f, inOrder);
      let tag = 0;
      for (let lap = 0; lap < 40; lap++) {
        const posted: number[] = [];
        for (let k = 0; k < 8; k++) {
          const count = 2 + ((lap + k) % 6);
          const p = pieces(count, tag & 0xf, 100 + k);
          assert.ok(q.addSegments(1000 + tag, p.lo, p.hi, p.lens, count), `frame ${tag}`);
          posted.push(tag++);
        }
        const p = pieces(2, 0);
        assert.ok(!q.addSegments(1, p.lo, p.hi, p.lens, 2), "the ring is full: 8 frames, 8 slots");
        q.publish();
        dev.poll();
        for (const [k, b] of dev.fifo.entries()) {
          const count = 2 + ((lap + k) % 6);
          assert.ok(b.indirect);
          assert.deepEqual(b.pieces, expectPieces(count, posted[k] & 0xf, 100 + k));
        }
        let got: number[];
        if (inOrder) {
          // Two batches: one used entry for the first three, one for the other five.
          const bufs = dev.fifo.splice(0, 8);
          dev.use(bufs.slice(0, 3), 0);
          dev.use(bufs.slice(3), 0);
          got = take(q).tokens;
          assert.deepEqual(got, posted.map((t) => 1000 + t));
        } else {
          dev.returnEach([7, 2, 0, 5, 1, 6, 3, 4]);
          got = take(q).tokens;
          assert.deepEqual(got, [7, 2, 0, 5, 1, 6, 3, 4].map((i) => 1000 + posted[i]));
        }
        assert.equal(q.freeCount, 8);
      }
    });

    Deno.test(`${name}: more pieces than a table holds go out as a direct chain`, () => {
      const { q, dev } = setup(f, inOrder);
      const eight = pieces(8, 1);
      assert.ok(q.addSegments(1, eight.lo, eight.hi, eight.lens, 8), "8: a direct chain");
      assert.equal(q.freeCount, 0);
      q.publish();
      dev.poll();
      assert.deepEqual(dev.fifo.map((b) => [b.indirect, b.slots]), [[false, 8]]);
      assert.deepEqual(dev.fifo[0].pieces, expectPieces(8, 1));
      dev.returnEach();
      assert.deepEqual(take(q).tokens, [1]);
      const seven = pieces(7, 2);
      assert.ok(q.addSegments(2, seven.lo, seven.hi, seven.lens, 7), "7: one table");
      assert.equal(q.freeCount, 7);
      q.publish();
      dev.returnEach();
      assert.deepEqual(take(q).tokens, [2]);
      // A queue of 32 holds 16 pieces in a table; 17 go direct.
      const big = setup(f, inOrder, 32);
      assert.equal(big.q.indirectMax, INDIRECT_TABLE_DESCS);
      const many = pieces(17, 3);
      assert.ok(big.q.addSegments(9, many.lo, many.hi, many.lens, 17));
      assert.equal(big.q.freeCount, 32 - 17);
      big.q.publish();
      big.dev.poll();
      assert.equal(big.dev.fifo[0].indirect, false);
      assert.deepEqual(big.dev.fifo[0].pieces, expectPieces(17, 3));
      big.dev.returnEach();
      assert.deepEqual(take(big.q).tokens, [9]);
      assert.equal(big.q.freeCount, 32);
    });

    Deno.test(`${name}: an adopted queue keeps its indirect tables`, () => {
      const { q, dev, memory, opts } = setup(f, inOrder);
      const p = pieces(3, 4);
      assert.ok(q.addSegments(5, p.lo, p.hi, p.lens, 3));
      const state = q.exportState();
      assert.equal(state.indirectIova, opts.indirectIova);
      const { indirectIova: _, ...noIova } = opts;
      const w = createVirtqueue(f, memory, 0, noIova, state);
      assert.equal(w.indirectMax, 7);
      assert.equal(w.ringBytes, q.ringBytes);
      const p2 = pieces(4, 5);
      assert.ok(w.addSegments(6, p2.lo, p2.hi, p2.lens, 4));
      w.publish();
      dev.poll();
      assert.deepEqual(dev.fifo.map((b) => [b.indirect, b.pieces]), [
        [true, expectPieces(3, 4)],
        [true, expectPieces(4, 5)],
      ]);
      dev.returnEach();
      assert.deepEqual(take(w).tokens, [5, 6]);
    });

    Deno.test(`${name}: hostile used entries for indirect buffers break the queue, free nothing`, () => {
      // An id not in flight (a slot never posted).
      {
        const { q, dev } = setup(f, inOrder);
        const p = pieces(3, 1);
        q.addSegments(1, p.lo, p.hi, p.lens, 3);
        q.publish();
        dev.poll();
        const bufs = dev.fifo.splice(0, 1);
        dev.use(bufs, 0, 5);
        assertMisbehaved(() => take(q), /not in flight/);
        assert.equal(q.freeCount, 7, "the buffer stays in flight");
        assertMisbehaved(() => take(q), /not in flight/);
      }
      // The same indirect buffer returned twice.
      {
        const { q, dev } = setup(f, inOrder);
        const p = pieces(3, 1);
        q.addSegments(1, p.lo, p.hi, p.lens, 3);
        q.addSegments(2, p.lo, p.hi, p.lens, 3);
        q.publish();
        dev.poll();
        const [a] = dev.fifo.splice(0, 2);
        dev.use([a], 0);
        dev.use([a], 0);
        assertMisbehaved(() => take(q), /not in flight/);
        assert.equal(q.freeCount, 6, "neither slot freed");
      }
      if (f === "split") {
        // More bytes reported than the buffer's pieces hold (a packed ring ignores a
        // length for a buffer with nothing device-writable).
        const { q, dev } = setup(f, inOrder);
        const p = pieces(3, 1);
        q.addSegments(1, p.lo, p.hi, p.lens, 3);
        q.publish();
        dev.poll();
        dev.use(dev.fifo.splice(0, 1), 2048 + 2048 + 501);
        assertMisbehaved(() => take(q), /bytes written into a 4596-byte buffer/);
        // used->idx further ahead than the buffers in flight.
        const b = setup(f, inOrder);
        b.q.addSegments(1, p.lo, p.hi, p.lens, 3);
        b.q.publish();
        b.dev.poll();
        const [one] = b.dev.fifo.splice(0, 1);
        b.dev.use([one, one], 0); // used->idx moved by 2, one buffer in flight
        assertMisbehaved(() => take(b.q), /runs 2 entries ahead with only 1 buffers in flight/);
      }
    });
  }
}

for (const format of FORMATS) {
  Deno.test(`${format}: TxQueue sends 9,014-byte frames through one slot each, byte for byte`, () => {
    withRig(16, 64, (r) => {
      const HDR = VIRTIO_NET_HDR_SIZE, BUF = 2048;
      const rx = new RxQueue(r.vq, r.pool, HDR, undefined, 0, true);
      rx.refill();
      const ids = r.nic.takeAvail();
      const frames = [frame(9014, 1), frame(9014, 2), frame(4000, 3)];
      const entries: [number, number][] = [];
      let next = 0;
      for (const fr of frames) {
        // The device spreads each frame over 2 KiB buffers, header in the first (§5.1.6.4).
        const n = Math.ceil((fr.length + HDR) / BUF);
        let at = 0;
        for (const [k, d] of ids.slice(next, next + n).entries()) {
          const b = r.nic.bytes(d), off = k === 0 ? HDR : 0;
          if (k === 0) {
            b.fill(0, 0, HDR);
            b[10] = n; // num_buffers
          }
          const len = Math.min(BUF - off, fr.length - at);
          b.set(fr.subarray(at, at + len), off);
          at += len;
          entries.push([d, off + len]);
        }
        next += n;
      }
      r.nic.use(entries);
      const bufs = new Uint32Array(16), lens = new Uint32Array(16);
      assert.equal(rx.rxBurst(bufs, lens, 16), 3, "12 buffers, 3 frames");
      // A transmit ring of 8 slots: direct, the three frames would need 5 + 5 + 2.
      const t = setup(format, false, 8);
      const tx = new TxQueue(t.q, r.pool, HDR);
      const before = r.pool.available;
      assert.equal(tx.txBurst(bufs, lens, 3), 3);
      assert.equal(t.q.freeCount, 5, "three frames, three slots");
      assert.equal(tx.ringFull, 0);
      assert.equal(tx.packets, 3);
      t.dev.poll();
      assert.equal(t.dev.fifo.length, 3);
      for (const [k, b] of t.dev.fifo.entries()) {
        assert.ok(b.indirect);
        // The device reads the pieces: header zeroed, then the frame byte for byte.
        const read = new Uint8Array(b.pieces.reduce((a, p) => a + p.len, 0));
        let at = 0;
        for (const p of b.pieces) {
          const o = p.addr - r.region.iova;
          read.set(r.pool.data.subarray(o, o + p.len), at);
          at += p.len;
        }
        assert.deepEqual(read.subarray(0, HDR), new Uint8Array(HDR));
        assert.deepEqual(read.subarray(HDR), frames[k]);
      }
      t.dev.returnEach([2, 0, 1]);
      assert.equal(tx.reclaim(), 3);
      assert.equal(r.pool.available, before + 5 + 5 + 2, "every buffer of the three back");
      assert.equal(t.q.freeCount, 8);
    }, 2048);
  });
}

Deno.test("selectFeatures() takes VIRTIO_F_INDIRECT_DESC when offered unless indirect is false", () => {
  const offered = bit(32) | bit(33) | bit(VIRTIO_F_INDIRECT_DESC);
  assert.ok(hasFeature(selectFeatures("p", offered), VIRTIO_F_INDIRECT_DESC));
  assert.ok(!hasFeature(selectFeatures("p", offered, { indirect: false }), VIRTIO_F_INDIRECT_DESC));
  assert.ok(!hasFeature(selectFeatures("p", bit(32) | bit(33)), VIRTIO_F_INDIRECT_DESC));
});

Deno.test("a port gives its transmit queues indirect tables inside the memory its device reaches, its receive queues none", () => {
  for (const indirect of [true, false]) {
    const dev = portDevice("vfio-user:/fake-indirect");
    dev.bar4.deviceFeatures |= bit(VIRTIO_F_INDIRECT_DESC);
    const port = openFakePort(dev, { indirect });
    try {
      assert.equal(port.negotiatedFeatureNames().includes("VIRTIO_F_INDIRECT_DESC"), indirect);
      const tx = port.tx(0).vq, rx = port.rx(0).vq, region = port.pool.region;
      assert.equal(rx.indirectMax, 0, "receive buffers are one descriptor each");
      assert.equal(rx.exportState().indirectIova, undefined);
      if (!indirect) {
        assert.equal(tx.indirectMax, 0);
        continue;
      }
      assert.equal(tx.indirectMax, Math.min(INDIRECT_TABLE_DESCS, tx.size - 1));
      const iova = tx.exportState().indirectIova!;
      // The tables lie after the ring, inside the queue's ringBytes and the mapped region,
      // at the IOVA matching their place in it.
      const ringIova = region.iova + tx.ringOffset;
      const areas = ringAreas("split", tx.size, false, true);
      assert.equal(iova, ringIova + areas.indirectOffset);
      assert.equal(tx.ringBytes, areas.totalBytes);
      const end = iova + tx.size * INDIRECT_TABLE_BYTES;
      assert.ok(end <= region.iova + region.size, "inside the region the device reaches");
      assert.ok(end <= port.pool.region.iova + port.pool.offset(0), "before the pool");
    } finally {
      port.close();
    }
  }
});
