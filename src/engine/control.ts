/**
 * The control words the main thread and the forwarding workers share: an Int32Array over
 * a SharedArrayBuffer. The main thread raises the stop flag with Atomics.store and wakes
 * sleeping workers with Atomics.notify; workers read it with Atomics.load (every 64 polls)
 * and sleep on it with Atomics.wait when idle. These are the only cross-thread
 * publication points of the engine's control path.
 *
 * @module
 */

/** Index of the stop flag: 0 run, 1 stop (drain and exit). */
export const CTL_STOP = 0;
/** Words in the control array. */
export const CTL_WORDS = 4;

/**
 * A new control array (all zero: run).
 *
 * @example
 * ```ts
 * import { CTL_STOP, sharedControl } from "./control.ts";
 * const ctl = sharedControl();
 * Atomics.load(ctl, CTL_STOP); // 0
 * ```
 */
export function sharedControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS));
}

/**
 * Raises the stop flag and wakes every worker sleeping on it.
 *
 * @example
 * ```ts
 * import { CTL_STOP, requestStop, sharedControl } from "./control.ts";
 * const ctl = sharedControl();
 * requestStop(ctl);
 * Atomics.load(ctl, CTL_STOP); // 1
 * ```
 */
export function requestStop(ctl: Int32Array): void {
  Atomics.store(ctl, CTL_STOP, 1);
  Atomics.notify(ctl, CTL_STOP);
}
