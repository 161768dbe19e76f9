/**
 * A forwarding worker's transmit queue (transmitqN, virtio 1.x §5.1.6.2): the engine's
 * counterpart of `TxQueue`, over a {@linkcode SplitQueue} the worker adopted; completed
 * buffers go back to the worker's {@linkcode PartitionPool}; counters live in shared
 * memory.
 *
 * Hot path: {@linkcode EngineTxQueue.txBurst} reclaims what the device finished, zeroes
 * each frame's virtio_net_hdr (no offloads: flags 0, GSO_NONE, §5.1.6.2), posts one
 * descriptor per frame and publishes the burst with one index store and at most one
 * notification. It allocates nothing.
 *
 * @module
 */

import type { SplitQueue } from "../virtio/split_queue.ts";
import {
  P_DROP_TOO_LONG,
  P_TX_BYTES,
  P_TX_KICKS,
  P_TX_KICKS_SUPPRESSED,
  P_TX_PACKETS,
} from "./counters.ts";
import type { PartitionPool } from "./partition_pool.ts";

/**
 * The driver side of one transmit queue in a forwarding worker.
 *
 * @example
 * ```ts ignore
 * const tx = new EngineTxQueue(vq, pool, 12, counters, portBase(1));
 * const sent = tx.txBurst(bufs, lens, n);
 * for (let i = sent; i < n; i++) pool.free(bufs[i]); // the ring was full
 * ```
 */
export class EngineTxQueue {
  /** The virtqueue. */
  readonly vq: SplitQueue;
  /** The partition completed buffers return to. */
  readonly pool: PartitionPool;
  /** Bytes of virtio_net_hdr in front of every frame. */
  readonly headerSize: number;
  readonly #c: Float64Array;
  readonly #base: number;
  readonly #doneTokens: Uint32Array;
  readonly #doneLens: Uint32Array;

  /** Wraps `vq`; counts into `counters` from slot `base` (a port block). */
  constructor(
    vq: SplitQueue,
    pool: PartitionPool,
    headerSize: number,
    counters: Float64Array,
    base: number,
  ) {
    this.vq = vq;
    this.pool = pool;
    this.headerSize = headerSize;
    this.#c = counters;
    this.#base = base;
    this.#doneTokens = new Uint32Array(vq.size);
    this.#doneLens = new Uint32Array(vq.size);
  }

  /** Returns every buffer the device has finished with to the pool; returns how many. */
  reclaim(): number {
    const n = this.vq.takeUsed(this.#doneTokens, this.#doneLens, 0, this.vq.size);
    const t = this.#doneTokens, pool = this.pool;
    for (let i = 0; i < n; i++) pool.free(t[i]);
    return n;
  }

  /**
   * Queues `bufs[0..count)` (frames of `lens[i]` bytes after the header room) and
   * publishes them. Returns how many were queued, in order; the rest still belong to the
   * caller (the ring was full, or frame `result` is longer than a buffer can hold).
   */
  txBurst(bufs: Uint32Array, lens: Uint32Array, count: number): number {
    const vq = this.vq, pool = this.pool, data = pool.data, hdr = this.headerSize;
    if (vq.freeCount < count) this.reclaim();
    const room = pool.bufferSize - hdr;
    let n = 0;
    let bytes = 0;
    for (; n < count; n++) {
      if (vq.freeCount === 0) break;
      const b = bufs[n];
      const len = lens[n];
      if (len > room) {
        this.#c[this.#base + P_DROP_TOO_LONG]++;
        break;
      }
      const off = pool.offset(b);
      data.fill(0, off, off + hdr);
      vq.add(b, pool.iovaLo[b], pool.iovaHi[b], hdr + len, false);
      bytes += len;
    }
    vq.publish();
    const c = this.#c, o = this.#base;
    c[o + P_TX_PACKETS] += n;
    c[o + P_TX_BYTES] += bytes;
    c[o + P_TX_KICKS] = vq.kicks;
    c[o + P_TX_KICKS_SUPPRESSED] = vq.kicksSuppressed;
    return n;
  }
}
