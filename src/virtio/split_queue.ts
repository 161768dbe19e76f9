/**
 * A split virtqueue (virtio 1.x §2.7) driven from typed arrays over DMA memory.
 *
 * Each buffer is one descriptor (virtio-net header and frame contiguous, which VERSION_1
 * allows: §5.1.6.2 "any layout"). The driver side keeps, per descriptor, the caller's
 * token (a buffer index) and the length it posted, so that every used-ring entry the
 * device returns can be validated before it is trusted.
 *
 * With VIRTIO_F_IN_ORDER (the `inOrder` option, §2.7.9 "In-order use of descriptors")
 * descriptors are taken in ring order, so the buffers in flight are a FIFO in the
 * descriptor table, and the device may return a whole batch with one used entry naming
 * its last buffer: a separate takeUsed() path (split_in_order.ts, over the ring state this
 * queue shares with it) walks the FIFO up to that buffer. Without
 * it, takeUsed() and the free-descriptor stack are as they always were.
 *
 * Memory ordering (docs/performance.md). This relies on x86-64 TSO: stores become visible
 * in program order and loads are not reordered with older loads, and on V8 keeping
 * typed-array loads and stores in program order (they are effects). So plain stores fill
 * descriptors and ring slots and then publish avail->idx (Linux's virtio_wmb() is a
 * compiler barrier on x86), and used->idx is read with a plain load before the entries
 * (virtio_rmb(), likewise). The one full barrier is the store→load order §2.7.13.4 needs
 * between the avail->idx store and reading avail_event / used->flags: an Atomics.store of
 * avail->idx (XCHG), once per published burst. Atomics on this memory are builtin calls,
 * not inlined, which is why the used->idx loads polled on every loop are plain.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import {
  indirectMaxPieces,
  IndirectTables,
  indirectTablesBytes,
  indirectTablesOffset,
} from "./indirect_table.ts";
import {
  ringDistance,
  splitRingLayout,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from "./ring_math.ts";
import { SplitInOrder } from "./split_in_order.ts";
import { notifyAll, type QueueNotifier, type Virtqueue, type VirtqueueState } from "./virtqueue.ts";

export type { QueueNotifier } from "./virtqueue.ts";

/** Options of a {@linkcode SplitQueue}. */
export interface SplitQueueOptions {
  /** Queue index on the device (for messages). */
  index: number;
  /** Queue size (a power of two). */
  size: number;
  /** VIRTIO_F_EVENT_IDX was negotiated. */
  eventIdx: boolean;
  /** Writes the queue's notification register. */
  notify: QueueNotifier;
  /** Name of the queue for error messages, e.g. "receiveq1 of 0000:00:04.0". */
  name: string;
  /**
   * VIRTIO_F_IN_ORDER was negotiated (default false): descriptors are used in ring order
   * and the device may return a batch with one used entry (see
   * {@linkcode SplitQueue.takeUsed}).
   */
  inOrder?: boolean;
  /** The legacy interface's layout (splitRingLayout with `legacy`, §2.7 legacy note). */
  legacyLayout?: boolean;
  /**
   * VIRTIO_F_INDIRECT_DESC was negotiated and this queue has indirect tables: their IOVA.
   * They lie in `memory` right after the ring (indirect_table.ts); a buffer of several
   * pieces then takes one slot ({@linkcode SplitQueue.addSegments}). Absent: none.
   */
  indirectIova?: number;
}

/**
 * The driver-side state of a {@linkcode SplitQueue}, as {@linkcode SplitQueue.exportState}
 * copies it: enough for another thread to go on driving the same ring (a forwarding
 * worker adopting a queue the main thread set up). Plain numbers and typed arrays, so it
 * can be posted to a Worker.
 */
export interface SplitQueueState extends VirtqueueState {
  /** Next avail->idx (free-running, 16 bits). */
  availIdx: number;
  /** avail->idx at the last publication. */
  kickedAt: number;
  /** Used ring index consumed up to (free-running, 16 bits). */
  lastUsed: number;
  /** Per descriptor: the length posted. */
  postedLen: Uint32Array;
  /** Free descriptor stack (the first numFree entries). */
  freeDesc: Uint16Array;
  /** Per chain head: its second descriptor, -1 for none. */
  chainNext: Int16Array;
  /** In order: the descriptor of the oldest buffer in flight. */
  ioHead?: number;
  /** In order: the buffer the used entry being worked through names, -1 for none. */
  batchLast?: number;
  /** In order: the length that entry reports. */
  batchLen?: number;
  /** In order, per chain head: the bytes the buffer offered the device to write. */
  fullLen?: Uint32Array;
  /** The ring has the legacy layout (a legacy virtio-pci device's, §2.7 legacy note). */
  legacyLayout?: boolean;
}

/** True when the in-order fields of `s` are there and fit an `n`-entry queue. */
function inOrderStateFits(s: SplitQueueState, n: number): boolean {
  const head = s.ioHead ?? -1, last = s.batchLast ?? -2;
  return s.fullLen?.length === n && head >= 0 && head < n && last >= -1 && last < n;
}

/**
 * The driver side of one split virtqueue.
 *
 * @example
 * ```ts
 * import { SplitQueue, splitRingLayout } from "../../mod.ts";
 * const mem = new ArrayBuffer(splitRingLayout(8).totalBytes);
 * const q = new SplitQueue(mem, 0, { index: 0, size: 8, eventIdx: false, notify: { notify() {} }, name: "q" });
 * q.add(42, 0x1000, 0, 2048, true); // post a device-writable buffer with token 42
 * q.publish();
 * ```
 */
export class SplitQueue implements Virtqueue {
  /** Queue index on the device. */
  readonly index: number;
  /** Number of descriptors. */
  readonly size: number;
  /** Name for messages. */
  readonly name: string;
  /** The memory the ring lives in (e.g. a DmaRegion's buffer). */
  readonly ringMemory: ArrayBuffer;
  /** Byte offset of the ring (its descriptor table) in {@linkcode SplitQueue.ringMemory}. */
  readonly ringOffset: number;
  /** Bytes of the ring (§2.7: descriptor table, available and used rings). */
  readonly ringBytes: number;
  readonly #mask: number;
  readonly #d32: Uint32Array;
  readonly #d16: Uint16Array;
  readonly #avail: Uint16Array;
  readonly #used16: Uint16Array;
  readonly #used32: Uint32Array;
  readonly #availEventAt: number;
  readonly #token: Int32Array;
  readonly #postedLen: Uint32Array;
  readonly #freeDesc: Uint16Array;
  readonly #chainNext: Int16Array;
  // The ids takeUsed() checked, so that it commits exactly those: the device can rewrite
  // the ring between the check and the commit.
  readonly #takenId: Uint16Array;
  readonly #eventIdx: boolean;
  readonly #inOrder: boolean;
  // In order (VIRTIO_F_IN_ORDER): its own state and take path (split_in_order.ts); null else.
  readonly #io: SplitInOrder | null;
  readonly #legacyLayout: boolean;
  // VIRTIO_F_INDIRECT_DESC: one table per descriptor, used by the buffer whose head it is.
  readonly #ind: IndirectTables | null;
  readonly #indirectMax: number;
  /** What notifies the device about this queue. */
  readonly notifier: QueueNotifier;
  // What publish() notifies: this queue's notifier first, then alsoNotify's.
  #targets: readonly QueueNotifier[];
  #numFree: number;
  // Why the device was caught misbehaving (Linux's vq->broken, set by BAD_RING), or null.
  #broken: string | null = null;
  #availIdx = 0;
  #kickedAt = 0;
  #lastUsed = 0;
  /** Notifications sent to the device. */
  kicks = 0;
  /** Publications that needed no notification (suppressed by the device). */
  kicksSuppressed = 0;

  /**
   * Builds the views over `memory` at `offset` (laid out by splitRingLayout) and zeroes
   * the ring. With `state` (from {@linkcode SplitQueue.exportState} of a queue over the
   * same ring), it adopts that queue instead: the ring is left as it is and driving goes
   * on where the other left off; the other must never be used again.
   */
  constructor(
    memory: ArrayBuffer,
    offset: number,
    opts: SplitQueueOptions,
    state?: SplitQueueState,
  ) {
    const legacy = opts.legacyLayout ?? state?.legacyLayout ?? false;
    const layout = splitRingLayout(opts.size, legacy);
    this.#legacyLayout = legacy;
    this.index = opts.index;
    this.size = opts.size;
    this.name = opts.name;
    this.ringMemory = memory;
    this.ringOffset = offset;
    const indirectIova = opts.indirectIova ?? state?.indirectIova;
    const tablesAt = indirectTablesOffset(layout.totalBytes);
    this.ringBytes = indirectIova === undefined
      ? layout.totalBytes
      : tablesAt + indirectTablesBytes(opts.size);
    this.#ind = indirectIova === undefined
      ? null
      : new IndirectTables(memory, offset + tablesAt, opts.size, indirectIova, false);
    this.#indirectMax = this.#ind === null ? 0 : indirectMaxPieces(opts.size);
    this.#mask = opts.size - 1;
    this.#d32 = new Uint32Array(memory, offset + layout.descOffset, 4 * opts.size);
    this.#d16 = new Uint16Array(memory, offset + layout.descOffset, 8 * opts.size);
    this.#avail = new Uint16Array(memory, offset + layout.availOffset, 3 + opts.size);
    this.#used16 = new Uint16Array(memory, offset + layout.usedOffset, 3 + 4 * opts.size);
    this.#used32 = new Uint32Array(memory, offset + layout.usedOffset, 1 + 2 * opts.size);
    this.#availEventAt = 2 + 4 * opts.size;
    this.#token = new Int32Array(opts.size).fill(-1);
    this.#postedLen = new Uint32Array(opts.size);
    this.#freeDesc = new Uint16Array(opts.size);
    this.#chainNext = new Int16Array(opts.size).fill(-1);
    this.#takenId = new Uint16Array(opts.size);
    for (let i = 0; i < opts.size; i++) this.#freeDesc[i] = opts.size - 1 - i;
    this.#numFree = opts.size;
    this.#eventIdx = opts.eventIdx;
    this.#inOrder = state ? state.inOrder === true : opts.inOrder === true;
    if (state && opts.inOrder !== undefined && opts.inOrder !== this.#inOrder) {
      throw new RangeError(`${opts.name}: the adopted state disagrees on VIRTIO_F_IN_ORDER`);
    }
    this.#io = this.#inOrder
      ? new SplitInOrder({
        size: opts.size,
        mask: this.#mask,
        used16: this.#used16,
        used32: this.#used32,
        token: this.#token,
        postedLen: this.#postedLen,
        chainNext: this.#chainNext,
        takenId: this.#takenId,
      })
      : null;
    this.notifier = opts.notify;
    this.#targets = [opts.notify];
    if (state) {
      this.#adopt(state);
      return;
    }
    new Uint8Array(memory, offset, layout.totalBytes).fill(0);
    this.#ind?.zero();
    // This driver polls: ask for no used-buffer notifications (§2.7.7). With EVENT_IDX
    // the flag is ignored by the device, and no MSI-X vector is assigned either.
    this.#avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
  }

  #adopt(s: SplitQueueState): void {
    const n = this.size;
    if (
      s.token.length !== n || s.postedLen.length !== n || s.freeDesc.length !== n ||
      s.chainNext.length !== n || !(s.numFree >= 0 && s.numFree <= n) ||
      (s.inOrder === true && !inOrderStateFits(s, n))
    ) {
      throw new RangeError(`${this.name}: the adopted state is not that of a ${n}-entry queue`);
    }
    const io = this.#io;
    if (io !== null) {
      io.fullLen.set(s.fullLen!);
      io.head = s.ioHead!;
      io.batchLast = s.batchLast!;
      io.batchLen = s.batchLen ?? 0;
    }
    this.#token.set(s.token);
    this.#postedLen.set(s.postedLen);
    this.#freeDesc.set(s.freeDesc);
    this.#chainNext.set(s.chainNext);
    this.#numFree = s.numFree;
    this.#availIdx = s.availIdx & 0xffff;
    this.#kickedAt = s.kickedAt & 0xffff;
    this.#lastUsed = s.lastUsed & 0xffff;
  }

  /**
   * Copies the driver-side state, for a queue on another thread to adopt (see the
   * constructor). Buffers added but not yet published are published first, so the copy
   * and the ring agree.
   */
  exportState(): SplitQueueState {
    this.publish();
    return {
      layout: "split",
      availIdx: this.#availIdx,
      kickedAt: this.#kickedAt,
      lastUsed: this.#lastUsed,
      numFree: this.#numFree,
      token: this.#token.slice(),
      postedLen: this.#postedLen.slice(),
      freeDesc: this.#freeDesc.slice(),
      chainNext: this.#chainNext.slice(),
      inOrder: this.#inOrder,
      ioHead: this.#io?.head ?? 0,
      batchLast: this.#io?.batchLast ?? -1,
      batchLen: this.#io?.batchLen ?? 0,
      fullLen: this.#io?.fullLen.slice() ?? new Uint32Array(0),
      legacyLayout: this.#legacyLayout,
      indirectIova: this.#ind?.iova,
    };
  }

  /** VIRTIO_F_IN_ORDER: buffers are used in the order they were made available. */
  get inOrder(): boolean {
    return this.#inOrder;
  }

  /**
   * The most pieces {@linkcode SplitQueue.addSegments} puts behind one indirect descriptor
   * (one slot); 0 without indirect tables.
   */
  get indirectMax(): number {
    return this.#indirectMax;
  }

  /**
   * Asks the device for a used-buffer notification (an interrupt, with an MSI-X vector
   * assigned) when it next returns a buffer: clears VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7)
   * and, with EVENT_IDX, sets used_event to the next used index the driver will read
   * (§2.7.10: the device notifies once used->idx passes it). Returns true when used
   * buffers are already waiting, which the device will not notify about (they were
   * returned before the request was visible): the caller takes them without waiting.
   * Like Linux's virtqueue_enable_cb_prepare() + virtqueue_poll(). Not on the polling hot
   * path: polling never calls it.
   */
  enableInterrupts(): boolean {
    const avail = this.#avail;
    avail[2 + this.size] = this.#lastUsed; // used_event
    // The XCHG of Atomics.store orders both stores before the used->idx load below
    // (§2.7.10: store used_event, barrier, then check for used buffers).
    Atomics.store(avail, 0, 0);
    return Atomics.load(this.#used16, 1) !== this.#lastUsed;
  }

  /**
   * Asks for no used-buffer notifications again (the state after construction): sets
   * VIRTQ_AVAIL_F_NO_INTERRUPT and, with EVENT_IDX, moves used_event one behind the used
   * index already read, which the device's used->idx has passed, so it is next crossed
   * only after 65,535 more buffers (§2.7.10; Linux's virtqueue_disable_cb() writes 0 for
   * the same purpose). The spec lets the device notify anyway: suppression is a hint.
   */
  disableInterrupts(): void {
    this.#avail[2 + this.size] = (this.#lastUsed - 1) & 0xffff;
    Atomics.store(this.#avail, 0, VIRTQ_AVAIL_F_NO_INTERRUPT);
  }

  /** True while used-buffer notifications are requested ({@linkcode SplitQueue.enableInterrupts}). */
  get interruptsEnabled(): boolean {
    return (this.#avail[0] & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Why the queue is broken, or null while it works. The first bad used entry (see
   * {@linkcode SplitQueue.takeUsed}) breaks it, as Linux's BAD_RING() does: from then on
   * it neither reads the device's entries nor publishes buffers to it; only a device reset
   * (a new queue over the ring) makes it usable again.
   */
  get broken(): string | null {
    return this.#broken;
  }

  /** True when the device has returned buffers the driver has not taken yet. */
  hasUsed(): boolean {
    return this.#used16[1] !== this.#lastUsed;
  }

  /** Descriptors free for new buffers. */
  get freeCount(): number {
    return this.#numFree;
  }

  /** Buffers the device holds (made available, not yet returned used). */
  get inFlight(): number {
    return this.size - this.#numFree;
  }

  /**
   * Makes one buffer available (not yet visible to the device: see
   * {@linkcode SplitQueue.publish}). `token` is returned with the buffer when it is used.
   * Returns false when the ring is full.
   */
  add(
    token: number,
    iovaLo: number,
    iovaHi: number,
    len: number,
    deviceWritable: boolean,
  ): boolean {
    if (this.#numFree === 0) return false;
    let d: number;
    const io = this.#io;
    if (io !== null) {
      // §2.7.5: in order, descriptors go in ring order (wrapping at the end of the table).
      d = (io.head + this.size - this.#numFree) & this.#mask;
      io.fullLen[d] = deviceWritable ? len : 0;
    } else {
      d = this.#freeDesc[this.#numFree - 1];
    }
    this.#numFree--;
    const d32 = this.#d32;
    d32[4 * d] = iovaLo;
    d32[4 * d + 1] = iovaHi;
    d32[4 * d + 2] = len;
    this.#d16[8 * d + 6] = deviceWritable ? VIRTQ_DESC_F_WRITE : 0;
    this.#d16[8 * d + 7] = 0;
    this.#token[d] = token;
    this.#postedLen[d] = len;
    this.#avail[2 + (this.#availIdx & this.#mask)] = d;
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    return true;
  }

  /**
   * Makes one two-part buffer available: `len1` bytes the device reads, then `len2` bytes it
   * writes (a control command and its ack, §5.1.6.5). Returns false when fewer than two
   * descriptors are free.
   */
  addChain(
    token: number,
    lo1: number,
    hi1: number,
    len1: number,
    lo2: number,
    hi2: number,
    len2: number,
  ): boolean {
    if (this.#numFree < 2) return false;
    let head: number, tail: number;
    const io = this.#io;
    if (io !== null) {
      // §2.7.5: in ring order, and `next` of descriptor x is x + 1 (0 for the last one).
      head = (io.head + this.size - this.#numFree) & this.#mask;
      tail = (head + 1) & this.#mask;
      io.fullLen[head] = len2;
      this.#numFree -= 2;
    } else {
      head = this.#freeDesc[--this.#numFree];
      tail = this.#freeDesc[--this.#numFree];
    }
    const d32 = this.#d32, d16 = this.#d16;
    d32[4 * head] = lo1;
    d32[4 * head + 1] = hi1;
    d32[4 * head + 2] = len1;
    d16[8 * head + 6] = VIRTQ_DESC_F_NEXT;
    d16[8 * head + 7] = tail;
    d32[4 * tail] = lo2;
    d32[4 * tail + 1] = hi2;
    d32[4 * tail + 2] = len2;
    d16[8 * tail + 6] = VIRTQ_DESC_F_WRITE;
    d16[8 * tail + 7] = 0;
    // The chain is remembered here, not read back from the descriptor table, which the
    // device could have overwritten.
    this.#chainNext[head] = tail;
    this.#token[head] = token;
    this.#postedLen[head] = len2; // the used length counts the bytes written (§2.7.8)
    this.#avail[2 + (this.#availIdx & this.#mask)] = head;
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    return true;
  }

  /**
   * Makes one buffer of `count` device-readable pieces available as a descriptor chain
   * (§2.7.6): piece i at IOVA `lo[i]` + `hi[i]`·2³², `lens[i]` bytes (a frame spanning
   * several packet buffers). With indirect tables and 2 to
   * {@linkcode SplitQueue.indirectMax} pieces, one descriptor with the INDIRECT flag
   * names a table of them instead (§2.7.5.3). Returns false when fewer descriptors are
   * free than it takes.
   */
  addSegments(
    token: number,
    lo: Uint32Array,
    hi: Uint32Array,
    lens: Uint32Array,
    count: number,
  ): boolean {
    if (count > 1 && count <= this.#indirectMax) {
      return this.#addIndirect(token, lo, hi, lens, count);
    }
    if (count < 1 || this.#numFree < count) return false;
    const d32 = this.#d32, d16 = this.#d16;
    // §2.7.5 with IN_ORDER: in ring order, `next` of descriptor x is x + 1.
    const io = this.#io;
    const first = io !== null ? (io.head + this.size - this.#numFree) & this.#mask : 0;
    // Tail first, so each descriptor can name the one after it.
    let after = -1, total = 0;
    for (let i = count - 1; i >= 0; i--) {
      const d = io !== null ? (first + i) & this.#mask : this.#freeDesc[this.#numFree - 1];
      this.#numFree--;
      total += lens[i];
      d32[4 * d] = lo[i];
      d32[4 * d + 1] = hi[i];
      d32[4 * d + 2] = lens[i];
      d16[8 * d + 6] = after >= 0 ? VIRTQ_DESC_F_NEXT : 0;
      d16[8 * d + 7] = after >= 0 ? after : 0;
      // Remembered here, not read back from the table the device could have rewritten.
      this.#chainNext[d] = after;
      after = d;
    }
    this.#token[after] = token;
    this.#postedLen[after] = total; // as add(): a used length up to the buffer's is accepted
    if (io !== null) io.fullLen[after] = 0; // nothing for the device to write
    this.#avail[2 + (this.#availIdx & this.#mask)] = after;
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    return true;
  }

  /**
   * addSegments() through an indirect table (§2.7.5.3): the buffer takes one descriptor,
   * `d`, whose table (table `d`) lists the pieces. Completion frees `d` alone, like a
   * one-descriptor buffer (its #chainNext is -1).
   */
  #addIndirect(
    token: number,
    lo: Uint32Array,
    hi: Uint32Array,
    lens: Uint32Array,
    count: number,
  ): boolean {
    if (this.#numFree === 0) return false;
    const io = this.#io;
    const d = io !== null
      ? (io.head + this.size - this.#numFree) & this.#mask // §2.7.5: in ring order
      : this.#freeDesc[this.#numFree - 1];
    this.#numFree--;
    const ind = this.#ind!;
    // The table first: plain stores, ordered before the avail->idx publication (x86 TSO).
    const total = ind.fill(d, lo, hi, lens, count);
    const d32 = this.#d32;
    d32[4 * d] = ind.iovaLo[d];
    d32[4 * d + 1] = ind.iovaHi[d];
    d32[4 * d + 2] = 16 * count; // §2.7.5.3: the table's length in bytes
    // §2.7.5.3.1: INDIRECT without NEXT (and WRITE, which the device ignores here).
    this.#d16[8 * d + 6] = VIRTQ_DESC_F_INDIRECT;
    this.#d16[8 * d + 7] = 0;
    this.#chainNext[d] = -1;
    this.#token[d] = token;
    this.#postedLen[d] = total; // as a direct chain's
    if (io !== null) io.fullLen[d] = 0; // nothing for the device to write
    this.#avail[2 + (this.#availIdx & this.#mask)] = d;
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    return true;
  }

  /** The used ring index the driver has consumed up to (free-running, 16 bits). */
  get lastUsedIdx(): number {
    return this.#lastUsed;
  }

  /**
   * Looks at used element `idx` (free-running) without taking it: the address (IOVA) of
   * the first buffer of the chain it names, read from the descriptor table, or -1 when
   * the id is out of range. For the control path (a steering switch reading the frames
   * around its boundary, src/net/steering.ts); any thread may call it.
   */
  usedAddr(idx: number): number {
    const id = this.#used32[1 + 2 * (idx & this.#mask)];
    if (id >= this.size) return -1;
    if (this.#ind !== null && (this.#d16[8 * id + 6] & VIRTQ_DESC_F_INDIRECT) !== 0) {
      return this.#ind.firstAddr(id); // the table's first piece, as a direct chain's head
    }
    return this.#d32[4 * id] + this.#d32[4 * id + 1] * 0x1_0000_0000;
  }

  /** The length the device wrote for used element `idx` (see {@linkcode SplitQueue.usedAddr}). */
  usedLen(idx: number): number {
    return this.#used32[2 + 2 * (idx & this.#mask)];
  }

  /** avail->idx as the driver last published it (free-running, 16 bits). */
  get publishedIdx(): number {
    return this.#kickedAt;
  }

  /** used->idx as the device last published it (free-running, 16 bits). */
  deviceUsedIdx(): number {
    return this.#used16[1];
  }

  /**
   * Other queues' notifiers that {@linkcode SplitQueue.publish} calls whenever it notifies
   * about this queue (a receive queue's siblings: rx_queue.ts). They are called from the
   * same loop as this queue's own (notifyAll in virtqueue.ts, shared by every ring), which
   * every notification runs through: the loop's
   * call site is one V8 has seen from the first transmit notification on, so a receive
   * queue that first needs its siblings woken long after warm-up does not reach code V8
   * never ran (which would throw the optimised code away and compile it again).
   */
  set alsoNotify(list: readonly QueueNotifier[]) {
    this.#targets = [this.notifier, ...list];
  }

  /** The notifiers set with the setter of the same name. */
  get alsoNotify(): readonly QueueNotifier[] {
    return this.#targets.slice(1);
  }

  /** How many notifiers {@linkcode SplitQueue.alsoNotify} holds (allocates nothing). */
  get alsoNotifyCount(): number {
    return this.#targets.length - 1;
  }

  /**
   * Publishes every buffer added since the last call (one avail->idx store) and notifies
   * the device unless it suppressed notifications (§2.7.10 with EVENT_IDX, §2.7.9 without),
   * together with {@linkcode SplitQueue.alsoNotify}. One notification covers a whole
   * burst. Returns true when it notified.
   */
  publish(): boolean {
    const newIdx = this.#availIdx;
    const oldIdx = this.#kickedAt;
    if (newIdx === oldIdx) return false;
    if (this.#broken !== null) this.#misbehaved(this.#broken, false);
    // Publication point: descriptor and ring-slot stores above are ordered before this
    // (x86 TSO + Atomics.store); the XCHG also orders it before the loads below.
    Atomics.store(this.#avail, 1, newIdx);
    this.#kickedAt = newIdx;
    const wanted = this.#eventIdx
      ? vringNeedEvent(this.#used16[this.#availEventAt], newIdx, oldIdx)
      : (this.#used16[0] & VIRTQ_USED_F_NO_NOTIFY) === 0;
    if (wanted) {
      this.kicks++;
      notifyAll(this.#targets);
    } else {
      this.kicksSuppressed++;
    }
    return wanted;
  }

  /** Notifies the device about this queue whether or not it asked to be (counted as a kick). */
  kick(): void {
    this.kicks++;
    this.notifier.notify();
  }

  /**
   * Takes up to `max` used buffers, in used-ring order: their tokens go to `tokens` and the
   * lengths the device wrote to `lens`, from index `at`. Returns how many were taken.
   * Every entry is validated (descriptor in range and in flight, length within what was
   * posted); a bad entry throws DEVICE_MISBEHAVED before anything of it is used, and
   * breaks the queue ({@linkcode SplitQueue.broken}): every later call throws the same.
   * With `inOrder`, one used entry may return a batch of buffers (see
   * {@linkcode SplitQueueOptions.inOrder}; each buffer is handed out with its own token).
   */
  takeUsed(tokens: Uint32Array, lens: Uint32Array, at: number, max: number): number {
    if (this.#broken !== null) this.#misbehaved(this.#broken, false);
    const io = this.#io;
    if (io !== null) {
      // In order (split_in_order.ts): one used entry may return a batch.
      const n = io.take(this.#lastUsed, this.#numFree, tokens, lens, at, max);
      if (n < 0) this.#misbehaved(io.error);
      this.#numFree += io.freed;
      this.#lastUsed = (this.#lastUsed + n) & 0xffff;
      return n;
    }
    const usedIdx = this.#used16[1]; // x86 TSO: the entries are read after this (no Atomics)
    let pending = ringDistance(this.#lastUsed, usedIdx);
    if (pending === 0) return 0;
    if (pending > this.size - this.#numFree) {
      this.#misbehaved(
        `used->idx ${usedIdx} runs ${pending} entries ahead with only ${
          this.size - this.#numFree
        } buffers in flight`,
      );
    }
    if (pending > max) pending = max;
    if (at + pending > tokens.length || at + pending > lens.length) {
      pending = Math.min(tokens.length, lens.length) - at;
      if (pending <= 0) return 0;
    }
    const used32 = this.#used32, token = this.#token, taken = this.#takenId;
    // Check the whole batch before consuming any of it: a bad entry must leave every
    // buffer where it was (§2.7.8: the device returns each buffer exactly once). Tokens
    // are cleared as entries are checked so a descriptor named twice is caught, and put
    // back if the batch is refused. Each id is read from the ring once.
    let last = this.#lastUsed;
    for (let i = 0; i < pending; i++) {
      const slot = last & this.#mask;
      const id = used32[1 + 2 * slot];
      const len = used32[2 + 2 * slot];
      if (id >= this.size || token[id] < 0) {
        this.#refuse(tokens, at, i);
        this.#misbehaved(`used entry ${last} names descriptor ${id}, which is not in flight`);
      }
      if (len > this.#postedLen[id]) {
        this.#refuse(tokens, at, i);
        this.#misbehaved(
          `used entry ${last} reports ${len} bytes written into a ${
            this.#postedLen[id]
          }-byte buffer`,
        );
      }
      taken[i] = id;
      tokens[at + i] = token[id];
      lens[at + i] = len;
      token[id] = -1;
      last = (last + 1) & 0xffff;
    }
    // Commit: free the descriptors (and the rest of each chain) checked above.
    for (let i = 0; i < pending; i++) {
      const id = taken[i];
      this.#freeDesc[this.#numFree++] = id;
      let next = this.#chainNext[id];
      if (next >= 0) {
        this.#chainNext[id] = -1;
        do {
          this.#freeDesc[this.#numFree++] = next;
          const after = this.#chainNext[next];
          this.#chainNext[next] = -1;
          next = after;
        } while (next >= 0);
      }
    }
    this.#lastUsed = last;
    return pending;
  }

  /** Puts back the tokens of the first `n` entries checked in a refused batch. */
  #refuse(tokens: Uint32Array, at: number, n: number): void {
    for (let i = 0; i < n; i++) this.#token[this.#takenId[i]] = tokens[at + i];
  }

  /** Breaks the queue (first time: `what` is the reason) and throws DEVICE_MISBEHAVED. */
  #misbehaved(what: string, first = true): never {
    if (first) this.#broken = what;
    throw new DriverError(
      "DEVICE_MISBEHAVED",
      `The device corrupted ${this.name}: ${what}; no buffer was reused: restart the port to reset the device.`,
    );
  }
}
