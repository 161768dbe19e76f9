/**
 * The engine's side of a forwarding worker's messages (worker.ts lists them): waiting for
 * one, and turning an error message into a {@linkcode DriverError}.
 *
 * @module
 */

import { DriverError, type DriverErrorCode } from "../errors.ts";

/**
 * Waits for one message of `type` from `w` (or an error), at most `ms`; `what` names the
 * worker in the {@linkcode DriverError} it rejects with otherwise.
 *
 * @example
 * ```ts ignore
 * import { awaitMessage } from "./worker_messages.ts";
 * await awaitMessage(worker, "ready", 60000, "The worker of queue pair 0");
 * ```
 */
export function awaitMessage(w: Worker, type: string, ms: number, what: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(
        new DriverError(
          "WORKER",
          `${what} did not start within ${ms} ms: the system is overloaded; try again.`,
        ),
      );
    }, ms);
    const onMessage = (e: MessageEvent) => {
      const m = e.data as { type: string; code?: string; message?: string };
      if (m.type === type) {
        cleanup();
        resolve(m);
      } else if (m.type === "error") {
        cleanup();
        reject(workerError(what, m));
      }
    };
    const onError = (e: ErrorEvent) => {
      e.preventDefault();
      cleanup();
      reject(new DriverError("WORKER", `${what} failed to load: ${e.message}.`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      w.removeEventListener("message", onMessage);
      w.removeEventListener("error", onError);
    };
    w.addEventListener("message", onMessage);
    w.addEventListener("error", onError);
  });
}

/**
 * The {@linkcode DriverError} for a worker's `{ type: "error", code, message }` message.
 *
 * @example
 * ```ts
 * import { workerError } from "./worker_messages.ts";
 * workerError("The worker of queue pair 0", { code: "TRANSPORT", message: "boom" }).message;
 * // "The worker of queue pair 0 stopped: boom."
 * ```
 */
export function workerError(what: string, m: { code?: string; message?: string }): DriverError {
  const msg = (m.message ?? "unknown error").replace(/\.?$/, "");
  return new DriverError(
    (m.code ?? "WORKER") as DriverErrorCode,
    `${what} stopped: ${msg}.`,
  );
}
