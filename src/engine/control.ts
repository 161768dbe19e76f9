/**
 * The control words the main thread and the forwarding workers share: an Int32Array over
 * a SharedArrayBuffer. The main thread raises the stop flag with Atomics.store and wakes
 * sleeping workers with Atomics.notify; workers read it with Atomics.load (every 64 polls)
 * and sleep on it with Atomics.wait when idle. These are the only cross-thread
 * publication points of the engine's control path.
 *
 * Each worker also has a presence word, so that the main thread knows when no worker can
 * touch the shared DMA memory (rings, packet buffers) or the notify BAR any more, before
 * it unmaps them: `Worker.terminate()` does not stop a running worker at once. A worker
 * stores {@linkcode WORKER_INSIDE} before it first touches that memory and then reads the
 * stop flag; it stores {@linkcode WORKER_LEFT} once it never will again. The main thread
 * raises the stop flag and then reads the words. Atomics are sequentially consistent, so
 * a main thread that reads {@linkcode WORKER_OUTSIDE} read it before the worker's store of
 * WORKER_INSIDE, which therefore comes after the stop flag: that worker sees the flag and
 * leaves without touching anything. Every word OUTSIDE or LEFT after the stop flag: no
 * worker touches the memory again.
 *
 * @module
 */

/**
 * How long a stopping worker drains (ms): it sends what it buffered and waits for the
 * devices to complete it, then leaves (stopping.ts keeps the stop timeout above this).
 */
export const WORKER_DRAIN_MS = 500;

/**
 * Index of the stop flag: 0 run, {@linkcode STOP_DRAIN} stop (drain and exit),
 * {@linkcode STOP_NOW} stop without draining.
 */
export const CTL_STOP = 0;
/** Stop flag: send what is buffered, wait for the devices to complete it, exit. */
export const STOP_DRAIN = 1;
/**
 * Stop flag: exit at once, sending nothing more: the devices are about to be reset (a
 * fault, l2fwd --reconnect), so what is held is lost and counted as such (sessions.ts).
 */
export const STOP_NOW = 2;
/**
 * Index of the halt word: 1 while forwarding is halted (testpmd's `stop` in an interactive
 * session): workers poll no receive queue and generate nothing, but still send what they
 * buffered; 0 forwards. Read with Atomics.load every 64 polls, so a change takes effect
 * within microseconds; the ports stay open and their rings fill, as testpmd's do.
 */
export const CTL_HALT = 1;
/**
 * Index of the bursts tx_first asked for so far (testpmd's `start tx_first`, tx_first.ts):
 * the engine adds each request's bursts; a worker sends what the total grew by since it
 * last looked, out of each of its ports, so requests close together add up. Read with the
 * halt word.
 */
export const CTL_TX_FIRST_BURSTS = 2;
/** Words before the workers' presence words. */
export const CTL_WORDS = 4;
/** Presence: the worker has not touched shared memory (nor will, once stop is raised). */
export const WORKER_OUTSIDE = 0;
/** Presence: the worker may touch shared memory. */
export const WORKER_INSIDE = 1;
/** Presence: the worker will not touch shared memory again. */
export const WORKER_LEFT = 2;

/**
 * A new control array for `workers` workers (all zero: run, no worker inside).
 *
 * @example
 * ```ts
 * import { CTL_STOP, sharedControl } from "./control.ts";
 * const ctl = sharedControl(2);
 * Atomics.load(ctl, CTL_STOP); // 0
 * ```
 */
export function sharedControl(workers = 1): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * (CTL_WORDS + workers)));
}

/**
 * Worker `k` announces it is about to touch shared memory. Returns false when the stop
 * flag is already up: the worker must then leave without touching it (its word says
 * {@linkcode WORKER_LEFT}).
 *
 * @example
 * ```ts
 * import { enterShared, leaveShared, sharedControl } from "./control.ts";
 * const ctl = sharedControl(1);
 * if (enterShared(ctl, 0)) {
 *   // … adopt the rings, forward …
 *   leaveShared(ctl, 0);
 * }
 * ```
 */
export function enterShared(ctl: Int32Array, k: number): boolean {
  Atomics.store(ctl, CTL_WORDS + k, WORKER_INSIDE);
  if (Atomics.load(ctl, CTL_STOP) === 0) return true;
  Atomics.store(ctl, CTL_WORDS + k, WORKER_LEFT);
  return false;
}

/**
 * Worker `k` will not touch shared memory again (its last access to it is done).
 *
 * @example
 * ```ts
 * import { leaveShared, sharedControl, WORKER_LEFT } from "./control.ts";
 * const ctl = sharedControl(1);
 * leaveShared(ctl, 0);
 * Atomics.load(ctl, 4) === WORKER_LEFT; // true
 * ```
 */
export function leaveShared(ctl: Int32Array, k: number): void {
  Atomics.store(ctl, CTL_WORDS + k, WORKER_LEFT);
}

/**
 * The workers (of `workers`) that may still touch shared memory: those whose presence
 * word says {@linkcode WORKER_INSIDE}. Meaningful once the stop flag is up.
 *
 * @example
 * ```ts
 * import { enterShared, requestStop, sharedControl, workersInside } from "./control.ts";
 * const ctl = sharedControl(2);
 * enterShared(ctl, 1);
 * requestStop(ctl);
 * workersInside(ctl, 2); // [1]
 * ```
 */
export function workersInside(ctl: Int32Array, workers: number): number[] {
  const inside: number[] = [];
  for (let k = 0; k < workers; k++) {
    if (Atomics.load(ctl, CTL_WORDS + k) === WORKER_INSIDE) inside.push(k);
  }
  return inside;
}

/**
 * Raises the stop flag (if it is not up yet) and waits, at most `timeoutMs`, until no
 * worker may touch shared memory. Resolves with the workers that still may (empty: the
 * memory can be released).
 *
 * @example
 * ```ts ignore
 * import { awaitWorkersLeft } from "./control.ts";
 * const stuck = await awaitWorkersLeft(ctl, 2, 1500);
 * if (stuck.length) console.error(`queue pairs ${stuck} did not stop: keep the memory`);
 * ```
 */
export async function awaitWorkersLeft(
  ctl: Int32Array,
  workers: number,
  timeoutMs: number,
): Promise<number[]> {
  requestStop(ctl);
  const until = performance.now() + timeoutMs;
  for (;;) {
    const inside = workersInside(ctl, workers);
    if (inside.length === 0 || performance.now() >= until) return inside;
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * Raises the stop flag (`how`: {@linkcode STOP_DRAIN} or {@linkcode STOP_NOW}) and wakes
 * every worker sleeping on it.
 *
 * @example
 * ```ts
 * import { CTL_STOP, requestStop, sharedControl } from "./control.ts";
 * const ctl = sharedControl();
 * requestStop(ctl);
 * Atomics.load(ctl, CTL_STOP); // 1
 * ```
 */
export function requestStop(ctl: Int32Array, how: number = STOP_DRAIN): void {
  // STOP_DRAIN never replaces STOP_NOW: once told to send nothing more, workers stay told.
  if (how === STOP_NOW) Atomics.store(ctl, CTL_STOP, STOP_NOW);
  else Atomics.compareExchange(ctl, CTL_STOP, 0, how);
  Atomics.notify(ctl, CTL_STOP);
}
