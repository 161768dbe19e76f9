/**
 * The VM bed part of `deno task bench`: DPDK's testpmd (io, then io retry) and our l2fwd
 * (default options) forward one-way UDP traffic host → NIC 0 → front-end → NIC 1 → host in
 * the VM bed (tests/bed/vm.ts: TCG guest, real VFIO inside it), one after the other in one
 * boot per queue-pair count (1, then 2). For each: the zero-loss rate by an RFC 2544 search,
 * the peak forwarded rate, and latency at half its own zero-loss rate and at the rate of
 * the boot's first front-end, so that every front-end is also timed at one common rate.
 * bench/tap_trials.ts runs the trials and says what is counted lost.
 *
 * With 2 queue pairs the 1,024 flows spread over both by the taps' flow hash; l2fwd runs a
 * worker per pair, testpmd a forwarding lcore per pair, both on the guest's two vCPUs.
 *
 * @example
 * ```sh
 * deno run --allow-all bench/vm_bed.ts --trial-seconds 5   # root; prints JSON
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startTestpmd } from "../tests/bed/testpmd.ts";
import { shellQuote, VmBed } from "../tests/bed/vm.ts";
import { summaryOf } from "../tests/l2fwd_checks.ts";
import {
  type RateSearch,
  SEARCH_CLI_OPTIONS,
  searchOptionsFrom,
  searchRates,
  trialFrames,
} from "./tap_trials.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/**
 * A front-end the VM bed measures.
 *
 * @example
 * ```ts
 * import type { VmFrontEnd } from "./vm_bed.ts";
 * const fe: VmFrontEnd = "ours (l2fwd)";
 * ```
 */
export type VmFrontEnd = "DPDK testpmd (io)" | "DPDK testpmd (io retry)" | "ours (l2fwd)";

/** Every front-end, in the order a boot measures them by default. */
export const VM_FRONT_ENDS: readonly VmFrontEnd[] = [
  "DPDK testpmd (io)",
  "DPDK testpmd (io retry)",
  "ours (l2fwd)",
];

/**
 * One boot of the bed: its queue pairs per NIC and the front-ends measured in it, in order.
 *
 * @example
 * ```ts
 * import type { VmBedConfig } from "./vm_bed.ts";
 * const twoPairs: VmBedConfig = { queuePairs: 2, frontEnds: ["DPDK testpmd (io retry)", "ours (l2fwd)"] };
 * ```
 */
export interface VmBedConfig {
  /** Queue pairs per NIC, 1 or 2. */
  queuePairs: 1 | 2;
  /** Front-ends in this order; the first one's latency rate is the boot's common rate. */
  frontEnds: VmFrontEnd[];
}

/** What `deno task bench` measures by default: 3 front-ends at 1 queue pair, 2 at 2. */
export const DEFAULT_VM_CONFIGS: readonly VmBedConfig[] = [
  { queuePairs: 1, frontEnds: [...VM_FRONT_ENDS] },
  { queuePairs: 2, frontEnds: ["DPDK testpmd (io retry)", "ours (l2fwd)"] },
];

/**
 * Options of {@linkcode measureVmBed}.
 *
 * @example
 * ```ts
 * import type { VmBedOptions } from "./vm_bed.ts";
 * const quick: VmBedOptions = {
 *   trialSeconds: 2,
 *   maxTrials: 4,
 *   configs: [{ queuePairs: 1, frontEnds: ["ours (l2fwd)"] }],
 * };
 * ```
 */
export interface VmBedOptions {
  /** Seconds of traffic per trial (default 5). */
  trialSeconds?: number;
  /** Lowest offered rate the search tries, frames/s (default 1,000). */
  minRate?: number;
  /** Highest offered rate, and the first tried, frames/s (default 200,000). */
  maxRate?: number;
  /** Trials per front-end at most, the latency trials not counted (default 10). */
  maxTrials?: number;
  /** Boots and their front-ends (default {@linkcode DEFAULT_VM_CONFIGS}). */
  configs?: readonly VmBedConfig[];
  /** Measure latency (default true). */
  latency?: boolean;
  /** Called with a line of progress. */
  log?: (line: string) => void;
}

/**
 * What one front-end did in one boot. `latency[0]` is at half its zero-loss rate; a
 * second entry, when there is one, at the boot's common rate.
 *
 * @example
 * ```ts
 * import type { VmBedResult } from "./vm_bed.ts";
 * const line = (r: VmBedResult) => `${r.frontEnd}: ${r.zeroLossRate}/s without loss`;
 * ```
 */
export interface VmBedResult extends RateSearch {
  /** Which front-end. */
  frontEnd: VmFrontEnd;
  /** Queue pairs per NIC. */
  queuePairs: number;
  /** The boot's common latency rate (half its first front-end's zero-loss rate; 0: none). */
  commonLatencyRate: number;
  /** Start of the front-end to forwarding (ms; l2fwd's includes its pre-warming). */
  startMs: number;
  /** The front-end's own counters at its stop (testpmd's forward statistics, l2fwd's summary). */
  frontEndStats: unknown;
}

/** Starts a front-end in the guest; resolves once it forwards, to the function that stops it. */
async function startFrontEnd(
  bed: VmBed,
  fe: VmFrontEnd,
  queuePairs: 1 | 2,
): Promise<() => Promise<unknown>> {
  const ports: [string, string] = [bed.nicAddress(0), bed.nicAddress(1)];
  if (fe !== "ours (l2fwd)") {
    const retry = fe === "DPDK testpmd (io retry)";
    const tp = await startTestpmd(bed, {
      ports,
      queues: queuePairs,
      retry,
      forwardingCores: queuePairs,
    });
    return async () => (await tp.stop()).stats;
  }
  const cmd = `deno run --quiet --allow-ffi ${shellQuote(`${ROOT}/examples/l2fwd.ts`)} ` +
    `--bind --stats json --queues ${queuePairs} ${ports.join(" ")}`;
  const p = await bed.spawn(`${cmd} & pid=$!; echo "l2fwd pid $pid" >&2; wait $pid`);
  await p.waitForOutput(/port 1: /, 180000, "stderr");
  const pid = (await p.stderr()).match(/l2fwd pid (\d+)/)![1];
  return async () => {
    await bed.exec(`kill -INT ${pid}`);
    const r = await p.wait(30000);
    if (r.code !== 0) throw new Error(`l2fwd exited ${r.code}: ${r.stderr.slice(-1500)}`);
    const { ports, workers } = summaryOf(r.stdout);
    return { ports, workers };
  };
}

/**
 * Boots the VM bed once per config (2 NICs with its queue pairs) and measures each
 * front-end in turn: zero-loss rate (RFC 2544 search), peak forwarded rate and latency.
 * Needs root, the bed's QEMU and DPDK (tools/setup.sh). About 1½ minutes per front-end.
 *
 * @example
 * ```ts ignore
 * import { measureVmBed } from "./vm_bed.ts";
 * const results = await measureVmBed({ trialSeconds: 5, log: console.error });
 * for (const r of results) console.log(r.queuePairs, r.frontEnd, r.zeroLossRate, r.latency[0]?.p99Us);
 * ```
 */
export async function measureVmBed(opts: VmBedOptions = {}): Promise<VmBedResult[]> {
  const trialSeconds = opts.trialSeconds ?? 5;
  if (!(trialSeconds > 0)) throw new RangeError(`trialSeconds must be > 0 (got ${trialSeconds})`);
  const log = opts.log ?? (() => {});
  const tags = { next: 1 };
  const results: VmBedResult[] = [];
  for (const config of opts.configs ?? DEFAULT_VM_CONFIGS) {
    const t0 = performance.now();
    // Huge pages for testpmd's pool (--in-memory); l2fwd takes what is left or plain pages.
    const bed = await VmBed.start({ nics: 2, queuePairs: config.queuePairs, hugepages: 256 });
    try {
      log(
        `VM bed, ${config.queuePairs} queue pair(s): up after ${
          Math.round(performance.now() - t0)
        } ms`,
      );
      const mod = await bed.exec("modprobe vfio-pci && modprobe vfio_iommu_type1");
      if (mod.code !== 0) throw new Error(`modprobe vfio-pci in the guest: ${mod.stderr}`);
      const pool = trialFrames(bed.nicMac(0));
      let common = 0;
      for (const frontEnd of config.frontEnds) {
        const label = `${frontEnd}, ${config.queuePairs} qp`;
        const t1 = performance.now();
        const stop = await startFrontEnd(bed, frontEnd, config.queuePairs);
        const startMs = Math.round(performance.now() - t1);
        log(`${label}: forwarding after ${startMs} ms`);
        let found: RateSearch;
        try {
          found = await searchRates(bed, pool, {
            label,
            trialSeconds,
            minRate: opts.minRate,
            maxRate: opts.maxRate,
            maxTrials: opts.maxTrials,
            tags,
            log,
            latencyRates: (z) => {
              if (opts.latency === false) return [];
              const own = Math.round(z / 2);
              if (common === 0) common = own;
              return own === common ? [own] : [own, common];
            },
          });
        } catch (e) {
          await stop().catch(() => {}); // it holds the NICs: the next front-end needs them
          throw e;
        }
        const frontEndStats = await stop();
        results.push({
          frontEnd,
          queuePairs: config.queuePairs,
          commonLatencyRate: common,
          startMs,
          frontEndStats,
          ...found,
        });
      }
    } finally {
      await bed.close();
    }
    log(
      `VM bed, ${config.queuePairs} queue pair(s): done after ${
        Math.round(performance.now() - t0)
      } ms`,
    );
  }
  return results;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      ...SEARCH_CLI_OPTIONS,
      "queue-pairs": { type: "string" },
      "front-ends": { type: "string" },
      "no-latency": { type: "boolean", default: false },
    },
  });
  const names: Record<string, VmFrontEnd> = {
    dpdk: "DPDK testpmd (io)",
    "dpdk-retry": "DPDK testpmd (io retry)",
    ours: "ours (l2fwd)",
  };
  const frontEnds = values["front-ends"]?.split(",").map((n) => {
    if (!names[n]) throw new Error(`--front-ends: "${n}" is none of dpdk, dpdk-retry, ours`);
    return names[n];
  });
  const pairs = values["queue-pairs"]?.split(",").map((n) => {
    if (n !== "1" && n !== "2") throw new Error(`--queue-pairs: "${n}" is neither 1 nor 2`);
    return Number(n) as 1 | 2;
  });
  const configs = frontEnds || pairs
    ? (pairs ?? [1, 2]).map((queuePairs) => ({
      queuePairs,
      frontEnds: frontEnds ??
        DEFAULT_VM_CONFIGS.find((c) => c.queuePairs === queuePairs)!.frontEnds,
    }))
    : undefined;
  const results = await measureVmBed({
    ...searchOptionsFrom(values),
    configs,
    latency: !values["no-latency"],
    log: (l) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${l}`),
  });
  console.log(JSON.stringify(results, null, 2));
}
