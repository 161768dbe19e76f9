/**
 * A forwarding worker's receive queue (receiveqN, virtio 1.x §5.1.6.3–5.1.6.4): the
 * engine's counterpart of `RxQueue`, over a {@linkcode SplitQueue} the worker adopted and
 * buffers of its {@linkcode PartitionPool}, with its counters in shared memory.
 *
 * Unlike `RxQueue` it keeps no steering epochs: the main thread sets the steering rule
 * before the workers adopt the queues and does not switch it while they run.
 *
 * Like `RxQueue`, a queue the device had let run dry wakes the port's other receive
 * queues when it refills: QEMU's software RSS parks a frame bound for a starved queue in
 * the tap queue it came from and reads that tap queue again only when the receive queue
 * of the same number is notified. The device asks for a notification (EVENT_IDX,
 * §2.7.10) only when it ran out, so that is when the siblings are woken. Their notify
 * registers belong to other workers' queues; a notification is a lone 16-bit store (or a
 * posted message), which any thread may send: it changes no driver-side state.
 *
 * Hot path: {@linkcode EngineRxQueue.rxBurst} takes used buffers, refills the ring with as
 * many and publishes them with one index store (and at most one notification). It
 * allocates nothing.
 *
 * @module
 */

import type { SplitQueue } from "../virtio/split_queue.ts";
import {
  P_DROP_NO_BUFFER,
  P_DROP_RUNT,
  P_RX_BURSTS,
  P_RX_BYTES,
  P_RX_KICKS,
  P_RX_KICKS_SUPPRESSED,
  P_RX_PACKETS,
  P_RX_SIBLING_WAKES,
} from "./counters.ts";
import { NO_BUFFER, type PartitionPool } from "./partition_pool.ts";

/**
 * The driver side of one receive queue in a forwarding worker.
 *
 * @example
 * ```ts ignore
 * const rx = new EngineRxQueue(vq, pool, 12, counters, portBase(0));
 * const n = rx.rxBurst(bufs, lens, 32); // bufs[i]: buffer index, lens[i]: frame length
 * ```
 */
export class EngineRxQueue {
  /** The virtqueue. */
  readonly vq: SplitQueue;
  /** Where buffers come from and go back to. */
  readonly pool: PartitionPool;
  /** Bytes of virtio_net_hdr in front of every frame. */
  readonly headerSize: number;
  readonly #c: Float64Array;
  readonly #base: number;
  readonly #len: number;
  readonly #siblings: readonly (() => void)[];

  /**
   * Wraps `vq`; counts into `counters` from slot `base` (a port block, see counters.ts).
   * `siblings` notify the port's other receive queues.
   */
  constructor(
    vq: SplitQueue,
    pool: PartitionPool,
    headerSize: number,
    counters: Float64Array,
    base: number,
    siblings: readonly (() => void)[] = [],
  ) {
    this.vq = vq;
    this.pool = pool;
    this.headerSize = headerSize;
    this.#c = counters;
    this.#base = base;
    this.#len = pool.bufferSize;
    this.#siblings = siblings;
  }

  /** Fills every free descriptor with an empty buffer and publishes them. */
  refill(): void {
    const vq = this.vq, pool = this.pool, len = this.#len;
    let missing = 0;
    while (vq.freeCount > 0) {
      const b = pool.alloc();
      if (b === NO_BUFFER) {
        missing = vq.freeCount;
        break;
      }
      vq.add(b, pool.iovaLo[b], pool.iovaHi[b], len, true);
    }
    const c = this.#c, o = this.#base;
    if (vq.publish()) {
      const sib = this.#siblings;
      for (let i = 0; i < sib.length; i++) sib[i]();
      c[o + P_RX_SIBLING_WAKES] += sib.length;
    }
    if (missing > 0) c[o + P_DROP_NO_BUFFER] += missing;
    c[o + P_RX_KICKS] = vq.kicks;
    c[o + P_RX_KICKS_SUPPRESSED] = vq.kicksSuppressed;
  }

  /**
   * Receives up to `max` frames: `bufs[i]` is the buffer index (the frame starts at
   * `pool.offset(bufs[i]) + headerSize`), `lens[i]` the frame length. The caller owns
   * the buffers. Refills the ring with as many buffers as it took.
   */
  rxBurst(bufs: Uint32Array, lens: Uint32Array, max: number): number {
    const got = this.vq.takeUsed(bufs, lens, 0, max);
    if (got === 0) return 0;
    const hdr = this.headerSize, pool = this.pool, c = this.#c, o = this.#base;
    let n = 0;
    let bytes = 0;
    for (let i = 0; i < got; i++) {
      const len = lens[i];
      if (len <= hdr) {
        // §5.1.6.4: a used buffer holds the header and then the packet; one without a
        // packet has nothing to deliver: count it and recycle the buffer.
        c[o + P_DROP_RUNT]++;
        pool.free(bufs[i]);
        continue;
      }
      bufs[n] = bufs[i];
      lens[n] = len - hdr;
      bytes += len - hdr;
      n++;
    }
    c[o + P_RX_PACKETS] += n;
    c[o + P_RX_BYTES] += bytes;
    c[o + P_RX_BURSTS]++;
    this.refill();
    return n;
  }
}
