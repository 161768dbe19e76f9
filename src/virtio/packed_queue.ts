/**
 * A packed virtqueue (virtio 1.x §2.8) driven from typed arrays over DMA memory.
 *
 * Each data-path buffer is one descriptor, so one buffer is one position; a control
 * command is a two-descriptor chain ({@linkcode PackedQueue.addChain}). Positions are
 * free-running 16-bit counts of descriptor slots (packed_ring_math.ts), which gives the
 * Virtqueue seam the same arithmetic as the split ring. Buffer ids come from a free-id
 * stack; per id the driver keeps the caller's token, the length posted and the number of
 * descriptors, so every used descriptor the device writes can be validated before use.
 *
 * With VIRTIO_F_IN_ORDER (the `inOrder` option, §2.8.8 "In-order use of descriptors") a
 * buffer's id is the slot of its first descriptor, so the buffers in flight are a FIFO in
 * ring order, and the device may return a whole batch with one used descriptor (written
 * over the batch's first descriptor) naming its last buffer: a separate takeUsed() path
 * (packed_in_order.ts, over the ring state this queue shares with it) walks the FIFO up
 * to that buffer and skips the batch's descriptors. Without it,
 * takeUsed() and the free-id stack are as they always were.
 *
 * Memory ordering (as split_queue.ts, x86-64 TSO, V8 keeping typed-array accesses in
 * program order). add() fills a descriptor with plain stores and writes its flags last:
 * that store makes it available (§2.8.21.1, Linux's virtio_wmb() is a compiler barrier on
 * x86). takeUsed() loads a slot's flags before its id and length (virtio_rmb(), likewise).
 * The one full barrier is the store→load order §2.8.21.3 needs between the flag stores and
 * reading the device's event suppression area: an Atomics.store (XCHG) once per published
 * burst, on the shadow's last-used word. Not on a flag word: the device may already have
 * overwritten it with a used descriptor, which storing the old value again would undo.
 *
 * The shadow (packedRingLayout) lets other threads read the used side of a queue a worker
 * drives: {@linkcode PackedQueue.deviceUsedIdx}, {@linkcode PackedQueue.usedAddr} and
 * {@linkcode PackedQueue.usedLen} use only ring memory, never the owner's private fields.
 * The shadow is in device-reachable memory: it serves those advisory reads only (the
 * steering boundary search validates what it gets), never the driver's own state.
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
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  vringNeedEvent,
} from "./ring_math.ts";
import {
  eventPosition,
  packedRingLayout,
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  RING_EVENT_FLAGS_ENABLE,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
} from "./packed_ring_math.ts";
import { PackedInOrder } from "./packed_in_order.ts";
import {
  notifyAll,
  positionDistance,
  type QueueNotifier,
  type Virtqueue,
  type VirtqueueState,
} from "./virtqueue.ts";

export type { QueueNotifier, Virtqueue, VirtqueueState } from "./virtqueue.ts";
export { packedRingLayout } from "./packed_ring_math.ts";
export type { PackedRingLayout } from "./packed_ring_math.ts";

/** Both wrap bits of a descriptor's flags. */
const WRAP_BITS = VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED;

/** Options of a {@linkcode PackedQueue} (as those of a SplitQueue). */
export interface PackedQueueOptions {
  /** Queue index on the device (for messages). */
  index: number;
  /** Queue size (a power of two ≤ 32768). */
  size: number;
  /** VIRTIO_F_EVENT_IDX (VIRTIO_F_RING_EVENT_IDX) was negotiated. */
  eventIdx: boolean;
  /** Writes the queue's notification register. */
  notify: QueueNotifier;
  /** Name of the queue for error messages, e.g. "receiveq1 of 0000:00:04.0". */
  name: string;
  /**
   * VIRTIO_F_IN_ORDER was negotiated (default false): buffers are used in the order they
   * were made available and the device may return a batch with one used descriptor (see
   * {@linkcode PackedQueue.takeUsed}).
   */
  inOrder?: boolean;
  /**
   * VIRTIO_F_INDIRECT_DESC was negotiated and this queue has indirect tables: their IOVA.
   * They lie in `memory` right after the ring (indirect_table.ts); a buffer of several
   * pieces then takes one slot ({@linkcode PackedQueue.addSegments}). Absent: none.
   */
  indirectIova?: number;
}

/**
 * The driver-side state of a {@linkcode PackedQueue}, as {@linkcode PackedQueue.exportState}
 * copies it: enough for another thread to go on driving the same ring. Plain numbers and
 * typed arrays, so it can be posted to a Worker. `numFree` counts free descriptor slots,
 * `token` is per buffer id.
 */
export interface PackedQueueState extends VirtqueueState {
  /** The ring layout. */
  layout: "packed";
  /** Position of the next descriptor the driver makes available (free-running, 16 bits). */
  availPos: number;
  /** availPos at the last publication. */
  kickedAt: number;
  /** Position of the next used descriptor the driver reads. */
  lastUsed: number;
  /** Per buffer id: the length posted (for a chain, its writable part). */
  postedLen: Uint32Array;
  /** Per buffer id: descriptors in the buffer (1, or 2 for a chain). */
  chainLen: Uint8Array;
  /** Free buffer id stack (the first numFreeIds entries). */
  freeId: Uint16Array;
  /** Free buffer ids. */
  numFreeIds: number;
  /** In order: the buffer the used descriptor at `lastUsed` names, -1 for none. */
  batchLast?: number;
  /** In order: the length that descriptor reports. */
  batchLen?: number;
  /** In order: position of the next buffer of that batch to hand out. */
  batchPos?: number;
  /** In order, per buffer id: the bytes the buffer offered the device to write. */
  fullLen?: Uint32Array;
}

/** True when the in-order fields of `s` are there and fit an `n`-entry queue. */
function inOrderStateFits(s: PackedQueueState, n: number): boolean {
  const last = s.batchLast ?? -2;
  return s.fullLen?.length === n && last >= -1 && last < n;
}

/**
 * The driver side of one packed virtqueue.
 *
 * @example
 * ```ts
 * import { PackedQueue, packedRingLayout } from "./packed_queue.ts";
 * const mem = new ArrayBuffer(packedRingLayout(8).totalBytes);
 * const q = new PackedQueue(mem, 0, { index: 0, size: 8, eventIdx: false, notify: { notify() {} }, name: "q" });
 * q.add(42, 0x1000, 0, 2048, true); // post a device-writable buffer with token 42
 * q.publish();
 * ```
 */
export class PackedQueue implements Virtqueue {
  /** Queue index on the device. */
  readonly index: number;
  /** Number of descriptors. */
  readonly size: number;
  /** Name for messages. */
  readonly name: string;
  /** The memory the ring lives in (e.g. a DmaRegion's buffer). */
  readonly ringMemory: ArrayBuffer;
  /** Byte offset of the ring (its descriptor ring) in {@linkcode PackedQueue.ringMemory}. */
  readonly ringOffset: number;
  /** Bytes of the ring, shadow included (packedRingLayout's totalBytes). */
  readonly ringBytes: number;
  /** What notifies the device about this queue. */
  readonly notifier: QueueNotifier;
  readonly #mask: number;
  readonly #shift: number; // log2(size): position >> shift is the lap
  readonly #d32: Uint32Array;
  readonly #d16: Uint16Array;
  readonly #driver16: Uint16Array; // driver area: [0] off_wrap, [1] flags
  readonly #device32: Uint32Array; // device area as one word: off_wrap | flags << 16
  // [0] last used position, [2 + 2·id] IOVA low, [3 + 2·id] high, [2 + 2·size + id] descriptors
  readonly #shadow32: Uint32Array;
  readonly #token: Int32Array;
  readonly #postedLen: Uint32Array;
  readonly #chainLen: Uint8Array;
  readonly #freeId: Uint16Array;
  // What takeUsed() checked, so that it commits and hands out exactly that: the device can
  // rewrite the ring between the check and the commit.
  readonly #takenId: Uint16Array;
  readonly #takenToken: Int32Array;
  readonly #takenLen: Uint32Array;
  readonly #eventIdx: boolean;
  readonly #inOrder: boolean;
  // In order (VIRTIO_F_IN_ORDER): its own state and take path (packed_in_order.ts); null else.
  readonly #io: PackedInOrder | null;
  // VIRTIO_F_INDIRECT_DESC: one table per buffer id, used by the buffer with that id.
  readonly #ind: IndirectTables | null;
  readonly #indirectMax: number;
  // What publish() notifies: this queue's notifier first, then alsoNotify's.
  #targets: readonly QueueNotifier[];
  #numFreeIds: number;
  #broken: string | null = null;
  #availPos = 0;
  #kickedAt = 0;
  #lastUsed = 0;
  /** Notifications sent to the device. */
  kicks = 0;
  /** Publications that needed no notification (suppressed by the device). */
  kicksSuppressed = 0;

  /**
   * Builds the views over `memory` at `offset` (laid out by packedRingLayout), zeroes the
   * ring and asks for no used-buffer notifications. With `state` (from
   * {@linkcode PackedQueue.exportState} of a queue over the same ring), it adopts that
   * queue instead: the ring is left as it is; the other must never be used again.
   */
  constructor(
    memory: ArrayBuffer,
    offset: number,
    opts: PackedQueueOptions,
    state?: PackedQueueState,
  ) {
    const l = packedRingLayout(opts.size);
    const n = opts.size;
    this.index = opts.index;
    this.size = n;
    this.name = opts.name;
    this.ringMemory = memory;
    this.ringOffset = offset;
    const indirectIova = opts.indirectIova ?? state?.indirectIova;
    const tablesAt = indirectTablesOffset(l.totalBytes);
    this.ringBytes = indirectIova === undefined ? l.totalBytes : tablesAt + indirectTablesBytes(n);
    this.#ind = indirectIova === undefined
      ? null
      : new IndirectTables(memory, offset + tablesAt, n, indirectIova, true);
    this.#indirectMax = this.#ind === null ? 0 : indirectMaxPieces(n);
    this.notifier = opts.notify;
    this.#targets = [opts.notify];
    this.#eventIdx = opts.eventIdx;
    this.#inOrder = state ? state.inOrder === true : opts.inOrder === true;
    if (state && opts.inOrder !== undefined && opts.inOrder !== this.#inOrder) {
      throw new RangeError(`${opts.name}: the adopted state disagrees on VIRTIO_F_IN_ORDER`);
    }
    this.#mask = n - 1;
    this.#shift = 31 - Math.clz32(n);
    this.#d32 = new Uint32Array(memory, offset + l.descOffset, 4 * n);
    this.#d16 = new Uint16Array(memory, offset + l.descOffset, 8 * n);
    this.#driver16 = new Uint16Array(memory, offset + l.driverOffset, 2);
    this.#device32 = new Uint32Array(memory, offset + l.deviceOffset, 1);
    this.#shadow32 = new Uint32Array(memory, offset + l.shadowOffset, 2 + 3 * n);
    this.#token = new Int32Array(n).fill(-1);
    this.#postedLen = new Uint32Array(n);
    this.#chainLen = new Uint8Array(n);
    this.#freeId = new Uint16Array(n);
    this.#takenId = new Uint16Array(n);
    this.#takenToken = new Int32Array(n);
    this.#takenLen = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.#freeId[i] = n - 1 - i;
    this.#numFreeIds = n;
    this.#io = this.#inOrder
      ? new PackedInOrder({
        size: n,
        mask: this.#mask,
        shift: this.#shift,
        d16: this.#d16,
        d32: this.#d32,
        token: this.#token,
        postedLen: this.#postedLen,
        chainLen: this.#chainLen,
      })
      : null;
    if (state) {
      this.#adopt(state);
    } else {
      new Uint8Array(memory, offset, l.totalBytes).fill(0);
      this.#ind?.zero();
      // This driver polls: ask for no used-buffer notifications (§2.8.10).
      this.#driver16[1] = RING_EVENT_FLAGS_DISABLE;
    }
    this.#shadow32[0] = this.#lastUsed;
  }

  #adopt(s: PackedQueueState): void {
    const n = this.size;
    const inFlight = positionDistance(s.lastUsed & 0xffff, s.availPos & 0xffff);
    if (
      s.layout !== "packed" || s.token.length !== n || s.postedLen.length !== n ||
      s.chainLen.length !== n || s.freeId.length !== n || inFlight > n ||
      s.numFree !== n - inFlight || !(s.numFreeIds >= 0 && s.numFreeIds <= n) ||
      (s.inOrder === true && !inOrderStateFits(s, n))
    ) {
      throw new RangeError(`${this.name}: the adopted state is not that of a ${n}-entry queue`);
    }
    const io = this.#io;
    if (io !== null) {
      io.fullLen.set(s.fullLen!);
      io.batchLast = s.batchLast!;
      io.batchLen = s.batchLen ?? 0;
      io.batchPos = (s.batchPos ?? 0) & 0xffff;
    }
    this.#token.set(s.token);
    this.#postedLen.set(s.postedLen);
    this.#chainLen.set(s.chainLen);
    this.#freeId.set(s.freeId);
    this.#numFreeIds = s.numFreeIds;
    this.#availPos = s.availPos & 0xffff;
    this.#kickedAt = s.kickedAt & 0xffff;
    this.#lastUsed = s.lastUsed & 0xffff;
  }

  /**
   * Copies the driver-side state, for a queue on another thread to adopt (see the
   * constructor). Buffers added but not yet published are published first.
   */
  exportState(): PackedQueueState {
    this.publish();
    return {
      layout: "packed",
      availPos: this.#availPos,
      kickedAt: this.#kickedAt,
      lastUsed: this.#lastUsed,
      numFree: this.freeCount,
      token: this.#token.slice(),
      postedLen: this.#postedLen.slice(),
      chainLen: this.#chainLen.slice(),
      freeId: this.#freeId.slice(),
      numFreeIds: this.#numFreeIds,
      inOrder: this.#inOrder,
      batchLast: this.#io?.batchLast ?? -1,
      batchLen: this.#io?.batchLen ?? 0,
      batchPos: this.#io?.batchPos ?? 0,
      fullLen: this.#io?.fullLen.slice() ?? new Uint32Array(0),
      indirectIova: this.#ind?.iova,
    };
  }

  /** VIRTIO_F_IN_ORDER: buffers are used in the order they were made available. */
  get inOrder(): boolean {
    return this.#inOrder;
  }

  /**
   * The most pieces {@linkcode PackedQueue.addSegments} puts behind one indirect
   * descriptor (one slot); 0 without indirect tables.
   */
  get indirectMax(): number {
    return this.#indirectMax;
  }

  /**
   * Asks the device for a used-buffer notification when it next writes a used descriptor
   * (§2.8.10): with EVENT_IDX, at the position the driver reads next (off_wrap, then flags
   * DESC), otherwise for every one (ENABLE). Returns true when used descriptors are already
   * waiting, which the device will not notify about: the caller takes them without waiting.
   * Not on the polling hot path.
   */
  enableInterrupts(): boolean {
    const drv = this.#driver16;
    if (this.#eventIdx) {
      const p = this.#lastUsed;
      drv[0] = (p & this.#mask) | (this.#wrapOf(p) << 15);
    }
    // The XCHG orders the stores before the flag load in hasUsed() (§2.8.21.3.1's order).
    Atomics.store(drv, 1, this.#eventIdx ? RING_EVENT_FLAGS_DESC : RING_EVENT_FLAGS_ENABLE);
    return this.hasUsed();
  }

  /** Asks for no used-buffer notifications again (flags DISABLE, §2.8.10; a hint only). */
  disableInterrupts(): void {
    Atomics.store(this.#driver16, 1, RING_EVENT_FLAGS_DISABLE);
  }

  /** True while used-buffer notifications are requested ({@linkcode PackedQueue.enableInterrupts}). */
  get interruptsEnabled(): boolean {
    return this.#driver16[1] !== RING_EVENT_FLAGS_DISABLE;
  }

  /**
   * Why the queue is broken, or null while it works. The first bad used descriptor (see
   * {@linkcode PackedQueue.takeUsed}) breaks it: from then on it neither reads the device's
   * descriptors nor publishes buffers; only a device reset (a new queue) makes it usable.
   */
  get broken(): string | null {
    return this.#broken;
  }

  /** True when the device has written a used descriptor the driver has not taken yet. */
  hasUsed(): boolean {
    return this.#isUsed(this.#lastUsed);
  }

  /** Descriptor slots free for new buffers. */
  get freeCount(): number {
    return this.size - positionDistance(this.#lastUsed, this.#availPos);
  }

  /** Descriptor slots the device holds (one per buffer on the data path). */
  get inFlight(): number {
    return positionDistance(this.#lastUsed, this.#availPos);
  }

  /**
   * Makes one buffer available: the descriptor is visible to the device as soon as its
   * flags are stored (§2.8.21.1); {@linkcode PackedQueue.publish} notifies. `token` is
   * returned with the buffer when it is used. Returns false when the ring is full.
   */
  add(
    token: number,
    iovaLo: number,
    iovaHi: number,
    len: number,
    deviceWritable: boolean,
  ): boolean {
    if (positionDistance(this.#lastUsed, this.#availPos) >= this.size) return false;
    const p = this.#availPos;
    let id: number;
    const io = this.#io;
    if (io !== null) {
      id = p & this.#mask; // the slot: ids then follow ring order, the in-flight FIFO's
      io.fullLen[id] = deviceWritable ? len : 0;
    } else {
      id = this.#freeId[--this.#numFreeIds];
    }
    const s = p & this.#mask;
    const d32 = this.#d32;
    d32[4 * s] = iovaLo;
    d32[4 * s + 1] = iovaHi;
    d32[4 * s + 2] = len;
    this.#d16[8 * s + 6] = id;
    this.#d16[8 * s + 7] = this.#availFlags(p) | (deviceWritable ? VIRTQ_DESC_F_WRITE : 0);
    // Posted length 0 for a buffer the device only reads: its used length means nothing.
    this.#remember(id, token, deviceWritable ? len : 0, 1, iovaLo, iovaHi);
    this.#availPos = (p + 1) & 0xffff;
    return true;
  }

  /**
   * Makes one two-part buffer available: `len1` bytes the device reads, then `len2` bytes
   * it writes (a control command and its ack, §5.1.6.5). Both descriptors carry the buffer
   * id (§2.8.6: the device reports the last one's); the head's flags are stored last, so
   * the device sees the chain whole. Returns false when fewer than two slots are free.
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
    if (positionDistance(this.#lastUsed, this.#availPos) > this.size - 2) return false;
    const p = this.#availPos, t = (p + 1) & 0xffff;
    let id: number;
    const io = this.#io;
    if (io !== null) {
      id = p & this.#mask;
      io.fullLen[id] = len2;
    } else {
      id = this.#freeId[--this.#numFreeIds];
    }
    const h = p & this.#mask, s = t & this.#mask;
    const d32 = this.#d32, d16 = this.#d16;
    d32[4 * s] = lo2;
    d32[4 * s + 1] = hi2;
    d32[4 * s + 2] = len2;
    d16[8 * s + 6] = id;
    // Each descriptor carries its own position's wrap bits: a chain may straddle the end.
    d16[8 * s + 7] = this.#availFlags(t) | VIRTQ_DESC_F_WRITE;
    d32[4 * h] = lo1;
    d32[4 * h + 1] = hi1;
    d32[4 * h + 2] = len1;
    d16[8 * h + 6] = id;
    d16[8 * h + 7] = this.#availFlags(p) | VIRTQ_DESC_F_NEXT;
    // The used length counts the bytes written into the tail (§2.8.7 as §2.7.8).
    this.#remember(id, token, len2, 2, lo1, hi1);
    this.#availPos = (p + 2) & 0xffff;
    return true;
  }

  /**
   * Makes one buffer of `count` device-readable pieces available as a chain in
   * consecutive slots (§2.8.6): piece i at `lo[i]`/`hi[i]`, `lens[i]` bytes (a frame
   * spanning several packet buffers). Every descriptor carries the buffer id; the head's
   * flags are stored last. With indirect tables and 2 to
   * {@linkcode PackedQueue.indirectMax} pieces, one descriptor with the INDIRECT flag names
   * a table of them instead (§2.8.19). Returns false when fewer slots are free than it takes.
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
    if (count < 1 || count > 255) return false; // chainLen is a byte
    if (positionDistance(this.#lastUsed, this.#availPos) > this.size - count) return false;
    const p = this.#availPos;
    let id: number;
    const io = this.#io;
    if (io !== null) {
      id = p & this.#mask;
      io.fullLen[id] = 0; // nothing for the device to write
    } else {
      id = this.#freeId[--this.#numFreeIds];
    }
    const d32 = this.#d32, d16 = this.#d16;
    for (let i = count - 1; i >= 0; i--) {
      const q = (p + i) & 0xffff, s = q & this.#mask;
      d32[4 * s] = lo[i];
      d32[4 * s + 1] = hi[i];
      d32[4 * s + 2] = lens[i];
      d16[8 * s + 6] = id;
      // Each its own position's wrap bits (a chain may straddle the end); head last.
      d16[8 * s + 7] = this.#availFlags(q) | (i < count - 1 ? VIRTQ_DESC_F_NEXT : 0);
    }
    this.#remember(id, token, 0, count, lo[0], hi[0]); // device-readable only
    this.#availPos = (p + count) & 0xffff;
    return true;
  }

  /**
   * addSegments() through an indirect table (§2.8.19): one slot, whose descriptor has the
   * INDIRECT flag and names the table of the buffer's id. The buffer counts one descriptor
   * (chainLen 1), so completion steps over one slot and frees one id.
   */
  #addIndirect(
    token: number,
    lo: Uint32Array,
    hi: Uint32Array,
    lens: Uint32Array,
    count: number,
  ): boolean {
    if (positionDistance(this.#lastUsed, this.#availPos) >= this.size) return false;
    const p = this.#availPos, s = p & this.#mask;
    let id: number;
    const io = this.#io;
    if (io !== null) {
      id = s;
      io.fullLen[id] = 0; // nothing for the device to write
    } else {
      id = this.#freeId[--this.#numFreeIds];
    }
    const ind = this.#ind!;
    // The table first: plain stores, before the flags store below makes it available.
    ind.fill(id, lo, hi, lens, count);
    const d32 = this.#d32;
    d32[4 * s] = ind.iovaLo[id];
    d32[4 * s + 1] = ind.iovaHi[id];
    d32[4 * s + 2] = 16 * count; // §2.8.19: the table's length in bytes
    this.#d16[8 * s + 6] = id;
    // Publication point of this buffer (§2.8.21.1): flags last, INDIRECT without NEXT.
    this.#d16[8 * s + 7] = this.#availFlags(p) | VIRTQ_DESC_F_INDIRECT;
    this.#remember(id, token, 0, 1, lo[0], hi[0]); // device-readable only
    this.#availPos = (p + 1) & 0xffff;
    return true;
  }

  /** Position of the next used descriptor the driver reads (free-running, 16 bits). */
  get lastUsedIdx(): number {
    return this.#lastUsed;
  }

  /** Position up to which descriptors were made available at the last publication. */
  get publishedIdx(): number {
    return this.#kickedAt;
  }

  /**
   * Position up to which the device has written used descriptors contiguously from the
   * owner's last used position (read from the shadow). Any thread may call it; it reads
   * ring memory only. A used descriptor covers its buffer's descriptors (a chain, from the
   * shadow) and, in order, the batch it ends (§2.8.8); the walk stops at an id the driver
   * did not post.
   */
  deviceUsedIdx(): number {
    const n = this.size, mask = this.#mask;
    let p = this.#shadow32[0] & 0xffff;
    for (let i = 0; i < n && this.#isUsed(p); i++) {
      const id = this.#d16[8 * (p & mask) + 6];
      const descs = id < n ? this.#shadow32[2 + 2 * n + id] : 0;
      if (descs < 1 || descs > n) break;
      // In order a buffer's id is the slot of its first descriptor: the batch ends there.
      const step = this.#inOrder ? ((id + descs - (p & mask)) & mask) || n : descs;
      p = (p + step) & 0xffff;
    }
    return p;
  }

  /**
   * Looks at the used descriptor at position `pos` without taking it: the IOVA the driver
   * posted for the buffer id written there (from the shadow), or -1 when the id is out of
   * range. For the control path (src/net/steering.ts); any thread may call it.
   */
  usedAddr(pos: number): number {
    const id = this.#d16[8 * (pos & this.#mask) + 6];
    if (id >= this.size) return -1;
    return this.#shadow32[2 + 2 * id] + this.#shadow32[3 + 2 * id] * 0x1_0000_0000;
  }

  /** The length the device wrote at position `pos` (see {@linkcode PackedQueue.usedAddr}). */
  usedLen(pos: number): number {
    return this.#d32[4 * (pos & this.#mask) + 2];
  }

  /**
   * Other queues' notifiers that {@linkcode PackedQueue.publish} calls whenever it
   * notifies about this queue (a receive queue's siblings), through the same loop as this
   * queue's own (see SplitQueue.alsoNotify for why).
   */
  set alsoNotify(list: readonly QueueNotifier[]) {
    this.#targets = [this.notifier, ...list];
  }

  /** The notifiers set with the setter of the same name. */
  get alsoNotify(): readonly QueueNotifier[] {
    return this.#targets.slice(1);
  }

  /** How many notifiers {@linkcode PackedQueue.alsoNotify} holds (allocates nothing). */
  get alsoNotifyCount(): number {
    return this.#targets.length - 1;
  }

  /**
   * Notifies the device about every buffer added since the last call unless it suppressed
   * notifications (§2.8.10, §2.8.21.3), together with {@linkcode PackedQueue.alsoNotify}.
   * The descriptors are already visible; one notification covers the burst. Returns true
   * when it notified.
   */
  publish(): boolean {
    const newPos = this.#availPos;
    const oldPos = this.#kickedAt;
    if (newPos === oldPos) return false;
    if (this.#broken !== null) this.#misbehaved(this.#broken, false);
    // Full barrier: the flag stores above before the event suppression load below.
    Atomics.store(this.#shadow32, 0, this.#lastUsed);
    this.#kickedAt = newPos;
    const ev = this.#device32[0]; // one load: off_wrap and flags of the same write
    const flags = ev >>> 16;
    let wanted = true; // ENABLE, and reserved values: a notification too many is harmless
    if (flags === RING_EVENT_FLAGS_DISABLE) {
      wanted = false;
    } else if (flags === RING_EVENT_FLAGS_DESC && this.#eventIdx) {
      // Notify too when the offset is outside the ring or two laps or more went by since
      // the last publication (the event position is then ambiguous): one too many is harmless.
      const at = eventPosition(ev & 0xffff, newPos, this.size);
      wanted = at < 0 || positionDistance(oldPos, newPos) >= 2 * this.size ||
        vringNeedEvent(at, newPos, oldPos);
    }
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
   * Takes up to `max` used buffers in the order the device wrote them (§2.8.8): tokens to
   * `tokens` and the lengths written to `lens`, from index `at`. Returns how many. Every
   * used descriptor is validated (id in range and in flight, length within what was
   * posted, no more descriptors used than in flight); a bad one throws DEVICE_MISBEHAVED
   * before anything of the batch is handed out or freed, and breaks the queue. With
   * `inOrder`, one used descriptor may return a batch of buffers (each handed out with
   * its own token; see {@linkcode PackedQueueOptions.inOrder}).
   */
  takeUsed(tokens: Uint32Array, lens: Uint32Array, at: number, max: number): number {
    if (this.#broken !== null) this.#misbehaved(this.#broken, false);
    const io = this.#io;
    if (io !== null) {
      // In order (packed_in_order.ts): one used descriptor may return a batch.
      const k = io.take(this.#lastUsed, tokens, lens, at, max);
      if (k < 0) this.#misbehaved(io.error);
      if (k > 0) {
        this.#lastUsed = io.used;
        this.#shadow32[0] = io.used; // for deviceUsedIdx() on other threads
      }
      return k;
    }
    const room = Math.min(tokens.length, lens.length) - at;
    if (max > room) max = room;
    const d16 = this.#d16, d32 = this.#d32, token = this.#token;
    let pos = this.#lastUsed, n = 0;
    // One pass reads each descriptor once and checks the whole batch before any of it is
    // committed; tokens are cleared as checked (catching an id used twice), put back if
    // the batch is refused. Distinct in-flight ids span at most the slots in flight, so
    // this also stops a device claiming more used descriptors than were made available.
    while (n < max && this.#isUsed(pos)) {
      const s = pos & this.#mask;
      const id = d16[8 * s + 6]; // x86 TSO: loaded after the flags in #isUsed
      if (id >= this.size || token[id] < 0) {
        this.#refuse(n);
        this.#misbehaved(
          `the used descriptor at ${pos} names buffer ${id}, which is not in flight`,
        );
      }
      // A buffer with nothing device-writable (posted length 0) has no length to report:
      // DPDK leaves what the driver wrote there, and QEMU 7.2 sets no WRITE flag on any
      // used descriptor, so the flag cannot tell either (§2.8.4).
      const len = this.#postedLen[id] === 0 ? 0 : d32[4 * s + 2];
      if (len > this.#postedLen[id]) {
        this.#refuse(n);
        this.#misbehaved(
          `the used descriptor at ${pos} reports ${len} bytes written into a ${
            this.#postedLen[id]
          }-byte buffer`,
        );
      }
      this.#takenId[n] = id;
      this.#takenToken[n] = token[id];
      this.#takenLen[n] = len;
      token[id] = -1;
      pos = (pos + this.#chainLen[id]) & 0xffff; // §2.8.6: a chain's slots are skipped
      n++;
    }
    if (n === 0) return 0;
    // Commit: hand out and free exactly what was checked.
    for (let i = 0; i < n; i++) {
      tokens[at + i] = this.#takenToken[i];
      lens[at + i] = this.#takenLen[i];
      this.#freeId[this.#numFreeIds++] = this.#takenId[i];
    }
    this.#lastUsed = pos;
    this.#shadow32[0] = pos; // for deviceUsedIdx() on other threads
    return n;
  }

  /** True when the descriptor at `pos` is used: both wrap bits equal its wrap counter (§2.8.1). */
  #isUsed(pos: number): boolean {
    const f = this.#d16[8 * (pos & this.#mask) + 7] & WRAP_BITS;
    return f === (this.#wrapOf(pos) === 1 ? WRAP_BITS : 0);
  }

  /** The wrap counter of position `pos` (1 in the first lap, §2.8.1). */
  #wrapOf(pos: number): number {
    return ((pos >> this.#shift) & 1) ^ 1;
  }

  /** Flags making the descriptor at `pos` available: AVAIL = wrap, USED = !wrap (§2.8.1). */
  #availFlags(pos: number): number {
    return this.#wrapOf(pos) === 1 ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
  }

  /** Records a buffer id posted: the driver's truth, and the shadow IOVA for other threads. */
  #remember(id: number, token: number, len: number, descs: number, lo: number, hi: number) {
    this.#token[id] = token;
    this.#postedLen[id] = len;
    this.#chainLen[id] = descs;
    this.#shadow32[2 + 2 * id] = lo;
    this.#shadow32[3 + 2 * id] = hi;
    this.#shadow32[2 + 2 * this.size + id] = descs;
  }

  /** Puts back the tokens of the first `n` ids checked in a refused batch. */
  #refuse(n: number): void {
    for (let i = 0; i < n; i++) this.#token[this.#takenId[i]] = this.#takenToken[i];
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
