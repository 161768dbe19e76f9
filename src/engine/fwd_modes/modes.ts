/**
 * The engine's built-in forwarding modes, as DPDK testpmd's `set fwd MODE`: their names,
 * the numbers the forwarder switches on, and the verdicts a mode gives each frame
 * (apply_mode.ts). A new mode (a generator such as txonly) adds its name to
 * {@linkcode FORWARD_MODES} and a number below; the rest of the engine takes the list.
 *
 * @module
 */

/**
 * The mode names: "io" forwards frames as they are (the default); "mac" rewrites the
 * MACs as DPDK's l2fwd (source: the output port's, destination 02:00:00:00:00:<port>);
 * "macswap" swaps destination and source MAC; "5tswap" swaps MACs, IPv4/IPv6 addresses
 * and TCP/UDP/SCTP ports; "rxonly" receives, counts and frees every frame; "icmpecho"
 * answers ARP requests and ICMPv4 echo requests out of the port they came in on.
 *
 * @example
 * ```ts
 * import { FORWARD_MODES } from "./modes.ts";
 * FORWARD_MODES.includes("macswap"); // true
 * ```
 */
export const FORWARD_MODES = ["io", "mac", "macswap", "5tswap", "rxonly", "icmpecho"] as const;

/**
 * One of {@linkcode FORWARD_MODES}.
 *
 * @example
 * ```ts
 * import type { ForwardMode } from "./modes.ts";
 * const m: ForwardMode = "5tswap";
 * ```
 */
export type ForwardMode = typeof FORWARD_MODES[number];

/**
 * Every mode of the engine (EngineOptions.mode): the forwarding modes, then the two that
 * generate frames instead (txonly, flowgen: src/engine/generator.ts).
 *
 * @example
 * ```ts
 * import { ENGINE_MODES } from "./modes.ts";
 * ENGINE_MODES.includes("flowgen"); // true
 * ```
 */
export const ENGINE_MODES = [...FORWARD_MODES, "txonly", "flowgen"] as const;

/**
 * One of {@linkcode ENGINE_MODES}.
 *
 * @example
 * ```ts
 * import type { EngineMode } from "./modes.ts";
 * const m: EngineMode = "txonly";
 * ```
 */
export type EngineMode = typeof ENGINE_MODES[number];

/**
 * True when `v` is the name of one of the engine's modes.
 *
 * @example
 * ```ts
 * import { isEngineMode } from "./modes.ts";
 * isEngineMode("txonly"); // true
 * ```
 */
export function isEngineMode(v: unknown): v is EngineMode {
  return typeof v === "string" && (ENGINE_MODES as readonly string[]).includes(v);
}

/** Mode number of "io": frames go out as they came. */
export const MODE_IO = 0;
/** Mode number of "mac": the forwarder's MAC rewrite (as DPDK l2fwd). */
export const MODE_MAC = 1;
/** Mode number of "macswap". */
export const MODE_MACSWAP = 2;
/** Mode number of "5tswap". */
export const MODE_5TSWAP = 3;
/** Mode number of "rxonly". */
export const MODE_RXONLY = 4;
/** Mode number of "icmpecho". */
export const MODE_ICMPECHO = 5;

/** Verdict of a mode: send the frame out of the other port. */
export const MODE_FORWARD = 0;
/** Verdict: free the frame and count it dropped by the mode (P_DROP_MODE), unanswered. */
export const MODE_DROP = 1;
/** Verdict: send the frame back out of the port it came in on (a reply). */
export const MODE_BOUNCE = 2;
/** Verdict: free the frame, counted as received only (rxonly: it was the frame's end). */
export const MODE_CONSUME = 3;

/**
 * True when `v` is a mode name.
 *
 * @example
 * ```ts
 * import { isForwardMode } from "./modes.ts";
 * isForwardMode("icmpecho"); // true
 * isForwardMode("txonly"); // false
 * ```
 */
export function isForwardMode(v: unknown): v is ForwardMode {
  return typeof v === "string" && (FORWARD_MODES as readonly string[]).includes(v);
}

/**
 * The number the forwarder switches on for mode `m` (its index in
 * {@linkcode FORWARD_MODES}).
 *
 * @example
 * ```ts
 * import { MODE_RXONLY, modeNumber } from "./modes.ts";
 * modeNumber("rxonly") === MODE_RXONLY; // true
 * ```
 */
export function modeNumber(m: ForwardMode): number {
  const i = (FORWARD_MODES as readonly string[]).indexOf(m);
  if (i < 0) throw new RangeError(`${String(m)} is not a forwarding mode`);
  return i;
}
