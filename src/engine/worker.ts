/**
 * A forwarding worker: the entry module of one Deno Worker per queue pair. It adopts the
 * receive and transmit queues of its pair on every port (rebuilding views over the ring
 * memory from addresses, since workers share the process's address space), its partition
 * of the shared buffer pool, loads the script, and runs the forwarding loop until the
 * main thread raises the stop flag; then it sends what it buffered, waits for the devices
 * to complete it, and exits.
 *
 * Messages in: `{ type: "start", spec }` (a {@linkcode WorkerSpec}) or `{ type: "ping" }`.
 * Messages out: `{ type: "ready" }`, `{ type: "done", inFlight }`,
 * `{ type: "error", code, message }`, `{ type: "pong" }`.
 *
 * The loop never yields to the event loop: control comes through shared memory
 * (control.ts), and counters go out through shared memory (counters.ts).
 *
 * Memory ordering at the hand-over: the main thread wrote the rings (descriptors, avail
 * ring, avail->idx) before it posted the start message, and this worker reads them only
 * after receiving it; posting a message orders the sender's earlier stores before the
 * receiver's later loads. From then on the worker alone writes the driver side of its
 * rings, with the ring's publication points (split_queue.ts, packed_queue.ts: x86-64 TSO
 * plus one Atomics store per published burst).
 *
 * @module
 */

import { createVirtqueue, type RingFormat } from "../virtio/ring_format.ts";
import type { Virtqueue } from "../virtio/virtqueue.ts";
import { CLOCK_MONOTONIC, FfiClock } from "./clock.ts";
import {
  CTL_HALT,
  CTL_STOP,
  CTL_TX_FIRST_BURSTS,
  enterShared,
  leaveShared,
  STOP_NOW,
  WORKER_DRAIN_MS,
} from "./control.ts";
import {
  counterLayout,
  portBase,
  STATE_DONE,
  STATE_DRAINING,
  STATE_FAILED,
  STATE_RUNNING,
  W_FORCED_GCS,
  W_FULL_GC,
  W_HEAP_CREEP,
  W_HEAP_DROPS,
  W_HEAP_LAST,
  W_HEAP_STEP_BYTES,
  W_HEAP_STEPS,
  W_HEAP_WARM,
  W_IDLE_WAITS,
  W_LAST_STEP_PACKETS,
  W_LOOPS,
  W_NOW_MS,
  W_PACKETS,
  W_PREWARM_FRAMES,
  W_PREWARM_MS,
  W_STATE,
  W_WARM_AT_MS,
  W_WARM_PACKETS,
} from "./counters.ts";
import { MailboxReader } from "./steering_mailbox.ts";
import type { Forwarder } from "./forwarder.ts";
import type { Generator } from "./generator.ts";
// The data path once per ring format, each copy with its own V8 type feedback (data_path.ts).
import * as splitPath from "./data_path.ts?copy=split";
import * as packedPath from "./data_path.ts?copy=packed";
import { makeNotifier, type NotifierOptions, warmUpNotifiers } from "./notifier.ts";
import { PartitionPool } from "./partition_pool.ts";
import { PcapRingWriter } from "./pcap_ring.ts";
import type { PrewarmResult } from "./prewarm.ts";
import { VIRTIO_NET_HDR_SIZE } from "../net/header.ts";
import { FrameOffloads, OFFLOAD_RX_ANY } from "../net/offloads.ts";
import { asForwardScript, type ForwardScript } from "./script_api.ts";
import type { PrewarmParams, RingSpec, WorkerSpec } from "./worker_spec.ts";

/** The data path that forwards over rings of each format. */
const DATA_PATHS: Readonly<Record<RingFormat, typeof splitPath>> = {
  split: splitPath,
  packed: packedPath,
};

/**
 * The data path for ports whose rings have `formats`: that format's, or for ports of both
 * formats the split one (its calls into the rings then see two classes).
 */
function dataPathFor(formats: readonly RingFormat[]): typeof splitPath {
  return DATA_PATHS[formats.length === 1 ? formats[0] : "split"];
}

/** Empty polls in a row before an idle worker sleeps. */
const IDLE_POLLS = 32;

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

/** A view of `bytes` bytes of this process's memory at `address`. */
function memoryAt(address: bigint, bytes: number, what: string): ArrayBuffer {
  const p = Deno.UnsafePointer.create(address);
  if (p === null) throw new RangeError(`${what}: address 0`);
  return Deno.UnsafePointerView.getArrayBuffer(p, bytes);
}

/** The queue this worker drives over a ring the main thread set up, by its layout. */
function adopt(r: RingSpec, notify: NotifierOptions): Virtqueue {
  // The state's layout (split or packed) picks the class (ring_format.ts).
  const state = r.state;
  return createVirtqueue(
    state.layout,
    memoryAt(r.address, r.bytes, r.name),
    0,
    {
      index: r.index,
      size: r.size,
      eventIdx: r.eventIdx,
      notify: makeNotifier(r.notify, r.name, notify),
      name: r.name,
    },
    state,
  );
}

/**
 * A full garbage collection of this worker's isolate, so that the heap figures count live
 * memory only; null when this Deno does not offer one. V8 installs `gc` in contexts made
 * after --expose-gc is set, so a node:vm context brings it. Only with `heapAudit`: each
 * call pauses forwarding (0.3–0.6 s under TCG emulation, long enough to lose frames).
 */
async function fullGc(): Promise<(() => void) | null> {
  try {
    const v8 = await import("node:" + "v8");
    const vm = await import("node:" + "vm");
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc");
    return typeof gc === "function" ? gc : null;
  } catch {
    return null;
  }
}

/** Heap used by this worker's isolate. */
function heapUsed(): number {
  return Deno.memoryUsage().heapUsed;
}

/**
 * Runs the worker between its announcements (control.ts): inside before it first touches
 * DMA memory or the notify BAR, left once it never will again, also when it fails.
 */
async function start(spec: WorkerSpec): Promise<void> {
  const ctl = new Int32Array(spec.control);
  let inFlight = 0;
  if (enterShared(ctl, spec.queue)) {
    try {
      inFlight = await forward(spec, ctl);
    } finally {
      leaveShared(ctl, spec.queue);
    }
  }
  scope.postMessage({ type: "done", inFlight });
}

/** Adopts the queues and the pool partition, forwards until stopped, drains. */
async function forward(spec: WorkerSpec, ctl: Int32Array): Promise<number> {
  const p = spec.pool;
  const pool = new PartitionPool(
    memoryAt(p.address, p.bytes, "the packet pool"),
    p.iova,
    p.count,
    p.bufferSize,
    p.free,
    p.inUse,
    p.pageIovas ?? null,
  );
  let script: ForwardScript | null = null;
  if (spec.script) {
    script = asForwardScript(await import(spec.script.url), spec.script.url);
  }
  const names = script?.counters ?? [];
  const gen = spec.generator ?? null;
  const layout = counterLayout(spec.ports.length, names.length, script?.tableSize ?? 0, !!gen);
  const c = new Float64Array(spec.counters);
  if (c.length !== layout.length) {
    throw new RangeError(
      `the counters hold ${c.length} slots, the script needs ${layout.length}: main thread and worker loaded different scripts`,
    );
  }
  const clock = new FfiClock(CLOCK_MONOTONIC);
  const macs = spec.ports.map((port) => port.mac);
  // Warmed before the ports opened (prewarmed_workers.ts), or now, before the queues.
  // Warmed now: the formats of its own queues, in order (VIRTIO_F_IN_ORDER) when the
  // first port's are. Warmed before: each format with and without in-order.
  const formats = [...new Set(spec.ports.map((p) => p.rx.state.layout))];
  const dp = dataPathFor(formats);
  warmed ??= spec.prewarmFrames > 0
    ? warmUp(
      { ...spec, frames: spec.prewarmFrames, formats },
      spec.ports.map((p) => p.headerSize),
      macs,
      spec.ports[0]?.rx.state.inOrder === true,
      dp,
    )
    : null;
  c[W_PREWARM_FRAMES] = warmed?.frames ?? 0;
  c[W_PREWARM_MS] = warmed?.ms ?? 0;
  // A notification waiting for a stalled vfio-user server gives up at the stop flag.
  const notify: NotifierOptions = { timeoutMs: spec.notifyTimeoutMs, control: ctl };
  // Each frame's offload fields, validated on receive, requested on transmit.
  const frames = new FrameOffloads(spec.burst);
  const rx = spec.ports.map((port, i) => {
    const q = new dp.RxQueue(
      adopt(port.rx, notify),
      pool,
      port.headerSize,
      c,
      portBase(i),
      port.mergeable,
    );
    if ((port.offloads & OFFLOAD_RX_ANY) !== 0) q.enableOffloads(frames, port.offloads);
    q.classify = spec.xstats !== false;
    q.siblings = port.rxSiblings.map((n) =>
      makeNotifier(n, `a receive queue of ${port.name}`, notify)
    );
    return q;
  });
  const tx = spec.ports.map((port, i) => {
    const q = new dp.TxQueue(adopt(port.tx, notify), pool, port.headerSize, c, portBase(i));
    q.classify = spec.xstats !== false;
    return q;
  });
  const mailbox = new MailboxReader(spec.steering, spec.queue, spec.workers, rx);
  const scriptCounters = new Float64Array(spec.counters, 8 * layout.scriptBase, names.length);
  const table = new Float64Array(spec.counters, 8 * layout.tableBase, layout.tableSize);
  script?.init?.({
    queue: spec.queue,
    workers: spec.workers,
    ports: spec.ports.length,
    macs,
    args: spec.script?.args ?? {},
  });
  // txonly and flowgen: a generator in the forwarder's place (generator.ts).
  const fwd: Forwarder | Generator = gen !== null
    ? new dp.Generator(rx, tx, pool, c, {
      ...gen,
      queue: spec.queue,
      burst: spec.burst,
      headerSizes: spec.ports.map((port) => port.headerSize),
      macs,
      clock: clock.ms,
      tick: () => clock.tick(),
      genBase: layout.genBase,
    })
    : new dp.Forwarder(rx, tx, pool, c, {
      clock: clock.ms,
      queue: spec.queue,
      burst: spec.burst,
      drainMs: spec.drainMs,
      txFull: spec.txFull,
      headerSizes: spec.ports.map((port) => port.headerSize),
      macRewrite: spec.macRewrite,
      mode: spec.mode,
      macs,
      offloads: spec.ports.map((p) => p.offloads),
      rxOffloads: spec.ports.map((p) => (p.offloads & OFFLOAD_RX_ANY) !== 0 ? 1 : 0),
      frames,
      script: script ? { module: script, counters: scriptCounters, table } : null,
      capture: spec.capture
        ? {
          port: spec.capture.port,
          rx: spec.capture.direction !== "tx",
          tx: spec.capture.direction !== "rx",
          ring: new PcapRingWriter(spec.capture.ring),
          epochOffsetMs: Date.now() - clock.nowMs(),
        }
        : null,
    });
  // A steering switch's gate opens only once the frames forwarded under the old rule left.
  rx.forEach((q, p) => q.arrivalGuard = () => fwd.txSettled(p));
  // An engine started halted polls nothing from the first pass (the loop reads it every 64).
  fwd.halted[0] = Atomics.load(ctl, CTL_HALT);
  // Buffers that arrived before this worker took over are forwarded like any others; the
  // receive rings are already full (the main thread refilled them at open).
  c[W_STATE] = STATE_RUNNING;
  const t0 = clock.nowMs();
  // Read once: the loop gets either the counted GC or the stand-in, never a flag to test.
  const gc = spec.heapAudit ? await fullGc() : null;
  c[W_FULL_GC] = gc ? 1 : 0;
  const forcedGc = gc
    ? () => {
      c[W_FORCED_GCS]++;
      gc();
    }
    : null;
  // "ready" goes out from the loop's first sample, after its full GC with heapAudit (~0.6 s
  // under TCG), so that pause falls before the main thread starts steering or reports.
  run(spec, fwd, mailbox, c, ctl, clock, t0, forcedGc, () => scope.postMessage({ type: "ready" }));
  c[W_STATE] = STATE_DRAINING;
  // STOP_NOW: the devices are about to be reset; sending more into them would only turn
  // frames lost to the reset into frames counted as sent or dropped for a full ring.
  const inFlight = Atomics.load(ctl, CTL_STOP) === STOP_NOW ? 0 : fwd.drain(WORKER_DRAIN_MS);
  c[W_STATE] = STATE_DONE;
  return inFlight;
}

/**
 * Growth of the heap from one once-a-second sample to the next from which that second
 * counts as a compile step (V8 compiling or re-compiling the loop's functions). A sample
 * itself allocates 16 bytes once optimised.
 */
const STEP_BYTES = 1024;

/** Warm-up on synthetic frames ends after this long whatever it reached (slow emulators). */
const PREWARM_MAX_MS = 3000;

/** What warm-up on synthetic frames did, once it ran (prewarm.ts). */
let warmed: PrewarmResult | null = null;

/**
 * Runs prewarm.ts's warm-up with this worker's ring constructor: each of `p.formats` in
 * the data path of its own format, `p.frames` each, or all of them in `only` (the one
 * ports of both formats forward with). `inOrder` "both" (before the ports open, when no
 * one knows) splits each run's frames between the rings' out-of-order and in-order paths.
 */
function warmUp(
  p: PrewarmParams,
  headerSizes: readonly number[],
  macs: readonly Uint8Array[],
  inOrder: boolean | "both" = false,
  only: typeof splitPath | null = null,
): PrewarmResult {
  const runs: [typeof splitPath, RingFormat[]][] = only
    ? [[only, p.formats]]
    : p.formats.map((f) => [DATA_PATHS[f], [f]]);
  const orders = inOrder === "both" ? [false, true] : [inOrder];
  const shares = runs.length * orders.length;
  const done = { frames: 0, ms: 0 };
  for (const [path, formats] of runs) {
    for (const o of orders) {
      const frames = p.frames / orders.length;
      const r = warmPath(path, { ...p, frames, formats }, headerSizes, macs, o, shares);
      done.frames += r.frames;
      done.ms += r.ms;
    }
  }
  return done;
}

/** One data path's warm-up, within its share of {@linkcode PREWARM_MAX_MS}. */
function warmPath(
  path: typeof splitPath,
  p: PrewarmParams,
  headerSizes: readonly number[],
  macs: readonly Uint8Array[],
  inOrder: boolean,
  shares: number,
): PrewarmResult {
  const clock = new FfiClock(CLOCK_MONOTONIC);
  const bells = warmUpNotifiers();
  try {
    return path.prewarm(
      {
        ...p,
        maxMs: PREWARM_MAX_MS / shares,
        headerSizes,
        macs,
        clock: clock.ms,
        tick: () => clock.tick(),
        notifiers: bells.notifiers,
      },
      (format, memory, offset, size, notify, name) =>
        createVirtqueue(format, memory, offset, {
          index: 0,
          size,
          eventIdx: true,
          inOrder,
          notify,
          name,
        }),
    );
  } finally {
    bells.close();
  }
}

/** Stands in for the full GC at the samples that do not collect. */
function noCollection(): void {}

/**
 * The run-to-completion loop. Nothing in it allocates but the heap sample: the clock is
 * FFI (clock.ts), counters are stores into shared memory, and the heap is sampled once a
 * second (16 bytes each once optimised) and once more when the loop stops.
 *
 * Warm-up ends at the first sample after the warm-up packets that follows
 * `spec.warmupQuietSeconds` seconds without a compile step (V8 tiers the loop's functions
 * up one by one, seconds apart: in the VM bed the last first-time TurboFan compile came at
 * 114,000–140,000 packets a worker, in the vfio-user bed at ~75,000), or after twice the warm-up
 * packets whatever V8 does (so a short run still gets figures). With `heapAudit` (`gc` is
 * not null) that sample and the last one (at the stop) run a full GC before they read the
 * heap, so the heap at warm-up and at the stop are live memory, both taken with the loop
 * running; without it (the default: a forced GC pauses forwarding and loses frames) they
 * call the stand-in through the same call site and read the heap as it is. In between, each sample counts, from the heap as it is (garbage included),
 * the seconds in which it grew by {@linkcode STEP_BYTES} or more (V8 compiling: a function
 * first optimised, or re-optimised after code first run late), what all other seconds
 * added (where per-packet allocation would show, as garbage) and the samples at which the
 * heap shrank (a GC ran).
 *
 * The loop never leaves and re-enters: V8 compiles a running loop "on stack" (OSR), and
 * the full GC drops OSR code no frame is running, so a loop entered again after it would
 * be compiled again. The bookkeeping runs the same statements at every sample, choosing
 * values rather than branching into code first run late: V8 deoptimises optimised code
 * that reaches a statement with no type feedback, then compiles it again, and that new
 * code would be heap growth of its own (seen: "Insufficient type feedback for compare
 * operation" at the 50,000th packet, then +114 KB). Every comparison runs at every
 * sample, none behind a `&&` or in one arm of a choice; `&` on 0/1 values does not
 * short-circuit. The GC is called through the same call site as its stand-in, and the
 * first sample, taken as the loop starts (before V8 optimised anything, and before the
 * worker says it is `ready`: a full GC takes a few ms, ~0.6 s under TCG emulation),
 * collects too with `heapAudit`, so V8 has seen both targets there long before warm-up;
 * without it both entries are the stand-in and every sample runs the same statements.
 */
function run(
  spec: WorkerSpec,
  fwd: Forwarder | Generator,
  mailbox: MailboxReader,
  c: Float64Array,
  ctl: Int32Array,
  clock: FfiClock,
  t0: number,
  gc: (() => void) | null,
  ready: () => void,
): void {
  const idleMs = spec.idleUs / 1000;
  const warmup = spec.warmupPackets;
  const quietSeconds = spec.warmupQuietSeconds;
  const collect = [noCollection, gc ?? noCollection];
  let loops = 0, idle = 0, received = 0, samples = 0, quiet = 0, nextSample = t0;
  let txFirstSeen = 0;
  let lastHeap = heapUsed();
  const time = clock.ms;
  for (;;) {
    // The clock is an FFI call (~40 ns, as much as an empty poll): read it every 8th poll,
    // which is microseconds at most, against a transmit drain of 100 µs.
    if ((loops & 7) === 0) clock.tick();
    const got = fwd.poll();
    const now = time[0];
    // Counted outside the branch: an addition first run by the first frame would make V8
    // deoptimise the loop just when traffic starts (it is optimised while idle).
    received += got;
    if (got > 0) {
      idle = 0;
    } else if (idleMs > 0 && ++idle >= IDLE_POLLS) {
      // Nothing arrived for a while: give the CPU away briefly (woken early by a stop).
      c[W_IDLE_WAITS]++;
      Atomics.wait(ctl, CTL_STOP, 0, idleMs);
      idle = 0;
      clock.tick();
    }
    if ((++loops & 63) === 0) {
      c[W_LOOPS] = loops;
      mailbox.check(fwd.paused);
      fwd.halted[0] = Atomics.load(ctl, CTL_HALT);
      // testpmd's tx_first (control.ts), the same statements whether one was asked or not.
      const asked = Atomics.load(ctl, CTL_TX_FIRST_BURSTS);
      fwd.txFirst(asked - txFirstSeen);
      txFirstSeen = asked;
      const stop = Atomics.load(ctl, CTL_STOP) !== 0;
      if (stop || now >= nextSample) {
        nextSample = now + 1000;
        const at = now - t0;
        const warmHeap = c[W_HEAP_WARM];
        const after = warmHeap === 0 ? 0 : 1;
        const ending = stop ? 1 : 0;
        const raw = heapUsed();
        const grew = raw - lastHeap;
        const compiling = grew >= STEP_BYTES ? 1 : 0;
        quiet = (quiet + 1) * (1 - compiling);
        const settled = ((received >= warmup ? 1 : 0) & (quiet >= quietSeconds ? 1 : 0)) |
          (received >= 2 * warmup ? 1 : 0);
        const first = (1 - after) & settled & (1 - ending);
        collect[first | (after & ending) | (samples === 0 ? 1 : 0)]();
        if (samples === 0) ready(); // run once, long before V8 optimises the loop
        samples++;
        const h = heapUsed();
        const step = after & compiling;
        const gcRan = after & (grew < 0 ? 1 : 0);
        c[W_HEAP_WARM] = first === 1 ? h : warmHeap;
        c[W_WARM_AT_MS] = first === 1 ? at : c[W_WARM_AT_MS];
        c[W_WARM_PACKETS] = first === 1 ? received : c[W_WARM_PACKETS];
        c[W_HEAP_STEPS] += step;
        c[W_HEAP_STEP_BYTES] += step * grew;
        c[W_HEAP_CREEP] += (after - step - gcRan) * grew;
        c[W_LAST_STEP_PACKETS] = step === 1 ? received : c[W_LAST_STEP_PACKETS];
        c[W_HEAP_DROPS] += gcRan;
        c[W_HEAP_LAST] = h;
        c[W_PACKETS] = received;
        c[W_NOW_MS] = at;
        lastHeap = h;
        if (stop) return;
      }
    }
  }
}

function fail(e: unknown, c: Float64Array | null): void {
  if (c) c[W_STATE] = STATE_FAILED;
  const err = e as { code?: string; message?: string; stack?: string };
  scope.postMessage({
    type: "error",
    code: err?.code ?? "WORKER",
    message: err?.message ?? String(e),
    stack: err?.stack,
  });
}

scope.onmessage = (e: MessageEvent) => {
  const msg = e.data as { type: string; spec?: WorkerSpec; params?: PrewarmParams };
  if (msg.type === "ping") {
    scope.postMessage({ type: "pong" });
    return;
  }
  if (msg.type === "prewarm") {
    // No port is open yet: warm with the usual header and no MACs (they shape no code).
    try {
      const zero = new Uint8Array(6);
      const hdrs = [VIRTIO_NET_HDR_SIZE, VIRTIO_NET_HDR_SIZE];
      warmed = warmUp(msg.params!, hdrs, [zero, zero], "both");
      scope.postMessage({ type: "warm", frames: warmed.frames, ms: warmed.ms });
    } catch (e) {
      fail(e, null);
    }
    return;
  }
  if (msg.type !== "start" || !msg.spec) return;
  const spec = msg.spec;
  start(spec).then(
    () => scope.close(),
    (err) => {
      fail(err, new Float64Array(spec.counters));
      scope.close();
    },
  );
};
