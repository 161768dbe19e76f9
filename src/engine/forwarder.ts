/**
 * One worker's run-to-completion forwarding step: receive a burst on each port's queue,
 * pass it through the script (if any), buffer the frames for the output port's transmit
 * queue and send a buffer when it holds a full burst or its oldest frame waited the drain
 * time (as DPDK's rte_eth_tx_buffer does for l2fwd), so one notification covers many
 * frames. Port i forwards to port i ^ 1.
 *
 * A full transmit ring: with `txFull: "drop"` the frames it cannot take are dropped and
 * counted, as DPDK's l2fwd does. With "wait" (the default) they stay buffered and are
 * retried, and while a direction holds more than a burst the forwarder stops receiving
 * on its input port: the receive ring, then the device's own input queue, absorb the
 * stall (backpressure), so a device that falls behind for a moment loses nothing.
 *
 * Nothing here allocates per packet: bursts are buffer indices in typed arrays built once.
 * The time comes from a one-element Float64Array the caller updates, not as an argument:
 * V8 boxes a double passed to a call it does not inline (measured: 16 bytes per burst),
 * so no method here takes or returns a fractional number.
 *
 * @module
 */

import { positionReached } from "../virtio/virtqueue.ts";
import {
  P_DROP_MODE,
  P_DROP_SCRIPT,
  P_DROP_TX_OFFLOAD,
  P_DROP_TX_RING_FULL,
  P_TX_RING_FULL_WAITS,
  portBase,
  W_PCAP_CAPTURED,
  W_PCAP_DROPPED,
  W_POOL_AVAILABLE,
} from "./counters.ts";
import type { PcapRingWriter } from "./pcap_ring.ts";
import { NO_BUFFER } from "../dma/packet_buffers.ts";
import { TX_FIRST_FRAME, txFirstFrame } from "./tx_first.ts";
import { BOUNCE, DROP, type ForwardScript } from "./script_api.ts";
import { ScriptBurst } from "./script_burst.ts";
import { CSUM_PARTIAL, FrameOffloads } from "../net/offloads.ts";
import { requestTxOffload } from "../net/tx_offload.ts";
import { applyMode } from "./fwd_modes/apply_mode.ts";
import {
  type ForwardMode,
  MODE_BOUNCE,
  MODE_DROP,
  MODE_FORWARD,
  MODE_ICMPECHO,
  MODE_MAC,
  modeNumber,
} from "./fwd_modes/modes.ts";

/** What the forwarder needs of a receive queue. */
export interface RxPort {
  /** Receives up to `max` frames into `bufs`/`lens` (frame lengths, header excluded). */
  rxBurst(bufs: Uint32Array, lens: Uint32Array, max: number): number;
}

/** What the forwarder needs of a transmit queue. */
export interface TxPort {
  /** Queues frames; returns how many were taken (the rest stay the caller's). */
  txBurst(bufs: Uint32Array, lens: Uint32Array, count: number): number;
  /** 1 when the last txBurst stopped at a frame no ring can take (to be freed), else 0. */
  readonly stoppedTooLong: number;
  /** Returns completed buffers to the pool; returns how many. */
  reclaim(): number;
  /** The virtqueue (for what is in flight, and how far the device got). */
  readonly vq: {
    readonly inFlight: number;
    readonly publishedIdx: number;
    deviceUsedIdx(): number;
  };
}

/** What the forwarder needs of the buffer pool. */
export interface PoolLike {
  /** All bytes of the pool. */
  readonly data: Uint8Array;
  /** The same bytes as words. */
  readonly words: Uint32Array;
  /** Bytes per buffer. */
  readonly bufferSize: number;
  /** Per buffer, the next of its frame or NO_BUFFER (mergeable receive buffers). */
  readonly next: Uint32Array;
  /** Per buffer, 1 when its header holds a transmit offload request (tx_offload.ts). */
  readonly txHeader: Uint8Array;
  /** Free buffers left. */
  readonly available: number;
  /** Byte offset of buffer `i`. */
  offset(i: number): number;
  /** Returns buffer `i`. */
  free(i: number): void;
  /** Takes a free buffer; NO_BUFFER when none is. */
  alloc(): number;
}

/** Options of a {@linkcode Forwarder}. */
export interface ForwarderOptions {
  /** Queue pair index. */
  queue: number;
  /** Frames per burst. */
  burst: number;
  /** A partial transmit buffer goes out after this many ms. */
  drainMs: number;
  /** What to do with frames a full transmit ring does not take (default "wait"). */
  txFull?: "wait" | "drop";
  /** Bytes of virtio_net_hdr in front of each frame, per port. */
  headerSizes: readonly number[];
  /** Rewrite MACs (source: the output port's; destination 02:00:00:00:00:<port>). */
  macRewrite: boolean;
  /** The built-in forwarding mode (fwd_modes/modes.ts; default "io"); "mac" = macRewrite. */
  mode?: ForwardMode;
  /** Each port's MAC. */
  macs: readonly Uint8Array[];
  /** Script, with its counters and table (views into the worker's counters). */
  script: { module: ForwardScript; counters: Float64Array; table: Float64Array } | null;
  /**
   * The time in ms (element 0), of a monotonic clock that does not allocate, such as
   * clock.ts's FfiClock.ms; the caller updates it before each poll.
   */
  clock: Float64Array;
  /**
   * Capture the frames received on `port` (`rx`) and those sent out of it (`tx`, as they
   * leave: after MAC rewrite and script) into `ring`; a frame's timestamp is the poll time
   * plus `epochOffsetMs` (the wall clock's lead over the poll clock), in µs.
   */
  capture: Capture | null;
  /** Each port's negotiated offloads (the mask of src/net/offloads.ts); default none. */
  offloads?: readonly number[];
  /**
   * The arrays the receive queues of ports with receive offloads validate each frame's
   * offload fields into (RxQueue.enableOffloads), of `burst` entries; scripts see them
   * and fill them in as transmit requests (docs/offloads.md). Default: arrays of its own.
   */
  frames?: FrameOffloads;
  /** 1 for each port whose receive queue fills `frames` (receive offloads negotiated). */
  rxOffloads?: readonly number[];
}

/** What a forwarder captures, and where to. */
export interface Capture {
  /** The port. */
  port: number;
  /** Its received frames. */
  rx: boolean;
  /** Its sent frames. */
  tx: boolean;
  /** The side buffer. */
  ring: PcapRingWriter;
  /** The wall clock's lead over the poll clock (ms). */
  epochOffsetMs: number;
}

/**
 * The forwarding step of one worker.
 *
 * @example
 * ```ts ignore
 * const clock = new FfiClock(CLOCK_MONOTONIC);
 * const fwd = new Forwarder([rx0, rx1], [tx0, tx1], pool, counters, { ...options, clock: clock.ms });
 * for (;;) {
 *   clock.tick();
 *   fwd.poll();
 * }
 * ```
 */
export class Forwarder {
  readonly #rx: readonly RxPort[];
  readonly #tx: readonly TxPort[];
  readonly #pool: PoolLike;
  readonly #c: Float64Array;
  readonly #burst: number;
  readonly #drainMs: number;
  readonly #dropWhenFull: boolean;
  readonly #hdr: Int32Array;
  readonly #rewrite: boolean;
  readonly #macs: readonly Uint8Array[];
  readonly #bufs: Uint32Array;
  readonly #lens: Uint32Array;
  readonly #txBufs: Uint32Array[];
  readonly #txLens: Uint32Array[];
  readonly #txCount: Uint32Array;
  readonly #txSince: Float64Array;
  readonly #bursts: ScriptBurst[];
  readonly #script: ForwardScript | null;
  /** 1 when a script may send frames back out of the port they came in on. */
  readonly #mayBounce: number;
  readonly #capture: Capture | null;
  readonly #clock: Float64Array;
  /**
   * 1 while port p's receive queue is not to be polled: a steering switch is under way
   * (steering_mailbox.ts). Frames wait in the ring meanwhile.
   */
  readonly paused: Uint8Array = new Uint8Array(2);
  /** [0] 1 while the engine is halted (control.ts CTL_HALT): no port is polled. */
  readonly halted: Uint8Array = new Uint8Array(1);
  // txSettled per receive port: 0 idle, 1 flushing, 2 waiting for the device; the marks.
  readonly #settle = new Uint8Array(2);
  readonly #settleMark = new Int32Array(4);
  // Where the pieces of a frame that spans buffers are, for the capture.
  readonly #partStart: Uint32Array;
  readonly #partBytes: Uint32Array;
  // Offloads (docs/offloads.md): per port, its mask and whether its receive queue fills
  // #frames; each frame's received length (one that spans buffers keeps it).
  readonly #offloads: Int32Array;
  readonly #rxOffl: Uint8Array;
  readonly #frames: FrameOffloads;
  readonly #rxLens: Uint32Array;
  /** The forwarding mode's number (fwd_modes/modes.ts). */
  readonly #mode: number;
  /** Per port, the frame tx_first sends (tx_first.ts), made once. */
  readonly #txFirstFrames: readonly Uint8Array[];

  /** Forwards between `rx[i]` and `tx[i ^ 1]`; counts into `counters` (counters.ts). */
  constructor(
    rx: readonly RxPort[],
    tx: readonly TxPort[],
    pool: PoolLike,
    counters: Float64Array,
    opts: ForwarderOptions,
  ) {
    if (rx.length !== 2 || tx.length !== 2) throw new RangeError("a forwarder has two ports");
    this.#rx = rx;
    this.#tx = tx;
    this.#pool = pool;
    this.#c = counters;
    this.#burst = opts.burst;
    this.#drainMs = opts.drainMs;
    this.#dropWhenFull = opts.txFull === "drop";
    this.#hdr = Int32Array.from(opts.headerSizes);
    this.#mode = modeNumber(opts.mode ?? "io");
    this.#rewrite = opts.macRewrite || this.#mode === MODE_MAC;
    this.#macs = opts.macs;
    this.#txFirstFrames = opts.macs.map((mac, p) => txFirstFrame(p, mac));
    this.#bufs = new Uint32Array(opts.burst);
    this.#lens = new Uint32Array(opts.burst);
    // Room for at most a burst (poll() receives only while the buffers its frames may go
    // to hold no more) plus one received burst; poll() sends them at its end.
    this.#txBufs = rx.map(() => new Uint32Array(2 * opts.burst));
    this.#txLens = rx.map(() => new Uint32Array(2 * opts.burst));
    this.#txCount = new Uint32Array(rx.length);
    this.#txSince = new Float64Array(rx.length);
    this.#script = opts.script?.module ?? null;
    this.#mayBounce = this.#script === null && this.#mode !== MODE_ICMPECHO ? 0 : 1;
    this.#capture = opts.capture;
    this.#clock = opts.clock;
    // The longest frame (64 KiB and a header) in the smallest pieces a buffer holds.
    const parts = Math.ceil(65_600 / (pool.bufferSize - Math.max(...opts.headerSizes))) + 1;
    this.#partStart = new Uint32Array(parts);
    this.#partBytes = new Uint32Array(parts);
    this.#offloads = Int32Array.from(opts.offloads ?? [0, 0]);
    this.#rxOffl = Uint8Array.from(opts.rxOffloads ?? [0, 0]);
    this.#frames = opts.frames ?? new FrameOffloads(opts.burst);
    this.#rxLens = new Uint32Array(opts.burst);
    const s = opts.script;
    this.#bursts = rx.map((_, p) =>
      new ScriptBurst(
        p,
        p ^ 1,
        opts.queue,
        this.#bufs,
        this.#lens,
        pool.data,
        pool.bufferSize - Math.max(...opts.headerSizes),
        s ? s.counters : new Float64Array(0),
        s ? s.table : new Float64Array(0),
        opts.macs,
        this.#frames,
      )
    );
  }

  /**
   * One pass over both ports at the time in the clock array: receive, handle, buffer, and
   * flush transmit buffers that are full or waited long enough. Returns the number of
   * frames received.
   */
  poll(): number {
    let got = 0;
    const burst = this.#burst, paused = this.paused, halted = this.halted[0];
    for (let p = 0; p < 2; p++) {
      // Backpressure: while more than a burst waits for port p ^ 1's ring (or for p's own,
      // when a script may bounce frames back to p), frames stay in port p's receive ring;
      // the flushes below retry the buffers. Without a script a full ring on p does not
      // stop p's input: a peer that fills p's receive ring while it waits to be drained
      // (a vhost-user back-end retrying, one thread for both) would wait for us until it
      // gives up and drops. With a script that may bounce it still can.
      // (No flush here: code first run when a ring first fills, maybe long after warm-up,
      // would cost a recompile; see the comment below.)
      if (
        (paused[p] | halted | (this.#txCount[p ^ 1] > burst ? 1 : 0) |
          (this.#txCount[p] > burst ? this.#mayBounce : 0)) !== 0
      ) {
        continue;
      }
      const n = this.#rx[p].rxBurst(this.#bufs, this.#lens, burst);
      if (n > 0) {
        got += n;
        this.#handle(p, n);
      }
    }
    // A transmit buffer goes out once it holds a burst or its oldest frame waited the drain
    // time, from this one call site: a flush in #enqueue as a burst fills would first run
    // when traffic first comes in bursts, maybe 300,000 frames in, and V8 would
    // deoptimise the loop there and compile it again (heap growth long after warm-up).
    const now = this.#clock[0], drain = this.#drainMs;
    for (let q = 0; q < 2; q++) {
      const k = this.#txCount[q];
      if ((k >= burst ? 1 : 0) | (k > 0 && now - this.#txSince[q] >= drain ? 1 : 0)) {
        this.#flush(q);
      }
    }
    this.#c[W_POOL_AVAILABLE] = this.#pool.available;
    return got;
  }

  /**
   * Sends `bursts` bursts of {@linkcode TX_FIRST_FRAME}-byte UDP frames out of each port
   * (testpmd's `tx_first`, tx_first.ts) through the transmit buffers forwarded frames go
   * through, in one go: a port gets fewer when its ring and buffers are full or the pool
   * runs dry. Returns the frames queued. The worker calls it with 0 every 64 polls and
   * with the bursts the engine asked for (control.ts CTL_TX_FIRST_BURSTS).
   */
  txFirst(bursts: number): number {
    let queued = 0;
    for (let p = 0; p < 2 && bursts > 0; p++) {
      const frame = this.#txFirstFrames[p];
      for (let b = 0; b < bursts; b++) {
        this.#flush(p);
        const n = Math.min(this.#burst, 2 * this.#burst - this.#txCount[p]);
        for (let i = 0; i < n; i++) {
          const buf = this.#pool.alloc();
          if (buf === NO_BUFFER) break;
          this.#pool.data.set(frame, this.#pool.offset(buf) + this.#hdr[p]);
          this.#enqueue(p, buf, TX_FIRST_FRAME);
          queued++;
        }
        this.#flush(p);
      }
    }
    return queued;
  }

  #handle(inP: number, n: number): void {
    const bufs = this.#bufs, lens = this.#lens, pool = this.#pool;
    const cap = this.#capture;
    if (cap !== null) cap.ring.stampUs[0] = (cap.epochOffsetMs + this.#clock[0]) * 1000;
    if (cap !== null && cap.rx && cap.port === inP) {
      for (let i = 0; i < n; i++) this.#record(cap, bufs[i], inP, lens[i]);
    }
    if (this.#mode > MODE_MAC) {
      this.#handleMode(inP, n);
      return;
    }
    const outP = inP ^ 1;
    const script = this.#script, f = this.#frames;
    if (script === null) {
      if (this.#rxOffl[inP] === 0) {
        for (let i = 0; i < n; i++) this.#enqueue(outP, bufs[i], lens[i]);
        return;
      }
      // A frame received with a partial checksum or as a super-frame goes out as one.
      for (let i = 0; i < n; i++) {
        if (this.#offload(outP, bufs[i], lens[i], i)) this.#enqueue(outP, bufs[i], lens[i]);
      }
      return;
    }
    const b = this.#bursts[inP], hdr = this.#hdr[inP], rxLens = this.#rxLens;
    const room = b.room, c = this.#c, drops = portBase(inP) + P_DROP_SCRIPT;
    // A frame that spans buffers (mergeable receive buffers, large receive) is shown by
    // its first buffer and its whole length (Burst.lens, docs/offloads.md).
    for (let i = 0; i < n; i++) {
      b.offsets[i] = pool.offset(bufs[i]) + hdr;
      b.verdicts[i] = 0;
      rxLens[i] = lens[i];
    }
    if (this.#rxOffl[inP] === 0) {
      for (let i = 0; i < n; i++) {
        f.csum[i] = 0;
        f.gsoType[i] = 0;
      }
    }
    b.count = n;
    script.handleBurst(b);
    for (let i = 0; i < n; i++) {
      const v = b.verdicts[i], len = lens[i];
      // A frame the script made shorter than an Ethernet header, longer than a buffer, or
      // (one that spans buffers) longer than it came cannot go out: dropped by the script.
      if (v === DROP || len < 14 || (len > room && len > rxLens[i])) {
        c[drops]++;
        pool.free(bufs[i]);
        continue;
      }
      const to = v === BOUNCE ? inP : outP;
      if (this.#offload(to, bufs[i], len, i)) this.#enqueue(to, bufs[i], len);
    }
  }

  /**
   * A built-in mode (fwd_modes/apply_mode.ts) on each frame, by its first buffer (a frame
   * that spans buffers shows its headers there): forwarded, bounced back out of `inP`,
   * or freed, counted when unanswered (P_DROP_MODE) and not when consumed (rxonly).
   */
  #handleMode(inP: number, n: number): void {
    const bufs = this.#bufs, lens = this.#lens, pool = this.#pool, d = pool.data;
    const hdr = this.#hdr[inP], room = pool.bufferSize - hdr, mode = this.#mode;
    const mac = this.#macs[inP], offl = this.#rxOffl[inP], c = this.#c;
    const drops = portBase(inP) + P_DROP_MODE;
    for (let i = 0; i < n; i++) {
      const buf = bufs[i], len = lens[i];
      const v = applyMode(mode, d, pool.offset(buf) + hdr, len < room ? len : room, mac);
      if (v === MODE_FORWARD || v === MODE_BOUNCE) {
        const to = v === MODE_BOUNCE ? inP : inP ^ 1;
        if (offl === 0 || this.#offload(to, buf, len, i)) this.#enqueue(to, buf, len);
        continue;
      }
      c[drops] += v === MODE_DROP ? 1 : 0;
      pool.free(buf);
    }
  }

  /**
   * Writes frame `i`'s transmit offload request (#frames) into its header for port `to`;
   * a request the port cannot honour drops the frame, counted (P_DROP_TX_OFFLOAD). True
   * when the frame is to go out.
   */
  #offload(to: number, buf: number, len: number, i: number): boolean {
    const f = this.#frames;
    if (((f.csum[i] === CSUM_PARTIAL ? 1 : 0) | f.gsoType[i]) === 0) return true;
    if (requestTxOffload(this.#pool, buf, this.#hdr[to], len, this.#offloads[to], f, i)) {
      return true;
    }
    this.#c[portBase(to) + P_DROP_TX_OFFLOAD]++;
    this.#pool.free(buf);
    return false;
  }

  #enqueue(to: number, buf: number, len: number): void {
    if (this.#rewrite) {
      // As DPDK's l2fwd: destination 02:00:00:00:00:<port>, source the output port's MAC.
      const d = this.#pool.data, off = this.#pool.offset(buf) + this.#hdr[to], mac = this.#macs[to];
      d[off] = 0x02;
      d[off + 1] = 0;
      d[off + 2] = 0;
      d[off + 3] = 0;
      d[off + 4] = 0;
      d[off + 5] = to;
      for (let j = 0; j < 6; j++) d[off + 6 + j] = mac[j];
    }
    const cap = this.#capture;
    if (cap !== null && cap.tx && cap.port === to) this.#record(cap, buf, to, len);
    const k = this.#txCount[to];
    if (k === 0) this.#txSince[to] = this.#clock[0];
    this.#txBufs[to][k] = buf;
    this.#txLens[to][k] = len;
    this.#txCount[to] = k + 1;
  }

  /** Copies the frame of `buf` (port `port`'s header in front) into the capture ring. */
  #record(cap: Capture, buf: number, port: number, len: number): void {
    const pool = this.#pool, word = (pool.offset(buf) + this.#hdr[port]) >> 2;
    const ok = pool.next[buf] === NO_BUFFER
      ? cap.ring.capture(pool.words, word, len)
      : this.#recordParts(cap, buf, word, len);
    this.#c[ok ? W_PCAP_CAPTURED : W_PCAP_DROPPED]++;
  }

  /** #record for a frame that spans buffers: every buffer but the last is full. */
  #recordParts(cap: Capture, buf: number, word: number, len: number): boolean {
    const pool = this.#pool, start = this.#partStart, bytes = this.#partBytes;
    start[0] = word;
    bytes[0] = pool.bufferSize - ((word << 2) - pool.offset(buf));
    let parts = 1;
    for (let b = pool.next[buf]; b !== NO_BUFFER && parts < start.length; b = pool.next[b]) {
      start[parts] = pool.offset(b) >> 2;
      bytes[parts++] = pool.bufferSize;
    }
    return cap.ring.captureParts(pool.words, start, bytes, parts, len);
  }

  /**
   * True once every frame this worker forwarded before the first call (for `rxPort`) has
   * left through the devices: its transmit buffers are published and each transmit
   * queue's used index has reached what was published then. The arrival guard of the
   * worker's receive queue of `rxPort` (RxQueue.arrivalGuard): at a steering switch, a
   * flow's old frames leave before the worker that now receives the flow sends its new
   * ones. It relies on the device consuming a transmit queue's available ring in order
   * (a split ring's avail entries and a packed ring's descriptors are read in order; QEMU
   * and DPDK also complete them in order).
   * Allocates nothing; called at every burst while the gate waits.
   */
  txSettled(rxPort: number): boolean {
    const state = this.#settle, mark = this.#settleMark, at = 2 * rxPort;
    if (state[rxPort] === 0) state[rxPort] = 1;
    if (state[rxPort] === 1) {
      this.#flush(0);
      this.#flush(1);
      if (this.#txCount[0] > 0 || this.#txCount[1] > 0) return false; // rings full: later
      mark[at] = this.#tx[0].vq.publishedIdx;
      mark[at + 1] = this.#tx[1].vq.publishedIdx;
      state[rxPort] = 2;
    }
    for (let p = 0; p < 2; p++) {
      // The device has used everything up to the mark.
      if (!positionReached(this.#tx[p].vq.deviceUsedIdx(), mark[at + p])) return false;
    }
    state[rxPort] = 0;
    return true;
  }

  #flush(to: number): void {
    const n = this.#txCount[to];
    if (n === 0) return;
    const b = this.#txBufs[to], lens = this.#txLens[to];
    const tx = this.#tx[to];
    const sent = tx.txBurst(b, lens, n);
    // A frame no ring can take (counted in dropsTooLong) is freed: kept, it would stop this
    // direction for good. What the ring did not take (none, mostly) is dropped and counted
    // with txFull "drop" (DPDK's l2fwd does the same), else kept, oldest first, for the
    // next try (txSince stays: it is overdue). The same statements run whether or not the
    // ring was full: a ring first fills when the device first falls behind, maybe long
    // after V8 optimised this, and code it has never run would cost a recompile
    // (src/engine/worker.ts).
    const tooLong = tx.stoppedTooLong;
    for (let i = 0; i < tooLong; i++) this.#pool.free(b[sent]);
    const next = sent + tooLong;
    const left = n - next, drop = this.#dropWhenFull ? left : 0, keep = left - drop;
    for (let i = 0; i < drop; i++) this.#pool.free(b[next + i]);
    const c = this.#c, o = portBase(to);
    c[o + P_DROP_TX_RING_FULL] += drop;
    c[o + P_TX_RING_FULL_WAITS] += keep > 0 ? 1 : 0;
    // By hand: copyWithin is a call into the runtime even when there is nothing to move.
    for (let i = 0; i < keep; i++) {
      b[i] = b[next + i];
      lens[i] = lens[next + i];
    }
    this.#txCount[to] = keep;
  }

  /**
   * Stops forwarding cleanly: sends what is buffered, then waits (at most `timeoutMs`)
   * until the devices completed every transmission. Returns frames still in flight (or
   * dropped because the rings never took them).
   */
  drain(timeoutMs: number): number {
    const until = performance.now() + timeoutMs;
    let left = 0;
    for (;;) {
      this.#flush(0);
      this.#flush(1);
      left = this.#txCount[0] + this.#txCount[1];
      for (const t of this.#tx) {
        t.reclaim();
        left += t.vq.inFlight;
      }
      if (left === 0 || performance.now() >= until) break;
    }
    // Whatever could still not be queued is dropped and counted.
    for (let q = 0; q < 2; q++) {
      const n = this.#txCount[q];
      for (let i = 0; i < n; i++) this.#pool.free(this.#txBufs[q][i]);
      this.#c[portBase(q) + P_DROP_TX_RING_FULL] += n;
      this.#txCount[q] = 0;
    }
    this.#c[W_POOL_AVAILABLE] = this.#pool.available;
    return left;
  }
}
