/**
 * Errors the driver reports to users: one sentence saying what is wrong and how to fix it,
 * and a stable code a program can test.
 *
 * @module
 */

/** Stable error codes; the examples exit non-zero with the message. */
export type DriverErrorCode =
  | "BAD_ADDRESS"
  | "NO_DEVICE"
  | "NOT_VIRTIO_NET"
  | "BOUND_TO_KERNEL_DRIVER"
  | "NO_VFIO_PCI"
  | "GROUP_NOT_VIABLE"
  | "PERMISSION"
  | "VFIO"
  | "MISSING_FEATURE"
  | "DEVICE_REFUSED"
  | "DEVICE_MISBEHAVED"
  | "DMA"
  | "TRANSPORT"
  | "UNSUPPORTED"
  | "BAD_ARGUMENT"
  | "WORKER";

/**
 * An error a user can act on. `message` is one sentence naming the problem and the fix.
 *
 * @example
 * ```ts
 * import { DriverError } from "./errors.ts";
 * try {
 *   throw new DriverError("BAD_ADDRESS", "'0000:zz' is not a PCI address: write it as 0000:00:04.0.");
 * } catch (e) {
 *   if (e instanceof DriverError) console.error(e.message);
 * }
 * ```
 */
export class DriverError extends Error {
  /** What kind of problem this is. */
  readonly code: DriverErrorCode;
  /** Creates the error; `cause` keeps the underlying system error, if any. */
  constructor(code: DriverErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DriverError";
    this.code = code;
  }
}

/**
 * A stack of release actions run in reverse order: what was taken is given back, also when
 * setup fails half-way. Errors thrown by release actions are collected, not lost.
 *
 * @example
 * ```ts
 * import { ReleaseStack } from "./errors.ts";
 * const stack = new ReleaseStack();
 * stack.push("close fd", () => {});
 * stack.releaseAll(); // runs the actions last-in first-out
 * ```
 */
export class ReleaseStack {
  #actions: { what: string; fn: () => void }[] = [];

  /** Adds a release action. */
  push(what: string, fn: () => void): void {
    this.#actions.push({ what, fn });
  }

  /** Number of pending actions. */
  get size(): number {
    return this.#actions.length;
  }

  /** Runs every action last-in first-out; returns the failures (and never throws). */
  releaseAll(): string[] {
    const failures: string[] = [];
    while (this.#actions.length) {
      const { what, fn } = this.#actions.pop()!;
      try {
        fn();
      } catch (e) {
        failures.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return failures;
  }
}
