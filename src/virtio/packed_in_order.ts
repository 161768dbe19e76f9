/**
 * The in-order half of a packed virtqueue (VIRTIO_F_IN_ORDER, virtio 1.x §2.8.8 "In-order
 * use of descriptors"): the state only in-order use needs, and taking used buffers when
 * one used descriptor may return a whole batch. PackedQueue (packed_queue.ts) owns one when
 * it was built with `inOrder` and hands it the ring's state once
 * ({@linkcode PackedRingState}), so the out-of-order paths stay as they are.
 *
 * In order, a buffer's id is the slot of its first descriptor, so the buffers in flight are
 * a FIFO in ring order.
 *
 * @module
 */

import { VIRTQ_DESC_F_AVAIL, VIRTQ_DESC_F_USED } from "./packed_ring_math.ts";

/** Both wrap bits of a descriptor's flags. */
const WRAP_BITS = VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED;

/** What a packed ring's in-order path shares with its queue: views and driver-side arrays. */
export interface PackedRingState {
  /** Queue size. */
  readonly size: number;
  /** size - 1. */
  readonly mask: number;
  /** log2(size): a position >> shift is its lap. */
  readonly shift: number;
  /** The descriptor ring as 16-bit words ([8·slot + 6]: id, [8·slot + 7]: flags). */
  readonly d16: Uint16Array;
  /** The descriptor ring as 32-bit words ([4·slot + 2]: len). */
  readonly d32: Uint32Array;
  /** Per buffer id: the token of the buffer in flight, -1 when free. */
  readonly token: Int32Array;
  /** Per buffer id: the length posted (its writable part). */
  readonly postedLen: Uint32Array;
  /** Per buffer id: the ring slots it takes. */
  readonly chainLen: Uint8Array;
}

/**
 * In-order state and take path of one packed queue.
 *
 * @example
 * ```ts ignore
 * const io = new PackedInOrder(ring);
 * const n = io.take(lastUsed, tokens, lens, 0, 32); // -1: io.error says why; io.used: new position
 * ```
 */
export class PackedInOrder {
  /**
   * While a take has handed out only part of a batch: the buffer its used descriptor
   * (at the queue's used position, which stays there until the batch is done) names; -1
   * else.
   */
  batchLast = -1;
  /** That descriptor's length. */
  batchLen = 0;
  /** Position of the batch's next buffer to hand out. */
  batchPos = 0;
  /**
   * Per buffer id, the bytes its writable part offers: what a buffer the device returns
   * without a used descriptor of its own counts as written.
   */
  readonly fullLen: Uint32Array;
  /** The queue's used position after the last {@linkcode PackedInOrder.take}. */
  used = 0;
  /** Why the last take refused the device's descriptors ("" when it did not). */
  error = "";
  readonly #r: PackedRingState;

  /** The in-order half of the queue whose shared state is `ring`. */
  constructor(ring: PackedRingState) {
    this.#r = ring;
    this.fullLen = new Uint32Array(ring.size);
  }

  /**
   * takeUsed() with VIRTIO_F_IN_ORDER (§2.8.8): the device uses buffers in the order they
   * were made available and may return a batch with a single used descriptor, written over
   * the batch's first descriptor, naming the batch's last buffer; the next used descriptor
   * then comes after the batch's descriptors. The id must name a buffer in flight (the
   * oldest, or one made available after it); every buffer from the oldest up to it is
   * used, in order. The named one gets the length its descriptor reports; the others,
   * which the spec says the device used completely, the bytes they offered the device to
   * write (0 for a device-readable buffer such as a frame to send). A batch larger than
   * `max` is handed out over several calls; its slots are freed when the last of it is.
   * `lastUsed` is the queue's used position; returns the buffers taken and sets
   * {@linkcode PackedInOrder.used}, or -1 with {@linkcode PackedInOrder.error} set and
   * nothing taken (entries of `tokens`/`lens` from `at` may have been written).
   */
  take(lastUsed: number, tokens: Uint32Array, lens: Uint32Array, at: number, max: number): number {
    const r = this.#r;
    const room = Math.min(tokens.length, lens.length) - at;
    if (max > room) max = room;
    const d16 = r.d16, d32 = r.d32, token = r.token, mask = r.mask, size = r.size;
    let last = this.batchLast, lastLen = this.batchLen;
    // `head`: where the used descriptor of the current batch lies (the driver's used
    // position); `pos`: the next buffer to hand out, the oldest in flight.
    let head = lastUsed, pos = last >= 0 ? this.batchPos : head, n = 0;
    const start = pos;
    // One pass: each buffer goes straight to `tokens`/`lens` with its token cleared (an id
    // used twice is caught); a refused descriptor puts the tokens back from there.
    while (n < max) {
      if (last < 0) {
        // Used: both wrap bits equal the position's wrap counter (§2.8.1).
        const wrap = ((pos >> r.shift) & 1) ^ 1;
        if ((d16[8 * (pos & mask) + 7] & WRAP_BITS) !== (wrap === 1 ? WRAP_BITS : 0)) break;
        const s = pos & mask;
        const id = d16[8 * s + 6]; // x86 TSO: loaded after the flags above
        // Nothing device-writable, no length (see PackedQueue.takeUsed(); DPDK's vhost
        // leaves the length of the batch's first descriptor there).
        const len = id < size && r.postedLen[id] === 0 ? 0 : d32[4 * s + 2];
        if (id >= size || token[id] < 0) {
          return this.#refuse(
            tokens,
            at,
            n,
            start,
            `the used descriptor at ${pos} names buffer ${id}, which is not in flight (in order, it must be the oldest buffer in flight, ${s}, or one made available after it)`,
          );
        }
        if (len > r.postedLen[id]) {
          return this.#refuse(
            tokens,
            at,
            n,
            start,
            `the used descriptor at ${pos} reports ${len} bytes written into a ${
              r.postedLen[id]
            }-byte buffer`,
          );
        }
        last = id;
        lastLen = len;
        head = pos;
      }
      // The oldest buffer in flight (its id is its slot): in flight, since `last` is, and
      // no later than it.
      const id = pos & mask;
      tokens[at + n] = token[id];
      lens[at + n] = id === last ? lastLen : this.fullLen[id];
      token[id] = -1;
      pos = (pos + r.chainLen[id]) & 0xffff;
      n++;
      if (id === last) {
        last = -1;
        head = pos;
      }
    }
    this.used = head;
    if (n === 0) return 0;
    this.batchLast = last;
    this.batchLen = lastLen;
    this.batchPos = pos;
    return n;
  }

  /**
   * Puts back the tokens of the `n` buffers a refused take had handed to `tokens` from
   * `at`, in ring order from position `start`; records why; returns -1.
   */
  #refuse(tokens: Uint32Array, at: number, n: number, start: number, why: string): number {
    const r = this.#r;
    for (let i = 0, p = start; i < n; i++) {
      const id = p & r.mask;
      r.token[id] = tokens[at + i];
      p = (p + r.chainLen[id]) & 0xffff;
    }
    this.error = why;
    return -1;
  }
}
