/**
 * A packed virtqueue (src/virtio/packed_queue.ts) against a hostile device, one random step
 * at a time, with the invariants checked after every step: the packed counterpart of
 * split_ring_harness.ts, single-threaded only.
 *
 * The harness drives the real PackedQueue (add, addChain, publish, takeUsed) and plays a
 * device that mostly follows §2.8 (reads available descriptors by the wrap-counter rule,
 * writes used descriptors in ring order, returning buffers in any order and skipping a
 * chain's slots) and sometimes writes a used descriptor that is bad by construction: an id
 * out of range, an id not in flight (a replay among them), an id twice, a length beyond the
 * buffer; or scribbles over what the driver must not trust (descriptor addresses, the
 * device event suppression area, a used descriptor not yet taken). It keeps its own truth
 * (which buffer id holds which token) and predicts exactly what takeUsed must do with each
 * batch: take it whole, or refuse it whole and break the queue.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError } from "../../../src/errors.ts";
import { PackedQueue } from "../../../src/virtio/packed_queue.ts";
import {
  type PackedRingLayout,
  packedRingLayout,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
} from "../../../src/virtio/packed_ring_math.ts";
import { VIRTQ_DESC_F_NEXT } from "../../../src/virtio/ring_math.ts";
import { positionDistance } from "../../../src/virtio/virtqueue.ts";
import type { Prng } from "./prng.ts";

/** What a refused batch did wrong, as the harness classifies it. */
export type PackedRejection = "id-out-of-range" | "id-not-in-flight" | "id-twice" | "len-too-long";

/** The largest ring the harness uses; the memory is sized for it. */
export const MAX_RING = 256;
const SIZES = [1, 2, 4, 8, 16, 64, MAX_RING];
const TOKENS = 2 * MAX_RING;
const BOTH = VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED;

/** Counts of one fuzz run. */
export interface PackedFuzzCounts {
  steps: number;
  /** Buffers the driver took back, each checked against the truth. */
  taken: number;
  /** Refused batches by what the device did; each one broke the queue. */
  rejections: Record<PackedRejection, number>;
  /** Queues set up again after being broken (a device reset). */
  resets: number;
  /** Deep checks of the driver's free ids and tokens (exportState). */
  deepChecks: number;
}

/** A buffer the device read: its id and how many slots it spans. */
interface Held {
  id: number;
  descs: number;
  len: number;
}

/** The driver's ring, the harness's truth about it, and the device's side. */
export class PackedRingHarness {
  readonly rng: Prng;
  readonly memory: ArrayBuffer;
  readonly counts: PackedFuzzCounts = {
    steps: 0,
    taken: 0,
    rejections: { "id-out-of-range": 0, "id-not-in-flight": 0, "id-twice": 0, "len-too-long": 0 },
    resets: 0,
    deepChecks: 0,
  };
  q!: PackedQueue;
  /** A second object over the same ring, as the main thread keeps while a worker drives. */
  observer!: PackedQueue;
  size = 0;
  #l!: PackedRingLayout;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  // Truth, per buffer id: its token (-1: free), writable length posted, slots spanned.
  readonly #tokenOf = new Int32Array(MAX_RING);
  readonly #lenOf = new Uint32Array(MAX_RING);
  readonly #descsOf = new Uint8Array(MAX_RING);
  #inFlight = 0; // slots
  #freeTokens: number[] = [];
  #availPos = 0;
  #published = 0;
  #lastUsed = 0;
  #publishes = 0;
  // The device: where it reads and writes (positions), what it holds.
  #devAvail = 0;
  #devUsed = 0;
  #held: Held[] = [];
  // Position of a bad used descriptor the device wrote, -1 for none: it stops meanwhile.
  #badAt = -1;
  readonly #tokens = new Uint32Array(MAX_RING + 8);
  readonly #lens = new Uint32Array(MAX_RING + 8);

  constructor(rng: Prng, memory: ArrayBuffer) {
    this.rng = rng;
    this.memory = memory;
    this.#u16 = new Uint16Array(memory);
    this.#u32 = new Uint32Array(memory);
    this.reset();
  }

  /** Bytes of ring memory the harness needs. */
  static get memoryBytes(): number {
    return Math.ceil(packedRingLayout(MAX_RING).totalBytes / 16) * 16;
  }

  /** A device reset: a new queue (of a random size) over the same memory, truth cleared. */
  reset(): void {
    this.size = this.rng.pick(SIZES);
    this.#l = packedRingLayout(this.size);
    const opts = {
      index: 0,
      size: this.size,
      eventIdx: this.rng.chance(0.5),
      notify: { notify() {} },
      name: "fuzzq",
    };
    this.observer = new PackedQueue(this.memory, 0, opts);
    this.q = new PackedQueue(this.memory, 0, opts);
    this.#tokenOf.fill(-1);
    this.#descsOf.fill(0); // as the new queue's zeroed shadow
    this.#inFlight = 0;
    this.#freeTokens = Array.from({ length: TOKENS }, (_, i) => i);
    this.#availPos =
      this.#published =
      this.#lastUsed =
      this.#publishes =
        0;
    this.#devAvail = this.#devUsed = 0;
    this.#held = [];
    this.#badAt = -1;
  }

  /** One random step of driver or device, then the invariants. */
  step(hostility: number): void {
    const r = this.rng.below(100);
    if (r < 25) this.#add();
    else if (r < 30) this.#addChain();
    else if (r < 40) this.#publish();
    else if (r < 60) this.#take();
    else if (r < 75) this.#deviceConsume();
    else if (r < 95) this.#deviceReturn();
    if (this.rng.chance(hostility)) this.#hostile();
    this.counts.steps++;
    this.#check();
  }

  // Device-side views (§2.8: little-endian, which x86 is).
  #wrap(pos: number): number {
    return (Math.floor((pos & 0xffff) / this.size) & 1) ^ 1;
  }
  #flags(pos: number): number {
    return this.#u16[8 * (pos & (this.size - 1)) + 7];
  }
  #isAvail(pos: number): boolean {
    const f = this.#flags(pos) & BOTH;
    return f === (this.#wrap(pos) ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED);
  }
  #isUsed(pos: number): boolean {
    return (this.#flags(pos) & BOTH) === (this.#wrap(pos) ? BOTH : 0);
  }
  #writeUsed(pos: number, id: number, len: number): void {
    const s = pos & (this.size - 1);
    this.#u32[4 * s + 2] = len;
    this.#u16[8 * s + 6] = id;
    this.#u16[8 * s + 7] = this.#wrap(pos) ? BOTH : 0; // flags last
  }

  /** The driver took buffer id `id`: it must have been free. */
  #claim(id: number, token: number, len: number, descs: number): void {
    assert.ok(id < this.size, `the driver posted id ${id} in a ${this.size}-entry ring`);
    assert.equal(this.#tokenOf[id], -1, `id ${id} handed out while in flight`);
    this.#tokenOf[id] = token;
    this.#lenOf[id] = len;
    this.#descsOf[id] = descs;
    this.#availPos = (this.#availPos + descs) & 0xffff;
    this.#inFlight += descs;
  }

  #add(): void {
    if (this.#freeTokens.length === 0) return;
    const free = this.q.freeCount;
    const token = this.#freeTokens.pop()!;
    const len = 1 + this.rng.below(2048);
    const writable = this.rng.chance(0.5);
    const ok = this.q.add(token, this.rng.u32(), this.rng.below(16), len, writable);
    assert.equal(ok, free > 0, "add() must succeed exactly when a slot is free");
    if (!ok) return void this.#freeTokens.push(token);
    assert.ok(this.#isAvail(this.#availPos), "the descriptor is available once added");
    // What the device may write: nothing into a buffer it only reads.
    const s = this.#availPos & (this.size - 1);
    this.#claim(this.#u16[8 * s + 6], token, writable ? len : 0, 1);
  }

  #addChain(): void {
    if (this.#freeTokens.length === 0) return;
    const free = this.q.freeCount;
    const token = this.#freeTokens.pop()!;
    const len = 1 + this.rng.below(64);
    const ok = this.q.addChain(token, 0x1000, 0, 16, 0x2000, 0, len);
    assert.equal(ok, free >= 2, "addChain() must succeed exactly when two slots are free");
    if (!ok) return void this.#freeTokens.push(token);
    const p = this.#availPos, s = p & (this.size - 1), t = (p + 1) & (this.size - 1);
    assert.ok(this.#isAvail(p) && this.#isAvail(p + 1), "both descriptors available");
    assert.ok((this.#flags(p) & VIRTQ_DESC_F_NEXT) !== 0, "the head continues");
    assert.equal(this.#u16[8 * s + 6], this.#u16[8 * t + 6], "one id in both");
    this.#claim(this.#u16[8 * s + 6], token, len, 2);
  }

  #publish(): void {
    this.q.publish();
    if (this.#availPos !== this.#published) this.#publishes++;
    assert.equal(this.q.kicks + this.q.kicksSuppressed, this.#publishes, "one decision each");
    this.#published = this.#availPos;
  }

  /** takeUsed, with its outcome predicted. */
  #take(): void {
    const max = 1 + this.rng.below(this.size + 4);
    const at = this.rng.below(8);
    const expected = this.#predict(max, at);
    const freeBefore = this.q.freeCount, lastBefore = this.q.lastUsedIdx;
    this.#tokens.fill(0xdead);
    let n: number;
    try {
      n = this.q.takeUsed(this.#tokens, this.#lens, at, max);
    } catch (e) {
      assert.ok(e instanceof DriverError && e.code === "DEVICE_MISBEHAVED", `threw ${e}`);
      assert.ok(expected.rejection, `refused a good batch: ${(e as Error).message}`);
      this.counts.rejections[expected.rejection]++;
      // Refused whole: nothing handed out or reused, and the queue is broken for good.
      assert.ok(this.#tokens.every((t) => t === 0xdead), "a refused batch handed out tokens");
      assert.equal(this.q.freeCount, freeBefore, "a refused batch freed slots");
      assert.equal(this.q.lastUsedIdx, lastBefore, "a refused batch moved the used position");
      assert.ok(this.q.broken, "a refused batch left the queue unbroken");
      assert.throws(() => this.q.takeUsed(this.#tokens, this.#lens, 0, 1), DriverError);
      this.reset();
      this.counts.resets++;
      return;
    }
    assert.equal(expected.rejection, null, `took a batch with ${expected.rejection}`);
    assert.equal(n, expected.ids.length, "took a different number of buffers");
    for (let i = 0; i < n; i++) {
      const id = expected.ids[i], token = this.#tokens[at + i];
      assert.equal(token, this.#tokenOf[id], `buffer ${id}'s token`);
      assert.equal(this.#lens[at + i], expected.lens[i]);
      this.#tokenOf[id] = -1;
      this.#inFlight -= this.#descsOf[id];
      this.#lastUsed = (this.#lastUsed + this.#descsOf[id]) & 0xffff;
      this.#freeTokens.push(token);
      this.counts.taken++;
    }
    // The driver went past the "bad" descriptor: the id it named was posted again since
    // and so in flight, which the driver cannot tell from a return. Reset the device.
    if (this.#badAt >= 0 && positionDistance(this.#badAt, this.#lastUsed) - 1 < 0x7fff) {
      this.reset();
      this.counts.resets++;
    }
  }

  /** What takeUsed must do, from the ring as it is and the truth (§2.8.1, §2.8.6). */
  #predict(max: number, at: number) {
    const ids: number[] = [], lens: number[] = [];
    const out = (rejection: PackedRejection | null) => ({ rejection, ids, lens });
    const n = Math.min(max, this.#tokens.length - at);
    let pos = this.#lastUsed;
    while (ids.length < n && this.#isUsed(pos)) {
      const s = pos & (this.size - 1);
      const id = this.#u16[8 * s + 6];
      if (id >= this.size) return out("id-out-of-range");
      if (ids.includes(id)) return out("id-twice");
      if (this.#tokenOf[id] < 0) return out("id-not-in-flight");
      // A buffer the device only reads reports no length (packed_queue.ts, §2.8.4).
      const len = this.#lenOf[id] === 0 ? 0 : this.#u32[4 * s + 2];
      if (len > this.#lenOf[id]) return out("len-too-long");
      ids.push(id);
      lens.push(len);
      pos = (pos + this.#descsOf[id]) & 0xffff;
    }
    return out(null);
  }

  /** The device reads available buffers (§2.8.1), as many as it likes. */
  #deviceConsume(): void {
    if (this.#badAt >= 0) return;
    let k = 1 + this.rng.below(this.size);
    while (k-- > 0 && this.#isAvail(this.#devAvail)) {
      let s = this.#devAvail & (this.size - 1), descs = 1;
      while (this.#u16[8 * s + 7] & VIRTQ_DESC_F_NEXT) {
        s = (s + 1) & (this.size - 1);
        descs++;
      }
      this.#held.push({ id: this.#u16[8 * s + 6], descs, len: this.#u32[4 * s + 2] });
      this.#devAvail = (this.#devAvail + descs) & 0xffff;
    }
  }

  /** The device returns some buffers it holds, in any order, with honest lengths. */
  #deviceReturn(): void {
    if (this.#badAt >= 0) return;
    let k = 1 + this.rng.below(this.size);
    while (this.#held.length > 0 && k-- > 0) {
      const h = this.#held.splice(this.rng.below(this.#held.length), 1)[0];
      this.#writeUsed(this.#devUsed, h.id, this.rng.below(h.len + 1));
      this.#devUsed = (this.#devUsed + h.descs) & 0xffff;
    }
  }

  /** A used descriptor bad by construction, or a scribble the driver must not trust. */
  #hostile(): void {
    const rng = this.rng, kind = rng.below(6);
    if (this.#badAt >= 0) return; // one bad descriptor at a time
    const free = [];
    for (let id = 0; id < this.size; id++) if (this.#tokenOf[id] < 0) free.push(id);
    const at = this.#devUsed;
    let bad = at;
    // Positions a whole ring past the oldest untaken one share its slot: a write there
    // would hide it (wrong wrap counter) rather than be a bad used descriptor.
    const room = this.size - positionDistance(this.#lastUsed, at);
    if (kind <= 2 && room < 1) {
      return;
    } else if (kind === 0) { // an id outside the ring
      this.#writeUsed(at, this.size + rng.below(0x10000 - this.size), 1);
    } else if (kind === 1 && free.length) { // an id not in flight (a replay, or never posted)
      this.#writeUsed(at, rng.pick(free), 0);
    } else if (kind === 2 && this.#held.length) { // a held buffer, too long, or twice
      const h = this.#held.splice(rng.below(this.#held.length), 1)[0];
      if (rng.chance(0.5) || room <= h.descs) {
        this.#writeUsed(at, h.id, h.len + 1 + rng.below(1 << 20));
      } else {
        this.#writeUsed(at, h.id, 0);
        bad = (at + h.descs) & 0xffff;
        this.#writeUsed(bad, h.id, 0);
      }
    } else if (kind === 3) { // descriptor addresses: only usedAddr() reads them, never back
      this.#u32[4 * rng.below(this.size) + rng.below(2)] = rng.u32();
      return;
    } else if (kind === 4) { // the device event suppression area (notification decisions)
      this.#u32[this.#l.deviceOffset >> 2] = rng.u32();
      return;
    } else if (kind === 5 && this.#isUsed(this.#lastUsed)) { // one not yet taken, rewritten
      this.#u16[8 * (this.#lastUsed & (this.size - 1)) + 6] = this.size + rng.below(100);
      return; // the next takeUsed() reads it first
    } else {
      return;
    }
    // The bad descriptor is the next used one after those written honestly: the driver
    // reaches it and refuses (then the harness resets). The device stops until then.
    this.#badAt = bad;
  }

  /** After every step: the driver's counts agree with the truth; deep when it is quiet. */
  #check(): void {
    const q = this.q;
    assert.equal(q.inFlight, this.#inFlight, "slots in flight");
    assert.equal(q.freeCount, this.size - this.#inFlight, "free slots");
    assert.equal(q.lastUsedIdx, this.#lastUsed, "used position consumed");
    assert.equal(q.publishedIdx, this.#published, "position published");
    // Each used descriptor covers the descriptors of the buffer it names (the last ones
    // posted with that id); a walk stops at an id never posted.
    let used = this.#lastUsed;
    for (let i = 0; i < this.size && this.#isUsed(used); i++) {
      const id = this.#u16[8 * (used & (this.size - 1)) + 6];
      const descs = id < this.size ? this.#descsOf[id] : 0;
      if (descs === 0) break;
      used = (used + descs) & 0xffff;
    }
    assert.equal(this.observer.deviceUsedIdx(), used, "deviceUsedIdx() from a second object");
    if (this.#availPos !== this.#published || q.broken) return; // exportState() would publish
    const s = q.exportState();
    const seen = new Uint8Array(this.size);
    for (let i = 0; i < s.numFreeIds; i++) {
      const id = s.freeId[i];
      assert.ok(id < this.size && !seen[id]++, `id ${id} free twice`);
      assert.equal(this.#tokenOf[id], -1, `id ${id} free and in flight`);
    }
    for (let id = 0; id < this.size; id++) {
      assert.equal(s.token[id], this.#tokenOf[id], `id ${id}'s token`);
      if (!seen[id]) assert.ok(this.#tokenOf[id] >= 0, `id ${id} lost`);
    }
    this.counts.deepChecks++;
  }
}
