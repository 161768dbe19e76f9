/**
 * Which features this driver asks a virtio-net device for (virtio 1.x §3.1.1 step 4,
 * §5.1.3.1 feature dependencies), and the sentence users get when a required one is
 * missing.
 *
 * @module
 */

import { DriverError } from "../errors.ts";
import {
  bit,
  featureName,
  hasFeature,
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_ANY_LAYOUT,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_VERSION_1,
} from "../virtio/features.ts";
import {
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_STATUS,
} from "./features.ts";

/** What this driver needs of a modern device: virtio 1.x, behind the IOMMU. */
export const REQUIRED_FEATURES: readonly number[] = [VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM];

/**
 * What it needs of a legacy device (§4.1.4.8; 32 feature bits, no IOMMU): header and frame
 * in one descriptor (ANY_LAYOUT, §2.7.4.3 legacy note), and the 12-byte header of
 * MRG_RXBUF (§5.1.6.1 legacy note), whose layout the data path shares with virtio 1.x;
 * with it a frame may span buffers (docs/mergeable.md).
 */
export const LEGACY_REQUIRED_FEATURES: readonly number[] = [
  VIRTIO_F_ANY_LAYOUT,
  VIRTIO_NET_F_MRG_RXBUF,
];

/** Features this driver uses when the device offers them. */
export const WANTED_FEATURES: readonly number[] = [
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_IN_ORDER,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
];

/** Features that need the control virtqueue (§5.1.3.1). */
const NEEDS_CTRL_VQ = [
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_HASH_REPORT,
];

const FIX_FOR: Record<number, string> = {
  [VIRTIO_F_VERSION_1]: "use a modern device (QEMU: disable-legacy=on)",
  [VIRTIO_F_ACCESS_PLATFORM]: "give the device iommu_platform=on (QEMU) so it uses the IOMMU",
  [VIRTIO_F_ANY_LAYOUT]:
    "use a device that takes the header and frame in one descriptor (QEMU: any_layout=on)",
  [VIRTIO_NET_F_MRG_RXBUF]: "give the device mrg_rxbuf=on (QEMU)",
};

/** What to ask for beyond the defaults. */
export interface NegotiationOptions {
  /** Negotiate VIRTIO_NET_F_HASH_REPORT when offered (default true; adds 8 header bytes). */
  hashReport?: boolean;
  /**
   * Negotiate VIRTIO_F_RING_PACKED when offered (default true): every queue then uses the
   * packed format (§2.8) instead of the split one (§2.7). False keeps split rings.
   */
  packedRing?: boolean;
  /**
   * Negotiate VIRTIO_F_IN_ORDER when offered (default true): the device then uses buffers
   * in the order they were made available and may return a batch with one used entry
   * (§2.7.9, §2.8.8). False lets it use them in any order.
   */
  inOrder?: boolean;
  /**
   * Negotiate VIRTIO_NET_F_MRG_RXBUF when offered (default true): a received frame may
   * then span several buffers (docs/mergeable.md), so buffers need not hold the MTU.
   */
  mergeable?: boolean;
  /**
   * Negotiate VIRTIO_F_INDIRECT_DESC when offered (default true): a frame that spans
   * several buffers is then sent through one ring slot naming a table of its pieces
   * (§2.7.5.3, §2.8.19; docs/indirect.md) instead of a chain of one slot per piece.
   */
  indirect?: boolean;
  /**
   * Negotiate VIRTIO_NET_F_CSUM when offered (default true): the device then completes
   * the checksums of frames sent with a partial-checksum request (docs/offloads.md).
   */
  txChecksum?: boolean;
  /**
   * Negotiate VIRTIO_NET_F_HOST_TSO4/6 when offered with VIRTIO_NET_F_CSUM (default true):
   * the device then segments TCP super-frames sent with a TSO request.
   */
  tso?: boolean;
  /**
   * Negotiate VIRTIO_NET_F_GUEST_CSUM when offered (default false: asked for): the device
   * may then mark received frames checked (DATA_VALID) or deliver them with a partial
   * checksum, which a receiver that sends them on must pass to the output port
   * (`requestTxOffload`; the engine does). Off, the device completes every checksum.
   */
  rxChecksum?: boolean;
  /**
   * Negotiate VIRTIO_NET_F_GUEST_TSO4/6 (large receive) when offered with GUEST_CSUM and
   * mergeable buffers (default false: asked for, like rxChecksum): a received TCP frame may
   * then be a super-frame of up to 64 KiB spanning many buffers.
   */
  lro?: boolean;
}

/** The device is a legacy one (its transport's `legacy`): what is required differs. */
export interface DeviceKind {
  /** A legacy (virtio 0.9.5) device: {@linkcode LEGACY_REQUIRED_FEATURES} instead. */
  legacy?: boolean;
}

/**
 * Picks the features to accept from what the device `offered`: all required ones (throws
 * MISSING_FEATURE naming the first one missing and the fix), and each wanted one that is
 * offered and whose dependencies are met. For a legacy device (`kind.legacy`) the
 * required ones are {@linkcode LEGACY_REQUIRED_FEATURES}.
 *
 * @example
 * ```ts
 * import { selectFeatures } from "./negotiate.ts";
 * const offered = (1n << 32n) | (1n << 33n) | (1n << 5n) | (1n << 22n); // MQ without CTRL_VQ
 * selectFeatures("0000:00:04.0", offered); // VERSION_1 | ACCESS_PLATFORM | MAC (MQ dropped)
 * const legacy = (1n << 27n) | (1n << 15n) | (1n << 5n) | (1n << 29n); // ANY_LAYOUT MRG_RXBUF MAC EVENT_IDX
 * selectFeatures("0000:00:04.0", legacy, {}, { legacy: true }); // all four
 * ```
 */
export function selectFeatures(
  port: string,
  offered: bigint,
  options: NegotiationOptions = {},
  kind: DeviceKind = {},
): bigint {
  const required = kind.legacy ? LEGACY_REQUIRED_FEATURES : REQUIRED_FEATURES;
  for (const f of required) {
    if (!hasFeature(offered, f)) {
      throw new DriverError(
        "MISSING_FEATURE",
        `${port} does not offer ${featureName(f)}, which this driver requires${
          kind.legacy ? " of a legacy device" : ""
        }: ${FIX_FOR[f]}.`,
      );
    }
  }
  let features = 0n;
  for (const f of [...required, ...WANTED_FEATURES]) {
    if (!hasFeature(offered, f)) continue;
    if (NEEDS_CTRL_VQ.includes(f) && !hasFeature(offered, VIRTIO_NET_F_CTRL_VQ)) continue;
    if (f === VIRTIO_NET_F_HASH_REPORT && options.hashReport === false) continue;
    if (f === VIRTIO_F_RING_PACKED && options.packedRing === false) continue;
    if (f === VIRTIO_F_IN_ORDER && options.inOrder === false) continue;
    if (f === VIRTIO_F_INDIRECT_DESC && options.indirect === false) continue;
    // A legacy device needs MRG_RXBUF (its 12-byte header): `mergeable: false` cannot drop it.
    if (f === VIRTIO_NET_F_MRG_RXBUF && options.mergeable === false && !required.includes(f)) {
      continue;
    }
    if (!offloadWanted(f, options, features)) continue;
    features |= bit(f);
  }
  return features;
}

/**
 * Whether offload feature `f` is to be taken, given the options and the features taken so
 * far (WANTED_FEATURES lists each after what it depends on, §5.1.3.1: HOST_TSO4/6 need
 * CSUM, GUEST_TSO4/6 need GUEST_CSUM; large receive here needs MRG_RXBUF too, or every
 * buffer would have to hold 64 KiB, §5.1.6.3.1). True for any other feature.
 */
function offloadWanted(f: number, o: NegotiationOptions, taken: bigint): boolean {
  switch (f) {
    case VIRTIO_NET_F_CSUM:
      return o.txChecksum !== false;
    case VIRTIO_NET_F_HOST_TSO4:
    case VIRTIO_NET_F_HOST_TSO6:
      return o.tso !== false && hasFeature(taken, VIRTIO_NET_F_CSUM);
    case VIRTIO_NET_F_GUEST_CSUM:
      return o.rxChecksum === true;
    case VIRTIO_NET_F_GUEST_TSO4:
    case VIRTIO_NET_F_GUEST_TSO6:
      return o.lro === true && hasFeature(taken, VIRTIO_NET_F_GUEST_CSUM) &&
        hasFeature(taken, VIRTIO_NET_F_MRG_RXBUF);
  }
  return true;
}
