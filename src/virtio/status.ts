/**
 * The device status field (virtio 1.x §2.1) and its bits.
 *
 * @module
 */

/** The guest OS has noticed the device. */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
/** The guest OS knows how to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER = 2;
/** The driver is set up and ready to drive the device. */
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
/** Feature negotiation is complete. */
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
/** The device hit an error it cannot recover from without a reset. */
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
/** The driver gave up on the device. */
export const VIRTIO_CONFIG_S_FAILED = 0x80;

const STATUS_NAMES: [number, string][] = [
  [VIRTIO_CONFIG_S_ACKNOWLEDGE, "ACKNOWLEDGE"],
  [VIRTIO_CONFIG_S_DRIVER, "DRIVER"],
  [VIRTIO_CONFIG_S_DRIVER_OK, "DRIVER_OK"],
  [VIRTIO_CONFIG_S_FEATURES_OK, "FEATURES_OK"],
  [VIRTIO_CONFIG_S_NEEDS_RESET, "DEVICE_NEEDS_RESET"],
  [VIRTIO_CONFIG_S_FAILED, "FAILED"],
];

/**
 * The status bits by name, e.g. "ACKNOWLEDGE|DRIVER|FEATURES_OK" (or "RESET" for 0).
 *
 * @example
 * ```ts
 * import { statusString } from "./status.ts";
 * statusString(0x0b); // "ACKNOWLEDGE|DRIVER|FEATURES_OK"
 * ```
 */
export function statusString(status: number): string {
  if (status === 0) return "RESET";
  const parts = STATUS_NAMES.filter(([b]) => status & b).map(([, n]) => n);
  const rest = status & ~STATUS_NAMES.reduce((a, [b]) => a | b, 0);
  if (rest) parts.push(`0x${rest.toString(16)}`);
  return parts.join("|");
}
