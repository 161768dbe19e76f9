/**
 * What the overload tests (issue 13, item 3) share: reading l2fwd's memory and stats while
 * it runs, and the closing checks that it kept its memory and accounted for every frame it
 * received.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Summary } from "../l2fwd_checks.ts";

/**
 * Resident memory of a host process, in bytes.
 *
 * @example
 * ```ts ignore
 * const before = rss(run.child.pid);
 * ```
 */
export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  assert.ok(m, `no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * l2fwd's last per-second stats line so far (`--stats json`), or null.
 *
 * @example
 * ```ts ignore
 * lastStats(run.stdoutSoFar())?.ports[0].rxPackets;
 * ```
 */
export function lastStats(stdout: string): Summary | null {
  const line = stdout.trim().split("\n").findLast((l) => l.includes('"event":"stats"'));
  return line ? JSON.parse(line) : null;
}

/**
 * Waits until l2fwd's receive counters have not moved for 3 stats lines (at most 60 s).
 *
 * @example
 * ```ts ignore
 * await quiet(run.stdoutSoFar);
 * ```
 */
export async function quiet(stdoutSoFar: () => string): Promise<void> {
  let seen = -1, still = 0;
  for (let waited = 0; still < 3 && waited < 60; waited++) {
    await new Promise((r) => setTimeout(r, 1000));
    const s = lastStats(stdoutSoFar());
    const rx = s ? s.ports.reduce((n, p) => n + p.rxPackets, 0) : -1;
    still = rx === seen ? still + 1 : 0;
    seen = rx;
  }
}

/**
 * A port's drop counters that are not zero, by name (for the report line).
 *
 * @example
 * ```ts ignore
 * dropsOf(s.ports[1]); // { dropsTxRingFull: 12 }
 * ```
 */
export function dropsOf(port: object): Record<string, number> {
  return Object.fromEntries(
    Object.entries(port).filter(([k, v]) => k.startsWith("drops") && v !== 0),
  );
}

/**
 * Checks that every frame port `inn` received left by port `out` or was dropped with a
 * reason (ring full, too long for a buffer, by the script).
 *
 * @example
 * ```ts ignore
 * assertForwardedOrDropped(summary, 0, 1);
 * ```
 */
export function assertForwardedOrDropped(s: Summary, inn: number, out: number): void {
  const rx = s.ports[inn], tx = s.ports[out];
  assert.equal(
    rx.rxPackets,
    tx.txPackets + tx.dropsTxRingFull + tx.dropsTooLong + rx.dropsScript,
    `port ${inn}: received ≠ transmitted on port ${out} + dropped`,
  );
}

/**
 * Checks that l2fwd kept its memory through the overload: every worker past its warm-up
 * and forwarding for a second after it, then no garbage collection, heap creep under 32 KiB, RSS within 16 MiB (a leak of one 64-byte object per
 * frame would be hundreds of MiB).
 *
 * @example
 * ```ts ignore
 * assertMemoryHeld(summary, rssBefore, rssAfter);
 * ```
 */
export function assertMemoryHeld(s: Summary, rssBefore: number, rssAfter: number): void {
  for (const w of s.workers) {
    // Both figures count from warm-up: without one, or nothing forwarded after it, they
    // would say nothing.
    assert.ok(w.heapWarm > 0, `worker ${w.queue} never got past its warm-up`);
    assert.ok(
      w.packets > w.warmPackets && w.nowMs - w.warmAtMs >= 1000,
      `worker ${w.queue} forwarded ${w.packets - w.warmPackets} packets in ${
        w.nowMs - w.warmAtMs
      } ms after warm-up: too short a run to tell`,
    );
    assert.equal(w.heapDrops, 0, `worker ${w.queue} collected garbage`);
    assert.ok(w.heapCreep < 32768, `worker ${w.queue}'s heap crept by ${w.heapCreep} B`);
  }
  assert.ok(rssAfter - rssBefore < 16 * 2 ** 20, `RSS grew by ${rssAfter - rssBefore} B`);
}

/**
 * The memory part of the report line: RSS before and after, heap creep and GCs per worker.
 *
 * @example
 * ```ts ignore
 * console.log(`…; ${memoryReport(summary, rssBefore, rssAfter)}`);
 * ```
 */
export function memoryReport(s: Summary, rssBefore: number, rssAfter: number): string {
  return `RSS ${(rssBefore / 2 ** 20).toFixed(1)} → ${(rssAfter / 2 ** 20).toFixed(1)} MiB; ` +
    `heap creep ${s.workers.map((w) => w.heapCreep).join(", ")} B, GCs ${
      s.workers.map((w) => w.heapDrops).join(", ")
    }`;
}
