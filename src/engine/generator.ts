/**
 * One worker's traffic generator, in place of the forwarder (forwarder.ts) in the engine's
 * txonly and flowgen modes, as DPDK testpmd's modes of those names: each poll it builds up
 * to a burst of UDP/IPv4 frames (gen_frame.ts) for each of its two ports' transmit queues
 * and sends them with one txBurst per port (one notification at most), and it receives on
 * both ports: every frame is counted and freed, and one that carries the generator's
 * magic has its latency (now minus its transmit time) recorded (latency.ts) and its
 * sequence number checked against its flow's. So a back-end that loops port 0 to port 1
 * (testpmd's vhost ports in io forwarding) lets one process measure rate and latency.
 *
 * Buffers come from the worker's pool partition. A full transmit ring keeps what it did
 * not take for the next poll, and no new frame is built for that port while a burst
 * waits (no spinning on alloc). `ratePps` (per worker) limits each port to half of it
 * with a token bucket on the worker's clock.
 *
 * Nothing per frame or per burst allocates: typed arrays built once, 16 word stores per
 * frame (11 from the flow's template), the padding past byte 64 zeroed once per buffer
 * (a buffer the device wrote since is zeroed again; {@linkcode Generator.poll}).
 *
 * @module
 */

import { NO_BUFFER } from "../dma/packet_buffers.ts";
import {
  G_ALLOC_FAILS,
  G_LATENCY,
  G_RX_FOREIGN,
  G_RX_GEN,
  G_RX_OTHER,
  G_SEQ_GAPS,
  G_SEQ_LATE,
  P_DROP_BAD_MERGE,
  P_DROP_BAD_OFFLOAD,
  P_DROP_RUNT,
  P_DROP_TX_RING_FULL,
  P_TX_RING_FULL_WAITS,
  portBase,
  W_POOL_AVAILABLE,
} from "./counters.ts";
import type { PoolLike, RxPort, TxPort } from "./forwarder.ts";
import {
  GEN_MAGIC,
  GEN_MAGIC_MASK,
  GEN_MIN_FRAME,
  genTemplates,
  magicWord,
  TEMPLATE_WORDS,
  W_MAGIC,
  W_SEQ_HI,
  W_SEQ_LO,
  W_TS_HI,
  W_TS_LO,
} from "./gen_frame.ts";
import { L_SAMPLE, recordSample } from "./latency.ts";

/** What the generator needs of the pool besides what the forwarder does. */
export interface GenPool extends PoolLike {
  /** Buffers in the whole pool (indices below it). */
  readonly count: number;
}

/** Options of a {@linkcode Generator}. */
export interface GeneratorParams {
  /** Queue pair index (its streams are tagged with it). */
  queue: number;
  /** Frames per burst. */
  burst: number;
  /** Bytes of virtio_net_hdr in front of each frame, per port. */
  headerSizes: readonly number[];
  /** Bytes per frame (64 or more). */
  frameSize: number;
  /** Flows per port (1 for txonly). */
  flows: number;
  /** Each port's MAC (the frames' source). */
  macs: readonly Uint8Array[];
  /** Frames per second this worker sends over both ports; 0: as fast as the rings take. */
  ratePps: number;
  /** Time in ms (element 0), updated by `tick`. */
  clock: Float64Array;
  /** Reads the clock into `clock` (clock.ts FfiClock.tick). */
  tick: () => void;
  /** First slot of the generator block in the counters (counters.ts genBase). */
  genBase: number;
}

/** How long the drain at the stop waits for frames still coming back (ms). */
const DRAIN_QUIET_MS = 50;
/**
 * A token bucket holds at most this many ms of its rate (or a burst, if more): a worker
 * the OS held up that long catches up (the rate stays exact on a busy machine), one held
 * up longer loses the rest rather than sending a flood.
 */
const BUCKET_MS = 20;
const TWO_32 = 4294967296;

/**
 * The generating step of one worker.
 *
 * @example
 * ```ts ignore
 * const gen = new Generator([rx0, rx1], [tx0, tx1], pool, counters, {
 *   queue: 0, burst: 32, headerSizes: [12, 12], frameSize: 64, flows: 1,
 *   macs, ratePps: 0, clock: clock.ms,
 *   tick: () => clock.tick(), genBase: layout.genBase,
 * });
 * for (;;) gen.poll();
 * ```
 */
export class Generator {
  readonly #rx: readonly RxPort[];
  readonly #tx: readonly TxPort[];
  readonly #pool: GenPool;
  readonly #c: Float64Array;
  readonly #burst: number;
  readonly #hdr: Int32Array;
  readonly #frameSize: number;
  readonly #flows: number;
  readonly #tpl: Uint32Array;
  readonly #clock: Float64Array;
  readonly #tick: () => void;
  readonly #g: number;
  readonly #lat: number;
  readonly #queueTag: number;
  readonly #magic: Uint32Array;
  readonly #bufs: Uint32Array;
  readonly #lens: Uint32Array;
  readonly #txBufs: Uint32Array[];
  readonly #txLens: Uint32Array[];
  readonly #txCount: Uint32Array;
  // Per port: next flow, tokens, and per port and flow the next sequence number to send
  // and the next one expected back.
  readonly #nextFlow: Uint32Array;
  readonly #tokens: Float64Array;
  readonly #ratePerMs: number;
  readonly #limited: number;
  readonly #depth: number;
  readonly #lastMs: Float64Array;
  readonly #seq: Float64Array;
  readonly #expect: Float64Array;
  // 1 for a buffer whose bytes past GEN_MIN_FRAME are zero up to the frame size.
  readonly #padded: Uint8Array;
  // The receive drops that free device-written buffers unseen, when the marks were checked.
  #unseenDrops = 0;
  /** 1 while port p is not to be polled (steering_mailbox.ts). */
  readonly paused: Uint8Array = new Uint8Array(2);
  /** [0] 1 while the engine is halted (control.ts CTL_HALT): nothing received or made. */
  readonly halted: Uint8Array = new Uint8Array(1);

  /** Generates on `tx[0]`, `tx[1]`, receives on `rx[0]`, `rx[1]`; counts into `counters`. */
  constructor(
    rx: readonly RxPort[],
    tx: readonly TxPort[],
    pool: GenPool,
    counters: Float64Array,
    opts: GeneratorParams,
  ) {
    if (rx.length !== 2 || tx.length !== 2) throw new RangeError("a generator has two ports");
    if (opts.frameSize < GEN_MIN_FRAME) {
      throw new RangeError("a generated frame has 64 bytes or more");
    }
    const words = Math.ceil(opts.frameSize / 4) * 4;
    if (words + Math.max(...opts.headerSizes) > pool.bufferSize) {
      throw new RangeError(`a ${opts.frameSize}-byte frame does not fit a pool buffer`);
    }
    this.#rx = rx;
    this.#tx = tx;
    this.#pool = pool;
    this.#c = counters;
    this.#burst = opts.burst;
    this.#hdr = Int32Array.from(opts.headerSizes);
    this.#frameSize = opts.frameSize;
    this.#flows = opts.flows;
    this.#tpl = genTemplates(opts.macs, opts.frameSize, opts.flows);
    this.#clock = opts.clock;
    this.#tick = opts.tick;
    this.#g = opts.genBase;
    this.#lat = opts.genBase + G_LATENCY;
    this.#queueTag = opts.queue & 0x7f;
    this.#magic = Uint32Array.of(magicWord(opts.queue, 0), magicWord(opts.queue, 1));
    this.#bufs = new Uint32Array(opts.burst);
    this.#lens = new Uint32Array(opts.burst);
    this.#txBufs = [new Uint32Array(opts.burst), new Uint32Array(opts.burst)];
    this.#txLens = [new Uint32Array(opts.burst), new Uint32Array(opts.burst)];
    this.#txCount = new Uint32Array(2);
    this.#nextFlow = new Uint32Array(2);
    this.#tokens = new Float64Array(2);
    // Unlimited: a bucket that is always full.
    this.#limited = opts.ratePps > 0 ? 1 : 0;
    this.#ratePerMs = opts.ratePps > 0 ? opts.ratePps / 2 / 1000 : 0;
    this.#depth = opts.ratePps > 0 ? Math.max(opts.burst, this.#ratePerMs * BUCKET_MS) : opts.burst;
    this.#lastMs = new Float64Array(1);
    this.#seq = new Float64Array(2 * opts.flows);
    this.#expect = new Float64Array(2 * opts.flows);
    this.#padded = new Uint8Array(pool.count);
    opts.tick();
    this.#lastMs[0] = opts.clock[0];
  }

  /** testpmd's tx_first asks nothing of a generating mode: it sends on its own. */
  txFirst(_bursts: number): number {
    return 0;
  }

  /**
   * One pass: reads the clock, receives a burst on each port (counted, timed, freed),
   * then builds frames for each port as its token bucket and its waiting frames allow and
   * sends them. Returns frames received plus frames built.
   */
  poll(): number {
    this.#tick();
    const now = this.#clock[0];
    let done = 0;
    const burst = this.#burst, paused = this.paused, halted = this.halted[0];
    for (let p = 0; p < 2; p++) {
      if ((paused[p] | halted) !== 0) continue;
      const n = this.#rx[p].rxBurst(this.#bufs, this.#lens, burst);
      if (n > 0) {
        this.#receive(p, n);
        done += n;
      }
    }
    this.#checkUnseen();
    const elapsed = now - this.#lastMs[0];
    this.#lastMs[0] = now;
    const tokens = this.#tokens, add = elapsed * this.#ratePerMs, depth = this.#depth;
    for (let p = 0; p < 2; p++) {
      const t = tokens[p] + add;
      const have = t < depth && this.#limited === 1 ? t : depth;
      const room = burst - this.#txCount[p];
      const whole = Math.floor(have) * (1 - halted); // halted: the bucket only fills
      const made = this.#make(p, room < whole ? room : whole);
      tokens[p] = have - made;
      done += made;
      this.#flush(p);
    }
    this.#c[W_POOL_AVAILABLE] = this.#pool.available;
    return done;
  }

  /**
   * Zeroes every padding mark when a receive queue freed device-written buffers this
   * generator never saw (a runt, a broken merge, bad offload fields: not with a sound
   * device), so no stale bytes go out as padding.
   */
  #checkUnseen(): void {
    const c = this.#c;
    let sum = 0;
    for (let p = 0; p < 2; p++) {
      const o = portBase(p);
      sum += c[o + P_DROP_RUNT] + c[o + P_DROP_BAD_MERGE] + c[o + P_DROP_BAD_OFFLOAD];
    }
    if (sum !== this.#unseenDrops) {
      this.#unseenDrops = sum;
      this.#padded.fill(0);
    }
  }

  /**
   * Counts, times (against the clock array: no double passes through a call) and frees
   * the `n` frames received on port `p`.
   */
  #receive(p: number, n: number): void {
    const pool = this.#pool, words = pool.words, data = pool.data, next = pool.next;
    const bufs = this.#bufs, lens = this.#lens, padded = this.#padded;
    const c = this.#c, g = this.#g, lat = this.#lat, hdr = this.#hdr[p];
    const flows = this.#flows, expect = this.#expect, own = this.#queueTag, sent = this.#seq;
    const nowNs = this.#clock[0] * 1e6;
    let gen = 0, other = 0, foreign = 0, gaps = 0, late = 0;
    for (let i = 0; i < n; i++) {
      const b = bufs[i];
      // The device wrote these buffers: their padding is no longer known to be zero.
      for (let x = b; x !== NO_BUFFER; x = next[x]) padded[x] = 0;
      const off = pool.offset(b) + hdr, w = off >> 2, m = words[w + W_MAGIC];
      const ours = lens[i] >= GEN_MIN_FRAME && (m & GEN_MAGIC_MASK) === GEN_MAGIC ? 1 : 0;
      gen += ours;
      other += 1 - ours;
      if (ours === 1) {
        c[lat + L_SAMPLE] = nowNs - (words[w + W_TS_HI] * TWO_32 + words[w + W_TS_LO]);
        recordSample(c, lat);
        const tag = m & 0xff, flow = (data[off + 42] << 8) | data[off + 43];
        const k = flow < flows ? (tag & 1) * flows + flow : 0;
        const seq = words[w + W_SEQ_HI] * TWO_32 + words[w + W_SEQ_LO];
        // Device-written: a sequence number this generator has not sent on that stream yet
        // (a frame of an earlier session, or a corrupted one) is not ours either.
        const mine = (tag >>> 1) === own && flow < flows && seq < sent[k] ? 1 : 0;
        foreign += 1 - mine;
        if (mine === 1) {
          const exp = expect[k];
          gaps += seq > exp ? seq - exp : 0;
          late += seq < exp ? 1 : 0;
          expect[k] = seq < exp ? exp : seq + 1;
        }
      }
      pool.free(b);
    }
    c[g + G_RX_GEN] += gen;
    c[g + G_RX_OTHER] += other;
    c[g + G_RX_FOREIGN] += foreign;
    c[g + G_SEQ_GAPS] += gaps;
    c[g + G_SEQ_LATE] += late;
  }

  /** Builds up to `n` frames for port `p`, stamped with the clock; returns how many. */
  #make(p: number, n: number): number {
    const pool = this.#pool, words = pool.words, tpl = this.#tpl, padded = this.#padded;
    const flows = this.#flows, seqs = this.#seq, hdr = this.#hdr[p];
    const size = this.#frameSize, end = (size + 3) >> 2, magic = this.#magic[p];
    const bufs = this.#txBufs[p], lens = this.#txLens[p];
    const nowNs = this.#clock[0] * 1e6,
      tsHi = Math.floor(nowNs / TWO_32),
      tsLo = nowNs - tsHi * TWO_32;
    let k = this.#txCount[p], made = 0, f = this.#nextFlow[p];
    for (; made < n; made++) {
      const b = pool.alloc();
      if (b === NO_BUFFER) {
        this.#c[this.#g + G_ALLOC_FAILS]++;
        break;
      }
      const w = (pool.offset(b) + hdr) >> 2, t = (p * flows + f) * TEMPLATE_WORDS;
      for (let j = 0; j < TEMPLATE_WORDS; j++) words[w + j] = tpl[t + j];
      const s = p * flows + f, seq = seqs[s];
      seqs[s] = seq + 1;
      const hi = Math.floor(seq / TWO_32);
      words[w + W_MAGIC] = magic;
      words[w + W_SEQ_LO] = seq - hi * TWO_32;
      words[w + W_SEQ_HI] = hi;
      words[w + W_TS_LO] = tsLo;
      words[w + W_TS_HI] = tsHi;
      if (padded[b] === 0) {
        for (let j = GEN_MIN_FRAME >> 2; j < end; j++) words[w + j] = 0;
        padded[b] = 1;
      }
      bufs[k] = b;
      lens[k++] = size;
      f = f + 1 === flows ? 0 : f + 1;
    }
    this.#txCount[p] = k;
    this.#nextFlow[p] = f;
    return made;
  }

  /** Sends port `to`'s frames; what its ring does not take waits, oldest first. */
  #flush(to: number): void {
    const n = this.#txCount[to];
    if (n === 0) return;
    const b = this.#txBufs[to], lens = this.#txLens[to];
    const sent = this.#tx[to].txBurst(b, lens, n);
    const keep = n - sent;
    this.#c[portBase(to) + P_TX_RING_FULL_WAITS] += keep > 0 ? 1 : 0;
    for (let i = 0; i < keep; i++) {
      b[i] = b[sent + i];
      lens[i] = lens[sent + i];
    }
    this.#txCount[to] = keep;
  }

  /**
   * The arrival guard of a steering switch (forwarder.ts): generated frames have no order
   * to keep across one, so at once.
   */
  txSettled(_rxPort: number): boolean {
    return true;
  }

  /**
   * Stops generating: sends what waits, then keeps receiving (counting and timing what
   * comes back) until the devices completed every transmission and nothing arrived for
   * 50 ms, or `timeoutMs` passed. Returns frames still in flight (or dropped: never
   * taken by a ring, counted as dropsTxRingFull).
   */
  drain(timeoutMs: number): number {
    const start = performance.now(), until = start + timeoutMs;
    let left = 0, lastRx = start;
    for (;;) {
      this.#flush(0);
      this.#flush(1);
      this.#tick();
      for (let p = 0; p < 2; p++) {
        const n = this.#rx[p].rxBurst(this.#bufs, this.#lens, this.#burst);
        if (n > 0) {
          this.#receive(p, n);
          lastRx = performance.now();
        }
      }
      left = this.#txCount[0] + this.#txCount[1];
      for (const t of this.#tx) {
        t.reclaim();
        left += t.vq.inFlight;
      }
      const t = performance.now();
      if ((left === 0 && t - lastRx >= DRAIN_QUIET_MS) || t >= until) break;
    }
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
