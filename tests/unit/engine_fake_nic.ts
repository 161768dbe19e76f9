/**
 * A fake pair of virtio-net devices for the engine's unit tests: the test's thread plays
 * both devices over split rings in real (mmap'd) memory, while a real forwarding worker
 * (src/engine/worker.ts, loaded as the engine loads it) drives them. Frames injected into
 * a port's receive queue should come out of the other port's transmit queue.
 *
 * Notifications go to a "doorbell" page: the worker stores the queue index there, as it
 * would into a BAR.
 *
 * @module
 */

import { createSharedPool } from "../../src/dma/buffer_pool.ts";
import { postedWrite16 } from "../../src/vfio_user/posted_write.ts";
import type { BufferPool } from "../../src/dma/buffer_pool.ts";
import { DmaRegion } from "../../src/dma/memory.ts";
import { CTL_STOP, requestStop, sharedControl, workersInside } from "../../src/engine/control.ts";
import {
  counterLayout,
  P_DROP_SCRIPT,
  portBase,
  sharedCounters,
} from "../../src/engine/counters.ts";
import { buffersInRing, partitionPool } from "../../src/engine/handoff.ts";
import { createPcapRing } from "../../src/engine/pcap_ring.ts";
import { asForwardScript } from "../../src/engine/script_api.ts";
import { steeringMailbox } from "../../src/engine/steering_mailbox.ts";
import { startBlobWorker } from "../../src/engine/worker_loader.ts";
import { WORKER_ENTRY, workerSources } from "../../src/engine/worker_sources.ts";
import type { PortQueuesSpec, RingSpec, WorkerSpec } from "../../src/engine/worker_spec.ts";
import { splitRingLayout, VIRTQ_DESC_F_WRITE } from "../../src/virtio/ring_math.ts";
import { SplitQueue } from "../../src/virtio/split_queue.ts";
import type { VirtioNetPort } from "../../src/net/port.ts";

const HDR = 12;
const QSIZE = 256;

/** The device side of one split ring. */
export class DeviceRing {
  readonly view: DataView;
  readonly u16: Uint16Array;
  readonly layout: ReturnType<typeof splitRingLayout>;
  lastAvail = 0;
  usedIdx = 0;
  /** Descriptors made available and not yet used (receive: empty buffers). */
  readonly pending: number[] = [];

  constructor(readonly mem: ArrayBuffer, readonly size: number) {
    this.view = new DataView(mem);
    this.u16 = new Uint16Array(mem);
    this.layout = splitRingLayout(size);
  }

  /** Moves newly available descriptors to `pending`. */
  poll(): void {
    const availIdx = Atomics.load(this.u16, (this.layout.availOffset + 2) >> 1);
    while (this.lastAvail !== availIdx) {
      const slot = this.lastAvail & (this.size - 1);
      this.pending.push(this.view.getUint16(this.layout.availOffset + 4 + 2 * slot, true));
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
    }
  }

  desc(d: number): { addr: number; len: number; flags: number } {
    const at = this.layout.descOffset + 16 * d;
    return {
      addr: Number(this.view.getBigUint64(at, true)),
      len: this.view.getUint32(at + 8, true),
      flags: this.view.getUint16(at + 12, true),
    };
  }

  /** Adds a used entry (not yet published). */
  used(id: number, len: number): void {
    const at = this.layout.usedOffset + 4 + 8 * (this.usedIdx & (this.size - 1));
    this.view.setUint32(at, id, true);
    this.view.setUint32(at + 4, len, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
  }

  /** Publishes used entries (used->idx store). */
  publish(): void {
    Atomics.store(this.u16, (this.layout.usedOffset + 2) >> 1, this.usedIdx);
  }
}

/** One fake port: a receive ring and a transmit ring. */
export interface FakePort {
  rx: DeviceRing;
  tx: DeviceRing;
  mac: Uint8Array;
}

/** Options of {@linkcode FakeBed.start}. */
export interface FakeBedOptions {
  burst?: number;
  drainUs?: number;
  macRewrite?: boolean;
  txFull?: "wait" | "drop";
  idleUs?: number;
  warmupPackets?: number;
  /** Synthetic warm-up frames before the queues are adopted (default 0: none). */
  prewarmFrames?: number;
  warmupQuietSeconds?: number;
  heapAudit?: boolean;
  /**
   * A forwarding script; the bed sizes the counters from the module itself, as the engine
   * does (a layout the worker disagrees with fails its start).
   */
  script?: { url: string; args?: Record<string, string> };
  capture?: { port: number; direction?: "rx" | "tx" | "both" };
  poolSize?: number;
  /** Deadline of a vfio-user notification waiting for room (engine option, ms). */
  notifyTimeoutMs?: number;
  /**
   * Notify both transmit queues with posted vfio-user writes on this socket (as over a
   * vfio-user connection) instead of doorbell stores.
   */
  txNotifyFd?: number;
}

/** Two fake ports and one forwarding worker (queue pair 0) between them. */
export class FakeBed {
  readonly pool: BufferPool;
  readonly ports: FakePort[];
  readonly worker: Worker;
  readonly counters: Float64Array;
  readonly control: Int32Array;
  readonly captureRing: SharedArrayBuffer | null;
  /** Names of the script's counters (empty without a script). */
  readonly scriptCounterNames: readonly string[];
  readonly #region: DmaRegion;
  readonly #messages: { type: string; [k: string]: unknown }[] = [];
  #closed = false;

  private constructor(
    pool: BufferPool,
    region: DmaRegion,
    ports: FakePort[],
    worker: Worker,
    counters: Float64Array,
    control: Int32Array,
    captureRing: SharedArrayBuffer | null,
    scriptCounterNames: readonly string[],
  ) {
    this.scriptCounterNames = scriptCounterNames;
    this.pool = pool;
    this.#region = region;
    this.ports = ports;
    this.worker = worker;
    this.counters = counters;
    this.control = control;
    this.captureRing = captureRing;
    worker.addEventListener("message", (e) => this.#messages.push(e.data));
    worker.addEventListener("error", (e) => {
      e.preventDefault();
      this.#messages.push({ type: "error", message: e.message });
    });
  }

  static async start(opts: FakeBedOptions = {}): Promise<FakeBed> {
    const pool = createSharedPool(opts.poolSize ?? 2048, 2048, { hugePages: false });
    const ringBytes = Math.ceil(splitRingLayout(QSIZE).totalBytes / 4096) * 4096;
    const region = DmaRegion.allocate(4 * ringBytes + 4096, { hugePages: false });
    const doorbell = region.vaddr + BigInt(4 * ringBytes);
    const specs: PortQueuesSpec[] = [];
    const ports: FakePort[] = [];
    for (let p = 0; p < 2; p++) {
      const ring = (q: number): RingSpec => {
        const off = (2 * p + q) * ringBytes;
        const vq = new SplitQueue(region.buffer, off, {
          index: q,
          size: QSIZE,
          eventIdx: false,
          notify: { notify() {} },
          name: `${q ? "transmitq1" : "receiveq1"} of fake${p}`,
        });
        if (q === 0) {
          while (vq.freeCount > 0) {
            const b = pool.alloc();
            vq.add(b, pool.iovaLo[b], pool.iovaHi[b], pool.bufferSize, true);
          }
          vq.publish();
        }
        return {
          index: q,
          size: QSIZE,
          eventIdx: false,
          name: vq.name,
          address: region.vaddr + BigInt(off),
          bytes: splitRingLayout(QSIZE).totalBytes,
          state: vq.exportState(),
          notify: q === 1 && opts.txNotifyFd !== undefined
            ? {
              kind: "message",
              fd: opts.txNotifyFd,
              bytes: postedWrite16(4, 0x3000, q),
              what: "the vfio-user server of fake",
            }
            : {
              kind: "store16",
              address: doorbell + BigInt(4 * p + 2 * q),
              value: q,
              what: `the fake doorbell of fake${p}`,
            },
        };
      };
      const mac = Uint8Array.from([2, 0, 0, 0, 0xaa, p]);
      const rx = ring(0), tx = ring(1);
      specs.push({
        name: `fake${p}`,
        mac,
        headerSize: HDR,
        mergeable: false,
        offloads: 0,
        rx,
        tx,
        rxSiblings: [],
      });
      ports.push({
        rx: new DeviceRing(sub(region.buffer, 2 * p * ringBytes, ringBytes), QSIZE),
        tx: new DeviceRing(sub(region.buffer, (2 * p + 1) * ringBytes, ringBytes), QSIZE),
        mac,
      });
    }
    const parts = partitionPool(pool, [specs.flatMap((s) => buffersInRing(s.rx))]);
    const script = opts.script
      ? asForwardScript(await import(opts.script.url), opts.script.url)
      : null;
    const names = script?.counters ?? [];
    const layout = counterLayout(2, names.length, script?.tableSize ?? 0);
    const counters = sharedCounters(layout);
    const control = sharedControl(1);
    const captureRing = opts.capture ? createPcapRing(1 << 20) : null;
    const spec: WorkerSpec = {
      queue: 0,
      workers: 1,
      burst: opts.burst ?? 32,
      drainMs: (opts.drainUs ?? 100) / 1000,
      macRewrite: opts.macRewrite ?? false,
      txFull: opts.txFull ?? "wait",
      idleUs: opts.idleUs ?? 0,
      warmupPackets: opts.warmupPackets ?? 10_000,
      prewarmFrames: opts.prewarmFrames ?? 0,
      warmupQuietSeconds: opts.warmupQuietSeconds ?? 5,
      heapAudit: opts.heapAudit ?? false,
      notifyTimeoutMs: opts.notifyTimeoutMs ?? 5000,
      pool: {
        address: pool.region.vaddr,
        bytes: pool.count * pool.bufferSize,
        iova: pool.region.iova,
        count: pool.count,
        bufferSize: pool.bufferSize,
        free: parts[0].free,
        inUse: parts[0].inUse,
      },
      ports: specs,
      counters: counters.buffer as SharedArrayBuffer,
      control: control.buffer as SharedArrayBuffer,
      steering: steeringMailbox(2, 1),
      script: opts.script ? { url: opts.script.url, args: opts.script.args ?? {} } : null,
      capture: opts.capture && captureRing
        ? { port: opts.capture.port, direction: opts.capture.direction ?? "rx", ring: captureRing }
        : null,
    };
    const worker = startBlobWorker(WORKER_ENTRY, workerSources, "fake queue pair 0");
    const bed = new FakeBed(pool, region, ports, worker, counters, control, captureRing, names);
    worker.postMessage({ type: "start", spec });
    await bed.waitFor("ready", 30000);
    for (const port of ports) port.rx.poll();
    return bed;
  }

  /** Waits for a message of `type` from the worker (throws on an error message). */
  async waitFor(type: string, ms: number): Promise<Record<string, unknown>> {
    const until = performance.now() + ms;
    for (;;) {
      const m = this.#messages.find((x) => x.type === type || x.type === "error");
      if (m) {
        if (m.type === "error") throw new Error(`worker: ${m.message}`);
        return m;
      }
      if (performance.now() > until) throw new Error(`no ${type} from the worker in ${ms} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** The script's counter `name`. */
  scriptCounter(name: string): number {
    const i = this.scriptCounterNames.indexOf(name);
    if (i < 0) throw new Error(`the script has no counter ${name}`);
    return this.counters[counterLayout(2, this.scriptCounterNames.length, 0).scriptBase + i];
  }

  /** Offset of IOVA `addr` in the pool's bytes. */
  #poolOffset(addr: number): number {
    return addr - this.pool.region.iova;
  }

  /**
   * Puts `frame` into port `p`'s receive queue (as the device would: header then frame in
   * the next posted buffer). Returns false when the driver has posted no buffer.
   */
  inject(p: number, frame: Uint8Array): boolean {
    const rx = this.ports[p].rx;
    if (rx.pending.length === 0) rx.poll();
    const id = rx.pending.shift();
    if (id === undefined) return false;
    const d = rx.desc(id);
    if (!(d.flags & VIRTQ_DESC_F_WRITE)) throw new Error("receive descriptor is not writable");
    const off = this.#poolOffset(d.addr);
    this.pool.data.fill(0, off, off + HDR);
    this.pool.data.set(frame, off + HDR);
    rx.used(id, HDR + frame.length);
    return true;
  }

  /** Publishes what {@linkcode FakeBed.inject} put into port `p`'s receive queue. */
  publishRx(p: number): void {
    this.ports[p].rx.publish();
  }

  /** Takes every frame the driver queued for transmission on port `p` and completes it. */
  drainTx(p: number): Uint8Array[] {
    const tx = this.ports[p].tx;
    tx.poll();
    const out: Uint8Array[] = [];
    while (tx.pending.length) {
      const id = tx.pending.shift()!;
      const d = tx.desc(id);
      const off = this.#poolOffset(d.addr);
      out.push(this.pool.data.slice(off + HDR, off + d.len));
      tx.used(id, 0);
    }
    tx.publish();
    return out;
  }

  /**
   * Injects `frames` into port `from`, at most `window` not yet accounted for at a time (a
   * device of finite speed), and collects what both ports transmit until every frame came
   * out of some port or was dropped by the script. Returns the frames each port sent.
   * `eachRound` runs before each round of injections (e.g. a pcap sink's drain: then at
   * most `window` frames arrive between two calls, however fast the worker goes).
   */
  async exchange(
    from: number,
    frames: Uint8Array[],
    window = 128,
    eachRound: () => void = () => {},
  ): Promise<Uint8Array[][]> {
    const out: Uint8Array[][] = [[], []];
    const dropped = () => this.counters[portBase(from) + P_DROP_SCRIPT];
    const drop0 = dropped();
    const done = () => out[0].length + out[1].length + dropped() - drop0;
    let i = 0;
    const until = performance.now() + 60000;
    const yielder = new Yielder();
    try {
      while (done() < frames.length) {
        if (performance.now() > until) {
          throw new Error(`only ${done()} of ${frames.length} frames came out or were dropped`);
        }
        eachRound();
        let n = 0;
        while (i < frames.length && i - done() < window) {
          if (!this.inject(from, frames[i])) break;
          i++;
          n++;
        }
        this.publishRx(from);
        for (let p = 0; p < 2; p++) out[p].push(...this.drainTx(p));
        if (n === 0) await yielder.next();
      }
    } finally {
      yielder.close();
    }
    return out;
  }

  /**
   * True when {@linkcode FakeBed.close} found the worker still inside shared memory: the
   * rings and the pool were then left mapped.
   */
  workerStuck = false;

  /**
   * Stops the worker (stop flag), waits (at most `ms`) for it to leave shared memory,
   * frees the memory unless it did not.
   */
  async close(ms = 3000): Promise<Record<string, unknown> | null> {
    if (this.#closed) return null;
    this.#closed = true;
    requestStop(this.control);
    let done: Record<string, unknown> | null = null;
    try {
      // The worker drains its transmit queues: keep completing them while it does.
      const until = performance.now() + ms;
      while (!done && performance.now() < until) {
        this.drainTx(0);
        this.drainTx(1);
        done = this.#messages.find((m) => m.type === "done" || m.type === "error") ?? null;
        await new Promise((r) => setTimeout(r, 2));
      }
    } finally {
      // As the engine does: memory a worker may still touch stays mapped.
      this.workerStuck = workersInside(this.control, 1).length > 0;
      this.worker.terminate();
      if (!this.workerStuck) {
        this.#region.free();
        this.pool.region.free();
      }
    }
    return done;
  }

  /** True once the stop flag was raised. */
  get stopping(): boolean {
    return Atomics.load(this.control, CTL_STOP) !== 0;
  }
}

/**
 * A macrotask yield (worker messages arrive) without the 1-2 ms a setTimeout(0) sleeps:
 * with timers the fake device, not the worker, set the pace. Close it after use: an open
 * port keeps the process alive.
 */
class Yielder {
  readonly #ch = new MessageChannel();
  #wake: () => void = () => {};

  constructor() {
    this.#ch.port1.onmessage = () => this.#wake();
  }

  /** Lets the event loop run once. */
  next(): Promise<void> {
    return new Promise((r) => {
      this.#wake = r;
      this.#ch.port2.postMessage(0);
    });
  }

  close(): void {
    this.#ch.port1.close();
    this.#ch.port2.close();
  }
}

function sub(buffer: ArrayBuffer, offset: number, length: number): ArrayBuffer {
  const p = Deno.UnsafePointer.of(buffer);
  return Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.offset(p!, offset)!, length);
}

/**
 * Plays `port`'s device once: one frame into receiveq1's first posted buffer of `pool`.
 *
 * @example
 * ```ts ignore
 * deliverFrame(ports[0], pool, udpFrames({ seed: 1, count: 1, flows: 1 })[0]);
 * ```
 */
export function deliverFrame(port: VirtioNetPort, pool: BufferPool, frame: Uint8Array): void {
  const vq = port.rx(0).vq;
  const p = Deno.UnsafePointer.offset(Deno.UnsafePointer.of(vq.ringMemory)!, vq.ringOffset)!;
  const ring = new DeviceRing(
    Deno.UnsafePointerView.getArrayBuffer(p, splitRingLayout(vq.size).totalBytes),
    vq.size,
  );
  ring.poll();
  const id = ring.pending[0];
  const at = ring.desc(id).addr - pool.region.iova;
  pool.data.fill(0, at, at + port.headerSize);
  pool.data.set(frame, at + port.headerSize);
  ring.used(id, port.headerSize + frame.length);
  ring.publish();
}
