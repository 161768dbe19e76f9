/**
 * l2fwd's two ports: opening them with their steering rule, closing them (each device
 * reset before its memory goes), and, with --reconnect, opening them again after a fault
 * until the devices are back (docs/reliability.md).
 *
 * @module
 */

import { type BufferPool, DriverError, openPort, type VirtioNetPort } from "../mod.ts";
import type { Run } from "./l2fwd_options.ts";

/** Descriptors per receive and transmit queue (testpmd's --rxd/--txd; default the device's). */
export interface RingSizes {
  /** Receive queue size. */
  rxQueueSize?: number;
  /** Transmit queue size. */
  txQueueSize?: number;
}

/**
 * Opens `run.ports` into `ports` (pushed one by one, so that the caller closes what did
 * open when a later one fails) and sets their steering rule. `step` runs after each.
 *
 * @example
 * ```ts ignore
 * const ports: VirtioNetPort[] = [];
 * await openPorts(run, pool, ports, () => Promise.resolve());
 * ```
 */
export async function openPorts(
  run: Run & RingSizes,
  pool: BufferPool,
  ports: VirtioNetPort[],
  step: () => Promise<void>,
): Promise<void> {
  for (const spec of run.ports) {
    ports.push(openPort(spec, {
      bind: run.bind,
      force: run.force,
      restoreDriver: run.restoreDriver,
      pool,
      queuePairs: run.queues,
      // Both ports must put frames at the same offset: no hash report (8 more bytes).
      hashReport: false,
      packedRing: run.packedRing,
      inOrder: run.inOrder,
      mergeable: run.mergeable,
      indirect: run.indirect,
      txChecksum: run.txChecksum,
      tso: run.tso,
      rxChecksum: run.rxChecksum,
      lro: run.lro,
      rxQueueSize: run.rxQueueSize,
      txQueueSize: run.txQueueSize,
    }));
    await step();
  }
  for (const p of ports) {
    if (run.steering === "single") p.steering.set({ mode: "single" });
    else if (run.steering === "rss") p.steering.set({ mode: "rss", pairs: run.queues });
    else if (run.queues > 1) p.steering.set({ mode: "auto", pairs: run.queues });
  }
  await step();
}

/**
 * Closes `ports` in reverse order and empties the array; returns the sentences of those
 * that could not be closed cleanly (e.g. a device that never confirmed its reset).
 *
 * @example
 * ```ts ignore
 * const problems = closePorts(ports);
 * if (problems.length === 0) pool.region.free();
 * ```
 */
export function closePorts(ports: VirtioNetPort[]): string[] {
  const problems: string[] = [];
  for (const p of ports.splice(0).reverse()) {
    try {
      p.close();
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return problems;
}

/**
 * Opens both ports again (see {@linkcode openPorts}), retrying every 200 ms until they open
 * or `deadline` (performance.now() ms) passes or `stop()` says so; then throws the last
 * error. What failed to open half-way is closed before the next try; when that close fails
 * (a device that did not confirm its reset, which may still use the pool), it throws that
 * at once, with `closeProblem: true` on the error.
 *
 * @example
 * ```ts ignore
 * await reopenPorts(run, pool, ports, performance.now() + 30_000, () => signalled);
 * ```
 */
export async function reopenPorts(
  run: Run & RingSizes,
  pool: BufferPool,
  ports: VirtioNetPort[],
  deadline: number,
  stop: () => boolean,
): Promise<void> {
  for (;;) {
    try {
      await openPorts(run, pool, ports, () => Promise.resolve());
      return;
    } catch (e) {
      const problems = closePorts(ports);
      if (problems.length) {
        throw Object.assign(new DriverError("DEVICE_MISBEHAVED", problems.join(" ")), {
          closeProblem: true,
        });
      }
      if (stop() || performance.now() + 200 > deadline) {
        throw e instanceof DriverError ? e : new DriverError("TRANSPORT", String(e));
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
