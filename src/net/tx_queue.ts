/**
 * A transmit queue (transmitqN, virtio 1.x §5.1.6.2): sends frames that sit in pool
 * buffers, header in front, and reclaims completed buffers in bulk.
 *
 * Hot path: {@linkcode TxQueue.txBurst} reclaims what the device finished, zeroes each
 * frame's virtio_net_hdr (no offloads: flags 0, GSO_NONE) unless it holds an offload
 * request (tx_offload.ts, docs/offloads.md), posts one descriptor per frame
 * and publishes the burst with one index store and at most one notification.
 *
 * One implementation for a port's queues on the main thread and for a forwarding worker's
 * (src/engine/worker.ts): the pool is any {@linkcode PacketBuffers}, and the counters are
 * slots of a Float64Array (queue_counters.ts), private or in shared memory.
 *
 * @module
 */

import { NO_BUFFER, type PacketBuffers } from "../dma/packet_buffers.ts";
import type { Virtqueue } from "../virtio/virtqueue.ts";
import {
  P_DROP_TOO_LONG,
  P_TX_BYTES,
  P_TX_KICKS,
  P_TX_KICKS_SUPPRESSED,
  P_TX_MULTICAST,
  P_TX_OFFLOADED,
  P_TX_PACKETS,
  P_TX_REFUSED_RING_FULL,
  PORT_SLOTS,
} from "./queue_counters.ts";
import { classifyFrames } from "./frame_class.ts";

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
  readonly vq: Virtqueue;
  /** The pool completed buffers return to. */
  readonly pool: PacketBuffers;
  /** Bytes of virtio_net_hdr in front of every frame. */
  readonly headerSize: number;
  readonly #c: Float64Array;
  readonly #o: number;
  readonly #doneTokens: Uint32Array;
  readonly #doneLens: Uint32Array;
  // A frame that spans buffers (mergeable receive buffers) goes out as a descriptor chain,
  // or behind one indirect descriptor: its pieces, and whether the last one found the ring
  // too full.
  readonly #segLo: Uint32Array;
  readonly #segHi: Uint32Array;
  readonly #segLen: Uint32Array;
  #chainFull = 0;
  /**
   * 1 when the last {@linkcode TxQueue.txBurst} stopped at a frame no ring slot count can
   * take (longer than its buffers, or than the ring): that frame, at the index txBurst
   * returned, is counted in dropsTooLong and the caller should free it, not retry it.
   */
  stoppedTooLong = 0;
  #offloaded = 0;

  /**
   * The counter block this queue counts into (queue_counters.ts), from
   * {@linkcode TxQueue.counterBase}: for src/engine/xstats.ts's portXstats.
   */
  get counters(): Float64Array {
    return this.#c;
  }

  /** First slot of this queue's block in {@linkcode TxQueue.counters}. */
  get counterBase(): number {
    return this.#o;
  }

  /** Frames handed to the device. */
  get packets(): number {
    return this.#c[this.#o + P_TX_PACKETS];
  }

  /** Bytes of frames handed to the device (headers excluded). */
  get bytes(): number {
    return this.#c[this.#o + P_TX_BYTES];
  }

  /** Frames refused because the ring was full (the caller kept them). */
  get ringFull(): number {
    return this.#c[this.#o + P_TX_REFUSED_RING_FULL];
  }

  /** Frames refused because they were longer than a buffer can hold. */
  get tooLong(): number {
    return this.#c[this.#o + P_DROP_TOO_LONG];
  }

  /**
   * Wraps `vq`; completed buffers go back to `pool`. Counts into `counters` from slot
   * `base` (a block laid out by queue_counters.ts; by default a private one).
   */
  constructor(
    vq: Virtqueue,
    pool: PacketBuffers,
    headerSize: number,
    counters: Float64Array = new Float64Array(PORT_SLOTS),
    base = 0,
  ) {
    this.vq = vq;
    this.pool = pool;
    this.headerSize = headerSize;
    this.#c = counters;
    this.#o = base;
    if (headerSize % 4 !== 0) {
      throw new RangeError(`a ${headerSize}-byte virtio-net header is not a multiple of 4 bytes`);
    }
    this.#doneTokens = new Uint32Array(vq.size);
    this.#doneLens = new Uint32Array(vq.size);
    this.#segLo = new Uint32Array(vq.size);
    this.#segHi = new Uint32Array(vq.size);
    this.#segLen = new Uint32Array(vq.size);
  }

  /** As RxQueue.classify: count the extended statistics' size bins, multicast, broadcast. */
  classify = true;

  /** Returns every buffer the device has finished with to the pool; returns how many. */
  reclaim(): number {
    const n = this.vq.takeUsed(this.#doneTokens, this.#doneLens, 0, this.vq.size);
    const t = this.#doneTokens, pool = this.pool;
    for (let i = 0; i < n; i++) pool.free(t[i]);
    return n;
  }

  /**
   * Sends `bufs[0..count)` whose frames (at `pool.offset(b) + headerSize`) are `lens[i]`
   * bytes long. Returns how many were queued, in order; the rest still belong to the
   * caller (retry or free them, as DPDK's rte_eth_tx_burst): the ring was full, or frame
   * `result` is longer than its buffers or the ring can take
   * ({@linkcode TxQueue.stoppedTooLong}: free that one). A frame that spans buffers through
   * `pool.next` (mergeable receive buffers, every buffer but the last full) goes out as
   * one descriptor chain, or with VIRTIO_F_INDIRECT_DESC as one indirect descriptor (one
   * ring slot) naming a table of its pieces (docs/indirect.md).
   */
  txBurst(bufs: Uint32Array, lens: Uint32Array, count: number): number {
    const vq = this.vq, pool = this.pool, words = pool.words, hdr = this.headerSize;
    const hdrWords = hdr >> 2, mark = pool.txHeader;
    const c = this.#c, o = this.#o;
    if (vq.freeCount < count) this.reclaim();
    const room = pool.bufferSize - hdr;
    const free = vq.freeCount;
    let take = count < free ? count : free;
    let n = 0;
    let bytes = 0;
    let offloaded = 0;
    for (; n < take; n++) {
      const b = bufs[n];
      const len = lens[n];
      if (len > room) {
        // Not reached by frames that fit a buffer: the loop stays as V8 optimised it.
        if (this.#chain(b, len) === 0) break;
        // The frames after it get one descriptor each, of those still free.
        const left = n + 1 + vq.freeCount;
        take = count < left ? count : left;
        bytes += len;
        offloaded += this.#offloaded;
        continue;
      }
      // §5.1.6.2: no offloads asked for: flags 0, gso_type VIRTIO_NET_HDR_GSO_NONE.
      // Zeroed a word at a time (buffers and VERSION_1 headers are multiples of 4 bytes):
      // TypedArray#fill calls into the runtime, which cost a third of the forwarding
      // loop's time for a 12-byte header (docs/performance.md). A header that holds an
      // offload request (tx_offload.ts) is kept: masked, not branched on (see below).
      const w = pool.offset(b) >> 2, keep = -mark[b];
      for (let k = 0; k < hdrWords; k++) words[w + k] &= keep;
      offloaded += mark[b];
      mark[b] = 0;
      vq.add(b, pool.iovaLo[b], pool.iovaHi[b], hdr + len, false);
      bytes += len;
    }
    vq.publish();
    // DPDK's extended statistics: each frame queued (bufs[0..n)), once, by its whole length.
    if (this.classify) classifyFrames(c, o + P_TX_MULTICAST, pool, hdr, bufs, lens, n);
    // Counted by arithmetic, not in branches of their own: a full ring first happens when
    // the device first falls behind, maybe long after V8 optimised this, and code it has
    // never run would cost a recompile (src/engine/worker.ts).
    const stoppedEarly = (n < take ? 1 : 0) * (1 - this.#chainFull);
    this.#chainFull = 0;
    this.stoppedTooLong = stoppedEarly;
    c[o + P_DROP_TOO_LONG] += stoppedEarly;
    c[o + P_TX_REFUSED_RING_FULL] += (1 - stoppedEarly) * (count - n);
    c[o + P_TX_PACKETS] += n;
    c[o + P_TX_BYTES] += bytes;
    c[o + P_TX_OFFLOADED] += offloaded;
    c[o + P_TX_KICKS] = vq.kicks;
    c[o + P_TX_KICKS_SUPPRESSED] = vq.kicksSuppressed;
    return n;
  }

  /**
   * Posts frame `b` (`len` bytes) that spans buffers as one chain of device-readable
   * descriptors (§2.7.6, §2.8.6): the header and the first buffer's bytes, then each
   * following buffer; with the queue's indirect tables, when the pieces fit one, as one
   * indirect descriptor (§2.7.5.3, §2.8.19). Returns the ring slots used; 0 when `b` is no
   * such frame or a chain longer than the ring takes (too long), or the ring has too few
   * free slots now (then #chainFull is 1).
   */
  #chain(b: number, len: number): number {
    const pool = this.pool, next = pool.next, size = pool.bufferSize, hdr = this.headerSize;
    if (next[b] === NO_BUFFER) return 0; // one buffer: too long for it
    const lo = this.#segLo, hi = this.#segHi, lens = this.#segLen;
    let parts = 0, left = len - (size - hdr), at = b;
    lo[0] = pool.iovaLo[b];
    hi[0] = pool.iovaHi[b];
    lens[0] = size;
    for (parts = 1; left > 0; parts++) {
      at = next[at];
      if (at === NO_BUFFER || parts === lens.length) return 0; // too long for its buffers
      lo[parts] = pool.iovaLo[at];
      hi[parts] = pool.iovaHi[at];
      lens[parts] = left < size ? left : size;
      left -= size;
    }
    // Behind one indirect descriptor when it fits a table: one slot (addSegments decides
    // the same way, by indirectMax).
    const slots = parts <= this.vq.indirectMax ? 1 : parts;
    if (slots > this.vq.freeCount) this.reclaim();
    if (slots > this.vq.freeCount) {
      this.#chainFull = 1;
      return 0;
    }
    // §5.1.6.2: zeroed (no offloads) unless it holds an offload request (tx_offload.ts).
    const w = pool.offset(b) >> 2, keep = -pool.txHeader[b];
    for (let k = 0; k < hdr >> 2; k++) pool.words[w + k] &= keep;
    // Refused with room enough: longer than any chain the ring takes (packed: 255).
    if (!this.vq.addSegments(b, lo, hi, lens, parts)) return 0;
    this.#offloaded = pool.txHeader[b];
    pool.txHeader[b] = 0;
    return slots;
  }
}
