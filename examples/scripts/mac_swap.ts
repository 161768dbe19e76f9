/**
 * l2fwd script: swaps the destination and source MAC addresses of every frame, as DPDK
 * testpmd's macswap mode does, then forwards it to the other port (or, with
 * `--script-arg bounce=1`, sends it back out of the port it came in on).
 *
 *     deno run --allow-ffi --allow-read=examples/scripts/mac_swap.ts examples/l2fwd.ts \
 *       --script examples/scripts/mac_swap.ts PORT0 PORT1
 *
 * Counters: "swapped" (frames whose MACs were swapped).
 *
 * @example
 * ```ts ignore
 * // Run by every l2fwd worker for each received burst:
 * handleBurst(burst); // burst.data now holds each frame with its MACs swapped
 * ```
 *
 * @module
 */

import type { Burst, ScriptInit } from "../../mod.ts";

/**
 * The script's counters (summed over workers in l2fwd's statistics).
 *
 * @example
 * ```ts ignore
 * counters; // ["swapped"]: l2fwd prints "script":{"counters":{"swapped":N}}
 * ```
 */
export const counters = ["swapped"];

/** Verdict: BOUNCE (2) with bounce=1, else FORWARD (0). See src/engine/script_api.ts. */
let verdict = 0;

/**
 * Reads `bounce=1`.
 *
 * @example
 * ```ts ignore
 * init({ queue: 0, workers: 2, ports: 2, macs: [], args: { bounce: "1" } });
 * ```
 */
export function init(init: ScriptInit): void {
  verdict = init.args.bounce === "1" ? 2 : 0;
}

/**
 * Swaps bytes 0-5 (destination) with 6-11 (source) of every frame (IEEE 802.3 §3.2).
 *
 * @example
 * ```ts ignore
 * handleBurst(burst); // every frame of the burst now has its MACs swapped
 * ```
 */
export function handleBurst(b: Burst): void {
  const d = b.data, offsets = b.offsets, verdicts = b.verdicts;
  for (let i = 0; i < b.count; i++) {
    const o = offsets[i];
    for (let j = 0; j < 6; j++) {
      const t = d[o + j];
      d[o + j] = d[o + 6 + j];
      d[o + 6 + j] = t;
    }
    verdicts[i] = verdict;
  }
  b.counters[0] += b.count;
}
