/**
 * SplitQueue (src/virtio/split_queue.ts) over a plain ArrayBuffer. The test plays the
 * device: it reads descriptors and the available ring, and writes used-ring entries,
 * through its own DataView (explicitly little-endian, virtio 1.x §2.7).
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import {
  type SplitRingLayout,
  splitRingLayout,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
} from "../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";

/** The device side of a split virtqueue, as §2.7 describes it. */
class FakeDevice {
  readonly v: DataView;
  readonly l: SplitRingLayout;
  readonly base: number;
  /** Next available-ring index the device will read. */
  lastAvail = 0;
  /** The device's used->idx. */
  usedIdx = 0;

  constructor(memory: ArrayBuffer, base: number, size: number) {
    this.v = new DataView(memory);
    this.l = splitRingLayout(size);
    this.base = base;
  }

  get availFlags(): number {
    return this.v.getUint16(this.base + this.l.availOffset, true);
  }
  get availIdx(): number {
    return this.v.getUint16(this.base + this.l.availOffset + 2, true);
  }
  availRing(slot: number): number {
    return this.v.getUint16(this.base + this.l.availOffset + 4 + 2 * slot, true);
  }
  desc(d: number): { addr: bigint; len: number; flags: number; next: number } {
    const at = this.base + this.l.descOffset + 16 * d;
    return {
      addr: this.v.getBigUint64(at, true),
      len: this.v.getUint32(at + 8, true),
      flags: this.v.getUint16(at + 12, true),
      next: this.v.getUint16(at + 14, true),
    };
  }
  /** Reads every newly available descriptor id. */
  takeAvail(): number[] {
    const ids: number[] = [];
    const end = this.availIdx;
    while (this.lastAvail !== end) {
      ids.push(this.availRing(this.lastAvail & (this.l.size - 1)));
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
    }
    return ids;
  }
  /** Writes a used entry without publishing it. */
  writeUsed(id: number, len: number): void {
    const slot = this.usedIdx & (this.l.size - 1);
    const at = this.base + this.l.usedOffset + 4 + 8 * slot;
    this.v.setUint32(at, id, true);
    this.v.setUint32(at + 4, len, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
  }
  /** Publishes used->idx. */
  publishUsed(idx = this.usedIdx): void {
    this.v.setUint16(this.base + this.l.usedOffset + 2, idx, true);
  }
  /** Returns buffers used, in the given order. */
  use(entries: [id: number, len: number][]): void {
    for (const [id, len] of entries) this.writeUsed(id, len);
    this.publishUsed();
  }
  set usedFlags(f: number) {
    this.v.setUint16(this.base + this.l.usedOffset, f, true);
  }
  set availEvent(idx: number) {
    this.v.setUint16(this.base + this.l.usedOffset + 4 + 8 * this.l.size, idx, true);
  }
}

function setup(size: number, opts: { eventIdx?: boolean; base?: number } = {}) {
  const base = opts.base ?? 0;
  const memory = new ArrayBuffer(base + splitRingLayout(size).totalBytes + 256);
  let notified = 0;
  const q = new SplitQueue(memory, base, {
    index: 3,
    size,
    eventIdx: opts.eventIdx ?? false,
    notify: { notify: () => notified++ },
    name: "transmitq1 of test",
  });
  const dev = new FakeDevice(memory, base, size);
  return { q, dev, memory, notified: () => notified };
}

/** Posts tokens with the token as the low IOVA word, so the device can see which is which. */
function post(q: SplitQueue, tokens: number[], len = 2048, writable = true): void {
  for (const t of tokens) assert.equal(q.add(t, t, 0, len, writable), true, `add ${t}`);
}

function take(q: SplitQueue, max = q.size): { tokens: number[]; lens: number[] } {
  const tokens = new Uint32Array(max), lens = new Uint32Array(max);
  const n = q.takeUsed(tokens, lens, 0, max);
  return { tokens: [...tokens.subarray(0, n)], lens: [...lens.subarray(0, n)] };
}

function assertMisbehaved(fn: () => unknown, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.equal(e.code, "DEVICE_MISBEHAVED");
    assert.match(e.message, /transmitq1 of test/);
    assert.match(e.message, what);
    return true;
  });
}

Deno.test("the constructor zeroes the rings, asks for no interrupts and touches nothing else", () => {
  const size = 16, base = 512;
  const l = splitRingLayout(size);
  const memory = new ArrayBuffer(base + l.totalBytes + 128);
  new Uint8Array(memory).fill(0xee);
  const q = new SplitQueue(memory, base, {
    index: 0,
    size,
    eventIdx: false,
    notify: { notify() {} },
    name: "q",
  });
  const bytes = new Uint8Array(memory);
  assert.ok(bytes.subarray(0, base).every((b) => b === 0xee), "bytes before the rings");
  assert.ok(bytes.subarray(base + l.totalBytes).every((b) => b === 0xee), "bytes after");
  const dev = new FakeDevice(memory, base, size);
  assert.equal(dev.availFlags, VIRTQ_AVAIL_F_NO_INTERRUPT);
  assert.equal(dev.availIdx, 0);
  const ring = bytes.subarray(base, base + l.totalBytes);
  assert.equal(ring.reduce((a, b) => a + b, 0), VIRTQ_AVAIL_F_NO_INTERRUPT, "all else zero");
  assert.equal(q.freeCount, size);
  assert.equal(q.inFlight, 0);
  assert.equal(q.index, 0);
  assert.equal(q.size, size);
});

Deno.test("add() writes one descriptor and an avail slot; publish() makes them visible", () => {
  const { q, dev } = setup(8, { base: 64 });
  assert.equal(q.add(100, 0x2345_6000, 0x1, 1536, true), true);
  assert.equal(q.add(101, 0xffff_f000, 0x7f, 60, false), true);
  assert.equal(dev.availIdx, 0, "not visible before publish()");
  q.publish();
  assert.equal(dev.availIdx, 2);
  const [d0, d1] = [dev.availRing(0), dev.availRing(1)];
  assert.deepEqual(dev.desc(d0), {
    addr: 0x1_2345_6000n,
    len: 1536,
    flags: VIRTQ_DESC_F_WRITE,
    next: 0,
  });
  assert.deepEqual(dev.desc(d1), { addr: 0x7f_ffff_f000n, len: 60, flags: 0, next: 0 });
  assert.notEqual(d0, d1);
  assert.equal(q.freeCount, 6);
  assert.equal(q.inFlight, 2);
});

Deno.test("takeUsed() returns tokens in used-ring order with the lengths the device wrote", () => {
  const { q, dev } = setup(8);
  post(q, [10, 11, 12, 13]);
  q.publish();
  const ids = dev.takeAvail();
  const tokenOf = (id: number) => Number(dev.desc(id).addr);
  // The device completes out of order: 12, 10, 13, 11.
  const order = [2, 0, 3, 1].map((i) => ids[i]);
  dev.use(order.map((id, k) => [id, 100 + k]));
  const got = take(q);
  assert.deepEqual(got.tokens, order.map(tokenOf));
  assert.deepEqual(got.tokens, [12, 10, 13, 11]);
  assert.deepEqual(got.lens, [100, 101, 102, 103]);
  assert.equal(q.inFlight, 0);
  assert.deepEqual(take(q).tokens, [], "nothing more");
});

Deno.test("takeUsed() takes at most `max` entries and writes from index `at`", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2, 3, 4, 5]);
  q.publish();
  dev.use(dev.takeAvail().map((id) => [id, 64]));
  const tokens = new Uint32Array(8).fill(0xdead), lens = new Uint32Array(8).fill(0xdead);
  assert.equal(q.takeUsed(tokens, lens, 2, 3), 3);
  assert.deepEqual([...tokens], [0xdead, 0xdead, 1, 2, 3, 0xdead, 0xdead, 0xdead]);
  assert.deepEqual([...lens], [0xdead, 0xdead, 64, 64, 64, 0xdead, 0xdead, 0xdead]);
  assert.equal(q.inFlight, 2);
  assert.equal(q.takeUsed(tokens, lens, 0, 8), 2);
  assert.deepEqual([...tokens.subarray(0, 2)], [4, 5]);
  assert.equal(q.inFlight, 0);
});

Deno.test("a length of zero and a length equal to the posted length are accepted", () => {
  const { q, dev } = setup(4);
  post(q, [7, 8], 1500);
  q.publish();
  const [a, b] = dev.takeAvail();
  dev.use([[a, 0], [b, 1500]]);
  assert.deepEqual(take(q), { tokens: [7, 8], lens: [0, 1500] });
});

Deno.test("used descriptors are reused by later add() calls, never one in flight", () => {
  const { q, dev } = setup(4);
  post(q, [0, 1, 2, 3]);
  q.publish();
  const ids = dev.takeAvail();
  assert.deepEqual([...ids].sort(), [0, 1, 2, 3], "each descriptor once");
  dev.use([[ids[2], 1], [ids[0], 1]]);
  assert.deepEqual(take(q).tokens, [2, 0]);
  assert.equal(q.freeCount, 2);
  post(q, [20, 21]);
  q.publish();
  const again = dev.takeAvail();
  assert.deepEqual([...again].sort(), [ids[0], ids[2]].sort(), "the two freed descriptors");
  assert.deepEqual(again.map((id) => Number(dev.desc(id).addr)).sort(), [20, 21]);
  // Slots 4 and 5 wrap to ring slots 0 and 1.
  assert.deepEqual([dev.availRing(0), dev.availRing(1)], again);
});

Deno.test("add() returns false on a full ring and changes nothing", () => {
  const { q, dev } = setup(4);
  post(q, [1, 2, 3, 4]);
  assert.equal(q.freeCount, 0);
  assert.equal(q.inFlight, 4);
  assert.equal(q.add(5, 5, 0, 64, true), false);
  q.publish();
  assert.equal(dev.availIdx, 4);
  assert.deepEqual(dev.takeAvail().map((id) => Number(dev.desc(id).addr)), [1, 2, 3, 4]);
});

Deno.test("publish() with nothing new neither stores nor notifies", () => {
  const { q, dev, notified } = setup(8);
  q.publish();
  assert.equal(dev.availIdx, 0);
  assert.equal(notified(), 0);
  assert.equal(q.kicks + q.kicksSuppressed, 0);
  post(q, [1]);
  q.publish();
  q.publish(); // same index again
  assert.equal(notified(), 1);
  assert.equal(q.kicks, 1);
  assert.equal(q.kicksSuppressed, 0);
});

Deno.test("publish() notifies once per burst unless used flags say VIRTQ_USED_F_NO_NOTIFY", () => {
  const { q, dev, notified } = setup(8);
  post(q, [1, 2, 3]);
  q.publish();
  assert.equal(dev.availIdx, 3);
  assert.equal(notified(), 1, "one notification for three buffers");
  assert.equal(q.kicks, 1);

  dev.usedFlags = VIRTQ_USED_F_NO_NOTIFY;
  post(q, [4]);
  q.publish();
  assert.equal(dev.availIdx, 4, "the index is published even when the kick is suppressed");
  assert.equal(notified(), 1);
  assert.equal(q.kicks, 1);
  assert.equal(q.kicksSuppressed, 1);

  dev.usedFlags = 0;
  post(q, [5]);
  q.publish();
  assert.equal(notified(), 2);
  assert.deepEqual([q.kicks, q.kicksSuppressed], [2, 1]);
});

Deno.test("with EVENT_IDX publish() notifies only when avail_event lies in [old, new)", () => {
  const { q, dev, notified } = setup(8, { eventIdx: true });
  dev.usedFlags = VIRTQ_USED_F_NO_NOTIFY; // ignored with EVENT_IDX (§2.7.10)
  dev.availEvent = 0;
  post(q, [1, 2, 3]);
  q.publish(); // 0 -> 3, event 0: notify
  assert.deepEqual([notified(), q.kicks, q.kicksSuppressed], [1, 1, 0]);

  dev.availEvent = 2; // already passed
  post(q, [4, 5]);
  q.publish(); // 3 -> 5
  assert.deepEqual([notified(), q.kicks, q.kicksSuppressed], [1, 1, 1]);

  dev.availEvent = 7; // not reached by 5 -> 7
  post(q, [6, 7]);
  q.publish();
  assert.deepEqual([notified(), q.kicks, q.kicksSuppressed], [1, 1, 2]);

  dev.availEvent = 7; // reached by 7 -> 8
  dev.use(dev.takeAvail().map((id) => [id, 1]));
  take(q);
  post(q, [8]);
  q.publish();
  assert.deepEqual([notified(), q.kicks, q.kicksSuppressed], [2, 2, 2]);
});

Deno.test("16-bit indices wrap correctly over more than 65536 buffers", () => {
  for (const eventIdx of [false, true]) {
    const size = 8;
    const { q, dev, notified } = setup(size, { eventIdx });
    let nextToken = 0;
    let expected: number[] = [];
    let received = 0;
    let publishes = 0, wantKicks = 0;
    for (let round = 0; received < 140_000; round++) {
      const burst = 1 + (round % size);
      const tokens: number[] = [];
      while (tokens.length < burst && q.freeCount > 0) tokens.push(nextToken++ & 0xfffff);
      post(q, tokens, 2048);
      // With EVENT_IDX the device asks for a kick on every other burst.
      if (eventIdx) {
        const kick = round % 2 === 0;
        dev.availEvent = kick ? dev.lastAvail : (dev.lastAvail - 1) & 0xffff;
        if (kick) wantKicks++;
      } else {
        wantKicks++;
      }
      q.publish();
      publishes++;
      // The device completes what it got, reversing the order on odd rounds.
      const ids = dev.takeAvail();
      if (round % 2) ids.reverse();
      expected = expected.concat(ids.map((id) => Number(dev.desc(id).addr)));
      dev.use(ids.map((id) => [id, Number(dev.desc(id).addr) % 2049]));
      // The driver takes them in chunks of 3.
      for (;;) {
        const got = take(q, 3);
        if (got.tokens.length === 0) break;
        const want = expected.splice(0, got.tokens.length);
        assert.deepEqual(got.tokens, want, `round ${round}`);
        assert.deepEqual(got.lens, want.map((t) => t % 2049));
        received += got.tokens.length;
      }
      assert.equal(q.inFlight, 0);
    }
    assert.equal(dev.availIdx, nextToken & 0xffff, "avail->idx is the count mod 2^16");
    assert.equal(dev.usedIdx, received & 0xffff);
    assert.ok(nextToken > 2 * 65536);
    assert.equal(q.kicks, wantKicks, `kicks, eventIdx=${eventIdx}`);
    assert.equal(q.kicks + q.kicksSuppressed, publishes);
    assert.equal(notified(), q.kicks);
  }
});

// ---------------------------------------------------------------------------------------
// Validation of device input: a bad used entry is reported, nothing of it is handed out.
// ---------------------------------------------------------------------------------------

/** Runs takeUsed expecting DEVICE_MISBEHAVED and checks that nothing was handed out. */
function assertRejected(q: SplitQueue, what: RegExp): void {
  const free = q.freeCount;
  const tokens = new Uint32Array(q.size).fill(0xdead), lens = new Uint32Array(q.size).fill(0xbeef);
  assertMisbehaved(() => q.takeUsed(tokens, lens, 0, q.size), what);
  assert.ok(tokens.every((t) => t === 0xdead), "no token handed out");
  assert.ok(lens.every((t) => t === 0xbeef), "no length handed out");
  assert.equal(q.freeCount, free, "no descriptor freed");
}

Deno.test("takeUsed() rejects a descriptor id outside the ring", () => {
  for (const bad of [8, 9, 0xffff, 0x1_0000, 0xffff_ffff]) {
    const { q, dev } = setup(8);
    post(q, [1, 2]);
    q.publish();
    dev.takeAvail();
    dev.use([[bad, 10]]);
    assertRejected(q, new RegExp(`descriptor ${bad}, which is not in flight`));
  }
});

Deno.test("takeUsed() rejects a descriptor that is not in flight", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2]);
  q.publish();
  const ids = dev.takeAvail();
  const idle = [0, 1, 2, 3, 4, 5, 6, 7].find((d) => !ids.includes(d))!;
  dev.use([[idle, 10]]);
  assertRejected(q, /not in flight/);
});

Deno.test("takeUsed() rejects a descriptor returned a second time", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2]);
  q.publish();
  const [a] = dev.takeAvail();
  dev.use([[a, 10]]);
  assert.deepEqual(take(q).tokens, [1]);
  dev.use([[a, 10]]); // again
  assertRejected(q, /not in flight/);
});

Deno.test("takeUsed() rejects a length larger than the buffer posted", () => {
  const { q, dev } = setup(8);
  post(q, [1], 1536);
  q.publish();
  const [a] = dev.takeAvail();
  dev.use([[a, 1537]]);
  assertRejected(q, /1537 bytes written into a 1536-byte buffer/);
});

Deno.test("takeUsed() rejects used->idx running ahead of the buffers in flight", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2]);
  q.publish();
  const ids = dev.takeAvail();
  dev.writeUsed(ids[0], 1);
  dev.writeUsed(ids[1], 1);
  dev.publishUsed(3); // three used with two in flight
  assertRejected(q, /runs 3 entries ahead with only 2 buffers in flight/);
  // A wildly wrong index (a device that went backwards) is caught the same way.
  dev.publishUsed(0xfff0);
  assertRejected(q, /ahead/);
});

Deno.test("takeUsed() rejects one descriptor used twice in the same batch", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2]);
  q.publish();
  const [a] = dev.takeAvail();
  dev.use([[a, 1], [a, 1]]);
  assert.throws(() => take(q), (e) => e instanceof DriverError && e.code === "DEVICE_MISBEHAVED");
});

Deno.test("takeUsed() with a bad entry after good ones hands out nothing and frees nothing", () => {
  // The queue's contract: "a bad entry throws DEVICE_MISBEHAVED before anything of it is
  // used" / "no buffer was reused". A batch is [good, bad]: the good entry's descriptor must
  // not go back to the free list while its token is lost with the exception.
  const { q, dev } = setup(8);
  post(q, [1, 2]);
  q.publish();
  const [a] = dev.takeAvail();
  dev.use([[a, 10], [7, 10]]); // descriptor 7 was never posted
  const tokens = new Uint32Array(8), lens = new Uint32Array(8);
  assertMisbehaved(() => q.takeUsed(tokens, lens, 0, 8), /descriptor 7, which is not in flight/);
  assert.equal(q.inFlight, 2, "both buffers still belong to the device (none freed)");
  assert.equal(q.freeCount, 6);
  // Taking again reports the same bad entry, not the good one as "not in flight".
  assertMisbehaved(() => q.takeUsed(tokens, lens, 0, 8), /descriptor 7, which is not in flight/);
});

// ---------------------------------------------------------------------------------------
// Two-descriptor chains (addChain: a control command and its ack, §5.1.6.5).
// ---------------------------------------------------------------------------------------

Deno.test("addChain() posts a device-readable head linked to a device-writable tail", () => {
  const { q, dev } = setup(8);
  assert.equal(q.addChain(77, 0x1000, 1, 16, 0x2000, 1, 1), true);
  assert.equal(q.freeCount, 6, "two descriptors");
  q.publish();
  const [head] = dev.takeAvail();
  const h = dev.desc(head);
  assert.equal(h.addr, 0x1_0000_1000n);
  assert.equal(h.len, 16);
  assert.equal(h.flags, VIRTQ_DESC_F_NEXT, "device-readable, continues in next");
  assert.notEqual(h.next, head);
  assert.deepEqual(dev.desc(h.next), {
    addr: 0x1_0000_2000n,
    len: 1,
    flags: VIRTQ_DESC_F_WRITE,
    next: 0,
  });
  // The used length counts the bytes written into the tail (§2.7.8).
  dev.use([[head, 1]]);
  assert.deepEqual(take(q), { tokens: [77], lens: [1] });
  assert.equal(q.freeCount, 8, "both descriptors come back");
});

Deno.test("addChain() returns false when fewer than two descriptors are free", () => {
  const { q } = setup(4);
  post(q, [1, 2, 3]);
  assert.equal(q.addChain(9, 0, 1, 16, 0x100, 1, 1), false);
  assert.equal(q.freeCount, 1);
});

Deno.test("takeUsed() rejects a chain reported by its tail or with more bytes than the tail", () => {
  {
    const { q, dev } = setup(8);
    q.addChain(5, 0x1000, 1, 16, 0x2000, 1, 1);
    q.publish();
    const [head] = dev.takeAvail();
    dev.use([[dev.desc(head).next, 1]]);
    assertRejected(q, /not in flight/);
  }
  {
    const { q, dev } = setup(8);
    q.addChain(5, 0x1000, 1, 16, 0x2000, 1, 1);
    q.publish();
    const [head] = dev.takeAvail();
    dev.use([[head, 16]]); // the head's readable length, not the tail's writable one
    assertRejected(q, /16 bytes written into a 1-byte buffer/);
  }
});

/** used_event: the u16 after the available ring (§2.7.6, "le16 used_event"). */
function usedEvent(dev: FakeDevice): number {
  return dev.v.getUint16(dev.base + dev.l.availOffset + 4 + 2 * dev.l.size, true);
}

Deno.test("enableInterrupts() clears VIRTQ_AVAIL_F_NO_INTERRUPT and sets used_event to the next used index", () => {
  for (const eventIdx of [false, true]) {
    const { q, dev } = setup(8, { eventIdx });
    post(q, [1, 2, 3]);
    q.publish();
    dev.takeAvail();
    dev.use([[0, 10], [1, 10]]);
    take(q);
    assert.equal(q.interruptsEnabled, false);
    assert.equal(q.enableInterrupts(), false, "nothing waits");
    assert.equal(dev.availFlags, 0);
    assert.equal(usedEvent(dev), 2, "the device notifies when used->idx passes 2");
    assert.equal(q.interruptsEnabled, true);
  }
});

Deno.test("enableInterrupts() reports used buffers that arrived before it (no notification will come)", () => {
  const { q, dev } = setup(8, { eventIdx: true });
  post(q, [1, 2]);
  q.publish();
  dev.takeAvail();
  dev.use([[0, 10]]);
  assert.equal(q.hasUsed(), true);
  assert.equal(q.enableInterrupts(), true);
  take(q);
  assert.equal(q.hasUsed(), false);
  assert.equal(q.enableInterrupts(), false);
});

Deno.test("disableInterrupts() sets the flag and puts used_event one behind the used index read", () => {
  const { q, dev } = setup(8, { eventIdx: true });
  q.disableInterrupts();
  assert.equal(dev.availFlags, VIRTQ_AVAIL_F_NO_INTERRUPT);
  assert.equal(usedEvent(dev), 0xffff, "behind used index 0, wrapped");
  post(q, [1, 2, 3]);
  q.publish();
  dev.takeAvail();
  dev.use([[0, 10], [1, 10], [2, 10]]);
  take(q);
  q.enableInterrupts();
  q.disableInterrupts();
  assert.equal(dev.availFlags, VIRTQ_AVAIL_F_NO_INTERRUPT);
  assert.equal(usedEvent(dev), 2);
  assert.equal(q.interruptsEnabled, false);
  // A device following §2.7.10 would not notify for the next buffers: vring_need_event
  // (used_event, new, old) is false for new = 4, old = 3.
  const needEvent = (ev: number, nw: number, old: number) =>
    ((nw - ev - 1) & 0xffff) < ((nw - old) & 0xffff);
  assert.equal(needEvent(usedEvent(dev), 4, 3), false);
  assert.equal(needEvent(usedEvent(dev), 3 + 100, 3), false);
});

Deno.test("enabling and disabling interrupts leaves the rings' buffers and counters alone", () => {
  const { q, dev, notified } = setup(8);
  post(q, [5, 6]);
  q.publish();
  const before = notified();
  q.enableInterrupts();
  q.disableInterrupts();
  assert.equal(notified(), before, "no notification to the device");
  assert.equal(dev.availIdx, 2);
  assert.deepEqual(dev.takeAvail().length, 2);
  assert.equal(q.inFlight, 2);
});

/**
 * A `lens` output array laid over used element 0's id: the queue's own store of the
 * length it took rewrites the id right after it was checked, as a device writing the ring
 * between the check and the commit would (deterministically, without a second thread).
 */
function lensOverUsedId(memory: ArrayBuffer, dev: FakeDevice, n: number): Uint32Array {
  return new Uint32Array(memory, dev.base + dev.l.usedOffset + 4, n);
}

Deno.test("a used id rewritten after validation is not put on the free list", () => {
  const { q, dev, memory } = setup(8);
  post(q, [100, 101, 102, 103, 104, 105]); // descriptors 0…5
  q.publish();
  dev.takeAvail();
  dev.use([[2, 5]]); // descriptor 2, 5 bytes: the id becomes 5 once the length is stored
  const tokens = new Uint32Array(1), lens = lensOverUsedId(memory, dev, 1);
  assert.equal(q.takeUsed(tokens, lens, 0, 1), 1);
  assert.equal(tokens[0], 102);
  const s = q.exportState();
  const free = [...s.freeDesc.subarray(0, s.numFree)];
  assert.ok(free.includes(2), `descriptor 2 was returned, so it is free: free list ${free}`);
  assert.ok(!free.includes(5), `descriptor 5 is still in flight: free list ${free}`);
  assert.deepEqual([...s.token], [100, 101, -1, 103, 104, 105, -1, -1]);
});

Deno.test("a refused batch puts back the tokens of the ids it checked, not of ids rewritten since", () => {
  const { q, dev, memory } = setup(8);
  post(q, [100, 101, 102, 103, 104, 105]);
  q.publish();
  dev.takeAvail();
  dev.use([[2, 5], [7, 10]]); // the second names a free descriptor: the batch is refused
  const tokens = new Uint32Array(2), lens = lensOverUsedId(memory, dev, 2);
  assertMisbehaved(() => q.takeUsed(tokens, lens, 0, 2), /descriptor 7, which is not in flight/);
  const s = q.exportState();
  assert.deepEqual([...s.token], [100, 101, 102, 103, 104, 105, -1, -1]);
  assert.equal(s.numFree, 2);
});
