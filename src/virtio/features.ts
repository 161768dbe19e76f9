/**
 * virtio feature bits: the device-independent ones (virtio 1.x §6, "Reserved Feature
 * Bits") and a registry so every negotiated bit prints by its spec name. virtio-net adds
 * its own in `src/net/features.ts`.
 *
 * Features are 64-bit; they are kept as bigint (setup path only, never per packet).
 *
 * @module
 */

/**
 * Legacy only: the device takes any descriptor layout (§2.7.4.3 legacy note); without
 * it a legacy virtio-net device wants the header in a descriptor of its own.
 */
export const VIRTIO_F_ANY_LAYOUT = 27;
/** Descriptors may be indirect (§2.7.5.3). */
export const VIRTIO_F_INDIRECT_DESC = 28;
/** used_event / avail_event notification suppression (§2.7.7, §2.7.10). */
export const VIRTIO_F_EVENT_IDX = 29;
/** The device complies with virtio 1.x (not legacy). */
export const VIRTIO_F_VERSION_1 = 32;
/** The device accesses memory through the platform's IOMMU (required with VFIO). */
export const VIRTIO_F_ACCESS_PLATFORM = 33;
/** Packed virtqueue layout (§2.8). */
export const VIRTIO_F_RING_PACKED = 34;
/** Buffers are used in the order they were made available. */
export const VIRTIO_F_IN_ORDER = 35;
/** Memory ordering as the platform's DMA requires. */
export const VIRTIO_F_ORDER_PLATFORM = 36;
/** SR-IOV capable device. */
export const VIRTIO_F_SR_IOV = 37;
/** The driver passes extra data with notifications. */
export const VIRTIO_F_NOTIFICATION_DATA = 38;
/** The device provides notification config data. */
export const VIRTIO_F_NOTIF_CONFIG_DATA = 39;
/** Individual virtqueues can be reset. */
export const VIRTIO_F_RING_RESET = 40;
/** Administration virtqueue. */
export const VIRTIO_F_ADMIN_VQ = 41;

const names = new Map<number, string>([
  [24, "VIRTIO_F_NOTIFY_ON_EMPTY"],
  [VIRTIO_F_ANY_LAYOUT, "VIRTIO_F_ANY_LAYOUT"],
  [VIRTIO_F_INDIRECT_DESC, "VIRTIO_F_INDIRECT_DESC"],
  [VIRTIO_F_EVENT_IDX, "VIRTIO_F_EVENT_IDX"],
  [30, "VIRTIO_F_BAD_FEATURE"],
  [VIRTIO_F_VERSION_1, "VIRTIO_F_VERSION_1"],
  [VIRTIO_F_ACCESS_PLATFORM, "VIRTIO_F_ACCESS_PLATFORM"],
  [VIRTIO_F_RING_PACKED, "VIRTIO_F_RING_PACKED"],
  [VIRTIO_F_IN_ORDER, "VIRTIO_F_IN_ORDER"],
  [VIRTIO_F_ORDER_PLATFORM, "VIRTIO_F_ORDER_PLATFORM"],
  [VIRTIO_F_SR_IOV, "VIRTIO_F_SR_IOV"],
  [VIRTIO_F_NOTIFICATION_DATA, "VIRTIO_F_NOTIFICATION_DATA"],
  [VIRTIO_F_NOTIF_CONFIG_DATA, "VIRTIO_F_NOTIF_CONFIG_DATA"],
  [VIRTIO_F_RING_RESET, "VIRTIO_F_RING_RESET"],
  [VIRTIO_F_ADMIN_VQ, "VIRTIO_F_ADMIN_VQ"],
]);

/**
 * Registers device-type feature names (virtio-net calls this for its bits 0–23, 50–63).
 *
 * @example
 * ```ts
 * import { featureName, registerFeatureNames } from "./features.ts";
 * registerFeatureNames([[5, "VIRTIO_NET_F_MAC"]]);
 * featureName(5); // "VIRTIO_NET_F_MAC"
 * ```
 */
export function registerFeatureNames(entries: Iterable<[number, string]>): void {
  for (const [bit, name] of entries) names.set(bit, name);
}

/**
 * The spec name of a feature bit, or `FEATURE_<n>` when it has none here.
 *
 * @example
 * ```ts
 * import { featureName } from "./features.ts";
 * featureName(32); // "VIRTIO_F_VERSION_1"
 * ```
 */
export function featureName(bit: number): string {
  return names.get(bit) ?? `FEATURE_${bit}`;
}

/**
 * Bit `n` as a 64-bit feature mask.
 *
 * @example
 * ```ts
 * import { bit } from "./features.ts";
 * bit(32); // 4294967296n
 * ```
 */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/**
 * True when `features` has bit `n`.
 *
 * @example
 * ```ts
 * import { hasFeature } from "./features.ts";
 * hasFeature(1n << 33n, 33); // true
 * ```
 */
export function hasFeature(features: bigint, n: number): boolean {
  return (features >> BigInt(n) & 1n) === 1n;
}

/**
 * The bit numbers set in `features`, lowest first.
 *
 * @example
 * ```ts
 * import { featureBits } from "./features.ts";
 * featureBits(0b101n); // [0, 2]
 * ```
 */
export function featureBits(features: bigint): number[] {
  const bits: number[] = [];
  for (let i = 0; i < 64; i++) if (hasFeature(features, i)) bits.push(i);
  return bits;
}

/**
 * Every bit of `features` by name, e.g. for printing what was negotiated.
 *
 * @example
 * ```ts
 * import { featureNames } from "./features.ts";
 * featureNames((1n << 32n) | (1n << 33n)); // ["VIRTIO_F_VERSION_1", "VIRTIO_F_ACCESS_PLATFORM"]
 * ```
 */
export function featureNames(features: bigint): string[] {
  return featureBits(features).map(featureName);
}
