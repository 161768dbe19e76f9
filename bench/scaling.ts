/**
 * Scaling of the forwarding code across cores, without a device: 1, then N workers (N =
 * the CPUs) each forward over a private in-memory loopback (bench/scaling_worker.ts) for
 * the same window; the aggregate rate with N over the rate with 1 says whether workers
 * slow each other down. They share nothing on the data path in l2fwd either (each owns its
 * queues and a part of the buffer pool), so with a device the limit is the device or the
 * back-end, not this code. docs/performance.md says what that projects.
 *
 * @example
 * ```sh
 * deno run --allow-read bench/scaling.ts   # prints JSON
 * ```
 *
 * @module
 */

/**
 * Rates with some number of workers.
 *
 * @example
 * ```ts
 * import type { ScalingRun } from "./scaling.ts";
 * const perWorker = (r: ScalingRun) => r.totalFps / r.workers;
 * ```
 */
export interface ScalingRun {
  /** Workers forwarding at once. */
  workers: number;
  /** Each worker's frames per second. */
  fps: number[];
  /** Their sum. */
  totalFps: number;
}

/** Runs `n` workers for `ms` after `warmMs` of warm-up each; resolves to their rates. */
async function runWorkers(n: number, warmMs: number, ms: number): Promise<ScalingRun> {
  const start = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from(
    { length: n },
    () => new Worker(new URL("./scaling_worker.ts", import.meta.url), { type: "module" }),
  );
  try {
    const done = workers.map((w) =>
      new Promise<{ frames: number; ms: number }>((resolve, reject) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => reject(new Error(`scaling worker: ${e.message}`));
      })
    );
    for (const w of workers) w.postMessage({ warmMs, ms, start });
    await new Promise((r) => setTimeout(r, warmMs + 500)); // every worker warmed and waiting
    Atomics.store(start, 0, 1);
    Atomics.notify(start, 0);
    const fps = (await Promise.all(done)).map((r) => Math.round(r.frames / (r.ms / 1000)));
    return { workers: n, fps, totalFps: fps.reduce((a, b) => a + b, 0) };
  } finally {
    for (const w of workers) w.terminate();
  }
}

/**
 * One worker alone, then one per CPU at once, each for `seconds` after 1 s of warm-up.
 *
 * @example
 * ```ts ignore
 * import { measureScaling } from "./scaling.ts";
 * const [one, all] = await measureScaling(3);
 * console.log(all.totalFps / one.totalFps); // ~2 on two idle cores
 * ```
 */
export async function measureScaling(seconds = 3): Promise<ScalingRun[]> {
  const cpus = navigator.hardwareConcurrency;
  const runs = [await runWorkers(1, 1000, seconds * 1000)];
  if (cpus > 1) runs.push(await runWorkers(cpus, 1000, seconds * 1000));
  return runs;
}

if (import.meta.main) console.log(JSON.stringify(await measureScaling(), null, 2));
