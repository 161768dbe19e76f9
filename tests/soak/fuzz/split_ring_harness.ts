/**
 * A split virtqueue (src/virtio/split_queue.ts) against a hostile device, one random step
 * at a time, with the invariants checked after every step (issue 13, item 2).
 *
 * The harness drives the real SplitQueue as rx_queue.ts and tx_queue.ts do (add, addChain,
 * publish, takeUsed) and plays a device that mostly follows §2.7 and sometimes does not:
 * used->idx ahead of what is in flight, ids out of range or not in flight or named twice,
 * lengths beyond the buffer, and scribbles over the used ring, the descriptor table and
 * the event indices. It keeps its own truth (which descriptor holds which token, learnt from
 * the available ring as the driver writes it) and, single-threaded, predicts exactly what
 * takeUsed must do with each batch: take it whole, or refuse it whole and break the queue.
 * With `concurrent`, another thread rewrites the used ring meanwhile (used_ring_scribbler.ts)
 * and only what must hold under any interleaving is checked.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DriverError } from "../../../src/errors.ts";
import {
  type SplitRingLayout,
  splitRingLayout,
  VIRTQ_DESC_F_NEXT,
} from "../../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../../src/virtio/split_queue.ts";
import type { Prng } from "./prng.ts";

/** What a refused batch did wrong, as the harness classifies it. */
export type Rejection =
  | "used-idx-ahead"
  | "id-out-of-range"
  | "id-not-in-flight"
  | "id-twice"
  | "len-too-long";

/** The largest ring the harness uses; the memory is sized for it. */
export const MAX_RING = 256;
const SIZES = [2, 4, 8, 16, 64, MAX_RING];
const TOKENS = 2 * MAX_RING;

/** Counts of one fuzz run. */
export interface FuzzCounts {
  steps: number;
  /** Buffers the driver took back, each checked against the truth. */
  taken: number;
  /** Refused batches by what the device did; each one broke the queue. */
  rejections: Record<Rejection, number>;
  /** Refusals under a concurrent writer (the harness cannot say which entry was bad). */
  rejectedConcurrently: number;
  /** Queues set up again after being broken (a device reset). */
  resets: number;
  /** Deep checks of the driver's free list and tokens (exportState). */
  deepChecks: number;
}

/** The driver's ring, the harness's truth about it, and the device's side. */
export class RingHarness {
  readonly rng: Prng;
  readonly memory: ArrayBuffer;
  readonly concurrent: boolean;
  readonly counts: FuzzCounts = {
    steps: 0,
    taken: 0,
    rejections: {
      "used-idx-ahead": 0,
      "id-out-of-range": 0,
      "id-not-in-flight": 0,
      "id-twice": 0,
      "len-too-long": 0,
    },
    rejectedConcurrently: 0,
    resets: 0,
    deepChecks: 0,
  };
  /** Called with the new ring size after every reset (the scribbler follows it). */
  onReset: (size: number) => void = () => {};
  q!: SplitQueue;
  size = 0;
  #l!: SplitRingLayout;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  // Truth, per descriptor: the token a chain head holds (-1: none), its writable length,
  // its tail (-1: none); whether a descriptor is some head's tail.
  readonly #tokenOf = new Int32Array(MAX_RING);
  readonly #lenOf = new Uint32Array(MAX_RING);
  readonly #tailOf = new Int16Array(MAX_RING);
  readonly #isTail = new Uint8Array(MAX_RING);
  #inFlight = 0;
  #freeTokens: number[] = [];
  #availIdx = 0;
  #published = 0;
  #lastUsed = 0;
  // The device: where it reads the available ring, writes the used ring, what it holds
  // (head ids) and what it already gave back (for replays).
  #devAvail = 0;
  #devUsed = 0;
  #held: number[] = [];
  #returned: number[] = [];
  readonly #tokens = new Uint32Array(MAX_RING + 8);
  readonly #lens = new Uint32Array(MAX_RING + 8);

  constructor(rng: Prng, memory: ArrayBuffer, concurrent = false) {
    this.rng = rng;
    this.memory = memory;
    this.concurrent = concurrent;
    this.#u16 = new Uint16Array(memory);
    this.#u32 = new Uint32Array(memory);
    this.reset();
  }

  /** Bytes of ring memory the harness needs (a multiple of 16). */
  static get memoryBytes(): number {
    return Math.ceil(splitRingLayout(MAX_RING).totalBytes / 16) * 16;
  }

  /** A device reset: a new queue (of a random size) over the same memory, all truth cleared. */
  reset(): void {
    this.size = this.rng.pick(SIZES);
    this.#l = splitRingLayout(this.size);
    this.q = new SplitQueue(this.memory, 0, {
      index: 0,
      size: this.size,
      eventIdx: this.rng.chance(0.5),
      notify: { notify() {} },
      name: "fuzzq",
    });
    this.#tokenOf.fill(-1);
    this.#tailOf.fill(-1);
    this.#isTail.fill(0);
    this.#inFlight = 0;
    this.#freeTokens = Array.from({ length: TOKENS }, (_, i) => i);
    this.#availIdx = this.#published = this.#lastUsed = 0;
    this.#devAvail = this.#devUsed = 0;
    this.#held = [];
    this.#returned = [];
    this.onReset(this.size);
  }

  /** One random step of driver or device, then the invariants. */
  step(hostility: number): void {
    const r = this.rng.below(100);
    if (r < 25) this.#add();
    else if (r < 28) this.#addChain();
    else if (r < 40) this.#publish();
    else if (r < 60) this.#take();
    else if (r < 75) this.#deviceConsume();
    else if (r < 95) this.#deviceReturn();
    if (this.rng.chance(hostility)) this.#hostile();
    this.counts.steps++;
    this.#check();
  }

  // Device-side views (virtio 1.x §2.7: little-endian, which x86 is).
  #availSlot(i: number): number {
    return this.#u16[(this.#l.availOffset >> 1) + 2 + (i & (this.size - 1))];
  }
  #deviceAvailIdx(): number {
    return this.#u16[(this.#l.availOffset >> 1) + 1];
  }
  #usedIdxAt(): number {
    return (this.#l.usedOffset >> 1) + 1;
  }
  #writeUsed(i: number, id: number, len: number): void {
    const e = (this.#l.usedOffset >> 2) + 1 + 2 * (i & (this.size - 1));
    this.#u32[e] = id;
    this.#u32[e + 1] = len;
  }
  #usedEntry(i: number): [number, number] {
    const e = (this.#l.usedOffset >> 2) + 1 + 2 * (i & (this.size - 1));
    return [this.#u32[e], this.#u32[e + 1]];
  }

  /** The driver took descriptor `id` for a new buffer: it must have been free. */
  #claim(id: number, token: number, len: number): void {
    assert.ok(id < this.size, `the driver posted descriptor ${id} of a ${this.size}-entry ring`);
    assert.equal(this.#tokenOf[id], -1, `descriptor ${id} handed out while in flight`);
    assert.equal(this.#isTail[id], 0, `descriptor ${id} handed out while a chain's tail`);
    this.#tokenOf[id] = token;
    this.#lenOf[id] = len;
  }

  #add(): void {
    if (this.#freeTokens.length === 0) return;
    const free = this.q.freeCount;
    const token = this.#freeTokens.pop()!;
    const len = 1 + this.rng.below(2048);
    const ok = this.q.add(token, this.rng.u32(), this.rng.below(16), len, this.rng.chance(0.5));
    assert.equal(ok, free > 0, "add() must succeed exactly when a descriptor is free");
    if (!ok) {
      this.#freeTokens.push(token);
      return;
    }
    this.#claim(this.#availSlot(this.#availIdx), token, len);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    this.#inFlight++;
  }

  #addChain(): void {
    if (this.#freeTokens.length === 0) return;
    const free = this.q.freeCount;
    const token = this.#freeTokens.pop()!;
    const ok = this.q.addChain(token, 0x1000, 0, 2 + this.rng.below(64), 0x2000, 0, 1);
    assert.equal(ok, free >= 2, "addChain() must succeed exactly when two descriptors are free");
    if (!ok) {
      this.#freeTokens.push(token);
      return;
    }
    const head = this.#availSlot(this.#availIdx);
    this.#claim(head, token, 1);
    // The tail as the driver just wrote it, before any device step could scribble on it.
    const tail = this.#u16[head * 8 + 7];
    assert.ok(tail < this.size && tail !== head, `chain ${head} → ${tail}`);
    assert.ok(this.#tokenOf[tail] === -1 && !this.#isTail[tail], `tail ${tail} is in use`);
    this.#tailOf[head] = tail;
    this.#isTail[tail] = 1;
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    this.#inFlight += 2;
  }

  #publish(): void {
    this.q.publish();
    this.#published = this.#availIdx;
  }

  /** takeUsed, with its outcome predicted (single thread) or bounded (concurrent). */
  #take(): void {
    const max = 1 + this.rng.below(this.size + 4);
    const at = this.rng.below(8);
    const expected = this.concurrent ? null : this.#predict(max, at);
    const freeBefore = this.q.freeCount, lastBefore = this.q.lastUsedIdx;
    let n: number;
    try {
      n = this.q.takeUsed(this.#tokens, this.#lens, at, max);
    } catch (e) {
      assert.ok(e instanceof DriverError && e.code === "DEVICE_MISBEHAVED", `threw ${e}`);
      if (expected) {
        assert.ok(expected.rejection, `refused a good batch: ${(e as Error).message}`);
        this.counts.rejections[expected.rejection]++;
      } else {
        this.counts.rejectedConcurrently++;
      }
      // Refused whole: nothing reused, and the queue is broken for good.
      assert.equal(this.q.freeCount, freeBefore, "a refused batch freed descriptors");
      assert.equal(this.q.lastUsedIdx, lastBefore, "a refused batch moved the used index");
      assert.ok(this.q.broken, "a refused batch left the queue unbroken");
      assert.throws(() => this.q.takeUsed(this.#tokens, this.#lens, 0, 1), DriverError);
      this.reset();
      this.counts.resets++;
      return;
    }
    if (expected) {
      assert.equal(expected.rejection, null, `took a batch with ${expected.rejection}`);
      assert.equal(n, expected.ids.length, "took a different number of entries");
    }
    for (let i = 0; i < n; i++) {
      const token = this.#tokens[at + i], len = this.#lens[at + i];
      // Whatever the interleaving: the token was in flight, once, and fits its buffer.
      const id = expected ? expected.ids[i] : this.#idOfToken(token);
      assert.ok(id >= 0 && this.#tokenOf[id] === token, `token ${token} was not in flight`);
      assert.ok(len <= this.#lenOf[id], `length ${len} beyond the ${this.#lenOf[id]} posted`);
      if (expected) assert.equal(len, expected.lens[i]);
      this.#tokenOf[id] = -1;
      const tail = this.#tailOf[id];
      if (tail >= 0) {
        this.#tailOf[id] = -1;
        this.#isTail[tail] = 0;
        this.#inFlight--;
      }
      this.#inFlight--;
      this.#freeTokens.push(token);
      this.counts.taken++;
    }
    this.#lastUsed = (this.#lastUsed + n) & 0xffff;
  }

  #idOfToken(token: number): number {
    for (let id = 0; id < this.size; id++) if (this.#tokenOf[id] === token) return id;
    return -1;
  }

  /** What takeUsed must do, from the ring as it is and the truth (§2.7.8). */
  #predict(max: number, at: number) {
    const ids: number[] = [], lens: number[] = [];
    const out = (rejection: Rejection | null) => ({ rejection, ids, lens });
    const pending = (this.#u16[this.#usedIdxAt()] - this.#lastUsed) & 0xffff;
    if (pending === 0) return out(null);
    if (pending > this.#inFlight) return out("used-idx-ahead");
    const n = Math.min(pending, max, this.#tokens.length - at);
    for (let i = 0; i < n; i++) {
      const [id, len] = this.#usedEntry(this.#lastUsed + i);
      if (id >= this.size) return out("id-out-of-range");
      if (ids.includes(id)) return out("id-twice");
      if (this.#tokenOf[id] < 0) return out("id-not-in-flight");
      if (len > this.#lenOf[id]) return out("len-too-long");
      ids.push(id);
      lens.push(len);
    }
    return out(null);
  }

  /** The device reads what the driver published (§2.7.6), as far as it likes. */
  #deviceConsume(): void {
    const idx = this.#deviceAvailIdx();
    let k = 1 + this.rng.below(this.size);
    while (this.#devAvail !== idx && k-- > 0) {
      this.#held.push(this.#availSlot(this.#devAvail));
      this.#devAvail = (this.#devAvail + 1) & 0xffff;
    }
  }

  /** The device returns some buffers it holds, in any order, with honest lengths. */
  #deviceReturn(): void {
    let k = 1 + this.rng.below(this.size);
    while (this.#held.length > 0 && k-- > 0) {
      const id = this.#held.splice(this.rng.below(this.#held.length), 1)[0];
      // The length the device may write: its descriptor's, or its chain tail's.
      const flags = this.#u16[id * 8 + 6], next = this.#u16[id * 8 + 7];
      const bound =
        this.#u32[(flags & VIRTQ_DESC_F_NEXT) && next < this.size ? next * 4 + 2 : id * 4 + 2];
      this.#writeUsed(this.#devUsed, id, this.rng.below(Math.min(bound, 4096) + 1));
      this.#devUsed = (this.#devUsed + 1) & 0xffff;
      this.#returned.push(id);
      if (this.#returned.length > 16) this.#returned.shift();
    }
    this.#u16[this.#usedIdxAt()] = this.#devUsed;
  }

  /** One thing §2.7 forbids, or a scribble over memory the device can write. */
  #hostile(): void {
    const rng = this.rng, kind = rng.below(8);
    if (kind === 0) { // used->idx anywhere
      this.#devUsed = rng.below(0x10000);
      this.#u16[this.#usedIdxAt()] = this.#devUsed;
    } else if (kind <= 3) { // an entry naming any id (in range or not), a replay, or too long
      const held = this.#held.length ? this.#held[rng.below(this.#held.length)] : 0;
      const id = kind === 1
        ? (rng.chance(0.5) ? rng.below(this.size) : rng.u32())
        : kind === 2 && this.#returned.length
        ? rng.pick(this.#returned)
        : held;
      const len = kind === 3 ? this.#u32[held * 4 + 2] + 1 + rng.below(1 << 20) : rng.below(64);
      this.#writeUsed(this.#devUsed, id, len);
      this.#devUsed = (this.#devUsed + 1) & 0xffff;
      this.#u16[this.#usedIdxAt()] = this.#devUsed;
    } else if (kind === 4) { // rewrite an entry already published (or not yet)
      this.#writeUsed(this.#lastUsed + rng.below(this.size), rng.below(this.size + 2), rng.u32());
    } else if (kind === 5) { // the descriptor table: the driver must not read it back
      this.#u32[rng.below(this.size * 4)] = rng.u32();
    } else if (kind === 6) { // used->flags and avail_event (notification decisions only)
      this.#u16[this.#l.usedOffset >> 1] = rng.below(0x10000);
      this.#u16[(this.#l.usedOffset >> 1) + 2 + 4 * this.size] = rng.below(0x10000);
    } else { // the available ring: the driver writes it and never reads it
      this.#u16[(this.#l.availOffset >> 1) + 2 + rng.below(this.size)] = rng.below(0x10000);
      // ... so the device now holds garbage ids too.
      this.#devAvail = this.#deviceAvailIdx();
    }
  }

  /** After every step: the driver's counts agree with the truth; deep when it is quiet. */
  #check(): void {
    const q = this.q;
    assert.equal(q.inFlight, this.#inFlight, "buffers in flight");
    assert.equal(q.freeCount, this.size - this.#inFlight, "free descriptors");
    assert.equal(q.lastUsedIdx, this.#lastUsed, "used index consumed");
    assert.equal(q.publishedIdx, this.#published, "avail->idx published");
    if (this.#availIdx !== this.#published) return; // exportState() would publish
    // Every descriptor in exactly one place: free, a head holding its token, or a tail.
    const s = q.exportState();
    const seen = new Uint8Array(this.size);
    for (let i = 0; i < s.numFree; i++) {
      const d = s.freeDesc[i];
      assert.ok(d < this.size && !seen[d]++, `descriptor ${d} free twice`);
      assert.ok(this.#tokenOf[d] === -1 && !this.#isTail[d], `descriptor ${d} free and in use`);
    }
    for (let d = 0; d < this.size; d++) {
      assert.equal(s.token[d], this.#tokenOf[d], `descriptor ${d}'s token`);
      assert.equal(s.chainNext[d], this.#tailOf[d], `descriptor ${d}'s chain`);
      if (!seen[d]) assert.ok(this.#tokenOf[d] >= 0 || this.#isTail[d], `descriptor ${d} lost`);
    }
    this.counts.deepChecks++;
  }
}
