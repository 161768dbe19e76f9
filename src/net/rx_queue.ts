/**
 * A receive queue (receiveqN, virtio 1.x §5.1.6.3–5.1.6.4): keeps the device supplied with
 * empty buffers and hands received frames to the application as buffer indices.
 *
 * Hot path: {@linkcode RxQueue.rxBurst} takes used buffers, refills the ring with as many
 * fresh buffers and publishes them with one index store (and at most one notification).
 * It allocates nothing.
 *
 * One implementation for a port's queues on the main thread and for a forwarding worker's
 * (src/engine/worker.ts): the pool is any {@linkcode PacketBuffers}, and the counters are
 * slots of a Float64Array (queue_counters.ts), private or in shared memory.
 *
 * @module
 */

import { NO_BUFFER, type PacketBuffers } from "../dma/packet_buffers.ts";
import { DriverError } from "../errors.ts";
import {
  P_DROP_BAD_MERGE,
  P_DROP_BAD_OFFLOAD,
  P_DROP_NO_BUFFER,
  P_DROP_RUNT,
  P_RX_BURSTS,
  P_RX_BYTES,
  P_RX_KICKS,
  P_RX_KICKS_SUPPRESSED,
  P_RX_MULTICAST,
  P_RX_PACKETS,
  P_RX_REFILL_FAILURES,
  P_RX_SIBLING_WAKES,
  PORT_SLOTS,
} from "./queue_counters.ts";
import { HDR_HASH_REPORT, HDR_HASH_VALUE, HDR_NUM_BUFFERS } from "./header.ts";
import type { FrameOffloads } from "./offloads.ts";
import { takeRxOffloads } from "./rx_offload.ts";
import { classifyFrames } from "./frame_class.ts";
import {
  positionAdd,
  positionDistance,
  type QueueNotifier,
  type Virtqueue,
} from "../virtio/virtqueue.ts";

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
  readonly vq: Virtqueue;
  /** Where buffers come from and go back to. */
  readonly pool: PacketBuffers;
  /** Bytes of virtio_net_hdr in front of every frame. */
  readonly headerSize: number;
  readonly #c: Float64Array;
  readonly #o: number;
  readonly #len: number;
  readonly #view: DataView;
  // Pending steering epochs, a FIFO: the boundary (used index) and shared gate of each.
  readonly #barriers = new Uint16Array(MAX_PENDING_EPOCHS);
  readonly #gates: (Int32Array | null)[] = new Array(MAX_PENDING_EPOCHS).fill(null);
  #epochHead = 0;
  #epochs = 0;
  #arrived = false;
  // Frames taken off the ring while the queue is held, so the device never runs out of
  // buffers (a device that cannot deliver queues frames of its own, and QEMU may then hand
  // them over late, out of order). Delivered first, in ring order, once the gate opens.
  readonly #holdBufs: Uint32Array;
  readonly #holdLens: Uint32Array;
  #holdStart = 0;
  #holdCount = 0;
  // VIRTIO_NET_F_MRG_RXBUF: a frame may span buffers (docs/mergeable.md). The one whose
  // buffers did not all come in one burst: its first and last buffer, buffers still to
  // come, and bytes so far.
  readonly #mergeable: boolean;
  #partHead = NO_BUFFER;
  #partTail = NO_BUFFER;
  #partNeed = 0;
  #partLen = 0;
  #partBad = false;
  // Receive offloads negotiated (docs/offloads.md): where each frame's validated fields go.
  #offl: FrameOffloads | null = null;
  #offlMask = 0;

  /**
   * The counter block this queue counts into (queue_counters.ts), from
   * {@linkcode RxQueue.counterBase}: for src/engine/xstats.ts's portXstats.
   */
  get counters(): Float64Array {
    return this.#c;
  }

  /** First slot of this queue's block in {@linkcode RxQueue.counters}. */
  get counterBase(): number {
    return this.#o;
  }

  /** Frames delivered to the application. */
  get packets(): number {
    return this.#c[this.#o + P_RX_PACKETS];
  }

  /** Bytes of frames delivered (headers excluded). */
  get bytes(): number {
    return this.#c[this.#o + P_RX_BYTES];
  }

  /** Drops: the device returned a buffer too short to hold a header. */
  get dropsRunt(): number {
    return this.#c[this.#o + P_DROP_RUNT];
  }

  /** Drops: mergeable receive buffers that broke §5.1.6.4's rules (their frame is lost). */
  get dropsBadMerge(): number {
    return this.#c[this.#o + P_DROP_BAD_MERGE];
  }

  /** Drops: offload fields in the header that break §5.1.6.4.1 (rx_offload.ts). */
  get dropsBadOffload(): number {
    return this.#c[this.#o + P_DROP_BAD_OFFLOAD];
  }

  /**
   * Validates each received frame's offload fields (GUEST_CSUM, GUEST_TSO4/6 negotiated:
   * `mask` from offloads.ts) into `frames`, entry i for `bufs[i]` of each rxBurst, which
   * then returns at most `frames.capacity` frames.
   */
  enableOffloads(frames: FrameOffloads, mask: number): void {
    this.#offl = frames;
    this.#offlMask = mask;
  }

  /** The validated offload fields of the last burst's frames (null: not enabled). */
  get offloads(): FrameOffloads | null {
    return this.#offl;
  }

  /** Times the ring could not be refilled whole because the pool was empty. */
  get refillFailures(): number {
    return this.#c[this.#o + P_RX_REFILL_FAILURES];
  }

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

  /**
   * Wraps `vq`, posting buffers of `pool` of `pool.bufferSize` bytes. Counts into
   * `counters` from slot `base` (a block laid out by queue_counters.ts; by default a
   * private one). `mergeable`: VIRTIO_NET_F_MRG_RXBUF was negotiated, so a frame may
   * come in several buffers, linked through `pool.next`.
   */
  constructor(
    vq: Virtqueue,
    pool: PacketBuffers,
    headerSize: number,
    counters: Float64Array = new Float64Array(PORT_SLOTS),
    base = 0,
    mergeable = false,
  ) {
    this.vq = vq;
    this.pool = pool;
    this.headerSize = headerSize;
    this.#c = counters;
    this.#o = base;
    this.#len = pool.bufferSize;
    this.#view = new DataView(pool.data.buffer, pool.data.byteOffset, pool.data.byteLength);
    this.#holdBufs = new Uint32Array(4 * vq.size);
    this.#holdLens = new Uint32Array(4 * vq.size);
    this.#mergeable = mergeable;
  }

  /**
   * Notify the port's other receive queues (set by the port, or by a worker for the queues
   * of other workers). When this queue's device ran out of buffers, they are notified too:
   * QEMU's software RSS parks a frame bound for a starved queue in the tap queue it came
   * from, and reads that tap queue again only when the receive queue of the same number is
   * notified — without this, a queue that never runs dry itself would hold such a frame
   * back for as long as it keeps its buffers. A notification is a lone store to the
   * device (or a posted message) that changes no driver-side state, so any thread may send
   * one for a queue another thread drives. They are the virtqueue's
   * `Virtqueue.alsoNotify`: notified from the same call site as this queue.
   */
  set siblings(list: readonly QueueNotifier[]) {
    this.vq.alsoNotify = list;
  }

  /** The notifiers set with the setter of the same name. */
  get siblings(): readonly QueueNotifier[] {
    return this.vq.alsoNotify;
  }

  /**
   * Asked, once this queue has delivered every frame of a steering switch's old rule and
   * before it tells the other queues so, whether the application has finished with them;
   * false holds the gate (asked again at the next burst). A forwarding worker answers
   * true once the frames it forwarded have left through the device (Forwarder.txSettled),
   * so a flow that moves to another worker cannot overtake its old frames on the wire.
   * Null: frames count as finished once delivered.
   */
  arrivalGuard: (() => boolean) | null = null;

  /**
   * Counts each frame's size bin, multicast and broadcast (the extended statistics,
   * frame_class.ts); default true. False leaves those counters at 0: the classification
   * costs the forwarding loop 15–30 % at 64 bytes (docs/performance.md). Set before use.
   */
  classify = true;

  /** Fills every free descriptor with an empty buffer and publishes them. */
  refill(): void {
    const vq = this.vq, pool = this.pool, len = this.#len, c = this.#c, o = this.#o;
    // The free count once, not per buffer: a call V8 did not inline in the packed copy.
    for (let free = vq.freeCount; free > 0; free--) {
      const b = pool.alloc();
      if (b === NO_BUFFER) {
        c[o + P_RX_REFILL_FAILURES]++;
        c[o + P_DROP_NO_BUFFER] += free;
        break;
      }
      vq.add(b, pool.iovaLo[b], pool.iovaHi[b], len, true);
    }
    // A notification the device asked for means it had run dry (it re-arms avail_event
    // only then, §2.7.10): publish() wakes the other receive queues with it (`siblings`).
    // Counted without a branch: code first reached late costs a recompile (split_queue.ts).
    c[o + P_RX_SIBLING_WAKES] += (vq.publish() ? 1 : 0) * vq.alsoNotifyCount;
    c[o + P_RX_KICKS] = vq.kicks;
    c[o + P_RX_KICKS_SUPPRESSED] = vq.kicksSuppressed;
  }

  /**
   * Starts a steering epoch (see `Steering.set`): frames this queue holds up to now were
   * steered by the previous rule and are delivered first; frames after them wait until
   * every queue sharing `gate` has delivered its own. `gate[0]` counts the queues still
   * delivering (an Int32Array so workers can share it; updated atomically). The boundary
   * is the used index now, or `barrier` when another thread read it at the device's ack
   * (src/engine/steering_mailbox.ts). Switches made before an earlier gate opened queue up
   * behind it, each with its own boundary.
   */
  beginEpoch(gate: Int32Array, barrier: number = this.vq.deviceUsedIdx()): void {
    if (this.#epochs === MAX_PENDING_EPOCHS) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `${this.vq.name} still holds frames of ${MAX_PENDING_EPOCHS} earlier steering switches: poll every queue pair before switching again.`,
      );
    }
    const i = (this.#epochHead + this.#epochs) % MAX_PENDING_EPOCHS;
    this.#barriers[i] = barrier;
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

  /** Frames taken off the ring and held back by a steering switch. */
  get heldFrames(): number {
    return this.#holdCount;
  }

  /** Used index of the next frame to deliver: the ring's, less the frames held. */
  #deliveredIdx(): number {
    return positionAdd(this.vq.lastUsedIdx, -this.#holdCount);
  }

  #gated(max: number): number {
    while (this.#epochs > 0) {
      const h = this.#epochHead;
      const room = positionDistance(this.#deliveredIdx(), this.#barriers[h]);
      if (room > 0) return room < max ? room : max;
      const gate = this.#gates[h]!;
      if (!this.#arrived) {
        // Every old frame is delivered; what the application made of them may still be on
        // its way out (see `arrivalGuard`).
        if (this.arrivalGuard !== null && !this.arrivalGuard()) return 0;
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

  /** While held: moves used frames from the ring to the hold list and refills the ring. */
  #holdMore(): void {
    const cap = this.#holdBufs.length;
    if (this.#holdStart > 0 && this.#holdStart + this.#holdCount === cap) {
      this.#holdBufs.copyWithin(0, this.#holdStart, cap);
      this.#holdLens.copyWithin(0, this.#holdStart, cap);
      this.#holdStart = 0;
    }
    const at = this.#holdStart + this.#holdCount;
    const n = this.vq.takeUsed(this.#holdBufs, this.#holdLens, at, cap - at);
    if (n === 0) return;
    this.#holdCount += n;
    this.refill();
  }

  /** Takes up to `max` held frames into `bufs`/`lens`, oldest first. */
  #takeHeld(bufs: Uint32Array, lens: Uint32Array, max: number): number {
    const n = this.#holdCount < max ? this.#holdCount : max;
    const s = this.#holdStart;
    for (let i = 0; i < n; i++) {
      bufs[i] = this.#holdBufs[s + i];
      lens[i] = this.#holdLens[s + i];
    }
    this.#holdCount -= n;
    this.#holdStart = this.#holdCount === 0 ? 0 : s + n;
    return n;
  }

  /**
   * Receives up to `max` frames. For each, `bufs[i]` is the buffer index (its frame starts
   * at `pool.offset(bufs[i]) + headerSize`) and `lens[i]` the frame length. The caller
   * owns the buffers: it frees them to the pool or transmits them. With mergeable buffers
   * a frame longer than its first buffer goes on in `pool.next[bufs[i]]` and so on, every
   * buffer but the last full (docs/mergeable.md).
   */
  rxBurst(bufs: Uint32Array, lens: Uint32Array, max: number): number {
    if (this.#offl !== null && max > this.#offl.capacity) max = this.#offl.capacity;
    if (this.#epochs > 0) {
      max = this.#gated(max);
      if (max === 0) {
        this.#holdMore();
        return 0;
      }
    }
    let got = this.#holdCount > 0 ? this.#takeHeld(bufs, lens, max) : 0;
    if (got < max) got += this.vq.takeUsed(bufs, lens, got, max - got);
    if (got === 0) return 0;
    if (this.#mergeable) return this.#merge(bufs, lens, got);
    const hdr = this.headerSize, pool = this.pool, c = this.#c, o = this.#o;
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
    if (this.#offl !== null) n = this.#takeOffloads(bufs, lens, n);
    // DPDK's extended statistics: each frame delivered, once, by its whole length.
    if (this.classify) classifyFrames(c, o + P_RX_MULTICAST, pool, hdr, bufs, lens, n);
    c[o + P_RX_PACKETS] += n;
    c[o + P_RX_BYTES] += bytes;
    c[o + P_RX_BURSTS]++;
    this.refill();
    return n;
  }

  /**
   * rxBurst's tail with mergeable buffers: turns `got` used buffers into frames in place
   * (§5.1.6.4: num_buffers in the first buffer's header; every buffer but the last used
   * to its full length), linking each frame's buffers through `pool.next`. A frame whose
   * last buffers have not come yet waits in the queue for the next burst. A frame that
   * breaks the rules is dropped whole, counted in dropsBadMerge.
   */
  #merge(bufs: Uint32Array, lens: Uint32Array, got: number): number {
    const hdr = this.headerSize, pool = this.pool, next = pool.next, data = pool.data;
    const full = this.#len, c = this.#c, o = this.#o;
    let n = 0, bytes = 0;
    for (let i = 0; i < got; i++) {
      const b = bufs[i], len = lens[i];
      if (this.#partNeed > 0) {
        const last = --this.#partNeed === 0;
        next[this.#partTail] = b;
        this.#partTail = b;
        this.#partLen += len;
        // §5.1.6.4: a buffer before the last must be full, and none empty.
        if (len === 0 || (!last && len !== full)) this.#partBad = true;
        if (!last) continue;
        if (this.#partBad) {
          this.#dropPart();
        } else {
          bufs[n] = this.#partHead;
          lens[n] = this.#partLen;
          bytes += this.#partLen;
          n++;
        }
        this.#partHead = NO_BUFFER;
        continue;
      }
      if (len <= hdr) {
        c[o + P_DROP_RUNT]++;
        pool.free(b);
        continue;
      }
      const at = pool.offset(b) + HDR_NUM_BUFFERS;
      const count = data[at] | (data[at + 1] << 8);
      if (count === 1) {
        bufs[n] = b;
        lens[n] = len - hdr;
        bytes += len - hdr;
        n++;
        continue;
      }
      this.#partHead = b;
      this.#partTail = b;
      this.#partLen = len - hdr;
      if (count === 0 || count > this.vq.size) {
        // No count to go by: this buffer alone is dropped.
        this.#dropPart();
        this.#partHead = NO_BUFFER;
        continue;
      }
      this.#partNeed = count - 1;
      this.#partBad = len !== full; // the first buffer must be full too
    }
    if (this.#offl !== null) n = this.#takeOffloads(bufs, lens, n);
    // DPDK's extended statistics: each frame delivered, once, by its whole length.
    if (this.classify) classifyFrames(c, o + P_RX_MULTICAST, pool, hdr, bufs, lens, n);
    c[o + P_RX_PACKETS] += n;
    c[o + P_RX_BYTES] += bytes;
    c[o + P_RX_BURSTS]++;
    this.refill();
    return n;
  }

  /**
   * Drops a frame whose buffers did not all arrive yet (mergeable buffers), before another
   * thread takes the queue over: its buffers go back to the pool, the drop is counted.
   * Returns true when there was one.
   */
  dropPartial(): boolean {
    if (this.#partHead === NO_BUFFER) return false;
    this.#dropPart();
    this.#partHead = NO_BUFFER;
    this.#partNeed = 0;
    return true;
  }

  /** Validates the offload fields of the burst's `n` frames; returns the frames kept. */
  #takeOffloads(bufs: Uint32Array, lens: Uint32Array, n: number): number {
    const f = this.#offl!;
    return takeRxOffloads(
      this.pool,
      bufs,
      lens,
      n,
      this.headerSize,
      this.#offlMask,
      f,
      this.#c,
      this.#o,
    );
  }

  /** Drops the frame being assembled: its buffers go back, the drop is counted. */
  #dropPart(): void {
    this.pool.free(this.#partHead);
    this.#c[this.#o + P_DROP_BAD_MERGE]++;
  }
}
