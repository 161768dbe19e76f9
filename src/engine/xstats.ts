/**
 * Extended statistics named as DPDK's virtio PMD names them (`rte_eth_xstats_get_names`
 * on a virtio port), computed from the per-queue counter blocks (src/net/queue_counters.ts),
 * plus this driver's own counters in the same style.
 *
 * DPDK (drivers/net/virtio/virtio_ethdev.c): `rte_virtio_rxq_stat_strings` and
 * `rte_virtio_txq_stat_strings` list 13 per-queue statistics, and
 * `virtio_dev_xstats_get_names` prefixes each with `rx_q%u_` / `tx_q%u_`: every receive
 * queue's first (queue 0's 13, then queue 1's …), then every transmit queue's. Their
 * meaning here, as DPDK's:
 *
 * - `good_packets`, `good_bytes`: frames delivered (rx) or queued to the device (tx), and
 *   their bytes, virtio-net header excluded;
 * - `errors`: rx, frames the device returned that could not be delivered (DPDK: shorter
 *   than a header and an Ethernet header, offload fields it refuses, mergeable buffers
 *   missing; here: a buffer without a frame, mergeable buffers that break §5.1.6.4, offload
 *   fields that break §5.1.6.4.1). tx: DPDK declares it but its transmit paths never count
 *   into it; here, frames the queue could not send as asked (longer than their buffers or
 *   the ring, an offload request the port cannot honour);
 * - `multicast_packets`, `broadcast_packets`, `undersize_packets`, `size_*_packets`: per
 *   frame, by src/net/frame_class.ts (DPDK's `virtio_update_packet_stats`).
 *
 * Ours, after DPDK's, per queue in the same `rx_qN_`/`tx_qN_` style: the drops by reason,
 * notifications (`kicks`) and those the device suppressed ({@linkcode OWN_RXQ_STATS},
 * {@linkcode OWN_TXQ_STATS}; {@linkcode XSTAT_HELP} says what each counts).
 *
 * @module
 */

import {
  P_DROP_BAD_MERGE,
  P_DROP_BAD_OFFLOAD,
  P_DROP_MODE,
  P_DROP_NO_BUFFER,
  P_DROP_RUNT,
  P_DROP_SCRIPT,
  P_DROP_TOO_LONG,
  P_DROP_TX_OFFLOAD,
  P_DROP_TX_RING_FULL,
  P_RX_BYTES,
  P_RX_KICKS,
  P_RX_KICKS_SUPPRESSED,
  P_RX_MULTICAST,
  P_RX_PACKETS,
  P_RX_SIBLING_WAKES,
  P_RX_SIZE_BINS,
  P_TX_BYTES,
  P_TX_KICKS,
  P_TX_KICKS_SUPPRESSED,
  P_TX_MULTICAST,
  P_TX_PACKETS,
  P_TX_RING_FULL_WAITS,
  P_TX_SIZE_BINS,
  SIZE_BINS,
} from "../net/queue_counters.ts";

/**
 * DPDK's per-queue statistics of a virtio port, in its order (`rte_virtio_rxq_stat_strings`,
 * identical for transmit queues: `rte_virtio_txq_stat_strings`); xstats names are these with
 * `rx_qN_` or `tx_qN_` in front.
 *
 * @example
 * ```ts
 * import { DPDK_VIRTIO_QUEUE_STATS } from "./xstats.ts";
 * DPDK_VIRTIO_QUEUE_STATS.length; // 13
 * ```
 */
export const DPDK_VIRTIO_QUEUE_STATS: readonly string[] = [
  "good_packets",
  "good_bytes",
  "errors",
  "multicast_packets",
  "broadcast_packets",
  "undersize_packets",
  "size_64_packets",
  "size_65_127_packets",
  "size_128_255_packets",
  "size_256_511_packets",
  "size_512_1023_packets",
  "size_1024_1518_packets",
  "size_1519_max_packets",
];

/**
 * This driver's own per-receive-queue statistics, after DPDK's (`rx_qN_` in front).
 *
 * @example
 * ```ts
 * import { OWN_RXQ_STATS } from "./xstats.ts";
 * OWN_RXQ_STATS.includes("kicks_suppressed"); // true
 * ```
 */
export const OWN_RXQ_STATS: readonly string[] = [
  "dropped_no_buffer",
  "dropped_runt",
  "dropped_bad_merge",
  "dropped_bad_offload",
  "dropped_script",
  "dropped_mode",
  "kicks",
  "kicks_suppressed",
  "sibling_wakes",
];

/**
 * This driver's own per-transmit-queue statistics, after DPDK's (`tx_qN_` in front).
 *
 * @example
 * ```ts
 * import { OWN_TXQ_STATS } from "./xstats.ts";
 * OWN_TXQ_STATS.includes("dropped_ring_full"); // true
 * ```
 */
export const OWN_TXQ_STATS: readonly string[] = [
  "dropped_ring_full",
  "dropped_too_long",
  "dropped_offload",
  "ring_full_waits",
  "kicks",
  "kicks_suppressed",
];

/** Size bins' bounds in bytes, inclusive (Infinity: no upper bound), DPDK's order. */
const BIN_BOUNDS: readonly (readonly [number, number])[] = [
  [0, 63],
  [64, 64],
  [65, 127],
  [128, 255],
  [256, 511],
  [512, 1023],
  [1024, 1518],
  [1519, Infinity],
];

/**
 * One line on what each statistic counts, by its name without the `rx_qN_`/`tx_qN_`
 * prefix and with the direction (`rx_` or `tx_`) in front: for Prometheus' # HELP lines.
 *
 * @example
 * ```ts
 * import { XSTAT_HELP } from "./xstats.ts";
 * XSTAT_HELP.rx_undersize_packets; // "Frames received shorter than 64 bytes (…)"
 * ```
 */
export const XSTAT_HELP: Readonly<Record<string, string>> = (() => {
  const h: Record<string, string> = {};
  for (const [d, what] of [["rx", "received"], ["tx", "transmitted"]]) {
    h[`${d}_good_packets`] = `Frames ${what} (DPDK virtio good_packets).`;
    h[`${d}_good_bytes`] = `Bytes of frames ${what}, virtio-net header excluded.`;
    h[`${d}_multicast_packets`] =
      `Frames ${what} to a group address other than broadcast (I/G bit set).`;
    h[`${d}_broadcast_packets`] = `Frames ${what} to ff:ff:ff:ff:ff:ff.`;
    h[`${d}_undersize_packets`] =
      `Frames ${what} shorter than 64 bytes (header excluded, no FCS: as DPDK counts).`;
    for (const [lo, hi] of BIN_BOUNDS.slice(1)) {
      const name = hi === Infinity
        ? `size_${lo}_max_packets`
        : lo === hi
        ? `size_${lo}_packets`
        : `size_${lo}_${hi}_packets`;
      h[`${d}_${name}`] = hi === Infinity
        ? `Frames ${what} of ${lo} bytes or more.`
        : `Frames ${what} of ${lo === hi ? lo : `${lo} to ${hi}`} bytes.`;
    }
    h[`${d}_kicks`] = `Notifications sent to the device on the ${d} queue.`;
    h[`${d}_kicks_suppressed`] =
      `Publications on the ${d} queue the device asked not to be notified of.`;
  }
  h.rx_errors = "Frames the device returned that could not be delivered (runt, bad " +
    "mergeable buffers, bad offload fields).";
  h.tx_errors = "Frames the queue could not send as asked (too long, offload not honoured).";
  h.rx_dropped_no_buffer = "Receive descriptors left empty: no free buffer.";
  h.rx_dropped_runt = "Buffers the device returned without a frame.";
  h.rx_dropped_bad_merge = "Frames whose mergeable receive buffers broke virtio 1.x 5.1.6.4.";
  h.rx_dropped_bad_offload = "Frames whose offload fields broke virtio 1.x 5.1.6.4.1.";
  h.rx_dropped_script = "Frames received here that the forwarding script dropped.";
  h.rx_dropped_mode = "Frames received here that the forwarding mode left unanswered (icmpecho).";
  h.rx_sibling_wakes = "Notifications to the port's other receive queues after this one ran dry.";
  h.tx_dropped_ring_full = "Frames dropped because the transmit ring was full.";
  h.tx_dropped_too_long = "Frames longer than their buffers or the ring can take.";
  h.tx_dropped_offload = "Frames with an offload request the port cannot honour.";
  h.tx_ring_full_waits = "Transmit bursts the full ring did not take whole (the rest waited).";
  return h;
})();

/** One queue pair's counter block: `counters` from slot `base` (queue_counters.ts). */
export interface QueueBlock {
  /** The array (a worker's shared counters, or a port's private block). */
  counters: Float64Array;
  /** First slot of the block. */
  base: number;
}

function dpdkValues(
  c: Float64Array,
  o: number,
  packets: number,
  bytes: number,
  errors: number,
  mc: number,
  bins: number,
): number[] {
  // Broadcast follows multicast (P_RX_BROADCAST = P_RX_MULTICAST + 1, the same for tx).
  const v = [c[o + packets], c[o + bytes], errors, c[o + mc], c[o + mc + 1]];
  for (let b = 0; b < SIZE_BINS; b++) v.push(c[o + bins + b]);
  return v;
}

/**
 * A port's extended statistics from its queue pairs' blocks (`queues[k]`: pair k), in
 * DPDK's order (every `rx_qN_` of DPDK's list, then every `tx_qN_`), then ours (every
 * `rx_qN_`, then every `tx_qN_`). The same block may serve both queues of a pair, as in
 * the engine's workers and in `VirtioNetPort`; `tx` gives the transmit queues' blocks when
 * they are apart.
 *
 * @example
 * ```ts
 * import { portXstats } from "./xstats.ts";
 * import { PORT_SLOTS } from "../net/queue_counters.ts";
 * const x = portXstats([{ counters: new Float64Array(PORT_SLOTS), base: 0 }]);
 * Object.keys(x)[0]; // "rx_q0_good_packets"
 * ```
 */
export function portXstats(
  queues: readonly QueueBlock[],
  tx: readonly QueueBlock[] = queues,
): Record<string, number> {
  const x: Record<string, number> = {};
  const rxOf = (k: number) => {
    const { counters: c, base: o } = queues[k];
    const errors = c[o + P_DROP_RUNT] + c[o + P_DROP_BAD_MERGE] + c[o + P_DROP_BAD_OFFLOAD];
    return dpdkValues(c, o, P_RX_PACKETS, P_RX_BYTES, errors, P_RX_MULTICAST, P_RX_SIZE_BINS);
  };
  const txOf = (k: number) => {
    const { counters: c, base: o } = tx[k];
    const errors = c[o + P_DROP_TOO_LONG] + c[o + P_DROP_TX_OFFLOAD];
    return dpdkValues(c, o, P_TX_PACKETS, P_TX_BYTES, errors, P_TX_MULTICAST, P_TX_SIZE_BINS);
  };
  for (const [d, of, n] of [["rx", rxOf, queues.length], ["tx", txOf, tx.length]] as const) {
    for (let k = 0; k < n; k++) {
      const v = of(k);
      DPDK_VIRTIO_QUEUE_STATS.forEach((name, i) => x[`${d}_q${k}_${name}`] = v[i]);
    }
  }
  const rxOwn = [
    P_DROP_NO_BUFFER,
    P_DROP_RUNT,
    P_DROP_BAD_MERGE,
    P_DROP_BAD_OFFLOAD,
    P_DROP_SCRIPT,
    P_DROP_MODE,
    P_RX_KICKS,
    P_RX_KICKS_SUPPRESSED,
    P_RX_SIBLING_WAKES,
  ];
  const txOwn = [
    P_DROP_TX_RING_FULL,
    P_DROP_TOO_LONG,
    P_DROP_TX_OFFLOAD,
    P_TX_RING_FULL_WAITS,
    P_TX_KICKS,
    P_TX_KICKS_SUPPRESSED,
  ];
  for (const [k, { counters: c, base: o }] of queues.entries()) {
    OWN_RXQ_STATS.forEach((name, i) => x[`rx_q${k}_${name}`] = c[o + rxOwn[i]]);
  }
  for (const [k, { counters: c, base: o }] of tx.entries()) {
    OWN_TXQ_STATS.forEach((name, i) => x[`tx_q${k}_${name}`] = c[o + txOwn[i]]);
  }
  return x;
}

/**
 * `a` with `b`'s values added, name by name (a name only in `b` is added as it is): the
 * statistics of engine sessions before a reconnect added to the live ones.
 *
 * @example
 * ```ts
 * import { addXstats } from "./xstats.ts";
 * addXstats({ rx_q0_good_packets: 2 }, { rx_q0_good_packets: 3 }).rx_q0_good_packets; // 5
 * ```
 */
export function addXstats(
  a: Readonly<Record<string, number>>,
  b: Readonly<Record<string, number>> | undefined,
): Record<string, number> {
  const r = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) r[k] = (r[k] ?? 0) + v;
  return r;
}
