/**
 * A receive queue (receiveqN, virtio 1.x §5.1.6.3–5.1.6.4): keeps the device supplied with
 * empty buffers and hands received frames to the application as buffer indices.
 *
 * Hot path: {@linkcode RxQueue.rxBurst} takes used buffers, refills the ring with as many
 * fresh buffers and publishes them with one index store (and at most one notification).
 * It allocates nothing.
 *
 * @module
 */

import { type BufferPool, NO_BUFFER } from "../dma/buffer_pool.ts";
import { DriverError } from "../errors.ts";
import { HDR_HASH_REPORT, HDR_HASH_VALUE } from "./header.ts";
import { ringDistance } from "../virtio/ring_math.ts";
import type { SplitQueue } from "../virtio/split_queue.ts";

/** Steering switches a receive queue can have pending (not yet delivered) at once. */
export const MAX_PENDING_EPOCHS = 16;

/**
 * The driver side of one receive queue.
 *
 * @example
 * ```ts ignore
 * const bufs = new Uint32Array(32), lens = new Uint32Array(32);
 * const n = port.rx(0).rxBurst(bufs, lens, 32);
 * for (let i = 0; i < n; i++) console.log(lens[i]); // frame lengths, header excluded
 * ```
 */
export class RxQueue {
  /** The virtqueue. */
  readonly vq: SplitQueue;
  /** Where buffers come from and go back to. */
  readonly pool: BufferPool;
  /** Bytes of virtio_net_hdr in front of every frame. */
  readonly headerSize: number;
  /** Frames delivered to the application. */
  packets = 0;
  /** Bytes of frames delivered (headers excluded). */
  bytes = 0;
  /** Drops: the device returned a buffer too short to hold a header. */
  dropsRunt = 0;
  /** Times the ring could not be refilled because the pool was empty. */
  refillFailures = 0;
  readonly #len: number;
  readonly #view: DataView;
  // Pending steering epochs, a FIFO: the boundary (used index) and shared gate of each.
  readonly #barriers = new Uint16Array(MAX_PENDING_EPOCHS);
  readonly #gates: (Int32Array | null)[] = new Array(MAX_PENDING_EPOCHS).fill(null);
  #epochHead = 0;
  #epochs = 0;
  #arrived = false;

  /**
   * hash_value of a received buffer's header (VIRTIO_NET_F_HASH_REPORT negotiated, i.e.
   * headerSize 20; 0 when the device computed none).
   */
  hashValue(buf: number): number {
    return this.#view.getUint32(this.pool.offset(buf) + HDR_HASH_VALUE, true);
  }

  /** hash_report of a received buffer's header: VIRTIO_NET_HASH_REPORT_* (0: none). */
  hashReport(buf: number): number {
    return this.#view.getUint16(this.pool.offset(buf) + HDR_HASH_REPORT, true);
  }

  /** Wraps `vq`, posting buffers of `pool` of `pool.bufferSize` bytes. */
  constructor(vq: SplitQueue, pool: BufferPool, headerSize: number) {
    this.vq = vq;
    this.pool = pool;
    this.headerSize = headerSize;
    this.#len = pool.bufferSize;
    this.#view = new DataView(pool.data.buffer, pool.data.byteOffset, pool.data.byteLength);
  }

  /** Fills every free descriptor with an empty buffer and publishes them. */
  refill(): void {
    const vq = this.vq, pool = this.pool;
    while (vq.freeCount > 0) {
      const b = pool.alloc();
      if (b === NO_BUFFER) {
        this.refillFailures++;
        break;
      }
      vq.add(b, pool.iovaLo[b], pool.iovaHi[b], this.#len, true);
    }
    vq.publish();
  }

  /**
   * Starts a steering epoch (see `Steering.set`): frames this queue holds up to now were
   * steered by the previous rule and are delivered first; frames after them wait until
   * every queue sharing `gate` has delivered its own. `gate[0]` counts the queues still
   * delivering (an Int32Array so workers can share it; updated atomically). Switches made
   * before an earlier gate opened queue up behind it, each with its own boundary.
   */
  beginEpoch(gate: Int32Array): void {
    if (this.#epochs === MAX_PENDING_EPOCHS) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${this.vq.name} still holds frames of ${MAX_PENDING_EPOCHS} earlier steering switches: poll every queue pair before switching again.`,
      );
    }
    const i = (this.#epochHead + this.#epochs) % MAX_PENDING_EPOCHS;
    this.#barriers[i] = this.vq.deviceUsedIdx();
    this.#gates[i] = gate;
    this.#epochs++;
  }

  /** Steering switches whose old frames this queue has not finished delivering. */
  get pendingEpochs(): number {
    return this.#epochs;
  }

  /** True while frames of this queue are held back by a steering switch. */
  get held(): boolean {
    return this.#epochs > 0 && this.#arrived;
  }

  #gated(max: number): number {
    while (this.#epochs > 0) {
      const h = this.#epochHead;
      const room = ringDistance(this.vq.lastUsedIdx, this.#barriers[h]);
      if (room > 0) return room < max ? room : max;
      const gate = this.#gates[h]!;
      if (!this.#arrived) {
        this.#arrived = true;
        Atomics.sub(gate, 0, 1);
      }
      if (Atomics.load(gate, 0) > 0) return 0; // other queues still hold older frames
      this.#gates[h] = null;
      this.#epochHead = (h + 1) % MAX_PENDING_EPOCHS;
      this.#epochs--;
      this.#arrived = false;
    }
    return max;
  }

  /**
   * Receives up to `max` frames. For each, `bufs[i]` is the buffer index (its frame starts
   * at `pool.offset(bufs[i]) + headerSize`) and `lens[i]` the frame length. The caller
   * owns the buffers: it frees them to the pool or transmits them.
   */
  rxBurst(bufs: Uint32Array, lens: Uint32Array, max: number): number {
    if (this.#epochs > 0) {
      max = this.#gated(max);
      if (max === 0) return 0;
    }
    const got = this.vq.takeUsed(bufs, lens, 0, max);
    if (got === 0) return 0;
    const hdr = this.headerSize;
    let n = 0;
    let bytes = 0;
    for (let i = 0; i < got; i++) {
      const len = lens[i];
      if (len <= hdr) {
        // A buffer without a frame: nothing to deliver; count it and recycle the buffer.
        this.dropsRunt++;
        this.pool.free(bufs[i]);
        continue;
      }
      bufs[n] = bufs[i];
      lens[n] = len - hdr;
      bytes += len - hdr;
      n++;
    }
    this.packets += n;
    this.bytes += bytes;
    this.refill();
    return n;
  }
}
