/**
 * Which offloads a port negotiated (virtio 1.x §5.1.3), as the bit mask of offloads.ts,
 * and switching on the receive side's validation for a queue. Apart from offloads.ts so
 * that a forwarding worker, which gets the mask as a number, loads no feature tables.
 *
 * @module
 */

import { hasFeature } from "../virtio/features.ts";
import {
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
} from "./features.ts";
import {
  FrameOffloads,
  OFFLOAD_LRO4,
  OFFLOAD_LRO6,
  OFFLOAD_RX_ANY,
  OFFLOAD_RX_CSUM,
  OFFLOAD_TSO4,
  OFFLOAD_TSO6,
  OFFLOAD_TX_CSUM,
} from "./offloads.ts";
import type { RxQueue } from "./rx_queue.ts";

/**
 * The offload bits of negotiated `features` ({@linkcode OFFLOAD_TX_CSUM} …).
 *
 * @example
 * ```ts
 * import { offloadsOf } from "./offload_features.ts";
 * import { OFFLOAD_TX_CSUM } from "./offloads.ts";
 * offloadsOf(1n) === OFFLOAD_TX_CSUM; // VIRTIO_NET_F_CSUM only
 * ```
 */
export function offloadsOf(features: bigint): number {
  const has = (f: number) => hasFeature(features, f);
  return (has(VIRTIO_NET_F_CSUM) ? OFFLOAD_TX_CSUM : 0) |
    (has(VIRTIO_NET_F_HOST_TSO4) ? OFFLOAD_TSO4 : 0) |
    (has(VIRTIO_NET_F_HOST_TSO6) ? OFFLOAD_TSO6 : 0) |
    (has(VIRTIO_NET_F_GUEST_CSUM) ? OFFLOAD_RX_CSUM : 0) |
    (has(VIRTIO_NET_F_GUEST_TSO4) ? OFFLOAD_LRO4 : 0) |
    (has(VIRTIO_NET_F_GUEST_TSO6) ? OFFLOAD_LRO6 : 0);
}

/**
 * Has `rx` validate its frames' offload fields when `features` (negotiated) hold a receive
 * offload, into arrays of a ring's size; returns the arrays, or null when none is on.
 *
 * @example
 * ```ts ignore
 * enableRxOffloads(rxQueue, port.features)?.csum; // per frame of each burst
 * ```
 */
export function enableRxOffloads(rx: RxQueue, features: bigint): FrameOffloads | null {
  const mask = offloadsOf(features);
  if ((mask & OFFLOAD_RX_ANY) === 0) return null;
  const f = new FrameOffloads(rx.vq.size);
  rx.enableOffloads(f, mask);
  return f;
}
