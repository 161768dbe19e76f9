/**
 * VIRTIO_F_IN_ORDER on both ring layouts (SplitQueue §2.7.9, PackedQueue §2.8.8) over a
 * plain ArrayBuffer, and its negotiation. The test plays an in-order device: it reads what
 * was made available into a FIFO and returns buffers from its head, a batch with one used
 * entry (split: at the batch's first slot, used->idx moved by the batch's size) or one used
 * descriptor (packed: over the batch's first descriptor, the next after the batch's
 * descriptors), naming the batch's last buffer.
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import { selectFeatures } from "../../src/net/negotiate.ts";
import { bit, hasFeature, VIRTIO_F_IN_ORDER } from "../../src/virtio/features.ts";
import {
  packedRingLayout,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
} from "../../src/virtio/packed_ring_math.ts";
import { createVirtqueue, ringAreas, type RingFormat } from "../../src/virtio/ring_format.ts";
import {
  splitRingLayout,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "../../src/virtio/ring_math.ts";
import type { Virtqueue, VirtqueueState } from "../../src/virtio/virtqueue.ts";

/** A buffer the device read: its id (split: head descriptor; packed: buffer id) and size. */
interface Buf {
  id: number;
  descs: number;
  addr: number;
}

/** An in-order device over either layout. */
class InOrderDevice {
  readonly v: DataView;
  readonly fifo: Buf[] = [];
  availPos = 0; // split: avail index read; packed: next descriptor position
  usedPos = 0; // split: used->idx; packed: next used descriptor position
  writeFlag = false; // packed: VIRTQ_DESC_F_WRITE on a used descriptor reporting 0 bytes

  constructor(readonly format: RingFormat, memory: ArrayBuffer, readonly size: number) {
    this.v = new DataView(memory);
  }

  #desc(slot: number) {
    const at = 16 * slot; // both layouts start with the descriptors
    return {
      addr: this.v.getUint32(at, true),
      len: this.v.getUint32(at + 8, true),
      w16: this.v.getUint16(at + 12, true), // split: flags; packed: id
      x16: this.v.getUint16(at + 14, true), // split: next; packed: flags
    };
  }

  #wrap(pos: number): number {
    return (Math.floor((pos & 0xffff) / this.size) & 1) ^ 1;
  }

  /** Reads everything newly made available into the FIFO. */
  poll(): void {
    const mask = this.size - 1;
    if (this.format === "split") {
      const a = splitRingLayout(this.size).availOffset;
      const end = this.v.getUint16(a + 2, true);
      while (this.availPos !== end) {
        const id = this.v.getUint16(a + 4 + 2 * (this.availPos & mask), true);
        let descs = 1, d = this.#desc(id);
        const addr = d.addr;
        while (d.w16 & VIRTQ_DESC_F_NEXT) {
          // §2.7.5: in order, `next` of descriptor x is x + 1 (0 after the last).
          assert.equal(d.x16, (id + descs) & mask, "a chain continues in ring order");
          d = this.#desc(d.x16);
          descs++;
        }
        this.fifo.push({ id, descs, addr });
        this.availPos = (this.availPos + 1) & 0xffff;
      }
      return;
    }
    for (;;) {
      const p = this.availPos, d = this.#desc(p & mask), w = this.#wrap(p);
      const avail = ((d.x16 & VIRTQ_DESC_F_AVAIL) !== 0 ? 1 : 0) === w &&
        ((d.x16 & VIRTQ_DESC_F_USED) !== 0 ? 1 : 0) !== w;
      if (!avail) return;
      let descs = 1;
      if (d.x16 & VIRTQ_DESC_F_NEXT) descs = 2;
      this.fifo.push({ id: d.w16, descs, addr: d.addr });
      this.availPos = (p + descs) & 0xffff;
    }
  }

  /** Returns the FIFO's first `k` buffers with one entry naming the last (or `id`). */
  batch(k: number, len: number, id?: number): void {
    this.poll();
    assert.ok(k >= 1 && k <= this.fifo.length, `a batch of ${k} of ${this.fifo.length}`);
    const bufs = this.fifo.splice(0, k);
    const named = id ?? bufs[k - 1].id;
    const mask = this.size - 1;
    if (this.format === "split") {
      const u = splitRingLayout(this.size).usedOffset;
      const at = u + 4 + 8 * (this.usedPos & mask);
      this.v.setUint32(at, named, true);
      this.v.setUint32(at + 4, len, true);
      this.usedPos = (this.usedPos + k) & 0xffff;
      this.v.setUint16(u + 2, this.usedPos, true);
      return;
    }
    const at = 16 * (this.usedPos & mask);
    this.v.setUint32(at + 8, len, true);
    this.v.setUint16(at + 12, named, true);
    const w = this.#wrap(this.usedPos) ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    this.v.setUint16(at + 14, w | (len > 0 || this.writeFlag ? VIRTQ_DESC_F_WRITE : 0), true);
    this.usedPos = (this.usedPos + bufs.reduce((a, b) => a + b.descs, 0)) & 0xffff;
  }
}

const FORMATS: RingFormat[] = ["split", "packed"];

function setup(format: RingFormat, size = 8) {
  const memory = new ArrayBuffer(ringAreas(format, size).totalBytes);
  const opts = {
    index: 1,
    size,
    eventIdx: false,
    inOrder: true,
    notify: { notify() {} },
    name: "transmitq1 of test",
  };
  const q = createVirtqueue(format, memory, 0, opts);
  return { q, dev: new InOrderDevice(format, memory, size), memory, opts };
}

/** Posts tokens with the token as the low IOVA word. */
function post(q: Virtqueue, tokens: number[], len = 2048, writable = true): void {
  for (const t of tokens) assert.equal(q.add(t, t, 0, len, writable), true, `add ${t}`);
  q.publish();
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

for (const f of FORMATS) {
  Deno.test(`${f}, in order: one used entry for a batch returns every buffer up to the one it names`, () => {
    const { q, dev } = setup(f);
    assert.equal(q.inOrder, true);
    post(q, [10, 11, 12, 13], 1500, false); // device-readable: frames to send
    dev.batch(4, 0);
    assert.deepEqual(take(q), { tokens: [10, 11, 12, 13], lens: [0, 0, 0, 0] });
    assert.equal(q.freeCount, 8);
    assert.equal(q.hasUsed(), false);
  });

  Deno.test(`${f}, in order: skipped device-writable buffers count as written completely`, () => {
    const { q, dev } = setup(f);
    post(q, [20, 21, 22], 2048, true);
    dev.batch(3, 60);
    // §2.7.9/§2.8.8: the buffers without an entry of their own were used completely.
    assert.deepEqual(take(q), { tokens: [20, 21, 22], lens: [2048, 2048, 60] });
  });

  Deno.test(`${f}, in order: one used entry per buffer still works`, () => {
    const { q, dev } = setup(f);
    post(q, [1, 2, 3]);
    dev.batch(1, 100);
    dev.batch(1, 200);
    assert.deepEqual(take(q), { tokens: [1, 2], lens: [100, 200] });
    dev.batch(1, 300);
    assert.deepEqual(take(q), { tokens: [3], lens: [300] });
  });

  Deno.test(`${f}, in order: a batch larger than max is handed out over several calls`, () => {
    const { q, dev } = setup(f);
    post(q, [1, 2, 3, 4, 5]);
    dev.batch(5, 77);
    assert.deepEqual(take(q, 2), { tokens: [1, 2], lens: [2048, 2048] });
    assert.equal(q.hasUsed(), true);
    assert.deepEqual(take(q, 2), { tokens: [3, 4], lens: [2048, 2048] });
    assert.equal(q.hasUsed(), true);
    assert.deepEqual(take(q, 2), { tokens: [5], lens: [77] });
    assert.equal(q.hasUsed(), false);
    assert.equal(q.freeCount, 8);
  });

  Deno.test(`${f}, in order: an id behind the oldest buffer in flight breaks the queue and hands out nothing`, () => {
    const { q, dev } = setup(f);
    post(q, [1, 2, 3, 4]);
    dev.poll();
    const first = dev.fifo[0].id;
    dev.batch(2, 10);
    assert.deepEqual(take(q), { tokens: [1, 2], lens: [2048, 10] });
    dev.batch(1, 10, first); // names a buffer already returned
    const free = q.freeCount;
    assertMisbehaved(() => take(q), /not in flight/);
    assert.match(q.broken ?? "", /not in flight/);
    assert.equal(q.freeCount, free);
    assertMisbehaved(() => take(q), /not in flight/);
  });

  Deno.test(`${f}, in order: an id never made available, or out of range, breaks the queue`, () => {
    for (const bad of [6, 8, 0xffff]) {
      const { q, dev } = setup(f);
      post(q, [1, 2]);
      dev.batch(1, 10, bad);
      assertMisbehaved(() => take(q), /not in flight/);
      assert.equal(q.freeCount, 6);
    }
  });

  Deno.test(`${f}, in order: a bad entry after a good batch in one call hands out nothing`, () => {
    const { q, dev } = setup(f);
    post(q, [1, 2, 3, 4]);
    dev.batch(2, 10);
    dev.batch(1, 4096); // more than the 2048 bytes posted
    assertMisbehaved(() => take(q), /4096 bytes written into a 2048-byte buffer/);
    assert.equal(q.freeCount, 4);
    assert.equal(q.inFlight, 4);
  });

  Deno.test(`${f}, in order: buffer positions stay right over more than 65,536 buffers`, () => {
    const { q, dev } = setup(f);
    let token = 0, expected = 0;
    const sizes = [1, 3, 8, 2, 5, 7];
    for (let round = 0; token < 70_000; round++) {
      const n = sizes[round % sizes.length];
      const posted: number[] = [];
      for (let i = 0; i < n; i++) posted.push(token++ & 0xffffff);
      post(q, posted, 1000, false);
      dev.poll();
      for (const [i, b] of dev.fifo.entries()) {
        // Ring order: split descriptors and packed buffer ids follow the positions.
        assert.equal(b.id, (expected + i) & 7);
        assert.equal(b.addr, posted[i]);
      }
      // Return them in two batches when there are several.
      const k = n > 1 ? n >> 1 : 1;
      dev.batch(k, 7);
      if (n > k) dev.batch(n - k, 9);
      const got = take(q);
      assert.deepEqual(got.tokens, posted);
      // Device-readable buffers: a packed ring reports no length for them (§2.8.4).
      const named = (len: number) => f === "packed" ? 0 : len;
      const lens = posted.map((_, i) => (i === k - 1 ? named(7) : i === n - 1 ? named(9) : 0));
      assert.deepEqual(got.lens, lens);
      expected += n;
    }
    assert.equal(q.freeCount, 8);
    assert.ok(token > 65_536);
  });

  Deno.test(`${f}, in order: exportState() carries the in-order state and a queue adopting it goes on mid-batch`, () => {
    const { q, dev, memory, opts } = setup(f);
    post(q, [1, 2, 3, 4, 5, 6]);
    dev.batch(5, 33);
    assert.deepEqual(take(q, 2).tokens, [1, 2]);
    const state: VirtqueueState = q.exportState();
    assert.equal(state.inOrder, true);
    // A worker's adopt() passes no inOrder: the state decides.
    const { inOrder: _, ...withoutInOrder } = opts;
    const adopted = createVirtqueue(f, memory, 0, withoutInOrder, state);
    assert.equal(adopted.inOrder, true);
    assert.deepEqual(take(adopted), { tokens: [3, 4, 5], lens: [2048, 2048, 33] });
    dev.batch(1, 44);
    assert.deepEqual(take(adopted), { tokens: [6], lens: [44] });
    post(adopted, [7, 8]);
    dev.batch(2, 55);
    assert.deepEqual(take(adopted), { tokens: [7, 8], lens: [2048, 55] });
    assert.throws(
      () => createVirtqueue(f, memory, 0, { ...opts, inOrder: false }, state),
      /disagrees on VIRTIO_F_IN_ORDER/,
    );
  });

  Deno.test(`${f}, in order: chains (control commands) and single buffers share the order`, () => {
    const { q, dev } = setup(f, 8);
    // Seven buffers in, so the first chain straddles the end of the ring.
    post(q, [1, 2, 3, 4, 5, 6, 7]);
    dev.batch(7, 0);
    assert.equal(take(q).tokens.length, 7);
    assert.equal(q.addChain(100, 0x100, 0, 40, 0x200, 0, 1), true);
    post(q, [6]);
    assert.equal(q.addChain(101, 0x300, 0, 40, 0x400, 0, 1), true);
    q.publish();
    dev.poll();
    assert.deepEqual(dev.fifo.map((b) => b.descs), [2, 1, 2]);
    dev.batch(3, 1);
    // The chain skipped counts its writable byte (the ack) as written.
    assert.deepEqual(take(q), { tokens: [100, 6, 101], lens: [1, 2048, 1] });
    assert.equal(q.freeCount, 8);
    assert.equal(q.addChain(102, 0x500, 0, 40, 0x600, 0, 1), true);
    q.publish();
    dev.batch(1, 1);
    assert.deepEqual(take(q), { tokens: [102], lens: [1] });
  });

  Deno.test(`${f}: without inOrder the queue says so and its state carries false`, () => {
    const memory = new ArrayBuffer(ringAreas(f, 8).totalBytes);
    const q = createVirtqueue(f, memory, 0, {
      index: 0,
      size: 8,
      eventIdx: false,
      notify: { notify() {} },
      name: "q",
    });
    assert.equal(q.inOrder, false);
    assert.equal(q.exportState().inOrder, false);
  });
}

Deno.test("split, in order: used->idx ending inside a batch breaks the queue", () => {
  const { q, dev } = setup("split");
  post(q, [1, 2, 3]);
  dev.poll();
  const third = dev.fifo[2].id;
  dev.batch(2, 10, third); // names the third buffer but moves used->idx by 2
  assertMisbehaved(() => take(q), /ends inside the batch/);
  assert.equal(q.freeCount, 5);
});

Deno.test("packed, in order: the used descriptor of a batch lies over its first descriptor", () => {
  const { q, dev, memory } = setup("packed");
  post(q, [1, 2, 3]);
  dev.batch(3, 5);
  const l = packedRingLayout(8);
  const v = new DataView(memory, l.descOffset);
  assert.equal(v.getUint16(12, true), 2, "slot 0 names buffer 2, the batch's last");
  assert.deepEqual(take(q), { tokens: [1, 2, 3], lens: [2048, 2048, 5] });
});

Deno.test("selectFeatures() accepts VIRTIO_F_IN_ORDER when offered unless inOrder is false", () => {
  const offered = bit(32) | bit(33) | bit(VIRTIO_F_IN_ORDER);
  assert.equal(hasFeature(selectFeatures("p", offered), VIRTIO_F_IN_ORDER), true);
  assert.equal(
    hasFeature(selectFeatures("p", offered, { inOrder: false }), VIRTIO_F_IN_ORDER),
    false,
  );
  assert.equal(hasFeature(selectFeatures("p", bit(32) | bit(33)), VIRTIO_F_IN_ORDER), false);
});

for (const f of FORMATS) {
  Deno.test(`${f}, in order: random posts, chains, batches and takes agree with a FIFO model`, () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const { q, dev } = setup(f, 16);
    // The model: tokens in flight in avail order, with the length a skipped one reports.
    const model: { token: number; full: number; named?: number }[] = [];
    let token = 0, used = 0;
    const returned: { token: number; len: number }[] = [];
    for (let step = 0; step < 20_000; step++) {
      const r = rnd(4);
      if (r === 0 && q.freeCount >= 2) {
        assert.equal(q.addChain(token, 1, 0, 40, 2, 0, 1), true);
        model.push({ token: token++, full: 1 });
        q.publish();
      } else if (r === 1 && q.freeCount >= 1) {
        const writable = rnd(2) === 1;
        assert.equal(q.add(token, 3, 0, 500, writable), true);
        model.push({ token: token++, full: writable ? 500 : 0 });
        q.publish();
      } else if (r === 2) {
        dev.poll();
        if (dev.fifo.length > 0) {
          const k = 1 + rnd(dev.fifo.length), len = rnd(2);
          dev.batch(k, len);
          used += k;
          // The batch's last buffer reports `len`; on a packed ring only one the device may
          // write to (§2.8.4: the length of a read-only one means nothing).
          const m = model[used - 1];
          m.named = f === "packed" && m.full === 0 ? 0 : len;
        }
      } else {
        const got = take(q, 1 + rnd(6));
        for (let i = 0; i < got.tokens.length; i++) {
          returned.push({ token: got.tokens[i], len: got.lens[i] });
        }
      }
    }
    // Everything taken back came out in order, each skipped one with its full length.
    assert.ok(returned.length > 1000);
    for (let i = 0; i < returned.length; i++) {
      const m = model[i];
      assert.equal(returned[i].token, m.token, `buffer ${i}`);
      assert.equal(returned[i].len, m.named ?? m.full, `length of buffer ${i}`);
    }
  });
}

Deno.test("packed, in order: a used descriptor without WRITE has its length ignored (§2.8.4)", () => {
  const { q, dev, memory } = setup("packed");
  post(q, [1, 2, 3], 1500, false);
  post(q, [4], 800, false);
  dev.batch(4, 0);
  // As DPDK's vhost does: the first descriptor's length left there, no WRITE flag.
  new DataView(memory).setUint32(8, 1500, true);
  assert.deepEqual(take(q), { tokens: [1, 2, 3, 4], lens: [0, 0, 0, 0] });
});

for (const f of FORMATS) {
  Deno.test(`${f}, in order: another thread sees a batch returned with one used entry as used whole`, () => {
    const { q, dev, memory, opts } = setup(f);
    post(q, [1, 2, 3, 4, 5]);
    dev.poll();
    dev.batch(4, 0); // one used entry for the first four buffers
    // A second queue object over the same ring, as the main thread has during a steering
    // switch: it reads the ring (and a packed ring's shadow), not the owner's fields.
    const observer = createVirtqueue(f, memory, 0, opts, q.exportState());
    assert.equal(observer.deviceUsedIdx(), 4);
  });
}
