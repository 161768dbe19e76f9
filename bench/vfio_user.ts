/**
 * The vfio-user bed part of `deno task bench`: our l2fwd on the host drives two ports,
 * each a QEMU vfio-user server with 1 queue pair on a tap (tests/bed/vfio_user_bed.ts,
 * no VM), and forwards one-way UDP traffic host → tap 0 → port 0 → l2fwd → port 1 → tap 1
 * → host. The zero-loss rate (RFC 2544 search), the peak and latency come from
 * bench/tap_trials.ts, as in the VM bed; with them, per trial, the notifications our
 * driver sent per 1,000 frames forwarded. Each is a VFIO_USER_REGION_WRITE message to the
 * server (QEMU 7.2 maps no notify region), so their number is what this transport costs.
 * Ours only: DPDK has no vfio-user client for virtio-net to compare with.
 *
 * @example
 * ```sh
 * deno run --allow-all bench/vfio_user.ts --trial-seconds 5   # root; prints JSON
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startHostL2fwd } from "../tests/bed/host_l2fwd.ts";
import { VfioUserBed } from "../tests/bed/vfio_user_bed.ts";
import { summaryOf } from "../tests/l2fwd_checks.ts";
import {
  type RateSearch,
  type RateTrial,
  SEARCH_CLI_OPTIONS,
  searchOptionsFrom,
  searchRates,
  trialFrames,
} from "./tap_trials.ts";

/**
 * Options of {@linkcode measureVfioUserBed}.
 *
 * @example
 * ```ts
 * import type { VfioUserBenchOptions } from "./vfio_user.ts";
 * const quick: VfioUserBenchOptions = { trialSeconds: 2, maxTrials: 4 };
 * ```
 */
export interface VfioUserBenchOptions {
  /** Seconds of traffic per trial (default 5). */
  trialSeconds?: number;
  /** Lowest offered rate the search tries, frames/s (default 1,000). */
  minRate?: number;
  /** Highest offered rate, and the first tried, frames/s (default 200,000). */
  maxRate?: number;
  /** Trials at most, the latency trial not counted (default 10). */
  maxTrials?: number;
  /** Called with a line of progress. */
  log?: (line: string) => void;
}

/**
 * What our l2fwd did in the vfio-user bed. Each trial's `counters` are l2fwd's over it:
 * `rxPackets`, `txPackets`, `rxKicks`, `txKicks` (notifications sent: receive buffers made
 * available, frames to send) and `kicksSuppressed` (publications the device asked not to
 * be told of), summed over both ports.
 *
 * @example
 * ```ts
 * import type { VfioUserBedResult } from "./vfio_user.ts";
 * const line = (r: VfioUserBedResult) => `${r.notificationsPer1000} notifications a 1,000 frames`;
 * ```
 */
export interface VfioUserBedResult extends RateSearch {
  /** Always ours: there is no other front-end here. */
  frontEnd: "ours (l2fwd)";
  /** Queue pairs per port. */
  queuePairs: 1;
  /** Notifications sent per 1,000 frames forwarded in the zero-loss trial (NaN: none passed). */
  notificationsPer1000: number;
  /** Start of l2fwd to forwarding (ms, its pre-warming included). */
  startMs: number;
  /** l2fwd's summary at its stop, per port. */
  frontEndStats: unknown;
}

/** Counter names summed over the ports from l2fwd's JSON lines. */
const COUNTERS = ["rxPackets", "txPackets", "rxKicks", "txKicks", "kicksSuppressed"] as const;

/**
 * Notifications (both kinds) per 1,000 frames sent in `trial`; NaN without counters or frames.
 *
 * @example
 * ```ts
 * import { notificationsPer1000 } from "./vfio_user.ts";
 * const c = { rxPackets: 5000, txPackets: 5000, rxKicks: 10, txKicks: 15, kicksSuppressed: 80 };
 * notificationsPer1000({ counters: c }); // 5
 * ```
 */
export function notificationsPer1000(trial: Pick<RateTrial, "counters">): number {
  const c = trial.counters;
  if (!c || !(c.txPackets > 0)) return NaN;
  return ((c.rxKicks + c.txKicks) / c.txPackets) * 1000;
}

/**
 * Starts the bed (2 ports, 1 queue pair each) and our l2fwd on it, and measures: zero-loss
 * rate, peak, latency at half the zero-loss rate, notifications per 1,000 frames. Needs
 * root and the bed's QEMU (tools/build_bed_qemu.sh). About 1½ minutes.
 *
 * @example
 * ```ts ignore
 * import { measureVfioUserBed } from "./vfio_user.ts";
 * const r = await measureVfioUserBed({ trialSeconds: 5, log: console.error });
 * console.log(r.zeroLossRate, r.notificationsPer1000);
 * ```
 */
export async function measureVfioUserBed(
  opts: VfioUserBenchOptions = {},
): Promise<VfioUserBedResult> {
  const log = opts.log ?? (() => {});
  await using bed = await VfioUserBed.start({ ports: 2, queues: 1 });
  const t0 = performance.now();
  const run = await startHostL2fwd(bed, []);
  const startMs = Math.round(performance.now() - t0);
  log(`vfio-user bed: l2fwd forwarding after ${startMs} ms`);
  // l2fwd prints its counters once a second: a trial's figures are those of the first
  // line printed after the taps went quiet (tap_trials waits for that), minus the same
  // before it.
  const counters = async (): Promise<Record<string, number>> => {
    const lines = () =>
      run.stdoutSoFar().split("\n").filter((l) => l.startsWith('{"event":"stats"'));
    const seen = lines().length;
    for (const end = performance.now() + 5000; lines().length <= seen;) {
      if (performance.now() > end) throw new Error("l2fwd printed no statistics for 5 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    const ports: Record<string, number>[] = JSON.parse(lines().at(-1)!).ports;
    return Object.fromEntries(COUNTERS.map((k) => [k, ports.reduce((a, p) => a + p[k], 0)]));
  };
  let found: RateSearch;
  try {
    found = await searchRates(bed, trialFrames(bed.nicMac(0)), {
      label: "ours (l2fwd), vfio-user",
      trialSeconds: opts.trialSeconds ?? 5,
      minRate: opts.minRate,
      maxRate: opts.maxRate,
      maxTrials: opts.maxTrials,
      counters,
      log,
    });
  } catch (e) {
    await run.interrupt().catch(() => {});
    throw e;
  }
  const end = await run.interrupt();
  if (end.code !== 0) throw new Error(`l2fwd exited ${end.code}: ${end.stderr.slice(-1500)}`);
  const s = summaryOf(end.stdout);
  const best = found.trials[found.zeroLossTrial];
  return {
    frontEnd: "ours (l2fwd)",
    queuePairs: 1,
    notificationsPer1000: best ? notificationsPer1000(best) : NaN,
    startMs,
    frontEndStats: { ports: s.ports.map(({ queues: _, ...p }) => p), workers: s.workers },
    ...found,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: SEARCH_CLI_OPTIONS });
  const result = await measureVfioUserBed({
    ...searchOptionsFrom(values),
    log: (l) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${l}`),
  });
  console.log(JSON.stringify(result, null, 2));
}
