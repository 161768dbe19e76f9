/**
 * What `ForwardingEngine.start` and `ForwardingEngine.prewarm` check
 * first (engine.ts): every option's type and range, and the capture file, before any
 * worker starts and before any port's queue is read, so that a bad argument is one
 * sentence and nothing has been taken.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { MAX_QUEUE_PAIRS } from "../net/port_checks.ts";
import type { EngineOptions } from "./engine.ts";
import { PrewarmedWorkers } from "./prewarmed_workers.ts";
import { checkGeneratorOptions } from "./generator_spec.ts";
import { shown } from "../shown.ts";
import { TX_FIRST_MOST_BURSTS } from "./tx_first.ts";
import { ENGINE_MODES, isEngineMode } from "./fwd_modes/modes.ts";

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
