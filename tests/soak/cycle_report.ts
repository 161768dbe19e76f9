/**
 * What tests/soak/port_cycles.ts reports, and the leak checks on it: after the cycles the
 * process holds exactly the fds, memfds, eventfds, VFIO fds, driver mappings, huge pages
 * and IOMMU-pinned memory it held after the warm-up, the same IOVAs, and resident memory
 * and V8 heap within a tolerance.
 *
 * @module
 */

import assert from "node:assert/strict";
import { EXACT_FIELDS, formatResources, leakedItems, type Resources } from "./process_resources.ts";

/** The final JSON line of port_cycles.ts. */
export interface CycleReport {
  ports: string[];
  cycles: number;
  warmup: number;
  queuePairs: number;
  warmupMs: number;
  cyclesMs: number;
  /** Before the first open. */
  start: Resources;
  /** After the warm-up cycles: what the measured cycles are compared with. */
  warm: Resources;
  /** Half-way through the measured cycles. */
  mid: Resources;
  /** While the last cycle's ports were open. */
  open: Resources;
  /** After the last close. */
  after: Resources;
  /** RSS in KiB at every tenth of the measured cycles, then after. */
  rssTrend: number[];
  /** V8's used heap in KiB (after a full GC) at the same points. */
  heapTrend: number[];
  iovasFirst: number[];
  iovasLast: number[];
  driversBefore: (string | null)[];
  driversAfter: (string | null)[];
}

/**
 * Resident memory may grow this much over the measured cycles (each reading after a full
 * GC), and only RSS_TOLERANCE_SECOND_HALF_KIB of it in their second half. Measured: the
 * warm-up's first cycles add 8–15 MiB (V8 compiles, its heap and the allocator grow); RSS
 * then still settles, mostly in anonymous memory while V8's heap stays within 0.5 MiB,
 * and stays flat after: on the host within ~50 cycles (vfio-user, 200 cycles: +5.5 MiB,
 * +0.4 MiB in the second half; vhost-user, 1,000 cycles: +3.4 MiB, +0.7 MiB in the last
 * 500), in the TCG guest within ~150 (400 cycles: +14 MiB, +0.9 MiB in the second half;
 * 200 cycles: +13.1 MiB, +3.1 MiB). A port's DMA region is at least 8 MiB (the default
 * pool: 4,096 buffers of 2 KiB), so a region leaked per cycle adds 80 MiB over the
 * shortest run (10 cycles), 40 MiB in its second half: neither tolerance can hide one.
 * Huge-page regions, not in RSS, are compared exactly (HugetlbPages).
 */
export const RSS_TOLERANCE_KIB = 24 * 1024;
/** See RSS_TOLERANCE_KIB. */
export const RSS_TOLERANCE_SECOND_HALF_KIB = 8 * 1024;

/**
 * V8's used heap after a full GC may grow this much: measured +0.3 to +0.6 MiB over 200
 * to 1,000 cycles, settling early as RSS does. A port object kept alive after close
 * (queues, their typed arrays, counters) holds ~30 KiB (measured), so one kept per
 * cycle shows at full length (200 cycles: ≥ 5.8 MiB); at the reduced length only bigger
 * leaks do.
 */
export const HEAP_TOLERANCE_KIB = 2048;

/** Prints the figures of a run (what `deno task soak` shows). */
export function printReport(what: string, r: CycleReport): void {
  const s = (ms: number) => (ms / 1000).toFixed(1);
  console.log(
    `${what}: ${r.cycles} cycles of ${r.ports.length} port(s) × ${r.queuePairs} pair(s) after ${r.warmup} warm-up` +
      ` (${s(r.warmupMs)} s + ${s(r.cyclesMs)} s, ${
        (r.cyclesMs / r.cycles).toFixed(0)
      } ms a cycle)`,
  );
  console.log(`  start  ${formatResources(r.start)}`);
  console.log(`  warm   ${formatResources(r.warm)}`);
  const once = leakedItems(r.start, r.warm);
  if (once.length) console.log(`  (the warm-up kept: ${once.join("; ")})`);
  console.log(`  mid    ${formatResources(r.mid)}`);
  console.log(`  open   ${formatResources(r.open)}`);
  console.log(`  after  ${formatResources(r.after)}`);
  console.log(`  RSS KiB by tenths: ${r.rssTrend.join(" ")}`);
  console.log(`  heap KiB by tenths: ${r.heapTrend.join(" ")}`);
  console.log(`  IOVAs first ${hex(r.iovasFirst)} last ${hex(r.iovasLast)}`);
  if (r.driversBefore.some((d) => d !== null)) {
    console.log(
      `  drivers before ${r.driversBefore.join(", ")} after ${r.driversAfter.join(", ")}`,
    );
  }
}

function hex(iovas: number[]): string {
  return iovas.map((i) => `0x${i.toString(16)}`).join(", ");
}

/**
 * Asserts that the cycles leaked nothing: exact counts back to the warm-up's, the
 * ports' resources seen while open (so the readings are not blind), IOVAs reused, RSS
 * and heap within their tolerances.
 */
export function assertNoLeak(r: CycleReport): void {
  assert.ok(r.cycles >= 10, "too few cycles to tell a leaked region from RSS noise");
  const leaked = leakedItems(r.warm, r.after);
  for (const f of EXACT_FIELDS) {
    assert.equal(r.after[f], r.warm[f], `${f} after ${r.cycles} cycles; new: ${leaked.join("; ")}`);
  }
  assert.ok(r.open.memfds > r.warm.memfds, "the open ports' DMA memfds were seen");
  assert.ok(r.open.driverMaps > r.warm.driverMaps, "the open ports' DMA mappings were seen");
  assert.deepEqual(r.iovasLast, r.iovasFirst, "closing gave the DMA memory's IOVAs back");
  const rss = r.after.rssKiB - r.warm.rssKiB;
  assert.ok(
    rss <= RSS_TOLERANCE_KIB,
    `RSS grew ${rss} KiB over ${r.cycles} cycles (tolerance ${RSS_TOLERANCE_KIB}): ${r.rssTrend}`,
  );
  const late = r.after.rssKiB - r.mid.rssKiB;
  assert.ok(
    late <= RSS_TOLERANCE_SECOND_HALF_KIB,
    `RSS grew ${late} KiB over the last ${
      r.cycles - Math.floor(r.cycles / 2)
    } cycles (tolerance ${RSS_TOLERANCE_SECOND_HALF_KIB}): ${r.rssTrend}`,
  );
  const heap = r.heapTrend.at(-1)! - r.heapTrend[0];
  assert.ok(
    heap <= HEAP_TOLERANCE_KIB,
    `V8 heap grew ${heap} KiB over ${r.cycles} cycles (tolerance ${HEAP_TOLERANCE_KIB}): ${r.heapTrend}`,
  );
}
