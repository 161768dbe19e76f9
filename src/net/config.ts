/**
 * struct virtio_net_config (virtio 1.x §5.1.4): the device-specific configuration.
 *
 * Fields are read only when the feature that defines them was negotiated, and validated:
 * values come from the device.
 *
 * @module
 */

import { hasFeature } from "../virtio/features.ts";
import type { VirtioPciTransport } from "../virtio/pci_transport.ts";
import {
  VIRTIO_NET_F_HASH_REPORT,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_RSS,
  VIRTIO_NET_F_STATUS,
} from "./features.ts";

/** status bit: the link is up. */
export const VIRTIO_NET_S_LINK_UP = 1;
/** status bit: the device asks the driver to send gratuitous packets. */
export const VIRTIO_NET_S_ANNOUNCE = 2;

/** The decoded configuration. */
export interface NetConfig {
  /** MAC address as 6 bytes (zeroes when VIRTIO_NET_F_MAC is absent). */
  mac: Uint8Array;
  /** Link up (true when VIRTIO_NET_F_STATUS is absent: the link is assumed up). */
  linkUp: boolean;
  /** The device asks for an announcement (VIRTIO_NET_S_ANNOUNCE). */
  announce: boolean;
  /** max_virtqueue_pairs (1 without VIRTIO_NET_F_MQ). */
  maxVirtqueuePairs: number;
  /** MTU (1500 without VIRTIO_NET_F_MTU). */
  mtu: number;
  /** rss_max_key_size (0 without RSS). */
  rssMaxKeySize: number;
  /** rss_max_indirection_table_length (0 without RSS). */
  rssMaxIndirectionTableLength: number;
  /** supported_hash_types (0 without RSS or HASH_REPORT). */
  supportedHashTypes: number;
}

/**
 * Formats a MAC address as aa:bb:cc:dd:ee:ff.
 *
 * @example
 * ```ts
 * import { formatMac } from "./config.ts";
 * formatMac(new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56])); // "52:54:00:12:34:56"
 * ```
 */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Reads the configuration for the negotiated `features`, consistently (config_generation).
 *
 * @example
 * ```ts ignore
 * import { readNetConfig } from "./config.ts";
 * const cfg = readNetConfig(transport, negotiated);
 * console.log(cfg.maxVirtqueuePairs);
 * ```
 */
export function readNetConfig(t: VirtioPciTransport, features: bigint): NetConfig {
  const f = (n: number) => hasFeature(features, n);
  return t.readConfig((c) => {
    const mac = new Uint8Array(6);
    if (f(VIRTIO_NET_F_MAC)) { for (let i = 0; i < 6; i++) mac[i] = c.read8(i); }
    const status = f(VIRTIO_NET_F_STATUS) ? c.read16(6) : VIRTIO_NET_S_LINK_UP;
    // §5.1.4: max_virtqueue_pairs exists with MQ or RSS; rss_max_key_size and
    // supported_hash_types with RSS or HASH_REPORT; the table length with RSS.
    const rss = f(VIRTIO_NET_F_RSS), rssOrHash = rss || f(VIRTIO_NET_F_HASH_REPORT);
    return {
      mac,
      linkUp: (status & VIRTIO_NET_S_LINK_UP) !== 0,
      announce: (status & VIRTIO_NET_S_ANNOUNCE) !== 0,
      maxVirtqueuePairs: f(VIRTIO_NET_F_MQ) || rss ? c.read16(8) : 1,
      mtu: f(VIRTIO_NET_F_MTU) ? c.read16(10) : 1500,
      rssMaxKeySize: rssOrHash ? c.read8(17) : 0,
      rssMaxIndirectionTableLength: rss ? c.read16(18) : 0,
      supportedHashTypes: rssOrHash ? c.read32(20) : 0,
    };
  });
}
