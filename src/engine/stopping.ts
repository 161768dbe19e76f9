/**
 * Stopping the forwarding workers (main thread side), and keeping the memory a worker that
 * did not stop may still touch. The stop flag and the presence words are in control.ts.
 *
 * What a worker may legitimately spend once the stop flag is up: the rest of one poll(2)
 * slice of a vfio-user notification waiting for room (`NOTIFY_POLL_SLICE_MS` in
 * notifier.ts: the wait reads the flag between slices), at most 63 more polls before the loop reads
 * the flag, then its drain (`WORKER_DRAIN_MS` in control.ts). {@linkcode STOP_TIMEOUT_MS}
 * leaves room above that for a loaded machine; past it the worker counts as stuck.
 *
 * @module
 */

import type { BufferPool } from "../dma/buffer_pool.ts";
import type { VirtioNetPort } from "../net/port.ts";
import { awaitWorkersLeft } from "./control.ts";
import type { EngineSnapshot } from "./snapshot.ts";

/**
 * Default time {@linkcode stopWorkers} gives the workers to confirm they left (ms): well
 * above the drain plus one notify poll slice (510 ms), for a loaded machine.
 */
export const STOP_TIMEOUT_MS = 1500;

/**
 * What the engine adds to {@linkcode STOP_TIMEOUT_MS} with its `heapAudit` option (ms):
 * each worker forces a full GC as it stops, 0.3–0.6 s under TCG emulation and several
 * times that on a loaded machine.
 */
export const HEAP_AUDIT_STOP_MS = 10_000;

/** What {@linkcode ForwardingEngine.stop} resolves with: the final counters, and whether the memory can go. */
export interface EngineStopped extends EngineSnapshot {
  /**
   * True when a worker did not confirm in time that it left its loop for good: it may
   * still touch the rings, the packet buffers and the notify registers. The engine then
   * retained the ports' DMA memory and devices and the shared pool
   * (`port.retainMemory()`, `pool.region.retain()`): closing the
   * ports still resets the devices but keeps the rest (and throws), and
   * `pool.region.free()` does nothing. Let the process exit, which releases them.
   */
  unsafeToRelease: boolean;
  /** The queue pairs whose workers did not confirm (empty when none). */
  stuckWorkers: number[];
}

/**
 * Raises the stop flag, waits (at most `timeoutMs`) until every worker has confirmed it
 * left shared memory, lets their last messages (`finished`) arrive, terminates them, and,
 * when some did not confirm, retains the ports' and the pool's memory. Resolves with the
 * queue pairs whose workers did not confirm (empty: the memory can be released).
 *
 * @example
 * ```ts ignore
 * import { stopWorkers } from "./stopping.ts";
 * const stuck = await stopWorkers({ control, workers, ports, pool });
 * if (stuck.length) console.error("the memory stays mapped until the process exits");
 * ```
 */
export async function stopWorkers(w: {
  control: Int32Array;
  workers: readonly Worker[];
  ports: readonly VirtioNetPort[];
  pool: BufferPool;
  /** Resolve when each worker's "done" or "error" arrived. */
  finished?: readonly Promise<unknown>[];
  timeoutMs?: number;
}): Promise<number[]> {
  const stuck = await awaitWorkersLeft(w.control, w.workers.length, w.timeoutMs ?? STOP_TIMEOUT_MS);
  // A worker that left has posted "done" or "error" last: let those arrive (briefly).
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settle = new Promise((r) => timer = setTimeout(r, stuck.length ? 0 : 100));
  await Promise.race([Promise.all(w.finished ?? []), settle]);
  clearTimeout(timer);
  for (const worker of w.workers) worker.terminate();
  if (stuck.length) retainMemory(w.ports, w.pool, stuck);
  return stuck;
}

/**
 * Keeps the memory workers `stuck` may still touch: the ports' DMA memory and devices, and
 * the shared pool, until the process exits.
 */
function retainMemory(ports: readonly VirtioNetPort[], pool: BufferPool, stuck: number[]): void {
  const reason = `the forwarding worker${stuck.length > 1 ? "s" : ""} of queue pair${
    stuck.length > 1 ? "s" : ""
  } ${stuck.join(", ")} did not confirm ${stuck.length > 1 ? "they" : "it"} stopped`;
  for (const p of ports) p.retainMemory(reason);
  pool.region.retain(reason);
}
