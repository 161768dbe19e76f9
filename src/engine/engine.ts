/**
 * The run-to-completion forwarding engine (main thread side): one Deno Worker per queue
 * pair, each forwarding receiveq(k+1) of one port to transmitq(k+1) of the other and back,
 * with no locks between them (see handoff.ts for how buffers and queues are split).
 *
 * The main thread keeps the control path: it opened the ports and set their steering
 * before starting the engine, it reads the workers' counters for statistics, drains
 * packet capture into a file, and stops the workers (a shared stop flag: they send what
 * they buffered, wait for the devices to complete it and exit) before the ports are
 * closed. `port.steering.set()` still works while the engine runs (same number of queue
 * pairs): the main thread sends the command and the workers keep the no-reordering gate
 * on their receive queues (steering_mailbox.ts).
 *
 * @module
 */

import type { BufferPool } from "../dma/buffer_pool.ts";
import { DriverError } from "../errors.ts";
import type { VirtioNetPort } from "../net/port.ts";
import {
  CTL_HALT,
  CTL_STOP,
  CTL_TX_FIRST_BURSTS,
  requestStop,
  sharedControl,
  STOP_DRAIN,
  STOP_NOW,
} from "./control.ts";
import { MailboxEpochs, steeringMailbox } from "./steering_mailbox.ts";
import { type CounterLayout, counterLayout, sharedCounters } from "./counters.ts";
import { addressOfBuffer, buffersInRing, describeRing, partitionPool } from "./handoff.ts";
import { NOTIFY_SEND_TIMEOUT_MS } from "./notifier.ts";
import { checkCaptureFile, checkEngineOptions, type EngineOptions } from "./engine_options.ts";
import { shown } from "../shown.ts";
import { TX_FIRST_MOST_BURSTS } from "./tx_first.ts";
import { MAX_QUEUE_PAIRS } from "../net/port_checks.ts";
import { offloadsOf } from "../net/offload_features.ts";
import { createPcapRing } from "./pcap_ring.ts";
import { PcapSink } from "./pcap_sink.ts";
import { type LoadedScript, loadScript } from "./script_loader.ts";
import { awaitMessage, workerError } from "./worker_messages.ts";
import { type EngineSnapshot, readSnapshot } from "./snapshot.ts";
import {
  type EngineStopped,
  HEAP_AUDIT_STOP_MS,
  STOP_TIMEOUT_MS,
  stopWorkers,
} from "./stopping.ts";
import { startBlobWorker } from "./worker_loader.ts";
import { WORKER_ENTRY, workerCopied, workerSources } from "./worker_sources.ts";
import { PrewarmedWorkers, prewarmWorkers } from "./prewarmed_workers.ts";
import type { PortQueuesSpec, WorkerSpec } from "./worker_spec.ts";
import { type GeneratorOptions, generatorSpec, isGeneratingMode } from "./generator_spec.ts";

/** Synthetic frames each worker forwards to warm its code (prewarm.ts) unless told otherwise. */
export const DEFAULT_PREWARM_FRAMES = 200_000;

export type { EngineOptions, EngineStopped, GeneratorOptions };

/**
 * Forwarding between two ports on one worker per queue pair.
 *
 * @example
 * ```ts ignore
 * import { createSharedPool, openPort } from "../../mod.ts";
 * import { ForwardingEngine } from "./engine.ts";
 * const pool = createSharedPool(8192);
 * const ports = ["0000:00:04.0", "0000:00:05.0"].map((a) => openPort(a, { pool, queuePairs: 2 }));
 * const engine = await ForwardingEngine.start(ports, pool, { burst: 32 });
 * setTimeout(async () => {
 *   const final = await engine.stop();
 *   console.log(JSON.stringify(final.ports));
 *   if (final.unsafeToRelease) Deno.exit(1); // a worker may still run: keep its memory
 *   for (const p of ports) p.close();
 *   pool.region.free();
 * }, 10000);
 * ```
 */
export class ForwardingEngine {
  /** Number of workers (= queue pairs per port). */
  readonly queues: number;
  /** The ports, in order (port i forwards to port i ^ 1). */
  readonly ports: readonly VirtioNetPort[];
  readonly #layout: CounterLayout;
  readonly #workers: Worker[];
  readonly #counters: Float64Array[];
  readonly #control: Int32Array;
  readonly #script: LoadedScript | null;
  readonly #pcap: PcapSink | null;
  readonly #pool: BufferPool;
  readonly #stopTimeoutMs: number;
  #finished: Promise<unknown>[] = [];
  #stopped: Promise<EngineStopped> | null = null;
  #stuck: number[] = [];
  #error: DriverError | null = null;

  private constructor(
    ports: readonly VirtioNetPort[],
    layout: CounterLayout,
    workers: Worker[],
    counters: Float64Array[],
    control: Int32Array,
    script: LoadedScript | null,
    pcap: PcapSink | null,
    pool: BufferPool,
    stopTimeoutMs: number,
  ) {
    this.ports = ports;
    this.#pool = pool;
    this.#stopTimeoutMs = stopTimeoutMs;
    this.queues = workers.length;
    this.#layout = layout;
    this.#workers = workers;
    this.#counters = counters;
    this.#control = control;
    this.#script = script;
    this.#pcap = pcap;
  }

  /**
   * Starts one worker per queue pair and warms each on synthetic frames (prewarm.ts) with
   * the forwarding options of `options`, before any port is open: give the result to
   * {@linkcode ForwardingEngine.start} as `prewarmed`, so that the first frames a device
   * sends meet optimised code. Call {@linkcode PrewarmedWorkers.terminate} if the ports
   * never open.
   *
   * @example
   * ```ts ignore
   * const warm = await ForwardingEngine.prewarm(1, { burst: 32 });
   * // … open the ports …
   * const engine = await ForwardingEngine.start(ports, pool, { burst: 32, prewarmed: warm });
   * ```
   */
  static async prewarm(
    queuePairs: number,
    options: EngineOptions = {},
  ): Promise<PrewarmedWorkers> {
    checkEngineOptions(options);
    if (!(Number.isInteger(queuePairs) && queuePairs >= 1 && queuePairs <= MAX_QUEUE_PAIRS)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `Warming ${
          shown(queuePairs)
        } workers is not possible: give one per queue pair, 1 to ${MAX_QUEUE_PAIRS}.`,
      );
    }
    return await prewarmWorkers(queuePairs, {
      frames: options.prewarmFrames ?? DEFAULT_PREWARM_FRAMES,
      formats: [...(options.prewarmFormats ?? ["split", "packed"])],
      burst: options.burst ?? 32,
      drainMs: (options.drainUs ?? 100) / 1000,
      txFull: options.txFull ?? "wait",
      macRewrite: options.macRewrite === true || options.mode === "mac",
      xstats: options.xstats,
    }, options.startTimeoutMs ?? 60000);
  }

  /**
   * Hands the data queues of `ports` (opened with the shared `pool`, the same number of
   * queue pairs each, steering already set) to one worker per queue pair and starts
   * forwarding. Resolves once every worker runs. Throws a {@linkcode DriverError} (and
   * leaves nothing running) when the ports do not fit or a worker does not start.
   */
  static async start(
    ports: readonly VirtioNetPort[],
    pool: BufferPool,
    options: EngineOptions = {},
  ): Promise<ForwardingEngine> {
    // Every option first, then the capture file, then the ports: nothing is taken before.
    checkEngineOptions(options);
    if (options.capture) checkCaptureFile(options.capture.path);
    const burst = options.burst ?? 32;
    if (!Array.isArray(ports) || ports.length !== 2) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `The engine forwards between 2 ports, not ${
          Array.isArray(ports) ? ports.length : shown(ports)
        }: give two.`,
      );
    }
    const queues = ports[0].queuePairs;
    for (const p of ports) {
      if (p.pool !== pool) {
        throw new DriverError(
          "BAD_ARGUMENT",
          `${p.name} does not use the shared pool: open every port with the same pool.`,
        );
      }
      if (p.queuePairs !== queues) {
        throw new DriverError(
          "BAD_ARGUMENT",
          `${
            ports[0].name
          } has ${queues} queue pairs and ${p.name} ${p.queuePairs}: open both with the same number.`,
        );
      }
      if (p.headerSize !== ports[0].headerSize) {
        throw new DriverError(
          "UNSUPPORTED",
          `${ports[0].name} and ${p.name} negotiated different virtio-net header sizes (${
            ports[0].headerSize
          } and ${p.headerSize} bytes), so frames cannot be forwarded in place: open both with hashReport: false.`,
        );
      }
    }
    const quiet = options.warmupQuietSeconds ?? 5;
    const notifyTimeoutMs = options.notifyTimeoutMs ?? NOTIFY_SEND_TIMEOUT_MS;
    const cap = options.capture;
    if (cap && cap.queue !== undefined && cap.queue >= queues) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `Capture of port ${cap.port} queue ${cap.queue} is not possible: use port 0 or 1 and a queue below ${queues}.`,
      );
    }
    const warm = options.prewarmed;
    if (warm && warm.count !== queues) {
      warm.terminate();
      throw new DriverError(
        "BAD_ARGUMENT",
        `${warm.count} warmed workers cannot serve ${queues} queue pairs: warm one per queue pair.`,
      );
    }
    let script: LoadedScript | null = null;
    if (options.script) {
      const args = options.script.args ?? {};
      const s = await loadScript(options.script.path, { args, workers: queues });
      script = { ...s, args };
    }
    const names = script?.module.counters ?? [];
    const gen = generatorSpec(options, ports, queues);
    const layout = counterLayout(2, names.length, script?.module.tableSize ?? 0, gen !== null);

    // Describe every data queue, then split the pool (this takes the free buffers). A
    // frame the port's own queue was still assembling goes back first: a worker could not
    // finish it (counted in dropsBadMerge).
    const rings = ports.map((p) =>
      Array.from({ length: queues }, (_, k) => ({
        rx: (p.rx(k).dropPartial(), describeRing(p, p.rx(k).vq)),
        tx: describeRing(p, p.tx(k).vq),
      }))
    );
    const described = Array.from(
      { length: queues },
      (_, k) =>
        ports.map((p, i): PortQueuesSpec => ({
          name: p.name,
          mac: Uint8Array.from(p.config.mac),
          headerSize: p.headerSize,
          mergeable: p.mergeable,
          offloads: offloadsOf(p.features),
          rx: rings[i][k].rx,
          tx: rings[i][k].tx,
          rxSiblings: rings[i].filter((_, j) => j !== k).map((r) => r.rx.notify),
        })),
    );
    const parts = partitionPool(
      pool,
      described.map((ps) => ps.flatMap((p) => [...buffersInRing(p.rx), ...buffersInRing(p.tx)])),
    );

    const control = sharedControl(queues);
    if (options.halted === true) Atomics.store(control, CTL_HALT, 1);
    if ((options.txFirst ?? 0) > 0) askTxFirst(control, options.txFirst!);
    const mailbox = steeringMailbox(ports.length, queues);
    const counters = described.map(() => sharedCounters(layout));
    const capRings = described.map((_, k) =>
      cap && (cap.queue === undefined || cap.queue === k)
        ? createPcapRing(cap.ringBytes ?? 8 << 20)
        : null
    );
    let pcap: PcapSink | null = null;
    if (cap) {
      pcap = PcapSink.open(cap.path, capRings.filter((r): r is SharedArrayBuffer => r !== null));
    }
    const workers: Worker[] = [];
    const warmWorkers = warm?.take() ?? null;
    try {
      for (let k = 0; k < queues; k++) {
        const spec: WorkerSpec = {
          queue: k,
          workers: queues,
          burst,
          drainMs: (options.drainUs ?? 100) / 1000,
          macRewrite: options.macRewrite ?? false,
          xstats: options.xstats ?? true,
          // A generating mode runs the worker's generator (spec.generator), not a forwarder.
          mode: isGeneratingMode(options.mode) ? "io" : options.mode ?? "io",
          txFull: options.txFull ?? "wait",
          idleUs: options.idleUs ?? 50,
          warmupPackets: options.warmupPackets ?? 150_000,
          prewarmFrames: options.prewarmFrames ?? DEFAULT_PREWARM_FRAMES,
          warmupQuietSeconds: quiet,
          heapAudit: options.heapAudit ?? false,
          notifyTimeoutMs,
          pool: {
            address: addressOfBuffer(pool.region.buffer),
            bytes: pool.count * pool.bufferSize,
            iova: pool.region.iova,
            pageIovas: pool.region.pageIovas === null ? null : [...pool.region.pageIovas],
            count: pool.count,
            bufferSize: pool.bufferSize,
            free: parts[k].free,
            inUse: parts[k].inUse,
          },
          ports: described[k],
          counters: counters[k].buffer as SharedArrayBuffer,
          control: control.buffer as SharedArrayBuffer,
          steering: mailbox,
          script: script ? { url: script.url, args: script.args } : null,
          capture: capRings[k]
            ? { port: cap!.port, direction: cap!.direction ?? "rx", ring: capRings[k]! }
            : null,
          generator: gen,
        };
        const w = warmWorkers?.[k] ??
          startBlobWorker(WORKER_ENTRY, workerSources, `forwarding queue pair ${k}`, workerCopied);
        workers.push(w);
        w.postMessage({ type: "start", spec });
      }
      await Promise.all(
        workers.map((w, k) =>
          awaitMessage(w, "ready", options.startTimeoutMs ?? 60000, `The worker of queue pair ${k}`)
        ),
      );
    } catch (e) {
      // A worker that has not started yet will not (the stop flag is up); one that has
      // must leave before the caller may close the ports.
      for (const w of warmWorkers ?? []) if (!workers.includes(w)) w.terminate();
      await stopWorkers({ control, workers, ports, pool });
      pcap?.close();
      throw e;
    }
    const engine = new ForwardingEngine(
      ports,
      layout,
      workers,
      counters,
      control,
      script,
      pcap,
      pool,
      STOP_TIMEOUT_MS + (options.heapAudit ? HEAP_AUDIT_STOP_MS : 0),
    );
    // From here on a steering switch on a port goes through the workers (see Steering).
    ports.forEach((p, i) =>
      p.steering.attachWorkers(
        new MailboxEpochs(
          mailbox,
          i,
          queues,
          Array.from({ length: queues }, (_, k) => p.rx(k).vq),
          p.name,
        ),
      )
    );
    engine.#watch(options.onError);
    return engine;
  }

  #watch(onError?: (e: DriverError) => void): void {
    this.#finished = this.#workers.map((w, k) =>
      new Promise((resolve) => {
        const what = `The worker of queue pair ${k}`;
        const fail = (e: DriverError) => {
          if (!this.#error) {
            this.#error = e;
            requestStop(this.#control);
            onError?.(e);
          }
          resolve(null);
        };
        w.addEventListener("message", (e: MessageEvent) => {
          const m = e.data as { type: string; code?: string; message?: string };
          if (m.type === "done") resolve(m);
          else if (m.type === "error") fail(workerError(what, m));
        });
        w.addEventListener("error", (e: ErrorEvent) => {
          e.preventDefault();
          fail(new DriverError("WORKER", `${what} crashed: ${e.message}.`));
        });
      })
    );
  }

  /** The first error a worker met, if any (the engine then stopped forwarding). */
  get error(): DriverError | null {
    return this.#error;
  }

  /**
   * Halts forwarding (testpmd's interactive `stop`): within microseconds every worker stops
   * polling its receive queues and generating, and sends only what it had buffered; the
   * ports stay open and their receive rings fill. {@linkcode ForwardingEngine.resume}
   * goes on. Not a stop: the workers keep their queues.
   *
   * @example
   * ```ts ignore
   * engine.halt();
   * console.log(engine.snapshot()); // counters stay as they are
   * engine.resume();
   * ```
   */
  halt(): void {
    Atomics.store(this.#control, CTL_HALT, 1);
  }

  /** Ends a {@linkcode ForwardingEngine.halt} (or a start with `halted`): forwarding goes on. */
  resume(): void {
    Atomics.store(this.#control, CTL_HALT, 0);
    Atomics.notify(this.#control, CTL_STOP); // idle workers look again at once
  }

  /**
   * Asks every worker to send `bursts` bursts (1 to 1,024) of 64-byte UDP frames out of
   * each of its ports now (testpmd's `start tx_first`, tx_first.ts), through its transmit
   * buffers, before what it forwards next; requests close together add up. A port gets
   * fewer when its transmit ring and buffers are full or the pool runs dry (counted as
   * sent only when sent); a generating mode sends nothing more.
   *
   * @example
   * ```ts ignore
   * engine.txFirst(8); // then resume(), when halted
   * ```
   */
  txFirst(bursts: number): void {
    if (!(Number.isInteger(bursts) && bursts >= 1 && bursts <= TX_FIRST_MOST_BURSTS)) {
      throw new DriverError(
        "BAD_ARGUMENT",
        `tx_first of ${shown(bursts)} bursts is not possible: give 1 to ${TX_FIRST_MOST_BURSTS}.`,
      );
    }
    askTxFirst(this.#control, bursts);
    Atomics.notify(this.#control, CTL_STOP); // idle workers look at once
  }

  /** True while halted. */
  get halted(): boolean {
    return Atomics.load(this.#control, CTL_HALT) !== 0;
  }

  /** True once {@linkcode ForwardingEngine.stop} was called or a worker failed. */
  get stopping(): boolean {
    return Atomics.load(this.#control, CTL_STOP) !== 0;
  }

  /** Names of the script's counters (empty without a script). */
  get scriptCounterNames(): readonly string[] {
    return this.#script?.module.counters ?? [];
  }

  /** Frames written to the capture file so far (0 without capture). */
  get pcapWritten(): number {
    return this.#pcap?.written ?? 0;
  }

  /** The counters now. */
  snapshot(): EngineSnapshot {
    return readSnapshot(
      this.#counters,
      this.#layout,
      this.ports.map((p) => p.name),
      this.scriptCounterNames,
    );
  }

  /** What the script reports about its counters and tables (undefined without one). */
  scriptReport(): unknown {
    const s = this.#script;
    if (!s?.module.report) return undefined;
    const counters = this.snapshot().scriptCounters ?? {};
    const tables = this.#counters.map((c) =>
      new Float64Array(c.buffer, 8 * this.#layout.tableBase, this.#layout.tableSize)
    );
    return s.module.report({ counters, tables, args: s.args });
  }

  /**
   * True once {@linkcode ForwardingEngine.stop} found a worker that did not confirm it
   * stopped: the ports' and the pool's memory is retained (see {@linkcode EngineStopped}).
   */
  get unsafeToRelease(): boolean {
    return this.#stuck.length > 0;
  }

  /**
   * Stops forwarding: raises the stop flag and waits (at most `timeoutMs`, default
   * 1500 ms: a worker needs at most its drain and one notify poll slice; 10 s more with
   * `heapAudit`, whose workers force a full GC as they stop) until every
   * worker has sent what it buffered and confirmed, through its presence word
   * (control.ts), that it will not touch shared memory again; then terminates the
   * workers, writes the rest of the capture, and returns the final counters. Once it
   * resolves with `unsafeToRelease` false, the ports can be closed and the pool freed.
   * With `unsafeToRelease` true (a worker still running: `Worker.terminate()` does not
   * stop it at once), the engine has retained that memory, and the caller must not free
   * it by other means: see {@linkcode EngineStopped}. Idempotent. With `drain: false` the
   * workers send nothing more (the ports are about to be reset after a fault): what they
   * hold stays counted as received only (sessions.ts counts it as lost to the reset).
   */
  stop(
    timeoutMs: number = this.#stopTimeoutMs,
    options: { drain?: boolean } = {},
  ): Promise<EngineStopped> {
    this.#stopped ??= (async () => {
      requestStop(this.#control, options.drain === false ? STOP_NOW : STOP_DRAIN);
      for (const p of this.ports) p.steering.attachWorkers(null);
      this.#stuck = await stopWorkers({
        control: this.#control,
        workers: this.#workers,
        ports: this.ports,
        pool: this.#pool,
        finished: this.#finished,
        timeoutMs,
      });
      this.#pcap?.close();
      return {
        ...this.snapshot(),
        unsafeToRelease: this.#stuck.length > 0,
        stuckWorkers: [...this.#stuck],
      };
    })();
    return this.#stopped;
  }
}

/** Adds a tx_first request's bursts to what the workers were asked for (control.ts). */
function askTxFirst(control: Int32Array, bursts: number): void {
  Atomics.add(control, CTL_TX_FIRST_BURSTS, bursts);
}
