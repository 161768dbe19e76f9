/**
 * A transmit queue (transmitqN, virtio 1.x §5.1.6.2): sends frames that sit in pool
 * buffers, header in front, and reclaims completed buffers in bulk.
 *
 * Hot path: {@linkcode TxQueue.txBurst} reclaims what the device finished, zeroes each
 * frame's virtio_net_hdr (no offloads: flags 0, GSO_NONE), posts one descriptor per frame
 * and publishes the burst with one index store and at most one notification.
 *
 * @module
 */

import type { BufferPool } from "../dma/buffer_pool.ts";
import type { SplitQueue } from "../virtio/split_queue.ts";

/**
 * The driver side of one transmit queue.
 *
 * @example
 * ```ts ignore
 * const sent = port.tx(0).txBurst(bufs, lens, n);
 * for (let i = sent; i < n; i++) pool.free(bufs[i]); // not sent: the caller still owns them
 * ```
 */
export class TxQueue {
  /** The virtqueue. */
  readonly vq: SplitQueue;
  /** The pool completed buffers return to. */
  readonly pool: BufferPool;
  /** Bytes of virtio_net_hdr in front of every frame. */
  readonly headerSize: number;
  /** Frames handed to the device. */
  packets = 0;
  /** Bytes of frames handed to the device (headers excluded). */
  bytes = 0;
  /** Frames refused because the ring was full (the caller kept them). */
  ringFull = 0;
  /** Frames refused because they were longer than a buffer can hold. */
  tooLong = 0;
  readonly #doneTokens: Uint32Array;
  readonly #doneLens: Uint32Array;

  /** Wraps `vq`; completed buffers go back to `pool`. */
  constructor(vq: SplitQueue, pool: BufferPool, headerSize: number) {
    this.vq = vq;
    this.pool = pool;
    this.headerSize = headerSize;
    this.#doneTokens = new Uint32Array(vq.size);
    this.#doneLens = new Uint32Array(vq.size);
  }

  /** Returns every buffer the device has finished with to the pool; returns how many. */
  reclaim(): number {
    const n = this.vq.takeUsed(this.#doneTokens, this.#doneLens, 0, this.vq.size);
    for (let i = 0; i < n; i++) this.pool.free(this.#doneTokens[i]);
    return n;
  }

  /**
   * Sends `bufs[0..count)` whose frames (at `pool.offset(b) + headerSize`) are `lens[i]`
   * bytes long. Returns how many were queued, in order; the rest still belong to the
   * caller (retry or free them, as DPDK's rte_eth_tx_burst).
   */
  txBurst(bufs: Uint32Array, lens: Uint32Array, count: number): number {
    const vq = this.vq, pool = this.pool, data = pool.data, hdr = this.headerSize;
    if (vq.freeCount < count) this.reclaim();
    const room = pool.bufferSize - hdr;
    let n = 0;
    let bytes = 0;
    for (; n < count; n++) {
      const b = bufs[n];
      const len = lens[n];
      if (len > room) {
        this.tooLong++;
        break;
      }
      if (vq.freeCount === 0) {
        this.ringFull += count - n;
        break;
      }
      const off = pool.offset(b);
      data.fill(0, off, off + hdr);
      vq.add(b, pool.iovaLo[b], pool.iovaHi[b], hdr + len, false);
      bytes += len;
    }
    this.packets += n;
    this.bytes += bytes;
    vq.publish();
    return n;
  }
}
