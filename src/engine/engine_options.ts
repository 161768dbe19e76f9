/**
 * The options of the forwarding engine (engine.ts), and what `ForwardingEngine.start` and
 * `ForwardingEngine.prewarm` check first: every option's type and range, and the capture file, before any
 * worker starts and before any port's queue is read, so that a bad argument is one
 * sentence and nothing has been taken.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { MAX_QUEUE_PAIRS } from "../net/port_checks.ts";
import { PrewarmedWorkers } from "./prewarmed_workers.ts";
import type { RingFormat } from "../virtio/ring_format.ts";
import type { CaptureDirection } from "./worker_spec.ts";
import type { EngineMode } from "./fwd_modes/modes.ts";
import type { GeneratorOptions } from "./generator_spec.ts";
import { checkGeneratorOptions } from "./generator_spec.ts";
import { shown } from "../shown.ts";
import { TX_FIRST_MOST_BURSTS } from "./tx_first.ts";
import { ENGINE_MODES, isEngineMode } from "./fwd_modes/modes.ts";

/** Options of {@linkcode ForwardingEngine.start}. */
export interface EngineOptions {
  /** What txonly and flowgen send (only with those modes). */
  generator?: GeneratorOptions;
  /** Frames per receive and transmit burst (default 32). */
  burst?: number;
  /** A partial transmit burst goes out after this many µs (default 100). */
  drainUs?: number;
  /** Rewrite MACs as DPDK's l2fwd does (default false; the same as mode "mac"). */
  macRewrite?: boolean;
  /**
   * What the workers do, as DPDK testpmd's `set fwd` (default "io"; see
   * fwd_modes/modes.ts): "io", "mac", "macswap", "5tswap", "rxonly" or "icmpecho" forward;
   * "txonly" and "flowgen" generate UDP/IPv4 frames on both ports (one flow, or
   * `generator.flows`) and receive on both, recording the latency of the frames that come
   * back (src/engine/generator.ts, as testpmd's `--latencystats`). A mode other than "io"
   * and "mac" does not go with a script (refused: a script can do what the mode does); it
   * runs cold for its first frames (warm-up forwards as "io").
   */
  mode?: EngineMode;
  /**
   * Frames a full transmit ring does not take: "wait" (default: keep them and stop
   * receiving on that direction until the ring has room) or "drop" (count them, as DPDK's
   * l2fwd does).
   */
  txFull?: "wait" | "drop";
  /** Sleep this many µs when nothing arrives (default 50; 0: poll without pause). */
  idleUs?: number;
  /**
   * Packets a worker receives before its warm-up can end (default 150,000): it ends at the
   * first once-a-second sample after them that follows `warmupQuietSeconds` in which V8
   * compiled nothing, or after twice them; the heap figures count from there (counters.ts,
   * W_HEAP_WARM).
   */
  warmupPackets?: number;
  /**
   * Synthetic frames each worker forwards between in-memory rings to warm its code before
   * it adopts the device's queues (prewarm.ts; default 200,000, at most 3 s; 0: none).
   */
  prewarmFrames?: number;
  /**
   * The ring formats {@linkcode ForwardingEngine.prewarm} warms, before the ports are open
   * (default both, "split" then "packed": a port takes packed rings when its device offers
   * them). Warm-up at start() covers the formats of the ports' queues.
   */
  prewarmFormats?: readonly RingFormat[];
  /**
   * Workers warmed before the ports opened ({@linkcode ForwardingEngine.prewarm}), one per
   * queue pair: start() takes them over instead of starting new ones.
   */
  prewarmed?: PrewarmedWorkers;
  /**
   * Seconds in a row without a compile step that warm-up waits for once the warm-up
   * packets arrived (default 5: V8 tiers the loop's functions up seconds apart).
   */
  warmupQuietSeconds?: number;
  /**
   * Heap audit (default false): each worker forces a full GC at its first sample, at the
   * end of warm-up and at the stop, so that the heap figures are live memory
   * (`heapLive: true`). Each GC pauses forwarding (0.3–0.6 s under TCG emulation, enough to
   * lose frames), so by default none is forced and the figures are the heap as sampled
   * once a second, garbage included (`heapLive: false`).
   */
  heapAudit?: boolean;
  /**
   * Count each frame's size bin, multicast and broadcast for the extended statistics
   * (default true, as DPDK's virtio PMD). False leaves those xstats at 0 and forwards
   * faster: the classification costs 15–30 % at 64 bytes (docs/performance.md).
   */
  xstats?: boolean;
  /**
   * Start halted (default false): the workers take their queues but poll nothing until
   * {@linkcode ForwardingEngine.resume}, as an interactive testpmd waits for `start`.
   */
  halted?: boolean;
  /**
   * Bursts each worker sends out of each of its ports before it forwards (testpmd's
   * `--tx-first`; default 0, at most 1,024): 64-byte UDP frames (tx_first.ts) that start
   * traffic between forwarders that only forward; fewer when a ring or the pool is full.
   * Nothing in a generating mode.
   */
  txFirst?: number;
  /** A script module (path or file: URL; importing it needs read permission). */
  script?: { path: string; args?: Record<string, string> };
  /**
   * Capture frames of `port` (queue `queue`, or all) into the pcap file `path`: received
   * ones (as they arrived), sent ones (as they leave, after MAC rewrite and script), or
   * both (`direction`, default "rx").
   */
  capture?: {
    path: string;
    port: number;
    queue?: number;
    direction?: CaptureDirection;
    ringBytes?: number;
  };
  /**
   * How long a worker's vfio-user queue notification waits for room on a server's full
   * socket before the worker fails (ms, default 5000, the vfio-user client's own timeout).
   * A stop request ends such a wait at once (within 10 ms).
   */
  notifyTimeoutMs?: number;
  /** How long workers may take to start (default 60 s: slow under TCG). */
  startTimeoutMs?: number;
  /** Called once if a worker fails while running (the engine stops forwarding). */
  onError?: (error: DriverError) => void;
}

/** The longest timeout setTimeout and poll(2) hold: 2^31-1 ms (longer ones fire at once). */
const MAX_TIMEOUT_MS = 0x7fffffff;
/** The largest µs delay and frame count the options take (l2fwd's limit too). */
const MAX_OPTION_NUMBER = 1e9;
/** The smallest and largest capture side buffer (room for a 9234-byte frame, and 1 GiB). */
const MIN_RING_BYTES = 1 << 16, MAX_RING_BYTES = 1 << 30;

/**
 * Refuses engine options no run could take (types and ranges), before anything is
 * started or any port is read: one BAD_ARGUMENT sentence naming the option and the fix.
 * What depends on the ports (a capture queue below their queue pairs) is checked next.
 *
 * @example
 * ```ts
 * import { checkEngineOptions } from "./engine_options.ts";
 * checkEngineOptions({ burst: 32, txFull: "drop" }); // fine; { burst: 0 } throws
 * ```
 */
export function checkEngineOptions(options: EngineOptions): void {
  const bad = (m: string): never => {
    throw new DriverError("BAD_ARGUMENT", m);
  };
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    bad(`The engine options are ${shown(options)}: give an object such as { burst: 32 }.`);
  }
  const burst = options.burst;
  if (burst !== undefined && !(Number.isInteger(burst) && burst >= 1 && burst <= 256)) {
    bad(`A burst of ${shown(burst)} is not possible: use 1 to 256.`);
  }
  /** A number option: at least `min`, at most `max`, an integer when `int`. */
  const number = (name: string, v: unknown, min: number, max: number, int: boolean) => {
    if (v === undefined) return;
    if (typeof v === "number" && (int ? Number.isInteger(v) : Number.isFinite(v))) {
      if (v >= min && v <= max) return;
    }
    bad(
      `${name} ${shown(v)} is not possible: give ${
        int ? "an integer" : "a number"
      } from ${min} to ${max}.`,
    );
  };
  number("drainUs", options.drainUs, 0, MAX_OPTION_NUMBER, false);
  number("idleUs", options.idleUs, 0, MAX_OPTION_NUMBER, false);
  number("warmupPackets", options.warmupPackets, 0, Number.MAX_SAFE_INTEGER, true);
  number("prewarmFrames", options.prewarmFrames, 0, MAX_OPTION_NUMBER, true);
  number("txFirst", options.txFirst, 0, TX_FIRST_MOST_BURSTS, true);
  const formats = options.prewarmFormats;
  if (
    formats !== undefined &&
    !(Array.isArray(formats) && formats.length > 0 &&
      formats.every((f) => f === "split" || f === "packed"))
  ) {
    bad(`prewarmFormats ${shown(formats)} is not possible: give "split", "packed" or both.`);
  }
  const quiet = options.warmupQuietSeconds;
  if (quiet !== undefined && !(Number.isSafeInteger(quiet) && quiet >= 0)) {
    bad(`A warm-up quiet period of ${shown(quiet)} s is not possible: give whole seconds.`);
  }
  for (const name of ["notifyTimeoutMs", "startTimeoutMs"] as const) {
    const v = options[name];
    if (v !== undefined && !(typeof v === "number" && v > 0 && v <= MAX_TIMEOUT_MS)) {
      bad(
        `${name} ${
          shown(v)
        } is not possible: give milliseconds above 0 and at most ${MAX_TIMEOUT_MS}.`,
      );
    }
  }
  for (const name of ["macRewrite", "heapAudit", "halted", "xstats"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "boolean") {
      bad(`${name} is ${shown(options[name])}, not true or false: give a boolean or leave it out.`);
    }
  }
  const mode = options.mode;
  if (mode !== undefined && !isEngineMode(mode)) {
    bad(`mode ${shown(mode)} is not a mode of the engine: use one of ${ENGINE_MODES.join(", ")}.`);
  }
  if (options.macRewrite === true && mode !== undefined && mode !== "io" && mode !== "mac") {
    bad(`macRewrite is the "mac" mode and does not go with mode "${mode}": leave one out.`);
  }
  if (mode !== undefined && mode !== "io" && mode !== "mac" && options.script !== undefined) {
    bad(
      `mode "${mode}" and a script do not go together (a script can do what the mode does): leave one out.`,
    );
  }
  if (options.txFull !== undefined && options.txFull !== "wait" && options.txFull !== "drop") {
    bad(`txFull ${shown(options.txFull)} is not a mode: use "wait" or "drop".`);
  }
  if (options.onError !== undefined && typeof options.onError !== "function") {
    bad(`onError is ${shown(options.onError)}, not a function: give one or leave it out.`);
  }
  checkGeneratorOptions(options);
  if (options.prewarmed !== undefined && !(options.prewarmed instanceof PrewarmedWorkers)) {
    bad(`prewarmed is ${shown(options.prewarmed)}: give what ForwardingEngine.prewarm() returned.`);
  }
  const script = options.script;
  if (script !== undefined) {
    if (typeof script?.path !== "string" || script.path === "") {
      bad(`The script option needs a path, not ${shown(script?.path)}: give { path: "file.ts" }.`);
    }
    const args = script.args;
    if (
      args !== undefined &&
      (typeof args !== "object" || args === null ||
        Object.values(args).some((v) => typeof v !== "string"))
    ) {
      bad(`The script's args must map names to strings: give e.g. { "udp-port": "53" }.`);
    }
  }
  const cap = options.capture;
  if (cap === undefined) return;
  if (typeof cap?.path !== "string" || cap.path === "") {
    bad(
      `The capture option needs a path, not ${
        shown(cap?.path)
      }: give { path: "rx.pcap", port: 0 }.`,
    );
  }
  if (cap.port !== 0 && cap.port !== 1) {
    bad(`Capture of port ${shown(cap.port)} is not possible: use port 0 or 1.`);
  }
  number("The capture queue", cap.queue, 0, MAX_QUEUE_PAIRS - 1, true);
  const dir = cap.direction;
  if (dir !== undefined && dir !== "rx" && dir !== "tx" && dir !== "both") {
    bad(`The capture direction ${shown(dir)} is not one: use "rx", "tx" or "both".`);
  }
  number("The capture's ringBytes", cap.ringBytes, MIN_RING_BYTES, MAX_RING_BYTES, true);
}

/**
 * Checks that the capture file can be written before the ports' queues are taken: Deno's
 * write permission (PERMISSION) and the file itself (BAD_ARGUMENT: a directory that does
 * not exist, a path under /proc). Leaves no file behind: one it created is removed again.
 *
 * @example
 * ```ts ignore
 * import { checkCaptureFile } from "./engine_options.ts";
 * checkCaptureFile("/nonexistent/rx.pcap"); // throws: … cannot be written (No such file …
 * ```
 */
export function checkCaptureFile(path: string): void {
  if (Deno.permissions.querySync({ name: "write", path }).state !== "granted") {
    throw new DriverError(
      "PERMISSION",
      `Writing the capture to ${path} needs write permission for it: run deno with --allow-write=${path}.`,
    );
  }
  try {
    try {
      Deno.openSync(path, { write: true, createNew: true }).close();
      Deno.removeSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      Deno.openSync(path, { write: true }).close();
    }
  } catch (e) {
    throw new DriverError(
      "BAD_ARGUMENT",
      `The capture file ${path} cannot be written (${
        String((e as Error).message).split("\n")[0].replace(/\.$/, "")
      }): give a file in a directory that exists and that you may write.`,
    );
  }
}
