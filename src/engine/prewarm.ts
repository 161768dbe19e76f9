/**
 * Warms a worker's forwarding code before it touches a device. V8 runs new code in its
 * interpreter and optimises it over the first ~150,000 frames, so a cold worker forwards
 * its first frames several times slower than later ones and loses them when a back-end
 * sends at once (DPDK has no warm-up). Here the same Forwarder, receive and transmit queue
 * and ring code (split, packed, or both in turn) forward synthetic frames between two queue pairs in private memory,
 * each looped back to itself by a few lines that play the device, until V8 has seen
 * enough of them; the worker then adopts its real queues with that code already
 * optimised. Nothing here reaches a device, the shared pool or the stats: the rings, the
 * pool and the counters are its own and become garbage when it returns.
 * docs/performance.md has the measurements.
 *
 * @module
 */

import { counterLayout, portBase } from "./counters.ts";
import { Forwarder } from "./forwarder.ts";
import { PartitionPool } from "./partition_pool.ts";
import { RxQueue } from "../net/rx_queue.ts";
import { TxQueue } from "../net/tx_queue.ts";
import {
  packedRingLayout,
  positionWrap,
  RING_EVENT_FLAGS_DESC,
  VIRTQ_DESC_F_AVAIL,
  VIRTQ_DESC_F_USED,
} from "../virtio/packed_ring_math.ts";
import type { RingFormat } from "../virtio/ring_format.ts";
import { splitRingLayout, VIRTQ_DESC_F_WRITE } from "../virtio/ring_math.ts";
import type { QueueNotifier, Virtqueue } from "../virtio/virtqueue.ts";

/**
 * Makes a virtqueue of `format` in `memory` at `offset` (the worker passes its ring
 * constructor).
 */
export type MakeQueue = (
  format: RingFormat,
  memory: ArrayBuffer,
  offset: number,
  size: number,
  notify: QueueNotifier,
  name: string,
) => Virtqueue;

/** Options of {@linkcode prewarm}. */
export interface PrewarmOptions {
  /** Stop after this many frames received (both ports). */
  frames: number;
  /** …or after this many milliseconds, whichever comes first. */
  maxMs: number;
  /** As the worker's forwarder: frames per burst. */
  burst: number;
  /** As the worker's forwarder: partial transmit buffer drain time (ms). */
  drainMs: number;
  /** As the worker's forwarder. */
  txFull: "wait" | "drop";
  /** As the worker's forwarder. */
  macRewrite: boolean;
  /** As the worker's queues: count the extended statistics per frame (default true). */
  xstats?: boolean;
  /** virtio-net header bytes of each port. */
  headerSizes: readonly number[];
  /** Each port's MAC. */
  macs: readonly Uint8Array[];
  /** The worker's poll clock (element 0 in ms), ticked by `tick`. */
  clock: Float64Array;
  /** Updates `clock`. */
  tick: () => void;
  /**
   * The warm-up queues' notifiers, queue i taking entry i modulo their number (default
   * one that does nothing); the loopback asks for a notification every 8th pass.
   */
  notifiers?: readonly QueueNotifier[];
  /**
   * The ring formats to warm, one after the other, sharing `frames` and `maxMs` (default
   * split only): those the worker's queues may have.
   */
  formats?: readonly RingFormat[];
  /**
   * True: the device takes every frame at once and returns 64-byte unicast frames (the
   * benchmarks' steady state). Default false: warm-up's mix of sizes, destinations and a
   * slow device (see LoopbackWire).
   */
  steady?: boolean;
}

/** What {@linkcode prewarm} did. */
export interface PrewarmResult {
  /** Synthetic frames forwarded. */
  frames: number;
  /** Milliseconds it took. */
  ms: number;
}

const RING_SIZE = 256;
const BUFFER_SIZE = 2048; // the longest warm-up frame and its header; 2 MiB in all
const PAGE = 4096;
/** The pool's first IOVA: a descriptor's address less this is the buffer's offset. */
const POOL_IOVA = 0x1000_0000;
/**
 * Frame lengths the device delivers in turn: every size bin of the extended statistics
 * (DPDK's, from undersize to over 1,518 bytes), so that traffic of any size meets code
 * that has seen it (V8 deoptimises code at a comparison it never made).
 */
const FRAME_LENS = [64, 60, 100, 200, 400, 800, 1200, 1518, 1600, 64, 64, 64];
/** Destination MACs in turn (first byte, the other five): unicast, group (multicast), broadcast. */
const DESTINATIONS = [[0x02, 0x00], [0x01, 0x00], [0xff, 0xff], [0x02, 0x00]];
/** In every 1,024 device steps, the first 256 play a slow device (see LoopbackWire.step). */
const SLOW_STEPS = 256;

/** Does nothing: the warm-up rings' device needs no notifications. */
const NO_NOTIFY: QueueNotifier = { notify() {} };

/**
 * The device end of one port looped back to itself: every frame the driver makes
 * available on the transmit queue is returned used and arrives in the next buffer of the
 * receive queue (dropped when there is none, as a NIC would), with the next length of
 * {@linkcode FRAME_LENS} and destination of {@linkcode DESTINATIONS}. For the first
 * {@linkcode SLOW_STEPS} of every 1,024 steps it plays a slow device that takes one frame
 * in 32 steps and meanwhile receives 32 new ones: transmit buffers then leave part-full
 * on the drain time, rings fill and the pool runs short, as on a real link, so that
 * warm-up runs those statements too.
 */
class LoopbackWire {
  readonly #tx: RingView;
  readonly #rx: RingView;
  readonly #data: Uint8Array;
  readonly #headerSize: number;
  readonly #lens: readonly number[];
  readonly #slowSteps: number;
  #steps = 0;
  #frames = 0;

  constructor(
    format: RingFormat,
    memory: ArrayBuffer,
    txOffset: number,
    rxOffset: number,
    headerSize: number,
    pool: ArrayBuffer,
    steady: boolean,
  ) {
    const view = (at: number) =>
      format === "packed" ? new PackedRingView(memory, at) : new SplitRingView(memory, at);
    this.#tx = view(txOffset);
    this.#rx = view(rxOffset);
    this.#data = new Uint8Array(pool);
    this.#headerSize = headerSize;
    this.#lens = steady ? [64] : FRAME_LENS;
    this.#slowSteps = steady ? 0 : SLOW_STEPS;
  }

  /** Delivers `n` frames into the receive queue without anything sent (the first burst). */
  inject(n: number): void {
    for (let i = 0; i < n && this.#rx.hasAvail(); i++) this.#deliver();
    this.#rx.publishUsed();
  }

  /**
   * Moves everything sent so far to the receive side (a slow device: one frame, and 32
   * new ones, every 32nd step). Every 8th time, asks to be notified of the next buffers
   * on both rings (as a device that went idle does), so that warm-up runs the driver's
   * notification path too.
   */
  step(): void {
    const tx = this.#tx, rx = this.#rx;
    const s = ++this.#steps;
    const slow = (s & 1023) < this.#slowSteps;
    if (slow && (s & 31) !== 0) return;
    let moved = 0;
    while (tx.hasAvail() && (!slow || moved < 1)) {
      tx.use(tx.nextAvail(), 0);
      if (rx.hasAvail()) this.#deliver();
      moved++;
    }
    if (slow) { for (let i = 0; i < 32 && rx.hasAvail(); i++) this.#deliver(); }
    tx.publishUsed();
    rx.publishUsed();
    if ((s & 7) === 0) {
      tx.askNotify();
      rx.askNotify();
    }
  }

  /** Fills the next receive buffer with a frame (its destination MAC) and uses it. */
  #deliver(): void {
    const rx = this.#rx, k = this.#frames++;
    const id = rx.nextAvail();
    if (this.#slowSteps !== 0) { // steady: the buffers' zeros, a unicast address
      const at = rx.lastAddress - POOL_IOVA + this.#headerSize;
      const dst = DESTINATIONS[k & 3];
      this.#data.fill(dst[1], at + 1, at + 6);
      this.#data[at] = dst[0];
    }
    rx.use(id, this.#headerSize + this.#lens[k % this.#lens.length]);
  }
}

/** A device's view of one ring of {@linkcode RING_SIZE} entries. */
interface RingView {
  /** The driver made a buffer available that the device has not taken. */
  hasAvail(): boolean;
  /** Takes the next available buffer: its id. */
  nextAvail(): number;
  /** The low 32 bits of the address of the buffer {@linkcode RingView.nextAvail} took. */
  readonly lastAddress: number;
  /** Returns buffer `id` used with `len` bytes written. */
  use(id: number, len: number): void;
  /** Makes the used buffers visible (split: used->idx). */
  publishUsed(): void;
  /** Asks to be notified of the driver's next available buffer (EVENT_IDX). */
  askNotify(): void;
}

/** A device's view of one split ring (§2.7). */
class SplitRingView implements RingView {
  readonly #desc: Uint32Array;
  readonly #avail: Uint16Array;
  readonly #used16: Uint16Array;
  readonly #used32: Uint32Array;
  #lastAvail = 0;
  #usedIdx = 0;
  lastAddress = 0;

  constructor(memory: ArrayBuffer, offset: number) {
    const l = splitRingLayout(RING_SIZE);
    this.#desc = new Uint32Array(memory, offset, 4 * RING_SIZE);
    this.#avail = new Uint16Array(memory, offset + l.availOffset, 3 + RING_SIZE);
    this.#used16 = new Uint16Array(memory, offset + l.usedOffset, 3 + 4 * RING_SIZE);
    this.#used32 = new Uint32Array(memory, offset + l.usedOffset, 1 + 2 * RING_SIZE);
  }

  hasAvail(): boolean {
    return this.#avail[1] !== this.#lastAvail;
  }

  nextAvail(): number {
    const id = this.#avail[2 + (this.#lastAvail & (RING_SIZE - 1))];
    this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    this.lastAddress = this.#desc[4 * id];
    return id;
  }

  use(id: number, len: number): void {
    const slot = this.#usedIdx & (RING_SIZE - 1);
    this.#used32[1 + 2 * slot] = id;
    this.#used32[2 + 2 * slot] = len;
    this.#usedIdx = (this.#usedIdx + 1) & 0xffff;
  }

  publishUsed(): void {
    this.#used16[1] = this.#usedIdx;
  }

  /** Sets avail_event to the next index to read: the driver's next publication notifies. */
  askNotify(): void {
    this.#used16[2 + 4 * RING_SIZE] = this.#lastAvail;
  }
}

/** A device's view of one packed ring (§2.8): one position each for avail and used. */
class PackedRingView implements RingView {
  readonly #d16: Uint16Array;
  readonly #d32: Uint32Array;
  readonly #event: Uint16Array;
  #avail = 0;
  #used = 0;
  lastAddress = 0;

  constructor(memory: ArrayBuffer, offset: number) {
    const l = packedRingLayout(RING_SIZE);
    this.#d16 = new Uint16Array(memory, offset + l.descOffset, 8 * RING_SIZE);
    this.#d32 = new Uint32Array(memory, offset + l.descOffset, 4 * RING_SIZE);
    this.#event = new Uint16Array(memory, offset + l.deviceOffset, 2);
  }

  hasAvail(): boolean {
    const f = this.#d16[8 * (this.#avail & (RING_SIZE - 1)) + 7];
    const w = positionWrap(this.#avail, RING_SIZE);
    return ((f & VIRTQ_DESC_F_AVAIL) !== 0) === (w === 1) &&
      ((f & VIRTQ_DESC_F_USED) !== 0) !== (w === 1);
  }

  nextAvail(): number {
    const slot = this.#avail & (RING_SIZE - 1);
    this.lastAddress = this.#d32[4 * slot];
    this.#avail = (this.#avail + 1) & 0xffff;
    return this.#d16[8 * slot + 6];
  }

  use(id: number, len: number): void {
    const slot = this.#used & (RING_SIZE - 1);
    const w = positionWrap(this.#used, RING_SIZE);
    this.#d32[4 * slot + 2] = len;
    this.#d16[8 * slot + 6] = id;
    // WRITE: the length is valid (§2.8.4), as QEMU and DPDK mark a receive buffer.
    this.#d16[8 * slot + 7] = (w ? VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED : 0) |
      (len > 0 ? VIRTQ_DESC_F_WRITE : 0);
    this.#used = (this.#used + 1) & 0xffff;
  }

  publishUsed(): void {} // each used descriptor is visible once its flags are written

  askNotify(): void {
    const a = this.#avail;
    this.#event[0] = (a & (RING_SIZE - 1)) | (positionWrap(a, RING_SIZE) << 15);
    this.#event[1] = RING_EVENT_FLAGS_DESC;
  }
}

/**
 * Two queue pairs in private memory, each looped back to itself, and a Forwarder over
 * them built with `opts`: {@linkcode InMemoryLoopback.poll} forwards and plays the device.
 * Warm-up uses it, and so does the forwarding micro-benchmark (bench/micro/).
 *
 * @example
 * ```ts ignore
 * const loop = new InMemoryLoopback(opts, makeQueue, "packed");
 * let frames = 0;
 * while (frames < 1000) frames += loop.poll();
 * ```
 */
export class InMemoryLoopback {
  readonly #fwd: Forwarder;
  readonly #wires: LoopbackWire[] = [];
  /** Warm-up's mix (not `steady`): also a tx_first burst every 4,096 polls. */
  readonly #mixed: boolean;
  #polls = 0;

  constructor(
    opts: Omit<PrewarmOptions, "frames" | "maxMs">,
    makeQueue: MakeQueue,
    format: RingFormat = "split",
  ) {
    const layoutBytes = format === "packed"
      ? packedRingLayout(RING_SIZE).totalBytes
      : splitRingLayout(RING_SIZE).totalBytes;
    const ringBytes = Math.ceil(layoutBytes / PAGE) * PAGE;
    const rings = new ArrayBuffer(4 * ringBytes);
    const count = 4 * RING_SIZE;
    const poolMemory = new ArrayBuffer(count * BUFFER_SIZE);
    const pool = new PartitionPool(
      poolMemory,
      POOL_IOVA,
      count,
      BUFFER_SIZE,
      Array.from({ length: count }, (_, i) => i),
      [],
    );
    const c = new Float64Array(counterLayout(2, 0, 0).length);
    const notifiers = opts.notifiers ?? [NO_NOTIFY];
    let n = 0;
    const rx: RxQueue[] = [], tx: TxQueue[] = [];
    for (let p = 0; p < 2; p++) {
      const rxAt = (2 * p) * ringBytes, txAt = (2 * p + 1) * ringBytes;
      const hdr = opts.headerSizes[p];
      const q = (at: number, what: string) =>
        makeQueue(format, rings, at, RING_SIZE, notifiers[n++ % notifiers.length], `${what}${p}`);
      rx.push(new RxQueue(q(rxAt, "loopback rx"), pool, hdr, c, portBase(p)));
      tx.push(new TxQueue(q(txAt, "loopback tx"), pool, hdr, c, portBase(p)));
      rx[p].classify = tx[p].classify = opts.xstats !== false;
      rx[p].refill();
      this.#wires.push(
        new LoopbackWire(format, rings, txAt, rxAt, hdr, poolMemory, opts.steady ?? false),
      );
    }
    this.#fwd = new Forwarder(rx, tx, pool, c, {
      queue: 0,
      burst: opts.burst,
      drainMs: opts.drainMs,
      txFull: opts.txFull,
      headerSizes: opts.headerSizes,
      macRewrite: opts.macRewrite,
      macs: opts.macs,
      script: null,
      clock: opts.clock,
      capture: null,
    });
    this.#mixed = opts.steady !== true;
    for (const w of this.#wires) w.inject(RING_SIZE / 2);
  }

  /** One forwarding poll, then the device's turn; returns the frames received. */
  poll(): number {
    const n = this.#fwd.poll();
    // Now and then a burst as testpmd's tx_first asks for (tx_first.ts): warm code too.
    if (this.#mixed && (++this.#polls & 4095) === 0) this.#fwd.txFirst(1);
    this.#wires[0].step();
    this.#wires[1].step();
    return n;
  }

  /** Sends what the forwarder still buffers (the rings are dropped with the object). */
  close(): void {
    this.#fwd.drain(0);
  }
}

/**
 * Forwards synthetic frames between two looped-back in-memory ports with the worker's
 * own forwarding code until `frames` were received or `maxMs` passed, on each of
 * `opts.formats` in turn.
 *
 * @example
 * ```ts ignore
 * const r = prewarm({ frames: 200_000, maxMs: 2000, burst: 32, drainMs: 0.1, txFull: "wait",
 *   macRewrite: false, headerSizes: [12, 12], macs, clock: clock.ms, tick: () => clock.tick() },
 *   (format, mem, off, size, notify, name) =>
 *     createVirtqueue(format, mem, off, { index: 0, size, eventIdx: true, notify, name }));
 * ```
 */
export function prewarm(opts: PrewarmOptions, makeQueue: MakeQueue): PrewarmResult {
  const formats = opts.formats ?? ["split"];
  opts.tick();
  const t0 = opts.clock[0];
  let frames = 0;
  for (const [k, format] of formats.entries()) {
    const loop = new InMemoryLoopback(opts, makeQueue, format);
    const until = (opts.frames * (k + 1)) / formats.length;
    const deadline = t0 + (opts.maxMs * (k + 1)) / formats.length;
    for (let loops = 0; frames < until; loops++) {
      opts.tick();
      frames += loop.poll();
      if ((loops & 255) === 0 && opts.clock[0] >= deadline) break;
    }
    loop.close();
  }
  return { frames, ms: opts.clock[0] - t0 };
}
