/**
 * The in-order half of a split virtqueue (VIRTIO_F_IN_ORDER, virtio 1.x §2.7.9 "In-order
 * use of descriptors"): the state only in-order use needs, and taking used buffers when
 * one used entry may return a whole batch. SplitQueue (split_queue.ts) owns one when it was
 * built with `inOrder` and hands it the ring's state once ({@linkcode SplitRingState}: the
 * typed arrays both sides read and write), so the out-of-order paths stay as they are.
 *
 * In order, descriptors are taken in ring order, so the buffers in flight occupy the
 * descriptors from {@linkcode SplitInOrder.head} on, oldest first (the in-flight FIFO).
 *
 * @module
 */

import { ringDistance } from "./ring_math.ts";

/** What a split ring's in-order path shares with its queue: views and driver-side arrays. */
export interface SplitRingState {
  /** Queue size. */
  readonly size: number;
  /** size - 1. */
  readonly mask: number;
  /** The used ring as 16-bit words ([1]: used->idx). */
  readonly used16: Uint16Array;
  /** The used ring as 32-bit words ([1 + 2·slot]: id, [2 + 2·slot]: len). */
  readonly used32: Uint32Array;
  /** Per descriptor: the token of the buffer in flight, -1 when free. */
  readonly token: Int32Array;
  /** Per descriptor: the length posted. */
  readonly postedLen: Uint32Array;
  /** Per chain head: its next descriptor, -1 for none. */
  readonly chainNext: Int16Array;
  /** Scratch: the descriptors a take checked, so that it commits exactly those. */
  readonly takenId: Uint16Array;
}

/**
 * In-order state and take path of one split queue.
 *
 * @example
 * ```ts ignore
 * const io = new SplitInOrder(ring);
 * const n = io.take(lastUsed, numFree, tokens, lens, 0, 32); // -1: io.error says why
 * ```
 */
export class SplitInOrder {
  /** The descriptor of the oldest buffer in flight. */
  head = 0;
  /** The buffer the used entry being worked through names (-1: none). */
  batchLast = -1;
  /** The length that entry reports. */
  batchLen = 0;
  /**
   * Per chain head, the bytes its writable part offers: what a buffer the device returns
   * without a used entry of its own counts as written.
   */
  readonly fullLen: Uint32Array;
  /** Descriptors the last {@linkcode SplitInOrder.take} freed. */
  freed = 0;
  /** Why the last take refused the device's entries ("" when it did not). */
  error = "";
  readonly #r: SplitRingState;

  /** The in-order half of the queue whose shared state is `ring`. */
  constructor(ring: SplitRingState) {
    this.#r = ring;
    this.fullLen = new Uint32Array(ring.size);
  }

  /**
   * takeUsed() with VIRTIO_F_IN_ORDER (§2.7.9): the device uses buffers in the order they
   * were made available and may return a batch with a single used entry, written at the
   * batch's first slot, naming the last buffer of the batch, and used->idx moved by the
   * batch's size. The id must name a buffer in flight (the oldest, or one made available
   * after it); every buffer from the oldest up to it is used, in order. The named one gets
   * the length its entry reports; the others, which the spec says the device used
   * completely, the bytes they offered the device to write (0 for a device-readable buffer
   * such as a frame to send). A batch larger than `max` is handed out over several calls.
   * The checks are those of the out-of-order path, plus: used->idx must not end inside a
   * batch. `lastUsed` and `numFree` are the queue's; returns the buffers taken (the used
   * index moves by as many) and sets {@linkcode SplitInOrder.freed}, or -1 with
   * {@linkcode SplitInOrder.error} set and nothing taken.
   */
  take(
    lastUsed: number,
    numFree: number,
    tokens: Uint32Array,
    lens: Uint32Array,
    at: number,
    max: number,
  ): number {
    const r = this.#r;
    this.freed = 0;
    const usedIdx = r.used16[1]; // x86 TSO: the entries are read after this (no Atomics)
    const pending = ringDistance(lastUsed, usedIdx);
    if (pending === 0) return 0;
    if (pending > r.size - numFree) {
      return this.#refuse(
        tokens,
        at,
        0,
        `used->idx ${usedIdx} runs ${pending} entries ahead with only ${
          r.size - numFree
        } buffers in flight`,
      );
    }
    const room = Math.min(tokens.length, lens.length) - at;
    if (max > room) max = room;
    const used32 = r.used32, token = r.token, taken = r.takenId, mask = r.mask;
    let pos = lastUsed, c = this.head, n = 0;
    let last = this.batchLast, lastLen = this.batchLen;
    // Check before consuming, as takeUsed(): tokens cleared as checked, put back if refused.
    while (n < max && pos !== usedIdx) {
      if (last < 0) {
        // A new batch: its used entry is at the slot of its first buffer.
        const slot = pos & mask;
        const id = used32[1 + 2 * slot];
        const len = used32[2 + 2 * slot];
        if (id >= r.size || token[id] < 0) {
          return this.#refuse(
            tokens,
            at,
            n,
            `used entry ${pos} names descriptor ${id}, which is not in flight (in order, it must be the oldest buffer in flight, ${c}, or one made available after it)`,
          );
        }
        if (len > r.postedLen[id]) {
          return this.#refuse(
            tokens,
            at,
            n,
            `used entry ${pos} reports ${len} bytes written into a ${r.postedLen[id]}-byte buffer`,
          );
        }
        last = id;
        lastLen = len;
      }
      // The oldest buffer in flight, at c: in flight, since `last` is, and no later than it.
      taken[n] = c;
      tokens[at + n] = token[c];
      lens[at + n] = c === last ? lastLen : this.fullLen[c];
      token[c] = -1;
      n++;
      pos = (pos + 1) & 0xffff;
      if (c === last) last = -1;
      c = (c + this.#descriptorsOf(c)) & mask;
    }
    if (last >= 0 && pos === usedIdx) {
      return this.#refuse(
        tokens,
        at,
        n,
        `used->idx ${usedIdx} ends inside the batch of the used entry naming descriptor ${last}`,
      );
    }
    // Commit: the descriptors checked above are free again, in ring order.
    const chainNext = r.chainNext;
    let freed = 0;
    for (let i = 0; i < n; i++) {
      let d = taken[i];
      do {
        const after = chainNext[d];
        chainNext[d] = -1;
        freed++;
        d = after;
      } while (d >= 0);
    }
    this.head = c;
    this.batchLast = last;
    this.batchLen = lastLen;
    this.freed = freed;
    return n;
  }

  /** Descriptors of the buffer whose chain starts at `head` (from the driver's own links). */
  #descriptorsOf(head: number): number {
    const chainNext = this.#r.chainNext;
    let k = 1;
    for (let d = chainNext[head]; d >= 0; d = chainNext[d]) k++;
    return k;
  }

  /** Puts back the tokens of the first `n` entries checked, records why; returns -1. */
  #refuse(tokens: Uint32Array, at: number, n: number, why: string): number {
    const r = this.#r;
    for (let i = 0; i < n; i++) r.token[r.takenId[i]] = tokens[at + i];
    this.error = why;
    return -1;
  }
}
