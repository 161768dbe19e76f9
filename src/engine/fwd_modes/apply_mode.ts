/**
 * The forwarder's one call into a built-in forwarding mode (modes.ts): the mode's work
 * on one frame and its verdict. Imported by the data path once per ring format
 * (worker_sources.ts's `workerCopied`), so each copy has its own type feedback.
 *
 * @module
 */

import { fiveTupleSwap } from "./five_tuple_swap.ts";
import { icmpEcho } from "./icmp_echo.ts";
import { swapMacs } from "./mac_swap.ts";
import {
  MODE_5TSWAP,
  MODE_CONSUME,
  MODE_FORWARD,
  MODE_ICMPECHO,
  MODE_MACSWAP,
  MODE_RXONLY,
} from "./modes.ts";

/**
 * Applies mode `mode` (a MODE_ number) to the frame at `off` in `d`, of which `avail`
 * bytes are there (a frame that spans buffers: its first buffer's, its headers), for a
 * frame received on the port whose MAC is `mac`. Returns the verdict: MODE_FORWARD,
 * MODE_BOUNCE, MODE_DROP or MODE_CONSUME. "io" and "mac" forward unchanged here (the
 * forwarder rewrites MACs as it queues a frame for "mac").
 *
 * @example
 * ```ts
 * import { applyMode } from "./apply_mode.ts";
 * import { MODE_FORWARD, MODE_MACSWAP } from "./modes.ts";
 * const f = Uint8Array.from({ length: 60 }, (_, i) => i);
 * applyMode(MODE_MACSWAP, f, 0, 60, new Uint8Array(6)) === MODE_FORWARD; // true
 * f[0]; // 6
 * ```
 */
export function applyMode(
  mode: number,
  d: Uint8Array,
  off: number,
  avail: number,
  mac: Uint8Array,
): number {
  if (mode === MODE_MACSWAP) {
    if (avail >= 12) swapMacs(d, off);
    return MODE_FORWARD;
  }
  if (mode === MODE_5TSWAP) {
    fiveTupleSwap(d, off, avail);
    return MODE_FORWARD;
  }
  if (mode === MODE_RXONLY) return MODE_CONSUME;
  if (mode === MODE_ICMPECHO) return icmpEcho(d, off, avail, mac);
  return MODE_FORWARD;
}
