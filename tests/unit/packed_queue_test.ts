/**
 * PackedQueue (src/virtio/packed_queue.ts) over a plain ArrayBuffer. The test plays the
 * device: it reads available descriptors by the wrap-counter rule and writes used
 * descriptors (id, len, then flags) through its own DataView, little-endian (virtio 1.x
 * §2.8).
 */

import assert from "node:assert/strict";
import { DriverError } from "../../src/errors.ts";
import {
  type PackedRingLayout,
  packedRingLayout,
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
} from "../../src/virtio/packed_ring_math.ts";
import { PackedQueue } from "../../src/virtio/packed_queue.ts";
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "../../src/virtio/ring_math.ts";

interface Desc {
  addr: bigint;
  len: number;
  id: number;
  flags: number;
}

/** One buffer the device read: its buffer id (the last descriptor's) and descriptors. */
interface Avail {
  id: number;
  descs: Desc[];
}

/** The device side of a packed virtqueue, as §2.8 describes it. */
class FakePackedDevice {
  readonly v: DataView;
  readonly l: PackedRingLayout;
  readonly base: number;
  readonly size: number;
  /** Free-running position of the next descriptor the device reads. */
  availPos = 0;
  /** Free-running position of the next used descriptor the device writes. */
  usedPos = 0;

  constructor(memory: ArrayBuffer, base: number, size: number) {
    this.v = new DataView(memory);
    this.l = packedRingLayout(size);
    this.base = base;
    this.size = size;
  }

  /** The wrap counter of a position (§2.8.1: 1 in the first lap). */
  wrap(pos: number): number {
    return (Math.floor((pos & 0xffff) / this.size) & 1) ^ 1;
  }
  desc(slot: number): Desc {
    const at = this.base + this.l.descOffset + 16 * slot;
    return {
      addr: this.v.getBigUint64(at, true),
      len: this.v.getUint32(at + 8, true),
      id: this.v.getUint16(at + 12, true),
      flags: this.v.getUint16(at + 14, true),
    };
  }
  flagsAt(pos: number): number {
    return this.desc(pos & (this.size - 1)).flags;
  }
  /** §2.8.1: available when AVAIL equals the position's wrap counter and USED does not. */
  isAvail(pos: number): boolean {
    const f = this.flagsAt(pos), w = this.wrap(pos);
    return ((f & VIRTQ_DESC_F_AVAIL) !== 0 ? 1 : 0) === w &&
      ((f & VIRTQ_DESC_F_USED) !== 0 ? 1 : 0) !== w;
  }
  /** Reads every newly available buffer, following NEXT through chains. */
  takeAvail(): Avail[] {
    const out: Avail[] = [];
    while (this.isAvail(this.availPos)) {
      const descs: Desc[] = [];
      for (;;) {
        const d = this.desc(this.availPos & (this.size - 1));
        descs.push(d);
        this.availPos = (this.availPos + 1) & 0xffff;
        if ((d.flags & VIRTQ_DESC_F_NEXT) === 0) break;
        assert.ok(this.isAvail(this.availPos), "a chain's tail is available with its head");
      }
      out.push({ id: descs[descs.length - 1].id, descs });
    }
    return out;
  }
  /** Writes one used descriptor (id, len, then flags) and skips `descs` slots (§2.8.6). */
  writeUsed(id: number, len: number, descs = 1): void {
    const at = this.base + this.l.descOffset + 16 * (this.usedPos & (this.size - 1));
    this.v.setUint32(at + 8, len, true);
    this.v.setUint16(at + 12, id, true);
    const w = this.wrap(this.usedPos) ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0;
    this.v.setUint16(at + 14, w | (len > 0 ? VIRTQ_DESC_F_WRITE : 0), true);
    this.usedPos = (this.usedPos + descs) & 0xffff;
  }
  /** Returns buffers used, in the given order. */
  use(entries: [id: number, len: number, descs?: number][]): void {
    for (const [id, len, descs] of entries) this.writeUsed(id, len, descs ?? 1);
  }
  /** The device event suppression area (written by the device, §2.8.10). */
  setDeviceEvent(flags: number, offWrap = 0): void {
    this.v.setUint16(this.base + this.l.deviceOffset, offWrap, true);
    this.v.setUint16(this.base + this.l.deviceOffset + 2, flags, true);
  }
  /** Asks for a notification when the driver makes position `pos` available. */
  eventAt(pos: number): void {
    this.setDeviceEvent(RING_EVENT_FLAGS_DESC, (pos & (this.size - 1)) | (this.wrap(pos) << 15));
  }
  get driverFlags(): number {
    return this.v.getUint16(this.base + this.l.driverOffset + 2, true);
  }
  get driverOffWrap(): number {
    return this.v.getUint16(this.base + this.l.driverOffset, true);
  }
}

function setup(size: number, opts: { eventIdx?: boolean; base?: number } = {}) {
  const base = opts.base ?? 0;
  const memory = new ArrayBuffer(base + packedRingLayout(size).totalBytes + 256);
  let notified = 0;
  const q = new PackedQueue(memory, base, {
    index: 3,
    size,
    eventIdx: opts.eventIdx ?? false,
    notify: { notify: () => notified++ },
    name: "transmitq1 of test",
  });
  const dev = new FakePackedDevice(memory, base, size);
  return { q, dev, memory, notified: () => notified };
}

/** Posts tokens with the token as the low IOVA word, so the device can see which is which. */
function post(q: PackedQueue, tokens: number[], len = 2048, writable = true): void {
  for (const t of tokens) assert.equal(q.add(t, t, 0, len, writable), true, `add ${t}`);
}

function take(q: PackedQueue, max = q.size): { tokens: number[]; lens: number[] } {
  const tokens = new Uint32Array(max), lens = new Uint32Array(max);
  const n = q.takeUsed(tokens, lens, 0, max);
  return { tokens: [...tokens.subarray(0, n)], lens: [...lens.subarray(0, n)] };
}

const tokenOf = (a: Avail) => Number(a.descs[0].addr);

function assertMisbehaved(fn: () => unknown, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DriverError, `expected DriverError, got ${e}`);
    assert.equal(e.code, "DEVICE_MISBEHAVED");
    assert.match(e.message, /transmitq1 of test/);
    assert.match(e.message, what);
    return true;
  });
}

Deno.test("the constructor zeroes the ring, asks for no interrupts and touches nothing else", () => {
  const size = 16, base = 512;
  const l = packedRingLayout(size);
  const memory = new ArrayBuffer(base + l.totalBytes + 128);
  new Uint8Array(memory).fill(0xee);
  const q = new PackedQueue(memory, base, {
    index: 0,
    size,
    eventIdx: false,
    notify: { notify() {} },
    name: "q",
  });
  const bytes = new Uint8Array(memory);
  assert.ok(bytes.subarray(0, base).every((b) => b === 0xee), "bytes before the ring");
  assert.ok(bytes.subarray(base + l.totalBytes).every((b) => b === 0xee), "bytes after");
  const dev = new FakePackedDevice(memory, base, size);
  assert.equal(dev.driverFlags, RING_EVENT_FLAGS_DISABLE);
  const ring = bytes.subarray(base, base + l.totalBytes);
  assert.equal(ring.reduce((a, b) => a + b, 0), RING_EVENT_FLAGS_DISABLE, "all else zero");
  assert.equal(q.interruptsEnabled, false);
  assert.deepEqual([q.freeCount, q.inFlight, q.lastUsedIdx, q.publishedIdx], [size, 0, 0, 0]);
  assert.equal(q.ringBytes, l.totalBytes);
  assert.equal(q.hasUsed(), false);
});

Deno.test("packedRingLayout() aligns the parts and leaves room for the shadow", () => {
  for (const size of [1, 2, 8, 256, 32768]) {
    const l = packedRingLayout(size);
    assert.equal(l.descOffset, 0);
    assert.ok(l.driverOffset >= 16 * size && l.driverOffset % 64 === 0);
    assert.ok(l.deviceOffset >= l.driverOffset + 4 && l.deviceOffset % 64 === 0);
    assert.ok(l.shadowOffset >= l.deviceOffset + 4 && l.shadowOffset % 64 === 0);
    assert.equal(l.totalBytes, l.shadowOffset + 8 + 12 * size);
  }
  assert.throws(() => packedRingLayout(100), RangeError);
  assert.throws(() => packedRingLayout(65536), RangeError);
});

Deno.test("add() makes a descriptor available with the wrap bits of its position, flags written last", () => {
  const { q, dev } = setup(8, { base: 64 });
  assert.equal(q.add(100, 0x2345_6000, 0x1, 1536, true), true);
  assert.equal(q.add(101, 0xffff_f000, 0x7f, 60, false), true);
  const [a, b] = dev.takeAvail();
  assert.deepEqual(a.descs, [{
    addr: 0x1_2345_6000n,
    len: 1536,
    id: a.id,
    flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_WRITE, // wrap counter 1: AVAIL set, USED clear
  }]);
  assert.deepEqual(b.descs, [{ addr: 0x7f_ffff_f000n, len: 60, id: b.id, flags: 0x80 }]);
  assert.notEqual(a.id, b.id);
  assert.ok(a.id < 8 && b.id < 8);
  assert.equal(q.freeCount, 6);
  assert.equal(q.inFlight, 2);
  assert.equal(q.publishedIdx, 0, "not yet published");
  q.publish();
  assert.equal(q.publishedIdx, 2);
});

Deno.test("in the second lap available descriptors carry USED set and AVAIL clear", () => {
  const { q, dev } = setup(4);
  post(q, [1, 2, 3, 4]);
  dev.use(dev.takeAvail().map((a) => [a.id, 1]));
  assert.equal(take(q).tokens.length, 4);
  post(q, [5]);
  assert.equal(dev.flagsAt(4), VIRTQ_DESC_F_USED | VIRTQ_DESC_F_WRITE);
  assert.deepEqual(dev.takeAvail().map(tokenOf), [5]);
});

Deno.test("takeUsed() returns tokens in used order with the lengths the device wrote", () => {
  const { q, dev } = setup(8);
  post(q, [10, 11, 12, 13]);
  q.publish();
  const avail = dev.takeAvail();
  // The device completes out of order: 12, 10, 13, 11.
  const order = [2, 0, 3, 1].map((i) => avail[i]);
  dev.use(order.map((a, k) => [a.id, 100 + k]));
  assert.equal(q.hasUsed(), true);
  const got = take(q);
  assert.deepEqual(got.tokens, [12, 10, 13, 11]);
  assert.deepEqual(got.lens, [100, 101, 102, 103]);
  assert.equal(q.inFlight, 0);
  assert.equal(q.hasUsed(), false);
  assert.deepEqual(take(q).tokens, [], "nothing more");
});

Deno.test("takeUsed() in order returns tokens as posted and frees their ids for reuse", () => {
  const { q, dev } = setup(4);
  post(q, [0, 1, 2, 3]);
  const avail = dev.takeAvail();
  assert.deepEqual(avail.map((a) => a.id).sort(), [0, 1, 2, 3], "each id once");
  dev.use(avail.slice(0, 2).map((a) => [a.id, 7]));
  assert.deepEqual(take(q), { tokens: [0, 1], lens: [7, 7] });
  assert.equal(q.freeCount, 2);
  post(q, [20, 21]);
  const again = dev.takeAvail();
  assert.deepEqual(again.map((a) => a.id).sort(), [avail[0].id, avail[1].id].sort());
  assert.deepEqual(again.map(tokenOf), [20, 21]);
});

Deno.test("takeUsed() takes at most `max` entries and writes from index `at`", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2, 3, 4, 5]);
  dev.use(dev.takeAvail().map((a) => [a.id, 64]));
  const tokens = new Uint32Array(8).fill(0xdead), lens = new Uint32Array(8).fill(0xdead);
  assert.equal(q.takeUsed(tokens, lens, 2, 3), 3);
  assert.deepEqual([...tokens], [0xdead, 0xdead, 1, 2, 3, 0xdead, 0xdead, 0xdead]);
  assert.deepEqual([...lens], [0xdead, 0xdead, 64, 64, 64, 0xdead, 0xdead, 0xdead]);
  assert.deepEqual([q.inFlight, q.lastUsedIdx], [2, 3]);
  assert.equal(q.takeUsed(tokens, lens, 6, 8), 2, "limited by the room left in the arrays");
  assert.deepEqual([...tokens.subarray(6)], [4, 5]);
  assert.equal(q.inFlight, 0);
});

Deno.test("a length of zero and a length equal to the posted length are accepted", () => {
  const { q, dev } = setup(4);
  post(q, [7, 8], 1500);
  const [a, b] = dev.takeAvail();
  dev.use([[a.id, 0], [b.id, 1500]]);
  assert.deepEqual(take(q), { tokens: [7, 8], lens: [0, 1500] });
});

Deno.test("add() returns false on a full ring and changes nothing", () => {
  const { q, dev } = setup(4);
  post(q, [1, 2, 3, 4]);
  assert.deepEqual([q.freeCount, q.inFlight], [0, 4]);
  assert.equal(q.add(5, 5, 0, 64, true), false);
  assert.equal(q.addChain(5, 5, 0, 16, 6, 0, 1), false);
  assert.deepEqual(dev.takeAvail().map(tokenOf), [1, 2, 3, 4]);
  assert.equal(dev.isAvail(4), false, "the slot of position 4 is not available in lap 2");
  // One back, one free slot again.
  dev.use([[dev.desc(2).id, 1]]);
  assert.deepEqual(take(q).tokens, [3]);
  assert.equal(q.add(6, 6, 0, 64, true), true);
  assert.equal(q.add(7, 7, 0, 64, true), false);
});

Deno.test("positions and wrap counters stay right over more than 65536 buffers", () => {
  for (const size of [8, 256]) {
    for (const eventIdx of [false, true]) {
      const { q, dev, notified } = setup(size, { eventIdx });
      let nextToken = 0, received = 0, publishes = 0, wantKicks = 0;
      let expected: number[] = [];
      for (let round = 0; received < 140_000; round++) {
        const burst = 1 + (round % size);
        const tokens: number[] = [];
        while (tokens.length < burst && q.freeCount > 0) tokens.push(nextToken++ & 0xfffff);
        post(q, tokens, 2048);
        // With EVENT_IDX the device asks for a kick on every other burst.
        if (eventIdx) {
          const kick = round % 2 === 0;
          if (kick) dev.eventAt(dev.availPos);
          else dev.eventAt(dev.availPos - 1);
          if (kick) wantKicks++;
        } else {
          wantKicks++;
        }
        q.publish();
        publishes++;
        // The device completes what it got, reversing the order on odd rounds.
        const avail = dev.takeAvail();
        if (round % 2) avail.reverse();
        expected = expected.concat(avail.map(tokenOf));
        dev.use(avail.map((a) => [a.id, tokenOf(a) % 2049]));
        for (;;) {
          const got = take(q, 3);
          if (got.tokens.length === 0) break;
          const want = expected.splice(0, got.tokens.length);
          assert.deepEqual(got.tokens, want, `size ${size}, round ${round}`);
          assert.deepEqual(got.lens, want.map((t) => t % 2049));
          received += got.tokens.length;
        }
        assert.equal(q.inFlight, 0);
        assert.equal(q.lastUsedIdx, received & 0xffff);
        assert.equal(q.deviceUsedIdx(), received & 0xffff);
      }
      assert.equal(dev.availPos, nextToken & 0xffff, "the device read every position once");
      assert.equal(dev.usedPos, received & 0xffff);
      assert.ok(nextToken > 2 * 65536);
      assert.equal(q.kicks, wantKicks, `kicks, size ${size}, eventIdx=${eventIdx}`);
      assert.equal(q.kicks + q.kicksSuppressed, publishes);
      assert.equal(notified(), q.kicks);
    }
  }
});

// ---------------------------------------------------------------------------------------
// Available-buffer notifications (§2.8.10): the device's event suppression area.
// ---------------------------------------------------------------------------------------

Deno.test("publish() with nothing new neither notifies nor counts", () => {
  const { q, notified } = setup(8);
  assert.equal(q.publish(), false);
  assert.equal(q.kicks + q.kicksSuppressed, 0);
  post(q, [1]);
  assert.equal(q.publish(), true);
  assert.equal(q.publish(), false);
  assert.deepEqual([notified(), q.kicks, q.kicksSuppressed], [1, 1, 0]);
});

Deno.test("publish() notifies once per burst under ENABLE and never under DISABLE", () => {
  const { q, dev, notified } = setup(8);
  const also = { n: 0, notify() {} };
  also.notify = () => also.n++;
  q.alsoNotify = [also];
  assert.equal(q.alsoNotifyCount, 1);
  assert.deepEqual(q.alsoNotify, [also]);
  post(q, [1, 2, 3]);
  assert.equal(q.publish(), true);
  assert.deepEqual([notified(), also.n, q.kicks], [1, 1, 1], "one notification for three");

  dev.setDeviceEvent(RING_EVENT_FLAGS_DISABLE);
  post(q, [4]);
  assert.equal(q.publish(), false);
  assert.deepEqual([notified(), also.n, q.kicks, q.kicksSuppressed], [1, 1, 1, 1]);
  assert.equal(dev.takeAvail().length, 4, "the descriptors are available all the same");

  dev.setDeviceEvent(RING_EVENT_FLAGS_ENABLE);
  post(q, [5]);
  assert.equal(q.publish(), true);
  assert.deepEqual([notified(), also.n, q.kicks, q.kicksSuppressed], [2, 2, 2, 1]);
  q.kick();
  assert.deepEqual([notified(), also.n, q.kicks], [3, 2, 3], "kick() notifies this queue only");
});

Deno.test("without EVENT_IDX, flags DESC are taken as ENABLE", () => {
  const { q, dev, notified } = setup(8);
  dev.setDeviceEvent(RING_EVENT_FLAGS_DESC, 0x8000 | 7); // far from [0, 2)
  post(q, [1, 2]);
  assert.equal(q.publish(), true);
  assert.equal(notified(), 1);
});

Deno.test("with EVENT_IDX and flags DESC publish() notifies only when the event position lies in [old, new)", () => {
  const { q, dev, notified } = setup(8, { eventIdx: true });
  dev.eventAt(0);
  post(q, [1, 2, 3]);
  assert.equal(q.publish(), true, "0 -> 3, event at 0");

  dev.eventAt(2); // already passed
  post(q, [4, 5]);
  assert.equal(q.publish(), false, "3 -> 5, event at 2");

  dev.eventAt(7); // not reached
  post(q, [6, 7]);
  assert.equal(q.publish(), false, "5 -> 7, event at 7");
  assert.deepEqual([notified(), q.kicks, q.kicksSuppressed], [1, 1, 2]);

  // Across the end of the ring: 7 -> 10 covers slot 7 (wrap 1), slots 0 and 1 (wrap 0).
  dev.use(dev.takeAvail().map((a) => [a.id, 1]));
  take(q);
  dev.eventAt(9); // slot 1, wrap counter 0
  post(q, [8, 9, 10]);
  assert.equal(q.publish(), true, "7 -> 10, event at 9 (slot 1 of lap 2)");
  dev.setDeviceEvent(RING_EVENT_FLAGS_DESC, 0x8000 | 3); // slot 3 with wrap 1: lap 3, later
  post(q, [11, 12]);
  assert.equal(q.publish(), false, "10 -> 12, event at position 3 (or 19): outside");
  dev.setDeviceEvent(RING_EVENT_FLAGS_DESC, 0 | 3); // slot 3, wrap 0: position 11, inside
  post(q, [13]);
  assert.equal(q.publish(), false, "12 -> 13: position 11 was passed before");
  dev.setDeviceEvent(RING_EVENT_FLAGS_DESC, 0 | 5); // slot 5, wrap 0: position 13
  post(q, [14]);
  assert.equal(q.publish(), true, "13 -> 14, event at 13");
  dev.setDeviceEvent(RING_EVENT_FLAGS_DESC, 0x8000 | 6); // wrap 1 = laps 0 and 2: position 6
  post(q, [15]);
  assert.equal(q.publish(), false, "14 -> 15, event at 6 (behind)");
  assert.deepEqual([notified(), q.kicks, q.kicksSuppressed], [3, 3, 5]);
});

Deno.test("with EVENT_IDX the event position is found across the 16-bit wrap of positions", () => {
  const { q, dev } = setup(8, { eventIdx: true });
  dev.setDeviceEvent(RING_EVENT_FLAGS_DISABLE);
  // Run positions up to 65534.
  for (let i = 0; i < 65534; i += 2) {
    post(q, [i, i + 1]);
    dev.use(dev.takeAvail().map((a) => [a.id, 0]));
    take(q);
  }
  q.publish();
  assert.equal(q.publishedIdx, 65534);
  dev.eventAt(0); // position 0 of the next 2^16 round: slot 0 with wrap counter 1
  post(q, [1, 2, 3]); // 65534 -> 1
  assert.equal(q.publish(), true);
  dev.eventAt(65535);
  post(q, [4]); // 1 -> 2
  assert.equal(q.publish(), false);
});

Deno.test("with EVENT_IDX an event offset outside the ring gets a notification", () => {
  const { q, dev } = setup(8, { eventIdx: true });
  dev.setDeviceEvent(RING_EVENT_FLAGS_DESC, 0x8000 | 100);
  post(q, [1]);
  assert.equal(q.publish(), true);
});

// ---------------------------------------------------------------------------------------
// Chains (addChain: a control command and its ack, §5.1.6.5, §2.8.6).
// ---------------------------------------------------------------------------------------

Deno.test("addChain() posts a readable head with NEXT and a writable tail, both with the buffer id", () => {
  const { q, dev } = setup(8);
  assert.equal(q.addChain(77, 0x1000, 1, 16, 0x2000, 1, 1), true);
  assert.equal(q.freeCount, 6, "two descriptor slots");
  const [chain] = dev.takeAvail();
  assert.deepEqual(chain.descs, [
    { addr: 0x1_0000_1000n, len: 16, id: chain.id, flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_NEXT },
    {
      addr: 0x1_0000_2000n,
      len: 1,
      id: chain.id,
      flags: VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_WRITE,
    },
  ]);
  dev.use([[chain.id, 1, 2]]);
  assert.deepEqual(take(q), { tokens: [77], lens: [1] });
  assert.deepEqual([q.freeCount, q.lastUsedIdx], [8, 2], "the chain's two slots skipped");
});

Deno.test("chains used out of order with single buffers skip their slots, also across the end", () => {
  const { q, dev } = setup(4);
  post(q, [1, 2, 3]);
  dev.use(dev.takeAvail().map((a) => [a.id, 0]));
  take(q); // positions 0..2 done: the next chain takes slots 3 and 0 (wrap 1, then 0)
  assert.equal(q.addChain(50, 0x50, 0, 16, 0x51, 0, 4), true);
  post(q, [60]);
  assert.deepEqual([q.freeCount, q.inFlight], [1, 3], "a chain takes two slots");
  const [chain, single] = dev.takeAvail();
  assert.deepEqual(chain.descs.map((d) => d.flags), [
    VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_NEXT, // position 3: wrap counter 1
    VIRTQ_DESC_F_USED | VIRTQ_DESC_F_WRITE, // position 4: wrap counter 0
  ]);
  assert.equal(tokenOf(single), 60);
  dev.use([[single.id, 5], [chain.id, 4, 2]]); // positions 3, then 4 and 5
  assert.deepEqual(take(q), { tokens: [60, 50], lens: [5, 4] });
  assert.deepEqual([q.lastUsedIdx, q.inFlight], [6, 0]);
});

Deno.test("addChain() returns false when fewer than two slots are free", () => {
  const { q } = setup(4);
  post(q, [1, 2, 3]);
  assert.equal(q.addChain(9, 0, 1, 16, 0x100, 1, 1), false);
  assert.equal(q.freeCount, 1);
});

// ---------------------------------------------------------------------------------------
// Validation of device input: a bad used descriptor is reported, nothing of it handed out.
// ---------------------------------------------------------------------------------------

/** Runs takeUsed expecting DEVICE_MISBEHAVED and checks that nothing was handed out. */
function assertRejected(q: PackedQueue, what: RegExp): void {
  const free = q.freeCount, last = q.lastUsedIdx;
  const tokens = new Uint32Array(q.size).fill(0xdead), lens = new Uint32Array(q.size).fill(0xbeef);
  assertMisbehaved(() => q.takeUsed(tokens, lens, 0, q.size), what);
  assert.ok(tokens.every((t) => t === 0xdead), "no token handed out");
  assert.ok(lens.every((t) => t === 0xbeef), "no length handed out");
  assert.equal(q.freeCount, free, "no slot freed");
  assert.equal(q.lastUsedIdx, last, "nothing taken");
}

Deno.test("takeUsed() rejects a buffer id outside the ring", () => {
  for (const bad of [8, 9, 0x7fff, 0xffff]) {
    const { q, dev } = setup(8);
    post(q, [1, 2]);
    dev.takeAvail();
    dev.use([[bad, 10]]);
    assertRejected(q, new RegExp(`names buffer ${bad}, which is not in flight`));
  }
});

Deno.test("takeUsed() rejects a buffer id that is not in flight", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2]);
  const ids = dev.takeAvail().map((a) => a.id);
  const idle = [0, 1, 2, 3, 4, 5, 6, 7].find((d) => !ids.includes(d))!;
  dev.use([[idle, 10]]);
  assertRejected(q, /not in flight/);
});

Deno.test("takeUsed() rejects a buffer returned a second time", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2]);
  const [a] = dev.takeAvail();
  dev.use([[a.id, 10]]);
  assert.deepEqual(take(q).tokens, [1]);
  dev.use([[a.id, 10]]); // again
  assertRejected(q, /not in flight/);
});

Deno.test("takeUsed() rejects one buffer id used twice in the same batch", () => {
  const { q, dev } = setup(8);
  post(q, [1, 2]);
  const [a] = dev.takeAvail();
  dev.use([[a.id, 1], [a.id, 1]]);
  assertRejected(q, new RegExp(`at 1 names buffer ${a.id}, which is not in flight`));
});

Deno.test("takeUsed() rejects a length larger than the buffer posted", () => {
  const { q, dev } = setup(8);
  post(q, [1], 1536);
  const [a] = dev.takeAvail();
  dev.use([[a.id, 1537]]);
  assertRejected(q, /1537 bytes written into a 1536-byte buffer/);
});

Deno.test("takeUsed() rejects a chain reported with more bytes than its writable tail", () => {
  const { q, dev } = setup(8);
  q.addChain(5, 0x1000, 1, 16, 0x2000, 1, 1);
  const [chain] = dev.takeAvail();
  dev.use([[chain.id, 16, 2]]); // the head's readable length, not the tail's writable one
  assertRejected(q, /16 bytes written into a 1-byte buffer/);
});

Deno.test("takeUsed() rejects used descriptors beyond the ones in flight", () => {
  {
    const { q, dev } = setup(8);
    dev.use([[0, 1]]); // nothing was ever made available
    assertRejected(q, /at 0 names buffer 0, which is not in flight/);
  }
  {
    const { q, dev } = setup(8);
    post(q, [1, 2]);
    const avail = dev.takeAvail();
    dev.use(avail.map((a) => [a.id, 1]));
    dev.use([[5, 1]]); // position 2 was never made available
    assertRejected(q, /at 2 names buffer 5, which is not in flight/);
  }
});

Deno.test("a bad used descriptor after good ones frees nothing, hands out nothing, and the queue stays broken", () => {
  const { q, dev, notified } = setup(8);
  post(q, [1, 2, 3]);
  const [a, b] = dev.takeAvail();
  dev.use([[b.id, 10], [a.id, 10], [7, 10]]); // id 7 was never posted
  assertRejected(q, /at 2 names buffer 7, which is not in flight/);
  assert.equal(q.inFlight, 3, "every buffer still belongs to the device");
  assert.match(q.broken ?? "", /buffer 7/);
  // Every later call reports the same first fault, and nothing is published.
  assertRejected(q, /at 2 names buffer 7/);
  assert.equal(q.add(4, 4, 0, 64, true), true, "add() only writes the ring");
  assertMisbehaved(() => q.publish(), /buffer 7/);
  assert.equal(notified(), 0);
  // The state export holds every token as it was.
  const s = q.exportState.bind(q);
  assertMisbehaved(s, /buffer 7/);
});

/**
 * A `lens` output array laid over the id (and flags) of the descriptor at position 0: a
 * length stored there rewrites the id, as a device writing the ring between the check and
 * the commit would (deterministically, without a second thread).
 */
function lensOverId(memory: ArrayBuffer, dev: FakePackedDevice, n: number): Uint32Array {
  return new Uint32Array(memory, dev.base + dev.l.descOffset + 12, n);
}

Deno.test("a used id rewritten after validation is not put on the free list", () => {
  const { q, dev, memory } = setup(8);
  post(q, [100, 101, 102, 103, 104, 105]); // ids 0…5
  q.publish();
  dev.takeAvail();
  dev.use([[2, 5]]); // id 2, 5 bytes: the id reads 5 once the length is stored over it
  const tokens = new Uint32Array(1);
  assert.equal(q.takeUsed(tokens, lensOverId(memory, dev, 1), 0, 1), 1);
  assert.equal(tokens[0], 102);
  const s = q.exportState();
  const free = [...s.freeId.subarray(0, s.numFreeIds)];
  assert.ok(free.includes(2), `id 2 was returned, so it is free: free list ${free}`);
  assert.ok(!free.includes(5), `id 5 is still in flight: free list ${free}`);
  assert.deepEqual([...s.token], [100, 101, -1, 103, 104, 105, -1, -1]);
});

Deno.test("a refused batch writes nothing to the output arrays and puts every token back", () => {
  const { q, dev, memory } = setup(8);
  post(q, [100, 101, 102, 103]);
  q.publish();
  dev.takeAvail();
  dev.use([[2, 5], [7, 10]]); // id 7 was never posted: the batch is refused
  const tokens = new Uint32Array(2);
  assertMisbehaved(() => q.takeUsed(tokens, lensOverId(memory, dev, 2), 0, 2), /buffer 7/);
  assert.equal(dev.desc(0).id, 2, "no length was stored");
  assert.deepEqual([...tokens], [0, 0], "no token was stored");
  const s = q.exportState();
  assert.deepEqual([...s.token], [100, 101, 102, 103, -1, -1, -1, -1]);
  assert.equal(s.numFreeIds, 4);
});

// ---------------------------------------------------------------------------------------
// Adoption by another thread's queue, and reads from other threads (the shadow).
// ---------------------------------------------------------------------------------------

Deno.test("exportState() publishes, and a queue adopting it over the same memory goes on", () => {
  const { q, dev, memory, notified } = setup(8);
  post(q, [1, 2, 3]);
  q.addChain(4, 0x40, 0, 16, 0x41, 0, 8);
  const s = q.exportState();
  assert.equal(s.layout, "packed");
  assert.deepEqual([s.availPos, s.kickedAt, s.lastUsed, s.numFree], [5, 5, 0, 3]);
  assert.equal(notified(), 1, "published on export");
  let notified2 = 0;
  const q2 = new PackedQueue(memory, 0, {
    index: 3,
    size: 8,
    eventIdx: false,
    notify: { notify: () => notified2++ },
    name: "transmitq1 of test",
  }, structuredClone(s));
  assert.deepEqual([q2.freeCount, q2.inFlight, q2.publishedIdx, q2.lastUsedIdx], [3, 5, 5, 0]);
  const avail = dev.takeAvail();
  assert.deepEqual(avail.map(tokenOf), [1, 2, 3, 0x40], "the ring was left as it was");
  dev.use([[avail[3].id, 8, 2], [avail[0].id, 1]]);
  assert.deepEqual(take(q2), { tokens: [4, 1], lens: [8, 1] });
  post(q2, [5, 6, 7, 8]);
  assert.deepEqual([q2.freeCount, q2.inFlight], [2, 6]);
  q2.publish();
  assert.equal(notified2, 1);
  const more = dev.takeAvail();
  assert.deepEqual(more.map(tokenOf), [5, 6, 7, 8]);
  assert.equal(new Set([...more, avail[1], avail[2]].map((a) => a.id)).size, 6, "ids distinct");
  dev.use([avail[1], avail[2], ...more].map((a) => [a.id, 0]));
  assert.deepEqual(take(q2).tokens, [2, 3, 5, 6, 7, 8]);
  assert.equal(q2.inFlight, 0);
});

Deno.test("adopting a state of another size or an inconsistent one is refused", () => {
  const { q, memory } = setup(8);
  const s = q.exportState();
  const opts = { index: 0, size: 16, eventIdx: false, notify: { notify() {} }, name: "q" };
  assert.throws(() => new PackedQueue(memory, 0, opts, s), RangeError);
  assert.throws(
    () => new PackedQueue(memory, 0, { ...opts, size: 8 }, { ...s, numFree: 3 }),
    RangeError,
  );
});

Deno.test("deviceUsedIdx(), usedAddr() and usedLen() of the main thread's object follow the worker's queue", () => {
  const { q: mainQ, dev, memory } = setup(8);
  // The worker adopts; the main thread keeps its own object over the same memory.
  const worker = new PackedQueue(memory, 0, {
    index: 3,
    size: 8,
    eventIdx: false,
    notify: { notify() {} },
    name: "receiveq1",
  }, mainQ.exportState());
  for (let round = 0; round < 5; round++) {
    const base = 0x1000 * (round + 1);
    for (let i = 0; i < 6; i++) assert.ok(worker.add(base + i, base + i, round, 2048, true));
    const avail = dev.takeAvail();
    const at = worker.lastUsedIdx;
    assert.equal(mainQ.deviceUsedIdx(), at, "nothing used yet");
    dev.use([[avail[4].id, 40], [avail[1].id, 10], [avail[0].id, 0]]);
    assert.equal(mainQ.deviceUsedIdx(), (at + 3) & 0xffff);
    const addrs = [0, 1, 2].map((k) => mainQ.usedAddr(at + k));
    assert.deepEqual(addrs, [4, 1, 0].map((i) => round * 0x1_0000_0000 + base + i));
    assert.deepEqual([0, 1, 2].map((k) => mainQ.usedLen(at + k)), [40, 10, 0]);
    // The worker takes two: the main thread's view moves with it (the shadow).
    assert.equal(worker.takeUsed(new Uint32Array(2), new Uint32Array(2), 0, 2), 2);
    assert.equal(mainQ.deviceUsedIdx(), (at + 3) & 0xffff);
    dev.use([[avail[2].id, 1], [avail[3].id, 1], [avail[5].id, 1]]);
    assert.equal(mainQ.deviceUsedIdx(), (at + 6) & 0xffff);
    assert.equal(worker.deviceUsedIdx(), mainQ.deviceUsedIdx());
    assert.equal(take(worker).tokens.length, 4);
    assert.equal(mainQ.deviceUsedIdx(), (at + 6) & 0xffff);
  }
  // A used id outside the ring has no address.
  worker.add(1, 1, 0, 64, true);
  dev.takeAvail();
  dev.use([[200, 1]]);
  assert.equal(mainQ.usedAddr(worker.lastUsedIdx), -1);
});

Deno.test("a second object built over the ring before the first reads what the first drives", () => {
  const size = 8;
  const memory = new ArrayBuffer(packedRingLayout(size).totalBytes);
  const opts = { index: 0, size, eventIdx: false, notify: { notify() {} }, name: "q" };
  const observer = new PackedQueue(memory, 0, opts);
  const q = new PackedQueue(memory, 0, opts);
  const dev = new FakePackedDevice(memory, 0, size);
  post(q, [0x10, 0x20]);
  const avail = dev.takeAvail();
  dev.use([[avail[1].id, 3]]);
  assert.deepEqual(
    [observer.deviceUsedIdx(), observer.usedAddr(0), observer.usedLen(0)],
    [1, 0x20, 3],
  );
  take(q);
  dev.use([[avail[0].id, 4]]);
  assert.deepEqual(
    [observer.deviceUsedIdx(), observer.usedAddr(1), observer.usedLen(1)],
    [2, 0x10, 4],
  );
});

// ---------------------------------------------------------------------------------------
// Used-buffer notifications (§2.8.10): the driver's event suppression area.
// ---------------------------------------------------------------------------------------

Deno.test("enableInterrupts() writes ENABLE, or with EVENT_IDX the next used position and DESC", () => {
  {
    const { q, dev } = setup(8);
    assert.equal(q.enableInterrupts(), false, "nothing waits");
    assert.equal(dev.driverFlags, RING_EVENT_FLAGS_ENABLE);
    assert.equal(dev.driverOffWrap, 0, "left alone without EVENT_IDX");
    assert.equal(q.interruptsEnabled, true);
    q.disableInterrupts();
    assert.equal(dev.driverFlags, RING_EVENT_FLAGS_DISABLE);
    assert.equal(q.interruptsEnabled, false);
  }
  {
    const { q, dev } = setup(8, { eventIdx: true });
    assert.equal(q.enableInterrupts(), false);
    assert.deepEqual([dev.driverFlags, dev.driverOffWrap], [RING_EVENT_FLAGS_DESC, 0x8000 | 0]);
    // Move the used position into the second lap: slot 2, wrap counter 0.
    post(q, [1, 2, 3, 4, 5, 6]);
    dev.use(dev.takeAvail().map((a) => [a.id, 1]));
    take(q);
    post(q, [7, 8, 9, 10]);
    dev.use(dev.takeAvail().map((a) => [a.id, 1]));
    take(q);
    assert.equal(q.lastUsedIdx, 10);
    q.disableInterrupts();
    assert.equal(dev.driverFlags, RING_EVENT_FLAGS_DISABLE);
    assert.equal(q.enableInterrupts(), false);
    assert.deepEqual([dev.driverFlags, dev.driverOffWrap], [RING_EVENT_FLAGS_DESC, 2]);
  }
});

Deno.test("enableInterrupts() reports used descriptors that arrived before it", () => {
  for (const eventIdx of [false, true]) {
    const { q, dev } = setup(8, { eventIdx });
    post(q, [1, 2]);
    const [a] = dev.takeAvail();
    dev.use([[a.id, 10]]);
    assert.equal(q.hasUsed(), true);
    assert.equal(q.enableInterrupts(), true);
    take(q);
    assert.equal(q.hasUsed(), false);
    assert.equal(q.enableInterrupts(), false);
    if (eventIdx) assert.equal(dev.driverOffWrap, 0x8000 | 1);
  }
});

Deno.test("enabling and disabling interrupts leaves the buffers and counters alone", () => {
  const { q, dev, notified } = setup(8);
  post(q, [5, 6]);
  q.publish();
  const before = notified();
  q.enableInterrupts();
  q.disableInterrupts();
  assert.equal(notified(), before, "no notification to the device");
  assert.equal(dev.takeAvail().length, 2);
  assert.equal(q.inFlight, 2);
});
