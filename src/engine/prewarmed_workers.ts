/**
 * Forwarding workers started and warmed before the ports open: each runs its forwarding
 * code on synthetic frames (prewarm.ts) while no device is attached yet, so a back-end
 * that sends as soon as the link comes up meets optimised code. ForwardingEngine.start
 * takes them over (EngineOptions.prewarmed).
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import { awaitMessage } from "./worker_messages.ts";
import { startBlobWorker } from "./worker_loader.ts";
import { WORKER_ENTRY, workerCopied, workerSources } from "./worker_sources.ts";
import type { PrewarmParams } from "./worker_spec.ts";

export type { PrewarmParams } from "./worker_spec.ts";

/**
 * Workers warmed by {@linkcode prewarmWorkers}; hand them to ForwardingEngine.start, or
 * {@linkcode PrewarmedWorkers.terminate} them when the ports never open.
 */
export class PrewarmedWorkers {
  readonly #workers: Worker[];
  /** Synthetic frames each worker forwarded. */
  readonly frames: readonly number[];
  /** Milliseconds each worker's warm-up took. */
  readonly ms: readonly number[];
  /** The parameters they warmed with. */
  readonly params: PrewarmParams;
  #taken = false;

  /** Wraps warmed `workers` with what each reported ({@linkcode prewarmWorkers} makes these). */
  constructor(workers: Worker[], frames: number[], ms: number[], params: PrewarmParams) {
    this.#workers = workers;
    this.frames = frames;
    this.ms = ms;
    this.params = params;
  }

  /** Number of workers (queue pairs). */
  get count(): number {
    return this.#workers.length;
  }

  /** Hands the workers over (once); the engine owns them from then on. */
  take(): Worker[] {
    if (this.#taken) {
      throw new DriverError(
        "BAD_ARGUMENT",
        "These warmed workers were already used: warm new ones.",
      );
    }
    this.#taken = true;
    return this.#workers;
  }

  /** Ends the workers unless they were taken. Idempotent. */
  terminate(): void {
    if (this.#taken) return;
    this.#taken = true;
    for (const w of this.#workers) w.terminate();
  }
}

/**
 * Starts `queuePairs` forwarding workers and warms each on synthetic frames; resolves
 * once all are warm. No device or pool is touched.
 *
 * @example
 * ```ts ignore
 * const warm = await prewarmWorkers(2, { frames: 200_000, burst: 32, drainMs: 0.1, txFull: "wait", macRewrite: false });
 * const engine = await ForwardingEngine.start(ports, pool, { prewarmed: warm });
 * ```
 */
export async function prewarmWorkers(
  queuePairs: number,
  params: PrewarmParams,
  timeoutMs = 60000,
): Promise<PrewarmedWorkers> {
  const workers: Worker[] = [];
  try {
    for (let k = 0; k < queuePairs; k++) {
      const w = startBlobWorker(
        WORKER_ENTRY,
        workerSources,
        `forwarding queue pair ${k}`,
        workerCopied,
      );
      workers.push(w);
      w.postMessage({ type: "prewarm", params });
    }
    const done = await Promise.all(
      workers.map((w, k) =>
        awaitMessage(w, "warm", timeoutMs, `The worker of queue pair ${k}`) as Promise<
          { frames: number; ms: number }
        >
      ),
    );
    return new PrewarmedWorkers(workers, done.map((d) => d.frames), done.map((d) => d.ms), params);
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  }
}
